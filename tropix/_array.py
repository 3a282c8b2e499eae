"""Array plumbing shared by every layer: namespaces, exactness, validation, NumPy round trips.

tropix follows the array API standard: a numeric function takes its array namespace from its inputs
(``xp = namespace(a, b)``) and computes with ``xp``, so it runs unchanged on NumPy, CuPy, torch and
array-api-strict.  Exact arithmetic is the NumPy *object* dtype holding Python ``int`` and
:class:`fractions.Fraction` (sympy rationals are converted to Fractions on the way in), with
``float('inf')`` / ``float('-inf')`` for the tropical zeros.

Conventions (documented here once, relied on everywhere):

* Python scalars and nested lists are converted with :func:`asarray`; exactness follows the *finite*
  entries: any finite float makes the array ``float64``, otherwise (ints, Fractions, sympy rationals and
  ``±inf``, which are exact values too) it is an exact object array, also when every entry is infinite
  (``[float('-inf')]``, the tropical zero vector).  Empty input gives an empty ``float64`` array.
* NumPy integer arrays are exact too; routines whose result may contain a tropical zero or a fraction
  return object arrays for them.
* Arrays of other libraries are used as they are; :func:`to_numpy` and :func:`from_numpy` cross over for
  the few algorithms (assignment, LP, convex hulls) that only exist on the CPU.
"""

from __future__ import annotations

import functools
import math
import numbers
from fractions import Fraction
from typing import Any

import array_api_compat
import numpy as np

from .errors import ArgumentTypeError, BackendMismatchError, EmptyInputError, FloatOverflowError, NaNError

__all__ = [
    "namespace",
    "is_array",
    "is_exact",
    "asarray",
    "to_numpy",
    "from_numpy",
    "to_exact_scalar",
    "float_int_rows",
    "check_no_nan",
    "check_has_values",
    "check_nonempty",
    "machine_eps",
]

_INF = float("inf")


def is_array(x: Any) -> bool:
    """True if ``x`` is an array of a supported array library (not a list or a scalar)."""
    if type(x) is np.ndarray:  # (the common case, without array_api_compat's checks)
        return True
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (numbers.Number,))


def namespace(*arrays: Any):
    """The array-API namespace of the arrays among ``arrays`` (NumPy for lists and scalars).

    Raises
    ------
    BackendMismatchError
        If the arrays come from two different array libraries.

    Examples
    --------
    >>> import numpy as np
    >>> namespace(np.ones(2), 3.0).__name__
    'array_api_compat.numpy'
    """
    if arrays and all(type(a) is np.ndarray for a in arrays):  # (the common case: NumPy arrays only)
        return _numpy_namespace()
    arrs = [a for a in arrays if is_array(a)]
    if not arrs:
        return _numpy_namespace()
    try:
        return array_api_compat.array_namespace(*arrs)
    except TypeError as err:
        kinds = sorted({type(a).__module__.split(".")[0] + "." + type(a).__name__ for a in arrs})
        raise BackendMismatchError(
            f"arrays from different libraries were mixed: {', '.join(kinds)}; convert them to one library"
        ) from err


@functools.lru_cache(maxsize=1)
def _numpy_namespace():
    """array_api_compat's NumPy namespace (looked up once)."""
    return array_api_compat.array_namespace(np.empty(0))


def _scalar_kind(v: Any) -> str:
    """'exact', 'inf', 'float' or 'nan' for one Python/NumPy/sympy scalar."""
    if isinstance(v, bool):
        return "exact"
    if isinstance(v, (int, np.integer, Fraction)):
        return "exact"
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf"
        return "float"
    if isinstance(v, numbers.Rational):
        return "exact"
    mod = type(v).__module__
    if mod.startswith("sympy"):
        if getattr(v, "is_Rational", False):
            return "exact"
        if v in _sympy_infinities():
            return "inf"
        if getattr(v, "is_nan", False) or str(v) == "nan":
            return "nan"
        return "float"
    if isinstance(v, numbers.Real):
        return "float"
    raise ArgumentTypeError(f"{v!r} of type {type(v).__name__} is not a real number")


def _sympy_infinities():
    import sympy

    return (sympy.oo, -sympy.oo)


