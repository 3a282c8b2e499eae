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
    score_slice,
    score_tropicality,
    softmax_weights,
    sparsity_temperature,
    tropicality,
)
from tropix.errors import ConventionError, EmptyInputError, NaNError, ShapeError, ToleranceError
from test_lra_data import _independent_value  # the independent evaluator of the ListOps reference semantics

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


def test_huge_exact_scores():
    """Regression: exact scores beyond float64 (10**400) made softmax_weights and score_tropicality raise a raw
    OverflowError (float() of each score); the weights depend only on the exact gaps."""
    assert softmax_weights([[10**400, 0]]).tolist() == [[1.0, 0.0]]
    W = softmax_weights([[F(10**400, 3) + 1, F(10**400, 3), NINF]])
    np.testing.assert_allclose(W, [[1 / (1 + math.exp(-1)), 1 / (1 + math.e), 0.0]], rtol=1e-15)
    assert softmax_weights([[-(10**400), 0]]).tolist() == [[0.0, 1.0]]
    h = score_tropicality([[10**400, 0], [10**400 + 1, 10**400]], eps=0.01)
    assert h.max_weight[0] == 1.0 and h.sparse_temperature[0] == math.inf
    assert h.margin[1] == 1.0 and abs(h.sparse_temperature[1] - 1 / math.log(99)) < 1e-13
    assert score_margin([[10**400, 0]]).tolist() == [10**400]  # the exact margin stays exact


def test_effective_support_of_unnormalised_huge_weights():
    """Regression: the row total of [1e308, 1e308] overflowed to inf and the support came out as 1 (expected 2)."""
    assert effective_support([[1e308, 1e308]], 0.1).tolist() == [2]
    assert effective_support([[1e308, 1e308, 1e308]], 0.1).tolist() == [3]
    assert effective_support([[1e308, 1e300, 0.0]], 0.1).tolist() == [1]
    assert effective_support([[5e-324, 5e-324]], 0.1).tolist() == [2]
    for row in ([3.0, 1.0, 1.0], [0.2, 0.2, 0.6]):
        for c in (1e-300, 1.0, 1e300):
            assert effective_support([[x * c for x in row]], 0.3).tolist() == effective_support([row], 0.3).tolist()


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


def test_extended_quantile_rejects_q_outside_the_unit_interval():
    """Regression: q = 1.5 was a raw IndexError, q = -0.1 returned inf, q = NaN a raw ValueError."""
    for q in (-0.1, 1.5):
        with pytest.raises(ToleranceError):
            extended_quantile([1.0, math.inf], q)
    with pytest.raises(NaNError):
        extended_quantile([1.0, math.inf], math.nan)
    assert extended_quantile([1.0, math.inf], 0.0) == 1.0 and extended_quantile([1.0, math.inf], 1.0) == math.inf


def test_key_geometry_semirings_and_biases_against_brute_force():
    """Cells of integer queries, witnesses and vertices (every key that is the unique winner of some sampled query
    is reported as a vertex) in max- and min-plus with and without biases, decided exactly with Fractions."""
    import itertools

    r = np.random.default_rng(0)
    for trial in range(24):
        n, d = int(r.integers(1, 7)), int(r.integers(1, 4))
        K = r.integers(-2, 3, size=(n, d)).tolist()
        b = r.integers(-2, 3, size=n).tolist() if trial % 2 else None
        sr = "min" if trial % 3 == 0 else "max"
        sign = 1 if sr == "max" else -1
        Q = r.integers(-3, 4, size=(4, d)).tolist()
        G = key_geometry(K, b, queries=Q, semiring=sr)

        def scores(q):
            return [sign * (sum(F(x) * y for x, y in zip(q, k)) + (b[j] if b else 0)) for j, k in enumerate(K)]

        for q, cell in zip(Q, G.cells):
            s = scores(q)
            assert set(cell) == {j for j, x in enumerate(s) if x == max(s)}
        for j, w in G.witnesses.items():
            s = scores([F(float(x)) for x in np.asarray(w)])
            twins = {i for i in range(n) if K[i] == K[j] and (b is None or b[i] == b[j])}
            assert s[j] == max(s) and all(s[i] < s[j] for i in range(n) if i not in twins)
        for q in itertools.product(range(-3, 4), repeat=d):
            s = scores(q)
            win = [j for j, x in enumerate(s) if x == max(s)]
            if len(win) == 1:
                assert win[0] in G.vertices.tolist()


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


