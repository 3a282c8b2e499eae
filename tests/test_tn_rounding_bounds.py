"""Certified bounds that include floating-point rounding, checked against exact Fraction arithmetic.

* ``tt_svd`` / ``TTMatrix.from_dense``: ``error_bound`` is an a posteriori certificate of the stored cores
  (``tt_residual_bound``), so it must dominate the exact ``‖A − A_TT‖_F`` even when nothing is truncated;
* ``TTMatrix.matmat_rounding_bound`` / ``rmatmat_rounding_bound``: the unit roundoff is that of the dtype the
  products are computed in (float32 × float64 runs in float64).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np, exact_fractions as _frac, exact_tt as _exact_tt, exact_ttm as _exact_ttm, exact_sq as _sq
from tropix.tn import TensorTrain, TTMatrix, tt_svd
from tropix.tn._linalg import _right_operator_norms, conversion_error, tt_residual_bound

U64 = 2.0**-53


def _dominates(bound: float, exact_sq: Fraction) -> bool:
    return exact_sq <= Fraction(bound) ** 2


# -- tt_svd / TTMatrix.from_dense ---------------------------------------------------------------------------


def test_from_dense_full_rank_is_not_certified_as_exact():
    """The reported defect: 24 x 8 at eps = 1e-10 keeps every singular value; the old certificate was 0 although
    the stored cores differ from W (exact error ~1e-14).  The certificate must cover it, and stay tight."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((24, 8))
    for T in (TTMatrix.from_dense(W, eps=1e-10), TTMatrix.from_dense(W, (4, 6), (2, 4), eps=1e-10)):
        exact = _sq(_exact_ttm(T) - _frac(W))
        assert exact > 0  # the cores do not reproduce W exactly
        assert _dominates(T.error_bound, exact)
        assert T.error_bound <= 20 * _fsqrt(exact)
        assert T.error_bound <= 1e-10 * np.linalg.norm(W)


@st.composite
def _tensor_cases(draw):
    d = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=d, max_size=d)))
    seed = draw(st.integers(0, 2**20))
    spread = draw(st.sampled_from([0.0, 3.0]))
    rng = np.random.default_rng(seed)
    low = draw(st.booleans())
    if low and d > 1:  # exactly low rank before rounding: much of the spectrum at rounding level
        A = TensorTrain.random(shape, rank=draw(st.integers(1, 2)), seed=seed).to_dense()
    else:
        A = rng.standard_normal(shape) * 10.0 ** rng.uniform(-spread, spread, shape)
    eps = draw(st.sampled_from([1e-15, 1e-12, 1e-6, 0.05, 0.4]))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    return A.astype(dtype), eps


@settings(max_examples=60, deadline=None)
@given(_tensor_cases())
def test_tt_svd_certificate_dominates_exact_error_and_is_tight(case):
    A, eps = case
    tt = tt_svd(A, eps=eps)
    nrm = float(np.linalg.norm(A.astype(np.float64)))
    exact = _sq(_exact_tt(tt.cores) - _frac(A).reshape(-1))
    assert _dominates(tt.error_bound, exact)
    err = _fsqrt(exact)
    # tight: the exact error plus the rounding of the float64 residual evaluation (a few u·‖A‖_F here)
    assert tt.error_bound <= err * (1 + 1e-9) + 64 * A.ndim * max(A.shape) * U64 * nrm
    if eps >= 1e-6:  # eps semantics: the requested accuracy is met and certified
        assert tt.error_bound <= eps * nrm * (1 + 1e-9)


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([((2, 3), (3, 2)), ((2, 2, 2), (2, 1, 2)), ((4,), (3,)), ((3, 2), (2, 3)), (None, None)]),
    st.sampled_from([1e-14, 1e-8, 0.1]),
    st.integers(0, 2**20),
)
def test_from_dense_certificate_dominates_exact_error(dims, eps, seed):
    rd, cd = dims
    rng = np.random.default_rng(seed)
    M, N = (6, 6) if rd is None else (int(np.prod(rd)), int(np.prod(cd)))
    W = rng.standard_normal((M, 2)) @ rng.standard_normal((2, N)) + 1e-3 * rng.standard_normal((M, N))
    T = TTMatrix.from_dense(W, rd, cd, eps=eps, check=True)
    exact = _sq(_exact_ttm(T) - _frac(W))
    assert _dominates(T.error_bound, exact)
    assert T.error_bound <= _fsqrt(exact) * (1 + 1e-9) + 1e-13 * np.linalg.norm(W)


