"""Rigorous bound of tt_compressed's TT attention-matrix path (attention_tt_eps): every rounding step covered.

The end-to-end guarantee ``|output_i - o_i|_2 <= bound_i`` is checked against the exact attention with the exact
weights, computed with 50-digit mpmath and compared without any slack; the individual terms (contraction rounding,
measured truncation, row normalisation) are checked against exact Fraction arithmetic on the stored floats.
"""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.attention import TTProjections, compress_projections, dense, tt_compressed
from tropix.attention.bounds import rounding_bound
from tropix.attention.tt_compressed import _tt_attention_matrix
from tropix.errors import BoundViolationError, ToleranceError
from tropix.tn import TTMatrix
from _brute import exact_ttmatrix_dense, fractions as _frac

mpmath.mp.dps = 50


# -- exact references ---------------------------------------------------------------------------------------
def _exact_attention(Xq, Xk, W, mask=None, bias=None, scale=None, causal=False):
    """Softmax attention with the exact weights in 50-digit arithmetic: a list of rows of mpf."""
    mp = mpmath.mpf
    Wq, Wk, Wv = ([[_mp(x) for x in row] for row in (w if _is_exact(w) else np.asarray(w, dtype=np.float64))]
                  for w in W)

    def proj(X, Wm):
        X = [[mp(float(x)) for x in row] for row in np.asarray(X, dtype=np.float64)]
        return [[mpmath.fsum(r[t] * Wm[t][c] for t in range(len(r))) for c in range(len(Wm[0]))] for r in X]

    q, k, v = proj(Xq, Wq), proj(Xk, Wk), proj(Xk, Wv)
    d = len(q[0])
    sc = 1 / mpmath.sqrt(d) if scale is None else mp(scale)
    out = []
    for i in range(len(q)):
        s = []
        for j in range(len(k)):
            b = 0.0 if bias is None else float(bias[i, j])
            if (mask is not None and not mask[i, j]) or (causal and j > i) or b == -np.inf:
                continue
            s.append((j, sc * mpmath.fsum(q[i][c] * k[j][c] for c in range(d)) + mp(b)))
        if not s:
            out.append([mp(0)] * len(v[0]))
            continue
        m = max(t for _, t in s)
        w = [(j, mpmath.exp(t - m)) for j, t in s]
        Z = mpmath.fsum(t for _, t in w)
        out.append([mpmath.fsum(t * v[j][c] for j, t in w) / Z for c in range(len(v[0]))])
    return out


def _is_exact(w):
    return isinstance(w, np.ndarray) and w.dtype == object


def _mp(x):
    """A float or a dyadic Fraction as an mpf (exact within 50 digits)."""
    if isinstance(x, Fraction):
        return mpmath.mpf(x.numerator) / mpmath.mpf(x.denominator)
    return mpmath.mpf(float(x))


def _exact_errors(output, exact):
    """``|output_i - exact_i|_2`` in 50-digit arithmetic (mpf per row)."""
    out = np.asarray(output.detach() if isinstance(output, torch.Tensor) else output, dtype=np.float64)
    return [mpmath.sqrt(mpmath.fsum((mpmath.mpf(float(a)) - b) ** 2 for a, b in zip(row, ex)))
            for row, ex in zip(out, exact)]


def _row_sq_norms(A):
    return [sum((x * x for x in row), Fraction(0)) for row in A]


