"""Adversarial audit of tropix.attention.analysis (row statistics, tropicality, geometry, entanglement) and of the
alternative mechanisms against direct NumPy implementations of the reference formulas
(/work/shared/reference/mechanisms-and-lra.md)."""

from __future__ import annotations

import math
from fractions import Fraction as F

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention.analysis import (
    attention_entanglement,
    effective_support,
    extended_quantile,
    key_geometry,
    score_margin,
    score_tropicality,
    softmax_weights,
    sparsity_temperature,
    tropicality,
)
from tropix.errors import ConventionError, EmptyInputError, NaNError, ShapeError, ToleranceError

NINF = -math.inf


# ------------------------------------------------------------------ brute-force references (mpmath, 60 digits)
def _bf_weights(row, T=1.0):
    vis = [x for x in row if x != NINF]
    if not vis:
        return [0.0] * len(row)
    with mpmath.workdps(60):
        top = max(mpmath.mpf(x) for x in vis)
        e = [mpmath.e ** ((mpmath.mpf(x) - top) / T) if x != NINF else mpmath.mpf(0) for x in row]
        z = sum(e)
        return [float(x / z) for x in e]


def _bf_support(w, eps):
    w = sorted(w, reverse=True)
    tot = sum(w)
    if tot == 0:
        return 0
    acc = 0
    for k, x in enumerate(w, 1):
        acc += x
        if acc >= (1 - eps) * tot - 1e-12 * tot:
            return k
    return len(w)


def _bf_margin(row):
    v = sorted((x for x in row if x != NINF), reverse=True)
    return v[0] - v[1] if len(v) >= 2 else (math.inf if v else math.nan)


def _bf_top_weight(row, T):
    """Top weight at temperature T in 60-digit arithmetic (exact gaps from Fractions)."""
    vis = [int(x) for x in row if x != NINF]  # integer scores: exact gaps
    top = max(vis)
    with mpmath.workdps(60):
        z = sum(mpmath.e ** (-mpmath.mpf(top - x) / mpmath.mpf(T)) for x in vis)
        return 1 / z


small_rows = st.lists(st.one_of(st.integers(-4, 4), st.just(NINF)), min_size=1, max_size=6)


# ------------------------------------------------------------------ softmax weights, support, margin
@settings(max_examples=60, deadline=None)
@given(st.lists(small_rows, min_size=1, max_size=4).filter(lambda r: len({len(x) for x in r}) == 1),
       st.sampled_from([0.3, 1.0, 7.0]))
def test_row_statistics_match_brute_force(rows, T):
    S = np.array(rows, dtype=np.float64)
    W = softmax_weights(S, T)
    for i, row in enumerate(rows):
        np.testing.assert_allclose(W[i], _bf_weights(row, T), rtol=1e-13, atol=1e-300)
    for eps in (0.0, 0.05, 0.5):
        assert effective_support(W, eps).tolist() == [_bf_support(list(w), eps) for w in W]
    m = score_margin(S)
    for i, row in enumerate(rows):
        b = _bf_margin(row)
        assert (math.isnan(b) and math.isnan(m[i])) or m[i] == b
    # min-plus: the statistics of -S in max-plus
    Sm = np.where(np.isinf(S), np.inf, -S)
    np.testing.assert_array_equal(softmax_weights(Sm, T, semiring="min"), W)
    np.testing.assert_array_equal(score_margin(Sm, semiring="min"), m)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.integers(-6, 6), st.just(NINF)), min_size=1, max_size=6),
       st.sampled_from([0.01, 0.2, 0.45, 0.6]))
def test_sparsity_temperature_is_the_threshold_of_the_definition(row, eps):
    """Exact integer scores with ties and masks: T_eps separates eps-sparse from not eps-sparse temperatures."""
    t = float(sparsity_temperature([row], eps)[0])
    vis = [x for x in row if x != NINF]
    if not vis:
        assert math.isnan(t)
        return
    if t == math.inf:
        for T in (1e-3, 1.0, 1e6):
            assert _bf_top_weight(row, T) >= 1 - eps - 1e-30
        return
    if t == 0.0:
        assert _bf_top_weight(row, 1e-6) < 1 - eps  # not eps-sparse even at a tiny temperature
        return
    assert _bf_top_weight(row, t * (1 - 1e-9)) >= 1 - eps
    assert _bf_top_weight(row, t * (1 + 1e-9)) < 1 - eps
    # exact input (Fractions) gives the same number as float input
    assert float(sparsity_temperature([[F(x) if x != NINF else x for x in row]], eps)[0]) == t


