"""Tropical eigenvalue (best cycle mean), an eigenvector and the critical graph of a square matrix.

Read ``A[i, j]`` as the weight of an edge ``i → j`` (the tropical zero: no edge).  The *eigenvalue*
``λ(A)`` is the best mean weight of a cycle, ``max`` over cycles in max-plus, ``min`` in min-plus
(``weight / length``).  Every square matrix has it; it is the tropical zero when the graph has no cycle.

* For an **irreducible** matrix (strongly connected graph) ``λ`` is the only eigenvalue, and every
  eigenvector is finite.
* For a **reducible** matrix ``λ`` is the best cycle mean over all strongly connected components.  It is
  still an eigenvalue (other components may have further eigenvalues, not computed here), and the
  eigenvector returned may contain tropical-zero entries: those nodes have no path to a critical cycle.

Algorithms
----------
``eigenvalue`` runs Karp's theorem with a virtual source joined to every node (so it also covers
reducible matrices): with ``D_k = 0 ⊗ A^k`` (best walks of length ``k`` ending at each node),
``λ = ⊕_v ⊕'_{k<n} (D_n(v) − D_k(v)) / (n − k)`` where ``⊕'`` is the opposite operation.  It costs ``n``
vector–matrix products, ``O(n^3)``, and is exact (``Fraction``) for exact input.  Edges between different
strongly connected components lie on no cycle and are dropped first, so that in floats a large entry on
such an edge cannot swamp the cycle means by cancellation.

``eigenvector`` and ``critical_graph`` normalise ``A_λ = A − λ`` (best cycle mean 0) and use its Kleene
plus ``P = A_λ+``: node ``j`` is critical when ``P[j, j] = 0``; each critical column of ``I ⊕ P`` is an
eigenvector (Butkovič, *Max-linear Systems*, Thm. 4.4.4), and the edge ``i → j`` is critical when
``A_λ[i, j] ⊗ (I ⊕ P)[j, i] = 0``.  For float input these zero tests use the tolerance ``tol`` (default
``64·eps·n·max|A|``), because ``A − λ`` is rounded; exact input is decided exactly.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import networkx as nx
import numpy as np

from .._array import from_numpy, machine_eps, to_numpy
from ._args import check_real
from ._square import is_exact_array, prepare_square, to_python_scalar, tropical_semiring
from .kleene import plus_closure
from .matmul import matmul
from .semiring import Semiring, TropicalSemiring

__all__ = ["eigenvalue", "eigenvector", "critical_graph"]


def _intra_component(A, S: TropicalSemiring, xp, exact: bool):
    """``A`` with the edges between different strongly connected components set to the tropical zero.

    No cycle uses such an edge, so the best cycle mean is unchanged; but walks through them made Karp's
    ``D_k`` large and, in floats, ``D_n − D_k`` lost the small cycle means to cancellation (``[[0.2, -inf],
    [1e15, 0.7]]`` gave 0.75 instead of 0.7: the edge 1 → 0 lies on no cycle).
    """
    from scipy.sparse.csgraph import connected_components

    fin = ~np.asarray(to_numpy(S.is_zero(A)), dtype=bool)
    _, labels = connected_components(fin, directed=True, connection="strong")
    same = labels[:, None] == labels[None, :]
    if bool(np.all(same | ~fin)):
        return A
    if exact:
        return np.where(same, A, S.zero)
    keep = same if isinstance(A, np.ndarray) else xp.asarray(from_numpy(same, A))
    return xp.where(keep, A, xp.full_like(A, S.zero))


def _karp(A, S: TropicalSemiring, xp, n: int):
    """Best cycle mean by Karp's theorem with a virtual source (all ``D_0(v) = one``), on the edges inside
    strongly connected components only (see :func:`_intra_component`)."""
    exact = is_exact_array(A)
    A = _intra_component(A, S, xp, exact)
    if exact:
        d = np.empty(n, dtype=object)
        d.fill(S.one)
    else:
        d = S.ones((n,), like=A)
    D = [d]
    for _ in range(n):
        D.append(matmul(D[-1], A, semiring=S))
    Dn = D[n]
    if exact:
        best = S.zero
        for v in range(n):
            if Dn[v] == S.zero:
                continue
            inner = None
            for k in range(n):
                if D[k][v] == S.zero:
                    continue
                r = Fraction(Dn[v] - D[k][v]) / (n - k)
                inner = r if inner is None else S.dual.add(inner, r)
            best = inner if best == S.zero else S.add(best, inner)
        return best if best == S.zero else to_python_scalar(best)
    Dk = xp.stack(D[:n])  # (n, n): row k is D_k
    valid_n = ~S.is_zero(Dn)
    valid_k = ~S.is_zero(Dk)
    dn = xp.where(valid_n, Dn, xp.zeros_like(Dn))
    dk = xp.where(valid_k, Dk, xp.zeros_like(Dk))
    lengths = xp.astype(n - xp.arange(n, device=getattr(Dk, "device", None)), Dk.dtype)
    ratio = (xp.expand_dims(dn, axis=0) - dk) / xp.expand_dims(lengths, axis=1)
    ratio = xp.where(valid_k, ratio, xp.full_like(ratio, S.dual.zero))
    inner = S.dual.sum(ratio, axis=0)
    inner = xp.where(valid_n, inner, xp.full_like(inner, S.zero))
    return S.sum(inner)


def eigenvalue(A: Any, *, semiring: Semiring | str | None = None):
    """The tropical eigenvalue of a square matrix: its best cycle mean.

    Parameters
    ----------
    A : array_like
        Shape (n, n).
        ``A[i, j]`` is the weight of the edge ``i → j``; the tropical zero means no edge.
    semiring : MaxPlus or MinPlus, default MaxPlus
        Max-plus gives the maximum cycle mean, min-plus the minimum cycle mean.

    Returns
    -------
    int, Fraction, float or 0-d array
        Exact input gives an ``int``/``Fraction``; float input a 0-d array of the input's library (a
        NumPy float for NumPy input; torch keeps the autograd graph).  A graph without cycles gives the
        tropical zero (``-inf`` in max-plus).  Reducible matrices are fine: the result is the best cycle
        mean over all strongly connected components.

    Raises
    ------
    ShapeError, EmptyInputError, NaNError, ConventionError, SemiringMismatchError
        For a non-square or empty matrix, NaN, the opposite infinity, or a non-tropical semiring.

    Examples
    --------
    The cycles of ``[[3, 7], [2, 4]]`` are the loops (means 3 and 4) and ``0 → 1 → 0`` (mean 9/2):

    >>> from tropix import MaxPlus, MinPlus
    >>> eigenvalue([[3, 7], [2, 4]], semiring=MaxPlus)
    Fraction(9, 2)
    >>> eigenvalue([[3, 7], [2, 4]], semiring=MinPlus)
    3
    >>> import numpy as np
    >>> float(eigenvalue(np.array([[-np.inf, 1.0], [-np.inf, -np.inf]])))  # acyclic
    -inf
    """
    S = tropical_semiring(semiring, "eigenvalue")
    A, xp, n = prepare_square(A, S)
    return _karp(A, S, xp, n)


def _tolerance(A, n: int, tol):
    if tol is not None:
        return float(tol)
    a = np.asarray(to_numpy(A), dtype=np.float64)
    fin = np.abs(a[np.isfinite(a)])
    scale = float(fin.max()) if fin.size else 1.0
    eps = machine_eps(A)
    return 64.0 * eps * n * max(1.0, scale)


def _normalised(A, S: TropicalSemiring, xp, n: int, tol):
    """``(λ, A_λ, star(A_λ), critical mask, tolerance)``; λ must not be the tropical zero."""
    lam = _karp(A, S, xp, n)
    exact = is_exact_array(A)
    if exact:
        if lam == S.zero:
            return lam, None, None, None, 0.0
        Al = np.empty(A.shape, dtype=object)
        Al.ravel()[:] = [v if v == S.zero else to_python_scalar(Fraction(v) - lam) for v in A.ravel()]
        P = plus_closure(Al, S, xp, n, check=False)
        crit = np.array([P[i, i] == S.one for i in range(n)], dtype=bool)
        star = S.add(S.identity(n, like=P), P)
        return lam, Al, star, crit, 0.0
    if bool(S.is_zero(lam)):
        return lam, None, None, None, 0.0
    t = _tolerance(A, n, tol)
    Al = xp.where(S.is_zero(A), A, A - lam)
    P = plus_closure(Al, S, xp, n, check=False)
    diag = xp.stack([P[i, i] for i in range(n)])
    crit = xp.abs(xp.where(S.is_zero(diag), xp.full_like(diag, 2 * t + 1), diag)) <= t
    if not bool(xp.any(crit)):  # tol too small for the rounding: keep the nodes closest to mean λ
        crit = diag == S.sum(diag)
    star = S.add(S.identity(n, like=P), P)
    if tol is None and n <= _EXACT_MAX and not _verified(A, S, xp, n, lam, star, crit):
        # the default tolerance admitted a node whose cycles miss λ by more than rounding explains (loops
        # 1e15 and 1e15 + 2: node 0 counted as critical, x was no eigenvector): decide criticality exactly
        # on the floats' exact binary values; t = None tells critical_graph to take the exact graph
        ex = _exact_copy(A)
        _, _, _, crit_ex, _ = _normalised(ex, S, np, n, None)
        crit = xp.asarray(from_numpy(np.asarray(crit_ex, dtype=bool), A)) if not isinstance(A, np.ndarray) else crit_ex
        return lam, Al, star, crit, None
    return lam, Al, star, crit, t


_EXACT_MAX = 64  # float matrices up to this size fall back to the exact decision when verification fails


def _exact_copy(A):
    """The exact values of a float matrix (any library) as an object array of Fractions, zeros kept."""
    a = np.asarray(to_numpy(A), dtype=np.float64)
    out = np.empty(a.shape, dtype=object)
    out.ravel()[:] = [to_python_scalar(Fraction(v)) if np.isfinite(v) else float(v) for v in a.ravel()]
    return out


def _verified(A, S: TropicalSemiring, xp, n: int, lam, star, crit) -> bool:
    """Is ``x = ⊕ of the critical columns of star`` an eigenvector within the rounding of its computation?

    A correct ``x`` is a max of sums of at most ``n`` rounded terms ``A_ij - λ``, so
    ``|(A ⊗ x)_i - λ - x_i| ≤ 4 n² u M_i`` (``u`` the unit roundoff) bounds its residual with a margin; a
    larger residual means a non-critical column was taken.  ``M_i`` is the largest magnitude entering row
    ``i``: ``1``, ``|λ|``, ``|x_i|``, and ``|A_ij| + |x_j|`` for the terms ``A_ij + x_j`` within the global
    bound ``4 n² u max|A|`` of ``(A ⊗ x)_i`` (the others cannot decide the ⊕).  Before, ``M`` was ``max|A|``
    over the whole matrix, so one large entry far from the ⊕ (``1e15`` on an edge into a dead end) hid a
    residual of ``2.8`` in a row of entries below ``3``.  A correct ``x`` computed with cancellation between
    large terms can fail the local bound; it then goes to the exact decision, which is correct too.
    """
    mask = xp.expand_dims(crit, axis=0)
    x = S.sum(xp.where(mask, star, xp.full_like(star, S.zero)), axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        Ax = matmul(A, x, semiring=S)
        zx, zA = S.is_zero(x), S.is_zero(Ax)
        if bool(xp.any(zx != zA)):
            return False
        res = xp.where(zx, xp.zeros_like(x), Ax - x - lam)
    a = np.asarray(to_numpy(A), dtype=np.float64)
    fin = np.abs(a[np.isfinite(a)])
    lam_f = abs(float(to_numpy(lam)))
    u = machine_eps(A) / 2
    bound = 4 * n * n * u
    glob = bound * max(1.0, float(fin.max()) if fin.size else 1.0, lam_f)
    xn = np.asarray(to_numpy(x), dtype=np.float64)
    axn = np.asarray(to_numpy(Ax), dtype=np.float64)
    rn = np.abs(np.asarray(to_numpy(res), dtype=np.float64))
    xf = np.isfinite(xn)
    with np.errstate(over="ignore", invalid="ignore"):
        terms = a + np.where(xf, xn, 0.0)[None, :]
        used = np.isfinite(a) & xf[None, :] & np.isfinite(axn)[:, None] & (np.abs(terms - axn[:, None]) <= glob)
        mag = np.where(used, np.abs(a) + np.abs(np.where(xf, xn, 0.0))[None, :], 0.0).max(axis=1)
    M = np.maximum(np.maximum(mag, np.where(xf, np.abs(xn), 0.0)), max(1.0, lam_f))
    return bool(np.all(rn <= bound * M))


def eigenvector(A: Any, *, semiring: Semiring | str | None = None, tol: float | None = None):
    """An eigenvector ``x`` with ``A ⊗ x = λ ⊗ x`` for the eigenvalue ``λ`` = :func:`eigenvalue` ``(A)``.

    The vector returned is the ⊕-sum of the fundamental eigenvectors (the critical columns of
    ``(A − λ)*``), normalised so that its best entry (largest in max-plus, smallest in min-plus) is 0.
    For an irreducible matrix all its entries are finite; for a reducible one, nodes with no path to a
    critical cycle get the tropical zero.  If the graph has no cycle (``λ`` = tropical zero), a unit
    vector ``e_j`` for a node ``j`` without incoming edges is returned (then ``A ⊗ e_j`` is all zero).

    Parameters
    ----------
    A : array_like
        Shape (n, n).
    semiring : MaxPlus or MinPlus, default MaxPlus
    tol : float, optional
        Float input only: how close to 0 a normalised cycle weight must be to count as critical
        (default ``64·eps·n·max(1, max|A|)``).  Exact input is decided exactly.

    Returns
    -------
    array
        Shape (n,).
        Exact (object array) for exact input, else the library and dtype of ``A``.

    Examples
    --------
    >>> from tropix import MaxPlus
    >>> A = [[3, 7], [2, 4]]
    >>> x = eigenvector(A, semiring=MaxPlus)
    >>> x
    array([0, Fraction(-5, 2)], dtype=object)
    >>> from tropix.tropical import matmul
    >>> matmul(A, x, semiring=MaxPlus) - x  # = λ in every entry
    array([Fraction(9, 2), Fraction(9, 2)], dtype=object)
    """
    S = tropical_semiring(semiring, "eigenvector")
    check_real(tol, "tol", minimum=0, none_ok=True)
    A, xp, n = prepare_square(A, S)
    lam, Al, star, crit, _ = _normalised(A, S, xp, n, tol)
    exact = is_exact_array(A)
    if Al is None:  # no cycle: a node j whose column is all zero exists
        colzero = [bool(xp.all(S.is_zero(A[:, j]))) for j in range(n)]
        j = colzero.index(True)
        if exact:
            x = np.empty(n, dtype=object)
            x.fill(S.zero)
            x[j] = S.one
            return x
        idx = xp.arange(n, device=getattr(A, "device", None))
        return xp.where(idx == j, xp.full((n,), S.one, dtype=A.dtype, device=getattr(A, "device", None)),
                        xp.full((n,), S.zero, dtype=A.dtype, device=getattr(A, "device", None)))
    if exact:
        cols = [j for j in range(n) if crit[j]]
        x = S.sum(star[:, cols], axis=1)
        top = S.sum(x)
        return np.array([v if v == S.zero else to_python_scalar(Fraction(v) - top) for v in x], dtype=object)
    mask = xp.expand_dims(crit, axis=0)
    x = S.sum(xp.where(mask, star, xp.full_like(star, S.zero)), axis=1)
    top = S.sum(x)
    return xp.where(S.is_zero(x), x, x - top)


def critical_graph(A: Any, *, semiring: Semiring | str | None = None, tol: float | None = None) -> nx.DiGraph:
    """The critical graph of ``A``: the nodes and edges lying on cycles whose mean attains ``λ(A)``.

    Parameters
    ----------
    A : array_like
        Shape (n, n).
    semiring : MaxPlus or MinPlus, default MaxPlus
    tol : float, optional
        Float input only: tolerance of the test "this edge lies on a cycle of mean λ" (see
        :func:`eigenvector`).

    Returns
    -------
    networkx.DiGraph
        Nodes are the critical node indices, edges ``i → j`` carry ``weight = A[i, j]`` (a Python
        ``int``/``Fraction``/``float``); ``G.graph["eigenvalue"]`` holds ``λ``.  A matrix whose graph
        has no cycle gives an empty graph.  Every strongly connected component of the critical graph
        is a union of critical cycles.

    Examples
    --------
    >>> from tropix import MaxPlus
    >>> G = critical_graph([[3, 7], [2, 4]], semiring=MaxPlus)
    >>> sorted(G.edges(data="weight")), G.graph["eigenvalue"]
    ([(0, 1, 7), (1, 0, 2)], Fraction(9, 2))
    """
    S = tropical_semiring(semiring, "critical_graph")
    check_real(tol, "tol", minimum=0, none_ok=True)
    A, xp, n = prepare_square(A, S)
    lam, Al, star, crit, t = _normalised(A, S, xp, n, tol)
    exact = is_exact_array(A)
    G = nx.DiGraph()
    G.graph["eigenvalue"] = lam if exact else float(lam.detach() if hasattr(lam, "detach") else lam)
    if Al is None:
        return G
    if not exact and t is None:  # criticality was decided on the exact values (see _normalised)
        Gx = critical_graph(_exact_copy(A), semiring=S)
        G.add_nodes_from(Gx.nodes())
        for i, j in Gx.edges():
            G.add_edge(i, j, weight=float(to_numpy(A)[i, j]))
        return G
    if exact:
        nodes = [j for j in range(n) if crit[j]]
        G.add_nodes_from(nodes)
        for i in nodes:
            for j in nodes:
                if Al[i, j] != S.zero and star[j, i] != S.zero and Al[i, j] + star[j, i] == S.one:
                    G.add_edge(i, j, weight=A[i, j])
        return G
    a = to_numpy(A)
    al = np.asarray(to_numpy(Al), dtype=np.float64)
    st = np.asarray(to_numpy(star), dtype=np.float64).T  # st[i, j] = star[j, i]
    cr = np.asarray(to_numpy(crit), dtype=bool)
    fin = np.isfinite(al) & np.isfinite(st)
    closed = np.where(fin, al + np.where(fin, st, 0.0), np.inf)
    on = fin & (np.abs(closed) <= t) & cr[:, None] & cr[None, :]
    G.add_nodes_from(int(j) for j in np.flatnonzero(cr))
    for i, j in zip(*np.nonzero(on)):
        G.add_edge(int(i), int(j), weight=float(a[i, j]))
    return G
