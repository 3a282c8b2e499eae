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
    "tt_distance_bound",
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
    """Frobenius norm of an array of any shape (a 0-d array of the input's library).

    Entries are scaled by a power of two (exact) so that squares of very large or very small entries
    neither overflow nor underflow.

    Examples
    --------
    >>> import numpy as np
    >>> float(fro_norm(np.array([3e200, 4e200]))), float(fro_norm(np.array([3e-200, 4e-200])))
    (5e+200, 5e-200)
    """
    xp = namespace(x)
    m = float(to_numpy(xp.max(xp.abs(x)))) if math.prod(int(s) for s in x.shape) else 0.0
    if not 0.0 < m < math.inf or 2.0**-400 <= m <= 2.0**400:
        return xp.sqrt(xp.sum(x * x))
    e = int(np.frexp(m)[1])
    h = e // 2
    y = (x * 2.0**-h) * 2.0 ** (h - e)
    return xp.sqrt(xp.sum(y * y)) * 2.0**h * 2.0 ** (e - h)


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
    """The smallest float ``>= q`` (``q`` a nonnegative rational; ``inf`` beyond the float range)."""
    try:
        f = float(q)
    except OverflowError:
        return math.inf
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
        if isinstance(e, (int, Fraction)):
            out[i] = _float_up(abs(Fraction(e) - Fraction(float(f))))
        else:  # a non-rational real (e.g. a sympy Float): rounded to nearest, |v − f| ≤ u|v| ≤ 2u|f|
            out[i] = abs(float(f)) * 2.0**-52
    return out.reshape(Af.shape)


def _fro_up(Z: np.ndarray, K: int) -> Fraction | None:
    """A rational upper bound on ``‖z‖_F`` for a nonnegative ``z`` whose computed float64 image ``Z`` satisfies
    ``Z ≥ (1 − γ_K) z`` entrywise (``None`` when ``Z`` is not finite).

    Unless ``max Z ∈ [2^-300, 2^300]``, ``Z`` is first scaled by a power of two into ``[1/2, 1)`` (exact).  The
    computed ``sqrt(Z·Z)`` (a dot product of length ``N``: relative error ``≤ γ_N``, then ``sqrt``: ``≤ u``)
    is inflated by ``(1 + 2^-200)^2 / ((1 − γ_N)(1 − u)(1 − γ_K))``; the factor ``(1 + 2^-200)^2`` covers
    underflow of negligible squares (at most ``2^-1075`` each, against a sum ``≥ 2^-602``) and of the scaling.
    """
    Z = np.asarray(Z, dtype=np.float64).reshape(-1)
    N = int(Z.shape[0])
    if N == 0:
        return Fraction(0)
    if 2 * N * _U64 >= 1 or 2 * K * _U64 >= 1:
        return None
    m = float(Z.max())
    if not math.isfinite(m):
        return None
    if m == 0.0:
        return Fraction(0)
    e = 0
    if not 2.0**-300 <= m <= 2.0**300:
        e = int(np.frexp(m)[1])
        Z = np.ldexp(Z, -e)
    nhat = Fraction(float(np.sqrt(np.dot(Z, Z))))
    return nhat * Fraction(2) ** e * (1 + Fraction(1, 2**200)) ** 2 / ((1 - _gamma(N)) * (1 - _U64) * (1 - _gamma(K)))


