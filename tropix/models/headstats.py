"""How tropical is each attention head of a real model: margins, supports, sparsity temperatures, cells.

All statistics are computed from the *true* scaled scores ``s = q·k/√d`` of the extracted Q and K (no
projection), pooled over the queries of every text, per layer and head.  With the true scores the
argmax cell of each query is exact by construction, so the meaningful questions are quantitative:

* **margin** ``s_(1) − s_(2)`` of each query (gap between its best and second-best key);
* **effective support** at mass ``1 − ε``: the fewest keys carrying that much probability;
* **sparsity temperature** ``T_ε``: the largest temperature ``T`` at which softmax(s/T) puts at least
  ``1 − ε`` on a single key; the model runs at ``T = 1``, so ``T_ε ≥ 1`` means the query is already
  ε-tropical.  (Top-1 mass is decreasing in ``T``, so ``T_ε`` is found by bisection.)  A head's value is
  the 10th percentile over its queries: below it, 90% of the queries are ε-tropical.  Tied maxima give
  ``T_ε = 0``;
* **cells**: which key is each query's argmax (the query lies in that key's normal cone), how many
  distinct keys win, how often a special token ([CLS], [SEP], first token) wins;
* **certified sparse support**: keeping the effective support S and renormalising drops mass δ,
  and ‖o − o_S‖ ≤ 2δ·max‖v‖ rigorously; the true error is reported beside the bound;
* **PCA-8 agreement**: the fraction of argmaxes that survive projecting Q and K to 8 principal
  dimensions (the earlier informal experiment), to show how much of its "misalignment" the projection caused.

Examples
--------
>>> import numpy as np
>>> s = np.array([[2.0, 0.0, -np.inf]])                  # one query, two allowed keys, gap 2
>>> round(float(sparsity_temperature(s, 0.01)[0]), 4)    # T = 2 / ln 99
0.4352
>>> effective_support(np.array([[0.7, 0.2, 0.1]]), 0.15).tolist()
[2]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ToleranceError

__all__ = ["HeadStats", "head_stats", "all_head_stats", "sparsity_temperature", "effective_support", "top_gaps"]

_SPECIAL = {"[CLS]", "[SEP]", "<|endoftext|>", "<s>", "</s>"}


def top_gaps(scores: np.ndarray) -> np.ndarray:
    """``s_(1) − s_(2)`` per row (``inf`` when a row has a single allowed key; ``-inf`` = masked).

    Examples
    --------
    >>> top_gaps(np.array([[1.0, 3.0, 2.5], [0.0, -np.inf, -np.inf]])).tolist()
    [0.5, inf]
    """
    s = np.sort(scores, axis=-1)
    if s.shape[-1] < 2:
        return np.full(s.shape[:-1], np.inf)
    with np.errstate(invalid="ignore"):
        g = s[..., -1] - s[..., -2]
    return np.where(np.isneginf(s[..., -2]), np.inf, g)


def effective_support(probs: np.ndarray, eps: float) -> np.ndarray:
    """Fewest keys whose probabilities add up to at least ``1 − eps``, per row.

    Examples
    --------
    >>> effective_support(np.array([[0.5, 0.5], [1.0, 0.0]]), 0.01).tolist()
    [2, 1]
    """
    if not 0 <= eps < 1:
        raise ToleranceError(f"eps must be in [0, 1), got {eps}")
    p = -np.sort(-probs, axis=-1)
    c = np.cumsum(p, axis=-1)
    # rounding: accept a cumulative sum within 1e-12 of the target
    return 1 + np.sum(c < (1.0 - eps) * c[..., -1:] - 1e-12, axis=-1)


def sparsity_temperature(scores: np.ndarray, eps: float, t_max: float = 1e4, iters: int = 34) -> np.ndarray:
    """Largest ``T`` with top-1 mass of softmax(scores/T) ≥ 1 − eps, per row (``t_max`` if never violated).

    Examples
    --------
    >>> sparsity_temperature(np.array([[1.0, 1.0]]), 0.1).tolist()   # a tie is never 0.9-sparse
    [0.0]
    """
    if not 0 < eps < 1:
        raise ToleranceError(f"eps must be in (0, 1), got {eps}")
    s = np.asarray(scores, dtype=np.float64)
    top = s.max(axis=-1, keepdims=True)
    gaps = top - s  # >= 0, inf for masked keys
    target = eps / (1.0 - eps)

    def ok(T):  # sum over non-top keys of exp(-gap/T) <= target  (the top key itself contributes exp(0) = 1)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            e = np.exp(-gaps / T[..., None])
        return e.sum(axis=-1) - 1.0 <= target

    n_top = np.sum(gaps == 0, axis=-1)
    # a temperature that is certainly small enough: (n-1)·exp(-g_min/T) <= target
    pos = np.where(gaps > 0, gaps, np.inf)
    g_min = pos.min(axis=-1)
    n_other = np.maximum(np.sum(np.isfinite(gaps), axis=-1) - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = g_min / np.maximum(np.log(n_other / target), 1e-300)
    lo = np.where(np.isfinite(lo) & (lo > 0), np.minimum(lo, t_max), t_max)
    hi = np.full(s.shape[:-1], float(t_max))
    good_hi = ok(hi)
    for _ in range(iters):
        mid = np.exp(0.5 * (np.log(lo) + np.log(hi)))  # geometric mean without underflow
        m = ok(mid)
        lo = np.where(m, mid, lo)
        hi = np.where(m, hi, mid)
    out = np.where(good_hi, float(t_max), lo)
    return np.where(n_top > 1, 0.0, out)


@dataclass(frozen=True)
class HeadStats:
    """Pooled statistics of one head (see the module docstring for the definitions)."""

    layer: int
    head: int
    n_queries: int
    mean_max_weight: float
    mean_entropy: float
    margin_median: float
    margin_p10: float
    tie_fraction: float
    support_mean: float
    support_fraction: float
    temperature_p10: float
    temperature_median: float
    tropical_at_T1: float
    distinct_winners_fraction: float
    special_token_wins: float
    largest_cell_share: float
    dropped_mass_max: float
    sparse_bound_max: float
    sparse_error_max: float
    pca8_agreement: float

    def as_dict(self) -> dict:
        return asdict(self)


def _pca_agreement(q, k, allowed, dim=8):
    x = np.concatenate([q, k])
    mu = x.mean(0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    P = vt[:dim].T
    sp = np.where(allowed, ((q - mu) @ P + mu @ P) @ ((k - mu) @ P + mu @ P).T, -np.inf)
    st = np.where(allowed, q @ k.T, -np.inf)
    return np.argmax(sp, -1) == np.argmax(st, -1)


def head_stats(extraction, layer: int, head: int, eps: float = 0.01) -> HeadStats:
    """Statistics of one head pooled over every text of an :class:`~tropix.models.extraction.Extraction`.

    Examples
    --------
    >>> from tropix.models import load_model, extract
    >>> ex = extract(load_model(), ["Attention heads of a sentence embedding model."])
    >>> st = head_stats(ex, 0, 0)
    >>> 0 < st.mean_max_weight <= 1 and st.support_mean >= 1
    True
    """
    if not 0 < eps < 1:
        raise ToleranceError(f"eps must be in (0, 1), got {eps}")
    mw, ent, gaps, sup, supf, temps, winners, special, cell, drop, bnd, err, pca = ([] for _ in range(13))
    for seq in extraction.sequences:
        s = seq.scores(layer, head, extraction.scale)
        rows = seq.allowed.any(axis=1)
        s = s[rows]
        m = s.max(axis=-1, keepdims=True)
        e = np.exp(s - m)
        p = e / e.sum(-1, keepdims=True)
        mw.append(p.max(-1))
        with np.errstate(divide="ignore", invalid="ignore"):
            ent.append(-np.sum(np.where(p > 0, p * np.log(p), 0.0), -1))
        gaps.append(top_gaps(s))
        k_eff = effective_support(p, eps)
        sup.append(k_eff)
        supf.append(k_eff / seq.allowed[rows].sum(-1))
        temps.append(sparsity_temperature(s, eps))
        win = np.argmax(s, -1)
        winners.append(len(np.unique(win)) / seq.n)
        toks = seq.tokens
        is_special = np.array([(j == 0) or (toks and toks[j] in _SPECIAL) for j in win], dtype=bool)
        special.append(is_special)
        cell.append(np.bincount(win).max() / len(win))
        # certified sparse support: keep the k_eff largest probabilities of each query, renormalise
        order = np.argsort(-p, axis=-1)
        keep = np.zeros_like(p, dtype=bool)
        np.put_along_axis(keep, order, np.arange(p.shape[-1])[None, :] < k_eff[:, None], axis=-1)
        ps = np.where(keep, p, 0.0)
        delta = 1.0 - ps.sum(-1)
        v = seq.v[layer, head].astype(np.float64)
        o = p @ v
        o_s = (ps / ps.sum(-1, keepdims=True)) @ v
        vmax = np.linalg.norm(v, axis=-1).max()
        drop.append(delta.max())
        bnd.append(2 * delta.max() * vmax / max(vmax, 1e-300))
        err.append(np.linalg.norm(o - o_s, axis=-1).max() / max(vmax, 1e-300))
        q64 = seq.q[layer, head].astype(np.float64)[rows]
        k64 = seq.k[layer, head].astype(np.float64)
        if k64.shape[0] > 1:
            pca.append(_pca_agreement(q64, k64, seq.allowed[rows]))
    g = np.concatenate(gaps)
    fin = g[np.isfinite(g)]
    t = np.concatenate(temps)
    cat = np.concatenate
    return HeadStats(
        layer, head, int(t.size), float(cat(mw).mean()), float(cat(ent).mean()),
        float(np.median(fin)) if fin.size else float("inf"), float(np.quantile(fin, 0.1)) if fin.size else float("inf"),
        float(np.mean(g <= 1e-6)), float(cat(sup).mean()), float(cat(supf).mean()),
        float(np.quantile(t, 0.1)), float(np.median(t)), float(np.mean(t >= 1.0)),
        float(np.mean(winners)), float(cat(special).mean()), float(np.mean(cell)),
        float(max(drop)), float(max(bnd)), float(max(err)),
        float(cat(pca).mean()) if pca else 1.0,
    )


def all_head_stats(extraction, eps: float = 0.01, progress=None) -> list[HeadStats]:
    """:func:`head_stats` of every layer and head, layer by layer (``progress(i)`` after each head)."""
    out = []
    for layer in range(extraction.n_layers):
        for head in range(extraction.n_heads):
            out.append(head_stats(extraction, layer, head, eps))
            if progress is not None:
                progress(len(out))
    return out
