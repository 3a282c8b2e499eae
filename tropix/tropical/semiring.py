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

Mixed dtypes follow one rule on every library (NumPy's own, where NumPy has one), in the elementwise operations
and in :func:`~tropix.tropical.matmul.matmul` alike, so NumPy, torch and array-api-strict give the same values in
the same dtype:

* A scalar adapts to the array it meets, and a NumPy scalar counts as the Python number it holds
  (``np.float32(2.5)`` as ``2.5``): an integer scalar keeps an integer array's dtype when that dtype holds it
  (else the integers are widened, as above), a float scalar keeps a floating array's dtype (float64 if the scalar
  is beyond that dtype's range), and a float scalar beside an integer or bool array makes the result ``float64``,
  whole or not (``int8`` with ``5.0`` or ``np.float32(1000.0)``: float64, as NumPy does for a Python float).
* Two arrays, 0-d arrays included, promote as NumPy promotes their dtypes: an integer or bool array beside a
  floating one takes the narrowest floating dtype at least as wide as that one which holds every value of the
  integer dtype (``int8`` with ``float32``: float32; ``int32`` with ``float32``: float64), two floating dtypes
  give the wider one, bool beside an integer dtype that integer dtype.

Reductions (``sum``, ``prod``) take ``axis`` (an int, a tuple of ints or ``None``) and ``keepdims``; over empty
axes they give the zero (``sum``) or the one (``prod``) in the input's library and floating dtype (a NumPy scalar
for a full reduction of a NumPy array, as NumPy's own reductions).  NaN is never an element: the ordered
semirings raise :class:`~tropix.errors.NaNError` for it, in ⊕ as in ⊗.

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

from .._array import _scalar_kind, asarray, check_no_nan, is_array, namespace, to_exact_scalar, to_numpy
from ..errors import (
    ArgumentTypeError,
    ConventionError,
    DomainError,
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


def _check_real_scalar(v: Any, name: str) -> None:
    """Raise :class:`~tropix.errors.SemiringMismatchError` unless the scalar ``v`` is a real number (or ±inf, NaN).

    (A string, ``None`` or a complex number beside an array reached the library as it was: ``'a'`` raised a
    raw ``UFuncTypeError``, ``1j`` made the result complex.)
    """
    if isinstance(v, (bool, np.bool_)):
        return
    try:
        _scalar_kind(v)
    except TypeError:
        what = "complex" if isinstance(v, (complex, np.complexfloating)) else "not a real number"
        raise SemiringMismatchError(
            f"{name}, {_describe(v)}, is {what}; semirings hold real numbers and ±inf"
        ) from None


def _prep_pair(a: Any, b: Any, bound=None, select: bool = False, S: "Semiring | None" = None):
    """Return (xp, a, b) with lists converted, scalars left for broadcasting against arrays.

    ``bound(|a|max, |b|max)`` bounds ``|result|`` of the elementwise operation about to be applied; when
    given, integer operands are widened (see :func:`_widen_ints`) so that the operation cannot wrap around.
    ``select=True`` (⊕ of the tropical semirings, whose result is one of the operands) widens integer operands
    only where their common dtype could not hold both: an integer scalar beyond the array's dtype (``uint8``
    with ``-1``), integer dtypes without an integer promotion (``uint64`` with ``int64`` became float64), a
    Fraction partner (exact object arrays).  ``S`` names the semiring for the scalar checks below.

    A scalar is never changed in value by the cast to an array's dtype beyond rounding: a finite scalar beyond
    a float array's range (``1e5`` beside float16, which became ``inf``, claimed to be an operand's infinity)
    makes the operation compute in float64; an exact scalar beyond even float64's range is rounded to ``±inf``
    and, when that is the opposite infinity of ``S``, raises :class:`~tropix.errors.FloatOverflowError`.
    """
    if type(a) is type(b) and hasattr(a, "dtype") and a.dtype == b.dtype and a.dtype != object:
        # (the common case, two arrays of one library and one floating dtype: nothing to widen or convert;
        # the general path below cost 60 us against 38 before it for two 64 x 64 torch tensors)
        xp = namespace(a, b)
        if xp.isdtype(a.dtype, "real floating"):
            return xp, a, b
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
        if _is_scalar(x):
            _check_real_scalar(x, name)
        elif not (isinstance(x, np.ndarray) and x.dtype == object):
            check_real_dtype(x, name)
    a, b = _weak_scalar(a), _weak_scalar(b)
    if not (_is_scalar(a) or _is_scalar(b) or _is_object(a) or _is_object(b)):
        a, b = _promote_arrays(a, b, xp)  # (the mixed-dtype rule of the module docstring)
    if bound is not None:
        a, b = _widen_ints(a, b, xp, bound)
    elif select:
        a, b = _widen_select(a, b, xp)
    # an integer array meeting a float scalar (0.5, 5.0, -inf) or another non-integer one: the integers in float64
    # first, on every library, as NumPy promotes them beside a Python float (torch and array-api-strict cast the
    # scalar to the array's integer dtype: min(1, 0.5) gave 0, int8 with 5.0 stayed int8, with 1000.0 raised)
    for s_, x_ in ((a, b), (b, a)):
        if _is_scalar(s_) and _is_int_array(x_) and (isinstance(s_, float) or not _integral_value(s_)):
            if x_ is a:
                a = xp.astype(a, xp.float64)
            else:
                b = xp.astype(b, xp.float64)
    # a scalar beside a float array: converted to a float the array's dtype can hold (see above)
    for i, (s_, x_) in enumerate(((a, b), (b, a))):
        if not (_is_scalar(s_) and _is_float(x_)):
            continue
        s_new, widen = _scalar_for_float(s_, x_, S)
        if widen and select and S is not None and S.sense is not None and S.sense * float(s_new) < 0 \
                and not bool(xp.any(x_ == S.zero)):
            # ⊕ of a tropical semiring with a scalar that loses to every entry (-1e39 in max-plus beside
            # float32 entries, none of them the zero): the entries are the result, in their own dtype
            s_new, widen = S.zero, False
        if widen:
            x_ = xp.astype(x_, xp.float64)
        a, b = (s_new, x_) if i == 0 else (x_, s_new)
    if any(isinstance(x, np.ndarray) and x.dtype == object for x in (a, b)):
        xp = namespace(np.empty(0))  # (integers of another library widened to Python integers: NumPy now)
    if _is_scalar(a):
        a = _scalar_like(a, b, xp)
    if _is_scalar(b):
        b = _scalar_like(b, a, xp)
    return xp, a, b


def _scalar_for_float(s: Any, x: Any, S: "Semiring | None"):
    """``(scalar, widen)`` for a scalar ``s`` beside the float array ``x`` (see :func:`_prep_pair`)."""
    if isinstance(s, float):
        f = s
    else:
        try:
            f = float(s)
        except OverflowError:  # an exact int/Fraction beyond float64: rounded to ±inf, as a float would be
            f = _INF if s > 0 else -_INF
            if S is not None and S.sense is not None and f == -S.zero:
                raise FloatOverflowError(
                    f"the exact operand {_short(s)} of {S.name} lies beyond the float range of the other operand "
                    f"(dtype {_dtype_name(x)}), where it would be {f}, which is not an element of {S.name}; "
                    "use exact arrays (int/Fraction) for both operands"
                ) from None
            return f, False
        if not isinstance(s, (int, np.integer, np.floating)):  # Fractions, sympy rationals: as floats
            s = f
    if math.isfinite(f) and not _dtype_name(x) == "float64" and abs(f) > float(namespace(x).finfo(x.dtype).max):
        return s, True
    return s, False


def _dtype_name(x: Any) -> str:
    return str(x.dtype).split(".")[-1]


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else f"{r[:18]}...{r[-18:]} ({len(str(v))} characters)"


def _fits_dtype(v: int, dtype, xp) -> bool:
    """Whether the Python int ``v`` is a value of the integer dtype ``dtype`` (never for bool)."""
    try:
        if xp.isdtype(dtype, "bool"):
            return False
        ii = xp.iinfo(dtype)
    except (TypeError, ValueError, AttributeError):  # (array_api_compat's iinfo(bool): AttributeError)
        return False
    return int(ii.min) <= v <= int(ii.max)


def _is_object(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object


def _weak_scalar(s: Any) -> Any:
    """A NumPy scalar as the Python number it holds, a sympy float as a Python float; anything else unchanged.

    Scalars adapt to the array they meet (the mixed-dtype rule of the module docstring): NumPy promoted an
    ``int8`` array with ``np.float32(1000.0)`` to float32 and a float32 array with ``np.float64(2.5)`` to float64,
    where torch and array-api-strict gave float64 and float32.
    """
    if isinstance(s, np.generic):
        if isinstance(s, np.bool_):
            return bool(s)
        if isinstance(s, np.integer):
            return int(s)
        if isinstance(s, np.floating):
            return float(s)
        return s
    if type(s).__module__.startswith("sympy") and _scalar_kind(s) in ("float", "inf"):
        return float(s)
    return s


def _float_for_int(int_dtype, float_dtype, xp):
    """The floating dtype of an integer or bool array beside a floating array of ``float_dtype``: the narrowest of
    ``float_dtype``, float32 and float64 at least as wide as ``float_dtype`` whose significand holds every value
    of ``int_dtype`` (NumPy's promotion: ``int8`` with ``float32`` gives float32, ``int32`` with ``float32``
    float64, where torch gave float32 and array-api-strict refused the pair)."""
    if xp.isdtype(int_dtype, "bool"):
        need = 1
    else:
        ii = xp.iinfo(int_dtype)
        need = int(ii.bits) - (1 if int(ii.min) < 0 else 0)
    width = int(xp.finfo(float_dtype).bits)
    for dt in (float_dtype, xp.float32):
        fi = xp.finfo(dt)
        if int(fi.bits) >= width and round(-math.log2(float(fi.eps))) + 1 >= need:
            return dt
    return xp.float64


def _promote_arrays(a: Any, b: Any, xp):
    """Two arrays of one library (not object arrays) converted to their common dtype by the mixed-dtype rule of
    the module docstring wherever they differ in kind or are both floating: integer or bool beside floating
    (:func:`_float_for_int`), two floating dtypes (the wider), bool beside an integer dtype (that dtype).  Two
    integer dtypes are left to the callers' widening.  (torch let a 0-d tensor take the other operand's dtype,
    refused mixed dtypes in a matrix product, and array-api-strict refused mixed kinds.)"""
    da, db = a.dtype, b.dtype
    if da == db:
        return a, b
    try:
        if not all(xp.isdtype(d, ("bool", "integral", "real floating")) for d in (da, db)):
            return a, b  # (complex, strings: the callers' checks raise)
    except (TypeError, ValueError):
        return a, b
    ia, ib = _is_int_array(a), _is_int_array(b)
    if ia and ib:
        ba, bb = bool(xp.isdtype(da, "bool")), bool(xp.isdtype(db, "bool"))
        if ba == bb:
            return a, b
        return (xp.astype(a, db), b) if ba else (a, xp.astype(b, da))
    if ia:
        dt = _float_for_int(da, db, xp)
    elif ib:
        dt = _float_for_int(db, da, xp)
    else:
        dt = xp.result_type(da, db)
    return (a if da == dt else xp.astype(a, dt)), (b if db == dt else xp.astype(b, dt))


def _promote_pair(a: Any, b: Any):
    """:func:`_promote_arrays` for two operands that may also be scalars, lists or object arrays (left as they are)."""
    if is_array(a) and is_array(b) and not (_is_object(a) or _is_object(b)):
        return _promote_arrays(a, b, namespace(a, b))
    return a, b


def _int_promotion_exact(da, db, xp) -> bool:
    """Whether the library promotes the integer dtypes ``da`` and ``db`` to an integer dtype."""
    if da == db:
        return True
    try:
        r = xp.result_type(da, db)
    except Exception:  # (array-api-strict and torch refuse uint64 with int64)
        return False
    try:
        return bool(xp.isdtype(r, "integral"))
    except Exception:
        return False


def _widen_select(a: Any, b: Any, xp):
    """Integer operands of ⊕ of the tropical semirings, widened only where their common dtype loses values."""
    ia, ib = _is_int_array(a), _is_int_array(b)
    if not (ia or ib):
        return a, b
    if ia and ib:
        if _int_promotion_exact(a.dtype, b.dtype, xp):
            return a, b
        return _widen_ints(a, b, xp, max)
    arr, other = (a, b) if ia else (b, a)
    if _is_scalar(other):
        v = to_exact_scalar(_py_int(other))
        if isinstance(v, int) and _fits_dtype(v, arr.dtype, xp):
            return a, b
        if isinstance(v, (int, Fraction)):
            return _widen_ints(a, b, xp, max)
    return a, b  # floats, object arrays: the library's promotion (and the float64 rule of _prep_pair)


_I64_MAX = (1 << 63) - 1


def _py_int(v: Any) -> Any:
    """NumPy integer and bool scalars as Python ints (which never wrap around); other scalars unchanged."""
    return int(v) if isinstance(v, (np.integer, np.bool_, bool)) else v


def _is_bool_array(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype == np.bool_
    return is_array(x) and namespace(x).isdtype(x.dtype, "bool")


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
    integer dtype).  Integer arrays beside float arrays were promoted already (:func:`_promote_arrays`).
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
            v = to_exact_scalar(_py_int(x))
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


def _object_reals(x: np.ndarray, name: str) -> np.ndarray:
    """The object array ``x`` with its entries checked and normalised, still an object array.

    Exact entries become ints / Fractions (sympy numbers included) and floats stay floats, as the other object
    array operations keep them (:func:`real_array` makes the whole array float64 when it holds a finite float:
    ``Real.power`` of ``[Fraction(1, 3), 0.5]`` lost the exact 1/9).  A non-real entry raises
    :class:`~tropix.errors.SemiringMismatchError`.
    """
    if x.size == 0:
        return real_array(x, name)  # (empty input is float64, as asarray makes it)
    out = np.empty(x.shape, dtype=object)
    try:
        out.ravel()[:] = [to_exact_scalar(v) for v in x.ravel()]
    except TypeError as err:
        raise SemiringMismatchError(
            f"{name} holds a value that is not a real number ({err}); semirings hold real numbers and ±inf"
        ) from None
    return out


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
    def sum(self, x: Any, axis: int | tuple | None = None, keepdims: bool = False):
        """⊕-reduction of ``x`` along ``axis`` (an int, a tuple of ints, or None for all axes); the empty sum is
        :attr:`zero`, in the library and (floating) dtype of ``x``.  ``keepdims=True`` keeps the reduced axes
        with length 1."""
        raise NotImplementedError

    def prod(self, x: Any, axis: int | tuple | None = None, keepdims: bool = False):
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
        else:  # (a string or None was returned as a valid element)
            _check_real_scalar(x, name)
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
    def _check_object(self, x: np.ndarray, name: str) -> None:
        """:meth:`validate` of a NumPy object array without building its converted copy: Python ints,
        Fractions and floats (neither NaN nor the opposite infinity) pass in one loop; anything else (sympy
        numbers, strings, ...) goes through :meth:`validate` (exact polynomials and contractions over object
        arrays paid twice their time for the copy)."""
        bad = -self.zero
        for v in x.ravel():
            t = type(v)
            if t is int or t is Fraction:
                continue
            if t is float and v == v and v != bad:
                continue
            self.validate(x, name)
            return

    def add(self, a, b):
        """a ⊕ b (max or min), elementwise with broadcasting.

        Integer operands keep their (promoted) dtype; they are widened only where that dtype cannot hold both
        operands (``uint8`` with ``-1``, ``int8`` with ``1000``, ``uint64`` with ``int64``), to ``int64`` or
        Python integers, to exact Fractions beside a Fraction, and to ``float64`` beside a float scalar (``int8``
        with ``0.5``, ``1000.0`` or ``5.0``, as NumPy promotes them; see the module's mixed-dtype rule).

        Examples
        --------
        >>> import numpy as np
        >>> MinPlus.add(np.array([200, 7], dtype=np.uint8), -1)  # uint8 cannot hold -1
        array([-1, -1])
        """
        xp, a, b = _prep_pair(a, b, select=True, S=self)
        if xp is None:
            self._check_scalar(a, "first operand", "add")
            self._check_scalar(b, "second operand", "add")
            return (max if self.sense == 1 else min)(a, b)
        for x, what in ((a, "first operand"), (b, "second operand")):
            if isinstance(x, np.ndarray) and x.dtype == object:  # Python's max/min would drop a NaN silently
                self._check_object(x, f"the {what} of {self.name}.add")
        if _is_bool_array(a) and _is_bool_array(b):  # (array-api-strict has no maximum of bools: a raw TypeError)
            out = xp.logical_or(a, b) if self.sense == 1 else xp.logical_and(a, b)
        else:
            out = xp.maximum(a, b) if self.sense == 1 else xp.minimum(a, b)
        # NaN and the opposite infinity both dominate ⊕ (maximum/minimum propagate NaN): either is in the
        # result iff an operand held it (a NaN operand gave a NaN result silently)
        self._check_result(out, "an operand of " + self.name + ".add")
        return out

    def _check_result(self, out: Any, name: str) -> None:
        """Raise NaNError / ConventionError if the float result ``out`` of ⊕ holds NaN / the opposite infinity.

        One comparison pass: ``x < +inf`` (max-plus; ``x > -inf`` for min-plus) is false exactly for the
        opposite infinity and NaN.
        """
        if _is_scalar(out) or (isinstance(out, np.ndarray) and out.dtype == object):
            check_no_nan(out, name)
            self._check_convention(out, name)
            return
        xp = namespace(out)
        if not xp.isdtype(out.dtype, "real floating"):
            return
        ok = (out < _INF) if self.sense == 1 else (out > -_INF)
        if bool(xp.all(ok)):
            return
        check_no_nan(out, name)
        self._check_convention(out, name)

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
        xp, a, b = _prep_pair(a, b, _sum_bound, S=self)
        if xp is None:
            self._check_scalar(a, "first operand", "mul")
            self._check_scalar(b, "second operand", "mul")
            with np.errstate(over="ignore"):
                return _check_overflow(self, _exact_add(a, b), "mul", a, b)
        return _checked_sum(self, a, b, xp)

    def sum(self, x, axis=None, keepdims=False):
        """⊕-reduction (max or min) of ``x`` along ``axis`` (an int, a tuple or None for all axes).

        The empty sum is the zero, as a NumPy scalar / an array of ``x``'s library in ``x``'s floating dtype
        (``float64`` for integer input, which cannot hold ``±inf``); NaN raises NaNError (NumPy's and torch's
        max propagated it silently).

        Examples
        --------
        >>> import numpy as np
        >>> MaxPlus.sum(np.zeros(0, dtype=np.float32))
        np.float32(-inf)
        >>> MinPlus.sum(np.array([[3, 1], [2, 5]]), axis=1, keepdims=True)
        array([[1],
               [2]])
        """
        if isinstance(x, (list, tuple)):
            x = real_array(x)
        if _is_scalar(x):
            self._check_scalar(x, "input", "sum")
            return x
        xp = namespace(x)
        exact = isinstance(x, np.ndarray) and x.dtype == object
        if not exact:
            check_real_dtype(x)
        axes = _axes(x, axis)
        if _reduced_size(x, axes) == 0:
            return _empty_reduction(x, axes, keepdims, self.zero)
        if exact:  # (Python's max/min would drop a NaN silently and compare strings)
            self._check_object(x, f"the input of {self.name}.sum")
        ax = _lib_axis(x, axes)
        out = xp.max(x, axis=ax) if self.sense == 1 else xp.min(x, axis=ax)
        # NaN and the opposite infinity dominate the reduction: either is in the result iff x held it
        self._check_result(out, "the input of " + self.name + ".sum")
        return _restore_dims(out, x, axes) if keepdims else out

    def prod(self, x, axis=None, keepdims=False):
        """⊗-reduction (the ordinary sum) of ``x`` along ``axis``; the empty product is the one, ``0``
        (``int64`` for integer input, else ``x``'s floating dtype).  Integers never wrap around."""
        if isinstance(x, (list, tuple)):
            x = real_array(x)
        if _is_scalar(x):
            self._check_scalar(x, "input", "prod")
            return x
        xp = namespace(x)
        if not (isinstance(x, np.ndarray) and x.dtype == object):
            check_real_dtype(x)
        elif self.sense is not None:  # (exact input: the float checks below never see it)
            self._check_object(x, f"the input of {self.name}.prod")
        axes = _axes(x, axis)
        n = _reduced_size(x, axes)
        if n == 0:
            return _empty_reduction(x, axes, keepdims, self.one)
        ax = _lib_axis(x, axes)
        if _is_int_array(x):  # int64 sums must not wrap around: Python integers when they might
            if _int_bound(x, xp) * n > _I64_MAX:
                out = np.sum(_object_ints(x), axis=ax)
            else:
                out = xp.sum(xp.astype(x, xp.int64), axis=ax)
        elif _is_float(x):
            with np.errstate(over="ignore", invalid="ignore"):
                out = _check_overflow(self, xp.sum(x, axis=ax), "prod", x)
        else:
            try:
                out = xp.sum(x, axis=ax)
            except OverflowError:  # an exact int beyond the float range beside an infinity
                out = np.frompyfunc(_exact_add, 2, 1).reduce(_fold_axes(x, axes), axis=-1)
        return _restore_dims(out, x, axes) if keepdims else out

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
                return xp.zeros(a.shape, dtype=xp.int64, device=getattr(a, "device", None))
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


def _axes(x: Any, axis: Any) -> tuple:
    """The reduction axes of ``x`` as a sorted tuple of non-negative ints (every axis for ``None``).

    An axis out of range or repeated raises :class:`~tropix.errors.ShapeError` (a raw ``IndexError`` before, or,
    for an empty input, an axis silently taken modulo the number of dimensions); a tuple of axes is accepted
    by every semiring (it raised ``TypeError`` in the ordered ones).
    """
    nd = len(x.shape)
    if axis is None:
        return tuple(range(nd))
    items = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for ax in items:
        if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)):
            raise ArgumentTypeError(f"axis must be an int, a tuple of ints or None, not {_describe(axis)}")
        ax = int(ax)
        if not -nd <= ax < nd:
            raise ShapeError(f"axis {ax} is out of bounds for an input with {nd} dimension(s) (shape {tuple(x.shape)})")
        out.append(ax % nd)
    if len(set(out)) != len(out):
        raise ShapeError(f"axis {axis} names an axis twice")
    return tuple(sorted(out))


def _lib_axis(x: Any, axes: tuple):
    """The ``axis`` argument for the array library's own reduction over ``axes``."""
    if len(axes) == len(x.shape):
        return None
    return axes[0] if len(axes) == 1 else axes


def _real_no_inverse_msg(k, where=""):
    return (
        f"0{where} has no inverse in Real, so its power with the negative exponent {k} is undefined (as 1/0 is)"
    )


def _real_domain_msg(k):
    return (
        f"a negative base raised to the non-integer power {k} is not a real number (Real holds the real numbers)"
    )


def _reduced_size(x, axes):
    """The number of entries each output entry of a reduction over ``axes`` (a tuple, an int or None) combines."""
    shape = tuple(int(s) for s in x.shape)
    if axes is None:
        return int(np.prod(shape)) if shape else 1
    if not isinstance(axes, tuple):
        axes = (axes,)
    return math.prod(shape[i] for i in axes)


def _reduced_shape(x: Any, axes: tuple, keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if i in axes else int(s) for i, s in enumerate(x.shape))
    return tuple(int(s) for i, s in enumerate(x.shape) if i not in axes)


def _empty_reduction(x: Any, axes: tuple, keepdims: bool, value: Any):
    """The value of a reduction over empty axes (``value``: the semiring's zero for ⊕, one for ⊗), in the library,
    dtype and device of ``x`` and the shape of the reduction.

    The dtype is ``x``'s when it is floating; integer and bool input give ``int64`` for a finite ``value`` (as
    the non-empty ⊗-products of integers) and ``float64`` for an infinite one (no integer is ±inf).  A full
    reduction of a NumPy array gives a NumPy scalar (as NumPy's reductions and the non-empty ones here), of an
    exact object array a Python value, of any other library a 0-d array (it gave a Python float for
    ``LogSemiring(T).sum`` of a torch tensor, and a Python int, not float32, for ``MaxPlus.prod``).
    """
    shape = _reduced_shape(x, axes, keepdims)
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            if shape == ():
                return value
            out = np.empty(shape, dtype=object)
            out.fill(value)
            return out
        if x.dtype.kind == "f":
            dt = x.dtype
        else:
            dt = np.dtype(np.float64) if isinstance(value, float) and math.isinf(value) else np.dtype(np.int64)
        return dt.type(value) if shape == () else np.full(shape, value, dtype=dt)
    xp = namespace(x)
    if xp.isdtype(x.dtype, "real floating"):
        dt = x.dtype
    else:
        dt = xp.float64 if isinstance(value, float) and math.isinf(value) else xp.int64
    if dt == xp.int64:
        value = int(value)
    try:
        return xp.full(shape, value, dtype=dt, device=getattr(x, "device", None))
    except TypeError:
        return xp.full(shape, value, dtype=dt)


def _restore_dims(out: Any, x: Any, axes: tuple):
    """The result of a reduction over ``axes`` with those axes kept as length-1 axes (``keepdims=True``)."""
    shape = _reduced_shape(x, axes, True)
    if is_array(out):
        return out.reshape(shape) if isinstance(out, np.ndarray) else namespace(out).reshape(out, shape)
    if isinstance(out, np.generic):
        return np.reshape(out, shape)
    arr = np.empty(shape, dtype=object)  # (a Python value: the reduction of an exact object array)
    arr.ravel()[0] = out
    return arr


def _fold_axes(x: np.ndarray, axes: tuple) -> np.ndarray:
    """``x`` with the axes ``axes`` merged into one last axis (for ufunc reductions that take one axis only)."""
    rest = [i for i in range(x.ndim) if i not in axes]
    y = np.transpose(x, rest + list(axes))
    return y.reshape(tuple(x.shape[i] for i in rest) + (-1,))


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
        try:
            Tf = float(T)
        except OverflowError:  # (an exact int or Fraction beyond the float range raised a raw OverflowError)
            raise ToleranceError(
                f"temperature T must be finite and non-zero (got {_short(T)}, beyond the float range)"
            ) from None
        if math.isnan(Tf):
            raise ToleranceError("temperature T is NaN")
        if Tf == 0 or not math.isfinite(Tf):
            extra = ", which rounds to 0.0 as a float" if Tf == 0 and T != 0 else ""
            raise ToleranceError(
                f"temperature T must be finite and non-zero (got {_short(T)}{extra}); "
                "T -> 0 is MaxPlus/MinPlus themselves"
            )
        self.T = Tf
        self.sense = 1 if self.T > 0 else -1
        self.zero = -_INF if self.T > 0 else _INF
        self.one = 0.0
        # repr(float) is the shortest string that round-trips: distinct temperatures get distinct names (``:g``
        # gave T = 0.1 and 0.1 + 1e-12 the same one), and get_semiring(name) rebuilds an equal semiring
        self.name = f"LogSemiring(T={self.T!r})"

    @property
    def limit(self) -> TropicalSemiring:
        """The tropical semiring reached as T → 0 with the sign of T."""
        return MaxPlus if self.sense == 1 else MinPlus

    # -- operands ------------------------------------------------------------------------------
    def _to_float(self, v: Any, op: str, what: str = "operand") -> float:
        """A scalar element as a Python float; an exact value beyond the float range is ``±inf``: the zero
        (silently, as IEEE rounding) or the opposite infinity (:class:`~tropix.errors.FloatOverflowError`)."""
        try:
            return float(v)
        except OverflowError:  # (a raw OverflowError before)
            f = _INF if v > 0 else -_INF
            if f == self.zero:
                return f
            raise FloatOverflowError(
                f"{self.name}.{op}: the exact {what} {_short(v)} lies beyond the float range, where it would be "
                f"{f}, which is not an element of {self.name}; its results are floats - rescale the data"
            ) from None

    def _operand(self, x: Any, what: str, op: str):
        """A checked operand as a Python float or a floating array (integer and exact input in float64).

        Non-real scalars and entries raise SemiringMismatchError (strings gave raw ValueErrors, complex arrays
        a ComplexWarning and their real part), NaN scalars NaNError, exact values beyond the float range as in
        :meth:`_to_float`.  Integer arrays become float64 before meeting a scalar (torch and array-api-strict
        cast the scalar to the integer dtype: int8 with 1000 raised).
        """
        if isinstance(x, (list, tuple)):
            x = real_array(x, f"the {what} of {self.name}.{op}")
        if _is_scalar(x):
            self._check_scalar(x, what, op)
            return self._to_float(x, op)
        if isinstance(x, np.ndarray) and x.dtype == object:
            name = f"the {what} of {self.name}.{op}"
            x = real_array(x, name)
            if x.dtype != object:
                return x
            self.validate(x, name)
            try:
                return x.astype(np.float64)
            except OverflowError:
                out = np.empty(x.shape, dtype=np.float64)
                out.ravel()[:] = [self._to_float(v, op) for v in x.ravel()]
                return out
        check_real_dtype(x, f"the {what} of {self.name}.{op}")
        return _as_float(x, namespace(x))

    def _exact_operand(self, x: Any, what: str, op: str):
        """``x`` as a checked exact scalar (int/Fraction/±inf) or exact object array, or None if it holds floats
        (or is an array of another dtype)."""
        if isinstance(x, (list, tuple)):
            x = real_array(x, f"the {what} of {self.name}.{op}")
        if _is_scalar(x):
            self._check_scalar(x, what, op)
            v = to_exact_scalar(_py_int(x))
            return v if isinstance(v, (int, Fraction)) or math.isinf(v) else None
        if isinstance(x, np.ndarray) and x.dtype == object:
            x = real_array(x, f"the {what} of {self.name}.{op}")
            if x.dtype != object:
                return None
            self.validate(x, f"the {what} of {self.name}.{op}")
            return x
        return None

    def _round_exact(self, r: Any, op: str, scalar_type=float):
        """The exact result ``r`` (a scalar or an object array) rounded to float64 (see :meth:`_to_float`); a
        scalar as ``scalar_type`` (a NumPy scalar for the full reduction of an array, as NumPy's own)."""
        if isinstance(r, np.ndarray):
            out = np.empty(r.shape, dtype=np.float64)
            out.ravel()[:] = [self._to_float(v, op, "result") for v in r.ravel()]
            return out
        return scalar_type(self._to_float(r, op, "result"))

    def add(self, a, b):
        a, b = _promote_pair(a, b)  # (int8 with float32 is float32 on every library: the module's dtype rule)
        a = self._operand(a, "first operand", "add")
        b = self._operand(b, "second operand", "add")
        xp, a, b = _prep_pair(a, b, S=self)
        T = self.T
        if xp is None:
            if a == self.zero:
                return b
            if b == self.zero:
                return a
            ext = max(a, b) if T > 0 else min(a, b)  # the ⊕-winner; T·log1p(…) adds at most |T|·log 2
            d = abs(a - b)
            g = d / abs(T)
            if math.isinf(d) and abs(T) > 1:  # (a - b overflowed; the scaled gap may be small: T = 1e308)
                g = abs(a / T - b / T)
            return _check_overflow(self, ext + T * math.log1p(math.exp(-g)), "add", a, b)
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
            g = d / abs(T)
            if abs(T) > 1 and bool(xp.any(xp.isinf(d))):  # where a - b overflowed, |a/T - b/T| (both zeros:
                # NaN, set to inf; the check first: the extra passes cost 1.7x on ordinary input)
                g2 = xp.abs(a / T - b / T)
                g2 = xp.where(xp.isnan(g2), xp.full_like(g2, _INF), g2)
                g = xp.where(xp.isinf(d), g2, g)
            out = ext + T * xp.log1p(xp.exp(-g))
            if da is not None or db is not None:  # (back to both operands' promoted dtype, not the narrow one's)
                out = xp.astype(out, xp.result_type(*dts))
            return _check_overflow(self, out, "add", a, b)

    def mul(self, a, b):
        ea, eb = self._exact_operand(a, "first operand", "mul"), self._exact_operand(b, "second operand", "mul")
        if ea is not None and eb is not None:  # exact input: summed exactly (the zero absorbs), rounded once
            return self._round_exact(np.frompyfunc(_exact_add, 2, 1)(ea, eb), "mul")
        a, b = _promote_pair(a, b)
        a = self._operand(a, "first operand", "mul")
        b = self._operand(b, "second operand", "mul")
        xp, a, b = _prep_pair(a, b, S=self)
        if xp is None:
            with np.errstate(over="ignore"):
                return _check_overflow(self, a + b, "mul", a, b)
        return _checked_sum(self, a, b, xp)

    def sum(self, x, axis=None, keepdims=False):
        """``T·log Σ exp(x/T)`` along ``axis``, computed stably; the empty sum is the zero (``∓inf``).

        Results have ``x``'s floating dtype (float64 for integer and exact input); float16 and bfloat16 are
        accumulated in float32 (a float16 sum of more than 65504 terms overflowed).  A full reduction of a
        NumPy array is a NumPy scalar, as NumPy's own reductions.

        Examples
        --------
        >>> import numpy as np
        >>> S = LogSemiring(0.5)
        >>> S.sum(np.zeros(0, dtype=np.float32))
        np.float32(-inf)
        >>> float(S.sum(np.array([1.0, 1.0]))) == 1 + 0.5 * math.log(2)
        True
        """
        x = self._operand(x, "input", "sum")
        if _is_scalar(x):
            return x
        xp = namespace(x)
        axes = _axes(x, axis)
        if _reduced_size(x, axes) == 0:
            return _empty_reduction(x, axes, keepdims, self.zero)
        T = self.T
        x, back = _wide_for(T, x, xp)
        if back is None and _narrow_float(x, xp):  # (Σ exp in float32: n terms of 1 overflow float16 at 65505)
            back, x = x.dtype, xp.astype(x, xp.float32)
        ax = _lib_axis(x, axes)
        with np.errstate(over="ignore", invalid="ignore"):
            # m + T·log Σ exp((x - m)/T) with m the ⊕-winner: (x - m)/T ≤ 0 never overflows upward
            m = xp.max(x, axis=ax, keepdims=True) if T > 0 else xp.min(x, axis=ax, keepdims=True)
            m_safe = xp.where(xp.isinf(m), xp.zeros_like(m), m)
            s = xp.sum(xp.exp(_scaled_gap(x, m_safe, T, xp)), axis=ax, keepdims=True)
            out = T * _log0(s, xp) + m_safe
            if back is not None:
                out = xp.astype(out, back)
        if not keepdims:
            if len(axes) == len(x.shape):
                out = out.reshape(()) if isinstance(out, np.ndarray) else xp.reshape(out, ())
            else:
                out = xp.squeeze(out, axis=axes if len(axes) > 1 else axes[0])
        out = _check_overflow(self, out, "sum", x)
        return out[()] if isinstance(out, np.ndarray) and out.ndim == 0 else out

    def prod(self, x, axis=None, keepdims=False):
        ex = self._exact_operand(x, "input", "prod")
        if ex is not None and not _is_scalar(ex):  # exact input: summed exactly, rounded once
            axes = _axes(ex, axis)
            if _reduced_size(ex, axes) == 0:
                return _empty_reduction(self._operand(ex, "input", "prod"), axes, keepdims, self.one)
            out = np.frompyfunc(_exact_add, 2, 1).reduce(_fold_axes(ex, axes), axis=-1)
            out = self._round_exact(out, "prod", np.float64)
            return _restore_dims(out, ex, axes) if keepdims else out
        x = self._operand(x, "input", "prod")
        if _is_scalar(x):
            return x
        xp = namespace(x)
        axes = _axes(x, axis)
        if _reduced_size(x, axes) == 0:
            return _empty_reduction(x, axes, keepdims, self.one)
        with np.errstate(over="ignore", invalid="ignore"):
            out = _check_overflow(self, xp.sum(x, axis=_lib_axis(x, axes)), "prod", x)
        return _restore_dims(out, x, axes) if keepdims else out

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
            a = self._to_float(a, "power")
            if a == self.zero and k < 0:
                raise NoInverseError(_no_inverse_msg(self, k))
            if a == self.zero:
                return self.zero
            with np.errstate(over="ignore"):
                return _check_overflow(self, float(k) * a, "power", a)
        xp = namespace(a)
        if k == 0:  # (a^0 = one for every a, the zero included: -inf * 0 was NaN, reported as an overflow)
            self.validate(a, f"the base of {self.name}.power")
            if _is_float(a):
                return xp.zeros_like(a)
            if isinstance(a, np.ndarray):  # (exact input: huge ints need no float conversion)
                return np.zeros(a.shape)
            return xp.zeros(a.shape, dtype=xp.float64, device=getattr(a, "device", None))
        if k < 0:
            _check_invertible(self, a, k)
        a = self._operand(a, "base", "power")
        with np.errstate(over="ignore", invalid="ignore"):
            return _check_overflow(self, a * float(k), "power", a)

    def matmul(self, A, B):
        """``(A ⊗ B)_ij = T·log Σ_k exp((A_ik + B_kj)/T)``, computed stably (a scaled BLAS product)."""
        from .matmul import matmul

        return matmul(A, B, semiring=self)

    @property
    def dual(self):
        return LogSemiring(-self.T)

    def __eq__(self, other):
        # (equal exactly when the names are: repr(float) is injective on the finite non-zero floats)
        return isinstance(other, LogSemiring) and other.T == self.T

    def __hash__(self):
        return hash(("LogSemiring", self.T))

    def __reduce__(self):
        return (LogSemiring, (self.T,))


def _narrow_float(x: Any, xp) -> bool:
    """A floating array narrower than float32 (float16, bfloat16)."""
    try:
        return int(xp.finfo(x.dtype).bits) < 32
    except (TypeError, ValueError, AttributeError):
        return False


def _scaled_gap(x, m, T: float, xp):
    """``(x - m) / T`` elementwise; where ``x - m`` overflows and ``|T| > 1`` (``T = 1e308`` with entries ``±1e308``)
    the quotient can be small, and is ``x/T - m/T`` (it gave ``exp(-inf) = 0``: the term was dropped)."""
    d = x - m
    q = d / T
    if abs(T) <= 1:
        return q  # (an overflowing x - m means |(x - m)/T| > 1.8e308: exp of it is 0 or the zero anyway)
    over = xp.isinf(d) & xp.isfinite(x)
    if not bool(xp.any(over)):  # (the usual case: no second pass over x)
        return q
    return xp.where(over, x / T - m / T, q)


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
    try:
        if _is_scalar(x):  # (a Python or NumPy scalar beside a NumPy array: NumPy broadcasts it)
            return float(x)
        if isinstance(x, np.ndarray):
            if x.dtype == object or not np.issubdtype(x.dtype, np.floating):
                return x.astype(np.float64)
            return x
    except OverflowError:  # (an exact value beyond the float range: a raw OverflowError before)
        raise FloatOverflowError(
            "the log-semiring computes in floats, and an exact operand is beyond the float range "
            "(it has no float value); rescale it"
        ) from None
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
        xp, a, b = _prep_pair(a, b, _sum_bound, S=self)
        if xp is None:
            _check_real_scalar(a, "the first operand of Real.add")
            _check_real_scalar(b, "the second operand of Real.add")
        return a + b

    def mul(self, a, b):
        xp, a, b = _prep_pair(a, b, _product_bound, S=self)
        if xp is None:
            _check_real_scalar(a, "the first operand of Real.mul")
            _check_real_scalar(b, "the second operand of Real.mul")
        return a * b

    # Integer arrays never wrap around: like ⊗ of the tropical semirings, a result that could leave int64 is
    # computed with Python integers (a NumPy object array), exactly.

    def _reduction_input(self, x, op):
        """``x`` checked for a reduction: a real scalar (returned as it is) or an array of real entries."""
        if isinstance(x, (list, tuple)):
            x = asarray(x)
        if _is_scalar(x):  # (a string or None was returned as the sum)
            _check_real_scalar(x, f"the input of Real.{op}")
        elif isinstance(x, np.ndarray) and x.dtype == object:
            real_array(x, f"the input of Real.{op}")
        else:
            check_real_dtype(x, f"the input of Real.{op}")
        return x

    def sum(self, x, axis=None, keepdims=False):
        """Σ x along ``axis``; integer arrays are summed exactly (see the class notes).

        Examples
        --------
        >>> Real.sum(np.array([2**62, 2**62]))  # int64 would wrap to a negative number
        9223372036854775808
        """
        x = self._reduction_input(x, "sum")
        if _is_scalar(x):
            return x
        xp = namespace(x)
        axes = _axes(x, axis)
        ax = _lib_axis(x, axes)
        if _is_int_array(x) and _int_bound(x, xp) * max(_reduced_size(x, axes), 1) > _I64_MAX:
            return np.sum(_object_ints(x), axis=ax, keepdims=keepdims)
        return xp.sum(x, axis=ax, keepdims=keepdims)

    def prod(self, x, axis=None, keepdims=False):
        """Π x along ``axis``; integer arrays are multiplied exactly.

        Examples
        --------
        >>> Real.prod(np.array([2**40, 2**40]))
        1208925819614629174706176
        """
        x = self._reduction_input(x, "prod")
        if _is_scalar(x):
            return x
        xp = namespace(x)
        axes = _axes(x, axis)
        ax = _lib_axis(x, axes)
        if _is_int_array(x):
            bnd = _int_bound(x, xp)
            if bnd > 1 and max(_reduced_size(x, axes), 1) * math.log2(bnd) >= 62:
                return np.prod(_object_ints(x), axis=ax, keepdims=keepdims)
        return xp.prod(x, axis=ax, keepdims=keepdims)

    def power(self, a, k):
        """a**k; exact input (integers, Fractions) stays exact, negative integer powers included.

        Raises
        ------
        NoInverseError
            For a negative power of 0, which has no inverse (a raw ZeroDivisionError for scalars, NumPy's
            "Integers to negative integer powers are not allowed" for integer arrays, ``inf`` for floats).
        DomainError
            For a non-integer power of a negative number (a complex result for scalars, NaN for arrays).
        NaNError
            For a NaN exponent.

        Examples
        --------
        >>> Real.power(np.array([3, -2]), 40)
        array([12157665459056928801, 1099511627776], dtype=object)
        >>> Real.power(np.array([2, -4]), -1)
        array([Fraction(1, 2), Fraction(-1, 4)], dtype=object)
        """
        if isinstance(a, (list, tuple)):
            a = real_array(a, "the base of Real.power")
        if is_array(k) or isinstance(k, (list, tuple)):  # elementwise exponents: the library's power
            return a**k
        _check_real_scalar(k, "the exponent of Real.power")
        k = to_exact_scalar(k)
        if isinstance(k, float) and math.isnan(k):
            raise NaNError("the exponent of Real.power is NaN")
        if isinstance(k, Fraction):  # (a non-integer rational exponent: the result is irrational in general)
            k = float(k)
        integral = isinstance(k, int)
        whole = integral or (isinstance(k, float) and k.is_integer())  # (2.0: a negative base is fine)
        if _is_scalar(a):
            _check_real_scalar(a, "the base of Real.power")
            a = _py_int(a)
            if k == 0:  # (a float base gives a float one, as a**0 does)
                return a.dtype.type(1) if isinstance(a, np.floating) else (1.0 if isinstance(a, float) else self.one)
            if k < 0 and a == 0:
                raise NoInverseError(_real_no_inverse_msg(k))
            if not whole and a < 0:
                raise DomainError(_real_domain_msg(k))
            exact = isinstance(a, (int, Fraction)) or (
                not isinstance(a, (float, np.floating)) and _scalar_kind(a) == "exact"
            )
            if exact and integral:
                return to_exact_scalar(Fraction(to_exact_scalar(a)) ** k) if k < 0 else to_exact_scalar(a) ** k
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # (IEEE, as the arrays)
                if isinstance(a, np.floating):
                    return a**k
                return float(np.float64(float(a)) ** k)
        xp = namespace(a)
        if isinstance(a, np.ndarray) and a.dtype == object:
            a = _object_reals(a, "the base of Real.power")
        else:
            check_real_dtype(a, "the base of Real.power")
        obj = isinstance(a, np.ndarray) and a.dtype == object
        if k < 0 and bool(xp.any(a == 0)):
            hit = np.argwhere(to_numpy(a == 0))[0]
            raise NoInverseError(_real_no_inverse_msg(k, f" (at index {tuple(int(i) for i in hit)})"))
        if not whole and bool(xp.any(a < 0)):
            raise DomainError(_real_domain_msg(k))
        if obj or (_is_int_array(a) and integral and k < 0):
            if not integral:
                with np.errstate(over="ignore"):
                    return np.array([float(v) for v in np.ravel(a)], dtype=np.float64).reshape(a.shape) ** k
            out = np.empty(a.shape, dtype=object)
            vals = np.ravel(a) if obj else np.ravel(to_numpy(a))
            with np.errstate(over="ignore", divide="ignore"):
                out.ravel()[:] = [
                    float(np.float64(v) ** k) if isinstance(v, float) else to_exact_scalar(Fraction(to_exact_scalar(v)) ** k)
                    for v in vals
                ]
            return out
        if _is_int_array(a):
            if not integral:
                return xp.astype(a, xp.float64) ** k
            if k >= 0:
                xp_ = namespace(a)
                bnd = _int_bound(a, xp_)
                if bnd > 1 and int(k) * math.log2(bnd) >= 62:
                    return _object_ints(a) ** int(k)
                a = _as_int64(a, xp_)  # (int8 3**5 wrapped to -13: the result needs int64, which cannot wrap here)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
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
            try:
                T = float(key[len("logsemiring(t=") : -1])
            except ValueError:  # (a raw ValueError before)
                raise ParseError(f"unknown semiring {s!r}: the temperature is not a number") from None
            return LogSemiring(T)
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