def test_score_slice_and_entanglement_shape_checks():
    """Regressions: a length-1 bias was silently broadcast to every key by score_slice (a length-2 one for three keys
    was a raw ValueError); negative row_dims whose product matched were a raw reshape ValueError."""
    K = [[1, 0], [0, 1], [0, 0]]
    for b in ([5], [1, 2]):
        with pytest.raises(ShapeError):
            score_slice(K, [0, 0], [1, 0], [0, 1], bias=b)
    p = score_slice(K, [0, 0], [1, 0], [0, 1], bias=[F(1, 2), 0, NINF])  # -inf bias: the key is dropped
    assert str(p) == "max(y, 1/2 + x)"
    with pytest.raises(ShapeError):
        attention_entanglement(np.ones((4, 2)), np.ones((4, 2)), row_dims=(-2, -2))


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


# ================================================================== mechanisms against the reference formulas
from tropix.attention import mechanisms as M  # noqa: E402
from tropix.errors import BackendMismatchError  # noqa: E402


def _softmax_rows(L):
    """Row softmax of a NumPy logit matrix with -inf = excluded, all-excluded rows = 0 (loops, math.exp)."""
    out = np.zeros_like(L, dtype=float)
    for idx in np.ndindex(L.shape[:-1]):
        row = L[idx]
        fin = [x for x in row if x != NINF]
        if not fin:
            continue
        top = max(fin)
        e = [math.exp(x - top) if x != NINF else 0.0 for x in row]
        out[idx] = np.array(e) / sum(e)
    return out


def _causal(n_q, n_k):
    return np.arange(n_k)[None, :] <= np.arange(n_q)[:, None]


