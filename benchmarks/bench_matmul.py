"""Benchmark: max-plus matrix product (tropix numba kernel) against named baselines measured in the same run.

Baselines, all on the same arrays in the same process:

* ``numpy.matmul`` (BLAS, ordinary + and *): the hardware reference; a tropical product cannot use FMA,
  so about 2x the BLAS time is the practical limit;
* NumPy broadcasting ``max(A[i0:i1, :, None] + B[None], axis=1)`` over row blocks: at n >= 1024 only one
  row block is timed and the full time is extrapolated (marked ``*`` in the table);
* the ``tropical-gemm`` package (Rust SIMD kernel), if it imports.

A second table times the log-semiring product ``T log(exp(A/T) @ exp(B/T))`` at temperatures where the
shifted BLAS route underflows (small ``|T|``, or rows of tropical zeros), against tropix's own generic
blockwise path (the compiled kernel switched off) and SciPy's ``logsumexp`` over the broadcast
``(rows, k, cols)`` block.

Each entry is the best of ``--repeat`` runs (default 3), and of more for short runs (about 0.5 s per entry).  The machine may be shared: compare the ratios,
which are measured back to back, rather than absolute times across runs.

Usage: ``python benchmarks/bench_matmul.py [--sizes 256,1024,2048] [--log-sizes 128,256,512] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tropix import LogSemiring, MaxPlus
from tropix.tropical import _kernels, matmul

try:
    import tropical_gemm

    _TG = {np.float32: tropical_gemm.maxplus_matmul_2d, np.float64: tropical_gemm.maxplus_matmul_2d_f64}
    _TG_WHY = ""
except Exception as err:  # noqa: BLE001 - report any failure to import
    _TG = None
    _TG_WHY = f"tropical-gemm not available: {type(err).__name__}: {err}"


def best(f, repeat, budget=0.5):
    """Best of ``repeat`` runs, or of more when a run is short (up to ``budget`` seconds in all)."""
    ts = []
    while len(ts) < repeat or (sum(ts) < budget and len(ts) < 200):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def broadcast_time(A, B, repeat):
    """Time of the chunked broadcasting product; returns (seconds, extrapolated?)."""
    n = A.shape[0]
    rows = max(1, (1 << 22) // (A.shape[1] * B.shape[1]))
    if n <= 256:
        def full():
            for i0 in range(0, n, rows):
                np.max(A[i0 : i0 + rows, :, None] + B[None], axis=1)

        return best(full, repeat), False
    t = best(lambda: np.max(A[:rows, :, None] + B[None], axis=1), repeat)
    return t * n / rows, True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="256,1024,2048")
    ap.add_argument("--log-sizes", default="128,256,512")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if _TG is None:
        print(_TG_WHY)
    rng = np.random.default_rng(0)
    head = f"{'dtype':8s} {'n':>5s} {'tropix s':>9s} {'BLAS s':>8s} {'/BLAS':>6s} {'bcast s':>9s} {'/bcast':>7s}"
    head += f" {'tgemm s':>8s} {'/tgemm':>7s}  agree"
    print(head)
    print("-" * len(head))
    for dt in (np.float32, np.float64):
        for n in sizes:
            A = rng.standard_normal((n, n)).astype(dt)
            B = rng.standard_normal((n, n)).astype(dt)
            A[rng.random((n, n)) < 0.05] = -np.inf  # tropical zeros, as in real sparse data
            matmul(A[:64, :64], B[:64, :64], semiring=MaxPlus)  # compile / load the kernel outside the timing
            t_ours = best(lambda: matmul(A, B, semiring=MaxPlus), args.repeat)
            with np.errstate(invalid="ignore"):  # -inf * 0-crossings give NaN in BLAS; timing only
                t_blas = best(lambda: np.matmul(A, B), args.repeat)
            t_bc, extrap = broadcast_time(A, B, args.repeat)
            C = matmul(A, B, semiring=MaxPlus)
            row = f"{np.dtype(dt).name:8s} {n:5d} {t_ours:9.4f} {t_blas:8.4f} {t_ours / t_blas:6.2f}"
            row += f" {t_bc:8.3f}{'*' if extrap else ' '} {t_ours / t_bc:7.3f}"
            agree = bool(np.array_equal(C[:8], np.max(A[:8, :, None] + B[None], axis=1)))
            if _TG is not None:
                f = _TG[dt]
                t_tg = best(lambda: f(A, B), args.repeat)
                agree = agree and bool(np.array_equal(C, np.asarray(f(A, B)).reshape(n, n)))
                row += f" {t_tg:8.4f} {t_ours / t_tg:7.2f}"
            else:
                row += f" {'-':>8s} {'-':>7s}"
            print(row + f"  {'yes' if agree else 'NO'}", flush=True)
    print("ratios are tropix time / baseline time (below 1 = tropix faster); * = one row block timed, extrapolated")
    log_table([int(s) for s in args.log_sizes.split(",")], args.repeat, rng)


def log_table(sizes, repeat, rng) -> None:
    """The log-semiring product where the shifted BLAS route underflows, against the generic path and SciPy."""
    from scipy.special import logsumexp

    print()
    head = (f"{'T':>7s} {'n':>5s} {'tropix s':>9s} {'generic s':>10s} {'/generic':>9s} {'scipy s':>8s} {'/scipy':>7s}"
            f"  max rel diff")
    print(head)
    print("-" * len(head))
    real = _kernels.log_matmul_entries_fast
    for T in (1.0, 1e-2, 1e-3, 1e-5):
        for n in sizes:
            A, B = rng.standard_normal((n, n)), rng.standard_normal((n, n))
            A[0, :] = -np.inf  # a row of tropical zeros: its entries take the recomputation at any T
            S = LogSemiring(T)
            matmul(A[:8, :8], B[:8, :8], semiring=S)  # compile / load the kernel outside the timing
            C = matmul(A, B, semiring=S)
            t_ours = best(lambda: matmul(A, B, semiring=S), repeat)
            _kernels.log_matmul_entries_fast = lambda *a: None
            try:
                G = matmul(A, B, semiring=S)
                t_gen = best(lambda: matmul(A, B, semiring=S), repeat)
            finally:
                _kernels.log_matmul_entries_fast = real
            rows = max(1, (1 << 22) // (n * n))

            def scipy_product():
                with np.errstate(invalid="ignore"):
                    return np.concatenate([T * logsumexp((A[i:i + rows, :, None] + B[None]) / T, axis=1)
                                           for i in range(0, n, rows)])

            t_sp = best(scipy_product, repeat)
            fin = np.isfinite(G)
            same = np.array_equal(np.isinf(C), np.isinf(G))
            diff = float(np.max(np.abs(C[fin] - G[fin]) / np.maximum(np.abs(G[fin]), 1e-300))) if fin.any() else 0.0
            print(f"{T:7.0e} {n:5d} {t_ours:9.4f} {t_gen:10.4f} {t_ours / t_gen:9.3f} {t_sp:8.4f} {t_ours / t_sp:7.3f}"
                  f"  {diff:.1e}{'' if same else '  ZEROS DIFFER'}", flush=True)
    print("ratios are tropix time / baseline time; generic = tropix's blockwise path without the compiled kernel")


if __name__ == "__main__":
    main()
