"""Validation of attention inputs and the additive "extra" term (mask, bias, causal) shared by every method.

Conventions (the same for every method in :mod:`tropix.attention`):

* ``q`` has shape ``(..., n_q, d)``, ``k`` ``(..., n_k, d)``, ``v`` ``(..., n_k, d_v)``; leading (batch /
  head) dimensions must be equal.
* ``mask`` is boolean, ``True`` = the key takes part (as in ``torch``'s boolean ``attn_mask``); its shape
  must broadcast to ``(..., n_q, n_k)`` (so a key-padding mask of shape ``(n_k,)`` works).
* ``bias`` is an additive float term of a shape broadcasting to ``(..., n_q, n_k)``; ``-inf`` masks a key.
* ``causal=True`` lets query ``i`` see keys ``j <= i`` (top-left aligned, as ``torch``'s ``is_causal``).
* The score is ``s_ij = scale * q_i . k_j + bias_ij`` with ``scale = 1/sqrt(d)`` by default.
* A query that sees no key (a fully masked row) has output zero.
"""

from __future__ import annotations

import functools
import math
import numbers
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._array import asarray, check_no_nan, from_numpy, is_array, namespace, to_numpy
from .._compiled import compiled
from .._repr import summary
from ..tropical._args import check_array_dtype
from ..errors import ArgumentTypeError, ConventionError, EmptyInputError, NaNError, ShapeError, ToleranceError

_local = threading.local()

__all__ = ["Prepared", "prepare", "check_eps", "block_extra", "extra_numpy", "visible_counts", "key_hash"]


@dataclass(frozen=True)
class Prepared:
    """Validated attention inputs (arrays of one library, floating point)."""

    xp: Any
    q: Any
    k: Any
    v: Any
    mask: Any
    bias: Any
    scale: float
    causal: bool
    batch_shape: tuple
    n_q: int
    n_k: int
    d: int
    d_v: int
    knorm: Any = None  # row norms of k and v (NumPy float64), when validation computed them on the way
    vnorm: Any = None
    khash: Any = None  # key_hash(k), when validation computed it on the way
    kbf16: Any = None  # k packed for the bfloat16 screen (a _bf16.BF16Keys with resmax), when asked and done
    bias_cnt: Any = None  # per row of the bias (shape bias.shape[:-1] padded to batch + 2 dims): entries above
    bias_absmax: Any = None  # -inf and their largest |b|, when validation computed them on the way (NumPy)
    bias32: Any = None  # a 2-D (n_q, n_k) bias rounded to float32, blocked by 16 queries ((n_q + 15) // 16,
    # n_k, 16) for the fused screen (or (n_q, n_k) rows without its compiled transposer), when asked
    ki8: Any = None  # k packed for the int8 screen (an _int8.I8Keys with resmax), when asked and done
    qnorm: Any = None  # row norms of q (NumPy float64), when validation computed them on the way


def _to_float(x, xp, name, like=None):
    if isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.dtype == object):
        x = asarray(x, name=name)
        if isinstance(x, np.ndarray) and x.dtype == object:
            x = np.array([float(t) for t in x.ravel()], dtype=np.float64).reshape(x.shape)
        if like is not None:  # (a nested-list mask or bias with torch or array-API inputs: into their library)
            x = from_numpy(x, like)
    if not is_array(x):
        raise ArgumentTypeError(f"{name} must be an array or a nested list, not {type(x).__name__}")
    check_array_dtype(x, name)  # (complex input was cast to float64, its imaginary part dropped without a word)
    if not xp.isdtype(x.dtype, "real floating"):
        x = xp.astype(x, xp.float64)
    return x


def _shape(x):
    return tuple(int(s) for s in x.shape)


def _broadcasts_to(shape, full):
    if len(shape) > len(full):
        return False
    for a, b in zip(reversed(shape), reversed(full)):
        if a != 1 and a != b:
            return False
    return True


