"""Checks of scalar and option arguments shared by every layer: integers, indices, real tolerances, mode sizes,
option names and variable names, each raising the specific tropix error with a message that names the
argument, says what was wrong and what is accepted.

Array arguments are checked elsewhere (:meth:`~tropix.tropical.semiring.Semiring.validate`,
:func:`~tropix._array.check_no_nan`, ...); this module is for the small arguments around them, which used
to fail deep inside NumPy with a raw ``TypeError`` or ``IndexError`` (or, worse, were silently truncated:
``int(1.5) == 1``).

Examples
--------
>>> check_int(3, "rank", minimum=1)
3
>>> check_int(1.5, "rank")
Traceback (most recent call last):
...
tropix.errors.ArgumentTypeError: rank must be an integer, got 1.5 (float)
>>> check_option("lp", "regime", ("exact", "lp", "auto"))
'lp'
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._array import check_has_values
from .._repr import summary
from ..errors import ArgumentTypeError, OptionError, ParseError, ShapeError, ToleranceError

__all__ = ["check_int", "check_index", "check_real", "check_dims", "check_option", "check_names", "check_array_dtype", "check_seed"]

_RESERVED_NAMES = frozenset({"inf", "infinity", "nan"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def _is_integer(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (numbers.Integral, np.integer)):
        return True
    # a 0-d integer array of any library (e.g. torch.tensor(3))
    dt = getattr(v, "dtype", None)
    return getattr(v, "ndim", None) == 0 and dt is not None and "int" in str(dt)


def _describe(v: Any) -> str:
    """The value and its type, in a line: an array (or a long sequence) by its summary, not its entries."""
    if (not isinstance(v, type) and getattr(v, "ndim", 0)) or (
            isinstance(v, (list, tuple, dict, set, frozenset)) and len(repr(v)) > 80):
        return summary(v)
    return f"{v!r} ({type(v).__name__})"


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as a Python ``int``; :class:`~tropix.errors.ArgumentTypeError` unless it is an integer (bools and
    floats such as ``2.0`` are refused), :class:`~tropix.errors.ToleranceError` outside ``[minimum, maximum]``.

    Examples
    --------
    >>> check_int(np.int64(4), "n", minimum=1)
    4
    >>> check_int(0, "n", minimum=1)
    Traceback (most recent call last):
    ...
    tropix.errors.ToleranceError: n must be at least 1, got 0
    """
    if not _is_integer(value):
        raise ArgumentTypeError(f"{name} must be an integer, got {_describe(value)}")
    v = int(value)
    if minimum is not None and v < minimum:
        raise ToleranceError(f"{name} must be at least {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ToleranceError(f"{name} must be at most {maximum}, got {v}")
    return v


def check_index(value: Any, n: int, name: str, *, what: str = "item") -> int:
    """``value`` as an index into ``n`` items: an integer in ``0..n-1`` (:class:`~tropix.errors.ShapeError` when
    out of range, :class:`~tropix.errors.ArgumentTypeError` when not an integer).

    Examples
    --------
    >>> check_index(2, 3, "j", what="key")
    2
    >>> check_index(3, 3, "j", what="key")
    Traceback (most recent call last):
    ...
    tropix.errors.ShapeError: j = 3 is out of range: there are 3 keys (indices 0..2)
    """
    if not _is_integer(value):
        raise ArgumentTypeError(f"{name} must be an integer index, got {_describe(value)}")
    v = int(value)
    if not 0 <= v < n:
        raise ShapeError(f"{name} = {v} is out of range: there are {n} {what}s (indices 0..{n - 1})")
    return v


def check_real(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    open_min: bool = False,
    finite: bool = True,
    none_ok: bool = False,
):
    """Check a real scalar option (a tolerance, temperature, exponent, ...) and return it unchanged (exact values
    stay exact).  Not a real number: :class:`~tropix.errors.ArgumentTypeError`; NaN, infinite (with
    ``finite=True``) or out of range: :class:`~tropix.errors.ToleranceError`.

    Examples
    --------
    >>> from fractions import Fraction
    >>> check_real(Fraction(1, 3), "tol", minimum=0)
    Fraction(1, 3)
    >>> check_real(-1e-9, "tol", minimum=0)
    Traceback (most recent call last):
    ...
    tropix.errors.ToleranceError: tol must be >= 0, got -1e-09
    """
    if value is None and none_ok:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        if getattr(value, "ndim", None) == 0 and hasattr(value, "item") and not isinstance(value, (str, bytes)):
            item = value.item()
            if isinstance(item, numbers.Real) and not isinstance(item, bool):
                return check_real(item, name, minimum=minimum, maximum=maximum, open_min=open_min, finite=finite)
        accepted = "a real number" + (" or None" if none_ok else "")
        raise ArgumentTypeError(f"{name} must be {accepted}, got {_describe(value)}")
    try:
        f = float(value)
    except OverflowError:  # an exact value beyond the float range (10**400): finite, compared exactly below
        f = 0.0
    if math.isnan(f):
        raise ToleranceError(f"{name} is NaN; it must be a real number")
    if finite and math.isinf(f):
        raise ToleranceError(f"{name} must be finite, got {summary(value)}")
    if minimum is not None and (value <= minimum if open_min else value < minimum):
        raise ToleranceError(f"{name} must be {'>' if open_min else '>='} {minimum}, got {summary(value)}")
    if maximum is not None and value > maximum:
        raise ToleranceError(f"{name} must be <= {maximum}, got {summary(value)}")
    return value


def check_dims(value: Any, name: str, *, minimum: int = 1) -> tuple:
    """A sequence of mode sizes (integers ``>= minimum``) as a tuple of ints; :class:`~tropix.errors.ArgumentTypeError`
    for anything else (a bare integer, a string, nested lists, floats), :class:`~tropix.errors.ShapeError` for a
    size below ``minimum``.

    Examples
    --------
    >>> check_dims([2, np.int64(3)], "shape")
    (2, 3)
    >>> check_dims(4, "shape")
    Traceback (most recent call last):
    ...
    tropix.errors.ArgumentTypeError: shape must be a sequence of integers (e.g. (2, 3)), got 4 (int)
    """
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"{name} must be a sequence of integers (e.g. (2, 3)), got {_describe(value)}")
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise ArgumentTypeError(f"{name} must be a flat sequence of integers, got an array of shape {value.shape}")
    out = []
    for k, v in enumerate(value):
        if not _is_integer(v):
            raise ArgumentTypeError(f"{name}[{k}] must be an integer, got {_describe(v)}")
        if int(v) < minimum:
            raise ShapeError(f"{name}[{k}] = {int(v)}: sizes must be at least {minimum}")
        out.append(int(v))
    return tuple(out)


