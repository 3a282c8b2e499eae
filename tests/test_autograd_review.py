"""Autograd review of the attention mechanisms, dense attention and tropical attention: gradcheck / gradgradcheck in
float64 of every mechanism with respect to every input and learnable parameter (stability edges included), gradients
against independent direct formulas, dense against torch's scaled_dot_product_attention, and regression tests of the
defects found (each failed before its fix)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

from tropix.attention import dense, tropical
from tropix.attention import mechanisms as M
from tropix.attention.mechanisms import modules as Mo

D = torch.float64


def _t(a, grad=True, dtype=D):
    return torch.tensor(np.asarray(a, dtype=float), dtype=dtype, requires_grad=grad)


def _coincident(seed=0, n=4, d=3):
    """q, k, v (float64 leaves) with key 1 equal to query 0 (distance 0)."""
    r = np.random.default_rng(seed)
    q, k = r.normal(size=(n, d)), r.normal(size=(n, d))
    k[1] = q[0]
    return _t(q), _t(k), _t(r.normal(size=(n, 2))), r


# ================================================================================ regression tests of the fixes
def test_gravitational_second_derivatives_where_a_query_coincides_with_a_key():
    """sq_distances clipped the Gram distances at 0 with a where() that cut their gradient: where a query coincides
    with a key (d² rounds to <= 0) the Hessian 2I of ‖q − k‖² was lost, and the second derivatives of gravitational
    attention there were wrong (0 instead of 0.14 in this example; gradgradcheck failed)."""
    q, k, v, r = _coincident()
    lm = _t(r.normal(size=4))
    f = lambda a, b: M.gravitational_attention(a, b, v.detach(), log_mass_k=lm.detach())  # noqa: E731
    assert gradcheck(f, (q, k))
    assert gradgradcheck(f, (q, k))

    def direct(a):  # the same formula with direct differences
        d2 = ((a[:, None, :] - k.detach()[None]) ** 2).sum(-1)
        return (torch.softmax(lm.detach()[None] - torch.log(d2 + 1e-8), -1) @ v.detach())[0, 0]

    H = torch.autograd.functional.hessian(lambda a: f(a, k.detach())[0, 0], q.detach())
    Hd = torch.autograd.functional.hessian(direct, q.detach())
    torch.testing.assert_close(H, Hd, rtol=1e-7, atol=1e-12)
    assert abs(float(H[0, 0, 0, 0])) > 0.1
    lm2, lg = _t(r.normal(size=(2, 4))), _t(np.log([0.6, 0.9]))
    g = lambda a, b, m, t: M.grav_multiscale_attention(a, b, v.detach(), log_mass_k=m, log_gammas=t)  # noqa: E731
    assert gradgradcheck(g, (q, k, lm2, lg))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_eps_zero_keys_at_distance_zero_share_by_mass(backend):
    """With eps = 0 the keys at distance 0 from a query got +inf logits and the softmax split the row equally among
    them, ignoring their masses: masses 1 and 1e-6 at the query's point got 1/2 each, while eps = 1e-30 (and a
    query 1e-9 away) gives 1 : 1e-6.  grav_multiscale ignored the discounts γ^{|i−j|} there as well."""
    conv = (lambda a: np.asarray(a, dtype=float)) if backend == "numpy" else (lambda a: _t(a, grad=False))
    q = conv([[0.0, 0.0]])
    k = conv([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    mk = conv([1.0, 1.0, 1e-6])
    A0 = np.asarray(M.gravitational_attention(q, k, conv(np.eye(3)), mass_k=mk, eps=0.0, return_weights=True)[1])
    A1 = np.asarray(M.gravitational_attention(q, k, conv(np.eye(3)), mass_k=mk, eps=1e-30, return_weights=True)[1])
    np.testing.assert_allclose(A0, [[1 / (1 + 1e-6), 0.0, 1e-6 / (1 + 1e-6)]], rtol=1e-12)
    np.testing.assert_allclose(A0, A1, rtol=1e-12, atol=1e-29)
    # a masked key at distance 0 takes no part
    mask = conv([[True, True, False]]) > 0
    A = np.asarray(M.gravitational_attention(q, k, conv(np.eye(3)), mass_k=mk, eps=0.0, mask=mask,
                                             return_weights=True)[1])
    np.testing.assert_allclose(A, [[1.0, 0.0, 0.0]])
    # every key at the query's point: weights ∝ m_j γ^{|i−j|}, as for any eps > 0 small enough
    z = conv(np.zeros((3, 2)))
    lmk = conv(np.log([[1.0, 2.0, 0.5]]))
    W0 = np.asarray(M.grav_multiscale_attention(z, z, conv(np.eye(3)), log_mass_k=lmk, gammas=[0.5], eps=0.0,
                                                return_weights=True)[1])
    W1 = np.asarray(M.grav_multiscale_attention(z, z, conv(np.eye(3)), log_mass_k=lmk, gammas=[0.5], eps=1e-300,
                                                return_weights=True)[1])
    np.testing.assert_allclose(W0, W1, rtol=1e-12)
    np.testing.assert_allclose(W0[0, 0], np.array([1.0, 1.0, 0.125]) / 2.125, rtol=1e-12)


def test_eps_zero_coincident_weights_have_mass_gradients():
    """The mass-proportional split is differentiable in the masses (the equal split had gradient 0)."""
    q = _t([[0.0, 0.0]], grad=False)
    k = _t([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]], grad=False)
    v = _t([[1.0], [5.0], [-2.0]], grad=False)
    lm = _t([0.3, -0.2, 1.1])
    assert gradcheck(lambda m: M.gravitational_attention(q, k, v, log_mass_k=m, eps=0.0), (lm,))
    out = M.gravitational_attention(q, k, v, log_mass_k=lm, eps=0.0)
    (g,) = torch.autograd.grad(out.sum(), lm)
    w = torch.softmax(lm.detach()[[0, 2]], 0)
    # d/dlm_0 of w_0·1 + w_2·(−2) = w_0 w_2 (1 + 2)
    torch.testing.assert_close(g, torch.tensor([3 * w[0] * w[1], 0.0, -3 * w[0] * w[1]], dtype=D))


def test_tropical_overflowed_rows_keep_dtype_and_gradient():
    """Rows whose scores overflow were averaged in NumPy: a bfloat16 input gave a float32 output and the whole output
    (every row) lost its autograd graph (no gradient to v)."""
    q = torch.tensor([[3e32, 0.0]], dtype=torch.bfloat16)
    k = torch.tensor([[3e12, 0.0], [1.0, 0.0]], dtype=torch.bfloat16)
    v = torch.tensor([[1.0], [2.0]], dtype=torch.bfloat16)
    assert tropical(q, k, v).dtype == torch.bfloat16
    r = np.random.default_rng(0)
    qq = torch.tensor(r.integers(-2, 3, size=(4, 3)), dtype=D) * 1e200
    kk = torch.tensor(r.integers(-2, 3, size=(5, 3)), dtype=D) * 1e200
    vv = _t(r.normal(size=(5, 2)))
    out = tropical(qq, kk, vv)
    assert out.requires_grad
    np.testing.assert_array_equal(out.detach().numpy(), tropical(qq.numpy(), kk.numpy(), vv.detach().numpy()))
    assert gradcheck(lambda a: tropical(qq, kk, a), (vv,))
    mask = torch.tensor(r.random((4, 5)) > 0.5)
    assert gradcheck(lambda a: tropical(qq, kk, a, mask=mask), (vv,))


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_tropical_average_of_tied_values_does_not_overflow(lib):
    """Tied values were summed before the division by their count: two tied float16 values 60000 gave inf."""
    q, k = np.array([[1.0, 0.0]], np.float16), np.array([[1.0, 0.0], [1.0, 0.0]], np.float16)
    v = np.array([[60000.0], [60000.0]], np.float16)
    if lib == "torch":
        q, k, v = (torch.as_tensor(a) for a in (q, k, v))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (and no NumPy overflow warning)
        out = tropical(q, k, v)
    assert float(out[0, 0]) == 60000.0


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_powerlaw_field_where_beta_times_distance_overflows(lib):
    """β|i−j| beyond the float range (float16: β = 100 at distance 656) was inf: the far keys got weight 0 instead of
    (1 + β|i−j|)^-α (row 0 of n = 1000: 0 against 0.0033 beyond distance 700), α = 0 gave a NaN bias (a NaNError
    from the forward pass), and in float64 (β = 1e308) the gradient in α was NaN."""
    conv = np.asarray if lib == "numpy" else torch.as_tensor
    r = np.random.default_rng(12)
    n = 1000
    q, k, v = (r.normal(size=(1, n, 4)) * 0.1 for _ in range(3))
    A16 = np.asarray(M.powerlaw_attention(*(conv(a.astype(np.float16)) for a in (q, k, v)),
                                          alpha=conv(np.array([1.0], np.float16)),
                                          beta=conv(np.array([100.0], np.float16)), return_weights=True)[1],
                     dtype=float)
    A64 = np.asarray(M.powerlaw_attention(q, k, v, alpha=np.array([1.0]), beta=np.array([100.0]),
                                          return_weights=True)[1])
    assert A16[0, 0, 700:].sum() == pytest.approx(A64[0, 0, 700:].sum(), rel=0.02)
    out = M.powerlaw_attention(*(conv(a.astype(np.float16)) for a in (q, k, v)), alpha=conv(np.array([0.0], np.float16)),
                               beta=conv(np.array([100.0], np.float16)))
    assert np.all(np.isfinite(np.asarray(out, dtype=float)))
    b = M.powerlaw_bias(1, 4, np.array([0.01]), np.array([1e308]))
    np.testing.assert_allclose(b[0, 0, 1:], -0.01 * (math.log(1e308) + np.log([1.0, 2.0, 3.0])), rtol=1e-14)
    qt, kt, vt = (_t(a[:, :4]) for a in (q, k, v))
    al, be = _t([0.01]), _t([1e308])
    f = lambda a, b_, c, x, y: M.powerlaw_attention(a, b_, c, alpha=x, beta=y)  # noqa: E731
    out = f(qt, kt, vt, al, be)
    out.sum().backward()
    assert bool(torch.isfinite(al.grad).all()) and bool(torch.isfinite(be.grad).all())
    assert gradcheck(f, (qt, kt, vt, al, be)) and gradgradcheck(f, (qt, kt, vt, al, be))


# ======================================================================== gradcheck of every mechanism and edge
def _cases():
    r = np.random.default_rng(7)
    n, d = 4, 3
    q, k, v = r.normal(size=(n, d)), r.normal(size=(n, d)), r.normal(size=(n, 2))
    mask = r.random((n, n)) > 0.4
    mask[1] = False  # one fully masked row
    q3, k3, v3 = r.normal(size=(2, n, d)), r.normal(size=(2, n, d)), r.normal(size=(2, n, 2))
    mu, vh = r.normal(size=(2, d)), r.normal(size=(2, n, 2))
    lm, lm2 = r.normal(size=n), r.normal(size=(2, n))
    lg = np.log([0.6, 0.9])
    P = torch.tensor([[2, 3], [3, 5], [2, 5], [7, 0]])
    ph, qu = r.normal(size=(n, 2)), r.normal(size=(n, 2, 4))
    tm = torch.tensor(mask)
    C = {
        "softmax": (lambda a, b, c, s, bb: M.softmax_attention(a, b, c, scale=s, bias=bb), (q, k, v, 0.7, r.normal(size=(n, n)))),
        "softmax mask": (lambda a, b, c: M.softmax_attention(a, b, c, mask=tm), (q, k, v)),
        "softmax logits 1e30": (lambda a, b, c: M.softmax_attention(a * 1e30, b, c), (q, k, v)),
        "softmax q,k 1e160": (lambda a, b, c: M.softmax_attention(a * 1e160, b * 1e160, c, scale=1e-318), (q, k, v)),
        "softmax n=1": (lambda a, b, c: M.softmax_attention(a, b, c), (q[:1], k[:1], v[:1])),
        "force": (lambda a, b, c, m: M.force_attention(a, b, c, m, mask=tm), (q, k, vh, mu)),
        "force huge": (lambda a, b, c, m: M.force_attention(a * 1e3, b * 1e3, c, m * 1e4), (q, k, vh, mu)),
        "gravitational": (lambda a, b, c, m: M.gravitational_attention(a, b, c, mass_k=m, mask=tm), (q, k, v, np.exp(lm))),
        "gravitational eps 0": (lambda a, b, c, m: M.gravitational_attention(a, b, c, log_mass_k=m, eps=0.0), (q, k, v, lm)),
        "gravitational masses e^80": (lambda a, b, c, m: M.gravitational_attention(a, b, c, log_mass_k=m + 80), (q, k, v, lm)),
        "gravitational masses e^-80": (lambda a, b, c, m: M.gravitational_attention(a, b, c, log_mass_k=m - 80), (q, k, v, lm)),
        "gravitational 1e160": (lambda a, b, c, m: M.gravitational_attention(a * 1e160, b * 1e160, c, log_mass_k=m), (q, k, v, lm)),
        "multiscale bias": (lambda a, b, c, g, s: M.multiscale_attention(a, b, c, gammas=g, scale=s, mask=tm), (q3, k3, v3, np.exp(lg), 0.4)),
        "multiscale logit": (lambda a, b, c, g: M.multiscale_attention(a, b, c, log_gammas=g, discount="logit", mask=tm), (q3, k3, v3, lg)),
        "multiscale 1e160": (lambda a, b, c, g: M.multiscale_attention(a * 1e160, b * 1e160, c, log_gammas=g), (q3, k3, v3, lg)),
        "laplace decoder": (lambda o, g: M.laplace_decoder(o, g, [0, 2, 5]), (v3, np.exp(lg))),
        "laplace decoder alpha 0": (lambda o, g: M.laplace_decoder(o, g, [0, 2], alpha=0.0), (v3, np.exp(lg))),
        "grav_multiscale": (lambda a, b, c, m, g: M.grav_multiscale_attention(a, b, c, log_mass_k=m, gammas=g, mask=tm), (q, k, v, lm2, np.exp(lg))),
        "grav_multiscale eps 0": (lambda a, b, c, m, g: M.grav_multiscale_attention(a, b, c, log_mass_k=m, log_gammas=g, eps=0.0), (q, k, v, lm2, lg)),
        "powerlaw": (lambda a, b, c, x, y: M.powerlaw_attention(a, b, c, alpha=x, beta=y, mask=tm), (q3, k3, v3, [1.5, 2.0], [0.7, 0.1])),
        "powerlaw extreme field": (lambda a, b, c, x, y: M.powerlaw_attention(a, b, c, alpha=x, beta=y), (q3, k3, v3, [1e3, 1e10], [1e10, 1e300])),
        "resonant": (lambda a, b, a2, b2, c, t: M.resonant_attention(P, a, b, P, a2, b2, c, tau=t, mask=tm), (ph, qu, r.normal(size=(n, 2)), r.normal(size=(n, 2, 4)), v, 0.5)),
        "resonant tau 1e-3": (lambda a, b, c, t: M.resonant_attention(P, a, b, P, a, b, c, tau=t), (ph, qu, v, 1e-3)),
        "tropicalize/dequantize": (lambda x, lam: M.dequantize(M.tropicalize(x, lam)), (q, 0.3)),
    }
    return C


CASES = _cases()
PIECEWISE = {  # piecewise linear (max/min): gradcheck only; their second derivatives are 0 almost everywhere
    "tropical": (lambda a, b, c: M.tropical_attention(a, b, c), None),
    "tropical min-plus": (lambda a, b, c: M.tropical_attention(a, b, c, semiring="min"), None),
    "tropical_linear": (lambda x, w: M.tropical_linear(x, w), None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_and_gradgradcheck_of_every_mechanism(name):
    f, args = CASES[name]
    leaves = tuple(_t(a) for a in args)
    assert gradcheck(f, leaves)
    assert gradgradcheck(f, leaves)


@pytest.mark.parametrize("name", list(PIECEWISE))
def test_gradcheck_of_the_piecewise_linear_tropical_maps(name):
    r = np.random.default_rng(8)
    f = PIECEWISE[name][0]
    args = (r.normal(size=(4, 3)), r.normal(size=(2, 3))) if name == "tropical_linear" else (
        r.normal(size=(4, 3)), r.normal(size=(5, 3)), r.normal(size=(5, 2)))
    assert gradcheck(f, tuple(_t(a) for a in args))


def test_tropical_masked_rows_outputs_and_gradients():
    """Fully masked rows are the tropical zero; the other rows' gradients are those of the brute force max."""
    r = np.random.default_rng(9)
    q, k, v = _t(r.normal(size=(3, 2))), _t(r.normal(size=(3, 2))), _t(r.normal(size=(3, 2)))
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, False]])
    out = M.tropical_attention(q, k, v, mask=mask)
    assert bool(torch.all(out[1] == -math.inf)) and bool(torch.isfinite(out[[0, 2]]).all())
    assert gradcheck(lambda a, b, c: M.tropical_attention(a, b, c, mask=mask)[[0, 2]], (q, k, v))


