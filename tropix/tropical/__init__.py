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
from .convexity import (
    TropicalCell,
    TropicalPolytope,
    convex_hull,
    covector,
    hilbert_distance,
    tropical_projection,
    tropical_segment,
)

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
    "convex_hull",
    "TropicalPolytope",
    "TropicalCell",
    "covector",
    "tropical_projection",
    "tropical_segment",
    "hilbert_distance",
]
