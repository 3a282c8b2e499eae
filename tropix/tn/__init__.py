"""Tensor networks: tensor trains (MPS), TT-matrices (MPO), Tucker, PEPS and semiring contraction."""

from .tt import TensorTrain, entanglement_entropy, schmidt_spectrum, tt_round, tt_svd
from .ttmatrix import TTMatrix, factorize
from .contract import contract, contraction_path
from .peps import PEPS, BoundaryContraction
from .tucker import TuckerDecomposition, mode_product, tucker, tucker_residual_bound

__all__ = [
    "TensorTrain",
    "tt_svd",
    "tt_round",
    "schmidt_spectrum",
    "entanglement_entropy",
    "TTMatrix",
    "factorize",
    "tucker",
    "TuckerDecomposition",
    "tucker_residual_bound",
    "mode_product",
    "contract",
    "contraction_path",
    "PEPS",
    "BoundaryContraction",
]
