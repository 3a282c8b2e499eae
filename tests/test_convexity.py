"""Tropical polytopes: Develin–Sturmfels face counts, brute-force pseudovertices, projection/membership laws."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import ConventionError, EmptyInputError, MaxPlus, MinPlus, NaNError, ShapeError
from tropix.tropical import (
    convex_hull,
    covector,
    hilbert_distance,
    tropical_projection,
    tropical_segment,
)

NEG = float("-inf")


# ----------------------------------------------------------------------------------- reference code
def ds_f_vector(n: int, d: int) -> tuple[int, ...]:
    """Develin–Sturmfels, Corollary 25: (n+d-i-2)! / ((n-i-1)! (d-i-1)! i!) bounded cells of dimension i."""
    f = math.factorial
    return tuple(f(n + d - i - 2) // (f(n - i - 1) * f(d - i - 1) * f(i)) for i in range(min(n, d)))


def general_position(V) -> bool:
    """Every square submatrix has a unique optimal (max-plus) permutation: the DS genericity condition."""
    n, d = len(V), len(V[0])
    for k in range(2, min(n, d) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.combinations(range(d), k):
                vals = sorted(sum(V[r][c] for r, c in zip(rows, p)) for p in itertools.permutations(cols))
                if vals[-1] == vals[-2]:
                    return False
    return True


def brute_pseudovertices(V, sense=1):
    """Pseudovertices by enumerating all spanning trees of K_{n,d} (independent of the library's algorithm)."""
    n, d = len(V), len(V[0])
    W = [[sense * Fraction(v) for v in r] for r in V]
    edges = [(i, j) for i in range(n) for j in range(d)]
    out = set()
    for tree in itertools.combinations(edges, n + d - 1):
        adj = {}
        for i, j in tree:
            adj.setdefault(("p", i), []).append(("c", j))
            adj.setdefault(("c", j), []).append(("p", i))
        val = {("c", 0): Fraction(0)}
        stack = [("c", 0)]
        while stack:
            u = stack.pop()
            for w in adj.get(u, []):
                if w not in val:
                    i, j = (w[1], u[1]) if u[0] == "c" else (u[1], w[1])
                    val[w] = W[i][j] - val[u]
                    stack.append(w)
        if len(val) != n + d:
            continue
        if all(max(W[i][k] - val[("c", k)] for k in range(d)) == val[("p", i)] for i in range(n)) and all(
            W[i][j] - val[("c", j)] == val[("p", i)] for i, j in tree
        ):
            out.add(tuple(sense * val[("c", j)] for j in range(d)))
    return out


def _pv_set(P):
    return {tuple(Fraction(v) for v in row) for row in P.pseudovertices}


# ----------------------------------------------------------------------------------- published values
@pytest.mark.parametrize("n,d", [(2, 2), (2, 3), (3, 3), (4, 3), (3, 4), (5, 3), (4, 4), (2, 5)])
@pytest.mark.parametrize("semiring", [MaxPlus, MinPlus])
def test_develin_sturmfels_f_vector_general_position(n, d, semiring):
    rng = np.random.default_rng(100 * n + d)
    found = 0
    while found < 2:
        V = rng.integers(-40, 40, (n, d)).tolist()
        if not general_position(V):
            continue
        found += 1
        P = convex_hull(V, semiring=semiring)
        assert P.f_vector == ds_f_vector(n, d)
        assert len(P.pseudovertices) == math.comb(n + d - 2, d - 1)
        if n * d <= 12:
            assert _pv_set(P) == brute_pseudovertices(V, semiring.sense)


def test_ds_values_worked_out():
    # the numbers checked above, written out: n = 4 points in TP^2 and n = 4 in TP^3
    assert ds_f_vector(4, 3) == (10, 12, 3)
    assert ds_f_vector(4, 4) == (20, 30, 12, 1)
    assert ds_f_vector(3, 3) == (6, 6, 1)


@st.composite
def int_points(draw, max_n=4, max_d=4, zeros=False):
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(2, max_d))
    vals = st.integers(-4, 4)
    if zeros:
        vals = st.one_of(vals, st.just(NEG))
    V = [[draw(vals) for _ in range(d)] for _ in range(n)]
    for r in V:
        if all(v == NEG for v in r):
            r[draw(st.integers(0, d - 1))] = 0
    return V


