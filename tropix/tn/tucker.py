"""Tucker decomposition: truncated HOSVD with a certified relative error, HOOI refinement, shared factors.

``A ≈ G ×_1 U_1 ×_2 U_2 ⋯`` with orthonormal factor matrices ``U_n`` (``n_n × r_n``) and a core ``G``.
For the truncated HOSVD, ``‖A − A_T‖²_F ≤ Σ_n (discarded squared singular values of the mode-n unfolding)``
(De Lathauwer, De Moor, Vandewalle 2000), so giving every compressed mode the budget
``eps²‖A‖²/(number of compressed modes)`` guarantees ``‖A − A_T‖_F ≤ eps·‖A‖_F``.  HOOI then refines the
factors at fixed ranks; each HOOI step maximises ``‖G‖`` over one factor, so the error
``sqrt(‖A‖² − ‖G‖²)`` never increases and the HOSVD bound stays valid.

**Shared factors.** Modes listed in ``shared_across`` are not compressed (their factor is the identity),
so the factors of the remaining modes are shared by every slice along them.  Stacking the weight
matrices of all heads of a layer as ``(heads, d_model, d_head)`` and passing ``shared_across=0``
compresses all heads with one pair of factor matrices.

Examples
--------
>>> import numpy as np
>>> from tropix.tn import tucker
>>> rng = np.random.default_rng(0)
>>> U, V = np.linalg.qr(rng.standard_normal((16, 3)))[0], np.linalg.qr(rng.standard_normal((8, 2)))[0]
>>> heads = np.stack([U @ rng.standard_normal((3, 2)) @ V.T for _ in range(4)])   # 4 heads, shared bases
>>> dec = tucker(heads, eps=1e-8, shared_across=0)
>>> dec.ranks, bool(np.allclose(dec.to_dense(), heads))
((4, 3, 2), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._array import namespace, to_numpy
from ..errors import ShapeError, ToleranceError
from ._linalg import as_float, check_eps, check_max_rank, fro_norm, svd, truncation_rank
from .tt import _check_bound

__all__ = ["TuckerDecomposition", "tucker", "mode_product"]


def _f(x) -> float:
    return float(to_numpy(x))


def mode_product(T, M, mode: int):
    """``T ×_mode M``: multiply mode ``mode`` of ``T`` (size n) by the matrix ``M`` (p × n).

    Examples
    --------
    >>> import numpy as np
    >>> mode_product(np.ones((2, 3)), np.ones((4, 3)), 1).shape
    (2, 4)
    """
    xp = namespace(T, M)
    out = xp.tensordot(M, T, axes=([1], [mode]))  # (p, rest...)
    perm = list(range(1, T.ndim))
    perm.insert(mode, 0)
    return xp.permute_dims(out, tuple(perm))


def _unfold(T, mode: int):
    xp = namespace(T)
    perm = (mode,) + tuple(i for i in range(T.ndim) if i != mode)
    return xp.reshape(xp.permute_dims(T, perm), (int(T.shape[mode]), -1))


@dataclass(frozen=True, eq=False)
class TuckerDecomposition:
    """Result of :func:`tucker`.

    Attributes
    ----------
    core : array
        Core tensor of shape ``ranks``.
    factors : tuple
        One orthonormal ``n_n × r_n`` matrix per mode, or ``None`` for modes in ``shared_across``.
    error_bound : float
        Certified bound on ``‖A − to_dense()‖_F``.
    error : float
        The error ``‖A − to_dense()‖_F`` of the returned decomposition, computed densely.
    norm : float
        ``‖A‖_F``.
    shared_across : tuple of int
        Modes left uncompressed.
    """

    core: Any
    factors: tuple
    error_bound: float
    error: float
    norm: float
    shared_across: tuple = ()

    @property
    def ranks(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.core.shape)

    @property
    def rel_error_bound(self) -> float:
        return self.error_bound / self.norm if self.norm else 0.0

    @property
    def n_params(self) -> int:
        """Numbers stored: core plus the (non-identity) factor matrices."""
        n = int(np.prod(self.ranks))
        return n + sum(int(f.shape[0]) * int(f.shape[1]) for f in self.factors if f is not None)

    def to_dense(self):
        """Reassemble ``core ×_1 U_1 ⋯``."""
        T = self.core
        for mode, U in enumerate(self.factors):
            if U is not None:
                T = mode_product(T, U, mode)
        return T


def tucker(
    tensor: Any,
    eps: float | None = None,
    ranks: Sequence[int] | None = None,
    *,
    max_rank: int | None = None,
    shared_across: int | Sequence[int] = (),
    n_iter: int = 0,
    check: bool = False,
) -> TuckerDecomposition:
    """Truncated HOSVD (optionally refined by ``n_iter`` HOOI sweeps) with a certified error bound.

    Parameters
    ----------
    tensor : array_like or list of arrays
        A dense tensor; a list of equally shaped arrays is stacked along a new mode 0 (and, if
        ``shared_across`` is not given, that mode is shared: one set of factors for all of them).
    eps : float in (0, 1), optional
        Relative tolerance: the result satisfies ``‖A − A_T‖_F ≤ eps·‖A‖_F`` unless ``ranks``/``max_rank`` bind.
    ranks : sequence of int, optional
        Fixed multilinear ranks (entries for shared modes are ignored); the bound is then whatever is
        achieved.  One of ``eps`` and ``ranks`` is required.
    max_rank : int ≥ 1, optional
        Cap applied to every compressed mode.
    shared_across : int or sequence of int
        Modes not compressed; the other modes' factors are shared across all their slices.
    n_iter : int
        Number of HOOI sweeps after the HOSVD (0 = plain truncated HOSVD).
    check : bool
        Recompute the error densely and raise BoundViolationError if it exceeds ``error_bound``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.random.default_rng(1).standard_normal((6, 7, 8))
    >>> dec = tucker(A, eps=0.5, n_iter=3)
    >>> bool(np.linalg.norm(dec.to_dense() - A) <= 0.5 * np.linalg.norm(A)), dec.error <= dec.error_bound
    (True, True)
    """
    if isinstance(tensor, (list, tuple)) and tensor and hasattr(tensor[0], "shape"):
        xp0 = namespace(*tensor)
        shapes = {tuple(int(s) for s in t.shape) for t in tensor}
        if len(shapes) != 1:
            raise ShapeError(f"arrays to be stacked must have one shape, got {sorted(shapes)}")
        tensor = xp0.stack([as_float(t) for t in tensor], axis=0)
        if shared_across == ():
            shared_across = (0,)
    A = as_float(tensor)
    xp = namespace(A)
    d = A.ndim
    if d == 0:
        raise ShapeError("tucker needs a tensor with at least one mode")
    shared = (shared_across,) if isinstance(shared_across, (int, np.integer)) else tuple(shared_across)
    shared = tuple(sorted({int(m) % d if -d <= int(m) < d else _bad_mode(m, d) for m in shared}))
    modes = [n for n in range(d) if n not in shared]
    if eps is None and ranks is None and max_rank is None:
        raise ToleranceError("tucker needs eps, ranks or max_rank")
    if eps is not None:
        eps = check_eps(eps)
    max_rank = check_max_rank(max_rank)
    if ranks is not None:
        ranks = tuple(int(r) for r in ranks)
        if len(ranks) != d:
            raise ShapeError(f"ranks has {len(ranks)} entries for a {d}-way tensor")
        if any(ranks[n] < 1 for n in modes):
            raise ToleranceError(f"ranks must be at least 1, got {ranks}")
    if not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ToleranceError(f"n_iter must be a non-negative integer, got {n_iter!r}")

    nrm = _f(fro_norm(A))
    budget = (eps * nrm) ** 2 / max(1, len(modes)) if eps is not None else -1.0
    factors: list = [None] * d
    disc_total = 0.0
    for n in modes:
        U, S, _ = svd(_unfold(A, n))
        cap = max_rank
        if ranks is not None:
            cap = ranks[n] if cap is None else min(cap, ranks[n])
        if eps is None:
            r = min(cap, int(S.shape[0]))
            s = np.asarray(to_numpy(S), dtype=np.float64)
            disc = float((s[r:] ** 2).sum())
        else:
            r, disc = truncation_rank(S, budget, cap)
        disc_total += disc
        factors[n] = U[:, :r]
    core = A
    for n in modes:
        core = mode_product(core, xp.matrix_transpose(factors[n]), n)
    bound = math.sqrt(disc_total) * (1 + 1e-12)

    for _ in range(int(n_iter)):
        for n in modes:
            Y = A
            for m in modes:
                if m != n:
                    Y = mode_product(Y, xp.matrix_transpose(factors[m]), m)
            U, _, _ = svd(_unfold(Y, n))
            factors[n] = U[:, : int(factors[n].shape[1])]
        core = A
        for n in modes:
            core = mode_product(core, xp.matrix_transpose(factors[n]), n)

    out = TuckerDecomposition(core, tuple(factors), bound, 0.0, nrm, shared)
    err = _f(fro_norm(A - out.to_dense()))
    out = TuckerDecomposition(core, tuple(factors), bound, err, nrm, shared)
    if check:
        _check_bound(err, bound, nrm, "tucker")
    return out


def _bad_mode(m, d):
    raise ShapeError(f"mode {m} is out of range for a {d}-way tensor")
