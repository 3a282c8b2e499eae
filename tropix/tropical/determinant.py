"""The tropical determinant: an optimal assignment, its optimal permutations, and tropical singularity.

For a square matrix ``A`` over a tropical semiring the tropical determinant (tropical permanent) is

.. math:: \\operatorname{tdet} A = \\bigoplus_{\\sigma \\in S_n} \\bigotimes_i A_{i\\sigma(i)},

the best total weight of a permutation: the maximum of ``Σ_i A[i, σ(i)]`` in max-plus, the minimum in
min-plus.  It is an assignment problem and is solved in polynomial time:

* **float input** uses :func:`scipy.optimize.linear_sum_assignment` (O(n³)) and returns a float;
* **exact input** (integers, :class:`~fractions.Fraction`, sympy rationals) is scaled to integers by the
  common denominator; scipy proposes a matching on a float copy and exact dual variables are computed
  for it by Bellman–Ford potentials in integer arithmetic (``int64`` while every intermediate value
  provably fits, Python integers otherwise).  The duals *certify* optimality; if certification fails
  (float rounding misled scipy) an exact shortest-augmenting-path Hungarian algorithm solves the problem.

Tropical-zero entries (``-inf`` in max-plus, ``+inf`` in min-plus) are forbidden assignments; a matrix without
any permutation of finite weight has ``tdet`` equal to the tropical zero.

A matrix is **tropically singular** when the optimum is attained by at least two permutations, or when it
is the tropical zero (no permutation of finite weight: the analogue of a zero determinant, so that e.g. a
1×1 matrix ``[zero]`` is singular and an all-zero matrix has tropical rank 0).  All optimal permutations
are the perfect matchings of the *tight* bipartite graph of an optimal dual solution (complementary
slackness), so they are enumerated by a search that only visits extendable partial matchings.

Floats are compared at their exact binary values (every float is a dyadic rational): ``tol=0`` means
exact ties.  Pass ``tol > 0`` to count permutations whose weight is within ``tol`` of the optimum as
optimal (useful when the data carry rounding errors: ``0.1 + 0.3`` and ``0.2 + 0.2`` differ by one ulp).

Examples
--------
>>> from tropix.tropical.determinant import tdet, optimal_permutations, is_singular
>>> A = [[0, 1], [1, 2]]
>>> tdet(A), optimal_permutations(A), is_singular(A)
(2, [(0, 1), (1, 0)], True)
>>> tdet(A, semiring="min"), is_singular([[0, 1], [2, 0]], semiring="min")
(2, False)
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .._array import asarray, check_nonempty, is_array, is_exact, to_exact_scalar, to_numpy
from .._repr import summary
from ..errors import FloatOverflowError, SemiringMismatchError, ShapeError, SizeLimitError, ToleranceError
from ._args import check_real
from .semiring import Semiring, TropicalSemiring, get_semiring

__all__ = ["tdet", "optimal_permutation", "optimal_permutations", "is_singular"]

_INT64_SAFE = 1 << 60  # bound on |intermediate values| below which int64 arithmetic cannot overflow


# ----------------------------------------------------------------------------------------------
# input handling
# ----------------------------------------------------------------------------------------------
def _tropical(semiring: Any) -> TropicalSemiring:
    S = get_semiring(semiring)
    if not isinstance(S, TropicalSemiring):
        raise SemiringMismatchError(
            f"the tropical determinant and ranks are defined over MaxPlus or MinPlus, not {S}"
        )
    return S


def _matrix(A: Any, S: Semiring, name: str = "A", square: bool = False) -> np.ndarray:
    """Validate ``A`` (NaN, convention, 2-d, non-empty, optionally square) and return it as NumPy."""
    A = S.validate(A, name)
    if not is_array(A) and not isinstance(A, np.ndarray):
        A = np.asarray(A)
    if isinstance(A, np.ndarray) and A.dtype == object:
        # the rule of lists (tropix.asarray) for object arrays too: one finite float makes the matrix float64,
        # else exact (sympy numbers to Fractions); before, a float among Fractions gave an exact result from
        # the float's binary value, and a sympy Float crashed
        A = asarray(A, name=name)
    ndim = len(A.shape)
    if ndim != 2:
        raise ShapeError(f"{name} must be a matrix (2-d), got shape {tuple(int(s) for s in A.shape)}")
    check_nonempty(A, name)
    if square and int(A.shape[0]) != int(A.shape[1]):
        raise ShapeError(f"{name} must be square, got shape {tuple(int(s) for s in A.shape)}")
    exact = is_exact(A)
    An = to_numpy(A)
    if exact and An.dtype != object:
        if An.dtype == np.uint64 and int(An.max()) > np.iinfo(np.int64).max:  # astype(int64) would wrap
            An = np.array([int(v) for v in An.ravel()], dtype=object).reshape(An.shape)
        else:
            An = An.astype(np.int64)  # integer (or bool) dtypes: exact machine integers
    elif not exact:
        An = np.asarray(An, dtype=np.float64)
    return An


def _integer_weights(An: np.ndarray, S: TropicalSemiring):
    """Exact integer weights in *max orientation*: ``W = sense · A · L`` with common denominator ``L``.

    Returns ``(W, allowed, L)`` where ``W`` is an integer array (``int64`` when every entry fits with a
    wide margin, else object of Python ints; 0 where forbidden) and ``allowed`` marks the entries that
    are not the tropical zero.  Floats are taken at their exact binary values ``m·2^e``.
    """
    sense = S.sense
    if np.issubdtype(An.dtype, np.integer):
        allowed = np.ones(An.shape, dtype=bool)
        if -(1 << 58) < int(An.min()) and int(An.max()) < (1 << 58):
            return sense * An.astype(np.int64), allowed, 1
        W = np.empty(An.shape, dtype=object)
        W.ravel()[:] = [sense * int(v) for v in An.ravel()]
        return W, allowed, 1
    if An.dtype != object:  # float64: exact dyadic decomposition, vectorised
        allowed = np.isfinite(An)
        x = np.where(allowed, An, 0.0)
        mant, ex = np.frexp(x)
        m = (mant * 2.0**53).astype(np.int64)  # exact: |mant| < 1 has 53 significant bits
        e = ex.astype(np.int64) - 53
        nz = m != 0
        if not nz.any():
            return np.zeros(An.shape, dtype=np.int64), allowed, 1
        emin = int(e[nz].min())
        shift = np.where(nz, e - emin, 0)
        if int(shift.max()) + 54 < 60:
            W = sense * (m << shift)
        else:
            W = np.empty(An.shape, dtype=object)
            W.ravel()[:] = [sense * (int(a) << int(b)) for a, b in zip(m.ravel(), shift.ravel())]
        L = 1 << -emin if emin < 0 else 1
        if emin > 0:
            W = W * (1 << emin) if W.dtype == object else W.astype(object) * (1 << emin)
        return W, allowed, L
    flat = An.ravel()
    allowed = np.ones(An.shape, dtype=bool)
    fl = allowed.ravel()
    vals = []
    L = 1
    for k, v in enumerate(flat):
        if type(v) is int:
            vals.append(v)
            continue
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if math.isinf(v):
                fl[k] = False
                vals.append(0)
                continue
            v = Fraction(v)
        else:
            v = to_exact_scalar(v)
        if isinstance(v, Fraction) and v.denominator != 1:
            L = L * v.denominator // math.gcd(L, v.denominator)
        vals.append(v)
    if L == 1:
        ints = [sense * int(v) for v in vals]
    else:
        ints = [sense * (int(v) * L if type(v) is int else v.numerator * (L // v.denominator)) for v in vals]
    W = np.empty(An.shape, dtype=object)
    W.ravel()[:] = ints
    big = max(abs(min(ints)), abs(max(ints)))
    if big < (1 << 58):
        W = W.astype(np.int64)
    return W, allowed, L


# ----------------------------------------------------------------------------------------------
# exact Hungarian algorithm (shortest augmenting paths, O(n^3)), maximisation on integer weights
# ----------------------------------------------------------------------------------------------
def _assignment(W: np.ndarray, allowed: np.ndarray):
    """Maximum-weight perfect matching of the integer matrix ``W`` restricted to ``allowed`` entries.

    Returns ``(perm, u, v, feasible)``: ``perm[i]`` is the column of row ``i``; ``u``, ``v`` are integer
    dual variables with ``u_i + v_j ≥ W_ij`` on every allowed entry and equality on ``perm``
    (so ``Σu + Σv`` is the optimum); ``feasible`` is False when no perfect matching of allowed entries
    exists (then ``perm`` uses a forbidden entry and the duals certify nothing).
    """
    n = W.shape[0]
    fin = W[allowed]
    hi, lo = (int(fin.max()), int(fin.min())) if fin.size else (0, 0)
    # minimisation costs C = hi - W >= 0; forbidden entries cost BIG, more than any finite matching
    span = hi - lo
    big = n * span + 1
    bound = 4 * (n + 2) * (big + span + 1)
    dtype = np.int64 if bound < _INT64_SAFE else object
    C = hi - W.astype(object)  # Python integers
    C[~allowed] = big
    C = C.astype(dtype)
    inf = (1 << 62) if dtype is np.int64 else 2 * bound  # exceeds every reduced cost
    u = np.zeros(n + 1, dtype=dtype)
    v = np.zeros(n + 1, dtype=dtype)
    p = np.zeros(n + 1, dtype=np.int64)  # p[j] = row (1-based) matched to column j (1-based), 0 = free
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(n + 1, inf, dtype=dtype)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = C[i0 - 1] - u[i0] - v[1:]
            mv = minv[1:]
            upd = free & (cur < mv)
            mv[upd] = cur[upd]
            way[1:][upd] = j0
            idx = np.flatnonzero(free)
            k = idx[int(np.argmin(mv[idx]))]
            delta = mv[k]
            j1 = int(k) + 1
            rows = p[used]
            u[rows] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    perm = np.empty(n, dtype=np.int64)
    for j in range(1, n + 1):
        perm[p[j] - 1] = j - 1
    feasible = bool(allowed[np.arange(n), perm].all())
    # reduced cost C - u - v >= 0; translate to max-orientation duals of W: W_ij = hi - C_ij
    # u'_i + v'_j >= W_ij with u'_i = -u_i, v'_j = hi - v_j
    uu = [-int(x) for x in u[1:]]
    vv = [hi - int(x) for x in v[1:]]
    return perm, uu, vv, feasible


def _certify(W: np.ndarray, allowed: np.ndarray, perm: np.ndarray):
    """Exact dual certificate for the perfect matching ``perm`` of allowed entries, or ``None``.

    ``perm`` is optimal iff the exchange graph on columns (edge ``perm[i] → j`` of weight
    ``W_ij − W_i,perm[i]``) has no positive cycle.  Bellman–Ford longest-path potentials ``d`` then give
    duals ``v = d``, ``u_i = W_i,perm[i] − d_perm[i]`` with ``u_i + v_j ≥ W_ij`` and equality on ``perm``;
    if the potentials do not settle within ``n`` rounds there is a positive cycle and ``None`` is returned.
    Vectorised: O(n²) per round, exact (``int64`` when safe, Python integers otherwise).
    """
    n = W.shape[0]
    fin = W[allowed]
    hi, lo = int(fin.max()), int(fin.min())
    safe = (n + 2) * (hi - lo + 1) * 4 < _INT64_SAFE and max(abs(hi), abs(lo)) < _INT64_SAFE // 4
    rows = np.arange(n)
    if safe:
        Wi = W.astype(np.int64)
        base = Wi[rows, perm]
        w = Wi - base[:, None]
        w[~allowed] = -(1 << 61)
        d = np.zeros(n, dtype=np.int64)
    else:
        Wo = W.astype(object)  # Python integers: no overflow whatever the magnitudes
        base = Wo[rows, perm]
        w = Wo - base[:, None]
        w[~allowed] = -(n + 1) * (hi - lo + 1) - 1  # below any potential difference: never chosen
        d = np.zeros(n, dtype=object)
    for _ in range(n + 1):
        cand = (w + d[perm][:, None]).max(axis=0)
        new = np.maximum(d, cand) if safe else np.array([a if a >= b else b for a, b in zip(d, cand)], dtype=object)
        if (new == d).all():
            v = [int(x) for x in d]
            u = [int(base[i]) - v[perm[i]] for i in range(n)]
            return u, v
        d = new
    return None


def _solve(W: np.ndarray, allowed: np.ndarray):
    """Optimal assignment with exact duals: scipy's solver proposes, an exact certificate disposes.

    The candidate matching comes from :func:`scipy.optimize.linear_sum_assignment` on a float copy;
    :func:`_certify` proves it optimal in exact arithmetic (or the exact Hungarian :func:`_assignment`
    takes over, e.g. when float rounding made scipy pick a suboptimal matching).  Same return value as
    :func:`_assignment`.
    """
    from scipy.optimize import linear_sum_assignment

    n = W.shape[0]
    Wf = np.full((n, n), -np.inf)
    fin = W[allowed]
    if W.dtype == object:  # shift huge integers into float range (only a proposal; certified below)
        k = max(0, max(int(fin.max()).bit_length(), int(fin.min()).bit_length()) - 1000)
        Wf[allowed] = [float(int(x) >> k) for x in fin]
    else:
        Wf[allowed] = fin
    try:
        _, perm = linear_sum_assignment(Wf, maximize=True)
    except ValueError:  # no perfect matching of allowed entries at all
        return np.arange(n), [0] * n, [0] * n, False
    perm = np.asarray(perm, dtype=np.int64)
    if allowed[np.arange(n), perm].all():
        cert = _certify(W, allowed, perm)
        if cert is not None:
            return perm, cert[0], cert[1], True
    return _assignment(W, allowed)


def _unique_tight_matching(W: np.ndarray, allowed: np.ndarray, perm: np.ndarray, u, v) -> bool:
    """True iff ``perm`` is the only perfect matching of the tight graph (no alternating cycle).

    Exchange digraph on columns: ``perm[i] → j`` for tight ``(i, j)``, ``j ≠ perm[i]``; another perfect
    matching exists iff it has a directed cycle.  Found by repeatedly deleting sink nodes, O(n²) each round.
    """
    n = W.shape[0]
    small = W.dtype != object and max(max(map(abs, u)), max(map(abs, v))) < _INT64_SAFE
    uu = np.array(u, dtype=np.int64 if small else object)
    vv = np.array(v, dtype=np.int64 if small else object)
    tight = (uu[:, None] + vv[None, :] == W) & allowed
    inv = np.empty(n, dtype=np.int64)
    inv[perm] = np.arange(n)
    adj = tight[inv, :].copy()  # adj[a, b]: column a (via its row) can move to column b
    np.fill_diagonal(adj, False)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        sinks = alive & ~(adj[:, alive].any(axis=1))
        if not sinks.any():
            return False
        alive &= ~sinks
    return True


def _slack(W: np.ndarray, allowed: np.ndarray, u, v) -> np.ndarray:
    """Object array of the dual slacks ``u_i + v_j - W_ij`` (>= 0); ``None`` where forbidden."""
    n, m = W.shape
    S = np.empty((n, m), dtype=object)
    for i in range(n):
        for j in range(m):
            S[i, j] = u[i] + v[j] - int(W[i, j]) if allowed[i, j] else None
    return S


def _has_perfect_matching(adj: list[list[int]], rows: list[int], cols_free: set[int]) -> bool:
    """Kuhn's augmenting paths: can every row in ``rows`` be matched to a distinct column of ``cols_free``?"""
    match: dict[int, int] = {}

    def augment(r, seen):
        for c in adj[r]:
            if c in cols_free and c not in seen:
                seen.add(c)
                if c not in match or augment(match[c], seen):
                    match[c] = r
                    return True
        return False

    for r in rows:
        if not augment(r, set()):
            return False
    return True


