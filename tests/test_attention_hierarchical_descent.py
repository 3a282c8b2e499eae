"""hierarchical attention: the coarse-to-fine descent over the key tree and the query groups.

Hierarchically clustered keys (super-clusters of clusters, d = 2..8) must be pruned above the leaf level,
by single queries and by whole query groups, with every row within its certified bound (check=True and an
independent dense comparison); hypothesis inputs run with the descent forced on."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import build_key_tree, dense, hierarchical

from test_attention_hier import _check, cases

hmod = importlib.import_module("tropix.attention.hierarchical")


def _hier_keys(n, d, rng, ns=8, nc=8):
    """Keys in ``ns`` well-separated super-clusters of ``nc`` tight clusters each; returns (keys, cluster centres)."""
    S = 10.0 * rng.normal(size=(ns, d))
    C = (S[:, None, :] + rng.normal(size=(ns, nc, d))).reshape(-1, d)
    return C[rng.integers(0, len(C), n)] + 0.05 * rng.normal(size=(n, d)), C


def _levels_counts(ctr, what, below):
    """Sum of ``level{l}_{what}`` counters over levels ``l < below``."""
    out = 0
    for key, val in ctr.items():
        if key.startswith("level") and key.endswith("_" + what):
            if int(key[5:].split("_")[0]) < below:
                out += val
    return out


@pytest.mark.parametrize("d", [2, 3, 5, 8])
def test_coarse_levels_prune_hierarchically_clustered_keys(d):
    rng = np.random.default_rng(d)
    k, C = _hier_keys(6000, d, rng)
    v = rng.normal(size=(6000, 3))
    q = 4.0 * C[rng.integers(0, len(C), 40)]
    tree = build_key_tree(k, leaf=32)
    Lf = tree.depth - 1
    r = hierarchical(q, k, v, eps=1e-3, tree=tree, descent=True, check=True)
    err = _check(r, q, k, v, 1e-3)
    ctr = r.counters
    # whole subtrees are dropped above the leaves, and what reaches the leaves is a small part of them
    assert _levels_counts(ctr, "pruned", Lf) > 0
    assert ctr[f"level{Lf}_bounded"] < 0.5 * len(q) * len(tree.starts[Lf])
    assert ctr["dense_rows"] == 0 and np.median(r.support) < 0.2 * len(k)
    # the bound is an upper bound of the true error, and not a vacuous one
    big = err > 1e-12
    assert np.all(err <= r.bound)
    if big.any():
        ratio = np.median(r.bound[big] / err[big])
        assert 1.0 <= ratio < 1e6


def test_descent_agrees_with_the_leaf_level_path_and_with_dense():
    rng = np.random.default_rng(7)
    k, C = _hier_keys(4000, 4, rng)
    v = rng.normal(size=(4000, 2))
    q = 3.0 * C[rng.integers(0, len(C), 64)] + 0.1 * rng.normal(size=(64, 4))
    tree = build_key_tree(k, leaf=16)
    ref = dense(q, k, v)
    outs = []
    for mode in (True, False, "auto"):
        r = hierarchical(q, k, v, eps=1e-4, tree=tree, descent=mode)
        err = np.linalg.norm(r.output - ref, axis=1)
        assert np.all(err <= r.bound + r.reference_slack)
        assert np.all(r.relative_bound <= 1e-4 * (1 + 1e-12))
        outs.append(r.output)
    # both paths approximate the same attention: they differ by at most the sum of their bounds
    assert np.all(np.abs(outs[0] - outs[1]) <= 2e-4 * np.abs(v).max() * np.sqrt(2) + 1e-12)


def test_query_groups_prune_whole_blocks():
    """Many queries around the same clusters: (query group, node) pairs are pruned with one bound each."""
    rng = np.random.default_rng(3)
    k, C = _hier_keys(8000, 3, rng)
    v = rng.normal(size=(8000, 2))
    q = 5.0 * C[np.repeat(rng.integers(0, len(C), 16), 80)] + 0.01 * rng.normal(size=(1280, 3))
    tree = build_key_tree(k, leaf=32)
    r = hierarchical(q, k, v, eps=1e-3, tree=tree, descent=True, check=True)
    _check(r, q, k, v, 1e-3)
    assert _levels_counts(r.counters, "group_pruned", tree.depth) > 0
    assert _levels_counts(r.counters, "group_bounded", tree.depth) < len(q) * len(tree.starts[-1])


def test_far_field_at_an_inner_node():
    """A distant super-cluster of identical keys has a known weight: a coarse node is aggregated whole."""
    rng = np.random.default_rng(11)
    near = np.array([1.0, 0.0]) + 0.05 * rng.normal(size=(500, 2))
    far = np.tile([[-1.0, 0.0]], (5500, 1))  # heavy (not prunable), but every weight is known: zero spread
    k = np.concatenate([near, far])
    v = rng.normal(size=(6000, 2))
    q = np.tile([[2.0, 0.0]], (4, 1)) + 0.01 * rng.normal(size=(4, 2))
    r = hierarchical(q, k, v, eps=1e-2, leaf=16, descent=True, check=True)
    _check(r, q, k, v, 1e-2)
    tree = build_key_tree(k, leaf=16)
    assert _levels_counts(r.counters, "aggregated", tree.depth - 1) > 0
    assert r.counters["dense_rows"] == 0 and r.counters["keys_aggregated"] >= 4 * 5000


@pytest.mark.parametrize("aggregate", [True, False])
def test_eps_zero_is_exact_with_the_descent(aggregate):
    rng = np.random.default_rng(5)
    k, C = _hier_keys(2000, 3, rng)
    v = rng.normal(size=(2000, 2))
    q = 4.0 * C[:12]
    mask = rng.random((12, 2000)) > 0.3
    r = hierarchical(q, k, v, eps=0.0, mask=mask, descent=True, aggregate=aggregate)
    ref = dense(q, k, v, mask=mask)
    assert np.all(np.linalg.norm(r.output - ref, axis=1) <= 1e-12 * np.abs(v).max())
    assert r.counters["nodes_pruned"] == r.counters["nodes_aggregated"] == 0


def test_masks_bias_and_causal_with_the_descent():
    rng = np.random.default_rng(9)
    k, C = _hier_keys(3000, 4, rng)
    v = rng.normal(size=(3000, 2))
    q = 4.0 * C[rng.integers(0, len(C), 3000)]
    keymask = np.ones(3000, dtype=bool)
    keymask[:1000] = False
    bias = rng.normal(size=3000)
    for kw in ({"mask": keymask}, {"bias": bias}, {"causal": True}):
        r = hierarchical(q[:200] if "causal" not in kw else q, k, v, eps=1e-3, leaf=32, descent=True, **kw)
        _check(r, q[:200] if "causal" not in kw else q, k, v, 1e-3, **kw)
        if "mask" in kw:  # the masked third is dropped at no cost, high in the tree
            assert r.counters["nodes_pruned"] > 0


@given(case=cases())
@settings(max_examples=150, deadline=None)
def test_forced_descent_agrees_with_dense_within_the_bound(case):
    q, k, v, kw, eps, opts = case
    r = hierarchical(q, k, v, eps=eps, descent=True, **opts, **kw)
    err = _check(r, q, k, v, eps, **kw)
    if eps == 0.0:
        assert np.all(err <= 1e-12 * np.abs(v).max() + 1e-300)


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 3000), leaf=st.sampled_from([1, 8, 64]))
@settings(max_examples=40, deadline=None)
def test_descent_levels_and_children_tile_the_keys(seed, n, leaf):
    t = build_key_tree(np.random.default_rng(seed).normal(size=(n, 3)), leaf=leaf)
    lv = hmod._descent_levels(t)
    assert lv[-1] == t.depth - 1 and lv == sorted(set(lv))
    for a, c in zip(lv[:-1], lv[1:]):
        b = np.arange(len(t.starts[a]))
        cnt, ch = hmod._children(t, a, c, b)
        # the children of every node at level a tile its keys, and all children together are level c
        assert np.array_equal(ch, np.arange(len(t.starts[c])))
        owner = np.repeat(b, cnt)
        assert np.array_equal(np.add.reduceat(t.count[c], np.flatnonzero(np.diff(np.append(-1, owner)))) if len(ch)
                              else np.zeros(0), t.count[a])


@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 6), pairs=st.integers(1, 60))
@settings(max_examples=60, deadline=None)
def test_greedy_prune_pairs_stays_within_budget(seed, rows, pairs):
    rng = np.random.default_rng(seed)
    pi = rng.integers(0, rows, pairs)
    mass = rng.exponential(size=pairs) * rng.choice([1e-6, 1.0], size=pairs)
    cand = rng.random(pairs) < 0.8
    budget = rng.exponential(size=rows)
    drop = hmod._greedy_prune_pairs(pi, mass, cand, budget)
    assert not np.any(drop & ~cand)
    assert np.all(np.bincount(pi[drop], weights=mass[drop], minlength=rows) <= budget * (1 + 1e-12))


@st.composite
def grouped_cases(draw):
    """Enough queries (up to 100) for the query groups, keys in a cluster hierarchy or with ties."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    d = draw(st.sampled_from([1, 2, 3, 5, 8]))
    nk = draw(st.one_of(st.integers(1, 40), st.integers(300, 1500)))
    nq = draw(st.one_of(st.integers(1, 8), st.integers(32, 100)))
    k, C = _hier_keys(nk, d, rng, ns=draw(st.integers(1, 6)), nc=draw(st.integers(1, 6)))
    q = C[rng.integers(0, len(C), nq)] * draw(st.sampled_from([0.5, 3.0, 20.0, 1e4]))  # 1e4: huge scores
    if draw(st.booleans()):
        k, q = np.round(k), np.round(q)  # repeated keys, tied scores
    v = rng.normal(size=(nk, 2))
    kw = {}
    extra = draw(st.sampled_from(["none", "none", "keymask", "bias", "mask", "causal"]))
    if extra == "keymask":
        kw["mask"] = rng.random(nk) > 0.4
    elif extra == "bias":
        kw["bias"] = np.where(rng.random(nk) < 0.1, -np.inf, rng.normal(size=nk))
    elif extra == "mask":
        m = rng.random((nq, nk)) > 0.5
        m[0] = False  # a fully masked row
        kw["mask"] = m
    elif extra == "causal":
        kw["causal"] = True
    eps = draw(st.sampled_from([0.0, 1e-6, 1e-3, 1e-3, 0.1]))
    opts = dict(leaf=draw(st.sampled_from([2, 8, 32])), aggregate=draw(st.booleans()))
    return q, k, v, kw, eps, opts