def prepare(q, k, v, mask=None, bias=None, scale=None, causal=False, *, fname="attention",
            hash_keys=False, pack_bf16=False, pack_i8=False, pack_bias=False, norms: bool = False) -> Prepared:
    """Check and convert the inputs of an attention call; raise a specific tropix error on bad input.

    ``hash_keys``: also the keys' fingerprint :func:`key_hash`, on the way when validation makes its compiled
    pass (a prebuilt key tree checks it).  ``pack_bf16``: also the keys packed for the bfloat16 screen with
    their rounding errors (``kbf16``, :func:`tropix.attention._bf16_numba.rownorms_pack`), in that pass
    (not with ``hash_keys``).  ``pack_i8``: likewise the keys packed for the int8 screen with their
    quantisation residuals (``ki8``, :func:`tropix.attention._int8_numba.rownorms_pack`; not with
    ``pack_bf16``, and only for ``d <= _int8.MAX_D``).  ``pack_bias``: also a large 2-D NumPy float64 bias of shape ``(n_q, n_k)``
    rounded to float32 (``bias32``) in the pass that validates it, blocked by 16 queries as the fused screen
    reads it (:func:`_bias_stats_blocked`).  ``norms``: the row norms of NumPy float64 queries, keys and values
    from ``2^12`` entries on (``qnorm``, ``knorm``, ``vnorm``; those of the keys and values from ``2^16`` in any
    case): the compiled pass that
    validates them costs about what NumPy's finiteness check does, and a caller that needs the largest
    norms (``auto``'s rounding bound) then does not read them again."""
    raw = [x for x in (q, k, v, mask, bias) if is_array(x)]
    xp = namespace(*raw)
    q = _to_float(q, xp, "q")
    k = _to_float(k, xp, "k")
    v = _to_float(v, xp, "v")
    if not (q.dtype == k.dtype == v.dtype):  # (torch's matmul refuses mixed dtypes: the common one, as NumPy's)
        dt = xp.result_type(q.dtype, k.dtype, v.dtype)
        q, k, v = (x if x.dtype == dt else xp.astype(x, dt) for x in (q, k, v))
    for name, x in (("q", q), ("k", k), ("v", v)):
        if x.ndim < 2:
            raise ShapeError(f"{fname}: {name} must have shape (..., n, d), got {_shape(x)}")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(
            f"{fname}: head dims differ: q has d = {int(q.shape[-1])} but k has d = {int(k.shape[-1])}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ShapeError(f"{fname}: k has {int(k.shape[-2])} keys but v has {int(v.shape[-2])} values")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ShapeError(
            f"{fname}: leading (batch/head) dims differ: q {_shape(q)[:-2]}, k {_shape(k)[:-2]}, v {_shape(v)[:-2]}"
        )
    n_q, n_k, d, d_v = int(q.shape[-2]), int(k.shape[-2]), int(q.shape[-1]), int(v.shape[-1])
    if n_k == 0:
        raise EmptyInputError(f"{fname}: there are no keys (k has shape {_shape(k)})")
    if d == 0:
        raise EmptyInputError(f"{fname}: head dimension is 0")
    want_norms = norms
    norms = {}
    khash = kbf16 = ki8 = None
    for name, x in (("q", q), ("k", k), ("v", v)):
        if _fused_norms(x, 2**12 if want_norms else 2**16) and (name != "q" or want_norms):
            # large single-head NumPy keys / values: validation and row norms in one pass (for the keys also
            # their fingerprint, which a prebuilt key tree checks)
            from ._kernels_numba import rownorms_finite
            norms[name] = np.empty(x.shape[0])
            if name == "k" and hash_keys:
                h = np.zeros(1, dtype=np.uint64)
                ok = rownorms_finite(x, norms[name], x.view(np.uint64), hash_consts(d), h)
                khash = _finish_hash(h[0], x.shape)
            elif name == "k" and pack_bf16:
                from ._bf16 import _packed_keys
                ok, kbf16 = _packed_keys(x, norms[name])
            elif name == "k" and pack_i8 and x.shape[-1] <= _I8_MAX_D:
                from ._int8 import _packed_keys
                ok, ki8 = _packed_keys(x, norms[name])
            else:
                ok = rownorms_finite(x, norms[name])
        else:
            ok = not (x.ndim and math.prod(_shape(x)) and not bool(xp.all(xp.isfinite(x))))
        if not ok:
            check_no_nan(x, name)
            raise NaNError(f"{fname}: {name} contains inf; the attention scores would be NaN")
    batch = _shape(q)[:-2]
    full = batch + (n_q, n_k)
    if mask is not None:
        if not is_array(mask):  # a nested list of bools (or a bool): a bool array of q's library (ints are not masks)
            try:
                mask = np.asarray(mask)
            except ValueError as err:
                raise ShapeError(f"{fname}: mask is a ragged nested list") from err
            mask = from_numpy(mask, q)
        if not xp.isdtype(mask.dtype, "bool"):
            raise ArgumentTypeError(f"{fname}: mask must be boolean (True = key takes part), got dtype {mask.dtype}")
        if not _broadcasts_to(_shape(mask), full):
            raise ShapeError(f"{fname}: mask of shape {_shape(mask)} does not broadcast to the scores {full}")
    bstats = (None, None)
    if bias is not None:
        bias = _to_float(bias, xp, "bias", like=q)
        if not _broadcasts_to(_shape(bias), full):
            check_no_nan(bias, "bias")
            raise ShapeError(f"{fname}: bias of shape {_shape(bias)} does not broadcast to the scores {full}")
        # large NumPy float64 biases: validation and the row statistics in one compiled pass
        b32 = None
        if pack_bias and _fused_bias(bias) and _shape(bias) == (n_q, n_k) and bias.flags.c_contiguous:
            bstats, b32 = _bias_stats_blocked(bias)
        else:
            bstats = _bias_stats(bias, len(batch) + 2) if _fused_bias(bias) else None
        if bstats is None:
            check_no_nan(bias, "bias")
            if bool(xp.any(bias == float("inf"))):
                raise ConventionError(
                    f"{fname}: bias contains +inf; additive attention biases live in max-plus, where -inf masks a key"
                )
            bstats = (None, None)
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    else:
        if isinstance(scale, (bool, np.bool_, str, bytes)) or not (
                isinstance(scale, numbers.Real) or getattr(scale, "ndim", None) == 0):
            raise ArgumentTypeError(f"{fname}: scale must be a real number or None, got {summary(scale)}")
        scale = float(scale)
        if math.isnan(scale):
            raise NaNError(f"{fname}: scale is NaN")
        if not math.isfinite(scale):
            raise ToleranceError(f"{fname}: scale must be finite, got {scale}")
    return Prepared(xp, q, k, v, mask, bias, scale, bool(causal), batch, n_q, n_k, d, d_v,
                    norms.get("k"), norms.get("v"), khash, kbf16, *bstats, b32 if bias is not None else None,
                    ki8=ki8, qnorm=norms.get("q"))


