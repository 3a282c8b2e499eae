"""Tensor trains (matrix product states): TT-SVD with a certified error, rounding, arithmetic, canonical forms.

A tensor train of a ``d``-way tensor ``A`` of shape ``(n_1, …, n_d)`` is a list of cores ``G_k`` of shape
``(r_{k-1}, n_k, r_k)`` with ``r_0 = r_d = 1`` and ``A[i_1, …, i_d] = G_1[:, i_1, :] ⋯ G_d[:, i_d, :]``.

**The error guarantee.** :func:`tt_svd` sweeps left to right.  At every bond it keeps the left singular
vectors as an orthonormal core and carries ``S·Vᴴ`` to the right, discarding singular values whose
squared tail fits the remaining budget.  Because all cores to the left stay orthonormal, in exact
arithmetic the squared error is the sum of the squared discarded tails (Oseledets 2011, Thm 2.2), so a
total budget ``(eps·‖A‖_F)²`` gives ``‖A − A_TT‖_F ≤ eps·‖A‖_F`` whenever ``max_rank`` does not bind.
(Splitting ``√S`` onto both sides, as some libraries do, destroys the orthonormality this argument
needs.)  The budget is spent adaptively: each bond may use the part of the budget the previous bonds
left unused, divided evenly over the remaining bonds.  Wide unfoldings whose budget is far above
rounding level are split through the Gram matrix (one BLAS pass); see
:func:`~tropix.tn._linalg.truncated_split`.

The reported :attr:`TensorTrain.error_bound` is not that exact-arithmetic tail: it is an *a posteriori*
certificate for the cores actually stored, :func:`~tropix.tn._linalg.tt_residual_bound` — the residual
``A − contract(cores)`` evaluated in float64 with a rigorous bound on the rounding of that evaluation
(and, for exact input, of the conversion to float64).  It therefore covers the truncation and all
floating-point rounding of the SVDs, QRs and Gram matrices (for a tensor kept at full rank it is a few
``u·‖A‖_F``, not 0).  It costs one contraction of the train to a dense tensor (both halves contracted towards
the cheapest bond and joined by one matrix product), one pass for the residual and Gram sweeps over the
cores: for a ``4^10`` tensor at ranks ≤ 6 about 0.15× the sweep (≈ 2 ms); at full rank (``4^8``, ``2^16``,
``16^5``) about 0.4×.  If rounding pushes the certificate above ``eps·‖A‖_F`` although the truncation fitted
the budget, the sweep is repeated once with the budget reduced by twice the measured rounding part;
``error_bound`` can still exceed ``eps·‖A‖_F`` when ``eps`` is at rounding level (a few ``1e-15``) or
when ``max_rank`` binds: it is always the bound actually achieved.

**Operations on trains.**  Sums, scalar multiples, Hadamard products, :meth:`TensorTrain.round`, the
canonical forms and MPO × MPS (:meth:`~tropix.tn.ttmatrix.TTMatrix.apply`) report in ``error_bound`` the
operands' bounds, propagated by the triangle inequality, plus a rigorous bound on the distance between the
stored result and the exact operation applied to the stored operands, rounding included.  These bounds are
computed without forming the dense tensor: a posteriori residuals of every QR/SVD step and orthogonality
defects of the new cores (each evaluated in float64 with a bound on that evaluation), and operator norms of
the partial products of the trains from Gram sweeps or per-core spectral norms (see :meth:`TensorTrain.round`
and :func:`_orthogonalise`).  When truncation dominates, the bound of :meth:`TensorTrain.round` is the
exact-arithmetic tail ``sqrt(Σ discarded²)`` up to a factor ``1 + O(u)``; with nothing to discard it is a
rounding-level multiple of ``u·‖X‖_F`` (about ``1e-13`` to ``1e-11`` relative for trains of ``4^10`` or
``2^20`` entries at ranks 16 to 64).  Cost: about twice the rounding sweeps themselves (measured 1.4-2.4×).

Examples
--------
>>> import numpy as np
>>> from tropix.tn import tt_svd
>>> x = np.linspace(0, 1, 4)
>>> A = np.add.outer(np.add.outer(x, x), x)          # rank-2 structure: a sum of separable terms
>>> tt = tt_svd(A, eps=1e-8)
>>> tt.ranks, tt.shape
((1, 2, 2, 1), (4, 4, 4))
>>> bool(np.allclose(tt.to_dense(), A))
True
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fractions import Fraction

from .._array import namespace, to_exact_scalar, to_numpy
from .._repr import compact_repr, summary
from ..errors import (
    ArgumentTypeError,
    BoundViolationError,
    FloatOverflowError,
    NaNError,
    ShapeError,
    SizeLimitError,
    ToleranceError,
)
from ..tropical._args import check_dims, check_int, check_real, check_seed
from ._linalg import (
    _add_up,
    _float_up,
    _mul_up,
    _sqrt_float_up,
    as_float,
    fro_up_raw as fro_up,
    gamma_up,
    inv_one_minus_up,
    ldexp_up,
    prefix_norms,
    pow2_range,
    prod_up,
    suffix_norms,
    spectral_up,
    sum_up,
    unit_roundoff,
    check_core_chain,
    check_eps,
    check_max_rank,
    fro_norm,
    qr,
    svd,
    conversion_error,
    truncated_split,
    truncation_rank,
    tt_distance_bound,
    tt_residual_bound,
)

__all__ = ["TensorTrain", "tt_svd", "tt_round", "schmidt_spectrum", "entanglement_entropy"]

_DEFAULT_EPS = 1e-12
# the bound computations ignore overflow/underflow warnings (non-finite quantities give an infinite bound)
_quiet = np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore")


def _f(x) -> float:
    return float(to_numpy(x))


def _is_real_dtype(x) -> bool:
    return bool(namespace(x).isdtype(x.dtype, ("integral", "real floating")))


@dataclass(frozen=True, eq=False)
class TensorTrain:
    """An immutable tensor train (MPS).

    Attributes
    ----------
    cores : tuple of arrays
        ``cores[k]`` has shape ``(r_k, n_k, r_{k+1})``, ``r_0 = r_d = 1``; all of one array library.
    error_bound : float
        Bound on ``‖A − self‖_F`` for the tensor ``A`` this train was built to approximate (0 for an exact
        representation).  From :func:`tt_svd` it is certified a posteriori, rounding included.  Every
        operation (``+``, ``-``, scalar ``*``, :meth:`hadamard`, :meth:`round`, the canonical forms,
        :meth:`TTMatrix.apply <tropix.tn.ttmatrix.TTMatrix.apply>`) propagates the operands' bounds and adds a
        rigorous bound on what it changes itself, floating-point rounding included, computed in TT format
        (no dense tensor); assumptions: IEEE arithmetic, no overflow (an overflowing result raises
        :class:`~tropix.errors.FloatOverflowError` in :meth:`round` and :meth:`canonical`).  Underflow is
        covered: :meth:`round` and :meth:`canonical` first scale every core into range by a power of two
        (exact) and bound the rounding of the scaling back by an absolute term, products with a scalar or a
        Hadamard product add an absolute term for products that fall below the normal range.
    eps : float or None
        The relative tolerance that was requested, if any.

    Examples
    --------
    >>> import numpy as np
    >>> tt = TensorTrain.random((2, 3, 4), rank=2, seed=0)
    >>> tt.shape, tt.ranks, tt.n_params
    ((2, 3, 4), (1, 2, 2, 1), 24)
    >>> bool(np.isclose((tt + tt).norm(), 2 * tt.norm()))
    True
    """

    cores: tuple
    error_bound: float = 0.0
    eps: float | None = None
    _repr_fields = ("shape", "ranks", "error_bound", "eps")
    __repr__ = compact_repr

    def __post_init__(self):
        cores = check_core_chain(self.cores, "tensor train", "r, n, r'")
        object.__setattr__(self, "cores", cores)

    # -- basic properties ---------------------------------------------------------------------
    @property
    def xp(self):
        """The array namespace of the cores."""
        return namespace(*self.cores)

    @property
    def ndim(self) -> int:
        return len(self.cores)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(c.shape[1]) for c in self.cores)

    @property
    def ranks(self) -> tuple[int, ...]:
        """``(r_0, r_1, …, r_d)`` with ``r_0 = r_d = 1``."""
        return (1,) + tuple(int(c.shape[2]) for c in self.cores)

    @property
    def n_params(self) -> int:
        """Number of stored numbers (sum of the core sizes)."""
        return sum(int(np.prod([int(s) for s in c.shape])) for c in self.cores)

    def _replace(self, cores, error_bound=None, eps=None):
        return TensorTrain(tuple(cores), self.error_bound if error_bound is None else error_bound, eps)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def random(cls, shape: Sequence[int], rank: int, seed: int | None = None, like: Any = None) -> "TensorTrain":
        """A tensor train with independent standard normal cores (ranks ``min(rank, …)`` allowed by the shape).

        ``like`` selects the array library (an array of it); NumPy by default.
        """
        shape = check_dims(shape, "shape")
        rank = check_int(rank, "rank", minimum=1)
        if not shape:
            raise ShapeError("a tensor train needs at least one mode")
        rng = np.random.default_rng(check_seed(seed))
        d = len(shape)
        ranks = [1]
        for k in range(1, d):
            left = int(np.prod(shape[:k]))
            right = int(np.prod(shape[k:]))
            ranks.append(min(rank, left, right))
        ranks.append(1)
        cores = [rng.standard_normal((ranks[k], shape[k], ranks[k + 1])) for k in range(d)]
        return cls(tuple(_like(c, like) for c in cores))

    # -- dense conversion and element access ------------------------------------------------------
    def to_dense(self):
        """The full tensor (beware: ``∏ n_k`` entries).

        The cores are contracted scaled into range by powers of two (exact, :func:`_prescale`) and the factor is
        applied to the result, so partial products neither overflow nor underflow where the entries fit.
        """
        xp = self.xp
        cores, E = _prescale(self.cores)
        out = cores[0]
        for c in cores[1:]:
            out = xp.tensordot(out, c, axes=1)
        return _pow2_scale(xp.reshape(out, self.shape), E)

    def __getitem__(self, index) -> Any:
        """One entry ``A[i_1, …, i_d]`` computed from the cores in ``O(d r²)`` (a 0-d array)."""
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) != self.ndim:
            raise ShapeError(f"a {self.ndim}-way tensor train needs {self.ndim} indices, got {len(index)}")
        xp = self.xp
        v = None
        for k, (c, i) in enumerate(zip(self.cores, index)):
            i = check_int(i, "every index")  # (int(1.5) silently read entry 1)
            n = int(c.shape[1])
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of range for mode {k} of size {n}")
            m = c[:, i % n, :]
            v = m if v is None else v @ m
        return xp.reshape(v, ())

    # -- arithmetic ------------------------------------------------------------------------------
    def _check_other(self, other: "TensorTrain") -> None:
        if not isinstance(other, TensorTrain):
            raise ArgumentTypeError(f"expected a TensorTrain, got {type(other).__name__}")
        namespace(*self.cores, *other.cores)
        if other.shape != self.shape:
            raise ShapeError(f"tensor trains of shapes {self.shape} and {other.shape} do not match")

    @_quiet
    def __add__(self, other: "TensorTrain") -> "TensorTrain":
        """Sum in TT form (ranks add); no densification.

        For two or more cores the result's cores are block concatenations of the operands' (no arithmetic), so
        it represents the exact sum and ``error_bound`` is the sum of the operands' bounds (rounded up).  For a
        single core the entries are added: ``+ u/(1 − u)·‖fl(a + b)‖_F`` for the rounding.
        """
        self._check_other(other)
        xp = self.xp
        d = self.ndim
        eb = _add_up(self.error_bound, other.error_bound)
        if d == 1:
            c = self.cores[0] + other.cores[0]
            u = unit_roundoff(c)
            return self._replace([c], _add_up(eb, prod_up(fro_up(c), _float_up_q(u), inv_one_minus_up(u))))
        cores = []
        for k, (a, b) in enumerate(zip(self.cores, other.cores)):
            ra, n, ra2 = (int(s) for s in a.shape)
            rb, _, rb2 = (int(s) for s in b.shape)
            if k == 0:
                cores.append(xp.concat([a, b], axis=2))
            elif k == d - 1:
                cores.append(xp.concat([a, b], axis=0))
            else:
                top = xp.concat([a, xp.zeros((ra, n, rb2), dtype=a.dtype)], axis=2)
                bot = xp.concat([xp.zeros((rb, n, ra2), dtype=b.dtype), b], axis=2)
                cores.append(xp.concat([top, bot], axis=0))
        return self._replace(cores, eb)

    def __neg__(self) -> "TensorTrain":
        return self * -1.0

    def __sub__(self, other: "TensorTrain") -> "TensorTrain":
        return self + (-other)

    @_quiet
    def __mul__(self, c) -> "TensorTrain":
        """Product with a scalar (scales the first core).

        ``error_bound`` is ``|c|·self.error_bound`` plus a rigorous bound on the rounding of the scaled core
        (``‖E_0 G_1 ⋯ G_{d−1}‖_F ≤ ‖E_0‖_F ‖G_1 ⋯ G_{d−1}‖_2``, ``|E_0| ≤ u|fl(c G_0)|/(1 − u)``, the right
        norm from a Gram sweep, :func:`~tropix.tn._linalg.suffix_norms`; 0 when the scaling is exact, e.g. by
        ``±2^k`` without overflow or underflow; entries below the normal range add ``η`` each, half the smallest
        subnormal, :func:`_underflow_up`) plus ``|c − fl(c)|·‖self‖_F`` when the scalar itself is not a
        float of the cores' dtype.
        """
        if isinstance(c, TensorTrain):
            raise ArgumentTypeError("use .hadamard(other) for the entrywise product of two tensor trains")
        if hasattr(c, "shape"):
            if len(tuple(c.shape)) != 0:
                raise ArgumentTypeError(f"a tensor train is multiplied by a scalar, not an array of shape {tuple(c.shape)}")
            namespace(self.cores[0], c)  # BackendMismatchError for a scalar of another library
            if not _is_real_dtype(c):
                raise ArgumentTypeError(f"the scalar must be real, got dtype {c.dtype}")
        elif isinstance(c, (bool, np.bool_)) or not isinstance(c, (numbers.Real, np.floating, np.integer)):
            raise ArgumentTypeError(f"a tensor train is multiplied by a real scalar, got {c!r} ({type(c).__name__})")
        try:
            cf = _f(c) if hasattr(c, "shape") else float(c)
        except OverflowError:  # an exact int or Fraction beyond the float range
            raise FloatOverflowError(f"the scalar {summary(c)} is beyond the float64 range (|c| > 1.8e308); "
                                     "tensor trains hold floating-point cores") from None
        if math.isnan(cf):
            raise NaNError("cannot multiply a tensor train by NaN")
        if math.isinf(cf):
            raise NaNError(f"cannot multiply a tensor train by {cf}: its entries would not be finite (0 * inf)")
        cores = list(self.cores)
        c0 = cores[0]
        # a Python scalar enters as the float cf (a Fraction would turn NumPy cores into object arrays and is no
        # torch operand); the difference c - cf is in the bound below
        cores[0] = c0 * (c if hasattr(c, "shape") else cf)
        try:
            cq = Fraction(to_exact_scalar(c)) if not hasattr(c, "shape") else Fraction(cf)
        except (TypeError, ValueError, OverflowError):
            cq = Fraction(cf)
        # the multiplier applied is cf, or cf converted to the cores' dtype (NumPy and torch scalar rules)
        dt = _np_dtype(cores[0])
        c_dt = Fraction(float(np.asarray(cf).astype(dt))) if dt is not None and dt.kind == "f" else Fraction(cf)
        diff = _float_up_q(abs(cq - Fraction(cf)) + abs(cq - c_dt))
        eb = _mul_up(_add_up(abs(cf), diff), self.error_bound)
        new0, old0 = _np(cores[0]), _np(c0)
        exact = cq == 0 or (
            diff == 0.0 and _is_pow2(cf) and np.array_equal(new0, old0 * cf) and np.array_equal(new0 / cf, old0)
        )
        if not exact:
            S = suffix_norms(self.cores)
            u = unit_roundoff(cores[0])
            e0 = _add_up(prod_up(fro_up(new0), _float_up_q(u), inv_one_minus_up(u)),
                         _underflow_up(cores[0], (old0 != 0) & (cf != 0)))
            eb = sum_up(eb, _mul_up(e0, S[1]), _mul_up(diff, S[0]))
        return self._replace(cores, eb)

    __rmul__ = __mul__

    @_quiet
    def hadamard(self, other: "TensorTrain") -> "TensorTrain":
        """Entrywise (Hadamard) product in TT form (ranks multiply).

        ``error_bound`` propagates the operands' bounds with ``‖X ∘ Y‖_F ≤ ‖X‖_F ‖Y‖_F`` (norms bounded
        rigorously by Gram sweeps) and adds a rigorous bound on the rounding of the product cores (one
        multiplication per entry, ``|E_k| ≤ u|Ĉ_k|/(1 − u)`` plus ``η`` for a product below the normal range,
        :func:`_underflow_up`): telescoping,
        ``Ĉ − C = Σ_k L_{k−1} E_k R̂_{k+1}`` with the exact prefix (``‖L^{X∘Y}‖_2 ≤ ‖L^X‖_2 ‖L^Y‖_2``, a row
        selection of a Kronecker product) and the stored suffix (``‖R̂_{k+1}‖_2 ≤ ‖R^X‖_2‖R^Y‖_2 + δ_{k+1}``,
        ``δ_k = ‖Ĉ_k‖_F δ_{k+1} + ‖E_k‖_F ‖R_{k+1}‖_2``).
        """
        self._check_other(other)
        xp = self.xp
        cores, nonzero = [], []
        for a, b in zip(self.cores, other.cores):
            ra, n, ra2 = (int(s) for s in a.shape)
            rb, _, rb2 = (int(s) for s in b.shape)
            c = xp.reshape(a, (ra, 1, n, ra2, 1)) * xp.reshape(b, (1, rb, n, 1, rb2))
            cores.append(xp.reshape(c, (ra * rb, n, ra2 * rb2)))
            if _products_may_underflow(a, b):  # (rarely: the mask costs a pass over the product core)
                nz = (_np(a) != 0).reshape(ra, 1, n, ra2, 1) & (_np(b) != 0).reshape(1, rb, n, 1, rb2)
                nonzero.append(nz.reshape(ra * rb, n, ra2 * rb2))
            else:
                nonzero.append(None)
        Pa, Pb = prefix_norms(self.cores), prefix_norms(other.cores)
        Sa, Sb = suffix_norms(self.cores), suffix_norms(other.cores)
        # relative rounding of every product in its own core's dtype (cores may mix float32 and float64), plus
        # an absolute term for products below the normal range
        errs = [_add_up(prod_up(fro_up(c), _float_up_q(unit_roundoff(c)), inv_one_minus_up(unit_roundoff(c))),
                        0.0 if nz is None else _underflow_up(c, nz)) for c, nz in zip(cores, nonzero)]
        rounding = _kron_chain_bound(cores, errs, [_mul_up(x, y) for x, y in zip(Pa, Pb)],
                                     [_mul_up(x, y) for x, y in zip(Sa, Sb)])
        ea, eb_ = self.error_bound, other.error_bound
        prop = _add_up(_mul_up(ea, _add_up(Sb[0], eb_)), _mul_up(Sa[0], eb_)) if (ea or eb_) else 0.0
        return self._replace(cores, _add_up(prop, rounding))

    def dot(self, other: "TensorTrain"):
        """Inner product ``⟨self, other⟩ = Σ A[i] B[i]`` by a left-to-right sweep (a 0-d array); on the cores
        scaled into range by powers of two (exact, :func:`_prescale`), the factor applied to the result."""
        self._check_other(other)
        xp = self.xp
        ca, Ea = _prescale(self.cores)
        cb, Eb = _prescale(other.cores)
        M = None
        for a, b in zip(ca, cb):
            if M is None:
                M = xp.tensordot(a[0, :, :], b[0, :, :], axes=([0], [0]))
            else:
                T = xp.tensordot(M, a, axes=([0], [0]))  # (rb, n, ra')
                M = xp.tensordot(T, b, axes=([0, 1], [0, 1]))
        return _pow2_scale(xp.reshape(M, ()), Ea + Eb)

    def norm(self) -> float:
        """Frobenius norm, computed from the left-orthogonal form (no cancellation) of the cores scaled into
        range by powers of two (exact, :func:`_prescale`: a train of norm 1e-100 whose partial products underflow
        had norm 0); ``inf`` beyond the float64 range."""
        cores, E = _prescale(self.cores)
        cores, _, _ = _orthogonalise(cores, self.ndim - 1, bound=False)
        try:
            return math.ldexp(_f(fro_norm(cores[-1])), E)
        except OverflowError:
            return math.inf

    # -- canonical forms ------------------------------------------------------------------------
    def left_canonical(self) -> "TensorTrain":
        """Equivalent train whose cores 0…d-2 are left-orthonormal (``Σ_{a,i} G[a,i,b] G[a,i,c] = δ_bc``)."""
        return self.canonical(self.ndim - 1)

    def right_canonical(self) -> "TensorTrain":
        """Equivalent train whose cores 1…d-1 are right-orthonormal."""
        return self.canonical(0)

    @_quiet
    def canonical(self, center: int) -> "TensorTrain":
        """Mixed canonical form: cores left of ``center`` left-orthonormal, right of it right-orthonormal.

        The Frobenius norm of the whole tensor is then the norm of ``cores[center]``.  The QR sweeps change the
        represented tensor by rounding; ``error_bound`` adds a rigorous bound on that change (see
        :func:`_orthogonalise`), so it still bounds the distance to the tensor ``self`` approximates.  The
        sweeps run on the cores scaled into range by powers of two (exact, :func:`_prescale`); putting the
        factor back into the centre core can round entries below the normal range, which
        :func:`_scale_back_bound` covers.  Raises :class:`~tropix.errors.FloatOverflowError` if the centre
        core's entries exceed the float range.
        """
        d = self.ndim
        center = check_int(center, "center")
        if not -d <= center < d:
            raise ShapeError(f"orthogonality centre {center} is out of range for {d} cores")
        c = center % d
        scaled, E = _prescale(self.cores)  # in range first (exact), as in round: no underflow in the sweeps
        cores, bound, _ = _orthogonalise(scaled, c)
        err = bound()
        if err > 2.0**-44 * fro_up(cores[c]):  # not negligible against ‖self‖_F: tighter norms
            err = bound(tight=True)
        err = ldexp_up(err, E)
        mid = cores[c]
        cores[c] = _pow2_scale(mid, E)
        if E > 0 and not bool(self.xp.all(self.xp.isfinite(cores[c]))):
            raise FloatOverflowError("TensorTrain.canonical: the centre core's entries exceed the float range of "
                                     f"its dtype ({_np_dtype(mid)}): rescale the train")
        err = _add_up(err, _scale_back_bound(cores, mid, E, c))
        return TensorTrain(tuple(cores), _add_up(self.error_bound, err), self.eps)

    def schmidt_spectra(self) -> list:
        """Schmidt (singular) values across every bond ``k | k+1``, ``k = 0…d-2`` (arrays, descending).

        These are the singular values of the unfolding ``A[(i_1…i_{k+1}), (i_{k+2}…i_d)]``; computed on the
        cores scaled into range by powers of two (exact, :func:`_prescale`), the factor applied to the spectra.
        """
        xp = self.xp
        cores, E = _prescale(self.cores)
        cores, _, _ = _orthogonalise(cores, self.ndim - 1, bound=False)
        spectra = [None] * (self.ndim - 1)
        for k in range(self.ndim - 1, 0, -1):
            r, n, r2 = (int(s) for s in cores[k].shape)
            U, S, Vh = svd(xp.reshape(cores[k], (r, n * r2)))
            q = int(S.shape[0])
            cores[k] = xp.reshape(Vh, (q, n, r2))
            cores[k - 1] = xp.tensordot(cores[k - 1], U * xp.reshape(S, (1, q)), axes=1)
            spectra[k - 1] = S
        return [_pow2_scale(S, E) for S in spectra]

    def schmidt_spectrum(self, bond: int):
        """Schmidt values across bond ``bond`` (between mode ``bond`` and ``bond + 1``)."""
        bond = check_int(bond, "bond")
        if not 0 <= bond < self.ndim - 1:
            raise ShapeError(f"bond must be in 0..{self.ndim - 2}, got {bond}")
        return self.schmidt_spectra()[bond]

    def entanglement_entropies(self, base: float = math.e) -> list[float]:
        """Von Neumann entropy ``−Σ p log p`` (``p = s²/Σ s²``) of the Schmidt spectrum at every bond."""
        return [_entropy(s, base) for s in self.schmidt_spectra()]

    def entanglement_entropy(self, bond: int, base: float = math.e) -> float:
        """Von Neumann entropy of the Schmidt spectrum at one bond."""
        return _entropy(self.schmidt_spectrum(bond), base)

    # -- rounding -------------------------------------------------------------------------------
    @_quiet
    def round(
        self,
        eps: float = _DEFAULT_EPS,
        max_rank: int | None = None,
        *,
        check: bool = False,
        certify: bool = False,
    ) -> "TensorTrain":
        """Recompress to the smallest ranks with ``‖self − result‖_F ≤ eps·‖self‖_F`` (unless ``max_rank`` binds).

        Right-orthogonalisation (QR sweep), then a left-to-right SVD sweep that discards singular values whose
        squared tail fits the remaining budget (Oseledets 2011).  The returned ``error_bound`` is
        ``self.error_bound`` plus a **rigorous** bound on ``‖self − result‖_F`` for the exact values of the
        stored cores of both trains, floating-point rounding included, computed in TT format (no dense
        tensor), cost a small multiple of the sweeps themselves:

        * the QR sweep's change of the tensor (:func:`_orthogonalise`: a posteriori QR residuals, orthogonality
          defects of the new cores and the rounding of the carried products);
        * the SVD sweep, telescoped over the intermediate trains ``[U_0 … U_{k−1}, C_k, Q̂_{k+1} …]``: step ``k``
          changes the tensor by ``e_k = L̂_{k−1} D_k R̂_{k+1}`` (``D_k = C_k − U_k·SV_k``, the discarded part and the
          SVD's rounding, its norm evaluated a posteriori with a rigorous bound on that evaluation) plus the
          rounding of the product forming the next core.  The ``e_k`` are orthogonal in exact arithmetic; here
          ``‖Σ e_k‖² ≤ Σ ‖e_k‖² + 2 Σ_{j<k} |⟨e_j, e_k⟩|`` with the cross terms bounded by the certified defects
          ``‖U_jᵀ D_j‖_F`` and ``‖L̂ᵀL̂ − I‖_2`` (they are of rounding size), so when truncation dominates the
          bound is the exact-arithmetic tail ``sqrt(Σ discarded²)`` up to a factor ``1 + O(u)``.

        Assumptions: IEEE arithmetic in the cores' dtype (the bound itself is evaluated in float64 with
        upward-rounded scalars), no overflow or underflow inside the sweeps, which run on the cores scaled into
        range by powers of two (exact, :func:`_prescale`); the factor is put back into the last core, and
        entries that this rounds below the normal range are covered by an absolute term
        (:func:`_scale_back_bound`: before, a train of subnormal float32 cores could exceed its bound).  A result
        beyond the float range raises :class:`~tropix.errors.FloatOverflowError`.  With ``certify=True`` the dense certificate
        :func:`~tropix.tn._linalg.tt_distance_bound` is computed as well (``∏ n_k`` entries, SizeLimitError above
        ``2^26``) and the smaller of the two rigorous bounds is reported.  With ``check=True`` the error is
        recomputed densely and compared with its bound.

        Examples
        --------
        >>> import numpy as np
        >>> a = TensorTrain.random((3, 3, 3, 3), rank=2, seed=1)
        >>> r = (a + a).round(1e-10)
        >>> r.ranks, bool(0 < r.error_bound < 1e-13 * a.norm())       # only rounding is left
        ((1, 2, 2, 2, 1), True)
        >>> s = a + TensorTrain.random((3, 3, 3, 3), rank=2, seed=2) * 1e-3
        >>> t = s.round(1e-2)
        >>> err = np.linalg.norm(s.to_dense() - t.to_dense())
        >>> t.ranks, bool(err <= t.error_bound < 1.01 * err)      # truncation dominates: tight
        ((1, 2, 2, 2, 1), True)
        """
        eps = check_eps(eps)
        max_rank = check_max_rank(max_rank)
        if certify and math.prod(self.shape) > 2**26:
            raise SizeLimitError(
                f"round(certify=True) forms the dense tensor: {math.prod(self.shape)} entries exceed the 2^26 limit"
            )
        xp = self.xp
        # every core scaled by a power of two into range first (exact), so that the sweeps neither overflow nor
        # underflow (a train of subnormal float32 cores exceeded the bound); the factor 2^E goes back at the end
        scaled, E = _prescale(self.cores)
        cores, orth_bound, nu = _orthogonalise(scaled, 0)
        d = len(cores)
        # the norm sits in cores[0]: scaled by a power of two (exact) so that squared singular values and the
        # budget neither overflow nor underflow; the last core is scaled back
        m = _f(xp.max(xp.abs(cores[0])))
        e = int(np.frexp(m)[1]) if 0.0 < m < math.inf else 0
        cores[0] = _pow2_scale(cores[0], -e)
        nrm = _f(fro_norm(cores[0]))
        budget = (eps * nrm) ** 2
        used = 0.0
        steps = []
        for k in range(d - 1):
            r, n, r2 = (int(s) for s in cores[k].shape)
            Ck = xp.reshape(cores[k], (r * n, r2))
            U, S, Vh = svd(Ck)
            allowed = max(0.0, budget - used) / (d - 1 - k)
            rk, disc = truncation_rank(S, allowed, max_rank)
            used += disc
            Uk = U[:, :rk]
            SV = xp.reshape(S[:rk], (rk, 1)) * Vh[:rk, :]
            nxt = xp.tensordot(SV, cores[k + 1], axes=1)
            K = prod_up(gamma_up(r2, unit_roundoff(nxt)), fro_up(SV), fro_up(cores[k + 1]))
            steps.append((_np(Ck), _np(Uk), _np(SV), K))
            cores[k] = xp.reshape(Uk, (r, n, rk))
            cores[k + 1] = nxt
        sweep_err = _svd_sweep_bound(steps, nu) if d > 1 else 0.0
        orth_err = orth_bound()
        if orth_err > max(1e-2 * ldexp_up(sweep_err, e), 2.0**-44 * math.ldexp(nrm, e)):  # it matters: tighter norms
            orth_err = orth_bound(tight=True)
        err = ldexp_up(_add_up(orth_err, ldexp_up(sweep_err, e)), E)
        last = cores[-1]
        cores[-1] = _pow2_scale(last, e + E)
        if e + E > 0 and not bool(xp.all(xp.isfinite(cores[-1]))):
            raise FloatOverflowError("TensorTrain.round: the rounded train's entries exceed the float range of its "
                                     f"dtype ({_np_dtype(last)}): rescale the train")
        err = _add_up(err, _scale_back_bound(cores, last, e + E, d - 1))
        nrm = ldexp_up(nrm, e + E)
        if certify:
            err = min(err, tt_distance_bound(self.cores, cores))
        out = TensorTrain(tuple(cores), _add_up(self.error_bound, err), eps)
        if check:
            true = float(np.linalg.norm(_train64(self.cores) - _train64(out.cores)))
            _check_bound(true, err, nrm, "TensorTrain.round")
        return out


def _np(x) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float64)


def _np_dtype(x):
    """The NumPy dtype of an array of any library (``None`` if it has no NumPy equivalent)."""
    try:
        return np.asarray(to_numpy(x)).dtype
    except Exception:  # noqa: BLE001
        return None


def _is_pow2(x: float) -> bool:
    return x != 0.0 and math.isfinite(x) and math.frexp(abs(x))[0] == 0.5


def _half_subnormal(x) -> tuple[float, float]:
    """``(tiny, η)`` of the floating dtype of array ``x``: the smallest normal number and a float ``≥`` half the
    smallest subnormal (``2^-126, 2^-150`` for float32; float64's ``2^-1075`` is rounded up to ``2^-1074``)."""
    lo = pow2_range(x)[0]
    dt = _np_dtype(x)
    p = int(np.finfo(dt).nmant) if dt is not None and dt.kind == "f" else 52
    return math.ldexp(1.0, lo), max(math.ldexp(1.0, lo - p - 1), 5e-324)


def _underflow_up(new, nonzero) -> float:
    """``≥ ‖F‖_F`` for the underflow part ``F`` of an entrywise product ``new = fl(x·y) = x·y(1 + δ) + F``:
    ``|F_i| ≤ η`` (half the smallest subnormal, :func:`_half_subnormal`) where the exact product is nonzero
    (``nonzero``, a boolean NumPy array shaped like ``new``) and ``|fl(x·y)|`` is not above the smallest normal
    number, else 0 (the relative part ``|x·y·δ| ≤ u|fl(x·y)|/(1 − u)`` is bounded separately)."""
    tiny, eta = _half_subnormal(new)
    n = int(np.count_nonzero((np.abs(_np(new)) <= tiny) & nonzero))
    return _mul_up(_sqrt_float_up(float(n)), eta) if n else 0.0


def _float_up_q(q) -> float:
    """A float ``≥ q`` for a nonnegative rational."""
    return _float_up(Fraction(q))


def _products_may_underflow(a, b) -> bool:
    """Whether some product of a nonzero entry of ``a`` and one of ``b`` may round to ``|fl(x·y)| <=`` the
    smallest normal number: ``min|x| · min|y|`` over the nonzero entries is not safely above it (floats only)."""
    if not (_np(a).dtype.kind == "f" or _np(b).dtype.kind == "f"):
        return False
    tiny = _half_subnormal(a if _np(a).dtype.kind == "f" else b)[0]
    A, B = np.abs(_np(a)), np.abs(_np(b))
    A, B = A[A > 0], B[B > 0]
    if A.size == 0 or B.size == 0:
        return False
    with np.errstate(under="ignore", over="ignore"):
        return not float(A.min()) * float(B.min()) > 2.0 * tiny


@_quiet
def _prescale(cores) -> tuple[list, int]:
    """The cores, each floating one scaled by a power of two to ``max |G_k| ∈ [1/2, 1)`` where that is exact
    (checked by scaling back), and ``E`` with ``G_0 ⋯ G_{d−1} = 2^E · (product of the returned cores)``.

    The cores come back as they are (``E = 0``) when no partial product can leave the range anyway: the
    exponents ``e_k`` of the cores' largest entries and the sizes ``s_k`` satisfy
    ``Σ |e_k| + Σ log2 s_k <= hi / 2 - 24`` (``hi`` the dtype's largest exponent; half of it, so that squares
    of partial products stay in range too), the usual case, which then costs one reduction per core.
    """
    xp = namespace(*cores)
    exps, spread, hi = [], 0.0, None
    for c in cores:
        if not xp.isdtype(c.dtype, "real floating"):  # (integer cores stay exact)
            exps.append(None)
            continue
        size = math.prod(int(s) for s in c.shape)
        m = _f(xp.max(xp.abs(c))) if size else 0.0
        e = int(np.frexp(m)[1]) if 0.0 < m < math.inf else 0
        exps.append(e)
        spread += abs(e) + math.log2(max(size, 1))
        hi = pow2_range(c)[1] if hi is None else hi
    if hi is None or spread <= hi / 2 - 24:
        return list(cores), 0
    out, E = [], 0
    for c, e in zip(cores, exps):
        if e:
            s = _pow2_scale(c, -e)
            # scaling up (e < 0) is exact (max |s| < 1); scaling down may lose bits below the normal range
            if e < 0 or np.array_equal(_np(_pow2_scale(s, e)), _np(c)):
                c, E = s, E + e
        out.append(c)
    return out, E


@_quiet
def _scale_back_bound(cores, old_core, e: int, k: int) -> float:
    """``≥ ‖TT(cores) − TT(cores with core k = 2^e·old_core)‖_F`` for ``cores[k] = fl(2^e·old_core)``
    (:func:`_pow2_scale`).

    The scaling is exact unless entries fall below the normal range, where each rounds by at most half the
    smallest subnormal ``η`` of the dtype: ``‖E‖_F ≤ √(#inexact)·η`` for core ``k``, times
    ``‖G_0 ⋯ G_{k−1}‖_2 ‖G_{k+1} ⋯ G_{d−1}‖_2`` (:func:`~tropix.tn._linalg.prefix_norms`,
    :func:`~tropix.tn._linalg.suffix_norms`, only computed then).  0 when exact.
    """
    if e >= 0:
        return 0.0  # scaling up: exact (overflow is checked by the caller)
    new, old = _np(cores[k]), _np(old_core)
    inexact = int(np.count_nonzero(np.ldexp(new, -e) != old))
    if not inexact:
        return 0.0
    eta = _half_subnormal(old_core)[1]
    left = prefix_norms(cores)[k] if k > 0 else 1.0
    right = suffix_norms(cores)[k + 1] if k < len(cores) - 1 else 1.0
    return prod_up(_sqrt_float_up(float(inexact)), eta, left, right)


@_quiet
def _kron_chain_bound(cores, errs, left, right) -> float:
    """``≥ ‖TT(Ĉ) − TT(C)‖_F`` for stored cores ``Ĉ_k = C_k + E_k`` with ``‖E_k‖_F ≤ errs[k]``, given bounds
    ``left[k] ≥ ‖C_0 ⋯ C_{k−1}‖_2`` and ``right[k] ≥ ‖C_k ⋯ C_{d−1}‖_2`` on the *exact* trains' parts.

    Telescoping ``TT(Ĉ) − TT(C) = Σ_k L_{k−1} E_k R̂_{k+1}`` (exact prefix, stored suffix) with
    ``‖R̂_k − R_k‖_2 ≤ δ_k = ‖Ĉ_k‖_F δ_{k+1} + errs[k] right[k+1]`` (``δ_d = 0``), so the bound is
    ``Σ_k left[k] errs[k] (right[k+1] + δ_{k+1})``."""
    d = len(cores)
    delta = [0.0] * (d + 1)
    for k in range(d - 1, -1, -1):
        delta[k] = _add_up(_mul_up(fro_up(cores[k]), delta[k + 1]), _mul_up(errs[k], right[k + 1]))
    return sum_up(*(prod_up(left[k], errs[k], _add_up(right[k + 1], delta[k + 1])) for k in range(d)))


def _defect_up(G: np.ndarray, p: int, fQ: float) -> float:
    """``≥ ‖QᵀQ − I‖_2`` from ``G = fl(QᵀQ)`` (modified in place), the inner length ``p`` and ``fQ ≥ ‖Q‖_F``:
    ``fl(G − I)`` is within ``u`` of ``G − I`` entrywise, and ``|G − QᵀQ| ≤ γ_p |Q|ᵀ|Q|``, whose Frobenius norm is
    at most ``γ_p ‖Q‖²_F`` (Higham §3.5); ``‖·‖_2 ≤ ‖·‖_F``."""
    G[np.diag_indices(int(G.shape[0]))] -= 1.0
    return _add_up(_mul_up(fro_up(G), inv_one_minus_up()), prod_up(gamma_up(p), fQ, fQ))


def _balance(cores) -> list:
    """The same train in a balanced gauge: left to right, the columns of every core but the last (as an
    ``r n × r'`` matrix) are scaled by powers of two to norms in ``[1/2, 1)`` and the inverse scaling goes into
    the next core's rows, at every bond whose column norms spread over more than a factor 16 (a uniform scaling
    does not change the bounds).  Exact: a scaling that could overflow or lose bits below the normal range
    (checked on the extreme entries) is skipped.  It keeps the prefix norms of trains summed from differently
    scaled parts near 1, which the normwise bounds of :func:`_orthogonalise` need (without it a sum of a
    normalised and an unnormalised random train of 20 cores got a rounding bound of ``1e-2·‖X‖``)."""
    xp = namespace(*cores)
    out = list(cores)
    nxt_np = _np(out[0])
    for k in range(len(out) - 1):
        c, nxt = nxt_np, _np(out[k + 1])
        nxt_np = nxt
        col = np.sqrt(np.einsum("ijk,ijk->k", c, c))
        if not np.all(np.isfinite(col)):
            return list(cores)
        e = np.frexp(col)[1]  # frexp(0) = (0, 0): zero columns stay
        nz = col > 0
        if not nz.any() or int(e[nz].max()) - int(e[nz].min()) <= 4:
            continue
        e = np.where(nz, e, 0)
        lo, hi = int(e.min()), int(e.max())
        ac, an = np.abs(c), np.abs(nxt)
        tiny_c = float(ac[ac > 0].min()) if nz.any() else 1.0
        an_nz = an[an > 0]
        if an_nz.size and (float(an_nz.min()) * 2.0**lo < 2.0**-1021 or float(an.max()) * 2.0**hi >= 2.0**1020):
            continue
        if tiny_c * 2.0**-hi < 2.0**-1021:
            continue
        sc = np.ldexp(1.0, -e)
        out[k] = out[k] * xp.reshape(xp.asarray(sc, dtype=out[k].dtype), (1, 1, -1))
        out[k + 1] = out[k + 1] * xp.reshape(xp.asarray(np.ldexp(1.0, e), dtype=out[k + 1].dtype), (-1, 1, 1))
        nxt_np = _np(out[k + 1])
    return out


def _orthogonalise(cores, center: int, bound: bool = True):
    """The mixed canonical form around ``center`` and (with ``bound``) a rigorous bound on the change of the
    represented tensor.

    Returns ``(cores, err, nu)``: ``err()`` (or ``err(tight=True)``, see below) is ``≥ ‖X − X'‖_F`` for the
    trains ``X`` (the given cores, exact values) and ``X'`` (the returned cores), ``nu[k] ≥ ‖Q̂_k‖_2`` for every
    orthonormalised core (``None`` at the centre).

    The train is first put in a balanced gauge (:func:`_balance`, exact).  Right sweep (``k = d−1 … center+1``):
    ``C_k = R̂ᵀQ̂ᵀ + B_k`` (QR of ``C_kᵀ``), then ``C_{k−1} ← fl(C_{k−1}R̂ᵀ) = C_{k−1}R̂ᵀ + N_k``.  Telescoping over
    the intermediate trains, step ``k`` changes the tensor by ``L_{k−1} B_k R̂_{k+1} + L_{k−2} N_k Q̂_k R̂_{k+1}``
    with ``L`` the untouched prefix of the input and ``R̂`` the product of the new cores, so its Frobenius norm is
    at most ``P_k β_k ν_{>k} + P_{k−1} ‖N_k‖_F ν_k ν_{>k}``: ``P_k ≥ ‖L_{k−1}‖_2`` from products of per-core
    spectral norms or, with ``tight=True``, also from a Gram sweep with its own rounding bound
    (:func:`~tropix.tn._linalg.prefix_norms`, four times the cost, up to ``10^3×`` tighter), ``β_k ≥ ‖B_k‖_F`` the QR residual evaluated a
    posteriori in float64 with its rounding bound, ``‖N_k‖_F ≤ γ_r ‖C_{k−1}‖_F ‖R̂‖_F`` (``u`` of the cores'
    dtype), ``ν_k = sqrt(1 + ‖Q̂ᵀQ̂ − I‖_2)``.  The left sweep (``k = 0 … center−1``) runs on the result of the
    right sweep and is bounded the same way with the roles mirrored (:func:`~tropix.tn._linalg.suffix_norms`).
    Assumptions: IEEE arithmetic in the cores' dtype (float64 for the bound), no overflow or underflow;
    non-finite quantities give ``inf``.
    """
    cores = _balance(list(cores)) if bound else list(cores)
    d = len(cores)
    xp = namespace(*cores)
    nu = [None] * d
    inv = inv_one_minus_up()
    right_steps, left_steps = [], []
    orig = list(cores)
    if center < d - 1:
        nu_right = 1.0
        for k in range(d - 1, center, -1):
            r, n, r2 = (int(s) for s in cores[k].shape)
            Q, R = qr(xp.matrix_transpose(xp.reshape(cores[k], (r, n * r2))))
            q = int(Q.shape[1])
            new_k = xp.reshape(xp.matrix_transpose(Q), (q, n, r2))
            new_prev = xp.tensordot(cores[k - 1], xp.matrix_transpose(R), axes=1)
            if bound:
                Mn, Qn, Rn = _np(cores[k]).reshape(r, n * r2), _np(Q), _np(R)
                fQ, fR = fro_up(Qn), fro_up(Rn)
                beta = _add_up(_mul_up(fro_up(Mn - Rn.T @ Qn.T), inv), prod_up(gamma_up(q), fR, fQ))
                nu[k] = _sqrt_float_up(_add_up(1.0, _defect_up(Qn.T @ Qn, n * r2, fQ)))
                N = prod_up(gamma_up(r, unit_roundoff(new_prev)), fro_up(cores[k - 1]), fR)
                right_steps.append((k, beta, N, nu[k], nu_right))
                nu_right = _mul_up(nu_right, nu[k])
            cores[k], cores[k - 1] = new_k, new_prev
    mid = list(cores)
    if center > 0:
        nu_left = 1.0
        for k in range(center):
            r, n, r2 = (int(s) for s in cores[k].shape)
            Q, R = qr(xp.reshape(cores[k], (r * n, r2)))
            q = int(Q.shape[1])
            new_k = xp.reshape(Q, (r, n, q))
            new_next = xp.tensordot(R, cores[k + 1], axes=1)
            if bound:
                Mn, Qn, Rn = _np(cores[k]).reshape(r * n, r2), _np(Q), _np(R)
                fQ, fR = fro_up(Qn), fro_up(Rn)
                beta = _add_up(_mul_up(fro_up(Mn - Qn @ Rn), inv), prod_up(gamma_up(q), fQ, fR))
                nu[k] = _sqrt_float_up(_add_up(1.0, _defect_up(Qn.T @ Qn, r * n, fQ)))
                N = prod_up(gamma_up(r2, unit_roundoff(new_next)), fR, fro_up(cores[k + 1]))
                left_steps.append((k, beta, N, nu[k], nu_left))
                nu_left = _mul_up(nu_left, nu[k])
            cores[k], cores[k + 1] = new_k, new_next
    cache = {}

    def err(tight: bool = False) -> float:
        """The bound with prefix/suffix norms from per-core spectral norms, or (``tight``) the smaller of those
        and the Gram sweeps' bounds."""
        if not bound:
            return math.inf
        if "cheap" not in cache:
            cache["P"] = _cumprod_left(_unfolding_norms(orig, True)) if right_steps else None
            cache["S"] = _cumprod_right(_unfolding_norms(mid, False)) if left_steps else None
        P, S = cache["P"], cache["S"]
        if tight:
            if right_steps:
                P = [min(a, b) for a, b in zip(P, prefix_norms(orig))]
            if left_steps:
                S = [min(a, b) for a, b in zip(S, suffix_norms(mid))]
        e = 0.0
        for k, beta, N, nk, nr in right_steps:
            e = sum_up(e, prod_up(P[k], beta, nr), prod_up(P[k - 1], N, nk, nr))
        for k, beta, N, nk, nl in left_steps:
            e = sum_up(e, prod_up(nl, beta, S[k + 1]), prod_up(nl, nk, N, S[k + 2]))
        cache["cheap"] = True
        return e

    return cores, err, nu


def _unfolding_norms(cores, left: bool) -> list:
    """Per-core float bounds ``s_k ≥ ‖G_k^{(r n)×r'}‖_2`` (``left``) or ``‖G_k^{r×(n r')}‖_2``; for a train,
    ``‖G_0 ⋯ G_{k−1}‖_2 ≤ Π_{j<k} s_j`` and ``‖G_k ⋯ G_{d−1}‖_2 ≤ Π_{j≥k} s_j`` (a quarter of the cost of a Gram
    sweep; looser when the cores are far from orthonormal)."""
    out = []
    for c in cores:
        r, n, r2 = (int(x) for x in c.shape)
        cn = _np(c)
        out.append(spectral_up(cn.reshape(r * n, r2) if left else cn.reshape(r, n * r2)))
    return out


def _cumprod_left(s) -> list:
    """``[1, s_0, s_0 s_1, …]`` rounded up (length ``len(s) + 1``)."""
    out = [1.0]
    for x in s:
        out.append(_mul_up(out[-1], x))
    return out


def _cumprod_right(s) -> list:
    """``[…, s_{d−2} s_{d−1}, s_{d−1}, 1]`` rounded up (length ``len(s) + 1``)."""
    out = [1.0]
    for x in reversed(s):
        out.append(_mul_up(out[-1], x))
    return out[::-1]


@_quiet
def _svd_sweep_bound(steps, nu) -> float:
    """A rigorous bound on ``‖X' − Y‖_F`` for the truncation sweep of :meth:`TensorTrain.round` (see there).

    ``steps[k] = (C, U, SV, K)``: the unfolded current core ``C`` (``r n × r'``), the kept factor ``U`` and the
    carried ``SV`` (float64 NumPy copies of the stored values), and ``K ≥ ‖fl(SV·G_{k+1}) − SV·G_{k+1}‖_F`` for
    the product that forms the next core; ``nu[j] ≥ ‖Q̂_j‖_2`` for the right-orthonormal cores ``j ≥ 1``.

    With ``D_k = C − U·SV`` (exact), ``Z = fl(C − fl(U·SV))`` and ``ζ = u‖Z‖_F/(1 − u) + γ_{r_k}‖U‖_F‖SV‖_F ≥
    ‖D_k − Z‖_F``: ``δ_k = ‖Z‖_F + ζ ≥ ‖D_k‖_F`` and ``η_k = ‖fl(UᵀZ)‖_F + γ_p‖U‖_F‖Z‖_F + μ_k ζ ≥ ‖Uᵀ D_k‖_F``
    (``μ_k ≥ ‖U‖_2`` from the orthogonality defect).
    """
    m = len(steps)
    d = m + 1
    rho = [1.0] * (d + 1)  # rho[j] ≥ ‖Q̂_j ⋯ Q̂_{d−1}‖_2
    for j in range(d - 1, 0, -1):
        rho[j] = _mul_up(rho[j + 1], nu[j])
    g = gamma_up
    inv = inv_one_minus_up()
    u1 = _mul_up(2.0**-53, inv)
    sq = 0.0  # Σ_k t_k²
    cross = 0.0  # Σ_{j<k} |⟨e_j, e_k⟩|
    mult = 0.0  # the products forming the next cores
    A = 0.0  # Σ_{j<k} c_j Π_{j<i<k} μ_i
    omega, lam = 0.0, 1.0  # ‖L̂ᵀL̂ − I‖_2 and ‖L̂‖_2 of the kept prefix U_0 ⋯ U_{k−1}
    for k, (C, U, SV, K) in enumerate(steps):
        p, rk = int(U.shape[0]), int(U.shape[1])
        fU, fSV = fro_up(U), fro_up(SV)
        Z = C - U @ SV
        fZ = fro_up(Z)
        zeta = _add_up(_mul_up(u1, fZ), prod_up(g(rk), fU, fSV))
        delta = _add_up(fZ, zeta)  # ≥ ‖D_k‖_F (truncation + SVD rounding)
        om_u = _defect_up(U.T @ U, p, fU)  # ≥ ‖UᵀU − I‖_2
        mu = _sqrt_float_up(_add_up(1.0, om_u))
        eta = sum_up(fro_up(U.T @ Z), prod_up(g(p), fU, fZ), _mul_up(mu, zeta))
        b = _mul_up(delta, rho[k + 1])
        t = _mul_up(lam, b)
        sq = _add_up(sq, _mul_up(t, t))
        cross = _add_up(cross, _mul_up(A, b))
        c = _mul_up(rho[k + 1], _add_up(eta, prod_up(omega, mu, delta)))
        A = _add_up(_mul_up(A, mu), c)
        omega = _add_up(om_u, prod_up(omega, mu, mu))
        lam = min(_mul_up(lam, mu), _sqrt_float_up(_add_up(1.0, omega)))
        mult = _add_up(mult, prod_up(lam, K, rho[k + 2]))
    return _add_up(_sqrt_float_up(_add_up(sq, _mul_up(2.0, cross))), mult)


def _np64(x) -> np.ndarray:
    """A float64 NumPy copy (exact from float16/32/64 of any library)."""
    return np.asarray(to_numpy(x), dtype=np.float64)


def _train64(cores) -> np.ndarray:
    """The tensor of a train's cores contracted in float64 (``check=True``: the certificates bound the exact
    product of the stored cores; a float32 reconstruction adds about 1e-7 of its own, false alarms)."""
    out = _np64(cores[0])
    for c in cores[1:]:
        out = np.tensordot(out, _np64(c), axes=(-1, 0))
    return out.reshape(out.shape[1:-1])


def _check_bound(true: float, bound: float, scale: float, what: str) -> None:
    slack = 1e-10 * scale + 1e-300
    if true > bound * (1 + 1e-8) + slack:
        raise BoundViolationError(f"{what}: actual error {true:.3e} exceeds the certified bound {bound:.3e}")


def _check_base(base) -> float:
    b = float(check_real(base, "base", minimum=0, open_min=True))
    if b == 1.0:
        raise ToleranceError("base must not be 1 (log 1 = 0); use e (nats) or 2 (bits)")
    return b


def _entropy(s, base: float) -> float:
    base = _check_base(base)
    s = np.abs(np.asarray(to_numpy(s), dtype=np.float64))
    top = s.max(initial=0.0)
    if not top > 0:
        return 0.0
    p = (s / top) ** 2  # (scaled first: the entropy does not depend on the norm, squares of 1e200 overflow)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum() / math.log(base))


def _like(a: np.ndarray, like: Any):
    if like is None or isinstance(like, np.ndarray):
        return a
    from .._array import from_numpy

    return from_numpy(a, like)


def tt_svd(tensor: Any, eps: float = _DEFAULT_EPS, max_rank: int | None = None, *, check: bool = False) -> TensorTrain:
    """TT-SVD (Oseledets' δ-truncation): a tensor train with ``‖A − A_TT‖_F ≤ eps·‖A‖_F``.

    Parameters
    ----------
    tensor : array_like
        A dense tensor of any array library (exact input is converted to ``float64``).
    eps : float in (0, 1)
        Relative Frobenius tolerance.
    max_rank : int ≥ 1, optional
        Cap on every TT rank.  If it binds, the tolerance may be missed; the achieved bound is reported in
        ``error_bound`` (and ``rel_error_bound``).
    check : bool
        Recompute the error densely and raise :class:`~tropix.errors.BoundViolationError` if it exceeds the
        certified bound.

    Returns
    -------
    TensorTrain
        Left-orthonormal cores 0…d-2.  ``error_bound`` is a rigorous a posteriori bound on
        ``‖A − A_TT‖_F`` for the tensor ``A_TT`` the stored cores represent exactly, rounding included (for
        exact input ``A`` is the exact tensor, before conversion to ``float64``); see the module docstring
        and :func:`~tropix.tn._linalg.tt_residual_bound`.  It is at most ``eps·‖A‖_F`` unless ``max_rank``
        binds or ``eps`` is at rounding level.

    Raises
    ------
    ToleranceError
        If ``eps`` is not in (0, 1) or ``max_rank < 1``.
    NaNError, EmptyInputError
        For NaN or infinite entries (they would make every core NaN) or an empty tensor.
    ArgumentTypeError
        For a complex or non-numeric tensor.
    FloatOverflowError
        If an exact entry or the tensor's norm exceeds the float64 range.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A = rng.standard_normal((4, 5, 6))
    >>> tt = tt_svd(A, eps=0.3)
    >>> err = np.linalg.norm(tt.to_dense() - A) / np.linalg.norm(A)
    >>> bool(err <= 0.3), bool(tt.error_bound >= err * np.linalg.norm(A))
    (True, True)
    >>> tt_svd(A, eps=0.3, max_rank=1).ranks
    (1, 1, 1, 1)
    >>> full = tt_svd(A, eps=1e-14)        # nothing discarded: the bound is the rounding, a few u·‖A‖_F
    >>> bool(0 < full.error_bound < 1e-13 * np.linalg.norm(A))
    True
    """
    eps = check_eps(eps)
    max_rank = check_max_rank(max_rank)
    A = as_float(tensor)
    tt, nrm = _tt_svd(A, eps, max_rank, conversion_error(tensor, A))
    if check:
        true = float(np.linalg.norm(_np64(A) - _train64(tt.cores)))
        _check_bound(true, tt.error_bound, nrm, "tt_svd")
    return tt


def _pow2_scale(x, e: int):
    """``x · 2^e`` by multiplications with powers of two that are normal numbers of ``x``'s dtype (one when
    ``2^e`` is): ``2.0 ** e`` overflows for ``|e| > 1023`` in float64 and is cast to ``inf`` or ``0`` for
    ``|e| > 126`` in float32 (a float32 tensor of subnormal entries, scaled up by ``2^130``, became ``inf``)."""
    if e == 0:
        return x
    lo, hi = pow2_range(x)
    steps = []
    while e:
        steps.append(max(lo, min(hi, e)))
        e -= steps[-1]
    for step in reversed(steps):  # the remainder first: scaling down, only the last step can round (subnormals)
        x = x * 2.0**step
    return x


def _tt_sweep(A, eps: float, max_rank: int | None, reserve: float = 0.0):
    """The left-to-right TT-SVD sweep of a float tensor: ``(cores, nrm, tail)``, no certificate.

    ``tail = sqrt(Σ discarded²)``; the truncation budget is ``(eps·‖A‖_F − reserve)²``.  The sweep runs on
    ``A`` scaled by a power of two to ``max |A| ∈ [1/2, 1)`` (exact), so norms and squared singular values
    neither overflow nor underflow; the last core is scaled back.
    """
    xp = namespace(A)
    shape = tuple(int(s) for s in A.shape)
    d = len(shape)
    if d == 0:
        raise ShapeError("tt_svd needs a tensor with at least one mode")
    m = _f(xp.max(xp.abs(A)))
    e = int(np.frexp(m)[1]) if 0.0 < m < math.inf else 0
    C = _pow2_scale(A, -e)
    # max |C| ∈ [1/2, 1) after the scaling: the plain sum of squares neither overflows nor loses anything
    nrm = _f(xp.sqrt(xp.sum(C * C))) if 0.0 < m < math.inf else _f(fro_norm(C))
    budget = max(0.0, eps * nrm - math.ldexp(reserve, -e)) ** 2
    used = 0.0
    cores = []
    r = 1
    for k in range(d - 1):
        C = xp.reshape(C, (r * shape[k], -1))
        allowed = max(0.0, budget - used) / (d - 1 - k)
        U, C, disc = truncated_split(C, allowed, max_rank, nrm * nrm)  # ‖C‖_F ≤ ‖A‖_F up to rounding
        rk = int(U.shape[1])
        used += disc
        cores.append(xp.reshape(U, (r, shape[k], rk)))
        r = rk
    cores.append(_pow2_scale(xp.reshape(C, (r, shape[-1], 1)), e))
    try:
        return tuple(cores), math.ldexp(nrm, e), math.ldexp(math.sqrt(used), e)
    except OverflowError:
        raise FloatOverflowError("the tensor's Frobenius norm exceeds the float64 range (about 1.8e308), so no "
                                 "error bound can be certified: rescale the tensor") from None


def _tt_svd(A, eps: float, max_rank: int | None, conversion=None, sweep=None) -> tuple[TensorTrain, float]:
    """TT-SVD of a float tensor with the a posteriori certificate (``conversion``: see ``conversion_error``;
    ``sweep``: the result of ``_tt_sweep(A, eps, max_rank)`` if already computed).

    When the certificate exceeds ``eps·‖A‖_F`` only because the truncation used the whole budget and rounding
    came on top, the sweep is repeated once with the budget reduced by twice the measured rounding part.
    """
    cores, nrm, tail = _tt_sweep(A, eps, max_rank) if sweep is None else sweep
    bound = tt_residual_bound(A, cores, conversion)
    target = eps * nrm
    if bound > target and 0 < tail <= target:
        cores2, _, _ = _tt_sweep(A, eps, max_rank, 2 * (bound - tail))
        bound2 = tt_residual_bound(A, cores2, conversion)
        if bound2 < bound:
            cores, bound = cores2, bound2
    return TensorTrain(cores, bound, eps), nrm


def tt_round(
    tt: TensorTrain,
    eps: float = _DEFAULT_EPS,
    max_rank: int | None = None,
    *,
    check: bool = False,
    certify: bool = False,
) -> TensorTrain:
    """Rounding (recompression) of a tensor train; see :meth:`TensorTrain.round`.

    Examples
    --------
    >>> import numpy as np
    >>> a = TensorTrain.random((3, 3, 3, 3), rank=2, seed=1)
    >>> s = a + a                      # ranks 4, representing 2a (rank 2)
    >>> s.ranks, tt_round(s, eps=1e-10).ranks
    ((1, 4, 4, 4, 1), (1, 2, 2, 2, 1))
    """
    if not isinstance(tt, TensorTrain):
        raise ArgumentTypeError(f"tt_round rounds a TensorTrain, got {type(tt).__name__} (use tt_svd for a dense tensor)")
    return tt.round(eps, max_rank, check=check, certify=certify)


def schmidt_spectrum(tensor: Any, cut: int):
    """Singular values of the unfolding ``tensor[(modes < cut), (modes ≥ cut)]`` of a dense tensor or matrix.

    For a matrix ``W`` reshaped as ``(m_1, …, m_k, n_1, …)`` this is the spectrum across that cut; for
    a :class:`TensorTrain` use :meth:`TensorTrain.schmidt_spectrum`.

    Examples
    --------
    >>> import numpy as np
    >>> schmidt_spectrum(np.eye(3).reshape(3, 3), 1)
    array([1., 1., 1.])
    """
    cut = check_int(cut, "cut")
    if isinstance(tensor, TensorTrain):
        if not 0 < cut < tensor.ndim:  # (checked here: the bond's message would name cut - 1)
            raise ShapeError(f"cut must be in 1..{tensor.ndim - 1} for a {tensor.ndim}-way tensor train, got {cut}")
        return tensor.schmidt_spectrum(cut - 1)
    A = as_float(tensor)
    xp = namespace(A)
    shape = tuple(int(s) for s in A.shape)
    if not 0 < cut < len(shape):
        raise ShapeError(f"cut must be in 1..{len(shape) - 1} for a {len(shape)}-way tensor, got {cut}")
    m = int(np.prod(shape[:cut]))
    s = xp.linalg.svdvals(xp.reshape(A, (m, -1)))
    if not bool(xp.all(xp.isfinite(s))):
        raise FloatOverflowError("the singular values exceed the float64 range (about 1.8e308): rescale the tensor")
    return s


def entanglement_entropy(tensor: Any, cut: int, base: float = math.e) -> float:
    """Von Neumann entropy of :func:`schmidt_spectrum` ``(tensor, cut)``.

    Examples
    --------
    >>> import numpy as np
    >>> bell = np.array([[1.0, 0.0], [0.0, 1.0]]) / np.sqrt(2)
    >>> round(entanglement_entropy(bell, 1, base=2), 12)
    1.0
    """
    return _entropy(schmidt_spectrum(tensor, cut), base)
