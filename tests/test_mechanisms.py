"""Alternative attention mechanisms: each functional core against its naive loop reference (NumPy, torch,
array-api-strict), identities stated in the docstrings, gradients, and the stability cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tropix
from tropix.attention import mechanisms as M
from tropix.attention.mechanisms.force import force_attention_reference
from tropix.attention.mechanisms.grav_multiscale import grav_multiscale_attention_reference
from tropix.attention.mechanisms.gravitational import gravitational_attention_reference
from tropix.attention.mechanisms.multiscale import multiscale_attention_reference
from tropix.attention.mechanisms.powerlaw import powerlaw_attention_reference
from tropix.attention.mechanisms.softmax import softmax_attention_reference
from tropix.attention.mechanisms.tropical_hilbert import tropical_attention_reference

from conftest import to_np

RTOL, ATOL = 1e-9, 1e-11


def rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------- vs. references
def test_softmax_matches_reference(backend):
    r = rng(1)
    q, k, v = r.normal(size=(5, 3)), r.normal(size=(6, 3)), r.normal(size=(6, 2))
    mask = r.random((5, 6)) > 0.3
    mask[2] = False  # one fully masked row
    out, A = M.softmax_attention(backend(q), backend(k), backend(v), mask=_bool(backend, mask), return_weights=True)
    ref, Aref = softmax_attention_reference(q, k, v, mask=mask)
    np.testing.assert_allclose(to_np(out), ref, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_np(A), Aref, rtol=RTOL, atol=ATOL)
    assert np.all(to_np(out)[2] == 0)


def _bool(backend, m):
    b = backend(np.zeros(1))
    if isinstance(b, np.ndarray):
        return np.asarray(m)
    if isinstance(b, torch.Tensor):
        return torch.as_tensor(np.asarray(m))
    import array_api_strict

    return array_api_strict.asarray(np.asarray(m))


def test_force_matches_reference(backend):
    r = rng(2)
    E, R = r.normal(size=(5, 4)), r.normal(size=(6, 4))
    R[3] = E[1]  # a zero displacement: u = 0, score 0
    v, mu = r.normal(size=(3, 6, 2)), r.normal(size=(3, 4))
    out, A = M.force_attention(backend(E), backend(R), backend(v), backend(mu), return_weights=True)
    ref, Aref = force_attention_reference(E, R, v, mu)
    np.testing.assert_allclose(to_np(A), Aref, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(to_np(out), ref, rtol=1e-8, atol=1e-10)


def test_force_batched_equals_per_item():
    r = rng(3)
    E, R, v, mu = r.normal(size=(2, 4, 3)), r.normal(size=(2, 4, 3)), r.normal(size=(2, 2, 4, 5)), r.normal(size=(2, 3))
    out = M.force_attention(E, R, v, mu)
    for b in range(2):
        np.testing.assert_allclose(out[b], force_attention_reference(E[b], R[b], v[b], mu)[0], rtol=1e-8)


def test_gravitational_equals_linear_normalisation(backend):
    """The source's G·m_q·m_k/(d²+ε) row-normalised equals softmax(log m_k − log(d²+ε)); G and m_q cancel."""
    r = rng(4)
    q, k, v = r.normal(size=(5, 3)), r.normal(size=(7, 3)), r.normal(size=(7, 2))
    mq, mk = r.uniform(0.1, 3.0, 5), r.uniform(0.1, 3.0, 7)
    ref, Aref = gravitational_attention_reference(q, k, v, mq, mk, G=2.7)
    out, A = M.gravitational_attention(backend(q), backend(k), backend(v), mass_k=backend(mk), return_weights=True)
    np.testing.assert_allclose(to_np(A), Aref, rtol=1e-7)
    np.testing.assert_allclose(to_np(out), ref, rtol=1e-7, atol=1e-12)
    la = M.gravitational_logits(backend(q), backend(k), backend(np.log(mk)))
    np.testing.assert_allclose(to_np(la), np.log(mk)[None] - np.log(((q[:, None] - k[None]) ** 2).sum(-1) + 1e-8))


def test_multiscale_matches_reference(backend):
    r = rng(5)
    q, k, v = r.normal(size=(3, 6, 4)), r.normal(size=(3, 6, 4)), r.normal(size=(3, 6, 2))
    g = [0.6, 0.9, 0.99]
    for mode in ("bias", "logit"):
        out = M.multiscale_attention(backend(q), backend(k), backend(v), gammas=backend(np.array(g)), discount=mode)
        np.testing.assert_allclose(to_np(out), multiscale_attention_reference(q, k, v, g, discount=mode), rtol=1e-9)


