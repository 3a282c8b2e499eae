"""Benchmark: exact tropical hypersurfaces (regular subdivision + dual complex) against polymake and gfan.

Inputs (fixed seeds, integer coefficients, max-plus):

* ``uniform d``: dense plane polynomials of degree d = 10, 30, 60 with coefficients uniform in [-1000, 1000]
  (few cells: most lifted points lie below the upper hull);
* ``generic d``: dense plane polynomials of degree d with a concave quadratic lift plus uniform noise (a
  near-unimodular triangulation: about d² cells, the hard case);
* ``surface 8``: a generic dense polynomial of degree 8 in three variables.

tropix time = ``p.hypersurface()`` from a fresh polynomial (subdivision + complex), median of 3-5 runs after
an untimed warm-up call (imports).
When installed (never a dependency), the same input goes through

* polymake (``Hypersurface<Max>`` of the homogenised polynomial; time measured inside polymake around
  the computation of VERTICES, MAXIMAL_POLYTOPES and WEIGHTS, i.e. without perl start-up), and its output is
  compared: finite vertices, far vertices (rays), number of maximal cells and the multiset of weights;
* gfan (``gfan _tropicalhypersurface`` of ``Σ t^{c_a - min c} x^a``; the cones meeting ``w_t > 0`` are the
  cells, wall time of the process), compared: vertices and numbers of cells by dimension.

Usage: ``python benchmarks/bench_hypersurface.py [--quick] [--no-external]``.
"""

from __future__ import annotations

import itertools
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tropix.tropical import TropicalPolynomial  # noqa: E402


def simplex_points(n, d):
    return [p for p in itertools.product(range(d + 1), repeat=n) if sum(p) <= d]


def make(kind: str, n: int, d: int, seed: int) -> TropicalPolynomial:
    rng = np.random.default_rng(seed)
    pts = simplex_points(n, d)
    if kind == "uniform":
        c = rng.integers(-1000, 1001, size=len(pts))
    else:
        quad = np.array([sum(a * a for a in p) + sum(p) ** 2 for p in pts])
        c = -1000 * quad + rng.integers(-500, 501, size=len(pts))
    return TropicalPolynomial(dict(zip(pts, (int(v) for v in c))))


def time_tropix(p: TropicalPolynomial, repeat: int):
    ts = []
    H = None
    for _ in range(repeat):
        q = TropicalPolynomial(p.terms())
        t0 = time.perf_counter()
        H = q.hypersurface()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), H


# ---------------------------------------------------------------------------------------------------
# polymake