def _product_fro_up(X: np.ndarray, Y: np.ndarray, K: int) -> Fraction | None:
    """A rational upper bound on ``‖|X||Y|‖_F`` (``X`` of shape ``(m, K)``, ``Y`` of shape ``(K, n)``).

    When ``K < n`` it uses ``‖|X||Y|‖²_F = ⟨|X|ᵀ|X|, |Y||Y|ᵀ⟩`` (no ``m × n`` array): the two Gram matrices
    and their inner product are sums of nonnegative terms, computed within factors ``1 − γ_m``, ``1 − γ_n`` and
    ``1 − γ_{K²}`` of their exact values.  Otherwise ``|X||Y|`` is formed (``≥ (1 − γ_K)`` exact) and
    :func:`_fro_up` applies.
    """
    m, n = int(X.shape[0]), int(Y.shape[1])
    if K >= n or 2 * (m + n + K * K) * _U64 >= 1:
        return _fro_up(np.abs(X) @ np.abs(Y), K)
    Xa, Ya = np.abs(X), np.abs(Y)
    s = float(np.sum((Xa.T @ Xa) * (Ya @ Ya.T)))
    if not math.isfinite(s):
        return _fro_up(Xa @ Ya, K)
    q = Fraction(s) / ((1 - _gamma(m)) * (1 - _gamma(n)) * (1 - _gamma(K * K)))
    # no underflow assumed here (as in the contraction); the squares are of entries of the products
    return _sqrt_up(q)


def _sqrt_up(q: Fraction) -> Fraction:
    """A float (as a Fraction) ``≥ sqrt(q)`` for a rational ``q ≥ 0``."""
    s = math.sqrt(float(q))
    while Fraction(s) ** 2 < q:
        s = float(np.nextafter(s, np.inf))
    return Fraction(s)


def _right_operator_norms(cs) -> list:
    """Rational upper bounds ``ρ_j ≥ ‖R_j‖_2`` for ``R_j = G_j G_{j+1} ⋯ G_{d−1}`` (0-based, as an
    ``r_j × N_{≥j}`` matrix), ``j = 2 … d`` (``ρ_d = 1``), from the Gram matrices ``M_j = R_j R_jᵀ``.

    ``M_j = Σ_i G_j[:, i, :] M_{j+1} G_j[:, i, :]ᵀ`` is computed as two products of inner lengths ``b`` and
    ``n b`` (``G_j`` of shape ``(a, n, b)``), so ``|M̂_j − G M̂_{j+1} Gᵀ| ≤ γ_{(n+1)b} |G||M̂_{j+1}||G|ᵀ``
    and ``Δ_j = |G|(Δ_{j+1} + γ_{(n+1)b}|M̂_{j+1}|)|G|ᵀ ≥ |M_j − M̂_j|`` (``Δ_d = 0``); ``Δ_j`` is
    evaluated on nonnegative data and inflated by ``1/((1 − γ_{(n+1)b})(1 − u)^3)``, rounded up.  Then
    ``‖R_j‖_2² = λ_max(M_j) ≤ ρ(|M̂_j| + Δ_j) ≤ max row sum``, whose computed value is inflated by
    ``1/(1 − γ_{b+1})``.
    """
    d = len(cs)
    rho = [None] * (d + 1)
    rho[d] = Fraction(1)
    Mh = np.ones((1, 1))
    Dl = np.zeros((1, 1))
    for j in range(d - 1, 1, -1):
        a, n, b = (int(x) for x in cs[j].shape)
        G = cs[j]
        Ga = np.abs(G)
        K = (n + 1) * b
        if 2 * K * _U64 >= 1:
            return [None] * (d + 1)
        g = _float_up(_gamma(K))
        P = Dl + g * np.abs(Mh)
        Q = (Ga.reshape(a * n, b) @ P).reshape(a, n * b) @ Ga.reshape(a, n * b).T
        Dl = Q * _float_up(1 / ((1 - _gamma(K)) * (1 - _U64) ** 3))
        Mh = (G.reshape(a * n, b) @ Mh).reshape(a, n * b) @ G.reshape(a, n * b).T
        rows = np.sum(np.abs(Mh) + Dl, axis=1)
        if not np.all(np.isfinite(rows)):
            return [None] * (d + 1)
        rho[j] = _sqrt_up(Fraction(float(rows.max())) / (1 - _gamma(a + 1)))
    return rho


