"""Fused bfloat16 screening kernel (_bf16.screen_block): the GEMM's scores never stored, against scores() and a
NumPy reimplementation of the scan (running maximum, hits s >= thr, exponent-bit weights of the others)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import round_fraction, needs_bf16
from tropix.attention import _bf16, _screen_numba
from tropix.attention._bf16 import BF16Keys, available, pack_keys, pack_queries, scores, screen_block
from tropix.errors import ShapeError, UnsupportedCPUError


F32 = np.float32


def _weights(S, mref):
    """w(s - mref) as _screen_numba.exp_bits defines it (its constants): the float32 difference d, then
    max(d C, LO) + BIAS (the product exact in float64, the sum rounded to float64, then to float32: the
    correctly rounded value, see test_exp_bits_is_rounded_once)."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = (S.astype(F32) - mref.astype(F32)).astype(F32).astype(np.float64)
        t = np.maximum(x * float(_screen_numba.EXP_C), float(_screen_numba.EXP_LO)) + float(_screen_numba.EXP_BIAS)
        return t.astype(F32).astype(np.int32).view(F32)


def _reference(S, mref, thr, bmax0):
    """(bmax, hit set, exact float64 sum of the weights added) from the scores S (keys x queries)."""
    bmax = np.maximum(bmax0, S.max(axis=0, initial=-np.inf))
    hit = S >= thr[None, :]
    j, r = np.nonzero(hit)
    hits = set(zip(j.tolist(), r.tolist(), S[j, r].tolist()))
    wsum = np.where(hit, 0.0, _weights(S, mref).astype(np.float64)).sum(axis=0)
    return bmax, hits, wsum


def _buffers(m, cap, rng, pad=5):
    """Operands as views into larger arrays filled with sentinels: nothing past m / the count may change."""
    big = {
        "acc": np.full(m + pad, 7.0, dtype=F32),
        "bmax": np.full(m + pad, 7.0, dtype=F32),
        "hk": np.full(cap + pad, -7, dtype=np.int32),
        "hq": np.full(cap + pad, -7, dtype=np.int32),
        "hv": np.full(cap + pad, -7.0, dtype=F32),
    }
    big["acc"][:m] = rng.uniform(0, 2, m).astype(F32) * (rng.uniform(size=m) < 0.5)
    big["bmax"][:m] = np.where(rng.uniform(size=m) < 0.5, -np.inf, rng.normal(0, 10, m)).astype(F32)
    return big


def _run_and_check(kb, pq, S, mref, thr, rng, cap=None, joff=0, kblock=_bf16.KBLOCK):
    n, m = S.shape
    cap = n * m if cap is None else cap
    big = _buffers(m, cap, rng)
    acc0 = big["acc"][:m].copy()
    bmax0 = big["bmax"][:m].copy()
    bmax_ref, hits_ref, wsum = _reference(S, mref, thr, bmax0)
    c = screen_block(kb, pq, mref, thr, big["acc"][:m], big["bmax"][:m], big["hk"][:cap], big["hq"][:cap],
                     big["hv"][:cap], joff=joff, kblock=kblock)
    assert c == len(hits_ref)
    got = set(zip((big["hk"][:c] - joff).tolist(), big["hq"][:c].tolist(), big["hv"][:c].tolist()))
    assert got == hits_ref
    assert np.array_equal(big["bmax"][:m], bmax_ref.astype(F32))  # bit-identical (no NaN here)
    # acc: the float32 sum of the same weights, any order: within the rounding factor 1 + (n + 1) 2^-23
    exact = acc0.astype(np.float64) + wsum
    f = (n + 1) * 2.0**-23
    acc = big["acc"][:m].astype(np.float64)
    assert np.all(acc <= exact * (1 + f)) and np.all(exact <= acc * (1 + f))
    # nothing written past the query count or the hit count
    assert np.all(big["acc"][m:] == 7.0) and np.all(big["bmax"][m:] == 7.0)
    assert np.all(big["hk"][c:] == -7) and np.all(big["hq"][c:] == -7) and np.all(big["hv"][c:] == -7.0)
    return c


