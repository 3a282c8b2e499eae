"""Kleene star ``A* = I ⊕ A ⊕ A^2 ⊕ …`` and Kleene plus ``A+ = A ⊕ A^2 ⊕ …`` of a square matrix.

Read ``A[i, j]`` as the weight of an edge ``i → j`` (the tropical zero means "no edge").  Then
``(A^k)[i, j]`` is the best weight of a walk of length ``k`` from ``i`` to ``j`` (best = largest in
max-plus, smallest in min-plus), ``A+`` the best over walks of length ≥ 1 and ``A*`` adds the empty
walk.  The series converges (and ``A* = I ⊕ A ⊕ … ⊕ A^(n-1)``) exactly when no cycle is better than
the empty one: no cycle of positive weight in max-plus, of negative weight in min-plus.  Otherwise
:class:`~tropix.errors.DivergenceError` is raised, naming a node on such a cycle.

Both are computed by the Floyd–Warshall recursion (``n`` rank-one updates, ``O(n^3)``) written with the
semiring's operations, so they are exact for exact input and run on any array library (torch keeps its
autograd graph).  Float results carry ordinary rounding: each entry is a sum of at most ``n`` terms.
"""

from __future__ import annotations

from typing import Any

import math
from fractions import Fraction

from .._repr import summary
from ..errors import DivergenceError, ToleranceError
from ._args import check_real
from ._square import is_exact_array, prepare_square, to_python_scalar, tropical_semiring
from .semiring import Semiring, TropicalSemiring

__all__ = ["kleene_star", "kleene_plus"]


def _diag(D, n: int, xp):
    return xp.stack([D[i, i] for i in range(n)]) if not is_exact_array(D) else D.diagonal().copy()


def _closure(A, S: TropicalSemiring, xp, n: int, check: bool, tol: float = 0.0):
    """Floyd–Warshall: best walks of length ≥ 1.  With ``check`` raise as soon as a cycle beats ``one``
    by more than ``tol``."""
    D = A
    limit = S.one if not tol else S.sense * float(tol)
    for k in range(n):
        D = S.add(D, S.mul(D[:, k : k + 1], D[k : k + 1, :]))
        if check:
            diag = _diag(D, n, xp)
            bad = S.better(diag, limit)
            if bool(xp.any(bad)):
                i = int(_first_true(bad, xp))
                w = diag[i]
                w = to_python_scalar(w) if is_exact_array(D) else float(w)
                kind = "positive" if S.sense == 1 else "negative"
                raise DivergenceError(
                    f"the Kleene star diverges in {S.name}: node {i} lies on a closed walk of {kind} weight "
                    f"{_weight_text(w)} (so A^k grows without bound); subtract the best cycle mean (see "
                    f"tropix.tropical.eigenvalue) from A to normalise it"
                )
    return D


def _weight_text(w) -> str:
    """``w`` for an error message; an exact value with more digits than Python turns into a string
    (``sys.get_int_max_str_digits()``, 4300 by default) as a power of two (that raised ValueError)."""
    try:
        return str(w)
    except ValueError:
        r = Fraction(w)
        return f"about {'-' if r < 0 else ''}2^{abs(r.numerator).bit_length() - r.denominator.bit_length()}"


def _check_tol(tol, A=None) -> float:
    """``tol`` checked; 0 for exact input ``A`` (the tolerance is for float input: exact input is decided
    exactly, a closed walk of weight ``10^-6`` diverges whatever ``tol``)."""
    t = float(check_real(tol, "tol", minimum=0))
    if not (t >= 0 and math.isfinite(t)):
        raise ToleranceError(f"tol must be a finite non-negative number, got {summary(tol)}")
    return 0.0 if A is not None and is_exact_array(A) else t


def _first_true(mask, xp):
    idx = xp.nonzero(mask)[0] if not is_exact_array(mask) else mask.nonzero()[0]
    return idx[0]


def plus_closure(A, S: TropicalSemiring, xp, n: int, *, check: bool = True):
    """``A+`` for already prepared input (used by :mod:`tropix.tropical.eigen` with ``check=False``)."""
    return _closure(A, S, xp, n, check)


