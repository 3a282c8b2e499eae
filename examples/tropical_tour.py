"""A tour of tropix's tropical algebra, as a validation script: every printed claim is checked.

Run with ``python examples/tropical_tour.py`` (``make test`` runs it among the fast examples); exits non-zero on any mismatch.
"""

from __future__ import annotations

import itertools
import sys
from fractions import Fraction

import numpy as np

import tropix
from tropix import LogSemiring, MaxPlus, MinPlus
from tropix.tropical import matmul

failures: list[str] = []


def check(label: str, got, want) -> None:
    g, w = np.asarray(got, dtype=object), np.asarray(want, dtype=object)
    ok = g.shape == w.shape and bool(np.all(g == w))  # (same shape: broadcasting let an empty result pass)
    print(f"  [{'ok' if ok else 'MISMATCH'}] {label}: {got!r}")
    if not ok:
        failures.append(f"{label}: got {got!r}, expected {want!r}")


def brute_matmul(A, B, pick):
    A, B = np.asarray(A, dtype=object), np.asarray(B, dtype=object)
    return np.array(
        [[pick(A[i, k] + B[k, j] for k in range(A.shape[1])) for j in range(B.shape[1])] for i in range(A.shape[0])],
        dtype=object,
    )


print("1. Semirings: max-plus and min-plus are both first class")
check("MaxPlus: 3 (+) 7/2", MaxPlus.add(3, Fraction(7, 2)), Fraction(7, 2))
check("MinPlus: 3 (+) 7/2", MinPlus.add(3, Fraction(7, 2)), 3)
check("3 (x) 7/2 (both)", MaxPlus.mul(3, Fraction(7, 2)), Fraction(13, 2))
check("zeros", (MaxPlus.zero, MinPlus.zero), (float("-inf"), float("inf")))

print("2. The log-semiring tends to max-plus as T -> 0 (within T log n)")
for T in (1.0, 0.1, 0.01):
    v = LogSemiring(T).sum(np.array([1.0, 2.0, 2.0]))
    ok = 2.0 <= float(v) <= 2.0 + T * np.log(3) + 1e-12
    print(f"  [{'ok' if ok else 'MISMATCH'}] T={T}: {float(v):.6f} in [2, 2 + T log 3]")
    if not ok:
        failures.append(f"log-semiring bound at T={T}")

print("3. Exact tropical matrix products, checked against the definition")
A = [[0, 3, Fraction(1, 2)], [-2, 1, float("-inf")], [4, 0, 2]]
for S, pick in ((MaxPlus, max), (MinPlus, min)):
    A_S = [[v if v != float("-inf") else S.zero for v in row] for row in A]
    check(f"A (x) A in {S}", matmul(A_S, A_S, semiring=S).tolist(), brute_matmul(A_S, A_S, pick).tolist())

print("4. Bad input is named, never silently accepted")
try:
    MaxPlus.validate([[0.0, float("inf")]], "A")
    failures.append("+inf accepted by MaxPlus")
except tropix.ConventionError as err:
    print(f"  [ok] ConventionError: {err}")

if failures:
    print(f"\n{len(failures)} mismatch(es):")
    for f in failures:
        print("  -", f)
    sys.exit(1)
print("\nAll checks passed.")
