"""Tropical polynomials: construction, evaluation on every backend, algebra, parsing, sympy, p-adic tropicalisation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import MaxPlus, MinPlus
from tropix.errors import ConventionError, EmptyInputError, NaNError, ParseError, ShapeError
from tropix.tropical import TropicalPolynomial
from tropix.tropical.parse import p_adic_valuation, parse_polynomial

SEMIRINGS = [MaxPlus, MinPlus]
rat = st.fractions(min_value=-5, max_value=5, max_denominator=4)


def brute(terms: dict, x, sense):
    vals = [c + sum(a * xi for a, xi in zip(e, x)) for e, c in terms.items()]
    return max(vals) if sense == 1 else min(vals)


@st.composite
def polys(draw, nvars=None, max_terms=6):
    n = draw(st.integers(1, 3)) if nvars is None else nvars
    exps = draw(st.lists(st.tuples(*[st.integers(0, 3)] * n), min_size=1, max_size=max_terms, unique=True))
    coefs = draw(st.lists(rat, min_size=len(exps), max_size=len(exps)))
    S = draw(st.sampled_from(SEMIRINGS))
    return dict(zip(exps, coefs)), S


# ---------------------------------------------------------------------------------------------------
# construction and errors


def test_merges_equal_exponents_with_the_semiring_sum_and_drops_zero_terms():
    p = TropicalPolynomial.from_arrays([[1, 0], [1, 0], [0, 1]], [2, 5, float("-inf")], semiring=MaxPlus)
    assert p.terms() == {(1, 0): 5}
    q = TropicalPolynomial.from_arrays([[1, 0], [1, 0]], [2, 5], semiring=MinPlus)
    assert q.terms() == {(1, 0): 2}


def test_bad_input_raises_specific_errors():
    with pytest.raises(EmptyInputError):
        TropicalPolynomial({})
    with pytest.raises(EmptyInputError):
        TropicalPolynomial({(1,): float("-inf")})
    with pytest.raises(ShapeError):
        TropicalPolynomial({(1, 0): 0, (1,): 0})
    with pytest.raises(NaNError):
        TropicalPolynomial({(1, 0): float("nan")})
    with pytest.raises(NaNError):
        TropicalPolynomial.from_arrays(np.array([[0.0], [1.0]]), np.array([0.0, np.nan]))
    with pytest.raises(ConventionError):
        TropicalPolynomial({(1,): float("inf")}, semiring=MaxPlus)
    with pytest.raises(ShapeError):
        TropicalPolynomial.from_arrays([[0, 1], [1, 0]], [0, 1, 2])
    p = TropicalPolynomial({(1, 0): 0})
    with pytest.raises(ShapeError):
        p([1, 2, 3])
    with pytest.raises(NaNError):
        p([float("nan"), 1.0])


def test_exactness_is_kept():
    p = TropicalPolynomial({(1,): Fraction(1, 3), (0,): sympy.Rational(1, 2)})
    assert p.is_exact
    v = p(Fraction(1, 6))
    assert v == Fraction(1, 2) and isinstance(v, Fraction)
    assert p(Fraction(1, 3)) == Fraction(2, 3)
    q = TropicalPolynomial({(1,): 0.5, (0,): 0})
    assert q.coefficients.dtype == np.float64


# ---------------------------------------------------------------------------------------------------
# evaluation


@given(polys(), st.lists(st.tuples(rat, rat, rat), min_size=1, max_size=4))
def test_evaluation_and_dominant_terms_match_brute_force(ps, pts):
    terms, S = ps
    p = TropicalPolynomial(terms, semiring=S)
    n = p.n_vars
    X = [list(x[:n]) for x in pts]
    vals = p(X)
    dom = p.dominant_terms(X)
    merged = p.terms()
    for i, x in enumerate(X):
        expect = brute(merged, x, S.sense)
        assert vals[i] == expect
        for j, (e, c) in enumerate(merged.items()):
            assert dom[i, j] == (c + sum(a * xi for a, xi in zip(e, x)) == expect)


def test_backends_agree_with_numpy(backend):
    rng = np.random.default_rng(0)
    E = rng.integers(0, 4, size=(7, 3))
    c = rng.normal(size=7)
    X = rng.normal(size=(5, 3))
    for S in SEMIRINGS:
        p = TropicalPolynomial.from_arrays(E, c, semiring=S)
        ref = np.array([brute(p.terms(), x, S.sense) for x in X])
        np.testing.assert_allclose(to_np(p(backend(X))), ref, rtol=1e-12, atol=1e-12)
        mask = to_np(p.dominant_terms(backend(X)))
        assert mask.shape == (5, p.n_terms) and mask.any(axis=1).all()


def test_torch_gradient_is_the_dominant_exponent():
    keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    p = TropicalPolynomial.from_arrays(keys, np.array([0.0, 0.5, 0.0]))
    q = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    p(q).backward()
    assert q.grad.tolist() == [1.0, 0.0]  # term (1, 0) wins: 2 > 1.5 > -3


def test_real_exponents_attention_score():
    rng = np.random.default_rng(1)
    K = rng.normal(size=(9, 4))
    b = rng.normal(size=9)
    Q = rng.normal(size=(6, 4))
    p = TropicalPolynomial.from_arrays(K, b)
    np.testing.assert_allclose(p(Q), np.max(b + Q @ K.T, axis=1), rtol=1e-13)


# ---------------------------------------------------------------------------------------------------
# algebra


@given(polys(nvars=2), polys(nvars=2), st.lists(st.tuples(rat, rat), min_size=1, max_size=3))
def test_sum_and_product_are_pointwise_max_and_plus(a, b, pts):
    (ta, S), (tb, _) = a, b
    p, q = TropicalPolynomial(ta, semiring=S), TropicalPolynomial(tb, semiring=S)
    add = max if S.sense == 1 else min
    for x in pts:
        assert (p + q)(list(x)) == add(p(list(x)), q(list(x)))
        assert (p * q)(list(x)) == p(list(x)) + q(list(x))
        assert (p**3)(list(x)) == 3 * p(list(x))
        assert (p * 2)(list(x)) == p(list(x)) + 2


def test_mixing_semirings_is_an_error_variables_are_matched_by_name():
    from tropix.errors import SemiringMismatchError

    with pytest.raises(SemiringMismatchError):
        TropicalPolynomial({(1,): 0}) + TropicalPolynomial({(1,): 0}, semiring=MinPlus)
    # x (in x) times x + y (in x, y): 2x + y in (x, y), the variables matched by name
    p = TropicalPolynomial({(1,): 0}) * TropicalPolynomial({(1, 1): 0})
    assert p.variables == ("x", "y") and p == TropicalPolynomial({(2, 1): 0})


# ---------------------------------------------------------------------------------------------------
# univariate roots and factorisation


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(-6, 6)), min_size=1, max_size=6, unique_by=lambda t: t[0]),
       st.sampled_from(SEMIRINGS))
def test_roots_and_factorisation(terms, S):
    p = TropicalPolynomial(dict(terms), semiring=S)
    roots = p.roots()
    degs = [e[0] for e in p.terms()]
    assert sum(m for _, m in roots) == max(degs) - min(degs) if len(roots) else True
    f = p.factor()
    grid = [Fraction(k, 4) for k in range(-40, 41)] + [r for r, _ in roots]
    for x in grid:
        assert f(x) == p(x)
        # a root is exactly where at least two terms attain the optimum
        ntie = int(np.sum(p.dominant_terms([x])))
        assert (ntie >= 2) == any(x == r for r, _ in roots)
    assert all(f.expand()(x) == p(x) for x in grid)


def test_factor_printing_and_multiplicity():
    p = TropicalPolynomial.parse("max(0, 2*x)")
    assert p.roots() == ((0, 2),)
    assert str(p.factor()) == "0 ⊗ (x ⊕ 0)^2"
    with pytest.raises(ShapeError):
        TropicalPolynomial({(1, 1): 0}).roots()


# ---------------------------------------------------------------------------------------------------
# parsing


@given(polys())
def test_printing_round_trips_through_the_parser(ps):
    terms, S = ps
    p = TropicalPolynomial(terms, semiring=S)
    q = parse_polynomial(str(p), variables=p.variables)
    assert q == p


def test_tropical_notation_equals_max_notation():
    a = parse_polynomial("3*x^2 ⊕ x ⊗ y ⊕ -1 ⊕ y^(1/2)")
    b = parse_polynomial("max(3 + 2*x, x + y, -1, 1/2*y)")
    assert a == b
    c = parse_polynomial("(x + 0)^2 * (y + 1)")  # products of sums are expanded
    d = TropicalPolynomial({(2, 0): 1, (1, 0): 1, (0, 0): 1, (2, 1): 0, (1, 1): 0, (0, 1): 0})
    assert c == d
    assert parse_polynomial("2x y^3 + 1") == TropicalPolynomial({(1, 3): 2, (0, 0): 1})


@pytest.mark.parametrize(
    "text, pos",
    [
        ("max(0, x +* 1)", 10),
        ("max(0, x", 8),
        ("x ^ ", 4),
        ("__import__('os')", 11),
        ("x $ y", 2),
        ("max(0, min(x, y))", 7),
        ("", 0),
        ("3 + ", 4),
    ],
)
def test_parse_errors_report_the_position(text, pos):
    with pytest.raises(ParseError) as info:
        parse_polynomial(text)
    assert f"position {pos}" in str(info.value)


def test_parse_rejects_pathological_input_cleanly():
    with pytest.raises(ParseError):
        parse_polynomial("(" * 5000 + "x" + ")" * 5000)
    with pytest.raises(ParseError):
        parse_polynomial("max(" * 5000 + "x" + ")" * 5000)
    with pytest.raises(ParseError):
        parse_polynomial("(x + y + z + 0)^5000")
    assert parse_polynomial("((x))") == parse_polynomial("x")


def test_parse_semiring_rules_and_variables():
    assert parse_polynomial("min(x, y)").semiring is MinPlus
    with pytest.raises(ConventionError):
        parse_polynomial("min(x, y)", semiring=MaxPlus)
    p = parse_polynomial("x + y", semiring="min", variables=["y", "x"])
    assert p.variables == ("y", "x") and p.semiring is MinPlus
    with pytest.raises(ParseError):
        parse_polynomial("x + z", variables=["x", "y"])
    assert parse_polynomial("max(0.5, x)").coefficients.dtype == np.float64
    assert parse_polynomial("max(1/3, x)").coefficients[0] == Fraction(1, 3)


# ---------------------------------------------------------------------------------------------------
# sympy and p-adic


@given(st.lists(st.tuples(rat, rat, rat), min_size=1, max_size=5), st.tuples(rat, rat))
def test_from_sympy_evaluates_like_sympy(forms, point):
    x, y = sympy.symbols("x y")
    exprs = [sympy.Rational(c.numerator, c.denominator) + sympy.Rational(a.numerator, a.denominator) * x
             + sympy.Rational(b.numerator, b.denominator) * y for c, a, b in forms]
    for F in (sympy.Max, sympy.Min):
        e = F(*exprs, evaluate=False)
        p = TropicalPolynomial.from_sympy(e, variables=["x", "y"])
        ref = e.subs({x: sympy.Rational(point[0].numerator, point[0].denominator),
                      y: sympy.Rational(point[1].numerator, point[1].denominator)})
        assert p(list(point)) == Fraction(int(ref.p), int(ref.q))


def test_from_sympy_rejects_non_linear_and_strings():
    x, y = sympy.symbols("x y")
    with pytest.raises(ParseError):
        TropicalPolynomial.from_sympy(sympy.Max(x * y, 1))
    with pytest.raises(TypeError):
        TropicalPolynomial.from_sympy("Max(x, 1)")


@pytest.mark.parametrize("p", [2, 3, 5])
def test_tropical_roots_are_the_valuations_of_the_roots(p):
    """Fundamental theorem (univariate): the tropical roots of trop(f) are the valuations of f's roots."""
    rng = np.random.default_rng(p)
    x = sympy.Symbol("x")
    for _ in range(5):
        ks = rng.integers(-3, 4, size=4).tolist()
        units = [int(u) for u in rng.integers(1, 50, size=4) if u % p] or [1]
        f = sympy.expand(sympy.prod([(x - sympy.Rational(p) ** k * units[i % len(units)]) for i, k in enumerate(ks)]))
        T = TropicalPolynomial.tropicalize(f, p)
        got = sorted(r for r, m in T.roots() for _ in range(m))
        assert got == sorted(ks)
        # max-plus convention: coefficients negated
        Tm = TropicalPolynomial.tropicalize(f, p, semiring=MaxPlus)
        assert sorted(r for r, m in Tm.roots() for _ in range(m)) == sorted(-k for k in ks)


