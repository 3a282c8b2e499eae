"""Adversarial audit of the certified attention bounds.

Every certified method must return ``|output_i - o_i| <= bound_i`` where ``o_i`` is the exact attention of the
given inputs, and ``bound_i <= eps * max|v|`` (or the rounding floor).  Here ``o_i`` is computed independently in
``np.longdouble`` (80-bit on x86: unit roundoff ``2^-64``) from the exact float inputs, and only that reference's
own rounding bound is allowed as slack.  Inputs are the corners where a certificate can break: float32 outputs,
``eps >= 2``, tiny and subnormal values (norms whose squares underflow), scores near float32/float64 overflow,
single keys, ties, identical keys, ``scale = 0`` or negative, fully masked rows, causal masks with
``n_q > n_k``, ``-inf`` biases, batched heads with different masks, multi-block screening in bfloat16 and
float32, prebuilt trees and both hierarchical paths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tropix._array import to_numpy
from tropix.attention import (auto, build_key_tree, compress_projections, dense, hierarchical, region_sparse, screened,
                              tropical, tt_compressed)
from tropix.attention.bounds import rounding_bound
from tropix.errors import BoundViolationError

LD = np.longdouble

METHODS = {
    "region_sparse": region_sparse,
    "region_sparse_leaf8": lambda *a, **kw: region_sparse(*a, leaf=8, **kw),
    "region_sparse_nothreshold": lambda *a, **kw: region_sparse(*a, leaf=8, threshold=False, **kw),
    "region_sparse_screen": lambda *a, **kw: region_sparse(*a, leaf=8, screen=True, **kw),
    "screened": screened,
    "screened_f32": lambda *a, **kw: screened(*a, precision="float32", **kw),
    "screened_bf16": lambda *a, **kw: screened(*a, precision="bf16", **kw),
    "screened_int8": lambda *a, **kw: screened(*a, precision="int8", **kw),
    "hierarchical": hierarchical,
    "hierarchical_descent": lambda *a, **kw: hierarchical(*a, leaf=4, descent=True, **kw),
    "hierarchical_leaves": lambda *a, **kw: hierarchical(*a, leaf=4, descent=False, **kw),
    "auto": lambda *a, **kw: auto(*a, min_keys=8, min_queries_for_tree=4, **kw),
    "auto_default": auto,
}


def reference(q, k, v, mask=None, bias=None, scale=None, causal=False):
    """Softmax attention in long double from the exact float inputs, and its own rounding bound per row."""
    q, k, v = (np.asarray(to_numpy(x)) for x in (q, k, v))
    d = q.shape[-1]
    sc = 1.0 / math.sqrt(d) if scale is None else float(scale)
    S = np.einsum("...id,...jd->...ij", q.astype(LD), k.astype(LD)) * LD(sc)
    E = np.zeros(S.shape, dtype=LD)
    if bias is not None:
        E = E + np.asarray(to_numpy(bias)).astype(LD)
    if mask is not None:
        E = np.where(np.broadcast_to(np.asarray(to_numpy(mask)), S.shape), E, LD(-np.inf))
    if causal:
        E = np.where(np.arange(k.shape[-2])[None, :] <= np.arange(q.shape[-2])[:, None], E, LD(-np.inf))
    S = S + E
    m = S.max(axis=-1, keepdims=True)
    fin = np.isfinite(m)
    W = np.exp(S - np.where(fin, m, 0))
    Z = W.sum(axis=-1, keepdims=True)
    o = np.where(fin, np.einsum("...ij,...jd->...id", W, v.astype(LD)) / np.where(Z > 0, Z, 1), 0)
    f = lambda x: np.sqrt(np.sum(np.asarray(x, dtype=LD) ** 2, axis=-1)).astype(np.float64)  # noqa: E731
    bm = 0.0
    if bias is not None:
        b = np.asarray(to_numpy(bias), dtype=np.float64)
        bm = float(np.where(np.isfinite(b), np.abs(b), 0.0).max())
    # long double has the exponent range to square every float64 (no underflow): the relative model holds
    slack = rounding_bound(f(q), f(k).max(axis=-1)[..., None], bm, k.shape[-2], d, f(v).max(axis=-1)[..., None],
                           sc, LD)
    return o, slack


def certify(res, q, k, v, eps, **kw):
    """Assert the certificate of ``res`` against the long-double reference; return the errors."""
    o, slack = reference(q, k, v, **kw)
    out = np.asarray(to_numpy(res.output)).astype(LD)
    err = np.sqrt(np.sum((out - o) ** 2, axis=-1)).astype(np.float64)
    b = np.asarray(res.bound)
    assert not np.any(np.isnan(b)), f"{res.method}: NaN bound {b}"
    ok = err <= b + slack
    assert np.all(ok), (f"{res.method}: error {err[~ok][:3]} > bound {b[~ok][:3]} (eps={eps}, vmax={res.vmax})")
    vmax = np.asarray(res.vmax)[..., None]
    within = (b <= eps * vmax * (1 + 1e-12)) | (b <= np.asarray(res.reference_slack) * (1 + 1e-12))
    assert np.all(within), f"{res.method}: bound {b[~within][:3]} above eps * vmax = {eps * vmax.ravel()[:3]}"
    return err


def run_all(q, k, v, eps, names=tuple(METHODS), **kw):
    for name in names:
        res = METHODS[name](q, k, v, eps=eps, **kw)
        certify(res, q, k, v, eps, **kw)


# ---------------------------------------------------------------------------------------------------- violations
# Each of these failed before the fix named in its docstring.


@pytest.mark.parametrize("eps", [0.0, 1e-3])
@pytest.mark.parametrize("name", ["region_sparse", "screened", "hierarchical_leaves", "hierarchical_descent"])
def test_float32_output_rounding_is_in_the_bound(name, eps):
    """float32 input: the float64 output was rounded to float32 outside the bound (error 1.8e-8, bound 1.3e-11);
    check=True compared with float32 dense attention but allowed only float64 slack (false alarm 5e-7)."""
    rng = np.random.default_rng(0)
    q = (10 * rng.normal(size=(8, 16))).astype(np.float32)
    k, v = rng.normal(size=(500, 16)).astype(np.float32), rng.normal(size=(500, 4)).astype(np.float32)
    res = METHODS[name](q, k, v, eps=eps, check=True)
    assert res.output.dtype == np.float32
    certify(res, q, k, v, eps)
    tq, tk, tv = (torch.tensor(x) for x in (q, k, v))
    res = METHODS[name](tq, tk, tv, eps=eps, check=True)
    assert res.output.dtype == torch.float32
    certify(res, q, k, v, eps)


@pytest.mark.parametrize("vscale", [1.0, 1e39, 1e300, 1e-50])
def test_mixed_dtypes_float32_scores_float64_values(vscale):
    """float32 q, k with float64 v: the sparse methods returned q's dtype, so values of 1e39 or 1e300 became
    inf (infinite error, bound 2e32), while dense/auto returned float64; the output now has the promoted dtype
    (as dense), and dense's bound counts underflow in the dtype the values are accumulated in."""
    rng = np.random.default_rng(2)
    q, k = (5 * rng.normal(size=(6, 8))).astype(np.float32), rng.normal(size=(600, 8)).astype(np.float32)
    v = vscale * rng.normal(size=(600, 3))
    for name in ("region_sparse", "screened", "hierarchical", "auto", "auto_default"):
        res = METHODS[name](q, k, v, eps=1e-3)
        assert res.output.dtype == np.float64
        certify(res, q, k, v, 1e-3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_array_api_strict_dtypes(dtype):
    """array_api_strict dtypes print as 'array_api_strict.float32': dense's rounding bound took them for float64
    (auto's dense path on float32 input certified with a float64 rounding bound)."""
    import array_api_strict as xs
    rng = np.random.default_rng(3)
    arrays = [xs.asarray(x, dtype=getattr(xs, dtype))
              for x in (5 * rng.normal(size=(6, 8)), rng.normal(size=(600, 8)), rng.normal(size=(600, 3)))]
    q, k, v = (np.asarray(x) for x in arrays)
    for name in ("region_sparse", "screened", "auto_default"):
        res = METHODS[name](*arrays, eps=1e-3, check=True)
        certify(res, q, k, v, 1e-3)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 300])