@given(case=grouped_cases())
@settings(max_examples=60, deadline=None)
def test_descent_with_query_groups_agrees_with_dense_within_the_bound(case, monkeypatch):
    q, k, v, kw, eps, opts = case
    monkeypatch.setattr(hmod, "_GROUP_MIN_ROWS", 32)  # query groups from 32 queries on (default: 1024)
    r = hierarchical(q, k, v, eps=eps, descent=True, **opts, **kw)
    err = _check(r, q, k, v, eps, **kw)
    if eps == 0.0:
        assert np.all(err <= 1e-12 * np.abs(v).max() + 1e-300)
    # every (query, node) pair bounded above the leaves was pruned, aggregated or descended; every group
    # pair was pruned, expanded or descended
    ctr = r.counters
    for key in [c for c in ctr if c.startswith("level") and c.endswith("_bounded")]:
        lvl = key[: key.index("_")]
        if key.endswith("group_bounded"):
            parts = ("group_pruned", "group_expanded", "group_descended")
        elif f"{lvl}_descended" in ctr:
            parts = ("pruned", "aggregated", "descended")
        else:
            continue  # the leaves
        assert ctr[key] == sum(ctr.get(f"{lvl}_{p}", 0) for p in parts)


@pytest.mark.parametrize("nq", [1, 37, 300, 700])
def test_causal_node_bounds_from_positions_equal_the_materialised_term(nq):
    """A causal mask alone: the node-wise maxima / minima of the term at every level, and each query's
    reference leaf, computed from the keys' positions equal those of the materialised (n_q, n) term."""
    from tropix.attention._inputs import prepare

    rng = np.random.default_rng(nq)
    n, d = 500, 6
    q, k, v = rng.normal(size=(nq, d)) * 3, rng.normal(size=(n, d)), rng.normal(size=(n, 2))
    P = prepare(q, k, v, causal=True)
    H = hmod._Head(P, (P.q, P.k, P.v), (), build_key_tree(k, 16), 16)
    ext = hmod._Extra(H)
    assert ext.causal and ext.full is None and ext.query_dependent
    full = H.extra(np.arange(nq), H.tree.perm)
    for lvl in range(H.tree.depth):
        st = H.tree.starts[lvl]
        ub, lb = ext.level(lvl)
        assert np.array_equal(ub, np.maximum.reduceat(full, st, axis=1))
        assert np.array_equal(lb, np.minimum.reduceat(full, st, axis=1))
    rows = np.arange(nq)
    nb = len(H.tree.starts[-1])
    U, qc = rng.normal(size=(nq, nb)), rng.normal(size=(nq, nb))
    got = hmod._reference(H, rows, U, qc, None, use_kernel=False)
    want = hmod._reference(H, rows, U, qc, full, use_kernel=False)
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
