"""Key-ordered rescoring of screened cores (``_rescore_numba.finish_rows_by_key``) against the NumPy reference
``screen._finish_numpy`` and the per-query kernel ``_screen_numba.finish_rows``: the same outputs up to the
order of the sums, the same supports where no weight is within rounding of the drop threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tropix.attention import _rescore_numba as R
from tropix.attention._rescore_numba import finish_rows_by_key, pair_count
from tropix.attention._screen_numba import finish_rows
from tropix.attention.screen import _finish_numpy


def _case(seed, n, d, dv, sizes, *, nq=None, shared=None, sort=True, temp=4.0, idx=np.int32, full_frac=0.5):
    """Inputs of a finish kernel: one row per entry of ``sizes`` (its ``ncore``; ``-1``: not screened), core keys
    distinct, random or drawn from ``shared`` (then rows share keys); ``nfin`` is ``ncore`` (nothing left out)
    for about ``full_frac`` of the rows, else ``n``."""
    rng = np.random.default_rng(seed)
    nr = len(sizes)
    nq = nr + 3 if nq is None else nq
    qs = temp * rng.normal(size=(nq, d))
    k = rng.normal(size=(n, d))
    v = rng.normal(size=(n, dv))
    vn = np.linalg.norm(v, axis=1)
    rows = rng.integers(0, nq, nr).astype(np.int64)
    cap = max(max(sizes), 1)
    core = np.full((nr, cap), -7, dtype=idx)  # garbage beyond ncore must never be read
    ncore = np.asarray(sizes, dtype=np.int64)
    smax = np.zeros(nr)
    for r, c in enumerate(sizes):
        pool = np.arange(n) if shared is None else np.asarray(shared)
        sel = rng.choice(pool, size=max(c, 0), replace=False)
        if sort:
            sel = np.sort(sel)
        core[r, :max(c, 0)] = sel
        s = k[sel] @ qs[rows[r]] if c > 0 else np.zeros(1)
        smax[r] = s.max() + rng.uniform(-0.01, 0.01)  # the screen's maximum: near the exact one
    dtil = rng.uniform(0.0, 1e-3, nr)
    nfin = np.where(rng.random(nr) < full_frac, np.maximum(ncore, 0), n).astype(np.int64)
    beta = rng.uniform(1e-4, 0.3, nr)
    return rows, qs, k, v, vn, core, ncore, smax, dtil, float(vn.max(initial=0.0)), nfin, beta


def _outputs(nr, dv):
    # NaN sentinels: rows a kernel must not write (ncore < 0, except Z) stay NaN in every kernel
    return (np.full((nr, dv), np.nan), np.full(nr, np.nan), np.full(nr, np.nan), np.full(nr, np.nan),
            np.full(nr, -5, dtype=np.int64))


def _run(fn, args, threshold, dv, numpy_ref=False):
    o = _outputs(len(args[0]), dv)
    if numpy_ref:
        fn(*args[:12], threshold, None, *o)
    else:
        fn(*args[:12], bool(threshold), *o)
    return o


def _margin(args, threshold):
    """Smallest relative distance of a core weight to its row's drop threshold (inf without threshold)."""
    rows, qs, k, v, vn, core, ncore, smax, dtil, vmax, nfin, beta = args
    best = np.inf
    if not threshold:
        return best
    for r in range(len(rows)):
        c = int(ncore[r])
        if c <= 0:
            continue
        s = k[core[r, :c]] @ qs[rows[r]]
        w = np.exp(s - s.max())
        dd = dtil[r] * np.exp(smax[r] - s.max()) * (1 + 1e-12) if nfin[r] > c else 0.0
        theta = max(beta[r] * w.sum() - dd, 0.0) / ((1 + beta[r]) * c)
        if theta > 0:
            best = min(best, float(np.min(np.abs(w - theta)) / theta))
    return best


def _agree(a, b, ncore, vmax, rel=1e-13):
    """Outputs ``a`` and ``b`` of two kernels agree up to rounding of reordered sums (``rel`` per key of the
    largest core), with identical supports and flags."""
    out_a, Z_a, D_a, VD_a, sp_a = a
    out_b, Z_b, D_b, VD_b, sp_b = b
    cmax = max(int(np.max(ncore, initial=0)), 1)
    tol = rel * cmax
    scr = ncore >= 0
    # rows not screened: only Z = -1 written
    assert np.array_equal(Z_a[~scr], np.full((~scr).sum(), -1.0)) and np.array_equal(Z_b[~scr], Z_a[~scr])
    for arr in (out_a, D_a, VD_a, out_b, D_b, VD_b):
        assert np.all(np.isnan(arr[~scr]))
    assert np.all(sp_a[~scr] == -5) and np.all(sp_b[~scr] == -5)
    assert np.array_equal(sp_a[scr], sp_b[scr])
    assert np.all(Z_a[scr] >= 0) and np.all(Z_b[scr] >= 0)
    np.testing.assert_allclose(Z_b[scr], Z_a[scr], rtol=tol, atol=0)
    np.testing.assert_allclose(D_b[scr], D_a[scr], rtol=tol, atol=1e-300)
    np.testing.assert_array_equal(VD_b[scr], VD_a[scr])  # maxima of the same values
    np.testing.assert_allclose(out_b[scr], out_a[scr], rtol=0, atol=tol * max(vmax, 1e-300))


