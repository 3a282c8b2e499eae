"""Einsum-style tensor-network contraction over any semiring, with counting and optimal assignments.

``contract("ij,jk->ik", A, B)`` contracts in the order chosen by :mod:`opt_einsum` (``optimize=`` selects
its path optimiser, or pass an explicit path, or ``"sequential"`` to contract the operands left to
right).  Each pairwise step is reduced to a batched matrix product:

* ordinary semiring (``semiring=None`` or ``Real``): ``matmul`` of the array library (BLAS);
* max-plus / min-plus: :func:`tropix.tropical.matmul` (with its compiled fast path) for unbatched steps,
  and a chunked broadcast ``⊕_k (A ⊗ B)`` for batched ones;
* any other semiring (e.g. ``LogSemiring``): the chunked broadcast with the semiring's ``mul``/``sum``.

NumPy float64 operands in max-plus/min-plus take a compiled fast path instead: the same pairwise steps
are planned once per (subscripts, shapes, path) (the plan is cached) and run in a single numba call
(:mod:`tropix.tn._kernels`); values, counts and assignments agree exactly with the path above.

In a tropical semiring the contraction value is an optimum over all index assignments, so tropical
tensor networks solve optimisation problems.  ``count=True`` contracts counting-tropical numbers
``(value, multiplicity)`` and also returns how many assignments attain the optimum; ``assignment=True``
returns one optimal assignment (a dict index → value) by backtracking through the contraction tree.

Examples
--------
>>> import numpy as np
>>> from tropix import MaxPlus, MinPlus
>>> from tropix.tn import contract
>>> A = np.array([[0., 2.], [1., 1.]])
>>> float(contract("ij,jk->", A, A, semiring=MaxPlus))       # max_{i,j,k} A_ij + A_jk
3.0
>>> contract("ij,jk->ik", A, A)                              # ordinary matrix product
array([[2., 2.],
       [1., 3.]])
"""

from __future__ import annotations

import itertools
import math
import operator
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import opt_einsum

from .._array import asarray, is_array, namespace, to_numpy
from ..errors import (
    ArgumentTypeError,
    ConventionError,
    FloatOverflowError,
    OptionError,
    ParseError,
    SemiringMismatchError,
    ShapeError,
    SizeLimitError,
)
from ..tropical._args import check_dims
from ..tropical.matmul import matmul as semiring_matmul

try:  # the validated public matmul re-checks every intermediate for NaN/convention; skip that for them
    from ..tropical.matmul import _tropical_matmul as _trusted_tropical_matmul
except ImportError:  # pragma: no cover - fall back to the public function
    _trusted_tropical_matmul = None


def _tropical_mm(A, B, S, xp):
    if _trusted_tropical_matmul is not None:
        return _trusted_tropical_matmul(A, B, S, xp)
    return semiring_matmul(A, B, semiring=S)
from ..tropical.semiring import RealSemiring, Semiring, TropicalSemiring, get_semiring

__all__ = ["contract", "contraction_path"]

_CHUNK = 1 << 21  # entries of the broadcast temporary per chunk
_SMALL = 64  # operands with at most this many entries are looped over (bond tensors, vectors)


def _parse(subscripts: str, n_ops: int):
    if not isinstance(subscripts, str):
        raise ParseError(f"subscripts must be a string like 'ij,jk->ik', got {type(subscripts).__name__}")
    s = subscripts.replace(" ", "")
    if "." in s:
        raise ParseError("ellipses ('...') are not supported in tropix.tn.contract subscripts")
    if s.count("->") > 1:
        raise ParseError(f"subscripts {subscripts!r} contain more than one '->'")
    if "->" in s:
        lhs, out = s.split("->")
    else:
        lhs = s
        counts: dict[str, int] = {}
        for ch in lhs.replace(",", ""):
            counts[ch] = counts.get(ch, 0) + 1
        out = "".join(sorted(ch for ch, c in counts.items() if c == 1))
    terms = lhs.split(",")
    if len(terms) != n_ops:
        raise ParseError(f"subscripts {subscripts!r} name {len(terms)} operands, but {n_ops} were given")
    for t in terms + [out]:
        for ch in t:
            if not (ch.isalpha() or ord(ch) > 127):
                raise ParseError(f"invalid index character {ch!r} in subscripts {subscripts!r}")
    for t in terms:
        if len(set(t)) != len(t):
            raise ParseError(f"repeated index within one operand ({t!r}) is not supported; take the diagonal first")
    if len(set(out)) != len(out):
        raise ParseError(f"repeated index in the output {out!r}")
    all_idx = set("".join(terms))
    for ch in out:
        if ch not in all_idx:
            raise ParseError(f"output index {ch!r} does not appear in any operand")
    return terms, out


def _prepare(subscripts, operands, S):
    ops = []
    for k, op in enumerate(operands):
        if isinstance(op, np.ndarray) and op.dtype == object and op.size == 0:
            pass  # empty exact input stays exact (asarray would make it float64)
        elif not is_array(op) or (isinstance(op, np.ndarray) and op.dtype == object):
            op = asarray(op, name=f"operand {k}")
        if not (isinstance(op, np.ndarray) and op.dtype.kind == "f" and np.isfinite(op).all()):
            # finite real floats are elements of every semiring; anything else gets the full check
            op = S.validate(op, f"operand {k}")
        ops.append(op)
    xp = namespace(*ops)
    terms, out = _parse(subscripts, len(ops))
    sizes = _sizes(terms, [op.shape for op in ops])
    ops, xp = _widen_int_operands(ops, sizes, S, xp)
    return xp, ops, terms, out, sizes


_INT64_SAFE = 1 << 62


