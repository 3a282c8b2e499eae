"""Tropical convexity: tropical polytopes, their types (covectors), cells, projection and distance.

The tropical convex hull of points ``v_1, …, v_n`` of the tropical projective space
``TP^{d-1} = (T^d minus the zero vector) / R·(1,…,1)`` is the set of all tropical linear combinations
``⊕_i λ_i ⊗ v_i``.  In max-plus (the tropix default) that is ``max_i (λ_i + v_i)``; in min-plus, the
convention of Develin–Sturmfels ("Tropical convexity", 2004) and of polymake, it is ``min_i (λ_i + v_i)``.
The two conventions are isomorphic through ``x ↦ −x``: the max-plus polytope of ``V`` is the negative of
the min-plus polytope of ``−V``, with identical combinatorics (types, cells, f-vectors).

Types.  For a point ``x`` with finite coordinates, point ``v_i`` *sees* ``x`` in the coordinate directions
``T_i(x) = {j : v_ij − x_j is ⊕-best}`` (largest in max-plus, smallest in min-plus, over the finite
entries of ``v_i``).  The *type* of ``x`` is ``(S_1, …, S_d)`` with ``S_j = {i : j ∈ T_i(x)}``; points of
equal type form the relatively open cells of a polyhedral decomposition of ``R^d / R·1``.  A cell is a
(tropical-and-ordinary) convex polyhedron cut out by difference constraints ``x_k − x_j ≥ c``; its dimension
is the number of connected components of the bipartite graph ``{(i, j) : j ∈ T_i}`` minus one.  ``x`` lies
in the polytope iff every ``S_j`` is non-empty; the cells in the polytope are its (bounded) cell complex,
and its 0-dimensional cells are the *pseudovertices*.

Points with tropical-zero coordinates (the boundary of ``TP^{d-1}``) are accepted as generators and as
arguments of :meth:`TropicalPolytope.project`, :meth:`TropicalPolytope.contains`, :func:`tropical_segment`
and :func:`hilbert_distance`.  The cell decomposition is that of the tropical torus (points whose
coordinates are all finite); with generators on the boundary the part of the polytope inside the torus may
be unbounded, which the ``bounded`` flag of each cell reports.

Exactness.  The combinatorics (types, cells, pseudovertices) is computed in exact rational arithmetic for
every input: floats are converted to :class:`fractions.Fraction` exactly, so ties in the data are ties in
the answer.  Pseudovertices of exact input are exact; of float input they are floats (each coordinate a
single difference-sum of input entries, correctly rounded).  Projection and distance run on the caller's
array library (NumPy, torch with autograd, array-api-strict, exact object arrays).

Examples
--------
>>> from tropix.tropical import convex_hull
>>> P = convex_hull([[0, 0, 0], [0, 2, 5], [0, 4, 1]])   # max-plus, points in TP^2
>>> len(P.pseudovertices), P.f_vector
(6, (6, 6, 1))
>>> P.contains([0, 2, 2]), P.contains([0, 5, 0])
(True, False)
>>> P.project([0, 5, 0]).tolist()
[0, 3, 0]
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from .._array import asarray, check_nonempty, from_numpy, is_array, is_exact, namespace, to_numpy
from .._repr import compact_repr
from ..errors import EmptyInputError, FloatOverflowError, ShapeError, SizeLimitError
from ._args import check_int, check_real, check_array_dtype
from .matmul import _object_add
from .semiring import MaxPlus, Semiring, TropicalSemiring, require_tropical

__all__ = [
    "TropicalPolytope",
    "TropicalCell",
    "convex_hull",
    "tropical_projection",
    "tropical_segment",
    "hilbert_distance",
    "covector",
]

_INF = float("inf")
MAX_CELLS = 200_000


# ------------------------------------------------------------------------------------------- helpers
def _tropical(semiring) -> TropicalSemiring:
    S = require_tropical(semiring, "tropical convexity")
    return S


def _as_points(V: Any, S: Semiring, name: str, ndim: int = 2):
    """Validated array (any library) of points; rows must have a finite entry."""
    if not is_array(V):
        V = asarray(V, name=name)
    V = S.validate(V, name)
    if V.ndim != ndim:
        what = "an n×d matrix of points" if ndim == 2 else "a vector of length d"
        raise ShapeError(f"{name} must be {what}, got shape {tuple(int(s) for s in V.shape)}")
    check_nonempty(V, name)
    Vn = to_numpy(V)
    finite = _finite_mask(Vn)
    rows = finite.reshape(-1, Vn.shape[-1]).any(axis=1)
    if not rows.all():
        bad = int(np.flatnonzero(~rows)[0])
        where = f"row {bad} of {name}" if ndim == 2 else name
        raise EmptyInputError(
            f"{where} has no finite coordinate: the tropical zero vector is not a point of TP^{Vn.shape[-1] - 1}"
        )
    return V


def _python_ints(a: Any) -> Any:
    """An integer (or bool) array of any library as a NumPy object array of Python ints; others unchanged."""
    if isinstance(a, np.ndarray) and a.dtype == object:
        return a
    if is_array(a) and is_exact(a):
        an = np.asarray(to_numpy(a))
        return (an.astype(np.int64) if an.dtype == np.bool_ else an).astype(object)  # astype(object): Python ints
    return a


def _finite_mask(a: np.ndarray) -> np.ndarray:
    if a.dtype == object:
        return np.vectorize(lambda v: not (isinstance(v, float) and math.isinf(v)), otypes=[bool])(a)
    return np.isfinite(a)


def _exact_object(a: np.ndarray) -> np.ndarray:
    """Object array of the exact values (floats as Fractions; infinities kept as floats)."""
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [v if _to_frac(v) is None else _to_frac(v) for v in a.ravel()]
    return out


def _to_frac(v) -> Fraction | None:
    """Exact rational value of a finite scalar; None for ±inf."""
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return None
        return Fraction(float(v))
    if isinstance(v, (int, np.integer, np.bool_)):
        return Fraction(int(v))
    return Fraction(v)


def _out_scalar(q: Fraction, exact: bool):
    if exact:
        return int(q) if q.denominator == 1 else q
    return float(q)


def _normalize_exact(row: list, exact: bool) -> tuple:
    """Representative in TP: subtract the first finite coordinate."""
    base = next(v for v in row if v is not None)
    return tuple(None if v is None else v - base for v in row)


# ------------------------------------------------------------------------------------------- projection
def tropical_projection(V: Any, x: Any, *, semiring: Semiring | str | None = None):
    """The tropical projection of ``x`` onto the tropical convex hull of the rows of ``V`` (closed form).

    Max-plus: ``π(x) = max_i (λ_i + v_i)`` with ``λ_i = min_j (x_j − v_ij)`` (the largest point of the
    polytope below ``x``); min-plus: ``min`` and ``max`` exchanged.  Tropical-zero entries are handled
    (``x_j − v_ij`` with ``v_ij`` the tropical zero does not constrain ``λ_i``).  ``x`` may be a batch
    (m×d).  The result is on the library of the inputs (torch keeps autograd); exact input gives exact output.

    Integer arrays are computed on Python integers (no wrap-around), as in :func:`~tropix.tropical.matmul`:
    integer arrays of another library (torch, ...) give an ``int64`` array of that library (and device)
    when every result fits in ``int64``, else the exact NumPy object array; an integer array beside a float
    array of its library is promoted to the float's dtype by that library.  Mixed exact and float NumPy
    input is computed in ``float64``.

    Raises
    ------
    FloatOverflowError
        If mixed exact and float input holds an exact entry beyond the float range (it has no float64
        value; pass all-exact input instead).

    Examples
    --------
    >>> tropical_projection([[0, 0, 0], [0, 2, 5]], [0, 3, 3]).tolist()
    [0, 0, 3]
    >>> tropical_projection([[0, 0, 0], [0, 2, 5]], [0, 3, 3], semiring="min").tolist()
    [1, 3, 3]
    """
    S = _tropical(semiring)
    V = _as_points(V, S, "V")
    if not is_array(x):
        x = asarray(x, name="x")
    x = S.validate(x, "x")
    if x.ndim not in (1, 2) or x.shape[-1] != V.shape[1]:
        raise ShapeError(
            f"x must have {V.shape[1]} coordinates like the points, got shape {tuple(int(s) for s in x.shape)}"
        )
    single = x.ndim == 1
    like = next((a for a in (V, x) if is_array(a) and not isinstance(a, np.ndarray)), None)  # (None: NumPy)
    V, x = _promote_ints(V, x), _promote_ints(x, V)
    # integer arrays (any library) are computed on Python ints: x_j - v_ij wrapped in int8/int64
    V, x = _python_ints(V), _python_ints(x)
    Vx, xx = V, x
    if isinstance(V, np.ndarray) and isinstance(x, np.ndarray) and (V.dtype == object) != (x.dtype == object):
        Vx, xx = V.astype(object), x.astype(object)  # exact and float numpy mix: compute on objects
        if not (is_exact(V) and is_exact(x)):
            try:
                Vx, xx = V.astype(np.float64), x.astype(np.float64)
            except OverflowError:  # (an int beyond the float range; before, a raw OverflowError)
                raise FloatOverflowError(
                    "tropical_projection: mixed exact and float input is computed in float64, and an exact "
                    "entry is beyond the float range; pass all-exact input (int/Fraction instead of floats)"
                ) from None
    xp = namespace(Vx, xx)
    X = xp.reshape(xx, (1, xx.shape[0])) if single else xx
    D = S.dual
    vz = S.is_zero(Vx)  # (n, d)
    if isinstance(Vx, np.ndarray) and Vx.dtype == object:
        Vsafe = np.where(vz, 0, Vx)
        # (exact sums with ±inf: 10**400 + -inf converted the int to float, an OverflowError)
        diff = _object_add(X[:, None, :], -Vsafe[None, :, :], "tropical_projection")
        diff = np.where(vz[None, :, :], D.zero, diff)
        lam = _obj_reduce(diff, D.sense, axis=2)  # (m, n)
        terms = _object_add(lam[:, :, None], Vx[None, :, :], "tropical_projection")
        out = _obj_reduce(terms, S.sense, axis=1)
    else:
        zero_like = xp.zeros_like(Vx)
        Vsafe = xp.where(vz, zero_like, Vx)
        diff = X[:, None, :] - Vsafe[None, :, :]
        dzero = xp.full(diff.shape, D.zero, dtype=diff.dtype)
        if hasattr(diff, "device"):
            try:
                dzero = xp.full(diff.shape, D.zero, dtype=diff.dtype, device=diff.device)
            except TypeError:
                pass
        diff = xp.where(xp.broadcast_to(vz[None, :, :], diff.shape), dzero, diff)
        # (a plain reduction: x_j = the tropical zero beside a finite v_ij makes lam the zero of S, which is the
        # dual semiring's wrong infinity; D.sum refused it with a ConventionError)
        lam = xp.min(diff, axis=2) if D.sense == -1 else xp.max(diff, axis=2)
        out = S.sum(lam[:, :, None] + Vx[None, :, :], axis=1)
    return _in_library(out[0, ...] if single else out, like)


def _promote_ints(a: Any, b: Any) -> Any:
    """An integer array ``a`` beside a float array ``b`` of the same non-NumPy library, cast to ``b``'s dtype.

    (The library's own promotion, as in :func:`~tropix.tropical.matmul`; before, ``a`` became a NumPy object
    array and the mix of NumPy and torch raised BackendMismatchError.)
    """
    if (is_array(a) and is_array(b) and not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray)
            and is_exact(a) and not is_exact(b)):
        return namespace(a, b).astype(a, b.dtype)
    return a


_INT64 = (-(1 << 63), 1 << 63)


def _in_library(out: Any, like: Any) -> Any:
    """A NumPy result back in the library (and device) of ``like``, the non-NumPy input (None: NumPy input).

    Exact results (object arrays of Python ints from integer input) become ``int64`` when every entry fits;
    otherwise (beyond ``int64``, Fractions, the tropical zero among exact values) they stay exact NumPy
    object arrays, as :func:`~tropix.tropical.matmul` does.
    """
    if like is None or not isinstance(out, np.ndarray):
        return out
    if out.dtype == object:
        lo, hi = _INT64
        if not all(isinstance(v, int) and lo <= v < hi for v in out.ravel()):
            return out
        out = out.astype(np.int64)
    return from_numpy(out, like)


def _obj_reduce(a: np.ndarray, sense: int, axis: int) -> np.ndarray:
    red = np.max if sense == 1 else np.min
    r = red(a, axis=axis)
    return np.vectorize(lambda v: int(v) if isinstance(v, Fraction) and v.denominator == 1 else v, otypes=[object])(
        r
    ) if r.size else r


# ------------------------------------------------------------------------------------------- distance
def hilbert_distance(x: Any, y: Any):
    """Tropical (Hilbert projective) distance ``max_j (x_j − y_j) − min_j (x_j − y_j)`` on ``TP^{d-1}``.

    The same in both conventions.  Points with tropical-zero coordinates are at distance ``inf`` unless their
    zero coordinates agree, in which case the distance is taken over the common finite coordinates.  Exact
    input gives an exact result.

    Examples
    --------
    >>> hilbert_distance([0, 1, 2], [3, 3, 3]), hilbert_distance([0, 1, 2], [0, 3, 1])
    (2, 3)
    >>> hilbert_distance([0.0, float("-inf")], [1.0, 5.0])
    inf
    """
    # (asarray for object arrays too, whose strings were parsed; complex input lost its imaginary part)
    x = check_array_dtype(asarray(x, name="x"), "x")
    y = check_array_dtype(asarray(y, name="y"), "y")
    from .._array import check_no_nan

    check_no_nan(x, "x")
    check_no_nan(y, "y")
    if tuple(x.shape) != tuple(y.shape) or x.ndim != 1:
        raise ShapeError(f"x and y must be vectors of one length, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    check_nonempty(x, "x")
    x, y = _python_ints(x), _python_ints(y)  # x_j - y_j of int8 [100, -100] and [-100, 100] wrapped to 112
    xn, yn = to_numpy(x), to_numpy(y)
    fx, fy = _finite_mask(xn), _finite_mask(yn)
    if not fx.any() or not fy.any():
        raise EmptyInputError("a point with no finite coordinate is not a point of tropical projective space")
    if (fx != fy).any() or any(xn[j] != yn[j] for j in np.flatnonzero(~fx)):
        return _INF
    if is_array(x) and not isinstance(x, np.ndarray):
        xp = namespace(x, y)
        idx = np.flatnonzero(fx)
        if idx.size == x.shape[0]:
            diff = x - y
        else:
            sel = from_numpy(idx, x)
            diff = xp.take(x, sel) - xp.take(y, sel)
        return xp.max(diff) - xp.min(diff)
    diff = [xn[j] - yn[j] for j in np.flatnonzero(fx)]
    r = max(diff) - min(diff)
    if isinstance(r, Fraction) and r.denominator == 1:
        return int(r)
    return float(r) if isinstance(r, (float, np.floating)) else (int(r) if isinstance(r, (int, np.integer)) else r)


# ------------------------------------------------------------------------------------------- segment
def tropical_segment(x: Any, y: Any, *, semiring: Semiring | str | None = None) -> np.ndarray:
    """The pseudovertices of the tropical segment from ``x`` to ``y``, in order, as the rows of an array.

    The tropical segment ``tconv{x, y} = {λ ⊗ x ⊕ y}`` is a concatenation of at most ``d − 1`` ordinary
    segments; its breakpoints are ``x ⊕ (λ ⊗ y)`` at ``λ = x_j − y_j`` (Develin–Sturmfels, Proposition 3).
    Every row is normalised to first finite coordinate 0.  Exact input gives an exact (object) array.

    Examples
    --------
    >>> tropical_segment([0, 0, 0], [0, 2, 5]).tolist()
    [[0, 0, 0], [0, 0, 3], [0, 2, 5]]
    >>> tropical_segment([0, 0, 0], [0, 2, 5], semiring="min").tolist()
    [[0, 0, 0], [0, 2, 2], [0, 2, 5]]
    """
    S = _tropical(semiring)
    xv = to_numpy(_as_points(x, S, "x", ndim=1))
    yv = to_numpy(_as_points(y, S, "y", ndim=1))
    if xv.shape != yv.shape:
        _raise_len(x, y)
    V = _as_points(np.stack([xv, yv]), S, "the endpoints")
    exact = is_exact(V)
    s = S.sense
    X = [(_to_frac(v) if _to_frac(v) is None else s * _to_frac(v)) for v in V[0]]
    Y = [(_to_frac(v) if _to_frac(v) is None else s * _to_frac(v)) for v in V[1]]
    # max-plus on s-scaled data: points max(x + λ, y); λ from -inf (= y) to +inf (= x)
    lams = sorted({a - b for a, b in zip(Y, X) if a is not None and b is not None})
    pts = [Y]
    for lam in lams:
        pts.append([_maxn(None if a is None else a + lam, b) for a, b in zip(X, Y)])
    pts.append(X)
    out, seen = [], set()
    for p in reversed(pts):  # from x to y
        key = _normalize_exact(p, exact)
        if key not in seen:
            seen.add(key)
            out.append(key)
    zero = S.zero
    arr = np.empty((len(out), len(X)), dtype=object if exact else np.float64)
    for r, p in enumerate(out):
        for j, v in enumerate(p):
            arr[r, j] = zero if v is None else _out_scalar(s * v, exact)
    return arr


def _maxn(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _raise_len(x, y):
    raise ShapeError("the two endpoints of a tropical segment must have the same number of coordinates")


# ------------------------------------------------------------------------------------------- types
def covector(V: Any, x: Any, *, semiring: Semiring | str | None = None) -> tuple[frozenset, ...]:
    """The type ``(S_1, …, S_d)`` of a finite point ``x`` with respect to the rows of ``V``.

    ``i ∈ S_j`` iff ``v_ij − x_j`` is the ⊕-best of ``v_i − x`` (max in max-plus, min in min-plus),
    computed exactly.  ``x`` lies in the tropical convex hull iff every ``S_j`` is non-empty.

    Examples
    --------
    >>> V = [[0, 0, 0], [0, 2, 5], [0, 4, 1]]
    >>> [sorted(s) for s in covector(V, [0, 2, 2])]
    [[0], [2], [1]]
    >>> [sorted(s) for s in covector(V, [0, 5, 0])]
    [[0], [], [0, 1, 2]]
    """
    S = _tropical(semiring)
    Vn = to_numpy(_as_points(V, S, "V"))
    xn = to_numpy(_as_points(x, S, "x", ndim=1))
    if xn.shape[0] != Vn.shape[1]:
        raise ShapeError(f"x has {xn.shape[0]} coordinates, the points have {Vn.shape[1]}")
    xf = [_to_frac(v) for v in xn]
    if any(v is None for v in xf):
        raise ShapeError("types are defined for points with finite coordinates (in the tropical torus)")
    T = _point_types(_frac_matrix(Vn, S.sense), [S.sense * v for v in xf])
    d = Vn.shape[1]
    return tuple(frozenset(i for i, t in enumerate(T) if j in t) for j in range(d))


def _frac_matrix(Vn: np.ndarray, sense: int) -> list[list[Fraction | None]]:
    return [[None if _to_frac(v) is None else sense * _to_frac(v) for v in row] for row in Vn]


def _point_types(W, y) -> list[frozenset]:
    """Max-plus types T_i = argmax_j (w_ij - y_j) over finite w_ij (W, y already sign-adjusted)."""
    out = []
    for row in W:
        vals = [(w - yj, j) for j, (w, yj) in enumerate(zip(row, y)) if w is not None]
        best = max(v for v, _ in vals)
        out.append(frozenset(j for v, j in vals if v == best))
    return out


# ------------------------------------------------------------------------------------------- cells
@dataclass(frozen=True)
class TropicalCell:
    """A relatively open cell of the type decomposition of the tropical torus ``R^d / R·1``.

    Attributes
    ----------
    type : tuple of frozenset
        ``(S_1, …, S_d)``: ``S_j`` is the set of generators ``i`` with ``j`` among their ⊕-best directions.
    dim : int
        Dimension of the cell (connected components of the type graph minus one).
    in_polytope : bool
        Whether the cell lies in the tropical polytope (all ``S_j`` non-empty).
    bounded : bool
        Whether the cell is bounded in ``R^d / R·1``.
    interior_point : tuple
        An exact point of the relative interior (first coordinate 0; in the caller's convention).
    """

    type: tuple
    dim: int
    in_polytope: bool
    bounded: bool
    interior_point: tuple = field(repr=False)
    __repr__ = compact_repr


def _lex_add(a, b):
    return (a[0] + b[0], a[1] + b[1])


def _closure(d: int, cons: dict) -> list | None:
    """Lexicographic longest-path closure of difference constraints x_k >= x_j + (c, strict).

    ``cons[(j, k)] = (c, e)``; returns the closure matrix or None if infeasible.  Entries None = no bound.
    """
    D = [[None] * d for _ in range(d)]
    for j in range(d):
        D[j][j] = (0, 0)
    for (j, k), w in cons.items():
        if D[j][k] is None or w > D[j][k]:
            D[j][k] = w
    for m in range(d):
        Dm = D[m]
        for j in range(d):
            djm = D[j][m]
            if djm is None:
                continue
            Dj = D[j]
            for k in range(d):
                mk = Dm[k]
                if mk is None:
                    continue
                w = (djm[0] + mk[0], djm[1] + mk[1])
                if Dj[k] is None or w > Dj[k]:
                    Dj[k] = w
        if any(D[j][j] > (0, 0) for j in range(d)):
            return None
    return D


def _constraints_for(W_i, T_i, cons: dict) -> dict:
    """Add the constraints of 'point i attains its max exactly at T_i' to a copy of ``cons``."""
    out = dict(cons)
    supp = [k for k, w in enumerate(W_i) if w is not None]
    for j in T_i:
        for k in supp:
            if k == j:
                continue
            c = W_i[k] - W_i[j]
            w = (c, 0 if k in T_i else 1)
            # y_k - y_j >= c (+eps if k not in T_i)
            if (j, k) not in out or w > out[(j, k)]:
                out[(j, k)] = w
    return out


def _interior_point(d: int, D) -> list[Fraction]:
    """A point satisfying all constraints of the closure (strict ones strictly)."""
    # longest path from a virtual source joined to every node with weight (0, 0)
    pot = []
    for k in range(d):
        best = (0, 0)
        for j in range(d):
            if D[j][k] is not None and D[j][k] > best:
                best = D[j][k]
        pot.append(best)
    gaps = []
    for j in range(d):
        for k in range(d):
            if j != k and D[j][k] is not None:
                g = pot[k][0] - pot[j][0] - D[j][k][0]
                if g > 0:
                    gaps.append(g)
    eps = Fraction(min(gaps), 4 * d + 4) if gaps else Fraction(1)
    return [c + e * eps for c, e in pot]


def _enumerate_cells(W: list[list[Fraction | None]], d: int) -> list[tuple[tuple[frozenset, ...], list]]:
    """All feasible type vectors (T_1..T_n) with their closures (max-plus, sign-adjusted data)."""
    states = [((), {})]
    for W_i in W:
        supp = [k for k, w in enumerate(W_i) if w is not None]
        subsets = [frozenset(c) for r in range(1, len(supp) + 1) for c in itertools.combinations(supp, r)]
        new = []
        for Ts, cons in states:
            for T in subsets:
                c2 = _constraints_for(W_i, T, cons)
                if _closure(d, c2) is not None:
                    new.append((Ts + (T,), c2))
                    if len(new) > MAX_CELLS:
                        raise SizeLimitError(
                            f"more than {MAX_CELLS} cells in the type decomposition; use fewer points or coordinates"
                        )
        states = new
    return [(Ts, _closure(d, cons)) for Ts, cons in states]


def _components(n: int, d: int, Ts) -> int:
    parent = list(range(n + d))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i, T in enumerate(Ts):
        for j in T:
            ra, rb = find(i), find(n + j)
            if ra != rb:
                parent[ra] = rb
    return len({find(a) for a in range(n + d)})


# ------------------------------------------------------------------------------------------- polytope
@dataclass(frozen=True)
class TropicalPolytope:
    """The tropical convex hull of the rows of ``points`` (see :func:`convex_hull`).

    Attributes
    ----------
    points : array
        The generators as given (n×d), on the caller's array library.
    semiring : TropicalSemiring
        ``MaxPlus`` or ``MinPlus``.
    """

    points: Any = field(repr=False)
    semiring: TropicalSemiring = None
    _repr_fields = ("points", "semiring")
    __repr__ = compact_repr

    def __post_init__(self):
        # built directly (not by convex_hull): the same checks as convex_hull, so no invalid polytope exists
        S = _tropical(MaxPlus if self.semiring is None else self.semiring)
        object.__setattr__(self, "semiring", S)
        object.__setattr__(self, "points", _as_points(self.points, S, "points"))

    @property
    def n(self) -> int:
        """Number of generators."""
        return int(self.points.shape[0])

    @property
    def d(self) -> int:
        """Number of homogeneous coordinates (the polytope lives in TP^{d-1})."""
        return int(self.points.shape[1])

    @property
    def exact(self) -> bool:
        """True if the generators are exact (then every output is exact)."""
        return is_exact(self.points)

    @cached_property
    def _W(self):
        return _frac_matrix(to_numpy(self.points), self.semiring.sense)

    @cached_property
    def _Wint(self):
        """(integer matrix, scale): the sign-adjusted generators times the lcm of their denominators."""
        W = self._W
        den = 1
        for row in W:
            for v in row:
                if v is not None:
                    den = den * v.denominator // math.gcd(den, v.denominator)
        return [[None if v is None else int(v * den) for v in row] for row in W], den

    # -- point queries -------------------------------------------------------------------------------
    def project(self, x: Any):
        """Tropical projection of ``x`` (or of each row of a batch) onto the polytope; see :func:`tropical_projection`.

        Examples
        --------
        >>> P = convex_hull([[0, 0, 0], [0, 2, 5]])
        >>> P.project([0, 3, 3]).tolist()
        [0, 0, 3]
        """
        return tropical_projection(self.points, x, semiring=self.semiring)

    def contains(self, x: Any, *, tol: float = 0.0) -> bool:
        """Whether the point ``x`` of ``TP^{d-1}`` lies in the polytope: ``x == project(x)``.

        With ``tol=0`` (default) the test is exact for every input: floats are taken as the exact rationals
        they represent and the projection is computed in rational arithmetic.  A point computed in floating
        point as a tropical combination is generally off by rounding; pass ``tol`` (absolute, per coordinate,
        after the projection is computed in float64) to accept such points.  If the generators or ``x`` are
        exact, the projection with ``tol`` is computed in rational arithmetic too (exact integers beyond
        the float range, or beyond ``2^53``, have no faithful float64 value).

        Examples
        --------
        >>> P = convex_hull([[0, 0, 0], [0, 2, 5]])
        >>> P.contains([1, 1, 4]), P.contains([0, 1, 1])
        (True, False)
        >>> import numpy as np
        >>> V = np.array([[0.0, 0.1, 0.7], [0.0, 0.2, 0.3]])
        >>> x = np.maximum(V[0] + 0.1, V[1])         # 0.7 + 0.1 rounds to 0.7999999999999999
        >>> Q = convex_hull(V)
        >>> Q.contains(x), Q.contains(x, tol=1e-12), Q.contains(V[0] + 1.0)
        (False, True, True)
        """
        tol = check_real(tol, "tol", minimum=0)  # (a 0-d tensor: its item; a string tol raised a raw NumPy error, a negative or NaN one gave False)
        x = _as_points(x, self.semiring, "x", ndim=1)  # (NaN, the wrong infinity, no finite coordinate: errors)
        xn = to_numpy(x)
        exact = tol == 0 or self.exact or is_exact(x)
        if exact:
            V = _exact_object(to_numpy(self.points))
            xe = _exact_object(xn)
            p = tropical_projection(V, xe, semiring=self.semiring)
        else:
            p = to_numpy(tropical_projection(np.asarray(to_numpy(self.points), dtype=np.float64),
                                             np.asarray(xn, dtype=np.float64), semiring=self.semiring))
        fin = _finite_mask(xn)
        if (fin != _finite_mask(p)).any():
            return False
        if tol == 0:
            base = next(i for i in range(len(fin)) if fin[i])
            return bool(all(p[j] - p[base] == xe[j] - xe[base] for j in np.flatnonzero(fin)))
        if exact:  # (π(x) ≤ x coordinatewise in max-plus, ≥ in min-plus: compared without normalising)
            return bool(all(abs(p[j] - xe[j]) <= tol for j in np.flatnonzero(fin)))
        return bool(np.all(np.abs(np.asarray(p[fin], dtype=float) - np.asarray(xn[fin], dtype=float)) <= tol))

    def type_of(self, x: Any) -> tuple[frozenset, ...]:
        """The type (covector) of a finite point ``x``; see :func:`covector`."""
        return covector(self.points, x, semiring=self.semiring)

    def distance(self, x: Any) -> Any:
        """Hilbert distance from ``x`` to its projection (the distance from ``x`` to the polytope)."""
        return hilbert_distance(self.project(x), x)

    # -- combinatorics -------------------------------------------------------------------------------
    @cached_property
    def cells(self) -> tuple[TropicalCell, ...]:
        """All cells of the type decomposition of the tropical torus, sorted by (dimension, type).

        Computed exactly by refining the decomposition one generator at a time; each candidate type is
        tested for feasibility of its difference constraints (Floyd–Warshall with strictness).  Raises
        :class:`~tropix.errors.SizeLimitError` beyond ``MAX_CELLS`` cells.
        """
        n, d, s = self.n, self.d, self.semiring.sense
        out = []
        Wi, den = self._Wint  # integer arithmetic is several times faster than Fractions
        for Ts, D in _enumerate_cells(Wi, d):
            dim = _components(n, d, Ts) - 1
            typ = tuple(frozenset(i for i, T in enumerate(Ts) if j in T) for j in range(d))
            bounded = all(D[j][k] is not None for j in range(d) for k in range(d))
            y = _interior_point(d, D)
            pt = tuple(_out_scalar(s * Fraction(v - y[0]) / den, self.exact) for v in y)
            out.append(TropicalCell(typ, dim, all(typ), bounded, pt))
        out.sort(key=lambda c: (c.dim, [sorted(t) for t in c.type]))
        return tuple(out)

    @property
    def polytope_cells(self) -> tuple[TropicalCell, ...]:
        """The cells that lie in the polytope (its cell complex; bounded when all generators are finite)."""
        return tuple(c for c in self.cells if c.in_polytope)

    @cached_property
    def pseudovertices(self) -> np.ndarray:
        """The 0-dimensional cells of the polytope, one per row, normalised to first coordinate 0.

        Exact (object array) for exact generators, float64 otherwise; ordered like :attr:`cells`.
        """
        s = self.semiring.sense
        rows = []
        for c in self.polytope_cells:
            if c.dim == 0:
                rows.append(list(c.interior_point))
        dtype = object if self.exact else np.float64
        if not rows:
            return np.empty((0, self.d), dtype=dtype)
        arr = np.empty((len(rows), self.d), dtype=dtype)
        for r, row in enumerate(rows):
            arr[r, :] = row
        del s
        return arr

    @property
    def f_vector(self) -> tuple[int, ...]:
        """Number of cells of the polytope of each dimension 0, 1, …, (the top dimension present).

        For ``n`` generators in general position in ``TP^{d-1}`` (all finite), Develin–Sturmfels
        (Corollary 25) give ``(n+d-i-2)! / ((n-i-1)! (d-i-1)! i!)`` cells of dimension ``i``.
        """
        cells = self.polytope_cells
        # no cell when every generator has the tropical zero in a common coordinate (the polytope misses the
        # torus): then the f-vector is empty (max() of no cells raised ValueError)
        top = max((c.dim for c in cells), default=-1)
        return tuple(sum(1 for c in cells if c.dim == k) for k in range(top + 1))

    def cell_vertices(self, cell: TropicalCell) -> list[int]:
        """Indices (rows of :attr:`pseudovertices`) of the pseudovertices in the closure of a polytope cell.

        A pseudovertex lies in the closure of a cell iff its type contains the cell's type componentwise.
        """
        pv_cells = [c for c in self.polytope_cells if c.dim == 0]
        return [
            r for r, c in enumerate(pv_cells) if all(a <= b for a, b in zip(cell.type, c.type))
        ]

    def ascii(self, width: int = 41, height: int = 21, margin: float = 1.0) -> str:
        """An ASCII picture of a polytope in ``TP^2`` (d = 3) in the chart ``(x_2 − x_1, x_3 − x_1)``.

        ``#`` marks points of the polytope, ``o`` the grid points nearest to the generators, ``-`` the rest;
        the vertical axis points up.  Only for d = 3 and finite generators.  The chart coordinates are
        computed exactly and rounded once, so exact generators beyond the float range are fine as long as
        their differences are not.

        Raises
        ------
        ShapeError
            If ``d != 3`` or a generator has a tropical-zero coordinate.
        FloatOverflowError
            If a chart coordinate ``x_k − x_1`` is beyond the float range.
        ArgumentTypeError, ToleranceError
            If ``width`` or ``height`` is not a positive integer, or ``margin`` not a positive real.
        """
        width = check_int(width, "width", minimum=1, maximum=10_000)  # (10**30 was NumPy's raw "Maximum allowed size")
        height = check_int(height, "height", minimum=1, maximum=10_000)
        margin = check_real(margin, "margin", minimum=0, open_min=True)  # (a 0-d tensor: its item, which round() takes)
        if self.d != 3:
            raise ShapeError(f"ascii pictures are drawn for polytopes in TP^2 (d = 3), this one has d = {self.d}")
        W = _frac_matrix(to_numpy(self.points), 1)  # (exact: float(10**400) raised a raw OverflowError)
        if any(v is None for row in W for v in row):
            raise ShapeError("ascii pictures need finite generators")
        try:
            P = np.array([[float(v - row[0]) for v in row] for row in W], dtype=float)  # rows in TP: x_1 = 0
        except OverflowError:
            raise FloatOverflowError(
                "ascii pictures are drawn in float coordinates, and a chart coordinate x_k - x_1 of a generator "
                "is beyond the float range"
            ) from None
        xs, ys = P[:, 1] - P[:, 0], P[:, 2] - P[:, 0]
        x0, x1 = xs.min() - margin, xs.max() + margin
        y0, y1 = ys.min() - margin, ys.max() + margin
        gx = np.linspace(x0, x1, width)
        gy = np.linspace(y1, y0, height)
        grid = np.array([[0.0, a, b] for b in gy for a in gx])
        proj = to_numpy(tropical_projection(P, grid, semiring=self.semiring))
        tol = 1e-9 * (1 + np.abs(grid).max())
        inside = np.all(np.abs((proj - proj[:, :1]) - (grid - grid[:, :1])) <= tol, axis=1).reshape(height, width)
        chars = np.where(inside, "#", "-").astype(object)
        for a, b in zip(xs, ys):
            c = int(round((a - x0) / (x1 - x0) * (width - 1)))
            r = int(round((y1 - b) / (y1 - y0) * (height - 1)))
            chars[r, c] = "o"
        return "\n".join("".join(row) for row in chars)


def convex_hull(points: Any, *, semiring: Semiring | str | None = None) -> TropicalPolytope:
    """The tropical convex hull (tropical polytope) of the rows of ``points`` in ``TP^{d-1}``.

    Parameters
    ----------
    points : array_like, shape (n, d)
        Generators; entries may be the tropical zero (``-inf`` in max-plus, ``+inf`` in min-plus) but no row
        may be entirely zero.  Any array library; exact input keeps everything exact.
    semiring : MaxPlus (default) or MinPlus
        polymake and Develin–Sturmfels use min-plus; ``convex_hull(-V, semiring="max")`` has the same
        combinatorics as ``convex_hull(V, semiring="min")`` and negated pseudovertices.

    Returns
    -------
    TropicalPolytope
        With :meth:`~TropicalPolytope.project`, :meth:`~TropicalPolytope.contains`,
        :attr:`~TropicalPolytope.cells`, :attr:`~TropicalPolytope.pseudovertices`,
        :attr:`~TropicalPolytope.f_vector`.

    Raises
    ------
    EmptyInputError
        No points, zero coordinates, or a row with no finite entry.
    ShapeError
        ``points`` not a matrix.
    NaNError, ConventionError
        NaN, or the opposite convention's infinity.

    Examples
    --------
    >>> P = convex_hull([[0, 0, 0], [0, 2, 5], [0, 4, 1]], semiring="min")
    >>> P.f_vector
    (6, 6, 1)
    >>> P.pseudovertices.tolist()[:3]
    [[0, 0, 0], [0, 2, 2], [0, 2, 5]]
    """
    return TropicalPolytope(points, _tropical(semiring))  # (validated there)
