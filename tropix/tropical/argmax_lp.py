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
(keys a few units in the last place apart) the floats' exact rational values of the keys left in doubt are
compared in integer arithmetic (unless the bound already puts another key ahead).  "Cannot win" (``"interior"``,
``"boundary"``) and "not adjacent" are reported only with a verified certificate: the LP's dual solution is a
convex combination of other keys that reaches key ``j`` (or the line through two keys) at least as high,
accepted if exact weights nearby provably exist, in floating point (the normalised data are an exact affine
image of the keys up to a bounded rounding error, and the correction is bounded by the system's smallest
singular value) or by exact elimination on the keys' rational values when the system is small.  Otherwise
the key is ``"undecided"``.

Normalisation.  Each coordinate is scaled to its own extent, then the keys are whitened, so that a set far wider
than high keeps its height.  Directions of (numerically) no variance are dropped; when a "cannot win" or "not
adjacent" answer needs it, they are decided exactly: the keys are flat along them (exact integer normals of
the span of anchor keys), or their exact offsets from that span, whitened in exact arithmetic, are appended as
new coordinates (a thin triangle at any angle).  Exact copies of a key (same key and bias) tie with it; the
copies are reported like their first occurrence (``duplicate_of``).

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

import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .._array import (asarray, check_no_nan, check_nonempty, float_int_rows, from_numpy, is_array, is_exact,
                      to_exact_scalar, to_numpy)
from .._repr import compact_repr, summary
from ..errors import ArgumentTypeError, ConventionError, DomainError, ShapeError, ToleranceError
from ._args import check_index, check_int, check_option, check_real, check_array_dtype
from .semiring import Semiring, get_semiring, require_tropical
from .subdivision import _pivot_columns

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
    K: np.ndarray  # float64, signed (max-plus form), normalised: n × r (the kept directions, r ≤ d)
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
    flattened: bool = False  # directions were dropped without a proof that the keys are flat along them
    # (then _unflatten decides: flat exactly, or exact coordinates along them appended)
    knorm: Any = None  # _scaled_norms(Kraw), for the certificates
    Kerr: Any = None  # bound on |K - K*| entrywise, K* the exact image of the exact keys (same affine map)
    berr: Any = None  # bound on |b - b*|
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
    int_rows = _int_rows(exact_rows) if exact and not float_exact else None
    cache: dict = {}
    c = Kf.mean(axis=0)
    Kc = Kf - c
    # the normalised keys Z are the image of the exact keys under an exact affine map (given by the float
    # values c, sk, M, zs) up to the rounding of Kc, X, one matrix product and the division by zs: Kerr
    sk = float(np.abs(Kc).max()) or 1.0
    X = Kc / sk
    # each coordinate scaled to its own extent (also an affine change): the covariance of a triangle 2e15
    # wide and 1 high had eigenvalues 1e30 apart; the scales are kept within 2^-900 of the largest
    ext = np.abs(X).max(axis=0) if n else np.ones(d)
    cs = np.where(ext > 2.0**-900, ext, 1.0)  # coordinate j of X is divided by cs[j]
    if not coord_scale:
        cs = np.ones_like(cs)
    drop = None
    if whiten:
        # whitening: an affine change of the keys (preserves every answer) that makes the self-direction filter
        # effective on anisotropic keys; directions without variance are dropped, and kept exactly if the keys
        # are not exactly flat along them (_unflatten)
        Ks = X / cs[None, :]
        C = Ks.T @ Ks / n
        lam, V = np.linalg.eigh(C)
        keep = lam > lam.max() * 1e-14 if lam.max() > 0 else np.zeros_like(lam, dtype=bool)
        M = (V[:, keep] / np.sqrt(lam[keep])[None, :]) / cs[:, None]  # d×r, in units of 1/sk
        if not keep.all():
            drop = int((~keep).sum())
    else:
        M = np.eye(d)
    # M is kept in units of 1/sk: dividing by sk = 1e-310 overflowed to inf (linprog then crashed on NaN)
    Z = X @ M
    zs = float(np.abs(Z).max()) if Z.size else 1.0
    zs = zs or 1.0
    Z, M = Z / zs, M / zs
    # rounding: Kc and X (γ_2), the product X @ M (γ_d), Z / zs (u), the keys' own rounding to float64 (inexact
    # input); a tiny absolute term for underflow
    Xa = np.abs(X) if float_exact else np.abs(X) + np.abs(Kf) / sk
    with np.errstate(over="ignore", under="ignore"):
        Kerr = (_gamma(d + 3) * (Xa @ np.abs(M)) + _U * np.abs(Z)) * (1 + 4 * _gamma(d + 3)) + 2.0**-1000
    bc = bf - bf.mean()
    sb = float(np.abs(bc).max()) or 1.0
    berr = _gamma(3) * ((np.abs(bc) if float_exact else np.abs(bc) + np.abs(bf)) / sb) + 2.0**-1000
    # b + q·k = sb * (b' + q'·z) + const  when  q = sb * M q' / sk
    with np.errstate(over="ignore"):
        M_out = (sb * M.T) / sk
    if biases is None and not np.isfinite(M_out).all():  # any positive multiple of a witness is one
        M_out = M.T / (float(np.abs(M).max()) or 1.0)
    if not np.isfinite(M_out).all() and coord_scale:
        # (coordinate extents 1e200 apart with biases: the scaled witnesses overflowed, raw OverflowErrors
        # followed) without the per-coordinate scaling, as before it
        return _prepare(keys, biases, semiring, whiten, coord_scale=False)
    # directions dropped while more than r + 1 distinct keys exist: the reduced problem is equivalent only if the
    # keys are exactly flat along them, which _unflatten decides when a "cannot win" or "not adjacent" answer
    # needs it (with at most r + 1 distinct keys, every key is an anchor and nothing is off their span)
    flattened = bool(drop) and len(np.unique(first)) > Z.shape[1] + 1
    cache["sb"] = sb
    return _Data(Z, bc / sb, Kf, bf, exact_rows, M_out, first, s, like, biases is None, float_exact, int_rows,
                 flattened, _scaled_norms(Kf), Kerr, berr, cache)


