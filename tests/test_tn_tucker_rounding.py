"""Tucker (HOSVD / HOOI / shared factors): the reported ``error_bound`` is a rigorous a posteriori certificate.

Every bound is checked against ``‖A − core ×_1 U_1 ⋯‖_F`` evaluated in exact Fraction arithmetic from the
stored float64 core and factors (for exact input: against the exact tensor, before conversion to float64),
including cases where nothing is discarded (the old exact-arithmetic bound was 0 there) and HOOI sweeps.
"""

from __future__ import annotations

import importlib
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import to_np
from tropix.errors import BoundViolationError, ShapeError
from tropix.tn import tucker
from tropix.tn._linalg import conversion_error
from tropix.tn.tucker import tucker_residual_bound

U64 = 2.0**-53


def _frac(a):
    """Float array of any backend -> object array of the exact Fractions of its entries."""
    return np.vectorize(Fraction, otypes=[object])(np.asarray(to_np(a), dtype=np.float64))


def _exact_tucker(core, factors):
    """The tensor the stored core and factors represent, exactly (object array of Fractions)."""
    T = _frac(core)
    for m, U in enumerate(factors):
        if U is not None:
            T = np.moveaxis(np.tensordot(_frac(U), T, axes=([1], [m])), 0, m)
    return T


def _err2(A_exact, core, factors) -> Fraction:
    D = np.asarray(A_exact, dtype=object) - _exact_tucker(core, factors)
    return sum((v * v for v in D.ravel()), Fraction(0))


def _norm2(A_exact) -> Fraction:
    return sum((Fraction(v) ** 2 for v in np.asarray(A_exact, dtype=object).ravel()), Fraction(0))


def _sqrt(q: Fraction) -> float:
    """sqrt of a nonnegative Fraction as a float, for values far outside the float range of ``q`` itself."""
    if q == 0:
        return 0.0
    e = (q.numerator.bit_length() - q.denominator.bit_length()) // 2
    return math.ldexp(math.sqrt(float(q / Fraction(4) ** e)), e)


def _assert_certified(A_exact, dec):
    """bound ≥ exact error (compared exactly, squared); returns the exact error as a float."""
    e2 = _err2(A_exact, dec.core, dec.factors)
    assert Fraction(dec.error_bound) ** 2 >= e2, (dec.error_bound, _sqrt(e2))
    return _sqrt(e2)


_shapes = st.lists(st.integers(1, 4), min_size=2, max_size=4).filter(lambda s: math.prod(s) <= 64)


def _data(draw, shape, kind):
    n = math.prod(shape)
    if kind == "fraction":
        num = draw(st.lists(st.integers(-20, 20), min_size=n, max_size=n))
        den = draw(st.lists(st.integers(1, 9), min_size=n, max_size=n))
        return np.array([Fraction(a, b) for a, b in zip(num, den)], dtype=object).reshape(shape)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "lowrank":  # rank ≤ 2 in every mode plus noise at 1e-9
        r = [min(2, s) for s in shape]
        T = rng.standard_normal(r)
        for m, s in enumerate(shape):
            T = np.moveaxis(np.tensordot(rng.standard_normal((s, r[m])), T, axes=([1], [m])), 0, m)
        return T + 1e-9 * rng.standard_normal(shape)
    return rng.standard_normal(shape)


@st.composite
def _cases(draw):
    shape = tuple(draw(_shapes))
    kind = draw(st.sampled_from(["float", "fraction", "lowrank"]))
    A = _data(draw, shape, kind)
    eps = draw(st.sampled_from([1e-14, 1e-6, 0.05, 0.3, 0.7]))
    n_iter = draw(st.integers(0, 2))
    shared = draw(st.sampled_from([(), (0,)]))
    return A, eps, n_iter, shared


@settings(max_examples=200)
@given(_cases())
def test_bound_dominates_exact_error(case):
    A, eps, n_iter, shared = case
    dec = tucker(A, eps=eps, n_iter=n_iter, shared_across=shared, check=True)
    A_exact = A if A.dtype == object else _frac(A)
    err = _assert_certified(A_exact, dec)
    nrm = _sqrt(_norm2(A_exact))
    if eps >= 1e-6:  # eps semantics: the certificate itself meets the requested accuracy
        assert dec.error_bound <= eps * nrm
    if shared:  # per-slice certificates along the shared mode
        D = A_exact - _exact_tucker(dec.core, dec.factors)
        for i in range(A.shape[0]):
            e2 = sum((v * v for v in D[i].ravel()), Fraction(0))
            assert Fraction(float(dec.slice_error_bounds[i])) ** 2 >= e2
            assert dec.slice_error_bounds[i] - _sqrt(e2) <= 64 * U64 * nrm
    else:
        assert dec.slice_error_bounds is None
    # tight: the excess over the exact error is at rounding level, and a small factor when the error is rounding
    assert dec.error_bound - err <= 64 * U64 * nrm
    if err <= 1e-12 * nrm:
        assert dec.error_bound <= 20 * err + 16 * U64 * nrm  # (exact zero error: γ_r terms only)


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(3, 4, 2), (4, 4, 4), (2, 3, 2, 3)]))
def test_nothing_discarded_old_bound_zero_misses_rounding(seed, shape):
    # full ranks: the old bound sqrt(Σ discarded²)·(1 + 1e-12) was 0, yet the stored data do not reproduce A
    A = np.random.default_rng(seed).standard_normal(shape)
    dec = tucker(A, eps=1e-14)
    assert dec.ranks == shape  # nothing discarded
    err = _assert_certified(_frac(A), dec)
    assert err > 0  # the old bound 0 would have been violated
    assert dec.error_bound <= 20 * err  # and the new one is a small multiple of the true error


