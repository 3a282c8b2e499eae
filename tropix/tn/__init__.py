"""Tensor networks: tensor trains (MPS), TT-matrices (MPO), Tucker, PEPS and semiring contraction."""
