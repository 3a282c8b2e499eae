"""Exceptions raised by tropix.

Every error a user can trigger with bad input is a subclass of :class:`TropixError`, and also of the
built-in exception a Python programmer would expect (mostly ``ValueError`` or ``TypeError``;
``ZeroDivisionError`` for :class:`NoInverseError`, ``OverflowError`` for :class:`FloatOverflowError`,
``FileNotFoundError`` for :class:`ModelNotFoundError`), so both ``except tropix.TropixError`` and the
built-in ``except`` clause work.

Examples
--------
>>> import tropix
>>> try:
...     tropix.MaxPlus.add(float("nan"), 1.0)
... except tropix.NaNError as err:
...     print(err)
NaN in the first operand of MaxPlus.add: NaN is not an element of any tropical semiring
"""

from __future__ import annotations

__all__ = [
    "TropixError",
    "NaNError",
    "ShapeError",
    "EmptyInputError",
    "SemiringMismatchError",
    "ConventionError",
    "BackendMismatchError",
    "DivergenceError",
    "UndecidedError",
    "SizeLimitError",
    "ParseError",
    "ToleranceError",
    "OptionError",
    "DomainError",
    "ArgumentTypeError",
    "BoundViolationError",
    "NoInverseError",
    "FloatOverflowError",
    "ModelNotFoundError",
    "UnsupportedModelError",
    "UnsupportedCPUError",
]


class TropixError(Exception):
    """Base class of every error raised by tropix on bad input or impossible requests."""


class NaNError(TropixError, ValueError):
    """NaN appeared where it has no meaning (NaN is never a tropical number); also raised for ``±inf`` in
    real-valued numerical input that must be finite (tensor decompositions, attention queries and keys),
    where an infinity would turn the result into NaN."""


class ShapeError(TropixError, ValueError):
    """Operands have shapes that do not fit together (or a matrix is not square where it must be)."""


class EmptyInputError(TropixError, ValueError):
    """An input that must contain something is empty."""


class SemiringMismatchError(TropixError, TypeError):
    """Operands carry different semirings (for instance a max-plus and a min-plus object)."""


class ConventionError(TropixError, ValueError):
    """A value belongs to the opposite convention, e.g. ``+inf`` given to a max-plus routine.

    ``-inf`` is the tropical zero of max-plus and ``+inf`` that of min-plus.  The opposite infinity is
    not an element of the semiring; seeing one almost always means max and min were mixed up.
    """


class BackendMismatchError(TropixError, TypeError):
    """Arrays from two different array libraries (e.g. NumPy and torch) were mixed in one call."""


class DivergenceError(TropixError, ArithmeticError):
    """A series does not converge (e.g. the Kleene star of a matrix with a positive-weight cycle)."""


class UndecidedError(TropixError, ArithmeticError):
    """The question is not settled by the known theorems plus the exact search tropix can afford."""


class SizeLimitError(TropixError, ValueError):
    """The input is larger than an exact algorithm with exponential cost accepts."""


class ParseError(TropixError, ValueError):
    """A string is not a well-formed tropical polynomial (or other parsed object)."""


class ToleranceError(TropixError, ValueError):
    """A tolerance, rank cap or similar numeric option is outside its allowed range."""


class OptionError(TropixError, ValueError):
    """A keyword option names something the function does not have (an unknown method, precision, rule or
    mode) or combines options that cannot go together; the message lists the accepted values."""


class DomainError(TropixError, ValueError):
    """An argument lies outside the set where the operation is defined, although its type and shape are right:
    a negative or fractional ⊗-power of a tropical polynomial (only monomials are invertible), the witness
    query of a point that never wins alone, a "prime" below 2."""


class ArgumentTypeError(TropixError, TypeError):
    """An argument has the wrong type (e.g. a list where a string, a tensor train or a sympy expression is
    expected), or arguments were given that the call does not take together (as Python itself raises
    ``TypeError`` for an unexpected keyword); the message names the argument and what is accepted."""


class BoundViolationError(TropixError, AssertionError):
    """``check=True`` found an error larger than the certified bound (a bug: please report it)."""


class NoInverseError(TropixError, ZeroDivisionError):
    """The tropical zero was inverted (a negative ⊗-power of ``-inf`` in max-plus, ``+inf`` in min-plus).

    Every other element of the tropical semifield has an inverse (``a^{⊗-1} = -a``); the zero has none,
    exactly as ``1/0`` has no value.  Subclasses :class:`ZeroDivisionError`.
    """


class FloatOverflowError(TropixError, OverflowError):
    """A result computed from finite floats left the float range (``|x| > 1.8e308`` for float64).

    In max-plus an overflow would produce ``+inf``, which is not an element of the semiring (it is the
    min-plus zero), so tropix raises instead of returning it; likewise ``-inf`` in min-plus.  Use exact
    input (``int``/``Fraction``), which never overflows, or rescale the data.
    """


class ModelNotFoundError(TropixError, FileNotFoundError):
    """The model named on the command line or in a call does not exist (or lacks its weights)."""


class UnsupportedModelError(TropixError, ValueError):
    """The model exists but tropix cannot read it (unknown architecture, pickle-only weights, bad config)."""


class UnsupportedCPUError(TropixError, RuntimeError):
    """A compiled fast path needs an instruction set this CPU lacks (e.g. the bfloat16 screening GEMM needs
    AVX512-BF16); the generic path is used instead wherever tropix chooses, so only an explicit request
    raises this (check ``tropix.attention._bf16.available()`` first)."""
