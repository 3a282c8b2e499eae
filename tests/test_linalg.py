"""Tropical linear algebra (power, Kleene star, eigenvalue/eigenvector/critical graph, solve) against
brute-force definitions, published values, every backend, and bad input."""

from __future__ import annotations

import itertools
from fractions import Fraction

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import MaxPlus, MinPlus
from tropix.errors import (
    BackendMismatchError,
    ConventionError,
    DivergenceError,
    EmptyInputError,
    NaNError,
    SemiringMismatchError,
    ShapeError,
    ToleranceError,
)
from tropix.tropical import (
    LogSemiring,
    SolveResult,
    critical_graph,
    eigenvalue,
    eigenvector,
    kleene_plus,
    kleene_star,
    matrix_power,
    solve,
)

from _brute import semiring_matmul  # noqa: E402

INF = float("inf")
SEMIRINGS = [MaxPlus, MinPlus]
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)


# ---------------------------------------------------------------- brute-force references (pure Python)
def bident(n, S):
    return [[S.one if i == j else S.zero for j in range(n)] for i in range(n)]


def bpow(A, k, S):
    R = bident(len(A), S)
    for _ in range(k):
        R = semiring_matmul(R, A, S)
    return R


def badd(A, B, S):
    return [[S.add(a, b) for a, b in zip(ra, rb)] for ra, rb in zip(A, B)]


def graph_of(A, S):
    G = nx.DiGraph()
    n = len(A)
    G.add_nodes_from(range(n))
    for i in range(n):
        for j in range(n):
            if A[i][j] != S.zero:
                G.add_edge(i, j, w=A[i][j])
    return G


def cycles_with_means(A, S):
    G = graph_of(A, S)
    out = []
    for cyc in nx.simple_cycles(G):
        edges = list(zip(cyc, cyc[1:] + cyc[:1]))
        w = sum(A[i][j] for i, j in edges)
        out.append((Fraction(w) / len(cyc), edges))
    return out


def brute_cycle_mean(A, S):
    means = [m for m, _ in cycles_with_means(A, S)]
    if not means:
        return S.zero
    best = max(means) if S.sense == 1 else min(means)
    return int(best) if best.denominator == 1 else best


def as_list(x):
    a = np.asarray(to_np(x), dtype=object)
    return [[_py(v) for v in row] for row in a] if a.ndim == 2 else [_py(v) for v in a]


def _py(v):
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if not v.is_integer() else int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    return v


# ---------------------------------------------------------------- strategies
def matrices(S, max_n=5, lo=-5, hi=5, zero_p=True, rect=False):
    @st.composite
    def build(draw):
        n = draw(st.integers(1, max_n))
        m = draw(st.integers(1, max_n)) if rect else n
        cell = st.one_of(st.integers(lo, hi), st.just(S.zero)) if zero_p else st.integers(lo, hi)
        return [[draw(cell) for _ in range(n)] for _ in range(m)]

    return build()


@st.composite
def semiring_and_matrix(draw, max_n=5):
    S = draw(st.sampled_from(SEMIRINGS))
    return S, draw(matrices(S, max_n))


# ---------------------------------------------------------------- matrix_power
@given(semiring_and_matrix(), st.integers(0, 6))
def test_power_equals_repeated_product(SA, k):
    S, A = SA
    got = matrix_power(A, k, semiring=S)
    if any(v != S.zero for row in A for v in row):  # (an all-infinite list is read as float64)
        assert got.dtype == object
    assert as_list(got) == bpow(A, k, S)


@fixture_ok
@given(semiring_and_matrix(4), st.integers(0, 5))
def test_power_backends(backend, SA, k):
    S, A = SA
    got = matrix_power(backend(A), k, semiring=S)
    assert as_list(got) == bpow(A, k, S)  # small integers: float sums are exact


