"""bfloat16 screening GEMM (AVX512-BF16): rounding vs exact rationals, scores vs references, the error model."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tropix.attention import _bf16
from tropix.attention._bf16 import (
    BF16Keys,
    UnsupportedCPUError,
    available,
    error_bound,
    error_bound_residual,
    from_bf16,
    pack_keys,
    pack_queries,
    residual_norms,
    scores,
    to_bf16,
)
from conftest import round_fraction, needs_bf16
from tropix.errors import ShapeError


T = 2.0**-126
U = 2.0**-24


def _round_exact(x: float) -> float:
    """Nearest bfloat16 of ``x`` (ties to even), by exact rational arithmetic; inf beyond the range."""
    if math.isnan(x) or math.isinf(x) or x == 0:
        return x
    f = Fraction(x)
    e = math.frexp(abs(x))[1] - 1  # 2^e <= |x| < 2^(e+1)
    quantum = Fraction(2) ** (max(e, -126) - 7)
    m = round(f / quantum)  # round() of a Fraction: ties to even
    v = m * quantum
    if abs(v) >= Fraction(2) ** 128:
        return math.copysign(math.inf, x)
    return math.copysign(float(v), x) if v == 0 else float(v)


def _vdpbf16ps_emulated(k, q) -> float:
    """One lane of VDPBF16PS over all pairs as Intel's SDM specifies it: per pair, a float32 FMA of the odd
    then of the even element (round to nearest even), subnormal inputs read as zero, subnormal results zero."""
    acc = Fraction(0)
    t = Fraction(T)
    for p in range(len(k) // 2):
        for i in (2 * p + 1, 2 * p):
            a, b = Fraction(float(k[i])), Fraction(float(q[i]))
            a = 0 if abs(a) < t else a
            b = 0 if abs(b) < t else b
            acc = round_fraction(acc + a * b, 24)
            acc = Fraction(0) if abs(acc) < t else acc
    return float(acc)


def _daz(x):
    """bfloat16 values as the instruction reads them: subnormals are zero."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(np.abs(x) < T, 0.0, x)


def _accumulation_slack(kh, qh):
    """Bound on |S - K̂ Q̂ᵀ| from float32 accumulation (and float64 evaluation of the reference)."""
    d2 = kh.shape[1] + (kh.shape[1] & 1)
    gam = d2 * U / (1 - d2 * U)
    absdot = np.abs(kh) @ np.abs(qh).T
    return (gam * absdot + 2 * d2 * T * (1 + gam)) * (1 + 1e-9) + 1e-15 * absdot


def _exact_dots(k, q):
    """Exact k_j · q_r as floats nearest to the rational value (Fractions)."""
    kf = [[Fraction(float(v)) for v in row] for row in k]
    qf = [[Fraction(float(v)) for v in row] for row in q]
    return np.array([[sum((a * b for a, b in zip(kr, qr)), Fraction(0)) for qr in qf] for kr in kf], dtype=object)


def _check_bound(k, q, S):
    """|S - k·q| <= error_bound and <= error_bound_residual (from the rows' actual rounding errors), checked
    in exact arithmetic."""
    exact = _exact_dots(k, q)
    qn, kn = np.linalg.norm(q, axis=1)[None, :], np.linalg.norm(k, axis=1)[:, None]
    b = error_bound(qn, kn, k.shape[1])
    br = error_bound_residual(qn, residual_norms(q)[None, :], kn, residual_norms(k)[:, None], k.shape[1])
    assert np.all(br <= b) and np.array_equal(np.isinf(br), np.isinf(b))
    for j in range(k.shape[0]):
        for r in range(q.shape[0]):
            if np.isfinite(b[j, r]):
                err = abs(Fraction(float(S[j, r])) - exact[j, r])
                assert err <= Fraction(float(br[j, r])), (j, r, float(err), br[j, r], b[j, r])
    return b


# ---------------------------------------------------------------------------------------------- rounding

