"""``tropix compress``: every method over several tolerances, measured on a corpus, against SVD at equal size.

For each compressed model: parameter ratio, per-matrix relative errors (mean and max; all of them in
the JSON), relative error of the attention scores and of the attention sublayer outputs on the corpus
(errors propagate through the layers, as they do in use), and the cosine similarity between the original
and the compressed model's sentence embeddings (mean pooling).  Every point is paired with truncated SVD
at the same parameter count.  The best training-free point is the smallest parameter ratio whose mean
cosine is at least 0.99 (or the highest cosine if none is); each method's best point is saved as
``<out>/<method>/attention.safetensors`` + ``manifest.json`` and reloaded to check that it runs.

Examples
--------
>>> import tempfile
>>> from tropix.models import load_model
>>> run = compress_and_report(load_model(), ["A short text."], tempfile.mkdtemp(), methods=["svd"], eps=0.3)
>>> run.methods, run.rows[0]["method"], run.rows[0]["reload_max_diff"]
(('svd',), 'svd', 0.0)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._repr import compact_repr
from ..errors import EmptyInputError
from ..models.compress import METHODS, check_setting, compress, load_compressed, save_compressed, svd_at_params
from .document import Report, Section, write_json
from .plots import pareto

__all__ = ["CompressionRun", "compress_and_report", "DEFAULT_EPS_SWEEP"]

DEFAULT_EPS_SWEEP = (0.4, 0.2, 0.1, 0.05)
_GOOD = 0.99


@dataclass(frozen=True)
class CompressionRun:
    """Rows (one per method and setting), the methods run, the best point, where it was saved, files."""

    rows: tuple
    methods: tuple
    best: dict | None
    saved: Path | None
    paths: dict = field(default_factory=dict)
    seconds: float = 0.0
    __repr__ = compact_repr


def _reference(model, batches):
    outs = [model.forward(b, record=True) for b in batches]
    return outs, _embed(model, batches)


def _embed(model, batches):
    es = []
    for b in batches:
        es.append(model.embed(b))
    return torch.cat(es)


def _errors(ref_outs, model, batches):
    s_err, o_err = [], []
    for ref, b in zip(ref_outs, batches):
        out = model.forward(b, record=True)
        real = b.attention_mask.bool()
        pair = real[:, :, None] & real[:, None, :]
        for r0, r1 in zip(ref.layers, out.layers):
            S0, S1 = r0.scores.transpose(0, 1)[:, pair], r1.scores.transpose(0, 1)[:, pair]
            s_err.append(float((S1 - S0).norm() / S0.norm()))
            O0, O1 = r0.output[real], r1.output[real]
            o_err.append(float((O1 - O0).norm() / O0.norm()))
    return float(np.mean(s_err)), float(np.mean(o_err))


def _pick(rows):
    good = [r for r in rows if r["cosine_mean"] >= _GOOD]
    if good:
        return min(good, key=lambda r: (r["param_ratio"], -r["cosine_mean"]))
    return max(rows, key=lambda r: r["cosine_mean"]) if rows else None


def compress_and_report(model, texts, out_dir, methods=None, eps: float | None = None, ratio: float | None = None,
                        max_length: int | None = None, progress=None, base_name: str | None = None,
                        batch_size: int = 16) -> CompressionRun:
    """Compress ``model``'s attention with each method, evaluate on ``texts``, write report and files.

    Parameters
    ----------
    methods : list of str, optional
        Subset of ``("svd", "tt", "tucker", "tt-heads", "bilinear")`` (``"all"`` or None: all).
    eps, ratio : float, optional
        One setting for every method; if neither is given, ``eps`` sweeps :data:`DEFAULT_EPS_SWEEP`.
    """
    texts = list(texts)
    if not texts:
        raise EmptyInputError("no texts to evaluate the compressed models on")
    t0 = time.perf_counter()
    if not methods or "all" in methods:
        methods = list(METHODS)
    methods = tuple(dict.fromkeys(methods))
    settings = [("eps", eps)] if eps is not None else [("ratio", ratio)] if ratio is not None else \
        [("eps", e) for e in DEFAULT_EPS_SWEEP]
    for method in methods:  # (before anything is written: a bad setting left an empty directory behind)
        for kind, value in settings:
            check_setting(method, value if kind == "eps" else None, value if kind == "ratio" else None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def bar(stage, total):
        return progress(stage, total) if progress is not None else (lambda n: None)

    batches = [model.encode(texts[i:i + batch_size], max_length) for i in range(0, len(texts), batch_size)]
    ref_outs, e0 = _reference(model, batches)
    rows, comps = [], {}
    tick = bar("compressing and evaluating", len(methods) * len(settings))
    for method in methods:
        for kind, value in settings:
            t1 = time.perf_counter()
            c = compress(model, method, **{kind: value})
            secs = time.perf_counter() - t1
            cm = c.model()
            e = _embed(cm, batches)
            cos = (e * e0).sum(1)
            s_err, o_err = _errors(ref_outs, cm, batches)
            base = svd_at_params(model, c.n_params)
            cb = (_embed(base.model(), batches) * e0).sum(1)
            errs = np.array(list(c.rel_errors.values()))
            row = {
                "method": method, "setting": c.setting, "param_ratio": c.param_ratio, "n_params": c.n_params,
                "weight_rel_err": float(errs.mean()), "weight_rel_err_max": float(errs.max()),
                "score_rel_err": s_err, "output_rel_err": o_err,
                "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
                "svd_setting_at_equal_params": base.setting, "svd_param_ratio_at_equal_params": base.param_ratio,
                "svd_cosine_at_equal_params": float(cb.mean()),
                "compress_seconds": secs,
            }
            rows.append(row)
            comps[(method, c.setting)] = c
            tick(len(rows))
    # save each method's best point, reload it, and check that it runs and agrees
    saved_dirs = {}
    for method in methods:
        r = _pick([x for x in rows if x["method"] == method])
        c = comps[(method, r["setting"])]
        d = save_compressed(c, out / method, base_name, extra={"evaluation": r})
        again = load_compressed(d, base=model)
        diff = float((_embed(again, batches) - _embed(c.model(), batches)).abs().max())
        r["reload_max_diff"] = diff
        r["saved"] = str(d)
        saved_dirs[method] = d
    best = _pick(rows)
    pts = {m: [(r["param_ratio"], r["cosine_mean"]) for r in rows if r["method"] == m] for m in methods}
    # (at the SVD's own parameter ratio: its rank is the largest that fits, often well below the budget)
    pts["svd at equal parameters"] = sorted({(r["svd_param_ratio_at_equal_params"], r["svd_cosine_at_equal_params"])
                                             for r in rows})
    fig = pareto(pts, "parameters vs sentence-embedding cosine (attention weights only)", out / "pareto.png",
                 xlabel="parameter ratio of W_Q, W_K, W_V, W_O (compressed / original)",
                 ylabel="mean cosine of sentence embeddings")
    report = Report(f"tropix compress: {Path(model.source).name}")
    report.add(Section("What was measured", text=(
        f"{len(texts)} texts. Methods: {', '.join(methods)}; settings: "
        f"{', '.join(f'{k} {v:g}' for k, v in settings)}. The parameter ratio counts the attention projection "
        "matrices only (biases are kept). Errors: per-matrix relative Frobenius error (for 'bilinear' the error of the "
        "per-head forms W_Q W_K^T and W_V W_O), relative error of scores and attention outputs on the corpus "
        "with errors propagating through the layers, and the cosine between original and compressed sentence "
        "embeddings. Every point is paired with truncated SVD of every matrix at the same parameter count.\n\n"
        + (f"Best training-free point: {best['method']} ({best['setting']}) at parameter ratio "
           f"{best['param_ratio']:.3f}, mean cosine {best['cosine_mean']:.4f}." if best else ""))))
    report.add(Section("All points", table=[{k: v for k, v in r.items() if k != "saved"} for r in rows]))
    report.add(Section("Pareto plot", figures=[fig]))
    paths = {"html": report.write(out / "report.html"), "json": out / "report.json", "pareto": fig}
    write_json(paths["json"], {"model": model.source, "methods": methods, "settings": settings, "rows": rows,
                               "best": best, "saved": saved_dirs,
                               "per_matrix_rel_errors": {f"{m} {s}": c.rel_errors for (m, s), c in comps.items()}})
    return CompressionRun(tuple(rows), methods, best, saved_dirs.get(best["method"]) if best else None, paths,
                          time.perf_counter() - t0)