_THIN_BUDGET = 4_000_000  # exact integer operations allowed for the thin directions of one key set


def _unflatten(D: _Data) -> _Data:
    """The problem with the directions whitening dropped decided exactly (once per key set, cached).

    Whitening keeps the ``r`` directions of clear variance.  The keys are exactly flat along the others only if
    they lie in the affine span of ``r + 1`` anchor keys (chosen by a pivoted QR of the whitened keys).  The
    exact integer normals ``N`` of that span give each key's offset ``N (k - k_a)`` from it: all zero proves
    the reduced problem equivalent (same data, ``flattened=False``); otherwise a set of independent offset
    columns (exact, rounded once, each scaled to extent 1) is appended to the keys, so that a triangle
    ``2·10^15`` wide and 1 high at any angle keeps its height (an exact affine change of coordinates,
    injective on the keys' affine hull).  Where that costs too much, ``D`` itself (still flattened); a random
    integer combination of the offsets may then still prove the keys not flat (``cache["thin_real"]``: exact
    certificates on the reduced problem's supports would fail, and are not tried).
    """
    if not D.flattened:
        return D
    if "unflat" not in D.cache:
        thin = _thin_columns(D)
        out = D
        if thin is not None:
            Zy, Qy = thin
            with np.errstate(over="ignore"):
                Mo = D.cache["sb"] * Qy
            if np.isfinite(Mo).all():
                keep = {k: v for k, v in D.cache.items() if k in ("int_rows", "int_den", "sb", "thin_real")}
                out = dataclasses.replace(
                    D, K=np.concatenate([D.K, Zy], axis=1), M_out=np.concatenate([D.M_out, Mo], axis=0),
                    Kerr=np.concatenate([D.Kerr, _U * np.abs(Zy) + 2.0**-1000], axis=1), flattened=False,
                    cache=keep)
        D.cache["unflat"] = out
    return D.cache["unflat"]


