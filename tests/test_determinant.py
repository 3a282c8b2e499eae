"""Tests of tropix.tropical.determinant: tdet, optimal permutations, tropical singularity."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import to_np
from tropix import ConventionError, EmptyInputError, LogSemiring, MaxPlus, MinPlus, NaNError, ShapeError
from tropix.errors import SemiringMismatchError, SizeLimitError, ToleranceError
from tropix.tropical.determinant import _assignment, _integer_weights, _solve, is_singular, optimal_permutation
from tropix.tropical.determinant import optimal_permutations, tdet

INF = float("inf")


def brute(A, S):
    """(optimum, sorted optimal permutations) by listing all permutations, exact arithmetic."""
    n = len(A)
    best, arg = S.zero, []
    for p in itertools.permutations(range(n)):
        w = sum((A[i][p[i]] for i in range(n)), Fraction(0)) if all(
            A[i][p[i]] != S.zero for i in range(n)
        ) else S.zero
        if w == S.zero:
            continue
        if best == S.zero or S.better(w, best):
            best, arg = w, [p]
        elif w == best:
            arg.append(p)
    return best, sorted(arg)


def exact_matrix(draw, n, S, values=st.integers(-5, 5)):
    A = draw(st.lists(st.lists(values, min_size=n, max_size=n), min_size=n, max_size=n))
    zeros = draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=n, max_size=n))
    return [[S.zero if z and draw(st.booleans()) else a for a, z in zip(r, zr)] for r, zr in zip(A, zeros)]


@st.composite
def square(draw, values=st.integers(-5, 5), max_n=6):
    S = draw(st.sampled_from([MaxPlus, MinPlus]))
    n = draw(st.integers(1, max_n))
    return exact_matrix(draw, n, S, values), S


@given(square())
def test_tdet_matches_brute_force(AS):
    A, S = AS
    best, arg = brute(A, S)
    assert tdet(A, semiring=S) == best
    assert optimal_permutations(A, semiring=S) == arg
    assert is_singular(A, semiring=S) == (best == S.zero or len(arg) > 1)
    p = optimal_permutation(A, semiring=S)
    assert (p is None) == (best == S.zero)
    if p is not None:
        assert p in arg


@given(square(values=st.fractions(min_value=-3, max_value=3, max_denominator=7), max_n=5))
def test_tdet_fractions_exact(AS):
    A, S = AS
    best, arg = brute(A, S)
    got = tdet(A, semiring=S)
    assert got == best
    assert isinstance(got, (int, Fraction)) or got == S.zero
    assert optimal_permutations(A, semiring=S) == arg


@given(square(values=st.integers(-(10**30), 10**30), max_n=5))
def test_tdet_huge_integers_exact(AS):
    """Python-integer path: values far beyond float64 and int64 precision."""
    A, S = AS
    best, arg = brute(A, S)
    assert tdet(A, semiring=S) == best
    assert optimal_permutations(A, semiring=S) == arg


@given(square(values=st.floats(-100, 100, allow_nan=False, width=64), max_n=5))
def test_tdet_floats(AS):
    A, S = AS
    Af = np.array([[float(x) for x in r] for r in A])
    exact = [[Fraction(x) if math.isfinite(x) else x for x in r] for r in Af]
    best, arg = brute(exact, S)
    got = tdet(Af, semiring=S)
    assert isinstance(got, float)
    if best == S.zero:
        assert got == S.zero
    else:
        assert got == pytest.approx(float(best), rel=1e-12, abs=1e-9)
        # floats are compared at their exact binary values
        assert optimal_permutations(Af, semiring=S) == arg


@given(
    st.one_of(
        square(values=st.integers(-50, 50), max_n=6),
        square(values=st.integers(-(10**400), 10**400), max_n=5),  # beyond float range: object path
    )
)
def test_duals_certify_optimality(AS):
    """u_i + v_j >= W_ij on allowed entries, equality on the permutation: a proof of optimality."""
    A, S = AS
    W, allowed, L = _integer_weights(np.array(A, dtype=object), S)
    best = brute(A, S)[0]
    n = len(A)
    for solver in (_assignment, _solve):  # the exact Hungarian and scipy + certificate
        perm, u, v, feasible = solver(W, allowed)
        assert feasible == (best != S.zero)
        if feasible:
            for i in range(n):
                for j in range(n):
                    if allowed[i, j]:
                        assert u[i] + v[j] >= W[i, j]
                assert u[i] + v[perm[i]] == W[i, perm[i]]
            assert S.sense * (sum(u) + sum(v)) == best


def test_float_path_agrees_with_exact_path_at_n_80():
    rng = np.random.default_rng(3)
    A = rng.integers(-1000, 1000, (80, 80))
    A[rng.random((80, 80)) < 0.3] = -(10**9)
    Af = A.astype(float)
    Af[A == -(10**9)] = -INF
    Ao = A.astype(object)
    Ao[A == -(10**9)] = -INF
    assert tdet(Af) == tdet(Ao)
    assert tdet(-Af, semiring=MinPlus) == -tdet(Ao)
    p = optimal_permutation(Ao)
    assert sum(Ao[i, p[i]] for i in range(80)) == tdet(Ao)


def test_min_plus_is_negated_max_plus():
    rng = np.random.default_rng(4)
    for _ in range(20):
        A = rng.integers(-9, 9, (5, 5)).astype(object)
        assert tdet(A, semiring="min") == -tdet(-A, semiring="max")
        assert optimal_permutations(A, semiring="min") == optimal_permutations(-A)


def test_tropical_zero_cases():
    assert tdet([[-INF]]) == -INF and is_singular([[-INF]])
    assert tdet([[INF, 1], [INF, 2]], semiring=MinPlus) == INF
    assert optimal_permutations([[INF, 1], [INF, 2]], semiring=MinPlus) == []
    assert tdet([[3]]) == 3 and not is_singular([[3]])
    assert tdet(np.full((4, 4), -INF)) == -INF


def test_tolerance():
    A = [[0.1, 0.2], [0.2, 0.3]]
    assert not is_singular(A)
    assert is_singular(A, tol=1e-12)
    B = [[0, 1], [1, 3]]  # weights 3 and 2
    assert optimal_permutations(B, tol=1) == [(0, 1), (1, 0)]
    assert optimal_permutations(B, tol=Fraction(1, 2)) == [(0, 1)]
    assert optimal_permutations(B, tol=1, semiring="min") == [(0, 1), (1, 0)]
    with pytest.raises(ToleranceError):
        is_singular(B, tol=-1)


def test_all_permutations_of_constant_matrix_and_limit():
    assert len(optimal_permutations(np.zeros((5, 5), dtype=int))) == 120
    with pytest.raises(SizeLimitError, match="limit=100"):
        optimal_permutations(np.zeros((5, 5), dtype=int), limit=100)
    # 10! = 3628800 optimal permutations: singularity is decided without listing them
    assert is_singular(np.zeros((10, 10), dtype=int))


def test_backends(backend):
    rng = np.random.default_rng(5)
    A = rng.integers(-5, 5, (6, 6)).astype(float)
    A[0, 1] = A[2, 3] = -INF
    x = backend(A)
    assert tdet(x) == tdet(A.astype(object)) == tdet(A)
    assert optimal_permutations(x) == optimal_permutations(A)
    assert is_singular(x) == is_singular(A)
    assert tdet(backend(-A), semiring="min") == -tdet(A)
    assert np.array_equal(to_np(x), A)  # input untouched


def test_integer_dtypes_are_exact():
    A = np.array([[2**60, 0], [0, 2**60 + 1]], dtype=np.int64)
    assert tdet(A) == 2**61 + 1  # float64 would round this
    import torch

    assert tdet(torch.tensor([[1, 2], [3, 4]])) == 5


def test_errors():
    with pytest.raises(ShapeError, match="square"):
        tdet([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ShapeError, match="2-d"):
        tdet([1, 2])
    with pytest.raises(EmptyInputError):
        tdet(np.zeros((0, 0)))
    with pytest.raises(NaNError):
        tdet([[1.0, float("nan")], [0.0, 1.0]])
    with pytest.raises(ConventionError):
        tdet([[1.0, INF], [0.0, 1.0]])
    with pytest.raises(ConventionError):
        is_singular([[1.0, -INF], [0.0, 1.0]], semiring="min")
    with pytest.raises(SemiringMismatchError):
        tdet([[1.0]], semiring=LogSemiring(1.0))
    with pytest.raises(ToleranceError):
        optimal_permutations([[1]], limit=0)


def test_exact_certificate_rejects_float_rounding():
    """Entries differing beyond float64 precision: scipy's proposal may be wrong, the answer must not be."""
    from tropix.tropical.determinant import _certify

    b = 2**60
    for A in ([[b + 1, b], [b, b]], [[b, b + 1], [b, b]], [[b, b], [b + 1, b]], [[b, b], [b, b + 1]]):
        A = np.array(A, dtype=object)
        assert tdet(A) == 2 * b + 1
        assert not is_singular(A)
        assert len(optimal_permutations(A)) == 1
        W, allowed, _ = _integer_weights(A, MaxPlus)
        best = optimal_permutation(A)
        other = tuple(1 - x for x in best)
        assert _certify(W, allowed, np.array(best)) is not None
        assert _certify(W, allowed, np.array(other)) is None


