"""Edge cases of the semiring operations: inverses of the zero, the log semiring's illegal infinity,
integer dtypes that would wrap around, float overflow to the illegal infinity."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import to_np
from tropix import LogSemiring, MaxPlus, MinPlus
from tropix.errors import NoInverseError, TropixError

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
