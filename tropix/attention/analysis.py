"""Analysis of a head's queries and keys: how tropical is it, and what does the argmax geometry look like.

* :func:`tropicality` (from ``q``, ``k``) and :func:`score_tropicality` (from a score matrix): per query, the
  largest attention weight, the entropy, the effective support at mass ``1 - eps``, the score margin (best minus
  second best), and the temperature below which the row becomes ``eps``-sparse (its largest weight reaches
  ``1 - eps``).  Each statistic is one function with its edge cases stated (:func:`softmax_weights`,
  :func:`effective_support`, :func:`score_margin`, :func:`sparsity_temperature`); the per-head statistics of
  real models (:mod:`tropix.models.headstats`, ``tropix analyze``) are these functions.
* :func:`key_geometry`: which keys can ever be the argmax (vertices of ``conv(K)``, or of the upper hull of the
  lifted points ``(k_j, b_j)`` with per-key biases), each with a certified witness query; the argmax cell of
  given queries; optionally the adjacency of cells (via :mod:`tropix.tropical.argmax_lp`).
* :func:`score_slice`: restricting ``q = q0 + a u + b w`` to a plane makes ``max_j s_j`` a tropical
  polynomial in ``(a, b)`` with exponents ``(u.k_j, w.k_j)`` and coefficients ``q0.k_j + b_j``; its tropical
  curve (exact for exact input) is where the argmax changes.  :func:`plot_slice` draws it.
* :func:`attention_entanglement`: Schmidt spectra and entanglement entropies of the attention matrix across the
  cuts of a tensorisation of its rows and columns (via :mod:`tropix.tn`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .._array import asarray, check_no_nan, from_numpy, is_array, to_numpy
from .._repr import compact_repr, summary
from ..errors import ConventionError, EmptyInputError, FloatOverflowError, NaNError, ShapeError, ToleranceError
from ..tropical.semiring import MaxPlus, get_semiring, require_tropical
from ..tropical._args import check_array_dtype
from ._inputs import check_eps, extra_numpy, prepare

__all__ = [
    "HeadTropicality",
    "tropicality",
    "score_tropicality",
    "softmax_weights",
    "effective_support",
    "score_margin",
    "sparsity_temperature",
    "extended_quantile",
    "KeyGeometry",
    "key_geometry",
    "score_slice",
    "plot_slice",
    "attention_entanglement",
]


def _frozen(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class HeadTropicality:
    """Per-query statistics of one head (arrays of shape ``(n_q,)``) at temperature ``T``.

    Every field follows the definition of the function named below, edge cases included; ``tropix analyze``
    (:func:`tropix.models.headstats.head_stats`) pools exactly these numbers.

    Attributes
    ----------
    max_weight : numpy.ndarray
        Largest weight of :func:`softmax_weights` at ``T`` (1 with one visible key, 0 for a row without any).
    entropy : numpy.ndarray
        Entropy of those weights in nats (0 with one visible key or none).
    effective_support : numpy.ndarray of int
        :func:`effective_support` of those weights at mass ``1 - eps`` (0 for a row without visible keys).
    margin : numpy.ndarray
        :func:`score_margin` (``inf`` with one visible key, 0 with a tie, ``nan`` without visible keys).
    sparse_temperature : numpy.ndarray
        :func:`sparsity_temperature` at ``eps`` (independent of ``T``).
    eps, temperature : float
    """

    max_weight: np.ndarray
    entropy: np.ndarray
    effective_support: np.ndarray
    margin: np.ndarray
    sparse_temperature: np.ndarray
    eps: float
    temperature: float
    __repr__ = compact_repr

    def __post_init__(self):
        for f in ("max_weight", "entropy", "effective_support", "margin", "sparse_temperature"):
            object.__setattr__(self, f, _frozen(getattr(self, f)))

    def summary(self) -> dict:
        """Medians and quantiles over the queries that see at least one key, for a one-line report of a head.

        ``inf`` (one visible key) counts as larger than every number (:func:`extended_quantile`); the margin
        quantiles are over finite margins only (``inf`` if there are none).
        """
        seen = ~np.isnan(self.sparse_temperature)
        if not seen.any():
            nan = float("nan")
            return {k: nan for k in ("median_max_weight", "median_entropy", "median_effective_support",
                                     "median_margin", "median_sparse_temperature")} | {"margin_quantiles": (nan,) * 3}
        mar = self.margin[seen].astype(np.float64)
        fm = mar[np.isfinite(mar)]
        fm = fm if fm.size else np.array([np.inf])
        return {
            "median_max_weight": float(np.median(self.max_weight[seen])),
            "median_entropy": float(np.median(self.entropy[seen])),
            "median_effective_support": float(np.median(self.effective_support[seen])),
            "median_margin": extended_quantile(mar, 0.5),
            "margin_quantiles": tuple(extended_quantile(fm, x) for x in (0.1, 0.5, 0.9)),
            "median_sparse_temperature": extended_quantile(self.sparse_temperature[seen], 0.5),
        }


def _score_rows(P, h=(), fname="tropicality"):
    """Yield (row slice, dense scores) of one head in blocks of queries (NumPy float64).

    Raises :class:`~tropix.errors.FloatOverflowError` when ``scale * q.k`` leaves the float64 range (a ``+inf``
    score gave NaN weights and margins; a ``-inf`` one silently masked a visible key)."""
    q = np.asarray(to_numpy(P.q), dtype=np.float64)[h]
    k = np.asarray(to_numpy(P.k), dtype=np.float64)[h]
    f, _ = extra_numpy(P, h)
    step = max(1, 2**22 // max(P.n_k, 1))
    for s in range(0, P.n_q, step):
        rows = np.arange(s, min(P.n_q, s + step))
        with np.errstate(over="ignore", invalid="ignore"):
            S = (q[rows] * P.scale) @ k.T
        if not np.all(np.isfinite(S)):
            raise FloatOverflowError(f"{fname}: the scores scale * q.k overflow float64 (|score| > 1.8e308); "
                                     "rescale q or k")
        if f is not None:
            S = S + f(rows, np.arange(P.n_k))
        yield rows, S


# ------------------------------------------------------------------------------------------- row statistics
_TINY = 5e-324  # a positive exact gap that underflows in float64 stays positive
_HUGE = float(np.finfo(np.float64).max)
_EXACT_INT = 2**53  # integer scores beyond this are not all representable in float64


def _signed_rows(scores, semiring, fname):
    """``sense * scores`` as a 2-D NumPy array (rows = all leading axes; float64, or object for exact input),
    the leading shape, and the input (for :func:`from_numpy`).  Masked keys are ``-inf`` afterwards."""
    S = require_tropical(semiring, fname)
    x = scores if is_array(scores) else asarray(scores, name="scores")
    x = S.validate(x, "scores")
    a = to_numpy(x)
    if a.ndim == 0:
        raise ShapeError(f"{fname}: scores must have at least one axis (the keys), got a scalar")
    if a.shape[-1] == 0:
        raise EmptyInputError(f"{fname}: there are no keys (scores have shape {a.shape})")
    if a.dtype.kind in "iu" and a.size and (a.max() > _EXACT_INT or a.min() < -_EXACT_INT):
        a = a.astype(object)  # exact: in float64, [[2**60 + 1, 2**60]] was an exact tie (margin 0, T_eps 0)
    elif a.dtype != object:
        a = np.asarray(a, dtype=np.float64)
    lead = a.shape[:-1]
    a = a.reshape(-1, a.shape[-1])
    if S.sense == -1:
        a = -a
    return a, lead, scores


def _exact_gaps(a):
    """Gaps ``top - s_j`` of an exact (object) score matrix, decided exactly, returned as float64.

    Returns ``(G, visible, n_top)``: masked entries of ``G`` are ``inf``; a positive gap is never rounded to 0.
    """
    n_rows, n = a.shape
    G = np.full((n_rows, n), np.inf)
    vis = np.zeros((n_rows, n), dtype=bool)
    n_top = np.zeros(n_rows, dtype=np.int64)
    for i, row in enumerate(a):
        idx = [j for j, v in enumerate(row) if v != -math.inf]
        if not idx:
            continue
        top = max(row[j] for j in idx)
        for j in idx:
            d = top - row[j]
            try:
                g = float(d)
            except OverflowError:
                g = _HUGE
            G[i, j] = min(g, _HUGE) if d == 0 or g > 0 else _TINY
            vis[i, j] = True
            n_top[i] += d == 0
    return G, vis, n_top


def _gaps(a):
    """``(G, visible, n_top)`` of a signed score matrix: gaps to the row's best visible score (``inf`` where masked,
    finite where visible), the visibility mask and the number of keys tying for the best score (exact ties)."""
    if a.dtype == object:
        return _exact_gaps(a)
    vis = a > -np.inf
    top = np.max(np.where(vis, a, -np.inf), axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        G = np.where(vis, np.minimum(top[:, None] - a, _HUGE), np.inf)
    return G, vis, np.sum(vis & (G == 0), axis=1)


def _float_rows(a):
    """Float64 rows with the same softmax: exact rows become minus their exact gaps to the row's best score
    (``float(10**400)`` overflowed: softmax_weights / score_tropicality of huge exact scores raised OverflowError)."""
    if a.dtype != object:
        return a
    G, vis, _ = _exact_gaps(a)
    return np.where(vis, -G, -np.inf)


def _float_margin(v):
    try:
        return float(v)
    except OverflowError:  # an exact margin beyond float64: the largest float, as in the float path
        return _HUGE


def _weights(af, temperature):
    """Row softmax of a signed float64 score matrix at ``temperature`` (masked keys and empty rows: 0)."""
    vis = af > -np.inf
    top = np.max(np.where(vis, af, -np.inf), axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        W = np.where(vis, np.exp((af - top[:, None]) / temperature), 0.0)
    tot = W.sum(axis=1)
    return W / np.where(tot > 0, tot, 1.0)[:, None]


def _support(W, eps):
    """Effective support of float64 weight rows (see :func:`effective_support`)."""
    top = W.max(axis=1, keepdims=True) if W.shape[1] else np.zeros((W.shape[0], 1))
    W = W / np.where(top > 0, top, 1.0)  # scale-free: the total of [1e308, 1e308] overflowed and gave support 1
    ps = -np.sort(-W, axis=1)
    cs = np.cumsum(ps, axis=1)
    tot = cs[:, -1:]
    k = 1 + np.sum(cs < (1.0 - eps) * tot - _SUPPORT_RTOL * tot, axis=1)
    return np.where(tot[:, 0] > 0, k, 0).astype(np.int64)


_SUPPORT_RTOL = 1e-12


def _margins(a, G, vis):
    """Best minus second-best visible score per row of a signed score matrix (exact for object input), from
    the gaps ``G`` and visibility ``vis`` of :func:`_gaps`."""
    nvis = vis.sum(axis=1)
    if a.dtype == object:
        out = np.empty(a.shape[0], dtype=object)
        for i, row in enumerate(a):
            v = sorted((x for x in row if x != -math.inf), reverse=True)
            out[i] = v[0] - v[1] if len(v) >= 2 else (math.inf if v else math.nan)
        return out
    second = np.sort(G, axis=1)[:, 1] if a.shape[1] >= 2 else np.full(a.shape[0], np.inf)
    return np.where(nvis >= 2, second, np.where(nvis == 1, np.inf, np.nan))


def _temperatures(G, vis, n_top, eps, max_iter=200):
    """Sparsity temperatures from gaps (see :func:`sparsity_temperature`): Newton's method on
    ``u = 1/T`` for ``log sum_{g_j > 0} exp(-g_j u) = log c``, started at ``u = 0``.  The left side is convex and
    decreasing in ``u``, so the iterates increase monotonically to the root (no overshoot in exact arithmetic)."""
    nvis = vis.sum(axis=1)
    r = nvis - n_top  # visible keys strictly below the best
    m = n_top.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (eps - (m - 1.0) * (1.0 - eps)) / (1.0 - eps)  # p_max >= 1-eps  <=>  sum_{g>0} exp(-g/T) <= c
    out = np.full(G.shape[0], np.nan)
    has = nvis > 0
    out[has & (c < 0)] = 0.0
    out[has & (c >= r)] = np.inf  # (r = 0 with c >= 0 included: the weights never change)
    out[has & (r > 0) & (c == 0)] = 0.0  # the sum is > 0 for every T > 0
    solve = np.flatnonzero(has & (r > 0) & (c > 0) & (c < r))
    if solve.size == 0:
        return out
    pos = vis[solve] & (G[solve] > 0)
    # gaps in units of the smallest positive gap (T_eps scales with the gaps): 1/T stays representable even
    # for subnormal gaps, and u = gmin / T lies in [ln(r/c) gmin/gmax, ln(r/c)]
    gmin = np.min(np.where(pos, G[solve], np.inf), axis=1)
    with np.errstate(over="ignore"):
        Gs = np.where(pos, G[solve] / gmin[:, None], 1.0)
    wide = ~np.all(np.isfinite(Gs), axis=1)  # gap ratios beyond float64: bisection instead (below)
    Gs = np.where(pos & ~wide[:, None], Gs, 0.0)
    pos = pos & ~wide[:, None]
    D = np.where(pos, Gs - 1.0, 0.0)
    logc = np.log(c[solve])
    u = np.zeros(solve.size)
    active = np.flatnonzero(~wide)
    for _ in range(max_iter if active.size else 0):  # (a monotone sequence: the cap only bounds the work; ~5-30 steps are seen)
        ua = u[active]
        with np.errstate(under="ignore", over="ignore", invalid="ignore"):
            e = np.where(pos[active], np.exp(-D[active] * ua[:, None]), 0.0)
            se = e.sum(axis=1)  # >= 1 (the keys at the smallest gap contribute exp(0))
            phi = -ua + np.log(se) - logc[active]
            slope = np.where(pos[active], Gs[active] * e, 0.0).sum(axis=1) / se  # -d(phi)/du: mean gap, >= 1
        step = np.where(phi > 0, phi / slope, 0.0)
        un = ua + step
        u[active] = un
        keep = step > 4 * np.finfo(np.float64).eps * un
        active = active[keep]
        if active.size == 0:
            break
    with np.errstate(divide="ignore", over="ignore"):
        out[solve] = gmin / u
    slow = np.zeros(solve.size, dtype=bool)
    slow[active] = True  # not converged within max_iter (not seen in practice)
    redo = np.flatnonzero(wide | slow | ~(u > 0))
    if redo.size:
        rows = solve[redo]
        out[rows] = _bisect_float_bits(np.where(vis[rows] & (G[rows] > 0), G[rows], np.inf), c[rows])
    return out


def _row_temperatures(a, G, vis, n_top, eps):
    """:func:`_temperatures` of a signed score matrix, also where a gap overflows float64 (e.g. scores ``1e308`` and
    ``-1e308``: the gaps were clamped to the largest float, which gave a ``T_eps`` 10% too small).  Such rows are
    scaled by ``2**-m`` (exactly; ``T_eps`` scales with the scores) and the result scaled back (``inf`` when
    ``T_eps`` itself is beyond float64)."""
    out = _temperatures(G, vis, n_top, eps)
    big = np.flatnonzero(np.any(vis & (G >= _HUGE), axis=1))
    for i in big:
        row = a[i:i + 1]
        if row.dtype == object:
            fin = [v for v in row[0] if v != -math.inf]
            m = max(1, (int(max(fin)) - int(min(fin))).bit_length() - 1000)
            sc = Fraction(1, 2**m)
            row = np.array([[v * sc if v != -math.inf else v for v in row[0]]], dtype=object)
        else:
            m = 1
            row = row / 2.0
        g, v, nt = _gaps(row)
        with np.errstate(over="ignore"):
            out[i] = float(_temperatures(g, v, nt, eps)[0]) * 2.0**m if m < 1024 else (
                math.inf if _temperatures(g, v, nt, eps)[0] > 0 else 0.0)
    return out


def _bisect_float_bits(G, c):
    """Largest float64 ``T`` with ``sum_j exp(-G_j / T) <= c`` per row (``inf`` entries contribute 0), by bisection
    on the bit patterns of the positive floats (ordered like the floats): 63 steps, no scaling needed."""
    lo = np.zeros(G.shape[0], dtype=np.int64)  # T = 0: the sum is 0 <= c
    hi = np.full(G.shape[0], np.float64(np.inf)).view(np.int64)  # T = inf: the sum is the count > c
    while np.any(hi - lo > 1):
        mid = lo + (hi - lo) // 2
        T = mid.view(np.float64)
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            ok = np.exp(-G / T[:, None]).sum(axis=1) <= c
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return lo.view(np.float64)


def _row_stats(a, eps, temperature):
    """(max_weight, entropy, effective_support, margin, sparse_temperature) of a signed 2-D score matrix."""
    W = _weights(_float_rows(a), temperature)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(W > 0, W * np.log(W), 0.0).sum(axis=1)
    G, vis, n_top = _gaps(a)
    mar = _margins(a, G, vis)
    if mar.dtype == object:
        mar = np.array([_float_margin(v) for v in mar], dtype=np.float64)
    return W.max(axis=1), ent, _support(W, eps), mar, _row_temperatures(a, G, vis, n_top, eps)


def _check_open_eps(eps, fname):
    e = check_eps(eps, fname)
    if not 0 < e < 1:
        raise ToleranceError(f"{fname}: eps must be in (0, 1), got {eps}")
    return e


def _check_temperature(temperature, fname):
    if isinstance(temperature, (bool, np.bool_)):  # (float(True) is 1.0: a flag passed by mistake ran as T = 1)
        raise ToleranceError(f"{fname}: temperature must be a number, got {temperature!r}")
    try:
        T = float(temperature)
    except (TypeError, ValueError) as err:
        raise ToleranceError(f"{fname}: temperature must be a number, got {summary(temperature)}") from err
    if math.isnan(T):
        raise NaNError(f"{fname}: temperature is NaN")
    if not (T > 0 and math.isfinite(T)):
        raise ToleranceError(f"{fname}: temperature must be finite and > 0, got {temperature}")
    return T


def _out(a, lead, like):
    return from_numpy(np.asarray(a).reshape(lead), like)


def softmax_weights(scores, temperature: float = 1.0, *, semiring=MaxPlus):
    """Attention weights ``softmax(s / T)`` along the last axis, with the masking conventions of the attention layer.

    In max-plus the weights are ``exp(s_j / T) / sum_i exp(s_i / T)``; in min-plus (scores are costs) they are
    those of ``-s``.  A key whose score is the tropical zero (``-inf`` in max-plus, ``+inf`` in min-plus) is masked:
    weight 0.  A row without a visible key has all weights 0 (its attention output is zero).  The weights are
    float64 for any input (exact input included); other array libraries get their own array back.

    Examples
    --------
    >>> softmax_weights([[0.0, 0.0, -np.inf], [-np.inf, -np.inf, -np.inf]]).tolist()
    [[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]
    >>> softmax_weights([[1, 3]], semiring="min").round(4).tolist()   # costs: the cheaper key wins
    [[0.8808, 0.1192]]
    """
    T = _check_temperature(temperature, "softmax_weights")
    a, lead, like = _signed_rows(scores, semiring, "softmax_weights")
    W = _weights(_float_rows(a), T)
    return from_numpy(W.reshape(lead + (a.shape[1],)), like)


def effective_support(weights, eps: float):
    """Per row: the fewest keys whose weights add up to at least ``1 - eps`` of the row's total weight.

    With weights sorted decreasingly, ``w_(1) >= w_(2) >= ...`` and total ``W``, it is the least ``k`` with
    ``w_(1) + ... + w_(k) >= (1 - eps) W``.  For float weights a partial sum within ``1e-12 W`` of the target
    counts as reaching it (the weights carry rounding errors of that order; without the slack ``[0.99, 0.01]``
    at ``eps = 0.01`` could give 2); exact (int/Fraction) weights are compared exactly.  Ties among the weights
    do not matter (only the sorted values do).  A row of zeros (no visible key) has support 0; ``eps = 0`` gives
    the number of positive weights (up to the slack).

    Parameters
    ----------
    weights : array (..., n)
        Nonnegative weights (e.g. :func:`softmax_weights`); need not be normalised.
    eps : float in [0, 1)

    Examples
    --------
    >>> effective_support([[0.7, 0.2, 0.1], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]], 0.15).tolist()
    [2, 2, 0]
    >>> from fractions import Fraction as F
    >>> effective_support([[F(99, 100), F(1, 100)]], 0.01).tolist()
    [1]
    """
    e = check_eps(eps, "effective_support")
    if not e < 1:
        raise ToleranceError(f"effective_support: eps must be in [0, 1), got {eps}")
    x = weights if is_array(weights) else asarray(weights, name="weights")
    check_no_nan(x, "weights")
    a = to_numpy(x)
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ShapeError(f"effective_support: weights must have shape (..., n) with n >= 1, got {a.shape}")
    lead = a.shape[:-1]
    a = a.reshape(-1, a.shape[-1])
    if a.dtype == object:
        if any(v < 0 or v == math.inf for v in a.ravel()):
            raise ConventionError("effective_support: weights must be finite and >= 0")
        target = 1 - Fraction(e)
        out = np.zeros(a.shape[0], dtype=np.int64)
        for i, row in enumerate(a):
            ps = sorted(row, reverse=True)
            tot = sum(ps)
            acc = 0
            for k, p in enumerate(ps, start=1):
                if tot == 0:
                    break
                acc += p
                if acc >= target * tot:
                    out[i] = k
                    break
        return _out(out, lead, weights)
    a = np.asarray(a, dtype=np.float64)
    if np.any(a < 0) or not np.all(np.isfinite(a)):
        raise ConventionError("effective_support: weights must be finite and >= 0")
    return _out(_support(a, e), lead, weights)


def score_margin(scores, *, semiring=MaxPlus):
    """Per row: the best visible score minus the second best (the gap the argmax wins by; 0 with a tie).

    Best is the ⊕-best: the largest score in max-plus, the smallest in min-plus (where the margin is
    ``s_(2) - s_(1)``); masked keys (the tropical zero) are not visible.  ``inf`` with exactly one visible key,
    ``nan`` with none.  Exact input gives exact margins (an object array); integer arrays give float64 margins
    computed exactly (then rounded), also beyond ``2**53``.

    Examples
    --------
    >>> score_margin([[1.0, 3.0, 2.5], [0.0, -np.inf, -np.inf], [2.0, 2.0, 0.0]]).tolist()
    [0.5, inf, 0.0]
    >>> score_margin([[1, 3, 2]], semiring="min").tolist()
    [1]
    """
    a, lead, like = _signed_rows(scores, semiring, "score_margin")
    G, vis, _ = _gaps(a)
    mar = _margins(a, G, vis)
    if mar.dtype == object and is_array(like) and to_numpy(like).dtype != object:  # an integer array: float64 out
        mar = np.array([_float_margin(v) for v in mar], dtype=np.float64)
    return _out(mar, lead, like)


def sparsity_temperature(scores, eps: float, *, semiring=MaxPlus):
    """Per row: the temperature below which the row is ``eps``-sparse (its top weight is at least ``1 - eps``).

    Definition.  With :func:`softmax_weights` ``w(T) = softmax(s / T)`` over the visible keys,

    ``T_eps = sup {T > 0 : max_j w_j(T) >= 1 - eps}``  (``sup`` of the empty set = 0).

    The top weight is nonincreasing in ``T`` (``1 / (m + sum_{g_j > 0} exp(-g_j / T))`` with ``g_j`` the gaps to
    the best score and ``m`` the number of keys tying for it), so every ``T < T_eps`` is ``eps``-sparse and no
    ``T > T_eps`` is.  ``T_eps`` scales with the scores (``T_eps(a s) = a T_eps(s)``, ``a > 0``), and the model
    runs at ``T = 1``: ``T_eps >= 1`` means the row is already ``eps``-sparse.  Edge cases:

    * one visible key: ``inf`` (its weight is 1 at every temperature);
    * no visible key (every score the tropical zero, e.g. ``-inf`` in max-plus): ``nan`` (no weights, no answer);
    * an exact tie of ``m >= 2`` best scores: the top weight never exceeds ``1/m``, so ``T_eps = 0`` unless
      ``1/m >= 1 - eps`` (large ``eps``); then the ordinary formula applies.  Ties are exact equality of the given
      scores (decided exactly for exact input); a near tie with gap ``g`` gives a small ``T_eps`` proportional
      to ``g``;
    * ``T_eps = inf`` also when the top weight stays ``>= 1 - eps`` for all ``T`` (e.g. two keys and
      ``eps >= 1/2``);
    * two visible keys with gap ``g > 0`` and ``eps < 1/2``: ``T_eps = g / ln((1 - eps) / eps)``.

    Masked keys (``-inf`` in max-plus, ``+inf`` in min-plus, where the weights are those of ``-s``) take no part;
    the other infinity raises :class:`~tropix.errors.ConventionError`, NaN :class:`~tropix.errors.NaNError`.

    Accuracy.  Float64 output for any input (``T_eps`` is transcendental in general); it solves
    ``sum_{g_j > 0} exp(-g_j / T) = (1 - m (1 - eps)) / (1 - eps)`` by Newton's method on ``log`` of the left side
    in ``1/T`` (convex, so the iterates converge monotonically; a few dozen steps even for gaps spread over
    hundreds of orders of magnitude).  For the gaps as computed in float64 the result is within ``1e-13``
    relative of the exact root (tested against 50-digit arithmetic and against bisection on the definition).

    Parameters
    ----------
    scores : array (..., n)
        One row per query, one column per key; any array library (the result comes back in it) or nested lists.
    eps : float in (0, 1)
    semiring : MaxPlus (default) or MinPlus

    Examples
    --------
    >>> t = sparsity_temperature([[0.0, -1.0]], 0.01)     # gap 1: T = 1 / ln 99
    >>> bool(abs(t[0] - 1 / np.log(99)) < 1e-13)
    True
    >>> sparsity_temperature([[2.0, -np.inf], [1.0, 1.0], [-np.inf, -np.inf]], 0.01).tolist()
    [inf, 0.0, nan]
    """
    e = _check_open_eps(eps, "sparsity_temperature")
    a, lead, like = _signed_rows(scores, semiring, "sparsity_temperature")
    G, vis, n_top = _gaps(a)
    return _out(_row_temperatures(a, G, vis, n_top, e), lead, like)


def extended_quantile(x, q: float) -> float:
    """``numpy.quantile`` (linear interpolation) on the extended reals, defined as a limit and never NaN.

    The value is the limit of ``numpy.quantile`` when ``±inf`` are replaced by ``±B`` and ``B -> inf``: a
    quantile that interpolates towards ``inf`` is ``inf``, one that lands exactly on a finite value is that
    value.  ``numpy.quantile([1, 2, inf], 0.5)`` itself is NaN (it computes ``2 + 0 * inf``); here it is 2.
    NaN entries are an error (drop them first).

    Examples
    --------
    >>> extended_quantile([1.0, 2.0, np.inf], 0.5), extended_quantile([1.0, 2.0, np.inf], 0.75)
    (2.0, inf)
    """
    q = float(q)
    if math.isnan(q):
        raise NaNError("extended_quantile: q is NaN")
    if not 0 <= q <= 1:  # (q = 1.5 was a raw IndexError, q = -0.1 returned inf)
        raise ToleranceError(f"extended_quantile: q must be in [0, 1], got {q}")
    v = np.sort(np.asarray(x, dtype=np.float64).ravel())
    if v.size == 0:
        raise EmptyInputError("extended_quantile: no values")
    check_no_nan(v, "x")
    if np.all(np.isfinite(v)):
        return float(np.quantile(v, q))
    h = (v.size - 1) * float(q)
    i = min(int(math.floor(h)), v.size - 1)
    f = h - i
    a = float(v[i])
    if f == 0 or a == v[i + 1]:
        return a
    b = float(v[i + 1])
    if math.isinf(a) and math.isinf(b):  # -B + f * 2B: its sign
        return 0.0 if f == 0.5 else math.copysign(math.inf, f - 0.5)
    if math.isinf(a) or math.isinf(b):
        return a if math.isinf(a) else b
    return a + f * (b - a)


def score_tropicality(scores, *, eps: float = 0.01, temperature: float = 1.0, semiring=MaxPlus) -> HeadTropicality:
    """:class:`HeadTropicality` of a score matrix (one row per query, masked keys = the tropical zero).

    What :func:`tropicality` computes from ``q`` and ``k``, for scores already at hand (e.g. a real model's).

    Examples
    --------
    >>> h = score_tropicality([[4.0, 1.0, -np.inf], [0.0, 0.0, 0.0]], eps=0.05)   # 1/(1+e^-3) > 0.95
    >>> h.effective_support.tolist(), h.margin.tolist(), h.sparse_temperature.tolist()[1]
    ([1, 3], [3.0, 0.0], 0.0)
    """
    e = _check_open_eps(eps, "score_tropicality")
    T = _check_temperature(temperature, "score_tropicality")
    a, lead, _ = _signed_rows(scores, semiring, "score_tropicality")
    if len(lead) != 1:
        raise ShapeError(f"score_tropicality: scores must be a matrix (n_q, n_k), got {lead + (a.shape[1],)}")
    return HeadTropicality(*_row_stats(a, e, T), e, T)


def tropicality(q, k, mask=None, bias=None, scale=None, causal=False, *, eps: float = 0.01,
                temperature: float = 1.0) -> HeadTropicality:
    """How close a head (2-D ``q``, ``k``) is to its tropical limit; see :class:`HeadTropicality`.

    The scores are ``scale * q.k + bias`` with the mask and causal conventions of :mod:`tropix.attention`
    (masked keys are not visible); the statistics are those of :func:`score_tropicality` on them.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[10.0, 0.0], [1.0, 1.0]]); k = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> h = tropicality(q, k, scale=1.0, eps=0.01)
    >>> h.effective_support.tolist(), h.margin.tolist(), float(h.sparse_temperature[1])
    ([1, 2], [10.0, 0.0], 0.0)
    """
    P = prepare(q, k, _dummy_values(k), mask, bias, scale, causal, fname="tropicality")
    if P.batch_shape:
        raise ShapeError("tropicality takes one head: q of shape (n_q, d) and k of shape (n_k, d)")
    eps = _check_open_eps(eps, "tropicality")
    T = _check_temperature(temperature, "tropicality")
    n = P.n_q
    mw, ent, mar, st = (np.zeros(n) for _ in range(4))
    sup = np.zeros(n, dtype=np.int64)
    for rows, S in _score_rows(P):
        mw[rows], ent[rows], sup[rows], mar[rows], st[rows] = _row_stats(S, eps, T)
    return HeadTropicality(mw, ent, sup, mar, st, eps, T)


@dataclass(frozen=True)
class KeyGeometry:
    """Argmax geometry of a key set.

    Attributes
    ----------
    vertices : numpy.ndarray
        Indices of the keys that can be the argmax for some query: a key that wins alone at some query, and
        every exact copy of such a key (same key and bias; copies tie wherever they win, so none of them is
        ever the *unique* argmax: :attr:`tropix.tropical.argmax_lp.ArgmaxVertices.duplicate_of` tells them).
    status : numpy.ndarray
        Per key ``"vertex"``, ``"interior"``, ``"boundary"`` or ``"undecided"`` (see
        :class:`tropix.tropical.argmax_lp.ArgmaxVertices`).
    witnesses : dict
        Key index -> a query at which it wins: alone, or, for a key with copies, together with its copies only.
    cells : tuple of frozenset or None
        For each given query, the keys tying for the best score (its cell).
    adjacency : numpy.ndarray or None
        Boolean matrix over ``vertices``: do the cells share a wall (a verified one).
    adjacency_undecided : numpy.ndarray or None
        Boolean matrix over ``vertices``: the pairs whose adjacency neither a verified wall nor a verified
        certificate decided (:class:`tropix.tropical.argmax_lp.Adjacency` ``status == "undecided"``; keys a few
        units in the last place from degenerate); their ``adjacency`` entry is False, meaning "not shown".
    """

    vertices: np.ndarray
    status: np.ndarray
    witnesses: dict
    cells: tuple | None
    adjacency: np.ndarray | None
    adjacency_undecided: np.ndarray | None = None
    __repr__ = compact_repr


def key_geometry(k, bias=None, *, queries=None, adjacency: bool = False, semiring=MaxPlus) -> KeyGeometry:
    """Which keys can ever win the argmax (with witnesses), the cells of ``queries``, and cell adjacency.

    Scores are ``q.k_j + b_j``; a positive scale does not change the geometry (divide ``bias`` by it).

    Examples
    --------
    >>> G = key_geometry([[0, 0], [1, 0], [0, 1], [1, 1], [1, 1]], queries=[[1, 1], [-1, 0]], adjacency=True)
    >>> G.vertices.tolist(), [sorted(c) for c in G.cells]
    ([0, 1, 2, 3, 4], [[3, 4], [0, 2]])
    >>> G.adjacency.astype(int).tolist()[0]
    [0, 1, 1, 0, 0]
    """
    from ..tropical.argmax_lp import are_adjacent, argmax_cell, argmax_vertices

    sr = get_semiring(semiring)
    R = argmax_vertices(k, bias, semiring=sr)
    verts = R.vertices
    wit = {int(j): R.witness(int(j)) for j in verts}
    cells = None
    if queries is not None:
        Q = to_numpy(queries) if is_array(queries) else asarray(queries, name="queries")
        if Q.ndim != 2 or Q.shape[1] != np.shape(to_numpy(k) if is_array(k) else np.asarray(k, dtype=object))[-1]:
            raise ShapeError(f"key_geometry: queries must be (m, d) like the keys' rows, got shape {tuple(Q.shape)} "
                             f"(one query q: queries=[q])")
        cells = tuple(argmax_cell(k, Q[i], bias, semiring=sr) for i in range(len(Q)))
    adj = und = None
    if adjacency:
        nv = len(verts)
        adj = np.zeros((nv, nv), dtype=bool)
        und = np.zeros((nv, nv), dtype=bool)
        first = R.duplicate_of
        for a in range(nv):
            for b in range(a + 1, nv):
                i, j = int(verts[a]), int(verts[b])
                if first[i] == first[j]:
                    continue  # copies of one key share their cell
                A = are_adjacent(k, i, j, bias, semiring=sr)
                adj[a, b] = adj[b, a] = A.adjacent
                und[a, b] = und[b, a] = A.status == "undecided"
    return KeyGeometry(verts, R.status, wit, cells, adj, und)


def score_slice(k, q0, u, w, bias=None, *, semiring=MaxPlus):
    """The tropical polynomial ``(a, b) -> ⊕_j (q0 + a u + b w).k_j + b_j`` (a plane slice of the scores).

    Exact input gives an exact polynomial, hence an exact tropical curve (``.hypersurface()``): the curve
    is where the argmax over keys changes along the plane; its regions are the argmax cells of the slice.

    Examples
    --------
    >>> p = score_slice([[1, 0], [0, 1], [0, 0]], q0=[0, 0], u=[1, 0], w=[0, 1])
    >>> p
    TropicalPolynomial('max(0, y, x)')
    >>> C = p.hypersurface(); C.vertices
    ((0, 0),)
    """
    from ..tropical.polynomial import TropicalPolynomial

    # (asarray also for arrays: an object array's entries are checked; complex arrays were silently made real)
    K = to_numpy(check_array_dtype(asarray(k, name="k"), "k"))
    vecs = [to_numpy(check_array_dtype(asarray(x, name=n), n)) for x, n in ((q0, "q0"), (u, "u"), (w, "w"))]
    if K.ndim != 2 or any(v.shape != (K.shape[1],) for v in vecs):
        raise ShapeError(f"score_slice: k must be (n, d) and q0, u, w vectors of length d; got {K.shape}, "
                         f"{[v.shape for v in vecs]}")
    for x, n in zip((K, *vecs), ("k", "q0", "u", "w")):
        if not all(math.isfinite(v) for v in x.ravel() if isinstance(v, float)):  # (was "coefficients contains NaN")
            raise NaNError(f"score_slice: {n} must be finite, got {summary(x)}")
    b = None
    if bias is not None:
        b = to_numpy(check_array_dtype(asarray(bias, name="bias"), "bias"))
        if b.shape != (K.shape[0],):  # (a length-1 bias was silently broadcast to every key)
            raise ShapeError(f"score_slice: bias must have one entry per key, shape ({K.shape[0]},); got {b.shape}")
    arrays = [K, *vecs] + ([b] if b is not None else [])
    # exact when every input is (integer dtypes of NumPy or torch included: in int64 the products could wrap,
    # in float64 distinct exponents beyond 2^53 merge), else float64
    exact = all(a.dtype == object or a.dtype.kind in "iub" for a in arrays)
    K, q0v, uv, wv = (a.astype(object) if exact else np.asarray(a, dtype=np.float64) for a in arrays[:4])
    E = np.empty((K.shape[0], 2), dtype=object if exact else np.float64)
    E[:, 0] = K @ uv
    E[:, 1] = K @ wv
    c = K @ q0v
    if b is not None:
        c = c + (b.astype(object) if exact else np.asarray(b, dtype=np.float64))
    return TropicalPolynomial.from_arrays(E, c, semiring=semiring, variables=("x", "y"))


def plot_slice(k, q0, u, w, bias=None, *, ax=None, box=None, queries=None, semiring=MaxPlus):
    """Draw the tropical curve of :func:`score_slice` with its argmax regions (and optional query points).

    ``queries`` are ``(a, b)`` plane coordinates to mark.  Returns the matplotlib Axes.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> ax = plot_slice([[1, 0], [0, 1], [-1, -1]], [0, 0], [1, 0], [0, 1], queries=[(1, 0.5)])
    >>> len(ax.lines) >= 3
    True
    """
    from ..tropical.curves import plot_curve

    C = score_slice(k, q0, u, w, bias, semiring=semiring).hypersurface()
    ax = plot_curve(C, ax=ax, box=box, show_regions=True)
    if queries is not None:
        Q = np.asarray(queries, dtype=float).reshape(-1, 2)
        ax.plot(Q[:, 0], Q[:, 1], "k.", markersize=6)
    return ax


def attention_entanglement(q, k, mask=None, bias=None, scale=None, causal=False, *, row_dims=None, col_dims=None):
    """Schmidt spectra and entanglement entropies of the attention matrix across its tensorisation cuts.

    The ``n_q x n_k`` softmax matrix is reshaped to a tensor with modes ``row_dims + col_dims`` (defaults:
    factorisations into factors 2..4 from :func:`tropix.tn.factorize`), and for each cut ``c`` the singular
    values of the unfolding (modes ``< c`` vs ``>= c``) and their entropy (of the normalised squared values)
    are returned.  Low entropy across a cut means the matrix compresses well as an MPS/TT there.

    Returns
    -------
    dict
        ``{"dims": modes, "spectra": [arrays], "entropies": numpy.ndarray}``.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.zeros((4, 2)); k = np.ones((8, 2))
    >>> e = attention_entanglement(q, k)
    >>> bool(np.allclose(e["entropies"], 0.0))   # uniform attention is a product state
    True
    """
    from ..tn import entanglement_entropy, factorize, schmidt_spectrum

    P = prepare(q, k, _dummy_values(k), mask, bias, scale, causal, fname="attention_entanglement")
    if P.batch_shape:
        raise ShapeError("attention_entanglement takes one head (2-D q and k)")
    if P.n_q == 0:  # (was math.log(0): a raw "math domain error")
        raise EmptyInputError(f"attention_entanglement: there are no queries (q has shape {tuple(P.q.shape)})")
    A = np.zeros((P.n_q, P.n_k))
    for rows, S in _score_rows(P, fname="attention_entanglement"):
        m = S.max(axis=1)
        m = np.where(np.isfinite(m), m, 0.0)
        W = np.exp(S - m[:, None])
        Z = W.sum(axis=1)
        A[rows] = W / np.where(Z > 0, Z, 1.0)[:, None]
    rd = _check_dims(row_dims, "row_dims") if row_dims is not None else _dims(P.n_q, factorize)
    cd = _check_dims(col_dims, "col_dims") if col_dims is not None else _dims(P.n_k, factorize)
    if any(int(x) < 1 for x in rd + cd) or int(np.prod(rd)) != P.n_q or int(np.prod(cd)) != P.n_k:
        raise ShapeError(f"row_dims {rd} / col_dims {cd} do not multiply to the matrix shape {(P.n_q, P.n_k)}")
    T = A.reshape(rd + cd)
    modes = rd + cd
    spectra = [np.asarray(to_numpy(schmidt_spectrum(T, c))) for c in range(1, len(modes))]
    ents = np.array([entanglement_entropy(T, c) for c in range(1, len(modes))])
    return {"dims": modes, "spectra": spectra, "entropies": ents}


def _n_keys(k) -> int:
    """Number of keys of ``k`` (array or nested list)."""
    return int(k.shape[-2]) if is_array(k) else len(k)


def _dummy_values(k):
    """A ``(n_k, 1)`` stand-in for the values, in the array library of ``k`` (a NumPy array next to torch ``q``/``k``
    raised BackendMismatchError)."""
    if is_array(k):  # (for 0-d and 1-d keys too: prepare() then says k has the wrong shape, not an IndexError)
        return k[..., :1] if getattr(k, "ndim", 0) >= 1 else k
    try:
        return np.zeros((_n_keys(k), 1))
    except TypeError:  # (None, a bool: prepare() says k is no array, not "object of type 'NoneType' has no len()")
        return np.zeros((1, 1))


def _check_dims(dims, name):
    """``dims`` as a tuple of Python ints (non-integer modes such as ``(2.5, 3.2)``, whose product matched, and a bare
    int were raw TypeErrors from the reshape)."""
    from ..tropical._args import check_int

    if np.ndim(dims) != 1:
        raise ShapeError(f"attention_entanglement: {name} must be a sequence of mode sizes, got {summary(dims)}")
    return tuple(check_int(x, name) for x in dims)


def _dims(n, factorize):
    if n == 1:
        return (1,)
    nf = max(1, int(round(math.log(n, 3))))
    return tuple(int(x) for x in factorize(n, nf))
