"""Backend-generic dense linear algebra for the tensor-network modules (SVD, QR, norms, truncation rules).

Everything here takes its array namespace from the input, so NumPy, torch (with autograd) and
array-api-strict work alike.  Tensor decompositions are floating-point algorithms: exact (integer or
object) input is converted to ``float64`` first by :func:`as_float`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .._array import asarray, check_no_nan, check_nonempty, namespace, to_exact_scalar, to_numpy
from ..errors import ShapeError, ToleranceError

__all__ = [
    "as_float",
    "svd",
    "qr",
    "fro_norm",
    "truncation_rank",
    "truncated_split",
    "check_eps",
    "check_max_rank",
    "conversion_error",
    "tt_residual_bound",
]

_EPS_MACH = float(np.finfo(np.float64).eps)


def as_float(x: Any, name: str = "tensor"):
    """``x`` as a floating-point array of its own library (lists and exact arrays become ``float64``)."""
    if isinstance(x, (list, tuple)) or not hasattr(x, "shape"):
        x = asarray(x, name=name)
    if isinstance(x, np.ndarray):
        if x.dtype == object or not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
    else:
        xp = namespace(x)
        if not xp.isdtype(x.dtype, "real floating"):
            x = xp.astype(x, xp.float64)
    check_no_nan(x, name)
    check_nonempty(x, name)
    return x


def svd(x):
    """Thin SVD ``x = U @ diag(S) @ Vh`` of a matrix, in the library of ``x``.

    Very wide (tall) matrices are first reduced by a QR factorisation of ``xᵀ`` (``x``), which is backward
    stable and several times faster than a direct SVD of an ``m × n`` matrix with ``n ≫ m``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal((3, 40))
    >>> U, S, Vh = svd(x)
    >>> bool(np.allclose((U * S) @ Vh, x)), bool(np.allclose(Vh @ Vh.T, np.eye(3)))
    (True, True)
    """
    xp = namespace(x)
    m, n = (int(s) for s in x.shape)
    if n >= 4 * m and m > 0:
        Q, R = xp.linalg.qr(xp.matrix_transpose(x))  # x = Rᵀ Qᵀ
        U, S, Vr = xp.linalg.svd(xp.matrix_transpose(R), full_matrices=False)
        return U, S, Vr @ xp.matrix_transpose(Q)
    if m >= 4 * n and n > 0:
        Q, R = xp.linalg.qr(x)
        Ur, S, Vh = xp.linalg.svd(R, full_matrices=False)
        return Q @ Ur, S, Vh
    U, S, Vh = xp.linalg.svd(x, full_matrices=False)
    return U, S, Vh


def qr(x):
    """Reduced QR decomposition of a matrix."""
    xp = namespace(x)
    Q, R = xp.linalg.qr(x)
    return Q, R


def fro_norm(x) -> Any:
    """Frobenius norm of an array of any shape (a 0-d array of the input's library)."""
    xp = namespace(x)
    return xp.sqrt(xp.sum(x * x))


def truncation_rank(S, budget_sq: float, max_rank: int | None) -> tuple[int, float]:
    """Smallest rank ``r ≥ 1`` whose discarded tail ``Σ_{i≥r} S_i²`` is at most ``budget_sq``, capped at ``max_rank``.

    Returns ``(r, discarded_sq)`` where ``discarded_sq`` is the tail actually discarded (larger than the
    budget only when the cap binds).

    Examples
    --------
    >>> import numpy as np
    >>> truncation_rank(np.array([3.0, 2.0, 1.0]), 1.0, None)
    (2, 1.0)
    >>> truncation_rank(np.array([3.0, 2.0, 1.0]), 1.0, 1)
    (1, 5.0)
    """
    s = np.asarray(to_numpy(S), dtype=np.float64)
    n = s.shape[0]
    if n == 0:
        return 1, 0.0
    sq = s * s
    tail = np.concatenate([np.cumsum(sq[::-1])[::-1], [0.0]])  # tail[r] = sum_{i >= r} s_i^2
    ok = np.nonzero(tail[1:] <= budget_sq)[0]
    r = int(ok[0]) + 1 if ok.size else n
    if max_rank is not None:
        r = min(r, int(max_rank))
    r = max(1, min(r, n))
    return r, float(tail[r])


def truncated_split(C, budget_sq: float, max_rank: int | None):
    """Split a matrix ``C ≈ U @ R`` with orthonormal columns ``U`` (``R = Uᵀ C = S Vᵀ``) and a certified loss.

    Returns ``(U, R, discarded_sq)`` where ``‖C − U R‖²_F ≤ discarded_sq`` (up to the rounding of the
    SVD itself) and ``discarded_sq ≤ budget_sq`` unless ``max_rank`` binds.

    For wide matrices (``n ≥ 8m``) whose budget is far above rounding level, the left factor comes from
    the eigen-decomposition of the Gram matrix ``C Cᵀ`` (one BLAS pass over ``C`` instead of a QR or SVD).
    Eigenvalues of the computed Gram matrix may be off by ``‖ΔG‖₂ ≤ (n + 2m)·u·‖C‖²_F`` (Weyl's
    inequality with the worst-case rounding bound of the product), so that amount per discarded
    eigenvalue is added to ``discarded_sq``; otherwise the thin SVD is used.
    """
    xp = namespace(C)
    m, n = (int(s) for s in C.shape)
    if n >= 8 * m and m > 1:
        nrm_sq = float(to_numpy(xp.sum(C * C)))
        per = (n + 2 * m) * _EPS_MACH * nrm_sq
        if budget_sq >= 1e4 * m * per:
            G = C @ xp.matrix_transpose(C)
            w, V = xp.linalg.eigh(G)
            w = xp.flip(w, axis=0)
            V = xp.flip(V, axis=1)
            lam = np.clip(np.asarray(to_numpy(w), dtype=np.float64), 0.0, None)
            s = np.sqrt(lam)
            r, disc = truncation_rank(s, budget_sq - m * per, max_rank)
            U = V[:, :r]
            return U, xp.matrix_transpose(U) @ C, disc + (m - r) * per
    U, S, Vh = svd(C)
    r, disc = truncation_rank(S, budget_sq, max_rank)
    return U[:, :r], xp.reshape(S[:r], (r, 1)) * Vh[:r, :], disc


def check_eps(eps: Any, name: str = "eps") -> float:
    """Validate a relative tolerance: a real number in the open interval (0, 1)."""
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise ToleranceError(f"{name} must be a real number in (0, 1), got {eps!r}") from None
    if math.isnan(e) or not 0.0 < e < 1.0:
        raise ToleranceError(f"{name} must lie in the open interval (0, 1), got {eps!r}")
    return e


def check_max_rank(max_rank: Any, name: str = "max_rank") -> int | None:
    """Validate a rank cap: ``None`` (no cap) or an integer ≥ 1."""
    if max_rank is None:
        return None
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)):
        raise ToleranceError(f"{name} must be None or an integer >= 1, got {max_rank!r}")
    if max_rank < 1:
        raise ToleranceError(f"{name} must be at least 1, got {max_rank}")
    return int(max_rank)


