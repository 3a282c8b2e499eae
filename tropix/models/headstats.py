"""How tropical is each attention head of a real model: margins, supports, sparsity temperatures, cells.

All statistics are computed from the *true* scaled scores ``s = q·k/√d`` of the extracted Q and K (no
projection), pooled over the queries of every text, per layer and head (queries that see no key, if any,
are left out).  With the true scores the argmax cell of each query is exact by construction, so the
meaningful questions are quantitative.  The per-query numbers are those of
:func:`tropix.attention.analysis.score_tropicality` (one definition each, edge cases included, shared with
the analysis API):

* **margin** ``s_(1) − s_(2)`` of each query (:func:`~tropix.attention.analysis.score_margin`; ``inf`` for a
  query that sees one key, 0 for an exact tie);
* **effective support** at mass ``1 − ε`` (:func:`~tropix.attention.analysis.effective_support`): the fewest
  keys carrying that much of the softmax weight at the model's temperature ``T = 1``;
* **sparsity temperature** ``T_ε`` (:func:`~tropix.attention.analysis.sparsity_temperature`): the supremum of
  the temperatures ``T`` at which softmax(s/T) puts at least ``1 − ε`` on a single key (``inf`` for a query
  that sees one key; 0 for an exact tie of the best scores when ``ε < 1/2``).  The model runs at ``T = 1``,
  so ``T_ε ≥ 1`` means the query is already ε-tropical.  A head's value is the 10th percentile over its
  queries (:func:`~tropix.attention.analysis.extended_quantile`, ``inf`` above every number): below it, 90%
  of the queries are ε-tropical;
* **cells**: which key is each query's argmax (the query lies in that key's normal cone), how many
  distinct keys win, how often a special token ([CLS], [SEP], first token) wins;
* **certified sparse support**: keeping the effective support S and renormalising drops mass δ,
  and ‖o − o_S‖ ≤ 2δ·max‖v‖ rigorously; the true error is reported beside the bound;
* **PCA-8 agreement**: the fraction of argmaxes that survive projecting Q and K to 8 principal
  dimensions (the earlier informal experiment), to show how much of its "misalignment" the projection caused:
  the scores ``(q P)·(k P)`` with ``P`` the top 8 principal directions of the pooled, centred Q and K, an
  orthogonal projection through the origin (the part of the mean outside those directions is dropped too).

Examples
--------
>>> import numpy as np
>>> from tropix.attention.analysis import sparsity_temperature
>>> s = np.array([[2.0, 0.0, -np.inf]])                  # one query, two allowed keys, gap 2
>>> round(float(sparsity_temperature(s, 0.01)[0]), 4)    # T = 2 / ln 99
0.4352
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..attention.analysis import extended_quantile, score_tropicality, softmax_weights
from ..errors import ArgumentTypeError, ShapeError, ToleranceError
from ..tropical._args import check_int, check_real

__all__ = ["HeadStats", "head_stats", "all_head_stats"]

_SPECIAL = {"[CLS]", "[SEP]", "<|endoftext|>", "<s>", "</s>"}


@dataclass(frozen=True)
class HeadStats:
    """Pooled statistics of one head (see the module docstring for the definitions).

    ``mean_max_weight``, ``mean_entropy``, ``support_mean``: means over the queries of the per-query
    values; ``support_fraction``: mean of effective support / number of keys the query sees;
    ``margin_median``, ``margin_p10``: over the finite margins; ``tie_fraction``: share of queries whose best
    score is tied exactly (margin 0); ``temperature_p10``, ``temperature_median``: quantiles of ``T_ε``;
    ``tropical_at_T1``: share of queries with ``T_ε ≥ 1`` (ε-sparse at the model's temperature).
    """

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
    """Per query: is the argmax of the scores projected onto the top ``dim`` principal directions of the
    pooled, centred ``q`` and ``k`` (``(q - mu) P + mu P = q P``: through the origin) the true argmax."""
    x = np.concatenate([q, k])
    mu = x.mean(0)
    _, _, vt = np.linalg.svd(x - mu, full_matrices=False)
    P = vt[:dim].T
    sp = np.where(allowed, ((q - mu) @ P + mu @ P) @ ((k - mu) @ P + mu @ P).T, -np.inf)
    st = np.where(allowed, q @ k.T, -np.inf)
    return np.argmax(sp, -1) == np.argmax(st, -1)


def _sparse_difference(p, keep, v):
    """``(δ, o − o_S, v)`` per query: the dropped mass ``δ`` of the weights ``p`` outside ``keep`` and the change
    of the output ``o = p·v`` when only the kept weights are used, renormalised (``o_S``), as
    ``o − o_S = p_drop·v − δ/(1 − δ)·p_keep·v`` (``p`` normalised to sum 1 first).

    Both are exactly 0 when nothing is dropped.  (``δ = 1 − Σ p_keep`` and ``p·v − p_keep·v/Σ p_keep`` made
    δ = -2.2e-16 and a "certified" bound of -4.4e-16 below a measured error of 3.4e-17.)
    """
    v = np.asarray(v, dtype=np.float64)
    tot = p.sum(-1, keepdims=True)
    pk, pd = np.where(keep, p, 0.0) / tot, np.where(keep, 0.0, p) / tot
    delta = pd.sum(-1)
    return delta, pd @ v - (delta / (1.0 - delta))[:, None] * (pk @ v), v


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
    if not 0 < check_real(eps, "eps") < 1:  # (a string or None was a raw TypeError from the comparison)
        raise ToleranceError(f"eps must be in (0, 1), got {eps}")
    from .extraction import Extraction

    if not isinstance(extraction, Extraction):  # (None was a raw AttributeError on .n_layers)
        raise ArgumentTypeError(f"head_stats takes an Extraction (extract()), got {type(extraction).__name__}")
    for name, x, n in (("layer", layer, extraction.n_layers), ("head", head, extraction.n_heads)):
        # (a negative index would silently give another layer's statistics labelled with it)
        check_int(x, name)
        if not 0 <= x < n:
            raise ShapeError(f"{name} {x} out of range: the extraction has {extraction.n_layers} layers and "
                             f"{extraction.n_heads} heads")
    mw, ent, gaps, sup, supf, temps, winners, special, cell, drop, bnd, err, pca = ([] for _ in range(13))
    for seq in extraction.sequences:
        s = seq.scores(layer, head, extraction.scale)
        rows = seq.allowed.any(axis=1)
        s = s[rows]
        h = score_tropicality(s, eps=eps)
        p = softmax_weights(s)
        mw.append(h.max_weight)
        ent.append(h.entropy)
        gaps.append(h.margin)
        k_eff = h.effective_support
        sup.append(k_eff)
        supf.append(k_eff / seq.allowed[rows].sum(-1))
        temps.append(h.sparse_temperature)
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
        delta, diff, v = _sparse_difference(p, keep, seq.v[layer, head])
        vmax = np.linalg.norm(v, axis=-1).max()
        drop.append(delta.max())
        # (1 + (n + dh + 8)·2^-52: the rounding of the measured error, so that it never exceeds its bound)
        bnd.append(2 * delta.max() * vmax / max(vmax, 1e-300) * (1 + (p.shape[-1] + v.shape[-1] + 8) * 2.0**-52))
        err.append(np.linalg.norm(diff, axis=-1).max() / max(vmax, 1e-300))
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
        float(np.mean(g == 0)), float(cat(sup).mean()), float(cat(supf).mean()),
        extended_quantile(t, 0.1), extended_quantile(t, 0.5), float(np.mean(t >= 1.0)),
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