# -- end to end, hypothesis ---------------------------------------------------------------------------------
@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_q=st.integers(1, 5),
    n_k=st.integers(1, 6),
    D=st.sampled_from([4, 6, 8]),
    d=st.integers(1, 3),
    dtype=st.sampled_from([np.float64, np.float32]),
    proj_eps=st.sampled_from([1e-12, 0.1, 0.5]),
    att_eps=st.sampled_from([1e-6, 0.05, 0.5]),
    scale=st.sampled_from([None, 0.0, 0.01, 4.0]),
    spread=st.sampled_from([0.0, 3.0]),
    cancel=st.booleans(),
    mask_kind=st.sampled_from([None, "mask", "bias", "causal"]),
    self_attention=st.booleans(),
)
def test_bound_holds_against_exact_attention(seed, n_q, n_k, D, d, dtype, proj_eps, att_eps, scale, spread, cancel,
                                             mask_kind, self_attention):
    rng = np.random.default_rng(seed)
    W = [rng.standard_normal((D, d)) / np.sqrt(D) for _ in range(3)]
    if cancel:  # a value column that nearly cancels another, and keys/values in exact +- pairs
        W[2] = np.concatenate([W[2], -W[2][:, :1] * (1 + 2.0**-30)], axis=1)
    Xk = rng.standard_normal((n_k, D)) * 10.0 ** rng.uniform(-spread, spread, (n_k, D))
    if cancel:
        Xk[1::2] = -Xk[0:n_k - 1:2][: Xk[1::2].shape[0]]
    Xq = Xk[:n_q] if self_attention and n_q <= n_k else rng.standard_normal((n_q, D)) * 10.0 ** rng.uniform(
        -spread, spread, (n_q, D))
    Xq, Xk = Xq.astype(dtype), Xk.astype(dtype)
    mask = bias = None
    causal = mask_kind == "causal"
    if mask_kind == "mask":
        mask = rng.random((n_q, n_k)) < 0.6  # fully masked rows included
    elif mask_kind == "bias":
        bias = rng.standard_normal((n_q, n_k)) * 3
        bias[rng.random((n_q, n_k)) < 0.3] = -np.inf
    T = compress_projections(*W, eps=proj_eps)
    r = tt_compressed(Xq, Xk, T, mask=mask, bias=bias, scale=scale, causal=causal, attention_tt_eps=att_eps,
                      weights=W, check=True)  # check=True: the float64 dense reference with its slack
    exact = _exact_attention(Xq, Xk, W, mask, bias, scale, causal)
    err = _exact_errors(r.output, exact)
    assert all(e <= mpmath.mpf(float(b)) for e, b in zip(err, r.bound)), (err, r.bound)
    assert r.output.shape == (n_q, W[2].shape[1]) and r.bound.shape == (n_q,)


# -- the terms, against exact arithmetic -------------------------------------------------------------------
def _small_case(seed, att_eps, n=6, d=3, spread=0.0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-spread, spread, (n, d))
    k = rng.standard_normal((n, d)) * 10.0 ** rng.uniform(-spread, spread, (n, d))
    v = rng.standard_normal((n, 3)) * 10.0 ** rng.uniform(-spread, spread, (n, 3))
    sc = 1 / np.sqrt(d)
    return q, k, v, sc, _tt_attention_matrix(q, k, v, None, None, sc, False, att_eps)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spread", [0.0, 2.0])
def test_contraction_term_bounds_the_exact_rounding_and_is_needed(seed, spread):
    """|fl(P̃ v̂) - P̃ v̂|_2 per row (exact Fractions) <= the contraction term; the error is not zero, so the
    term cannot be dropped."""
    q, k, v, sc, tt = _small_case(seed, 0.3, spread=spread)
    exact = exact_ttmatrix_dense(tt.matrix).dot(_frac(v))
    sq = _row_sq_norms(_frac(tt.output) - exact)
    assert all(s <= Fraction(float(b)) ** 2 for s, b in zip(sq, tt.contraction))
    assert max(sq) > 0
    # the term is rounding-sized, not a loose multiple of the output
    assert np.all(tt.contraction < 1e-12 * np.abs(v).max() * v.shape[0])


@pytest.mark.parametrize("seed", range(4))
def test_truncation_term_is_rigorous_where_nothing_is_discarded(seed):
    """With a small tolerance the TT-SVD keeps every singular value, yet the stored cores do not reproduce P̂
    exactly: the TT certificate is a small positive rounding term that covers the exact difference, and the
    measured truncation term bounds |(P̃ - P̂) v̂|_2 exactly."""
    q, k, v, sc, tt = _small_case(seed, 1e-3)
    P = dense(q, k, np.eye(k.shape[0]), scale=sc)
    diff = exact_ttmatrix_dense(tt.matrix) - _frac(P)
    assert 0 < tt.matrix.error_bound < 1e-13 and any(x != 0 for x in diff.ravel())
    assert sum(x * x for x in diff.ravel()) <= Fraction(tt.matrix.error_bound) ** 2
    sq = _row_sq_norms(diff.dot(_frac(v)))
    assert all(s <= Fraction(float(b)) ** 2 for s, b in zip(sq, tt.truncation))
    assert max(sq) > 0


@pytest.mark.parametrize("seed", range(3))
def test_truncation_term_is_tight_when_it_dominates(seed):
    """A coarse TT attention matrix: the measured term is the true row error up to rounding, and at most the
    Frobenius-times-spectral-norm accounting it replaces."""
    q, k, v, sc, tt = _small_case(seed, 0.3)
    P = dense(q, k, np.eye(k.shape[0]), scale=sc)
    sq = _row_sq_norms((exact_ttmatrix_dense(tt.matrix) - _frac(P)).dot(_frac(v)))
    true = np.sqrt(np.array([float(s) for s in sq]))
    assert np.all(true <= tt.truncation) and np.all(tt.truncation <= true * (1 + 1e-9) + 1e-13)
    assert np.all(tt.truncation <= tt.matrix.error_bound * np.linalg.norm(v, 2) * (1 + 1e-9))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("scale", [0.5, 30.0])
