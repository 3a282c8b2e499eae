"""The compiled key-tree build (tropix.attention._keytree_numba) against the tree's invariants and the NumPy build.

Invariants (checked exactly where they are exact): ``perm`` a permutation, levels tiling ``0..n`` with contiguous
blocks, children tiling their parent, every key inside its node's ball (exact rational distance against the
stored radius) and box, leaves of at most ``leaf`` keys, representatives nearest the centre, fingerprint.
The split rule is the one of the NumPy reference build: on inputs without ties both builds give the same
tree.  Attention with the compiled tree is certified (check=True) and compared with dense attention.
"""

from __future__ import annotations

import importlib
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import build_key_tree, dense, hierarchical, region_sparse
from tropix.errors import EmptyInputError, FloatOverflowError, NaNError, ShapeError

kt = importlib.import_module("tropix.attention.keytree")
reference = kt._build_key_tree_reference


def _exact_sq_dist(x, c):
    return sum((Fraction(float(a)) - Fraction(float(b))) ** 2 for a, b in zip(x, c))


def check_invariants(t, k, leaf, exact=True):
    n, d = k.shape
    assert t.n == n and t.leaf == leaf
    assert sorted(t.perm.tolist()) == list(range(n))
    assert t.starts[0].tolist() == [0] and t.count[0].tolist() == [n]
    assert np.array_equal(t.keys, k[t.perm]) and not t.keys.flags.writeable
    assert t.matches(k)
    for lvl in range(t.depth):
        st_, ct = t.starts[lvl], t.count[lvl]
        m = len(st_)
        assert np.all(ct > 0) and st_[0] == 0 and int(ct.sum()) == n
        assert np.array_equal(st_[1:], st_[:-1] + ct[:-1])  # contiguous blocks tiling 0..n
        for arr, shape in ((t.center[lvl], (m, d)), (t.lo[lvl], (m, d)), (t.hi[lvl], (m, d)),
                           (t.radius[lvl], (m,)), (t.rep[lvl], (m,))):
            assert arr.shape == shape
        if lvl:
            par = t.parent[lvl]
            pst, pct = t.starts[lvl - 1], t.count[lvl - 1]
            assert np.all(np.diff(par) >= 0) and par[0] == 0 and par[-1] == len(pst) - 1
            assert np.all(np.diff(par) <= 1)  # every parent has a child
            # children tile their parent
            assert np.array_equal(np.add.reduceat(ct, np.searchsorted(par, np.arange(len(pst)))), pct)
            assert np.all(st_ >= pst[par]) and np.all(st_ + ct <= pst[par] + pct[par])
            assert len(st_) > len(pst)  # a level exists because some node was split
        for b in range(m):
            s, c = st_[b], ct[b]
            keys = k[t.perm[s:s + c]]
            assert np.all(keys >= t.lo[lvl][b]) and np.all(keys <= t.hi[lvl][b])
            assert t.rep[lvl][b] in t.perm[s:s + c]
            dist = np.array([_norm(x - t.center[lvl][b]) for x in keys])
            r = t.radius[lvl][b]
            if exact:
                cen, r2 = t.center[lvl][b], Fraction(float(r)) ** 2
                assert all(_exact_sq_dist(x, cen) <= r2 for x in keys), (lvl, b)
            else:
                assert np.all(dist <= r)
            rd = _norm(k[t.rep[lvl][b]] - t.center[lvl][b])
            if lvl == t.depth - 1:  # leaves: the key nearest the centre (up to rounding of the distances)
                assert rd <= dist.min() * (1 + 1e-12) + 1e-300
            else:  # inner nodes: the nearest of the children's representatives
                kids = t.rep[lvl + 1][t.parent[lvl + 1] == b]
                assert t.rep[lvl][b] in kids
                assert rd <= min(_norm(k[j] - t.center[lvl][b]) for j in kids) * (1 + 1e-12) + 1e-300
    assert np.all(t.count[-1] <= leaf)
    norms = [_norm(x) for x in k]
    assert t.kmax == pytest.approx(max(norms), rel=1e-12)