@pytest.mark.parametrize("name", list(Mo.MECHANISMS))
def test_modules_gradcheck_in_every_parameter(name):
    """Every nn.Module wrapper: gradcheck and gradgradcheck in the input and every parameter (μ, masses, G, θ, α/β,
    log τ, tropical maps), with a padded key."""
    torch.manual_seed(0)
    kws = [{}] + ([{"decoder": "laplace"}] if name in ("multiscale", "grav_multiscale") else [])
    for kw in kws:
        m = Mo.build_mechanism(name, 4, 2, vocab_size=5, **kw).double()
        names = [nm for nm, _ in m.named_parameters()]
        params = [p.detach().clone().requires_grad_() for _, p in m.named_parameters()]
        x = torch.randn(1, 3, 4, dtype=D, requires_grad=True)
        tok, km = torch.tensor([[1, 2, 1]]), torch.tensor([[True, True, False]])

        def f(x, *ps):
            return functional_call(m, dict(zip(names, ps)), (x,), dict(key_mask=km, tokens=tok))

        assert gradcheck(f, (x, *params))
        if name != "tropical":
            assert gradgradcheck(f, (x, *params))


# ============================================================== stability edges in every dtype: no NaN, no inf
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", ["coincident", "huge", "masked", "n=1"])
def test_outputs_and_gradients_finite_at_the_edges(dtype, case):
    r = np.random.default_rng(10)
    n = 1 if case == "n=1" else 3
    sc = {"huge": 200.0 if dtype == torch.float16 else 1e30}.get(case, 1.0)
    x = r.normal(size=(n, 3)) * sc
    y = x.copy() if case == "coincident" else r.normal(size=(n, 3)) * sc
    vv = r.normal(size=(n, 2))
    mask = None
    if case == "masked":
        mask = torch.ones(n, n, dtype=torch.bool)
        mask[0] = False
    P = torch.tensor([[2, 3], [3, 5], [2, 5]][:n])
    runs = {
        "softmax": (lambda a, b, c: M.softmax_attention(a, b, c, mask=mask), (x, y, vv)),
        "force": (lambda a, b, c, m: M.force_attention(a, b, c, m, mask=mask), (x, y, np.stack([vv, vv]), r.normal(size=(2, 3)))),
        "gravitational": (lambda a, b, c, m: M.gravitational_attention(a, b, c, log_mass_k=m + 80, mask=mask), (x, y, vv, r.normal(size=n))),
        "gravitational eps 0": (lambda a, b, c, m: M.gravitational_attention(a, b, c, log_mass_k=m - 80, eps=0.0, mask=mask), (x, y, vv, r.normal(size=n))),
        "multiscale": (lambda a, b, c, g: M.multiscale_attention(a, b, c, log_gammas=g, mask=mask), (np.stack([x, x]), np.stack([y, y]), np.stack([vv, vv]), [-1e4, -1e-8])),
        "grav_multiscale": (lambda a, b, c, m, g: M.grav_multiscale_attention(a, b, c, log_mass_k=m, log_gammas=g, eps=0.0, mask=mask), (x, y, vv, r.normal(size=(2, n)), [-1e4, -0.1])),
        "powerlaw": (lambda a, b, c, s, t: M.powerlaw_attention(a, b, c, alpha=s, beta=t, mask=mask), (np.stack([x, x]), np.stack([y, y]), np.stack([vv, vv]), [1e4, 0.0], [3e3, 0.0])),
        "resonant": (lambda a, b, c: M.resonant_attention(P, a, b, P, a, b, c, tau=1e-30 if dtype != torch.float16 else 1e-4, mask=mask), (r.normal(size=(n, 2)), r.normal(size=(n, 2, 4)) * (0 if case == "coincident" else 1), vv)),
    }
    for name, (f, args) in runs.items():
        leaves = [_t(a, dtype=dtype) for a in args]
        out = f(*leaves)
        assert bool(torch.isfinite(out).all()), name
        out.float().sum().backward()
        assert all(t.grad is not None and bool(torch.isfinite(t.grad).all()) for t in leaves), name


