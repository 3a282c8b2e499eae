"""Tensor trains: certified TT-SVD and rounding, arithmetic against dense, canonical forms, spectra."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import gpu, to_np
from tropix.errors import (
    ArgumentTypeError,
    BackendMismatchError,
    BoundViolationError,
    EmptyInputError,
    NaNError,
    ShapeError,
    ToleranceError,
)
from tropix.tn import TensorTrain, entanglement_entropy, schmidt_spectrum, tt_round, tt_svd


def _low_rank_tensor(rng, shape, rank, noise):
    tt = TensorTrain.random(shape, rank=rank, seed=int(rng.integers(1 << 30)))
    A = tt.to_dense()
    return A + noise * np.linalg.norm(A) / math.sqrt(A.size) * rng.standard_normal(shape)


@st.composite
def tensors(draw):
    d = draw(st.integers(2, 5))
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=d, max_size=d)))
    rank = draw(st.integers(1, 4))
    noise = draw(st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
    seed = draw(st.integers(0, 2**20))
    eps = draw(st.sampled_from([1e-8, 1e-3, 0.01, 0.1, 0.3, 0.7]))
    return _low_rank_tensor(np.random.default_rng(seed), shape, rank, noise), eps


@settings(max_examples=80)
@given(tensors())
def test_tt_svd_meets_its_bound(data):
    A, eps = data
    tt = tt_svd(A, eps=eps)
    err = np.linalg.norm(tt.to_dense() - A)
    nrm = np.linalg.norm(A)
    assert err <= eps * nrm * (1 + 1e-9) + 1e-12
    assert err <= tt.error_bound * (1 + 1e-8) + 1e-12 * nrm
    assert tt.error_bound <= eps * nrm * (1 + 1e-9) + 1e-300


@settings(max_examples=40)
@given(tensors(), st.integers(1, 3))
def test_rank_cap_reports_achieved_error(data, cap):
    A, eps = data
    tt = tt_svd(A, eps=eps, max_rank=cap, check=True)
    assert max(tt.ranks) <= cap
    err = np.linalg.norm(tt.to_dense() - A)
    assert err <= tt.error_bound * (1 + 1e-8) + 1e-12 * np.linalg.norm(A)


@settings(max_examples=30)
@given(st.integers(2, 5), st.integers(1, 3), st.integers(0, 10**6))
def test_exact_when_ranks_suffice(d, rank, seed):
    shape = tuple(np.random.default_rng(seed).integers(2, 5, size=d))
    src = TensorTrain.random(shape, rank=rank, seed=seed)
    A = src.to_dense()
    tt = tt_svd(A, eps=1e-10)
    assert all(r <= s for r, s in zip(tt.ranks, src.ranks))
    assert np.linalg.norm(tt.to_dense() - A) <= 1e-12 * np.linalg.norm(A) + 1e-300


@settings(max_examples=40)
@given(st.integers(0, 10**6), st.sampled_from([0.3, 0.05, 1e-3, 1e-6]), st.sampled_from([2, 3, 4]))
def test_gram_route_for_wide_unfoldings_meets_bound(seed, eps, n):
    # first unfoldings n x n^5 are wide: the Gram-matrix route is taken when the budget allows it
    A = _low_rank_tensor(np.random.default_rng(seed), (n,) * 6, 3, 0.2)
    tt = tt_svd(A, eps=eps, check=True)
    err = np.linalg.norm(tt.to_dense() - A)
    assert err <= eps * np.linalg.norm(A) * (1 + 1e-9)
    assert err <= tt.error_bound * (1 + 1e-8) + 1e-13 * np.linalg.norm(A)
    assert tt.error_bound <= eps * np.linalg.norm(A) * (1 + 1e-9)


def test_tt_svd_reference_ranks_not_sqrt_s_trap():
    # the sqrt(S)-splitting trap: asking for 1e-2 must give at most 1e-2 relative error
    rng = np.random.default_rng(7)
    A = _low_rank_tensor(rng, (4,) * 8, 3, 0.05)
    for eps in (1e-1, 1e-2):
        tt = tt_svd(A, eps=eps)
        assert np.linalg.norm(tt.to_dense() - A) <= eps * np.linalg.norm(A)


@settings(max_examples=40)
@given(st.integers(2, 5), st.integers(1, 3), st.integers(0, 10**6), st.sampled_from([1e-6, 0.05, 0.3]))
def test_rounding_error_within_bound(d, rank, seed, eps):
    a = TensorTrain.random((3,) * d, rank=rank, seed=seed)
    b = TensorTrain.random((3,) * d, rank=rank, seed=seed + 1)
    s = a + b * 0.5 + a  # redundant ranks
    r = tt_round(s, eps=eps, check=True)
    err = np.linalg.norm(r.to_dense() - s.to_dense())
    assert err <= eps * np.linalg.norm(s.to_dense()) * (1 + 1e-9) + 1e-12
    assert max(r.ranks) <= 2 * rank
    # rounding an exact representation keeps its value
    assert np.allclose(tt_round(a + a, eps=1e-12).to_dense(), 2 * a.to_dense())


def test_rounding_propagates_previous_bound():
    A = _low_rank_tensor(np.random.default_rng(1), (4, 4, 4, 4), 3, 0.2)
    tt = tt_svd(A, eps=0.1)
    r = tt.round(0.2)
    assert r.error_bound >= tt.error_bound
    assert np.linalg.norm(r.to_dense() - A) <= r.error_bound * (1 + 1e-9)


def test_arithmetic_equals_dense(backend):
    a = TensorTrain.random((2, 3, 4, 2), rank=3, seed=0)
    b = TensorTrain.random((2, 3, 4, 2), rank=2, seed=1)
    A, B = a.to_dense(), b.to_dense()
    a = TensorTrain(tuple(backend(c) for c in a.cores))
    b = TensorTrain(tuple(backend(c) for c in b.cores))
    assert np.allclose(to_np((a + b).to_dense()), A + B)
    assert np.allclose(to_np((a - b).to_dense()), A - B)
    assert np.allclose(to_np((2.5 * a).to_dense()), 2.5 * A)
    assert np.allclose(to_np(a.hadamard(b).to_dense()), A * B)
    assert np.isclose(float(to_np(a.dot(b))), np.sum(A * B))
    assert np.isclose(a.norm(), np.linalg.norm(A))
    assert np.isclose(float(to_np(a[1, 2, 3, 0])), A[1, 2, 3, 0])
    assert np.isclose(float(to_np(a[-1, 0, -1, 1])), A[-1, 0, -1, 1])


def test_tt_svd_on_every_backend(backend):
    A = _low_rank_tensor(np.random.default_rng(3), (3, 4, 5, 3), 2, 0.1)
    tt = tt_svd(backend(A), eps=0.05)
    err = np.linalg.norm(to_np(tt.to_dense()) - A)
    assert err <= 0.05 * np.linalg.norm(A)
    assert type(tt.cores[0]) is type(backend(A))


def test_torch_autograd_through_tt_svd():
    A = torch.as_tensor(_low_rank_tensor(np.random.default_rng(4), (3, 3, 3), 2, 0.0), dtype=torch.float64)
    A.requires_grad_(True)
    tt = tt_svd(A, eps=1e-6)
    loss = (tt.to_dense() ** 2).sum()
    loss.backward()
    assert torch.allclose(A.grad, 2 * A.detach(), atol=1e-6)


def _is_left_orth(c):
    r, n, r2 = c.shape
    M = c.reshape(r * n, r2)
    return np.allclose(M.T @ M, np.eye(r2), atol=1e-10)


def _is_right_orth(c):
    r, n, r2 = c.shape
    M = c.reshape(r, n * r2)
    return np.allclose(M @ M.T, np.eye(r), atol=1e-10)


@pytest.mark.parametrize("center", [0, 1, 2, 3])
def test_canonical_forms_are_orthogonal(backend, center):
    a = TensorTrain.random((2, 3, 3, 2), rank=3, seed=5)
    A = a.to_dense()
    a = TensorTrain(tuple(backend(c) for c in a.cores))
    m = a.canonical(center)
    cores = [to_np(c) for c in m.cores]
    assert all(_is_left_orth(c) for c in cores[:center])
    assert all(_is_right_orth(c) for c in cores[center + 1 :])
    assert np.allclose(to_np(m.to_dense()), A)
    assert np.isclose(np.linalg.norm(cores[center]), np.linalg.norm(A))
    assert all(_is_left_orth(to_np(c)) for c in a.left_canonical().cores[:-1])
    assert all(_is_right_orth(to_np(c)) for c in a.right_canonical().cores[1:])


def test_schmidt_spectra_and_entropy_match_dense_unfoldings():
    a = TensorTrain.random((2, 3, 2, 3, 2), rank=3, seed=9)
    A = a.to_dense()
    for k, s in enumerate(a.schmidt_spectra()):
        m = int(np.prod(A.shape[: k + 1]))
        ref = np.linalg.svd(A.reshape(m, -1), compute_uv=False)
        s = to_np(s)
        assert np.allclose(s, ref[: s.size]) and np.allclose(ref[s.size :], 0, atol=1e-10)
        p = ref**2 / np.sum(ref**2)
        p = p[p > 1e-300]
        assert np.isclose(a.entanglement_entropy(k), -(p * np.log(p)).sum())
        assert np.isclose(entanglement_entropy(A, k + 1), -(p * np.log(p)).sum())
        assert np.allclose(to_np(schmidt_spectrum(A, k + 1)), ref)
    ghz = np.zeros((2, 2, 2))
    ghz[0, 0, 0] = ghz[1, 1, 1] = 1 / np.sqrt(2)
    assert np.allclose(tt_svd(ghz).entanglement_entropies(base=2), [1.0, 1.0])


def test_exact_integer_input_is_converted():
    A = np.arange(24).reshape(2, 3, 4)
    tt = tt_svd(A, eps=1e-12)
    assert tt.cores[0].dtype == np.float64
    assert np.allclose(tt.to_dense(), A)


def test_bad_input():
    A = np.ones((2, 2, 2))
    for eps in (0, 1, -0.1, 1.5, float("nan")):
        with pytest.raises(ToleranceError):
            tt_svd(A, eps=eps)
    for cap in (0, -1):
        with pytest.raises(ToleranceError):
            tt_svd(A, eps=0.1, max_rank=cap)
    with pytest.raises(ArgumentTypeError):  # (a float where an integer rank belongs: the guide's type error)
        tt_svd(A, eps=0.1, max_rank=1.5)
    with pytest.raises(NaNError):
        tt_svd(np.array([[np.nan, 1.0]]))
    with pytest.raises(EmptyInputError):
        tt_svd(np.ones((2, 0)))
    a = TensorTrain.random((2, 2), rank=2, seed=0)
    b = TensorTrain(tuple(torch.as_tensor(c) for c in a.cores))
    with pytest.raises(BackendMismatchError):
        a + b
    with pytest.raises(ShapeError):
        a + TensorTrain.random((2, 3), rank=1, seed=0)
    with pytest.raises(ShapeError):
        TensorTrain((np.ones((1, 2, 2)), np.ones((3, 2, 1))))
    with pytest.raises(ShapeError):
        a[0]
    with pytest.raises(ToleranceError):
        a.round(2.0)


def test_check_catches_a_wrong_bound(monkeypatch):
    import sys

    # a certificate that ignores the truncation: check=True must notice
    monkeypatch.setattr(sys.modules["tropix.tn.tt"], "tt_residual_bound", lambda A, cores, conversion=None: 0.0)
    for shape in [(3, 3, 3), (2, 40, 40)]:  # the SVD route and the Gram route
        A = _low_rank_tensor(np.random.default_rng(2), shape, 2, 0.5)
        with pytest.raises(BoundViolationError):
            tt_svd(A, eps=0.3, check=True)


@gpu
def test_cupy_tt_svd_and_contraction():
    import cupy

    from tropix import MinPlus
    from tropix.tn import TTMatrix, contract
    from tropix.tn.problems import random_couplings, spin_glass_network

    A = _low_rank_tensor(np.random.default_rng(5), (3, 4, 5, 3), 2, 0.1)
    tt = tt_svd(cupy.asarray(A), eps=0.05)
    assert isinstance(tt.cores[0], cupy.ndarray)
    assert np.linalg.norm(to_np(tt.to_dense()) - A) <= 0.05 * np.linalg.norm(A)
    W = np.random.default_rng(6).standard_normal((24, 12))
    T = TTMatrix.from_dense(cupy.asarray(W), (2, 3, 4), (3, 2, 2), eps=1e-10)
    assert np.allclose(to_np(T.matmat(cupy.ones((12, 2)))), W @ np.ones((12, 2)))
    Jh, Jv = random_couplings(3, seed=1)
    sub, ops, path = spin_glass_network(Jh, Jv)
    ref = contract(sub, *ops, semiring=MinPlus, optimize=path)
    assert float(to_np(contract(sub, *[cupy.asarray(o) for o in ops], semiring=MinPlus, optimize=path))) == ref
