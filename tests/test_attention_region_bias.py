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
