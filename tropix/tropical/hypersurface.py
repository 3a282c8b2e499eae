"""Tropical hypersurfaces: the weighted polyhedral complex where a tropical polynomial's ⊕ is attained twice.

``V(p) = {x : the max (max-plus) or min (min-plus) of c_a + a·x is attained at least twice}``.  It is dual
to the regular subdivision of the Newton polytope (:mod:`tropix.tropical.subdivision`):

* a maximal cell σ of the subdivision ↔ a vertex ``x_σ`` of ``V(p)`` (all terms of σ tie there);
* a ``j``-dimensional face τ ↔ a cell of dimension ``n - j``: the convex hull of the vertices ``x_σ`` for
  the cells σ ⊇ τ, plus the cone over the rays of the boundary ridges ⊇ τ, plus the lineality space;
* an edge ``e`` (``j = 1``) ↔ a maximal cell of ``V(p)``, with multiplicity (weight) the lattice length of
  ``e`` (for integer exponents);
* a ridge on the boundary of ``Newt(p)`` ↔ a ray: its outer normal in max-plus, its inner normal in
  min-plus (``ray = sense · outer normal``).

If the Newton polytope is not full-dimensional (e.g. all exponents collinear), ``V(p)`` has a lineality
space, the orthogonal complement of the exponents' affine span; ``vertices`` are then representatives
of the minimal cells (with zero coordinates off the pivot coordinates), as polymake does.

Conventions compared with polymake and gfan
-------------------------------------------
tropix follows Maclagan–Sturmfels: ``V(p)`` of ``max_a (c_a + a·x)`` or ``min_a (c_a + a·x)``; for both,
``V_max(c) = -V_min(-c)``.  polymake (4.6, application ``tropical``) works in the tropical projective
torus ``R^{n+1}/R·1``: given the homogenised polynomial (exponents ``(D - |a|, a)``), its
``Hypersurface<Max>`` and ``Hypersurface<Min>`` have exactly tropix's vertices (as ``(1, 0, x)``), rays (far
vertices ``(0, 0, r)``, not always primitive), maximal cells and weights — ``benchmarks/bench_hypersurface.py``
checks this on random instances.  polymake's ``F_VECTOR`` counts far vertices as vertices, so its ``f_0``
is ``len(vertices) + len(rays)``; :attr:`TropicalHypersurface.f_vector` counts cells of the complex in
``R^n`` (rays are not vertices).  gfan (``gfan _tropicalhypersurface``) only knows the trivial valuation:
for ``Σ t^{c_a - min c} x^a`` the cones meeting ``w_t > 0``, cut at ``w_t = 1``, are the cells of the
max-plus ``V(p)``.

Examples
--------
>>> from tropix.tropical import TropicalPolynomial
>>> L = TropicalPolynomial.parse("max(0, x, y)").hypersurface()    # the tropical line
>>> L.vertices, L.rays
(((0, 0),), ((-1, 0), (0, -1), (1, 1)))
>>> L.f_vector, L.is_balanced(), L.genus, L.is_smooth()
((1, 3), True, 0, True)
"""

from __future__ import annotations

import math
from itertools import combinations
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .._repr import compact_repr
from ..errors import ArgumentTypeError, DomainError, ShapeError
from ._hull import primitive
from .semiring import TropicalSemiring

__all__ = ["HypersurfaceCell", "TropicalHypersurface"]


@dataclass(frozen=True)
class HypersurfaceCell:
    """One cell of a tropical hypersurface.

    Attributes
    ----------
    dim : int
        Dimension (including the lineality space).
    vertices : tuple of int
        Indices into :attr:`TropicalHypersurface.vertices`.
    rays : tuple of int
        Indices into :attr:`TropicalHypersurface.rays`.
    dual : tuple of int
        The dual face of the subdivision: indices of all terms that tie on the cell (in the order of
        the polynomial's exponents).
    weight : int or None
        Multiplicity of a maximal cell (lattice length of the dual edge); None for lower-dimensional
        cells and for non-integer exponents.
    """

    dim: int
    vertices: tuple
    rays: tuple
    dual: tuple
    weight: Any = None
    __repr__ = compact_repr

    @property
    def bounded(self) -> bool:
        return not self.rays


def _cell(dim, vertices, rays, dual, weight) -> HypersurfaceCell:
    """``HypersurfaceCell(dim, vertices, rays, dual, weight)`` without the frozen-dataclass ``__init__``
    (one ``object.__setattr__`` per field): hypersurfaces have thousands of cells.  Same object."""
    c = _new_object(HypersurfaceCell)
    c.__dict__.update(dim=dim, vertices=vertices, rays=rays, dual=dual, weight=weight)
    return c


_new_object = object.__new__


def _exact(v):
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    return v


