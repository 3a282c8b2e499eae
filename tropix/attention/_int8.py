r"""int8 screening scores: a VPDPBUSD (AVX512-VNNI) GEMM with a rigorous quantisation bound.

Every query row ``q`` is quantised symmetrically with its own float32 scale ``s_q >= max|q| / 127`` to codes
``c = clamp(rint(q / s_q), -127, 127)``; every key row ``k`` to two codes per entry, ``k ≈ s_k (h + l / 256)``
with ``z = clamp(rint(256 k / s_k), ±32512)``, ``h = floor((z + 128) / 256)`` in ``[-127, 127]`` and
``l = z - 256 h`` in ``[-128, 127]`` (:func:`pack_keys`, :func:`pack_queries`).  :func:`scores` computes
(keys x queries, float32)

    ``S[j, r] = fl32(fl32(float(256 c_r · h_j + c_r · l_j) (s_j / 256)) s_r)``,

with both integer products exact: VPDPBUSD multiplies unsigned by signed bytes and adds four products to each
int32 lane, so the queries are stored as ``c + 128`` and each key's two accumulators start at its offset
corrections ``-128 Σ h_j`` and ``-128 Σ l_j``.  The keys carry 15 bits, so their quantisation error is
negligible and the screening error is that of the queries' 8 bits: ``ρ_q max|k|`` with ``ρ_q`` the norm of
a query's quantisation residual (about 0.6 % of ``|q|`` at d = 64 on Gaussian rows: the bound is about
``0.6 % |q| max|k|``, 1.6 times the bfloat16 screen's; one code per key would more than double it, and
the wider margins cost more than the second product, measured).  It is the product :mod:`tropix.attention.screen`
otherwise does in bfloat16 (:mod:`tropix.attention._bf16`) or float32, and :func:`screen_block` is the
screen's fused kernel on it.  The kernels are the LLVM IR of :mod:`tropix.attention._bf16` with the int8 dot
loop (``kind="i8"``), compiled by ``llvmlite`` for the host CPU on first use; they run only where
:func:`available` is true (the CPU reports ``avx512f``, ``avx512bw`` and ``avx512vnni``).

Speed (``benchmarks/bench_bf16.py``, one thread, 16384 keys x 256 queries, prepacked, on this repository's
November 2026 machine, an Intel Xeon of the Emerald Rapids generation, where VPDPBUSD issues four times as
often as VDPBF16PS and multiplies twice as many pairs): the scores 1.9 ms at d = 64 and 1.1 ms at d = 32
(float32 ``sgemm`` 4.7 / 3.1 ms, the bfloat16 kernel 6.3 / 3.1 ms); the fused screen 3.1 / 2.2 ms against
7.1 / 4.0 ms for the bfloat16 one.  Packing the keys costs about 0.85 ms at d = 64 (validation does it in its
pass over the keys, compiled from LLVM IR: :mod:`tropix.attention._int8_pack`; the numba loop, its fallback,
1.2-1.4 ms).

Layout.  Keys ``(n, 2 (2 dq + 3))`` uint16: ``dq = ceil(d / 4)`` 32-bit words of four signed bytes of ``h``
(zero padded), ``dq`` of ``l``, the float32 ``s_k / 256`` and the two int32 corrections.  Queries
``(dq + 1, 2 m16)`` uint16: word ``[p, r]`` holds dimensions ``4p .. 4p + 3`` of query ``r`` as unsigned
bytes, then a row of float32 scales (padding: code 0, scale 0).  Register tiles of ``_I8_MR`` keys (two
accumulators each) x 64 queries; cache blocking and the screening epilogue are those of the bfloat16 kernels.

Error model (:func:`error_bound`).  Let ``q̃ = s_r c_r`` and ``k̃ = s_j (h_j + l_j / 256)`` be the
dequantised rows (exact float64 values) and ``ρ_q = |q - q̃|``, ``ρ_k = |k - k̃|`` the Euclidean norms of the
residuals (summed in float64 while packing, bounded upwards).  Then

1. ``q̃ · k̃ - q · k = (q̃ - q) · k̃ + q · (k̃ - k)``, so ``|q̃ · k̃ - q · k| <= ρ_q (|k| + ρ_k) + |q| ρ_k``;
2. the integer ``I = 256 c · h + c · l = c · z`` satisfies ``|I| <= 127 · 32512 d < 2^31``
   (``d <= MAX_D``;
   each accumulator and ``256 acc_h`` too): no
   overflow; its conversion to float32 and the two float32 multiplications round by ``u = 2^-24`` each, and
   a product below ``t = 2^-126`` may be flushed (FTZ, or read as zero by the next one, DAZ), so
   ``|S - q̃ · k̃| <= γ_3 |q̃| |k̃| + t (1 + u)(1 + 2 s_r)`` with ``s_r <= |q| / 64``; scales below ``2^-118``
   are replaced by 0 (all codes 0, the residual the whole row), so ``s_k / 256`` is a normal float32.

:func:`error_bound` returns the sum, rounded upwards, with ``|q̃| <= |q| + ρ_q`` and ``|k̃| <= |k| + ρ_k``;
``inf`` where ``|q|``, ``|k|`` or ``|q| |k|`` reach ``2^126`` (float32 overflow).  The model is checked
against exact rational references in ``tests/test_attention_int8.py``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError, UnsupportedCPUError
from . import _bf16, _int8_pack

__all__ = ["I8Keys", "I8Queries", "available", "pack_keys", "pack_queries", "residual_norms", "dequantize",
           "scores", "error_bound", "screen_block", "MAX_D"]

KIND = "int8"  # (the screen's name of this GEMM)
MAX_D = 512  # widest rows: the combined integer 127 (127 * 256 + 128) d stays below 2^31
U_F32 = 2.0**-24
TINY = 2.0**-126
_NV, KBLOCK, GROUP_BYTES = _bf16._NV, _bf16.KBLOCK, _bf16.GROUP_BYTES
_I8_MR = 3  # keys per register tile (two accumulators each: 3 x 4 x 2 = 24 zmm)
_I8_SMR = 3  # the same in the screening kernel


@dataclass(frozen=True)
class I8Keys:
    """Keys packed for :func:`scores`: ``bits`` (n, 2 (2 dq + 3)) uint16 (two codes per entry, the scale, the
    corrections; see the module docstring), ``d`` the original width, ``resmax`` an upper bound on the largest
    quantisation residual ``max_j |k_j - k̃_j|`` (Euclidean), or None if not computed."""

    bits: np.ndarray
    d: int
    resmax: float | None = None

    @property
    def n(self) -> int:
        return int(self.bits.shape[0])


@dataclass(frozen=True)
class I8Queries:
    """Queries packed for :func:`scores`: ``bits`` (dq + 1, 2 m16) uint16, ``m`` queries of width ``d``, ``res``
    upper bounds on their quantisation residuals (Euclidean, float64 per query) or None."""

    bits: np.ndarray
    d: int
    m: int
    res: np.ndarray | None = None


_lock = threading.Lock()
_state: dict = {}


def _cpu_ok() -> bool:
    try:
        import llvmlite.binding as ll

        f = ll.get_host_cpu_features()
        return bool(f.get("avx512f", False) and f.get("avx512bw", False) and f.get("avx512vnni", False))
    except Exception:  # noqa: BLE001 - no llvmlite or no feature query: not available
        return False


def _compile(nt: bool = False):
    """The ctypes function of the int8 GEMM (``bf16_gemm``, the name of the shared driver; compiled once per
    process and variant), or None where not available."""
    return _bf16._cached_gemm(_state, _lock, nt, _cpu_ok, lambda nt: _bf16._build(mr=_I8_MR, nt=nt, kind="i8"))


def _compile_screen(bias: bool = False):
    """The ctypes function of the int8 screening kernel (``bias``: its variant with a bias tile, which also
    brings the bias-tile transposers ``_state["bias_tile"]``, ``_state["bias_tile_nt"]``), or None."""
    return _bf16._cached_screen(_state, _lock, bias, _compile,
                                lambda bias: _bf16._build_screen(mr=_I8_SMR, bias=bias, kind="i8"))


_screen_buffer = _bf16._screen_buffer  # (the same argument layout)


def available() -> bool:
    """Whether :func:`scores` can run here: the CPU has AVX512-F, AVX512-BW and AVX512-VNNI and the kernel
    compiled (cached; elsewhere nothing is compiled).

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    return _compile() is not None