_any64 = st.floats(allow_nan=False, allow_infinity=True, allow_subnormal=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(_any64, min_size=1, max_size=20))
def test_to_bf16_float64_is_correctly_rounded(xs):
    bits = to_bf16(np.array(xs, dtype=np.float64))
    got = from_bf16(bits).astype(np.float64)
    for x, g, b in zip(xs, got, bits):
        want = _round_exact(x)
        assert g == want and math.copysign(1, g) == math.copysign(1, want), (x, g, want, hex(b))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_subnormal=True), min_size=1, max_size=20))
def test_to_bf16_float32_is_correctly_rounded(xs):
    x = np.array(xs, dtype=np.float32)
    got = from_bf16(to_bf16(x)).astype(np.float64)
    want = np.array([_round_exact(float(v)) for v in x])
    assert np.array_equal(got, want)
    ref = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)  # RNE in torch
    assert np.array_equal(to_bf16(x), ref)


@settings(max_examples=200, deadline=None)
@given(st.integers(64, 255), st.integers(-140, 127), st.sampled_from([0.0, 1.0, -1.0]), st.booleans())
def test_to_bf16_ties_and_near_ties(m, e, nudge, neg):
    # (2m + 1) 2^(e - 8) lies halfway between two bfloat16 neighbours in the normal range; nudged by an ulp
    x = math.ldexp(2 * m + 1, e - 8)
    if nudge:
        x = float(np.nextafter(x, nudge * np.inf))
    x = -x if neg else x
    got = float(from_bf16(to_bf16(np.array([x])))[0])
    assert got == _round_exact(x)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 9), st.integers(1, 12), st.lists(_any64, min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_pack_keys_float64_equals_elementwise_rounding(n, d, specials, seed):
    # pack_rows64 rounds rows inside bfloat16's normal range by integer operations only and every other
    # row by round64: both must give to_bf16's bits; some rows are normal, some carry arbitrary floats
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-30, 30, size=(n, 1))
    for i, x in enumerate(specials):
        if rng.random() < 0.5:
            k[rng.integers(n), rng.integers(d)] = x
    pk = pack_keys(k)
    assert np.array_equal(pk.bits[:, :d], to_bf16(k)) and not pk.bits[:, d:].any()


def test_to_bf16_float64_rounds_once_not_through_float32():
    # 1 + 2^-8 + 2^-30: float32 rounding gives the tie 1 + 2^-8, which goes to 1; the true nearest is 1 + 2^-7
    x = 1 + 2.0**-8 + 2.0**-30
    assert from_bf16(to_bf16(np.array([x])))[0] == 1 + 2.0**-7
    assert from_bf16(to_bf16(np.array([x], dtype=np.float32)))[0] == 1.0


def test_to_bf16_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 3.3895313892515355e38, 3.3962e38, -1e300, 1e-300,
                  2.0**-126, 2.0**-133, 2.0**-134, 3 * 2.0**-135, -(2.0**-127)])
    got = from_bf16(to_bf16(x)).astype(np.float64)
    assert got[0] == 0 and math.copysign(1, got[0]) == 1 and got[1] == 0 and math.copysign(1, got[1]) == -1
    assert got[2] == np.inf and got[3] == -np.inf and np.isnan(got[4]) and np.isnan(got[5])
    assert got[6] == 3.3895313892515355e38  # the largest bfloat16 stays
    assert got[7] == np.inf and got[8] == -np.inf and got[9] == 0
    assert got[10] == 2.0**-126 and got[11] == 2.0**-133
    assert got[12] == 0  # half the smallest subnormal: tie to even (zero)
    assert got[13] == 2.0**-133  # 0.75 of it rounds up
    assert got[14] == -(2.0**-127)  # subnormal bfloat16, exact
    assert to_bf16(np.zeros((2, 0))).shape == (2, 0)


