"""Regular subdivisions, tropical hypersurfaces and plane curves against brute force and published values.

Published values (Maclagan–Sturmfels, *Introduction to Tropical Geometry*, ch. 1 and 3): the tropical line
has one vertex and three rays; a smooth plane curve of degree d is dual to a unimodular triangulation of
d·Δ, so it has d² vertices (triangles), 3d rays (boundary edges), (3d² - 3d)/2 bounded edges (interior
edges) and genus (d-1)(d-2)/2 (interior lattice points); stable intersections satisfy Bézout/Bernstein.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import matplotlib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix import MaxPlus, MinPlus
from tropix.errors import ConventionError, EmptyInputError, NaNError, ShapeError
from tropix.tropical import TropicalPolynomial, newton_polytope, regular_subdivision
from tropix.tropical import _hull
from tropix.tropical.curves import regions, stable_intersection

matplotlib.use("Agg")


def brute_cells(A, c, sense):
    """Maximal cells by enumerating every (n+1)-subset (exact), for full-dimensional A."""
    n = len(A[0])
    X = [list(a) + [sense * ci, 1] for a, ci in zip(A, c)]
    out = set()
    for s in itertools.combinations(range(len(A)), n + 1):
        rows = [[Fraction(v) for v in X[i]] for i in s]
        ns = _hull.nullspace(rows)
        if len(ns) != 1:
            continue
        f = ns[0]
        if f[n] < 0:
            f = tuple(-v for v in f)
        if f[n] == 0:
            continue
        vals = [sum(Fraction(a) * b for a, b in zip(x, f)) for x in X]
        if max(vals) <= 0:
            out.add(tuple(i for i, v in enumerate(vals) if v == 0))
    return {s for s in out if len(_hull.affine_independent_subset([A[i] for i in s])) == n + 1}


def simplex_points(n, d):
    return [p for p in itertools.product(range(d + 1), repeat=n) if sum(p) <= d]


@st.composite
def configs(draw, nmax=3):
    n = draw(st.integers(1, nmax))
    d = draw(st.integers(1, 3 if n < 3 else 2))
    pts = simplex_points(n, d)
    keep = draw(st.lists(st.booleans(), min_size=len(pts), max_size=len(pts)))
    A = [p for p, k in zip(pts, keep) if k] or pts
    if len(_hull.affine_independent_subset(A)) != n + 1:
        A = pts
    c = draw(st.lists(st.sampled_from([0, 0, 1, -1, 2, Fraction(1, 2), 3]), min_size=len(A), max_size=len(A)))
    S = draw(st.sampled_from([MaxPlus, MinPlus]))
    return A, c, S


# ---------------------------------------------------------------------------------------------------
# subdivisions


@given(configs())
@settings(max_examples=80)
def test_subdivision_matches_brute_force_including_degenerate_lifts(cfg):
    A, c, S = cfg
    sub = regular_subdivision(A, c, semiring=S)
    assert set(sub.cells) == brute_cells(A, c, S.sense)
    # the cells cover the Newton polytope exactly once
    assert sum(sub.cell_volumes()) == newton_polytope(A).volume
    # min-plus with negated heights is the same subdivision
    other = MinPlus if S is MaxPlus else MaxPlus
    assert regular_subdivision(A, [-v for v in c], semiring=other).cells == sub.cells


def test_float_heights_are_taken_exactly():
    A = simplex_points(2, 3)
    c = [float(i * j % 3) for i, j in A]
    assert regular_subdivision(A, c).cells == regular_subdivision(A, [int(v) for v in c]).cells
    # 0.1 + 0.2 != 0.3 in floating point: the lift (0, 0.3, 0.1+0.2) on a segment is *not* a tie
    s = regular_subdivision([[0], [1], [2]], [0.1, 0.2 + 0.1, 0.5])
    t = regular_subdivision([[0], [1], [2]], [Fraction(1, 10), Fraction(3, 10), Fraction(1, 2)])
    assert t.cells == ((0, 1, 2),) and s.cells != t.cells


def test_equal_coefficients_give_one_cell_with_every_point():
    A = simplex_points(2, 4)
    sub = regular_subdivision(A, [0] * len(A))
    assert sub.cells == (tuple(range(len(A))),)
    assert sub.vertices == tuple(sorted(A.index(v) for v in [(0, 0), (4, 0), (0, 4)]))
    sub3 = regular_subdivision(simplex_points(3, 2), [0] * 10)
    assert len(sub3.cells) == 1 and sub3.f_vector == (4, 6, 4, 1)


def test_repeated_points_are_valid_input():
    # (1, 1) is the midpoint of an edge of 2Δ; the lower copy is never on the upper hull,
    # equal copies sit on the same cells
    A = [[0, 0], [2, 0], [0, 2], [1, 1], [1, 1]]
    sub = regular_subdivision(A, [0, 0, 0, 5, 1])
    assert sub.cells == ((0, 1, 3), (0, 2, 3))
    tie = regular_subdivision(A, [0, 0, 0, 5, 5])
    assert tie.cells == ((0, 1, 3, 4), (0, 2, 3, 4))
    assert sum(tie.cell_volumes()) == newton_polytope(A).volume == 4
    low = regular_subdivision(A, [0, 0, 0, -5, -5])
    assert low.cells == ((0, 1, 2),)
    # a polynomial merges repeated exponents with ⊕ before subdividing
    p = TropicalPolynomial.from_arrays(A, [0, 0, 0, 5, 1])
    assert p.terms()[(1, 1)] == 5 and len(p.subdivision().cells) == 2


def test_subdivision_errors():
    with pytest.raises(EmptyInputError):
        regular_subdivision(np.zeros((0, 2)), [])
    with pytest.raises(ShapeError):
        regular_subdivision([[0, 0], [1, 0]], [0])
    with pytest.raises(NaNError):
        regular_subdivision([[0, 0], [1, 0]], [0, float("nan")])
    with pytest.raises(ConventionError):
        regular_subdivision([[0], [1]], [0, float("inf")], semiring=MaxPlus)


def test_newton_polytope():
    P = newton_polytope(simplex_points(3, 2))
    assert P.dim == 3 and P.volume == 8 and P.f_vector == (4, 6, 4)
    Q = newton_polytope([[0, 0], [1, 1], [2, 2], [3, 3]])
    assert Q.dim == 1 and Q.vertices == (0, 3)


# ---------------------------------------------------------------------------------------------------
# published values


def test_tropical_line_both_conventions():
    L = TropicalPolynomial.parse("max(0, x, y)").hypersurface()
    assert L.vertices == ((0, 0),) and L.rays == ((-1, 0), (0, -1), (1, 1))
    assert L.weights == (1, 1, 1) and L.genus == 0 and L.is_balanced() and L.is_smooth()
    M = TropicalPolynomial.parse("min(0, x, y)").hypersurface()
    assert M.vertices == ((0, 0),) and M.rays == ((-1, -1), (0, 1), (1, 0))
    # a general line a ⊕ b x ⊕ c y has its vertex at (a - b, a - c)
    N = TropicalPolynomial.parse("max(3, 1 + x, -2 + y)").hypersurface()
    assert N.vertices == ((2, 5),)


def _honeycomb(d, n=2):
    """A strictly concave lift giving the unimodular triangulation of d·Δ (every unit simplex)."""
    pts = simplex_points(n, d)
    return {p: -(sum(a * a for a in p) + sum(p) ** 2) for p in pts}  # -(|p|^2 + (Σp)^2): A_n Delaunay


@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 7])
def test_smooth_plane_curves_of_degree_d(d):
    H = TropicalPolynomial(_honeycomb(d)).hypersurface()
    assert H.is_smooth()
    bounded = [c for c in H.maximal_cells if c.bounded]
    unbounded = [c for c in H.maximal_cells if not c.bounded]
    assert len(H.vertices) == d * d
    assert len(unbounded) == 3 * d
    assert len(bounded) == (3 * d * d - 3 * d) // 2
    assert H.genus == (d - 1) * (d - 2) // 2
    assert H.is_balanced() and set(H.weights) == {1}
    assert H.degree == d


def test_random_generic_curves_are_smooth_with_the_published_counts():
    rng = np.random.default_rng(7)
    for d in (2, 3, 4, 6):
        pts = simplex_points(2, d)
        # generic perturbation of a strictly concave lift: still a unimodular triangulation
        terms = {p: -100 * (p[0] ** 2 + p[0] * p[1] + p[1] ** 2) + int(rng.integers(-20, 21)) for p in pts}
        H = TropicalPolynomial(terms).hypersurface()
        assert H.is_smooth()
        assert (len(H.vertices), H.f_vector[1], H.genus) == (d * d, 3 * d + (3 * d * d - 3 * d) // 2, (d - 1) * (d - 2) // 2)


def _check_cell_vertices(H):
    # the vertices of a cell are the maximal cells of the subdivision containing its dual face, increasing
    cells = H.subdivision.cells
    for c in H.cells:
        assert c.vertices == tuple(i for i, s in enumerate(cells) if set(c.dual) <= set(s)), c


def test_cell_vertices_are_the_cells_containing_the_dual_face_in_increasing_order():
    rng = np.random.default_rng(11)
    for n, d in ((2, 5), (2, 9), (3, 3)):
        pts = simplex_points(n, d)
        # generic lift (vectorised triangulation path) and a coarse one with ties (general path)
        terms = {p: -100 * sum(a * a for a in p) - 50 * sum(p) ** 2 + int(rng.integers(-20, 21)) for p in pts}
        coarse = {p: -(sum(a * a for a in p) // 4) for p in pts}
        for t in (terms, coarse):
            _check_cell_vertices(TropicalPolynomial(t).hypersurface())
    _check_cell_vertices(TropicalPolynomial(_honeycomb(2, n=3)).hypersurface())


def test_non_smooth_curve_with_weights():
    # max(0, 2x, 2y) = 2·max(0, x, y): the line with every edge of weight 2
    H = TropicalPolynomial.parse("max(0, 2*x, 2*y)").hypersurface()
    assert H.weights == (2, 2, 2) and H.is_balanced() and not H.is_smooth()
    # a conic with a coefficient that makes the middle point a non-vertex: one cell with 6 points
    C = TropicalPolynomial.parse("max(0, x, y, 2*x, x + y, 2*y)").hypersurface()
    assert len(C.vertices) == 1 and set(C.weights) == {2}


def test_surfaces_in_three_space():
    # the A3 lift cuts 2Δ3 into 4 corner tetrahedra and one octahedron (a non-simplicial cell)
    H = TropicalPolynomial(_honeycomb(2, n=3)).hypersurface()
    assert sorted(len(c) for c in H.subdivision.cells) == [4, 4, 4, 4, 6]
    assert not H.is_smooth() and H.is_balanced() and sum(H.subdivision.cell_volumes()) == 8
    # a generic perturbation splits the octahedra: smooth surfaces of degree d have d^3 vertices
    rng = np.random.default_rng(5)
    for d in (1, 2, 3):
        terms = {p: 10**6 * c + int(rng.integers(-10**4, 10**4)) for p, c in _honeycomb(d, n=3).items()}
        H = TropicalPolynomial(terms).hypersurface()
        assert sum(H.subdivision.cell_volumes()) == d**3
        assert H.is_balanced() and H.is_smooth()
        assert len(H.vertices) == d**3
        # unbounded 2-cells are dual to the edges on the boundary of dΔ3: 4 facets of d² triangles
        boundary_edges = sum(1 for c in H.cells_of_dim(2) if c.rays)
        assert boundary_edges == 4 * 3 * d * d // 2


def test_tropical_plane_and_lineality():
    P = TropicalPolynomial.parse("max(0, x, y, z)").hypersurface()
    assert P.f_vector == (1, 4, 6) and P.is_balanced()
    # all exponents on a line: the curve is a union of parallel lines (lineality (1, -1))
    Q = TropicalPolynomial.parse("max(0, x + y, 2*x + 2*y - 1)").hypersurface()
    assert Q.lineality == ((-1, 1),) or Q.lineality == ((1, -1),)
    assert Q.f_vector == (0, 2) and Q.vertices and Q.genus == 0
    for v in Q.vertices:
        for t in (-3, 0, Fraction(5, 2)):
            pt = [Fraction(v[0]) + t, Fraction(v[1]) - t]
            assert int(np.sum(Q.polynomial.dominant_terms([pt]))) == 2
    # a monomial has the empty hypersurface
    assert TropicalPolynomial({(2, 1): 3}).hypersurface().cells == ()


# ---------------------------------------------------------------------------------------------------
# geometry of the computed complex


@st.composite
def plane_polys(draw, dmax=3):
    d = draw(st.integers(1, dmax))
    pts = simplex_points(2, d)
    keep = draw(st.lists(st.booleans(), min_size=len(pts), max_size=len(pts)))
    A = [p for p, k in zip(pts, keep) if k]
    if len(A) < 2:
        A = pts
    c = draw(st.lists(st.integers(-3, 3), min_size=len(A), max_size=len(A)))
    S = draw(st.sampled_from([MaxPlus, MinPlus]))
    return TropicalPolynomial(dict(zip(A, c)), semiring=S)


@given(plane_polys())
@settings(max_examples=60)
def test_vertices_edges_and_rays_are_where_the_dual_terms_tie(p):
    H = p.hypersurface()
    E = [tuple(e) for e in p.exponents.tolist()]
    assert H.is_balanced()
    for cell in H.cells:
        X = [H.vertices[v] for v in cell.vertices]
        pt = [sum(Fraction(x[i]) for x in X) / len(X) for i in range(2)] if X else None
        if pt is None:
            continue
        for r in cell.rays:
            pt = [pt[i] + H.rays[r][i] for i in range(2)]
        for l in H.lineality:
            pt = [pt[i] + 3 * l[i] for i in range(2)]
        dom = p.dominant_terms([pt])[0]
        assert tuple(np.nonzero(dom)[0]) == cell.dual, (cell, pt)
    # weights are lattice lengths of the dual edges
    for cell in H.maximal_cells:
        a, b = E[cell.dual[0]], E[cell.dual[-1]]
        assert cell.weight == math.gcd(b[0] - a[0], b[1] - a[1])


@given(plane_polys(), st.integers(0, 10**6))
@settings(max_examples=50)
def test_every_region_label_dominates_inside_its_region(p, seed):
    H = p.hypersurface()
    box = (-7.3, -6.1, 6.7, 7.9)
    R = regions(H, box=box)
    assert abs(sum(r.polygon.area for r in R) - (box[2] - box[0]) * (box[3] - box[1])) < 1e-9
    rng = np.random.default_rng(seed)
    for r in R:
        pts = [r.polygon.representative_point()]
        minx, miny, maxx, maxy = r.polygon.bounds
        for _ in range(5):
            q = (rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            from shapely.geometry import Point

            P = Point(q)
            if r.polygon.contains(P) and r.polygon.exterior.distance(P) > 1e-6:
                pts.append(P)
        for P in pts:
            x = [Fraction(P.x), Fraction(P.y)]  # exact evaluation at the float point
            dom = p.dominant_terms([x])[0]
            if r.polygon.exterior.distance(P) > 1e-9:
                assert list(np.nonzero(dom)[0]) == [r.term]


# ---------------------------------------------------------------------------------------------------
# stable intersection


def _dense(d, rng, S=MaxPlus):
    return TropicalPolynomial({p: int(rng.integers(-5, 6)) for p in simplex_points(2, d)}, semiring=S)


def test_bezout_for_random_and_degenerate_curves():
    rng = np.random.default_rng(3)
    for d1, d2 in [(1, 1), (1, 2), (2, 2), (2, 3), (3, 3), (1, 4)]:
        for S in (MaxPlus, MinPlus):
            f, g = _dense(d1, rng, S), _dense(d2, rng, S)
            I = stable_intersection(f, g)
            assert I.total == d1 * d2
            for pt, m in I.points:
                assert m > 0
                assert int(np.sum(f.dominant_terms([list(pt)]))) >= 2
                assert int(np.sum(g.dominant_terms([list(pt)]))) >= 2
            # the stable intersection does not depend on the perturbation direction
            assert stable_intersection(f, g, direction=(Fraction(-3, 7), 1)).points == I.points
        # self-intersection of a curve: still d1^2 (stable intersection of a curve with itself)
        f = _dense(d1, rng)
        assert stable_intersection(f, f).total == d1 * d1


def test_bernstein_mixed_area_for_random_supports():
    rng = np.random.default_rng(11)
    for _ in range(8):
        A = [p for p in simplex_points(2, 3) if rng.random() < 0.6] + [(0, 0), (2, 0), (0, 1)]
        B = [p for p in itertools.product(range(3), repeat=2) if rng.random() < 0.6] + [(1, 1), (0, 2), (2, 1)]
        A, B = sorted(set(A)), sorted(set(B))
        f = TropicalPolynomial({a: int(rng.integers(-4, 5)) for a in A})
        g = TropicalPolynomial({b: int(rng.integers(-4, 5)) for b in B})
        mixed = newton_polytope([[a[0] + b[0], a[1] + b[1]] for a in A for b in B]).volume
        mixed = (mixed - newton_polytope(A).volume - newton_polytope(B).volume) / 2
        assert stable_intersection(f, g).total == mixed


def test_transversal_lines_meet_once_and_parallel_input_is_rejected():
    f = TropicalPolynomial.parse("max(0, x, y)")
    g = TropicalPolynomial.parse("max(0, 2 + x, -1 + y)")
    I = stable_intersection(f, g)
    assert I.total == 1 and len(I.points) == 1
    with pytest.raises(ShapeError):
        stable_intersection(f, g, direction=(1, 1))
    with pytest.raises(ShapeError):
        stable_intersection(f, TropicalPolynomial.parse("max(0, x, y, z)"))


def test_plot_draws_every_maximal_cell():
    C = TropicalPolynomial(_honeycomb(3)).hypersurface()
    ax = C.plot(show_regions=True)
    assert len(ax.lines) == len(C.maximal_cells)
    assert len(ax.texts) == len(C.regions())


def test_float_input_gives_float_output_equal_to_the_exact_answer():
    exact = TropicalPolynomial({(0, 0): Fraction(1, 2), (1, 0): Fraction(-3, 4), (0, 1): 0, (1, 1): Fraction(5, 8)})
    flt = TropicalPolynomial({(0, 0): 0.5, (1, 0): -0.75, (0, 1): 0.0, (1, 1): 0.625})
    He, Hf = exact.hypersurface(), flt.hypersurface()
    assert He.subdivision.cells == Hf.subdivision.cells and He.rays == Hf.rays
    assert all(isinstance(v, float) for x in Hf.vertices for v in x)
    assert [tuple(float(v) for v in x) for x in He.vertices] == list(Hf.vertices)


def test_collinear_exponents_plot_and_regions():
    p = TropicalPolynomial.parse("max(0, x + y, 2*x + 2*y - 1)")
    H = p.hypersurface()
    ax = H.plot(box=(-3, -3, 3, 3), show_regions=True)
    assert len(ax.lines) == 2  # two parallel lines x + y = 0 and x + y = 1
    R = H.regions(box=(-3, -3, 3, 3))
    assert [r.label for r in R] == [(0, 0), (1, 1), (2, 2)]
    assert abs(sum(r.polygon.area for r in R) - 36) < 1e-9


def test_edges_of_a_curve_of_parallel_lines():
    # a Newton segment: maximal cells are lines (one representative vertex, no ray); edges() raised IndexError
    E = TropicalPolynomial.parse("max(0, x)", variables=("x", "y")).hypersurface().edges()
    assert E == (((0, 0), None, (0, 1), 1),)
    H = TropicalPolynomial.parse("max(0, x + y, 2*x + 2*y + 1)").hypersurface()
    assert H.edges() == (((Fraction(-1, 2), 0), None, H.lineality[0], 2),)
    H = TropicalPolynomial.parse("max(0, x + y, 2*x + 2*y - 1)").hypersurface()
    assert sorted(e[0] for e in H.edges()) == [(0, 0), (1, 0)] and all(e[1] is None for e in H.edges())
