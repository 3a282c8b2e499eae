"""Shared numerics of the attention mechanisms: validation, masked stable softmax, Gram distances.

Everything here is written against the array API (``xp = namespace(...)``) so that NumPy, torch (with
autograd) and array-api-strict run the same code.  Conventions shared by every mechanism:

* ``q``, ``k``, ``v`` have shape ``(..., n, d)``; the leading axes (batch, heads) broadcast.
* ``mask`` is a boolean array broadcastable to the score shape ``(..., n_q, n_k)``; ``True`` = the key may
  be attended.  A query row whose keys are all masked gets the output 0 (softmax-type mechanisms) or the
  tropical zero (tropical attention); it never produces NaN.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..._array import check_no_nan, check_nonempty, is_array, namespace
from ..._repr import summary
from ...errors import ArgumentTypeError, BackendMismatchError, ShapeError, ToleranceError
from ...tropical._args import check_real

__all__ = [
    "prepare",
    "as_param",
    "param_dtype",
    "common_float",
    "checked_scale",
    "masked_softmax",
    "sq_distances",
    "safe_sqrt",
    "log_softplus",
    "softplus",
    "position_distance",
]


def prepare(*named: tuple[str, Any], optional: tuple = ()):
    """Validate named float arrays (no NaN, non-empty, same library) and return their namespace.

    Every named argument must be an array (:class:`~tropix.errors.ArgumentTypeError` otherwise, ``None``
    included) except the names listed in ``optional``, which may be ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> prepare(("q", np.ones((2, 3))), ("k", np.ones((4, 3)))).__name__
    'array_api_compat.numpy'
    """
    arrays = [a for _, a in named if a is not None]
    for name, a in named:
        if a is None and name in optional:
            continue
        if not is_array(a):
            raise ArgumentTypeError(f"{name} must be an array (NumPy, torch, ...), got {type(a).__name__}")
        if not namespace(a).isdtype(a.dtype, ("bool", "integral", "real floating")):
            raise ArgumentTypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
        check_no_nan(a, name)
        check_nonempty(a, name)
    return namespace(*arrays)


def param_dtype(xp, like):
    """The floating dtype of a parameter computed with ``like``: ``like``'s, or float64 for integer ``like``
    (an integer dtype would truncate ``alpha = 0.5`` to 0)."""
    return like.dtype if xp.isdtype(like.dtype, "real floating") else xp.float64


def common_float(xp, *xs):
    """The arrays (``None`` kept) in one floating dtype: their widest floating one, float64 when none is
    floating.  NumPy promotes mixed dtypes by itself; torch's matmul refuses ``float != long`` or
    ``float != double``, and integer tensors have no mean.

    Examples
    --------
    >>> import numpy as np
    >>> [x.dtype.name for x in common_float(np, np.ones(2, np.int64), np.ones(2, np.float32))]
    ['float32', 'float32']
    """
    fl = [x.dtype for x in xs if x is not None and xp.isdtype(x.dtype, "real floating")]
    dt = xp.result_type(*fl) if fl else xp.float64
    return tuple(x if x is None or x.dtype == dt else xp.astype(x, dt) for x in xs)


def checked_scale(scale: Any, d: int):
    """The logit scale of a mechanism: ``1/sqrt(d)`` for None, a checked float for a scalar (ToleranceError for
    NaN or inf, ArgumentTypeError for a non-number), an array (a per-timescale scale, a tensor with a gradient)
    checked entry by entry and kept as it is.

    Examples
    --------
    >>> checked_scale(None, 16), checked_scale(2, 16)
    (0.25, 2.0)
    """
    if scale is None:
        return 1.0 / math.sqrt(d)
    if not is_array(scale):
        return float(check_real(scale, "scale"))
    check_no_nan(scale, "scale")
    xp = namespace(scale)
    if not bool(xp.all(xp.isfinite(scale))):
        raise ToleranceError("scale must be finite")
    return scale


def as_param(xp, value: Any, like, name: str):
    """A scalar or array parameter as an array of :func:`param_dtype` on ``like``'s device (no NaN allowed)."""
    if is_array(value):
        namespace(value, like)  # BackendMismatchError for a parameter of another library
        if not namespace(value).isdtype(value.dtype, ("integral", "real floating")):
            raise ArgumentTypeError(f"{name} must be real, got dtype {value.dtype}")
        check_no_nan(value, name)
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ArgumentTypeError(f"{name} must be a real number or an array, got {summary(value)} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v):
        raise ToleranceError(f"{name} is NaN")
    dt = param_dtype(xp, like)
    try:
        return xp.asarray(v, dtype=dt, device=getattr(like, "device", None))
    except TypeError:
        return xp.asarray(v, dtype=dt)


_NO_V = object()


def check_qkv(q, k, v=_NO_V):
    """Type and shape checks common to (q, k, v) mechanisms (``v`` omitted: mechanisms without values)."""
    for name, a in (("q", q), ("k", k)) + ((("v", v),) if v is not _NO_V else ()):
        if not is_array(a):
            raise ArgumentTypeError(f"{name} must be an array (NumPy, torch, ...), got {type(a).__name__}")
    if v is _NO_V:
        v = None
    if q.ndim < 2 or k.ndim < 2:
        raise ShapeError(f"q and k must have shape (..., n, d); got {tuple(q.shape)} and {tuple(k.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"q and k must have the same feature size; got {q.shape[-1]} and {k.shape[-1]}")
    if v is not None:
        if v.ndim < 2 or v.shape[-2] != k.shape[-2]:
            raise ShapeError(f"v must have shape (..., n_k, d_v) with n_k = {k.shape[-2]}; got {tuple(v.shape)}")


def _bool_mask(xp, mask, shape):
    if mask is None:
        return None
    if not is_array(mask):
        raise ArgumentTypeError("mask must be a boolean array of the inputs' library")
    if namespace(mask).__name__ != xp.__name__:  # (its dtype then compared unequal: "got dtype torch.bool")
        raise BackendMismatchError(f"mask is a {type(mask).__module__.split('.')[0]} array but the inputs use "
                                   f"{xp.__name__.split('.')[-1]}; convert it to the inputs' library")
    if mask.dtype != xp.bool:
        raise ArgumentTypeError(f"mask must be boolean (True = may attend), got dtype {mask.dtype}")
    try:
        return xp.broadcast_to(mask, shape)
    except (ValueError, RuntimeError) as err:
        raise ShapeError(f"mask of shape {tuple(mask.shape)} does not broadcast to scores {tuple(shape)}") from err


def masked_softmax(xp, s, mask=None, axis: int = -1):
    """Softmax of the logits ``s`` along ``axis`` with masked entries excluded.

    ``-inf`` logits are allowed (weight 0); ``+inf`` logits share their row equally; a row with no
    admissible entry returns all zeros instead of NaN.  The maximum is subtracted first, so huge logits do not overflow.

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> masked_softmax(xp, np.array([[0.0, np.log(3.0)], [1e308, 1e308]]))
    array([[0.25, 0.75],
           [0.5 , 0.5 ]])
    >>> masked_softmax(xp, np.zeros((1, 2)), np.array([[False, False]]))
    array([[0., 0.]])
    """
    neg_inf = -math.inf
    if mask is not None:
        mask = _bool_mask(xp, mask, s.shape)
        s = xp.where(mask, s, xp.full_like(s, neg_inf))
    pinf = s == math.inf
    if bool(xp.any(pinf)):  # +inf logits (e.g. zero distance with eps = 0) share the row equally
        row = xp.any(pinf, axis=axis, keepdims=True)
        s = xp.where(row, xp.where(pinf, xp.zeros_like(s), xp.full_like(s, neg_inf)), s)
    m = xp.max(s, axis=axis, keepdims=True)
    finite = xp.isfinite(m)
    m = xp.where(finite, m, xp.zeros_like(m))
    # an entry exp(s - m) with s = -inf is 0; rows that are all -inf have m replaced by 0, all weights 0
    e = xp.exp(s - m)
    z = xp.sum(e, axis=axis, keepdims=True)
    z = xp.where(z > 0, z, xp.ones_like(z))
    return e / z


def sq_distances(xp, a, b):
    """Squared Euclidean distances ``‖a_i − b_j‖²`` of shape ``(..., n_a, n_b)`` from one GEMM.

    Both point sets are first shifted by the same vector (the mean of ``b``), which leaves the
    differences unchanged and reduces the cancellation in ``‖a‖² + ‖b‖² − 2a·b``; the result is clipped
    at 0.  Memory is ``O(n_a n_b)``, never ``O(n_a n_b d)``.

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> sq_distances(xp, np.array([[0.0, 0.0], [3.0, 4.0]]), np.array([[3.0, 4.0]]))
    array([[25.],
           [ 0.]])
    """
    c = xp.mean(b, axis=-2, keepdims=True)
    a = a - c
    b = b - c
    na = xp.sum(a * a, axis=-1)[..., :, None]
    nb = xp.sum(b * b, axis=-1)[..., None, :]
    g = a @ xp.matrix_transpose(b)
    d2 = na + nb - 2.0 * g
    return xp.where(d2 > 0, d2, xp.zeros_like(d2))


def safe_sqrt(xp, x, tiny: float = 1e-30):
    """``sqrt(x)`` for ``x ≥ 0`` whose gradient is finite (0) at ``x = 0`` (the double-``where`` trick)."""
    pos = x > tiny
    return xp.where(pos, xp.sqrt(xp.where(pos, x, xp.ones_like(x))), xp.zeros_like(x))


def softplus(xp, z):
    """``log(1 + e^z)`` without overflow."""
    return xp.where(z > 0, z, xp.zeros_like(z)) + xp.log1p(xp.exp(-xp.abs(z)))


def log_softplus(xp, z):
    """``log(softplus(z))`` accurate for very negative ``z`` (where it equals ``z`` to double precision).

    Examples
    --------
    >>> import numpy as np, array_api_compat.numpy as xp
    >>> [round(float(x), 6) for x in log_softplus(xp, np.array([-800.0, 0.0]))]
    [-800.0, -0.366513]
    """
    small = z < -30.0
    zs = xp.where(small, xp.zeros_like(z), z)
    return xp.where(small, z, xp.log(softplus(xp, zs)))


def position_distance(xp, n_q: int, n_k: int, like):
    """The matrix ``|i − j|`` (float, dtype and device of ``like``) of shape ``(n_q, n_k)``."""
    dev = getattr(like, "device", None)
    try:
        i = xp.arange(n_q, dtype=like.dtype, device=dev)
        j = xp.arange(n_k, dtype=like.dtype, device=dev)
    except TypeError:
        i = xp.arange(n_q, dtype=like.dtype)
        j = xp.arange(n_k, dtype=like.dtype)
    return xp.abs(i[:, None] - j[None, :])
