"""Edge cases of the semiring objects, each checked against a brute-force evaluation (Python ints/Fractions,
mpmath) or an exact property: LogSemiring's name, empty and keepdims reductions, NaN in ⊕, integer and float
dtypes that cannot hold an operand, huge and tiny temperatures, exact input beyond the float range, non-real
input, and Real's powers."""

from __future__ import annotations

import math
import pickle
from fractions import Fraction

import array_api_strict
import mpmath
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import LogSemiring, MaxPlus, MinPlus, Real
from tropix.errors import (
    ArgumentTypeError,
    ConventionError,
    DomainError,
    FloatOverflowError,
    NaNError,
    NoInverseError,
    ParseError,
    SemiringMismatchError,
    ShapeError,
    ToleranceError,
)
from tropix.tropical.semiring import get_semiring

INF = float("inf")
TROPICAL = [MaxPlus, MinPlus]
LOGS = [LogSemiring(1.0), LogSemiring(-0.5)]
ALL = TROPICAL + LOGS + [Real]
LIBS = ["numpy", "torch", "array_api_strict"]


def _arr(lib, values, dtype):
    """``values`` as an array of ``lib`` with the dtype named ``dtype`` (a NumPy dtype name)."""
    if lib == "numpy":
        return np.asarray(values, dtype=dtype)
    if lib == "torch":
        return torch.as_tensor(np.asarray(values, dtype=dtype))
    return array_api_strict.asarray(np.asarray(values, dtype=dtype))


def _lib_of(x):
    if isinstance(x, (np.ndarray, np.generic)):
        return "numpy"
    if isinstance(x, torch.Tensor):
        return "torch"
    if type(x).__module__.startswith("array_api_strict"):
        return "array_api_strict"
    return type(x).__name__


def _dtype_name(x):
    return str(x.dtype).split(".")[-1]


def _mp_log_sum(T, values):
    """T·log Σ exp(v/T) in 60-digit arithmetic, rounded once to a float (the zero ∓inf for no finite term)."""
    with mpmath.workdps(60):
        terms = [mpmath.mpf(v) for v in values if not math.isinf(v)]
        if not terms:
            return -INF if T > 0 else INF
        T = mpmath.mpf(T)
        m = max(terms) if T > 0 else min(terms)
        s = mpmath.fsum(mpmath.exp((t - m) / T) for t in terms)
        return float(m + T * mpmath.log(s))


def _close(got, want, rel=4e-16):
    if math.isinf(want):
        return got == want
    return abs(got - want) <= rel * max(1.0, abs(want))


# ------------------------------------------------------------------ 1: LogSemiring's name is exact
@pytest.mark.parametrize(
    "T1,T2", [(0.1, 0.1 + 1e-12), (1e-7, 1.00000001e-7), (123456789.123, 123456789.12300001), (2.0, 2.0000000000000004)]
)
def test_log_semiring_names_distinguish_temperatures(T1, T2):
    """Distinct temperatures have distinct names and reprs (``:g`` printed both as ``LogSemiring(T=0.1)``)."""
    assert T1 != T2
    S1, S2 = LogSemiring(T1), LogSemiring(T2)
    assert S1 != S2 and repr(S1) != repr(S2) and S1.name != S2.name and str(S1) != str(S2)
    assert {S1.name: 1, S2.name: 2}[S1.name] == 1  # a cache keyed by name keeps them apart


@settings(max_examples=200)
@given(
    T=st.floats(allow_nan=False, allow_infinity=False).filter(lambda t: t != 0)
    | st.sampled_from([5e-324, -5e-324, 1.7976931348623157e308, 0.1, 1 / 3, 1e-7])
)
def test_log_semiring_repr_round_trips(T):
    """``repr`` is exact: it parses back to an equal semiring with the same temperature, and equality, hashing
    and the name agree."""
    S = LogSemiring(T)
    assert repr(S) == f"LogSemiring(T={T!r})"
    back = get_semiring(repr(S))
    assert back == S and back.T == T and hash(back) == hash(S) and back.name == S.name
    assert eval(repr(S), {"LogSemiring": LogSemiring}) == S  # noqa: S307 - the repr is a constructor call
    assert pickle.loads(pickle.dumps(S)) == S
    assert S.dual.dual == S and S.dual.name == f"LogSemiring(T={-T!r})"