def check_core_chain(cores, what: str, layout: str) -> tuple:
    """Validate the cores of a tensor train or TT-matrix and return them as a tuple.

    Each core must have ``len(layout)`` axes (``layout`` names them, e.g. ``"r, n, r'"``), neighbouring
    cores must agree on their shared rank (first axis of a core = last axis of the previous one), and
    both boundary ranks must be 1.  Mixing array libraries raises BackendMismatchError.
    """
    cores = tuple(cores)
    if not cores:
        raise ShapeError(f"a {what} needs at least one core")
    namespace(*cores)
    ndim = len(layout.split(","))
    for k, c in enumerate(cores):
        if c.ndim != ndim:
            raise ShapeError(f"{what} core {k} must be {ndim}-dimensional ({layout}), got shape {tuple(c.shape)}")
        if k and int(c.shape[0]) != int(cores[k - 1].shape[-1]):
            raise ShapeError(
                f"{what} core {k - 1} has right rank {int(cores[k - 1].shape[-1])} "
                f"but core {k} has left rank {int(c.shape[0])}"
            )
    if int(cores[0].shape[0]) != 1 or int(cores[-1].shape[-1]) != 1:
        raise ShapeError(f"the first core of a {what} must have left rank 1 and the last core right rank 1")
    return cores


