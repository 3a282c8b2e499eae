"""Newton polytopes and regular subdivisions induced by tropical coefficients, exactly.

For a tropical polynomial ``p(x) = ⊕_a c_a ⊗ x^a`` the exponents ``a`` span the *Newton polytope*
``Newt(p) = conv{a}``.  Lifting every exponent to height ``c_a`` and projecting the **upper** faces of
``conv{(a, c_a)}`` (max-plus) or the **lower** faces (min-plus) back down gives the *regular subdivision*
of ``Newt(p)``; its cells are in inclusion-reversing bijection with the cells of the tropical
hypersurface (see :mod:`tropix.tropical.hypersurface`).

The computation is exact for every input.  Integers and rationals are exact already; floats are
dyadic rationals and are treated as the exact numbers they are (so ties that are exact in floating
point are honoured, and ties that are not exact are not invented).  Everything is scaled to integers,
qhull (``scipy.spatial.ConvexHull``) proposes candidate cells in floating point, each candidate is
verified exactly, and missing cells are found by exact gift wrapping across unmatched ridges.  Cells
may be non-simplicial (non-generic lifts, e.g. equal coefficients) and contain non-vertex points.

A cell is recorded as the sorted tuple of the indices of *all* points lying on it (vertices and the
points in its interior or on its faces whose lift lies on the same facet), as polymake's
``MAXIMAL_COVERING_CELLS``/gfan do when they keep non-vertex points.

Examples
--------
>>> from tropix.tropical.subdivision import regular_subdivision
>>> S = regular_subdivision([[0, 0], [1, 0], [0, 1], [1, 1]], [0, 0, 0, 1])  # max-plus: upper hull
>>> S.cells
((0, 1, 3), (0, 2, 3))
>>> regular_subdivision([[0, 0], [1, 0], [0, 1], [1, 1]], [0, 0, 0, 0]).cells  # one square cell
((0, 1, 2, 3),)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import combinations
from typing import Any

import numpy as np

from .._array import asarray, check_no_nan, is_array, to_numpy
from .._repr import compact_repr
from ..errors import ConventionError, EmptyInputError, ShapeError
from . import _hull
from .semiring import MaxPlus, Semiring, TropicalSemiring, check_real_dtype, get_semiring, real_array, require_tropical

__all__ = ["NewtonPolytope", "RegularSubdivision", "newton_polytope", "regular_subdivision"]


# ---------------------------------------------------------------------------------------------------
# exact integer form of the input


def _to_fraction(v) -> Fraction:
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    if isinstance(v, (float, np.floating)):
        return Fraction(float(v))  # exact: every finite float is a dyadic rational
    return Fraction(v)


def _lcm(vals) -> int:
    out = 1
    for v in vals:
        out = out * v // math.gcd(out, v)
    return out


@dataclass(frozen=True)
class _IntegerForm:
    """Exponents and heights scaled to integers and projected onto the affine span of the exponents."""

    A: tuple  # projected integer points (N tuples of length k)
    c: tuple  # integer heights, already multiplied by the semiring's sense (upper hull convention)
    scale: Fraction  # lambda_a / lambda_c, to map dual points back
    pivots: tuple  # coordinates of R^n kept by the projection
    lineality: tuple  # integer basis of the lineality space of the hypersurface
    dim: int  # dimension of the Newton polytope
    array: Any = field(default=None, repr=False, compare=False)  # A as an int64 matrix when it fits, else None


def _integer_form(points: np.ndarray, heights: np.ndarray, sense: int) -> _IntegerForm:
    N, n = points.shape
    hl = heights.tolist()
    if points.dtype.kind in "iu" and all(type(v) is int for v in hl):
        la = lc = 1  # the common case: integer exponents and coefficients, no conversion needed
        Ai = points.tolist()
        ci = [sense * v for v in hl]
        base = _hull.affine_independent_subset(points)
    else:
        P = [[_to_fraction(v) for v in row] for row in points.tolist()]
        C = [_to_fraction(v) for v in hl]
        la = _lcm([v.denominator for row in P for v in row] or [1])
        lc = _lcm([v.denominator for v in C] or [1])
        Ai = [[int(v * la) for v in row] for row in P]
        ci = [sense * int(v * lc) for v in C]
        base = _hull.affine_independent_subset(Ai)
    k = len(base) - 1
    diffs = [[Ai[i][j] - Ai[base[0]][j] for j in range(n)] for i in base[1:]]
    pivots = _pivot_columns(diffs, n)
    lineality = tuple(_hull.nullspace(diffs)) if k else tuple(
        tuple(int(i == j) for j in range(n)) for i in range(n)
    )
    if k == n:
        lineality = ()
    if list(pivots) == list(range(n)):
        A = tuple(map(tuple, Ai))
    else:
        A = tuple(tuple(row[j] for j in pivots) for row in Ai)
    arr = None
    if la == 1 and points.dtype.kind in "iu" and (not points.size or int(np.max(np.abs(points))) < (1 << 31)):
        arr = points[:, list(pivots)].astype(np.int64)  # exactly A, as a matrix (same rows, same order)
    return _IntegerForm(A, tuple(ci), Fraction(la, lc), tuple(pivots), lineality, k, arr)


def _pivot_columns(rows, n) -> list[int]:
    rows = [[Fraction(v) for v in r] for r in rows]
    piv = []
    r = 0
    for c in range(n):
        p = next((i for i in range(r, len(rows)) if rows[i][c] != 0), None)
        if p is None:
            continue
        rows[r], rows[p] = rows[p], rows[r]
        for i in range(len(rows)):
            if i != r and rows[i][c] != 0:
                fac = rows[i][c] / rows[r][c]
                rows[i] = [a - fac * b for a, b in zip(rows[i], rows[r])]
        piv.append(c)
        r += 1
        if r == len(rows):
            break
    return piv


def _qhull_seeds(A: tuple, c: tuple, arr=None) -> list:
    """Candidate upper cells (simplices) from qhull in floating point; [] if qhull declines.

    ``arr`` is ``A`` as an integer matrix when the caller has it (saves a conversion)."""
    k = len(A[0])
    if len(A) <= k + 1:
        return [tuple(range(len(A)))] if len(A) == k + 1 else []
    try:
        from scipy.spatial import ConvexHull, QhullError
    except ImportError:  # pragma: no cover
        return []
    pts = np.array(A, dtype=np.float64) if arr is None else arr.astype(np.float64)
    h = np.array(c, dtype=np.float64)
    span = float(np.max(np.abs(h))) or 1.0
    scale = (float(np.max(np.abs(pts))) or 1.0) / span
    lifted = np.column_stack([pts, h * scale])
    try:
        hull = ConvexHull(lifted, qhull_options="Qt Q12")
    except (QhullError, ValueError):
        return []
    up = hull.equations[:, k] > 1e-12
    return hull.simplices[up]


# ---------------------------------------------------------------------------------------------------
# public results


@dataclass(frozen=True)
class NewtonPolytope:
    """The Newton polytope ``conv{a}`` of a set of exponent vectors.

    Attributes
    ----------
    points : numpy.ndarray
        The exponents (``m x n``), as given.
    dim : int
        Dimension of the polytope (``n`` when full-dimensional).
    vertices : tuple of int
        Indices of the points that are vertices, sorted.
    facets : tuple of tuple of int
        For each facet (of the polytope inside its affine span), the indices of all points on it.
    volume : Fraction
        Normalised volume ``dim! · vol`` inside the affine span, measured in the coordinates
        kept by the projection (equal to the usual normalised volume when full-dimensional).
    f_vector : tuple of int
        Numbers of faces of dimension 0, ..., dim - 1 (empty for a single point).
    """

    points: np.ndarray = field(repr=False)
    dim: int
    vertices: tuple
    facets: tuple
    volume: Any

    f_vector: tuple = ()
    __repr__ = compact_repr


def newton_polytope(points: Any) -> NewtonPolytope:
    """The Newton polytope of exponent vectors ``points`` (``m x n``), exactly.

    Examples
    --------
    >>> P = newton_polytope([[0, 0], [1, 0], [0, 1], [1, 1], [2, 2]])
    >>> P.dim, P.vertices, P.volume
    (2, (0, 1, 2, 4), Fraction(4, 1))
    >>> newton_polytope([[0, 0], [1, 1], [2, 2]]).vertices  # a segment
    (0, 2)
    """
    pts = _check_points(points)
    form = _integer_form(pts, np.zeros(pts.shape[0], dtype=object), 1)
    A, k = form.A, form.dim
    if k == 0:
        return NewtonPolytope(pts, 0, (0,), (), Fraction(1))
    faces = _hull.polytope_faces(A)
    verts = sorted(i for f in faces[0] for i in f)
    vol = _normalised_volume(A, verts) / Fraction(form.scale) ** k
    fv = tuple(len(faces[d]) for d in range(k))
    if k == 1:  # the two endpoints of a segment, each with *all* the points at it (faces[0] keeps one copy)
        xs = [a[0] for a in A]
        facets = tuple(sorted(tuple(i for i, x in enumerate(xs) if x == t) for t in (min(xs), max(xs))))
    else:
        facets = tuple(sorted(tuple(sorted(f)) for f in faces[k - 1]))
    return NewtonPolytope(pts, k, tuple(verts), facets, vol, fv)


def _normalised_volume(A, idx) -> Fraction:
    """dim! · volume of conv(A[idx]) (full-dimensional), from an exact pulling triangulation."""
    k = len(A[0])
    tot = 0
    for simplex in _pulling_triangulation([A[i] for i in idx], list(range(len(idx)))):
        s = list(simplex)
        M = [[A[idx[s[j]]][t] - A[idx[s[0]]][t] for t in range(k)] for j in range(1, k + 1)]
        tot += abs(_det(M))
    return Fraction(tot)


def _pulling_triangulation(P, idx) -> list:
    """Simplices (index tuples) of a pulling triangulation of full-dimensional integer points ``P``."""
    d = len(P[0])
    if len(P) == d + 1:
        return [tuple(idx)]
    if d == 1:
        xs = [p[0] for p in P]
        return [(idx[xs.index(min(xs))], idx[xs.index(max(xs))])]
    out = []
    for loc, f in _hull.hull_facets(P):
        if 0 in loc:
            continue
        loc = sorted(loc)
        drop = next(i for i, w in enumerate(f[:d]) if w != 0)
        Q = [tuple(v for j, v in enumerate(P[i]) if j != drop) for i in loc]
        for sub in _pulling_triangulation(Q, [idx[i] for i in loc]):
            out.append((idx[0],) + tuple(sub))
    return out


def _det(M) -> int:
    M = [[Fraction(v) for v in r] for r in M]
    n = len(M)
    det = Fraction(1)
    for c in range(n):
        p = next((i for i in range(c, n) if M[i][c] != 0), None)
        if p is None:
            return 0
        if p != c:
            M[c], M[p] = M[p], M[c]
            det = -det
        det *= M[c][c]
        for i in range(c + 1, n):
            fac = M[i][c] / M[c][c]
            M[i] = [a - fac * b for a, b in zip(M[i], M[c])]
    return int(det)


def _check_points(points) -> np.ndarray:
    pts = to_numpy(points) if is_array(points) else asarray(points, name="exponents")
    if pts.dtype == object:
        real_array(pts, "exponents")  # checks that every entry is a real number
    else:
        check_real_dtype(pts, "exponents")
    if pts.dtype == np.bool_:
        pts = pts.astype(np.int64)
    if pts.ndim != 2:
        raise ShapeError(f"exponents must be a 2-d array (terms x variables), got shape {tuple(pts.shape)}")
    if pts.shape[0] == 0:
        raise EmptyInputError("no exponents given: a polynomial needs at least one term")
    check_no_nan(pts, "exponents")
    if pts.dtype == object or np.issubdtype(pts.dtype, np.floating):
        for v in pts.ravel():
            if isinstance(v, float) and math.isinf(v):
                raise ShapeError("exponents must be finite")
    return pts


@dataclass(frozen=True)
class RegularSubdivision:
    """The regular subdivision of the points ``points`` induced by the heights ``heights``.

    Attributes
    ----------
    points, heights : numpy.ndarray
        The lifted point configuration, as given (heights in the semiring's convention).
    semiring : Semiring
        ``MaxPlus`` (upper hull) or ``MinPlus`` (lower hull).
    dim : int
        Dimension of the Newton polytope.
    cells : tuple of tuple of int
        Maximal cells: indices of all points on each, sorted; cells sorted.
    """

    points: np.ndarray = field(repr=False)
    heights: np.ndarray = field(repr=False)
    semiring: Semiring
    dim: int
    cells: tuple
    _form: _IntegerForm = field(repr=False, compare=False)
    _functions: tuple = field(repr=False, compare=False)  # per cell, f over [A | c | 1]
    _boundary: tuple = field(repr=False, compare=False)  # (ridge index tuple, g over [A | 1])
    _faces: dict = field(repr=False, compare=False)  # dim -> tuple of faces (sorted index tuples)
    _face_cells: dict = field(repr=False, compare=False)  # face -> indices of the maximal cells containing it
    __repr__ = compact_repr

    @property
    def vertices(self) -> tuple:
        """Indices of the points that are vertices of some cell (the points whose terms can dominate alone)."""
        return tuple(sorted(f[0] for f in self._faces.get(0, ())))

    def faces(self, k: int) -> tuple:
        """All ``k``-dimensional faces of the subdivision (each as the sorted indices of all its points)."""
        from ._args import check_int

        return self._faces.get(check_int(k, "k"), ())  # (a list was a raw "unhashable type", "1" or 1.5 gave ())

    @property
    def f_vector(self) -> tuple:
        """Numbers of faces of dimension 0, 1, ..., dim."""
        return tuple(len(self.faces(k)) for k in range(self.dim + 1))

    @property
    def is_triangulation(self) -> bool:
        """Every maximal cell is a simplex (``dim + 1`` points, hence no non-vertex points either)."""
        return all(len(c) == self.dim + 1 for c in self.cells)

    def cell_volumes(self) -> tuple:
        """Normalised volume (``dim!·vol``, exact) of each maximal cell, in the projected lattice coordinates."""
        A = self._form.A
        out = []
        for c in self.cells:
            first: dict = {}
            for i in c:
                first.setdefault(A[i], i)
            c = tuple(sorted(first.values()))
            if self.dim == 0:
                out.append(Fraction(1))
            elif len(c) == self.dim + 1:
                M = [[A[c[j]][t] - A[c[0]][t] for t in range(self.dim)] for j in range(1, self.dim + 1)]
                out.append(Fraction(abs(_det(M))))
            else:
                out.append(_normalised_volume(A, list(c)))
        la = self._lattice_scale()
        return tuple(v / la for v in out)

    def _lattice_scale(self) -> Fraction:
        # volumes were measured after scaling exponents by lambda_a; undo it
        P = [[_to_fraction(v) for v in row] for row in self.points]
        la = _lcm([v.denominator for row in P for v in row] or [1])
        return Fraction(la) ** self.dim

    @property
    def is_unimodular(self) -> bool:
        """A triangulation all of whose simplices are unimodular lattice simplices (needs integer exponents).

        Each simplex must have normalised volume 1 in the lattice ``Z^n`` restricted to its affine span: the
        gcd of the maximal minors of its edge vectors is 1 (for a full-dimensional configuration, ``|det| = 1``).
        Like :meth:`TropicalHypersurface.is_smooth <tropix.tropical.hypersurface.TropicalHypersurface.is_smooth>`,
        lower-dimensional configurations are measured in their own lattice (not in the projected coordinates
        of :meth:`cell_volumes`), and points with non-integer coordinates give False (they are no lattice
        points).
        """
        if not self.is_triangulation:
            return False
        E = [[_to_fraction(v) for v in row] for row in self.points.tolist()]
        if any(v.denominator != 1 for row in E for v in row):
            return False
        E = [[int(v) for v in row] for row in E]
        k, n = self.dim, self.points.shape[1]
        if k == n:
            return all(v == 1 for v in self.cell_volumes())
        for cell in self.cells:
            M = [[E[i][t] - E[cell[0]][t] for t in range(n)] for i in cell[1:]]
            g = 0
            for cols in combinations(range(n), k):
                g = math.gcd(g, _det([[row[c] for c in cols] for row in M]))
                if g == 1:
                    break
            if g != 1:
                return False
        return True


def regular_subdivision(points: Any, heights: Any, *, semiring: Semiring | str | None = None) -> RegularSubdivision:
    """The regular subdivision of ``points`` induced by ``heights`` under the semiring's convention.

    Parameters
    ----------
    points : array_like, shape (m, n)
        Distinct exponent vectors (integer, rational or real).
    heights : array_like, shape (m,)
        Coefficients; max-plus lifts to the upper hull, min-plus to the lower hull.  The tropical zero
        is not allowed here (drop that point instead).
    semiring : MaxPlus (default) or MinPlus

    Returns
    -------
    RegularSubdivision

    Raises
    ------
    EmptyInputError, ShapeError, NaNError, ConventionError

    Examples
    --------
    >>> from tropix import MinPlus
    >>> regular_subdivision([[0], [1], [2]], [0, 1, 0]).cells  # max-plus: the middle point is lifted up
    ((0, 1), (1, 2))
    >>> regular_subdivision([[0], [1], [2]], [0, 1, 0], semiring=MinPlus).cells  # min-plus: lower hull
    ((0, 2),)
    """
    S = require_tropical(semiring, "a regular subdivision")
    pts = _check_points(points)
    h = to_numpy(heights) if is_array(heights) else asarray(heights, name="heights")
    h = S.validate(h, "heights")
    if h.ndim != 1 or h.shape[0] != pts.shape[0]:
        raise ShapeError(f"need one height per point: {pts.shape[0]} points, heights of shape {tuple(h.shape)}")
    for v in np.asarray(h, dtype=object).ravel():
        if isinstance(v, float) and math.isinf(v):
            raise ConventionError("a height is the tropical zero; remove that point instead")
    return _subdivide(pts, h, S)


def _subdivide(pts: np.ndarray, h: np.ndarray, S: TropicalSemiring, *, distinct: bool = False) -> RegularSubdivision:
    """The computation behind :func:`regular_subdivision`, on validated input (used directly by
    :class:`~tropix.tropical.polynomial.TropicalPolynomial`, whose terms are validated and distinct:
    it passes ``distinct=True`` to skip the search for repeated points)."""
    groups = None if distinct else _duplicates(pts)
    if groups is None:
        return _build(pts, h, S, _integer_form(pts, h, S.sense))
    return _with_repeated_points(pts, h, S, groups)


def _duplicates(pts):
    """None if the points are distinct, else the list of index groups of equal points (in first-seen order)."""
    if np.issubdtype(pts.dtype, np.integer) or pts.dtype == np.float64:
        if len(set(map(tuple, pts.tolist()))) == pts.shape[0]:
            return None
    seen: dict = {}
    for i, r in enumerate(pts.tolist()):
        seen.setdefault(tuple(_to_fraction(v) for v in r), []).append(i)
    if len(seen) == pts.shape[0]:
        return None
    return list(seen.values())


def _with_repeated_points(pts, h, S, groups) -> RegularSubdivision:
    """Repeated points: a copy lifted lower than another never lies on the hull, copies at the best
    height lie on exactly the same cells.  Compute on one copy per point, then put the ties back."""
    hv = [_to_fraction(v) for v in np.asarray(h, dtype=object).tolist()]
    best = []
    members = []
    for g in groups:
        top = max(g, key=lambda i: S.sense * hv[i])
        best.append(top)
        members.append(sorted(i for i in g if hv[i] == hv[top]))
    keep = np.array(best)
    sub = _build(pts[keep], h[keep], S, _integer_form(pts[keep], h[keep], S.sense))

    def expand(face):
        return tuple(sorted(i for u in face for i in members[u]))

    cells = tuple(expand(c) for c in sub.cells)
    order = sorted(range(len(cells)), key=lambda i: cells[i])
    faces = {d: tuple(sorted(expand(f) for f in fs)) for d, fs in sub._faces.items()}
    face_cells = {expand(f): sorted(order.index(ci) for ci in cs) for f, cs in sub._face_cells.items()}
    boundary = tuple(sorted((expand(r), g) for r, g in sub._boundary))
    form = _integer_form(pts, h, S.sense)
    return RegularSubdivision(
        pts, h, S, sub.dim, tuple(cells[i] for i in order), form,
        tuple(sub._functions[i] for i in order), boundary, faces, face_cells,
    )


def _build(pts, h, S, form: _IntegerForm) -> RegularSubdivision:
    k = form.dim
    N = len(form.A)
    if k == 0:
        return RegularSubdivision(pts, h, S, 0, ((0,),), form, ((1, 0),), (), {0: ((0,),)}, {(0,): [0]})
    seeds = _qhull_seeds(form.A, form.c, form.array) if k >= 2 else []
    cells, ridge_cells, boundary = _hull.upper_hull_cells(form.A, form.c, seeds, arr=form.array)
    if ridge_cells is None:  # vectorised path: sorted tuples in lexicographic order already
        cell_t = tuple(cells)
        funcs = tuple(cells.values())
        bnd = tuple(sorted(boundary.items()))
    else:
        order = sorted(cells, key=lambda s: sorted(s))
        cell_t = tuple(tuple(sorted(s)) for s in order)
        funcs = tuple(cells[s] for s in order)
        bnd = tuple(sorted((tuple(sorted(r)), g) for r, g in boundary.items()))
    # the vectorised path (ridge_cells is None) only answers for triangulations
    if len(cell_t) > 1 and (ridge_cells is None or all(len(s) == k + 1 for s in cell_t)):
        faces_t, face_cells = _simplicial_faces(cell_t, k)
        return RegularSubdivision(pts, h, S, k, cell_t, form, funcs, bnd, faces_t, face_cells)
    faces: dict[int, set] = {d: set() for d in range(k + 1)}
    face_cells: dict[tuple, list] = {}
    for ci, s in enumerate(cell_t):
        if len(s) == k + 1:
            for d in range(k + 1):
                for comb in combinations(s, d + 1):
                    faces[d].add(comb)
                    face_cells.setdefault(comb, []).append(ci)
        else:
            sub = _hull.polytope_faces([form.A[i] for i in s], s)
            for d, fs in sub.items():
                for f in fs:
                    t = tuple(sorted(f))
                    faces[d].add(t)
                    face_cells.setdefault(t, []).append(ci)
    faces_t = {d: tuple(sorted(fs)) for d, fs in faces.items()}
    del N
    return RegularSubdivision(pts, h, S, k, cell_t, form, funcs, bnd, faces_t, face_cells)


def _simplicial_faces(cell_t, k):
    """Faces of a triangulation by dimension (sorted) and the cells containing each, vectorised."""
    T = np.array(cell_t, dtype=np.int64)
    m = T.shape[0]
    faces_t: dict = {}
    face_cells: dict = {}
    for d in range(k + 1):
        if d == k:  # the cells themselves: distinct and sorted already
            faces_t[k] = tuple(cell_t)
            face_cells.update(zip(cell_t, ((i,) for i in range(m))))
            continue
        combs = list(combinations(range(k + 1), d + 1))
        F = np.concatenate([T[:, list(c)] for c in combs])
        owner = np.tile(np.arange(m), len(combs))
        N = int(T.max()) + 1
        if N ** (d + 1) * m < (1 << 62):  # rows (then owner) as integer keys: same lexicographic order
            key = np.zeros(F.shape[0], dtype=np.int64)
            for j in range(d + 1):
                key = key * N + F[:, j]
            order = np.argsort(key * m + owner)
            ks = key[order]
            starts = np.flatnonzero(np.concatenate(([True], ks[1:] != ks[:-1])))
            uniq = F[order[starts]]
        else:
            uniq, inv = np.unique(F, axis=0, return_inverse=True)
            inv = inv.ravel()
            order = np.lexsort((owner, inv))
            starts = np.flatnonzero(np.concatenate(([True], np.diff(inv[order]) != 0)))
        ow = tuple(owner[order].tolist())  # increasing within each face; slices are tuples
        cuts = starts.tolist() + [len(ow)]
        keys = list(map(tuple, uniq.tolist()))
        faces_t[d] = tuple(keys)
        face_cells.update(zip(keys, (ow[a:b] for a, b in zip(cuts, cuts[1:]))))
    return faces_t, face_cells
