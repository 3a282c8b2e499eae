"""The two transformer families tropix reads, as plain functions over a dictionary of tensors.

Each architecture is a :class:`Architecture` record: how to read its ``config.json``, which tensor
names hold the attention projections of a layer (returned in one *canonical* layout, below), and the
forward pass of one block.  The forward passes are written out in torch from the published model
definitions (BERT: post-LayerNorm, erf-GELU, padding mask; GPT-2: pre-LayerNorm, tanh-GELU, causal
mask), so no pickled code is ever loaded and every intermediate (Q, K, V, probabilities) is visible.

Canonical attention layout (row vectors, ``y = x @ W + b``), for ``H`` heads of width ``dh``:

* ``W_Q, W_K, W_V``: ``(d_model, H*dh)``; head ``h`` owns columns ``h*dh:(h+1)*dh``;
* ``b_Q, b_K, b_V``: ``(H*dh,)``;
* ``W_O``: ``(H*dh, d_model)``; head ``h`` owns rows ``h*dh:(h+1)*dh``; ``b_O``: ``(d_model,)``.

Examples
--------
>>> sorted(ARCHITECTURES)
['bert', 'gpt2']
>>> ARCHITECTURES["bert"].prefixes
('bert.', '')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .errors import UnsupportedModelError

__all__ = ["ModelConfig", "Architecture", "ARCHITECTURES", "ATTN_KEYS"]

ATTN_KEYS = ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O", "b_O")


@dataclass(frozen=True)
class ModelConfig:
    """The hyper-parameters the forward pass needs, read from a Hugging Face ``config.json``.

    Examples
    --------
    >>> ModelConfig("bert", 2, 4, 16, 64, 32, 100).head_dim
    4
    """

    arch: str
    n_layers: int
    n_heads: int
    d_model: int
    d_ff: int
    max_positions: int
    vocab_size: int
    layer_norm_eps: float = 1e-12
    type_vocab_size: int = 0
    activation: str = "gelu"

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


@dataclass(frozen=True)
class Architecture:
    """How one family stores and runs its weights (see the module docstring)."""

    name: str
    prefixes: tuple
    read_config: Callable
    get_attention: Callable
    set_attention: Callable
    embed: Callable
    block: Callable
    final: Callable
    causal: bool


def _req(cfg: dict, *names, default=None):
    for n in names:
        if n in cfg:
            return cfg[n]
    if default is not None:
        return default
    raise UnsupportedModelError(f"config.json lacks {' / '.join(names)}")


def _ln(x, w, b, eps):
    return torch.nn.functional.layer_norm(x, (x.shape[-1],), w, b, eps)


def _gelu(x, kind):
    if kind in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
        return torch.nn.functional.gelu(x, approximate="tanh")
    if kind == "relu":
        return torch.relu(x)
    return torch.nn.functional.gelu(x)


# ----------------------------------------------------------------------------------------------- BERT
def _bert_config(cfg: dict) -> ModelConfig:
    d = int(_req(cfg, "hidden_size"))
    h = int(_req(cfg, "num_attention_heads"))
    if d % h:
        raise UnsupportedModelError(f"hidden_size {d} is not a multiple of num_attention_heads {h}")
    pet = cfg.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise UnsupportedModelError(f"position_embedding_type {pet!r} is not supported (only 'absolute')")
    return ModelConfig(
        "bert", int(_req(cfg, "num_hidden_layers")), h, d, int(_req(cfg, "intermediate_size")),
        int(_req(cfg, "max_position_embeddings")), int(_req(cfg, "vocab_size")),
        float(cfg.get("layer_norm_eps", 1e-12)), int(cfg.get("type_vocab_size", 2)),
        str(cfg.get("hidden_act", "gelu")),
    )


def _bert_get(sd: dict, i: int) -> dict:
    p = f"encoder.layer.{i}.attention."
    out = {}
    for key, name in (("Q", "self.query"), ("K", "self.key"), ("V", "self.value"), ("O", "output.dense")):
        out[f"W_{key}"] = sd[p + name + ".weight"].T
        out[f"b_{key}"] = sd[p + name + ".bias"]
    return out


def _bert_set(sd: dict, i: int, attn: dict) -> None:
    p = f"encoder.layer.{i}.attention."
    for key, name in (("Q", "self.query"), ("K", "self.key"), ("V", "self.value"), ("O", "output.dense")):
        sd[p + name + ".weight"] = attn[f"W_{key}"].T.contiguous()
        sd[p + name + ".bias"] = attn[f"b_{key}"]


def _bert_embed(sd, cfg, ids, token_types):
    n = ids.shape[1]
    x = sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.position_embeddings.weight"][:n][None]
    if "embeddings.token_type_embeddings.weight" in sd:
        tt = token_types if token_types is not None else torch.zeros_like(ids)
        x = x + sd["embeddings.token_type_embeddings.weight"][tt]
    return _ln(x, sd["embeddings.LayerNorm.weight"], sd["embeddings.LayerNorm.bias"], cfg.layer_norm_eps)


def _bert_block(sd, cfg, i, x, attend):
    p = f"encoder.layer.{i}."
    ctx_out, rec = attend(x)
    a = _ln(ctx_out + x, sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"],
            cfg.layer_norm_eps)
    f = _gelu(a @ sd[p + "intermediate.dense.weight"].T + sd[p + "intermediate.dense.bias"], cfg.activation)
    f = f @ sd[p + "output.dense.weight"].T + sd[p + "output.dense.bias"]
    return _ln(f + a, sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"], cfg.layer_norm_eps), rec


def _bert_final(sd, cfg, x):
    return x


# ---------------------------------------------------------------------------------------------- GPT-2
def _gpt2_config(cfg: dict) -> ModelConfig:
    d = int(_req(cfg, "n_embd", "hidden_size"))
    h = int(_req(cfg, "n_head", "num_attention_heads"))
    if d % h:
        raise UnsupportedModelError(f"n_embd {d} is not a multiple of n_head {h}")
    inner = cfg.get("n_inner") or 4 * d
    return ModelConfig(
        "gpt2", int(_req(cfg, "n_layer", "num_hidden_layers")), h, d, int(inner),
        int(_req(cfg, "n_positions", "max_position_embeddings")), int(_req(cfg, "vocab_size")),
        float(cfg.get("layer_norm_epsilon", 1e-5)), 0, str(cfg.get("activation_function", "gelu_new")),
    )


def _gpt2_get(sd: dict, i: int) -> dict:
    p = f"h.{i}.attn."
    W, b = sd[p + "c_attn.weight"], sd[p + "c_attn.bias"]
    d = W.shape[0]
    return {
        "W_Q": W[:, :d], "b_Q": b[:d], "W_K": W[:, d:2 * d], "b_K": b[d:2 * d],
        "W_V": W[:, 2 * d:], "b_V": b[2 * d:], "W_O": sd[p + "c_proj.weight"], "b_O": sd[p + "c_proj.bias"],
    }


def _gpt2_set(sd: dict, i: int, attn: dict) -> None:
    p = f"h.{i}.attn."
    sd[p + "c_attn.weight"] = torch.cat([attn["W_Q"], attn["W_K"], attn["W_V"]], dim=1).contiguous()
    sd[p + "c_attn.bias"] = torch.cat([attn["b_Q"], attn["b_K"], attn["b_V"]])
    sd[p + "c_proj.weight"] = attn["W_O"]
    sd[p + "c_proj.bias"] = attn["b_O"]


def _gpt2_embed(sd, cfg, ids, token_types):
    n = ids.shape[1]
    return sd["wte.weight"][ids] + sd["wpe.weight"][:n][None]


def _gpt2_block(sd, cfg, i, x, attend):
    p = f"h.{i}."
    ctx_out, rec = attend(_ln(x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], cfg.layer_norm_eps))
    x = x + ctx_out
    h = _ln(x, sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], cfg.layer_norm_eps)
    h = _gelu(h @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"], cfg.activation)
    return x + h @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"], rec


def _gpt2_final(sd, cfg, x):
    return _ln(x, sd["ln_f.weight"], sd["ln_f.bias"], cfg.layer_norm_eps)


ARCHITECTURES = {
    "bert": Architecture("bert", ("bert.", ""), _bert_config, _bert_get, _bert_set, _bert_embed, _bert_block,
                         _bert_final, causal=False),
    "gpt2": Architecture("gpt2", ("transformer.", ""), _gpt2_config, _gpt2_get, _gpt2_set, _gpt2_embed,
                         _gpt2_block, _gpt2_final, causal=True),
}

# model_type values of config.json that share a forward pass with one of the families above
ALIASES = {"bert": "bert", "gpt2": "gpt2"}


def scale_of(cfg: ModelConfig) -> float:
    """The score scale 1/sqrt(head_dim) both families use."""
    return 1.0 / math.sqrt(cfg.head_dim)
