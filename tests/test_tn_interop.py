"""Interoperation with the optional tensornetwork package (round trips, copy nodes as hyperedges)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tropix import MaxPlus
from tropix.tn import contract

HAVE_TN = importlib.util.find_spec("tensornetwork") is not None


def test_round_trip_and_contraction_agree():
    from tropix.tn import interop

    rng = np.random.default_rng(0)
    A, B, C = rng.standard_normal((2, 3)), rng.standard_normal((3, 4)), rng.standard_normal((4, 3))
    sub = "ij,jk,kj->ij"  # j is a hyperedge shared by three operands and the output
    if not HAVE_TN:
        with pytest.raises(ImportError, match="pip install tensornetwork"):
            interop.to_tensornetwork(sub, A, B, C)
        return
    import tensornetwork as tn

    nodes, out = interop.to_tensornetwork(sub, A, B, C)
    assert any(isinstance(n, tn.CopyNode) for n in nodes)
    # tensornetwork's own contraction (dense copy tensor) equals numpy's einsum
    res = tn.contractors.greedy(nodes, output_edge_order=out)
    assert np.allclose(res.tensor, np.einsum(sub, A, B, C))
    nodes, out = interop.to_tensornetwork(sub, A, B, C)
    assert np.allclose(interop.contract_tensornetwork(nodes, out), np.einsum(sub, A, B, C))
    # in max-plus the copy node must act as a hyperedge, not as a 0/1 tensor
    nodes, out = interop.to_tensornetwork(sub, A, B, C)
    got = interop.contract_tensornetwork(nodes, out, semiring=MaxPlus)
    assert np.allclose(got, contract(sub, A, B, C, semiring=MaxPlus))


def test_from_plain_node_graph():
    if not HAVE_TN:
        return test_round_trip_and_contraction_agree()
    import tensornetwork as tn

    from tropix.tn.interop import from_tensornetwork

    a = tn.Node(np.arange(6.0).reshape(2, 3))
    b = tn.Node(np.arange(12.0).reshape(3, 4))
    a[1] ^ b[0]
    sub, ops = from_tensornetwork([a, b], [b[1], a[0]])
    assert sub == "ab,bc->ca"
    assert np.allclose(contract(sub, *ops), (a.tensor @ b.tensor).T)
