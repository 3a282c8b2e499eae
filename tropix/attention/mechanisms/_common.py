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

from ..._array import check_no_nan, check_nonempty, is_array, namespace, to_numpy
from ..._repr import summary
from ...errors import ArgumentTypeError, BackendMismatchError, NaNError, ShapeError, ToleranceError
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
    "check_finite",
    "max_abs",
    "times_pow2",
    "dot_logits",
    "softmax_pow2",
    "scaled_sq_distances",
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
    # the leading (batch, head) axes must broadcast (a (2, n, d) q with a (3, n, d) v was NumPy's raw ValueError)
    check_batch(("q", q), ("k", k), *((("v", v),) if v is not None else ()))


def check_batch(*named, trailing: int = 2):
    """ShapeError unless the leading axes (all but the last ``trailing``) of the named arrays broadcast together."""
    shapes = [tuple(int(s) for s in a.shape[: a.ndim - trailing]) for _, a in named]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        desc = ", ".join(f"{n} {tuple(int(s) for s in a.shape)}" for n, a in named)
        raise ShapeError(f"the leading (batch, head) axes do not broadcast together: {desc}") from None


def check_finite(xp, a, name: str, what: str = "attention inputs") -> float | None:
    """NaNError for an infinite entry of the float array ``a`` (NaN was refused by :func:`prepare`): with an infinite
    query, key or value the products ``0·inf`` and differences ``inf − inf`` give silent NaN or meaningless weights.
    Returns ``max|a|`` (:func:`max_abs`, one pass: the scalings of :func:`dot_logits` and
    :func:`scaled_sq_distances` take it instead of reading ``a`` again), None for a non-float ``a``."""
    if a is None or not xp.isdtype(a.dtype, "real floating"):
        return None
    m = max_abs(xp, a)
    if not math.isfinite(m):
        bad = ~xp.isfinite(a)
        idx = tuple(int(i) for i in np.argwhere(np.asarray(to_numpy(bad)))[0])
        raise NaNError(f"{name} has an infinite entry at index {idx}; {what} must be finite")
    return m


def max_abs(xp, a) -> float:
    """``max|a|`` as a Python float (0.0 for an empty array)."""
    if math.prod(int(s) for s in a.shape) == 0:
        return 0.0
    if hasattr(a, "detach"):  # (torch warns about float() of a tensor that requires grad)
        a = a.detach()
    return float(xp.max(xp.abs(a)))


def _fmax(xp, dtype) -> float:
    return float(xp.finfo(dtype).max)


def pow2_exponent(m: float) -> int:
    """The least ``e >= 0`` with ``m·2^-e <= 1`` (``m`` finite and ``>= 0``)."""
    return math.frexp(m)[1] if m > 1 else 0


