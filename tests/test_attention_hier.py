"""hierarchical attention: the code paths of the vectorised walk (pruning, far field, exact block GEMMs per query
group, dense rows, fallback), each checked against dense attention and its certified bound."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import array_api_strict
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import build_key_tree, dense, hierarchical
from tropix.errors import BoundViolationError

from conftest import to_np

hmod = importlib.import_module("tropix.attention.hierarchical")
rs_mod = importlib.import_module("tropix.attention.region_sparse")


def _check(r, q, k, v, eps, **kw):
    """Error within the certified bound, and the bound within the request (or at the rounding floor)."""
    ref = to_np(dense(q, k, v, **kw))
    err = np.linalg.norm(to_np(r.output) - ref, axis=-1)
    assert np.all(err <= r.bound + r.reference_slack), (err - r.bound).max()
    vmax = np.max(np.linalg.norm(np.asarray(v, dtype=float), axis=-1), axis=-1)[..., None]
    assert np.all((r.bound <= eps * vmax * (1 + 1e-12)) | (r.bound <= 4 * r.reference_slack + 1e-300))
    return err


def _clustered(n, d, nc, spread, rng):
    C = rng.normal(size=(nc, d))
    lab = rng.integers(0, nc, n)
    return C[lab] + spread * rng.normal(size=(n, d)), C


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["peaked", "peaked", "ties", "duplicates", "gauss", "n1", "one_query"]))
    nk = 1 if kind == "n1" else draw(st.integers(2, 400))
    nq = 1 if kind == "one_query" else draw(st.integers(1, 24))
    d = draw(st.sampled_from([1, 3, 8, 16]))
    if kind in ("peaked", "ties", "duplicates"):
        k, C = _clustered(nk, d, max(2, nk // 40), 0.0 if kind == "duplicates" else 0.05, rng)
        q = C[rng.integers(0, len(C), nq)] * draw(st.sampled_from([2.0, 6.0, 20.0]))
        if kind == "ties":
            k, q = np.round(k), np.round(q)  # repeated keys and exactly tied scores
    else:
        k = rng.normal(size=(nk, d))
        q = rng.normal(size=(nq, d)) * draw(st.sampled_from([0.5, 3.0]))
    v = rng.normal(size=(nk, draw(st.integers(1, 3)))) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    kw = {}
    if draw(st.booleans()) and kind != "ties":
        q = q * draw(st.sampled_from([1e2, 1e4]))  # huge scores: rounding terms grow with their magnitude
    extra = draw(st.sampled_from(["none", "none", "mask", "keymask", "bias", "hugebias", "causal"]))
    if extra == "mask":
        mask = rng.random((nq, nk)) > draw(st.sampled_from([0.1, 0.6]))
        mask[0, :] = draw(st.booleans())  # possibly a fully masked row
        kw["mask"] = mask
    elif extra == "keymask":
        mask = np.ones(nk, dtype=bool)
        mask[: nk // 3] = False  # whole leaves masked
        kw["mask"] = mask
    elif extra == "bias":
        b = rng.normal(size=(nk,)) * 2
        b[rng.random(nk) < 0.1] = -np.inf
        kw["bias"] = b
    elif extra == "hugebias":
        kw["bias"] = 1e7 + rng.normal(size=(nk,)) * draw(st.sampled_from([0.0, 1e-3, 3.0]))
    elif extra == "causal":
        kw["causal"] = True
    eps = draw(st.sampled_from([0.0, 1e-9, 1e-4, 1e-3, 0.05, 0.5]))
    opts = dict(leaf=draw(st.sampled_from([1, 4, 16, 64])), group=draw(st.sampled_from([1, 3, 64])),
                aggregate=draw(st.booleans()))
    return q, k, v, kw, eps, opts


@given(case=cases())
@settings(max_examples=300, deadline=None)
def test_agrees_with_dense_within_the_bound(case):
    q, k, v, kw, eps, opts = case
    r = hierarchical(q, k, v, eps=eps, **opts, **kw)
    err = _check(r, q, k, v, eps, **kw)
    assert r.output.shape == (q.shape[0], v.shape[1])
    assert np.all(r.support <= k.shape[0])
    if eps == 0.0:
        assert np.all(err <= 1e-12 * np.abs(v).max() + 1e-300)
        assert r.counters["nodes_pruned"] == r.counters["nodes_aggregated"] == 0
    ctr = r.counters
    assert ctr["dense_rows"] + ctr["dense_fallback_rows"] <= q.shape[0]


@pytest.mark.parametrize("aggregate", [True, False])
def test_eps_zero_is_dense_with_extras(aggregate):
    rng = np.random.default_rng(4)
    q, k, v = rng.normal(size=(9, 5)) * 4, rng.normal(size=(500, 5)), rng.normal(size=(500, 2))
    for kw in (dict(), dict(causal=True), dict(mask=rng.random((9, 500)) > 0.5), dict(bias=rng.normal(size=500))):
        r = hierarchical(q, k, v, eps=0.0, aggregate=aggregate, **kw)
        np.testing.assert_allclose(r.output, dense(q, k, v, **kw), rtol=0, atol=1e-12)
        assert r.counters["dense_rows"] == 9 and np.all(r.bound < 1e-10)


def test_peaked_queries_prune_and_compute_few_keys():
    rng = np.random.default_rng(3)
    k, C = _clustered(6000, 16, 90, 0.05, rng)
    v = rng.normal(size=(6000, 4))
    q = C[rng.integers(0, 90, 48)] * 16
    tree = build_key_tree(k)
    r = hierarchical(q, k, v, eps=1e-3, tree=tree, check=True)
    _check(r, q, k, v, 1e-3)
    assert r.counters["dense_rows"] <= 12 and r.counters["nodes_pruned"] > 0
    # brute-force: the fewest keys any certified method must keep (top keys until the rest is within budget)
    S = (q / 4) @ k.T
    W = -np.sort(-np.exp(S - S.max(axis=1, keepdims=True)), axis=1)
    c = np.cumsum(W, axis=1)
    need = 1 + np.argmax(c[:, -1:] - c <= 1e-3 / 2 * c, axis=1)
    assert np.median(r.support) <= 4 * np.median(need) + 64  # within a few leaves of the optimum
    assert r.counters["score_evals"] < 0.4 * 48 * 6000
    for i in range(48):
        kk = r.kept_keys(i)
        assert int(np.argmax(S[i])) in set(kk.tolist())
        assert r.support[i] == len(kk)  # no extra term: every kept key has a finite score
        if len(kk) == 6000:
            continue  # a query done densely
        # kept keys are whole leaves of the tree
        pos = np.sort(np.flatnonzero(np.isin(tree.perm, kk)))
        leaves = np.searchsorted(tree.starts[-1], pos, side="right") - 1
        assert tree.count[-1][np.unique(leaves)].sum() == len(kk)


def test_flat_scores_go_dense():
    rng = np.random.default_rng(5)
    q, k, v = rng.normal(size=(12, 16)) * 0.3, rng.normal(size=(3000, 16)), rng.normal(size=(3000, 3))
    r = hierarchical(q, k, v, eps=1e-3)
    assert r.counters["dense_rows"] == 12 and r.counters["dense_fallback_rows"] == 0
    np.testing.assert_allclose(r.output, dense(q, k, v), rtol=0, atol=1e-12)
    assert np.all(r.support == 3000) and np.all(r.bound == r.reference_slack)
    assert len(r.kept_keys(5)) == 3000


def test_far_field_aggregation_of_repeated_keys():
    # 30 distinct keys, each repeated 100 times: node scores are known up to rounding, so nodes too heavy to
    # prune at a tight eps are aggregated (one weight per node) instead of computed
    rng = np.random.default_rng(6)
    P = rng.normal(size=(30, 6))
    k = np.repeat(P, 100, axis=0)
    v = rng.normal(size=(3000, 2))
    q = 6 * P[rng.integers(0, 30, 10)]
    r = hierarchical(q, k, v, eps=1e-8, aggregate=True, check=True)
    _check(r, q, k, v, 1e-8)
    assert r.counters["nodes_aggregated"] > 0 and r.counters["keys_aggregated"] > 0
    r0 = hierarchical(q, k, v, eps=1e-8, aggregate=False, check=True)
    _check(r0, q, k, v, 1e-8)
    assert r0.counters["nodes_aggregated"] == 0
    assert r0.counters["score_evals"] > r.counters["score_evals"]


def test_fully_masked_leaves_are_pruned_for_free_and_masked_rows_are_zero():
    rng = np.random.default_rng(7)
    k, C = _clustered(4000, 8, 60, 0.05, rng)
    v = rng.normal(size=(4000, 2))
    q = C[rng.integers(0, 60, 16)] * 6
    tree = build_key_tree(k)
    mask = np.ones((16, 4000), dtype=bool)
    mask[:, tree.perm[: tree.starts[-1][len(tree.starts[-1]) // 2]]] = False  # the first half of the leaves
    mask[3] = False  # a query that sees nothing
    r = hierarchical(q, k, v, eps=1e-3, mask=mask, tree=tree, check=True)
    _check(r, q, k, v, 1e-3, mask=mask)
    assert np.all(r.output[3] == 0) and r.support[3] == 0
    assert r.counters["nodes_pruned"] > 0


def test_a_broken_bound_is_caught_and_a_loose_one_falls_back(monkeypatch):
    rng = np.random.default_rng(8)
    k, C = _clustered(12000, 8, 150, 0.05, rng)
    v = rng.normal(size=(12000, 2))
    q = C[rng.integers(0, 150, 10)] * 10
    r = hierarchical(q, k, v, eps=0.3, check=True)
    assert r.counters["dense_rows"] < 10
    # a bound that is too large sends every computed row to the dense fallback: the output is then dense
    monkeypatch.setattr(hmod, "truncation_bound", lambda *a, **kw: np.full(np.shape(a[0]), np.inf))
    r = hierarchical(q, k, v, eps=0.3, check=True)
    assert r.counters["dense_fallback_rows"] + r.counters["dense_rows"] == 10
    np.testing.assert_allclose(r.output, dense(q, k, v), rtol=0, atol=1e-12)
    # a bound of zero (and no rounding slack) is a violation that check=True reports
    monkeypatch.setattr(hmod, "truncation_bound", lambda *a, **kw: np.zeros(np.shape(a[0])))
    monkeypatch.setattr(rs_mod, "rounding_bound", lambda *a, **kw: np.zeros(10))
    with pytest.raises(BoundViolationError):
        hierarchical(q, k, v, eps=0.3, check=True)


def test_batched_heads_and_backends(backend):
    rng = np.random.default_rng(9)
    k = np.stack([np.stack([_clustered(300, 4, 8, 0.05, rng)[0] for _ in range(3)]) for _ in range(2)])
    q = k[..., :6, :] * 5
    v = rng.normal(size=(2, 3, 300, 2))
    mask = rng.random((6, 300)) > 0.3
    r = hierarchical(backend(q), backend(k), backend(v), eps=1e-3, mask=backend(mask.astype(float)) > 0.5)
    assert type(r.output) is type(backend(q))
    assert r.bound.shape == (2, 3, 6)
    _check(r, q, k, v, 1e-3, mask=mask)


def test_strict_arrays_roundtrip():
    rng = np.random.default_rng(10)
    q, k, v = rng.normal(size=(4, 4)) * 3, rng.normal(size=(200, 4)), rng.normal(size=(200, 2))
    r = hierarchical(array_api_strict.asarray(q), array_api_strict.asarray(k), array_api_strict.asarray(v), eps=1e-2)
    assert "array_api_strict" in type(r.output).__module__
    _check(r, q, k, v, 1e-2)
    r = hierarchical(torch.tensor(q), torch.tensor(k), torch.tensor(v), eps=1e-2)
    assert isinstance(r.output, torch.Tensor) and r.output.dtype == torch.float64


@given(st.integers(0, 10**6), st.integers(1, 12), st.integers(1, 30))
@settings(max_examples=60, deadline=None)
def test_greedy_prune_stays_within_budget(seed, rows, cols):
    rng = np.random.default_rng(seed)
    mass = np.exp(rng.normal(size=(rows, cols)) * 4) * rng.choice([0.0, 1.0], size=(rows, cols), p=[0.1, 0.9])
    cand = rng.random((rows, cols)) < 0.8
    budget = rng.choice([0.0, 1e-3, 1.0, 10.0], size=rows)
    drop = hmod._greedy_prune(mass, cand, budget)
    assert not np.any(drop & ~cand)
    assert np.all(np.where(drop, mass, 0.0).sum(axis=1) <= budget * (1 + 1e-12))
    # a candidate lighter than budget / (number of candidates) is always dropped
    k = cand.sum(axis=1)
    light = cand & (mass <= (budget / np.maximum(k, 1))[:, None])
    assert np.all(drop[light])


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 6)), max_size=8))
def test_ranges_concatenates_aranges(pairs):
    st_, ct = np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)
    ref = np.concatenate([np.arange(s, s + c) for s, c in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    np.testing.assert_array_equal(hmod._ranges(st_, ct), ref)


@given(st.integers(0, 10**6), st.integers(1, 3000), st.sampled_from([1, 8, 64]))
@settings(max_examples=25, deadline=None)
def test_leaves_tile_the_keys(seed, n, leaf):
    # the leaf-wise maxima / minima of masks and biases (np.*.reduceat over the leaf starts) rely on it
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(n, 3))
    if seed % 2:
        k[: n // 2] = k[0]  # repeated keys
    t = build_key_tree(k, leaf=leaf)
    s, c = t.starts[-1], t.count[-1]
    assert s[0] == 0 and np.all(c > 0) and np.all(np.diff(s) == c[:-1]) and s[-1] + c[-1] == n


@given(st.integers(0, 10**6), st.integers(1, 500), st.sampled_from([1, 4, 16]), st.sampled_from([1, 8, 64]))
@settings(max_examples=40, deadline=None)
def test_compiled_reference_matches_numpy(seed, n, d, leaf):
    from tropix.attention._inputs import prepare

    rng = np.random.default_rng(seed)
    k = rng.normal(size=(n, d))
    if seed % 3 == 0:
        k = np.round(k)  # ties
    q, v = rng.normal(size=(7, d)) * 4, rng.normal(size=(n, 2))
    H = rs_mod._Head(prepare(q, k, v), (q, k, v), (), None, leaf)
    t = H.tree
    rows = np.arange(7)
    U, qc = rng.normal(size=(7, len(t.starts[-1]))), H.qs @ t.center[-1].T
    a = hmod._reference(H, rows, U, qc, use_kernel=True)
    b = hmod._reference(H, rows, U, qc, use_kernel=False)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-10)
    # the chosen leaf holds the reported maximum (brute force)
    S = H.qs @ t.keys.T
    for i in range(7):
        s0, c0 = t.starts[-1][a[2][i]], t.count[-1][a[2][i]]
        assert abs(S[i, s0:s0 + c0].max() - a[0][i]) <= 1e-12 * (1 + abs(a[0][i]))
        assert a[0][i] <= S[i].max() + 1e-12 * (1 + abs(a[0][i]))


@given(st.integers(0, 10**6), st.integers(1, 60), st.integers(1, 40), st.sampled_from([1, 4, 64]))
@settings(max_examples=60, deadline=None)
def test_query_groups_partition_the_rows(seed, nr, nl, group):
    rng = np.random.default_rng(seed)
    ct = rng.integers(1, 70, nl)
    n = int(ct.sum())
    best = rng.integers(0, nl, nr)
    open_ = rng.random((nr, nl)) < rng.choice([0.02, 0.2, 0.8])
    open_[np.arange(nr), best] = True
    gather, overhead = 12.0, 500.0
    groups, dense_mask = hmod._query_groups(best, open_, ct, n, group, gather, overhead)
    seen = np.concatenate(groups + [np.flatnonzero(dense_mask)])
    assert sorted(seen.tolist()) == list(range(nr))  # every query exactly once
    for g in groups:
        assert 1 <= len(g) <= group
        u = open_[g].any(axis=0) @ ct
        assert u * (gather + len(g)) + overhead <= len(g) * n  # cheaper than a dense pass of its rows