def test_softmax_mechanism_matches_the_formula_with_mask_and_scale():
    r = np.random.default_rng(10)
    q, k, v, b = r.normal(size=(2, 5, 3)), r.normal(size=(2, 6, 3)), r.normal(size=(2, 6, 4)), r.normal(size=(5, 6))
    mask = _causal(5, 6)
    for scale in (None, 0.3):
        s = 1 / math.sqrt(3) if scale is None else scale
        L = np.where(mask, s * np.einsum("hid,hjd->hij", q, k) + b, NINF)
        out, A = M.softmax_attention(q, k, v, bias=b, scale=scale, mask=mask, return_weights=True)
        np.testing.assert_allclose(A, _softmax_rows(L), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(out, _softmax_rows(L) @ v, rtol=1e-12, atol=1e-14)


def test_force_attention_matches_the_literal_formula():
    """F_ij = E_i - R_j, r = |F|, u = F/(r + 1e-8), s^h = (u.mu_h) exp(-r), softmax over j (reference 4.1)."""
    r = np.random.default_rng(11)
    E, R = r.normal(size=(4, 3)), r.normal(size=(5, 3))
    R[2] = E[1]  # a zero displacement: r = 0, score 0
    v, mu = r.normal(size=(2, 5, 2)), r.normal(size=(2, 3))
    mask = r.random((2, 4, 5)) > 0.3
    S = np.zeros((2, 4, 5))
    for h in range(2):
        for i in range(4):
            for j in range(5):
                F = E[i] - R[j]
                rr = float(np.sqrt(F @ F))
                S[h, i, j] = float((F / (rr + 1e-8)) @ mu[h]) * math.exp(-rr)
    A_ref = _softmax_rows(np.where(mask, S, NINF))
    out, A = M.force_attention(E, R, v, mu, mask=mask, return_weights=True)
    np.testing.assert_allclose(A, A_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out, A_ref @ v, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(M.force_scores(E, R, mu), S, rtol=1e-9, atol=1e-12)


def test_gravitational_matches_the_source_linear_normalisation():
    """g = G m^q_i m^k_j / (|q_i - k_j|^2 + eps), A = g / (sum g + 1e-8): G and m^q cancel (reference 4.2)."""
    r = np.random.default_rng(12)
    q, k, v = r.normal(size=(5, 3)), r.normal(size=(6, 3)), r.normal(size=(6, 2))
    mq, mk, G = np.exp(r.normal(size=5)), np.exp(r.normal(size=6)), 2.5
    mask = _causal(5, 6)
    g = G * mq[:, None] * mk[None, :] / (((q[:, None] - k[None]) ** 2).sum(-1) + 1e-8)
    g = np.where(mask, g, 0.0)
    A_src = g / (g.sum(1, keepdims=True) + 1e-8)
    out, A = M.gravitational_attention(q, k, v, mass_k=mk, mask=mask, return_weights=True)
    np.testing.assert_allclose(A, A_src, rtol=1e-7)
    np.testing.assert_allclose(out, A_src @ v, rtol=1e-7, atol=1e-9)


def test_gravitational_massless_key_at_distance_zero():
    """Regression: with eps = 0, a key of log-mass -inf (the documented tropical zero) coinciding with the query
    gave NaN weights (-inf - (-inf)); a massless key exerts no pull: weight 0, the rest as without it."""
    q = np.array([[0.0, 0.0], [1.0, 1.0]])
    k = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 1.0]])
    v = np.arange(6.0).reshape(3, 2)
    lm = np.array([NINF, 0.0, 0.0])
    _, A = M.gravitational_attention(q, k, v, log_mass_k=lm, eps=0.0, return_weights=True)
    _, A2 = M.gravitational_attention(q, k[1:], v[1:], eps=0.0, return_weights=True)
    assert not np.isnan(A).any()
    np.testing.assert_allclose(A[:, 0], 0.0)
    np.testing.assert_allclose(A[:, 1:], A2, rtol=1e-14)
    _, B = M.grav_multiscale_attention(q, k, v, log_mass_k=lm[None], gammas=[0.5], eps=0.0, return_weights=True)
    _, B2 = M.grav_multiscale_attention(q, k[1:], v[1:], log_mass_k=np.zeros((1, 2)), gammas=[0.5], eps=0.0,
                                        return_weights=True)
    assert not np.isnan(B).any() and np.all(B[0, :, 0] == 0)
    # B2 sees the keys at positions 0, 1 instead of 1, 2: compare with the direct formula instead
    d2 = ((q[:, None] - k[None, 1:]) ** 2).sum(-1)
    w = 1 / d2 * 0.5 ** np.abs(np.arange(2)[:, None] - np.arange(1, 3)[None, :])
    np.testing.assert_allclose(B[0, :, 1:], w / w.sum(1, keepdims=True), rtol=1e-14)
    assert B2.shape == (1, 2, 2)
    # torch: no NaN in the gradient either
    qt = torch.tensor(q, requires_grad=True)
    out = M.gravitational_attention(qt, torch.tensor(k), torch.tensor(v), log_mass_k=torch.tensor(lm), eps=0.0)
    out.sum().backward()
    assert torch.isfinite(qt.grad).all()