def _enumerate(slack: np.ndarray, budget: int, limit: int):
    """All permutations with total slack <= ``budget`` (slacks are >= 0), at most ``limit + 1`` of them.

    Depth-first over rows; a branch is kept only if the remaining rows can still be matched with edges
    of slack <= remaining budget (for ``budget = 0`` this makes every kept branch lead to a solution).
    """
    n = slack.shape[0]
    out: list[tuple[int, ...]] = []
    cand = [
        sorted((j for j in range(n) if slack[i, j] is not None and slack[i, j] <= budget), key=lambda j: slack[i, j])
        for i in range(n)
    ]
    chosen: list[int] = []
    used: set[int] = set()

    def rec(i, spent):
        if len(out) > limit:
            return
        if i == n:
            out.append(tuple(chosen))
            return
        rest = budget - spent
        for j in cand[i]:
            s = slack[i, j]
            if s > rest or j in used:
                continue
            used.add(j)
            chosen.append(j)
            left = rest - s
            adj = [[c for c in cand[r] if slack[r, c] <= left] for r in range(n)]
            if _has_perfect_matching(adj, list(range(i + 1, n)), set(range(n)) - used):
                rec(i + 1, spent + s)
            chosen.pop()
            used.discard(j)
            if len(out) > limit:
                return

    rec(0, 0)
    return out


