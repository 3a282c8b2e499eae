"""A small safe parser for tropical polynomials, and conversions from sympy (no ``eval``, no ``sympify``).

Two notations are accepted.

**Max/min of linear forms** (the function itself): ``max(0, x + 1, 2*y - 1/2)`` or ``min(...)``.  Inside,
each argument is a linear form ``c + a1*x1 + ...``: the constant is the coefficient and the coefficients
of the variables are the exponents (integers, fractions ``p/q`` or decimals).  Nested ``max`` inside
``max`` is flattened.  The semiring is the one named (``max`` → MaxPlus, ``min`` → MinPlus).

**Tropical notation**: ``⊕`` or ``+`` is the tropical sum, ``⊗``, ``*`` or juxtaposition the tropical
product, ``^`` the power, numbers are coefficients: ``3*x^2 + x*y + -1`` or ``(x ⊕ 0)^2 ⊗ (y ⊕ 1)``.
Exponents are integers, ``(p/q)`` or ``-k``.  The semiring is the ``semiring=`` argument (default MaxPlus).

Integers and fractions are exact; a decimal literal (``0.5``, ``1e-3``) is a float and makes the whole
polynomial floating point.  Coefficients and exponents are finite: the grammar has no infinity and no NaN
literal, and the words ``inf``, ``infinity`` and ``nan`` (in any case) are reserved, neither numbers nor
variable names (``max(-inf, x)`` would otherwise read as a variable called ``inf``).  A term whose
coefficient is the tropical zero (``-inf`` in max-plus, ``+inf`` in min-plus) is written by leaving it
out.  A string that does not follow the grammar raises :class:`~tropix.errors.ParseError` saying where.

Untrusted text is safe to parse: nothing is evaluated, parentheses nest at most ``MAX_DEPTH`` deep, a parenthesised
sum is raised to at most ``MAX_POWER``, and expanding products and powers stops with a ParseError past
``MAX_TERMS`` terms or ``MAX_WORK`` term products (a few seconds), before the expansion is built.

Examples
--------
>>> from tropix.tropical.parse import parse_polynomial
>>> parse_polynomial("max(0, x + 1, 2*y - 1/2)")
TropicalPolynomial('max(0, -1/2 + 2*y, 1 + x)')
>>> parse_polynomial("3*x^2 ⊕ x*y ⊕ -1", semiring="min")
TropicalPolynomial('min(-1, x + y, 3 + 2*x)')
>>> parse_polynomial("max(0, x +* 1)")
Traceback (most recent call last):
...
tropix.errors.ParseError: unexpected '*' at position 10 in 'max(0, x +* 1)' (expected a number or a variable)
>>> parse_polynomial("max(-inf, x)")
Traceback (most recent call last):
...
tropix.errors.ParseError: 'inf' at position 5 in 'max(-inf, x)' is reserved: the grammar has no infinity or NaN literal and 'inf', 'infinity', 'nan' are not variable names (leave out a term whose coefficient is the tropical zero)
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from fractions import Fraction
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import ArgumentTypeError, ConventionError, EmptyInputError, NaNError, ParseError, ToleranceError
from .semiring import MaxPlus, MinPlus, get_semiring, require_tropical

__all__ = ["parse_polynomial", "from_sympy", "tropicalize", "p_adic_valuation"]

MAX_LENGTH = 100_000
MAX_POWER = 1000
MAX_DEPTH = 100
MAX_TERMS = 1_000_000  # terms of an expanded product or power
MAX_WORK = 4_000_000  # term products over all expansions of one string (a few seconds)

_RESERVED = frozenset({"inf", "infinity", "nan"})  # compared in lower case

_TOKEN = re.compile(  # (ASCII digits only: "\d" also matched other scripts' digits, "max(٣, x)" read as max(3, x))
    r"\s*(?:(?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>[-+*/^(),⊕⊗]))",
    re.ASCII,
)


def _shown(text: str, pos: int | None = None) -> str:
    """``text`` quoted for an error message: whole when short, else the part around ``pos`` (a 100000-character
    string was repeated in full in every message)."""
    if len(text) <= 120:
        return repr(text)
    lo = 0 if pos is None else max(0, min(pos - 40, len(text) - 80))
    pre = "..." if lo > 0 else ""
    post = "..." if lo + 80 < len(text) else ""
    return f"{pre}{text[lo:lo + 80]!r}{post} ({len(text)} characters)"


def _tokenize(text: str):
    toks = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ParseError(f"unexpected character {text[pos]!r} at position {pos} in {_shown(text, pos)}")
        kind = m.lastgroup
        start = m.start(kind)
        if kind == "name" and m.group(kind).lower() in _RESERVED:
            raise ParseError(_reserved_message(m.group(kind), start, text))
        toks.append((kind, m.group(kind), start))
        pos = m.end()
    toks.append(("end", "", len(text)))
    return toks


def _reserved_message(word: str, pos, text: str) -> str:
    where = f" at position {pos} in {_shown(text, pos)}" if pos is not None else ""
    return (f"{word!r}{where} is reserved: the grammar has no infinity or NaN literal and 'inf', 'infinity', "
            "'nan' are not variable names (leave out a term whose coefficient is the tropical zero)")


def _number(s: str):
    if re.fullmatch(r"[0-9]+", s):
        try:
            return int(s)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            raise ParseError(f"integer literal of {len(s)} digits is too long") from None
    v = float(s)
    if not math.isfinite(v):
        raise ParseError(f"number {_shown(s)} is not finite")
    return v


class _Parser:
    def __init__(self, text: str):
        if not isinstance(text, str):
            raise ArgumentTypeError(f"expected a string, got {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise ParseError(f"string of {len(text)} characters is longer than the limit {MAX_LENGTH}")
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0
        self.work = 0
        self.names: set[str] = set()

    def spend(self, n: int, pos: int):
        """Count ``n`` term products of an expansion; raise ParseError past :data:`MAX_WORK` ("(x+y+0)^1000", 14
        characters, ran for hours: every power is expanded term by term)."""
        self.work += n
        if self.work > MAX_WORK:
            raise ParseError(
                f"expanding the products and powers of {self.text[:60]!r} (at position {pos}) needs more than "
                f"{MAX_WORK} term products; write the polynomial out, or in max/min notation"
            )

    def enter(self, pos: int):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError(f"parentheses nested deeper than {MAX_DEPTH} at position {pos} in {self.text[:60]!r}...")

    # helpers
    def peek(self):
        return self.toks[self.i]

    def take(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, tok=None, expected: str | None = None):
        kind, val, pos = tok or self.peek()
        what = "end of input" if kind == "end" else repr(val)
        extra = f" (expected {expected})" if expected else ""
        raise ParseError(f"unexpected {what} at position {pos} in {_shown(self.text, pos)}{extra}")

    def expect(self, val: str):
        t = self.take()
        if t[1] != val:
            self.error(t, repr(val))
        return t

    def is_op(self, *vals):
        k, v, _ = self.peek()
        return k == "op" and v in vals

    def name(self, tok):
        _, v, pos = tok
        if v in ("max", "min"):
            raise ParseError(f"{v!r} at position {pos} cannot be used here in {_shown(self.text, pos)}")
        self.names.add(v)
        return v

    # ------------------------------------------------------------------ max/min of linear forms
    def maxmin(self, op: str | None):
        k, v, pos = self.take()
        if v not in ("max", "min"):
            self.error((k, v, pos), "'max' or 'min'")
        if op is not None and v != op:
            raise ParseError(f"{v!r} at position {pos} inside {op!r} in {_shown(self.text, pos)}: mixed max and min")
        self.enter(self.expect("(")[2])
        items = []
        while True:
            if self.peek()[0] == "name" and self.peek()[1] in ("max", "min"):
                items.extend(self.maxmin(v)[1])
            else:
                items.append(self.linear())
            if self.is_op(","):
                self.take()
                continue
            self.expect(")")
            break
        self.depth -= 1
        return v, items

    def linear(self):
        """A linear form: returns (constant, {name: coefficient})."""
        const = 0
        lin: dict = {}
        sign = 1
        first = True
        while True:
            if self.is_op("+", "-"):
                sign = -1 if self.take()[1] == "-" else 1
            elif not first:
                break
            c, var = self.lterm()
            if var is None:
                const = const + sign * c
            else:
                lin[var] = lin.get(var, 0) + sign * c
            first = False
            sign = 1
            if not self.is_op("+", "-"):
                break
        return const, lin

    def coef(self):
        """number, number/number, (number/number) or (-number/number)."""
        if self.is_op("("):
            self.enter(self.take()[2])  # (left only after the ')': "((((1))))" nested 3000 deep was a RecursionError)
            neg = False
            if self.is_op("-"):
                self.take()
                neg = True
            c = self.coef()
            self.expect(")")
            self.depth -= 1
            return -c if neg else c
        k, v, pos = self.take()
        if k != "num":
            self.error((k, v, pos), "a number")
        c = _number(v)
        if self.is_op("/") and self.toks[self.i + 1][0] == "num":
            self.take()
            k2, v2, p2 = self.take()
            d = _number(v2)
            if d == 0:
                raise ParseError(f"division by zero at position {p2} in {_shown(self.text, p2)}")
            c = Fraction(c, d) if isinstance(c, int) and isinstance(d, int) else c / d
            c = int(c) if isinstance(c, Fraction) and c.denominator == 1 else c
        return c

    def lterm(self):
        k, v, pos = self.peek()
        if k == "name":
            self.take()
            return 1, self.name((k, v, pos))
        if k == "num" or self.is_op("("):
            c = self.coef()
            if self.is_op("*"):
                self.take()
                t = self.take()
                if t[0] != "name":
                    self.error(t, "a variable")
                return c, self.name(t)
            if self.peek()[0] == "name":
                return c, self.name(self.take())
            return c, None
        self.error(expected="a number or a variable")

    # ------------------------------------------------------------------ tropical notation
    def tsum(self):
        """Returns a list of terms {exponent dict, coefficient} as (dict name->exp, coef) pairs (a polynomial)."""
        terms = self.tproduct()
        while self.is_op("+", "⊕"):
            self.take()
            terms = terms + self.tproduct()
        return terms

    def tproduct(self):
        acc = [({}, 0)]
        first = True
        while True:
            if not first:
                if self.is_op("*", "⊗"):
                    self.take()
                elif not (self.peek()[0] in ("num", "name") or self.is_op("(", "-")):
                    break
            pos = self.peek()[2]
            f = self.tfactor()
            if len(acc) * len(f) > MAX_TERMS:  # (checked before the expansion is built, not after)
                raise ParseError(f"expanding products in {self.text[:60]!r}... gives more than a million terms")
            if len(acc) > 1 or len(f) > 1:
                self.spend(len(acc) * len(f), pos)
            acc = [(_addexp(e1, e2), c1 + c2) for e1, c1 in acc for e2, c2 in f]
            first = False
        return acc

    def tfactor(self):
        k, v, pos = self.peek()
        if k == "num" or self.is_op("-"):
            neg = False
            if self.is_op("-"):
                self.take()
                neg = True
                if self.peek()[0] != "num":
                    self.error(expected="a number after '-'")
            c = self.coef()
            return [({}, -c if neg else c)]
        if k == "name":
            self.take()
            name = self.name((k, v, pos))
            e = 1
            if self.is_op("^"):
                self.take()
                e = self.exponent()
            return [({name: e}, 0)]
        if self.is_op("("):
            self.enter(self.take()[2])
            inner = self.tsum()
            self.expect(")")
            self.depth -= 1
            if self.is_op("^"):
                self.take()
                _, _, p = self.peek()
                e = self.exponent()
                if not isinstance(e, int) or e < 0 or e > MAX_POWER:
                    raise ParseError(
                        f"a parenthesised sum can only be raised to an integer power 0..{MAX_POWER} (position {p})"
                    )
                return self.power(inner, e, p)
            return inner
        self.error(expected="a number, a variable or '('")

    def power(self, inner: list, e: int, p: int) -> list:
        """The terms of ``inner ^ e``, expanded one factor at a time with equal exponents merged as they appear.

        The semiring is not known here; its ⊕ is max or min, and both survive products (max of sums = sum of
        maxima), so the smallest and the largest coefficient per exponent carry all that matters (merging happens
        in the polynomial with the right semiring).  Keeping every duplicate made ``(x ⊕ 0)^20`` 2^20 terms.
        Exponents are tuples over the variables of ``inner`` here (dicts copied per product took hours for
        ``(x+y+0)^1000``); every step is counted by :meth:`spend` and checked before it is built.
        """
        names = sorted({k for ex, _ in inner for k in ex})
        vin = [(tuple(ex.get(n, 0) for n in names), c) for ex, c in inner]
        cur: dict = {(0,) * len(names): (0, 0)}  # exponent -> (smallest, largest coefficient)
        for _ in range(e):
            if len(cur) * len(vin) > MAX_TERMS:  # (before the step is built: "((x + 0)^1000)^1000" built a
                # billion terms before the size check after it)
                raise ParseError(f"expanding a power at position {p} gives more than a million terms")
            self.spend(len(cur) * len(vin), p)
            nxt: dict = {}
            for ex, (lo, hi) in cur.items():
                for ei, ci in vin:
                    key = tuple(map(operator.add, ex, ei))
                    old = nxt.get(key)
                    if old is None:
                        nxt[key] = (lo + ci, hi + ci)
                    else:
                        nxt[key] = (min(old[0], lo + ci), max(old[1], hi + ci))
            cur = nxt
        out = []
        for ex, (lo, hi) in cur.items():
            d = {n: v for n, v in zip(names, ex) if v != 0}
            out.append((d, lo))
            if hi != lo:
                out.append((d, hi))
        return out

    def exponent(self):
        neg = False
        if self.is_op("-"):
            self.take()
            neg = True
        c = self.coef()
        return -c if neg else c


def _addexp(e1: dict, e2: dict) -> dict:
    out = dict(e1)
    for k, v in e2.items():
        out[k] = out.get(k, 0) + v
    return out


def parse_polynomial(text: str, *, semiring=None, variables=None):
    """Parse a tropical polynomial from a string (see the module docstring for the grammar).

    Parameters
    ----------
    text : str
    semiring : MaxPlus or MinPlus, optional
        For the tropical notation (default MaxPlus).  For ``max(...)``/``min(...)`` the string decides; a
        conflicting ``semiring=`` raises :class:`~tropix.errors.ConventionError`.
    variables : sequence of str, optional
        Variable order; default: the names in the string, sorted.  Names not listed raise ParseError.

    Examples
    --------
    >>> parse_polynomial("(x + 0)^2", semiring="max")
    TropicalPolynomial('max(0, x, 2*x)')
    >>> parse_polynomial("min(x, 1 + y)", variables=["y", "x"]).exponents.tolist()
    [[0, 1], [1, 0]]
    """
    from .polynomial import TropicalPolynomial

    P = _Parser(text)
    k, v, _ = P.peek()
    if k == "end":
        raise ParseError(f"empty string (position 0): a tropical polynomial needs at least one term (got {text!r})")
    if k == "name" and v in ("max", "min") and P.toks[P.i + 1][1] == "(":
        op, items = P.maxmin(None)
        if P.peek()[0] != "end":
            P.error(expected="end of input")
        S = MaxPlus if op == "max" else MinPlus
        if semiring is not None and get_semiring(semiring) != S:
            raise ConventionError(f"the string uses {op}() but semiring={get_semiring(semiring)} was requested")
        terms = [(lin, const) for const, lin in items]
    else:
        S = get_semiring(semiring if semiring is not None else MaxPlus)
        terms = P.tsum()
        if P.peek()[0] != "end":
            P.error(expected="an operator or end of input")
    names = _order(P.names, variables)
    exps = [tuple(lin.get(nm, 0) for nm in names) for lin, _ in terms]
    obj = TropicalPolynomial.__new__(TropicalPolynomial)
    obj._init(exps, [c for _, c in terms], S, names or None)
    return obj


def _order(found: set, variables) -> tuple:
    if variables is None:
        return tuple(sorted(found))
    if isinstance(variables, (str, bytes)) or not isinstance(variables, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"variables must be a sequence of names such as ('x', 'y'), got {variables!r}")
    variables = tuple(variables)
    for v in variables:
        if not isinstance(v, str):
            raise ArgumentTypeError(f"variables: every name must be a string, got {v!r} ({type(v).__name__})")
        if v.lower() in _RESERVED:
            raise ParseError(_reserved_message(v, None, "") + ": not allowed in variables=")
    if len(set(variables)) != len(variables):  # "x" would name two coordinates: the first got all its terms
        raise ParseError(f"variables {list(variables)} contain a repeated name")
    unknown = sorted(set(found) - set(variables))
    if unknown:
        raise ParseError(f"variables {unknown} are not among the given variables {list(variables)}")
    return variables


# ---------------------------------------------------------------------------------------------------
# sympy


def _sympy_number(v):
    import sympy

    if v.is_Rational:
        return Fraction(int(v.p), int(v.q)) if v.q != 1 else int(v.p)
    if v.is_Float:
        return float(v)
    if v in (sympy.oo, -sympy.oo):
        return float(v)
    raise ParseError(f"{v} is not a rational or floating-point number")


def _gens(expr, variables):
    import sympy

    if variables is None:
        return tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    if isinstance(variables, (str, bytes)) or not isinstance(variables, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"variables must be a sequence of names or sympy symbols, got {variables!r}")
    out = []
    for v in variables:
        if isinstance(v, str):
            v = sympy.Symbol(v)
        if not isinstance(v, sympy.Symbol):
            raise ArgumentTypeError(f"variables: every entry must be a name or a sympy Symbol, got {v!r}")
        out.append(v)
    if not out:
        raise EmptyInputError("variables is empty: name the polynomial's variables or leave variables=None")
    if len(set(out)) != len(out):
        raise ParseError(f"variables {[s.name for s in out]} contain a repeated name")
    return tuple(out)


def from_sympy(expr: Any, *, variables=None):
    """A :class:`TropicalPolynomial` from a sympy ``Max``/``Min`` of linear forms.

    Only sympy expression objects are accepted (strings are not sympified: use :func:`parse_polynomial`).

    Examples
    --------
    >>> import sympy
    >>> x, y = sympy.symbols("x y")
    >>> from_sympy(sympy.Min(x, y, 2 + x + y))
    TropicalPolynomial('min(y, x, 2 + x + y)')
    """
    import sympy

    from .polynomial import TropicalPolynomial

    if not isinstance(expr, sympy.Basic):
        raise ArgumentTypeError("from_sympy takes a sympy expression; parse strings with parse_polynomial")
    if isinstance(expr, sympy.Max):
        S, cls = MaxPlus, sympy.Max
    elif isinstance(expr, sympy.Min):
        S, cls = MinPlus, sympy.Min
    else:
        S, cls = MaxPlus, None
    gens = _gens(expr, variables)
    stack = [expr]
    forms = []
    while stack:
        e = stack.pop()
        if cls is not None and isinstance(e, cls):
            stack.extend(e.args)
            continue
        if isinstance(e, (sympy.Max, sympy.Min)):
            raise ParseError(f"mixed Max and Min in {expr}")
        forms.append(e)
    exps, coefs = [], []
    for f in forms:
        try:
            poly = sympy.Poly(f, *gens) if gens else None
        except sympy.PolynomialError as err:
            raise ParseError(f"{f} is not a linear form in {gens}") from err
        if poly is None:
            exps.append(())
            coefs.append(_sympy_number(f))
            continue
        if poly.total_degree() > 1:
            raise ParseError(f"{f} is not a linear form (degree {poly.total_degree()})")
        d = dict(poly.terms())
        zero = (0,) * len(gens)
        coefs.append(_sympy_number(d.get(zero, sympy.Integer(0))))
        exps.append(
            tuple(_sympy_number(d.get(tuple(int(i == j) for j in range(len(gens))), sympy.Integer(0))) for i in range(len(gens)))
        )
    names = tuple(g.name for g in gens)
    obj = TropicalPolynomial.__new__(TropicalPolynomial)
    obj._init(exps, coefs, S, names or None)
    return obj


def _prime(p: Any, fname: str) -> int:
    """``p`` as a Python int if it is a prime (Python or NumPy integer), else ToleranceError."""
    import sympy

    if isinstance(p, numbers.Integral) and not isinstance(p, (bool, np.bool_)):
        p = int(p)  # NumPy and sympy integers too
        if p >= 2 and sympy.isprime(p):
            return p
    raise ToleranceError(f"{fname}: p = {p!r} is not a prime; the p-adic valuation needs a prime integer p >= 2")


def _rational(q: Any, what: str):
    """``q`` as an exact int or Fraction: ints, Fractions, NumPy/sympy integers and rationals, and strings
    ``Fraction`` reads (``"1/3"``, ``"0.1"`` = 1/10 exactly).  Floats are refused: a binary float is rarely
    the rational meant (``0.1`` is not 1/10), and its valuation at ``p != 2`` would be silently wrong."""
    if isinstance(q, (float, np.floating)) or getattr(getattr(q, "dtype", None), "kind", None) in ("f", "c"):
        if isinstance(q, (float, np.floating)) and math.isnan(q):
            raise NaNError(f"{what} is NaN; NaN has no p-adic valuation")
        raise ParseError(f"{what} = {q!r} is a float; p-adic valuations need exact rationals (int, Fraction, "
                         f"sympy Rational or a string such as '1/10')")
    if isinstance(q, (bool, np.bool_)):
        raise ParseError(f"{what} = {q!r} is a bool, not a rational number")
    sym = _sympy_if_loaded()
    if sym is not None and isinstance(q, sym.Basic):
        if q is sym.nan:
            raise NaNError(f"{what} is NaN; NaN has no p-adic valuation")
        if not q.is_Rational:
            raise ParseError(f"{what} = {q} is not a rational number" + (" (a sympy Float: use sympy.Rational)"
                                                                        if q.is_Float else ""))
        return int(q.p) if q.q == 1 else Fraction(int(q.p), int(q.q))
    if isinstance(q, (numbers.Rational, str)):
        try:
            f = Fraction(q)
        except (ValueError, ZeroDivisionError) as err:
            raise ParseError(f"{what} = {q!r} is not a rational number ({err})") from None
        return int(f) if f.denominator == 1 else f
    raise ParseError(f"{what} = {q!r} (of type {type(q).__name__}) is not a rational number")


def _sympy_if_loaded():
    """sympy if something imported it already (then sympy objects may be passed), else None."""
    import sys

    return sys.modules.get("sympy")


def p_adic_valuation(q: Any, p: int):
    """The ``p``-adic valuation of a rational ``q``: ``v`` with ``q = p^v a/b``, ``p`` dividing neither
    ``a`` nor ``b``.

    ``v_p(0) = +inf`` (``math.inf``, the usual convention; it is the min-plus tropical zero, so a zero
    coefficient tropicalises to an absent term); every other result is an ``int``.

    Raises
    ------
    ToleranceError
        If ``p`` is not a prime integer.
    ParseError
        If ``q`` is not an exact rational (a float, an irrational sympy number, a malformed string).
    NaNError
        If ``q`` is NaN.

    Examples
    --------
    >>> p_adic_valuation(Fraction(12, 5), 2), p_adic_valuation(Fraction(12, 5), 5)
    (2, -1)
    >>> p_adic_valuation("1/10", 5), p_adic_valuation(0, 3)
    (-1, inf)
    >>> p_adic_valuation(0.1, 5)
    Traceback (most recent call last):
    ...
    tropix.errors.ParseError: q = 0.1 is a float; p-adic valuations need exact rationals (int, Fraction, sympy Rational or a string such as '1/10')
    """
    p = _prime(p, "p_adic_valuation")
    q = Fraction(_rational(q, "q"))
    if q == 0:
        return math.inf
    v = 0
    num, den = abs(q.numerator), q.denominator
    while num % p == 0:
        num //= p
        v += 1
    while den % p == 0:
        den //= p
        v -= 1
    return v


def tropicalize(poly: Any, p: int, *, gens=None, semiring=MinPlus, variables=None):
    """Tropicalise a polynomial with rational coefficients under the ``p``-adic valuation.

    Min-plus: coefficient ``val_p(c_a)``; max-plus: ``-val_p(c_a)``; zero coefficients are left out.  See
    :meth:`TropicalPolynomial.tropicalize <tropix.tropical.polynomial.TropicalPolynomial.tropicalize>`.

    Raises
    ------
    ToleranceError
        If ``p`` is not a prime integer.
    ParseError
        If a coefficient is not an exact rational (floats included: see :func:`p_adic_valuation`) or a
        sympy expression is not a polynomial in ``gens``.
    NaNError
        If a coefficient is NaN.
    EmptyInputError
        If every coefficient is zero.
    ArgumentTypeError
        If ``poly`` is neither a sympy expression/Poly nor a mapping (a ``TypeError``).
    SemiringMismatchError
        If ``semiring`` is not MaxPlus or MinPlus.

    Examples
    --------
    >>> tropicalize({(0,): 4, (1,): 1, (2,): Fraction(1, 2)}, 2)
    TropicalPolynomial('min(2, x, -1 + 2*x)')
    """
    import sympy

    from .polynomial import TropicalPolynomial

    p = _prime(p, "tropicalize")
    S = require_tropical(semiring, "tropicalize")
    if isinstance(poly, Mapping):
        items = [((e,) if not isinstance(e, tuple) else e, _rational(c, f"coefficient of exponent {e!r}"))
                 for e, c in poly.items()]
        names = variables
    else:
        if isinstance(poly, str) or not isinstance(poly, (sympy.Basic, sympy.Poly)):
            raise ArgumentTypeError("tropicalize takes a sympy expression/Poly or a mapping exponent -> rational")
        if isinstance(poly, sympy.Poly):
            P = poly
        else:
            g = tuple(gens) if gens is not None else tuple(sorted(poly.free_symbols, key=lambda s: s.name))
            bad = [x for x in g if not isinstance(x, sympy.Symbol)]
            if bad:
                raise ParseError(f"tropicalize: gens must be sympy symbols, got {bad[0]!r}")
            if not g:  # a constant (sympy.Poly needs a generator: GeneratorsNeeded for 0 or 5)
                g = (sympy.Symbol("x"),)
            try:
                P = sympy.Poly(poly, *g)
            except sympy.polys.polyerrors.BasePolynomialError as err:
                raise ParseError(f"tropicalize: {poly} is not a polynomial in {g} ({err})") from None
        items = []
        for e, c in P.terms():
            if c is sympy.nan:
                raise NaNError(f"tropicalize: the coefficient of exponent {tuple(e)} is NaN")
            if not c.is_Rational:
                why = (f" in the variables {P.gens}" if c.free_symbols else
                       " (a float: use sympy.Rational)" if c.is_Float else "")
                raise ParseError(f"tropicalize: coefficient {c} of exponent {tuple(e)} is not rational{why}")
            items.append((tuple(int(v) for v in e), Fraction(int(c.p), int(c.q))))
        names = variables if variables is not None else tuple(str(g) for g in P.gens)
    if items and all(c == 0 for _, c in items):
        raise EmptyInputError("tropicalize: every coefficient is 0 (valuation +inf, the tropical zero), so the "
                              "tropicalisation has no terms")
    items = [(e, c) for e, c in items if c != 0]
    coefs = [S.sense * -p_adic_valuation(c, p) for _, c in items]
    obj = TropicalPolynomial.__new__(TropicalPolynomial)
    obj._init([e for e, _ in items], coefs, S, names)
    return obj
