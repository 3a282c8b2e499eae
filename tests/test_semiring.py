"""Semiring axioms by hypothesis: scalars (int, Fraction, float, ±inf zeros) and arrays on every backend."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import LogSemiring, MaxPlus, MinPlus, Real
from tropix.errors import ConventionError, NaNError, SemiringMismatchError, ToleranceError
from tropix.tropical import check_same_semiring, get_semiring

INF = float("inf")
TROPICAL = [MaxPlus, MinPlus]
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)


def exact_scalars(S):
    """ints, Fractions and the tropical zero: every axiom must hold with ==."""
    return st.one_of(
        st.integers(-10**6, 10**6),
        st.fractions(-100, 100, max_denominator=50),
        st.just(S.zero),
    )


def float_scalars(S):
    return st.one_of(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), st.just(S.zero))


# ------------------------------------------------------------------ tropical scalars, exact
@pytest.mark.parametrize("S", TROPICAL, ids=str)
@given(data=st.data())
def test_tropical_axioms_exact(S, data):
    a, b, c = (data.draw(exact_scalars(S)) for _ in range(3))
    add, mul = S.add, S.mul
    assert add(add(a, b), c) == add(a, add(b, c))
    assert add(a, b) == add(b, a)
    assert mul(mul(a, b), c) == mul(a, mul(b, c))
    assert mul(a, b) == mul(b, a)
    assert mul(a, add(b, c)) == add(mul(a, b), mul(a, c))
    assert mul(add(b, c), a) == add(mul(b, a), mul(c, a))
    assert add(a, S.zero) == a and add(S.zero, a) == a
    assert mul(a, S.one) == a and mul(S.one, a) == a
    assert mul(a, S.zero) == S.zero and mul(S.zero, a) == S.zero
    assert add(a, a) == a  # idempotent
    assert add(a, b) in (a, b)  # selective
    assert (add(a, b) == a) == (not S.better(b, a))  # ⊕ picks the better one
    assert S.idempotent


@pytest.mark.parametrize("S", TROPICAL, ids=str)
@given(data=st.data())
def test_tropical_axioms_float(S, data):
    """Floats: ⊕ is exact, distributivity is exact (rounding is monotone); ⊗-associativity is not tested
    (float + is not associative)."""
    a, b, c = (data.draw(float_scalars(S)) for _ in range(3))
    add, mul = S.add, S.mul
    assert add(add(a, b), c) == add(a, add(b, c))
    assert add(a, b) == add(b, a)
    assert mul(a, b) == mul(b, a)
    assert mul(a, add(b, c)) == add(mul(a, b), mul(a, c))
    assert add(a, S.zero) == a and mul(a, S.one) == a and mul(a, S.zero) == S.zero
    assert add(a, a) == a


@pytest.mark.parametrize("S", TROPICAL, ids=str)
def test_opposite_infinity_and_nan_rejected(S):
    bad = -S.zero
    for op in (S.add, S.mul):
        with pytest.raises(ConventionError, match=S.dual.name):
            op(1, bad)
        with pytest.raises(ConventionError):
            op(bad, 1)
        with pytest.raises(NaNError, match="NaN"):
            op(float("nan"), 1)
    with pytest.raises(ConventionError, match="mixed up"):
        S.validate([0.0, bad], "weights")
    with pytest.raises(NaNError):
        S.validate([0.0, float("nan")])
    assert S.validate([0.0, S.zero]).tolist() == [0.0, S.zero]  # the own zero is a value
    assert S.dual.dual is S and S.dual.sense == -S.sense


def test_semiring_mismatch_and_names():
    with pytest.raises(SemiringMismatchError, match="MaxPlus and MinPlus"):
        check_same_semiring(MaxPlus, MinPlus)
    assert check_same_semiring(LogSemiring(2.0), LogSemiring(2.0)) == LogSemiring(2.0)
    with pytest.raises(SemiringMismatchError):
        check_same_semiring(LogSemiring(2.0), LogSemiring(1.0))
    assert get_semiring("min") is MinPlus and get_semiring(None) is MaxPlus
    with pytest.raises(ToleranceError):
        LogSemiring(0.0)
    with pytest.raises(ToleranceError):
        LogSemiring(float("nan"))


# ------------------------------------------------------------------ arrays on every backend
@st.composite
def triples(draw, S, n_max=6):
    n = draw(st.integers(1, n_max))
    cell = st.one_of(st.integers(-1000, 1000), st.just(S.zero))  # integers: float sums are exact
    return [[draw(cell) for _ in range(n)] for _ in range(3)]


@pytest.mark.parametrize("S", TROPICAL, ids=str)
@fixture_ok
@given(data=st.data())
def test_tropical_axioms_arrays(backend, S, data):
    la, lb, lc = data.draw(triples(S))
    a, b, c = backend(la), backend(lb), backend(lc)

    def eq(x, y):
        return np.array_equal(to_np(x), to_np(y))

    add, mul = S.add, S.mul
    assert eq(add(add(a, b), c), add(a, add(b, c)))
    assert eq(add(a, b), add(b, a))
    assert eq(mul(mul(a, b), c), mul(a, mul(b, c)))
    assert eq(mul(a, add(b, c)), add(mul(a, b), mul(a, c)))
    assert eq(add(a, a), a)
    assert eq(add(a, S.zeros((len(la),), like=a)), a)
    assert eq(mul(a, S.ones((len(la),), like=a)), a)
    assert eq(mul(a, S.zeros((len(la),), like=a)), S.zeros((len(la),), like=a))
    # elementwise agreement with the scalar operations
    assert to_np(add(a, b)).tolist() == [S.add(x, y) for x, y in zip(la, lb)]
    # reductions: ⊕-sum is the fold of ⊕, ⊗-product the ordinary sum; empty sum is zero
    assert float(to_np(S.sum(a))) == float(_fold(S.add, la, S.zero))
    assert float(to_np(S.prod(a))) == float(_fold(S.mul, la, S.one))
    assert float(to_np(S.sum(a[:0]))) == S.zero


def _fold(op, xs, start):
    acc = start
    for x in xs:
        acc = op(acc, x)
    return acc


@pytest.mark.parametrize("S", TROPICAL, ids=str)
def test_arrays_reject_opposite_infinity_and_nan(backend, S):
    with pytest.raises(ConventionError):
        S.validate(backend([1.0, -S.zero]), "x")
    with pytest.raises(NaNError):
        S.validate(backend([1.0, float("nan")]), "x")


def test_exact_arrays_stay_exact():
    a = np.array([1, Fraction(1, 3), -INF], dtype=object)
    b = np.array([Fraction(2, 3), 0, 5], dtype=object)
    assert MaxPlus.add(a, b).tolist() == [1, Fraction(1, 3), 5]
    assert MaxPlus.mul(a, b).tolist() == [Fraction(5, 3), Fraction(1, 3), -INF]
    assert MinPlus.sum(np.array([Fraction(1, 2), 3], dtype=object)) == Fraction(1, 2)


# ------------------------------------------------------------------ LogSemiring(T)
temperatures = st.sampled_from([1e-3, 0.1, 0.5, 1.0, 3.0])


@given(T=temperatures, xs=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=8))
def test_log_semiring_sandwich_bound(T, xs):
    """max ≤ ⊕_T x ≤ max + T log n, and the mirror image for T < 0 (min − |T| log n ≤ ⊕ ≤ min)."""
    n = len(xs)
    s = float(LogSemiring(T).sum(np.array(xs)))
    slack = 1e-9 * (1 + max(abs(x) for x in xs))
    assert max(xs) - slack <= s <= max(xs) + T * math.log(n) + slack
    s = float(LogSemiring(-T).sum(np.array(xs)))
    assert min(xs) - T * math.log(n) - slack <= s <= min(xs) + slack


@given(xs=st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=8))
def test_log_semiring_zero_temperature_limit(xs):
    prev = None
    for T in (1.0, 0.1, 0.01, 1e-4):
        err = float(LogSemiring(T).sum(np.array(xs))) - max(xs)
        assert 0 <= err + 1e-12 and err <= T * math.log(len(xs)) + 1e-12
        if prev is not None:
            assert err <= prev + 1e-12  # monotone in T
        prev = err
    assert LogSemiring(0.5).limit is MaxPlus and LogSemiring(-0.5).limit is MinPlus


@given(
    T=temperatures,
    a=st.floats(-30, 30, allow_nan=False),
    b=st.floats(-30, 30, allow_nan=False),
    c=st.floats(-30, 30, allow_nan=False),
)
def test_log_semiring_axioms(T, a, b, c):
    S = LogSemiring(T)
    tol = dict(rel=1e-12, abs=1e-9)
    assert S.add(S.add(a, b), c) == pytest.approx(S.add(a, S.add(b, c)), **tol)
    assert S.add(a, b) == pytest.approx(S.add(b, a), **tol)
    assert S.mul(a, S.add(b, c)) == pytest.approx(S.add(S.mul(a, b), S.mul(a, c)), **tol)
    assert S.add(a, S.zero) == a and S.mul(a, S.one) == a
    assert S.mul(a, S.zero) == S.zero
    assert S.add(a, a) == pytest.approx(a + T * math.log(2), **tol)  # not idempotent
    assert not S.idempotent


def test_log_semiring_arrays(backend):
    S = LogSemiring(0.5)
    x = backend([[0.0, 1.0, -INF], [-INF, -INF, -INF]])
    s = to_np(S.sum(x, axis=1))
    assert s[0] == pytest.approx(0.5 * math.log(math.exp(0) + math.exp(2.0)))
    assert s[1] == -INF  # the sum of zeros is zero
    with pytest.raises(ConventionError):
        S.validate(backend([1.0, INF]))


def test_real_semiring():
    assert Real.add(2, 3) == 5 and Real.mul(2, 3) == 6 and Real.dual is Real
    assert Real.sum(np.array([1, 2, 3])) == 6


@pytest.mark.parametrize("S", [MaxPlus, MinPlus])
def test_non_real_operands_raise_tropix_errors(S):
    """Review of issue #2: complex/str/None used to pass silently (arrays) or raise a bare TypeError."""
    import torch

    from tropix.errors import ShapeError

    for bad in ("a", None, 1j, np.complex128(1j)):
        with pytest.raises(SemiringMismatchError, match="not a real number|complex"):
            S.add(bad, 1)
        with pytest.raises(SemiringMismatchError):
            S.mul(1, bad)
    for arr in (np.array([1j, 0]), torch.zeros(2, dtype=torch.complex64), np.array(["a", "b"])):
        with pytest.raises(SemiringMismatchError, match="dtype"):
            S.add(arr, 1)
        with pytest.raises(SemiringMismatchError, match="dtype"):
            S.sum(arr)
        with pytest.raises(SemiringMismatchError, match="dtype"):
            S.prod(arr)
    with pytest.raises(ShapeError, match="ragged"):
        S.sum([[1, 2], [3]])
    assert S.sum([[1, 2], [3, 4]], axis=1).tolist() == ([2, 4] if S is MaxPlus else [1, 3])