def test_log_semiring_equality_matches_names():
    Ts = [0.1, 0.1 + 1e-12, 1, 1.0, np.float32(0.5), 0.5, Fraction(1, 2), np.float16(0.1), -2, -2.0]
    for a in Ts:
        for b in Ts:
            Sa, Sb = LogSemiring(a), LogSemiring(b)
            assert (Sa == Sb) == (Sa.name == Sb.name) == (float(a) == float(b))
            if Sa == Sb:
                assert hash(Sa) == hash(Sb)


def test_log_semiring_rejects_temperatures_beyond_the_float_range():
    """An exact T beyond float64 raised a raw OverflowError; one that rounds to 0.0 gave ``LogSemiring(T=0)``
    (and divisions by zero later)."""
    with pytest.raises(ToleranceError, match="beyond the float range"):
        LogSemiring(10**400)
    with pytest.raises(ToleranceError, match="rounds to 0.0"):
        LogSemiring(Fraction(1, 10**400))
    with pytest.raises(ToleranceError):
        LogSemiring(np.float32("nan"))
    assert LogSemiring(Fraction(1, 3)).T == 1 / 3


def test_get_semiring_refuses_a_non_numeric_temperature():
    with pytest.raises(ParseError, match="not a number"):
        get_semiring("LogSemiring(T=abc)")
    assert get_semiring("LogSemiring(T=1e-07)") == LogSemiring(1e-7)


# ------------------------------------------------------------------ 2: empty reductions
def _expected_empty_dtype(S, op, dtype):
    if isinstance(S, LogSemiring) or dtype.startswith("float"):
        return dtype if dtype.startswith("float") else "float64"
    if S is Real:
        return "int64"
    value = S.zero if op == "sum" else S.one
    return "float64" if math.isinf(value) else "int64"


EMPTY_CASES = [((0,), None), ((0,), 0), ((0,), -1), ((2, 0), 1), ((2, 0), None), ((0, 3), 0), ((2, 0, 3), (1, 2))]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("S", ALL, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_empty_reductions_are_typed_arrays(lib, S, dtype):
    """The empty ⊕-sum is the zero, the empty ⊗-product the one, as an array (a NumPy scalar for NumPy's full
    reductions) of the input's library and floating dtype, of the reduced shape, keepdims honoured.

    ``LogSemiring(T).sum(torch.zeros(0), axis=0)`` gave a Python float; ``MaxPlus.prod`` of an empty float32
    NumPy array a Python int; keepdims was not accepted."""
    for shape, axis in EMPTY_CASES:
        x = _arr(lib, np.zeros(shape), dtype)
        axes = tuple(range(len(shape))) if axis is None else tuple(a % len(shape) for a in np.atleast_1d(axis))
        for op, value in (("sum", S.zero), ("prod", S.one)):
            for keepdims in (False, True):
                out = getattr(S, op)(x, axis=axis, keepdims=keepdims)
                want_shape = tuple(
                    1 if i in axes else s for i, s in enumerate(shape) if keepdims or i not in axes
                )
                assert _lib_of(out) == lib, (op, shape, axis, type(out))
                assert tuple(out.shape) == want_shape, (op, shape, axis, keepdims)
                assert _dtype_name(out) == _expected_empty_dtype(S, op, dtype), (op, shape, axis, out.dtype)
                vals = to_np(out)
                if vals.size and not (0 in want_shape):
                    assert (vals == value).all(), (op, shape, axis, vals)
                if isinstance(out, torch.Tensor):
                    assert out.device == x.device


@pytest.mark.parametrize("S", ALL, ids=str)
def test_empty_reductions_of_exact_arrays(S):
    x = np.empty((0, 2), dtype=object)
    for op, value in (("sum", S.zero), ("prod", S.one)):
        out = getattr(S, op)(x, axis=0)
        assert to_np(out).shape == (2,) and all(v == value for v in to_np(out).ravel())
        full = getattr(S, op)(x)
        assert float(full) == value
        kept = getattr(S, op)(x, keepdims=True)
        assert to_np(kept).shape == (1, 1) and float(to_np(kept).ravel()[0]) == value


# ------------------------------------------------------------------ keepdims, tuple axes and bad axes
def _fold(S, values, op):
    acc = S.zero if op == "sum" else S.one
    for v in values:
        acc = (S.add if op == "sum" else S.mul)(acc, v)
    return acc


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("S", ALL, ids=str)
def test_reductions_keepdims_and_tuple_axes_match_the_fold(lib, S):
    """Every axis choice (int, negative, tuple, None) with and without keepdims equals the fold of the scalar
    operations (tuple axes raised TypeError in the ordered semirings; keepdims was not a parameter)."""
    rng = np.random.default_rng(7)
    base = rng.integers(-20, 20, size=(2, 3, 4)).astype(np.float64)
    x = _arr(lib, base, "float64")
    for axis in (0, -1, 1, (0, 2), (2, 0), None):
        axes = tuple(range(3)) if axis is None else tuple(sorted(a % 3 for a in np.atleast_1d(axis)))
        rest = [i for i in range(3) if i not in axes]
        moved = np.transpose(base, rest + list(axes)).reshape([base.shape[i] for i in rest] + [-1])
        for op in ("sum", "prod"):
            flat = moved.reshape(-1, moved.shape[-1])
            folded = np.array([float(_fold(S, list(map(float, row)), op)) for row in flat])
            want = folded.reshape(moved.shape[:-1])
            for keepdims in (False, True):
                out = getattr(S, op)(x, axis=axis, keepdims=keepdims)
                got = to_np(out)
                kshape = tuple(1 if i in axes else base.shape[i] for i in range(3))
                assert got.shape == (kshape if keepdims else want.shape)
                np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-13)


