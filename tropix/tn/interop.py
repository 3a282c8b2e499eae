"""Conversion to and from the node graphs of Google's ``tensornetwork`` package (optional, not a dependency).

``tensornetwork`` 0.4.6 still works with NumPy 2.4 (checked for nodes, edges, ``CopyNode``, the greedy
contractor, ``ncon`` and ``FiniteMPS``).  Install it yourself (``pip install tensornetwork``) to use
these functions; without it they raise :class:`ImportError` with that advice.

Copy tensors (``tn.CopyNode``) are read as *hyperedges*, never as dense 0/1 tensors: a dense copy
tensor is only correct in the ordinary semiring (in max-plus its zeros would have to be ``-inf``), so
merging the legs of a copy node into one shared index keeps :func:`~tropix.tn.contract` correct in every
semiring.

Examples
--------
(Not run as a doctest, because ``tensornetwork`` is optional)::

    import numpy as np
    from tropix.tn.interop import to_tensornetwork, from_tensornetwork
    nodes, out_edges = to_tensornetwork("ij,jk->ik", np.ones((2, 3)), np.ones((3, 2)))
    sub, ops = from_tensornetwork(nodes, out_edges)     # 'ab,bc->ac'
"""

from __future__ import annotations

from typing import Any, Sequence

from opt_einsum import get_symbol

from ..errors import ArgumentTypeError, ParseError, ShapeError
from .contract import _parse, contract

__all__ = ["to_tensornetwork", "from_tensornetwork", "contract_tensornetwork"]


def _tn():
    try:
        import tensornetwork
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "tropix.tn.interop needs the optional 'tensornetwork' package: pip install tensornetwork"
        ) from err
    return tensornetwork


def to_tensornetwork(subscripts: str, *operands: Any):
    """Build a ``tensornetwork`` node graph from einsum subscripts and operands.

    Indices shared by exactly two operands become edges; an index in more operands (or in one or more
    operands and the output) becomes a ``CopyNode``; a summed index of a single operand is closed with
    a rank-1 ``CopyNode`` (a vector of ones for ``tensornetwork``'s own contractors, read back by
    :func:`from_tensornetwork` as a summed index, so the round trip is right in every semiring).  Returns ``(nodes, output_edges)`` with the dangling edges in output order.
    """
    tn = _tn()
    import numpy as np

    from .._array import to_numpy

    terms, out = _parse(subscripts, len(operands))
    arrays = [np.asarray(to_numpy(op)) for op in operands]
    size: dict[str, int] = {}
    for k, (a, t) in enumerate(zip(arrays, terms)):  # (tensornetwork raised raw IndexError / ValueError)
        if a.ndim != len(t):
            raise ShapeError(f"operand {k} has {a.ndim} dimensions but its subscripts {t!r} name {len(t)}")
        for ch, dim in zip(t, a.shape):
            if size.setdefault(ch, int(dim)) != int(dim):
                raise ShapeError(f"index {ch!r} has size {size[ch]} in one operand and {int(dim)} in operand {k}")
    nodes = [tn.Node(a, name=f"T{k}") for k, a in enumerate(arrays)]
    where: dict[str, list] = {}
    for node, t in zip(nodes, terms):
        for ax, ch in enumerate(t):
            where.setdefault(ch, []).append(node[ax])
    out_edges = {}
    extra = []
    for ch, legs in where.items():
        dim = int(legs[0].dimension)
        in_out = ch in out
        if len(legs) == 2 and not in_out:
            legs[0] ^ legs[1]
        elif len(legs) == 1 and in_out:
            out_edges[ch] = legs[0]
        elif len(legs) == 1:
            # a rank-1 copy node (the vector of ones): read back as a summed index, not as a dense vector
            # of ones, which would be a wrong factor 1 (not the tropical one 0) in max-plus/min-plus
            ones = tn.CopyNode(1, dim, name=f"sum_{ch}", dtype=np.float64)
            extra.append(ones)
            legs[0] ^ ones[0]
        else:
            cp = tn.CopyNode(len(legs) + int(in_out), dim, name=f"copy_{ch}", dtype=np.float64)
            extra.append(cp)
            for i, leg in enumerate(legs):
                leg ^ cp[i]
            if in_out:
                out_edges[ch] = cp[len(legs)]
    return nodes + extra, [out_edges[ch] for ch in out]


def from_tensornetwork(nodes: Sequence[Any], output_edge_order: Sequence[Any] | None = None):
    """Read a ``tensornetwork`` node graph as ``(subscripts, operands)`` for :func:`~tropix.tn.contract`.

    Every edge gets one index symbol; the legs of a ``CopyNode`` are merged into one (hyper)index.
    Dangling edges are the output, in ``output_edge_order`` if given (which must list each dangling edge once,
    as for ``tensornetwork``'s contractors: :class:`~tropix.errors.ParseError` otherwise).
    """
    tn = _tn()
    nodes = list(nodes)
    for n in nodes:
        if not isinstance(n, tn.AbstractNode):
            raise ArgumentTypeError(f"from_tensornetwork expects tensornetwork nodes, got {type(n).__name__}")
    parent: dict[int, int] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a, b):
        parent[find(a)] = find(b)

    copies = [n for n in nodes if isinstance(n, tn.CopyNode)]
    for cp in copies:
        es = list(cp.edges)
        for e in es[1:]:
            union(id(e), id(es[0]))
    symbols: dict[int, str] = {}

    def sym(edge):
        root = find(id(edge))
        if root not in symbols:
            symbols[root] = get_symbol(len(symbols))
        return symbols[root]

    terms, ops = [], []
    node_set = {id(n) for n in nodes}
    for n in nodes:
        if isinstance(n, tn.CopyNode):
            continue
        t = ""
        for e in n.edges:
            if not e.is_dangling():
                other = e.node2 if e.node1 is n else e.node1
                if id(other) not in node_set:
                    raise ParseError(f"edge {e.name!r} leads to a node outside the given list")
                if other is n:
                    raise ParseError(f"trace edge {e.name!r} on node {n.name!r} is not supported; contract it first")
            t += sym(e)
        terms.append(t)
        ops.append(n.tensor)
    dangling = [e for n in nodes for e in n.edges if e.is_dangling()]
    if output_edge_order is not None:
        # the dangling edges exactly, as tensornetwork's contractors require: an omitted one was summed over
        # and a connected one kept as an output index, silently (a different result from tensornetwork's)
        order = list(output_edge_order)
        ids = {id(e) for e in dangling}
        for e in order:
            if id(e) not in ids:
                raise ParseError(f"output edge {getattr(e, 'name', e)!r} is not a dangling edge of the given nodes")
        if len({id(e) for e in order}) != len(order):
            raise ParseError("output_edge_order lists an edge twice")
        if len(order) != len(dangling):
            names = [e.name for e in dangling if id(e) not in {id(x) for x in order}]
            raise ParseError(f"output_edge_order omits the dangling edges {names}; list every dangling edge")
        dangling = order
    out = "".join(sym(e) for e in dangling)
    return ",".join(terms) + "->" + out, ops


def contract_tensornetwork(nodes: Sequence[Any], output_edge_order: Sequence[Any] | None = None, *,
                           semiring: Any = None, optimize: Any = "auto", **kwargs):
    """Contract a ``tensornetwork`` graph with :func:`~tropix.tn.contract` (any semiring, counting, …)."""
    sub, ops = from_tensornetwork(nodes, output_edge_order)
    return contract(sub, *ops, semiring=semiring, optimize=optimize, **kwargs)
