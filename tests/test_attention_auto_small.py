"""``auto`` below 8192 keys: the certified screen where a sample of queries predicts that it pays, dense
otherwise, and the bound in every case."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tropix.attention import auto, dense

from conftest import clustered_qk

AM = sys.modules["tropix.attention.auto"]


def _errors(r, q, k, v, scale=None, mask=None):
    ref = dense(q, k, v, scale=scale, mask=mask)
    return np.linalg.norm(np.asarray(r.output, dtype=np.float64) - np.asarray(ref, dtype=np.float64), axis=-1)


def _peaked(n, d, rng, nq=256, dv=32):
    """i.i.d. keys, queries scaled so that the scores are peaked (a few keys carry the softmax mass)."""
    return 10 * rng.normal(size=(nq, d)), rng.normal(size=(n, d)), rng.normal(size=(n, dv))


@pytest.mark.parametrize("n, d", [(2048, 64), (4096, 32)])
def test_peaked_scores_are_screened(n, d):
    rng = np.random.default_rng(n)
    q, k, v = _peaked(n, d, rng)
    r = auto(q, k, v, eps=1e-3, check=True)
    assert r.method == "screened" and r.counters["decision"] == 5
    err = _errors(r, q, k, v)
    assert np.all(err <= r.bound + r.reference_slack)
    assert np.all(r.relative_bound <= 1e-3)
    assert np.median(r.support) < n / 20  # what made it pay: few keys scored in float64
    assert r.counters["dense_fallback_rows"] < 32


@pytest.mark.parametrize("n", [2048, 4096])
def test_flat_scores_stay_dense(n):
    rng = np.random.default_rng(n + 1)
    q, k, v = 0.1 * rng.normal(size=(256, 32)), rng.normal(size=(n, 32)), rng.normal(size=(n, 32))
    r = auto(q, k, v, eps=1e-3, check=True)
    assert r.method == "dense" and r.counters["decision"] == 2
    assert np.allclose(np.asarray(r.output), dense(q, k, v), rtol=0, atol=1e-12)


def test_clustered_keys_flat_and_peaked():
    """Keys in tight clusters, queries near the centres: at temperature 1 the scores are flat (every key of
    the query's cluster and many others within the margin: dense), at temperature 0.1 peaked (screened)."""
    rng = np.random.default_rng(3)
    n, d = 4096, 64
    C = rng.normal(size=(n // 64, d))
    k = C[rng.integers(0, len(C), n)] + 0.05 * rng.normal(size=(n, d))
    q = C[rng.integers(0, len(C), 256)] + 0.05 * rng.normal(size=(256, d))
    v = rng.normal(size=(n, d))
    r1 = auto(q, k, v, eps=1e-3, check=True)
    assert r1.counters["decision"] == 2
    r2 = auto(q / 0.1, k, v, eps=1e-3, check=True)
    assert r2.method == "screened" and r2.counters["decision"] == 5
    assert np.all(_errors(r2, q / 0.1, k, v) <= r2.bound + r2.reference_slack)


def test_few_keys_or_little_work_stay_dense_without_statistics():
    rng = np.random.default_rng(4)
    q, k, v = _peaked(1024, 32, rng)  # below min_keys = 2048
    assert auto(q, k, v, eps=1e-3).counters["decision"] == 0
    q, k, v = _peaked(4096, 32, rng, nq=16)  # 16 * 4096 * 64 < min_work = 2^25
    assert auto(q, k, v, eps=1e-3).counters["decision"] == 0


def test_mask_and_heads():
    rng = np.random.default_rng(5)
    q, k, v = _peaked(4096, 32, rng)
    mask = rng.random((256, 4096)) < 0.9
    # a query-dependent mask: made one bias (-inf where masked), screened on the fused path with a bias
    r = auto(q, k, v, eps=1e-3, mask=mask, check=True)
    assert r.method == "screened" and r.counters["decision"] == 5
    assert np.all(_errors(r, q, k, v, mask=mask) <= r.bound + r.reference_slack)
    r = auto(0.01 * q, k, v, eps=1e-3, mask=mask, check=True)  # the same mask on flat scores: dense
    assert r.method == "dense" and r.counters["decision"] == 2
    qb = np.stack([q, 0.01 * q])  # head 0 peaked, head 1 flat: the flat head decides (dense)
    kb, vb = np.stack([k, k]), np.stack([v, v])
    r = auto(qb, kb, vb, eps=1e-3, check=True)
    assert r.method == "dense" and r.counters["decision"] == 2
    r = auto(np.stack([q, q[::-1]]), kb, vb, eps=1e-3, check=True)  # both peaked: every head screened
    assert r.method == "screened" and r.counters["decision"] == 5
    assert r.bound.shape == (2, 256)


def test_torch_input_keeps_its_library():
    import torch  # (a dependency: never skipped)
    rng = np.random.default_rng(6)
    q, k, v = _peaked(4096, 32, rng)
    r = auto(torch.tensor(q), torch.tensor(k), torch.tensor(v), eps=1e-3, check=True)
    assert isinstance(r.output, torch.Tensor) and r.counters["decision"] == 5
    assert np.all(_errors(r, q, k, v) <= r.bound + r.reference_slack)


def test_estimate_predicts_the_screen():
    """The estimate from the exact scores of sampled queries follows what the screen then does: close to the
    cost model applied to every query's actual screen (rows given up, keys rescored)."""
    from tropix.attention._inputs import prepare
    from tropix.attention.screen import KEY_COST, _ScreenHead, screen_rows

    rng = np.random.default_rng(7)
    for qscale in (10.0, 3.0, 0.3):
        q, k, v = rng.normal(size=(64, 32)) * qscale, rng.normal(size=(4096, 32)), rng.normal(size=(4096, 8))
        P = prepare(q, k, v)
        H = _ScreenHead(P, (q, k, v), ())
        rows = np.arange(64)
        est = AM._screen_estimate(H.qs, H.k, H.kmax, H.vmax, H.rho, 1e-3, 64)
        _, bound, _, kept, _ = screen_rows(H, 1e-3, rows)
        given_up = ~np.isfinite(bound)
        actual = AM._screen_fixed_cost(4096, 32) + np.mean(
            np.where(given_up, AM.GIVEUP_COST, KEY_COST * np.diff(kept.offsets) / 4096))
        assert abs(est - actual) <= 0.1 * max(actual, 1.0), (qscale, est, actual)


def test_estimate_refuses_what_cannot_be_pruned():
    rng = np.random.default_rng(8)
    qs, k = rng.normal(size=(8, 16)), rng.normal(size=(3000, 16))
    rho = np.full(8, 1e-13)
    assert AM._screen_estimate(qs, k, 6.0, 0.0, rho, 1e-3, 8) == np.inf  # all values zero
    assert AM._screen_estimate(qs, k, 6.0, 1.0, rho, 1e-14, 8) == np.inf  # eps below the rounding floor
    assert AM._screen_estimate(qs * 1e20, k * 1e20, 6e20, 1.0, rho, 1e-3, 8) == np.inf  # float32 overflow


def test_samples_are_fixed_and_read_only():
    a, b = AM._query_sample(256, 8), AM._query_sample(256, 8)
    assert a is b and not a.flags.writeable and len(np.unique(a)) == 8 and np.all(np.diff(a) > 0)
    assert np.array_equal(AM._query_sample(5, 8), np.arange(5))
    ks = AM._key_sample(3000, 256)
    assert not ks.flags.writeable and len(np.unique(ks)) == 256 and ks.max() < 3000


@given(seed=st.integers(0, 2**32 - 1), n_k=st.integers(1, 400), n_q=st.integers(1, 24), d=st.integers(1, 12),
       qscale=st.sampled_from([0.01, 1.0, 10.0, 100.0]), eps=st.sampled_from([1e-6, 1e-3, 0.1, 0.9, 3.0]),
       max_work=st.sampled_from([0.1, 10.0]))
@settings(max_examples=40, deadline=None)
def test_bound_always_holds(seed, n_k, n_q, d, qscale, eps, max_work):
    """Whatever the statistics decide (thresholds lowered so that they run on small inputs, and with
    ``max_work = 10`` screening whatever the estimate), every row is within its certified bound, which is
    within ``eps * max|v|`` (or the rounding floor)."""
    rng = np.random.default_rng(seed)
    q, k, v = qscale * rng.normal(size=(n_q, d)), rng.normal(size=(n_k, d)), rng.normal(size=(n_k, 3))
    if seed % 4 == 0:
        k[: n_k // 2] = k[0]  # repeated keys: ties
    r = auto(q, k, v, eps=eps, check=True, min_keys=1, min_work=0, sample=16, max_work=max_work)
    assert r.counters["decision"] in (2, 5)
    err = _errors(r, q, k, v)
    assert np.all(err <= r.bound + r.reference_slack)
    assert np.all(r.bound <= np.maximum(eps * r.vmax, r.reference_slack) * (1 + 1e-9))


@given(seed=st.integers(0, 2**32 - 1), r=st.integers(1, 9), n=st.integers(1, 300), nb=st.integers(1, 90),
       spread=st.sampled_from([0.1, 10.0, 1e3]), e=st.sampled_from([0.0, 0.3, 2.0]),
       thr=st.sampled_from([1e-4, 0.01, 1.0]), jc=st.integers(0, 89))
@settings(max_examples=60, deadline=None)
def test_core_sizes_kernel_matches_numpy(seed, r, n, nb, spread, e, thr, jc):
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(r, n)) * spread
    if seed % 3 == 0:
        B[:, : n // 2] = B[:, :1]  # ties with the minimum
    jc = min(jc, nb - 1)
    core, coll = AM._core_sizes_numpy(B, nb, 0.25, np.full(r, e), thr, np.full(r, jc))
    kcore, kcoll = AM._core_sizes(B, nb, 0.25, e, thr, jc)
    ev = e * rng.random(r)  # per-row errors and collection bands
    jv = rng.integers(0, nb, r)
    assert all(np.array_equal(a, b) for a, b in zip(AM._core_sizes_numpy(B, nb, 0.25, ev, thr, jv),
                                                     AM._core_sizes(B, nb, 0.25, ev, thr, jv)))
    assert np.array_equal(core, kcore) and np.array_equal(coll, kcoll)
    # brute force from the definition: bands below each row's minimum, the far ones in the last band
    D = np.minimum(np.floor(B - B.min(axis=1)[:, None]), nb - 1).astype(int)
    cnt = np.stack([np.bincount(row, minlength=nb) for row in D])
    assert np.array_equal(cnt, AM._band_counts_numpy(B, nb))
    assert np.array_equal(coll, cnt[:, : jc + 1].sum(axis=1))
    for i in range(r):
        w_up = cnt[i] * np.exp(-np.arange(nb) * 0.25 + e)
        w_lo = cnt[i] * np.exp(-(np.arange(nb) + 1) * 0.25 - e)
        def first_fit(slack):
            return next(j for j in range(nb) if j == nb - 1 or
                        w_up[j + 1:].sum() <= thr * max(w_lo[: j + 1].sum(), np.exp(-e)) * slack)

        # the kernel's sums round differently from these: anything between the two strictness levels is right
        allowed = {int(cnt[i, : j + 1].sum()) for j in range(first_fit(1 + 1e-9), first_fit(1 - 1e-9) + 1)}
        assert int(core[i]) in allowed


@pytest.mark.parametrize("n, kscale", [(1024, 1.0), (100, 1e-160), (100, 1e160), (50000, 1.0)])
def test_dense_bound_is_dense_rounding_bound(n, kscale):
    """The dense path's bound, from the validated norms or the largest squared norm, is the bound of
    :func:`dense_rounding_bound` (also where squared norms under- or overflow), up to the order in which
    :func:`rounding_bound` combines its scalar factors (its one-head fast path: within a few ulps)."""
    from tropix.attention._inputs import prepare
    from tropix.attention.dense import dense_rounding_bound

    rng = np.random.default_rng(n)
    q, k, v = rng.normal(size=(9, 4)), kscale * rng.normal(size=(n, 4)), kscale * rng.normal(size=(n, 3))
    P = prepare(q, k, v)
    ref, vref = dense_rounding_bound(P, with_vmax=True)
    rb, vmax = AM._dense_bound(P)
    np.testing.assert_allclose(rb, ref, rtol=1e-14, atol=0)
    assert float(vref) == float(vmax)


def test_small_clusters_among_many_keys_are_not_taken_for_flat():
    """16384 keys in clusters of 64, queries near the centres at temperature 0.25: a small key sample misses
    a query's own cluster and sees only the flat scores of the others; auto must still screen (it did not
    when 128 sampled keys decided flatness at every size)."""
    rng = np.random.default_rng(11)
    n, d = 16384, 64
    q, k, _ = clustered_qk(rng, n, d, 64, 256, 0.25)
    v = rng.normal(size=(n, 16))
    r = auto(q, k, v, eps=1e-3, check=True)
    assert r.method == "screened" and r.counters["decision"] == 5


def _check_bound(r, q, k, v, **kw):
    ref = np.asarray(dense(q, k, v, **kw), dtype=np.float64)
    err = np.linalg.norm(np.asarray(r.output, dtype=np.float64) - ref, axis=-1)
    assert np.all(err <= r.bound + r.reference_slack)


def test_key_padding_and_causal_inputs_are_screened():
    # the screen keeps its unmasked path for a key-padding mask (per head) and for a causal term alone
    rng = np.random.default_rng(8)
    q, k, v = _peaked(4096, 32, rng)
    pad = np.stack([np.arange(4096) < 3500, np.arange(4096) % 7 != 0])[:, None, :]
    qb, kb, vb = np.stack([q, q[::-1]]), np.stack([k, k]), np.stack([v, v])
    r = auto(qb, kb, vb, eps=1e-3, mask=pad, check=True)
    assert r.method == "screened" and r.counters["decision"] == 5
    _check_bound(r, qb, kb, vb, mask=pad)
    r = auto(0.01 * qb, kb, vb, eps=1e-3, mask=pad, check=True)  # flat on the visible keys: dense at once
    assert r.method == "dense" and r.counters["decision"] == 2
    qs, ks, vs = _peaked(4096, 32, rng, nq=4096)  # causal self-attention
    r = auto(qs, ks, vs, eps=1e-3, causal=True, check=True)
    assert r.method == "screened" and r.counters["decision"] == 5
    _check_bound(r, qs, ks, vs, causal=True)


def test_query_dependent_terms_never_take_the_generic_block_walk():
    # with a prebuilt tree and many queries a bias (or a causal term with a flat head) goes to the screen's
    # decision, never to region_sparse's generic path (several times dense)
    from tropix.attention import build_key_tree

    rng = np.random.default_rng(9)
    C = rng.normal(size=(128, 16))
    k = C[rng.integers(0, 128, 8192)] + 0.05 * rng.normal(size=(8192, 16))
    q, v = 8 * k[rng.integers(0, 8192, 2048)], rng.normal(size=(8192, 4))
    tree = build_key_tree(k)
    bias = 0.1 * rng.normal(size=(2048, 8192))
    r = auto(q, k, v, eps=1e-3, tree=tree, bias=bias, check=True)
    assert r.method == "dense" and r.counters["decision"] == 2
    r = auto(q, k, v, eps=1e-3, tree=tree, mask=np.arange(8192) % 5 != 0, check=True)  # key-only: the walk
    assert r.method == "region_sparse"


def test_causal_counts_only_the_keys_up_to_the_last_query():
    rng = np.random.default_rng(10)
    q, k, v = _peaked(16384, 32, rng)  # 256 queries see the first 256 keys only
    r = auto(q, k, v, eps=1e-3, causal=True, check=True)
    assert r.method == "dense" and r.counters["decision"] == 0
    _check_bound(r, q, k, v, causal=True)


def test_query_mask_with_a_tree_takes_the_walk():
    """A mask of query and key alone with a prebuilt tree: the compiled walk reads it (decision 4), certified,
    a row that sees no key gives 0; on flat scores the walk's sample defeats the bounds and the screen is not
    priced (its masked path costs about dense): dense (decision 3).  Without a tree: the screen (decision 5)."""
    from tropix.attention import build_key_tree

    rng = np.random.default_rng(21)
    C = rng.normal(size=(128, 64))
    k = C[rng.integers(0, 128, 8192)] + 0.05 * rng.normal(size=(8192, 64))
    q = (C[rng.integers(0, 128, 512)] + 0.05 * rng.normal(size=(512, 64))) / 0.25
    v = rng.normal(size=(8192, 4))
    mask = rng.random((512, 8192)) < 0.9
    mask[7] = False
    tree = build_key_tree(k)
    r = auto(q, k, v, eps=1e-3, tree=tree, mask=mask, check=True)
    assert r.method == "region_sparse" and r.counters["decision"] == 4
    assert np.all(np.asarray(r.output)[7] == 0) and r.support[7] == 0
    assert r.counters["score_evals"] < 0.02 * 512 * 8192
    assert np.all(_errors(r, q, k, v, mask=mask) <= r.bound + r.reference_slack)
    r = auto(0.001 * q, k, v, eps=1e-3, tree=tree, mask=mask, check=True)
    assert r.method == "dense" and r.counters["decision"] == 3
    r = auto(q, k, v, eps=1e-3, mask=mask, check=True)
    assert r.method == "screened" and r.counters["decision"] == 5


def test_query_mask_walk_prices_the_screen_on_the_probe_rows_only(monkeypatch):
    """With a tree, a mask of query and key and a walk that gives up on many queries (clustered keys with a tail
    of queries that need thousands of keys; the pricing forced), auto prices the screen on the probe's rows: their bias is made
    from the mask, not every query's (mask_bias_rows, not mask_bias), and the result is certified whichever
    way it goes."""
    from tropix.attention import build_key_tree
    import tropix.attention._screen_numba as SN

    rng = np.random.default_rng(21)
    n, d = 8192, 32
    C = rng.normal(size=(n // 64, d))
    k = C[rng.integers(0, n // 64, n)] + 0.05 * rng.normal(size=(n, d))
    q = (C[rng.integers(0, n // 64, 512)] + 0.05 * rng.normal(size=(512, d))) / 0.25
    v = rng.normal(size=(n, 4))
    mask = rng.random((512, n)) < 0.9
    tree = build_key_tree(k)
    A = sys.modules["tropix.attention.auto"]
    monkeypatch.setattr(A, "SCREEN_CONSIDER", 0.0)  # (the screen is priced whenever some sampled query stops)
    monkeypatch.setattr(A, "SCREEN_PREFERENCE", 100.0)
    made = []
    orig = SN.mask_bias_rows
    monkeypatch.setattr(SN, "mask_bias_rows", lambda m, b, hb, rows, *a: made.append(len(rows)) or orig(m, b, hb, rows, *a))
    whole = []
    orig_all = SN.mask_bias
    monkeypatch.setattr(SN, "mask_bias", lambda *a: whole.append(1) or orig_all(*a))
    r = auto(q, k, v, eps=1e-3, tree=tree, mask=mask, check=True)
    assert r.counters["decision"] in (4, 6)
    assert made and made[0] < 512 and not whole
    if r.counters["decision"] == 4:  # (the screen lost: no other rows made)
        assert sum(made) < 512


def test_a_key_tree_keeps_the_screens_packed_keys():
    # i.i.d. keys with a prebuilt tree: the walk gives up, every query is screened (decision 6); the keys are
    # packed once for the screen's GEMM and kept on the tree, which the next call with it reads
    from tropix.attention import _bf16, _int8, build_key_tree

    rng = np.random.default_rng(21)
    q, k, v = _peaked(8192, 32, rng)
    tree = build_key_tree(k)
    r1 = auto(q, k, v, eps=1e-3, tree=tree, check=True)
    assert r1.method == "screened" and r1.counters["decision"] == 6
    packed = [key[1] for key in tree.__dict__.get("_cache", {}) if isinstance(key, tuple) and key[0] == "packed"]
    if not packed:  # the float32 sgemm screens: nothing is packed (only on a CPU without either kernel)
        assert not (_int8.available() or _bf16.available())
        return
    mod = {"int8": _int8, "bf16": _bf16}[packed[0]]
    calls = []
    orig = mod.pack_keys
    mp = pytest.MonkeyPatch()
    mp.setattr(mod, "pack_keys", lambda *a, **kw: calls.append(1) or orig(*a, **kw))
    try:
        r2 = auto(q, k, v, eps=1e-3, tree=tree, check=True)
    finally:
        mp.undo()
    assert not calls  # the tree's packed keys were used
    np.testing.assert_array_equal(r1.output, r2.output)
    np.testing.assert_array_equal(r1.bound, r2.bound)
    k2 = k.copy()
    k2[5, 3] += 1.0  # other keys: the tree is refused before anything is screened
    with pytest.raises(Exception, match="other keys"):
        auto(q, k2, v, eps=1e-3, tree=tree)