def test_rounding_on_top_of_a_full_budget_triggers_one_reduced_sweep():
    """A singular value just below the budget (1 − 1e-6)·eps·‖A‖: discarding it leaves no room for the rounding,
    so the certificate would exceed eps·‖A‖; the sweep is repeated with a reserve and keeps it."""
    rng = np.random.default_rng(1)
    U, _ = np.linalg.qr(rng.standard_normal((6, 3)))
    V, _ = np.linalg.qr(rng.standard_normal((5, 3)))
    eps = 1e-12
    s = np.array([1.0, 0.5, 0.0])
    s[2] = (1 - 1e-6) * eps * np.linalg.norm(s[:2])
    A = (U * s) @ V.T
    tt = tt_svd(A, eps=eps)
    assert tt.ranks == (1, 3, 1)
    assert tt.error_bound <= eps * np.linalg.norm(A)
    assert _dominates(tt.error_bound, _sq(_exact_tt(tt.cores) - _frac(A).reshape(-1)))
    coarse = tt_svd(A, eps=1e-9)  # far from the boundary: the small singular value is dropped, bound ≈ it
    assert coarse.ranks == (1, 2, 1)
    assert s[2] * (1 - 1e-3) <= coarse.error_bound <= s[2] * (1 + 1e-3)


@pytest.mark.parametrize("scale", [1e-200, 1e-160, 1e160, 1e200])
def test_tt_svd_at_extreme_scales(scale):
    """Squares of 1e±160 under/overflow: the sweep and the certificate work on power-of-two scaled data, so
    the result is the same relative to the scale (exact error via Fractions, which have no range limit)."""
    A = np.random.default_rng(2).standard_normal((3, 4, 5)) * scale
    for eps in (1e-14, 0.2):
        tt = tt_svd(A, eps=eps)
        nrm = math.sqrt(float(_sq(_frac(A)) / Fraction(scale) ** 2)) * scale
        exact = _sq(_exact_tt(tt.cores) - _frac(A).reshape(-1))
        assert _dominates(tt.error_bound, exact)
        err = math.sqrt(float(exact / Fraction(scale) ** 2)) * scale
        assert err <= eps * nrm and tt.error_bound <= max(eps * nrm, 10 * err)


def test_exact_input_is_certified_against_the_exact_tensor():
    """Fractions (1/3, 1/7, …) and integers beyond 2^53 are rounded on conversion to float64: the certificate
    bounds the distance to the exact input, not only to its float64 image."""
    rows = [[Fraction(1, 3 + i + j) for j in range(4)] for i in range(6)]
    T = TTMatrix.from_dense(rows, (2, 3), (2, 2), eps=1e-14)
    exact_W = np.array(rows, dtype=object)
    exact = _sq(_exact_ttm(T) - exact_W)
    assert _dominates(T.error_bound, exact) and exact > 0
    big = np.array([[2**60 + 1, 3], [5, 2**61 - 1]], dtype=np.int64)
    tt = tt_svd(big, eps=1e-14)
    exact = _sq(_exact_tt(tt.cores) - np.array([int(v) for v in big.ravel()], dtype=object))
    assert exact >= 1  # 2^60 + 1 is not a float64
    assert _dominates(tt.error_bound, exact)
    assert tt.error_bound <= 1e-13 * float(np.linalg.norm(big.astype(np.float64)))


def test_exact_input_certified_in_blocks(monkeypatch):
    """The residual pass with per-entry conversion bounds, over many row blocks (block size forced small)."""
    from tropix.tn import _linalg

    monkeypatch.setattr(_linalg, "_BLOCK", 3)
    rng = np.random.default_rng(13)
    L, R, A2, conv = (rng.standard_normal(sh) for sh in ((7, 2), (2, 5), (7, 5), (7, 5)))
    conv = np.abs(conv)
    for cv, z in ((None, A2 - L @ R), (conv, np.abs(A2 - L @ R) + conv)):
        assert np.isclose(_linalg._residual_sumsq(A2, L, R, cv), np.sum(z * z), rtol=1e-13, atol=0)
    x = np.array([Fraction(int(v), 7) for v in rng.integers(-50, 50, 60)], dtype=object).reshape(3, 4, 5)
    for eps in (1e-14, 0.3):
        tt = tt_svd(x, eps=eps)
        exact = _sq(_exact_tt(tt.cores) - x.reshape(-1))
        assert exact > 0 and _dominates(tt.error_bound, exact)
        assert tt.error_bound <= _fsqrt(exact) * (1 + 1e-9) + 1e-13 * float(np.linalg.norm(x.astype(float)))


def test_conversion_error_is_rigorous_and_zero_for_exactly_representable_input():
    x = [[1, Fraction(1, 3)], [2**60 + 1, Fraction(-5, 8)]]
    A = np.array([[1.0, 1 / 3], [float(2**60 + 1), -0.625]])
    E = conversion_error(x, A)
    exact = np.array([[Fraction(1), Fraction(1, 3)], [Fraction(2**60 + 1), Fraction(-5, 8)]], dtype=object)
    assert np.all(np.abs(exact - _frac(A)) <= _frac(E))
    assert E[0, 0] == 0 and E[1, 1] == 0 and E[0, 1] > 0 and E[1, 0] == 1
    assert conversion_error(np.arange(4), np.arange(4.0)) is not None
    assert not np.any(conversion_error(np.arange(4), np.arange(4.0)))
    assert conversion_error(np.ones(3, dtype=np.float32), np.ones(3, dtype=np.float32)) is None


