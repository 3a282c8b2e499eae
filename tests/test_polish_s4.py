"""Regression tests for the correctness polish of session 4 (task U).

1. ``tt_compressed``: certified bounds near gradual underflow and with a large ``d_v`` (the dense rounding
   term needs the true ``d_v``; the TT contractions an underflow term), float32 inputs.
2. The tropical polynomial parser: no infinity or NaN literal, ``inf``/``nan`` are not variable names.
3. ``p_adic_valuation`` / ``tropicalize``: specific tropix errors (ToleranceError for a bad prime, ParseError
   for a non-rational, NaNError), ``v_p(0) = +inf``.
4. ``tdet``: exact result iff every finite entry is exact, for lists and NumPy object arrays alike.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import compress_projections, tt_compressed
from tropix.errors import ConventionError, EmptyInputError, NaNError, ParseError, ToleranceError
from tropix.tropical import MaxPlus, MinPlus, TropicalPolynomial, tdet
from tropix.tropical.parse import p_adic_valuation, parse_polynomial, tropicalize

SUB = float(np.finfo(np.float64).smallest_subnormal)


# -- 1. tt_compressed near underflow ------------------------------------------------------------------------
def _tiny_values(seed, n, D=256, d_v=1024, bits=10, shift=545):
    """Hidden states and value weights ``int * 2^-shift``: every product ``x w`` is an integer multiple of
    ``2^-2 shift`` (exact in Python ints) and the values ``x W_v`` lie a few hundred subnormals above 0."""
    rng = np.random.default_rng(seed)
    Xi = rng.integers(-(2**bits), 2**bits, size=(n, D))
    Wi = rng.integers(-(2**bits), 2**bits, size=(D, d_v))
    X, Wv = np.ldexp(Xi.astype(np.float64), -shift), np.ldexp(Wi.astype(np.float64), -shift)
    Wq, Wk = rng.normal(size=(D, 2)), rng.normal(size=(D, 2))
    return X, (Wq, Wk, Wv), Xi.astype(object) @ Wi.astype(object)  # exact values in units 2^-2 shift


def _error_in_subnormals(out, exact_units, shift=545):
    """``|out_i - exact_i|_2`` in units of the smallest subnormal, from exact integer differences."""
    sh = 2 * shift - 1074
    out_units = np.array([[int(np.ldexp(o, 1074)) * 2**sh for o in row] for row in np.asarray(out)], dtype=object)
    diff = (out_units - exact_units).astype(float) / 2**sh
    return np.sqrt(np.sum(diff**2, axis=1))


@pytest.mark.parametrize("seed", [0, 1])
def test_tt_compressed_bound_holds_for_subnormal_values(seed):
    # one key: the softmax weight is exactly 1, so the exact output is the exact value x W_v (integers);
    # the float64 output carries the underflow of the TT contraction (about 100 subnormals here), which
    # the old bound (24 subnormals: d_v = 1 in rounding_bound, no underflow term) did not cover
    X, W, exact = _tiny_values(seed, n=1)
    r = tt_compressed(X, X, compress_projections(*W, eps=1e-12), weights=W, check=True)
    assert 0 < np.abs(np.asarray(r.output)).max() < 1e-300  # really in the subnormal range
    err = _error_in_subnormals(r.output, exact)
    assert np.all(err > 24)  # the regime the old bound missed
    assert np.all(err * SUB <= r.bound)


def test_tt_compressed_attention_matrix_bound_holds_for_subnormal_values():
    # two keys whose scores are ~1e-320: the exact weights are 1/2 up to a relative 1e-600, far below the
    # subnormal resolution; the TT attention-matrix path contracts P̃ with subnormal values (error about 70
    # subnormals; the old bound was 28)
    X, W, exact = _tiny_values(2, n=2)
    r = tt_compressed(X, X, compress_projections(*W, eps=1e-12), attention_tt_eps=0.5, weights=W, check=True)
    total = np.array([[sum(exact[:, c]) for c in range(exact.shape[1])]] * 2, dtype=object)  # 2 * exact mean
    out2 = np.asarray(r.output) * 2  # exact scaling by a power of two
    err = _error_in_subnormals(out2, total) / 2
    assert np.all(err > 28)
    assert np.all(err * SUB <= r.bound)


@pytest.mark.parametrize("attention_tt_eps", [None, 0.3])
def test_tt_compressed_float32_inputs_large_dv(attention_tt_eps):
    # float32 torch hidden states and weights, d_v = 96 != d = 8: the output is float64 (all arithmetic is
    # float64, as documented) and check=True holds with the exact-weights reference
    rng = np.random.default_rng(3)
    W = [rng.normal(size=(64, 8)) / 8, rng.normal(size=(64, 8)) / 8, rng.normal(size=(64, 96))]
    X = torch.tensor(rng.normal(size=(12, 64)), dtype=torch.float32)
    W32 = [torch.tensor(w, dtype=torch.float32) for w in W]
    T = compress_projections(*W32, eps=0.05)
    r = tt_compressed(X, X, T, weights=W32, check=True, attention_tt_eps=attention_tt_eps)
    assert isinstance(r.output, torch.Tensor) and r.output.dtype == torch.float64
    assert tuple(r.output.shape) == (12, 96)
    assert np.all(np.isfinite(r.bound)) and np.all(r.bound < r.vmax)


# -- 2. the polynomial parser has no infinity/NaN literal ---------------------------------------------------
@pytest.mark.parametrize("text", [
    "max(0, inf)", "nan", "max(nan, x)", "max(-inf, x)", "max(0, x - inf)", "Infinity", "INF + x",
    "x ⊕ -inf", "3*x ⊗ NaN", "x^inf", "(x ⊕ 0)^nan", "min(infinity, y)", "max(0, 2*nan)",
])
def test_parser_rejects_inf_and_nan_words(text):
    # before: 'max(-inf, x)' parsed as max(x, -1*inf) with a *variable* called 'inf', 'nan' as max(nan)
    with pytest.raises(ParseError, match="reserved"):
        parse_polynomial(text)
    with pytest.raises(ValueError):  # ParseError stays a ValueError
        TropicalPolynomial.parse(text)


def test_parser_reserved_names_in_variables_and_lookalikes():
    with pytest.raises(ParseError, match="reserved"):
        parse_polynomial("max(0, x)", variables=["x", "nan"])
    # names that merely start with a reserved word are ordinary variables
    p = parse_polynomial("max(0, infx, 1 + nan_y)")
    assert p.variables == ("infx", "nan_y")
    assert p([[5, 1]]).tolist() == [5]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["x", "y", "0", "1", "2.5", "1/2", "inf", "nan", "Infinity", "-", "+", "*",
                                 "⊕", "⊗", "(", ")", "^", "2", ",", "max(", "min("]), min_size=1, max_size=9))
def test_parser_output_is_always_nan_free_and_finite(tokens):
    text = " ".join(tokens)
    try:
        p = parse_polynomial(text)
    except (ParseError, ConventionError, EmptyInputError):
        return
    assert not {"inf", "nan", "infinity"} & {v.lower() for v in p.variables}
    C = np.asarray(p.coefficients, dtype=np.float64)
    E = np.asarray(p.exponents, dtype=np.float64)
    assert np.all(np.isfinite(C)) and np.all(np.isfinite(E))


# -- 3. p_adic_valuation / tropicalize raise specific tropix errors -----------------------------------------
def _brute_valuation(q, p):
    """v with q = p^v a/b, found by trying every |v| <= 64 (independent of the implementation)."""
    q = Fraction(q)
    for v in range(-64, 65):
        r = q / Fraction(p) ** v
        if r.numerator % p and r.denominator % p:
            return v
    raise AssertionError("valuation out of the brute-force range")


@settings(max_examples=100, deadline=None)
@given(st.fractions(max_denominator=10**6).filter(lambda f: f != 0), st.sampled_from([2, 3, 5, 7, 101]))
def test_valuation_matches_brute_force(q, p):
    assert p_adic_valuation(q, p) == _brute_valuation(q, p)
    assert p_adic_valuation(sympy.Rational(q.numerator, q.denominator), np.int64(p)) == _brute_valuation(q, p)
    assert p_adic_valuation(f"{q.numerator}/{q.denominator}", p) == _brute_valuation(q, p)


def test_valuation_of_zero_is_infinity():
    # the usual convention v_p(0) = +inf (the min-plus tropical zero); before: a bare ValueError
    assert p_adic_valuation(0, 3) == math.inf and p_adic_valuation(Fraction(0), 2) == math.inf


@pytest.mark.parametrize("p", [1, 0, -2, 4, 9, 2.0, "2", None, True])
def test_valuation_bad_prime(p):
    # before: p = 1 looped forever, p = 0 raised ZeroDivisionError, p = 4 returned a number
    with pytest.raises(ToleranceError, match="not a prime"):
        p_adic_valuation(12, p)
    with pytest.raises(ToleranceError, match="not a prime"):
        tropicalize({(1,): 1}, p)


@pytest.mark.parametrize("q, err, msg", [
    (float("nan"), NaNError, "NaN"), (np.float32("nan"), NaNError, "NaN"), (0.1, ParseError, "float"),
    (float("inf"), ParseError, "float"), (np.float64(2.0), ParseError, "float"), ("abc", ParseError, "not a rational"),
    ("1/0", ParseError, "not a rational"), (None, ParseError, "not a rational"), (True, ParseError, "bool"),
    (sympy.sqrt(2), ParseError, "not a rational"), (sympy.nan, NaNError, "NaN"), (sympy.Float(0.5), ParseError, "Float"),
])
def test_valuation_bad_number(q, err, msg):
    # before: ValueError/TypeError/OverflowError from Fraction(), or a silently wrong v_5(0.1) = 0
    with pytest.raises(err, match=msg):
        p_adic_valuation(q, 5)
    with pytest.raises(ValueError):  # every one of them is still a ValueError
        p_adic_valuation(q, 5)


def test_tropicalize_bad_inputs_raise_specific_errors():
    x, y = sympy.symbols("x y")
    cases = [
        ({(1,): 0.5}, {}, ParseError, "float"),
        ({(1,): float("nan")}, {}, NaNError, "NaN"),
        ({(0,): 0, (1,): 0}, {}, EmptyInputError, "every coefficient is 0"),
        (sympy.sin(x), {}, ParseError, "not a polynomial"),
        (1 / x, {}, ParseError, "not a polynomial"),
        (x + sympy.nan, {}, NaNError, "NaN"),
        (sympy.sqrt(2) * x, {}, ParseError, "not rational"),
        (0.5 * x + 1, {}, ParseError, "float"),
        (x * y, {"gens": [x]}, ParseError, "in the variables"),
        (x, {"gens": [3]}, ParseError, "sympy symbols"),
    ]
    for poly, kw, err, msg in cases:
        with pytest.raises(err, match=msg):
            tropicalize(poly, 2, **kw)
    with pytest.raises(TypeError):  # a string is not parsed (never sympified)
        tropicalize("x + 1", 2)


def test_tropicalize_still_exact_with_zero_terms():
    # zero coefficients are absent terms; valuations from the brute force, both conventions
    f = {(0,): Fraction(4, 9), (1,): 0, (2,): 18, (3,): Fraction(1, 6)}
    for p in (2, 3):
        want = {(e,): _brute_valuation(c, p) for (e,), c in f.items() if c != 0}
        assert tropicalize(f, p).terms() == want
        assert tropicalize(f, p, semiring=MaxPlus).terms() == {e: -v for e, v in want.items()}


# -- 4. tdet: result type of mixed float / exact input ------------------------------------------------------
def _object(rows):
    a = np.empty((len(rows), len(rows[0])), dtype=object)
    a[:] = rows
    return a


def _brute_tdet(rows, S):
    """Best permutation weight by enumeration, in exact arithmetic on the entries' values (floats at their
    binary values); None when every permutation meets a tropical zero."""
    n = len(rows)
    best = None
    for perm in itertools.permutations(range(n)):
        vals = [rows[i][perm[i]] for i in range(n)]
        if any(isinstance(v, float) and math.isinf(v) for v in vals):
            continue
        w = sum(Fraction(v) if not isinstance(v, sympy.Basic) else Fraction(int(v.p), int(v.q)) for v in vals)
        best = w if best is None else (max(best, w) if S.sense == 1 else min(best, w))
    return best


_entries = st.one_of(
    st.integers(-5, 5),
    st.fractions(min_value=-5, max_value=5, max_denominator=7),
    st.floats(-5, 5, allow_nan=False, width=64).map(lambda f: round(f, 2)),
    st.just(float("-inf")),
)


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(_entries, min_size=n, max_size=n), min_size=n,
                                                     max_size=n)),
       st.sampled_from([MaxPlus, MinPlus]))
def test_tdet_mixed_input_type_rule(rows, S):
    if S is MinPlus:
        rows = [[float("inf") if isinstance(v, float) and v == float("-inf") else v for v in r] for r in rows]
    has_float = any(isinstance(v, float) and math.isfinite(v) for r in rows for v in r)
    want = _brute_tdet(rows, S)
    for A in (rows, _object(rows)):  # a list and a NumPy object array give the same type and value
        got = tdet(A, semiring=S)
        if want is None:
            assert got == S.zero
        elif has_float:
            assert type(got) is float and math.isclose(got, float(want), rel_tol=1e-12, abs_tol=1e-12)
        else:
            assert type(got) in (int, Fraction) and got == want


def test_tdet_object_array_with_float_and_fraction_is_float():
    # before: the object array gave Fraction(7, 3) (the float taken at its binary value) while the same list
    # gave 2.3333333333333335; and a sympy Float in an object array raised AttributeError
    rows = [[1.5, Fraction(1, 3)], [2, 0]]
    got = tdet(_object(rows))
    assert type(got) is float and got == float(Fraction(7, 3))
    got = tdet(_object([[sympy.Float(0.5), sympy.Rational(1, 3)], [1, 2]]))
    assert type(got) is float and got == 2.5
    # exact entries with tropical zeros stay exact (inf is not a float *value*)
    assert tdet(_object([[Fraction(1, 2), float("-inf")], [2, sympy.Rational(1, 4)]])) == Fraction(3, 4)
    assert type(tdet(_object([[Fraction(1, 2), float("-inf")], [2, sympy.Rational(1, 4)]]))) is Fraction
