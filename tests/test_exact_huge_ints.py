"""Exact input beyond the float range (``10**400``, Fractions with huge numerators) beside the tropical zero.

Python adds an ``int``/``Fraction`` to a float by converting it to float, so ``10**400 + -inf`` raises
``OverflowError`` although the tropical answer is ``-inf``; every exact path of the tropical linear algebra
must give the exact result instead.  References are brute force on Python ints/Fractions with an explicit
tropical zero.
"""

from __future__ import annotations

import itertools
import random
import sys
from fractions import Fraction

import numpy as np
import pytest

from tropix.errors import DivergenceError, FloatOverflowError
from tropix.tropical import matmul
from tropix.tropical.convexity import convex_hull, tropical_projection
from tropix.tropical.determinant import is_singular, optimal_permutation, optimal_permutations, tdet
from tropix.tropical.eigen import critical_graph, eigenvalue, eigenvector
from tropix.tropical.kleene import kleene_plus, kleene_star
from tropix.tropical.power import matrix_power
from tropix.tropical.solve import solve

H = 10**400
INF = float("inf")
SENSES = {"max": 1, "min": -1}


# ------------------------------------------------------------------------------------------- references
def zero(s):
    return -INF if s == 1 else INF


def best(s, vals):
    """⊕ of ``vals`` (Python compares ints/Fractions with ±inf exactly); the zero if empty."""
    vals = list(vals)
    if not vals:
        return zero(s)
    return max(vals) if s == 1 else min(vals)


def worst(s, vals):
    return best(-s, vals)


def tmul(s, a, b):
    z = zero(s)
    return z if a == z or b == z else a + b


def ref_matmul(s, A, B):
    return [[best(s, (tmul(s, A[i][t], B[t][j]) for t in range(len(B)))) for j in range(len(B[0]))]
            for i in range(len(A))]


def ref_identity(s, n):
    return [[0 if i == j else zero(s) for j in range(n)] for i in range(n)]


def ref_power(s, A, k):
    P = ref_identity(s, len(A))
    for _ in range(k):
        P = ref_matmul(s, P, A)
    return P


def simple_cycles(n):
    for r in range(1, n + 1):
        for c in itertools.permutations(range(n), r):
            if c[0] == min(c):
                yield c


def cycle_edges(c):
    return [(c[t], c[(t + 1) % len(c)]) for t in range(len(c))]


def ref_cycle_means(s, A):
    """{cycle: mean} over the simple cycles of finite weight."""
    out = {}
    for c in simple_cycles(len(A)):
        w = [A[i][j] for i, j in cycle_edges(c)]
        if all(v != zero(s) for v in w):
            out[c] = Fraction(sum(w), len(c))
    return out


def ref_eigenvalue(s, A):
    return best(s, ref_cycle_means(s, A).values())


def ref_star(s, A):
    n = len(A)
    out = ref_identity(s, n)
    P = ref_identity(s, n)
    for _ in range(n - 1):
        P = ref_matmul(s, P, A)
        out = [[best(s, (out[i][j], P[i][j])) for j in range(n)] for i in range(n)]
    return out


def ref_solve(s, A, b):
    m, n = len(A), len(A[0])
    far = -zero(s)
    x = []
    for j in range(n):
        terms = [zero(s) if b[i] == zero(s) else b[i] - A[i][j] for i in range(m) if A[i][j] != zero(s)]
        x.append(worst(s, terms) if terms else far)
    prod = [best(s, (A[i][j] + x[j] for j in range(n) if A[i][j] != zero(s) and x[j] not in (zero(s), far)))
            for i in range(m)]
    return x, prod


def ref_projection(s, V, x):
    lam = [worst(s, (zero(s) if x[j] == zero(s) else x[j] - v[j] for j in range(len(x)) if v[j] != zero(s)))
           for v in V]
    return [best(s, (tmul(s, lam[i], V[i][j]) for i in range(len(V)))) for j in range(len(x))]


