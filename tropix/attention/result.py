"""The immutable result of an approximate attention call (shared by every certified method)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .._repr import compact_repr
from ..errors import BoundViolationError, DomainError, ShapeError

__all__ = ["AttentionResult"]


def _frozen(a):
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def capped(bound, output, vmax):
    """``min(bound, |output_i| + vmax)`` per row, for a method whose exact answer is a convex combination of
    values of norm at most ``vmax`` (the given ``v``: not ``tt_compressed``, whose exact answer mixes the
    exact-weight values): then ``|o_i| <= vmax`` and ``|output_i - o_i| <= |output_i| + vmax`` whatever
    happened in between (a rounding bound of scores near ``1e15`` otherwise reports ``1e22 vmax``).  Norms in
    float64, enlarged by ``2^-30`` for their own rounding; a non-finite output row keeps its bound."""
    bound = np.asarray(bound, dtype=np.float64)
    vm = np.asarray(vmax, dtype=np.float64)[..., None]
    if not np.any(bound > vm):  # (the cap is at least vmax: nothing to do, and no pass over the output)
        return bound
    try:
        from .._array import to_numpy
        from .dense import _rownorm

        out = np.asarray(to_numpy(output), dtype=np.float64)
        with np.errstate(all="ignore"):  # (a row holding inf or NaN: its norm is NaN, the bound stays)
            cap = (_rownorm(out) + np.asarray(vmax, dtype=np.float64)[..., None]) * (1 + 2.0**-30)
    except (TypeError, ValueError):  # an output the norms cannot read (not an array of numbers): no cap
        return bound
    if cap.shape != bound.shape:
        return bound
    return np.where(cap < bound, cap, bound)


@dataclass(frozen=True)
class AttentionResult:
    """Output of a certified attention method, with what it kept and a rigorous per-row bound.

    Attributes
    ----------
    output
        Attention output, shape ``(..., n_q, d_v)``, in the array library of the input.
    bound : numpy.ndarray
        Shape ``(..., n_q)``: certified bound on ``|output_i - o_i|_2`` where ``o_i`` is the exact
        (real-arithmetic) softmax attention of the given inputs.  It includes floating-point rounding.
        It is ``<= eps * vmax`` except when ``eps`` is below the rounding floor (then nothing is pruned and
        the bound is the rounding floor: about ``1e-13`` relative in float64; for narrower inputs, which are
        evaluated in float64 where their own precision could not meet the request, the rounding of the output
        to the input's dtype, ``u`` relative).
    eps : float
        The requested tolerance (relative to the largest value vector).
    vmax : numpy.ndarray
        Shape ``(...)``: largest ``|v_j|_2`` of each head (the unit of ``eps``).
    support : numpy.ndarray
        Shape ``(..., n_q)``: number of keys whose exact score entered row ``i`` of the output.
    method : str
        Name of the method that produced the output (``"dense"`` when ``auto`` fell back).
    counters : Mapping[str, int]
        Work counters, e.g. ``score_evals`` (exact ``q.k`` products), ``bound_evals`` (block bounds).
    kept : tuple
        Per head (in C order of the leading dims): a tuple of ``(query_indices, key_indices)`` groups;
        every query in a group used exactly the listed keys (before any key-level thresholding, which
        ``support`` reflects).
    """

    output: Any
    bound: np.ndarray
    eps: float
    vmax: np.ndarray
    support: np.ndarray
    method: str
    counters: Mapping[str, int] = field(default_factory=dict)
    kept: tuple = ()
    reference_slack: Any = None
    _repr_fields = ("method", "output", "eps", "counters")
    __repr__ = compact_repr

    def _repr_extra(self):
        rb, sp = self.relative_bound, self.support
        return (("max_relative_bound", float(rb.max()) if rb.size else 0.0),
                ("mean_support", float(sp.mean()) if sp.size else 0.0))

    def __post_init__(self):
        object.__setattr__(self, "bound", _frozen(self.bound))
        object.__setattr__(self, "vmax", _frozen(self.vmax))
        object.__setattr__(self, "support", _frozen(self.support))
        object.__setattr__(self, "counters", MappingProxyType(dict(self.counters)))
        slack = np.zeros_like(self.bound) if self.reference_slack is None else self.reference_slack
        object.__setattr__(self, "reference_slack", _frozen(np.broadcast_to(slack, self.bound.shape)))

    @property
    def relative_bound(self) -> np.ndarray:
        """``bound / vmax`` per row (compare with ``eps``)."""
        vm = np.asarray(self.vmax)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(vm > 0, self.bound / np.where(vm > 0, vm, 1), 0.0)

    def kept_keys(self, i: int, head: tuple = ()) -> np.ndarray:
        """Indices of the keys evaluated exactly for query ``i`` of head ``head`` (a tuple of batch indices).

        The list may include keys a mask or the causal term hides from the query (they carry no weight): the
        block methods (``region_sparse``, ``hierarchical``) evaluate whole leaves of keys, and a row computed
        densely lists every key.  ``support`` counts only the keys the query sees."""
        if not self.kept:
            raise DomainError("this result does not record kept keys (dense evaluates every key)")
        shape = self.bound.shape[:-1]
        n_q = self.bound.shape[-1]
        i = int(i)
        if not -n_q <= i < n_q:  # (an index past the queries answered "no key used")
            raise ShapeError(f"query {i} out of range: the result has {n_q} queries")
        i %= n_q
        h = int(np.ravel_multi_index(tuple(head), shape)) if shape else 0
        for qi, kj in self.kept[h]:
            if np.any(qi == i):
                return kj
        return np.zeros(0, dtype=np.int64)

    def verify(self, reference) -> np.ndarray:
        """Errors ``|output_i - reference_i|``; raise BoundViolationError if one exceeds its bound.

        ``reference`` is a float dense attention output; its own rounding error is allowed for by comparing
        with ``bound + reference_slack`` (``reference_slack`` is the rounding bound of dense evaluation).
        """
        from .._array import to_numpy
        from .dense import _rownorm

        out = np.asarray(to_numpy(self.output), dtype=np.float64)
        ref = np.asarray(to_numpy(reference), dtype=np.float64)
        err = _rownorm(out - ref)  # scaled where the squares would underflow (errors below 1e-154 are not 0)
        tol = self.bound + self.reference_slack
        bad = ~(err <= tol) & ~(tol == np.inf)  # a NaN error or bound fails (err > tol would pass it)
        if np.any(bad):
            idx = tuple(int(t) for t in np.argwhere(bad)[0])
            raise BoundViolationError(
                f"{self.method}: row {idx} has error {err[idx]:.3e} > certified bound {self.bound[idx]:.3e}"
                " (please report this bug)"
            )
        return err