@pytest.mark.parametrize("S", ALL, ids=str)
def test_bad_axes_raise_tropix_errors(S):
    x = np.ones((2, 3))
    with pytest.raises(ShapeError, match="out of bounds"):
        S.sum(x, axis=2)
    with pytest.raises(ShapeError, match="out of bounds"):
        S.prod(np.ones((2, 0)), axis=-3)  # (empty input: the axis was taken modulo the dimensions)
    with pytest.raises(ShapeError, match="twice"):
        S.sum(x, axis=(1, -1))
    with pytest.raises(ArgumentTypeError):
        S.sum(x, axis=1.0)


# ------------------------------------------------------------------ NaN in ⊕ of the tropical semirings
@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("S", TROPICAL, ids=str)
def test_nan_in_tropical_add_and_sum_raises(lib, S):
    """maximum/minimum and max/min propagate NaN: ⊕ and Σ⊕ returned NaN silently, ⊗ raised NaNError."""
    x = _arr(lib, [1.0, float("nan"), 3.0], "float64")
    y = _arr(lib, [0.0, 0.0, 0.0], "float64")
    with pytest.raises(NaNError, match=r"index \(1,\)"):
        S.add(x, y)
    with pytest.raises(NaNError):
        S.add(y, float("nan"))
    with pytest.raises(NaNError):
        S.sum(x)
    with pytest.raises(NaNError):
        S.sum(_arr(lib, [[1.0, 2.0], [float("nan"), 0.0]], "float64"), axis=1)
    with pytest.raises(NaNError):
        S.mul(x, y)
    # the checks let the tropical zero through and still reject the opposite infinity
    assert to_np(S.add(y, S.zero)).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ConventionError):
        S.add(y, _arr(lib, [0.0, -S.zero, 0.0], "float64"))


# ------------------------------------------------------------------ integer dtypes that cannot hold an operand
INT_DTYPES = {"numpy": ["int8", "uint8", "int16", "int64", "uint64"], "torch": ["int8", "uint8", "int64"]}
INT_DTYPES["array_api_strict"] = ["int8", "uint8", "int32", "uint64"]


@pytest.mark.parametrize("lib,dtype", [(lib, d) for lib in LIBS for d in INT_DTYPES[lib]])
@settings(max_examples=25)
@given(data=st.data())
def test_tropical_add_of_integers_equals_python_max_min(lib, dtype, data):
    """⊕ with an integer scalar beyond the array's dtype equals Python's max/min: ``MinPlus.add(uint8, -1)``
    raised OverflowError (NumPy), RuntimeError (torch) or OverflowError (array-api-strict)."""
    info = np.iinfo(dtype)
    vals = data.draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=1, max_size=5))
    s = data.draw(st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([-1, 1000, -129, 256, 2**63, -(2**63) - 1])))
    x = _arr(lib, vals, dtype)
    for S in TROPICAL:
        best = max if S is MaxPlus else min
        for out in (S.add(x, s), S.add(s, x)):
            assert [int(v) for v in to_np(out).ravel()] == [best(v, s) for v in vals]
        assert [int(v) for v in to_np(S.add(x, x)).ravel()] == vals
        assert _dtype_name(S.add(x, x)) == dtype  # (no needless widening)


