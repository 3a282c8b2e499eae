"""Combinatorial problems as tropical tensor networks: Ising spin glasses and maximum independent sets.

Each builder returns ``(subscripts, operands, path)`` for :func:`~tropix.tn.contract`; contracting in
``MinPlus`` (spin glass) or ``MaxPlus`` (independent sets) gives the optimum, ``count=True`` its
degeneracy and ``assignment=True`` an optimal configuration.

* Spin glass on an ``L×M`` square lattice with open boundaries: spins ``σ ∈ {−1, +1}`` (index value
  0 ↦ −1, 1 ↦ +1), energy ``E(σ) = −Σ_{⟨ij⟩} J_ij σ_i σ_j − Σ_i h_i σ_i``.  Every spin is one index
  (shared by up to four bond tensors: a hyperedge) and every bond one 2×2 tensor ``−J σ_i σ_j``.
  The returned path visits the spins in row-major order: the (at most three) small tensors of a new
  spin (left bond, upper bond, field) are merged first and then absorbed into the boundary tensor, which
  never has more than ``M + 1`` open spins.  This is the row-by-row boundary contraction: exact, at cost
  ``O(2^{M+1})`` per spin.
* Independent sets of a graph: one index per vertex (0 = out, 1 = in), a vector ``(0, 1)`` per vertex
  and a 2×2 tensor forbidding ``(1, 1)`` (the tropical zero) per edge.

Examples
--------
>>> import numpy as np
>>> from tropix import MinPlus, MaxPlus
>>> from tropix.tn import contract
>>> from tropix.tn.problems import spin_glass_network, independent_set_network
>>> Jh, Jv = np.ones((2, 1)), np.ones((1, 2))            # ferromagnetic 2x2 plaquette
>>> sub, ops, path = spin_glass_network(Jh, Jv)
>>> contract(sub, *ops, semiring=MinPlus, optimize=path, count=True)   # E0 = -4, all up or all down
(-4.0, 2)
>>> sub, ops, path = independent_set_network(5, [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)])   # 5-cycle
>>> contract(sub, *ops, semiring=MaxPlus, optimize=path, count=True)
(2.0, 5)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from opt_einsum import get_symbol

from .._array import asarray, to_numpy
from ..errors import ArgumentTypeError, DomainError, ShapeError
from ..tropical._args import check_int
from ._linalg import as_float

__all__ = ["spin_glass_network", "spin_glass_energy", "random_couplings", "independent_set_network"]


def random_couplings(L: int, M: int | None = None, seed: int | None = None):
    """Random ±1 couplings ``(J_h, J_v)`` for an ``L×M`` open lattice: shapes ``(L, M-1)`` and ``(L-1, M)``.

    Examples
    --------
    >>> Jh, Jv = random_couplings(3, seed=0)
    >>> Jh.shape, Jv.shape, sorted({float(x) for x in Jh.ravel()} | {float(x) for x in Jv.ravel()})
    ((3, 2), (2, 3), [-1.0, 1.0])
    """
    L = check_int(L, "L", minimum=1)
    M = L if M is None else check_int(M, "M", minimum=1)
    if seed is not None:
        seed = check_int(seed, "seed", minimum=0)
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=(L, M - 1)), rng.choice([-1.0, 1.0], size=(L - 1, M))


_I64 = 2**63 - 1


def _couplings(x):
    """Couplings or fields as a NumPy array whose negation is exact: integers (any width, signed or not, and
    booleans) become int64, or Python ints (object) beyond ``±(2^63 − 1)``; ``-J`` on the input's own dtype
    wrapped around (uint8 200 became 56, int64 −2^63 stayed −2^63) and a bool coupling raised a raw TypeError."""
    a = np.asarray(to_numpy(x))
    if a.dtype.kind in "biu":
        if a.size and (int(a.max()) > _I64 or int(a.min()) < -_I64):
            out = np.empty(a.shape, dtype=object)
            out.ravel()[:] = [int(v) for v in a.ravel()]
            return out
        return a.astype(np.int64)
    return a


def _spins_of(a):
    """The spin values ``(−1, 1)`` in a dtype whose product with ``a``'s entries is exact (Python ints for an
    object array: NumPy refused Python ints beyond int64 against an int64 vector)."""
    return np.array([-1, 1], dtype=object if a.dtype == object else np.int64)


def _lattice(Jh, Jv, h):
    Jh = _couplings(Jh)
    Jv = _couplings(Jv)
    if Jh.ndim != 2 or Jv.ndim != 2:
        raise ShapeError("J_h and J_v must be 2-D arrays of horizontal and vertical couplings")
    L, Mh = Jh.shape
    Lv, M = Jv.shape
    if Mh != M - 1 or Lv != L - 1:
        raise ShapeError(f"J_h must have shape (L, M-1) and J_v shape (L-1, M); got {Jh.shape} and {Jv.shape}")
    if h is not None:
        h = _couplings(h)
        if h.shape != (L, M):
            raise ShapeError(f"h must have shape {(L, M)}, got {h.shape}")
    return Jh, Jv, h, L, M


def spin_glass_network(J_h: Any, J_v: Any, h: Any = None):
    """The min-plus network of an Ising spin glass on an open square lattice.

    Parameters
    ----------
    J_h : array (L, M-1)
        Couplings between ``(r, c)`` and ``(r, c+1)``.
    J_v : array (L-1, M)
        Couplings between ``(r, c)`` and ``(r+1, c)``.
    h : array (L, M), optional
        Local fields.

    Returns
    -------
    subscripts, operands, path
        Spin ``(r, c)`` is the index ``get_symbol(r*M + c)``; contract with ``MinPlus`` for the ground
        energy.  Operand dtype follows the couplings; exact couplings stay exact (integers of any width
        become int64, or Python ints beyond ``±(2^63 − 1)``; Fractions stay Fractions).
    """
    Jh, Jv, h, L, M = _lattice(J_h, J_v, h)
    sh, sv = _spins_of(Jh), _spins_of(Jv)
    terms, ops = [], []
    ssa: list[tuple[int, int]] = []
    boundary = None

    def sym(r, c):
        return get_symbol(r * M + c)

    def add(term, op):
        terms.append(term)
        ops.append(op)
        return len(terms) - 1

    n_in = 0
    local_steps = []
    for r in range(L):
        for c in range(M):
            ids = []
            if c > 0:
                ids.append(add(sym(r, c - 1) + sym(r, c), -Jh[r, c - 1] * np.outer(sh, sh)))
            if r > 0:
                ids.append(add(sym(r - 1, c) + sym(r, c), -Jv[r - 1, c] * np.outer(sv, sv)))
            if h is not None:
                ids.append(add(sym(r, c), -h[r, c] * _spins_of(h)))
            local_steps.append(ids)
    n_in = len(terms)
    if not terms:  # a single spin without field
        add(sym(0, 0), np.zeros(2, dtype=Jh.dtype))
        return terms[0] + "->", ops, [(0,)]
    # SSA path: merge the (at most three) small tensors of each new spin, then absorb them into the boundary
    nxt = n_in
    for ids in local_steps:
        if not ids:
            continue
        local = ids[0]
        for j in ids[1:]:
            ssa.append((local, j))
            local, nxt = nxt, nxt + 1
        if boundary is None:
            boundary = local
        else:
            ssa.append((boundary, local))
            boundary, nxt = nxt, nxt + 1
    return ",".join(terms) + "->", ops, _ssa_to_linear(ssa, n_in)


def _ssa_to_linear(ssa: list[tuple[int, int]], n: int) -> list[tuple[int, ...]]:
    """Convert a path of SSA ids (inputs 0…n-1, results n, n+1, …) to opt_einsum's positional form."""
    cur = list(range(n))
    nxt = n
    out = []
    for i, j in ssa:
        pi, pj = cur.index(i), cur.index(j)
        out.append(tuple(sorted((pi, pj))))
        for p in sorted((pi, pj), reverse=True):
            cur.pop(p)
        cur.append(nxt)
        nxt += 1
    if len(cur) > 1:  # pragma: no cover - every builder ends with a single tensor
        out.append(tuple(range(len(cur))))
    return out