def test_tt_svd_float32_and_torch():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((3, 4, 5)).astype(np.float32)
    for X in (A, torch.from_numpy(A)):
        tt = tt_svd(X, eps=1e-12)
        exact = _sq(_exact_tt(tt.cores) - _frac(A).reshape(-1))
        assert exact > 0 and _dominates(tt.error_bound, exact)
        assert tt.error_bound <= _fsqrt(exact) * (1 + 1e-9) + 1e-13 * float(np.linalg.norm(A))


def test_residual_bound_covers_cancellation_and_huge_or_tiny_scales():
    """Entries of very different sizes (1e±150): the scaled norm neither overflows nor loses the small part."""
    rng = np.random.default_rng(5)
    for scale in (1e-150, 1.0, 1e150):
        A = rng.standard_normal((5, 6)) * scale
        U, S, Vh = np.linalg.svd(A, full_matrices=False)
        for r in (2, 5):
            cores = (U[:, :r].reshape(1, 5, r), (S[:r, None] * Vh[:r]).reshape(r, 6, 1))
            b = tt_residual_bound(A, cores)
            exact = _sq(_exact_tt(cores) - _frac(A).reshape(-1))
            assert _dominates(b, exact)
            assert b <= _fsqrt(exact) * (1 + 1e-9) + 1e-13 * np.linalg.norm(A)
    assert tt_residual_bound(np.zeros((2, 2)), (np.zeros((1, 2, 1)), np.zeros((1, 2, 1)))) == 0.0


def test_deep_full_rank_train_is_certified():
    """2^8 at full TT rank (bond ranks up to 16): the contraction rounding is propagated normwise through the
    right operator norms; the certificate still dominates the exact error and is within a modest factor."""
    rng = np.random.default_rng(8)
    A = rng.standard_normal((2,) * 8)
    tt = tt_svd(A, eps=1e-14)
    assert max(tt.ranks) == 16
    exact = _sq(_exact_tt(tt.cores) - _frac(A).reshape(-1))
    assert _dominates(tt.error_bound, exact)
    assert tt.error_bound <= 100 * _fsqrt(exact)


@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**20),
    st.sampled_from([(2, 3, 2, 3), (3, 2, 2, 2, 2), (4, 3), (2, 2, 3, 2, 2, 2)]),
    st.integers(1, 3),
    st.booleans(),
)
def test_residual_bound_every_split_and_both_scalings(seed, shape, rank, orthonormal):
    """The train is contracted from both ends to a bond s and joined by one product; the certificate must
    dominate the exact error for every s (not only the cheapest), with the scale factor 2^E put back into the
    left half or (forced here) into A instead.  Cores of mixed scales (E ≠ 0) and perturbed tensors."""
    from tropix.tn import _linalg

    rng = np.random.default_rng(seed)
    if orthonormal:
        cores = tt_svd(rng.standard_normal(shape), eps=1e-14).cores
    else:
        cores = TensorTrain.random(shape, rank, seed=seed).cores
    cores = tuple(np.asarray(c) * 2.0 ** int(rng.integers(-40, 40)) for c in cores)
    exact_tt = _exact_tt(cores)
    T = np.array([float(x) for x in exact_tt]).reshape(shape)
    A = T + float(rng.choice([0.0, 1e-9, 1e-3])) * rng.standard_normal(shape) * np.abs(T).max()
    exact = _sq(exact_tt - _frac(A).reshape(-1))
    nrm = float(np.linalg.norm(A))
    d = len(shape)
    orig_split, orig_fold, orig_block = _linalg._split_point, _linalg._fold_scale, _linalg._BLOCK
    try:
        for s in range(d - 1):
            _linalg._split_point = lambda cs, s=s: s
            for fold, block in ((True, orig_block), (True, 5), (False, orig_block)):
                _linalg._fold_scale = orig_fold if fold else (lambda L, R, E: None)
                _linalg._BLOCK = block  # 5: the residual pass runs over many row blocks of odd sizes
                b = tt_residual_bound(A, cores)
                assert _dominates(b, exact), (s, fold, block)
                assert b <= _fsqrt(exact) * (1 + 1e-9) + 1e-13 * max(nrm, 1e-300), (s, fold, block)
    finally:
        _linalg._split_point, _linalg._fold_scale, _linalg._BLOCK = orig_split, orig_fold, orig_block
    assert orig_split([np.asarray(c) for c in cores]) in range(d - 1)


