"""Argmax regions in high dimension by linear programming: which keys can win, witnesses, adjacency.

For keys ``k_1, …, k_n ∈ R^d`` and biases ``b_j`` (0 if not given), key ``j`` *can win* if some query ``q``
makes ``b_j + q·k_j`` the unique ⊕-best score (max in max-plus, min in min-plus): exactly when
``(k_j, b_j)`` is a vertex of the upper hull of the lifted points (lower hull for min-plus).  In
dimension 32…128 with thousands of keys the full normal fan (:mod:`tropix.tropical.fan`) is far too
large, so this module answers the questions one key at a time:

* :func:`argmax_vertices`: which keys can win, each winner with a *witness* query;
* :func:`argmax_witness`: one key;
* :func:`argmax_cell`: which keys win (tie) at a given query;
* :func:`are_adjacent`: do the regions of keys ``i`` and ``j`` share a wall.

Fast filtering first.  The data are centred and scaled (an affine change that preserves every answer);
then each key ``j`` is tried as its own query direction, ``q = α·k_j`` for a few scales ``α`` (in high
dimension a key is almost always the winner of its own direction), plus a few random directions; every key
that wins such a query with a *certified* margin is a vertex without any LP.  Only the remaining keys need
an LP ``max t s.t. b_j + q·k_j ≥ b_i + q·k_i + t`` (HiGHS via :func:`scipy.optimize.linprog`), solved by
constraint generation: start with the strongest competitors, add violated constraints, re-solve.  A
relaxed LP already proves "cannot win" when its optimum is negative.

Certification.  A key is reported as a vertex only with a witness ``q`` verified after the LP: exactly (in
rational arithmetic) for exact input, and for floats with the rigorous rounding bound
``|fl(b + q·k) − (b + q·k)| ≤ γ_{d+1} (|b| + ‖q‖₂‖k‖₂)``, ``γ_m = m·u/(1 − m·u)``; where that bound cannot tell
(keys a few units in the last place apart) the floats' exact rational values are compared in integer
arithmetic.  Each coordinate is scaled to its own extent before the keys are whitened, so that a set far
wider than high (a triangle ``2·10^15`` wide and 1 high) keeps its height.  "Cannot win" rests on
the LP optimum being below ``-tol`` (in the normalised units); keys whose optimum lies within ``±tol``
(on a face of the hull, e.g. ties) are reported as ``"boundary"``.  Exact copies of a key (same key and
bias) tie with it; the copies are reported like their first occurrence (``duplicate_of``).

Examples
--------
>>> import numpy as np
>>> from tropix.tropical import argmax_vertices
>>> K = np.array([[0., 0.], [1., 0.], [0., 1.], [0.25, 0.25]])
>>> R = argmax_vertices(K)
>>> R.is_vertex.tolist(), R.status.tolist()
([True, True, True, False], ['vertex', 'vertex', 'vertex', 'interior'])
>>> q = R.witness(1); int(np.argmax(K @ q))
1
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .._array import asarray, check_no_nan, check_nonempty, from_numpy, is_array, is_exact, to_exact_scalar, to_numpy
from .._repr import compact_repr, summary
from ..errors import ArgumentTypeError, ConventionError, DomainError, ShapeError, ToleranceError
from ._args import check_index, check_int, check_option, check_real
from .semiring import Semiring, get_semiring, require_tropical

__all__ = [
    "ArgmaxVertices",
    "Adjacency",
    "LPNormalFan",
    "argmax_vertices",
    "argmax_witness",
    "argmax_cell",
    "are_adjacent",
]

_U = 2.0**-53


def _gamma(m: int) -> float:
    return m * _U / (1 - m * _U)


def _fr(v) -> Fraction:
    """Exact value of a finite scalar.  NumPy integers become Python ints first: ``Fraction(np.int8(127))``
    keeps the int8 numerator, and ``127 * 127`` then wrapped (argmax_cell of int8 keys chose the wrong key)."""
    if isinstance(v, (int, np.integer)):
        return Fraction(int(v))
    if isinstance(v, (float, np.floating)):
        return Fraction(float(v))
    return Fraction(to_exact_scalar(v))


def _score_err_tight(Kraw: np.ndarray, braw: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """:func:`_score_err` with ``|K|·|q|`` (entrywise, a matrix product) in place of ``‖k‖‖q‖``: tighter for
    keys of very different sizes (a key of size 1e-30 among keys of size 1e10)."""
    d = Kraw.shape[1]
    g = _gamma(d + 2)
    with np.errstate(over="ignore", invalid="ignore"):
        err = g * (np.abs(braw) + np.abs(Q) @ np.abs(Kraw).T) * (1 + 2 * g) + (d + 2) * 2.0**-1074
    return np.where(np.isnan(err), np.inf, err)


def _score_err(Kraw: np.ndarray, braw: np.ndarray, Q: np.ndarray, nk: np.ndarray | None = None) -> np.ndarray:
    """Rigorous bound on the rounding error of the float scores ``b + K @ q`` for the rows of ``Q``: (B, n).

    ``γ_{d+2} (|b| + ‖k‖‖q‖)`` (Higham, and Cauchy–Schwarz for ``Σ|k_i q_i|``), inflated by ``1 + 2γ`` for the
    rounding of the bound itself, plus ``(d + 2)·2^-1074`` for gradual underflow of tiny products.  The norms
    are computed from rows scaled by their largest entry: plain norms square the entries, which underflowed
    to 0 for keys of size 1e-160 and overflowed to inf for queries of size 1e160 (0·inf = NaN failed every
    certificate).  A NaN left in the bound (an infinite norm times a zero one) fails the comparisons that
    use it, so it certifies nothing.
    """
    d = Kraw.shape[1]
    g = _gamma(d + 2) * (1 + 2 * _gamma(d + 2))
    nk = _scaled_norms(Kraw) if nk is None else nk
    nq = _scaled_norms(Q)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        return g * (np.abs(braw)[None, :] + nq[:, None] * nk[None, :]) + (d + 2) * 2.0**-1074


def _scaled_norms(X: np.ndarray) -> np.ndarray:
    """Row norms ``m·‖x / m‖`` with ``m = max|x|`` (no under- or overflow of the squares), rounded up."""
    m = np.abs(X).max(axis=1) if X.shape[1] else np.zeros(X.shape[0])
    safe = np.where(m > 0, m, 1.0)
    Xs = X / safe[:, None]
    with np.errstate(over="ignore"):
        return m * np.sqrt(np.einsum("ij,ij->i", Xs, Xs)) * (1 + 2 * _U * (X.shape[1] + 3))


# ------------------------------------------------------------------------------------------- input
@dataclass(frozen=True)
class _Data:
    K: np.ndarray  # float64, signed (max-plus form), normalised
    b: np.ndarray
    Kraw: np.ndarray  # signed, original units (float64)
    braw: np.ndarray
    exact_rows: list | None  # signed exact rows (k..., b) as Fractions for exact input
    M_out: np.ndarray  # q_original = q_normalised @ M_out
    first: np.ndarray  # index of first occurrence of each row
    sense: int
    like: Any
    homogeneous: bool  # no biases: LPs normalise q·(k_j - centroid) = 1
    float_exact: bool = True  # the float64 data equal the exact data (then float certification is rigorous)
    int_rows: Any = None  # exact rows scaled to integers (object array) when float certification is not rigorous
    flattened: bool = False  # whitening dropped key directions of small but non-zero extent: no "interior" verdicts
    knorm: Any = None  # _scaled_norms(Kraw), for the certificates
    cache: dict = field(default_factory=dict)  # made when first needed: integer rows of float data, key sums


def _prepare(keys, biases, semiring, whiten: bool = True, coord_scale: bool = True) -> _Data:
    S = require_tropical(semiring, "an argmax region")
    like = keys if is_array(keys) else None
    K0 = keys if is_array(keys) else asarray(keys, name="keys")
    K0 = S.validate(K0, "keys")
    Kn = to_numpy(K0)
    if Kn.ndim != 2:
        raise ShapeError(f"keys must be an n×d matrix, got shape {Kn.shape}")
    check_nonempty(Kn, "keys")
    n, d = Kn.shape
    if biases is None:
        bn = np.zeros(n, dtype=Kn.dtype if Kn.dtype != object else object)
        if Kn.dtype == object:
            bn[:] = 0
    else:
        b0 = biases if is_array(biases) else asarray(biases, name="biases")
        b0 = S.validate(b0, "biases")
        bn = to_numpy(b0)
        if bn.ndim != 1 or bn.shape[0] != n:
            raise ShapeError(f"biases must be a vector of length {n} (one per key), got shape {bn.shape}")
    exact = is_exact(Kn) and is_exact(bn)
    Kf = np.asarray(Kn, dtype=np.float64)
    bf = np.asarray(bn, dtype=np.float64)
    if not np.isfinite(Kf).all():
        raise ConventionError("keys must be finite (a tropical-zero coordinate of a key has no meaning here)")
    if not np.isfinite(bf).all():
        raise ConventionError(
            "biases must be finite: a term with the tropical-zero coefficient never wins; drop it before the call"
        )
    s = S.sense
    Kf, bf = s * Kf, s * bf
    exact_rows = None
    float_exact = True
    flattened = False
    if exact:
        exact_rows = [[s * _fr(v) for v in list(r) + [bb]] for r, bb in zip(Kn, bn)]
        Mf = np.concatenate([Kf, bf[:, None]], axis=1)
        float_exact = all(Fraction(float(f)) == e for fr, er in zip(Mf, exact_rows) for f, e in zip(fr, er))
        keys_for_dup = [tuple(r) for r in exact_rows]
    else:
        keys_for_dup = None
    # duplicates
    if keys_for_dup is not None:
        seen: dict = {}
        first = np.array([seen.setdefault(r, i) for i, r in enumerate(keys_for_dup)])
    else:
        M = np.concatenate([Kf, bf[:, None]], axis=1)
        _, inv_first = np.unique(M, axis=0, return_index=True)
        _, inverse = np.unique(M, axis=0, return_inverse=True)
        first = inv_first[np.asarray(inverse).ravel()]
    c = Kf.mean(axis=0)
    Kc = Kf - c
    # whitening: an affine change of the keys (preserves every answer) that makes the self-direction filter
    # effective on anisotropic keys and drops directions without variance (lower-dimensional key sets)
    sk = float(np.abs(Kc).max()) or 1.0
    # each coordinate first scaled to its own extent (also an affine change): the covariance of a triangle
    # 2e15 wide and 1 high had eigenvalues 1e30 apart, its height was dropped as flat and the LP called two
    # of its edges non-adjacent; the scales are kept within 2^-900 of the largest (finite products below)
    ext = np.abs(Kc).max(axis=0) / sk if n else np.ones(d)
    cs = np.where(ext > 2.0**-900, ext, 1.0)  # coordinate j of Kc / sk is divided by cs[j]
    if not coord_scale:
        cs = np.ones_like(cs)
    if whiten:
        Ks = (Kc / sk) / cs[None, :]
        C = Ks.T @ Ks / n
        lam, V = np.linalg.eigh(C)
        keep = lam > lam.max() * 1e-14 if lam.max() > 0 else np.zeros_like(lam, dtype=bool)
        M = (V[:, keep] / np.sqrt(lam[keep])[None, :]) / cs[:, None]  # d×r, in units of 1/sk
        if not keep.all():
            # the dropped directions are treated as flat; if the keys extend along them beyond rounding, a
            # key may be a vertex only through them (keys (0, 0), (1, 1e-9), (2, 0): the middle one was
            # called "interior" with margin -inf), so negative LP margins then only mean "boundary"
            Vk = V[:, keep]
            R = Ks - (Ks @ Vk) @ Vk.T
            flattened = bool(np.abs(R).max() > 64 * d * np.finfo(np.float64).eps)
    else:
        M = np.eye(d)
    # M is kept in units of 1/sk: dividing by sk = 1e-310 overflowed to inf (linprog then crashed on NaN)
    Z = (Kc / sk) @ M
    zs = float(np.abs(Z).max()) if Z.size else 1.0
    zs = zs or 1.0
    Z, M = Z / zs, M / zs
    bc = bf - bf.mean()
    sb = float(np.abs(bc).max()) or 1.0
    # b + q·k = sb * (b' + q'·z) + const  when  q = sb * M q' / sk
    with np.errstate(over="ignore"):
        M_out = (sb * M.T) / sk
    if biases is None and not np.isfinite(M_out).all():  # any positive multiple of a witness is one
        M_out = M.T / (float(np.abs(M).max()) or 1.0)
    if not np.isfinite(M_out).all() and coord_scale:
        # (coordinate extents 1e200 apart with biases: the scaled witnesses overflowed, raw OverflowErrors
        # followed) without the per-coordinate scaling, as before it
        return _prepare(keys, biases, semiring, whiten, coord_scale=False)
    int_rows = _int_rows(exact_rows) if exact and not float_exact else None
    return _Data(Z, bc / sb, Kf, bf, exact_rows, M_out, first, s, like, biases is None, float_exact, int_rows,
                 flattened, _scaled_norms(Kf))


# ------------------------------------------------------------------------------------------- certification
def _certify(D: _Data, j: int, q_orig: np.ndarray) -> bool:
    """Rigorous check that q makes j the unique winner among keys distinct from j."""
    others = D.first != D.first[j]
    if not others.any():
        return True
    if D.exact_rows is not None and not D.float_exact:
        sc = _exact_scores(D, q_orig)
        return bool(all(sc[i] < sc[j] for i in np.flatnonzero(others)))
    with np.errstate(over="ignore", invalid="ignore"):  # overflowed scores give NaN/inf: not certified
        sc = D.braw + D.Kraw @ q_orig
        err = _score_err_tight(D.Kraw, D.braw, q_orig)  # one query: the matrix product costs no more
        lo = sc[j] - err[j]
        if bool(np.all(sc[others] + err[others] < lo)):
            return True
        # the rounding bound cannot tell (keys 1 and 1 + 2^-52, whose scores differ by less than it): the
        # float data are rationals, so a query whose float scores put j ahead is checked exactly
        plausible = np.isfinite(sc).all() and bool(np.all(sc[others] <= sc[j]))
    if not plausible or not np.isfinite(q_orig).all():
        return False
    sc = _exact_scores(D, q_orig)
    return bool(all(sc[i] < sc[j] for i in np.flatnonzero(others)))


def _axis_candidates(D: _Data) -> dict:
    """Key -> the coordinate directions ``±e_i`` at which it is among the float-best scores (at most 8 keys
    per direction): the only keys a coordinate direction can certify (one pass over the scores, O(n d))."""
    n, d = D.Kraw.shape
    out: dict = {}
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(d):
            for sgn in (1.0, -1.0):
                # (Kraw and braw carry the semiring's sign: the best score is the largest in both conventions)
                sc = np.asarray(D.braw, dtype=np.float64) + sgn * np.asarray(D.Kraw[:, i], dtype=np.float64)
                if not np.isfinite(sc).any():
                    continue
                top = np.flatnonzero(sc == np.nanmax(sc))[:8]
                for j in top:
                    q = np.zeros(d)
                    q[i] = sgn
                    out.setdefault(int(D.first[j]), []).append(q)
    return out


def _axis_witness(D: _Data, j: int, cand: dict):
    """A coordinate direction at which key ``j`` wins alone, certified (exactly for exact input), or None: a
    check before a key is called interior or boundary, which the float LP can claim where whitening or
    rounding degenerates (keys 2^53 and 2^53 + 1; a triangle 1e15 wide and 1 high)."""
    for q in cand.get(j, ()):
        if _certify(D, j, q):
            return q
    return None


def _exact_scores(D: _Data, q: np.ndarray) -> list:
    """Exact scores (scaled by a positive common factor) of every key at the float query q: integer arithmetic."""
    Kint = D.int_rows
    if Kint is None:  # float input: its values exactly, as integers (one common power-of-two denominator)
        Kint = D.cache.get("int_rows")
        if Kint is None:
            Kint = D.cache["int_rows"] = _int_rows(_exact_rows(D))
    qf = [Fraction(float(v)) for v in q]
    qd = 1
    for v in qf:
        qd = qd * v.denominator // math.gcd(qd, v.denominator)
    qi = np.empty(len(qf) + 1, dtype=object)
    qi[:-1] = [int(v * qd) for v in qf]
    qi[-1] = qd
    return list(Kint.dot(qi))


def _int_rows(exact_rows: list) -> np.ndarray:
    """The exact rows times the lcm of their denominators, as an object array of Python ints."""
    den = 1
    for r in exact_rows:
        for v in r:
            den = den * v.denominator // math.gcd(den, v.denominator)
    K = np.empty((len(exact_rows), len(exact_rows[0])), dtype=object)
    for i, r in enumerate(exact_rows):
        K[i, :] = [int(v * den) for v in r]
    return K


def _certify_batch(D: _Data, J: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Vectorised float certification of rows of Q (original units) for keys J; exact input re-checked singly."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflowed scores give NaN/inf: not certified
        sc = D.braw[None, :] + Q @ D.Kraw.T  # (B, n)
        err = _score_err(D.Kraw, D.braw, Q, D.knorm)
        hi = sc + err
        rows = np.arange(len(J))
        lo = sc[rows, J] - err[rows, J]
    same = D.first[None, :] == D.first[J][:, None]
    hi = np.where(same, -np.inf, hi)
    ok = hi.max(axis=1) < lo
    # rows that win without the error terms but not with the (cheap, norm-based) bound: the entrywise bound
    close = ~ok
    if close.any():
        with np.errstate(invalid="ignore"):
            close &= np.where(same, -np.inf, sc).max(axis=1) < sc[rows, J]
    if close.any():
        r2 = np.flatnonzero(close)
        with np.errstate(over="ignore", invalid="ignore"):
            e2 = _score_err_tight(D.Kraw, D.braw, Q[r2])
            hi2 = np.where(same[r2], -np.inf, sc[r2] + e2)
            ok[r2] = hi2.max(axis=1) < sc[r2, J[r2]] - e2[np.arange(len(r2)), J[r2]]
    if D.exact_rows is not None and not D.float_exact:
        ok = np.array([bool(o) and _certify(D, int(j), Q[r]) for r, (j, o) in enumerate(zip(J, ok))], dtype=bool)
    elif close.any():  # the rows the rounding bound cannot tell, exactly (see _certify)
        for r in np.flatnonzero(close & ~ok):
            ok[r] = _certify(D, int(J[r]), Q[r])
    return ok


# ------------------------------------------------------------------------------------------- LP
def _margin_lp(D: _Data, j: int, eq: int | None = None, active=None, max_rounds: int = 60, skip=None):
    """max t s.t. b_j + q·k_j >= b_i + q·k_i + t (all i distinct from j [and eq]), [b_j + q·k_j = b_eq + q·k_eq].

    Constraint generation on the normalised data.  Returns (t, q_normalised, n_solves).
    """
    from scipy.optimize import linprog

    K, b = D.K, D.b
    n, d = K.shape
    excl = (D.first == D.first[j]) | ((D.first == D.first[eq]) if eq is not None else False)
    if skip is not None:
        excl = excl | skip
    cand = np.flatnonzero(~excl)
    if cand.size == 0:
        return 1.0, np.zeros(d), 0
    if active is None:
        m = min(cand.size, 2 * (d + 1))
        s0 = b[cand] + K[cand] @ K[j]
        active = cand[np.argsort(-s0)[:m]]
    active = np.unique(np.asarray(active))
    cobj = np.zeros(d + 1)
    cobj[-1] = -1.0
    bounds = [(None, None)] * d + [(None, 1.0)]
    A_eq, b_eq = _equalities(D, j, eq)
    solves = 0
    t, q = -np.inf, np.zeros(d)
    for _ in range(max_rounds):
        A = np.concatenate([K[active] - K[j], np.ones((active.size, 1))], axis=1)
        rhs = b[j] - b[active]
        res = linprog(cobj, A_ub=A, b_ub=rhs, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
        solves += 1
        if res.status == 2:  # infeasible (only possible with the equality): never tied on a wall
            return -np.inf, q, solves
        if res.status != 0:
            break
        q, t = res.x[:d], res.x[-1]
        if t < -1e-7:  # a relaxation already proves it cannot win
            return t, q, solves
        viol = b[cand] + K[cand] @ q + t - (b[j] + K[j] @ q)
        bad = viol > 1e-9
        if not bad.any():
            return t, q, solves
        worst = cand[bad][np.argsort(-viol[bad])[: max(2 * (d + 1), 16)]]
        active = np.union1d(active, worst)
    # fall back to the full LP
    A = np.concatenate([K[cand] - K[j], np.ones((cand.size, 1))], axis=1)
    res = linprog(cobj, A_ub=A, b_ub=b[j] - b[cand], A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    solves += 1
    if res.status == 2:
        return -np.inf, q, solves
    return float(res.x[-1]), res.x[:d], solves


def _equalities(D: _Data, j: int, eq: int | None):
    """Tie row for adjacency; without biases also q·(k_j - centroid) = 1 (the data are centred), which
    excludes the trivial query q = 0 so that interior keys get a negative margin."""
    K, b = D.K, D.b
    rows, rhs = [], []
    if eq is not None:
        rows.append(np.concatenate([K[eq] - K[j], [0.0]]))
        rhs.append(b[j] - b[eq])
    if D.homogeneous:
        # q·(k_j - c) = 1 with c the centroid of the other keys (not of all: keys 1 and 1 + 2^-52 have the
        # float centroid 1, which put key 0 at it and excluded its witness q = -1): a witness of j (or of a
        # wall of j and eq) makes q·k_j larger than q·k_i for every other key, hence than q·c
        if "ksum" not in D.cache:  # (the sum of the keys and each key's copies, once: O(n d) per LP otherwise)
            cnt = np.bincount(D.first, minlength=len(D.first))
            D.cache["copies"] = cnt  # (before "ksum", which threads test: n_jobs > 1 read it half-made)
            D.cache["ksum"] = K.sum(axis=0)
        tot, cnt = D.cache["ksum"], D.cache["copies"]
        drop = [int(D.first[j])] + ([int(D.first[eq])] if eq is not None and D.first[eq] != D.first[j] else [])
        m = len(D.first) - sum(int(cnt[i]) for i in drop)
        c = (tot - sum(cnt[i] * K[i] for i in drop)) / m if m > 0 else np.zeros(K.shape[1])
        rows.append(np.concatenate([K[j] - c, [0.0]]))
        rhs.append(1.0)
    if not rows:
        return None, None
    return np.array(rows), np.array(rhs)


# ------------------------------------------------------------------------------------------- results
VERTEX, INTERIOR, BOUNDARY, UNDECIDED = "vertex", "interior", "boundary", "undecided"


@dataclass(frozen=True)
class ArgmaxVertices:
    """Which keys can be the unique ⊕-winner of ``b_j + q·k_j``; see :func:`argmax_vertices`.

    Attributes
    ----------
    is_vertex : numpy.ndarray of bool
        True for keys with a certified witness query (copies of such a key included).
    status : numpy.ndarray of str
        ``"vertex"`` (certified witness), ``"interior"`` (LP margin < -tol: never the maximum alone),
        ``"boundary"`` (LP margin within ±tol: on a face of the hull, ties at best), ``"undecided"``
        (a positive LP margin whose witness failed certification; not seen in practice).
    margin : numpy.ndarray of float
        LP optimum ``t`` in normalised units (``nan`` for keys certified by the filter, which needed no LP).
    duplicate_of : numpy.ndarray of int
        Index of the first key with the same key and bias (itself if none).
    n_filtered : int
        Keys certified as vertices by the fast filter, without an LP.
    n_lp : int
        Keys that needed an LP (the undecided remainder of the filter, or all keys for ``method="naive"``).
    n_lp_solves : int
        LP solves in total (constraint generation re-solves included).
    method : str
    """

    is_vertex: np.ndarray
    status: np.ndarray
    margin: np.ndarray
    duplicate_of: np.ndarray
    n_filtered: int
    n_lp: int
    n_lp_solves: int
    method: str
    _witness: np.ndarray = field(repr=False)
    _like: Any = field(repr=False, default=None)
    __repr__ = compact_repr

    @property
    def vertices(self) -> np.ndarray:
        """Indices of the keys that can win."""
        return np.flatnonzero(self.is_vertex)

    def witness(self, j: int):
        """A query ``q`` (original units and convention) at which key ``j`` is the unique winner among distinct keys."""
        j = check_index(j, len(self.is_vertex), "j", what="key")
        if not self.is_vertex[j]:
            raise DomainError(f"key {j} has status {self.status[j]!r}: it has no witness query (only the keys in .vertices have one)")
        return from_numpy(self._witness[self.duplicate_of[j]].copy(), self._like)


def _check_tol(tol) -> None:
    if isinstance(tol, bool) or not (isinstance(tol, (int, float, np.integer, np.floating)) and 0 < tol < 1):
        raise ToleranceError(f"tol must be a real number in (0, 1), got {summary(tol)}")


def argmax_vertices(
    keys: Any,
    biases: Any = None,
    *,
    semiring: Semiring | str | None = None,
    method: str = "filter",
    tol: float = 1e-7,
    scales: tuple = (0.5, 2.0, 8.0, 32.0),
    n_random: int = 64,
    seed: int = 0,
    batch: int = 1024,
    n_jobs: int = 1,
) -> ArgmaxVertices:
    """For every key: can it be the unique ⊕-winner of ``b_j + q·k_j`` for some query ``q``?

    Parameters
    ----------
    keys : array_like, shape (n, d)
        Any array library (converted to NumPy; LPs run on the CPU).  Exact input is certified exactly.
    biases : array_like, shape (n,), optional
        Per-key biases (0 if omitted).  Then the question is whether ``(k_j, b_j)`` is a vertex of the upper
        hull of the lifted points (lower hull for min-plus).
    semiring : MaxPlus (default) or MinPlus
    method : ``"filter"`` (default) or ``"naive"``
        ``"naive"`` solves one full LP per key (the baseline of the benchmark).
    tol : float
        LP margins in ``[-tol, tol]`` (normalised units: keys and biases scaled to max-norm 1) are "boundary".
    scales, n_random, seed, batch
        Filter parameters: scales ``α`` of the self-directions ``q = α·k_j``, number of random directions,
        their seed, and the block size of the batched score computation.
    n_jobs : int
        Threads for the LP stage (HiGHS runs outside the GIL for most of a solve); results do not depend on it.

    Returns
    -------
    ArgmaxVertices

    Raises
    ------
    EmptyInputError, ShapeError, NaNError, ConventionError, ToleranceError

    Examples
    --------
    >>> R = argmax_vertices([[0], [1], [2]], biases=[0, 2, 0])   # max(0, 2 + q, 2q): the middle wins on (-2, 2)
    >>> R.status.tolist(), R.witness(1).tolist()
    (['vertex', 'vertex', 'vertex'], [0.0])
    >>> argmax_vertices([[0], [1], [2]], biases=[0, 0, 0]).status.tolist()
    ['vertex', 'boundary', 'vertex']
    >>> argmax_vertices([[0], [1], [2]], biases=[0, 1, 0], semiring="min").status.tolist()
    ['vertex', 'interior', 'vertex']
    """
    _check_tol(tol)
    check_option(method, "method", ("filter", "naive"))
    n_random = check_int(n_random, "n_random", minimum=0)
    batch = check_int(batch, "batch", minimum=1)
    n_jobs = check_int(n_jobs, "n_jobs", minimum=1)
    if isinstance(scales, (str, bytes)) or not isinstance(scales, (tuple, list, np.ndarray)):
        raise ArgumentTypeError(f"scales must be a sequence of positive numbers, got {summary(scales)}")
    for a in scales:
        check_real(a, "every entry of scales", minimum=0, open_min=True)
    D = _prepare(keys, biases, semiring)
    n, d = D.K.shape
    reps = np.unique(D.first)
    status = np.full(n, UNDECIDED, dtype=object)
    margin = np.full(n, np.nan)
    W = np.zeros((n, D.Kraw.shape[1]))
    done = np.zeros(n, dtype=bool)
    done[np.setdiff1d(np.arange(n), reps)] = True  # copies follow their first occurrence
    n_filtered = 0
    if len(reps) == 1:
        status[reps] = VERTEX
        done[reps] = True
        n_filtered = 1
    if method == "filter" and not done.all():
        n_filtered += _filter(D, reps, status, W, done, scales, n_random, seed, batch)
    todo = [int(j) for j in reps if not done[j]]
    solves = 0
    solve = (lambda j: _naive_lp(D, j)) if method == "naive" else (lambda j: _margin_lp(D, j))
    if n_jobs > 1 and len(todo) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(int(n_jobs)) as ex:
            answers = list(ex.map(solve, todo))
    else:
        answers = map(solve, todo)
    axis = _axis_candidates(D) if todo else {}
    for j, (t, q, s) in zip(todo, answers):
        solves += s
        margin[j] = t
        if t > tol:
            qo = q @ D.M_out
            if _certify(D, j, qo):
                status[j], W[j] = VERTEX, qo
            else:
                status[j] = UNDECIDED  # positive LP margin, but the witness did not survive certification
        elif (qo := _axis_witness(D, j, axis)) is not None:
            # the float LP degenerated (keys 2^53 and 2^53 + 1, a triangle 1e15 wide and 1 high): a coordinate
            # direction certifies what it called interior or boundary
            status[j], W[j] = VERTEX, qo
        elif t < -tol and not D.flattened:
            status[j] = INTERIOR
        else:
            status[j] = BOUNDARY
    for i in range(n):
        if D.first[i] != i:
            status[i], margin[i] = status[D.first[i]], margin[D.first[i]]
    st = np.array([str(s) for s in status])
    return ArgmaxVertices(
        st == VERTEX, st, margin, D.first.copy(), n_filtered, len(todo), solves, method, W, D.like
    )


def _naive_lp(D: _Data, j: int):
    from scipy.optimize import linprog

    K, b = D.K, D.b
    n, d = K.shape
    cand = np.flatnonzero(D.first != D.first[j])
    c = np.zeros(d + 1)
    c[-1] = -1.0
    A = np.concatenate([K[cand] - K[j], np.ones((cand.size, 1))], axis=1)
    A_eq, b_eq = _equalities(D, j, None)
    res = linprog(c, A_ub=A, b_ub=b[j] - b[cand], A_eq=A_eq, b_eq=b_eq,
                  bounds=[(None, None)] * d + [(None, 1.0)], method="highs")
    if res.status == 2:
        return -np.inf, np.zeros(d), 1
    return float(res.x[-1]), res.x[:d], 1


def _filter(D: _Data, reps, status, W, done, scales, n_random, seed, batch) -> int:
    K = D.K
    n, d = K.shape
    count = 0
    # random directions: each certifies its winner
    if n_random:
        rng = np.random.default_rng(seed)
        for alpha in scales:
            Q = rng.standard_normal((n_random, d)) * alpha / math.sqrt(d)
            sc = D.b[None, :] + Q @ K.T
            J = np.argmax(sc, axis=1)
            _, first_rows = np.unique(J, return_index=True)
            keep = np.array([r for r in first_rows if not done[J[r]]], dtype=int)
            if keep.size == 0:
                continue
            Q, J = Q[keep], J[keep]
            Qo = Q @ D.M_out
            ok = _certify_batch(D, J, Qo)
            for r in np.flatnonzero(ok):
                j = int(J[r])
                if not done[j]:
                    done[j], status[j], W[j] = True, VERTEX, Qo[r]
                    count += 1
    # self-directions q = alpha * k_j
    for alpha in scales:
        left = np.array([j for j in reps if not done[j]], dtype=int)
        for s in range(0, left.size, batch):
            J = left[s : s + batch]
            Qo = (alpha * K[J]) @ D.M_out
            ok = _certify_batch(D, J, Qo)
            for r in np.flatnonzero(ok):
                j = int(J[r])
                done[j], status[j], W[j] = True, VERTEX, Qo[r]
                count += 1
    return count


def argmax_witness(keys: Any, j: int, biases: Any = None, *, semiring: Semiring | str | None = None, tol: float = 1e-7):
    """A certified query at which key ``j`` is the unique ⊕-winner, or ``None`` if it cannot win.

    Examples
    --------
    >>> import numpy as np
    >>> K = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    >>> q = argmax_witness(K, 3)
    >>> scores = K @ q; int(np.argmax(scores)), int(np.sum(scores == scores.max()))   # key 3 alone wins
    (3, 1)
    >>> argmax_witness([[0, 0], [2, 0], [0, 2], [1, 1]], 3) is None
    True
    """
    _check_tol(tol)
    D = _prepare(keys, biases, semiring)
    j = check_index(j, D.K.shape[0], "j", what="key")
    j = int(D.first[j])
    t, q, _ = _margin_lp(D, j)
    if t > tol:
        qo = q @ D.M_out
        if _certify(D, j, qo):
            return from_numpy(qo, D.like)
    # a margin within the tolerance (a nearly flat configuration, keys 10^8 and 10^8 + 1): the full
    # classification's certified witness, whose filter tries more directions than this one LP (None here for
    # a key it certified)
    if not t >= -tol:  # (clearly interior: no classification of every key, which costs an LP each)
        return None
    R = argmax_vertices(keys, biases, semiring=semiring, tol=tol)
    return R.witness(j) if bool(R.is_vertex[j]) and R.duplicate_of[j] == j else None


def argmax_cell(keys: Any, q: Any, biases: Any = None, *, semiring: Semiring | str | None = None):
    """The keys that win (tie for the ⊕-best score) at query ``q``: the face of the hull whose cone contains ``q``.

    Exact for exact keys and biases (``q`` converted exactly).  For float data every key whose score is within
    the rigorous rounding bound of the best is included, so the set contains the true winners.  A batch of
    queries (m×d) gives a tuple of sets.

    Examples
    --------
    >>> sorted(argmax_cell([[0, 0], [1, 0], [0, 1], [1, 1]], [1, 0]))
    [1, 3]
    >>> sorted(argmax_cell([[0, 0], [1, 0], [0, 1], [1, 1]], [1, 0], semiring="min"))
    [0, 2]
    >>> [sorted(c) for c in argmax_cell([[0, 0], [1, 0], [0, 1], [1, 1]], [[1, 1], [-1, 0]])]
    [[3], [0, 2]]
    """
    D = _prepare(keys, biases, semiring, whiten=False)
    d = D.Kraw.shape[1]
    qa = q if is_array(q) else asarray(q, name="q")
    check_no_nan(qa, "q")  # NaN queries gave an empty winner set (float keys) or a raw ValueError (exact keys)
    qn = to_numpy(qa)
    if not all(math.isfinite(float(v)) for v in qn.ravel()):
        raise ConventionError("q must be finite: an infinite query coordinate has no winning key")
    if qn.ndim not in (1, 2) or qn.shape[-1] != d:
        raise ShapeError(f"q must have {d} coordinates like the keys (or be an m×{d} batch), got shape {qn.shape}")
    single = qn.ndim == 1
    Qn = qn.reshape(1, d) if single else qn
    out = []
    if D.exact_rows is not None:
        for row in Qn:
            qf = [_fr(v) for v in row.tolist()]
            sc = [sum(a * b for a, b in zip(qf, r[:-1])) + r[-1] for r in D.exact_rows]
            best = max(sc)
            out.append(frozenset(i for i, v in enumerate(sc) if v == best))
    else:
        Qf = np.asarray(Qn, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            SC = D.braw[None, :] + Qf @ D.Kraw.T
            ERR = _score_err_tight(D.Kraw, D.braw, Qf)
            top = np.max(SC - ERR, axis=1, keepdims=True)
        for r in range(SC.shape[0]):
            if not (np.isfinite(SC[r]).all() and np.isfinite(ERR[r]).all()):
                # scores beyond the float range (an empty set before): the exact scores of the float data
                qf = [Fraction(float(v)) for v in Qf[r]]
                sc = [sum(a * b for a, b in zip(qf, row[:-1])) + row[-1] for row in _exact_rows(D)]
                out.append(frozenset(i for i, v in enumerate(sc) if v == max(sc)))
                continue
            out.append(frozenset(int(i) for i in np.flatnonzero(SC[r] + ERR[r] >= top[r])))
    return out[0] if single else tuple(out)


@dataclass(frozen=True)
class Adjacency:
    """Whether the regions of two keys share a wall; see :func:`are_adjacent`.

    Attributes
    ----------
    adjacent : bool
    witness : array or None
        A query near which keys ``i`` and ``j`` (and their copies) tie for the ⊕-best score: the exact tie point
        (a rational point, verified in rational arithmetic) rounded to floats.
    margin : float
        LP optimum (normalised units): how far all other keys stay below the tie.
    """

    adjacent: bool
    witness: Any
    margin: float
    __repr__ = compact_repr


def are_adjacent(
    keys: Any, i: int, j: int, biases: Any = None, *, semiring: Semiring | str | None = None, tol: float = 1e-7
) -> Adjacency:
    """Do the winning regions of keys ``i`` and ``j`` share a wall (an edge of the upper hull joins them)?

    Solved as the LP ``max t`` with ``b_i + q·k_i = b_j + q·k_j ≥ b_l + q·k_l + t`` for all other keys, except
    keys whose lifted points lie on the segment between those of ``i`` and ``j`` (decided exactly): they tie
    along the whole wall.  The
    witness of a positive answer is checked like :func:`argmax_vertices` checks its witnesses (exactly for
    exact input).

    Examples
    --------
    >>> sq = [[0, 0], [1, 0], [0, 1], [1, 1]]
    >>> are_adjacent(sq, 0, 1).adjacent, are_adjacent(sq, 0, 3).adjacent
    (True, False)
    """
    _check_tol(tol)
    D = _prepare(keys, biases, semiring)
    n = D.K.shape[0]
    i, j = check_index(i, n, "i", what="key"), check_index(j, n, "j", what="key")
    i, j = int(D.first[i]), int(D.first[j])
    if i == j:
        raise DomainError("are_adjacent needs two distinct keys (these are equal, with equal biases)")
    on_edge = _on_segment(D, i, j)
    t, q, _ = _margin_lp(D, i, eq=j, skip=on_edge)
    if not t > tol:
        return Adjacency(False, None, float(t))
    qs = _certify_tie(D, i, j, q @ D.M_out, on_edge)
    if qs is None:
        return Adjacency(False, None, float(t))
    return Adjacency(True, from_numpy(qs, D.like), float(t))


def _exact_rows(D: _Data) -> list:
    if D.exact_rows is not None:
        return D.exact_rows
    return [[Fraction(float(v)) for v in r] + [Fraction(float(bb))] for r, bb in zip(D.Kraw, D.braw)]


def _on_segment(D: _Data, i: int, j: int) -> np.ndarray:
    """Keys whose lifted point lies on the segment between those of i and j (exact; they tie along the wall)."""
    X = np.concatenate([D.Kraw, D.braw[:, None]], axis=1)
    Xs = X / (float(np.abs(X).max()) or 1.0)  # the float filter, scaled: u @ u underflowed to 0 for data of size 1e-200
    u = Xs[i] - Xs[j]
    nu = float(u @ u)
    out = np.zeros(X.shape[0], dtype=bool)
    if nu == 0:
        return out
    lam = (Xs - Xs[j]) @ u / nu
    res = np.linalg.norm(Xs - Xs[j] - lam[:, None] * u[None, :], axis=1)
    scale = 2.0
    cand = np.flatnonzero((res <= 1e-8 * scale) & (lam >= -1e-8) & (lam <= 1 + 1e-8))
    if cand.size == 0:
        return out
    rows = D.exact_rows
    xi = rows[i] if rows is not None else [Fraction(float(v)) for v in X[i]]
    xj = rows[j] if rows is not None else [Fraction(float(v)) for v in X[j]]
    du = [a - b for a, b in zip(xi, xj)]
    k0 = next(k for k, v in enumerate(du) if v != 0)
    for l in cand:
        xl = rows[l] if rows is not None else [Fraction(float(v)) for v in X[l]]
        lm = (xl[k0] - xj[k0]) / du[k0]
        if 0 <= lm <= 1 and all(a - b == lm * c for a, b, c in zip(xl, xj, du)):
            out[l] = True
    return out


def _certify_tie(D: _Data, i: int, j: int, q: np.ndarray, skip=None):
    """Move q exactly onto the tie hyperplane of i and j; return it if every other key is strictly below there.

    Rational arithmetic on the exact values of the (float or exact) data, so a True answer is a proof.
    """
    if not np.isfinite(q).all():  # (an overflowed witness: Fraction(inf) raised a raw OverflowError)
        return None
    others = (D.first != D.first[i]) & (D.first != D.first[j])
    if skip is not None:
        others &= ~skip
    rows = _exact_rows(D)
    qf = [Fraction(float(v)) for v in q]
    a = [x - y for x, y in zip(rows[i][:-1], rows[j][:-1])]
    nn = sum(x * x for x in a)
    if nn == 0:
        return None
    gap = sum(x * y for x, y in zip(a, qf)) + rows[i][-1] - rows[j][-1]
    qs = [x - gap / nn * y for x, y in zip(qf, a)]
    sc = [sum(x * y for x, y in zip(qs, r[:-1])) + r[-1] for r in rows]
    if sc[i] != sc[j] or not all(sc[l] < sc[i] for l in np.flatnonzero(others)):
        return None
    return np.array([float(v) for v in qs])


class LPNormalFan:
    """The LP regime of :func:`tropix.tropical.normal_fan` (``regime="lp"``): the same questions, no full fan.

    Offers the query interface shared with :class:`~tropix.tropical.fan.NormalFan`: :attr:`vertices`,
    :attr:`point_vertex`, :meth:`witness`, :meth:`winners`, :meth:`are_adjacent`, and :meth:`region` (an
    H-representation of a winning region, with one inequality per other key, redundant ones included).
    Vertex detection runs once, at construction (:func:`argmax_vertices`).

    Examples
    --------
    >>> from tropix.tropical import normal_fan
    >>> F = normal_fan([[0, 0], [1, 0], [0, 1], [1, 1]], regime="lp")
    >>> F.regime, F.vertices, sorted(F.winners([1, 0])), F.are_adjacent(0, 3)
    ('lp', (0, 1, 2, 3), [1, 3], False)
    """

    regime = "lp"

    def __init__(self, points: Any, biases: Any = None, *, semiring: Semiring | str | None = None, **options):
        self.points, self.biases, self.semiring = points, biases, get_semiring(semiring)
        self.result = argmax_vertices(points, biases, semiring=self.semiring, **options)

    @property
    def vertices(self) -> tuple:
        """Keys that can be the unique winner (first occurrence of repeated keys)."""
        R = self.result
        return tuple(int(j) for j in R.vertices if R.duplicate_of[j] == j)

    @property
    def point_vertex(self) -> tuple:
        """For each key, the representative vertex it coincides with, or -1."""
        R = self.result
        return tuple(int(R.duplicate_of[i]) if R.is_vertex[i] else -1 for i in range(len(R.is_vertex)))

    def witness(self, j: int):
        """A certified query at which key ``j`` is the unique winner (float)."""
        return self.result.witness(j)

    def winners(self, q: Any) -> frozenset:
        """The keys tying for the best score at ``q``; see :func:`argmax_cell`."""
        return argmax_cell(self.points, q, self.biases, semiring=self.semiring)

    def are_adjacent(self, i: int, j: int) -> bool:
        """Whether the regions of keys ``i`` and ``j`` share a wall; see :func:`are_adjacent`."""
        return are_adjacent(self.points, i, j, self.biases, semiring=self.semiring).adjacent

    def region(self, j: int):
        """``(A, b)`` with region of key ``j`` = ``{q : A q <= b}`` (one row per other distinct key), as floats.

        For max-plus ``A = k_i − k_j`` and ``b = b_j − b_i``; for min-plus the signs are reversed.
        """
        D = _prepare(self.points, self.biases, self.semiring, whiten=False)
        j = check_index(j, len(D.first), "j", what="key")
        others = np.flatnonzero(D.first != D.first[int(j)])
        return D.Kraw[others] - D.Kraw[int(j)], D.braw[int(j)] - D.braw[others]
