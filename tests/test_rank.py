"""Tests of tropix.tropical.rank: tropical, Barvinok and Kapranov ranks and their bounds."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tropix import ConventionError, EmptyInputError, MaxPlus, MinPlus, NaNError, ShapeError
from tropix.errors import SizeLimitError, ToleranceError, UndecidedError
from tropix.tropical import matmul
from tropix.tropical.determinant import is_singular
from tropix.tropical.rank import (
    barvinok_decomposition,
    barvinok_rank,
    kapranov_rank,
    nonsingular_minor,
    rank_bounds,
    tropical_rank,
)

INF = float("inf")


@st.composite
def matrices(draw, max_m=4, max_n=4, lo=0, hi=3, zeros=True):
    S = draw(st.sampled_from([MaxPlus, MinPlus]))
    m = draw(st.integers(1, max_m))
    n = draw(st.integers(1, max_n))
    A = np.empty((m, n), dtype=object)
    for i in range(m):
        for j in range(n):
            A[i, j] = S.zero if zeros and draw(st.integers(0, 5)) == 0 else draw(st.integers(lo, hi))
    return A, S


def brute_tropical_rank(A, S):
    m, n = A.shape
    r = 0
    for k in range(1, min(m, n) + 1):
        for R in itertools.combinations(range(m), k):
            for C in itertools.combinations(range(n), k):
                M = A[np.ix_(R, C)]
                sums = [
                    sum(M[i, p[i]] for i in range(k))
                    for p in itertools.permutations(range(k))
                    if all(M[i, p[i]] != S.zero for i in range(k))
                ]
                if sums:
                    best = max(sums) if S is MaxPlus else min(sums)
                    if sums.count(best) == 1:
                        r = k
    return r


def brute_barvinok(A, S):
    """Barvinok rank by exhaustive search over rank-one terms with integer u on a proven-sufficient grid.

    Works in max orientation W = sense·A (integers).  Every maximal term is a vertex of the tropical
    complex of an all-finite block; normalised to 0 at its first row its coordinates are sums of at most
    (m-1) differences of entries, so |u_i| <= (m-1)·(max-min).  All terms u ⊗ v with u on that grid
    (or the tropical zero) and v_j = min_i (W_ij - u_i) are listed; then the fewest covering terms.
    """
    W = np.array([[S.sense * x if x != S.zero else -INF for x in r] for r in A], dtype=object)
    m, n = W.shape
    fin = [x for x in W.ravel() if x != -INF]
    if not fin:
        return 0
    R = (m - 1) * (max(fin) - min(fin))
    grid = [-INF] + list(range(-R, R + 1))
    target = {(i, j) for i in range(m) for j in range(n) if W[i, j] != -INF}
    types = set()
    for u in itertools.product(grid, repeat=m):
        fu = [x for x in u if x != -INF]
        if not fu or fu[0] != 0:
            continue
        v = []
        for j in range(n):
            vals = [W[i, j] - u[i] if W[i, j] != -INF else -INF for i in range(m) if u[i] != -INF]
            v.append(min(vals))
        T = frozenset(
            (i, j) for i in range(m) for j in range(n) if u[i] != -INF and v[j] != -INF and u[i] + v[j] == W[i, j]
        )
        if T:
            types.add(T)
    types = list(types)
    for r in range(1, min(m, n) + 1):
        for combo in itertools.combinations(types, r):
            if set().union(*combo) == target:
                return r
    raise AssertionError("Barvinok rank exceeds min(m, n)")


@given(matrices())
def test_tropical_rank_matches_all_minors(AS):
    A, S = AS
    r = tropical_rank(A, semiring=S)
    assert r == brute_tropical_rank(A, S)
    rows, cols = nonsingular_minor(A, semiring=S)
    assert len(rows) == len(cols) == r
    if r:
        assert not is_singular(A[np.ix_(rows, cols)], semiring=S)


@given(matrices(max_m=3, max_n=4, hi=2))
def test_barvinok_rank_matches_exhaustive_search(AS):
    A, S = AS
    assert barvinok_rank(A, semiring=S) == brute_barvinok(A, S)


@given(matrices(max_m=4, max_n=5, lo=-3, hi=9))
def test_barvinok_decomposition_reproduces_A(AS):
    A, S = AS
    U, V = barvinok_decomposition(A, semiring=S)
    r = U.shape[1]
    assert r == barvinok_rank(A, semiring=S)
    if r == 0:
        assert all(x == S.zero for x in A.ravel())
    else:
        assert (matmul(U, V, semiring=S) == A).all()
    t = tropical_rank(A, semiring=S)
    assert t <= r <= min(A.shape)


@given(matrices(max_m=5, max_n=5, lo=-4, hi=4))
def test_rank_bounds_are_valid(AS):
    A, S = AS
    b = rank_bounds(A, semiring=S)
    t = tropical_rank(A, semiring=S)
    assert b.tropical[0] <= t <= b.tropical[1]
    assert b.barvinok[0] <= barvinok_rank(A, semiring=S) <= b.barvinok[1]
    rows, cols = b.minor
    assert len(rows) == b.tropical[0]
    if rows:
        assert not is_singular(A[np.ix_(rows, cols)], semiring=S)


@given(matrices(max_m=4, max_n=4, lo=-3, hi=3))
def test_kapranov_answers_lie_between_tropical_and_barvinok(AS):
    A, S = AS
    t, b = tropical_rank(A, semiring=S), barvinok_rank(A, semiring=S)
    try:
        k = kapranov_rank(A, semiring=S)
    except UndecidedError as err:
        assert t < b
        assert f"{t} ≤ Kapranov rank ≤ {b}" in str(err)
    else:
        assert t <= k <= b


@given(matrices(max_m=4, max_n=4, lo=-3, hi=3), st.randoms(use_true_random=False))
def test_ranks_are_invariant(AS, rnd):
    """Row/column permutation, transposition, tropical scaling and positive rescaling keep all ranks."""
    A, S = AS
    m, n = A.shape
    rp, cp = list(range(m)), list(range(n))
    rnd.shuffle(rp)
    rnd.shuffle(cp)
    a = [rnd.randint(-5, 5) for _ in range(m)]
    c = [rnd.randint(-5, 5) for _ in range(n)]
    B = np.empty_like(A)
    for i in range(m):
        for j in range(n):
            x = A[rp[i], cp[j]]
            B[i, j] = x if x == S.zero else Fraction(3, 2) * x + a[i] + c[j]
    for f in (tropical_rank, barvinok_rank):
        assert f(A, semiring=S) == f(B, semiring=S) == f(B.T, semiring=S)


def test_identity_complement_dss():
    """n×n, 0 on the diagonal and 1 elsewhere, max-plus (= DSS min-plus matrix −A): tropical rank 2 for n ≥ 2,
    so Kapranov rank 2 (3×3 minors are a tropical basis), while the Barvinok rank grows: it equals the
    smallest k with n ≤ C(k, ⌊k/2⌋) (the Boolean rank of the complement of the identity)."""
    from math import comb

    for n in range(2, 7):
        A = np.ones((n, n), dtype=int) - np.eye(n, dtype=int)
        assert tropical_rank(A) == 2
        assert kapranov_rank(A) == 2
        sperner = min(k for k in range(1, n + 1) if comb(k, k // 2) >= n)
        assert barvinok_rank(A) == max(sperner, 2)
        # same matrix in the min-plus convention: the diagonal is the unique optimum, full rank
        assert tropical_rank(A, semiring="min") == kapranov_rank(A, semiring="min") == n
    assert barvinok_rank(np.ones((4, 4), dtype=int) - np.eye(4, dtype=int)) == 4 > 2


def fano(on_line, off_line):
    lines = [{i % 7, (i + 1) % 7, (i + 3) % 7} for i in range(7)]
    return np.array([[on_line if p in L else off_line for p in range(7)] for L in lines], dtype=object)


def test_fano_cocircuit_matrix_dss():
    """DSS: min-plus, 0 on the cocircuits (off the lines), 1 on the lines: tropical rank 3,
    Kapranov rank 4 unless the characteristic is 2 (the Fano matroid is realisable only there)."""
    F = fano(1, 0)
    assert tropical_rank(F, semiring="min") == 3
    assert kapranov_rank(F, semiring="min") == 4
    assert kapranov_rank(F, semiring="min", characteristic=3) == 4
    assert kapranov_rank(F, semiring="min", characteristic=2) == 3
    # the same matrix in max-plus convention: -F, and with permuted rows/cols, scaled values, transposed
    G = -fano(Fraction(5, 2), 0)[np.ix_([3, 1, 4, 0, 6, 5, 2], [6, 0, 5, 1, 4, 2, 3])].T + 7
    assert tropical_rank(G) == 3 and kapranov_rank(G) == 4 and kapranov_rank(G, characteristic=2) == 3
    # the complementary pattern is a different matrix: tropical rank 4, nothing known to tropix
    assert tropical_rank(F) == 4
    with pytest.raises(UndecidedError, match="4 ≤ Kapranov rank ≤ 7"):
        kapranov_rank(F)


def test_non_column_terms_are_needed():
    """Maximal rank-one terms are vertices of the tropical complex, not only columns/rows of A."""
    A = np.array([[0, 9, 0, 3], [5, 7, 0, 5], [8, 0, 9, 2], [9, 1, 8, 9]], dtype=object)
    assert barvinok_rank(A) == 3
    U, V = barvinok_decomposition(A)
    assert (matmul(U, V) == A).all()
    # covering by terms through columns or rows of A alone needs 4
    W = A
    sets = []
    for j in range(4):
        v = [min(W[i, k] - W[i, j] for i in range(4)) for k in range(4)]
        sets.append({(i, k) for i in range(4) for k in range(4) if W[i, j] + v[k] == W[i, k]})
    for i in range(4):
        u = [min(W[a, k] - W[i, k] for k in range(4)) for a in range(4)]
        sets.append({(a, k) for a in range(4) for k in range(4) if u[a] + W[i, k] == W[a, k]})
    full = {(i, k) for i in range(4) for k in range(4)}
    assert not any(set().union(*c) == full for c in itertools.combinations(sets, 3))


def test_kapranov_theorem_cases():
    rng = np.random.default_rng(7)
    A = rng.integers(0, 100, (3, 6))
    assert kapranov_rank(A) == tropical_rank(A) == 3  # full tropical rank
    R1 = np.add.outer([0, 4, 1, 7], [2, 0, 3])  # tropical rank one
    assert tropical_rank(R1) == barvinok_rank(R1) == kapranov_rank(R1, characteristic=5) == 1
    # identity complement with a tropical zero: tropix applies no minor theorem with zeros
    Z = np.array([[0, 1, 1], [1, 0, 1], [1, 1, -INF]], dtype=object)
    assert (tropical_rank(Z), barvinok_rank(Z)) == (2, 3)
    with pytest.raises(UndecidedError, match="2 ≤ Kapranov rank ≤ 3"):
        kapranov_rank(Z)
    # characteristic p: the 3×3 minor theorem is only used in characteristic 0
    I3 = np.ones((3, 3), dtype=int) - np.eye(3, dtype=int)
    with pytest.raises(UndecidedError, match="characteristic 2"):
        kapranov_rank(I3, characteristic=2)
    with pytest.raises(ToleranceError):
        kapranov_rank(I3, characteristic=4)
    # 7×7 (Barvinok search out of reach) of tropical rank one: decided by the 2×2 minor theorem
    M = np.add.outer([3, 1, 4, 1, 5, 9, 2], [6, 5, 3, 5, 8, 9, 7])
    assert tropical_rank(M) == 1 and kapranov_rank(M) == 1
    # tropical rank 3 < Barvinok rank 4: decided by "maximal minors are a tropical basis" (4×5) and by
    # "4×4 minors are a tropical basis when min(m, n) <= 6" (5×5), in characteristic 0 only
    T45 = [[0, 0, 0, 2, 2], [2, 2, 0, 0, 1], [1, 0, 0, 2, 2], [0, 2, 0, 0, 2]]
    T55 = [[0, 0, 0, 1, 0], [1, 0, 2, 2, 0], [1, 0, 2, 1, 1], [0, 1, 1, 1, 0], [0, 2, 2, 2, 1]]
    for T in (T45, T55):
        assert (tropical_rank(T), barvinok_rank(T)) == (3, 4)
        assert kapranov_rank(T) == 3
        with pytest.raises(UndecidedError, match="3 ≤ Kapranov rank ≤ 4"):
            kapranov_rank(T, characteristic=3)


def test_zero_and_float_inputs():
    Z = np.full((3, 2), -INF)
    assert tropical_rank(Z) == barvinok_rank(Z) == kapranov_rank(Z) == 0
    assert rank_bounds(Z).tropical == (0, 0)
    assert tropical_rank([[0.1, 0.2], [0.2, 0.3]]) == 2  # exact binary values: not a tie


def test_backends(backend):
    A = np.array([[0.0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1]])
    x = backend(A)
    assert tropical_rank(x) == 2
    assert barvinok_rank(x) == 3
    assert kapranov_rank(x) == 2
    assert rank_bounds(x).tropical[0] >= 1


def test_size_limits_and_errors():
    with pytest.raises(SizeLimitError, match="max_entries=49"):
        barvinok_rank(np.arange(56).reshape(7, 8) ** 2 % 13)
    assert barvinok_rank(np.zeros((20, 30), dtype=int)) == 1  # all rows equal: reduces to 1×1
    with pytest.raises(SizeLimitError, match="partial states"):
        barvinok_rank(fano(1, 0), semiring="min", max_states=50)  # tropical rank 3: the search runs
    # full tropical rank needs no search (tropical = Barvinok = min(m, n)): instant even for wide entries
    G = np.random.default_rng(5).integers(-(10**6), 10**6, (7, 7))
    assert tropical_rank(G) == barvinok_rank(G, max_states=1) == 7
    U, V = barvinok_decomposition(G.T, semiring="min", max_states=1)
    assert U.shape == (7, 7) and (matmul(U, V, semiring="min") == G.T).all()
    A = np.ones((6, 6), dtype=int) - np.eye(6, dtype=int)
    with pytest.raises(SizeLimitError, match="max_checks=5"):
        tropical_rank(A, max_checks=5)
    with pytest.raises(ToleranceError):
        tropical_rank(A, max_checks=0)
    with pytest.raises(ShapeError):
        tropical_rank([1, 2, 3])
    with pytest.raises(EmptyInputError):
        barvinok_rank(np.zeros((0, 3)))
    with pytest.raises(NaNError):
        rank_bounds([[float("nan")]])
    with pytest.raises(ConventionError):
        tropical_rank([[INF, 0.0]])


def test_rank_bounds_budget_and_large_input():
    rng = np.random.default_rng(2)
    A = rng.integers(0, 2, (40, 30))
    b1 = rank_bounds(A, max_checks=1)
    b2 = rank_bounds(A)
    assert 1 <= b1.tropical[0] <= b2.tropical[0] <= b2.tropical[1] <= 30
    rows, cols = b2.minor
    assert not is_singular(A[np.ix_(rows, cols)])
    # a generic 60×60 float matrix is non-singular: the greedy minor reaches full size
    G = rng.random((60, 60))
    assert rank_bounds(G).tropical == (60, 60)
    with pytest.raises(ToleranceError):
        rank_bounds(A, max_checks=0)


def test_long_thin_and_zero_matrices():
    col = np.arange(42).reshape(42, 1)
    assert barvinok_rank(col) == tropical_rank(col) == 1
    assert barvinok_rank(col.T, semiring="min") == 1
    Z = np.full((12, 12), -INF)
    Z[3, 4] = 0.0
    assert tropical_rank(Z) == kapranov_rank(Z) == 1  # Barvinok search out of reach, upper bound suffices
    assert kapranov_rank(np.full((12, 12), INF), semiring="min") == 0


@given(matrices(max_m=3, max_n=3, hi=2), st.integers(-2, 2), st.data())
def test_duplicated_and_zero_lines(AS, c, data):
    """Adding a row that differs from another by a constant, and a zero column, changes no rank
    (checked against brute force on the enlarged matrix)."""
    A, S = AS
    m, n = A.shape
    k = data.draw(st.integers(0, m - 1))
    extra = np.array([[x if x == S.zero else x + c for x in A[k]]], dtype=object)
    B = np.vstack([A, extra])
    B = np.hstack([B, np.full((m + 1, 1), S.zero, dtype=object)])
    assert tropical_rank(B, semiring=S) == brute_tropical_rank(B, S) == brute_tropical_rank(A, S)
    assert barvinok_rank(B, semiring=S) == brute_barvinok(B, S)
    U, V = barvinok_decomposition(B, semiring=S)
    if U.shape[1]:
        assert (matmul(U, V, semiring=S) == B).all()


def test_large_low_rank_matrix_is_reduced():
    rng = np.random.default_rng(0)
    X = np.add.outer(rng.integers(0, 9, 12), rng.integers(0, 9, 60))
    X[:, :3] = rng.integers(0, 9, (12, 3))
    # only 4 classes of columns: every rank is at most 4; the search runs on a 12×4 matrix
    t = tropical_rank(X)
    assert t == tropical_rank(X[:, :4]) == brute_tropical_rank(X[:, :4].astype(object), MaxPlus)
    assert rank_bounds(X).tropical[1] == 4


# ----------------------------------------------------------------------------------------------
# Independent verification (review of issue #2): methods that share no code or algorithm with rank.py
# ----------------------------------------------------------------------------------------------
# * tropical rank: every square minor, every permutation, vectorised (numpy), stopping at the first
#   size without a non-singular minor (a non-singular (k+1)-minor contains a non-singular k-minor);
# * Barvinok rank, two ways:
#   (a) list every *closed* rank-one term on an integer grid and solve the set cover as an integer
#       program (scipy.optimize.milp).  A cover by r terms can be replaced by one by r vertices of the
#       polyhedron {u_i + v_j <= W_ij} of an all-finite block (every face of a pointed polyhedron holds a
#       vertex, whose tight set contains the face's); a vertex has a spanning tight tree, hence integer
#       coordinates for integer W, and normalised to max(u) = 0 it has u in [lo - hi, 0], v in [lo, hi];
#   (b) a direct big-M feasibility MILP "W is the max of r rank-one terms" (no enumeration at all),
#       with the same w.l.o.g. bounds, infeasible for r - 1 and feasible for r.
# * Kapranov rank of the Fano matrix: explicit lifts X(t)·Y(t) of rank 4 (characteristic 0) and rank 3
#   (characteristic 2) whose valuations are checked entry by entry; the matching lower bound 4 off
#   characteristic 2 is the DSS theorem (the Fano matroid is realisable only in characteristic 2).


def _max_orientation(A, S):
    """Integer matrix in max orientation (tropical zero -> None); A must have integer entries."""
    return [[None if x == S.zero else S.sense * int(x) for x in row] for row in np.asarray(A, dtype=object)]


def indep_tropical_rank(A, S):
    W = _max_orientation(A, S)
    m, n = len(W), len(W[0])
    big = -(10**9)
    Wf = np.array([[big if x is None else x for x in row] for row in W], dtype=np.int64)
    rank = 0
    for k in range(1, min(m, n) + 1):
        P = np.array(list(itertools.permutations(range(k))), dtype=np.int64)
        found = False
        for R in itertools.combinations(range(m), k):
            sub_r = Wf[list(R)]
            for C in itertools.combinations(range(n), k):
                sub = sub_r[:, list(C)]
                vals = sub[np.arange(k), P]  # (k!, k)
                ok = (vals > big // 2).all(axis=1)
                if not ok.any():
                    continue
                w = vals.sum(axis=1)[ok]
                if (w == w.max()).sum() == 1:
                    found = True
                    break
            if found:
                break
        if not found:
            break
        rank = k
    return rank


def _closed_terms_on_grid(W):
    """Attained sets (frozensets of (i, j)) of all closed integer rank-one terms, normalised max(u) = 0."""
    m, n = len(W), len(W[0])
    out = set()
    for size in range(1, m + 1):
        for I in itertools.combinations(range(m), size):
            J = [j for j in range(n) if all(W[i][j] is not None for i in I)]
            if not J:
                continue
            vals = [W[i][j] for i in I for j in J]
            lo, hi = min(vals), max(vals)
            for u in itertools.product(range(lo - hi, 1), repeat=size):
                if max(u) != 0:
                    continue
                v = [min(W[i][j] - u[a] for a, i in enumerate(I)) for j in J]
                out.add(
                    frozenset(
                        (i, j) for a, i in enumerate(I) for b, j in enumerate(J) if u[a] + v[b] == W[i][j]
                    )
                )
    return [s for s in out if s]


def indep_barvinok_setcover(A, S):
    from scipy.optimize import Bounds, LinearConstraint, milp

    W = _max_orientation(A, S)
    cells = [(i, j) for i in range(len(W)) for j in range(len(W[0])) if W[i][j] is not None]
    if not cells:
        return 0
    terms = _closed_terms_on_grid(W)
    M = np.array([[1.0 if c in t else 0.0 for t in terms] for c in cells])
    res = milp(
        np.ones(len(terms)),
        constraints=LinearConstraint(M, lb=np.ones(len(cells)), ub=np.inf),
        integrality=np.ones(len(terms)),
        bounds=Bounds(0, 1),
    )
    assert res.success
    return int(round(res.fun))


def max_of_r_rank_one_is_feasible(W, r):
    """Direct big-M MILP: is the all-finite integer matrix W (max orientation) a max of r terms u⊗vᵀ?"""
    from scipy.optimize import Bounds, LinearConstraint, milp

    W = np.asarray(W, dtype=float)
    m, n = W.shape
    lo, hi = float(W.min()), float(W.max())
    big = 2 * (hi - lo) + 1
    nu, nv = r * m, r * n
    N = nu + nv + r * m * n
    rows, lb, ub = [], [], []
    for k in range(r):
        for i in range(m):
            for j in range(n):
                a = np.zeros(N)
                a[k * m + i] = a[nu + k * n + j] = 1
                rows.append(a)  # u + v <= W
                lb.append(-np.inf)
                ub.append(W[i, j])
                a = a.copy()
                a[nu + nv + (k * m + i) * n + j] = -big  # z = 1  =>  u + v >= W
                rows.append(a)
                lb.append(W[i, j] - big)
                ub.append(np.inf)
    for i in range(m):
        for j in range(n):
            a = np.zeros(N)
            for k in range(r):
                a[nu + nv + (k * m + i) * n + j] = 1
            rows.append(a)  # every entry attained by some term
            lb.append(1)
            ub.append(np.inf)
    bounds = Bounds(
        np.r_[np.full(nu, lo - hi), np.full(nv, lo), np.zeros(r * m * n)],
        np.r_[np.zeros(nu), np.full(nv, hi), np.ones(r * m * n)],
    )
    res = milp(
        np.zeros(N),
        constraints=LinearConstraint(np.array(rows), lb, ub),
        integrality=np.r_[np.zeros(nu + nv), np.ones(r * m * n)],
        bounds=bounds,
    )
    assert res.status in (0, 2), res.message  # solved: feasible or proven infeasible
    return res.status == 0


@given(matrices(max_m=4, max_n=4, hi=3))
def test_ranks_agree_with_independent_methods(AS):
    A, S = AS
    assert tropical_rank(A, semiring=S) == indep_tropical_rank(A, S)
    assert barvinok_rank(A, semiring=S) == indep_barvinok_setcover(A, S)


def test_identity_complement_independent():
    """Max-plus, 0 on the diagonal, 1 elsewhere: Barvinok rank 3, 4, 4, 4 for n = 3..6 by the direct MILP
    (r - 1 terms infeasible, r feasible) and by the grid set cover; tropical rank 2 by all minors."""
    for n, r in zip(range(3, 7), (3, 4, 4, 4)):
        A = np.ones((n, n), dtype=int) - np.eye(n, dtype=int)
        assert not max_of_r_rank_one_is_feasible(A, r - 1)
        assert max_of_r_rank_one_is_feasible(A, r)
        assert barvinok_rank(A) == r
        if n <= 5:
            assert indep_barvinok_setcover(A, MaxPlus) == r
        assert indep_tropical_rank(A, MaxPlus) == tropical_rank(A) == 2


def _fano_lines():
    return [{i % 7, (i + 1) % 7, (i + 3) % 7} for i in range(7)]


def _lift_valuations(X0, X1, Y0, Y1, p=None):
    """Min-plus valuations of the entries of (X0 + t X1)(Y0 + t Y1) (over Z, or GF(p) if p is given)."""
    c = [X0 @ Y0, X0 @ Y1 + X1 @ Y0, X1 @ Y1]
    if p is not None:
        c = [x % p for x in c]
    val = np.full(c[0].shape, INF, dtype=object)
    for d in (2, 1, 0):
        val[c[d] != 0] = d
    return val


def test_fano_ranks_independent():
    """The DSS Fano example: min-plus 7×7, rows = lines, columns = points, 1 where the point is on the line,
    0 elsewhere.  Tropical rank 3 (all minors), Barvinok rank 7 (set-cover MILP; the direct MILP proving
    6 infeasible takes a few seconds and lives in examples/tropical_linear_algebra.py), Kapranov rank
    4 in characteristic 0 (explicit rank-4 lift; ≥ 4 is DSS) and 3 in characteristic 2 (explicit lift)."""
    lines = _fano_lines()
    F = np.array([[1 if p in L else 0 for p in range(7)] for L in lines], dtype=object)
    assert indep_tropical_rank(F, MinPlus) == tropical_rank(F, semiring="min") == 3
    assert indep_barvinok_setcover(F, MinPlus) == barvinok_rank(F, semiring="min") == 7
    # characteristic 0: points x_p in Z^4, line covectors y_L orthogonal to exactly the line's points
    rng = np.random.default_rng(11)
    import sympy

    while True:
        X0 = rng.integers(-3, 4, (7, 4))
        Y0 = np.zeros((4, 7), dtype=np.int64)
        for k, L in enumerate(lines):
            ns = sympy.Matrix(X0[sorted(L)].tolist()).nullspace()
            if len(ns) != 1:
                break
            y = ns[0] * sympy.ilcm(*[q.q for q in ns[0]])
            Y0[:, k] = [int(q) for q in y]
        else:
            X1, Y1 = rng.integers(-3, 4, (7, 4)), rng.integers(-3, 4, (4, 7))
            val = _lift_valuations(Y0.T, Y1.T, X0.T, X1.T)  # rows = lines, columns = points
            if (val == F).all():
                break
    assert kapranov_rank(F, semiring="min") == 4  # lift of rank ≤ 4 above; DSS: > 3 off characteristic 2
    # characteristic 2: points p = nonzero vectors of GF(2)^3, line q = the points orthogonal to q.  The lift
    # (P + t·A)·Pᵀ has rank ≤ 3; entry (p, q) is p·q + t·(a_p·q).  Over GF(2) no A works (checked by
    # elimination while reviewing), over GF(4) ⊂ the algebraically closed residue field it does: a_p·q ≠ 0
    # for the three q ⟂ p.  GF(4) = {0, 1, w, w+1} as 0..3, addition = xor.
    mul = [[0, 0, 0, 0], [0, 1, 2, 3], [0, 2, 3, 1], [0, 3, 1, 2]]

    def dot4(a, q):
        s = 0
        for x, y in zip(a, q):
            s ^= mul[x][int(y)]
        return s

    pts = [np.array([(x >> 2) & 1, (x >> 1) & 1, x & 1]) for x in range(1, 8)]
    L2 = [{p for p in range(7) if pts[p] @ pts[q] % 2 == 0} for q in range(7)]
    F2 = np.array([[1 if p in L else 0 for p in range(7)] for L in L2], dtype=object)
    val = np.empty((7, 7), dtype=object)
    for p in range(7):
        perp = [q for q in range(7) if pts[p] @ pts[q] % 2 == 0]
        a = next(a for a in itertools.product(range(4), repeat=3) if all(dot4(a, pts[q]) for q in perp))
        for q in range(7):
            const = int(pts[p] @ pts[q]) % 2
            val[q, p] = 0 if const else (1 if dot4(a, pts[q]) else INF)  # rows = lines, like F2
    assert (val == F2).all()
    assert tropical_rank(F2, semiring="min") == 3  # F2 is a relabelling of F
    assert kapranov_rank(F2, semiring="min", characteristic=2) == 3
    assert kapranov_rank(F2, semiring="min", characteristic=3) == 4
