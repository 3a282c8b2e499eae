"""Resonant attention: tokens as sparse sets of primes carrying a phase and a unit quaternion.

Source: S. Schepis, ``sschepis/tinyaleph`` (``docs/theory/12-resonant-attention.md``).  A token state is a
set ``P_i`` of at most ``k`` primes; each prime ``p ∈ P_i`` carries a complex amplitude ``α_{i,p}`` (phase
``φ_{i,p} = arg α_{i,p}``) and a unit quaternion ``q_{i,p}``.  The resonance of two states is

.. math::

   \\operatorname{Res}(i, j) = a\\,\\frac{|P_i\\cap P_j|}{|P_i\\cup P_j|}
     + b\\,\\operatorname*{mean}_{p\\in P_i\\cap P_j}|\\langle q_{i,p}, q_{j,p}\\rangle|
     + c\\,\\tfrac12\\Bigl(\\operatorname*{mean}_{p\\in P_i\\cap P_j}\\cos(\\varphi_{i,p}-\\varphi_{j,p}) + 1\\Bigr)

with ``(a, b, c) = (0.33, 0.33, 0.34)``, and ``Res = 0`` when ``P_i ∩ P_j = ∅``.  Attention weights are
``softmax_j(Res(i, j)/τ)``.

**The zero quaternion.**  Quaternions are normalised to unit length; the zero quaternion has no direction and is
kept as 0 (an orientation of nothing), so its alignment term is ``|⟨0, q⟩| = 0`` with every quaternion — the value
of the source's formula, a plain 4-D dot product.  Every path agrees on this (the sparse states used to replace 0
by the identity ``(1, 0, 0, 0)``, scoring ``|q_w|``, while the tensorised path scored 0 and had NaN gradients).

Two paths, tested against each other:

* **sparse** (:class:`SparsePrimeState`, :func:`resonance`, :func:`resonant_attend`): ``O(k)`` per pair
  with hash maps, ``O(n k)`` per query, ``O(n² k)`` for self-attention; the attended output is the
  source's sparse state ``Σ_j w_j (α_j, q_j)`` accumulated per prime, then normalised.
* **tensorised** (:func:`resonant_scores`, :func:`resonant_attention`): states as slot arrays (primes
  ``(..., n, k)`` with 0 for an empty slot, phases ``(..., n, k)``, quaternions ``(..., n, k, 4)``); the
  shared primes are found by comparing slot pairs, ``O(n² k²)`` time (slot pairs that share no prime
  anywhere are skipped, which for hashed prime sets leaves about ``k``), ``O(n²)`` memory,
  differentiable in phases and quaternions (the Jaccard term is piecewise constant).  This is the path
  the torch wrapper uses, aggregating ordinary value vectors with the resonance weights.

**Geometric picture.**  Each prime is an independent "resonator"; two tokens resonate when they share
resonators whose phases agree (points close on the circle) and whose orientations agree (quaternions
close on ``S³``, up to the sign ``q ≡ −q``).

Where the source is vague or wrong: the normalisation of the attended state is unspecified (ℓ2 over
the amplitudes here; quaternions are renormalised per prime).  Its complexity claim "O(n log n)" is per
query with ``k = O(log n)``, and its Theorem 5.1 "O(nk²)" contradicts its own proof.  Its Theorem 6.1
(the resonance Gram matrix is positive semi-definite) is **false** — tested with a counterexample.
"""

from __future__ import annotations

import cmath
import hashlib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..._array import is_array, namespace
from ..._repr import compact_repr, summary
from ...errors import (ArgumentTypeError, DomainError, EmptyInputError, NaNError, ShapeError, SizeLimitError,
                       ToleranceError)
from ...tropical._args import check_int, check_real
from ._common import (_fmax, check_batch, check_finite, common_float, max_abs, prepare, softmax_pow2,
                      times_pow2)

__all__ = [
    "SparsePrimeState",
    "first_primes",
    "resonance",
    "resonant_attend",
    "resonant_scores",
    "resonant_attention",
    "states_to_arrays",
    "DEFAULT_WEIGHTS",
]

DEFAULT_WEIGHTS = (0.33, 0.33, 0.34)


