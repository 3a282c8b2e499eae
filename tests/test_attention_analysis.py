"""Analysis of Q/K (tropicality, argmax geometry, plane slices, entanglement) and TT-compressed attention."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull

from tropix.attention import (
    attention_entanglement,
    compress_projections,
    dense,
    key_geometry,
    score_slice,
    tropicality,
    tt_compressed,
)
from tropix.attention.analysis import sparsity_temperature
from tropix.errors import BoundViolationError, ShapeError, ToleranceError

RNG = np.random.default_rng(23)


def softmax_rows(S):
    m = S.max(axis=1, keepdims=True)
    W = np.exp(S - m)
    return W / W.sum(axis=1, keepdims=True)


@given(st.integers(0, 10**6), st.sampled_from([1.0, 0.3, 3.0]))
@settings(max_examples=25)
def test_tropicality_matches_brute_force(seed, temp):
    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(6, 4)) * 2, rng.normal(size=(9, 4))
    if seed % 4 == 0:
        k[1] = k[0]  # a tie for some queries
    h = tropicality(q, k, scale=1.0, eps=0.05, temperature=temp)
    S = q @ k.T
    p = softmax_rows(S / temp)
    np.testing.assert_allclose(h.max_weight, p.max(axis=1), rtol=1e-12)
    np.testing.assert_allclose(h.entropy, -(p * np.log(p)).sum(axis=1), rtol=1e-9, atol=1e-12)
    for i in range(6):
        ps = np.sort(p[i])[::-1]
        want = 1 + int(np.sum(np.cumsum(ps) < 0.95 - 1e-12))  # shortest prefix with mass >= 1 - eps
        assert h.effective_support[i] == want
        top = np.sort(S[i])[::-1]
        assert h.margin[i] == pytest.approx(top[0] - top[1], abs=1e-12)
        t = h.sparse_temperature[i]
        if top[0] == top[1]:
            assert t == 0.0
        else:
            assert softmax_rows(S[i:i + 1] / t).max() >= 0.95 * (1 - 1e-9)
            assert softmax_rows(S[i:i + 1] / (t * 1.001)).max() < 0.95


def test_tropicality_masks_and_errors():
    q, k = RNG.normal(size=(3, 2)), RNG.normal(size=(4, 2))
    mask = np.array([[True, False, False, False], [True, True, True, True], [False, True, True, False]])
    h = tropicality(q, k, mask=mask)
    assert h.effective_support[0] == 1 and h.margin[0] == np.inf and h.sparse_temperature[0] == np.inf
    assert h.max_weight[0] == 1.0
    with pytest.raises(ToleranceError):
        tropicality(q, k, eps=1.5)
    with pytest.raises(ShapeError):
        tropicality(q, RNG.normal(size=(4, 3)))
    assert set(h.summary()) >= {"median_max_weight", "margin_quantiles"}
    assert sparsity_temperature(np.array([[1.0, 1.0, 0.0]]), 0.1)[0] == 0.0


@given(st.integers(0, 10**6), st.sampled_from([2, 3]))
@settings(max_examples=15)
def test_key_geometry_vertices_are_hull_vertices(seed, d):
    rng = np.random.default_rng(seed)
    K = rng.normal(size=(25, d))
    G = key_geometry(K, queries=rng.normal(size=(5, d)))
    assert sorted(G.vertices.tolist()) == sorted(ConvexHull(K).vertices.tolist())
    for j, w in G.witnesses.items():
        assert int(np.argmax(K @ np.asarray(w))) == j
    Q = rng.normal(size=(5, d))
    G2 = key_geometry(K, queries=Q)
    for c, qq in zip(G2.cells, Q):
        assert int(np.argmax(K @ qq)) in c


def test_key_geometry_exact_square_adjacency_and_bias():
    sq = [[0, 0], [1, 0], [0, 1], [1, 1]]
    G = key_geometry(sq, adjacency=True)
    A = G.adjacency.astype(int).tolist()
    assert A == [[0, 1, 1, 0], [1, 0, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]]
    # a large bias on the interior point lifts it to a vertex of the upper hull
    pts = [[0, 0], [2, 0], [0, 2], [1, 1]]
    assert key_geometry(pts).vertices.tolist() == [0, 1, 2]
    assert key_geometry(pts, bias=[0, 0, 0, 5]).vertices.tolist() == [0, 1, 2, 3]


@given(st.integers(0, 10**6))
@settings(max_examples=15)
def test_score_slice_is_exact_max_over_keys(seed):
    rng = np.random.default_rng(seed)
    K = rng.integers(-3, 4, size=(6, 3)).tolist()
    q0, u, w = (rng.integers(-2, 3, size=3).tolist() for _ in range(3))
    bias = rng.integers(-2, 3, size=6).tolist()
    p = score_slice(K, q0, u, w, bias)
    for _ in range(5):
        a, b = Fraction(int(rng.integers(-9, 10)), 3), Fraction(int(rng.integers(-9, 10)), 4)
        q = [x + a * y + b * z for x, y, z in zip(q0, u, w)]
        want = max(sum(Fraction(qi) * ki for qi, ki in zip(q, kj)) + bj for kj, bj in zip(K, bias))
        assert Fraction(p([a, b])) == want
    C = p.hypersurface()
    for vert in C.vertices:  # at a vertex of the curve at least two distinct score-lines tie (exactly)
        q = [x + Fraction(vert[0]) * y + Fraction(vert[1]) * z for x, y, z in zip(q0, u, w)]
        sc = [sum(Fraction(qi) * ki for qi, ki in zip(q, kj)) + bj for kj, bj in zip(K, bias)]
        best = max(sc)
        lines = {(sum(Fraction(a_) * b_ for a_, b_ in zip(u, kj)), sum(Fraction(a_) * b_ for a_, b_ in zip(w, kj)))
                 for kj, s in zip(K, sc) if s == best}
        assert len(lines) >= 2


def test_plot_slice_runs():
    import matplotlib

    matplotlib.use("Agg")
    from tropix.attention import plot_slice

    ax = plot_slice(RNG.normal(size=(8, 3)), RNG.normal(size=3), [1, 0, 0], [0, 1, 0], queries=[(0.0, 0.0)])
    assert len(ax.lines) >= 3


def test_attention_entanglement_matches_svd():
    q, k = RNG.normal(size=(8, 3)), RNG.normal(size=(9, 3))
    e = attention_entanglement(q, k, row_dims=(2, 4), col_dims=(3, 3))
    P = softmax_rows(q @ k.T / np.sqrt(3))
    T = P.reshape(2, 4, 3, 3)
    for c, s in enumerate(e["spectra"], start=1):
        np.testing.assert_allclose(s, np.linalg.svd(T.reshape(int(np.prod(T.shape[:c])), -1), compute_uv=False),
                                   atol=1e-12)
    assert np.all(e["entropies"] >= -1e-12)
    assert e["entropies"][1] > 1e-6  # rows vs columns of a generic softmax matrix are entangled
    with pytest.raises(ShapeError):
        attention_entanglement(q, k, row_dims=(3, 3))


def _kron_weights(rng):
    # projections with Kronecker (TT-rank 1..2) structure: compressible
    return [np.kron(rng.normal(size=(8, 4)), rng.normal(size=(12, 8))) / 10 + np.kron(
        rng.normal(size=(8, 4)), rng.normal(size=(12, 8))) / 10 for _ in range(3)]


@pytest.mark.parametrize("tt_eps", [1e-6, 0.05, 0.3])
@pytest.mark.parametrize("inner_eps", [0.0, 1e-3])
def test_tt_compressed_bound_holds(tt_eps, inner_eps):
    rng = np.random.default_rng(4)
    W = _kron_weights(rng)
    X = rng.normal(size=(30, 96))
    T = compress_projections(*W, eps=tt_eps)
    r = tt_compressed(X, X, T, eps=inner_eps, weights=W, check=True, causal=True)
    ref = dense(X @ W[0], X @ W[1], X @ W[2], causal=True)
    err = np.linalg.norm(r.output - ref, axis=1)
    assert np.all(err <= r.bound + r.reference_slack)
    assert r.counters["tt_params"] < r.counters["dense_params"]
    if tt_eps == 1e-6:
        assert np.all(r.bound < 1e-3)  # nearly exact weights give a small certified error


def test_tt_compressed_attention_matrix_and_errors():
    rng = np.random.default_rng(5)
    W = _kron_weights(rng)
    X = rng.normal(size=(16, 96))
    T = compress_projections(*W, eps=1e-8)
    r = tt_compressed(X, X, T, attention_tt_eps=0.2, weights=W, check=True)
    assert r.output.shape == (16, 32)
    with pytest.raises(ShapeError):
        tt_compressed(X[:, :50], X, T)
    with pytest.raises(ToleranceError):
        tt_compressed(X, X, T, check=True)
    with pytest.raises(TypeError):
        tt_compressed(X, X, W)


def test_tt_compressed_check_catches_wrong_weights():
    rng = np.random.default_rng(6)
    W = _kron_weights(rng)
    X = rng.normal(size=(10, 96)) * 3
    T = compress_projections(*W, eps=1e-8)
    other = [w + 0.5 for w in W]  # not the weights that were compressed
    with pytest.raises(BoundViolationError):
        tt_compressed(X, X, T, weights=other, check=True)


def test_score_slice_of_integer_arrays_is_exact():
    """NumPy/torch integer input is exact input: products in int64 wrapped (2^64 -> 0) and float64 merged
    exponents beyond 2^53; the polynomial must equal the one of the same numbers as Python lists."""
    import torch

    cases = [([[2**32, 0], [0, 1]], [0, 0], [2**32, 0], [0, 1]),
             ([[2**53 + 1, 0], [2**53, 1]], [0, 0], [1, 0], [0, 1]),
             ([[3, -2], [-1, 4], [0, 0]], [1, 1], [2, -1], [1, 3])]
    for K, q0, u, w in cases:
        want = score_slice(K, q0, u, w)
        assert str(score_slice(*(np.array(x) for x in (K, q0, u, w)))) == str(want)
        assert str(score_slice(*(torch.tensor(x) for x in (K, q0, u, w)))) == str(want)
        assert str(score_slice(*(np.array(x) for x in (K, q0, u, w)), bias=np.array([1] * len(K)))) == \
            str(score_slice(K, q0, u, w, bias=[1] * len(K)))
    assert str(score_slice([[2**32, 0], [0, 1]], [0, 0], [2**32, 0], [0, 1])) == "max(y, 18446744073709551616*x)"
    assert "1.5*x" in str(score_slice(np.array([[1.5, 0], [0, 1]]), [0, 0], [1, 0], [0, 1]))  # floats stay floats


def test_key_geometry_copies_of_a_vertex_tie_at_its_witness():
    K = np.array([[0.0], [1.0], [1.0]])
    G = key_geometry(K)
    assert G.vertices.tolist() == [0, 1, 2]
    s = K @ G.witnesses[2]
    assert set(np.flatnonzero(s == s.max())) == {1, 2}  # (with its copy only)
    s0 = K @ G.witnesses[0]
    assert np.flatnonzero(s0 == s0.max()).tolist() == [0]