def _widen_int_operands(ops, sizes, S, xp):
    """Integer/bool operands as ``int64`` when no intermediate can leave it, else as Python integers.

    Fixed-width integers wrap silently (int8: ``100 + 100 = -56``) and the pairwise steps combine
    operands with the array library's own ``+``/``*``.  Every intermediate of a contraction is bounded
    by ``Σ_k max|op_k|`` in a tropical semiring and by ``Π_k max|op_k| · Π_{all indices} size`` in the
    ordinary one, so when that bound fits in ``int64`` the operands are widened to ``int64``, and
    otherwise become NumPy object arrays of Python integers (exact, any size; operands of other libraries
    are then all converted to NumPy, the rule of :meth:`Semiring.mul`).  Returns ``(ops, xp)``.
    """
    is_int = []
    for op in ops:
        if isinstance(op, np.ndarray):
            is_int.append(op.dtype.kind in "iub")
        else:
            try:
                is_int.append(bool(xp.isdtype(op.dtype, ("integral", "bool"))))
            except (TypeError, ValueError, AttributeError):
                is_int.append(False)
    if not any(is_int):
        return ops, xp
    bounds = []
    for op, flag in zip(ops, is_int):
        if not flag:
            continue
        n = math.prod(int(d) for d in op.shape)
        if n == 0:
            bounds.append(0)
        elif isinstance(op, np.ndarray):
            bounds.append(max(abs(int(op.max())), abs(int(op.min()))))
        else:
            bounds.append(max(abs(int(xp.max(op))), abs(int(xp.min(op)))))
    if isinstance(S, RealSemiring):
        bound = math.prod(max(b, 1) for b in bounds) * math.prod(max(n, 1) for n in sizes.values())
    else:
        bound = sum(bounds)
    if bound <= _INT64_SAFE:
        return [
            op if not flag else op.astype(np.int64) if isinstance(op, np.ndarray) else xp.astype(op, xp.int64)
            for op, flag in zip(ops, is_int)
        ], xp
    new = []
    for op, flag in zip(ops, is_int):
        a = op if isinstance(op, np.ndarray) else np.asarray(to_numpy(op))
        if flag:
            obj = np.empty(a.shape, dtype=object)
            obj.ravel()[:] = [int(v) for v in a.ravel()] if a.size else []
            a = obj
        new.append(a)
    return new, namespace(*new)


def _sizes(terms, shapes) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for k, (t, shape) in enumerate(zip(terms, shapes)):
        if len(shape) != len(t):
            raise ShapeError(f"operand {k} has {len(shape)} dimensions but its subscripts {t!r} name {len(t)}")
        for ch, n in zip(t, shape):
            n = int(n)
            if sizes.setdefault(ch, n) != n:
                raise ShapeError(f"index {ch!r} has size {sizes[ch]} in one operand and {n} in operand {k}")
    return sizes


def contraction_path(subscripts: str, *shapes: Sequence[int], optimize: Any = "auto"):
    """The pairwise contraction path (opt_einsum's list of position tuples) for operands of the given shapes.

    ``optimize`` is an opt_einsum optimiser name (``"auto"``, ``"greedy"``, ``"optimal"``, ``"dp"``,
    ``"random-greedy"``, ``"branch-2"``, …), an explicit path, or ``"sequential"`` (left to right).

    Examples
    --------
    >>> contraction_path("ij,jk,kl->il", (2, 3), (3, 4), (4, 5), optimize="sequential")
    [(0, 1), (0, 1)]
    """
    if not isinstance(subscripts, str):
        raise ArgumentTypeError(f"subscripts must be an einsum string such as 'ij,jk->ik', got {subscripts!r}")
    shapes = [check_dims(sh, f"shape {k}", minimum=0) for k, sh in enumerate(shapes)]
    optimize = _check_optimize(optimize)
    n = len(shapes)
    if isinstance(optimize, str) and optimize == "sequential":
        return [(0, 1)] + [(0, k) for k in range(n - 2, 0, -1)] if n > 1 else [(0,)]
    if isinstance(optimize, (list, tuple)):
        return [tuple(int(i) for i in step) for step in optimize]
    try:
        path, _ = opt_einsum.contract_path(subscripts, *shapes, shapes=True, optimize=optimize)
    except (ValueError, KeyError) as err:  # opt_einsum's messages: wrong number of operands or indices
        raise ShapeError(f"contraction_path: the subscripts {subscripts!r} do not fit the shapes {shapes} ({err})") from None
    return [tuple(step) for step in path]


def _check_optimize(optimize):
    """``optimize`` if opt_einsum (or tropix: ``"sequential"``) knows it: a strategy name, an explicit path
    (a list of index tuples), a bool or an opt_einsum ``PathOptimizer``."""
    from opt_einsum.paths import _PATH_OPTIONS, PathOptimizer

    if isinstance(optimize, str):
        names = ("sequential", *sorted(_PATH_OPTIONS))
        if optimize not in names:
            raise OptionError(f"optimize must be one of {', '.join(repr(s) for s in names)}, an explicit path or "
                              f"an opt_einsum PathOptimizer; got {optimize!r}")
        return optimize
    if isinstance(optimize, (bool, PathOptimizer)):
        return optimize
    if isinstance(optimize, (list, tuple)):
        for step in optimize:
            if isinstance(step, (str, bytes)) or not isinstance(step, (list, tuple)) or not all(
                    isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in step):
                raise ArgumentTypeError(f"an explicit contraction path is a list of tuples of operand positions, "
                                        f"got the step {step!r}")
        return optimize
    raise ArgumentTypeError(f"optimize must be a strategy name, an explicit path or a PathOptimizer, got {optimize!r}")


@dataclass(frozen=True)
class _Node:
    term: str
    kind: str  # "leaf", "reduce", "pair"
    children: tuple = ()
    summed: str = ""  # indices eliminated at this node
    value: Any = None  # the node's tensor (kept only when backtracking)


def _take_step(items: list, step) -> list:
    """Remove the operands named by one contraction-path step from ``items`` and return them in order."""
    ids = sorted(set(step), reverse=True)
    for i in ids:
        if i >= len(items):
            raise ParseError(f"contraction path step {step} refers to operand {i}, but only {len(items)} remain")
    group = [items[i] for i in sorted(ids)]
    for i in ids:
        items.pop(i)
    return group


