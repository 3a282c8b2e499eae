"""Edge cases of the semiring operations: inverses of the zero, the log semiring's illegal infinity,
integer dtypes that would wrap around, float overflow to the illegal infinity."""

from __future__ import annotations

import itertools
import re
from fractions import Fraction

import array_api_strict
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import LogSemiring, MaxPlus, MinPlus, Real
from tropix.errors import (
    ConventionError,
    FloatOverflowError,
    NaNError,
    NoInverseError,
    SemiringMismatchError,
    TropixError,
)
from tropix._array import asarray, is_exact
from tropix.tropical import matmul
from tropix.tropical.determinant import optimal_permutation, tdet

INF = float("inf")
TROPICAL = [MaxPlus, MinPlus]
ALL_ORDERED = [MaxPlus, MinPlus, LogSemiring(1.0), LogSemiring(-0.5)]


# ------------------------------------------------------------------ 4: the zero has no inverse
@pytest.mark.parametrize("S", ALL_ORDERED, ids=str)
@pytest.mark.parametrize("k", [-1, -3, -0.5])
def test_negative_power_of_zero_raises_no_inverse(S, k, backend):
    with pytest.raises(NoInverseError, match="no ⊗-inverse") as info:
        S.power(S.zero, k)
    assert isinstance(info.value, TropixError) and isinstance(info.value, ZeroDivisionError)
    with pytest.raises(NoInverseError, match=r"at index \(2,\)"):
        S.power(backend([1.0, 2.0, S.zero]), k)
    # positive and zero powers of the zero are fine, and negative powers of everything else
    assert S.power(S.zero, 2) == S.zero and S.power(S.zero, 0) == S.one
    assert to_np(S.power(backend([1.0, -2.0]), k)).tolist() == [k * 1.0, k * -2.0]


def test_negative_power_of_exact_array_with_zero():
    a = np.array([1, MaxPlus.zero], dtype=object)
    with pytest.raises(NoInverseError):
        MaxPlus.power(a, -2)
    assert MinPlus.power(np.array([1, 3], dtype=object), -2).tolist() == [-2, -6]


# ------------------------------------------------------------------ 3: the log semiring's illegal infinity
LOGS = [LogSemiring(1.0), LogSemiring(0.25), LogSemiring(-1.0), LogSemiring(-3.0)]


@pytest.mark.parametrize("S", LOGS + TROPICAL, ids=str)
def test_scalar_operations_reject_the_opposite_infinity(S):
    """Every ordered semiring (tropical or log) rejects ``-zero`` in its scalar operations, as MaxPlus does."""
    bad = -S.zero
    for op in (S.add, S.mul):
        for args in ((bad, 1), (1.5, bad), (bad, S.zero)):
            with pytest.raises(ConventionError, match=rf"not an element of {re.escape(S.name)}.*{re.escape(S.dual.name)}"):
                op(*args)
        with pytest.raises(NaNError, match="NaN"):
            op(1.0, float("nan"))
        with pytest.raises(SemiringMismatchError):
            op("x", 2.0)
    with pytest.raises(ConventionError):
        S.power(bad, 2)
    # the own zero is neutral for ⊕ and absorbing for ⊗
    assert S.add(S.zero, 1.5) == 1.5 and S.add(-2, S.zero) == -2
    assert S.mul(S.zero, 1.5) == S.zero


@pytest.mark.parametrize("S", LOGS, ids=str)
def test_log_semiring_validate_names_itself(S, backend):
    bad = -S.zero
    for x in (bad, [0.0, bad], backend([0.0, bad])):
        with pytest.raises(ConventionError, match=rf"{re.escape(S.name)} \(its zero is {S.zero}\).*{re.escape(S.dual.name)}"):
            S.validate(x, "scores")
    assert to_np(S.validate(backend([0.0, S.zero]))).tolist() == [0.0, S.zero]


# ------------------------------------------------------------------ 1: integer dtypes never wrap around
NP_INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"]
TORCH_INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "bool"]
STRICT_INT_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "bool"]


def _int_array(lib, dtype, values):
    if lib == "numpy":
        return np.asarray(values, dtype=dtype)
    if lib == "torch":
        return torch.as_tensor(np.asarray(values, dtype=dtype), dtype=getattr(torch, dtype))
    return array_api_strict.asarray(np.asarray(values, dtype=dtype))


def _int_lists(dtype):
    if dtype == "bool":
        return st.lists(st.booleans(), min_size=1, max_size=5)
    info = np.iinfo(dtype)
    edge = st.sampled_from([int(info.min), int(info.max), int(info.min) + 1, int(info.max) - 1, 0])
    return st.lists(st.one_of(edge, st.integers(int(info.min), int(info.max))), min_size=1, max_size=5)


