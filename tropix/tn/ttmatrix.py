"""TT-matrices (matrix product operators): compressed linear maps applied without densifying.

A matrix ``W`` of shape ``(M, N)`` with ``M = m_1⋯m_d`` and ``N = n_1⋯n_d`` is viewed as the tensor
``W[(i_1…i_d), (j_1…j_d)]``; interleaving the modes as ``(i_1 j_1), (i_2 j_2), …`` and running
:func:`~tropix.tn.tt.tt_svd` gives cores ``G_k`` of shape ``(r_{k-1}, m_k, n_k, r_k)``, with the same
truncation ``‖W − W_TT‖_F ≤ eps·‖W‖_F`` (unless ``max_rank`` binds) and the same a posteriori
certificate: ``error_bound`` bounds ``‖W − W_TT‖_F`` rigorously for the matrix ``W_TT`` the stored cores
represent exactly, floating-point rounding of the decomposition included.  Row indices are row-major
in ``(i_1, …, i_d)`` (``i_1`` slowest), as in ``numpy.reshape``.

Examples
--------
>>> import numpy as np
>>> from tropix.tn import TTMatrix
>>> W = np.kron(np.kron(np.eye(2), np.ones((3, 3))), np.eye(4))   # 24 x 24, exact TT rank 1
>>> T = TTMatrix.from_dense(W, (2, 3, 4), (2, 3, 4), eps=1e-10)
>>> T.ranks, T.n_params
((1, 1, 1, 1), 29)
>>> X = np.random.default_rng(0).standard_normal((24, 5))
>>> bool(np.allclose(T.matmat(X), W @ X))
True
"""

from __future__ import annotations

import functools
import math

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from .._array import namespace, to_numpy
from .._repr import compact_repr
from ..errors import ArgumentTypeError, ShapeError, SizeLimitError
from ..tropical._args import check_dims, check_int
from ._linalg import (
    as_float,
    check_core_chain,
    check_eps,
    check_max_rank,
    conversion_error,
    fro_norm,
    truncation_rank,
)
from ._linalg import (
    _add_up,
    _mul_up,
    fro_up_raw as fro_up,
    gamma_up,
    prefix_norms,
    prod_up,
    spectral_up,
    suffix_norms,
    unit_roundoff,
)
from .tt import _DEFAULT_EPS, TensorTrain, _check_bound, _kron_chain_bound, _quiet, _pow2_scale, _tt_svd, _tt_sweep

__all__ = ["TTMatrix", "factorize"]


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


_MAX_PARTS = 2**20


