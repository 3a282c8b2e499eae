"""``region_sparse`` with a bias of query and key (``(n_q, n_k)``): the compiled block walk adds each query's
bias row to its exact scores and bounds a block by the row's largest ``|b|`` or, when that is too loose to
drop it, by the largest bias over the block's own keys.  Checked against dense attention (``check=True``),
against the generic per-level path it replaces, and on blocks and rows the bias masks with ``-inf``."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import build_key_tree, dense, region_sparse
from conftest import clustered_qk

R_MOD = __import__("tropix.attention.region_sparse", fromlist=["_query_bias"])  # (the module: the name is the function)


def _case(seed, n=3000, d=16, nq=60, temp=0.1, bscale=1.0):
    rng = np.random.default_rng(seed)
    q, k, _ = clustered_qk(rng, n, d, 32, nq, temp)
    v = rng.normal(size=(n, 3))
    b = bscale * rng.normal(size=(nq, n))
    return rng, q, k, v, b


@pytest.mark.parametrize("with_tree", [False, True])
@pytest.mark.parametrize("eps", [1e-3, 1e-6, 0.0])
def test_region_query_bias_compiled_walk_certified(with_tree, eps):
    """Certified (check=True), and sparse at eps = 1e-3: the walk computes a small share of the pairs."""
    rng, q, k, v, b = _case(1)
    tree = build_key_tree(k) if with_tree else None
    r = region_sparse(q, k, v, eps=eps, bias=b, scale=0.25, tree=tree, check=True)
    assert np.all(r.bound <= eps * np.linalg.norm(v, axis=1).max() + r.reference_slack)
    if eps == 1e-3:
        assert r.counters["score_evals"] < 0.25 * q.shape[0] * k.shape[0]
        assert r.counters["dense_fallback_rows"] < q.shape[0] // 4


def test_region_query_bias_agrees_with_generic_path(monkeypatch):
    """The compiled walk and the generic per-level path (forced) agree within the sum of their bounds."""
    _, q, k, v, b = _case(2)
    tree = build_key_tree(k)
    fast = region_sparse(q, k, v, eps=1e-3, bias=b, scale=0.25, tree=tree)
    monkeypatch.setattr(R_MOD, "_query_bias", lambda H: False)
    slow = region_sparse(q, k, v, eps=1e-3, bias=b, scale=0.25, tree=tree)
    gap = np.linalg.norm(np.asarray(fast.output) - np.asarray(slow.output), axis=1)
    assert np.all(gap <= fast.bound + slow.bound)
    assert "screened_rows" in fast.counters and "screened_rows" not in slow.counters  # (which path ran)


def test_region_query_bias_masked_blocks_and_rows():
    """-inf entries: whole blocks of a row masked (no mass), a row that sees one key, a row that sees none."""
    _, q, k, v, b = _case(3)
    tree = build_key_tree(k)
    L = tree.depth - 1
    st_, ct = tree.starts[L], tree.count[L]
    for leaf in range(0, len(st_), 2):  # every other leaf masked for query 0
        b[0, tree.perm[st_[leaf]:st_[leaf] + ct[leaf]]] = -np.inf
    b[1] = -np.inf
    b[1, 17] = 0.5
    b[2] = -np.inf
    r = region_sparse(q, k, v, eps=1e-3, bias=b, scale=0.25, tree=tree, check=True)
    ref = np.asarray(dense(q, k, v, bias=b, scale=0.25))
    assert np.allclose(np.asarray(r.output)[1], v[17], atol=1e-12)
    assert np.all(np.asarray(r.output)[2] == 0) and np.all(ref[2] == 0)
    assert r.support[1] == 1 and r.support[2] == 0
    assert np.all(np.isfinite(b[0, r.kept_keys(0)]))  # (only the unmasked leaves are ever computed)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), bscale=st.sampled_from([0.0, 1e-6, 0.5, 3.0, 50.0]),
       temp=st.sampled_from([0.05, 0.25, 1.0]), neginf=st.sampled_from([0.0, 0.3, 0.95]))
def test_region_query_bias_hypothesis(seed, bscale, temp, neginf):
    """Any scale of bias (zero, tiny, dominating the scores), any temperature, sparse to dense -inf masks:
    the bound holds (check=True)."""
    rng, q, k, v, b = _case(seed, n=1500, d=8, nq=30, temp=temp, bscale=bscale)
    b[rng.random(b.shape) < neginf] = -np.inf
    region_sparse(q, k, v, eps=1e-3, bias=b, tree=build_key_tree(k), check=True)


@pytest.mark.parametrize("mshape,bshape", [((40, 300), None), ((40, 1), (40, 300)), ((1, 300), (40, 300)),
                                           ((40, 300), (1, 300)), ((1, 300), (1, 300)), ((1, 300), None)])
def test_mask_bias_kernel_matches_numpy(mshape, bshape):
    """One term from a mask and a bias: the bias where the mask is True, -inf elsewhere (broadcast shapes),
    with each row's finite count and largest |b|."""
    from tropix.attention._screen_numba import mask_bias

    rng = np.random.default_rng(sum(mshape) + (0 if bshape is None else sum(bshape)))
    m = rng.random(mshape) < 0.6
    b = None if bshape is None else rng.normal(scale=3.0, size=bshape)
    if b is not None:
        b[rng.random(bshape) < 0.1] = -np.inf
    rows = 40 if (mshape[0] > 1 or (bshape is not None and bshape[0] > 1)) else 1
    out, cnt, am = np.empty((rows, 300)), np.empty(rows, dtype=np.int64), np.empty(rows)
    mask_bias(m, np.zeros((1, 1)) if b is None else b, b is not None, out, cnt, am)
    ref = np.where(np.broadcast_to(m, (rows, 300)), 0.0 if b is None else np.broadcast_to(b, (rows, 300)), -np.inf)
    assert np.array_equal(out, ref)
    fin = np.isfinite(ref)
    assert np.array_equal(cnt, fin.sum(axis=1))
    assert np.array_equal(am, np.where(fin, np.abs(ref), 0.0).max(axis=1))