def test_tropical_add_of_mixed_integer_dtypes_is_exact():
    """uint64 with int64 has no integer promotion in NumPy (float64: 2**63 + 1 became 2**63)."""
    a = np.array([2**63 + 1, 5], dtype=np.uint64)
    b = np.array([-1, 2**62 + 1], dtype=np.int64)
    assert [int(v) for v in MaxPlus.add(a, b)] == [2**63 + 1, 2**62 + 1]
    assert [int(v) for v in MinPlus.add(a, b)] == [-1, 5]
    sa = array_api_strict.asarray(a)
    sb = array_api_strict.asarray(b)
    assert [int(v) for v in to_np(MaxPlus.add(sa, sb))] == [2**63 + 1, 2**62 + 1]
    # int8 with uint8 promote exactly (int16): kept
    c = MaxPlus.add(np.array([-5], np.int8), np.array([200], np.uint8))
    assert c.dtype == np.int16 and c.tolist() == [200]


@pytest.mark.parametrize("lib", ["torch", "array_api_strict"])
def test_tropical_add_of_integers_with_a_fraction_is_exact(lib):
    """An integer array of another library beside a Fraction was widened to float64 (1/3 inexact), while ⊗ and
    NumPy's ⊕ gave exact Fractions."""
    x = _arr(lib, [1, -2, 0], "int32")
    out = MinPlus.add(x, Fraction(1, 3))
    assert to_np(out).tolist() == [Fraction(1, 3), -2, 0]
    assert all(isinstance(v, (int, Fraction)) for v in to_np(out).ravel())
    assert to_np(MaxPlus.add(Fraction(-7, 2), x)).tolist() == [1, Fraction(-2), 0]


@pytest.mark.parametrize("S", TROPICAL + [Real], ids=str)
def test_int_and_float_arrays_in_a_strict_library(S):
    """array-api-strict refuses int32 with float32 (a raw TypeError): the integers are taken as float64."""
    a = array_api_strict.asarray(np.array([1, -3, 2**24 + 1], dtype=np.int32))
    b = array_api_strict.asarray(np.array([0.5, -4.0, 2.0], dtype=np.float32))
    ia, fb = [1, -3, 2**24 + 1], [0.5, -4.0, 2.0]
    ref = {MaxPlus: (max, lambda u, v: u + v), MinPlus: (min, lambda u, v: u + v), Real: (lambda u, v: u + v, lambda u, v: u * v)}[S]
    assert to_np(S.add(a, b)).tolist() == [ref[0](u, v) for u, v in zip(ia, fb)]
    assert to_np(S.mul(a, b)).tolist() == [ref[1](u, v) for u, v in zip(ia, fb)]


# ------------------------------------------------------------------ scalars beyond a float array's range
@pytest.mark.parametrize("lib,dtype,big", [(lib, dt, big) for lib in LIBS for dt, big in (("float16", 1e5), ("float32", 1e39))
                                            if not (lib == "array_api_strict" and dt == "float16")])  # (it has no float16)
def test_scalar_beyond_the_float_dtype_is_not_an_infinity(lib, dtype, big):
    """A finite scalar beyond the array's float range was cast to ``inf``: ⊕ in max-plus then claimed an operand
    held ``inf`` (ConventionError), and LogSemiring(T<0) and min-plus dropped it as their zero.  The
    operations now equal the brute force in Python floats."""
    vals = [60000.0, 1.0, -2.5]
    x = _arr(lib, vals, dtype)
    xv = [float(v) for v in np.asarray(vals, dtype=dtype)]
    for s in (big, -big):
        assert to_np(MaxPlus.add(x, s)).tolist() == [max(v, s) for v in xv]
        assert to_np(MinPlus.add(s, x)).tolist() == [min(v, s) for v in xv]
        assert to_np(MaxPlus.mul(x, s)).tolist() == [v + s for v in xv]
        for T in (-1e5, 2.0, -0.5):
            S = LogSemiring(T)
            got = to_np(S.add(x, s)).tolist()
            assert all(_close(g, _mp_log_sum(T, [v, s]), 1e-15) for g, v in zip(got, xv)), (T, s, got)


def test_fraction_scalar_beside_a_numpy_float_array_stays_float():
    """A Fraction made NumPy build an object array of Python floats (and Fractions) from a float32 array."""
    x = np.array([1.0, 0.25], dtype=np.float32)
    for S in TROPICAL + [Real]:
        for op in (S.add, S.mul):
            out = op(x, Fraction(1, 3))
            assert out.dtype == np.float32
    assert MinPlus.add(x, Fraction(1, 3)).tolist() == [np.float32(1 / 3), 0.25]


