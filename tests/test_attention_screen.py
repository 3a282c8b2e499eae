"""Screened attention (float32 screen + exact float64 core): certified against dense, kernels = NumPy reference."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import dense, screened
from tropix.attention._inputs import prepare
from tropix.attention import _bf16, _int8
from tropix.attention.screen import BF16_MIN_KEYS, _ScreenHead, _screen_gemm, screen_error, screen_rows
from tropix.errors import BoundViolationError, NaNError, OptionError, ShapeError, ToleranceError

from conftest import LOW_PRECISIONS, clustered_qk, needs_bf16, to_np


def _check(res, q, k, v, eps, **kw):
    ref = to_np(dense(q, k, v, **kw))
    err = np.linalg.norm(to_np(res.output) - ref, axis=-1)
    assert np.all(err <= res.bound + res.reference_slack), float((err - res.bound - res.reference_slack).max())
    vmax = np.max(np.linalg.norm(np.asarray(to_np(v), dtype=float), axis=-1), axis=-1)[..., None]
    assert np.all((res.bound <= eps * vmax * (1 + 1e-12)) | (res.bound <= 4 * res.reference_slack + 1e-300))
    return err


def _inputs(seed, n, d, nq, kind):
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(n, d))
    v = rng.normal(size=(n, 3))
    q = rng.normal(size=(nq, d))
    if kind == "peaked":
        q *= 12
    elif kind == "ties":  # repeated keys: exact ties at the top
        k[: n // 2] = k[0]
        q = np.repeat(k[:1], nq, axis=0) * 8
    elif kind == "huge":
        q *= 1e4
    elif kind == "equal":  # all scores equal
        k[:] = k[0]
    elif kind == "dominant":
        k[n // 3] = 50 * q[0] / np.linalg.norm(q[0]) ** 2
        q = np.repeat(q[:1], nq, axis=0)
    return q, k, v


KINDS = ["flat", "peaked", "ties", "huge", "equal", "dominant"]


@given(st.integers(0, 10**6), st.integers(1, 300), st.sampled_from([1, 2, 7, 16]), st.sampled_from(KINDS),
       st.sampled_from([0.0, 1e-6, 1e-3, 0.1]))
@settings(max_examples=60, deadline=None)
def test_screened_within_certified_bound(seed, n, d, kind, eps):
    q, k, v = _inputs(seed, n, d, 9, kind)
    r = screened(q, k, v, eps=eps, check=True)
    _check(r, q, k, v, eps)
    assert r.method == "screened" and r.output.shape == (9, 3)


@given(st.integers(0, 10**6), st.integers(40, 400), st.sampled_from(KINDS), st.sampled_from([16, 64]),
       st.booleans())
@settings(max_examples=40, deadline=None)
def test_kernels_equal_numpy_reference(seed, n, kind, kblock, threshold):
    """Small key blocks exercise the first-block plan, the level counts and the row abort."""
    q, k, v = _inputs(seed, n, 6, 11, kind)
    P = prepare(q, k, v, None, None, None, False)
    H = _ScreenHead(P, (q, k, v), ())
    rows = np.arange(11)
    a = screen_rows(H, 1e-3, rows, kblock=kblock, threshold=threshold, use_kernel=True)
    b = screen_rows(H, 1e-3, rows, kblock=kblock, threshold=threshold, use_kernel=False)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-9)  # sums formed in another order
    np.testing.assert_array_equal(a[2], b[2])
    for (ra, ka), (rb, kb) in zip(a[3], b[3]):
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(np.sort(ka), np.sort(kb))
    # and both are certified
    ref = to_np(dense(q, k, v))
    for out, bound in (a[:2], b[:2]):
        ok = np.isfinite(bound)
        err = np.linalg.norm(out - ref, axis=1)
        assert np.all(err[ok] <= bound[ok] + H.rho[ok])


@given(st.integers(0, 10**6), st.sampled_from([8, 64, 256, 512]))
@settings(max_examples=40, deadline=None)
def test_multiblock_path_certified(seed, kblock):
    """Many blocks, peaked scores: the first block sets the margins, later blocks only count levels."""
    rng = np.random.default_rng(seed)
    n, d = 2000, 8
    C = rng.normal(size=(40, d))
    k = C[rng.integers(0, 40, n)] + 0.1 * rng.normal(size=(n, d))
    v = rng.normal(size=(n, 2))
    q = 25 * (C[rng.integers(0, 40, 12)] + 0.1 * rng.normal(size=(12, d)))
    P = prepare(q, k, v, None, None, None, False)
    H = _ScreenHead(P, (q, k, v), ())
    out, bound, support, kept, evals = screen_rows(H, 1e-3, np.arange(12), kblock=kblock)
    ref = to_np(dense(q, k, v))
    err = np.linalg.norm(out - ref, axis=1)
    ok = np.isfinite(bound)
    assert np.all(err[ok] <= bound[ok] + H.rho[ok])
    # (a finite bound above the request is allowed here: screened() recomputes such rows densely); with
    # blocks of 8 keys the first block says too little, rows may stop: only rigour is asserted then
    if kblock >= 64:
        assert np.count_nonzero(bound <= 1e-3 * H.vmax) >= 6


@given(st.integers(0, 10**6), st.integers(1, 300), st.sampled_from([1, 3, 16, 33]), st.sampled_from(KINDS),
       st.sampled_from([0.0, 1e-3, 0.1]), st.sampled_from([16, 64, 4096]))
@settings(max_examples=50, deadline=None)
@pytest.mark.parametrize("low", ["bf16", "int8"])
def test_low_precision_screen_certified(low, seed, n, d, kind, eps, kblock):
    """The bfloat16 and int8 screening GEMMs (forced; the next precision where the CPU lacks one) stay
    certified."""
    q, k, v = _inputs(seed, n, d, 7, kind)
    P = prepare(q, k, v, None, None, None, False)
    H = _ScreenHead(P, (q, k, v), ())
    out, bound, support, kept, evals = screen_rows(H, eps, np.arange(7), kblock=kblock, precision=low)
    ref = to_np(dense(q, k, v))
    err = np.linalg.norm(out - ref, axis=1)
    ok = np.isfinite(bound)
    assert np.all(err[ok] <= bound[ok] + H.rho[ok])


def test_bf16_screen_chosen_and_certified_on_large_peaked_input():
    rng = np.random.default_rng(7)
    n, d = BF16_MIN_KEYS * 2, 32
    C = rng.normal(size=(64, d))
    k = C[rng.integers(0, 64, n)] + 0.05 * rng.normal(size=(n, d))
    v = rng.normal(size=(n, 4))
    q = 10 * C[rng.integers(0, 64, 40)]
    P = prepare(q, k, v, None, None, None, False)
    H = _ScreenHead(P, (q, k, v), ())
    rows = np.arange(40)
    g = _screen_gemm(H, rows, "auto", True)
    # int8 first, then bfloat16, where the CPU has them
    assert g.low is (_int8 if _int8.available() else _bf16 if _bf16.available() else None)
    if g.low is _bf16:  # its error bound: from the actual rounding errors, about half of 2^-7 |q| max|k|
        prior = _bf16.error_bound(H.qn, H.kmax, d)
        assert np.all(g.err > 2.0**-10 * H.qn * H.kmax) and np.all(g.err < 0.7 * prior)
    if g.low is _int8:  # the queries' 8 bits: about 0.6 % of |q| max|k| at d = 32 (the keys' 15 bits add little)
        assert np.all(g.err > 2.0**-10 * H.qn * H.kmax) and np.all(g.err < 0.02 * H.qn * H.kmax)
    for precision in ("int8", "bf16", "float32"):
        r = screened(q, k, v, eps=1e-3, precision=precision, check=True)
        _check(r, q, k, v, 1e-3)
        assert np.median(r.support) < n / 20


def test_screen_gemm_cascade_int8_bf16_float32(monkeypatch):
    """precision="auto": int8 where its bound is at most BF16_MAX_ERROR, else bfloat16 where its bound is, else
    float32; a forced precision the CPU lacks falls back to the next."""
    from tropix.attention import screen as S

    rng = np.random.default_rng(8)
    n, d = BF16_MIN_KEYS * 2, 32
    k, v = rng.normal(size=(n, d)), rng.normal(size=(n, 4))
    q = 3 * rng.normal(size=(40, d))
    H = _ScreenHead(prepare(q, k, v, None, None, None, False), (q, k, v), ())
    rows = np.arange(40)
    top = _int8 if _int8.available() else _bf16 if _bf16.available() else None
    assert _screen_gemm(H, rows, "auto", True).low is top
    if _int8.available():  # int8's bound too large: bfloat16 (if the CPU has it)
        monkeypatch.setattr(_int8, "error_bound", lambda *a, **kw: np.full(np.shape(a[0]), 10.0))
        assert _screen_gemm(H, rows, "auto", True).low is (_bf16 if _bf16.available() else None)
        assert _screen_gemm(H, rows, "int8", True).low is _int8  # (forced: whatever its bound)
        monkeypatch.undo()
    monkeypatch.setattr(S, "BF16_MAX_ERROR", 0.0)  # every low-precision bound too large: float32
    assert _screen_gemm(H, rows, "auto", True).low is None
    monkeypatch.undo()
    monkeypatch.setattr(_int8, "_state", {"fn": None, "screen": None})  # a CPU without VNNI
    assert _screen_gemm(H, rows, "int8", True).low is (_bf16 if _bf16.available() else None)
    assert _screen_gemm(H, rows, "float32", True).low is None


def test_eps_zero_is_exact_with_score_gaps_wider_than_a_band():
    """Regression: with eps = 0 the margin is infinite; 0 * exp(huge) made the left-out mass NaN, the core
    lost every key below the top band and the NaN passed as a zero bound (a silent wrong answer)."""
    q = np.array([[-0.7], [-1.27], [0.04], [-2.3]])
    k = np.array([[0.126], [-0.132]])
    v = np.array([[1.0, 0.0], [0.0, 1.0]])
    r = screened(q, k, v, eps=0.0, check=True)
    np.testing.assert_allclose(to_np(r.output), to_np(dense(q, k, v)), rtol=0, atol=1e-15)
    assert np.all(r.support == 2)


def test_truncation_bound_never_passes_nan_as_small():
    from tropix.attention.bounds import truncation_bound
    b = truncation_bound(D=np.array([np.nan, 0.0]), V_D=1.0, onorm=1.0, Z_lo=1.0)
    assert np.isinf(b[0]) and b[1] == 0.0


def test_bad_precision():
    q = np.ones((2, 3))
    with pytest.raises(OptionError, match="precision"):
        screened(q, q, q, precision="fp8")


@pytest.mark.parametrize("extra", ["mask", "causal", "bias", "padding"])
def test_masks_causal_bias(extra):
    rng = np.random.default_rng(3)
    n = 600
    q, k, v = rng.normal(size=(30, 8)) * 6, rng.normal(size=(n, 8)), rng.normal(size=(n, 2))
    kw = {}
    if extra == "mask":
        m = rng.random((30, n)) > 0.3
        m[4] = False  # a fully masked row: output 0, bound 0
        kw["mask"] = m
    elif extra == "causal":
        kw["causal"] = True
    elif extra == "bias":
        b = rng.normal(size=(30, n)) * 3
        b[:, ::7] = -np.inf
        kw["bias"] = b
    else:
        kw["mask"] = rng.random(n) > 0.5  # key padding
    r = screened(q, k, v, eps=1e-3, check=True, **kw)
    _check(r, q, k, v, 1e-3, **kw)
    if extra == "mask":
        assert r.bound[4] == 0 and np.all(to_np(r.output)[4] == 0)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["none", "some", "all", "one"]), st.booleans())
def test_key_padding_masks_take_the_unmasked_path(seed, kind, bias_too):
    # a key-padding mask (per head, the same keys for every query) is screened as the head of its visible
    # keys: certified, kept keys never masked, support counts visible keys; a key-only bias is not a mask
    rng = np.random.default_rng(seed)
    n = 2500
    q, k, v = rng.normal(size=(2, 40, 8)) * 6, rng.normal(size=(2, n, 8)), rng.normal(size=(2, n, 3))
    pad = rng.random((2, 1, n)) > 0.4
    if kind == "none":
        pad[:] = True
    elif kind == "all":
        pad[1] = False  # every key of head 1 masked: zero output, zero bound
    elif kind == "one":
        pad[0] = False
        pad[0, 0, 7] = True
    kw = {"mask": pad}
    if bias_too:
        kw["bias"] = np.where(rng.random((2, 1, n)) > 0.5, 0.0, 1.5)
    r = screened(q, k, v, eps=1e-3, check=True, **kw)
    _check(r, q, k, v, 1e-3, **kw)
    for h in range(2):
        vis = np.flatnonzero(pad[h, 0])
        for i in (0, 17, 39):  # (with the bias, rows done densely record every key as evaluated)
            assert bias_too or np.isin(r.kept_keys(i, (h,)), vis).all()
        assert np.all(r.support[h] <= len(vis))
    if kind == "all":
        assert np.all(r.bound[1] == 0) and np.all(to_np(r.output)[1] == 0)
    if kind == "one":
        np.testing.assert_allclose(to_np(r.output)[0], np.broadcast_to(v[0, 7], (40, 3)), rtol=1e-12)


def test_key_padding_mask_uses_the_fused_screen(monkeypatch):
    from tropix.attention import screen as S

    q, k, v = _peaked_iid(6, n=6000, nq=64)
    pad = np.arange(6000) % 5 != 0
    calls = []
    monkeypatch.setattr(S, "screen_rows", lambda H, *a, _f=S.screen_rows, **kw: calls.append(H.extra) or _f(H, *a, **kw))
    r = screened(q, k, v, eps=1e-3, mask=pad, check=True)
    assert calls == [None]  # the head of the visible keys has no extra term: the unmasked (fused) path
    assert not np.isin(r.kept_keys(3), np.flatnonzero(~pad)).any()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 700), st.integers(1, 3000), st.sampled_from([16, 64, 4096]),
       st.sampled_from([4.0, 12.0]))
def test_causal_screen_cuts_the_hidden_keys_and_is_certified(seed, n_q, n_k, kblock, temp):
    # causal alone: per chunk of queries the keys past its last query are cut off, the first block holds the
    # diagonal part (hidden keys -inf) and the keys before it take the unmasked path; cores never hold a
    # hidden key; any row set (spread rows: a first block without a key the first rows see)
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(n_q, 8)) * temp, rng.normal(size=(n_k, 8)), rng.normal(size=(n_k, 3))
    P = prepare(q, k, v, None, None, None, True)
    H = _ScreenHead(P, (q, k, v), ())
    rows = np.sort(rng.choice(n_q, size=min(n_q, 300), replace=False))
    out, bound, support, kept, evals = screen_rows(H, 1e-3, rows, kblock=kblock)
    ref = to_np(dense(q, k, v, causal=True))[rows]
    ok = np.isfinite(bound)
    err = np.linalg.norm(out - ref, axis=1)
    assert np.all(err[ok] <= bound[ok] + H.rho[rows][ok])
    for t, (r, kk) in enumerate(kept):
        assert np.all(kk <= rows[t]) and support[t] <= min(rows[t] + 1, n_k)
    r = screened(q, k, v, eps=1e-3, causal=True, check=True)
    _check(r, q, k, v, 1e-3, causal=True)


def test_causal_self_attention_takes_the_fused_screen(monkeypatch):
    q, k, v = _peaked_iid(7, n=3000, nq=3000)
    calls = _spy_fused(monkeypatch)
    P = prepare(q, k, v, None, None, None, True)
    H = _ScreenHead(P, (q, k, v), ())
    out, bound, support, kept, evals = screen_rows(H, 1e-3, np.arange(3000), kblock=1024, precision="bf16")
    ref = to_np(dense(q, k, v, causal=True))
    ok = np.isfinite(bound)  # (a row the screen gives up on is computed densely by the caller)
    assert ok.mean() > 0.95 and np.median(support[ok]) < 60
    assert np.all(np.linalg.norm(out - ref, axis=1)[ok] <= bound[ok] + H.rho[ok])
    # chunks of 256 queries from the third on screen the keys before their first block with the fused kernel
    assert len(calls) >= 8 and all(stop == n for b0, stop, n in calls)


def test_peaked_iid_keys_keep_few_keys_and_bound_is_useful():
    """The case block bounds cannot prune: i.i.d. Gaussian keys, peaked scores (more than one key block)."""
    rng = np.random.default_rng(0)
    n, d = 9000, 32
    q, k, v = rng.normal(size=(40, d)) / 0.1, rng.normal(size=(n, d)), rng.normal(size=(n, 4))
    r = screened(q, k, v, eps=1e-3, check=True)
    err = _check(r, q, k, v, 1e-3)
    assert r.counters["dense_fallback_rows"] <= 4
    assert np.median(r.support) < 0.01 * n
    assert np.median([len(r.kept_keys(i)) for i in range(40)]) < 0.05 * n
    big = err > 1e-12
    ratio = np.median(r.bound[big] / err[big])
    assert 1 <= ratio < 1e3  # rigorous, and within three orders of magnitude of the true error


def test_flat_scores_fall_back_to_dense_rows():
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(10, 8)) * 0.1, rng.normal(size=(5000, 8)), rng.normal(size=(5000, 2))
    r = screened(q, k, v, eps=1e-3, check=True)
    assert r.counters["dense_fallback_rows"] == 10
    _check(r, q, k, v, 1e-3)


def test_float32_overflow_guard():
    rng = np.random.default_rng(2)
    q, k, v = rng.normal(size=(5, 4)) * 1e20, rng.normal(size=(300, 4)) * 1e20, rng.normal(size=(300, 2))
    r = screened(q, k, v, eps=1e-3, check=True)  # |q||k| ~ 1e40 overflows float32: every row done densely
    assert r.counters["dense_fallback_rows"] == 5 and r.counters["score_evals"] == 5 * 300
    np.testing.assert_array_equal(to_np(r.output), to_np(dense(q, k, v)))


def test_screen_error_is_rigorous_against_exact_arithmetic():
    rng = np.random.default_rng(4)
    for trial in range(200):
        d = int(rng.integers(1, 65))
        q = rng.normal(size=d) * 10.0 ** rng.integers(-3, 4)
        k = rng.normal(size=d)
        if trial % 3 == 0:  # cancellation
            k[: d // 2] = -k[d // 2: 2 * (d // 2)] * (q[d // 2: 2 * (d // 2)] / np.where(q[: d // 2] == 0, 1, q[: d // 2]))
        s32 = float(np.dot(q.astype(np.float32), k.astype(np.float32)))
        s64 = float(np.dot(q, k))
        exact = sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(q, k))
        e = float(screen_error(np.array([np.linalg.norm(q)]), float(np.linalg.norm(k)), float(np.abs(k).max()),
                               float(np.abs(q).max()), d)[0])
        assert abs(Fraction(s32) - exact) <= Fraction(e)
        assert abs(Fraction(s32) - Fraction(s64)) <= Fraction(e)


def test_torch_and_batched_heads():
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(2, 3, 7, 8)) * 8, rng.normal(size=(2, 3, 500, 8)), rng.normal(size=(2, 3, 500, 4))
    r = screened(torch.tensor(q), torch.tensor(k), torch.tensor(v), eps=1e-3, check=True)
    assert isinstance(r.output, torch.Tensor) and r.output.shape == (2, 3, 7, 4)
    _check(r, q, k, v, 1e-3)
    r32 = screened(torch.tensor(q, dtype=torch.float32), torch.tensor(k, dtype=torch.float32),
                   torch.tensor(v, dtype=torch.float32), eps=1e-3)
    assert r32.output.dtype == torch.float32


def test_check_raises_on_a_wrong_bound(monkeypatch):
    import tropix.attention.screen as sc

    rng = np.random.default_rng(6)
    q, k, v = rng.normal(size=(5, 8)) * 8, rng.normal(size=(800, 8)), rng.normal(size=(800, 2))
    real, real_numpy = sc._row_bounds(), sc._row_bounds_numpy

    def dropped_mass_ignored(o, Z, D, VD, ncore, rho, b):  # the bound without its truncation term
        real(o, Z, D * 0.0, VD, ncore, rho, b)

    monkeypatch.setattr(sc, "_row_bounds", lambda: dropped_mass_ignored)
    with pytest.raises(BoundViolationError):
        screened(q, k, v, eps=0.5, check=True)
    monkeypatch.setattr(sc, "_row_bounds_numpy", lambda o, Z, D, VD, ncore, rho: real_numpy(o, Z, 0 * D, VD, ncore, rho))
    monkeypatch.setattr(sc, "_kernels", lambda: None)
    with pytest.raises(BoundViolationError):
        screened(q, k, v, eps=0.5, check=True)


def test_row_bounds_kernel_matches_numpy():
    from tropix.attention._screen_numba import row_bounds
    from tropix.attention.screen import _row_bounds_numpy

    rng = np.random.default_rng(11)
    m = 64
    o = rng.normal(size=(m, 3)) * np.exp(rng.uniform(-400, 400, size=(m, 1)))
    o[3] = 0.0
    Z = rng.uniform(0, 2, m)
    Z[[0, 5, 9]] = [-1.0, 0.0, np.nan]
    D = rng.uniform(0, 1e-3, m)
    D[[1, 2, 6, 7]] = [0.0, np.inf, np.nan, 1e300]
    VD = rng.uniform(0, 1, m)
    VD[[8, 10]] = [np.inf, np.nan]
    ncore = rng.integers(0, 5, m)
    rho = rng.uniform(0, 1e-12, m)
    o1, o2, b1 = o.copy(), o.copy(), np.empty(m)
    row_bounds(o1, Z, D, VD, ncore, rho, b1)
    b2 = _row_bounds_numpy(o2, Z, D, VD, ncore, rho)
    np.testing.assert_array_equal(o1, o2)
    fin = np.isfinite(b2)
    np.testing.assert_array_equal(np.isfinite(b1), fin)  # inf (or a NaN input) in the same rows
    np.testing.assert_allclose(b1[fin], b2[fin], rtol=1e-14, atol=0)  # (norms summed in another order)


def test_bad_input():
    rng = np.random.default_rng(7)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(10, 4)), rng.normal(size=(10, 2))
    with pytest.raises(ToleranceError):
        screened(q, k, v, eps=-1e-3)
    with pytest.raises(ShapeError):
        screened(q, rng.normal(size=(10, 5)), v)
    with pytest.raises(NaNError):
        screened(np.full((3, 4), np.nan), k, v)
    with pytest.raises(ShapeError):
        screened(q, k, v, mask=np.ones((2, 10), dtype=bool))




def _spy_fused(monkeypatch):
    """Record ``(first key, first key not screened, end)`` of every run of the fused screen."""
    from tropix.attention import screen as S

    calls = []
    orig = S._FusedScreen.run

    def spy(self, qp, b0, n, *a):
        stop = orig(self, qp, b0, n, *a)
        calls.append((b0, stop, n))
        return stop

    monkeypatch.setattr(S._FusedScreen, "run", spy)
    return calls


def _peaked_iid(seed, n=6000, d=32, nq=80):
    rng = np.random.default_rng(seed)
    return 10 * rng.normal(size=(nq, d)), rng.normal(size=(n, d)), rng.normal(size=(n, 5))


@pytest.mark.parametrize("low", LOW_PRECISIONS)
@pytest.mark.parametrize("seed", [0, 1])
def test_fused_screen_agrees_with_unfused_and_is_certified(low, seed, monkeypatch):
    from tropix.attention import screen as S

    q, k, v = _peaked_iid(seed)
    calls = _spy_fused(monkeypatch)
    fused = screened(q, k, v, eps=1e-3, precision=low, check=True)
    assert calls and all(stop == n for b0, stop, n in calls)  # every later block went through the fused kernel
    monkeypatch.setattr(S._Gemm, "fused", lambda self: None)
    n_calls = len(calls)
    plain = screened(q, k, v, eps=1e-3, precision=low, check=True)
    assert len(calls) == n_calls  # the unfused scan throughout
    diff = np.linalg.norm(to_np(fused.output) - to_np(plain.output), axis=1)
    assert np.all(diff <= fused.bound + plain.bound + fused.reference_slack)
    assert fused.counters["dense_fallback_rows"] == plain.counters["dense_fallback_rows"] == 0
    # both certify the same cores up to the keys near the cut
    assert abs(np.median(fused.support) - np.median(plain.support)) <= 0.2 * np.median(plain.support) + 2


@pytest.mark.parametrize("low", LOW_PRECISIONS)
def test_fused_screen_hit_overflow_falls_back_to_the_unfused_scan(low, monkeypatch):
    from tropix.attention import screen as S

    q, k, v = _peaked_iid(3)
    monkeypatch.setattr(S, "FUSED_HITS", 0)  # a 64-entry hit buffer: every block overflows
    calls = _spy_fused(monkeypatch)
    r = screened(q, k, v, eps=1e-3, precision=low, check=True)
    assert calls and all(stop == b0 for b0, stop, n in calls)  # each block overflowed and went the unfused way
    _check(r, q, k, v, 1e-3)
    assert np.median(r.support) < 100


@pytest.mark.parametrize("low", LOW_PRECISIONS)
def test_fused_screen_over_several_query_chunks(low):
    # 600 queries: three chunks of 256 / 256 / 88, each with its own fused pass over the keys
    q, k, v = _peaked_iid(4, n=5000, nq=600)
    r = screened(q, k, v, eps=1e-3, precision=low, check=True)
    _check(r, q, k, v, 1e-3)
    assert r.counters["dense_fallback_rows"] == 0 and np.median(r.support) < 100


@needs_bf16
def test_fused_inputs_rows_given_up_are_hit_only_above_their_maximum():
    # a query no longer tracked (cnt < 0) gets the threshold smax: in the fused kernel only keys above its
    # running maximum hit (a handful), not the whole margin below it
    from tropix.attention._screen_numba import fused_inputs

    q, k, v = _peaked_iid(5, n=4096, nq=64)
    pk, pq = _bf16.pack_keys(k), _bf16.pack_queries(q)
    S = _bf16.scores(pk, pq)  # (keys, queries) float32
    smax = S[:1024].max(axis=0).astype(np.float32)  # the maxima of a first block
    tauc = np.full(64, 150.0)  # raw scores q . k, standard deviation about 57
    cnt = np.zeros(64, dtype=np.int64)
    cnt[::2] = -1
    thr, acc, bmax, mref = (np.empty(64, np.float32) for _ in range(4))
    assert fused_inputs(smax, tauc, cnt, thr, acc, bmax, mref)
    assert np.array_equal(thr[::2], smax[::2]) and np.all(thr[1::2] <= smax[1::2] - 149.9)
    assert np.array_equal(mref, smax)
    hk, hq = np.empty(4096 * 64, np.int32), np.empty(4096 * 64, np.int32)
    hv = np.empty(4096 * 64, np.float32)
    rest = _bf16.BF16Keys(pk.bits[1024:], pk.d)
    c = _bf16.screen_block(rest, pq, smax, thr, acc, bmax, hk, hq, hv, joff=1024)
    per_row = np.bincount(hq[:c], minlength=64)
    above = (S[1024:] >= smax).sum(axis=0)
    assert np.array_equal(per_row[::2], above[::2])  # given up: exactly the keys at or above the maximum
    assert np.array_equal(per_row[1::2], (S[1024:] >= thr).sum(axis=0)[1::2])
    assert per_row[1::2].sum() > 10 * max(per_row[::2].sum(), 1)


def test_fused_inputs_rows_without_a_finite_maximum():
    # a query that has seen only -inf scores (every key so far hidden) gets the finite reference and threshold
    # -FLT_MAX: each finite score of the next block is a hit; a query no longer tracked gets no hits
    from tropix.attention._screen_numba import fused_inputs

    lo = -np.finfo(np.float32).max
    smax = np.array([-np.inf, -np.inf, 3.0], np.float32)
    cnt = np.array([0, -1, 0])
    thr, acc, bmax, mref = (np.empty(3, np.float32) for _ in range(4))
    assert fused_inputs(smax, np.full(3, 2.0), cnt, thr, acc, bmax, mref)
    assert list(mref) == [lo, lo, 3.0] and list(thr) == [lo, -lo, 1.0]
    assert not fused_inputs(np.array([np.inf], np.float32), np.zeros(1), np.zeros(1, np.int64), thr[:1], acc[:1],
                            bmax[:1], mref[:1])


@needs_bf16
def test_windowed_bias_keeps_the_fused_path(monkeypatch):
    # a sliding-window bias (-inf far from each query's position): queries whose window starts late see only
    # -inf in the first blocks; the fused kernel screens those blocks too (no unfused block after the first)
    from tropix.attention import screen as S

    rng = np.random.default_rng(8)
    n, d = 9000, 32
    k, v = rng.normal(size=(n, d)), rng.normal(size=(n, 3))
    q = rng.normal(size=(128, d)) * 10  # peaked scores
    pq, pk = np.linspace(0, n - 1, 128).round(), np.arange(float(n))
    bias = -0.002 * np.abs(pq[:, None] - pk[None, :])
    bias[np.abs(pq[:, None] - pk[None, :]) > 3000] = -np.inf
    unfused = []
    real = S._Gemm.block
    monkeypatch.setattr(S._Gemm, "block", lambda self, qp, b0, b1, out: unfused.append((b0, b1)) or
                        real(self, qp, b0, b1, out))
    r = screened(q, k, v, eps=1e-3, bias=bias, precision="bf16", check=True)
    _check(r, q, k, v, 1e-3, bias=bias)
    assert all(b1 <= S.FIRST_PROBE or b0 < 1024 for b0, b1 in unfused), unfused  # only the probe / first block
    # (a query entering its window collects every finite key of that block: now and then one overflows its cap)
    assert r.counters["dense_fallback_rows"] <= 2 and np.median(r.support) < 200


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_padding_like_bias_with_dense_rows(precision):
    # regression (found by fuzzing): a per-key bias of 0 and -inf is screened as the head of its visible keys;
    # the rows computed densely there must not add the whole head's bias to the visible keys' scores
    if precision == "bf16" and not _bf16.available():
        precision = "float32"
    rng = np.random.default_rng(12)
    q, k, v = rng.normal(size=(296, 64)), rng.normal(size=(4250, 64)), rng.normal(size=(4250, 2))
    b = np.zeros((1, 4250))
    b[0, rng.random(4250) < 0.87] = -np.inf
    r = screened(q, k, v, eps=0.1, bias=b, precision=precision, check=True)
    _check(r, q, k, v, 0.1, bias=b)
    assert r.counters["dense_fallback_rows"] > 0 and np.all(r.support == np.isfinite(b).sum())


def _weights(s, m):
    """The counted-key weights of scan_block / screen_block (their NumPy reference, bit for bit the kernels')."""
    return _bf16._weights_numpy(np.asarray(s, np.float32), np.asarray(m, np.float32))


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 1e3, 1e5])
def test_counted_weight_is_a_rigorous_upper_bound_of_exp(scale):
    # the certificate's claim for every key that is only counted: exp(s - m) <= w <= 1.0625 exp(s - m)
    # (above the clamp at 2^-126), for float32 scores s <= m; checked against long double exp of the exact
    # difference, on random scores and on dense sweeps near each power of two of the exponent
    rng = np.random.default_rng(int(scale * 7) % 1000)
    m = np.float32(scale * rng.normal(size=20000))
    x = np.concatenate([-rng.exponential(5.0, size=20000), -np.abs(rng.normal(size=20000)) * 1e-3])
    x = np.concatenate([x, (np.arange(-87 * 64, 1) / 64.0).astype(np.float64)])
    m = np.resize(m, x.shape).astype(np.float32)
    s = (m.astype(np.float64) + x).astype(np.float32)
    s = np.minimum(s, m)  # counted keys are never above the maximum
    w = _weights(s, m).astype(np.longdouble)
    ex = np.exp(s.astype(np.longdouble) - m.astype(np.longdouble))
    assert np.all(w >= ex * (1 - 1e-18))
    live = ex > 2.0**-125
    assert np.all(w[live] <= ex[live] * 1.0625 * (1 + 2.0**-10))
    # below the clamp the weight is the clamp value, tiny but never zero
    assert np.all(w[~live] >= 2.0**-126)