@pytest.mark.parametrize("discount", ["bias", "logit"])
def test_multiscale_matches_the_formula(discount):
    """Own Q_t, K_t, V_t per timescale; logits (q.k/sqrt d) * g^|i-j| ("logit", the source) or
    + |i-j| ln g ("bias"); masked softmax (reference 4.3)."""
    r = np.random.default_rng(13)
    T, n, d = 3, 5, 4
    q, k, v = r.normal(size=(T, n, d)), r.normal(size=(T, n, d)), r.normal(size=(T, n, 2))
    gam = np.array([0.6, 0.9, 0.99])
    D = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    mask = _causal(n, n)
    A_ref = np.zeros((T, n, n))
    for t in range(T):
        s = q[t] @ k[t].T / math.sqrt(d)
        L = s * gam[t] ** D if discount == "logit" else s + D * math.log(gam[t])
        A_ref[t] = _softmax_rows(np.where(mask, L, NINF))
    out, A = M.multiscale_attention(q, k, v, gammas=gam, discount=discount, mask=mask, return_weights=True)
    np.testing.assert_allclose(A, A_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(out, A_ref @ v, rtol=1e-12, atol=1e-14)


def test_grav_multiscale_matches_the_source_weights():
    """g^t = G m^q m^k_t / (d^2 + eps) * g_t^|i-j| with shared q, k, v, row-normalised (reference 4.4)."""
    r = np.random.default_rng(14)
    n = 6
    q, k, v = r.normal(size=(n, 3)), r.normal(size=(n, 3)), r.normal(size=(n, 2))
    gam = np.array([0.5, 0.95])
    mk = np.exp(r.normal(size=(2, n)))
    D = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    d2 = ((q[:, None] - k[None]) ** 2).sum(-1)
    out, A = M.grav_multiscale_attention(q, k, v, log_mass_k=np.log(mk), gammas=gam, return_weights=True)
    for t in range(2):
        g = 3.0 * 0.7 * mk[t][None, :] / (d2 + 1e-8) * gam[t] ** D
        np.testing.assert_allclose(A[t], g / g.sum(1, keepdims=True), rtol=1e-10)
        np.testing.assert_allclose(out[t], g / g.sum(1, keepdims=True) @ v, rtol=1e-9, atol=1e-12)


def test_powerlaw_matches_the_product_form_per_head_and_rejects_mixed_libraries():
    """A ∝ exp(q.k/sqrt d) (1 + beta_h |i-j|)^(-alpha_h) per head (reference 4.5)."""
    r = np.random.default_rng(15)
    H, n, d = 2, 5, 3
    q, k, v = r.normal(size=(H, n, d)), r.normal(size=(H, n, d)), r.normal(size=(H, n, 2))
    al, be = np.array([2.0, 0.5]), np.array([1.0, 3.0])
    D = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
    out, A = M.powerlaw_attention(q, k, v, alpha=al, beta=be, return_weights=True)
    for h in range(H):
        w = np.exp(q[h] @ k[h].T / math.sqrt(d)) * (1 + be[h] * D) ** (-al[h])
        np.testing.assert_allclose(A[h], w / w.sum(1, keepdims=True), rtol=1e-12)
    # regression: a NumPy alpha with torch q was a raw RuntimeError from torch
    qt, kt, vt = (torch.tensor(x, dtype=torch.float32) for x in (q, k, v))
    with pytest.raises(BackendMismatchError):
        M.powerlaw_attention(qt, kt, vt, alpha=al, beta=be)
    got = M.powerlaw_attention(qt, kt, vt, alpha=torch.tensor(al, dtype=torch.float32),
                               beta=torch.tensor(be, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), out, rtol=1e-5, atol=1e-6)


def test_tropical_attention_matches_the_formula():
    """S = -d_H(q_i, k_j), C_i = max_j(S_ij + v_j); min-plus mirrored; masked rows give the tropical zero."""
    r = np.random.default_rng(16)
    q, k, v = r.normal(size=(4, 3)), r.normal(size=(5, 3)), r.normal(size=(5, 2))
    v[1, 0] = NINF
    mask = r.random((4, 5)) > 0.4
    mask[2] = False
    dH = np.array([[np.max(a - b) - np.min(a - b) for b in k] for a in q])
    S = np.where(mask, -dH, NINF)
    ref = np.max(S[:, :, None] + v[None], axis=1)
    np.testing.assert_array_equal(M.tropical_attention(q, k, v, mask=mask), ref)
    vm = np.where(np.isinf(v), np.inf, v)
    ref_min = np.min(np.where(mask, dH, np.inf)[:, :, None] + vm[None], axis=1)
    np.testing.assert_array_equal(M.tropical_attention(q, k, vm, mask=mask, semiring="min"), ref_min)


def test_resonant_tensorised_scores_equal_the_sparse_definition():
    states = [M.SparsePrimeState.from_hash(f"t{i}", k=1 + i % 4, n_primes=9) for i in range(7)]
    P, PH, Q = M.states_to_arrays(states)
    S = M.resonant_scores(P, PH, Q, P, PH, Q)
    for i, s in enumerate(states):
        for j, t in enumerate(states):
            shared = set(s.primes) & set(t.primes)
            if not shared:
                assert S[i, j] == 0
                continue
            J = len(shared) / len(set(s.primes) | set(t.primes))
            qa = np.mean([abs(np.dot(s.quaternions[s.primes.index(p)], t.quaternions[t.primes.index(p)]))
                          for p in shared])
            ph = np.mean([math.cos(np.angle(s.amplitudes[s.primes.index(p)]) - np.angle(t.amplitudes[t.primes.index(p)]))
                          for p in shared])
            ref = 0.33 * J + 0.33 * qa + 0.34 * 0.5 * (ph + 1)
            assert abs(S[i, j] - ref) < 1e-12 and abs(M.resonance(s, t) - ref) < 1e-12


def test_mechanism_gradients_match_finite_differences():
    r = np.random.default_rng(17)
    q, k, v = (torch.tensor(r.normal(size=s), requires_grad=True) for s in ((3, 2), (4, 2), (4, 2)))
    mask = torch.tensor(_causal(3, 4))
    funcs = [
        lambda q, k, v: M.softmax_attention(q, k, v, mask=mask),
        lambda q, k, v: M.gravitational_attention(q, k, v, mask=mask),
        lambda q, k, v: M.force_attention(q, k, v[None], torch.ones(1, 2, dtype=torch.float64)),
        lambda q, k, v: M.powerlaw_attention(q[None], k[None], v[None], alpha=2.0, beta=1.0),
        lambda q, k, v: M.multiscale_attention(q[None], k[None], v[None], gammas=torch.tensor([0.7], dtype=torch.float64)),
    ]
    for f in funcs:
        assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-6)


