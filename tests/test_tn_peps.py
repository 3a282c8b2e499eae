"""PEPS: exact contraction against the dense state, boundary-MPS convergence in χ, expectation values."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import to_np
from tropix.errors import ShapeError, ToleranceError
from tropix.tn import PEPS


@pytest.mark.parametrize("shape", [(1, 1), (1, 3), (2, 2), (3, 2), (2, 3)])
def test_exact_contraction_equals_dense(backend, shape):
    psi = PEPS.random(*shape, phys_dim=2, bond_dim=2, seed=sum(shape), like=backend(np.zeros(1)))
    dense = to_np(psi.to_dense()).reshape(-1)
    # dense state from an independent contraction with numpy.einsum
    assert np.isclose(psi.norm_squared().value, dense @ dense)
    assert np.isclose(psi.norm_squared(chi=64).value, dense @ dense)
    assert dense.size == 2 ** (shape[0] * shape[1])


def test_two_by_two_against_explicit_einsum():
    psi = PEPS.random(2, 2, phys_dim=3, bond_dim=2, seed=11)
    (A, B), (C, D) = psi.tensors
    # legs (p, up, right, down, left); size-1 boundary legs get their own letters
    ref = np.einsum("awrdx,byzer,cdsuv,fetgs->abcf", A, B, C, D)
    assert np.allclose(psi.to_dense(), ref)


def test_boundary_mps_error_goes_to_zero():
    psi = PEPS.random(4, 4, phys_dim=2, bond_dim=2, seed=1)
    exact = psi.norm_squared().value
    errs, truncs = [], []
    for chi in (1, 2, 4, 8, 16):
        r = psi.norm_squared(chi=chi)
        errs.append(abs(r.value - exact) / abs(exact))
        truncs.append(r.truncation_error)
    # nothing is discarded at chi = 16: the reported error is the certified rounding of the sweeps only
    assert errs[-1] < 1e-12 and 0.0 < truncs[-1] < 1e-11
    assert truncs[0] > 0 and errs[0] > 1e-6
    assert all(t2 <= t1 + 1e-12 for t1, t2 in zip(truncs, truncs[1:]))


def test_expectation_values(backend):
    Z = np.diag([1.0, -1.0])
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    psi = PEPS.random(2, 3, phys_dim=2, bond_dim=2, seed=4, like=backend(np.zeros(1)))
    dense = to_np(psi.to_dense())
    nrm = np.sum(dense * dense)
    # <Z at (0,1)> and <X(1,2) Z(0,0)> densely
    zd = np.einsum("pq,aqcdef->apcdef", Z, dense)
    assert np.isclose(psi.expectation({(0, 1): backend(Z)}), np.sum(dense * zd) / nrm)
    two = np.einsum("pq,qbcdef->pbcdef", Z, np.einsum("pq,abcdeq->abcdep", X, dense))
    assert np.isclose(psi.expectation({(0, 0): backend(Z), (1, 2): backend(X)}), np.sum(dense * two) / nrm)
    assert np.isclose(psi.expectation({(0, 0): backend(Z), (1, 2): backend(X)}, chi=16), np.sum(dense * two) / nrm)


def test_product_state():
    v = np.array([0.6, 0.8])
    psi = PEPS.product_state([[v, v, v], [v, v, v]])
    assert np.isclose(psi.norm(), 1.0)
    assert np.isclose(psi.expectation({(1, 1): np.diag([1.0, -1.0])}), 0.36 - 0.64)


def test_bad_input():
    psi = PEPS.random(2, 2, seed=0)
    with pytest.raises(ShapeError):
        psi.expectation({(5, 0): np.eye(2)})
    with pytest.raises(ShapeError):
        psi.expectation({(0, 0): np.eye(3)})
    with pytest.raises(ToleranceError):
        psi.norm_squared(chi=0)
    with pytest.raises(ShapeError):
        PEPS(((np.ones((2, 1, 2, 1, 1)), np.ones((2, 1, 1, 1, 3))),))
    with pytest.raises(ShapeError):
        PEPS(((np.ones((2, 2, 1, 1, 1)),),))