@pytest.mark.parametrize("eps", [1.99, 2.0, 5.0, 1e6])
def test_eps_at_least_two(n, eps):
    """eps >= 2: the budget beta ~ 1e300 made the key threshold drop every key (Z = 0), and screened then put
    Z_lo = 1 instead of 0 in truncation_bound (n = 1, eps = 5: error 0.26, bound 0.13); eps = 2 with few keys
    gave a negative margin and crashed (ValueError: negative dimensions)."""
    rng = np.random.default_rng(n)
    q, k, v = 3 * rng.normal(size=(4, 3)), rng.normal(size=(n, 3)), rng.normal(size=(n, 2))
    run_all(q, k, v, eps, names=("screened", "screened_f32", "region_sparse", "hierarchical_descent"))


@pytest.mark.parametrize("vscale", [1e-170, 1e-200, 1e-300, 1e-310, 1e-320])
def test_tiny_values(vscale):
    """|v| below ~1e-154: |v|^2 underflowed, vmax = 0 and every bound 0 while the output had ordinary rounding
    errors (v ~ 1e-200: error 4.6e-316, bound 0); region_sparse's |o| (np.linalg.norm) underflowed as well.
    Subnormal values need the absolute underflow term of rounding_bound."""
    rng = np.random.default_rng(1)
    q, k = 3 * rng.normal(size=(5, 4)), rng.normal(size=(400, 4))
    v = vscale * rng.normal(size=(400, 3))
    for eps in (0.0, 1e-3, 0.3):
        run_all(q, k, v, eps)


def test_query_beyond_float32_range():
    """|q| = 1e150, |k| = 1e-150 (|q||k| ~ 1): the scores are ordinary but q rounds to inf in float32; the
    screening scores were NaN, no key was collected and the rows passed as fully masked (output 0, bound 0)."""
    rng = np.random.default_rng(3)
    C = rng.normal(size=(20, 4))
    kk = C[rng.integers(0, 20, 400)] + 0.01 * rng.normal(size=(400, 4))
    q = 1e150 * np.concatenate([30 * kk[:3], 3 * rng.normal(size=(2, 4))])
    k, v = 1e-150 * kk, rng.normal(size=(400, 2))
    for eps in (0.0, 1e-3):
        run_all(q, k, v, eps)