def _nb():
    from . import _int8_numba

    return _int8_numba


def _rows64(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise ShapeError(f"{name}: expected a real float array, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ShapeError(f"{name}: expected a 2-d array, got shape {x.shape}")
    if x.shape[1] > MAX_D:
        raise ShapeError(f"{name}: the int8 kernels take at most {MAX_D} dimensions, got {x.shape[1]}")
    return x


def _finite(ok: bool, name: str) -> None:
    if not ok:
        raise ShapeError(f"{name}: the int8 quantisation needs finite entries")


def _residual_up(ss, d: int):
    """An upper bound on the norm from the float64 sum of ``d`` squared residuals ``ss`` (each residual
    rounded once, each square and addition once, the square root once)."""
    return np.sqrt(np.asarray(ss, dtype=np.float64)) * (1.0 + (d + 6) * 2.0**-52)


def pack_keys(k, *, residual: bool = True) -> I8Keys:
    """Keys ``(n, d)`` quantised and packed as the row operand of :func:`scores`.

    ``residual``: also bound the largest quantisation residual (``resmax``) for :func:`error_bound`.

    Examples
    --------
    >>> pk = pack_keys(np.array([[1.0, -2.0, 0.5]]))
    >>> pk.bits.shape, pk.d
    ((1, 10), 3)
    >>> dequantize(pk)  # 15 bits per entry: z = 16256, -32512, 8128 times the scale 2 (1 + 2^-20) / 32512
    array([[ 1.00000094, -2.00000188,  0.50000047]])
    >>> bool(0 < pk.resmax < 1e-5)
    True
    """
    k = _rows64(k, "keys")
    n, d = k.shape
    dq = (d + 3) // 4
    buf = _bf16._aligned_empty((n, 8 * dq + 12), np.uint8)
    res = np.empty(n)
    _finite(_pack(k, np.empty(n), buf, res), "keys")  # (validation's pass: its norms unused here)
    resmax = float(_residual_up(res.max(initial=0.0), d)) if residual else None
    return I8Keys(buf.view(np.uint16), d, resmax)


def _pack(k, norms, buf, res):
    """Validation's pass over the C-contiguous float64 keys ``k`` into the packed rows ``buf``, ``norms`` and
    ``res``: the compiled packer, or where it does not compile the numba loop (the same codes); whether every
    entry is finite."""
    ok = _int8_pack.rownorms_pack(k, norms, buf, res)
    if ok is None:
        ok = _nb().rownorms_pack(k, norms, k.view(np.uint64), buf.view(np.int8), buf.view(np.int32),
                                 buf.view(np.float32), res)
    return bool(ok)


def _packed_keys(k, norms):
    """Validation's pass over the C-contiguous float64 keys ``k`` (n, d), ``d <= MAX_D``, with the packing on
    the way (:func:`tropix.attention._int8_pack.rownorms_pack`, compiled from LLVM IR; where it does not
    compile, :func:`tropix.attention._int8_numba.rownorms_pack`, the same codes): ``(finite, I8Keys with
    resmax)``; the row norms go to ``norms``."""
    n, d = k.shape
    dq = (d + 3) // 4
    buf = _bf16._aligned_empty((n, 8 * dq + 12), np.uint8)
    res = np.empty(n)
    ok = _pack(k, norms, buf, res)
    return ok, I8Keys(buf.view(np.uint16), d, float(_residual_up(res.max(initial=0.0), d)) if ok else None)


def pack_queries(q, *, residual: bool = False) -> I8Queries:
    """Queries ``q`` (m, d) quantised and packed as the lane operand of :func:`scores`.

    ``residual``: also bound each query's quantisation residual (``res``) for :func:`error_bound`.

    Examples
    --------
    >>> pq = pack_queries(np.array([[1.0, -2.0, 0.5]]))
    >>> pq.bits.shape, pq.m
    ((2, 32), 1)
    >>> dequantize(pq)  # codes 63, -127, 32 (1.0 / scale = 63.49997 rounds down)
    array([[ 0.99212692, -2.00000188,  0.50393748]])
    """
    q = _rows64(q, "queries")
    m, d = q.shape
    dq = (d + 3) // 4
    m16 = max(16, (m + 15) // 16 * 16)
    buf = _bf16._aligned_empty((dq + 1, 4 * m16), np.uint8)
    res = np.empty(m if residual else 0)
    _finite(_nb().pack_lanes(q, q.view(np.uint64), buf[:dq], buf[dq].view(np.float32), res), "queries")
    return I8Queries(buf.view(np.uint16), d, m, _residual_up(res, d) if residual else None)


def residual_norms(x) -> np.ndarray:
    """Upper bounds on the quantisation residuals ``|x_r - s_r c_r|`` (Euclidean) of the rows of ``x`` (m, d),
    as :func:`pack_queries` and :func:`pack_keys` quantise them.

    Examples
    --------
    >>> r = residual_norms(np.array([[127.0, 1.0], [3.0, 0.0]]))
    >>> bool(r[0] < 1e-3), bool(r[1] < 1e-5)  # scales just above 1 and 3 / 127: codes 127, 1 and 127, 0
    (True, True)
    """
    return pack_queries(x, residual=True).res  # (the packing itself: the same codes and sums by construction)


def dequantize(packed) -> np.ndarray:
    """The float64 values ``s c`` that packed keys (:class:`I8Keys`) or queries (:class:`I8Queries`) stand for,
    ``(n, d)`` or ``(m, d)`` (exact: every ``s c`` is a float64)."""
    if isinstance(packed, I8Keys):
        b = packed.bits.view(np.uint8)
        dq = (b.shape[1] // 4 - 3) // 2
        c = b.view(np.int8)
        codes = 256.0 * c[:, :packed.d] + c[:, 4 * dq:4 * dq + packed.d]
        return codes * b.view(np.float32)[:, 2 * dq].astype(np.float64)[:, None]
    if isinstance(packed, I8Queries):
        b = packed.bits.view(np.uint8)
        dq = b.shape[0] - 1
        m = packed.m
        codes = b[:dq].reshape(dq, -1, 4)[:, :m].transpose(1, 0, 2).reshape(m, 4 * dq)[:, :packed.d]
        return (codes.astype(np.float64) - 128.0) * b[dq].view(np.float32)[:m].astype(np.float64)[:, None]
    raise ShapeError("dequantize: expected I8Keys or I8Queries")


def key_rows(pk: I8Keys, b0: int, b1: int) -> I8Keys:
    """The keys ``b0 .. b1-1`` of ``pk`` (a view)."""
    return I8Keys(pk.bits[b0:b1], pk.d, pk.resmax)


def _check_packed(pk, pq) -> None:
    if not isinstance(pk, I8Keys) or not isinstance(pq, I8Queries):
        raise ShapeError("int8 scores: expected I8Keys and I8Queries (pack_keys, pack_queries)")
    if pk.d != pq.d:
        raise ShapeError(f"int8 scores: keys have {pk.d} dimensions, queries {pq.d}")
    dq = (pk.d + 3) // 4
    m16 = (pq.m + 15) // 16 * 16
    if not (pk.bits.dtype == np.uint16 and pk.bits.ndim == 2 and pk.bits.shape[1] == 2 * (2 * dq + 3)
            and pq.bits.dtype == np.uint16 and pq.bits.ndim == 2 and pq.bits.shape[0] == dq + 1
            and pq.bits.shape[1] >= 2 * m16 and pq.bits.shape[1] % 32 == 0):
        raise ShapeError(f"int8 scores: packed operands do not have the layout of pack_keys / pack_queries "
                         f"for d = {pk.d}")


def scores(kb, qb, out=None, *, kblock: int = KBLOCK, stream: bool = True) -> np.ndarray:
    """int8 screening scores ``S[j, r] = fl32(fl32(float(c_j · c_r) s_j) s_r)`` (see the module docstring).

    Parameters
    ----------
    kb : I8Keys or (n, d) float array
        Keys (quantised by :func:`pack_keys` unless already packed).
    qb : I8Queries or (m, d) float array
        Queries (quantised by :func:`pack_queries` unless already packed).
    out : (n, m) float32 array, optional
        Output with unit column stride (64-byte aligned rows, as from ``_bf16.empty_scores``, for speed).
    kblock : int
        Keys per cache block of the kernel (tuning only).
    stream : bool
        Non-temporal stores where ``out`` allows them (as :func:`tropix.attention._bf16.scores`).

    Returns
    -------
    (n, m) float32 array
        The scores, within :func:`error_bound` of the exact ``k · q``.

    Examples
    --------
    >>> k = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.25]])
    >>> q = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, -4.0]])
    >>> if available():
    ...     S = scores(k, q)
    ... else:  # what the kernel computes, for the docs on other CPUs
    ...     S = (dequantize(pack_keys(k)) @ dequantize(pack_queries(q)).T).astype(np.float32)
    >>> bool(np.abs(S - k @ q.T).max() < 0.05)
    True
    """
    fn = _compile()
    if fn is None:
        raise UnsupportedCPUError("int8 scores need a CPU with AVX512-F, AVX512-BW and AVX512-VNNI "
                                  "(and llvmlite); check available() first")
    if kblock < 1:
        raise ShapeError(f"scores: kblock must be positive, got {kblock}")
    pk = kb if isinstance(kb, I8Keys) else pack_keys(kb, residual=False)
    pq = qb if isinstance(qb, I8Queries) else pack_queries(qb)
    _check_packed(pk, pq)
    n, m = pk.n, pq.m
    out = _bf16._scores_out(out, n, m)
    if n == 0 or m == 0:
        return out
    if pk.d == 0:
        out[...] = 0
        return out
    if stream and _bf16._streams(out):
        fn = _compile(nt=True) or fn
    kbits, qbits = np.ascontiguousarray(pk.bits), np.ascontiguousarray(pq.bits)
    dp = kbits.shape[1] // 2
    w = 16 * _NV
    gw = max(w, GROUP_BYTES // (4 * dp) // w * w)
    ldc = out.strides[0] if n > 1 else 64 * ((m + 15) // 16)
    fn(kbits.ctypes.data, n, kbits.strides[0], qbits.ctypes.data, m, qbits.strides[0], dp,
       out.ctypes.data, ldc, int(kblock), int(gw), None, 0, 0, 0)
    return out


def error_bound(qnorm, qres, knorm, kres, d: int):
    """Rigorous bound on ``|S[j, r] - k_j · q_r|`` (``S`` from :func:`scores`, ``k, q`` the original floats).

    Parameters
    ----------
    qnorm, knorm : array_like
        Euclidean norms ``|q_r|``, ``|k_j|`` (or upper bounds of them).
    qres, kres : array_like
        Upper bounds on the quantisation residuals (:attr:`I8Queries.res`, :attr:`I8Keys.resmax`,
        :func:`residual_norms`); all four broadcast against each other.
    d : int
        Number of dimensions (at most :data:`MAX_D`).

    Returns
    -------
    float64 array
        The bound of the module docstring, rounded upwards; ``inf`` where ``|q|``, ``|k|`` or ``|q| |k|``
        reach ``2^126``.

    Examples
    --------
    >>> q, k = np.array([[0.3, -1.2, 2.0, 0.7]]), np.array([[1.1, 0.4, -0.9, 2.2]])
    >>> pq, pk = pack_queries(q, residual=True), pack_keys(k)
    >>> e = error_bound(np.linalg.norm(q), pq.res, np.linalg.norm(k), pk.resmax, 4)
    >>> S = dequantize(pk) @ dequantize(pq).T  # the kernel's value up to two float32 roundings
    >>> bool(abs(S[0, 0] - (k @ q.T)[0, 0]) <= e[0])
    True
    """
    if d > MAX_D:
        raise ShapeError(f"error_bound: the int8 kernels take at most {MAX_D} dimensions, got {d}")
    qn, qr, kn, kr = (np.asarray(x, dtype=np.float64) for x in (qnorm, qres, knorm, kres))
    g3 = 3 * U_F32 / (1 - 3 * U_F32)
    qt, kt = qn + qr, kn + kr
    with np.errstate(over="ignore", invalid="ignore"):
        b = qr * kt + qn * kr + g3 * qt * kt + TINY * (1 + U_F32) * (1 + qn / 32)
        b = b * (1 + 2.0**-40)
        ok = (qn < 2.0**126) & (kn < 2.0**126) & (qt * kt < 2.0**126)
    return np.where(ok, b, np.inf)


def screen_block(kb, qb, mref, thr, acc, bmax, hit_key, hit_query, hit_val, *, joff: int = 0,
                 kblock: int = KBLOCK, bias=None) -> int:
    """:func:`tropix.attention._bf16.screen_block` on the int8 scores of :func:`scores`: the same fused
    screen (block maxima, hits ``s >= thr``, exponent-bit weights of the others, an optional bias tile), the
    same arguments and return value, with ``kb`` / ``qb`` packed by :func:`pack_keys` / :func:`pack_queries`.

    Examples
    --------
    >>> k = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.5]])
    >>> q = np.array([[1.0, 1.0], [2.0, 0.0]])
    >>> mref = np.array([3.0, 4.0], dtype=np.float32)
    >>> thr = np.array([2.5, 4.0], dtype=np.float32)
    >>> acc, bmax = np.zeros(2, np.float32), np.full(2, -np.inf, np.float32)
    >>> hk, hq, hv = np.empty(8, np.int32), np.empty(8, np.int32), np.empty(8, np.float32)
    >>> if available():
    ...     c = screen_block(pack_keys(k), pack_queries(q), mref, thr, acc, bmax, hk, hq, hv)
    ...     hits = sorted(zip(hk[:c].tolist(), hq[:c].tolist()))
    ... else:  # what the kernel gives, for the docs on other CPUs
    ...     hits = [(0, 0), (1, 1)]
    >>> hits  # S is about [[3, 2], [2, 6], [0.5, 0]]: the scores >= thr
    [(0, 0), (1, 1)]
    """
    fn = _compile_screen(bias is not None)
    if fn is None:
        raise UnsupportedCPUError("int8 screening needs a CPU with AVX512-F, AVX512-BW and AVX512-VNNI "
                                  "(and llvmlite); check available() first")
    pk = kb if isinstance(kb, I8Keys) else pack_keys(kb, residual=False)
    pq = qb if isinstance(qb, I8Queries) else pack_queries(qb)
    _check_packed(pk, pq)
    if pk.d == 0:  # every score 0: the NumPy path of the bfloat16 screen, on operands of width 0
        pk = _bf16.BF16Keys(np.zeros((pk.n, 0), np.uint16), 0)
        pq = _bf16.BF16Queries(np.zeros((0, pq.bits.shape[1]), np.uint16), 0, pq.m)
    return _bf16._screen_call(fn, pk, pq, mref, thr, acc, bmax, hit_key, hit_query, hit_val, joff, kblock,
                              bias=bias, packed=True)

