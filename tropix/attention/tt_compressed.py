"""Attention with tensor-train compressed projections (and optionally a TT attention matrix), error certified.

The projections ``W_q, W_k, W_v`` (``D x d``) are held as :class:`tropix.tn.TTMatrix` (MPO) with certified
Frobenius errors ``δ_q, δ_k, δ_v``; queries, keys and values are computed core by core
(``X W = TTMatrix.rmatmat(X)``).  The induced error on the attention output, against attention with the
exact weights, is bounded per query row ``i`` by

* values: ``|Σ_j p_ij (v_j - ṽ_j)| <= max_j |x_j| δ_v``;
* scores: ``|s_ij - s̃_ij| <= σ_i = |scale| (|x_i| δ_q max_j |k̃_j| + (|q̃_i| + |x_i| δ_q) max_j |x_j| δ_k)``,
  so every softmax weight changes by a factor within ``exp(±2σ_i)`` and
  ``|Σ_j (p_ij - p̃_ij) ṽ_j| <= expm1(2σ_i) max_j |ṽ_j|``

(``|ΔW x| <= |ΔW|_2 |x| <= δ |x|``).  The floating-point rounding of the TT contractions is bounded
rigorously by :meth:`tropix.tn.TTMatrix.rmatmat_rounding_bound` (``|q̂_i - x_i W_TT| <= e_{q,i}``, likewise
``e_k``, ``e_v`` as maxima over rows); it enters ``σ_i`` as ``|scale| (e_{q,i} max|k̂| + (|q̂_i| + e_{q,i}) e_k)``
(with ``|q̃|, |k̃|`` above inflated by ``e_q, e_k``) and the value term as ``+ e_v``.  The attention of
the compressed ``q̃, k̃, ṽ`` is evaluated by
:func:`~tropix.attention.dense` (``eps = 0``) or by :func:`~tropix.attention.auto` with its own certified
bound, which is added.  With ``attention_tt_eps`` the ``n_q x n_k`` attention matrix itself is compressed to
a TT-matrix ``P̃`` with ``|P - P̃|_F <= δ_A`` and the output is ``P̃ ṽ``; each row then moves by at most
``δ_A |Ṽ|_2`` more (this path forms ``P`` densely first: it shows compressibility, it does not save work).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._array import from_numpy, to_numpy
from ..errors import ShapeError, ToleranceError
from .bounds import rounding_bound
from .result import AttentionResult

__all__ = ["TTProjections", "compress_projections", "tt_compressed"]


@dataclass(frozen=True)
class TTProjections:
    """Query, key and value projections as TT-matrices, with their certified Frobenius errors."""

    wq: Any
    wk: Any
    wv: Any

    @property
    def errors(self) -> tuple:
        """``(δ_q, δ_k, δ_v)``: certified bounds on ``|W - W_TT|_F``."""
        return (float(self.wq.error_bound), float(self.wk.error_bound), float(self.wv.error_bound))

    @property
    def n_params(self) -> int:
        return int(self.wq.n_params + self.wk.n_params + self.wv.n_params)


def compress_projections(W_q, W_k, W_v, *, eps: float = 0.1, max_rank: int | None = None) -> TTProjections:
    """Compress the three projection matrices (``D x d`` each) to TT-matrices with relative error ``<= eps``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> W = [rng.normal(size=(64, 16)) for _ in range(3)]
    >>> T = compress_projections(*W, eps=0.5)
    >>> all(e <= 0.5 * np.linalg.norm(w) for e, w in zip(T.errors, W))
    True
    """
    from ..tn import TTMatrix

    mats = []
    for name, W in (("W_q", W_q), ("W_k", W_k), ("W_v", W_v)):
        A = np.asarray(to_numpy(W), dtype=np.float64)
        if A.ndim != 2:
            raise ShapeError(f"compress_projections: {name} must be a matrix (D, d), got shape {A.shape}")
        mats.append(TTMatrix.from_dense(A, eps=eps, max_rank=max_rank))
    return TTProjections(*mats)


def tt_compressed(x_q, x_kv, projections: TTProjections, mask=None, bias=None, scale=None, causal=False, *,
                  eps: float = 0.0, attention_tt_eps: float | None = None, check: bool = False,
                  weights=None) -> AttentionResult:
    """Attention of ``softmax(scale (x_q W_q)(x_kv W_k)^T + bias) (x_kv W_v)`` with TT-compressed weights.

    Parameters
    ----------
    x_q, x_kv : arrays ``(n_q, D)``, ``(n_k, D)``
        Hidden states of the queries and of the keys/values (one head; any library, computed in NumPy).
    projections : TTProjections
        From :func:`compress_projections`.
    mask, bias, scale, causal
        As in :func:`tropix.attention.dense`.
    eps : float
        Tolerance of the inner attention (0: dense; > 0: :func:`tropix.attention.auto`).
    attention_tt_eps : float, optional
        Also compress the attention matrix to a TT-matrix with this relative accuracy.
    check : bool
        Needs ``weights = (W_q, W_k, W_v)``: computes attention with the exact weights and raises
        BoundViolationError if an error exceeds its bound.

    Returns
    -------
    AttentionResult
        ``bound`` bounds ``|output_i - attention_i(exact weights)|``; ``counters`` has ``tt_params`` and
        ``dense_params`` (parameters of the three projections).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> W = [rng.normal(size=(64, 16)) / 8 for _ in range(3)]
    >>> X = rng.normal(size=(10, 64))
    >>> r = tt_compressed(X, X, compress_projections(*W, eps=0.05), weights=W, check=True)
    >>> r.output.shape, bool(np.all(r.bound > 0))
    ((10, 16), True)
    """
    from .auto import auto
    from .dense import dense

    if not isinstance(projections, TTProjections):
        raise TypeError("tt_compressed: projections must come from compress_projections")
    Xq = np.asarray(to_numpy(x_q), dtype=np.float64)
    Xk = np.asarray(to_numpy(x_kv), dtype=np.float64)
    if Xq.ndim != 2 or Xk.ndim != 2:
        raise ShapeError(f"tt_compressed: x_q and x_kv must be (n, D), got {Xq.shape} and {Xk.shape}")
    D = projections.wq.shape[0]
    if Xq.shape[1] != D or Xk.shape[1] != D:
        raise ShapeError(f"tt_compressed: hidden size {Xq.shape[1]}/{Xk.shape[1]} but the projections take D = {D}")
    q = np.asarray(to_numpy(projections.wq.rmatmat(Xq)))
    k = np.asarray(to_numpy(projections.wk.rmatmat(Xk)))
    v = np.asarray(to_numpy(projections.wv.rmatmat(Xk)))
    dq, dk, dv = projections.errors
    sc = 1.0 / np.sqrt(q.shape[1]) if scale is None else float(scale)
    if eps > 0:
        inner = auto(q, k, v, eps=eps, mask=mask, bias=bias, scale=sc, causal=causal)
    else:
        out = dense(q, k, v, mask=mask, bias=bias, scale=sc, causal=causal)
        inner = None
    xn_q = np.linalg.norm(Xq, axis=1)
    xn_k = np.linalg.norm(Xk, axis=1).max()
    kmax = np.linalg.norm(k, axis=1).max()
    vmax = np.linalg.norm(v, axis=1).max()
    qn = np.linalg.norm(q, axis=1)
    # rigorous rounding of the TT contractions (TTMatrix.rmatmat_rounding_bound): |q̂_i - x_i W_q,TT| <= e_q,i etc.
    e_q = np.linalg.norm(projections.wq.rmatmat_rounding_bound(Xq), axis=1)
    e_k = np.linalg.norm(projections.wk.rmatmat_rounding_bound(Xk), axis=1).max()
    e_v = np.linalg.norm(projections.wv.rmatmat_rounding_bound(Xk), axis=1).max()
    # score error against exact weights: compression (with |q_TT| <= |q̂| + e_q, |k_TT| <= |k̂| + e_k)
    # plus rounding (|q̂·k̂ - q_TT·k_TT| <= e_q |k̂| + |q_TT| e_k)
    sigma = abs(sc) * (xn_q * dq * (kmax + e_k) + (qn + e_q + xn_q * dq) * xn_k * dk
                       + e_q * kmax + (qn + e_q) * e_k)
    # |sum_j (p_ij - p̂_ij) v̂_j| <= min(expm1(2 sigma), 2) max|v̂|  (an l1 distance of distributions is <= 2),
    # |sum_j p_ij (v_j - v̂_j)| <= max_j |x_j| δ_v + e_v
    induced = np.minimum(np.expm1(np.minimum(2 * sigma, 50.0)), 2.0) * vmax + xn_k * dv + e_v
    if inner is not None:
        out_np = np.asarray(to_numpy(inner.output))
        bound = induced + inner.bound
        support = inner.support
    else:
        out_np = np.asarray(out)
        rb = rounding_bound(qn, kmax, 0.0 if bias is None else float(np.nanmax(np.where(
            np.isfinite(np.asarray(to_numpy(bias), dtype=float)), np.abs(np.asarray(to_numpy(bias), dtype=float)), 0))),
            k.shape[0], q.shape[1], vmax, sc)
        bound = induced + rb
        support = np.full(q.shape[0], k.shape[0])
    if attention_tt_eps is not None:
        out_np, dA = _tt_attention_matrix(q, k, v, mask, bias, sc, causal, attention_tt_eps)
        bound = bound + dA * np.linalg.norm(v, 2) + rounding_bound(qn, kmax, 0.0, k.shape[0], q.shape[1], vmax, sc)
    dense_params = sum(int(np.prod(w.shape)) for w in (projections.wq, projections.wk, projections.wv))
    counters = {"tt_params": projections.n_params, "dense_params": dense_params,
                "score_evals": int(q.shape[0] * k.shape[0]) if inner is None else int(inner.counters["score_evals"])}
    slack = np.zeros_like(bound)
    ref = None
    if check:
        if weights is None:
            raise ToleranceError("tt_compressed(check=True) needs weights=(W_q, W_k, W_v) to compute the reference")
        Wq, Wk, Wv = (np.asarray(to_numpy(w), dtype=np.float64) for w in weights)
        qe, ke, ve = Xq @ Wq, Xk @ Wk, Xk @ Wv
        ref = dense(qe, ke, ve, mask=mask, bias=bias, scale=sc, causal=causal)
        slack = slack + rounding_bound(np.linalg.norm(qe, axis=1), np.linalg.norm(ke, axis=1).max(), 0.0,
                                       k.shape[0], q.shape[1], np.linalg.norm(ve, axis=1).max(), sc)
    res = AttentionResult(from_numpy(out_np, x_q), bound, float(eps), np.array(vmax), support, "tt_compressed",
                          counters, (), slack)
    if ref is not None:
        res.verify(ref)
    return res


def _tt_attention_matrix(q, k, v, mask, bias, sc, causal, tt_eps):
    from ..tn import TTMatrix
    from .dense import dense

    n_k = k.shape[0]
    P = dense(q, k, np.eye(n_k), mask=mask, bias=bias, scale=sc, causal=causal)  # the attention matrix
    if not 0 < tt_eps < 1:
        raise ToleranceError(f"attention_tt_eps must be in (0, 1), got {tt_eps}")
    T = TTMatrix.from_dense(P, eps=tt_eps)
    out = np.asarray(to_numpy(T.matmat(v)))
    return out, float(T.error_bound)