def _norm(x):
    m = np.abs(x).max(initial=0.0)
    return 0.0 if m == 0 else float(m * np.sqrt(np.sum((x / m) ** 2)))


def same_tree(a, b, same_perm=True):
    assert a.depth == b.depth
    for lvl in range(a.depth):
        assert np.array_equal(a.starts[lvl], b.starts[lvl]) and np.array_equal(a.count[lvl], b.count[lvl])
        assert np.array_equal(a.parent[lvl], b.parent[lvl])
        for s, c in zip(a.starts[lvl], a.count[lvl]):
            assert set(a.perm[s:s + c].tolist()) == set(b.perm[s:s + c].tolist())
        assert np.array_equal(a.lo[lvl], b.lo[lvl]) and np.array_equal(a.hi[lvl], b.hi[lvl])
        np.testing.assert_allclose(a.center[lvl], b.center[lvl], rtol=1e-12, atol=1e-12 * a.kmax)
        np.testing.assert_allclose(a.radius[lvl], b.radius[lvl], rtol=1e-12, atol=1e-12 * a.kmax)
    if same_perm:
        assert np.array_equal(a.perm, b.perm)
    assert np.array_equal(a.fingerprint, b.fingerprint) and a.kmax == pytest.approx(b.kmax, rel=1e-14)