@dataclass(frozen=True)
class TropicalHypersurface:
    """The tropical hypersurface of a polynomial as a weighted polyhedral complex (exact).

    Build it with :meth:`TropicalPolynomial.hypersurface() <tropix.tropical.polynomial.TropicalPolynomial.hypersurface>`.

    Attributes
    ----------
    polynomial : TropicalPolynomial
    subdivision : RegularSubdivision
        The dual regular subdivision.
    ambient_dim : int
    vertices : tuple of tuple
        One point per maximal cell of the subdivision (exact ``int``/``Fraction``; floats for float input).
    rays : tuple of tuple of int
        Primitive integer directions of the unbounded cells (rational ones for rational exponents are
        scaled to integers as well).
    lineality : tuple of tuple of int
        Integer basis of the lineality space (empty when the Newton polytope is full-dimensional).
    cells : tuple of HypersurfaceCell
        All cells, sorted by dimension, then by dual face.
    """

    polynomial: Any = field(repr=False)
    subdivision: Any = field(repr=False)
    ambient_dim: int
    vertices: tuple
    rays: tuple
    lineality: tuple
    cells: tuple = field(repr=False)
    _xv: tuple = field(repr=False, compare=False)  # exact vertices (Fractions) whatever the input
    _repr_fields = ("polynomial", "f_vector", "vertices", "rays", "lineality")
    __repr__ = compact_repr

    @classmethod
    def of(cls, p) -> "TropicalHypersurface":
        from .polynomial import TropicalPolynomial

        if not isinstance(p, TropicalPolynomial):  # (was a raw AttributeError on .semiring)
            raise ArgumentTypeError(f"TropicalHypersurface.of takes a TropicalPolynomial, got {type(p).__name__}")
        S: TropicalSemiring = p.semiring
        sub = p.subdivision()
        form = sub._form
        n = p.n_vars
        k = sub.dim
        piv = form.pivots
        xv = []
        sn, sd = S.sense * form.scale.numerator, form.scale.denominator
        full = tuple(piv) == tuple(range(n))
        for f in sub._functions if k > 0 else ():
            fc = f[k] * sd
            if full:  # the vertex is -sense * f[:n] / f[n], up to the scale (exact division when possible)
                xv.append(tuple([num // fc if num % fc == 0 else Fraction(num, fc) for num in (sn * v for v in f[:k])]))
                continue
            x = [0] * n
            for j, col in enumerate(piv):
                num = sn * f[j]
                x[col] = num // fc if num % fc == 0 else Fraction(num, fc)
            xv.append(tuple(x))
        ray_index: dict = {}
        ridge_ray: dict = {}
        for ridge, g in sub._boundary:
            d = [0] * n
            for j, col in enumerate(piv):
                d[col] = S.sense * g[j]
            r = primitive(d)
            ridge_ray[ridge] = ray_index.setdefault(r, len(ray_index))
        raw = tuple(sorted(ray_index, key=lambda r: ray_index[r]))
        # faces of the subdivision contained in each boundary ridge
        face_rays: dict = {}
        if k > 0:
            for ridge in ridge_ray:
                rs = set(ridge)
                ci = sub._face_cells[ridge][0]
                for j in range(1, k):  # vertices of the subdivision (j = 0) are not dual to cells
                    for face in _faces_of_cell(sub, ci, j):
                        if rs.issuperset(face):
                            face_rays.setdefault(face, set()).add(ridge_ray[ridge])
        # the rays of the unbounded cells only (the endpoints of a segment Newton polytope are boundary ridges
        # too, dual to regions of the complement, not to cells: their directions are no rays of V(p)), in sorted
        # order for a canonical output
        used = sorted({i for r in face_rays.values() for i in r}, key=lambda i: raw[i])
        new_of = {old: new for new, old in enumerate(used)}
        rays = tuple(raw[i] for i in used)
        face_rays = {f: tuple(sorted(new_of[i] for i in r)) for f, r in face_rays.items()}
        integer = p.has_integer_exponents
        E = p.exponents.tolist()
        if integer and p.exponents.dtype == object:
            E = [[int(v) for v in r] for r in E]
        face_cells = sub._face_cells
        get_rays = face_rays.get
        edge_w = None
        faces1 = sub.faces(1) if k > 0 else ()
        if integer and p.exponents.dtype.kind == "i" and faces1 and all(len(f) == 2 for f in faces1):
            # lattice lengths of all edges at once: gcd of the coordinates of end - start
            Fa = np.array(faces1, dtype=np.int64)
            D = np.abs(p.exponents[Fa[:, 1]] - p.exponents[Fa[:, 0]])
            edge_w = np.gcd.reduce(D, axis=1).tolist() if n > 1 else D[:, 0].tolist()
        cells = []
        for j in range(k, 0, -1):  # by increasing cell dimension, faces already sorted: no sort needed
            dim = n - j
            edges = j == 1 and integer
            if edges and edge_w is not None:
                for face, w in zip(faces1, edge_w):
                    cells.append(_cell(dim, tuple(face_cells[face]), get_rays(face, ()), face, w))
                continue
            for face in sub.faces(j):
                w = None
                if edges:  # lattice length of the edge: gcd of the coordinates of end - start
                    if len(face) == 2:
                        ea, eb = E[face[0]], E[face[1]]
                    else:
                        pts = sorted(E[i] for i in face)
                        ea, eb = pts[0], pts[-1]
                    w = math.gcd(*[b - a for a, b in zip(ea, eb)])
                cells.append(_cell(dim, tuple(face_cells[face]), get_rays(face, ()), face, w))  # tuple(): no copy
        lin = tuple(primitive(v) for v in form.lineality)
        if p.is_exact:
            verts = tuple(xv)
        else:
            verts = tuple(tuple(float(v) for v in x) for x in xv)
        return cls(p, sub, n, verts, rays, lin, tuple(cells), tuple(xv))

    # -- combinatorics -----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """``n - 1`` (or -1 for the empty hypersurface of a monomial)."""
        return self.ambient_dim - 1 if self.cells else -1

    def cells_of_dim(self, d: int) -> tuple:
        """The cells of dimension ``d``."""
        from ._args import check_int

        d = check_int(d, "d")  # (None, "1", 1.5 or [1] silently gave no cells)
        return tuple(c for c in self.cells if c.dim == d)

    @property
    def maximal_cells(self) -> tuple:
        return self.cells_of_dim(self.ambient_dim - 1)

    @property
    def weights(self) -> tuple:
        """Multiplicities of the maximal cells (in the order of :attr:`maximal_cells`)."""
        return tuple(c.weight for c in self.maximal_cells)

    @property
    def f_vector(self) -> tuple:
        """Numbers of cells of dimension 0, 1, ..., n-1 (bounded and unbounded; rays are not counted as vertices)."""
        return tuple(len(self.cells_of_dim(d)) for d in range(self.ambient_dim))

    @property
    def degree(self):
        """Degree of the polynomial (largest total degree of a term)."""
        return self.polynomial.degree

    def is_smooth(self) -> bool:
        """True if the dual subdivision is a unimodular triangulation (integer exponents needed).

        Then every maximal cell has weight 1 and, for a plane curve with Newton polygon ``d·Δ``, there
        are ``d²`` vertices, ``3d`` rays and genus ``(d-1)(d-2)/2``.
        """
        sub = self.subdivision
        if not self.polynomial.has_integer_exponents or sub.dim == 0:
            return False
        return sub.is_unimodular  # (each simplex measured in the lattice of its own affine span)

    def is_balanced(self) -> bool:
        """Check the balancing condition at every codimension-2 cell, from the computed geometry.

        For each codimension-2 cell ``G`` and the maximal cells ``F ⊃ G``: the primitive lattice vectors
        ``u_{F/G}`` (in ``Z^n`` modulo the lattice of ``G``), computed from the actual vertices and rays,
        satisfy ``Σ weight(F)·u_{F/G} = 0``; also every maximal cell is orthogonal to its dual edge.
        Needs integer exponents (weights); returns True vacuously when there are no codimension-2 cells.
        """
        if not self.polynomial.has_integer_exponents:
            raise DomainError("balancing needs integer exponents (weights are lattice lengths)")
        n = self.ambient_dim
        E = [[int(v) for v in r] for r in self.polynomial.exponents.tolist()]
        X = self._xv
        R = self.rays
        maximal = {c.dual: c for c in self.maximal_cells}
        # orthogonality of maximal cells to their dual edges
        for c in maximal.values():
            pts = sorted(E[i] for i in c.dual)
            e = [b - a for a, b in zip(pts[0], pts[-1])]
            gens = [[Fraction(x) - Fraction(y) for x, y in zip(X[v], X[c.vertices[0]])] for v in c.vertices[1:]]
            gens += [list(R[r]) for r in c.rays]
            if any(sum(Fraction(a) * b for a, b in zip(g, e)) != 0 for g in gens):
                return False
        for G in self.cells_of_dim(n - 2):
            tau = G.dual
            base = E[tau[0]]
            diffs = [[a - b for a, b in zip(E[i], base)] for i in tau[1:]]
            b1 = next(d for d in diffs if any(d))
            b2 = next(d for d in diffs if not _parallel(d, b1))
            lat = _hnf2([(b1[i], b2[i]) for i in range(n)])
            yG = self._interior_point(G)
            total = [Fraction(0), Fraction(0)]
            if len(tau) == 3:
                adjacent = [maximal[e] for e in combinations(tau, 2)]
            else:
                ts = set(tau)
                adjacent = [F for e, F in maximal.items() if ts.issuperset(e)]
            for F in adjacent:
                d = [a - b for a, b in zip(self._interior_point(F), yG)]
                phi = (sum(Fraction(a) * x for a, x in zip(b1, d)), sum(Fraction(a) * x for a, x in zip(b2, d)))
                u = _lattice_primitive(phi, lat)
                total[0] += F.weight * u[0]
                total[1] += F.weight * u[1]
            if total != [0, 0]:
                return False
        return True

    def _interior_point(self, c: HypersurfaceCell) -> list:
        X = self._xv
        pt = [sum(Fraction(X[v][i]) for v in c.vertices) / len(c.vertices) for i in range(self.ambient_dim)]
        for r in c.rays:
            pt = [a + b for a, b in zip(pt, self.rays[r])]
        return pt

    # -- plane curves ----------------------------------------------------------------------------
    @property
    def genus(self) -> int:
        """First Betti number of a plane curve (bounded edges - vertices + connected components)."""
        if self.ambient_dim != 2:
            raise ShapeError(f"genus is defined here for plane curves (2 variables), not {self.ambient_dim}")
        if self.subdivision.dim < 2:
            return 0
        V = len(self.vertices)
        parent = list(range(V))

        def find(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        bounded = [c for c in self.maximal_cells if not c.rays]
        for c in bounded:
            a, b = find(c.vertices[0]), find(c.vertices[1])
            parent[a] = b
        comps = len({find(i) for i in range(V)})
        return len(bounded) - V + comps

    def edges(self) -> tuple:
        """For a plane curve: ``(start, end, direction, weight)`` per maximal cell, exact.

        ``end`` is None for a ray; ``direction`` is the primitive integer direction from ``start``.  A curve
        whose Newton polygon is a segment consists of parallel lines: each is ``(point, None, direction,
        weight)`` with ``direction`` the lineality vector (the line extends both ways, see :attr:`lineality`).
        """
        if self.ambient_dim != 2:
            raise ShapeError("edges() is for plane curves; use cells for hypersurfaces")
        X = self._xv
        out = []
        for c in self.maximal_cells:
            if self.lineality:  # a line through its representative point (it has one vertex, no ray)
                out.append((X[c.vertices[0]], None, self.lineality[0], c.weight))
            elif c.rays:
                start = X[c.vertices[0]] if c.vertices else None
                out.append((start, None, self.rays[c.rays[0]], c.weight))
            else:
                p, q = X[c.vertices[0]], X[c.vertices[1]]
                out.append((p, q, primitive([Fraction(b) - Fraction(a) for a, b in zip(p, q)]), c.weight))
        return tuple(out)

    def regions(self, box=None):
        """Complement regions clipped to ``box`` as shapely polygons; see :func:`tropix.tropical.curves.regions`."""
        from .curves import regions

        return regions(self, box=box)

    def stable_intersection(self, other):
        """Stable intersection with another plane curve; see :func:`tropix.tropical.curves.stable_intersection`."""
        from .curves import stable_intersection

        return stable_intersection(self, other)

    def plot(self, ax=None, **kwargs):
        """Draw a plane curve with matplotlib; see :func:`tropix.tropical.curves.plot_curve`."""
        from .curves import plot_curve

        return plot_curve(self, ax=ax, **kwargs)


def _faces_of_cell(sub, ci: int, j: int):
    cell = sub.cells[ci]
    k = sub.dim
    if len(cell) == k + 1:
        from itertools import combinations

        return list(combinations(cell, j + 1))
    return [f for f in sub.faces(j) if ci in sub._face_cells[f]]


def _parallel(u, v) -> bool:
    return all(u[i] * v[j] == u[j] * v[i] for i in range(len(u)) for j in range(i + 1, len(u)))


def _hnf2(vecs):
    """Basis ((g, b), (0, c)) of the lattice in Z^2 generated by ``vecs``."""
    piv = None
    c = 0
    for v in vecs:
        v = (int(v[0]), int(v[1]))
        if v[0] == 0:
            c = math.gcd(c, v[1])
            continue
        if piv is None:
            piv = v
            continue
        g, s, t = _egcd(piv[0], v[0])
        newp = (g, s * piv[1] + t * v[1])
        resid = (v[0] // g) * piv[1] - (piv[0] // g) * v[1]
        c = math.gcd(c, resid)
        piv = newp
    if piv is None:
        piv = (0, 0)
    return piv, (0, c)


def _egcd(a, b):
    if b == 0:
        return (abs(a), 1 if a >= 0 else -1, 0)
    g, s, t = _egcd(b, a % b)
    return g, t, s - (a // b) * t


def _lattice_primitive(phi, lat):
    (g, b), (_, c) = lat
    alpha = Fraction(phi[0]) / g
    beta = (Fraction(phi[1]) - alpha * b) / c
    return primitive((alpha, beta))
