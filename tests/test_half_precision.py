"""Half precision (float16, torch bfloat16) through every layer: tolerances and certificates in the input's own
precision, never float32's (torch's bfloat16 becomes float32 on its way to NumPy, and NumPy has no bfloat16);
and the dtype corners of the semirings (narrow floats, small integers, exact operands)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tropix import MaxPlus, MinPlus
from tropix._array import machine_eps
from tropix.tn import tt_svd, tucker
from tropix.tn._linalg import unit_roundoff
from tropix.tropical import eigenvalue, eigenvector, matmul, solve

HALF = [torch.float16, torch.bfloat16]


def test_machine_eps_and_unit_roundoff_of_every_library():
    import array_api_strict as xp

    cases = [(np.zeros(1), 2.0**-52), (np.zeros(1, np.float32), 2.0**-23), (np.zeros(1, np.float16), 2.0**-10),
             (torch.zeros(1, dtype=torch.bfloat16), 2.0**-7), (torch.zeros(1, dtype=torch.float16), 2.0**-10),
             (torch.zeros(1), 2.0**-23), (xp.zeros(1, dtype=xp.float32), 2.0**-23), (np.zeros(1, np.int64), 2.0**-52)]
    for x, eps in cases:
        assert machine_eps(x) == eps, x.dtype
        assert unit_roundoff(x) == Fraction(eps) / 2, x.dtype


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), dt=st.sampled_from(HALF),
       semiring=st.sampled_from([MaxPlus, MinPlus]))
def test_tropical_solve_recognises_exact_solutions_in_half_precision(seed, n, dt, semiring):
    """b = A ⊗ x computed in the input's precision is solvable: solve must say so (bfloat16 said "not exact"
    with float32's tolerance), and its residual must sit within that tolerance."""
    rng = np.random.default_rng(seed)
    A = torch.tensor(rng.normal(size=(n, n)) * 10, dtype=dt)
    x = torch.tensor(rng.normal(size=n) * 10, dtype=dt)
    b = matmul(A, x[:, None], semiring=semiring)[:, 0]
    r = solve(A, b, semiring=semiring)
    assert r.exact
    assert r.tol >= 8 * machine_eps(A) * float(torch.max(torch.abs(torch.cat([A.flatten(), b]).double())))


@pytest.mark.parametrize("dt", HALF, ids=str)
def test_tropical_eigenvector_in_half_precision(dt):
    rng = np.random.default_rng(1)
    A = torch.tensor(rng.normal(size=(6, 6)) * 10, dtype=dt)
    lam = eigenvalue(A)
    v = eigenvector(A)  # (checks A ⊗ v = λ ⊗ v to the input's precision; raised with float32's tolerance)
    lhs, rhs = matmul(A, v[:, None])[:, 0].double(), (v + lam).double()
    assert float(torch.max(torch.abs(lhs - rhs))) <= 4 * 36 * machine_eps(A) * 40


@pytest.mark.parametrize("lib", ["numpy16", "torch16", "torchbf16"])
def test_tensor_decompositions_of_half_precision_tensors(lib):
    """No SVD exists in half precision: the tensor converts to float32 exactly, the factors are float32 and
    the certificate bounds the distance to the half-precision tensor itself."""
    x0 = np.random.default_rng(2).normal(size=(4, 5, 4, 3))
    x = x0.astype(np.float16) if lib == "numpy16" else torch.tensor(
        x0, dtype=torch.float16 if lib == "torch16" else torch.bfloat16)

    def f64(c):
        return c.detach().double().numpy() if isinstance(c, torch.Tensor) else np.asarray(c, dtype=np.float64)

    for eps in (1e-3, 0.3):
        t = tt_svd(x, eps=eps)
        assert str(t.cores[0].dtype).endswith("float32")
        full = f64(t.cores[0])
        for c in t.cores[1:]:
            full = np.tensordot(full, f64(c), axes=(-1, 0))
        err = np.linalg.norm(full.reshape(x0.shape) - f64(x))
        assert err <= t.error_bound
        T = tucker(x, eps=eps)
        assert T.error_bound >= T.error >= 0


