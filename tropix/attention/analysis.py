"""Analysis of a head's queries and keys: how tropical is it, and what does the argmax geometry look like.

* :func:`tropicality`: per query, the largest attention weight, the entropy, the effective support at mass
  ``1 - eps``, the score margin (best minus second best), and the temperature below which the row becomes
  ``eps``-sparse (its largest weight reaches ``1 - eps``).
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
from typing import Any

import numpy as np

from .._array import asarray, is_array, to_numpy
from ..errors import ShapeError, ToleranceError
from ..tropical.semiring import MaxPlus, get_semiring
from ._inputs import check_eps, extra_numpy, prepare

__all__ = [
    "HeadTropicality",
    "tropicality",
    "sparsity_temperature",
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

    Attributes
    ----------
    max_weight, entropy, effective_support, margin, sparse_temperature : numpy.ndarray
        Largest softmax weight; entropy in nats; the least number of keys holding mass ``>= 1 - eps``; best
        minus second-best score (``inf`` with one visible key, 0 with a tie); the largest temperature factor
        ``t`` such that ``softmax(s / t)`` has largest weight ``>= 1 - eps`` (0 when the best score is tied,
        ``inf`` with one visible key).
    eps, temperature : float
    """

    max_weight: np.ndarray
    entropy: np.ndarray
    effective_support: np.ndarray
    margin: np.ndarray
    sparse_temperature: np.ndarray
    eps: float
    temperature: float

    def __post_init__(self):
        for f in ("max_weight", "entropy", "effective_support", "margin", "sparse_temperature"):
            object.__setattr__(self, f, _frozen(getattr(self, f)))

    def summary(self) -> dict:
        """Medians and quantiles, for a one-line report of a head."""
        fm = self.margin[np.isfinite(self.margin)]
        fm = fm if fm.size else np.array([np.inf])
        return {
            "median_max_weight": float(np.median(self.max_weight)),
            "median_entropy": float(np.median(self.entropy)),
            "median_effective_support": float(np.median(self.effective_support)),
            "median_margin": float(np.median(self.margin)),
            "margin_quantiles": tuple(float(x) for x in np.quantile(fm, [0.1, 0.5, 0.9])),
            "median_sparse_temperature": float(np.median(self.sparse_temperature)),
        }


