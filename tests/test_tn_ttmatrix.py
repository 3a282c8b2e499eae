"""TT-matrices (MPO) and Tucker: certified compression, matvec/matmat/MPO×MPS against dense algebra."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix.errors import BackendMismatchError, ShapeError, ToleranceError
from tropix.tn import TensorTrain, TTMatrix, factorize, tucker


def _structured(rng, M, N, rank, noise):
    W = rng.standard_normal((M, rank)) @ rng.standard_normal((rank, N))
    return W + noise * rng.standard_normal((M, N))


@settings(max_examples=30)
@given(
    st.sampled_from([((2, 3), (3, 2)), ((2, 2, 2), (2, 3, 2)), ((4, 3), (2, 2, 2)), ((3,), (5,))]),
    st.sampled_from([1e-8, 0.05, 0.3]),
    st.integers(0, 10**6),
)
def test_from_dense_bound_and_matvec(dims, eps, seed):
    rd, cd = dims
    M, N = int(np.prod(rd)), int(np.prod(cd))
    rng = np.random.default_rng(seed)
    W = _structured(rng, M, N, 2, 0.1)
    T = TTMatrix.from_dense(W, rd, cd, eps=eps, check=True)
    assert np.linalg.norm(T.to_dense() - W) <= eps * np.linalg.norm(W) * (1 + 1e-9)
    X = rng.standard_normal((N, 3))
    D = T.to_dense()
    assert np.allclose(T.matmat(X), D @ X)
    assert np.allclose(T.matvec(X[:, 0]), D @ X[:, 0])
    Y = rng.standard_normal((4, M))
    assert np.allclose(T.rmatmat(Y), Y @ D)
    assert np.allclose(T.transpose().to_dense(), D.T)


def test_matmat_on_every_backend(backend):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((24, 12))
    T = TTMatrix.from_dense(backend(W), (2, 3, 4), (3, 2, 2), eps=1e-10)
    X = rng.standard_normal((12, 5))
    assert np.allclose(to_np(T.matmat(backend(X))), W @ X)
    assert np.allclose(to_np(T.to_dense()), W)
    with pytest.raises(ShapeError):
        T.matmat(backend(np.ones((11, 2))))


def test_mixed_backends_rejected():
    T = TTMatrix.from_dense(np.eye(4), (2, 2), (2, 2))
    with pytest.raises(BackendMismatchError):
        T.matmat(torch.ones(4, 2, dtype=torch.float64))


def test_mpo_times_mps_equals_dense():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((27, 8))
    T = TTMatrix.from_dense(W, (3, 3, 3), (2, 2, 2))
    x = TensorTrain.random((2, 2, 2), rank=2, seed=3)
    y = T.apply(x)
    assert y.shape == (3, 3, 3)
    assert np.allclose(y.to_dense().reshape(-1), W @ x.to_dense().reshape(-1))
    yr = T.apply(x, eps=1e-10)
    assert np.allclose(yr.to_dense(), y.to_dense())
    with pytest.raises(ShapeError):
        T.apply(TensorTrain.random((3, 3, 3), rank=1, seed=0))


def test_rank_cap_and_params():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((64, 64))
    T = TTMatrix.from_dense(W, (4, 4, 4), (4, 4, 4), eps=0.5, max_rank=3, check=True)
    assert max(T.ranks) <= 3
    assert T.n_params == sum(c.size for c in T.cores)
    assert np.linalg.norm(T.to_dense() - W) <= T.error_bound * (1 + 1e-9)


def test_automatic_factorisation_finds_structure():
    # a Kronecker product of three 4x4 factors has TT rank 1 in the (4,4,4) x (4,4,4) factorisation
    rng = np.random.default_rng(3)
    W = np.kron(np.kron(rng.standard_normal((4, 4)), rng.standard_normal((4, 4))), rng.standard_normal((4, 4)))
    T = TTMatrix.from_dense(W, eps=1e-8)
    assert T.n_params <= 48 + 16
    assert np.allclose(T.to_dense(), W)
    assert factorize(384, 4) == (6, 4, 4, 4) and int(np.prod(factorize(1536, 5))) == 1536


def test_schmidt_spectrum_of_operator():
    rng = np.random.default_rng(4)
    A, B = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    W = np.kron(A, B) + np.kron(B, A)
    T = TTMatrix.from_dense(W, (4, 4), (4, 4), eps=1e-12)
    s = to_np(T.schmidt_spectrum(0))
    ref = np.linalg.svd(W.reshape(4, 4, 4, 4).transpose(0, 2, 1, 3).reshape(16, 16), compute_uv=False)
    assert np.allclose(s, ref[: s.size]) and s.size == 2


def test_bad_factorisations_and_tolerances():
    W = np.ones((12, 6))
    with pytest.raises(ShapeError):
        TTMatrix.from_dense(W, (2, 5), (2, 3))
    with pytest.raises(ShapeError):
        TTMatrix.from_dense(W, (3, 4), (4, 2))
    with pytest.raises(ShapeError):
        TTMatrix.from_dense(np.ones(6), (2, 3), (1, 1))
    with pytest.raises(ToleranceError):
        TTMatrix.from_dense(W, (3, 4), (2, 3), eps=0.0)
    with pytest.raises(ToleranceError):
        TTMatrix.from_dense(W, (3, 4), (2, 3), eps=0.1, max_rank=0)


@settings(max_examples=30)
@given(st.integers(0, 10**6), st.sampled_from([0.01, 0.1, 0.4]), st.integers(0, 3))
def test_tucker_bound_and_hooi_monotone(seed, eps, n_iter):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(2, 7, size=3))
    A = rng.standard_normal(shape)
    base = tucker(A, eps=eps)
    dec = tucker(A, eps=eps, n_iter=n_iter, check=True)
    err = np.linalg.norm(dec.to_dense() - A)
    assert err <= eps * np.linalg.norm(A) * (1 + 1e-9)
    assert np.isclose(err, dec.error)
    assert dec.error <= base.error * (1 + 1e-9) + 1e-12
    for U in dec.factors:
        assert np.allclose(U.T @ U, np.eye(U.shape[1]), atol=1e-10)


def test_tucker_shared_factors_across_heads(backend):
    rng = np.random.default_rng(5)
    U = np.linalg.qr(rng.standard_normal((12, 3)))[0]
    V = np.linalg.qr(rng.standard_normal((6, 2)))[0]
    heads = [U @ rng.standard_normal((3, 2)) @ V.T + 1e-9 * rng.standard_normal((12, 6)) for _ in range(5)]
    dec = tucker([backend(h) for h in heads], eps=1e-6)
    assert dec.shared_across == (0,) and dec.ranks == (5, 3, 2) and dec.factors[0] is None
    D = to_np(dec.to_dense())
    for h, Dh in zip(heads, D):
        assert np.linalg.norm(Dh - h) <= 1e-6 * np.linalg.norm(heads)
    fixed = tucker(np.stack(heads), ranks=(5, 2, 2), shared_across=0)
    assert fixed.ranks == (5, 2, 2)
    assert np.isclose(np.linalg.norm(fixed.to_dense() - np.stack(heads)), fixed.error)
    assert fixed.error <= fixed.error_bound * (1 + 1e-9)


def test_tucker_bad_input():
    A = np.ones((2, 3, 4))
    with pytest.raises(ToleranceError):
        tucker(A)
    with pytest.raises(ToleranceError):
        tucker(A, eps=1.0)
    with pytest.raises(ShapeError):
        tucker(A, ranks=(1, 1))
    with pytest.raises(ShapeError):
        tucker(A, eps=0.1, shared_across=5)
    with pytest.raises(ShapeError):
        tucker([np.ones((2, 2)), np.ones((3, 2))], eps=0.1)


def test_automatic_factorisation_finds_two_core_kronecker():
    rng = np.random.default_rng(8)
    W = np.kron(rng.standard_normal((24, 24)), rng.standard_normal((16, 16)))
    T = TTMatrix.from_dense(W, eps=1e-8, check=True)
    assert T.ranks == (1, 1, 1) and T.n_params == 24 * 24 + 16 * 16
