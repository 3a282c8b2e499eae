"""Semiring contraction: ordinary einsum, tropical optimisation and counting, checked by brute force."""

from __future__ import annotations

import importlib
import itertools
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix import LogSemiring, MaxPlus, MinPlus
from tropix.errors import BackendMismatchError, ConventionError, NaNError, ParseError, SemiringMismatchError, ShapeError
from tropix.tn import contract, contraction_path
from tropix.tn.problems import (
    independent_set_network,
    random_couplings,
    spin_glass_energy,
    spin_glass_network,
)

NETWORKS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("abc,cd,bd->a", [(2, 3, 4), (4, 5), (3, 5)]),
    ("ab,bc,ca->", [(3, 3), (3, 3), (3, 3)]),
    ("ab,ac,ad->bcd", [(2, 3), (2, 2), (2, 4)]),  # hyperedge
    ("ij,j->ij", [(3, 4), (4,)]),
    ("ijk->ki", [(2, 3, 4)]),
    ("ij,kl->ijkl", [(2, 2), (3, 1)]),
    # one tiny operand against a big one: the slicing path (with and without a summed index)
    ("abcd,bc->ad", [(3, 4, 5, 6), (4, 5)]),
    ("abcd,e->eabcd", [(4, 4, 4, 4), (3,)]),
    ("abcd,db->abcd", [(4, 4, 4, 4), (4, 4)]),
    # a mid-sized operand: the broadcast path
    ("abc,bc->a", [(2, 10, 10), (10, 10)]),
    ("abc,bcd->ad", [(2, 10, 10), (10, 10, 2)]),
    # a genuine matrix product (unbatched and batched): the matmul path
    ("ij,jk->ik", [(20, 30), (30, 25)]),
    ("bij,bjk->bik", [(3, 10, 12), (3, 12, 10)]),
]


def _brute(sub, ops, reduce, combine):
    lhs, out = sub.split("->")
    terms = lhs.split(",")
    idx = sorted(set("".join(terms)))
    size = {}
    for t, op in zip(terms, ops):
        size.update(dict(zip(t, op.shape)))
    res = {}
    for vals in itertools.product(*[range(size[c]) for c in idx]):
        a = dict(zip(idx, vals))
        v = combine([op[tuple(a[c] for c in t)] for t, op in zip(terms, ops)])
        key = tuple(a[c] for c in out)
        res[key] = v if key not in res else reduce(res[key], v)
    arr = np.empty(tuple(size[c] for c in out), dtype=object)
    for k, v in res.items():
        arr[k] = v
    return arr


@pytest.mark.parametrize("sub,shapes", NETWORKS)
@pytest.mark.parametrize("semiring", [None, MaxPlus, MinPlus])
def test_matches_brute_force(backend, sub, shapes, semiring):
    rng = np.random.default_rng(len(sub))
    ops = [rng.integers(-3, 4, size=s).astype(np.float64) for s in shapes]
    got = to_np(contract(sub, *[backend(o) for o in ops], semiring=semiring))
    if semiring is None:
        ref = np.einsum(sub, *ops)
    elif semiring is MaxPlus:
        ref = _brute(sub, ops, max, sum).astype(float)
    else:
        ref = _brute(sub, ops, min, sum).astype(float)
    assert np.allclose(got, ref)


@pytest.mark.parametrize("optimize", ["greedy", "optimal", "dp", "sequential", "branch-2"])
def test_path_optimisers_agree(optimize):
    rng = np.random.default_rng(0)
    sub = "ab,bc,cd,de,ea,ac->"
    ops = [rng.standard_normal((3, 3)) for _ in range(6)]
    ref = _brute(sub, ops, max, sum).astype(float)
    assert np.isclose(contract(sub, *ops, semiring=MaxPlus, optimize=optimize), ref)
    assert np.isclose(contract(sub, *ops, optimize=optimize), np.einsum(sub, *ops))