def tt_residual_bound(A: Any, cores, conversion=None) -> float:
    """A rigorous upper bound on ``‖A − A_TT‖_F`` for a tensor ``A`` and the train its ``cores`` represent exactly.

    ``A`` has shape ``(n_1, …, n_d)`` (row-major), ``cores[k]`` shape ``(r_{k−1}, n_k, r_k)``; any array
    library and floating dtype (everything is converted to NumPy float64, exactly).  ``conversion`` (from
    :func:`conversion_error`) adds per-entry bounds on ``|A_exact − A|`` when ``A`` is the float64 image of
    exact input; the bound is then on ``‖A_exact − A_TT‖_F``.

    This is an *a posteriori* certificate: it covers whatever the decomposition did (truncation, rounding of
    the SVDs, QRs and Gram matrices, reshapes), because it measures the stored cores against ``A``.

    Derivation (float64, ``u = 2^-53``).  ``T̂`` is the contraction ``G_1 G_2 ⋯ G_d`` computed left to right:
    ``T̂_k = fl(T̂_{k−1} G_k) = T̂_{k−1} G_k + E_k`` with inner length ``r_{k−1}`` and
    ``|E_k| ≤ γ_{r_{k−1}} B_k``, ``B_k = |T̂_{k−1}||G_k|`` (Higham, *Accuracy and Stability* §3.5: any
    summation order, with or without FMA).  Unrolling, ``T̂ − A_TT = Σ_k E_k R_{k+1}`` with
    ``R_{k+1} = G_{k+1} ⋯ G_d`` (an ``r_k × N_{>k}`` matrix), so
    ``‖T̂ − A_TT‖_F ≤ Σ_k γ_{r_{k−1}} ‖B_k‖_F ‖R_{k+1}‖_2``.  ``‖B_k‖_F`` is evaluated from the computed
    ``B̂_k ≥ (1 − γ_{r_{k−1}}) B_k`` or, without forming it, from ``⟨|T̂_{k−1}|ᵀ|T̂_{k−1}|, |G_k||G_k|ᵀ⟩``
    (``_product_fro_up``); ``‖R_{k+1}‖_2`` is bounded through the Gram matrices
    ``R Rᵀ`` swept from the right with their own rounding bounds (``_right_operator_norms``).  This
    normwise propagation avoids the compounding of an entrywise ``|G_1|⋯|G_d|`` chain (which is
    ``~10^4×`` looser for deep high-rank trains).  ``D = fl(A − T̂)`` has ``|A − T̂| ≤ |D| / (1 − u)``, so
    ``‖A_exact − A_TT‖_F ≤ ‖(|D| + conv)/(1 − u)‖_F + Σ_k γ_{r_{k−1}} ‖B_k‖_F ‖R_{k+1}‖_2``.  Every
    Frobenius norm of a nonnegative computed array is bounded above by scaling to ``[1/2, 1)`` with a
    power of two and inflating the computed ``sqrt(Z·Z)`` by its worst-case rounding (``_fro_up``); the
    terms are summed exactly with Fractions and rounded up.

    Every core is first scaled by a power of two to ``max |G_k| ∈ [1/2, 1)`` (where that is exact) and ``A``
    by the product of the factors (entries lost to underflow there are covered by an absolute term), so the
    result does not depend on the overall scale of the data.  Assumptions: IEEE float64 arithmetic in
    NumPy/BLAS (no reduced-precision modes), no underflow in the products of the contraction and of the Gram
    sweep after this scaling (entries of the scaled cores and their products above ``~1e-290`` or zero).
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
    d = len(cs)
    # every core scaled by a power of two to max |G_k| ∈ [1/2, 1) (kept only where exact), A by the product:
    # the train then represents 2^-E A_TT exactly, and the bound is scaled back by 2^E at the end
    E = 0
    for i, c in enumerate(cs):
        m = float(np.max(np.abs(c))) if c.size else 0.0
        if 0.0 < m < math.inf:
            e = int(np.frexp(m)[1])
            sc = np.ldexp(c, -e)
            if np.array_equal(np.ldexp(sc, e), c):
                cs[i], E = sc, E + e
    tiny = Fraction(0)
    if E:
        with np.errstate(over="ignore"):
            As = np.ldexp(An, -E)
        if not np.array_equal(np.ldexp(As, E), An):  # entries lost to underflow: ≤ 2^-1075 each
            tiny = math.isqrt(int(An.shape[0]) + 1) * Fraction(2) ** -1074 + Fraction(2) ** -1074
        An = As
        if conversion is not None:
            conv = np.asarray(conversion, dtype=np.float64).reshape(-1)
            cv = np.ldexp(conv, -E)
            low = np.ldexp(cv, E) < conv
            cv[low] = np.nextafter(cv[low], np.inf)
            conversion = cv
    rho = _right_operator_norms(cs) if d > 1 else [Fraction(1)]
    T = cs[0].reshape(-1, cs[0].shape[-1])
    contraction = Fraction(0)  # Σ_k γ_{r_{k−1}} ‖B_k‖_F ‖R_{k+1}‖_2
    for k in range(1, d):
        c = cs[k]
        r, r2 = int(c.shape[0]), int(c.shape[-1])
        c2 = c.reshape(r, -1)
        bk = _product_fro_up(T, c2, r)  # ≥ ‖B_k‖_F, B_k = |T̂_{k−1}||G_k|
        if bk is None or rho[k + 1] is None:
            return math.inf
        contraction += _gamma(r) * bk * rho[k + 1]
        T = (T @ c2).reshape(-1, r2)
    N = int(An.shape[0])
    if int(T.size) != N:
        raise ShapeError(f"the cores represent {int(T.size)} entries, but the tensor has {N}")
    Z = np.subtract(An, T.reshape(-1))  # D = fl(A − T̂): |A − T̂| ≤ |D| / (1 − u)
    np.abs(Z, out=Z)
    if conversion is not None:
        Z = Z + np.asarray(conversion, dtype=np.float64).reshape(-1)  # one more rounding: Z ≥ (1 − u)² z
    resid = _fro_up(Z, 2)
    if resid is None:
        return math.inf
    return _float_up((resid + tiny + contraction) * Fraction(2) ** E)


def tt_distance_bound(cores_a, cores_b) -> float:
    """A rigorous upper bound on ``‖A_TT − B_TT‖_F`` for two trains of the same shape (exact values of the
    stored cores), through one dense tensor: ``Â`` = the float64 contraction of ``cores_a``, then
    ``‖A_TT − B_TT‖_F ≤ ‖Â − B_TT‖_F + ‖Â − A_TT‖_F``, both bounded by :func:`tt_residual_bound` (the
    second is its contraction-rounding term alone, since the same contraction reproduces ``Â``).
    Costs ``O(∏ n_k · r)`` time and ``∏ n_k`` memory.

    Examples
    --------
    >>> import numpy as np
    >>> a = (np.ones((1, 2, 1)), np.full((1, 3, 1), 0.5))
    >>> b = (np.ones((1, 2, 1)), np.full((1, 3, 1), 0.5 + 2**-50))
    >>> d = tt_distance_bound(a, b)
    >>> bool(np.sqrt(6) * 2**-50 <= d <= 1.2 * np.sqrt(6) * 2**-50)    # + the rounding of the products
    True
    """
    cs = [np.asarray(to_numpy(c), dtype=np.float64) for c in cores_a]
    T = cs[0].reshape(-1, cs[0].shape[-1])
    for c in cs[1:]:
        T = (T @ c.reshape(int(c.shape[0]), -1)).reshape(-1, int(c.shape[-1]))
    Ahat = T.reshape(-1)
    return _float_up(Fraction(tt_residual_bound(Ahat, cores_b)) + Fraction(tt_residual_bound(Ahat, cores_a)))