def test_exact_scalar_beyond_float64_beside_a_float_array():
    """``MaxPlus.add(float array, 10**400)`` raised a raw OverflowError."""
    x = np.array([1.0, -INF])
    with pytest.raises(FloatOverflowError, match="beyond the float range"):
        MaxPlus.add(x, 10**400)
    assert MinPlus.add(np.array([1.0, 2.0]), 10**400).tolist() == [1.0, 2.0]
    assert MaxPlus.add(np.array([1.0, 2.0]), -(10**400)).tolist() == [1.0, 2.0]


# ------------------------------------------------------------------ LogSemiring: huge and tiny T, float16
@pytest.mark.parametrize("T", [1.7e308, 1e308, -1.7e308, 5e307])
def test_log_semiring_huge_temperature_matches_mpmath(T):
    """With entries of both signs near the float limit, ``a - b`` overflows although ``(a - b)/T`` is small:
    the term was dropped (``LogSemiring(1.7e308).sum([1e308, -1e308])`` gave 1e308, not 1.457e308)."""
    S = LogSemiring(T)
    for vals in ([1e308, -1e308], [-1e308, 1e308, 0.0], [1.5e308, -1.5e308]):
        want = _mp_log_sum(T, vals)
        if math.isinf(want):
            continue
        assert _close(float(S.sum(np.array(vals))), want, 1e-14), vals
        assert _close(S.add(vals[0], vals[1]), _mp_log_sum(T, vals[:2]), 1e-14)
        assert _close(float(to_np(S.add(np.array(vals[:1]), np.array(vals[1:2])))[0]), _mp_log_sum(T, vals[:2]), 1e-14)
        assert _close(float(S.sum(torch.tensor(vals, dtype=torch.float64))), want, 1e-14)


@settings(max_examples=60)
@given(
    T=st.sampled_from([5e-324, 1e-300, 1e-8, 0.3, 1.0, 7.0, 1e8, 1e300, 1.7e308]).flatmap(
        lambda t: st.sampled_from([t, -t])
    ),
    vals=st.lists(
        st.floats(-1.7e308, 1.7e308, allow_nan=False) | st.floats(-50, 50) | st.sampled_from([1e308, -1e308]),
        min_size=1,
        max_size=6,
    ),
)
@example(T=1.7e308, vals=[1e308, -1e308])
@example(T=-1.7e308, vals=[-1.5e308, 1.5e308, 3.0])
@example(T=1e-300, vals=[0.0, 1e-300])
def test_log_semiring_sum_and_add_match_mpmath(T, vals):
    """⊕ and Σ⊕ are within a few ulps of the 60-digit value for every temperature from subnormal to 1.7e308
    (entries of both signs near the float limit overflowed ``a - b`` and dropped terms), or raise
    FloatOverflowError exactly when that value is beyond the float range."""
    S = LogSemiring(T)
    want = _mp_log_sum(T, vals)
    if math.isinf(want) and want != S.zero:
        with pytest.raises(FloatOverflowError):
            S.sum(np.array(vals))
        return
    got = float(S.sum(np.array(vals)))
    assert _close(got, want, 1e-14 + 1e-16 * len(vals)), (got, want)
    a, b = vals[0], vals[-1]
    w2 = _mp_log_sum(T, [a, b])
    if not math.isinf(w2):
        assert _close(S.add(a, b), w2, 1e-14)
        assert _close(float(S.add(np.array([a]), np.array([b]))[0]), w2, 1e-14)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_log_semiring_float16_sum_accumulates_beyond_65504(lib):
    """Σ exp in float16 overflowed at 65505 terms: ``LogSemiring(1).sum(zeros(70000, float16))`` raised
    FloatOverflowError though the result, log(70000) = 11.16, is a float16."""
    n = 70000
    x = _arr(lib, np.zeros(n), "float16")
    out = LogSemiring(1.0).sum(x)
    assert _dtype_name(out) == "float16"
    assert float(out) == float(np.float16(math.log(n)))
    # a temperature float16 holds, with differences it does not: -60000 - 10000 overflowed float16 and the
    # term was dropped (10000 for 26270)
    y = _arr(lib, [10000.0, -60000.0], "float16")
    assert float(LogSemiring(6e4).sum(y)) == float(np.float16(_mp_log_sum(6e4, [10000.0, -60000.0])))


