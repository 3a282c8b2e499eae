"""Tropical attention: the zero-temperature limit of softmax attention, computed exactly.

As ``T -> 0``, ``softmax(s / T)`` tends to the uniform distribution on the set of keys attaining the best
score (the tropical sum ``⊕_j s_j`` of the scores).  So tropical attention is

    ``o_i = mean { v_j : s_ij = ⊕_j s_ij }``        (tie rule: uniform average over all tied keys),

with ``⊕ = max`` for :data:`~tropix.MaxPlus` (the limit of ordinary attention) and ``⊕ = min`` for
:data:`~tropix.MinPlus` (the limit at negative temperature).  Masked pairs get the semiring's zero as
score (``-inf`` in max-plus, ``+inf`` in min-plus); a query that sees no key gets the zero vector.

Exact input (integers, Fractions, sympy rationals) gives exact output (a NumPy object array of Fractions),
including exact tie detection, even with the default irrational scale ``1/sqrt(d)`` (a float scale is taken
as the rational number it stores).  Float input ties on exactly equal computed scores; identical keys always
tie (their score is computed once, whatever a GEMM's rounding does in different columns).  A row with a score
beyond the float range (finite ``q`` and ``k``, ``|scale q.k| > 1.8e308``, or 65504 in float16) is decided on
the exact scores of the floats' values instead, its tied values averaged in the input's dtype.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from .._array import asarray, float_int_rows, from_numpy, is_array, is_exact, to_exact_scalar, to_numpy
from ..errors import ConventionError, ShapeError
from ..tropical.semiring import MaxPlus, get_semiring
from ._inputs import block_extra, prepare

__all__ = ["tropical"]


def tropical(q, k, v, mask=None, bias=None, scale=None, causal=False, *, semiring=MaxPlus):
    """Tropical (zero-temperature) attention: average of the values of the best-scoring keys.

    Parameters
    ----------
    q, k, v, mask, bias, scale, causal
        As in :func:`tropix.attention.dense`.  ``bias`` uses the semiring's convention: its zero
        (``-inf`` in max-plus, ``+inf`` in min-plus) masks a pair.
    semiring : Semiring or str
        ``MaxPlus`` (best = largest score, the ``T -> 0+`` limit) or ``MinPlus`` (best = smallest).

    Returns
    -------
    array
        ``(..., n_q, d_v)``; exact object array for exact input, else the input's library and dtype.

    Examples
    --------
    >>> from fractions import Fraction
    >>> q = [[1, 0]]; k = [[1, 0], [1, 0], [0, 1]]; v = [[1, 0], [0, 1], [5, 5]]
    >>> tropical(q, k, v)  # keys 0 and 1 tie for the maximum: uniform average
    array([[Fraction(1, 2), Fraction(1, 2)]], dtype=object)
    >>> tropical(q, k, v, semiring="min")
    array([[5, 5]], dtype=object)
    """
    sr = get_semiring(semiring)
    if sr.sense not in (1, -1) or not sr.idempotent:
        raise ConventionError(f"tropical attention needs MaxPlus or MinPlus, got {sr.name}")
    exact = all(
        (not is_array(x) and is_exact(asarray(x))) or (is_array(x) and is_exact(x))
        for x in (q, k, v)
    ) and (bias is None or is_exact(asarray(bias) if not is_array(bias) else bias) or _only_infs(bias))
    if exact:
        return _tropical_exact(q, k, v, mask, bias, scale, causal, sr)
    if bias is not None:
        bias = sr.validate(bias, "bias")
        if isinstance(bias, np.ndarray) and is_array(q) and not isinstance(q, np.ndarray):
            # (a nested-list bias with torch or array-API inputs: into their library, as dense does)
            bias = from_numpy(np.asarray(bias, dtype=np.float64), q)
        if sr.sense == -1:  # min-plus bias: +inf masks; map to the max-plus convention of prepare
            bias = -bias
    P = prepare(q, k, v, mask, bias, scale, causal, fname="tropical")
    xp = P.xp
    dt = P.q.dtype
    with np.errstate(over="ignore", invalid="ignore"):
        s = _same_key_same_score(xp.matmul(P.q, xp.matrix_transpose(P.k)) * P.scale, P.k, xp)
    # rows with a score beyond the dtype's range (q and k are finite): the overflowed scores order nothing;
    # they are recomputed exactly below (0 meanwhile: an infinite score is no element of the semiring)
    over = xp.logical_not(xp.all(xp.isfinite(s), axis=-1))
    if bool(xp.any(over)):
        s = xp.where(over[..., None], xp.zeros_like(s), s)
    E = block_extra(P, slice(0, P.n_q), slice(0, P.n_k), dt)
    if sr.sense == -1:
        if E is not None:  # E holds -bias (and -inf for masked pairs): back to min-plus scores
            s = s - E
    elif E is not None:
        s = s + E
    best = sr.sum(s, axis=-1)
    tie = xp.logical_and(s == best[..., None], xp.isfinite(s))
    if bool(xp.any(over)):
        # the ties of those rows from the exact scores; their values are averaged below like every row's, in the
        # input's dtype and with the gradient (they were averaged in NumPy: a bfloat16 input gave a float32 output
        # and the whole output lost its autograd graph)
        tie = _overflowed_ties(P, E, over, tie, sr)
    w = xp.astype(tie, dt)
    cnt = xp.sum(w, axis=-1)
    cnt = xp.where(cnt > 0, cnt, xp.ones_like(cnt))[..., None]
    with np.errstate(over="ignore"):
        out = xp.matmul(w, P.v) / cnt
    if not bool(xp.all(xp.isfinite(out))):  # the sum of the tied values overflowed (two tied float16 values 60000
        out = xp.where(xp.isfinite(out), out, xp.matmul(w / cnt, P.v))  # gave inf): their weights 1/count first
    return out


def _overflowed_ties(P, E, over, tie, sr):
    """``tie`` (the best keys of every row) with the rows ``over`` (a score ``scale * q.k`` beyond the float
    range, from finite ``q`` and ``k``: ``+inf``/``-inf`` ties or a row that looked fully masked) recomputed from
    the exact scores of the floats' rational values: the best keys and their ties are exact there.
    (``q = [[-1e200]]``, ``k = [[1e200], [2e200]]`` gave the output of a row that sees no key.)"""
    batch = tuple(P.batch_shape)
    qn = np.broadcast_to(np.asarray(to_numpy(P.q), dtype=np.float64), batch + (P.n_q, P.d))
    kn = np.broadcast_to(np.asarray(to_numpy(P.k), dtype=np.float64), batch + (P.n_k, P.d))
    En = None if E is None else np.broadcast_to(np.asarray(to_numpy(E), dtype=np.float64), batch + (P.n_q, P.n_k))
    sc = Fraction(float(P.scale))
    res = np.array(np.broadcast_to(np.asarray(to_numpy(tie), dtype=bool), batch + (P.n_q, P.n_k)), copy=True)
    K = {}
    for idx in map(tuple, np.argwhere(np.asarray(to_numpy(over)))):
        h, i = idx[:-1], idx[-1]
        if h not in K:
            K[h] = float_int_rows(kn[h])
        Ki, dk = K[h]
        Qi, dq = float_int_rows(qn[h + (i,)])
        dots = Ki.dot(Qi)  # exact Python ints: (q.k) dq dk
        e = En[h + (i,)] if En is not None else np.zeros(P.n_k)
        vis = [j for j in range(P.n_k) if math.isfinite(e[j])]  # (-inf: masked; min-plus E holds -bias)
        score = {j: Fraction(int(dots[j]), dq * dk) * sc + sr.sense * Fraction(float(e[j])) for j in vis}
        res[idx] = False
        if not score:  # (no visible key: the zero row)
            continue
        best = max(score.values()) if sr.sense == 1 else min(score.values())
        res[idx][[j for j in vis if score[j] == best]] = True
    return from_numpy(res, tie)


def _same_key_same_score(s, k, xp):
    """The scores ``s`` with every key's column replaced by that of the first key equal to it: a GEMM may
    round the same dot product differently in different columns (its remainder columns), and identical keys
    must tie (measured: five copies of a key, one dropped, the average depending on the keys' strides)."""
    kn = np.asarray(to_numpy(k))
    shape = tuple(s.shape)
    heads = np.broadcast_to(kn, shape[:-2] + kn.shape[-2:]).reshape((-1,) + kn.shape[-2:])  # (one per score head)
    reps = []
    for kh in heads:
        _, first, inv = np.unique(kh, axis=0, return_index=True, return_inverse=True)
        reps.append(first[inv.reshape(-1)])
    if all(np.array_equal(r, np.arange(len(r))) for r in reps):
        return s
    if len(shape) == 2:
        return xp.take(s, from_numpy(reps[0], s), axis=-1)
    flat = xp.reshape(s, (-1,) + shape[-2:])
    cols = [xp.take(flat[h, ...], from_numpy(reps[h], s), axis=-1) for h in range(flat.shape[0])]
    return xp.reshape(xp.stack(cols, axis=0), shape)


def _only_infs(b):
    a = np.asarray(asarray(b) if not is_array(b) else b, dtype=object).ravel()
    return all(isinstance(t, float) and math.isinf(t) for t in a)


def _exact_array(x, name):
    a = asarray(x, name=name) if not (isinstance(x, np.ndarray) and x.dtype != object) else x
    a = np.asarray(a)
    if a.dtype != object:
        a = a.astype(object)
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [to_exact_scalar(t) for t in a.ravel()]
    return out


def _tropical_exact(q, k, v, mask, bias, scale, causal, sr):
    # shapes and NaN checks through the float path's validator (on float copies)
    qa, ka, va = (_exact_array(x, n) for x, n in ((q, "q"), (k, "k"), (v, "v")))
    fb = None
    if bias is not None:
        ba = sr.validate(asarray(bias) if not is_array(bias) else bias, "bias")
        ba = _exact_array(ba, "bias")
        fb = np.array([float(t) for t in ba.ravel()]).reshape(ba.shape)
        fb = -fb if sr.sense == -1 else fb
    P = prepare(qa.astype(float), ka.astype(float), va.astype(float), mask, fb,
                1.0 if scale is None else scale, causal, fname="tropical")
    d = P.d
    if scale is None:
        r = math.isqrt(d)
        sc = Fraction(1, r) if r * r == d else None  # None: exactly 1/sqrt(d), irrational
    else:
        sc = to_exact_scalar(scale)
        if isinstance(sc, float):  # a finite float is the exact dyadic rational it stores
            if not math.isfinite(sc):
                raise ShapeError(f"tropical: scale must be finite, got {sc}")
            sc = Fraction(sc)
    batch = P.batch_shape
    nd = len(batch) + 2
    keep = np.ones(batch + (P.n_q, P.n_k), dtype=bool)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        keep &= np.broadcast_to(m.reshape((1,) * (nd - m.ndim) + m.shape), keep.shape)
    if causal:
        keep &= np.tril(np.ones((P.n_q, P.n_k), dtype=bool))
    B = None
    if bias is not None:
        B = np.broadcast_to(ba.reshape((1,) * (nd - ba.ndim) + ba.shape), keep.shape)
        keep &= np.vectorize(lambda t: not (isinstance(t, float) and math.isinf(t)), otypes=[bool])(B)
    out = np.empty(batch + (P.n_q, P.d_v), dtype=object)
    for idx in np.ndindex(*batch, P.n_q):
        h, i = idx[:-1], idx[-1]
        js = [j for j in range(P.n_k) if keep[h + (i, j)]]
        if not js:
            out[idx] = np.array([0] * P.d_v, dtype=object)
            continue
        dots = {j: sum((qa[h + (i, t)] * ka[h + (j, t)] for t in range(d)), 0) for j in js}
        bj = {j: (B[h + (i, j)] if B is not None else 0) for j in js}
        if sc is not None:
            key = {j: dots[j] * sc + bj[j] for j in js}
            cmp = lambda a, b: (key[a] > key[b]) - (key[a] < key[b])  # noqa: E731
        else:
            cmp = functools.partial(_cmp_irrational, dots, bj, d)
        best = js[0]
        for j in js[1:]:
            if sr.sense * cmp(j, best) > 0:
                best = j
        ties = [j for j in js if cmp(j, best) == 0]
        tot = [sum((va[h + (j, c)] for j in ties), 0) for c in range(P.d_v)]
        out[idx] = np.array([_norm(Fraction(t) / len(ties)) for t in tot], dtype=object)
    return out


def _norm(f: Fraction):
    return int(f) if f.denominator == 1 else f


def _cmp_irrational(dots, bj, d, a, b):
    """Sign of ``(x_a - x_b)/sqrt(d) + (b_a - b_b)``, exactly (x, b rational)."""
    A = Fraction(dots[a] - dots[b])
    Bv = Fraction(bj[b] - bj[a])  # compare A/sqrt(d) with Bv  <=>  A vs Bv*sqrt(d)
    sa = (A > 0) - (A < 0)
    sb = (Bv > 0) - (Bv < 0)
    if sa != sb or sa == 0:
        return (sa > sb) - (sa < sb) if sa != sb else 0
    diff = A * A - Bv * Bv * d
    s = (diff > 0) - (diff < 0)
    return s if sa > 0 else -s

