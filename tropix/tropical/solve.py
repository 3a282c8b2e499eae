"""Tropical linear systems ``A ⊗ x = b`` by residuation: the principal solution and whether it solves.

In max-plus, ``A ⊗ x ≤ b`` holds exactly when ``x ≤ x̄`` with ``x̄_j = min_i (b_i − A_ij)`` (the
*principal solution*, ``x̄ = A^# ⊗' b``, Cuninghame-Green's residuation).  So ``A ⊗ x = b`` has a solution
iff ``A ⊗ x̄ = b``, and then ``x̄`` is the greatest one.  Min-plus is the mirror image
(``x̄_j = max_i (b_i − A_ij)``, ``A ⊗ x ≥ b``).

Tropical zeros follow the residuation rules: a term with ``A_ij`` = zero imposes nothing; ``b_i`` = zero
with ``A_ij`` finite forces ``x_j`` = zero.  A variable whose column of ``A`` is entirely zero is
unconstrained; its principal value is the *opposite* infinity (``+inf`` in max-plus), which marks it as
"any value works" and is listed in :attr:`SolveResult.free`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._array import machine_eps, namespace, to_numpy
from .._repr import compact_repr
from ..errors import FloatOverflowError, ShapeError
from ._args import check_real
from ._square import is_exact_array, prepare, tropical_semiring
from .semiring import Semiring, TropicalSemiring

__all__ = ["solve", "SolveResult"]


@dataclass(frozen=True)
class SolveResult:
    """Result of :func:`solve`.

    Attributes
    ----------
    x : array
        The principal solution: the greatest ``x`` with ``A ⊗ x ≤ b`` (max-plus; least with
        ``A ⊗ x ≥ b`` in min-plus).  Same library as the input; exact for exact input.
    exact : bool
        Whether ``A ⊗ x = b`` holds, i.e. whether the system has a solution at all (within ``tol`` for
        float input).
    product : array
        ``A ⊗ x`` (free variables contribute nothing).  In max-plus it is the best approximation of ``b``
        from below by vectors ``A ⊗ y``.
    free : tuple of int
        Indices of variables that occur in no equation (their column of ``A`` is all zero).
    tol : float
        The tolerance used for ``exact`` (0 for exact input).
    """

    x: Any
    exact: bool
    product: Any
    free: tuple
    tol: float
    __repr__ = compact_repr


def solve(A: Any, b: Any, *, semiring: Semiring | str | None = None, tol: float | None = None) -> SolveResult:
    """Principal solution of ``A ⊗ x = b`` by residuation, and whether it solves the system.

    Parameters
    ----------
    A : array_like
        Shape (m, n).
    b : array_like
        Shape (m,) or (m, p).
        Right-hand side (a matrix solves ``p`` systems at once, column by column).
    semiring : MaxPlus or MinPlus, default MaxPlus
    tol : float, optional
        Float input only: ``exact`` allows ``|A ⊗ x − b| ≤ tol`` (default ``8·eps·max(1, max|A|, max|b|)``,
        since ``b_i − A_ij + A_ij`` is rounded).  Exact input is compared exactly.

    Returns
    -------
    SolveResult
        ``x``, ``exact``, ``product = A ⊗ x``, ``free`` and ``tol``.

    Raises
    ------
    ShapeError
        If ``A`` is not a matrix, ``b`` not a vector/matrix, or their row counts differ.
    EmptyInputError, NaNError, ConventionError, BackendMismatchError
        For empty input, NaN, the opposite infinity, or ``A`` and ``b`` from different libraries.
    FloatOverflowError
        For float input, if a principal-solution entry ``b_i − A_ij`` is finite but beyond the float range;
        for mixed exact and float input (computed in floats), if an exact entry is beyond the float range.

    Examples
    --------
    >>> from tropix import MaxPlus
    >>> r = solve([[0, 2], [1, 0]], [3, 2], semiring=MaxPlus)
    >>> r.x, r.exact
    (array([1, 1], dtype=object), True)
    >>> r = solve([[0, 2], [1, 0]], [3, 5], semiring=MaxPlus)  # no solution: x is the best from below
    >>> r.x, r.exact, r.product
    (array([3, 1], dtype=object), False, array([3, 4], dtype=object))
    """
    S = tropical_semiring(semiring, "solve")
    check_real(tol, "tol", minimum=0, none_ok=True)
    A = prepare(A, S, "A", (2,))
    b = prepare(b, S, "b", (1, 2))
    exact = is_exact_array(A) and is_exact_array(b)
    if is_exact_array(A) != is_exact_array(b):
        # mixed exact and float input: compute in floats, in the library of the float operand
        if is_exact_array(A):
            A = _exact_to_float_like(A, b)
        else:
            b = _exact_to_float_like(b, A)
    xp = namespace(A, b)
    m, n = (int(s) for s in A.shape)
    if int(b.shape[0]) != m:
        raise ShapeError(f"A has {m} rows but b has {int(b.shape[0])} entries; A ⊗ x = b needs them equal")
    vec = b.ndim == 1
    b2 = xp.reshape(b, (m, 1)) if vec else b
    if exact:
        x, prod, free = _solve_exact(A, b2, S)
        t = 0.0
        ok = bool(np.all(prod == b2))
    else:
        x, prod, free = _solve_float(A, b2, S, xp)
        t = _tolerance(A, b2, tol)
        ok = _close(prod, b2, S, xp, t)
    if vec:
        x = x[:, 0]
        prod = prod[:, 0]
    return SolveResult(x=x, exact=ok, product=prod, free=free, tol=t)


def _exact_to_float_like(x, like):
    """The exact operand as floats of ``like``'s library and dtype (mixed exact and float input is float)."""
    try:
        f = np.array([float(v) for v in x.ravel()], dtype=np.float64).reshape(x.shape)
    except OverflowError:  # (an int/Fraction beyond the float range: before, a raw OverflowError)
        raise FloatOverflowError(
            "solve: mixed exact and float input is computed in floats, and an exact entry is beyond the float "
            "range; pass both A and b exact (int/Fraction) for the exact solution, or rescale them"
        ) from None
    if isinstance(like, np.ndarray):
        return f.astype(like.dtype)
    xp = namespace(like)
    return xp.asarray(f, dtype=like.dtype, device=getattr(like, "device", None))