def test_pack_layouts():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((19, 5))
    a, b = pack_queries(q), pack_queries(qT=q.T.copy())
    assert np.array_equal(a.bits, b.bits) and a.m == 19 and a.d == 5 and a.bits.shape == (3, 64)
    vals = from_bf16(a.bits).reshape(3, 32, 2)
    qr = from_bf16(to_bf16(q))
    for r in range(19):
        assert np.array_equal(vals[:, r].reshape(-1)[:5], qr[r])
        assert vals[2, r, 1] == 0  # the padding dimension
    assert np.all(vals[:, 19:] == 0)  # padding queries
    assert np.array_equal(pack_queries(q.astype(np.float32)).bits, pack_queries(qT=q.T.astype(np.float32)).bits)
    pk = pack_keys(q)
    assert pk.bits.shape == (19, 6) and np.array_equal(from_bf16(pk.bits[:, :5]), qr) and np.all(pk.bits[:, 5] == 0)
    with pytest.raises(ShapeError):
        pack_queries(q, qT=q.T)
    with pytest.raises(ShapeError):
        pack_keys(np.zeros(3))
    with pytest.raises(ShapeError):
        pack_keys(np.array([["a"]]))


# ---------------------------------------------------------------------------------------------- scores

def _scaled(draw_arr, scale):
    return draw_arr * scale


@needs_bf16
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 40), m=st.integers(1, 40), seed=st.integers(0, 2**31),
       scale=st.sampled_from([1.0, 1e-20, 1e15, 2.0**-60]), f32=st.booleans(), kblock=st.sampled_from([1, 5, 13, 2048]))
def test_scores_match_bf16_reference(n, d, m, seed, scale, f32, kblock):
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((n, d)) * scale
    q = rng.standard_normal((m, d)) * np.exp(rng.uniform(-3, 3, (m, 1)))
    if f32:
        k, q = k.astype(np.float32), q.astype(np.float32)
    S = scores(k, np.ascontiguousarray(q.T), kblock=kblock)
    assert S.dtype == np.float32 and S.shape == (n, m) and S.flags.c_contiguous
    kh, qh = _daz(from_bf16(to_bf16(k))), _daz(from_bf16(to_bf16(q)))
    R = kh @ qh.T
    assert np.all(np.abs(S - R) <= _accumulation_slack(kh, qh))
    S2 = scores(pack_keys(k), pack_queries(q))
    assert np.array_equal(S, S2)


