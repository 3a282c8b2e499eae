"""Backend-generic dense linear algebra for the tensor-network modules (SVD, QR, norms, truncation rules).

Everything here takes its array namespace from the input, so NumPy, torch (with autograd) and
array-api-strict work alike.  Tensor decompositions are floating-point algorithms: exact (integer or
object) input is converted to ``float64`` first by :func:`as_float`.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from fractions import Fraction
from typing import Any

import numpy as np

from .._array import asarray, check_no_nan, check_nonempty, is_array, namespace, to_exact_scalar, to_numpy
from ..errors import ArgumentTypeError, FloatOverflowError, NaNError, ShapeError, ToleranceError
from ..tropical._args import check_array_dtype

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
    """``x`` as a floating-point array of its own library (lists and exact arrays become ``float64``).

    Half precision (float16, bfloat16) becomes float32, exactly: linear algebra libraries have no SVD in it,
    so the factors are float32 and their certificates float32's.

    Tensor decompositions are real linear algebra: NaN and ±inf entries raise
    :class:`~tropix.errors.NaNError` (an infinite entry would make every factor NaN and the certified bound
    infinite), complex or non-numeric arrays :class:`~tropix.errors.ArgumentTypeError`.

    Examples
    --------
    >>> as_float([[1, 2], [3, 4]]).dtype
    dtype('float64')
    >>> as_float([[1.0, float("inf")]])
    Traceback (most recent call last):
    ...
    tropix.errors.NaNError: tensor contains inf: tensor decompositions need finite real entries
    """
    if x is None or isinstance(x, (str, bytes, dict, set)):
        raise ArgumentTypeError(f"{name} must be an array or a nested list of real numbers, got {type(x).__name__}")
    if isinstance(x, (list, tuple)) or not hasattr(x, "shape"):
        x = asarray(x, name=name)
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "cUSV" or (x.dtype == object and any(isinstance(v, (complex, str, bytes)) for v in x.flat)):
            raise ArgumentTypeError(f"{name} has dtype {x.dtype}; tensor decompositions take real numbers")
        if x.dtype == object or not np.issubdtype(x.dtype, np.floating):
            try:
                x = x.astype(np.float64)
            except OverflowError:
                raise FloatOverflowError(f"{name} has an exact entry beyond the float64 range (|x| > 1.8e308); "
                                         "tensor decompositions run in float64: rescale the data") from None
    else:
        xp = namespace(x)
        if not xp.isdtype(x.dtype, ("bool", "integral", "real floating")):
            raise ArgumentTypeError(f"{name} has dtype {x.dtype}; tensor decompositions take real numbers")
        if not xp.isdtype(x.dtype, "real floating"):
            x = xp.astype(x, xp.float64)
    if str(x.dtype).split(".")[-1] in ("float16", "bfloat16"):  # (no SVD or eigh in half precision)
        xp = namespace(x)
        x = xp.astype(x, xp.float32)
    check_no_nan(x, name)
    check_nonempty(x, name)
    xp = namespace(x)
    if not bool(xp.all(xp.isfinite(x))):
        raise NaNError(f"{name} contains inf: tensor decompositions need finite real entries")
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


def pow2_range(x) -> tuple[int, int]:
    """``(lo, hi)``: ``2^k`` is a normal number of ``x``'s floating dtype exactly for ``lo ≤ k ≤ hi``
    (``(-1022, 1023)`` for float64 and for anything that is not a floating array, ``(-126, 127)`` for float32).

    Examples
    --------
    >>> import numpy as np
    >>> pow2_range(np.zeros(1)), pow2_range(np.zeros(1, np.float32))
    ((-1022, 1023), (-126, 127))
    """
    try:
        fi = namespace(x).finfo(x.dtype)
        return int(np.frexp(float(fi.smallest_normal))[1]) - 1, int(np.frexp(float(fi.max))[1]) - 1
    except (TypeError, ValueError, AttributeError):
        return -1022, 1023


def fro_norm(x) -> Any:
    """Frobenius norm of an array of any shape (a 0-d array of the input's library).

    Entries are scaled by a power of two (exact) so that squares of very large or very small entries
    neither overflow nor underflow.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = float(fro_norm(np.array([3e200, 4e200]))), float(fro_norm(np.array([3e-200, 4e-200])))
    >>> bool(abs(a / 5e200 - 1) < 1e-15 and abs(b / 5e-200 - 1) < 1e-15)
    True
    """
    xp = namespace(x)
    m = float(to_numpy(xp.max(xp.abs(x)))) if math.prod(int(s) for s in x.shape) else 0.0
    hi = pow2_range(x)[1]
    q = 400 if hi >= 1023 else hi // 3  # float32: squares of 1e-25 underflowed to a norm of 0, of 1e25 overflowed
    if not 0.0 < m < math.inf or 2.0**-q <= m <= 2.0**q:
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


def truncated_split(C, budget_sq: float, max_rank: int | None, nrm_sq_hint: float | None = None):
    """Split a matrix ``C ≈ U @ R`` with orthonormal columns ``U`` (``R = Uᵀ C = S Vᵀ``) and a certified loss.

    Returns ``(U, R, discarded_sq)`` where ``‖C − U R‖²_F ≤ discarded_sq`` (up to the rounding of the
    SVD itself) and ``discarded_sq ≤ budget_sq`` unless ``max_rank`` binds.

    For wide matrices (``n ≥ 8m``) whose budget is far above rounding level, the left factor comes from
    the eigen-decomposition of the Gram matrix ``C Cᵀ`` (one BLAS pass over ``C`` instead of a QR or SVD).
    Eigenvalues of the computed Gram matrix may be off by ``‖ΔG‖₂ ≤ (n + 2m)·u·‖C‖²_F`` (Weyl's
    inequality with the worst-case rounding bound of the product), so that amount per discarded
    eigenvalue is added to ``discarded_sq``; otherwise the thin SVD is used.  ``‖C‖²_F`` there is bounded by
    the trace of the computed Gram matrix divided by ``1 − 2(n + m)u``; ``nrm_sq_hint`` (an estimate of
    ``‖C‖²_F`` known to the caller) only decides whether the Gram route is tried, saving a pass over ``C``.
    """
    xp = namespace(C)
    m, n = (int(s) for s in C.shape)
    if n >= 8 * m and m > 1:
        if nrm_sq_hint is None:
            nrm_sq_hint = float(to_numpy(xp.sum(C * C)))
        gram = budget_sq >= 1e4 * m * (n + 2 * m) * _EPS_MACH * nrm_sq_hint
        if gram:
            G = C @ xp.matrix_transpose(C)
            # each diagonal entry is within γ_n of its exact sum of squares, the trace within γ_m more
            nrm_sq = float(to_numpy(xp.sum(xp.linalg.diagonal(G)))) / (1 - (n + m) * _EPS_MACH)
            per = (n + 2 * m) * _EPS_MACH * nrm_sq
            gram = budget_sq >= 1e4 * m * per
        if gram:
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
        # (of the wrong type, as every other integer argument: ArgumentTypeError; a value below 1: ToleranceError)
        raise ArgumentTypeError(f"{name} must be None or an integer >= 1, got {max_rank!r}")
    if max_rank < 1:
        raise ToleranceError(f"{name} must be at least 1, got {max_rank}")
    return int(max_rank)


def check_core_chain(cores, what: str, layout: str) -> tuple:
    """Validate the cores of a tensor train or TT-matrix and return them as a tuple.

    Each core must have ``len(layout)`` axes (``layout`` names them, e.g. ``"r, n, r'"``), neighbouring
    cores must agree on their shared rank (first axis of a core = last axis of the previous one), and
    both boundary ranks must be 1.  Mixing array libraries raises BackendMismatchError.  Half-precision
    cores (float16, bfloat16) are converted to float32, exactly.
    """
    if isinstance(cores, (str, bytes)) or not hasattr(cores, "__iter__"):
        raise ArgumentTypeError(f"the cores of a {what} must be a sequence of arrays, got {type(cores).__name__}")
    cores = tuple(cores)
    if not cores:
        raise ShapeError(f"a {what} needs at least one core")
    for k, c in enumerate(cores):
        if not is_array(c):
            raise ArgumentTypeError(f"{what} core {k} must be an array (NumPy, torch, ...), got {type(c).__name__}")
    namespace(*cores)
    for k, c in enumerate(cores):  # (complex and string cores were accepted: tensor trains hold real numbers)
        check_array_dtype(c, f"{what} core {k}")
        if isinstance(c, np.ndarray) and c.dtype == object:
            asarray(c, name=f"{what} core {k}")
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
    if any(str(c.dtype).split(".")[-1] in ("float16", "bfloat16") for c in cores):
        # half precision becomes float32, exactly, as in as_float (no QR or SVD exists in it, and mixed with
        # a float32 operand torch's tensordot refuses)
        xp = namespace(*cores)
        cores = tuple(xp.astype(c, xp.float32) if str(c.dtype).split(".")[-1] in ("float16", "bfloat16") else c
                      for c in cores)
    return cores


# -- a posteriori certificate of a tensor train ------------------------------------------------------------------
_U64 = Fraction(1, 2**53)  # unit roundoff of float64
_UNDERFLOW_SLACK = (1 + Fraction(1, 2**200)) ** 2  # covers squares lost to underflow in _fro_up


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


# The certificate's scalar arithmetic: a handful of constants that depend only on integer sizes are computed
# exactly (Fractions) and rounded up once (cached); the per-core products and sums of nonnegative floats are
# rounded up with ``_up`` (one ulp above the round-to-nearest result, which is ≥ the exact value).


def _up(x: float) -> float:
    """The next float above ``x``: an upper bound on the exact value of one rounded-to-nearest operation
    (on nonnegative operands) whose result is ``x``."""
    return math.nextafter(x, math.inf)


def _mul_up(a: float, b: float) -> float:
    """A float ``≥ a·b`` for floats ``a, b ≥ 0`` (exactly 0 when a factor is 0)."""
    return 0.0 if a == 0.0 or b == 0.0 else _up(a * b)


def _add_up(a: float, b: float) -> float:
    """A float ``≥ a + b`` for floats ``a, b ≥ 0`` (exact when a term is 0)."""
    return a + b if a == 0.0 or b == 0.0 else _up(a + b)


def _sqrt_float_up(x: float) -> float:
    """A float ``≥ sqrt(x)`` for a float ``x ≥ 0`` (exactly 0 for 0)."""
    return 0.0 if x == 0.0 else _up(math.sqrt(x))


@functools.lru_cache(maxsize=4096)
def _gamma_up(K: int) -> float:
    """A float ``≥ γ_K``."""
    return _float_up(_gamma(K))


@functools.lru_cache(maxsize=4096)
def _inflation_up(Ks: tuple, u_powers: int = 0, extra: Fraction = Fraction(1)) -> float:
    """A float ``≥ extra / (Π_{K ∈ Ks} (1 − γ_K) · (1 − u)^u_powers)``."""
    den = (1 - _U64) ** u_powers
    for K in Ks:
        den *= 1 - _gamma(K)
    return _float_up(extra / den)


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
        # an integer of magnitude >= 2^53 may have been rounded (2^53 + 1 -> 2^53, ties to even: the rounded
        # value itself is 2^53, so the test is on >=), by at most half a unit in the last place <= |f| 2^-53
        big = np.abs(Af) >= 2.0**53
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
    """A rational upper bound on ``‖z‖_F`` for a nonnegative ``z`` whose computed float64 image satisfies
    ``|Z| ≥ (1 − γ_K) z`` entrywise (``Z`` may carry signs: only ``|Z|`` matters; ``None`` when ``Z`` is not
    finite).

    The computed ``sqrt(Z·Z)`` (a dot product of length ``N``: relative error ``≤ γ_N``, then ``sqrt``: ``≤ u``)
    is inflated by ``(1 + 2^-200)^2 / ((1 − γ_N)(1 − u)(1 − γ_K))``.  When the computed ``Z·Z`` is finite and
    at least ``2^-600`` that is all (one pass): no square or partial sum overflowed, and squares lost to
    underflow (at most ``2^-1074`` each, ``N < 2^52`` of them) are below ``2^-420`` of the sum, which the
    factor ``(1 + 2^-200)^2`` covers.  Otherwise, unless ``max |Z| ∈ [2^-300, 2^300]``, ``|Z|`` is first scaled
    by a power of two into ``[1/2, 1)`` (exact) and the same argument applies to the scaled data.
    """
    Z = np.asarray(Z, dtype=np.float64).reshape(-1)
    N = int(Z.shape[0])
    if N == 0:
        return Fraction(0)
    if 2 * N * _U64 >= 1 or 2 * K * _U64 >= 1:
        return None
    with np.errstate(over="ignore", under="ignore"):
        s = float(np.dot(Z, Z))
    f = _fro_from_sumsq(s, N, K)
    if f is not None:
        return f
    Z = np.abs(Z)
    m = float(Z.max())
    if not math.isfinite(m):
        return None
    if m == 0.0:
        return Fraction(0)
    e = 0
    if not 2.0**-300 <= m <= 2.0**300:
        e = int(np.frexp(m)[1])
        Z = np.ldexp(Z, -e)
    s = float(np.dot(Z, Z))
    f = _mul_up(math.sqrt(s), _inflation_up((N, K), 1, _UNDERFLOW_SLACK))
    return Fraction(f) * Fraction(2) ** e if e else Fraction(f)


def _fro_from_sumsq(s: float, N: int, K: int) -> Fraction | None:
    """The one-pass case of :func:`_fro_up`: ``s`` the computed sum of the ``N`` squares (in any order);
    ``None`` unless ``2^-600 ≤ s < ∞`` (then the caller scales)."""
    if not 2.0**-600 <= s < math.inf or 2 * N * _U64 >= 1 or 2 * K * _U64 >= 1:
        return None
    return Fraction(_mul_up(math.sqrt(s), _inflation_up((N, K), 1, _UNDERFLOW_SLACK)))


def _product_fro_up(X: np.ndarray, Y: np.ndarray, K: int) -> Fraction | None:
    """A rational upper bound on ``‖|X||Y|‖_F`` (``X`` of shape ``(m, K)``, ``Y`` of shape ``(K, n)``):
    :func:`_product_fro_float` as a Fraction (``None`` when not finite)."""
    f = _product_fro_float(X, Y, K)
    return None if f is None or not math.isfinite(f) else Fraction(f)


def _product_fro_float(X: np.ndarray, Y: np.ndarray, K: int) -> float | None:
    """A float upper bound on ``‖|X||Y|‖_F`` (``X`` of shape ``(m, K)``, ``Y`` of shape ``(K, n)``).

    When ``K < n`` it uses ``‖|X||Y|‖²_F = ⟨|X|ᵀ|X|, |Y||Y|ᵀ⟩`` (no ``m × n`` array): the two Gram matrices
    and their inner product are sums of nonnegative terms, computed within factors ``1 − γ_m``, ``1 − γ_n`` and
    ``1 − γ_{K²}`` of their exact values.  Otherwise ``|X||Y|`` is formed (``≥ (1 − γ_K)`` exact) and
    :func:`_fro_up` applies.
    """
    m, n = int(X.shape[0]), int(Y.shape[1])
    if K >= n or 2 * (m + n + K * K) * _U64 >= 1:
        f = _fro_up(np.abs(X) @ np.abs(Y), K)
        return None if f is None else _float_up(f)
    Xa, Ya = np.abs(X), np.abs(Y)
    s = float(np.sum((Xa.T @ Xa) * (Ya @ Ya.T)))
    if not math.isfinite(s):
        f = _fro_up(Xa @ Ya, K)
        return None if f is None else _float_up(f)
    # no underflow assumed here (as in the contraction); the squares are of entries of the products
    return _sqrt_float_up(_mul_up(s, _inflation_up((m, n, K * K))))


def _sqrt_up(q: Fraction) -> Fraction:
    """A float (as a Fraction) ``≥ sqrt(q)`` for a rational ``q ≥ 0``."""
    s = math.sqrt(float(q))
    while Fraction(s) ** 2 < q:
        s = float(np.nextafter(s, np.inf))
    return Fraction(s)


def _right_operator_norms(cs, first: int = 2) -> list:
    """Float upper bounds ``ρ_j ≥ ‖R_j‖_2`` for ``R_j = G_j G_{j+1} ⋯ G_{d−1}`` (0-based, as an
    ``r_j × N_{≥j}`` matrix), ``j = 2 … d`` (``ρ_d = 1``), from the Gram matrices ``M_j = R_j R_jᵀ``.

    ``M_j = Σ_i G_j[:, i, :] M_{j+1} G_j[:, i, :]ᵀ`` is computed as two products of inner lengths ``b`` and
    ``n b`` (``G_j`` of shape ``(a, n, b)``), so ``|M̂_j − G M̂_{j+1} Gᵀ| ≤ γ_{(n+1)b} |G||M̂_{j+1}||G|ᵀ``
    and ``Δ_j = |G|(Δ_{j+1} + γ_{(n+1)b}|M̂_{j+1}|)|G|ᵀ ≥ |M_j − M̂_j|`` (``Δ_d = 0``); ``Δ_j`` is
    evaluated on nonnegative data and inflated by ``1/((1 − γ_{(n+1)b})(1 − u)^3)``, rounded up.  Then
    ``‖R_j‖_2² = λ_max(M_j) ≤ ρ(|M̂_j| + Δ_j) ≤ max row sum``, whose computed value is inflated by
    ``1/(1 − γ_{b+1})``.  ``first`` is the smallest ``j`` computed (entries below it stay ``None``; ``j = 0``
    gives ``ρ_0 ≥ ‖G_0 ⋯ G_{d−1}‖_F``, the Frobenius norm of the whole train).
    """
    d = len(cs)
    rho = [None] * (d + 1)
    rho[d] = 1.0
    Mh = np.ones((1, 1))
    Dl = np.zeros((1, 1))
    for j in range(d - 1, max(first, 0) - 1, -1):
        a, n, b = (int(x) for x in cs[j].shape)
        G = cs[j]
        Ga = np.abs(G)
        K = (n + 1) * b
        if 2 * K * _U64 >= 1:
            return [None] * (d + 1)
        P = Dl + _gamma_up(K) * np.abs(Mh)
        Q = (Ga.reshape(a * n, b) @ P).reshape(a, n * b) @ Ga.reshape(a, n * b).T
        Dl = Q * _inflation_up((K,), 3)
        Mh = (G.reshape(a * n, b) @ Mh).reshape(a, n * b) @ G.reshape(a, n * b).T
        rows = np.sum(np.abs(Mh) + Dl, axis=1)
        if not np.all(np.isfinite(rows)):
            return [None] * (d + 1)
        rho[j] = _sqrt_float_up(_mul_up(float(rows.max()), _inflation_up((a + 1,))))
    return rho


def _scaled_cores(cores) -> tuple[list, int]:
    """The cores as float64 NumPy arrays, each scaled by a power of two to ``max |G_k| ∈ [1/2, 1)`` where that is
    exact, and ``E`` with ``G_1 ⋯ G_d = 2^E · (scaled product)``."""
    cs = [np.asarray(to_numpy(c), dtype=np.float64) for c in cores]
    E = 0
    for i, c in enumerate(cs):
        m = float(np.max(np.abs(c))) if c.size else 0.0
        if 0.0 < m < math.inf:
            e = int(np.frexp(m)[1])
            if e:
                sc = np.ldexp(c, -e)
                if np.array_equal(np.ldexp(sc, e), c):
                    cs[i], E = sc, E + e
    return cs, E


def _split_point(cs) -> int:
    """The bond ``s`` (0-based: cores ``0…s`` | ``s+1…d−1``) at which the certified contraction of the train is
    cheapest when both halves are contracted towards it and joined by one matrix product: estimated flops of
    the products, of the bounds on their rounding (``_product_fro_float``), and of the Gram sweeps for the
    operator norms (``ρ`` over cores ``d−1…2`` when ``s ≥ 1``; ``λ`` from ``L̂ᵀL̂`` over cores ``s+1…d−3`` when
    ``s ≤ d−3``)."""
    d = len(cs)
    n = [int(c.shape[1]) for c in cs]
    b = [int(c.shape[2]) for c in cs]  # b[k] = right rank of core k
    a = [1] + b[:-1]  # a[k] = left rank of core k
    P = list(itertools.accumulate(n, operator.mul))  # P[k] = n_0 ⋯ n_k
    Q = list(itertools.accumulate(n[::-1], operator.mul))[::-1] + [1]  # Q[j] = n_j ⋯ n_{d−1}

    def product(m, K, nn):  # fl(X Y) and the bound on ‖|X||Y|‖_F
        return m * K * nn + (m * K * nn if K >= nn else (m + nn) * K * K)

    sweep = [2 * a[j] * n[j] * b[j] * (a[j] + b[j]) for j in range(d)]  # one step of a Gram sweep
    rho = sum(sweep[2:])
    left = [0] * (d - 1)
    for k in range(1, d - 1):
        left[k] = left[k - 1] + product(P[k - 1], a[k], n[k] * b[k])
    right = [0] * (d + 1)
    for j in range(d - 2, 0, -1):
        right[j] = right[j + 1] + product(a[j] * n[j], b[j], Q[j + 1])
    costs = []
    for s in range(d - 1):
        c = left[s] + right[s + 1] + product(P[s], b[s], Q[s + 1])
        if s >= 1:
            c += rho
        if s <= d - 3:
            c += 2 * P[s] * b[s] * (b[s] + 1) + sum(sweep[s + 1 : d - 2])
        costs.append(c)
    return min(range(d - 2, -1, -1), key=costs.__getitem__)  # ties: the larger s (measured a little faster)


def _chain_contraction(cs, s: int, bound: bool = True):
    """Contract the (scaled) train to the two halves ``L̂ = fl(G_0 ⋯ G_s)`` (``P_s × r_s``, left to right) and
    ``R̂ = fl(G_{s+1} ⋯ G_{d−1})`` (``r_s × Q_{s+1}``, right to left), and with ``bound`` a rational
    ``c ≥ ‖fl(L̂ R̂) − G_0 ⋯ G_{d−1}‖_F`` (``None``: no bound, e.g. non-finite data); see
    :func:`tt_residual_bound` for the derivation.  Returns ``(L̂, R̂, c)``.
    """
    d = len(cs)
    need_rho = bound and s >= 1
    rho = _right_operator_norms(cs) if need_rho else None
    term = 0.0
    L = cs[0].reshape(-1, int(cs[0].shape[-1]))
    for k in range(1, s + 1):  # L̂_k = fl(L̂_{k−1} G_k) = L̂_{k−1} G_k + E_k, |E_k| ≤ γ_{r_{k−1}} |L̂_{k−1}||G_k|
        c = cs[k]
        r, r2 = int(c.shape[0]), int(c.shape[-1])
        c2 = c.reshape(r, -1)
        if bound:
            bk = _product_fro_float(L, c2, r)
            if bk is None or rho[k + 1] is None:
                return L, None, None
            term = _add_up(term, _mul_up(_mul_up(_gamma_up(r), bk), rho[k + 1]))
        L = (L @ c2).reshape(-1, r2)
    R = cs[-1].reshape(int(cs[-1].shape[0]), -1)
    lam = None
    if bound and s <= d - 3:  # λ_j ≥ ‖L̂ G_{s+1} ⋯ G_{j−1}‖_2: right norms of the reversed, transposed chain
        rev = [np.transpose(c, (2, 1, 0)) for c in cs[: s : -1]] + [L.T.reshape(L.shape[1], L.shape[0], 1)]
        lam = _right_operator_norms(rev)
    for j in range(d - 2, s, -1):  # R̂_j = fl(G_j R̂_{j+1}) = G_j R̂_{j+1} + F_j, |F_j| ≤ γ_{r_j} |G_j||R̂_{j+1}|
        c = cs[j]
        a, nj, r = (int(x) for x in c.shape)
        c2 = c.reshape(a * nj, r)
        if bound:
            fj = _product_fro_float(c2, R, r)
            lj = lam[d - j]
            if fj is None or lj is None:
                return L, R, None
            term = _add_up(term, _mul_up(_mul_up(_gamma_up(r), fj), lj))
        R = (c2 @ R).reshape(a, -1)
    if bound:  # the joining product fl(L̂ R̂), inner length r_s
        bm = _product_fro_float(L, R, int(L.shape[1]))
        if bm is None:
            return L, R, None
        term = _add_up(term, _mul_up(_gamma_up(int(L.shape[1])), bm))
        if not math.isfinite(term):
            return L, R, None
    return L, R, (Fraction(term) if bound else None)


def _min_nonzero(x: np.ndarray) -> float:
    a = np.abs(x)
    a = a[a > 0]
    return float(a.min()) if a.size else math.inf


def _join_unscaled(L: np.ndarray, R: np.ndarray, E: int):
    """``fl((2^E L̂) R̂)`` (row block by row block, as in :func:`tt_residual_bound`), or ``None`` when
    :func:`_fold_scale` refuses."""
    Lf = _fold_scale(L, R, E)
    return None if Lf is None else np.concatenate([blk.copy() for blk in _join_blocks(Lf, R)])


def _fold_scale(L: np.ndarray, R: np.ndarray, E: int):
    """``2^E L̂``, for which ``fl((2^E L̂) R̂)`` is ``2^E fl(L̂ R̂)`` up to its rounding bound, or ``None`` when
    that cannot be guaranteed cheaply: ``2^E L̂`` must be exact (no overflow, no lost subnormal bits), the product must not
    overflow (``2^E max_i Σ_a |L̂_ia| · max |R̂| < 2^1020``) and no elementary product may underflow (every
    nonzero ``|2^E L̂_ia R̂_aj| ≥ 2^-1020``).  Then every computed partial sum is ``2^E`` times that of
    ``fl(L̂ R̂)`` unless it falls into the subnormal range, where (with FMA) the rounding may add an absolute
    error ``≤ 2^-1075`` per operation; :func:`tt_residual_bound` adds ``√N · r_s · 2^-1074`` for that."""
    if E == 0:
        return L
    with np.errstate(over="ignore", under="ignore"):
        Lf = np.ldexp(L, E)
        if not np.array_equal(np.ldexp(Lf, -E), L):
            return None
        rows = float(np.max(np.sum(np.abs(Lf), axis=1))) * float(np.max(np.abs(R)))
        lo = _min_nonzero(Lf) * _min_nonzero(R)
    if not (rows < 2.0**1020 and lo >= 2.0**-1020):
        return None
    return Lf


def _join(L: np.ndarray, R: np.ndarray, out=None) -> np.ndarray:
    """``fl(L R)``; at inner length 1 an outer product (one rounding per entry, faster than a BLAS call)."""
    return np.multiply(L, R, out=out) if int(L.shape[1]) == 1 else np.matmul(L, R, out=out)


_BLOCK = 1 << 15  # entries per row block of the joining product (fits in L2 with its slice of A)


def _join_blocks(L: np.ndarray, R: np.ndarray):
    """``fl(L R)`` in row blocks of about ``_BLOCK`` entries, written into one reused buffer (yields views;
    no dense ``P × Q`` array is allocated).  Every entry is the same length-``r`` inner product as in one call."""
    P, Q = int(L.shape[0]), int(R.shape[1])
    rows = max(1, _BLOCK // max(Q, 1))
    buf = np.empty((min(rows, P), Q))
    for i in range(0, P, rows):
        h = min(rows, P - i)
        yield _join(L[i : i + h], R, out=buf[:h])


def _residual_sumsq(A2: np.ndarray, Lf: np.ndarray, R: np.ndarray, conv) -> float:
    """The computed ``Σ z²`` over all entries, ``z = fl(A − fl(Lf R))`` (or ``fl(|…| + conv)``), block by block:
    a summation of ``N`` squares in some order, so within ``γ_N`` of its exact value as in :func:`_fro_up`."""
    P = int(Lf.shape[0])
    rows = max(1, _BLOCK // max(int(R.shape[1]), 1))
    s = 0.0
    with np.errstate(over="ignore", under="ignore"):
        for i, blk in zip(range(0, P, rows), _join_blocks(Lf, R)):
            h = int(blk.shape[0])
            np.subtract(A2[i : i + h], blk, out=blk)
            if conv is not None:
                np.abs(blk, out=blk)
                np.add(blk, conv[i : i + h], out=blk)
            z = blk.reshape(-1)
            s += float(np.dot(z, z))
    return s


def tt_residual_bound(A: Any, cores, conversion=None) -> float:
    """A rigorous upper bound on ``‖A − A_TT‖_F`` for a tensor ``A`` and the train its ``cores`` represent exactly.

    ``A`` has shape ``(n_1, …, n_d)`` (row-major), ``cores[k]`` shape ``(r_{k−1}, n_k, r_k)``; any array
    library and floating dtype (everything is converted to NumPy float64, exactly).  ``conversion`` (from
    :func:`conversion_error`) adds per-entry bounds on ``|A_exact − A|`` when ``A`` is the float64 image of
    exact input; the bound is then on ``‖A_exact − A_TT‖_F``.

    This is an *a posteriori* certificate: it covers whatever the decomposition did (truncation, rounding of
    the SVDs, QRs and Gram matrices, reshapes), because it measures the stored cores against ``A``.

    Derivation (float64, ``u = 2^-53``, ``γ_K = Ku/(1 − Ku)``).  The train is contracted from both ends
    towards a bond ``s`` chosen by a cost estimate, and the halves are joined by one matrix product (long
    chains of thin products are slow in BLAS).  Left half: ``L̂_k = fl(L̂_{k−1} G_k) = L̂_{k−1} G_k + E_k``,
    ``|E_k| ≤ γ_{r_{k−1}} |L̂_{k−1}||G_k|`` (Higham, *Accuracy and Stability* §3.5: any summation order, with
    or without FMA), ``k ≤ s``; right half: ``R̂_j = fl(G_j R̂_{j+1}) = G_j R̂_{j+1} + F_j``,
    ``|F_j| ≤ γ_{r_j} |G_j||R̂_{j+1}|``, ``j > s``; joint: ``T̂ = fl(L̂ R̂) = L̂ R̂ + E``,
    ``|E| ≤ γ_{r_s} |L̂||R̂|``.  Unrolling, with ``L = G_1 ⋯ G_s`` and ``R = G_{s+1} ⋯ G_d`` exact,
    ``T̂ − A_TT = E + (L̂ − L) R + L̂ (R̂ − R) = E + Σ_k E_k R_{k+1} + Σ_j Λ_j F_j`` where
    ``R_{k+1} = G_{k+1} ⋯ G_d`` (an ``r_k × N_{>k}`` matrix) and ``Λ_j = L̂ G_{s+1} ⋯ G_{j−1}`` (an
    ``N_{<j} × r_{j−1}`` matrix), so ``‖T̂ − A_TT‖_F ≤ γ_{r_s}‖|L̂||R̂|‖_F
    + Σ_k γ_{r_{k−1}} ‖|L̂_{k−1}||G_k|‖_F ‖R_{k+1}‖_2 + Σ_j γ_{r_j} ‖|G_j||R̂_{j+1}|‖_F ‖Λ_j‖_2``.  The
    Frobenius norms of the nonnegative products come from ``⟨|X|ᵀ|X|, |Y||Y|ᵀ⟩`` (no large array) or the
    formed product, with their own rounding (``_product_fro_up``); ``‖R_{k+1}‖_2`` and ``‖Λ_j‖_2`` are
    bounded through the Gram matrices ``R Rᵀ`` swept from the right and ``Λᵀ Λ`` swept from ``L̂ᵀ L̂``, with
    their own rounding bounds (``_right_operator_norms``, the second on the reversed train).  This normwise
    propagation avoids the compounding of an entrywise ``|G_1|⋯|G_d|`` chain (``~10^4×`` looser for deep
    high-rank trains).  ``D = fl(A − T̂)`` has ``|A − T̂| ≤ |D| / (1 − u)``, so
    ``‖A_exact − A_TT‖_F ≤ ‖(|D| + conv)/(1 − u)‖_F + (the contraction bound)``.  Every Frobenius norm of
    a computed array is bounded above by inflating the computed ``sqrt(Z·Z)`` by its worst-case rounding
    (``_fro_up``, which scales by a power of two first when the sum of squares is out of range).  The joining
    product, ``D`` and the sum of squares of ``D`` are computed in one pass, row block by row block of ``L̂``
    (each entry is the same length-``r_s`` inner product; the block sums make one summation of ``N`` squares),
    so no dense tensor is allocated unless the sum is out of range.  Per-core scalars are products and sums of
    nonnegative floats rounded up (``math.nextafter``), the constants ``γ_K`` and ``1/(1 − γ_K)`` exact
    Fractions rounded up once, and the final few terms are summed exactly with Fractions and rounded up.

    Every core is first scaled by a power of two to ``max |G_k| ∈ [1/2, 1)`` (where that is exact), and the
    contraction and its rounding bound are computed on the scaled cores, so the result does not depend on
    the overall scale of the data.  The product of the scale factors ``2^E`` is put back into ``L̂`` before the
    joining product when that is provably exact and the product can neither overflow nor underflow (checked
    on ``L̂``, ``R̂``); otherwise ``A`` is scaled by ``2^-E`` instead (entries lost to underflow there are
    covered by an absolute term).  Assumptions: IEEE float64 arithmetic in NumPy/BLAS (no reduced-precision
    modes), no underflow in the products of the two half-contractions and of the Gram sweeps after this
    scaling (entries of the scaled cores and their products above ``~1e-290`` or zero).  Non-finite values
    give ``inf``.

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
    N = int(An.shape[0])
    cs, E = _scaled_cores(cores)
    d = len(cs)
    represented = math.prod(int(c.shape[1]) for c in cs)
    if represented != N:
        raise ShapeError(f"the cores represent {represented} entries, but the tensor has {N}")
    if d == 1:
        Ts, contraction = cs[0].reshape(1, -1), Fraction(0)
        T = np.asarray(to_numpy(cores[0]), dtype=np.float64).reshape(-1)  # = 2^E Ts exactly
    else:
        L, R, contraction = _chain_contraction(cs, _split_point(cs))
        if contraction is None:
            return math.inf
        Lf = _fold_scale(L, R, E)
        if Lf is not None:  # one blocked pass: join, D = fl(A − T̂), sum of squares
            P, Q = int(L.shape[0]), int(R.shape[1])
            conv = None if conversion is None else np.asarray(conversion, dtype=np.float64).reshape(P, Q)
            resid = _fro_from_sumsq(_residual_sumsq(An.reshape(P, Q), Lf, R, conv), N, 2)
            if resid is not None:
                join = (math.isqrt(N) + 1) * int(L.shape[1]) * Fraction(2) ** -1074 if E else Fraction(0)
                return _float_up(resid + join + contraction * Fraction(2) ** E)
            T = _join(Lf, R)  # out of the one-pass range: the dense residual, scaled in _fro_up
        else:
            T, Ts = None, _join(L, R)
    tiny = join = Fraction(0)
    if T is not None:  # residual of the unscaled tensor; the contraction bound is scaled back by 2^E
        Z = np.subtract(An, T.reshape(-1), out=T.reshape(-1) if d > 1 else None)  # D = fl(A − T̂)
        scale_resid = 0
        if d > 1 and E:  # subnormal partial sums of the unscaled joining product (see _fold_scale)
            join = (math.isqrt(N) + 1) * int(L.shape[1]) * Fraction(2) ** -1074
    else:  # A scaled by 2^-E to meet the scaled contraction
        with np.errstate(over="ignore", under="ignore"):
            As = np.ldexp(An, -E)
        if not np.array_equal(np.ldexp(As, E), An):  # entries lost to underflow: ≤ 2^-1075 each
            tiny = math.isqrt(N + 1) * Fraction(2) ** -1074 + Fraction(2) ** -1074
        if conversion is not None:
            conv = np.asarray(conversion, dtype=np.float64).reshape(-1)
            cv = np.ldexp(conv, -E)
            low = np.ldexp(cv, E) < conv
            cv[low] = np.nextafter(cv[low], np.inf)
            conversion = cv
        Z = np.subtract(As, Ts.reshape(-1), out=Ts.reshape(-1))
        scale_resid = E
    # |A − T̂| ≤ |D| / (1 − u); with a conversion term one more rounding: Z ≥ (1 − u)² z
    if conversion is not None:
        Z = np.abs(Z) + np.asarray(conversion, dtype=np.float64).reshape(-1)
    resid = _fro_up(Z, 2)
    if resid is None:
        return math.inf
    return _float_up(resid * Fraction(2) ** scale_resid + join + (tiny + contraction) * Fraction(2) ** E)


def tt_distance_bound(cores_a, cores_b) -> float:
    """A rigorous upper bound on ``‖A_TT − B_TT‖_F`` for two trains of the same shape (exact values of the
    stored cores), through one dense tensor: ``Â`` = the float64 contraction of ``cores_a`` (as in
    :func:`tt_residual_bound`), then ``‖A_TT − B_TT‖_F ≤ ‖Â − B_TT‖_F + ‖Â − A_TT‖_F``, both bounded by
    :func:`tt_residual_bound` (the second is essentially its contraction-rounding term alone, since the
    same contraction reproduces ``Â``).  Costs ``O(∏ n_k · r)`` time and ``∏ n_k`` memory.

    Examples
    --------
    >>> import numpy as np
    >>> a = (np.ones((1, 2, 1)), np.full((1, 3, 1), 0.5))
    >>> b = (np.ones((1, 2, 1)), np.full((1, 3, 1), 0.5 + 2**-50))
    >>> d = tt_distance_bound(a, b)
    >>> bool(np.sqrt(6) * 2**-50 <= d <= 1.2 * np.sqrt(6) * 2**-50)    # + the rounding of the products
    True
    """
    cs, E = _scaled_cores(cores_a)
    if len(cs) == 1:
        Ahat = np.asarray(to_numpy(cores_a[0]), dtype=np.float64).reshape(-1)
    else:
        L, R, _ = _chain_contraction(cs, _split_point(cs), bound=False)
        T = _join_unscaled(L, R, E)
        if T is None:  # the plain left-to-right contraction of the unscaled cores
            T = np.asarray(to_numpy(cores_a[0]), dtype=np.float64)
            T = T.reshape(-1, T.shape[-1])
            for c in cores_a[1:]:
                c = np.asarray(to_numpy(c), dtype=np.float64)
                T = (T @ c.reshape(int(c.shape[0]), -1)).reshape(-1, int(c.shape[-1]))
        Ahat = T.reshape(-1)
    return _float_up(Fraction(tt_residual_bound(Ahat, cores_b)) + Fraction(tt_residual_bound(Ahat, cores_a)))


# -- rigorous bounds for operations on trains (no dense tensor) ----------------------------------------------------
# Scalars are nonnegative floats combined with operations rounded upwards (``_add_up``, ``_mul_up``, ...), so every
# result is an upper bound on the exact value; ``inf`` means "no bound" and propagates.


@functools.lru_cache(maxsize=64)
def _unit_roundoff_of(dt: np.dtype) -> Fraction:
    if not np.issubdtype(dt, np.floating):
        return _U64
    return Fraction(float(np.finfo(dt).eps)) / 2


def unit_roundoff(x) -> Fraction:
    """The unit roundoff ``u = eps/2`` of the floating dtype of array ``x`` (any array library), exactly.

    Examples
    --------
    >>> import numpy as np
    >>> unit_roundoff(np.ones(1)) == Fraction(1, 2**53), unit_roundoff(np.ones(1, np.float32)) == Fraction(1, 2**24)
    (True, True)
    """
    dt = x.dtype
    if not isinstance(dt, np.dtype):  # torch.float32, array_api_strict.float32, ...
        name = str(dt).split(".")[-1]
        if name == "bfloat16":  # (no NumPy dtype; to_numpy widens it to float32: 8 significand bits, not 24)
            return Fraction(1, 2**8)
        try:
            dt = np.dtype(name)
        except TypeError:
            dt = np.asarray(to_numpy(x)).dtype
    return _unit_roundoff_of(dt)


@functools.lru_cache(maxsize=4096)
def gamma_up(K: int, u: Fraction = _U64) -> float:
    """A float ``≥ γ_K(u) = K u / (1 − K u)`` (``inf`` when ``K u ≥ 1``)."""
    return math.inf if K * u >= 1 else _float_up(_gamma(K, u))


@functools.lru_cache(maxsize=64)
def inv_one_minus_up(u: Fraction = _U64) -> float:
    """A float ``≥ 1 / (1 − u)``."""
    return _float_up(1 / (1 - u))


def sum_up(*xs: float) -> float:
    """A float ``≥`` the exact sum of nonnegative floats."""
    s = 0.0
    for x in xs:
        s = _add_up(s, x)
    return s


def prod_up(*xs: float) -> float:
    """A float ``≥`` the exact product of nonnegative floats (0 if any factor is 0)."""
    p = 1.0
    for x in xs:
        p = _mul_up(p, x)
    return p


@functools.lru_cache(maxsize=4096)
def _fro_inflation(N: int) -> float:
    """A float ``≥ (1 + 2^-200)² / ((1 − γ_N)(1 − u))``: see :func:`_fro_up`."""
    return _inflation_up((N, 0), 1, _UNDERFLOW_SLACK)


def fro_up(Z) -> float:
    """A float ``≥ ‖Z‖_F`` for a float array of any library (its exact values); ``inf`` if not finite.

    The one-pass case of :func:`_fro_up` in plain floats (sum of squares in ``[2^-600, ∞)``), else its scaled
    path.

    Examples
    --------
    >>> import numpy as np
    >>> fro_up(np.array([3.0, 4.0])) >= 5.0, fro_up(np.array([3e300, 4e300])) >= 5e300, fro_up(np.zeros(2))
    (True, True, 0.0)
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return fro_up_raw(Z)


def fro_up_raw(Z) -> float:
    """:func:`fro_up` without setting the floating-point error state (callers ignore overflow warnings)."""
    if not (isinstance(Z, np.ndarray) and Z.dtype == np.float64):
        Z = np.asarray(to_numpy(Z), dtype=np.float64)
    z = Z.reshape(-1)
    N = int(z.shape[0])
    if N == 0:
        return 0.0
    s = float(np.dot(z, z))  # BLAS: no floating-point warnings; out-of-range sums take the scaled path below
    if 2.0**-600 <= s < math.inf and N < 2**51:
        return _mul_up(math.sqrt(s), _fro_inflation(N))
    if s == 0.0 and not z.any():
        return 0.0
    f = _fro_up(z, 0)
    return math.inf if f is None else _float_up(f)


def gram_defect_up(Q) -> float:
    """A float ``≥ ‖QᵀQ − I‖_2`` for a float matrix ``Q`` (``p × q``, exact values): the computed
    ``fl(fl(QᵀQ) − I)`` bounds ``fl(QᵀQ) − I`` within a factor ``1/(1 − u)``, plus ``γ_p ‖Q‖²_F ≥ γ_p ‖|Q|ᵀ|Q|‖_F``
    for the rounding of the product (Higham §3.5); ``‖·‖_2 ≤ ‖·‖_F``.

    Examples
    --------
    >>> import numpy as np
    >>> Q = np.linalg.qr(np.random.default_rng(0).standard_normal((20, 5)))[0]
    >>> gram_defect_up(Q) < 1e-13
    True
    """
    Q = np.asarray(to_numpy(Q), dtype=np.float64)
    p, q = int(Q.shape[0]), int(Q.shape[1])
    G = Q.T @ Q
    G[np.diag_indices(q)] -= 1.0
    fq = fro_up(Q)
    return _add_up(_mul_up(fro_up(G), inv_one_minus_up()), _mul_up(gamma_up(p), _mul_up(fq, fq)))


def spectral_up(M) -> float:
    """A float ``≥ ‖M‖_2`` for a float matrix (exact values): ``λ_max`` of the smaller Gram matrix is at most
    ``min(max row sum, Frobenius norm)`` of its computed absolute value plus ``γ_p ‖M‖²_F`` for its rounding
    (rows summed within ``γ_q``); ``M`` is scaled by a power of two first where exact.

    Examples
    --------
    >>> import numpy as np
    >>> spectral_up(np.eye(4)) < 1 + 1e-14, spectral_up(np.ones((3, 3))) >= 3
    (True, True)
    """
    M = np.asarray(to_numpy(M), dtype=np.float64)
    if M.size == 0:
        return 0.0
    if not np.all(np.isfinite(M)):
        return math.inf
    if M.shape[0] < M.shape[1]:
        M = M.T
    p, q = int(M.shape[0]), int(M.shape[1])
    m = float(np.max(np.abs(M)))
    if m == 0.0:
        return 0.0
    e = int(np.frexp(m)[1])
    Ms = np.ldexp(M, -e)
    if not np.array_equal(np.ldexp(Ms, e), M):  # bits lost below the normal range: no scaling
        Ms, e = M, 0
    G = np.abs(Ms.T @ Ms)
    rows = _mul_up(float(np.max(np.sum(G, axis=1))), _inflation_up((q,)))
    fm = fro_up(Ms)
    lam = _add_up(min(rows, fro_up(G)), _mul_up(gamma_up(p), _mul_up(fm, fm)))
    return ldexp_up(_sqrt_float_up(lam), e)


def ldexp_up(x: float, e: int) -> float:
    """A float ``≥ x·2^e`` for a float ``x ≥ 0`` (``inf`` on overflow; one ulp up when the result is subnormal)."""
    if x == 0.0 or e == 0 or math.isinf(x):
        return x
    try:
        y = math.ldexp(x, e)
    except OverflowError:
        return math.inf
    return y if y >= 2.0**-1022 else math.nextafter(y, math.inf)


def _scaled_with_exponents(cores):
    """The cores as float64 arrays, those with ``max |G_k|`` outside ``[2^-8, 2^8]`` scaled by powers of two to
    ``max |G_k| ∈ [1/2, 1)`` where exact, and the exponents."""
    cs, es = [], []
    for c in cores:
        c = np.asarray(to_numpy(c), dtype=np.float64)
        m = float(np.max(np.abs(c))) if c.size else 0.0
        e = 0
        if 0.0 < m < math.inf and not 2.0**-8 <= m <= 2.0**8:  # in range: products of ≤ 100 cores stay finite
            e = int(np.frexp(m)[1])
            sc = np.ldexp(c, -e)
            if np.array_equal(np.ldexp(sc, e), c):
                c = sc
            else:
                e = 0
        cs.append(c)
        es.append(e)
    return cs, es


def suffix_norms(cores) -> list:
    """Rigorous float upper bounds ``S[k] ≥ ‖G_k G_{k+1} ⋯ G_{d−1}‖_2`` (the right part as an ``r_k × N_{≥k}``
    matrix), ``k = 0 … d`` (``S[d] = 1``; ``S[0] ≥ ‖A_TT‖_F``), without forming any dense tensor.

    A Gram sweep from the right with its own rounding bound (``_right_operator_norms``) on the cores scaled by
    powers of two (exact); ``inf`` where the sweep is not finite.  Cost ``O(Σ_k r_{k−1} n_k r_k (r_{k−1} + r_k))``.
    Assumes IEEE float64 arithmetic and no underflow of the Gram entries of the scaled cores.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cores = [rng.standard_normal((1, 3, 2)), rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 3, 1))]
    >>> S = suffix_norms(cores)
    >>> A = np.einsum('aib,bjc,ckd->ijk', *cores)
    >>> bool(np.linalg.norm(A) <= S[0] <= np.linalg.norm(A) * (1 + 1e-12))
    True
    """
    cs, es = _scaled_with_exponents(cores)
    d = len(cs)
    rho = _right_operator_norms(cs, first=0)
    out = [math.inf] * (d + 1)
    out[d] = 1.0
    acc = 0
    for k in range(d - 1, -1, -1):
        acc += es[k]
        out[k] = math.inf if rho[k] is None else ldexp_up(rho[k], acc)
    return out


def prefix_norms(cores) -> list:
    """Rigorous float upper bounds ``P[k] ≥ ‖G_0 ⋯ G_{k−1}‖_2`` (an ``N_{<k} × r_k`` matrix), ``k = 0 … d``
    (``P[0] = 1``, ``P[d] ≥ ‖A_TT‖_F``): :func:`suffix_norms` of the reversed, transposed train.

    Examples
    --------
    >>> import numpy as np
    >>> Q = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 2)))[0]
    >>> P = prefix_norms([Q.reshape(1, 6, 2), np.ones((2, 1, 1))])
    >>> bool(abs(P[1] - 1) < 1e-14)      # orthonormal columns
    True
    """
    rev = [np.transpose(np.asarray(to_numpy(c), dtype=np.float64), (2, 1, 0)) for c in reversed(list(cores))]
    return suffix_norms(rev)[::-1]
