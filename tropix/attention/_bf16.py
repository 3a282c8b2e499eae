r"""bfloat16 screening scores: a VDPBF16PS (AVX512-BF16) GEMM with a rigorous error bound.

:func:`scores` computes ``S[j, r] = Σ_l bf16(k[j, l]) · bf16(q[r, l])`` (keys x queries, float32, C order),
the product that :mod:`tropix.attention.screen` otherwise does with an OpenBLAS ``sgemm``.  Its kernel is
LLVM IR written here, compiled by ``llvmlite`` for the host CPU on first use and called through ``ctypes``
(no C compiler, no torch).  It runs only where :func:`available` is true (the CPU reports ``avx512f`` and
``avx512bf16``); elsewhere nothing is compiled and :func:`scores` raises :class:`UnsupportedCPUError`.

Layout.  The keys are the *row* operand, ``(n, 2 dp)`` bf16 bits (``dp = ceil(d / 2)``, an odd ``d`` padded
with one zero): the 32-bit word ``p`` of key ``j`` holds dimensions ``2p, 2p + 1`` and is broadcast to all
lanes.  The queries are the *lane* operand, ``(dp, 2 m16)`` bits: word ``[p, r]`` holds dimensions
``2p, 2p + 1`` of query ``r`` (``m16`` = queries rounded up to 16, zeros).  One VDPBF16PS adds to 16
float32 accumulators (16 queries of one key) the two products of a dimension pair.  A register tile holds
``_MR`` = 6 keys x 64 queries (24 zmm accumulators); keys stream in blocks of ``kblock`` (L2), queries in
groups of 32 KB of packed bits (L1); the last vector of a panel is stored under a mask, the others, when
the output is 64-byte aligned row by row (:func:`empty_scores`), with non-temporal stores: at d = 32 the
16 MB of scores of 16384 x 256 cost as much memory traffic as the arithmetic takes time, and streaming
stores skip reading each output line before writing it.  Float keys given to
:func:`scores` are rounded block by block inside the kernel (no separate pass): float64 is truncated to
float32 and its last bit set when inexact (rounding *to odd*), then rounded to nearest-even bfloat16 by
VCVTNEPS2BF16, which gives the correctly rounded value; that instruction reads ``|x| < 2^-126`` as zero,
which VDPBF16PS does for subnormal bfloat16 anyway (only values just below ``2^-126``, which round up to
it, differ from :func:`pack_keys`; both are covered by the ``t`` term below).  Queries are packed by numba
code (:func:`pack_queries`), as are keys by :func:`pack_keys` when they are reused across calls.

Speed (``benchmarks/bench_bf16.py``, one thread, 16384 keys x 256 queries, EPYC znver4, medians): from
float64 keys and queries, rounding and packing included, 2.1x faster than the float32 ``sgemm`` (1.65 vs
3.43 ms at d = 32, 3.02 vs 6.27 ms at d = 64); prepacked, 2.5x (the hardware peak is one VDPBF16PS per
cycle: 2.3 ms at d = 64).  Without streaming stores 1.6x / 1.8x.  With a pass over the scores after it
(as the screen's scan), 1.7x / 1.8x.  The speed depends on the CPU: on an Intel Xeon of the Emerald Rapids
generation (November 2026) VDPBF16PS issues once every two cycles, a quarter of the rate of VFMADD231PS
(measured: 1.35 against 5.5 G instructions/s, 12 independent chains), so a bfloat16 product of 32 pairs
costs what four float32 FMAs of 16 cost, and the kernel runs at 0.8-0.9x the float32 ``sgemm`` (prepacked:
6.2 vs 5.0 ms at d = 64, 3.1 vs 2.9 ms at d = 32; torch's oneDNN bfloat16 GEMM likewise 0.74x).  There the
screen with ``precision="float32"`` costs about as much (within 7 %).

Fused screening (:func:`screen_block`).  The same tiles, each followed while its scores are still in
registers by the screen's scan: the block maximum per query, the hits ``s >= thr`` (compressed in registers
and written as ``(key, query, score)``) and, for every other key, an exponent-bit upper bound of
``exp(s - mref)`` summed per query; the scores are never stored.  Its register tile is 5 keys x 64 queries
(the epilogue needs registers too).  Speed (``benchmarks/bench_bf16.py``, 16384 keys x 256 queries,
prepacked, about 3.3 hits per key, best of 15): 1.85 ms at d = 32 and 3.05 ms at d = 64, against 1.28 / 2.38
ms for :func:`scores` alone and 5.01 / 6.14 ms for :func:`scores` + ``_screen_numba.scan_block`` per block of
1024 keys; without hits 1.44 / 2.61 ms.  Per vector of 16 scores the epilogue is one FMA (the weight) and one
compare (the hits); the score vectors go to fixed stack slots, and the compress-and-store loop visits only
the 64-bit words of hit masks that have a hit.

Error model (:func:`error_bound`).  Let ``u_b = 2^-8`` (bfloat16 has an 8-bit significand, rounding to
nearest), ``u = 2^-24`` (float32), ``t = 2^-126`` (smallest normal float32 / bfloat16) and
``γ_n = n u / (1 - n u)``.  For float64 (or float32) ``k, q`` with ``d`` dimensions, ``d' = 2 dp``:

1. rounding: :func:`to_bf16` rounds once, to nearest with ties to even (float64 input is *not* rounded through
   float32, which would round twice).  A value that rounds to a normal bf16 has ``|k̂ - k| <= u_b |k|``.
   VDPBF16PS treats subnormal inputs as zero (DAZ), the in-kernel rounding of float keys flushes
   ``|k| < t`` to zero, and a value that rounds to a subnormal has ``|k| < t``, so in all cases ``|k̂ - k| <= u_b |k| + t`` and ``|k̂| <= (1 + u_b) |k|``;
2. products: ``k̂_l q̂_l`` of two 8-bit significands is exact in float32 (16 bits) unless it underflows;
3. accumulation: VDPBF16PS is, per lane, two fused multiply-adds into the float32 accumulator, rounded to
   nearest-even, with subnormal results flushed to zero (FTZ) whatever MXCSR says.  Each of the ``d'``
   operations returns ``(a + b)(1 + δ) + η`` with ``|δ| <= u`` and ``|η| < t`` (a flushed result had
   ``|a + b| < t``).  Counting a separately rounded product as well (if an implementation does so), the sum
   of ``d'`` terms in any order differs from ``Σ k̂_l q̂_l`` by at most
   ``γ_d' Σ |k̂_l q̂_l| + 2 d' t (1 + γ_d')``.

Together, with ``Σ_l |k_l q_l| <= |k|_2 |q|_2`` and ``|k|_1 <= √d |k|_2``::

    |S[j, r] - k_j · q_r| <= (2 u_b + u_b² + γ_d' (1 + u_b)²) |k_j| |q_r|
                             + t √d ((1 + u_b) |q_r| + |k_j|) + 2 d' t (1 + γ_d')

which :func:`error_bound` evaluates (rounded upwards).  :func:`error_bound_residual` replaces the input
roundings' share ``(2 u_b + u_b²) |k_j| |q_r|`` by one from the actual rounding errors of the operands
(:func:`residual_norms`, ``pack_keys(k, residual=True)``), about half as large on random data.  For d = 64 the relative coefficient is
``7.83e-3`` (2^-7 of it from the two input roundings alone).  Valid range: the bound assumes no overflow,
which holds when ``|k|_2, |q|_2 < 2^126`` and ``|k|_2 |q|_2 (1 + u_b)² (1 + γ_d') < 2^126``;
:func:`error_bound` returns ``inf`` outside it.  NaN and infinite inputs propagate as in any GEMM.  The model
is checked empirically in ``tests/test_attention_bf16.py`` (random, cancelling, tiny and subnormal, huge near
float32 overflow, zero inputs) against exact rational references.
"""

from __future__ import annotations

import ctypes
import math
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import ShapeError, UnsupportedCPUError

__all__ = [
    "UnsupportedCPUError",
    "BF16Keys",
    "BF16Queries",
    "available",
    "to_bf16",
    "from_bf16",
    "pack_keys",
    "pack_queries",
    "scores",
    "empty_scores",
    "error_bound",
    "error_bound_residual",
    "residual_norms",
    "screen_block",
]

KIND = "bf16"  # (the screen's name of this GEMM)
U_BF16 = 2.0**-8  # unit roundoff of bfloat16
U_F32 = 2.0**-24  # unit roundoff of float32 (the accumulator)
TINY = 2.0**-126  # smallest normal: DAZ/FTZ thresholds of VDPBF16PS
_MR = 6  # keys per register tile
_NV = 4  # 16-query vectors per register tile
_UNROLL = 2  # unroll of the loop over dimension pairs
KBLOCK = 4096  # keys per cache block
GROUP_BYTES = 32768  # packed queries per group of panels (L1-resident)


@dataclass(frozen=True)
class BF16Keys:
    """Keys packed for :func:`scores`: ``bits`` (n, 2 dp) uint16 bfloat16 bits, ``d`` the original width;
    ``resmax`` an upper bound on the largest rounding error ``max_j |k_j - bf16(k_j)|`` (Euclidean, over the
    entries in bfloat16's normal range) when packed with ``pack_keys(k, residual=True)``, else None."""

    bits: np.ndarray
    d: int
    resmax: float | None = None

    @property
    def n(self) -> int:
        return int(self.bits.shape[0])


@dataclass(frozen=True)
class BF16Queries:
    """Queries packed for :func:`scores`: ``bits`` (dp, 2 m16) uint16, ``m`` queries of width ``d``."""

    bits: np.ndarray
    d: int
    m: int


# --------------------------------------------------------------------------------------------- the kernel IR

def _dot_loop_ir(a, mr: int, nv: int, exit_label: str, kind: str = "bf16") -> None:
    """Append (through ``a``) the dot-product loop of a register tile: ``%n{m}_{v}`` (16 floats) =
    key ``m`` (rows ``%K + m ldk``, one 32-bit word broadcast per step) times query vector ``v`` (``%Q``,
    ``64 v`` bytes into each packed row of ``ldq``); then a branch to ``exit_label``.

    ``kind="bf16"``: ``%dp`` steps of VDPBF16PS (a word holds a dimension pair).  ``kind="i8"`` (the int8
    kernels of :mod:`tropix.attention._int8`): ``dq = (%dp - 3) / 2`` steps of two VPDPBUSD per key and
    vector (a word holds four dimensions: signed bytes of the key, unsigned bytes of the queries): a key row
    holds ``dq`` words of its high codes, ``dq`` of its low codes, its float32 scale and the int32 offset
    corrections of both, which start its two int32 accumulators; the query row after the last step holds the
    queries' float32 scales: ``%n = fl32(fl32(float(256 acc_hi + acc_lo) * scale_k) * scale_q)``."""
    i8 = kind == "i8"
    for m in range(mr):
        a(f"  %ko{m} = mul i64 %ldk, {m}")
        a(f"  %kr{m} = getelementptr i8, ptr %K, i64 %ko{m}")
    steps = "%dp"
    if i8:
        steps = "%dq"
        a("  %dq3 = sub i64 %dp, 3")
        a("  %dq = lshr i64 %dq3, 1")
        a("  %klo = shl i64 %dq, 2")  # the low codes, dq words on
        a("  %kso = shl i64 %dq, 3")  # the scale, after both
        for m in range(mr):
            a(f"  %krl{m} = getelementptr i8, ptr %kr{m}, i64 %klo")
            a(f"  %ksa{m} = getelementptr i8, ptr %kr{m}, i64 %kso")
            a(f"  %ksf{m} = load float, ptr %ksa{m}, align 4")
            for h, off in (("h", 4), ("l", 8)):
                a(f"  %kca{h}{m} = getelementptr i8, ptr %ksa{m}, i64 {off}")
                a(f"  %kci{h}{m} = load i32, ptr %kca{h}{m}, align 4")
                a(f"  %kcv{h}{m} = insertelement <16 x i32> poison, i32 %kci{h}{m}, i64 0")
                a(f"  %kcb{h}{m} = shufflevector <16 x i32> %kcv{h}{m}, <16 x i32> poison, "
                  "<16 x i32> zeroinitializer")
    a("  br label %loop")
    a("loop:")
    a("  %p = phi i64 [ 0, %entry ], [ %pn, %loop ]")
    a("  %qp = phi ptr [ %Q, %entry ], [ %qpn, %loop ]")
    for m in range(mr):
        for v in range(nv):
            if i8:
                a(f"  %c{m}_{v} = phi <16 x i32> [ %kcbh{m}, %entry ], [ %ni{m}_{v}, %loop ]")
                a(f"  %e{m}_{v} = phi <16 x i32> [ %kcbl{m}, %entry ], [ %nl{m}_{v}, %loop ]")
            else:
                a(f"  %c{m}_{v} = phi <16 x float> [ zeroinitializer, %entry ], [ %n{m}_{v}, %loop ]")
    for v in range(nv):
        a(f"  %qa{v} = getelementptr i8, ptr %qp, i64 {64 * v}")
        a(f"  %q{v} = load {'<64 x i8>' if i8 else '<32 x bfloat>'}, ptr %qa{v}, align 4")
    a("  %kb = shl i64 %p, 2")
    for m in range(mr):
        a(f"  %ka{m} = getelementptr i8, ptr %kr{m}, i64 %kb")
        a(f"  %ks{m} = load i32, ptr %ka{m}, align 4")
        a(f"  %ki{m} = insertelement <16 x i32> poison, i32 %ks{m}, i64 0")
        a(f"  %kt{m} = shufflevector <16 x i32> %ki{m}, <16 x i32> poison, <16 x i32> zeroinitializer")
        if i8:
            a(f"  %k{m} = bitcast <16 x i32> %kt{m} to <64 x i8>")
            a(f"  %kla{m} = getelementptr i8, ptr %krl{m}, i64 %kb")
            a(f"  %kls{m} = load i32, ptr %kla{m}, align 4")
            a(f"  %kli{m} = insertelement <16 x i32> poison, i32 %kls{m}, i64 0")
            a(f"  %klt{m} = shufflevector <16 x i32> %kli{m}, <16 x i32> poison, <16 x i32> zeroinitializer")
            a(f"  %kl{m} = bitcast <16 x i32> %klt{m} to <64 x i8>")
        else:
            a(f"  %k{m} = bitcast <16 x i32> %kt{m} to <32 x bfloat>")
        for v in range(nv):
            if i8:  # (the unsigned operand first, then the signed one)
                a(f"  %ni{m}_{v} = call <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32> %c{m}_{v}, "
                  f"<64 x i8> %q{v}, <64 x i8> %k{m})")
                a(f"  %nl{m}_{v} = call <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32> %e{m}_{v}, "
                  f"<64 x i8> %q{v}, <64 x i8> %kl{m})")
            else:
                a(f"  %n{m}_{v} = call <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float> %c{m}_{v}, "
                  f"<32 x bfloat> %k{m}, <32 x bfloat> %q{v})")
    a("  %qpn = getelementptr i8, ptr %qp, i64 %ldq")
    a("  %pn = add nuw nsw i64 %p, 1")
    a(f"  %more = icmp ult i64 %pn, {steps}")
    if not i8:
        a(f"  br i1 %more, label %loop, label %{exit_label}, !llvm.loop !0")
        return
    a("  br i1 %more, label %loop, label %scale, !llvm.loop !0")
    a("scale:")  # %qpn is now the row of the query scales
    for v in range(nv):
        a(f"  %qsa{v} = getelementptr i8, ptr %qpn, i64 {64 * v}")
        a(f"  %qs{v} = load <16 x float>, ptr %qsa{v}, align 4")
    for m in range(mr):
        a(f"  %ksv{m} = insertelement <16 x float> poison, float %ksf{m}, i64 0")
        a(f"  %ksb{m} = shufflevector <16 x float> %ksv{m}, <16 x float> poison, <16 x i32> zeroinitializer")
        for v in range(nv):
            a(f"  %nsh{m}_{v} = shl <16 x i32> %ni{m}_{v}, {_splat('i32', '8')}")
            a(f"  %ns{m}_{v} = add <16 x i32> %nsh{m}_{v}, %nl{m}_{v}")
            a(f"  %nf{m}_{v} = sitofp <16 x i32> %ns{m}_{v} to <16 x float>")
            a(f"  %nk{m}_{v} = fmul <16 x float> %nf{m}_{v}, %ksb{m}")
            a(f"  %n{m}_{v} = fmul <16 x float> %nk{m}_{v}, %qs{v}")
    a(f"  br label %{exit_label}")


