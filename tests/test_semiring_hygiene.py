"""Edge cases of the semiring operations: inverses of the zero, the log semiring's illegal infinity,
integer dtypes that would wrap around, float overflow to the illegal infinity."""

from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import to_np
from tropix import LogSemiring, MaxPlus, MinPlus
from tropix.errors import ConventionError, NaNError, NoInverseError, SemiringMismatchError, TropixError

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