def test_rounding_hidden_by_cancellation_inside_a_half_is_covered():
    """A product inside one half cancels (x·a_i + y·b_i ≈ 0): its rounding error, of order u·|x a_i|, is far
    larger than the rounding bound of the small joined product.  With A = the computed contraction itself
    (residual 0, as in tt_distance_bound) the certificate must still dominate the exact error, for the
    cancellation in the left half and, mirrored, in the right half."""
    from tropix.tn import _linalg

    rng = np.random.default_rng(12)
    x, y = rng.uniform(0.3, 0.9, 2)
    a = rng.uniform(0.3, 0.9, 6)
    left = (
        np.array([x, y]).reshape(1, 1, 2),
        np.stack([a, -(x * a) / y]).reshape(2, 6, 1),
        np.array([1.0, -3.0]).reshape(1, 2, 1),
    )
    right = tuple(np.transpose(c, (2, 1, 0)) for c in left[::-1])
    orig = _linalg._split_point
    try:
        for cores, s in ((left, 1), (right, 0)):
            _linalg._split_point = lambda cs, s=s: s
            cs, E = _linalg._scaled_cores(cores)
            L, R, _ = _linalg._chain_contraction(cs, s, bound=False)
            Ahat = _linalg._join_unscaled(L, R, E).reshape(-1)
            exact = _sq(_exact_tt(cores) - _frac(Ahat))
            assert exact > 0
            b = tt_residual_bound(Ahat, cores)
            assert _dominates(b, exact)
            joined = float(_linalg._product_fro_up(L, R, 1)) * 2.0**E * 2.0**-50  # ≥ the joint product's share
            assert _fsqrt(exact) > joined  # the half's own rounding term is what covers it
    finally:
        _linalg._split_point = orig


