"""The compiled region-sparse kernel against the generic NumPy path and dense attention."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import auto, build_key_tree, dense, region_sparse
from tropix.attention._kernels import kernel_available, region_sparse_fast
from tropix.attention.keytree import score_bounds

rs_mod = importlib.import_module("tropix.attention.region_sparse")


def _clustered(n, d, nc, spread, rng):
    C = rng.normal(size=(nc, d))
    return C[rng.integers(0, nc, n)] + spread * rng.normal(size=(n, d))


def _errors(r, q, k, v, **kw):
    ref = dense(q, k, v, **kw)
    err = np.linalg.norm(np.asarray(r.output) - ref, axis=-1)
    assert np.all(err <= r.bound + r.reference_slack), (err - r.bound).max()
    return err


def _generic(monkeypatch):
    monkeypatch.setattr(rs_mod, "_fast_applicable", lambda H: False)


def test_kernel_is_available_and_used():
    assert kernel_available()
    rng = np.random.default_rng(0)
    k = _clustered(3000, 8, 40, 0.05, rng)
    q, v = 8 * k[:20], rng.normal(size=(3000, 3))
    calls = []
    orig = rs_mod.region_sparse_fast
    try:
        rs_mod.region_sparse_fast = lambda *a, **kw: calls.append(1) or orig(*a, **kw)
        region_sparse(q, k, v, eps=1e-3)
    finally:
        rs_mod.region_sparse_fast = orig
    assert calls


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 700), d=st.integers(1, 9), nq=st.integers(1, 12),
       temp=st.sampled_from([0.05, 0.3, 1.0, 5.0]), eps=st.sampled_from([0.0, 1e-6, 1e-3, 0.1, 0.9]),
       leaf=st.sampled_from([1, 4, 16, 64]), dv=st.integers(1, 4), no_cap=st.booleans())
def test_fast_and_generic_paths_both_certified(seed, n, d, nq, temp, eps, leaf, dv, no_cap):
    rng = np.random.default_rng(seed)
    k = _clustered(n, d, max(1, n // 20), 0.1, rng)
    q = k[rng.integers(0, n, nq)] / temp + 0.05 * rng.normal(size=(nq, d))
    v = rng.normal(size=(n, dv)) * rng.choice([1e-3, 1.0, 1e3])
    mp = pytest.MonkeyPatch()
    if no_cap:  # every row walks as far as it needs in the kernel
        mp.setattr(rs_mod, "_default_cap", lambda n_k: n_k)
        mp.setattr(rs_mod, "_default_cand_cap", lambda n_k: n_k)
    try:
        r_fast = region_sparse(q, k, v, eps=eps, leaf=leaf)
        if no_cap:
            assert r_fast.counters["dense_fallback_rows"] == 0
    finally:
        mp.undo()
    _generic(mp)
    try:
        r_gen = region_sparse(q, k, v, eps=eps, leaf=leaf)
    finally:
        mp.undo()
    vmax = np.linalg.norm(v, axis=1).max()
    for r in (r_fast, r_gen):
        _errors(r, q, k, v)
        assert np.all((r.bound <= eps * vmax * (1 + 1e-12)) | (r.bound <= 4 * r.reference_slack + 1e-300))
        assert np.all((r.support >= 1) & (r.support <= n))
    # the two paths agree within the sum of their bounds
    diff = np.linalg.norm(np.asarray(r_fast.output) - np.asarray(r_gen.output), axis=1)
    assert np.all(diff <= r_fast.bound + r_gen.bound + 2 * r_fast.reference_slack)
    if eps == 0:
        np.testing.assert_allclose(r_fast.output, dense(q, k, v), rtol=0, atol=float(r_fast.bound.max()) + 1e-300)


def test_kept_keys_hold_the_argmax_and_the_support():
    rng = np.random.default_rng(8)
    k = _clustered(5000, 8, 60, 0.05, rng)
    q = k[rng.integers(0, 5000, 40)] * 20
    v = rng.normal(size=(5000, 2))
    r = region_sparse(q, k, v, eps=1e-3)
    S = q @ k.T / np.sqrt(8)
    for i in range(40):
        kk = r.kept_keys(i)
        assert len(set(kk.tolist())) == len(kk)  # no key twice
        assert int(np.argmax(S[i])) in set(kk.tolist())
        assert r.support[i] <= len(kk)
    assert r.counters["score_evals"] < 0.5 * 40 * 5000  # pruning happened


def test_kernel_cap_and_flags():
    """A row that would compute more than ``cap`` keys is flagged; region_sparse / auto recompute it densely."""
    rng = np.random.default_rng(2)
    k, v = rng.normal(size=(800, 4)), rng.normal(size=(800, 2))
    q = 0.01 * rng.normal(size=(5, 4))  # flat scores: every block is needed
    tree = build_key_tree(k, 16)
    U, qc = score_bounds(tree, tree.depth - 1, q, centers=True)
    first2 = np.stack([U.argmax(1), qc.argmax(1)], axis=1)
    res = region_sparse_fast(np.arange(5), q, tree.keys, v, tree.perm, np.linalg.norm(v, axis=1),
                             tree.starts[-1], tree.count[-1], U, first2, np.full(5, 1e-4), True, cap=40)
    assert np.all(res["Z"] == -1.0) and np.all(res["nkeys"] <= 40 + 16)
    res = region_sparse_fast(np.arange(5), q, tree.keys, v, tree.perm, np.linalg.norm(v, axis=1),
                             tree.starts[-1], tree.count[-1], U, first2, np.full(5, 1e-4), True, cand_cap=400)
    assert np.all(res["Z"] == -1.0) and np.all(res["nkeys"] <= 2 * 16)  # stopped before any walk
    full = region_sparse_fast(np.arange(5), q, tree.keys, v, tree.perm, np.linalg.norm(v, axis=1),
                              tree.starts[-1], tree.count[-1], U, first2, np.zeros(5), True)
    np.testing.assert_allclose(full["out"], dense(q, k, v, scale=1.0), atol=1e-12)
    assert np.all(full["D"] == 0) and np.all(full["support"] == 800)
    # auto with a prebuilt tree and permissive thresholds: capped rows are done densely, bound still holds
    r = auto(q, k, v, eps=1e-3, scale=1.0, tree=tree, max_work=10.0, min_work=0)
    _errors(r, q, k, v, scale=1.0)


def test_kernel_flags_overflowing_scores():
    rng = np.random.default_rng(4)
    k = _clustered(600, 3, 10, 0.05, rng)
    v = rng.normal(size=(600, 2))
    tree = build_key_tree(k, 16)
    q = np.vstack([1e155 * k[:2], k[2:3]])
    U, qc = score_bounds(tree, tree.depth - 1, q, centers=True)
    first2 = np.stack([U.argmax(1), qc.argmax(1)], axis=1)
    res = region_sparse_fast(np.arange(3), q, 1e155 * tree.keys, v, tree.perm, np.linalg.norm(v, axis=1),
                             tree.starts[-1], tree.count[-1], U, first2, np.full(3, 1e-3), True)
    assert res["Z"][0] == -1.0 and res["Z"][1] == -1.0


def test_auto_with_tree_sample_then_rest():
    """auto runs a query sample first, then the rest; every row is certified and keeps its argmax key."""
    rng = np.random.default_rng(6)
    k = _clustered(6000, 8, 90, 0.03, rng)
    q = k[rng.integers(0, 6000, 150)] * 20
    v = rng.normal(size=(6000, 3))
    r = auto(q, k, v, eps=1e-3, tree=build_key_tree(k), min_keys=1000, min_work=0)
    assert r.method == "region_sparse" and r.counters["decision"] == 4
    _errors(r, q, k, v)
    S = q @ k.T
    for i in range(150):
        assert int(np.argmax(S[i])) in set(r.kept_keys(i).tolist())
    assert r.counters["score_evals"] < 0.5 * 150 * 6000


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 900), nq=st.integers(1, 12),
       temp=st.sampled_from([0.05, 0.3, 1.0]), eps=st.sampled_from([0.0, 1e-3, 0.1]),
       kind=st.sampled_from(["pad", "pad_all_but_one", "key_bias", "pad_bias"]), leaf=st.sampled_from([4, 64]))
def test_key_only_extra_takes_the_kernel_and_is_certified(seed, n, nq, temp, eps, kind, leaf):
    # a key-padding mask or a per-key bias (the same for every query) runs in the compiled kernel: the
    # term is added to every exact score and its largest value per leaf to the leaf bounds
    rng = np.random.default_rng(seed)
    k = _clustered(n, 6, max(1, n // 20), 0.1, rng)
    q = k[rng.integers(0, n, nq)] / temp
    v = rng.normal(size=(n, 3))
    kw = {}
    if kind.startswith("pad"):
        keep = rng.random(n) > 0.4
        if kind == "pad_all_but_one":
            keep[:] = False
            keep[rng.integers(n)] = True
        kw["mask"] = keep
    if kind.endswith("bias"):
        kw["bias"] = np.where(rng.random(n) > 0.7, -np.inf, rng.normal(size=n) * 3)[None, :]
    calls = []
    mp = pytest.MonkeyPatch()
    mp.setattr(rs_mod, "region_sparse_fast", lambda *a, _f=rs_mod.region_sparse_fast, **k2: calls.append(1) or _f(*a, **k2))
    try:
        r = region_sparse(q, k, v, eps=eps, leaf=leaf, check=True, **kw)
    finally:
        mp.undo()
    assert calls or n <= leaf  # (a single leaf: no walk)
    _errors(r, q, k, v, **kw)
    vmax = np.linalg.norm(v, axis=1).max()
    assert np.all((r.bound <= eps * vmax * (1 + 1e-12)) | (r.bound <= 4 * r.reference_slack + 1e-300))
    ref = dense(q, k, v, **kw)
    if kind == "pad_all_but_one":
        np.testing.assert_allclose(np.asarray(r.output), ref, rtol=1e-12, atol=1e-14)


def test_key_padding_with_prebuilt_tree_keeps_few_keys():
    rng = np.random.default_rng(3)
    k = _clustered(8000, 16, 120, 0.05, rng)
    q, v = 10 * k[rng.integers(0, 8000, 64)], rng.normal(size=(8000, 4))
    keep = np.arange(8000) % 4 != 0
    tree = build_key_tree(k)
    r0 = region_sparse(q, k, v, eps=1e-3, tree=tree)
    r = region_sparse(q, k, v, eps=1e-3, tree=tree, mask=keep, check=True)
    _errors(r, q, k, v, mask=keep)
    # as with the unmasked keys (no row more goes dense), a quarter of the keys fewer per query
    assert r.counters["dense_fallback_rows"] <= r0.counters["dense_fallback_rows"]
    assert np.median(r.support) < np.median(r0.support)


@pytest.mark.parametrize("extra", ["pad", "bias"])
def test_rows_the_walk_gives_up_are_screened_with_a_padding_mask(extra):
    # i.i.d. keys defeat the block bounds; with screen=True the flagged rows are screened, also under a
    # key-padding mask (the screen's unmasked path); a query-dependent bias would take the screen's slow
    # masked path, so those rows go dense
    rng = np.random.default_rng(4)
    n = 6000
    k, v = rng.normal(size=(n, 16)), rng.normal(size=(n, 3))
    q = 8 * rng.normal(size=(40, 16))
    kw = {"mask": np.arange(n) % 3 != 0} if extra == "pad" else {"bias": 0.1 * rng.normal(size=(40, n))}
    r = region_sparse(q, k, v, eps=1e-3, screen=True, check=True, **kw)
    _errors(r, q, k, v, **kw)
    if extra == "pad":
        assert r.counters["screened_rows"] > 20 and r.counters["dense_fallback_rows"] < 5
    else:
        assert r.counters.get("screened_rows", 0) == 0


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(2, 700), d=st.integers(1, 9), nq=st.integers(1, 40),
       temp=st.sampled_from([0.05, 0.3, 1.0, 5.0]), eps=st.sampled_from([0.0, 1e-6, 1e-3, 0.1, 0.9]),
       leaf=st.sampled_from([1, 4, 16, 64]), no_cap=st.booleans())
def test_causal_fast_and_generic_paths_both_certified(seed, n, d, nq, temp, eps, leaf, no_cap):
    """A causal mask alone on the compiled path (query i sees the keys j <= i: hidden keys score -inf, wholly
    hidden leaves carry no mass) against the generic path and dense attention; more queries than keys too."""
    rng = np.random.default_rng(seed)
    k = _clustered(n, d, max(1, n // 20), 0.1, rng)
    q = k[rng.integers(0, n, nq)] / temp + 0.05 * rng.normal(size=(nq, d))
    v = rng.normal(size=(n, 2))
    calls = []
    mp = pytest.MonkeyPatch()
    orig = rs_mod.region_sparse_fast
    mp.setattr(rs_mod, "region_sparse_fast", lambda *a, **kw: calls.append(kw.get("causal")) or orig(*a, **kw))
    if no_cap:
        mp.setattr(rs_mod, "_default_cap", lambda n_k: n_k)
        mp.setattr(rs_mod, "_default_cand_cap", lambda n_k: n_k)
    try:
        r_fast = region_sparse(q, k, v, eps=eps, leaf=leaf, causal=True)
    finally:
        mp.undo()
    assert all(calls)  # whenever the compiled path runs, it is told the mask is causal
    if eps > 0 and n >= 4 * leaf:
        assert calls
    _generic(mp)
    try:
        r_gen = region_sparse(q, k, v, eps=eps, leaf=leaf, causal=True)
    finally:
        mp.undo()
    vmax = np.linalg.norm(v, axis=1).max()
    for r in (r_fast, r_gen):
        _errors(r, q, k, v, causal=True)
        assert np.all((r.bound <= eps * vmax * (1 + 1e-12)) | (r.bound <= 4 * r.reference_slack + 1e-300))
        assert np.all(r.support <= np.minimum(np.arange(nq) + 1, n))  # never a hidden key
    diff = np.linalg.norm(np.asarray(r_fast.output) - np.asarray(r_gen.output), axis=1)
    assert np.all(diff <= r_fast.bound + r_gen.bound + 2 * r_fast.reference_slack)


def test_causal_dense_rows_in_chunks():
    """The dense fallback rows with a causal mask go in sorted chunks, each over the keys up to its last
    query: the same rows as dense attention, in the caller's order."""
    from tropix.attention._inputs import prepare

    rng = np.random.default_rng(4)
    n, nq = 900, 700
    q, k, v = rng.normal(size=(nq, 8)), rng.normal(size=(n, 8)), rng.normal(size=(n, 3))
    P = prepare(q, k, v, causal=True)
    H = rs_mod._HeadData(P, (P.q, P.k, P.v), ())
    rows = rng.permutation(nq)[:600]  # more than CAUSAL_ROWS, unsorted
    out, sup = rs_mod._dense_rows(H, rows)
    ref = dense(q, k, v, causal=True)[rows]
    assert np.allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert np.array_equal(sup, np.minimum(rows + 1, n))