# ==================================================== gradients against independent direct formulas (hypothesis)
def _direct(name, q, k, v, mask=None, **p):
    """The reference formulas (/work/shared/reference), with direct differences and the product forms."""
    n, m = q.shape[-2], k.shape[-2]
    dist = (torch.arange(n, dtype=D)[:, None] - torch.arange(m, dtype=D)[None]).abs()

    def rows(w):
        w = w if mask is None else torch.where(mask, w, torch.zeros_like(w))
        z = w.sum(-1, keepdim=True)
        return w / torch.where(z > 0, z, torch.ones_like(z))

    def soft(s):
        return rows(torch.exp(s - s.max(-1, keepdim=True).values))

    if name == "softmax":
        return soft(q @ k.T / math.sqrt(q.shape[-1])) @ v
    if name == "force":
        Fd = q[:, None, :] - k[None]
        r = torch.sqrt((Fd * Fd).sum(-1))
        return soft(torch.einsum("ijd,hd->hij", Fd / (r[..., None] + 1e-8), p["mu"]) * torch.exp(-r)) @ v
    if name == "gravitational":  # the source's linear normalisation (without its +1e-8)
        return rows(p["mk"][None] / (((q[:, None] - k[None]) ** 2).sum(-1) + 1e-8)) @ v
    if name == "multiscale":
        s = torch.einsum("tid,tjd->tij", q, k) / math.sqrt(q.shape[-1])
        g = p["g"][:, None, None]
        return soft(s + dist * torch.log(g) if p["disc"] == "bias" else s * g**dist) @ v
    if name == "grav_multiscale":
        d2 = ((q[:, None] - k[None]) ** 2).sum(-1)
        return rows(p["mk"][:, None, :] / (d2 + 1e-8) * p["g"][:, None, None] ** dist) @ v
    if name == "powerlaw":
        s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        w = torch.exp(s - s.max(-1, keepdim=True).values) * (1 + p["b"][:, None, None] * dist) ** (-p["a"][:, None, None])
        return rows(w) @ v
    diff = q[:, None, :] - k[None]  # tropical (Hilbert)
    s = diff.amin(-1) - diff.amax(-1)
    s = s if mask is None else torch.where(mask, s, torch.full_like(s, -math.inf))
    return (s[..., None] + v[None]).amax(-2)