def contract(
    subscripts: str,
    *operands: Any,
    semiring: Semiring | str | None = None,
    optimize: Any = "auto",
    count: bool = False,
    assignment: bool = False,
):
    """Contract a tensor network given in einsum notation, over any semiring.

    Parameters
    ----------
    subscripts : str
        Einsum subscripts, e.g. ``"ij,jk,k->i"`` (an index may appear in any number of operands;
        without ``->`` the output is the indices appearing once, sorted).
    *operands : arrays
        One array library for all operands (NumPy, torch, array-api-strict, …); exact (int/object)
        NumPy input gives exact output.  Fixed-width integers never wrap around: they are widened to
        ``int64`` when every intermediate provably fits, and contracted with Python integers (a NumPy
        object array) otherwise.
    semiring : Semiring or str, optional
        ``None`` (default) is the ordinary semiring ``Real``; ``MaxPlus``/``MinPlus`` make it an
        optimisation over index assignments.
    optimize : str or path
        opt_einsum path optimiser name, an explicit path, or ``"sequential"``.
    count : bool
        Tropical semirings only: also return, for each output entry, the number of index assignments
        attaining the optimum (a float array; exact up to 2**53).
    assignment : bool
        Tropical semirings only: also return one optimal assignment ``{index: value}`` (for a non-scalar
        output, of the best output entry, whose indices are included); ``None`` when some index has
        size 0, so that no assignment exists.

    Returns
    -------
    array, or tuple
        The contraction; with ``count`` and/or ``assignment``: ``(value, count)``, ``(value, assignment)``
        or ``(value, count, assignment)``.

    Raises
    ------
    ParseError
        For malformed subscripts.
    ShapeError
        If operand dimensions disagree with the subscripts or with each other.
    OptionError, ArgumentTypeError
        For an ``optimize`` strategy opt_einsum does not have (it used to fall back silently) or of a wrong type.
    BackendMismatchError
        If operands come from different array libraries.
    SemiringMismatchError
        If ``count``/``assignment`` is requested for a non-tropical semiring.
    FloatOverflowError
        If, in max-plus/min-plus, a float ``⊗`` of finite values overflowed to the opposite infinity
        (``1e308 ⊗ 1e308``); exact input never overflows.

    Examples
    --------
    Maximum-weight walk ``i → j → k`` (two walks attain it) and one optimal assignment:

    >>> import numpy as np
    >>> from tropix import MaxPlus
    >>> W = np.array([[1, 3], [3, 0]])
    >>> contract("ij,jk->", W, W, semiring=MaxPlus, count=True)
    (6, 2)
    >>> contract("ij,jk->", W, W, semiring=MaxPlus, assignment=True)
    (6, {'i': 1, 'j': 0, 'k': 1})
    """
    S = get_semiring("real" if semiring is None else semiring)
    if (count or assignment) and not isinstance(S, TropicalSemiring):
        raise SemiringMismatchError(f"count= and assignment= need MaxPlus or MinPlus, not {S}")
    optimize = _check_optimize(optimize)
    if (
        FAST_PATH
        and isinstance(S, TropicalSemiring)
        and all(isinstance(op, np.ndarray) and op.dtype == np.float64 for op in operands)
    ):
        res = _contract_fast(subscripts, operands, S, optimize, count, assignment)
        if res is not None:
            return res
    xp, ops, terms, out, sizes = _prepare(subscripts, operands, S)
    try:
        if isinstance(S, TropicalSemiring):  # overflow is detected and raised below, not warned about
            with np.errstate(over="ignore", invalid="ignore"):
                return _contract_generic(subscripts, ops, terms, out, S, xp, optimize, count, assignment)
        return _contract_generic(subscripts, ops, terms, out, S, xp, optimize, count, assignment)
    except ConventionError:
        # the operands were validated, so the opposite infinity can only come from a float overflow
        raise FloatOverflowError(
            f"the {S} contraction overflowed the float range (an intermediate ⊗ of finite values gave "
            f"{'+inf' if S.sense == 1 else '-inf'}, which is not an element of {S}); use exact input "
            "(int/Fraction) or rescale the operands"
        ) from None


def _contract_generic(subscripts, ops, terms, out, S, xp, optimize, count, assignment):
    """The array-library path of :func:`contract` on validated operands."""
    path = contraction_path(subscripts if "->" in subscripts else ",".join(terms) + "->" + out,
                            *[op.shape for op in ops], optimize=optimize)
    keep_tree = bool(assignment)
    exact = any(isinstance(o, np.ndarray) and (o.dtype == object or not np.issubdtype(o.dtype, np.floating)) for o in ops)

    # the working list: (term, value, count, node); `uses` counts the remaining operands holding each index
    items = []
    uses: dict[str, int] = {}
    for t, op in zip(terms, ops):
        cnt = None
        if count:
            cnt = _ones_count(op, S, xp)
        items.append((t, op, cnt, _Node(t, "leaf", value=op if keep_tree else None)))
        for ch in t:
            uses[ch] = uses.get(ch, 0) + 1
    out_set = set(out)

    for step in path:
        if not step:
            continue
        group = _take_step(items, step)
        for g in group:
            for ch in g[0]:
                uses[ch] -= 1
        group_idx = set("".join(g[0] for g in group))
        rest_idx = out_set | {ch for ch in group_idx if uses[ch] > 0}
        cur = group[0]
        cur = _reduce_single(cur, rest_idx | set("".join(g[0] for g in group[1:])), S, xp, count, keep_tree)
        for j, nxt in enumerate(group[1:], start=1):
            later = set("".join(g[0] for g in group[j + 1 :]))
            keep = rest_idx | later
            nxt = _reduce_single(nxt, keep | set(cur[0]), S, xp, count, keep_tree)
            cur = _pair(cur, nxt, keep, S, xp, count, keep_tree, exact)
        if len(group) == 1:
            cur = _reduce_single(cur, rest_idx, S, xp, count, keep_tree)
        items.append(cur)
        for ch in cur[0]:
            uses[ch] = uses.get(ch, 0) + 1
    if len(items) != 1:
        # combine what is left (e.g. no path steps for a single operand)
        cur = items[0]
        for nxt in items[1:]:
            cur = _pair(cur, nxt, set(out), S, xp, count, keep_tree, exact)
        items = [cur]
    cur = _reduce_single(items[0], set(out), S, xp, count, keep_tree)
    term, val, cnt, node = cur
    perm = tuple(term.index(ch) for ch in out)
    if perm != tuple(range(len(out))):
        val = xp.permute_dims(val, perm) if not _is_obj(val) else np.transpose(val, perm)
        if cnt is not None:
            cnt = xp.permute_dims(cnt, perm) if not _is_obj(cnt) else np.transpose(cnt, perm)
    _check_overflow(val, S)
    val = _finish(val)
    res: list = [val]
    if count:
        res.append(_finish(cnt, as_int=True))
    if assignment:
        # an index of size 0: there is no assignment at all (the value is the tropical zero, the count 0)
        empty = any(int(n) == 0 for op in ops for n in op.shape)
        res.append(None if empty else _backtrack(node, out, val, term, perm, S))
    return res[0] if len(res) == 1 else tuple(res)


def _is_obj(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == object


def _check_overflow(val, S) -> None:
    """Raise :class:`~tropix.errors.FloatOverflowError` if a float result left the semiring.

    Inputs are validated, so the opposite infinity (``+inf`` in max-plus, ``-inf`` in min-plus) or NaN
    in the result can only come from an intermediate ``⊗`` (a float ``+``) that overflowed, e.g.
    ``1e308 ⊗ 1e308`` (NaN when such an overflow later met the tropical zero).
    """
    if S.sense is None or _is_obj(val):
        return
    a = val if isinstance(val, np.ndarray) else np.asarray(to_numpy(val))
    if a.dtype.kind != "f":
        return
    bad = np.isnan(a) | (a == (math.inf if S.sense == 1 else -math.inf))
    if bad.any():
        raise FloatOverflowError(
            f"the {S} contraction overflowed the float range (an intermediate ⊗ of finite values gave "
            f"{'+inf' if S.sense == 1 else '-inf'}, which is not an element of {S}); use exact input "
            "(int/Fraction) or rescale the operands"
        )


def _finish(v, as_int: bool = False):
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (np.floating, float)) and not isinstance(v, bool):
        f = float(v)
        if as_int and f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f
    return v