def check_option(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``, else :class:`~tropix.errors.OptionError` listing them.

    Examples
    --------
    >>> check_option("naive", "method", ("filter", "naive"))
    'naive'
    >>> check_option("fast", "method", ("filter", "naive"))
    Traceback (most recent call last):
    ...
    tropix.errors.OptionError: method must be one of 'filter', 'naive'; got 'fast'
    """
    if not isinstance(value, str) or value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {summary(value)}")
    return value


def check_names(names: Any, n: int | None, what: str = "variables", *, duplicate_error: type = ParseError) -> tuple:
    """Variable names: a sequence of ``n`` distinct identifiers (letters, digits, ``_``; not starting with a digit),
    none of them ``inf``, ``infinity`` or ``nan`` in any case (those would print as numbers).
    :class:`~tropix.errors.ArgumentTypeError` for a wrong type, :class:`~tropix.errors.ShapeError` for the wrong
    count, :class:`~tropix.errors.ParseError` for a name that is not a valid or allowed identifier (and, unless
    ``duplicate_error`` says otherwise, for a repeated name).

    Examples
    --------
    >>> check_names(["x", "y"], 2)
    ('x', 'y')
    >>> check_names(["x", "nan"], 2)
    Traceback (most recent call last):
    ...
    tropix.errors.ParseError: variables: 'nan' is reserved (it reads as a number); choose another name
    """
    if isinstance(names, (str, bytes, Mapping)) or not isinstance(names, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"{what} must be a sequence of names such as ('x', 'y'), got {_describe(names)}")
    names = tuple(names)
    for v in names:
        if not isinstance(v, str):
            raise ArgumentTypeError(f"{what}: every name must be a string, got {_describe(v)}")
        if not _IDENT.fullmatch(v):
            raise ParseError(f"{what}: {v!r} is not a valid name (letters, digits and _, not starting with a digit)")
        if v.lower() in _RESERVED_NAMES:
            raise ParseError(f"{what}: {v!r} is reserved (it reads as a number); choose another name")
    if len(set(names)) != len(names):
        raise duplicate_error(f"{what}: names must be distinct, got {list(names)}")
    if n is not None and len(names) != n:
        raise ShapeError(f"{what}: {len(names)} names given for {n} variables")
    return names



def check_array_dtype(x: Any, name: str) -> Any:
    """Return the array ``x`` unchanged unless its dtype holds no real numbers (complex, strings, ...: they were
    cast silently, the imaginary part dropped and strings parsed) or it is a torch tensor on the ``meta`` device
    (no values to read: a raw ``RuntimeError`` deep inside): :class:`~tropix.errors.ArgumentTypeError`.
    Non-arrays and object arrays pass (:func:`tropix._array.asarray` checks their entries).

    Examples
    --------
    >>> check_array_dtype(np.array([1 + 2j]), "x")
    Traceback (most recent call last):
    ...
    tropix.errors.ArgumentTypeError: x has dtype complex128; a real array (integer, float or exact) is expected
    """
    check_has_values(x, name)
    dt = getattr(x, "dtype", None)
    if dt is None or isinstance(x, (str, bytes)):
        return x
    kind = dt.kind if isinstance(dt, np.dtype) else ("c" if "complex" in str(dt) else "f")
    if kind not in "biufO":
        raise ArgumentTypeError(f"{name} has dtype {dt}; a real array (integer, float or exact) is expected")
    return x


def check_seed(seed: Any, name: str = "seed"):
    """``seed`` for :func:`numpy.random.default_rng`: ``None``, a non-negative integer (or a non-empty list of them)
    or a NumPy ``Generator`` /
    ``SeedSequence`` / ``BitGenerator``; else :class:`~tropix.errors.ArgumentTypeError` (a float, a string) or
    :class:`~tropix.errors.ToleranceError` (a negative integer), not NumPy's raw errors.

    Examples
    --------
    >>> check_seed(2.5)
    Traceback (most recent call last):
    ...
    tropix.errors.ArgumentTypeError: seed must be an integer, got 2.5 (float)
    """
    if seed is None or isinstance(seed, (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator)):
        return seed
    if isinstance(seed, (list, tuple)) and seed:  # (NumPy's entropy sequence)
        return [check_int(v, f"{name}[{i}]", minimum=0) for i, v in enumerate(seed)]
    return check_int(seed, name, minimum=0)
