"""Semiring matrix product: ``(A ⊗ B)_ij = ⊕_k A_ik ⊗ B_kj`` for any :class:`~tropix.tropical.semiring.Semiring`.

The generic path works on every array-API library (and keeps torch's autograd); it processes row
blocks so that the broadcast temporary stays small.  The log-semiring is reduced to one ordinary
matrix product with per-row and per-column shifts (exactly the log-sum-exp trick).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .._array import namespace, to_numpy
from ..errors import FloatOverflowError, ShapeError
from .semiring import (
    LogSemiring,
    RealSemiring,
    Semiring,
    TropicalSemiring,
    _check_overflow,
    _exact_add,
    _int_bound,
    _promote_arrays,
    get_semiring,
    real_array,
)

__all__ = ["matmul"]

_BLOCK_ELEMS = 1 << 22  # entries of the (rows, k, cols) broadcast temporary per block


def matmul(A: Any, B: Any, *, semiring: Semiring | str | None = None):
    """Semiring matrix product of ``A`` (m×k) and ``B`` (k×n); vectors are treated as in ``numpy.matmul``.

    Parameters
    ----------
    A, B : array_like
        Matrices (or vectors) of one array library; ``-inf`` (max-plus) / ``+inf`` (min-plus) entries are
        the tropical zero.
    semiring : Semiring or str, default MaxPlus

    Returns
    -------
    array
        Same library as the inputs; exact (int/object) input gives exact output.  Integer and bool
        operands never wrap around: they are widened to ``int64`` when every result provably fits,
        and otherwise computed with Python integers (a NumPy object array).  Operands of different
        dtypes follow the mixed-dtype rule of :mod:`~tropix.tropical.semiring` on every library
        (``int8`` with ``float32``: float32; ``int32`` with ``float32`` or float32 with float64: float64).

    Raises
    ------
    ShapeError
        If the inner dimensions differ or an operand is not 1- or 2-dimensional.
    NaNError, ConventionError
        If an operand holds NaN, or the infinity of the opposite convention.
    FloatOverflowError
        If finite float entries give a result beyond the float range: toward the illegal infinity
        (``+inf`` in max-plus, ``-inf`` in min-plus), or a tropical-zero entry although a finite term
        exists (``-1e308 + -1e308`` in max-plus).  Ordinary products pay two reductions over the
        result (its largest and smallest entry); the operands are re-read only if the result holds the
        tropical zero.  Also if an exact entry beyond the float range (``10**400``) meets a finite float
        entry: mixed exact and float input is float arithmetic.  (Beside the tropical zero ``±inf`` exact
        entries of any size are fine: the zero absorbs them.)
    SemiringMismatchError
        If an operand holds something other than real numbers (complex, strings, ``None``).

    Examples
    --------
    >>> import numpy as np
    >>> from tropix import MaxPlus, MinPlus
    >>> A = np.array([[0., 1.], [2., -np.inf]])
    >>> matmul(A, A, semiring=MaxPlus)
    array([[3., 1.],
           [2., 3.]])
    >>> matmul([[0, 1], [2, 3]], [[1], [0]], semiring=MinPlus)
    array([[1],
           [3]], dtype=object)
    """
    S = get_semiring(semiring)
    A = S.validate(real_array(A, "A") if not hasattr(A, "shape") else A, "A")
    B = S.validate(real_array(B, "B") if not hasattr(B, "shape") else B, "B")
    xp = namespace(A, B)
    A, B = _no_overflow(A, B, xp)
    if _is_object(A) or _is_object(B):  # widened to Python integers: exact arithmetic lives in NumPy
        xp = namespace(np.empty(0))
    if A.ndim not in (1, 2) or B.ndim not in (1, 2):
        raise ShapeError(f"matmul takes vectors or matrices, got shapes {tuple(A.shape)} and {tuple(B.shape)}")
    va, vb = A.ndim == 1, B.ndim == 1
    A2 = xp.reshape(A, (1, A.shape[0])) if va else A
    B2 = xp.reshape(B, (B.shape[0], 1)) if vb else B
    if A2.shape[1] != B2.shape[0]:
        raise ShapeError(
            f"inner dimensions differ: A is {tuple(A.shape)} and B is {tuple(B.shape)} "
            f"({A2.shape[1]} != {B2.shape[0]})"
        )
    if isinstance(S, RealSemiring):
        C = A2 @ B2
    elif isinstance(S, LogSemiring):
        with np.errstate(over="ignore", invalid="ignore"):
            C = _check_overflow(S, _log_matmul(A2, B2, S, xp), "matmul", A2, B2)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            C = _tropical_matmul(A2, B2, S, xp)
        C = _check_range(S, C, A2, B2, xp)
    if va and vb:
        return C[0, 0]
    if va:
        return C[0, :]
    if vb:
        return C[:, 0]
    return C


_INT64_HALF = 1 << 62


def _reduce(x, xp, largest: bool) -> float:
    """max (``largest``) or min of a non-empty float array as a Python float (NumPy without the wrapper)."""
    if isinstance(x, np.ndarray):
        return float(x.max() if largest else x.min())
    if hasattr(x, "detach"):
        x = x.detach()
    return float(xp.max(x) if largest else xp.min(x))


def _check_range(S: TropicalSemiring, C, A, B, xp):
    """``C = A ⊗ B`` unchanged, unless a float entry left the float range (then FloatOverflowError).

    Two reductions over ``C`` decide it in the usual case: its ⊕-best entry is not the illegal infinity,
    and its ⊕-worst entry is not the tropical zero (or, if it is, the inputs' worst finite entries cannot
    add up to an overflow, :func:`_may_reach_zero`).
    """
    if isinstance(C, np.ndarray):
        if C.dtype.kind != "f" or C.size == 0:
            return C
    elif not _is_float(C, xp) or int(np.prod(tuple(int(s) for s in C.shape))) == 0:
        return C
    best = _reduce(C, xp, S.sense == 1)
    if best == -S.zero or best != best:
        _check_overflow(S, C, "matmul", A, B)
    if _reduce(C, xp, S.sense != 1) == S.zero and _may_reach_zero(S, A, B, xp):
        _check_false_zero(S, C, A, B, xp)
    return C


def _worst_finite(x, S: TropicalSemiring, xp):
    """The ⊕-worst non-zero entry (smallest in max-plus), or None if there is none (float arrays only)."""
    if not _is_float(x, xp) or int(np.prod(tuple(int(s) for s in x.shape))) == 0:
        return None
    if hasattr(x, "detach"):
        x = x.detach()  # a test only: no autograd graph
    w = xp.min(x) if S.sense == 1 else xp.max(x)
    if float(w) == S.zero:  # tropical zeros present: the worst of the others
        w = (xp.min if S.sense == 1 else xp.max)(xp.where(x == S.zero, xp.full_like(x, -S.zero), x))
        if float(w) == -S.zero:
            return None
    return w


def _may_reach_zero(S: TropicalSemiring, A, B, xp) -> bool:
    """Whether some finite ``A[i, k] + B[k, j]`` could round to the tropical zero (``-inf`` in max-plus).

    Exact and cheap by monotone rounding, as :func:`~tropix.tropical.semiring._may_overflow`: only the two
    ⊕-worst finite entries are added.
    """
    wa, wb = _worst_finite(A, S, xp), _worst_finite(B, S, xp)
    if wa is None or wb is None:
        return False
    with np.errstate(over="ignore"):
        return float(wa + wb) == S.zero


def _check_false_zero(S: TropicalSemiring, C, A, B, xp):
    """Raise FloatOverflowError where ``C`` is the tropical zero although some ``k`` has both factors finite."""
    fa = xp.astype(A != S.zero, xp.float64)
    fb = xp.astype(B != S.zero, xp.float64)
    bad = (C == S.zero) & ((fa @ fb) > 0)
    if bool(xp.any(bad)):
        idx = tuple(int(i) for i in np.argwhere(np.asarray(to_numpy(bad)))[0])
        raise FloatOverflowError(
            f"{S.name}.matmul: finite float entries overflowed at index {idx} to {S.zero}, the tropical zero, "
            f"although a finite term A[i, k] ⊗ B[k, j] exists (the true value is beyond the float range); "
            "use exact input (int/Fraction), which never overflows, or rescale the data"
        )


def _is_int(x, xp) -> bool:
    if isinstance(x, np.ndarray):
        return x.dtype != object and (np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_)
    return xp.isdtype(x.dtype, ("integral", "bool"))


def _no_overflow(A, B, xp):
    """Integer and bool operands computed without wrap-around.

    Small integer dtypes (and bools, read as 0/1) would wrap in ``A[i, k] + B[k, j]`` (int8: 100 + 100 = -56)
    or, for ordinary products, in the sums of products.  Integer operands whose results provably fit go to
    ``int64``; otherwise NumPy object arrays of Python integers (exact, any size).  Operands of different
    dtypes are first brought to one by the mixed-dtype rule of :mod:`~tropix.tropical.semiring` (torch refused
    ``A @ B`` of two dtypes, array-api-strict integers beside floats, and torch gave ``int32`` with ``float32``
    float32 where NumPy gives float64).
    """
    if not (_is_object(A) or _is_object(B)):
        A, B = _promote_arrays(A, B, xp)
    ia, ib = _is_int(A, xp), _is_int(B, xp)
    if not (ia or ib):
        return A, B
    if not ((ia or _is_object(A)) and (ib or _is_object(B))):
        return A, B  # integers with floats: promoted to float by the library
    if _is_object(A) or _is_object(B):
        return _to_object(A), _to_object(B)
    ba, bb = _int_bound(A, xp), _int_bound(B, xp)
    k = int(A.shape[-1]) if len(A.shape) else 1
    if max(ba + bb, ba * bb * max(k, 1)) < _INT64_HALF:
        return xp.astype(A, xp.int64), xp.astype(B, xp.int64)
    return _to_object(A), _to_object(B)


def _is_object(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object


def _to_object(x):
    if _is_object(x):
        return x
    a = to_numpy(x)
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [int(v) for v in a.ravel()] if a.size else []
    return out


def _tropical_matmul(A, B, S: TropicalSemiring, xp):
    from . import _kernels

    fast = _kernels.maxplus_matmul_fast(A, B, S.sense)
    if fast is not None:
        return fast
    return _generic_tropical_matmul(A, B, S, xp)


def _generic_tropical_matmul(A, B, S: TropicalSemiring, xp):
    """Reference path: blocks of rows of ``max_k (A[i, k] + B[k, j])`` by broadcasting."""
    m, k = A.shape
    n = B.shape[1]
    if k == 0:
        return S.zeros((m, n), A if _is_float(A, xp) else None)
    rows = max(1, _BLOCK_ELEMS // max(1, k * n))
    reduce = xp.max if S.sense == 1 else xp.min
    add = operator.add
    if isinstance(A, np.ndarray) and (A.dtype == object or B.dtype == object):
        A = A.astype(object)
        B = B.astype(object)
        reduce = np.max if S.sense == 1 else np.min
        add = _object_add
    blocks = []
    for i0 in range(0, max(m, 1), rows):  # (m = 0: one empty block, the (0, n) result of its library and dtype)
        i1 = min(m, i0 + rows)
        blk = add(xp.expand_dims(A[i0:i1, :], axis=2), xp.expand_dims(B, axis=0))
        blocks.append(reduce(blk, axis=1))
    if len(blocks) == 1:
        return blocks[0]
    return xp.concat(blocks, axis=0) if hasattr(xp, "concat") else np.concatenate(blocks, axis=0)


_exact_add_ufunc = np.frompyfunc(_exact_add, 2, 1)


def _object_add(a: np.ndarray, b: np.ndarray, op: str = "matmul") -> np.ndarray:
    """``a + b`` of NumPy object arrays, exact, with ``±inf`` (the tropical zero) absorbing any finite entry.

    Python adds an ``int``/``Fraction`` to a float by converting it to float, so ``10**400 + -inf`` raised
    ``OverflowError`` although the tropical answer is ``-inf``.  Such blocks are redone entry by entry.

    Raises
    ------
    FloatOverflowError
        If an exact entry beyond the float range meets a *finite* float (mixed exact and float input is
        float arithmetic, and that sum has no float value).
    """
    try:
        return a + b
    except OverflowError:
        pass
    try:
        return _exact_add_ufunc(a, b)
    except OverflowError:
        raise FloatOverflowError(
            f"{op}: an exact entry beyond the float range meets a finite float entry; mixed exact and "
            "float input is computed in floats, where that sum has no value - pass all-exact input "
            "(int/Fraction instead of floats) or rescale the data"
        ) from None


def _is_float(x, xp):
    return not (isinstance(x, np.ndarray) and x.dtype == object) and xp.isdtype(x.dtype, "real floating")


def _shifted(a, m, T: float, xp):
    """``(a - m) / T``; where ``a - m`` overflows (finite entries of opposite signs near the float maximum, a
    temperature ``|T| > 1``) ``a / T - m / T`` instead: the term was dropped (``LogSemiring(1.7e308)``: 1e308
    for the product of ``[1e308, -1e308]`` with zeros, whose value is 1.457e308)."""
    with np.errstate(over="ignore", invalid="ignore"):
        d = (a - m) / T
        if abs(T) > 1:
            over = xp.isinf(d) & xp.isfinite(a) & xp.isfinite(m)
            if bool(xp.any(over)):
                d = xp.where(over, a / T - m / T, d)
    return d


def _log_matmul(A, B, S: LogSemiring, xp):
    """``T·log(exp(A/T) @ exp(B/T))`` with ⊕-winner shifts per row of A and column of B, so it never overflows.

    The shifts are subtracted before dividing by ``T``: ``exp((A - ma)/T)`` has exponents ``≤ 0`` even when
    ``A/T`` itself would overflow (small ``|T|``).
    """
    T = S.T
    from .semiring import _as_float, _log0, _wide_for

    a, da = _wide_for(T, _as_float(A, xp), xp)
    b, db = _wide_for(T, _as_float(B, xp), xp)
    if da is not None or db is not None:  # (T beyond an operand's float range: in float64, rounded back once)
        back = xp.result_type(_as_float(A, xp).dtype, _as_float(B, xp).dtype)  # (both operands' promoted dtype)
        out = _log_matmul(xp.astype(a, xp.float64), xp.astype(b, xp.float64), S, xp)
        return xp.astype(out, back)
    if a.shape[1] == 0:
        return S.zeros((a.shape[0], b.shape[1]), a)
    best = xp.max if T > 0 else xp.min
    ma = best(a, axis=1, keepdims=True)
    mb = best(b, axis=0, keepdims=True)
    ma = xp.where(xp.isinf(ma), xp.zeros_like(ma), ma)
    mb = xp.where(xp.isinf(mb), xp.zeros_like(mb), mb)
    prod = xp.exp(_shifted(a, ma, T, xp)) @ xp.exp(_shifted(b, mb, T, xp))
    out = T * _log0(prod, xp) + (ma + mb)
    # The shifts are per row and per column: when an entry's best term a_ik + b_kj lies far below
    # ma_i + mb_j (small |T|), its terms underflow (a finite entry came out as the zero: T = 1e-5 on
    # standard normal data) or become subnormal.  prod_ij >= exp of that best term's shifted exponent, so
    # prod_ij >= 1e-250 proves every term that matters is a normal float; the other entries are recomputed
    # with their own best term M_ij (the tropical product of the limit semiring) as the shift.
    bad = prod < 1e-250
    if not bool(xp.any(bad)):
        return out
    M = _tropical_matmul(a, b, S.limit, xp)
    Ms = xp.where(xp.isinf(M), xp.zeros_like(M), M)
    from . import _kernels

    fast = _kernels.log_matmul_entries_fast(a, b, T, bad, Ms)
    if fast is not None:  # (NumPy float64: the compiled kernel, entry by entry)
        out = np.array(out, copy=True)
        out[bad] = fast
        return out
    m, k = a.shape
    n = b.shape[1]
    rows = max(1, _BLOCK_ELEMS // max(1, k * n))
    blocks = []
    for i0 in range(0, max(m, 1), rows):  # (m = 0: one empty block, the (0, n) result of its library and dtype)
        i1 = min(m, i0 + rows)
        e = xp.exp((xp.expand_dims(a[i0:i1, :], axis=2) + xp.expand_dims(b, axis=0)
                    - xp.expand_dims(Ms[i0:i1, :], axis=1)) / T)  # exponents <= 0, the best one 0
        blocks.append(T * _log0(xp.sum(e, axis=1), xp) + Ms[i0:i1, :])
    exact = blocks[0] if len(blocks) == 1 else xp.concat(blocks, axis=0)
    return xp.where(bad, exact, out)