def test_mechanism_bad_input_errors():
    q = np.zeros((2, 3))
    with pytest.raises(NaNError):
        M.gravitational_attention(q * np.nan, q, q)
    with pytest.raises(ShapeError):
        M.softmax_attention(q, np.zeros((2, 4)), q)
    with pytest.raises(ShapeError):
        M.softmax_attention(q, q, np.zeros((3, 3)))
    with pytest.raises(EmptyInputError):
        M.softmax_attention(q, np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ToleranceError):
        M.multiscale_attention(q[None], q[None], q[None], gammas=[1.5])
    with pytest.raises(ToleranceError):
        M.gravitational_attention(q, q, q, mass_k=np.array([0.0, 1.0]))
    with pytest.raises(ConventionError):
        M.tropical_attention(q, q, np.full((2, 3), np.inf))  # +inf is not a max-plus value


# ------------------------------------------------------------------ ListOps / byte-level text (reference: LRA section)
def _ref_len(tree):
    return 1 if isinstance(tree, int) else 2 + sum(_ref_len(c) for c in tree[1])


def test_listops_against_the_reference_semantics():
    import random

    from tropix.attention.mechanisms import lra_data as D

    rng = random.Random(5)
    for _ in range(300):
        t = D.generate_tree(rng, 1, max_depth=6, max_args=5)
        toks = D.tree_tokens(t)
        assert len(toks) == _ref_len(t)
        assert D.tree_value(t) == _independent_value(t)
    ex = D.generate_listops(20, seed=2, min_length=20, max_length=60)
    assert len({s for s, _ in ex}) == 20 and all(20 < len(s.split()) < 60 for s, _ in ex)
    # the LRA string form (parentheses, "X" for "]") encodes like the plain form
    lra = "( ( ( [MED 1 ) 2 ) 4 ) X"
    assert D.listops_value(lra) == 2
    np.testing.assert_array_equal(D.encode_listops([(lra, 2)], 8).tokens, D.encode_listops([("[MED 1 2 4 ]", 2)], 8).tokens)
    assert D.encode_bytes("hé", 4).tolist() == [105, 196, 170, 0]


