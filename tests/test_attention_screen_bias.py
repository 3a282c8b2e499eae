"""Screened attention with a query-dependent additive bias on the fused path: the bias-tile variant of the
fused bfloat16 kernel against a NumPy reference bit for bit, the bias tiles (transposer), the one-pass bias
validation, and ``screened`` with biases certified against dense attention (``check=True`` everywhere)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import _bf16, _screen_numba, auto, dense, screened
from tropix.attention._bf16 import available, pack_keys, pack_queries, scores, screen_block
from tropix.errors import ConventionError, NaNError, ShapeError
from conftest import needs_bf16

F32 = np.float32


def _hits(n):
    return np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, F32)


def _blocked(b):
    """The query-blocked float32 layout by NumPy: [g, j, t] = fl32(b[16 g + t, j]), missing queries 0."""
    nq, nk = b.shape
    full = np.zeros(((nq + 15) // 16 * 16, nk), F32)
    full[:nq] = b.astype(F32)
    return np.ascontiguousarray(full.reshape(-1, 16, nk).transpose(0, 2, 1))


@needs_bf16
@pytest.mark.parametrize("seed", range(5))
def test_biased_kernel_matches_numpy_bit_for_bit(seed):
    """fl32(S + bias) screened by the kernel variant == the NumPy scan of the same float32 scores: same hits
    (key, query, value), same block maxima, same counted weights; -inf bias entries never hit.  The kernel
    reading the bias blocked by 16 queries (validation's layout; odd query counts leave the last group partly
    empty) gives exactly what it gives on the keys x queries table."""
    rng = np.random.default_rng(seed)
    n, m, d = [(300, 70, 64), (1024, 256, 32), (37, 5, 7), (160, 64, 16), (161, 33, 16)][seed]
    k, q = rng.normal(size=(n, d)), 3 * rng.normal(size=(m, d))
    pk, pq = pack_keys(k), pack_queries(q)
    S = scores(pk, pq)
    bias = rng.normal(scale=2.0, size=(n, m)).astype(F32)
    bias[rng.random((n, m)) < 0.2] = -np.inf
    Sb = (S + bias).astype(F32)
    fin = np.where(np.isfinite(Sb), Sb, -np.inf)
    mref = np.maximum(fin.max(axis=0), -10).astype(F32)
    thr = np.maximum(mref - 3.0, -np.finfo(F32).max).astype(F32)
    a1, m1 = np.zeros(m, F32), np.full(m, -np.inf, F32)
    h1 = _hits(n * m)
    c1 = screen_block(pk, pq, mref, thr, a1, m1, *h1, joff=11, bias=bias)
    a2, m2 = np.zeros(m, F32), np.full(m, -np.inf, F32)
    h2 = _hits(n * m)
    c2 = _bf16._screen_numpy(Sb, mref, thr, a2, m2, *h2, 11)
    assert c1 == c2 > 0
    got = sorted(zip(*(h[:c1].tolist() for h in h1)))
    assert got == sorted(zip(*(h[:c2].tolist() for h in h2)))
    assert all(np.isfinite(v) for _, _, v in got)
    assert np.array_equal(m1, m2)
    # the weights are summed in another order: equal within the documented rounding of the float32 sums
    assert np.all(np.abs(a1.astype(float) - a2) <= a2 * n * 2.0**-23 + 1e-38)
    blocked = _blocked(bias.T)
    assert np.array_equal(_bf16.blocked_bias_table(blocked, m), bias)
    a3, m3 = np.zeros(m, F32), np.full(m, -np.inf, F32)
    h3 = _hits(n * m)
    c3 = screen_block(pk, pq, mref, thr, a3, m3, *h3, joff=11, bias=blocked)
    assert c3 == c1 and sorted(zip(*(h[:c3].tolist() for h in h3))) == got
    assert np.array_equal(m3, m1) and np.array_equal(a3, a1)


@needs_bf16
def test_biased_kernel_rejects_bad_bias_shape():
    pk, pq = pack_keys(np.ones((4, 2))), pack_queries(np.ones((3, 2)))
    z = np.zeros(3, F32)
    with pytest.raises(ShapeError):
        screen_block(pk, pq, z, z, z.copy(), z.copy(), *_hits(8), bias=np.zeros((3, 4), F32))
    with pytest.raises(ShapeError):
        screen_block(pk, pq, z, z, z.copy(), z.copy(), *_hits(8), bias=np.zeros((4, 3)))


@needs_bf16
@pytest.mark.parametrize("nq, nk", [(256, 1024), (37, 300), (16, 16), (5, 3), (33, 1)])
def test_bias_block_transposes_and_rounds(nq, nk):
    """The bias tile of a block: fl32(src[r, b0 + j]) at [j, r], -inf kept (tiles of 16 x 16 and edges)."""
    rng = np.random.default_rng(nq + nk)
    src = rng.normal(size=(nq, nk + 40)) * 10.0 ** rng.integers(-40, 30, size=(nq, nk + 40))
    src[rng.random(src.shape) < 0.1] = -np.inf
    _bf16._compile_screen(True)
    stg = np.empty((nq, nk + 16), F32)
    out = np.full((nk, nq), np.nan, F32)
    _screen_numba.bias_block(_bf16._state["bias_tile"], np.zeros(6, np.int64), src, 20, 20 + nk, stg, out)
    assert np.array_equal(out, src[:, 20:20 + nk].T.astype(F32))


def test_bias_stats_one_pass():
    rng = np.random.default_rng(0)
    b = rng.normal(size=(7, 300)) * 1e3
    b[rng.random(b.shape) < 0.3] = -np.inf
    b[2] = -np.inf
    cnt, am = np.empty(7, np.int64), np.empty(7)
    assert _screen_numba.bias_stats(b, cnt, am) == 0
    assert np.array_equal(cnt, np.isfinite(b).sum(axis=1))
    assert np.array_equal(am, np.where(np.isfinite(b), np.abs(b), 0).max(axis=1))
    for bad in (np.nan, np.inf):
        c = b.copy()
        c[4, 17] = bad
        assert _screen_numba.bias_stats(c, cnt, am) == 1


@pytest.mark.parametrize("bad, err", [(np.nan, NaNError), (np.inf, ConventionError)])
def test_large_bias_validation_errors(bad, err):
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(64, 8)), rng.normal(size=(2048, 8)), rng.normal(size=(2048, 2))
    b = rng.normal(size=(64, 2048))
    b[3, 5] = bad
    with pytest.raises(err):
        screened(q, k, v, bias=b)


def _peaked(rng, n, nq, d, T):
    nc = max(n // 64, 4)
    C = rng.normal(size=(nc, d))
    k = C[rng.integers(0, nc, n)] + 0.05 * rng.normal(size=(n, d))
    q = C[rng.integers(0, nc, nq)] + 0.05 * rng.normal(size=(nq, d))
    return q / T, k, rng.normal(size=(n, d // 2))


def _uses_bias_path(monkeypatch):
    """Record whether _screen_rows took the bias-tile path (and the fused kernel with it)."""
    from tropix.attention import screen as S
    seen = []
    orig = S._bias_table
    monkeypatch.setattr(S, "_bias_table", lambda H: (lambda t: seen.append(t is not None) or t)(orig(H)))
    return seen


@pytest.mark.parametrize("kind", ["normal", "neginf", "huge", "tiny", "row_masked", "constant"])
def test_screened_with_bias_is_certified(kind, monkeypatch):
    """Finite, masking (-inf), huge, tiny and constant biases and a row fully masked by the bias: check=True
    recomputes dense attention and asserts every error within its bound."""
    rng = np.random.default_rng(hash(kind) % 2**32)
    n, nq, d = 4096, 96, 32
    q, k, v = _peaked(rng, n, nq, d, 0.25)
    b = rng.normal(size=(nq, n))
    if kind == "neginf":
        b[rng.random(b.shape) < 0.5] = -np.inf
    elif kind == "huge":
        b = b * 1e4
    elif kind == "tiny":
        b = b * 1e-300
    elif kind == "row_masked":
        b[7] = -np.inf
        b[9, :-1] = -np.inf
    elif kind == "constant":
        b[:] = 3.0
    seen = _uses_bias_path(monkeypatch)
    r = screened(q, k, v, eps=1e-3, bias=b, scale=1 / np.sqrt(d), check=True)
    assert np.all(r.relative_bound <= 1e-3)
    assert seen and all(seen)
    if kind == "row_masked":
        assert np.all(r.output[7] == 0) and r.support[7] == 0
        assert np.allclose(r.output[9], v[-1])
    if kind in ("normal", "constant", "tiny"):
        assert np.median(r.support) < n / 8  # the bias does not make the screen give up
    if kind == "constant":  # a constant bias changes no weight: the result of no bias
        r0 = screened(q, k, v, eps=1e-3, scale=1 / np.sqrt(d))
        assert np.allclose(r.output, r0.output, atol=2e-3 * np.abs(v).max() * 3)


def test_screened_bias_beyond_float32_takes_the_masked_path(monkeypatch):
    rng = np.random.default_rng(3)
    q, k, v = _peaked(rng, 2048, 40, 16, 0.25)
    b = rng.normal(size=(40, 2048))
    b[0, 0] = -1e300
    seen = _uses_bias_path(monkeypatch)
    screened(q, k, v, eps=1e-3, bias=b, check=True)
    assert seen == [False]


@pytest.mark.parametrize("shape", [(1, 2500), (70, 1), (70, 2500)])
def test_screened_broadcast_biases(shape):
    rng = np.random.default_rng(len(shape) + shape[0])
    q, k, v = _peaked(rng, 2500, 70, 16, 0.2)
    b = rng.normal(size=shape) * 2
    b[rng.random(shape) < 0.1] = -np.inf
    r = screened(q, k, v, eps=1e-3, bias=b, check=True)
    assert np.all(r.relative_bound <= 1e-3)


def test_screened_bias_batched_heads_and_single_query():
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(2, 3, 50, 16)) * 4, rng.normal(size=(2, 3, 3000, 16)), rng.normal(size=(2, 3, 3000, 4))
    b = rng.normal(size=(3, 50, 3000))
    b[..., ::7] = -np.inf
    r = screened(q, k, v, eps=1e-3, bias=b, check=True)
    assert np.all(r.relative_bound <= 1e-3)
    r1 = screened(q[0, 0, :1], k[0, 0], v[0, 0], eps=1e-3, bias=b[0, :1], check=True)
    assert np.all(r1.relative_bound <= 1e-3)


@needs_bf16
def test_screened_bias_fused_rows_not_consecutive():
    """screen_rows on a subset of rows (the bias rows gathered) agrees with dense within its bound."""
    from tropix.attention._inputs import prepare
    from tropix.attention.screen import _ScreenHead, screen_rows

    rng = np.random.default_rng(6)
    q, k, v = _peaked(rng, 4096, 128, 32, 0.25)
    b = rng.normal(size=(128, 4096))
    P = prepare(q, k, v, None, b, None, False)
    H = _ScreenHead(P, (P.q, P.k, P.v), ())
    rows = np.arange(3, 128, 3)
    out, bound, support, kept, evals = screen_rows(H, 1e-3, rows)
    ref = np.asarray(dense(q[rows], k, v, bias=b[rows]))
    err = np.linalg.norm(out - ref, axis=1)
    ok = np.isfinite(bound)
    assert ok.sum() > len(rows) // 2
    assert np.all(err[ok] <= bound[ok] + 1e-12)


def test_screened_bias_eps_zero_equals_dense():
    rng = np.random.default_rng(7)
    q, k, v = _peaked(rng, 2048, 40, 16, 0.3)
    b = rng.normal(size=(40, 2048))
    b[rng.random(b.shape) < 0.3] = -np.inf
    r = screened(q, k, v, eps=0, bias=b, check=True, cap=2048)
    ref = np.asarray(dense(q, k, v, bias=b))
    assert np.allclose(r.output, ref, rtol=0, atol=1e-12 * np.abs(v).max())


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.0, 1e-3, 1.0, 30.0]),
       masked=st.floats(0.0, 0.9), T=st.sampled_from([0.1, 0.3, 1.0]))
def test_screened_bias_hypothesis(seed, scale, masked, T):
    rng = np.random.default_rng(seed)
    n, nq = int(rng.integers(2048, 4200)), int(rng.integers(1, 80))
    q, k, v = _peaked(rng, n, nq, 16, T)
    b = scale * rng.normal(size=(nq, n))
    b[rng.random(b.shape) < masked] = -np.inf
    r = screened(q, k, v, eps=1e-3, bias=b, check=True, precision="bf16" if available() else "auto")
    assert np.all(r.relative_bound <= 1e-3)


@pytest.mark.parametrize("T", [0.25, 1.0])
def test_auto_with_bias_is_certified_and_screens_peaked_heads(T):
    rng = np.random.default_rng(8)
    q, k, v = _peaked(rng, 16384, 64, 32, T)
    b = rng.normal(size=(64, 16384))
    r = auto(q, k, v, eps=1e-3, bias=b, check=True)
    assert np.all(r.relative_bound <= 1e-3)
    if T == 0.25:
        assert r.method == "screened"
    else:
        assert r.method == "dense"


def test_bias_stats32_rounds_and_counts():
    from tropix.attention._inputs import _bias_stats32

    rng = np.random.default_rng(9)
    b = rng.normal(size=(40, 3000)) * 10.0 ** rng.integers(-300, 30, size=(40, 3000))
    b[rng.random(b.shape) < 0.2] = -np.inf
    b[3] = -np.inf
    (cnt, am), b32 = _bias_stats32(b)
    assert b32.shape == b.shape and b32.strides[0] == 4 * (3000 + 16)
    assert np.array_equal(b32, b.astype(F32))
    assert np.array_equal(cnt, np.isfinite(b).sum(axis=1))
    assert np.array_equal(am, np.where(np.isfinite(b), np.abs(b), 0).max(axis=1))
    for bad in (np.nan, np.inf):
        c = b.copy()
        c[7, 2999] = bad
        assert _bias_stats32(c) == (None, None)


@needs_bf16
@pytest.mark.parametrize("mode", ["float32 rows", "float64 rows", "table"])
def test_screen_rows_bias_modes(mode):
    """The three sources of the bias tiles (validation's float32 copy, the float64 rows rounded per block, a
    float32 table for broadcast biases) give certified results, and the same cores for the same bias."""
    from tropix.attention import screen as S
    from tropix.attention._inputs import prepare

    rng = np.random.default_rng(10)
    q, k, v = _peaked(rng, 4096, 64, 32, 0.25)
    b = rng.normal(size=(64, 4096))
    b[rng.random(b.shape) < 0.3] = -np.inf
    bb = b[:1] if mode == "table" else b
    P = prepare(q, k, v, None, bb, None, False, pack_bias=mode == "float32 rows")
    H = S._ScreenHead(P, (P.q, P.k, P.v), ())
    T = S._bias_table(H)
    assert T is not None
    if mode == "table":
        assert T.shape == (4096, 64) and T is H.bias_t32
    else:
        assert T.dtype == (np.float32 if mode == "float32 rows" else np.float64)
        # validation's float32 copy is blocked by 16 queries (the layout the fused kernel reads)
        assert T.shape == ((4, 4096, 16) if mode == "float32 rows" else (64, 4096))
    out, bound, support, kept, evals = S.screen_rows(H, 1e-3, np.arange(64))
    ref = np.asarray(dense(q, k, v, bias=bb))
    err = np.linalg.norm(out - ref, axis=1)
    ok = np.isfinite(bound)
    assert ok.sum() >= 48
    assert np.all(err[ok] <= bound[ok] + 1e-12)
    if mode == "float64 rows":  # the same screening scores as from the float32 copy: the same cores
        P2 = prepare(q, k, v, None, b, None, False, pack_bias=True)
        H2 = S._ScreenHead(P2, (P2.q, P2.k, P2.v), ())
        kept2 = S.screen_rows(H2, 1e-3, np.arange(64))[3]
        assert np.array_equal(kept.keys, kept2.keys) and np.array_equal(kept.offsets, kept2.offsets)