@pytest.mark.parametrize("kscale", [1e160, 1e-160])
def test_huge_and_tiny_keys(kscale):
    """Keys of norm 1e160: the key tree's Gram matrix overflowed and build_key_tree raised LinAlgError."""
    rng = np.random.default_rng(4)
    C = rng.normal(size=(20, 4))
    kk = C[rng.integers(0, 20, 400)] + 0.01 * rng.normal(size=(400, 4))
    q, k, v = np.concatenate([30 * kk[:3], rng.normal(size=(2, 4))]) / kscale, kscale * kk, rng.normal(size=(400, 2))
    for eps in (0.0, 1e-3):
        run_all(q, k, v, eps)


@pytest.mark.parametrize("vscale", [1.0, 1e-200])
def test_hierarchical_far_field_tight_case(vscale):
    """500 keys at score 0 with v = +1, 7500 at score -12 with v = -1: the descent aggregates the far cluster and
    its error is within 0.03% of the bound; with v ~ 1e-200 |o| underflowed to 0 in the bound (np.sqrt of an
    einsum) and the bound was half the error (ratio 1.999)."""
    k = np.concatenate([np.zeros((500, 1)), -np.ones((7500, 1))])
    v = vscale * np.concatenate([np.ones((500, 1)), -np.ones((7500, 1))])
    q = np.array([[12.0]])
    for aggregate in (True, False):
        for descent in (True, False):
            res = hierarchical(q, k, v, eps=1e-3, scale=1.0, leaf=4, descent=descent, aggregate=aggregate)
            certify(res, q, k, v, 1e-3, scale=1.0)


@pytest.mark.parametrize("qscale", [1e160, 1e-160])
def test_tree_radii_of_tiny_keys(qscale):
    """Keys of norm 1e-160 queried at 1e160 (scores of order 1): squared distances underflowed, the key tree's
    radii (and the query groups' radii) came out 0 or too small, and the hierarchical descent pruned live
    keys (error 4.7e-4, bound 1.7e-9)."""
    rng = np.random.default_rng(0)
    C = rng.normal(size=(30, 3))
    kk = C[rng.integers(0, 30, 3000)] + 1e-3 * rng.normal(size=(3000, 3))
    q = qscale * np.concatenate([20 * kk[rng.integers(0, 3000, 48)] + 0.01 * rng.normal(size=(48, 3)),
                                 5 * rng.normal(size=(16, 3))])
    k, v = kk / qscale, rng.normal(size=(3000, 2))
    for eps in (1e-3, 0.1):
        run_all(q, k, v, eps, names=("region_sparse", "region_sparse_leaf8", "hierarchical_descent",
                                     "hierarchical_leaves", "screened"))


def test_fallback_recomputes_nan_bounds():
    """A NaN bound passes every comparison: the dense fallback must treat it as too large."""
    from tropix.attention.region_sparse import _fallback_rows

    class Head:
        vmax, n_k, extra = 1.0, 3, None
        rho = np.array([1e-15, 1e-15, np.inf, 1e-15])
        qs, k, v = np.ones((4, 2)), np.ones((3, 2)), np.ones((3, 1))

    bound = np.array([np.nan, 1e-4, np.inf, 0.5])
    out = np.zeros((4, 1))
    n, _ = _fallback_rows(Head, 1e-3, out, bound, np.zeros(4, dtype=np.int64), ())
    assert n == 3 and not np.any(np.isnan(bound)) and np.allclose(out[[0, 2, 3]], 1.0) and out[1, 0] == 0.0


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the scores overflow float64: numpy says so, rightly
def test_overflowing_scores_never_give_nan_bounds():
    """Scores beyond float64 (q.k ~ 1e400) with v = 0: the rounding bound was 0 * inf = NaN, a bound every
    comparison (and verify) silently passes, next to a NaN output."""
    rng = np.random.default_rng(5)
    q, k = 1e200 * rng.normal(size=(3, 4)), 1e200 * rng.normal(size=(1000, 4))
    for v in (np.zeros((1000, 2)), rng.normal(size=(1000, 2))):
        for name in ("screened", "auto", "auto_default"):
            res = METHODS[name](q, k, v, eps=1e-3)
            b = np.asarray(res.bound)
            assert not np.any(np.isnan(b))
            out = np.asarray(to_numpy(res.output))
            assert np.all(np.isinf(b[np.isnan(out).any(axis=-1)]))  # a NaN output is never certified


# ------------------------------------------------------------------------------------------- targeted corners