def test_multiscale_logit_discount_pulls_far_keys_to_uniform():
    """The source's multiplicative discount makes far logits 0 (uniform), unlike the bias form."""
    q = np.ones((1, 1, 1)) * 5.0
    k = np.concatenate([np.zeros((1, 1, 1)), np.ones((1, 40, 1))], axis=1)  # key 0 at distance 0, others far
    v = np.eye(41)[None]
    A_logit = M.multiscale_attention(q, k, v, gammas=[0.5], discount="logit", return_weights=True)[1]
    A_bias = M.multiscale_attention(q, k, v, gammas=[0.5], discount="bias", return_weights=True)[1]
    # logits 5·0.5^j -> 0: far keys get the same weight as the zero-logit key 0, not less
    np.testing.assert_allclose(A_logit[0, 0, 30:], A_logit[0, 0, 0], rtol=1e-6)
    assert A_logit[0, 0, 30:].sum() > 0.1
    assert A_bias[0, 0, 30:].sum() < 1e-8  # the bias form suppresses them geometrically


def test_laplace_decoder_inverts_and_regularises():
    r = rng(6)
    g = np.array([0.5, 0.8, 0.95])
    bins = [0, 2, 5]
    L = g[:, None] ** np.array(bins)[None, :]
    c = r.normal(size=(3, 4, 2))
    O = np.tensordot(L, c, axes=([1], [0]))
    np.testing.assert_allclose(M.laplace_decoder(O, g, bins, alpha=0.0), c, rtol=1e-8, atol=1e-8)
    # Tikhonov form = SVD form sum_s σ/(σ²+α²) v_s u_sᵀ
    U, S, Vt = np.linalg.svd(L)
    P_svd = Vt.T @ np.diag(S / (S**2 + 0.3**2)) @ U.T
    np.testing.assert_allclose(M.laplace_decoder_matrix(g, bins, alpha=0.3), P_svd, rtol=1e-10)
    Pt = M.laplace_decoder_matrix(torch.tensor(g, requires_grad=True), bins, alpha=0.3)
    np.testing.assert_allclose(Pt.detach().numpy(), P_svd, rtol=1e-10)


def test_grav_multiscale_matches_reference(backend):
    r = rng(7)
    q, k, v = r.normal(size=(5, 3)), r.normal(size=(5, 3)), r.normal(size=(5, 2))
    mk = r.uniform(0.2, 2.0, (2, 5))
    g = [0.5, 0.95]
    out = M.grav_multiscale_attention(backend(q), backend(k), backend(v), log_mass_k=backend(np.log(mk)),
                                      gammas=backend(np.array(g)))
    np.testing.assert_allclose(to_np(out), grav_multiscale_attention_reference(q, k, v, mk, g), rtol=1e-7)


def test_powerlaw_matches_product_form(backend):
    r = rng(8)
    q, k, v = r.normal(size=(6, 4)), r.normal(size=(6, 4)), r.normal(size=(6, 3))
    out = M.powerlaw_attention(backend(q[None]), backend(k[None]), backend(v[None]), alpha=backend(np.array([1.7])),
                               beta=backend(np.array([0.4])))
    np.testing.assert_allclose(to_np(out)[0], powerlaw_attention_reference(q, k, v, 1.7, 0.4), rtol=1e-9)
    # alpha = 0 switches the field off
    np.testing.assert_allclose(M.powerlaw_attention(q, k, v, alpha=0.0, beta=1.0), M.softmax_attention(q, k, v))


def test_powerlaw_bias_is_power_law():
    b = M.powerlaw_bias(1, 50, np.array([2.0]), np.array([1.0]))[0, 0]
    d = np.arange(50)
    np.testing.assert_allclose(np.exp(b), (1 + d) ** -2.0, rtol=1e-12)


@pytest.mark.parametrize("sense", [1, -1])
def test_tropical_matches_reference(backend, sense):
    r = rng(9)
    q, k, v = r.normal(size=(5, 4)), r.normal(size=(6, 4)), r.normal(size=(6, 3))
    v[2, 1] = -math.inf if sense == 1 else math.inf  # the tropical zero is a legitimate value
    mask = r.random((5, 6)) > 0.3
    S = tropix.MaxPlus if sense == 1 else tropix.MinPlus
    out = M.tropical_attention(backend(q), backend(k), backend(v), semiring=S, mask=_bool(backend, mask))
    np.testing.assert_array_equal(to_np(out), tropical_attention_reference(q, k, v, sense=sense, mask=mask))


