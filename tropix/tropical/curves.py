"""Tropical plane curves: complement regions, pictures and stable intersection.

* :func:`regions`: the connected components of ``R^2 \\ V(p)`` clipped to a box, as shapely polygons,
  each labelled by the monomial that dominates on it (one region per vertex of the dual subdivision).
* :func:`plot_curve`: draws the curve (edges with their weights) with matplotlib, optionally with
  its regions and its dual subdivision.
* :func:`stable_intersection`: ``lim_{ε→0} C1 ∩ (C2 + ε v)`` with intersection multiplicities
  ``w1·w2·|det(u1, u2)|``, computed exactly; the total equals the mixed area of the Newton polygons
  (tropical Bernstein/Bézout: ``d1·d2`` for curves of degrees ``d1, d2`` with full Newton triangles).

Examples
--------
>>> from tropix.tropical import TropicalPolynomial
>>> from tropix.tropical.curves import stable_intersection
>>> L1 = TropicalPolynomial.parse("max(0, x, y)").hypersurface()
>>> L2 = TropicalPolynomial.parse("max(0, x, y)").hypersurface()      # the same line: no transversality
>>> stable_intersection(L1, L2).points                                 # still one point, of multiplicity 1
(((0, 0), 1),)
>>> Q = TropicalPolynomial.parse("max(0, x, y, 2*x - 1, x + y + 1, 2*y - 1)").hypersurface()
>>> stable_intersection(L1, Q).total   # Bézout: 1 * 2
2
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .._repr import compact_repr, summary
from ..errors import ArgumentTypeError, DomainError, ShapeError
from ._args import check_real

__all__ = ["Region", "regions", "plot_curve", "StableIntersection", "stable_intersection"]


def _check_box(box) -> tuple:
    """``(xmin, ymin, xmax, ymax)``: four finite reals with ``xmin < xmax`` and ``ymin < ymax``."""
    if isinstance(box, (str, bytes)) or not isinstance(box, (tuple, list, np.ndarray)) or len(box) != 4:
        raise ArgumentTypeError(f"box must be four numbers (xmin, ymin, xmax, ymax), got {summary(box)}")
    b = tuple(float(check_real(v, "every box coordinate")) for v in box)
    if not (b[0] < b[2] and b[1] < b[3]):
        raise ShapeError(f"box must have xmin < xmax and ymin < ymax, got {b}")
    return b


def _curve(C):
    from .hypersurface import TropicalHypersurface
    from .polynomial import TropicalPolynomial

    if isinstance(C, TropicalPolynomial):
        C = C.hypersurface()
    if not isinstance(C, TropicalHypersurface):
        raise ArgumentTypeError(f"expected a TropicalHypersurface or TropicalPolynomial, got {type(C).__name__}")
    if C.ambient_dim != 2:
        raise ShapeError(f"plane curves have 2 variables; this hypersurface lives in R^{C.ambient_dim}")
    return C


# ---------------------------------------------------------------------------------------------------
# regions


@dataclass(frozen=True)
class Region:
    """A complement region of a plane curve, clipped to a box.

    Attributes
    ----------
    term : int
        Index of the dominating term (row of the polynomial's exponents).
    label : tuple
        Its exponent (the monomial that dominates on the region).
    polygon : shapely.geometry.Polygon
        The region intersected with the box (floating point).
    """

    term: int
    label: tuple
    polygon: Any
    __repr__ = compact_repr


def default_box(C) -> tuple:
    """``(xmin, ymin, xmax, ymax)`` containing every vertex with a margin (a unit box around the origin if none)."""
    C = _curve(C)
    V = np.array([[float(v) for v in x] for x in C._xv], dtype=np.float64).reshape(-1, 2)
    if V.size == 0:
        return (-1.0, -1.0, 1.0, 1.0)
    lo, hi = V.min(axis=0), V.max(axis=0)
    # (and never below a millionth of the coordinates: far from the origin, 1 + 1e17 is 1e17, a box of width 0)
    m = max(1.0, 0.25 * float(np.max(hi - lo)), 1e-6 * float(np.max(np.abs(V))))
    return (float(lo[0] - m), float(lo[1] - m), float(hi[0] + m), float(hi[1] + m))


def _clip(poly: list, a: tuple, b: float) -> list:
    """Sutherland-Hodgman: keep the part of a convex polygon with a·x >= b."""
    out = []
    n = len(poly)
    for i in range(n):
        P, Q = poly[i], poly[(i + 1) % n]
        fp = a[0] * P[0] + a[1] * P[1] - b
        fq = a[0] * Q[0] + a[1] * Q[1] - b
        if fp >= 0:
            out.append(P)
        if (fp >= 0) != (fq >= 0):
            t = fp / (fp - fq)
            out.append((P[0] + t * (Q[0] - P[0]), P[1] + t * (Q[1] - P[1])))
    return out


def regions(C, *, box: tuple | None = None) -> tuple:
    """The complement regions of a plane curve inside ``box``, labelled by their dominating monomial.

    Parameters
    ----------
    C : TropicalHypersurface or TropicalPolynomial (two variables)
    box : (xmin, ymin, xmax, ymax), optional
        Default: :func:`default_box`.

    Returns
    -------
    tuple of Region
        One region per vertex of the dual subdivision whose region meets the box in positive area.

    Examples
    --------
    >>> from tropix.tropical import TropicalPolynomial
    >>> R = regions(TropicalPolynomial.parse("max(0, x, y)"), box=(-1, -1, 1, 1))
    >>> [(r.label, r.polygon.area) for r in R]
    [((0, 0), 1.0), ((0, 1), 1.5), ((1, 0), 1.5)]
    """
    import shapely.geometry

    C = _curve(C)
    box = default_box(C) if box is None else _check_box(box)
    p = C.polynomial
    E = [tuple(r) for r in p.exponents.tolist()]
    c = [float(v) for v in p.coefficients.tolist()]
    sub = C.subdivision
    sense = p.semiring.sense
    nbrs: dict[int, set] = {v: set() for v in sub.vertices}
    for e in sub.faces(1):
        for v in e:
            if v in nbrs:
                nbrs[v] |= set(e) - {v}
    out = []
    for a in sub.vertices:
        poly = [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])]
        for b in sorted(nbrs[a]):
            # sense*(c_a + a·x) >= sense*(c_b + b·x)
            coef = (sense * (float(E[a][0]) - float(E[b][0])), sense * (float(E[a][1]) - float(E[b][1])))
            poly = _clip(poly, coef, sense * (c[b] - c[a]))
            if len(poly) < 3:
                break
        if len(poly) >= 3:
            P = shapely.geometry.Polygon(poly)
            if P.area > 0:
                out.append(Region(a, E[a], P))
    return tuple(out)


# ---------------------------------------------------------------------------------------------------
# plotting


def _segments(C, box):
    """Drawable pieces (p, q, weight) of the maximal cells, rays and lines clipped to the box."""
    X = [tuple(float(v) for v in x) for x in C._xv]
    out = []
    L = [tuple(float(v) for v in l) for l in C.lineality]
    for cell in C.maximal_cells:
        w = cell.weight
        if L:  # a line: vertex + lineality
            p = X[cell.vertices[0]]
            out.append((_to_box(p, tuple(-v for v in L[0]), box), _to_box(p, L[0], box), w))
        elif cell.rays:
            p = X[cell.vertices[0]]
            out.append((p, _to_box(p, tuple(float(v) for v in C.rays[cell.rays[0]]), box), w))
        else:
            out.append((X[cell.vertices[0]], X[cell.vertices[1]], w))
    return out


def _to_box(p, d, box):
    """The point where the ray p + t d (t >= 0) leaves the box (p itself if it starts outside)."""
    ts = []
    for k, (lo, hi) in enumerate(((box[0], box[2]), (box[1], box[3]))):
        if d[k] > 0:
            ts.append((hi - p[k]) / d[k])
        elif d[k] < 0:
            ts.append((lo - p[k]) / d[k])
    t = max(0.0, min(ts)) if ts else 0.0
    return (p[0] + t * d[0], p[1] + t * d[1])


def plot_curve(C, ax=None, *, box: tuple | None = None, show_regions: bool = False, show_weights: bool = True,
               color: str = "C0", linewidth: float = 2.0):
    """Draw a tropical plane curve with matplotlib; edges of weight > 1 are labelled with their weight.

    Parameters
    ----------
    C : TropicalHypersurface or TropicalPolynomial (two variables)
    ax : matplotlib Axes, optional
        Drawn into a new figure if omitted.
    box : (xmin, ymin, xmax, ymax), optional
    show_regions : bool
        Shade the complement regions and label each with its dominating monomial.
    show_weights : bool

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from tropix.tropical import TropicalPolynomial
    >>> ax = plot_curve(TropicalPolynomial.parse("max(0, x, y, 2*x - 1, x + y + 1, 2*y - 1)"))
    >>> len(ax.lines)   # 3 bounded edges + 6 rays (smooth conic)
    9
    """
    import matplotlib.pyplot as plt

    C = _curve(C)
    box = default_box(C) if box is None else _check_box(box)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    elif not (hasattr(ax, "plot") and hasattr(ax, "set_xlim")):  # (was a raw AttributeError while drawing)
        raise ArgumentTypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    if show_regions:
        names = C.polynomial.variables
        for i, r in enumerate(regions(C, box=box)):
            xs, ys = r.polygon.exterior.xy
            ax.fill(xs, ys, alpha=0.15, color=f"C{(i % 9) + 1}", linewidth=0)
            pt = r.polygon.representative_point()
            ax.text(pt.x, pt.y, _monomial(r.label, names), ha="center", va="center", fontsize=8)
    for p, q, w in _segments(C, box):
        ax.plot([p[0], q[0]], [p[1], q[1]], color=color, linewidth=linewidth * (1 if not w or w == 1 else 1.6))
        if show_weights and w and w > 1:
            ax.text((p[0] + q[0]) / 2, (p[1] + q[1]) / 2, str(w), color="C3", fontsize=9, fontweight="bold")
    ax.set_xlim(box[0], box[2])
    ax.set_ylim(box[1], box[3])
    ax.set_aspect("equal")
    return ax


def _monomial(e, names) -> str:
    parts = []
    for v, nm in zip(e, names):
        if v == 0:
            continue
        parts.append(nm if v == 1 else f"{nm}^{v}")
    return "".join(parts) or "1"


def plot_subdivision(C, ax=None, *, color: str = "k"):
    """Draw the dual regular subdivision of a plane curve's polynomial (edges of all cells).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from tropix.tropical import TropicalPolynomial
    >>> ax = plot_subdivision(TropicalPolynomial.parse("max(0, x, y)"))
    >>> len(ax.lines)
    3
    """
    import matplotlib.pyplot as plt

    C = _curve(C)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    elif not (hasattr(ax, "plot") and hasattr(ax, "set_xlim")):  # (was a raw AttributeError while drawing)
        raise ArgumentTypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    E = [tuple(float(v) for v in r) for r in C.polynomial.exponents.tolist()]
    for e in C.subdivision.faces(1):
        pts = sorted(E[i] for i in e)
        ax.plot([pts[0][0], pts[-1][0]], [pts[0][1], pts[-1][1]], color=color, linewidth=1)
    xs, ys = zip(*E)
    ax.scatter(xs, ys, s=12, color=color, zorder=3)
    ax.set_aspect("equal")
    return ax


# ---------------------------------------------------------------------------------------------------
# stable intersection


@dataclass(frozen=True)
class StableIntersection:
    """The stable intersection of two plane curves.

    Attributes
    ----------
    points : tuple of (point, multiplicity)
        Exact points (``int``/``Fraction`` coordinates) with their intersection multiplicities, sorted.
    direction : tuple
        The generic perturbation direction ``v`` used (the result does not depend on it).
    """

    points: tuple
    direction: tuple
    __repr__ = compact_repr

    @property
    def total(self) -> int:
        """Sum of the multiplicities (the mixed area of the Newton polygons)."""
        return sum(m for _, m in self.points)


def _edge_list(C):
    """(start, direction u, lo, hi, weight) with the edge = start + s·u, s in [lo, hi] (hi may be inf)."""
    X = [tuple(Fraction(v) for v in x) for x in C._xv]
    out = []
    inf = math.inf
    for cell in C.maximal_cells:
        w = cell.weight
        if w is None:
            raise DomainError("stable intersection needs integer exponents (weights)")
        if C.lineality:
            out.append((X[cell.vertices[0]], tuple(C.lineality[0]), -inf, inf, w))
        elif cell.rays:
            out.append((X[cell.vertices[0]], tuple(C.rays[cell.rays[0]]), 0, inf, w))
        else:
            p, q = X[cell.vertices[0]], X[cell.vertices[1]]
            d = (q[0] - p[0], q[1] - p[1])
            from ._hull import primitive

            u = primitive(d)
            L = (d[1] / u[1]) if u[0] == 0 else (d[0] / u[0])
            out.append((p, u, 0, L, w))
    return out


def _inside(s0, s1, lo, hi) -> bool:
    """s0 + ε s1 in the open interval (lo, hi) for every small ε > 0."""
    ok_lo = lo == -math.inf or s0 > lo or (s0 == lo and s1 > 0)
    ok_hi = hi == math.inf or s0 < hi or (s0 == hi and s1 < 0)
    return ok_lo and ok_hi


def stable_intersection(C1, C2, *, direction: tuple | None = None) -> StableIntersection:
    """Stable intersection of two tropical plane curves with multiplicities, exactly.

    Both curves must use the same semiring and integer exponents.  The points are the limits as
    ``ε → 0⁺`` of ``C1 ∩ (C2 + ε v)`` for a direction ``v`` not parallel to any edge (chosen
    automatically); the multiplicity of a transversal crossing of edges with weights ``w1, w2`` and
    primitive directions ``u1, u2`` is ``w1·w2·|det(u1, u2)|``.

    Examples
    --------
    >>> from tropix.tropical import TropicalPolynomial
    >>> A = TropicalPolynomial.parse("max(0, x, y)")
    >>> B = TropicalPolynomial.parse("max(1, x, y)")        # the line moved to (1, 1): rays overlap
    >>> stable_intersection(A, B).points                     # the stable point is B's vertex
    (((1, 1), 1),)
    """
    from .semiring import check_same_semiring

    C1, C2 = _curve(C1), _curve(C2)
    check_same_semiring(C1.polynomial.semiring, C2.polynomial.semiring)
    v1, v2 = C1.polynomial.variables, C2.polynomial.variables
    if tuple(v2) == tuple(v1)[::-1] and v1 != v2:  # the same plane written (y, x): C2's coordinates swapped
        from .polynomial import TropicalPolynomial

        p2 = C2.polynomial
        E = np.asarray(p2.exponents)[:, ::-1]
        C2 = _curve(TropicalPolynomial.from_arrays(E, p2.coefficients, semiring=p2.semiring, variables=v1))
    e1, e2 = _edge_list(C1), _edge_list(C2)
    dirs = {e[1] for e in e1} | {e[1] for e in e2}
    if direction is None:
        for r in (Fraction(1, 7919), Fraction(2, 3), Fraction(5, 104729), Fraction(-3, 17)):
            v = (Fraction(1), r)
            if all(u[0] * v[1] - u[1] * v[0] != 0 for u in dirs):
                break
        else:  # pragma: no cover - finitely many bad directions, the list above avoids them in practice
            raise ShapeError("could not find a generic perturbation direction")
    else:
        if isinstance(direction, (str, bytes)) or not isinstance(direction, (tuple, list, np.ndarray)) \
                or len(direction) != 2:
            raise ArgumentTypeError(f"direction must be two real numbers (a plane direction), got {summary(direction)}")
        v = tuple(Fraction(check_real(x, "every direction coordinate")) for x in direction)
        if v == (0, 0):
            raise ShapeError("direction must not be zero")
        if any(u[0] * v[1] - u[1] * v[0] == 0 for u in dirs):
            raise ShapeError(f"direction {direction} is parallel to an edge; pick a generic one")
    acc: dict = {}
    for ia, ib in _candidate_pairs(e1, e2):
        p1, u1, lo1, hi1, w1 = e1[ia]
        p2, u2, lo2, hi2, w2 = e2[ib]
        det = u1[0] * u2[1] - u1[1] * u2[0]
        if det == 0:
            continue
        D = -det  # det(u1, -u2)
        w = (p2[0] - p1[0], p2[1] - p1[1])
        # s = det(w, -u2)/D, t = det(u1, w)/D
        s0 = Fraction(-w[0] * u2[1] + w[1] * u2[0]) / D
        t0 = Fraction(u1[0] * w[1] - u1[1] * w[0]) / D
        if not (lo1 - 1 <= s0 <= hi1 + 1 and lo2 - 1 <= t0 <= hi2 + 1):
            continue
        s1 = Fraction(-v[0] * u2[1] + v[1] * u2[0]) / D
        t1 = Fraction(u1[0] * v[1] - u1[1] * v[0]) / D
        if _inside(s0, s1, lo1, hi1) and _inside(t0, t1, lo2, hi2):
            pt = tuple(_norm(p1[i] + s0 * u1[i]) for i in range(2))
            acc[pt] = acc.get(pt, 0) + w1 * w2 * abs(det)
    pts = tuple(sorted(acc.items()))
    return StableIntersection(pts, tuple(_norm(x) for x in v))


def _candidate_pairs(e1, e2):
    """Index pairs of edges that may meet: a floating-point filter with a generous margin (never drops a
    pair whose exact intersection parameters are inside both edges); the exact test follows."""
    def arr(es):
        P = np.array([[float(v) for v in e[0]] for e in es]).reshape(-1, 2)
        U = np.array([e[1] for e in es], dtype=np.float64).reshape(-1, 2)
        lo = np.array([float(e[2]) for e in es])
        hi = np.array([float(e[3]) for e in es])
        return P, U, lo, hi

    P1, U1, lo1, hi1 = arr(e1)
    P2, U2, lo2, hi2 = arr(e2)
    scale = 1.0 + max(float(np.max(np.abs(P1))) if P1.size else 0.0, float(np.max(np.abs(P2))) if P2.size else 0.0)
    tol = 1e-6 * scale
    det = U1[:, None, 0] * U2[None, :, 1] - U1[:, None, 1] * U2[None, :, 0]
    W0 = P2[None, :, 0] - P1[:, None, 0]
    W1 = P2[None, :, 1] - P1[:, None, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        s0 = (W0 * U2[None, :, 1] - W1 * U2[None, :, 0]) / det
        t0 = -(U1[:, None, 0] * W1 - U1[:, None, 1] * W0) / det
    ok = (det != 0) & (s0 >= lo1[:, None] - tol) & (s0 <= hi1[:, None] + tol)
    ok &= (t0 >= lo2[None, :] - tol) & (t0 <= hi2[None, :] + tol)
    return zip(*np.nonzero(ok))


def _norm(x):
    x = Fraction(x)
    return int(x) if x.denominator == 1 else x