def _scaled_tol(tol: Any, L: int) -> int:
    if tol is None:
        return 0
    tol = check_real(tol, "tol", minimum=0)  # (its value: a 0-d tensor's item, which Fraction takes)
    if isinstance(tol, (float, np.floating)) and not (math.isfinite(tol) and tol >= 0):  # inf: OverflowError before
        raise ToleranceError(f"tol must be a finite non-negative number, got {tol}")
    if tol < 0:
        raise ToleranceError(f"tol must be a non-negative number, got {tol}")
    t = Fraction(tol) * L
    return math.floor(t)


def _solve_exact(An: np.ndarray, S: TropicalSemiring):
    W, allowed, L = _integer_weights(An, S)
    perm, u, v, feasible = _solve(W, allowed)
    return W, allowed, L, perm, u, v, feasible


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------
def tdet(A: Any, *, semiring: Semiring | str | None = None):
    """The tropical determinant ``⊕_σ ⊗_i A[i, σ(i)]`` of a square matrix (an optimal assignment).

    Parameters
    ----------
    A : array_like
        Square matrix (list, NumPy, torch or any array-API array).  Tropical-zero entries are forbidden
        assignments.
    semiring : Semiring or str, optional
        ``MaxPlus`` (default) or ``MinPlus``.

    Returns
    -------
    int, Fraction or float
        Exact (``int``/``Fraction``) when every finite entry is exact (ints, Fractions, sympy rationals,
        integer arrays), ``float`` as soon as one finite entry is a float: mixed lists and NumPy object
        arrays follow :func:`tropix._array.asarray` (the floats' exact binary values are not promoted to
        Fractions).  ``±inf`` entries are tropical zeros and do not make the input float.  The tropical zero
        (``-inf`` / ``+inf``) if no permutation has finite weight.

    Raises
    ------
    ShapeError
        If ``A`` is not a square matrix.
    EmptyInputError
        If ``A`` is 0×0.
    NaNError, ConventionError
        If ``A`` contains NaN, or the infinity of the other convention.
    FloatOverflowError
        If ``A`` holds floats and the (finite) optimum is beyond the float range: as a float it would be
        ``±inf``, the illegal infinity or a false tropical zero.

    Notes
    -----
    O(n³).  Float input: :func:`scipy.optimize.linear_sum_assignment`, except for entries so large
    (``max|A_ij|·4(n+1) ≥ 2^1016``) that the solver's sums could overflow: those take the exact path and the
    result is the exact optimum rounded once.  Exact input: scipy's matching on the integers ``A·L``
    (``L`` the common denominator), certified optimal by exact dual variables (or the exact Hungarian
    algorithm when the certificate fails).

    Examples
    --------
    >>> from fractions import Fraction
    >>> tdet([[1, 2], [3, Fraction(1, 2)]])
    5
    >>> tdet([[1, 2], [3, Fraction(1, 2)]], semiring="min")
    Fraction(3, 2)
    >>> tdet([[0.0, float("-inf")], [float("-inf"), float("-inf")]])
    -inf
    >>> tdet([[1.5, Fraction(1, 3)], [2, 0]]), tdet([[Fraction(3, 2), float("-inf")], [2, 0]])  # float; exact
    (2.3333333333333335, Fraction(3, 2))
    """
    S = _tropical(semiring)
    An = _matrix(A, S, "A", square=True)
    if An.dtype == np.float64 and not _near_float_limit(An):
        return _tdet_float(An, S)
    W, allowed, L, perm, u, v, feasible = _solve_exact(An, S)
    if not feasible:
        return S.zero
    total = sum(int(W[i, perm[i]]) for i in range(An.shape[0])) * S.sense  # = tdet · L, exactly
    if An.dtype == np.float64:  # float input near the float range: the exact optimum, correctly rounded
        try:
            return float(Fraction(total, L))
        except OverflowError:
            sign = "+" if total > 0 else "-"
            raise FloatOverflowError(
                f"tdet: the optimum of the float matrix A is finite but beyond the float64 range "
                f"(about {sign}2^{(abs(total) // L).bit_length()}); as a float it would be {sign}inf, which "
                f"{'is not an element of ' + S.name if (total > 0) == (S.sense == 1) else 'would claim that no permutation has finite weight'}; "
                "pass exact input (int/Fraction) for the exact value, or rescale the matrix"
            ) from None
    return to_exact_scalar(Fraction(total, L))