def first_primes(n: int) -> list[int]:
    """The first ``n`` primes.

    Examples
    --------
    >>> first_primes(6)
    [2, 3, 5, 7, 11, 13]
    """
    n = check_int(n, "n")
    if n <= 0:
        return []
    limit = max(15, int(n * (math.log(n) + math.log(math.log(n + 2)) + 2)))
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for p in range(2, int(limit**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytearray(len(range(p * p, limit + 1, p)))
    return [i for i in range(limit + 1) if sieve[i]][:n]


def _unit_quat(qt: Sequence[float]) -> tuple[float, float, float, float]:
    """``qt/‖qt‖``; the zero quaternion stays 0 (it has no direction; it used to become the identity
    ``(1, 0, 0, 0)``, which the tensorised path did not do).  ``hypot`` neither overflows nor underflows: a
    quaternion of size 1e200 became 0 and one of size 1e-200 the identity."""
    nrm = math.hypot(*(float(x) for x in qt))
    if nrm == 0:
        return (0.0, 0.0, 0.0, 0.0)
    return tuple(float(x) / nrm for x in qt)  # type: ignore[return-value]


@dataclass(frozen=True)
class SparsePrimeState:
    """A sparse token state: distinct primes, one complex amplitude and one unit quaternion each (normalised
    here; a zero quaternion stays 0, an orientation of nothing that aligns with no quaternion)."""

    primes: tuple[int, ...]
    amplitudes: tuple[complex, ...]
    quaternions: tuple[tuple[float, float, float, float], ...]
    __repr__ = compact_repr

    def __post_init__(self):
        for name in ("primes", "amplitudes", "quaternions"):
            val = getattr(self, name)
            if isinstance(val, (str, bytes)) or not isinstance(val, (Sequence, np.ndarray)):
                raise ArgumentTypeError(f"{name} must be a sequence, got {val!r} ({type(val).__name__})")
        if not (len(self.primes) == len(self.amplitudes) == len(self.quaternions)):
            raise ShapeError("primes, amplitudes and quaternions must have the same length")
        primes = tuple(check_int(p, "every prime") for p in self.primes)
        if len(set(primes)) != len(primes):
            raise DomainError(f"primes of a state must be distinct, got {primes}")
        if any(p < 2 for p in primes):
            raise DomainError(f"primes must be >= 2, got {primes}")
        amps = []
        for al in self.amplitudes:
            if isinstance(al, (bool, np.bool_)) or not isinstance(al, (numbers.Complex, np.number)):
                raise ArgumentTypeError(f"every amplitude must be a (complex) number, got {al!r}")
            if not cmath.isfinite(complex(al)):
                raise NaNError(f"amplitude {al!r} is not finite")
            amps.append(al)
        quats = []
        for qt in self.quaternions:
            if isinstance(qt, (str, bytes)) or not isinstance(qt, (Sequence, np.ndarray)) or len(qt) != 4:
                raise ShapeError(f"every quaternion must be 4 real numbers, got {qt!r}")
            for x in qt:
                check_real(x, "every quaternion component")
            quats.append(_unit_quat(qt))
        object.__setattr__(self, "primes", primes)
        object.__setattr__(self, "amplitudes", tuple(amps))
        object.__setattr__(self, "quaternions", tuple(quats))

    @classmethod
    def from_hash(cls, text: str, k: int = 8, n_primes: int = 4096) -> "SparsePrimeState":
        """A deterministic state from the SHA-256 of ``text`` (``k`` distinct primes of the first ``n_primes``).

        Examples
        --------
        >>> s = SparsePrimeState.from_hash("MAX", k=3, n_primes=50)
        >>> len(s.primes), s == SparsePrimeState.from_hash("MAX", k=3, n_primes=50)
        (3, True)
        """
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text must be a string, got {type(text).__name__}")
        k, n_primes = check_int(k, "k"), check_int(n_primes, "n_primes")
        if k < 1 or k > n_primes:
            raise ToleranceError(f"need 1 <= k <= n_primes, got k={k}, n_primes={n_primes}")
        primes = first_primes(n_primes)
        chosen: list[int] = []
        amps: list[complex] = []
        quats: list[tuple[float, ...]] = []
        counter = 0
        while len(chosen) < k:
            h = hashlib.sha256(f"{counter}:{text}".encode()).digest()
            counter += 1
            p = primes[int.from_bytes(h[0:4], "big") % n_primes]
            if p in chosen:
                continue
            phase = 2 * math.pi * int.from_bytes(h[4:8], "big") / 2**32
            mag = 0.5 + int.from_bytes(h[8:10], "big") / 2**16
            q = [int.from_bytes(h[10 + 2 * t : 12 + 2 * t], "big") / 2**15 - 1.0 for t in range(4)]
            chosen.append(p)
            amps.append(cmath.rect(mag, phase))
            quats.append(tuple(q))
        return cls(tuple(chosen), tuple(amps), tuple(quats))  # type: ignore[arg-type]


def _check_weights(weights) -> tuple[float, float, float]:
    if isinstance(weights, (str, bytes)) or not isinstance(weights, (Sequence, np.ndarray)) or len(weights) != 3:
        raise ArgumentTypeError(f"weights must be three real numbers (a, b, c), got {summary(weights)}")
    return tuple(float(check_real(w, "every weight")) for w in weights)  # type: ignore[return-value]


def resonance(s: SparsePrimeState, t: SparsePrimeState, weights: Sequence[float] = DEFAULT_WEIGHTS) -> float:
    """``Res(s, t)`` in ``O(k)`` with a hash map (see the module docstring).

    Examples
    --------
    >>> s = SparsePrimeState((2, 3), (1, 1j), ((1, 0, 0, 0), (0, 1, 0, 0)))
    >>> t = SparsePrimeState((3, 5), (1j, 1), ((0, -1, 0, 0), (1, 0, 0, 0)))
    >>> round(resonance(s, t), 6)       # J = 1/3, quaternions aligned up to sign, equal phases
    0.78
    """
    for name, x in (("s", s), ("t", t)):
        if not isinstance(x, SparsePrimeState):
            raise ArgumentTypeError(f"{name} must be a SparsePrimeState, got {type(x).__name__}")
    a, b, c = _check_weights(weights)
    tmap = {p: i for i, p in enumerate(t.primes)}
    shared = [(i, tmap[p]) for i, p in enumerate(s.primes) if p in tmap]
    if not shared:
        return 0.0
    union = len(s.primes) + len(t.primes) - len(shared)
    jac = len(shared) / union
    qa = sum(abs(sum(x * y for x, y in zip(s.quaternions[i], t.quaternions[j]))) for i, j in shared) / len(shared)
    ph = sum(math.cos(cmath.phase(s.amplitudes[i]) - cmath.phase(t.amplitudes[j])) for i, j in shared) / len(shared)
    return a * jac + b * qa + c * 0.5 * (ph + 1.0)


def resonant_attend(query: SparsePrimeState, states: Sequence[SparsePrimeState], *, tau: float = 1.0,
                    weights: Sequence[float] = DEFAULT_WEIGHTS):
    """Sparse resonant attention of one query over ``states``: ``(w, combined state)``.

    ``w_j = softmax_j(Res(query, s_j)/τ)``; the combined state accumulates ``w_j α_{j,p}`` and ``w_j q_{j,p}``
    per prime, then normalises the amplitudes to unit ℓ2 norm and each quaternion to unit length (a quaternion
    sum that cancels to 0 stays 0).

    Examples
    --------
    >>> s1 = SparsePrimeState.from_hash("a", k=2, n_primes=5); s2 = SparsePrimeState.from_hash("b", k=2, n_primes=5)
    >>> w, out = resonant_attend(s1, [s1, s2], tau=0.1)
    >>> round(sum(w), 12), bool(w[0] > w[1])
    (1.0, True)
    """
    states = _check_states(states)
    if not states:
        raise EmptyInputError("resonant_attend needs at least one state")
    if not isinstance(query, SparsePrimeState):
        raise ArgumentTypeError(f"query must be a SparsePrimeState, got {type(query).__name__}")
    check_real(tau, "tau", minimum=0, open_min=True)
    _check_weights(weights)
    res = [resonance(query, s, weights) for s in states]
    top = max(res)
    # (res - top)/τ, not res/τ - top/τ: at τ = 1e-320 the quotients were inf and inf - inf gave NaN weights
    e = [math.exp((x - top) / tau) for x in res]
    z = sum(e)
    w = [x / z for x in e]
    amp: dict[int, complex] = {}
    quat: dict[int, list[float]] = {}
    for wj, s in zip(w, states):
        for p, al, qq in zip(s.primes, s.amplitudes, s.quaternions):
            amp[p] = amp.get(p, 0j) + wj * al
            acc = quat.setdefault(p, [0.0, 0.0, 0.0, 0.0])
            for t in range(4):
                acc[t] += wj * qq[t]
    primes = tuple(sorted(amp))
    norm = math.sqrt(sum(abs(amp[p]) ** 2 for p in primes)) or 1.0
    return w, SparsePrimeState(primes, tuple(amp[p] / norm for p in primes), tuple(tuple(quat[p]) for p in primes))


def _check_states(states) -> list:
    if isinstance(states, (str, bytes)) or not isinstance(states, (Sequence, np.ndarray)):
        raise ArgumentTypeError(f"states must be a sequence of SparsePrimeState, got {type(states).__name__}")
    states = list(states)
    for i, s in enumerate(states):
        if not isinstance(s, SparsePrimeState):
            raise ArgumentTypeError(f"state {i} must be a SparsePrimeState, got {type(s).__name__}")
    return states


def states_to_arrays(states: Sequence[SparsePrimeState], k: int | None = None):
    """Slot arrays ``(primes (n, k) int, phases (n, k), quaternions (n, k, 4))`` of sparse states (0 = empty slot).

    Examples
    --------
    >>> p, ph, q = states_to_arrays([SparsePrimeState((7,), (1j,), ((0, 0, 0, 2),))], k=2)
    >>> p.tolist(), ph.round(4).tolist(), q[0, 0].tolist()
    ([[7, 0]], [[1.5708, 0.0]], [0.0, 0.0, 0.0, 1.0])
    """
    states = _check_states(states)
    k = max((len(s.primes) for s in states), default=0) if k is None else check_int(k, "k", minimum=0)
    n = len(states)
    try:
        P = np.zeros((n, k), dtype=np.int64)
        PH = np.zeros((n, k))
        Q = np.zeros((n, k, 4))
    except MemoryError:  # (was a raw MemoryError)
        raise SizeLimitError(f"{n} states with k = {k} slots do not fit in memory") from None
    Q[..., 0] = 1.0
    for i, s in enumerate(states):
        if len(s.primes) > k:
            raise ShapeError(f"state {i} has {len(s.primes)} primes, more than k = {k} slots")
        for t, (p, al, qq) in enumerate(zip(s.primes, s.amplitudes, s.quaternions)):
            P[i, t] = p
            PH[i, t] = cmath.phase(al)
            Q[i, t] = qq
    return P, PH, Q


def resonant_scores(primes_q: Any, phase_q: Any, quat_q: Any, primes_k: Any, phase_k: Any, quat_k: Any, *,
                    weights: Sequence[float] = DEFAULT_WEIGHTS):
    """The resonance matrix ``Res(i, j)`` of shape ``(..., n_q, n_k)`` from slot arrays (tensorised path).

    Parameters
    ----------
    primes_q, primes_k : integer arrays ``(..., n, k)``
        Distinct primes per token; 0 marks an empty slot.
    phase_q, phase_k : float arrays ``(..., n, k)``
        Phases ``φ = arg α``.
    quat_q, quat_k : float arrays ``(..., n, k, 4)``
        Quaternions (normalised here; a zero quaternion has alignment 0 with every quaternion, as in the sparse
        path, and finite gradients).
    weights : (a, b, c)

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[2, 3], [3, 5]]); ph = np.array([[0.0, np.pi / 2], [np.pi / 2, 0.0]])
    >>> Q = np.array([[[1, 0, 0, 0], [0, 1, 0, 0]], [[0, -1, 0, 0], [1, 0, 0, 0]]], dtype=float)
    >>> np.round(resonant_scores(P, ph, Q, P, ph, Q), 6)
    array([[1.  , 0.78],
           [0.78, 1.  ]])
    """
    for name, P in (("primes_q", primes_q), ("primes_k", primes_k)):
        if not is_array(P):
            raise ArgumentTypeError(f"{name} must be an integer array, got {type(P).__name__}")
        if not namespace(P).isdtype(P.dtype, "integral"):
            raise ArgumentTypeError(f"{name} must be an integer array (0 = empty slot), got dtype {P.dtype}")
    xp = prepare(("phase_q", phase_q), ("quat_q", quat_q), ("phase_k", phase_k), ("quat_k", quat_k))
    namespace(primes_q, primes_k, phase_q)  # BackendMismatchError for primes of another library
    for name, a in (("phase_q", phase_q), ("quat_q", quat_q), ("phase_k", phase_k), ("quat_k", quat_k)):
        if xp.isdtype(a.dtype, "bool"):  # (bool phases made the whole computation boolean: Res(i, i) = 1.28)
            raise ArgumentTypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    # one floating dtype (integer phases, float32 phases with float64 quaternions)
    phase_q, quat_q, phase_k, quat_k = common_float(xp, phase_q, quat_q, phase_k, quat_k)
    for name, a in (("phase_q", phase_q), ("quat_q", quat_q), ("phase_k", phase_k), ("quat_k", quat_k)):
        check_finite(xp, a, name, "phases and quaternions")  # (cos(inf) and inf/inf were silent NaN scores)
    for name, P, PH, Q in (("q", primes_q, phase_q, quat_q), ("k", primes_k, phase_k, quat_k)):
        if P.ndim < 2 or tuple(PH.shape) != tuple(P.shape) or tuple(Q.shape) != tuple(P.shape) + (4,):
            raise ShapeError(
                f"states of {name}: primes and phases must be (..., n, k) and quaternions (..., n, k, 4); got "
                f"{tuple(P.shape)}, {tuple(PH.shape)}, {tuple(Q.shape)}")
    check_batch(("primes_q", primes_q), ("primes_k", primes_k))  # (was NumPy's raw broadcast ValueError)
    for name, P in (("q", primes_q), ("k", primes_k)):
        xpp = namespace(P)
        if bool(xpp.any((P != 0) & (P < 2))):  # (a negative "prime" was an empty slot, 1 a prime)
            raise DomainError(f"primes_{name}: every slot must hold a prime >= 2, or 0 for an empty slot")
        if P.shape[-1] > 1:  # a prime repeated within a token was counted twice (Jaccard above 1)
            Ps = xpp.sort(P, axis=-1)
            if bool(xpp.any((Ps[..., 1:] == Ps[..., :-1]) & (Ps[..., 1:] > 0))):
                raise DomainError(f"primes_{name}: a token lists the same prime in two slots (primes must be distinct)")
    a, b, c = _check_weights(weights)

    def unit(Q):
        # Q/‖Q‖ computed as (Q/m)/‖Q/m‖ with m = max|Q_t|: ‖Q‖² overflowed (a quaternion of size 1e200 scored as 0)
        # or underflowed (1e-200; float32 1e-25).  The zero quaternion stays 0, with finite gradients (the sqrt
        # of 0 gave NaN gradients, also to the module's input)
        m = xp.max(xp.abs(Q), axis=-1, keepdims=True)
        pos = m > 0
        Qs = Q / xp.where(pos, m, xp.ones_like(m))
        sq = xp.sum(Qs * Qs, axis=-1, keepdims=True)
        return Qs / xp.where(pos, xp.sqrt(xp.where(pos, sq, xp.ones_like(sq))), xp.ones_like(sq))

    Qq, Qk = unit(quat_q), unit(quat_k)
    cq, sq = xp.cos(phase_q), xp.sin(phase_q)
    ck, sk = xp.cos(phase_k), xp.sin(phase_k)
    kq, kk = primes_q.shape[-1], primes_k.shape[-1]
    dtype = phase_q.dtype
    size_q = xp.sum(xp.astype(primes_q > 0, dtype), axis=-1)[..., :, None]
    size_k = xp.sum(xp.astype(primes_k > 0, dtype), axis=-1)[..., None, :]
    inter = qa = ph = None
    for s in range(kq):
        ps = primes_q[..., :, s]
        for t in range(kk):
            pt = primes_k[..., :, t]
            Mb = (ps[..., :, None] == pt[..., None, :]) & (ps[..., :, None] > 0)
            if not bool(xp.any(Mb)):
                continue  # typical: hashed prime sets share primes in few slot pairs
            M = xp.astype(Mb, dtype)
            dot = Qq[..., :, s, :] @ xp.matrix_transpose(Qk[..., :, t, :])
            cosd = cq[..., :, s, None] * ck[..., None, :, t] + sq[..., :, s, None] * sk[..., None, :, t]
            if inter is None:
                inter, qa, ph = M, M * xp.abs(dot), M * cosd
            else:
                inter, qa, ph = inter + M, qa + M * xp.abs(dot), ph + M * cosd
    if inter is None:  # no prime shared anywhere
        shape = tuple(np.broadcast_shapes(tuple(primes_q.shape[:-2]), tuple(primes_k.shape[:-2])))
        return xp.zeros(shape + (primes_q.shape[-2], primes_k.shape[-2]), dtype=dtype)
    has = inter > 0
    safe = xp.where(has, inter, xp.ones_like(inter))
    jac = inter / xp.where(has, size_q + size_k - inter, xp.ones_like(inter))
    res = a * jac + b * qa / safe + c * 0.5 * (ph / safe + 1.0)
    return xp.where(has, res, xp.zeros_like(res))


def _over_tau(xp, s, tau):
    """``s/τ`` as ``(y, e)`` with ``s/τ = y·2^e``: a tiny τ (1e-310) made ``s/τ`` overflow to ``+inf`` — every
    resonating key then shared the row equally instead of the most resonant one taking it.  An array ``τ`` keeps
    its gradient: the backward of ``s/τ`` forms ``(s/τ)/τ``, which overflowed where ``τ²`` underflows (scores
    near 1 with float64 τ below 1e-154, float32 1e-19, float16 4e-3: ``0·inf``, a NaN gradient), so such a τ is
    scaled too."""
    t = float(tau.detach() if hasattr(tau, "detach") else tau) if is_array(tau) else float(tau)
    with np.errstate(over="ignore", divide="ignore"):
        big = np.float64(max_abs(xp, s)) / np.float64(t)
        fmax = _fmax(xp, s.dtype)
        if big < fmax / 8 and not (is_array(tau) and big / np.float64(t) >= fmax / 8):
            return s / tau, 0
    ex = math.frexp(t)[1]
    return s / (times_pow2(xp, tau, -ex) if is_array(tau) else math.ldexp(t, -ex)), -ex


def resonant_attention(primes_q: Any, phase_q: Any, quat_q: Any, primes_k: Any, phase_k: Any, quat_k: Any,
                       v: Any, *, tau: float = 1.0, weights: Sequence[float] = DEFAULT_WEIGHTS, mask: Any = None,
                       return_weights: bool = False):
    """``softmax_j(Res(i, j)/τ) V`` with the tensorised resonance (see :func:`resonant_scores`).

    Examples
    --------
    >>> import numpy as np
    >>> P = np.array([[2, 3], [3, 5]]); ph = np.zeros((2, 2)); Q = np.tile([1.0, 0, 0, 0], (2, 2, 1))
    >>> out, A = resonant_attention(P, ph, Q, P, ph, Q, np.eye(2), tau=0.5, return_weights=True)
    >>> np.allclose(A.sum(-1), 1), bool(A[0, 0] > A[0, 1])
    (True, True)
    """
    check_real(tau, "tau", minimum=0, open_min=True)
    xp = prepare(("v", v))
    if v.ndim < 2:
        raise ShapeError(f"v must have shape (..., n_k, d_v); got {tuple(v.shape)}")
    s = resonant_scores(primes_q, phase_q, quat_q, primes_k, phase_k, quat_k, weights=weights)
    namespace(v, s)  # BackendMismatchError for values of another library than the states
    if v.shape[-2] != s.shape[-1]:
        raise ShapeError(f"v must have shape (..., n_k={s.shape[-1]}, d_v); got {tuple(v.shape)}")
    check_batch(("scores", s), ("v", v))  # (batch axes that do not broadcast were a raw ValueError)
    check_finite(xp, v, "v")  # (an infinite value gave NaN rows: 0·inf)
    A = softmax_pow2(xp, *_over_tau(xp, s, tau), None, mask)
    A, v = common_float(xp, A, v)  # (float32 values with float64 phases: torch's raw "expected the same dtype")
    out = A @ v
    return (out, A) if return_weights else out
