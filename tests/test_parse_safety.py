"""The polynomial parser on hostile input: deep nesting, expansions that explode, other scripts' digits, long strings.
Every one ends in a ParseError, soon, with a message of bounded length."""

from __future__ import annotations

import time

import pytest

from tropix.errors import ParseError
from tropix.tropical import TropicalPolynomial
from tropix.tropical.parse import parse_polynomial


@pytest.mark.parametrize("text", [
    "max(" + "(" * 3000 + "1" + ")" * 3000 + ", x)",  # a parenthesised coefficient
    "x^" + "(" * 3000 + "1" + ")" * 3000,  # a parenthesised exponent
    "max(" + "(" * 3000 + "-1/2" + ")" * 3000 + ", x)",
])
def test_deeply_nested_coefficients_raise_parse_error(text):
    """A parenthesised coefficient or exponent did not count toward the nesting limit: 3000 parentheses were a raw
    RecursionError."""
    with pytest.raises(ParseError, match="nested deeper than 100"):
        parse_polynomial(text)
    ok = "(" * 50 + "1/2" + ")" * 50
    assert parse_polynomial(f"max({ok}*x, 0)") == parse_polynomial("max(1/2*x, 0)")
    assert parse_polynomial(f"x^{ok}") == parse_polynomial("x^(1/2)")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("text", ["((x + 0)^1000)^1000", "(x + y + 0)^1000", "(x + y + z + w + 0)^1000",
                                  "(x + 0)^1000 * (x + 0)^1000 * (x + 0)^1000 * (x + 0)^1000 * (x + 0)^1000"])
def test_explosive_expansions_end_soon_in_a_parse_error(text):
    """Powers were expanded term by term and the size checked only after each step was built: the 19 characters
    "((x + 0)^1000)^1000" built a billion terms, "(x + y + 0)^1000" (14 characters) ran for hours."""
    t0 = time.perf_counter()
    with pytest.raises(ParseError, match="more than"):
        parse_polynomial(text)
    assert time.perf_counter() - t0 < 60


def test_powers_are_expanded_exactly():
    """The expansion (now over exponent tuples) merges equal exponents keeping both extreme coefficients."""
    p = parse_polynomial("(x + 0)^1000")
    assert p.n_terms == 1001 and p == TropicalPolynomial({k: 0 for k in range(1001)})
    for S in ("max", "min"):
        q = parse_polynomial("(x ⊕ y^(1/2) ⊕ 1/3 ⊕ 0.5)^3 ⊗ (x ⊕ 2)", semiring=S)
        pick = max if S == "max" else min
        terms: dict = {}
        base = [((1, 0), 0), ((0, 0.5), 0), ((0, 0), 1 / 3), ((0, 0), 0.5)]
        for a in base:
            for b in base:
                for c in base:
                    for d in (((1, 0), 0), ((0, 0), 2)):
                        e = tuple(sum(t[0][i] for t in (a, b, c, d)) for i in range(2))
                        v = sum(t[1] for t in (a, b, c, d))
                        terms[e] = pick(terms.get(e, v), v)
        ref = TropicalPolynomial(terms, semiring=S)
        pts = [[0.3, -1.2], [2.0, 5.0], [-4.0, 0.0]]
        assert [float(v) for v in q(pts)] == pytest.approx([float(v) for v in ref(pts)], abs=1e-12)
        assert q.n_terms == ref.n_terms


@pytest.mark.parametrize("text", ["max(٣, x)", "max(0, x + ３)", "x^٢", "max(1/٢, x)"])
def test_digits_of_other_scripts_are_not_numbers(text):
    """The tokenizer's ``\\d`` matched any script's digits: "max(٣, x)" (an Arabic-Indic 3) parsed as max(3, x)."""
    with pytest.raises(ParseError, match="unexpected character"):
        parse_polynomial(text)


def test_error_messages_of_long_strings_are_bounded():
    """Every message repeated the whole string: 100000 characters of input gave a 100000-character message.  Now a
    window around the position, with the length."""
    text = "max(0, " + "x + " * 20000 + "$)"
    with pytest.raises(ParseError) as info:
        parse_polynomial(text)
    msg = str(info.value)
    assert len(msg) < 300 and "position 80007" in msg and "$" in msg and f"({len(text)} characters)" in msg
    with pytest.raises(ParseError) as info:
        parse_polynomial("max(" + "9" * 5000 + ".5, x)")
    assert len(str(info.value)) < 300 and "not finite" in str(info.value)
    with pytest.raises(ParseError) as info:  # (short strings: whole, as before)
        parse_polynomial("max(0, x +* 1)")
    assert "in 'max(0, x +* 1)'" in str(info.value)
