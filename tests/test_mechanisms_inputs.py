"""Adversarial inputs for the attention mechanisms (functions and torch wrappers): bad input raises a specific
tropix error, edge cases (zero vectors, huge values, half precision, tiny temperatures) give the values of the
formulas, and the function, the module, the sparse path and a direct float64 evaluation agree.

Each test names the defect it guards against; every one of them failed before its fix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tropix.attention import mechanisms as M
from tropix.attention.mechanisms import modules as Mo
from tropix.errors import (ArgumentTypeError, BackendMismatchError, DomainError, EmptyInputError, FloatOverflowError,
                           NaNError, OptionError, ShapeError, SizeLimitError, ToleranceError, TropixError)

NAMES = list(Mo.MECHANISMS)


def rng(seed=0):
    return np.random.default_rng(seed)


def _t(a, grad=False, dtype=torch.float64):
    return torch.tensor(np.asarray(a, dtype=float), dtype=dtype, requires_grad=grad)


def _kw(name, B=2, n=5):
    return {"tokens": torch.zeros(B, n, dtype=torch.int64)} if name == "resonant" else {}


# ======================================================================================== module wrappers
@pytest.mark.parametrize("name", ["multiscale", "grav_multiscale"])
@pytest.mark.parametrize("T,decoder", [(54, "mlp"), (60, "laplace"), (200, "laplace")])
def test_many_timescales_build_and_train(name, T, decoder):
    """T >= 54 was a raw ZeroDivisionError: the initial discount 1 - 2^-T rounded to 1 and logit(γ) divided by
    1 - γ = 0.  T = 200 with the Laplace decoder in float32 then gave NaN gradients (bins 2^199 overflowed)."""
    m = Mo.build_mechanism(name, 8, 2, T=T, decoder=decoder)
    # logit(1 - 2^-m) = log(2^m - 1), evaluated exactly in float64 for every timescale m = 1..T
    want = np.array([math.log(2.0**m - 1) if m < 1000 else m * math.log(2.0) for m in range(1, T + 1)])
    np.testing.assert_allclose(m.theta.detach().double().numpy(), want, rtol=1e-6)
    x = torch.randn(2, 4, 8, requires_grad=True)
    y = m(x)
    y.sum().backward()
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(x.grad).all())
    assert all(bool(torch.isfinite(p.grad).all()) for p in m.parameters() if p.grad is not None)


BAD_OPTIONS = [
    ("multiscale", {"T": 2.5}, ArgumentTypeError, "T must be an integer"),
    ("multiscale", {"T": True}, ArgumentTypeError, "T must be an integer"),
    ("multiscale", {"T": 0}, ToleranceError, "T must be at least 1"),
    ("grav_multiscale", {"T": -1}, ToleranceError, "T must be at least 1"),
    ("multiscale", {"discount": "cosine"}, OptionError, "discount"),
    ("multiscale", {"decoder": "laplace", "bins": 5}, ArgumentTypeError, "bins must be a sequence"),
    ("multiscale", {"decoder": "laplace", "bins": []}, EmptyInputError, "bins is empty"),
    ("multiscale", {"decoder": "laplace", "bins": [0, -1]}, ToleranceError, "bin"),
    ("multiscale", {"decoder": "laplace", "alpha": -1.0}, ToleranceError, "alpha"),
    ("multiscale", {"decoder": "laplace", "alpha": float("nan")}, ToleranceError, "alpha"),
    ("multiscale", {"decoder": "laplace", "T": 1100}, ToleranceError, "exceeds the float range"),
    ("gravitational", {"eps": -1.0}, ToleranceError, "eps"),
    ("gravitational", {"eps": "a"}, ArgumentTypeError, "eps"),
    ("grav_multiscale", {"eps": float("inf")}, ToleranceError, "eps"),
    ("resonant", {"vocab_size": 2.5}, ArgumentTypeError, "vocab_size"),
    ("resonant", {"vocab_size": 0}, ToleranceError, "vocab_size"),
    ("resonant", {"k": 2.5}, ArgumentTypeError, "k must be an integer"),
    ("resonant", {"n_primes": 0}, ToleranceError, "n_primes"),
    ("softmax", {"vocab_size": 2.5}, ArgumentTypeError, "vocab_size"),
]


@pytest.mark.parametrize("name,kw,exc,msg", BAD_OPTIONS, ids=[f"{n}-{k}" for n, k, _, _ in BAD_OPTIONS])
def test_constructor_arguments_are_checked_at_construction(name, kw, exc, msg):
    """Raw TypeError / RuntimeError / ZeroDivisionError before, or no error until the first forward pass."""
    with pytest.raises(exc, match=msg):
        Mo.build_mechanism(name, 8, 2, **kw)


def test_unknown_options_are_refused_by_the_classes_too():
    """``**_`` swallowed any keyword given to a wrapper class directly (epsilon= for eps= was silently ignored)."""
    with pytest.raises(OptionError, match="epsilon"):
        Mo.GravitationalAttention(8, 2, epsilon=0.5)
    with pytest.raises(OptionError, match="foo"):
        Mo.SoftmaxAttention(8, 2, foo=1)
    Mo.SoftmaxAttention(8, 2, vocab_size=30)  # the one option every wrapper takes
    m = Mo.build_mechanism("multiscale", 8, 2, T=1100)  # the MLP decoder does not use the default bins
    assert m.T == 1100


def _bad_forward_inputs(name):
    x = torch.randn(2, 5, 8)
    tok = torch.zeros(2, 5, dtype=torch.int64)
    kw = {"tokens": tok} if name == "resonant" else {}
    nan = x.clone()
    nan[1, 2, 3] = float("nan")
    inf = x.clone()
    inf[0, 1, 0] = float("inf")
    return [
        ("2-D x", (torch.randn(5, 8),), {"tokens": tok[0]} if name == "resonant" else {}, ShapeError, r"x\[None\]"),
        ("width", (torch.randn(2, 5, 6),), kw, ShapeError, "d_model=8"),
        ("numpy x", (x.numpy(),), kw, ArgumentTypeError, "torch tensor"),
        ("int x", (torch.ones(2, 5, 8, dtype=torch.int64),), kw, ArgumentTypeError, "floating"),
        ("float64 x", (x.double(),), kw, ArgumentTypeError, "float32"),
        ("bfloat16 x", (x.bfloat16(),), kw, ArgumentTypeError, "float32"),
        ("empty seq", (torch.randn(2, 0, 8),), {"tokens": tok[:, :0]} if name == "resonant" else {}, EmptyInputError,
         "empty"),
        ("empty batch", (torch.randn(0, 5, 8),), {"tokens": tok[:0]} if name == "resonant" else {}, EmptyInputError,
         "empty"),
        ("NaN x", (nan,), kw, NaNError, r"NaN at index \(1, 2, 3\)"),
        ("inf x", (inf,), kw, NaNError, r"infinity at index \(0, 1, 0\)"),
        ("float mask", (x, torch.ones(2, 5)), kw, ArgumentTypeError, "key_mask must be boolean"),
        ("mask shape", (x, torch.ones(2, 4, dtype=torch.bool)), kw, ShapeError, "key_mask must have shape"),
        ("float tokens", (x,), {"tokens": tok.float()}, ArgumentTypeError, "tokens must hold integer"),
        ("bool tokens", (x,), {"tokens": tok.bool()}, ArgumentTypeError, "tokens must hold integer"),
        ("tokens shape", (x,), {"tokens": tok[:, :4]}, ShapeError, "tokens must have shape"),
        ("numpy tokens", (x,), {"tokens": tok.numpy()}, ArgumentTypeError, "tokens must be a torch tensor"),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_forward_inputs_raise_specific_errors(name):
    """A 2-D x was "not enough values to unpack", a wrong width or dtype torch's "mat1 and mat2", an empty sequence
    an ambiguous reshape, float token ids an IndexError (all raw); NaN and inf surfaced deep inside as "q contains
    NaN"."""
    torch.manual_seed(0)
    m = Mo.build_mechanism(name, 8, 2)
    for label, args, kw, exc, msg in _bad_forward_inputs(name):
        with pytest.raises(exc, match=msg):
            m(*args, **kw)
        try:
            m(*args, **kw)
        except TropixError:
            pass
        else:  # pragma: no cover
            raise AssertionError(label)