def test_tropical_blocks_agree_with_one_block(monkeypatch):
    from tropix.attention.mechanisms import tropical_hilbert as th

    r = rng(10)
    q, k, v = r.normal(size=(2, 9, 3)), r.normal(size=(2, 11, 3)), r.normal(size=(2, 11, 2))
    full = M.tropical_attention(q, k, v)
    monkeypatch.setattr(th, "_BLOCK_ELEMS", 40)  # forces many query blocks
    np.testing.assert_array_equal(M.tropical_attention(q, k, v), full)
    np.testing.assert_array_equal(M.hilbert_distance(q, k), th.hilbert_distance(q, k))


# ------------------------------------------------------------------------ tropical Hilbert metric
finite_vec = arrays(np.float64, 4, elements=st.floats(-50, 50, allow_nan=False, width=64))


@settings(max_examples=40)
@given(finite_vec, finite_vec, finite_vec, st.floats(-100, 100))
def test_hilbert_metric_axioms(x, y, z, c):
    d = lambda a, b: float(M.hilbert_distance(a[None], b[None])[0, 0])  # noqa: E731
    assert d(x, y) >= 0
    assert d(x, y) == pytest.approx(d(y, x), abs=1e-9)
    assert d(x + c, y) == pytest.approx(d(x, y), abs=1e-9)  # projective invariance
    assert d(x, z) <= d(x, y) + d(y, z) + 1e-9
    assert d(x, x + c) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=30)
@given(st.integers(0, 10_000))
def test_tropical_aggregation_is_1_lipschitz_and_linear_maps_nonexpansive(seed):
    r = rng(seed)
    q, k, v = r.normal(size=(4, 3)), r.normal(size=(5, 3)), r.normal(size=(5, 2))
    dv = r.uniform(-1, 1, size=v.shape)
    gap = np.max(np.abs(M.tropical_attention(q, k, v + dv) - M.tropical_attention(q, k, v)))
    assert gap <= np.max(np.abs(dv)) + 1e-12
    W = r.normal(size=(3, 3))
    x, y = r.normal(size=3), r.normal(size=3)
    dH = lambda a, b: float(M.hilbert_distance(a[None], b[None])[0, 0])  # noqa: E731
    assert dH(M.tropical_linear(x, W), M.tropical_linear(y, W)) <= dH(x, y) + 1e-12


def test_tropical_attention_does_not_fade_with_length():
    """Idempotent aggregation: adding far-away copies of keys never changes the output (softmax would dilute)."""
    r = rng(11)
    q, k, v = r.normal(size=(3, 4)), r.normal(size=(5, 4)), r.normal(size=(5, 2))
    base = M.tropical_attention(q, k, v)
    k2, v2 = np.concatenate([k] * 50), np.concatenate([v] * 50)
    np.testing.assert_array_equal(M.tropical_attention(q, k2, v2), base)