def _ones_count(op, S, xp):
    if isinstance(op, np.ndarray):
        z = S.is_zero(op)
        return np.where(z, 0.0, 1.0)
    one = xp.ones(op.shape, dtype=xp.float64)
    return xp.where(op == S.zero, xp.zeros_like(one), one)


def _reduce_single(item, keep, S, xp, count, keep_tree):
    """⊕-sum out the indices of one operand that nobody else needs."""
    term, val, cnt, node = item
    drop = [ch for ch in term if ch not in keep]
    if not drop:
        return item
    axes = tuple(term.index(ch) for ch in drop)
    newterm = "".join(ch for ch in term if ch in keep)
    nd = len(drop)
    # move dropped axes last and merge them
    perm = tuple(i for i in range(len(term)) if i not in axes) + axes
    shape_keep = tuple(int(val.shape[i]) for i in perm[: len(term) - nd])
    v = _permute(val, perm, xp)
    n_drop = math.prod(int(val.shape[i]) for i in axes)  # explicit: -1 is ambiguous for size-0 arrays
    v = _reshape(v, shape_keep + (n_drop,), xp)
    if count:
        c = _reshape(_permute(cnt, perm, xp), shape_keep + (n_drop,), xp)
        best = _arr(S.sum(v, axis=-1))
        mask = v == _expand(best, -1, xp)
        newc = _arr(_sum(_where(mask, c, 0, xp), -1, xp))
        newval, newcnt = best, newc
    else:
        newval, newcnt = _arr(S.sum(v, axis=-1)), None
    newnode = _Node(newterm, "reduce", (node,), "".join(drop), value=newval if keep_tree else None)
    return (newterm, newval, newcnt, newnode)


def _permute(x, perm, xp):
    if perm == tuple(range(len(perm))):
        return x
    return x.transpose(perm) if isinstance(x, np.ndarray) else xp.permute_dims(x, perm)


def _reshape(x, shape, xp):
    return x.reshape(shape) if isinstance(x, np.ndarray) else xp.reshape(x, shape)


def _expand(x, axis, xp):
    return np.expand_dims(x, axis) if _is_obj(x) else xp.expand_dims(x, axis=axis)


def _where(mask, a, b, xp):
    if isinstance(a, np.ndarray):
        return np.where(mask, a, b)
    return xp.where(mask, a, xp.zeros_like(a) + b)


def _sum(x, axis, xp):
    return np.sum(x, axis=axis) if isinstance(x, np.ndarray) else xp.sum(x, axis=axis)


_MAX_NDIM = 64  # the most dimensions of a NumPy (and torch, CuPy) array


def _pair(a_item, b_item, keep, S, xp, count, keep_tree, exact):
    ta, A, CA, na = a_item
    tb, B, CB, nb = b_item
    sa, sb = set(ta), set(tb)
    batch = [ch for ch in ta if ch in sb and ch in keep]
    con = [ch for ch in ta if ch in sb and ch not in keep]
    left = [ch for ch in ta if ch not in sb]
    right = [ch for ch in tb if ch not in sa]
    dims = {ch: int(n) for ch, n in zip(ta, A.shape)}
    dims.update({ch: int(n) for ch, n in zip(tb, B.shape)})
    n_out = len(batch) + len(left) + len(right)
    if n_out > _MAX_NDIM:  # (NumPy raised a raw ValueError in a reshape; torch and CuPy have the same limit)
        raise SizeLimitError(
            f"this contraction path makes an intermediate tensor with {n_out} indices, beyond the {_MAX_NDIM} "
            "dimensions an array can have (even if they have size 1): choose a path whose intermediates keep "
            "fewer open indices (e.g. one that follows a lattice row by row), or merge indices first"
        )
    size_a = math.prod(int(n) for n in A.shape)
    size_b = math.prod(int(n) for n in B.shape)
    union = math.prod(dims.values())
    if min(size_a, size_b) <= _SMALL and max(size_a, size_b) >= 4 * _SMALL:
        # a tiny operand (a bond tensor) against a big one: loop over its entries, slicing the big one
        if size_b > size_a:
            return _pair_small(a_item, b_item, keep, S, xp, count, keep_tree, dims, small_first=True)
        return _pair_small(b_item, a_item, keep, S, xp, count, keep_tree, dims, small_first=False)
    if union <= 4 * max(size_a, size_b):
        # one operand is small: broadcast it onto the big one in the big one's own layout (no transposes)
        if size_b > size_a:
            return _pair_broadcast(b_item, a_item, keep, S, xp, count, keep_tree, dims, swap=True)
        return _pair_broadcast(a_item, b_item, keep, S, xp, count, keep_tree, dims)
    pa = tuple(ta.index(ch) for ch in batch + left + con)
    pb = tuple(tb.index(ch) for ch in batch + con + right)
    nbt = math.prod(dims[c] for c in batch)
    nl = math.prod(dims[c] for c in left)
    nc = math.prod(dims[c] for c in con)
    nr = math.prod(dims[c] for c in right)
    A3 = _reshape(_permute(A, pa, xp), (nbt, nl, nc), xp)
    B3 = _reshape(_permute(B, pb, xp), (nbt, nc, nr), xp)
    if count:
        CA3 = _reshape(_permute(CA, pa, xp), (nbt, nl, nc), xp)
        CB3 = _reshape(_permute(CB, pb, xp), (nbt, nc, nr), xp)
        V, C = _count_kernel(A3, B3, CA3, CB3, S, xp)
    else:
        V, C = _kernel(A3, B3, S, xp), None
    outterm = "".join(batch + left + right)
    shape = tuple(dims[c] for c in outterm)
    V = _reshape(V, shape, xp)
    if C is not None:
        C = _reshape(C, shape, xp)
    node = _Node(outterm, "pair", (na, nb), "".join(con), value=V if keep_tree else None)
    return (outterm, V, C, node)