# ------------------------------------------------------------------ LogSemiring: operand checks
@pytest.mark.parametrize("S", LOGS, ids=str)
def test_log_semiring_scalar_reductions_check_their_input(S):
    """Scalar sums and products returned NaN, the opposite infinity and raw ValueErrors for strings."""
    for op in (S.sum, S.prod):
        with pytest.raises(NaNError):
            op(float("nan"))
        with pytest.raises(ConventionError):
            op(-S.zero)
        with pytest.raises(SemiringMismatchError):
            op("a")
        with pytest.raises(SemiringMismatchError):
            op(None)
        assert op(S.zero) == S.zero and op(Fraction(1, 4)) == 0.25
    with pytest.raises(SemiringMismatchError):
        S.sum(np.array([1j, 2.0]))  # (a ComplexWarning and the real parts before)
    with pytest.raises(SemiringMismatchError):
        S.add(np.array([1.0]), np.array(["a"], dtype=object))


@pytest.mark.parametrize("lib", ["torch", "array_api_strict"])
@pytest.mark.parametrize("T", [1.0, -0.5, 3.0])
def test_log_semiring_integer_arrays_with_large_scalars(lib, T):
    """torch and array-api-strict cast the scalar to the array's integer dtype: int8 with 1000 raised."""
    S = LogSemiring(T)
    vals = [100, -128, 0]
    x = _arr(lib, vals, "int8")
    for s in (1000, -1000, 10**6):
        got = to_np(S.add(x, s)).tolist()
        assert all(_close(g, _mp_log_sum(T, [v, s]), 1e-15) for g, v in zip(got, vals))
        assert to_np(S.mul(x, s)).tolist() == [float(v + s) for v in vals]


def test_log_semiring_exact_input_beyond_the_float_range():
    """Exact ints beyond float64 raised a raw OverflowError; the zero absorbs them in ⊗."""
    S = LogSemiring(1.0)
    assert S.mul(10**400, -INF) == -INF
    assert S.prod(np.array([-INF, 10**400], dtype=object)) == -INF
    assert S.add(-(10**400), 2) == 2.0
    for call in (lambda: S.mul(10**400, 1), lambda: S.add(10**400, 1), lambda: S.sum(np.array([10**400, 1], dtype=object))):
        with pytest.raises(FloatOverflowError, match="beyond the float range"):
            call()
    # exact input is summed exactly and rounded once: 1/10 + 2/10 is 0.3, not 0.30000000000000004
    assert S.mul(Fraction(1, 10), Fraction(2, 10)) == 0.3
    assert S.prod(np.array([[Fraction(1, 10), Fraction(2, 10)]], dtype=object), axis=1).tolist() == [0.3]
    assert S.prod([Fraction(1, 10), Fraction(2, 10)]) == 0.3


# ------------------------------------------------------------------ non-real input
@pytest.mark.parametrize("S", ALL, ids=str)
def test_non_real_input_raises_semiring_mismatch(S):
    """Strings, None and complex scalars beside arrays reached the library (raw UFuncTypeError, TypeError, or a
    complex result); Real returned a string as its sum; validate returned them as elements."""
    x = np.ones(2)
    for bad in ("a", None, 1j):
        with pytest.raises(SemiringMismatchError):
            S.add(x, bad)
        with pytest.raises(SemiringMismatchError):
            S.mul(bad, torch.ones(2))
        with pytest.raises(SemiringMismatchError):
            S.sum(bad)
        with pytest.raises(SemiringMismatchError):
            S.prod(bad)
        with pytest.raises(SemiringMismatchError):
            S.validate(bad)
    with pytest.raises(SemiringMismatchError):
        S.sum(np.array([1, "a"], dtype=object))
    with pytest.raises(SemiringMismatchError):
        S.prod(np.array([1, "a"], dtype=object))
    with pytest.raises(SemiringMismatchError):
        S.sum(np.array([1j]))


# ------------------------------------------------------------------ Real's powers
@pytest.mark.parametrize("lib", LIBS)
@settings(max_examples=25)
@given(
    vals=st.lists(st.integers(-100, 100).filter(lambda v: v != 0), min_size=1, max_size=5),
    k=st.integers(-6, -1),
)
def test_real_negative_powers_of_integers_are_exact(lib, vals, k):
    """NumPy/torch refused integers to negative powers (raw ValueError/RuntimeError): the exact Fractions."""
    x = _arr(lib, vals, "int64")
    assert to_np(Real.power(x, k)).tolist() == [Fraction(v) ** k for v in vals]
    assert Real.power(vals[0], k) == Fraction(vals[0]) ** k
    assert Real.power(Fraction(vals[0], 7), k) == Fraction(vals[0], 7) ** k


