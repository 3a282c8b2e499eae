"""The bias path of ``screened``, continued: the dense fallback rows with a bias (sliced from the bias rows,
against ``dense``) and the query-blocked float32 bias layout validation writes for the fused kernel (against
the NumPy reference bit for bit; odd query counts, chunks of queries, broadcast biases, ``-inf`` entries)."""

from __future__ import annotations

import numpy as np
import pytest

from tropix.attention import dense, screened
from tropix.attention._inputs import prepare
from tropix.attention.region_sparse import _dense_rows, _HeadData
from conftest import needs_bf16

F32 = np.float32


def _bias(rng, shape, neginf=0.2):
    b = rng.normal(scale=2.0, size=shape)
    b[rng.random(shape) < neginf] = -np.inf
    return b


@pytest.mark.parametrize("shape", [(40, 700), (1, 700), (40, 1), (700,), (1, 1)])
@pytest.mark.parametrize("rows", ["all", "run", "scattered"])
def test_dense_rows_with_bias_match_dense(shape, rows):
    """The fallback rows with a bias alone (slices of its rows, views for consecutive queries) equal dense
    attention of those rows; the support is the number of keys each query sees."""
    rng = np.random.default_rng(len(shape) * 7 + shape[-1])
    q, k, v = rng.normal(size=(40, 8)), rng.normal(size=(700, 8)), rng.normal(size=(700, 3))
    b = _bias(rng, shape)
    if len(shape) == 2 and shape[0] == 40:
        b[5] = -np.inf  # a query that sees no key: output 0
    P = prepare(q, k, v, None, b, None, False)
    H = _HeadData(P, (P.q, P.k, P.v), ())
    r = {"all": np.arange(40), "run": np.arange(3, 20), "scattered": np.array([33, 2, 5, 17, 39])}[rows]
    o, sup = _dense_rows(H, r)
    ref = np.asarray(dense(q, k, v, bias=b))[r]
    assert np.allclose(o, ref, rtol=0, atol=1e-12)
    vis = np.isfinite(np.broadcast_to(b, (40, 700)))[r].sum(axis=1)
    assert np.array_equal(sup, vis)


def test_dense_rows_key_only_mask_and_general_mask():
    """A term of the key only (a padding mask and a per-key bias) and a general mask (the generic path)."""
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(30, 8)), rng.normal(size=(500, 8)), rng.normal(size=(500, 3))
    for mask, bias in ((rng.random(500) < 0.7, None), (rng.random(500) < 0.7, rng.normal(size=500)),
                       (rng.random((30, 500)) < 0.5, None)):
        P = prepare(q, k, v, mask, bias, None, False)
        H = _HeadData(P, (P.q, P.k, P.v), ())
        r = np.array([0, 4, 29, 7])
        o, sup = _dense_rows(H, r)
        ref = np.asarray(dense(q, k, v, mask=mask, bias=bias))[r]
        assert np.allclose(o, ref, rtol=0, atol=1e-12)
        assert np.array_equal(sup, np.broadcast_to(mask, (30, 500))[r].sum(axis=1))


@pytest.mark.parametrize("shape", [(77, 4096), (1, 4096), (77, 1)])
def test_screened_flat_biased_heads_fall_back_densely(shape):
    """Flat scores with a bias: every row goes to the dense fallback, certified (check=True), equal to dense."""
    rng = np.random.default_rng(shape[0] + shape[1])
    q, k, v = rng.normal(size=(77, 32)), rng.normal(size=(4096, 32)), rng.normal(size=(4096, 4))
    b = _bias(rng, shape, 0.05)
    r = screened(q, k, v, bias=b, check=True)
    assert r.counters["dense_fallback_rows"] > 60
    ref = np.asarray(dense(q, k, v, bias=b))
    assert np.all(np.linalg.norm(np.asarray(r.output) - ref, axis=1) <= r.bound + 1e-12)