def test_normalisation_term_bounds_the_l1_error_of_the_attention_matrix(seed, scale):
    """|P̂_i - P_i|_1 (P̂ from dense with identity values, P exact in 50 digits) <= rounding_bound(vmax = 1):
    the row-normalisation term used for the TT path."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((5, 4)) * scale, rng.standard_normal((7, 4))
    bias = rng.standard_normal((5, 7)) * 10
    P = dense(q, k, np.eye(7), bias=bias, scale=0.5)
    rb = rounding_bound(np.linalg.norm(q, axis=1), np.linalg.norm(k, axis=1).max(), np.abs(bias).max(), 7, 4, 1.0, 0.5)
    for i in range(5):
        s = [mpmath.mpf(0.5) * mpmath.fsum(mpmath.mpf(float(a)) * mpmath.mpf(float(b)) for a, b in zip(q[i], k[j]))
             + mpmath.mpf(float(bias[i, j])) for j in range(7)]
        m = max(s)
        w = [mpmath.exp(t - m) for t in s]
        Z = mpmath.fsum(w)
        l1 = mpmath.fsum(abs(mpmath.mpf(float(P[i, j])) - w[j] / Z) for j in range(7))
        assert l1 <= mpmath.mpf(float(rb[i]))


# -- usefulness, API, errors --------------------------------------------------------------------------------
def _kron_weights(rng):
    return [np.kron(rng.normal(size=(4, 2)), rng.normal(size=(6, 4))) / 5 for _ in range(3)]


def test_bound_is_close_to_the_true_error_when_the_attention_matrix_is_truncated():
    rng = np.random.default_rng(7)
    W = _kron_weights(rng)
    X = rng.normal(size=(12, 24)) * 2
    T = compress_projections(*W, eps=1e-10)
    r = tt_compressed(X, X, T, attention_tt_eps=0.3, weights=W, check=True)
    err = np.array([float(e) for e in _exact_errors(r.output, _exact_attention(X, X, W))])
    assert np.all(err <= r.bound) and np.all(r.bound <= 1.001 * err)
    assert r.counters["attention_tt_params"] < 12 * 12 and r.counters["score_evals"] == 144


def test_torch_float32_input_and_eps_ignored():
    rng = np.random.default_rng(8)
    W = _kron_weights(rng)
    X = rng.normal(size=(9, 24)).astype(np.float32)
    T = compress_projections(*W, eps=0.05)
    r = tt_compressed(torch.from_numpy(X), torch.from_numpy(X), T, causal=True, attention_tt_eps=0.1, weights=W,
                      check=True)
    r_eps = tt_compressed(X, X, T, causal=True, attention_tt_eps=0.1, eps=0.3)
    assert isinstance(r.output, torch.Tensor)
    assert np.array_equal(r.output.numpy(), r_eps.output) and np.array_equal(r.bound, r_eps.bound)
    err = _exact_errors(r.output, _exact_attention(X, X, W, causal=True))
    assert all(e <= mpmath.mpf(float(b)) for e, b in zip(err, r.bound))


def test_check_catches_wrong_weights_and_bad_tolerances():
    rng = np.random.default_rng(9)
    W = _kron_weights(rng)
    X = rng.normal(size=(8, 24)) * 3
    T = compress_projections(*W, eps=1e-8)
    with pytest.raises(BoundViolationError):
        tt_compressed(X, X, T, attention_tt_eps=1e-3, weights=[w + 0.5 for w in W], check=True)
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ToleranceError, match="attention_tt_eps"):
            tt_compressed(X, X, T, attention_tt_eps=bad)
    with pytest.raises(ToleranceError, match="needs weights"):
        tt_compressed(X, X, T, attention_tt_eps=0.1, check=True)


@pytest.mark.parametrize("seed", range(3))
def test_float32_cores(seed):
    """Projections stored as float32 TT cores (their own exact operators are the weights): the cores are
    converted to float64 exactly, so the products and their rounding bounds are float64 ones (bounded with
    float32's unit roundoff the bound was ~0.1-0.5 max|v|, here the error is ~1e-13)."""
    rng = np.random.default_rng(seed)
    T = compress_projections(*(rng.standard_normal((12, 4)) for _ in range(3)), eps=0.3)
    T32 = TTProjections(*(TTMatrix(tuple(c.astype(np.float32) for c in t.cores)) for t in (T.wq, T.wk, T.wv)))
    W = [exact_ttmatrix_dense(t) for t in (T32.wq, T32.wk, T32.wv)]
    X = (rng.standard_normal((5, 12)) * 10.0 ** rng.uniform(-2, 2, (5, 12))).astype(np.float32)
    r = tt_compressed(X, X, T32, causal=bool(seed % 2), attention_tt_eps=0.2)
    err = _exact_errors(r.output, _exact_attention(X, X, W, causal=bool(seed % 2)))
    assert all(e <= mpmath.mpf(float(b)) for e, b in zip(err, r.bound))
    assert np.all(r.bound < 1e-6 * r.vmax)


def test_fully_masked_rows_and_a_single_token():
    rng = np.random.default_rng(10)
    W = _kron_weights(rng)
    X = rng.normal(size=(4, 24))
    T = compress_projections(*W, eps=0.1)
    mask = np.ones((4, 4), dtype=bool)
    mask[1] = False
    r = tt_compressed(X, X, T, mask=mask, attention_tt_eps=0.5, weights=W, check=True)
    err = _exact_errors(r.output, _exact_attention(X, X, W, mask=mask))
    assert all(e <= mpmath.mpf(float(b)) for e, b in zip(err, r.bound))
    one = tt_compressed(X[:1], X[:1], T, attention_tt_eps=0.5, weights=W, check=True)
    err1 = _exact_errors(one.output, _exact_attention(X[:1], X[:1], W))
    assert one.output.shape == (1, 8) and err1[0] <= mpmath.mpf(float(one.bound[0]))


# -- the score-shift lemma behind the projection term (bounds.logit_shift_bound) ------------------------------
@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 7), sigma=st.sampled_from([0.0, 1e-9, 1e-3, 0.3, 1.0, 4.0, 40.0]),
       extreme=st.booleans(), spread=st.sampled_from([0.0, 1.0, 30.0]))
