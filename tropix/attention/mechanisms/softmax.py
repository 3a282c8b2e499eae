"""Conventional scaled dot-product (softmax) attention: the baseline every mechanism is compared with.

.. math::  A = \\operatorname{softmax}_j\\bigl(q_i\\cdot k_j/\\sqrt d + b_{ij}\\bigr),\\qquad \\text{out} = A V

Cost ``O(n² d)`` time and ``O(n²)`` memory per head.  An optional additive ``bias`` (e.g. the power-law
field of :mod:`~tropix.attention.mechanisms.powerlaw`) is added to the logits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ShapeError
from ._common import check_finite, check_qkv, checked_scale, common_float, dot_logits, prepare, softmax_pow2

__all__ = ["softmax_attention", "softmax_attention_reference"]


def softmax_attention(q: Any, k: Any, v: Any, *, bias: Any = None, scale: float | None = None, mask: Any = None,
                      return_weights: bool = False):
    """Scaled dot-product attention ``softmax(q kᵀ·scale + bias) v``.

    Parameters
    ----------
    q, k, v : arrays of shape ``(..., n_q, d)``, ``(..., n_k, d)``, ``(..., n_k, d_v)``
    bias : array broadcastable to ``(..., n_q, n_k)``, optional
        Added to the logits (``-inf`` entries exclude a key).
    scale : float, default ``1/sqrt(d)``
    mask : bool array broadcastable to ``(..., n_q, n_k)``, optional
        ``True`` where the key may be attended; fully masked rows give 0.
    return_weights : bool
        Also return the attention matrix.

    Returns
    -------
    out : array ``(..., n_q, d_v)`` (and the weights ``(..., n_q, n_k)`` if asked)

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[1.0, 0.0]]); k = np.array([[1.0, 0.0], [0.0, 1.0]]); v = np.array([[1.0], [0.0]])
    >>> out, A = softmax_attention(q, k, v, scale=1.0, return_weights=True)
    >>> np.round(A, 4), np.round(out, 4)
    (array([[0.7311, 0.2689]]), array([[0.7311]]))
    """
    # a NaN bias or a NaN/infinite scale gave silent NaN outputs (0 * inf for orthogonal q, k)
    check_qkv(q, k, v)
    xp = prepare(("q", q), ("k", k), ("v", v), ("bias", bias), optional=("bias",))
    q, k, v, bias = common_float(xp, q, k, v, bias)
    # (an infinite entry gave NaN or meaningless weights; the largest |q| and |k| serve the logits' scaling)
    mq, mk, _ = (check_finite(xp, a, name) for name, a in (("q", q), ("k", k), ("v", v)))
    scale = checked_scale(scale, q.shape[-1])  # (an array scale of NaN gave all-NaN output)
    # logits y·2^e: q kᵀ beyond the float range (float16 entries near 300) became +inf and shared their row
    # equally; the exponent e keeps them exact, and the softmax then selects the largest
    y, e = dot_logits(xp, q, k, scale, mq, mk)
    if bias is not None:
        full = tuple(y.shape)
        try:
            np.broadcast_shapes(tuple(bias.shape), full)
        except ValueError:
            raise ShapeError(f"bias of shape {tuple(bias.shape)} does not broadcast to the scores {full}") from None
    A = softmax_pow2(xp, y, e, bias, mask)
    out = A @ v
    return (out, A) if return_weights else out


def softmax_attention_reference(q, k, v, *, bias=None, scale=None, mask=None):
    """Loop reference of :func:`softmax_attention` for 2-D NumPy inputs (tests only)."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    n, m = q.shape[0], k.shape[0]
    scale = 1.0 / math.sqrt(q.shape[1]) if scale is None else scale
    out = np.zeros((n, v.shape[1]))
    A = np.zeros((n, m))
    for i in range(n):
        logits = []
        for j in range(m):
            ok = True if mask is None else bool(np.broadcast_to(mask, (n, m))[i, j])
            b = 0.0 if bias is None else float(np.broadcast_to(bias, (n, m))[i, j])
            logits.append(sum(q[i, t] * k[j, t] for t in range(q.shape[1])) * scale + b if ok else -math.inf)
        top = max(logits)
        if top == -math.inf:
            continue
        w = [math.exp(x - top) for x in logits]
        z = sum(w)
        for j in range(m):
            A[i, j] = w[j] / z
            out[i] += A[i, j] * v[j]
    return out, A
