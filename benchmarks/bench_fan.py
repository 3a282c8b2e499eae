"""Benchmark: vertex detection in high dimension (tropix.tropical.argmax_vertices) against one LP per key.

The question: which of n keys k_j (with biases b_j) can be the unique argmax of b_j + q·k_j for some query q?
tropix filters first (self-directions of whitened keys and random directions certify most vertices without
an LP) and solves constraint-generation LPs for the rest.  The baseline is the naive method, one full LP
(all n constraints, HiGHS via scipy.optimize.linprog) per key, measured in the same run on a random sample
of keys and extrapolated to all keys (marked ``*``); on that sample both methods must agree.

Data sets (seeded):

* ``isotropic``: Gaussian keys, no biases (every key is a vertex);
* ``shell+core``: half Gaussian keys, half Gaussian keys scaled by 0.05 (interior: every one needs an LP);
* ``lowrank+bias``: rank-8 keys plus 5 % noise and Gaussian biases (anisotropic, like real attention keys).

Usage: ``python benchmarks/bench_fan.py [--sample 20] [--large/--no-large]``
(the ``x2`` row runs the LP stage on two threads, ``n_jobs=2``; all other timings are single-threaded LPs).
(``--large`` adds 10 000 keys in d = 128 when it fits in about a minute).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from tropix.tropical import argmax_vertices
from tropix.tropical.argmax_lp import _naive_lp, _prepare


def datasets(n, d, seed, which):
    rng = np.random.default_rng(seed)
    if which == "isotropic":
        return rng.standard_normal((n, d)), None
    if which == "shell+core":
        return np.concatenate([rng.standard_normal((n // 2, d)), 0.05 * rng.standard_normal((n - n // 2, d))]), None
    if which == "lowrank+bias":
        K = rng.standard_normal((n, 8)) @ rng.standard_normal((8, d)) + 0.05 * rng.standard_normal((n, d))
        return K, rng.standard_normal(n)
    raise ValueError(which)


def naive_sample(K, b, idx, tol=1e-7):
    D = _prepare(K, b, None)
    t0 = time.perf_counter()
    verdict = []
    for j in idx:
        t, _, _ = _naive_lp(D, int(j))
        verdict.append(t > tol)
    return (time.perf_counter() - t0) / len(idx), np.array(verdict)


def run(n, d, which, sample, seed=0, n_jobs=1):
    K, b = datasets(n, d, seed, which)
    t0 = time.perf_counter()
    R = argmax_vertices(K, b, n_jobs=n_jobs)
    t_ours = time.perf_counter() - t0
    idx = np.random.default_rng(seed + 1).choice(n, size=min(sample, n), replace=False)
    per, verdict = naive_sample(K, b, idx)
    agree = bool((verdict == R.is_vertex[idx]).all())
    t_naive = per * n
    return dict(
        data=which + (f" x{n_jobs}" if n_jobs > 1 else ""), n=n, d=d, t=t_ours, nv=int(R.is_vertex.sum()), nf=R.n_filtered, nlp=R.n_lp,
        solves=R.n_lp_solves, naive=t_naive, ratio=t_naive / t_ours, agree=agree,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=20, help="keys on which the naive baseline is timed")
    ap.add_argument("--large", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args(argv)
    rows = [run(2000, 64, w, args.sample) for w in ("isotropic", "shell+core", "lowrank+bias")]
    rows.append(run(2000, 64, "shell+core", args.sample, n_jobs=2))
    if args.large:
        for w in ("isotropic", "lowrank+bias"):
            rows.append(run(10_000, 128, w, max(5, args.sample // 4)))
    hdr = (f"{'data':<13} {'n':>6} {'d':>4} {'tropix s':>9} {'#vertices':>9} {'#filtered':>9} {'#LP keys':>8} "
           f"{'#LP solves':>10} {'naive s*':>9} {'naive/tropix':>12} {'agree':>6}")
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        print(f"{r['data']:<13} {r['n']:>6} {r['d']:>4} {r['t']:>9.2f} {r['nv']:>9} {r['nf']:>9} {r['nlp']:>8} "
              f"{r['solves']:>10} {r['naive']:>9.1f} {r['ratio']:>12.1f} {str(r['agree']):>6}")
    print("* naive = one full LP per key, timed on a random sample of keys and extrapolated to all n keys")
    print("  'x2' = LP stage on 2 threads (n_jobs=2); every other row and the naive baseline use one thread")
    if not all(r["agree"] for r in rows):
        raise SystemExit("naive and filtered classifications disagree on the sample")


if __name__ == "__main__":
    main()