def kleene_plus(A: Any, *, semiring: Semiring | str | None = None, tol: float = 0.0):
    """Kleene plus ``A+ = A ⊕ A^2 ⊕ A^3 ⊕ …``: best weights of walks with at least one edge.

    Parameters
    ----------
    A : array_like
        Shape (n, n).
        Square matrix; ``A[i, j]`` is the weight of the edge ``i → j``.
    semiring : MaxPlus or MinPlus, default MaxPlus
    tol : float, default 0
        For float input: closed walks better than the empty walk by at most ``tol`` (rounding noise, e.g.
        after subtracting a float eigenvalue) do not raise; the result is then the Floyd–Warshall value,
        off by at most about ``n·tol``.  The default decides exactly, and so does exact input whatever
        ``tol``.

    Returns
    -------
    array
        Shape (n, n).
        Same library as ``A``; exact (object array) for integer/rational input.  The diagonal holds the
        best cycle weight through each node (the tropical zero if a node is on no cycle).

    Raises
    ------
    DivergenceError
        If some cycle has positive weight (max-plus) or negative weight (min-plus).
    ShapeError, EmptyInputError, NaNError, ConventionError
        For a non-square or empty matrix, NaN, or the opposite convention's infinity.

    Examples
    --------
    >>> from tropix import MaxPlus
    >>> kleene_plus([[-1, 2], [-3, float("-inf")]], semiring=MaxPlus)
    array([[-1, 2],
           [-3, -1]], dtype=object)
    """
    S = tropical_semiring(semiring, "kleene_plus")
    A, xp, n = prepare_square(A, S)
    return _closure(A, S, xp, n, True, _check_tol(tol, A))


def kleene_star(A: Any, *, semiring: Semiring | str | None = None, tol: float = 0.0):
    """Kleene star ``A* = I ⊕ A ⊕ A^2 ⊕ …``: best weights of walks of any length (including none).

    When it exists, ``A* = I ⊕ A ⊕ … ⊕ A^(n-1)``, ``A* ⊗ A* = A*`` and ``x = A* ⊗ b`` is the least
    solution of ``x = A ⊗ x ⊕ b`` (max-plus; the greatest in min-plus).  In min-plus it is the matrix of
    shortest-path distances.

    Parameters
    ----------
    A : array_like
        Shape (n, n).
        Square matrix; ``A[i, j]`` is the weight of the edge ``i → j``, the tropical zero means no edge.
    semiring : MaxPlus or MinPlus, default MaxPlus
    tol : float, default 0
        For float input: closed walks better than the empty walk by at most ``tol`` (rounding noise, e.g.
        after subtracting a float eigenvalue) do not raise; the result is then the Floyd–Warshall value,
        off by at most about ``n·tol``.  The default decides exactly, and so does exact input whatever
        ``tol``.

    Returns
    -------
    array
        Shape (n, n).
        Same library as ``A``; exact (object array of ``int``/``Fraction``/``±inf``) for exact input.

    Raises
    ------
    DivergenceError
        If a cycle has positive weight (max-plus) or negative weight (min-plus): then ``A^k`` grows
        without bound and the series has no limit.  The message names a node on such a cycle.
    ShapeError, EmptyInputError, NaNError, ConventionError
        For a non-square or empty matrix, NaN, or the opposite convention's infinity.

    Examples
    --------
    Shortest paths (min-plus) in a 3-node graph with edges 0→1 (4), 1→2 (1), 0→2 (7), 2→0 (2):

    >>> from tropix import MinPlus, MaxPlus
    >>> inf = float("inf")
    >>> kleene_star([[inf, 4, 7], [inf, inf, 1], [2, inf, inf]], semiring=MinPlus)
    array([[0, 4, 5],
           [3, 0, 1],
           [2, 6, 0]], dtype=object)

    A cycle of positive weight makes the max-plus star diverge:

    >>> kleene_star([[0, 1], [0, 0]], semiring=MaxPlus)
    Traceback (most recent call last):
    ...
    tropix.errors.DivergenceError: the Kleene star diverges in MaxPlus: node 1 lies on a closed walk of positive weight 1 ...
    """
    S = tropical_semiring(semiring, "kleene_star")
    A, xp, n = prepare_square(A, S)
    P = _closure(A, S, xp, n, True, _check_tol(tol, A))
    return S.add(S.identity(n, like=P), P)