def test_exact_inputs_stay_exact():
    A = np.array([[Fraction(1, 3), 2], [0, Fraction(-1, 2)]], dtype=object)
    v = contract("ij,jk->ik", A, A, semiring=MaxPlus)
    assert v.dtype == object and v[0, 1] == Fraction(7, 3) and v[1, 0] == Fraction(1, 3) and v[0, 0] == 2
    r = contract("ij,jk->ik", A, A)
    assert r[0, 0] == Fraction(1, 9)
    assert contract("ij,jk->", np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]]), semiring=MinPlus) == 2
    # exact operands on the broadcast and tiny-operand paths, reduced down to a scalar
    rng = np.random.default_rng(0)
    big = np.array([Fraction(int(x), 3) for x in rng.integers(-5, 5, size=400)], dtype=object).reshape(4, 10, 10)
    vec = np.array([Fraction(int(x), 5) for x in rng.integers(-5, 5, size=20)], dtype=object).reshape(10, 2)
    for ops in ((big, vec), (big[:2, :2, :2].reshape(2, 2, 2).repeat(32, axis=0)[:64], vec[:2])):
        sub = "abc,cd->"
        a, b = ops
        vals = [a[i, j, k] + b[k, m] for i, j, k, m in np.ndindex(a.shape + b.shape[1:])]
        v, c = contract(sub, *ops, semiring=MaxPlus, count=True)
        assert v == max(vals) and isinstance(v, Fraction | int) and c == vals.count(max(vals))
        assert contract(sub, *ops) == np.einsum(sub, *[o.astype(object) for o in ops])


def _brute_count(sub, ops, sense):
    lhs, out = sub.split("->")
    terms = lhs.split(",")
    idx = sorted(set("".join(terms)))
    size = {}
    for t, op in zip(terms, ops):
        size.update(dict(zip(t, op.shape)))
    best, cnt = {}, {}
    for vals in itertools.product(*[range(size[c]) for c in idx]):
        a = dict(zip(idx, vals))
        v = sum(op[tuple(a[c] for c in t)] for t, op in zip(terms, ops))
        key = tuple(a[c] for c in out)
        if key not in best or (v - best[key]) * sense > 0:
            best[key], cnt[key] = v, 1
        elif v == best[key]:
            cnt[key] += 1
    shape = tuple(size[c] for c in out)
    V, C = np.empty(shape), np.empty(shape)
    for k in best:
        V[k], C[k] = best[k], cnt[k]
    return V, C


@pytest.mark.parametrize("sub,shapes", NETWORKS)
@pytest.mark.parametrize("semiring", [MaxPlus, MinPlus])
def test_counts_match_brute_force(backend, sub, shapes, semiring):
    rng = np.random.default_rng(len(sub) + 1)
    ops = [rng.integers(0, 3, size=s).astype(np.float64) for s in shapes]  # many ties
    v, c = contract(sub, *[backend(o) for o in ops], semiring=semiring, count=True)
    V, C = _brute_count(sub, ops, semiring.sense)
    assert np.array_equal(to_np(v), V) and np.array_equal(to_np(c), C)


@pytest.mark.parametrize("sub,shapes", NETWORKS)
def test_assignment_is_optimal(sub, shapes):
    rng = np.random.default_rng(len(sub) + 2)
    ops = [rng.standard_normal(s) for s in shapes]
    v, a = contract(sub, *ops, semiring=MaxPlus, assignment=True)
    lhs, out = sub.split("->")
    total = sum(op[tuple(a[c] for c in t)] for t, op in zip(lhs.split(","), ops))
    best = np.max(np.asarray(v))
    assert np.isclose(total, best)
    assert set(a) == set(lhs.replace(",", ""))


def test_tropical_zero_is_legitimate():
    A = np.array([[0.0, -np.inf], [-np.inf, 0.0]])
    assert np.array_equal(contract("ij,jk->ik", A, A, semiring=MaxPlus), A)
    v, c = contract("ij,jk->", A, A, semiring=MaxPlus, count=True)
    assert v == 0.0 and c == 2