def _exact_list(x):
    """Entries as Python ints (the values a correct result must equal exactly)."""
    return [int(v) for v in np.asarray(to_np(x)).ravel()] if not isinstance(x, int) else [x]


LIBS = [("numpy", d) for d in NP_INT_DTYPES] + [("torch", d) for d in TORCH_INT_DTYPES]
LIBS += [("array_api_strict", d) for d in STRICT_INT_DTYPES]


@pytest.mark.parametrize("lib,dtype", LIBS, ids=lambda v: str(v))
@settings(max_examples=15)
@given(data=st.data())
def test_integer_mul_power_prod_are_exact(lib, dtype, data):
    """⊗, ⊗-powers and ⊗-products of fixed-width integers equal the Python-integer results (no wrap)."""
    n = data.draw(st.integers(1, 5))
    la = data.draw(_int_lists(dtype).filter(lambda v: len(v) >= n).map(lambda v: v[:n]))
    lb = data.draw(_int_lists(dtype).filter(lambda v: len(v) >= n).map(lambda v: v[:n]))
    a, b = _int_array(lib, dtype, la), _int_array(lib, dtype, lb)
    ia, ib = [int(v) for v in la], [int(v) for v in lb]
    s = data.draw(st.sampled_from([0, 1, -1, 100, 2**31, -(2**62), 2**63]))
    k = data.draw(st.sampled_from([0, 1, 2, 3, -1, -5, 2**40]))
    for S in TROPICAL:
        out = S.mul(a, b)
        assert _exact_list(out) == [x + y for x, y in zip(ia, ib)]
        assert _exact_list(S.mul(a, s)) == [x + s for x in ia]
        assert _exact_list(S.mul(np.int64(s) if abs(s) < 2**63 else s, a)) == [s + x for x in ia]
        assert _exact_list(S.power(a, k)) == [k * x for x in ia]
        assert int(to_np(S.prod(a))) == sum(ia)
        got = to_np(out)
        assert got.dtype == object or got.dtype == np.int64  # widened exactly like matmul
    assert _exact_list(Real.mul(a, b)) == [x * y for x, y in zip(ia, ib)]
    assert _exact_list(Real.add(a, b)) == [x + y for x, y in zip(ia, ib)]


@pytest.mark.parametrize("lib", ["numpy", "torch", "array_api_strict"])
def test_integer_arrays_with_non_integer_partners(lib):
    a = _int_array(lib, "int8", [100, -100])
    # a float scalar promotes the integers to float64 (it is not cast to the integer dtype)
    out = MaxPlus.mul(a, 1.5)
    assert to_np(out).dtype == np.float64 and to_np(out).tolist() == [101.5, -98.5]
    assert to_np(MaxPlus.mul(a, MaxPlus.zero)).tolist() == [MaxPlus.zero] * 2
    assert to_np(MinPlus.power(a, 0.5)).tolist() == [50.0, -50.0]
    # an exact non-integer partner gives exact Fractions
    assert MaxPlus.mul(a, Fraction(1, 3)).tolist() == [Fraction(301, 3), Fraction(-299, 3)]
    assert MaxPlus.power(a, Fraction(-1, 3)).tolist() == [Fraction(-100, 3), Fraction(100, 3)]
    assert to_np(MaxPlus.power(a, Fraction(4, 2))).tolist() == [200, -200]
    assert to_np(MaxPlus.power(a, 0)).tolist() == [0, 0]


def test_numpy_integer_scalars_do_not_wrap():
    assert MaxPlus.mul(np.int8(100), np.int8(100)) == 200
    assert MinPlus.power(np.int8(-100), 3) == -300
    assert Real.mul(np.int16(300), np.int16(300)) == 90000


# ------------------------------------------------------------------ 2: float overflow toward the illegal infinity
BIG = 1.7976931348623157e308


def _big_floats(S, zero=True):
    """Floats near the top of the float64 range (both signs), ordinary ones, and the tropical zero."""
    huge = st.floats(1e307, BIG).flatmap(lambda v: st.sampled_from([v, -v]))
    cells = [huge, huge, st.floats(-1e3, 1e3, allow_nan=False)]
    if zero:
        cells.append(st.just(S.zero))
    return st.one_of(*cells)


def _py_best(S, xs):
    return (max if S.sense == 1 else min)(xs)


