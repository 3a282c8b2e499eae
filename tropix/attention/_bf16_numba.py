"""numba kernels of :mod:`tropix.attention._bf16`: rounding to bfloat16 bits and packing for the bf16 GEMM.

``round64`` / ``round32``: the bfloat16 bits (round to nearest, ties to even) of one float64 / float32 value,
given with its bits.  ``pack_rows``: an ``(n, d)`` float matrix as ``(n, 2 dp)`` bf16 bits (``dp = ceil(d / 2)``,
zero padded): the broadcast operand of the kernel.  ``pack_lanes`` / ``pack_lanes_t``: an ``(m, d)`` matrix, or
its transpose ``(d, m)``, as ``(dp, 2 mw)`` bf16 bits (``mw >= m``, zero padded): the word ``[p, r]`` holds
dimensions ``2p, 2p + 1`` of row ``r``, the vector operand of the kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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


@njit(cache=True, nogil=True)
def pack_rows64(x, b, out):
    """Rows of ``x`` (float64, bits ``b``) into ``out`` (n, 2 dp) uint16; padding columns set to zero.

    A row whose entries all lie in bfloat16's normal range (``2^-126 <= |x| < (2 - 2^-8) 2^127``) takes the
    integer-only rounding of :func:`round64` (it vectorises); any other row (zeros, subnormals, overflow,
    inf, NaN) is rounded again entry by entry with the full :func:`round64`."""
    n, d = x.shape
    w = out.shape[1]
    for j in range(n):
        other = False
        for l in range(d):
            a = b[j, l] & _ABS64
            sign = (b[j, l] >> np.uint64(48)) & np.uint64(0x8000)
            rn = ((a + _HALF64 + ((a >> np.uint64(45)) & np.uint64(1))) >> np.uint64(45)) - _REBIAS
            other |= (a - _MIN64) >= (_OVF64 - _MIN64)  # outside [_MIN64, _OVF64) (unsigned wrap below)
            out[j, l] = np.uint16(sign | rn)
        if other:
            for l in range(d):
                out[j, l] = round64(x[j, l], b[j, l])
        for l in range(d, w):
            out[j, l] = 0


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
