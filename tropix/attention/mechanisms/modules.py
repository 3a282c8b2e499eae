"""Thin torch ``nn.Module`` wrappers holding the learnable parameters of each mechanism.

Importing this module imports torch; ``tropix.attention.mechanisms`` loads it lazily (torch is an
optional dependency).  Every wrapper maps ``x`` of shape ``(B, n, D)`` to ``(B, n, D)``:

``forward(x, key_mask=None, tokens=None)`` — ``key_mask`` ``(B, n)`` is ``True`` for real tokens (padding
is never attended); ``tokens`` ``(B, n)`` are the token ids, used only by :class:`ResonantAttention`
(its prime sets are hashed from the token, as in the source).  After a forward pass with
``keep_weights = True`` the attribute ``last_weights`` holds the (detached) attention of the first
batch element, ``(H, n, n)``, for heatmaps.  The numerics are the functional cores of the package.
"""

from __future__ import annotations

import inspect
import math

import torch
import array_api_compat.torch as torch_xp
import torch.nn.functional as F
from torch import nn

from ...errors import OptionError, ShapeError
from ...tropical._args import check_int
from ._common import masked_softmax
from .force import force_attention
from .grav_multiscale import grav_multiscale_attention
from .gravitational import gravitational_attention
from .multiscale import laplace_decoder, multiscale_attention
from .powerlaw import powerlaw_attention
from .resonant import SparsePrimeState, resonant_scores
from .softmax import softmax_attention
from .tropical_hilbert import dequantize, tropical_attention, tropical_linear, tropicalize

__all__ = [
    "SoftmaxAttention",
    "ForceAttention",
    "GravitationalAttention",
    "MultiScaleAttention",
    "GravMultiScaleAttention",
    "PowerLawAttention",
    "ResonantAttention",
    "TropicalAttention",
    "MECHANISMS",
    "build_mechanism",
]


def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class _Base(nn.Module):
    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        d_model, n_heads = check_int(d_model, "d_model", minimum=1), check_int(n_heads, "n_heads", minimum=1)
        if d_model % n_heads:
            raise ShapeError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.keep_weights = False
        self.last_weights = None

    def _heads(self, t):  # (B, n, D) -> (B, H, n, d_h)
        B, n, _ = t.shape
        return t.reshape(B, n, self.n_heads, -1).transpose(1, 2)

    def _merge(self, t):  # (B, H, n, d_h) -> (B, n, D')
        B, H, n, d = t.shape
        return t.transpose(1, 2).reshape(B, n, H * d)

    @staticmethod
    def _mask(key_mask, extra_dims: int = 1):
        if key_mask is None:
            return None
        m = key_mask[:, None, :]  # (B, 1, n_k) -> broadcast over queries
        for _ in range(extra_dims):
            m = m[:, None]
        return m

    def _keep(self, A):
        if self.keep_weights:
            self.last_weights = A[0].detach().cpu()


class SoftmaxAttention(_Base):
    """Conventional multi-head softmax attention (the baseline)."""

    def __init__(self, d_model, n_heads, **_):
        super().__init__(d_model, n_heads)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_mask=None, tokens=None):
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        o, A = softmax_attention(q, k, v, mask=self._mask(key_mask), return_weights=True)
        self._keep(A)
        return self.out(self._merge(o))


class ForceAttention(_Base):
    """Force-directed attention: emitter/receptor projections and one direction ``μ_h`` per head."""

    def __init__(self, d_model, n_heads, **_):
        super().__init__(d_model, n_heads)
        self.emitter = nn.Linear(d_model, d_model)
        self.receptor = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.mu = nn.Parameter(torch.randn(n_heads, d_model))
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_mask=None, tokens=None):
        o, A = force_attention(self.emitter(x), self.receptor(x), self._heads(self.v(x)), self.mu,
                               mask=self._mask(key_mask), return_weights=True)
        self._keep(A)
        return self.out(self._merge(o))


class GravitationalAttention(_Base):
    """Gravitational attention with softplus masses; ``G`` and the query masses are inert (kept for parity)."""

    def __init__(self, d_model, n_heads, eps: float = 1e-8, **_):
        super().__init__(d_model, n_heads)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.mass_q = nn.Linear(d_model, n_heads)
        self.mass_k = nn.Linear(d_model, n_heads)
        self.G = nn.Parameter(torch.ones(n_heads))
        self.eps = eps
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_mask=None, tokens=None):
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        z = self.mass_k(x).transpose(1, 2)  # (B, H, n)
        log_m = torch.where(z < -30, z, torch.log(F.softplus(torch.clamp(z, min=-30))))
        o, A = gravitational_attention(q, k, v, log_mass_k=log_m, eps=self.eps, mask=self._mask(key_mask),
                                       return_weights=True)
        self._keep(A)
        return self.out(self._merge(o))