def to_exact_scalar(v: Any):
    """Convert an exact scalar to ``int``/``Fraction`` (infinities to ``float``), leave floats alone.

    Examples
    --------
    >>> import sympy
    >>> to_exact_scalar(sympy.Rational(3, 4))
    Fraction(3, 4)
    >>> to_exact_scalar(Fraction(4, 2))
    2
    """
    kind = _scalar_kind(v)
    if kind == "exact":
        if isinstance(v, (bool, np.bool_)):
            return int(v)
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, Fraction):
            return int(v) if v.denominator == 1 else v
        if type(v).__module__.startswith("sympy"):
            f = Fraction(int(v.p), int(v.q))
        else:
            f = Fraction(v.numerator, v.denominator)
        return int(f) if f.denominator == 1 else f
    if kind == "inf":
        return _INF if float(v) > 0 else -_INF
    return float(v) if kind == "float" else float("nan")


def float_int_rows(M: np.ndarray):
    """``(M·den, den)`` for a finite float64 matrix: its exact values as Python integers over one power-of-two
    denominator (frexp: each entry is a 53-bit integer times a power of two).

    Examples
    --------
    >>> from fractions import Fraction
    >>> X, den = float_int_rows(np.array([[0.5, 3.0], [-0.25, 0.0]]))
    >>> [[Fraction(int(x), den) for x in r] for r in X] == [[Fraction(1, 2), 3], [Fraction(-1, 4), 0]]
    True
    """
    mant, ex = np.frexp(M)
    mi = np.ldexp(mant, 53).astype(np.int64)  # exact
    sh = ex.astype(np.int64) - 53
    nz = mi != 0
    low = int(sh[nz].min()) if nz.any() else 0
    den = 2 ** max(0, -low)
    shift = sh + max(0, -low)  # >= 0 where nz
    out = np.empty(M.shape, dtype=object)
    flat_m, flat_s, flat_o = mi.ravel(), shift.ravel(), out.reshape(-1)
    for k in range(flat_m.size):
        v = int(flat_m[k])
        flat_o[k] = (v << int(flat_s[k])) if v else 0
    return out, den


def is_exact(x: Any) -> bool:
    """True if ``x`` holds exact numbers: integer or object dtype, or Python ints/Fractions.

    Examples
    --------
    >>> import numpy as np
    >>> is_exact(np.array([1, 2])), is_exact(np.array([1.0])), is_exact(Fraction(1, 3))
    (True, False, True)
    """
    if is_array(x):
        if isinstance(x, np.ndarray):
            return x.dtype == object or np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_
        xp = array_api_compat.array_namespace(x)
        return xp.isdtype(x.dtype, "integral")
    try:
        return _scalar_kind(x) in ("exact", "inf")
    except TypeError:
        return False


def asarray(x: Any, *, name: str = "input"):
    """Turn ``x`` into an array, keeping arrays of any library as they are.

    Exactness follows the finite entries: lists and scalars of ints, Fractions, sympy rationals and
    infinities become exact NumPy object arrays (``±inf`` kept as ``float('±inf')``), also when *all*
    entries are infinite; a finite float (or NaN) anywhere makes the whole array ``float64``.  NumPy
    object arrays are normalised the same way (sympy numbers to Fractions).  Empty input gives an empty
    ``float64`` array.

    Examples
    --------
    >>> asarray([[0, Fraction(1, 2)], [float('-inf'), 3]])
    array([[0, Fraction(1, 2)],
           [-inf, 3]], dtype=object)
    >>> asarray([float('-inf'), float('-inf')])  # only tropical zeros: still exact
    array([-inf, -inf], dtype=object)
    >>> asarray([1.5, 2]).dtype, asarray([1.5, float('inf')]).dtype
    (dtype('float64'), dtype('float64'))
    """
    if is_array(x) and not (isinstance(x, np.ndarray) and x.dtype == object):
        return x
    arr = np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x
    if arr.dtype != object:
        return arr
    flat = arr.ravel()
    kinds = set()
    for v in flat:
        kinds.add(_scalar_kind(v))
    if flat.size == 0:
        return np.empty(arr.shape, dtype=np.float64)
    if "float" in kinds or "nan" in kinds:
        try:
            return np.array([float(v) for v in flat], dtype=np.float64).reshape(arr.shape)
        except OverflowError:  # (an int or Fraction beyond the float range beside a float: was a raw error)
            raise FloatOverflowError(
                f"{name}: a float entry makes the whole input float64, and an exact entry is beyond the float "
                "range; pass all-exact input (ints/Fractions, with float('-inf') / float('inf') as the "
                "tropical zero) or rescale it"
            ) from None
    out = np.empty(arr.shape, dtype=object)
    out.ravel()[:] = [to_exact_scalar(v) for v in flat]
    return out