def _solve_exact(A, b, S: TropicalSemiring):
    m, n = A.shape
    p = b.shape[1]
    far = -S.zero  # the opposite infinity: "no constraint"
    x = np.empty((n, p), dtype=object)
    for j in range(n):
        for c in range(p):
            best = far
            for i in range(m):
                a = A[i, j]
                if a == S.zero:
                    continue
                t = S.zero if b[i, c] == S.zero else b[i, c] - a
                if best == far or S.better(best, t):  # keep the worse one: the dual ⊕ (min in max-plus)
                    best = t
            x[j, c] = best
    free = tuple(j for j in range(n) if all(A[i, j] == S.zero for i in range(m)))
    prod = np.empty((m, p), dtype=object)
    for i in range(m):
        for c in range(p):
            acc = S.zero
            for j in range(n):
                if A[i, j] == S.zero or x[j, c] == S.zero or x[j, c] == far:
                    continue
                acc = S.add(acc, A[i, j] + x[j, c])
            prod[i, c] = acc
    return x, prod, free


def _solve_float(A, b, S: TropicalSemiring, xp):
    far = -S.zero
    Az = S.is_zero(A)  # (m, n)
    bz = S.is_zero(b)  # (m, p)
    A3 = xp.expand_dims(xp.where(Az, xp.zeros_like(A), A), axis=2)  # (m, n, 1)
    b3 = xp.expand_dims(xp.where(bz, xp.zeros_like(b), b), axis=1)  # (m, 1, p)
    with np.errstate(over="ignore"):
        diff = b3 - A3
    ovf = xp.isinf(diff)  # finite b_i - A_ij beyond the float range (zeros are masked just below)
    diff = xp.where(xp.expand_dims(bz, axis=1), xp.full_like(diff, S.zero), diff)
    diff = xp.where(xp.expand_dims(Az, axis=2), xp.full_like(diff, far), diff)
    # the residuation b ⊘ A lives in the completed lattice ℝ ∪ {±∞} (both infinities are legitimate here),
    # so it is the dual order's reduction, not the dual semiring's ⊕ (which rejects S's zero)
    x = (xp.min if S.sense == 1 else xp.max)(diff, axis=0)  # (n, p)
    ovf = ovf & ~xp.expand_dims(bz, axis=1) & ~xp.expand_dims(Az, axis=2)
    if bool(xp.any(ovf & (diff == xp.expand_dims(x, axis=0)))):
        # an overflowed difference decides x_j: it would read as the zero or as "free" (A = [[1e308]],
        # b = [-1e308] gave x = -inf and exact=False although x = -2e308 solves it)
        raise FloatOverflowError(
            "solve: a principal-solution entry b_i - A_ij is finite but beyond the float range; pass exact "
            "input (int/Fraction) for the exact solution, or rescale A and b"
        )
    colfree = xp.all(Az, axis=0)
    free = tuple(int(j) for j in np.flatnonzero(np.asarray(to_numpy(colfree))))
    usable = ~(S.is_zero(x) | (x == far))
    xs = xp.where(usable, x, xp.zeros_like(x))
    terms = xp.expand_dims(xp.where(Az, xp.zeros_like(A), A), axis=2) + xp.expand_dims(xs, axis=0)  # (m, n, p)
    ok = xp.expand_dims(~Az, axis=2) & xp.expand_dims(usable, axis=0)
    terms = xp.where(ok, terms, xp.full_like(terms, S.zero))
    prod = S.sum(terms, axis=1)
    return x, prod, free


def _tolerance(A, b, tol):
    if tol is not None:
        return float(tol)
    scale = 1.0
    for v in (A, b):
        a = np.asarray(to_numpy(v), dtype=np.float64)
        fin = np.abs(a[np.isfinite(a)])
        if fin.size:
            scale = max(scale, float(fin.max()))
    eps = machine_eps(A)
    return 8.0 * eps * scale


def _close(prod, b, S, xp, t):
    pz = S.is_zero(prod)
    bz = S.is_zero(b)
    if bool(xp.any(pz != bz)):
        return False
    with np.errstate(over="ignore"):  # a difference beyond the float range is inf: not close
        diff = xp.where(pz, xp.zeros_like(prod), prod - xp.where(bz, xp.zeros_like(b), b))
    return bool(xp.all(xp.abs(diff) <= t))
