"""Regressions found by a brute-force review of the tropical geometry and linear-algebra modules.

Each test failed before its fix (the comment says what the code returned).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from tropix import MaxPlus, MinPlus
from tropix.tropical import (
    TropicalPolynomial,
    critical_graph,
    eigenvalue,
    eigenvector,
    matmul,
    newton_polytope,
    regular_subdivision,
)

NINF = float("-inf")
INF = float("inf")


# ------------------------------------------------------------------------------ Newton polytopes


@pytest.mark.parametrize(
    "points, facets",
    [
        ([[0], [2], [2], [1]], ((0,), (1, 2))),  # before: ((0,), (1,)), point 2 (= point 1) missing
        ([[0, 0], [2, 2], [2, 2], [1, 1]], ((0,), (1, 2))),
        ([[-1], [-1], [0], [3], [-1]], ((0, 1, 4), (3,))),
    ],
)
def test_segment_newton_polytope_facets_list_every_copy_of_an_endpoint(points, facets):
    # "facets: for each facet, the indices of all points on it" -- as in dimension >= 2, where a repeated
    # point on a facet was always listed with all its copies
    P = newton_polytope(points)
    assert P.dim == 1 and P.facets == facets
    assert P.vertices == (min(facets[0]), min(facets[1]))  # vertices keep one representative, as before


def test_newton_polytope_facets_with_repeated_points_in_the_plane_unchanged():
    P = newton_polytope([[0, 0], [0, 0], [1, 0], [0, 1]])
    assert P.facets == ((0, 1, 2), (0, 1, 3), (2, 3)) and P.vertices == (0, 2, 3)


# ------------------------------------------------------------------------------ unimodularity


@pytest.mark.parametrize(
    "points",
    [
        [[0, 0], [2, 1]],  # a primitive segment: lattice length 1 (its projection on x has length 2)
        [[0, 0, 0], [2, 1, 0], [0, 0, 1]],  # a unimodular triangle in a plane of Z^3
        [[1, 0, 0], [0, 1, 0], [0, 0, 1]],  # the standard simplex of degree 1 in Z^3
    ],
)
def test_is_unimodular_measures_lower_dimensional_cells_in_their_own_lattice(points):
    # before: False for the first two (volume measured in the projected coordinates), although
    # TropicalHypersurface.is_smooth (gcd of the maximal minors) said True for the same subdivision
    sub = regular_subdivision(points, [0] * len(points))
    assert sub.is_unimodular
    H = TropicalPolynomial({tuple(p): 0 for p in points}).hypersurface()
    assert H.is_smooth() and H.subdivision.is_unimodular


def test_is_unimodular_false_for_non_unimodular_lower_dimensional_cells():
    assert not regular_subdivision([[0, 0], [2, 2]], [0, 0]).is_unimodular  # lattice length 2
    assert not regular_subdivision([[0, 0, 0], [2, 0, 2], [0, 1, 1]], [0, 0, 0]).is_unimodular  # gcd(2, 2, 2)
    assert regular_subdivision([[0, 0], [1, 1], [2, 2]], [0, 1, 0]).is_unimodular


@pytest.mark.parametrize("points", [[[0, 0], [Fraction(1, 2), 0], [0, 2]], [[0, 0], [0.5, 0], [0, 2]]])
def test_is_unimodular_needs_lattice_points(points):
    # before: True (normalised volume 1/2 · 2 = 1) for a triangle whose vertex (1/2, 0) is no lattice point
    assert not regular_subdivision(points, [0, 0, 0]).is_unimodular


# ------------------------------------------------------------------------------ float eigenvalue / eigenvector


@pytest.mark.parametrize("big", [1e15, 1e15 + 2, 3e14])
def test_float_eigenvalue_is_not_swamped_by_an_edge_on_no_cycle(big):
    # the cycles are the loops 0.2 and 0.7; the edge 1 -> 0 lies on no cycle.  Before: 0.75 (Karp's
    # D_n - D_k of walks through the 1e15 edge cancelled the small means)
    A = np.array([[0.2, NINF], [big, 0.7]])
    assert float(eigenvalue(A)) == 0.7
    assert float(eigenvalue(-A.T, semiring=MinPlus)) == -0.7
    x = eigenvector(A)
    np.testing.assert_array_equal(matmul(A, x), 0.7 + x)


def test_exact_eigenvalue_unchanged_by_dropping_edges_between_components():
    A = [[Fraction(1, 5), NINF, 3], [10**15, Fraction(7, 10), NINF], [NINF, NINF, 0]]
    assert eigenvalue(A) == Fraction(7, 10)
    assert eigenvalue([[-v for v in r] for r in A], semiring=MinPlus) == Fraction(-7, 10)


@pytest.mark.parametrize(
    "A, S, critical",
    [
        # lambda = 3 (loop at node 2); the loop 0.2 at node 0 is 2.8 below it.  Before: node 0 counted as
        # critical (default tolerance 64·eps·n·max|A| = 43, from the 1e15 edge into the dead end 1) and the
        # residual check accepted x = [0, -inf, 0], for which A ⊗ x = [0.2, -inf, 3] != 3 ⊗ x
        ([[0.2, 1e15 + 2, 0.2], [NINF, NINF, NINF], [0.2, -0.4, 3.0]], MaxPlus, {2}),
        # min-plus, lambda = 0.1 (loop at node 0); before x = [0, 0, 0, 0] and A ⊗ x - x - lambda = [0, .6, .1, 0]
        ([[0.1, INF, INF, 0.3], [0.7, 1e15 + 2, INF, INF], [INF, 1e15, INF, 0.2], [INF, 0.7, 0.1, INF]], MinPlus, {0}),
    ],
)
def test_float_eigenvector_residual_is_checked_at_the_scale_of_its_row(A, S, critical):
    A = np.array(A)
    lam = float(eigenvalue(A, semiring=S))
    x = eigenvector(A, semiring=S)
    Ax = matmul(A, x, semiring=S)
    fin = np.isfinite(x)
    assert np.array_equal(np.isfinite(Ax), fin)
    np.testing.assert_allclose(Ax[fin], lam + x[fin], rtol=0, atol=1e-12)
    assert set(critical_graph(A, semiring=S).nodes()) == critical


# ------------------------------------------------------------------------------ Kleene star tolerance


@pytest.mark.parametrize("fn", ["kleene_star", "kleene_plus"])
@pytest.mark.parametrize("S, w", [(MaxPlus, Fraction(1, 10**6)), (MinPlus, Fraction(-1, 10**6))])
def test_kleene_tol_is_for_float_input_only(fn, S, w):
    # "tol: for float input": exact input is decided exactly (before: a cycle of exact weight 1e-6 passed
    # with tol = 1e-3 and the series was summed as if it converged)
    import tropix.tropical as tt
    from tropix.errors import DivergenceError

    zero = S.zero
    A = np.array([[w, 0], [0, zero]], dtype=object)
    with pytest.raises(DivergenceError):
        getattr(tt, fn)(A, semiring=S, tol=0.001)
    B = np.array([[float(w), 0.0], [0.0, zero]])  # the same weights in floats: within the tolerance
    R = getattr(tt, fn)(B, semiring=S, tol=0.001)
    assert R.shape == (2, 2) and R.dtype == np.float64


# ------------------------------------------------------------------------------ exception types


def test_integer_exponent_requirements_raise_domain_error():
    # the input's shape is right; its exponents lie outside where lattice weights are defined (was ShapeError)
    from tropix.errors import DomainError
    from tropix.tropical.curves import stable_intersection

    p = TropicalPolynomial({(Fraction(1, 2), 0): 0, (0, 1): 0, (0, 0): 0})
    with pytest.raises(DomainError, match="integer exponents"):
        p.hypersurface().is_balanced()
    q = TropicalPolynomial({(1, 0): 0, (0, 1): 1, (0, 0): 0})
    with pytest.raises(DomainError, match="integer exponents"):
        stable_intersection(p, q)