def _first_block_state(q, k, cap, nkeys):
    """The bfloat16 screen of one chunk of queries over keys ``0 .. nkeys-1``: the packed GEMM, the fused screen
    and a fresh screening state (smax = -inf, nothing collected or counted)."""
    P = prepare(q, k, np.ones((len(k), 1)), None, None, None, False)
    H = _ScreenHead(P, (q, k, np.ones((len(k), 1))), ())
    rows = np.arange(len(q))
    g = _screen_gemm(H, rows, "bf16", True)
    m = len(q)
    state = (np.full(m, -np.inf, np.float32), np.empty((m, cap), np.int32), np.empty((m, cap), np.float32),
             np.zeros(m, np.int64), np.zeros(m))
    return g, g.queries(rows), state


@needs_bf16
@pytest.mark.parametrize("kind, cap", [("peaked", 1024), ("ties", 1024), ("dominant", 1024), ("flat", 1024),
                                       ("flat", 40), ("equal", 1024)])
def test_fused_first_block_collects_and_counts_as_the_unfused_scan(kind, cap):
    # the two fused passes over a first block (exact maxima, then the screen against them) against
    # advance_maxima + scan_block on the stored bfloat16 scores: the same maxima, the same keys collected
    # (also the same rows overflowing cap), the counted mass equal up to the float32 summation order
    from tropix.attention._screen_numba import advance_maxima, scan_block

    nq, f1 = 70, 1024
    q, k, _ = _inputs(7, 3000, 32, nq, kind)
    g, qp, (sm_f, ci_f, cv_f, cn_f, du_f) = _first_block_state(q, k, cap, f1)
    _, _, (sm_u, ci_u, cv_u, cn_u, du_u) = _first_block_state(q, k, cap, f1)
    S = g.block(qp, 0, f1, np.empty((f1, nq), np.float32))
    # margins up to the 95 % quantile of each query's scores (the hits fit the fused kernel's buffer), and
    # nothing below the maximum / every key / a hair's width
    tauc = np.random.default_rng(1).uniform(0.0, 1.0, nq) * (S.max(axis=0) - np.quantile(S, 0.95, axis=0))
    tauc[:3] = 0.0, 1e300, 1e-3
    # as _screen_rows does it: the fused passes, and the unfused scan of the block if the kernel refuses it
    g0 = g.fused().first(qp, 0, f1, tauc, cap, sm_f, ci_f, cv_f, cn_f, du_f)
    # (half or all of the keys tied at the top: too many hits for the buffer, the kernel refuses the block)
    assert g0 == (0 if kind in ("ties", "equal") else f1)
    if g0 < f1:
        advance_maxima(S, sm_f, du_f)
        scan_block(S, 0, f1, 0, tauc, cap, False, sm_f, np.full(nq, f1), ci_f, cv_f, cn_f, du_f)
    advance_maxima(S, sm_u, du_u)
    scan_block(S, 0, f1, 0, tauc, cap, False, sm_u, np.full(nq, f1), ci_u, cv_u, cn_u, du_u)
    assert np.array_equal(sm_f, S.max(axis=0)) and np.array_equal(sm_f, sm_u)
    assert np.array_equal(cn_f, cn_u)
    assert (kind != "flat" or cap > 100) or np.any(cn_u < 0)  # the small cap does overflow some rows
    for r in np.flatnonzero(cn_u >= 0):
        c = cn_u[r]
        assert sorted(ci_f[r, :c].tolist()) == sorted(ci_u[r, :c].tolist())
        o_f, o_u = np.argsort(ci_f[r, :c]), np.argsort(ci_u[r, :c])
        assert np.array_equal(cv_f[r, :c][o_f], cv_u[r, :c][o_u])
        assert np.array_equal(cv_u[r, :c][o_u], S[np.sort(ci_u[r, :c]), r])
    live = cn_u >= 0
    # each is the sum of the same float32 weights, rounded within a factor 1 + f1 2^-24, times 1 + f1 2^-23
    assert np.all(np.abs(du_f[live] - du_u[live]) <= 2 * f1 * 2.0**-24 * du_u[live] + 1e-300)
    assert tauc[0] == 0 and cn_u[0] >= 1 and du_u[1] == 0 and cn_u[1] in (f1, -1)