def check_has_values(x: Any, name: str = "input") -> None:
    """Raise :class:`~tropix.errors.ArgumentTypeError` for a torch tensor on the ``meta`` device, which has a
    shape and a dtype but no values (reading them raised a raw RuntimeError or NotImplementedError deep inside).

    Examples
    --------
    >>> import torch
    >>> check_has_values(torch.zeros(2, device="meta"), "A")
    Traceback (most recent call last):
    ...
    tropix.errors.ArgumentTypeError: A is a tensor on the 'meta' device, which holds no values; pass a CPU tensor
    """
    if getattr(getattr(x, "device", None), "type", None) == "meta":
        raise ArgumentTypeError(f"{name} is a tensor on the 'meta' device, which holds no values; pass a CPU tensor")


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy view or copy of ``x`` (torch tensors are detached and moved to the CPU; torch ``bfloat16``,
    which NumPy lacks, becomes float32, exactly)."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, np.generic):  # a NumPy scalar (e.g. the isnan mask of a 0-d array): no __dlpack__
        return np.asarray(x)
    if array_api_compat.is_torch_array(x):
        import torch

        check_has_values(x)
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if is_array(x):
        return np.from_dlpack(x)
    return asarray(x)


def machine_eps(x: Any) -> float:
    """Machine epsilon (``2 u``) of the floating dtype of the array ``x`` of any library: ``2^-52`` for float64,
    ``2^-7`` for torch's bfloat16 (which :func:`to_numpy` widens to float32, so ``np.finfo`` of the NumPy copy
    would claim float32's ``2^-23``); float64's for exact and integer arrays.

    Examples
    --------
    >>> import numpy as np
    >>> machine_eps(np.zeros(2)) == 2.0**-52, machine_eps(np.zeros(2, np.float16)) == 2.0**-10
    (True, True)
    """
    dt = getattr(x, "dtype", None)
    if isinstance(dt, np.dtype):
        return float(np.finfo(dt).eps) if dt.kind == "f" else float(np.finfo(np.float64).eps)
    name = str(dt).split(".")[-1]  # torch.float32, array_api_strict.float32, torch.bfloat16
    if name == "bfloat16":
        return 2.0**-7
    try:
        return float(np.finfo(np.dtype(name)).eps)
    except (TypeError, ValueError):  # integer or unknown dtypes: results are float64
        return float(np.finfo(np.float64).eps)


def from_numpy(a: np.ndarray, like: Any):
    """Put the NumPy array ``a`` into the library (and device) of ``like``.

    Object arrays (exact results) stay NumPy: only NumPy can hold Python fractions.
    """
    if not is_array(like) or isinstance(like, np.ndarray) or a.dtype == object:
        return a
    xp = array_api_compat.array_namespace(like)
    dev = array_api_compat.device(like)
    if array_api_compat.is_torch_array(like):
        import torch

        return torch.as_tensor(np.ascontiguousarray(a), device=like.device)
    try:
        return xp.asarray(a, device=dev)
    except TypeError:
        return xp.asarray(a)


def check_no_nan(x: Any, name: str = "input") -> None:
    """Raise :class:`~tropix.errors.NaNError` if ``x`` contains NaN.

    Examples
    --------
    >>> import numpy as np
    >>> check_no_nan(np.array([1.0, -np.inf]))
    >>> check_no_nan(np.array([1.0, np.nan]), "A")
    Traceback (most recent call last):
    ...
    tropix.errors.NaNError: A contains NaN at index (1,); NaN is not an element of any tropical semiring
    """
    if is_array(x):
        check_has_values(x, name)
        if isinstance(x, np.ndarray) and x.dtype == object:
            bad = [i for i, v in np.ndenumerate(x) if isinstance(v, float) and math.isnan(v)]
            if bad:
                raise NaNError(f"{name} contains NaN at index {bad[0]}; NaN is not an element of any tropical semiring")
            return
        xp = array_api_compat.array_namespace(x)
        if not xp.isdtype(x.dtype, ("real floating", "complex floating")):
            return
        mask = xp.isnan(x)
        if bool(xp.any(mask)):
            idx = tuple(int(i) for i in np.argwhere(to_numpy(mask))[0])
            raise NaNError(f"{name} contains NaN at index {idx}; NaN is not an element of any tropical semiring")
        return
    if isinstance(x, (float, np.floating)) and math.isnan(x):
        raise NaNError(f"{name} is NaN; NaN is not an element of any tropical semiring")


def check_nonempty(x: Any, name: str = "input") -> None:
    """Raise :class:`~tropix.errors.EmptyInputError` if the array ``x`` has no entries."""
    shape = getattr(x, "shape", None)
    if shape is not None and any(int(s) == 0 for s in shape):
        raise EmptyInputError(f"{name} is empty (shape {tuple(int(s) for s in shape)})")
