"""Misuse sweep of the public API (tropical geometry beyond polynomials, tensor networks, attention, models):
each case raised a raw Python/NumPy/torch error, hung, or returned a silently wrong answer before it was fixed.

A case is ``(thunk, expected)``: ``expected`` an exception class (the call must raise it, a TropixError), or
``None`` (the call must succeed; a check on the result may follow in the thunk)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tropix
import tropix.attention as A
import tropix.models as M
import tropix.tn as N
import tropix.tropical as T
from tropix.errors import (ArgumentTypeError, EmptyInputError, ShapeError, SizeLimitError, ToleranceError)

import torch  # (a test dependency: never skipped)

rng = np.random.default_rng(0)
Q = rng.standard_normal((6, 4))
K = rng.standard_normal((10, 4))
V = rng.standard_normal((10, 3))
PTS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
SQ = np.array([[0.0, 3.0, -1.0], [2.0, 1.0, 4.0], [-2.0, 5.0, 0.0]])
V3 = np.array([[0.0, 1.0, 2.0], [0.0, 3.0, 1.0], [0.0, 0.0, 0.0]])
TEN = rng.standard_normal((3, 4, 2))
ALLOWED = np.ones((1, 6, 10), bool)


def _strs(a):
    """An object array holding the entries of ``a`` as strings ('0.5'): NumPy's float() parsed them."""
    return np.array(np.asarray(a).tolist(), dtype=object).astype(str).astype(object)


def _ok_tree():
    t = A.build_key_tree(K, leaf=10**30)
    assert t.n == 10


def _ok_seq(x, want):
    assert x == want, x