def _problem(n, d, m, seed, std=10.0):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((n, d))
    q = rng.standard_normal((m, d)) * (std / np.sqrt(max(d, 1)))
    return rng, k, q


def _exact_bits(d) -> int:
    """The weight bits of a float32 difference ``d``: max(d C, LO) + BIAS in exact arithmetic, rounded once to
    float32 (what the kernel's FMA does), truncated."""
    C, LO, BIAS = (Fraction(float(x)) for x in (_screen_numba.EXP_C, _screen_numba.EXP_LO, _screen_numba.EXP_BIAS))
    t = round_fraction(max(Fraction(float(d)) * C, LO) + BIAS, 24)
    return int(t)  # t > 0: int() truncates


_F32_NONPOS = st.floats(min_value=-1e6, max_value=0.0, width=32, allow_subnormal=True)


@settings(max_examples=400, deadline=None)
@given(d=st.one_of(_F32_NONPOS, st.floats(-200.0, 0.0, width=32), st.integers(-2**31, 0).map(
    lambda i: np.float32(i / float(_screen_numba.EXP_C)))))
def test_exp_bits_is_rounded_once(d):
    # exp_bits (scan_block) and _weights_numpy (the NumPy reference) evaluate max(d C, LO) + BIAS in float64 and
    # round to float32: bit for bit the single rounding of the exact value, as the kernel's FMA computes it
    # (and checked exhaustively for every float32 d <= 0 with |d C| <= 2^31 when the construction was chosen)
    d = np.float32(d)
    want = _exact_bits(d)
    assert int(_screen_numba.exp_bits(d)) == want
    assert int(_bf16._weights_numpy(np.array([d], F32), np.float32(0.0)).view(np.int32)[0]) == want


@settings(max_examples=300, deadline=None)
@given(s=st.floats(-1e4, 1e4, width=32), gap=st.one_of(st.floats(0.0, 100.0, width=32),
                                                         st.floats(0.0, 2.0**-10, width=32)))
def test_exp_bits_bound_exp(s, gap):
    # the certificate: exp(s - m) <= w <= 1.062 exp(s - m) above the clamp (s <= m, float32)
    s = np.float32(s)
    m = np.float32(np.float64(s) + np.float64(gap))
    if not s <= m:
        m = s
    w = np.array([_screen_numba.exp_bits(np.float32(s - m))], np.int32).view(F32)[0]
    e = np.exp(np.longdouble(s) - np.longdouble(m))
    assert np.longdouble(w) >= e
    if e > 2.0**-125:
        assert np.longdouble(w) <= e * np.longdouble(1.062)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e3, 1e5])
def test_exp_bits_bound_exp_dense(scale):
    # the same bound on many differences at once (random, tiny, and a sweep of 1/64 steps down to the clamp),
    # through _weights_numpy (the same bits as exp_bits: checked on a sample)
    rng = np.random.default_rng(int(scale * 11) % 1000)
    x = np.concatenate([-rng.exponential(5.0, 20000), -np.abs(rng.normal(size=20000)) * 1e-3,
                        np.arange(-87 * 64, 1) / 64.0])
    m = np.resize(np.float32(scale * rng.normal(size=20000)), x.shape).astype(F32)
    s = np.minimum((m.astype(np.float64) + x).astype(F32), m)
    w = _bf16._weights_numpy(s, m)
    pick = rng.choice(len(s), 300, replace=False)
    bits = [_screen_numba.exp_bits(np.float32(a - b)) for a, b in zip(s[pick], m[pick])]
    assert np.array_equal(w.view(np.int32)[pick], bits)
    ex = np.exp(s.astype(np.longdouble) - m.astype(np.longdouble))
    w = w.astype(np.longdouble)
    assert np.all(w >= ex)
    live = ex > 2.0**-125
    assert np.all(w[live] <= ex[live] * np.longdouble(1.062))
    assert np.all(w[~live] >= 2.0**-126)


