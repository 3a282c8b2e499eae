"""Tensor-train bounds at the bottom (and top) of the float range, checked against exact Fraction arithmetic.

``TensorTrain.round`` and ``canonical`` used to run their sweeps on the cores as given: a train of subnormal
float32 cores lost bits in the carried products and in the scaling back, beyond the certified bound (4.9e-45
measured against 3.3e-45).  Scalar and Hadamard products modelled rounding as relative only.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import to_np, exact_fractions as _frac, exact_tt as _exact_tt
from tropix._array import namespace
from tropix.errors import FloatOverflowError
from tropix.tn import TensorTrain


def _sq(diff) -> Fraction:
    return sum((x * x for x in np.asarray(diff, dtype=object).ravel()), Fraction(0))


def _in_dtype(x, dtype):
    xp = namespace(x)
    return xp.astype(x, xp.float32) if dtype == np.float32 else x


def _train(seed, shape, rank, exponent, dtype):
    """A random train with every core scaled by ``2^exponent`` and stored in ``dtype``."""
    t = TensorTrain.random(shape, rank=rank, seed=seed)
    return TensorTrain(tuple(np.ldexp(c, exponent).astype(dtype) for c in t.cores))


_CASES = [  # (seed, shape, rank, exponent per core, dtype): products in or below the subnormal range
    (0, (2, 2, 1, 1), 1, -40, np.float32),
    (6, (2, 2, 2), 2, -50, np.float32),
    (10, (3, 1, 1, 3), 3, -45, np.float32),
    (5, (3, 1, 3, 2), 2, -136, np.float32),
    (3, (3, 2, 2), 3, -370, np.float64),
    (7, (2, 3, 2, 2), 2, -1030, np.float64),
]


@pytest.mark.parametrize("seed, shape, rank, exponent, dtype", _CASES)
def test_regression_round_of_subnormal_trains_stays_within_its_bound(seed, shape, rank, exponent, dtype):
    x = _train(seed, shape, rank, exponent, dtype)
    for eps in (1e-12, 1e-2, 0.5):
        r = x.round(eps)
        assert all(c.dtype == dtype for c in r.cores)
        exact = _sq(_exact_tt(x.cores) - _exact_tt(r.cores))
        assert exact <= Fraction(r.error_bound) ** 2


def test_regression_round_of_the_reported_float32_subnormal_train():
    """Subnormal float32 cores (the reported case: 4.9e-45 measured, 3.3e-45 certified)."""
    rng = np.random.default_rng(4)
    worst = 0.0
    for k in range(20):
        t = TensorTrain.random((3, 2, 3), rank=2, seed=k)
        x = TensorTrain(tuple((c * 1e-45 if j == 0 else c).astype(np.float32) for j, c in enumerate(t.cores)))
        r = x.round(float(rng.choice([1e-12, 0.1, 0.6])))
        exact = _sq(_exact_tt(x.cores) - _exact_tt(r.cores))
        assert exact <= Fraction(r.error_bound) ** 2
        worst = max(worst, float(exact) ** 0.5 / max(r.error_bound, 1e-300))
    assert worst > 0.01  # the bound is not vacuous: the absolute term is a few subnormal units


@pytest.mark.parametrize("seed, shape, rank, exponent, dtype", _CASES)
def test_regression_canonical_forms_of_subnormal_trains(seed, shape, rank, exponent, dtype):
    x = _train(seed, shape, rank, exponent, dtype)
    for center in range(x.ndim):
        c = x.canonical(center)
        exact = _sq(_exact_tt(x.cores) - _exact_tt(c.cores))
        assert exact <= Fraction(c.error_bound) ** 2


@pytest.mark.parametrize("seed, shape, rank, exponent, dtype", _CASES)
def test_regression_scalar_and_hadamard_products_below_the_normal_range(seed, shape, rank, exponent, dtype):
    x = _train(seed, shape, rank, exponent, dtype)
    X = _exact_tt(x.cores)
    for c in (Fraction(1, 3), 0.7, 2.0**-20):
        y = x * c
        exact = _sq(X * Fraction(c) - _exact_tt(y.cores))
        assert exact <= Fraction(y.error_bound) ** 2
    h = x.hadamard(x)
    exact = _sq(X * X - _exact_tt(h.cores))
    assert exact <= Fraction(h.error_bound) ** 2


def test_regression_round_on_torch_subnormal_float32():
    x = _train(6, (2, 2, 2), 2, -50, np.float32)
    xt = TensorTrain(tuple(torch.from_numpy(c) for c in x.cores))
    r = xt.round(1e-12)
    exact = _sq(_exact_tt(xt.cores) - _exact_tt(r.cores))
    assert exact <= Fraction(r.error_bound) ** 2
    assert r.error_bound == pytest.approx(x.round(1e-12).error_bound, rel=1e-3)


def test_regression_round_and_canonical_of_an_overflowing_train_raise():
    """A train whose tensor exceeds the float range: numpy's LinAlgError ("SVD did not converge") before."""
    for dtype, exponent in ((np.float64, 665), (np.float32, 84)):
        x = _train(0, (2, 3, 2), 2, exponent, dtype)
        with pytest.raises(FloatOverflowError):
            x.round(1e-3)
        with pytest.raises(FloatOverflowError):
            x.canonical(0)


def test_round_of_tiny_and_huge_but_representable_trains_is_unchanged_up_to_scaling():
    """Scaling every core by a power of two commutes with the sweeps: the ranks are those of the unscaled
    train and the bound scales with it."""
    x = _train(2, (3, 3, 3, 3), 3, 0, np.float64)
    s = TensorTrain((x + x * 1e-3).cores)
    r = s.round(1e-2)
    for exponent in (-200, 200):
        t = TensorTrain(tuple(np.ldexp(c, exponent) for c in s.cores))
        q = t.round(1e-2)
        assert q.ranks == r.ranks
        assert q.error_bound == pytest.approx(np.ldexp(r.error_bound, 4 * exponent), rel=1e-12)


@pytest.mark.parametrize("scales, dtype", [((-664, -664, 996), np.float64), ((664, 664, -996), np.float64),
                                           ((-80, -80, 110), np.float32)])
def test_regression_norm_dot_dense_and_spectra_when_partial_products_leave_the_range(backend, scales, dtype):
    """Cores scaled by 2^-664, 2^-664, 2^996 represent a tensor of size ~2^-332 (1e-100), but the partial
    products of the sweeps (2^-1328) underflowed: ``norm()``, ``dot`` and the Schmidt spectra gave 0, and with
    the scales reversed NaN or ``LinAlgError``.  Fix: the cores are scaled into range first (exact)."""
    t = TensorTrain.random((2, 3, 2), rank=2, seed=0)
    E = sum(scales)
    x = TensorTrain(tuple(_in_dtype(backend(np.ldexp(c, s)), dtype) for c, s in zip(t.cores, scales)))
    dense = np.ldexp(t.to_dense(), E)
    assert x.norm() == pytest.approx(np.linalg.norm(dense), rel=1e-5, abs=0)
    assert float(to_np(x.dot(x))) == pytest.approx(np.ldexp(t.norm() ** 2, 2 * E), rel=1e-5, abs=0)
    assert np.allclose(to_np(x.to_dense()), dense, rtol=1e-5, atol=0)
    for k, s in enumerate(x.schmidt_spectra()):
        ref = np.linalg.svd(dense.reshape(int(np.prod(dense.shape[: k + 1])), -1), compute_uv=False)
        assert np.allclose(np.asarray(to_np(s), dtype=np.float64), ref, rtol=1e-5, atol=0)