def test_residual_bound_with_subnormal_products():
    """Data near 1e-310: putting 2^E back into the left half would give subnormal products, so A is scaled
    instead (with the absolute underflow term); the certificate still dominates the exact error."""
    from tropix.tn._linalg import _join_unscaled, _scaled_cores

    rng = np.random.default_rng(11)
    cores = tuple(rng.standard_normal(sh) * 1e-104 for sh in ((1, 2, 2), (2, 3, 2), (2, 2, 1)))
    cs, E = _scaled_cores(cores)
    L = (cs[0].reshape(-1, 2) @ cs[1].reshape(2, -1)).reshape(-1, 2)
    assert _join_unscaled(L, cs[2].reshape(2, -1), E) is None
    A = np.zeros(12)
    A[::5] = 5e-324 * rng.integers(1, 4, 3)
    b = tt_residual_bound(A.reshape(2, 3, 2), cores)
    exact = _sq(_exact_tt(cores) - _frac(A))
    assert _dominates(b, exact) and b < 1e-300


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**20), st.sampled_from([(2, 3, 2, 3), (3, 3, 3), (2, 2, 2, 2, 2)]))
def test_right_operator_norm_bounds(seed, shape):
    """ρ_j ≥ ‖G_j ⋯ G_d‖_2 (against a float64 SVD, accurate to ~1e-15 relative), and tight for the
    left-orthonormal cores of tt_svd, whose right parts have nearly diagonal Gram matrices."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal(shape)
    for svd_cores, cores in ((True, tt_svd(A, eps=1e-12).cores), (False, TensorTrain.random(shape, 3, seed).cores)):
        cs = [np.asarray(c) for c in cores]
        d = len(cs)
        rho = _right_operator_norms(cs)
        assert rho[d] == 1
        for j in range(2, d):
            R = cs[j].reshape(cs[j].shape[0], -1)
            for c in cs[j + 1:]:
                R = (R.reshape(-1, c.shape[0]) @ c.reshape(c.shape[0], -1)).reshape(cs[j].shape[0], -1)
            smax = np.linalg.norm(R, 2)
            assert float(rho[j]) >= smax * (1 - 1e-12)
            # λ_max ≤ ‖M‖_∞ ≤ sqrt(r)·λ_max for the r × r Gram matrix M; ≈ λ_max when M is nearly diagonal
            assert float(rho[j]) <= smax * (1 + 1e-6 if svd_cores else cs[j].shape[0] ** 0.25 * (1 + 1e-9))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.integers(1, 2), st.integers(0, 10**6), st.sampled_from([1e-14, 1e-6, 0.05, 0.3]))
def test_round_certify_dominates_exact_error(d, rank, seed, eps):
    a = TensorTrain.random((3,) * d, rank=rank, seed=seed)
    b = TensorTrain.random((3,) * d, rank=rank, seed=seed + 1)
    s = a + b * 0.5 + a  # redundant ranks
    r = s.round(eps, certify=True)
    exact = _sq(_exact_tt(s.cores) - _exact_tt(r.cores))
    assert _dominates(r.error_bound, exact)
    nrm = math.sqrt(float(_sq(_exact_tt(s.cores))))
    assert r.error_bound <= _fsqrt(exact) * (1 + 1e-9) + 1e-13 * nrm
    if eps >= 1e-6:
        assert r.error_bound <= eps * nrm * (1 + 1e-9)
    # the uncertified default reports the same truncation up to rounding
    assert abs(s.round(eps).error_bound - r.error_bound) <= 1e-11 * r.error_bound + 1e-13 * nrm


def test_round_default_covers_rounding_when_nothing_is_discarded():
    """Nothing to discard: the exact error of the stored cores is pure rounding (nonzero); the default bound
    (rigorous, in TT format) covers it, as does certify=True (the old default reported the exact-arithmetic
    tail, ~0 here, below the exact error)."""
    a = TensorTrain.random((3, 3, 3, 3), rank=2, seed=1)
    s = a + a
    r = s.round(1e-10)
    exact = _sq(_exact_tt(s.cores) - _exact_tt(r.cores))
    assert exact > 0 and _dominates(r.error_bound, exact)
    assert r.error_bound < 1e-13 * s.norm()
    rc = s.round(1e-10, certify=True)
    assert _dominates(rc.error_bound, _sq(_exact_tt(s.cores) - _exact_tt(rc.cores)))
    T = TTMatrix.from_tt(s, (3, 3, 3, 3), (1, 1, 1, 1))
    assert _dominates(T.round(1e-10).error_bound, exact)
    assert _dominates(T.round(1e-10, certify=True).error_bound, exact)


def test_round_certify_size_limit():
    from tropix.errors import SizeLimitError

    big = TensorTrain.random((64,) * 5, rank=1, seed=0)
    with pytest.raises(SizeLimitError, match="2\\^26"):
        big.round(0.1, certify=True)


# -- TT-matrix contraction rounding: the dtype of the products ------------------------------------------------


def _random_ttm(rng, rd, cd, ranks, dtypes):
    rs = (1,) + tuple(ranks) + (1,)
    shapes = [(rs[k], m, n, rs[k + 1]) for k, (m, n) in enumerate(zip(rd, cd))]
    return TTMatrix(tuple(rng.standard_normal(sh).astype(dt) for sh, dt in zip(shapes, dtypes)))


def _abs_chain(T, X):
    """The exact-enough chain on |cores|, |X| (float64) that the bound is a multiple of."""
    absT = TTMatrix(tuple(np.abs(np.asarray(c, dtype=np.float64)) for c in T.cores))
    return absT.matmat(np.abs(np.asarray(X, dtype=np.float64)))


def _gamma(x: Fraction) -> float:
    return float(x / (1 - x))


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([((2, 3), (3, 2), (3,)), ((2, 2, 2), (2, 1, 2), (2, 3)), ((3,), (4,), ())]),
    st.sampled_from(["x32_cores64", "x64_cores32", "x32_mixed", "all32"]),
    st.integers(0, 2**20),
)
def test_matmat_bound_uses_the_promoted_dtype(dims, kind, seed):
    rd, cd, ranks = dims
    d = len(rd)
    rng = np.random.default_rng(seed)
    xdt = np.float64 if kind == "x64_cores32" else np.float32
    cdts = {
        "x32_cores64": [np.float64] * d,
        "x64_cores32": [np.float32] * d,
        "x32_mixed": [np.float32] + [np.float64] * (d - 1),
        "all32": [np.float32] * d,
    }[kind]
    T = _random_ttm(rng, rd, cd, ranks, cdts)
    M, N = T.shape
    X = rng.standard_normal((N, 3)).astype(xdt)
    exact = _exact_ttm(T).dot(_frac(X))
    E = T.matmat_rounding_bound(X)
    Y = T.matmat(X)
    assert np.all(np.abs(_frac(Y) - exact) <= _frac(E))
    # the size of the bound: γ(Σ_k K_k u_k) with u_k of the dtype product k runs in (float64 once promoted)
    rs = T.ranks
    x, dt = Fraction(0), np.dtype(xdt)
    for k, c in enumerate(T.cores):
        dt = np.result_type(dt, c.dtype)
        x += rs[k] * cd[k] * Fraction(float(np.finfo(dt).eps)) / 2
    A = _abs_chain(T, X)
    assert np.all(E <= _gamma(x) * A * (1 + 1e-6))
    assert np.all(E >= _gamma(x) * A * (1 - 1e-6))
    if kind in ("x32_cores64", "x64_cores32"):  # every product runs in float64: float64-sized bound
        S = sum(rs[k] * cd[k] for k in range(d))
        assert np.all(E <= 1.01 * S * U64 * A)
    # rmatmat: X (B, M) against the same operator
    Xr = rng.standard_normal((2, M)).astype(xdt)
    Er = T.rmatmat_rounding_bound(Xr)
    assert np.all(np.abs(_frac(T.rmatmat(Xr)) - _frac(Xr).dot(_exact_ttm(T))) <= _frac(Er))


def test_mixed_float32_cores_float64_input_is_float64_tight():
    """The reported defect: float32 cores applied to float64 data run in float64; the bound used u32 (1e8
    too loose).  Now bound / true error stays moderate and the bound sits at float64 size."""
    rng = np.random.default_rng(9)
    T = _random_ttm(rng, (4, 3, 2), (2, 3, 4), (3, 4), [np.float32] * 3)
    X = rng.standard_normal((4, T.shape[0]))
    exact = _frac(X).dot(_exact_ttm(T))
    err = np.abs(_frac(T.rmatmat(X)) - exact).astype(float)
    E = T.rmatmat_rounding_bound(X)
    assert np.all(err <= E)
    assert err.max() > 0 and E.max() <= 1e4 * err.max()
    assert E.max() < 1e-12 * np.abs(exact.astype(float)).max() + 1e-12


def test_torch_mixed_dtypes():
    rng = np.random.default_rng(4)
    Tn = _random_ttm(rng, (2, 3), (3, 2), (3,), [np.float64, np.float64])
    Tt = TTMatrix(tuple(torch.from_numpy(c) for c in Tn.cores))
    X = torch.from_numpy(rng.standard_normal((4, 6)).astype(np.float32))
    E = Tt.rmatmat_rounding_bound(X)
    Y = Tt.rmatmat(X)
    assert Y.dtype == torch.float64
    assert np.all(np.abs(_frac(Y) - _frac(X).dot(_exact_ttm(Tn))) <= _frac(E))
    S = sum(c.shape[0] * c.shape[1] for c in Tn.cores)  # inner lengths r_{k-1} m_k of the transpose
    assert np.all(E <= 1.01 * S * U64 * _abs_chain(Tn.transpose(), to_np(X).T).T)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_dtype_bound_unchanged(dtype):
    """One dtype throughout: the bound is γ_S(u) times the absolute chain, as before."""
    rng = np.random.default_rng(1)
    T = _random_ttm(rng, (3, 2), (2, 3), (4,), [dtype, dtype])
    X = rng.standard_normal((6, 2)).astype(dtype)
    S = sum(c.shape[0] * c.shape[2] for c in T.cores)
    u = Fraction(float(np.finfo(dtype).eps)) / 2
    E = T.matmat_rounding_bound(X)
    A = _abs_chain(T, X)
    assert np.allclose(E, _gamma(S * u) * A, rtol=1e-6, atol=0)


# -- rigorous error_bound of TT operations (round, canonical, +, scalar ·, hadamard, apply), no dense tensor -----
# Every operation's bound is checked against the exact error of the stored cores (Fractions): the distance from
# the stored result to the exact operation applied to the exact values of the stored operands.


def _fsqrt(q: Fraction) -> float:
    """sqrt of a nonnegative rational as a float, without underflow of ``float(q)``."""
    if q == 0:
        return 0.0
    k = (q.numerator.bit_length() - q.denominator.bit_length()) // 2
    return math.ldexp(math.sqrt(float(q / Fraction(4) ** k)), k)


def _tt_exact_norm(cores) -> float:
    return _fsqrt(_sq(_exact_tt(cores)))


def _random_tt(rng, shape, rank, scale=1.0, dtype=np.float64):
    """Standard normal cores, the first one times ``scale`` (the tensor's scale: no underflow of products)."""
    d = len(shape)
    rs = [1] + [min(rank, math.prod(shape[:k]), math.prod(shape[k:])) for k in range(1, d)] + [1]
    return TensorTrain(tuple((rng.standard_normal((rs[k], shape[k], rs[k + 1])) * (scale if k == 0 else 1.0))
                             .astype(dtype) for k in range(d)))


@st.composite
def _tt_pairs(draw):
    d = draw(st.integers(1, 4))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=d, max_size=d)))
    rng = np.random.default_rng(draw(st.integers(0, 2**20)))
    scale = draw(st.sampled_from([1.0, 1.0, 2.0**-500, 1e-150, 1e150, 3e-7]))
    ra, rb = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return _random_tt(rng, shape, ra, scale), _random_tt(rng, shape, rb, scale), rng