def _compare(lib, ref, args, rng, rtol=1e-8, atol=1e-10, gtol=1e-6):
    ta, tb = [_t(a) for a in args], [_t(a) for a in args]
    o1, o2 = lib(*ta), ref(*tb)
    fin = torch.isfinite(o2)
    assert torch.equal(torch.isfinite(o1), fin)
    o1, o2 = torch.where(fin, o1, torch.zeros_like(o1)), torch.where(fin, o2, torch.zeros_like(o2))
    torch.testing.assert_close(o1, o2, rtol=rtol, atol=atol)
    g = torch.tensor(rng.normal(size=tuple(o1.shape)))
    for a, b, x in zip(torch.autograd.grad(o1, ta, g, allow_unused=True), torch.autograd.grad(o2, tb, g, allow_unused=True), ta):
        a = torch.zeros_like(x) if a is None else a
        b = torch.zeros_like(x) if b is None else b
        torch.testing.assert_close(a, b, rtol=gtol, atol=gtol * max(1.0, float(b.abs().max())))
    # the NumPy path gives the torch path's values
    onp = np.asarray(lib(*(np.asarray(a, dtype=float) for a in args)))
    np.testing.assert_allclose(np.where(np.isfinite(onp), onp, 0), o1.detach().numpy(), rtol=1e-10, atol=1e-12)