@pytest.mark.parametrize("low", LOW_PRECISIONS)
@pytest.mark.parametrize("seed", [0, 2])
def test_first_block_goes_through_the_fused_kernel_and_agrees_with_the_unfused_scan(low, seed, monkeypatch):
    from tropix.attention import screen as S

    q, k, v = _peaked_iid(seed, n=11000, nq=300)  # two chunks of queries, first blocks of 1024 keys
    calls = _spy_fused(monkeypatch)
    fused = screened(q, k, v, eps=1e-3, precision=low, check=True)
    # per chunk: the first block [0, 1024) in one fused run, then the keys after it
    starts = [c for c in calls if c[0] == 0]
    assert len(starts) == 2 and all(c == (0, 1024, 1024) for c in starts)
    assert all(stop == n for b0, stop, n in calls)
    monkeypatch.setattr(S, "FIRST_FUSED", False)
    n_calls = len(calls)
    plain = screened(q, k, v, eps=1e-3, precision=low, check=True)
    assert len(calls) - n_calls == 2 and all(c[0] == 1024 for c in calls[n_calls:])  # only the later blocks
    _check(fused, q, k, v, 1e-3)
    # the same candidates, so the same cores and the same float64 work; outputs within the bounds
    assert fused.counters["score_evals"] == plain.counters["score_evals"]
    assert all(np.array_equal(np.sort(fused.kept_keys(i)), np.sort(plain.kept_keys(i))) for i in range(len(q)))
    diff = np.linalg.norm(to_np(fused.output) - to_np(plain.output), axis=1)
    assert np.all(diff <= fused.bound + plain.bound + fused.reference_slack)
    assert np.allclose(fused.bound, plain.bound, rtol=1e-3, atol=0)
    n_calls = len(calls)
    monkeypatch.setattr(S, "FIRST_FUSED", True)
    _check(screened(q, k, v, eps=1e-3, precision="float32", check=True), q, k, v, 1e-3)
    assert len(calls) == n_calls  # the float32 sgemm: no fused kernel at all