class _Decoder(nn.Module):
    """The learned MLP decoder (source) or the fixed Laplace decoder followed by the output projection."""

    def __init__(self, d_model: int, T: int, decoder: str, bins=None, alpha: float = 0.1):
        super().__init__()
        self.kind, self.alpha = decoder, alpha
        self.bins = list(bins) if bins is not None else [2**b - 1 for b in range(T)]
        if decoder == "mlp":
            self.net = nn.Sequential(nn.Linear(T * d_model, 2 * d_model), nn.LayerNorm(2 * d_model), nn.ReLU(),
                                     nn.Linear(2 * d_model, d_model))
        elif decoder == "laplace":
            self.net = nn.Linear(len(self.bins) * d_model, d_model)
        else:
            raise OptionError(f"decoder must be 'mlp' or 'laplace', got {decoder!r}")

    def forward(self, outs, gammas):  # outs: (T, B, n, D)
        if self.kind == "laplace":
            outs = laplace_decoder(outs, gammas, self.bins, alpha=self.alpha)
        return self.net(torch.cat(list(outs), dim=-1))


def _gamma_logits(T: int):
    init = [0.6, 0.9, 0.99] if T == 3 else [1 - 0.5 ** (t + 1) for t in range(T)]
    return torch.tensor([math.log(g / (1 - g)) for g in init])


class MultiScaleAttention(_Base):
    """Multi-timescale attention: T timescales with own Q, K, V and discounts ``γ_t = σ(θ_t)``."""

    def __init__(self, d_model, n_heads, T: int = 3, decoder: str = "mlp", discount: str = "bias", bins=None,
                 alpha: float = 0.1, **_):
        super().__init__(d_model, n_heads)
        self.T, self.discount = T, discount
        self.qkv = nn.Linear(d_model, 3 * T * d_model)
        self.theta = nn.Parameter(_gamma_logits(T))
        self.decoder = _Decoder(d_model, T, decoder, bins, alpha)

    def forward(self, x, key_mask=None, tokens=None):
        B, n, D = x.shape
        qkv = self.qkv(x).reshape(B, n, 3, self.T, self.n_heads, self.d_head).permute(2, 3, 0, 4, 1, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (T, B, H, n, d_h)
        o, A = multiscale_attention(q, k, v, log_gammas=F.logsigmoid(self.theta), discount=self.discount,
                                    mask=None if key_mask is None else key_mask[None, :, None, None, :],
                                    return_weights=True)
        self._keep(A[0])
        outs = o.permute(0, 1, 3, 2, 4).reshape(self.T, B, n, D)
        return self.decoder(outs, torch.sigmoid(self.theta))


class GravMultiScaleAttention(_Base):
    """Gravitational multi-timescale attention: shared Q, K, V; masses per timescale and head."""

    def __init__(self, d_model, n_heads, T: int = 3, decoder: str = "mlp", eps: float = 1e-8, bins=None,
                 alpha: float = 0.1, **_):
        super().__init__(d_model, n_heads)
        self.T, self.eps = T, eps
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.mass = nn.Linear(d_model, n_heads * T)
        self.theta = nn.Parameter(_gamma_logits(T))
        self.decoder = _Decoder(d_model, T, decoder, bins, alpha)

    def forward(self, x, key_mask=None, tokens=None):
        B, n, D = x.shape
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        z = self.mass(x).reshape(B, n, self.T, self.n_heads).permute(2, 0, 3, 1)  # (T, B, H, n)
        log_m = torch.where(z < -30, z, torch.log(F.softplus(torch.clamp(z, min=-30))))
        o, A = grav_multiscale_attention(q, k, v, log_mass_k=log_m, log_gammas=F.logsigmoid(self.theta),
                                         eps=self.eps,
                                         mask=None if key_mask is None else key_mask[None, :, None, None, :],
                                         return_weights=True)
        self._keep(A[0])
        outs = o.permute(0, 1, 3, 2, 4).reshape(self.T, B, n, D)
        return self.decoder(outs, torch.sigmoid(self.theta))


class PowerLawAttention(_Base):
    """Softmax attention with the learnable power-law field ``−α_h log(1 + β_h|i−j|)`` (α, β softplus'd)."""

    def __init__(self, d_model, n_heads, **_):
        super().__init__(d_model, n_heads)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.alpha_raw = nn.Parameter(torch.full((n_heads,), _inv_softplus(1.0)))
        self.beta_raw = nn.Parameter(torch.tensor([_inv_softplus(2.0 ** -h) for h in range(n_heads)]))
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_mask=None, tokens=None):
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        o, A = powerlaw_attention(q, k, v, alpha=F.softplus(self.alpha_raw), beta=F.softplus(self.beta_raw),
                                  mask=self._mask(key_mask), return_weights=True)
        self._keep(A)
        return self.out(self._merge(o))