CASES = {
    # attention: complex input was cast to float64 with its imaginary part dropped, a list scale was float()'s
    # TypeError, meta tensors a raw RuntimeError
    "dense_complex_q": (lambda: A.dense(Q + 1j, K, V), ArgumentTypeError),
    "screened_complex_bias": (lambda: A.screened(Q, K, V, bias=np.zeros((6, 10)) + 1j), ArgumentTypeError),
    "dense_scale_list": (lambda: A.dense(Q, K, V, scale=[1.0]), ArgumentTypeError),
    "dense_meta_q": (lambda: A.dense(torch.tensor(Q).to("meta"), torch.tensor(K), torch.tensor(V)),
                     ArgumentTypeError),
    "tropicality_k_none": (lambda: A.tropicality(Q, None), ArgumentTypeError),
    "tropicality_k_1d": (lambda: A.tropicality(Q, K[0]), ShapeError),
    "entanglement_no_queries": (lambda: A.attention_entanglement(Q[:0], K[:4]), EmptyInputError),
    "score_slice_complex": (lambda: A.score_slice(K + 1j, np.zeros(4), np.eye(4)[0], np.eye(4)[1]),
                            ArgumentTypeError),
    "score_slice_strings": (lambda: A.score_slice(_strs(K), np.zeros(4), np.eye(4)[0], np.eye(4)[1]),
                            ArgumentTypeError),
    "key_tree_dim0": (lambda: A.build_key_tree(K[:, :0]), EmptyInputError),
    "key_tree_complex": (lambda: A.build_key_tree(K + 1j), ArgumentTypeError),
    "key_tree_huge_leaf": (_ok_tree, None),
    # models: recompute_probs / check_probs had no validation at all
    "recompute_q_none": (lambda: M.recompute_probs(None, K[None], ALLOWED, 0.5), ArgumentTypeError),
    "recompute_q_1d": (lambda: M.recompute_probs(Q.ravel(), K[None], ALLOWED, 0.5), ShapeError),
    "recompute_complex": (lambda: M.recompute_probs(Q[None] + 1j, K[None], ALLOWED, 0.5), ArgumentTypeError),
    "recompute_strings": (lambda: M.recompute_probs(_strs(Q[None]), K[None], ALLOWED, 0.5), ArgumentTypeError),
    "recompute_allowed_str": (lambda: M.recompute_probs(Q[None], K[None], "abc", 0.5), ArgumentTypeError),
    "recompute_allowed_shape": (lambda: M.recompute_probs(Q[None], K[None], ALLOWED[:, :5], 0.5), ShapeError),
    "recompute_scale_none": (lambda: M.recompute_probs(Q[None], K[None], ALLOWED, None), ArgumentTypeError),
    "recompute_nan": (lambda: M.recompute_probs(np.where(Q > 1, np.nan, Q)[None], K[None], ALLOWED, 0.5),
                      tropix.NaNError),
    "recompute_torch_grad": (lambda: M.recompute_probs(torch.tensor(Q[None], requires_grad=True), K[None],
                                                       ALLOWED, 0.5), None),
    "recompute_torch_bf16": (lambda: M.recompute_probs(torch.tensor(Q[None], dtype=torch.bfloat16), K[None],
                                                       ALLOWED, 0.5), None),
    "load_model_int": (lambda: M.load_model(3), ArgumentTypeError),
    "load_model_huge_max_length": (lambda: M.load_model(max_length=10**30), ShapeError),
    "load_compressed_none": (lambda: M.load_compressed(None), ArgumentTypeError),
    "extract_texts_none": (lambda: M.extract(_model(), None), ArgumentTypeError),
    "extract_model_none": (lambda: M.extract(None, ["a text"]), ArgumentTypeError),
    "head_stats_none": (lambda: M.head_stats(None, 0, 0), ArgumentTypeError),
    "check_probs_shape": (lambda: M.check_probs(Q[None, None], K[None, None], np.zeros((1, 1, 6)), ALLOWED, 0.5),
                          ShapeError),
    # tropical: query vectors and small arguments
    "cone_of_none": (lambda: T.normal_fan(PTS).cone_of(None), ArgumentTypeError),
    "cone_of_set": (lambda: T.normal_fan(PTS).winners({1, 2}), ArgumentTypeError),
    "cone_of_nested": (lambda: T.normal_fan(PTS).cone_of([[1, 2]]), ShapeError),
    "cone_of_complex": (lambda: T.normal_fan(PTS).cone_of(np.array([1 + 1j, 2])), ArgumentTypeError),
    "cone_of_strict": (lambda: _ok_seq(sorted(T.normal_fan(PTS).winners(_xps().asarray([1.0, 2.0]))), [3]), None),
    "argmax_cell_complex": (lambda: T.argmax_cell(PTS, np.array([1 + 1j, 2])), ArgumentTypeError),
    "argmax_cell_strings": (lambda: T.argmax_cell(PTS, _strs([1.0, 2.0])), ArgumentTypeError),
    "hilbert_complex": (lambda: T.hilbert_distance(np.array([0, 2, 1]) + 1j, [0, 1, 3]), ArgumentTypeError),
    "hilbert_strings": (lambda: T.hilbert_distance(_strs([0.0, 2.0, 1.0]), [0, 1, 3]), ArgumentTypeError),
    "is_singular_tol_tensor": (lambda: T.is_singular(SQ, tol=torch.tensor(0.5)), None),
    "optimal_permutations_tol_tensor": (lambda: T.optimal_permutations(SQ, tol=torch.tensor(0.5)), None),
    "contains_tol_tensor": (lambda: T.convex_hull(V3).contains([0, 2, 1], tol=torch.tensor(0.5)), None),
    "ascii_huge_width": (lambda: T.convex_hull(V3).ascii(10**30), ToleranceError),
    "ascii_margin_tensor": (lambda: T.convex_hull(V3).ascii(41, 21, torch.tensor(1.0)), None),
    "faces_list": (lambda: T.regular_subdivision([[0, 0], [3, 0], [0, 3], [1, 1]], [0, 0, 0, -1]).faces([1]),
                   ArgumentTypeError),
    "faces_str": (lambda: T.regular_subdivision([[0, 0], [3, 0], [0, 3], [1, 1]], [0, 0, 0, -1]).faces("1"),
                  ArgumentTypeError),
    "normal_cone_tensor_face": (lambda: T.normal_cone(PTS, torch.tensor(0)), None),
    "normal_cone_float_tensor_face": (lambda: T.normal_cone(PTS, torch.tensor(0.5)), ArgumentTypeError),
    "cells_of_dim_none": (lambda: _curve().cells_of_dim(None), ArgumentTypeError),
    "cells_of_dim_float": (lambda: _curve().cells_of_dim(1.5), ArgumentTypeError),
    "hypersurface_of_none": (lambda: T.TropicalHypersurface.of(None), ArgumentTypeError),
    "plot_curve_bad_ax": (lambda: _curve().plot(ax=3), ArgumentTypeError),
    "plot_subdivision_bad_ax": (lambda: _plot_subdivision(_curve(), ax="axes"), ArgumentTypeError),
    # tensor networks
    "tt_random_seed_float": (lambda: N.TensorTrain.random((2, 3), 2, seed=2.5), ArgumentTypeError),
    "tt_random_seed_negative": (lambda: N.TensorTrain.random((2, 3), 2, seed=-1), ToleranceError),
    "peps_random_seed_str": (lambda: N.PEPS.random(2, 2, seed="1"), ArgumentTypeError),
    "peps_random_huge": (lambda: N.PEPS.random(10**30, 2), SizeLimitError),
    "peps_random_huge_phys": (lambda: N.PEPS.random(2, 2, phys_dim=10**30), SizeLimitError),
    "peps_tensors_int": (lambda: N.PEPS(3), ArgumentTypeError),
    "peps_rows_none": (lambda: N.PEPS((None,)), ArgumentTypeError),
    "factorize_many_parts": (lambda: _ok_seq(N.factorize(12, 900), (3, 2, 2) + (1,) * 897), None),
    "factorize_huge_parts": (lambda: N.factorize(12, 10**30), SizeLimitError),
    "tt_complex_core": (lambda: N.TensorTrain((np.ones((1, 2, 1)) + 1j,)), ArgumentTypeError),
    "tt_string_core": (lambda: N.TensorTrain((_strs(np.ones((1, 2, 1))),)), ArgumentTypeError),
    "tucker_bound_complex": (lambda: N.tucker_residual_bound(TEN + 1j, TEN, [None, None, None]), ArgumentTypeError),
    "tucker_bound_factors_none": (lambda: N.tucker_residual_bound(TEN, TEN, None), ArgumentTypeError),
    "mode_product_strings": (lambda: N.mode_product(_strs(TEN), np.eye(3), 0), ArgumentTypeError),
}


