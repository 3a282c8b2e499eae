"""Input handling shared by the tropical linear-algebra modules (power, kleene, eigen, solve).

Exact input (integer dtypes of any library, NumPy object arrays of ``int``/``Fraction``, lists of them) is
turned into a NumPy object array, so results can hold both Fractions and the tropical zero ``±inf``.
Float input is kept in its own library, dtype and device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._array import check_nonempty, is_array, namespace, to_exact_scalar, to_numpy
from ..errors import ShapeError
from .semiring import Semiring, TropicalSemiring, get_semiring, real_array
from ..errors import SemiringMismatchError

__all__ = ["prepare", "prepare_square", "tropical_semiring", "is_exact_array", "to_python_scalar"]


def tropical_semiring(semiring: Any, func: str) -> TropicalSemiring:
    """Resolve ``semiring`` and insist that it is max-plus or min-plus (the algebra these routines need)."""
    S = get_semiring(semiring)
    if not isinstance(S, TropicalSemiring):
        raise SemiringMismatchError(
            f"{func} needs an idempotent tropical semiring (MaxPlus or MinPlus), got {S}; "
            "cycle means, Kleene stars and residuation are defined through max/min"
        )
    return S


def is_exact_array(x: Any) -> bool:
    """True for NumPy object arrays (the exact representation used by these routines)."""
    return isinstance(x, np.ndarray) and x.dtype == object


def _to_exact_object(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.bool_:
        x = x.astype(np.int64)  # bools are read as 0/1 (np.bool_ is not a Python bool)
    out = np.empty(x.shape, dtype=object)
    out.ravel()[:] = [to_exact_scalar(v) for v in x.ravel()] if x.size else []
    return out


def prepare(x: Any, S: Semiring, name: str, ndims: tuple[int, ...]):
    """Validate one operand: list/array -> array, NaN/opposite-infinity/emptiness/dimension checks.

    Integer arrays (any library) become exact NumPy object arrays; float arrays are returned as they are.
    """
    if not is_array(x) and not isinstance(x, np.ndarray):
        x = real_array(x, name)
    if isinstance(x, np.ndarray) and x.dtype == object:
        x = real_array(x, name)  # normalises sympy numbers, floats -> float64
    if x.ndim not in ndims:
        want = " or ".join(f"{d}-dimensional" for d in ndims)
        raise ShapeError(f"{name} must be {want}, got shape {tuple(int(s) for s in x.shape)}")
    check_nonempty(x, name)
    x = S.validate(x, name)
    if isinstance(x, np.ndarray):
        if x.dtype != object and not np.issubdtype(x.dtype, np.floating):
            x = _to_exact_object(x)
    else:
        xp = namespace(x)
        if not xp.isdtype(x.dtype, "real floating"):
            x = _to_exact_object(to_numpy(x))
    return x


def prepare_square(A: Any, S: Semiring, name: str = "A"):
    """:func:`prepare` for a square matrix; returns ``(A, xp, n)``."""
    A = prepare(A, S, name, (2,))
    n, m = (int(s) for s in A.shape)
    if n != m:
        raise ShapeError(f"{name} must be a square matrix, got shape ({n}, {m})")
    return A, namespace(A), n


def to_python_scalar(v: Any):
    """A 0-d array or NumPy scalar of an exact computation as ``int``/``Fraction`` (``±inf`` as float)."""
    if isinstance(v, np.ndarray):
        v = v[()]
    return to_exact_scalar(v)
