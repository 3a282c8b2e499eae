"""numba kernels of :mod:`tropix.attention._int8`: symmetric int8 quantisation and packing for the VNNI GEMM.

``row_scale``: the float32 scale of one float64 row, ``s >= max|x| / 127`` (0 for a row whose entries are all
below ``127 * 2^-118``).  The integer codes of a query are ``c = clamp(rint(x / s), -127, 127)``; the residual
``x - s c`` is summed in float64 squares (every product ``s c`` is exact in float64, the subtraction rounds
once).  ``rownorms_pack``: validation's pass over the keys (row norms, finiteness) packing keys ``(n, d)``
with two codes per entry, ``x ≈ s (hi + lo / 256)`` (``lo`` in ``[-128, 127]``), as rows of ``4 dq`` signed bytes of ``hi`` then ``4 dq`` of ``lo`` (``dq = ceil(d / 4)``, zero padded), the float32
``s / 256`` and the int32 offset corrections ``-128 Σ hi`` and ``-128 Σ lo`` (the broadcast operand of the
kernel).  ``pack_lanes``: queries ``(m, d)`` as ``(dq + 1, 4 mw)`` unsigned bytes ``c + 128``: the 32-bit
word ``[p, r]`` holds dimensions ``4p .. 4p + 3`` of query ``r``; the last row holds the queries' float32
scales (padding: code 0, scale 0).
The compiled packer of :mod:`tropix.attention._int8_pack` does what ``rownorms_pack`` does on the hot path.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._kernels_numba import finish_norm, plain_norm

_TINY = 2.0**-118  # a smaller scale is replaced by 0 (all codes 0): the keys' scale / 256 stays a normal float32
_UP = (1.0 + 2.0**-20) / 127.0  # max|x| times this, rounded to float32, is at least max|x| / 127
_ABS = np.uint64(0x7FFFFFFFFFFFFFFF)
_INF = np.uint64(0x7FF0000000000000)  # the bits of inf: a row whose largest |x| has these bits or more is not finite


@njit(cache=True, nogil=True, inline="always")
def _amax_bits(b, j):
    """The bits of ``max_t |x[j, t]|`` from the bits ``b`` of ``x``: for non-negative floats the order of the
    bits is the order of the values (an integer maximum, which vectorises; a float one does not here)."""
    a = np.uint64(0)
    for t in range(b.shape[1]):
        y = b[j, t] & _ABS
        a = y if y > a else a
    return a


@njit(cache=True, nogil=True, inline="always")
def row_scale(b, j, tmp):
    """The float32 scale of row ``j`` (its float64 bits ``b[j]``): at least ``max|x| / 127`` (so every code
    fits ``[-127, 127]``), within ``2^-19`` of it; 0 if that is below ``2^-118`` or beyond float32.  ``tmp``:
    a 1-element uint64 scratch array, left holding the bits of ``max|x|`` (``>= _INF``: the row is not finite and the
    scale meaningless)."""
    tmp[0] = _amax_bits(b, j)
    s = np.float32(tmp.view(np.float64)[0] * _UP)  # (rounding is at most 2^-24 relative: still >= max|x| / 127)
    if not (np.float64(s) >= _TINY and np.float64(s) < np.inf):  # (also beyond float32: the residual all of x)
        return np.float32(0.0)
    return s


@njit(cache=True, nogil=True, inline="always")
def _code(x, inv):
    """The code of ``x`` at ``1 / scale = inv``: ``rint(x inv)`` (ties to even) clamped to ``[-127, 127]``,
    as a float64."""
    return np.rint(min(max(x * inv, -127.0), 127.0))


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def pack_lanes(x, b, lanes, scale, res):
    """Queries ``x`` (m, d) float64 (``b`` its bits) into ``lanes`` (dq, 4 mw) uint8,
    ``lanes[t // 4, 4 r + t % 4] = code + 128`` (every other byte 128: code 0), their scales into ``scale[r]``
    (float32; 0 for ``r >= m``) and the residual sums of squares into ``res[r]`` (float64; skipped when ``res``
    is empty); False if some entry is not finite."""
    m, d = x.shape
    want = res.shape[0] > 0
    for p in range(lanes.shape[0]):
        for c in range(lanes.shape[1]):
            lanes[p, c] = 128
    for r in range(scale.shape[0]):
        scale[r] = 0.0
    tmp = np.empty(1, np.uint64)
    ok = True
    for r in range(m):
        s = row_scale(b, r, tmp)
        ok &= tmp[0] < _INF
        sd = np.float64(s)
        inv = 1.0 / sd if s > 0 else 0.0
        ss = 0.0
        for t in range(d):
            c = _code(x[r, t], inv)
            lanes[t >> 2, 4 * r + (t & 3)] = np.uint8(np.int64(c) + 128)
            e = x[r, t] - sd * c
            ss += e * e
        scale[r] = s
        if want:
            res[r] = ss
    return ok


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def rownorms_pack(x, norms, b, codes, words, fwords, res):
    """Keys ``x`` (n, d) float64 (``b`` its bits as uint64) into rows of ``codes`` (n, 8 dq + 12) int8, whose
    int32 and float32 views are ``words`` and ``fwords`` (n, 2 dq + 3; all C-contiguous: the loops vectorise),
    with validation's row norms on the way.  With ``s`` the row's scale, ``z = clamp(rint(256 x / s), ±32512)``
    and two codes per entry, ``hi = floor((z + 128) / 256)`` in ``[-127, 127]`` (columns ``0 .. 4 dq``) and
    ``lo = z - 256 hi`` in ``[-128, 127]`` (``4 dq .. 8 dq``; padding 0), so ``x ≈ (s / 256) z``; then
    ``fwords[j, 2 dq] = s / 256`` (float32, exact), the offset corrections ``words[j, 2 dq + 1] = -128 Σ hi``
    and ``words[j, 2 dq + 2] = -128 Σ lo``; the residual sums of squares ``res[j]`` of ``x - (s / 256) z``
    (float64, each dequantised value exact); ``norms[j]`` as
    :func:`tropix.attention._kernels_numba.rownorms_finite` computes them (NaN for a row with an inf or NaN
    entry).  Returns whether every entry is finite (else the output is meaningless).  The fallback and the test
    reference of the compiled packer :func:`tropix.attention._int8_pack.rownorms_pack` (the same codes bit for
    bit).  (``reassoc``: the sums in any order; ``contract``: a residual may be one fused multiply-add, rounded
    once either way.)"""
    n, d = x.shape
    dq = (words.shape[1] - 3) // 2
    lo0 = 4 * dq
    tmp = np.empty(1, np.uint64)
    finite = True
    for j in range(n):
        s = row_scale(b, j, tmp)
        s8 = np.float32(s * np.float32(0.00390625))
        sd = np.float64(s8)
        inv = 1.0 / sd if s > 0 else 0.0
        th = 0
        tl = 0
        cr = codes[j, :lo0]
        cl = codes[j, lo0:]
        ss = 0.0
        sq = 0.0
        zz = 0.0
        for t in range(d):
            v = x[j, t]
            sq += v * v
            zz += v * 0.0
            zf = np.rint(min(max(v * inv, -32512.0), 32512.0))
            zi = np.int32(zf)
            h = (zi + 128) >> 8
            lo = zi - (h << 8)
            cr[t] = np.int8(h)
            cl[t] = np.int8(lo)
            th += h
            tl += lo
            r = v - sd * zf
            ss += r * r
        for t in range(d, lo0):
            cr[t] = 0
            cl[t] = 0
        fwords[j, 2 * dq] = s8
        words[j, 2 * dq + 1] = np.int32(-128 * th)
        words[j, 2 * dq + 2] = np.int32(-128 * tl)
        res[j] = ss
        nv = plain_norm(sq, zz)
        norms[j] = nv if nv >= 0.0 else finish_norm(x[j], d, sq, zz)
        if zz != 0.0 or tmp[0] >= _INF:  # an inf or NaN entry
            finite = False
    return finite