def _check_all(args, threshold, dv, rel=1e-13):
    """finish_rows_by_key agrees with the NumPy reference and with finish_rows."""
    ref = _run(_finish_numpy, args, threshold, dv, numpy_ref=True)
    walk = _run(finish_rows, args, threshold, dv)
    byk = _run(finish_rows_by_key, args, threshold, dv)
    _agree(ref, byk, args[6], args[9], rel)
    _agree(walk, byk, args[6], args[9], rel)
    return byk


@pytest.mark.parametrize("threshold", [False, True])
@pytest.mark.parametrize("sort", [True, False])
def test_random_cores_varied_sizes(threshold, sort):
    sizes = [-1, 0, 1, 2, 5, 17, 64, 100, 3, -1, 0, 40, 250, 7]
    args = _case(1, 300, 16, 5, sizes, sort=sort)
    assert _margin(args, threshold) > 1e-9
    out, Z, D, VD, sp = _check_all(args, threshold, 5)
    scr = np.asarray(sizes) > 0
    assert np.all(sp[scr] >= 1) and np.all(sp[scr] <= np.asarray(sizes)[scr])
    if threshold:
        assert np.any(sp[scr] < np.asarray(sizes)[scr])  # the key-level threshold dropped some keys


@pytest.mark.parametrize("threshold", [False, True])
def test_rows_sharing_keys_and_a_key_of_every_row(threshold):
    n = 500
    rng = np.random.default_rng(3)
    shared = rng.choice(n, 60, replace=False)
    sizes = [30, 60, 45, -1, 12, 0, 60, 59, 2, 1]
    args = _case(4, n, 8, 3, sizes, shared=shared, nq=4)  # few queries: rows repeat queries
    core, ncore = args[5], args[6]
    # one key every screened row needs: force shared[0] into every nonempty core
    for r in range(len(sizes)):
        c = int(ncore[r])
        if c > 0 and shared[0] not in core[r, :c]:
            core[r, 0] = shared[0]
    assert _margin(args, threshold) > 1e-9
    _check_all(args, threshold, 3)


@pytest.mark.parametrize("threshold", [False, True])
def test_dense_and_sparse_key_walks(threshold):
    # most keys needed (the passes stream over every key) and very few (only the needed keys are visited)
    n = 400
    dense_args = _case(5, n, 12, 4, [int(0.8 * n)] * 6 + [-1, 0], full_frac=0.3)
    assert pair_count(dense_args[6]) > 0 and len(np.unique(dense_args[5][dense_args[6] > 0])) >= R.DENSE_KEYS * n
    sparse_args = _case(6, 50_000, 12, 4, [3, 1, 2, -1, 4], full_frac=0.3)
    for args in (dense_args, sparse_args):
        assume_ok = _margin(args, threshold) > 1e-9
        assert assume_ok
        _check_all(args, threshold, 4, rel=1e-13)


@pytest.mark.parametrize("nfin_extra", [0, 1, 10_000])
def test_nfin_equal_or_above_ncore(nfin_extra):
    # nfin == ncore: nothing was left out by the screen (D only from thresholded keys, VD from them);
    # nfin > ncore: the screen's bound dtil enters D, and VD starts at vmax
    args = list(_case(7, 200, 6, 2, [10, 50, 1, 0, -1, 33]))
    args[10] = np.maximum(args[6], 0) + nfin_extra
    args = tuple(args)
    for threshold in (False, True):
        assert _margin(args, threshold) > 1e-9
        out, Z, D, VD, sp = _check_all(args, threshold, 2)
        scr = args[6] > 0
        if nfin_extra:
            assert np.all(D[scr] > 0) and np.all(VD[scr] == args[9])
        elif not threshold:
            assert np.all(D[scr] == 0) and np.all(VD[scr] == 0) and np.array_equal(sp[scr], args[6][scr])


