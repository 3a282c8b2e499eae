"""One definition of the per-query tropicality statistics (tropix.attention.analysis), checked against the
definitions directly: bisection on the top weight, sorted partial sums, sorted scores, closed forms."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import to_np
from tropix.attention import tropicality
from tropix.attention.analysis import (
    effective_support,
    extended_quantile,
    score_margin,
    score_tropicality,
    softmax_weights,
    sparsity_temperature,
)
from tropix.errors import ConventionError, EmptyInputError, NaNError, ShapeError, ToleranceError

NEG = -np.inf


# --------------------------------------------------------------------------- brute force, from the definitions
def top_weight(s, T):
    """Largest softmax(s/T) weight of the visible (finite) scores of one row, by the textbook formula."""
    s = np.asarray([x for x in s if x > NEG], dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        w = np.exp((s - s.max()) / T)
    return w.max() / w.sum()


def brute_temperature(s, eps):
    """sup {T > 0 : top weight >= 1 - eps} by bisection on log T, straight from the definition."""
    vis = [x for x in s if x > NEG]
    if not vis:
        return math.nan

    def ok(T):
        return top_weight(s, T) >= 1 - eps

    lo, hi = 5e-324, 1e300  # every positive float64 temperature
    if not ok(lo):
        return 0.0
    if ok(hi):
        return math.inf
    for _ in range(400):
        mid = math.sqrt(lo) * math.sqrt(hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def same(a, b, rtol):
    if math.isnan(b):
        return math.isnan(a)
    if b in (0.0, math.inf):
        return a == b
    return abs(a - b) <= rtol * b


# eps values away from 1 - 1/m (where float underflow makes the brute force unreliable at tiny T)
EPS = st.sampled_from([0.001, 0.01, 0.05, 0.2, 0.45, 0.55, 0.7, 0.85])
SCORE_ROWS = arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 7)),
    elements=st.one_of(st.integers(-4, 4).map(float), st.floats(-6, 6, width=64), st.just(NEG)),
)


@given(SCORE_ROWS, EPS, st.sampled_from([0.1, 1.0, 7.0]))
@settings(max_examples=120)
def test_sparsity_temperature_is_bisection_on_the_definition(s, eps, scale):
    s = s * scale
    T = sparsity_temperature(s, eps)
    assert T.shape == s.shape[:1]
    for i, row in enumerate(s):
        want = brute_temperature(row, eps)
        assert same(T[i], want, 1e-9), (row, eps, T[i], want)
        if 0 < T[i] < math.inf:  # the threshold itself: sparse just below, not sparse just above
            assert top_weight(row, T[i] * (1 - 1e-9)) >= 1 - eps
            assert top_weight(row, T[i] * (1 + 1e-9)) < 1 - eps


@pytest.mark.parametrize("eps", [0.001, 0.01, 0.1, 0.3, 0.49])
@pytest.mark.parametrize("g", [1e-8, 0.3, 1.0, 25.0, 1e6])
def test_two_keys_closed_form(g, eps):
    for row in ([0.0, -g], [5.0 + g, 5.0, NEG], [NEG, 1e3, 1e3 - g]):
        gap = max(row) - sorted(row)[-2]  # g up to the rounding of the scores themselves
        assert sparsity_temperature([row], eps)[0] == pytest.approx(gap / math.log((1 - eps) / eps), rel=1e-13)
    # two keys at gap g below the best: 2 exp(-g/T) = eps/(1-eps)
    assert sparsity_temperature([[0.0, -g, -g]], eps)[0] == pytest.approx(g / math.log(2 * (1 - eps) / eps), rel=1e-13)


def test_against_50_digit_arithmetic():
    import mpmath as mp  # (installed with sympy)

    mp.mp.dps = 50
    rng = np.random.default_rng(11)
    for trial in range(12):
        n = int(rng.integers(2, 40))
        s = np.concatenate([[0.0], -np.exp(rng.uniform(-25, 25, size=n))])  # gaps over ~20 orders of magnitude
        eps = float(rng.choice([1e-9, 1e-3, 0.05, 0.4]))
        c = mp.mpf(eps) / (1 - mp.mpf(eps))
        gaps = [mp.mpf(-x) for x in s[1:]]
        f = lambda T: mp.log(mp.fsum(mp.exp(-g / T) for g in gaps)) - mp.log(c)  # noqa: E731
        t = sparsity_temperature([s], eps)[0]
        b = mp.mpf(brute_temperature(s, eps))  # float bisection on the definition: a bracket for the 50-digit root
        exact = mp.findroot(f, (b * (1 - mp.mpf(10) ** -6), b * (1 + mp.mpf(10) ** -6)), solver="anderson")
        assert abs(float(mp.mpf(t) / exact - 1)) < 1e-13


def test_edge_cases_by_hand():
    rows = [
        [3.0, NEG, NEG],  # one visible key: weight 1 at every T
        [NEG, NEG, NEG],  # no visible key: undefined
        [1.0, 1.0, 0.0],  # exact tie of the best: the top weight never exceeds 1/2
        [1.0, 1.0, 1.0],  # all tied: weights 1/3 forever
        [2.0, NEG, 1.0],  # masked keys take no part
    ]
    T = sparsity_temperature(rows, 0.01)
    assert T[0] == math.inf and math.isnan(T[1]) and T[2] == 0.0 and T[3] == 0.0
    assert T[4] == pytest.approx(1 / math.log(99), rel=1e-13)
    # large eps: 1/m >= 1 - eps makes ties eps-sparse
    assert sparsity_temperature([[1.0, 1.0]], 0.5)[0] == math.inf  # weights (1/2, 1/2) >= 1/2 forever
    assert sparsity_temperature([[1.0, 1.0, 0.0]], 0.5)[0] == 0.0  # 1/(2 + e^{-1/T}) < 1/2 for every T > 0
    assert sparsity_temperature([[0.0, -1.0]], 0.5)[0] == math.inf  # two keys, eps >= 1/2: never below 1/2
    t = sparsity_temperature([[1.0, 1.0, 0.0]], 0.6)[0]  # 1/(2 + e^{-1/T}) >= 0.4  <=>  e^{-1/T} <= 1/2
    assert t == pytest.approx(1 / math.log(2), rel=1e-13)
    # extreme gaps: subnormal and huge (T_eps scales with the gaps)
    assert sparsity_temperature([[0.0, -1e-310]], 0.01)[0] == pytest.approx(1e-310 / math.log(99), rel=1e-9)
    assert sparsity_temperature([[0.0, -1e300]], 0.01)[0] == pytest.approx(1e300 / math.log(99), rel=1e-13)
    # gap ratios beyond float64 (a subnormal gap beside ordinary ones): e^{-1e-310/T} ~ 1, so e^{-g/T} <= c - 1
    assert sparsity_temperature([[0.0, -1e-310, -1.0]], 0.6)[0] == pytest.approx(1 / math.log(2), rel=1e-13)
    assert sparsity_temperature([[0.0, -5e-324, -1e300]], 0.55)[0] == pytest.approx(1e300 / math.log(4.5), rel=1e-13)
    # the tie is exact equality: a near tie has a small positive temperature proportional to the gap
    assert sparsity_temperature([[1.0, 1.0 - 1e-12]], 0.01)[0] == pytest.approx(1e-12 / math.log(99), rel=1e-3)


@given(SCORE_ROWS, EPS, st.floats(0.01, 100))
@settings(max_examples=40)
def test_sparsity_temperature_scales_and_ignores_masked_keys(s, eps, a):
    s = np.where(np.abs(s) < 1e-100, 0.0, s)  # (subnormal gaps lose relative precision when scaled)
    T = sparsity_temperature(s, eps)
    Ta = sparsity_temperature(s * a, eps)
    fin = np.isfinite(T) & (T > 0)
    np.testing.assert_allclose(Ta[fin], a * T[fin], rtol=1e-11)
    assert np.array_equal(np.isnan(Ta), np.isnan(T)) and np.array_equal(Ta[~fin & ~np.isnan(T)], T[~fin & ~np.isnan(T)])
    padded = np.concatenate([s, np.full((s.shape[0], 2), NEG)], axis=1)
    np.testing.assert_allclose(sparsity_temperature(padded, eps), T, rtol=1e-14)  # (summation order only)


def test_min_plus_is_max_plus_of_the_negated_scores():
    rng = np.random.default_rng(5)
    s = rng.normal(size=(6, 5))
    s[0, 1] = s[0, 3] = s[0].min()  # a min-plus tie
    s[1, 2] = np.inf  # masked in min-plus
    np.testing.assert_array_equal(sparsity_temperature(s, 0.05, semiring="min"), sparsity_temperature(-s, 0.05))
    assert sparsity_temperature(s, 0.05, semiring="min")[0] == 0.0
    np.testing.assert_array_equal(score_margin(s, semiring="min"), score_margin(-s))
    np.testing.assert_array_equal(softmax_weights(s, 0.5, semiring="min"), softmax_weights(-s, 0.5))


def test_exact_input_decides_ties_exactly():
    third = Fraction(1, 3)
    tiny = Fraction(1, 10**30)  # 1/3 and 1/3 - 1e-30 are the same float
    rows = [[third, third - tiny], [third, third], [2, NEG]]
    T = sparsity_temperature(rows, 0.01)
    assert T.dtype == np.float64
    assert T[0] == pytest.approx(1e-30 / math.log(99), rel=1e-12) and T[1] == 0.0 and T[2] == math.inf
    assert sparsity_temperature([[float(third), float(third - tiny)]], 0.01)[0] == 0.0  # the floats tie
    m = score_margin(rows)
    assert m[0] == tiny and m[1] == 0 and m[2] == math.inf


def test_bad_input_raises_specific_errors():
    with pytest.raises(ConventionError):
        sparsity_temperature([[np.inf, 0.0]], 0.1)  # +inf is not a max-plus score
    with pytest.raises(ConventionError):
        sparsity_temperature([[NEG, 0.0]], 0.1, semiring="min")
    with pytest.raises(NaNError):
        sparsity_temperature([[np.nan, 0.0]], 0.1)
    for eps in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ToleranceError):
            sparsity_temperature([[1.0, 0.0]], eps)
    with pytest.raises(EmptyInputError):
        sparsity_temperature(np.zeros((3, 0)), 0.1)
    with pytest.raises(ShapeError):
        sparsity_temperature(1.0, 0.1)
    with pytest.raises(ToleranceError):
        effective_support([[1.0]], 1.0)
    with pytest.raises(ConventionError):
        effective_support([[0.5, -0.1]], 0.1)
    with pytest.raises(ToleranceError):
        softmax_weights([[1.0]], temperature=0.0)
    with pytest.raises(ShapeError):
        score_tropicality([1.0, 2.0])


def test_backends_get_their_own_arrays_back(backend):
    s = [[0.0, -1.0, NEG], [2.0, 2.0, 1.0], [NEG, NEG, 5.0]]
    want_T = sparsity_temperature(np.array(s), 0.01)
    out = sparsity_temperature(backend(s), 0.01)
    assert type(out) is type(backend([0.0]))
    np.testing.assert_array_equal(to_np(out), want_T)
    np.testing.assert_array_equal(to_np(score_margin(backend(s))), score_margin(np.array(s)))
    np.testing.assert_array_equal(to_np(softmax_weights(backend(s))), softmax_weights(np.array(s)))
    W = softmax_weights(np.array(s))
    np.testing.assert_array_equal(to_np(effective_support(backend(W), 0.1)), effective_support(W, 0.1))


# --------------------------------------------------------------------------- effective support, margin, weights
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 8)), elements=st.floats(0, 1)),
       st.floats(0, 0.9))
def test_effective_support_is_the_shortest_sorted_prefix(w, eps):
    w[0, 0] = 0.0 if w.shape[0] > 1 else w[0, 0]
    k = effective_support(w, eps)
    for i, row in enumerate(w):
        tot = row.sum()
        srt = np.sort(row)[::-1]
        if tot == 0:
            assert k[i] == 0
            continue
        want = next(j + 1 for j in range(len(srt)) if srt[: j + 1].sum() >= (1 - eps) * tot - 1e-12 * tot)
        assert k[i] == want


@given(st.lists(st.lists(st.fractions(0, 1, max_denominator=12), min_size=1, max_size=6), min_size=1, max_size=3)
       .filter(lambda r: len({len(x) for x in r}) == 1),
       st.sampled_from([0, Fraction(1, 10), Fraction(1, 3), Fraction(1, 2)]))
def test_effective_support_exact_weights(rows, eps):
    k = effective_support(rows, float(eps))
    for i, row in enumerate(rows):
        tot = sum(row)
        srt = sorted(row, reverse=True)
        want = 0 if tot == 0 else next(j + 1 for j in range(len(srt)) if sum(srt[: j + 1]) >= (1 - Fraction(float(eps))) * tot)
        assert k[i] == want


def test_effective_support_slack_and_eps_zero():
    assert effective_support([[0.99, 0.01]], 0.01).tolist() == [1]
    assert effective_support([[0.99 - 1e-14, 0.01 + 1e-14]], 0.01).tolist() == [1]  # rounding slack
    assert effective_support([[0.98, 0.02]], 0.01).tolist() == [2]
    assert effective_support([[0.5, 0.3, 0.2, 0.0]], 0.0).tolist() == [3]  # eps = 0: the positive weights
    assert effective_support([3.0, 1.0], 0.3).tolist() == 1  # unnormalised weights, one row


@given(SCORE_ROWS)
def test_score_margin_from_the_sorted_scores(s):
    m = score_margin(s)
    for i, row in enumerate(s):
        vis = np.sort(row[row > NEG])[::-1]
        if vis.size == 0:
            assert math.isnan(m[i])
        elif vis.size == 1:
            assert m[i] == math.inf
        else:
            assert m[i] == vis[0] - vis[1]


@given(SCORE_ROWS, st.sampled_from([0.25, 1.0, 3.0]))
def test_softmax_weights_textbook(s, T):
    W = softmax_weights(s, T)
    for i, row in enumerate(s):
        vis = row > NEG
        if not vis.any():
            assert np.all(W[i] == 0)
            continue
        z = np.exp((row[vis] - row[vis].max()) / T)
        np.testing.assert_allclose(W[i][vis], z / z.sum(), rtol=1e-12, atol=1e-300)
        assert np.all(W[i][~vis] == 0)


# --------------------------------------------------------------------------- quantiles with infinities
@given(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.inf), st.just(-math.inf)), min_size=1, max_size=9),
       st.floats(0, 1))
def test_extended_quantile_is_the_limit_of_numpy_quantile(x, q):
    got = extended_quantile(x, q)
    assert not math.isnan(got)
    if all(map(math.isfinite, x)):
        assert got == float(np.quantile(x, q))
    # numpy's linear rule in exact arithmetic with +-inf replaced by +-B, B astronomically large
    B = Fraction(10) ** 1000
    v = sorted(B if t == math.inf else -B if t == -math.inf else Fraction(t) for t in x)
    h = (len(v) - 1) * Fraction(q)
    i = min(int(h), len(v) - 1)
    ref = v[i] if i + 1 >= len(v) else v[i] + (h - i) * (v[i + 1] - v[i])
    if abs(ref) > Fraction(10) ** 500:
        assert got == (math.inf if ref > 0 else -math.inf)
    else:
        assert got == pytest.approx(float(ref), rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- tropicality: q, k and scores agree
@given(st.integers(0, 10**6), st.sampled_from([1.0, 0.3, 3.0]))
@settings(max_examples=20)
def test_tropicality_equals_the_statistics_of_its_scores(seed, temp):
    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(7, 4)) * 2, rng.normal(size=(9, 4))
    if seed % 3 == 0:
        k[1] = k[0]  # ties for some queries
    mask = rng.random((7, 9)) < 0.7
    mask[0] = False
    mask[1] = False
    mask[1, 4] = True  # one query sees one key, one sees none
    h = tropicality(q, k, mask=mask, scale=0.5, eps=0.05, temperature=temp)
    S = np.where(mask, 0.5 * q @ k.T, NEG)
    g = score_tropicality(S, eps=0.05, temperature=temp)
    for f in ("max_weight", "entropy", "effective_support", "margin", "sparse_temperature"):
        np.testing.assert_array_equal(getattr(h, f), getattr(g, f), err_msg=f)
    W = softmax_weights(S, temp)
    np.testing.assert_allclose(h.max_weight, W.max(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(h.effective_support, effective_support(W, 0.05))
    np.testing.assert_array_equal(h.margin, score_margin(S))
    np.testing.assert_array_equal(h.sparse_temperature, sparsity_temperature(S, 0.05))
    assert h.max_weight[0] == 0 and h.effective_support[0] == 0 and math.isnan(h.sparse_temperature[0])
    assert h.max_weight[1] == 1 and h.effective_support[1] == 1 and h.sparse_temperature[1] == math.inf
    summ = h.summary()  # over the queries that see a key: no NaN
    assert not any(math.isnan(v) for k_, v in summ.items() if k_ != "margin_quantiles")
    assert summ["median_sparse_temperature"] == extended_quantile(h.sparse_temperature[1:], 0.5)
