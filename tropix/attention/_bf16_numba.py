"""numba kernels of :mod:`tropix.attention._bf16`: rounding to bfloat16 bits and packing for the bf16 GEMM.

``round64`` / ``round32``: the bfloat16 bits (round to nearest, ties to even) of one float64 / float32 value,
given with its bits.  ``pack_rows``: an ``(n, d)`` float matrix as ``(n, 2 dp)`` bf16 bits (``dp = ceil(d / 2)``,
zero padded): the broadcast operand of the kernel.  ``pack_lanes`` / ``pack_lanes_t``: an ``(m, d)`` matrix, or
its transpose ``(d, m)``, as ``(dp, 2 mw)`` bf16 bits (``mw >= m``, zero padded): the word ``[p, r]`` holds
dimensions ``2p, 2p + 1`` of row ``r``, the vector operand of the kernel.  ``pack_rows64`` and
``row_residuals64`` also give each row's squared rounding errors (for
:func:`tropix.attention._bf16.error_bound_residual`); ``rownorms_pack``: validation's pass over the keys
(row norms, finiteness) with the packing and those errors on the way.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_numba import finish_norm, plain_norm

_ABS64 = np.uint64(0x7FFFFFFFFFFFFFFF)
_INF64 = np.uint64(0x7FF0000000000000)
_OVF64 = np.uint64(0x47EFF00000000000)  # (2 - 2^-8) 2^127: from here on |x| rounds to inf in bfloat16
_MIN64 = np.uint64(0x3810000000000000)  # 2^-126, the smallest normal bfloat16
_HALF64 = np.uint64((1 << 44) - 1)
_REBIAS = np.uint64(896 << 7)  # (1023 - 127) << 7: float64 exponent bias to bfloat16 bias, in place
_S133 = 2.0**133  # 1 / (quantum of bfloat16 subnormals)
_MAGIC = 2.0**52  # adding and subtracting it rounds 0 <= y < 2^52 to an integer, ties to even
_ABS32 = np.uint32(0x7FFFFFFF)
_INF32 = np.uint32(0x7F800000)


@njit(cache=True, nogil=True, inline="always")
def round64(x, b):
    """bfloat16 bits of the float64 ``x`` (its bits ``b``), rounded once (no double rounding via float32)."""
    a = b & _ABS64
    sign = np.uint16((b >> np.uint64(48)) & np.uint64(0x8000))
    # normal range: the 52-bit significand rounded to 7 bits, ties to even; a carry runs into the exponent
    rn = ((a + _HALF64 + ((a >> np.uint64(45)) & np.uint64(1))) >> np.uint64(45)) - _REBIAS
    # |x| < 2^-126: an integer multiple m of 2^-133, which are the bits (m = 128 is 2^-126, also right)
    y = min(abs(x) * _S133, 256.0)
    m = np.uint64((y + _MAGIC) - _MAGIC)
    r = rn if a >= _MIN64 else m
    r = np.uint64(0x7F80) if a >= _OVF64 else r
    r = np.uint64(0x7FC0) if a > _INF64 else r
    return sign | np.uint16(r)


@njit(cache=True, nogil=True, inline="always")
def round32(b):
    """bfloat16 bits of the float32 with bits ``b`` (ties to even; overflow to inf as in IEEE rounding)."""
    a = b & _ABS32
    r = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    q = ((b >> np.uint32(16)) | np.uint32(0x40))
    r = q if a > _INF32 else r
    return np.uint16(r)


@njit(cache=True, nogil=True)
def round_array64(x, b, out):
    """``out[i] = round64(x[i])`` for flat arrays."""
    for i in range(x.shape[0]):
        out[i] = round64(x[i], b[i])


@njit(cache=True, nogil=True)
def round_array32(b, out):
    """``out[i] = round32(b[i])`` for flat arrays."""
    for i in range(b.shape[0]):
        out[i] = round32(b[i])


_SPLIT = 2.0**45 + 1.0  # Veltkamp's splitting constant: 53 - 45 = 8 significant bits, bfloat16's


@njit(cache=True, nogil=True, inline="always")
def _residual64(x, b):
    """``|x - bf16(x)|`` for the float64 ``x`` (bits ``b``) in bfloat16's normal range: Veltkamp's splitting
    ``c = x (2^45 + 1)``, ``h = c - (c - x)`` gives ``x`` rounded to nearest on 8 bits (Boldo 2006; a tie may
    go either way, at the same distance) and ``x - h`` exactly.  0 below the range (the GEMM reads such
    entries as zero: :func:`tropix.attention._bf16.error_bound`'s underflow term covers them), inf from the
    overflow threshold on (and for inf, NaN)."""
    a = b & _ABS64
    if a >= _OVF64:
        return np.inf
    if a < _MIN64:
        return 0.0
    c = x * _SPLIT
    h = c - (c - x)
    return abs(x - h)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _sum_sq_diff(x, y):
    """``sum (|x_l| - y_l)^2`` in any order (it vectorises; the caller's bound holds for any order); each
    difference is exact where ``y_l`` is ``|x_l|`` rounded to bfloat16 (Sterbenz)."""
    s = 0.0
    for l in range(x.shape[0]):
        e = abs(x[l]) - y[l]
        s += e * e
    return s


@njit(cache=True, nogil=True)
def pack_rows64(x, b, out, res):
    """Rows of ``x`` (float64, bits ``b``) into ``out`` (n, 2 dp) uint16; padding columns set to zero.

    A row whose entries all lie in bfloat16's normal range (``2^-126 <= |x| < (2 - 2^-8) 2^127``) takes the
    integer-only rounding of :func:`round64` (it vectorises); any other row (zeros, subnormals, overflow,
    inf, NaN) is rounded again entry by entry with the full :func:`round64`.

    If ``res`` has ``n`` entries, ``res[j]`` receives the float64 sum of the squared rounding errors
    ``(x[j, l] - bf16(x[j, l]))^2`` over the entries in bfloat16's normal range (each difference exact; inf for
    an entry that overflows, 0 for one below the range); ``res`` of length 0: not computed."""
    n, d = x.shape
    w = out.shape[1]
    want = res.shape[0] > 0
    top = np.empty(d, dtype=np.uint64)
    topf = top.view(np.float64)
    for j in range(n):
        other = False
        for l in range(d):
            a = b[j, l] & _ABS64
            sign = (b[j, l] >> np.uint64(48)) & np.uint64(0x8000)
            t = (a + _HALF64 + ((a >> np.uint64(45)) & np.uint64(1))) >> np.uint64(45)
            rn = t - _REBIAS
            other |= (a - _MIN64) >= (_OVF64 - _MIN64)  # outside [_MIN64, _OVF64) (unsigned wrap below)
            out[j, l] = np.uint16(sign | rn)
            top[l] = t << np.uint64(45)  # the float64 bits of |bf16(x)|
        if other:
            s = _pack_row_slow(x, b, j, out)
            if want:
                res[j] = s
        elif want:
            res[j] = _sum_sq_diff(x[j], topf)
        for l in range(d, w):
            out[j, l] = 0


@njit(cache=True, nogil=True)
def _pack_row_slow(x, b, j, out):
    """Row ``j`` of ``x`` (bits ``b``) rounded entry by entry with the full :func:`round64` into ``out[j]``;
    returns the sum of its squared rounding errors as :func:`pack_rows64` defines it (Veltkamp's splitting:
    this function must not be compiled with reassociating fast-math)."""
    s = 0.0
    for l in range(x.shape[1]):
        out[j, l] = round64(x[j, l], b[j, l])
        e = _residual64(x[j, l], b[j, l])
        s += e * e
    return s


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def rownorms_pack(x, norms, b, out, res):
    """One pass over the keys ``x`` (n, d) float64 (bits ``b``): their Euclidean row norms into ``norms``
    (as :func:`tropix.attention._kernels_numba.rownorms_finite`, NaN for a row with an inf or NaN entry),
    the bfloat16 packing of :func:`pack_rows64` into ``out`` and the squared rounding errors into ``res``.
    Returns whether every entry is finite.  (Validation reads the keys anyway: packing them on the way
    saves the screen a second pass over them.)  The sums may be reassociated (their bounds hold in any
    order); the rounding itself is integer arithmetic, and the rows it leaves to :func:`round64` go to
    :func:`_pack_row_slow`, compiled without fast-math."""
    n, d = x.shape
    w = out.shape[1]
    top = np.empty(d, dtype=np.uint64)
    topf = top.view(np.float64)
    finite = True
    for j in range(n):
        s = 0.0
        z = 0.0
        other = False
        for l in range(d):  # (x[j, l], no row view per row)
            e = x[j, l]
            s += e * e
            z += e * 0.0
            a = b[j, l] & _ABS64
            sign = (b[j, l] >> np.uint64(48)) & np.uint64(0x8000)
            t = (a + _HALF64 + ((a >> np.uint64(45)) & np.uint64(1))) >> np.uint64(45)
            other |= (a - _MIN64) >= (_OVF64 - _MIN64)  # outside [_MIN64, _OVF64) (unsigned wrap below)
            out[j, l] = np.uint16(sign | (t - _REBIAS))
            top[l] = t << np.uint64(45)  # the float64 bits of |bf16(x)|
        for l in range(d, w):
            out[j, l] = 0
        if other:
            res[j] = _pack_row_slow(x, b, j, out)
        else:
            r = 0.0
            for l in range(d):
                e = abs(x[j, l]) - topf[l]  # exact (Sterbenz)
                r += e * e
            res[j] = r
        nv = plain_norm(s, z)
        norms[j] = nv if nv >= 0.0 else finish_norm(x[j], d, s, z)
        if z != 0.0:  # an inf or NaN entry
            finite = False
    return finite


@njit(cache=True, nogil=True)
def row_residuals64(x, b, res):
    """``res[j]``: the sum over the row ``x[j]`` (float64, bits ``b``) of the squared bfloat16 rounding errors,
    as :func:`pack_rows64` computes them."""
    n, d = x.shape
    for j in range(n):
        s = 0.0
        for l in range(d):
            e = _residual64(x[j, l], b[j, l])
            s += e * e
        res[j] = s


@njit(cache=True, nogil=True)
def pack_rows32(b, out):
    """Rows of a float32 matrix (bits ``b``) into ``out`` (n, 2 dp) uint16; padding columns set to zero."""
    n, d = b.shape
    w = out.shape[1]
    for j in range(n):
        for l in range(d):
            out[j, l] = round32(b[j, l])
        for l in range(d, w):
            out[j, l] = 0


@njit(cache=True, nogil=True)
def pack_lanes64(x, b, out):
    """``x`` (m, d) float64 (bits ``b``) into ``out`` (dp, 2 mw): ``out[p, 2r + h] = bf16(x[r, 2p + h])``."""
    m, d = x.shape
    out[:] = 0
    for r in range(m):
        for l in range(d):
            out[l >> 1, 2 * r + (l & 1)] = round64(x[r, l], b[r, l])


@njit(cache=True, nogil=True)
def pack_lanes32(b, out):
    """As :func:`pack_lanes64` for a float32 matrix given by its bits."""
    m, d = b.shape
    out[:] = 0
    for r in range(m):
        for l in range(d):
            out[l >> 1, 2 * r + (l & 1)] = round32(b[r, l])


@njit(cache=True, nogil=True)
def pack_lanes_t64(x, b, out):
    """``x`` (d, m) float64, the transpose: ``out[p, 2r + h] = bf16(x[2p + h, r])``."""
    d, m = x.shape
    out[:] = 0
    for l in range(d):
        p = l >> 1
        h = l & 1
        for r in range(m):
            out[p, 2 * r + h] = round64(x[l, r], b[l, r])


@njit(cache=True, nogil=True)
def pack_lanes_t32(b, out):
    """As :func:`pack_lanes_t64` for a float32 transpose given by its bits."""
    d, m = b.shape
    out[:] = 0
    for l in range(d):
        p = l >> 1
        h = l & 1
        for r in range(m):
            out[p, 2 * r + h] = round32(b[l, r])


@njit(cache=True, nogil=True)
def screen_args(A, kbits, qbits, mref, thr, acc, bmax, hk, hq, hv, n, kblock, gw, xaddr, ldx, kind, d, joff):
    """Fill ``A`` (int64) with the arguments of the compiled ``bf16_screen`` (the order of ``_bf16._SCREEN_ARGS``):
    addresses of the arrays, row strides in bytes, sizes."""
    A[0] = kbits.ctypes.data
    A[1] = n
    A[2] = kbits.strides[0] if kbits.shape[0] > 1 else kbits.shape[1] * 2
    A[3] = qbits.ctypes.data
    A[4] = mref.shape[0]
    A[5] = qbits.strides[0] if qbits.shape[0] > 1 else qbits.shape[1] * 2
    A[6] = kbits.shape[1] // 2
    A[7] = kblock
    A[8] = gw
    A[9] = xaddr
    A[10] = ldx
    A[11] = kind
    A[12] = d
    A[13] = mref.ctypes.data
    A[14] = thr.ctypes.data
    A[15] = acc.ctypes.data
    A[16] = bmax.ctypes.data
    A[17] = joff
    A[18] = hk.ctypes.data
    A[19] = hq.ctypes.data
    A[20] = hv.ctypes.data
    A[21] = hk.shape[0]