def _score_rows(P, h=()):
    """Yield (row slice, dense scores) of one head in blocks of queries (NumPy float64)."""
    q = np.asarray(to_numpy(P.q), dtype=np.float64)[h]
    k = np.asarray(to_numpy(P.k), dtype=np.float64)[h]
    f, _ = extra_numpy(P, h)
    step = max(1, 2**22 // max(P.n_k, 1))
    for s in range(0, P.n_q, step):
        rows = np.arange(s, min(P.n_q, s + step))
        S = (q[rows] * P.scale) @ k.T
        if f is not None:
            S = S + f(rows, np.arange(P.n_k))
        yield rows, S


def sparsity_temperature(scores, eps: float) -> np.ndarray:
    """Per row: the largest ``t`` with ``max softmax(scores / t) >= 1 - eps`` (monotone in ``t``; bisection).

    Examples
    --------
    >>> t = sparsity_temperature(np.array([[0.0, -1.0]]), 0.01)
    >>> p = 1 / (1 + np.exp(-1 / t[0])); bool(abs(p - 0.99) < 1e-9)
    True
    """
    S = np.asarray(scores, dtype=np.float64)
    out = np.empty(S.shape[0])
    for i, row in enumerate(S):
        row = row[np.isfinite(row)]
        if row.size <= 1:
            out[i] = np.inf
            continue
        gaps = np.sort(row.max() - row)[1:]  # nonnegative gaps to the best (the best itself removed)
        if gaps[0] == 0:
            out[i] = 0.0
            continue
        target = eps / (1 - eps)  # p_max >= 1-eps  <=>  sum_{j != best} exp(-gap_j / t) <= eps/(1-eps)

        def excess(t):
            return np.exp(-gaps / t).sum() - target

        lo, hi = 0.0, gaps[0] / max(math.log(1 / target), 1e-300) * 2 + 1e-300
        while excess(hi) <= 0:
            hi *= 2
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if mid == lo or mid == hi:
                break
            if excess(mid) <= 0:
                lo = mid
            else:
                hi = mid
        out[i] = lo
    return out


def tropicality(q, k, mask=None, bias=None, scale=None, causal=False, *, eps: float = 0.01,
                temperature: float = 1.0) -> HeadTropicality:
    """How close a head (2-D ``q``, ``k``) is to its tropical limit; see :class:`HeadTropicality`.

    Examples
    --------
    >>> import numpy as np
    >>> q = np.array([[10.0, 0.0], [1.0, 1.0]]); k = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> h = tropicality(q, k, scale=1.0, eps=0.01)
    >>> h.effective_support.tolist(), h.margin.tolist(), float(h.sparse_temperature[1])
    ([1, 2], [10.0, 0.0], 0.0)
    """
    P = prepare(q, k, np.zeros((_n_keys(k), 1)), mask, bias, scale, causal, fname="tropicality")
    if P.batch_shape:
        raise ShapeError("tropicality takes one head: q of shape (n_q, d) and k of shape (n_k, d)")
    eps = check_eps(eps, "tropicality")
    if not 0 < eps < 1:
        raise ToleranceError(f"tropicality: eps must be in (0, 1), got {eps}")
    T = float(temperature)
    if not T > 0:
        raise ToleranceError(f"tropicality: temperature must be > 0, got {temperature}")
    n = P.n_q
    mw, ent, sup, mar, st = (np.zeros(n) for _ in range(5))
    sup = np.zeros(n, dtype=np.int64)
    for rows, S in _score_rows(P):
        fin = np.isfinite(S)
        m = np.where(fin, S, -np.inf).max(axis=1)
        ok = np.isfinite(m)
        Z = S / T - np.where(ok, m / T, 0.0)[:, None]
        W = np.where(fin, np.exp(Z), 0.0)
        tot = W.sum(axis=1)
        p = W / np.where(tot > 0, tot, 1.0)[:, None]
        mw[rows] = p.max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent[rows] = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
        ps = -np.sort(-p, axis=1)
        cs = np.cumsum(ps, axis=1)
        sup[rows] = np.minimum((cs < (1 - eps) * (1 - 1e-15)).sum(axis=1) + 1, fin.sum(axis=1))
        top2 = -np.sort(-np.where(fin, S, -np.inf), axis=1)[:, :2]
        mar[rows] = np.where(fin.sum(axis=1) >= 2, top2[:, 0] - top2[:, -1], np.inf)
        st[rows] = sparsity_temperature(np.where(fin, S, -np.inf), eps)
    return HeadTropicality(mw, ent, sup, mar, st, eps, T)


@dataclass(frozen=True)
class KeyGeometry:
    """Argmax geometry of a key set.

    Attributes
    ----------
    vertices : numpy.ndarray
        Indices of the keys that can be the unique argmax for some query.
    status : numpy.ndarray
        Per key ``"vertex"``, ``"interior"``, ``"boundary"`` or ``"undecided"`` (see
        :class:`tropix.tropical.argmax_lp.ArgmaxVertices`).
    witnesses : dict
        Key index -> a query at which it is the unique winner.
    cells : tuple of frozenset or None
        For each given query, the keys tying for the best score (its cell).
    adjacency : numpy.ndarray or None
        Boolean matrix over ``vertices``: do the cells share a wall.
    """

    vertices: np.ndarray
    status: np.ndarray
    witnesses: dict
    cells: tuple | None
    adjacency: np.ndarray | None


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
        cells = tuple(argmax_cell(k, Q[i], bias, semiring=sr) for i in range(len(Q)))
    adj = None
    if adjacency:
        nv = len(verts)
        adj = np.zeros((nv, nv), dtype=bool)
        first = R.duplicate_of
        for a in range(nv):
            for b in range(a + 1, nv):
                i, j = int(verts[a]), int(verts[b])
                if first[i] == first[j]:
                    continue  # copies of one key share their cell
                adj[a, b] = adj[b, a] = are_adjacent(k, i, j, bias, semiring=sr).adjacent
    return KeyGeometry(verts, R.status, wit, cells, adj)


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

    K = asarray(k, name="k") if not is_array(k) else to_numpy(k)
    vecs = [asarray(x, name=n) if not is_array(x) else to_numpy(x) for x, n in ((q0, "q0"), (u, "u"), (w, "w"))]
    if K.ndim != 2 or any(v.shape != (K.shape[1],) for v in vecs):
        raise ShapeError(f"score_slice: k must be (n, d) and q0, u, w vectors of length d; got {K.shape}, "
                         f"{[v.shape for v in vecs]}")
    q0v, uv, wv = vecs
    E = np.empty((K.shape[0], 2), dtype=object if K.dtype == object or uv.dtype == object else np.float64)
    E[:, 0] = K @ uv
    E[:, 1] = K @ wv
    c = K @ q0v
    if bias is not None:
        b = asarray(bias, name="bias") if not is_array(bias) else to_numpy(bias)
        c = c + b
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

    P = prepare(q, k, np.zeros((_n_keys(k), 1)), mask, bias, scale, causal, fname="attention_entanglement")
    if P.batch_shape:
        raise ShapeError("attention_entanglement takes one head (2-D q and k)")
    A = np.zeros((P.n_q, P.n_k))
    for rows, S in _score_rows(P):
        m = S.max(axis=1)
        m = np.where(np.isfinite(m), m, 0.0)
        W = np.exp(S - m[:, None])
        Z = W.sum(axis=1)
        A[rows] = W / np.where(Z > 0, Z, 1.0)[:, None]
    rd = tuple(row_dims) if row_dims is not None else _dims(P.n_q, factorize)
    cd = tuple(col_dims) if col_dims is not None else _dims(P.n_k, factorize)
    if int(np.prod(rd)) != P.n_q or int(np.prod(cd)) != P.n_k:
        raise ShapeError(f"row_dims {rd} / col_dims {cd} do not multiply to the matrix shape {(P.n_q, P.n_k)}")
    T = A.reshape(rd + cd)
    modes = rd + cd
    spectra = [np.asarray(to_numpy(schmidt_spectrum(T, c))) for c in range(1, len(modes))]
    ents = np.array([entanglement_entropy(T, c) for c in range(1, len(modes))])
    return {"dims": modes, "spectra": spectra, "entropies": ents}


def _n_keys(k) -> int:
    """Number of keys of ``k`` (array or nested list)."""
    return int(k.shape[-2]) if is_array(k) else len(k)


def _dims(n, factorize):
    if n == 1:
        return (1,)
    nf = max(1, int(round(math.log(n, 3))))
    return tuple(int(x) for x in factorize(n, nf))