def test_log_semiring():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    got = contract("ij,jk->ik", A, B, semiring=LogSemiring(0.7))
    ref = 0.7 * np.log(np.exp(A / 0.7) @ np.exp(B / 0.7))
    assert np.allclose(got, ref)


def _all_spins(L, M):
    n = L * M
    s = ((np.arange(2**n)[:, None] >> np.arange(n)[::-1]) & 1) * 2 - 1
    return s.reshape(-1, L, M)


@settings(max_examples=25)
@given(st.integers(1, 4), st.integers(2, 4), st.integers(0, 10**6), st.booleans())
def test_spin_glass_ground_state_and_degeneracy(L, M, seed, field):
    Jh, Jv = random_couplings(L, M, seed=seed)
    h = np.random.default_rng(seed).choice([-1.0, 0.0, 1.0], size=(L, M)) if field else None
    sub, ops, path = spin_glass_network(Jh, Jv, h)
    E = spin_glass_energy(_all_spins(L, M), Jh, Jv, h)
    e0, deg, conf = contract(sub, *ops, semiring=MinPlus, optimize=path, count=True, assignment=True)
    assert e0 == E.min() and deg == int((E == E.min()).sum())
    spins = np.array([2 * conf[k] - 1 for k in sorted(conf, key=lambda c: sub.split("->")[0].replace(",", "").index(c))])
    from opt_einsum import get_symbol

    s = np.array([[2 * conf[get_symbol(r * M + c)] - 1 for c in range(M)] for r in range(L)])
    assert spin_glass_energy(s, Jh, Jv, h) == e0
    assert spins.size == L * M
    # the same optimum from opt_einsum's own path and from max-plus of the negated network
    assert contract(sub, *ops, semiring=MinPlus, optimize="greedy") == e0
    assert contract(sub, *[-o for o in ops], semiring=MaxPlus, optimize=path) == -e0


def test_spin_glass_5x5_brute_force():
    Jh, Jv = random_couplings(5, seed=2026)
    sub, ops, path = spin_glass_network(Jh, Jv)
    e0, deg = contract(sub, *ops, semiring=MinPlus, optimize=path, count=True)
    # exhaustive over all 2^25 states: E = E(top row) + E(rows 1-4) + coupling(top row, row 1)
    best, cnt = np.inf, 0
    rest = _all_spins(4, 5)
    E_rest = spin_glass_energy(rest, Jh[1:], Jv[1:])
    row1 = rest[:, 0, :]
    for top in _all_spins(1, 5):
        E = E_rest + spin_glass_energy(top, Jh[:1], np.zeros((0, 5))) - row1 @ (Jv[0] * top[0])
        m = E.min()
        if m < best:
            best, cnt = m, int((E == m).sum())
        elif m == best:
            cnt += int((E == m).sum())
    assert e0 == best and deg == cnt


def test_spin_glass_on_torch_and_strict(backend):
    Jh, Jv = random_couplings(3, seed=5)
    sub, ops, path = spin_glass_network(Jh, Jv)
    E = spin_glass_energy(_all_spins(3, 3), Jh, Jv)
    v, c = contract(sub, *[backend(o) for o in ops], semiring=MinPlus, optimize=path, count=True)
    assert float(to_np(v)) == E.min() and float(to_np(c)) == (E == E.min()).sum()


def _mis_brute(n, edges):
    best, cnt = -1, 0
    for mask in range(2**n):
        if any(mask >> a & 1 and mask >> b & 1 for a, b in edges):
            continue
        k = bin(mask).count("1")
        if k > best:
            best, cnt = k, 1
        elif k == best:
            cnt += 1
    return best, cnt


@settings(max_examples=30)
@given(st.integers(1, 11), st.floats(0.1, 0.7), st.integers(0, 10**6))
def test_maximum_independent_sets(n, p, seed):
    rng = np.random.default_rng(seed)
    edges = [(a, b) for a in range(n) for b in range(a + 1, n) if rng.random() < p]
    sub, ops, path = independent_set_network(n, edges)
    size, cnt, conf = contract(sub, *ops, semiring=MaxPlus, optimize=path, count=True, assignment=True)
    assert (size, cnt) == _mis_brute(n, edges)
    from opt_einsum import get_symbol

    chosen = {v for v in range(n) if conf[get_symbol(v)] == 1}
    assert len(chosen) == size and not any(a in chosen and b in chosen for a, b in edges)
    assert contract(sub, *ops, semiring=MaxPlus, optimize="greedy", count=True) == (size, cnt)


