"""2-D slices of a head's tropical hypersurface through its real queries.

The scores of a query ``q`` against keys ``k_j`` form the max-plus polynomial ``max_j (q·k_j)·scale``
(a tropical polynomial with one monomial per key).  Restricting ``q`` to an affine plane
``q = c + a·u + b·w`` gives a tropical polynomial in two variables,
``max_j (γ_j + a·α_j + b·β_j)``; its tropical curve (where the maximum is attained twice) cuts the
plane into convex polygons, the argmax cells of the keys.  :func:`plane_slice` computes those
polygons from the scores themselves (no sampling grid), by intersecting half-planes in float64 (clipping a
window by ``s_j ≥ s_i`` for every ``i``), so ties and repeated keys are handled (a repeated key gets an
empty cell; its twin keeps the region); cells below ``min_area`` of the window (slivers of rounding) are
left out.

The plane used by :func:`query_plane` passes through the mean query and spans the two leading
principal directions of the queries, in units of their standard deviation, so the real queries
(projected into it) fill the window.

Examples
--------
>>> import numpy as np
>>> keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
>>> cells = plane_slice(keys, np.zeros(2), np.eye(2)[0], np.eye(2)[1], window=1.0)
>>> sorted(c.key for c in cells)                   # every key owns a sector of the window
[0, 1, 2]
>>> round(sum(c.area for c in cells), 12)           # the cells tile the window [-1, 1]^2
4.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._repr import compact_repr
from ..errors import EmptyInputError, ShapeError

__all__ = ["SliceCell", "plane_slice", "query_plane"]


@dataclass(frozen=True)
class SliceCell:
    """The argmax cell of key ``key`` in the plane: polygon ``vertices`` (counter-clockwise) and its area."""

    key: int
    vertices: np.ndarray
    area: float
    __repr__ = compact_repr


def _clip(poly: np.ndarray, alpha: float, beta: np.ndarray) -> np.ndarray:
    """Keep the part of the convex polygon where ``alpha + beta·x ≥ 0`` (Sutherland–Hodgman, one edge)."""
    f = alpha + poly @ beta
    if np.all(f >= 0):
        return poly
    if np.all(f <= 0):
        return poly[:0]
    out = []
    m = len(poly)
    for i in range(m):
        p, fp = poly[i], f[i]
        qv, fq = poly[(i + 1) % m], f[(i + 1) % m]
        if fp >= 0:
            out.append(p)
        if (fp > 0 > fq) or (fp < 0 < fq):
            t = fp / (fp - fq)
            out.append(p + t * (qv - p))
    return np.array(out) if out else poly[:0]


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def plane_slice(keys, center, u, w, window: float = 3.0, scale: float = 1.0, min_area: float = 1e-12):
    """Argmax cells of ``keys`` for queries ``center + a·u + b·w``, ``(a, b) ∈ [-window, window]²``.

    Parameters
    ----------
    keys : array (n, d)
    center, u, w : arrays (d,)
        The plane.
    scale
        Score scale (``1/√d`` in attention; positive, so it does not change the cells).

    Returns
    -------
    list of SliceCell
        Cells of positive area, in key order.

    Examples
    --------
    >>> import numpy as np
    >>> k = np.array([[1.0, 0.0], [1.0, 0.0]])                # a repeated key: one cell, the first wins
    >>> [c.key for c in plane_slice(k, np.zeros(2), np.eye(2)[0], np.eye(2)[1])]
    [0]
    """
    K = np.asarray(keys, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] == 0:
        raise EmptyInputError(f"keys must be a non-empty (n, d) array, got shape {K.shape}")
    c, u, w = (np.asarray(x, dtype=np.float64) for x in (center, u, w))
    if not (c.shape == u.shape == w.shape == (K.shape[1],)):
        raise ShapeError(f"plane vectors must have shape ({K.shape[1]},), got {c.shape}, {u.shape}, {w.shape}")
    gamma, alpha, beta = scale * (K @ c), scale * (K @ u), scale * (K @ w)
    box = window * np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    order = np.argsort(-gamma, kind="stable")  # strongest competitors at the centre first: empty cells die fast
    cells = []
    for j in range(K.shape[0]):
        poly = box
        for i in order:
            if i == j:
                continue
            da, db, dg = alpha[j] - alpha[i], beta[j] - beta[i], gamma[j] - gamma[i]
            if da == 0 and db == 0 and dg == 0 and i < j:
                poly = poly[:0]  # identical score function: the lower index owns the cell (stated tie rule)
            else:
                poly = _clip(poly, dg, np.array([da, db]))
            if len(poly) < 3:
                break
        a = _area(poly) if len(poly) >= 3 else 0.0
        if a > min_area * (2 * window) ** 2:
            cells.append(SliceCell(j, poly, a))
    return cells


def query_plane(queries):
    """``(center, u, w, coords)``: the plane through the mean query along its two leading principal
    directions (scaled by their standard deviations) and the queries' coordinates in it.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.random.default_rng(0).normal(size=(50, 4))
    >>> c, u, w, xy = query_plane(q)
    >>> xy.shape, bool(np.allclose(xy.std(0), 1.0))
    ((50, 2), True)
    """
    Q = np.asarray(queries, dtype=np.float64)
    if Q.ndim != 2 or Q.shape[0] == 0:
        raise EmptyInputError(f"queries must be a non-empty (n, d) array, got shape {Q.shape}")
    center = Q.mean(0)
    X = Q - center
    if Q.shape[0] < 2 or not np.any(X):
        e = np.eye(Q.shape[1])
        return center, e[0], e[min(1, Q.shape[1] - 1)], np.zeros((Q.shape[0], 2))
    _, s, vt = np.linalg.svd(X, full_matrices=False)
    sd = s / np.sqrt(Q.shape[0])
    sd = np.where(sd > 0, sd, 1.0)
    u = vt[0] * sd[0]
    w = vt[1] * sd[1] if vt.shape[0] > 1 else np.zeros_like(u)
    coords = np.stack([X @ vt[0] / sd[0], (X @ vt[1] / sd[1]) if vt.shape[0] > 1 else np.zeros(len(X))], 1)
    return center, u, w, coords