def spin_glass_energy(spins: Any, J_h: Any, J_v: Any, h: Any = None):
    """Energy ``−Σ J σσ − Σ h σ`` of spin configurations ``spins`` (``(..., L, M)`` array of ±1).

    Exact couplings and fields (all integers or Fractions) give the exact energy (a Python int or Fraction, an
    object array for several configurations), equal to the exact minimum the network of
    :func:`spin_glass_network` contracts to; float couplings give float64.

    Raises
    ------
    DomainError
        If a spin is not ±1 (the index values of an ``assignment`` are 0/1: pass ``2·x − 1``).

    Examples
    --------
    >>> import numpy as np
    >>> spin_glass_energy(np.ones((2, 2)), np.ones((2, 1)), np.ones((1, 2)))
    -4.0
    >>> spin_glass_energy(np.ones((1, 2)), np.array([[2**60 + 1]]), np.zeros((0, 2), dtype=int))
    -1152921504606846977
    """
    Jh, Jv, h, L, M = _lattice(J_h, J_v, h)
    s = as_float(spins, "spins")
    s = np.asarray(to_numpy(s), dtype=np.float64)
    if s.ndim < 2 or s.shape[-2:] != (L, M):
        raise ShapeError(f"spins must have shape (..., {L}, {M}) like the lattice, got {s.shape}")
    if not np.all(np.abs(s) == 1):
        raise DomainError("spins must be -1 or +1 (the index values 0/1 of an assignment map to 2·x − 1)")
    given = [a for a in (Jh, Jv, h) if a is not None and a.size]
    if given and all(a.dtype == object or a.dtype.kind == "i" for a in given):
        # exact couplings: Python ints for the spins and the sums (float64 rounded 2^60 + 1 to 2^60)
        s = s.astype(np.int64).astype(object)
        Jh, Jv = Jh.astype(object), Jv.astype(object)
        h = None if h is None else h.astype(object)
        e = -(Jh * s[..., :, :-1] * s[..., :, 1:]).sum(axis=(-1, -2)) - (Jv * s[..., :-1, :] * s[..., 1:, :]).sum(
            axis=(-1, -2))
        if h is not None:
            e = e - (h * s).sum(axis=(-1, -2))
        return e[()] if isinstance(e, np.ndarray) and e.ndim == 0 else e
    e = -(Jh * s[..., :, :-1] * s[..., :, 1:]).sum(axis=(-1, -2)) - (Jv * s[..., :-1, :] * s[..., 1:, :]).sum(axis=(-1, -2))
    if h is not None:
        e = e - (h * s).sum(axis=(-1, -2))
    return float(e) if np.ndim(e) == 0 else e


