"""Tropical attention: the tropical Hilbert projective metric as score, max-plus aggregation of values.

Source: Hashemi, Pasque, Teska, Yoshida, *Tropical Attention: Neural Algorithmic Reasoning for
Combinatorial Algorithms* (NeurIPS 2025, arXiv:2505.17190) and its code (``Baran-phys/Tropical-Attention``).
Inputs are first mapped to the tropical projective torus by a valuation, projected by tropical linear
maps, then

.. math::

   d_{\\mathbb H}(x, y) = \\max_t (x_t - y_t) - \\min_t (x_t - y_t),\\qquad
   S_{ij} = -d_{\\mathbb H}(q_i, k_j),\\qquad
   C_i = \\bigoplus_j S_{ij} \\otimes v_j = \\max_j (S_{ij} + v_j)

(entrywise in the value coordinates), followed by a dequantisation back to real numbers.  There is no
normalisation and no temperature: ``⊕ = max`` is idempotent, so the output does not fade as ``n`` grows.
With ``semiring=MinPlus`` everything is mirrored: ``S = +d_H`` and ``C_i = min_j(S_ij + v_j)``.

Properties (tested): ``d_H`` is a projective metric (``d_H(x + c1, y) = d_H(x, y)``, symmetric, triangle
inequality, zero iff ``x − y`` is constant); the map ``v ↦ C`` is 1-Lipschitz in the sup norm.

Cost ``O(n² d)`` time; ``d_H`` is a max/min, not a GEMM, so the ``n×n×d`` difference tensor is formed —
in query blocks, keeping memory at ``O(block·n·d)``.

**Geometric picture.**  ``d_H(q, k)`` is the tropical (Hilbert) distance between the points ``q`` and ``k``
of the tropical projective torus ``R^d/R1``, whose balls are tropical polytopes (hexagons in ``d = 3``).
Each output coordinate is a tropical polynomial in the values: a piecewise-linear, polyhedral function.

Where the source is vague: the paper writes the valuation as ``log(max(0, x)) − λ`` and the
dequantisation as ``exp``, while its code uses ``log1p(relu(x))`` (optionally ``− λ``) and ``expm1`` — the
code's choice is followed (:func:`tropicalize`, :func:`dequantize`), as it keeps zero finite.  The paper
has per-head tropical projections ``W^{(h)} ∈ R^{d×d_k}``; the code splits the features into heads first
and applies one shared ``d_k×d_k`` max-plus map per Q/K/V (followed by the torch wrapper).  The code's
non-symmetric variant ``−(Σ_t(q_t−k_t) − d·min_t(q_t−k_t))`` is not implemented.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...errors import ConventionError, FloatOverflowError, ShapeError, ToleranceError
from ...tropical.semiring import MaxPlus, Semiring, get_semiring, require_tropical
from ._common import _bool_mask, as_param, check_qkv, common_float, max_abs, pow2_exponent, prepare, times_pow2

__all__ = [
    "hilbert_distance",
    "tropical_attention",
    "tropicalize",
    "dequantize",
    "tropical_linear",
    "tropical_attention_reference",
]

_BLOCK_ELEMS = 1 << 22


def _check_finite(xp, a, name):
    if not bool(xp.all(xp.isfinite(a))):
        raise ConventionError(
            f"{name} has infinite entries; the Hilbert projective metric is defined on the tropical projective "
            f"torus (finite coordinates) - map inputs there with tropicalize()"
        )


def _blocks(n_q: int, per_row: int, lead=()):
    for s in lead:
        per_row *= int(s)
    step = max(1, _BLOCK_ELEMS // max(1, per_row))
    return [(a, min(n_q, a + step)) for a in range(0, n_q, step)]


def _lead(q, k):
    """The broadcast leading shape of q and k (batch and head axes)."""
    return tuple(np.broadcast_shapes(tuple(int(x) for x in q.shape[:-2]), tuple(int(x) for x in k.shape[:-2])))


def hilbert_distance(q: Any, k: Any):
    """Tropical Hilbert projective distances ``max_t(q_it − k_jt) − min_t(q_it − k_jt)``, shape ``(..., n_q, n_k)``.

    Examples
    --------
    >>> import numpy as np
    >>> hilbert_distance(np.array([[0.0, 1.0, 3.0]]), np.array([[5.0, 6.0, 8.0], [0.0, 0.0, 0.0]]))
    array([[0., 3.]])
    """
    xp = prepare(("q", q), ("k", k))
    check_qkv(q, k)
    # booleans (NumPy refuses bool subtraction: a raw TypeError) and integers (int64 differences wrap around
    # silently) are taken as floats, as by the other mechanisms
    q, k = common_float(xp, q, k)
    _check_finite(xp, q, "q")
    _check_finite(xp, k, "k")
    # d_H(2^e x, 2^e y) = 2^e d_H(x, y): points near the float maximum had differences inf - inf = NaN
    m = max(max_abs(xp, q), max_abs(xp, k))
    e = pow2_exponent(m) if m >= float(xp.finfo(q.dtype).max) / 8 else 0
    if e:
        q, k = times_pow2(xp, q, -e), times_pow2(xp, k, -e)
    n_q, n_k, d = q.shape[-2], k.shape[-2], q.shape[-1]
    parts = []
    for a, b in _blocks(n_q, n_k * d, _lead(q, k)):
        diff = q[..., a:b, None, :] - k[..., None, :, :]
        parts.append(xp.max(diff, axis=-1) - xp.min(diff, axis=-1))
    out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=-2)
    if e:
        out = times_pow2(xp, out, e)
        if not bool(xp.all(xp.isfinite(out))):
            raise FloatOverflowError(f"a Hilbert distance exceeds the {q.dtype} range (points of size {m:.3g}); "
                                     "rescale the inputs")
    return out


def tropical_attention(q: Any, k: Any, v: Any, *, semiring: Semiring | str | None = None, mask: Any = None,
                       return_scores: bool = False):
    """Tropical attention ``C_i = ⊕_j (S_ij ⊗ v_j)`` with ``S = −d_H(q, k)`` (max-plus) or ``+d_H`` (min-plus).

    Parameters
    ----------
    q, k : arrays ``(..., n_q, d)``, ``(..., n_k, d)``, finite
        Points of the tropical projective torus (e.g. after :func:`tropicalize` and :func:`tropical_linear`).
    v : array ``(..., n_k, d_v)``
        Values; the tropical zero (``-inf`` in max-plus) is allowed.
    semiring : MaxPlus (default) or MinPlus
    mask : bool array broadcastable to ``(..., n_q, n_k)``, optional
        Masked keys contribute the tropical zero; a fully masked row yields the tropical zero.
    return_scores : bool
        Also return ``S``.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[0.0, 0.0]]); k = np.array([[1.0, 1.0], [0.0, 2.0]]); v = np.array([[1.0], [5.0]])
    >>> tropical_attention(q, k, v, return_scores=True)   # S = (0, -2): max(0 + 1, -2 + 5)
    (array([[3.]]), array([[ 0., -2.]]))
    >>> from tropix import MinPlus
    >>> tropical_attention(q, k, v, semiring=MinPlus)     # min(0 + 1, 2 + 5)
    array([[1.]])
    """
    S_ = require_tropical(semiring if semiring is not None else MaxPlus, "tropical attention")
    xp = prepare(("q", q), ("k", k), ("v", v))
    check_qkv(q, k, v)
    q, k, v = common_float(xp, q, k, v)  # (bool inputs were a raw TypeError; int64 differences wrapped around)
    S_.validate(v, "v")
    d = hilbert_distance(q, k)
    s = 0.0 - d if S_.sense == 1 else d
    if mask is not None:
        s = xp.where(_bool_mask(xp, mask, s.shape), s, xp.full_like(s, S_.zero))
    n_q, n_k, dv = s.shape[-2], s.shape[-1], v.shape[-1]
    parts = []
    for a, b in _blocks(n_q, n_k * dv, tuple(s.shape[:-2])):
        parts.append(S_.sum(s[..., a:b, :, None] + v[..., None, :, :], axis=-2))
    out = parts[0] if len(parts) == 1 else xp.concat(parts, axis=-2)
    return (out, s) if return_scores else out


def tropicalize(x: Any, lam: Any = 0.0):
    """The valuation ``log(1 + max(x, 0)) − λ`` (the source code's form of ``log(max(0, x)) − λ``).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(tropicalize(np.array([-3.0, 0.0, np.e - 1])), 6)
    array([0., 0., 1.])
    """
    xp = prepare(("x", x))
    lam = as_param(xp, lam, x, "lam")
    if not bool(xp.all(xp.isfinite(lam))):  # (λ = inf made every coordinate the tropical zero)
        raise ToleranceError("lam must be finite")
    try:  # (a λ of another shape was NumPy's raw broadcast ValueError)
        np.broadcast_shapes(tuple(int(s) for s in lam.shape), tuple(int(s) for s in x.shape))
    except ValueError:
        raise ShapeError(f"lam of shape {tuple(lam.shape)} does not broadcast to x {tuple(x.shape)}") from None
    return xp.log1p(xp.where(x > 0, x, xp.zeros_like(x))) - lam


def dequantize(z: Any):
    """Back to real numbers: ``exp(z) − 1`` (inverse of :func:`tropicalize` on ``x ≥ 0``, λ = 0).

    Examples
    --------
    >>> import numpy as np
    >>> dequantize(np.array([0.0, -np.inf]))
    array([ 0., -1.])
    """
    xp = prepare(("z", z))
    with np.errstate(over="ignore"):
        out = xp.expm1(z)
    # e^z − 1 of a finite z beyond log(max) (709.8 in float64, 88.7 in float32) is no float: inf was returned,
    # e.g. by the torch wrapper for inputs near the float maximum
    if bool(xp.any(xp.isinf(out) & xp.isfinite(z))):
        raise FloatOverflowError(f"dequantize: exp(z) - 1 exceeds the {z.dtype} range (z up to {max_abs(xp, z):.4g}); "
                                 "rescale the input")
    return out


def tropical_linear(x: Any, W: Any, *, semiring: Semiring | str | None = None):
    """Tropical linear map ``y_o = ⊕_l (W_ol ⊗ x_l)`` (``max_l(W_ol + x_l)`` in max-plus) on the last axis.

    ``x`` has shape ``(..., d_in)``, ``W`` shape ``(d_out, d_in)``.  Tropical linear maps are 1-Lipschitz for
    ``d_H`` (they never expand Hilbert distances).

    Examples
    --------
    >>> import numpy as np
    >>> tropical_linear(np.array([0.0, 2.0]), np.array([[0.0, -1.0], [3.0, -np.inf]]))
    array([1., 3.])
    """
    S_ = get_semiring(semiring if semiring is not None else MaxPlus)
    prepare(("x", x), ("W", W))
    S_.validate(x, "x")  # (+inf in max-plus met W's -inf and gave a silent NaN)
    S_.validate(W, "W")
    if x.ndim < 1:  # (a 0-d x was a raw IndexError)
        raise ShapeError(f"x must have shape (..., d_in); got a 0-d array")
    if W.ndim != 2 or W.shape[1] != x.shape[-1]:
        raise ShapeError(f"W must have shape (d_out, d_in={x.shape[-1]}); got {tuple(W.shape)}")
    return S_.sum(S_.mul(x[..., None, :], W), axis=-1)  # (⊗ is + only in the tropical and log semirings)


def tropical_attention_reference(q, k, v, *, sense: int = 1, mask=None):
    """Loop reference for 2-D NumPy inputs (``sense=+1`` max-plus, ``-1`` min-plus; tests only)."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    n, m, dv = q.shape[0], k.shape[0], v.shape[1]
    zero = -math.inf if sense == 1 else math.inf
    pick = max if sense == 1 else min
    out = np.full((n, dv), zero)
    for i in range(n):
        for j in range(m):
            if mask is not None and not bool(np.broadcast_to(mask, (n, m))[i, j]):
                continue
            diffs = [q[i, t] - k[j, t] for t in range(q.shape[1])]
            dh = max(diffs) - min(diffs)
            s = -dh if sense == 1 else dh
            for c in range(dv):
                out[i, c] = pick(out[i, c], s + v[j, c])
    return out