def test_real_power_domain():
    with pytest.raises(NoInverseError):
        Real.power(0, -1)  # (a raw ZeroDivisionError)
    with pytest.raises(NoInverseError, match=r"index \(1,\)"):
        Real.power(np.array([2, 0]), -2)
    with pytest.raises(NoInverseError):
        Real.power(np.array([2.0, 0.0]), -1)  # (inf and a RuntimeWarning)
    with pytest.raises(DomainError):
        Real.power(-4, 0.5)  # (a complex number)
    with pytest.raises(DomainError):
        Real.power(np.array([4.0, -9.0]), Fraction(1, 2))  # (NaN)
    with pytest.raises(NaNError):
        Real.power(2.0, float("nan"))
    assert Real.power(1e308, 2) == INF and Real.power(-1e308, 3) == -INF  # (a raw OverflowError; IEEE as arrays)
    assert to_np(Real.power(np.array([4, 9]), Fraction(1, 2))).tolist() == [2.0, 3.0]
    assert Real.power(np.array([4, 9]), Fraction(1, 2)).dtype == np.float64  # (an object array of floats)
    assert Real.power(0, 0) == 1 and Real.power(np.array([0.0]), 0).tolist() == [1.0]


def test_log_matmul_with_a_huge_temperature_keeps_every_term():
    # (a - max) overflowed to -inf for entries 1e308 and -1e308 at T = 1.7e308: the term was dropped
    # (1e308 for T log(e^{1e308/T} + e^{-1e308/T}) = 1.457e308); against mpmath and the semiring's own sum
    import mpmath

    from tropix.tropical import matmul

    T = 1.7e308
    S = LogSemiring(T)
    A = np.array([[1e308, -1e308], [5e307, -1e308]])
    B = np.zeros((2, 1))
    for lib in (np, torch):
        out = to_np(matmul(lib.asarray(A) if lib is np else torch.tensor(A), lib.asarray(B) if lib is np else torch.tensor(B), semiring=S))
        for i in range(2):
            ref = float(mpmath.mpf(T) * mpmath.log(sum(mpmath.exp(mpmath.mpf(x) / T) for x in A[i])))
            assert out[i, 0] == pytest.approx(ref, rel=1e-14)
            assert out[i, 0] == pytest.approx(float(S.sum(A[i])), rel=1e-14)


def test_log_matmul_of_exact_entries_beyond_the_float_range_is_a_float_overflow_error():
    from tropix.errors import FloatOverflowError
    from tropix.tropical import matmul

    A = np.array([[10**400, 0]], dtype=object)
    B = np.array([[0], [float("-inf")]], dtype=object)
    with pytest.raises(FloatOverflowError, match="beyond the float range"):
        matmul(A, B, semiring=LogSemiring(1.0))


def test_real_power_of_a_negative_base_to_a_whole_float_exponent():
    # 2.0, -1.0 and np.float64(3) were taken for fractional exponents: DomainError for any negative base
    assert Real.power(-2.0, 2.0) == 4.0 and Real.power(-3, 2.0) == 9.0
    assert to_np(Real.power(np.array([-1.0, 2.0]), 2.0)).tolist() == [1.0, 4.0]
    assert to_np(Real.power(np.array([-2.0, 4.0]), -1.0)).tolist() == [-0.5, 0.25]
    assert to_np(Real.power(torch.tensor([-3.0, 2.0]), np.float64(3))).tolist() == [-27.0, 8.0]
    with pytest.raises(DomainError):
        Real.power(np.array([-2.0, 4.0]), 0.5)


@pytest.mark.parametrize("S", [MaxPlus, MinPlus])
def test_tropical_add_of_a_bool_array_and_an_integer(S):
    # array_api_compat's iinfo(bool) raised a raw AttributeError in the integer-range check
    f = max if S is MaxPlus else min
    for lib in (np, torch):
        x = lib.asarray([True, False]) if lib is np else torch.tensor([True, False])
        for s in (0, 3, -2):
            assert to_np(S.add(x, s)).tolist() == [f(int(v), s) for v in (True, False)]


