"""Validate tropical polytopes against Develin–Sturmfels, "Tropical convexity" (Doc. Math. 9, 2004).

Three independent checks; the script exits non-zero on any mismatch.

1. Corollary 25: n points in general position in TP^{d-1} generate a tropical polytope with
   (n+d-i-2)! / ((n-i-1)! (d-i-1)! i!) cells of dimension i; in particular binom(n+d-2, d-1) pseudovertices.
   Checked for random integer configurations (general position verified by brute force over all tropical
   minors), in both conventions, together with Euler characteristic 1 (the polytope is contractible).
2. Pseudovertices by brute force: every spanning tree of K_{n,d} whose potentials satisfy the argmax
   conditions gives a pseudovertex, and every pseudovertex arises so.
3. Theorem 1 (duality): the pseudovertices' type graphs are exactly the maximal cells of the regular
   subdivision of Δ_{n-1} × Δ_{d-1} with heights v_ij (tropix.tropical.regular_subdivision, written
   independently), for general and for degenerate configurations.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from fractions import Fraction

import numpy as np

from tropix.tropical import convex_hull, regular_subdivision


def ds_f_vector(n, d):
    f = math.factorial
    return tuple(f(n + d - i - 2) // (f(n - i - 1) * f(d - i - 1) * f(i)) for i in range(min(n, d)))


def general_position(V):
    n, d = len(V), len(V[0])
    for k in range(2, min(n, d) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.combinations(range(d), k):
                vals = sorted(sum(V[r][c] for r, c in zip(rows, p)) for p in itertools.permutations(cols))
                if vals[-1] == vals[-2]:
                    return False
    return True


def brute_pseudovertices(V, sense):
    n, d = len(V), len(V[0])
    W = [[sense * Fraction(v) for v in r] for r in V]
    edges = [(i, j) for i in range(n) for j in range(d)]
    out = set()
    for tree in itertools.combinations(edges, n + d - 1):
        adj = {}
        for i, j in tree:
            adj.setdefault(("p", i), []).append(("c", j))
            adj.setdefault(("c", j), []).append(("p", i))
        val, stack = {("c", 0): Fraction(0)}, [("c", 0)]
        while stack:
            u = stack.pop()
            for w in adj.get(u, []):
                if w not in val:
                    i, j = (w[1], u[1]) if u[0] == "c" else (u[1], w[1])
                    val[w] = W[i][j] - val[u]
                    stack.append(w)
        if len(val) == n + d and all(
            max(W[i][k] - val[("c", k)] for k in range(d)) == val[("p", i)] == W[i][j] - val[("c", j)]
            for i, j in tree
        ) and all(max(W[i][k] - val[("c", k)] for k in range(d)) == val[("p", i)] for i in range(n)):
            out.add(tuple(sense * val[("c", j)] for j in range(d)))
    return out


def subdivision_cells(V, semiring):
    n, d = len(V), len(V[0])
    pts = [[int(a == i) for a in range(n)] + [int(b == j) for b in range(d)] for i in range(n) for j in range(d)]
    R = regular_subdivision(pts, [V[i][j] for i in range(n) for j in range(d)], semiring=semiring)
    return {frozenset((k // d, k % d) for k in c) for c in R.cells}


def main() -> int:
    t0 = time.perf_counter()
    failures = 0
    print(f"{'n':>2} {'d':>2} {'conv':>4} {'configs':>7}  {'f-vector (DS Cor. 25)':<26} {'tropix':<26} {'brute':>5} {'dual':>5}")
    for n, d in [(2, 2), (2, 4), (3, 3), (4, 3), (3, 4), (5, 3), (4, 4), (3, 5), (6, 3), (5, 4)]:
        rng = np.random.default_rng(1000 * n + d)
        for sr, sense in (("max", 1), ("min", -1)):
            configs, got, brute_ok, dual_ok = 0, set(), True, True
            while configs < (3 if n * d <= 12 else 2):
                V = rng.integers(-60, 60, (n, d)).tolist()
                if not general_position(V):
                    continue
                configs += 1
                P = convex_hull(V, semiring=sr)
                got.add(P.f_vector)
                if sum((-1) ** k * f for k, f in enumerate(P.f_vector)) != 1:
                    got.add("euler != 1")
                pv = {tuple(Fraction(v) for v in r) for r in P.pseudovertices}
                if n * d <= 12:
                    brute_ok &= pv == brute_pseudovertices(V, sense)
                    types = {frozenset((i, j) for j, S in enumerate(c.type) for i in S)
                             for c in P.polytope_cells if c.dim == 0}
                    dual_ok &= types == subdivision_cells(V, sr)
            want = ds_f_vector(n, d)
            ok = got == {want} and brute_ok and dual_ok
            failures += not ok
            check = "ok" if n * d <= 12 else "-"
            print(f"{n:>2} {d:>2} {sr:>4} {configs:>7}  {str(want):<26} {' '.join(map(str, sorted(got, key=str))):<26} "
                  f"{check if brute_ok else 'FAIL':>5} {check if dual_ok else 'FAIL':>5}")
    # degenerate configurations: brute force and duality still hold (the f-vector formula does not apply)
    rng = np.random.default_rng(7)
    degenerate = 0
    for _ in range(40):
        n, d = int(rng.integers(2, 5)), int(rng.integers(2, 4))
        V = rng.integers(-2, 3, (n, d)).tolist()
        if general_position(V):
            continue
        degenerate += 1
        for sr, sense in (("max", 1), ("min", -1)):
            P = convex_hull(V, semiring=sr)
            pv = {tuple(Fraction(v) for v in r) for r in P.pseudovertices}
            types = {frozenset((i, j) for j, S in enumerate(c.type) for i in S) for c in P.polytope_cells if c.dim == 0}
            if pv != brute_pseudovertices(V, sense) or types != subdivision_cells(V, sr):
                failures += 1
                print("degenerate mismatch:", sr, V)
    print(f"degenerate configurations checked (brute force + duality, both conventions): {degenerate}")
    print(f"{'all checks passed' if not failures else f'{failures} FAILED'} in {time.perf_counter() - t0:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