_FLOAT_SAFE = 2.0**1016  # below this, scipy's float assignment and its sums stay far from overflow


def _near_float_limit(An: np.ndarray) -> bool:
    """Whether a float matrix's finite entries are large enough that an O(n) sum of them could overflow.

    scipy's assignment solver adds and subtracts up to about ``2n`` entries; near ``1.8e308`` that overflows
    and the solver silently returns a wrong matching (or reports the problem infeasible).  Such matrices take
    the exact path (entries are exact dyadic rationals).
    """
    fin = An[np.isfinite(An)]
    if fin.size == 0:
        return False
    return float(np.max(np.abs(fin))) * 4 * (An.shape[0] + 1) >= _FLOAT_SAFE


def _tdet_float(An: np.ndarray, S: TropicalSemiring) -> float:
    from scipy.optimize import linear_sum_assignment

    try:
        r, c = linear_sum_assignment(An, maximize=S.sense == 1)
    except ValueError:  # "cost matrix is infeasible": every permutation meets a tropical zero
        return S.zero
    return float(np.sum(An[r, c]))


def optimal_permutation(A: Any, *, semiring: Semiring | str | None = None) -> tuple[int, ...] | None:
    """One optimal permutation ``σ`` (as the tuple ``(σ(0), …, σ(n-1))``), or ``None`` if ``tdet`` is the zero.

    Examples
    --------
    >>> optimal_permutation([[5, 0, 0], [0, 0, 5], [0, 5, 0]])
    (0, 2, 1)
    >>> optimal_permutation([[float("inf"), 1.0], [float("inf"), 2.0]], semiring="min") is None
    True
    """
    S = _tropical(semiring)
    An = _matrix(A, S, "A", square=True)
    if An.dtype == np.float64 and not _near_float_limit(An):
        from scipy.optimize import linear_sum_assignment

        try:
            r, c = linear_sum_assignment(An, maximize=S.sense == 1)
        except ValueError:
            return None
        return tuple(int(x) for x in c)
    *_, perm, u, v, feasible = _solve_exact(An, S)
    return tuple(int(x) for x in perm) if feasible else None


