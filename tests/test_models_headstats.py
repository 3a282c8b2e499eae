"""Head statistics of real models are the analysis API's numbers; keys that can win against brute force."""

from __future__ import annotations

import json
import math
import shutil
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linprog

from tropix.attention import tropicality
from tropix.attention.analysis import extended_quantile
from tropix.models import extract, head_stats, load_model
from tropix.models.winners import can_win_fraction, keys_that_can_win
from tropix.report.analyze import analyze

TEXTS = [
    "Tropical geometry replaces addition by maximum.",
    "The quick brown fox jumps over the lazy dog, twice, while the tropical sun sets over the river.",
]
TROPICAL_FIELDS = ("mean_max_weight", "mean_entropy", "margin_median", "margin_p10", "tie_fraction", "support_mean",
                   "support_fraction", "temperature_p10", "temperature_median", "tropical_at_T1")


@pytest.fixture(scope="module")
def minilm():
    return load_model()


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory, minilm):
    """A small random GPT-2 (causal: the first query of every text sees a single key)."""
    import torch
    from transformers import GPT2Config, GPT2Model

    from tropix.models import default_model_path

    d = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(1)
    GPT2Model(GPT2Config(n_embd=32, n_head=4, n_layer=2, vocab_size=30522, n_positions=64)).save_pretrained(
        d, safe_serialization=True)
    shutil.copy(default_model_path() / "tokenizer.json", d / "tokenizer.json")
    return load_model(d)


def pooled_from_analysis_api(ex, layer, head, eps):
    """The tropicality numbers of one head recomputed from q, k and the mask by tropix.attention.tropicality."""
    hs = []
    for seq in ex.sequences:
        rows = seq.allowed.any(axis=1)
        hs.append(tropicality(seq.q[layer, head][rows], seq.k[layer, head], mask=seq.allowed[rows],
                              scale=ex.scale, eps=eps))
    cat = lambda f: np.concatenate([getattr(h, f) for h in hs])  # noqa: E731
    n_keys = np.concatenate([seq.allowed[seq.allowed.any(axis=1)].sum(axis=1) for seq in ex.sequences])
    mar, T, sup = cat("margin"), cat("sparse_temperature"), cat("effective_support")
    fin = mar[np.isfinite(mar)]
    return {
        "mean_max_weight": cat("max_weight").mean(), "mean_entropy": cat("entropy").mean(),
        "margin_median": np.median(fin), "margin_p10": np.quantile(fin, 0.1), "tie_fraction": np.mean(mar == 0),
        "support_mean": sup.mean(), "support_fraction": np.mean(sup / n_keys),
        "temperature_p10": extended_quantile(T, 0.1), "temperature_median": extended_quantile(T, 0.5),
        "tropical_at_T1": np.mean(T >= 1), "n_queries": T.size, "_T": T,
    }


def assert_same_numbers(row, want):
    for f in TROPICAL_FIELDS:
        assert row[f] == pytest.approx(want[f], rel=1e-9, abs=1e-12), f
    assert row["n_queries"] == want["n_queries"]


@pytest.mark.parametrize("eps", [0.01, 0.2])
def test_head_stats_are_the_analysis_api_numbers_bert(minilm, eps):
    ex = extract(minilm, TEXTS)
    for layer, head in [(0, 2), (1, 5), (5, 11)]:
        st_ = head_stats(ex, layer, head, eps)
        assert_same_numbers(st_.as_dict(), pooled_from_analysis_api(ex, layer, head, eps))


def test_report_rows_are_the_analysis_api_numbers_causal(tiny_gpt2, tmp_path):
    heads = [(0, 1), (1, 3)]
    res = analyze(tiny_gpt2, TEXTS, tmp_path, eps=0.05, heads=heads, plots=False)
    data = json.loads((tmp_path / "report.json").read_text())
    ex = extract(tiny_gpt2, TEXTS)
    for (layer, head), row, jrow in zip(heads, res.stats, data["heads"]):
        want = pooled_from_analysis_api(ex, layer, head, 0.05)
        assert np.isinf(want["_T"]).sum() >= len(TEXTS)  # the first query of each text sees one key: T = inf
        assert_same_numbers(row, want)
        for f in TROPICAL_FIELDS:  # the JSON file carries the same numbers
            assert jrow[f] == pytest.approx(row[f], rel=1e-15) if math.isfinite(row[f]) else jrow[f] == "inf"
        first = max(ex.sequences, key=lambda s: s.n)
        assert row["can_win_fraction"] == np.mean(naive_can_win(first.k[layer, head].astype(np.float64)))