def test_valuation_and_bad_prime():
    assert p_adic_valuation(Fraction(-40, 9), 2) == 3 and p_adic_valuation(Fraction(-40, 9), 3) == -2
    with pytest.raises(ValueError):
        TropicalPolynomial.tropicalize({(1,): 1}, 4)


def test_multivariate_tropicalisation_coefficients():
    x, y = sympy.symbols("x y")
    f = 12 * x**2 + sympy.Rational(3, 8) * x * y - 7
    T = TropicalPolynomial.tropicalize(f, 2)
    assert T.terms() == {(2, 0): 2, (1, 1): -3, (0, 0): 0}


@pytest.mark.parametrize("semiring", [MaxPlus, MinPlus])
def test_str_parses_back_with_a_negative_first_exponent(semiring):
    # the coefficient was joined to a leading "-x" by "+": '1 + -x' is no valid linear form, so the printed
    # polynomial (and its repr) did not parse back
    for terms in ({(-1,): 1, (0,): 2}, {(-2, 1): Fraction(-3, 2), (1, 1): 0}, {(-1, -1): 3, (0, 1): 1}):
        p = TropicalPolynomial(terms, semiring=semiring)
        assert "+ -" not in str(p)
        assert TropicalPolynomial.parse(str(p), semiring=semiring) == p
    assert str(TropicalPolynomial({(-1,): 1, (0,): 2})) == "max(1 - x, 2)"


def test_polynomial_in_no_variables_evaluates_exactly():
    # the point () came in as an empty float64 array, so an exact constant evaluated to a float
    p = TropicalPolynomial({(): Fraction(1, 3)})
    assert p([]) == Fraction(1, 3) and isinstance(p([]), Fraction)
    assert list(p(np.zeros((2, 0)))) == [Fraction(1, 3)] * 2
    assert isinstance(TropicalPolynomial({(): 0.5})([]), float)