def polymake_run(p: TropicalPolynomial, timeout: float):
    n = p.n_vars
    D = max(sum(e) for e in p.exponents.tolist())
    terms = []
    for e, c in p.terms().items():
        hom = [D - sum(e)] + list(e)
        lin = "+".join(f"{k}*x{i}" for i, k in enumerate(hom) if k)
        terms.append(f"{lin}{'+' if c >= 0 else ''}{c}" if lin else str(c))
    script = f"""
use application "tropical";
use Time::HiRes qw(time);
my $f = toTropicalPolynomial("max({','.join(terms)})");
my $t0 = time();
my $H = new Hypersurface<Max>(POLYNOMIAL=>$f);
my $V = $H->VERTICES; my $M = $H->MAXIMAL_POLYTOPES; my $W = $H->WEIGHTS;
my $t1 = time();
print "TIME ", $t1 - $t0, "\\n";
print "VERTICES\\n", $V, "END\\n";
print "NMAX ", $M->rows, "\\n";
print "WEIGHTS ", $W, "\\n";
"""
    with tempfile.NamedTemporaryFile("w", suffix=".pl", delete=False) as fh:
        fh.write(script)
        path = fh.name
    t0 = time.perf_counter()
    try:
        out = subprocess.run(["polymake", "--script", path], capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - t0
    m = re.search(r"TIME ([0-9.e+-]+)", out)
    if not m:
        return None
    vblock = out.split("VERTICES\n", 1)[1].split("END", 1)[0]
    finite, far = set(), set()
    for line in vblock.strip().splitlines():
        v = [Fraction(x) for x in line.split()]
        (finite if v[0] == 1 else far).add(tuple(v[2:]))
    nmax = int(re.search(r"NMAX (\d+)", out).group(1))
    weights = sorted(int(w) for w in re.search(r"WEIGHTS (.*)", out).group(1).split())
    del n
    return float(m.group(1)), wall, finite, far, nmax, weights


def compare_polymake(H, res) -> bool:
    _, _, finite, far, nmax, weights = res
    ours_v = {tuple(Fraction(x) for x in v) for v in H._xv}
    ours_r = {tuple(Fraction(x) for x in r) for r in H.rays}
    far_prim = set()
    for r in far:  # polymake's far vertices are not always primitive
        den = 1
        for x in r:
            den = den * x.denominator // np.gcd(den, x.denominator)
        iv = [int(x * den) for x in r]
        g = int(np.gcd.reduce(np.abs(iv)))
        far_prim.add(tuple(Fraction(x // g) for x in iv))
    return ours_v == finite and ours_r == far_prim and len(H.maximal_cells) == nmax and sorted(H.weights) == weights


# ---------------------------------------------------------------------------------------------------
# gfan


def gfan_run(p: TropicalPolynomial, timeout: float):
    n = p.n_vars
    names = [f"x{i}" for i in range(n)]
    cmin = min(p.coefficients.tolist())
    mons = []
    for e, c in p.terms().items():
        parts = [f"t^{int(c - cmin)}"] + [f"{nm}^{k}" for nm, k in zip(names, e) if k]
        mons.append("*".join(parts))
    text = f"Q[t,{','.join(names)}]\n{{{'+'.join(mons)}}}\n"
    t0 = time.perf_counter()
    try:
        out = subprocess.run(["gfan", "_tropicalhypersurface"], input=text, capture_output=True, text=True,
                             timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - t0
    if "RAYS\n" not in out or "\nCONES\n" not in out:
        return "error"
    rays = []
    for line in out.split("RAYS\n", 1)[1].split("\n\n", 1)[0].strip().splitlines():
        rays.append([int(x) for x in line.split("#")[0].split()])
    cones_txt = out.split("\nCONES\n", 1)[1].split("\n\n", 1)[0]
    counts: dict = {}
    for line in cones_txt.strip().splitlines():
        idx = [int(x) for x in line.split("#")[0].strip().strip("{}").split()]
        if idx and any(rays[i][0] > 0 for i in idx):
            counts[len(idx)] = counts.get(len(idx), 0) + 1
    verts = {tuple(Fraction(x, r[0]) for x in r[1:]) for r in rays if r[0] > 0}
    return wall, verts, tuple(counts.get(k + 1, 0) for k in range(n))


def compare_gfan(H, res) -> bool:
    _, verts, fv = res
    ours_v = {tuple(Fraction(x) for x in v) for v in H._xv}
    return ours_v == verts and tuple(H.f_vector) == fv


# ---------------------------------------------------------------------------------------------------


# gfan takes ~1 minute already on "uniform 30" and fails on the large t-exponents of the generic lifts
GFAN_CASES = {("uniform", 10), ("uniform", 30), ("generic", 10)}


def main(argv) -> int:
    quick = "--quick" in argv
    external = "--no-external" not in argv
    have_pm = external and shutil.which("polymake") is not None
    have_gfan = external and shutil.which("gfan") is not None
    cases = [("uniform", 2, 10), ("uniform", 2, 30), ("uniform", 2, 60), ("generic", 2, 10), ("generic", 2, 30),
             ("generic", 2, 60), ("generic", 3, 8)]
    if quick:
        cases = [c for c in cases if c[2] <= 30]
    print(f"polymake: {'found' if have_pm else 'not installed'}; gfan: {'found' if have_gfan else 'not installed'}")
    make("generic", 2, 4, 0).hypersurface()  # warm-up: imports (scipy.spatial, ...) are not timed, like perl start-up
    make("generic", 3, 2, 0).hypersurface()
    head = (f"{'input':<14}{'terms':>6}{'cells':>7}{'tropix s':>10}{'polymake s':>12}{'pm wall s':>10}{'ratio pm':>9}"
            f"{'same':>6}{'gfan s':>9}{'ratio gfan':>11}{'same':>6}")
    print(head)
    print("-" * len(head))
    bad = 0
    for kind, n, d in cases:
        p = make(kind, n, d, seed=1000 * n + d)
        t, H = time_tropix(p, repeat=5 if d <= 30 else 3)
        row = f"{kind + ' ' + str(d) + (' (3 var)' if n == 3 else ''):<14}{p.n_terms:>6}{len(H.vertices):>7}{t:>10.3f}"
        if have_pm:
            r = polymake_run(p, timeout=900)
            if r is None:
                row += f"{'timeout':>12}{'':>10}{'':>9}{'':>6}"
            else:
                same = compare_polymake(H, r)
                bad += not same
                row += f"{r[0]:>12.3f}{r[1]:>10.2f}{r[0] / t:>8.1f}x{'yes' if same else 'NO':>6}"
        else:
            row += f"{'-':>12}{'-':>10}{'-':>9}{'-':>6}"
        if have_gfan:
            g = gfan_run(p, timeout=120) if (kind, d) in GFAN_CASES else "skipped"
            if g is None or isinstance(g, str):
                row += f"{g or 'timeout':>9}{'':>11}{'':>6}"
            else:
                same = compare_gfan(H, g)
                bad += not same
                row += f"{g[0]:>9.3f}{g[0] / t:>10.1f}x{'yes' if same else 'NO':>6}"
        else:
            row += f"{'-':>9}{'-':>11}{'-':>6}"
        print(row, flush=True)
    print("ratio = external time / tropix time (> 1: tropix faster); 'same' = identical vertices, rays, cells, weights")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