@needs_bf16
@settings(max_examples=40, deadline=None)
@given(k=hnp.arrays(np.float64, st.tuples(st.integers(1, 7), st.integers(1, 9)),
                    elements=st.floats(-1e6, 1e6, allow_subnormal=True)),
       m=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_scores_within_error_bound_of_exact_product(k, m, seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((m, k.shape[1])) * rng.choice([1.0, 1e-30, 1e20], size=(m, 1))
    S = scores(k, q.T)
    b = _check_bound(k, q, S)
    assert np.all(np.isfinite(b))


@needs_bf16
@settings(max_examples=60, deadline=None)
@given(m=st.integers(64, 255), e=st.integers(-126, 120), seed=st.integers(0, 2**31), f32=st.booleans(),
       d=st.integers(1, 40))
def test_in_kernel_rounding_is_correct(m, e, seed, f32, d):
    # float keys are rounded inside the kernel (round to odd in float32, then VCVTNEPS2BF16): with the
    # identity as queries the scores are the rounded keys themselves; ties, near ties and wide ranges
    rng = np.random.default_rng(seed)
    base = math.ldexp(2 * m + 1, e - 8)  # a tie between two bfloat16 neighbours
    k = np.concatenate([
        [base, -base, float(np.nextafter(base, np.inf)), float(np.nextafter(base, 0)), 1 + 2.0**-8 + 2.0**-30],
        rng.standard_normal(3 * d) * np.exp(rng.uniform(-80, 80, 3 * d)),
        [0.0, -0.0, np.inf, -np.inf, 3.3961e38, -3.4e38, 1e300, 2.0**-126, 2.0**-140, 1e-300],
    ])
    k = k[: (len(k) // d) * d].reshape(-1, d)
    if f32:
        with np.errstate(over="ignore"):
            k = k.astype(np.float32)
    S = scores(k, np.eye(d))
    want = from_bf16(to_bf16(k))
    want = np.where(np.abs(k) < T, np.float32(0), want)  # the kernel's conversion flushes |x| < 2^-126
    fin = np.all(np.isfinite(want), axis=1)
    assert fin.sum() >= 3 and np.array_equal(S[fin], want[fin])
    # a row with an infinite key entry: inf · 0 makes the other scores NaN
    assert np.all(np.isnan(S[~fin]) | (S[~fin] == want[~fin]))


@needs_bf16
@pytest.mark.parametrize("n,d,m", [(1, 1, 1), (13, 1, 17), (6, 2, 64), (7, 3, 65), (25, 64, 1), (50, 33, 100),
                                   (12, 65, 48), (300, 7, 3)])
def test_scores_shapes_against_float64_reference(n, d, m):
    rng = np.random.default_rng(n * 1000 + d * 10 + m)
    k, q = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    S = scores(k, q.T)
    kh, qh = from_bf16(to_bf16(k)).astype(float), from_bf16(to_bf16(q)).astype(float)
    assert np.all(np.abs(S - kh @ qh.T) <= _accumulation_slack(kh, qh))
    # strided rows of a larger output, untouched elsewhere
    big = np.full((n, m + 5), 7.0, dtype=np.float32)
    scores(k, q.T, out=big[:, 2:2 + m])
    assert np.array_equal(big[:, 2:2 + m], S) and np.all(big[:, :2] == 7) and np.all(big[:, 2 + m:] == 7)


@needs_bf16
@pytest.mark.parametrize("n,d,m", [(1, 8, 16), (50, 33, 64), (203, 64, 256), (40, 7, 48)])
def test_streaming_stores_give_the_same_scores(n, d, m):
    rng = np.random.default_rng(n + d + m)
    k, q = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    out = _bf16.empty_scores(n, m)
    assert out.ctypes.data % 64 == 0 and (n == 1 or out.strides[0] % 64 == 0)  # the streaming variant runs
    S = scores(k, q.T, out=out)
    assert _bf16._state.get("fn_nt") is not None
    assert np.array_equal(S, scores(k, q.T, stream=False))
    kh, qh = from_bf16(to_bf16(k)).astype(float), from_bf16(to_bf16(q)).astype(float)
    assert np.all(np.abs(S - kh @ qh.T) <= _accumulation_slack(kh, qh))


@needs_bf16
def test_scores_zeros_and_empty():
    assert np.array_equal(scores(np.zeros((9, 5)), np.zeros((5, 3))), np.zeros((9, 3), dtype=np.float32))
    assert scores(np.zeros((0, 4)), np.ones((4, 3))).shape == (0, 3)
    assert scores(np.ones((4, 2)), np.ones((2, 0))).shape == (4, 0)
    assert np.array_equal(scores(np.ones((4, 0)), np.ones((0, 3))), np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ShapeError):
        scores(np.ones((4, 3)), np.ones((2, 5)))
    with pytest.raises(ShapeError):
        scores(np.ones((4, 3)), np.ones((3, 5)), out=np.empty((4, 5)))  # float64 out
    with pytest.raises(ShapeError):
        scores(np.ones((4, 3)), np.ones((3, 5)), out=np.empty((5, 4), dtype=np.float32).T)
    pk, pq = pack_keys(np.ones((4, 3))), pack_queries(np.ones((20, 3)))
    with pytest.raises(ShapeError):  # too few query lanes for 20 queries
        scores(pk, _bf16.BF16Queries(pq.bits[:, :32], 3, 20))
    with pytest.raises(ShapeError):
        scores(BF16Keys(pk.bits[:, :3], 3), pq)
    with pytest.raises(ShapeError):
        scores(BF16Keys(pk.bits.astype(np.int32), 3), pq)


@needs_bf16
@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 12), seed=st.integers(0, 2**31), lo=st.sampled_from([-80, -66, -20, 0, 40]))
def test_scores_equal_exact_emulation_of_the_instruction(d, seed, lo):
    # bit-exact agreement with sequential float32 FMAs (odd element first) with DAZ/FTZ: the premises of
    # the error model (one rounding per operation, flushes below 2^-126) hold on this CPU
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((3, d)) * 2.0 ** rng.integers(lo, lo + 20, (3, d))
    q = rng.standard_normal((2, d)) * 2.0 ** rng.integers(lo, lo + 20, (2, d))
    S = scores(k, q.T)
    kh, qh = from_bf16(to_bf16(k)), from_bf16(to_bf16(q))
    if d % 2:
        kh, qh = np.pad(kh, ((0, 0), (0, 1))), np.pad(qh, ((0, 0), (0, 1)))
    for j in range(3):
        for r in range(2):
            assert float(S[j, r]) == _vdpbf16ps_emulated(kh[j], qh[r])


@needs_bf16
def test_float32_accumulation_rounds():
    # bfloat16-exact inputs: the only error is the float32 accumulation, here the whole exact result 1
    k, q = np.array([[2.0**25, 1.0, -(2.0**25), 0.0]]), np.ones((4, 1))
    S = scores(k, q)
    assert S[0, 0] == 0.0 and abs(S[0, 0] - 1.0) <= _accumulation_slack(k, q.T)[0, 0]
    _check_bound(k, q.T, S)


@needs_bf16
def test_instruction_flushes_subnormal_inputs_and_results():
    # DAZ: 2^-127 is a subnormal bfloat16 and is read as zero, although the product 2^-117 is normal
    assert scores(np.array([[2.0**-127]]), np.array([[2.0**10]]))[0, 0] == 0
    # FTZ: the product 2^-140 of two normal inputs is subnormal and flushed
    assert scores(np.array([[2.0**-70]]), np.array([[2.0**-70]]))[0, 0] == 0
    assert scores(np.array([[2.0**-60]]), np.array([[2.0**-60]]))[0, 0] == 2.0**-120
    # both effects are within the absolute term of the bound
    k, q = np.array([[2.0**-127, 2.0**-70, 1e-38]]), np.array([[2.0**10, 2.0**-70, 1e-3]])
    _check_bound(k, q, scores(k, q.T))


@needs_bf16
def test_error_model_adversarial_inputs():
    rng = np.random.default_rng(7)
    cases = []
    # cancellation: large terms that cancel, leaving a small exact result
    a = rng.standard_normal(16) * 1e4
    cases.append((np.concatenate([a, -a, [1e-3, 2e-3]])[None, :], np.ones((3, 34))))
    # mixed signs and magnitudes
    cases.append((rng.standard_normal((5, 31)) * np.exp(rng.uniform(-40, 40, (5, 31))),
                  rng.standard_normal((4, 31)) * np.exp(rng.uniform(-40, 40, (4, 31)))))
    # tiny and subnormal values around the DAZ/FTZ thresholds
    cases.append((rng.standard_normal((6, 12)) * 2.0**-126 * rng.uniform(0.1, 4, (6, 12)),
                  rng.standard_normal((3, 12)) * rng.choice([1.0, 1e10, 1e30], (3, 12))))
    # large magnitudes close to float32 overflow (|k| |q| up to ~1e37)
    cases.append((rng.standard_normal((4, 8)) * 1e18, rng.standard_normal((2, 8)) * 1e18))
    # at the edge of the valid range: |k| |q| just below 2^126 / (1 + u_b)^2
    edge = 2.0**62.9 * np.array([[1.0, -0.5, 0.25]])
    cases.append((edge, np.array([[1.0, 1.0, 1.0], [-1.0, 0.5, 0.0]]) * 2.0**62))
    for k, q in cases:
        S = scores(k, q.T)
        assert np.all(np.isfinite(S))
        b = _check_bound(k, q, S)
        assert np.all(np.isfinite(b))


@needs_bf16
def test_bound_is_not_vacuous():
    # random data: the observed error reaches a sizeable share of the bound (input rounding dominates)
    rng = np.random.default_rng(3)
    k, q = rng.standard_normal((200, 64)), rng.standard_normal((20, 64))
    S = scores(k, q.T)
    err = np.abs(S - k @ q.T)
    b = error_bound(np.linalg.norm(q, axis=1)[None, :], np.linalg.norm(k, axis=1)[:, None], 64)
    assert np.all(err <= b) and err.max() > 0.02 * b.max()


def test_error_bound_range_and_values():
    ub, d = 2.0**-8, 64
    gam = d * U / (1 - d * U)
    b = error_bound(1.0, 1.0, d)
    assert 2 * ub + gam < b < 2 * ub + ub * ub + gam * (1 + ub) ** 2 + 1e-6
    assert np.isinf(error_bound(1e20, 1e20, 8)) and np.isinf(error_bound(2.0**127, 1e-30, 8))
    assert np.isfinite(error_bound(1e18, 1e18, 8))
    assert error_bound(0.0, 0.0, 3) > 0  # the underflow term
    assert error_bound(np.ones((3, 1)), np.ones((1, 4)), 5).shape == (3, 4)
    with pytest.raises(ShapeError):
        error_bound(1.0, 1.0, -1)


def test_unavailable_cpu_raises(monkeypatch):
    monkeypatch.setitem(_bf16._state, "fn", None)
    assert available() is False
    with pytest.raises(UnsupportedCPUError):
        scores(np.ones((2, 2)), np.ones((2, 2)))
    assert isinstance(pack_keys(np.ones((2, 2))), BF16Keys)  # packing needs no special CPU


# ------------------------------------------------------------------------------------ rounding residuals

def _exact_residuals(x):
    """|x_r - bf16(x_r)| of every row over the entries in bfloat16's normal range, exactly (Fractions), as
    floats rounded up; inf for a row with an entry that rounds to inf."""
    out = []
    for row in np.atleast_2d(x):
        s = Fraction(0)
        for v in row:
            v = float(v)
            if math.isinf(v) or abs(v) >= 3.3961775292304611e38:  # rounds to inf (at or past the threshold)
                s = None
                break
            if abs(v) >= T:
                s += (Fraction(v) - Fraction(_round_exact(v))) ** 2
        out.append(math.inf if s is None else math.sqrt(float(s)))
    return np.array(out)


_resid64 = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 9), st.integers(1, 12), st.lists(_resid64, min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_residual_norms_bound_the_exact_rounding_errors(n, d, specials, seed):
    # the rounding errors of the normal-range entries, from the packing pass and on their own: never below the
    # exact value, at most a few units of float64 rounding above it; ties, zeros, tiny and huge entries mixed in
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-40, 38, size=(n, 1))
    for x in specials:
        if rng.random() < 0.5:
            k[rng.integers(n), rng.integers(d)] = x
    k[0, 0] = 1 + 2.0**-8  # a tie (to even: 1)
    exact = _exact_residuals(k)
    got = residual_norms(k)
    fin = np.isfinite(exact)
    assert np.array_equal(np.isinf(got), ~fin)
    assert np.all(got[fin] >= exact[fin]) and np.all(got[fin] <= exact[fin] * (1 + 1e-13) + 1e-300)
    pk = pack_keys(k, residual=True)  # (its sums in another order: equal up to rounding, also a bound)
    assert np.array_equal(pk.bits, pack_keys(k).bits)
    assert (pk.resmax == np.inf) if not fin.all() else (exact.max() <= pk.resmax <= exact.max() * (1 + 1e-13) + 1e-300)
    with np.errstate(over="ignore"):
        k32 = k.astype(np.float32)
    assert pack_keys(k).resmax is None and pack_keys(k32, residual=True).resmax is None


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 70), st.integers(0, 2**32 - 1),
       st.sampled_from(["plain", "odd", "inf", "nan", "tiny"]))
