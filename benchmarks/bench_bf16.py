"""Benchmark: bfloat16 screening scores (VDPBF16PS kernel of tropix.attention._bf16) against float32 sgemm.

Shapes of the screening step of :mod:`tropix.attention.screen`: ``n`` keys x ``d`` dimensions, ``m`` queries,
output ``S = K Qᵀ`` (keys x queries, float32, C order).  Single thread: ``OPENBLAS_NUM_THREADS=1`` and
torch's one thread are set before the libraries load.  Rows, all measured in the same run on the same arrays:

* ``sgemm f32``: ``np.matmul(K32, Q32ᵀ, out=S)`` with float32 inputs given (the baseline: the brief's
  ``np.float32 @``);
* ``sgemm f64->f32``: the same with the ``astype(float32)`` of float64 keys included;
* ``sgemm qk f64->f32``: ``Q32 @ K.astype(float32)ᵀ`` (queries x keys), the orientation screen.py uses at the
  time of writing (OpenBLAS is slower in it);
* ``bf16 f64``: :func:`~tropix.attention._bf16.scores` from float64 keys and queries, rounding and packing of
  both included (the keys are rounded block by block inside the kernel);
* ``bf16 f64 numba``: the same with the keys packed first by :func:`pack_keys` (numba, a separate pass);
* ``bf16 f32``: the same from float32 inputs;
* ``bf16 f64 no stream``: as ``bf16 f64`` with ordinary (not non-temporal) stores of the scores;
* ``bf16 kernel``: prepacked operands (the GEMM alone); ``pack K f64``: :func:`pack_keys` alone;
* ``... +max``: followed by a pass over the scores (the maximum per query), as the screen's scan does: the
  streamed scores are read back from memory, the others partly from cache;
* ``torch bf16``: ``K_bf16 @ Q_bf16ᵀ`` of torch (oneDNN/AVX512-BF16), if torch imports: a reference for
  the hardware, not a dependency;
* ``int8 kernel``: the int8 scores of :mod:`tropix.attention._int8` (VPDPBUSD, prepacked: queries 8 bits,
  keys two codes of 8 bits), where the CPU has AVX512-VNNI; ``pack K int8``: its key packing
  (:func:`~tropix.attention._int8.pack_keys` with the residuals).

A second table per ``d`` times the fused screening kernel :func:`~tropix.attention._bf16.screen_block` on
the screen's workload: ``q, k`` i.i.d. N(0, 1), queries scaled so that the scores have standard deviation
10, ``mref`` the true column maxima, thresholds ``mref - margin`` (``--margin``, default 16: about 3 hits per
key at 256 queries; the table says how many).  Rows, prepacked keys and queries:

* ``scores``: :func:`scores` alone (streaming stores; the baseline of the ratios);
* ``scores+scan_block``: what the screen did before, per block of ``--block`` keys: :func:`scores` into an
  L2-resident buffer (no streaming), then ``_screen_numba.scan_block`` with the same thresholds;
* ``screen_block``: the fused kernel, one call over all keys;
* ``screen_block blocks``: the same, one call per block of ``--block`` keys (includes the Python overhead
  of each call);
* ``screen_block f64``: from float64 keys (rounded inside the kernel), one call;
* ``int8 screen_block``: the int8 fused kernel (:func:`tropix.attention._int8.screen_block`) on the same
  thresholds, prepacked, one call (its hits differ slightly: other scores).

Repetitions are interleaved in a shuffled order per round (a shared machine's phases then hit every method);
the table gives the best and the median time of each and the ratios of the sgemm time to them (> 1: faster
than sgemm); on a shared machine the best times are the more stable.  ``--sweep`` also times other register
tiles (keys x 16-query vectors), L1 query groups and key blocks of the kernel.

Usage: ``python benchmarks/bench_bf16.py [--n 16384] [--dims 32,64] [--m 256] [--rounds 15] [--sweep]
[--margin 16] [--block 1024]``
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from tropix.attention import _bf16, _int8  # noqa: E402

try:
    import torch

    torch.set_num_threads(1)
except Exception:  # noqa: BLE001 - torch is optional here
    torch = None


def measure(methods, rounds):
    """Interleaved timings: ``{name: [seconds, ...]}``."""
    times = {name: [] for name in methods}
    for f in methods.values():  # warm-up (compilation, first touch)
        f()
    names = list(methods)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            t0 = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--dims", default="32,64")
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--sweep", action="store_true", help="also time other register tiles")
    ap.add_argument("--margin", type=float, default=16.0, help="screening: thresholds mref - margin")
    ap.add_argument("--block", type=int, default=1024, help="screening: keys per block of the blocked rows")
    args = ap.parse_args(argv)
    if not _bf16.available():
        print("AVX512-BF16 not available on this CPU: nothing to measure")
        return 0
    rng = np.random.default_rng(0)
    n, m = args.n, args.m
    print(f"n = {n} keys, m = {m} queries, single thread; times in ms (best / median of {args.rounds})")
    for d in (int(x) for x in args.dims.split(",")):
        k64 = rng.standard_normal((n, d))
        q64 = rng.standard_normal((m, d)) / np.sqrt(d)
        k32 = k64.astype(np.float32)
        q32T = np.ascontiguousarray(q64.astype(np.float32).T)
        q64T = np.ascontiguousarray(q64.T)
        out = _bf16.empty_scores(n, m)  # 64-byte aligned, the same output buffer for every method
        outT = _bf16.empty_scores(m, n)
        q32 = q64.astype(np.float32)
        pk, pq = _bf16.pack_keys(k64), _bf16.pack_queries(q64)
        methods = {
            "sgemm f32": lambda: np.matmul(k32, q32T, out=out),
            "sgemm f64->f32": lambda: np.matmul(k64.astype(np.float32), q32T, out=out),
            "sgemm qk f64->f32": lambda: np.matmul(q32, k64.astype(np.float32).T, out=outT),
            "bf16 f64": lambda: _bf16.scores(k64, q64T, out=out),
            "bf16 f32": lambda: _bf16.scores(k32, q32T, out=out),
            "bf16 f64 numba": lambda: _bf16.scores(_bf16.pack_keys(k64), _bf16.pack_queries(qT=q64T), out=out),
            "bf16 f64 no stream": lambda: _bf16.scores(k64, q64T, out=out, stream=False),
            "bf16 kernel": lambda: _bf16.scores(pk, pq, out=out),
            "pack K f64": lambda: _bf16.pack_keys(k64),
            "sgemm f32 +max": lambda: np.matmul(k32, q32T, out=out).max(axis=0),
            "bf16 f64 +max": lambda: _bf16.scores(k64, q64T, out=out).max(axis=0),
            "bf16 no stream +max": lambda: _bf16.scores(k64, q64T, out=out, stream=False).max(axis=0),
        }
        if _int8.available():
            pk8, pq8 = _int8.pack_keys(k64), _int8.pack_queries(q64)
            methods["int8 kernel"] = lambda: _int8.scores(pk8, pq8, out=out)
            methods["pack K int8"] = lambda: _int8.pack_keys(k64)
        if torch is not None:
            kt = torch.from_numpy(k64).to(torch.bfloat16)
            qt = torch.from_numpy(q64).to(torch.bfloat16).T
            methods["torch bf16"] = lambda: kt @ qt
        engines = []
        if args.sweep:
            for mr, nv, un in [(6, 4, 2), (7, 3, 2), (8, 3, 2), (5, 5, 2)]:
                f, eng = _bf16._build(mr, nv, un)
                engines.append(eng)
                for gb in (16384, 32768):
                    for kb in (1024, 4096):
                        methods[f"k {mr}x{nv} g{gb // 1024} b{kb}"] = (
                            lambda f=f, gb=gb, kb=kb, nv=nv: _bf16._call(f, pk, pq, out, kb, gb, nv))
        # correctness of the timed output against float64 of the rounded inputs
        S = _bf16.scores(k64, q64T)
        ref = _bf16.from_bf16(pk.bits).astype(np.float64) @ _bf16.from_bf16(pq.bits).astype(np.float64)[
            :, :m * 2].reshape(pk.bits.shape[1] // 2, m, 2).transpose(0, 2, 1).reshape(-1, m)
        dev = float(np.abs(S - ref).max())
        times = measure(methods, args.rounds)
        base_best, base_med = min(times["sgemm f32"]), float(np.median(times["sgemm f32"]))
        print(f"\nd = {d}   (max |S - K̂Q̂ᵀ| = {dev:.2e}; ratio = sgemm f32 time / time)")
        print(f"{'method':<20s} {'best':>8s} {'median':>8s} {'ratio best':>11s} {'ratio median':>13s}")
        for name, ts in times.items():
            med = float(np.median(ts))
            print(f"{name:<20s} {1e3 * min(ts):8.3f} {1e3 * med:8.3f} {base_best / min(ts):11.2f} "
                  f"{base_med / med:13.2f}")
        sys.stdout.flush()
        screen_table(rng, n, m, d, args)
    return 0


def screen_table(rng, n, m, d, args) -> None:
    """The fused screening kernel against scores() alone and scores() + scan_block (module docstring)."""
    from tropix.attention._screen_numba import scan_block

    k64 = rng.standard_normal((n, d))
    q64 = rng.standard_normal((m, d)) * (10.0 / np.sqrt(d))
    pk, pq = _bf16.pack_keys(k64), _bf16.pack_queries(q64)
    S = _bf16.scores(pk, pq)
    mref = S.max(axis=0).astype(np.float32)
    tau = np.full(m, float(args.margin))
    thr = np.array([np.float32(x) for x in mref.astype(np.float64) - tau], dtype=np.float32)
    thr = np.where(thr.astype(np.float64) > mref.astype(np.float64) - tau, np.nextafter(thr, -np.inf), thr)
    want = int((S >= thr).sum())  # the hits; scan_block's rounded-down thresholds are the same floats
    out = _bf16.empty_scores(n, m)
    B = min(args.block, n)
    buf = _bf16.empty_scores(B, m)
    capq = int((S >= thr).sum(axis=0).max()) + 64  # no query overflows scan_block's per-query capacity
    cidx, cval = np.empty((m, capq), np.int32), np.empty((m, capq), np.float32)
    cap = 2 * want + 1024
    hk, hq, hv = np.empty(cap, np.int32), np.empty(cap, np.int32), np.empty(cap, np.float32)
    acc, bmax = np.zeros(m, np.float32), np.full(m, -np.inf, np.float32)
    got = {}

    def scan():
        cnt, dun, nfin = np.zeros(m, np.int64), np.zeros(m), np.zeros(m, np.int64)
        for b0 in range(0, n, B):
            b1 = min(b0 + B, n)
            Sb = _bf16.scores(_bf16.BF16Keys(pk.bits[b0:b1], d), pq, out=buf[:b1 - b0], stream=False)
            scan_block(Sb, 0, b1 - b0, b0, tau, capq, False, mref, nfin, cidx, cval, cnt, dun)
        got["scan"] = int(cnt.sum())

    def fused():
        got["fused"] = _bf16.screen_block(pk, pq, mref, thr, acc, bmax, hk, hq, hv)

    def fused_blocks():
        c = 0
        for b0 in range(0, n, B):
            b1 = min(b0 + B, n)
            c += _bf16.screen_block(_bf16.BF16Keys(pk.bits[b0:b1], d), pq, mref, thr, acc, bmax, hk[c:], hq[c:],
                                    hv[c:], joff=b0)
        got["blocks"] = c

    methods = {
        "scores": lambda: _bf16.scores(pk, pq, out=out),
        "scores+scan_block": scan,
        "screen_block": fused,
        "screen_block blocks": fused_blocks,
        "screen_block f64": lambda: _bf16.screen_block(k64, pq, mref, thr, acc, bmax, hk, hq, hv),
    }
    if _int8.available():
        pk8, pq8 = _int8.pack_keys(k64), _int8.pack_queries(q64)

        def fused8():
            got["int8"] = _int8.screen_block(pk8, pq8, mref, thr, acc, bmax, hk, hq, hv)

        methods["int8 screen_block"] = fused8
    times = measure(methods, args.rounds)
    base_best, base_med = min(times["scores"]), float(np.median(times["scores"]))
    print(f"\nscreening d = {d}: score std 10, thresholds mref - {args.margin:g}: {want} hits "
          f"({want / n:.2f} per key; scan_block {got['scan']}, screen_block {got['fused']} / {got['blocks']}, "
          f"int8 {got.get('int8', '-')}), "
          f"blocks of {B} keys; ratio = time / scores time")
    print(f"{'method':<20s} {'best':>8s} {'median':>8s} {'ratio best':>11s} {'ratio median':>13s}")
    for name, ts in times.items():
        med = float(np.median(ts))
        print(f"{name:<20s} {1e3 * min(ts):8.3f} {1e3 * med:8.3f} {min(ts) / base_best:11.2f} "
              f"{med / base_med:13.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