def ref_assignments(s, A):
    n = len(A)
    weights = {}
    for p in itertools.permutations(range(n)):
        w = [A[i][p[i]] for i in range(n)]
        if all(v != zero(s) for v in w):
            weights[p] = sum(w)
    opt = best(s, weights.values())
    return opt, sorted(p for p, w in weights.items() if w == opt)


# ------------------------------------------------------------------------------------------- helpers
def obj(rows):
    return np.array(rows, dtype=object)


def assert_exact(got, want):
    """Entrywise equality with exact types: ints/Fractions stay exact, the zero is a float ±inf."""
    g = np.asarray(got, dtype=object)
    w = np.asarray(want, dtype=object)
    assert g.shape == w.shape, (g.shape, w.shape)
    for a, b in zip(g.ravel(), w.ravel()):
        if isinstance(b, float):
            assert isinstance(a, float) and a == b, (a, b)
        else:
            assert isinstance(a, (int, Fraction)) and not isinstance(a, bool), type(a)
            assert a == b, (a, b)


def pool(s):
    return [H, -H, Fraction(H + 1, 3), Fraction(-7 * H, 11), H + 1, 0, 1, -2, Fraction(5, 2), zero(s), zero(s)]


def random_matrix(rng, s, m, n):
    P = pool(s)
    return [[rng.choice(P) for _ in range(n)] for _ in range(m)]


def cases(s, count, m=3, n=3, seed=0):
    rng = random.Random(seed * 7919 + (s == 1))
    return [random_matrix(rng, s, m, n) for _ in range(count)]


# ------------------------------------------------------------------------------------------- matmul, power
@pytest.mark.parametrize("sr", sorted(SENSES))
def test_matmul_huge_int_beside_zero_reproducer(sr):
    s = SENSES[sr]
    A = [[s * H, zero(s)], [0, 1]]
    assert_exact(matmul(obj(A), obj(A), semiring=sr), ref_matmul(s, A, A))


@pytest.mark.parametrize("sr", sorted(SENSES))
def test_matmul_huge_fraction_beside_zero(sr):
    s = SENSES[sr]
    A = [[Fraction(s * H, 3), zero(s)], [0, Fraction(1, 2)]]
    assert_exact(matmul(obj(A), obj(A), semiring=sr), ref_matmul(s, A, A))


@pytest.mark.parametrize("sr", sorted(SENSES))
def test_matmul_random_huge_exact(sr):
    s = SENSES[sr]
    for A in cases(s, 20, 3, 4):
        B = cases(s, 1, 4, 2, seed=len(str(A)))[0]
        assert_exact(matmul(obj(A), obj(B), semiring=sr), ref_matmul(s, A, B))
        x = [row[0] for row in B]
        assert_exact(matmul(obj(A), obj(x), semiring=sr), [r[0] for r in ref_matmul(s, A, [[v] for v in x])])
        assert_exact(matmul(obj(x), obj(B), semiring=sr), ref_matmul(s, [x], B)[0])


def test_matmul_huge_int_with_int64_operand():
    A = [[H, -INF], [0, 1]]
    B = np.array([[1, 2], [3, 4]], dtype=np.int64)
    assert_exact(matmul(obj(A), B), ref_matmul(1, A, B.tolist()))


def test_matmul_huge_int_with_finite_float_raises_tropix_error():
    # mixed exact and float input is float arithmetic, where 10**400 + 1.5 has no value
    with pytest.raises(FloatOverflowError):
        matmul(obj([[H, -INF], [0, 1]]), np.array([[1.5, 0.0], [0.0, 1.0]]))


@pytest.mark.parametrize("sr", sorted(SENSES))
def test_matrix_power_huge_exact(sr):
    s = SENSES[sr]
    for A in cases(s, 8):
        for k in range(5):
            assert_exact(matrix_power(obj(A), k, semiring=sr), ref_power(s, A, k))