def test_power_uses_kernel_sized_matrices():
    rng = np.random.default_rng(5)
    A = rng.integers(-9, 9, (40, 40)).astype(np.float64)
    A[rng.random(A.shape) < 0.3] = -INF
    got = matrix_power(A, 5)
    ref = A
    for _ in range(4):
        ref = np.max(ref[:, :, None] + A[None], axis=1)
    assert np.array_equal(got, ref)


@pytest.mark.parametrize("k", [-1, 1.5, True, "2"])
def test_power_bad_exponent(k):
    with pytest.raises(ToleranceError, match="exponent"):
        matrix_power([[1, 2], [3, 4]], k)


# ---------------------------------------------------------------- Kleene star / plus
@given(semiring_and_matrix())
def test_kleene_star_vs_sum_of_powers_or_divergence(SA):
    S, A = SA
    n = len(A)
    lam = brute_cycle_mean(A, S)
    diverges = lam != S.zero and S.better(lam, 0)
    if diverges:
        with pytest.raises(DivergenceError, match="diverges"):
            kleene_star(A, semiring=S)
        with pytest.raises(DivergenceError):
            kleene_plus(A, semiring=S)
        return
    ref = bident(n, S)
    P = bident(n, S)
    plus = [[S.zero] * n for _ in range(n)]
    for _ in range(1, n + 1):
        P = semiring_matmul(P, A, S)
        plus = badd(plus, P, S)
    ref = badd(bident(n, S), plus, S)
    assert as_list(kleene_star(A, semiring=S)) == ref
    assert as_list(kleene_plus(A, semiring=S)) == plus
    # the series has stabilised: I ⊕ … ⊕ A^(n-1) already equals it
    short = bident(n, S)
    P = bident(n, S)
    for _ in range(1, n):
        P = semiring_matmul(P, A, S)
        short = badd(short, P, S)
    assert short == ref


@given(semiring_and_matrix())
def test_kleene_star_of_normalised_matrix_exists(SA):
    """A − λ has best cycle mean 0, so its star converges (zero-weight cycles are fine)."""
    S, A = SA
    lam = brute_cycle_mean(A, S)
    if lam == S.zero:
        return
    Al = [[v if v == S.zero else Fraction(v) - lam for v in row] for row in A]
    star = kleene_star(Al, semiring=S)
    n = len(A)
    ref = bident(n, S)
    P = bident(n, S)
    for _ in range(1, n):
        P = semiring_matmul(P, Al, S)
        ref = badd(ref, P, S)
    assert as_list(star) == ref
    # idempotent: A* ⊗ A* = A*
    assert semiring_matmul(as_list(star), as_list(star), S) == as_list(star)
    assert all(star[i, i] == 0 for i in range(n))


@fixture_ok
@given(semiring_and_matrix(4))
def test_kleene_backends(backend, SA):
    S, A = SA
    lam = brute_cycle_mean(A, S)
    if lam != S.zero and S.better(lam, 0):
        with pytest.raises(DivergenceError):
            kleene_star(backend(A), semiring=S)
    else:
        assert as_list(kleene_star(backend(A), semiring=S)) == as_list(kleene_star(A, semiring=S))


def test_kleene_star_published_clrs_shortest_paths():
    """Cormen et al., Introduction to Algorithms (3rd ed.), Fig. 25.4: Floyd–Warshall on a 5-node graph
    with negative edges but no negative cycle; the final matrix D^(5) of shortest-path weights."""
    x = INF
    W = [
        [0, 3, 8, x, -4],
        [x, 0, x, 1, 7],
        [x, 4, 0, x, x],
        [2, x, -5, 0, x],
        [x, x, x, 6, 0],
    ]
    D5 = [
        [0, 1, -3, 2, -4],
        [3, 0, -4, 1, -1],
        [7, 4, 0, 5, 3],
        [2, -1, -5, 0, -2],
        [8, 5, 1, 6, 0],
    ]
    assert as_list(kleene_star(W, semiring=MinPlus)) == D5
    # the same graph in max-plus after negation (x -> -x is an isomorphism MinPlus -> MaxPlus)
    neg = [[-v for v in row] for row in W]
    assert as_list(kleene_star(neg, semiring=MaxPlus)) == [[-v for v in row] for row in D5]