def optimal_permutations(
    A: Any, *, semiring: Semiring | str | None = None, tol: Any = 0, limit: int = 10_000
) -> list[tuple[int, ...]]:
    """All optimal permutations of a square matrix, each as the tuple ``(σ(0), …, σ(n-1))``, sorted.

    Parameters
    ----------
    A : array_like
        Square matrix.
    semiring : Semiring or str, optional
        ``MaxPlus`` (default) or ``MinPlus``.
    tol : number, optional
        Permutations whose weight is within ``tol`` of the optimum count as optimal (default 0: exact
        ties; floats are compared at their exact binary values).
    limit : int, optional
        Maximal number of permutations returned.

    Returns
    -------
    list of tuple of int
        Empty if no permutation has finite weight.

    Raises
    ------
    SizeLimitError
        If more than ``limit`` permutations are optimal.

    Notes
    -----
    One exact Hungarian solve (O(n³)) gives dual variables ``u, v``; a permutation is optimal iff it only
    uses *tight* entries (``u_i + v_j = A_ij``), and within ``tol`` iff its total slack is at most ``tol``.
    The search keeps a partial permutation only if the remaining rows can still be matched, so the
    cost is polynomial per permutation found (O(n⁴) each, with a small constant).

    Examples
    --------
    >>> optimal_permutations([[0, 0], [0, 0]])
    [(0, 1), (1, 0)]
    >>> optimal_permutations([[0.1, 0.2], [0.2, 0.3]])  # 0.1 + 0.3 < 0.2 + 0.2 in binary
    [(1, 0)]
    >>> optimal_permutations([[0.1, 0.2], [0.2, 0.3]], tol=1e-12)
    [(0, 1), (1, 0)]
    """
    S = _tropical(semiring)
    An = _matrix(A, S, "A", square=True)
    if not isinstance(limit, int) or limit < 1:
        raise ToleranceError(f"limit must be a positive integer, got {summary(limit)}")
    W, allowed, L, perm, u, v, feasible = _solve_exact(An, S)
    if not feasible:
        return []
    budget = _scaled_tol(tol, L)
    perms = _enumerate(_slack(W, allowed, u, v), budget, limit)
    if len(perms) > limit:
        raise SizeLimitError(f"more than limit={limit} optimal permutations; pass a larger limit")
    return sorted(perms)


