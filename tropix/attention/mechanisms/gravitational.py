"""Gravitational attention: keys attract queries with their mass over the squared distance.

Source: ``sanjivshah16/gravitational`` (``gravitational_attention.py``).  Per head, with masses
``m^q_i = softplus(x_i W_mq + b)``, ``m^k_j = softplus(x_j W_mk + b)`` and a constant ``G``:

.. math::

   g_{ij} = \\frac{G\\, m^q_i\\, m^k_j}{\\lVert q_i - k_j\\rVert^2 + \\varepsilon},\\qquad
   A_{ij} = \\frac{g_{ij}}{\\sum_l g_{il} + 10^{-8}},\\qquad \\text{out} = A V.

The normalisation is linear, not a softmax, and ``G`` and ``m^q_i`` cancel in it (up to the ``1e-8``).
Equivalently — and this is how it is computed here, stably in the log domain —

.. math::  A_{ij} = \\operatorname{softmax}_j\\bigl(\\log m^k_j - \\log(\\lVert q_i - k_j\\rVert^2 + \\varepsilon)\\bigr).

The two agree to relative ``1e-8/Σ_l g_il`` (tested).  Distances come from one GEMM (the source
materialises an ``n×n×d`` tensor), so the cost is ``O(n² d)`` time and ``O(n²)`` memory per head.

**Stability.**  As ``q_i → k_j`` the weight ``g_ij`` grows to ``m^k_j/ε`` (``1e8·m``), which would overflow in
float16 and lose the other keys in float32; the log form never forms it.  Masses enter as
``log m = log softplus(z)``, accurate for very negative ``z``.  The Gram form of ``‖q_i − k_j‖²`` has an absolute
rounding error of about ``1e-16·(‖q_i − k̄‖² + ‖k_j − k̄‖²)`` (``k̄`` the keys' mean), which matters only for nearly
coincident points far from ``k̄``: with ``‖q‖ ≈ 1e4`` and ``‖q_i − k_j‖ ≈ 1e-4`` the logit of the pair is off by up to
about 2 (measured), with ``‖q‖ ≈ 1`` by ``2e-7``.

**Geometric picture.**  Key ``j`` wins a query where ``(‖q − k_j‖² + ε)/m_j`` is smallest: the cells of a
weighted Voronoi diagram of the keys (multiplicatively weighted for ``ε = 0``), whose walls are spheres (circles of
Apollonius in the plane for ``ε = 0``), or hyperplanes between keys of equal mass.

Where the source is vague: the distance exponent is a parameter ``p`` (``p = 2`` used); ``G`` and the
query masses are kept by the source as learnable parameters although they are inert — the torch wrapper
keeps them for parity, the functional core does not need them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ArgumentTypeError, ShapeError, ToleranceError
from ...tropical._args import check_real
from ._common import _bool_mask, check_finite, check_qkv, common_float, masked_softmax, prepare, scaled_sq_distances

__all__ = ["gravitational_attention", "gravitational_logits", "gravitational_attention_reference"]


def gravitational_logits(q: Any, k: Any, log_mass_k: Any, *, eps: float = 1e-8):
    """``log m^k_j − log(‖q_i − k_j‖² + ε)`` of shape ``(..., n_q, n_k)``.

    ``log_mass_k`` has shape ``(..., n_k)`` (broadcasting with the leading axes of ``k``).

    Examples
    --------
    >>> import numpy as np
    >>> gravitational_logits(np.zeros((1, 1)), np.array([[1.0], [2.0]]), np.log(np.array([1.0, 8.0])), eps=0.0)
    array([[0.        , 0.69314718]])
    """
    check_qkv(q, k)
    xp = prepare(("q", q), ("k", k), ("log_mass_k", log_mass_k))
    q, k, log_mass_k = common_float(xp, q, k, log_mass_k)
    check_real(eps, "eps", minimum=0)
    if not (eps >= 0) or math.isinf(eps):
        raise ToleranceError(f"eps must be >= 0 and finite, got {eps}")
    if log_mass_k.ndim < 1 or log_mass_k.shape[-1] != k.shape[-2]:
        raise ShapeError(f"log_mass_k must have shape (..., n_k={k.shape[-2]}); got {tuple(log_mass_k.shape)}")
    mq, mk = check_finite(xp, q, "q"), check_finite(xp, k, "k")
    if bool(xp.any(log_mass_k == math.inf)):  # (+inf logits: the keys of infinite mass shared the row equally)
        raise ToleranceError("log_mass_k must be < +inf (-inf, the tropical zero, removes a key)")
    # ‖q_i − k_j‖² = d2·4^e: float64 points near 1e154 (float16 points near 100) had d² = inf, all logits -inf
    d2, e = scaled_sq_distances(xp, q, k, mq, mk)
    shift = 2 * e * math.log(2.0)  # log 4^e
    if eps > 0 and e == 0 and float(xp.asarray(eps, dtype=d2.dtype)) > 0:
        ld = xp.log(d2 + eps)  # (the common case: ε a positive number of the dtype, no scaling; one pass)
    else:
        pos = d2 > 0
        safe = xp.where(pos, d2, xp.ones_like(d2))
        if eps == 0:
            # exact coincidences get +inf (infinite attraction); gravitational_attention splits among them in
            # proportion to their masses (the limit ε -> 0)
            ld = xp.where(pos, xp.log(safe) + shift, xp.full_like(d2, -math.inf))
        else:
            # log(d² + ε) = log(d2 + ε 4^-e) + log 4^e; at d² = 0 it is log ε, taken exactly: in float16 ε = 1e-8
            # is below the smallest subnormal, d² + ε was 0 and coincident keys got +inf logits, ignoring their
            # masses
            ld = xp.where(pos, xp.log(safe + math.ldexp(eps, -2 * e)) + shift, xp.full_like(d2, math.log(eps)))
    lm = log_mass_k[..., None, :]
    try:  # (masses whose batch axes do not fit the distances' were NumPy's raw broadcast ValueError)
        np.broadcast_shapes(tuple(int(s) for s in lm.shape), tuple(int(s) for s in d2.shape))
    except ValueError:
        raise ShapeError(f"log_mass_k of shape {tuple(log_mass_k.shape)} does not broadcast to the keys of q, k "
                         f"(distances {tuple(d2.shape)})") from None
    if eps == 0:  # a massless key (log m = -inf) exerts no pull, even from distance 0 (-inf - (-inf) was NaN)
        ld = xp.where(lm == -math.inf, xp.zeros_like(ld), ld)
    return lm - ld


def gravitational_attention(q: Any, k: Any, v: Any, *, mass_k: Any = None, log_mass_k: Any = None,
                            eps: float = 1e-8, mask: Any = None, return_weights: bool = False):
    """Gravitational attention ``A = softmax_j(log m^k_j − log(‖q_i − k_j‖² + ε))``, ``out = A V``.

    Parameters
    ----------
    q, k, v : arrays ``(..., n_q, d)``, ``(..., n_k, d)``, ``(..., n_k, d_v)``
        Per-head projections.
    mass_k, log_mass_k : array ``(..., n_k)``
        Key masses (positive), or their logarithms (give one of the two; default all masses 1).
    eps : float, default 1e-8
        Softening of the distance (the source's value).  With ``eps = 0`` the keys at distance 0 from a query take
        all of its weight, shared in proportion to their masses (the limit ``ε → 0``).
    mask : bool array broadcastable to ``(..., n_q, n_k)``, optional
    return_weights : bool

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[0.0]]); k = np.array([[1.0], [2.0]]); v = np.array([[1.0], [0.0]])
    >>> out, A = gravitational_attention(q, k, v, mass_k=np.array([1.0, 4.0]), return_weights=True)
    >>> np.round(A, 6)   # 1/1 against 4/4: equal pull
    array([[0.5, 0.5]])
    """
    check_qkv(q, k, v)
    xp = prepare(("q", q), ("k", k), ("v", v), ("mass_k", mass_k), ("log_mass_k", log_mass_k),
                 optional=("mass_k", "log_mass_k"))
    q, k, v, mass_k, log_mass_k = common_float(xp, q, k, v, mass_k, log_mass_k)
    check_finite(xp, v, "v")  # (an infinite value gave NaN rows: 0·inf)
    if mass_k is not None and log_mass_k is not None:
        raise ArgumentTypeError("give mass_k or log_mass_k, not both")
    if mass_k is not None:
        if bool(xp.any(mass_k <= 0)):
            raise ToleranceError("masses must be positive (use log_mass_k for the tropical zero -inf)")
        if not bool(xp.all(xp.isfinite(mass_k))):  # (an infinite mass gave +inf logits; several shared equally)
            raise ToleranceError("masses must be finite")
        log_mass_k = xp.log(mass_k)
    if log_mass_k is None:
        log_mass_k = xp.zeros(k.shape[:-1], dtype=k.dtype)
    logits = gravitational_logits(q, k, log_mass_k, eps=eps)
    if eps == 0:
        logits = _coincident_limit(xp, logits, log_mass_k[..., None, :], mask)
    A = masked_softmax(xp, logits, mask)
    out = A @ v
    return (out, A) if return_weights else out


def _coincident_limit(xp, logits, finite, mask=None):
    """The logits of the rows with ``+inf`` entries (``ε = 0``, keys at distance 0 from the query) replaced by the
    ``finite`` part of those entries (``log m_j``, plus the discount ``|i − j| ln γ``) and ``-inf`` for the other keys.

    Keys at distance 0 from one query are one point, so as ``ε → 0`` (or the query tends to it) the weights tend to
    ``m_j/Σ m_l`` over them (times the discounts): the softmax's equal split of ``+inf`` logits ignored the masses
    and discounts (masses 1 and 1e-6 got 1/2 each, and ``1e-300`` would still have taken half the weight).
    """
    if mask is not None:  # (a masked key at distance 0 takes no part)
        logits = xp.where(_bool_mask(xp, mask, logits.shape), logits, xp.full_like(logits, -math.inf))
    pinf = logits == math.inf
    if not bool(xp.any(pinf)):
        return logits
    row = xp.any(pinf, axis=-1, keepdims=True)
    fin = xp.broadcast_to(finite, logits.shape)
    return xp.where(row, xp.where(pinf, fin, xp.full_like(logits, -math.inf)), logits)


def gravitational_attention_reference(q, k, v, mass_q, mass_k, *, G=1.0, eps=1e-8, mask=None):
    """The source's linear normalisation, with loops (2-D NumPy inputs; tests only)."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    n, m = q.shape[0], k.shape[0]
    A = np.zeros((n, m))
    for i in range(n):
        g = []
        for j in range(m):
            ok = True if mask is None else bool(np.broadcast_to(mask, (n, m))[i, j])
            d2 = sum((q[i, t] - k[j, t]) ** 2 for t in range(q.shape[1]))
            g.append(G * mass_q[i] * mass_k[j] / (d2 + eps) if ok else 0.0)
        z = sum(g) + 1e-8
        A[i] = np.array(g) / z
    return A @ v, A