@pytest.mark.parametrize("low", LOW_PRECISIONS)
def test_first_block_hit_overflow_falls_back_to_the_unfused_scan(low, monkeypatch):
    from tropix.attention import screen as S

    q, k, v = _peaked_iid(6, n=11000, nq=100)
    monkeypatch.setattr(S, "FUSED_HITS", 0)  # a 64-entry hit buffer: the first block's screen overflows
    calls = _spy_fused(monkeypatch)
    r = screened(q, k, v, eps=1e-3, precision=low, check=True)
    assert calls[0] == (0, 0, 1024)  # refused: the first block went the unfused way
    monkeypatch.setattr(S, "FIRST_FUSED", False)
    ref = screened(q, k, v, eps=1e-3, precision=low, check=True)
    # the unfused scan of the whole first block, on the maxima the first pass found: the same result
    assert np.array_equal(to_np(r.output), to_np(ref.output)) and np.array_equal(r.bound, ref.bound)
    _check(r, q, k, v, 1e-3)


@needs_bf16
@needs_bf16
def test_crowded_probe_stops_only_the_flat_rows(monkeypatch):
    # 70 flat rows and 30 peaked ones: the probe is crowded, the flat rows stop at once and are computed
    # densely, the peaked ones are screened as usual (small supports); certified either way
    from tropix.attention import screen as S

    q, k, v = _peaked_iid(5, n=11000, nq=30)
    q = np.concatenate([0.01 * np.random.default_rng(6).normal(size=(70, q.shape[1])), q])
    seen = []
    real = S._crowded
    monkeypatch.setattr(S, "_crowded", lambda *a: seen.append(real(*a)) or seen[-1])
    r = screened(q, k, v, eps=1e-3, precision="bf16", check=True)
    _check(r, q, k, v, 1e-3)
    assert len(seen) == 1 and seen[0] is not None
    assert np.all(r.support[:70] == len(k)) and np.all(r.support[70:] < len(k) // 20)
    assert r.counters["dense_fallback_rows"] == 70


def test_crowded_first_block_is_scanned_unfused(monkeypatch):
    # flat scores (every key near each query's maximum): the probe of the first block's first keys sees it and
    # the block is scanned unfused (no maxima pass and no collection pass that would overflow); peaked scores
    # are not crowded; either way the result is certified and equal to the unfused path's
    from tropix.attention import screen as S

    rng = np.random.default_rng(3)
    k, v = rng.normal(size=(11000, 32)), rng.normal(size=(11000, 5))
    flat = 0.01 * rng.normal(size=(100, 32))
    calls = _spy_fused(monkeypatch)
    seen = []
    real = S._crowded
    monkeypatch.setattr(S, "_crowded", lambda *a: seen.append(real(*a)) or seen[-1])
    r = screened(flat, k, v, eps=1e-3, precision="bf16", check=True)
    # crowded: per query the probe keys near its maximum (all 128 here), no fused run started at the first key
    assert len(seen) == 1 and seen[0] is not None and np.all(seen[0][0] == 128)
    assert not any(c[0] == 0 for c in calls)
    _check(r, flat, k, v, 1e-3)
    assert r.counters["dense_fallback_rows"] == 100  # every row stopped (at the probe) and was computed densely
    monkeypatch.setattr(S, "FIRST_FUSED", False)  # (no probe: the rows stop after the first block instead)
    ref = screened(flat, k, v, eps=1e-3, precision="bf16", check=True)
    assert ref.counters["dense_fallback_rows"] == 100
    assert np.array_equal(to_np(r.output), to_np(ref.output)) and np.array_equal(r.bound, ref.bound)
    monkeypatch.setattr(S, "FIRST_FUSED", True)
    q, k2, v2 = _peaked_iid(4, n=11000, nq=100)
    seen.clear()
    _check(screened(q, k2, v2, eps=1e-3, precision="bf16", check=True), q, k2, v2, 1e-3)
    assert seen == [None]


@needs_bf16
@pytest.mark.parametrize("seed", [0, 1])
def test_rows_stopped_against_a_maximum_far_below_their_own_are_screened_again(seed, monkeypatch):
    """Tight clusters of 8 keys among 8192 (fewer than one per first block): a query whose first block (or
    probe) holds no key of its cluster sees a maximum far below its own and many keys near it, and stops.  The
    fused kernel keeps its maximum; a second screen from that maximum certifies it with few keys."""
    from tropix.attention import screen as S

    rng = np.random.default_rng(seed)
    n, d = 8192, 32
    q, k, _ = clustered_qk(rng, n, d, 8, 128, 0.25)
    v = rng.normal(size=(n, 3))
    calls = []
    monkeypatch.setattr(S, "_screen_rows", lambda *a, f=S._screen_rows, **kw: calls.append((a, kw)) or f(*a, **kw))
    r = screened(q, k, v, eps=1e-3, check=True)
    _check(r, q, k, v, 1e-3)
    again = [len(a[2]) for a, kw in calls if kw.get("hint") is not None]
    assert len(again) == 1 and r.counters["screen_evals"] == (128 + again[0]) * n  # (twice for those rows)
    monkeypatch.setattr(S, "MISS_GAP", np.inf)  # no second screen
    r0 = screened(q, k, v, eps=1e-3, check=True)
    _check(r0, q, k, v, 1e-3)
    assert r0.counters["dense_fallback_rows"] > 20 and r.counters["dense_fallback_rows"] < 10
    assert np.median(r.support) < 100
    gap = np.linalg.norm(r.output - r0.output, axis=-1)
    assert np.all(gap <= r.bound + r0.bound + 2 * r.reference_slack)


def test_absorb_block_keeps_the_maximum_of_a_row_no_longer_tracked():
    from tropix.attention._screen_numba import absorb_block

    smax = np.array([1.0, 1.0], np.float32)
    bmax = np.array([5.0, 5.0], np.float32)
    acc = np.array([0.5, 0.5], np.float32)
    cnt = np.array([-1, 0])
    dun = np.array([2.0, 2.0])
    cidx, cval = np.zeros((2, 4), np.int32), np.zeros((2, 4), np.float32)
    hk, hq, hv = np.array([7, 8], np.int32), np.array([0, 1], np.int32), np.array([5.0, 5.0], np.float32)
    absorb_block(2, hk, hq, hv, acc, bmax, 16, 4, smax, cidx, cval, cnt, dun)
    assert list(smax) == [5.0, 5.0] and list(cnt) == [-1, 1] and cidx[1, 0] == 8
    assert dun[0] == 2.0  # not tracked: its mass is left alone
    assert np.isclose(dun[1], (2.0 + 0.5 * (1 + 16 * 2.0**-23)) * np.exp(-4.0), rtol=1e-12)


@needs_bf16
@pytest.mark.parametrize("kind", ["none", "padding", "key bias", "bias", "causal"])
@pytest.mark.parametrize("size", [4, 16])
def test_second_screen_with_extra_terms_is_certified(kind, size):
    """The second screen of rows stopped against a low maximum, with each extra term the fused path takes:
    certified, and no worse than without it (a row screened again never loses its certificate)."""
    from tropix.attention import screen as S

    rng = np.random.default_rng(size)
    n, d, nq = 8192, 16, 96
    q, k, C = clustered_qk(rng, n, d, size, nq, 0.2, spread=0.02)
    v = rng.normal(size=(n, 2))
    kw = {}
    if kind == "padding":
        kw["mask"] = rng.random(n) > 0.2
    elif kind == "key bias":
        kw["bias"] = np.where(rng.random(n) > 0.9, -np.inf, rng.normal(size=n))[None, :]
    elif kind == "bias":
        kw["bias"] = rng.normal(size=(nq, n))
    elif kind == "causal":  # self-attention: as many queries as keys
        n = nq = 4096
        k, v = k[:n], v[:n]
        q = (C[rng.integers(0, len(C), n)] + 0.02 * rng.normal(size=(n, d))) / 0.2
        kw["causal"] = True
    r = screened(q, k, v, eps=1e-3, check=True, **kw)
    _check(r, q, k, v, 1e-3, **kw)
    old = S.MISS_GAP
    try:
        S.MISS_GAP = np.inf
        r0 = screened(q, k, v, eps=1e-3, **kw)
    finally:
        S.MISS_GAP = old
    assert r.counters["dense_fallback_rows"] <= r0.counters["dense_fallback_rows"]