def test_hooi_cases_against_exact():
    rng = np.random.default_rng(11)
    ratios = []
    for shape, ranks in [((4, 5, 3), (2, 2, 2)), ((5, 4, 4), (3, 1, 2)), ((3, 3, 3, 3), (2, 2, 1, 2))]:
        A = rng.standard_normal(shape)
        base = tucker(A, ranks=ranks)
        for n_iter in (1, 3):
            dec = tucker(A, ranks=ranks, n_iter=n_iter, check=True)
            err = _assert_certified(_frac(A), dec)
            ratios.append(dec.error_bound / err)
            # HOOI refines: its certified bound is no worse than the HOSVD's (up to rounding)
            assert dec.error_bound <= base.error_bound * (1 + 1e-9)
    assert max(ratios) <= 1 + 1e-9  # truncation-dominated: the certificate is essentially the true error


def test_exact_input_certified_against_exact_tensor():
    # 1/3-type entries are not floats: the conversion error is part of the certificate
    X = np.array([[[Fraction(1, 1 + i + 2 * j + 5 * k) for k in range(3)] for j in range(3)] for i in range(2)],
                 dtype=object)
    for eps in (1e-14, 1e-3):
        dec = tucker(X, eps=eps)
        err = _assert_certified(X, dec)
        assert 0 < err <= dec.error_bound <= max(eps * math.sqrt(_norm2(X)), 20 * err)
    # Python lists of ints beyond 2^53 are converted with rounding, also covered
    big = [[2**60 + 1, 3], [5, 2**59 - 1]]
    dec = tucker(big, eps=1e-14, shared_across=1)
    _assert_certified(np.array(big, dtype=object), dec)


def test_shared_factors_list_of_exact_and_float_arrays():
    rng = np.random.default_rng(3)
    U = np.linalg.qr(rng.standard_normal((4, 2)))[0]
    heads = [U @ rng.standard_normal((2, 3)) for _ in range(3)]
    exact_head = np.vectorize(lambda v: Fraction(round(v * 7), 7), otypes=[object])(heads[0])
    data = [exact_head] + heads[1:]  # one exact array among floats: stacked, shared factors
    dec = tucker(data, eps=1e-10)
    assert dec.shared_across == (0,) and dec.factors[0] is None
    A_exact = np.stack([exact_head] + [_frac(h) for h in heads[1:]])
    err = _assert_certified(A_exact, dec)
    # every slice (head) has its own certificate, within the whole one
    D = A_exact - _exact_tucker(dec.core, dec.factors)
    assert dec.slice_error_bounds.shape == (3,)
    for h in range(3):
        e2 = sum((v * v for v in D[h].ravel()), Fraction(0))
        assert Fraction(float(dec.slice_error_bounds[h])) ** 2 >= e2
        assert dec.slice_error_bounds[h] <= dec.error_bound
    assert dec.error_bound <= 1e-10 * math.sqrt(_norm2(A_exact)) and err > 0


def test_backends_and_shared_heads(backend):
    rng = np.random.default_rng(5)
    U = np.linalg.qr(rng.standard_normal((6, 2)))[0]
    heads = [U @ rng.standard_normal((2, 3)) + 1e-7 * rng.standard_normal((6, 3)) for _ in range(3)]
    dec = tucker([backend(h) for h in heads], eps=1e-3, n_iter=1)
    assert dec.ranks == (3, 2, 3)
    err = _assert_certified(_frac(np.stack(heads)), dec)
    assert err > 1e-9 and dec.error_bound <= err * (1 + 1e-6)
    D = _frac(np.stack(heads)) - _exact_tucker(dec.core, dec.factors)
    for h in range(3):  # each head's own certificate: valid and tight (truncation-dominated)
        e_h = _sqrt(sum((v * v for v in D[h].ravel()), Fraction(0)))
        assert e_h <= dec.slice_error_bounds[h] <= e_h * (1 + 1e-6)


