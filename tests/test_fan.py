"""Normal fans (exact regime) and argmax LPs (high-dimensional regime), checked against exact brute force."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import ConventionError, EmptyInputError, MaxPlus, MinPlus, NaNError, ShapeError, ToleranceError
from tropix.tropical import (
    are_adjacent,
    argmax_cell,
    argmax_vertices,
    argmax_witness,
    normal_cone,
    normal_fan,
)


# ----------------------------------------------------------------------------------- exact reference
def scores(K, b, q, sense=1):
    qf = [Fraction(v) for v in q]
    return [sense * (sum(Fraction(x) * y for x, y in zip(k, qf)) + Fraction(0 if b is None else b[i]))
            for i, k in enumerate(K)]


def winners(K, b, q, sense=1):
    s = scores(K, b, q, sense)
    m = max(s)
    return frozenset(i for i, v in enumerate(s) if v == m)


def same_point(K, b, i, j):
    return list(K[i]) == list(K[j]) and (b is None or b[i] == b[j])


def unique_winner(K, b, q, j, sense=1):
    """j (with its exact copies) is the only winner at q."""
    return all(same_point(K, b, i, j) for i in winners(K, b, q, sense)) and j in winners(K, b, q, sense)


@st.composite
def configs(draw, max_n=9, dims=(1, 2, 3), lifted=None):
    d = draw(st.sampled_from(dims))
    n = draw(st.integers(1, max_n))
    K = [[draw(st.integers(-3, 3)) for _ in range(d)] for _ in range(n)]
    use_b = draw(st.booleans()) if lifted is None else lifted
    b = [draw(st.integers(-4, 4)) for _ in range(n)] if use_b else None
    return K, b


# ----------------------------------------------------------------------------------- exact fan
def test_cube_and_square_face_counts():
    cube = list(itertools.product([0, 1], repeat=3))
    F = normal_fan(cube)
    assert F.f_vector == (8, 12, 6, 1)
    assert F.graph.number_of_edges() == 12 and all(deg == 3 for _, deg in F.graph.degree())
    # cube with the centre and face centres added (coplanar and interior points): same polytope
    extra = cube + [(Fraction(1, 2),) * 3, (0, Fraction(1, 2), Fraction(1, 2)), (1, Fraction(1, 2), 0)]
    F2 = normal_fan(extra)
    assert F2.vertices == F.vertices and F2.f_vector == (8, 12, 6, 1)
    # the normal cone of a cube vertex is an orthant
    assert normal_cone(cube, 7).rays == ((0, 0, 1), (0, 1, 0), (1, 0, 0))


def test_lower_dimensional_configurations():
    # collinear points in R^3: a segment, cones with 2-dimensional lineality
    F = normal_fan([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]])
    assert F.dim == 1 and F.vertices == (0, 3) and F.f_vector == (2, 1)
    C = F.cones[3]
    assert len(C.lineality) == 2 and C.rays == ((1, 1, 1),)
    assert C.contains([5, -1, 0]) and not C.contains([-1, 0, 0])
    # a single (repeated) point: one vertex whose cone is the whole space
    F0 = normal_fan([[1, 2], [1, 2]])
    assert F0.vertices == (0,) and F0.point_vertex == (0, 0) and F0.cones[0].contains([-7, 3])
    assert F0.f_vector == (1,)
    # coplanar points in R^3: a square with lineality (0, 0, 1)
    sq = [[0, 0, 5], [1, 0, 5], [0, 1, 5], [1, 1, 5], [Fraction(1, 2), Fraction(1, 2), 5]]
    F = normal_fan(sq)
    assert F.dim == 2 and F.vertices == (0, 1, 2, 3) and F.cones[0].lineality == ((0, 0, 1),)


def test_tropical_polynomial_regions():
    # f(q) = max(0, 2 + q, 3 + 2q, 3 + 3q): breakpoints -2, -1, 0
    F = normal_fan([[0], [1], [2], [3]], biases=[0, 2, 3, 3])
    assert F.vertices == (0, 1, 2, 3)
    for j, q in [(0, -3), (1, Fraction(-3, 2)), (2, Fraction(-1, 2)), (3, 1)]:
        assert F.cones[j].region_contains([q]) and F.cone_of([q]).face == frozenset({j})
    assert F.cone_of([-1]).face == frozenset({1, 2})
    assert sorted(F.graph.edges()) == [(0, 1), (1, 2), (2, 3)]
    # a term strictly below the upper hull is a hull vertex that never wins
    F = normal_fan([[0, 0], [2, 0], [0, 2], [1, 1]], biases=[0, 0, 0, -5])
    assert F.vertices == (0, 1, 2) and 3 in F.hull_vertices
    # the same term lifted above wins on a bounded region
    F = normal_fan([[0, 0], [2, 0], [0, 2], [1, 1]], biases=[0, 0, 0, 5])
    assert F.vertices == (0, 1, 2, 3)
    A, b, E, e = F.cones[3].region()
    assert not E and len(A) == 3  # a triangle
    q = F.witness(3)
    assert unique_winner([[0, 0], [2, 0], [0, 2], [1, 1]], [0, 0, 0, 5], q, 3)


@settings(max_examples=60)
@given(configs())
def test_fan_against_brute_force(cfg):
    K, b = cfg
    for S in (MaxPlus, MinPlus):
        F = normal_fan(K, b, semiring=S)
        s = S.sense
        d = len(K[0])
        # every claimed vertex has an exact witness
        for j in F.vertices:
            assert unique_winner(K, b, F.witness(j), j, s)
        # every unique winner of a random query is a claimed vertex; cone_of and the H-representation agree
        rng = np.random.default_rng(len(K) * 7 + d)
        for _ in range(15):
            q = [Fraction(int(v), int(w)) for v, w in zip(rng.integers(-20, 20, d), rng.integers(1, 5, d))]
            W = winners(K, b, q, s)
            assert F.cone_of(q).face == W
            reps = {F.point_vertex[i] for i in W}
            if len(reps) == 1:
                assert reps.pop() in F.vertices
            for j in F.vertices:
                assert F.cones[j].region_contains(q) == (j in W)
        # V- and H-representations agree
        for C in F.cones.values():
            for r in C.rays:
                assert C.contains(r)
                assert not C.contains([-x for x in r]) or C.lineality
            for l in C.lineality:
                assert C.contains(l) and C.contains([-x for x in l])


@settings(max_examples=30)
@given(configs(max_n=8, dims=(2, 3), lifted=False))
def test_min_plus_cones_are_negated(cfg):
    K, _ = cfg
    Fx, Fn = normal_fan(K), normal_fan(K, semiring="min")
    assert Fx.vertices == Fn.vertices and Fx.f_vector == Fn.f_vector
    assert set(Fx.graph.edges()) == set(Fn.graph.edges())
    for j in Fx.vertices:
        assert sorted(tuple(-x for x in r) for r in Fx.cones[j].rays) == sorted(Fn.cones[j].rays)


def test_float_points_are_handled_exactly():
    # the floats 0.1, 0.2, 0.3, 0.6 are dyadic rationals: collinearity is decided for those exact values
    K = np.array([[0.0, 0.0], [0.1, 0.2], [0.3, 0.6]])
    exact = [[Fraction(v) for v in r] for r in K]
    F = normal_fan(K)
    collinear = Fraction(0.1) * Fraction(0.6) == Fraction(0.2) * Fraction(0.3)
    assert F.vertices == ((0, 2) if collinear else (0, 1, 2))
    assert F.dim == (1 if collinear else 2)
    assert F.vertices == normal_fan(exact).vertices


def test_fan_errors():
    with pytest.raises(EmptyInputError):
        normal_fan(np.zeros((0, 2)))
    with pytest.raises(NaNError):
        normal_fan([[0.0, float("nan")]])
    with pytest.raises(ConventionError):
        normal_fan([[0.0, float("inf")]])
    with pytest.raises(ConventionError):
        normal_fan([[0.0, 1.0]], biases=[float("-inf")])
    with pytest.raises(ShapeError):
        normal_fan([[0, 1], [1, 0]], biases=[0])
    with pytest.raises(ShapeError):
        normal_fan([0, 1])
    with pytest.raises(ShapeError):
        normal_fan([[0, 1], [1, 0]]).cone_of([1, 2, 3])
    with pytest.raises(ShapeError):
        normal_cone([[0, 1], [1, 0]], 5)
    with pytest.raises(ValueError):
        normal_fan([[0], [1], [2]]).witness(1)


# ----------------------------------------------------------------------------------- LP regime
@settings(max_examples=40)
@given(configs(max_n=10, dims=(1, 2, 3, 4)))
def test_lp_regime_agrees_with_exact_fan(cfg):
    K, b = cfg
    for S in (MaxPlus, MinPlus):
        F = normal_fan(K, b, semiring=S)
        R = argmax_vertices(K, b, semiring=S)
        expected = [F.point_vertex[i] in F.vertices for i in range(len(K))]
        assert R.is_vertex.tolist() == expected
        for j in R.vertices:
            assert unique_winner(K, b, R.witness(j).tolist(), j, S.sense)  # exact check of the float witness
        Rn = argmax_vertices(K, b, semiring=S, method="naive")
        assert Rn.is_vertex.tolist() == expected and Rn.n_lp == len(set(R.duplicate_of.tolist())) - (
            1 if len(set(R.duplicate_of.tolist())) == 1 else 0
        )


@settings(max_examples=25)
@given(configs(max_n=8, dims=(2, 3)))
def test_adjacency_and_cells_agree_with_exact_fan(cfg):
    K, b = cfg
    F = normal_fan(K, b)
    V = F.vertices
    for i, j in itertools.combinations(V, 2):
        A = are_adjacent(K, i, j, b)
        assert A.adjacent == F.graph.has_edge(i, j)
        if A.adjacent:
            W = winners(K, b, A.witness.tolist())
            assert {F.point_vertex[w] for w in W} <= {i, j} or W >= {i, j}
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.integers(-5, 5, len(K[0])).tolist()
        assert argmax_cell(K, q, b) == F.cone_of(q).face


@settings(max_examples=40)
@given(st.integers(2, 60), st.integers(2, 12), st.integers(0, 10**6), st.booleans(), st.sampled_from([MaxPlus, MinPlus]))
def test_every_witness_makes_its_key_the_unique_argmax(n, d, seed, with_b, S):
    rng = np.random.default_rng(seed)
    K = rng.standard_normal((n, d)) * rng.uniform(0.1, 3, d)
    if n > 4:
        K[n // 2:] *= 0.1  # interior keys
    b = rng.standard_normal(n) if with_b else None
    R = argmax_vertices(K, b, semiring=S)
    Kl = K.tolist()
    bl = None if b is None else b.tolist()
    for j in R.vertices:
        q = R.witness(j)
        assert unique_winner(Kl, bl, q.tolist(), j, S.sense)  # exact rational recomputation
    assert (R.status == "vertex").sum() == R.is_vertex.sum()
    assert R.n_filtered + R.n_lp == len(np.unique(R.duplicate_of))


def test_lp_regime_scale_and_interior_keys():
    rng = np.random.default_rng(5)
    n, d = 600, 32
    K = np.concatenate([rng.standard_normal((n // 2, d)), 0.05 * rng.standard_normal((n // 2, d))])
    R = argmax_vertices(K)
    assert R.is_vertex[: n // 2].all() and not R.is_vertex[n // 2:].any()
    assert set(R.status[n // 2:]) == {"interior"}
    assert R.n_filtered >= n // 2 and R.n_lp <= n // 2
    for j in rng.choice(n // 2, 10, replace=False):
        assert int(np.argmax(K @ R.witness(j))) == j


def test_lp_backends(backend):
    K = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.2, 0.2], [0.0, 0.0]]
    R = argmax_vertices(backend(K))
    assert R.is_vertex.tolist() == [True, True, True, False, True]
    assert R.duplicate_of.tolist() == [0, 1, 2, 3, 0]
    q = to_np(R.witness(1))
    assert int(np.argmax(np.asarray(K) @ q)) == 1
    assert argmax_witness(backend(K), 3) is None


def test_lp_errors():
    with pytest.raises(EmptyInputError):
        argmax_vertices(np.zeros((0, 3)))
    with pytest.raises(NaNError):
        argmax_vertices([[0.0, float("nan")]])
    with pytest.raises(ShapeError):
        argmax_vertices([[0.0, 1.0]], biases=[1.0, 2.0])
    with pytest.raises(ConventionError):
        argmax_vertices([[0.0, 1.0]], biases=[float("inf")])
    with pytest.raises(ConventionError):
        argmax_vertices([[0.0, float("-inf")]])
    with pytest.raises(ToleranceError):
        argmax_vertices([[0.0, 1.0]], tol=0)
    with pytest.raises(ShapeError):
        argmax_cell([[0.0, 1.0]], [1.0])
    with pytest.raises(ValueError):
        are_adjacent([[0.0, 1.0], [0.0, 1.0]], 0, 1)
    with pytest.raises(ValueError):
        argmax_vertices([[0, 1], [1, 0], [0.5, 0.5]]).witness(2)


@settings(max_examples=25)
@given(configs(max_n=8, dims=(1, 2, 3)))
def test_one_api_two_regimes(cfg):
    K, b = cfg
    for S in (MaxPlus, MinPlus):
        Fe = normal_fan(K, b, semiring=S)
        Fl = normal_fan(K, b, semiring=S, regime="lp")
        assert (Fe.regime, Fl.regime) == ("exact", "lp")
        assert Fe.vertices == Fl.vertices and Fe.point_vertex == Fl.point_vertex
        for j in Fl.vertices:
            assert unique_winner(K, b, Fl.witness(j).tolist(), j, S.sense)
            A, rhs = Fl.region(j)
            q = Fe.witness(j)
            assert all(float(sum(Fraction(x) * y for x, y in zip(a, q))) <= r for a, r in zip(A.tolist(), rhs))
        q = [1] * len(K[0])
        assert Fe.winners(q) == Fl.winners(q)
        for i, j in itertools.combinations(Fe.vertices, 2):
            assert Fe.are_adjacent(i, j) == Fl.are_adjacent(i, j)
    assert normal_fan(K, b, regime="auto").regime == "exact"
    assert normal_fan(np.random.default_rng(0).standard_normal((50, 8)), regime="auto").regime == "lp"
    with pytest.raises(ValueError):
        normal_fan(K, b, regime="fast")


def test_exact_repair_when_floating_point_fails(monkeypatch):
    # exactly non-collinear, but collinear to double precision: qhull cannot see the triangle
    big = 10**20
    K = [[0, 0], [big, 1], [2 * big, 3], [big, 2]]
    F = normal_fan(K)
    # exact orientation tests: no point lies in the triangle of the other three, a convex quadrilateral
    assert not any(_in_triangle(K, j) for j in range(4))
    assert F.dim == 2 and F.vertices == (0, 1, 2, 3) and F.f_vector == (4, 4, 1)
    for j in F.vertices:
        assert unique_winner(K, None, F.witness(j), j)
    # forcing the exact fallback gives the same fan as the qhull path
    import tropix.tropical._hull as hull_mod

    rng = np.random.default_rng(2)
    for _ in range(5):
        pts = rng.integers(-5, 5, (9, 3)).tolist()
        ref = normal_fan(pts)
        monkeypatch.setattr(hull_mod, "_qhull_facets", lambda P, d: None)
        alt = normal_fan(pts)
        monkeypatch.undo()
        assert alt.vertices == ref.vertices and alt.f_vector == ref.f_vector
        assert {j: c.rays for j, c in alt.cones.items()} == {j: c.rays for j, c in ref.cones.items()}


def _in_triangle(K, j):
    """Exact: is K[j] in the convex hull of the other three points (2-D)?"""
    a, b, c = [K[i] for i in range(4) if i != j]
    p = K[j]

    def orient(u, v, w):
        return (v[0] - u[0]) * (w[1] - u[1]) - (v[1] - u[1]) * (w[0] - u[0])

    s = [orient(a, b, p), orient(b, c, p), orient(c, a, p)]
    return all(x >= 0 for x in s) or all(x <= 0 for x in s)


def test_lp_threads_give_identical_answers():
    rng = np.random.default_rng(8)
    K = np.concatenate([rng.standard_normal((40, 6)), 0.1 * rng.standard_normal((20, 6))])
    b = rng.standard_normal(60)
    R1, R2 = argmax_vertices(K, b), argmax_vertices(K, b, n_jobs=2)
    assert R1.status.tolist() == R2.status.tolist() and R1.n_lp == R2.n_lp


@settings(max_examples=20)
@given(configs(max_n=8, dims=(2, 3)))
def test_lp_regime_with_non_representable_fractions(cfg):
    # thirds are not floats: witnesses are certified in exact integer arithmetic
    K, b = cfg
    K3 = [[Fraction(v, 3) for v in r] for r in K]
    b3 = None if b is None else [Fraction(v, 3) for v in b]
    F = normal_fan(K3, b3)
    R = argmax_vertices(K3, b3)
    assert R.is_vertex.tolist() == [F.point_vertex[i] in F.vertices for i in range(len(K))]
    for j in R.vertices:
        assert unique_winner(K3, b3, R.witness(j).tolist(), j)


def _exact_hull_2d(P):
    """Vertices of conv(P) for exact 2-D points (Andrew's monotone chain on Fractions, collinear points
    dropped), in counter-clockwise order."""
    pts = sorted(set(P))
    if len(pts) <= 2:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lo, hi = [], []
    for p in pts:
        while len(lo) >= 2 and cross(lo[-2], lo[-1], p) <= 0:
            lo.pop()
        lo.append(p)
    for p in reversed(pts):
        while len(hi) >= 2 and cross(hi[-2], hi[-1], p) <= 0:
            hi.pop()
        hi.append(p)
    return lo[:-1] + hi[:-1]


def test_lp_regime_keys_a_unit_in_the_last_place_apart():
    # keys 1 and 1 + 2^-52: their float centroid is 1, which put key 0 at it and excluded its witness (it was
    # called interior); their scores differ by less than the float rounding bound, so witnesses are checked
    # exactly on the floats' rational values
    for K, want in (([[1.0], [1.0 + 2**-52]], ["vertex", "vertex"]),
                    ([[1.0], [1.0 + 2**-52], [1.0 + 2**-51]], ["vertex", "interior", "vertex"]),
                    ([[2.0**53], [2.0**53 + 2]], ["vertex", "vertex"])):
        R = argmax_vertices(K)
        assert R.status.tolist() == want
        for j in R.vertices:
            q = Fraction(float(R.witness(j)[0]))
            sc = [q * Fraction(k[0]) for k in K]
            assert all(sc[j] > s for i, s in enumerate(sc) if i != j)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-6, 6), st.integers(-3, 3)), min_size=3, max_size=9),
       st.sampled_from([2.0**40, 2.0**50, 1.0]), st.booleans())
def test_lp_regime_thin_point_sets_against_the_exact_hull(pts, sx, swap):
    # a set 1e12-1e15 times wider than high: whitening took its height for rounding noise (the triangle
    # (0, 0), (1e15, 1), (2e15, 0) had two of its edges called non-adjacent); each coordinate is now scaled
    # to its own extent first.  Vertices and the adjacency of hull neighbours against exact arithmetic.
    P = [(Fraction(x) * Fraction(sx), Fraction(y)) for x, y in pts]
    if swap:
        P = [(y, x) for x, y in P]
    K = np.array([[float(a), float(b)] for a, b in P])
    H = _exact_hull_2d(P)
    if len(H) < 3:  # collinear sets: covered by the cases above
        return
    R = argmax_vertices(K)
    hv = set(H)
    for i, p in enumerate(P):
        assert (R.status[i] == "vertex") == (p in hv), (i, p, R.status[i])
    first = {p: P.index(p) for p in hv}
    for a, b in zip(H, H[1:] + H[:1]):  # hull neighbours share a wall
        assert are_adjacent(K, first[a], first[b]).adjacent
    if len(H) >= 4:  # opposite vertices of a polygon do not
        assert not are_adjacent(K, first[H[0]], first[H[2]]).adjacent


def test_lp_regime_coordinate_extents_1e200_apart_with_biases():
    # per-coordinate scaling made the witnesses overflow: raw OverflowError in are_adjacent, every key
    # 'undecided'; every key reported a vertex still has a valid witness (checked exactly).  The fallback
    # without that scaling then dropped the x direction (extent 2e-40 beside 1e160) and called the walls of
    # key 0 with keys 1, 2, 3 absent: the exact fan has every edge but 1-3.
    K = [[0, 0], [1e-40, 1e160], [2e-40, 0], [1e-40, -1e160]]
    b = [0, 0, 1e160, 0]
    R = argmax_vertices(K, b)
    assert list(R.status[1:]) == ["vertex"] * 3
    for j in R.vertices:
        q = [Fraction(float(x)) for x in R.witness(j)]
        sc = [sum(Fraction(x) * y for x, y in zip(k, q)) + Fraction(bb) for k, bb in zip(K, b)]
        assert all(sc[j] > v for i, v in enumerate(sc) if i != j)
    edges = set(normal_fan(K, b).graph.edges())
    assert edges == {(0, 1), (0, 2), (0, 3), (1, 2), (2, 3)}
    for i, j in itertools.combinations(range(4), 2):
        r = are_adjacent(K, i, j, b)
        assert r.adjacent == ((i, j) in edges) and r.status == ("adjacent" if r.adjacent else "not adjacent")
        if r.adjacent:  # the witness, the exact tie point rounded to floats: i and j ahead of the others
            q = [Fraction(float(x)) for x in r.witness]
            sc = [sum(Fraction(x) * y for x, y in zip(k, q)) + Fraction(bb) for k, bb in zip(K, b)]
            assert all(min(sc[i], sc[j]) > v for t, v in enumerate(sc) if t not in (i, j))


# ------------------------------------------------------------------ LP regime: ulps, rotated thin sets, soundness
def _lifted_upper_hull_1d(P):
    """Exact classification of 1-D lifted points ``(x, b)`` (Fractions, distinct x): ``"corner"`` (a vertex of
    the upper hull), ``"edge"`` (on it, between two corners) or ``"below"``."""
    order = sorted(range(len(P)), key=lambda i: P[i][0])
    hull = []
    for i in order:  # monotone chain: keep right turns only
        while len(hull) >= 2:
            (x1, y1), (x2, y2), (x3, y3) = P[hull[-2]], P[hull[-1]], P[i]
            if (x2 - x1) * (y3 - y1) - (y2 - y1) * (x3 - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    out = []
    for i, (x, y) in enumerate(P):
        if i in hull:
            out.append("corner")
            continue
        k = next(t for t in range(len(hull) - 1) if P[hull[t]][0] < x < P[hull[t + 1]][0]) if (
            P[hull[0]][0] < x < P[hull[-1]][0]) else None
        if k is None:
            out.append("below")
            continue
        (x1, y1), (x2, y2) = P[hull[k]], P[hull[k + 1]]
        on = y1 + (y2 - y1) * (x - x1) / (x2 - x1)
        out.append("edge" if y == on else "below")
    return out


def _exact_wins(K, b, q, j):
    """j alone has the best exact score at the float query q (the rational values of the floats)."""
    qf = [Fraction(float(v)) for v in np.ravel(q)]
    sc = [sum(Fraction(float(x)) * y for x, y in zip(k, qf)) + Fraction(float(0 if b is None else b[i]))
          for i, k in enumerate(K)]
    return all(sc[j] > v for i, v in enumerate(sc) if i != j)


def test_lp_regime_ulp_apart_keys_with_biases_example():
    # keys 2^20 + i·2^-32 with biases 0, -1, -3, -6: in units of the spacing the lifted points (i, b_i) have
    # slopes -1, -2, -3, so all four are vertices; the float scores of the LP's witness for key 2 (size 2^52)
    # ranked key 3 first, and the exact check ran only when they ranked key 2 first: "undecided"
    K = [[2.0**20 + i * 2.0**-32] for i in range(4)]
    b = [0.0, -1.0, -3.0, -6.0]
    assert _lifted_upper_hull_1d([(Fraction(k[0]), Fraction(v)) for k, v in zip(K, b)]) == ["corner"] * 4
    R = argmax_vertices(K, b)
    assert R.status.tolist() == ["vertex"] * 4
    for j in range(4):
        assert _exact_wins(K, b, R.witness(j), j)


@settings(max_examples=40)
@given(st.integers(-60, 60), st.booleans(), st.lists(st.integers(-8, 0), min_size=2, max_size=7),
       st.sampled_from([MaxPlus, MinPlus]))
def test_lp_regime_ulp_apart_keys_with_biases_against_the_exact_lifted_hull(e, neg, bias, S):
    # keys x0 + i·ulp (i = 0, 1, ...) with small integer biases: their scores at any useful witness differ
    # by less than the float rounding bound, so the witness is checked exactly; every key is decided
    x0 = (-1.0 if neg else 1.0) * 1.5 * 2.0**e
    u = float(np.spacing(x0)) * (-1.0 if neg else 1.0)
    K = [[x0 + i * u] for i in range(len(bias))]
    b = [float(v) for v in bias]
    s = S.sense
    want = _lifted_upper_hull_1d([(Fraction(k[0]) * s, Fraction(v) * s) for k, v in zip(K, b)])
    R = argmax_vertices(K, b, semiring=S)
    for j, (st_, w) in enumerate(zip(R.status.tolist(), want)):
        assert (st_ == "vertex") == (w == "corner"), (j, st_, w)
        if w == "edge":
            assert st_ == "boundary"  # (ties with its neighbours on their wall: never "interior")
        if w == "below":
            assert st_ in ("interior", "boundary")
    for j in R.vertices:
        assert unique_winner(K, b, R.witness(j).tolist(), j, s)


def test_lp_regime_64d_keys_a_few_ulps_apart_are_all_vertices():
    # base + (±1 ulp in 3 of the 32 coordinates): the keys lie on an ellipsoid (in units of each coordinate's
    # spacing), so every one is a vertex; 3 of them stayed "undecided" (their float scores did not rank them
    # first at the LP's witness, so the exact check never ran)
    rng = np.random.default_rng(0)
    n, d = 60, 32
    base = rng.normal(size=d) * 1e3
    pats = set()
    while len(pats) < n:
        pats.add((tuple(sorted(rng.choice(d, 3, replace=False).tolist())), tuple(rng.choice([-1, 1], 3).tolist())))
    K = np.tile(base, (n, 1))
    for i, (cols, signs) in enumerate(sorted(pats)):
        for c, sg in zip(cols, signs):
            K[i, c] = np.nextafter(base[c], sg * np.inf)
    up, down = np.nextafter(base, np.inf) - base, base - np.nextafter(base, -np.inf)
    assert np.array_equal(up, down)  # (one spacing per coordinate: the ellipsoid argument holds)
    R = argmax_vertices(K)
    assert R.status.tolist() == ["vertex"] * n
    for j in rng.choice(n, 10, replace=False):
        assert _exact_wins(K, None, R.witness(j), j)


_PYTHAGOREAN = [(3, 4, 5), (5, 12, 13), (8, 15, 17), (20, 21, 29)]


@settings(max_examples=40)
@given(st.lists(st.tuples(st.integers(-6, 6), st.integers(-3, 3)), min_size=3, max_size=9),
       st.sampled_from([2**40, 2**44, 1]), st.sampled_from(_PYTHAGOREAN), st.booleans())
def test_lp_regime_rotated_thin_point_sets_against_the_exact_hull(pts, sx, abc, as_float):
    # a set 1e12-1e15 times wider than high, rotated exactly (integer points times [[a, -b], [b, a]], a Pythagorean
    # triple): the per-coordinate scaling only helped axis-aligned sets, whitening dropped the height, and the
    # middle keys were called "interior" and hull neighbours non-adjacent.  Against the exact hull: vertices,
    # no undecided key, the adjacency of every pair of hull vertices (certified both ways).
    a, bb, _ = abc
    P = [(x * sx * a - y * bb, x * sx * bb + y * a) for x, y in pts]
    K = [[float(p), float(q)] for p, q in P] if as_float else [list(p) for p in P]
    assert all(Fraction(float(v)) == v for p in P for v in p)  # (integers below 2^53: exact floats)
    _check_against_the_exact_hull(K, [(Fraction(p), Fraction(q)) for p, q in P])


@settings(max_examples=30)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=3, max_size=9), st.integers(-30, 50))
def test_lp_regime_2d_keys_ulps_apart_against_the_exact_hull(pts, e):
    # keys base + (i ulp_x, j ulp_y): in units of the spacings an integer pattern, whose hull is the exact one
    bx, by = 1.5 * 2.0**e, -1.25 * 2.0 ** (e // 2)
    ux, uy = float(np.spacing(bx)), float(np.spacing(abs(by)))
    K = [[bx + i * ux, by + j * uy] for i, j in pts]
    assert all(Fraction(k[0]) == Fraction(bx) + i * Fraction(ux) and Fraction(k[1]) == Fraction(by) + j * Fraction(uy)
               for k, (i, j) in zip(K, pts))
    _check_against_the_exact_hull(K, [(Fraction(x), Fraction(y)) for x, y in K])


def _check_against_the_exact_hull(K, P):
    """Statuses and adjacency of 2-D keys K (exact values P) against the exact hull: vertices, no undecided key,
    interior/boundary by exact orientation tests, every pair of hull vertices adjacent iff hull neighbours."""
    H = _exact_hull_2d(P)
    hv = set(H)
    R = argmax_vertices(K)
    first = {}
    for i, p in enumerate(P):
        first.setdefault(p, i)
        assert (R.status[i] == "vertex") == (p in hv), (i, p, R.status[i])
        assert R.status[i] != "undecided"
    if len(H) >= 3:  # the interior of the polygon, exactly: orientation tests against every edge
        for i, p in enumerate(P):
            if p in hv:
                continue
            cr = [(e2[0] - e1[0]) * (p[1] - e1[1]) - (e2[1] - e1[1]) * (p[0] - e1[0])
                  for e1, e2 in zip(H, H[1:] + H[:1])]
            assert R.status[i] == ("interior" if all(c > 0 for c in cr) else "boundary"), (i, p, R.status[i])
    for u, v in itertools.combinations(H, 2):
        r = are_adjacent(K, first[u], first[v])
        neighbours = len(H) == 2 or abs(H.index(u) - H.index(v)) in (1, len(H) - 1)
        assert r.adjacent == neighbours and r.status == ("adjacent" if neighbours else "not adjacent"), (u, v, r)


@pytest.mark.parametrize("angle", [math.pi / 4, 0.3, 1e-3])
def test_lp_regime_float_rotated_thin_triangle(angle):
    # the triangle (0, 0), (1e15, 1), (2e15, 0) rotated in floating point: its middle key was "interior" and
    # no two keys adjacent; the exact hull of the rotated floats has all three as vertices
    c, s = math.cos(angle), math.sin(angle)
    K = (np.array([[0.0, 0.0], [1e15, 1.0], [2e15, 0.0]]) @ np.array([[c, -s], [s, c]]).T).tolist()
    assert len(_exact_hull_2d([(Fraction(x), Fraction(y)) for x, y in K])) == 3
    R = argmax_vertices(K)
    assert R.status.tolist() == ["vertex"] * 3
    for j in range(3):
        assert _exact_wins(K, None, R.witness(j), j)
    for i, j in itertools.combinations(range(3), 2):
        assert are_adjacent(K, i, j).status == "adjacent"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lp_regime_sets_thin_along_several_directions_against_the_exact_fan(seed):
    # rotated sets with extents 1e-14 .. 1 along their axes: the offsets from the kept directions' span, taken
    # exactly, were nearly parallel to each other (thin along directions 1e-8 and 1e-14 of the width) and the
    # LP's certificate could not be verified; they are whitened again in exact arithmetic
    rng = np.random.default_rng(seed)
    d, n = 5, 10
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s = 10.0 ** np.array([0, -3, -8, -11, -14])
    K = (rng.normal(size=(n, d)) * s) @ Q.T
    b = rng.normal(size=n) if seed % 2 else None
    F = normal_fan(K, b)
    R = argmax_vertices(K, b)
    assert R.is_vertex.tolist() == [F.point_vertex[i] in F.vertices for i in range(n)]
    assert "undecided" not in R.status.tolist()
    for i, j in itertools.combinations(F.vertices, 2):
        r = are_adjacent(K, i, j, b)
        assert r.adjacent == F.graph.has_edge(i, j) and r.status != "undecided", (i, j, r)


@pytest.mark.parametrize("gap", [2.0**-40, 1e-13, 2.0**-52])
def test_lp_regime_negative_answers_need_a_verified_certificate(gap):
    # keys 0, 1, 1 + gap with biases 0, 0, -1: key 2 wins for q > 1/gap, but the float LP (which drops such
    # tiny coefficients) found margin -1 and called it "interior", and keys 1 and 2 "not adjacent".  "Cannot
    # win" and "not adjacent" now need the LP's dual combination verified; this one is not (exactly, key 2
    # is not key 1), so the answer is "undecided", never a wrong "cannot win"
    K, b = [[0.0], [1.0], [1.0 + gap]], [0.0, 0.0, -1.0]
    assert _lifted_upper_hull_1d([(Fraction(k[0]), Fraction(v)) for k, v in zip(K, b)]) == ["corner"] * 3
    R = argmax_vertices(K, b)
    assert R.status[2] in ("vertex", "undecided")
    if R.status[2] == "vertex":
        assert _exact_wins(K, b, R.witness(2), 2)
    assert are_adjacent(K, 1, 2, b).status in ("adjacent", "undecided")
    assert are_adjacent(K, 0, 1, b).status == "adjacent" and are_adjacent(K, 0, 2, b).status == "not adjacent"


def test_lp_regime_exactly_flat_keys_keep_their_verdicts():
    # keys exactly on a line (in the plane and in 5-d, integers and floats): the dropped directions are
    # proved flat (exact integer normals), so interior keys stay "interior", with a verified certificate
    for K in ([[0, 0], [1, 1], [2, 2], [3, 3]], [[0.0, 0], [1, 2], [2, 4], [0.5, 1]],
              (np.outer(np.arange(6), [1, -2, 3, 0, 5]) + 7).tolist()):
        R = argmax_vertices(K)
        n = len(K)
        xs = [k[0] for k in K]
        lo, hi = int(np.argmin(xs)), int(np.argmax(xs))
        assert [R.status[i] == "vertex" for i in range(n)] == [i in (lo, hi) for i in range(n)]
        assert all(R.status[i] == "interior" for i in range(n) if i not in (lo, hi))
        assert are_adjacent(K, lo, hi).status == "adjacent"
        mid = next(i for i in range(n) if i not in (lo, hi))
        assert are_adjacent(K, lo, mid).status == "not adjacent"


def test_adjacency_status_of_the_square():
    sq = [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert [are_adjacent(sq, 0, j).status for j in (1, 2, 3)] == ["adjacent", "adjacent", "not adjacent"]
    assert [are_adjacent(sq, 0, j, [0, 0, 0, 1]).status for j in (1, 2, 3)] == ["adjacent", "adjacent", "adjacent"]
    # equal keys with different biases never tie (a key between them on their segment left no LP at all, and
    # the answer was "undecided")
    assert [are_adjacent([[1.0, 2.0]] * 3, 0, j, [0, 1, 2]).status for j in (1, 2)] == ["not adjacent"] * 2


@settings(max_examples=60)
@given(st.integers(1, 6), st.integers(0, 6), st.integers(0, 10**6))
def test_exact_nullspace(d, r, seed):
    from tropix.tropical.argmax_lp import _nullspace

    rng = np.random.default_rng(seed)
    r = min(r, d)
    A = [[int(v) * 10 ** int(e) for v, e in zip(rng.integers(-4, 5, d), rng.integers(0, 25, d))] for _ in range(r)]
    if r >= 2 and seed % 3 == 0:
        A[-1] = [2 * x - 3 * y for x, y in zip(A[0], A[1])]  # (rank deficient)
    N = _nullspace(A, d)
    import sympy

    rank = sympy.Matrix(A).rank() if r else 0
    if rank < r:
        assert N is None
        return
    assert N is not None and len(N) == d - r
    assert all(sum(a * x for a, x in zip(row, v)) == 0 for row in A for v in N)
    assert not N or sympy.Matrix(N).rank() == d - r