def _pair_small(small_item, big_item, keep, S, xp, count, keep_tree, dims, small_first):
    """Pair step where one operand has at most ``_SMALL`` entries.

    The big operand keeps its layout; runs of its adjacent axes with the same role (shared with the small
    operand or not, summed or not) are merged so that every array operation runs over long axes.  For
    each value of the small operand's own indices and of the summed indices, one slice of the big
    operand is combined with the matching slice of the small one and ⊕-accumulated; the small
    operand's own indices go in front of the result.
    """
    ts, Sm, CS, ns = small_item
    tb, Bg, CB, nbig = big_item
    ss, sbig = set(ts), set(tb)
    con_set = {ch for ch in ts if ch in sbig and ch not in keep}
    sonly = [ch for ch in ts if ch not in sbig]
    groups: list[list[str]] = []
    key_prev = None
    for ch in tb:
        key = (ch in ss, ch in con_set)
        if key != key_prev:
            groups.append([])
            key_prev = key
        groups[-1].append(ch)
    gdims = [math.prod(dims[c] for c in g) for g in groups]
    con_g = [i for i, g in enumerate(groups) if g[0] in con_set]
    rest_g = [i for i, g in enumerate(groups) if g[0] not in con_set]
    rest_gshape = tuple(gdims[i] for i in rest_g)
    bshape = tuple(gdims[i] if groups[i][0] in ss else 1 for i in rest_g)
    so_shape = tuple(dims[ch] for ch in sonly)
    con_chars = [c for i in con_g for c in groups[i]]
    batch_chars = [c for i in rest_g if groups[i][0] in ss for c in groups[i]]
    perm = tuple(ts.index(ch) for ch in sonly + con_chars + batch_chars)
    sshape = so_shape + tuple(gdims[i] for i in con_g) + bshape
    Sp = _reshape(_permute(Sm, perm, xp), sshape, xp)
    CSp = _reshape(_permute(CS, perm, xp), sshape, xp) if count else None
    Bgg = _reshape(Bg, tuple(gdims), xp)
    CBg = _reshape(CB, tuple(gdims), xp) if count else None
    rest = [c for i in rest_g for c in groups[i]]
    outterm = "".join(sonly) + "".join(rest)
    shape = tuple(dims[ch] for ch in outterm)
    children = (ns, nbig) if small_first else (nbig, ns)
    mul, add = _fast_ops(S, xp)
    if not con_g:
        # nothing is summed: one broadcast writes the result with the new indices in front
        pad = (1,) * len(sonly)
        T = _arr(mul(Sp, _reshape(Bgg, pad + rest_gshape, xp)))
        full = so_shape + rest_gshape
        if tuple(int(n) for n in T.shape) != full:
            T = _arr(T + _zeros_shape(full, T, xp))
        C = None
        if count:
            C = CSp * _reshape(CBg, pad + rest_gshape, xp)
            if tuple(int(n) for n in C.shape) != full:
                C = C * _ones_like_shape(T, xp)
            C = _reshape(C, shape, xp)
        node = _Node(outterm, "pair", children, "", value=_reshape(T, shape, xp) if keep_tree else None)
        return (outterm, _reshape(T, shape, xp), C, node)
    results, counts = [], []
    so_ranges = [range(n) for n in so_shape]
    con_ranges = [range(gdims[i]) for i in con_g]
    for vs in itertools.product(*so_ranges):
        acc = cacc = None
        for vc in itertools.product(*con_ranges):
            idx: list = [slice(None)] * len(groups)
            for gi, v in zip(con_g, vc):
                idx[gi] = v
            big = Bgg[tuple(idx)]
            sm = Sp[tuple(vs) + tuple(vc) + (...,)]
            term = mul(big, sm)
            if count:
                cterm = CBg[tuple(idx)] * CSp[tuple(vs) + tuple(vc) + (...,)]
                if acc is None:
                    acc, cacc = term, cterm
                else:
                    new = add(acc, term)
                    cacc = _where(acc == new, cacc, 0, xp) + _where(term == new, cterm, 0, xp)
                    acc = new
            else:
                acc = term if acc is None else add(acc, term)
        if tuple(int(n) for n in acc.shape) != rest_gshape:
            acc = acc + _zeros_shape(rest_gshape, acc, xp)
        results.append(acc)
        if count:
            if tuple(int(n) for n in cacc.shape) != rest_gshape:
                cacc = cacc * _ones_like_shape(acc, xp)
            counts.append(cacc)
    T = results[0] if not sonly else _stack(results, xp)
    T = _reshape(T, shape, xp)
    C = None
    if count:
        C = counts[0] if not sonly else _stack(counts, xp)
        C = _reshape(C, shape, xp)
    node = _Node(outterm, "pair", children, "".join(con_chars), value=T if keep_tree else None)
    return (outterm, T, C, node)


def _arr(x):
    """Reductions of NumPy object arrays down to zero dimensions return Python scalars; wrap them again."""
    if hasattr(x, "shape"):
        return x
    out = np.empty((), dtype=object)
    out[()] = x
    return out


def _fast_ops(S, xp):
    """Elementwise ⊗ and ⊕ of ``S`` for arrays of one library, without the per-call dispatch of
    :meth:`Semiring.mul`/:meth:`Semiring.add` (operands here are already validated arrays)."""
    if isinstance(S, TropicalSemiring):
        return operator.add, (xp.maximum if S.sense == 1 else xp.minimum)
    if isinstance(S, RealSemiring):
        return operator.mul, operator.add
    return S.mul, S.add


def _stack(xs, xp):
    if isinstance(xs[0], np.ndarray):
        return np.stack(xs, axis=0)
    return xp.stack(xs, axis=0)