def test_two_key_closed_form_and_scaling():
    for g in (1e-300, 1e-5, 1.0, 3e7):
        t = sparsity_temperature([[g, 0.0]], 0.01)[0]
        assert abs(t - g / math.log(99)) <= 1e-13 * (g / math.log(99))


def test_sparsity_temperature_when_the_gap_overflows_float64():
    """Regression: scores 1e308 and -1e308 have a gap of 2e308 (beyond float64), which was clamped to the largest
    float: T_eps came out as 3.91e307 instead of 2e308 / ln 99 = 4.35e307."""
    expect = 2e308 / math.log(99) if False else 2 * (1e308 / math.log(99))
    t = sparsity_temperature([[1e308, -1e308]], 0.01)[0]
    assert abs(t - expect) <= 1e-12 * expect
    assert score_tropicality([[1e308, -1e308]]).sparse_temperature[0] == t
    # exact input whose T_eps is beyond float64: inf, not a clamped finite number
    assert sparsity_temperature([[10**400, 0]], 0.01)[0] == math.inf
    assert sparsity_temperature([[F(10**400, 3), 0, -(10**400)]], 0.01)[0] == math.inf
    # the min-plus mirror
    assert sparsity_temperature([[-1e308, 1e308]], 0.01, semiring="min")[0] == t


def test_documented_edge_conventions():
    assert sparsity_temperature([[2.0, NINF], [1.0, 1.0], [NINF, NINF]], 0.01).tolist()[0] == math.inf
    assert sparsity_temperature([[1.0, 1.0, 1.0]], 0.6).tolist() == [0.0]  # 1/3 < 0.4
    assert sparsity_temperature([[1.0, 1.0]], 0.5).tolist() == [math.inf]  # 1/2 >= 1/2 for all T
    assert score_margin([[5.0]]).tolist() == [math.inf]
    assert math.isnan(score_margin([[NINF, NINF]])[0])
    assert score_margin([[F(1, 3), F(1, 7), NINF]]).tolist() == [F(4, 21)]  # exact margin stays exact
    assert softmax_weights([[NINF, NINF]]).tolist() == [[0.0, 0.0]]
    assert effective_support([[0, 0]], 0.1).tolist() == [0]
    assert effective_support([[F(99, 100), F(1, 100)]], 0.01).tolist() == [1]
    # huge and tiny scores: no overflow, no NaN
    assert softmax_weights([[1e308, -1e308, 1e308]]).tolist() == [[0.5, 0.0, 0.5]]
    assert softmax_weights([[1.0, 0.0]], 1e-300).tolist() == [[1.0, 0.0]]
    assert softmax_weights([[5e-324, 0.0]]).tolist() == [[0.5, 0.5]]


def test_backends_and_dtypes():
    S32 = np.array([[1.0, 2.0, NINF]], dtype=np.float32)
    ref = softmax_weights(S32.astype(np.float64))
    np.testing.assert_allclose(softmax_weights(S32), ref)
    Wt = softmax_weights(torch.tensor(S32))
    assert isinstance(Wt, torch.Tensor)
    np.testing.assert_allclose(Wt.numpy(), ref)
    assert score_margin(torch.tensor([[1.0, 3.0]])).tolist() == [2.0]


def test_bad_input_errors():
    with pytest.raises(NaNError):
        softmax_weights([[math.nan, 1.0]])
    with pytest.raises(NaNError):
        sparsity_temperature([[math.nan, 1.0]], 0.1)
    with pytest.raises(ConventionError):
        score_margin([[math.inf, 1.0]])  # +inf is not a max-plus element
    with pytest.raises(ConventionError):
        score_margin([[NINF, 1.0]], semiring="min")
    with pytest.raises(EmptyInputError):
        score_margin(np.zeros((2, 0)))
    with pytest.raises(ShapeError):
        score_margin(np.float64(1.0))
    for bad in (0.0, 1.0, -0.1, math.nan):
        with pytest.raises((ToleranceError, NaNError)):
            sparsity_temperature([[1.0, 0.0]], bad)
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ToleranceError):
            softmax_weights([[1.0]], bad)
    with pytest.raises(ConventionError):
        effective_support([[-0.1, 1.0]], 0.1)
    with pytest.raises(ShapeError):
        score_tropicality([[[1.0]]])


def test_extended_quantile_is_the_limit():
    for x, q in (([1.0, 2.0, math.inf], 0.5), ([NINF, 1.0, math.inf], 0.25), ([NINF, 0.0, 1.0], 0.6),
                 ([1.0, 1.0, math.inf], 0.4), ([2.0, math.inf, math.inf], 0.9)):
        B = 1e200
        lim = [float(np.quantile(np.clip(x, -b, b), q)) for b in (B, 1e250)]
        got = extended_quantile(x, q)
        if math.isinf(got):
            assert abs(lim[1]) > 1e150 and np.sign(lim[1]) == np.sign(got)
        else:
            assert abs(lim[1] - got) <= 1e-9 * max(1.0, abs(got))


