"""Attention: dense reference, tropical limit, region-sparse, screened, hierarchical and tensor-compressed attention."""

from .result import AttentionResult
from .dense import dense
from .tropical import tropical
from .keytree import KeyTree, build_key_tree
from .region_sparse import region_sparse
from .screen import screened
from .hierarchical import hierarchical
from .auto import auto

__all__ = [
    "AttentionResult",
    "dense",
    "tropical",
    "KeyTree",
    "build_key_tree",
    "region_sparse",
    "screened",
    "hierarchical",
    "auto",
]

from .tt_compressed import TTProjections, compress_projections, tt_compressed
from .analysis import (
    attention_entanglement,
    key_geometry,
    plot_slice,
    score_slice,
    score_tropicality,
    sparsity_temperature,
    tropicality,
)

__all__ += [
    "TTProjections",
    "compress_projections",
    "tt_compressed",
    "tropicality",
    "score_tropicality",
    "sparsity_temperature",
    "key_geometry",
    "score_slice",
    "plot_slice",
    "attention_entanglement",
]
