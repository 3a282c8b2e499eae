"""Attention with tensor-train compressed projections (and optionally a TT attention matrix), error certified.

The projections ``W_q, W_k, W_v`` (``D x d``) are held as :class:`tropix.tn.TTMatrix` (MPO) with certified
Frobenius errors ``δ_q, δ_k, δ_v``; queries, keys and values are computed core by core
(``X W = TTMatrix.rmatmat(X)``).  The induced error on the attention output, against attention with the
exact weights, is bounded per query row ``i`` by

* values: ``|Σ_j p_ij (v_j - ṽ_j)| <= max_j |x_j| δ_v``;
* scores: ``|s_ij - s̃_ij| <= σ_i = |scale| (|x_i| δ_q max_j |k̃_j| + (|q̃_i| + |x_i| δ_q) max_j |x_j| δ_k)``,
  so the two softmax distributions are within total variation ``tanh(σ_i / 2)`` of each other and
  ``|Σ_j (p_ij - p̃_ij) ṽ_j| <= 2 tanh(σ_i / 2) max_j |ṽ_j|``
  (:func:`~tropix.attention.bounds.logit_shift_bound`, which proves it)

(``|ΔW x| <= |ΔW|_2 |x| <= δ |x|``).  The floating-point rounding of the TT contractions is bounded
rigorously by :meth:`tropix.tn.TTMatrix.rmatmat_rounding_bound` (``|q̂_i - x_i W_TT| <= e_{q,i}``, likewise
``e_k``, ``e_v`` as maxima over rows); it enters ``σ_i`` as ``|scale| (e_{q,i} max|k̂| + (|q̂_i| + e_{q,i}) e_k)``
(with ``|q̃|, |k̃|`` above inflated by ``e_q, e_k``) and the value term as ``+ e_v``.  The attention of
the compressed ``q̂, k̂, v̂`` is evaluated by
:func:`~tropix.attention.dense` (``eps = 0``, plus its rounding bound) or by :func:`~tropix.attention.auto`
with its own certified bound, which is added.

TT attention matrix (``attention_tt_eps``).  The output is then ``fl(P̃ v̂)``: ``P̂`` is the ``n_q x n_k``
attention matrix of ``q̂, k̂`` computed by :func:`~tropix.attention.dense` (values = identity), ``P̃`` the
operator that the cores of ``TTMatrix.from_dense(P̂, eps=attention_tt_eps)`` represent exactly, and
``fl(P̃ v̂)`` its core-by-core product with ``v̂`` (:meth:`~tropix.tn.TTMatrix.matmat`).  With ``P`` the
exact softmax matrix of ``q̂, k̂`` and ``o`` the exact attention with the exact weights, row by row

``fl(P̃ v̂) - o = [fl(P̃ v̂) - P̃ v̂] + [(P̃ - P̂) v̂] + [(P̂ - P) v̂] + [P v̂ - o]``,

and each bracket is bounded separately:

* contraction: ``|fl(P̃ v̂) - P̃ v̂| <= TTMatrix.matmat_rounding_bound(v̂)`` entrywise (rigorous);
* truncation, measured row by row instead of through the TT-SVD certificate ``δ_A >= |P̂ - P̃|_F``
  (``δ_A |v̂|_2`` bounds every row too, but loosely: a Frobenius bound spread over all rows):
  with ``Â = fl(P̃ I)`` (``|Â - P̃| <= E_I`` by ``matmat_rounding_bound``) and ``D = fl(Â - P̂)``,
  ``|((P̃ - P̂) v̂)_ic| <= |fl(D v̂)_ic| + ((γ_{n_k+1} |D| + E_I) |v̂|)_ic``, which covers the rounding of
  ``Â``, of the subtraction and of ``D v̂``;
* normalisation: ``P̂`` rows are computed with scores, ``exp``, a sum and a division, so
  ``P̂_ij = P_ij e^{θ_ij}`` with ``|θ_ij|`` bounded as in :func:`~tropix.attention.bounds.rounding_bound`
  (the products with the identity are exact), hence ``|(P̂ - P)_i v̂| <= |P̂_i - P_i|_1 max_j |v̂_j|``, at
  most the dense rounding bound of ``q̂, k̂, v̂`` (with the bias);
* projections: the induced term above.

The two measured terms are evaluated with every float64 operation rounded against the bound (a factor
``1/((1 - γ_K)(1 - u))`` for ``K`` rounding steps on nonnegative data), so the sum bounds
``|output_i - o_i|_2`` itself.  This path forms ``P̂`` and ``P̃`` densely (it shows compressibility and
certifies it; it does not save work) and skips :func:`~tropix.attention.auto`: ``eps`` is ignored.

Assumptions of every rounding term: IEEE float64 arithmetic (float16/32/64 inputs are converted to
float64 exactly, and so are float32 TT cores of any library: every product runs in float64, and the output
is float64 whatever the input dtype), no overflow, ``exp`` within the error assumed by
:func:`~tropix.attention.bounds.rounding_bound`.  Gradual underflow is covered: the TT contractions get
an absolute term per entry (``_underflow_up``: ``K·2^-1075`` per product of inner length ``K``, carried
through the later cores), the dense evaluation the subnormal terms of
:func:`~tropix.attention.bounds.rounding_bound` with the true ``d_v`` and the float64 output dtype.  With
``check=True`` the float64 reference is itself allowed its rounding: that of its projections ``X W``
(``γ_D |X||W|`` plus underflow, carried through the attention like the TT errors) and of its dense
evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np

from .._array import from_numpy, to_numpy
from .._repr import compact_repr
from ..errors import ArgumentTypeError, ShapeError, ToleranceError
from ..tn._linalg import as_float
from ..tropical._args import check_real
from .bounds import logit_shift_bound, rounding_bound
from .dense import _rownorm
from .result import AttentionResult

__all__ = ["TTProjections", "compress_projections", "tt_compressed"]


@dataclass(frozen=True)
class TTProjections:
    """Query, key and value projections as TT-matrices, with their certified Frobenius errors."""

    wq: Any
    wk: Any
    wv: Any
    __repr__ = compact_repr

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
        # (as_float: a complex matrix lost its imaginary part, an infinite entry gave NaN cores)
        A = np.asarray(to_numpy(as_float(W, f"compress_projections: {name}")), dtype=np.float64)
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
        Tolerance of the inner attention (0: dense; > 0: :func:`tropix.attention.auto`); not used with
        ``attention_tt_eps``.
    attention_tt_eps : float in (0, 1), optional
        Also compress the attention matrix to a TT-matrix with this relative Frobenius accuracy and return
        its product with the values; the bound then covers the truncation of that matrix and the rounding
        of forming, normalising and contracting it, row by row (module doc).
    check : bool
        Needs ``weights = (W_q, W_k, W_v)``: computes attention with the exact weights and raises
        BoundViolationError if an error exceeds its bound.

    Returns
    -------
    AttentionResult
        ``bound`` bounds ``|output_i - attention_i(exact weights)|_2`` (including rounding, module doc);
        ``counters`` has ``tt_params`` and ``dense_params`` (parameters of the three projections) and, with
        ``attention_tt_eps``, ``attention_tt_params`` (parameters of the TT attention matrix).

    Raises
    ------
    ShapeError
        If the hidden states are not matrices of the projections' input size.
    ToleranceError
        If ``attention_tt_eps`` is not in (0, 1), or ``check=True`` without ``weights``.
    BoundViolationError
        With ``check=True``, if a row's error exceeds its bound.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> W = [rng.normal(size=(64, 16)) / 8 for _ in range(3)]
    >>> X = rng.normal(size=(10, 64))
    >>> r = tt_compressed(X, X, compress_projections(*W, eps=0.05), weights=W, check=True)
    >>> r.output.shape, bool(np.all(r.bound > 0))
    ((10, 16), True)
    >>> r2 = tt_compressed(X, X, compress_projections(*W, eps=0.05), attention_tt_eps=0.3, weights=W, check=True)
    >>> r2.counters["attention_tt_params"] < 10 * 10, bool(np.all(r2.bound < 0.25 * r2.vmax))
    (True, True)
    """
    from .auto import auto
    from .dense import dense

    if not isinstance(projections, TTProjections):
        raise ArgumentTypeError("tt_compressed: projections must come from compress_projections")
    check_real(attention_tt_eps, "attention_tt_eps", none_ok=True)
    if attention_tt_eps is not None and not 0 < float(attention_tt_eps) < 1:
        raise ToleranceError(f"attention_tt_eps must be in (0, 1), got {attention_tt_eps}")
    check_real(eps, "eps", minimum=0)  # (a negative or NaN eps silently meant dense)
    check_real(scale, "scale", none_ok=True)
    Xq = np.asarray(to_numpy(as_float(x_q, "tt_compressed: x_q")), dtype=np.float64)
    Xk = np.asarray(to_numpy(as_float(x_kv, "tt_compressed: x_kv")), dtype=np.float64)
    if Xq.ndim != 2 or Xk.ndim != 2:
        raise ShapeError(f"tt_compressed: x_q and x_kv must be (n, D), got {Xq.shape} and {Xk.shape}")
    D = projections.wq.shape[0]
    if Xq.shape[1] != D or Xk.shape[1] != D:
        raise ShapeError(f"tt_compressed: hidden size {Xq.shape[1]}/{Xk.shape[1]} but the projections take D = {D}")
    Tq, Tk, Tv = (_float64_cores(t) for t in (projections.wq, projections.wk, projections.wv))
    q = np.asarray(to_numpy(Tq.rmatmat(Xq)))
    k = np.asarray(to_numpy(Tk.rmatmat(Xk)))
    v = np.asarray(to_numpy(Tv.rmatmat(Xk)))
    dq, dk, dv = projections.errors
    sc = 1.0 / np.sqrt(q.shape[1]) if scale is None else float(scale)
    # row norms scaled (_rownorm): squares of hidden states of 1e-170 underflowed and zeroed every term below
    xn_q = _rownorm(Xq)
    xn_k = _rownorm(Xk).max()
    kmax = _rownorm(k).max()
    vmax = _rownorm(v).max()
    qn = _rownorm(q)
    # rigorous rounding of the TT contractions (TTMatrix.rmatmat_rounding_bound, which assumes no underflow):
    # |q̂_i - x_i W_q,TT| <= e_q,i etc., with the gradual-underflow term of _underflow_up added to every entry
    e_q = _rownorm(Tq.rmatmat_rounding_bound(Xq) + _underflow_up(Tq, transpose=True))
    e_k = _rownorm(Tk.rmatmat_rounding_bound(Xk) + _underflow_up(Tk, transpose=True)).max()
    e_v = _rownorm(Tv.rmatmat_rounding_bound(Xk) + _underflow_up(Tv, transpose=True)).max()
    induced = _induced(sc, xn_q, xn_k, dq, dk, dv, qn, kmax, vmax, e_q, e_k, e_v)
    # dense evaluation on q̂, k̂, v̂ in float64 (also: |P̂_i - P_i|_1 max|v̂| for the attention matrix P̂ of the TT
    # path); d_v and the output dtype enter its gradual-underflow term
    rb = rounding_bound(qn, kmax, _max_abs_bias(bias), k.shape[0], q.shape[1], vmax, sc, np.float64,
                        d_v=int(v.shape[1]), out_dtype=np.float64)
    counters = {"tt_params": projections.n_params,
                "dense_params": sum(int(np.prod(w.shape)) for w in (projections.wq, projections.wk, projections.wv))}
    if attention_tt_eps is not None:
        tt = _tt_attention_matrix(q, k, v, mask, bias, sc, causal, float(attention_tt_eps))
        out_np = tt.output
        bound = _up(induced + rb + tt.truncation + tt.contraction, 3)
        support = np.full(q.shape[0], k.shape[0])
        counters.update(score_evals=int(q.shape[0] * k.shape[0]), attention_tt_params=tt.matrix.n_params)
    elif eps > 0:
        inner = auto(q, k, v, eps=eps, mask=mask, bias=bias, scale=sc, causal=causal)
        out_np = np.asarray(to_numpy(inner.output))
        bound = _up(induced + inner.bound, 9)
        support = inner.support
        counters["score_evals"] = int(inner.counters["score_evals"])
    else:
        out_np = np.asarray(dense(q, k, v, mask=mask, bias=bias, scale=sc, causal=causal))
        bound = _up(induced + rb, 9)
        support = np.full(q.shape[0], k.shape[0])
        counters["score_evals"] = int(q.shape[0] * k.shape[0])
    slack = np.zeros_like(bound)
    ref = None
    if check:
        if weights is None:
            raise ToleranceError("tt_compressed(check=True) needs weights=(W_q, W_k, W_v) to compute the reference")
        if isinstance(weights, (str, bytes)) or not isinstance(weights, (tuple, list)) or len(weights) != 3:
            raise ArgumentTypeError(f"weights must be the three matrices (W_q, W_k, W_v), got {type(weights).__name__}")
        Wq, Wk, Wv = (np.asarray(to_numpy(as_float(w, "weights")), dtype=np.float64) for w in weights)
        for name, w, t in (("W_q", Wq, projections.wq), ("W_k", Wk, projections.wk), ("W_v", Wv, projections.wv)):
            if w.shape != tuple(t.shape):
                raise ShapeError(f"weights: {name} has shape {w.shape}, but its compressed form has shape {tuple(t.shape)}")
        qe, ke, ve = Xq @ Wq, Xk @ Wk, Xk @ Wv
        ref = dense(qe, ke, ve, mask=mask, bias=bias, scale=sc, causal=causal)
        slack = slack + _reference_slack(Xq, Xk, (Wq, Wk, Wv), (qe, ke, ve), bias, sc)
    res = AttentionResult(from_numpy(out_np, x_q), bound, float(eps), np.array(vmax), support, "tt_compressed",
                          counters, (), slack)
    if ref is not None:
        res.verify(ref)
    return res