def test_a_losing_scalar_beyond_the_float_range_keeps_the_arrays_dtype():
    # -1e39 beside float32 entries loses to every one of them: the result is the entries, in float32 (it
    # became float64); beside the tropical zero it is the scalar itself, which needs float64
    x = torch.tensor([1.0, -2.0])
    out = MaxPlus.add(x, -1e39)
    assert out.dtype == torch.float32 and out.tolist() == [1.0, -2.0]
    out = MinPlus.add(np.array([1.0, -2.0], np.float16), 1e5)
    assert out.dtype == np.float16 and out.tolist() == [1.0, -2.0]
    out = MaxPlus.add(torch.tensor([1.0, float("-inf")]), -1e39)
    assert out.dtype == torch.float64 and out.tolist() == [1.0, -1e39]
    out = MaxPlus.add(torch.tensor([1.0, -2.0]), 1e39)  # (a winning scalar: float64)
    assert out.dtype == torch.float64 and out.tolist() == [1e39, 1e39]


def test_object_arrays_are_checked_without_a_converted_copy():
    # the check still refuses NaN, the opposite infinity and non-numbers in object arrays
    A = np.array([[Fraction(1, 3), 2], [float("-inf"), 5]], dtype=object)
    assert MaxPlus.sum(A, axis=-1).tolist() == [2, 5]
    with pytest.raises(NaNError):
        MaxPlus.sum(np.array([1, float("nan")], dtype=object))
    with pytest.raises(ConventionError):
        MaxPlus.add(np.array([1, float("inf")], dtype=object), np.array([0, 0], dtype=object))
    with pytest.raises(SemiringMismatchError):
        MaxPlus.sum(np.array([1, "a"], dtype=object))


def test_real_power_zero_of_a_float_is_a_float():
    assert type(Real.power(2.5, 0)) is float and Real.power(2.5, 0) == 1.0
    assert Real.power(np.float16(2.5), 0).dtype == np.float16
    assert type(Real.power(3, 0)) is int


@pytest.mark.parametrize("lib,dtype", [("torch", "int8"), ("torch", "uint8"), ("torch", "int32"),
                                       ("array_api_strict", "int8"), ("array_api_strict", "uint8")])
def test_tropical_add_of_integers_and_a_whole_float_beyond_their_dtype(lib, dtype):
    """torch / array-api-strict cast the scalar to the array's integer dtype: MaxPlus.add(int8, 1000.0) was a raw
    RuntimeError ("value cannot be converted to type int8 without overflow"), OverflowError for array-api-strict.
    The result is NumPy's: the integers in float64 beside the float."""
    vals = [1, 2, 0] if dtype == "uint8" else [1, -2, 0]
    x = _arr(lib, vals, dtype)
    for s in (1000.0, -1000.0, 1e30, -129.0, 256.0, 2.0**40, np.float64(-300.0), np.float32(1e20)):
        for S in TROPICAL:
            best = max if S is MaxPlus else min
            for out in (S.add(x, s), S.add(s, x)):
                ref = S.add(np.asarray(vals, dtype=dtype), s)  # NumPy's result
                assert to_np(out).tolist() == [float(best(v, float(s))) for v in vals] == ref.tolist()
                assert _dtype_name(out) == "float64" == ref.dtype.name
    for S in TROPICAL:  # a whole float the dtype holds is a float too: float64, as NumPy gives (it kept int8)
        assert _dtype_name(S.add(x, 2.0)) == "float64"


def test_real_power_of_a_mixed_object_array_keeps_it_exact():
    """Real.power of an object array holding a Fraction and a float gave float64 (1/3 squared became
    0.111...): the other object-array operations keep object arrays, exact entries exact and floats floats."""
    a = np.array([Fraction(1, 3), 0.5, 2, -INF], dtype=object)
    assert Real.mul(a[:3], a[:3]).dtype == object  # (the operations it is consistent with)
    for k, want in ((2, [Fraction(1, 9), 0.25, 4, INF]), (3, [Fraction(1, 27), 0.125, 8, -INF]),
                    (0, [1, 1.0, 1, 1.0]), (-1, [3, 2.0, Fraction(1, 2), -0.0])):
        out = Real.power(a, k)
        assert out.dtype == object and out.tolist() == want
        assert [type(v) for v in out] == [type(v) for v in want]
    b = np.array([[10**400, 0.5]], dtype=object)  # (float64 conversion: a FloatOverflowError)
    assert Real.power(b, 2).tolist() == [[10**800, 0.25]]
    assert Real.power(np.array([Fraction(1, 4), 0.25], dtype=object), Fraction(1, 2)).tolist() == [0.5, 0.5]
    with pytest.raises(SemiringMismatchError):
        Real.power(np.array([Fraction(1, 3), 0.5, "a"], dtype=object), 2)
    with pytest.raises(NoInverseError, match=r"index \(1,\)"):
        Real.power(np.array([Fraction(1, 3), 0.0], dtype=object), -1)
