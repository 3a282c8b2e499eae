"""Power-law positional field (AGF-style): a decoupled, gravitational-law bias on the attention logits.

Source: E. Zhang, *Attention's Gravitational Field* (arXiv:2603.04805, 2026).  The abstract states that
positional information is decoupled from the semantic embeddings and that positional correlation
follows a power law "aligned with Newton's law"; the paper's formulas were not available and no code is
public.  **This module implements the most faithful precise reading** (to be confirmed against the
paper), which is also KERPLE's logarithmic variant:

.. math::

   b_h(i, j) = -\\alpha_h \\log(1 + \\beta_h |i-j|),\\quad \\alpha_h, \\beta_h > 0,\\qquad
   A_{ij} \\propto e^{q_i\\cdot k_j/\\sqrt d}\\,(1 + \\beta_h|i-j|)^{-\\alpha_h}.

The semantic kernel is multiplied by a power-law field of the sequence distance; ``α = 2`` is the
"Newtonian" inverse-square case.  Nothing is added to the token embeddings.  Cost: that of softmax
attention plus ``O(n²)`` per head for the bias (FlashAttention-compatible as an additive bias).

**Geometric picture.**  Every key sits in a gravitational well centred on the query's position; the
well's depth falls off as a power of the distance, so unlike ALiBi's exponential decay it keeps a heavy
tail of long-range attention.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ToleranceError
from ...tropical._args import check_int
from ._common import as_param, check_qkv, position_distance, prepare
from .softmax import softmax_attention

__all__ = ["powerlaw_bias", "powerlaw_attention", "powerlaw_attention_reference"]


def powerlaw_bias(n_q: int, n_k: int, alpha: Any, beta: Any, *, like: Any = None):
    """The bias ``−α log(1 + β|i − j|)``, shape ``alpha.shape + (n_q, n_k)`` (α, β broadcast together).

    ``like`` fixes the array library and dtype (default: that of ``alpha`` if it is an array, else NumPy).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(powerlaw_bias(1, 3, 2.0, 1.0), 4)     # −2 log(1 + |j|)
    array([[ 0.    , -1.3863, -2.1972]])
    """
    n_q, n_k = check_int(n_q, "n_q", minimum=1), check_int(n_k, "n_k", minimum=1)
    if like is None:
        like = alpha if hasattr(alpha, "dtype") else np.zeros(1)
    xp = prepare(("like", like))
    a = as_param(xp, alpha, like, "alpha")
    b = as_param(xp, beta, like, "beta")
    if bool(xp.any(a < 0)) or bool(xp.any(b < 0)) or not bool(xp.all(xp.isfinite(a))) or not bool(xp.all(xp.isfinite(b))):
        raise ToleranceError("alpha and beta must be finite and >= 0 (softplus them when learning)")
    a = xp.reshape(a, tuple(a.shape) + (1, 1))
    b = xp.reshape(b, tuple(b.shape) + (1, 1))
    dist = position_distance(xp, n_q, n_k, a)
    with np.errstate(over="ignore"):  # (α log(1 + β|i−j|) beyond the float range is −inf: weight 0, its limit)
        bd = b * dist
        big = xp.isinf(bd)
        if bool(xp.any(big)):
            # β|i−j| beyond the float range (float16: β = 100 at distance 656) was inf: far keys got weight 0, not
            # (β|i−j|)^-α, α = 0 gave 0·inf = NaN, and the gradient in α was NaN; there log(1 + β|i−j|) is
            # log β + log|i−j| (the 1 is below their rounding)
            one = xp.ones_like(bd)
            lg = xp.where(big, xp.log(xp.where(big, b, one)) + xp.log(xp.where(big, dist, one)),
                          xp.log1p(xp.where(big, xp.zeros_like(bd), bd)))
            return 0.0 - a * lg
        return 0.0 - a * xp.log1p(bd)


def powerlaw_attention(q: Any, k: Any, v: Any, *, alpha: Any, beta: Any, mask: Any = None,
                       return_weights: bool = False):
    """Softmax attention with the power-law positional field ``−α_h log(1 + β_h|i−j|)`` on the logits.

    Parameters
    ----------
    q, k, v : arrays ``(..., H, n_q, d)``, ``(..., H, n_k, d)``, ``(..., H, n_k, d_v)``
    alpha, beta : float or array broadcastable to the head axes ``q.shape[:-2]``
        Positive field strength and scale (per head).
    mask : bool array broadcastable to ``(..., n_q, n_k)``, optional

    Examples
    --------
    >>> import numpy as np
    >>> q = np.zeros((1, 3, 2)); k = np.zeros((1, 3, 2)); v = np.eye(3)[None]
    >>> out, A = powerlaw_attention(q, k, v, alpha=np.array([2.0]), beta=np.array([1.0]), return_weights=True)
    >>> np.round(A[0, 0], 4)          # weights ∝ (1 + |j|)^-2 = 1, 1/4, 1/9
    array([0.7347, 0.1837, 0.0816])
    """
    # alpha/beta arrays must come from the library of q (a NumPy alpha with torch q was a raw RuntimeError)
    check_qkv(q, k, v)
    prepare(("q", q), *((n, a) for n, a in (("alpha", alpha), ("beta", beta)) if hasattr(a, "dtype")))
    bias = powerlaw_bias(q.shape[-2], k.shape[-2], alpha, beta, like=q if not hasattr(alpha, "dtype") else alpha)
    return softmax_attention(q, k, v, bias=bias, mask=mask, return_weights=return_weights)


def powerlaw_attention_reference(q, k, v, alpha, beta):
    """Loop reference for 2-D NumPy inputs and scalar α, β, using the product form ``e^s (1+β|i−j|)^{−α}``."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    n, m, d = q.shape[0], k.shape[0], q.shape[1]
    out = np.zeros((n, v.shape[1]))
    for i in range(n):
        s = [float(q[i] @ k[j]) / math.sqrt(d) for j in range(m)]
        top = max(s)
        w = np.array([math.exp(s[j] - top) * (1.0 + beta * abs(i - j)) ** (-alpha) for j in range(m)])
        out[i] = (w / w.sum()) @ v
    return out