@settings(max_examples=30)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31), st.floats(0.05, 5.0),
       st.booleans())
def test_values_and_gradients_match_direct_formulas(n, m, d, seed, sc, use_mask):
    r = np.random.default_rng(seed)
    q, k, v = r.normal(size=(n, d)) * sc, r.normal(size=(m, d)) * sc, r.normal(size=(m, 2))
    if n == m and r.random() < 0.3:
        k[0] = q[0]  # a coincident pair
    mask = (r.random((n, m)) > 0.3) if use_mask else None
    if mask is not None and n > 1:
        mask[-1] = False
    tm = None if mask is None else torch.tensor(mask)
    _compare(lambda a, b, c: M.softmax_attention(a, b, c, mask=tm if isinstance(a, torch.Tensor) else mask),
             lambda a, b, c: _direct("softmax", a, b, c, tm), (q, k, v), r)
    d2 = ((q[:, None] - k[None]) ** 2).sum(-1)
    mu, vh = r.normal(size=(2, d)), np.stack([v, 2 * v])
    if not np.any(d2 == 0):  # (at r = 0 the direct formula's sqrt has no gradient)
        _compare(lambda a, b, c, u: M.force_attention(a, b, c, u, mask=tm if isinstance(a, torch.Tensor) else mask),
                 lambda a, b, c, u: _direct("force", a, b, c, tm, mu=u), (q, k, vh, mu), r, rtol=1e-7, atol=1e-9, gtol=1e-5)
    mk = np.exp(r.normal(size=m))
    tol = 10e-8 / (mk[None] / (d2 + 1e-8)).sum(1).min() + 1e-10  # the source's +1e-8 in the denominator
    _compare(lambda a, b, c, w: M.gravitational_attention(a, b, c, mass_k=w, mask=tm if isinstance(a, torch.Tensor) else mask),
             lambda a, b, c, w: _direct("gravitational", a, b, c, tm, mk=w), (q, k, v, mk), r, rtol=1e-7, atol=tol, gtol=1e-5)
    gam = r.uniform(0.3, 1.0, size=2)
    q3, k3, v3 = np.stack([q, q / 2]), np.stack([k, -k]), np.stack([v, v + 1])
    for disc in ("bias", "logit"):
        _compare(lambda a, b, c, g: M.multiscale_attention(a, b, c, gammas=g, discount=disc, mask=tm if isinstance(a, torch.Tensor) else mask),
                 lambda a, b, c, g: _direct("multiscale", a, b, c, tm, g=g, disc=disc), (q3, k3, v3, gam), r)
    mk2 = np.exp(r.normal(size=(2, m)))
    disc = gam[:, None, None] ** np.abs(np.arange(n)[:, None] - np.arange(m)[None])
    tol = 10e-8 / (mk2[:, None, :] / (d2 + 1e-8) * disc).sum(-1).min() + 1e-10
    _compare(lambda a, b, c, w, g: M.grav_multiscale_attention(a, b, c, log_mass_k=(torch.log if isinstance(w, torch.Tensor) else np.log)(w), gammas=g, mask=tm if isinstance(a, torch.Tensor) else mask),
             lambda a, b, c, w, g: _direct("grav_multiscale", a, b, c, tm, mk=w, g=g), (q, k, v, mk2, gam), r, rtol=1e-7, atol=tol, gtol=1e-5)
    al, be = r.uniform(0, 3, size=2), r.uniform(0, 3, size=2)
    _compare(lambda a, b, c, x, y: M.powerlaw_attention(a, b, c, alpha=x, beta=y, mask=tm if isinstance(a, torch.Tensor) else mask),
             lambda a, b, c, x, y: _direct("powerlaw", a, b, c, tm, a=x, b=y), (np.stack([q, q]), np.stack([k, 2 * k]), np.stack([v, v]), al, be), r)
    _compare(lambda a, b, c: M.tropical_attention(a, b, c, mask=tm if isinstance(a, torch.Tensor) else mask),
             lambda a, b, c: _direct("tropical", a, b, c, tm), (q, k, v), r, rtol=0, atol=1e-12)