def test_resonant_module_reads_every_integer_token_dtype():
    """uint8 token ids were read by torch as a boolean mask (a raw IndexError); ids of any integer dtype are ids."""
    torch.manual_seed(0)
    m = Mo.build_mechanism("resonant", 8, 2, vocab_size=200).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    tok = torch.randint(0, 200, (2, 5))
    ref = m(x, tokens=tok)
    for dt in (torch.uint8, torch.int16, torch.int32):
        torch.testing.assert_close(m(x, tokens=tok.to(dt)), ref, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_key_mask_of_one_row_is_shared_by_the_batch(name):
    """A key_mask (1, n), broadcasting over the batch, was accepted before the input checks and then refused
    ("key_mask must have shape (batch, seq)"); it is the (B, n) mask expanded, so the outputs are identical."""
    torch.manual_seed(0)
    m = Mo.build_mechanism(name, 8, 2, vocab_size=20).double()
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    kw = {"tokens": torch.randint(1, 20, (3, 5))} if name == "resonant" else {}
    km = torch.tensor([[True, True, False, True, False]])
    got = m(x, km, **kw)
    torch.testing.assert_close(got, m(x, km.expand(3, 5), **kw), rtol=0, atol=0)
    torch.testing.assert_close(got, m(x, km.repeat(3, 1).contiguous(), **kw), rtol=0, atol=0)
    assert not torch.equal(got, m(x, **kw))  # (the mask is applied)
    torch.testing.assert_close(m(x[:1], km, **{k: t[:1] for k, t in kw.items()}), got[:1], rtol=0, atol=0)
    for bad in (torch.ones(2, 5, dtype=torch.bool), torch.ones(1, 4, dtype=torch.bool),
                torch.ones(3, 5, 1, dtype=torch.bool), torch.ones(1, 1, 5, dtype=torch.bool)):
        with pytest.raises(ShapeError, match=r"key_mask must have shape \(batch, seq\) = \(3, 5\)"):
            m(x, bad, **kw)
    with pytest.raises(ShapeError, match=r"key_mask\[None\]"):
        m(x, km[0], **kw)
    if name == "resonant":  # the token ids stay one row per sequence
        with pytest.raises(ShapeError, match="tokens must have shape"):
            m(x, km, tokens=kw["tokens"][:1])


# ============================================================================ resonant: the zero quaternion
def _res_formula(P, PH, Q, weights=M.resonant.DEFAULT_WEIGHTS):
    """Res(i, j) evaluated directly in float64 from the definition: a unit quaternion q/‖q‖, and 0 for q = 0."""
    a, b, c = weights
    P, PH, Q = np.asarray(P), np.asarray(PH, dtype=float), np.asarray(Q, dtype=float)
    n = P.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            si = {int(p): t for t, p in enumerate(P[i]) if p > 0}
            sj = {int(p): t for t, p in enumerate(P[j]) if p > 0}
            shared = sorted(set(si) & set(sj))
            if not shared:
                continue
            qa = ph = 0.0
            for p in shared:
                qi, qj = Q[i, si[p]], Q[j, sj[p]]
                ni, nj = math.sqrt(float(qi @ qi)), math.sqrt(float(qj @ qj))
                ui = qi / ni if ni > 0 else np.zeros(4)
                uj = qj / nj if nj > 0 else np.zeros(4)
                qa += abs(float(ui @ uj))
                ph += math.cos(PH[i, si[p]] - PH[j, sj[p]])
            m = len(shared)
            out[i, j] = a * m / len(set(si) | set(sj)) + b * qa / m + c * 0.5 * (ph / m + 1.0)
    return out


def test_zero_quaternion_has_alignment_zero_on_every_path():
    """The sparse states replaced a zero quaternion by the identity (1, 0, 0, 0), so Res = 0.934 against the
    tensorised 0.835; the formula's 4-D dot product |<0, q>| = 0 gives 0.835 = 0.33·1 + 0.33·(0 + 1)/2 + 0.34·1."""
    S = M.SparsePrimeState
    a = S((2, 3), (1, 1j), ((0, 0, 0, 0), (0, 1, 0, 0)))
    b = S((2, 3), (1, 1j), ((0.6, 0.8, 0, 0), (0, 1, 0, 0)))
    assert a.quaternions[0] == (0.0, 0.0, 0.0, 0.0)  # kept as 0: no orientation
    want = 0.33 * 1 + 0.33 * (0 + 1) / 2 + 0.34 * 1
    assert M.resonance(a, b) == pytest.approx(want, abs=1e-15)
    P, PH, Q = M.states_to_arrays([a, b])
    np.testing.assert_allclose(_res_formula(P, PH, Q)[0, 1], want, rtol=1e-15)
    dense = M.resonant_scores(P, PH, Q, P, PH, Q)
    np.testing.assert_allclose(dense, _res_formula(P, PH, Q), rtol=1e-14)
    Pt = torch.as_tensor(P)
    dt = M.resonant_scores(Pt, _t(PH), _t(Q), Pt, _t(PH), _t(Q))
    np.testing.assert_allclose(dt.numpy(), dense, rtol=1e-14)
    sparse = np.array([[M.resonance(s, t) for t in (a, b)] for s in (a, b)])
    np.testing.assert_allclose(sparse, dense, rtol=1e-14)
    # the attended state: quaternions that cancel stay 0 (no orientation) instead of becoming the identity
    s1, s2 = S((2,), (1,), ((1, 0, 0, 0),)), S((2,), (1,), ((-1, 0, 0, 0),))
    assert M.resonant_attend(s1, [s1, s2])[1].quaternions == ((0.0, 0.0, 0.0, 0.0),)


def test_zero_quaternion_module_equals_function_and_has_finite_gradients():
    """The module's zero quaternions gave NaN gradients (d‖q‖/dq = q/‖q‖ = 0/0), also to its input x; its weights
    equal the function's on the same prime sets, phases and quaternions, whose scores follow the formula."""
    torch.manual_seed(3)
    m = Mo.build_mechanism("resonant", 8, 2, vocab_size=16, k=3, n_primes=7).double()
    with torch.no_grad():  # head 0, slot 0: a zero quaternion for every token
        m.quat.weight[:4] = 0.0
        m.quat.bias[:4] = 0.0
    m.keep_weights = True
    x = torch.randn(2, 6, 8, dtype=torch.float64, requires_grad=True)
    tok = torch.randint(0, 16, (2, 6))
    y = m(x, tokens=tok)
    y.sum().backward()
    assert bool(torch.isfinite(x.grad).all())
    assert all(bool(torch.isfinite(p.grad).all()) for p in m.parameters() if p.grad is not None)
    with torch.no_grad():
        B, n, H, k = 2, 6, 2, 3
        P = m.primes[tok][:, None].expand(B, H, n, k)
        ph = m.phase(x).reshape(B, n, H, k).transpose(1, 2)
        qu = m.quat(x).reshape(B, n, H, k, 4).transpose(1, 2)
        assert bool((qu[:, 0, :, 0] == 0).all())
        v = m.v(x).reshape(B, n, H, 4).transpose(1, 2)
        out, A = M.resonant_attention(P, ph, qu, P, ph, qu, v, tau=float(torch.exp(m.log_tau)), return_weights=True)
    torch.testing.assert_close(m.last_weights, A[0], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(y, m.out(out.transpose(1, 2).reshape(B, n, 8)), rtol=1e-12, atol=1e-14)
    for h in range(H):
        s = M.resonant_scores(P[0, h], ph[0, h], qu[0, h], P[0, h], ph[0, h], qu[0, h]).numpy()
        np.testing.assert_allclose(s, _res_formula(P[0, h].numpy(), ph[0, h].numpy(), qu[0, h].numpy()), rtol=1e-12)


def test_resonant_gradients_match_finite_differences_near_zero_quaternions():
    """gradcheck (float64) of the tensorised resonance in the quaternions, some of them small (1e-3)."""
    r = rng(7)
    P = torch.as_tensor(np.array([[2, 3], [3, 5], [2, 5], [7, 3]]))
    ph = _t(r.normal(size=(4, 2)))
    qu = r.normal(size=(4, 2, 4))
    qu[0, 0] *= 1e-3
    qu = _t(qu, grad=True)
    v = _t(r.normal(size=(4, 2)))
    assert torch.autograd.gradcheck(lambda q: M.resonant_attention(P, ph, q, P, ph, q, v, tau=0.5), (qu,))


@pytest.mark.parametrize("c", [1e-200, 1e200])
def test_quaternion_normalisation_is_scale_invariant(c):
    """‖q‖² overflowed or underflowed: a quaternion of size 1e200 became 0 (alignment 0, and the sparse state held
    a non-unit 0) and one of size 1e-200 the identity; the alignment of parallel quaternions is 1 at every scale."""
    s = M.SparsePrimeState((2,), (1,), ((c, 0, c, 0),))
    np.testing.assert_allclose(s.quaternions[0], (2**-0.5, 0, 2**-0.5, 0), rtol=1e-15)
    P, PH = np.array([[2], [2]]), np.zeros((2, 1))
    Q = np.array([[[c, 0, c, 0]], [[1.0, 0, 1.0, 0]]])
    assert M.resonant_scores(P, PH, Q, P, PH, Q)[0, 1] == pytest.approx(1.0, abs=1e-15)
    c32 = 1e-25 if c < 1 else 1e25
    Qt = torch.tensor([[[c32, 0, c32, 0]], [[1.0, 0, 1.0, 0]]], dtype=torch.float32)
    Pt = torch.as_tensor(P)
    assert float(M.resonant_scores(Pt, torch.zeros(2, 1), Qt, Pt, torch.zeros(2, 1), Qt)[0, 1]) == pytest.approx(1.0)


def test_tiny_temperature_selects_the_most_resonant_key():
    """s/τ overflowed to +inf at τ = 1e-310, and every resonating key shared the row equally (function and
    module); the sparse path gave NaN weights (a NaNError on the attended amplitude)."""
    P = np.array([[2, 3], [2, 5], [2, 3]])
    PH = np.array([[0.0, 0.0], [0.0, 0.0], [0.3, 0.0]])
    Q = np.tile([1.0, 0, 0, 0], (3, 2, 1))
    S = _res_formula(P, PH, Q)
    _, A = M.resonant_attention(P, PH, Q, P, PH, Q, np.eye(3), tau=1e-310, return_weights=True)
    np.testing.assert_array_equal(A, np.eye(3)[S.argmax(1)])
    states = [M.SparsePrimeState((2, 3), (1, 1), ((1, 0, 0, 0),) * 2), M.SparsePrimeState((2,), (1,), ((1, 0, 0, 0),))]
    w, out = M.resonant_attend(states[0], states, tau=1e-320)
    assert w == [1.0, 0.0]
    # the module with a learned log τ far below the float32 range of 1/τ: its weights are the function's
    torch.manual_seed(0)
    m = Mo.build_mechanism("resonant", 8, 2, vocab_size=8, k=2, n_primes=3)
    with torch.no_grad():
        m.log_tau.fill_(-200.0)
    m.keep_weights = True
    x, tok = torch.randn(1, 4, 8), torch.tensor([[0, 1, 2, 3]])
    m(x, tokens=tok)
    Wm = m.last_weights
    assert bool(torch.isfinite(Wm).all()) and torch.allclose(Wm.sum(-1), torch.ones(2, 4))
    assert bool(((Wm == 0) | (Wm == 1) | (Wm == 0.5)).all())  # one-hot rows (a tie splits), not a uniform share
    with torch.no_grad():
        Pm = m.primes[tok][:, None].expand(1, 2, 4, 2)
        ph = m.phase(x).reshape(1, 4, 2, 2).transpose(1, 2)
        qu = m.quat(x).reshape(1, 4, 2, 2, 4).transpose(1, 2)
        s = M.resonant_scores(Pm, ph, qu, Pm, ph, qu)[0]
    top = s == s.max(-1, keepdim=True).values
    torch.testing.assert_close(Wm, top.float() / top.sum(-1, keepdim=True))


def test_resonant_inputs_are_validated():
    P = np.array([[2, 3], [3, 5]])
    PH, Q = np.zeros((2, 2)), np.tile([1.0, 0, 0, 0], (2, 2, 1))
    with pytest.raises(ArgumentTypeError, match="phase_q must hold real numbers"):
        M.resonant_scores(P, PH > 0, Q, P, PH, Q)  # (Res(i, i) came out 1.28)
    with pytest.raises(NaNError, match="phase_k has an infinite entry"):
        M.resonant_scores(P, PH, Q, P, PH + np.inf, Q)  # (cos(inf) = NaN scores)
    with pytest.raises(NaNError, match="quat_q"):
        M.resonant_scores(P, PH, np.where(Q > 0, np.inf, 0.0), P, PH, Q)
    for bad in (1, -3):
        with pytest.raises(DomainError, match="prime >= 2"):
            M.resonant_scores(np.array([[2, bad], [3, 5]]), PH, Q, P, PH, Q)
    with pytest.raises(ShapeError, match="do not broadcast"):
        M.resonant_scores(np.stack([P] * 2), np.zeros((2, 2, 2)), np.stack([Q] * 2), np.stack([P] * 3),
                          np.zeros((3, 2, 2)), np.stack([Q] * 3))
    with pytest.raises(NaNError, match="v has an infinite entry"):
        M.resonant_attention(P, PH, Q, P, PH, Q, np.array([[np.inf], [0.0]]))
    with pytest.raises(SizeLimitError):
        M.states_to_arrays([M.SparsePrimeState((2,), (1,), ((1, 0, 0, 0),))], k=10**15)  # (a raw MemoryError)
    # float32 values with float64 states: torch's raw "expected m1 and m2 to have the same dtype"
    Pt = torch.as_tensor(P)
    o32 = M.resonant_attention(Pt, _t(PH), _t(Q), Pt, _t(PH), _t(Q), torch.eye(2, dtype=torch.float32))
    o64 = M.resonant_attention(Pt, _t(PH), _t(Q), Pt, _t(PH), _t(Q), torch.eye(2, dtype=torch.float64))
    torch.testing.assert_close(o32, o64)
    # integer phases and quaternions are numbers (promoted)
    np.testing.assert_allclose(M.resonant_scores(P, PH.astype(int), Q.astype(int), P, PH, Q),
                               M.resonant_scores(P, PH, Q, P, PH, Q))


# ======================================================================== huge values, half precision
def test_huge_logits_keep_their_order():
    """q kᵀ beyond the float range became +inf and the rows shared it equally; the logits of (c q, c k, s/c²)
    equal those of (q, k, s), so the outputs must too (c = 2^520, an exact power of two)."""
    r = rng(5)
    q, k, v = r.normal(size=(5, 4)), r.normal(size=(6, 4)), r.normal(size=(6, 3))
    c, s = 2.0**520, 2.0**-1041  # s·c² = 1/2 = 1/sqrt(d)
    np.testing.assert_allclose(M.softmax_attention(q * c, k * c, v, scale=s), M.softmax_attention(q, k, v),
                               rtol=1e-13, atol=1e-15)
    mask = r.random((5, 6)) > 0.3
    mask[:, 0] = True
    np.testing.assert_allclose(M.softmax_attention(q * c, k * c, v, scale=s, mask=mask),
                               M.softmax_attention(q, k, v, mask=mask), rtol=1e-13, atol=1e-15)
    for disc in ("bias", "logit"):
        np.testing.assert_allclose(
            M.multiscale_attention(q[None] * c, k[None] * c, v[None], gammas=[0.7], scale=s, discount=disc),
            M.multiscale_attention(q[None], k[None], v[None], gammas=[0.7], discount=disc), rtol=1e-13, atol=1e-15)
    # logits of size 1e400: the softmax is the argmax (one-hot), also with the power-law bias
    _, A = M.softmax_attention(q * 1e200, k * 1e200, v, return_weights=True)
    np.testing.assert_array_equal(A, np.eye(6)[(q @ k.T).argmax(1)])
    _, A = M.powerlaw_attention(q[None, :5] * 1e200, k[None, :5] * 1e200, v[None, :5], alpha=1.0, beta=1.0,
                                return_weights=True)
    np.testing.assert_array_equal(A[0], np.eye(5)[(q[:5] @ k[:5].T).argmax(1)])
    # gradients through the rescaled logits: f(q') = softmax(2^520 q', 2^520 k; s) = softmax(q', k; 1/2)
    qt, kt, vt = _t(q, grad=True), _t(k), _t(v)
    assert torch.autograd.gradcheck(lambda a: M.softmax_attention(a * c, kt * c, vt, scale=s), (qt,))
    g1 = torch.autograd.grad(M.softmax_attention(qt * c, kt * c, vt, scale=s).sum(), qt)[0]
    g2 = torch.autograd.grad(M.softmax_attention(qt, kt, vt).sum(), qt)[0]
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-14)


def test_gravitational_weights_are_scale_invariant_at_huge_scales():
    """‖q − k‖² overflowed for points near 1e154: every logit was -inf and the output 0 (or a wrong mix); the
    gravitational weights of (c q, c k) are those of (q, k) (eps negligible)."""
    r = rng(6)
    q, k, v = r.normal(size=(5, 3)), r.normal(size=(6, 3)), r.normal(size=(6, 2))
    ref = M.gravitational_attention(q, k, v, eps=0.0)
    for c in (2.0**520, 1e200, 1e300):
        np.testing.assert_allclose(M.gravitational_attention(q * c, k * c, v), ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(M.gravitational_attention(q * c, k * c, v, eps=0.0), ref, rtol=1e-10, atol=1e-12)
    lm = np.log(r.uniform(0.5, 2.0, (2, 6)))
    np.testing.assert_allclose(
        M.grav_multiscale_attention(q * 1e200, k * 1e200, v, log_mass_k=lm, gammas=[0.5, 0.9]),
        M.grav_multiscale_attention(q, k, v, log_mass_k=lm, gammas=[0.5, 0.9], eps=0.0), rtol=1e-10, atol=1e-12)
    c = 2.0**520
    qt, kt, vt = _t(q, grad=True), _t(k), _t(v)
    assert torch.autograd.gradcheck(lambda a: M.gravitational_attention(a * c, kt * c, vt, eps=0.0), (qt,))


def test_force_of_far_points_is_zero():
    """E, R near 1e200: the distances overflowed and inf - inf gave NaN scores (garbage attention). The score
    (u·μ)e^{-r} is 0 for r ~ 1e200, so every head attends uniformly: the output is the mean of the values."""
    r = rng(8)
    E, R, mu = r.normal(size=(4, 3)), r.normal(size=(5, 3)), _t(r.normal(size=(2, 3)), grad=True)
    v = r.normal(size=(2, 5, 2))
    for c in (1e160, 1e200, 1e300):
        out = M.force_attention(_t(E * c), _t(R * c), _t(v), mu)
        np.testing.assert_allclose(out.detach().numpy(), np.broadcast_to(v.mean(1, keepdims=True), (2, 4, 2)),
                                   rtol=1e-12, atol=1e-15)
        out.sum().backward()
        assert bool(torch.isfinite(mu.grad).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_matches_float64(dtype):
    """float16 logits q·k overflowed near 300 (shared equally: error 0.57), squared distances near 100 (error 0.1
    to 0.7 for gravitational and force); and ε = 1e-8 is below float16's smallest number, so coincident keys got
    +inf logits and split the row equally, ignoring their masses.  Errors are now those of the rounding."""
    r = rng(9)
    q, k, v = r.normal(size=(5, 4)), r.normal(size=(6, 4)), r.normal(size=(6, 3))
    mu = r.normal(size=(1, 4))
    tol = 5e-3 if dtype == torch.float16 else 4e-2
    cases = {
        "softmax": lambda Q, K, V, u: M.softmax_attention(Q, K, V),
        "multiscale": lambda Q, K, V, u: M.multiscale_attention(Q[None], K[None], V[None], gammas=[0.9])[0],
        "gravitational": lambda Q, K, V, u: M.gravitational_attention(Q, K, V),
        "grav_multiscale": lambda Q, K, V, u: M.grav_multiscale_attention(
            Q, K, V, log_mass_k=torch.zeros(1, 6, dtype=Q.dtype), gammas=[0.9])[0],
        "force": lambda Q, K, V, u: M.force_attention(Q, K, V[None], u)[0],
    }
    for c in (100.0, 300.0):
        args = [torch.tensor(a, dtype=torch.float64) for a in (q * c, k * c, v, mu)]
        for name, f in cases.items():
            got = f(*(a.to(dtype) for a in args)).double()
            want = f(*args)
            err = float((got - want).abs().max())
            assert err < tol, (name, c, err)
    Q, K = torch.zeros(1, 3, dtype=torch.float16), torch.zeros(3, 3, dtype=torch.float16)
    lm = torch.log(torch.tensor([1.0, 2.0, 5.0])).to(torch.float16)
    A = M.gravitational_attention(Q, K, torch.eye(3, dtype=torch.float16), log_mass_k=lm, return_weights=True)[1]
    np.testing.assert_allclose(A.double().numpy(), [[0.125, 0.25, 0.625]], atol=2e-3)  # ∝ masses


def test_force_scores_of_coincident_points_in_half_precision():
    """δ = 1e-8 rounds to 0 in float16 (and δ·2^-e in float32 / bfloat16 for points near 1e38): r + δ was 0 for an
    emitter equal to a receptor and the score 0/0 = NaN, with NaN weights for the whole row."""
    r = rng(12)
    E, R, mu = r.normal(size=(4, 3)), r.normal(size=(5, 3)), r.normal(size=(2, 3))
    E[1], E[3] = R[2], R[0]  # coincident emitter / receptor pairs
    cases = [(torch.float16, 1.0, 4e-3), (torch.bfloat16, 1.0, 3e-2), (np.float16, 1.0, 4e-3),
             (np.float16, 100.0, 4e-3), (torch.float32, 1e38, 1e-6), (torch.bfloat16, 1e38, 3e-2),
             (np.float32, 1e38, 1e-6)]
    for dt, c, tol in cases:
        if isinstance(dt, torch.dtype):
            args = [torch.tensor(a, dtype=dt) for a in (E * c, R * c, mu)]
            got = M.force_scores(*args).double().numpy()
            want = M.force_scores(*(a.double() for a in args)).numpy()  # float64 on the rounded inputs
        else:
            args = [a.astype(dt) for a in (E * c, R * c, mu)]
            got = np.asarray(M.force_scores(*args), dtype=float)
            want = M.force_scores(*(a.astype(float) for a in args))
        assert np.isfinite(got).all(), (dt, c)
        np.testing.assert_array_equal(got[:, [1, 3], [2, 0]], 0.0)  # u = 0/δ = 0 at F = 0
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.linalg.norm(mu, axis=-1).max(), err_msg=str(dt))
    # the attention and its gradients are finite too (the row of a coincident pair was NaN)
    Et, Rt, mut = (torch.tensor(a, dtype=torch.float16, requires_grad=True) for a in (E, R, mu))
    out = M.force_attention(Et, Rt, torch.ones(2, 5, 2, dtype=torch.float16), mut)
    out.float().sum().backward()
    assert bool(torch.isfinite(out).all()) and all(bool(torch.isfinite(t.grad).all()) for t in (Et, Rt, mut))


def test_infinite_inputs_raise_nan_error():
    """An infinite query, key or value gave NaN rows (0·inf, inf - inf) or meaningless weights without error."""
    q = np.ones((3, 2))
    bad = q.copy()
    bad[1, 0] = np.inf
    calls = {
        "softmax": lambda a, b, c: M.softmax_attention(a, b, c),
        "gravitational": lambda a, b, c: M.gravitational_attention(a, b, c),
        "grav_multiscale": lambda a, b, c: M.grav_multiscale_attention(a, b, c, log_mass_k=np.zeros((1, 3)),
                                                                       gammas=[0.5]),
        "multiscale": lambda a, b, c: M.multiscale_attention(a[None], b[None], c[None], gammas=[0.5]),
        "powerlaw": lambda a, b, c: M.powerlaw_attention(a, b, c, alpha=1.0, beta=1.0),
        "force": lambda a, b, c: M.force_attention(a, b, c[None], np.ones((1, 2))),
    }
    for name, f in calls.items():
        for pos in range(3):
            args = [q, q, q]
            args[pos] = -bad if pos == 2 else bad
            with pytest.raises(NaNError, match="infinite entry"):
                f(*args)
    with pytest.raises(NaNError, match="outputs"):
        M.laplace_decoder(np.full((2, 3), np.inf), np.array([0.5, 0.9]))
    with pytest.raises(ToleranceError, match="log_mass_k"):
        M.gravitational_attention(q, q, q, log_mass_k=np.array([np.inf, 0.0, 0.0]))
    with pytest.raises(ToleranceError, match="finite"):
        M.gravitational_attention(q, q, q, mass_k=np.array([np.inf, 1.0, 1.0]))


def test_leading_axes_must_broadcast():
    """Batch axes that do not broadcast were NumPy's raw "operands could not be broadcast" ValueError."""
    q, k, v = np.ones((2, 4, 3)), np.ones((2, 5, 3)), np.ones((3, 5, 2))
    calls = [
        lambda: M.softmax_attention(q, k, v),
        lambda: M.gravitational_attention(q, k, v),
        lambda: M.tropical_attention(q, k, v),
        lambda: M.multiscale_attention(q[None], k[None], v[None], gammas=[0.5]),
        lambda: M.grav_multiscale_attention(q, k, v, log_mass_k=np.zeros((1, 5)), gammas=[0.5]),
        lambda: M.force_attention(q, k, np.ones((3, 2, 5, 2)), np.ones((2, 3))),
        lambda: M.gravitational_attention(q, k, k, log_mass_k=np.zeros((3, 5))),
        lambda: M.softmax_attention(q[0], k[0], k[0], scale=np.ones(4)),
    ]
    for f in calls:
        with pytest.raises(ShapeError):
            f()
    with pytest.raises(BackendMismatchError):  # (a raw TypeError from torch's max)
        M.softmax_attention(q[0], k[0], k[0], scale=torch.tensor(1.0))
    with pytest.raises(ShapeError):  # (a 0-d log_mass_k was a raw IndexError)
        M.grav_multiscale_attention(q, k, k, log_mass_k=np.zeros(()), gammas=[0.5])


def test_tropical_bool_int_and_extreme_inputs():
    """bool inputs were a raw TypeError (NumPy refuses bool subtraction), int64 differences wrapped around, and
    points near the float maximum had NaN distances (inf - inf) where the exact distance is 0."""
    r = rng(10)
    qb, kb, vb = r.random((3, 4)) > 0.5, r.random((5, 4)) > 0.5, r.random((5, 2)) > 0.5
    np.testing.assert_array_equal(M.tropical_attention(qb, kb, vb),
                                  M.tropical_attention(*(a.astype(float) for a in (qb, kb, vb))))
    big = 2**62
    d = M.hilbert_distance(np.array([[big, -big]]), np.array([[-big, big]]))
    assert float(d[0, 0]) == 2.0**64  # (int64 arithmetic wrapped to 0)
    x = np.array([[1.7e308, 1.7e308]])
    assert float(M.hilbert_distance(x, -x)[0, 0]) == 0.0  # all differences equal: distance 0
    np.testing.assert_allclose(M.hilbert_distance(x * np.array([[1.0, 0.5]]), -x * np.array([[1.0, 0.5]])),
                               [[1.7e308]], rtol=1e-15)
    with pytest.raises(FloatOverflowError):
        M.hilbert_distance(np.array([[1.7e308, -1.7e308]]), np.array([[0.0, 0.0]]))


def test_tropical_helpers_validate():
    with pytest.raises(ToleranceError, match="lam"):
        M.tropicalize(np.ones(2), lam=np.inf)
    with pytest.raises(ShapeError, match="lam"):
        M.tropicalize(np.ones((2, 3)), lam=np.ones(4))
    with pytest.raises(ShapeError, match="0-d"):
        M.tropical_linear(np.ones(()), np.zeros((2, 1)))
    with pytest.raises(FloatOverflowError):  # (inf, with a NumPy RuntimeWarning)
        M.dequantize(np.array([1000.0]))
    assert float(M.dequantize(np.array([-np.inf]))[0]) == -1.0
    m = Mo.build_mechanism("tropical", 8, 2)
    with torch.no_grad():  # scores 0 (q = k) and values log1p(3e38) + 1 = 89.6: e^89.6 is beyond float32
        m.Wq.zero_()
        m.Wk.zero_()
        m.Wv.fill_(1.0)
    with pytest.raises(FloatOverflowError):  # the module returned inf for finite input
        m(torch.full((1, 3, 8), 3e38))


def test_laplace_decoder_half_precision_and_extremes():
    """float16 / bfloat16 gammas were a raw NotImplementedError ("lu_cpu" not implemented for 'Half'), alpha =
    1e200 a raw OverflowError (alpha**2), a bin of 2**1100 a raw OverflowError, a 0-d gammas a raw IndexError."""
    g = np.array([0.5, 0.9, 0.99])
    P32 = M.laplace_decoder_matrix(torch.tensor(g, dtype=torch.float32))
    for dt in (torch.float16, torch.bfloat16):
        P = M.laplace_decoder_matrix(torch.tensor(g, dtype=dt))
        assert P.dtype == dt
        gh = torch.tensor(g, dtype=dt)  # the float32 computation on the rounded discounts, rounded back
        torch.testing.assert_close(P.float(), M.laplace_decoder_matrix(gh.float()).to(dt).float())
        assert float((P.float() - P32).abs().max()) < 0.05
    L = g[:, None] ** np.array([0.0, 1.0, 3.0])[None, :]
    a = 1e120
    P = M.laplace_decoder_matrix(g, alpha=a)
    np.testing.assert_allclose(P * a * a, L.T, rtol=1e-12)  # Lᵀ(L Lᵀ + α²I)⁻¹ = Lᵀ/α² (1 + O(α⁻²))
    assert np.all(M.laplace_decoder_matrix(g, alpha=1e200) == 0)  # Lᵀ/α² ~ 1e-400 underflows to 0
    Pbig = M.laplace_decoder_matrix(np.array([0.5, 1.0]), [0, 2**1100])
    np.testing.assert_allclose(Pbig, M.laplace_decoder_matrix(np.array([0.5, 1.0]), [0, 1e300]))
    with pytest.raises(ShapeError):
        M.laplace_decoder(np.ones((2, 3)), np.array(0.5))


def test_extreme_discounts_and_fields_have_no_nan():
    """log γ = -inf (γ = 0) made 0·(-inf) = NaN on the diagonal (a RuntimeWarning, an error under the test
    configuration), α = 1e308 overflowed α log(1 + β|i−j|) with a RuntimeWarning; force_field of huge points
    returned NaN directions and inf charges, with an infinite point NaN forces."""
    s = np.arange(9.0).reshape(3, 3)
    out = M.discounted_logits(s, -np.inf)
    np.testing.assert_array_equal(np.diag(out), np.diag(s))
    assert np.all(out[~np.eye(3, dtype=bool)] == -np.inf)
    lg = torch.tensor([-math.inf, math.log(0.9)], dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 4, 3, dtype=torch.float64)
    o, A = M.multiscale_attention(q, q, q, log_gammas=lg, return_weights=True)
    o.sum().backward()
    assert bool(torch.isfinite(o).all()) and bool(torch.isfinite(lg.grad).all())
    torch.testing.assert_close(A[0], torch.eye(4, dtype=torch.float64))
    _, A = M.powerlaw_attention(np.ones((1, 3, 2)), np.ones((1, 3, 2)), np.eye(3)[None], alpha=1e308, beta=1e308,
                                return_weights=True)
    np.testing.assert_array_equal(A[0], np.eye(3))
    with pytest.raises(FloatOverflowError):
        M.force_field(np.ones((2, 2)) * 1e200, np.zeros((2, 2)))
    with pytest.raises(NaNError):
        M.force_field(np.array([[np.inf, 0.0]]), np.zeros((2, 2)))
    f = M.force_field(np.ones((2, 2)) * 3, np.zeros((2, 2)), p=1e10)  # r^p = inf: the force is 0
    assert np.all(f.force == 0)


def test_force_values_of_another_dtype_are_promoted():
    """float32 values with float64 emitters were torch's raw "expected m1 and m2 to have the same dtype"."""
    r = rng(11)
    E, R, v, mu = r.normal(size=(3, 2)), r.normal(size=(4, 2)), r.normal(size=(1, 4, 2)), r.normal(size=(1, 2))
    got = M.force_attention(_t(E), _t(R), torch.tensor(v, dtype=torch.float32), _t(mu))
    want = M.force_attention(E, R, v.astype(np.float32).astype(float), mu)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    got = M.force_attention(_t(E), _t(R), torch.tensor(v).round().long(), _t(mu))
    assert got.dtype == torch.float64


def test_modules_take_half_precision_activations_under_autocast():
    # the dtype check refused bf16 activations beside float32 parameters, normal under torch.autocast
    import torch

    from tropix.attention.mechanisms import build_mechanism

    for name in ("softmax", "gravitational", "powerlaw"):
        m, lin = build_mechanism(name, 16, 2), torch.nn.Linear(16, 16)
        x = torch.randn(2, 5, 16)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(lin(x))
        assert y.shape == (2, 5, 16) and torch.isfinite(y.float()).all()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            ref = m(lin(x).float())  # (the same module on float32 input, bf16 inside autocast)
        assert torch.allclose(y.float(), ref.float(), atol=0.1)


def test_resonant_learned_temperature_has_a_finite_gradient_where_tau_squared_underflows():
    # s / exp(log τ): its backward computes s / τ², 0 in float32 for log τ near -50: a NaN gradient
    import torch

    from tropix.attention.mechanisms import build_mechanism

    m = build_mechanism("resonant", 16, 2, vocab_size=50)
    with torch.no_grad():
        m.log_tau.fill_(-50.0)
    x, tok = torch.randn(1, 6, 16), torch.randint(0, 50, (1, 6))
    m(x, tokens=tok).sum().backward()
    assert torch.isfinite(m.log_tau.grad).all()


def test_resonant_attention_tensor_tau_gradient_where_tau_squared_underflows():
    """The backward of s/τ forms (s/τ)/τ: it overflowed where τ² underflows (float64 τ = 1e-160, float32 1e-20,
    float16 1e-3) and gave a NaN gradient for τ (ResonantAttention's log τ was fixed, the functional form not)."""
    P = torch.tensor([[2, 3], [2, 3], [2, 0], [5, 7]])  # Jaccard indices 1, 1/2 and 0: exact in every dtype
    ph = torch.zeros(4, 2, dtype=torch.float64)
    Q = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64).expand(4, 2, 4)
    v = torch.tensor(rng(13).normal(size=(4, 3)))

    def grad(t, dtype, a=None):  # weights (a, 0, 0): scores a·J, logits (a/τ)·J
        tau = torch.tensor(t, dtype=dtype, requires_grad=True)
        d = [x.to(dtype) for x in (ph, Q, v)]
        o = M.resonant_attention(P, d[0], d[1], P, d[0], d[1], d[2], tau=tau, weights=(t if a is None else a, 0, 0))
        (o.double() ** 2).sum().backward()
        return float(tau.grad)

    tau = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: M.resonant_attention(P, ph, Q, P, ph, Q, v, tau=t), (tau,))
    assert torch.autograd.gradcheck(lambda t: M.resonant_attention(P, ph, Q, P, ph, Q, v, tau=t,
                                                                   weights=(0.05, 0, 0)), (tau,))
    # scores a·J with a = τ: the logits J do not depend on the scale, so dL/dτ = G/τ with G the gradient at τ = 1
    G = grad(1.0, torch.float64)
    for dt, k, rtol in ((torch.float16, 16, 1e-2), (torch.bfloat16, 128, 3e-2), (torch.float32, 128, 1e-6),
                        (torch.float64, 1024, 1e-12)):
        got = grad(2.0**-k, dt)
        assert math.isfinite(got) and math.ldexp(got, -k) == pytest.approx(G, rel=rtol), (dt, got)
    # a saturated softmax (one-hot rows): the gradient is 0, not NaN
    for dt, t in ((torch.float64, 1e-160), (torch.float64, 1e-300), (torch.float32, 1e-20), (torch.float16, 1e-3)):
        assert grad(t, dt, a=1.0) == 0.0, (dt, t)