# ------------------------------------------------------------------ tropicality from q, k
def _dense_scores(q, k, scale, mask=None, causal=False):
    """Scores with the documented conventions (mask True = visible; causal top-left aligned: j <= i)."""
    S = scale * (q @ k.T)
    if mask is not None:
        S = np.where(mask, S, NINF)
    if causal:
        n_q, n_k = S.shape
        S = np.where(np.arange(n_k)[None, :] <= np.arange(n_q)[:, None], S, NINF)
    return S


@pytest.mark.parametrize("lib", ["numpy", "torch", "torch32"])
def test_tropicality_equals_score_tropicality_of_the_dense_scores(lib):
    """Regression: tropicality(torch q, torch k) raised BackendMismatchError (a NumPy stand-in for v was mixed in)."""
    r = np.random.default_rng(3)
    q, k = r.normal(size=(6, 3)), r.normal(size=(5, 3))
    k[4] = k[3]  # a repeated key: exact ties
    mask = r.random((6, 5)) > 0.3
    mask[0] = False  # a row with no visible key
    conv = {"numpy": lambda a: a, "torch": torch.tensor,
            "torch32": lambda a: torch.tensor(a, dtype=torch.float32) if a.dtype != bool else torch.tensor(a)}[lib]
    qq, kk = conv(q), conv(k)
    if lib == "torch32":
        q, k = qq.double().numpy(), kk.double().numpy()
    h = tropicality(qq, kk, mask=conv(mask), scale=0.7, eps=0.05)
    ref = score_tropicality(_dense_scores(q, k, 0.7, mask), eps=0.05)
    for f in ("max_weight", "entropy", "margin", "sparse_temperature"):
        np.testing.assert_allclose(getattr(h, f), getattr(ref, f), rtol=1e-12, atol=1e-15, equal_nan=True)
    np.testing.assert_array_equal(h.effective_support, ref.effective_support)
    assert h.max_weight[0] == 0 and h.effective_support[0] == 0 and math.isnan(h.margin[0])
    hc = tropicality(qq, kk, causal=True, scale=1.0)
    rc = score_tropicality(_dense_scores(q, k, 1.0, causal=True))
    np.testing.assert_allclose(hc.sparse_temperature, rc.sparse_temperature, rtol=1e-12)


def test_tropicality_single_query_single_key():
    h = tropicality([[2.0]], [[3.0]])
    assert h.max_weight.tolist() == [1.0] and h.effective_support.tolist() == [1]
    assert h.margin.tolist() == [math.inf] and h.sparse_temperature.tolist() == [math.inf]
    assert h.summary()["median_margin"] == math.inf


def test_attention_entanglement_torch_and_masks():
    """Regression (same stand-in as tropicality): torch q, k raised BackendMismatchError."""
    r = np.random.default_rng(0)
    q, k = r.normal(size=(4, 2)), r.normal(size=(8, 2))
    e_np = attention_entanglement(q, k)
    e_t = attention_entanglement(torch.tensor(q), torch.tensor(k))
    np.testing.assert_allclose(e_t["entropies"], e_np["entropies"], rtol=1e-10)
    # the spectra are the singular values of the unfoldings of the dense softmax matrix
    A = softmax_weights(q @ k.T / math.sqrt(2))
    T = A.reshape(e_np["dims"])
    for c, sp in enumerate(e_np["spectra"], 1):
        M = T.reshape(int(np.prod(e_np["dims"][:c])), -1)
        sv = np.linalg.svd(M, compute_uv=False)
        np.testing.assert_allclose(np.sort(sp)[::-1][: sv.size], sv[: len(sp)], atol=1e-12)


def test_key_geometry_brute_force_cells():
    K = [[0, 0], [2, 0], [0, 2], [1, 1], [2, 2], [2, 2]]
    Q = [[1, 1], [-1, 0], [1, 0], [0, 0], [3, -1]]
    G = key_geometry(K, queries=Q)
    for q, cell in zip(Q, G.cells):
        s = [q[0] * a + q[1] * b for a, b in K]
        assert set(cell) == {j for j, x in enumerate(s) if x == max(s)}
    assert sorted(G.vertices.tolist()) == [0, 1, 2, 4, 5]  # (1, 1) is on the segment (2,0)-(0,2)
    for j, w in G.witnesses.items():
        s = [float(w[0]) * a + float(w[1]) * b for a, b in K]
        best = max(s)
        assert s[j] == best and all(s[i] < best for i in range(len(K)) if K[i] != K[j])
