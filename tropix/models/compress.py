"""Training-free compression of a model's attention weights, saved as safetensors with a JSON manifest.

Methods (``d`` = model width, ``H`` heads of width ``dh``, per layer):

``svd``
    Truncated SVD of each of W_Q, W_K, W_V, W_O (``d × d``) — the baseline every other method is
    compared with at equal parameter count.
``tt``
    Each matrix as a TT-matrix (:meth:`tropix.tn.TTMatrix.from_dense`, rows and columns factorised
    into four balanced factors by :func:`tropix.tn.factorize`, e.g. 384 = 6·4·4·4), with the certified
    δ-truncation.
``tucker``
    The layer's 4 × H × d × dh tensor (W_Q^h, W_K^h, W_V^h, (W_O^h)ᵀ of all heads stacked) by Tucker
    (:func:`tropix.tn.tucker`): factor matrices for the head, model and head-width modes shared by the
    four kinds of matrix.
``tt-heads``
    The same stacked tensor (``d`` split as 16 · 24) as one tensor train (:func:`tropix.tn.tt_svd`).
``bilinear``
    What attention actually depends on: per head the bilinear score form
    ``[W_Q^h; b_Q^h][W_K^h; b_K^h]ᵀ`` (``(d+1) × (d+1)``, rank ≤ dh; the bias row makes it exact) and the
    value–output map ``W_V^h W_O^h`` (with ``b_V^h W_O^h`` folded into ``b_O``, exact because attention
    rows sum to one), each truncated by SVD.  Compressed heads run with zero-padded head width.

``eps`` is the relative Frobenius tolerance of every compressed object (matrix, stacked tensor or
form); ``ratio`` asks for a parameter ratio instead (compressed / original W_Q, W_K, W_V, W_O
parameters; biases are kept and not counted) and is met by bisection on ``eps``.

Examples
--------
>>> from tropix.models import load_model
>>> m = load_model()
>>> c = compress(m, "svd", eps=0.5)
>>> round(c.param_ratio, 3), c.max_rel_error <= 0.5
(0.5, True)
>>> c.model().config.n_layers
6
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._repr import compact_repr
from ..errors import ArgumentTypeError, ShapeError, ToleranceError
from ..tropical._args import check_real
from .architectures import ATTN_KEYS
from .errors import ModelNotFoundError, UnsupportedModelError

__all__ = ["METHODS", "CompressedAttention", "compress", "save_compressed", "load_compressed", "svd_at_params"]

METHODS = ("svd", "tt", "tucker", "tt-heads", "bilinear")
_FORMAT = "tropix-compressed-attention/1"
_MATS = ("W_Q", "W_K", "W_V", "W_O")


@dataclass(frozen=True)
class CompressedAttention:
    """Compressed attention weights of every layer.

    Attributes
    ----------
    method, setting : str
        Method name and the tolerance/ratio that produced it.
    tensors : dict
        Every stored tensor (float32 NumPy), as written to safetensors.
    meta : dict
        What :func:`reconstruct` needs besides the tensors (JSON-serialisable).
    n_params, n_params_original : int
        Stored numbers of the compressed W_Q, W_K, W_V, W_O (biases excluded) and of the originals.
    rel_errors : dict
        ``"layer.i.W_Q"`` (or ``"layer.i.head.h.qk"`` for bilinear forms) → relative Frobenius error.
    bounds : dict
        Certified relative bounds where the method gives one (same keys or per layer).
    """

    method: str
    setting: str
    tensors: dict = field(repr=False)
    meta: dict = field(repr=False)
    n_params: int
    n_params_original: int
    rel_errors: dict = field(repr=False)
    bounds: dict = field(repr=False, default_factory=dict)
    base: object = field(repr=False, default=None)
    __repr__ = compact_repr

    @property
    def param_ratio(self) -> float:
        return self.n_params / self.n_params_original

    @property
    def max_rel_error(self) -> float:
        return max(self.rel_errors.values()) if self.rel_errors else 0.0

    @property
    def mean_rel_error(self) -> float:
        return float(np.mean(list(self.rel_errors.values()))) if self.rel_errors else 0.0

    def attention(self) -> list[dict]:
        """Canonical attention weights of every layer (torch float32), reconstructed from the tensors."""
        return reconstruct(self.tensors, self.meta)

    def model(self, base=None):
        """The base model running with these attention weights."""
        base = base if base is not None else self.base
        if base is None:
            raise ModelNotFoundError("no base model attached: pass the model these weights were compressed from")
        return base.with_attention(self.attention(), source=f"{base.source} [{self.method} {self.setting}]")


# ---------------------------------------------------------------------------------------------- helpers
def _np64(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _f32(a) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def _rank_for(s: np.ndarray, eps: float) -> int:
    """Smallest r with sqrt(sum_{i>=r} s_i^2) <= eps * ||s||."""
    tail = np.sqrt(np.cumsum((s ** 2)[::-1])[::-1])  # tail[r] = norm of s[r:]
    ok = np.flatnonzero(np.append(tail, 0.0) <= eps * np.linalg.norm(s))
    return int(ok[0])


def _rel(a, b) -> float:
    n = np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / n) if n else 0.0


def _layers(model):
    L, H, dh = model.config.n_layers, model.config.n_heads, model.config.head_dim
    return L, H, dh, [{k: _np64(v) for k, v in a.items()} for a in model.attention]


def _stack(a: dict, H: int, dh: int) -> np.ndarray:
    """4 × H × d × dh tensor of W_Q^h, W_K^h, W_V^h, (W_O^h)ᵀ."""
    d = a["W_Q"].shape[0]
    out = np.empty((4, H, d, dh))
    for m, key in enumerate(_MATS):
        W = a[key] if key != "W_O" else a[key].T
        out[m] = W.reshape(d, H, dh).transpose(1, 0, 2)
    return out


def _unstack(T: np.ndarray, a: dict) -> dict:
    new = dict(a)
    d = T.shape[2]
    for m, key in enumerate(_MATS):
        W = T[m].transpose(1, 0, 2).reshape(d, -1)
        new[key] = W if key != "W_O" else W.T
    return new


# ---------------------------------------------------------------------------------------------- methods
_SVD_CACHE: dict = {}


def _svds(model) -> dict:
    """SVDs of every W_Q, W_K, W_V, W_O of ``model`` (cached for the last two models: the sweeps and the
    equal-parameter baselines factor the same matrices many times)."""
    key = id(model.attention)
    hit = _SVD_CACHE.get(key)
    if hit is not None and hit[0] is model.attention:
        return hit[1]
    out = {}
    for i, a in enumerate(model.attention):
        for k in _MATS:
            out[(i, k)] = np.linalg.svd(_np64(a[k]), full_matrices=False)
    while len(_SVD_CACHE) >= 2:
        _SVD_CACHE.pop(next(iter(_SVD_CACHE)))
    _SVD_CACHE[key] = (model.attention, out)
    return out


def _svd(model, eps):
    L, H, dh, layers = _layers(model)
    tensors, meta, errs = {}, {"layers": L}, {}
    n = 0
    svds = _svds(model)
    for i, a in enumerate(layers):
        for key in _MATS:
            U, s, Vt = svds[(i, key)]
            r = _rank_for(s, eps)
            n += _store_lowrank(tensors, errs, f"layer.{i}.{key}", a[key], U, s, Vt, r)
    return tensors, meta, errs, n, {}


def svd_at_params(model, n_params: int):
    """Truncated SVD with one rank for every W_Q, W_K, W_V, W_O, the largest whose parameters fit in ``n_params``
    (a real number ≥ 0, else :class:`~tropix.errors.ToleranceError` or :class:`~tropix.errors.ArgumentTypeError`).

    Examples
    --------
    >>> from tropix.models import load_model
    >>> c = svd_at_params(load_model(), 24 * 2 * 384 * 10)
    >>> c.n_params, c.setting
    (184320, 'rank 10')
    """
    n_params = check_real(n_params, "n_params", minimum=0)  # (NaN, None, "x": raw ValueError / TypeError)
    L, H, dh, layers = _layers(model)
    d = model.config.d_model
    r = max(0, min(d, int(n_params // (L * 4 * 2 * d))))
    if r * 2 * d >= d * d:  # at that budget the dense matrix itself fits
        r = d
    tensors, errs, n = {}, {}, 0
    svds = _svds(model)
    for i, a in enumerate(layers):
        for key in _MATS:
            U, s, Vt = svds[(i, key)]
            n += _store_lowrank(tensors, errs, f"layer.{i}.{key}", a[key], U, s, Vt, r)
    return _finish(model, "svd", f"rank {r}", tensors, {"layers": L}, errs, n, {})


def _store_lowrank(tensors, errs, name, W, U, s, Vt, r) -> int:
    """Store ``W ≈ A @ B`` of rank ``r`` (or ``W`` itself when that is no larger); return the parameter count."""
    m, k = W.shape
    if r * (m + k) >= m * k:
        tensors[f"{name}.A"] = _f32(W)
        errs[name] = 0.0
        return m * k
    A, B = U[:, :r] * s[:r], Vt[:r]
    tensors[f"{name}.A"], tensors[f"{name}.B"] = _f32(A), _f32(B)
    errs[name] = _rel(A @ B, W)
    return A.size + B.size


def _tt(model, eps):
    from ..tn import TTMatrix, factorize

    L, H, dh, layers = _layers(model)
    tensors, meta, errs, bounds = {}, {"layers": L, "cores": {}}, {}, {}
    n = 0
    dims = factorize(model.config.d_model, 4)
    for i, a in enumerate(layers):
        for key in _MATS:
            T = TTMatrix.from_dense(a[key], dims, dims, eps=eps)
            name = f"layer.{i}.{key}"
            meta["cores"][name] = len(T.cores)
            stored = [_f32(c) for c in T.cores]
            for k, c in enumerate(stored):
                tensors[f"{name}.core.{k}"] = c
            errs[name] = _rel(np.asarray(T.to_dense()), a[key])
            bounds[name] = _ttmatrix_stored_bound(a[key], stored, dims) / float(np.linalg.norm(a[key]))
            n += T.n_params
    return tensors, meta, errs, n, bounds


def _ttmatrix_stored_bound(W, cores, dims) -> float:
    """Certified ``|W - W_TT|_F`` for the TT-matrix with the stored ``cores`` ``(r, m_k, n_k, r')``: the same
    train over merged indices ``(m_k, n_k)`` against ``W`` reshaped to ``(m_1 n_1, …, m_d n_d)``."""
    from ..tn._linalg import tt_residual_bound

    d = len(dims)
    A = np.asarray(W, dtype=np.float64).reshape(tuple(dims) + tuple(dims))
    A = A.transpose([t for k in range(d) for t in (k, d + k)]).reshape([m * m for m in dims])
    return tt_residual_bound(A, [c.reshape(c.shape[0], c.shape[1] * c.shape[2], c.shape[3]) for c in cores])


def _tucker(model, eps):
    from ..tn import tucker
    from ..tn.tucker import tucker_residual_bound

    L, H, dh, layers = _layers(model)
    tensors, meta, errs, bounds = {}, {"layers": L}, {}, {}
    n = 0
    for i, a in enumerate(layers):
        T = _stack(a, H, dh)
        dec = tucker(T, eps=eps, shared_across=(0,))
        core32 = _f32(dec.core)
        factors32 = [None if U is None else _f32(U) for U in dec.factors]
        tensors[f"layer.{i}.tucker.core"] = core32
        for m, U in enumerate(factors32):
            if U is not None:
                tensors[f"layer.{i}.tucker.factor.{m}"] = U
        R = _unstack(np.asarray(dec.to_dense()), a)
        for key in _MATS:
            errs[f"layer.{i}.{key}"] = _rel(R[key], a[key])
        # certified for what is stored (float32), not for the float64 decomposition
        bounds[f"layer.{i}"] = tucker_residual_bound(T, core32, factors32) / float(np.linalg.norm(T))
        n += dec.n_params
    return tensors, meta, errs, n, bounds


def _tt_heads(model, eps):
    from ..tn import tt_svd
    from ..tn._linalg import tt_residual_bound

    L, H, dh, layers = _layers(model)
    d = model.config.d_model
    split = _split(d)
    tensors, meta, errs, bounds = {}, {"layers": L, "split": list(split), "cores": 0}, {}, {}
    n = 0
    for i, a in enumerate(layers):
        T = _stack(a, H, dh)
        tt = tt_svd(T.reshape((4, H) + split + (dh,)), eps=eps)
        meta["cores"] = len(tt.cores)
        stored = [_f32(c) for c in tt.cores]
        for k, c in enumerate(stored):
            tensors[f"layer.{i}.tt.core.{k}"] = c
        R = _unstack(np.asarray(tt.to_dense()).reshape(4, H, d, dh), a)
        for key in _MATS:
            errs[f"layer.{i}.{key}"] = _rel(R[key], a[key])
        # certified for the stored float32 cores
        bounds[f"layer.{i}"] = tt_residual_bound(T.reshape((4, H) + split + (dh,)), stored) / float(np.linalg.norm(T))
        n += tt.n_params
    return tensors, meta, errs, n, bounds


def _split(d: int) -> tuple:
    best = (1, d)
    for p in range(1, int(math.isqrt(d)) + 1):
        if d % p == 0:
            best = (p, d // p)
    return best


def _bilinear(model, eps):
    L, H, dh, layers = _layers(model)
    tensors, meta, errs = {}, {"layers": L, "heads": H, "head_dim": dh}, {}
    n = 0
    for i, a in enumerate(layers):
        bO = a["b_O"].copy()
        for h in range(H):
            c = slice(h * dh, (h + 1) * dh)
            Qa = np.vstack([a["W_Q"][:, c], a["b_Q"][c][None]])  # (d+1) x dh
            Ka = np.vstack([a["W_K"][:, c], a["b_K"][c][None]])
            M = Qa @ Ka.T
            # SVD of a product of two d x dh factors through the small dh x dh core
            Uq, Rq = np.linalg.qr(Qa)
            Uk, Rk = np.linalg.qr(Ka)
            u, s, vt = np.linalg.svd(Rq @ Rk.T)
            r = _rank_for(s, eps)
            A, B = (Uq @ u[:, :r]) * s[:r], Uk @ vt[:r].T
            tensors[f"layer.{i}.head.{h}.qk.A"], tensors[f"layer.{i}.head.{h}.qk.B"] = _f32(A), _f32(B)
            # (of the stored float32 factors, which the model runs with)
            errs[f"layer.{i}.head.{h}.qk"] = _rel(_f32(A).astype(np.float64) @ _f32(B).astype(np.float64).T, M)
            Wv, Wo = a["W_V"][:, c], a["W_O"][c, :]
            bO = bO + a["b_V"][c] @ Wo
            Uv, Rv = np.linalg.qr(Wv)
            Uo, Ro = np.linalg.qr(Wo.T)
            u, s, vt = np.linalg.svd(Rv @ Ro.T)
            r2 = _rank_for(s, eps)
            C, D = (Uv @ u[:, :r2]) * s[:r2], Uo @ vt[:r2].T
            tensors[f"layer.{i}.head.{h}.ov.A"], tensors[f"layer.{i}.head.{h}.ov.B"] = _f32(C), _f32(D)
            errs[f"layer.{i}.head.{h}.ov"] = _rel(_f32(C).astype(np.float64) @ _f32(D).astype(np.float64).T, Wv @ Wo)
            n += A.size - r + B.size - r + C.size + D.size  # bias rows of A, B are biases, not weights
        tensors[f"layer.{i}.b_O"] = _f32(bO)
    return tensors, meta, errs, n, {}


_IMPL = {"svd": _svd, "tt": _tt, "tucker": _tucker, "tt-heads": _tt_heads, "bilinear": _bilinear}


# ---------------------------------------------------------------------------------------------- rebuild
def reconstruct(tensors: dict, meta: dict) -> list[dict]:
    """Canonical attention weights (torch float32, one dict per layer) from stored tensors and meta.

    Biases other than those the method rewrites are taken from ``meta["biases"]``' tensors
    (``layer.i.b_Q`` ...), which :func:`compress` always stores.
    """
    method = meta["method"]
    L = meta["layers"]
    g = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
    out = []
    for i in range(L):
        a = {k: g[f"layer.{i}.{k}"] for k in ("b_Q", "b_K", "b_V", "b_O")}
        if method == "svd":
            for key in _MATS:
                A, B = g[f"layer.{i}.{key}.A"], g.get(f"layer.{i}.{key}.B")
                a[key] = A if B is None else A @ B  # no B: stored dense (rank too high to pay)
        elif method == "tt":
            from ..tn import TTMatrix

            for key in _MATS:
                name = f"layer.{i}.{key}"
                cores = tuple(g[f"{name}.core.{k}"] for k in range(meta["cores"][name]))
                a[key] = np.asarray(TTMatrix(cores).to_dense())
        elif method in ("tucker", "tt-heads"):
            if method == "tucker":
                T = g[f"layer.{i}.tucker.core"]
                for m in range(T.ndim):
                    U = g.get(f"layer.{i}.tucker.factor.{m}")
                    if U is not None:
                        T = np.moveaxis(np.tensordot(U, T, axes=(1, m)), 0, m)
            else:
                cores = [g[f"layer.{i}.tt.core.{k}"] for k in range(meta["cores"])]
                T = cores[0]
                for c in cores[1:]:
                    T = np.tensordot(T, c, axes=(-1, 0))
                T = T.reshape(T.shape[1:-1])
            d = meta["d_model"]
            T = T.reshape(4, meta["heads"], d, meta["head_dim"])
            a = _unstack(T, a)
        elif method == "bilinear":
            H, dh, d = meta["heads"], meta["head_dim"], meta["d_model"]
            WQ, WK, WV, WO = np.zeros((d, H * dh)), np.zeros((d, H * dh)), np.zeros((d, H * dh)), np.zeros((H * dh, d))
            bQ, bK, bV = np.zeros(H * dh), np.zeros(H * dh), np.zeros(H * dh)
            for h in range(H):
                A, B = g[f"layer.{i}.head.{h}.qk.A"], g[f"layer.{i}.head.{h}.qk.B"]
                C, D = g[f"layer.{i}.head.{h}.ov.A"], g[f"layer.{i}.head.{h}.ov.B"]
                r, r2 = A.shape[1], C.shape[1]
                if r > dh or r2 > dh:
                    raise UnsupportedModelError(f"layer {i} head {h}: rank {max(r, r2)} exceeds the head width {dh}")
                s = h * dh
                WQ[:, s:s + r], bQ[s:s + r] = A[:d], A[d]
                WK[:, s:s + r], bK[s:s + r] = B[:d], B[d]
                WV[:, s:s + r2], WO[s:s + r2, :] = C, D.T
            a.update(W_Q=WQ, W_K=WK, W_V=WV, W_O=WO, b_Q=bQ, b_K=bK, b_V=bV, b_O=g[f"layer.{i}.b_O"])
        else:
            raise UnsupportedModelError(f"unknown compression method {method!r} in the manifest")
        out.append({k: torch.as_tensor(a[k], dtype=torch.float32) for k in ATTN_KEYS})
    return out


def _finish(model, method, setting, tensors, meta, errs, n, bounds) -> CompressedAttention:
    meta = dict(meta, method=method, heads=model.config.n_heads, head_dim=model.config.head_dim,
                d_model=model.config.d_model)
    for i, a in enumerate(model.attention):
        for k in ("b_Q", "b_K", "b_V", "b_O"):
            tensors.setdefault(f"layer.{i}.{k}", _f32(_np64(a[k])))
    if method != "bilinear":
        errs, bounds = _stored_errors(model, reconstruct(tensors, meta), bounds)
    return CompressedAttention(method, setting, tensors, meta, int(n), model.n_attention_params, errs, bounds, model)


def _stored_errors(model, rebuilt, bounds):
    """Relative errors of the weights the compressed model runs with (the float32 reconstruction of the stored
    tensors, :func:`reconstruct`), per matrix, and certified bounds on them under the keys of ``bounds`` (a
    matrix ``layer.i.W_Q`` or a layer ``layer.i``, its four matrices together).

    The bounds are the measured errors made rigorous: in float64 each difference ``fl(r - w)`` errs by at
    most ``u |r - w|`` and a sum of ``N`` squares by ``γ_N`` (Higham), so ``sqrt(Σ fl(r - w)²) (1 + (N + 8) u)``
    bounds the exact norm and ``sqrt(Σ w²) (1 - (N + 8) u)`` the reference's from below.  (The certificates
    of the decompositions are for the exact products of the stored cores; the float32 rounding of the
    reconstruction, about ``2^-24`` of the weights' norm, was outside them: measured 5.5e-8 above 5.1e-8.)"""
    u = 2.0**-53
    errs, out = {}, {}
    sq: dict = {}
    for i, (a, r) in enumerate(zip(model.attention, rebuilt)):
        for key in _MATS:
            w, rr = _np64(a[key]), _np64(r[key])
            de, dw = float(np.sum(np.square(rr - w))), float(np.sum(np.square(w)))
            errs[f"layer.{i}.{key}"] = math.sqrt(de / dw) if dw else 0.0
            for name in (f"layer.{i}.{key}", f"layer.{i}"):
                e0, w0, n0 = sq.get(name, (0.0, 0.0, 0))
                sq[name] = (e0 + de, w0 + dw, n0 + w.size)
    for name in bounds:
        de, dw, N = sq[name]
        g = (N + 8) * u
        out[name] = math.sqrt(de) * (1 + g) / (math.sqrt(dw) * (1 - g)) if dw else (0.0 if de == 0 else math.inf)
    return errs, out


def _run(model, method: str, eps: float) -> CompressedAttention:
    tensors, meta, errs, n, bounds = _IMPL[method](model, eps)
    return _finish(model, method, f"eps {eps:g}", tensors, meta, errs, n, bounds)


def check_setting(method: str, eps: float | None, ratio: float | None) -> None:
    """The checks of :func:`compress` on its arguments, without compressing (ShapeError, ToleranceError,
    ArgumentTypeError for a method that is not a string or an ``eps``/``ratio`` that is not a real number: they
    were raw TypeErrors from ``in`` and ``<``)."""
    if not isinstance(method, str):
        raise ArgumentTypeError(f"method must be a string, one of {', '.join(METHODS)}; got {type(method).__name__}")
    if method not in _IMPL:
        raise ShapeError(f"unknown compression method {method!r}; choose one of {', '.join(METHODS)}")
    if (eps is None) == (ratio is None):
        raise ToleranceError("give exactly one of eps and ratio")
    check_real(eps, "eps", none_ok=True)
    check_real(ratio, "ratio", none_ok=True)
    if eps is not None and not 0 < eps < 1:
        raise ToleranceError(f"eps must be in (0, 1), got {eps}")
    if ratio is not None and not 0 < ratio <= 1:
        raise ToleranceError(f"ratio must be in (0, 1], got {ratio}")


def compress(model, method: str = "svd", eps: float | None = None, ratio: float | None = None) -> CompressedAttention:
    """Compress every layer's attention weights of ``model`` with ``method`` (see the module docstring).

    Parameters
    ----------
    method : {"svd", "tt", "tucker", "tt-heads", "bilinear"}
    eps : float in (0, 1), optional
        Relative Frobenius tolerance of each compressed object.
    ratio : float in (0, 1], optional
        Target parameter ratio instead of ``eps`` (the largest-error ``eps`` whose ratio is ≤ the target,
        found by bisection; for ``svd`` as well).

    Raises
    ------
    ToleranceError
        ``eps`` outside (0, 1), ``ratio`` outside (0, 1], or both/neither given.
    ShapeError
        Unknown method.
    ArgumentTypeError
        A method that is not a string, or ``eps``/``ratio`` that is not a real number.
    """
    check_setting(method, eps, ratio)
    if eps is not None:
        return _run(model, method, float(eps))
    lo, hi = 1e-4, 0.999  # ratio is non-increasing in eps
    best = _run(model, method, hi)
    if best.param_ratio > ratio:
        return _with_setting(best, f"ratio {ratio:g} (unreachable; eps {hi:g})")
    for _ in range(7):
        mid = math.sqrt(lo * hi)
        c = _run(model, method, mid)
        if c.param_ratio <= ratio:
            best, hi = c, mid
        else:
            lo = mid
    return _with_setting(best, f"ratio {ratio:g} ({best.setting})")


def _with_setting(c: CompressedAttention, setting: str) -> CompressedAttention:
    from dataclasses import replace

    return replace(c, setting=setting)


# ---------------------------------------------------------------------------------------------- files
def save_compressed(c: CompressedAttention, out_dir, base_model: str | None = None, extra: dict | None = None) -> Path:
    """Write ``attention.safetensors`` and ``manifest.json`` into ``out_dir``; returns the directory.

    ``base_model`` is recorded in the manifest (the name or path :func:`load_compressed` reloads); by default
    the model that was compressed (its directory, or the embedded default's name).
    """
    from safetensors.numpy import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: _f32(v) for k, v in c.tensors.items()}, str(out / "attention.safetensors"))
    manifest = {
        "format": _FORMAT, "base_model": base_model or _base_name(c.base), "method": c.method, "setting": c.setting,
        "meta": c.meta, "n_params": c.n_params, "n_params_original": c.n_params_original,
        "param_ratio": c.param_ratio, "rel_errors": c.rel_errors, "certified_rel_bounds": c.bounds,
        **(extra or {}),
    }
    (out / "manifest.json").write_text(json.dumps(_plain(manifest), indent=1, allow_nan=False) + "\n")
    return out