def test_listops_and_text_loader_hostile_input(tmp_path):
    """Regressions: '²' (str.isdigit is True, int() fails) was a raw ValueError; a ListOps example in the LRA string
    form ("(" tokens) a raw KeyError in encode_listops; a malformed .jsonl line or a non-UTF-8 file raw
    JSONDecodeError / KeyError / UnicodeDecodeError."""
    from tropix.attention.mechanisms import lra_data as D
    from tropix.errors import ParseError

    for bad in ("[MAX 2 ² ]", "[MAX 2 12 ]", "[MAX ]", "[MAX 2", "3 4", "", "eval('1')"):
        with pytest.raises(ParseError):
            D.listops_value(bad)
    with pytest.raises(ParseError):
        D.encode_listops([("[MAX 2 ² ]", 2)], 8)
    with pytest.raises(ShapeError):
        D.encode_listops([("[MAX 2 ]", 2)], -1)
    for name, data in (("a.jsonl", b"{bad\n"), ("b.jsonl", b'{"text": "x"}\n'), ("c.jsonl", b"[1]\n"),
                       ("d.tsv", b"\xff\xfe1\tx\n"), ("e.tsv", b"pos\tx\n")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ParseError):
            D.load_text_dataset(tmp_path / name)
    (tmp_path / "f.jsonl").write_bytes(b'{"text": "ok", "label": 1}\n\n')
    assert D.load_text_dataset(tmp_path / "f.jsonl") == [("ok", 1)]
    (tmp_path / "g.tsv").write_bytes(b"")
    with pytest.raises(EmptyInputError):
        D.load_text_dataset(tmp_path / "g.tsv")


def test_mechanism_modules_ignore_padding_and_check_token_ids():
    """Every torch wrapper: outputs of real tokens do not depend on padded positions, fully padded sequences give
    no NaN, gradients are finite.  Regression: ResonantAttention with a token id >= vocab_size raised a raw
    IndexError, and a negative id silently used the prime set of another token."""
    from tropix.attention.mechanisms import MECHANISMS, build_mechanism

    torch.manual_seed(0)
    km = torch.tensor([[True] * 5, [True, True, True, False, False]])
    tok = torch.randint(0, 32, (2, 5))
    for name in MECHANISMS:
        m = build_mechanism(name, 8, 2).double()
        kw = {"tokens": tok} if name == "resonant" else {}
        x = torch.randn(2, 5, 8, dtype=torch.float64, requires_grad=True)
        y = m(x, key_mask=km, **kw)
        x2 = x.detach().clone()
        x2[1, 3:] = 100.0
        y2 = m(x2, key_mask=km, **kw)
        assert torch.allclose(y[1, :3], y2[1, :3], atol=1e-10), name
        y.sum().backward()
        assert torch.isfinite(x.grad).all(), name
        y0 = m(x.detach(), key_mask=torch.tensor([[False] * 5, [True] * 5]), **kw)
        assert not torch.isnan(y0).any(), name
    r = build_mechanism("resonant", 8, 2)
    for bad in (torch.full((1, 3), 32), torch.tensor([[0, -1, 2]])):
        with pytest.raises(ShapeError):
            r(torch.randn(1, 3, 8), tokens=bad)


def test_tropical_linear_laplace_decoder_and_force_field_formulas():
    """tropical_linear = max_l(W_ol + x_l); Masset's decoder sum_s s/(s^2 + a^2) v_s u_s^T; the README force field.
    Regression: tropical_linear with x = +inf in max-plus (not a max-plus element) gave a silent NaN."""
    r = np.random.default_rng(18)
    x, W = r.normal(size=(3, 4)), r.normal(size=(5, 4))
    W[0, 1] = NINF
    np.testing.assert_array_equal(M.tropical_linear(x, W), np.max(W[None] + x[:, None, :], axis=-1))
    Wm = np.where(np.isinf(W), np.inf, W)
    np.testing.assert_array_equal(M.tropical_linear(x, Wm, semiring="min"), np.min(Wm[None] + x[:, None, :], axis=-1))
    with pytest.raises(ConventionError):
        M.tropical_linear(np.array([np.inf, 0.0]), np.array([[NINF, 0.0]]))
    with pytest.raises(ConventionError):
        M.tropical_linear(np.array([NINF, 0.0]), np.array([[np.inf, 0.0]]), semiring="min")
    g, tau, a = np.array([0.6, 0.9, 0.99]), [0, 1, 3, 7, 15], 2.0
    L = g[:, None] ** np.array(tau, dtype=float)[None, :]
    U, s, Vt = np.linalg.svd(L, full_matrices=False)
    P = sum(s[i] / (s[i] ** 2 + a ** 2) * np.outer(Vt[i], U[:, i]) for i in range(len(s)))
    np.testing.assert_allclose(M.laplace_decoder_matrix(g, tau, alpha=a), P, atol=1e-14)
    E, R = r.normal(size=(3, 2)), r.normal(size=(4, 2))
    f = M.force_field(E, R, p=2.0, eps=1e-3)
    for i in range(3):
        for j in range(4):
            Fv = E[i] - R[j]
            rr = np.linalg.norm(Fv)
            ref = Fv / (rr + 1e-8) * (E[i] @ R[j]) / (rr ** 2 + 1e-3)
            np.testing.assert_allclose(f.force[i, j], ref, rtol=1e-12)
    assert np.all(f.magnitude <= f.bound)


