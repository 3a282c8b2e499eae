"""Thin torch ``nn.Module`` wrappers holding the learnable parameters of each mechanism.

Importing this module imports torch; ``tropix.attention.mechanisms`` loads it lazily (torch is an
optional dependency).  Every wrapper maps ``x`` of shape ``(B, n, D)`` to ``(B, n, D)``:

``forward(x, key_mask=None, tokens=None)`` — ``x`` is a floating tensor ``(B, n, d_model)`` of the module's
dtype and device, finite and non-empty; ``key_mask`` ``(B, n)`` or ``(1, n)`` (boolean, one mask for the whole
batch) is ``True`` for real tokens (padding is never attended); ``tokens`` ``(B, n)`` (integer) are the token
ids, used only by :class:`ResonantAttention` (its prime sets are hashed from the token, as in the source).
Every input and constructor argument is checked: bad ones raise a :mod:`tropix.errors` exception naming the
argument (ShapeError, ArgumentTypeError, NaNError, EmptyInputError, ToleranceError, OptionError), never a raw
torch error.  After a forward pass with ``keep_weights = True`` the attribute ``last_weights`` holds the
(detached) attention of the first batch element, ``(H, n, n)``, for heatmaps.  The numerics are the functional
cores of the package.
"""

from __future__ import annotations

import inspect
import math

import torch
import array_api_compat.torch as torch_xp
import torch.nn.functional as F
from torch import nn

from ..._repr import summary
from ...errors import ArgumentTypeError, EmptyInputError, NaNError, OptionError, ShapeError, ToleranceError
from ...tropical._args import check_int, check_option, check_real
from ._common import _fmax, max_abs, softmax_pow2
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


def _check_eps(eps) -> float:
    return float(check_real(eps, "eps", minimum=0))  # (a bad eps surfaced only at the first forward pass)


