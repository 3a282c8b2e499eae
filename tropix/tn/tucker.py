"""Tucker decomposition: truncated HOSVD with a certified error, HOOI refinement, shared factors.

``A ≈ G ×_1 U_1 ×_2 U_2 ⋯`` with orthonormal factor matrices ``U_n`` (``n_n × r_n``) and a core ``G``.

**Truncation.**  For the truncated HOSVD, in exact arithmetic
``‖A − A_T‖²_F ≤ Σ_n (discarded squared singular values of the mode-n unfolding)`` (De Lathauwer, De Moor,
Vandewalle 2000), so every compressed mode gets the budget ``eps²‖A‖²/(number of compressed modes)``.
HOOI then refines the factors at fixed ranks (each step replaces one factor by the leading left singular
vectors of the partially projected tensor, which in exact arithmetic does not increase the error).

**The reported bound.**  :attr:`TuckerDecomposition.error_bound` is not that exact-arithmetic sum: it is an
*a posteriori* certificate of the stored core and factors, :func:`tucker_residual_bound` — the residual
``A − G ×_1 U_1 ⋯`` evaluated in float64 plus a rigorous bound on the rounding of that evaluation (and, for
exact input, of the conversion to float64: the bound is then against the exact tensor).  It therefore covers
truncation, HOOI and all floating-point rounding of the SVDs and projections; a tensor kept at full rank gets
a few ``u·‖A‖_F``, not 0.  If rounding pushes the certificate above ``eps·‖A‖_F`` although the truncation
fitted the budget, the decomposition is recomputed once with the budget reduced by twice the measured
rounding part; ``error_bound`` can still exceed ``eps·‖A‖_F`` when ``eps`` is at rounding level or
``ranks``/``max_rank`` bind: it is always the bound actually achieved.  The certificate costs one float64
reconstruction of the dense tensor (which also gives ``error``) plus Gram products of the same order of work,
about 2-4× a plain ``‖A − to_dense()‖_F`` and, measured single-threaded, 0-20 % of the whole call (e.g. a
``4 × 12 × 384 × 32`` stack of attention heads at ``eps = 0.3``: 0.14 s against 0.12 s without it); see
:func:`tucker_residual_bound`.

**Shared factors.** Modes listed in ``shared_across`` are not compressed (their factor is the identity),
so the factors of the remaining modes are shared by every slice along them.  Stacking the weight
matrices of all heads of a layer as ``(heads, d_model, d_head)`` and passing ``shared_across=0``
compresses all heads with one pair of factor matrices; the certificate covers the whole stack, and
:attr:`TuckerDecomposition.slice_error_bounds` certifies every slice (every head) on its own.

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
>>> bool(0 < dec.error_bound < 1e-13 * np.linalg.norm(heads))    # exact rank: only rounding is left
True
>>> dec.slice_error_bounds.shape                                  # one certificate per head
(4,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from .._array import asarray, is_array, namespace, to_numpy
from .._repr import compact_repr, summary
from ..errors import ArgumentTypeError, FloatOverflowError, ShapeError, ToleranceError
from ..tropical._args import check_array_dtype, check_dims, check_int
from ._linalg import (
    _U64,
    _float_up,
    _fro_up,
    _gamma,
    _product_fro_up,
    _sqrt_up,
    as_float,
    check_eps,
    check_max_rank,
    conversion_error,
    fro_norm,
    svd,
    truncation_rank,
)
from .tt import _check_bound, _pow2_scale

__all__ = ["TuckerDecomposition", "tucker", "mode_product", "tucker_residual_bound"]


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
    for name, a in (("T", T), ("M", M)):
        if not is_array(a):
            raise ArgumentTypeError(f"mode_product: {name} must be an array (NumPy, torch, ...), got {type(a).__name__}")
    # (entries of object arrays checked: strings were raw TypeErrors from the product)
    T, M = (asarray(a, name=n) if isinstance(a, np.ndarray) and a.dtype == object else a for a, n in ((T, "T"), (M, "M")))
    xp = namespace(T, M)
    mode = check_int(mode, "mode")
    if not 0 <= mode < T.ndim:
        raise ShapeError(f"mode must be in 0..{T.ndim - 1} for a {T.ndim}-way tensor, got {mode}")
    if M.ndim != 2 or int(M.shape[1]) != int(T.shape[mode]):
        raise ShapeError(f"M must be a matrix with {int(T.shape[mode])} columns (the size of mode {mode}), got shape "
                         f"{tuple(M.shape)}")
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
        Rigorous bound on ``‖A − to_dense()‖_F`` for the tensor the stored core and factors represent
        exactly, rounding included (for exact input ``A`` is the exact tensor); see :func:`tucker_residual_bound`.
    error : float
        The error ``‖A − to_dense()‖_F`` of the returned decomposition, computed densely in float64
        (an estimate, not a bound).
    norm : float
        ``‖A‖_F``.
    shared_across : tuple of int
        Modes left uncompressed.
    slice_error_bounds : numpy.ndarray or None
        With shared modes: for every index of the shared modes (an array of their shape), a rigorous bound on
        the error of that slice, e.g. of each stacked head (its own residual plus the whole rounding term).
    """

    core: Any
    factors: tuple
    error_bound: float
    error: float
    norm: float
    shared_across: tuple = ()
    slice_error_bounds: Any = None
    _repr_fields = ("ranks", "error_bound", "error", "norm", "shared_across")
    __repr__ = compact_repr

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


