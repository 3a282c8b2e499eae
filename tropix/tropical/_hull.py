"""Exact integer convex-hull kernels behind Newton polytopes, regular subdivisions and normal fans (internal).

Everything here works on *integer* point coordinates (callers scale rationals and floats, which are
dyadic rationals, to integers first), so every predicate is decided exactly.  Floating point (qhull via
SciPy) is only ever used to *propose* candidate facets; each candidate is verified exactly and the
facet set is completed by exact gift-wrapping, so the result does not depend on floating point.

The one primitive is the rotation :func:`_rotate` of a supporting affine function about a face:
given integer values ``L <= 0`` of a supporting function (zero on the current face) and values ``M`` of
an affine function vanishing on a lower-dimensional face, ``L + t*M`` with
``t* = max_{M(p) < 0} L(p) / (-M(p))`` is again supporting and touches the points attaining ``t*``.
It gives the initial facet, the neighbouring facet across a ridge (gift wrapping) and the neighbouring
cell of a regular subdivision, in any dimension.

Affine functions are integer coefficient vectors ``f`` over the columns of a feature matrix
``X = [coordinates | 1]``; values are ``X @ f``.  Products are formed in ``int64`` when a bound proves
they cannot overflow, in Python integers (object arrays) otherwise.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "int_matrix",
    "values",
    "nullspace",
    "affine_independent_subset",
    "hull_facets",
    "polytope_faces",
    "upper_hull_cells",
]

_I64_SAFE = 1 << 62


def int_matrix(rows) -> np.ndarray:
    """An integer matrix as int64 if every entry fits comfortably, else an object array of Python ints."""
    try:
        b = np.array(rows, dtype=np.int64)
        if b.size == 0 or int(np.max(np.abs(b))) < (1 << 31):
            return b
    except OverflowError:
        pass
    a = np.asarray(rows, dtype=object)
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [int(v) for v in a.ravel()]
    return out


def _maxabs(a: np.ndarray) -> int:
    if a.size == 0:
        return 0
    if a.dtype == object:
        return max(abs(int(v)) for v in a.ravel())
    return int(np.max(np.abs(a)))


def values(X: np.ndarray, F) -> np.ndarray:
    """Exact ``X @ F`` for integer matrices (``F`` a vector or a matrix of column functions)."""
    F = np.asarray(F, dtype=object) if not isinstance(F, np.ndarray) else F
    bound = _maxabs(X) * _maxabs(F) * (X.shape[1] if X.ndim == 2 else 1)
    if bound < _I64_SAFE:
        return _int_matmul(X.astype(np.int64), F.astype(np.int64), bound)
    return X.astype(object) @ F.astype(object)


_F64_EXACT = 1 << 53


def _int_matmul(A: np.ndarray, B: np.ndarray, bound: int) -> np.ndarray:
    """``A @ B`` for int64 matrices given ``bound`` >= ``max|A| * max|B| * inner dimension`` (< 2**62).

    Below ``2**53`` every product and every partial sum is an integer that float64 represents exactly,
    whatever the summation order, so the (much faster for small matrices) floating-point product is
    exact; it is returned as int64.  Otherwise, and for large outputs (where the int64 kernel is as fast
    and multithreaded BLAS suffers on a busy machine), the int64 product (no overflow under the bound).
    """
    if bound < _F64_EXACT and A.ndim == 2 and A.shape[0] * (B.shape[1] if B.ndim == 2 else 1) <= (1 << 17):
        return (A.astype(np.float64) @ B.astype(np.float64)).astype(np.int64)
    return A @ B


def _gcd_reduce(f: Sequence[int]) -> tuple:
    g = 0
    for v in f:
        g = math.gcd(g, int(v))
    if g <= 1:
        return tuple(int(v) for v in f)
    return tuple(int(v) // g for v in f)


def rref(rows: Sequence[Sequence[Fraction]]) -> tuple[list[list[Fraction]], list[int]]:
    """Reduced row echelon form of a matrix of Fractions: (the non-zero rows, their pivot columns), exact."""
    rows = [list(r) for r in rows]
    ncols = len(rows[0]) if rows else 0
    pivots: list[int] = []
    r = 0
    for c in range(ncols):
        piv = next((i for i in range(r, len(rows)) if rows[i][c] != 0), None)
        if piv is None:
            continue
        rows[r], rows[piv] = rows[piv], rows[r]
        pv = rows[r][c]
        rows[r] = [v / pv for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][c] != 0:
                fac = rows[i][c]
                rows[i] = [a - fac * b for a, b in zip(rows[i], rows[r])]
        pivots.append(c)
        r += 1
        if r == len(rows):
            break
    return rows[:r], pivots


def primitive(v) -> tuple:
    """The primitive integer vector in the direction of a rational vector (the zero vector stays zero)."""
    if all(type(x) is int for x in v):
        ints = list(v)
    else:
        fr = [Fraction(x) for x in v]
        den = 1
        for x in fr:
            den = den * x.denominator // math.gcd(den, x.denominator)
        ints = [int(x * den) for x in fr]
    g = 0
    for x in ints:
        g = math.gcd(g, x)
    return tuple(x // g for x in ints) if g else tuple(ints)


def nullspace(rows: Sequence[Sequence], ncols: int | None = None) -> list[tuple]:
    """Integer basis (primitive vectors) of the right null space of a rational matrix (exact).

    ``ncols`` is needed only when ``rows`` is empty (then the basis is the standard basis of that size).
    """
    ncols = len(rows[0]) if rows else (ncols or 0)
    rows, pivots = rref([list(map(Fraction, r)) for r in rows])
    basis = []
    for fc in (c for c in range(ncols) if c not in pivots):
        v = [Fraction(0)] * ncols
        v[fc] = Fraction(1)
        for i, pc in enumerate(pivots):
            v[pc] = -rows[i][fc]
        basis.append(primitive(v))
    return basis


def _null1(rows: Sequence[Sequence[int]]) -> tuple | None:
    """The primitive integer vector spanning a one-dimensional null space (None if it is larger)."""
    k = len(rows)
    if k == 2 and len(rows[0]) == 3:  # cross product, the hot path for plane curves
        (a0, a1, a2), (b0, b1, b2) = rows
        v = (a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0)
        if v == (0, 0, 0):
            return None
        return _gcd_reduce(v)
    if k == 1 and len(rows[0]) == 2:
        a0, a1 = rows[0]
        if a0 == 0 and a1 == 0:
            return None
        return _gcd_reduce((-a1, a0))
    if k + 1 == len(rows[0]):  # cofactor vector: zero exactly when the rank is below k
        v = []
        for i in range(k + 1):
            minor = [[r[j] for j in range(k + 1) if j != i] for r in rows]
            v.append((-1) ** i * det_int(minor))
        if not any(v):
            return None
        return _gcd_reduce(v)
    ns = nullspace(rows)
    return ns[0] if len(ns) == 1 else None


def det_int(M) -> int:
    """Determinant of a square integer matrix (Bareiss fraction-free elimination, exact)."""
    M = [[int(v) for v in r] for r in M]
    n = len(M)
    if n == 0:
        return 1
    if n == 1:
        return M[0][0]
    if n == 2:
        return M[0][0] * M[1][1] - M[0][1] * M[1][0]
    if n == 3:
        (a, b, c), (d, e, f), (g, h, i) = M
        return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    sign = 1
    prev = 1
    for k in range(n - 1):
        if M[k][k] == 0:
            sw = next((r for r in range(k + 1, n) if M[r][k] != 0), None)
            if sw is None:
                return 0
            M[k], M[sw] = M[sw], M[k]
            sign = -sign
        for i in range(k + 1, n):
            for j in range(k + 1, n):
                M[i][j] = (M[i][j] * M[k][k] - M[i][k] * M[k][j]) // prev
        prev = M[k][k]
    return sign * M[n - 1][n - 1]


def _vdet(T: np.ndarray) -> np.ndarray:
    """Determinants of a stack of small square integer matrices (m, k, k), exactly, by Laplace expansion."""
    k = T.shape[1]
    if k == 1:
        return T[:, 0, 0]
    if k == 2:
        return T[:, 0, 0] * T[:, 1, 1] - T[:, 0, 1] * T[:, 1, 0]
    if k == 3:
        a, b, c = T[:, 0, 0], T[:, 0, 1], T[:, 0, 2]
        d, e, f = T[:, 1, 0], T[:, 1, 1], T[:, 1, 2]
        g, h, i = T[:, 2, 0], T[:, 2, 1], T[:, 2, 2]
        return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)
    out = 0
    for j in range(k):
        minor = np.delete(np.delete(T, 0, axis=1), j, axis=2)
        term = T[:, 0, j] * _vdet(minor)
        out = out + term if j % 2 == 0 else out - term
    return out


def seed_functions(X: np.ndarray, simplices: np.ndarray) -> np.ndarray:
    """Functions through each simplex of lifted points (rows of X, ``k+2`` columns), vectorised and exact.

    Row ``i`` holds the cofactors of the ``(k+1) x (k+2)`` matrix ``X[simplices[i]]``: zero exactly when the
    simplex is degenerate.  int64 when a Hadamard-type bound proves there is no overflow, else Python ints.
    """
    T = X[simplices]  # (m, k+1, k+2)
    r = T.shape[1]
    if X.dtype == object:
        colmax = sorted((_maxabs(X[:, j]) for j in range(X.shape[1])), reverse=True)
    else:
        colmax = sorted(np.abs(X).max(axis=0).tolist() if X.size else [0] * X.shape[1], reverse=True)
    bound = math.factorial(r)
    for v in colmax[:r]:
        bound *= max(v, 1)
    T = T.astype(object) if bound >= _I64_SAFE else T.astype(np.int64)
    cols = []
    for i in range(r + 1):
        d = _vdet(np.delete(T, i, axis=2))
        cols.append(d if i % 2 == 0 else -d)
    return np.stack(cols, axis=1)


def affine_independent_subset(P: Sequence[Sequence]) -> list[int]:
    """Indices of a maximal affinely independent subset of the points ``P`` (exact, greedy)."""
    if len(P) == 0:
        return []
    if isinstance(P, np.ndarray) and P.dtype.kind in "iu":
        return _affine_independent_int(P)
    chosen = [0]
    basis: list[list[Fraction]] = []  # echelon rows of differences
    pivcols: list[int] = []
    p0 = [Fraction(v) for v in P[0]]
    dim = len(p0)
    for i in range(1, len(P)):
        if len(basis) == dim:
            break
        v = [Fraction(x) - y for x, y in zip(P[i], p0)]
        for row, pc in zip(basis, pivcols):
            if v[pc] != 0:
                fac = v[pc] / row[pc]
                v = [a - fac * b for a, b in zip(v, row)]
        nz = next((c for c in range(dim) if v[c] != 0), None)
        if nz is not None:
            basis.append(v)
            pivcols.append(nz)
            chosen.append(i)
    return chosen


def _affine_independent_int(P: np.ndarray) -> list[int]:
    """:func:`affine_independent_subset` for an integer matrix, vectorised (same greedy choice).

    Fraction-free (Bareiss) elimination on all difference vectors ``P[i] - P[0]`` at once: after ``j``
    pivots, row ``i`` holds ``(j+1) x (j+1)`` minors, zero exactly when ``P[i] - P[0]`` lies in the span of
    the chosen differences, so the first non-zero row is the greedy next point.  int64 when a Hadamard
    bound on the minors (squared: the products before the exact division) proves there is no overflow,
    Python integers otherwise.
    """
    N, dim = P.shape
    D = P[1:].astype(np.int64) - P[0].astype(np.int64) if N > 1 else np.zeros((0, dim), np.int64)
    m = int(np.max(np.abs(D))) if D.size else 0
    bound = math.factorial(dim) * max(m, 1) ** dim
    if 2 * bound * bound >= _I64_SAFE or int(np.max(np.abs(P), initial=0)) >= (1 << 31):  # (0 columns: no variable)
        D = P[1:].astype(object) - P[0].astype(object)
    chosen = [0]
    prev = 1
    start = 0
    for _ in range(dim):
        nz = np.flatnonzero(np.any(D[start:] != 0, axis=1))
        if nz.size == 0:
            break
        i = start + int(nz[0])
        row = D[i].copy()
        pc = int(np.flatnonzero(row != 0)[0])
        piv = row[pc]
        D = (D * piv - D[:, pc : pc + 1] * row[None, :]) // prev
        prev = piv
        chosen.append(i + 1)
        start = i + 1
    return chosen


def _float_guess(a: int, b: int) -> float:
    """``a / b`` as a float for a first guess (``b > 0``): ``±inf`` beyond the float range, where the exact
    comparison that follows decides."""
    try:
        return float(Fraction(a, b))
    except OverflowError:
        return math.inf if a > 0 else -math.inf


def _rotate(L: np.ndarray, M: np.ndarray):
    """Exact rotation step.  Returns (q, tie_mask) with t* = L[q] / (-M[q]), or None if no M < 0.

    ``L <= 0`` everywhere; over the points with ``M < 0`` it maximises ``L / (-M)`` exactly.
    """
    neg = np.nonzero(M < 0)[0]
    if neg.size == 0:
        return None
    Ln = L[neg]
    Mn = M[neg]
    # float guess of the maximiser, then exact confirmation (and correction if the guess was off)
    with np.errstate(all="ignore"):
        ratio = np.array([_float_guess(int(a), -int(b)) for a, b in zip(Ln, Mn)]) if Ln.dtype == object else (
            Ln.astype(np.float64) / (-Mn.astype(np.float64))
        )
    q = int(np.argmax(ratio))
    while True:
        lq, mq = int(Ln[q]), -int(Mn[q])
        lhs = _mul(Ln, mq)  # L_p * (-M_q)
        rhs = _mul(-Mn, lq)  # L_q * (-M_p)
        better = np.nonzero(lhs > rhs)[0]
        if better.size == 0:
            break
        q = int(better[0])
    tie = np.zeros(L.shape[0], dtype=bool)
    tie[neg[lhs == rhs]] = True
    return int(neg[q]), tie


def _mul(a: np.ndarray, k: int) -> np.ndarray:
    if a.dtype != object and _maxabs(a) * abs(k) < _I64_SAFE:
        return a * k
    return a.astype(object) * k


def _combine(f: Sequence[int], g: Sequence[int], lq: int, mq: int) -> tuple:
    """Coefficients of ``(-M_q) * f + L_q * g`` (= (-M_q)(f + t* g)), reduced by their gcd."""
    return _gcd_reduce([mq * int(a) + lq * int(b) for a, b in zip(f, g)])


# ---------------------------------------------------------------------------------------------------
# convex hulls in any dimension


def hull_facets(P: Sequence[Sequence[int]], *, propose: bool = False) -> list[tuple[frozenset, tuple]]:
    """Facets of the convex hull of full-dimensional integer points ``P`` in R^d (exact).

    Returns a list of ``(indices of all points on the facet, f)`` where ``f = (w, w0)`` are primitive
    integer coefficients with ``w·p + w0 <= 0`` for every point and ``= 0`` exactly on the facet.

    By default the facets are found by exact gift wrapping (the monotone chain for d = 2).  With
    ``propose=True`` (d >= 2) qhull first proposes a triangulated boundary (:func:`_qhull_facets`: every
    facet verified exactly, the whole checked to be closed), in qhull's order; if the check fails, gift
    wrapping finds the facets and they are listed in the order of their lexicographically first affine
    basis among the distinct points (the order of an exhaustive search over point subsets).
    """
    P = [tuple(int(v) for v in p) for p in P]
    d = len(P[0])
    X = int_matrix([list(p) + [1] for p in P])
    if d == 1:
        xs = [p[0] for p in P]
        lo, hi = min(xs), max(xs)
        return [
            (frozenset(i for i, x in enumerate(xs) if x == lo), (-1, lo)),
            (frozenset(i for i, x in enumerate(xs) if x == hi), (1, -hi)),
        ]
    if propose:
        planes = _qhull_facets(P, d)
        if planes is not None:
            return [(_on(X, f), f) for f in planes]
        facets = hull_facets(P)
        first = {}  # index of the first occurrence of each distinct point
        for i, p in enumerate(P):
            first.setdefault(p, i)
        reps = sorted(first.values())
        keys = []
        for on, f in facets:
            pts = [i for i in reps if i in on]
            keys.append(tuple(pts[j] for j in affine_independent_subset([P[i] for i in pts])))
        return [fc for _, fc in sorted(zip(keys, facets), key=lambda t: t[0])]
    if d == 2:
        return _hull2(P, X)
    # initial facet by rotation, then gift wrapping across ridges (found recursively)
    f = _initial_support(X, d)
    facets: dict[frozenset, tuple] = {}
    queue = [f]
    while queue:
        f = queue.pop()
        vals = values(X, np.array(f, dtype=object))
        on = frozenset(np.nonzero(vals == 0)[0].tolist())
        if on in facets:
            continue
        facets[on] = f
        for ridge_pts, g in _facet_ridges(P, sorted(on), f):
            # g: affine function on R^d vanishing on the ridge, <= 0 on the facet
            # neighbour = g + s* f with s* = max over points off the facet of g(p) / (-f(p))
            G = values(X, np.array(g, dtype=object))
            q, _ = _rotate(G, vals)
            nf = _combine(g, f, int(G[q]), -int(vals[q]))
            key = frozenset(np.nonzero(values(X, np.array(nf, dtype=object)) == 0)[0].tolist())
            if key not in facets:
                queue.append(nf)
    return [(k, v) for k, v in facets.items()]


def _on(X: np.ndarray, f: tuple) -> frozenset:
    """Indices of the rows of ``X = [P | 1]`` on the hyperplane ``f = 0``."""
    return frozenset(np.nonzero(values(X, np.array(f, dtype=object)) == 0)[0].tolist())


def _plane_through(P, pts: list[int], d: int) -> tuple | None:
    """The supporting hyperplane ``(w, w0)`` (``w·p + w0 <= 0`` on all of ``P``) through the points ``pts``.

    ``pts`` are ``d`` points of ``P ⊂ Z^d``; None unless they are affinely independent and their hyperplane
    supports ``P`` (all points on one side, not all on it).  ``w`` primitive, so ``(w, w0)`` is too.
    """
    z0 = P[pts[0]]
    ns = nullspace([[a - b for a, b in zip(P[p], z0)] for p in pts[1:]], d)
    if len(ns) != 1:
        return None
    w = ns[0]
    w0 = -sum(a * b for a, b in zip(w, z0))
    vals = [sum(a * b for a, b in zip(w, z)) + w0 for z in P]
    hi, lo = max(vals), min(vals)
    if hi > 0 and lo < 0 or hi == 0 and lo == 0:
        return None
    if hi > 0:
        w, w0 = tuple(-x for x in w), -w0
    return tuple(w) + (w0,)


def _qhull_facets(P, d: int) -> list[tuple] | None:
    """Facets proposed by qhull and verified exactly, as ``(w, w0)`` tuples in qhull's order; None on failure.

    Every simplex of qhull's triangulated boundary must span an exact supporting hyperplane, and every ridge
    must lie in exactly two simplices (a closed pseudomanifold): then the proposal is the whole boundary.
    """
    from scipy.spatial import ConvexHull, QhullError

    try:
        hull = ConvexHull(np.array(P, dtype=np.float64))
    except (QhullError, ValueError):
        return None
    planes = {}
    ridges: dict[tuple, int] = {}
    for simplex in hull.simplices:
        key = tuple(sorted(int(v) for v in simplex))
        h = _plane_through(P, list(key), d)
        if h is None:
            return None
        planes[h] = True
        for r in itertools.combinations(key, d - 1):
            ridges[r] = ridges.get(r, 0) + 1
    if any(c != 2 for c in ridges.values()):
        return None
    return list(planes)


def _hull2(P, X):
    """Polygon edges by the monotone chain, with every point lying on an edge included in its set."""
    idx = sorted(range(len(P)), key=lambda i: P[i])

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[int] = []
    for i in idx:
        while len(lower) >= 2 and cross(P[lower[-2]], P[lower[-1]], P[i]) <= 0:
            lower.pop()
        lower.append(i)
    upper: list[int] = []
    for i in reversed(idx):
        while len(upper) >= 2 and cross(P[upper[-2]], P[upper[-1]], P[i]) <= 0:
            upper.pop()
        upper.append(i)
    ring = lower[:-1] + upper[:-1]  # counter-clockwise
    out = []
    for k in range(len(ring)):
        a, b = P[ring[k]], P[ring[(k + 1) % len(ring)]]
        # outward normal of a ccw edge a->b is (dy, -dx)
        w = (b[1] - a[1], -(b[0] - a[0]))
        f = _gcd_reduce((w[0], w[1], -(w[0] * a[0] + w[1] * a[1])))
        vals = values(X, np.array(f, dtype=object))
        out.append((frozenset(np.nonzero(vals == 0)[0].tolist()), f))
    return out


def _initial_support(X: np.ndarray, d: int) -> tuple:
    """A facet-defining function of the hull of the rows of X = [P | 1], by repeated rotation."""
    f = tuple([1] + [0] * (d - 1) + [-max(int(v) for v in X[:, 0])])
    while True:
        vals = values(X, np.array(f, dtype=object))
        T = np.nonzero(vals == 0)[0]
        rows = [[int(v) for v in X[i]] for i in T]
        ns = nullspace(rows)  # affine functions vanishing on T
        # dimension of aff(T) = d - (len(ns) - 1) ... len(ns) == 1 means T spans a hyperplane
        if len(ns) <= 1:
            return _gcd_reduce(f)
        g = next(v for v in ns if not _proportional(v, f))
        M = values(X, np.array(g, dtype=object))
        if not np.any(M < 0):
            M = -M
            g = tuple(-x for x in g)
        if not np.any(M < 0):  # g vanishes on every point: cannot happen for full-dimensional P
            raise ValueError("points are not full-dimensional")
        q, _ = _rotate(vals, M)
        f = _combine(f, g, int(vals[q]), -int(M[q]))


def _proportional(u, v) -> bool:
    u = list(u)
    v = list(v)
    for i in range(len(u)):
        for j in range(i + 1, len(u)):
            if u[i] * v[j] != u[j] * v[i]:
                return False
    return True


def _drop_coordinate(f_w: Sequence[int]) -> int:
    return next(i for i, w in enumerate(f_w) if w != 0)


def _facet_ridges(P, on: list[int], f: tuple):
    """Ridges of the facet {f = 0} of a d-dimensional hull, as (global indices, g on R^d)."""
    d = len(P[0])
    drop = _drop_coordinate(f[:d])
    Q = [tuple(v for k, v in enumerate(P[i]) if k != drop) for i in on]
    out = []
    for loc, h in hull_facets(Q):
        # h on R^{d-1}: lift by inserting 0 at the dropped coordinate
        g = list(h[: d - 1])
        g.insert(drop, 0)
        g.append(h[d - 1])
        out.append((frozenset(on[i] for i in loc), tuple(g)))
    return out


def polytope_faces(P: Sequence[Sequence[int]], idx: Sequence[int] | None = None) -> dict[int, set]:
    """All faces of conv(P) for points P affinely spanning R^d, by dimension (sets of frozensets of indices).

    Faces are identified with the set of *all* points of ``P`` lying on them.  Simplices are handled
    combinatorially; other polytopes by exact facet enumeration, recursively.
    """
    P = [tuple(int(v) for v in p) for p in P]
    idx = list(range(len(P))) if idx is None else list(idx)
    d = len(P[0]) if P else 0
    out: dict[int, set] = {k: set() for k in range(d + 1)}
    out[d].add(frozenset(idx))
    if d == 0:
        return out
    if len(P) == d + 1:  # a simplex: every subset is a face
        from itertools import combinations

        for k in range(d):
            for c in combinations(idx, k + 1):
                out[k].add(frozenset(c))
        return out
    if d == 1:
        xs = [p[0] for p in P]
        out[0].add(frozenset([idx[xs.index(min(xs))]]))
        out[0].add(frozenset([idx[xs.index(max(xs))]]))
        return out
    for loc, f in hull_facets(P):
        loc = sorted(loc)
        drop = _drop_coordinate(f[:d])
        Q = [tuple(v for k, v in enumerate(P[i]) if k != drop) for i in loc]
        sub = polytope_faces(Q, [idx[i] for i in loc])
        for k, faces in sub.items():
            out[k] |= faces
    return out


# ---------------------------------------------------------------------------------------------------
# regular subdivisions


def upper_hull_cells(A: Sequence[Sequence[int]], c: Sequence[int], seeds: Iterable[Sequence[int]] = (), *, arr=None):
    """Maximal cells of the regular subdivision of full-dimensional integer points ``A`` lifted by ``c``.

    The cells are the projections of the upper facets of conv{(a, c_a)}.  ``seeds`` are candidate cells
    (index tuples of n+1 points, e.g. from qhull); each is verified exactly, the rest is found by exact
    gift wrapping, so the output is exact whatever the seeds.

    Returns
    -------
    cells : dict
        All points on each cell (a frozenset, or a sorted tuple when the vectorised triangulation path
        answered, then in lexicographic order), mapped to its function ``f`` over ``[A | c | 1]``
        (``f_c > 0``, ``f <= 0`` on every lifted point, ``= 0`` exactly on the cell).
    ridges : dict or None
        For each ridge (all points on it) the cells containing it; None from the vectorised path.
    boundary : dict
        Boundary ridges mapped to their outward function ``g`` over ``[A | 1]`` (``g <= 0`` on the cell).

    ``arr``, optional, is ``A`` as an int64 matrix with entries below ``2**31`` (saves a conversion).
    """
    if not isinstance(A, tuple):  # tuples of tuples of Python ints come from _integer_form as they are
        A = [tuple(int(v) for v in a) for a in A]
    n = len(A[0])
    if arr is not None:
        XA = np.empty((arr.shape[0], n + 1), dtype=np.int64)
        XA[:, :n] = arr
        XA[:, n] = 1
    else:
        XA = int_matrix([list(a) + [1] for a in A])
    if XA.dtype != object and all(type(ci) is int for ci in c) and max(map(abs, c)) < (1 << 31):
        X = np.empty((XA.shape[0], n + 2), dtype=np.int64)
        X[:, :n] = XA[:, :n]
        X[:, n] = np.array(c, dtype=np.int64)
        X[:, n + 1] = 1
    else:
        X = int_matrix([list(a) + [int(ci), 1] for a, ci in zip(A, c)])
    seeds = np.asarray(seeds if isinstance(seeds, np.ndarray) else list(seeds), dtype=np.int64).reshape(-1, n + 1)
    if n >= 2 and len(seeds) > 1 and X.dtype != object and len(A) ** (n + 1) < (1 << 62):
        fast = _fast_triangulation(X, XA, seeds, n)
        if fast is not None:
            return fast
    cells: dict[frozenset, tuple] = {}
    # seeds: exact function through n+1 lifted points, kept if upper and supporting
    cand = []
    if len(seeds):
        Fv = seed_functions(X, seeds)
        Fv = Fv * np.where(Fv[:, n] < 0, -1, 1)[:, None]
        for row in Fv[Fv[:, n] > 0].tolist():
            cand.append(_gcd_reduce(row))
    if cand:
        F = np.array(sorted(set(cand)), dtype=object).T
        for j0 in range(0, F.shape[1], 2048):
            V = values(X, F[:, j0 : j0 + 2048])
            ok = np.all(V <= 0, axis=0)
            for j in np.nonzero(ok)[0]:
                key = frozenset(np.nonzero(V[:, j] == 0)[0].tolist())
                cells.setdefault(key, tuple(int(v) for v in F[:, j0 + j]))
    if not cells:
        f = _initial_upper(X, n)
        key = frozenset(np.nonzero(values(X, np.array(f, dtype=object)) == 0)[0].tolist())
        cells[key] = f
    queue = list(cells.keys())
    ridge_cells: dict[frozenset, list] = {}
    ridge_g: dict[frozenset, tuple] = {}
    for key in queue:
        for rkey, g in _cell_ridges(A, sorted(key)):
            ridge_cells.setdefault(rkey, []).append(key)
            ridge_g.setdefault(rkey, g)
    # close under adjacency: every ridge seen once is on the boundary or leads to a missing cell
    on_boundary: set = set()
    changed = True
    while changed:
        changed = False
        for rkey in list(ridge_cells):
            lst = ridge_cells[rkey]
            if len(lst) != 1 or rkey in on_boundary:
                continue
            key = lst[0]
            f = cells[key]
            g = _orient(ridge_g[rkey], A, key, rkey)
            M = -values(XA, np.array(g, dtype=object))
            if not np.any(M < 0):
                on_boundary.add(rkey)
                continue
            vals = values(X, np.array(f, dtype=object))
            q, _ = _rotate(vals, M)
            gl = list(g[:n]) + [0, g[n]]
            nf = _combine(f, [-x for x in gl], int(vals[q]), -int(M[q]))
            nkey = frozenset(np.nonzero(values(X, np.array(nf, dtype=object)) == 0)[0].tolist())
            if nkey in cells:  # pragma: no cover - would mean an inconsistent seed set
                raise AssertionError(("regular subdivision: inconsistent cell adjacency", A, list(c), rkey, key, nkey))
            cells[nkey] = nf
            for r2, g2 in _cell_ridges(A, sorted(nkey)):
                ridge_cells.setdefault(r2, []).append(nkey)
                ridge_g.setdefault(r2, g2)
            changed = True
    boundary = {}
    for rkey, lst in ridge_cells.items():
        if len(lst) == 1:
            boundary[rkey] = _orient(ridge_g[rkey], A, lst[0], rkey)
        elif len(lst) != 2:  # pragma: no cover - a ridge lies in exactly two cells
            raise AssertionError("regular subdivision: a ridge in more than two cells")
    return cells, ridge_cells, boundary


def _orient(g, A, cell, ridge):
    """Sign ``g`` so that it is <= 0 on the cell (positive beyond the ridge)."""
    n = len(A[0])
    for i in cell:
        if i not in ridge:
            v = sum(int(g[k]) * A[i][k] for k in range(n)) + int(g[n])
            return tuple(g) if v < 0 else tuple(-x for x in g)
    return tuple(g)


def _cell_ridges(A, cell: list[int]):
    """Facets of conv(A[cell]) as (frozenset of global indices, g over [A | 1])."""
    n = len(A[0])
    if len(cell) == n + 1:
        out = []
        for k in range(n + 1):
            rest = cell[:k] + cell[k + 1 :]
            g = _null1([list(A[i]) + [1] for i in rest])
            if n == 1:
                g = (1, -A[rest[0]][0])
            v = sum(g[j] * A[cell[k]][j] for j in range(n)) + g[n]
            if v > 0:
                g = tuple(-x for x in g)
            out.append((frozenset(rest), tuple(g)))
        return out
    return [(frozenset(cell[i] for i in loc), f) for loc, f in hull_facets([A[i] for i in cell])]


def _initial_upper(X: np.ndarray, n: int) -> tuple:
    """An upper cell function by rotating the horizontal plane through the highest lifted point."""
    f = tuple([0] * n + [1, -max(int(v) for v in X[:, n])])
    while True:
        vals = values(X, np.array(f, dtype=object))
        T = np.nonzero(vals == 0)[0]
        rows = [[int(X[i, k]) for k in range(n)] + [1] for i in T]
        ns = nullspace(rows)  # affine functions on R^n vanishing on the projected tie set
        if not ns:
            return _gcd_reduce(f)
        g = ns[0]
        gl = list(g[:n]) + [0, g[n]]
        M = values(X, np.array(gl, dtype=object))
        if not np.any(M < 0):
            M = -M
            gl = [-x for x in gl]
        q, _ = _rotate(vals, M)
        f = _combine(f, gl, int(vals[q]), -int(M[q]))


def _fast_triangulation(X: np.ndarray, XA: np.ndarray, seeds: np.ndarray, n: int):
    """Vectorised exact path for point sets whose regular subdivision is a triangulation.

    Verifies every seed simplex exactly (int64 under an overflow bound), checks that each verified cell
    has exactly ``n + 1`` points, that every ridge lies in one or two cells and that every ridge in one
    cell is on the boundary.  Returns None whenever one of these fails, so that the general exact path
    (gift wrapping, non-simplicial cells) takes over: the result is then the same, only slower.
    """
    F = seed_functions(X, seeds)
    if F.dtype == object:
        return None
    F = F * np.where(F[:, n] < 0, -1, 1)[:, None]
    F = F[F[:, n] > 0]
    if F.shape[0] == 0:
        return None
    g = np.gcd.reduce(np.abs(F), axis=1)
    F = F // g[:, None]  # no need to deduplicate: equal functions give equal cells, merged by the key below
    bound = _maxabs(X) * _maxabs(F) * X.shape[1]
    if bound >= _I64_SAFE:
        return None
    N = X.shape[0]
    tris, funcs = [], []
    step = max(1, (1 << 22) // max(N, 1))
    for j0 in range(0, F.shape[0], step):
        Fj = F[j0 : j0 + step]
        V = _int_matmul(X, Fj.T, bound)
        ok = np.all(V <= 0, axis=0)
        Z = V[:, ok] == 0
        if np.any(Z.sum(axis=0) != n + 1):
            return None
        _, rows = np.nonzero(Z.T)
        tris.append(rows.reshape(-1, n + 1))
        funcs.append(Fj[ok])
    T = np.concatenate(tris)
    Fk = np.concatenate(funcs)
    key = np.zeros(T.shape[0], dtype=np.int64)
    for j in range(n + 1):
        key = key * N + T[:, j]
    _, first = np.unique(key, return_index=True)  # rows sorted lexicographically, like np.unique(axis=0)
    T, Fk = T[first], Fk[first]
    drop = list(range(n + 1))
    pairs = np.concatenate([np.delete(T, i, axis=1) for i in drop])
    opposite = np.concatenate([T[:, i] for i in drop])
    code = np.zeros(pairs.shape[0], dtype=np.int64)
    for j in range(n):
        code = code * N + pairs[:, j]
    _, inv, counts = np.unique(code, return_inverse=True, return_counts=True)
    if np.any(counts > 2):
        return None
    # keys are sorted tuples here (rows of T are sorted, T is in lexicographic order)
    cells = dict(zip(map(tuple, T.tolist()), map(tuple, Fk.tolist())))
    boundary: dict = {}
    single = np.nonzero(counts[inv] == 1)[0]
    if single.size:
        R = pairs[single]  # (b, n) ridge point indices, each row sorted
        G = seed_functions(XA, R)  # (b, n+1): affine functions through the ridges (cofactors)
        if G.dtype == object or not np.all(np.any(G[:, :n] != 0, axis=1)):
            return None
        opp = np.einsum("ij,ij->i", XA[opposite[single]], G)
        G = G * np.where(opp > 0, -1, 1)[:, None]  # <= 0 on the cell, > 0 beyond the ridge
        bound = _maxabs(XA) * _maxabs(G) * XA.shape[1]
        if bound >= _I64_SAFE:
            return None
        if np.any(_int_matmul(XA, G.T, bound) > 0):
            return None  # a cell beyond some ridge is missing: let the general path find it
        g = np.gcd.reduce(np.abs(G), axis=1)
        G = G // g[:, None]
        boundary = dict(zip(map(tuple, R.tolist()), map(tuple, G.tolist())))
    return cells, None, boundary