def _pair_broadcast(a_item, b_item, keep, S, xp, count, keep_tree, dims, swap=False):
    """``⊕_{con} A ⊗ B`` by broadcasting ``B`` onto ``A``'s axes (``A`` keeps its layout).

    Runs of adjacent axes with the same role (in A? in B? summed?) are merged first, so NumPy's inner
    loops run over long axes instead of many axes of length 2.
    """
    ta, A, CA, na = a_item
    tb, B, CB, nb = b_item
    bonly = [ch for ch in tb if ch not in ta]
    uterm = ta + "".join(bonly)
    sa, sb = set(ta), set(tb)
    con_set = {ch for ch in ta if ch in sb and ch not in keep}
    groups: list[list[str]] = []
    key_prev = None
    for ch in uterm:
        key = (ch in sa, ch in sb, ch in con_set)
        if key != key_prev:
            groups.append([])
            key_prev = key
        groups[-1].append(ch)
    gshape_a = tuple(math.prod(dims[c] for c in g) if g[0] in sa else 1 for g in groups)
    gshape_b = tuple(math.prod(dims[c] for c in g) if g[0] in sb else 1 for g in groups)
    border = [ch for ch in uterm if ch in sb]
    pb = tuple(tb.index(ch) for ch in border)
    Ae = _reshape(A, gshape_a, xp)
    Be = _reshape(_permute(B, pb, xp), gshape_b, xp)
    T = _arr(_fast_ops(S, xp)[0](Ae, Be))  # 0-d object arrays combine to a bare scalar
    con_axes = [i for i, g in enumerate(groups) if g[0] in con_set]
    if count:
        P = _reshape(CA, gshape_a, xp) * _reshape(_permute(CB, pb, xp), gshape_b, xp)
        for ax in reversed(con_axes):
            V = _arr(S.sum(T, axis=ax))
            mask = T == _expand(V, ax, xp)
            P = _arr(_sum(_where(mask, P, 0, xp), ax, xp))
            T = V
        C = P
    else:
        for ax in reversed(con_axes):
            T = _arr(S.sum(T, axis=ax))
        C = None
    outterm = "".join(ch for ch in uterm if ch not in con_set)
    shape = tuple(dims[ch] for ch in outterm)
    full = tuple(math.prod(dims[c] for c in g) for g in groups if g[0] not in con_set)
    if tuple(int(n) for n in T.shape) != full:  # no reduction happened and broadcasting left a 1
        T = _arr(T + _zeros_shape(full, T, xp))
    T = _reshape(T, shape, xp)
    if C is not None:
        if tuple(int(n) for n in C.shape) != full:
            C = C * _ones_like_shape(_reshape(T, full, xp), xp)
        C = _reshape(C, shape, xp)
    con = "".join(ch for ch in uterm if ch in con_set)
    children = (nb, na) if swap else (na, nb)
    node = _Node(outterm, "pair", children, con, value=T if keep_tree else None)
    return (outterm, T, C, node)


def _zeros_shape(shape, like, xp):
    if isinstance(like, np.ndarray):
        return np.zeros(shape, dtype=like.dtype if like.dtype != object else np.int64)
    return xp.zeros(shape, dtype=like.dtype)


def _ones_like_shape(T, xp):
    if isinstance(T, np.ndarray):
        return np.ones(T.shape)
    return xp.ones(T.shape, dtype=xp.float64)