_DOT_DECL = {
    "bf16": "declare <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float>, <32 x bfloat>, <32 x bfloat>)",
    "i8": "declare <16 x i32> @llvm.x86.avx512.vpdpbusd.512(<16 x i32>, <64 x i8>, <64 x i8>)"}


def _tile_ir(mr: int, nv: int, nt: bool = False, kind: str = "bf16") -> str:
    """One register tile: C[0:mr, 0:16 nv] = K[0:mr] · Q-panel, the last vector stored under ``mask``.

    ``nt``: the full vectors are stored non-temporally (VMOVNTPS, no read-for-ownership of the output lines);
    the caller guarantees 64-byte aligned rows."""
    L = [f"define internal void @tile_{mr}_{nv}(ptr %K, i64 %ldk, ptr %Q, i64 %ldq, ptr %C, i64 %ldc, "
         "i64 %dp, i16 %mask) #0 {", "entry:"]
    a = L.append
    _dot_loop_ir(a, mr, nv, "done", kind)
    a("done:")
    a("  %mk = bitcast i16 %mask to <16 x i1>")
    last = nv - 1
    for m in range(mr):
        a(f"  %co{m} = mul i64 %ldc, {m}")
        a(f"  %cr{m} = getelementptr i8, ptr %C, i64 %co{m}")
        for v in range(nv):
            a(f"  %ca{m}_{v} = getelementptr i8, ptr %cr{m}, i64 {64 * v}")
            if v < last:
                a(f"  store <16 x float> %n{m}_{v}, ptr %ca{m}_{v}, "
                  + ("align 64, !nontemporal !2" if nt else "align 4"))
    if nt:  # the last vector: streamed too when it is whole
        a("  %whole = icmp eq i16 %mask, -1")
        a("  br i1 %whole, label %sw, label %sm")
        a("sw:")
        for m in range(mr):
            a(f"  store <16 x float> %n{m}_{last}, ptr %ca{m}_{last}, align 64, !nontemporal !2")
        a("  ret void")
        a("sm:")
    for m in range(mr):
        a(f"  call void @llvm.masked.store.v16f32.p0(<16 x float> %n{m}_{last}, ptr align 4 %ca{m}_{last}, "
          "<16 x i1> %mk)")
    a("  ret void")
    a("}")
    return "\n".join(L)


def _panel_head_ir(a, tag: str, w: int, after: str) -> None:
    """Append (through ``a``) the head of the loop over the query panels of a group: ``%{tag}r0`` from ``%g0``
    to ``%gend`` in steps of ``w`` (to ``after`` when done), the panel's ``%{tag}nvec`` vectors, the lane
    ``%{tag}mask`` of its last one (1..16 queries) and its byte offset ``%{tag}roff``."""
    a(f"  br label %{tag}rh")
    a(f"{tag}rh:")
    a(f"  %{tag}r0 = phi i64 [ %g0, %{tag}pre ], [ %{tag}r0n, %{tag}rl ]")
    a(f"  %{tag}rc = icmp slt i64 %{tag}r0, %gend")
    a(f"  br i1 %{tag}rc, label %{tag}rb, label %{after}")
    a(f"{tag}rb:")
    a(f"  %{tag}rrem = sub i64 %gend, %{tag}r0")
    a(f"  %{tag}rsmall = icmp slt i64 %{tag}rrem, {w}")
    a(f"  %{tag}nr = select i1 %{tag}rsmall, i64 %{tag}rrem, i64 {w}")
    a(f"  %{tag}nr15 = add i64 %{tag}nr, 15")
    a(f"  %{tag}nvec = lshr i64 %{tag}nr15, 4")
    a(f"  %{tag}full = shl i64 %{tag}nvec, 4")
    a(f"  %{tag}last0 = sub i64 %{tag}nr, %{tag}full")
    a(f"  %{tag}last = add i64 %{tag}last0, 16")
    a(f"  %{tag}m1 = shl i64 1, %{tag}last")
    a(f"  %{tag}m2 = sub i64 %{tag}m1, 1")
    a(f"  %{tag}mask = trunc i64 %{tag}m2 to i16")
    a(f"  %{tag}roff = shl i64 %{tag}r0, 2")


def _panels_ir(tag: str, mr: int, nv: int, jvar: str, after: str) -> list:
    """Blocks ``{tag}*``: for every panel of ``16 nv`` queries from ``%g0`` to ``%gend``, one ``tile_{mr}_*``
    call at key row ``jvar``; then a branch to ``after``."""
    w = 16 * nv
    L = []
    a = L.append
    a(f"{tag}pre:")
    a(f"  %{tag}jk = mul i64 {jvar}, %ldk")
    a(f"  %{tag}K = getelementptr i8, ptr %Kb, i64 %{tag}jk")
    a(f"  %{tag}jc = mul i64 {jvar}, %ldc")
    a(f"  %{tag}C = getelementptr i8, ptr %C, i64 %{tag}jc")
    _panel_head_ir(a, tag, w, after)
    a(f"  %{tag}Q = getelementptr i8, ptr %Q, i64 %{tag}roff")
    a(f"  %{tag}Cr = getelementptr i8, ptr %{tag}C, i64 %{tag}roff")
    cases = " ".join(f"i64 {v}, label %{tag}v{v}" for v in range(1, nv))
    a(f"  switch i64 %{tag}nvec, label %{tag}v{nv} [ {cases} ]")
    for v in range(1, nv + 1):
        a(f"{tag}v{v}:")
        a(f"  call void @tile_{mr}_{v}(ptr %{tag}K, i64 %ldk, ptr %{tag}Q, i64 %ldq, ptr %{tag}Cr, i64 %ldc, "
          f"i64 %dp, i16 %{tag}mask)")
        a(f"  br label %{tag}rl")
    a(f"{tag}rl:")
    a(f"  %{tag}r0n = add i64 %{tag}r0, {w}")
    a(f"  br label %{tag}rh")
    return L


def _chunk_ir(tag: str, masked: bool) -> str:
    """16 keys' entries at column ``%l`` of the row ``%xr`` converted to bf16 bits at ``%op`` (then ``ll``)."""
    if masked:
        ld64 = (f"call <16 x double> @llvm.masked.load.v16f64.p0(ptr align 8 %{tag}xp, <16 x i1> %ml, "
                "<16 x double> zeroinitializer)")
        ld32 = (f"call <16 x float> @llvm.masked.load.v16f32.p0(ptr align 4 %{tag}xq, <16 x i1> %ml, "
                "<16 x float> zeroinitializer)")
        st = f"call void @llvm.masked.store.v16i16.p0(<16 x i16> %{tag}hi, ptr align 2 %op, <16 x i1> %ms)"
    else:
        ld64 = f"load <16 x double>, ptr %{tag}xp, align 8"
        ld32 = f"load <16 x float>, ptr %{tag}xq, align 4"
        st = f"store <16 x i16> %{tag}hi, ptr %op, align 2"
    lo = "<" + ", ".join(f"i32 {i}" for i in range(8)) + ">"
    hi = "<" + ", ".join(f"i32 {i}" for i in range(8, 16)) + ">"
    cat = "<" + ", ".join(f"i32 {i}" for i in range(16)) + ">"
    rz = "<8 x float> zeroinitializer, i8 -1, i32 11)"  # no mask, rounding towards zero {rz-sae}
    return f"""{tag}:
  br i1 %is64, label %{tag}f64, label %{tag}f32
{tag}f64:
  %{tag}x8 = shl i64 %l, 3
  %{tag}xp = getelementptr i8, ptr %xr, i64 %{tag}x8
  %{tag}x = {ld64}
  %{tag}xa = shufflevector <16 x double> %{tag}x, <16 x double> poison, <8 x i32> {lo}
  %{tag}xb = shufflevector <16 x double> %{tag}x, <16 x double> poison, <8 x i32> {hi}
  %{tag}fa = call <8 x float> @llvm.x86.avx512.mask.cvtpd2ps.512(<8 x double> %{tag}xa, {rz}
  %{tag}fb = call <8 x float> @llvm.x86.avx512.mask.cvtpd2ps.512(<8 x double> %{tag}xb, {rz}
  %{tag}f = shufflevector <8 x float> %{tag}fa, <8 x float> %{tag}fb, <16 x i32> {cat}
  %{tag}g = fpext <16 x float> %{tag}f to <16 x double>
  %{tag}inex = fcmp one <16 x double> %{tag}x, %{tag}g
  %{tag}fi = bitcast <16 x float> %{tag}f to <16 x i32>
  %{tag}iz = zext <16 x i1> %{tag}inex to <16 x i32>
  %{tag}odd = or <16 x i32> %{tag}fi, %{tag}iz
  %{tag}y64 = bitcast <16 x i32> %{tag}odd to <16 x float>
  br label %{tag}cv
{tag}f32:
  %{tag}x4 = shl i64 %l, 2
  %{tag}xq = getelementptr i8, ptr %xr, i64 %{tag}x4
  %{tag}y32 = {ld32}
  br label %{tag}cv
{tag}cv:
  %{tag}y = phi <16 x float> [ %{tag}y64, %{tag}f64 ], [ %{tag}y32, %{tag}f32 ]
  %{tag}h = call <16 x bfloat> @llvm.x86.avx512bf16.cvtneps2bf16.512(<16 x float> %{tag}y)
  %{tag}hi = bitcast <16 x bfloat> %{tag}h to <16 x i16>
  {st}
  br label %ll
"""