# -- a posteriori certificate of a tensor train ------------------------------------------------------------------
_U64 = Fraction(1, 2**53)  # unit roundoff of float64


def _float_up(q: Fraction) -> float:
    """The smallest float ``>= q`` (``q`` a nonnegative rational)."""
    f = float(q)
    return f if Fraction(f) >= q else float(np.nextafter(f, np.inf))


def _gamma(K: int, u: Fraction = _U64) -> Fraction:
    """``γ_K = K u / (1 − K u)`` exactly (requires ``K u < 1``)."""
    return K * u / (1 - K * u)


def conversion_error(x: Any, A: Any):
    """Per-entry bounds on ``|x − A|`` when :func:`as_float` converted exact input ``x`` to ``A``.

    Returns ``None`` when ``x`` already was a floating-point array (no conversion took place), else a float64
    NumPy array shaped like ``A`` with ``|x_i − A_i| ≤ out_i``: zero for integers of magnitude ``≤ 2^53``
    (converted exactly), ``u·|A_i|`` for larger integers (round to nearest, ``u = 2^-53``), and for object
    entries (ints, Fractions, sympy rationals) the exact difference rounded up.

    Examples
    --------
    >>> from fractions import Fraction
    >>> import numpy as np
    >>> x = [[1, Fraction(1, 3)], [2**60 + 1, 0.5]]
    >>> e = conversion_error(x, as_float(x))
    >>> bool(e[0, 0] == 0 and 0 < e[0, 1] <= 2.0**-54 and e[1, 0] == 1 and e[1, 1] == 0)
    True
    >>> conversion_error(np.ones(2), np.ones(2)) is None
    True
    """
    if hasattr(x, "shape") and not (isinstance(x, np.ndarray) and x.dtype == object):
        if isinstance(x, np.ndarray):
            floating = np.issubdtype(x.dtype, np.floating)
        else:
            floating = namespace(x).isdtype(x.dtype, "real floating")
        if floating:
            return None
        Af = np.asarray(to_numpy(A), dtype=np.float64)
        big = np.abs(Af) > 2.0**53
        return np.where(big, np.abs(Af) * 2.0**-53, 0.0)
    Af = np.asarray(to_numpy(A), dtype=np.float64)
    flat = np.asarray(x, dtype=object).ravel()
    out = np.empty(flat.shape[0], dtype=np.float64)
    for i, (v, f) in enumerate(zip(flat, Af.ravel())):
        if isinstance(v, (float, np.floating)):
            out[i] = 0.0
            continue
        e = to_exact_scalar(v)
        out[i] = _float_up(abs(Fraction(e) - Fraction(float(f)))) if isinstance(e, (int, Fraction)) else abs(float(f)) * 2.0**-52
    return out.reshape(Af.shape)