@pytest.mark.parametrize("method", ["screened", "region"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_query_masks_take_the_bias_paths(method, with_bias, monkeypatch):
    """A mask of query and key with a bias (and, for the screen, without one) becomes one bias, -inf where
    masked: the screen's fused path with a bias and the compiled walk take it; the compiled walk takes a mask
    alone as it is (a hidden key scores -inf).  Certified, sparse, and within the sum of the bounds of the
    masked / generic paths they replace (forced by turning the conversion and the native mask off)."""
    from tropix.attention import screened

    rng, q, k, v, b = _case(4, temp=0.05)
    m = rng.random(b.shape) < 0.8
    m[3] = False  # a query that sees no key: output 0
    m[5, :] = False
    m[5, 11] = True  # one that sees one key
    kw = {"mask": m, "bias": b if with_bias else None}
    tree = build_key_tree(k)
    run = (lambda: screened(q, k, v, eps=1e-3, scale=0.25, check=True, **kw)) if method == "screened" else \
        (lambda: region_sparse(q, k, v, eps=1e-3, scale=0.25, tree=tree, check=True, **kw))
    calls = []
    orig = R_MOD._mask_as_bias
    monkeypatch.setattr(R_MOD, "_mask_as_bias", lambda H: calls.append(1) or orig(H))
    S_MOD = __import__("tropix.attention.screen", fromlist=["_mask_as_bias"])
    monkeypatch.setattr(S_MOD, "_mask_as_bias", R_MOD._mask_as_bias)
    native = []
    orig_fast = R_MOD.region_sparse_fast
    monkeypatch.setattr(R_MOD, "region_sparse_fast", lambda *a, **kw: native.append(kw.get("mask") is not None)
                        or orig_fast(*a, **kw))
    r = run()
    if method == "region" and not with_bias:
        assert not calls and native and all(native)  # the mask itself, not a bias made of it
    else:
        assert calls
    out = np.asarray(r.output)
    assert np.all(out[3] == 0) and r.support[3] == 0
    assert np.allclose(out[5], v[11], atol=1e-12) and r.support[5] == 1
    assert r.counters["score_evals"] < 0.25 * q.shape[0] * k.shape[0]
    monkeypatch.setattr(R_MOD, "_mask_as_bias", lambda H: H)
    monkeypatch.setattr(S_MOD, "_mask_as_bias", lambda H: H)
    monkeypatch.setattr(R_MOD, "_query_mask", lambda H: None)
    r0 = run()
    if method == "region" and not with_bias:  # (the generic walk plans whole groups: more scores)
        assert r0.counters["score_evals"] > r.counters["score_evals"]
    gap = np.linalg.norm(out - np.asarray(r0.output), axis=1)
    assert np.all(gap <= r.bound + r0.bound + 2 * r.reference_slack)


def test_region_skips_the_walk_when_the_sample_shows_no_geometry(monkeypatch):
    """i.i.d. keys in 32 dimensions: the block bounds leave nearly every key a candidate, so after the sample
    of HOPELESS_SAMPLE queries every other query is computed densely without its bounds or walk (bound_evals
    counts the sample only).  Certified, and within the sum of the bounds of walking every query."""
    rng = np.random.default_rng(8)
    q, k, v = 10 * rng.normal(size=(300, 32)), rng.normal(size=(4000, 32)), rng.normal(size=(4000, 2))
    tree = build_key_tree(k)
    leaves = len(tree.rep[-1])
    r = region_sparse(q, k, v, eps=1e-3, tree=tree, check=True)
    assert r.counters["bound_evals"] == R_MOD.HOPELESS_SAMPLE * leaves
    assert r.counters["dense_fallback_rows"] >= 300 - R_MOD.HOPELESS_SAMPLE
    monkeypatch.setattr(R_MOD, "HOPELESS_SHARE", 2.0)  # never: every query walks
    r_all = region_sparse(q, k, v, eps=1e-3, tree=tree, check=True)
    assert r_all.counters["bound_evals"] == 300 * leaves
    gap = np.linalg.norm(np.asarray(r.output) - np.asarray(r_all.output), axis=1)
    assert np.all(gap <= r.bound + r_all.bound + 2 * r.reference_slack)
    # clustered keys: the sample walks, so does every query (the same result as walking them all at once)
    rng, q, k, v, b = _case(9, temp=0.05, nq=200)
    tree = build_key_tree(k)
    monkeypatch.setattr(R_MOD, "HOPELESS_SHARE", 0.9)
    r = region_sparse(q, k, v, eps=1e-3, tree=tree, check=True)
    assert r.counters["bound_evals"] == 200 * len(tree.rep[-1])


@pytest.mark.parametrize("rows", [np.arange(0, 300), np.arange(40, 70), np.array([299, 5, 150, 0, 77])])
def test_dense_rows_causal_alone_compiled(rows):
    """The causal mask alone in the dense rows of region_sparse (compiled: only the keys after each query
    hidden, no term array): equal to dense causal attention of those rows; a query sees its position + 1
    keys."""
    from tropix.attention._inputs import prepare
    from tropix.attention.region_sparse import _dense_rows, _HeadData

    rng = np.random.default_rng(10)
    q, k, v = 3 * rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), rng.normal(size=(300, 2))
    P = prepare(q, k, v, None, None, None, True)
    H = _HeadData(P, (P.q, P.k, P.v), ())
    o, sup = _dense_rows(H, rows)
    assert np.allclose(o, np.asarray(dense(q, k, v, causal=True))[rows], rtol=0, atol=1e-12)
    assert np.array_equal(sup, rows + 1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), density=st.sampled_from([0.02, 0.3, 0.9, 1.0]),
       temp=st.sampled_from([1.0, 0.1, 0.02]), eps=st.sampled_from([0.0, 1e-6, 1e-3, 0.1]),
       threshold=st.booleans())
