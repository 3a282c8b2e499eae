"""The three ranks of a tropical matrix (Develin–Santos–Sturmfels 2005): tropical, Kapranov, Barvinok.

For an m×n matrix ``A`` over ``MaxPlus`` or ``MinPlus`` (tropical zeros allowed):

* **tropical rank** — the largest ``k`` such that ``A`` has a tropically non-singular k×k minor
  (:func:`~tropix.tropical.determinant.is_singular`; a minor whose determinant is the tropical zero
  counts as singular, so the all-zero matrix has rank 0).
* **Barvinok rank** — the smallest ``r`` such that ``A`` is the tropical sum of ``r`` tropical rank-one
  matrices ``u ⊗ vᵀ`` (``u``, ``v`` may contain the tropical zero).
* **Kapranov rank** — the smallest rank of a matrix over the field of Puiseux series (residue field
  algebraically closed of the given characteristic) whose entrywise valuation is ``A``.

Always ``tropical ≤ Kapranov ≤ Barvinok ≤ min(m, n)`` (DSS; the last inequality because
column ``j`` of ``A`` is attained by the rank-one matrix ``A[:, j] ⊗ vᵀ`` below ``A``, where
``v_k = min_i (A_ik − A_ij)`` in max-plus, ``max_i`` in min-plus; the ``n`` of them sum to ``A``, and
likewise for rows).  All three ranks are invariant under permuting rows and columns,
transposing, tropically scaling rows and columns, and multiplying all entries by a positive rational;
they are computed on the exact integer matrix ``sense · A · L``.

Algorithms and costs
--------------------
All exact searches first merge rows (and columns) that differ by an additive constant and drop rows
and columns of tropical zeros; no rank changes (two such rows are never both in a non-singular minor,
and decompositions and lifts extend along them), and large structured matrices often shrink a lot.

``tropical_rank``
    Level by level: every non-singular (k+1)-minor contains a non-singular k-minor (delete a row and
    its column in the unique optimal permutation), so the non-singular (k+1)-minors are searched only
    among extensions of non-singular k-minors.  Worst case exponential; at most ``max_checks``
    singularity tests (default 200 000), else :class:`~tropix.errors.SizeLimitError`.
``barvinok_rank``
    A term ``u ⊗ vᵀ ≤ A`` can be enlarged to a maximal one without losing attained entries; the
    maximal ones are supported on a closed all-finite rectangle ``I × J`` and their sets of attained
    entries are the *types of the vertices* of the tropical complex of ``A[I, J]`` (the dual cells of the
    regular subdivision of Δ × Δ lifted by ``A``; Develin–Sturmfels 2004).  Vertices are enumerated
    exactly, one row of the shorter side at a time (polynomial in the longer side), then an exact
    minimum set cover gives the rank.  Exponential; inputs up to ``max_entries`` (default 49, i.e. 7×7)
    entries, a few seconds at 7×7 on an idle core.  A matrix of full tropical rank
    (found by the greedy minor, as for generic matrices) skips the search: then tropical = Barvinok =
    min(m, n), with the terms through the columns (or rows) as decomposition.  The maximal terms are *not* only
    the ones through a column (``u = A[:, j]``) or a row of ``A``: the max-plus matrix
    ``[[0, 9, 0, 3], [5, 7, 0, 5], [8, 0, 9, 2], [9, 1, 8, 9]]`` has Barvinok rank 3, but covering it with
    column and row terms takes 4 (see the tests).
``kapranov_rank``
    Decided only where a theorem applies (listed in its docstring); otherwise
    :class:`~tropix.errors.UndecidedError` states the interval that is known.
``rank_bounds``
    Polynomial time: a greedy non-singular minor (lower bound) and the number of distinct columns and
    rows up to tropical scaling (upper bound).

Examples
--------
>>> from tropix.tropical.rank import tropical_rank, barvinok_rank, kapranov_rank
>>> A = [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
>>> tropical_rank(A), kapranov_rank(A), barvinok_rank(A)
(2, 2, 3)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .._repr import summary
from ..errors import SizeLimitError, ToleranceError, UndecidedError
from .determinant import _integer_weights, _matrix, _solve, _tropical, _unique_tight_matching
from .semiring import Semiring

__all__ = [
    "tropical_rank",
    "barvinok_rank",
    "barvinok_decomposition",
    "kapranov_rank",
    "rank_bounds",
    "RankBounds",
    "nonsingular_minor",
]

_PERMS: dict[int, np.ndarray] = {}
_SMALL = 6  # minors up to this size are tested by listing all permutations


def _perms(k: int) -> np.ndarray:
    if k not in _PERMS:
        _PERMS[k] = np.array(list(itertools.permutations(range(k))), dtype=np.int64).reshape(-1, k)
    return _PERMS[k]


class _Exact:
    """The matrix as exact integers in max orientation (``W = sense·A·L``) plus its finite mask."""

    def __init__(self, A: Any, semiring: Any):
        S = _tropical(semiring)
        An = _matrix(A, S, "A")
        W, allowed, L = _integer_weights(An, S)
        self.S, self.L, self.allowed = S, L, allowed
        self.m, self.n = W.shape
        big = max((abs(int(w)) for w in W.ravel()), default=0)
        fits = big * (min(self.m, self.n) + 1) < (1 << 60)
        self.W = W.astype(np.int64) if fits else W
        self.Wobj = W

    def restrict(self, rows, cols) -> "_Exact":
        """The sub-matrix on ``rows`` × ``cols`` (same semiring and scale)."""
        E = object.__new__(_Exact)
        E.S, E.L = self.S, self.L
        ix = np.ix_(list(rows), list(cols))
        E.allowed, E.W, E.Wobj = self.allowed[ix], self.W[ix], self.Wobj[ix]
        E.m, E.n = len(rows), len(cols)
        return E

    def restrict_t(self) -> "_Exact":
        """The transposed matrix (same semiring and scale)."""
        E = object.__new__(_Exact)
        E.S, E.L = self.S, self.L
        E.allowed, E.W, E.Wobj = self.allowed.T, self.W.T, self.Wobj.T
        E.m, E.n = self.n, self.m
        return E

    def classes(self, axis: int):
        """Rows (``axis=0``) or columns (``axis=1``) up to adding a constant, zero lines dropped.

        Returns ``(reps, assign)``: ``reps`` lists the first index of each class; ``assign[k]`` is
        ``(position in reps, c)`` with line ``k`` = line ``reps[pos]`` + ``c`` (integer units), or ``None``
        for a line of tropical zeros.
        """
        M, F = (self.Wobj, self.allowed) if axis == 0 else (self.Wobj.T, self.allowed.T)
        reps, assign, index = [], [], {}
        for k in range(M.shape[0]):
            fin = F[k]
            if not fin.any():
                assign.append(None)
                continue
            first = int(M[k][np.argmax(fin)])
            key = tuple((int(x) - first) if f else None for x, f in zip(M[k], fin))
            if key not in index:
                index[key] = (len(reps), first)
                reps.append(k)
            pos, base = index[key]
            assign.append((pos, first - base))
        return reps, assign

    def reduced(self):
        """``(E', rows, cols)``: one representative per class of rows and of columns (or None if A is zero).

        All three ranks are unchanged: two rows differing by a constant can never both be in a
        non-singular minor (swapping their columns keeps the weight), a zero row is in none, and
        lifts / rank-one decompositions restrict and extend along such rows.
        """
        rows, _ = self.classes(0)
        cols, _ = self.classes(1)
        if not rows:
            return None, [], []
        if len(rows) == self.m and len(cols) == self.n:
            return self, rows, cols
        return self.restrict(rows, cols), rows, cols

    def nonsingular_many(self, keys, k: int) -> list[bool]:
        """:meth:`nonsingular` for many k×k minors given as (row bitmask, column bitmask), batched."""
        idx = [
            ([x for x in range(self.m) if R >> x & 1], [x for x in range(self.n) if C >> x & 1]) for R, C in keys
        ]
        if k > _SMALL or not idx:
            return [self.nonsingular(r, c) for r, c in idx]
        P = _perms(k)
        ar = np.arange(k)
        out: list[bool] = []
        chunk = max(1, 2_000_000 // (len(P) * k))
        for s in range(0, len(idx), chunk):
            part = idx[s : s + chunk]
            rows = np.array([r for r, _ in part], dtype=np.int64)  # (N, k)
            cols = np.array([c for _, c in part], dtype=np.int64)
            sub = self.W[rows[:, :, None], cols[:, None, :]]  # (N, k, k)
            fin = self.allowed[rows[:, :, None], cols[:, None, :]]
            good = fin[:, ar, P].all(axis=2)  # (N, p)
            w = sub[:, ar, P].sum(axis=2)
            if w.dtype == object:
                lowest = min(int(w.min()), 0) - 1
            else:
                lowest = np.iinfo(np.int64).min
            w = np.where(good, w, lowest)
            best = w.max(axis=1)
            count = (w == best[:, None]).sum(axis=1)
            out.extend(bool(x) for x in (good.any(axis=1) & (count == 1)))
        return out

    def nonsingular(self, rows, cols) -> bool:
        """Is the minor ``A[rows, cols]`` tropically non-singular (unique optimum of finite weight)?"""
        k = len(rows)
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        if k <= _SMALL:
            P = _perms(k)
            sub = self.W[np.ix_(r, c)]
            ok = self.allowed[np.ix_(r, c)]
            ar = np.arange(k)
            good = ok[ar, P].all(axis=1)
            if not good.any():
                return False
            w = sub[ar, P].sum(axis=1)[good]
            best = w.max()
            return int((w == best).sum()) == 1
        sub = self.W[np.ix_(r, c)]
        ok = self.allowed[np.ix_(r, c)]
        perm, u, v, feasible = _solve(sub, ok)
        return feasible and _unique_tight_matching(sub, ok, perm, u, v)


# ----------------------------------------------------------------------------------------------
# tropical rank
# ----------------------------------------------------------------------------------------------
def _greedy_minor(E: _Exact, budget: int | None = None):
    """A non-singular minor found greedily (rows, cols), or ((), ()) if ``A`` is the zero matrix.

    Starts from the first finite entry and adds one row and one column at a time while the minor stays
    non-singular; at most ``budget`` singularity tests (unlimited if None).
    """
    fin = np.argwhere(E.allowed)
    if len(fin) == 0:
        return (), ()
    i, j = (int(x) for x in fin[0])
    rows, cols = [i], [j]
    grown = True
    used = 0
    while grown and len(rows) < min(E.m, E.n):
        grown = False
        for a in range(E.m):
            if a in rows:
                continue
            for b in range(E.n):
                if b in cols or not E.allowed[a, b]:
                    continue
                used += 1
                if budget is not None and used > budget:
                    break
                if E.nonsingular(rows + [a], cols + [b]):
                    rows.append(a)
                    cols.append(b)
                    grown = True
                    break
            if grown:
                break
    order = np.argsort(rows)
    return tuple(int(rows[k]) for k in order), tuple(int(cols[k]) for k in order)


def _tropical_rank(E: _Exact, max_checks: int):
    """(rank, witness rows, witness cols): reduce to distinct rows/columns, then the level-wise search."""
    R, rows, cols = E.reduced()
    if R is None:
        return 0, (), ()
    if R is not E:
        r, wr, wc = _tropical_rank_search(R, max_checks)
        order = np.argsort([rows[i] for i in wr])
        return r, tuple(rows[wr[k]] for k in order), tuple(cols[wc[k]] for k in order)
    return _tropical_rank_search(E, max_checks)


def _tropical_rank_search(E: _Exact, max_checks: int):
    full = min(E.m, E.n)
    g_rows, g_cols = _greedy_minor(E)
    if len(g_rows) == full or len(g_rows) == 0:
        return len(g_rows), g_rows, g_cols
    level = {(1 << i, 1 << j) for i, j in map(tuple, np.argwhere(E.allowed))}
    k, checks, witness = 1, 0, (g_rows[:1], g_cols[:1])
    while level and k < full:
        seen = set()
        for R, C in level:
            for a in range(E.m):
                if R >> a & 1:
                    continue
                for b in range(E.n):
                    if not (C >> b & 1) and E.allowed[a, b]:
                        seen.add((R | 1 << a, C | 1 << b))
        checks += len(seen)
        if checks > max_checks:
            raise SizeLimitError(
                f"tropical_rank needs more than max_checks={max_checks} singularity tests for this "
                f"{E.m}×{E.n} matrix; known so far: {max(k, len(g_rows))} ≤ rank ≤ {full} "
                "(see rank_bounds for cheap bounds, or raise max_checks)"
            )
        keys = sorted(seen)
        ok = E.nonsingular_many(keys, k + 1)
        nxt = {key for key, good in zip(keys, ok) if good}
        if not nxt:
            break
        k += 1
        level = nxt
        R, C = next(iter(sorted(level)))
        witness = (
            tuple(x for x in range(E.m) if R >> x & 1),
            tuple(x for x in range(E.n) if C >> x & 1),
        )
    return k, witness[0], witness[1]


def _check_limit(x, name):
    if not isinstance(x, int) or x < 1:
        raise ToleranceError(f"{name} must be a positive integer, got {summary(x)}")


def tropical_rank(A: Any, *, semiring: Semiring | str | None = None, max_checks: int = 200_000) -> int:
    """The tropical rank: the size of the largest tropically non-singular square minor of ``A``.

    Parameters
    ----------
    A : array_like
        m×n matrix (exact or float; floats are taken at their exact binary values).
    semiring : Semiring or str, optional
        ``MaxPlus`` (default) or ``MinPlus``.  The answer depends on the convention.
    max_checks : int, optional
        Maximal number of singularity tests (the search is exponential in the worst case).

    Raises
    ------
    SizeLimitError
        If more than ``max_checks`` minors would have to be tested.

    Examples
    --------
    >>> tropical_rank([[0, 0], [0, 0]]), tropical_rank([[0, 0], [0, 1]])
    (1, 2)
    >>> tropical_rank([[float("-inf"), float("-inf")]])
    0
    """
    _check_limit(max_checks, "max_checks")
    return _tropical_rank(_Exact(A, semiring), max_checks)[0]


def nonsingular_minor(A: Any, *, semiring: Semiring | str | None = None, max_checks: int = 200_000):
    """Rows and columns ``(I, J)`` of a largest non-singular minor (``len(I)`` is the tropical rank).

    Examples
    --------
    >>> nonsingular_minor([[0, 0, 5], [0, 0, 0]])
    ((0, 1), (0, 2))
    """
    _check_limit(max_checks, "max_checks")
    _, rows, cols = _tropical_rank(_Exact(A, semiring), max_checks)
    return rows, cols


# ----------------------------------------------------------------------------------------------
# Barvinok rank
# ----------------------------------------------------------------------------------------------
def _closed_rectangles(allowed: np.ndarray):
    """All closed all-finite rectangles (I, J) (both non-empty), as tuples of indices.

    Enumerates subsets of the shorter side (at most 2^min(m, n) of them)."""
    m, n = allowed.shape
    if m > n:
        return sorted((I, J) for J, I in _closed_rectangles(allowed.T))
    out = set()
    for mask in range(1, 1 << m):
        I = [i for i in range(m) if mask >> i & 1]
        J = tuple(j for j in range(n) if allowed[I, j].all())
        if not J:
            continue
        Ic = tuple(i for i in range(m) if allowed[i, list(J)].all())
        out.add((Ic, J))
    return sorted(out)


def _row_graph_connected(B, rows, u) -> bool:
    """Is the row graph of ``u`` on ``rows`` connected (rows linked when they tie at a column's maximum
    of ``u_i − B_ij``)?  ``u`` is a dict row -> value."""
    parent = {i: i for i in rows}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for j in range(len(B[0])):
        best = max(u[i] - B[i][j] for i in rows)
        top = [i for i in rows if u[i] - B[i][j] == best]
        r0 = find(top[0])
        for i in top[1:]:
            parent[find(i)] = r0
    return len({find(i) for i in rows}) == 1


def _vertices(B: list[list[int]], max_states: int):
    """All vertices ``(u, v)`` (with ``u_0 = 0``) of ``{u_i + v_j ≤ B_ij}`` modulo ``(u + c, v − c)``.

    A feasible point is a vertex iff its tight graph is connected, i.e. iff ``u`` has a connected *row
    graph* (rows tied at the maximum of ``u_i − B_ij`` in some column are linked); then ``v_j = −max_i
    (u_i − B_ij)``.  Growing a vertex along a breadth-first order of its row graph, every prefix is a
    vertex of the sub-matrix of its rows, and each new row ``i`` ties at the top of some column ``j``:
    ``u_i = max_{k placed}(u_k − B_kj) + B_ij`` — one of ``q`` candidates.  So the vertices are found by
    extending vertices of row subsets one row at a time (memoised), keeping connected extensions.
    States: at most Σ_R #vertices(B[R, :]) over row subsets R — polynomial in ``q`` for few rows (the
    callers put the shorter side first).
    """
    p, q = len(B), len(B[0])
    start = (0,) + (None,) * (p - 1)
    stack, seen, out = [start], {start}, []
    while stack:
        st = stack.pop()
        rows = [i for i in range(p) if st[i] is not None]
        if len(rows) == p:
            out.append(st)
            continue
        u = {i: st[i] for i in rows}
        tops = [max(u[k] - B[k][j] for k in rows) for j in range(q)]
        for i in range(p):
            if st[i] is not None:
                continue
            for j in range(q):
                val = tops[j] + B[i][j]
                new = st[:i] + (val,) + st[i + 1 :]
                if new in seen:
                    continue
                seen.add(new)
                u[i] = val
                if _row_graph_connected(B, rows + [i], u):
                    stack.append(new)
                del u[i]
        if len(seen) > max_states:
            raise SizeLimitError(
                f"the tropical complex of this {p}×{q} block has too many partial states (> {max_states}); "
                "the exact Barvinok search is limited to small matrices"
            )
    res = []
    for st in sorted(out):
        v = tuple(-max(st[i] - B[i][j] for i in range(p)) for j in range(q))
        res.append((st, v))
    return res


def _maximal_terms(E: _Exact, max_states: int):
    """Maximal rank-one terms below ``W``: list of (attained bitmask, u dict, v dict) in integer units."""
    terms = {}
    for I, J in _closed_rectangles(E.allowed):
        B = [[int(E.Wobj[i, j]) for j in J] for i in I]
        if len(I) <= len(J):
            verts = _vertices(B, max_states)
        else:  # put the shorter side first: the search is polynomial in the longer one
            verts = [(u, v) for v, u in _vertices([list(r) for r in zip(*B)], max_states)]
        for u, v in verts:
            mask = 0
            for a, i in enumerate(I):
                for b, j in enumerate(J):
                    if u[a] + v[b] == B[a][b]:
                        mask |= 1 << (i * E.n + j)
            if mask not in terms:
                terms[mask] = ({i: u[a] for a, i in enumerate(I)}, {j: v[b] for b, j in enumerate(J)})
    masks = sorted(terms, key=lambda s: -bin(s).count("1"))
    keep = []
    for s in masks:  # drop terms attaining a subset of another term's entries
        if not any(s | t == t for t in keep):
            keep.append(s)
    return [(s, *terms[s]) for s in keep]


def _line_terms(E: _Exact):
    """The rank-one terms through the columns of ``W``: ``u = W[:, j]``, ``v_k = min_i (W_ik − W_ij)``.

    Each lies below ``W`` (``v_k`` is the tropical zero where some row with ``W_ij`` finite has ``W_ik``
    the tropical zero) and attains column ``j``; together they sum to ``W``.  Returned as ``(u, v)``
    dicts of finite integer coordinates, like the terms of :func:`_maximal_terms`.
    """
    out = []
    for j in range(E.n):
        rows = [i for i in range(E.m) if E.allowed[i, j]]
        u = {i: int(E.Wobj[i, j]) for i in rows}
        v = {}
        for k in range(E.n):
            if all(E.allowed[i, k] for i in rows):
                v[k] = min(int(E.Wobj[i, k]) - u[i] for i in rows)
        out.append((u, v))
    return out


def _min_cover(universe: int, sets: list[int], upper: int):
    """A minimum-size list of sets covering ``universe`` (exact, iterative deepening), size <= upper."""
    if universe == 0:
        return []
    biggest = max(bin(s).count("1") for s in sets)
    by_elem: dict[int, list[int]] = {}
    for k, s in enumerate(sets):
        x = s
        while x:
            b = x & -x
            by_elem.setdefault(b, []).append(k)
            x ^= b

    def rec(covered, depth, chosen):
        rest = universe & ~covered
        if rest == 0:
            return list(chosen)
        if depth == 0 or bin(rest).count("1") > depth * biggest:
            return None
        # branch on the uncovered element with the fewest covering sets
        x, best, bestlist = rest, None, None
        while x:
            b = x & -x
            x ^= b
            lst = by_elem.get(b, [])
            if best is None or len(lst) < best:
                best, bestlist = len(lst), lst
                if best <= 1:
                    break
        for k in bestlist:
            chosen.append(k)
            r = rec(covered | sets[k], depth - 1, chosen)
            chosen.pop()
            if r is not None:
                return r
        return None

    for r in range(1, upper + 1):
        res = rec(0, r, [])
        if res is not None:
            return res
    raise AssertionError("no cover within the proven upper bound min(m, n)")  # pragma: no cover


def _barvinok(E: _Exact, max_entries: int, max_states: int):
    """Terms of a shortest decomposition, in full-matrix coordinates: list of (u dict, v dict) (integers).

    The search runs on the matrix reduced to one row and one column per class up to adding a constant
    (zero lines dropped); ``max_entries`` applies to the reduced matrix.  Terms are extended back along
    the classes: if row ``k`` = row ``i`` + ``c`` then ``u_k = u_i + c``.
    """
    R, rows, cols = E.reduced()
    if R is None:
        return []
    if R.m * R.n > max_entries:
        raise SizeLimitError(
            f"exact Barvinok rank is limited to matrices with at most max_entries={max_entries} entries "
            f"after merging rows and columns that differ by a constant (got {R.m}×{R.n}); use rank_bounds "
            "for cheap bounds"
        )
    if len(_greedy_minor(R)[0]) == min(R.m, R.n):
        # full tropical rank: tropical ≤ Barvinok ≤ min(m, n) meet, and the terms through the lines of
        # the shorter side (a column j: u = W[:, j], v_k = min_i (W_ik - W_ij)) are a decomposition
        chosen = _line_terms(R) if R.n <= R.m else [(v, u) for u, v in _line_terms(R.restrict_t())]
    else:
        universe = 0
        for i, j in map(tuple, np.argwhere(R.allowed)):
            universe |= 1 << (int(i) * R.n + int(j))
        terms = _maximal_terms(R, max_states)
        cover = _min_cover(universe, [t[0] for t in terms], min(R.m, R.n))
        chosen = [terms[k][1:] for k in cover]
    _, row_of = E.classes(0)
    _, col_of = E.classes(1)
    out = []
    for u, v in chosen:  # keyed by positions in the reduced matrix
        uu = {i: u[a[0]] + a[1] for i, a in enumerate(row_of) if a is not None and a[0] in u}
        vv = {j: v[a[0]] + a[1] for j, a in enumerate(col_of) if a is not None and a[0] in v}
        out.append((uu, vv))
    return out


def barvinok_rank(
    A: Any, *, semiring: Semiring | str | None = None, max_entries: int = 49, max_states: int = 300_000
) -> int:
    """The Barvinok rank: the fewest tropical rank-one matrices ``u ⊗ vᵀ`` whose tropical sum is ``A``.

    Parameters
    ----------
    A : array_like
        m×n matrix; after merging rows (and columns) that differ by a constant and dropping zero lines,
        at most ``max_entries`` entries may remain.
    semiring : Semiring or str, optional
        ``MaxPlus`` (default) or ``MinPlus``.
    max_entries, max_states : int, optional
        Size limits of the exact (exponential) search.

    Raises
    ------
    SizeLimitError
        If the matrix or its tropical complex is too large.

    Examples
    --------
    >>> barvinok_rank([[0, 1], [1, 2]]), barvinok_rank([[0, 0], [0, 1]])
    (1, 2)
    >>> barvinok_rank([[0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1], [1, 1, 1, 0]])
    4
    """
    _check_limit(max_entries, "max_entries")
    _check_limit(max_states, "max_states")
    return len(_barvinok(_Exact(A, semiring), max_entries, max_states))


def barvinok_decomposition(
    A: Any, *, semiring: Semiring | str | None = None, max_entries: int = 49, max_states: int = 300_000
):
    """A shortest decomposition ``A = ⊕_k u_k ⊗ v_kᵀ``: the pair ``(U, V)`` with ``A = U ⊗ V`` exactly.

    ``U`` is m×r and ``V`` is r×n (NumPy object arrays of exact numbers, tropical zeros as ``±inf``),
    ``r`` the Barvinok rank.

    Examples
    --------
    >>> import numpy as np
    >>> from tropix.tropical import matmul
    >>> A = np.array([[0, 0], [0, 1]], dtype=object)
    >>> U, V = barvinok_decomposition(A)
    >>> U.shape, bool((matmul(U, V) == A).all())
    ((2, 2), True)
    """
    _check_limit(max_entries, "max_entries")
    _check_limit(max_states, "max_states")
    E = _Exact(A, semiring)
    terms = _barvinok(E, max_entries, max_states)
    r = len(terms)
    U = np.empty((E.m, r), dtype=object)
    V = np.empty((r, E.n), dtype=object)
    U.fill(E.S.zero)
    V.fill(E.S.zero)
    for k, (u, v) in enumerate(terms):
        for i, x in u.items():
            U[i, k] = _unscale(x, E)
        for j, x in v.items():
            V[k, j] = _unscale(x, E)
    return U, V


def _unscale(x: int, E: _Exact):
    f = Fraction(E.S.sense * x, E.L)
    return int(f) if f.denominator == 1 else f


# ----------------------------------------------------------------------------------------------
# Kapranov rank
# ----------------------------------------------------------------------------------------------
def _fano_like(E: _Exact) -> bool:
    """``A`` takes exactly two values, the *worse* one (the smaller in max orientation, the larger in
    min-plus) on a point-line incidence of the Fano plane, up to permuting rows and columns and
    transposing; the better value sits on the cocircuits (complements of lines).  The incidence
    matrices of 2-(7,3,1) designs are exactly those of the Fano plane (7×7 0/1, three ones in every
    row and column, any two rows sharing exactly one)."""
    if (E.m, E.n) != (7, 7) or not E.allowed.all():
        return False
    vals = sorted({int(w) for w in E.Wobj.ravel()})
    if len(vals) != 2:
        return False
    P = np.asarray(E.Wobj == vals[0], dtype=np.int64)
    if not (P.sum(axis=0) == 3).all() or not (P.sum(axis=1) == 3).all():
        return False
    return bool((P @ P.T == 2 * np.eye(7, dtype=np.int64) + 1).all())


def kapranov_rank(
    A: Any,
    *,
    semiring: Semiring | str | None = None,
    characteristic: int = 0,
    max_checks: int = 200_000,
    max_entries: int = 49,
) -> int:
    """The Kapranov rank where a theorem settles it; :class:`~tropix.errors.UndecidedError` elsewhere.

    The Kapranov rank of ``A`` is the smallest rank of a matrix over the Puiseux series field
    ``K{{t}}`` (``K`` algebraically closed of characteristic ``characteristic``) whose entrywise valuation
    is ``A`` (lift of a tropical zero: the series 0).  Let ``t`` be the tropical rank, ``b`` the Barvinok
    rank (when the exact search is within ``max_entries``) and ``k = min(m, n)``.  Always ``t ≤ Kapranov ≤
    b ≤ k`` (DSS).  The rank is decided in these cases, and only these:

    1. ``t = b``, ``t = k`` or ``t`` equal to the number of distinct non-zero columns (or rows) up to adding
       a constant (the bounds meet; any characteristic);
    2. ``A`` takes exactly two values and its worse values (the smaller in max-plus, the larger in min-plus)
       form the point-line incidence of the Fano plane up to permutations/transposition (the better value on
       the cocircuits, the complements of the lines), with ``t = 3``: the cocircuit matrix of
       the Fano matroid, Kapranov rank 3 in characteristic 2 and 4 otherwise (DSS: the Fano matroid
       is representable only in characteristic 2);
    3. characteristic 0, all entries finite, and the r×r minors form a tropical basis for ``r = t + 1``,
       which holds for ``r ≤ 3`` (DSS for r = 3), for ``r = min(m, n)`` and for ``r = 4`` when
       ``min(m, n) ≤ 6`` (Shitov, J. Combin. Theory A 120 (2013), "When do the r-by-r minors of a matrix
       form a tropical basis?"): then ``Kapranov = t``.

    Raises
    ------
    UndecidedError
        Elsewhere; the message states the interval known.
    SizeLimitError
        If the tropical rank itself is out of reach (``max_checks``).

    Examples
    --------
    >>> kapranov_rank([[0, 1, 1], [1, 0, 1], [1, 1, 0]], semiring="min")  # full tropical rank
    3
    """
    if not isinstance(characteristic, int) or characteristic < 0:
        raise ToleranceError(f"characteristic must be 0 or a prime, got {summary(characteristic)}")
    if characteristic > 1 and any(characteristic % d == 0 for d in range(2, math.isqrt(characteristic) + 1)):
        raise ToleranceError(f"characteristic must be 0 or a prime, got {characteristic}")
    if characteristic == 1:
        raise ToleranceError("characteristic must be 0 or a prime, got 1")
    _check_limit(max_checks, "max_checks")
    _check_limit(max_entries, "max_entries")
    E = _Exact(A, semiring)
    t = _tropical_rank(E, max_checks)[0]
    k = min(E.m, E.n)
    if t == k:
        return t
    if _fano_like(E) and t == 3:
        return 3 if characteristic == 2 else 4
    if characteristic == 0 and E.allowed.all():
        r = t + 1
        if r <= 3 or r == k or (r == 4 and k <= 6):
            return t
    upper = min(k, len(E.classes(0)[0]), len(E.classes(1)[0]))
    if upper == t:
        return t
    try:
        b = len(_barvinok(E, max_entries, 300_000))
    except SizeLimitError:
        b = None
    if b is not None:
        if b == t:
            return t
        upper = min(upper, b)
    note = "" if b is not None else " (Barvinok rank not computed: matrix too large)"
    raise UndecidedError(
        f"the Kapranov rank (characteristic {characteristic}) of this {E.m}×{E.n} matrix is not settled by the "
        f"theorems tropix applies: {t} ≤ Kapranov rank ≤ {upper} (tropical rank {t}"
        + (f", Barvinok rank {b}" if b is not None else "")
        + f"){note}"
    )


# ----------------------------------------------------------------------------------------------
# cheap bounds
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankBounds:
    """Proven bounds ``lo ≤ rank ≤ hi`` for the three ranks, from polynomial-time arguments.

    Attributes
    ----------
    tropical, kapranov, barvinok : tuple of int
        ``(lo, hi)`` for each rank.
    minor : tuple of tuple of int
        Rows and columns of the non-singular minor that proves the lower bound.
    """

    tropical: tuple[int, int]
    kapranov: tuple[int, int]
    barvinok: tuple[int, int]
    minor: tuple[tuple[int, ...], tuple[int, ...]]


def rank_bounds(A: Any, *, semiring: Semiring | str | None = None, max_checks: int = 5_000) -> RankBounds:
    """Cheap proven bounds for the tropical, Kapranov and Barvinok ranks (polynomial time).

    * lower: a non-singular minor grown greedily (its size bounds all three ranks from below);
    * upper: the number of distinct non-zero columns up to adding a constant (each is attained by
      the rank-one term through one of them), likewise rows, and ``min(m, n)``; it bounds all three.

    Cost: at most ``max_checks`` singularity tests of minors of size k ≤ ``min(m, n)``, each O(k³) (O(k!·k)
    for k ≤ 6), plus O(m·n) for the upper bound.  A larger ``max_checks`` can only raise the lower bound.

    Examples
    --------
    >>> rank_bounds([[0, 1, 1], [0, 1, 1], [5, 6, 6]])
    RankBounds(tropical=(1, 1), kapranov=(1, 1), barvinok=(1, 1), minor=((0,), (0,)))
    """
    _check_limit(max_checks, "max_checks")
    E = _Exact(A, semiring)
    rows, cols = _greedy_minor(E, max_checks)
    lo = len(rows)
    hi = min(E.m, E.n, len(E.classes(0)[0]), len(E.classes(1)[0]))
    return RankBounds((lo, hi), (lo, hi), (lo, hi), (rows, cols))