def _thin_columns(D: _Data):
    """``(Zy, Qy)`` for :func:`_unflatten`, or None: ``Zy`` (n × s, s = 0 for exactly flat keys) the new
    normalised columns, ``Qy`` (s × d) their coefficients on the original keys (a witness ``q'`` maps to
    ``q'_y @ Qy`` times the bias scale, added to the whitened part)."""
    Z, first = D.K, D.first
    n, r = Z.shape
    d = D.Kraw.shape[1]
    reps = np.unique(first)
    if r * r * d > _THIN_BUDGET:
        return None
    Kint = _int_rows_cached(D)
    den = D.cache["int_den"]
    m = d - r
    bits = max(abs(int(v)).bit_length() for v in Kint[reps, :d].ravel()) or 1
    scale = max(1, bits // 64)
    if r * r * d * scale > _THIN_BUDGET:
        return None
    # anchors: the key farthest from the centroid, then a pivoted QR of the offsets from it
    import scipy.linalg

    Zr = Z[reps]
    a0 = int(np.argmax(np.einsum("ij,ij->i", Zr, Zr)))
    anchors = []
    if r:
        R, piv = scipy.linalg.qr((Zr - Zr[a0]).T, mode="r", pivoting=True)
        if not abs(R[r - 1, r - 1]) > 1e-6:  # (the whitened keys have unit variance along every kept direction)
            return None
        anchors = [int(reps[p]) for p in piv[:r]]
    base = Kint[int(reps[a0]), :d]
    N = _nullspace([[int(x) for x in (Kint[a, :d] - base)] for a in anchors], d)
    if N is None or len(N) != m:  # the anchors are not exactly independent: leave it undecided
        return None
    Nt = np.empty((d, m), dtype=object)
    for k, v in enumerate(N):
        Nt[:, k] = v
    if len(reps) * d * m * scale > _THIN_BUDGET:
        rho = np.empty(m, dtype=object)
        rho[:] = [int(v) for v in np.random.default_rng(0).integers(1, 2**62, m)]
        if any((Kint[reps, :d] - base).dot(Nt.dot(rho))):
            D.cache["thin_real"] = True
        return None
    Y = (Kint[:, :d] - base).dot(Nt)  # n × m exact offsets (integers)
    cols = _pivot_columns([[int(v) for v in r] for r in Y[reps]], Y.shape[1])  # (its row space, injectively)
    if not cols:
        return np.zeros((n, 0)), np.zeros((0, d))
    P, Zy, ys = _exact_whiten(Y[:, cols], scale)
    # z_y(k)_t = Σ_c P[c, t] N_c·(k·den - base) / ys_t: its coefficients on k are den/ys_t Σ_c P[c, t] N_c
    NP = np.array([N[c] for c in cols], dtype=object).T.dot(P)  # d × s integers
    Qy = np.array([[_frac_to_float(Fraction(int(NP[i, t]) * den, ys[t])) for i in range(d)]
                   for t in range(len(cols))]).reshape(len(cols), d)
    return Zy, Qy


def _exact_whiten(Y: np.ndarray, scale: int, rounds: int = 6):
    """Columns of ``Y P`` (``Y`` an n × s integer matrix of full column rank, ``P`` an integer s × s matrix
    built here), each scaled to extent 1 and rounded once: whitened by float eigendecompositions applied in
    exact arithmetic, round after round, until the float covariance is well conditioned.  A set thin along
    several directions at different scales (1e-8 and 1e-14 of its width) gave offset columns nearly parallel
    to each other.  Returns ``(P, Zy, ys)`` with ``Zy[:, t] = (Y P)[:, t] / ys[t]`` rounded."""
    n, s = Y.shape
    P = np.empty((s, s), dtype=object)
    P[:] = [[int(i == j) for j in range(s)] for i in range(s)]
    YP = Y
    for it in range(rounds + 1):
        ys = [max(abs(int(v)) for v in YP[:, t]) for t in range(s)]
        Zy = np.array([[float(Fraction(int(YP[i, t]), ys[t])) for t in range(s)] for i in range(n)]).reshape(n, s)
        if s == 1 or it == rounds or n * s * s * scale * (it + 2) > _THIN_BUDGET:
            break
        Zc = Zy - Zy.mean(axis=0)
        lam, V = np.linalg.eigh(Zc.T @ Zc)
        if lam[0] > lam[-1] * 1e-6:  # (extents within a factor 1000 along every direction)
            break
        W = V / np.sqrt(np.maximum(lam, lam[-1] * 1e-300))[None, :]
        W = W / np.abs(W).max(axis=0)  # (any scale: the columns are scaled to extent 1 afterwards)
        Wi, _ = float_int_rows(W)  # W times a power of two, exactly
        Dm = np.empty((s, s), dtype=object)  # the column scaling 1/ys, up to the common factor prod(ys)
        Dm[:] = 0
        for t in range(s):
            Dm[t, t] = math.prod(ys) // ys[t]
        P = P.dot(Dm).dot(Wi)
        YP = Y.dot(P)
    return P, Zy, ys


def _frac_to_float(x: Fraction) -> float:
    """``float(x)``, ±inf beyond the float range (then the caller gives up on the new columns)."""
    try:
        return float(x)
    except OverflowError:
        return math.inf if x > 0 else -math.inf


def _nullspace(A: list, d: int):
    """Integer basis of ``{x : A x = 0}`` for an integer matrix ``A`` of full row rank (rows of length ``d``),
    or None if its rank is lower: fraction-free Gauss–Jordan elimination (Bareiss; every division exact), after
    which each pivot row reads ``det·x_p + Σ_f a_f x_f = 0``, so ``x_f = det, x_p = -a_f`` for each free ``f``."""
    M = [list(r) for r in A]
    rows = len(M)
    piv_cols = []
    prev = 1
    k = 0
    for col in range(d):
        if k == rows:
            break
        p = next((i for i in range(k, rows) if M[i][col] != 0), None)
        if p is None:
            continue
        M[k], M[p] = M[p], M[k]
        pk = M[k]
        a = pk[col]
        for i in range(rows):
            if i != k:
                ri = M[i]
                f = ri[col]
                M[i] = [(a * x - f * y) // prev for x, y in zip(ri, pk)]
        prev = a
        piv_cols.append(col)
        k += 1
    if k < rows:
        return None
    det = prev
    pset = set(piv_cols)
    out = []
    for fc in range(d):
        if fc in pset:
            continue
        v = [0] * d
        v[fc] = det
        for i, pc in enumerate(piv_cols):
            v[pc] = -M[i][fc] if det > 0 else M[i][fc]
        if det < 0:
            v[fc] = -det
        g = 0
        for x in v:
            g = math.gcd(g, x)
        out.append([x // g for x in v] if g > 1 else v)
    return out


# ------------------------------------------------------------------------------------------- certification
def _certify(D: _Data, j: int, q_orig: np.ndarray) -> bool:
    """Rigorous check that q makes j the unique winner among keys distinct from j.

    Float scores with the rigorous rounding bound first; where the bound cannot tell (keys a few units in the
    last place apart, or scores of size 2^52 at a large witness) the exact scores of the keys the bound leaves
    in doubt, in integer arithmetic.  A key the bound proves ahead of ``j`` fails the check at once, so the
    exact work is only spent where the float comparison could not decide.
    """
    others = D.first != D.first[j]
    if not others.any():
        return True
    if not np.isfinite(q_orig).all():
        return False
    if D.exact_rows is not None and not D.float_exact:
        sc = _exact_scores(D, q_orig)
        return bool(all(sc[i] < sc[j] for i in np.flatnonzero(others)))
    with np.errstate(over="ignore", invalid="ignore"):  # overflowed scores give NaN/inf: not certified
        sc = D.braw + D.Kraw @ q_orig
        err = _score_err_tight(D.Kraw, D.braw, q_orig)  # one query: the matrix product costs no more
        if not (np.isfinite(sc).all() and np.isfinite(err).all()):
            doubt = others
        else:
            lo, hi = sc[j] - err[j], sc[j] + err[j]
            if bool(np.any(sc[others] - err[others] > hi)):  # a key certainly ahead of j
                return False
            doubt = others & (sc + err >= lo)
            if not doubt.any():
                return True
    idx = np.flatnonzero(doubt)
    sc = _exact_scores(D, q_orig, np.append(idx, j))
    return bool(all(v < sc[-1] for v in sc[:-1]))


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


def _exact_scores(D: _Data, q: np.ndarray, rows=None) -> list:
    """Exact scores (scaled by a positive common factor) at the float query q of every key (or of ``rows``):
    integer arithmetic."""
    Kint = _int_rows_cached(D)
    qf = [Fraction(float(v)) for v in q]
    qd = 1
    for v in qf:
        qd = qd * v.denominator // math.gcd(qd, v.denominator)
    qi = np.empty(len(qf) + 1, dtype=object)
    qi[:-1] = [int(v * qd) for v in qf]
    qi[-1] = qd
    return list((Kint if rows is None else Kint[np.asarray(rows, dtype=int)]).dot(qi))


def _int_rows(exact_rows: list) -> np.ndarray:
    """The exact rows times the lcm of their denominators, as an object array of Python ints."""
    return _int_rows_den(exact_rows)[0]


def _int_rows_den(exact_rows: list):
    """:func:`_int_rows` and the common denominator ``den`` it multiplied by."""
    den = 1
    for r in exact_rows:
        for v in r:
            den = den * v.denominator // math.gcd(den, v.denominator)
    K = np.empty((len(exact_rows), len(exact_rows[0])), dtype=object)
    for i, r in enumerate(exact_rows):
        K[i, :] = [int(v * den) for v in r]
    return K, den


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
def _margin_lp(D: _Data, j: int, eq: int | None = None, active=None, max_rounds: int = 60, skip=None,
               with_dual: bool = False):
    """max t s.t. b_j + q·k_j >= b_i + q·k_i + t (all i distinct from j [and eq]), [b_j + q·k_j = b_eq + q·k_eq].

    Constraint generation on the normalised data.  Returns (t, q_normalised, n_solves), and with
    ``with_dual`` the LP's dual solution ``(rows, λ, ν)`` (keys of the inequality rows, their multipliers
    ``λ >= 0``, the multipliers of the equality rows), from which "cannot win" and "not adjacent" are
    certified (:func:`_nonvertex`, :func:`_nonadjacent`); ``None`` for an infeasible LP.
    """
    from scipy.optimize import linprog

    K, b = D.K, D.b
    n, d = K.shape
    excl = (D.first == D.first[j]) | ((D.first == D.first[eq]) if eq is not None else False)
    if skip is not None:
        excl = excl | skip
    cand = np.flatnonzero(~excl)

    def out(t, q, solves, res=None, rows=None):
        if not with_dual:
            return t, q, solves
        dual = None
        if res is not None and res.status == 0:
            nu = np.asarray(res.eqlin.marginals) if A_eq is not None else np.zeros(0)
            dual = (np.asarray(rows), -np.asarray(res.ineqlin.marginals), nu)
        return t, q, solves, dual

    A_eq, b_eq = _equalities(D, j, eq, skip)
    if cand.size == 0:
        return out(1.0, np.zeros(d), 0)
    if active is None:
        m = min(cand.size, 2 * (d + 1))
        s0 = b[cand] + K[cand] @ K[j]
        active = cand[np.argsort(-s0)[:m]]
    active = np.unique(np.asarray(active))
    cobj = np.zeros(d + 1)
    cobj[-1] = -1.0
    bounds = [(None, None)] * d + [(None, 1.0)]
    solves = 0
    t, q = -np.inf, np.zeros(d)
    for _ in range(max_rounds):
        A = np.concatenate([K[active] - K[j], np.ones((active.size, 1))], axis=1)
        rhs = b[j] - b[active]
        res = linprog(cobj, A_ub=A, b_ub=rhs, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
        solves += 1
        if res.status == 2:  # infeasible (only possible with the equality): never tied on a wall
            return out(-np.inf, q, solves)
        if res.status != 0:
            break
        q, t = res.x[:d], res.x[-1]
        if t < -1e-7:  # a relaxation already proves it cannot win
            return out(t, q, solves, res, active)
        viol = b[cand] + K[cand] @ q + t - (b[j] + K[j] @ q)
        bad = viol > 1e-9
        if not bad.any():
            return out(t, q, solves, res, active)
        worst = cand[bad][np.argsort(-viol[bad])[: max(2 * (d + 1), 16)]]
        active = np.union1d(active, worst)
    # fall back to the full LP
    A = np.concatenate([K[cand] - K[j], np.ones((cand.size, 1))], axis=1)
    res = linprog(cobj, A_ub=A, b_ub=b[j] - b[cand], A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
    solves += 1
    if res.status == 2:
        return out(-np.inf, q, solves)
    if res.status != 0 or res.x is None:  # (HiGHS gave up: no verdict)
        return out(np.nan, q, solves)
    return out(float(res.x[-1]), res.x[:d], solves, res, cand)


def _excluded(D: _Data, j: int, eq: int | None, skip) -> np.ndarray | None:
    """Rows left out of the centroid of "the other keys" (copies of j and eq, keys on their segment), or None
    for the common case (copies of j only), which uses cached sums."""
    if eq is None and skip is None:
        return None
    ex = D.first == D.first[j]
    if eq is not None:
        ex |= D.first == D.first[eq]
    if skip is not None:
        ex |= skip
    return ex


def _centroid(D: _Data, j: int, eq: int | None = None, skip=None):
    """Centroid ``c`` of the other keys (normalised), a bound on ``|c - c*|`` (``c*`` the exact centroid of the
    exact normalised keys), and the number ``m`` of rows averaged (0: no other key)."""
    K = D.K
    n = K.shape[0]
    ex = _excluded(D, j, eq, skip)
    if ex is not None:
        m = int((~ex).sum())
        if m == 0:
            return np.zeros(K.shape[1]), np.zeros(K.shape[1]), 0
        Ko = K[~ex]
        c = Ko.mean(axis=0)
        cerr = (D.Kerr[~ex].sum(axis=0) + _gamma(n + 4) * np.abs(Ko).sum(axis=0)) / m
        return c, cerr * (1 + 4 * _U), m
    if "ksum" not in D.cache:  # (the sum of the keys and each key's copies, once: O(n d) per LP otherwise)
        cnt = np.bincount(D.first, minlength=len(D.first))
        D.cache["copies"] = cnt  # (before "ksum", which threads test: n_jobs > 1 read it half-made)
        D.cache["abssum"] = np.abs(K).sum(axis=0)
        D.cache["errsum"] = D.Kerr.sum(axis=0)
        D.cache["ksum"] = K.sum(axis=0)
    tot, cnt = D.cache["ksum"], D.cache["copies"]
    i0 = int(D.first[j])
    m = n - int(cnt[i0])
    if m <= 0:
        return np.zeros(K.shape[1]), np.zeros(K.shape[1]), 0
    c = (tot - cnt[i0] * K[i0]) / m
    cerr = (D.cache["errsum"] + _gamma(n + 4) * (D.cache["abssum"] + cnt[i0] * np.abs(K[i0]))) / m
    return c, cerr * (1 + 4 * _U), m


def _equalities(D: _Data, j: int, eq: int | None, skip=None):
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
        # wall of j and eq) makes q·k_j larger than q·k_i for every other key, hence than q·c.  (Keys on the
        # segment of j and eq are left out of c: they tie along the whole wall, and "not adjacent" is
        # certified by a combination of the other keys that contains c.)
        c = _centroid(D, j, eq, skip)[0]
        rows.append(np.concatenate([K[j] - c, [0.0]]))
        rhs.append(1.0)
    if not rows:
        return None, None
    return np.array(rows), np.array(rhs)


# ------------------------------------------------------------------------------------------- "cannot win" certificates
# "Key j cannot win alone" and "keys j and e share no wall" are certified by a convex combination of other keys:
#     Σ w_l k_l (+ w_c c) (+ s (k_j - k_e)) = k_j,   Σ w_l (+ w_c) = 1,   w >= 0,
#     Σ w_l b_l (+ s (b_j - b_e)) >= b_j
# (c the centroid of the other keys, s free).  Then at every query some other key scores at least as much as j
# (for a wall: as the point of the line through j and e that the combination reaches, where j and e tie).  The
# weights come from the LP's dual solution; they are accepted only if exact weights nearby provably exist:
# in floating point when the normalised data (an exact affine image of the keys up to the bounded error Kerr)
# leave room for the correction, else by exact elimination on the keys' rational values when small enough.

_EXACT_SYSTEM = 300_000  # (d + 1)·p² rational operations allowed for one exact certificate
_EXACT_TOTAL = 3_000_000  # and for all of them in one call


def _dual_weights(D: _Data, j: int, eq: int | None, dual):
    """Weights ``(rows, w, w_c, s)`` of the combination read off the LP's dual solution, or None."""
    if dual is None:
        return None
    rows, lam, nu = dual
    lam = np.where(lam > 0, lam, 0.0)
    nu_e = float(nu[0]) if eq is not None and nu.size else 0.0
    nu_c = float(nu[-1]) if D.homogeneous and nu.size else 0.0
    om = float(lam.sum()) + nu_c
    if not om > 0:
        return None
    keep = lam > 0
    return rows[keep], lam[keep] / om, nu_c / om, nu_e / om


def _combination_float(D: _Data, j: int, eq: int | None, rows, w, wc, s, skip):
    """Float certificate check.  Returns ``(ok, strict)``: ok if exact weights ``w* > 0`` exist next to ``w``
    (for the exact images of the keys under the normalising map) with the bias inequality; strict if that
    inequality is strict with room to spare.  Rounding of the residual, of the data (``Kerr``, ``berr``) and
    of the SVD are bounded; the correction is ``‖r‖ / σ_min`` of the full-row-rank system."""
    K, E, b, be = D.K, D.Kerr, D.b, D.berr
    r = K.shape[1]
    # columns: the keys of the combination, the centroid, the free direction k_j - k_e; a row of ones (zero
    # for the free column) for Σ w = 1
    P, Pe, Pb, Pbe, x, one = [K[rows]], [E[rows]], [b[rows]], [be[rows]], [w], [np.ones(len(w))]
    if wc > 0:
        c, ce, m = _centroid(D, j, eq, skip)
        if m == 0:
            return False, False
        P += [c[None, :]]
        Pe += [ce[None, :]]
        Pb += [np.zeros(1)]
        Pbe += [np.zeros(1)]
        x += [np.array([wc])]
        one += [np.ones(1)]
    pos = sum(len(v) for v in x)  # (the weights that must stay positive)
    if eq is not None:
        g = K[j] - K[eq]
        gb = b[j] - b[eq]
        P += [g[None, :]]
        Pe += [(E[j] + E[eq] + _U * np.abs(g))[None, :]]
        Pb += [np.array([gb])]
        Pbe += [np.array([be[j] + be[eq] + _U * abs(gb)])]
        x += [np.array([s])]
        one += [np.zeros(1)]
    A = np.vstack([np.concatenate(P).T, np.concatenate(one)[None, :]])
    Ea = np.vstack([np.concatenate(Pe).T, np.zeros((1, A.shape[1]))])
    x = np.concatenate(x)
    cb, cbe = Pb, Pbe
    if not (x[:pos] > 0).all():
        return False, False
    y = np.append(K[j], 1.0)
    ye = np.append(E[j], 0.0)
    p = A.shape[1]
    res = A @ x - y
    rb = np.abs(res) + _gamma(p + 2) * (np.abs(A) @ np.abs(x) + np.abs(y)) + Ea @ np.abs(x) + ye
    if wc > 0:
        # the centroid gives every other key the weight w_c / m: correct over all of them (the smallest
        # singular value of [k_i, 1] over all keys, computed once, less the rows left out)
        ex = _excluded(D, j, eq, skip)
        ex = (D.first == D.first[j]) if ex is None else ex
        sig = _sigma_floor(D, ex)
        if sig > 0 and wc / m > float(np.linalg.norm(rb)) * (1 + 4 * _U) / sig * (1 + 4 * _U):
            return True, True  # (without biases: k_j inside the hull of the other keys)
    if p < r + 1:  # (the correction needs a system of full row rank)
        return False, False
    delta = _correction_bound(A, Ea, rb)
    if not np.all(x[:pos] > delta):
        return False, False
    if D.homogeneous:  # (biases exactly 0; a full-rank positive combination puts k_j inside the hull)
        return True, True
    bb = np.concatenate(cb)
    gap = float(bb @ x - b[j])
    bound = (delta * float(np.abs(bb).sum()) + float(np.concatenate(cbe) @ np.abs(x)) + be[j]
             + _gamma(p + 3) * (float(np.abs(bb) @ np.abs(x)) + abs(b[j])))
    return bool(gap - bound >= 0), bool(gap - bound > 0)


def _sigma_floor(D: _Data, ex: np.ndarray) -> float:
    """Lower bound on the smallest singular value of ``[k*_i, 1]`` (exact normalised keys, rows ``~ex``).

    ``λ_min`` of the Gram matrix of all rows (once; its rounding and the eigensolver's error bounded), less
    ``‖a_i‖²`` for each row left out (``λ_min(G - a aᵀ) >= λ_min(G) - ‖a‖²``), square root, less ``‖Kerr‖_F``.
    """
    if "gram" not in D.cache:
        A = np.concatenate([D.K, np.ones((D.K.shape[0], 1))], axis=1)
        G = A.T @ A
        fro2 = float((A * A).sum())
        lam = float(np.linalg.eigvalsh(G)[0])
        lam -= (_gamma(A.shape[0] + 2) + 16 * A.shape[1] * _U) * fro2 * (1 + 4 * _U)
        D.cache["rownorm2"] = np.einsum("ij,ij->i", A, A) * (1 + 4 * _gamma(A.shape[1]))
        D.cache["gram"] = (lam, float(np.linalg.norm(D.Kerr)) * (1 + 4 * _U))
    lam, e = D.cache["gram"]
    lam -= float(D.cache["rownorm2"][ex].sum()) * (1 + 4 * _gamma(D.K.shape[0]))
    return math.sqrt(lam) * (1 - 4 * _U) - e if lam > 0 else 0.0


def _correction_bound(A: np.ndarray, Ea: np.ndarray, rb: np.ndarray) -> float:
    """Bound on ``‖Δ‖∞`` for a solution of ``A* Δ = -r*`` (``|A* - A| <= Ea``, ``|r*| <= rb``; A has full row
    rank), or inf.  Square systems: an approximate inverse ``R`` with ``‖I - R A*‖∞ <= α < 1`` (the product's
    rounding and ``Ea`` bounded) gives ``‖A*^-1‖∞ <= ‖R‖∞ / (1 - α)``; otherwise ``‖r*‖₂ / σ_min`` (SVD)."""
    m, p = A.shape
    with np.errstate(all="ignore"):
        if m == p:
            try:
                R = np.linalg.inv(A)
            except np.linalg.LinAlgError:
                return math.inf
            Ra = np.abs(R)
            C = np.abs(np.eye(m) - R @ A) + _gamma(m + 2) * (1 + Ra @ np.abs(A)) + Ra @ Ea
            alpha = float(C.sum(axis=1).max()) * (1 + 2 * _gamma(m + 2))
            if not alpha < 1:
                return math.inf
            nr = float(Ra.sum(axis=1).max()) * (1 + 2 * _gamma(m + 2))
            return nr / (1 - alpha) * float(rb.max()) * (1 + 4 * _U)
        sig = np.linalg.svd(A, compute_uv=False)[m - 1]
        sig -= 8 * (m + p) * _U * np.linalg.norm(A) + np.linalg.norm(Ea)
        if not sig > 0:
            return math.inf
        return float(np.linalg.norm(rb)) * (1 + 4 * _U) / sig * (1 + 4 * _U)


def _combination_exact(D: _Data, j: int, eq: int | None, rows, wc, skip):
    """Exact certificate check on the keys' rational values, on the support of the float weights (the
    unique solution of the linear system there).  Returns ``(ok, strict_bias, strict_geometry)`` or None when
    the system is too large, not of full column rank, or inconsistent."""
    if D.cache.get("thin_real"):  # (the keys are not flat along the directions the LP did not see)
        return None
    Kint = _int_rows_cached(D)
    d = Kint.shape[1] - 1
    cols = [list(Kint[l, :d]) + [1] for l in rows]
    bias = [Kint[l, d] for l in rows]
    npos = len(cols)
    if wc > 0:
        ex = _excluded(D, j, eq, skip)
        ex = (D.first == D.first[j]) if ex is None else ex
        m = int((~ex).sum())
        if m == 0:
            return None
        tot = Kint[~ex].sum(axis=0)
        cols.append([Fraction(int(v), m) for v in tot[:d]] + [1])
        bias.append(Fraction(int(tot[d]), m))
        npos += 1
    if eq is not None:
        cols.append([int(a) - int(c) for a, c in zip(Kint[j, :d], Kint[eq, :d])] + [0])
        bias.append(int(Kint[j, d]) - int(Kint[eq, d]))
    p = len(cols)
    cost = (d + 1) * p * p
    spent = D.cache.get("exact_spent", 0)
    if cost > _EXACT_SYSTEM or spent + cost > _EXACT_TOTAL:
        return None
    D.cache["exact_spent"] = spent + cost
    x = _solve_exact(cols, [int(v) for v in Kint[j, :d]] + [1])
    if x is None or any(v < 0 for v in x[:npos]):
        return None
    gap = sum(v * bb for v, bb in zip(x, bias)) - int(Kint[j, d])
    if gap < 0:
        return None
    # inside the hull of the other keys (relative to their affine hull, which then contains k_j): a positive
    # weight on their centroid, which gives every one of them a positive weight; or a full-dimensional simplex
    inside = (wc > 0 and x[npos - 1] > 0) or (
        all(v > 0 for v in x[:npos]) and npos == D.K.shape[1] + 1 and not D.flattened)
    return True, gap > 0, inside


def _int_rows_cached(D: _Data) -> np.ndarray:
    """The exact rows (k..., b) as integers over one common denominator (made once for float input)."""
    Kint = D.int_rows
    if Kint is None:
        Kint = D.cache.get("int_rows")
        if Kint is None:
            if D.exact_rows is not None:
                Kint, den = _int_rows_den(D.exact_rows)
            else:
                Kint, den = float_int_rows(np.concatenate([D.Kraw, D.braw[:, None]], axis=1))
            D.cache["int_den"] = den  # (before "int_rows": threads test the latter)
            D.cache["int_rows"] = Kint
    elif "int_den" not in D.cache:
        D.cache["int_den"] = _int_rows_den(D.exact_rows)[1]
    return Kint


def _solve_exact(cols: list, y: list):
    """The unique solution ``x`` of ``Σ x_i cols[i] = y`` (exact rationals), or None (none, or not unique)."""
    p, m = len(cols), len(y)
    M = [[Fraction(cols[c][i]) for c in range(p)] + [Fraction(y[i])] for i in range(m)]
    piv = []
    rk = 0
    for c in range(p):
        r = next((i for i in range(rk, m) if M[i][c] != 0), None)
        if r is None:
            return None  # (a column dependent on the previous ones: not unique)
        M[rk], M[r] = M[r], M[rk]
        pr = M[rk]
        inv = 1 / pr[c]
        pr[:] = [v * inv for v in pr]
        for i in range(m):
            if i != rk and M[i][c] != 0:
                f = M[i][c]
                M[i] = [a - f * bb for a, bb in zip(M[i], pr)]
        piv.append(c)
        rk += 1
    if any(M[i][p] != 0 for i in range(rk, m)):
        return None  # inconsistent
    return [M[i][p] for i in range(p)]


def _certificate(D: _Data, j: int, eq: int | None, dual, skip=None):
    """``(ok, strict)`` for the combination read off ``dual`` (see the comment above), or None.  strict: in
    the bias case the bias inequality is strict (j never even ties for the maximum); without biases k_j lies
    inside the hull of the other keys (it ties only where every key does)."""
    wts = _dual_weights(D, j, eq, dual)
    if wts is None:
        return None
    rows, w, wc, s = wts
    if not D.flattened:
        ok, strict = _combination_float(D, j, eq, rows, w, wc, s, skip)
        if ok:
            return True, strict
    ex = _combination_exact(D, j, eq, rows, wc, skip)
    if ex is None:
        return None
    ok, strict_bias, inside = ex
    return ok, (inside if D.homogeneous else strict_bias)


def _nonvertex(D: _Data, j: int, t: float, dual, tol: float) -> str:
    """Status of a key the LP did not make a vertex: ``"interior"`` (certified strictly inside, LP margin below
    ``-tol``), ``"boundary"`` (certified unable to win alone), else ``"undecided"``."""
    if dual is None and t == -np.inf and D.homogeneous:
        dual = (np.zeros(0, dtype=int), np.zeros(0), np.array([1.0]))  # (k_j is the centroid: w_c = 1)
    cert = _certificate(D, j, None, dual)
    if cert is None:
        return UNDECIDED
    return INTERIOR if cert[1] and t < -tol else BOUNDARY


def _centroid_on_line(D: _Data, i: int, j: int, skip):
    """The "dual" of the combination ``c + s (k_i - k_j) = k_i`` (``c`` the centroid of the other keys, on the
    line through k_i and k_j), ``s`` by least squares."""
    c = _centroid(D, i, j, skip)[0]
    g = D.K[i] - D.K[j]
    gg = float(g @ g)
    s = float((D.K[i] - c) @ g) / gg if gg > 0 else 0.0
    return np.zeros(0, dtype=int), np.zeros(0), np.array([s, 1.0])


def _nonadjacent(D: _Data, i: int, j: int, dual, skip) -> bool:
    """Certified: the regions of keys i and j share no wall (see the comment above)."""
    cert = _certificate(D, i, j, dual, skip)
    return cert is not None and cert[0]


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
        ``"vertex"`` (certified witness); ``"interior"`` (certified strictly inside: LP margin < -tol and a
        verified combination of other keys with a strictly higher bias, or without biases one that gives
        every other key a positive weight: never the maximum, or tied only where every key ties);
        ``"boundary"`` (certified unable to win alone, ties possible: on a face of the hull, or a margin
        within ±tol); ``"undecided"`` (neither a witness nor a certificate could be verified: a positive LP
        margin whose witness did not survive certification, or a negative one whose combination did not,
        e.g. keys 1 and 1 + 2^-40 beside key 0 with biases 0, 0, -1, where the LP drops the tiny difference).
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
        LP margins in ``[-tol, tol]`` (normalised units: keys and biases scaled to max-norm 1) are "boundary"
        (given a verified certificate).
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
    solve = (lambda j: _naive_lp(D, j, with_dual=True)) if method == "naive" else (
        lambda j: _margin_lp(D, j, with_dual=True))
    if n_jobs > 1 and len(todo) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(int(n_jobs)) as ex:
            answers = list(ex.map(solve, todo))
    else:
        answers = map(solve, todo)
    axis = _axis_candidates(D) if todo else {}
    pending = []  # keys the LP did not make vertices
    for j, (t, q, s, dual) in zip(todo, answers):
        solves += s
        margin[j] = t
        qo = q @ D.M_out if t > tol else None
        if qo is not None and _certify(D, j, qo):
            status[j], W[j] = VERTEX, qo
        elif (qa := _axis_witness(D, j, axis)) is not None:
            # the float LP degenerated (keys 2^53 and 2^53 + 1) or its witness did not survive the rounding to
            # the original units: a coordinate direction certifies the key
            status[j], W[j] = VERTEX, qa
        elif qo is not None:
            status[j] = UNDECIDED  # positive LP margin, but the witness did not survive certification
        else:
            pending.append((j, t, dual))
    if pending:
        solves += _settle(D, pending, status, margin, W, tol, method == "naive")
    for i in range(n):
        if D.first[i] != i:
            status[i], margin[i] = status[D.first[i]], margin[D.first[i]]
    st = np.array([str(s) for s in status])
    return ArgmaxVertices(
        st == VERTEX, st, margin, D.first.copy(), n_filtered, len(todo), solves, method, W, D.like
    )


def _settle(D: _Data, pending: list, status, margin, W, tol: float, naive: bool) -> int:
    """Status of the keys ``(j, t, dual)`` the LP did not make vertices: "cannot win" only with a verified
    certificate (:func:`_nonvertex`).  On a flattened problem the dropped directions are decided first
    (:func:`_unflatten`); keys are re-solved in the exact coordinates along them if the keys are not flat
    there (the middle key of a thin triangle at an angle).  Returns the extra LP solves."""
    D2 = _unflatten(D)
    resolve = D2.K.shape[1] > D.K.shape[1]
    solves = 0
    for j, t, dual in pending:
        if resolve:  # (warm start: the constraints active at the reduced problem's optimum)
            act = dual[0] if dual is not None and len(dual[0]) else None
            t, q, s, dual = _naive_lp(D2, j, with_dual=True) if naive else _margin_lp(D2, j, active=act,
                                                                                       with_dual=True)
            solves += s
            margin[j] = t
            if t > tol:
                qo = q @ D2.M_out
                if _certify(D2, j, qo):
                    status[j], W[j] = VERTEX, qo
                else:
                    status[j] = UNDECIDED
                continue
        status[j] = _nonvertex(D2, j, t, dual, tol)
    return solves


def _naive_lp(D: _Data, j: int, with_dual: bool = False):
    """One full LP for key j (the baseline of the benchmark): (t, q_normalised, 1) [, dual as in _margin_lp]."""
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
    if res.status != 0 or res.x is None:
        out = (-np.inf if res.status == 2 else np.nan), np.zeros(d), 1
        return (*out, None) if with_dual else out
    out = float(res.x[-1]), res.x[:d], 1
    if not with_dual:
        return out
    nu = np.asarray(res.eqlin.marginals) if A_eq is not None else np.zeros(0)
    return (*out, (cand, -np.asarray(res.ineqlin.marginals), nu))


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
    """A certified query at which key ``j`` is the unique ⊕-winner, or ``None`` if it cannot win (or if
    :func:`argmax_vertices` leaves it ``"undecided"``).

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
    t, q, _, dual = _margin_lp(D, j, with_dual=True)
    if t > tol:
        qo = q @ D.M_out
        if _certify(D, j, qo):
            return from_numpy(qo, D.like)
    # a margin within the tolerance (a nearly flat configuration, keys 10^8 and 10^8 + 1): the full
    # classification's certified witness, whose filter tries more directions than this one LP (None here for
    # a key it certified)
    if t < -tol and _nonvertex(D, j, t, dual, tol) == INTERIOR:
        return None  # (certified interior: no classification of every key, which costs an LP each)
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
    qa = check_array_dtype(asarray(q, name="q"), "q")  # (asarray for object arrays too: strings were parsed, complex cast)
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
        True only for a certified wall (a verified tie point, ``witness``).
    witness : array or None
        A query near which keys ``i`` and ``j`` (and their copies) tie for the ⊕-best score: the exact tie point
        (a rational point, verified in rational arithmetic) rounded to floats.
    margin : float
        LP optimum (normalised units): how far all other keys stay below the tie.
    status : str
        ``"adjacent"``, ``"not adjacent"`` (certified: a convex combination of other keys, verified, reaches
        the line through the two keys at least as high) or ``"undecided"`` (neither could be verified;
        ``adjacent`` is then False).
    """

    adjacent: bool
    witness: Any
    margin: float
    status: str = "adjacent"
    __repr__ = compact_repr


def are_adjacent(
    keys: Any, i: int, j: int, biases: Any = None, *, semiring: Semiring | str | None = None, tol: float = 1e-7
) -> Adjacency:
    """Do the winning regions of keys ``i`` and ``j`` share a wall (an edge of the upper hull joins them)?

    Solved as the LP ``max t`` with ``b_i + q·k_i = b_j + q·k_j ≥ b_l + q·k_l + t`` for all other keys, except
    keys whose lifted points lie on the segment between those of ``i`` and ``j`` (decided exactly): they tie
    along the whole wall.  The witness of a positive answer is checked like :func:`argmax_vertices` checks its
    witnesses (exactly for exact input); a negative answer needs the LP's dual certificate, verified (see
    :class:`Adjacency`), else the answer is ``status="undecided"``.

    Examples
    --------
    >>> sq = [[0, 0], [1, 0], [0, 1], [1, 1]]
    >>> are_adjacent(sq, 0, 1).adjacent, are_adjacent(sq, 0, 3).adjacent
    (True, False)
    >>> are_adjacent(sq, 0, 3).status
    'not adjacent'
    """
    _check_tol(tol)
    D = _prepare(keys, biases, semiring)
    n = D.K.shape[0]
    i, j = check_index(i, n, "i", what="key"), check_index(j, n, "j", what="key")
    i, j = int(D.first[i]), int(D.first[j])
    if i == j:
        raise DomainError("are_adjacent needs two distinct keys (these are equal, with equal biases)")
    rows = _exact_rows(D)
    if rows[i][:-1] == rows[j][:-1]:  # equal keys, different biases: their scores never tie
        return Adjacency(False, None, -math.inf, "not adjacent")
    on_edge = _on_segment(D, i, j)
    A = _adjacency(D, i, j, on_edge, tol)
    if A.status != "adjacent" and D.flattened:  # decide the dropped directions, then ask again
        D2 = _unflatten(D)
        if D2 is not D:
            A = _adjacency(D2, i, j, on_edge, tol)
    return A


def _adjacency(D: _Data, i: int, j: int, on_edge: np.ndarray, tol: float) -> Adjacency:
    """:func:`are_adjacent` on the prepared data: the LP, then the tie's or the combination's verification."""
    t, q, _, dual = _margin_lp(D, i, eq=j, skip=on_edge, with_dual=True)
    if t > tol:
        qs = _certify_tie(D, i, j, q @ D.M_out, on_edge)
        if qs is not None:
            return Adjacency(True, from_numpy(qs, D.like), float(t), "adjacent")
    elif t == -np.inf and dual is None:  # an infeasible LP (keys equal but for the bias are answered before)
        if D.homogeneous and _nonadjacent(D, i, j, _centroid_on_line(D, i, j, on_edge), on_edge):
            # the normalisation q·(k_i - c) = 1 contradicts the tie: the centroid c of the other keys lies
            # on the line through k_i and k_j (the diagonal of a square)
            return Adjacency(False, None, float(t), "not adjacent")
    elif _nonadjacent(D, i, j, dual, on_edge):
        return Adjacency(False, None, float(t), "not adjacent")
    return Adjacency(False, None, float(t), "undecided")


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
        """Whether the regions of keys ``i`` and ``j`` share a wall (a verified one), as the exact fan's method
        answers; False also for a pair left ``"undecided"``: :func:`are_adjacent` gives the status."""
        return are_adjacent(self.points, i, j, self.biases, semiring=self.semiring).adjacent

    def region(self, j: int):
        """``(A, b)`` with region of key ``j`` = ``{q : A q <= b}`` (one row per other distinct key), as floats.

        For max-plus ``A = k_i − k_j`` and ``b = b_j − b_i``; for min-plus the signs are reversed.
        """
        D = _prepare(self.points, self.biases, self.semiring, whiten=False)
        j = check_index(j, len(D.first), "j", what="key")
        others = np.flatnonzero(D.first != D.first[int(j)])
        return D.Kraw[others] - D.Kraw[int(j)], D.braw[int(j)] - D.braw[others]