# ============================================================================== dense attention (read-only here)
def _sdpa(q, k, v, mask=None, bias=None, scale=None, causal=False):
    n, m = q.shape[-2], k.shape[-2]
    am = torch.zeros(n, m, dtype=D) if bias is None else bias
    if mask is not None:
        am = am.masked_fill(~mask, -math.inf)
    if causal:
        am = am.masked_fill(~torch.ones(n, m, dtype=torch.bool).tril(), -math.inf)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=am, scale=scale)


@pytest.mark.parametrize("trial", range(12))
def test_dense_gradients_match_gradcheck_and_sdpa(trial):
    r = np.random.default_rng(100 + trial)
    B, H = 1 + trial % 2, 1 + trial % 3
    n, m, d, dv = (int(x) for x in r.integers(1, 6, size=4))
    causal = trial % 4 == 1
    if causal:
        m = n
    q, k, v = _t(r.normal(size=(B, H, n, d))), _t(r.normal(size=(B, H, m, d))), _t(r.normal(size=(B, H, m, dv)))
    mask = torch.tensor(r.random((n, m)) > 0.3) if trial % 2 else None
    if mask is not None:
        mask[:, 0] = True  # (sdpa gives NaN rows where nothing is visible)
    bias = _t(r.normal(size=(n, m))) if trial % 3 == 0 else None
    scale = None if trial % 2 else 0.37
    leaves = (q, k, v) + ((bias,) if bias is not None else ())

    def f(*a):
        return dense(a[0], a[1], a[2], mask=mask, bias=a[3] if bias is not None else None, scale=scale, causal=causal)

    def g(*a):
        return _sdpa(a[0], a[1], a[2], mask=mask, bias=a[3] if bias is not None else None, scale=scale, causal=causal)

    assert gradcheck(f, leaves)
    assert gradgradcheck(f, leaves)
    o1, o2 = f(*leaves), g(*leaves)
    torch.testing.assert_close(o1, o2, rtol=1e-10, atol=1e-12)
    go = torch.randn_like(o1)
    for a, b in zip(torch.autograd.grad(o1, leaves, go), torch.autograd.grad(o2, leaves, go)):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("block", [None, 1, 2])
def test_dense_fully_masked_rows_and_streaming_blocks(block):
    r = np.random.default_rng(11)
    q, k, v = _t(r.normal(size=(4, 3))), _t(r.normal(size=(6, 3))), _t(r.normal(size=(6, 2)))
    mask = torch.tensor(r.random((4, 6)) > 0.5)
    mask[2] = False
    f = lambda a, b, c: dense(a, b, c, mask=mask, block=block)  # noqa: E731
    assert gradcheck(f, (q, k, v)) and gradgradcheck(f, (q, k, v))
    out = f(q, k, v)
    assert bool(torch.all(out[2] == 0))
    out.sum().backward()
    assert all(bool(torch.isfinite(t.grad).all()) for t in (q, k, v))
