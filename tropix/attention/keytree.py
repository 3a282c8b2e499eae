"""A hierarchy of key blocks with ball and box bounds on scores: the geometry behind certified pruning.

Keys are split recursively (after one PCA rotation, each node is split at the largest gap of its widest
coordinate within the middle 3/4 of its keys), giving levels of contiguous blocks of the permuted keys.  Every node stores its center ``c``,
radius ``r = max |k - c|``, bounding box ``[lo, hi]``, a representative key and the largest value norm.
For a query ``q`` every key ``k`` of the node satisfies

* ball: ``q.c - |q| r  <=  q.k  <=  q.c + |q| r``,
* box:  ``q.mid - |q|.half  <=  q.k  <=  q.mid + |q|.half``  (``mid``, ``half`` of the box),

and the bounds used are the tighter of the two, widened by a floating-point slack so that they hold for
the exact scores.  Building the tree costs ``O(n d log n)`` (compiled with numba, node by node; a vectorised
NumPy build of the same tree is the fallback and the reference); pass a prebuilt tree to the attention
methods to reuse it across calls over the same key bank.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._array import asarray, to_numpy
from .._compiled import compiled
from .._repr import compact_repr
from ..errors import EmptyInputError, FloatOverflowError, NaNError, ShapeError
from ..tropical._args import check_array_dtype
from ._inputs import check_count, key_hash
from .dense import _rownorm

__all__ = ["KeyTree", "build_key_tree"]


@dataclass(frozen=True)
class KeyTree:
    """Levels of contiguous blocks over the keys permuted by ``perm`` (level 0 = root, last = leaves).

    Attributes
    ----------
    perm : ndarray
        Key order: node ``b`` of a level holds keys ``perm[starts[b]:starts[b] + count[b]]``.
    starts, count : list of ndarray
        Per level, block starts and sizes.
    parent : list of ndarray
        Per level ``l >= 1``, index of each node's parent in level ``l - 1``.
    center, radius, lo, hi : list of ndarray
        Per level, node geometry (see module docstring).
    rep : list of ndarray
        Per level, the original index of the key closest to each node center.
    kmax : float
        Largest key norm.
    fingerprint : int
        :func:`~tropix.attention._inputs.key_hash` of the keys (to recognise them).
    keys : ndarray
        The keys in tree order (read-only).

    Notes
    -----
    What is derived from the keys alone is computed once per tree and kept with it: the bounding boxes and
    bound operands of each level, the median leaf radius, and the keys as the screen's low-precision GEMM
    packs them (:func:`tropix.attention.screen.head_packed_keys`, for calls that pass the tree and screen).
    """

    perm: np.ndarray
    starts: list
    count: list
    parent: list
    center: list
    radius: list
    lo: list
    hi: list
    rep: list
    kmax: float
    n: int
    leaf: int
    fingerprint: int = None
    keys: np.ndarray = None
    _repr_fields = ("n", "depth", "leaf", "kmax", "fingerprint")
    __repr__ = compact_repr

    def matches(self, k: np.ndarray, khash: int | None = None) -> bool:
        """Whether ``k`` (original order) are the keys this tree was built from: their fingerprint
        (:func:`tropix.attention._inputs.key_hash`; ``khash`` if already computed, e.g. by validation)."""
        if k.shape != (self.n, self.center[0].shape[1]):
            return False
        return (key_hash(k) if khash is None else khash) == self.fingerprint

    def _memo(self, key, make):
        """``make()``, computed once per tree and ``key`` (a frozen dataclass: the cache lives beside its
        fields, in the instance dictionary)."""
        memo = self.__dict__.setdefault("_cache", {})
        if key not in memo:
            memo[key] = make()
        return memo[key]

    def box(self, level: int):
        """``(mid, half)``: the centres and half-widths of the bounding boxes of ``level``'s nodes (computed
        once per tree and level; read-only)."""
        def make():
            lo, hi = self.lo[level], self.hi[level]
            return _frozen((lo + hi) * 0.5), _frozen((hi - lo) * 0.5)
        return self._memo(("box", level), make)

    def bound_operands(self, level: int):
        """``(cT, boxT)``: the centres of ``level``'s nodes transposed, ``(d, nodes)``, and their boxes as one
        ``(2 d, nodes)`` operand, the centres of the boxes over their half-widths, so that
        ``[qs, |qs|] @ boxT`` is ``qs . mid + |qs| . half`` in one product (computed once per tree and level;
        C-contiguous, read-only)."""
        def make():
            mid, half = self.box(level)
            return (_frozen(np.ascontiguousarray(self.center[level].T)),
                    _frozen(np.ascontiguousarray(np.concatenate([mid, half], axis=1).T)))
        return self._memo(("operands", level), make)

    def median_leaf_radius(self) -> float:
        """The median radius of the leaf balls (computed once per tree)."""
        return self._memo("median_leaf_radius", lambda: float(np.median(self.radius[-1])))

    @property
    def depth(self) -> int:
        """Number of levels."""
        return len(self.starts)


def _frozen(a: np.ndarray) -> np.ndarray:
    """``a``, made read-only."""
    a.setflags(write=False)
    return a


def build_key_tree(k, leaf: int = 64) -> KeyTree:
    """Build the key hierarchy of a ``(n, d)`` key matrix (any library; computed in NumPy).

    After one PCA rotation every node with more than ``leaf`` keys (or with more than ``leaf // 16`` keys and
    a spread above 4x that of a typical leaf) is split at the largest gap of its widest coordinate within
    the middle 3/4 of its sorted keys; nodes that are not split are carried to the next level unchanged.
    The compiled build (numba) processes node by node; the vectorised NumPy build gives the same tree and
    runs when numba is unavailable.

    Parameters
    ----------
    k : array ``(n, d)``
        Keys (NumPy, torch, array API; converted to float64 NumPy).
    leaf : int
        Largest leaf size (except where the spread rule splits a node further).

    Returns
    -------
    KeyTree

    Raises
    ------
    ShapeError
        ``k`` is not two-dimensional.
    EmptyInputError
        No keys.
    NaNError
        A key has a NaN or infinite entry.
    FloatOverflowError
        The keys' mean, spread or node centres overflow float64 (keys near ``1e308``).

    Examples
    --------
    >>> import numpy as np
    >>> t = build_key_tree(np.random.default_rng(0).normal(size=(1000, 8)), leaf=64)
    >>> int(t.count[-1].max()) <= 64, int(t.count[-1].sum())
    (True, 1000)
    """
    k, y, leaf = _prepare(k, leaf)
    kern = _load()
    if kern is None:  # pragma: no cover - numba is a dependency
        return _build_reference(k, y, leaf)
    n, d = k.shape
    k = np.ascontiguousarray(k)
    perm, f_st, f_ct, f_par, ptr = kern.split_levels(np.ascontiguousarray(y), leaf, max(2, leaf // 16))
    tot = len(f_st)
    kp, cen, rad = np.empty((n, d)), np.zeros((tot, d)), np.zeros(tot)
    lo, hi, rep = np.empty((tot, d)), np.empty((tot, d)), np.empty(tot, dtype=np.int64)
    kmax = kern.geometry(k, perm, f_st, f_ct, f_par, ptr, kp, cen, rad, lo, hi, rep)
    _check_finite(cen, rad)
    lv = [slice(ptr[i], ptr[i + 1]) for i in range(len(ptr) - 1)]
    parents = [np.zeros(0, dtype=np.int64)] + [f_par[s] for s in lv[1:]]
    fp = key_hash(k)
    kp.setflags(write=False)
    return KeyTree(perm, [f_st[s] for s in lv], [f_ct[s] for s in lv], parents, [cen[s] for s in lv],
                   [rad[s] for s in lv], [lo[s] for s in lv], [hi[s] for s in lv], [rep[s] for s in lv],
                   float(kmax), n, leaf, fp, kp)


def _load():
    """The numba kernels (compiled or loaded from the cache on first use); ``None`` without numba."""
    return compiled("tropix.attention._keytree_numba")


def _check_finite(centers, radii):
    """Centres or radii beyond float64 (keys near 1e308) would void every bound: say so instead."""
    if not (np.all(np.isfinite(centers)) and np.all(np.isfinite(radii))):
        raise FloatOverflowError("build_key_tree: node centres or radii overflow float64 (keys near 1e308)")


_BLOCKED = 1 << 21  # keys with more entries are centred and rotated in blocks (no n x d temporary)


def _prepare(k, leaf):
    """Checked float64 keys, the rotated and rescaled coordinates the split rule works on, and the leaf size."""
    # (complex keys lost their imaginary part, strings in object arrays were parsed)
    k = np.asarray(to_numpy(check_array_dtype(asarray(k, name="k"), "build_key_tree: k")), dtype=np.float64)
    if k.ndim != 2:
        raise ShapeError(f"build_key_tree: keys must have shape (n, d), got {k.shape}")
    n, d = k.shape
    if n == 0:
        raise EmptyInputError("build_key_tree: no keys")
    if d == 0:  # (was NumPy's raw "zero-size array to reduction operation")
        raise EmptyInputError("build_key_tree: the keys have dimension 0")
    # (a leaf beyond int64 overflowed in the compiled split; any leaf >= n is one leaf)
    leaf = min(check_count(leaf, "leaf", "build_key_tree"), 2**62)
    # the split structure is scale-invariant: work with y = k - mean scaled by a power of two to entries of
    # order 1 (keys of norm 1e160 overflowed the Gram matrix and the variances; keys of 1e-160 vanished next to
    # the segment offsets of the sort keys of the reference build).  Centres and radii are computed from k.
    rotate = n > 1 and d > 1
    with np.errstate(over="ignore", invalid="ignore"):  # non-finite keys are reported below
        mu = k.mean(axis=0)
        if rotate and n * d > _BLOCKED:
            # large: principal axes from a sample of the centred keys (scaled by a power of two: eigenvectors do
            # not change), then k - mu formed and rotated in blocks of rows that stay in the cache (no n x d
            # temporary), with max |k - mu| on the way; the rotated keys are scaled at the end (exact)
            sample = (k if n <= 4096 else k[np.random.default_rng(0).choice(n, 4096, replace=False)]) - mu
            sm = max(float(sample.max()), -float(sample.min()))
            w = np.ones((d, 1))
            if np.isfinite(sm):
                sample = np.ldexp(sample, -int(np.frexp(sm)[1]))
                w = np.ascontiguousarray(np.linalg.eigh(sample.T @ sample)[1][:, ::-1][:, :16])
            y = np.empty((n, w.shape[1]))
            mx = 0.0
            for i in range(0, n, 4096):
                yb = k[i:i + 4096] - mu
                bm = max(float(yb.max()), -float(yb.min()))  # NaN if yb has a NaN
                if not np.isfinite(bm):
                    mx = bm
                    break
                mx = max(mx, bm)
                np.matmul(yb, w, out=y[i:i + 4096])
            ex = int(np.frexp(mx)[1]) if np.isfinite(mx) else 0
            y = np.ldexp(y, -ex, out=y)
        else:
            y = k - mu
            mx = max(float(y.max()), -float(y.min()))
            ex = int(np.frexp(mx)[1]) if np.isfinite(mx) else 0
            if rotate and np.isfinite(mx):
                sample = y if n <= 4096 else y[np.random.default_rng(0).choice(n, 4096, replace=False)]
                sample = np.ldexp(sample, -ex)
                _, vecs = np.linalg.eigh(sample.T @ sample)
                # scaling the rotation by 2^-ex instead of y: the same products (exact powers of two)
                y = y @ np.ldexp(vecs[:, ::-1][:, : min(d, 16)], -ex)
            else:
                y = np.ldexp(y, -ex)
    if not np.isfinite(mx):  # (max / min propagate NaN)
        if not np.all(np.isfinite(k)):
            raise NaNError("build_key_tree: keys contain NaN or inf")
        raise FloatOverflowError("build_key_tree: the keys' mean or spread overflows float64 (|k| near 1e308)")
    return k, y, leaf


def _build_key_tree_reference(k, leaf: int = 64) -> KeyTree:
    """The vectorised NumPy build (one global sort per level): the reference the compiled build is tested against."""
    k, y, leaf = _prepare(k, leaf)
    return _build_reference(k, y, leaf)


def _build_reference(k, y, leaf):
    n, d = k.shape
    perm = np.arange(n)
    yT = np.ascontiguousarray(y.T)  # (d', n): reductions along the last axis are fast
    starts_levels = [np.array([0])]
    counts_levels = [np.array([n])]
    cols = np.arange(n)
    min_leaf = max(2, leaf // 16)
    fat = np.inf  # nodes of at most `leaf` keys are still split while their spread exceeds `fat`
    while True:
        st, ct = starts_levels[-1], counts_levels[-1]
        seg = np.repeat(np.arange(len(st)), ct)
        s1 = np.add.reduceat(yT, st, axis=1)
        s2 = np.add.reduceat(yT * yT, st, axis=1)
        var = s2 / ct[None, :] - (s1 / ct[None, :]) ** 2
        vmx = var.max(axis=0)
        small = ct <= leaf
        if np.isinf(fat) and small.sum() >= max(4, len(ct) // 2):
            fat = 16.0 * float(np.median(vmx[small]))  # 4x the typical spread of a leaf
        split = (ct > leaf) | ((ct > min_leaf) & (vmx > fat))
        if not split.any():
            break
        axis = np.argmax(var, axis=0)
        val = yT[axis[seg], cols]
        span = float(np.ptp(val)) + 1.0
        order = np.argsort(seg * (2.0 * span) + (val - val.min()), kind="stable")
        perm = perm[order]
        yT = np.take(yT, order, axis=1)
        # split point: the largest gap of the sorted coordinate within the middle 3/4 of the node
        # (clusters stay whole), which keeps the two sides balanced within a factor 7
        sval = val[order]
        gap = np.empty(n)
        gap[:-1] = np.diff(sval)
        gap[-1] = -1.0
        posn = cols - st[seg]  # position inside the node (segments are unchanged by the sort)
        ok = (posn >= ct[seg] // 8) & (posn < (7 * ct[seg]) // 8) & (posn < ct[seg] - 1)
        gap = np.where(ok, gap, -1.0)
        best = np.maximum.reduceat(gap, st)
        hit = np.flatnonzero((gap == best[seg]) & ok)
        first = np.full(len(st), -1)
        hs = seg[hit]
        uniq, fi = np.unique(hs, return_index=True)
        first[uniq] = hit[fi]
        half = np.where(first >= 0, first - st + 1, ct // 2)
        half = np.clip(half, 1, np.maximum(ct - 1, 1))
        new_st = np.where(split[:, None], np.stack([st, st + half], axis=1), np.stack([st, st], axis=1))
        new_ct = np.where(split[:, None], np.stack([half, ct - half], axis=1),
                          np.stack([ct, np.zeros_like(ct)], axis=1))
        keep = new_ct.ravel() > 0
        starts_levels.append(new_st.ravel()[keep])
        counts_levels.append(new_ct.ravel()[keep])
    kpT = np.ascontiguousarray(k[perm].T)
    knorm = _rownorm(kpT.T)  # norms, distances and radii scaled: tiny keys must not get radius 0
    nl = len(starts_levels)
    centers, radii, los, his, reps = [None] * nl, [None] * nl, [None] * nl, [None] * nl, [None] * nl
    # leaves: exact statistics
    st, ct = starts_levels[-1], counts_levels[-1]
    seg = np.repeat(np.arange(len(st)), ct)
    cT = np.add.reduceat(kpT, st, axis=1) / ct[None, :]
    diff = kpT - np.take(cT, seg, axis=1)
    dist = _rownorm(diff.T)
    centers[-1] = np.ascontiguousarray(cT.T)
    radii[-1] = np.maximum.reduceat(dist, st) * (1 + 4 * (d + 4) * 2.0**-53)
    los[-1] = np.ascontiguousarray(np.minimum.reduceat(kpT, st, axis=1).T)
    his[-1] = np.ascontiguousarray(np.maximum.reduceat(kpT, st, axis=1).T)
    o = np.lexsort((dist, seg))
    reps[-1] = perm[o[np.searchsorted(seg[o], np.arange(len(st)))]]
    parents = [np.zeros(0, dtype=np.int64)]
    for lvl in range(1, nl):
        parents.append(np.searchsorted(starts_levels[lvl - 1], starts_levels[lvl], side="right") - 1)
    # inner nodes bottom-up: weighted mean centers, triangle-inequality radii, box hulls
    for lvl in range(nl - 2, -1, -1):
        par = parents[lvl + 1]
        cc, cr, cn = centers[lvl + 1], radii[lvl + 1], counts_levels[lvl + 1].astype(np.float64)
        npar = len(starts_levels[lvl])
        c = np.zeros((npar, d))
        np.add.at(c, par, cc * cn[:, None])
        c /= counts_levels[lvl][:, None]
        reach = _rownorm(cc - c[par]) + cr
        r = np.zeros(npar)
        np.maximum.at(r, par, reach)
        lo = np.full((npar, d), np.inf)
        hi = np.full((npar, d), -np.inf)
        np.minimum.at(lo, par, los[lvl + 1])
        np.maximum.at(hi, par, his[lvl + 1])
        centers[lvl], radii[lvl] = c, r * (1 + 4 * (d + 4) * 2.0**-53)
        los[lvl], his[lvl] = lo, hi
        crep = reps[lvl + 1]
        dd = _rownorm(k[crep] - c[par])
        oo = np.lexsort((dd, par))
        reps[lvl] = crep[oo[np.searchsorted(par[oo], np.arange(npar))]]
    _check_finite(np.concatenate(centers), np.concatenate(radii))
    fp = key_hash(k)
    kp = np.ascontiguousarray(kpT.T)
    kp.setflags(write=False)
    return KeyTree(perm, starts_levels, counts_levels, parents, centers, radii, los, his, reps,
                   float(knorm.max()), n, leaf, fp, kp)


def score_bounds(tree: KeyTree, level: int, qs: np.ndarray, nodes=None, lower: bool = False, centers: bool = False):
    """Upper (and optionally lower) bounds of ``qs . k`` over the keys of each node of ``level``.

    ``qs`` are already-scaled queries ``(g, d)``; returns ``(g, len(nodes))`` arrays (bounds hold for the
    exact products; a slack for rounding is included).
    """
    sel = slice(None) if nodes is None else nodes
    c = tree.center[level][sel]
    r = tree.radius[level][sel]
    mid, half = tree.box(level)
    if nodes is not None:
        mid, half = mid[sel], half[sel]
    qn = _rownorm(qs)
    slack = _slack(tree, qs, qn)[:, None]
    qc = qs @ c.T
    qm = qs @ mid.T
    aq = np.abs(qs) @ half.T
    up = np.minimum(qc + qn[:, None] * r[None, :], qm + aq) + slack
    if centers:
        return up, qc
    if not lower:
        return up
    low = np.maximum(qc - qn[:, None] * r[None, :], qm - aq) - slack
    return up, low


def _slack(tree: KeyTree, qs: np.ndarray, qn: np.ndarray) -> np.ndarray:
    """Per query the rounding slack of :func:`score_bounds` (the float64 products and sums of its bounds)."""
    u = 2.0**-53
    return (16.0 * (qs.shape[1] + 4) * u * (tree.kmax + 1e-300) + 1e-300) * qn * 4.0


def upper_bounds_first(tree: KeyTree, level: int, qs: np.ndarray):
    """``(up, first, qc)``: the upper bounds of :func:`score_bounds` over every node of ``level`` (the same
    values) and, per query, the node of the largest bound and the node whose centre scores best
    (``first[i] = (argmax up[i], argmax qc[i])``, ``qc = qs @ centres.T``).  The box bound's two products
    are one (:meth:`KeyTree.bound_operands`: a sum of ``2 d`` terms instead of two of ``d`` and their sum,
    whose rounding the same slack covers: at most ``2 d u |qs|_1 max|k|`` either way), and the element-wise
    part and both maxima take one compiled pass (:func:`tropix.attention._keytree_numba.upper_first`;
    without numba :func:`score_bounds` and NumPy)."""
    kern = _load()
    if kern is None:
        up, qc = score_bounds(tree, level, qs, centers=True)
        return up, np.stack([np.argmax(up, axis=1), np.argmax(qc, axis=1)], axis=1), qc
    cT, boxT = tree.bound_operands(level)
    qn = _rownorm(qs)
    qc = qs @ cT
    box = np.concatenate([qs, np.abs(qs)], axis=1) @ boxT
    up = np.empty_like(qc)
    first = np.empty((qs.shape[0], 2), dtype=np.int64)
    kern.upper_first(qc, box, qn, tree.radius[level], _slack(tree, qs, qn), up, first)
    return up, first, qc