def _model():
    return M.load_model(max_length=16)


def _curve():
    return T.TropicalPolynomial.parse("max(0, x, y, x + y - 1)").hypersurface()


def _plot_subdivision(C, ax):
    import matplotlib

    matplotlib.use("Agg")
    from tropix.tropical.curves import plot_subdivision

    return plot_subdivision(C, ax=ax)


def _xps():
    import array_api_strict  # (a test dependency: never skipped)

    return array_api_strict


@pytest.mark.parametrize("case", sorted(CASES))
def test_api_sweep(case):
    thunk, expected = CASES[case]
    if expected is None:
        thunk()
    else:
        assert issubclass(expected, tropix.TropixError)
        with pytest.raises(expected) as info:
            thunk()
        assert str(info.value)


def test_valid_inputs_still_accepted():
    # (guards of the new validation, not fixed cases: these worked before too)
    P = M.recompute_probs(Q[None], K[None], ALLOWED.tolist(), 0.5)  # a nested-list bool mask
    assert np.allclose(P, M.recompute_probs(Q[None], K[None], ALLOWED, 0.5))
    assert np.allclose(M.recompute_probs(Q, K, np.ones((6, 10), bool), np.float32(0.5)), P[0])


def test_tt_random_seed_still_reproducible():
    a = N.TensorTrain.random((2, 3), 2, seed=np.int64(3)).to_dense()
    b = N.TensorTrain.random((2, 3), 2, seed=3).to_dense()
    assert np.array_equal(a, b)
    assert N.TensorTrain.random((2, 3), 2, seed=np.random.default_rng(1)).shape == (2, 3)
    assert np.array_equal(N.TensorTrain.random((2, 3), 2, seed=[1, 2]).to_dense(),
                          N.TensorTrain.random((2, 3), 2, seed=(1, 2)).to_dense())


def test_factorize_parts_shortcut_matches_search():
    # the prime split with 1s is what the search returns when there are at least as many parts as prime factors
    assert N.factorize(12, 3) == (3, 2, 2) and N.factorize(30, 4) == (5, 3, 2, 1) and N.factorize(1, 2) == (1, 1)
    assert math.prod(N.factorize(2**10 * 3, 11)) == 2**10 * 3


@pytest.mark.parametrize("name", ["tdet", "newton_polytope", "kleene_star", "eigenvalue", "tropical_rank", "matmul",
                                  "contract", "tt_svd", "dense", "tropicality"])
def test_meta_tensors_raise_argument_type_error(name):
    """torch tensors on the 'meta' device have no values: they raised raw RuntimeErrors ("Tensor.item() cannot be
    called on meta tensors") or NotImplementedError from deep inside the NaN check or the NumPy conversion."""
    m = torch.zeros(3, 3, device="meta")
    calls = {
        "tdet": lambda: T.tdet(m), "newton_polytope": lambda: T.newton_polytope(torch.zeros(3, 2, device="meta")),
        "kleene_star": lambda: T.kleene_star(m), "eigenvalue": lambda: T.eigenvalue(m),
        "tropical_rank": lambda: T.tropical_rank(m), "matmul": lambda: T.matmul(m, m),
        "contract": lambda: N.contract("ij,jk->ik", m, m), "tt_svd": lambda: N.tt_svd(m, eps=0.1),
        "dense": lambda: A.dense(m, m, m), "tropicality": lambda: A.tropicality(m, m),
    }
    with pytest.raises(ArgumentTypeError, match="meta"):
        calls[name]()