def test_exp_upper_bounds_exp_within_the_chord():
    """The far blocks' weight bound: never below exp(x) (the margin covers the float64 roundings: checked at
    and beside every power of two, where the chord touches 2^y, and on a dense grid), at most 6.15 % above it
    while exp does not underflow, and 2^-1022 at most where it does."""
    from numba import njit

    from tropix.attention._kernels_numba import exp_upper

    @njit
    def bound(xs):
        out = np.empty_like(xs)
        for i in range(xs.size):
            out[i] = exp_upper(xs[i])
        return out

    ln2 = np.log(2.0)
    at_powers = np.arange(-1021, 1) * ln2
    near = np.concatenate([at_powers, np.nextafter(at_powers, -np.inf), np.nextafter(at_powers, np.inf)])
    xs = np.concatenate([near, -np.geomspace(1e-15, 708, 400_001), np.linspace(-40.0, 0.0, 200_001)])
    xs = xs[xs <= 0]
    w, e = bound(xs), np.exp(xs)
    assert np.all(w >= e * (1 + 1e-12))
    normal = e > 2.0**-1000
    assert np.max(w[normal] / e[normal]) < 1.0615
    deep = bound(np.array([-709.0, -745.0, -1e5, -1e300, -np.inf]))
    assert np.all(deep >= 2.0**-1022) and np.all(deep <= 2.0**-1022 * (1 + 1e-9))


