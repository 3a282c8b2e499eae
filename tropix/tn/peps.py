"""PEPS (projected entangled pair states) on rectangular grids: exact and boundary-MPS contraction.

Site ``(i, j)`` holds a tensor of shape ``(p, up, right, down, left)`` (physical index first); bonds on
the outer boundary have dimension 1.  Real-valued tensors only.

* :meth:`PEPS.to_dense` and ``method="exact"`` contract the whole network through an :mod:`opt_einsum`
  path (:func:`~tropix.tn.contract`): exponential cost, for small grids.
* ``chi=…`` contracts the double-layer network ``⟨ψ|O|ψ⟩`` row by row: the top row is a boundary MPS,
  every further row is applied as an MPO and the result is rounded back to bond dimension ``χ``
  (:meth:`TensorTrain.round`).  The ``error_bound`` of each rounding (the relative Frobenius norm discarded,
  rounding included) is summed into ``truncation_error``: a diagnostic of the approximation, not a rigorous
  bound on the error of the scalar (which also depends on the remaining rows).  With
  ``χ ≥ (D²)^{⌊ncols/2⌋}`` no boundary rank is cut, only numerically zero singular values are dropped, and the
  result is exact up to rounding (``truncation_error`` of the order of the unit roundoff when a rounding ran).

Examples
--------
>>> import numpy as np
>>> from tropix.tn import PEPS
>>> psi = PEPS.random(2, 3, phys_dim=2, bond_dim=2, seed=0)
>>> dense = psi.to_dense().reshape(-1)
>>> exact = psi.norm_squared()
>>> bool(np.isclose(exact.value, dense @ dense)), exact.truncation_error
(True, 0.0)
>>> bool(np.isclose(psi.norm_squared(chi=16).value, exact.value))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from opt_einsum import get_symbol

from .._array import from_numpy, is_array, namespace, to_numpy
from .._repr import compact_repr
from ..errors import ArgumentTypeError, FloatOverflowError, ShapeError, SizeLimitError, ToleranceError
from ..tropical._args import check_int, check_seed
from ._linalg import as_float, check_max_rank
from .contract import contract
from .tt import TensorTrain, _prescale

__all__ = ["PEPS", "BoundaryContraction"]


def _f(x) -> float:
    return float(to_numpy(x))


_MAX_RANDOM_ENTRIES = 2**31  # (16 GiB of float64)


@dataclass(frozen=True)
class BoundaryContraction:
    """Result of a PEPS contraction.

    Attributes
    ----------
    value : float
        The contracted scalar (e.g. ``⟨ψ|ψ⟩``).
    chi : int or None
        Boundary bond dimension used (None: exact).
    truncation_error : float
        Sum over the boundary roundings of their ``error_bound`` relative to the boundary's norm (the norm
        discarded, rounding included; 0 when no rounding ran, e.g. exact contraction).
    """

    value: float
    chi: int | None
    truncation_error: float
    __repr__ = compact_repr


@dataclass(frozen=True, eq=False)
class PEPS:
    """An immutable PEPS: ``tensors[i][j]`` of shape ``(p, up, right, down, left)``.

    ``.shape`` is the grid ``(nrows, ncols)``; ``.phys_dims`` the physical dimensions (row-major).

    Examples
    --------
    >>> import numpy as np
    >>> up = np.array([1.0, 0.0])
    >>> psi = PEPS.product_state([[up, up], [up, up]])
    >>> psi.shape, psi.bond_dims, psi.norm_squared().value
    ((2, 2), (1, 1), 1.0)
    """

    tensors: tuple
    _repr_fields = ("shape", "phys_dims", "bond_dims")
    __repr__ = compact_repr

    def __post_init__(self):
        if isinstance(self.tensors, (str, bytes)) or not all(  # (a number or None was a raw "not iterable")
                isinstance(r, Sequence) and not isinstance(r, (str, bytes))
                for r in (self.tensors if isinstance(self.tensors, Sequence) else [None])):
            raise ArgumentTypeError(f"the tensors of a PEPS must be a sequence of rows (sequences of site arrays), "
                                    f"got {type(self.tensors).__name__}")
        rows = tuple(tuple(r) for r in self.tensors)
        if not rows or not rows[0]:
            raise ShapeError("a PEPS needs at least one site")
        ncols = len(rows[0])
        if any(len(r) != ncols for r in rows):
            raise ShapeError("all rows of a PEPS must have the same number of sites")
        for i, r in enumerate(rows):
            for j, t in enumerate(r):
                if not is_array(t):
                    raise ArgumentTypeError(f"site ({i}, {j}) must be an array (NumPy, torch, ...) of shape "
                                            f"(p, up, right, down, left), got {type(t).__name__}")
        namespace(*[t for r in rows for t in r])
        nrows = len(rows)
        for i, r in enumerate(rows):
            for j, t in enumerate(r):
                if t.ndim != 5:
                    raise ShapeError(f"site ({i}, {j}) must have 5 indices (p, up, right, down, left), got {tuple(t.shape)}")
                p, u, rt, d, lf = (int(s) for s in t.shape)
                if i == 0 and u != 1 or i == nrows - 1 and d != 1 or j == 0 and lf != 1 or j == ncols - 1 and rt != 1:
                    raise ShapeError(f"site ({i}, {j}) has a boundary bond of dimension != 1: shape {tuple(t.shape)}")
                if j + 1 < ncols and rt != int(r[j + 1].shape[4]):
                    raise ShapeError(f"bond ({i}, {j})-({i}, {j + 1}) has dimensions {rt} and {int(r[j + 1].shape[4])}")
                if i + 1 < nrows and d != int(rows[i + 1][j].shape[1]):
                    raise ShapeError(f"bond ({i}, {j})-({i + 1}, {j}) has dimensions {d} and {int(rows[i + 1][j].shape[1])}")
        object.__setattr__(self, "tensors", rows)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.tensors), len(self.tensors[0])

    @property
    def phys_dims(self) -> tuple[int, ...]:
        return tuple(int(t.shape[0]) for r in self.tensors for t in r)

    @property
    def bond_dims(self) -> tuple[int, int]:
        """Largest horizontal and vertical bond dimension."""
        h = max((int(t.shape[2]) for r in self.tensors for t in r), default=1)
        v = max((int(t.shape[3]) for r in self.tensors for t in r), default=1)
        return h, v

    @property
    def xp(self):
        return namespace(*[t for r in self.tensors for t in r])

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def random(cls, nrows: int, ncols: int, phys_dim: int = 2, bond_dim: int = 2, seed: int | None = None,
               like: Any = None) -> "PEPS":
        """Independent standard normal entries, each site scaled to unit Frobenius norm."""
        nrows, ncols = check_int(nrows, "nrows"), check_int(ncols, "ncols")
        phys_dim, bond_dim = check_int(phys_dim, "phys_dim"), check_int(bond_dim, "bond_dim")
        if nrows < 1 or ncols < 1 or phys_dim < 1 or bond_dim < 1:
            raise ShapeError("nrows, ncols, phys_dim and bond_dim must be positive")
        if nrows * ncols * phys_dim * bond_dim**4 > _MAX_RANDOM_ENTRIES:  # (10**30 rows looped for ever)
            raise SizeLimitError(f"a random {nrows}x{ncols} PEPS with phys_dim {phys_dim} and bond_dim {bond_dim} "
                                 f"would hold more than {_MAX_RANDOM_ENTRIES} numbers")
        rng = np.random.default_rng(check_seed(seed))
        rows = []
        for i in range(nrows):
            row = []
            for j in range(ncols):
                shp = (phys_dim, 1 if i == 0 else bond_dim, 1 if j == ncols - 1 else bond_dim,
                       1 if i == nrows - 1 else bond_dim, 1 if j == 0 else bond_dim)
                t = rng.standard_normal(shp)
                t /= np.linalg.norm(t)
                row.append(from_numpy(t, like) if like is not None else t)
            rows.append(row)
        return cls(tuple(tuple(r) for r in rows))

    @classmethod
    def product_state(cls, vectors: Sequence[Sequence[Any]]) -> "PEPS":
        """The product state with local vector ``vectors[i][j]`` at each site (all bonds of dimension 1)."""
        if isinstance(vectors, (str, bytes)) or not isinstance(vectors, (Sequence, np.ndarray)):
            raise ArgumentTypeError(f"vectors must be a grid (a sequence of rows) of local vectors, got {vectors!r}")
        rows = []
        for i, r in enumerate(vectors):
            if isinstance(r, (str, bytes)) or not isinstance(r, (Sequence, np.ndarray)):
                raise ArgumentTypeError(f"row {i} of vectors must be a sequence of local vectors, got {r!r}")
            row = []
            for j, v in enumerate(r):
                v = as_float(v, f"vector ({i}, {j})")
                if v.ndim != 1:
                    raise ShapeError(f"vector ({i}, {j}) must be 1-dimensional, got shape {tuple(v.shape)}")
                xp = namespace(v)
                row.append(xp.reshape(v, (int(v.shape[0]), 1, 1, 1, 1)))
            rows.append(row)
        return cls(tuple(tuple(r) for r in rows))

    # -- exact contraction ----------------------------------------------------------------------
    def _bond_symbols(self, offset: int = 0):
        """Symbols for the (up, right, down, left) legs of every site; shared bonds share a symbol."""
        nr, nc = self.shape
        n = offset
        h = {}
        v = {}
        for i in range(nr):
            for j in range(nc + 1):
                h[i, j] = get_symbol(n)
                n += 1
        for i in range(nr + 1):
            for j in range(nc):
                v[i, j] = get_symbol(n)
                n += 1
        legs = {(i, j): v[i, j] + h[i, j + 1] + v[i + 1, j] + h[i, j] for i in range(nr) for j in range(nc)}
        return legs, n

    def to_dense(self, optimize: Any = "auto"):
        """The state vector as a tensor of shape ``phys_dims`` (sites row-major), via an opt_einsum path."""
        nr, nc = self.shape
        legs, n = self._bond_symbols()
        terms, ops, outs = [], [], []
        for i in range(nr):
            for j in range(nc):
                p = get_symbol(n)
                n += 1
                outs.append(p)
                terms.append(p + legs[i, j])
                ops.append(self.tensors[i][j])
        return contract(",".join(terms) + "->" + "".join(outs), *ops, optimize=optimize)

    def _double_layer_exact(self, ops: Mapping, optimize: Any) -> float:
        nr, nc = self.shape
        ket, n = self._bond_symbols()
        bra, n = self._bond_symbols(n)
        terms, arrs = [], []
        for i in range(nr):
            for j in range(nc):
                t = self.tensors[i][j]
                p = get_symbol(n)
                n += 1
                if (i, j) in ops:
                    q = get_symbol(n)
                    n += 1
                    terms += [p + bra[i, j], p + q, q + ket[i, j]]
                    arrs += [t, ops[i, j], t]
                else:
                    terms += [p + bra[i, j], p + ket[i, j]]
                    arrs += [t, t]
        return _f(contract(",".join(terms) + "->", *arrs, optimize=optimize))

    # -- boundary MPS ---------------------------------------------------------------------------
    def _site_double(self, i: int, j: int, op=None):
        """Double-layer tensor of site (i, j) with merged legs (u u', r r', d d', l l')."""
        t = self.tensors[i][j]
        xp = namespace(t)
        p, u, r, d, l = (int(s) for s in t.shape)
        if op is None:
            E = contract("pabcd,pefgh->aebfcgdh", t, t)
        else:
            E = contract("pabcd,pq,qefgh->aebfcgdh", t, op, t)
        return xp.reshape(E, (u * u, r * r, d * d, l * l))

    def _boundary(self, ops: Mapping, chi: int) -> BoundaryContraction:
        nr, nc = self.shape
        xp = self.xp
        rows = [[self._site_double(i, j, ops.get((i, j))) for j in range(nc)] for i in range(nr)]
        # The tensors of a row, and the boundary's cores after every row, are scaled by powers of two into range
        # (exact, tt._prescale; nothing is changed unless some partial product could leave the range) and the
        # factor 2^pow2 kept aside: the normalisation by the norm alone left the cores drifting apart (columns of
        # scale 0.1 and 10, value 1: the boundary overflowed after 154 rows) and products of small rows underflowed
        # (rows of 1e-160, 1e-160, 1e160, 1e160: the norm 1e-320 gave 1/nrm = inf).
        pow2 = 0
        for i in range(nr):
            rows[i], e = _prescale(rows[i])
            pow2 += e
        # top row as an MPS with physical index = merged down leg
        cores = [xp.permute_dims(E[0, ...], (2, 1, 0)) for E in rows[0]]  # (l, d, r)
        B = TensorTrain(tuple(cores))
        lognorm = 0.0
        trunc = 0.0
        if nr == 1:
            val = _f(xp.reshape(B.to_dense(), ()))
            try:
                val = math.ldexp(val, pow2)
            except OverflowError:
                val = math.inf
            if not math.isfinite(val):  # (as on the exact path and for several rows: was returned as the value)
                raise FloatOverflowError(f"the boundary contraction gave {val} (the float range was exceeded); "
                                         "rescale the site tensors")
            return BoundaryContraction(val, chi, 0.0)
        for i in range(1, nr - 1):
            new = []
            for core, E in zip(B.cores, rows[i]):
                a, u, a2 = (int(s) for s in core.shape)
                _, r, d, l = (int(s) for s in E.shape)
                c = xp.tensordot(core, E, axes=([1], [0]))  # (a, a2, r, d, l)
                c = xp.permute_dims(c, (0, 4, 3, 1, 2))
                new.append(xp.reshape(c, (a * l, d, a2 * r)))
            new, e = _prescale(new)
            pow2 += e
            B = TensorTrain(tuple(new))
            nrm = B.norm()
            if not math.isfinite(nrm):
                raise FloatOverflowError(
                    f"the boundary MPS after row {i} has norm {nrm} (the float range was exceeded); rescale the "
                    "site tensors"
                )
            if nrm == 0.0:
                return BoundaryContraction(0.0, chi, trunc)
            B = B * (1.0 / nrm)
            lognorm += math.log(nrm)
            if chi is not None and max(B.ranks) > chi:
                Bt = B.round(1e-15, chi)
                trunc += Bt.error_bound
                B = Bt
        last = [xp.permute_dims(E[:, :, 0, :], (2, 0, 1)) for E in rows[-1]]  # (l, u, r)
        val = _f(B.dot(TensorTrain(tuple(last))))
        if pow2:
            lognorm += pow2 * math.log(2.0)
        try:
            f = math.exp(lognorm)
            out = val * f
        except OverflowError:
            f = out = math.inf
        if val and not (0.0 < f < math.inf and 0.0 < abs(out) < math.inf):
            # exp(lognorm) alone overflowed or underflowed: in log space, where the value itself may fit
            try:
                out = math.copysign(math.exp(math.log(abs(val)) + lognorm), val)
            except OverflowError:
                out = math.inf
        val = out if val else 0.0
        if not math.isfinite(val):
            raise FloatOverflowError(f"the boundary contraction gave {val} (the float range was exceeded); rescale "
                                     "the site tensors")
        return BoundaryContraction(val, chi, trunc)

    # -- public contractions --------------------------------------------------------------------
    def _check_ops(self, ops: Mapping | None) -> dict:
        if ops is not None and not isinstance(ops, Mapping):
            raise ArgumentTypeError(f"operators must be a mapping {{(i, j): matrix}}, got {type(ops).__name__}")
        ops = dict(ops or {})
        nr, nc = self.shape
        out = {}
        for site, O in ops.items():
            if not (isinstance(site, tuple) and len(site) == 2):
                raise ArgumentTypeError(f"operator sites must be (row, column) pairs, got {site!r}")
            i, j = (check_int(x, "a site index") for x in site)
            if not (0 <= i < nr and 0 <= j < nc):
                raise ShapeError(f"site ({i}, {j}) is outside the {nr}×{nc} grid")
            O = as_float(O, f"operator at ({i}, {j})")
            p = int(self.tensors[i][j].shape[0])
            if tuple(int(s) for s in O.shape) != (p, p):
                raise ShapeError(f"operator at ({i}, {j}) must be {p}×{p}, got {tuple(O.shape)}")
            out[i, j] = O
        return out

    def contract_double_layer(self, ops: Mapping | None = None, chi: int | None = None,
                              optimize: Any = "auto") -> BoundaryContraction:
        """``⟨ψ| ⊗_s O_s |ψ⟩`` for single-site operators ``ops = {(i, j): O}`` (identity elsewhere).

        ``chi=None`` contracts exactly (opt_einsum path); an integer uses the boundary MPS of bond
        dimension ``chi``.
        """
        ops = self._check_ops(ops)
        if chi is None:
            value = self._double_layer_exact(ops, optimize)
            if not math.isfinite(value):  # inf or NaN (inf - inf): the float range was exceeded
                raise FloatOverflowError(
                    f"the exact double-layer contraction gave {value} (the float range was exceeded); rescale "
                    "the site tensors"
                )
            return BoundaryContraction(value, None, 0.0)
        chi = check_max_rank(chi, "chi")
        return self._boundary(ops, chi)

    def norm_squared(self, chi: int | None = None, optimize: Any = "auto") -> BoundaryContraction:
        """``⟨ψ|ψ⟩`` (exact, or boundary MPS with bond dimension ``chi``)."""
        return self.contract_double_layer(None, chi, optimize)

    def norm(self, chi: int | None = None) -> float:
        """``sqrt⟨ψ|ψ⟩``."""
        return math.sqrt(max(0.0, self.norm_squared(chi).value))

    def expectation(self, ops: Mapping, chi: int | None = None) -> float:
        """``⟨ψ|⊗ O_s|ψ⟩ / ⟨ψ|ψ⟩`` for single-site operators (products of them for several sites).

        Examples
        --------
        >>> import numpy as np
        >>> Z = np.diag([1.0, -1.0])
        >>> psi = PEPS.product_state([[np.array([1.0, 0.0]), np.array([0.6, 0.8])]])
        >>> round(psi.expectation({(0, 1): Z}), 12), round(psi.expectation({(0, 0): Z, (0, 1): Z}), 12)
        (-0.28, -0.28)
        """
        num = self.contract_double_layer(ops, chi).value
        den = self.norm_squared(chi).value
        if den == 0.0:
            raise ToleranceError("the state has norm zero; expectation values are undefined")
        return num / den