def _clustered(n, d, rng, nc=None):
    nc = nc or max(n // 64, 4)
    C = rng.normal(size=(nc, d))
    return C[rng.integers(0, nc, n)] + 0.05 * rng.normal(size=(n, d))


# ---------------------------------------------------------------------------------------------- invariants


@given(st.integers(0, 10**6), st.integers(1, 60), st.integers(1, 5), st.sampled_from([1, 2, 3, 8, 64]),
       st.sampled_from(["normal", "dups", "grid", "clustered", "line"]),
       st.sampled_from([1e-160, 1e-3, 1.0, 1e3, 1e160]))
@settings(max_examples=60, deadline=None)
def test_invariants_on_generated_keys(seed, n, d, leaf, kind, scale):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        k = rng.normal(size=(n, d))
    elif kind == "dups":  # a few points, each repeated
        k = rng.normal(size=(3, d))[rng.integers(0, 3, n)]
    elif kind == "grid":  # small integers: many ties in every coordinate
        k = rng.integers(-2, 3, size=(n, d)).astype(float)
    elif kind == "clustered":
        k = _clustered(n, d, rng, nc=3)
    else:  # collinear keys with an offset
        k = 5.0 + np.outer(rng.normal(size=n), rng.normal(size=d))
    k = k * scale
    t = build_key_tree(k, leaf=leaf)
    check_invariants(t, k, leaf)
    if kind in ("normal", "clustered"):  # no ties: the NumPy build gives the same tree
        same_tree(t, reference(k, leaf=leaf))


@pytest.mark.parametrize("case", ["all_equal", "one_key", "two_keys", "d1", "d1_dups", "offset", "huge", "tiny",
                                  "half_repeated"])
def test_degenerate_keys(case):
    rng = np.random.default_rng(7)
    k = {
        "all_equal": np.full((700, 4), 0.3),
        "one_key": np.array([[1.0, -2.0, 3.0]]),
        "two_keys": np.array([[1.0, 2.0], [1.0, 2.0]]),
        "d1": rng.normal(size=(500, 1)),
        "d1_dups": rng.integers(0, 4, size=(500, 1)).astype(float),
        "offset": 1e8 + rng.normal(size=(400, 3)),
        "huge": 1e160 * _clustered(600, 5, rng),
        "tiny": 1e-160 * _clustered(600, 5, rng),
        "half_repeated": np.concatenate([np.tile(rng.normal(size=(1, 6)), (300, 1)), rng.normal(size=(300, 6))]),
    }[case]
    for leaf in (1, 8, 64):
        t = build_key_tree(k, leaf=leaf)
        check_invariants(t, k, leaf, exact=len(k) * t.depth <= 40000)
        assert t.depth < 200
        ref = reference(k, leaf=leaf)
        check_invariants(ref, k, leaf, exact=False)


@pytest.mark.parametrize("n,d,kind", [(3000, 8, "gauss"), (5000, 20, "clustered"), (4500, 32, "clustered"),
                                      (2000, 3, "gauss"), (5000, 64, "gauss")])
def test_same_tree_as_the_numpy_build(n, d, kind):
    rng = np.random.default_rng(n + d)
    k = rng.normal(size=(n, d)) if kind == "gauss" else _clustered(n, d, rng)
    for leaf in (16, 64):
        t = build_key_tree(k, leaf=leaf)
        same_tree(t, reference(k, leaf=leaf))
        check_invariants(t, k, leaf, exact=False)


def test_fallback_without_numba_is_the_numpy_build(monkeypatch):
    rng = np.random.default_rng(3)
    k = _clustered(1500, 6, rng)
    fast = build_key_tree(k, leaf=32)
    monkeypatch.setattr(kt, "_load", lambda: None)
    slow = build_key_tree(k, leaf=32)
    same_tree(fast, slow)


def test_inputs_and_errors():
    import torch  # (a dependency: never skipped)
    rng = np.random.default_rng(1)
    k = rng.normal(size=(300, 5))
    same_tree(build_key_tree(torch.tensor(k), leaf=16), build_key_tree(k, leaf=16))
    same_tree(build_key_tree(k.tolist(), leaf=16), build_key_tree(k, leaf=16))
    with pytest.raises(ShapeError):
        build_key_tree(k[0])
    with pytest.raises(EmptyInputError):
        build_key_tree(np.zeros((0, 3)))
    for bad in (np.nan, np.inf, -np.inf):
        kb = k.copy()
        kb[17, 2] = bad
        with pytest.raises(NaNError, match="NaN or inf"):
            build_key_tree(kb)
    # finite keys whose mean, spread or node centres overflow float64: a clear error, not NaN bounds
    for kh in (np.concatenate([np.full((4, 2), 1e308), np.full((4, 2), -1e308), rng.normal(size=(4, 2))]),
               np.full((4000, 2), 1e305)):
        with pytest.raises(FloatOverflowError):
            build_key_tree(kh)


# ------------------------------------------------------------------------------------ attention with the tree


@pytest.mark.parametrize("kind", ["clustered", "gauss"])
def test_attention_with_the_compiled_tree_is_certified(kind):
    rng = np.random.default_rng(11)
    n, d = 4000, 16
    k = _clustered(n, d, rng) if kind == "clustered" else rng.normal(size=(n, d))
    q = (k[rng.integers(0, n, 48)] + 0.05 * rng.normal(size=(48, d))) * 3.0
    v = rng.normal(size=(n, 4))
    tree = build_key_tree(k)
    ref_tree = reference(k)
    o = dense(q, k, v)
    for fn in (region_sparse, hierarchical):
        r = fn(q, k, v, eps=1e-3, tree=tree, check=True)
        err = np.linalg.norm(np.asarray(r.output) - o, axis=1)
        assert np.all(err <= r.bound + r.reference_slack)
        # the same tree gives the same pruning as the NumPy build's
        r0 = fn(q, k, v, eps=1e-3, tree=ref_tree)
        assert np.array_equal(np.asarray(r.support), np.asarray(r0.support))


@pytest.mark.parametrize("case", ["normal", "huge", "tiny", "equal", "nan", "overflow"])
def test_blocked_preprocessing_of_large_key_sets(monkeypatch, case):
    """Large key sets are centred and rotated in blocks (scaled at the end); forced on for small inputs it gives
    the coordinates of the plain path (up to rounding) and the same errors."""
    rng = np.random.default_rng(5)
    k = {"normal": _clustered(9000, 12, rng), "huge": 1e160 * rng.normal(size=(5000, 7)),
         "tiny": 1e-160 * rng.normal(size=(5000, 7)), "equal": np.full((5000, 3), -2.5),
         "nan": rng.normal(size=(5000, 4)), "overflow": np.full((5000, 2), 1e305)}[case]
    if case == "nan":
        k[4321, 1] = np.nan
    if case in ("nan", "overflow"):
        monkeypatch.setattr(kt, "_BLOCKED", 0)
        with pytest.raises(NaNError if case == "nan" else FloatOverflowError):
            build_key_tree(k)
        return
    y0 = kt._prepare(k, 64)[1]
    monkeypatch.setattr(kt, "_BLOCKED", 0)
    y1 = kt._prepare(k, 64)[1]
    # principal axes are defined up to sign: compare column by column up to a sign
    sign = np.where(np.sum(y0 * y1, axis=0) < 0, -1.0, 1.0)
    np.testing.assert_allclose(y1 * sign, y0, rtol=1e-9, atol=1e-9 * max(np.abs(y0).max(), 1e-300))
    t = build_key_tree(k, leaf=64)
    check_invariants(t, k, 64, exact=False)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), d=st.sampled_from([1, 3, 16, 64]), n=st.integers(1, 600),
       scale=st.sampled_from([1e-3, 1.0, 1e3]), ties=st.booleans())