def test_rownorms_pack_is_validation_and_packing_in_one_pass(n, d, seed, kind):
    from tropix.attention._bf16_numba import rownorms_pack
    from tropix.attention._kernels_numba import rownorms_finite

    rng = np.random.default_rng(seed)
    k = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-30, 30, size=(n, 1))
    if kind == "inf":
        k[rng.integers(n), rng.integers(d)] = -np.inf
    elif kind == "nan":
        k[rng.integers(n), rng.integers(d)] = np.nan
    elif kind == "tiny":
        k[rng.integers(n)] = rng.normal(size=d) * 1e-160  # squares underflow: the rescaled norm
    elif kind == "odd":
        k[rng.integers(n), rng.integers(d)] = 0.0
    norms, ref = np.empty(n), np.empty(n)
    out = np.empty((n, 2 * ((d + 1) // 2)), np.uint16)
    out[:] = 12345
    res = np.empty(n)
    ok = rownorms_pack(k, norms, k.view(np.uint64), out, res)
    assert ok == rownorms_finite(k, ref) == (kind not in ("inf", "nan"))
    assert np.allclose(norms, ref, rtol=1e-14, equal_nan=True) and np.array_equal(np.isnan(norms), np.isnan(ref))
    if ok:
        assert np.array_equal(out, pack_keys(k).bits)
        exact = _exact_residuals(k) ** 2
        assert np.all(res >= exact * (1 - 1e-13)) and np.all(res <= exact * (1 + 1e-13) + 1e-300)


def test_prepare_packs_the_keys_for_the_screen(monkeypatch):
    from tropix.attention import _inputs, screened

    rng = np.random.default_rng(5)
    q, k, v = 10 * rng.standard_normal((64, 32)), rng.standard_normal((4096, 32)), rng.standard_normal((4096, 8))
    P = _inputs.prepare(q, k, v, pack_bf16=True)
    assert np.array_equal(P.kbf16.bits, pack_keys(k).bits)
    assert P.kbf16.resmax == pytest.approx(residual_norms(k).max(), rel=1e-13)
    assert _inputs.prepare(q, k, v).kbf16 is None
    assert _inputs.prepare(q, k, v, pack_bf16=True, hash_keys=True).kbf16 is None  # (a tree's pass: no packing)
    with pytest.raises(Exception, match="inf"):
        kk = k.copy()
        kk[7, 3] = np.inf
        _inputs.prepare(q, kk, v, pack_bf16=True)
    if available():  # the screen takes the packed keys: no second packing pass, the same result
        calls = []
        real = _bf16.pack_keys
        monkeypatch.setattr(_bf16, "pack_keys", lambda *a, **kw: calls.append(1) or real(*a, **kw))
        r = screened(q, k, v, eps=1e-3, precision="bf16", check=True)
        assert calls == []
        for mask in (np.arange(4096) < 3000, np.arange(4096) % 3 > 0):  # padding masks: the visible keys' rows
            r2 = screened(q, k, v, eps=1e-3, mask=mask, precision="bf16", check=True)
            assert calls == [] and np.all(r2.relative_bound <= 1e-3)
        monkeypatch.setattr(_bf16, "pack_keys", real)
        r3 = screened(q, k, v, eps=1e-3, precision="float32", check=True)
        assert np.allclose(r.output, r3.output, atol=2e-3 * np.linalg.norm(v, axis=1).max())


@needs_bf16
def test_residual_bound_is_tighter_on_random_data():
    rng = np.random.default_rng(11)
    k, q = rng.standard_normal((300, 64)), rng.standard_normal((20, 64))
    qn, kn = np.linalg.norm(q, axis=1)[None, :], np.linalg.norm(k, axis=1)[:, None]
    b = error_bound(qn, kn, 64)
    br = error_bound_residual(qn, residual_norms(q)[None, :], kn, residual_norms(k)[:, None], 64)
    assert np.all(br < 0.6 * b)
    err = np.abs(scores(k, q.T) - k @ q.T)
    assert np.all(err <= br) and err.max() > 0.05 * br.max()
    with pytest.raises(ShapeError):
        error_bound_residual(1.0, 0.0, 1.0, 0.0, -1)
