"""Short ``repr`` for the library's result objects: a summary line, never an array dump.

A result class (a frozen dataclass) sets ``__repr__ = compact_repr``: its public fields are shown by
:func:`summary`, small values in full (scalars, strings, arrays of at most ``SMALL`` entries, short tuples),
large arrays as their library, dtype and shape.  A class may name what to show instead (``_repr_fields``:
fields or properties, such as a tensor train's shape and ranks) and add derived facts after them (a
method ``_repr_extra()`` returning ``(name, value)`` pairs, such as a result's largest bound).  The full data
stays in the attributes.

Examples
--------
>>> from dataclasses import dataclass
>>> import numpy as np
>>> @dataclass(frozen=True)
... class Fit:
...     coef: np.ndarray
...     residual: np.ndarray
...     method: str
...     __repr__ = compact_repr
>>> Fit(np.array([1.5, -2.0]), np.zeros((100, 3)), "lsq")
Fit(coef=[1.5, -2], residual=<numpy float64 (100, 3)>, method='lsq')
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from fractions import Fraction
from numbers import Number

import numpy as np

__all__ = ["compact_repr", "summary", "SMALL"]

SMALL = 12  # arrays of at most this many entries are shown in full
_ITEMS = 4  # mappings of at most this many items (or of up to SMALL numbers) are shown item by item
_WIDTH = 72  # a value whose summary is longer is cut at this many characters
_DIGITS = 12  # exact numbers of more than 3 * _DIGITS characters show this many at each end


def _is_array(x) -> bool:  # (a class such as np.ndarray has shape and dtype descriptors: not an array)
    return (hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (str, bytes, Number))
            and not inspect.isclass(x))


def _array(x) -> str:
    shape = tuple(int(s) for s in x.shape)
    lib = type(x).__module__.split(".")[0]
    dtype = str(x.dtype).replace("torch.", "")
    size = int(np.prod(shape)) if shape else 1
    if lib == "numpy" and size <= SMALL and len(shape) <= 2:  # (exact entries as the mathematics writes them)
        return _nested(np.asarray(x).tolist())
    return f"<{lib} {dtype} {shape}>"


def _nested(x) -> str:
    if isinstance(x, list):
        return "[" + ", ".join(_nested(t) for t in x) + "]"
    return _scalar(x)


def _int_text(i: int) -> str:
    """``str(i)``, or beyond Python's limit on converting integers to strings (4300 digits by default, where
    ``str`` raises ValueError) its sign, leading digits' magnitude and number of digits."""
    try:
        return str(i)
    except ValueError:
        n = int(abs(i).bit_length() * 0.30102999566398120) + 1  # (the digits, or one more)
        return f"{'-' if i < 0 else ''}<an integer of about {n} digits>"


def _scalar(x) -> str:
    if isinstance(x, Fraction):
        return _digits(_int_text(x.numerator) + ("" if x.denominator == 1 else "/" + _int_text(x.denominator)))
    if isinstance(x, (bool, np.bool_)):
        return repr(bool(x))
    if isinstance(x, (int, np.integer)):
        return _digits(_int_text(int(x)))
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6g}"
    return repr(x)


def _digits(s: str) -> str:
    """An exact number's digits, the middle of a very long one elided (``10**400``: its first and last digits
    and how many there are)."""
    if len(s) <= 3 * _DIGITS or "<" in s:
        return s
    n = sum(ch.isdigit() for ch in s)
    return f"{s[:_DIGITS]}...{s[-_DIGITS:]} ({n} digits)"


def _cut(s: str) -> str:
    return s if len(s) <= _WIDTH else s[:_WIDTH - 3] + "..."


def summary(x) -> str:
    """A one-line summary of ``x`` for :func:`compact_repr`.

    Examples
    --------
    >>> import numpy as np
    >>> summary(np.arange(3)), summary(np.zeros((64, 64), np.float32)), summary(0.1 + 0.2)
    ('[0, 1, 2]', '<numpy float32 (64, 64)>', '0.3')
    >>> from fractions import Fraction
    >>> summary(np.array([Fraction(1, 2), 3, float("-inf")], dtype=object)), summary(10**400)
    ('[1/2, 3, -inf]', '100000000000...000000000000 (401 digits)')
    >>> summary(tuple(np.zeros((2, 2, 2)) for _ in range(6))), summary((1, 4, 4, 4, 4, 1))
    ('<tuple of 6: <numpy float64 (2, 2, 2)>, ...>', '(1, 4, 4, 4, 4, 1)')
    """
    if x is None or isinstance(x, (str, bytes)):
        return _cut(repr(x))
    if _is_array(x):
        return _array(x)
    if isinstance(x, (Number, np.generic)):
        return _scalar(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _cut(repr(x))
    if isinstance(x, Mapping):
        if len(x) <= _ITEMS or (len(x) <= SMALL and all(isinstance(t, (Number, np.generic)) for t in x.values())):
            return "{" + ", ".join(f"{k!r}: {summary(v)}" for k, v in x.items()) + "}"
        return f"<{type(x).__name__} of {len(x)}: {', '.join(repr(k) for k in list(x)[:_ITEMS])}, ...>"
    if isinstance(x, (tuple, list)):
        if len(x) <= 4 * SMALL:  # in full if all numbers, or if short enough
            o, c = ("(", ",)" if len(x) == 1 else ")") if isinstance(x, tuple) else ("[", "]")
            s = o + ", ".join(summary(t) for t in x) + c
            if len(s) <= 2 * _WIDTH or all(isinstance(t, (Number, np.generic)) for t in x):
                return s
        return f"<{type(x).__name__} of {len(x)}: {summary(x[0])}, ...>"
    if inspect.isroutine(x) or inspect.isclass(x):
        return x.__qualname__
    return _cut(repr(x))


def compact_repr(self) -> str:
    """``ClassName(name=summary, ...)`` for a dataclass ``self``: the attributes named by its class attribute
    ``_repr_fields`` (fields or properties, in that order) if it has one, else its public fields that take part
    in the repr; then the derived facts of ``self._repr_extra()``, if defined."""
    names = getattr(self, "_repr_fields", None)
    if names is None:
        names = [f.name for f in dataclasses.fields(self) if f.repr and not f.name.startswith("_")]
    items = [(n, getattr(self, n)) for n in names]
    items += list(self._repr_extra()) if hasattr(self, "_repr_extra") else []
    return f"{type(self).__name__}(" + ", ".join(f"{n}={summary(v)}" for n, v in items) + ")"