def _corner_cases():
    rng = np.random.default_rng(7)
    cases = []
    for s in [0.1, 0.3, 1.0, 5.0, 40.0, 800.0, 1e5]:
        cases.append((f"n2d1_{s}", np.array([[1.0]]), np.array([[0.0], [s]]), np.array([[1.0], [0.0]]), {"scale": 1.0}))
    cases.append(("single_key", rng.normal(size=(3, 4)), rng.normal(size=(1, 4)), rng.normal(size=(1, 2)), {}))
    cases.append(("v_zero", 10 * rng.normal(size=(5, 4)), rng.normal(size=(50, 4)), np.zeros((50, 3)), {}))
    k = rng.normal(size=(300, 4))
    cases.append(("scale_zero", rng.normal(size=(5, 4)), k, rng.normal(size=(300, 3)), {"scale": 0.0}))
    cases.append(("scale_negative", 10 * rng.normal(size=(5, 4)), k, rng.normal(size=(300, 3)), {"scale": -1.0}))
    cases.append(("q_zero", np.zeros((5, 4)), k, rng.normal(size=(300, 3)), {}))
    cases.append(("identical_keys", 10 * rng.normal(size=(5, 4)), np.tile(rng.normal(size=(1, 4)), (300, 1)),
                  rng.normal(size=(300, 3)), {}))
    cases.append(("ties", np.array([[1.0, 0.0]] * 3), np.array([[1.0, 0], [1.0, 0], [0, 1.0], [-1.0, 0]] * 50),
                  rng.normal(size=(200, 2)), {"scale": 30.0}))
    cases.append(("all_masked", 10 * rng.normal(size=(4, 3)), rng.normal(size=(100, 3)), rng.normal(size=(100, 2)),
                  {"mask": np.zeros(100, dtype=bool)}))
    mk = rng.random((6, 100)) < 0.1
    mk[2] = False
    cases.append(("masked_rows", 10 * rng.normal(size=(6, 3)), rng.normal(size=(100, 3)),
                  rng.normal(size=(100, 2)), {"mask": mk}))
    cases.append(("causal_nq_gt_nk", 10 * rng.normal(size=(20, 3)), rng.normal(size=(8, 3)),
                  rng.normal(size=(8, 2)), {"causal": True}))
    b = rng.normal(size=100)
    b[::3] = -np.inf
    cases.append(("neg_inf_bias", 10 * rng.normal(size=(4, 3)), rng.normal(size=(100, 3)),
                  rng.normal(size=(100, 2)), {"bias": b}))
    cases.append(("bias_gap", rng.normal(size=(4, 3)), rng.normal(size=(100, 3)), rng.normal(size=(100, 2)),
                  {"bias": np.where(np.arange(100) < 3, 0.0, -1e5)}))
    cases.append(("huge_bias", rng.normal(size=(4, 3)), rng.normal(size=(100, 3)), rng.normal(size=(100, 2)),
                  {"bias": 1e300 * rng.normal(size=(4, 100))}))
    bm = rng.random((3, 6, 200)) < 0.5
    bm[1] = False
    cases.append(("batched_masks", 10 * rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 200, 4)),
                  rng.normal(size=(3, 200, 2)), {"mask": bm}))
    cases.append(("one_heavy_value", 10 * rng.normal(size=(4, 3)), rng.normal(size=(200, 3)),
                  np.concatenate([1e6 * np.ones((1, 2)), rng.normal(size=(199, 2))]), {}))
    return cases


@pytest.mark.parametrize("case", _corner_cases(), ids=lambda c: c[0])
def test_corner_cases(case):
    _, q, k, v, kw = case
    for eps in (0.0, 1e-3, 0.9):
        run_all(q, k, v, eps, **kw)


def test_torch_float64_and_check():
    rng = np.random.default_rng(8)
    q, k, v = 10 * rng.normal(size=(2, 6, 8)), rng.normal(size=(2, 700, 8)), rng.normal(size=(2, 700, 3))
    mask = rng.random((2, 1, 700)) < 0.7
    tq, tk, tv, tm = (torch.tensor(x) for x in (q, k, v, mask))
    for name in ("region_sparse", "screened", "hierarchical", "auto"):
        res = METHODS[name](tq, tk, tv, eps=1e-3, mask=tm, check=True)
        certify(res, q, k, v, 1e-3, mask=mask)


# --------------------------------------------------------------------------------------------- multi-block paths


@pytest.mark.parametrize("precision", ["int8", "bf16", "float32"])
def test_screened_multiblock(precision):
    """n = 6000 keys: a small first block, the planned margins and the count levels of the later blocks."""
    rng = np.random.default_rng(9)
    n, d = 6000, 32
    k, v = rng.normal(size=(n, d)), rng.normal(size=(n, 4))
    q = np.concatenate([12 * rng.normal(size=(6, d)), 2.5 * k[rng.integers(0, n, 6)], k[-3:] * 4,
                        rng.normal(size=(2, d))])
    v[n - 1] *= 50  # a heavy value on a key seen only in the last block
    for eps in (0.0, 1e-3, 0.2):
        res = screened(q, k, v, eps=eps, precision=precision, check=eps > 0)
        certify(res, q, k, v, eps)
    # a mask and a bias through the float64 (masked) scan
    bias = np.where(rng.random(n) < 0.1, -np.inf, rng.normal(size=n))
    res = screened(q, k, v, eps=1e-3, precision=precision, bias=bias)
    certify(res, q, k, v, 1e-3, bias=bias)