@pytest.mark.parametrize("S", TROPICAL, ids=str)
@settings(max_examples=40)
@given(data=st.data())
def test_matmul_overflow_detected_exactly(S, data):
    """Finite entries whose product entry rounds to ``-S.zero`` raise FloatOverflowError; nothing else does."""
    m, k, n = (data.draw(st.integers(1, 3)) for _ in range(3))
    A = [[data.draw(_big_floats(S)) for _ in range(k)] for _ in range(m)]
    B = [[data.draw(_big_floats(S)) for _ in range(n)] for _ in range(k)]
    ref = [[_py_best(S, [A[i][t] + B[t][j] for t in range(k)]) for j in range(n)] for i in range(m)]
    bad = -S.zero
    false_zero = any(
        ref[i][j] == S.zero and any(A[i][t] != S.zero and B[t][j] != S.zero for t in range(k))
        for i in range(m)
        for j in range(n)
    )
    for lib in ("numpy", "torch"):
        a, b = (np.array(X) if lib == "numpy" else torch.tensor(X, dtype=torch.float64) for X in (A, B))
        if any(v == bad for row in ref for v in row):
            with pytest.raises(FloatOverflowError, match=rf"{S.name}\.matmul.*not an element of {S.name}"):
                matmul(a, b, semiring=S)
        elif false_zero:
            with pytest.raises(FloatOverflowError, match="to the tropical zero|the tropical zero, although"):
                matmul(a, b, semiring=S)
        else:
            assert to_np(matmul(a, b, semiring=S)).tolist() == ref


@pytest.mark.parametrize("S", TROPICAL, ids=str)
@settings(max_examples=40)
@given(data=st.data())
def test_elementwise_overflow_detected_exactly(S, data):
    n = data.draw(st.integers(1, 4))
    la = [data.draw(_big_floats(S)) for _ in range(n)]
    lb = [data.draw(_big_floats(S)) for _ in range(n)]
    k = data.draw(st.sampled_from([1, 2, 3, -1, -2, 0.5]))
    bad = -S.zero
    cases = [
        (lambda: S.mul(np.array(la), np.array(lb)), [x + y for x, y in zip(la, lb)]),
        (lambda: S.mul(np.array(la), lb[0]), [x + lb[0] for x in la]),
        (lambda: S.mul(la[0], lb[0]), [la[0] + lb[0]]),
        (lambda: S.prod(np.array(la)), [sum(la)] if bad not in la else [S.zero]),
    ]
    if S.zero not in la or k > 0:
        cases.append((lambda: S.power(np.array(la), k), [k * x for x in la]))
    for fn, ref in cases:
        if any(v == bad or v != v for v in ref):
            with pytest.raises(FloatOverflowError, match="overflowed"):
                fn()
        else:
            out = np.atleast_1d(to_np(fn())).tolist()
            assert out == ref or np.allclose(out, ref, rtol=1e-15)  # prod: numpy's pairwise sum


@pytest.mark.parametrize("S", TROPICAL, ids=str)
def test_illegal_infinity_or_nan_in_mul_operands_is_reported_as_such(S):
    with pytest.raises(ConventionError):
        S.mul(np.array([1.0, -S.zero]), 2.0)
    with pytest.raises(NaNError):
        S.mul(np.array([1.0, float("nan")]), 2.0)
    # overflow toward the tropical zero is IEEE rounding to that zero (documented), not an error
    assert S.mul(np.array([S.sense * -BIG]), S.sense * -BIG).tolist() == [S.zero]


def _exact_tdet(A, S):
    """max (min) over permutations of the exact (Fraction) weight; None if every permutation meets a zero."""
    best = None
    for p in itertools.permutations(range(len(A))):
        if any(A[i][p[i]] == S.zero for i in range(len(A))):
            continue
        w = sum(Fraction(A[i][p[i]]) for i in range(len(A)))
        best = w if best is None else _py_best(S, [best, w])
    return best


@pytest.mark.parametrize("S", TROPICAL, ids=str)
@settings(max_examples=40)
@given(data=st.data())
def test_tdet_near_the_float_limit(S, data):
    """tdet of huge floats is the exact optimum rounded once, or FloatOverflowError if that is out of range."""
    n = data.draw(st.integers(1, 4))
    A = [[data.draw(_big_floats(S)) for _ in range(n)] for _ in range(n)]
    exact = _exact_tdet(A, S)
    if exact is None:
        assert tdet(np.array(A), semiring=S) == S.zero
        assert optimal_permutation(np.array(A), semiring=S) is None
        return
    try:
        expected = float(exact)
    except OverflowError:
        with pytest.raises(FloatOverflowError, match="beyond the float64 range"):
            tdet(np.array(A), semiring=S)
    else:
        assert tdet(np.array(A), semiring=S) == expected
    perm = optimal_permutation(np.array(A), semiring=S)
    assert sum(Fraction(A[i][perm[i]]) for i in range(n)) == exact