def test_upper_bounds_first_bound_every_key_exactly(seed, d, n, scale, ties):
    """The compiled bounds of every node (one product for the box bound, one pass for the rest): above the
    exact score of every key of the node (rational arithmetic), within rounding of score_bounds, and the
    first-largest bound and centre score per query as np.argmax gives them; keys with ties (repeated rows)
    included."""
    rng = np.random.default_rng(seed)
    k = rng.normal(size=(n, d)) * scale
    if ties:
        k[n // 2:] = k[: n - n // 2]
    qs = rng.normal(size=(7, d)) * 3
    t = build_key_tree(k, leaf=16)
    exact = [[sum(Fraction(float(a)) * Fraction(float(b)) for a, b in zip(qi, kj)) for kj in k] for qi in qs]
    for lvl in {0, t.depth // 2, t.depth - 1}:
        up, first, qc = kt.upper_bounds_first(t, lvl, qs)
        ref, qc_ref = kt.score_bounds(t, lvl, qs, centers=True)
        assert np.allclose(up, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
        assert np.allclose(qc, qc_ref, rtol=1e-12, atol=1e-12 * np.abs(qc_ref).max())
        assert np.array_equal(first[:, 0], np.argmax(up, axis=1))
        assert np.array_equal(first[:, 1], np.argmax(qc, axis=1))
        for b, (s0, c) in enumerate(zip(t.starts[lvl], t.count[lvl])):
            for i in range(len(qs)):
                top = max(exact[i][j] for j in t.perm[s0:s0 + c])
                assert Fraction(float(up[i, b])) >= top


def test_upper_bounds_first_without_numba_is_score_bounds(monkeypatch):
    """Without the compiled kernels the bounds are score_bounds' and the maxima np.argmax's."""
    rng = np.random.default_rng(3)
    k, qs = rng.normal(size=(300, 8)), rng.normal(size=(5, 8))
    t = build_key_tree(k, leaf=16)
    monkeypatch.setattr(kt, "_load", lambda: None)
    up, first, qc = kt.upper_bounds_first(t, t.depth - 1, qs)
    ref, qc_ref = kt.score_bounds(t, t.depth - 1, qs, centers=True)
    assert np.array_equal(up, ref) and np.array_equal(qc, qc_ref)
    assert np.array_equal(first, np.stack([np.argmax(ref, axis=1), np.argmax(qc_ref, axis=1)], axis=1))
