"""Evaluating tropical polynomials at the edges: float dtypes on every library, float overflow, the tropical zero beside
an overflow, exponents and points beyond the float range, bool points."""

from __future__ import annotations

import warnings
from fractions import Fraction

import array_api_strict
import numpy as np
import pytest
import torch

from conftest import to_np
from tropix import MaxPlus, MinPlus
from tropix.errors import FloatOverflowError
from tropix.tropical import TropicalPolynomial

INF = float("inf")
LIBS = {"numpy": np.asarray, "torch": torch.as_tensor, "array_api_strict": array_api_strict.asarray}
_F64 = {"numpy": np.float64, "torch": torch.float64, "array_api_strict": array_api_strict.float64}


def _dtype_name(x):
    return str(x.dtype).split(".")[-1]


@pytest.mark.parametrize("lib", sorted(LIBS))
def test_float32_points_give_float32_values_on_every_library(lib):
    """NumPy evaluated float32 points in float64, torch and array-api-strict in float32 (the points' dtype)."""
    p = TropicalPolynomial({(1, 0): 0, (0, 1): Fraction(1, 3), (0, 0): -2})
    X = np.array([[1.5, 2.0], [-INF, 0.25], [-1.0, -INF]], dtype=np.float32)
    out = p(LIBS[lib](X))
    assert _dtype_name(out) == "float32"
    assert to_np(out).tolist() == [np.float32(2.0) + np.float32(1 / 3), np.float32(0.25) + np.float32(1 / 3), -1.0]
    dom = p.dominant_terms(LIBS[lib](X))
    assert to_np(dom).tolist() == [[False, True, False], [False, True, False], [False, False, True]]


@pytest.mark.parametrize("lib", sorted(LIBS))
@pytest.mark.parametrize("S, x", [(MaxPlus, 1e308), (MinPlus, -1e308)])
def test_float_overflow_raises_float_overflow_error(lib, S, x):
    """``max(2x)`` at ``x = 1e308`` overflowed to +inf: a ConventionError saying max- and min-plus were mixed up (and a
    RuntimeWarning from NumPy), though the point and the polynomial are elements of MaxPlus."""
    p = TropicalPolynomial({(2,): 0, (0,): 1}, semiring=S)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(FloatOverflowError, match="overflowed"):
            p(LIBS[lib](np.array([0.0, x])))
        with pytest.raises(FloatOverflowError):
            p.dominant_terms(LIBS[lib](np.array([x])))
        assert to_np(p(LIBS[lib](np.array([x / 4])))).tolist() == [S.add(x / 2, 1)]


@pytest.mark.parametrize("lib", sorted(LIBS))
def test_a_zero_coordinate_beside_an_overflowing_one(lib):
    """A term with a positive power of the zero is the zero, also where another factor overflows: ``x·y^2`` at
    ``(-inf, 1e308)`` was NaN (a NaNError), and where the overflow was the opposite infinity a NoInverseError about
    negative powers of the zero (there are none)."""
    p = TropicalPolynomial({(1, 2): 0, (0, 0): 1})
    assert to_np(p(LIBS[lib](np.array([[-INF, 1e308]])))).tolist() == [1.0]
    q = TropicalPolynomial({(1, -2): 0, (0, 0): 1}, semiring=MinPlus)
    assert to_np(q(LIBS[lib](np.array([[INF, 1e308]])))).tolist() == [1.0]


def test_exponents_and_points_beyond_the_float_range():
    """Exact exponents or points beyond float64 in a float evaluation raised a raw OverflowError; at the exact zero
    point too (``-inf·10**400``), where the exact value is defined."""
    big = TropicalPolynomial({(10**400,): 0, (0,): 1})
    assert big(-INF) == 1 and big(1) == 10**400 and big(Fraction(-1, 2)) == 1
    for x in (1.0, np.array([0.0]), torch.tensor([0.0], dtype=torch.float64)):
        with pytest.raises(FloatOverflowError, match="beyond the float range"):
            big(x)
    with pytest.raises(FloatOverflowError, match="beyond the float range"):
        TropicalPolynomial({(2,): 0.5})(10**400)


def test_bool_points_are_exact_like_integer_points():
    """Bool points of an exact polynomial gave floats (integer points give exact values)."""
    p = TropicalPolynomial({(1, 0): 0, (0, 1): Fraction(1, 3), (0, 0): -2})
    out = p(np.array([[True, False], [False, True]]))
    assert out.dtype == object and out.tolist() == [1, Fraction(4, 3)]
    assert out.tolist() == p(np.array([[1, 0], [0, 1]])).tolist()


@pytest.mark.parametrize("lib", sorted(LIBS))
@pytest.mark.parametrize("S, x", [(MaxPlus, -1e308), (MinPlus, 1e308)])
def test_every_term_overflowing_to_the_zero_raises(lib, S, x):
    """max(2x) at x = -1e308 is -2e308, beyond the floats: the value was the tropical zero -inf, silently (the
    value at a point of finite coordinates is never the zero).  A term overflowing beside a finite one loses to it
    either way, and a zero coordinate gives the zero legitimately."""
    p = TropicalPolynomial({(2,): 0}, semiring=S)
    with pytest.raises(FloatOverflowError, match="every term"):
        p(LIBS[lib]([[x]], dtype=_F64[lib]))
    q = TropicalPolynomial({(2,): 0, (0,): 1}, semiring=S)
    assert to_np(q(LIBS[lib]([[x]], dtype=_F64[lib]))).tolist() == [1.0]
    assert to_np(p(LIBS[lib]([[S.zero]], dtype=_F64[lib]))).tolist() == [S.zero]