# ------------------------------------------------------------------------------------------- eigen
@pytest.mark.parametrize("sr", sorted(SENSES))
def test_eigenvalue_huge_exact(sr):
    s = SENSES[sr]
    for A in cases(s, 25) + [[[s * H, zero(s)], [0, 1]], [[Fraction(s * H, 3), zero(s)], [0, 1]]]:
        lam = eigenvalue(obj(A), semiring=sr)
        want = ref_eigenvalue(s, A)
        assert lam == want
        assert isinstance(lam, float) if want == zero(s) else isinstance(lam, (int, Fraction))


@pytest.mark.parametrize("sr", sorted(SENSES))
def test_eigenvector_huge_exact(sr):
    s = SENSES[sr]
    for A in cases(s, 25):
        lam = ref_eigenvalue(s, A)
        if lam == zero(s):
            continue
        x = eigenvector(obj(A), semiring=sr)
        xs = list(x)
        assert best(s, xs) == 0
        assert all(isinstance(v, float) and v == zero(s) or isinstance(v, (int, Fraction)) for v in xs)
        Ax = [r[0] for r in ref_matmul(s, A, [[v] for v in xs])]
        assert Ax == [tmul(s, lam, v) for v in xs]


@pytest.mark.parametrize("sr", sorted(SENSES))
def test_critical_graph_huge_exact(sr):
    s = SENSES[sr]
    for A in cases(s, 25):
        G = critical_graph(obj(A), semiring=sr)
        lam = ref_eigenvalue(s, A)
        assert G.graph["eigenvalue"] == lam
        crit = [c for c, mean in ref_cycle_means(s, A).items() if mean == lam]
        edges = {e for c in crit for e in cycle_edges(c)}
        assert set(G.nodes()) == {i for c in crit for i in c}
        assert set(G.edges()) == edges
        assert all(G.edges[i, j]["weight"] == A[i][j] for i, j in edges)


# ------------------------------------------------------------------------------------------- kleene
@pytest.mark.parametrize("sr", sorted(SENSES))
def test_kleene_star_huge_exact(sr):
    s = SENSES[sr]
    for A in cases(s, 20):
        lam = ref_eigenvalue(s, A)
        if lam != zero(s):  # normalise: best cycle mean 0, so the star converges
            A = [[v if v == zero(s) else v - lam for v in row] for row in A]
        star = ref_star(s, A)
        assert_exact(kleene_star(obj(A), semiring=sr), star)
        assert_exact(kleene_plus(obj(A), semiring=sr), ref_matmul(s, A, star))


@pytest.mark.parametrize("sr", sorted(SENSES))
def test_kleene_star_diverges_with_huge_weight(sr):
    s = SENSES[sr]
    with pytest.raises(DivergenceError):
        kleene_star(obj([[s * H, zero(s)], [0, 1]]), semiring=sr)


def test_kleene_divergence_message_for_int_beyond_str_limit():
    # an int with more digits than Python prints (sys.get_int_max_str_digits) turned the DivergenceError into
    # a ValueError raised while formatting its message
    big = 10 ** (max(sys.get_int_max_str_digits(), 4300) + 100)
    with pytest.raises(DivergenceError, match="about 2"):
        kleene_star(obj([[big, 0], [-INF, -H]]))


# ------------------------------------------------------------------------------------------- solve
@pytest.mark.parametrize("sr", sorted(SENSES))
def test_solve_huge_exact(sr):
    s = SENSES[sr]
    rng = random.Random(5 + s)
    for A in cases(s, 25, 3, 2):
        b = [rng.choice(pool(s)) for _ in range(3)]
        r = solve(obj(A), obj(b), semiring=sr)
        x, prod = ref_solve(s, A, b)
        assert_exact(r.x, x)
        assert_exact(r.product, prod)
        assert r.exact == (prod == b)