@needs_bf16
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), scale=st.sampled_from([0.01, 1.0, 30.0, 1e3]), m=st.integers(1, 70))
def test_kernel_weights_bit_for_bit(seed, scale, m):
    # one key, no hits: each query's sum is 0 + w(s - mref), so the kernel's weight bits are seen exactly
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((1, 24))
    q = rng.standard_normal((m, 24)) * scale
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)[0]
    mref = (S.astype(np.float64) + rng.exponential(scale, m) * rng.choice([1e-4, 1.0, 100.0], m)).astype(F32)
    mref = np.maximum(mref, S)
    thr = mref  # the largest allowed: only a score equal to its mref is a hit
    hit = S >= thr
    acc, bmax = np.zeros(m, F32), np.full(m, -np.inf, F32)
    e = np.empty(m, np.int32)
    c = screen_block(pk, pq, mref, thr, acc, bmax, e, e.copy(), np.empty(m, F32))
    assert c == int(hit.sum())
    want = _bf16._weights_numpy(S, mref)
    got = acc.view(np.int32)
    assert np.array_equal(got[~hit], want.view(np.int32)[~hit])
    assert np.all(acc[hit] == 0)
    assert np.array_equal(want.view(np.int32), np.array([_screen_numba.exp_bits(np.float32(x)) for x in S - mref]))


def test_weight_constants_are_those_of_the_scan():
    for a, b in ((_bf16._EXP_C, _screen_numba.EXP_C), (_bf16._EXP_LO, _screen_numba.EXP_LO),
                 (_bf16._EXP_BIAS, _screen_numba.EXP_BIAS)):
        assert np.float32(a).view(np.int32) == np.float32(b).view(np.int32)


@needs_bf16
@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 40), m=st.integers(1, 70), seed=st.integers(0, 2**31),
       margin=st.sampled_from([0.0, 3.0, 12.0, 30.0]), mode=st.sampled_from(["packed", "f64", "f32"]),
       kblock=st.sampled_from([1, 4, 7, 4096]), joff=st.sampled_from([0, 5, 2**30]))
def test_screen_block_matches_scores_and_numpy(n, d, m, seed, margin, mode, kblock, joff):
    rng, k, q = _problem(n, d, m, seed)
    pq = pack_queries(q)
    S = scores(pack_keys(k), pq)
    # reference maxima a little above or at the block's own maxima (finite), thresholds margin below
    mref = (S.max(axis=0) + rng.choice([0.0, 0.5, 4.0], size=m)).astype(F32)
    thr = (mref - F32(margin)).astype(F32)
    kb = {"packed": pack_keys(k), "f64": k, "f32": k.astype(F32)}[mode]
    if mode == "f32":  # the kernel rounds float32 keys itself: the same scores as packing them
        S = scores(pack_keys(k.astype(F32)), pq)
    _run_and_check(kb, pq, S, mref, thr, rng, joff=joff, kblock=kblock)


@needs_bf16
@pytest.mark.parametrize("n,d,m", [(1, 1, 1), (1, 64, 256), (5, 3, 17), (6, 7, 15), (11, 64, 33), (12, 33, 64),
                                   (13, 1, 65), (64, 65, 100), (301, 32, 48), (1037, 64, 256),
                                   (203, 200, 200)])
def test_screen_block_shapes(n, d, m):
    # odd m (masked lanes of the last vector), odd d (padding), single keys and tails of the 5-key tile,
    # several L1 groups of queries (d = 200)
    rng, k, q = _problem(n, d, m, 1000 * n + m)
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    mref = S.max(axis=0).astype(F32)
    c = _run_and_check(pk, pq, S, mref, (mref - F32(12.0)).astype(F32), rng)
    assert c >= m  # every column's maximum is a hit
    # a block of a larger packed array, as the screen uses it, and every third key (strided rows)
    if n > 3:
        sub = BF16Keys(pk.bits[2:n - 1], d)
        _run_and_check(sub, pq, S[2:n - 1], mref, (mref - F32(12.0)).astype(F32), rng, joff=2)
        _run_and_check(BF16Keys(pk.bits[::3], d), pq, S[::3], mref, (mref - F32(12.0)).astype(F32), rng)