@settings(max_examples=25)
@given(int_points(max_n=3, max_d=3))
def test_pseudovertices_match_brute_force_degenerate(V):
    # small integers: ties, repeated points and collinear points are frequent
    P = convex_hull(V)
    assert _pv_set(P) == brute_pseudovertices(V)
    Pm = convex_hull(V, semiring="min")
    assert _pv_set(Pm) == brute_pseudovertices(V, -1)


@settings(max_examples=20)
@given(int_points(max_n=3, max_d=4))
def test_cells_are_consistent(V):
    P = convex_hull(V)
    n, d = len(V), len(V[0])
    for c in P.cells:
        assert P.type_of(list(c.interior_point)) == c.type
        assert c.in_polytope == P.contains(list(c.interior_point))
        assert c.bounded == c.in_polytope  # finite generators: the bounded cells are exactly the polytope
    # the polytope is contractible: Euler characteristic 1
    assert sum((-1) ** k * f for k, f in enumerate(P.f_vector)) == 1
    # every random point's type is one of the cells
    rng = np.random.default_rng(0)
    types = {c.type for c in P.cells}
    for _ in range(10):
        x = [0] + [Fraction(int(v), 7) for v in rng.integers(-40, 40, d - 1)]
        assert P.type_of(x) in types


@settings(max_examples=20)
@given(int_points(max_n=3, max_d=3, zeros=True))
def test_cells_with_boundary_generators(V):
    # generators with -inf coordinates: the torus part of the polytope may be unbounded
    P = convex_hull(V)
    for c in P.cells:
        x = list(c.interior_point)
        assert P.type_of(x) == c.type
        assert c.in_polytope == P.contains(x)


def test_min_and_max_conventions_have_identical_combinatorics():
    V = [[0, 1, 3, 7], [0, 4, 2, 1], [0, -2, 5, 0], [0, 3, 3, -4]]
    Pmin = convex_hull(V, semiring="min")
    Pmax = convex_hull([[-v for v in r] for r in V], semiring="max")
    assert Pmin.f_vector == Pmax.f_vector
    assert [c.type for c in Pmin.cells] == [c.type for c in Pmax.cells]
    assert _pv_set(Pmin) == {tuple(-v for v in p) for p in _pv_set(Pmax)}


# ----------------------------------------------------------------------------------- degenerate input
def test_degenerate_configurations():
    # one point: a single pseudovertex
    P = convex_hull([[0, 1, 2]])
    assert P.f_vector == (1,) and P.pseudovertices.tolist() == [[0, 1, 2]]
    # repeated point and a projectively equal point change nothing
    P2 = convex_hull([[0, 1, 2], [0, 1, 2], [5, 6, 7]])
    assert P2.f_vector == (1,)
    # three points on one tropical segment: the polytope is that segment
    seg = tropical_segment([0, 0, 0], [0, 2, 5])
    P3 = convex_hull(np.vstack([seg, [[0, 0, 1]]]).tolist())
    # the generator inside the segment subdivides it (as polymake's PSEUDOVERTICES include all generators)
    assert _pv_set(P3) == {tuple(Fraction(v) for v in r) for r in seg} | {(0, 0, 1)}
    assert P3.f_vector == (4, 3)
    assert all(P3.contains(r) for r in seg.tolist())


def test_float_input_combinatorics_exact():
    V = np.array([[0.0, 0.1, 0.3], [0.0, 0.2, 0.1], [0.0, 0.3, 0.4]])
    P = convex_hull(V)
    Pe = convex_hull([[Fraction(v) for v in r] for r in V])
    assert P.f_vector == Pe.f_vector
    assert P.pseudovertices.dtype == np.float64
    assert {tuple(r) for r in P.pseudovertices.tolist()} == {tuple(float(v) for v in r) for r in Pe.pseudovertices}


