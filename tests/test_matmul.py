"""Semiring matrix product: brute force, the numba kernel against the generic path, backends, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import LogSemiring, MaxPlus, MinPlus, Real
from tropix.errors import BackendMismatchError, ConventionError, NaNError, SemiringMismatchError, ShapeError
from tropix.tropical import _kernels, matmul
from tropix.tropical.matmul import _generic_tropical_matmul
import array_api_compat.numpy as npx

from _brute import semiring_matmul  # noqa: E402

INF = float("inf")
SEMIRINGS = [MaxPlus, MinPlus]
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)


@st.composite
def operands(draw, S, entries=None):
    m, k, n = (draw(st.integers(1, 5)) for _ in range(3))
    cell = entries if entries is not None else st.one_of(st.integers(-9, 9), st.just(S.zero))
    A = [[draw(cell) for _ in range(k)] for _ in range(m)]
    B = [[draw(cell) for _ in range(n)] for _ in range(k)]
    return A, B


@given(st.sampled_from(SEMIRINGS), st.data())
def test_matmul_exact_vs_semiring_matmul(S, data):
    A, B = data.draw(operands(S))
    C = matmul(A, B, semiring=S)
    assert C.tolist() == semiring_matmul(A, B, S)


@given(st.sampled_from(SEMIRINGS), st.data())
def test_matmul_fractions_stay_exact(S, data):
    from fractions import Fraction

    cell = st.one_of(st.fractions(-3, 3, max_denominator=7), st.just(S.zero))
    A, B = data.draw(operands(S, cell))
    C = matmul(A, B, semiring=S)
    assert C.tolist() == semiring_matmul(A, B, S)
    assert all(isinstance(v, (int, Fraction)) or v == S.zero for v in C.ravel())


@fixture_ok
@given(st.sampled_from(SEMIRINGS), st.data())
def test_matmul_backends_vs_semiring_matmul(backend, S, data):
    cell = st.one_of(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), st.just(S.zero))
    A, B = data.draw(operands(S, cell))
    C = to_np(matmul(backend(A), backend(B), semiring=S))
    assert C.tolist() == semiring_matmul(A, B, S)  # one rounding per entry, same as the loop


def test_vector_shapes():
    A = [[0, 1], [2, 3]]
    assert matmul(A, [0, 0]).tolist() == [1, 3]
    assert matmul([0, 0], A).tolist() == [2, 3]
    assert matmul([1, 2], [3, 4]) == 6


def test_empty_inner_dimension_gives_tropical_zeros():
    for S in SEMIRINGS:
        C = matmul(np.zeros((2, 0)), np.zeros((0, 3)), semiring=S)
        assert C.shape == (2, 3) and np.all(C == S.zero)


# ------------------------------------------------------------------ fast kernel vs generic path
def _random(rng, shape, dtype, S, p_zero):
    if np.dtype(dtype).kind == "i":
        return rng.integers(-10**6, 10**6, shape).astype(dtype)
    a = rng.standard_normal(shape).astype(dtype) * 100
    a[rng.random(shape) < p_zero] = S.zero
    return a


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("S", SEMIRINGS, ids=str)
@pytest.mark.parametrize("shape", [(33, 40, 35), (70, 129, 66), (130, 257, 3), (1, 2500, 17)])
@pytest.mark.parametrize("threads", ["parallel", "serial"])
def test_kernel_agrees_exactly_with_generic_path(dtype, S, shape, threads, monkeypatch):
    # force the parallel kernel (normally only above PARALLEL_MIN_WORK) or the single-threaded one
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_WORK", 0 if threads == "parallel" else 1 << 62)
    rng = np.random.default_rng([np.dtype(dtype).num, S.sense + 1, *shape])
    m, k, n = shape
    A = _random(rng, (m, k), dtype, S, 0.3)
    B = _random(rng, (k, n), dtype, S, 0.3)
    if np.dtype(dtype).kind == "f":
        A[0, :] = S.zero  # a row and a column of zeros give zeros in C
        B[:, 1] = S.zero
    fast = _kernels.maxplus_matmul_fast(A, B, S.sense)
    assert fast is not None and fast.dtype == dtype
    ref = _generic_tropical_matmul(A, B, S, npx)
    assert np.array_equal(fast, ref)
    assert np.array_equal(matmul(A, B, semiring=S), ref)
    if np.dtype(dtype).kind == "f":
        assert np.all(fast[0] == S.zero) and np.all(fast[:, 1] == S.zero)


def test_kernel_non_contiguous_and_mixed_dtypes():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((80, 90))
    B = rng.standard_normal((60, 90)).astype(np.float32)
    for S in SEMIRINGS:
        At = np.asfortranarray(A)
        fast = _kernels.maxplus_matmul_fast(At, B.T, S.sense)  # B.T is a strided view
        assert fast.dtype == np.float64
        assert np.array_equal(fast, _generic_tropical_matmul(At, B.T, S, npx))


def test_kernel_declines_when_it_does_not_apply():
    a = np.ones((64, 64))
    assert _kernels.maxplus_matmul_fast(a[:4, :4], a[:4, :4], 1) is None  # tiny
    assert _kernels.maxplus_matmul_fast(a.astype(object), a, 1) is None  # exact
    assert _kernels.maxplus_matmul_fast(a.astype(np.int32), a.astype(np.int32), 1) is None  # other dtype
    assert _kernels.maxplus_matmul_fast(torch.ones(64, 64), torch.ones(64, 64), 1) is None  # other library
    assert _kernels.maxplus_matmul_fast(a, a[:10], 1) is None  # shapes
    assert _kernels.maxplus_matmul_fast(a, a, 0) is None  # not a tropical sense


def test_int64_large_matrix_through_matmul():
    rng = np.random.default_rng(2)
    A = rng.integers(-50, 50, (64, 48))
    B = rng.integers(-50, 50, (48, 40))
    C = matmul(A, B, semiring=MinPlus)
    assert C.dtype == np.int64
    assert np.array_equal(C, np.min(A[:, :, None] + B[None], axis=1))


# ------------------------------------------------------------------ other semirings, autograd
def test_log_semiring_matmul_vs_definition(backend):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 6)) * 30
    B = rng.standard_normal((6, 3)) * 30
    A[0, :3] = -INF
    for T in (1.0, 0.1, 7.0):
        C = to_np(matmul(backend(A), backend(B), semiring=LogSemiring(T)))
        ref = np.array([[T * np.logaddexp.reduce((A[i] + B[:, j]) / T) for j in range(3)] for i in range(4)])
        assert np.allclose(C, ref, rtol=1e-12, atol=1e-9)
        # between max and max + T log k
        mx = np.max(A[:, :, None] + B[None], axis=1)
        assert np.all(C >= mx - 1e-9) and np.all(C <= mx + T * math.log(6) + 1e-9)


@pytest.mark.parametrize("T", [1.0, 1e-2, 1e-3, 1e-5, -1e-4, -1.0])
def test_log_semiring_kernel_agrees_with_generic_path(T, monkeypatch):
    """Entries whose shifted terms underflow (small |T|, tropical zeros) go through the compiled kernel; they
    equal the generic blockwise path up to the order of the sums, and the definition (logaddexp, exact
    per-entry shift) to rounding."""
    rng = np.random.default_rng(3)
    A, B = rng.standard_normal((40, 70)) * 3, rng.standard_normal((70, 30)) * 3
    zero = LogSemiring(T).zero
    A[2, :], B[:, 4], A[5, 7], B[9, 1] = zero, zero, zero, zero
    A[6, :10] = A[6, 10]  # ties
    S = LogSemiring(T)
    C = matmul(A, B, semiring=S)
    monkeypatch.setattr(_kernels, "log_matmul_entries_fast", lambda *a: None)
    G = matmul(A, B, semiring=S)
    assert np.array_equal(np.isinf(C), np.isinf(G)) and np.array_equal(C[np.isinf(C)], G[np.isinf(G)])
    fin = np.isfinite(G)
    np.testing.assert_allclose(C[fin], G[fin], rtol=1e-14, atol=1e-14)
    with np.errstate(invalid="ignore"):
        M = np.max(A[:, :, None] + B[None], axis=1) if T > 0 else np.min(A[:, :, None] + B[None], axis=1)
        ref = np.array([[M[i, j] + T * np.log(np.sum(np.exp((A[i] + B[:, j] - M[i, j]) / T)))
                         if np.isfinite(M[i, j]) else M[i, j] for j in range(30)] for i in range(40)])
    assert np.array_equal(np.isinf(C), np.isinf(ref))
    np.testing.assert_allclose(C[fin], ref[fin], rtol=1e-13, atol=1e-13)


def test_log_semiring_kernel_declines_other_input():
    a = np.ones((2, 2), dtype=np.float32)
    assert _kernels.log_matmul_entries_fast(a, a, 1e-3, np.ones((2, 2), bool), np.ones((2, 2))) is None
    assert _kernels.log_matmul_entries_fast(torch.ones(2, 2, dtype=torch.float64), torch.ones(2, 2, dtype=torch.float64),
                                            1e-3, np.ones((2, 2), bool), np.ones((2, 2))) is None


def test_real_matmul(backend):
    A = [[1.0, 2.0], [3.0, 4.0]]
    assert to_np(matmul(backend(A), backend(A), semiring=Real)).tolist() == [[7.0, 10.0], [15.0, 22.0]]


def test_torch_autograd_selects_the_argmax():
    A = torch.tensor([[0.0, 5.0], [1.0, -2.0]], dtype=torch.float64, requires_grad=True)
    B = torch.tensor([[3.0, 0.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    C = matmul(A, B, semiring=MaxPlus)
    assert C.tolist() == [[6.0, 7.0], [4.0, 1.0]]
    C.sum().backward()
    # C00 via k=1, C01 via k=1, C10 via k=0, C11 via k=0
    assert A.grad.tolist() == [[0.0, 2.0], [2.0, 0.0]]
    assert B.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]


# ------------------------------------------------------------------ errors
def test_errors():
    with pytest.raises(ShapeError, match="inner dimensions"):
        matmul([[1, 2]], [[1, 2]])
    with pytest.raises(ShapeError, match="vectors or matrices"):
        matmul(np.ones((2, 2, 2)), np.ones((2, 2)))
    with pytest.raises(NaNError, match="NaN"):
        matmul([[float("nan")]], [[1.0]])
    with pytest.raises(ConventionError, match="MinPlus"):
        matmul([[INF]], [[1.0]], semiring=MaxPlus)
    with pytest.raises(ConventionError):
        matmul(np.full((64, 64), -INF), np.ones((64, 64)), semiring=MinPlus)  # before the kernel
    with pytest.raises(BackendMismatchError):
        matmul(np.ones((2, 2)), torch.ones(2, 2, dtype=torch.float64))


def test_kernel_from_several_threads(monkeypatch):
    import threading

    monkeypatch.setattr(_kernels, "PARALLEL_MIN_WORK", 0)  # let the threads compete for the parallel kernel

    rng = np.random.default_rng(11)
    mats = [rng.standard_normal((96, 80)) for _ in range(4)]
    B = rng.standard_normal((80, 72))
    want = [np.max(A[:, :, None] + B[None], axis=1) for A in mats]
    got = [None] * 4

    def work(t):
        for _ in range(5):
            got[t] = matmul(mats[t], B)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(np.array_equal(g, w) for g, w in zip(got, want))


# ---------------------------------------------------------------- review of issue #2: regressions
@pytest.mark.parametrize("S", SEMIRINGS + [Real])
@pytest.mark.parametrize(
    "dtype", [np.int8, np.uint8, np.int16, np.int32, np.bool_, torch.int8, torch.int16, torch.uint8, torch.bool]
)
def test_small_integer_dtypes_do_not_wrap(S, dtype):
    """int8 100 + 100 used to give -56 (and uint8 250 + 250 gave 244): small integer dtypes must be widened."""
    rng = np.random.default_rng(3)
    hi = 2 if dtype in (np.bool_, torch.bool) else 100
    A = rng.integers(0, hi, (3, 4))
    B = rng.integers(0, hi, (4, 2))
    if isinstance(dtype, torch.dtype):
        a, b = torch.tensor(A, dtype=dtype), torch.tensor(B, dtype=dtype)
    else:
        a, b = A.astype(dtype), B.astype(dtype)
    C = np.asarray(to_np(matmul(a, b, semiring=S)), dtype=object)
    if S is Real:
        want = np.array([[sum(int(A[i, t]) * int(B[t, j]) for t in range(4)) for j in range(2)] for i in range(3)])
    else:
        want = np.array(semiring_matmul(A.tolist(), B.tolist(), S))
    assert (C == want).all()


def test_int64_sums_beyond_int64_become_exact():
    big = np.array([[2**62, 0], [0, 2**62]], dtype=np.int64)
    C = matmul(big, big)
    assert C.dtype == object and C[0, 0] == 2**63 and C[0, 1] == 2**62
    assert matmul(big, big, semiring=Real)[0, 0] == 2**124


@pytest.mark.parametrize(
    "bad, err, match",
    [
        ([[1, 2], [3]], ShapeError, "ragged"),
        ([["a", "b"], ["c", "d"]], SemiringMismatchError, "not a real number"),
        ([[None, 1], [1, 1]], SemiringMismatchError, "not a real number"),
        (np.array([[1j, 0], [0, 1]]), SemiringMismatchError, "complex128"),
        (torch.ones((2, 2), dtype=torch.complex64), SemiringMismatchError, "complex"),
        (np.array([["a", "b"], ["c", "d"]]), SemiringMismatchError, "dtype"),
        (np.array([[1, "x"], [2, 3]], dtype=object), SemiringMismatchError, "not a real number"),
    ],
)
def test_non_real_and_ragged_input(bad, err, match):
    for S in (MaxPlus, MinPlus, LogSemiring(1.0), Real):
        with pytest.raises(err, match=match):
            matmul(bad, [[0, 0], [0, 0]], semiring=S)