@pytest.mark.parametrize("T", [1e-3, 1.0, -1e-3, -2.0])
def test_log_semiring_near_the_float_limit(T):
    """Large finite values with a small temperature are not overflows (x/T is never formed); real overflows raise."""
    S = LogSemiring(T)
    top = BIG / 2 if T > 0 else -BIG / 2
    assert S.add(top, 1.0) == top and S.add(1.0, top) == top
    assert to_np(S.add(np.array([top, 0.0]), np.array([1.0, S.zero]))).tolist() == [top, 0.0]
    assert float(S.sum(np.array([top, 1.0, S.zero]))) == top
    C = matmul(np.array([[top, 0.0]]), np.array([[0.0], [-top]]), semiring=S)
    assert to_np(C).tolist() == [[top]]
    with pytest.raises(FloatOverflowError):
        S.mul(np.array([top]), np.array([top * 1.5]))
    with pytest.raises(FloatOverflowError):
        matmul(np.array([[top]]), np.array([[top * 1.5]]), semiring=S)


@pytest.mark.parametrize("S", TROPICAL, ids=str)
def test_matmul_false_tropical_zero_raises(S, backend):
    z, h = S.zero, -S.sense * 1e308  # h + h rounds to the tropical zero
    with pytest.raises(FloatOverflowError, match=r"at index \(0, 0\).*tropical zero"):
        matmul(backend([[h, z]]), backend([[h], [0.0]]), semiring=S)
    # a genuine zero (every term meets a zero entry) next to huge finite entries is fine
    C = matmul(backend([[z, h], [0.0, 0.0]]), backend([[0.0, h], [z, 0.0]]), semiring=S)
    assert to_np(C).tolist() == [[z, h], [0.0, 0.0]]
    # large matrices take the compiled kernel: same checks
    A = np.zeros((40, 40))
    A[3, :] = h
    with pytest.raises(FloatOverflowError, match=r"at index \(3, 3\)"):
        matmul(A, A.T.copy(), semiring=S)


# ------------------------------------------------------------------ 5: asarray, exactness follows the finite entries
@settings(max_examples=60)
@given(
    st.lists(
        st.one_of(
            st.integers(-10**20, 10**20),
            st.fractions(-50, 50, max_denominator=20),
            st.sampled_from([INF, -INF]),
            st.floats(-1e6, 1e6, allow_nan=False),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_asarray_exactness_follows_the_finite_entries(values):
    out = asarray(values)
    has_finite_float = any(isinstance(v, float) and v not in (INF, -INF) for v in values)
    if has_finite_float:
        assert out.dtype == np.float64 and out.tolist() == [float(v) for v in values]
    else:  # ints, Fractions and infinities only (possibly nothing but infinities): exact, values kept
        assert out.dtype == object and out.tolist() == values and is_exact(out)
        assert all(type(v) in (int, Fraction) or v in (INF, -INF) for v in out.tolist())
        assert asarray(np.array(values, dtype=object)).dtype == object


def test_all_infinite_input_is_exact_downstream():
    import sympy

    assert asarray([sympy.oo, -sympy.oo]).tolist() == [INF, -INF]
    assert asarray([[-INF, -INF], [-INF, -INF]]).dtype == object
    assert asarray([]).dtype == np.float64  # nothing to follow: float64 (as before)
    assert MaxPlus.validate([-INF]).dtype == object
    # exact routines treat an all-zero list like other exact input
    assert tdet([[-INF, -INF], [-INF, -INF]]) == -INF
    assert MinPlus.sum([INF, INF]) == INF
    C = matmul([[-INF, -INF]], [[0], [1]])
    assert C.dtype == object and C.tolist() == [[-INF]]


@pytest.mark.parametrize("S", TROPICAL, ids=str)
def test_float_arrays_to_a_fraction_power_stay_float(S, backend):
    out = S.power(backend([1.5, -4.0, S.zero]), Fraction(1, 2))
    assert to_np(out).dtype == np.float64 and to_np(out).tolist() == [0.75, -2.0, S.zero]


def test_overflow_message_for_dtypes_numpy_does_not_know():
    x = torch.tensor([3e38], dtype=torch.bfloat16)
    with pytest.raises(FloatOverflowError, match="finite bfloat16 values overflowed at index"):
        MaxPlus.mul(x, x)
