"""Compiled executor of a whole max-plus contraction plan (the NumPy float64 fast path of :func:`contract`).

A plan (built by :mod:`tropix.tn.contract`) lives in one flat float64 *arena*: cell 0 holds the
tropical one (0.0, count 1), then the operands one after another, then the intermediates at offsets
fixed when the plan was built.  Every step is

    out[o] = max_c  V[a + offA(o) + conA(c)] + V[b + offB(o) + conB(c)]

with ``o`` running row-major over the step's output axes (adjacent axes merged whenever their strides
allow) and ``c`` over the enumerated summed index values.  A single-operand reduction points ``b`` at
cell 0 with zero strides.  Min-plus is run exactly as ``-maxplus(-A, -B)`` (IEEE negation is exact),
so only max-plus is compiled.  With ``count`` the parallel arena ``C`` carries the multiplicities:
``C[o] = Σ_{c attaining the max} C[..] * C[..]``.

``steps`` has one row per step: ``a, b, out, ax_begin, ax_end, n_inner, stride_a, stride_b, con_begin,
con_end`` (all unsigned): the outer axes are ``axes[ax_begin:ax_end]`` (``dim, stride_a, stride_b``), the
innermost output axis is given inline (the plan makes its A stride nonzero whenever its B stride is), and
``cons[con_begin:con_end]`` are the (A, B) offsets of the summed values.  Short inner runs and counting
use one scalar loop (summed values innermost); otherwise each summed value is one sweep over the
output run, by small compiled loops over contiguous or strided views, with the B side a scalar when its
stride is zero (a tiny operand against a big one) and a single fused sweep for exactly two summed values.

This module imports numba; :mod:`tropix.tn.contract` imports it only on the first fast-path
contraction, and compiled code is kept in numba's on-disk cache (the functions live at module level so
that the cache is found again by the next process).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["run_plan"]

# all index arithmetic is unsigned: NumPy-style negative-index wraparound is then provably absent and
# the inner loops compile without a branch per access
ZERO = np.uint64(0)
ONE = np.uint64(1)
TWO = np.uint64(2)


@njit(cache=True, boundscheck=False)
def two(O, A0, A1, s0, s1):  # pragma: no cover - compiled
    for k in range(O.shape[0]):
        x = A0[k] + s0
        y = A1[k] + s1
        O[k] = x if x > y else y


@njit(cache=True, boundscheck=False)
def two_interleaved(O, A, s0, s1):  # pragma: no cover - compiled
    for k in range(O.shape[0]):
        x = A[2 * k] + s0
        y = A[2 * k + 1] + s1
        O[k] = x if x > y else y


@njit(cache=True, boundscheck=False)
def acc_scalar(O, A, s, first):  # pragma: no cover - compiled
    if first:
        for k in range(O.shape[0]):
            O[k] = A[k] + s
    else:
        for k in range(O.shape[0]):
            x = A[k] + s
            c = O[k]
            O[k] = x if x > c else c


@njit(cache=True, boundscheck=False)
def acc_vector(O, A, B, first):  # pragma: no cover - compiled
    if first:
        for k in range(O.shape[0]):
            O[k] = A[k] + B[k]
    else:
        for k in range(O.shape[0]):
            x = A[k] + B[k]
            c = O[k]
            O[k] = x if x > c else c


@njit(cache=True, boundscheck=False)
def acc_scalar_count(O, OC, A, CA, s, cs, first):  # pragma: no cover - compiled
    for k in range(O.shape[0]):
        x = A[k] + s
        if first:
            O[k] = x
            OC[k] = CA[k] * cs
        else:
            c = O[k]
            if x > c:
                O[k] = x
                OC[k] = CA[k] * cs
            elif x == c:
                OC[k] += CA[k] * cs


@njit(cache=True, boundscheck=False)
def acc_vector_count(O, OC, A, CA, B, CB, first):  # pragma: no cover - compiled
    for k in range(O.shape[0]):
        x = A[k] + B[k]
        if first:
            O[k] = x
            OC[k] = CA[k] * CB[k]
        else:
            c = O[k]
            if x > c:
                O[k] = x
                OC[k] = CA[k] * CB[k]
            elif x == c:
                OC[k] += CA[k] * CB[k]


@njit(cache=True, boundscheck=False)
def run_plan(V, C, steps, axes, cons, count, max_outer):  # pragma: no cover - compiled
    idx = np.zeros(max(1, max_outer), np.uint64)
    for s in range(steps.shape[0]):
        a0 = steps[s, 0]
        b0 = steps[s, 1]
        o0 = steps[s, 2]
        x0 = steps[s, 3]
        nax = steps[s, 4] - x0
        nin = steps[s, 5]
        ia = steps[s, 6]
        ib = steps[s, 7]
        c0 = steps[s, 8]
        c1 = steps[s, 9]
        ncon = c1 - c0
        nouter = ONE
        for q in range(nax):
            nouter *= axes[x0 + q, 0]
            idx[q] = ZERO
        pa = a0
        pb = b0
        po = o0
        ea = (nin - ONE) * ia + ONE
        eb = (nin - ONE) * ib + ONE
        simple = nin < 8
        for _t in range(nouter):
            if simple:
                for k in range(nin):
                    qa = pa + k * ia
                    qb = pb + k * ib
                    best = V[qa + cons[c0, 0]] + V[qb + cons[c0, 1]]
                    if count:
                        cnt = C[qa + cons[c0, 0]] * C[qb + cons[c0, 1]]
                        for j in range(c0 + ONE, c1):
                            x = V[qa + cons[j, 0]] + V[qb + cons[j, 1]]
                            if x > best:
                                best = x
                                cnt = C[qa + cons[j, 0]] * C[qb + cons[j, 1]]
                            elif x == best:
                                cnt += C[qa + cons[j, 0]] * C[qb + cons[j, 1]]
                        C[po + k] = cnt
                    else:
                        for j in range(c0 + ONE, c1):
                            x = V[qa + cons[j, 0]] + V[qb + cons[j, 1]]
                            best = x if x > best else best
                    V[po + k] = best
            else:
                O = V[po : po + nin]
                if count:
                    OC = C[po : po + nin]
                    for j in range(c0, c1):
                        qa = pa + cons[j, 0]
                        qb = pb + cons[j, 1]
                        if ib == ZERO:
                            acc_scalar_count(O, OC, V[qa : qa + ea : ia], C[qa : qa + ea : ia], V[qb], C[qb], j == c0)
                        else:
                            acc_vector_count(O, OC, V[qa : qa + ea : ia], C[qa : qa + ea : ia],
                                             V[qb : qb + eb : ib], C[qb : qb + eb : ib], j == c0)
                elif ib == ZERO and ncon == TWO:
                    qa0 = pa + cons[c0, 0]
                    qa1 = pa + cons[c0 + ONE, 0]
                    s0 = V[pb + cons[c0, 1]]
                    s1 = V[pb + cons[c0 + ONE, 1]]
                    if ia == ONE:
                        two(O, V[qa0 : qa0 + nin], V[qa1 : qa1 + nin], s0, s1)
                    elif ia == TWO and qa1 == qa0 + ONE:  # the summed index is the innermost one of A
                        two_interleaved(O, V[qa0 : qa0 + TWO * nin], s0, s1)
                    else:
                        two(O, V[qa0 : qa0 + ea : ia], V[qa1 : qa1 + ea : ia], s0, s1)
                elif ib == ZERO:
                    for j in range(c0, c1):
                        qa = pa + cons[j, 0]
                        y = V[pb + cons[j, 1]]
                        if ia == ONE:
                            acc_scalar(O, V[qa : qa + nin], y, j == c0)
                        else:
                            acc_scalar(O, V[qa : qa + ea : ia], y, j == c0)
                else:
                    for j in range(c0, c1):
                        qa = pa + cons[j, 0]
                        qb = pb + cons[j, 1]
                        if ia == ONE and ib == ONE:
                            acc_vector(O, V[qa : qa + nin], V[qb : qb + nin], j == c0)
                        else:
                            acc_vector(O, V[qa : qa + ea : ia], V[qb : qb + eb : ib], j == c0)
            po += nin
            q = nax
            while q > ZERO:
                q -= ONE
                idx[q] += ONE
                pa += axes[x0 + q, 1]
                pb += axes[x0 + q, 2]
                if idx[q] < axes[x0 + q, 0]:
                    break
                pa -= axes[x0 + q, 1] * axes[x0 + q, 0]
                pb -= axes[x0 + q, 2] * axes[x0 + q, 0]
                idx[q] = ZERO