class _Base(nn.Module):
    def __init__(self, d_model: int, n_heads: int, options: dict | None = None):
        super().__init__()
        d_model, n_heads = check_int(d_model, "d_model", minimum=1), check_int(n_heads, "n_heads", minimum=1)
        if d_model % n_heads:
            raise ShapeError(f"d_model = {d_model} is not divisible by n_heads = {n_heads}")
        # every wrapper takes vocab_size (a harness passes it to all; resonant uses it); any other keyword was
        # silently swallowed by **_ (SoftmaxAttention(8, 2, epsilon=0.5))
        options = dict(options or {})
        if "vocab_size" in options:
            check_int(options.pop("vocab_size"), "vocab_size", minimum=1)
        if options:
            raise OptionError(f"{type(self).__name__}: unknown option(s) {', '.join(sorted(options))}")
        self.d_model, self.n_heads, self.d_head = d_model, n_heads, d_model // n_heads
        self.keep_weights = False
        self.last_weights = None

    def forward(self, x, key_mask=None, tokens=None):
        """``(B, n, d_model) -> (B, n, d_model)``; the inputs are checked first (see the module docstring).

        A ``key_mask`` of shape ``(1, n)`` is shared by the whole batch (expanded to ``(B, n)``, a view)."""
        self._check_inputs(x, key_mask, tokens)
        if key_mask is not None and key_mask.shape[0] != x.shape[0]:
            key_mask = key_mask.expand(x.shape[0], -1)
        return self._forward(x, key_mask, tokens)

    def _forward(self, x, key_mask, tokens):  # pragma: no cover - every wrapper defines it
        raise NotImplementedError

    def _check_inputs(self, x, key_mask, tokens):
        """Raw torch errors came from a 2-D x ("not enough values to unpack"), a wrong width ("mat1 and mat2 shapes
        cannot be multiplied"), a float64 x in a float32 module, an empty sequence (an ambiguous reshape), float or
        uint8 token ids (an IndexError, or uint8 read as a boolean mask) and token ids of the wrong shape."""
        D = self.d_model
        if not isinstance(x, torch.Tensor):
            raise ArgumentTypeError(f"x must be a torch tensor of shape (batch, seq, d_model={D}), got {summary(x)} "
                                    f"({type(x).__name__})")
        if x.ndim != 3 or x.shape[-1] != D:
            hint = " (add the batch axis: x[None])" if x.ndim == 2 and x.shape[-1] == D else ""
            raise ShapeError(f"x must have shape (batch, seq, d_model={D}); got {tuple(x.shape)}{hint}")
        if not x.is_floating_point():
            raise ArgumentTypeError(f"x must be a floating tensor of embeddings, got dtype {x.dtype} (token ids go "
                                    "through an embedding; pass them as tokens=)")
        p = next(self.parameters())
        # (under torch.autocast the activations are half precision beside float32 parameters: normal use)
        if x.device != p.device or (x.dtype != p.dtype and not torch.is_autocast_enabled(x.device.type)):
            raise ArgumentTypeError(f"x is a {x.dtype} tensor on {x.device} but the module's parameters are {p.dtype} "
                                    f"on {p.device}; convert one of them (module.to(x.dtype) or x.to({p.dtype}))")
        B, n = int(x.shape[0]), int(x.shape[1])
        if B == 0 or n == 0:
            raise EmptyInputError(f"x is empty (shape {tuple(x.shape)}): need at least one sequence of one token")
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            idx = tuple(int(i) for i in bad.nonzero()[0])
            what = "NaN" if bool(torch.isnan(x[idx])) else "an infinity"
            raise NaNError(f"x contains {what} at index {idx}; the module's input must be finite")
        for name, t in (("key_mask", key_mask), ("tokens", tokens)):
            if t is None:
                continue
            if not isinstance(t, torch.Tensor):
                raise ArgumentTypeError(f"{name} must be a torch tensor of shape (batch, seq) = {(B, n)}, got "
                                        f"{summary(t)} ({type(t).__name__})")
            # (a key_mask (1, n) broadcasting over the batch was accepted before these checks and refused by them)
            if tuple(t.shape) != (B, n) and not (name == "key_mask" and tuple(t.shape) == (1, n)):
                also = " or (1, seq) for the whole batch" if name == "key_mask" else ""
                hint = (f" (add the batch axis: {name}[None])" if t.ndim == 1 and t.shape[0] == n
                        and (name == "key_mask" or B == 1) else "")
                raise ShapeError(f"{name} must have shape (batch, seq) = {(B, n)} like x{also}; got "
                                 f"{tuple(t.shape)}{hint}")
            if t.device != x.device:
                raise ArgumentTypeError(f"{name} is on {t.device} but x is on {x.device}")
        if key_mask is not None and key_mask.dtype != torch.bool:
            raise ArgumentTypeError(f"key_mask must be boolean (True = a real token), got dtype {key_mask.dtype}")
        if tokens is not None and (tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool):
            raise ArgumentTypeError(f"tokens must hold integer token ids, got dtype {tokens.dtype}")

    def _heads(self, t):  # (B, n, D) -> (B, H, n, d_h)
        B, n, D = t.shape
        return t.reshape(B, n, self.n_heads, D // self.n_heads).transpose(1, 2)

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

    def __init__(self, d_model, n_heads, **options):
        super().__init__(d_model, n_heads, options)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _forward(self, x, key_mask, tokens):
        q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        o, A = softmax_attention(q, k, v, mask=self._mask(key_mask), return_weights=True)
        self._keep(A)
        return self.out(self._merge(o))


class ForceAttention(_Base):
    """Force-directed attention: emitter/receptor projections and one direction ``μ_h`` per head."""

    def __init__(self, d_model, n_heads, **options):
        super().__init__(d_model, n_heads, options)
        self.emitter = nn.Linear(d_model, d_model)
        self.receptor = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.mu = nn.Parameter(torch.randn(n_heads, d_model))
        self.out = nn.Linear(d_model, d_model)

    def _forward(self, x, key_mask, tokens):
        o, A = force_attention(self.emitter(x), self.receptor(x), self._heads(self.v(x)), self.mu,
                               mask=self._mask(key_mask), return_weights=True)
        self._keep(A)
        return self.out(self._merge(o))


class GravitationalAttention(_Base):
    """Gravitational attention with softplus masses; ``G`` and the query masses are inert (kept for parity)."""

    def __init__(self, d_model, n_heads, eps: float = 1e-8, **options):
        super().__init__(d_model, n_heads, options)
        eps = _check_eps(eps)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.mass_q = nn.Linear(d_model, n_heads)
        self.mass_k = nn.Linear(d_model, n_heads)
        self.G = nn.Parameter(torch.ones(n_heads))
        self.eps = eps
        self.out = nn.Linear(d_model, d_model)

    def _forward(self, x, key_mask, tokens):
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
        # (a bad decoder, bins or alpha surfaced only at the first forward pass; bins=5 was a raw TypeError)
        if not isinstance(decoder, str) or decoder not in ("mlp", "laplace"):
            raise OptionError(f"decoder must be 'mlp' or 'laplace', got {decoder!r}")
        alpha = float(check_real(alpha, "alpha", minimum=0))
        self.kind, self.alpha = decoder, alpha
        given = bins is not None
        if bins is None:
            bins = [2**b - 1 for b in range(T)]
        elif isinstance(bins, (str, bytes)) or not isinstance(bins, (list, tuple, range)) and not (
                hasattr(bins, "__len__") and hasattr(bins, "dtype")):
            raise ArgumentTypeError(f"bins must be a sequence of distances, got {summary(bins)}")
        self.bins = list(bins)
        if not self.bins:
            raise EmptyInputError("bins is empty: give at least one distance bin")
        for b in self.bins if decoder == "laplace" or given else ():  # (the MLP ignores its default bins)
            try:
                float(b)
            except OverflowError:  # (an int beyond the float range: check_real's float() would raise it raw)
                raise ToleranceError(f"distance bin {summary(b)} exceeds the float range (T = {T} timescales make "
                                     "default bins 2^b - 1 up to 2^(T-1) - 1); pass smaller bins=") from None
            except (TypeError, ValueError):
                pass  # (check_real names the wrong type)
            check_real(b, "every bin", minimum=0)
        if decoder == "mlp":
            self.net = nn.Sequential(nn.Linear(T * d_model, 2 * d_model), nn.LayerNorm(2 * d_model), nn.ReLU(),
                                     nn.Linear(2 * d_model, d_model))
        else:
            self.net = nn.Linear(len(self.bins) * d_model, d_model)

    def forward(self, outs, gammas):  # outs: (T, B, n, D)
        if self.kind == "laplace":
            outs = laplace_decoder(outs, gammas, self.bins, alpha=self.alpha)
        return self.net(torch.cat(list(outs), dim=-1))


def _gamma_logits(T: int):
    """``θ_t = logit(γ_t)`` of the initial discounts: 0.6, 0.9, 0.99 for T = 3, else ``γ_t = 1 − 2^{−(t+1)}``.

    ``logit(1 − 2^{−m}) = log(2^m − 1) = m log 2 + log1p(−2^{−m})``, finite for every m: formed from ``γ``, ``1 − γ``
    rounded to 0 at m = 54 (T >= 54 was a raw ZeroDivisionError)."""
    if T == 3:
        return torch.tensor([math.log(g / (1 - g)) for g in (0.6, 0.9, 0.99)])
    return torch.tensor([m * math.log(2.0) + math.log1p(-(2.0 ** -m)) for m in range(1, T + 1)])


class MultiScaleAttention(_Base):
    """Multi-timescale attention: T timescales with own Q, K, V and discounts ``γ_t = σ(θ_t)``."""

    def __init__(self, d_model, n_heads, T: int = 3, decoder: str = "mlp", discount: str = "bias", bins=None,
                 alpha: float = 0.1, **options):
        super().__init__(d_model, n_heads, options)
        T = check_int(T, "T", minimum=1)  # (T = 2.5 was a raw TypeError, T = -1 a RuntimeError)
        discount = check_option(discount, "discount", ("bias", "logit"))
        self.T, self.discount = T, discount
        self.qkv = nn.Linear(d_model, 3 * T * d_model)
        self.theta = nn.Parameter(_gamma_logits(T))
        self.decoder = _Decoder(d_model, T, decoder, bins, alpha)

    def _forward(self, x, key_mask, tokens):
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
                 alpha: float = 0.1, **options):
        super().__init__(d_model, n_heads, options)
        T = check_int(T, "T", minimum=1)  # (T = 2.5 was a raw TypeError, T = -1 a RuntimeError)
        eps = _check_eps(eps)
        self.T, self.eps = T, eps
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.mass = nn.Linear(d_model, n_heads * T)
        self.theta = nn.Parameter(_gamma_logits(T))
        self.decoder = _Decoder(d_model, T, decoder, bins, alpha)

    def _forward(self, x, key_mask, tokens):
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

    def __init__(self, d_model, n_heads, **options):
        super().__init__(d_model, n_heads, options)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.alpha_raw = nn.Parameter(torch.full((n_heads,), _inv_softplus(1.0)))
        self.beta_raw = nn.Parameter(torch.tensor([_inv_softplus(2.0 ** -h) for h in range(n_heads)]))
        self.out = nn.Linear(d_model, d_model)

    def _forward(self, x, key_mask, tokens):
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

    def __init__(self, d_model, n_heads, vocab_size: int = 32, k: int = 4, n_primes: int = 4096, **options):
        super().__init__(d_model, n_heads, options)
        # (vocab_size = 2.5 was a raw TypeError; vocab_size = 0 or -1 built a module no token id could use)
        vocab_size = check_int(vocab_size, "vocab_size", minimum=1)
        k, n_primes = check_int(k, "k", minimum=1), check_int(n_primes, "n_primes", minimum=1)
        if k > n_primes:
            raise ToleranceError(f"need k <= n_primes, got k={k}, n_primes={n_primes}")
        self.k = k
        primes = [SparsePrimeState.from_hash(str(t), k=k, n_primes=n_primes).primes for t in range(vocab_size)]
        self.register_buffer("primes", torch.tensor(primes, dtype=torch.int64), persistent=False)
        self.phase = nn.Linear(d_model, n_heads * k)
        self.quat = nn.Linear(d_model, n_heads * k * 4)
        self.v = nn.Linear(d_model, d_model)
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.1)))
        self.out = nn.Linear(d_model, d_model)

    def _forward(self, x, key_mask, tokens):
        if tokens is None:
            raise OptionError("ResonantAttention needs the token ids (tokens=...) to hash prime sets")
        B, n, D = x.shape
        V = self.primes.shape[0]
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= V):
            # (an id >= vocab_size was a raw IndexError; a negative one silently took the primes of another token)
            raise ShapeError(f"token ids must lie in [0, vocab_size = {V}); got ids from {int(tokens.min())} to "
                             f"{int(tokens.max())} (build the module with a larger vocab_size)")
        # int64 ids: a uint8 index tensor is read by torch as a boolean mask
        P = self.primes[tokens.to(torch.int64)][:, None].expand(B, self.n_heads, n, self.k)
        ph = self.phase(x).reshape(B, n, self.n_heads, self.k).transpose(1, 2)
        qu = self.quat(x).reshape(B, n, self.n_heads, self.k, 4).transpose(1, 2)
        s = resonant_scores(P, ph, qu, P, ph, qu)
        A = softmax_pow2(torch_xp, *self._over_tau(s), None, self._mask(key_mask))
        o = A @ self._heads(self.v(x))
        self._keep(A)
        return self.out(self._merge(o))

    def _over_tau(self, s):
        """``s/τ = y·2^e`` with ``τ = exp(log τ)``: a learned log τ below about -85 (float32) made ``s/τ`` overflow
        to ``+inf``, and every resonating key shared the row equally."""
        lt = float(self.log_tau.detach())
        my = max(max_abs(torch_xp, s), 1e-300)
        if math.log(my) - lt < math.log(_fmax(torch_xp, s.dtype) / 8):
            return s * torch.exp(-self.log_tau), 0  # (s / exp(log τ): NaN gradient where τ² underflows)
        e = round(-lt / math.log(2.0))
        return s * torch.exp(-self.log_tau - e * math.log(2.0)), e


class TropicalAttention(_Base):
    """Multi-head tropical attention: valuation, shared max-plus Q/K/V maps per head, Hilbert scores, expm1."""

    def __init__(self, d_model, n_heads, **options):
        super().__init__(d_model, n_heads, options)
        d = self.d_head
        self.Wq = nn.Parameter(torch.randn(d, d))
        self.Wk = nn.Parameter(torch.randn(d, d))
        self.Wv = nn.Parameter(torch.randn(d, d))
        self.out = nn.Linear(d_model, d_model, bias=False)

    def _forward(self, x, key_mask, tokens):
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
    own = [p.name for p in inspect.signature(MECHANISMS[name].__init__).parameters.values()
           if p.name not in ("self", "d_model", "n_heads") and p.kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(kwargs) - set(own) - {"vocab_size"})
    if unknown:
        raise OptionError(f"{name}: unknown option(s) {', '.join(unknown)}; it takes {', '.join(own) or 'none'}"
                          " (and vocab_size)")
    return MECHANISMS[name](d_model, n_heads, **kwargs)