def test_tropicalize_dequantize():
    x = np.array([-2.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(M.dequantize(M.tropicalize(x)), np.maximum(x, 0))


# ---------------------------------------------------------------------------------- resonant
def _states(n, k, n_primes, seed):
    return [M.SparsePrimeState.from_hash(f"{seed}-{i}", k=k - (i % 2), n_primes=n_primes) for i in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resonant_sparse_equals_tensorised(backend, seed):
    states = _states(7, 4, 9, seed)  # few primes: many shared
    states.append(M.SparsePrimeState((97,), (1j,), ((0.0, 1.0, 0.0, 0.0),)))  # disjoint from all others
    P, PH, Q = M.states_to_arrays(states, k=4)
    xp_P = P if isinstance(backend(np.zeros(1)), np.ndarray) else _int(backend, P)
    dense = to_np(M.resonant_scores(xp_P, backend(PH), backend(Q), xp_P, backend(PH), backend(Q)))
    sparse = np.array([[M.resonance(s, t) for t in states] for s in states])
    np.testing.assert_allclose(dense, sparse, rtol=1e-12, atol=1e-14)
    assert np.any(sparse == 0) and np.any((sparse > 0) & (sparse < 1))  # both regimes are exercised
    # resonance with itself: J = 1, Qa = 1, Φ = 1
    np.testing.assert_allclose(np.diag(sparse), 1.0)


def _int(backend, a):
    b = backend(np.zeros(1))
    if isinstance(b, torch.Tensor):
        return torch.as_tensor(a)
    import array_api_strict

    return array_api_strict.asarray(a)


def test_resonant_disjoint_states_score_zero_and_attend():
    s = M.SparsePrimeState((2, 3), (1, 1j), ((1, 0, 0, 0), (0, 0, 1, 0)))
    t = M.SparsePrimeState((5, 7), (1, 1), ((1, 0, 0, 0), (1, 0, 0, 0)))
    assert M.resonance(s, t) == 0.0
    w, out = M.resonant_attend(s, [s, t], tau=0.2)
    assert w[0] / w[1] == pytest.approx(math.exp(1.0 / 0.2))
    assert sum(abs(a) ** 2 for a in out.amplitudes) == pytest.approx(1.0)
    assert all(sum(c * c for c in qq) == pytest.approx(1.0) for qq in out.quaternions)
    assert set(out.primes) == {2, 3, 5, 7}


def test_resonance_gram_is_not_psd():
    """The source's Theorem 6.1 (the resonance Gram matrix is PSD) is false: find a counterexample."""
    worst = 0.0
    for seed in range(40):
        states = [M.SparsePrimeState.from_hash(f"psd{seed}-{i}", k=4, n_primes=20) for i in range(12)]
        G = np.array([[M.resonance(a, b) for b in states] for a in states])
        assert np.allclose(G, G.T)
        worst = min(worst, float(np.linalg.eigvalsh(G).min()))
        if worst < -0.05:
            break
    assert worst < -0.05


def test_resonant_attention_rows_and_mask():
    states = _states(5, 3, 7, 5)
    P, PH, Q = M.states_to_arrays(states)
    mask = np.ones((5, 5), dtype=bool)
    mask[:, 0] = False
    out, A = M.resonant_attention(P, PH, Q, P, PH, Q, np.eye(5), tau=0.3, mask=mask, return_weights=True)
    np.testing.assert_allclose(A.sum(-1), 1.0)
    assert np.all(A[:, 0] == 0)
    S = np.array([[M.resonance(a, b) for b in states] for a in states]) / 0.3
    S[:, 0] = -np.inf
    E = np.exp(S - S.max(1, keepdims=True))
    np.testing.assert_allclose(A, E / E.sum(1, keepdims=True), rtol=1e-12)


# ---------------------------------------------------------------------- gradients and stability
def _t(a, grad=True):
    return torch.tensor(np.asarray(a, dtype=float), requires_grad=grad)


def _finite_grads(*ts):
    return all(t.grad is not None and bool(torch.isfinite(t.grad).all()) for t in ts)


CASES = ["softmax", "force", "gravitational", "multiscale", "grav_multiscale", "powerlaw", "resonant", "tropical"]


def _run_core(name, scale=1.0, coincide=False, seed=12):
    """Evaluate one functional core on torch leaves; ``coincide`` makes keys equal queries (distance 0)."""
    r = rng(seed)
    n, d = 5, 3
    x = r.normal(size=(n, d)) * scale
    y = x.copy() if coincide else r.normal(size=(n, d)) * scale
    v = _t(r.normal(size=(n, 2)))
    q, k = _t(x), _t(y)
    if name == "softmax":
        out = M.softmax_attention(q, k, v)
        leaves = (q, k, v)
    elif name == "force":
        mu = _t(r.normal(size=(2, d)))
        out = M.force_attention(q, k, v.expand(2, n, 2), mu)
        leaves = (q, k, mu)
    elif name == "gravitational":
        lm = _t(r.normal(size=n))
        out = M.gravitational_attention(q, k, v, log_mass_k=lm)
        leaves = (q, k, v, lm)
    elif name == "multiscale":
        lg = _t(np.log([0.6, 0.9]))
        out = M.multiscale_attention(q.expand(2, n, d), k.expand(2, n, d), v.expand(2, n, 2), log_gammas=lg)
        out = M.laplace_decoder(out, torch.exp(lg), [0, 3])
        leaves = (q, k, v, lg)
    elif name == "grav_multiscale":
        lm, lg = _t(r.normal(size=(2, n))), _t(np.log([0.6, 0.9]))
        out = M.grav_multiscale_attention(q, k, v, log_mass_k=lm, log_gammas=lg)
        leaves = (q, k, v, lm, lg)
    elif name == "powerlaw":
        a, b = _t([1.5]), _t([0.7])
        out = M.powerlaw_attention(q[None], k[None], v[None], alpha=a, beta=b)
        leaves = (q, k, a, b)
    elif name == "resonant":
        P = torch.as_tensor(np.array([[2, 3], [3, 5], [2, 5], [7, 0], [3, 2]]))
        ph = _t(r.normal(size=(n, 2)) * scale)
        qu = _t(np.zeros((n, 2, 4)) if coincide else r.normal(size=(n, 2, 4)))
        out = M.resonant_attention(P, ph, qu, P, ph, qu, v, tau=1e-3 if scale > 1 else 1.0)
        leaves = (ph, v)
    else:
        out = M.tropical_attention(q, k, v)
        leaves = (q, k, v)
    out.sum().backward()
    return out, leaves


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("case", ["plain", "coincident", "huge"])
def test_outputs_and_gradients_finite(name, case):
    out, leaves = _run_core(name, scale=1e6 if case == "huge" else 1.0, coincide=case == "coincident")
    assert bool(torch.isfinite(out).all())
    assert _finite_grads(*leaves)


def test_gradients_are_correct_gravitational_and_force():
    """torch.autograd.gradcheck on the generic cores (float64)."""
    r = rng(13)
    q, k, v = _t(r.normal(size=(3, 2))), _t(r.normal(size=(4, 2))), _t(r.normal(size=(4, 2)))
    lm = _t(r.normal(size=4))
    assert torch.autograd.gradcheck(lambda a, b, c, m: M.gravitational_attention(a, b, c, log_mass_k=m), (q, k, v, lm))
    mu = _t(r.normal(size=(2, 2)))
    assert torch.autograd.gradcheck(lambda a, b, m: M.force_attention(a, b, v.detach().expand(2, 4, 2), m),
                                    (q, k, mu))
    lg = _t(np.log([0.5, 0.8]))
    assert torch.autograd.gradcheck(
        lambda a, g: M.grav_multiscale_attention(a, k.detach(), v.detach(), log_mass_k=lm.detach().expand(2, 4),
                                                 log_gammas=g), (q, lg))


def test_force_scores_bounded_near_zero_distance():
    r = rng(14)
    E = r.normal(size=(6, 8)) * 1e4  # large norms: the Gram formula cancels badly
    R = E + r.normal(size=(6, 8)) * 1e-9  # receptors almost on the emitters
    mu = r.normal(size=(3, 8))
    s = M.force_scores(E, R, mu)
    assert np.all(np.isfinite(s))
    assert np.all(np.abs(s) <= np.linalg.norm(mu, axis=1)[:, None, None] * (1 + 1e-12))
    # float32 torch as well
    s32 = M.force_scores(torch.tensor(E, dtype=torch.float32), torch.tensor(R, dtype=torch.float32),
                         torch.tensor(mu, dtype=torch.float32))
    assert bool(torch.isfinite(s32).all())


def test_force_field_bounded_and_consistent():
    r = rng(15)
    E = r.normal(size=(5, 3))
    R = np.concatenate([E[:2] + 1e-7, r.normal(size=(3, 3))])
    for p, eps in ((2.0, 1e-3), (3.0, 1e-2), (1.0, 1e-3)):
        f = M.force_field(E, R, p=p, eps=eps)
        assert np.all(np.isfinite(f.force))
        assert np.all(f.magnitude <= f.bound * (1 + 1e-12))
        np.testing.assert_allclose(f.distance, np.linalg.norm(E[:, None] - R[None], axis=-1))
        np.testing.assert_allclose(f.charge, E @ R.T)
    # coincident emitter and receptor: u = 0, no force; at 1e-8 << r << sqrt(eps) the bound |c|/eps is nearly attained
    E1 = np.array([[0.0, 1.0], [1e-5, 1.0]])
    f = M.force_field(E1, np.array([[0.0, 1.0]]), p=2.0, eps=1e-3)
    assert f.magnitude[0, 0] == 0.0
    assert f.magnitude[1, 0] <= f.bound
    assert f.magnitude[1, 0] == pytest.approx(f.bound, rel=1e-2)


def test_gravitational_huge_masses_and_coincident_points_float32():
    q = torch.zeros(4, 3, dtype=torch.float32)
    k = torch.zeros(4, 3, dtype=torch.float32)  # every distance 0: weights ∝ masses
    lm = torch.tensor([0.0, math.log(3.0), 80.0, 80.0], dtype=torch.float32)  # masses e^80 overflow float32 weights
    A = M.gravitational_attention(q, k, torch.eye(4), log_mass_k=lm, return_weights=True)[1]
    assert bool(torch.isfinite(A).all())
    np.testing.assert_allclose(A[0].numpy(), [0, 0, 0.5, 0.5], atol=1e-6)


def test_gravitational_eps_zero_splits_among_coincident_keys():
    q = np.array([[0.0, 0.0]])
    k = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    A = M.gravitational_attention(q, k, np.eye(3), eps=0.0, return_weights=True)[1]
    np.testing.assert_allclose(A, [[0.5, 0.0, 0.5]])


def test_multiscale_tiny_gamma_no_nan():
    lg = torch.tensor([-1e4, math.log(0.9)], dtype=torch.float64, requires_grad=True)  # γ = e^{-10000} underflows
    q = torch.randn(2, 5, 3, dtype=torch.float64)
    out = M.multiscale_attention(q, q, q, log_gammas=lg)
    out.sum().backward()
    assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(lg.grad).all())
    # the shortest timescale attends only to the diagonal
    A = M.multiscale_attention(q, q, q, log_gammas=lg.detach(), return_weights=True)[1]
    np.testing.assert_allclose(A[0].numpy(), np.eye(5), atol=1e-12)


# ---------------------------------------------------------------------------------- modules
@pytest.mark.parametrize("name", CASES)
def test_modules_forward_backward_and_padding(name):
    torch.manual_seed(0)
    m = M.build_mechanism(name, 8, 2, vocab_size=12).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(1, 12, (2, 6))
    key_mask = torch.ones(2, 6, dtype=torch.bool)
    key_mask[1, 4:] = False
    y = m(x, key_mask, tokens)
    assert y.shape == (2, 6, 8)
    y[:, :4].sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    # padded keys have no influence on the other outputs
    x2 = x.detach().clone()
    x2[1, 4:] += 10.0
    t2 = tokens.clone()
    t2[1, 4:] = 0
    with torch.no_grad():
        np.testing.assert_allclose(m(x2, key_mask, t2)[1, :4].numpy(), m(x.detach(), key_mask, tokens)[1, :4].numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_gravitational_module_G_and_query_mass_are_inert():
    torch.manual_seed(1)
    m = M.build_mechanism("gravitational", 8, 2).double()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    y = m(x)
    with torch.no_grad():
        m.G.mul_(7.0)
        m.mass_q.weight.normal_()
    np.testing.assert_allclose(m(x).detach().numpy(), y.detach().numpy())


def test_unknown_mechanism_and_lazy_import():
    with pytest.raises(ValueError, match="unknown mechanism"):
        M.build_mechanism("nope", 8, 2)
    import subprocess
    import sys

    code = "import sys, tropix, tropix.attention.mechanisms as m; m.softmax_attention; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


# ---------------------------------------------------------------------------------- errors
def test_errors():
    q = np.ones((3, 2))
    with pytest.raises(tropix.ShapeError):
        M.softmax_attention(q, np.ones((3, 4)), q)
    with pytest.raises(tropix.NaNError):
        M.gravitational_attention(np.array([[np.nan, 0.0]]), q, q)
    with pytest.raises(tropix.EmptyInputError):
        M.softmax_attention(np.ones((0, 2)), q, q)
    with pytest.raises(tropix.ToleranceError):
        M.gravitational_attention(q, q, q, mass_k=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(tropix.ToleranceError):
        M.multiscale_attention(q[None], q[None], q[None], gammas=[1.5])
    with pytest.raises(tropix.ConventionError):
        M.hilbert_distance(np.array([[0.0, -np.inf]]), q)
    with pytest.raises(tropix.ConventionError):
        M.tropical_attention(q, q, np.array([[np.inf, 0.0]] * 3))  # +inf is not max-plus
    with pytest.raises(tropix.ShapeError):
        M.force_attention(q, q, np.ones((2, 3, 1)), np.ones((2, 5)))
    with pytest.raises(tropix.BackendMismatchError):
        M.softmax_attention(q, torch.ones(3, 2, dtype=torch.float64), q)
    with pytest.raises(tropix.ToleranceError):
        M.force_field(q, q, eps=0.0)
    with pytest.raises(TypeError):
        M.softmax_attention(q, q, q, mask=np.ones((3, 3)))


@settings(max_examples=25)
@given(st.integers(1, 6), st.integers(1, 7), st.integers(1, 4), st.integers(0, 2**31), st.floats(0.01, 30.0))
def test_cores_match_references_on_random_shapes(n_q, n_k, d, seed, scale):
    r = rng(seed)
    q, k, v = r.normal(size=(n_q, d)) * scale, r.normal(size=(n_k, d)) * scale, r.normal(size=(n_k, 2))
    np.testing.assert_allclose(M.softmax_attention(q, k, v), softmax_attention_reference(q, k, v)[0],
                               rtol=1e-8, atol=1e-12)
    mk = r.uniform(0.1, 5.0, n_k)
    # the source's +1e-8 in the denominator: agreement to relative 1e-8/Σ_l g_il (as documented)
    g_rows = (mk[None] / (((q[:, None] - k[None]) ** 2).sum(-1) + 1e-8)).sum(1)
    tol = 2e-8 / g_rows.min() + 1e-9
    got = M.gravitational_attention(q, k, v, mass_k=mk)
    ref = gravitational_attention_reference(q, k, v, np.ones(n_q), mk)[0]
    assert np.all(np.abs(got - ref) <= tol * np.abs(v).sum() + 1e-12)
    mu = r.normal(size=(2, d))
    np.testing.assert_allclose(M.force_attention(q, k, np.stack([v, v]), mu),
                               force_attention_reference(q, k, np.stack([v, v]), mu)[0], rtol=1e-7, atol=1e-10)
    np.testing.assert_array_equal(M.tropical_attention(q, k, v), tropical_attention_reference(q, k, v))
    if n_q == n_k:
        np.testing.assert_allclose(M.powerlaw_attention(q, k, v, alpha=1.3, beta=0.6),
                                   powerlaw_attention_reference(q, k, v, 1.3, 0.6), rtol=1e-8, atol=1e-12)


def test_integer_inputs_keep_float_parameters():
    """Integer q: alpha = 0.5 was cast to q's int dtype (0), so powerlaw attention silently became softmax, and
    multiscale's gammas became 0 (a spurious ToleranceError)."""
    rng = np.random.default_rng(0)
    q, k = rng.integers(-2, 3, (2, 4, 3))
    v = rng.integers(-2, 3, (4, 2))
    got = np.asarray(M.powerlaw_attention(q, k, v, alpha=0.5, beta=1.5))
    np.testing.assert_allclose(got, powerlaw_attention_reference(q, k, v, 0.5, 1.5), atol=1e-12)
    np.testing.assert_allclose(got, M.powerlaw_attention(*(x.astype(float) for x in (q, k, v)), alpha=0.5, beta=1.5))
    qs, ks, vs = np.stack([q] * 3), np.stack([k] * 3), np.stack([v] * 3)
    got = np.asarray(M.multiscale_attention(qs, ks, vs, gammas=[0.5, 0.9, 0.99]))
    want = M.multiscale_attention(*(x.astype(float) for x in (qs, ks, vs)), gammas=[0.5, 0.9, 0.99])
    np.testing.assert_allclose(got, want)


def test_grav_multiscale_masses_broadcast_over_heads_not_timescales():
    """log_mass_k (T, n_k) with heads (H, n, d): timescale t's masses went to head t."""
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(3, 2, 5, 3))
    lm = np.log(rng.uniform(0.1, 5, (2, 5)))
    out = M.grav_multiscale_attention(q, k, v, log_mass_k=lm, gammas=[0.5, 0.9])
    for h in range(2):
        ref = grav_multiscale_attention_reference(q[h], k[h], v[h], np.exp(lm), [0.5, 0.9])
        np.testing.assert_allclose(out[:, h], ref, atol=1e-6)
    lm3 = np.log(rng.uniform(0.1, 5, (2, 2, 5)))  # one mass vector per timescale and head
    out = M.grav_multiscale_attention(q, k, v, log_mass_k=lm3, gammas=[0.5, 0.9])
    for h in range(2):
        ref = grav_multiscale_attention_reference(q[h], k[h], v[h], np.exp(lm3[:, h]), [0.5, 0.9])
        np.testing.assert_allclose(out[:, h], ref, atol=1e-6)
    out3 = M.grav_multiscale_attention(q, k, v, log_mass_k=np.zeros((3, 5)), gammas=[0.5, 0.9, 0.99])
    assert out3.shape == (3, 2, 5, 3)
    with pytest.raises(tropix.errors.ShapeError, match="broadcasting to the heads' batch shape"):
        M.grav_multiscale_attention(q, k, v, log_mass_k=np.zeros((3, 3, 5)), gammas=[0.5, 0.9, 0.99])


# -- found by an exploratory review (session 14) --------------------------------------------------------------
def test_torch_integer_and_mixed_dtypes_are_promoted():
    t = torch.tensor([[1, 0], [0, 1]])
    want = M.softmax_attention(t.numpy(), t.numpy(), t.numpy())
    got = M.softmax_attention(t, t, t)  # (RuntimeError: float != long int)
    assert got.dtype == torch.float64 and np.allclose(got.numpy(), want)
    assert M.softmax_attention(t.float(), t.float(), t.double()).dtype == torch.float64
    assert np.allclose(M.gravitational_attention(t, t, t.double()).numpy(), M.gravitational_attention(
        t.numpy(), t.numpy(), t.numpy().astype(float)))
    q3 = t[None]
    assert M.multiscale_attention(q3, q3, q3, gammas=[0.5]).dtype == torch.float64


def test_wrapper_options_are_passed_or_refused():
    from tropix.attention.mechanisms.modules import build_mechanism
    from tropix.errors import OptionError

    m = build_mechanism("multiscale", 8, 2, decoder="laplace", bins=[0, 2, 5], alpha=1.0)
    assert m.decoder.bins == [0, 2, 5] and m.decoder.alpha == 1.0  # (were the defaults [0, 1, 3], 0.1)
    m = build_mechanism("grav_multiscale", 8, 2, decoder="laplace", bins=[0, 2, 5], vocab_size=30)
    assert m.decoder.bins == [0, 2, 5]
    with pytest.raises(OptionError, match="unknown option.*epsilon"):
        build_mechanism("gravitational", 8, 2, epsilon=0.5)  # (silently dropped)
    build_mechanism("resonant", 8, 2, vocab_size=30)


def test_listops_generator_refuses_impossible_requests():
    from tropix.attention.mechanisms import lra_data as L
    from tropix.errors import ArgumentTypeError, ToleranceError

    with pytest.raises(ToleranceError, match="max_args must be at least 2"):
        L.generate_listops(1, min_length=3, max_length=40, max_args=1)  # (raw ValueError)
    with pytest.raises(ToleranceError, match="at most 1"):
        L.generate_listops(1, min_length=3, max_length=40, max_depth=1)  # (never returned)
    with pytest.raises(ToleranceError, match="at most 4"):
        L.generate_listops(2, min_length=10, max_length=40, max_depth=2, max_args=2)
    with pytest.raises(ToleranceError, match="only 400 of 500"):  # (4 operators x 100 digit pairs fit)
        L.generate_listops(500, min_length=3, max_length=6, max_depth=3, max_args=2)
    with pytest.raises(ArgumentTypeError):
        L.encode_bytes(5, 8)  # (five NUL bytes)


def test_laplace_decoder_at_alpha_zero_is_the_pseudo_inverse():
    for g, bins in ((np.array([0.5, 0.5]), [0, 1]), (np.array([0.5, 0.9, 0.99]), [0, 1]), (np.array([0.5, 0.9]), [0, 2])):
        P = M.laplace_decoder_matrix(g, bins, alpha=0.0)  # (raw LinAlgError where L L^T is singular)
        L = g[:, None] ** np.array(bins, dtype=float)[None, :]
        assert np.allclose(P, np.linalg.pinv(L))


def test_scale_gammas_and_mask_are_validated():
    from tropix.errors import ArgumentTypeError, BackendMismatchError, NaNError, ToleranceError

    q = np.eye(2)
    with pytest.raises(ArgumentTypeError):
        M.multiscale_attention(q[None], q[None], q[None], gammas=[0.5], scale="a")
    with pytest.raises(ToleranceError):
        M.multiscale_attention(q[None], q[None], q[None], gammas=[0.5], scale=float("inf"))
    with pytest.raises(NaNError):
        M.softmax_attention(q, q, q, scale=np.array(np.nan))  # (all-NaN output)
    with pytest.raises(ArgumentTypeError):
        M.multiscale_attention(q[None], q[None], q[None], gammas=["a"])
    with pytest.raises(BackendMismatchError):
        M.softmax_attention(q, q, q, mask=torch.ones(2, 2, dtype=torch.bool))


def test_multiscale_array_scale_keeps_its_gradient():
    """Today's scale validation first made every scale a float: a tensor scale lost its gradient and a
    per-timescale array was refused (a reviewer's regression report)."""
    q, k, v = (torch.randn(2, 4, 3, dtype=torch.float64) for _ in range(3))
    s = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    o = M.multiscale_attention(q, k, v, gammas=[0.5, 0.9], scale=s)
    o.sum().backward()
    assert s.grad is not None and torch.isfinite(s.grad)
    per = torch.tensor([[[0.5]], [[1.0]]], dtype=torch.float64)
    o2 = M.multiscale_attention(q, k, v, gammas=[0.5, 0.9], scale=per)
    assert torch.allclose(o2[0], M.multiscale_attention(q, k, v, gammas=[0.5, 0.9], scale=0.5)[0])