def test_kleene_divergence_message_names_cycle_node():
    A = [[float("-inf"), 2, float("-inf")], [float("-inf"), float("-inf"), -1], [float("-inf"), float("-inf"), float("-inf")]]
    assert as_list(kleene_star(A)) == [[0, 2, 1], [float("-inf"), 0, -1], [float("-inf"), float("-inf"), 0]]
    with pytest.raises(DivergenceError, match=r"node 2 .* weight 1"):
        kleene_star([[0, 0, 0], [0, -5, 0], [0, 0, 1]])
    with pytest.raises(DivergenceError, match="negative"):
        kleene_star([[INF, -3], [1, INF]], semiring=MinPlus)


def test_kleene_torch_autograd():
    A = torch.tensor([[-1.0, 2.0], [-3.0, -2.0]], dtype=torch.float64, requires_grad=True)
    S = kleene_star(A)
    S[0, 1].backward()  # the best 0 -> 1 walk is the single edge 0 -> 1
    assert A.grad.tolist() == [[0.0, 1.0], [0.0, 0.0]]


# ---------------------------------------------------------------- eigenvalue
@given(semiring_and_matrix())
def test_eigenvalue_is_best_cycle_mean(SA):
    S, A = SA
    lam = eigenvalue(A, semiring=S)
    assert lam == brute_cycle_mean(A, S)
    assert type(lam) in (int, Fraction) or lam == S.zero


@fixture_ok
@given(semiring_and_matrix(4))
def test_eigenvalue_backends(backend, SA):
    S, A = SA
    lam = eigenvalue(backend(A), semiring=S)
    assert float(to_np(lam)) == pytest.approx(float(brute_cycle_mean(A, S)), abs=1e-12)


def test_eigenvalue_fractions_exact():
    A = [[Fraction(1, 3), 1], [Fraction(-1, 7), -5]]
    # loops 1/3 and -5, two-cycle (1 - 1/7)/2 = 3/7
    lam = eigenvalue(A)
    assert lam == Fraction(3, 7) and isinstance(lam, Fraction)
    assert eigenvalue(A, semiring=MinPlus) == -5


def test_eigenvalue_torch_gradient_is_critical_cycle_indicator():
    A = torch.tensor([[0.0, 3.0, -1.0], [1.0, -5.0, 0.0], [0.0, 0.0, -2.0]], dtype=torch.float64, requires_grad=True)
    lam = eigenvalue(A)
    assert float(lam.detach()) == 2.0  # cycle 0 -> 1 -> 0 has mean (3 + 1)/2
    lam.backward()
    want = np.zeros((3, 3))
    want[0, 1] = want[1, 0] = 0.5
    assert np.allclose(A.grad.numpy(), want)


# ---------------------------------------------------------------- eigenvector
@given(semiring_and_matrix())
def test_eigenvector_satisfies_eigen_equation(SA):
    S, A = SA
    lam = eigenvalue(A, semiring=S)
    x = as_list(eigenvector(A, semiring=S))
    assert any(v != S.zero for v in x)
    Ax = [r[0] for r in semiring_matmul(A, [[v] for v in x], S)]
    lx = [S.zero if (v == S.zero or lam == S.zero) else v + lam for v in x]
    assert Ax == lx
    if lam != S.zero:
        assert S.sum(np.array(x, dtype=object)) == 0  # normalised
    if nx.is_strongly_connected(graph_of(A, S)) and lam != S.zero:
        assert all(v != S.zero for v in x)  # irreducible: finite eigenvector


@fixture_ok
@given(semiring_and_matrix(4))
def test_eigenvector_backends(backend, SA):
    S, A = SA
    x = eigenvector(backend(A), semiring=S)
    assert as_list(x) == as_list(eigenvector(A, semiring=S))


