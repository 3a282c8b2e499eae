"""Recompute published facts about tropical hypersurfaces (Maclagan–Sturmfels, *Introduction to Tropical
Geometry*, chapters 1–3) with tropix; exit non-zero on any mismatch.

Checked:

1. the tropical line ``max(a, b + x, c + y)``: one vertex at ``(a - b, a - c)``, rays ``-e1, -e2, e1 + e2``
   (max-plus) and ``e1, e2, -e1 - e2`` (min-plus), all of weight 1;
2. smooth plane curves of degree d = 1..8 (unimodular triangulations of dΔ): d² vertices, 3d rays,
   (3d² - 3d)/2 bounded edges, genus (d - 1)(d - 2)/2, balanced;
3. the curve of ``max(0, 2x, 2y)`` is the line with all weights 2 (``2·L``), not smooth;
4. the tropical plane ``max(0, x, y, z)``: one vertex, 4 rays, 6 two-dimensional cones;
   smooth surfaces of degree d in R³ have d³ vertices;
5. tropical Bézout: two dense curves of degrees d1, d2 meet stably in d1·d2 points counted with
   multiplicity, also for non-transversal (equal, overlapping) curves; Bernstein: mixed area in general;
6. the Newton-polygon theorem: the roots of trop(f) under the p-adic valuation are the valuations of the
   roots of f (Section 2.1);
7. the tropical cubic with a weight-2 ray from the guide (a non-simplicial subdivision).
"""

from __future__ import annotations

import itertools
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import sympy  # noqa: E402

from tropix import MaxPlus, MinPlus  # noqa: E402
from tropix.tropical import TropicalPolynomial, newton_polytope  # noqa: E402
from tropix.tropical.curves import stable_intersection  # noqa: E402

FAILURES: list[str] = []


def check(name: str, got, expected) -> None:
    ok = got == expected
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {got!r}" + ("" if ok else f" (expected {expected!r})"))
    if not ok:
        FAILURES.append(name)


def simplex(n, d):
    return [p for p in itertools.product(range(d + 1), repeat=n) if sum(p) <= d]


def generic_smooth(n, d, rng):
    """A generic perturbation of the A_n lift: a unimodular triangulation of dΔ (checked via is_smooth)."""
    return {p: -10**6 * (sum(a * a for a in p) + sum(p) ** 2) + int(rng.integers(-10**4, 10**4)) for p in simplex(n, d)}


def main() -> int:
    rng = np.random.default_rng(2024)
    # 1. lines
    for a, b, c in [(0, 0, 0), (3, 1, -2), (Fraction(1, 2), 2, Fraction(-3, 4))]:
        L = TropicalPolynomial({(0, 0): a, (1, 0): b, (0, 1): c}).hypersurface()
        check(f"line max({a}, {b}+x, {c}+y) vertex", L.vertices, ((a - b, a - c),))
        check("line rays (max-plus)", L.rays, ((-1, 0), (0, -1), (1, 1)))
    M = TropicalPolynomial.parse("min(0, x, y)").hypersurface()
    check("line rays (min-plus)", M.rays, ((-1, -1), (0, 1), (1, 0)))
    # 2. smooth plane curves
    for d in range(1, 9):
        H = TropicalPolynomial(generic_smooth(2, d, rng)).hypersurface()
        bounded = sum(1 for c in H.maximal_cells if c.bounded)
        rays = sum(1 for c in H.maximal_cells if not c.bounded)
        check(
            f"smooth degree {d}: (smooth, vertices, rays, bounded edges, genus, balanced)",
            (H.is_smooth(), len(H.vertices), rays, bounded, H.genus, H.is_balanced()),
            (True, d * d, 3 * d, (3 * d * d - 3 * d) // 2, (d - 1) * (d - 2) // 2, True),
        )
    # 3. 2·L
    H = TropicalPolynomial.parse("max(0, 2*x, 2*y)").hypersurface()
    check("max(0, 2x, 2y): weights, smooth", (H.weights, H.is_smooth(), H.is_balanced()), ((2, 2, 2), False, True))
    # 4. planes and surfaces
    P = TropicalPolynomial.parse("max(0, x, y, z)").hypersurface()
    check("tropical plane f-vector", P.f_vector, (1, 4, 6))
    for d in (1, 2, 3):
        S = TropicalPolynomial(generic_smooth(3, d, rng)).hypersurface()
        check(f"smooth surface degree {d}: (smooth, vertices, balanced)", (S.is_smooth(), len(S.vertices), S.is_balanced()),
              (True, d**3, True))
    # 5. Bezout and Bernstein
    for S in (MaxPlus, MinPlus):
        for d1, d2 in [(1, 1), (1, 3), (2, 2), (2, 3), (3, 4)]:
            f = TropicalPolynomial({p: int(rng.integers(-5, 6)) for p in simplex(2, d1)}, semiring=S)
            g = TropicalPolynomial({p: int(rng.integers(-5, 6)) for p in simplex(2, d2)}, semiring=S)
            check(f"Bezout {S} {d1}x{d2}", stable_intersection(f, g).total, d1 * d2)
        f = TropicalPolynomial({p: 0 for p in simplex(2, 3)}, semiring=S)  # every coefficient equal
        check(f"Bezout {S} self-intersection of a degenerate cubic", stable_intersection(f, f).total, 9)
    for _ in range(5):
        A = sorted(set([p for p in simplex(2, 4) if rng.random() < 0.5] + [(0, 0), (1, 0), (0, 2)]))
        B = sorted(set([p for p in itertools.product(range(3), repeat=2) if rng.random() < 0.5] + [(0, 0), (2, 1)]))
        B = B if len(B) > 2 else B + [(0, 1)]
        f = TropicalPolynomial({a: int(rng.integers(-3, 4)) for a in A})
        g = TropicalPolynomial({b: int(rng.integers(-3, 4)) for b in B})
        mixed = (newton_polytope([[a[0] + b[0], a[1] + b[1]] for a in A for b in B]).volume
                 - newton_polytope(A).volume - newton_polytope(B).volume) / 2
        check("Bernstein: stable intersection = mixed area", stable_intersection(f, g).total, mixed)
    # 6. p-adic Newton polygon
    x = sympy.Symbol("x")
    for p, ks in [(2, [0, 1, 1, 3]), (3, [-2, 0, 5]), (5, [1, 1, 1])]:
        f = sympy.expand(sympy.prod([x - sympy.Rational(p) ** k * (1 + p * i) for i, k in enumerate(ks)]))
        T = TropicalPolynomial.tropicalize(f, p)
        check(f"valuations of the roots, p = {p}", sorted(r for r, m in T.roots() for _ in range(m)), sorted(ks))
    # 7. the cubic of the guide
    C = TropicalPolynomial.parse(
        "max(0, 2*x, 3*x - 3, 1 + y, 3 + x + y, 2 + 2*x + y, 2*y, 2 + x + 2*y, 3*y - 3)").hypersurface()
    check("guide cubic: (max weight, genus, balanced)", (max(C.weights), C.genus, C.is_balanced()), (2, 1, True))
    print(f"{len(FAILURES)} mismatches")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