def _induced(sc, xn_q, xn_k, dq, dk, dv, qn, kmax, vmax, e_q, e_k, e_v):
    """Per-row bound on the attention error caused by projection errors (module doc): compression ``δ`` plus
    computed-vs-exact errors ``e`` of the projected ``q̂`` (per row), ``k̂``, ``v̂`` (maxima over rows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        # score error against exact weights: compression (with |q_TT| <= |q̂| + e_q, |k_TT| <= |k̂| + e_k)
        # plus rounding (|q̂·k̂ - q_TT·k_TT| <= e_q |k̂| + |q_TT| e_k)
        sigma = abs(sc) * (xn_q * dq * (kmax + e_k) + (qn + e_q + xn_q * dq) * xn_k * dk
                           + e_q * kmax + (qn + e_q) * e_k)
        # |sum_j (p_ij - p̂_ij) v̂_j| <= 2 tanh(sigma / 2) max|v̂|  (bounds.logit_shift_bound),
        # |sum_j p_ij (v_j - v̂_j)| <= max_j |x_j| δ_v + e_v
        out = logit_shift_bound(sigma) * vmax + xn_k * dv + e_v
    return np.where(np.isnan(out), np.inf, out)


def _reference_slack(Xq, Xk, weights, projected, bias, sc):
    """Per-row bound on ``|ref_i - o_i|`` for the float64 reference of ``check=True``: the rounding of its
    projections ``X W`` (inner length ``D``: ``γ_D |X||W|`` plus the gradual-underflow term ``D·2^-1074``
    per entry, doubled) carried through the attention like the TT errors, plus the rounding of its dense
    evaluation."""
    qe, ke, ve = projected
    D = int(Xq.shape[1])
    g = _gamma_up(D)
    sub = float(np.finfo(np.float64).smallest_subnormal)
    # computed on nonnegative data: fl(Y) >= (1 - γ_{D+2}) Y up to underflow, which the doubled term absorbs
    e_q, e_k, e_v = (_row_norms_up(g * (np.abs(X) @ np.abs(W)) + 2 * D * sub, D + 2)
                     for X, W in ((Xq, weights[0]), (Xk, weights[1]), (Xk, weights[2])))
    qn, kmax, vmax = _rownorm(qe), _rownorm(ke).max(), _rownorm(ve).max()
    ind = _induced(sc, 0.0, 0.0, 0.0, 0.0, 0.0, qn, kmax, vmax, e_q, e_k.max(), e_v.max())
    rb = rounding_bound(qn, kmax, _max_abs_bias(bias), ke.shape[0], qe.shape[1], vmax, sc, np.float64,
                        d_v=int(ve.shape[1]), out_dtype=np.float64)
    return _up(ind + rb, 9)


def _underflow_up(T, transpose: bool = False) -> float:
    """Bound on the absolute error that gradual underflow adds to every entry of ``T.matmat`` (``T.rmatmat``
    with ``transpose``) in float64, which ``matmat_rounding_bound`` does not cover.

    A product of inner length ``K = r n`` (any order, with or without FMA) adds at most ``K·2^-1075`` per
    entry beyond its relative error (each product of two floats loses at most half the smallest
    subnormal; sums of subnormals are exact).  An absolute error ``ε`` in the input of a later core ``C``
    leaves at most ``ε·c`` with ``c = max_{m, r'} Σ_{r, n} |C[r, m, n, r']|``.  Hence
    ``U = Σ_i K_i 2^-1075 Π_{j>i} c_j``; the value returned is ``2U`` (covering the growth factors
    ``1 + γ_K`` and the rounding of this very computation) plus one smallest subnormal (so that it never
    rounds to 0).
    """
    sub = float(np.finfo(np.float64).smallest_subnormal)
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for c in T.cores:
            a = np.abs(np.asarray(to_numpy(c), dtype=np.float64))
            if transpose:
                a = a.transpose(0, 2, 1, 3)
            r, _, n, _ = a.shape
            c_max = float(a.sum(axis=(0, 2)).max()) if a.size else 0.0
            total = total * c_max + r * n * sub
    return float(total) * (1 + 1e-9) + sub


def _float64_cores(T):
    """The same operator with NumPy float64 cores (exact conversion): every product then runs in float64, and
    its rounding bound uses the float64 unit roundoff (float32 cores would be bounded with float32's)."""
    from ..tn import TTMatrix

    if all(isinstance(c, np.ndarray) and c.dtype == np.float64 for c in T.cores):
        return T
    return TTMatrix(tuple(np.asarray(to_numpy(c), dtype=np.float64) for c in T.cores), T.error_bound, T.eps)


def _max_abs_bias(bias) -> float:
    """Largest finite ``|bias_ij|`` (0 without a bias): the bias term of the score rounding."""
    if bias is None:
        return 0.0
    b = np.asarray(to_numpy(bias), dtype=np.float64)
    b = np.where(np.isfinite(b), np.abs(b), 0.0)
    return float(b.max()) if b.size else 0.0


# -- rigorous float64 evaluation of the TT attention-matrix terms ---------------------------------------------
_U = Fraction(1, 2**53)  # unit roundoff of float64


@lru_cache(maxsize=None)
def _gamma_up(K: int) -> float:
    """A float ``>= γ_K = K u / (1 - K u)`` (float64 ``u``), ``inf`` when ``K u >= 1/2``."""
    if K * _U >= Fraction(1, 2):
        return float("inf")
    return float(np.nextafter(float(K * _U / (1 - K * _U)), np.inf))


@lru_cache(maxsize=None)
def _inflation(K: int) -> float:
    """A float ``c >= 1 / ((1 - γ_K)(1 - u))`` (exact, rounded up); ``inf`` when ``K u >= 1/2``."""
    if K * _U >= Fraction(1, 2):
        return float("inf")
    g = K * _U / (1 - K * _U)
    return float(np.nextafter(float(1 / ((1 - g) * (1 - _U))), np.inf))


def _up(x, K: int) -> np.ndarray:
    """Upper bound on a nonnegative ``y`` whose float64 value ``x`` was computed with ``x >= (1 - γ_K) y``.

    ``fl(x c) >= x c (1 - u) = x / (1 - γ_K) >= y`` for ``c`` from :func:`_inflation` (no underflow).
    """
    return np.asarray(x, dtype=np.float64) * _inflation(K)


def _row_norms_up(Y, K: int) -> np.ndarray:
    """Upper bounds on the row norms ``|y_i|_2`` of a nonnegative ``y`` with computed ``Y >= (1 - γ_K) y``.

    The computed ``sqrt(Σ_c Y_ic²)`` over ``m`` columns is ``>= (1 - γ_m)^{1/2} (1 - u) |Y_i| >=
    (1 - γ_{K+m+1}) |y_i|`` (Higham Lemma 3.3), hence :func:`_up` with ``K + m + 1``.
    """
    Y = np.asarray(Y, dtype=np.float64)
    # scaled by a power of two per row (exact) so that the squares of tiny rows do not underflow; squares
    # below 2^-1022 of the scaled entries (at most 1 each) change the sum by far less than one more rounding
    _, ex = np.frexp(np.abs(Y).max(axis=1, initial=0.0))
    Ys = np.ldexp(Y, -ex[:, None])
    return _up(np.ldexp(np.sqrt(np.einsum("ij,ij->i", Ys, Ys)), ex), K + int(Y.shape[1]) + 2)


@dataclass(frozen=True)
class _TTAttention:
    """``fl(P̃ v̂)`` with per-row bounds on its contraction rounding and on ``|(P̃ - P̂) v̂|_2`` (module doc)."""

    output: np.ndarray
    truncation: np.ndarray
    contraction: np.ndarray
    matrix: Any  # the TTMatrix P̃


def _tt_attention_matrix(q, k, v, mask, bias, sc, causal, tt_eps) -> _TTAttention:
    from ..tn import TTMatrix
    from .dense import dense

    n_k = int(k.shape[0])
    eye = np.eye(n_k)
    P = np.asarray(dense(q, k, eye, mask=mask, bias=bias, scale=sc, causal=causal), dtype=np.float64)  # P̂
    T = TTMatrix.from_dense(P, eps=tt_eps)
    v = np.asarray(v, dtype=np.float64)
    out = np.asarray(to_numpy(T.matmat(v)), dtype=np.float64)
    # |fl(P̃ v̂) - P̃ v̂| <= E_v + U entrywise (a rigorous upper bound already: K = 0); U = gradual underflow
    U = _underflow_up(T)
    sub = float(np.finfo(np.float64).smallest_subnormal)
    contraction = _row_norms_up(T.matmat_rounding_bound(v) + U, 0)
    # |(P̃ - P̂) v̂| <= |fl(D v̂)| + ((γ_{n_k+1} |D| + E_I + U) |v̂|) + 2 n_k 2^-1074 with D = fl(fl(P̃ I) - P̂),
    # |fl(P̃ I) - P̃| <= E_I + U: γ_{n_k} covers fl(D v̂), u/(1-u) the subtraction, the last term the underflow
    # of fl(D v̂) and of the evaluation of H |v̂|; evaluated with K = n_k + 4 roundings on nonnegative data
    D = np.asarray(to_numpy(T.matmat(eye)), dtype=np.float64) - P
    H = _gamma_up(n_k + 1) * np.abs(D) + T.matmat_rounding_bound(eye) + U
    Y = np.abs(D @ v) + H @ np.abs(v) + 2 * n_k * sub
    truncation = _row_norms_up(Y, n_k + 4)
    return _TTAttention(out, truncation, contraction, T)