def test_contraction_path_helper():
    assert contraction_path("ab,bc,cd->ad", (2, 2), (2, 2), (2, 2), optimize="sequential") == [(0, 1), (0, 1)]
    path = contraction_path("ab,bc,cd->ad", (2, 9), (9, 9), (9, 2), optimize="optimal")
    assert sorted(i for step in path for i in step) == [0, 0, 1, 1]


def test_bad_input():
    A = np.ones((2, 3))
    with pytest.raises(ShapeError):
        contract("ij,jk->ik", A, A)
    with pytest.raises(ShapeError):
        contract("ijk->i", A)
    with pytest.raises(ParseError):
        contract("ij,jk->ik", A)
    with pytest.raises(ParseError):
        contract("ii->i", np.ones((2, 2)))
    with pytest.raises(ParseError):
        contract("ij->z", A)
    with pytest.raises(ParseError):
        contract("i...->i", A)
    with pytest.raises(BackendMismatchError):
        contract("ij,jk->ik", A, torch.ones(3, 2, dtype=torch.float64))
    with pytest.raises(SemiringMismatchError):
        contract("ij->", A, count=True)
    with pytest.raises(ConventionError):
        contract("ij->", np.array([[np.inf]]), semiring=MaxPlus)


# -- the compiled fast path (NumPy float64, tropical) against the generic path ----------------------------
_contract_mod = importlib.import_module("tropix.tn.contract")


def _generic(*args, **kw):
    _contract_mod.FAST_PATH = False
    try:
        return contract(*args, **kw)
    finally:
        _contract_mod.FAST_PATH = True