def test_far_block_bound_keeps_the_walk_certified():
    """Clustered keys at T = 0.25: most blocks lie far below the first blocks' maximum (exponent below FAR)
    and are weighed by exp_upper; every row the walk certifies is within its bound (check=True), which stays
    within the request, and the median query keeps few keys."""
    from tropix.attention._kernels_numba import FAR

    rng = np.random.default_rng(11)
    nc, d = 64, 32
    C = rng.normal(size=(nc, d))
    k = C[rng.integers(0, nc, 4096)] + 0.05 * rng.normal(size=(4096, d))
    q = (C[rng.integers(0, nc, 64)] + 0.05 * rng.normal(size=(64, d))) / 0.25
    v = rng.normal(size=(4096, d))
    tree = build_key_tree(k)
    s = (q / np.sqrt(d)) @ k.T
    far = s.max(axis=1, keepdims=True) + FAR
    leaf_max = np.maximum.reduceat(s[:, tree.perm], tree.starts[-1], axis=1)
    assert np.mean(leaf_max < far) > 0.5  # (most blocks are far: the bound is what weighs them)
    r = region_sparse(q, k, v, eps=1e-3, tree=tree, check=True)
    assert np.all(r.bound <= 1e-3 * r.vmax)
    assert np.median(r.support) < 0.05 * 4096


