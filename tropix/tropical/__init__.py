"""Tropical algebra and geometry: semirings, linear algebra, polynomials, hypersurfaces, fans, polytopes.

Every function takes ``semiring=`` (default :data:`~tropix.MaxPlus`) and never hard-codes max or min.
"""

from .semiring import (
    LogSemiring,
    MaxPlus,
    MinPlus,
    Real,
    RealSemiring,
    Semiring,
    TropicalSemiring,
    check_same_semiring,
    get_semiring,
)
from .matmul import matmul

__all__ = [
    "Semiring",
    "TropicalSemiring",
    "LogSemiring",
    "RealSemiring",
    "MaxPlus",
    "MinPlus",
    "Real",
    "get_semiring",
    "check_same_semiring",
    "matmul",
]