def _base_name(base) -> str:
    """What :func:`load_compressed` reloads for the model ``base``: the embedded default by name (its
    directory lies inside a virtual environment), any other model by the directory or file it came from
    (compressing ``--model mydir`` recorded the default, and reloading put the attention on the wrong model)."""
    from .model import DEFAULT_MODEL, default_model_path

    src = str(getattr(base, "source", "") or "")
    src = src.split(" [", 1)[0]  # (a compressed model's source: its base, then what was done to it)
    try:
        if not src or Path(src).resolve() == default_model_path().resolve():
            return DEFAULT_MODEL
    except Exception:  # noqa: BLE001 - the default model missing: record the source as it is
        pass
    # (absolute: a relative directory would be read against the working directory of the later load)
    return str(Path(src).resolve()) if src else DEFAULT_MODEL


def _plain(x):
    """JSON-ready copy: NumPy scalars to Python, non-finite floats to strings, tuples to lists."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else ("nan" if f != f else ("inf" if f > 0 else "-inf"))
    if isinstance(x, Path):
        return str(x)
    return x


def load_compressed(path, base=None):
    """The model with the compressed attention of a :func:`save_compressed` directory.

    ``base`` is the uncompressed model (loaded from the manifest's ``base_model`` when omitted).

    Raises
    ------
    ModelNotFoundError
        No manifest or weights in ``path``.
    UnsupportedModelError
        A manifest of another format, or tensors that do not fit the base model.
    """
    from safetensors.numpy import load_file

    from .model import load_model

    if not isinstance(path, (str, os.PathLike)):  # (was pathlib's raw TypeError)
        raise ArgumentTypeError(f"path must be a directory path, got {type(path).__name__}")
    p = Path(path)
    man, wts = p / "manifest.json", p / "attention.safetensors"
    if not man.is_file() or not wts.is_file():
        raise ModelNotFoundError(f"{p} is not a compressed model directory (needs manifest.json and attention.safetensors)")
    # a malformed directory raises UnsupportedModelError (missing keys, a non-object manifest, non-UTF-8 text, a
    # truncated or mismatched safetensors file were raw KeyError/AttributeError/UnicodeDecodeError/SafetensorError)
    try:
        manifest = json.loads(man.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UnsupportedModelError(f"cannot read {man}: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        fmt = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise UnsupportedModelError(f"{man} has format {fmt!r}, expected {_FORMAT!r}")
    missing = [k for k in ("base_model", "method", "setting", "meta") if k not in manifest]
    if missing or not isinstance(manifest["meta"], dict):
        raise UnsupportedModelError(f"{man} lacks {', '.join(missing) or 'a meta object'}")
    base = base if base is not None else load_model(manifest["base_model"])
    meta = manifest["meta"]
    if meta.get("layers") != base.config.n_layers or meta.get("d_model") != base.config.d_model:
        raise UnsupportedModelError(f"{p} was compressed from a model with {meta.get('layers')} layers of width "
                                    f"{meta.get('d_model')}, not {base.config.n_layers} x {base.config.d_model}")
    # the per-head methods (tucker, tt-heads, bilinear) store heads of the compressed model's split: loaded onto
    # a model of the same width split into other heads, they would run as weights of other heads, silently
    split = (meta.get("heads"), meta.get("head_dim"))
    if split != (None, None) and split != (base.config.n_heads, base.config.head_dim):
        raise UnsupportedModelError(f"{p} was compressed from a model of {split[0]} heads of width {split[1]}, not "
                                    f"{base.config.n_heads} x {base.config.head_dim}")
    from safetensors import SafetensorError

    try:
        tensors = load_file(str(wts))
    except (SafetensorError, OSError, ValueError) as err:
        raise UnsupportedModelError(f"cannot read safetensors file {wts}: {err}") from err
    try:
        attention = reconstruct(tensors, meta)
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise UnsupportedModelError(f"{wts} does not match its manifest ({type(err).__name__}: {err})") from err
    return base.with_attention(attention, source=f"{base.source} [{manifest['method']} {manifest['setting']}]")