def is_singular(A: Any, *, semiring: Semiring | str | None = None, tol: Any = 0) -> bool:
    """True if the square matrix is tropically singular: the optimum is attained at least twice, or is zero.

    Parameters
    ----------
    A : array_like
        Square matrix.
    semiring : Semiring or str, optional
        ``MaxPlus`` (default) or ``MinPlus``.
    tol : number, optional
        Permutations within ``tol`` of the optimum count as attaining it (default 0: exact).

    Examples
    --------
    >>> is_singular([[0, 0], [0, 1]]), is_singular([[0, 0], [0, 1]], semiring="min")
    (False, False)
    >>> is_singular([[1, 2], [2, 3]])
    True
    >>> is_singular([[float("-inf")]])
    True
    """
    S = _tropical(semiring)
    An = _matrix(A, S, "A", square=True)
    return _singular_np(An, S, tol)


def _singular_np(An: np.ndarray, S: TropicalSemiring, tol: Any = 0) -> bool:
    W, allowed, L, perm, u, v, feasible = _solve_exact(An, S)
    if not feasible:
        return True
    budget = _scaled_tol(tol, L)
    if budget == 0:
        return not _unique_tight_matching(W, allowed, perm, u, v)
    return len(_enumerate(_slack(W, allowed, u, v), budget, 1)) > 1