_I8_MAX_D = 512  # (_int8.MAX_D, without importing it: validation packs no wider keys)
_BIAS_CHUNK = 16384  # keys per row piece of the blocked validation pass (16 x 16384 float32 staged: 1 MiB)


def _bias_stats_blocked(b):
    """``((count, absmax), bias32)`` of a C-contiguous 2-D float64 bias, ``bias32`` its float32 rounding
    blocked by 16 queries (``((n_q + 15) // 16, n_k, 16)``, 64-byte aligned: the layout the fused screen's
    bias variant reads, :func:`tropix.attention._screen_numba.bias_stats_blocked`), in one pass; ``(None,
    None)`` if it holds a NaN or ``+inf``.  Without the compiled transposer: :func:`_bias_stats32`."""
    from . import _bf16

    if "bias_tile" not in _bf16._state:
        _bf16._compile_screen(True)
    if "bias_tile" not in _bf16._state:  # (no compiled kernel on this CPU)
        return _bias_stats32(b)
    from ._screen_numba import bias_stats_blocked

    n, m = b.shape
    out = _bf16._aligned_empty(((n + 15) // 16, m, 16), np.float32)
    cnt, absmax = np.empty(n, dtype=np.int64), np.empty(n)
    stg = _bias_staging()
    if bias_stats_blocked(b, out, cnt, absmax, _bf16._state["bias_tile_nt"], np.zeros(6, np.int64), stg):
        return None, None
    return (cnt, absmax), out


def _bias_staging():
    """This thread's staging buffer of :func:`_bias_stats_blocked` (``(16, _BIAS_CHUNK + 16)`` float32: a row
    stride that is no power of two; reused, as it stays in the L2 cache between calls)."""
    stg = getattr(_local, "bias_staging", None)
    if stg is None:
        stg = _local.bias_staging = np.empty((16, _BIAS_CHUNK + 16), np.float32)
    return stg


def _bias_stats32(b):
    """``((count, absmax), bias32)`` of a C-contiguous 2-D float64 bias (:func:`_bias_stats` and the float32
    copy, in one pass: :func:`tropix.attention._screen_numba.bias_stats` with ``out``), or ``(None, None)`` if it holds a
    NaN or ``+inf``.  The copy's rows are 16 entries longer than needed: sixteen rows whose stride is a power
    of two would share their cache sets when the screen transposes them."""
    from ._screen_numba import bias_stats

    n, m = b.shape
    out = np.empty((n, m + 16), dtype=np.float32)
    cnt, absmax = np.empty(n, dtype=np.int64), np.empty(n)
    if bias_stats(b, cnt, absmax, out):
        return None, None
    return (cnt, absmax), out[:, :m]


def _fused_bias(b) -> bool:
    """Whether :func:`prepare` validates the bias ``b`` in one compiled pass that also gives its row statistics
    (a NumPy float64 array of at least 2^16 entries)."""
    return isinstance(b, np.ndarray) and b.dtype == np.float64 and b.ndim >= 1 and b.size >= 2**16


def _bias_stats(b, nd):
    """``(count, absmax)`` per row of ``b`` (as :func:`bias_row_stats`) from one pass that also validates it, or
    None if ``b`` holds a NaN or ``+inf`` (the caller then raises the usual error)."""
    from ._screen_numba import bias_stats

    b = b.reshape((1,) * (nd - b.ndim) + b.shape)
    flat = b.reshape(-1, b.shape[-1]) if b.flags.c_contiguous else np.ascontiguousarray(b).reshape(-1, b.shape[-1])
    cnt = np.empty(flat.shape[0], dtype=np.int64)
    absmax = np.empty(flat.shape[0])
    if bias_stats(flat, cnt, absmax):
        return None
    return cnt.reshape(b.shape[:-1]), absmax.reshape(b.shape[:-1])


@functools.lru_cache(maxsize=64)
def hash_consts(d: int) -> np.ndarray:
    """The odd 64-bit constants of the key fingerprint (:func:`key_hash`), one per dimension."""
    c = (np.arange(d, dtype=np.uint64) * np.uint64(2) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    c.setflags(write=False)
    return c


def _finish_hash(h, shape) -> int:
    return int(h) ^ (int(shape[0]) << 20) ^ int(shape[1])


def key_hash(k) -> int:
    """Fingerprint of a ``(n, d)`` float64 key matrix: ``sum_i (2 i + 1) sum_t bits(k[i, t]) c_t`` modulo 2^64
    (``c`` odd constants), mixed with ``n`` and ``d``.  Integer arithmetic: exact, the same value from the
    compiled pass of :func:`prepare` (validation) and from this function, whatever the order of the sums; keys
    that differ in any bit give another value except for a chance of about 2^-64.

    Examples
    --------
    >>> k = np.arange(6.0).reshape(3, 2)
    >>> key_hash(k) == key_hash(k.copy()), key_hash(k) == key_hash(k[::-1])
    (True, False)
    """
    k = np.ascontiguousarray(k, dtype=np.float64)
    c = hash_consts(k.shape[1])
    try:
        from ._kernels_numba import key_hash as kernel
    except ImportError:  # pragma: no cover - numba is a dependency
        with np.errstate(over="ignore"):
            rows = (k.view(np.uint64) * c).sum(axis=1, dtype=np.uint64)
            h = (rows * (np.arange(k.shape[0], dtype=np.uint64) * np.uint64(2) + np.uint64(1))).sum(dtype=np.uint64)
    else:
        h = kernel(k.view(np.uint64), c)
    return _finish_hash(h, k.shape)


def _fused_norms(x, min_size: int = 2**16) -> bool:
    """Whether :func:`prepare` validates ``x`` together with its row norms (C-contiguous 2-D NumPy float64 of at
    least ``min_size`` entries: below 2^16 the compiled pass costs about what the finiteness check does, and
    pays only where the norms are needed)."""
    return (isinstance(x, np.ndarray) and x.dtype == np.float64 and x.ndim == 2 and x.flags.c_contiguous
            and x.size >= min_size)


def check_tree(tree, fname: str):
    """``tree`` is None or a :class:`~tropix.attention.keytree.KeyTree` (a string gave a raw AttributeError)."""
    if tree is None:
        return
    from .keytree import KeyTree

    if not isinstance(tree, KeyTree):
        raise ArgumentTypeError(f"{fname}: tree must be a KeyTree from build_key_tree, got {type(tree).__name__}")


def check_count(x, name: str, fname: str, minimum: int = 1) -> int:
    """An integer option (a key cap, a leaf size, a sample) of at least ``minimum``: ArgumentTypeError for a
    non-integer (2.5 was truncated, "a" raised int()'s ValueError), ToleranceError below the minimum (0 and -3
    were clamped, -1 raised NumPy's negative-dimension error)."""
    if type(x) is int and x >= minimum:  # (the usual call: no message to build)
        return x
    from ..tropical._args import check_int

    return check_int(x, f"{fname}: {name}", minimum=minimum)


def check_eps(eps, fname):
    """Validate a tolerance: a finite number ``>= 0``."""
    try:
        e = float(eps)
    except (TypeError, ValueError) as err:
        raise ToleranceError(f"{fname}: eps must be a number, got {summary(eps)}") from err
    if math.isnan(e):
        raise NaNError(f"{fname}: eps is NaN")
    if e < 0 or not math.isfinite(e):
        raise ToleranceError(f"{fname}: eps must be finite and >= 0 (0 = exact), got {summary(eps)}")
    return e


def _pad(x, xp, ndim):
    if x.ndim < ndim:
        x = xp.reshape(x, (1,) * (ndim - x.ndim) + tuple(x.shape))
    return x


def _slice_last2(x, qs: slice, ks: slice):
    a = qs if x.shape[-2] != 1 else slice(None)
    b = ks if x.shape[-1] != 1 else slice(None)
    return x[..., a, b]


def block_extra(P: Prepared, qs: slice, ks: slice, dtype):
    """The additive term (bias, and ``-inf`` for masked pairs) of the block ``[qs, ks]``, or None.

    The result broadcasts to ``batch + (len(qs), len(ks))``.
    """
    xp = P.xp
    E = _block_bias(P, qs, ks, xp)
    if E is not None and E.dtype != dtype:
        E = xp.astype(E, dtype)
    keep = _block_keep(P, qs, ks, xp)
    if keep is not None:
        ninf = xp.asarray(-math.inf, dtype=dtype)
        zero = xp.asarray(0.0, dtype=dtype)
        E = xp.where(keep, zero if E is None else E, ninf)
    return E


def _block_bias(P: Prepared, qs: slice, ks: slice, xp):
    """The bias of the block ``[qs, ks]`` (a view, broadcasting), or None."""
    if P.bias is None:
        return None
    return _slice_last2(_pad(P.bias, xp, len(P.batch_shape) + 2), qs, ks)


def _block_keep(P: Prepared, qs: slice, ks: slice, xp):
    """The pairs of the block ``[qs, ks]`` that neither the mask nor the causal term hides (boolean,
    broadcasting), or None when every pair is visible."""
    keep = None
    if P.mask is not None:
        keep = _slice_last2(_pad(P.mask, xp, len(P.batch_shape) + 2), qs, ks)
    if P.causal and ks.stop - 1 > qs.start:  # (a block wholly on or below the diagonal is all visible)
        i = xp.arange(qs.start, qs.stop)
        j = xp.arange(ks.start, ks.stop)
        c = xp.reshape(j, (1, -1)) <= xp.reshape(i, (-1, 1))
        keep = c if keep is None else xp.logical_and(keep, c)
    return keep


def add_block_extra_numpy(P: Prepared, qs: slice, ks: slice, s, set_hidden: bool = True):
    """:func:`block_extra` added in place to the NumPy scores ``s`` of the block ``[qs, ks]`` (shape
    ``batch + (len(qs), len(ks))``): the bias added, and (``set_hidden``) the pairs a mask or the causal term
    hides set to ``-inf``.  Returns those hidden pairs (boolean, broadcasting to ``s``), or None when there are
    none."""
    b = _block_bias(P, qs, ks, np)
    if b is not None:
        s += b
    keep = _block_keep(P, qs, ks, np)
    if keep is None:
        return None
    hidden = ~keep
    if set_hidden:
        np.copyto(s, -np.inf, where=hidden)
    return hidden


def bias_row_stats(P: Prepared):
    """``(count, absmax)`` per row of the bias as given (shape ``bias.shape[:-1]`` padded to ``batch + 2``
    dimensions): its entries above ``-inf`` and the largest ``|b|`` among them (0 if none), one pass over the
    bias (:func:`tropix.attention._kernels_numba.bias_rows`).  ``P.bias`` must not be None."""
    from ._kernels_numba import bias_rows

    if P.bias_cnt is not None:
        return P.bias_cnt, P.bias_absmax
    nd = len(P.batch_shape) + 2
    b = np.ascontiguousarray(np.asarray(to_numpy(P.bias), dtype=np.float64))
    b = b.reshape((1,) * (nd - b.ndim) + b.shape)
    flat = b.reshape(-1, b.shape[-1])
    cnt = np.empty(flat.shape[0], dtype=np.int64)
    absmax = np.empty(flat.shape[0])
    bias_rows(flat, cnt, absmax)
    return cnt.reshape(b.shape[:-1]), absmax.reshape(b.shape[:-1])


def count_last(m: np.ndarray) -> np.ndarray:
    """``np.count_nonzero(m, axis=-1)`` (int64) of a boolean NumPy array, compiled for large ones
    (:func:`tropix.attention._kernels_numba.count_true`)."""
    kern = compiled("tropix.attention._kernels_numba") if m.size >= 2**16 and m.dtype == np.bool_ else None
    if kern is None:
        return np.count_nonzero(m, axis=-1).astype(np.int64)
    m2 = np.ascontiguousarray(m).reshape(-1, m.shape[-1])
    out = np.empty(m2.shape[0], dtype=np.int64)
    kern.count_true(m2, out)
    return out.reshape(m.shape[:-1])


def visible_counts(P: Prepared, bias_stats=None) -> np.ndarray:
    """Number of keys each query sees (``batch + (n_q,)`` int64): not masked, bias not ``-inf``, and with
    ``causal`` at most ``i + 1``.  ``bias_stats``: :func:`bias_row_stats` of ``P`` if already computed.

    Computed without the additive term itself: a causal-only input analytically, a mask alone by counting it
    along the keys, otherwise boolean blocks (one byte per pair instead of a float64 ``-inf`` term).

    Examples
    --------
    >>> P = prepare(np.zeros((3, 2)), np.zeros((5, 2)), np.zeros((5, 1)), mask=np.array([1, 1, 0, 1, 1], bool),
    ...             causal=True)
    >>> visible_counts(P).tolist()
    [1, 2, 2]
    """
    full = P.batch_shape + (P.n_q,)
    causal = np.minimum(np.arange(1, P.n_q + 1), P.n_k) if P.causal else None
    if P.mask is None and P.bias is None:
        return np.broadcast_to(causal if causal is not None else np.int64(P.n_k), full).astype(np.int64)
    nd = len(P.batch_shape) + 2
    mask = bias = None
    if P.mask is not None:
        mask = np.asarray(to_numpy(P.mask), dtype=bool)
        mask = mask.reshape((1,) * (nd - mask.ndim) + mask.shape)
    if P.bias is not None:
        bias = np.asarray(to_numpy(P.bias))
        bias = bias.reshape((1,) * (nd - bias.ndim) + bias.shape)
    if bias is None and causal is None:
        cnt = count_last(mask) * (P.n_k if mask.shape[-1] == 1 else 1)
        return np.broadcast_to(cnt, full).astype(np.int64)
    if mask is None and causal is None:
        cnt = (bias_row_stats(P) if bias_stats is None else bias_stats)[0] * (P.n_k if bias.shape[-1] == 1 else 1)
        return np.broadcast_to(cnt, full).astype(np.int64)
    out = np.zeros(full, dtype=np.int64)
    step = max(1, 2**22 // max(P.n_k, 1))
    for s0 in range(0, P.n_q, step):
        qs = slice(s0, min(P.n_q, s0 + step))
        keep = np.ones((1,) * nd, dtype=bool)
        if mask is not None:
            keep = keep & _slice_last2(mask, qs, slice(None))
        if bias is not None:
            keep = keep & (_slice_last2(bias, qs, slice(None)) > -np.inf)
        cnt = count_last(keep) * (P.n_k if keep.shape[-1] == 1 else 1)
        if causal is not None:  # the visible keys beyond the diagonal are taken away again
            i = np.arange(qs.start, qs.stop)
            tri = np.arange(P.n_k)[None, :] > i[:, None]
            over = np.count_nonzero(np.broadcast_to(keep, keep.shape[:-2] + tri.shape) & tri, axis=-1)
            cnt = cnt - over
        out[..., qs] = np.broadcast_to(cnt, full[:-1] + (qs.stop - qs.start,))
    return out


def extra_numpy(P: Prepared, b_index: tuple):
    """NumPy view of the extra term of one head: a function ``f(rows, cols) -> array or None``.

    ``rows`` and ``cols`` are integer index arrays; the result has shape ``(len(rows), len(cols))``.
    Also returns ``key_only``: the extra term as a ``(n_k,)`` vector when it depends only on the key
    (or None).
    """
    nd = len(P.batch_shape) + 2
    bias = mask = None
    if P.bias is not None:
        b = np.asarray(to_numpy(P.bias), dtype=np.float64)
        b = b.reshape((1,) * (nd - b.ndim) + b.shape)
        bias = b[tuple(0 if b.shape[t] == 1 else b_index[t] for t in range(len(b_index)))]
    if P.mask is not None:
        m = np.asarray(to_numpy(P.mask), dtype=bool)
        m = m.reshape((1,) * (nd - m.ndim) + m.shape)
        mask = m[tuple(0 if m.shape[t] == 1 else b_index[t] for t in range(len(b_index)))]
    causal = P.causal
    if bias is None and mask is None and not causal:
        return None, None

    def f(rows, cols):
        rows, cols = np.asarray(rows), np.asarray(cols)
        shape = (len(rows), len(cols))
        E = None
        if bias is not None:
            E = _gather2(bias, rows, cols, shape, np.float64)
        if mask is not None:
            mm = _gather2(mask, rows, cols, shape, bool)
            if E is None:
                E = np.zeros(shape)
            E[~mm] = -np.inf
        if E is None:
            E = np.zeros(shape)
        if causal:
            E[cols[None, :] > rows[:, None]] = -np.inf
        return E

    key_only = None
    if not causal and (bias is None or bias.shape[0] == 1) and (mask is None or mask.shape[0] == 1):
        key_only = np.zeros(P.n_k)
        if bias is not None:
            key_only = key_only + np.broadcast_to(bias[0], (P.n_k,))
        if mask is not None:
            key_only = np.where(np.broadcast_to(mask[0], (P.n_k,)), key_only, -np.inf)
    f.mask2d, f.bias2d = mask, bias  # (this head's terms, 2-D, broadcasting: for compiled consumers)
    return f, key_only


def _as_slice(idx):
    """``idx`` (an integer array) as the slice it enumerates when it is a run of consecutive indices, else None."""
    n = len(idx)
    if n == 0:
        return slice(0, 0)
    a = int(idx[0])
    if int(idx[-1]) - a != n - 1 or (n > 2 and not bool(np.all(np.diff(idx) == 1))):
        return None
    return slice(a, a + n)


def _gather2(x, rows, cols, shape, dtype):
    """``x[rows][:, cols]`` of a 2-D ``x`` whose dimensions of length 1 broadcast, as a fresh ``shape`` array of
    ``dtype``: runs of consecutive indices are sliced, a full gather is one pass (``np.take`` along the keys
    of sliced rows, else one fancy index of both)."""
    rsel = slice(0, 1) if x.shape[0] == 1 else (_as_slice(rows) or rows)
    csel = slice(0, 1) if x.shape[1] == 1 else (_as_slice(cols) or cols)
    if isinstance(rsel, slice) and isinstance(csel, slice):
        sub = x[rsel, csel]
    elif isinstance(rsel, slice):
        sub = np.take(x[rsel], csel, axis=1)
    elif isinstance(csel, slice):
        sub = x[rsel, csel]
    else:
        sub = x[rsel[:, None], csel[None, :]]
    view = isinstance(rsel, slice) and isinstance(csel, slice)  # (the other ways gather a copy)
    if not view and sub.shape == shape and sub.dtype == dtype:
        return sub
    return np.array(np.broadcast_to(sub, shape), dtype=dtype)