# --------------------------------------------------------------------------- keys that can win
def naive_can_win(K):
    """Independent reference: one full LP per key (no filter, no whitening), q in a box, t <= 1:
    maximise t with q.(k_i - k_j) + t <= 0 for every other key i; k_j can win strictly iff t* > 0."""
    n, d = K.shape
    Kn = K / (np.abs(K).max() or 1.0)
    out = np.zeros(n, dtype=bool)
    for j in range(n):
        others = np.delete(Kn, j, axis=0)
        if others.shape[0] == 0:
            out[j] = True
            continue
        if np.any(np.all(others == Kn[j], axis=1)):
            continue  # ties with its copy at every query
        A = np.hstack([others - Kn[j], np.ones((n - 1, 1))])
        c = np.zeros(d + 1)
        c[-1] = -1.0
        res = linprog(c, A_ub=A, b_ub=np.zeros(n - 1), bounds=[(-1.0, 1.0)] * d + [(None, 1.0)], method="highs")
        out[j] = bool(res.status == 0 and -res.fun > 1e-9)
    return out


@given(arrays(np.float64, st.tuples(st.integers(3, 12), st.just(2)), elements=st.integers(-4, 4).map(float)))
def test_keys_that_can_win_are_hull_vertices(K):
    from scipy.spatial import ConvexHull, QhullError

    win = keys_that_can_win(K)
    uniq, counts = np.unique(K, axis=0, return_counts=True)
    try:
        verts = {tuple(K[i]) for i in ConvexHull(K).vertices}
    except QhullError:  # collinear or coincident points: the extreme points of the segment
        if len(uniq) == 1:
            verts = set()
        else:
            t = uniq @ (uniq[-1] - uniq[0])
            verts = {tuple(uniq[np.argmin(t)]), tuple(uniq[np.argmax(t)])}
    for i, k in enumerate(K):
        repeated = counts[np.flatnonzero((uniq == k).all(1))[0]] > 1
        assert win[i] == (tuple(k) in verts and not repeated), (K, i)


def can_win_1d(k, b, sense=1):
    """Exact brute force in one dimension: is {q : s(b_j + q k_j) > s(b_i + q k_i) for all i != j} nonempty?"""
    out = []
    for j in range(len(k)):
        lo, hi, ok = -math.inf, math.inf, True
        for i in range(len(k)):
            if i == j:
                continue
            a, c = sense * (k[j] - k[i]), sense * (b[i] - b[j])  # need a q > c
            if a > 0:
                lo = max(lo, Fraction(c, 1) / a)
            elif a < 0:
                hi = min(hi, Fraction(c, 1) / a)
            elif not c < 0:
                ok = False
        out.append(ok and lo < hi)
    return out


@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=1, max_size=7), st.sampled_from([1, -1]))
def test_keys_that_can_win_with_biases_exact_1d(kb, sense):
    k, b = [x for x, _ in kb], [y for _, y in kb]
    got = keys_that_can_win([[x] for x in k], b, semiring="max" if sense == 1 else "min").tolist()
    assert got == can_win_1d(k, b, sense)


def test_keys_that_can_win_on_real_keys_against_naive_lps(minilm):
    ex = extract(minilm, [TEXTS[1]])
    for layer, head in [(2, 5), (0, 2)]:
        K = ex.sequences[0].k[layer, head].astype(np.float64)
        K = np.vstack([K, K.mean(0), K[3]])  # an interior point and a repeated key: neither can win
        got = keys_that_can_win(K)
        assert np.array_equal(got, naive_can_win(K))
        assert not got[-1] and not got[-2] and not got[3]
        assert can_win_fraction(K) == got.mean()


def test_head_stats_checks_layer_and_head(minilm):
    """Out-of-range indices raised a raw IndexError, and -1 silently returned layer 5's numbers labelled -1."""
    from tropix.errors import ArgumentTypeError, ShapeError

    ex = extract(minilm, [TEXTS[0]])
    for layer, head in ((6, 0), (0, 12), (-1, 0), (0, -1)):
        with pytest.raises(ShapeError, match="out of range"):
            head_stats(ex, layer, head)
    with pytest.raises(ArgumentTypeError):
        head_stats(ex, 0.5, 0)
    assert head_stats(ex, 5, 11).layer == 5


def _one_head_extraction(q, k, v, allowed, scale=0.5):
    from tropix.models.extraction import Extraction, SequenceAttention

    n = k.shape[0]
    seq = SequenceAttention(tuple("x" * n), q[None, None], k[None, None], v[None, None], np.zeros((1, 1, n, n)),
                            allowed)
    return Extraction("synthetic", "bert", 1, 1, k.shape[1], scale, (seq,), {}, 0.0)


def test_regression_sparse_bound_is_never_negative_nor_below_the_measured_error():
    """With every key kept, the dropped mass was ``1 - Σ p`` (−2.2e-16 by rounding): ``sparse_bound_max`` was
    −4.4e-16, below the measured ``sparse_error_max`` 3.4e-17 (which is exactly 0 when nothing is dropped)."""
    rng = np.random.default_rng(1)
    n, dh = 3, 2
    allowed = np.zeros((n, n), bool)
    allowed[0] = True  # one query, every key kept at eps = 1e-9
    for _ in range(200):
        q, k, v = ((rng.standard_normal((n, dh)) * s).astype(np.float32) for s in (0.1, 1.0, 1.0))
        st = head_stats(_one_head_extraction(q, k, v, allowed), 0, 0, eps=1e-9)
        assert st.dropped_mass_max == st.sparse_bound_max == st.sparse_error_max == 0.0