def tt_residual_bound(A: Any, cores, conversion=None) -> float:
    """A rigorous upper bound on ``‖A − A_TT‖_F`` for a tensor ``A`` and the train its ``cores`` represent exactly.

    ``A`` has shape ``(n_1, …, n_d)`` (row-major), ``cores[k]`` shape ``(r_{k−1}, n_k, r_k)``; any array
    library and floating dtype (everything is converted to NumPy float64, exactly).  ``conversion`` (from
    :func:`conversion_error`) adds per-entry bounds on ``|A_exact − A|`` when ``A`` is the float64 image of
    exact input; the bound is then on ``‖A_exact − A_TT‖_F``.

    This is an *a posteriori* certificate: it covers whatever the decomposition did (truncation, rounding of
    the SVDs, QRs and Gram matrices, reshapes), because it measures the stored cores against ``A``.

    Derivation (float64, ``u = 2^-53``).  ``T̂`` is the contraction ``G_1 G_2 ⋯ G_d`` computed left to right
    as ``d − 1`` matrix products of inner lengths ``r_1, …, r_{d−1}``; with ``S = Σ_k r_k`` and ``C`` the same
    chain on ``|G_k|`` (exactly), ``|T̂ − A_TT| ≤ γ_S C`` entrywise (Higham, *Accuracy and Stability* §3.5 and
    Lemma 3.3, any summation order, with or without FMA), and the computed ``Ĉ ≥ (1 − γ_S) C``.
    ``D = fl(A − T̂)`` has ``|A − T̂| ≤ |D| / (1 − u)``.  Hence entrywise
    ``|A_exact − A_TT| ≤ (|D| + g Ĉ + conv) / (1 − u)`` with ``g ≥ γ_S / (1 − γ_S)``.  The sum ``Z`` of the
    three nonnegative terms is computed with at most three roundings (``Z ≥ (1 − u)^3 z``); it is scaled by a
    power of two so that ``max Z ∈ [1/2, 1)`` (no overflow; underflow of negligible entries costs at most
    ``2^-1075`` each, folded into a factor ``(1 + 2^-990)^2``), and ``‖Z‖_2`` is computed as
    ``sqrt(Z·Z)`` (a dot product of length ``N``: relative error ``≤ γ_N``, then ``sqrt``: ``≤ u``).  The
    returned value is ``fl(n̂ c) 2^e`` with ``c ≥ (1 + 2^-990)^2 / ((1 − γ_N)(1 − u)^6)`` computed
    exactly and rounded up.

    Assumptions: IEEE float64 arithmetic in NumPy/BLAS (no reduced-precision modes), no underflow in the
    contraction chains and in ``g Ĉ`` (entries of magnitude above ``~1e-290`` or exactly zero).
    Non-finite values give ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.arange(6.0).reshape(2, 3)
    >>> U, S, Vh = np.linalg.svd(A, full_matrices=False)
    >>> cores = (U.reshape(1, 2, 2), (S[:, None] * Vh).reshape(2, 3, 1))
    >>> b = tt_residual_bound(A, cores)
    >>> bool(np.linalg.norm(A - (U * S) @ Vh) <= b < 1e-13)
    True
    >>> b1 = tt_residual_bound(A, (U[:, :1].reshape(1, 2, 1), (S[:1, None] * Vh[:1]).reshape(1, 3, 1)))
    >>> round(float(b1 / S[1]), 6)    # rank 1: the error is the discarded singular value
    1.0
    """
    An = np.asarray(to_numpy(A), dtype=np.float64).reshape(-1)
    cs = [np.asarray(to_numpy(c), dtype=np.float64) for c in cores]
    T = cs[0].reshape(-1, cs[0].shape[-1])
    C = np.abs(T)
    S = 0
    for c in cs[1:]:
        r, r2 = int(c.shape[0]), int(c.shape[-1])
        S += r
        c2 = c.reshape(r, -1)
        T = (T @ c2).reshape(-1, r2)
        C = (C @ np.abs(c2)).reshape(-1, r2)
    N = int(An.shape[0])
    if int(T.size) != N:
        raise ShapeError(f"the cores represent {int(T.size)} entries, but the tensor has {N}")
    Z = np.abs(An - T.reshape(-1))
    if S:
        if S * _U64 >= Fraction(1, 2):
            return math.inf
        gS = _gamma(S)
        Z = Z + _float_up(gS / (1 - gS)) * C.reshape(-1)
    if conversion is not None:
        Z = Z + np.asarray(conversion, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(Z)):
        return math.inf
    m = float(Z.max()) if N else 0.0
    if m == 0.0:
        return 0.0
    if 2 * N * _U64 >= 1:
        return math.inf
    e = int(np.frexp(m)[1])
    Zs = np.ldexp(Z, -e)
    nhat = float(np.sqrt(np.dot(Zs, Zs)))
    c = _float_up((1 + Fraction(1, 2**990)) ** 2 / ((1 - _gamma(N)) * (1 - _U64) ** 6))
    out = float(np.ldexp(nhat * c, e))
    return float(np.nextafter(out, np.inf)) if out < math.inf else out
