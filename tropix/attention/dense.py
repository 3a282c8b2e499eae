"""Dense softmax attention: the reference every approximate method is certified against.

``dense`` streams over blocks of keys (and of queries) with the online-softmax recurrence, so memory is
``O(n_q_block * k_block)`` beyond the inputs and output: 65 536 keys run on a laptop.  It is written with
the array API only, so NumPy, CuPy, torch (with autograd) and array-api-strict inputs all work.

Input conventions (mask, bias, causal, scale, fully masked rows) are those of
:mod:`tropix.attention._inputs`: ``mask`` is boolean with ``True`` = attend, ``causal`` is top-left aligned
(query ``i`` sees keys ``j <= i``), the default scale is ``1/sqrt(d)``, and a query that sees no key gets
the zero vector.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._array import to_numpy
from ..errors import FloatOverflowError
from .bounds import rounding_bound
from ..tn.tt import _pow2_scale
from ._inputs import Prepared, add_block_extra_numpy, bias_row_stats, block_extra, prepare

__all__ = ["dense", "dense_rounding_bound"]


def dense(q, k, v, mask=None, bias=None, scale=None, causal=False, *, block: int | None = None):
    """Softmax attention ``softmax(scale * q k^T + bias) v``, computed blockwise and stably.

    Parameters
    ----------
    q, k, v : arrays
        Shapes ``(..., n_q, d)``, ``(..., n_k, d)``, ``(..., n_k, d_v)`` with equal leading dims; any
        array-API library (NumPy, torch, CuPy, array-api-strict), or nested lists.
    mask : boolean array, optional
        ``True`` where query ``i`` may attend key ``j``; broadcasts to ``(..., n_q, n_k)``.
    bias : float array, optional
        Additive score bias broadcasting to ``(..., n_q, n_k)``; ``-inf`` masks a pair.
    scale : float, optional
        Score scale, default ``1/sqrt(d)``.
    causal : bool
        If True, query ``i`` only sees keys ``j <= i`` (the key blocks above the diagonal are skipped).
    block : int, optional
        Number of keys per streaming block (default: whole input when small, else 2048; with ``causal``
        512, and query blocks no taller than that).

    Returns
    -------
    array
        Shape ``(..., n_q, d_v)``, same library and floating dtype as the inputs.  Rows that see no key
        are zero.  float16 and bfloat16 inputs are computed in float32 and rounded once (their sums of weights
        and weighted values would leave the half range).

    Raises
    ------
    ShapeError, NaNError, EmptyInputError, BackendMismatchError, ConventionError
    FloatOverflowError
        When scores ``scale * q.k + bias`` of finite inputs leave the float range (their softmax is beyond it
        too; :func:`tropix.attention.tropical` decides the best keys of such scores exactly).

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[1.0, 0.0]]); k = np.array([[1.0, 0.0], [0.0, 1.0]]); v = np.array([[1.0], [0.0]])
    >>> o = dense(q, k, v, scale=1.0)
    >>> round(float(o[0, 0]), 6) == round(np.e / (np.e + 1), 6)
    True
    >>> dense(q, k, v, mask=np.array([False, False]))  # no visible key: zero row
    array([[0.]])
    """
    P = prepare(q, k, v, mask, bias, scale, causal, fname="dense")
    return _dense(P, block, strict=True)


def _dense(P: Prepared, block: int | None = None, strict: bool = False):
    """The recurrence; ``strict``: scores beyond the float range raise (:func:`_check_no_overflow`), else their
    rows come out NaN or zero (the certified methods then report an infinite bound)."""
    xp = P.xp
    q, k, v = P.q, P.k, P.v
    odt = xp.result_type(q.dtype, k.dtype, v.dtype)
    if _is_half(odt):
        # float16 / bfloat16: computed in float32 and rounded once (the sums of up to n_k weights and weighted
        # values left the half range: two tied float16 values 60000 gave inf; and NumPy has no float16 GEMM), which
        # the rounding bound of the half dtype covers (every step rounds less)
        f32 = xp.float32
        P32 = dataclasses.replace(P, q=xp.astype(q, f32), k=xp.astype(k, f32), v=xp.astype(v, f32),
                                  bias=None if P.bias is None else xp.astype(P.bias, f32))
        return xp.astype(_dense(P32, block, strict), odt)
    out = _recurrence(P, block, strict)
    if P.n_q and not bool(xp.all(xp.isfinite(out))) and bool(xp.all(xp.isfinite(v))):
        # the weighted sum of values left the float range before its division by the weights' sum (values near
        # the largest float, or many of them: the output itself, a convex combination, is in range): again with
        # the values scaled by a power of two so that max |v| <= 1, the output scaled back
        vmax = float(to_numpy(xp.max(xp.abs(v)))) if math.prod(v.shape) else 0.0
        if vmax > 1.0:
            e = math.frexp(vmax)[1]
            out = _pow2_scale(_recurrence(dataclasses.replace(P, v=_pow2_scale(v, -e)), block, strict), e)
    return out


def _recurrence(P: Prepared, block: int | None, strict: bool):
    """The streaming softmax recurrence of :func:`_dense` (NumPy in place, or any library)."""
    xp = P.xp
    q, k, v = P.q, P.k, P.v
    dtype = q.dtype
    n_q, n_k = P.n_q, P.n_k
    if block is None:
        if P.causal:  # square 512 x 512 blocks: those above the diagonal are skipped, those below need no mask
            block = n_k if n_k * max(n_q, 1) <= 2**18 else 512
        else:
            block = n_k if n_k * max(n_q, 1) <= 2**22 else 2048
    block = max(1, int(block))
    qblock = max(1, min(n_q, (2**22) // block)) if n_q else 1
    if P.causal:
        qblock = max(1, min(qblock, block))
    if n_q == 0:
        return xp.zeros(P.batch_shape + (0, P.d_v), dtype=dtype)
    if isinstance(q, np.ndarray):
        return _dense_numpy(P, block, qblock, strict)
    kT = xp.matrix_transpose(k)
    outs = []
    for qs0 in range(0, n_q, qblock):
        qs = slice(qs0, min(n_q, qs0 + qblock))
        qb = q[..., qs, :] * P.scale
        m = None
        stop = _key_stop(P, qs)
        for ks0 in range(0, stop, block):
            ks = slice(ks0, min(stop, ks0 + block))
            s = xp.matmul(qb, kT[..., :, ks])
            E = block_extra(P, qs, ks, dtype)
            if E is not None:
                s = s + E
            bmax = xp.max(s, axis=-1)
            if m is None:
                m_new = bmax
            else:
                m_new = xp.maximum(m, bmax)
            finite = xp.isfinite(m_new)
            m_safe = xp.where(finite, m_new, xp.zeros_like(m_new))
            p = xp.exp(s - m_safe[..., None])
            if m is None:
                l = xp.sum(p, axis=-1)
                acc = xp.matmul(p, v[..., ks, :])
            else:
                alpha = xp.exp(m - m_safe)
                l = l * alpha + xp.sum(p, axis=-1)
                acc = acc * alpha[..., None] + xp.matmul(p, v[..., ks, :])
            m = m_new
        if strict:
            _check_no_overflow(P, qs, m)
        l_safe = xp.where(l > 0, l, xp.ones_like(l))
        outs.append(acc / l_safe[..., None])
    if len(outs) == 1:
        return outs[0]
    return xp.concat(outs, axis=-2)


def _masked_kernels():
    """The compiled helpers of masked dense blocks (``visible_row_max``, ``set_where``), or None."""
    from .._compiled import compiled

    return compiled("tropix.attention._kernels_numba")


def _key_stop(P: Prepared, qs: slice) -> int:
    """Keys past this one are masked for every query of ``qs``: with ``causal`` (top-left aligned: query ``i``
    sees keys ``j <= i``) the key blocks beyond the last query of the block are skipped.  At least one key
    (the recurrence then starts; a query that sees no key still gets output 0)."""
    return max(1, min(P.n_k, qs.stop)) if P.causal else P.n_k


def _dense_numpy(P: Prepared, block: int, qblock: int, strict: bool = False):
    """The same recurrence for NumPy inputs, with in-place updates (no autograd to preserve)."""
    with np.errstate(over="ignore", invalid="ignore"):  # (scores beyond the float range: raised, with the cause)
        return _dense_numpy_blocks(P, block, qblock, strict)


def _dense_numpy_blocks(P: Prepared, block: int, qblock: int, strict: bool):
    q, k, v = P.q, P.k, P.v
    n_q = P.n_q
    kT = np.swapaxes(k, -1, -2)
    out = np.empty(P.batch_shape + (n_q, P.d_v), dtype=np.result_type(q, k, v))
    # the pairs a mask or the causal term hides: -inf in the scores, or, with the compiled kernels and one head,
    # left out of the maxima and sent through exp as -1, their weight then set to 0 (NumPy's exp takes a slow
    # path, 3-4x, on vectors holding -inf; np.copyto with where= costs as much again)
    # (the compiled kernels take float32 and float64 scores; numba has no float16)
    kern = _masked_kernels() if not P.batch_shape and np.result_type(q, k) in (np.float32, np.float64) else None
    for qs0 in range(0, n_q, qblock):
        qs = slice(qs0, min(n_q, qs0 + qblock))
        qb = q[..., qs, :] * P.scale
        m = l = acc = None
        stop = _key_stop(P, qs)
        for ks0 in range(0, stop, block):
            ks = slice(ks0, min(stop, ks0 + block))
            s = np.matmul(qb, kT[..., :, ks])
            hidden = add_block_extra_numpy(P, qs, ks, s, set_hidden=kern is None)
            if hidden is not None and kern is not None:
                hidden = np.broadcast_to(hidden, s.shape)
                bmax = np.empty(s.shape[0])
                kern.visible_row_max(s, hidden, bmax)
            else:
                hidden = None
                bmax = s.max(axis=-1)
            m_new = bmax if m is None else np.maximum(m, bmax)
            m_safe = np.where(np.isfinite(m_new), m_new, 0.0)
            s -= m_safe[..., None]
            if hidden is not None:
                kern.set_where(s, hidden, -1.0)
            np.exp(s, out=s)
            if hidden is not None:
                kern.set_where(s, hidden, 0.0)
            if m is None:
                l = s.sum(axis=-1)
                acc = np.matmul(s, v[..., ks, :])
            else:
                alpha = np.exp(m - m_safe)
                l = l * alpha + s.sum(axis=-1)
                acc *= alpha[..., None]
                acc += np.matmul(s, v[..., ks, :])
            m = m_new
        if strict:
            _check_no_overflow(P, qs, m)
        out[..., qs, :] = acc / np.where(l > 0, l, 1.0)[..., None]
    return out


def _check_no_overflow(P: Prepared, qs: slice, m) -> None:
    """Raise :class:`~tropix.errors.FloatOverflowError` when a score of the query block ``qs`` left the float
    range (finite inputs): a row maximum ``m`` of ``+inf`` or NaN (its output was NaN), or ``-inf`` for a row that
    sees a key (every score it sees overflowed to ``-inf``: its output was that of a row that sees no key).
    Cheap on ordinary input (a look at the maxima); the scores of a block are recomputed only when a row's
    maximum is ``-inf`` (a fully masked row)."""
    mn = np.asarray(to_numpy(m), dtype=np.float64)
    if np.isfinite(mn).all():
        return
    msg = ("dense: the scores scale * q.k + bias of some queries leave the float range ({}); softmax of such "
           "scores is beyond it too: rescale q or k (tropix.attention.tropical decides their best keys exactly)")
    if np.isnan(mn).any() or np.isposinf(mn).any():
        raise FloatOverflowError(msg.format("+inf or NaN"))
    stop = _key_stop(P, qs)
    with np.errstate(over="ignore", invalid="ignore"):
        raw = (np.asarray(to_numpy(P.q), dtype=np.float64)[..., qs, :] * P.scale) @ np.swapaxes(
            np.asarray(to_numpy(P.k), dtype=np.float64)[..., :stop, :], -1, -2)
    rows = np.isneginf(mn)[..., None]
    if np.isfinite(raw).all():
        return  # (rows that see no key)
    E = block_extra(P, qs, slice(0, stop), P.q.dtype)
    vis = True if E is None else np.asarray(to_numpy(E), dtype=np.float64) != -np.inf
    if np.any(rows & vis & ~np.isfinite(raw)):
        raise FloatOverflowError(msg.format("-inf for every key a query sees"))


def _rownorm(x: np.ndarray) -> np.ndarray:
    """Euclidean norms of the last axis, without the temporary of ``np.linalg.norm``.

    Rows whose sum of squares underflows (norm below ~1e-150: a tiny vector would get norm 0, and the rounding
    bounds scaled by it a zero bound) or overflows are recomputed scaled by their largest entry.
    """
    n = np.sqrt(np.einsum("...i,...i->...", x, x))
    bad = (n < 1e-150) | ~(n < 1e150)
    if np.any(bad):
        n = np.array(n, dtype=np.float64, ndmin=1)
        xb = np.asarray(x, dtype=np.float64).reshape(n.shape + (x.shape[-1],))[bad]
        m = np.abs(xb).max(axis=-1, initial=0.0)
        y = xb / np.where(m > 0, m, 1.0)[:, None]
        n[bad] = m * np.sqrt(np.einsum("...i,...i->...", y, y))
        n = n.reshape(np.shape(bad))
    return n


def dense_rounding_bound(P: Prepared, with_vmax: bool = False, bias_stats=None):
    """Per-row rounding bound (shape ``batch + (n_q,)``) of evaluating dense attention on ``P`` in floating point.

    With ``with_vmax`` also returns the largest value norm per head; ``bias_stats``: the
    :func:`~tropix.attention._inputs.bias_row_stats` of ``P`` if already computed.
    """
    q = np.asarray(to_numpy(P.q), dtype=np.float64)
    qn = _rownorm(q)
    kn = P.knorm if P.knorm is not None else _rownorm(np.asarray(to_numpy(P.k), dtype=np.float64))
    vn = P.vnorm if P.vnorm is not None else _rownorm(np.asarray(to_numpy(P.v), dtype=np.float64))
    kmax = np.max(kn, axis=-1)[..., None]
    vmax = np.max(vn, axis=-1)[..., None]
    if P.bias is not None:  # the largest |b| over the finite entries of each row (-inf masks a key)
        extra = np.broadcast_to((bias_row_stats(P) if bias_stats is None else bias_stats)[1],
                                P.batch_shape + (P.n_q,))
    else:
        extra = 0.0
    npdt = _precision(P.q.dtype)  # the scores' precision (q k^T); the output is accumulated in q, k, v promoted
    odt = _precision(P.xp.result_type(P.q.dtype, P.k.dtype, P.v.dtype))
    rb = rounding_bound(qn, kmax, extra, P.n_k, P.d, vmax, P.scale, npdt, d_v=P.d_v, out_dtype=odt)
    return (rb, vmax[..., 0]) if with_vmax else rb


def _is_half(dtype) -> bool:
    """Whether a NumPy, torch or array-API dtype is float16 or bfloat16."""
    return str(dtype).split(".")[-1] in ("float16", "bfloat16")


def _is_float64(dtype) -> bool:
    """Whether a NumPy, torch or array-API dtype is float64."""
    if isinstance(dtype, np.dtype):
        return dtype == np.float64
    return str(dtype).split(".")[-1] == "float64"


def as_float64(P: Prepared) -> Prepared:
    """``P`` with ``q``, ``k``, ``v`` and a bias converted to float64 (exactly) in their own library."""
    xp = P.xp

    def f64(x):
        return x if x is None or _is_float64(x.dtype) else xp.astype(x, xp.float64)

    return dataclasses.replace(P, q=f64(P.q), k=f64(P.k), v=f64(P.v), bias=f64(P.bias))


def verify_against_dense(res, P: Prepared) -> None:
    """``check=True`` of a certified method: raise BoundViolationError if an output row of ``res`` is farther
    from dense attention than its bound.  The reference is evaluated in float64 (narrower inputs convert
    exactly), so its own allowance is float64's rounding bound whatever the input's precision."""
    P64 = as_float64(P)
    ref = _dense(P64)
    if any(x is not y for x, y in ((P.q, P64.q), (P.k, P64.k), (P.v, P64.v), (P.bias, P64.bias))):
        res = dataclasses.replace(res, reference_slack=dense_rounding_bound(P64))
    res.verify(ref)


def _precision(dt):
    """A NumPy, torch or array-API floating dtype as :func:`~tropix.attention.bounds.rounding_bound` takes it: the
    NumPy dtype, or the dtype's name where NumPy has none (``"bfloat16"``: 8 significand bits, never float64's
    53)."""
    if isinstance(dt, np.dtype):
        return dt
    name = str(dt).split(".")[-1]
    try:
        return np.dtype(name)
    except TypeError:
        return name


def _np_dtype(dt):
    """The NumPy dtype of a NumPy, torch or array-API floating dtype (float64 if NumPy has no such dtype)."""
    if isinstance(dt, np.dtype):
        return dt
    try:
        return np.dtype(str(dt).split(".")[-1])  # torch.float32, array_api_strict.float32
    except TypeError:
        return np.float64


def _vmax(P: Prepared) -> np.ndarray:
    v = np.asarray(to_numpy(P.v), dtype=np.float64)
    return np.max(_rownorm(v), axis=-1)