@settings(max_examples=60, deadline=None)
@given(_tt_pairs(), st.sampled_from([1e-15, 1e-12, 1e-6, 0.05, 0.3]), st.integers(0, 3))
def test_round_bound_dominates_exact_error_and_is_tight(pair, eps, kind):
    a, b, rng = pair
    x = [a + b * 0.75, a + a * 0.5, a + b * 1e-4 + a, a.left_canonical() + b * 3.0][kind]
    r = x.round(eps)
    exact = _sq(_exact_tt(x.cores) - _exact_tt(r.cores))
    assert _dominates(r.error_bound, exact)
    nrm = _tt_exact_norm(x.cores)
    err = _fsqrt(exact)
    own = r.error_bound - x.error_bound  # the part added by round
    assert _dominates(own * (1 + 1e-12), exact)
    # useful: the exact error plus a rounding floor (u-level, polynomial in ranks and d), never 1e6x loose
    assert own <= err * (1 + 1e-6) + 2e-12 * nrm
    if eps >= 1e-6:
        assert err <= eps * nrm * (1 + 1e-9)


def test_round_bound_ratio_when_truncation_dominates():
    """Bound / exact error over many truncating roundings (reported with -s); at most a few % above 1."""
    rng = np.random.default_rng(7)
    ratios = []
    for trial in range(12):
        d = 3 + trial % 3
        a, b = _random_tt(rng, (3,) * d, 2), _random_tt(rng, (3,) * d, 3)
        x = a + b * 10.0 ** -(1 + trial % 3)
        for eps in (1e-3, 1e-2, 0.1):
            r = x.round(eps)
            exact = _sq(_exact_tt(x.cores) - _exact_tt(r.cores))
            assert _dominates(r.error_bound, exact)
            if _fsqrt(exact) < 1e-9 * _tt_exact_norm(x.cores):
                continue  # nothing discarded: rounding only (covered by the other tests)
            ratios.append(r.error_bound / _fsqrt(exact))
    print(f"\nround bound / exact error: min {min(ratios):.6f} median {np.median(ratios):.6f} max {max(ratios):.6f}")
    assert len(ratios) > 20 and max(ratios) < 1.05 and min(ratios) >= 1.0


