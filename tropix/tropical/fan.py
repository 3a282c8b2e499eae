"""Normal cones and normal fans of point configurations and of tropical polynomials (exact, low dimension).

For keys ``k_1, …, k_n ∈ R^d`` (the exponents of a tropical polynomial, or attention keys) and optional
biases ``b_j`` (the coefficients), the tropical polynomial ``f(q) = ⊕_j b_j ⊗ q^{k_j}`` is, in max-plus,
``max_j (b_j + q·k_j)``.  Term ``j`` is the unique maximiser on an open region of ``q``-space iff
``(k_j, b_j)`` is a vertex of the *upper* hull of the lifted points (a face whose outer normal ``(q, t)``
can have ``t > 0``); that region is the slice ``t = 1`` of the vertex's normal cone.  Without biases the
regions are the normal cones of ``conv(k_j)`` themselves.

Conventions.  Everything is stated for the regions of the semiring's ``⊕``:

* ``MaxPlus``: ``j`` wins at ``q`` iff ``b_j + q·k_j`` is the maximum.  The cones are *outer* normal cones.
* ``MinPlus``: ``j`` wins iff ``b_j + q·k_j`` is the minimum.  The cones are the *inner* normal cones,
  i.e. the negatives of the max-plus cones of the same data; the combinatorics (vertices, faces, adjacency)
  is identical.  polymake's tropical polynomials default to min; its ``normal_fan`` may use either normal
  direction, so compare cones up to this sign.

Algorithm (exact for every input).  Coordinates are converted to exact rationals (floats are dyadic
rationals) and scaled to integers.  The affine hull and its orthogonal complement (the *lineality space*
of every cone: lower-dimensional, collinear, coplanar and repeated points are normal input) are computed
exactly; the points are projected onto pivot coordinates of their affine hull, where the exact hull engine
of :mod:`tropix.tropical._hull` (shared with the subdivisions) finds the facets: qhull (SciPy) proposes a
triangulated boundary, each proposed facet is turned into an exact integer hyperplane, checked to support
all points, and the proposal as a whole is checked to be a closed pseudomanifold (every ridge in exactly
two simplices), which makes it the complete boundary.  If a check fails (floating-point trouble on nearly
degenerate input) exact gift wrapping finds the facets instead.

For many points in high dimension use :mod:`tropix.tropical.argmax_lp` instead (LPs, no full fan).

Examples
--------
>>> from tropix.tropical import normal_fan
>>> F = normal_fan([[0, 0], [1, 0], [0, 1], [1, 1], [0, 0]])      # unit square, a repeated corner
>>> F.vertices, F.f_vector
((0, 1, 2, 3), (4, 4, 1))
>>> F.cones[3].rays                                                 # outer normals at (1, 1)
((0, 1), (1, 0))
>>> F.cone_of([2, 1]).face, F.cone_of([1, 0]).face                 # argmax sets of q·k
(frozenset({3}), frozenset({1, 3}))
>>> sorted(F.graph.edges())
[(0, 1), (0, 2), (1, 3), (2, 3)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any, Iterable

import numpy as np

from .._array import asarray, check_no_nan, check_nonempty, is_array, to_numpy
from .._repr import compact_repr
from ..errors import ArgumentTypeError, ConventionError, DomainError, ShapeError
from . import _args, _hull
from ._hull import nullspace, primitive, rref
from ._args import check_index, check_option, check_array_dtype
from .semiring import Semiring, TropicalSemiring, require_tropical

__all__ = ["NormalCone", "NormalFan", "normal_fan", "normal_cone"]

# --------------------------------------------------------------------------------------- exact linear algebra
def _frac(v) -> Fraction:
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            raise ConventionError(
                "normal fans need finite coordinates; drop terms whose coefficient is the tropical zero"
            )
        return Fraction(float(v))
    if isinstance(v, (int, np.integer, np.bool_)):
        return Fraction(int(v))
    return Fraction(v)


def _is_int(v) -> bool:
    return _args._is_integer(v)  # (a 0-d integer tensor too: it was iterated, a raw TypeError)


def _to_int_rows(rows: list[list[Fraction]]) -> list[list[int]]:
    den = 1
    for r in rows:
        for v in r:
            den = den * v.denominator // math.gcd(den, v.denominator)
    return [[int(v * den) for v in r] for r in rows]


def _rank(rows: list) -> int:
    """Exact rank; fraction-free (Bareiss) elimination for integer rows."""
    if not rows:
        return 0
    if not all(isinstance(x, (int, np.integer)) for r in rows for x in r):
        return len(rref([[Fraction(x) for x in r] for r in rows])[1])
    M = [[int(x) for x in r] for r in rows]
    m, ncols = len(M), len(M[0])
    r, prev = 0, 1
    for c in range(ncols):
        p = next((i for i in range(r, m) if M[i][c] != 0), None)
        if p is None:
            continue
        M[r], M[p] = M[p], M[r]
        pr, pc = M[r], M[r][c]
        for i in range(r + 1, m):
            Mi, mic = M[i], M[i][c]
            M[i] = [(pc * a - mic * b) // prev for a, b in zip(Mi, pr)]
        prev = pc
        r += 1
        if r == m:
            break
    return r


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b))


# --------------------------------------------------------------------------------------- exact hull
@dataclass(frozen=True)
class _Hull:
    k: int  # affine dimension
    lineality: tuple  # integer basis of the orthogonal complement of the affine hull's direction space
    facets: tuple  # (frozenset of point indices, outer normal u in Z^D orthogonal to lineality)
    proj_normals: tuple  # the same normals in pivot coordinates (for ranks)


def _exact_hull(X: list[list[int]]) -> _Hull:
    D = len(X[0])
    diffs = [[Fraction(a - b) for a, b in zip(x, X[0])] for x in X[1:]]
    R, piv = rref(diffs) if diffs else ([], [])
    k = len(piv)
    lin = tuple(nullspace([list(r) for r in R], D))
    if k == 0:
        return _Hull(0, lin, (), ())
    Z = [[x[c] for c in piv] for x in X]  # affinely isomorphic projection onto pivot coordinates
    facets, pnormals = [], []
    for on, f in _hull.hull_facets(Z, propose=True):
        w = f[:k]
        u0 = [Fraction(0)] * D
        for c, wc in zip(piv, w):
            u0[c] = Fraction(wc)
        facets.append((on, _orth(u0, lin)))
        pnormals.append(tuple(w))
    return _Hull(k, lin, tuple(facets), tuple(pnormals))


def _orth(u0: list[Fraction], lin: tuple) -> tuple:
    """u0 minus its orthogonal projection on span(lin), as a primitive integer vector."""
    if not lin:
        return primitive(u0)
    L = [[Fraction(x) for x in l] for l in lin]
    r = len(L)
    G = [[_dot(L[a], L[b]) for b in range(r)] + [_dot(L[a], u0)] for a in range(r)]
    Rg, _ = rref(G)
    coef = [row[-1] for row in Rg]
    u = list(u0)
    for c, l in zip(coef, L):
        u = [a - c * b for a, b in zip(u, l)]
    return primitive(u)


# --------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class NormalCone:
    """The normal cone of one face, in H- and V-representation (exact integers).

    The cone lives in the lifting space ``R^D`` (``D = d`` without biases, ``d + 1`` with biases, the last
    coordinate multiplying the bias).  For the max-plus convention it is ``{u : u·x_f = max_p u·x_p for f in
    the face}``; for min-plus the same with ``min`` (so it is the negative of the max-plus cone).

    Attributes
    ----------
    face : frozenset of int
        Indices of all points on the face (repeated points are all listed).
    face_dim : int
        Dimension of the face.
    rays : tuple of tuple of int
        Extreme rays modulo the lineality space (primitive normals of the facets containing the face).
    lineality : tuple of tuple of int
        Basis of the lineality space (normals of the affine hull of the points).
    equations, inequalities : tuple of tuple of int
        H-representation: ``a·u == 0`` for each equation, ``a·u <= 0`` for each inequality.
    upper : bool
        Whether the relative interior meets ``t > 0`` (``t`` = last coordinate when lifted): the face is on the
        upper hull, so its points can be the (tied) winners of ``b + q·k``.  Always True without biases.
    lifted : bool
        Whether the cone lives in the lifted space ``R^{d+1}``.
    """

    face: frozenset
    face_dim: int
    rays: tuple
    lineality: tuple
    equations: tuple
    inequalities: tuple
    upper: bool = True
    lifted: bool = field(default=False, repr=False)
    __repr__ = compact_repr

    @property
    def dim(self) -> int:
        """Dimension of the cone: ``D`` minus the dimension of the face (``D`` for a vertex cone)."""
        return _rank(list(self.rays) + list(self.lineality))

    def contains(self, u: Any) -> bool:
        """Exact membership of a vector ``u`` of the lifting space (for lifted cones use :meth:`region_contains`)."""
        u = [_frac(v) for v in u]
        return all(_dot(a, u) == 0 for a in self.equations) and all(_dot(a, u) <= 0 for a in self.inequalities)

    def region(self) -> tuple[list, list, list, list]:
        """The ``q``-space region where the face's terms win: ``(A, b, E, e)`` with ``A q <= b``, ``E q == e``.

        Without biases this is the cone itself (``b = e = 0``); with biases it is the slice ``t = 1``.
        """
        if not self.lifted:
            zero = [0] * len(self.inequalities)
            return [list(a) for a in self.inequalities], zero, [list(a) for a in self.equations], [0] * len(
                self.equations
            )
        A = [list(a[:-1]) for a in self.inequalities]
        b = [-a[-1] for a in self.inequalities]
        E = [list(a[:-1]) for a in self.equations]
        e = [-a[-1] for a in self.equations]
        return A, b, E, e

    def region_contains(self, q: Any) -> bool:
        """Whether the point ``q`` lies in :meth:`region` (exact)."""
        q = [_frac(v) for v in q]
        A, b, E, e = self.region()
        return all(_dot(a, q) <= bb for a, bb in zip(A, b)) and all(_dot(a, q) == ee for a, ee in zip(E, e))


@dataclass(frozen=True)
class NormalFan:
    """The normal fan of a point configuration (optionally lifted by biases); see :func:`normal_fan`.

    Attributes
    ----------
    points : numpy.ndarray
        The keys (n×d) as exact rationals or floats, as given.
    biases : numpy.ndarray or None
        The biases (lift), or None.
    semiring : TropicalSemiring
    dim : int
        Affine dimension of the (lifted) point configuration.
    vertices : tuple of int
        Points that are the unique ⊕-winner for some ``q`` (representatives: lowest index among repeats).
    hull_vertices : tuple of int
        All vertices of the (lifted) hull, including lower-hull vertices that never win.
    """

    points: Any = field(repr=False)
    biases: Any = field(repr=False)
    semiring: TropicalSemiring
    dim: int
    vertices: tuple
    hull_vertices: tuple
    _hull: _Hull = field(repr=False)
    _X: tuple = field(repr=False)  # the (signed, integer-scaled) lifted points
    __repr__ = compact_repr

    @property
    def lifted(self) -> bool:
        return self.biases is not None

    @property
    def ambient_dim(self) -> int:
        return len(self._X[0])

    @cached_property
    def _rep(self) -> dict:
        rep = {}
        first = {}
        for i, x in enumerate(self._X):
            rep[i] = first.setdefault(tuple(x), i)
        return rep

    @property
    def point_vertex(self) -> tuple:
        """For each point, the representative index of the vertex in :attr:`vertices` it coincides with, or -1."""
        hv = set(self.vertices)
        return tuple(self._rep[i] if self._rep[i] in hv else -1 for i in range(len(self._X)))

    @cached_property
    def faces(self) -> dict:
        """All non-empty faces of the (lifted) hull: ``{frozenset of point indices: face dimension}``."""
        H = self._hull
        all_pts = frozenset(range(len(self._X)))
        fs = {all_pts: H.k}
        fac = [f for f, _ in H.facets]
        queue = list(fac)
        for f in fac:
            fs.setdefault(f, None)
        seen = set(fac)
        while queue:
            F = queue.pop()
            for G in fac:
                I = F & G
                if I and I not in seen:
                    seen.add(I)
                    queue.append(I)
        out = {}
        for F in seen | {all_pts}:
            norms = [w for (f, _), w in zip(H.facets, H.proj_normals) if F <= f]
            out[F] = H.k - _rank(norms)
        return out

    @cached_property
    def _edges(self) -> list:
        out = []
        for F, dim in self.faces.items():
            if dim == 1:
                vs = sorted({self._rep[i] for i in F} & set(self.hull_vertices))
                if len(vs) == 2:
                    out.append((F, vs[0], vs[1]))
        return out

    def _cone_for(self, F: frozenset) -> NormalCone:
        H = self._hull
        X = self._X
        rays = tuple(sorted(u for f, u in H.facets if F <= f))
        vert = sorted({self._rep[i] for i in F})
        f0 = X[vert[0]]
        eqs = _basis([[a - b for a, b in zip(X[v], f0)] for v in vert[1:]])
        hv = set(self.hull_vertices)
        nbrs = set()
        for E, a, b in self._edges:
            if a in vert and b not in vert and b in hv:
                nbrs.add(b)
            if b in vert and a not in vert and a in hv:
                nbrs.add(a)
        ineqs = tuple(tuple(a - b for a, b in zip(X[p], f0)) for p in sorted(nbrs))
        upper = True
        if self.lifted:
            upper = any(r[-1] > 0 for r in rays) or any(l[-1] != 0 for l in H.lineality)
        return NormalCone(F, self.faces[F], rays, H.lineality, eqs, ineqs, upper, self.lifted)

    @cached_property
    def cones(self) -> dict:
        """``{vertex: NormalCone}`` for the vertices that can win (:attr:`vertices`)."""
        return {v: self._cone_for(self._vertex_face(v)) for v in self.vertices}

    def _vertex_face(self, v: int) -> frozenset:
        return frozenset(i for i in range(len(self._X)) if self._rep[i] == self._rep[v])

    def normal_cone(self, face: int | Iterable[int]) -> NormalCone:
        """The normal cone of the smallest face containing the given point(s).

        Examples
        --------
        >>> F = normal_fan([[0, 0], [2, 0], [0, 2], [1, 1]])
        >>> F.normal_cone(3).face, F.normal_cone(3).rays           # (1, 1) lies on the edge [(2,0), (0,2)]
        (frozenset({1, 2, 3}), ((1, 1),))
        """
        n = len(self._X)
        if isinstance(face, (str, bytes)) or not (_is_int(face) or isinstance(face, Iterable)) or (
                not _is_int(face) and getattr(face, "ndim", None) == 0):  # (a 0-d float tensor was iterated)
            raise ArgumentTypeError(f"face must be a point index or an iterable of point indices, got {face!r}")
        items = [face] if _is_int(face) else list(face)
        for i in items:
            if not _is_int(i):
                raise ArgumentTypeError(f"face must be given by integer point indices, got {i!r}")
        idx = {int(i) for i in items}
        if not idx or any(i < 0 or i >= n for i in idx):
            raise ShapeError(f"face must be given by point indices in 0..{n - 1}, got {sorted(idx)}")
        best = frozenset(range(n))
        for F in self.faces:
            if idx <= F and len(F) < len(best):
                best = F
        return self._cone_for(best)

    def cone_of(self, q: Any) -> NormalCone:
        """The cone whose region contains ``q`` in its relative interior: the face of all tied ⊕-winners at ``q``.

        ``q`` may be exact or float (floats are used exactly); returns the cone of the face
        ``{j : b_j + q·k_j is ⊕-best}`` (``q·k_j`` without biases).
        """
        d = self.ambient_dim - (1 if self.lifted else 0)
        # (None, strings, nested or complex q were raw TypeErrors/ValueErrors from Fraction, a set was iterated)
        qa = to_numpy(check_array_dtype(asarray(q, name="q"), "q"))
        if qa.shape != (d,):
            raise ShapeError(f"q must be a vector of the keys' {d} coordinates, got shape {qa.shape}")
        check_no_nan(qa, "q")
        if any(isinstance(v, float) and math.isinf(v) for v in qa.tolist()):
            raise ConventionError("q must be finite: an infinite query coordinate has no winning face")
        qf = [_frac(v) for v in qa.tolist()]
        u = qf + ([Fraction(1)] if self.lifted else [])
        vals = [_dot(u, x) for x in self._X]
        best = max(vals)
        F = frozenset(i for i, v in enumerate(vals) if v == best)
        return self._cone_for(F)

    regime = "exact"

    def winners(self, q: Any) -> frozenset:
        """The points tying for the ⊕-best score at ``q`` (exact): ``cone_of(q).face``."""
        return self.cone_of(q).face

    def witness(self, j: int):
        """An exact ``q`` at which point ``j`` (a vertex) is the unique ⊕-winner among distinct points.

        Examples
        --------
        >>> F = normal_fan([[0], [1], [2]], biases=[0, 1, 0])
        >>> F.vertices, F.witness(1)
        ((0, 1, 2), [Fraction(0, 1)])
        """
        v = self._rep[check_index(j, len(self._X), "j", what="point")]
        if v not in self.cones:
            raise DomainError(f"point {j} is never the unique winner (it is not a vertex of the upper hull)")
        c = self.cones[v]
        D = self.ambient_dim
        u = [Fraction(0)] * D
        for r in c.rays:
            u = [a + b for a, b in zip(u, r)]
        if not self.lifted:
            return u
        if u[-1] <= 0:
            pos = [r for r in c.rays if r[-1] > 0] or [l for l in c.lineality if l[-1] > 0]
            if not pos:
                pos = [tuple(-x for x in l) for l in c.lineality if l[-1] < 0]
            r = pos[0]
            cst = (-u[-1]) / r[-1] + 1
            u = [a + cst * b for a, b in zip(u, r)]
        return [a / u[-1] for a in u[:-1]]

    @cached_property
    def graph(self):
        """networkx Graph on :attr:`vertices`; an edge joins two vertices whose regions share a wall.

        Edge attribute ``face``: the points on the polytope edge between them.
        """
        import networkx as nx

        G = nx.Graph()
        G.add_nodes_from(self.vertices)
        vs = set(self.vertices)
        for E, a, b in self._edges:
            if a in vs and b in vs and (not self.lifted or self._cone_for(E).upper):
                G.add_edge(a, b, face=E)
        return G

    def are_adjacent(self, i: int, j: int) -> bool:
        """Whether the regions of points ``i`` and ``j`` share a wall (a facet of both cones)."""
        n = len(self._X)
        return self.graph.has_edge(self._rep[check_index(i, n, "i", what="point")],
                                   self._rep[check_index(j, n, "j", what="point")])

    @property
    def f_vector(self) -> tuple:
        """Number of faces of the (lifted) hull in each dimension 0..dim."""
        dims = list(self.faces.values())
        return tuple(dims.count(k) for k in range(self.dim + 1))


def _basis(rows: list) -> tuple:
    if not rows:
        return ()
    R, _ = rref([[Fraction(x) for x in r] for r in rows])
    return tuple(primitive(r) for r in R)


# --------------------------------------------------------------------------------------- entry points
def normal_fan(
    points: Any, biases: Any = None, *, semiring: Semiring | str | None = None, regime: str = "exact", **lp_options
):
    """The normal fan of ``points`` (optionally lifted by ``biases``): exact and complete, or by LPs in high dimension.

    Parameters
    ----------
    points : array_like, shape (n, d)
        Keys / exponent vectors, finite.  Exact (int, Fraction) or float (treated as exact dyadic rationals).
    biases : array_like, shape (n,), optional
        Coefficients of the terms (the lift).  Entries equal to the tropical zero mean "no term" and are
        rejected here (drop those terms).
    semiring : MaxPlus (default) or MinPlus
        Whose ``⊕`` decides the winner of ``b_j + q·k_j`` (outer or inner normal cones).
    regime : ``"exact"`` (default), ``"lp"`` or ``"auto"``
        ``"exact"``: the complete fan (this module).  ``"lp"``: an
        :class:`~tropix.tropical.argmax_lp.LPNormalFan` answering the same per-key questions by linear
        programming (for d = 32…128 and thousands of keys).  ``"auto"``: exact when the lifted dimension is
        at most 3, or at most 5 with at most 200 points; LP otherwise.
    **lp_options
        Passed to :func:`~tropix.tropical.argmax_lp.argmax_vertices` in the LP regime.

    Returns
    -------
    NormalFan or LPNormalFan
        Both offer ``regime``, ``vertices``, ``point_vertex``, ``witness(j)``, ``winners(q)`` and
        ``are_adjacent(i, j)``; the exact fan also has ``cones`` (H- and V-representation), ``faces``,
        ``graph`` (networkx), ``cone_of(q)`` and ``normal_cone(face)``.

    Raises
    ------
    EmptyInputError, ShapeError, NaNError, ConventionError
        No points, wrong shapes, NaN, or infinite coordinates.

    Examples
    --------
    >>> F = normal_fan([[0], [1], [2], [3]], biases=[0, 2, 3, 3])      # max(0, 2 + q, 3 + 2q, 3 + 3q)
    >>> F.vertices, F.hull_vertices
    ((0, 1, 2, 3), (0, 1, 2, 3))
    >>> [F.cones[j].region()[:2] for j in (1, 2)]                       # regions  -2 <= q <= -1,  -1 <= q <= 0
    [([[-1], [1]], [2, -1]), ([[-1], [1]], [1, 0])]
    >>> normal_fan([[0], [1], [2]], biases=[0, 0, 0]).vertices          # the middle term never wins alone
    (0, 2)
    """
    S = require_tropical(semiring, "a normal fan")
    check_option(regime, "regime", ("exact", "lp", "auto"))
    if regime == "auto":
        shape = getattr(points, "shape", None) or np.shape(np.asarray(points, dtype=object))
        n_pts, dim = (int(shape[0]), int(shape[1])) if len(shape) == 2 else (0, 0)
        D = dim + (biases is not None)
        regime = "exact" if D <= 3 or (D <= 5 and n_pts <= 200) else "lp"
    if regime == "lp":
        from .argmax_lp import LPNormalFan

        return LPNormalFan(points, biases, semiring=S, **lp_options)
    if lp_options:
        raise ArgumentTypeError(f"options {sorted(lp_options)} only apply to regime='lp'")
    K = points if is_array(points) else asarray(points, name="points")
    K = to_numpy(S.validate(K, "points"))
    if K.ndim != 2:
        raise ShapeError(f"points must be an n×d matrix, got shape {K.shape}")
    check_nonempty(K, "points")
    rows = [[_frac(v) for v in r] for r in K]
    b = None
    if biases is not None:
        b = biases if is_array(biases) else asarray(biases, name="biases")
        b = to_numpy(S.validate(b, "biases"))
        if b.ndim != 1 or b.shape[0] != K.shape[0]:
            raise ShapeError(f"biases must be a vector of length {K.shape[0]} (one per point), got shape {b.shape}")
        rows = [r + [_frac(v)] for r, v in zip(rows, b)]
    s = S.sense
    X = _to_int_rows([[s * v for v in r] for r in rows])
    H = _exact_hull(X)
    fan_tmp = NormalFan(K, b, S, H.k, (), (), H, tuple(tuple(x) for x in X))
    rep = fan_tmp._rep
    if H.k == 0:
        hv = (0,)
    else:
        hv = []
        for i in sorted(set(rep.values())):
            norms = [w for (f, _), w in zip(H.facets, H.proj_normals) if i in f]
            if _rank(norms) == H.k:
                hv.append(i)
        hv = tuple(hv)
    fan_tmp2 = NormalFan(K, b, S, H.k, hv, hv, H, fan_tmp._X)
    if b is not None:
        verts = tuple(v for v in hv if fan_tmp2._cone_for(fan_tmp2._vertex_face(v)).upper)
    else:
        verts = hv
    return NormalFan(K, b, S, H.k, verts, hv, H, fan_tmp._X)


def normal_cone(
    points: Any, face: int | Iterable[int], biases: Any = None, *, semiring: Semiring | str | None = None
) -> NormalCone:
    """The normal cone of the smallest face of ``conv(points)`` (lifted by ``biases``) containing ``face``.

    Examples
    --------
    >>> C = normal_cone([[0, 0], [1, 0], [0, 1]], 0)
    >>> C.rays, C.inequalities
    (((-1, 0), (0, -1)), ((1, 0), (0, 1)))
    >>> normal_cone([[0, 0], [1, 0], [0, 1]], 0, semiring="min").rays   # inner normals
    ((0, 1), (1, 0))
    >>> normal_cone([[0, 0], [1, 1], [2, 2]], [0]).lineality           # collinear points
    ((-1, 1),)
    """
    return normal_fan(points, biases, semiring=semiring).normal_cone(face)