def test_prebuilt_tree_and_hierarchical_paths():
    rng = np.random.default_rng(10)
    S = 10 * rng.normal(size=(8, 3))
    C = (S[:, None] + rng.normal(size=(8, 8, 3))).reshape(64, 3)
    k = C[rng.integers(0, 64, 4000)] + 0.05 * rng.normal(size=(4000, 3))
    v = rng.normal(size=(4000, 2))
    q = np.concatenate([4 * C[:10], rng.normal(size=(3, 3))])
    tree = build_key_tree(k, 32)
    for eps in (0.0, 1e-3, 0.1):
        certify(region_sparse(q, k, v, eps=eps, tree=tree), q, k, v, eps)
        certify(region_sparse(q, k, v, eps=eps, tree=tree, mask=np.arange(4000) % 7 != 0), q, k, v, eps,
                mask=np.arange(4000) % 7 != 0)
        for descent in (True, False):
            certify(hierarchical(q, k, v, eps=eps, tree=tree, descent=descent), q, k, v, eps)
            certify(hierarchical(q, k, v, eps=eps, tree=tree, descent=descent, aggregate=False), q, k, v, eps)
        certify(auto(q, k, v, eps=eps, tree=tree, min_keys=8), q, k, v, eps)


def test_tt_compressed_against_exact_weights():
    rng = np.random.default_rng(11)
    W = [rng.normal(size=(16, 8)) / 4 for _ in range(3)]
    X = rng.normal(size=(12, 16))
    P = compress_projections(*W, eps=0.05)
    for kw in ({}, {"eps": 1e-3}, {"attention_tt_eps": 0.3}, {"causal": True}):
        res = tt_compressed(X, X, P, weights=W, check=True, **kw)
        q, k, v = X @ W[0], X @ W[1], X @ W[2]  # float64 products: their rounding is inside the reference slack
        o, slack = reference(q, k, v, causal=kw.get("causal", False))
        err = np.sqrt(np.sum((np.asarray(res.output).astype(LD) - o) ** 2, axis=-1)).astype(np.float64)
        assert np.all(err <= res.bound + slack + 1e-13 * np.abs(X).max() ** 2)


@pytest.mark.parametrize("xscale", [1e-170, 1e-200])
def test_tt_compressed_tiny_hidden_states(xscale):
    """Hidden states of 1e-170 (normal floats): np.linalg.norm squared them to 0, so every term of the bound
    vanished (bound 4e-322, error 1.7e-187)."""
    rng = np.random.default_rng(13)
    W = [rng.normal(size=(16, 8)) / 4 for _ in range(3)]
    P = compress_projections(*W, eps=0.1)
    X = xscale * rng.normal(size=(12, 16))
    q, k, v = (X.astype(LD) @ w.astype(LD) for w in W)
    o, slack = reference(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64))
    for kw in ({}, {"eps": 1e-3}, {"attention_tt_eps": 0.3}):
        res = tt_compressed(X, X, P, weights=W, check=True, **kw)
        err = np.sqrt(np.sum((np.asarray(res.output).astype(LD) - o) ** 2, axis=-1)).astype(np.float64)
        assert np.all(err <= res.bound + slack) and np.all(res.bound < 1e-12 * xscale)


# ------------------------------------------------------------------------------------------------ hypothesis