def independent_set_network(n: int, edges: Sequence[tuple[int, int]], weights: Any = None):
    """The max-plus network whose contraction is the (weighted) maximum independent set size.

    Vertices are indices ``get_symbol(v)``; the path adds vertices one by one together with their edges
    to earlier vertices.  Exact ``weights`` (ints, Fractions) give exact operands (and an exact optimum);
    float weights and the default unit weights give float64 operands.

    Examples
    --------
    >>> from tropix import MaxPlus
    >>> from tropix.tn import contract
    >>> sub, ops, path = independent_set_network(3, [(0, 1), (1, 2)])
    >>> contract(sub, *ops, semiring=MaxPlus, optimize=path, assignment=True)
    (2.0, {'a': 1, 'b': 0, 'c': 1})
    """
    n = check_int(n, "n")
    if n < 1:
        raise ShapeError("a graph needs at least one vertex")
    if isinstance(edges, (str, bytes)) or not isinstance(edges, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"edges must be a sequence of vertex pairs, got {edges!r}")
    for e in edges:
        if isinstance(e, (str, bytes)) or not isinstance(e, (Sequence, np.ndarray)) or len(e) != 2:
            raise ArgumentTypeError(f"every edge must be a pair of vertex indices, got {e!r}")
        for v in e:
            check_int(v, "every vertex of an edge")
    if weights is None:
        w = np.ones(n)
    else:
        w = asarray(weights, name="weights") if isinstance(weights, (list, tuple)) else np.asarray(to_numpy(weights))
        if w.dtype.kind in "iub":
            w = w.astype(object)  # exact weights stay exact (float64 would round 1/3 and break ties)
        elif w.dtype != object:
            w = w.astype(np.float64)
    if w.shape != (n,):
        raise ShapeError(f"weights must have shape ({n},), got {w.shape}")
    exact = w.dtype == object
    edge_t = np.array([[0, 0], [0, -np.inf]], dtype=object) if exact else np.array([[0.0, 0.0], [0.0, -np.inf]])
    by_vertex: dict[int, list[tuple[int, int]]] = {v: [] for v in range(n)}
    for a, b in edges:
        a, b = int(a), int(b)
        if not (0 <= a < n and 0 <= b < n) or a == b:
            raise ShapeError(f"edge ({a}, {b}) is not an edge between distinct vertices 0..{n - 1}")
        by_vertex[max(a, b)].append((min(a, b), max(a, b)))
    terms, ops = [], []
    for v in range(n):
        terms.append(get_symbol(v))
        ops.append(np.array([0, w[v]], dtype=object) if exact else np.array([0.0, w[v]]))
        for a, b in by_vertex[v]:
            terms.append(get_symbol(a) + get_symbol(b))
            ops.append(edge_t.copy())
    k = len(terms)
    path = [(0, 1)] + [(0, j) for j in range(k - 2, 0, -1)] if k > 1 else [(0,)]
    return ",".join(terms) + "->", ops, path
