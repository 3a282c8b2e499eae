"""The mixed-dtype rule of tropix.tropical.semiring, on every library: the same call gives the same values in the
same dtype on NumPy, torch and array-api-strict (integer arrays beside float scalars, NumPy scalars, 0-d arrays,
arrays of another dtype), in the elementwise operations and in matmul."""

from __future__ import annotations

import math

import array_api_strict
import numpy as np
import pytest
import torch

from tropix import LogSemiring, MaxPlus, MinPlus, Real
from tropix.tropical.matmul import matmul

from conftest import to_np

LIBS = ["numpy", "torch", "array_api_strict"]
SEMIRINGS = [MaxPlus, MinPlus, Real, LogSemiring(1.0), LogSemiring(-0.5)]
INT_DTYPES = ["int8", "int16", "int32", "uint8", "bool"]


def _arr(lib, vals, dtype):
    a = np.asarray(vals, dtype=dtype)
    if lib == "numpy":
        return a
    if lib == "torch":
        return torch.as_tensor(a)
    return array_api_strict.asarray(a)


def _dtype_name(x):
    return str(x.dtype).split(".")[-1]




def _expected(S, op, xs, ys):
    out = []
    for u, v in zip(xs, ys):
        u, v = float(u), float(v)
        if op == "mul":
            out.append(u * v if S is Real else u + v)
        elif S is Real:
            out.append(u + v)
        elif isinstance(S, LogSemiring):
            m = max(u, v) if S.T > 0 else min(u, v)
            out.append(m + S.T * math.log1p(math.exp(-abs(u - v) / abs(S.T))))
        else:
            out.append(max(u, v) if S is MaxPlus else min(u, v))
    return out


def _check(S, op, out, want_dtype, xs, ys):
    assert _dtype_name(out) == want_dtype
    got = [float(v) for v in to_np(out).ravel()]
    want = [float(np.asarray(w, dtype=want_dtype)) for w in _expected(S, op, xs, ys)]
    if isinstance(S, LogSemiring):
        tol = 4 * float(np.finfo(want_dtype).eps)
        assert all(abs(g - w) <= tol * max(1.0, abs(w)) for g, w in zip(got, want)), (got, want)
    else:
        assert got == want


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("s", [5.0, 2.5, -3.0, 1000.0, np.float32(1000.0), np.float32(2.5), np.float64(5.0)])
def test_integer_array_with_a_float_scalar_is_float64(lib, dtype, s):
    """A float scalar beside an integer or bool array makes the result float64 on every library, whole or not and
    NumPy scalar or not: torch and array-api-strict kept int8 for ``MaxPlus.add(int8, 5.0)``, NumPy gave float32
    for ``np.float32(1000.0)``, where the other libraries gave float64."""
    vals = [1, 0, 1] if dtype == "bool" else [1, 0, 3]
    x = _arr(lib, vals, dtype)
    for S in SEMIRINGS:
        for op in ("add", "mul"):
            f = getattr(S, op)
            _check(S, op, f(x, s), "float64", vals, [s] * 3)
            _check(S, op, f(s, x), "float64", [s] * 3, vals)


@pytest.mark.parametrize("lib, dtype", [(lib, dt) for lib in LIBS for dt in ("float32", "float16")
                                        if not (lib == "array_api_strict" and dt == "float16")])  # (it has none)
def test_numpy_float_scalars_adapt_to_a_float_array(lib, dtype):
    """A NumPy scalar counts as the Python number it holds: ``MaxPlus.add(float32 array, np.float64(2.5))`` was
    float64 on NumPy (NumPy promotes its own scalars) and float32 on torch."""
    x = _arr(lib, [1.0, 3.0], dtype)
    for s in (np.float64(2.5), np.float32(2.5), 2.5):
        for S in SEMIRINGS:
            for op in ("add", "mul"):
                out = getattr(S, op)(x, s)
                assert _dtype_name(out) == dtype, (S, op, s)


