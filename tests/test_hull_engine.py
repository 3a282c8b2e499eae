"""The one exact convex-hull engine (tropix.tropical._hull): qhull proposals verified exactly, exact gift
wrapping otherwise; normal fans and subdivisions both use it."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix.tropical import _hull, normal_fan


def _brute_facets(P):
    """Every supporting hyperplane through d affinely independent points, in the order of the first
    (lexicographic) subset of distinct points spanning it: the exhaustive reference."""
    d = len(P[0])
    first = {}
    for i, p in enumerate(P):
        first.setdefault(tuple(p), i)
    distinct = sorted(first.values())
    planes = {}
    for sub in itertools.combinations(distinct, d):
        M = [[P[s][j] - P[sub[0]][j] for j in range(d)] for s in sub[1:]]
        ns = _hull.nullspace(M, d)
        if len(ns) != 1:
            continue
        w = ns[0]
        w0 = -sum(a * b for a, b in zip(w, P[sub[0]]))
        vals = [sum(a * b for a, b in zip(w, p)) + w0 for p in P]
        if max(vals) > 0 and min(vals) < 0:
            continue
        if max(vals) > 0:
            w, w0 = tuple(-x for x in w), -w0
        on = frozenset(i for i, v in enumerate(vals) if v == 0)
        planes.setdefault(tuple(w) + (w0,), on)
    return [(on, f) for f, on in planes.items()]


@st.composite
def full_dimensional_points(draw):
    d = draw(st.integers(2, 4))
    n = draw(st.integers(d + 1, 10))
    r = draw(st.sampled_from([1, 2, 5]))
    pts = [tuple(draw(st.integers(-r, r)) for _ in range(d)) for _ in range(n)]
    if len(_hull.affine_independent_subset(pts)) < d + 1:
        pts += [tuple(int(i == j) * (r + 1) for j in range(d)) for i in range(d)] + [(0,) * d]
    return pts


@settings(max_examples=60)
@given(full_dimensional_points())
def test_hull_facets_agree_with_exhaustive_search(P):
    """Both routes of the engine (qhull verified; gift wrapping) give the exhaustive facets; the gift-wrapping
    fallback lists them in the exhaustive search's order."""
    ref = _brute_facets(P)
    assert sorted(_hull.hull_facets(P), key=repr) == sorted(ref, key=repr)
    assert sorted(_hull.hull_facets(P, propose=True), key=repr) == sorted(ref, key=repr)
    real = _hull._qhull_facets
    try:
        _hull._qhull_facets = lambda P, d: None  # force the exact fallback
        assert _hull.hull_facets(P, propose=True) == ref
    finally:
        _hull._qhull_facets = real


def test_normal_fan_identical_through_the_fallback(monkeypatch):
    """A normal fan computed through gift wrapping equals the qhull-proposal one, facet order included."""
    rng = random.Random(3)
    for _ in range(25):
        d = rng.choice([2, 3])
        pts = [[rng.randint(-3, 3) for _ in range(d)] for _ in range(rng.randint(d + 1, 9))]
        b = [rng.randint(-2, 2) for _ in pts] if rng.random() < 0.5 else None
        F1 = normal_fan(pts, b)
        with monkeypatch.context() as m:
            m.setattr(_hull, "_qhull_facets", lambda P, d: None)
            F2 = normal_fan(pts, b)
        assert sorted(F1._hull.facets, key=repr) == sorted(F2._hull.facets, key=repr)
        assert (F1.vertices, F1.hull_vertices, F1.f_vector) == (F2.vertices, F2.hull_vertices, F2.f_vector)
        assert {v: c.rays for v, c in F1.cones.items()} == {v: c.rays for v, c in F2.cones.items()}
        assert sorted(F1.graph.edges()) == sorted(F2.graph.edges())


def test_fallback_has_no_size_limit(monkeypatch):
    """Where qhull's proposal fails, gift wrapping decides any size (the former exhaustive fallback gave up
    above 300 000 subsets with UndecidedError)."""
    rng = np.random.default_rng(0)
    P = [tuple(int(v) for v in p) for p in rng.integers(-50, 51, size=(150, 3))]
    assert math.comb(len(set(P)), 3) > 300_000
    want = sorted(_hull.hull_facets(P, propose=True), key=repr)
    monkeypatch.setattr(_hull, "_qhull_facets", lambda P, d: None)
    got = _hull.hull_facets(P, propose=True)
    assert sorted(got, key=repr) == want
    F = normal_fan([list(p) for p in P])
    assert len(F._hull.facets) == len(want)
