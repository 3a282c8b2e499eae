"""Regressions from a review of TT-matrices, PEPS, the problem builders and the tensornetwork interop.

Each test failed before its fix (see the docstrings for what went wrong)."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from tropix import MaxPlus, MinPlus
from tropix.errors import ArgumentTypeError, DomainError, FloatOverflowError, ParseError, ShapeError
from tropix.tn import PEPS, TensorTrain, TTMatrix, contract
from tropix.tn.problems import spin_glass_energy, spin_glass_network

from conftest import exact_fractions as _frac, exact_tt as _exact_tt, exact_ttm as _exact_ttm, exact_sq as _sq



# -- TTMatrix ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtypes", [(np.float64, np.float32, np.float32), (np.float64, np.float64, np.float32)])
def test_apply_bound_with_cores_of_mixed_precision(lib, dtypes):
    """``apply`` took the unit roundoff of the first product core for all of them: a float64 first core with
    float32 later cores got a float64-sized bound (8e-13) for a float32-sized error (2.8e-6)."""
    rng = np.random.default_rng(0)
    rd, cd, rs = (2, 3, 2), (3, 2, 2), (1, 3, 3, 1)
    conv = torch.from_numpy if lib == "torch" else (lambda a: a)
    W = TTMatrix(tuple(conv(rng.standard_normal((rs[k], rd[k], cd[k], rs[k + 1])).astype(dtypes[k])) for k in range(3)))
    x = TensorTrain(tuple(conv(rng.standard_normal((rs[k], cd[k], rs[k + 1])).astype(dtypes[k])) for k in range(3)))
    y = W.apply(x)
    exact = _sq(_exact_ttm(W).dot(_exact_tt(x.cores)) - _exact_tt(y.cores))
    assert exact > 0
    assert exact <= Fraction(y.error_bound) ** 2


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("dtypes", [(np.float64, np.float32, np.float32), (np.float64, np.float64, np.float32)])
def test_hadamard_bound_with_cores_of_mixed_precision(lib, dtypes):
    """``TensorTrain.hadamard`` likewise took the first product core's unit roundoff for all of them (bound
    3.3e-15 for an error of 4.5e-8)."""
    rng = np.random.default_rng(1)
    rs = (1, 2, 3, 1)
    conv = torch.from_numpy if lib == "torch" else (lambda a: a)

    def train():
        return TensorTrain(tuple(conv(rng.standard_normal((rs[k], 3, rs[k + 1])).astype(dtypes[k])) for k in range(3)))

    x, y = train(), train()
    h = x.hadamard(y)
    exact = _sq(_exact_tt(x.cores) * _exact_tt(y.cores) - _exact_tt(h.cores))
    assert exact > 0
    assert exact <= Fraction(h.error_bound) ** 2


def test_from_dense_checks_the_given_dims_before_deriving_the_other():
    """``row_dims=4`` (a bare int) with ``col_dims`` omitted raised a raw TypeError (``len(4)``)."""
    W = np.ones((4, 6))
    with pytest.raises(ArgumentTypeError, match="row_dims"):
        TTMatrix.from_dense(W, 4)
    with pytest.raises(ArgumentTypeError, match="col_dims"):
        TTMatrix.from_dense(W, None, 6)
    assert TTMatrix.from_dense(W, (2, 2)).col_dims == (3, 2)


def test_dense_products_refuse_trains_by_name():
    """``T @ T`` (and ``matmat`` of a TTMatrix) raised a raw AttributeError (a TTMatrix has a shape but no
    dtype)."""
    T = TTMatrix.from_dense(np.eye(4), (2, 2), (2, 2))
    for f in (lambda: T @ T, lambda: T.matmat(T), lambda: T.rmatmat(T), lambda: T.matmat_rounding_bound(T.to_tt())):
        with pytest.raises(ArgumentTypeError, match="dense array"):
            f()


def test_rmatmat_shape_error_names_its_own_shapes():
    """A wrong ``X`` for ``X @ W`` was reported in terms of the transposed product ("(12,) or (12, B) for a
    6×12 TT-matrix" for a 12×6 operator); for a matrix the shape printed was X transposed."""
    T = TTMatrix.from_dense(np.random.default_rng(1).standard_normal((12, 6)), (3, 4), (3, 2))
    for f in (T.rmatmat, T.rmatmat_rounding_bound):
        with pytest.raises(ShapeError, match=r"\(12,\) or \(B, 12\).*got \(6,\)"):
            f(np.ones(6))
        with pytest.raises(ShapeError, match=r"got \(2, 6\)"):
            f(np.ones((2, 6)))
    assert T.rmatmat(np.ones((2, 12))).shape == (2, 6)


# -- PEPS ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vectors", [
    [[np.array([1e200, 0.0]), np.array([1e-200, 0.0])]],  # a site's double layer overflows: inf · 0 = NaN
    [[np.array([1e200, 0.0]), np.array([1e200, 0.0])]],  # the value overflows
    [[np.array([math.inf, 1.0])]],
])
def test_single_row_boundary_contraction_does_not_return_inf_or_nan(vectors):
    """One row with ``chi`` returned NaN or inf as the value; the exact path and several rows raise."""
    psi = PEPS.product_state(vectors) if math.isfinite(vectors[0][0][0]) else PEPS(
        ((vectors[0][0].reshape(2, 1, 1, 1, 1),),))
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(FloatOverflowError):
        psi.norm_squared()
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(FloatOverflowError):
        psi.norm_squared(chi=1)