def _kernel(A3, B3, S, xp):
    """Batched semiring product of (b, l, c) and (b, c, r) arrays."""
    nb, nl, nc = (int(s) for s in A3.shape)
    nr = int(B3.shape[2])
    if isinstance(S, RealSemiring):
        if _is_obj(A3) or _is_obj(B3):
            return np.matmul(A3, B3)
        return xp.matmul(A3, B3)
    if nc == 1:
        return S.mul(A3, B3)  # (b, l, 1) ⊗ (b, 1, r) broadcasts to (b, l, r)
    if isinstance(S, TropicalSemiring) and nb * 4 <= max(1, nl * nr // 64) and not (_is_obj(A3) or _is_obj(B3)):
        outs = [_tropical_mm(A3[i, ...], B3[i, ...], S, xp) for i in range(nb)]
        return xp.stack(outs, axis=0)
    if isinstance(S, TropicalSemiring) and nb == 1:
        out = _tropical_mm(A3[0, ...], B3[0, ...], S, xp)
        return _expand(out, 0, xp)
    return _broadcast(A3, B3, S, xp)


def _broadcast(A3, B3, S, xp):
    nb, nl, nc = (int(s) for s in A3.shape)
    nr = int(B3.shape[2])
    per = max(1, nl * nc * nr)
    step = max(1, _CHUNK // per)
    blocks = []
    if step >= nb:
        return S.sum(S.mul(_expand(A3, 3, xp), _expand(B3, 1, xp)), axis=2)
    if nb > 1 and step < 1:  # pragma: no cover
        step = 1
    for b0 in range(0, nb, step):
        b1 = min(nb, b0 + step)
        blocks.append(S.sum(S.mul(_expand(A3[b0:b1, ...], 3, xp), _expand(B3[b0:b1, ...], 1, xp)), axis=2))
    if _is_obj(blocks[0]):
        return np.concatenate(blocks, axis=0)
    return xp.concat(blocks, axis=0)


def _count_kernel(A3, B3, CA3, CB3, S, xp):
    nb, nl, nc = (int(s) for s in A3.shape)
    nr = int(B3.shape[2])
    step = max(1, _CHUNK // max(1, nl * nc * nr))
    Vs, Cs = [], []
    for b0 in range(0, nb, step):
        b1 = min(nb, b0 + step)
        T = S.mul(_expand(A3[b0:b1, ...], 3, xp), _expand(B3[b0:b1, ...], 1, xp))  # (b, l, c, r)
        V = S.sum(T, axis=2)
        mask = T == _expand(V, 2, xp)
        P = _expand(CA3[b0:b1, ...], 3, xp) * _expand(CB3[b0:b1, ...], 1, xp)
        C = _sum(_where(mask, P, 0, xp), 2, xp)
        Vs.append(V)
        Cs.append(C)
    if len(Vs) == 1:
        return Vs[0], Cs[0]
    cat = (lambda xs: np.concatenate(xs, axis=0)) if isinstance(Vs[0], np.ndarray) else (lambda xs: xp.concat(xs, axis=0))
    return cat(Vs), cat(Cs)


def _backtrack(root: _Node, out: str, val, term: str, perm, S) -> dict:
    """One optimal assignment, by walking the contraction tree from the root to the leaves."""
    assign: dict[str, int] = {}
    v = np.asarray(to_numpy(val)) if not _is_obj(val) else val
    if v.ndim:
        flat = list(v.ravel())  # compared as they are: float() would round Fractions and overflow on big ints
        best = (max if S.sense == 1 else min)(range(len(flat)), key=flat.__getitem__)
        idx = np.unravel_index(best, v.shape)
        for ch, i in zip(out, idx):
            assign[ch] = int(i)
    stack = [root]
    while stack:
        node = stack.pop()
        if node.kind == "leaf":
            continue
        if node.summed:
            assign.update(_best_summed(node, assign, S))
        stack.extend(node.children)
    return dict(sorted(assign.items()))


def _np_value(node: _Node):
    v = node.value
    return v if isinstance(v, np.ndarray) else np.asarray(to_numpy(v))


def _slice(node: _Node, assign: dict, free: str):
    """``node.value`` with every index fixed by ``assign`` except those in ``free`` (kept in that order)."""
    v = _np_value(node)
    idx = tuple(assign[ch] if ch not in free else slice(None) for ch in node.term)
    v = v[idx]
    remaining = [ch for ch in node.term if ch in free]
    if remaining:
        v = np.transpose(v, [remaining.index(ch) for ch in free if ch in remaining])
    return v, [ch for ch in free if ch in remaining]


def _best_summed(node: _Node, assign: dict, S) -> dict:
    free = node.summed
    if node.kind == "reduce":
        v, order = _slice(node.children[0], assign, free)
        tot = v
    else:
        a, oa = _slice(node.children[0], assign, free)
        b, ob = _slice(node.children[1], assign, free)
        tot = a + b
    flat = np.asarray(tot, dtype=object).ravel() if _is_obj(tot) else np.asarray(tot).ravel()
    best = (max if S.sense == 1 else min)(range(flat.size), key=flat.__getitem__)  # exact comparison
    idx = np.unravel_index(best, tot.shape)
    return {ch: int(i) for ch, i in zip(free, idx)}


# -- compiled fast path: NumPy float64 operands in MaxPlus/MinPlus ---------------------------------------
#
# The pairwise steps of the generic path above are replayed symbolically once per (subscripts, shapes,
# path) into a plan of index arithmetic (see :mod:`tropix.tn._kernels`), which one compiled call then
# executes: no Python work and no temporaries per step.  The generic path stays the reference; the tests
# compare the two on random networks (values, counts, assignments).

FAST_PATH = True
"""Use the compiled executor for NumPy float64 operands in MaxPlus/MinPlus (switched off in tests to
compare against the generic path)."""

_PLANS: dict = {}
_MAX_PLANS = 64
# a step summing over at least this many values with at least this much work is a matrix product in
# disguise: the generic path (packed, unrolled tropical matmul kernel) is several times faster there
_HEAVY_SUMMED = 32
_HEAVY_WORK = 1 << 18


@dataclass(frozen=True)
class _Plan:
    steps: np.ndarray  # (n_steps, 10) uint64, see tropix.tn._kernels
    axes: np.ndarray  # (*, 3) uint64
    cons: np.ndarray  # (*, 2) uint64
    max_outer: int
    input_end: int  # operands occupy arena[1:input_end]
    arena_size: int
    slots: tuple  # per slot: (term, offset, kind, children, summed)
    result: int  # slot of the result
    perm: tuple  # result term -> output order
    sizes: dict
    heavy: bool  # a matrix-product-like step: the generic path's blocked tropical matmul is faster


class _Arena:
    """First-fit allocation of intermediates in the flat arena (nothing is reused with ``keep``)."""

    def __init__(self, start: int, keep: bool):
        self.end = self.peak = start
        self.keep = keep
        self.free: list[list[int]] = []

    def take(self, n: int) -> int:
        for i, (o, s) in enumerate(self.free):
            if s >= n:
                if s == n:
                    self.free.pop(i)
                else:
                    self.free[i] = [o + n, s - n]
                return o
        o = self.end
        self.end += n
        self.peak = max(self.peak, self.end)
        return o

    def give(self, o: int, n: int) -> None:
        if self.keep:
            return
        blocks = sorted(self.free + [[o, n]])
        merged: list[list[int]] = []
        for b in blocks:
            if merged and merged[-1][0] + merged[-1][1] == b[0]:
                merged[-1][1] += b[1]
            else:
                merged.append(list(b))
        if merged and merged[-1][0] + merged[-1][1] == self.end:
            self.end = merged.pop()[0]
        self.free = merged


def _merged_axes(term, sa, sb, sizes):
    """Output axes ``(dim, stride_a, stride_b)`` in ``term`` order, adjacent ones merged when possible."""
    ax: list[list[int]] = []
    for ch in term:
        d, a, b = sizes[ch], sa.get(ch, 0), sb.get(ch, 0)
        if d == 1:
            continue
        if ax and ax[-1][1] == a * d and ax[-1][2] == b * d:
            ax[-1] = [ax[-1][0] * d, a, b]
        else:
            ax.append([d, a, b])
    return ax or [[1, 0, 0]]


def _strides(term, sizes):
    st, acc = {}, 1
    for ch in reversed(term):
        st[ch] = acc
        acc *= sizes[ch]
    return st


def _build_plan(terms, out, sizes, path, keep: bool) -> _Plan:
    n = len(terms)
    size_cache: dict[str, int] = {}

    def size(t):
        v = size_cache.get(t)
        if v is None:
            v = size_cache[t] = math.prod(sizes[c] for c in t)
        return v

    slots: list[list] = []
    off = 1
    for t in terms:
        slots.append([t, off, "leaf", (), ""])
        off += size(t)
    input_end = off
    arena = _Arena(input_end, keep)
    steps: list[list[int]] = []
    axes: list[list[int]] = []
    cons: list[tuple[int, int]] = []
    n_cons = 0
    max_outer = 0
    heavy = False

    def emit(a, b, o, con, sa=None, sb=None, ax=None):
        nonlocal n_cons, max_outer
        oa = slots[a][1]
        ob = 0 if b is None else slots[b][1]
        if ax is None:
            sa = _strides(slots[a][0], sizes)
            sb = {} if b is None else _strides(slots[b][0], sizes)
            ax = _merged_axes(slots[o][0], sa, sb, sizes)
        pairs = [(0, 0)]  # (A, B) offsets of every value of the summed indices
        for ch in con:
            xa, xb = sa.get(ch, 0), sb.get(ch, 0)
            pairs = [(pa + r * xa, pb + r * xb) for pa, pb in pairs for r in range(sizes[ch])]
        if ax[-1][1] == 0 and ax[-1][2] != 0:  # the kernel wants the innermost axis to run over A
            ax = [[d, y, x] for d, x, y in ax]
            pairs = [(y, x) for x, y in pairs]
            oa, ob = ob, oa
        nin, ia, ib = ax[-1]
        x0 = len(axes)
        axes.extend(ax[:-1])
        max_outer = max(max_outer, len(ax) - 1)
        nonlocal heavy
        work = math.prod(d for d, _, _ in ax) * len(pairs)
        heavy = heavy or (len(pairs) >= _HEAVY_SUMMED and work >= _HEAVY_WORK)
        steps.append([oa, ob, slots[o][1], x0, len(axes), nin, ia, ib, n_cons, n_cons + len(pairs)])
        cons.extend(pairs)
        n_cons += len(pairs)

    def new_slot(term, kind, children, summed):
        slots.append([term, arena.take(size(term)), kind, children, summed])
        return len(slots) - 1

    def release(s):
        if s >= n:
            arena.give(slots[s][1], size(slots[s][0]))

    def reduce(s, keep_idx):
        t = slots[s][0]
        drop = "".join(ch for ch in t if ch not in keep_idx)
        if not drop:
            return s
        o = new_slot("".join(ch for ch in t if ch in keep_idx), "reduce", (s,), drop)
        emit(s, None, o, drop)
        release(s)
        return o

    def pair(a, b, keep_idx):
        ta, tb = slots[a][0], slots[b][0]
        con = "".join(ch for ch in ta if ch in tb and ch not in keep_idx)
        big, small = (ta, tb) if size(ta) >= size(tb) else (tb, ta)
        rest = "".join(ch for ch in big if ch not in con)
        own = "".join(ch for ch in small if ch not in con and ch not in big)
        sa, sb = _strides(ta, sizes), _strides(tb, sizes)
        term = own + rest  # the big operand's layout, new indices in front
        ax = _merged_axes(term, sa, sb, sizes)
        if own:
            back = rest + own
            ax_back = _merged_axes(back, sa, sb, sizes)
            if ax_back[-1][0] > ax[-1][0]:
                term, ax = back, ax_back
        o = new_slot(term, "pair", (a, b), con)
        emit(a, b, o, con, sa, sb, ax)
        release(a)
        release(b)
        return o

    # the same bookkeeping as the generic loop in `contract`
    items = list(range(n))
    uses: dict[str, int] = {}
    for t in terms:
        for ch in t:
            uses[ch] = uses.get(ch, 0) + 1
    out_set = set(out)
    for step in path:
        if not step:
            continue
        group = _take_step(items, step)
        gterms = [slots[g][0] for g in group]
        for t in gterms:
            for ch in t:
                uses[ch] -= 1
        rest_idx = out_set | {ch for ch in set("".join(gterms)) if uses[ch] > 0}
        cur = reduce(group[0], rest_idx | set("".join(gterms[1:])))
        for j, nxt in enumerate(group[1:], start=1):
            keep_idx = rest_idx | set("".join(gterms[j + 1 :]))
            nxt = reduce(nxt, keep_idx | set(slots[cur][0]))
            cur = pair(cur, nxt, keep_idx)
        if len(group) == 1:
            cur = reduce(cur, rest_idx)
        items.append(cur)
        for ch in slots[cur][0]:
            uses[ch] = uses.get(ch, 0) + 1
    cur = items[0]
    for nxt in items[1:]:
        cur = pair(cur, nxt, out_set)
    cur = reduce(cur, out_set)
    if cur < n:  # the result is an operand itself: copy it to an intermediate slot
        o = new_slot(slots[cur][0], "reduce", (cur,), "")
        emit(cur, None, o, "")
        cur = o
    term = slots[cur][0]
    return _Plan(
        steps=np.array(steps, dtype=np.uint64).reshape(-1, 10),
        axes=np.array(axes, dtype=np.uint64).reshape(-1, 3),
        cons=np.array(cons, dtype=np.uint64).reshape(-1, 2),
        max_outer=max_outer,
        input_end=input_end,
        arena_size=arena.peak,
        slots=tuple(tuple(s) for s in slots),
        result=cur,
        perm=tuple(term.index(ch) for ch in out),
        sizes=dict(sizes),
        heavy=heavy,
    )


def _get_plan(subscripts, ops, optimize, keep):
    shapes = tuple(op.shape for op in ops)
    if isinstance(optimize, str):
        okey = optimize
    elif isinstance(optimize, (list, tuple)):
        okey = tuple(tuple(int(i) for i in step) for step in optimize)
    else:  # a path optimiser object: no caching
        okey = None
    key = (subscripts, shapes, okey, keep)
    plan = _PLANS.get(key) if okey is not None else None
    if plan is None:
        terms, out = _parse(subscripts, len(ops))
        sizes = _sizes(terms, shapes)
        if any(v == 0 for v in sizes.values()):
            return None  # empty index ranges: the generic path
        path = contraction_path(subscripts if "->" in subscripts else ",".join(terms) + "->" + out,
                                *shapes, optimize=optimize)
        plan = _build_plan(terms, out, sizes, path, keep)
        if okey is not None:
            if len(_PLANS) >= _MAX_PLANS:
                _PLANS.clear()  # (no eviction order to maintain; safe when threads share the cache)
            _PLANS[key] = plan
    return plan


def _contract_fast(subscripts, operands, S, optimize, count, assignment):
    """The compiled path, or ``None`` when it does not apply (the caller then runs the generic one)."""
    if not isinstance(subscripts, str):
        return None
    try:  # numba is imported (and the kernels loaded from its cache) on the first fast-path call only
        from ._kernels import run_plan as run
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    plan = _get_plan(subscripts, operands, optimize, bool(assignment))
    if plan is None or plan.heavy:
        return None
    V = np.empty(plan.arena_size)
    V[0] = 0.0
    inp = V[1 : plan.input_end]
    if operands:
        np.concatenate([op.ravel() for op in operands], out=inp)
    if not np.isfinite(inp).all():
        for k, op in enumerate(operands):  # NaN or the wrong infinity: the specific error
            S.validate(op, f"operand {k}")
    if S.sense == -1:
        np.negative(inp, out=inp)
    if count:
        C = np.empty(plan.arena_size)
        C[0] = 1.0
        np.not_equal(inp, -np.inf, out=C[1 : plan.input_end])
    else:
        C = V[:1]
    run(V, C, plan.steps, plan.axes, plan.cons, bool(count), plan.max_outer)
    term, off = plan.slots[plan.result][:2]
    shape = tuple(plan.sizes[ch] for ch in term)
    nres = math.prod(shape)

    def result(arr, neg):
        r = arr[off : off + nres].reshape(shape).transpose(plan.perm)
        return np.negative(r) if neg else r.copy()

    val = result(V, S.sense == -1)
    _check_overflow(val, S)
    val = _finish(val)
    res: list = [val]
    if count:
        res.append(_finish(result(C, False), as_int=True))
    if assignment:
        # backtrack in the arena itself, where min-plus was run as max-plus of the negated network
        nodes: list[_Node] = []
        for t, o, kind, children, summed in plan.slots:
            shp = tuple(plan.sizes[ch] for ch in t)
            v = V[o : o + math.prod(shp)].reshape(shp)
            nodes.append(_Node(t, kind, tuple(nodes[c] for c in children), summed, value=v))
        root_val = result(V, False)
        res.append(_backtrack(nodes[plan.result], "".join(term[i] for i in plan.perm), root_val, term, plan.perm,
                              get_semiring("maxplus")))
    return res[0] if len(res) == 1 else tuple(res)