def test_round_cancellation_and_near_zero_results():
    rng = np.random.default_rng(3)
    a = _random_tt(rng, (3, 3, 3, 3), 3)
    z = a + (-a)  # exactly zero, represented exactly (concatenation, negation by -1 is exact)
    assert z.error_bound == 0.0
    r = z.round(1e-8)
    assert _sq(_exact_tt(r.cores)) <= Fraction(r.error_bound) ** 2
    assert r.error_bound <= 1e-12 * _tt_exact_norm(a.cores)
    near = a + a * (-1 + 2.0**-40)  # a tiny result after cancellation
    r = near.round(1e-6)
    exact = _sq(_exact_tt(near.cores) - _exact_tt(r.cores))
    assert _dominates(r.error_bound, exact)
    assert r.error_bound <= 1e-12 * _tt_exact_norm(a.cores)


@pytest.mark.parametrize("scale", [2.0**-900, 1e-200, 1e200, 2.0**900])
def test_round_at_extreme_scales(scale):
    rng = np.random.default_rng(11)
    a, b = _random_tt(rng, (2, 3, 2), 2, scale), _random_tt(rng, (2, 3, 2), 2, scale)
    x = a + b * 0.001
    for eps in (1e-12, 1e-2):
        r = x.round(eps)
        exact = _sq(_exact_tt(x.cores) - _exact_tt(r.cores))
        assert _dominates(r.error_bound, exact)
        assert r.error_bound <= _fsqrt(exact) * 1.01 + 1e-11 * _tt_exact_norm(x.cores)


def test_round_float32_cores_and_torch():
    rng = np.random.default_rng(5)
    a, b = _random_tt(rng, (3, 3, 3), 3, dtype=np.float32), _random_tt(rng, (3, 3, 3), 3, dtype=np.float32)
    x = a + b
    r = x.round(1e-12)
    assert all(c.dtype == np.float32 for c in r.cores)
    exact = _sq(_exact_tt(x.cores) - _exact_tt(r.cores))
    assert exact > 0 and _dominates(r.error_bound, exact)
    assert r.error_bound < 1e-4 * _tt_exact_norm(x.cores)  # float32 rounding level, not float64
    xt = TensorTrain(tuple(torch.from_numpy(c.astype(np.float64)) for c in x.cores))
    rt = xt.round(1e-3)
    exact = _sq(_exact_tt(xt.cores) - _exact_tt(rt.cores))
    assert _dominates(rt.error_bound, exact) and rt.error_bound <= 1.01 * _fsqrt(exact) + 1e-10


@settings(max_examples=30, deadline=None)
@given(_tt_pairs(), st.integers(0, 4))
def test_canonical_forms_bound_the_change(pair, center):
    a, b, _ = pair
    x = a + b * 0.3
    c = x.canonical(center % x.ndim)
    exact = _sq(_exact_tt(x.cores) - _exact_tt(c.cores))
    assert _dominates(c.error_bound, exact)
    assert c.error_bound <= 1e-12 * _tt_exact_norm(x.cores) + 1e-300


@settings(max_examples=40, deadline=None)
@given(_tt_pairs(), st.sampled_from([0.3, -1.0, 2.0, 0.5, 3, Fraction(1, 3), 1e-3, 0]))
def test_add_and_scalar_bounds(pair, c):
    a, b, _ = pair
    s = a + b
    exact_sum = _exact_tt(a.cores) + _exact_tt(b.cores)
    assert _dominates(s.error_bound, _sq(_exact_tt(s.cores) - exact_sum))
    if a.ndim > 1:  # concatenated cores: the exact sum, bound 0
        assert s.error_bound == 0.0 and _sq(_exact_tt(s.cores) - exact_sum) == 0
    m = a * c
    cq = Fraction(c)
    exact = _sq(_exact_tt(m.cores) - cq * _exact_tt(a.cores))
    assert _dominates(m.error_bound, exact)
    assert m.error_bound <= 1e-14 * abs(float(cq)) * _tt_exact_norm(a.cores) * 8 + 1e-300
    if c in (-1.0, 2.0, 0.5, 0):  # exact scalings: bound 0
        assert m.error_bound == 0.0 and exact == 0