@needs_bf16
def test_ties_are_hits():
    rng, k, q = _problem(50, 16, 37, 7)
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    # thresholds exactly equal to scores: the column maxima and, below them, a score picked per column
    j = rng.integers(0, 50, size=37)
    thr = S[j, np.arange(37)].astype(F32)
    mref = S.max(axis=0).astype(F32)
    c = _run_and_check(pk, pq, S, mref, thr, rng)
    assert c >= 37
    c2 = _run_and_check(pk, pq, S, mref, mref.copy(), rng)
    assert c2 == int((S == S.max(axis=0)).sum())  # only the maxima (and their ties)


@needs_bf16
def test_clamped_weights_of_huge_negative_scores():
    # scores around -1e30 against a reference maximum near 0: every weight is the clamp 2^-126 (1 + 2^-15)
    wc = np.array([2**23 + 256], dtype=np.int32).view(F32)[0]
    assert wc == F32(2.0**-126 * (1 + 2.0**-15))
    n, d, m = 23, 8, 19
    rng, k, q = _problem(n, d, m, 3)
    k = -np.abs(k) * 1e15
    q = np.abs(q) * 1e15
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    assert np.all(S < -1e27) and np.all(np.isfinite(S))
    mref = np.zeros(m, F32)
    acc, bmax = np.zeros(m, F32), np.full(m, -np.inf, F32)
    hk, hq, hv = np.empty(4, np.int32), np.empty(4, np.int32), np.empty(4, F32)
    c = screen_block(pk, pq, mref, np.full(m, -1.0, F32), acc, bmax, hk, hq, hv)
    assert c == 0
    assert np.array_equal(acc, np.full(m, n * np.float64(wc), F32))
    assert np.array_equal(bmax, S.max(axis=0))
    # also with a huge reference maximum ((s - mref) EXP_C overflows to -inf in float32), then collect-all
    # thresholds (every key a hit: no weight at all)
    acc[:] = 0
    big = np.full(m, 3e38, F32)
    c = screen_block(pk, pq, big, np.full(m, 3e38, F32), acc, bmax, hk, hq, hv)
    assert c == 0 and np.array_equal(acc, np.full(m, n * np.float64(wc), F32))
    hk, hq, hv = np.empty(n * m, np.int32), np.empty(n * m, np.int32), np.empty(n * m, F32)
    acc[:] = 0
    c = screen_block(pk, pq, mref, np.full(m, -np.inf, F32), acc, bmax, hk, hq, hv)
    assert c == n * m and np.all(acc == 0)