# ----------------------------------------------------------------------------------- projection laws
@settings(max_examples=40)
@given(int_points(zeros=True), st.data())
def test_projection_membership_laws(V, data):
    for semiring in (MaxPlus, MinPlus):
        W = V if semiring is MaxPlus else [[-v for v in r] for r in V]
        P = convex_hull(W, semiring=semiring)
        d = len(W[0])
        x = [data.draw(st.integers(-6, 6)) for _ in range(d)]
        p = P.project(x)
        # lies in P, idempotent, and on the right side of x
        assert P.contains(p)
        assert P.project(p).tolist() == p.tolist()
        assert all(semiring.add(a, b) == b for a, b in zip(p.tolist(), x))
        # membership agrees with projection and, for finite points, with the type
        assert P.contains(x) == (p.tolist() == x)
        if all(math.isfinite(v) for r in W for v in r):
            assert P.contains(x) == all(covector(W, x, semiring=semiring))
        # generators are members, in any representative
        for r in W:
            assert P.contains(r)
            assert P.contains([v + 3 for v in r])


@settings(max_examples=40)
@given(int_points(max_n=3), st.data())
def test_hilbert_distance_axioms_and_nonexpansive_projection(V, data):
    d = len(V[0])
    pts = [[data.draw(st.integers(-6, 6)) for _ in range(d)] for _ in range(3)]
    x, y, z = pts
    assert hilbert_distance(x, y) == hilbert_distance(y, x) >= 0
    assert hilbert_distance(x, z) <= hilbert_distance(x, y) + hilbert_distance(y, z)
    assert hilbert_distance(x, [v + 5 for v in x]) == 0
    same = all(a - b == x[0] - y[0] for a, b in zip(x, y))
    assert (hilbert_distance(x, y) == 0) == same
    P = convex_hull(V)
    assert hilbert_distance(P.project(x), P.project(y)) <= hilbert_distance(x, y)


def test_projection_with_boundary_points():
    V = [[0, NEG, NEG], [NEG, 0, NEG], [0, 0, 0]]
    P = convex_hull(V)
    assert P.contains([0, 5, NEG]) and P.contains([3, NEG, NEG])
    assert not P.contains([0, 0, 1])
    assert P.project([0, 0, 1]).tolist() == [0, 0, 0]
    # x_2 = -inf forces the coefficients of the 2nd and 3rd generators to -inf
    assert P.project([0, NEG, 2]).tolist() == [0, NEG, NEG]
    assert not P.contains([0, NEG, 2]) and P.contains([NEG, 1, NEG])
    assert hilbert_distance([0, NEG, 1], [2, NEG, 7]) == 4
    assert hilbert_distance([0, NEG, 1], [2, 3, 7]) == math.inf
    # from the boundary point an ordinary ray comes in along -e_2 and bends at (1, 1, 1)
    assert tropical_segment([0, NEG, 0], [0, 1, 1]).tolist() == [[0, NEG, 0], [0, 0, 0], [0, 1, 1]]


def test_segment_pseudovertices_lie_on_the_segment():
    rng = np.random.default_rng(3)
    for semiring in (MaxPlus, MinPlus):
        for _ in range(10):
            x, y = rng.integers(-9, 9, (2, 5)).tolist()
            seg = tropical_segment(x, y, semiring=semiring)
            P = convex_hull([x, y], semiring=semiring)
            assert len(seg) <= 5  # at most d - 1 pieces
            assert all(P.contains(r) for r in seg.tolist())
            assert hilbert_distance(seg[0].tolist(), x) == 0 and hilbert_distance(seg[-1].tolist(), y) == 0
            # consecutive pseudovertices differ by a multiple of a 0/1 vector: ordinary segment pieces
            assert len(P.pseudovertices) == len(seg)