def _blocked_ref(b):
    """The query-blocked float32 layout by NumPy: [g, j, t] = fl32(b[16 g + t, j]), missing queries 0."""
    nq, nk = b.shape
    full = np.zeros(((nq + 15) // 16 * 16, nk), F32)
    full[:nq] = b.astype(F32)
    return full.reshape(-1, 16, nk).transpose(0, 2, 1)


@needs_bf16
@pytest.mark.parametrize("nq, nk", [(37, 3000), (256, 1000), (16, 15), (5, 1), (17, 16384 + 40)])
def test_blocked_bias_validation(nq, nk):
    """Validation's one pass: the float32 copy blocked by 16 queries (bit for bit, -inf kept, 64-byte
    aligned, several row pieces when n_k exceeds the staging), the per-row counts and largest |b|; a NaN or
    +inf anywhere gives (None, None)."""
    from tropix.attention._inputs import _bias_stats_blocked

    rng = np.random.default_rng(nq * nk)
    b = rng.normal(size=(nq, nk)) * 10.0 ** rng.integers(-300, 30, size=(nq, nk))
    b[rng.random(b.shape) < 0.2] = -np.inf
    b[nq // 2] = -np.inf
    (cnt, am), out = _bias_stats_blocked(b)
    assert out.shape == ((nq + 15) // 16, nk, 16) and out.ctypes.data % 64 == 0
    assert np.array_equal(out, _blocked_ref(b))
    assert np.array_equal(cnt, np.isfinite(b).sum(axis=1))
    assert np.array_equal(am, np.where(np.isfinite(b), np.abs(b), 0).max(axis=1))
    for bad in (np.nan, np.inf):
        c = b.copy()
        c[nq - 1, nk - 1] = bad
        assert _bias_stats_blocked(c) == (None, None)


@needs_bf16
@pytest.mark.parametrize("qchunk", [None, 48, 40])
def test_screen_rows_blocked_bias_chunks(qchunk):
    """Chunks of queries read their groups of the blocked copy (aligned starts) or the float64 rows (other
    starts): the same screening scores, so the same cores as from the float64 rows, and certified."""
    from tropix.attention import screen as S

    rng = np.random.default_rng(11)
    nq = 131
    nc = 64
    C = rng.normal(size=(nc, 32))
    k = C[rng.integers(0, nc, 4096)] + 0.05 * rng.normal(size=(4096, 32))
    q = (C[rng.integers(0, nc, nq)] + 0.05 * rng.normal(size=(nq, 32))) / 0.25
    v = rng.normal(size=(4096, 4))
    b = rng.normal(size=(nq, 4096))
    b[rng.random(b.shape) < 0.2] = -np.inf
    b[7] = -np.inf
    kept = []
    for pack in (True, False):
        P = prepare(q, k, v, None, b, None, False, pack_bias=pack)
        H = S._ScreenHead(P, (P.q, P.k, P.v), ())
        assert (S._bias_table(H).ndim == 3) == pack
        out, bound, support, kp, evals = S._screen_rows(
            S._visible_keys_only(H)[0], 1e-3, np.arange(nq), threshold=True, cap=None, qchunk=qchunk, kblock=4096,
            width=0.25, share=0.75, use_kernel=True, abort=1.0, precision="auto")
        ref = np.asarray(dense(q, k, v, bias=b))
        ok = np.isfinite(bound)
        assert ok.sum() >= 100
        assert np.all(np.linalg.norm(out - ref, axis=1)[ok] <= bound[ok] + 1e-12)
        kept.append(kp)
    assert np.array_equal(kept[0].keys, kept[1].keys) and np.array_equal(kept[0].offsets, kept[1].offsets)


@needs_bf16
@pytest.mark.parametrize("shape", [(131, 4096), (1, 4096), (131, 1)])
def test_screened_peaked_biases_certified(shape):
    """screened with full, per-key and per-query biases (-inf entries) on peaked scores: check=True."""
    rng = np.random.default_rng(shape[0] + shape[1])
    C = rng.normal(size=(64, 32))
    k = C[rng.integers(0, 64, 4096)] + 0.05 * rng.normal(size=(4096, 32))
    q = (C[rng.integers(0, 64, 131)] + 0.05 * rng.normal(size=(131, 32))) / 0.25
    v = rng.normal(size=(4096, 4))
    b = _bias(rng, shape, 0.1)
    r = screened(q, k, v, bias=b, check=True)
    assert r.counters["dense_fallback_rows"] < 30
    ref = np.asarray(dense(q, k, v, bias=b))
    assert np.all(np.linalg.norm(np.asarray(r.output) - ref, axis=1) <= r.bound + 1e-12)


@pytest.mark.parametrize("bshape", [None, (30, 50), (1, 50), (30, 1)])
@pytest.mark.parametrize("mshape", [None, (30, 50), (50,)])
@pytest.mark.parametrize("causal", [False, True])
def test_extra_term_rows_and_columns(bshape, mshape, causal):
    """The extra term of a head for any rows and columns (runs of consecutive indices are sliced, the others
    gathered) equals the broadcast bias plus -inf where masked or hidden, as a fresh array."""
    from tropix.attention._inputs import extra_numpy

    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(30, 4)), rng.normal(size=(50, 4)), rng.normal(size=(50, 2))
    b = None if bshape is None else _bias(rng, bshape, 0.1)
    m = None if mshape is None else rng.random(mshape) < 0.7
    P = prepare(q, k, v, m, b, None, causal)
    f, _ = extra_numpy(P, ())
    if f is None:
        assert b is None and m is None and not causal
        return
    full = np.zeros((30, 50)) + (0 if b is None else np.broadcast_to(b, (30, 50)))
    if m is not None:
        full[~np.broadcast_to(m, (30, 50))] = -np.inf
    if causal:
        full[np.arange(50)[None, :] > np.arange(30)[:, None]] = -np.inf
    for rows in (np.arange(30), np.arange(4, 9), np.array([29, 3, 3, 0]), np.array([], dtype=np.int64)):
        for cols in (np.arange(50), np.arange(10, 40), rng.permutation(50), np.array([7])):
            E = f(rows, cols)
            assert np.array_equal(E, full[rows][:, cols])
            E[...] = 7.0  # (a fresh array: the head's term is unchanged)
            assert np.array_equal(f(rows, cols), full[rows][:, cols])


@pytest.mark.parametrize("kind", ["qmask", "pad+bias", "causal", "causal+mask", "all masked"])
def test_dense_masked_blocks_compiled_equal_numpy(kind, monkeypatch):
    """Dense attention with hidden pairs: the compiled blocks (hidden pairs left out of the maxima, their
    weights set to 0 after exp) give the same bits as the NumPy blocks (-inf in the scores); rows that see no
    key give 0."""
    D = __import__("tropix.attention.dense", fromlist=["_masked_kernels"])
    rng = np.random.default_rng(len(kind))
    nq, nk = 70, 3000
    q, k, v = 3 * rng.normal(size=(nq, 8)), rng.normal(size=(nk, 8)), rng.normal(size=(nk, 3))
    kw = {"qmask": {"mask": rng.random((nq, nk)) < 0.6},
          "pad+bias": {"mask": rng.random(nk) < 0.5, "bias": _bias(rng, (nq, nk), 0.1)},
          "causal": {"causal": True},
          "causal+mask": {"causal": True, "mask": rng.random((nq, 1)) < 0.8},
          "all masked": {"mask": np.zeros((nq, nk), dtype=bool)}}[kind]
    fast = np.asarray(dense(q, k, v, **kw))
    monkeypatch.setattr(D, "_masked_kernels", lambda: None)
    slow = np.asarray(dense(q, k, v, **kw))
    assert np.array_equal(fast, slow)
    if kind == "all masked":
        assert np.all(fast == 0)


def test_visible_row_max_and_set_where():
    from tropix.attention._kernels_numba import set_where, visible_row_max

    rng = np.random.default_rng(2)
    s = rng.normal(size=(9, 40))
    hid = rng.random((9, 40)) < 0.7
    hid[3] = True
    out = np.empty(9)
    visible_row_max(s, np.broadcast_to(hid, s.shape), out)
    assert np.array_equal(out, np.where(hid, -np.inf, s).max(axis=1))
    t = s.copy()
    set_where(t, hid, -1.0)
    assert np.array_equal(t, np.where(hid, -1.0, s))
