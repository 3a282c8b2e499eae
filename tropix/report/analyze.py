"""``tropix analyze``: the tropical analysis of every attention head of a model, as HTML + PNG + JSON.

For every layer and head, on the given texts: tropicality (mean top weight, entropy), score margins,
effective support at mass ``1 − ε``, the temperature at which the head becomes ε-tropical, cell
occupancy (distinct argmax keys, attention-sink share), the keys that can ever win
(:func:`tropix.models.winners.can_win_fraction`: certified LPs of :mod:`tropix.tropical.argmax_lp` over the
keys of the longest text), certified region-sparse support with its bound next to the true error against
dense attention, and a 2-D slice of the head's tropical hypersurface through its real queries.

Examples
--------
>>> import tempfile
>>> from tropix.models import load_model
>>> res = analyze(load_model(), ["Tropical attention in one short sentence."], tempfile.mkdtemp(), heads=[(0, 0)])
>>> res.paths['html'].name, res.paths['json'].name, len(res.stats)
('report.html', 'report.json', 1)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._repr import compact_repr
from ..errors import EmptyInputError, ShapeError, ToleranceError
from ..models.extraction import extract
from ..models.headstats import head_stats
from ..models.slices import plane_slice, query_plane
from ..models.winners import can_win_fraction
from ..tropical._args import check_real
from .document import Report, Section, write_json
from .plots import heatmap, layer_profile, slice_grid

__all__ = ["AnalysisResult", "analyze", "layer_table"]

_WINDOW = 2.5


@dataclass(frozen=True)
class AnalysisResult:
    """Per-head rows (dicts of numbers), the per-layer summary rows and the files written."""

    stats: tuple
    layers: tuple
    paths: dict = field(default_factory=dict)
    seconds: float = 0.0
    __repr__ = compact_repr


def _visible_keys(n_q: int, n_k: int, causal: bool) -> np.ndarray:
    """The number of keys each of ``n_q`` queries sees (self-attention: query ``i`` at position ``i``)."""
    return np.minimum(np.arange(1, n_q + 1), n_k) if causal else np.full(n_q, n_k)


def _certified_sparse(seq, layer, head, scale, eps, causal):
    """Region-sparse attention of :mod:`tropix.attention` on one head: mean support, max bound, max true error
    (all relative to max‖v‖).  Falls back to the exact dropped-mass bound when that module is absent."""
    q = seq.q[layer, head].astype(np.float64)
    k = seq.k[layer, head].astype(np.float64)
    v = seq.v[layer, head].astype(np.float64)
    vmax = float(np.linalg.norm(v, axis=-1).max()) or 1.0
    try:
        from ..attention.dense import dense
        from ..attention.region_sparse import region_sparse
    except ImportError:  # pragma: no cover - attention layer not installed
        return None
    res = region_sparse(q, k, v, eps=eps, scale=scale, causal=causal)
    ref = dense(q, k, v, scale=scale, causal=causal)
    err = np.linalg.norm(np.asarray(res.output) - np.asarray(ref), axis=-1) / vmax
    return {
        # per query over the keys it sees, as support_fraction (causal: query i sees i + 1 keys; over all keys
        # the fraction of a GPT-2 head came out about half of what it is)
        "rs_support_fraction": float(np.mean(np.asarray(res.support) / _visible_keys(q.shape[0], k.shape[0], causal))),
        "rs_bound_max": float(np.max(res.bound) / vmax),
        "rs_error_max": float(err.max()),
    }


def layer_table(rows) -> list[dict]:
    """Per-layer medians over heads of the headline numbers (the terminal table)."""
    out = []
    for layer in sorted({r["layer"] for r in rows}):
        rs = [r for r in rows if r["layer"] == layer]

        def med(key):
            vals = [r[key] for r in rs if key in r and r[key] is not None]
            return float(np.median(vals)) if vals else float("nan")

        out.append({
            "layer": layer, "heads": len(rs), "max_weight": med("mean_max_weight"),
            "support_frac": med("support_fraction"), "margin": med("margin_median"),
            "T_eps_p10": med("temperature_p10"), "tropical@T1": med("tropical_at_T1"),
            "can_win": med("can_win_fraction"), "sink_share": med("special_token_wins"),
            "pca8_agree": med("pca8_agreement"),
        })
    return out


def _check_heads(heads, model) -> list:
    """``heads`` as a list of ``(layer, head)`` pairs of ints in range, checked before anything is extracted or
    written (``heads=[0]`` was a raw TypeError, an index out of range an error after the output directory was
    made)."""
    out = []
    for x in heads:
        if not (isinstance(x, (tuple, list)) and len(x) == 2):
            raise ShapeError(f"heads must be (layer, head) pairs, got {x!r}")
        model._check_layer_head(*x)
        out.append((int(x[0]), int(x[1])))
    return out


def analyze(model, texts, out_dir, eps: float = 0.01, max_length: int | None = None, heads=None,
            progress=None, plots: bool = True) -> AnalysisResult:
    """Analyse every (or the listed) head(s) of ``model`` on ``texts``; write report.html/.json to ``out_dir``.

    Parameters
    ----------
    model : TransformerModel
    texts : list of str
    out_dir : path
        Created if missing; receives ``report.html`` (self-contained), ``report.json`` and PNG figures.
    eps : float in (0, 1)
        Mass tolerance of the effective support, the sparsity temperature and region-sparse attention.
    heads : list of (layer, head), optional
        Restrict to these heads (default: all).
    progress : callable, optional
        ``progress(stage, total)`` returns a callable ``tick(n_done)`` (the CLI passes progress bars).
    """
    if not 0 < check_real(eps, "eps") < 1:  # (a string or None was a raw TypeError from the comparison)
        raise ToleranceError(f"eps must be in (0, 1), got {eps}")
    texts = list(texts)
    if not texts:
        raise EmptyInputError("no texts to analyse")
    cfg = model.config
    all_heads = _check_heads(heads, model) if heads else [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def bar(stage, total):
        return progress(stage, total) if progress is not None else (lambda n: None)

    ex = extract(model, texts, max_length=max_length, progress=bar("extracting Q/K/V", len(texts)))
    causal = cfg.arch == "gpt2"
    first = max(ex.sequences, key=lambda s: s.n)
    rows, panels = [], {}
    tick = bar("analysing heads", len(all_heads))
    for i, (layer, head) in enumerate(all_heads):
        row = head_stats(ex, layer, head, eps).as_dict()
        q1 = first.q[layer, head][first.allowed.any(1)]
        row["can_win_fraction"] = can_win_fraction(np.asarray(first.k[layer, head], dtype=np.float64))
        rs = _certified_sparse(first, layer, head, ex.scale, eps, causal)
        if rs:
            row.update(rs)
        c, u, w, xy = query_plane(q1)
        cells = plane_slice(first.k[layer, head], c, u, w, window=_WINDOW, scale=ex.scale)
        row["slice_cells"] = len(cells)
        inside = np.all(np.abs(xy) <= _WINDOW, axis=1)
        row["slice_queries_inside"] = float(inside.mean())
        panels[(layer, head)] = (cells, xy)
        rows.append(row)
        tick(i + 1)

    paths: dict = {}
    figures = []
    if plots:
        L, H = cfg.n_layers, cfg.n_heads

        def grid(key):
            g = np.full((L, H), np.nan)
            for r in rows:
                g[r["layer"], r["head"]] = r[key]
            return g

        specs = [
            ("mean_max_weight", "mean top attention weight", False, ".2f"),
            ("support_fraction", f"effective support at mass 1-{eps:g} (fraction of keys)", False, ".2f"),
            ("temperature_p10", f"temperature below which 90% of queries are {eps:g}-tropical", True, ".2g"),
            ("margin_median", "median score margin s(1) - s(2)", False, ".2f"),
            ("special_token_wins", "share of argmaxes on [CLS]/[SEP]/first token", False, ".2f"),
            ("pca8_agreement", "argmax agreement after projecting Q, K to 8 PCA dims", False, ".2f"),
        ]
        if "rs_support_fraction" in rows[0]:
            specs.append(("rs_support_fraction", f"certified region-sparse support (eps={eps:g}), fraction of keys",
                          False, ".2f"))
        for key, title, log, fmt in specs:
            figures.append(heatmap(grid(key), title, out / f"heads_{key}.png", log=log, fmt=fmt))
        tab = layer_table(rows)
        figures.append(layer_profile({
            "T_eps (10th pct over queries)": ([r["T_eps_p10"] for r in tab], None),
            "median score margin": ([r["margin"] for r in tab], None),
        }, "layer by layer (median over heads)", out / "layers.png", log=True, layers=[r["layer"] for r in tab]))
        n_rows = max(r for r, _ in panels) + 1
        n_cols = max(c for _, c in panels) + 1
        figures.append(slice_grid(panels, n_rows, n_cols, _WINDOW,
                                  "2-D slices of each head's tropical hypersurface (argmax cells of the keys; "
                                  "dots: real queries projected)", out / "slices.png"))
    tab = layer_table(rows)
    report = Report(f"tropix analyze: {Path(model.source).name} ({cfg.arch}, {cfg.n_layers} layers x {cfg.n_heads} heads)")
    report.add(Section("What was measured", text=(
        f"{len(texts)} texts, {sum(s.n for s in ex.sequences)} tokens, up to {max(s.n for s in ex.sequences)} per text; "
        f"eps = {eps:g}. Extraction check: softmax(QK^T/sqrt(d) + mask) from the extracted Q, K reproduces the model's "
        f"attention probabilities to {ex.max_check_error:.2g} (limit 1e-5).\n\n"
        "Scores are the true scaled scores q.k/sqrt(d); the argmax cell of every query is therefore exact. "
        "T_eps is the largest temperature at which a query puts at least 1-eps of its mass on one key (the model "
        "runs at T = 1; inf for a query that sees a single key, 0 for an exact tie of its best scores); the head "
        "value is the 10th percentile over queries. The definitions are those of tropix.attention.analysis "
        "(score_tropicality). 'can win' is the fraction of keys of "
        "the longest text that are the strict argmax for some query (LP). The region-sparse columns compare the "
        "certified bound with the true error against dense attention, both relative to max |v|.")))
    report.add(Section("Layer by layer (medians over heads)", table=tab))
    report.add(Section("Figures", figures=figures))
    report.add(Section("Every head", table=[{k: v for k, v in r.items()} for r in rows]))
    paths["html"] = report.write(out / "report.html")
    paths["json"] = out / "report.json"
    write_json(paths["json"], {
        "model": model.source, "arch": cfg.arch, "eps": eps, "n_texts": len(texts),
        "tokens": [s.n for s in ex.sequences], "extraction_check_max_error": ex.max_check_error,
        "layers": tab, "heads": rows, "figures": [p.name for p in figures],
    })
    for f in figures:
        paths[f.stem] = f
    return AnalysisResult(tuple(rows), tuple(tab), paths, time.perf_counter() - t0)
