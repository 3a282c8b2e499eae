"""Semirings: the one abstraction that linear algebra, polynomials and contraction are written against.

A semiring object bundles the two operations (``add`` = ⊕, ``mul`` = ⊗), their neutral elements (``zero``,
``one``) and the reductions and products built from them.  Every routine in tropix that could be
"tropical" takes ``semiring=`` and only ever calls these methods, so max- and min-plus are both first
class and are never mixed up silently: the opposite infinity (``+inf`` in max-plus, ``-inf`` in
min-plus) is rejected with :class:`~tropix.errors.ConventionError` by :meth:`Semiring.validate`.

* ``MaxPlus``: a ⊕ b = max(a, b), a ⊗ b = a + b, zero = -inf, one = 0.
* ``MinPlus``: a ⊕ b = min(a, b), a ⊗ b = a + b, zero = +inf, one = 0.
* ``LogSemiring(T)``: a ⊕ b = T·log(e^{a/T} + e^{b/T}), a ⊗ b = a + b, zero = -inf (T > 0) or +inf (T < 0), one = 0.
* ``Real``: ordinary + and ×, zero = 0, one = 1.

``LogSemiring(T)`` tends to ``MaxPlus`` as T → 0⁺ (and to ``MinPlus`` as T → 0⁻): for n terms,
``max ≤ a ⊕_T b ⊕_T … ≤ max + T·log n``.  This is the bridge from softmax attention (T = 1 after the
1/√d scaling) to its tropical limit.

Operations accept Python scalars (int, :class:`~fractions.Fraction`, float, sympy rationals, ±inf) and
arrays of any array-API library; the array namespace is taken from the inputs.

Fixed-width integers never wrap around (int8 would give ``100 + 100 = -56``): ``mul``, ``power`` and
``prod`` of the tropical semirings and ``add``/``mul`` of :data:`Real` widen integer and bool operands to
``int64`` when every result provably fits, and compute with Python integers (a NumPy object array)
otherwise, the rule :func:`~tropix.tropical.matmul.matmul` follows.

Float results that overflow toward the illegal infinity (``1e308 ⊗ 1e308`` in max-plus would be ``+inf``,
the min-plus zero) raise :class:`~tropix.errors.FloatOverflowError`; overflow toward the semiring's own
zero (``-1e308 ⊗ -1e308`` in max-plus) is IEEE rounding to that zero in the elementwise operations (the
matrix product and ``tdet`` raise for it too).  Exact input never overflows.

Examples
--------
>>> from fractions import Fraction
>>> from tropix import MaxPlus, MinPlus, LogSemiring
>>> MaxPlus.add(3, Fraction(7, 2)), MaxPlus.mul(3, Fraction(7, 2))
(Fraction(7, 2), Fraction(13, 2))
>>> MinPlus.add(3, Fraction(7, 2)), MaxPlus.zero, MinPlus.zero
(3, -inf, inf)
>>> MaxPlus.dual is MinPlus
True
>>> round(LogSemiring(0.01).add(1.0, 2.0), 6)  # close to max(1, 2)
2.0
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Any

import numpy as np

from .._array import asarray, check_no_nan, is_array, namespace, to_exact_scalar, to_numpy
from ..errors import (
    ArgumentTypeError,
    ConventionError,
    FloatOverflowError,
    NaNError,
    NoInverseError,
    OptionError,
    ParseError,
    SemiringMismatchError,
    ShapeError,
    ToleranceError,
)
from ._args import _describe

__all__ = [
    "Semiring",
    "TropicalSemiring",
    "LogSemiring",
    "RealSemiring",
    "MaxPlus",
    "MinPlus",
    "Real",
    "get_semiring",
    "check_same_semiring",
    "require_tropical",
]

_INF = float("inf")


def _is_scalar(x: Any) -> bool:
    return not is_array(x) and not isinstance(x, (list, tuple))


def _scalar_nan(x: Any) -> bool:
    return isinstance(x, (float, np.floating)) and math.isnan(x)


def _prep_pair(a: Any, b: Any, bound=None):
    """Return (xp, a, b) with lists converted, scalars left for broadcasting against arrays.

    ``bound(|a|max, |b|max)`` bounds ``|result|`` of the elementwise operation about to be applied; when
    given, integer operands are widened (see :func:`_widen_ints`) so that the operation cannot wrap around.
    """
    if isinstance(a, (list, tuple)):
        a = real_array(a, "the first operand")
    if isinstance(b, (list, tuple)):
        b = real_array(b, "the second operand")
    if _is_scalar(a) and _is_scalar(b):
        if bound is not None:
            a, b = _py_int(a), _py_int(b)
        return None, a, b
    xp = namespace(a, b)
    for x, name in ((a, "the first operand"), (b, "the second operand")):
        if not _is_scalar(x) and not (isinstance(x, np.ndarray) and x.dtype == object):
            check_real_dtype(x, name)
    if bound is not None:
        a, b = _widen_ints(a, b, xp, bound)
    # an integer array of another library meeting a non-integer scalar (0.5, 3/2, -inf): widened to float64
    # first (the scalar was cast to the array's integer dtype: min(1, 0.5) gave 0)
    for s_, x_ in ((a, b), (b, a)):
        if _is_scalar(s_) and not isinstance(x_, np.ndarray) and _is_int_array(x_) and not _integral_value(s_):
            if x_ is a:
                a = xp.astype(a, xp.float64)
            else:
                b = xp.astype(b, xp.float64)
    if _is_scalar(a):
        a = _scalar_like(a, b, xp)
    if _is_scalar(b):
        b = _scalar_like(b, a, xp)
    return xp, a, b


_I64_MAX = (1 << 63) - 1


def _py_int(v: Any) -> Any:
    """NumPy integer and bool scalars as Python ints (which never wrap around); other scalars unchanged."""
    return int(v) if isinstance(v, (np.integer, np.bool_, bool)) else v


def _is_int_array(x: Any) -> bool:
    """An array of integer or bool dtype (not an object array)."""
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "iub"
    if not is_array(x):
        return False
    return namespace(x).isdtype(x.dtype, ("integral", "bool"))


def _int_bound(x: Any, xp) -> int:
    """max |x| over an integer/bool array as a Python int (0 if empty)."""
    if _size(x) == 0:
        return 0
    if isinstance(x, np.ndarray) and x.dtype == np.bool_ or not isinstance(x, np.ndarray) and xp.isdtype(x.dtype, "bool"):
        return 1
    return max(abs(int(xp.max(x))), abs(int(xp.min(x))))


def _object_ints(x: Any) -> np.ndarray:
    """A NumPy object array of Python ints with the values of the integer/bool array ``x`` (any library)."""
    a = to_numpy(x)
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [int(v) for v in a.ravel()] if a.size else []
    return out


def _widen_ints(a: Any, b: Any, xp, bound):
    """Integer operands of an elementwise operation, widened so that it cannot wrap around.

    Fixed-width integers wrap silently (int8: ``100 + 100 = -56``), so, as in
    :func:`tropix.tropical.matmul.matmul`: integer and bool operands (bools read as 0/1) with integer partners
    become ``int64`` when ``bound(max|a|, max|b|)`` (a bound on every result) fits in ``int64``, and NumPy
    object arrays of Python integers otherwise (exact, any size).  An integer array with a Fraction partner
    becomes an object array (exact); with a float scalar it becomes ``float64`` (not the scalar cast to the
    integer dtype).  Integer arrays with float arrays are left to the library's type promotion.
    """
    ia, ib = _is_int_array(a), _is_int_array(b)
    if not (ia or ib):
        return a, b
    ops = [a, b]
    bounds = [0, 0]
    to_object = to_float = False
    for i, (x, is_int) in enumerate(((a, ia), (b, ib))):
        if is_int:
            continue
        if _is_scalar(x):
            v = to_exact_scalar(x)
            if isinstance(v, int):
                ops[i], bounds[i] = v, abs(v)
            elif isinstance(v, Fraction):
                ops[i], to_object = v, True
            else:
                to_float = True
        elif isinstance(x, np.ndarray) and x.dtype == object:
            to_object = True
        else:
            return a, b  # an integer array with a float array: the library promotes to float
    if to_float:
        return tuple(xp.astype(x, xp.float64) if j else x for x, j in ((a, ia), (b, ib)))
    if not to_object:
        for i, is_int in enumerate((ia, ib)):
            if is_int:
                bounds[i] = _int_bound(ops[i], xp)
        to_object = bound(*bounds) > _I64_MAX
    if to_object:
        return tuple(_object_ints(x) if j else y for x, y, j in ((a, ops[0], ia), (b, ops[1], ib)))
    return tuple(xp.astype(x, xp.int64) if j else y for x, y, j in ((a, ops[0], ia), (b, ops[1], ib)))


def _sum_bound(x: int, y: int) -> int:
    return x + y


def _product_bound(x: int, y: int) -> int:
    return x * y


def check_real_dtype(x: Any, name: str = "input") -> None:
    """Raise :class:`~tropix.errors.SemiringMismatchError` unless the array ``x`` has a real (or bool) dtype."""
    xp = namespace(x)
    try:
        ok = xp.isdtype(x.dtype, ("bool", "integral", "real floating"))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise SemiringMismatchError(
            f"{name} has dtype {x.dtype}; semirings hold real numbers (and ±inf), not {x.dtype} values"
        )


def real_array(x: Any, name: str = "input"):
    """:func:`~tropix._array.asarray` with tropix errors for bad nesting and non-real entries.

    Ragged nested lists raise :class:`~tropix.errors.ShapeError`; strings, ``None``, complex numbers and
    other non-real entries raise :class:`~tropix.errors.SemiringMismatchError`.
    """
    if isinstance(x, (list, tuple)):
        try:
            probe = np.asarray(x, dtype=object)
        except ValueError as err:
            raise ShapeError(f"{name} is ragged (nested lists of different lengths): {err}") from None
        if any(isinstance(v, (list, tuple, np.ndarray)) for v in probe.ravel()):
            raise ShapeError(f"{name} is ragged: its nested lists have different lengths")
    if isinstance(x, np.ndarray) and x.dtype != object:
        check_real_dtype(x, name)
        return x
    try:
        return asarray(x, name=name)
    except TypeError as err:
        raise SemiringMismatchError(
            f"{name} holds a value that is not a real number ({err}); semirings hold real numbers and ±inf"
        ) from None


def _as_int64(x, xp):
    """An integer array of a narrower dtype (int8, uint16, ...) as int64, whose bound the callers checked."""
    if isinstance(x, np.ndarray):
        return x.astype(np.int64) if x.dtype != object and x.dtype != np.int64 else x
    return x if x.dtype == xp.int64 else xp.astype(x, xp.int64)


def _integral_value(s: Any) -> bool:
    """Whether a scalar is an integer value (a float like 2.0 included; inf and NaN not)."""
    if isinstance(s, (bool, np.bool_, int, np.integer)):
        return True
    if isinstance(s, Fraction):
        return s.denominator == 1
    try:
        f = float(s)
    except (TypeError, ValueError, OverflowError):
        return False
    return math.isfinite(f) and f.is_integer()


def _scalar_like(s: Any, like: Any, xp):
    if isinstance(like, np.ndarray):
        if like.dtype == object:
            return to_exact_scalar(s) if not isinstance(s, float) else s
        return s
    s = float(s) if not isinstance(s, (int, np.integer)) or xp.isdtype(like.dtype, "real floating") else int(s)
    try:
        return xp.asarray(s, dtype=like.dtype, device=getattr(like, "device", None))
    except TypeError:
        return xp.asarray(s, dtype=like.dtype)


class Semiring:
    """Base class of all semirings.  Subclasses define the operations; instances are immutable.

    Attributes
    ----------
    name : str
        Human-readable name, e.g. ``"MaxPlus"``.
    zero, one
        Neutral elements of ⊕ and ⊗ as Python scalars.
    sense : int or None
        ``+1`` for semirings whose ⊕ selects (or softly selects) the maximum, ``-1`` for the minimum,
        ``None`` for the ordinary real numbers.
    idempotent : bool
        Whether ``a ⊕ a = a``.
    """

    name: str = "Semiring"
    zero: Any = None
    one: Any = None
    sense: int | None = None
    idempotent: bool = False

    # -- elementwise ---------------------------------------------------------------------------
    def add(self, a: Any, b: Any):
        """a ⊕ b, elementwise with broadcasting."""
        raise NotImplementedError

    def mul(self, a: Any, b: Any):
        """a ⊗ b, elementwise with broadcasting."""
        raise NotImplementedError

    # -- reductions ----------------------------------------------------------------------------
    def sum(self, x: Any, axis: int | None = None):
        """⊕-reduction of ``x`` along ``axis`` (all axes if None); the empty sum is :attr:`zero`."""
        raise NotImplementedError

    def prod(self, x: Any, axis: int | None = None):
        """⊗-reduction of ``x`` along ``axis``; the empty product is :attr:`one`."""
        raise NotImplementedError

    def power(self, a: Any, k: Any):
        """a^{⊗k}."""
        raise NotImplementedError

    def matmul(self, A: Any, B: Any):
        """Semiring matrix product ``(A ⊗ B)_ij = ⊕_k A_ik ⊗ B_kj``; see :func:`tropix.tropical.matmul`."""
        from .matmul import matmul

        return matmul(A, B, semiring=self)

    @property
    def dual(self) -> "Semiring":
        """The semiring with the opposite order (max ↔ min)."""
        raise NotImplementedError

    # -- helpers -------------------------------------------------------------------------------
    def validate(self, x: Any, name: str = "input"):
        """Return ``x`` as an array (or scalar) after checking it holds only elements of this semiring.

        Raises
        ------
        NaNError
            If ``x`` contains NaN.
        ConventionError
            If ``x`` contains the infinity of the opposite convention.
        """
        if isinstance(x, (list, tuple)):
            x = real_array(x, name)
        elif isinstance(x, np.ndarray) and x.dtype == object:
            real_array(x, name)  # only checks that every entry is a real number (x is returned as it is)
        elif is_array(x):
            check_real_dtype(x, name)
        check_no_nan(x, name)
        if self.sense is not None:
            self._check_convention(x, name)
        return x

    def _check_convention(self, x: Any, name: str) -> None:
        """Raise ConventionError if ``x`` holds the infinity of the opposite order (``-zero``)."""
        bad = -self.zero
        if _is_scalar(x):
            if x == bad:
                raise ConventionError(self._wrong_inf_msg(name))
            return
        if isinstance(x, np.ndarray) and x.dtype == object:
            if any(v == bad for v in x.ravel()):
                raise ConventionError(self._wrong_inf_msg(name))
            return
        xp = namespace(x)
        if xp.isdtype(x.dtype, "real floating") and bool(xp.any(x == bad)):
            raise ConventionError(self._wrong_inf_msg(name))

    _zero_word = "tropical zero"

    def _wrong_inf_msg(self, name):
        return (
            f"{name} contains {-self.zero}, which is not an element of {self.name} "
            f"(its {self._zero_word} is {self.zero}); max- and min-plus conventions may have been mixed up - "
            f"use {self.dual.name} or replace the entry"
        )

    def _check_scalar(self, v, what, op):
        """Scalar operand checks of the ordered semirings: NaN, non-real values, the opposite infinity."""
        if _scalar_nan(v):
            raise NaNError(f"NaN in the {what} of {self.name}.{op}: NaN is not an element of {self._nan_of}")
        if isinstance(v, (complex, np.complexfloating)):
            raise SemiringMismatchError(f"the {what} of {self.name}.{op}, {v!r}, is complex, not a real number")
        try:
            fv = float(v)
        except OverflowError:  # an exact int or Fraction beyond the float range: finite, a legitimate element
            return
        except (TypeError, ValueError):
            raise SemiringMismatchError(
                f"the {what} of {self.name}.{op}, {v!r}, is not a real number (semirings hold reals and ±inf)"
            ) from None
        if math.isinf(fv) and fv != self.zero:
            raise ConventionError(
                f"{v} is not an element of {self.name} (its {self._zero_word} is {self.zero}); "
                f"did you mean {self.dual.name}?"
            )

    _nan_of = "any tropical semiring"

    def is_zero(self, x: Any):
        """Elementwise test ``x == zero``."""
        if _is_scalar(x):
            return x == self.zero
        if isinstance(x, np.ndarray) and x.dtype == object:
            return np.vectorize(lambda v: v == self.zero, otypes=[bool])(x)
        if _is_int_array(x) and not isinstance(x, np.ndarray) and math.isinf(self.zero):
            # integers are never ±inf (and strict libraries refuse to compare them with a float)
            xp = namespace(x)
            return xp.zeros(x.shape, dtype=xp.bool, device=getattr(x, "device", None))
        return x == self.zero

    def zeros(self, shape, like: Any = None):
        """An array of tropical zeros, in the library, dtype and device of ``like`` (NumPy float64 by default)."""
        return self._full(shape, self.zero, like)

    def ones(self, shape, like: Any = None):
        """An array of tropical ones."""
        return self._full(shape, self.one, like)

    def identity(self, n: int, like: Any = None):
        """The n×n identity matrix of this semiring (``one`` on the diagonal, ``zero`` elsewhere)."""
        out = self.zeros((n, n), like)
        if isinstance(out, np.ndarray):
            np.fill_diagonal(out, self.one)
            return out
        xp = namespace(out)
        idx = xp.arange(n)
        eye = xp.reshape(idx, (n, 1)) == xp.reshape(idx, (1, n))
        one = xp.full((n, n), self.one, dtype=out.dtype, device=getattr(out, "device", None))
        return xp.where(eye, one, out)

    def _full(self, shape, value, like):
        if like is None or (isinstance(like, np.ndarray) and like.dtype != object):
            dtype = like.dtype if isinstance(like, np.ndarray) and np.issubdtype(like.dtype, np.floating) else np.float64
            return np.full(shape, value, dtype=dtype)
        if isinstance(like, np.ndarray):
            out = np.empty(shape, dtype=object)
            out.fill(value)
            return out
        xp = namespace(like)
        dtype = like.dtype if xp.isdtype(like.dtype, "real floating") else xp.float64
        try:
            return xp.full(shape, value, dtype=dtype, device=getattr(like, "device", None))
        except TypeError:
            return xp.full(shape, value, dtype=dtype)

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self):
        return (get_semiring, (self.name,))


class TropicalSemiring(Semiring):
    """Max-plus (``sense=+1``) or min-plus (``sense=-1``).  Use the instances :data:`MaxPlus` and :data:`MinPlus`."""

    idempotent = True

    def __init__(self, sense: int):
        if sense not in (1, -1):
            raise OptionError(f"sense must be +1 (max-plus) or -1 (min-plus), not {sense!r}")
        self.sense = sense
        self.name = "MaxPlus" if sense == 1 else "MinPlus"
        self.zero = -_INF if sense == 1 else _INF
        self.one = 0

    # elementwise
    def add(self, a, b):
        xp, a, b = _prep_pair(a, b)
        if xp is None:
            self._check_scalar(a, "first operand", "add")
            self._check_scalar(b, "second operand", "add")
            return (max if self.sense == 1 else min)(a, b)
        for x, what in ((a, "first operand"), (b, "second operand")):
            if isinstance(x, np.ndarray) and x.dtype == object:  # Python's max/min would drop a NaN silently
                check_no_nan(x, f"the {what} of {self.name}.add")
        out = xp.maximum(a, b) if self.sense == 1 else xp.minimum(a, b)
        # the opposite infinity dominates ⊕, so it is in the result iff an operand held it
        self._check_convention(out, "an operand of " + self.name + ".add")
        return out

    def mul(self, a, b):
        """a ⊗ b = a + b, elementwise with broadcasting.

        Integer operands never wrap around: as in :func:`~tropix.tropical.matmul.matmul` they are widened to
        ``int64`` when every sum provably fits, and to Python integers (a NumPy object array) otherwise.

        Examples
        --------
        >>> import numpy as np
        >>> MaxPlus.mul(np.array([100, -3], dtype=np.int8), np.int8(100))  # int8 would wrap: 100 + 100 = -56
        array([200,  97])
        """
        xp, a, b = _prep_pair(a, b, _sum_bound)
        if xp is None:
            self._check_scalar(a, "first operand", "mul")
            self._check_scalar(b, "second operand", "mul")
            with np.errstate(over="ignore"):
                return _check_overflow(self, _exact_add(a, b), "mul", a, b)
        return _checked_sum(self, a, b, xp)

    def sum(self, x, axis=None):
        if isinstance(x, (list, tuple)):
            x = real_array(x)
        if _is_scalar(x):
            self._check_scalar(x, "input", "sum")
            return x
        xp = namespace(x)
        if not (isinstance(x, np.ndarray) and x.dtype == object):
            check_real_dtype(x)
        if _reduced_size(x, axis) == 0:
            return self._empty_reduction(x, axis, self.zero)
        if isinstance(x, np.ndarray) and x.dtype == object:  # Python's max/min would drop a NaN silently
            check_no_nan(x, f"the input of {self.name}.sum")
        out = xp.max(x, axis=axis) if self.sense == 1 else xp.min(x, axis=axis)
        # the opposite infinity dominates the reduction: it is in the result iff x held it
        self._check_convention(out, "the input of " + self.name + ".sum")
        return out

    def prod(self, x, axis=None):
        if isinstance(x, (list, tuple)):
            x = real_array(x)
        if _is_scalar(x):
            self._check_scalar(x, "input", "prod")
            return x
        xp = namespace(x)
        if not (isinstance(x, np.ndarray) and x.dtype == object):
            check_real_dtype(x)
        elif self.sense is not None:  # (exact input: the float checks below never see it)
            self.validate(x, f"the input of {self.name}.prod")
        if _reduced_size(x, axis) == 0:
            return self._empty_reduction(x, axis, self.one)
        if _is_int_array(x):  # int64 sums must not wrap around: Python integers when they might
            if _int_bound(x, xp) * _reduced_size(x, axis) > _I64_MAX:
                return np.sum(_object_ints(x), axis=axis)
            return xp.sum(xp.astype(x, xp.int64), axis=axis)
        if _is_float(x):
            with np.errstate(over="ignore", invalid="ignore"):
                return _check_overflow(self, xp.sum(x, axis=axis), "prod", x)
        try:
            return xp.sum(x, axis=axis)
        except OverflowError:  # an exact int beyond the float range beside an infinity
            return np.frompyfunc(_exact_add, 2, 1).reduce(x.ravel() if axis is None else x, axis=0 if axis is None else axis)

    def _empty_reduction(self, x, axis, value):
        shape = () if axis is None else tuple(s for i, s in enumerate(x.shape) if i != axis % x.ndim)
        if shape == () and isinstance(x, np.ndarray):  # (as NumPy's reductions: a scalar)
            return value
        return self._full(shape, value, x)  # (other libraries: a 0-d array of x's library, as their reductions)

    def power(self, a, k):
        """a^{⊗k} = k·a.  ``k`` may be any integer (the tropical semifield has inverses) or a rational.

        Integer arrays are widened as in :meth:`mul` (``int64`` when ``max|a|·|k|`` fits, else Python
        integers); a :class:`~fractions.Fraction` exponent gives exact Fractions, a float one floats.

        Raises
        ------
        NoInverseError
            If ``k < 0`` and ``a`` is (or holds) the tropical zero, which has no inverse.
        ToleranceError
            If ``k`` is infinite (``NaNError`` if it is NaN).

        Examples
        --------
        >>> MaxPlus.power(3, 4), MaxPlus.power(float('-inf'), 0), MaxPlus.power(Fraction(1, 2), -2)
        (12, 0, -1)
        >>> MaxPlus.power(float('-inf'), -1)
        Traceback (most recent call last):
        ...
        tropix.errors.NoInverseError: the zero -inf of MaxPlus has no ⊗-inverse, so its power with the negative exponent -1 is undefined (as 1/0 is); only non-zero elements may be raised to negative powers
        """
        if isinstance(a, (list, tuple)):
            a = asarray(a)
        k = _exponent(k)
        if _is_scalar(a):
            a = _py_int(a)
            self._check_scalar(a, "base", "power")
            if k == 0:
                return self.one
            if a == self.zero:
                if k < 0:
                    raise NoInverseError(_no_inverse_msg(self, k))
                return self.zero
            with np.errstate(over="ignore"):
                r = k * a
            return to_exact_scalar(r) if not _is_float(r) else _check_overflow(self, r, "power", a)
        xp = namespace(a)
        if k == 0:
            if _is_int_array(a):
                return xp.zeros(a.shape, dtype=xp.int64)
            return self.ones(a.shape, a)
        if k < 0:
            _check_invertible(self, a, k)
        if _is_int_array(a):  # never wrap around (as mul and matmul): int64, or Python integers
            if isinstance(k, float):
                return xp.astype(a, xp.float64) * k
            if isinstance(k, int) and _int_bound(a, xp) * abs(k) <= _I64_MAX:
                return xp.astype(a, xp.int64) * k
            a = _object_ints(a)
        if _is_float(a) and isinstance(k, Fraction):
            k = float(k)  # float input, float output (a Fraction would make NumPy build an object array)
        if isinstance(a, np.ndarray) and a.dtype == object:  # (exact: the float checks below never see it)
            self.validate(a, f"the base of {self.name}.power")
        if isinstance(a, np.ndarray) and a.dtype == object and not isinstance(k, float):
            out = np.empty(a.shape, dtype=object)
            out.ravel()[:] = [v * k if isinstance(v, float) else to_exact_scalar(v * k) for v in a.ravel()]
            return out
        with np.errstate(over="ignore", invalid="ignore"):
            return _check_overflow(self, a * k, "power", a)

    @property
    def dual(self):
        return MinPlus if self.sense == 1 else MaxPlus

    def better(self, a, b):
        """Elementwise ``a`` strictly better than ``b`` in this order (``a > b`` for max-plus)."""
        return a > b if self.sense == 1 else a < b

    def argbest(self, x, axis=None):
        """Index of the ⊕-winner (argmax for max-plus, argmin for min-plus)."""
        xp = namespace(x)
        return xp.argmax(x, axis=axis) if self.sense == 1 else xp.argmin(x, axis=axis)


def _is_float(x: Any) -> bool:
    """A float scalar or an array of a real floating dtype."""
    if isinstance(x, np.ndarray):
        return x.dtype.kind == "f"
    if isinstance(x, (float, np.floating)):
        return True
    if not is_array(x):
        return False
    return namespace(x).isdtype(x.dtype, "real floating")


def _extreme(x: Any, sense: int, xp):
    """The largest (``sense=+1``) or smallest entry of ``x`` (a scalar is its own), or None if ``x`` is empty."""
    if not is_array(x):
        return x
    if _size(x) == 0:
        return None
    if isinstance(x, np.ndarray) and x.dtype == object:
        return None  # exact entries (and ±inf) never overflow
    if hasattr(x, "detach"):
        x = x.detach()  # a test only: no autograd graph
    return xp.max(x) if sense == 1 else xp.min(x)


def _may_overflow(S: "Semiring", a: Any, b: Any, xp) -> bool:
    """Whether some ``a_i + b_j`` could round to ``-S.zero`` (``+inf`` in max-plus): a cheap, exact test.

    Rounding is monotone, so every ``a_i + b_j`` lies on the near side of ``ext(a) + ext(b)`` (``ext`` the
    maximum for max-plus, the minimum for min-plus), computed in the same dtype; if that sum is finite no
    sum overflows toward the illegal infinity.  Costs one reduction per operand, no pass over the output.
    """
    if not (_is_float(a) or _is_float(b)):
        return False
    ea, eb = _extreme(a, S.sense, xp), _extreme(b, S.sense, xp)
    if ea is None or eb is None:
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        t = ea + eb
    t = float(t)
    return t == -S.zero or math.isnan(t)


def _size(x: Any) -> int:
    if isinstance(x, np.ndarray):
        return x.size
    return math.prod(int(s) for s in x.shape) if is_array(x) else 1


def _exact_add(u: Any, v: Any) -> Any:
    """``u + v`` of exact numbers and infinities: an infinity absorbs an integer of any size (Python would
    convert ``10**400`` to a float and overflow)."""
    if isinstance(u, float) and math.isinf(u):
        return u if not (isinstance(v, float) and math.isinf(v) and v != u) else math.nan
    if isinstance(v, float) and math.isinf(v):
        return v
    return u + v


def _checked_sum(S: "Semiring", a: Any, b: Any, xp, op: str = "mul"):
    """``a + b`` (a ⊗ b of the ordered semirings), raising if a float entry reached ``-S.zero``.

    Float overflow toward the illegal infinity is found by one reduction: over the output when it is no
    larger than the operands, else over the operands (:func:`_may_overflow`, for broadcasts).  Overflow
    toward the semiring's zero is IEEE rounding to that zero and passes silently.
    """
    exact = [x for x in (a, b) if isinstance(x, np.ndarray) and x.dtype == object]
    if exact and S.sense is not None:  # (exact operands: the float checks below never see them)
        for x in exact:
            S.validate(x, f"an operand of {S.name}.{op}")
    with np.errstate(over="ignore", invalid="ignore"):
        try:
            out = a + b
        except OverflowError:  # an exact int beyond the float range beside an infinity (int + inf)
            out = np.frompyfunc(_exact_add, 2, 1)(a, b)
    if not _is_float(out):
        return out
    if _size(out) <= _size(a) + _size(b):
        e = _extreme(out, S.sense, xp)
        if e is None:
            return out
        e = float(e)
        if e != -S.zero and not math.isnan(e):
            return out
    elif not _may_overflow(S, a, b, xp):
        return out
    return _check_overflow(S, out, op, a, b)


def _check_overflow(S: "Semiring", out: Any, op: str, *inputs: Any):
    """Raise if the float result ``out`` holds ``-S.zero`` (``+inf`` in max-plus, ``-inf`` in min-plus).

    That value is not an element of ``S``: either an operand already held it (ConventionError) or finite
    floats overflowed (FloatOverflowError).  Returns ``out`` unchanged otherwise.
    """
    if not _is_float(out):
        return out
    bad = -S.zero
    if is_array(out):
        xp = namespace(out)
        mask = xp.isnan(out) | (out == bad)
        if not bool(xp.any(mask)):
            return out
        m = np.asarray(mask if isinstance(mask, (np.ndarray, np.generic)) else to_numpy(mask))
        where = f" at index {tuple(int(i) for i in np.argwhere(m)[0])}" if m.ndim else ""
        dtype = str(out.dtype).split(".")[-1]
    else:
        if not (out == bad or math.isnan(out)):
            return out
        where, dtype = "", np.dtype(type(out)).name if isinstance(out, np.floating) else "float64"
    for x in inputs:  # an operand holding NaN or the illegal infinity is bad input, not an overflow
        if _is_float(x) or (isinstance(x, np.ndarray) and x.dtype == object):
            check_no_nan(x, f"an operand of {S.name}.{op}")
            S._check_convention(x, f"an operand of {S.name}.{op}")
    try:
        limit = f" (beyond ±{np.finfo(np.dtype(dtype)).max:.4g})"
    except TypeError:  # a dtype NumPy does not know (e.g. torch.bfloat16)
        limit = ""
    raise FloatOverflowError(
        f"{S.name}.{op}: finite {dtype} values overflowed{where}{limit} to {bad}, "
        f"which is not an element of {S.name} (it is the zero of {S.dual.name}); "
        "use exact input (int/Fraction), which never overflows, or rescale the data"
    )


def _exponent(k: Any):
    """The exponent of a ⊗-power: a finite real; exact ones as ``int``/``Fraction``."""
    if is_array(k) or isinstance(k, (list, tuple)):
        raise SemiringMismatchError(f"the exponent of power must be a real number, not {type(k).__name__}")
    try:
        kind_k = to_exact_scalar(k)
    except TypeError:
        raise SemiringMismatchError(f"the exponent of power must be a real number, not {k!r}") from None
    if isinstance(kind_k, float) and math.isnan(kind_k):
        raise NaNError("the exponent of power is NaN")
    if isinstance(kind_k, float) and math.isinf(kind_k):
        raise ToleranceError(f"the exponent of power must be finite, not {k}")
    return kind_k


def _no_inverse_msg(S, k, where=""):
    return (
        f"the zero {S.zero} of {S.name}{where} has no ⊗-inverse, so its power with the negative exponent {k} "
        "is undefined (as 1/0 is); only non-zero elements may be raised to negative powers"
    )


def _check_invertible(S, a, k):
    """Raise :class:`~tropix.errors.NoInverseError` if the array ``a`` holds the zero of ``S`` (for ``k < 0``)."""
    z = S.is_zero(a)
    if isinstance(z, np.ndarray):
        hit = np.argwhere(z)
    else:
        xp = namespace(z)
        if not bool(xp.any(z)):
            return
        hit = np.argwhere(to_numpy(z))
    if len(hit):
        raise NoInverseError(_no_inverse_msg(S, k, f" (at index {tuple(int(i) for i in hit[0])})"))


def _reduced_size(x, axis):
    shape = tuple(int(s) for s in x.shape)
    if axis is None:
        return int(np.prod(shape)) if shape else 1
    return shape[axis]


class LogSemiring(Semiring):
    """The log-semiring at temperature ``T``: ``a ⊕ b = T·log(e^{a/T} + e^{b/T})``, ``a ⊗ b = a + b``.

    For ``T > 0`` its zero is ``-inf`` and as ``T → 0⁺`` it becomes :data:`MaxPlus`; for ``T < 0`` its zero is
    ``+inf`` and it tends to :data:`MinPlus`.  ``T = 1`` is the semiring of log-probabilities: softmax attention
    is a log-semiring contraction.  Results are floats (the operation is transcendental).

    Examples
    --------
    >>> import numpy as np
    >>> S = LogSemiring(1.0)
    >>> float(S.sum(np.log(np.array([1.0, 2.0, 3.0]))))  # log(1 + 2 + 3)
    1.791759469228055
    >>> S.limit
    MaxPlus
    """

    idempotent = False
    _zero_word = "zero"
    _nan_of = "any semiring"

    def __init__(self, T: float = 1.0):
        if isinstance(T, (bool, np.bool_)) or not isinstance(T, (numbers.Real, np.floating, np.integer)):
            raise ArgumentTypeError(f"temperature T must be a real number, got {_describe(T)}")
        if isinstance(T, float) and math.isnan(T):
            raise ToleranceError("temperature T is NaN")
        if T == 0 or not math.isfinite(float(T)):
            raise ToleranceError(
                f"temperature T must be finite and non-zero (got {T}); T -> 0 is MaxPlus/MinPlus themselves"
            )
        self.T = float(T)
        self.sense = 1 if self.T > 0 else -1
        self.zero = -_INF if self.T > 0 else _INF
        self.one = 0.0
        self.name = f"LogSemiring(T={self.T:g})"

    @property
    def limit(self) -> TropicalSemiring:
        """The tropical semiring reached as T → 0 with the sign of T."""
        return MaxPlus if self.sense == 1 else MinPlus

    def add(self, a, b):
        xp, a, b = _prep_pair(a, b)
        T = self.T
        if xp is None:
            self._check_scalar(a, "first operand", "add")
            self._check_scalar(b, "second operand", "add")
            a, b = float(a), float(b)
            if a == self.zero:
                return b
            if b == self.zero:
                return a
            ext = max(a, b) if T > 0 else min(a, b)  # the ⊕-winner; T·log1p(…) adds at most |T|·log 2
            with np.errstate(over="ignore"):
                d = abs(a - b)
                return _check_overflow(self, ext + T * math.log1p(math.exp(-d / abs(T))), "add", a, b)
        a, b = _as_float(a, xp), _as_float(b, xp)
        dts = [x.dtype for x in (a, b) if not _is_scalar(x)]
        a, da = _wide_for(T, a, xp)
        b, db = _wide_for(T, b, xp)
        if (da is None) != (db is None) and not (_is_scalar(a) or _is_scalar(b)):  # (both in float64 then)
            a, b = (xp.astype(x, xp.float64) if not _is_scalar(x) else x for x in (a, b))
        with np.errstate(over="ignore", invalid="ignore"):
            # ext + T·log1p(exp(-|a - b|/|T|)), never a/T (which overflows for small |T|); where both are the
            # zero, |a - b| is NaN and the correction is set to 0
            ext = xp.maximum(a, b) if T > 0 else xp.minimum(a, b)
            d = xp.abs(a - b)
            d = xp.where(xp.isnan(d), xp.full_like(d, _INF), d)
            out = ext + T * xp.log1p(xp.exp(-d / abs(T)))
            if da is not None or db is not None:  # (back to both operands' promoted dtype, not the narrow one's)
                out = xp.astype(out, xp.result_type(*dts))
            return _check_overflow(self, out, "add", a, b)

    def mul(self, a, b):
        xp, a, b = _prep_pair(a, b)
        if xp is None:
            self._check_scalar(a, "first operand", "mul")
            self._check_scalar(b, "second operand", "mul")
            return _check_overflow(self, float(a) + float(b), "mul", a, b)
        return _checked_sum(self, _as_float(a, xp), _as_float(b, xp), xp)

    def sum(self, x, axis=None):
        if isinstance(x, (list, tuple)):
            x = asarray(x)
        if _is_scalar(x):
            return float(x)
        xp = namespace(x)
        x = _as_float(x, xp)
        if _reduced_size(x, axis) == 0:
            shape = () if axis is None else tuple(s for i, s in enumerate(x.shape) if i != axis % x.ndim)
            return self.zero if shape == () else self._full(shape, self.zero, x)
        T = self.T
        x, back = _wide_for(T, x, xp)
        with np.errstate(over="ignore", invalid="ignore"):
            # m + T·log Σ exp((x - m)/T) with m the ⊕-winner: (x - m)/T ≤ 0 never overflows upward
            m = xp.max(x, axis=axis, keepdims=True) if T > 0 else xp.min(x, axis=axis, keepdims=True)
            m_safe = xp.where(xp.isinf(m), xp.zeros_like(m), m)
            s = xp.sum(xp.exp((x - m_safe) / T), axis=axis, keepdims=True)
            out = T * _log0(s, xp) + m_safe
            if back is not None:
                out = xp.astype(out, back)
        if axis is None:
            out = out.reshape(()) if hasattr(out, "reshape") else xp.reshape(out, ())
        else:
            out = xp.squeeze(out, axis=axis)
        return _check_overflow(self, out, "sum", x)

    def prod(self, x, axis=None):
        if isinstance(x, (list, tuple)):
            x = asarray(x)
        if _is_scalar(x):
            return float(x)
        xp = namespace(x)
        x = _as_float(x, xp)
        if _reduced_size(x, axis) == 0:
            return MaxPlus._empty_reduction(x, axis, self.one)
        with np.errstate(over="ignore", invalid="ignore"):
            return _check_overflow(self, xp.sum(x, axis=axis), "prod", x)

    def power(self, a, k):
        """a^{⊗k} = k·a (floats); the zero has no inverse (negative powers of it raise NoInverseError).

        Examples
        --------
        >>> LogSemiring(1.0).power(1.5, -2)
        -3.0
        """
        if isinstance(a, (list, tuple)):
            a = asarray(a)
        k = _exponent(k)
        if _is_scalar(a):
            self._check_scalar(a, "base", "power")
            if k == 0:
                return self.one
            if float(a) == self.zero and k < 0:
                raise NoInverseError(_no_inverse_msg(self, k))
            if float(a) == self.zero:
                return self.zero
            return _check_overflow(self, float(k) * float(a), "power", a)
        xp = namespace(a)
        if k == 0:  # (a^0 = one for every a, the zero included: -inf * 0 was NaN, reported as an overflow)
            self.validate(a, f"the base of {self.name}.power")
            return xp.zeros_like(_as_float(a, xp))
        if k < 0:
            _check_invertible(self, a, k)
        with np.errstate(over="ignore", invalid="ignore"):
            return _check_overflow(self, _as_float(a, xp) * float(k), "power", a)

    def matmul(self, A, B):
        """``(A ⊗ B)_ij = T·log Σ_k exp((A_ik + B_kj)/T)``, computed stably (a scaled BLAS product)."""
        from .matmul import matmul

        return matmul(A, B, semiring=self)

    @property
    def dual(self):
        return LogSemiring(-self.T)

    def __eq__(self, other):
        return isinstance(other, LogSemiring) and other.T == self.T

    def __hash__(self):
        return hash(("LogSemiring", self.T))

    def __reduce__(self):
        return (LogSemiring, (self.T,))


def _log0(s, xp):
    """log of a non-negative array with log(0) = -inf and no floating-point warning."""
    pos = s > 0
    return xp.where(pos, xp.log(xp.where(pos, s, xp.ones_like(s))), xp.full_like(s, -_INF))


def _wide_for(T: float, x, xp):
    """``(x, dtype)``: ``x`` as float64 and its own floating dtype when that dtype cannot hold ``T`` as a normal
    number (``T = 1e5`` is inf in float16, ``1e-8`` is 0: ``(x - m) / T`` is NaN and a sum silently the zero),
    else ``(x, None)``.  The LogSemiring operations then compute in float64 and round the result back."""
    if _is_scalar(x) or x is None:
        return x, None
    dt = x.dtype
    if str(dt).split(".")[-1] == "float64":
        return x, None
    fi = xp.finfo(dt)
    tiny = float(getattr(fi, "smallest_normal", None) or fi.tiny)
    if tiny <= abs(T) <= float(fi.max):
        return x, None
    return xp.astype(x, xp.float64), dt


def _as_float(x, xp):
    if _is_scalar(x):  # (a Python or NumPy scalar beside a NumPy array: NumPy broadcasts it)
        return float(x)
    if isinstance(x, np.ndarray):
        if x.dtype == object or not np.issubdtype(x.dtype, np.floating):
            return x.astype(np.float64)
        return x
    if xp.isdtype(x.dtype, "real floating"):
        return x
    return xp.astype(x, xp.float64)


class RealSemiring(Semiring):
    """The ordinary real numbers (+, ×); used by tensor-network contraction when no semiring is given."""

    name = "Real"
    zero = 0
    one = 1
    sense = None
    idempotent = False

    def add(self, a, b):
        xp, a, b = _prep_pair(a, b, _sum_bound)
        return a + b

    def mul(self, a, b):
        xp, a, b = _prep_pair(a, b, _product_bound)
        return a * b

    # Integer arrays never wrap around: like ⊗ of the tropical semirings, a result that could leave int64 is
    # computed with Python integers (a NumPy object array), exactly.

    def sum(self, x, axis=None):
        """Σ x along ``axis``; integer arrays are summed exactly (see the class notes).

        Examples
        --------
        >>> Real.sum(np.array([2**62, 2**62]))  # int64 would wrap to a negative number
        9223372036854775808
        """
        if isinstance(x, (list, tuple)):
            x = asarray(x)
        if _is_scalar(x):
            return x
        xp = namespace(x)
        if _is_int_array(x) and _int_bound(x, xp) * max(_reduced_size(x, axis), 1) > _I64_MAX:
            return np.sum(_object_ints(x), axis=axis)
        return xp.sum(x, axis=axis)

    def prod(self, x, axis=None):
        """Π x along ``axis``; integer arrays are multiplied exactly.

        Examples
        --------
        >>> Real.prod(np.array([2**40, 2**40]))
        1208925819614629174706176
        """
        if isinstance(x, (list, tuple)):
            x = asarray(x)
        if _is_scalar(x):
            return x
        xp = namespace(x)
        if _is_int_array(x):
            bnd = _int_bound(x, xp)
            if bnd > 1 and max(_reduced_size(x, axis), 1) * math.log2(bnd) >= 62:
                return np.prod(_object_ints(x), axis=axis)
        return xp.prod(x, axis=axis)

    def power(self, a, k):
        """a**k; integer arrays raised to non-negative integer powers are exact.

        Examples
        --------
        >>> Real.power(np.array([3, -2]), 40)
        array([12157665459056928801, 1099511627776], dtype=object)
        """
        if isinstance(a, (list, tuple)):
            a = asarray(a)
        if _is_int_array(a) and isinstance(k, (int, np.integer)) and k >= 0:
            xp = namespace(a)
            bnd = _int_bound(a, xp)
            if bnd > 1 and int(k) * math.log2(bnd) >= 62:
                return _object_ints(a) ** int(k)
            a = _as_int64(a, xp)  # (int8 3**5 wrapped to -13: the result needs int64, which cannot wrap here)
        return a**k

    def matmul(self, A, B):
        """A @ B; integer matrices are multiplied exactly.

        Examples
        --------
        >>> Real.matmul(np.array([[2**40]]), np.array([[2**40]]))
        array([[1208925819614629174706176]], dtype=object)
        """
        if _is_int_array(A) and _is_int_array(B):
            xa, xb = namespace(A), namespace(B)
            inner = A.shape[-1] if len(A.shape) else 1
            if _int_bound(A, xa) * _int_bound(B, xb) * max(inner, 1) > _I64_MAX:
                return _object_ints(A) @ _object_ints(B)
            A, B = _as_int64(A, xa), _as_int64(B, xb)  # (int8 100 * 100 wrapped to 16)
        return A @ B

    @property
    def dual(self):
        return self


MaxPlus = TropicalSemiring(+1)
"""The max-plus semiring (ℝ ∪ {−∞}, max, +)."""

MinPlus = TropicalSemiring(-1)
"""The min-plus semiring (ℝ ∪ {+∞}, min, +)."""

Real = RealSemiring()
"""The ordinary semiring (ℝ, +, ×)."""

_ALIASES = {
    "max": MaxPlus,
    "maxplus": MaxPlus,
    "max-plus": MaxPlus,
    "max_plus": MaxPlus,
    "min": MinPlus,
    "minplus": MinPlus,
    "min-plus": MinPlus,
    "min_plus": MinPlus,
    "real": Real,
    "standard": Real,
}


def get_semiring(s: Any) -> Semiring:
    """Return the semiring named by ``s`` (a :class:`Semiring`, ``"max"``, ``"min"``, ``"real"``, or ``None`` → MaxPlus).

    Examples
    --------
    >>> get_semiring("min-plus")
    MinPlus
    >>> get_semiring("LogSemiring(T=0.5)")
    LogSemiring(T=0.5)
    """
    if s is None:
        return MaxPlus
    if isinstance(s, Semiring):
        return s
    if isinstance(s, str):
        key = s.strip().lower()
        if key in _ALIASES:
            return _ALIASES[key]
        if key.startswith("logsemiring(t=") and key.endswith(")"):
            return LogSemiring(float(key[len("logsemiring(t=") : -1]))
        raise ParseError(f"unknown semiring {s!r}; use MaxPlus, MinPlus, LogSemiring(T) or Real")
    raise SemiringMismatchError(f"semiring must be a tropix Semiring or its name, not {type(s).__name__}")


def check_same_semiring(*semirings: Semiring) -> Semiring:
    """Raise :class:`~tropix.errors.SemiringMismatchError` unless all semirings are equal; return it.

    Examples
    --------
    >>> check_same_semiring(MaxPlus, MinPlus)
    Traceback (most recent call last):
    ...
    tropix.errors.SemiringMismatchError: operands use different semirings: MaxPlus and MinPlus; convert one of them explicitly (e.g. with .dual and negation)
    """
    first = semirings[0]
    for s in semirings[1:]:
        if s != first:
            raise SemiringMismatchError(
                f"operands use different semirings: {first} and {s}; "
                "convert one of them explicitly (e.g. with .dual and negation)"
            )
    return first


def require_tropical(semiring: Any, what: str) -> TropicalSemiring:
    """Resolve ``semiring`` and insist on :data:`MaxPlus` or :data:`MinPlus`; ``what`` names the caller's object.

    Routines whose mathematics needs an idempotent order (polynomials, fans, tropical convexity, ranks)
    call this, so that every one of them rejects ``LogSemiring``/``Real`` with the same error.

    Examples
    --------
    >>> require_tropical("min", "a tropical polytope")
    MinPlus
    >>> require_tropical(Real, "a normal fan")
    Traceback (most recent call last):
    ...
    tropix.errors.SemiringMismatchError: a normal fan needs MaxPlus or MinPlus, not Real
    """
    S = get_semiring(semiring)
    if not isinstance(S, TropicalSemiring):
        raise SemiringMismatchError(f"{what} needs MaxPlus or MinPlus, not {S}")
    return S
