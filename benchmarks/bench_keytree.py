"""Benchmark of the key-tree build: the compiled build against the vectorised NumPy build, same keys, same run.

For every case (keys, n, d) it prints the CPU time of

* ``numpy``: ``tropix.attention.keytree._build_key_tree_reference``, the vectorised NumPy build (one global
  ``argsort`` of all n keys per level; before the compiled build this was ``build_key_tree``; it shares
  the PCA preprocessing of the compiled build),
* ``numba``: :func:`tropix.attention.build_key_tree` (node by node, compiled; compile time excluded: one
  warm-up call),
* ``dense``: :func:`tropix.attention.dense` attention of 256 queries over the same keys (d_v = d): what a
  tree must be cheap against, since ``region_sparse`` / ``auto`` build one when none is passed,

then the ratios ``numpy/numba`` (the speed-up) and ``numpy/dense``, ``numba/dense``, the depth and the
number of leaves, and ``same``: whether both builds gave the same levels (block starts) and permutation.

Keys: ``clus``: n/64 tight clusters (as ``clustered`` in bench_attention.py); ``gauss``: i.i.d. N(0, 1).
BLAS is single-threaded and times are the CPU time of this process (best of interleaved repetitions), as in
bench_attention.py.

Usage: ``python benchmarks/bench_keytree.py [--quick] [--reps N]``  (``--quick``: n <= 16384).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tropix.attention import build_key_tree, dense  # noqa: E402
from tropix.attention.keytree import _build_key_tree_reference  # noqa: E402

NQ = 256


def clustered(n, d, rng):
    nc = max(n // 64, 4)
    C = rng.normal(size=(nc, d))
    return C[rng.integers(0, nc, n)] + 0.05 * rng.normal(size=(n, d))


def gauss(n, d, rng):
    return rng.normal(size=(n, d))


def run_case(label, k, reps, rng):
    n, d = k.shape
    q = k[rng.integers(0, n, NQ)] + 0.1 * rng.normal(size=(NQ, d))
    v = rng.normal(size=(n, d))
    fns = {
        "numpy": lambda: _build_key_tree_reference(k),
        "numba": lambda: build_key_tree(k),
        "dense": lambda: dense(q, k, v),
    }
    res = {name: fn() for name, fn in fns.items()}  # warm-up (and the compile of the numba build)
    best = {name: np.inf for name in fns}
    order = list(fns)
    shuffle = np.random.default_rng(n + d)
    for _ in range(reps):
        shuffle.shuffle(order)
        for name in order:
            t0 = time.process_time()
            res[name] = fns[name]()
            best[name] = min(best[name], time.process_time() - t0)
    a, b = res["numpy"], res["numba"]
    same = a.depth == b.depth and all(np.array_equal(x, y) for x, y in zip(a.starts, b.starts))
    same = same and np.array_equal(a.perm, b.perm)
    t_old, t_new, t_dense = best["numpy"], best["numba"], best["dense"]
    print(f"{label:<6s} {n:>6d} {d:>3d} {t_dense * 1e3:8.1f} {t_old * 1e3:8.1f} {t_new * 1e3:8.1f} "
          f"{t_old / t_new:7.2f} {t_old / t_dense:7.2f} {t_new / t_dense:7.2f} {b.depth:>5d} "
          f"{len(b.starts[-1]):>6d} {'yes' if same else 'NO':>5s}", flush=True)
    return t_old / t_new


def main():
    quick = "--quick" in sys.argv
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5
    sizes = [4096, 16384] if quick else [4096, 16384, 65536]
    print(f"{'keys':<6s} {'n':>6s} {'d':>3s} {'dense ms':>8s} {'numpy ms':>8s} {'numba ms':>8s} {'speedup':>7s} "
          f"{'np/dns':>7s} {'nb/dns':>7s} {'depth':>5s} {'leaves':>6s} {'same':>5s}")
    ratios = []
    for d in (32, 64):
        for n in sizes:
            for label, gen in (("clus", clustered), ("gauss", gauss)):
                rng = np.random.default_rng(1000 * d + n)
                ratios.append(run_case(label, gen(n, d, rng), reps if n < 65536 else max(2, reps // 2), rng))
    print(f"speed-up numpy/numba: min {min(ratios):.2f}, median {float(np.median(ratios)):.2f}")


if __name__ == "__main__":
    main()