def test_softmax_mechanism_rejects_nan_bias_and_non_finite_scale():
    """Regression: bias with NaN and scale = nan/inf returned NaN outputs silently (0 * inf for orthogonal q, k)."""
    q = np.eye(3)
    with pytest.raises(NaNError):
        M.softmax_attention(q, q, q, bias=np.full((3, 3), np.nan))
    for sc in (math.nan, math.inf, -math.inf):
        with pytest.raises(ToleranceError):
            M.softmax_attention(q, q, q, scale=sc)
    # +inf bias entries are the documented "share the row" case, -inf the mask
    _, A = M.softmax_attention(q, q, q, bias=np.array([[np.inf, np.inf, 0.0], [NINF, 0.0, 0.0], [0.0] * 3]),
                               return_weights=True)
    np.testing.assert_allclose(A[0], [0.5, 0.5, 0.0])
    assert A[1, 0] == 0.0
    with pytest.raises(BackendMismatchError):
        M.softmax_attention(torch.tensor(q), torch.tensor(q), torch.tensor(q), bias=np.zeros((3, 3)))


def test_resonant_scores_reject_repeated_primes_in_a_token():
    """Regression: a prime listed twice in one token's slots was counted twice (Jaccard 2/1 > 1, score 1.33 with
    unit weights); states built by SparsePrimeState already refuse this."""
    ph = np.zeros((2, 2))
    Q = np.tile([1.0, 0, 0, 0], (2, 2, 1))
    with pytest.raises(ValueError):
        M.resonant_scores(np.array([[2, 2], [3, 5]]), ph, Q, np.array([[2, 7], [3, 5]]), ph, Q)
    with pytest.raises(ValueError):
        M.resonant_scores(torch.tensor([[2, 7], [3, 5]]), torch.tensor(ph), torch.tensor(Q),
                          torch.tensor([[3, 3], [0, 0]]), torch.tensor(ph), torch.tensor(Q))
    # empty slots (0) may repeat
    S = M.resonant_scores(np.array([[2, 0], [3, 0]]), ph, Q, np.array([[2, 0], [5, 0]]), ph, Q)
    np.testing.assert_allclose(S, [[1.0, 0.0], [0.0, 0.0]])


def test_integer_scores_beyond_2_53_are_not_false_ties():
    """Regression: int64 scores were rounded to float64, so [[2**60 + 1, 2**60]] was an exact tie (margin 0, T_eps 0,
    weights 1/2) although the lists of Python ints gave margin 1; the same array as exact ints is the reference."""
    s = np.array([[2**60 + 1, 2**60, -(2**60)]])
    ref = score_tropicality(s.astype(object), eps=0.05)
    for x in (s, torch.tensor(s)):
        m = score_margin(x)
        assert np.asarray(m).dtype == np.float64 and np.asarray(m).tolist() == [1.0]
        assert np.asarray(sparsity_temperature(x, 0.05)).tolist() == pytest.approx(ref.sparse_temperature.tolist())
        assert ref.sparse_temperature[0] == pytest.approx(1 / math.log(19), rel=1e-13)
        w = np.asarray(softmax_weights(x))
        np.testing.assert_allclose(w, [[1 / (1 + math.e**-1), 1 / (1 + math.e), 0.0]], rtol=1e-14)
    h = score_tropicality(s, eps=0.05)
    for f in ("max_weight", "entropy", "effective_support", "margin", "sparse_temperature"):
        np.testing.assert_allclose(getattr(h, f), getattr(ref, f), rtol=1e-14)
    assert score_margin(np.array([[3, 1]])).tolist() == [2.0]  # small integer arrays: unchanged


