"""Backend-generic dense linear algebra for the tensor-network modules (SVD, QR, norms, truncation rules).

Everything here takes its array namespace from the input, so NumPy, torch (with autograd) and
array-api-strict work alike.  Tensor decompositions are floating-point algorithms: exact (integer or
object) input is converted to ``float64`` first by :func:`as_float`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._array import asarray, check_no_nan, check_nonempty, namespace, to_numpy
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