@settings(max_examples=40, deadline=None)
@given(_tt_pairs())
def test_hadamard_bound(pair):
    a, b, rng = pair
    h = a.hadamard(b)
    exact = _sq(_exact_tt(h.cores) - _exact_tt(a.cores) * _exact_tt(b.cores))
    assert _dominates(h.error_bound, exact)
    nrm = _tt_exact_norm(a.cores) * _tt_exact_norm(b.cores)
    assert h.error_bound <= 1e-12 * nrm + 1e-300


def test_operand_bounds_propagate_through_chains():
    """Operands carrying their own bounds: the result's bound covers ‖true op − stored result‖ for the worst
    true operands within those bounds (checked on explicit perturbations at the bound's edge)."""
    rng = np.random.default_rng(9)
    a, b = _random_tt(rng, (2, 3, 2), 2), _random_tt(rng, (2, 3, 2), 2)
    ea, eb = 1e-3, 2e-3
    A, B = TensorTrain(a.cores, ea), TensorTrain(b.cores, eb)
    dA = rng.standard_normal(12)
    dA *= ea / np.linalg.norm(dA)
    dB = rng.standard_normal(12)
    dB *= eb / np.linalg.norm(dB)
    At = _exact_tt(a.cores) + _frac(dA)  # "true" tensors within the bounds (up to the rounding of dA)
    Bt = _exact_tt(b.cores) + _frac(dB)
    chain = (A + B * 0.3).hadamard(A).round(1e-2)
    true = (At + Fraction(0.3) * Bt) * At
    assert _dominates(chain.error_bound, _sq(true - _exact_tt(chain.cores)))
    W = TTMatrix.from_tt(TensorTrain(a.cores, ea), (1, 3, 1), (2, 1, 2))
    x = TensorTrain(_random_tt(rng, (2, 1, 2), 2).cores, 1e-3)
    y = W.apply(x, eps=1e-3)
    Wt = _exact_ttm(W)
    xt = _exact_tt(x.cores)
    assert _dominates(y.error_bound, _sq(Wt.dot(xt) - _exact_tt(y.cores)))


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**20), st.sampled_from([((2, 2, 2), (2, 2, 2)), ((3, 1), (2, 2)), ((2, 3, 1, 2), (2, 1, 3, 2))]),
       st.integers(1, 3), st.integers(1, 3), st.sampled_from([1.0, 1e-120, 1e120]), st.booleans())
def test_apply_bound_dominates_exact_error(seed, dims, rw, rx, scale, rounded):
    rng = np.random.default_rng(seed)
    rd, cd = dims
    d = len(rd)
    rs = [1] + [rw] * (d - 1) + [1]
    W = TTMatrix(tuple(rng.standard_normal((rs[k], rd[k], cd[k], rs[k + 1])) * (scale if k == 0 else 1.0)
                       for k in range(d)))
    x = _random_tt(rng, cd, rx)
    y = W.apply(x, eps=1e-3) if rounded else W.apply(x)
    exact = _sq(_exact_ttm(W).dot(_exact_tt(x.cores)) - _exact_tt(y.cores))
    assert _dominates(y.error_bound, exact)
    if not rounded:
        bound_scale = _fsqrt(_sq(_exact_ttm(W))) * _tt_exact_norm(x.cores)  # ≥ ‖W x‖_F
        assert y.error_bound <= 1e-12 * bound_scale


def test_ttmatrix_round_and_identity_apply():
    rng = np.random.default_rng(2)
    ident = TTMatrix(tuple(np.eye(3).reshape(1, 3, 3, 1) for _ in range(4)))
    x = _random_tt(rng, (3, 3, 3, 3), 3)
    y = ident.apply(x)
    assert _sq(_exact_tt(y.cores) - _exact_tt(x.cores)) <= Fraction(y.error_bound) ** 2
    assert y.error_bound <= 1e-13 * _tt_exact_norm(x.cores)  # the identity's norms are 1, not sqrt(81)
    T = TTMatrix.from_tt(x + x * 0.5, (3, 3, 3, 3), (1, 1, 1, 1))
    r = T.round(1e-10)
    exact = _sq(_exact_tt(T.to_tt().cores) - _exact_tt(r.to_tt().cores))
    assert _dominates(r.error_bound, exact)


@pytest.mark.parametrize("center", [0, 3, 7])
def test_deep_train_round_and_canonical(center):
    """8 cores of rank up to 4 (256 entries, exact reference): the propagation through long chains of
    QR/SVD steps stays rigorous and rounding-level when nothing is discarded."""
    rng = np.random.default_rng(21)
    a, b = _random_tt(rng, (2,) * 8, 4), _random_tt(rng, (2,) * 8, 3)
    x = a + b * 0.01
    nrm = _tt_exact_norm(x.cores)
    c = x.canonical(center)
    assert _dominates(c.error_bound, _sq(_exact_tt(x.cores) - _exact_tt(c.cores)))
    for eps in (1e-14, 1e-3):
        r = x.round(eps, check=True)
        exact = _sq(_exact_tt(x.cores) - _exact_tt(r.cores))
        assert _dominates(r.error_bound, exact)
        assert r.error_bound <= _fsqrt(exact) * 1.001 + 1e-12 * nrm