@pytest.mark.parametrize("swap", [False, True])
def test_solve_mixed_huge_exact_and_float_raises_tropix_error(swap):
    A, b = obj([[H, -INF], [0, 1]]), np.array([1.5, 0.0])
    if swap:
        A, b = np.array([[1.5, 0.0], [0.0, 1.0]]), obj([H, 0])
    with pytest.raises(FloatOverflowError):
        solve(A, b)


# ------------------------------------------------------------------------------------------- convexity
@pytest.mark.parametrize("sr", sorted(SENSES))
def test_tropical_projection_huge_exact(sr):
    s = SENSES[sr]
    z = zero(s)
    V = [[0, H, z], [0, 1, 2]]
    for x in ([0, z, 1], [0, 1, H], [Fraction(H, 7), -H, z], [z, z, 3]):
        assert_exact(tropical_projection(obj(V), obj(x), semiring=sr), ref_projection(s, V, x))
    rng = random.Random(11 + s)
    for V in cases(s, 15, 3, 4):
        V = [row if any(v != z for v in row) else [0] * 4 for row in V]
        X = [[rng.choice(pool(s)) for _ in range(4)] for _ in range(3)]
        assert_exact(tropical_projection(obj(V), obj(X), semiring=sr), [ref_projection(s, V, x) for x in X])


def test_tropical_projection_mixed_huge_exact_and_float_raises_tropix_error():
    with pytest.raises(FloatOverflowError):
        tropical_projection(obj([[0, H, -INF], [0, 1, 2]]), np.array([0.0, 1.0, 2.0]))


def test_contains_with_tol_huge_exact():
    P = convex_hull(obj([[0, H, -INF], [0, 1, 2]]))
    assert P.contains(obj([0, H, -INF]), tol=1e-9)
    assert not P.contains(obj([0, H + 1, -INF]), tol=Fraction(1, 2))
    assert P.contains(obj([0, H + 1, -INF]), tol=1)
    assert P.contains(np.array([0.0, 1.0, 2.0]), tol=1e-9)  # (a float point, exact generators beyond float)
    Q = convex_hull(obj([[0, -H, INF], [0, 1, 2]]), semiring="min")
    assert Q.contains(obj([5, 5 - H, INF]), tol=1e-9) and not Q.contains(obj([0, 1 - H, INF]), tol=1e-9)


def test_contains_with_tol_exact_beyond_2_53():
    # float64 rounded 2**60 + 1 to 2**60 and accepted a point at distance 1
    P = convex_hull([[0, 2**60 + 1]])
    assert not P.contains([0, 2**60], tol=0.5)
    assert P.contains([0, 2**60], tol=1) and P.contains([7, 2**60 + 8], tol=0.5)


def test_ascii_huge_exact_generators():
    small = [[0, 0, 0], [0, 2, 5], [0, 4, 1]]
    big = obj([[H + v for v in row] for row in small])
    assert convex_hull(big).ascii() == convex_hull(small).ascii()
    with pytest.raises(FloatOverflowError):
        convex_hull(obj([[0, H, 5], [0, 1, 2]])).ascii()


# ------------------------------------------------------------------------------------------- torch, strict
def test_tropical_projection_torch_int_returns_torch():
    import torch
    V = [[0, 0, 0], [0, 2, 5]]
    for dtype in (torch.int64, torch.int32, torch.int8):
        for sr, s in SENSES.items():
            out = tropical_projection(torch.tensor(V, dtype=dtype), torch.tensor([0, 3, 3], dtype=dtype), semiring=sr)
            assert isinstance(out, torch.Tensor) and out.dtype == torch.int64
            assert out.tolist() == ref_projection(s, V, [0, 3, 3])
    # int8 differences wrap (100 - (-100)); Python integers do not
    V8, X8 = [[0, -100, 100], [0, 100, -100]], [[100, -100, 0], [-100, 100, 100]]
    out = tropical_projection(torch.tensor(V8, dtype=torch.int8), torch.tensor(X8, dtype=torch.int8))
    assert out.dtype == torch.int64 and out.tolist() == [ref_projection(1, V8, x) for x in X8]
    P = convex_hull(torch.tensor(V))
    assert isinstance(P.project(torch.tensor([0, 3, 3])), torch.Tensor)


