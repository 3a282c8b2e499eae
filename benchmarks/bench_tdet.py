"""Benchmark of the tropical determinant against scipy.optimize.linear_sum_assignment (same matrices, same run).

Rows:
* float64 tdet at n = 1000 (scipy path plus tropix's validation) vs. scipy alone — goal: on a par;
* exact integer tdet at n = 200 (exact Hungarian with dual certificate, int64) vs. scipy on the same
  matrix as float64 (which is exact only while sums stay below 2**53);
* exact rational tdet at n = 100 (Fractions, Python-integer arithmetic) vs. scipy on floats;
* is_singular at n = 200 (exact solve + tight-graph search) vs. scipy.

Run: ``.venv/bin/python benchmarks/bench_tdet.py`` (about half a minute).
"""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
from scipy.optimize import linear_sum_assignment

from tropix.tropical.determinant import is_singular, tdet


def best_of(f, repeat=3):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t0)
    return min(times), out


def scipy_value(A):
    r, c = linear_sum_assignment(A, maximize=True)
    return A[r, c].sum()


def main():
    rng = np.random.default_rng(0)
    rows = []

    A = rng.random((1000, 1000))
    t_ours, v_ours = best_of(lambda: tdet(A))
    t_ref, v_ref = best_of(lambda: scipy_value(A))
    assert abs(v_ours - v_ref) <= 1e-9 * abs(v_ref)
    rows.append(("tdet float64, n=1000", t_ours, "scipy LSA (float64)", t_ref))

    B = rng.integers(-(10**6), 10**6, (200, 200))
    t_ours, v_ours = best_of(lambda: tdet(B))
    Bf = B.astype(float)
    t_ref, v_ref = best_of(lambda: scipy_value(Bf))
    assert v_ours == int(v_ref)
    rows.append(("tdet exact int, n=200", t_ours, "scipy LSA (float64)", t_ref))

    C = np.array([[Fraction(int(x), 7 + int(y)) for x, y in zip(r1, r2)] for r1, r2 in
                  zip(rng.integers(-1000, 1000, (100, 100)), rng.integers(0, 5, (100, 100)))], dtype=object)
    t_ours, v_ours = best_of(lambda: tdet(C), repeat=1)
    Cf = C.astype(float)
    t_ref, v_ref = best_of(lambda: scipy_value(Cf))
    assert abs(float(v_ours) - v_ref) <= 1e-9 * abs(v_ref)
    rows.append(("tdet exact Fraction, n=100", t_ours, "scipy LSA (float64)", t_ref))

    t_ours, s = best_of(lambda: is_singular(B), repeat=1)
    assert bool(s) == scipy_singular(B), "is_singular disagrees with the optimum's uniqueness by scipy"
    rows.append(("is_singular exact int, n=200", t_ours, "scipy LSA (float64)", scipy_time(Bf)))

    print(f"{'case':<30s} {'tropix [s]':>11s} {'baseline':<22s} {'baseline [s]':>12s} {'tropix/base':>11s}")
    for name, t, base, tb in rows:
        print(f"{name:<30s} {t:11.4f} {base:<22s} {tb:12.4f} {t / tb:10.2f}x")


def scipy_singular(B) -> bool:
    """Whether the integer matrix ``B`` is tropically singular (its maximum attained by two permutations), by
    scipy alone: the optimum is unique iff forbidding any one of its entries lowers the value."""
    best = scipy_value(B.astype(float))
    r, c = linear_sum_assignment(B, maximize=True)
    lo = float(np.abs(B).sum()) + 1.0  # (below every permutation's value: the entry is never taken)
    for i, j in zip(r, c):
        M = B.astype(float)
        M[i, j] = -lo
        if scipy_value(M) == best:
            return True
    return False


def scipy_time(A):
    return best_of(lambda: scipy_value(A))[0]


if __name__ == "__main__":
    main()