def test_sympy_rationals_and_integer_tensors():
    import sympy
    import torch

    A = [[sympy.Rational(1, 3), 0], [0, sympy.Rational(1, 6)]]
    assert tdet(A) == Fraction(1, 2)
    assert tdet(A, semiring="min") == 0
    T = torch.tensor([[0, 1], [1, 2]])
    assert is_singular(T) and tdet(T) == 2 and optimal_permutations(T) == [(0, 1), (1, 0)]


def test_published_maclagan_sturmfels_example_5_1_6():
    """Maclagan–Sturmfels, *Introduction to Tropical Geometry*, Example 5.1.6 (min-plus): the tropical
    characteristic polynomial of A = [[1, 0, 1], [0, 1, 2], [1, 2, 1]] is t³ ⊕ 1⊙t² ⊕ 0⊙t ⊕ 1, i.e. the
    coefficient of t^k is the smallest tropical determinant of a principal (3−k)-minor.  (Values as
    transcribed in a public test suite of that example; recomputed here by listing permutations.)"""
    from itertools import combinations

    A = [[1, 0, 1], [0, 1, 2], [1, 2, 1]]
    coeff = {
        k: min(tdet([[A[i][j] for j in I] for i in I], semiring="min") for I in combinations(range(3), 3 - k))
        for k in (0, 1, 2)
    }
    assert coeff == {0: 1, 1: 0, 2: 1}
    assert optimal_permutations(A, semiring="min") == [(1, 0, 2)]  # 0 + 0 + 1, unique
    assert not is_singular(A, semiring="min")
    assert brute(np.array(A, dtype=object), MinPlus) == (1, [(1, 0, 2)])