def _convert_ir() -> str:
    """``conv_rows(X, ldx, kind, rows, d, dw, O, ldo)``: rows of float64 (``kind`` 1) or float32 (0) keys to
    bf16 bits, ``dw >= d`` columns (zero padded), 16 at a time.

    float64 is first rounded to float32 *to odd* (truncated towards zero by VCVTPD2PS {rz-sae}, then the last
    bit set when inexact), so that the second rounding, to nearest even bf16 by VCVTNEPS2BF16, gives the
    correctly rounded value (round-to-odd with 16 spare bits makes double rounding innocuous).
    VCVTNEPS2BF16 reads float32 subnormals as zero: every ``|x| < 2^-126`` becomes ``±0``, which VDPBF16PS
    would read as zero anyway except for the values just below ``2^-126`` that round up to it; both are
    within the ``t`` term of the error model.
    """
    c = "<" + ", ".join(f"i64 {i}" for i in range(16)) + ">"
    return f"""declare <16 x double> @llvm.masked.load.v16f64.p0(ptr, <16 x i1>, <16 x double>)
declare <16 x float> @llvm.masked.load.v16f32.p0(ptr, <16 x i1>, <16 x float>)
declare void @llvm.masked.store.v16i16.p0(<16 x i16>, ptr, <16 x i1>)
declare <8 x float> @llvm.x86.avx512.mask.cvtpd2ps.512(<8 x double>, <8 x float>, i8, i32)
declare <16 x bfloat> @llvm.x86.avx512bf16.cvtneps2bf16.512(<16 x float>)
define internal void @conv_rows(ptr %X, i64 %ldx, i64 %kind, i64 %rows, i64 %d, i64 %dw, ptr %O, i64 %ldo) #0 {{
entry:
  %is64 = icmp ne i64 %kind, 0
  %dv = insertelement <16 x i64> poison, i64 %d, i64 0
  %ds = shufflevector <16 x i64> %dv, <16 x i64> poison, <16 x i32> zeroinitializer
  %wv = insertelement <16 x i64> poison, i64 %dw, i64 0
  %ws = shufflevector <16 x i64> %wv, <16 x i64> poison, <16 x i32> zeroinitializer
  br label %rh
rh:
  %r = phi i64 [ 0, %entry ], [ %rn, %rl ]
  %rc = icmp slt i64 %r, %rows
  br i1 %rc, label %rb, label %exit
rb:
  %xo = mul i64 %r, %ldx
  %xr = getelementptr i8, ptr %X, i64 %xo
  %oo = mul i64 %r, %ldo
  %or = getelementptr i8, ptr %O, i64 %oo
  br label %lh
lh:
  %l = phi i64 [ 0, %rb ], [ %ln, %ll ]
  %lc = icmp slt i64 %l, %dw
  br i1 %lc, label %lb, label %rl
lb:
  %o2 = shl i64 %l, 1
  %op = getelementptr i8, ptr %or, i64 %o2
  %l16 = add i64 %l, 16
  %full = icmp ule i64 %l16, %d
  br i1 %full, label %U, label %mk
mk:
  %lv = insertelement <16 x i64> poison, i64 %l, i64 0
  %ls = shufflevector <16 x i64> %lv, <16 x i64> poison, <16 x i32> zeroinitializer
  %idx = add <16 x i64> %ls, {c}
  %ml = icmp ult <16 x i64> %idx, %ds
  %ms = icmp ult <16 x i64> %idx, %ws
  br label %M
{_chunk_ir("U", False)}{_chunk_ir("M", True)}ll:
  %ln = add i64 %l, 16
  br label %lh
rl:
  %rn = add i64 %r, 1
  br label %rh
exit:
  ret void
}}"""


def _loops_ir(L: list, mr: int, nv: int, panels, pred: str, convert: bool = True) -> None:
    """Append to ``L`` the loops shared by ``bf16_gemm`` and ``bf16_screen``, entered from block ``pred``:
    blocks of ``%kblock`` keys (float keys rounded into the buffer ``%K`` by ``conv_rows``), groups of ``%gw``
    queries, tiles of ``mr`` keys then single keys, each over the panels ``panels(tag, mr, nv, jvar, after)``
    emits (:func:`_panels_ir` or :func:`_spanels_ir`); they leave through ``%exit``."""
    a = L.append
    a("bh:")  # blocks of keys
    a(f"  %b0 = phi i64 [ 0, %{pred} ], [ %bend, %bl ]")
    a("  %bc = icmp slt i64 %b0, %n")
    a("  br i1 %bc, label %bb, label %exit")
    a("bb:")
    a("  %brem = sub i64 %n, %b0")
    a("  %bsmall = icmp slt i64 %brem, %kblock")
    a("  %bn = select i1 %bsmall, i64 %brem, i64 %kblock")
    a("  %bend = add i64 %b0, %bn")
    a(f"  %bmr = urem i64 %bn, {mr}")
    a("  %bfe = sub i64 %bend, %bmr")
    if not convert:  # (the int8 kernels: keys always packed)
        a("  br label %gpre")
        a("gpre:")
        a("  %Kb = phi ptr [ %K, %bb ]")
    else:
        a("  %fuse = icmp ne ptr %X, null")  # keys given as floats: convert this block into the buffer K
        a("  br i1 %fuse, label %cb, label %gpre")
        a("cb:")
        a("  %xo = mul i64 %b0, %ldx")
        a("  %Xb = getelementptr i8, ptr %X, i64 %xo")
        a("  %dw = shl i64 %dp, 1")
        a("  call void @conv_rows(ptr %Xb, i64 %ldx, i64 %kind, i64 %bn, i64 %d, i64 %dw, ptr %K, i64 %ldk)")
        a("  %ko = mul i64 %b0, %ldk")
        a("  %kneg = sub i64 0, %ko")
        a("  %Kc = getelementptr i8, ptr %K, i64 %kneg")  # row j of the block at K + (j - b0) ldk
        a("  br label %gpre")
        a("gpre:")
        a("  %Kb = phi ptr [ %K, %bb ], [ %Kc, %cb ]")
    a("  br label %gh")
    a("gh:")  # groups of panels whose queries stay in L1
    a("  %g0 = phi i64 [ 0, %gpre ], [ %gend, %gl ]")
    a("  %gc = icmp slt i64 %g0, %nq")
    a("  br i1 %gc, label %gb, label %bl")
    a("gb:")
    a("  %grem = sub i64 %nq, %g0")
    a("  %gsmall = icmp slt i64 %grem, %gw")
    a("  %gn = select i1 %gsmall, i64 %grem, i64 %gw")
    a("  %gend = add i64 %g0, %gn")
    a("  br label %jh")
    a("jh:")  # tiles of mr keys
    a("  %j = phi i64 [ %b0, %gb ], [ %jn, %jl ]")
    a("  %jc = icmp slt i64 %j, %bfe")
    a("  br i1 %jc, label %Apre, label %ih")
    L.extend(panels("A", mr, nv, "%j", "jl"))
    a("jl:")
    a(f"  %jn = add i64 %j, {mr}")
    a("  br label %jh")
    a("ih:")  # the last keys of the block, one by one
    a("  %i = phi i64 [ %j, %jh ], [ %in, %il ]")
    a("  %ic = icmp slt i64 %i, %bend")
    a("  br i1 %ic, label %Bpre, label %gl")
    L.extend(panels("B", 1, nv, "%i", "il"))
    a("il:")
    a("  %in = add i64 %i, 1")
    a("  br label %ih")
    a("gl:")
    a("  br label %gh")
    a("bl:")
    a("  br label %bh")


def _gemm_ir(mr: int = _MR, nv: int = _NV, unroll: int = _UNROLL, nt: bool = False, kind: str = "bf16") -> str:
    """The module: tiles for (mr, 1..nv) and (1, 1..nv) and the driver ``bf16_gemm``.

    ``bf16_gemm(K, n, ldk, Q, nq, ldq, dp, C, ldc, kblock, gw)``: for each block of ``kblock`` keys (kept in
    L2), each group of ``gw`` queries (kept in L1), each tile of ``mr`` keys (single keys at the end of a
    block), each panel of ``16 nv`` queries in the group: one tile call.  Strides are in bytes; ``dp >= 1``.
    ``kind="i8"``: the int8 tiles (:func:`_dot_loop_ir`), keys always packed (``X`` ignored).
    """
    L = [_DOT_DECL[kind], "declare void @llvm.masked.store.v16f32.p0(<16 x float>, ptr, <16 x i1>)"]
    if kind == "bf16":
        L.append(_convert_ir())
    for v in range(1, nv + 1):
        L.append(_tile_ir(mr, v, nt, kind))
        if mr > 1:
            L.append(_tile_ir(1, v, nt, kind))
    a = L.append
    a("define void @bf16_gemm(ptr %K, i64 %n, i64 %ldk, ptr %Q, i64 %nq, i64 %ldq, i64 %dp, ptr %C, "
      "i64 %ldc, i64 %kblock, i64 %gw, ptr %X, i64 %ldx, i64 %kind, i64 %d) #0 {")
    a("entry:")
    a("  br label %bh")
    _loops_ir(L, mr, nv, _panels_ir, "entry", convert=kind == "bf16")
    a("exit:")
    a("  fence seq_cst")  # orders the non-temporal stores before anything after the call
    a("  ret void")
    a("}")
    a("attributes #0 = { nounwind }")
    a("!0 = distinct !{!0, !1}")
    a(f'!1 = !{{!"llvm.loop.unroll.count", i32 {unroll}}}')
    a("!2 = !{i32 1}")
    return "\n".join(L)


# ------------------------------------------------------------------------------------ compilation, cached

_lock = threading.Lock()
_state: dict = {}


def _cpu_ok() -> bool:
    try:
        import llvmlite.binding as ll

        feats = ll.get_host_cpu_features()
        return bool(feats.get("avx512f", False) and feats.get("avx512bf16", False))
    except Exception:  # noqa: BLE001 - no llvmlite or no feature query: not available
        return False


def _jit(ir: str, name: str, proto):
    """Compile the module ``ir`` for the host CPU: ``(ctypes function `name` of type proto, engine)`` (keep the
    engine alive: it owns the code)."""
    import llvmlite.binding as ll

    ll.initialize_native_target()
    ll.initialize_native_asmprinter()
    mod = ll.parse_assembly(ir)
    mod.verify()
    tm = ll.Target.from_default_triple().create_target_machine(
        cpu=ll.get_host_cpu_name(), features=ll.get_host_cpu_features().flatten(), opt=3)
    pb = ll.create_pass_builder(tm, ll.create_pipeline_tuning_options(speed_level=3))
    pb.getModulePassManager().run(mod, pb)
    engine = ll.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    return proto(engine.get_function_address(name)), engine


_GEMM_PROTO = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] + [ctypes.c_int64] * 2 + [ctypes.c_void_p]
                                      + [ctypes.c_int64] * 3 + [ctypes.c_void_p] + [ctypes.c_int64] * 3
                                      + [ctypes.c_void_p] + [ctypes.c_int64] * 3))
_SCREEN_PROTO = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_void_p)


def _build(mr: int = _MR, nv: int = _NV, unroll: int = _UNROLL, nt: bool = False, kind: str = "bf16"):
    """Compile the GEMM for the host CPU; returns ``(ctypes function, engine)`` (keep the engine alive)."""
    return _jit(_gemm_ir(mr, nv, unroll, nt, kind), "bf16_gemm", _GEMM_PROTO)


def _cached_gemm(state: dict, lock, nt: bool, cpu_ok, build):
    """The GEMM of a kernel family from its cache ``state`` (compiled on first use by ``build(nt)`` where
    ``cpu_ok()``; ``nt`` only once the plain one compiled), or None (cached too)."""
    key = "fn_nt" if nt else "fn"
    with lock:
        if key in state:
            return state[key]
        fn = None
        if (nt and state.get("fn") is not None) or (not nt and cpu_ok()):
            try:
                fn, state["engine_" + key] = build(nt)  # (engines keep the code alive)
            except Exception:  # noqa: BLE001 - any compile failure means: not available
                fn = None
        state[key] = fn
        return fn


def _cached_screen(state: dict, lock, bias: bool, gemm, build):
    """The fused screen of a kernel family from its cache ``state`` (compiled on first use by ``build(bias)``
    where ``gemm()`` compiled; the bias variant also brings the bias-tile transposers ``state["bias_tile"]``
    and ``state["bias_tile_nt"]``), or None (cached too)."""
    key = "screen_bias" if bias else "screen"
    with lock:
        if key in state:
            return state[key]
    ok = gemm() is not None
    with lock:
        if key not in state:
            fn = None
            if ok:
                try:
                    fn, eng = build(bias)
                    state["engine_" + key] = eng
                    if bias:  # the transposer of bias tiles, in the same module
                        state["bias_tile"] = eng.get_function_address("bias_tile")
                        state["bias_tile_nt"] = eng.get_function_address("bias_tile_nt")
                except Exception:  # noqa: BLE001 - any compile failure means: not available
                    fn = None
            state[key] = fn
        return state[key]


def _compile(nt: bool = False):
    """The ctypes function of ``bf16_gemm`` (compiled once per process and variant), or None.

    ``nt``: the variant with non-temporal output stores (compiled on first use)."""
    return _cached_gemm(_state, _lock, nt, _cpu_ok, lambda nt: _build(nt=nt))