# -- semirings: found by an exploratory review (session 14) ---------------------------------------------------
def test_log_semiring_with_a_temperature_beyond_the_dtype():
    """T = 1e5 is inf in float16, 1e-8 is 0: (x - m) / T was NaN, sums silently the zero or overflow errors;
    they now run in float64 and round back."""
    from tropix import LogSemiring

    assert float(LogSemiring(1e-8).sum(np.array([1.0, 2.0], np.float16))) == 2.0
    assert float(LogSemiring(1e5).sum(np.array([1.0, -np.inf], np.float16))) == 1.0
    assert float(LogSemiring(1e39).sum(np.array([1.0, -np.inf], np.float32))) == 1.0
    assert float(LogSemiring(1e-50).sum(np.array([1.0, 2.0], np.float32))) == 2.0
    out = matmul(np.array([[1.0, -np.inf]], np.float16), np.array([[0.0], [0.0]], np.float16), semiring=LogSemiring(1e5))
    assert out.dtype == np.float16 and out.tolist() == [[1.0]]
    r = LogSemiring(1e-8).add(torch.tensor([1.0], dtype=torch.float16), 2.0)
    assert r.dtype == torch.float16 and r.tolist() == [2.0]


def test_log_semiring_scalars_and_power_zero():
    from tropix import LogSemiring

    S = LogSemiring(1.0)
    assert np.allclose(S.add(np.array([0.0]), 1.0), [math.log1p(math.e)])  # (a NumPy array and a Python float)
    assert np.allclose(S.mul(np.array([0.0]), 1), [1.0])
    assert S.power(np.array([-np.inf, 1.0]), 0).tolist() == [0.0, 0.0]  # a^0 = one, the zero included
    assert S.power(torch.tensor([-np.inf, 1.0]), 0).tolist() == [0.0, 0.0]


def test_integer_arrays_of_other_libraries_meet_non_integer_scalars():
    """The scalar was cast to the array's integer dtype: min(1, 0.5) gave 0."""
    import array_api_strict as xs

    from tropix import LogSemiring

    assert MinPlus.add(torch.tensor([1]), 0.5).tolist() == [0.5]
    assert MaxPlus.add(torch.tensor([1]), Fraction(3, 2)).tolist() == [1.5]
    assert MaxPlus.add(torch.tensor([1]), -math.inf).tolist() == [1.0]
    assert LogSemiring(1e-9).add(torch.tensor([1]), 1.5).tolist() == pytest.approx([1.5])
    assert float(MinPlus.add(xs.asarray([1]), 0.5)[0]) == 0.5
    assert MaxPlus.add(torch.tensor([1]), 2).dtype == torch.int64  # (integers stay integers)


def test_real_semiring_small_integer_dtypes_do_not_wrap():
    from tropix import Real

    assert Real.power(np.array([3], np.int8), 5).tolist() == [243]
    assert Real.matmul(np.array([[100]], np.int8), np.array([[100]], np.int8)).tolist() == [[10000]]
    assert Real.power(torch.tensor([3], dtype=torch.int8), 5).tolist() == [243]


def test_exact_operands_are_checked_for_the_wrong_infinity():
    from tropix.errors import ConventionError

    for f in (lambda: MaxPlus.mul([1, 2], [math.inf, 3]), lambda: MaxPlus.prod([1, math.inf]),
              lambda: MaxPlus.power([1, math.inf], 2), lambda: MaxPlus.sum(math.inf), lambda: MinPlus.mul([1], [-math.inf])):
        with pytest.raises(ConventionError):
            f()
    assert MaxPlus.mul(10**400, -math.inf) == -math.inf  # (a zero absorbs an int of any size: was OverflowError)
    assert MaxPlus.prod([10**400, -math.inf]) == -math.inf
    assert MinPlus.power([1, math.inf], 2).tolist() == [2, math.inf]
