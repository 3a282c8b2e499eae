"""Gravitational multi-timescale attention: gravitational weights discounted by distance, at T timescales.

Source: ``sanjivshah16/gravitational`` (``gravitational_multi_timescale_attention.py``).  The projections
``q, k, v`` are **shared** by the timescales; the masses are per timescale and head,
``m_{t} = softplus(x W_m + b)`` (a ``Linear(D → H·T)``); per timescale

.. math::

   g^t_{ij} = \\frac{G\\,m^q_{t,i}\\,m^k_{t,j}}{\\lVert q_i - k_j\\rVert^2 + \\varepsilon}\\,\\gamma_t^{|i-j|},\\qquad
   A^t_{ij} = \\frac{g^t_{ij}}{\\sum_l g^t_{il}}
   = \\operatorname{softmax}_j\\bigl(\\log m^k_{t,j} + |i-j|\\ln\\gamma_t - \\log(\\lVert q_i-k_j\\rVert^2+\\varepsilon)\\bigr).

Here the discount multiplies the *weight* (not the logit as in plain multi-timescale attention), which
is the principled discounting.  ``G`` and ``m^q`` cancel again.  The T outputs ``O_t = A^t V`` are combined
by the same decoders as :mod:`~tropix.attention.mechanisms.multiscale` (learned MLP or fixed
:func:`~tropix.attention.mechanisms.multiscale.laplace_decoder`).  Cost ``O(n² d + T n²)`` per head: one
distance GEMM shared by all timescales.

**Geometric picture.**  Each timescale sees a weighted Voronoi diagram of the keys in which a key's
mass is additionally discounted by its distance in the sequence: short timescales are local, long
timescales are gravitational.

Where the source is vague: the discounts are unconstrained parameters there; they are kept in
``(0, 1]`` here (``γ = σ(θ)`` in the torch wrapper).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ShapeError, ToleranceError
from ._common import check_finite, check_qkv, common_float, masked_softmax, prepare
from .gravitational import _coincident_limit, gravitational_logits
from .multiscale import _log_gammas, discounted_logits

__all__ = ["grav_multiscale_attention", "grav_multiscale_attention_reference"]


def grav_multiscale_attention(q: Any, k: Any, v: Any, *, log_mass_k: Any, gammas: Any = None,
                              log_gammas: Any = None, eps: float = 1e-8, mask: Any = None,
                              return_weights: bool = False):
    """``O_t = softmax_j(log m^k_{t,j} + |i−j| ln γ_t − log(‖q_i − k_j‖² + ε)) V`` for each timescale t.

    Parameters
    ----------
    q, k, v : arrays ``(..., n_q, d)``, ``(..., n_k, d)``, ``(..., n_k, d_v)``
        Shared per-head projections.
    log_mass_k : array ``(T, ..., n_k)``
        Log key masses per timescale.
    gammas, log_gammas : length-T array or sequence
        Discounts in ``(0, 1]`` or their logarithms (give one).
    eps : float
    mask : bool array broadcastable to ``(T, ..., n_q, n_k)``, optional

    Returns
    -------
    out : array ``(T, ..., n_q, d_v)`` (and the weights ``(T, ..., n_q, n_k)`` if asked)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> q, k, v = rng.normal(size=(3, 6, 2))
    >>> out, A = grav_multiscale_attention(q, k, v, log_mass_k=np.zeros((2, 6)), gammas=[0.5, 0.99],
    ...                                    return_weights=True)
    >>> out.shape, np.allclose(A.sum(-1), 1.0)
    ((2, 6, 2), True)
    """
    xp = prepare(("q", q), ("k", k), ("v", v), ("log_mass_k", log_mass_k))
    q, k, v, log_mass_k = common_float(xp, q, k, v, log_mass_k)
    check_qkv(q, k, v)
    check_finite(xp, v, "v")  # (an infinite value gave NaN rows: 0·inf)
    if bool(xp.any(log_mass_k == math.inf)):
        raise ToleranceError("log_mass_k must be < +inf (-inf, the tropical zero, removes a key)")
    if log_mass_k.ndim < 2 or log_mass_k.shape[-1] != k.shape[-2]:
        raise ShapeError(f"log_mass_k must have shape (T, ..., n_k={k.shape[-2]}); got {tuple(log_mass_k.shape)}")
    T = log_mass_k.shape[0]  # (read before the check above, a 0-d log_mass_k was a raw IndexError)
    lg = _log_gammas(xp, gammas, log_gammas, q, T)
    base = gravitational_logits(q, k, xp.zeros(k.shape[:-1], dtype=k.dtype), eps=eps)  # −log(d² + ε)
    # the masses' batch axes (between T and n_k) line up with the heads' batch axes from the right; the
    # timescale axis stays in front (a (T, n_k) mass with (H, n, d) heads put timescale t on head t)
    nb, mb = base.ndim - 2, log_mass_k.ndim - 2
    mass_batch = tuple(log_mass_k.shape[1:-1])
    try:
        if mb > nb:
            raise ValueError
        np.broadcast_shapes(mass_batch, tuple(base.shape[:-2]))
    except ValueError:
        raise ShapeError(f"log_mass_k must have shape (T, ..., n_k) with its middle axes broadcasting to the heads' "
                         f"batch shape {tuple(base.shape[:-2])}; got {tuple(log_mass_k.shape)}") from None
    lm = xp.reshape(log_mass_k, (T,) + (1,) * (nb - mb) + mass_batch + (1, int(log_mass_k.shape[-1])))
    base = base[None, ...]
    if eps == 0:  # a massless key takes no part, even at distance 0 (+inf + -inf was NaN)
        base = xp.where(lm == -math.inf, xp.zeros_like(lm), base)
    logits = base + lm
    lg = xp.reshape(lg, (T,) + (1,) * (logits.ndim - 3))
    logits = discounted_logits(logits, lg, discount="bias")
    if eps == 0:  # keys at distance 0 share in proportion to m_j γ^{|i−j|} (they shared equally)
        logits = _coincident_limit(xp, logits, discounted_logits(xp.broadcast_to(lm, logits.shape), lg), mask)
    A = masked_softmax(xp, logits, mask)
    out = A @ v
    return (out, A) if return_weights else out


def grav_multiscale_attention_reference(q, k, v, mass_k, gammas, *, eps=1e-8):
    """The source's linear normalisation with loops; ``mass_k`` has shape ``(T, n_k)`` (tests only)."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    T, n, m = len(gammas), q.shape[0], k.shape[0]
    out = np.zeros((T, n, v.shape[1]))
    for t in range(T):
        for i in range(n):
            g = np.array([
                mass_k[t][j] / (float((q[i] - k[j]) @ (q[i] - k[j])) + eps) * gammas[t] ** abs(i - j)
                for j in range(m)
            ])
            out[t, i] = (g / (g.sum() + 1e-8)) @ v
    return out