@st.composite
def attention_inputs(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.sampled_from([1, 2, 3, 17, 100, 700]))
    nq = draw(st.integers(1, 6))
    d = draw(st.sampled_from([1, 2, 3, 8]))
    geo = draw(st.sampled_from(["normal", "clusters", "lattice", "identical"]))
    if geo == "normal":
        k = rng.normal(size=(n, d))
    elif geo == "clusters":
        C = rng.normal(size=(max(1, n // 20), d))
        k = C[rng.integers(0, len(C), n)] + 0.01 * rng.normal(size=(n, d))
    elif geo == "lattice":
        k = rng.integers(-2, 3, size=(n, d)).astype(float)
    else:
        k = np.tile(rng.normal(size=(1, d)), (n, 1))
    qmode = draw(st.sampled_from(["random", "keys", "zero", "lattice"]))
    qs = draw(st.sampled_from([1.0, 10.0, 100.0]))
    if qmode == "random":
        q = qs * rng.normal(size=(nq, d))
    elif qmode == "keys":
        q = qs * k[rng.integers(0, n, nq)]
    elif qmode == "zero":
        q = np.zeros((nq, d))
    else:
        q = qs * rng.integers(-3, 4, size=(nq, d)).astype(float)
    v = draw(st.sampled_from([1.0, 1e-5, 1e5, 1e-200])) * rng.normal(size=(n, draw(st.sampled_from([1, 3]))))
    kw = {}
    extra = draw(st.sampled_from(["none", "keymask", "mask", "causal", "bias"]))
    if extra == "keymask":
        kw["mask"] = rng.random(n) < draw(st.sampled_from([0.05, 0.5, 0.95]))
    elif extra == "mask":
        kw["mask"] = rng.random((nq, n)) < 0.3
    elif extra == "causal":
        kw["causal"] = True
    elif extra == "bias":
        b = 10 * rng.normal(size=n)
        b[rng.random(n) < 0.3] = -np.inf
        kw["bias"] = b
    scale = draw(st.sampled_from([None, None, 0.0, -1.0, 7.0]))
    if scale is not None:
        kw["scale"] = scale
    eps = draw(st.sampled_from([0.0, 1e-8, 1e-3, 0.1, 1.0, 1.99, 3.0]))
    f32 = draw(st.booleans()) and draw(st.booleans())
    if f32:
        q, k, v = q.astype(np.float32), k.astype(np.float32), v.astype(np.float32)
    return q, k, v, eps, kw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attention_inputs())
def test_hypothesis_every_method_certified(args):
    q, k, v, eps, kw = args
    run_all(q, k, v, eps, names=tuple(n for n in METHODS if n != "auto_default"), **kw)


def test_verify_catches_a_wrong_output():
    """The checker itself can fail: a perturbed output beyond its bound raises."""
    rng = np.random.default_rng(12)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(50, 4)), rng.normal(size=(50, 2))
    res = screened(q, k, v, eps=1e-3)
    o, _ = reference(q, k, v)
    with pytest.raises(BoundViolationError):
        res.verify(np.asarray(o, dtype=np.float64) + 2e-3 * float(res.vmax))
    nan_out = np.asarray(res.output).copy()
    nan_out[1, 0] = np.nan
    with pytest.raises(BoundViolationError):  # a NaN output with a finite bound is never certified
        type(res)(nan_out, res.bound, res.eps, res.vmax, res.support, res.method).verify(o.astype(np.float64))
    with pytest.raises(BoundViolationError):  # nor is a NaN bound
        type(res)(res.output, np.full(3, np.nan), res.eps, res.vmax, res.support, res.method).verify(
            o.astype(np.float64))
    with pytest.raises(AssertionError):
        bad = type(res)(np.asarray(res.output) + 1e-2, res.bound, res.eps, res.vmax, res.support, res.method)
        certify(bad, q, k, v, 1e-3)


def test_torch_bfloat16_input_is_read_exactly_and_certified():
    """torch bfloat16 (which NumPy lacks) is read as float32, exactly; the output keeps bfloat16 and the bound
    covers its rounding (it cannot be below 2^-8 |o|: the request is then not reachable, and the bound says so)."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(8, 16, generator=g).to(torch.bfloat16)
    k = torch.randn(300, 16, generator=g).to(torch.bfloat16)
    v = torch.randn(300, 4, generator=g).to(torch.bfloat16)
    ref = dense(q.float().double(), k.float().double(), v.float().double()).numpy()
    for fn in (dense, screened, region_sparse):
        r = fn(q, k, v) if fn is dense else fn(q, k, v, eps=1e-3, check=True)
        out = (r if fn is dense else r.output)
        assert out.dtype == torch.bfloat16
        if fn is not dense:
            err = np.linalg.norm(out.float().numpy() - ref, axis=-1)
            assert np.all(err <= r.bound + r.reference_slack)


# -- found by an exploratory review (session 14) --------------------------------------------------------------
def test_float16_dense_with_a_mask_or_causal():
    """The compiled masked-row helpers have no float16 (numba): NotImplementedError."""
    q, k, v = np.ones((2, 2), np.float16), np.ones((3, 2), np.float16), np.arange(3, dtype=np.float16)[:, None]
    ref = dense(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), causal=True)
    out = dense(q, k, v, causal=True)
    assert out.dtype == np.float16 and np.allclose(out, ref, atol=1e-3)
    m = np.array([True, False, True])
    assert np.allclose(dense(q, k, v, mask=m), dense(*(x.astype(np.float64) for x in (q, k, v)), mask=m), atol=1e-3)
    assert auto(q, k, v, eps=0.5, causal=True, check=True).output.dtype == np.float16


@pytest.mark.parametrize("lib", ["torch", "strict"])
def test_nested_list_mask_and_bias_with_other_libraries(lib):
    import array_api_strict as xs

    T = torch.tensor if lib == "torch" else xs.asarray
    q, k, v = np.zeros((2, 2)), np.zeros((3, 2)), np.arange(3.0).reshape(3, 1)
    want = dense(q, k, v, mask=[True, False, True])
    for kw in ({"mask": [True, False, True]}, {"bias": [0.0, -math.inf, 0.0]}, {"bias": [[0.0, -math.inf, 0.0]] * 2}):
        for f in (dense, region_sparse, auto):
            r = f(T(q), T(k), T(v), **kw) if f is dense else f(T(q), T(k), T(v), eps=1e-3, check=True, **kw).output
            assert np.allclose(np.asarray(to_numpy(r)), want)
    assert np.allclose(np.asarray(to_numpy(dense(T(q), T(k), T(v), mask=True))), dense(q, k, v))


@pytest.mark.parametrize("d", [17, 64, 129])
def test_tropical_identical_keys_always_tie(d):
    """Five copies of a key: a GEMM rounded the same dot product differently in a remainder column, so one copy
    was dropped, and the average depended on the keys' strides."""
    rng = np.random.default_rng(d)
    for _ in range(5):
        q = rng.normal(size=(3, d))
        k = np.concatenate([np.repeat(rng.normal(size=(1, d)), 5, axis=0), rng.normal(size=(4, d)) - 10])
        v = np.eye(9)
        for kk, vv in ((k, v), (k[::-1], v[::-1]), (np.asfortranarray(k), v)):
            out = tropical(q, kk, vv)
            assert np.allclose(out[:, :5], np.where(out[:, :5].sum(axis=1, keepdims=True) > 0.5, 0.2, 0.0))
        qt = torch.tensor(q[None])
        assert torch.allclose(tropical(qt, torch.tensor(k[None]), torch.tensor(v[None]))[0], torch.tensor(tropical(q, k, v)))


def test_fully_masked_rows_have_bound_zero_in_every_method():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(2, 4)), rng.normal(size=(50, 4)), rng.normal(size=(50, 3))
    mask = np.ones((2, 50), bool)
    mask[1] = False
    bias = np.zeros((2, 50))
    bias[0] = -math.inf
    for f in (region_sparse, hierarchical, screened, auto):
        r = f(q, k, v, mask=mask, eps=1e-3, check=True)
        assert r.bound[1] == 0 and r.bound[0] > 0 and not np.any(r.output[1])
        assert f(q, k, v, bias=bias, eps=1e-3, check=True).bound[0] == 0


