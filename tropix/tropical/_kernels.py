"""Compiled CPU kernels behind the generic array code.

:func:`maxplus_matmul_fast` is the hook :func:`tropix.tropical.matmul.matmul` calls first; it returns
``None`` whenever no compiled kernel applies (another array library, object/exact dtypes other than
``int64``, tiny sizes, numba missing), and the generic array-API path then runs.  Its results agree
exactly with the generic path, ``±inf`` tropical zeros included (tested in ``tests/test_matmul.py``).

numba is imported, and the kernel compiled (or loaded from numba's on-disk cache), only on the first call
that needs it, so ``import tropix`` stays fast.
"""

from __future__ import annotations

import threading

import numpy as np

from .._compiled import compiled

__all__ = ["maxplus_matmul_fast", "log_matmul_entries_fast", "MIN_WORK", "PARALLEL_MIN_ROWS", "PARALLEL_MIN_WORK"]

MIN_WORK = 32 * 32 * 32
"""Products with fewer than this many multiply-adds ``m*k*n`` use the generic path."""

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64))
PARALLEL_MIN_ROWS = 64
"""Products with fewer rows than this (e.g. vector-matrix products) run the single-threaded kernel."""

PARALLEL_MIN_WORK = 1 << 25
"""Products with less work ``m*k*n`` (about 320^3) run single-threaded: starting the threads costs more
than it saves there, and on a busy machine waiting for a descheduled thread costs milliseconds."""

# numba's fallback "workqueue" threading layer must not be entered by two threads at once: a thread that
# finds the parallel kernel busy runs the single-threaded one instead of waiting.
_parallel_lock = threading.Lock()


def _load():
    mod = compiled("tropix.tropical._kernels_numba")
    return None if mod is None else (mod.maxplus_matmul, mod.maxplus_matmul_serial)


def maxplus_matmul_fast(A, B, sense):
    """Tropical product ``A ⊗ B`` of two 2-D NumPy arrays by the compiled kernel, or ``None``.

    Parameters
    ----------
    A, B : numpy.ndarray
        2-D arrays with ``A.shape[1] == B.shape[0]``, already validated (no NaN, no infinity of the
        opposite convention).  Their common dtype must be float32, float64 or int64.
    sense : {+1, -1}
        ``+1`` for max-plus, ``-1`` for min-plus (computed exactly as ``-maxplus(-A, -B)``).

    Returns
    -------
    numpy.ndarray or None
        The product in the common dtype, or ``None`` if the fast path does not apply.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.arange(64.0 * 64).reshape(64, 64) % 7
    >>> C = maxplus_matmul_fast(A, A.T.copy(), +1)
    >>> C.shape, float(C[0, 0])
    ((64, 64), 12.0)
    >>> maxplus_matmul_fast(A[:2, :2], A[:2, :2], +1) is None  # tiny: generic path
    True
    """
    if not (isinstance(A, np.ndarray) and isinstance(B, np.ndarray)) or A.ndim != 2 or B.ndim != 2:
        return None
    if sense not in (1, -1) or A.shape[1] != B.shape[0]:
        return None
    m, k = A.shape
    n = B.shape[1]
    if m * k * n < MIN_WORK or k == 0:
        return None
    if A.dtype == object or B.dtype == object:
        return None
    dtype = np.result_type(A.dtype, B.dtype)
    if dtype not in _DTYPES:
        return None
    kernels = _load()
    if kernels is None:  # pragma: no cover
        return None
    if sense == 1:
        a = np.ascontiguousarray(A, dtype=dtype)
        b = np.ascontiguousarray(B, dtype=dtype)
    else:
        a = np.negative(A, dtype=dtype, order="C")
        b = np.negative(B, dtype=dtype, order="C")
    C = np.empty((m, n), dtype=dtype)
    zero = np.iinfo(dtype).min if dtype.kind == "i" else -np.inf
    if m >= PARALLEL_MIN_ROWS and m * k * n >= PARALLEL_MIN_WORK and _parallel_lock.acquire(blocking=False):
        try:
            kernels[0](a, b, C, dtype.type(zero))
        finally:
            _parallel_lock.release()
    else:
        kernels[1](a, b, C, dtype.type(zero))
    if sense == -1:
        np.negative(C, out=C)
    return C


def log_matmul_entries_fast(a, b, T, bad, shift):
    """The entries ``bad`` (a boolean mask) of the log-semiring product ``T log(exp(a/T) @ exp(b/T))``, each
    shifted by its best term ``shift`` (the limit semiring's product, its zeros replaced by 0), by the compiled
    kernel; ``None`` if it does not apply (not float64 NumPy input, numba missing).

    This is the path :func:`tropix.tropical.matmul.matmul` takes for entries whose per-row and per-column
    shifted terms underflow (``|T|`` small against the spread of the entries): per entry it visits the ``k``
    terms once and evaluates ``exp`` only for those that do not underflow to exactly 0, where the generic
    path evaluates ``exp`` on a ``(rows, k, cols)`` block.  Same terms, summed in another order: the results
    agree with the generic path to a few units in the last place (``tests/test_matmul.py``).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[0.0, 1.0]]); b = np.array([[2.0], [0.0]])
    >>> out = log_matmul_entries_fast(a, b, 1e-3, np.array([[True]]), np.array([[2.0]]))
    >>> bool(abs(out[0] - (2.0 + 1e-3 * np.log(1 + np.exp(-1e3)))) < 1e-12)
    True
    """
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)) or a.dtype != np.float64 or b.dtype != np.float64:
        return None
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        return None
    mod = compiled("tropix.tropical._kernels_numba")
    if mod is None:  # pragma: no cover
        return None
    rows, cols = np.nonzero(bad)
    out = np.empty(len(rows))
    mod.log_matmul_entries(np.ascontiguousarray(a), np.ascontiguousarray(b.T), float(T), rows, cols,
                           np.ascontiguousarray(np.asarray(shift, dtype=np.float64)[rows, cols]), out)
    return out