@needs_bf16
def test_overflow_returns_minus_one():
    rng, k, q = _problem(200, 32, 40, 11)
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    mref = S.max(axis=0).astype(F32)
    thr = (mref - F32(15.0)).astype(F32)
    want = int((S >= thr).sum())
    assert want > 50
    for cap in (want, want + 1):
        _run_and_check(pk, pq, S, mref, thr, rng, cap=cap)
    for cap in (0, 1, want // 2, want - 1):
        acc, bmax = np.zeros(40, F32), np.full(40, -np.inf, F32)
        hk, hq, hv = np.empty(cap, np.int32), np.empty(cap, np.int32), np.empty(cap, F32)
        assert screen_block(pk, pq, mref, thr, acc, bmax, hk, hq, hv) == -1
    # no hits at all fits any capacity, even 0
    e = np.empty(0, np.int32)
    acc, bmax = np.zeros(40, F32), np.full(40, -np.inf, F32)
    assert screen_block(pk, pq, mref + F32(1.0), mref + F32(1.0), acc, bmax, e, e.copy(), np.empty(0, F32)) == 0


@needs_bf16
def test_degenerate_sizes():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((3, 4))
    pq = pack_queries(q)
    m = 3
    acc, bmax = np.ones(m, F32), np.full(m, -np.inf, F32)
    hk, hq, hv = np.empty(9, np.int32), np.empty(9, np.int32), np.empty(9, F32)
    z = np.zeros(m, F32)
    assert screen_block(np.zeros((0, 4)), pq, z, z - 1, acc, bmax, hk, hq, hv) == 0
    assert np.all(acc == 1) and np.all(bmax == -np.inf)
    # d = 0: every score is 0
    pk0, pq0 = pack_keys(np.zeros((2, 0))), pack_queries(np.zeros((m, 0)))
    assert screen_block(pk0, pq0, z, z - F32(1), acc, bmax, hk, hq, hv) == 6
    assert np.all(bmax == 0) and np.all(acc == 1)
    # m = 0
    e = np.empty(0, F32)
    assert screen_block(np.ones((2, 4)), pack_queries(np.zeros((0, 4))), e, e, e.copy(), e.copy(), hk, hq, hv) == 0


@needs_bf16
def test_bad_operands_raise_and_change_nothing():
    rng, k, q = _problem(10, 8, 20, 2)
    pk, pq = pack_keys(k), pack_queries(q)
    mref = np.zeros(20, F32)
    thr = np.full(20, -1.0, F32)
    acc, bmax = np.zeros(20, F32), np.full(20, -np.inf, F32)
    hk, hq, hv = np.full(9, -3, np.int32), np.full(9, -3, np.int32), np.full(9, -3.0, F32)

    def call(**kw):
        a = dict(kb=pk, qb=pq, mref=mref, thr=thr, acc=acc, bmax=bmax, hit_key=hk, hit_query=hq, hit_val=hv)
        a.update(kw)
        return screen_block(**a)

    for bad in (dict(mref=np.where(np.arange(20) == 19, np.nan, 0).astype(F32)),
                dict(mref=np.full(20, np.inf, F32)),
                dict(thr=np.where(np.arange(20) == 17, 0.5, -1).astype(F32)),
                dict(thr=np.where(np.arange(20) == 0, np.nan, -1).astype(F32)),
                dict(mref=np.zeros(20)),  # float64
                dict(acc=np.zeros(19, F32)),
                dict(bmax=np.zeros((20, 1), F32)),
                dict(acc=np.zeros(40, F32)[::2]),
                dict(hit_query=np.zeros(8, np.int32)),
                dict(hit_val=np.zeros(9)),
                dict(hit_key=np.zeros(9, np.int64)),
                dict(kb=pack_keys(k[:, :7])),
                dict(joff=2**31 - 5),
                dict(kblock=0)):
        with pytest.raises(ShapeError):
            call(**bad)
    ro = np.zeros(20, F32)
    ro.flags.writeable = False
    with pytest.raises(ShapeError):
        call(acc=ro)
    assert np.all(acc == 0) and np.all(bmax == -np.inf) and np.all(hk == -3) and np.all(hv == -3.0)


def test_unsupported_cpu_raises(monkeypatch):
    monkeypatch.setitem(_bf16._state, "screen", None)
    z = np.zeros(1, F32)
    e = np.empty(0, np.int32)
    with pytest.raises(UnsupportedCPUError):
        screen_block(np.ones((1, 2)), np.ones((2, 1)), z, z, z.copy(), z.copy(), e, e.copy(), np.empty(0, F32))


@needs_bf16
def test_agrees_with_scores_plus_scan_block():
    # the screen's current path: scores of the block, then _screen_numba.scan_block with margin tau below the
    # same reference maxima; the fused kernel collects the same (key, query, score) triples
    n, d, m = 700, 64, 100
    rng, k, q = _problem(n, d, m, 21)
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    mref = S.max(axis=0).astype(F32)
    tau = 14.0
    thr = np.array([_screen_numba._down(np.float64(x) - tau, S) for x in mref], dtype=F32)
    cap = 700
    cidx, cval = np.empty((m, cap), np.int32), np.empty((m, cap), F32)
    cnt, dun, nfin = np.zeros(m, np.int64), np.zeros(m), np.zeros(m, np.int64)
    _screen_numba.scan_block(S, 0, n, 0, np.full(m, tau), cap, False, mref, nfin, cidx, cval, cnt, dun)
    scan_hits = {(int(cidx[r, t]), r, float(cval[r, t])) for r in range(m) for t in range(cnt[r])}
    acc, bmax = np.zeros(m, F32), np.full(m, -np.inf, F32)
    hk, hq, hv = np.empty(n * m, np.int32), np.empty(n * m, np.int32), np.empty(n * m, F32)
    c = screen_block(pk, pq, mref, thr, acc, bmax, hk, hq, hv)
    assert set(zip(hk[:c].tolist(), hq[:c].tolist(), hv[:c].tolist())) == scan_hits
    # scan_block's dun bounds the same weights (its float32 block sum times 1 + n 2^-23)
    f = 1 + n * 2.0**-23
    assert np.all(acc.astype(np.float64) <= dun * f) and np.all(dun <= acc.astype(np.float64) * f * f)


@needs_bf16
def test_non_finite_scores():
    # inf · 0 makes NaN scores; -inf scores from -inf keys: never hits, clamped weights, NaN ignored by bmax
    k = np.array([[np.inf, 1.0], [-np.inf, 0.0], [1.0, 1.0]])
    q = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    S = scores(k, q.T)
    assert np.isnan(S[0, 0]) and S[1, 1] == -np.inf and S[1, 2] == -np.inf
    m = 3
    mref = np.full(m, 5.0, F32)
    acc, bmax = np.zeros(m, F32), np.full(m, -np.inf, F32)
    hk, hq, hv = np.empty(9, np.int32), np.empty(9, np.int32), np.empty(9, F32)
    c = screen_block(k, q.T, mref, np.full(m, 1.5, F32), acc, bmax, hk, hq, hv)
    hits = set(zip(hk[:c].tolist(), hq[:c].tolist(), hv[:c].tolist()))
    assert hits == {(0, 1, np.inf), (0, 2, np.inf), (2, 2, 2.0)}
    assert bmax.tolist() == [1.0, np.inf, np.inf]
    wc = float(np.array([2**23 + 256], dtype=np.int32).view(F32)[0])
    w = _weights(S, mref)
    # query 0: NaN (clamped), -inf... key 1 gives k.q = -inf * 0 = NaN too; key 2 gives 1 (a weight)
    want0 = np.float64(wc) * np.isnan(S[:2, 0]).sum() + w[2, 0]
    assert np.isclose(acc[0], want0, rtol=1e-6)
    assert np.isclose(acc[1], wc + w[2, 1], rtol=1e-6)  # key 1: -inf (clamped); key 2: s = 1


@needs_bf16
@pytest.mark.parametrize("cap", [1000, 9])
def test_absorbed_hits_give_the_lists_of_scan_block(cap):
    # flat hits -> per-query lists (cidx, cval, cnt) by _screen_numba.absorb_block, as scan_block builds them,
    # overflowing rows dropped alike

    n, d, m = 400, 32, 50
    rng, k, q = _problem(n, d, m, 8)
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    mref = S.max(axis=0).astype(F32)
    tau = 13.0
    thr = np.array([_screen_numba._down(np.float64(x) - tau, S) for x in mref], dtype=F32)
    lists = []
    for _ in range(2):
        lists.append((np.zeros((m, cap), np.int32), np.zeros((m, cap), F32), np.zeros(m, np.int64)))
    cidx, cval, cnt = lists[0]
    _screen_numba.scan_block(S, 0, 200, 0, np.full(m, tau), cap, False, mref, np.zeros(m, np.int64), cidx,
                             cval, cnt, np.zeros(m))
    _screen_numba.scan_block(S[200:], 0, 200, 200, np.full(m, tau), cap, False, mref, np.zeros(m, np.int64),
                             cidx, cval, cnt, np.zeros(m))
    cidx2, cval2, cnt2 = lists[1]
    hk, hq, hv = np.empty(n * m, np.int32), np.empty(n * m, np.int32), np.empty(n * m, F32)
    for b0 in (0, 200):
        acc, bmax = np.zeros(m, F32), np.full(m, -np.inf, F32)
        c = screen_block(BF16Keys(pk.bits[b0:b0 + 200], d), pq, mref, thr, acc, bmax, hk, hq, hv, joff=b0)
        _screen_numba.absorb_block(c, hk, hq, hv, acc, bmax, 200, cap, mref.copy(), cidx2, cval2, cnt2, np.zeros(m))
    assert np.array_equal(cnt, cnt2)
    if cap == 9:
        assert (cnt < 0).any() and (cnt >= 0).any()
    for r in range(m):
        if cnt[r] > 0:
            a = sorted(zip(cidx[r, :cnt[r]].tolist(), cval[r, :cnt[r]].tolist()))
            assert a == sorted(zip(cidx2[r, :cnt[r]].tolist(), cval2[r, :cnt[r]].tolist()))