def test_logit_shift_bound_holds_exactly(seed, n, sigma, extreme, spread):
    """|Σ (p̃ - p) v| <= 2 tanh(σ/2) max|v| for every score moved by at most σ, in 50-digit arithmetic."""
    from tropix.attention.bounds import logit_shift_bound

    rng = np.random.default_rng(seed)
    s = rng.standard_normal(n) * spread
    delta = sigma * (np.where(rng.random(n) < 0.5, -1.0, 1.0) if extreme else rng.uniform(-1, 1, n))
    v = rng.standard_normal((n, 3))
    mp = mpmath.mpf

    def softmax(x):
        e = [mpmath.exp(mp(float(t))) for t in x]
        z = mpmath.fsum(e)
        return [t / z for t in e]

    p, pt = softmax(s), softmax(s + delta)
    diff = [mpmath.fsum((pt[j] - p[j]) * mp(float(v[j, c])) for j in range(n)) for c in range(3)]
    err = mpmath.sqrt(mpmath.fsum(t * t for t in diff))
    vmax = max(mpmath.sqrt(mpmath.fsum(mp(float(x)) ** 2 for x in row)) for row in v)
    assert err <= mp(float(logit_shift_bound(sigma))) * vmax


@pytest.mark.parametrize("sigma", [1e-6, 0.01, 0.5, 2.0, 8.0])
def test_logit_shift_bound_is_attained(sigma):
    """Equality up to rounding: two keys' worth of mass, one share x = 1/(1 + e^σ) moved up by σ and the rest
    down by σ, values +-v: the output moves by exactly 2 tanh(σ/2) |v| (and expm1(2σ) would be ~2x loose)."""
    from tropix.attention.bounds import logit_shift_bound

    sg = mpmath.mpf(sigma)
    x = 1 / (1 + mpmath.exp(sg))  # p = (x, 1 - x); the first score up by σ, the second down by σ
    xt = x * mpmath.exp(sg) / (x * mpmath.exp(sg) + (1 - x) * mpmath.exp(-sg))
    moved = 2 * (xt - x)  # |Σ (p̃ - p) v| with v = (+1, -1)
    b = float(logit_shift_bound(sigma))
    assert moved <= b and float(moved) == pytest.approx(b, rel=1e-12)
    if sigma < 0.1:
        assert np.expm1(2 * sigma) > 1.9 * b