def test_take_keys_and_dot_row_match_python():
    """The per-query key-level threshold (one call per query) against the same sums in Python, in the same
    order (bit for bit), from a given largest dropped |v|; the indexed dot product within rounding of NumPy's."""
    from tropix.attention._kernels_numba import _dot_row, _take_keys

    rng = np.random.default_rng(4)
    v = rng.normal(size=(50, 7))
    vn = np.linalg.norm(v, axis=1)
    keys = rng.integers(0, 50, 30)
    w = rng.random(30) * np.where(rng.random(30) < 0.3, 1e-9, 1.0)
    for theta, n, vd0 in ((0.2, 30, 0.0), (-1.0, 30, 0.5), (2.0, 30, 0.0), (0.2, 0, 3.0), (0.2, 17, 9.0)):
        acc = np.zeros(7)
        za, cnt, x, vd = _take_keys(w, keys, n, theta, v, vn, acc, vd0)
        ref_acc, rza, rcnt, rx, rvd = np.zeros(7), 0.0, 0, 0.0, vd0
        for t in range(n):
            if w[t] > theta:
                ref_acc += w[t] * v[keys[t]]
                rza += w[t]
                rcnt += 1
            else:
                rx += w[t]
                rvd = max(rvd, vn[keys[t]])
        assert np.array_equal(acc, ref_acc) and (za, cnt, x, vd) == (rza, rcnt, rx, rvd)
    K = rng.normal(size=(9, 13))
    a = rng.normal(size=13)
    for j in range(9):
        for d in (0, 1, 4, 13):
            assert abs(_dot_row(a, K, j, d) - float(a[:d] @ K[j, :d])) <= 1e-13 * (1 + np.abs(a[:d]) @ np.abs(K[j, :d]))