def test_projection_backends(backend):
    V = [[0.0, 1.0, 3.0], [0.0, 4.0, 2.0], [0.5, -1.0, 0.0]]
    X = [[0.0, 2.0, 2.0], [1.0, -3.0, 4.0], [0.0, 1.0, 3.0]]
    ref = tropical_projection(V, X)
    out = tropical_projection(backend(V), backend(X))
    np.testing.assert_array_equal(to_np(out), ref)
    for sr in ("min",):
        np.testing.assert_array_equal(to_np(tropical_projection(backend(V), backend(X), semiring=sr)),
                                      tropical_projection(V, X, semiring=sr))


def test_projection_torch_autograd():
    import torch

    V = torch.tensor([[0.0, 1.0, 3.0], [0.0, 4.0, 2.0]], requires_grad=True)
    x = torch.tensor([0.0, 2.0, 2.0])
    tropical_projection(V, x).sum().backward()
    assert V.grad is not None and torch.isfinite(V.grad).all()


# ----------------------------------------------------------------------------------- errors
def test_errors():
    with pytest.raises(EmptyInputError):
        convex_hull(np.zeros((0, 3)))
    with pytest.raises(EmptyInputError):
        convex_hull([[NEG, NEG], [0, 1]])
    with pytest.raises(NaNError):
        convex_hull([[0.0, float("nan")]])
    with pytest.raises(ConventionError):
        convex_hull([[0.0, float("inf")]])
    with pytest.raises(ShapeError):
        convex_hull([0, 1, 2])
    with pytest.raises(ShapeError):
        convex_hull([[0, 1, 2]]).project([0, 1])
    with pytest.raises(ShapeError):
        hilbert_distance([0, 1], [0, 1, 2])
    with pytest.raises(ShapeError):
        tropical_segment([0, 1], [0, 1, 2])
    with pytest.raises(TypeError):
        convex_hull([[0, 1]], semiring="real")


@settings(max_examples=30)
@given(st.integers(1, 4), st.integers(2, 4), st.integers(0, 10**6))
def test_float_membership_exact_and_with_tolerance(n, d, seed):
    rng = np.random.default_rng(seed)
    for semiring in (MaxPlus, MinPlus):
        V = rng.integers(-40, 40, (n, d)) / 8.0  # dyadic: sums below are exact in binary
        lam = rng.integers(-40, 40, n) / 8.0
        x = semiring.sum(V + lam[:, None], axis=0)
        P = convex_hull(V, semiring=semiring)
        assert P.contains(x)
        # generic floats: the float combination is within rounding of P
        W = rng.standard_normal((n, d))
        mu = rng.standard_normal(n)
        y = semiring.sum(W + mu[:, None], axis=0)
        assert convex_hull(W, semiring=semiring).contains(y, tol=1e-12)
        # a point moved off the polytope in one coordinate is rejected
        z = x.copy()
        z[0] = z[0] + 100.0 * semiring.sense
        assert not P.contains(z)


def test_contains_and_ascii_check_their_options():
    # a string tol failed deep in NumPy (UFuncTypeError), a negative or NaN tol silently answered False;
    # ascii(width="a") raised a raw TypeError and width=0 a misleading ShapeError about x
    from tropix.errors import ArgumentTypeError, ToleranceError

    P = convex_hull([[0, 0, 0], [0, 1, 2]])
    with pytest.raises(ArgumentTypeError):
        P.contains([0, 1, 1], tol="a")
    for bad in (-1, float("nan")):
        with pytest.raises(ToleranceError):
            P.contains([0, 1, 1], tol=bad)
    assert P.contains([0, 1, 1], tol=0.5) is False and P.contains([0, 1, 2], tol=0.5) is True
    with pytest.raises(ArgumentTypeError):
        P.ascii(width="a")
    for kw in ({"width": 0}, {"height": -1}, {"margin": 0}):
        with pytest.raises(ToleranceError):
            P.ascii(**kw)
    assert P.ascii(width=3, height=3).count("\n") == 2
