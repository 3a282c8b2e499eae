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
from .power import matrix_power
from .kleene import kleene_plus, kleene_star
from .eigen import critical_graph, eigenvalue, eigenvector
from .solve import SolveResult, solve
from .polynomial import TropicalPolynomial, UnivariateFactorization
from .subdivision import NewtonPolytope, RegularSubdivision, newton_polytope, regular_subdivision
from .hypersurface import HypersurfaceCell, TropicalHypersurface
from .determinant import is_singular, optimal_permutation, optimal_permutations, tdet
from .rank import (
    RankBounds,
    barvinok_decomposition,
    barvinok_rank,
    kapranov_rank,
    nonsingular_minor,
    rank_bounds,
    tropical_rank,
)
from .convexity import (
    TropicalCell,
    TropicalPolytope,
    convex_hull,
    covector,
    hilbert_distance,
    tropical_projection,
    tropical_segment,
)
from .fan import NormalCone, NormalFan, normal_cone, normal_fan
from .argmax_lp import (
    Adjacency,
    ArgmaxVertices,
    LPNormalFan,
    are_adjacent,
    argmax_cell,
    argmax_vertices,
    argmax_witness,
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
    "matrix_power",
    "kleene_star",
    "kleene_plus",
    "eigenvalue",
    "eigenvector",
    "critical_graph",
    "solve",
    "SolveResult",
    "tdet",
    "optimal_permutation",
    "optimal_permutations",
    "is_singular",
    "tropical_rank",
    "barvinok_rank",
    "barvinok_decomposition",
    "kapranov_rank",
    "rank_bounds",
    "RankBounds",
    "nonsingular_minor",
    "convex_hull",
    "TropicalPolytope",
    "TropicalCell",
    "covector",
    "tropical_projection",
    "tropical_segment",
    "hilbert_distance",
    "TropicalPolynomial",
    "UnivariateFactorization",
    "NewtonPolytope",
    "RegularSubdivision",
    "newton_polytope",
    "regular_subdivision",
    "TropicalHypersurface",
    "HypersurfaceCell",
    "normal_fan",
    "normal_cone",
    "NormalFan",
    "NormalCone",
    "argmax_vertices",
    "argmax_witness",
    "argmax_cell",
    "are_adjacent",
    "ArgmaxVertices",
    "Adjacency",
    "LPNormalFan",
]