def test_sparse_bound_holds_where_it_is_tight():
    """Two keys with opposite values: ``‖o − o_S‖ = 2δ·max‖v‖`` exactly; the measured error stays below the bound."""
    rng = np.random.default_rng(2)
    for _ in range(300):
        q, k = (rng.standard_normal((2, 3)).astype(np.float32) for _ in range(2))
        v1 = rng.standard_normal(3).astype(np.float32)
        st = head_stats(_one_head_extraction(q, k, np.stack([v1, -v1]), np.ones((2, 2), bool), 1.0), 0, 0, eps=0.3)
        assert 0 <= st.sparse_error_max <= st.sparse_bound_max
        if st.dropped_mass_max > 0:
            assert st.sparse_error_max >= 0.999 * st.sparse_bound_max


def test_head_stats_eps_of_the_wrong_type():
    """``eps="0.1"`` or ``None`` was a raw TypeError from ``0 < eps``."""
    from tropix.errors import ArgumentTypeError

    ex = _one_head_extraction(*(np.ones((2, 2), np.float32) for _ in range(3)), np.ones((2, 2), bool))
    for eps in ("0.1", None):
        with pytest.raises(ArgumentTypeError, match="eps"):
            head_stats(ex, 0, 0, eps=eps)


def test_report_layer_profile_is_drawn_at_the_analysed_layers(tiny_gpt2, tmp_path, monkeypatch):
    """Regression: the layer-by-layer figure put its points at x = 0, 1, ... whatever layers were analysed (heads of
    layer 1 only were drawn as layer 0)."""
    import matplotlib.pyplot as plt

    from tropix.report import plots

    figs = []
    monkeypatch.setattr(plt, "close", figs.append)
    plots.layer_profile({"a": ([1.0, 2.0], None)}, "t", tmp_path / "l.png", layers=[0, 2])
    assert figs[0].axes[0].lines[0].get_xdata().tolist() == [0, 2]
    seen = {}
    real = plots.layer_profile
    monkeypatch.setattr("tropix.report.analyze.layer_profile", lambda *a, **kw: seen.update(kw) or real(*a, **kw))
    analyze(tiny_gpt2, TEXTS[:1], tmp_path / "r", heads=[(1, 0)])
    assert seen["layers"] == [1]


def test_analyze_rejects_a_non_numeric_eps(minilm, tmp_path):
    """Regression: analyze(..., eps="0.1") was a raw TypeError from the comparison."""
    from tropix.errors import ArgumentTypeError

    with pytest.raises(ArgumentTypeError):
        analyze(minilm, TEXTS, tmp_path, eps="0.1")


def test_analyze_checks_heads_before_writing_anything(minilm, tmp_path):
    """Regression: heads=[0] was a raw TypeError, and a head out of range was refused only after extraction,
    with the output directory already made."""
    from tropix.errors import ArgumentTypeError, ShapeError

    for heads, err in (([0], ShapeError), ([(0, 12)], ShapeError), ([(6, 0)], ShapeError), ([(-1, 0)], ShapeError),
                       ([(0.5, 0)], ArgumentTypeError), ([(0, 0, 1)], ShapeError)):
        out = tmp_path / "never"
        with pytest.raises(err):
            analyze(minilm, TEXTS, out, heads=heads)
        assert not out.exists()


def test_region_sparse_support_fraction_is_over_the_keys_each_query_sees(tiny_gpt2):
    """Regression: the report's rs_support_fraction divided by all keys while support_fraction divides by the
    keys each query sees; on a causal model query i sees i + 1 of them."""
    from tropix.attention import region_sparse
    from tropix.report.analyze import _certified_sparse

    ex = extract(tiny_gpt2, TEXTS[:1])
    seq = ex.sequences[0]
    got = _certified_sparse(seq, 1, 2, ex.scale, 0.05, True)["rs_support_fraction"]
    q, k, v = (np.asarray(t[1, 2], dtype=np.float64) for t in (seq.q, seq.k, seq.v))
    res = region_sparse(q, k, v, eps=0.05, scale=ex.scale, causal=True)
    want = np.mean([res.support[i] / (i + 1) for i in range(q.shape[0])])
    assert got == pytest.approx(want, rel=1e-12)
    assert 0 < got <= 1
    assert got > np.mean(res.support) / k.shape[0]  # (the old fraction: below it for any causal head)


def test_heatmap_cells_of_heads_not_analysed_are_blank(tmp_path, monkeypatch):
    """Regression: a NaN cell (a head left out by heads=) was labelled "inf", in white on its white cell, and
    a real inf (an eps-sparse temperature beyond reach) was invisible the same way."""
    import matplotlib.pyplot as plt

    from tropix.report import plots

    seen = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (seen.append(fig), real_close(fig)))
    plots.heatmap([[1.0, np.nan], [np.inf, -np.inf]], "t", tmp_path / "h.png")
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): (t.get_text(), t.get_color())
             for t in seen[0].axes[0].texts}
    assert texts == {(0, 0): ("1.00", "w"), (0, 1): ("", "k"), (1, 0): ("inf", "k"), (1, 1): ("-inf", "k")}