PARTNERS = ["float32", "float64", "int64", "int8", "bool"]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("dtype", INT_DTYPES + ["float32"])
@pytest.mark.parametrize("partner", PARTNERS)
@pytest.mark.parametrize("shape", [(), (3,)])
def test_two_arrays_promote_as_numpy_does(lib, dtype, partner, shape):
    """Two arrays, 0-d ones included, promote as NumPy promotes their dtypes on every library: int32 with float32 is
    float64 (torch gave float32), int8 with float32 float32 (array-api-strict gave float64), a 0-d float64 tensor
    beside a float32 one float64 (torch gave float32), bool with int8 int8 (array-api-strict gave int64)."""
    vals = [1, 0, 1] if dtype == "bool" else [1, 0, 3]
    other = 1 if partner == "bool" else 2
    x = _arr(lib, vals, dtype)
    y = _arr(lib, np.full(shape, other), partner)
    want = np.result_type(np.dtype(dtype), np.dtype(partner))
    for S in SEMIRINGS:
        for op in ("add", "mul"):
            for a, b, xs, ys in ((x, y, vals, [other] * 3), (y, x, [other] * 3, vals)):
                out = getattr(S, op)(a, b)
                if want.kind != "f" and (isinstance(S, LogSemiring) or op == "mul" or S is Real):
                    # (integer results: widened to int64 against wrap-around; the log-semiring computes in float64)
                    wd = "float64" if isinstance(S, LogSemiring) else "int64"
                else:
                    wd = want.name
                _check(S, op, out, wd, xs, ys)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("da,db", [("int8", "float32"), ("int32", "float32"), ("int16", "float64"),
                                   ("float32", "float64"), ("float64", "float32"), ("bool", "int8"),
                                   ("bool", "float32"), ("bool", "bool"), ("uint8", "float32")])
@pytest.mark.parametrize("shapes", [((2, 3), (3, 2)), ((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,))])
def test_matmul_of_two_dtypes_is_the_same_on_every_library(lib, da, db, shapes):
    """``matmul`` of two dtypes follows the same rule: torch refused ``A @ B`` of two dtypes (Real, LogSemiring)
    and array-api-strict integers beside floats and bools (a raw TypeError / RuntimeError), torch gave int32 with
    float32 float32 where NumPy gives float64."""
    rng = np.random.default_rng(0)
    An = rng.integers(0, 2 if "bool" in da else 4, size=shapes[0]).astype(da)
    Bn = rng.integers(0, 2 if "bool" in db else 4, size=shapes[1]).astype(db)
    A, B = _arr(lib, An, da), _arr(lib, Bn, db)
    want = np.result_type(np.dtype(da), np.dtype(db))
    for S in SEMIRINGS:
        out = matmul(A, B, semiring=S)
        if want.kind == "f":
            wd = want.name
        else:
            wd = "float64" if isinstance(S, LogSemiring) else "int64"
        A2 = An.astype(np.float64).reshape(1, -1) if An.ndim == 1 else An.astype(np.float64)
        B2 = Bn.astype(np.float64).reshape(-1, 1) if Bn.ndim == 1 else Bn.astype(np.float64)
        if S is Real:
            ref = A2 @ B2
        elif isinstance(S, LogSemiring):
            t = (A2[:, :, None] + B2[None, :, :]) / S.T
            m = t.max(axis=1)
            ref = S.T * (np.log(np.exp(t - m[:, None, :]).sum(axis=1)) + m)
        else:
            t = A2[:, :, None] + B2[None, :, :]
            ref = t.max(axis=1) if S is MaxPlus else t.min(axis=1)
        got = to_np(out).astype(np.float64).reshape(ref.shape)
        assert _dtype_name(out) == wd, S
        if isinstance(S, LogSemiring):
            assert np.allclose(got, ref, rtol=0, atol=8 * float(np.finfo(wd).eps) * (1 + 8))  # (entries <= 4)
        else:
            assert np.array_equal(got, ref)


def test_zeroth_power_of_an_integer_array_stays_on_its_device():
    """``power(int array, 0)`` made its zeros on the library's default device (array-api-strict's 'device1'
    array came back on the CPU device)."""
    import array_api_strict as xs

    from tropix import MaxPlus, MinPlus

    dev = xs.Device("device1")
    for S in (MaxPlus, MinPlus):
        for a in (xs.asarray([1, 2], device=dev), xs.asarray([1.0, 2.0], device=dev)):
            for k in (0, 2):
                assert S.power(a, k).device == dev