def test_single_row_boundary_contraction_still_exact():
    psi = PEPS.random(1, 4, phys_dim=2, bond_dim=3, seed=3)
    v = np.asarray(psi.to_dense()).reshape(-1)
    assert math.isclose(psi.norm_squared(chi=1).value, float(v @ v), rel_tol=1e-12)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_boundary_cores_do_not_drift_out_of_range(lib):
    """Columns of scale 0.1 and 10 (every row contributes 1, value 1): normalising the boundary by its norm left
    its two cores drifting apart by 1e±2 per row, and the boundary raised FloatOverflowError after 154 rows."""
    conv = torch.from_numpy if lib == "torch" else (lambda a: a)
    psi = PEPS.product_state([[conv(np.array([0.1, 0.0])), conv(np.array([10.0, 0.0]))] for _ in range(200)])
    assert math.isclose(psi.norm_squared(chi=1).value, 1.0, rel_tol=1e-12)
    if lib == "torch":
        return
    rnd = PEPS.random(160, 2, 2, 2, seed=0)
    small = PEPS(tuple((r[0] * 0.1, r[1] * 10) for r in rnd.tensors))
    a, b = rnd.norm_squared(chi=4), small.norm_squared(chi=4)  # the same double layer up to a factor 1 per row
    assert math.isclose(a.value, b.value, rel_tol=1e-9) and a.value > 0


def test_boundary_of_rows_whose_product_underflows():
    """Rows of scale 1e-80, 1e-80, 1e80, 1e80 (value 1): the boundary after the second row had norm 1e-320, and
    normalising by 1/1e-320 = inf raised NaNError ("cannot multiply a tensor train by inf")."""
    psi = PEPS.product_state([[np.array([v, 0.0])] for v in (1e-80, 1e-80, 1e80, 1e80)])
    assert math.isclose(psi.norm_squared(chi=1).value, 1.0, rel_tol=1e-12)
    psi = PEPS.product_state([[np.array([v, 0.0])] for v in (1e-150,) * 3 + (1e150,) * 3])
    assert math.isclose(psi.norm_squared(chi=1).value, 1.0, rel_tol=1e-12)


def test_peps_site_that_is_not_an_array():
    """``PEPS([[[1.0]]])`` raised a raw AttributeError ('list' object has no attribute 'ndim')."""
    with pytest.raises(ArgumentTypeError, match=r"site \(0, 0\) must be an array"):
        PEPS([[[1.0]]])
    with pytest.raises(ArgumentTypeError, match=r"site \(0, 1\)"):
        PEPS([[np.ones((2, 1, 1, 1, 1)), 3.0]])


# -- problems ------------------------------------------------------------------------------------------------
def _brute_spin_glass(Jh, Jv, h, L, M):
    energies = []
    for sp in itertools.product([-1, 1], repeat=L * M):
        s = np.array(sp).reshape(L, M)
        e = -sum(int(Jh[r, k]) * int(s[r, k] * s[r, k + 1]) for r in range(L) for k in range(M - 1))
        e -= sum(int(Jv[r, k]) * int(s[r, k] * s[r + 1, k]) for r in range(L - 1) for k in range(M))
        if h is not None:
            e -= sum(int(h[r, k]) * int(s[r, k]) for r in range(L) for k in range(M))
        energies.append(e)
    e0 = min(energies)
    return e0, energies.count(e0)


@pytest.mark.parametrize("dtype,values", [
    (np.uint8, [200, 3, 255]),  # -J on uint8 wrapped: 200 became 56
    (np.int8, [-128, 127, 5]),  # -(-128) wrapped to -128
    (np.int64, [-2**63, 2**63 - 1, 1]),
    (np.uint64, [2**64 - 1, 2**63, 7]),
    (bool, [True, False, True]),  # raised a raw TypeError (numpy boolean negative)
    (object, [2**70, -2**70, 3]),  # raised OverflowError (Python int too large to convert to C long)
])
def test_spin_glass_integer_couplings_of_any_width_are_exact(dtype, values):
    L, M = 2, 2
    Jh = np.array([[values[0]], [values[1]]], dtype=dtype)
    Jv = np.array([[values[2], values[0]]], dtype=dtype)
    h = np.array([[values[1], values[2]], [values[2], values[0]]], dtype=dtype)
    for field in (None, h):
        sub, ops, path = spin_glass_network(Jh, Jv, field)
        e0, deg, conf = contract(sub, *ops, semiring=MinPlus, optimize=path, count=True, assignment=True)
        assert (e0, deg) == _brute_spin_glass(Jh, Jv, field, L, M)
        assert not isinstance(e0, float)
        s = np.array([[2 * conf[chr(ord("a") + r * M + c)] - 1 for c in range(M)] for r in range(L)])
        assert spin_glass_energy(s, Jh, Jv, field) == e0