@st.composite
def _networks(draw):
    n_idx = draw(st.integers(1, 6))
    letters = "abcdef"[:n_idx]
    sizes = {}
    total = 1
    for ch in letters:
        d = draw(st.sampled_from([1, 2, 3, 4, 8, 16]))
        while total * d > 4096:
            d = max(1, d // 2)
        sizes[ch] = d
        total *= d
    n_ops = draw(st.integers(1, 4))
    terms = [draw(st.permutations(letters).map(lambda p, k=draw(st.integers(0, n_idx)): "".join(p[:k])))
             for _ in range(n_ops)]
    used = "".join(sorted(set("".join(terms))))
    out = "".join(draw(st.permutations(used).map(lambda p, k=draw(st.integers(0, len(used))): "".join(p[:k]))))
    seed = draw(st.integers(0, 2**32 - 1))
    semiring = draw(st.sampled_from([MaxPlus, MinPlus]))
    optimize = draw(st.sampled_from(["greedy", "sequential", "optimal"]))
    rng = np.random.default_rng(seed)
    ops = []
    for t in terms:
        x = rng.integers(-2, 3, size=tuple(sizes[c] for c in t)).astype(np.float64)
        x[rng.random(x.shape) < 0.15] = semiring.zero  # tropical zeros are legitimate entries
        ops.append(np.asarray(x))
    return ",".join(terms) + "->" + out, ops, semiring, optimize


@settings(max_examples=150, deadline=None)
@given(_networks())
def test_fast_path_equals_generic_path(net):
    sub, ops, semiring, optimize = net
    v, c, a = contract(sub, *ops, semiring=semiring, optimize=optimize, count=True, assignment=True)
    gv, gc = _generic(sub, *ops, semiring=semiring, optimize=optimize, count=True)
    assert np.array_equal(np.asarray(v), np.asarray(gv)) and np.array_equal(np.asarray(c), np.asarray(gc))
    assert np.array_equal(np.asarray(contract(sub, *ops, semiring=semiring, optimize=optimize)), np.asarray(gv))
    lhs, out = sub.split("->")
    best = np.max(np.asarray(v) * semiring.sense) * semiring.sense
    if np.isfinite(best):  # the assignment attains the optimum
        assert sum(op[tuple(a[ch] for ch in t)] for t, op in zip(lhs.split(","), ops)) == best


@pytest.mark.parametrize("semiring", [MaxPlus, MinPlus])
@pytest.mark.parametrize("sub,shapes", [
    ("abc,cd->abd", [(3, 16, 4), (4, 16)]),     # long contiguous runs, several summed values
    ("abc,ac->b", [(2, 32, 2), (2, 2)]),        # two summed values, small operand as scalars
    ("abc,cb->a", [(16, 16, 2), (2, 16)]),      # strided runs
    ("xab,a->xb", [(3, 2, 32), (2,)]),          # exactly two summed values, contiguous and strided
    ("xba,a->xb", [(3, 32, 2), (2,)]),
    ("xab,ab->xb", [(3, 4, 16), (4, 16)]),      # runs over both operands, contiguous and strided
    ("xab,ba->xb", [(3, 4, 16), (16, 4)]),
    ("ij,jk->ik", [(12, 40), (40, 24)]),        # a genuine matrix product
    ("ab,bc,cd,da->", [(8, 8), (8, 8), (8, 8), (8, 8)]),
])
def test_fast_path_kernel_branches(sub, shapes, semiring):
    rng = np.random.default_rng(len(sub))
    ops = [rng.integers(-3, 4, size=s).astype(np.float64) for s in shapes]
    for optimize in ("greedy", "sequential"):
        v, c = contract(sub, *ops, semiring=semiring, optimize=optimize, count=True)
        gv, gc = _generic(sub, *ops, semiring=semiring, optimize=optimize, count=True)
        V, C = _brute_count(sub, ops, semiring.sense)
        assert np.array_equal(v, V) and np.array_equal(c, C) and np.array_equal(gv, V) and np.array_equal(gc, C)
        assert np.array_equal(contract(sub, *ops, semiring=semiring, optimize=optimize), V)


def test_fast_path_bad_operands_and_plan_reuse():
    A = np.ones((2, 2))
    with pytest.raises(ConventionError):
        contract("ij,jk->", A, np.array([[0.0, np.inf], [0.0, 0.0]]), semiring=MaxPlus)
    with pytest.raises(NaNError):
        contract("ij,jk->", A, np.array([[0.0, np.nan], [0.0, 0.0]]), semiring=MinPlus)
    with pytest.raises(ParseError):
        contract("ij,jk->", A, A, semiring=MaxPlus, optimize=[(0, 5)])
    # the same network with new values reuses the cached plan and gives the new answer
    for k in range(3):
        B = A * k
        assert contract("ij,jk->ik", B, B, semiring=MaxPlus)[0, 0] == 2 * k
    # an empty index range falls back to the generic path
    assert contract("ij,jk->ik", np.ones((2, 0)), np.ones((0, 3)), semiring=MaxPlus).shape == (2, 3)


@pytest.mark.parametrize("semiring", [MaxPlus, MinPlus])
def test_matrix_product_sized_networks(semiring):
    # steps like a genuine matrix product go to the generic path (blocked tropical matmul); same answers
    rng = np.random.default_rng(3)
    A, B, c = rng.integers(-9, 9, size=(70, 80)) * 1.0, rng.integers(-9, 9, size=(80, 60)) * 1.0, rng.integers(-9, 9, size=60) * 1.0
    red = np.max if semiring is MaxPlus else np.min
    ref = red(A[:, :, None] + B[None, :, :], axis=1)
    assert np.array_equal(contract("ij,jk->ik", A, B, semiring=semiring), ref)
    v, cnt = contract("ij,jk,k->i", A, B, c, semiring=semiring, count=True)
    full = ref + c
    assert np.array_equal(v, red(full, axis=1))
    assert np.array_equal(cnt, _generic("ij,jk,k->i", A, B, c, semiring=semiring, count=True)[1])