def test_region_native_query_mask_hypothesis(seed, density, temp, eps, threshold):
    """A mask of query and key alone, taken by the compiled walk as it is: certified (check=True) for any
    density, eps and temperature; a row that sees no key gives 0 and keeps none, a row that sees one key gives
    its value; a hidden key is never kept (with or without the key-level threshold); the output agrees with
    the same mask as a -inf bias on the same walk within the sum of the bounds."""
    rng, q, k, v, _ = _case(seed, n=1500, nq=40, temp=temp)
    m = rng.random((40, 1500)) < density
    m[0] = False
    m[1] = False
    m[1, int(rng.integers(0, 1500))] = True
    tree = build_key_tree(k)
    r = region_sparse(q, k, v, eps=eps, tree=tree, check=True, mask=m, threshold=threshold)
    out = np.asarray(r.output)
    assert np.all(out[0] == 0) and r.support[0] == 0
    assert np.allclose(out[1], v[np.flatnonzero(m[1])[0]], atol=1e-12) and r.support[1] == 1
    assert np.all(r.support <= m.sum(axis=1))
    rb = region_sparse(q, k, v, eps=eps, tree=tree, bias=np.where(m, 0.0, -np.inf), threshold=threshold)
    gap = np.linalg.norm(out - np.asarray(rb.output), axis=1)
    assert np.all(gap <= r.bound + rb.bound + 2 * r.reference_slack)