def test_kept_keys_index_like_a_sequence():
    from tropix.errors import ShapeError

    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(50, 4)), rng.normal(size=(50, 2))
    r = region_sparse(q, k, v, eps=1e-3)
    assert np.array_equal(r.kept_keys(-1), r.kept_keys(2))
    with pytest.raises(ShapeError, match="query 7 out of range"):
        r.kept_keys(7)
    with pytest.raises(ShapeError):
        r.kept_keys(-4)


def test_tropical_exact_input_with_a_float_scale():
    """A float scale is the exact dyadic rational it stores (0.5 raised 'needs an exact scale')."""
    from fractions import Fraction

    out = tropical([[1, 0]], [[1, 0], [0, 1]], [[1], [2]], scale=0.5)
    assert out.dtype == object and out.tolist() == [[1]]
    out = tropical([[1, 1]], [[1, 0], [0, 1]], [[1], [2]], scale=0.1)  # a tie at 0.1, exactly
    assert out.tolist() == [[Fraction(3, 2)]]


@pytest.mark.parametrize("eps", [2.0, 1e9, 1e300])
def test_auto_with_a_huge_tolerance(eps):
    """eps >= 2 allows any output: auto's screen estimate took log(8 n / inf) (math domain error)."""
    import warnings

    rng = np.random.default_rng(0)
    q, k, v = 3 * rng.normal(size=(64, 32)), rng.normal(size=(16384, 32)), rng.normal(size=(16384, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = auto(q, k, v, eps=eps, check=True)
    assert np.all(r.relative_bound <= max(eps, 2.0) * (1 + 1e-6))


def test_method_options_are_validated():
    """A reviewer's list: cap=-1 (NumPy's negative dimension), cap='a' (int()'s ValueError), cap=2.5
    (truncated), sample=0 (empty reduction), min_keys='a' (TypeError deep inside), max_support=-1 and
    min_work=None (accepted), leaf=0 (clamped), descent='False' (ran the descent), tree='abc' (AttributeError)."""
    from tropix.errors import ArgumentTypeError, ToleranceError

    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(8, 4)), rng.normal(size=(300, 4)), rng.normal(size=(300, 2))
    A = dict(min_keys=0, min_work=0, min_queries_for_tree=0)
    bad = [(lambda: screened(q, k, v, cap=-1), ToleranceError), (lambda: screened(q, k, v, cap="a"), ArgumentTypeError),
           (lambda: screened(q, k, v, cap=2.5), ArgumentTypeError), (lambda: auto(q, k, v, sample=0, **A), ToleranceError),
           (lambda: auto(q, k, v, min_keys="a"), ArgumentTypeError), (lambda: auto(q, k, v, max_support=-1), ToleranceError),
           (lambda: auto(q, k, v, min_work=None), ArgumentTypeError),
           (lambda: build_key_tree(k, leaf=0), ToleranceError), (lambda: hierarchical(q, k, v, descent="False"), ArgumentTypeError),
           (lambda: region_sparse(q, k, v, group="x"), ArgumentTypeError), (lambda: region_sparse(q, k, v, tree="abc"), ArgumentTypeError),
           (lambda: hierarchical(q, k, v, leaf=-3), ToleranceError), (lambda: auto(q, k, v, tree=1), ArgumentTypeError)]
    for call, err in bad:
        with pytest.raises(err):
            call()
    # extreme legal values keep the guarantee
    for r in (auto(q, k, v, sample=1, check=True, **A), screened(q, k, v, cap=1, check=True),
              region_sparse(q, k, v, leaf=1, group=1, check=True), hierarchical(q, k, v, descent=False, check=True)):
        assert np.all(r.relative_bound <= 1e-3)


def test_tropical_nested_list_bias_with_torch():
    q, k, v = torch.randn(2, 4), torch.randn(3, 4), torch.randn(3, 2)
    bias = [[0.0, 1.0, -math.inf], [0.0, 0.0, 0.0]]
    got = tropical(q, k, v, bias=bias)
    want = tropical(q.numpy(), k.numpy(), v.numpy(), bias=np.array(bias))
    assert isinstance(got, torch.Tensor) and np.allclose(got.numpy(), want)


def test_tropical_rows_whose_scores_overflow_are_exact():
    """Regression: finite q and k whose scores overflow the float range: q = [[-1e200]], k = [[1e200], [2e200]]
    gave the output of a row that sees no key (both scores -inf), q = [[1e200]] a raw ConventionError (+inf is
    no element of max-plus); float16 scores overflow at 65504.  The rows are recomputed from the exact scores
    of the floats' values, and agree with the exact path on the same numbers."""
    from fractions import Fraction

    from tropix.attention import tropical

    v = np.array([[1.0], [0.0]])
    assert tropical(np.array([[1e200]]), np.array([[1e200], [1.0]]), v).tolist() == [[1.0]]
    assert tropical(np.array([[-1e200]]), np.array([[1e200], [2e200]]), v).tolist() == [[1.0]]
    assert tropical(np.array([[-1e200]]), np.array([[1e200], [2e200]]), v, semiring="min").tolist() == [[0.0]]
    t16 = tropical(*(torch.tensor(x, dtype=torch.float16) for x in ([[300.0]], [[300.0], [301.0]], [[1.0], [0.0]])))
    assert t16.dtype == torch.float16 and t16.tolist() == [[0.0]]
    rng = np.random.default_rng(7)
    for trial in range(20):
        q = rng.normal(size=(3, 4)) * 10.0 ** rng.integers(100, 160, size=(3, 1))
        k = rng.normal(size=(5, 4)) * 10.0 ** rng.integers(100, 160, size=(5, 1))
        k[3] = k[1]  # a tie
        v = rng.normal(size=(5, 2))
        kw = {}
        if trial % 3 == 1:
            kw["bias"] = np.where(rng.random((3, 5)) < 0.2, -np.inf, rng.normal(size=(3, 5)) * 1e300)
        if trial % 3 == 2:
            kw["mask"] = rng.random((3, 5)) < 0.7
        sr = "min" if trial % 2 else "max"
        if sr == "min" and "bias" in kw:
            kw["bias"] = -kw["bias"]
        got = tropical(q, k, v, scale=0.5, semiring=sr, **kw)
        F = np.vectorize(lambda x: Fraction(x) if math.isfinite(x) else float(x), otypes=[object])
        kwx = {n: (F(b) if n == "bias" else b) for n, b in kw.items()}
        want = tropical(F(q), F(k), F(v), scale=Fraction(1, 2), semiring=sr, **kwx)
        np.testing.assert_allclose(got, want.astype(float), rtol=1e-15, atol=0)


def test_dense_raises_when_scores_leave_the_float_range():
    """Regression: finite q and k whose scores overflow gave NaN (a +inf maximum) or the zero row of a query that
    sees no key (every score -inf) without a word; dense is the reference of every method."""
    from tropix.errors import FloatOverflowError

    v = np.array([[1.0], [0.0]])
    for q, k in (([[1e200]], [[1e200], [1.0]]), ([[-1e200]], [[1e200], [2e200]])):
        with pytest.raises(FloatOverflowError, match="leave the float range"):
            dense(np.array(q), np.array(k), v, scale=1.0)
        with pytest.raises(FloatOverflowError):
            dense(torch.tensor(q, dtype=torch.float64), torch.tensor(k, dtype=torch.float64), torch.tensor(v), scale=1.0)
    # float16 inputs are computed in float32 (scores 90000 and 90300 beyond float16's 65504 raised here): the
    # larger score's value, in float16
    out = dense(*(torch.tensor(x, dtype=torch.float16) for x in ([[300.0]], [[300.0], [301.0]], [[1.0], [0.0]])),
                scale=1.0)
    assert out.dtype == torch.float16 and out.tolist() == [[0.0]]
    with pytest.raises(FloatOverflowError):  # beyond float32 as well
        dense(*(torch.tensor(x, dtype=torch.float16) for x in ([[60000.0]], [[60000.0], [1.0]], [[1.0], [0.0]])),
              scale=1e30)
    # what stays legitimate: a fully masked row whose scores overflow, keys whose overflowed scores lose to a
    # finite maximum (weight 0), a huge finite bias
    assert dense(np.array([[1e200]]), np.array([[1e200], [1e200]]), v, scale=1.0,
                 mask=np.array([[False, False]])).tolist() == [[0.0]]
    assert dense(np.array([[-1e200]]), np.array([[1e200], [1.0]]), v, scale=1.0).tolist() == [[0.0]]
    assert dense(np.array([[1.0]]), np.array([[1.0], [1.0]]), v, scale=1.0,
                 bias=np.array([[1.7e308, -np.inf]])).tolist() == [[1.0]]


@pytest.mark.parametrize("lib, dtype, big", [("numpy", np.float16, 60000.0), ("torch", torch.float16, 60000.0),
                                             ("torch", torch.bfloat16, 3e38), ("numpy", np.float32, 3e38),
                                             ("numpy", np.float64, 1.5e308)])
def test_dense_sum_of_large_values_does_not_overflow(lib, dtype, big):
    """The weighted sum of the values left the float range before its division by the weights' sum (two tied
    float16 values 60000 gave inf); the output, a convex combination, is in range: half dtypes are computed in
    float32 and rounded once, and a sum that still overflows is redone with the values scaled by a power of 2."""
    conv = (lambda a: torch.tensor(a, dtype=dtype)) if lib == "torch" else (lambda a: np.asarray(a, dtype=dtype))
    q, k, v = conv([[1.0]]), conv([[1.0], [1.0], [1.0]]), conv([[big], [big], [big / 2]])
    out = dense(q, k, v)
    assert out.dtype == q.dtype
    got = float(np.asarray(out.float() if lib == "torch" else out, dtype=np.float64)[0, 0])
    want = float(np.sum(np.asarray(v.float() if lib == "torch" else v, dtype=np.float64)[:, 0] / 3))
    assert abs(got - want) <= 1e-2 * want