def test_spin_glass_energy_is_exact_for_exact_couplings():
    """The energy went through float64: 2^60 + 1 came back as 2^60 (not equal to the exact ground energy the
    network contracts to), a Fraction coupling as a float."""
    Jh, Jv = np.array([[2**60 + 1]]), np.zeros((0, 2), dtype=int)
    sub, ops, path = spin_glass_network(Jh, Jv)
    e0 = contract(sub, *ops, semiring=MinPlus, optimize=path)
    assert spin_glass_energy(np.ones((1, 2)), Jh, Jv) == e0 == -(2**60 + 1)
    Jf = np.array([[Fraction(1, 3)]], dtype=object)
    assert spin_glass_energy(np.ones((1, 2)), Jf, np.zeros((0, 2), dtype=object)) == Fraction(-1, 3)
    batch = spin_glass_energy(np.ones((3, 2, 2)), np.ones((2, 1), dtype=int), np.ones((1, 2), dtype=int))
    assert list(batch) == [-4, -4, -4]
    assert spin_glass_energy(np.ones((2, 2)), np.ones((2, 1)), np.ones((1, 2))) == -4.0  # floats stay floats


def test_spin_glass_energy_refuses_spins_that_are_not_plus_minus_one():
    """0/1 spins (an assignment's index values) were silently given an energy."""
    with pytest.raises(DomainError, match="-1 or \\+1"):
        spin_glass_energy(np.array([[0, 1]]), np.ones((1, 1)), np.zeros((0, 2)))
    with pytest.raises(DomainError):
        spin_glass_energy(np.array([[2, 1]]), np.ones((1, 1)), np.zeros((0, 2)))


# -- tensornetwork interop -----------------------------------------------------------------------------------
def test_output_edge_order_must_list_the_dangling_edges_once():
    """An omitted dangling edge was summed over ('ab->a') and a connected edge kept as an output index, silently,
    where tensornetwork's contractors refuse both."""
    import tensornetwork as tn

    from tropix.tn.interop import contract_tensornetwork, from_tensornetwork

    a = tn.Node(np.arange(6.0).reshape(2, 3))
    with pytest.raises(ParseError, match="omits"):
        from_tensornetwork([a], [a[0]])
    with pytest.raises(ParseError, match="twice"):
        from_tensornetwork([a], [a[0], a[0], a[1]])
    a, b = tn.Node(np.arange(6.0).reshape(2, 3)), tn.Node(np.arange(3.0))
    a[1] ^ b[0]
    with pytest.raises(ParseError, match="not a dangling edge"):
        contract_tensornetwork([a, b], [a[0], a[1]], semiring=MaxPlus)
    assert np.array_equal(contract_tensornetwork([a, b], [a[0]]), np.arange(6.0).reshape(2, 3) @ np.arange(3.0))
    with pytest.raises(ArgumentTypeError, match="tensornetwork nodes"):
        from_tensornetwork([np.ones(2)])


def test_to_tensornetwork_checks_shapes():
    """Mismatched index sizes raised tensornetwork's raw ValueError, a wrong number of dimensions IndexError."""
    from tropix.tn.interop import to_tensornetwork

    with pytest.raises(ShapeError, match="index 'j'"):
        to_tensornetwork("ij,jk->ik", np.ones((2, 3)), np.ones((2, 2)))
    with pytest.raises(ShapeError, match="3 dimensions"):
        to_tensornetwork("ij,jk->ik", np.ones((2, 3, 1)), np.ones((3, 2)))


def test_intermediates_beyond_64_indices_raise_size_limit_error():
    """The exact contraction of a 50 x 2 product-state PEPS builds an intermediate with 66 indices (all of size
    1): NumPy raised a raw ValueError from a reshape; now a SizeLimitError says why, and the boundary
    contraction, whose intermediates stay small, gives the value."""
    from tropix.errors import SizeLimitError

    p = PEPS.product_state([[[1.0, 0.0]] * 2] * 50)
    with pytest.raises(SizeLimitError, match="66 indices"):
        p.norm_squared()
    assert p.norm_squared(chi=2).value == 1.0