def test_tropical_projection_torch_int_beside_float_is_float():
    import torch
    V, x = torch.tensor([[0, 0, 0], [0, 2, 5]]), torch.tensor([0.0, 3.0, 3.0], dtype=torch.float32)
    for a, b in ((V, x), (V.float(), x.long())):
        out = tropical_projection(a, b)  # (was BackendMismatchError: the ints went to NumPy)
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.tolist() == [0.0, 0.0, 3.0]


def test_tropical_projection_torch_int_beyond_int64_stays_exact():
    import torch
    V, x = [[0, -(2**62), 5]], [-(2**63), 0, 3]
    out = tropical_projection(torch.tensor(V), torch.tensor(x))
    want = ref_projection(1, V, x)
    assert min(want) < -(2**63)  # not representable in int64: the exact NumPy object array, as matmul
    assert isinstance(out, np.ndarray) and out.dtype == object and out.tolist() == want


def test_tropical_projection_array_api_strict_int():
    import array_api_strict as xp
    out = tropical_projection(xp.asarray([[0, 0, 0], [0, 2, 5]]), xp.asarray([0, 3, 3]), semiring="min")
    assert out.dtype == xp.int64 and np.asarray(out).tolist() == [1, 3, 3]


# ------------------------------------------------------------------------------------------- determinant
@pytest.mark.parametrize("sr", sorted(SENSES))
def test_determinant_huge_exact(sr):
    s = SENSES[sr]
    for A in cases(s, 25) + [[[s * H, zero(s)], [0, 1]], [[Fraction(s * H, 3), zero(s)], [0, 1]]]:
        opt, perms = ref_assignments(s, A)
        t = tdet(obj(A), semiring=sr)
        assert t == opt and (isinstance(t, float) if opt == zero(s) else isinstance(t, (int, Fraction)))
        assert optimal_permutations(obj(A), semiring=sr) == perms
        assert optimal_permutation(obj(A), semiring=sr) in (perms or [None])
        assert is_singular(obj(A), semiring=sr) == (len(perms) != 1)


def test_a_float_beside_a_huge_exact_entry_is_a_float_overflow_error():
    # validation made the whole input float64 and float(10**400) raised a raw OverflowError
    from tropix.errors import FloatOverflowError
    from tropix.tropical import matmul as mm

    with pytest.raises(FloatOverflowError, match="beyond the float range"):
        mm([[10**400, 1.5], [0, 1]], [[0, 0], [0, 1]])


def test_a_huge_exact_tolerance_is_accepted_and_compared_exactly():
    from tropix.tropical import optimal_permutations
    from tropix.tropical._args import check_real
    from tropix.errors import ToleranceError

    assert check_real(10**400, "tol", minimum=0) == 10**400
    with pytest.raises(ToleranceError, match=">= 0"):
        check_real(-10**400, "tol", minimum=0)
    with pytest.raises(ToleranceError, match="<= 1"):
        check_real(Fraction(10**400, 3), "tol", maximum=1)
    # every permutation is within a huge tolerance of the optimum
    assert sorted(optimal_permutations([[1, 2], [3, 4]], tol=10**400)) == [(0, 1), (1, 0)]


def test_summaries_of_integers_beyond_pythons_string_limit():
    from tropix._repr import summary

    assert summary(10**5000) == "<an integer of about 5001 digits>"
    assert summary(-(10**5000)).startswith("-<an integer")
    assert summary(Fraction(10**5000 + 1, 3)).endswith("/3")
    assert "5001 digits" in summary(np.array([10**5000, 1], dtype=object))