def available() -> bool:
    """Whether :func:`scores` can run here: the CPU has AVX512-F and AVX512-BF16 and the kernel compiled.

    The answer is cached; on other CPUs nothing is compiled or executed.

    Examples
    --------
    >>> isinstance(available(), bool)
    True
    """
    return _compile() is not None


# ------------------------------------------------------------------------------------------ rounding

def _nb():
    from . import _bf16_numba

    return _bf16_numba


def _floats(x, name):
    """``x`` as a C-contiguous float32 or float64 NumPy array (other real dtypes go to float64)."""
    x = np.asarray(x)
    if x.dtype == np.float32 or x.dtype == np.float16:
        return np.ascontiguousarray(x, dtype=np.float32)
    if x.dtype.kind not in "biuf":
        raise ShapeError(f"{name}: expected a real float array, got dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float64)


def to_bf16(x) -> np.ndarray:
    """bfloat16 bits (uint16, same shape) of a float32 / float64 array, rounded to nearest, ties to even.

    float16 input is widened to float32 and integer or boolean input converted to float64 first (exact up to
    ``2^53``).

    float64 values are rounded once (not through float32, which could round twice); values of magnitude at
    least ``(2 - 2^-8) 2^127`` (about 3.39e38) round to ``±inf``, as IEEE rounding to bfloat16 does; NaN
    stays NaN (quiet), ``±inf`` and ``±0`` keep their sign; subnormal bfloat16 values (below ``2^-126``) are
    produced exactly (the GEMM instruction then reads them as zero).

    Examples
    --------
    >>> to_bf16(np.array([1.0, -2.0, 1 + 2**-8, 1 + 3 * 2**-8, np.inf]))  # ties go to the even neighbour
    array([16256, 49152, 16256, 16258, 32640], dtype=uint16)
    >>> from_bf16(to_bf16(np.array([3.3e38, 3.4e38]))).tolist()  # 3.4e38 is beyond the last bfloat16
    [3.2964854295465914e+38, inf]
    """
    x = _floats(x, "x")
    out = np.empty(x.shape, dtype=np.uint16)
    if x.size:
        nb = _nb()
        if x.dtype == np.float32:
            nb.round_array32(x.reshape(-1).view(np.uint32), out.reshape(-1))
        else:
            flat = x.reshape(-1)
            nb.round_array64(flat, flat.view(np.uint64), out.reshape(-1))
    return out


def from_bf16(bits) -> np.ndarray:
    """The float32 values of bfloat16 bits (exact).

    Examples
    --------
    >>> from_bf16(np.array([16256, 49216], dtype=np.uint16))
    array([ 1., -3.], dtype=float32)
    """
    b = np.asarray(bits, dtype=np.uint16)
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


# ------------------------------------------------------------------------------------------------ packing

def _aligned_empty(shape, dtype) -> np.ndarray:
    """Uninitialised C-ordered array whose data start on a 64-byte (cache line, zmm) boundary."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(int(t) for t in (shape if isinstance(shape, tuple) else (shape,))) * dtype.itemsize
    buf = np.empty(nbytes + 64, dtype=np.uint8)
    off = (-buf.ctypes.data) % 64
    return buf[off:off + nbytes].view(dtype).reshape(shape)


def empty_scores(n: int, m: int) -> np.ndarray:
    """An uninitialised ``(n, m)`` float32 output for :func:`scores`, 64-byte aligned.

    The kernel stores whole zmm vectors along the rows: with an aligned start and ``m`` a multiple of 16
    (rows of whole cache lines) no store straddles two cache lines, which saves 10-25 % at d = 32-64.

    Examples
    --------
    >>> S = empty_scores(3, 32)
    >>> S.shape, S.dtype, S.ctypes.data % 64
    ((3, 32), dtype('float32'), 0)
    """
    return _aligned_empty((int(n), int(m)), np.float32)


def pack_keys(k, *, residual: bool = False) -> BF16Keys:
    """Keys ``(n, d)`` (float32 or float64) packed as the row operand of :func:`scores`.

    With ``residual=True`` (float64 keys), the same pass also bounds the rounding errors of the rows
    (``resmax``, see :func:`residual_norms`), for :func:`error_bound_residual`.

    Examples
    --------
    >>> pk = pack_keys(np.array([[1.0, 2.0, 3.0]]))
    >>> pk.bits.shape, pk.d
    ((1, 4), 3)
    >>> from_bf16(pk.bits)
    array([[1., 2., 3., 0.]], dtype=float32)
    >>> pack_keys(np.array([[1.0, 1 + 2**-9]]), residual=True).resmax  # 1 + 2^-9 rounds to 1
    0.001953125...
    """
    k = _floats(k, "keys")
    if k.ndim != 2:
        raise ShapeError(f"keys: expected a 2-d (n, d) array, got shape {k.shape}")
    n, d = k.shape
    dp = (d + 1) // 2
    out = _aligned_empty((n, 2 * dp), np.uint16)
    nb = _nb()
    resmax = None
    if k.dtype == np.float32:
        nb.pack_rows32(k.view(np.uint32), out)
    else:
        res = np.empty(n if residual else 0)
        nb.pack_rows64(k, k.view(np.uint64), out, res)
        if residual:
            resmax = float(_residual_up(res.max(initial=0.0), d))
    return BF16Keys(out, d, resmax)


def _packed_keys(k, norms):
    """Validation's pass over the float64 keys ``k`` (n, d) with the packing on the way
    (:func:`tropix.attention._bf16_numba.rownorms_pack`): ``(finite, BF16Keys with resmax)``; the row norms
    go to ``norms``."""
    n, d = k.shape
    out = _aligned_empty((n, 2 * ((d + 1) // 2)), np.uint16)
    res = np.empty(n)
    ok = bool(_nb().rownorms_pack(k, norms, k.view(np.uint64), out, res))
    return ok, BF16Keys(out, d, float(_residual_up(res.max(initial=0.0), d)))


def _residual_up(ss, d: int):
    """An upper bound on ``sqrt(s)`` from ``ss``, the float64 sum of ``d`` squares ``s`` (relative rounding
    at most ``(d + 1) u`` for the squares and the sum, ``u`` for the square root, ``u = 2^-53``)."""
    return np.sqrt(np.asarray(ss, dtype=np.float64)) * (1.0 + (d + 4) * 2.0**-52)


def residual_norms(x) -> np.ndarray:
    """Upper bounds on ``|x_r - bf16(x_r)|`` (Euclidean) for every row of ``x`` (m, d).

    Entries below bfloat16's normal range count as 0 (the GEMM reads them as zero and
    :func:`error_bound_residual`'s underflow term covers them); an overflowing entry gives inf.

    Examples
    --------
    >>> r = residual_norms(np.array([[1.0, 1 + 2**-9], [3.0, 0.0]]))  # 1 + 2^-9 rounds to 1; 3 is exact
    >>> bool(2**-9 <= r[0] < 2**-9 * (1 + 1e-12)), float(r[1])
    (True, 0.0)
    """
    x = np.ascontiguousarray(_floats(x, "x"), dtype=np.float64)
    if x.ndim != 2:
        raise ShapeError(f"residual_norms: expected a 2-d (m, d) array, got shape {x.shape}")
    res = np.empty(x.shape[0])
    _nb().row_residuals64(x, x.view(np.uint64), res)
    return _residual_up(res, x.shape[1])


def pack_queries(q=None, *, qT=None) -> BF16Queries:
    """Queries ``q`` (m, d), or their transpose ``qT`` (d, m), packed as the lane operand of :func:`scores`.

    Examples
    --------
    >>> pq = pack_queries(np.array([[1.0, 2.0, 3.0]]))
    >>> pq.bits.shape, pq.d, pq.m
    ((2, 32), 3, 1)
    >>> from_bf16(pq.bits[:, :2])  # dimension pairs (0, 1) and (2, pad) of query 0
    array([[1., 2.],
           [3., 0.]], dtype=float32)
    """
    if (q is None) == (qT is None):
        raise ShapeError("pack_queries: give exactly one of q (m, d) and qT (d, m)")
    x = _floats(q if q is not None else qT, "queries")
    if x.ndim != 2:
        raise ShapeError(f"queries: expected a 2-d array, got shape {x.shape}")
    m, d = x.shape if q is not None else x.shape[::-1]
    dp = (d + 1) // 2
    m16 = max(16, (m + 15) // 16 * 16)
    out = _aligned_empty((dp, 2 * m16), np.uint16)
    nb = _nb()
    if q is not None:
        if x.dtype == np.float32:
            nb.pack_lanes32(x.view(np.uint32), out)
        else:
            nb.pack_lanes64(x, x.view(np.uint64), out)
    elif x.dtype == np.float32:
        nb.pack_lanes_t32(x.view(np.uint32), out)
    else:
        nb.pack_lanes_t64(x, x.view(np.uint64), out)
    return BF16Queries(out, d, m)


# ------------------------------------------------------------------------------------------------- scores

def scores(kb, qb, out=None, *, kblock: int = KBLOCK, stream: bool = True) -> np.ndarray:
    """bfloat16 screening scores ``S[j, r] = Σ_l bf16(k[j, l]) bf16(q[r, l])``, float32 accumulation.

    Parameters
    ----------
    kb : (n, d) float array or BF16Keys
        Keys (rounded by :func:`pack_keys` unless already packed).
    qb : BF16Queries or (d, m) float array
        Packed queries (:func:`pack_queries`) or the transposed queries ``qT`` (d, m), as ``K @ qT``.
    out : (n, m) float32 array, optional
        Output with unit column stride (rows may be strided); allocated by :func:`empty_scores` if omitted
        (give an aligned one, from :func:`empty_scores`, for full speed).
    kblock : int
        Keys per cache block of the kernel (tuning only).
    stream : bool
        Store the scores with non-temporal (streaming) stores when ``out`` allows it (64-byte aligned start
        and row stride, as from :func:`empty_scores` with ``m`` a multiple of 16): the output lines are not
        read before they are written, which saves memory traffic (the scores then come from memory, not
        cache, when read).  Same values either way.

    Returns
    -------
    (n, m) float32 array
        The scores, within :func:`error_bound` of the exact ``k · q`` (see the module docstring).

    Raises
    ------
    UnsupportedCPUError
        If :func:`available` is false.
    ShapeError
        If the widths of keys and queries differ or ``out`` does not fit.

    Examples
    --------
    >>> k = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.25]])
    >>> q = np.array([[1.0, 1.0, 1.0], [2.0, 0.0, -4.0]])
    >>> if available():
    ...     S = scores(k, q.T)
    ... else:  # the values the instruction computes, for the docs on other CPUs
    ...     S = (from_bf16(to_bf16(k)) @ from_bf16(to_bf16(q)).T).astype(np.float32)
    >>> S.tolist()
    [[6.0, -10.0], [-0.25, 0.0]]
    """
    fn = _compile()
    if fn is None:
        raise UnsupportedCPUError("bfloat16 scores need a CPU with AVX512-F and AVX512-BF16 "
                                  "(and llvmlite); check available() first")
    if kblock < 1:
        raise ShapeError(f"scores: kblock must be positive, got {kblock}")
    pq = qb if isinstance(qb, BF16Queries) else pack_queries(qT=qb)
    if isinstance(kb, BF16Keys):
        pk, x = kb, None
    else:  # float keys are rounded block by block inside the kernel (into an L2-resident buffer)
        x = _floats(kb, "keys")
        if x.ndim != 2:
            raise ShapeError(f"keys: expected a 2-d (n, d) array, got shape {x.shape}")
        dp = (x.shape[1] + 1) // 2
        pk = BF16Keys(_aligned_empty((min(int(kblock), x.shape[0]), 2 * dp), np.uint16), x.shape[1])
    _check_packed(pk, pq)
    n, m = (pk.n if x is None else x.shape[0]), pq.m
    out = _scores_out(out, n, m)
    if n == 0 or m == 0:
        return out
    if pk.bits.shape[1] == 0:
        out[...] = 0
        return out
    if stream and _streams(out):
        fn = _compile(nt=True) or fn
    _call(fn, pk, pq, out, kblock, x=x)
    return out


def _scores_out(out, n: int, m: int) -> np.ndarray:
    """The output of :func:`scores` (and of the int8 ``scores``): ``out`` checked (a writeable float32
    ``(n, m)`` array with unit column stride), or a new aligned one (:func:`empty_scores`)."""
    if out is None:
        return empty_scores(n, m)
    if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != (n, m)
            or (m > 1 and out.strides[1] != 4) or not out.flags.writeable):
        raise ShapeError(f"scores: out must be a writeable float32 array of shape {(n, m)} with unit column "
                         "stride")
    return out


def _streams(out) -> bool:
    """Whether non-temporal stores may write ``out``: 64-byte aligned start and rows."""
    n = out.shape[0]
    return out.ctypes.data % 64 == 0 and (n == 1 or out.strides[0] % 64 == 0)


def key_rows(pk: BF16Keys, b0: int, b1: int) -> BF16Keys:
    """The keys ``b0 .. b1-1`` of ``pk`` (a view)."""
    return BF16Keys(pk.bits[b0:b1], pk.d, pk.resmax)


def _check_packed(pk: BF16Keys, pq: BF16Queries) -> None:
    """Raise ShapeError unless the packed operands have the layouts the kernel reads (no out-of-bounds reads)."""
    if pk.d != pq.d:
        raise ShapeError(f"scores: keys have {pk.d} dimensions, queries {pq.d}")
    dp = (pk.d + 1) // 2
    m16 = (pq.m + 15) // 16 * 16
    for name, b, shape_ok in (("keys", pk.bits, pk.bits.ndim == 2 and pk.bits.shape[1] == 2 * dp),
                              ("queries", pq.bits, pq.bits.ndim == 2 and pq.bits.shape[0] == dp
                               and pq.bits.shape[1] >= 2 * m16 and pq.bits.shape[1] % 32 == 0)):
        if not isinstance(b, np.ndarray) or b.dtype != np.uint16 or not shape_ok:
            raise ShapeError(f"scores: packed {name} do not have the layout of pack_keys / pack_queries "
                             f"for d = {pk.d}")


def _call(fn, pk: BF16Keys, pq: BF16Queries, out: np.ndarray, kblock: int = KBLOCK,
          group_bytes: int = GROUP_BYTES, nv: int = _NV, x=None) -> None:
    """Run the compiled ``bf16_gemm`` ``fn`` on checked, non-empty operands (also used by the benchmark).

    With ``x`` (C-contiguous float32/float64 keys), ``pk.bits`` is the conversion buffer of ``kblock`` rows."""
    kbits, qbits = np.ascontiguousarray(pk.bits), np.ascontiguousarray(pq.bits)
    n, m = out.shape
    dp = kbits.shape[1] // 2
    w = 16 * nv
    gw = max(w, group_bytes // (4 * dp) // w * w)  # queries per group: their packed bits stay in L1
    ldc = out.strides[0] if n > 1 else 64 * ((m + 15) // 16)
    fn(kbits.ctypes.data, n, kbits.strides[0], qbits.ctypes.data, m, qbits.strides[0], dp,
       out.ctypes.data, ldc, int(kblock), int(gw), None if x is None else x.ctypes.data,
       0 if x is None else x.strides[0] if x.shape[0] > 1 else x.itemsize * x.shape[1],
       0 if x is None else int(x.dtype == np.float64), 0 if x is None else x.shape[1])


# -------------------------------------------------------------------------------------------------- bound

def error_bound(qnorm, knorm, d: int):
    """Rigorous bound on ``|S[j, r] - k_j · q_r|`` (``S`` from :func:`scores`, ``k, q`` the original floats).

    Parameters
    ----------
    qnorm, knorm : array_like
        Euclidean norms ``|q_r|``, ``|k_j|`` (or upper bounds of them); broadcast against each other, e.g.
        ``error_bound(qn[None, :], kn[:, None], d)`` for the whole ``(n, m)`` score matrix.
    d : int
        Number of dimensions.

    Returns
    -------
    float64 array
        The bound of the module docstring, rounded upwards; ``inf`` where the no-overflow condition fails.

    Examples
    --------
    >>> b = error_bound(np.array([8.0]), np.array([8.0]), 64)
    >>> 0.5 < float(b[0]) < 0.51  # about 2^-7 |q| |k|
    True
    """
    return _bound(qnorm, knorm, d, "error_bound")


def error_bound_residual(qnorm, qres, knorm, kres, d: int):
    """A bound like :func:`error_bound` from the actual rounding errors of the operands.

    With ``q̂ = bf16(q)``, ``k̂ = bf16(k)``: ``q̂·k̂ - q·k = q̂·(k̂ - k) + (q̂ - q)·k``.  The entries in
    bfloat16's normal range err by ``ρ_q``, ``ρ_k`` in norm, the others (read as zero or rounded up to
    ``t = 2^-126``) by at most ``t`` each, so the rounding of the inputs costs at most
    ``(|q| + ρ_q + t √d) ρ_k + ρ_q |k| + t √d ((1 + u) |q| + |k|)`` instead of :func:`error_bound`'s
    ``(2 u + u²) |q| |k| + t √d ((1 + u) |q| + |k|)`` (``u = 2^-8``); the accumulation and underflow terms
    are those of :func:`error_bound`.  On random data the rounding errors are about ``0.2 u`` of the norms,
    so the bound is about half of :func:`error_bound`'s; the smaller of the two is returned.

    Parameters
    ----------
    qnorm, knorm : array_like
        ``|q_r|``, ``|k_j|`` (or upper bounds), as for :func:`error_bound`.
    qres, kres : array_like
        Upper bounds on ``|q_r - bf16(q_r)|`` and ``|k_j - bf16(k_j)|`` over the entries in bfloat16's
        normal range (:func:`residual_norms`, ``pack_keys(k, residual=True).resmax``); broadcast like
        ``qnorm`` and ``knorm``.
    d : int
        Number of dimensions.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> q, k = rng.standard_normal((3, 64)), rng.standard_normal((100, 64))
    >>> qn, kmax = np.linalg.norm(q, axis=1), float(np.linalg.norm(k, axis=1).max())
    >>> b = error_bound_residual(qn, residual_norms(q), kmax, pack_keys(k, residual=True).resmax, 64)
    >>> bool(np.all(b < 0.6 * error_bound(qn, kmax, 64)))
    True
    """
    return _bound(qnorm, knorm, d, "error_bound_residual", qres, kres)


def _bound(qnorm, knorm, d, fname, qres=None, kres=None):
    """:func:`error_bound`, or with the residuals ``qres``, ``kres`` :func:`error_bound_residual` (its input
    rounding term the smaller of the two; NaN from ``0 * inf`` takes the a-priori one)."""
    if int(d) < 0:
        raise ShapeError(f"{fname}: d must be non-negative, got {d}")
    d = int(d)
    d2 = d + (d & 1)
    qn = np.asarray(qnorm, dtype=np.float64)
    kn = np.asarray(knorm, dtype=np.float64)
    ub, u, t = U_BF16, U_F32, TINY
    gam = d2 * u / (1 - d2 * u)
    sq = np.sqrt(float(d)) * (1 + 1e-15)
    absterm = 2 * d2 * t * (1 + gam)
    with np.errstate(over="ignore", invalid="ignore"):
        prod = qn * kn
        inputs = (2 * ub + ub * ub) * prod
        if qres is not None:
            rq = np.asarray(qres, dtype=np.float64)
            rk = np.asarray(kres, dtype=np.float64)
            inputs = np.fmin(inputs, (qn + rq + t * sq) * rk + rq * kn)
        b = (inputs + gam * (1 + ub) ** 2 * prod + t * sq * ((1 + ub) * qn + kn) + absterm) * (1 + 1e-12)
        ok = (qn < 2.0**126) & (kn < 2.0**126) & (prod * (1 + ub) ** 2 * (1 + gam) < 2.0**126)
    return np.where(ok, b, np.inf)


# ------------------------------------------------------------------------------ fused screening of a block
#
# screen_block: the GEMM tiles of scores(), each followed, while its scores are still in registers, by the
# work of the screen's scan (running maximum, exponent-bit weight, collection test, hit emission).  The
# scores are never stored.  The constants are those of _screen_numba (EXP_C, EXP_LO, EXP_BIAS), repeated here
# as float32 bit patterns so that this module needs no numba import to build the kernel.

_SMR = 5  # keys per register tile of the screening kernel (5 x 4 vectors: room for the epilogue's registers)
BIAS_AHEAD = 10  # the bias variant prefetches the bias vectors of the keys this many rows ahead (two tiles)
_EXP_C = np.float32(1.4426950408889634 * (1.0 - 2.0**-20) * 2.0**23)
_EXP_LO = np.float32(-126.0 * 2.0**23)
_EXP_BIAS = np.float32(127 * 2**23 + 256)


def _f32_hex(x) -> str:
    """A float32 constant in LLVM IR (the double hex form of its exact value)."""
    return "0x%016X" % int(np.float64(np.float32(x)).view(np.uint64))


def _splat(ty: str, val: str) -> str:
    return "<" + ", ".join(f"{ty} {val}" for _ in range(16)) + ">"


def _stile_ir(mr: int, nv: int, bias: bool = False, kind: str = "bf16") -> str:
    """One register tile of ``mr`` keys x ``nv`` 16-query vectors, then its screening epilogue.

    ``i1 stile(K, ldk, Q, ldq, dp, MR, TH, AC, BM, mask, jk, rq, HK, HQ, HV, cntp, cap)``: ``MR/TH/AC/BM``
    point at the panel's first query in the reference maxima, thresholds, weight sums and block maxima;
    the last vector's lanes outside ``mask`` are neither loaded, stored nor emitted.  Hits (``s >= thr``)
    are compressed in registers (VCOMPRESSPS) and written under a mask at ``*cntp``; returns false (count
    untouched for that vector) when they would exceed ``cap``.

    Cost model (AMD Zen 4, measured against a stream of VDPBF16PS): instructions that write a mask register
    (VCMPPS, VPTESTMD, VPMOVD2M, ...), multiplications and FMAs, 64-byte stores (masked or not) and
    compressions each take about one VDPBF16PS slot; additions, maxima, conversions, integer and logic
    operations run on the other pipes, free only while they stay below about one 512-bit operation per
    VDPBF16PS of the tile (a sign-bit epilogue without compares, 17 such operations per vector, was slower);
    mask logic and mask-to-GPR moves are free.  Per score vector: the block maximum, the difference to
    ``mref``, one FMA, the conversion and integer clamp of the weight, the hit compare, the masked addition;
    a slot store only in tiles with a hit.

    ``bias``: the variant of :func:`screen_block` with an additive bias tile (three more parameters, ``BT``
    the float32 bias of the tile's first key and first query, ``ldb`` the bytes from one key's bias vectors
    to the next, ``ldg`` from one 16-query vector of a key to the next: 64 for a keys x queries table, the
    bytes between groups of 16 queries for validation's query-blocked layout): each score vector becomes
    ``fl32(s + b)`` (one VADDPS, the bias vector read from memory) before anything else looks at it."""
    extra = ", ptr %BT, i64 %ldb, i64 %ldg" if bias else ""
    L = [f"define internal i1 @stile_{mr}_{nv}(ptr %K, i64 %ldk, ptr %Q, i64 %ldq, i64 %dp, ptr %MR, ptr %TH, "
         f"ptr %AC, ptr %BM, i16 %mask, i32 %jk, i32 %rq, ptr %HK, ptr %HQ, ptr %HV, ptr %cntp, i64 %cap{extra}) #0 {{",
         "entry:"]
    a = L.append
    _dot_loop_ir(a, mr, nv, "epi", kind)
    a("epi:")
    a("  %lm = bitcast i16 %mask to <16 x i1>")
    last = nv - 1

    def sv(m, v):  # the score vector of key m, query vector v (after the bias)
        return f"%sb{m}_{v}" if bias else f"%n{m}_{v}"

    if bias:
        for v in range(1, nv):
            a(f"  %bgv{v} = mul i64 %ldg, {v}")
        # the bias vectors of the keys BIAS_AHEAD rows on, into the cache ahead of their tile (a hint: the
        # loads of a bias streamed from memory otherwise stall the tile's epilogue)
        a(f"  %bpf = mul i64 %ldb, {BIAS_AHEAD}")
        for m in range(mr):
            a(f"  %bo{m} = mul i64 %ldb, {m}")
            a(f"  %br{m} = getelementptr i8, ptr %BT, i64 %bo{m}")
            for v in range(nv):
                a(f"  %ba{m}_{v} = getelementptr i8, ptr %br{m}, i64 {f'%bgv{v}' if v else 0}")
                if BIAS_AHEAD:
                    a(f"  %bp{m}_{v} = getelementptr i8, ptr %ba{m}_{v}, i64 %bpf")
                    a(f"  call void @llvm.prefetch.p0(ptr %bp{m}_{v}, i32 0, i32 3, i32 1)")
                if v < last:
                    a(f"  %bv{m}_{v} = load <16 x float>, ptr %ba{m}_{v}, align 4")
                else:
                    a(f"  %bv{m}_{v} = call <16 x float> @llvm.masked.load.v16f32.p0(ptr align 4 %ba{m}_{v}, "
                      "<16 x i1> %lm, <16 x float> zeroinitializer)")
                a(f"  %sb{m}_{v} = fadd <16 x float> %n{m}_{v}, %bv{m}_{v}")
    C, BIAS = (_splat("float", _f32_hex(x)) for x in (_EXP_C, _EXP_BIAS))
    ILO = _splat("i32", str(int(_EXP_LO + _EXP_BIAS)))
    ONES = _splat("i1", "true")
    iota = "<" + ", ".join(f"i32 {i}" for i in range(16)) + ">"
    a("  %rqv = insertelement <16 x i32> poison, i32 %rq, i64 0")
    a("  %rqs = shufflevector <16 x i32> %rqv, <16 x i32> poison, <16 x i32> zeroinitializer")
    a(f"  %qi0 = add <16 x i32> %rqs, {iota}")
    for v in range(nv):  # the state of the 16 queries of vector v
        for nm, ptr in (("mr", "%MR"), ("th", "%TH"), ("ac", "%AC"), ("bm", "%BM")):
            a(f"  %{nm}p{v} = getelementptr i8, ptr {ptr}, i64 {64 * v}")
            if v < last:
                a(f"  %{nm}{v}_0 = load <16 x float>, ptr %{nm}p{v}, align 4")
            else:
                a(f"  %{nm}{v}_0 = call <16 x float> @llvm.masked.load.v16f32.p0(ptr align 4 %{nm}p{v}, "
                  "<16 x i1> %lm, <16 x float> zeroinitializer)")
        for m in range(mr):
            s = sv(m, v)
            t = f"{m}_{v}"
            a(f"  %bm{v}_{m + 1} = call <16 x float> @llvm.x86.avx512.max.ps.512(<16 x float> {s}, "
              f"<16 x float> %bm{v}_{m}, i32 4)")
            a(f"  %dl{t} = fsub <16 x float> {s}, %mr{v}_0")
            # not a hit: s < thr, or unordered (NaN); the weight is added under this mask
            # (the x86 intrinsic, predicate NGE_UQ: LLVM keeps this sense, so the masked addition below is one
            # merge-masked VADDPS instead of an addition and a blend)
            a(f"  %nh{t} = call <16 x i1> @llvm.x86.avx512.mask.cmp.ps.512(<16 x float> {s}, "
              f"<16 x float> %th{v}_0, i32 25, <16 x i1> {ONES}, i32 4)")
            a(f"  %h0{t} = xor <16 x i1> %nh{t}, {ONES}")
            if v == last:
                a(f"  %h{t} = and <16 x i1> %h0{t}, %lm")
            else:
                a(f"  %h{t} = or <16 x i1> %h0{t}, zeroinitializer")
            # the weight bits: cvtt(fma(s - mref, C, BIAS)) clamped below as an integer (the same bits as
            # _screen_numba.exp_bits: max((s - mref) C, LO) + BIAS, rounded once; the sum is exact near the clamp)
            a(f"  %bs{t} = call <16 x float> @llvm.fma.v16f32(<16 x float> %dl{t}, <16 x float> {C}, "
              f"<16 x float> {BIAS})")
            a(f"  %wt{t} = call <16 x i32> @llvm.x86.avx512.mask.cvttps2dq.512(<16 x float> %bs{t}, "
              "<16 x i32> zeroinitializer, i16 -1, i32 4)")
            a(f"  %wi{t} = call <16 x i32> @llvm.smax.v16i32(<16 x i32> %wt{t}, <16 x i32> {ILO})")
            # a merge-masked VADDPS: the weight is added where not a hit
            a(f"  %w{t} = bitcast <16 x i32> %wi{t} to <16 x float>")
            a(f"  %aw{t} = fadd <16 x float> %ac{v}_{m}, %w{t}")
            a(f"  %ac{v}_{m + 1} = select <16 x i1> %nh{t}, <16 x float> %aw{t}, <16 x float> %ac{v}_{m}")
        for nm in ("ac", "bm"):
            if v < last:
                a(f"  store <16 x float> %{nm}{v}_{mr}, ptr %{nm}p{v}, align 4")
            else:
                a(f"  call void @llvm.masked.store.v16f32.p0(<16 x float> %{nm}{v}_{mr}, ptr align 4 %{nm}p{v}, "
                  "<16 x i1> %lm)")
    # the hits: the 16-bit hit masks four to a 64-bit word; only if the tile has a hit, every score vector goes
    # to its own stack slot (fixed addresses, no dependence between the stores; a 64-byte store costs about a
    # VDPBF16PS) and, word by word, the vectors with a hit (lowest set bit first) are compressed in registers
    # and written under a mask.  (Slots at an index advanced past the vectors with a hit made a dependent
    # chain through every vector and cost more with or without hits; a branch per vector mispredicts.)
    order = [(m, v) for v in range(nv) for m in range(mr)]  # slot i holds key i % mr of vector i // mr
    nslot = len(order)
    nw = (nslot + 3) // 4
    L.insert(2, f"  %slots = alloca [{nslot} x <16 x float>], align 64")  # in the entry block
    L.insert(3, f"  %words = alloca [{nw} x i64], align 8")
    words = []
    for w in range(nw):
        acc = None
        for k, (m, v) in enumerate(order[4 * w: 4 * w + 4]):
            t = f"{m}_{v}"
            a(f"  %hb{t} = bitcast <16 x i1> %h{t} to i16")
            a(f"  %hq{t} = zext i16 %hb{t} to i64")
            if acc is None:
                acc = f"%hq{t}"
            else:
                a(f"  %hs{t} = shl i64 %hq{t}, {16 * k}")
                a(f"  %ho{t} = or i64 {acc}, %hs{t}")
                acc = f"%ho{t}"
        words.append(acc)
    anyw = words[0]
    for w in range(1, nw):
        a(f"  %aw{w}o = or i64 {anyw}, {words[w]}")
        anyw = f"%aw{w}o"
    a(f"  %anyh = icmp ne i64 {anyw}, 0")
    a("  br i1 %anyh, label %fpre, label %ok")
    a("fpre:")
    for i, (m, v) in enumerate(order):
        a(f"  %sp{m}_{v} = getelementptr <16 x float>, ptr %slots, i64 {i}")
        a(f"  store <16 x float> {sv(m, v)}, ptr %sp{m}_{v}, align 64")
    for w in range(nw):
        a(f"  %wp{w} = getelementptr i64, ptr %words, i64 {w}")
        a(f"  store i64 {words[w]}, ptr %wp{w}, align 8")
    a("  %fc0 = load i64, ptr %cntp, align 8")
    a("  br label %wh")
    a("wh:")  # the words
    a("  %wi = phi i64 [ 0, %fpre ], [ %win, %wl ]")
    a("  %wc = phi i64 [ %fc0, %fpre ], [ %fcn, %wl ]")
    a("  %wq = getelementptr i64, ptr %words, i64 %wi")
    a("  %wd0 = load i64, ptr %wq, align 8")
    a("  br label %fl")
    a("fl:")  # the vectors of a word with a hit
    a("  %wd = phi i64 [ %wd0, %wh ], [ %wdn, %fw ]")
    a("  %fcn = phi i64 [ %wc, %wh ], [ %fnc, %fw ]")
    a("  %wz = icmp eq i64 %wd, 0")
    a("  br i1 %wz, label %wl, label %fb")
    a("fb:")
    a("  %tz = call i64 @llvm.cttz.i64(i64 %wd, i1 true)")
    a("  %fld = and i64 %tz, 48")  # 16 times the field 0..3
    a("  %fw0 = lshr i64 %wd, %fld")
    a("  %fhb = trunc i64 %fw0 to i16")
    a("  %fm16 = shl i64 65535, %fld")
    a("  %fnm = xor i64 %fm16, -1")
    a("  %wdn = and i64 %wd, %fnm")
    a("  %fw4 = shl i64 %wi, 2")
    a("  %ff = lshr i64 %fld, 4")
    a("  %fe = add i64 %fw4, %ff")  # the slot
    a("  %fe32 = trunc i64 %fe to i32")
    a(f"  %fm = urem i32 %fe32, {mr}")
    a(f"  %fv = udiv i32 %fe32, {mr}")
    a("  %fsp = getelementptr <16 x float>, ptr %slots, i64 %fe")
    a("  %fsv = load <16 x float>, ptr %fsp, align 64")
    a("  %fh = bitcast i16 %fhb to <16 x i1>")
    a("  %fpc = call i16 @llvm.ctpop.i16(i16 %fhb)")
    a("  %fpz = zext i16 %fpc to i64")
    a("  %fnc = add i64 %fcn, %fpz")
    a("  %fov = icmp ugt i64 %fnc, %cap")
    a("  br i1 %fov, label %fail, label %fw")
    a("fw:")
    a("  %fpc32 = zext i16 %fpc to i32")
    a("  %fsh = shl i32 1, %fpc32")
    a("  %fsm = sub i32 %fsh, 1")
    a("  %fst = trunc i32 %fsm to i16")
    a("  %fsmk = bitcast i16 %fst to <16 x i1>")
    a("  %fcs = call <16 x float> @llvm.x86.avx512.mask.compress.v16f32(<16 x float> %fsv, "
      "<16 x float> zeroinitializer, <16 x i1> %fh)")
    a("  %fv16 = shl i32 %fv, 4")
    a("  %fvv = insertelement <16 x i32> poison, i32 %fv16, i64 0")
    a("  %fvs = shufflevector <16 x i32> %fvv, <16 x i32> poison, <16 x i32> zeroinitializer")
    a("  %fqv = add <16 x i32> %qi0, %fvs")
    a("  %fcq = call <16 x i32> @llvm.x86.avx512.mask.compress.v16i32(<16 x i32> %fqv, "
      "<16 x i32> zeroinitializer, <16 x i1> %fh)")
    a("  %fjj = add i32 %jk, %fm")
    a("  %fjv = insertelement <16 x i32> poison, i32 %fjj, i64 0")
    a("  %fjs = shufflevector <16 x i32> %fjv, <16 x i32> poison, <16 x i32> zeroinitializer")
    a("  %fo = shl i64 %fcn, 2")
    for nm, val, ty in (("HV", "%fcs", "v16f32"), ("HQ", "%fcq", "v16i32"), ("HK", "%fjs", "v16i32")):
        ety = "<16 x float>" if ty == "v16f32" else "<16 x i32>"
        a(f"  %fa{nm} = getelementptr i8, ptr %{nm}, i64 %fo")
        a(f"  call void @llvm.masked.store.{ty}.p0({ety} {val}, ptr align 4 %fa{nm}, <16 x i1> %fsmk)")
    a("  br label %fl")
    a("wl:")
    a("  %win = add i64 %wi, 1")
    a(f"  %wmore = icmp ult i64 %win, {nw}")
    a("  br i1 %wmore, label %wh, label %fdone")
    a("fdone:")
    a("  store i64 %fcn, ptr %cntp, align 8")
    a("  br label %ok")
    a("ok:")
    a("  ret i1 true")
    a("fail:")
    a("  ret i1 false")
    a("}")
    return "\n".join(L)


# the arguments of bf16_screen, an int64 array (addresses and integers) in this order, then the hit count
_SCREEN_ARGS = (("K", "ptr"), ("n", "i64"), ("ldk", "i64"), ("Q", "ptr"), ("nq", "i64"), ("ldq", "i64"),
                ("dp", "i64"), ("kblock", "i64"), ("gw", "i64"), ("X", "ptr"), ("ldx", "i64"), ("kind", "i64"),
                ("d", "i64"), ("MR", "ptr"), ("TH", "ptr"), ("AC", "ptr"), ("BM", "ptr"), ("joff", "i64"),
                ("HK", "ptr"), ("HQ", "ptr"), ("HV", "ptr"), ("cap", "i64"))


def _spanels_ir(tag: str, mr: int, nv: int, jvar: str, after: str, bias: bool = False) -> list:
    """As :func:`_panels_ir` for the screening tiles: one ``stile_{mr}_*`` call per panel of ``16 nv``
    queries from ``%g0`` to ``%gend`` at key row ``jvar``; a failed call (too many hits) goes to ``%fail``."""
    w = 16 * nv
    L = []
    a = L.append
    a(f"{tag}pre:")
    a(f"  %{tag}jk = mul i64 {jvar}, %ldk")
    a(f"  %{tag}K = getelementptr i8, ptr %Kb, i64 %{tag}jk")
    a(f"  %{tag}jg = add i64 {jvar}, %joff")
    a(f"  %{tag}j32 = trunc i64 %{tag}jg to i32")
    _panel_head_ir(a, tag, w, after)
    a(f"  %{tag}Q = getelementptr i8, ptr %Q, i64 %{tag}roff")
    for nm in ("MR", "TH", "AC", "BM"):
        a(f"  %{tag}{nm} = getelementptr i8, ptr %{nm}, i64 %{tag}roff")
    a(f"  %{tag}r32 = trunc i64 %{tag}r0 to i32")
    bargs = ""
    if bias:  # the bias tile of key row jvar (of the call's keys) and the panel's first query
        a(f"  %{tag}bj = mul i64 {jvar}, %ldb")
        a(f"  %{tag}bq = lshr i64 %{tag}r0, 4")  # the panel's first group of 16 queries (r0 a multiple of 16)
        a(f"  %{tag}bg = mul i64 %{tag}bq, %ldg")
        a(f"  %{tag}bk = add i64 %{tag}bj, %{tag}bg")
        a(f"  %{tag}BT = getelementptr i8, ptr %BB, i64 %{tag}bk")
        bargs = f", ptr %{tag}BT, i64 %ldb, i64 %ldg"
    cases = " ".join(f"i64 {v}, label %{tag}v{v}" for v in range(1, nv))
    a(f"  switch i64 %{tag}nvec, label %{tag}v{nv} [ {cases} ]")
    for v in range(1, nv + 1):
        a(f"{tag}v{v}:")
        a(f"  %{tag}ok{v} = call i1 @stile_{mr}_{v}(ptr %{tag}K, i64 %ldk, ptr %{tag}Q, i64 %ldq, i64 %dp, "
          f"ptr %{tag}MR, ptr %{tag}TH, ptr %{tag}AC, ptr %{tag}BM, i16 %{tag}mask, i32 %{tag}j32, "
          f"i32 %{tag}r32, ptr %HK, ptr %HQ, ptr %HV, ptr %cntp, i64 %cap{bargs})")
        a(f"  br i1 %{tag}ok{v}, label %{tag}rl, label %fail")
    a(f"{tag}rl:")
    a(f"  %{tag}r0n = add i64 %{tag}r0, {w}")
    a(f"  br label %{tag}rh")
    return L


def _screen_ir(mr: int = _SMR, nv: int = _NV, unroll: int = _UNROLL, bias: bool = False,
               kind: str = "bf16") -> str:
    """The module of :func:`screen_block`: screening tiles for (mr, 1..nv) and (1, 1..nv) and the driver

    ``i64 bf16_screen(K, n, ldk, Q, nq, ldq, dp, kblock, gw, X, ldx, kind, d, MR, TH, AC, BM, joff, HK, HQ,
    HV, cntp, cap)``: the loops of ``bf16_gemm`` (key blocks, with the in-kernel rounding of float keys; query
    groups; tiles), returning 0, or -1 as soon as the hits would exceed ``cap``."""
    L = [_DOT_DECL[kind],
         "declare void @llvm.masked.store.v16f32.p0(<16 x float>, ptr, <16 x i1>)",
         "declare void @llvm.masked.store.v16i32.p0(<16 x i32>, ptr, <16 x i1>)",
         "declare <16 x float> @llvm.x86.avx512.max.ps.512(<16 x float>, <16 x float>, i32)",
         "declare <16 x i32> @llvm.x86.avx512.mask.cvttps2dq.512(<16 x float>, <16 x i32>, i16, i32)",
         "declare <16 x float> @llvm.x86.avx512.mask.compress.v16f32(<16 x float>, <16 x float>, <16 x i1>)",
         "declare <16 x i32> @llvm.x86.avx512.mask.compress.v16i32(<16 x i32>, <16 x i32>, <16 x i1>)",
         "declare i16 @llvm.ctpop.i16(i16)",
         "declare i64 @llvm.cttz.i64(i64, i1)",
         "declare <16 x float> @llvm.fma.v16f32(<16 x float>, <16 x float>, <16 x float>)",
         "declare float @llvm.fabs.f32(float)",
         "declare <16 x i32> @llvm.smax.v16i32(<16 x i32>, <16 x i32>)",
         "declare <16 x i1> @llvm.x86.avx512.mask.cmp.ps.512(<16 x float>, <16 x float>, i32, <16 x i1>, i32)"]
    if bias:
        L.append("declare void @llvm.prefetch.p0(ptr, i32, i32, i32)")
    if kind == "bf16":
        L.append(_convert_ir())
    for v in range(1, nv + 1):
        L.append(_stile_ir(mr, v, bias, kind))
        if mr > 1:
            L.append(_stile_ir(1, v, bias, kind))
    a = L.append
    a("define i64 @bf16_screen(ptr %A) #0 {")
    a("entry:")
    for i, (nm, ty) in enumerate(_SCREEN_ARGS):
        a(f"  %{nm}.a = getelementptr i64, ptr %A, i64 {i}")
        if ty == "ptr":
            a(f"  %{nm}.i = load i64, ptr %{nm}.a, align 8")
            a(f"  %{nm} = inttoptr i64 %{nm}.i to ptr")
        else:
            a(f"  %{nm} = load i64, ptr %{nm}.a, align 8")
    a(f"  %cntp = getelementptr i64, ptr %A, i64 {len(_SCREEN_ARGS)}")
    a("  store i64 0, ptr %cntp, align 8")
    if bias:  # after the hit count: the bias (float32), its key stride and its 16-query group stride in bytes
        for i, nm in enumerate(("BB", "ldb", "ldg")):
            a(f"  %{nm}.a = getelementptr i64, ptr %A, i64 {len(_SCREEN_ARGS) + 1 + i}")
            a(f"  %{nm}.i = load i64, ptr %{nm}.a, align 8")
        a("  %BB = inttoptr i64 %BB.i to ptr")
        a("  %ldb = add i64 %ldb.i, 0")
        a("  %ldg = add i64 %ldg.i, 0")
    a("  br label %vh")
    a("vh:")  # the operands' promise: mref finite, thr <= mref (else -2, nothing done)
    a("  %vr = phi i64 [ 0, %entry ], [ %vrn, %vb ]")
    a("  %vc = icmp slt i64 %vr, %nq")
    a("  br i1 %vc, label %va, label %bh")
    a("va:")
    a("  %vo = shl i64 %vr, 2")
    a("  %vmp = getelementptr i8, ptr %MR, i64 %vo")
    a("  %vtp = getelementptr i8, ptr %TH, i64 %vo")
    a("  %vm = load float, ptr %vmp, align 4")
    a("  %vt = load float, ptr %vtp, align 4")
    a("  %vma = call float @llvm.fabs.f32(float %vm)")
    a("  %vfin = fcmp olt float %vma, 0x7FF0000000000000")
    a("  %vle = fcmp ole float %vt, %vm")
    a("  %vok = and i1 %vfin, %vle")
    a("  br i1 %vok, label %vb, label %bad")
    a("vb:")
    a("  %vrn = add i64 %vr, 1")
    a("  br label %vh")
    _loops_ir(L, mr, nv, (lambda *x: _spanels_ir(*x, bias=True)) if bias else _spanels_ir, "vh",
              convert=kind == "bf16")
    a("exit:")
    a("  %cnt = load i64, ptr %cntp, align 8")
    a("  ret i64 %cnt")
    a("fail:")
    a("  ret i64 -1")
    a("bad:")
    a("  ret i64 -2")
    a("}")
    if bias:
        L.append(_bias_tile_ir())
        L.append(_bias_tile_ir(nt=True))
    a("attributes #0 = { nounwind }")
    a("!0 = distinct !{!0, !1}")
    a(f'!1 = !{{!"llvm.loop.unroll.count", i32 {unroll}}}')
    if bias:
        a("!2 = !{i32 1}")
    return "\n".join(L)


def _bias_tile_ir(nt: bool = False) -> str:
    """``i64 bias_tile(A)``, ``A = (B, ldb, nq, nk, O, ldo)`` (int64: addresses, byte strides): the float32
    ``B[r, j]`` (``r < nq``, ``j < nk``, rows ``ldb`` bytes apart, unit column stride) transposed into
    ``O[j, r]`` (rows ``ldo`` bytes apart), for ``nq`` and ``nk`` multiples of 16: per 16 x 16 tile, sixteen
    loads, four rounds of two-source shuffles (block size 8, 4, 2, 1: the recursive block transpose),
    sixteen stores.  (The screen's bias tile of a block of keys, built in the L2 cache right before the fused
    kernel reads it, from the bias rows rounded to float32 in a staging buffer whose row stride is not a
    power of two: sixteen rows 2^k bytes apart would share their cache sets.)  ``nt``: ``bias_tile_nt``, with
    non-temporal stores (``O`` and ``ldo`` multiples of 64 bytes: validation's query-blocked copy, written
    past the caches)."""
    L = [f"define i64 @bias_tile{'_nt' if nt else ''}(ptr %A) #0 {{", "entry:"]
    a = L.append
    for i, nm in enumerate(("B", "ldb", "nq", "nk", "O", "ldo")):
        a(f"  %{nm}.a = getelementptr i64, ptr %A, i64 {i}")
        a(f"  %{nm}.i = load i64, ptr %{nm}.a, align 8")
    a("  %B = inttoptr i64 %B.i to ptr")
    a("  %O = inttoptr i64 %O.i to ptr")
    a("  br label %rh")
    a("rh:")
    a("  %r = phi i64 [ 0, %entry ], [ %rn, %rl ]")
    a("  %rc = icmp ult i64 %r, %nq.i")
    a("  br i1 %rc, label %rb, label %exit")
    a("rb:")
    a("  %rbo = mul i64 %r, %ldb.i")
    a("  %Br = getelementptr i8, ptr %B, i64 %rbo")
    a("  %ro = shl i64 %r, 2")
    a("  %Or = getelementptr i8, ptr %O, i64 %ro")
    a("  br label %jh")
    a("jh:")
    a("  %j = phi i64 [ 0, %rb ], [ %jn, %jb ]")
    a("  %jc = icmp ult i64 %j, %nk.i")
    a("  br i1 %jc, label %jb, label %rl")
    a("jb:")
    a("  %jo4 = shl i64 %j, 2")
    a("  %Bj = getelementptr i8, ptr %Br, i64 %jo4")
    x = []
    for i in range(16):
        a(f"  %lo{i} = mul i64 %ldb.i, {i}")
        a(f"  %lp{i} = getelementptr i8, ptr %Bj, i64 %lo{i}")
        a(f"  %x0_{i} = load <16 x float>, ptr %lp{i}, align 4")
        x.append(f"%x0_{i}")
    for st, h in enumerate((8, 4, 2, 1)):
        lo = "<" + ", ".join(f"i32 {e if not e & h else e - h + 16}" for e in range(16)) + ">"
        hi = "<" + ", ".join(f"i32 {e + h if not e & h else e + 16}" for e in range(16)) + ">"
        y = list(x)
        for i in range(16):
            if i & h:
                continue
            a(f"  %x{st + 1}_{i} = shufflevector <16 x float> {x[i]}, <16 x float> {x[i + h]}, <16 x i32> {lo}")
            a(f"  %x{st + 1}_{i + h} = shufflevector <16 x float> {x[i]}, <16 x float> {x[i + h]}, <16 x i32> {hi}")
            y[i], y[i + h] = f"%x{st + 1}_{i}", f"%x{st + 1}_{i + h}"
        x = y
    a("  %jo = mul i64 %j, %ldo.i")
    a("  %Oj = getelementptr i8, ptr %Or, i64 %jo")
    for i in range(16):
        a(f"  %so{i} = mul i64 %ldo.i, {i}")
        a(f"  %sp{i} = getelementptr i8, ptr %Oj, i64 %so{i}")
        a(f"  store <16 x float> {x[i]}, ptr %sp{i}, align 64, !nontemporal !2" if nt else
          f"  store <16 x float> {x[i]}, ptr %sp{i}, align 4")
    a("  %jn = add i64 %j, 16")
    a("  br label %jh")
    a("rl:")
    a("  %rn = add i64 %r, 16")
    a("  br label %rh")
    a("exit:")
    a("  ret i64 0")
    a("}")
    return "\n".join(L)


def _build_screen(mr: int = _SMR, nv: int = _NV, unroll: int = _UNROLL, bias: bool = False, kind: str = "bf16"):
    """Compile the screening kernel (with ``bias``: its variant with a bias tile) for the host CPU; returns
    ``(ctypes function, engine)``."""
    return _jit(_screen_ir(mr, nv, unroll, bias, kind), "bf16_screen", _SCREEN_PROTO)


def _compile_screen(bias: bool = False):
    """The ctypes function of ``bf16_screen`` (compiled once per process; ``bias``: its variant with a bias
    tile, :func:`_screen_ir`), or None where not available."""
    return _cached_screen(_state, _lock, bias, _compile, lambda bias: _build_screen(bias=bias))


_F32, _I32 = np.dtype(np.float32), np.dtype(np.int32)
_local = threading.local()


def _screen_buffer() -> tuple:
    """This thread's argument array of ``bf16_screen`` and its address."""
    buf = getattr(_local, "screen_args", None)
    if buf is None:
        A = np.zeros(len(_SCREEN_ARGS) + 4, dtype=np.int64)  # the arguments, the hit count, the bias (BB, ldb, ldg)
        buf = _local.screen_args = (A, A.ctypes.data)
    return buf


def _vec(x, name: str, m: int, dtype, writeable: bool) -> None:
    """Raise ShapeError unless ``x`` is a contiguous 1-d array of ``dtype`` and length ``m`` (writeable if
    asked)."""
    if not (isinstance(x, np.ndarray) and (x.dtype is dtype or x.dtype == dtype) and x.ndim == 1
            and x.shape[0] == m and (m <= 1 or x.strides[0] == x.itemsize)
            and (not writeable or x.flags.writeable)):
        raise ShapeError(f"screen_block: {name} must be a{' writeable' if writeable else ''} contiguous 1-d "
                         f"{dtype.name} array of length {m}")


def screen_block(kb, qb, mref, thr, acc, bmax, hit_key, hit_query, hit_val, *, joff: int = 0,
                 kblock: int = KBLOCK, bias=None) -> int:
    """Screen a block of keys against packed queries without storing the scores (fused GEMM and scan).

    For every key ``j`` of ``kb`` and query ``r < m``, with ``s = S[j, r]`` exactly the float32 value that
    :func:`scores` gives, the kernel does, while the register tile holding ``s`` is still live:

    * ``bmax[r] = max(bmax[r], s)``;
    * if ``s >= thr[r]``: a *hit*, ``(j + joff, r, s)`` is appended to ``hit_key``, ``hit_query``,
      ``hit_val``;
    * otherwise ``acc[r] += w(s - mref[r])`` in float32, with the exponent-bit weight of
      :func:`tropix.attention._screen_numba.scan_block`,
      ``w(x) = bitcast_f32(int32(trunc(float32(max(x EXP_C, EXP_LO) + EXP_BIAS))))`` with ``x`` the float32
      difference and ``x EXP_C + EXP_BIAS`` rounded once (an FMA; ``_screen_numba.exp_bits``, bit for bit),
      which satisfies ``exp(x) <= w(x) <= 1.062 exp(x)`` for ``x <= 0`` and is
      clamped at ``2^-126 (1 + 2^-15)`` for ``x`` below about ``-126 log(2)``.

    The weights are summed in an unspecified order (tile by tile), so ``acc`` differs from a sequential
    float32 sum of the same weights by rounding only: the exact sum of the weights added is at most
    ``(acc_new - acc_old) (1 + nkeys 2^-23)`` (each of the ``nkeys`` weights of a query passes through at
    most ``nkeys`` float32 additions, each rounding by a relative ``2^-24``).

    Parameters
    ----------
    kb : BF16Keys or (n, d) float32/float64 array
        The block of keys, packed (e.g. ``BF16Keys(pk.bits[b0:b1], pk.d)``) or as floats (rounded inside
        the kernel, as :func:`scores` does).
    qb : BF16Queries or (d, m) float array
        Packed queries (:func:`pack_queries`) or the transposed queries.
    mref : (m,) float32
        Each query's reference maximum (from earlier blocks); must be finite.
    thr : (m,) float32
        Collection thresholds, ``thr <= mref`` (``-inf`` collects every key).  Since ``s > mref`` implies a
        hit, every weight is at most 1 (checked by the kernel before it starts).
    acc : (m,) float32, updated in place
        Sums of the weights of the keys not collected.
    bmax : (m,) float32, updated in place
        Running maxima of the scores (start at ``-inf`` or at the maxima so far).
    hit_key, hit_query : (cap,) int32, written
    hit_val : (cap,) float32, written
        The hits (key index plus ``joff``, query, score) in positions ``0 .. count-1``, in no particular
        order; ``cap`` is their common length.
    joff : int
        Added to the key indices written to ``hit_key`` (the block's first key in the head).
    kblock : int
        Keys per cache block of the kernel (tuning only).
    bias : (n, m) or ((m + 15) // 16, n, 16) float32, optional
        An additive term per (key, query) (rows of unit stride; ``-inf`` allowed), as a keys x queries table
        or blocked by 16 queries (``bias[r // 16, j, r % 16]``, keys 64 bytes apart: validation's layout,
        :func:`blocked_bias_table` gives the table): the kernel variant built for it screens
        ``s = fl32(S[j, r] + bias[j, r])`` instead (one float32 addition, before the maximum, the compare and
        the weight; ``-inf + S`` is ``-inf``, never a hit if ``thr`` is finite).

    Returns
    -------
    int
        The number of hits, or ``-1`` if they would exceed ``cap``.  Then the kernel stopped early:
        ``acc``, ``bmax`` and the hit arrays are partially updated (some tiles done, others not) and must be
        restored by the caller (e.g. from copies) before the block is screened another way.

    Raises
    ------
    UnsupportedCPUError
        If :func:`available` is false.
    ShapeError
        On operands of wrong shape, dtype or layout, or a non-finite ``mref`` or ``thr > mref`` (then
        nothing is modified).

    Notes
    -----
    Non-finite scores (only from non-finite inputs): a NaN score is never a hit, leaves ``bmax`` unchanged
    and adds the clamped weight; ``-inf`` adds the clamped weight as well (an upper bound of its weight 0).
    The hits of a 16-query vector are compressed in registers (VCOMPRESSPS) and written under a mask, only
    for the vectors that have one.  The Python overhead of a call is a few microseconds (the arguments are
    gathered by a numba function and passed as one array); ``_screen_numba.fused_blocks`` runs many blocks
    without it.  ``_screen_numba.absorb_block`` turns the flat hits into the per-query candidate lists of
    ``_screen_numba.scan_block`` (same overflow rule).

    Examples
    --------
    >>> k = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 0.5]])
    >>> q = np.array([[1.0, 1.0], [2.0, 0.0]])
    >>> mref = np.array([3.0, 4.0], dtype=np.float32)
    >>> thr = np.array([2.5, 4.0], dtype=np.float32)
    >>> acc, bmax = np.zeros(2, np.float32), np.full(2, -np.inf, np.float32)
    >>> hk, hq, hv = np.empty(8, np.int32), np.empty(8, np.int32), np.empty(8, np.float32)
    >>> if available():
    ...     c = screen_block(k, q.T, mref, thr, acc, bmax, hk, hq, hv)
    ...     hits = sorted(zip(hk[:c].tolist(), hq[:c].tolist(), hv[:c].tolist()))
    ... else:  # what the kernel gives, for the docs on other CPUs
    ...     hits, bmax = [(0, 0, 3.0), (1, 1, 6.0)], np.array([3.0, 6.0], np.float32)
    >>> hits  # S = [[3, 2], [2, 6], [0.5, 0]]: the scores >= thr
    [(0, 0, 3.0), (1, 1, 6.0)]
    >>> bmax.tolist()
    [3.0, 6.0]
    """
    b = bias is not None
    fn = _state.get("screen_bias" if b else "screen") or _compile_screen(b)
    if fn is None:
        raise UnsupportedCPUError("bfloat16 screening needs a CPU with AVX512-F and AVX512-BF16 "
                                  "(and llvmlite); check available() first")
    return _screen_call(fn, kb, qb, mref, thr, acc, bmax, hit_key, hit_query, hit_val, joff, kblock, bias=bias)


def _screen_call(fn, kb, qb, mref, thr, acc, bmax, hit_key, hit_query, hit_val, joff=0, kblock=KBLOCK,
                 nv: int = _NV, bias=None, packed: bool = False) -> int:
    """:func:`screen_block` with the compiled kernel ``fn`` (also used by the benchmark); ``packed``: ``kb``
    and ``qb`` are packed operands already checked for ``fn`` (the int8 kernels of :mod:`._int8`)."""
    if kblock < 1:
        raise ShapeError(f"screen_block: kblock must be positive, got {kblock}")
    pq = qb if (packed or isinstance(qb, BF16Queries)) else pack_queries(qT=qb)
    if packed or isinstance(kb, BF16Keys):
        pk, x = kb, None
        n = pk.n
    else:
        x = _floats(kb, "keys")
        if x.ndim != 2:
            raise ShapeError(f"keys: expected a 2-d (n, d) array, got shape {x.shape}")
        n = x.shape[0]
        dp = (x.shape[1] + 1) // 2
        pk = BF16Keys(_aligned_empty((max(min(int(kblock), n), 1), 2 * dp), np.uint16), x.shape[1])
    if not packed:
        _check_packed(pk, pq)
    m = pq.m
    _vec(mref, "mref", m, _F32, False)
    _vec(thr, "thr", m, _F32, False)
    _vec(acc, "acc", m, _F32, True)
    _vec(bmax, "bmax", m, _F32, True)
    cap = hit_key.shape[0] if isinstance(hit_key, np.ndarray) and hit_key.ndim == 1 else -1
    _vec(hit_key, "hit_key", cap, _I32, True)
    _vec(hit_query, "hit_query", cap, _I32, True)
    _vec(hit_val, "hit_val", cap, _F32, True)
    joff = int(joff)
    if joff < 0 or n + joff > 2**31 - 1:
        raise ShapeError(f"screen_block: key indices joff .. joff + n = {joff} .. {joff + n} must fit int32")
    if bias is not None and not (_bias_table_ok(bias, n, m) or _bias_blocked_ok(bias, n, m)):
        raise ShapeError(f"screen_block: bias must be an ({n}, {m}) float32 array with rows of unit stride, or "
                         f"a ({(m + 15) // 16}, {n}, 16) float32 array of 16-query groups (64-byte key rows)")
    if m == 0:
        return 0
    kbits, qbits = pk.bits, pq.bits
    if kbits.shape[1] == 0 or n == 0:  # d = 0: every score is 0 (and n = 0: nothing), in NumPy
        if not (np.isfinite(mref).all() and (thr <= mref).all()):
            raise ShapeError("screen_block: mref must be finite and thr <= mref (no NaN)")
        S = np.zeros((n, m), dtype=np.float32)
        if bias is not None:
            S = S + (bias if bias.ndim == 2 else blocked_bias_table(bias, m))
        return _screen_numpy(S, mref, thr, acc, bmax, hit_key, hit_query, hit_val, joff)
    if kbits.strides[1] != 2:
        kbits = np.ascontiguousarray(kbits)
    if qbits.strides[1] != 2:
        qbits = np.ascontiguousarray(qbits)
    dp = kbits.shape[1] // 2
    w = 16 * nv
    gw = max(w, GROUP_BYTES // (4 * dp) // w * w)
    A, addr = _screen_buffer()
    if x is None:
        xa, ldx, kind, d = 0, 0, 0, 0
    else:
        xa, ldx = x.ctypes.data, (x.strides[0] if x.shape[0] > 1 else x.itemsize * x.shape[1])
        kind, d = int(x.dtype == np.float64), x.shape[1]
    args = _state.get("screen_args")
    if args is None:
        args = _state["screen_args"] = _nb().screen_args
    args(A, kbits, qbits, mref, thr, acc, bmax, hit_key, hit_query, hit_val, n, int(kblock), gw, xa, ldx, kind, d,
         joff)
    if bias is not None:  # (the variant's three extra arguments, after the hit count)
        A[len(_SCREEN_ARGS) + 1] = bias.ctypes.data
        if bias.ndim == 2:  # keys x queries: the next 16 queries of a key 64 bytes on
            A[len(_SCREEN_ARGS) + 2] = bias.strides[0] if n > 1 else 4 * m
            A[len(_SCREEN_ARGS) + 3] = 64
        else:  # groups of 16 queries, keys x 16 in each
            A[len(_SCREEN_ARGS) + 2] = 64
            A[len(_SCREEN_ARGS) + 3] = bias.strides[0] if bias.shape[0] > 1 else 64 * n
    rc = fn(addr)
    if rc == -2:
        raise ShapeError("screen_block: mref must be finite and thr <= mref (no NaN)")
    return int(rc)


def _bias_table_ok(b, n: int, m: int) -> bool:
    """Whether ``b`` is an ``(n, m)`` float32 bias table (keys x queries) with rows of unit stride."""
    return (isinstance(b, np.ndarray) and b.dtype == _F32 and b.shape == (n, m) and (m <= 1 or b.strides[1] == 4)
            and (n <= 1 or b.strides[0] > 0))


def _bias_blocked_ok(b, n: int, m: int) -> bool:
    """Whether ``b`` is the query-blocked float32 bias of ``n`` keys and ``m`` queries: shape
    ``((m + 15) // 16, n, 16)``, the 16 queries of a group and key contiguous (one aligned 64-byte vector when
    the array is 64-byte aligned), keys 64 bytes apart."""
    return (isinstance(b, np.ndarray) and b.dtype == _F32 and b.shape == ((m + 15) // 16, n, 16)
            and b.strides[2] == 4 and (n <= 1 or b.strides[1] == 64) and (b.shape[0] <= 1 or b.strides[0] > 0))


def blocked_bias_table(b, m: int) -> np.ndarray:
    """The ``(n, m)`` keys x queries table of a query-blocked bias ``b`` (``(groups, n, 16)``: entry
    ``[r // 16, j, r % 16]`` is the bias of key ``j`` and query ``r``), a copy.

    Examples
    --------
    >>> b = np.arange(2 * 3 * 16, dtype=np.float32).reshape(2, 3, 16)
    >>> t = blocked_bias_table(b, 20)
    >>> t.shape, float(t[1, 17]) == float(b[1, 1, 1])
    ((3, 20), True)
    """
    g, n, _ = b.shape
    return np.ascontiguousarray(b.transpose(1, 0, 2).reshape(n, 16 * g)[:, :m])


def _weights_numpy(s, mref) -> np.ndarray:
    """The exponent-bit weights ``w(s - mref)`` of :func:`screen_block`, float32 (also the tests' reference;
    the product and sum in float64, rounded once to float32, as ``_screen_numba.exp_bits``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        d = (np.asarray(s, np.float32) - mref).astype(np.float64)
        t = (np.maximum(d * float(_EXP_C), float(_EXP_LO)) + float(_EXP_BIAS)).astype(np.float32)
        return t.astype(np.int32).view(np.float32)


def _screen_numpy(S, mref, thr, acc, bmax, hit_key, hit_query, hit_val, joff=0) -> int:
    """:func:`screen_block` on given scores ``S`` (keys x queries, float32), in NumPy (a reference, and the
    ``d = 0`` case)."""
    S = np.asarray(S, dtype=np.float32)
    np.maximum(bmax, S.max(axis=0, initial=-np.inf), out=bmax)
    hit = S >= thr
    acc += np.where(hit, np.float32(0), _weights_numpy(S, mref)).sum(axis=0, dtype=np.float32)
    j, r = np.nonzero(hit)
    c = len(j)
    if c > hit_key.shape[0]:
        return -1
    hit_key[:c], hit_query[:c], hit_val[:c] = j + joff, r, S[j, r]
    return c