def test_tiny_dimensions():
    for n, d, dv, sizes in [(1, 1, 1, [1, 1, 0, -1, 1]), (1, 5, 1, [1, -1]), (30, 1, 7, [30, 4, 0, 1]),
                            (30, 7, 1, [29, 30, 2, -1]), (1, 1, 1, [-1, 0])]:
        args = _case(8 + n + d, n, d, dv, sizes)
        for threshold in (False, True):
            assume_ok = _margin(args, threshold) > 1e-9
            assert assume_ok
            _check_all(args, threshold, dv)


def test_no_rows_and_all_unscreened():
    args = _case(9, 10, 3, 2, [-1, -1, -1])
    for threshold in (False, True):
        _check_all(args, threshold, 2)
    empty = (np.zeros(0, dtype=np.int64), np.ones((1, 3)), np.ones((10, 3)), np.ones((10, 2)), np.ones(10),
             np.zeros((0, 4), dtype=np.int32), np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), 1.0,
             np.zeros(0, dtype=np.int64), np.zeros(0))
    finish_rows_by_key(*empty, True, *_outputs(0, 2))  # nothing to do, nothing written


def test_int64_core_and_exact_values():
    # int64 key indices; weights that are exact in float64 (scores 0 and -log 2 ... ) give identical sums
    args = list(_case(10, 100, 4, 3, [5, 9, -1, 0, 100], idx=np.int64))
    _check_all(tuple(args), True, 3)
    # all scores equal (q = 0): every weight exactly 1, every sum exact in any order
    args[1] = np.zeros_like(args[1])
    args[7] = np.zeros(len(args[0]))
    args[10] = np.maximum(args[6], 0)  # nothing left out: no dtil term
    args = tuple(args)
    ref = _run(_finish_numpy, args, False, 3, numpy_ref=True)
    byk = _run(finish_rows_by_key, args, False, 3)
    scr = args[6] > 0
    assert np.array_equal(byk[1][scr], args[6][scr].astype(float))  # Z = number of keys, exactly
    assert np.array_equal(byk[1][scr], ref[1][scr]) and np.array_equal(byk[4][scr], ref[4][scr])
    for r in np.flatnonzero(scr):
        c = int(args[6][r])
        mean = args[3][args[5][r, :c]].mean(axis=0)
        np.testing.assert_allclose(byk[0][r], mean, rtol=0, atol=1e-14 * c)


@given(st.integers(0, 10**6), st.integers(1, 60), st.integers(1, 9), st.integers(1, 5),
       st.lists(st.integers(-1, 60), min_size=1, max_size=12), st.booleans(), st.booleans(), st.booleans())
@settings(max_examples=80, deadline=None)
def test_hypothesis_agreement(seed, n, d, dv, sizes, threshold, sort, shared):
    sizes = [min(c, n) for c in sizes]
    pool = np.arange(min(n, 8)) if shared else None
    if pool is not None:
        sizes = [min(c, len(pool)) for c in sizes]
    args = _case(seed, n, d, dv, sizes, sort=sort, shared=pool, temp=2.0)
    assume(_margin(args, threshold) > 1e-9)
    _check_all(args, threshold, dv)


@pytest.mark.parametrize("n, sizes", [(50, [10, -1, 0, 50, 7, 33]),  # many pairs per key: counting sort
                                      (100_000, [3, -1, 0, 5, 1]),  # few: comparison sort
                                      (100_000, [-1, 0])])  # none
def test_pairs_ordered_by_key_then_row(n, sizes):
    args = _case(11, n, 2, 1, sizes, shared=np.arange(min(n, 60)), sort=False)
    core, ncore = args[5], args[6]
    prow, ukeys, ustart, nu, npairs = R._by_key(core, ncore, n)
    pairs = sorted((int(core[r, t]), r) for r in range(len(sizes)) for t in range(max(int(ncore[r]), 0)))
    assert npairs == len(pairs) == pair_count(ncore)
    got = [(int(ukeys[i]), int(prow[p])) for i in range(nu) for p in range(ustart[i], ustart[i + 1])]
    assert got == pairs
    assert list(ukeys[:nu]) == sorted({j for j, _ in pairs}) and ustart[nu] == npairs


def test_repeated_key_in_a_core_counts_twice_as_in_finish_rows():
    # not produced by the screen, but the contract is the reference's: a repeated key is two pairs
    args = list(_case(12, 40, 5, 3, [6, 4, -1, 9]))
    core = args[5]
    core[0, 1] = core[0, 0]
    core[3, 5] = core[3, 2]
    core[3, 8] = core[3, 2]
    args = tuple(args)
    for threshold in (False, True):
        assert _margin(args, threshold) > 1e-9
        _check_all(args, threshold, 3)
