"""Rigorous rounding bounds of TT-matrix contractions: TTMatrix.matmat_rounding_bound / rmatmat_rounding_bound.

The bound must dominate the true error of the float32 (and float64) result against the exact product of the
stored cores, computed with Fractions for tiny sizes and with a certified float64 reference otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix.errors import ShapeError
from tropix.tn import TTMatrix
from _brute import exact_ttmatrix_dense, fractions as _frac


def _random_tt(rng, rd, cd, ranks, dtype, spread=0.0):
    """Random cores with log-uniform magnitudes over ``10**±spread`` and random signs."""
    rs = (1,) + tuple(ranks) + (1,)
    cores = []
    for k, (m, n) in enumerate(zip(rd, cd)):
        shape = (rs[k], m, n, rs[k + 1])
        c = rng.standard_normal(shape) * 10.0 ** rng.uniform(-spread, spread, shape)
        cores.append(c.astype(dtype))
    return TTMatrix(tuple(cores))


def _within(Y, exact, E):
    """Whether ``|Y - exact| <= E`` entrywise, decided exactly."""
    err = np.abs(_frac(Y) - exact)
    return bool(np.all(err <= _frac(E))), max(float(e) for e in err.ravel())


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([((2, 3), (3, 2), (3,)), ((2, 2, 2), (2, 1, 2), (2, 3)), ((3,), (4,), ()), ((2, 2), (2, 2), (4,))]),
    st.sampled_from([np.float32, np.float64]),
    st.sampled_from([0.0, 3.0]),
    st.booleans(),
    st.integers(0, 10**6),
)
def test_bound_dominates_exact_error(dims, dtype, spread, cancel, seed):
    rd, cd, ranks = dims
    rng = np.random.default_rng(seed)
    T = _random_tt(rng, rd, cd, ranks, dtype, spread)
    M, N = T.shape
    X = (rng.standard_normal((N, 3)) * 10.0 ** rng.uniform(-spread, spread, (N, 3))).astype(dtype)
    if cancel:  # a column whose exact product nearly cancels: the relative error of the result is large
        X[:, 2] = X[:, 0] * (1 + 2.0**-10)
        X[:, 2] = (X[:, 2] - X[:, 0]).astype(dtype)
    W = exact_ttmatrix_dense(T)
    exact = W.dot(_frac(X))
    E = T.matmat_rounding_bound(X)
    assert E.shape == (M, 3) and E.dtype == np.float64
    ok, _ = _within(T.matmat(X), exact, E)
    assert ok
    Xr = (rng.standard_normal((4, M)) * 10.0 ** rng.uniform(-spread, spread, (4, M))).astype(dtype)
    Er = T.rmatmat_rounding_bound(Xr)
    assert Er.shape == (4, N)
    ok, _ = _within(T.rmatmat(Xr), _frac(Xr).dot(W), Er)
    assert ok
    ok, _ = _within(T.matvec(X[:, 0]), exact[:, 0], T.matmat_rounding_bound(X[:, 0]))
    assert ok


def test_float32_rounding_is_visible_and_bounded():
    """float32 contractions really round (error > 0), the bound covers it and is not vacuous."""
    rng = np.random.default_rng(7)
    T = _random_tt(rng, (3, 2, 2), (2, 3, 2), (3, 4), np.float32)
    X = rng.standard_normal((T.shape[1], 5)).astype(np.float32)
    exact = exact_ttmatrix_dense(T).dot(_frac(X))
    E = T.matmat_rounding_bound(X)
    ok, err = _within(T.matmat(X), exact, E)
    assert ok and err > 1e-8
    # first-order size: γ_S(u32) times the chain run on |cores| and |X| (>= |W_TT||X|)
    A = TTMatrix(tuple(np.abs(c.astype(np.float64)) for c in T.cores)).matmat(np.abs(X.astype(np.float64)))
    assert np.all(A >= np.abs(T.to_dense().astype(np.float64)) @ np.abs(X.astype(np.float64)) * (1 - 1e-12))
    S = sum(c.shape[0] * c.shape[2] for c in T.cores)
    assert np.all(E <= S * 2.0**-24 * A * (1 + 1e-3))
    assert np.all(E >= S * 2.0**-24 * A * (1 - 1e-3))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from([0.0, 2.0]))
def test_bound_at_attention_sizes_against_certified_float64(seed, spread):
    """Larger sizes: float32 result against a float64 reference whose own error is bounded by the float64 bound."""
    rng = np.random.default_rng(seed)
    T32 = _random_tt(rng, (4, 4, 4), (2, 4, 2), (5, 6), np.float32, spread)
    T64 = TTMatrix(tuple(c.astype(np.float64) for c in T32.cores))
    X = rng.standard_normal((10, 64)).astype(np.float32)
    ref = T64.rmatmat(X.astype(np.float64))
    slack = T64.rmatmat_rounding_bound(X.astype(np.float64))
    err = np.abs(T32.rmatmat(X).astype(np.float64) - ref)
    E = T32.rmatmat_rounding_bound(X)
    assert np.all(err <= E + slack)
    assert err.max() > 0


def test_torch_float32_backend():
    rng = np.random.default_rng(3)
    Tn = _random_tt(rng, (2, 3), (3, 2), (3,), np.float32, 2.0)
    Tt = TTMatrix(tuple(torch.from_numpy(c) for c in Tn.cores))
    X = torch.from_numpy((rng.standard_normal((4, 6))).astype(np.float32))
    Y = Tt.rmatmat(X)
    E = Tt.rmatmat_rounding_bound(X)
    assert isinstance(E, np.ndarray)
    ok, err = _within(to_np(Y), _frac(to_np(X)).dot(exact_ttmatrix_dense(Tn)), E)
    assert ok and err > 0


def test_bad_shape_raises():
    T = _random_tt(np.random.default_rng(0), (2, 3), (3, 2), (2,), np.float64)
    with pytest.raises(ShapeError, match="X must have shape"):
        T.matmat_rounding_bound(np.ones((5, 2)))
    with pytest.raises(ShapeError, match="X must have shape"):
        T.rmatmat_rounding_bound(np.ones((2, 5)))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0])
def test_tt_compressed_bound_with_rigorous_rounding(scale):
    """tt_compressed's certified bound (now with the rigorous TT rounding term) holds against exact weights."""
    from tropix.attention import compress_projections, tt_compressed

    rng = np.random.default_rng(11)
    W = [rng.standard_normal((48, 8)) / 7 for _ in range(3)]
    T = compress_projections(*W, eps=1e-6)
    X = scale * rng.standard_normal((9, 48))
    r = tt_compressed(X, X, T, weights=W, check=True)
    e_v = np.linalg.norm(T.wv.rmatmat_rounding_bound(X), axis=1).max()
    assert np.all(np.asarray(r.bound) >= e_v) and e_v > 0
