"""Per layer and head: Q, K, V, masks, attention probabilities and the projection matrices of a model.

:func:`extract` runs the model over texts and returns an immutable :class:`Extraction`.  Every
extraction is verified: softmax(QKᵀ/√d + mask), recomputed in float64 from the extracted Q and K, must
equal the probabilities the model itself used to within ``tol`` (default 1e-5), or
:class:`~tropix.errors.BoundViolationError` is raised naming the layer and head.  That check is what
makes the extracted Q/K trustworthy for the geometric analysis downstream.

Examples
--------
>>> from tropix.models import load_model
>>> ex = extract(load_model(), ["The argmax cell of a query is a normal cone."])
>>> len(ex.sequences), ex.sequences[0].q.shape          # (layers, heads, tokens, head_dim)
(1, (6, 12, 15, 32))
>>> ex.max_check_error < 1e-5
True
>>> ex.weights["W_Q"].shape, ex.weights["W_O"].shape   # (layers, heads, ...)
((6, 12, 384, 32), (6, 12, 32, 384))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .._array import asarray, check_no_nan, is_array, to_numpy
from .._repr import compact_repr
from ..errors import ArgumentTypeError, BoundViolationError, EmptyInputError, ShapeError, ToleranceError
from ..tropical._args import check_int, check_real, check_array_dtype
from .architectures import scale_of

__all__ = ["SequenceAttention", "Extraction", "extract", "recompute_probs", "check_probs"]


@dataclass(frozen=True)
class SequenceAttention:
    """One text: its tokens; ``q, k, v`` ``(layers, heads, n, head_dim)``; ``probs`` ``(layers, heads, n, n)``;
    ``allowed`` the boolean ``(n, n)`` attention mask (all True for BERT, lower-triangular for GPT-2)."""

    tokens: tuple
    q: np.ndarray = field(repr=False)
    k: np.ndarray = field(repr=False)
    v: np.ndarray = field(repr=False)
    probs: np.ndarray = field(repr=False)
    allowed: np.ndarray = field(repr=False)
    __repr__ = compact_repr

    @property
    def n(self) -> int:
        return int(self.q.shape[2])

    def scores(self, layer: int, head: int, scale: float) -> np.ndarray:
        """Scaled scores ``q·k·scale`` of one head, with ``-inf`` where the mask forbids attention (float64)."""
        s = (self.q[layer, head].astype(np.float64) @ self.k[layer, head].astype(np.float64).T) * scale
        return np.where(self.allowed, s, -np.inf)


@dataclass(frozen=True)
class Extraction:
    """Everything :func:`extract` found: per-text records, stacked weights, the score scale and the check."""

    model_source: str
    arch: str
    n_layers: int
    n_heads: int
    head_dim: int
    scale: float
    sequences: tuple
    weights: dict = field(repr=False)
    max_check_error: float = 0.0
    __repr__ = compact_repr


def _floats(x, name, nan_ok=False):
    """``x`` (an array of any library or a nested list) as NumPy float64 of at least two dimensions; a specific tropix
    error for anything else (these were raw NumPy errors, complex and string entries silently converted)."""
    a = to_numpy(check_array_dtype(asarray(x, name=name), name))
    a = np.asarray(a, dtype=np.float64)
    if a.ndim < 2:
        raise ShapeError(f"{name} must have shape (..., n, d), got {a.shape}")
    if not nan_ok:
        check_no_nan(a, name)
    return a


def recompute_probs(q, k, allowed, scale: float) -> np.ndarray:
    """softmax(q kᵀ·scale + mask) in float64 for arrays ``(..., n, d)``; rows with no allowed key are 0.

    Examples
    --------
    >>> q = np.array([[1.0, 0.0]]); k = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> recompute_probs(q, k, np.array([[True, True]]), 1.0).round(4)
    array([[0.7311, 0.2689]])
    """
    q, k = _floats(q, "q"), _floats(k, "k")
    if q.shape[-1] != k.shape[-1]:
        raise ShapeError(f"recompute_probs: head dims differ: q has shape {q.shape}, k {k.shape}")
    scale = float(check_real(scale, "scale"))
    try:
        full = np.broadcast_shapes(q.shape[:-1], k.shape[:-2] + (1,)) + (k.shape[-2],)
    except ValueError:
        raise ShapeError(f"recompute_probs: leading dims of q {q.shape} and k {k.shape} do not broadcast") from None
    if is_array(allowed):
        allowed = to_numpy(check_array_dtype(allowed, "allowed"))
    else:  # (a nested list of bools: NumPy's bool array, not tropix's exact one of ints)
        try:
            allowed = np.asarray(allowed)
        except ValueError:
            raise ShapeError("allowed is a ragged nested list") from None
    if allowed.dtype != np.bool_:
        raise ArgumentTypeError(f"allowed must be a boolean mask (True = may attend), got dtype {allowed.dtype}")
    try:
        np.broadcast_shapes(allowed.shape, full)
    except ValueError:
        raise ShapeError(f"allowed of shape {allowed.shape} does not broadcast to the scores {full}") from None
    s = np.where(allowed, (q @ np.swapaxes(k, -1, -2)) * scale, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    return np.divide(e, z, out=np.zeros_like(e), where=z > 0)


def check_probs(q, k, probs, allowed, scale: float, tol: float = 1e-5, where: str = "") -> float:
    """Largest ``|recomputed - given|`` probability over all heads; raises if above ``tol``.

    ``q, k``: ``(layers, heads, n, d)``; ``probs``: ``(layers, heads, n, n)``; ``allowed``: ``(n, n)``.

    Raises
    ------
    BoundViolationError
        With the first layer/head that disagrees: the extracted Q/K do not reproduce the model.

    Examples
    --------
    >>> q = np.zeros((1, 1, 2, 3)); k = np.zeros((1, 1, 2, 3)); ok = np.ones((2, 2), bool)
    >>> check_probs(q, k, np.full((1, 1, 2, 2), 0.5), ok, 1.0)
    0.0
    >>> check_probs(q, k, np.full((1, 1, 2, 2), 0.4), ok, 1.0)
    Traceback (most recent call last):
    ...
    tropix.errors.BoundViolationError: extraction check failed: layer 0 head 0: softmax(QK^T/sqrt(d) + mask) from the extracted Q, K differs from the model's attention probabilities by 0.1 > 1e-05
    """
    if not (check_real(tol, "tol") > 0):
        raise ToleranceError(f"tol must be positive, got {tol}")
    re = recompute_probs(q, k, allowed, scale)
    probs = _floats(probs, "probs", nan_ok=True)  # (a NaN probability is a failed check, reported as such below)
    if probs.shape != re.shape:
        raise ShapeError(f"check_probs: probs has shape {probs.shape}, the recomputed probabilities {re.shape}")
    err = np.abs(re - probs)
    worst = err.reshape(err.shape[0], err.shape[1], -1).max(axis=-1) if err.size else np.zeros(err.shape[:2])
    if not np.all(np.isfinite(worst)) or worst.max(initial=0.0) > tol:
        bad = np.argwhere(~(worst <= tol))[0]
        raise BoundViolationError(
            f"extraction check failed{where}: layer {bad[0]} head {bad[1]}: softmax(QK^T/sqrt(d) + mask) from the "
            f"extracted Q, K differs from the model's attention probabilities by {worst[bad[0], bad[1]]:.3g} > {tol:.3g}"
        )
    return float(worst.max(initial=0.0))


def _stack_weights(model) -> dict:
    cfg = model.config
    L, H, dh, d = cfg.n_layers, cfg.n_heads, cfg.head_dim, cfg.d_model
    out = {
        "W_Q": np.empty((L, H, d, dh), np.float32), "W_K": np.empty((L, H, d, dh), np.float32),
        "W_V": np.empty((L, H, d, dh), np.float32), "W_O": np.empty((L, H, dh, d), np.float32),
        "b_Q": np.empty((L, H, dh), np.float32), "b_K": np.empty((L, H, dh), np.float32),
        "b_V": np.empty((L, H, dh), np.float32),
    }
    for i in range(L):
        for h in range(H):
            for key, val in model.head_weights(i, h).items():
                out[key][i, h] = val
    return out


def extract(model, texts: Sequence[str], max_length: int | None = None, batch_size: int = 8,
            check: bool = True, tol: float = 1e-5, progress=None) -> Extraction:
    """Run ``model`` over ``texts`` and keep every layer's and head's Q, K, V, mask and probabilities.

    Parameters
    ----------
    model : TransformerModel
    texts
        Non-empty sequence of strings (each truncated to ``max_length`` tokens).
    check
        Verify that softmax(QKᵀ/√d + mask) from the extracted Q, K equals the model's probabilities.
    tol
        Largest allowed absolute difference of any probability (default 1e-5).
    progress
        Optional callable ``progress(n_done)`` after each batch (the CLI passes a progress bar).

    Returns
    -------
    Extraction
        Padding removed: each :class:`SequenceAttention` holds exactly its own tokens.

    Examples
    --------
    >>> from tropix.models import load_model
    >>> ex = extract(load_model(), ["one", "two words"])
    >>> [s.n for s in ex.sequences]      # [CLS] ... [SEP]
    [3, 4]
    """
    from .model import TransformerModel

    if not isinstance(model, TransformerModel):  # (None was a raw AttributeError on .config, after the checks)
        raise ArgumentTypeError(f"extract: model must be a TransformerModel (load_model()), got {type(model).__name__}")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, Iterable):  # (None was a raw "object is not iterable")
        raise ArgumentTypeError(f"extract: texts must be a sequence of strings, got {type(texts).__name__}")
    texts = [t for t in texts]
    if any(not isinstance(t, str) for t in texts):  # (None was a raw AttributeError from .strip())
        bad = next(t for t in texts if not isinstance(t, str))
        raise ArgumentTypeError(f"extract: texts must be strings, got a {type(bad).__name__}")
    if not texts or all(not t.strip() for t in texts):
        raise EmptyInputError("no text to extract attention from")
    if check_int(batch_size, "batch_size") < 1:  # (2.5, "8", None: raw TypeErrors)
        raise ShapeError(f"batch_size must be at least 1, got {batch_size}")
    if not (check_real(tol, "tol") > 0):
        raise ToleranceError(f"tol must be positive, got {tol}")
    cfg = model.config
    scale = scale_of(cfg)
    seqs, worst = [], 0.0
    for start in range(0, len(texts), batch_size):
        batch = model.encode(texts[start:start + batch_size], max_length)
        out = model.forward(batch, record=True)
        for b, n in enumerate(batch.lengths):
            q = np.stack([r.q[b, :, :n].cpu().numpy() for r in out.layers])
            k = np.stack([r.k[b, :, :n].cpu().numpy() for r in out.layers])
            v = np.stack([r.v[b, :, :n].cpu().numpy() for r in out.layers])
            p = np.stack([r.probs[b, :, :n, :n].cpu().numpy() for r in out.layers])
            allowed = out.layers[0].allowed[b, :n, :n].cpu().numpy()
            if check:
                # the model's probabilities over the padded keys must be zero: they are dropped when trimming
                full = np.stack([r.probs[b, :, :n].cpu().numpy() for r in out.layers])
                spill = float(np.abs(full[..., n:]).max(initial=0.0))
                if spill > tol:
                    raise BoundViolationError(f"extraction check failed: {spill:.3g} probability mass on padding keys")
                worst = max(worst, check_probs(q, k, p, allowed, scale, tol, where=f" (text {start + b})"))
            toks = batch.tokens[b] if batch.tokens else ()
            seqs.append(SequenceAttention(tuple(toks), q, k, v, p, allowed))
        if progress is not None:
            progress(min(start + batch_size, len(texts)))
    return Extraction(model.source, cfg.arch, cfg.n_layers, cfg.n_heads, cfg.head_dim, scale, tuple(seqs),
                      _stack_weights(model), worst)