class ResonantAttention(_Base):
    """Resonant attention: primes hashed from the token id, phases and quaternions learned from ``x``.

    Per head, slot ``s`` of token ``i`` carries the phase ``(x W_φ)_{h,s}`` and the quaternion
    ``normalise((x W_q)_{h,s})``; the prime sets come from :meth:`SparsePrimeState.from_hash` of the token
    id.  ``τ`` is learnable (``log τ`` initialised at ``log 0.1``).  Values are ordinary projections.
    """

    def __init__(self, d_model, n_heads, vocab_size: int = 32, k: int = 4, n_primes: int = 4096, **_):
        super().__init__(d_model, n_heads)
        self.k = k
        primes = [SparsePrimeState.from_hash(str(t), k=k, n_primes=n_primes).primes for t in range(vocab_size)]
        self.register_buffer("primes", torch.tensor(primes, dtype=torch.int64), persistent=False)
        self.phase = nn.Linear(d_model, n_heads * k)
        self.quat = nn.Linear(d_model, n_heads * k * 4)
        self.v = nn.Linear(d_model, d_model)
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.1)))
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, key_mask=None, tokens=None):
        if tokens is None:
            raise OptionError("ResonantAttention needs the token ids (tokens=...) to hash prime sets")
        B, n, D = x.shape
        V = self.primes.shape[0]
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= V):
            # (an id >= vocab_size was a raw IndexError; a negative one silently took the primes of another token)
            raise ShapeError(f"token ids must lie in [0, vocab_size = {V}); got ids from {int(tokens.min())} to "
                             f"{int(tokens.max())} (build the module with a larger vocab_size)")
        P = self.primes[tokens][:, None].expand(B, self.n_heads, n, self.k)
        ph = self.phase(x).reshape(B, n, self.n_heads, self.k).transpose(1, 2)
        qu = self.quat(x).reshape(B, n, self.n_heads, self.k, 4).transpose(1, 2)
        s = resonant_scores(P, ph, qu, P, ph, qu) / torch.exp(self.log_tau)
        A = masked_softmax(torch_xp, s, self._mask(key_mask))
        o = A @ self._heads(self.v(x))
        self._keep(A)
        return self.out(self._merge(o))


class TropicalAttention(_Base):
    """Multi-head tropical attention: valuation, shared max-plus Q/K/V maps per head, Hilbert scores, expm1."""

    def __init__(self, d_model, n_heads, **_):
        super().__init__(d_model, n_heads)
        d = self.d_head
        self.Wq = nn.Parameter(torch.randn(d, d))
        self.Wk = nn.Parameter(torch.randn(d, d))
        self.Wv = nn.Parameter(torch.randn(d, d))
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x, key_mask=None, tokens=None):
        z = self._heads(tropicalize(x))
        q, k, v = (tropical_linear(z, W) for W in (self.Wq, self.Wk, self.Wv))
        c, s = tropical_attention(q, k, v, mask=self._mask(key_mask), return_scores=True)
        if self.keep_weights:  # a heatmap of the (non-normalised) scores S = -d_H
            self.last_weights = s[0].detach().cpu()
        return self.out(self._merge(dequantize(c)))


MECHANISMS = {
    "softmax": SoftmaxAttention,
    "force": ForceAttention,
    "gravitational": GravitationalAttention,
    "multiscale": MultiScaleAttention,
    "grav_multiscale": GravMultiScaleAttention,
    "powerlaw": PowerLawAttention,
    "resonant": ResonantAttention,
    "tropical": TropicalAttention,
}


def build_mechanism(name: str, d_model: int, n_heads: int, **kwargs) -> nn.Module:
    """The wrapper registered under ``name`` (see :data:`MECHANISMS`).

    Examples
    --------
    >>> import torch
    >>> m = build_mechanism("gravitational", 8, 2)
    >>> m(torch.randn(1, 5, 8)).shape
    torch.Size([1, 5, 8])
    """
    if not isinstance(name, str) or name not in MECHANISMS:
        raise OptionError(f"unknown mechanism {name!r}; choose from {', '.join(MECHANISMS)}")
    # every wrapper takes vocab_size (a harness passes it to all; resonant uses it); any other option must be
    # the wrapper's own (a misspelt one, epsilon= for eps=, was silently dropped)
    own = [p for p in inspect.signature(MECHANISMS[name].__init__).parameters
           if p not in ("self", "d_model", "n_heads", "_")]
    unknown = sorted(set(kwargs) - set(own) - {"vocab_size"})
    if unknown:
        raise OptionError(f"{name}: unknown option(s) {', '.join(unknown)}; it takes {', '.join(own) or 'none'}"
                          " (and vocab_size)")
    return MECHANISMS[name](d_model, n_heads, **kwargs)