def test_eigenvector_float_noninteger():
    rng = np.random.default_rng(3)
    for S in SEMIRINGS:
        A = rng.standard_normal((7, 7))
        A[rng.random(A.shape) < 0.3] = S.zero
        lam = float(eigenvalue(A, semiring=S))
        x = eigenvector(A, semiring=S)
        Ax = np.max(A + x[None, :], axis=1) if S.sense == 1 else np.min(A + x[None, :], axis=1)
        fin = np.isfinite(x)
        assert np.array_equal(np.isfinite(Ax), fin)
        assert np.allclose(Ax[fin], lam + x[fin], atol=1e-12)


def test_published_eigenpair_scilab_maxplus_toolbox():
    """Subiono's Max-Plus Algebra toolbox for Scilab, help of ``maxplusmaxalgol`` (after Subiono and van der
    Woude, DEDS 10 (2000) 369-389): this irreducible 6x6 matrix has eigenvalue 8 and eigenvector
    (15, 15, 17, 10, 16, 13); the reducible ``[[7, ε], [0, 3]]`` has eigenvalue 7 and eigenvector (14, 7)."""
    e = -INF
    A = [
        [e, 3, e, e, 7, e],
        [2, e, 6, e, 7, 2],
        [e, 7, 8, 9, e, e],
        [e, e, e, 1, 2, e],
        [8, e, 7, e, e, 2],
        [0, e, e, 6, 5, e],
    ]
    assert eigenvalue(A) == 8
    v = [15, 15, 17, 10, 16, 13]
    assert as_list(eigenvector(A)) == [t - 17 for t in v]  # one critical class: unique up to scaling
    G = critical_graph(A)
    assert list(G.edges) == [(2, 2)] and G.graph["eigenvalue"] == 8
    assert eigenvalue([[7, e], [0, 3]]) == 7
    assert as_list(eigenvector([[7, e], [0, 3]])) == [0, -7]


def test_eigen_of_acyclic_matrix():
    e = -INF
    A = [[e, 1, 2], [e, e, 3], [e, e, e]]
    assert eigenvalue(A) == e
    x = eigenvector(A)
    assert as_list(x) == [0, e, e]  # column 0 has no entries: A ⊗ e_0 = ε
    assert critical_graph(A).number_of_edges() == 0


# ---------------------------------------------------------------- critical graph
@given(semiring_and_matrix())
def test_critical_graph_is_union_of_best_cycles(SA):
    S, A = SA
    lam = brute_cycle_mean(A, S)
    want_edges, want_nodes = set(), set()
    for mean, edges in cycles_with_means(A, S):
        if mean == lam:
            want_edges |= set(edges)
            want_nodes |= {i for i, _ in edges}
    G = critical_graph(A, semiring=S)
    assert set(G.edges) == want_edges
    assert set(G.nodes) == want_nodes
    for i, j, w in G.edges(data="weight"):
        assert w == A[i][j]


@fixture_ok
@given(semiring_and_matrix(4))
def test_critical_graph_backends(backend, SA):
    S, A = SA
    assert set(critical_graph(backend(A), semiring=S).edges) == set(critical_graph(A, semiring=S).edges)


# ---------------------------------------------------------------- solve
def _grid_vectors(n, S, lo=-10, hi=10):
    vals = list(range(lo, hi + 1)) + [S.zero]
    return itertools.product(vals, repeat=n)


