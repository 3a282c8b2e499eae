"""Shared test fixtures: the array backends every generic function must run on."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import array_api_strict
import torch

from hypothesis import HealthCheck, settings

settings.register_profile(
    "tropix",
    deadline=None,
    max_examples=60,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("tropix")


def _np(a, dtype=None):
    return np.asarray(a, dtype=dtype or np.float64)


def _torch(a, dtype=None):
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _strict(a, dtype=None):
    return array_api_strict.asarray(np.asarray(a, dtype=np.float64))


BACKENDS = {"numpy": _np, "torch": _torch, "array_api_strict": _strict}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    """A function turning a nested list / NumPy array into a float64 array of one backend."""
    return BACKENDS[request.param]


def to_np(x):
    """Any backend's array (or scalar) as a NumPy array, for comparisons."""
    from tropix._array import to_numpy

    if isinstance(x, (int, float)):
        return np.asarray(x)
    return np.asarray(to_numpy(x))


try:  # CuPy only where a GPU exists; those tests skip elsewhere.
    import cupy  # noqa: F401

    HAVE_GPU = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # pragma: no cover - no CuPy / no GPU here
    HAVE_GPU = False

gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs CuPy and a CUDA GPU")


def round_fraction(f: Fraction, bits: int) -> Fraction:
    """``f`` rounded to a ``bits``-bit significand (unbounded exponent), ties to even."""
    if f == 0:
        return f
    a = abs(f)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    quantum = Fraction(2) ** (e - bits + 1)
    return round(f / quantum) * quantum


def _bf16_available() -> bool:
    from tropix.attention import _bf16

    return _bf16.available()


# A hardware gate like the GPU marker: the fused bfloat16 kernels need AVX512-BF16 (this project's CI machine has
# it, so these tests run there); elsewhere the kernels do not exist and tropix takes its float32 path.
needs_bf16 = pytest.mark.skipif(not _bf16_available(), reason="needs a CPU with AVX512-BF16 (the fused kernel)")


def _int8_available() -> bool:
    from tropix.attention import _int8

    return _int8.available()


# The same for the int8 kernels (AVX512-VNNI, which this project's CI machine has).
needs_int8 = pytest.mark.skipif(not _int8_available(), reason="needs a CPU with AVX512-VNNI (the int8 kernel)")
# the screen's two low precisions, each behind its hardware gate
LOW_PRECISIONS = [pytest.param("bf16", marks=needs_bf16), pytest.param("int8", marks=needs_int8)]


def clustered_qk(rng, n, d, size, nq, temp, spread=0.05):
    """``n`` keys in ``n // size`` tight clusters (Gaussian centres, offsets of scale ``spread``) and ``nq``
    queries near random centres, divided by the temperature ``temp``: ``(q, k, centres)``."""
    C = rng.normal(size=(n // size, d))
    k = C[rng.integers(0, len(C), n)] + spread * rng.normal(size=(n, d))
    q = (C[rng.integers(0, len(C), nq)] + spread * rng.normal(size=(nq, d))) / temp
    return q, k, C


def exact_fractions(a):
    """The float64 values of ``a`` (any library) as an object array of exact Fractions."""
    return np.vectorize(Fraction, otypes=[object])(np.asarray(to_np(a), dtype=np.float64))


def exact_tt(cores):
    """The tensor that stored tensor-train cores represent, exactly (flat object array of Fractions)."""
    cs = [exact_fractions(c) for c in cores]
    out = cs[0]
    for c in cs[1:]:
        out = np.tensordot(out, c, axes=1)
    return out.reshape(-1)


def exact_ttm(T):
    """The dense matrix of a TT-matrix's stored cores, exactly."""
    d = len(T.cores)
    out = exact_tt(T.cores).reshape(tuple(x for m, n in zip(T.row_dims, T.col_dims) for x in (m, n)))
    perm = tuple(range(0, 2 * d, 2)) + tuple(range(1, 2 * d, 2))
    return out.transpose(perm).reshape(T.shape)


def exact_sq(diff) -> Fraction:
    """The exact sum of squares of an object array of Fractions."""
    return sum((x * x for x in np.asarray(diff, dtype=object).ravel()), Fraction(0))