def test_two_shared_modes_slice_bounds():
    rng = np.random.default_rng(9)
    A = rng.standard_normal((3, 5, 2, 4))
    dec = tucker(A, ranks=(1, 2, 1, 2), shared_across=(0, 2), n_iter=1)
    assert dec.factors[0] is None and dec.factors[2] is None and dec.slice_error_bounds.shape == (3, 2)
    _assert_certified(_frac(A), dec)
    D = _frac(A) - _exact_tucker(dec.core, dec.factors)
    for i in range(3):
        for j in range(2):
            e2 = sum((v * v for v in D[i, :, j, :].ravel()), Fraction(0))
            assert Fraction(float(dec.slice_error_bounds[i, j])) ** 2 >= e2
            assert dec.slice_error_bounds[i, j] <= _sqrt(e2) * (1 + 1e-9)


def test_budget_fitted_exactly_is_retried_within_eps():
    # singular values 4 and 3, eps·‖A‖ = 3: the truncation discards exactly the budget, so the certificate of the
    # rank-1 result is 3 plus rounding > eps·‖A‖; tucker recomputes with a smaller budget (rank 2)
    A = np.array([[3.0, 0.0], [0.0, 4.0]])
    dec = tucker(A, eps=0.6, shared_across=1)
    assert dec.error_bound <= 0.6 * 5.0
    _assert_certified(_frac(A), dec)
    one = tucker(A, ranks=(1, 2), shared_across=1)  # the fixed-rank result: its error is exactly 3
    assert one.error_bound > 3.0 and Fraction(one.error_bound) ** 2 >= _err2(_frac(A), one.core, one.factors) == 9


@pytest.mark.parametrize("k", [-660, 660])
def test_extreme_scales(k):
    A = np.random.default_rng(2).standard_normal((3, 4, 2))
    As = np.ldexp(A, k)  # ~1e±200: squares under/overflow without the power-of-two scaling
    dec, ref = tucker(As, eps=1e-14), tucker(A, eps=1e-14)
    assert dec.ranks == ref.ranks and dec.error_bound == math.ldexp(ref.error_bound, k)
    err = _assert_certified(_frac(As), dec)
    assert 0 < err and dec.error_bound <= 20 * err
    trunc = tucker(As, ranks=(2, 2, 1), n_iter=2)
    _assert_certified(_frac(As), trunc)


@settings(max_examples=30)
@given(st.integers(0, 2**32 - 1))
def test_residual_bound_of_arbitrary_factors(seed):
    # non-orthonormal factors, float32 storage and a conversion term: nothing is assumed about the data
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(1, 5, size=3))
    ranks = tuple(int(rng.integers(1, s + 1)) for s in shape)
    core = (rng.standard_normal(ranks) * 10.0 ** rng.integers(-3, 4)).astype(np.float32)
    factors = [(3 * rng.standard_normal((s, r))).astype(np.float32) for s, r in zip(shape, ranks)]
    if rng.integers(2):
        factors[0] = None
        core = (rng.standard_normal((shape[0],) + ranks[1:])).astype(np.float32)
    X = np.vectorize(lambda _: Fraction(int(rng.integers(-50, 50)), int(rng.integers(1, 13))), otypes=[object])(
        np.empty(shape, dtype=object)
    )
    A = X.astype(np.float64)
    b = tucker_residual_bound(A, core, factors, conversion_error(X, A))
    e2 = _err2(X, core, factors)
    assert Fraction(b) ** 2 >= e2
    assert b <= math.sqrt(e2) * (1 + 1e-9) + 1e-12 * (1 + math.sqrt(_norm2(X)))


def test_check_and_errors():
    A = np.random.default_rng(0).standard_normal((3, 3, 3))
    dec = tucker(A, eps=0.2, check=True)
    assert dec.error <= dec.error_bound
    with pytest.raises(ShapeError):
        tucker_residual_bound(A, dec.core, dec.factors[:2])
    with pytest.raises(ShapeError):
        tucker_residual_bound(A[:2], dec.core, dec.factors)
    with pytest.raises(ShapeError):
        tucker_residual_bound(A, dec.core[:, :, :1], dec.factors)
    assert tucker_residual_bound(A, np.full(dec.core.shape, np.inf), dec.factors) == math.inf


def test_check_recomputes_independently(monkeypatch):
    # check=True recomputes the error through to_dense(); a (deliberately) broken certificate is caught
    tk = importlib.import_module("tropix.tn.tucker")  # (the package attribute `tucker` is the function)

    A = np.random.default_rng(1).standard_normal((3, 4, 3))
    real = tk._certificate
    monkeypatch.setattr(tk, "_certificate", lambda *a: (real(*a)[0] * 0.5,) + real(*a)[1:])
    tucker(A, ranks=(2, 2, 2))  # without check the wrong bound goes unnoticed
    with pytest.raises(BoundViolationError):
        tucker(A, ranks=(2, 2, 2), check=True)