@settings(max_examples=40)
@given(st.sampled_from(SEMIRINGS), st.data())
def test_solve_principal_solution_is_greatest_subsolution(S, data):
    A = data.draw(matrices(S, max_n=3, rect=True))
    n = len(A[0])
    if n > 2:
        A = [row[:2] for row in A]
        n = 2
    m = len(A)
    b = data.draw(st.lists(st.one_of(st.integers(-5, 5), st.just(S.zero)), min_size=m, max_size=m))
    r = solve(A, b, semiring=S)
    assert isinstance(r, SolveResult)
    x = as_list(r.x)
    far = -S.zero
    free = {j for j in range(n) if all(A[i][j] == S.zero for i in range(m))}
    assert set(r.free) == free
    assert all((x[j] == far) == (j in free) for j in range(n))

    def prod(y):
        return [r_[0] for r_ in semiring_matmul(A, [[v] for v in y], S)]

    def le(u, v):  # u ⊕ v == v, the semiring order (≤ in max-plus, ≥ in min-plus)
        return all(S.add(p, q) == q for p, q in zip(u, v))

    xs = [0 if v == far else v for v in x]  # a free variable's value does not matter
    assert le(prod(xs), b)
    assert as_list(r.product) == prod(xs)
    solvable = False
    for y in _grid_vectors(n, S):
        py = prod(list(y))
        if le(py, b):
            assert all(j in free or S.add(y[j], x[j]) == x[j] for j in range(n))  # y ≤ x̄
            solvable = solvable or py == b
    assert r.exact == (prod(xs) == b)
    assert r.exact == solvable  # x̄ lies in the grid (entries b_i - A_ij), so the grid decides


@fixture_ok
@given(st.sampled_from(SEMIRINGS), st.data())
def test_solve_backends(backend, S, data):
    A = data.draw(matrices(S, max_n=3, rect=True))
    m = len(A)
    b = data.draw(st.lists(st.one_of(st.integers(-5, 5), st.just(S.zero)), min_size=m, max_size=m))
    r = solve(backend(A), backend(b), semiring=S)
    ref = solve(A, b, semiring=S)
    assert as_list(r.x) == as_list(ref.x)
    assert r.exact == ref.exact and r.free == ref.free
    assert as_list(r.product) == as_list(ref.product)


def test_solve_float_tolerance_and_matrix_rhs():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 3))
    x0 = rng.standard_normal(3)
    b = np.max(A + x0[None, :], axis=1)  # solvable by construction
    r = solve(A, b)
    assert r.exact and r.tol > 0
    assert np.all(r.x >= x0 - 1e-12)  # x0 is a solution, the principal one is the greatest
    B = np.stack([b, b + 1.0, b - np.array([0, 0, 0, 0, 5.0])], axis=1)
    R = solve(A, B)
    assert R.x.shape == (3, 3)
    assert np.allclose(R.x[:, 1], r.x + 1)
    # lowering one entry of b far below every other route makes that equation unreachable
    low = b - np.array([0, 0, 0, 0, 50.0])
    r_low = solve(A, low)
    assert not r_low.exact and np.all(r_low.product <= low + 1e-12)
    assert solve(A, b, tol=0.0).tol == 0.0


def test_solve_mixed_exact_and_float():
    r = solve([[0, 2], [1, 0]], np.array([3.0, 2.0]))
    assert r.exact and r.x.dtype == np.float64 and r.x.tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- bad input, every function
FUNCS = [
    lambda A, S: matrix_power(A, 2, semiring=S),
    lambda A, S: kleene_star(A, semiring=S),
    lambda A, S: kleene_plus(A, semiring=S),
    lambda A, S: eigenvalue(A, semiring=S),
    lambda A, S: eigenvector(A, semiring=S),
    lambda A, S: critical_graph(A, semiring=S),
]


@pytest.mark.parametrize("f", FUNCS)
def test_bad_input(f):
    with pytest.raises(ShapeError, match="square"):
        f([[1, 2, 3], [4, 5, 6]], MaxPlus)
    with pytest.raises(ShapeError, match="2-dimensional"):
        f([1, 2], MaxPlus)
    with pytest.raises(EmptyInputError, match="empty"):
        f(np.zeros((0, 0)), MaxPlus)
    with pytest.raises(NaNError, match="NaN"):
        f([[1.0, float("nan")], [0.0, 0.0]], MaxPlus)
    with pytest.raises(ConventionError, match="MinPlus"):
        f([[1.0, INF], [0.0, 0.0]], MaxPlus)
    with pytest.raises(ConventionError, match="MaxPlus"):
        f([[1.0, -INF], [0.0, 0.0]], MinPlus)
    with pytest.raises(SemiringMismatchError, match="tropical"):
        f([[1.0, 2.0], [0.0, 0.0]], LogSemiring(1.0))


