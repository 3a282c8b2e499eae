"""Tensor trains (matrix product states): TT-SVD with a certified error, rounding, arithmetic, canonical forms.

A tensor train of a ``d``-way tensor ``A`` of shape ``(n_1, …, n_d)`` is a list of cores ``G_k`` of shape
``(r_{k-1}, n_k, r_k)`` with ``r_0 = r_d = 1`` and ``A[i_1, …, i_d] = G_1[:, i_1, :] ⋯ G_d[:, i_d, :]``.

**The error guarantee.** :func:`tt_svd` sweeps left to right.  At every bond it keeps the left singular
vectors as an orthonormal core and carries ``S·Vᴴ`` to the right, discarding singular values whose
squared tail fits the remaining budget.  Because all cores to the left stay orthonormal, in exact
arithmetic the squared error is the sum of the squared discarded tails (Oseledets 2011, Thm 2.2), so a
total budget ``(eps·‖A‖_F)²`` gives ``‖A − A_TT‖_F ≤ eps·‖A‖_F`` whenever ``max_rank`` does not bind.
(Splitting ``√S`` onto both sides, as some libraries do, destroys the orthonormality this argument
needs.)  The budget is spent adaptively: each bond may use the part of the budget the previous bonds
left unused, divided evenly over the remaining bonds.  Wide unfoldings whose budget is far above
rounding level are split through the Gram matrix (one BLAS pass); see
:func:`~tropix.tn._linalg.truncated_split`.

The reported :attr:`TensorTrain.error_bound` is not that exact-arithmetic tail: it is an *a posteriori*
certificate for the cores actually stored, :func:`~tropix.tn._linalg.tt_residual_bound` — the residual
``A − contract(cores)`` evaluated in float64 with a rigorous bound on the rounding of that evaluation
(and, for exact input, of the conversion to float64).  It therefore covers the truncation and all
floating-point rounding of the SVDs, QRs and Gram matrices (for a tensor kept at full rank it is a few
``u·‖A‖_F``, not 0).  It costs one contraction of the train to a dense tensor (both halves contracted towards
the cheapest bond and joined by one matrix product), one pass for the residual and Gram sweeps over the
cores: for a ``4^10`` tensor at ranks ≤ 6 about 0.15× the sweep (≈ 2 ms); at full rank (``4^8``, ``2^16``,
``16^5``) about 0.4×.  If rounding pushes the certificate above ``eps·‖A‖_F`` although the truncation fitted
the budget, the sweep is repeated once with the budget reduced by twice the measured rounding part;
``error_bound`` can still exceed ``eps·‖A‖_F`` when ``eps`` is at rounding level (a few ``1e-15``) or
when ``max_rank`` binds: it is always the bound actually achieved.

Examples
--------
>>> import numpy as np
>>> from tropix.tn import tt_svd
>>> x = np.linspace(0, 1, 4)
>>> A = np.add.outer(np.add.outer(x, x), x)          # rank-2 structure: a sum of separable terms
>>> tt = tt_svd(A, eps=1e-8)
>>> tt.ranks, tt.shape
((1, 2, 2, 1), (4, 4, 4))
>>> bool(np.allclose(tt.to_dense(), A))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .._array import namespace, to_numpy
from ..errors import BoundViolationError, ShapeError, SizeLimitError
from ._linalg import (
    as_float,
    check_core_chain,
    check_eps,
    check_max_rank,
    fro_norm,
    qr,
    svd,
    conversion_error,
    truncated_split,
    truncation_rank,
    tt_distance_bound,
    tt_residual_bound,
)

__all__ = ["TensorTrain", "tt_svd", "tt_round", "schmidt_spectrum", "entanglement_entropy"]

_DEFAULT_EPS = 1e-12


def _f(x) -> float:
    return float(to_numpy(x))


@dataclass(frozen=True, eq=False)
class TensorTrain:
    """An immutable tensor train (MPS).

    Attributes
    ----------
    cores : tuple of arrays
        ``cores[k]`` has shape ``(r_k, n_k, r_{k+1})``, ``r_0 = r_d = 1``; all of one array library.
    error_bound : float
        Bound on ``‖A − self‖_F`` for the tensor ``A`` this train was built to approximate (0 for an exact
        representation).  From :func:`tt_svd` it is certified a posteriori, rounding included; arithmetic
        propagates it and :meth:`round` adds its truncation (see there for what that covers).
    eps : float or None
        The relative tolerance that was requested, if any.

    Examples
    --------
    >>> import numpy as np
    >>> tt = TensorTrain.random((2, 3, 4), rank=2, seed=0)
    >>> tt.shape, tt.ranks, tt.n_params
    ((2, 3, 4), (1, 2, 2, 1), 24)
    >>> bool(np.isclose((tt + tt).norm(), 2 * tt.norm()))
    True
    """

    cores: tuple
    error_bound: float = 0.0
    eps: float | None = None

    def __post_init__(self):
        cores = check_core_chain(self.cores, "tensor train", "r, n, r'")
        object.__setattr__(self, "cores", cores)

    # -- basic properties ---------------------------------------------------------------------
    @property
    def xp(self):
        """The array namespace of the cores."""
        return namespace(*self.cores)

    @property
    def ndim(self) -> int:
        return len(self.cores)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(c.shape[1]) for c in self.cores)

    @property
    def ranks(self) -> tuple[int, ...]:
        """``(r_0, r_1, …, r_d)`` with ``r_0 = r_d = 1``."""
        return (1,) + tuple(int(c.shape[2]) for c in self.cores)

    @property
    def n_params(self) -> int:
        """Number of stored numbers (sum of the core sizes)."""
        return sum(int(np.prod([int(s) for s in c.shape])) for c in self.cores)

    def _replace(self, cores, error_bound=None, eps=None):
        return TensorTrain(tuple(cores), self.error_bound if error_bound is None else error_bound, eps)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def random(cls, shape: Sequence[int], rank: int, seed: int | None = None, like: Any = None) -> "TensorTrain":
        """A tensor train with independent standard normal cores (ranks ``min(rank, …)`` allowed by the shape).

        ``like`` selects the array library (an array of it); NumPy by default.
        """
        rng = np.random.default_rng(seed)
        shape = tuple(int(n) for n in shape)
        d = len(shape)
        ranks = [1]
        for k in range(1, d):
            left = int(np.prod(shape[:k]))
            right = int(np.prod(shape[k:]))
            ranks.append(min(rank, left, right))
        ranks.append(1)
        cores = [rng.standard_normal((ranks[k], shape[k], ranks[k + 1])) for k in range(d)]
        return cls(tuple(_like(c, like) for c in cores))

    # -- dense conversion and element access ------------------------------------------------------
    def to_dense(self):
        """The full tensor (beware: ``∏ n_k`` entries)."""
        xp = self.xp
        out = self.cores[0]
        for c in self.cores[1:]:
            out = xp.tensordot(out, c, axes=1)
        return xp.reshape(out, self.shape)

    def __getitem__(self, index) -> Any:
        """One entry ``A[i_1, …, i_d]`` computed from the cores in ``O(d r²)`` (a 0-d array)."""
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) != self.ndim:
            raise ShapeError(f"a {self.ndim}-way tensor train needs {self.ndim} indices, got {len(index)}")
        xp = self.xp
        v = None
        for k, (c, i) in enumerate(zip(self.cores, index)):
            i = int(i)
            n = int(c.shape[1])
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of range for mode {k} of size {n}")
            m = c[:, i % n, :]
            v = m if v is None else v @ m
        return xp.reshape(v, ())

    # -- arithmetic ------------------------------------------------------------------------------
    def _check_other(self, other: "TensorTrain") -> None:
        if not isinstance(other, TensorTrain):
            raise TypeError(f"expected a TensorTrain, got {type(other).__name__}")
        namespace(*self.cores, *other.cores)
        if other.shape != self.shape:
            raise ShapeError(f"tensor trains of shapes {self.shape} and {other.shape} do not match")

    def __add__(self, other: "TensorTrain") -> "TensorTrain":
        """Sum in TT form (ranks add); no densification."""
        self._check_other(other)
        xp = self.xp
        d = self.ndim
        if d == 1:
            return self._replace([self.cores[0] + other.cores[0]], self.error_bound + other.error_bound)
        cores = []
        for k, (a, b) in enumerate(zip(self.cores, other.cores)):
            ra, n, ra2 = (int(s) for s in a.shape)
            rb, _, rb2 = (int(s) for s in b.shape)
            if k == 0:
                cores.append(xp.concat([a, b], axis=2))
            elif k == d - 1:
                cores.append(xp.concat([a, b], axis=0))
            else:
                top = xp.concat([a, xp.zeros((ra, n, rb2), dtype=a.dtype)], axis=2)
                bot = xp.concat([xp.zeros((rb, n, ra2), dtype=a.dtype), b], axis=2)
                cores.append(xp.concat([top, bot], axis=0))
        return self._replace(cores, self.error_bound + other.error_bound)

    def __neg__(self) -> "TensorTrain":
        return self * -1.0

    def __sub__(self, other: "TensorTrain") -> "TensorTrain":
        return self + (-other)

    def __mul__(self, c) -> "TensorTrain":
        """Product with a scalar (scales the first core)."""
        if isinstance(c, TensorTrain):
            raise TypeError("use .hadamard(other) for the entrywise product of two tensor trains")
        cores = list(self.cores)
        cores[0] = cores[0] * c
        cf = _f(c) if hasattr(c, "shape") else float(c)
        return self._replace(cores, abs(cf) * self.error_bound)

    __rmul__ = __mul__

    def hadamard(self, other: "TensorTrain") -> "TensorTrain":
        """Entrywise (Hadamard) product in TT form (ranks multiply).

        The error bound uses ``‖X ∘ Y‖_F ≤ ‖X‖_F ‖Y‖_F``.
        """
        self._check_other(other)
        xp = self.xp
        cores = []
        for a, b in zip(self.cores, other.cores):
            ra, n, ra2 = (int(s) for s in a.shape)
            rb, _, rb2 = (int(s) for s in b.shape)
            c = xp.reshape(a, (ra, 1, n, ra2, 1)) * xp.reshape(b, (1, rb, n, 1, rb2))
            cores.append(xp.reshape(c, (ra * rb, n, ra2 * rb2)))
        eb = 0.0
        if self.error_bound or other.error_bound:
            eb = self.error_bound * (other.norm() + other.error_bound) + self.norm() * other.error_bound
        return self._replace(cores, eb)

    def dot(self, other: "TensorTrain"):
        """Inner product ``⟨self, other⟩ = Σ A[i] B[i]`` by a left-to-right sweep (a 0-d array)."""
        self._check_other(other)
        xp = self.xp
        M = None
        for a, b in zip(self.cores, other.cores):
            if M is None:
                M = xp.tensordot(a[0, :, :], b[0, :, :], axes=([0], [0]))
            else:
                T = xp.tensordot(M, a, axes=([0], [0]))  # (rb, n, ra')
                M = xp.tensordot(T, b, axes=([0, 1], [0, 1]))
        return xp.reshape(M, ())

    def norm(self) -> float:
        """Frobenius norm, computed from the left-orthogonal form (no cancellation)."""
        lc = self.left_canonical()
        return _f(fro_norm(lc.cores[-1]))

    # -- canonical forms ------------------------------------------------------------------------
    def left_canonical(self) -> "TensorTrain":
        """Equivalent train whose cores 0…d-2 are left-orthonormal (``Σ_{a,i} G[a,i,b] G[a,i,c] = δ_bc``)."""
        return self.canonical(self.ndim - 1)

    def right_canonical(self) -> "TensorTrain":
        """Equivalent train whose cores 1…d-1 are right-orthonormal."""
        return self.canonical(0)

    def canonical(self, center: int) -> "TensorTrain":
        """Mixed canonical form: cores left of ``center`` left-orthonormal, right of it right-orthonormal.

        The Frobenius norm of the whole tensor is then the norm of ``cores[center]``.
        """
        d = self.ndim
        if not -d <= center < d:
            raise ShapeError(f"orthogonality centre {center} is out of range for {d} cores")
        center %= d
        xp = self.xp
        cores = list(self.cores)
        for k in range(center):
            r, n, r2 = (int(s) for s in cores[k].shape)
            Q, R = qr(xp.reshape(cores[k], (r * n, r2)))
            q = int(Q.shape[1])
            cores[k] = xp.reshape(Q, (r, n, q))
            cores[k + 1] = xp.tensordot(R, cores[k + 1], axes=1)
        for k in range(d - 1, center, -1):
            r, n, r2 = (int(s) for s in cores[k].shape)
            Q, R = qr(xp.matrix_transpose(xp.reshape(cores[k], (r, n * r2))))
            q = int(Q.shape[1])
            cores[k] = xp.reshape(xp.matrix_transpose(Q), (q, n, r2))
            cores[k - 1] = xp.tensordot(cores[k - 1], xp.matrix_transpose(R), axes=1)
        return TensorTrain(tuple(cores), self.error_bound, self.eps)

    def schmidt_spectra(self) -> list:
        """Schmidt (singular) values across every bond ``k | k+1``, ``k = 0…d-2`` (arrays, descending).

        These are the singular values of the unfolding ``A[(i_1…i_{k+1}), (i_{k+2}…i_d)]``.
        """
        xp = self.xp
        cores = list(self.left_canonical().cores)
        spectra = [None] * (self.ndim - 1)
        for k in range(self.ndim - 1, 0, -1):
            r, n, r2 = (int(s) for s in cores[k].shape)
            U, S, Vh = svd(xp.reshape(cores[k], (r, n * r2)))
            q = int(S.shape[0])
            cores[k] = xp.reshape(Vh, (q, n, r2))
            cores[k - 1] = xp.tensordot(cores[k - 1], U * xp.reshape(S, (1, q)), axes=1)
            spectra[k - 1] = S
        return spectra

    def schmidt_spectrum(self, bond: int):
        """Schmidt values across bond ``bond`` (between mode ``bond`` and ``bond + 1``)."""
        if not 0 <= bond < self.ndim - 1:
            raise ShapeError(f"bond must be in 0..{self.ndim - 2}, got {bond}")
        return self.schmidt_spectra()[bond]

    def entanglement_entropies(self, base: float = math.e) -> list[float]:
        """Von Neumann entropy ``−Σ p log p`` (``p = s²/Σ s²``) of the Schmidt spectrum at every bond."""
        return [_entropy(s, base) for s in self.schmidt_spectra()]

    def entanglement_entropy(self, bond: int, base: float = math.e) -> float:
        """Von Neumann entropy of the Schmidt spectrum at one bond."""
        return _entropy(self.schmidt_spectrum(bond), base)

    # -- rounding -------------------------------------------------------------------------------
    def round(
        self,
        eps: float = _DEFAULT_EPS,
        max_rank: int | None = None,
        *,
        check: bool = False,
        certify: bool = False,
    ) -> "TensorTrain":
        """Recompress to the smallest ranks with ``‖self − result‖_F ≤ eps·‖self‖_F`` (unless ``max_rank`` binds).

        By default the returned ``error_bound`` is ``self.error_bound`` plus ``sqrt(Σ discarded²)``, the
        recompression error in exact arithmetic: it is *not* certified against the floating-point rounding
        of the QR/SVD sweeps and can be low by ``u·‖self‖_F`` times a modest polynomial in the ranks
        (``u = 2^-53`` for float64 cores), which matters only for ``eps`` near rounding level.  With
        ``certify=True`` that term is replaced by the rigorous a posteriori bound
        :func:`~tropix.tn._linalg.tt_distance_bound` on ``‖self − result‖_F`` (rounding included), which
        forms the dense tensor once (``∏ n_k`` entries; SizeLimitError above ``2^26``).  With
        ``check=True`` the rounding error is recomputed densely and compared with its bound.

        Examples
        --------
        >>> import numpy as np
        >>> a = TensorTrain.random((3, 3, 3, 3), rank=2, seed=1)
        >>> r = (a + a).round(1e-10, certify=True)
        >>> r.ranks, bool(0 < r.error_bound < 1e-13 * a.norm())
        ((1, 2, 2, 2, 1), True)
        """
        eps = check_eps(eps)
        max_rank = check_max_rank(max_rank)
        if certify and math.prod(self.shape) > 2**26:
            raise SizeLimitError(
                f"round(certify=True) forms the dense tensor: {math.prod(self.shape)} entries exceed the 2^26 limit"
            )
        xp = self.xp
        rc = self.right_canonical()
        cores = list(rc.cores)
        d = len(cores)
        # the norm sits in cores[0]: scaled by a power of two (exact) so that squared singular values and the
        # budget neither overflow nor underflow; the last core is scaled back
        m = _f(xp.max(xp.abs(cores[0])))
        e = int(np.frexp(m)[1]) if 0.0 < m < math.inf else 0
        cores[0] = _pow2_scale(cores[0], -e)
        nrm = _f(fro_norm(cores[0]))
        budget = (eps * nrm) ** 2
        used = 0.0
        for k in range(d - 1):
            r, n, r2 = (int(s) for s in cores[k].shape)
            U, S, Vh = svd(xp.reshape(cores[k], (r * n, r2)))
            allowed = max(0.0, budget - used) / (d - 1 - k)
            rk, disc = truncation_rank(S, allowed, max_rank)
            used += disc
            cores[k] = xp.reshape(U[:, :rk], (r, n, rk))
            SV = xp.reshape(S[:rk], (rk, 1)) * Vh[:rk, :]
            cores[k + 1] = xp.tensordot(SV, cores[k + 1], axes=1)
        cores[-1] = _pow2_scale(cores[-1], e)
        err, nrm = math.ldexp(math.sqrt(used), e), math.ldexp(nrm, e)
        if certify:
            err = tt_distance_bound(self.cores, cores)
        else:
            err = err * (1 + 1e-12)
        out = TensorTrain(tuple(cores), self.error_bound + err, eps)
        if check:
            true = _f(fro_norm(self.to_dense() - out.to_dense()))
            _check_bound(true, err, nrm, "TensorTrain.round")
        return out


def _check_bound(true: float, bound: float, scale: float, what: str) -> None:
    slack = 1e-10 * scale + 1e-300
    if true > bound * (1 + 1e-8) + slack:
        raise BoundViolationError(f"{what}: actual error {true:.3e} exceeds the certified bound {bound:.3e}")


def _entropy(s, base: float) -> float:
    p = np.asarray(to_numpy(s), dtype=np.float64) ** 2
    tot = p.sum()
    if tot == 0:
        return 0.0
    p = p[p > 0] / tot
    return float(-(p * np.log(p)).sum() / math.log(base))


def _like(a: np.ndarray, like: Any):
    if like is None or isinstance(like, np.ndarray):
        return a
    from .._array import from_numpy

    return from_numpy(a, like)


def tt_svd(tensor: Any, eps: float = _DEFAULT_EPS, max_rank: int | None = None, *, check: bool = False) -> TensorTrain:
    """TT-SVD (Oseledets' δ-truncation): a tensor train with ``‖A − A_TT‖_F ≤ eps·‖A‖_F``.

    Parameters
    ----------
    tensor : array_like
        A dense tensor of any array library (exact input is converted to ``float64``).
    eps : float in (0, 1)
        Relative Frobenius tolerance.
    max_rank : int ≥ 1, optional
        Cap on every TT rank.  If it binds, the tolerance may be missed; the achieved bound is reported in
        ``error_bound`` (and ``rel_error_bound``).
    check : bool
        Recompute the error densely and raise :class:`~tropix.errors.BoundViolationError` if it exceeds the
        certified bound.

    Returns
    -------
    TensorTrain
        Left-orthonormal cores 0…d-2.  ``error_bound`` is a rigorous a posteriori bound on
        ``‖A − A_TT‖_F`` for the tensor ``A_TT`` the stored cores represent exactly, rounding included (for
        exact input ``A`` is the exact tensor, before conversion to ``float64``); see the module docstring
        and :func:`~tropix.tn._linalg.tt_residual_bound`.  It is at most ``eps·‖A‖_F`` unless ``max_rank``
        binds or ``eps`` is at rounding level.

    Raises
    ------
    ToleranceError
        If ``eps`` is not in (0, 1) or ``max_rank < 1``.
    NaNError, EmptyInputError
        For NaN entries or an empty tensor.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((4, 5, 6))
    >>> tt = tt_svd(A, eps=0.3)
    >>> err = np.linalg.norm(tt.to_dense() - A) / np.linalg.norm(A)
    >>> bool(err <= 0.3), bool(tt.error_bound >= err * np.linalg.norm(A))
    (True, True)
    >>> tt_svd(A, eps=0.3, max_rank=1).ranks
    (1, 1, 1, 1)
    >>> full = tt_svd(A, eps=1e-14)        # nothing discarded: the bound is the rounding, a few u·‖A‖_F
    >>> bool(0 < full.error_bound < 1e-13 * np.linalg.norm(A))
    True
    """
    eps = check_eps(eps)
    max_rank = check_max_rank(max_rank)
    A = as_float(tensor)
    tt, nrm = _tt_svd(A, eps, max_rank, conversion_error(tensor, A))
    if check:
        true = _f(fro_norm(A - tt.to_dense()))
        _check_bound(true, tt.error_bound, nrm, "tt_svd")
    return tt


def _pow2_scale(x, e: int):
    """``x · 2^e``: one multiplication when ``2.0 ** e`` is a normal float, else two exact steps (a single
    ``2.0 ** e`` overflows for ``|e| > 1023``)."""
    if e == 0:
        return x
    if -1022 <= e <= 1023:
        return x * 2.0**e
    h = e // 2
    return (x * 2.0**h) * 2.0 ** (e - h)


def _tt_sweep(A, eps: float, max_rank: int | None, reserve: float = 0.0):
    """The left-to-right TT-SVD sweep of a float tensor: ``(cores, nrm, tail)``, no certificate.

    ``tail = sqrt(Σ discarded²)``; the truncation budget is ``(eps·‖A‖_F − reserve)²``.  The sweep runs on
    ``A`` scaled by a power of two to ``max |A| ∈ [1/2, 1)`` (exact), so norms and squared singular values
    neither overflow nor underflow; the last core is scaled back.
    """
    xp = namespace(A)
    shape = tuple(int(s) for s in A.shape)
    d = len(shape)
    if d == 0:
        raise ShapeError("tt_svd needs a tensor with at least one mode")
    m = _f(xp.max(xp.abs(A)))
    e = int(np.frexp(m)[1]) if 0.0 < m < math.inf else 0
    C = _pow2_scale(A, -e)
    # max |C| ∈ [1/2, 1) after the scaling: the plain sum of squares neither overflows nor loses anything
    nrm = _f(xp.sqrt(xp.sum(C * C))) if 0.0 < m < math.inf else _f(fro_norm(C))
    budget = max(0.0, eps * nrm - math.ldexp(reserve, -e)) ** 2
    used = 0.0
    cores = []
    r = 1
    for k in range(d - 1):
        C = xp.reshape(C, (r * shape[k], -1))
        allowed = max(0.0, budget - used) / (d - 1 - k)
        U, C, disc = truncated_split(C, allowed, max_rank, nrm * nrm)  # ‖C‖_F ≤ ‖A‖_F up to rounding
        rk = int(U.shape[1])
        used += disc
        cores.append(xp.reshape(U, (r, shape[k], rk)))
        r = rk
    cores.append(_pow2_scale(xp.reshape(C, (r, shape[-1], 1)), e))
    return tuple(cores), math.ldexp(nrm, e), math.ldexp(math.sqrt(used), e)


def _tt_svd(A, eps: float, max_rank: int | None, conversion=None, sweep=None) -> tuple[TensorTrain, float]:
    """TT-SVD of a float tensor with the a posteriori certificate (``conversion``: see ``conversion_error``;
    ``sweep``: the result of ``_tt_sweep(A, eps, max_rank)`` if already computed).

    When the certificate exceeds ``eps·‖A‖_F`` only because the truncation used the whole budget and rounding
    came on top, the sweep is repeated once with the budget reduced by twice the measured rounding part.
    """
    cores, nrm, tail = _tt_sweep(A, eps, max_rank) if sweep is None else sweep
    bound = tt_residual_bound(A, cores, conversion)
    target = eps * nrm
    if bound > target and 0 < tail <= target:
        cores2, _, _ = _tt_sweep(A, eps, max_rank, 2 * (bound - tail))
        bound2 = tt_residual_bound(A, cores2, conversion)
        if bound2 < bound:
            cores, bound = cores2, bound2
    return TensorTrain(cores, bound, eps), nrm


def tt_round(
    tt: TensorTrain,
    eps: float = _DEFAULT_EPS,
    max_rank: int | None = None,
    *,
    check: bool = False,
    certify: bool = False,
) -> TensorTrain:
    """Rounding (recompression) of a tensor train; see :meth:`TensorTrain.round`.

    Examples
    --------
    >>> import numpy as np
    >>> a = TensorTrain.random((3, 3, 3, 3), rank=2, seed=1)
    >>> s = a + a                      # ranks 4, representing 2a (rank 2)
    >>> s.ranks, tt_round(s, eps=1e-10).ranks
    ((1, 4, 4, 4, 1), (1, 2, 2, 2, 1))
    """
    return tt.round(eps, max_rank, check=check, certify=certify)


def schmidt_spectrum(tensor: Any, cut: int):
    """Singular values of the unfolding ``tensor[(modes < cut), (modes ≥ cut)]`` of a dense tensor or matrix.

    For a matrix ``W`` reshaped as ``(m_1, …, m_k, n_1, …)`` this is the spectrum across that cut; for
    a :class:`TensorTrain` use :meth:`TensorTrain.schmidt_spectrum`.

    Examples
    --------
    >>> import numpy as np
    >>> schmidt_spectrum(np.eye(3).reshape(3, 3), 1)
    array([1., 1., 1.])
    """
    if isinstance(tensor, TensorTrain):
        return tensor.schmidt_spectrum(cut - 1)
    A = as_float(tensor)
    xp = namespace(A)
    shape = tuple(int(s) for s in A.shape)
    if not 0 < cut < len(shape):
        raise ShapeError(f"cut must be in 1..{len(shape) - 1} for a {len(shape)}-way tensor, got {cut}")
    m = int(np.prod(shape[:cut]))
    return xp.linalg.svdvals(xp.reshape(A, (m, -1)))


def entanglement_entropy(tensor: Any, cut: int, base: float = math.e) -> float:
    """Von Neumann entropy of :func:`schmidt_spectrum` ``(tensor, cut)``.

    Examples
    --------
    >>> import numpy as np
    >>> bell = np.array([[1.0, 0.0], [0.0, 1.0]]) / np.sqrt(2)
    >>> round(entanglement_entropy(bell, 1, base=2), 12)
    1.0
    """
    return _entropy(schmidt_spectrum(tensor, cut), base)