def test_kept_keys_of_dense_fallback_rows_are_every_key(monkeypatch):
    # a key cap sends the queries that need more keys to the dense fallback: their group comes first (every
    # key), then every walked row's own group, in one lazy sequence per head
    rng = np.random.default_rng(9)
    k = _clustered(3000, 8, 40, 0.3, rng)
    q = k[rng.integers(0, 3000, 24)] * rng.choice([2.0, 30.0], size=(24, 1))
    v = rng.normal(size=(3000, 2))
    monkeypatch.setattr(rs_mod, "_default_cap", lambda n_k: 200)
    r = region_sparse(q, k, v, eps=1e-3, check=True)
    nfb = r.counters["dense_fallback_rows"]
    assert 0 < nfb < 24
    groups = list(r.kept[0])
    assert len(groups) == len(r.kept[0]) == 1 + 24
    assert all(np.array_equal(r.kept[0][i][1], groups[i][1]) for i in (0, 5, -1, -25))  # indexing as a sequence
    with pytest.raises(IndexError):
        r.kept[0][25]
    dense_rows = set(groups[0][0].tolist())
    assert len(dense_rows) == nfb and np.array_equal(groups[0][1], np.arange(3000))
    S = q @ k.T
    for i in range(24):
        kk = r.kept_keys(i)
        assert int(np.argmax(S[i])) in set(kk.tolist())
        assert (len(kk) == 3000) == (i in dense_rows)