def test_solve_bad_input():
    with pytest.raises(ShapeError, match="rows"):
        solve([[1, 2], [3, 4]], [1, 2, 3])
    with pytest.raises(ShapeError):
        solve([1, 2], [1])
    with pytest.raises(EmptyInputError):
        solve(np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(NaNError):
        solve([[1.0]], [float("nan")])
    with pytest.raises(ConventionError):
        solve([[1.0]], [INF], semiring=MaxPlus)
    with pytest.raises(BackendMismatchError):
        solve(np.ones((2, 2)), torch.ones(2, dtype=torch.float64))


def test_kleene_tolerance_for_float_rounding():
    e = -INF
    A = np.array([[e, 0.1, e], [e, e, 0.2], [-0.3, e, e]])  # exact cycle weight 0, in floats 5.6e-17
    with pytest.raises(DivergenceError):
        kleene_star(A)
    S = kleene_star(A, tol=1e-12)
    assert abs(S[0, 2] - 0.3) < 1e-15 and abs(S[2, 1] + 0.2) < 1e-15
    exact = kleene_star([[e, Fraction(1, 10), e], [e, e, Fraction(1, 5)], [Fraction(-3, 10), e, e]])
    assert exact[0, 2] == Fraction(3, 10) and exact[0, 0] == 0
    with pytest.raises(ToleranceError):
        kleene_star(A, tol=-1.0)
    with pytest.raises(ToleranceError):
        kleene_star(A, tol=float("nan"))


@pytest.mark.parametrize("f", FUNCS + [lambda A, S: solve(A, [0, 0], semiring=S)])
def test_non_real_ragged_and_bool_input(f):
    """Review of issue #2: strings, complex and ragged input raise tropix errors; bools are read as 0/1."""
    with pytest.raises(ShapeError, match="ragged"):
        f([[1, 2], [3]], MaxPlus)
    with pytest.raises(SemiringMismatchError, match="not a real number"):
        f([["a", "b"], ["c", "d"]], MaxPlus)
    with pytest.raises(SemiringMismatchError, match="complex"):
        f(np.array([[1j, 0], [0, 1]]), MinPlus)
    B = np.array([[True, False], [False, False]])
    for S in (MaxPlus, MinPlus):
        try:
            got = f(B, S)
        except DivergenceError:
            got = None
        try:
            want = f(B.astype(np.int64), S)
        except DivergenceError:
            want = None
        if hasattr(want, "x"):  # SolveResult
            assert (got.x == want.x).all() and got.exact == want.exact
        elif isinstance(want, np.ndarray):
            assert (got == want).all()
        elif want is not None and not hasattr(want, "nodes"):
            assert got == want


def test_published_maclagan_sturmfels_example_5_1_6_kleene_plus():
    """Maclagan–Sturmfels Example 5.1.6 (min-plus): A ⊕ A² ⊕ A³ = [[0, 0, 1], [0, 0, 1], [1, 1, 1]] for
    A = [[1, 0, 1], [0, 1, 2], [1, 2, 1]]; its smallest cycle mean is 0 (the cycle 0 → 1 → 0)."""
    A = [[1, 0, 1], [0, 1, 2], [1, 2, 1]]
    want = [[0, 0, 1], [0, 0, 1], [1, 1, 1]]
    assert kleene_plus(A, semiring="min").tolist() == want
    assert eigenvalue(A, semiring="min") == 0
    P = [matrix_power(A, k, semiring="min") for k in (1, 2, 3)]
    assert np.minimum(np.minimum(P[0], P[1]), P[2]).tolist() == want