def times_pow2(xp, x, e: int, floor: float | None = None):
    """``x·2^e`` exactly (barring under/overflow), in steps whose factors the dtype represents.

    A single factor ``2.0**e`` beyond the dtype's range is rounded to ``inf`` by torch (then ``0·2^e`` is NaN).
    With ``floor`` (for ``x <= 0``, ``e > 0``) every partial product is clipped below at ``floor``, so the result is
    exact wherever it is ``>= floor`` and ``floor`` elsewhere, never ``-inf``.
    """
    if e == 0:
        return x
    step = max(1, int(math.log2(_fmax(xp, x.dtype))) // 2)
    with np.errstate(over="ignore", under="ignore"):  # (overflow to ±inf is intended; NumPy would warn)
        while e:
            s = max(-step, min(step, e))
            x = x * (2.0**s)
            if floor is not None:
                x = xp.where(x < floor, xp.full_like(x, floor), x)
            e -= s
    return x


def _frexp_scale(scale):
    """A Python float scale as ``(mantissa, exponent)``; an array scale as ``(scale, 0)``."""
    if is_array(scale):
        return scale, 0
    m, e = math.frexp(float(scale))
    return m, e


def dot_logits(xp, q, k, scale, mq=None, mk=None):
    """The logits ``q kᵀ·scale`` as ``(y, e)`` with ``logits = y·2^e`` and ``y`` finite.

    ``e = 0`` and ``y = (q @ kᵀ)·scale`` (the plain product) unless that product could leave the float range
    (``max|q|·max|k|·d·|scale|`` near the dtype's maximum: float64 entries near 1e154, float16 entries near 100);
    then ``q`` and ``k`` are divided by powers of two first, which is exact, and the exponents go to ``e``.
    """
    if is_array(scale):  # (a torch scale with NumPy q was a raw TypeError, a (5,) scale NumPy's broadcast ValueError)
        namespace(scale, q)
        logits = check_batch(("q", q), ("k", k)) + (int(q.shape[-2]), int(k.shape[-2]))
        try:
            np.broadcast_shapes(tuple(int(s) for s in scale.shape), logits)
        except ValueError:
            raise ShapeError(f"scale of shape {tuple(scale.shape)} does not broadcast to the logits {logits}") from None
    fmax = _fmax(xp, q.dtype)
    mq = max_abs(xp, q) if mq is None else mq  # (given by the caller's check_finite)
    mk = max_abs(xp, k) if mk is None else mk
    sc = max_abs(xp, scale) if is_array(scale) else abs(float(scale))
    d = int(q.shape[-1])
    with np.errstate(over="ignore"):
        bound = float(np.float64(mq) * np.float64(mk) * d * max(1.0, sc))  # (q @ kᵀ is formed before the scale)
    if bound < fmax / 8:
        return (q @ xp.matrix_transpose(k)) * scale, 0
    a, b = pow2_exponent(mq), pow2_exponent(mk)
    sm, se = _frexp_scale(scale)
    y = (times_pow2(xp, q, -a) @ xp.matrix_transpose(times_pow2(xp, k, -b))) * sm
    return y, a + b + se


def softmax_pow2(xp, y, e: int, bias=None, mask=None):
    """``masked_softmax(y·2^e + bias, mask)`` without forming an overflowing ``y·2^e``.

    When ``y·2^e`` fits the dtype it is formed and the ordinary softmax applies.  Otherwise each row is shifted by
    its largest admissible ``y`` first (the softmax is invariant under a shift of a row), so the admissible logits
    are ``(y − max)·2^e <= 0``: exact where they matter and clipped far below where their weight is 0.  Overflowed
    logits used to become ``+inf`` and share their row equally instead of selecting the largest one.
    """
    if e == 0:
        return masked_softmax(xp, y if bias is None else y + bias, mask)
    fmax = _fmax(xp, y.dtype)
    my = max_abs(xp, y)
    if e < 0 or my == 0 or math.log2(my) + e < math.log2(fmax) - 3:
        s = times_pow2(xp, y, e)
        return masked_softmax(xp, s if bias is None else s + bias, mask)
    shape = tuple(int(s) for s in y.shape)
    if bias is not None:
        shape = tuple(np.broadcast_shapes(shape, tuple(int(s) for s in bias.shape)))
    yb = xp.broadcast_to(y, shape)
    adm = xp.ones_like(yb, dtype=xp.bool) if mask is None else _bool_mask(xp, mask, shape)
    if bias is not None:
        adm = adm & (xp.broadcast_to(bias, shape) > -math.inf)
    m = xp.max(xp.where(adm, yb, xp.full_like(yb, -math.inf)), axis=-1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    t = xp.where(adm, yb - m, xp.zeros_like(yb))
    t = times_pow2(xp, t, e, floor=-fmax / 8)
    return masked_softmax(xp, t if bias is None else t + bias, mask)


def scaled_sq_distances(xp, a, b, ma=None, mb=None):
    """``(d2, e)`` with ``‖a_i − b_j‖² = d2·4^e``: :func:`sq_distances` of ``a·2^-e`` and ``b·2^-e``.

    ``e = 0`` (the plain distances) unless they could overflow: the squared distances of float64 points near
    1e154, or of float16 points near 100, were ``inf`` — gravitational weights then came out uniform or 0.
    """
    m = max(max_abs(xp, a) if ma is None else ma, max_abs(xp, b) if mb is None else mb)  # (max|a|, max|b| if given)
    d = int(a.shape[-1])
    with np.errstate(over="ignore"):
        bound = float(16.0 * d * np.float64(m) * np.float64(m))
    if bound < _fmax(xp, a.dtype) / 8:
        return sq_distances(xp, a, b), 0
    e = pow2_exponent(m)
    return sq_distances(xp, times_pow2(xp, a, -e), times_pow2(xp, b, -e)), e


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
    # clipped by adding the constant -min(d2, 0), keeping the gradient of the Gram formula: the where() that clipped
    # cut it, so the Hessian 2I of ‖q - k‖² was 0 where a query coincides with a key (its d2 rounds to <= 0) and
    # gravitational attention's second derivatives there were wrong
    neg = xp.where(d2 < 0, 0.0 - d2, xp.zeros_like(d2))
    return d2 + (neg.detach() if hasattr(neg, "detach") else neg)


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