def factorize(n: int, d: int) -> tuple[int, ...]:
    """Split ``n`` into ``d`` integer factors as equal as possible (largest first; 1s pad short splits).

    Examples
    --------
    >>> factorize(384, 4), factorize(1536, 3), factorize(7, 2), factorize(72, 2)
    ((6, 4, 4, 4), (16, 12, 8), (7, 1), (9, 8))
    """
    n, d = check_int(n, "n"), check_int(d, "d")
    if n < 1 or d < 1:
        raise ShapeError(f"cannot factor {n} into {d} parts")
    if d > _MAX_PARTS:
        raise SizeLimitError(f"factorize: d = {d} parts is more than the {_MAX_PARTS} this returns")
    primes = _prime_factors(n)
    if d >= len(primes):  # (every prime its own factor, 1s after: the recursion below, d deep, overflowed the stack)
        return tuple(sorted(primes, reverse=True)) + (1,) * (d - len(primes))
    divisors = [1]
    for p in primes:
        divisors = sorted(set(divisors) | {x * p for x in divisors if n % (x * p) == 0})
    budget = [200_000]  # search steps; past them (n with very many divisors), the greedy split below

    @functools.lru_cache(maxsize=None)
    def best(m: int, k: int, cap: int):
        # the non-increasing split of m into k factors <= cap whose largest factor is smallest, then (the same
        # rule on the rest) lexicographically smallest; None if there is none.  (Greedy prime placement is
        # not optimal: it split 72 as 12 x 6, 240 as 20 x 12.)
        if k == 1:
            return (m,) if m <= cap else None
        lo = _iroot_ceil(m, k)  # the largest factor is at least the k-th root (integer: n may exceed floats)
        for f in divisors:
            budget[0] -= 1
            if budget[0] < 0:
                raise _Exhausted
            if f < lo or m % f:
                continue
            if f > cap:
                break
            rest = best(m // f, k - 1, f)
            if rest is not None:
                return (f,) + rest
        return None

    try:
        return best(n, d, n)
    except _Exhausted:
        groups = [1] * d
        for p in sorted(primes, reverse=True):
            i = min(range(d), key=lambda j: groups[j])
            groups[i] *= p
        return tuple(sorted(groups, reverse=True))


class _Exhausted(Exception):
    """The exhaustive search of :func:`factorize` ran out of its step budget."""


def _iroot_ceil(m: int, k: int) -> int:
    """The smallest integer ``r >= 1`` with ``r^k >= m`` (exact for integers of any size)."""
    lo, hi = 1, 1 << (-(-m.bit_length() // k))  # hi^k >= 2^bit_length > m
    while lo < hi:
        mid = (lo + hi) // 2
        if mid ** k >= m:
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True, eq=False)
class TTMatrix:
    """An immutable TT-matrix (MPO) with cores of shape ``(r_{k-1}, m_k, n_k, r_k)``.

    ``.shape`` is ``(M, N)`` of the dense matrix, ``.row_dims``/``.col_dims`` its factorisations,
    ``.ranks`` the TT ranks and ``.n_params`` the number of stored numbers.

    Attributes
    ----------
    cores : tuple of arrays
    error_bound : float
        Bound on ``‖W − self‖_F`` for the matrix it was built from (0 if exact); from :meth:`from_dense`
        certified a posteriori, rounding included (see :func:`~tropix.tn.tt.tt_svd`).
    eps : float or None
        Requested relative tolerance.
    """

    cores: tuple
    error_bound: float = 0.0
    eps: float | None = None
    _repr_fields = ("row_dims", "col_dims", "ranks", "error_bound", "eps")
    __repr__ = compact_repr

    def __post_init__(self):
        cores = check_core_chain(self.cores, "TT-matrix", "r, m, n, r'")
        object.__setattr__(self, "cores", cores)

    @property
    def xp(self):
        return namespace(*self.cores)

    @property
    def row_dims(self) -> tuple[int, ...]:
        return tuple(int(c.shape[1]) for c in self.cores)

    @property
    def col_dims(self) -> tuple[int, ...]:
        return tuple(int(c.shape[2]) for c in self.cores)

    @property
    def shape(self) -> tuple[int, int]:
        return int(np.prod(self.row_dims)), int(np.prod(self.col_dims))

    @property
    def ranks(self) -> tuple[int, ...]:
        return (1,) + tuple(int(c.shape[3]) for c in self.cores)

    @property
    def n_params(self) -> int:
        """Number of stored numbers (sum of the core sizes); compare with ``M·N`` for the dense matrix."""
        return sum(int(np.prod([int(s) for s in c.shape])) for c in self.cores)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_dense(
        cls,
        W: Any,
        row_dims: Sequence[int] | None = None,
        col_dims: Sequence[int] | None = None,
        *,
        eps: float = _DEFAULT_EPS,
        max_rank: int | None = None,
        check: bool = False,
    ) -> "TTMatrix":
        """Compress a dense matrix ``W`` (M×N) with ``‖W − W_TT‖_F ≤ eps·‖W‖_F`` (unless ``max_rank`` binds).

        Parameters
        ----------
        W : array_like, shape (M, N)
        row_dims, col_dims : sequences of int, optional
            Factorisations ``M = ∏ row_dims``, ``N = ∏ col_dims``; the shorter one is padded with 1s.  When
            both are omitted every balanced factorisation with 2…6 factors is considered and the one
            with the fewest parameters is returned (candidates that need more parameters even with all
            ranks 1 than the best one found are not computed).
        eps : float in (0, 1)
            Requested relative Frobenius accuracy (drives the truncation).  The returned ``error_bound`` is
            the rigorous a posteriori bound on ``‖W − W_TT‖_F`` for the stored cores, rounding included
            (exact input: against the exact ``W``); it is at most ``eps·‖W‖_F`` unless ``max_rank`` binds
            or ``eps`` is at rounding level.
        max_rank : int ≥ 1, optional
        check : bool
            Recompute the error densely and raise BoundViolationError if it exceeds the certified bound.

        Raises
        ------
        ShapeError
            If ``W`` is not a matrix or the factorisations do not multiply out to its shape.
        ToleranceError
            If ``eps`` is not in (0, 1) or ``max_rank < 1``.

        Examples
        --------
        >>> import numpy as np
        >>> W = np.random.default_rng(1).standard_normal((96, 96))
        >>> T = TTMatrix.from_dense(W, (4, 4, 6), (4, 4, 6), eps=0.5)
        >>> bool(np.linalg.norm(T.to_dense() - W) <= 0.5 * np.linalg.norm(W))
        True
        >>> TTMatrix.from_dense(W, (4, 4, 4), (96,))
        Traceback (most recent call last):
        ...
        tropix.errors.ShapeError: row_dims (4, 4, 4) multiply to 64, but W has 96 rows
        """
        eps = check_eps(eps)
        max_rank = check_max_rank(max_rank)
        A = as_float(W, "W")
        if A.ndim != 2:
            raise ShapeError(f"W must be a matrix, got shape {tuple(A.shape)}")
        conv = conversion_error(W, A)
        M, N = (int(s) for s in A.shape)
        if row_dims is None and col_dims is None:
            # candidates in order of the parameter count they need at least (all ranks 1: Σ m_k n_k);
            # a candidate whose lower bound already exceeds the best found so far is skipped
            cands = []
            for d in range(2, 7):
                rd, cd = factorize(M, d), factorize(N, d)
                if d > 2 and (rd.count(1) + cd.count(1) > 0):
                    continue
                cands.append((sum(m * n for m, n in zip(rd, cd)), d, rd, cd))
            best = None  # (n_params, row_dims, col_dims, sweep) of the best uncertified candidate
            for lower, d, rd, cd in sorted(cands):
                if best is not None and lower >= best[0]:
                    continue
                if d == 2 and best is not None and _two_core_params(A, rd, cd, eps, max_rank) >= best[0]:
                    continue  # decided from the singular values alone (no factor matrices computed)
                sweep = _tt_sweep(_interleave(A, rd, cd), eps, max_rank)
                n_params = sum(int(np.prod([int(s) for s in c.shape])) for c in sweep[0])
                if best is None or n_params < best[0]:
                    best = (n_params, rd, cd, sweep)
            _, rd, cd, sweep = best
            # certify the chosen candidate only
            tt, nrm = _tt_svd(_interleave(A, rd, cd), eps, max_rank, _interleave_np(conv, rd, cd), sweep)
            out = cls._from_tt_cores(tt, rd, cd)
            if check:
                _check_bound(_dense64_error(A, out), out.error_bound, nrm, "TTMatrix.from_dense")
            return out
        # (validated before the missing one is derived from its length; sizes < 1: ShapeError below)
        if row_dims is not None:
            row_dims = check_dims(row_dims, "row_dims", minimum=-2**62)
        if col_dims is not None:
            col_dims = check_dims(col_dims, "col_dims", minimum=-2**62)
        if row_dims is None:
            row_dims = factorize(M, len(col_dims))
        if col_dims is None:
            col_dims = factorize(N, len(row_dims))
        if any(m < 1 for m in row_dims + col_dims):
            raise ShapeError(f"factors must be positive, got row_dims {row_dims} and col_dims {col_dims}")
        if int(np.prod(row_dims)) != M:
            raise ShapeError(f"row_dims {row_dims} multiply to {int(np.prod(row_dims))}, but W has {M} rows")
        if int(np.prod(col_dims)) != N:
            raise ShapeError(f"col_dims {col_dims} multiply to {int(np.prod(col_dims))}, but W has {N} columns")
        d = max(len(row_dims), len(col_dims))
        row_dims = row_dims + (1,) * (d - len(row_dims))
        col_dims = col_dims + (1,) * (d - len(col_dims))
        tt, nrm = _tt_svd(_interleave(A, row_dims, col_dims), eps, max_rank, _interleave_np(conv, row_dims, col_dims))
        out = cls._from_tt_cores(tt, row_dims, col_dims)
        if check:
            _check_bound(_dense64_error(A, out), out.error_bound, nrm, "TTMatrix.from_dense")
        return out

    @classmethod
    def _from_tt_cores(cls, tt: TensorTrain, row_dims, col_dims) -> "TTMatrix":
        xp = tt.xp
        cores = tuple(
            xp.reshape(c, (int(c.shape[0]), m, n, int(c.shape[2]))) for c, m, n in zip(tt.cores, row_dims, col_dims)
        )
        return cls(cores, tt.error_bound, tt.eps)

    @classmethod
    def from_tt(cls, tt: TensorTrain, row_dims: Sequence[int], col_dims: Sequence[int]) -> "TTMatrix":
        """Reinterpret a tensor train over merged indices ``(m_k n_k)`` as a TT-matrix."""
        if not isinstance(tt, TensorTrain):
            raise ArgumentTypeError(f"from_tt expects a TensorTrain, got {type(tt).__name__}")
        row_dims, col_dims = check_dims(row_dims, "row_dims"), check_dims(col_dims, "col_dims")
        xp = tt.xp
        if tuple(m * n for m, n in zip(row_dims, col_dims)) != tt.shape or len(row_dims) != tt.ndim:
            raise ShapeError(f"row_dims {tuple(row_dims)} × col_dims {tuple(col_dims)} do not match TT shape {tt.shape}")
        cores = tuple(
            xp.reshape(c, (int(c.shape[0]), int(m), int(n), int(c.shape[2])))
            for c, m, n in zip(tt.cores, row_dims, col_dims)
        )
        return cls(cores, tt.error_bound, tt.eps)

    def to_tt(self) -> TensorTrain:
        """The same operator as a tensor train over the merged indices ``(m_k n_k)`` (for rounding, spectra)."""
        xp = self.xp
        cores = tuple(
            xp.reshape(c, (int(c.shape[0]), int(c.shape[1]) * int(c.shape[2]), int(c.shape[3]))) for c in self.cores
        )
        return TensorTrain(cores, self.error_bound, self.eps)

    def round(self, eps: float = _DEFAULT_EPS, max_rank: int | None = None, *, certify: bool = False) -> "TTMatrix":
        """Recompress with ``‖self − result‖_F ≤ eps·‖self‖_F`` (see :meth:`TensorTrain.round`, also for
        ``certify``)."""
        return TTMatrix.from_tt(self.to_tt().round(eps, max_rank, certify=certify), self.row_dims, self.col_dims)

    def schmidt_spectrum(self, bond: int):
        """Operator Schmidt values across bond ``bond``: singular values of ``W`` regrouped as
        ``[(i_1 j_1 … i_{k+1} j_{k+1}), (rest)]``."""
        return self.to_tt().schmidt_spectrum(bond)

    def norm(self) -> float:
        """Frobenius norm of the operator."""
        return self.to_tt().norm()

    # -- application ----------------------------------------------------------------------------
    def to_dense(self):
        """The dense ``M×N`` matrix."""
        xp = self.xp
        d = len(self.cores)
        out = self.cores[0]
        for c in self.cores[1:]:
            out = xp.tensordot(out, c, axes=1)
        out = xp.reshape(out, tuple(x for m, n in zip(self.row_dims, self.col_dims) for x in (m, n)))
        perm = tuple(range(0, 2 * d, 2)) + tuple(range(1, 2 * d, 2))
        return xp.reshape(xp.permute_dims(out, perm), self.shape)

    def transpose(self) -> "TTMatrix":
        """The TT-matrix of ``Wᵀ`` (swaps row and column modes of every core)."""
        xp = self.xp
        return TTMatrix(tuple(xp.permute_dims(c, (0, 2, 1, 3)) for c in self.cores), self.error_bound, self.eps)

    @property
    def T(self) -> "TTMatrix":
        return self.transpose()

    def matmat(self, X: Any):
        """``W @ X`` for a dense batch ``X`` of shape ``(N, B)`` (or ``(N,)``), core by core, without forming ``W``.

        Cost ``O(Σ_k M_{<k}·N_{>k}·B·r_{k-1} m_k n_k r_k)``.

        Examples
        --------
        >>> import numpy as np
        >>> W = np.random.default_rng(2).standard_normal((12, 6))
        >>> T = TTMatrix.from_dense(W, (3, 4), (3, 2))
        >>> x = np.arange(6.0)
        >>> bool(np.allclose(T.matvec(x), W @ x)), T.matmat(np.ones((6, 7))).shape
        (True, (12, 7))
        """
        X = _as_batch(X)
        xp = namespace(*self.cores, X)
        M, N = self.shape
        vec = X.ndim == 1
        if X.ndim not in (1, 2) or int(X.shape[0]) != N:
            raise ShapeError(f"X must have shape ({N},) or ({N}, B) for a {M}×{N} TT-matrix, got {tuple(X.shape)}")
        B = 1 if vec else int(X.shape[1])
        T = xp.reshape(X, (1, 1, N, B))
        Md, Nrest = 1, N
        for c in self.cores:
            r, m, n, r2 = (int(s) for s in c.shape)
            Nrest //= n
            T = xp.reshape(T, (Md, r, n, Nrest, B))
            T = xp.tensordot(T, c, axes=([1, 2], [0, 2]))  # (Md, Nrest, B, m, r2)
            T = xp.permute_dims(T, (0, 3, 4, 1, 2))
            Md *= m
            T = xp.reshape(T, (Md, r2, Nrest, B))
        Y = xp.reshape(T, (M, B))
        return Y[:, 0] if vec else Y

    def matmat_rounding_bound(self, X: Any) -> np.ndarray:
        """Rigorous elementwise bound on the floating-point rounding error of :meth:`matmat`.

        Returns a float64 NumPy array ``E`` shaped like ``self.matmat(X)`` with
        ``|fl(W_TT X) − W_TT X| ≤ E`` entrywise, where ``W_TT`` is the matrix the stored cores represent
        exactly and ``fl(W_TT X)`` is what :meth:`matmat` returns (compression error not included: see
        ``error_bound``).

        Derivation.  :meth:`matmat` is a chain of ``d`` matrix products ``T_k = T_{k−1} C_k`` (reshapes and
        permutations are exact) with inner length ``K_k = r_{k−1} n_k``.  For one product of inner length
        ``K``, in any summation order and with or without FMA, ``|fl(AB) − AB| ≤ γ_K |A||B|`` with
        ``γ_K = K u / (1 − K u)`` (Higham, *Accuracy and Stability*, §3.5), hence also
        ``|fl(AB)| ≤ (1 + γ_K)|A||B|``.  Let ``A_k`` be the same contraction chain run on ``|X|`` and the
        ``|C_k|`` (exactly).  By induction, with ``P_k = Π_{i≤k}(1 + γ_{K_i})``: ``|T̂_k| ≤ P_k A_k`` and
        ``|T̂_k − T_k| ≤ |T̂_{k−1} − T_{k−1}||C_k| + γ_{K_k}|T̂_{k−1}||C_k| ≤ (P_{k−1} − 1 + γ_{K_k}P_{k−1}) A_k
        = (P_k − 1) A_k``.  Product ``k`` is computed in the promoted dtype
        ``result_type(X, C_1, …, C_k)`` (float32 × float64 runs in float64) with unit roundoff ``u_k``, and
        ``1 + γ_K(u) = 1/(1 − K u)``, so ``P_d ≤ 1/(1 − x)`` with ``x = Σ_k K_k u_k`` (as
        ``Π_k (1 − a_k) ≥ 1 − Σ_k a_k``) and ``|fl(W_TT X) − W_TT X| ≤ γ A_d`` with ``γ = x/(1 − x)``
        (``= γ_S(u)``, ``S = Σ_k K_k``, when all products run in one dtype; Higham Lemma 3.3).

        ``A_d`` itself is evaluated in float64 by the same chain on nonnegative data, so the computed
        ``Â_d ≥ (1 − γ_S(u₆₄)) A_d``; the returned ``E = fl(c Â_d)`` with
        ``c ≥ γ / ((1 − γ_S(u₆₄))(1 − u₆₄))`` (computed exactly with Fractions and rounded up) therefore
        bounds ``γ A_d``.  Assumptions: the backend evaluates each product in the promoted dtype with
        ordinary IEEE arithmetic (no reduced-precision modes such as TF32), no overflow, and no underflow
        (gradual underflow adds absolute errors of order ``S·2^-1074`` in float64, ``S·2^-149`` in
        float32, not covered).  Non-finite inputs give ``inf``/``nan`` bounds.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(4)
        >>> T = TTMatrix.from_dense(rng.standard_normal((16, 16)), (4, 4), (4, 4))
        >>> T32 = TTMatrix(tuple(c.astype(np.float32) for c in T.cores))
        >>> X = rng.standard_normal((16, 3)).astype(np.float32)
        >>> T64 = TTMatrix(tuple(c.astype(np.float64) for c in T32.cores))   # same operator, float64
        >>> exact = T64.matmat(X.astype(np.float64))                        # error ~1e-16, negligible here
        >>> E = T32.matmat_rounding_bound(X)
        >>> bool(np.all(np.abs(T32.matmat(X) - exact) <= E)), E.shape
        (True, (16, 3))
        """
        Xf = _as_batch(X)
        M, N = self.shape
        if Xf.ndim not in (1, 2) or int(Xf.shape[0]) != N:
            raise ShapeError(f"X must have shape ({N},) or ({N}, B) for a {M}×{N} TT-matrix, got {tuple(Xf.shape)}")
        xp = namespace(*self.cores, Xf)
        dt, S, x = Xf.dtype, 0, Fraction(0)
        for core in self.cores:
            dt = xp.result_type(dt, core.dtype)  # the dtype this product is computed in
            K = int(core.shape[0]) * int(core.shape[2])
            S += K
            x += K * Fraction(float(xp.finfo(dt).eps)) / 2
        absT = TTMatrix(tuple(np.abs(np.asarray(to_numpy(c), dtype=np.float64)) for c in self.cores))
        A = np.asarray(absT.matmat(np.abs(np.asarray(to_numpy(Xf), dtype=np.float64))), dtype=np.float64)
        c = _gamma_factor(S, x)
        return np.full_like(A, np.inf) if c == np.inf else c * A

    def rmatmat_rounding_bound(self, X: Any) -> np.ndarray:
        """Rigorous elementwise bound on the rounding error of :meth:`rmatmat` (``X @ W``, ``X`` of shape ``(B, M)``).

        :meth:`rmatmat` runs :meth:`matmat` of the transpose, so this is ``transpose().matmat_rounding_bound``
        (inner lengths ``r_{k−1} m_k``), transposed back; see :meth:`matmat_rounding_bound` for the derivation.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(5)
        >>> T = TTMatrix.from_dense(rng.standard_normal((12, 6)), (3, 4), (3, 2))
        >>> X = rng.standard_normal((7, 12))
        >>> E = T.rmatmat_rounding_bound(X)
        >>> E.shape, bool(np.all(E < 1e-12))
        ((7, 6), True)
        """
        Xf = self._check_rows(_as_batch(X))
        if Xf.ndim == 1:
            return self.transpose().matmat_rounding_bound(Xf)
        return self.transpose().matmat_rounding_bound(namespace(Xf).matrix_transpose(Xf)).T

    def matvec(self, x: Any):
        """``W @ x`` for a vector ``x`` of length ``N``."""
        return self.matmat(x)

    def rmatmat(self, X: Any):
        """``X @ W`` for a dense batch ``X`` of shape ``(B, M)`` (rows are vectors, as in attention layers)."""
        X = self._check_rows(_as_batch(X))
        xp = namespace(*self.cores, X)
        if X.ndim == 1:
            return self.transpose().matmat(X)
        return xp.matrix_transpose(self.transpose().matmat(xp.matrix_transpose(X)))

    def _check_rows(self, X):
        """``X`` of :meth:`rmatmat`: shape ``(M,)`` or ``(B, M)`` (checked here, so that the error names these
        shapes and not those of the transposed product)."""
        M = self.shape[0]
        if X.ndim not in (1, 2) or int(X.shape[-1]) != M:
            raise ShapeError(f"X must have shape ({M},) or (B, {M}) for X @ W with W of shape {self.shape}, "
                             f"got {tuple(X.shape)}")
        return X

    def __matmul__(self, other: Any):
        if isinstance(other, TensorTrain):
            return self.apply(other)
        return self.matmat(other)

    def apply(self, mps: TensorTrain, eps: float | None = None, max_rank: int | None = None) -> TensorTrain:
        """MPO × MPS: the tensor train of ``W x`` for ``x`` given as a tensor train over ``(n_1, …, n_d)``.

        Ranks multiply; pass ``eps`` (and/or ``max_rank``) to round the result (its bound is added, see
        :meth:`TensorTrain.round`).

        ``error_bound`` bounds ``‖W_true x_true − result‖_F`` for the operands' targets (``‖W_true − self‖_F ≤
        self.error_bound``, ``‖x_true − mps‖_F ≤ mps.error_bound``): ``self.error_bound·(‖x‖_F + mps.error_bound)
        + ‖W‖_2·mps.error_bound`` plus a rigorous bound on the rounding of the product cores (each entry a sum of
        ``n_k`` products: ``‖E_k‖_F ≤ γ_{n_k} ‖G_k‖_F ‖A_k‖_F``), propagated through the train as in
        :meth:`TensorTrain.hadamard`, with ``‖L^{Wx}_{k}‖_2 ≤ Π_{j≤k} ‖G_j^{(r m)×(n r')}‖_2 · ‖L^x_k‖_2`` and
        ``‖R^{Wx}_k‖_2 ≤ Π_{j≥k} ‖G_j^{(m r')×(r n)}‖_2 · ‖R^x_k‖_2`` (per-core spectral norms and Gram sweeps of
        the MPS, all with their own rounding bounds; no dense tensor).  The per-core products can overestimate the
        operator's norms for deep random operators; the rounding term stays at ``u``-level times them.
        Assumptions: IEEE arithmetic in the dtype of each product core (the promoted dtype of the two cores), no
        overflow or underflow.

        Examples
        --------
        >>> import numpy as np
        >>> W = np.random.default_rng(3).standard_normal((8, 8))
        >>> T = TTMatrix.from_dense(W, (2, 2, 2), (2, 2, 2))
        >>> x = TensorTrain.random((2, 2, 2), rank=2, seed=0)
        >>> y = T.apply(x)
        >>> bool(np.allclose(y.to_dense().reshape(-1), W @ x.to_dense().reshape(-1)))
        True
        """
        if not isinstance(mps, TensorTrain):
            raise ArgumentTypeError(f"apply expects a TensorTrain, got {type(mps).__name__}")
        xp = namespace(*self.cores, *mps.cores)
        if mps.shape != self.col_dims:
            raise ShapeError(f"the MPS has mode sizes {mps.shape}, but the operator's column dims are {self.col_dims}")
        cores = []
        for g, a in zip(self.cores, mps.cores):
            r, m, n, r2 = (int(s) for s in g.shape)
            ra, _, ra2 = (int(s) for s in a.shape)
            c = xp.tensordot(g, a, axes=([2], [1]))  # (r, m, r2, ra, ra2)
            c = xp.permute_dims(c, (0, 3, 1, 2, 4))
            cores.append(xp.reshape(c, (r * ra, m, r2 * ra2)))
        out = TensorTrain(tuple(cores), self._apply_bound(mps, cores))
        if eps is not None or max_rank is not None:
            out = out.round(eps if eps is not None else _DEFAULT_EPS, max_rank)
        return out

    @_quiet
    def _apply_bound(self, mps: TensorTrain, cores) -> float:
        """The ``error_bound`` of :meth:`apply` (see there) for the computed product ``cores``."""
        d = len(cores)
        Pa, Sa = prefix_norms(mps.cores), suffix_norms(mps.cores)
        sL, sR = [], []
        for g in self.cores:
            r, m, n, r2 = (int(x) for x in g.shape)
            gn = np.asarray(to_numpy(g), dtype=np.float64)
            sL.append(spectral_up(gn.reshape(r * m, n * r2)))
            sR.append(spectral_up(np.transpose(gn, (1, 3, 0, 2)).reshape(m * r2, r * n)))
        left, right = [1.0] * (d + 1), [1.0] * (d + 1)
        acc = 1.0
        for k in range(d + 1):
            left[k] = _mul_up(acc, Pa[k])
            if k < d:
                acc = _mul_up(acc, sL[k])
        acc = 1.0
        for k in range(d, -1, -1):
            if k < d:
                acc = _mul_up(acc, sR[k])
            right[k] = _mul_up(acc, Sa[k])
        # each product core is computed in its own (promoted) dtype: cores may mix float32 and float64
        errs = [
            prod_up(gamma_up(int(g.shape[2]), unit_roundoff(c)), fro_up(g), fro_up(a))
            for g, a, c in zip(self.cores, mps.cores, cores)
        ]
        rounding = _kron_chain_bound(cores, errs, left, right)
        ew, ex = self.error_bound, mps.error_bound
        if not (ew or ex):
            return rounding
        w2 = min(prod_up(*sR), suffix_norms(self.to_tt().cores)[0])  # ‖W‖_2 ≤ both
        prop = _add_up(_mul_up(ew, _add_up(Sa[0], ex)), _mul_up(w2, ex))
        return _add_up(prop, rounding)


def _as_batch(X):
    """``X`` of :meth:`TTMatrix.matmat` and relatives as a float array; a TT-matrix or tensor train is refused by
    name (they have a ``shape``, so the array conversion raised a raw AttributeError on ``dtype``)."""
    if isinstance(X, (TTMatrix, TensorTrain)):
        raise ArgumentTypeError(
            f"X must be a dense array, got a {type(X).__name__} (apply a TT-matrix to a TensorTrain with apply or @; "
            "products of two TT-matrices are not implemented)"
        )
    return as_float(X, "X")


def _gamma_factor(S: int, x: Fraction) -> float:
    """A float ``c ≥ γ / ((1 − γ_S(u₆₄))(1 − u₆₄))`` with ``γ = x / (1 − x)``, ``x = Σ_k K_k u_k`` (exact, rounded up).

    ``inf`` when ``x ≥ 1`` or ``2 S u₆₄ ≥ 1`` (no bound).
    """
    u64 = Fraction(2) ** -53
    if x >= 1 or 2 * S * u64 >= 1:
        return float("inf")
    g = x / (1 - x)
    g64 = S * u64 / (1 - S * u64)
    c = g / ((1 - g64) * (1 - u64))
    return float(np.nextafter(float(c), np.inf))


def _f(x) -> float:
    return float(to_numpy(x))


def _interleave(A, rd, cd):
    """The matrix ``A`` (M×N) as the tensor over the merged modes ``(i_k j_k)`` of the TT-matrix layout."""
    xp = namespace(A)
    d = len(rd)
    T = xp.reshape(A, tuple(rd) + tuple(cd))
    perm = tuple(x for k in range(d) for x in (k, d + k))
    return xp.reshape(xp.permute_dims(T, perm), tuple(m * n for m, n in zip(rd, cd)))


def _interleave_np(E, rd, cd):
    """:func:`_interleave` for an optional NumPy array (per-entry conversion bounds)."""
    if E is None:
        return None
    d = len(rd)
    perm = tuple(x for k in range(d) for x in (k, d + k))
    return E.reshape(tuple(rd) + tuple(cd)).transpose(perm).reshape(tuple(m * n for m, n in zip(rd, cd)))


def _two_core_params(A, rd, cd, eps, max_rank) -> int:
    """Parameter count of the two-core TT-matrix, from the eigenvalues of the smaller Gram matrix only."""
    xp = namespace(A)
    (m1, m2), (n1, n2) = rd, cd
    m = _f(xp.max(xp.abs(A)))
    if 0.0 < m < float("inf"):  # a power-of-two scaling (exact; the budget is relative): no overflow in G
        A = _pow2_scale(A, -int(np.frexp(m)[1]))
    T = xp.reshape(xp.permute_dims(xp.reshape(A, (m1, m2, n1, n2)), (0, 2, 1, 3)), (m1 * n1, m2 * n2))
    G = xp.matrix_transpose(T) @ T if m1 * n1 >= m2 * n2 else T @ xp.matrix_transpose(T)
    lam = np.clip(np.sort(np.asarray(to_numpy(xp.linalg.eigvalsh(G)), dtype=np.float64))[::-1], 0.0, None)
    # Gram eigenvalues carry absolute errors ~ n·u·λ_max: never ask for less than that (selection only)
    budget = max(eps**2, 64 * int(G.shape[0]) * float(np.finfo(np.float64).eps)) * float(lam.sum())
    r, _ = truncation_rank(np.sqrt(lam), budget, max_rank)
    return r * (m1 * n1 + m2 * n2)


def _dense64_error(A, T: "TTMatrix") -> float:
    """``|A - T|_F`` of ``T``'s stored cores multiplied out in float64 (``check=True``: see ``tt._train64``)."""
    from .tt import _np64

    return float(np.linalg.norm(_np64(A) - np.asarray(TTMatrix(tuple(_np64(c) for c in T.cores)).to_dense())))