# -- the a posteriori certificate ------------------------------------------------------------------------------
def _pow2_normalise(x: np.ndarray) -> tuple[np.ndarray, int]:
    """``(x·2^-e, e)`` with ``max |x·2^-e| ∈ [1/2, 1)`` when that scaling is exact, else ``(x, 0)``."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    if not 0.0 < m < math.inf:
        return x, 0
    e = int(np.frexp(m)[1])
    y = np.ldexp(x, -e)
    return (y, e) if np.array_equal(np.ldexp(y, e), x) else (x, 0)


def _spectral_norm_up(U: np.ndarray) -> Fraction | None:
    """A rational upper bound on ``‖U‖_2`` (``U`` of shape ``n × r``), ``None`` if not finite.

    ``‖U‖²_2 = λ_max(UᵀU) ≤ max_i Σ_j |UᵀU|_ij``.  The computed Gram matrix ``Ĝ = fl(UᵀU)`` satisfies
    ``|Ĝ − UᵀU| ≤ γ_n |U|ᵀ|U| ≤ γ_n/(1 − γ_n) Ĥ`` with ``Ĥ = fl(|U|ᵀ|U|)``, so ``|UᵀU| ≤ W = |Ĝ| + g Ĥ``
    (``g ≥ γ_n/(1 − γ_n)``).  ``W`` is formed with two roundings per entry and its row sums (``r``
    nonnegative terms) with ``γ_{r−1}``, so the computed maximum row sum is inflated by
    ``1/((1 − u)²(1 − γ_r))``; ``r·2^-1060`` covers underflow of ``g Ĥ``.
    """
    n, r = int(U.shape[0]), int(U.shape[1])
    if n == 0 or r == 0:
        return Fraction(0)
    if 2 * max(n, r) * _U64 >= 1:
        return None
    Ua = np.abs(U)
    g = _float_up(_gamma(n) / (1 - _gamma(n)))
    W = np.abs(U.T @ U) + g * (Ua.T @ Ua)
    s = float(np.max(np.sum(W, axis=1)))
    if not math.isfinite(s):
        return None
    q = Fraction(s) / ((1 - _U64) ** 2 * (1 - _gamma(r))) + r * Fraction(2) ** -1060
    return _sqrt_up(q)


def _certificate(A: Any, core: Any, factors: Sequence[Any], conversion=None, slice_modes: tuple = ()):
    """``(bound, err, slices)``: the certificate of :func:`tucker_residual_bound`, the computed ``‖A − T̂‖_F`` and,
    when ``slice_modes`` is not empty, a float64 array (shaped like those modes of ``A``) of bounds on the error of
    every slice: ``‖(A − A_T)_s‖_F ≤ ‖(A − T̂)_s‖_F + ‖T̂ − A_T‖_F``, the first term bounded slice by slice like the
    whole residual, the second the whole contraction term (``None`` when ``slice_modes`` is empty)."""
    An = np.asarray(to_numpy(A), dtype=np.float64)
    G = np.asarray(to_numpy(core), dtype=np.float64)
    d = G.ndim
    if len(factors) != d:
        raise ShapeError(f"a {d}-way core needs {d} factors (None for an identity), got {len(factors)}")
    Us = [None if U is None else np.asarray(to_numpy(U), dtype=np.float64) for U in factors]
    shape = []
    for m, U in enumerate(Us):
        if U is None:
            shape.append(int(G.shape[m]))
            continue
        if U.ndim != 2 or int(U.shape[1]) != int(G.shape[m]):
            raise ShapeError(f"factor {m} must be a matrix with {int(G.shape[m])} columns, got shape {tuple(U.shape)}")
        shape.append(int(U.shape[0]))
    if tuple(int(s) for s in An.shape) != tuple(shape):
        raise ShapeError(f"the decomposition represents shape {tuple(shape)}, but the tensor has {tuple(An.shape)}")
    # core and factors scaled by powers of two where exact (the data then represent 2^-E A_T exactly), A by 2^-E
    G, E = _pow2_normalise(G)
    for m, U in enumerate(Us):
        if U is not None:
            Us[m], e = _pow2_normalise(U)
            E += e
    tiny = Fraction(0)
    conv = None if conversion is None else np.asarray(conversion, dtype=np.float64)
    if E:
        with np.errstate(over="ignore", under="ignore"):
            As = np.ldexp(An, -E)
        if not np.array_equal(np.ldexp(As, E), An):  # entries lost to underflow: ≤ 2^-1074 each
            tiny = (math.isqrt(int(An.size)) + 1) * Fraction(2) ** -1074
        An = As
        if conv is not None:
            with np.errstate(under="ignore"):
                cv = np.ldexp(conv, -E)
            low = np.ldexp(cv, E) < conv
            cv[low] = np.nextafter(cv[low], np.inf)
            conv = cv
    # the reconstruction T̂: mode products in order of increasing growth n_m / r_m
    modes = sorted((m for m in range(d) if Us[m] is not None), key=lambda m: Us[m].shape[0] / max(1, Us[m].shape[1]))
    rho = {}
    for m in modes:
        rho[m] = _spectral_norm_up(Us[m])
        if rho[m] is None:
            return _inf(An, slice_modes)
    T = G
    terms = []  # γ_{r_m} ‖|U_m| |T̂_{k−1}|_(m)‖_F, the k-th step's rounding before the later factors act
    for m in modes:
        U = Us[m]
        r = int(U.shape[1])
        rest = T.shape[:m] + T.shape[m + 1 :]
        M = np.moveaxis(T, m, 0).reshape(r, -1)
        if r == 0 or M.shape[1] == 0:
            bk = Fraction(0)
        else:
            bk = _product_fro_up(U, M, r)
            if bk is None:
                return _inf(An, slice_modes)
        terms.append(_gamma(max(r, 1)) * bk)
        T = np.moveaxis((U @ M).reshape((int(U.shape[0]),) + rest), 0, m)
    contraction = Fraction(0)
    for k in range(len(modes)):
        t = terms[k]
        for m in modes[k + 1 :]:
            t *= rho[m]
        contraction += t
    with np.errstate(over="ignore", invalid="ignore"):
        D = np.subtract(An, T)  # fl(A − T̂): |A − T̂| ≤ |D| / (1 − u)
        err = math.ldexp(float(np.linalg.norm(D)), E)
        Z = np.abs(D, out=D)
        if conv is not None:
            Z = Z + conv  # one more rounding: Z ≥ (1 − u)² z
    resid = _fro_up(Z, 2)
    if resid is None:
        return _inf(An, slice_modes)
    slices = None
    if slice_modes:
        rest = [m for m in range(d) if m not in slice_modes]
        sshape = tuple(int(An.shape[m]) for m in slice_modes)
        Zs = np.transpose(Z.reshape(An.shape), tuple(slice_modes) + tuple(rest)).reshape(math.prod(sshape), -1)
        slices = np.empty(Zs.shape[0])
        for i in range(Zs.shape[0]):
            r_i = _fro_up(Zs[i], 2)
            slices[i] = math.inf if r_i is None else _float_up((r_i + tiny + contraction) * Fraction(2) ** E)
        slices = slices.reshape(sshape)
    return _float_up((resid + tiny + contraction) * Fraction(2) ** E), err, slices


def _inf(An, slice_modes):
    slices = np.full(tuple(int(An.shape[m]) for m in slice_modes), math.inf) if slice_modes else None
    return math.inf, math.inf, slices


def tucker_residual_bound(A: Any, core: Any, factors: Sequence[Any], conversion=None) -> float:
    """A rigorous upper bound on ``‖A − core ×_1 U_1 ⋯ ×_d U_d‖_F`` for the exact values of the stored data.

    ``factors[m]`` is an ``n_m × r_m`` matrix or ``None`` (identity: mode ``m`` is not transformed); any array
    library and floating dtype (converted to NumPy float64, exactly).  ``conversion`` (from
    :func:`~tropix.tn._linalg.conversion_error`) adds per-entry bounds on ``|A_exact − A|`` when ``A`` is the
    float64 image of exact input; the bound is then on ``‖A_exact − A_T‖_F``.  The factors need not be
    orthonormal: everything is measured, nothing assumed.

    Derivation (float64, ``u = 2^-53``, ``γ_K = K u/(1 − K u)``).  ``T̂`` is computed by mode products
    ``T̂_k = fl(U_{m_k} T̂_{k−1,(m_k)}) = U_{m_k} T̂_{k−1,(m_k)} + E_k`` (inner length ``r_{m_k}``) with
    ``|E_k| ≤ γ_{r_{m_k}} |U_{m_k}||T̂_{k−1,(m_k)}|`` (Higham, *Accuracy and Stability* §3.5, any summation
    order).  Unrolling, ``T̂ − A_T = Σ_k E_k ×_{m_{k+1}} U_{m_{k+1}} ⋯``, and a mode product with ``U``
    multiplies the Frobenius norm by at most ``‖U‖_2``, so
    ``‖T̂ − A_T‖_F ≤ Σ_k γ_{r_{m_k}} ‖|U_{m_k}||T̂_{k−1}|‖_F ∏_{j>k} ‖U_{m_j}‖_2``: the Frobenius norms are
    bounded from Gram matrices without forming ``|U||T̂|`` (``_linalg._product_fro_up``), the spectral norms
    by the row sums of the computed ``UᵀU`` with its rounding bound (``≈ 1`` for orthonormal factors).
    Then ``‖A_exact − A_T‖_F ≤ ‖(|fl(A − T̂)| + conv)/(1 − u)‖_F + ‖T̂ − A_T‖_F``, the first norm bounded
    from its computed value (``_linalg._fro_up``); the terms are summed exactly with Fractions and rounded up.
    The core and factors are first scaled by powers of two to entries in ``[1/2, 1)`` (where exact) and
    ``A`` by the product (an absolute term covers entries lost to underflow), so the result does not depend
    on the scale of the data.  Assumptions: IEEE float64 in NumPy/BLAS, no underflow in the products after
    that scaling (as in :func:`~tropix.tn._linalg.tt_residual_bound`).  Non-finite values give ``inf``.

    Cost: one float64 reconstruction (``Σ_k n_{m_k}·|T̂_{k−1}|`` flops), Gram products
    ``r_{m_k}·|T̂_{k−1}|·r_{m_k}`` and ``n r²`` per factor, and one pass over the residual; memory a few
    copies of the dense tensor.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.arange(24.0).reshape(2, 3, 4)
    >>> U = [np.linalg.svd(A.reshape(2, -1))[0], None, None]       # full-rank factor of mode 0
    >>> core = np.tensordot(U[0].T, A, axes=1)
    >>> b = tucker_residual_bound(A, core, U)
    >>> bool(0 < b < 1e-13)                          # no truncation: the bound covers the rounding only
    True
    >>> b1 = tucker_residual_bound(A, core[:1], [U[0][:, :1], None, None])
    >>> s = np.linalg.svd(A.reshape(2, -1), compute_uv=False)
    >>> round(float(b1 / s[1]), 9)                        # rank 1 in mode 0: the discarded singular value
    1.0
    """
    # (complex data lost its imaginary part, strings in object arrays were parsed, a bare array or None as the
    # factors was a raw TypeError from len())
    A, core = (check_array_dtype(asarray(x, name=n), n) for x, n in ((A, "A"), (core, "core")))
    if isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence):
        raise ArgumentTypeError(f"factors must be a sequence of matrices (None for an identity), got {summary(factors)}")
    factors = [None if U is None else check_array_dtype(asarray(U, name=f"factors[{m}]"), f"factors[{m}]")
               for m, U in enumerate(factors)]
    return _certificate(A, core, factors, conversion)[0]


# -- the decomposition ------------------------------------------------------------------------------------------
def _hosvd_hooi(A, modes, eps, ranks, max_rank, n_iter, nrm, reserve=0.0):
    """Truncated HOSVD plus ``n_iter`` HOOI sweeps of a float tensor: ``(core, factors, tail)``, no certificate.

    ``tail = sqrt(Σ discarded²)`` (the exact-arithmetic HOSVD bound); the per-mode budget is
    ``(eps·‖A‖_F − reserve)² / len(modes)``.
    """
    xp = namespace(A)
    d = A.ndim
    budget = max(0.0, eps * nrm - reserve) ** 2 / max(1, len(modes)) if eps is not None else -1.0
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
    return core, factors, math.sqrt(disc_total)


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
        Exact input (ints, Fractions) is converted to ``float64``; the bound is then against the exact tensor.
    eps : float in (0, 1), optional
        Requested relative accuracy: the truncation targets ``‖A − A_T‖_F ≤ eps·‖A‖_F``, and
        ``error_bound ≤ eps·‖A‖_F`` unless ``ranks``/``max_rank`` bind or ``eps`` is at rounding level.
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
        Recompute the error densely (``to_dense()`` in the input's library, independently of the certificate)
        and raise BoundViolationError if it exceeds ``error_bound``.

    Returns
    -------
    TuckerDecomposition
        ``error_bound`` is the a posteriori certificate :func:`tucker_residual_bound` of the stored core and
        factors (truncation, HOOI and rounding included).

    Raises
    ------
    NaNError
        For NaN or infinite entries: a real decomposition needs finite data (an infinite entry made every
        factor NaN and the bound infinite), as in :func:`~tropix.tn.tt.tt_svd`.
    ArgumentTypeError
        For a complex or non-numeric tensor, or ``ranks`` / ``shared_across`` of the wrong type.
    ToleranceError, ShapeError
        For ``eps`` outside (0, 1), ranks below 1, or ranks / shared modes that do not fit the tensor.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.random.default_rng(1).standard_normal((6, 7, 8))
    >>> dec = tucker(A, eps=0.5, n_iter=3)
    >>> bool(np.linalg.norm(dec.to_dense() - A) <= dec.error_bound <= 0.5 * np.linalg.norm(A))
    True
    >>> from fractions import Fraction
    >>> X = [[[Fraction(1, 1 + i + 2 * j + 5 * k) for k in range(2)] for j in range(3)] for i in range(2)]
    >>> full = tucker(X, eps=1e-14)     # nothing discarded; the bound covers conversion and rounding
    >>> full.ranks, bool(0 < full.error_bound < 1e-14)
    ((2, 3, 2), True)
    """
    conv_parts = None
    if isinstance(tensor, (list, tuple)) and tensor and hasattr(tensor[0], "shape"):
        xp0 = namespace(*tensor)
        shapes = {tuple(int(s) for s in t.shape) for t in tensor}
        if len(shapes) != 1:
            raise ShapeError(f"arrays to be stacked must have one shape, got {sorted(shapes)}")
        floats = [as_float(t) for t in tensor]
        conv_parts = [conversion_error(t, f) for t, f in zip(tensor, floats)]
        tensor = xp0.stack(floats, axis=0)
        if shared_across == ():
            shared_across = (0,)
        if all(c is None for c in conv_parts):
            conversion = None
        else:
            conversion = np.stack(
                [np.zeros(f.shape) if c is None else c for c, f in zip(conv_parts, floats)], axis=0
            )
        A = tensor
    else:
        A = as_float(tensor)
        conversion = conversion_error(tensor, A)
    xp = namespace(A)
    d = A.ndim
    if d == 0:
        raise ShapeError("tucker needs a tensor with at least one mode")
    if isinstance(shared_across, (str, bytes)) or not (
            isinstance(shared_across, (int, np.integer)) or isinstance(shared_across, (Sequence, np.ndarray))):
        raise ArgumentTypeError(f"shared_across must be a mode index or a sequence of them, got {shared_across!r}")
    shared = (shared_across,) if isinstance(shared_across, (int, np.integer)) else tuple(shared_across)
    shared = tuple(check_int(m, "shared_across") for m in shared)
    shared = tuple(sorted({int(m) % d if -d <= int(m) < d else _bad_mode(m, d) for m in shared}))
    modes = [n for n in range(d) if n not in shared]
    if eps is None and ranks is None and max_rank is None:
        raise ToleranceError("tucker needs eps, ranks or max_rank")
    if eps is not None:
        eps = check_eps(eps)
    max_rank = check_max_rank(max_rank)
    if ranks is not None:
        ranks = check_dims(ranks, "ranks", minimum=-2**62)  # (ranks < 1: ToleranceError below)
        if len(ranks) != d:
            raise ShapeError(f"ranks has {len(ranks)} entries for a {d}-way tensor")
        if any(ranks[n] < 1 for n in modes):
            raise ToleranceError(f"ranks must be at least 1, got {ranks}")
    if not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ToleranceError(f"n_iter must be a non-negative integer, got {n_iter!r}")

    # work on A scaled by a power of two to max |A| ∈ [1/2, 1) (squares neither overflow nor underflow)
    mx = _f(xp.max(xp.abs(A)))
    e = int(np.frexp(mx)[1]) if 0.0 < mx < math.inf else 0
    C = _pow2_scale(A, -e)
    nrm_c = _f(fro_norm(C))
    try:
        nrm = math.ldexp(nrm_c, e)
    except OverflowError:
        raise FloatOverflowError(
            f"the Frobenius norm of the tensor (about 2^{e} · {nrm_c:.3g}) exceeds the float64 range, so neither "
            "the norm nor the error bound is representable; rescale the tensor"
        ) from None

    def run(reserve: float):
        core, factors, tail = _hosvd_hooi(C, modes, eps, ranks, max_rank, n_iter, nrm_c, math.ldexp(reserve, -e))
        core = _pow2_scale(core, e)
        bound, err, slices = _certificate(A, core, factors, conversion, shared)
        return core, tuple(factors), math.ldexp(tail, e), bound, err, slices

    core, factors, tail, bound, err, slices = run(0.0)
    if eps is not None:
        target = eps * nrm
        if bound > target and 0 < tail <= target:  # the truncation fitted; rounding came on top
            again = run(2 * (bound - tail))
            if again[3] < bound:
                core, factors, tail, bound, err, slices = again
    out = TuckerDecomposition(core, factors, bound, err, nrm, shared, slices)
    if check:
        # (the stored core and factors multiplied out in float64: see tt._train64)
        from .tt import _np64

        out64 = replace(out, core=_np64(out.core), factors=tuple(None if U is None else _np64(U) for U in out.factors))
        _check_bound(float(np.linalg.norm(_np64(A) - np.asarray(out64.to_dense()))), bound, nrm, "tucker")
    return out


def _bad_mode(m, d):
    raise ShapeError(f"mode {m} is out of range for a {d}-way tensor")
