"""Certified error bounds for softmax attention: truncation, far-field aggregation and floating-point rounding.

Notation for one query: weights ``w_j = exp(s_j - m)`` (``m`` a shift), ``Z = sum_j w_j``, output
``o = sum_j w_j v_j / Z``.  An approximate method computes some keys exactly (mass ``Z_S``), replaces the
weights of aggregated keys by estimates (total absolute weight error ``B``, weighted by ``|v|``: ``A``) and
drops the rest (true mass ``Z_D``, known only through an upper bound ``D``).  With ``õ`` its output,

.. math::

    o - õ = \\frac{N - Ñ}{Z} + õ\\,\\frac{Z̃ - Z}{Z}
    \\quad\\Rightarrow\\quad
    \\|o - õ\\| \\le \\frac{Z_D (V_D + \\|õ\\|) + A + \\|õ\\| B}{Z_{lo} + Z_D},

where ``V_D`` bounds ``|v_j|`` over the dropped keys and ``Z_lo`` is a lower bound on the mass of the
kept and aggregated keys.  The right side is a Möbius function of ``Z_D``, hence monotone on
``[0, D]``: the bound is the larger of its values at ``0`` and ``D`` (:func:`truncation_bound`).  With no
aggregation and ``V_D, |õ| <= max|v|`` this is the classical ``2 δ max|v|`` with dropped mass
``δ = D/(Z_S + D)``.

:func:`rounding_bound` bounds the floating-point error of computing softmax attention itself, so that
certified bounds hold for the computed numbers, not only in exact arithmetic.  :func:`logit_shift_bound`
bounds how far the output moves when every score moves by at most ``σ``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["truncation_bound", "rounding_bound", "unit_roundoff", "pruning_budget", "logit_shift_bound"]


def unit_roundoff(dtype) -> float:
    """Unit roundoff ``u`` of a floating dtype (``2**-53`` for float64).

    Examples
    --------
    >>> unit_roundoff(np.float64) == 2.0 ** -53
    True
    """
    return _unit_roundoff(dtype if isinstance(dtype, (type, np.dtype)) else str(dtype))


@lru_cache(maxsize=64)
def _unit_roundoff(dtype) -> float:
    try:
        return float(np.finfo(np.dtype(dtype)).eps) / 2
    except TypeError:
        s = str(dtype)
        if "16" in s:
            return 2.0**-8 if "bfloat" in s else 2.0**-11
        return 2.0**-24 if "32" in s else 2.0**-53


def truncation_bound(D, V_D, onorm, Z_lo, A=0.0, B=0.0):
    """Bound on ``|o - õ|`` from dropped mass ``<= D`` and aggregation errors ``A``, ``B`` (see module doc).

    All arguments broadcast (one entry per query).  Rows with ``Z_lo = 0`` and nothing dropped give 0.

    Examples
    --------
    >>> float(truncation_bound(D=0.01, V_D=1.0, onorm=1.0, Z_lo=1.0))  # 2*delta with delta = 0.01/1.01
    0.019801980198019802
    >>> float(truncation_bound(D=0.0, V_D=1.0, onorm=1.0, Z_lo=1.0))
    0.0
    """
    D, V_D, onorm, Z_lo, A, B = (np.asarray(x, dtype=np.float64) for x in (D, V_D, onorm, Z_lo, A, B))
    num0 = A + onorm * B
    with np.errstate(divide="ignore", invalid="ignore"):
        f0 = np.where(num0 > 0, num0 / Z_lo, 0.0)
        fD = np.where(D > 0, (D * (V_D + onorm) + num0) / (Z_lo + D), f0)
    out = np.maximum(f0, fD)
    # a NaN anywhere (e.g. 0 * inf in a caller's mass bound) must never pass as a small bound
    bad = np.isnan(D) | np.isnan(V_D) | np.isnan(onorm) | np.isnan(Z_lo) | np.isnan(A) | np.isnan(B)
    return np.where(bad | np.isnan(out), np.inf, out)


def _subnormal(dtype) -> float:
    """Smallest subnormal number of a floating dtype (NumPy, torch or array-API name)."""
    return _subnormal_of(str(dtype))


@lru_cache(maxsize=64)
def _subnormal_of(dtype: str) -> float:
    try:
        return float(np.finfo(np.dtype(str(dtype).split(".")[-1])).smallest_subnormal)
    except TypeError:
        return 2.0**-133 if "bfloat" in str(dtype) else 2.0**-1074


def rounding_bound(qnorm, kmax, extra_abs, n, d, vmax, scale, dtype=np.float64, d_v: int = 1, out_dtype=None):
    """Bound on the floating-point error of evaluating softmax attention of one query over ``n`` keys.

    ``qnorm`` = ``|q_i|``, ``kmax`` = largest ``|k_j|``, ``extra_abs`` = largest finite ``|bias_ij|``,
    ``vmax`` = largest ``|v_j|``.  Score errors are at most ``γ_{d+2} (|scale| |q| |k| + |b|)``
    (any summation order, with or without FMA); each perturbs a softmax probability by a factor within
    ``exp(±σ)``, so ``|p - p'|_1 <= expm1(2σ)``; the sums over keys and the final division add
    ``γ_{2n}``-type terms.  A safety factor 2 is applied.  Gradual underflow adds absolute errors of at most
    half the smallest subnormal per operation: ``2 (d + 4)`` to a score, one to each weight (relative to the
    largest weight 1: an error ``<= (2n + d + 8) sub |v|``) and ``(2n + d + 8)`` to each of the ``d_v`` output
    entries, accumulated in ``out_dtype`` (default ``dtype``; values of a wider dtype than the scores are
    accumulated in it).  A NaN (``0 * inf`` from overflowing norms) is returned as an infinite bound.

    Examples
    --------
    >>> b = rounding_bound(qnorm=1.0, kmax=1.0, extra_abs=0.0, n=1000, d=64, vmax=1.0, scale=0.125)
    >>> 0 < float(b) < 1e-11
    True
    """
    u = unit_roundoff(dtype)
    sub, sub_o = _subnormal(dtype), _subnormal(dtype if out_dtype is None else out_dtype)
    m = 2 * n + d + 8
    gam = m * u / (1.0 - m * u) if m * u < 1.0 else math.inf  # (no bound where n u reaches 1: bfloat16 sums)
    if all(isinstance(x, float) for x in (kmax, extra_abs, vmax, scale)):
        # the usual call (one head: scalar norms, a vector of query norms), the same terms with the scalars
        # combined first: 5 operations on the vector instead of 14 (about 9 us against 16 for 256 queries;
        # an infinite or NaN scalar gives an infinite bound as below)
        with np.errstate(over="ignore", invalid="ignore"):
            a = 4.0 * (d + 4) * u + 2.0 * u
            c2 = 2.0 * (a * extra_abs + 4.0 * u + 2.0 * (d + 4) * sub)
            b = np.expm1(np.asarray(qnorm, dtype=np.float64) * (2.0 * a * abs(scale) * kmax) + c2)
            b *= 2.0 * vmax
            b += 2.0 * vmax * (3.0 * gam + m * sub) + 2.0 * m * sub_o * math.sqrt(d_v)
        return np.where(np.isnan(b), np.inf, b)
    with np.errstate(over="ignore", invalid="ignore"):  # astronomically large scores: an infinite bound, honestly
        S = abs(scale) * np.asarray(qnorm, dtype=np.float64) * kmax + np.asarray(extra_abs, dtype=np.float64)
        sigma = 4.0 * (d + 4) * u * S + 4.0 * u + 2.0 * u * S + 2.0 * (d + 4) * sub  # score error + exp + shift
        b = 2.0 * np.asarray(vmax, dtype=np.float64) * (np.expm1(2.0 * sigma) + 3.0 * gam + m * sub) \
            + 2.0 * m * sub_o * np.sqrt(d_v)
    return np.where(np.isnan(b), np.inf, b)


def logit_shift_bound(sigma):
    """``2 tanh(σ/2)``, rounded up: if every score of a query moves by at most ``σ``, its softmax output moves by
    at most this times ``max_j |v_j|`` (exact arithmetic on both sides; at most 2, about ``σ`` for small ``σ``).

    Let ``p`` and ``p̃`` be the softmax weights of scores ``s`` and ``s̃`` with ``|s̃_j - s_j| <= σ``.  For a
    set ``A`` of keys with ``x = p(A)``, ``p̃(A) = Σ_A p_j e^{δ_j} / Σ_j p_j e^{δ_j} <= x e^σ / (x e^σ +
    (1 - x) e^{-σ})`` (``t / (t + u)`` grows with ``t`` and falls with ``u``), so the total variation
    distance ``T = max_A (p̃(A) - p(A))`` is at most ``max_x x (1 - x)(e^σ - e^{-σ}) / (x e^σ + (1 - x) e^{-σ})
    = tanh(σ/2)`` (at ``x = 1 / (1 + e^σ)``; attained by scores that move by ``±σ``).  Since ``Σ_j (p̃_j -
    p_j) = 0``, ``Σ_j (p̃_j - p_j) v_j = T (a - b)`` with ``a, b`` convex combinations of the ``v_j``, so
    ``|Σ_j (p̃_j - p_j) v_j| <= T · 2 max_j |v_j|``.  (The factor ``expm1(2σ)`` of bounding each weight's
    ratio ``e^{±2σ}`` separately is twice as large for small ``σ`` and unbounded.)

    Examples
    --------
    >>> float(logit_shift_bound(0.0)), float(logit_shift_bound(np.inf))
    (0.0, 2.0)
    >>> s, d = np.array([0.0, 1.0, -2.0]), np.array([0.1, -0.1, 0.1])  # every score moved by at most 0.1
    >>> p, pt = np.exp(s) / np.exp(s).sum(), np.exp(s + d) / np.exp(s + d).sum()
    >>> v = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    >>> bool(np.linalg.norm((pt - p) @ v) <= logit_shift_bound(0.1) * 1.0)
    True
    """
    with np.errstate(invalid="ignore"):
        t = 2.0 * np.tanh(0.5 * np.asarray(sigma, dtype=np.float64))
        # tanh is faithful to a few ulps; sigma itself is an upper bound computed by the caller
        return np.where(np.isnan(t), np.inf, np.minimum(t * (1.0 + 2.0**-48), 2.0))


def pruning_budget(eps: float, rho_rel):
    """Dropped relative mass ``β`` allowed so that ``2β/(1+β) + ρ <= eps`` (``ρ`` = rounding, relative).

    Returns 0 (prune nothing) when ``eps`` does not exceed the rounding floor.

    Examples
    --------
    >>> round(float(pruning_budget(0.02, 0.0)), 6)
    0.010101
    >>> float(pruning_budget(0.0, 1e-14))
    0.0
    """
    e = np.maximum(np.asarray(eps, dtype=np.float64) - np.asarray(rho_rel, dtype=np.float64), 0.0)
    e = e * (1 - 1e-9)  # margin for the rounding of this very computation
    with np.errstate(over="ignore"):  # (eps >= 2 allows any output: a budget of 1e300, never inf)
        return np.where(e > 0, np.minimum(e / np.maximum(2.0 - e, 1e-300), 1e300), 0.0)