def test_overflowing_scores_raise_float_overflow_error():
    """Regression: scale * q.k beyond float64 became +inf (NaN max weight and margin, support 0) or -inf (a visible
    key silently masked; two such keys made the query 'see no key')."""
    from tropix.errors import FloatOverflowError

    for k in ([[1e200], [1.0]], [[-1e200], [-1e200]]):
        with pytest.raises(FloatOverflowError):
            tropicality([[1e200]], k, scale=1.0)
        with pytest.raises(FloatOverflowError):
            attention_entanglement([[1e200]], k, scale=1.0)
    h = tropicality([[1.0]], [[1.0], [2.0]], bias=[[-np.inf, 0.0]], scale=1.0)  # a -inf bias still masks
    assert h.margin.tolist() == [math.inf]


def test_entanglement_dims_must_be_integer_sequences():
    """Regression: row/col dims (2.5, 3.2), whose product is 8, or a bare int, were raw TypeErrors from the reshape."""
    from tropix.errors import ArgumentTypeError

    q, k = np.ones((4, 2)), np.ones((8, 2))
    with pytest.raises(ArgumentTypeError):
        attention_entanglement(q, k, row_dims=(2, 2), col_dims=(2.5, 3.2))
    with pytest.raises(ShapeError):
        attention_entanglement(q, k, row_dims=4, col_dims=(8,))
    assert attention_entanglement(q, k, row_dims=[np.int64(4)], col_dims=(2, 4))["dims"] == (4, 2, 4)


def test_score_slice_rejects_infinite_plane_vectors():
    """Regression: an inf in q0 (or k) gave "coefficients contains NaN" (from inf * 0) and a RuntimeWarning."""
    for args in (([[1.0, 0]], [0, np.inf], [1, 0], [0, 1]), (np.array([[np.inf, 0]]), [0, 0], [1, 0], [0, 1])):
        with pytest.raises(NaNError, match="must be finite"):
            score_slice(*args)
    assert str(score_slice([[10**400, 0], [0, 1]], [0, 0], [1, 0], [0, 1])).startswith("max(y, ")  # exact: no check


def test_key_geometry_queries_must_be_rows_of_the_keys_width():
    """Regression: one query given as a flat vector said "got shape ()" from deep inside argmax_cell."""
    from tropix.attention.analysis import key_geometry
    from tropix.errors import ShapeError

    k = [[0, 0], [1, 0], [0, 1]]
    for bad in ([1, 2], [[1, 2, 3]], [[[1, 2]]]):
        with pytest.raises(ShapeError, match="queries must be"):
            key_geometry(k, queries=bad)
    assert [sorted(c) for c in key_geometry(k, queries=[[1, 2]]).cells] == [[2]]


def test_a_boolean_temperature_is_refused():
    """Regression: temperature=True ran as T = 1 (float(True))."""
    from tropix.attention.analysis import score_tropicality, softmax_weights
    from tropix.errors import ToleranceError

    for f in (lambda: softmax_weights([1.0, 2.0], True), lambda: score_tropicality([[1.0, 2.0]], temperature=True)):
        with pytest.raises(ToleranceError, match="temperature must be a number"):
            f()


def test_key_geometry_reports_undecided_adjacency():
    """A pair whose adjacency argmax_lp cannot decide (a key 2**-50 off the centre of a square) read as plainly
    not adjacent in key_geometry's boolean matrix; adjacency_undecided marks it, decided pairs keep False."""
    from tropix.attention.analysis import key_geometry
    from tropix.tropical.argmax_lp import are_adjacent

    K = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.5 + 2.0**-50]])
    G = key_geometry(K, adjacency=True)
    v = G.vertices.tolist()
    for a, i in enumerate(v):
        for b, j in enumerate(v):
            if i < j:
                st = are_adjacent(K, i, j).status
                assert G.adjacency_undecided[a, b] == (st == "undecided") == G.adjacency_undecided[b, a]
                assert G.adjacency[a, b] == (st == "adjacent")
    square = key_geometry(K[:4], adjacency=True)
    assert not square.adjacency_undecided.any() and square.adjacency.sum() == 8  # (four walls, both ways)
