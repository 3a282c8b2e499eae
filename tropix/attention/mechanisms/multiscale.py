"""Multi-timescale attention: T attention maps with their own discount, combined by a decoder.

Source: ``sanjivshah16/gravitational`` (``multi_timescale_attention.py``), after the multi-timescale
reinforcement-learning model of Masset et al. (Nature 642, 2025).  Each timescale ``t`` has its own
projections ``Q_t, K_t, V_t`` and a discount ``γ_t ∈ (0, 1)`` (initialised 0.6, 0.9, 0.99).

**How the discount enters the scores** (``s_ij = q_i·k_j/√d``, distance ``|i − j|``):

* ``discount="bias"`` (default, the principled reading): ``A^t_ij ∝ e^{s_ij} γ_t^{|i−j|}``, i.e. the additive
  logit bias ``|i − j|·ln γ_t`` — an ALiBi slope ``−ln γ_t``.  Far keys are suppressed geometrically, as a
  discounted value ``Σ_τ γ^τ r_τ`` discounts far rewards.
* ``discount="logit"`` (the source code): the logit is *multiplied*, ``s_ij·γ_t^{|i−j|}``.  This pulls far
  logits to 0, i.e. towards *uniform* weight, rather than suppressing far keys; kept for parity.

The outputs ``O_t = A^t V_t`` of the T timescales are combined either by a learned decoder (the
source's MLP ``Linear(TD→2D) → LayerNorm → ReLU → Linear(2D→D)``, in the torch wrapper) or by the fixed
Laplace-like decoder :func:`laplace_decoder`.  Cost: T dense attentions, ``O(T n² d)``.

Where the source is vague: it calls its MLP a "Laplace-like decoder" although nothing in it is a
Laplace inverse; the fixed decoder here follows Masset et al.'s regularised inversion instead (see
:func:`laplace_decoder`).  ``γ_t`` is unconstrained in the source; here it is kept in ``(0, 1)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..._repr import summary
from ...errors import ArgumentTypeError, EmptyInputError, OptionError, ShapeError, ToleranceError
from ...tropical._args import check_option, check_real
from ._common import (as_param, check_finite, check_qkv, checked_scale, common_float, dot_logits, param_dtype,
                      position_distance, prepare, softmax_pow2)

__all__ = [
    "multiscale_attention",
    "discounted_logits",
    "laplace_decoder",
    "laplace_decoder_matrix",
    "multiscale_attention_reference",
]


def _log_gammas(xp, gammas, log_gammas, like, T):
    if (gammas is None) == (log_gammas is None):
        raise ArgumentTypeError("give exactly one of gammas and log_gammas")
    if gammas is not None:
        g = as_param(xp, gammas, like, "gammas") if not isinstance(gammas, (list, tuple)) else xp.asarray(
            [float(check_real(x, "every gamma")) for x in gammas], dtype=param_dtype(xp, like))
        if bool(xp.any(g <= 0)) or bool(xp.any(g > 1)):
            raise ToleranceError("discounts gamma must lie in (0, 1]")
        lg = xp.log(g)
    else:
        lg = as_param(xp, log_gammas, like, "log_gammas") if not isinstance(log_gammas, (list, tuple)) else xp.asarray(
            [float(check_real(x, "every log gamma")) for x in log_gammas], dtype=param_dtype(xp, like))
        if bool(xp.any(lg > 0)):
            raise ToleranceError("log discounts must be <= 0")
    if lg.ndim != 1 or lg.shape[0] != T:
        raise ShapeError(f"need one discount per timescale (T = {T}); got shape {tuple(lg.shape)}")
    return lg


def _discount_power(xp, dist, lg):
    """``|i−j| ln γ`` (the log of ``γ^{|i−j|}``), exactly 0 on the diagonal even for ``γ = 0`` (``ln γ = −inf``).

    The diagonal is formed from distance 1, not 0: ``0·(−inf)`` was NaN (a RuntimeWarning, and a NaN gradient
    through the ``where``)."""
    diag = dist == 0
    e = xp.where(diag, xp.ones_like(dist), dist) * lg
    return xp.where(diag, xp.zeros_like(e), e)


def discounted_logits(s: Any, log_gamma: Any, *, discount: str = "bias"):
    """Apply the discount of one or more timescales to logits ``s`` of shape ``(..., n_q, n_k)``.

    ``log_gamma`` broadcasts against ``s.shape[:-2]``.  ``"bias"``: ``s + |i−j| ln γ``;
    ``"logit"``: ``s·γ^{|i−j|}``.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.ones((2, 2))
    >>> discounted_logits(s, np.log(0.5), discount="logit")
    array([[1. , 0.5],
           [0.5, 1. ]])
    >>> np.round(discounted_logits(s, np.log(0.5)), 4)
    array([[1.    , 0.3069],
           [0.3069, 1.    ]])
    """
    xp = prepare(("s", s))
    if s.ndim < 2 or not xp.isdtype(s.dtype, "real floating"):
        raise ShapeError(f"s must be a float array of logits (..., n_q, n_k); got shape {tuple(s.shape)}, dtype {s.dtype}")
    check_option(discount, "discount", ("bias", "logit"))
    lg = as_param(xp, log_gamma, s, "log_gamma")
    lg = xp.reshape(lg, tuple(lg.shape) + (1, 1))
    dist = position_distance(xp, s.shape[-2], s.shape[-1], s)
    e = _discount_power(xp, dist, lg)
    if discount == "bias":
        return s + e
    if discount == "logit":
        return s * xp.exp(e)
    raise OptionError(f"discount must be 'bias' or 'logit', got {discount!r}")


def multiscale_attention(q: Any, k: Any, v: Any, *, gammas: Any = None, log_gammas: Any = None,
                         discount: str = "bias", scale: float | None = None, mask: Any = None,
                         return_weights: bool = False):
    """Discounted attention at T timescales: ``O_t = softmax(discounted(q_t k_tᵀ/√d, γ_t)) v_t``.

    Parameters
    ----------
    q, k, v : arrays ``(T, ..., n_q, d)``, ``(T, ..., n_k, d)``, ``(T, ..., n_k, d_v)``
        Per-timescale (and per-head) projections; axis 0 is the timescale.
    gammas, log_gammas : array or sequence of length T
        Discounts ``γ_t ∈ (0, 1]`` or their logarithms (give one).
    discount : {"bias", "logit"}
        How ``γ_t^{|i−j|}`` enters (see the module docstring).
    scale : float, default ``1/sqrt(d)``
    mask : bool array broadcastable to ``(T, ..., n_q, n_k)``, optional

    Returns
    -------
    out : array ``(T, ..., n_q, d_v)`` (and the weights if asked)

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> q, k, v = rng.normal(size=(3, 5, 4))
    >>> q3, k3, v3 = (np.stack([a] * 3) for a in (q, k, v))  # same projections at every timescale
    >>> out, A = multiscale_attention(q3, k3, v3, gammas=[0.6, 0.9, 0.99], return_weights=True)
    >>> out.shape, bool(A[0, 0, 4] < A[2, 0, 4])   # the short timescale forgets the far key faster
    ((3, 5, 4), True)
    """
    xp = prepare(("q", q), ("k", k), ("v", v))
    q, k, v = common_float(xp, q, k, v)
    check_qkv(q, k, v)
    if q.ndim < 3:
        raise ShapeError(f"q, k, v need a leading timescale axis: (T, ..., n, d); got {tuple(q.shape)}")
    # (an infinite entry gave NaN or meaningless weights; the largest |q| and |k| serve the logits' scaling)
    mq, mk, _ = (check_finite(xp, a, name) for name, a in (("q", q), ("k", k), ("v", v)))
    T = q.shape[0]
    lg = _log_gammas(xp, gammas, log_gammas, q, T)
    check_option(discount, "discount", ("bias", "logit"))
    scale = checked_scale(scale, q.shape[-1])  # (a string raised NumPy's UFuncTypeError, inf gave NaN logits)
    # logits y·2^e (see dot_logits): q kᵀ beyond the float range became +inf and shared their row equally
    y, e = dot_logits(xp, q, k, scale, mq, mk)
    lg = xp.reshape(lg, (T,) + (1,) * (y.ndim - 3))
    if discount == "logit":  # (y·2^e)·γ^{|i−j|} = (y·γ^{|i−j|})·2^e
        A = softmax_pow2(xp, discounted_logits(y, lg, discount="logit"), e, None, mask)
    else:  # y·2^e + |i−j| ln γ
        dist = position_distance(xp, y.shape[-2], y.shape[-1], y)
        bias = _discount_power(xp, dist, xp.reshape(lg, tuple(lg.shape) + (1, 1)))
        A = softmax_pow2(xp, y, e, bias, mask)
    out = A @ v
    return (out, A) if return_weights else out


def default_bins(T: int) -> list[int]:
    """Distance bins ``τ_b = 2^b − 1`` for ``b < T`` (0, 1, 3, 7, ...)."""
    return [2**b - 1 for b in range(T)]


def laplace_decoder_matrix(gammas: Any, bins: Any = None, *, alpha: float = 0.1):
    """The fixed decoder ``P = Lᵀ(L Lᵀ + α² I)⁻¹`` (B×T) of ``L_{t b} = γ_t^{τ_b}``.

    ``P`` is Masset et al.'s Tikhonov-regularised pseudo-inverse, ``Σ_s σ_s/(σ_s² + α²) v_s u_sᵀ``: it maps
    the responses of the T discounts back to B distance bins.  Differentiable in ``γ`` on torch.

    Examples
    --------
    >>> import numpy as np
    >>> P = laplace_decoder_matrix(np.array([0.5, 0.9]), [0, 2], alpha=1e-6)
    >>> L = np.array([[1.0, 0.25], [1.0, 0.81]])
    >>> np.allclose(P @ L, np.eye(2), atol=1e-6)   # tiny α: the plain inverse
    True
    """
    xp = prepare(("gammas", gammas))
    check_real(alpha, "alpha", minimum=0)
    if gammas.ndim != 1 or not xp.isdtype(gammas.dtype, "real floating"):
        raise ShapeError(f"gammas must be a float vector (one discount per timescale); got shape "
                         f"{tuple(gammas.shape)}, dtype {gammas.dtype}")
    T = gammas.shape[0]
    if bins is None:
        bins = default_bins(T)
    if isinstance(bins, (str, bytes)) or not isinstance(bins, (list, tuple, range, np.ndarray)):
        raise ArgumentTypeError(f"bins must be a sequence of distances, got {summary(bins)}")
    # bins are capped at sqrt(max) of the dtype: beyond it γ^τ is exactly 0 for every representable γ < 1 (and 1 at
    # γ = 1) either way, but a bin of 2^199 in float32 was inf (γ^τ = inf·0 = NaN at γ = 1), and near the float
    # maximum the gradient τ·γ^τ overflowed (NaN gradients of σ(θ) = 1 in the torch wrapper at T = 200)
    # (float16 / bfloat16: torch's and NumPy's solvers refuse them, a raw NotImplementedError / TypeError; the
    # matrix is computed in float32 and rounded back)
    dtype = gammas.dtype
    if xp.finfo(dtype).bits < 32:
        gammas = xp.astype(gammas, xp.float32)
    top = math.sqrt(float(xp.finfo(gammas.dtype).max))
    tau = xp.asarray([min(_bin_value(b), top) for b in bins], dtype=gammas.dtype)
    if tau.shape[0] == 0:
        raise EmptyInputError("bins is empty: give at least one distance bin")
    if bool(xp.any(gammas <= 0)) or bool(xp.any(gammas > 1)):
        raise ToleranceError("discounts gamma must lie in (0, 1]")
    L = xp.exp(_discount_power(xp, tau[None, :], xp.log(gammas)[:, None]))  # (T, B)
    if alpha == 0:  # Σ σ_s/(σ_s² + α²) v_s u_sᵀ at α = 0: the pseudo-inverse (L Lᵀ may be singular, T > B)
        P = xp.linalg.pinv(L)
    elif alpha > 1e100:  # Lᵀ(L Lᵀ/α² + I)⁻¹/α² (alpha**2 was a raw OverflowError, inf·I a NaN solve)
        La = L / alpha
        M = La @ xp.matrix_transpose(La) + xp.eye(T, dtype=L.dtype)
        P = xp.matrix_transpose(xp.linalg.solve(M, L)) / alpha / alpha
    else:
        M = L @ xp.matrix_transpose(L) + (alpha**2) * xp.eye(T, dtype=L.dtype)
        P = xp.matrix_transpose(xp.linalg.solve(M, L))
    return P if P.dtype == dtype else xp.astype(P, dtype)


def _bin_value(b) -> float:
    """A distance bin as a float (``inf`` for an integer beyond the float range: ``check_real``'s ``float()`` raised
    a raw OverflowError for ``2**1100``; it is capped with the others)."""
    if isinstance(b, (int, np.integer)) and not isinstance(b, (bool, np.bool_)) and abs(int(b)) >= 2**1023:
        if b < 0:
            raise ToleranceError(f"every bin must be >= 0, got {summary(b)}")
        return math.inf
    return float(check_real(b, "every bin", minimum=0))


def laplace_decoder(outputs: Any, gammas: Any, bins: Any = None, *, alpha: float = 0.1):
    """Decode the T timescale outputs ``(T, ..., n, d)`` into B distance bins ``(B, ..., n, d)``.

    ``ĉ_b = Σ_t P_{bt} O_t`` with ``P`` from :func:`laplace_decoder_matrix`: if the value content at distance
    ``τ`` contributes ``γ_t^τ`` to timescale ``t`` (the Laplace-transform picture), ``ĉ_b`` estimates the
    content at distance ``τ_b``.  The torch wrapper concatenates the bins and applies its output
    projection.  Masset et al.'s clipping of negative probabilities is not applied (values are vectors).

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([0.5, 0.9]); L = np.array([[1.0, 0.25], [1.0, 0.81]])
    >>> c = np.array([[[2.0]], [[-1.0]]])                       # content per bin, shape (B, n, d)
    >>> O = np.tensordot(L, c, axes=([1], [0]))                # what the two timescales see
    >>> np.round(laplace_decoder(O, g, [0, 2], alpha=1e-6), 4)
    array([[[ 2.]],
    <BLANKLINE>
           [[-1.]]])
    """
    xp = prepare(("outputs", outputs), ("gammas", gammas))
    # (a 0-d gammas or outputs was a raw IndexError; an infinite output a silent NaN: inf·0 in the contraction)
    if gammas.ndim != 1 or outputs.ndim < 1:
        raise ShapeError(f"outputs must be (T, ...) and gammas a vector of T discounts; got shapes "
                         f"{tuple(outputs.shape)} and {tuple(gammas.shape)}")
    check_finite(xp, outputs, "outputs", "timescale outputs")
    if outputs.shape[0] != gammas.shape[0]:
        raise ShapeError(f"outputs has {outputs.shape[0]} timescales but {gammas.shape[0]} discounts were given")
    P = laplace_decoder_matrix(gammas, bins, alpha=alpha)
    return xp.tensordot(P, outputs, axes=([1], [0]))


def multiscale_attention_reference(q, k, v, gammas, *, discount="bias", scale=None):
    """Loop reference of :func:`multiscale_attention` for ``(T, n, d)`` NumPy inputs (tests only)."""
    q, k, v = (np.asarray(a, dtype=float) for a in (q, k, v))
    T, n, d = q.shape
    m = k.shape[1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    out = np.zeros((T, n, v.shape[-1]))
    for t in range(T):
        for i in range(n):
            logits = []
            for j in range(m):
                s = float(q[t, i] @ k[t, j]) * scale
                w = gammas[t] ** abs(i - j)
                logits.append(s + abs(i - j) * math.log(gammas[t]) if discount == "bias" else s * w)
            top = max(logits)
            w = np.array([math.exp(x - top) for x in logits])
            out[t, i] = (w / w.sum()) @ v[t]
    return out
