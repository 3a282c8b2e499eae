"""Force-directed (vector-force) attention: scores from the force between an emitter and a receptor.

Source: ``sine2pi/Force-Directed-Transformer`` (``RelativeForce.py`` and README).  With emitter and receptor
projections ``E = xW_eᵀ + b_e`` and ``R = xW_rᵀ + b_r`` (full width ``D``, shared by all heads)

.. math::

   F_{ij} = E_i - R_j,\\quad r_{ij} = \\lVert F_{ij}\\rVert,\\quad u_{ij} = F_{ij}/(r_{ij} + 10^{-8}),\\qquad
   s^h_{ij} = (u_{ij}\\cdot\\mu_h)\\,e^{-r_{ij}},\\qquad A^h = \\operatorname{softmax}_j(s^h),\\quad
   \\text{out}^h = A^h V_h

with a learnable direction ``μ_h ∈ R^D`` per head.  The source also computes ``q``/``k`` projections
that it never uses; they are omitted here.

**Computed without the n×n×D tensor.**  ``F_ij·μ_h = E_i·μ_h − R_j·μ_h`` is a rank-2 matrix and
``r_ij² = ‖E_i‖² + ‖R_j‖² − 2E_i·R_j`` one GEMM, so the cost is ``O(n²(D + H))`` time and ``O(n² H)``
memory, against ``O(n² D)`` memory for the literal formula.

**Bounded scores.**  ``|s^h_ij| ≤ ‖μ_h‖`` (Cauchy–Schwarz, ``|u| < 1``, ``e^{-r} ≤ 1``), so every attention
row is within a factor ``e^{2‖μ_h‖}`` of uniform.  Where the Gram formula loses accuracy (``r → 0`` with
large ``‖E‖``) the computed score is clipped to this interval, and ``r`` uses a square root whose
gradient is 0 (not ``inf``) at 0; outputs and gradients stay finite.

**Geometric picture.**  Token ``i`` emits at ``E_i`` and token ``j`` receives at ``R_j``.  Head ``h`` favours the
keys whose displacement ``E_i − R_j`` points along ``μ_h`` and lies close by: the score is the cosine-like
alignment of the displacement with ``μ_h``, damped by ``e^{-r}``.

Where the source is vague: the README's ``calculate_forces`` (charge ``c_ij = E_i·R_j``, Coulomb-like
force ``u_ij c_ij/(r_ij^p + ε)``) is a plotting helper, provided here as :func:`force_field`; the value of
``ε`` is not given (default ``1e-3`` here; the force magnitude is then at most ``|c_ij|/ε``, because
``|u_ij| ≤ min(1, r_ij/10^{-8})``).
The README's "hybrid force-topological" variant is marked "not working yet" by its author and is not
implemented.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..._array import to_numpy
from ..._repr import compact_repr
from ...errors import FloatOverflowError, ShapeError, ToleranceError
from ...tropical._args import check_real
from ._common import (check_batch, check_finite, common_float, masked_softmax, prepare, safe_sqrt,
                      scaled_sq_distances, times_pow2)

__all__ = ["force_attention", "force_scores", "force_field", "ForceField", "force_attention_reference"]

_DELTA = 1e-8


def force_scores(E: Any, R: Any, mu: Any):
    """The per-head force scores ``s^h_ij = (u_ij·μ_h) e^{-r_ij}`` of shape ``(..., H, n_q, n_k)``.

    Parameters
    ----------
    E : array ``(..., n_q, D)``
        Emitter projections of the queries.
    R : array ``(..., n_k, D)``
        Receptor projections of the keys.
    mu : array ``(H, D)``
        One direction per head.

    Examples
    --------
    >>> import numpy as np
    >>> E = np.array([[1.0, 0.0]]); R = np.array([[0.0, 0.0], [1.0, 0.0]]); mu = np.array([[2.0, 0.0]])
    >>> np.round(force_scores(E, R, mu), 6)   # F = (1, 0): 2·e^{-1}; F = 0: 0
    array([[[0.735759, 0.      ]]])
    """
    xp = prepare(("E", E), ("R", R), ("mu", mu))
    E, R, mu = common_float(xp, E, R, mu)
    if E.ndim < 2 or R.ndim < 2 or E.shape[-1] != R.shape[-1]:
        raise ShapeError(f"E and R must have shape (..., n, D) with the same D; got {tuple(E.shape)}, {tuple(R.shape)}")
    if mu.ndim != 2 or mu.shape[-1] != E.shape[-1]:
        raise ShapeError(f"mu must have shape (H, D) with D = {E.shape[-1]}; got {tuple(mu.shape)}")
    check_batch(("E", E), ("R", R))
    # (an infinite entry gave NaN scores: inf - inf; the largest |E| and |R| serve the distances' scaling)
    mE, mR, _ = (check_finite(xp, a, name) for name, a in (("E", E), ("R", R), ("mu", mu)))
    # E, R divided by 2^e when their distances could overflow (float64 near 1e154, float16 near 100: the scores
    # were NaN or garbage); u = F/(r + δ) and e^{-r} are evaluated on the scaled points, exactly
    d2, e = scaled_sq_distances(xp, E, R, mE, mR)
    if e:
        E, R = times_pow2(xp, E, -e), times_pow2(xp, R, -e)
    mt = xp.matrix_transpose(mu)
    Em = xp.matrix_transpose(E @ mt)  # (..., H, n_q)
    Rm = xp.matrix_transpose(R @ mt)  # (..., H, n_k)
    r = safe_sqrt(xp, d2)[..., None, :, :]  # (..., 1, n_q, n_k), 2^-e times the distance
    num = Em[..., :, :, None] - Rm[..., :, None, :]
    s = _over_r_delta(xp, num, r, e) * xp.exp(-times_pow2(xp, r, e))
    with np.errstate(over="ignore"):  # (‖μ‖ of a μ near the float maximum is inf: no clipping, as it should)
        bound = xp.sqrt(xp.sum(mu * mu, axis=-1))[:, None, None]  # (H, 1, 1)
    return xp.minimum(xp.maximum(s, -bound), bound)


def _over_r_delta(xp, num, r, e: int):
    """``num/(r + δ·2^-e)``: ``u·μ`` from ``num = F·μ`` and the distance ``r``, both scaled by ``2^-e``.

    When ``δ·2^-e`` is below the dtype's smallest number (float16: ``δ = 1e-8`` always; float32 and bfloat16 for
    points near 1e38) ``r + δ`` was 0 at coincident points and ``0/0`` a NaN score.  There ``r = 0`` is taken as
    ``F = 0``, whose exact ``u = 0/δ = 0`` (as :func:`gravitational_logits` takes ``log ε`` at ``d² = 0``);
    elsewhere ``δ`` is below half an ulp of ``r`` and ``r + δ = r`` in the dtype.
    """
    delta = math.ldexp(_DELTA, -e)
    if float(xp.asarray(delta, dtype=r.dtype)) > 0:
        return num / (r + delta)  # (the common case: one pass)
    pos = r > 0
    return xp.where(pos, num / xp.where(pos, r, xp.ones_like(r)), xp.zeros_like(num))


def force_attention(E: Any, R: Any, v: Any, mu: Any, *, mask: Any = None, return_weights: bool = False):
    """Force-directed attention ``out^h = softmax_j(s^h) V_h`` (see the module docstring for ``s``).

    Parameters
    ----------
    E, R : arrays ``(..., n_q, D)`` and ``(..., n_k, D)``
        Emitter and receptor projections (shared by the heads).
    v : array ``(..., H, n_k, d_v)``
        Per-head values.
    mu : array ``(H, D)``
        Learnable head directions.
    mask : bool array broadcastable to ``(..., H, n_q, n_k)``, optional
        ``True`` where attending is allowed.
    return_weights : bool

    Returns
    -------
    out : array ``(..., H, n_q, d_v)`` (and the weights ``(..., H, n_q, n_k)`` if asked)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> E, R = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    >>> v, mu = rng.normal(size=(2, 4, 5)), rng.normal(size=(2, 3))
    >>> out, A = force_attention(E, R, v, mu, return_weights=True)
    >>> out.shape, np.allclose(A.sum(-1), 1.0)
    ((2, 4, 5), True)
    """
    xp = prepare(("v", v))
    s = force_scores(E, R, mu)
    if v.ndim < 3 or v.shape[-3] != mu.shape[0] or v.shape[-2] != R.shape[-2]:
        raise ShapeError(f"v must have shape (..., H={mu.shape[0]}, n_k={R.shape[-2]}, d_v); got {tuple(v.shape)}")
    check_batch(("scores", s), ("v", v))  # (batch axes that do not broadcast were NumPy's raw ValueError)
    check_finite(xp, v, "v")  # (an infinite value gave NaN rows: 0·inf)
    A = masked_softmax(xp, s, mask)
    s_, v = common_float(xp, A, v)  # (float32 values with float64 E, R: torch's raw "expected the same dtype")
    out = s_ @ v
    return (out, A) if return_weights else out


@dataclass(frozen=True)
class ForceField:
    """The force-vector field between emitters and receptors (a diagnostic for plots).

    Attributes
    ----------
    direction : ndarray ``(n_q, n_k, D)``
        ``u_ij = F_ij/(r_ij + 1e-8)`` (length ``< 1``; 0 where ``E_i = R_j``).
    distance : ndarray ``(n_q, n_k)``
        ``r_ij = ‖E_i − R_j‖``.
    charge : ndarray ``(n_q, n_k)``
        ``c_ij = E_i·R_j``.
    force : ndarray ``(n_q, n_k, D)``
        ``u_ij c_ij/(r_ij^p + ε)``.
    magnitude : ndarray ``(n_q, n_k)``
        ``‖force_ij‖``.
    bound : float
        ``max|c|/ε``: a rigorous upper bound of ``magnitude`` (``|u| ≤ 1`` and ``r^p + ε ≥ ε``; nearly attained
        when ``10^{-8} ≪ r ≪ ε^{1/p}``).
    """

    direction: np.ndarray
    distance: np.ndarray
    charge: np.ndarray
    force: np.ndarray
    magnitude: np.ndarray
    bound: float
    __repr__ = compact_repr


def force_field(E: Any, R: Any, *, p: float = 2.0, eps: float = 1e-3) -> ForceField:
    """Force vectors ``u_ij·c_ij/(r_ij^p + ε)`` between emitters ``E`` (n_q×D) and receptors ``R`` (n_k×D).

    This is the README's ``calculate_forces`` (Coulomb-like for ``p = 2``).  It materialises the
    ``n_q × n_k × D`` field, so it is meant for plotting small examples, on the CPU (NumPy output).

    Examples
    --------
    >>> import numpy as np
    >>> f = force_field(np.array([[1.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 2.0]]))
    >>> f.distance.round(4), f.magnitude.round(4), f.bound   # charges E·R are 0 here
    (array([[1.    , 2.2361]]), array([[0., 0.]]), 0.0)
    """
    check_real(eps, "eps", minimum=0, open_min=True)
    check_real(p, "p", minimum=0, open_min=True)
    if not (eps > 0) or math.isinf(eps):
        raise ToleranceError(f"eps must be positive and finite, got {eps}")
    if math.isnan(p) or p <= 0:
        raise ToleranceError(f"p must be positive, got {p}")
    xp = prepare(("E", E), ("R", R))
    check_finite(xp, E, "E")  # (an infinite point gave NaN forces: inf/inf)
    check_finite(xp, R, "R")
    E = np.asarray(to_numpy(E), dtype=float)
    R = np.asarray(to_numpy(R), dtype=float)
    if E.ndim != 2 or R.ndim != 2 or E.shape[1] != R.shape[1]:
        raise ShapeError(f"E and R must be (n, D) matrices with the same D; got {E.shape}, {R.shape}")
    with np.errstate(over="ignore", invalid="ignore"):  # (r^p = inf is fine: the force is 0)
        F = E[:, None, :] - R[None, :, :]
        r = np.linalg.norm(F, axis=-1)
        u = F / (r[..., None] + _DELTA)
        c = E @ R.T
        force = u * (c / (r**p + eps))[..., None]
        mag = np.linalg.norm(force, axis=-1)
        bound = float(np.max(np.abs(c))) / eps if c.size else 0.0
    # points this large have distances or charges E·R beyond the float range (NaN directions, inf charges, with
    # NumPy warnings): no float result exists
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c)) and np.all(np.isfinite(force)) and math.isfinite(bound)):
        raise FloatOverflowError("force_field: the distances or charges E·R of these points exceed the float range; "
                                 "rescale E and R")
    return ForceField(u, r, c, force, mag, bound)


def force_attention_reference(E, R, v, mu, *, mask=None):
    """Loop reference of :func:`force_attention` for 2-D ``E``, ``R`` (NumPy; forms every ``F_ij``)."""
    E, R, v, mu = (np.asarray(a, dtype=float) for a in (E, R, v, mu))
    H, n, m = mu.shape[0], E.shape[0], R.shape[0]
    out = np.zeros((H, n, v.shape[-1]))
    A = np.zeros((H, n, m))
    for h in range(H):
        for i in range(n):
            logits = []
            for j in range(m):
                F = E[i] - R[j]
                r = math.sqrt(float(F @ F))
                u = F / (r + _DELTA)
                ok = True if mask is None else bool(np.broadcast_to(mask, (H, n, m))[h, i, j])
                logits.append(float(u @ mu[h]) * math.exp(-r) if ok else -math.inf)
            top = max(logits)
            if top == -math.inf:
                continue
            w = [math.exp(x - top) for x in logits]
            for j in range(m):
                A[h, i, j] = w[j] / sum(w)
                out[h, i] += A[h, i, j] * v[h, j]
    return out, A