def test_bad_semiring_arguments_raise_tropix_errors():
    from tropix.errors import ParseError

    with pytest.raises(ParseError, match="unknown semiring 'maxi'"):
        get_semiring("maxi")
    with pytest.raises(ValueError):  # ParseError is a ValueError
        get_semiring("")
    with pytest.raises(SemiringMismatchError, match="not int"):
        get_semiring(3)


# ---- array ⊕ / Σ reject the opposite infinity; Real integer arithmetic never wraps -------------------------

@pytest.mark.parametrize("S", [MaxPlus, MinPlus])
def test_array_add_and_sum_reject_the_opposite_infinity(S, backend):
    bad = -S.zero
    x = backend([1.0, bad])
    y = backend([0.0, 2.0])
    with pytest.raises(ConventionError):
        S.add(x, y)
    with pytest.raises(ConventionError):
        S.add(y, x)
    with pytest.raises(ConventionError):
        S.sum(x)
    with pytest.raises(ConventionError):
        S.sum(backend([[1.0, 2.0], [3.0, bad]]), axis=1)
    # the semiring's own zero is a legitimate element
    z = backend([1.0, S.zero])
    assert float(S.sum(z)) == 1.0


@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=6), st.integers(0, 5))
def test_real_integer_arithmetic_is_exact(vals, k):
    x = np.array(vals, dtype=np.int64)
    assert Real.sum(x) == sum(vals)
    p = 1
    for v in vals:
        p *= v
    assert Real.prod(x) == p
    assert [int(t) for t in np.asarray(Real.power(x, k)).ravel()] == [v**k for v in vals]
    A = x.reshape(1, -1)
    assert int(np.asarray(Real.matmul(A, A.T)).ravel()[0]) == sum(v * v for v in vals)
