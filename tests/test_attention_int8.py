"""int8 screening (tropix.attention._int8): quantisation, the VPDPBUSD GEMM bit for bit against an exact
emulation, the certified error bound against exact rational products, and the fused screen against NumPy."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import needs_int8
from tropix.attention import _bf16, _int8
from tropix.attention._int8 import (MAX_D, I8Keys, I8Queries, dequantize, error_bound, pack_keys, pack_queries,
                                    residual_norms, scores, screen_block)
from tropix.errors import ShapeError, UnsupportedCPUError

F32 = np.float32


def _codes(packed):
    """(integer codes as int64, float32 scales) of packed keys (``256 hi + lo`` and ``s / 256``) or queries."""
    b = packed.bits.view(np.uint8)
    if isinstance(packed, I8Keys):
        dq = (b.shape[1] // 4 - 3) // 2
        c = b.view(np.int8).astype(np.int64)
        return 256 * c[:, :4 * dq] + c[:, 4 * dq:8 * dq], b.view(F32)[:, 2 * dq].copy()
    dq = b.shape[0] - 1
    m16 = b.shape[1] // 4
    c = b[:dq].reshape(dq, m16, 4).transpose(1, 0, 2).reshape(m16, 4 * dq).astype(np.int64) - 128
    return c[:packed.m], b[dq].view(F32)[:packed.m].copy()


def _emulate(pk, pq):
    """What the kernel computes: ``fl32(fl32(float32(I) s_k) s_q)`` with the exact integer ``I``."""
    ck, sk = _codes(pk)
    cq, sq = _codes(pq)
    ii = ck @ cq.T  # exact (int64)
    assert np.abs(ii).max(initial=0) < 2**31
    with np.errstate(over="ignore", under="ignore"):
        return (ii.astype(F32) * sk[:, None]).astype(F32) * sq[None, :]


def _rows(kind, rng, n, d):
    if kind == "gauss":
        return rng.standard_normal((n, d))
    if kind == "scaled":
        return rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-20, 20, (n, 1))
    if kind == "spiky":  # one large entry per row: the others lose relative precision
        x = rng.standard_normal((n, d)) * 1e-3
        x[np.arange(n), rng.integers(0, d, n)] = 50.0
        return x
    if kind == "ties":  # entries at half-integers of the scale: rint's ties
        return rng.integers(-254, 255, (n, d)) / 2.0
    if kind == "sparse":
        return rng.standard_normal((n, d)) * (rng.uniform(size=(n, d)) < 0.2)
    if kind == "tiny":  # scales near and below the smallest allowed (2^-118): codes 0, the row its residual
        return rng.standard_normal((n, d)) * 2.0 ** rng.integers(-130, -100, (n, 1))
    raise ValueError(kind)


KINDS = ["gauss", "scaled", "spiky", "ties", "sparse", "tiny"]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), d=st.integers(1, 70), seed=st.integers(0, 2**31), kind=st.sampled_from(KINDS))
def test_quantisation_is_the_documented_one(n, d, seed, kind):
    rng = np.random.default_rng(seed)
    x = _rows(kind, rng, n, d)
    pk, pq = pack_keys(x), pack_queries(x, residual=True)
    amax = np.abs(x).max(axis=1)
    s = (amax * ((1 + 2.0**-20) / 127)).astype(F32)
    s = np.where(s.astype(np.float64) >= 2.0**-118, s, F32(0))
    assert np.all(s.astype(np.float64) * 127 >= amax * (s > 0))  # every code fits
    inv = np.where(s > 0, 1.0 / np.where(s > 0, s.astype(np.float64), 1.0), 0.0)[:, None]  # (as the packers)
    c = np.rint(np.clip(x * inv, -127, 127))
    cq, sq = _codes(pq)
    assert np.array_equal(sq, s) and np.array_equal(cq[:, :d], c) and not cq[:, d:].any()
    s8 = (s.astype(np.float64) / 256).astype(F32)
    inv8 = np.where(s > 0, 1.0 / np.where(s > 0, s8.astype(np.float64), 1.0), 0.0)[:, None]
    z = np.rint(np.clip(x * inv8, -32512, 32512))
    ck, sk = _codes(pk)
    assert np.array_equal(sk, s8) and np.array_equal(ck[:, :d], z) and not ck[:, d:].any()
    b_ = pk.bits.view(np.uint8)
    dq = (b_.shape[1] // 4 - 3) // 2
    hi, lo = b_.view(np.int8)[:, :d], b_.view(np.int8)[:, 4 * dq:4 * dq + d]
    assert np.array_equal(hi, np.floor((z + 128) / 256)) and lo.min(initial=0) >= -128
    # dequantised values are exact float64 numbers; the residual bounds hold in exact arithmetic
    for packed, res in ((pk, np.full(n, pk.resmax)), (pq, pq.res)):
        deq = dequantize(packed)
        for r in range(n):
            exact = sum((Fraction(float(a)) - Fraction(float(b))) ** 2 for a, b in zip(x[r], deq[r]))
            assert Fraction(float(res[r])) ** 2 >= exact
    np.testing.assert_allclose(residual_norms(x), pq.res, rtol=1e-12)


@needs_int8
@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 70), m=st.integers(1, 70), seed=st.integers(0, 2**31),
       kind=st.sampled_from(KINDS), kblock=st.sampled_from([1, 4, 7, 4096]), stream=st.booleans())
def test_scores_equal_the_exact_emulation(n, d, m, seed, kind, kblock, stream):
    rng = np.random.default_rng(seed)
    k, q = _rows(kind, rng, n, d), _rows("gauss", rng, m, d)
    pk, pq = pack_keys(k), pack_queries(q)
    out = _bf16.empty_scores(n, m) if stream else np.empty((n, m), F32)
    S = scores(pk, pq, out, kblock=kblock, stream=stream)
    assert S is out and np.array_equal(S, _emulate(pk, pq))
    assert np.array_equal(scores(k, q), S)  # (float operands are packed first: the same values)


@needs_int8
@pytest.mark.parametrize("n,d,m", [(1, 1, 1), (2, 4, 16), (4, 5, 17), (7, 64, 256), (3001, 64, 300),
                                   (1025, 33, 48), (100, 512, 20)])
def test_scores_shapes(n, d, m):
    rng = np.random.default_rng(n + d + m)
    k, q = rng.standard_normal((n, d)), rng.standard_normal((m, d))
    pk, pq = pack_keys(k), pack_queries(q)
    assert np.array_equal(scores(pk, pq), _emulate(pk, pq))


def _exact_dot(a, b) -> Fraction:
    return sum(Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b))


@needs_int8
@settings(max_examples=60, deadline=None)
@given(d=st.integers(1, 40), seed=st.integers(0, 2**31), kk=st.sampled_from(KINDS), kq=st.sampled_from(KINDS))
def test_error_bound_holds_against_exact_products(d, seed, kk, kq):
    rng = np.random.default_rng(seed)
    k, q = _rows(kk, rng, 6, d), _rows(kq, rng, 5, d)
    if seed % 3 == 0:  # cancellation: a query orthogonal-ish to a key
        q[0] = k[0] - k[0] @ q[0] / max(k[0] @ k[0], 1e-300) * k[0] if np.all(np.isfinite(k[0])) else q[0]
    pk, pq = pack_keys(k), pack_queries(q, residual=True)
    S = scores(pk, pq)
    kn, qn = np.linalg.norm(k, axis=1), np.linalg.norm(q, axis=1)
    e = error_bound(qn[None, :], pq.res[None, :], kn[:, None] * (1 + 1e-15), pk.resmax, d)
    for j in range(6):
        for r in range(5):
            if np.isfinite(e[j, r]):
                assert abs(Fraction(float(S[j, r])) - _exact_dot(k[j], q[r])) <= Fraction(float(e[j, r]))


@needs_int8
def test_error_bound_adversarial_inputs():
    rng = np.random.default_rng(5)
    d = 64
    cases = [
        (np.zeros((3, d)), rng.standard_normal((4, d))),  # zero keys
        (rng.standard_normal((3, d)) * 1e18, rng.standard_normal((4, d)) * 1e17),  # near float32 overflow
        (rng.standard_normal((3, d)) * 1e-37, rng.standard_normal((4, d)) * 1e-5),  # products underflow
        (np.full((3, d), 0.5), np.full((4, d), -0.25)),  # all ties, same signs
        (np.eye(3, d) * 127.5, np.eye(4, d) * 0.5),  # one nonzero entry
    ]
    for k, q in cases:
        pk, pq = pack_keys(k), pack_queries(q, residual=True)
        S = scores(pk, pq)
        e = error_bound(np.linalg.norm(q, axis=1)[None, :], pq.res[None, :],
                        np.linalg.norm(k, axis=1)[:, None] * (1 + 1e-15), pk.resmax, d)
        for j in range(len(k)):
            for r in range(len(q)):
                assert np.isfinite(S[j, r])
                assert abs(Fraction(float(S[j, r])) - _exact_dot(k[j], q[r])) <= Fraction(float(e[j, r]))


def test_rows_beyond_float32_quantise_to_zero_codes():
    # a scale beyond float32 (max|x| above about 127 FLT_MAX) is replaced by 0: the residual is the whole row
    # (never below it), and the bound infinite (such heads are never screened: |q| max|k| > 1e36 goes dense)
    x = np.array([[1e300, 1.0, -2.0], [1.0, 0.5, 0.25]])
    pk, pq = pack_keys(x), pack_queries(x, residual=True)
    assert pk.resmax >= 1e300 and pq.res[0] >= 1e300 and pq.res[1] < 1e-2  # (its square overflows: inf)
    assert not _codes(pk)[0][0].any() and _codes(pk)[1][0] == 0
    assert error_bound(np.linalg.norm(x[1]), pq.res[1], 1.0001e300, pk.resmax, 3) == np.inf


@needs_int8
def test_bound_is_useful_and_keys_carry_fifteen_bits():
    rng = np.random.default_rng(0)
    d = 64
    k, q = rng.standard_normal((4000, d)), rng.standard_normal((64, d))
    pk, pq = pack_keys(k), pack_queries(q, residual=True)
    kn, qn = np.linalg.norm(k, axis=1), np.linalg.norm(q, axis=1)
    e = error_bound(qn, pq.res, kn.max(), pk.resmax, d)
    err = np.abs(scores(pk, pq) - k @ q.T).max(axis=0)
    assert np.all(err <= e)
    # the queries' 8 bits dominate: about 0.6 % of |q| max|k|, and the actual errors are within a factor 5
    assert np.all(e < 0.012 * qn * kn.max()) and np.median(e / err) < 5
    # the keys' residual (15 bits) relative to the largest key: under 1 % of the queries' relative residual
    assert pk.resmax / kn.max() < 0.01 * np.min(pq.res / qn)
    assert error_bound(2.0**127, 0.0, 1.0, 0.0, d) == np.inf


@needs_int8
@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 40), m=st.integers(1, 70), seed=st.integers(0, 2**31),
       margin=st.sampled_from([0.0, 3.0, 12.0, 30.0]), kblock=st.sampled_from([1, 4, 4096]),
       joff=st.sampled_from([0, 5]), biased=st.booleans())
def test_screen_block_matches_scores_and_numpy(n, d, m, seed, margin, kblock, joff, biased):
    rng = np.random.default_rng(seed)
    k, q = rng.standard_normal((n, d)), rng.standard_normal((m, d)) * (10 / np.sqrt(d))
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    bias = None
    if biased:
        bias = np.where(rng.uniform(size=(n, m)) < 0.1, -np.inf, rng.normal(size=(n, m))).astype(F32)
        S = (S + bias).astype(F32)
    mref = (np.nanmax(np.where(np.isfinite(S), S, -1e30), axis=0) + rng.choice([0.0, 0.5, 4.0], size=m)).astype(F32)
    thr = (mref - F32(margin)).astype(F32)
    acc, bmax = rng.uniform(0, 2, m).astype(F32), np.full(m, -np.inf, F32)
    acc_ref, bmax_ref = acc.astype(np.float64), bmax.copy()
    cap = n * m
    hk, hq, hv = np.empty(cap, np.int32), np.empty(cap, np.int32), np.empty(cap, F32)
    c = screen_block(pk, pq, mref, thr, acc, bmax, hk, hq, hv, joff=joff, kblock=kblock, bias=bias)
    rk, rq, rv = np.empty(cap, np.int32), np.empty(cap, np.int32), np.empty(cap, F32)
    acc32 = np.zeros(m, F32)
    c_ref = _bf16._screen_numpy(S, mref, thr, acc32, bmax_ref, rk, rq, rv, joff)
    assert c == c_ref
    assert set(zip(hk[:c].tolist(), hq[:c].tolist(), hv[:c].tolist())) == set(
        zip(rk[:c].tolist(), rq[:c].tolist(), rv[:c].tolist()))
    assert np.array_equal(bmax, bmax_ref)
    exact = acc_ref + np.where(S >= thr, 0.0, _bf16._weights_numpy(S, mref).astype(np.float64)).sum(axis=0)
    f = (n + 1) * 2.0**-23
    assert np.all(acc <= exact * (1 + f)) and np.all(exact <= acc * (1 + f))


def test_bad_input_raises():
    with pytest.raises(ShapeError, match="finite"):
        pack_keys(np.array([[1.0, np.nan]]))
    with pytest.raises(ShapeError, match="finite"):
        pack_queries(np.array([[np.inf, 1.0]]))
    with pytest.raises(ShapeError, match="finite"):
        residual_norms(np.array([[-np.inf]]))
    with pytest.raises(ShapeError, match="at most 512"):
        pack_keys(np.zeros((2, MAX_D + 1)))
    with pytest.raises(ShapeError, match="2-d"):
        pack_queries(np.zeros(3))
    with pytest.raises(ShapeError, match="real float"):
        pack_keys(np.array([["a"]]))
    with pytest.raises(ShapeError, match="at most 512"):
        error_bound(1.0, 0.0, 1.0, 0.0, MAX_D + 1)
    if _int8.available():
        with pytest.raises(ShapeError, match="dimensions"):
            scores(pack_keys(np.zeros((2, 3))), pack_queries(np.zeros((2, 4))))
        with pytest.raises(ShapeError, match="out must be"):
            scores(np.zeros((2, 3)), np.zeros((4, 3)), out=np.empty((4, 2), F32))


def test_unavailable_cpu_raises(monkeypatch):
    monkeypatch.setattr(_int8, "_state", {"fn": None, "screen": None})
    assert not _int8.available()
    with pytest.raises(UnsupportedCPUError):
        scores(np.zeros((2, 3)), np.zeros((2, 3)))
    one = np.zeros(1, F32)
    e = np.empty(1, np.int32)
    with pytest.raises(UnsupportedCPUError):
        screen_block(np.zeros((1, 3)), np.zeros((1, 3)), one, one, one.copy(), one.copy(), e, e.copy(), one.copy())


@needs_int8
def test_zero_width_and_empty():
    S = scores(np.zeros((3, 0)), np.zeros((2, 0)))
    assert S.shape == (3, 2) and not S.any()
    assert scores(np.zeros((0, 5)), np.zeros((2, 5))).shape == (0, 2)
    mref, thr = np.zeros(2, F32), np.full(2, -1.0, F32)
    acc, bmax = np.zeros(2, F32), np.full(2, -np.inf, F32)
    hk, hq, hv = np.empty(8, np.int32), np.empty(8, np.int32), np.empty(8, F32)
    assert screen_block(np.zeros((3, 0)), np.zeros((2, 0)), mref, thr, acc, bmax, hk, hq, hv) == 6
    assert np.all(bmax == 0)


def test_prepare_packs_the_keys_for_the_int8_screen(monkeypatch):
    from tropix.attention import _inputs, screened
    from tropix.attention._kernels_numba import rownorms_finite

    rng = np.random.default_rng(5)
    q, k, v = 10 * rng.standard_normal((64, 32)), rng.standard_normal((4096, 32)), rng.standard_normal((4096, 8))
    P = _inputs.prepare(q, k, v, pack_i8=True)
    assert np.array_equal(P.ki8.bits, pack_keys(k).bits)
    assert P.ki8.resmax == pytest.approx(pack_keys(k).resmax, rel=1e-12)
    norms = np.empty(len(k))
    rownorms_finite(k, norms)
    np.testing.assert_allclose(P.knorm, norms, rtol=1e-14)  # (summed in another order)
    assert _inputs.prepare(q, k, v).ki8 is None
    assert _inputs.prepare(q, k, v, pack_i8=True, hash_keys=True).ki8 is None  # (a tree's pass: no packing)
    wide = np.ones((200, MAX_D + 1))
    assert _inputs.prepare(wide, wide, wide, pack_i8=True).ki8 is None  # too wide for the int8 kernels
    for bad in (np.inf, np.nan):
        kk = k.copy()
        kk[7, 3] = bad
        with pytest.raises(Exception, match="inf|NaN"):
            _inputs.prepare(q, kk, v, pack_i8=True)
    if _int8.available():  # the screen takes the packed keys: no second packing pass, the same result
        calls = []
        real = _int8.pack_keys
        monkeypatch.setattr(_int8, "pack_keys", lambda *a, **kw: calls.append(1) or real(*a, **kw))
        r = screened(q, k, v, eps=1e-3, precision="int8", check=True)
        assert calls == [] and np.all(r.relative_bound <= 1e-3)
        for mask in (np.arange(4096) < 3000, np.arange(4096) % 3 > 0):  # padding masks: the visible keys' rows
            r2 = screened(q, k, v, eps=1e-3, mask=mask, check=True)
            assert calls == [] and np.all(r2.relative_bound <= 1e-3)
        monkeypatch.setattr(_int8, "pack_keys", real)
        r3 = screened(q, k, v, eps=1e-3, precision="float32", check=True)
        assert np.allclose(r.output, r3.output, atol=2e-3 * np.linalg.norm(v, axis=1).max())


@needs_int8
def test_screened_int8_is_certified_and_as_sparse_as_bf16():
    from tropix.attention import screened

    rng = np.random.default_rng(3)
    n, d = 8192, 64
    k, v = rng.standard_normal((n, d)), rng.standard_normal((n, 16))
    q = rng.standard_normal((96, d)) / 0.1  # peaked scores on keys without geometry
    r8 = screened(q, k, v, eps=1e-3, precision="int8", check=True)
    r16 = screened(q, k, v, eps=1e-3, precision="float32", check=True)
    assert np.all(r8.relative_bound <= 1e-3) and r8.counters["dense_fallback_rows"] == 0
    # the screening error is a few times float32's, the cores hardly larger
    assert np.mean(r8.support) <= 1.5 * np.mean(r16.support) + 8


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 13), d=st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 512]),
       seed=st.integers(0, 2**31), kind=st.sampled_from(KINDS + ["huge"]))
def test_compiled_packer_matches_the_numba_one(n, d, seed, kind):
    # validation's packer compiled from LLVM IR (rows four at a time, then one by one): the same codes, scales
    # and corrections bit for bit as the numba loop, the norms and residual sums up to their summation order
    from tropix.attention import _int8_numba, _int8_pack

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * 1e200 if kind == "huge" else _rows(kind, rng, n, d)  # (squares overflow)
    dq = (d + 3) // 4
    out = {}
    for name in ("ir", "numba"):
        codes = np.full((n, 8 * dq + 12), 0x5A, np.uint8)  # (every byte must be written)
        norms, res = np.full(n, 7.0), np.full(n, 7.0)
        if name == "ir":
            ok = _int8_pack.rownorms_pack(x, norms, codes, res)
            assert ok is not None  # it compiles here
        else:
            ok = _int8_numba.rownorms_pack(x, norms, x.view(np.uint64), codes.view(np.int8), codes.view(np.int32),
                                           codes.view(np.float32), res)
        out[name] = bool(ok), codes, norms, res
    (ok1, c1, n1, r1), (ok2, c2, n2, r2) = out["ir"], out["numba"]
    assert ok1 and ok2
    assert np.array_equal(c1, c2)
    np.testing.assert_allclose(n1, n2, rtol=1e-13, atol=0)
    np.testing.assert_allclose(r1, r2, rtol=1e-12, atol=1e-300)
    if n:  # an inf or NaN anywhere is reported
        for bad in (np.inf, -np.inf, np.nan):
            y = x.copy()
            y[rng.integers(n), rng.integers(d)] = bad
            assert _int8_pack.rownorms_pack(y, np.empty(n), np.empty((n, 8 * dq + 12), np.uint8), np.empty(n)) is False


def test_pack_keys_without_the_compiled_packer(monkeypatch):
    from tropix.attention import _inputs, _int8_pack

    rng = np.random.default_rng(9)
    k = rng.standard_normal((300, 37))
    pk = pack_keys(k)
    monkeypatch.setattr(_int8_pack, "_compile", lambda: None)  # e.g. llvmlite refuses the IR: the numba loop
    pk2 = pack_keys(k)
    assert np.array_equal(pk.bits, pk2.bits) and pk.resmax == pytest.approx(pk2.resmax, rel=1e-12)
    assert pack_keys(k, residual=False).resmax is None
    q = rng.standard_normal((8, 37))
    k2 = rng.standard_normal((4096, 37))
    P = _inputs.prepare(q, k2, rng.standard_normal((4096, 2)), pack_i8=True)
    assert np.array_equal(P.ki8.bits, pack_keys(k2).bits)
