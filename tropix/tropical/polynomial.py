"""Tropical polynomials in any number of variables, with integer, rational or real exponents.

``p(x) = ⊕_a c_a ⊗ x^{⊗a}``: in max-plus ``p(x) = max_a (c_a + a·x)``, in min-plus ``min_a (c_a + a·x)``.
Exponents may be real vectors: the attention score ``max_j (b_j + q·k_j)`` is a tropical polynomial in
the query ``q`` whose exponents are the keys ``k_j``.

A :class:`TropicalPolynomial` is immutable.  Terms with equal exponents are merged with ⊕, terms whose
coefficient is the tropical zero are dropped, and the terms are kept sorted by exponent.  Exact
coefficients (int, Fraction, sympy rationals) stay exact; any float makes the coefficients float64.

Examples
--------
>>> from tropix.tropical import TropicalPolynomial
>>> p = TropicalPolynomial({(0, 0): 0, (1, 0): 0, (0, 1): 0})   # the tropical line max(0, x, y)
>>> p([[1, 2], [-1, -3]])
array([2, 0], dtype=object)
>>> q = TropicalPolynomial.parse("max(0, x + 1, 2*x - 1)")
>>> q.roots()
((-1, 1), (2, 1))
>>> print(q.factor())
-1 ⊗ (x ⊕ -1) ⊗ (x ⊕ 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping, Sequence

import numpy as np

from .._array import asarray, check_no_nan, from_numpy, is_array, namespace, to_exact_scalar, to_numpy
from ..errors import (
    ArgumentTypeError,
    ConventionError,
    DomainError,
    EmptyInputError,
    FloatOverflowError,
    NaNError,
    NoInverseError,
    ShapeError,
)
from ._args import check_names, check_real
from .semiring import MinPlus, Semiring, TropicalSemiring, check_same_semiring, require_tropical

__all__ = ["TropicalPolynomial", "UnivariateFactorization"]


def _exact_or_float(vals: list, what: str):
    """Normalise a list of scalars to exact (int/Fraction) or float; reject NaN."""
    out = []
    has_float = False
    for v in vals:
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        if is_array(v) and getattr(v, "ndim", 1) == 0:
            v = v.item() if hasattr(v, "item") else float(v)
        try:
            s = to_exact_scalar(v)
        except TypeError:
            raise ArgumentTypeError(f"{what} {v!r} is not a real number") from None
        if isinstance(s, float):
            if math.isnan(s):
                raise NaNError(f"{what} is NaN; NaN is not an element of any tropical semiring")
            if not math.isinf(s):
                has_float = True
        out.append(s)
    return out, has_float


def _inf_times(v, a):
    """``v·a`` of an exact or infinite ``v`` and an exact exponent ``a``, with ``±inf·0 = 0`` (``x^{⊗0}`` is the one)
    and ``±inf·a`` the infinity of the sign of ``a`` for an ``a`` of any size (Python turned ``10**400`` into a float
    for ``-inf·10**400``: a raw OverflowError)."""
    if a == 0:
        return 0
    if isinstance(v, float) and math.isinf(v):
        return v if a > 0 else -v
    return v * a


_exact_times = np.frompyfunc(_inf_times, 2, 1)


def _dtype_name(x) -> str:
    return str(x.dtype).split(".")[-1]


def _is_real_scalar(v) -> bool:
    return isinstance(v, (int, float, Fraction, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _fmt_num(v) -> str:
    if isinstance(v, Fraction):
        return f"{v.numerator}/{v.denominator}"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return repr(v)
    return str(v)


class TropicalPolynomial:
    """An immutable tropical polynomial ``⊕_a c_a ⊗ x^{⊗a}`` over MaxPlus or MinPlus.

    Parameters
    ----------
    terms : mapping
        Exponent -> coefficient.  An exponent is a tuple (or an int for one variable); all exponents
        must have the same length.  Coefficients equal to the tropical zero are dropped.
    semiring : MaxPlus (default), MinPlus or their names
    variables : sequence of str, optional
        Names used when printing (default ``x, y, z`` for up to three variables, else ``x0, x1, ...``).

    Raises
    ------
    EmptyInputError
        If no term is left (every polynomial needs a term with a non-zero coefficient).
    ShapeError
        If the exponents do not all have the same length.
    NaNError, ConventionError
        For NaN coefficients or exponents, or the infinity of the opposite convention.

    Examples
    --------
    >>> from fractions import Fraction
    >>> p = TropicalPolynomial({2: 0, 1: Fraction(1, 2), 0: 3}, semiring="min")
    >>> p
    TropicalPolynomial('min(3, 1/2 + x, 2*x)')
    >>> p.n_vars, p.n_terms, p.degree
    (1, 3, 2)
    """

    __slots__ = ("_exponents", "_coefficients", "_semiring", "_variables", "_exact_exp", "_exact_coef", "_cache")

    def __init__(self, terms: Mapping, *, semiring: Semiring | str | None = None, variables: Sequence[str] | None = None):
        if not isinstance(terms, Mapping):
            raise ArgumentTypeError("terms must be a mapping exponent -> coefficient; use from_arrays for arrays")
        exps = []
        for e in terms.keys():
            exps.append((e,) if not isinstance(e, (tuple, list, np.ndarray)) else tuple(e))
        self._init(exps, list(terms.values()), semiring, variables)

    # -- construction -----------------------------------------------------------------------------
    def _init(self, exps: list, coefs: list, semiring, variables):
        S = require_tropical(semiring, "a tropical polynomial")
        if len(exps) == 0:
            raise EmptyInputError("a tropical polynomial needs at least one term (got none)")
        nv = {len(e) for e in exps}
        if len(nv) != 1:
            raise ShapeError(f"exponents have different lengths {sorted(nv)}; every term needs one exponent per variable")
        n = nv.pop()
        coefs, cfloat = _exact_or_float(coefs, "a coefficient")
        for v in coefs:
            if isinstance(v, float) and math.isinf(v) and v != S.zero:
                raise ConventionError(
                    f"coefficient {v} is not an element of {S.name} (its tropical zero is {S.zero}); "
                    f"max- and min-plus conventions may have been mixed up"
                )
        flat, efloat = _exact_or_float([v for e in exps for v in e], "an exponent")
        if any(isinstance(v, float) and math.isinf(v) for v in flat):
            raise ShapeError("exponents must be finite")
        rows = [tuple(flat[i * n : (i + 1) * n]) for i in range(len(exps))]
        if efloat:
            rows = [tuple(float(v) for v in r) for r in rows]
        merged: dict = {}
        for r, cf in zip(rows, coefs):
            if cf == S.zero:
                continue
            merged[r] = cf if r not in merged else S.add(merged[r], cf)
        if not merged:
            raise EmptyInputError(
                "every coefficient is the tropical zero, so the polynomial has no terms "
                f"(the zero of {S.name} is {S.zero})"
            )
        keys = sorted(merged)
        if efloat:
            E = np.array(keys, dtype=np.float64).reshape(len(keys), n)
        elif all(isinstance(v, int) and -(1 << 62) <= v < (1 << 62) for r in keys for v in r):  # else object: exact
            E = np.array(keys, dtype=np.int64).reshape(len(keys), n) if keys and n else np.zeros((len(keys), n), np.int64)
        else:
            E = np.empty((len(keys), n), dtype=object)
            for i, r in enumerate(keys):
                E[i, :] = list(r)
        if cfloat:
            C = np.array([float(merged[k]) for k in keys], dtype=np.float64)
        else:
            C = np.empty(len(keys), dtype=object)
            C[:] = [merged[k] for k in keys]
        E.setflags(write=False)
        C.setflags(write=False)
        if variables is None:
            variables = ("x", "y", "z")[:n] if n <= 3 else tuple(f"x{i}" for i in range(n))
        # names must print and parse back: identifiers, not 'nan'/'inf', distinct (else printing and parsing
        # would merge two coordinates), one per variable
        variables = check_names(variables, n, "variables", duplicate_error=ShapeError)
        self._exponents, self._coefficients, self._semiring, self._variables = E, C, S, variables
        self._exact_exp = not efloat
        self._exact_coef = not cfloat
        self._cache = {}  # derived immutable objects (subdivision, hypersurface); the polynomial never changes

    @classmethod
    def from_arrays(cls, exponents: Any, coefficients: Any, *, semiring=None, variables=None) -> "TropicalPolynomial":
        """Build from an exponent matrix (terms x variables) and a coefficient vector.

        Arrays of any library are accepted (they are copied to NumPy).

        Examples
        --------
        >>> import numpy as np
        >>> keys = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])     # attention keys as exponents
        >>> p = TropicalPolynomial.from_arrays(keys, np.zeros(3))
        >>> float(p([2.0, 1.0]))                                         # max_j q·k_j
        2.0
        """
        E = to_numpy(exponents) if is_array(exponents) else asarray(exponents, name="exponents")
        Cf = to_numpy(coefficients) if is_array(coefficients) else asarray(coefficients, name="coefficients")
        if E.ndim == 1:
            E = E.reshape(-1, 1)
        if E.ndim != 2:
            raise ShapeError(f"exponents must be a matrix (terms x variables), got shape {E.shape}")
        if Cf.ndim != 1 or Cf.shape[0] != E.shape[0]:
            raise ShapeError(f"{E.shape[0]} exponent rows but coefficients of shape {Cf.shape}")
        check_no_nan(E, "exponents")
        check_no_nan(Cf, "coefficients")
        obj = cls.__new__(cls)
        obj._init([tuple(r) for r in E.tolist()], list(Cf.tolist()), semiring, variables)
        return obj

    @classmethod
    def parse(cls, text: str, *, semiring=None, variables=None) -> "TropicalPolynomial":
        """Parse a string; see :func:`tropix.tropical.parse.parse_polynomial` for the grammar."""
        from .parse import parse_polynomial

        return parse_polynomial(text, semiring=semiring, variables=variables)

    @classmethod
    def from_sympy(cls, expr: Any, *, variables=None) -> "TropicalPolynomial":
        """Build from a sympy ``Max``/``Min`` of linear forms (the semiring follows Max/Min).

        Examples
        --------
        >>> import sympy
        >>> x, y = sympy.symbols("x y")
        >>> TropicalPolynomial.from_sympy(sympy.Max(x + 1, 2*y, sympy.Rational(-1, 2)))
        TropicalPolynomial('max(-1/2, 2*y, 1 + x)')
        """
        from .parse import from_sympy

        return from_sympy(expr, variables=variables)

    @classmethod
    def tropicalize(cls, poly: Any, p: int, *, gens=None, semiring=None, variables=None) -> "TropicalPolynomial":
        """Tropicalise a classical polynomial with rational coefficients under the ``p``-adic valuation.

        ``trop(f)(w) = min_a (val_p(c_a) + a·w)`` in min-plus (the default here, the valuation's own
        convention); in max-plus the coefficients are ``-val_p(c_a)`` (``max_a (-val_p(c_a) + a·w)``), which
        describes the same hypersurface up to ``w -> -w``.

        Parameters
        ----------
        poly : sympy expression or Poly, or mapping exponent -> rational coefficient
        p : int
            A prime.
        gens : sequence of sympy symbols, optional
            Variable order for sympy input (default: sorted free symbols).

        Examples
        --------
        >>> import sympy
        >>> x, y = sympy.symbols("x y")
        >>> f = 2*x**2 + x*y + 4*y**2 + 3*x - 6 + sympy.Rational(1, 2)*y
        >>> TropicalPolynomial.tropicalize(f, 2)
        TropicalPolynomial('min(1, -1 + y, 2 + 2*y, x, x + y, 1 + 2*x)')
        """
        from .parse import tropicalize

        return tropicalize(poly, p, gens=gens, semiring=semiring if semiring is not None else MinPlus, variables=variables)

    # -- data --------------------------------------------------------------------------------------
    @property
    def exponents(self) -> np.ndarray:
        """Read-only ``(n_terms, n_vars)`` exponent matrix (int64, object for rationals, or float64)."""
        return self._exponents

    @property
    def coefficients(self) -> np.ndarray:
        """Read-only coefficient vector (object array of int/Fraction, or float64)."""
        return self._coefficients

    @property
    def semiring(self) -> TropicalSemiring:
        return self._semiring

    @property
    def variables(self) -> tuple:
        return self._variables

    @property
    def n_vars(self) -> int:
        return self._exponents.shape[1]

    @property
    def n_terms(self) -> int:
        return self._exponents.shape[0]

    @property
    def is_exact(self) -> bool:
        """Exponents and coefficients are exact (int/Fraction)."""
        return self._exact_exp and self._exact_coef

    @property
    def has_integer_exponents(self) -> bool:
        if self._exponents.dtype.kind in "iu":
            return True
        return self._exact_exp and all(isinstance(v, (int, np.integer)) for v in self._exponents.ravel())

    @property
    def degree(self):
        """Largest total degree of a term (sum of the exponent entries)."""
        return max(to_exact_scalar(sum(r)) if self._exact_exp else float(sum(r)) for r in self._exponents.tolist())

    def terms(self) -> dict:
        """The terms as a dict exponent tuple -> coefficient."""
        return {tuple(e): c for e, c in zip(self._exponents.tolist(), self._coefficients.tolist())}

    # -- evaluation --------------------------------------------------------------------------------
    def _term_values(self, x):
        """(..., n_terms) values c_a + a·x and the array namespace; x as documented in __call__."""
        n = self.n_vars
        if isinstance(x, (list, tuple)) or not is_array(x):
            x = asarray(x, name="x")
        if n == 1 and not (x.ndim >= 2 and x.shape[-1] == 1):
            x = x[..., None] if not (isinstance(x, np.ndarray)) else np.expand_dims(x, -1)
        # NaN and the opposite infinity are not points of the tropical torus (checked after the reshape:
        # a 0-d NumPy NaN made check_no_nan fail with AttributeError)
        x = self._semiring.validate(x, "x")
        if x.ndim == 0 or x.shape[-1] != n:
            raise ShapeError(f"points must have {n} coordinates in the last axis, got shape {tuple(x.shape)}")
        xp = namespace(x)
        # (the point () of a polynomial in no variables holds no float, whatever the dtype of [])
        exact_x = isinstance(x, np.ndarray) and (x.dtype == object or x.dtype.kind in "iub" or n == 0)
        if exact_x and self.is_exact:  # (bool points too, as 0/1: they gave floats)
            E = self._exponents.astype(object)
            xo = x.astype(np.int64).astype(object) if x.dtype == np.bool_ else x.astype(object)
            if any(v == self._semiring.zero for v in xo.ravel()):
                return self._at_zero(xo, E, self._coefficients.astype(object), np), np
            vals = xo @ E.T + self._coefficients.astype(object)
            return vals, np
        try:
            E = np.array(self._exponents, dtype=np.float64)
            C = np.array(self._coefficients, dtype=np.float64)
            if isinstance(x, np.ndarray) and x.dtype.kind != "f":
                x = x.astype(np.float64)
        except OverflowError:  # (an exact exponent or point beyond the float range: a raw OverflowError)
            raise FloatOverflowError(
                "evaluating in floats, an exact exponent or coordinate is beyond the float range; evaluate an exact "
                "polynomial at exact points (int/Fraction), which never overflow"
            ) from None
        with np.errstate(over="ignore", invalid="ignore"):
            # in the points' floating dtype on every library (NumPy computed float32 points in float64, torch and
            # array-api-strict in float32)
            if isinstance(x, np.ndarray):
                xf = x
                Ex, Cx = E.astype(xf.dtype, copy=False), C.astype(xf.dtype, copy=False)
                vals = self._at_zero(xf, Ex, Cx, np) if np.isinf(xf).any() else xf @ Ex.T + Cx
            else:
                xf = x if xp.isdtype(x.dtype, "real floating") else xp.astype(x, xp.float64)
                Ex = xp.astype(from_numpy(E, x), xf.dtype)  # (float32 points with float64 E crashed)
                Cx = xp.astype(from_numpy(C, x), xf.dtype)
                if bool(xp.any(xp.isinf(xf))):
                    vals = self._at_zero(xf, Ex, Cx, xp)
                else:
                    vals = xf @ xp.permute_dims(Ex, (1, 0)) + Cx
        self._check_overflow(vals, xp, xf)
        return vals, xp

    def _check_overflow(self, vals, xp, x) -> None:
        """Raise FloatOverflowError if a float term value is NaN or the opposite infinity, or if every term is the
        tropical zero at a point without a zero coordinate: the points and coefficients are finite or the zero
        (checked), and the stored coefficients are never the zero, so finite values overflowed (``max(2*x)`` at
        ``x = 1e308`` was a ConventionError claiming that max- and min-plus were mixed up; at ``x = -1e308`` its
        value was the zero, silently).  A term that overflows to the zero beside a finite one is harmless: it
        loses to it either way."""
        S = self._semiring
        if vals.shape[-1] and x.shape[-1]:
            gone = xp.all(vals == S.zero, axis=-1) & xp.all(x != S.zero, axis=-1)
            if bool(xp.any(gone)):
                hit = np.argwhere(np.asarray(to_numpy(gone)))[0]
                raise FloatOverflowError(
                    f"evaluating the polynomial at the point of index {tuple(int(i) for i in hit)}, every term "
                    f"c + a·x overflowed the float range of {_dtype_name(vals)} to the tropical zero {S.zero}, which "
                    "is not the value at a point with finite coordinates; evaluate an exact polynomial at exact "
                    "points (int/Fraction), which never overflow, or rescale"
                )
        bad = (vals != vals) | (vals == -S.zero)
        if bool(xp.any(bad)):
            hit = np.argwhere(np.asarray(to_numpy(bad)))[0]
            raise FloatOverflowError(
                f"evaluating the polynomial, the term c + a·x of index {int(hit[-1])} at the point of index "
                f"{tuple(int(i) for i in hit[:-1])} overflowed the float range of {_dtype_name(vals)} to "
                f"{-S.zero}, which is not an element of {S.name}; evaluate an exact polynomial at exact points "
                "(int/Fraction), which never overflow, or rescale"
            )

    def _at_zero(self, x, E, C, xp):
        """Term values ``c_a + a·x`` when some coordinate is the tropical zero: ``x_i^{⊗0}`` is ``one``
        (``0·(-inf)`` would be NaN), a positive power is ``zero``, a negative power has no value."""
        xe = xp.expand_dims(x, axis=-2)  # (..., 1, n)
        zero = self._semiring.zero
        with np.errstate(invalid="ignore"):  # 0·inf = NaN is replaced at once
            if isinstance(x, np.ndarray) and x.dtype == object:
                prod = _exact_times(xe, E)  # object: ±inf·a is a float infinity
                bad = np.vectorize(lambda v: v == -zero, otypes=[bool])(prod) if prod.size else prod
            else:
                xE = xe * E
                prod = xp.where(E == 0, xp.zeros_like(xE), xE)
                # (only at the zero coordinates: elsewhere -zero is a float overflow, reported as one, not as a
                # negative power of the zero)
                bad = (prod == -zero) & (xe == zero)
        if bool(xp.any(bad)):
            raise NoInverseError(
                f"a monomial with a negative exponent was evaluated at the tropical zero {self._semiring.zero} "
                f"of {self._semiring.name}: the tropical zero has no inverse"
            )
        if isinstance(x, np.ndarray) and x.dtype == object:
            return prod.sum(axis=-1) + C
        # a term with a positive power of the zero is the zero, also where another factor overflowed (-inf + inf
        # was NaN)
        vals = xp.sum(prod, axis=-1) + C
        return xp.where(xp.any(prod == zero, axis=-1), xp.full_like(vals, zero), vals)

    def __call__(self, x: Any):
        """Evaluate at points ``x``.

        ``x`` has shape ``(..., n_vars)``; for one variable, an array without a trailing axis of length 1
        (e.g. a scalar or a vector) is an array of points.  Any array
        library works (torch keeps autograd); exact points with an exact polynomial give exact values.

        Examples
        --------
        >>> p = TropicalPolynomial({(1, 0): 0, (0, 1): 0, (0, 0): 0})
        >>> p([0, 5])
        5
        """
        vals, xp = self._term_values(x)
        out = self._semiring.sum(vals, axis=-1) if vals.shape[-1] else None
        if isinstance(out, np.ndarray) and out.ndim == 0:
            return out[()]
        return out

    evaluate = __call__

    def dominant_terms(self, x: Any, *, atol: float = 0.0):
        """Boolean mask ``(..., n_terms)`` of the terms attaining ``p(x)`` (exactly, or within ``atol`` for floats).

        Examples
        --------
        >>> p = TropicalPolynomial({(1, 0): 0, (0, 1): 0, (0, 0): 0})   # exponents sorted: (0,0), (0,1), (1,0)
        >>> p.dominant_terms([[0, 0], [2, 1]])
        array([[ True,  True,  True],
               [False, False,  True]])
        """
        check_real(atol, "atol", minimum=0)
        vals, xp = self._term_values(x)
        best = self._semiring.sum(vals, axis=-1)
        if isinstance(vals, np.ndarray) and vals.dtype == object:
            return vals == np.asarray(best, dtype=object)[..., None] if atol == 0 else (
                np.abs((vals - np.asarray(best, dtype=object)[..., None]).astype(np.float64)) <= atol
            )
        best = xp.expand_dims(best, axis=-1) if hasattr(xp, "expand_dims") else best[..., None]
        if atol == 0:
            return vals == best
        return xp.abs(vals - best) <= atol

    # -- algebra -----------------------------------------------------------------------------------
    def _coerce(self, other):
        if isinstance(other, TropicalPolynomial):
            check_same_semiring(self._semiring, other._semiring)
            return other
        if isinstance(other, (int, float, Fraction)) or type(other).__module__.startswith("sympy"):
            return TropicalPolynomial({(0,) * self.n_vars: other}, semiring=self._semiring, variables=self._variables)
        return NotImplemented

    def _aligned(self, o: "TropicalPolynomial"):
        """``(variables, own exponent rows, o's exponent rows)`` over the variables of both, matched by name:
        this polynomial's in their order, then ``o``'s other ones (``max(0, x)`` and ``max(0, y)`` are in two
        variables together; ``(x, y)`` and ``(y, x)`` are the same two)."""
        E1 = [tuple(r) for r in self._exponents.tolist()]
        E2 = [tuple(r) for r in o._exponents.tolist()]
        if o._variables == self._variables:
            return self._variables, E1, E2
        names = list(self._variables) + [v for v in o._variables if v not in self._variables]
        pad = (0,) * (len(names) - self.n_vars)
        at = [names.index(v) for v in o._variables]
        rows2 = []
        for r in E2:
            t = [0] * len(names)
            for j, e in zip(at, r):
                t[j] = e
            rows2.append(tuple(t))
        return tuple(names), [r + pad for r in E1], rows2

    def __add__(self, other):
        """Tropical sum (⊕): union of the terms, coefficients of equal exponents combined with ⊕.

        Variables are matched by name (the union of both polynomials' variables); the tropical zero is the
        identity.

        Examples
        --------
        >>> TropicalPolynomial.parse("max(0, x)") + TropicalPolynomial.parse("max(1, y)")
        TropicalPolynomial('max(1, y, x)')
        """
        if not isinstance(other, TropicalPolynomial) and _is_real_scalar(other) and other == self._semiring.zero:
            return self
        o = self._coerce(other)
        if o is NotImplemented:
            return o
        names, E1, E2 = self._aligned(o)
        coefs = self._coefficients.tolist() + o._coefficients.tolist()
        return self._new(E1 + E2, coefs, names)

    __radd__ = __add__

    def __mul__(self, other):
        """Tropical product (⊗): exponents add, coefficients add, equal exponents combined with ⊕.

        Examples
        --------
        >>> p = TropicalPolynomial.parse("max(0, x)")
        >>> p * p
        TropicalPolynomial('max(0, x, 2*x)')
        """
        o = self._coerce(other)
        if o is NotImplemented:
            return o
        names, E1, E2 = self._aligned(o)
        C1, C2 = self._coefficients.tolist(), o._coefficients.tolist()
        exps, coefs = [], []
        for e1, c1 in zip(E1, C1):
            for e2, c2 in zip(E2, C2):
                exps.append(tuple(a + b for a, b in zip(e1, e2)))
                coefs.append(c1 + c2)
        return self._new(exps, coefs, names)

    __rmul__ = __mul__

    def __pow__(self, k: int):
        """``p^{⊗k}`` for an integer ``k >= 0``."""
        if not isinstance(k, (int, np.integer)) or k < 0:
            raise DomainError(f"tropical polynomials can be raised to integer powers k >= 0 only, not {k!r}")
        out = TropicalPolynomial({(0,) * self.n_vars: 0}, semiring=self._semiring, variables=self._variables)
        base = self
        k = int(k)
        while k:
            if k & 1:
                out = out * base
            k >>= 1
            if k:
                base = base * base
        return out

    def _new(self, exps, coefs, variables=None):
        obj = TropicalPolynomial.__new__(TropicalPolynomial)
        obj._init(exps, coefs, self._semiring, self._variables if variables is None else variables)
        return obj

    def __eq__(self, other) -> bool:
        """Equal as formal polynomials: same semiring and the same terms, variables matched by name (as the
        arithmetic matches them: ``max(0, x)`` and ``max(0, y)`` differ; a polynomial in ``(x, y)`` equals
        the same one written in ``(y, x)``)."""
        if not isinstance(other, TropicalPolynomial):
            return NotImplemented
        return self._semiring == other._semiring and self._named_terms() == other._named_terms()

    def __hash__(self):
        return hash((self._semiring.name, self._named_terms()))

    def _named_terms(self) -> frozenset:
        """The terms as ``((variable, exponent) pairs with non-zero exponents, coefficient)``, order-free."""
        names = self._variables
        return frozenset(
            (tuple(sorted((v, e) for v, e in zip(names, row) if e != 0)), c)
            for row, c in zip(self._exponents.tolist(), self._coefficients.tolist())
        )

    def __str__(self) -> str:
        op = "max" if self._semiring.sense == 1 else "min"
        parts = []
        for e, c in zip(self._exponents.tolist(), self._coefficients.tolist()):
            lin = []
            for v, name in zip(e, self._variables):
                if v == 0:
                    continue
                if v == 1:
                    lin.append(name)
                elif v == -1:
                    lin.append(f"-{name}")
                else:
                    s = _fmt_num(v)
                    lin.append(f"({s})*{name}" if isinstance(v, Fraction) or (isinstance(v, float) and v < 0) or "/" in s else f"{s}*{name}")
            if not lin:
                parts.append(_fmt_num(c))
            else:
                body = " + ".join(lin)
                # "+ -" after the coefficient too: "1 + -x" does not parse back, "1 - x" does
                parts.append((body if c == 0 else f"{_fmt_num(c)} + {body}").replace("+ -", "- "))
        return f"{op}({', '.join(parts)})"

    def __repr__(self) -> str:
        return f"TropicalPolynomial({str(self)!r})"

    # -- univariate --------------------------------------------------------------------------------
    def roots(self) -> tuple:
        """Tropical roots of a univariate polynomial with their multiplicities, sorted increasingly.

        A root is a point where the ⊕ is attained at least twice; its multiplicity is the length of the
        corresponding edge of the Newton subdivision (a difference of exponents).

        Examples
        --------
        >>> TropicalPolynomial.parse("max(0, 2*x, 3*x + 1)").roots()   # the term 2*x never dominates
        ((Fraction(-1, 3), 3),)
        >>> TropicalPolynomial.parse("min(0, 2*x, 3*x + 1)").roots()
        ((-1, 1), (0, 2))
        """
        self._require_univariate("roots")
        return self._univariate()[2]

    def factor(self) -> "UnivariateFactorization":
        """Factor a univariate polynomial as ``c ⊗ x^{⊗a_min} ⊗ ⊗_r (x ⊕ r)^{⊗m_r}`` (equal as functions).

        Examples
        --------
        >>> f = TropicalPolynomial.parse("min(0, 2*x, 3*x + 1)").factor()
        >>> print(f)
        1 ⊗ (x ⊕ -1) ⊗ (x ⊕ 0)^2
        """
        self._require_univariate("factor")
        c_top, a_min, roots = self._univariate()
        return UnivariateFactorization(self._semiring, c_top, a_min, roots, self._variables[0])

    def _require_univariate(self, what: str):
        if self.n_vars != 1:
            raise ShapeError(f"{what} needs a polynomial in one variable, this one has {self.n_vars}")

    def _univariate(self):
        sub = self.subdivision()
        a = [to_exact_scalar(v) if self._exact_exp else float(v) for v in self._exponents[:, 0].tolist()]
        c = self._coefficients.tolist()
        verts = sorted(sub.vertices, key=lambda i: a[i])
        roots = []
        for i, j in zip(verts, verts[1:]):
            if isinstance(c[i], float) or isinstance(a[i], float):
                r = (float(c[i]) - float(c[j])) / (float(a[j]) - float(a[i]))
            else:
                r = Fraction(c[i] - c[j]) / (a[j] - a[i])
            if isinstance(r, Fraction):
                r = to_exact_scalar(r)
            m = a[j] - a[i]
            roots.append((r, m))
        roots.sort(key=lambda t: t[0])
        top = verts[-1]
        return c[top], a[verts[0]], tuple(roots)

    # -- geometry ----------------------------------------------------------------------------------
    def newton_polytope(self):
        """The Newton polytope of the exponents (:class:`~tropix.tropical.subdivision.NewtonPolytope`)."""
        from .subdivision import newton_polytope

        return newton_polytope(self._exponents)

    def subdivision(self):
        """The regular subdivision of the Newton polytope induced by the coefficients (exact).

        Max-plus lifts to the upper hull, min-plus to the lower hull.  Cells index the terms in the order
        of :attr:`exponents`.
        """
        if "subdivision" not in self._cache:
            from .subdivision import _subdivide

            self._cache["subdivision"] = _subdivide(
                self._exponents, self._coefficients, self._semiring, distinct=True  # terms are merged in _init
            )
        return self._cache["subdivision"]

    def hypersurface(self):
        """The tropical hypersurface (:class:`~tropix.tropical.hypersurface.TropicalHypersurface`)."""
        if "hypersurface" not in self._cache:
            from .hypersurface import TropicalHypersurface

            self._cache["hypersurface"] = TropicalHypersurface.of(self)
        return self._cache["hypersurface"]


@dataclass(frozen=True)
class UnivariateFactorization:
    """``constant ⊗ x^{⊗shift} ⊗ ⊗_r (x ⊕ r)^{⊗m_r}``: equal, as a function, to the factored polynomial.

    Attributes
    ----------
    semiring : MaxPlus or MinPlus
    constant
        The coefficient of the highest-degree term.
    shift
        The lowest exponent.
    roots : tuple of (root, multiplicity)
    """

    semiring: TropicalSemiring
    constant: Any
    shift: Any
    roots: tuple
    variable: str = "x"

    def __call__(self, x):
        """Evaluate the product (as a function of a scalar or a NumPy array)."""
        op = np.maximum if self.semiring.sense == 1 else np.minimum
        if isinstance(x, (list, tuple)):
            x = asarray(x)
        # (a shift of 0 is the exponent 0: no term, also at x = ±inf, where 0 * x would be NaN)
        zero = np.zeros_like(x) if isinstance(x, np.ndarray) else 0
        out = self.constant + (self.shift * x if self.shift != 0 else zero)
        for r, m in self.roots:
            out = out + m * (op(x, r) if isinstance(x, np.ndarray) else (max(x, r) if self.semiring.sense == 1 else min(x, r)))
        return out

    def expand(self) -> TropicalPolynomial:
        """Multiply the factors out (the result may differ from the original in terms that never dominate)."""
        v = self.variable
        out = TropicalPolynomial({self.shift: self.constant}, semiring=self.semiring, variables=(v,))
        for r, m in self.roots:
            if not isinstance(m, (int, np.integer)):
                raise DomainError("expand needs integer multiplicities")
            out = out * TropicalPolynomial({1: 0, 0: r}, semiring=self.semiring, variables=(v,)) ** int(m)
        return out

    def __str__(self) -> str:
        x = self.variable
        parts = [_fmt_num(self.constant)]
        if self.shift != 0:
            parts.append(f"{x}^{_fmt_num(self.shift)}")
        for r, m in self.roots:
            f = f"({x} ⊕ {_fmt_num(r)})"
            parts.append(f if m == 1 else f"{f}^{_fmt_num(m)}")
        return " ⊗ ".join(parts)
