"""Bad input raises a *specific* tropix error (audit of task Y).

Part 1: every former plain ``raise ValueError`` / ``raise TypeError`` reachable from user input now raises a
tropix error that still subclasses the old built-in (``except ValueError`` / ``except TypeError`` keep working).
Part 2: bad-input paths found by probing the public API (wrong types, shapes, NaN/inf, option strings) that
used to raise raw NumPy / Python errors (IndexError, AttributeError, OverflowError, ...) or no error at all.
Part 3: a small mutation sweep over public functions: every bad argument either works or raises a TropixError.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import sympy
import torch

import tropix.attention.mechanisms as M
import tropix.tn as TN
import tropix.tropical as T
from tropix import LogSemiring, MaxPlus, MinPlus, Real
from tropix._array import to_exact_scalar
from tropix.attention import AttentionResult, dense
from tropix.attention.mechanisms.modules import build_mechanism
from tropix.attention.tt_compressed import tt_compressed
from tropix.errors import (
    ArgumentTypeError,
    BackendMismatchError,
    DomainError,
    EmptyInputError,
    FloatOverflowError,
    NaNError,
    OptionError,
    ParseError,
    SemiringMismatchError,
    ShapeError,
    ToleranceError,
    TropixError,
)
from tropix.tropical._args import check_dims, check_index, check_int, check_names, check_option, check_real
from tropix.tropical.curves import regions
from tropix.tropical.parse import from_sympy, parse_polynomial, tropicalize

PTS = [[0, 0], [1, 0], [0, 1], [1, 1]]
RNG = np.random.default_rng(0)
Q, K, V = RNG.standard_normal((3, 4)), RNG.standard_normal((5, 4)), RNG.standard_normal((5, 2))


def raises(cls, builtin, match):
    """pytest.raises for ``cls`` that also checks the old built-in still catches it."""
    assert issubclass(cls, builtin) and issubclass(cls, TropixError)
    return pytest.raises(cls, match=match)


# ----------------------------------------------------------------------------------------------- the new classes
def test_new_classes_subclass_tropix_error_and_the_builtin():
    import tropix

    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, TropixError)
    assert issubclass(DomainError, ValueError) and issubclass(DomainError, TropixError)
    assert {"ArgumentTypeError", "DomainError"} <= set(tropix.errors.__all__)
    assert tropix.ArgumentTypeError is ArgumentTypeError and tropix.DomainError is DomainError
    with pytest.raises(TypeError):  # user code written against the old built-in keeps working
        parse_polynomial(3)
    with pytest.raises(ValueError):
        T.normal_fan(PTS, regime="fast")


# ---------------------------------------------------------------------------- part 1: former plain raises
def test_conversions_tropical():
    with raises(DomainError, ValueError, "no witness query"):
        T.argmax_vertices([[0], [1], [2]], biases=[0, 0, 0]).witness(1)  # the middle key never wins alone
    with raises(OptionError, ValueError, "method must be one of 'filter', 'naive'; got 'fast'"):
        T.argmax_vertices(PTS, method="fast")
    with raises(DomainError, ValueError, "two distinct keys"):
        T.are_adjacent([[0, 0], [0, 0], [1, 1]], 0, 1)
    with raises(ArgumentTypeError, TypeError, "expected a string, got int"):
        parse_polynomial(3)
    with raises(ArgumentTypeError, TypeError, "from_sympy takes a sympy expression"):
        from_sympy("max(x, 1)")
    with raises(ArgumentTypeError, TypeError, "tropicalize takes a sympy expression"):
        tropicalize("x + 1", 2)
    with raises(DomainError, ValueError, "never the unique winner"):
        T.normal_fan([[0], [1], [2]], biases=[0, 0, 0]).witness(1)
    with raises(OptionError, ValueError, "regime must be one of 'exact', 'lp', 'auto'; got 'fast'"):
        T.normal_fan(PTS, regime="fast")
    with raises(ArgumentTypeError, TypeError, r"only apply to regime='lp'"):
        T.normal_fan(PTS, n_random=3)
    with raises(OptionError, ValueError, r"sense must be \+1 \(max-plus\) or -1 \(min-plus\), not 0"):
        T.TropicalSemiring(0)
    with raises(ArgumentTypeError, TypeError, "is not a real number"):
        T.TropicalPolynomial({0: "a"})
    with raises(ArgumentTypeError, TypeError, "terms must be a mapping"):
        T.TropicalPolynomial([1, 2])
    p = parse_polynomial("max(0, x)")
    for k in (-1, 1.5):
        with raises(DomainError, ValueError, "integer powers k >= 0 only"):
            p ** k
    assert str(p**2) == str(p * p)
    f = T.UnivariateFactorization(MaxPlus, 0, 0, ((1, Fraction(1, 2)),))
    with raises(DomainError, ValueError, "integer multiplicities"):
        f.expand()
    with raises(ArgumentTypeError, TypeError, "expected a TropicalHypersurface or TropicalPolynomial"):
        regions("max(x, y)")
    with raises(ArgumentTypeError, TypeError, "is not a real number"):
        to_exact_scalar("1")


def test_conversions_mechanisms():
    with raises(ArgumentTypeError, TypeError, "give mass_k or log_mass_k, not both"):
        M.gravitational_attention(Q, K, V, mass_k=np.ones(5), log_mass_k=np.zeros(5))
    # was a plain TypeError; now the shared require_tropical check (SemiringMismatchError is a TypeError)
    with raises(SemiringMismatchError, TypeError, "tropical attention needs MaxPlus or MinPlus, not Real"):
        M.tropical_attention(Q, K, V, semiring=Real)
    quat = ((1, 0, 0, 0), (0, 1, 0, 0))
    with raises(DomainError, ValueError, "primes of a state must be distinct"):
        M.SparsePrimeState((2, 2), (1, 1j), quat)
    with raises(DomainError, ValueError, "primes must be >= 2"):
        M.SparsePrimeState((1, 3), (1, 1j), quat)
    P = np.array([[2, 2]]); ph = np.zeros((1, 2)); Qu = np.tile([1.0, 0, 0, 0], (1, 2, 1))
    with raises(DomainError, ValueError, "same prime in two slots"):
        M.resonant_scores(P, ph, Qu, P, ph, Qu)
    with raises(ShapeError, ValueError, "d_model = 10 is not divisible by n_heads = 3"):
        build_mechanism("softmax", 10, 3)
    with raises(OptionError, ValueError, "decoder must be 'mlp' or 'laplace'"):
        build_mechanism("multiscale", 8, 2, decoder="fourier")
    m = build_mechanism("resonant", 8, 2)
    with raises(OptionError, ValueError, r"needs the token ids \(tokens=...\)"):
        m(torch.randn(1, 3, 8))
    with raises(OptionError, ValueError, "unknown mechanism 'nope'; choose from softmax"):
        build_mechanism("nope", 8, 2)
    with raises(ArgumentTypeError, TypeError, "give exactly one of gammas and log_gammas"):
        M.multiscale_attention(Q[None], K[None], V[None])
    with raises(OptionError, ValueError, "discount must be one of 'bias', 'logit'; got 'cosine'"):
        M.discounted_logits(np.ones((2, 2)), -0.5, discount="cosine")
    with raises(ArgumentTypeError, TypeError, "q must be an array"):
        M.softmax_attention(Q.tolist(), K, V)
    with raises(ArgumentTypeError, TypeError, "mask must be a boolean array"):
        M.tropical_attention(Q, K, V, mask=[[True] * 5] * 3)
    with raises(ArgumentTypeError, TypeError, "mask must be boolean"):
        M.tropical_attention(Q, K, V, mask=np.ones((3, 5)))


def test_conversions_attention_tn_models(tmp_path):
    with raises(ArgumentTypeError, TypeError, "q must be an array or a nested list, not str"):
        dense("abc", K, V)
    with raises(ArgumentTypeError, TypeError, "mask must be boolean"):
        dense(Q, K, V, mask=np.ones((3, 5)))
    for not_bool in (3, [1, 0, 1, 1, 1], [[1.0] * 5] * 3, "abc"):  # ints in a list were once taken as bools
        with raises(ArgumentTypeError, TypeError, "mask must be boolean"):
            dense(Q, K, V, mask=not_bool)
    with raises(ShapeError, ValueError, "mask is a ragged nested list"):
        dense(Q, K, V, mask=[[True] * 5, [True]])
    # a nested list of bools (or one bool) is a mask
    sel = [True, False, True, True, False]
    np.testing.assert_allclose(dense(Q, K, V, mask=sel), dense(Q, K, V, mask=np.array(sel)), rtol=0, atol=0)
    np.testing.assert_allclose(dense(Q, K, V, mask=False), np.zeros((Q.shape[0], V.shape[1])))
    r = AttentionResult(output=np.zeros((1, 1)), bound=np.zeros(1), eps=0.0, vmax=np.zeros(()), support=np.ones(1),
                        method="dense")
    with raises(DomainError, ValueError, "does not record kept keys"):
        r.kept_keys(0)
    with raises(ArgumentTypeError, TypeError, "projections must come from compress_projections"):
        tt_compressed(Q, Q, None)
    a = TN.TensorTrain.random((2, 3), rank=2, seed=0)
    with raises(ArgumentTypeError, TypeError, "expected a TensorTrain, got int"):
        a + 3
    with raises(ArgumentTypeError, TypeError, "hadamard"):
        a * a
    W = TN.TTMatrix.from_dense(np.eye(4), (2, 2), (2, 2))
    with raises(ArgumentTypeError, TypeError, "apply expects a TensorTrain, got ndarray"):
        W.apply(np.ones(4))


# ------------------------------------------------------------------------------ part 2: probing, tropical
def test_tolerance_arguments_are_checked_even_when_unused():
    """A str/None/negative tol was accepted on exact input (and a raw error on float input)."""
    A = [[0, -1], [-2, 0]]
    for f in (T.kleene_star, T.eigenvector, T.critical_graph, lambda A, tol: T.solve(A, [0, 0], tol=tol),
              T.optimal_permutations, T.is_singular):
        with raises(ArgumentTypeError, TypeError, "tol must be a real number"):
            f(A, tol="a")
        with raises(ToleranceError, ValueError, "tol"):
            f(A, tol=-1.0)
        with raises(ToleranceError, ValueError, "tol"):
            f(A, tol=math.nan)
    assert T.optimal_permutations([[0, 0], [0, 0]], tol=Fraction(1, 3)) == [(0, 1), (1, 0)]  # exact tol stays exact


def test_argmax_lp_indices_and_options():
    # 1.5 was truncated to key 1; "a" and None were raw ValueError / TypeError from int()
    for f in (lambda j: T.argmax_witness(PTS, j), lambda j: T.are_adjacent(PTS, 0, j),
              lambda j: T.argmax_vertices(PTS).witness(j), lambda j: T.normal_fan(PTS).witness(j),
              lambda j: T.LPNormalFan(PTS).witness(j)):
        for j in (1.5, "a", None, np.float64(1.0)):
            with raises(ArgumentTypeError, TypeError, "must be an integer index"):
                f(j)
        with raises(ShapeError, ValueError, "out of range: there are 4"):
            f(4)
    sc = np.asarray(PTS, dtype=float) @ T.argmax_witness(PTS, np.int64(3))  # (an index of NumPy's int type)
    assert np.argmax(sc) == 3 and np.sum(sc == sc.max()) == 1
    for kw, cls in (({"n_random": -1}, ToleranceError), ({"n_random": 2.0}, ArgumentTypeError),
                    ({"batch": 0}, ToleranceError), ({"batch": "8"}, ArgumentTypeError),
                    ({"n_jobs": None}, ArgumentTypeError), ({"n_jobs": 0}, ToleranceError),
                    ({"scales": 2.0}, ArgumentTypeError), ({"scales": (1.0, -1.0)}, ToleranceError)):
        with pytest.raises(cls, match=next(iter(kw))):
            T.argmax_vertices(PTS, **kw)
    for tol in ("a", None, 2.0, math.nan):
        with raises(ToleranceError, ValueError, r"tol must be a real number in \(0, 1\)"):
            T.argmax_witness(PTS, 0, tol=tol)


def test_tropical_segment_and_normal_cone_inputs():
    for bad, cls in ((None, ArgumentTypeError), (3, ShapeError), ([[0, 1]], ShapeError), ([0, math.nan], NaNError)):
        with pytest.raises(cls):
            T.tropical_segment(bad, [0, 1])
        with pytest.raises(cls):
            T.tropical_segment([0, 1], bad)
    with raises(ShapeError, ValueError, "same number of coordinates"):
        T.tropical_segment([0, 1], [0, 1, 2])
    assert T.tropical_segment([0, 0, 0], [0, 2, 5]).tolist() == [[0, 0, 0], [0, 0, 3], [0, 2, 5]]
    F = T.normal_fan(PTS)
    for face in (1.5, "a", None, [0, 1.0]):
        with raises(ArgumentTypeError, TypeError, "face must be"):
            F.normal_cone(face)
    assert F.normal_cone([0, np.int64(1)]).face == frozenset({0, 1})


def test_bool_and_torch_points():
    """bool arrays were a raw TypeError from Fraction(np.bool_); torch exponents a raw NumPy TypeError."""
    B = np.array([[False, False], [True, False], [False, True], [True, True]])
    assert T.normal_fan(B).vertices == T.normal_fan(PTS).vertices
    assert T.covector(B, [0, 0]) == T.covector(PTS, [0, 0])
    assert T.newton_polytope(torch.tensor(PTS)).vertices == T.newton_polytope(PTS).vertices
    assert T.regular_subdivision(torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([0.0, 1.0, 0.0])).cells == ((0, 1), (1, 2))
    with raises(SemiringMismatchError, TypeError, "complex"):
        T.newton_polytope(np.array([[1j, 0], [0, 1]]))


def test_variable_names():
    """A variable named 'nan' printed as a number; non-strings printed as their repr; None was a raw TypeError."""
    terms = {(0, 0): 0, (1, 0): 1}
    with raises(ParseError, ValueError, "'nan' is reserved"):
        T.TropicalPolynomial(terms, variables=["x", "nan"])
    with raises(ParseError, ValueError, "'Inf' is reserved"):
        T.TropicalPolynomial(terms, variables=["Inf", "y"])
    with raises(ParseError, ValueError, "not a valid name"):
        T.TropicalPolynomial(terms, variables=["x", "1y"])
    for bad in (3, "xy", [1, 2], [["a"], ["b"]]):
        with raises(ArgumentTypeError, TypeError, "variables"):
            T.TropicalPolynomial(terms, variables=bad)
    with raises(ShapeError, ValueError, "3 names given for 2 variables"):
        T.TropicalPolynomial(terms, variables=["x", "y", "z"])
    with raises(ShapeError, ValueError, "distinct"):  # (ShapeError as before for repeated names)
        T.TropicalPolynomial(terms, variables=["x", "x"])
    p = T.TropicalPolynomial(terms, variables=["a_1", "b"])
    assert str(p) == "max(0, 1 + a_1)" and parse_polynomial(str(p), variables=["a_1", "b"]) == p
    with raises(ArgumentTypeError, TypeError, "variables"):
        parse_polynomial("max(x, 1)", variables=3)
    x = sympy.Symbol("x")
    for bad in (3, [1.0], [[x]]):
        with raises(ArgumentTypeError, TypeError, "variables"):
            from_sympy(sympy.Max(x, 1), variables=bad)
    with raises(EmptyInputError, ValueError, "variables is empty"):
        from_sympy(sympy.Max(x, 1), variables=[])
    with raises(ParseError, ValueError, "nan"):
        tropicalize({(0,): 4, (1,): 1}, 2, variables=["nan"])
    with raises(ArgumentTypeError, TypeError, "variables"):
        tropicalize({(0,): 4, (1,): 1}, 2, variables={"a": 1})


def test_semiring_arguments():
    with raises(SemiringMismatchError, TypeError, "tropicalize needs MaxPlus or MinPlus, not Real"):
        tropicalize({(0,): 4, (1,): 1}, 2, semiring=Real)
    for bad in ("a", None, [1.0], True):
        with raises(ArgumentTypeError, TypeError, "temperature T must be a real number"):
            LogSemiring(bad)
    with raises(NoInverse := __import__("tropix").NoInverseError, ZeroDivisionError, "no ⊗-inverse"):
        MaxPlus.power(-math.inf, -1)
    with pytest.raises(NoInverse):
        MinPlus.power(math.inf, -2)
    with raises(__import__("tropix").ConventionError, ValueError, "not an element of LogSemiring"):
        LogSemiring(1.0).add(math.inf, 1)
    assert LogSemiring(1.0).add(-math.inf, 1) == 1.0  # its zero is a legitimate value


def test_rank_limits_and_polytope_construction():
    for bad in (-1, 2.5, "a", None):
        with raises(ToleranceError, ValueError, "max_checks must be a positive integer"):
            T.kapranov_rank([[0, 1], [2, 0]], max_checks=bad)
    # TropicalPolytope built directly accepted anything (semiring None, NaN, strings)
    for bad, cls in (([[0, math.nan]], NaNError), ("abc", ArgumentTypeError), ([], ShapeError), (np.empty((0, 3)), EmptyInputError)):
        with pytest.raises(cls):
            T.TropicalPolytope(bad)
    P = T.TropicalPolytope([[0, 0, 0], [0, 2, 5], [0, 4, 1]], MinPlus)
    assert P.f_vector == T.convex_hull([[0, 0, 0], [0, 2, 5], [0, 4, 1]], semiring="min").f_vector == (6, 6, 1)
    assert T.TropicalPolytope(PTS).semiring is MaxPlus


# ----------------------------------------------------------------------------------- part 2: probing, tn
def test_tn_non_finite_and_complex_input():
    """tucker/tt_svd accepted ±inf and returned NaN factors with error_bound = inf; complex lost its imaginary part."""
    X = np.ones((2, 3))
    X[0, 1] = math.inf
    for f in (lambda A: TN.tt_svd(A), lambda A: TN.tucker(A, 1e-3), lambda A: TN.schmidt_spectrum(A, 1),
              lambda A: TN.TTMatrix.from_dense(A, (2,), (3,)), lambda A: TN.tucker([A, A], 1e-3, shared_across=0)):
        with raises(NaNError, ValueError, "contains inf: tensor decompositions need finite real entries"):
            f(X)
        with raises(NaNError, ValueError, "contains inf"):
            f(-X)
        with raises(ArgumentTypeError, TypeError, "complex"):
            f(np.ones((2, 3)) * 1j)
    with raises(ArgumentTypeError, TypeError, "complex"):
        TN.tt_svd(torch.ones(2, 3, dtype=torch.complex128))
    with raises(FloatOverflowError, OverflowError, "beyond the float64 range"):
        TN.tt_svd([[10**400, 1], [1, 1]])
    with raises(FloatOverflowError, OverflowError, "Frobenius norm exceeds the float64 range"):
        TN.tt_svd(np.full((2, 2), 1e308))
    with raises(FloatOverflowError, OverflowError, "singular values exceed"):
        TN.schmidt_spectrum(np.full((2, 2), 1e308), 1)


def test_tn_argument_types():
    tt = TN.tt_svd(RNG.standard_normal((3, 4, 5)))
    for bad in (np.ones((2, 2)), [1.0], None):
        with raises(ArgumentTypeError, TypeError, "tt_round rounds a TensorTrain"):
            TN.tt_round(bad)
    for cut in (1.5, "1", None):
        with raises(ArgumentTypeError, TypeError, "cut must be an integer"):
            TN.schmidt_spectrum(np.ones((2, 2)), cut)
        with raises(ArgumentTypeError, TypeError, "bond must be an integer"):
            tt.schmidt_spectrum(cut)
    for base in (1, 0, -2.0, math.nan):
        with raises(ToleranceError, ValueError, "base"):
            TN.entanglement_entropy(np.eye(2), 1, base)
    with raises(ArgumentTypeError, TypeError, "base must be a real number"):
        tt.entanglement_entropy(0, "e")
    assert TN.entanglement_entropy(np.eye(2) / math.sqrt(2), 1, base=2) == pytest.approx(1.0)
    # factorize(1.5, 2) returned (1.5, 1) and factorize(nan, 2) returned (1, 1)
    for n, d in ((1.5, 2), (math.nan, 2), ("4", 2), (4, 2.0)):
        with raises(ArgumentTypeError, TypeError, "must be an integer"):
            TN.factorize(n, d)
    for ranks in (2, "22", [[2], [2]], [2.0, 2]):
        with pytest.raises(ArgumentTypeError, match="ranks"):
            TN.tucker(np.ones((2, 2)), ranks=ranks)
    for shared in (1.5, None, "0"):
        with pytest.raises(ArgumentTypeError, match="shared_across"):
            TN.tucker(np.ones((2, 2)), 1e-3, shared_across=shared)
    for shape in (4, (2, "3"), None, [[2, 3]]):
        with pytest.raises(ArgumentTypeError, match="shape"):
            TN.TensorTrain.random(shape, rank=2)
    for rank, cls in ((0, ToleranceError), (1.5, ArgumentTypeError), (None, ArgumentTypeError)):
        with pytest.raises(cls, match="rank"):
            TN.TensorTrain.random((2, 3), rank=rank)
    for rd in (4, ("2", 2), [2.5, 2]):
        with pytest.raises(ArgumentTypeError, match="row_dims"):
            TN.TTMatrix.from_dense(np.eye(4), rd, (2, 2))
    for n in (1.5, "2", None):
        with pytest.raises(ArgumentTypeError):
            TN.PEPS.random(n, 2)


def test_tn_tt_scalar_product():
    tt = TN.TensorTrain.random((2, 3), rank=2, seed=0)
    for bad in (np.ones(2), [2.0], "2", None, {"a": 1}):
        with raises(ArgumentTypeError, TypeError, "scalar"):
            tt * bad
    with raises(NaNError, ValueError, "NaN"):
        tt * math.nan
    with raises(BackendMismatchError, TypeError, "different libraries"):
        tt * torch.tensor(2.0, dtype=torch.float64)
    np.testing.assert_allclose((tt * np.float64(2.0)).to_dense(), 2 * tt.to_dense())
    np.testing.assert_allclose((tt * np.array(3.0)).to_dense(), 3 * tt.to_dense())
    for cores, cls in (([[1.0]], ArgumentTypeError), ("abc", ArgumentTypeError), (None, ArgumentTypeError),
                       ((np.ones((1, 2)),), ShapeError)):
        with pytest.raises(cls):
            TN.TensorTrain(cores)


def test_tn_mode_product_and_contraction_options():
    X = np.ones((2, 3, 4))
    with raises(ShapeError, ValueError, "M must be a matrix with 3 columns"):
        TN.mode_product(X, np.ones((2, 2)), 1)
    with raises(ShapeError, ValueError, "mode must be in 0..2"):
        TN.mode_product(X, np.ones((2, 2)), 3)
    with raises(ArgumentTypeError, TypeError, "mode must be an integer"):
        TN.mode_product(X, np.ones((2, 3)), 1.0)
    with raises(ArgumentTypeError, TypeError, "T must be an array"):
        TN.mode_product(X.tolist(), np.ones((2, 3)), 1)
    np.testing.assert_allclose(TN.mode_product(X, np.ones((5, 3)), 1), np.full((2, 5, 4), 3.0))
    A, B = np.ones((2, 3)), np.ones((3, 4))
    with raises(OptionError, ValueError, "optimize must be one of 'sequential', 'auto'"):
        TN.contract("ij,jk->ik", A, B, optimize="bogus")  # opt_einsum fell back silently
    with raises(OptionError, ValueError, "optimize must be one of"):
        TN.contraction_path("ij,jk->ik", (2, 3), (3, 4), optimize="fastest")
    with raises(ArgumentTypeError, TypeError, "optimize"):
        TN.contract("ij,jk->ik", A, B, optimize=3)
    with raises(ArgumentTypeError, TypeError, "explicit contraction path"):
        TN.contract("ij,jk->ik", A, B, optimize=[(0, "1")])
    with raises(ArgumentTypeError, TypeError, "subscripts must be an einsum string"):
        TN.contraction_path(None, (2, 3), (3, 4))
    with raises(ShapeError, ValueError, "do not fit the shapes"):
        TN.contraction_path("ij,jk->ik", (2, 3, 1), (3, 4))
    with raises(ArgumentTypeError, TypeError, "shape 1"):
        TN.contraction_path("ij,jk->ik", (2, 3), 4)
    for opt in ("greedy", "sequential", True, [(0, 1)]):
        np.testing.assert_allclose(TN.contract("ij,jk->ik", A, B, optimize=opt), A @ B)


def test_tn_problems_ttmatrix_peps_arguments():
    import tropix.tn.problems as PR

    Jh, Jv = PR.random_couplings(2, 3, seed=0)
    assert Jh.shape == (2, 2) and Jv.shape == (1, 3)
    for kw, cls in (({"L": 2.0}, ArgumentTypeError), ({"L": 0}, ToleranceError), ({"L": 2, "M": "3"}, ArgumentTypeError),
                    ({"L": 2, "seed": -1}, ToleranceError), ({"L": 2, "seed": 1.5}, ArgumentTypeError)):
        with pytest.raises(cls):
            PR.random_couplings(**kw)
    with raises(ShapeError, ValueError, r"spins must have shape \(\.\.\., 2, 3\)"):
        PR.spin_glass_energy(np.ones((3, 2)), Jh, Jv)
    with raises(ArgumentTypeError, TypeError, "spins"):
        PR.spin_glass_energy(None, Jh, Jv)
    assert PR.spin_glass_energy(np.ones((2, 3)), Jh, Jv) == -(Jh.sum() + Jv.sum())
    for edges in (None, 3, [(0,)], [(0, 1.5)], "ab"):
        with pytest.raises(ArgumentTypeError):
            PR.independent_set_network(3, edges)
    with raises(ArgumentTypeError, TypeError, "n must be an integer"):
        PR.independent_set_network(3.0, [(0, 1)])
    tt = TN.TensorTrain.random((4, 4), rank=2, seed=0)
    with raises(ArgumentTypeError, TypeError, "from_tt expects a TensorTrain"):
        TN.TTMatrix.from_tt(np.ones((4, 4)), (2, 2), (2, 2))
    with raises(ArgumentTypeError, TypeError, "row_dims"):
        TN.TTMatrix.from_tt(tt, 2, (2, 2))
    W = TN.TTMatrix.from_tt(tt, (2, 2), (2, 2))
    with raises(ShapeError, ValueError, "X must have shape"):
        W.rmatmat(3.0)
    with raises(ArgumentTypeError, TypeError, "center must be an integer"):
        tt.canonical(0.5)
    ps = TN.PEPS.random(2, 2, seed=0)
    for ops, match in (([np.eye(2)], "mapping"), ({0: np.eye(2)}, "pairs"), ({(0, 0.5): np.eye(2)}, "site index")):
        with pytest.raises(ArgumentTypeError, match=match):
            ps.expectation(ops)
    for vecs in (None, 3, [3]):
        with pytest.raises(ArgumentTypeError):
            TN.PEPS.product_state(vecs)
    with raises(ShapeError, ValueError, "must be 1-dimensional"):
        TN.PEPS.product_state([np.ones(2)])  # a row of scalars, not of vectors


def test_tt_compressed_arguments():
    from tropix.attention.tt_compressed import compress_projections

    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 8))
    W = [rng.standard_normal((8, 8)) / 3 for _ in range(3)]
    PJ = compress_projections(*W, eps=0.05)
    with raises(ArgumentTypeError, TypeError, "W_q has dtype complex128"):  # the imaginary part was dropped
        compress_projections(W[0] * 1j, W[1], W[2])
    Winf = W[1].copy()
    Winf[0, 0] = math.inf
    with raises(NaNError, ValueError, "W_k contains inf"):
        compress_projections(W[0], Winf, W[2])
    for kw, cls, match in (({"eps": -0.1}, ToleranceError, "eps must be >= 0"),  # meant dense before
                           ({"eps": math.nan}, ToleranceError, "eps is NaN"),
                           ({"eps": "0.1"}, ArgumentTypeError, "eps must be a real number"),
                           ({"attention_tt_eps": "0.3"}, ArgumentTypeError, "attention_tt_eps"),
                           ({"scale": "1"}, ArgumentTypeError, "scale must be a real number"),
                           ({"check": True, "weights": W[:2]}, ArgumentTypeError, "three matrices"),
                           ({"check": True, "weights": [w.T[:4] for w in W]}, ShapeError, "W_q has shape")):
        with pytest.raises(cls, match=match):
            tt_compressed(X, X, PJ, **kw)
    with raises(ArgumentTypeError, TypeError, "x_q has dtype complex128"):
        tt_compressed(X * 1j, X, PJ)
    r = tt_compressed(X, X, PJ, check=True, weights=W)
    assert r.output.shape == (6, 8) and np.all(r.bound >= 0)


def test_tensor_train_entry_index():
    tt = TN.TensorTrain.random((2, 3), rank=2, seed=0)
    with raises(ArgumentTypeError, TypeError, "every index must be an integer"):
        tt[0, 1.5]  # read entry (0, 1) before
    with pytest.raises(IndexError):  # Python's protocol for out-of-range indices stays
        tt[0, 3]
    assert float(tt[1, np.int64(2)]) == pytest.approx(tt.to_dense()[1, 2])


def test_polynomial_and_curve_options():
    p = parse_polynomial("max(0, x, y)")
    for atol, cls in (("a", ArgumentTypeError), (None, ArgumentTypeError), (-1.0, ToleranceError)):
        with pytest.raises(cls, match="atol"):
            p.dominant_terms([0.0, 0.0], atol=atol)
    assert p.dominant_terms([0.0, 1e-9], atol=1e-6).tolist() == [True, True, True]
    for box in (3, "abcd", (0, 0, 1), (0, 0, "1", 1)):
        with pytest.raises(ArgumentTypeError, match="box"):
            regions(p, box=box)
    with raises(ShapeError, ValueError, "xmin < xmax"):
        regions(p, box=(1, 0, 0, 1))
    assert [r.label for r in regions(p, box=(-1, -1, 1, 1))] == [(0, 0), (0, 1), (1, 0)]


# -------------------------------------------------------------------------- part 2: probing, mechanisms
def test_mechanisms_missing_and_wrong_arrays():
    calls = {
        "softmax_attention": lambda q, k, v: M.softmax_attention(q, k, v),
        "gravitational_attention": lambda q, k, v: M.gravitational_attention(q, k, v),
        "multiscale_attention": lambda q, k, v: M.multiscale_attention(
            *(a[None] if isinstance(a, np.ndarray) else a for a in (q, k, v)), gammas=[0.5]),
        "powerlaw_attention": lambda q, k, v: M.powerlaw_attention(q, k, v, alpha=1.0, beta=1.0),
        "tropical_attention": lambda q, k, v: M.tropical_attention(q, k, v),
    }
    for name, f in calls.items():
        for pos in range(3):
            for bad, what in ((None, "NoneType"), ([[1.0]], "list"), ("abc", "str")):
                args = [Q, K, V]
                args[pos] = bad
                with raises(ArgumentTypeError, TypeError, f"{'qkv'[pos]} must be an array.*{what}"):
                    f(*args)
        args = [Q, K, V]
        args[0] = Q * 1j
        with raises(ArgumentTypeError, TypeError, "q must hold real numbers"):
            f(*args)
    with raises(ArgumentTypeError, TypeError, "log_mass_k must be an array"):
        M.gravitational_logits(Q, K, None)
    with raises(ArgumentTypeError, TypeError, "E must be an array"):
        M.force_scores(None, K, np.ones((1, 4)))
    with raises(ArgumentTypeError, TypeError, "x must be an array"):
        M.tropical_linear(None, np.ones((2, 4)))


def test_mechanisms_scalar_options():
    with raises(ShapeError, ValueError, r"bias of shape \(2, 2\) does not broadcast to the scores \(3, 5\)"):
        M.softmax_attention(Q, K, V, bias=np.ones((2, 2)))
    with raises(ArgumentTypeError, TypeError, "bias must be an array"):
        M.softmax_attention(Q, K, V, bias=[[0.0] * 5] * 3)
    with raises(ArgumentTypeError, TypeError, "scale must be a real number"):
        M.softmax_attention(Q, K, V, scale="1")
    with raises(ToleranceError, ValueError, "scale must be finite"):
        M.softmax_attention(Q, K, V, scale=math.inf)
    for f in (lambda e: M.gravitational_attention(Q, K, V, eps=e), lambda e: M.gravitational_logits(Q, K, np.zeros(5), eps=e),
              lambda e: M.force_field(Q, K, eps=e)):
        with raises(ArgumentTypeError, TypeError, "eps must be a real number"):
            f("1e-8")
        with raises(ArgumentTypeError, TypeError, "eps must be a real number"):
            f(None)
    with raises(ArgumentTypeError, TypeError, "p must be a real number"):
        M.force_field(Q, K, p="2")
    for bad in ("a", None, [1.0]):
        with raises(ArgumentTypeError, TypeError, "log_gamma must be a real number or an array"):
            M.discounted_logits(np.ones((2, 2)), bad)
        with raises(ArgumentTypeError, TypeError, "alpha must be a real number or an array"):
            M.powerlaw_attention(Q, K, V, alpha=bad, beta=1.0)
        with raises(ArgumentTypeError, TypeError, "lam must be a real number or an array"):
            M.tropicalize(Q, bad)
    with raises(BackendMismatchError, TypeError, "different libraries"):
        M.discounted_logits(np.ones((2, 2)), torch.tensor(-0.5))
    with raises(ShapeError, ValueError, "s must be a float array of logits"):
        M.discounted_logits(np.ones(3), -0.5)
    with raises(ShapeError, ValueError, "gammas must be a float vector"):
        M.laplace_decoder_matrix(np.full((2, 2), 0.5))
    with raises(ArgumentTypeError, TypeError, "bins must be a sequence"):
        M.laplace_decoder_matrix(np.array([0.5, 0.9]), bins=3)
    with raises(EmptyInputError, ValueError, "bins is empty"):
        M.laplace_decoder_matrix(np.array([0.5, 0.9]), bins=[])
    with raises(ArgumentTypeError, TypeError, "alpha must be a real number"):
        M.laplace_decoder_matrix(np.array([0.5, 0.9]), alpha=None)
    for n in ("3", None, 2.5):
        with raises(ArgumentTypeError, TypeError, "n_q must be an integer"):
            M.powerlaw_bias(n, 3, 1.0, 1.0)
    for bad, cls in (("8", ArgumentTypeError), (None, ArgumentTypeError), (0, ToleranceError)):
        with pytest.raises(cls, match="d_model"):
            build_mechanism("softmax", bad, 2)
    for bad in (None, ["softmax"]):
        with raises(OptionError, ValueError, "unknown mechanism"):
            build_mechanism(bad, 8, 2)


def test_tropical_linear_uses_the_semiring_product():
    """Real semiring: sum(x + W) was returned (neither a real nor a tropical linear map); now x Wᵀ."""
    x, W = RNG.standard_normal((3, 4)), RNG.standard_normal((2, 4))
    np.testing.assert_allclose(M.tropical_linear(x, W, semiring=Real), x @ W.T)
    np.testing.assert_allclose(M.tropical_linear(x, W), np.max(x[:, None, :] + W, axis=-1))
    np.testing.assert_allclose(M.tropical_linear(x, W, semiring="min"), np.min(x[:, None, :] + W, axis=-1))
    lse = np.log(np.sum(np.exp(x[:, None, :] + W), axis=-1))
    np.testing.assert_allclose(M.tropical_linear(x, W, semiring=LogSemiring(1.0)), lse)


def test_resonant_inputs():
    s1, s2 = M.SparsePrimeState.from_hash("a", k=3, n_primes=50), M.SparsePrimeState.from_hash("b", k=3, n_primes=50)
    for bad in (None, "abc", [s1]):
        with raises(ArgumentTypeError, TypeError, "must be a SparsePrimeState"):
            M.resonance(s1, bad)
    for w in ((1.0, 2.0), None, "abc"):
        with raises(ArgumentTypeError, TypeError, "weights must be three real numbers"):
            M.resonance(s1, s2, w)
    with raises(ArgumentTypeError, TypeError, "every weight must be a real number"):
        M.resonance(s1, s2, (1.0, "b", 0.0))
    with raises(ArgumentTypeError, TypeError, "states must be a sequence of SparsePrimeState"):
        M.resonant_attend(s1, None)
    with raises(ArgumentTypeError, TypeError, "state 1 must be a SparsePrimeState"):
        M.resonant_attend(s1, [s1, "b"])
    with raises(ArgumentTypeError, TypeError, "tau must be a real number"):
        M.resonant_attend(s1, [s1], tau="1")
    with raises(ArgumentTypeError, TypeError, "state 0 must be a SparsePrimeState"):
        M.states_to_arrays([None])
    for k, cls in ((-1, ToleranceError), (1.5, ArgumentTypeError)):
        with pytest.raises(cls, match="k must be"):
            M.states_to_arrays([s1], k=k)
    quat = ((1, 0, 0, 0),)
    for args, cls, match in (((None, (1,), quat), ArgumentTypeError, "primes must be a sequence"),
                             (((2.5,), (1,), quat), ArgumentTypeError, "every prime must be an integer"),
                             (((2,), ("a",), quat), ArgumentTypeError, "every amplitude"),
                             (((2,), (complex(math.nan, 0),), quat), NaNError, "not finite"),
                             (((2,), (1,), ((1, 0, 0),)), ShapeError, "4 real numbers"),
                             (((2,), (1,), (("a", 0, 0, 0),)), ArgumentTypeError, "quaternion component")):
        with pytest.raises(cls, match=match):
            M.SparsePrimeState(*args)
    s = M.SparsePrimeState([2, 3], [1, 1j], [[2, 0, 0, 0], [0, 0, 0, 3]])  # lists are stored as tuples, normalised
    assert s.primes == (2, 3) and s.quaternions == ((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    for k, n in (("3", 50), (3, None), (3, 2.0)):
        with pytest.raises(ArgumentTypeError):
            M.SparsePrimeState.from_hash("a", k=k, n_primes=n)
    with raises(ArgumentTypeError, TypeError, "text must be a string"):
        M.SparsePrimeState.from_hash(None)
    with raises(ArgumentTypeError, TypeError, "n must be an integer"):
        M.first_primes("5")
    P, PH, QQ = M.states_to_arrays([s1, s2])
    with raises(ArgumentTypeError, TypeError, "primes_q must be an integer array"):
        M.resonant_scores(P.tolist(), PH, QQ, P, PH, QQ)
    with raises(ArgumentTypeError, TypeError, "primes_k must be an integer array"):
        M.resonant_scores(P, PH, QQ, P.astype(float), PH, QQ)
    with raises(BackendMismatchError, TypeError, "different libraries"):
        M.resonant_attention(P, PH, QQ, P, PH, QQ, torch.ones(2, 3, dtype=torch.float64))
    with raises(ShapeError, ValueError, "v must have shape"):
        M.resonant_attention(P, PH, QQ, P, PH, QQ, np.ones(2))


# ------------------------------------------------------------------------------ the shared argument checks
def test_args_helpers():
    assert check_int(np.int32(3), "n") == 3 and check_int(torch.tensor(4), "n") == 4
    for bad in (True, 2.0, "2", None, np.float64(2), torch.tensor(2.0)):
        with raises(ArgumentTypeError, TypeError, "n must be an integer"):
            check_int(bad, "n")
    with raises(ToleranceError, ValueError, "at most 3"):
        check_int(4, "n", maximum=3)
    with raises(ShapeError, ValueError, r"i = -1 is out of range: there are 2 items \(indices 0..1\)"):
        check_index(-1, 2, "i")
    assert check_real(np.float32(0.5), "t", minimum=0) == np.float32(0.5)
    assert check_real(torch.tensor(0.25), "t") == 0.25 and check_real(None, "t", none_ok=True) is None
    with raises(ToleranceError, ValueError, "t must be > 0"):
        check_real(0, "t", minimum=0, open_min=True)
    with raises(ToleranceError, ValueError, "t must be finite"):
        check_real(-math.inf, "t")
    assert check_real(math.inf, "t", finite=False) == math.inf
    with raises(ArgumentTypeError, TypeError, "t must be a real number or None"):
        check_real("x", "t", none_ok=True)
    assert check_dims(np.array([2, 3]), "s") == (2, 3)
    with raises(ShapeError, ValueError, r"s\[1\] = 0: sizes must be at least 1"):
        check_dims((2, 0), "s")
    with raises(OptionError, ValueError, "got None"):
        check_option(None, "mode", ("a", "b"))
    assert check_names(np.array(["x", "y"]), 2) == ("x", "y")
    with raises(ParseError, ValueError, "names must be distinct"):
        check_names(["x", "x"], None)


# ---------------------------------------------------------------- part 3: a mutation sweep (regression net)
_BAD = {"None": None, "str": "abc", "int": 3, "float": 1.5, "nan": math.nan, "empty": [], "ragged": [[1, 2], [3]],
        "nan_array": np.array([[1.0, math.nan], [0.0, 1.0]]), "3d": np.ones((2, 2, 2)), "complex": np.ones((2, 2)) * 1j,
        "strings": [["a", "b"], ["c", "d"]], "torch": torch.ones(2, 2, dtype=torch.float64), "dict": {"a": 1}}

_SWEEP = [
    ("matmul", lambda a: T.matmul(a, [[0, 1], [2, 0]])),
    ("eigenvalue", lambda a: T.eigenvalue(a)),
    ("tdet", lambda a: T.tdet(a)),
    ("tropical_rank", lambda a: T.tropical_rank(a)),
    ("tropical_segment", lambda a: T.tropical_segment(a, [0, 1])),
    ("covector", lambda a: T.covector(a, [0, 0])),
    ("newton_polytope", lambda a: T.newton_polytope(a)),
    ("normal_fan", lambda a: T.normal_fan(a)),
    ("normal_cone", lambda a: T.normal_fan(PTS).normal_cone(a)),
    ("argmax_witness_j", lambda a: T.argmax_witness(PTS, a)),
    ("parse_polynomial_vars", lambda a: parse_polynomial("max(x, 1)", variables=a)),
    ("TropicalPolynomial_vars", lambda a: T.TropicalPolynomial({(1,): 0}, variables=a)),
    ("LogSemiring", lambda a: LogSemiring(a)),
    ("tt_svd", lambda a: TN.tt_svd(a)),
    ("tt_round", lambda a: TN.tt_round(a)),
    ("tt_scalar", lambda a: TN.TensorTrain.random((2, 2), rank=1, seed=0) * a),
    ("tucker_ranks", lambda a: TN.tucker(np.ones((2, 2)), ranks=a)),
    ("schmidt_cut", lambda a: TN.schmidt_spectrum(np.eye(2), a)),
    ("factorize", lambda a: TN.factorize(a, 2)),
    ("mode_product", lambda a: TN.mode_product(np.ones((2, 2)), a, 0)),
    ("contraction_path", lambda a: TN.contraction_path("ij,jk->ik", a, (2, 2))),
    ("TensorTrain.random", lambda a: TN.TensorTrain.random(a, rank=1)),
    ("softmax_q", lambda a: M.softmax_attention(a, K, V)),
    ("softmax_bias", lambda a: M.softmax_attention(Q, K, V, bias=a)),
    ("gravitational_eps", lambda a: M.gravitational_attention(Q, K, V, eps=a)),
    ("discounted_logits", lambda a: M.discounted_logits(a, -0.5)),
    ("laplace_decoder_matrix", lambda a: M.laplace_decoder_matrix(a)),
    ("powerlaw_k", lambda a: M.powerlaw_attention(Q, a, V, alpha=1.0, beta=1.0)),
    ("resonance", lambda a: M.resonance(M.SparsePrimeState.from_hash("a", 2, 20), a)),
    ("states_to_arrays", lambda a: M.states_to_arrays(a)),
    ("SparsePrimeState", lambda a: M.SparsePrimeState(a, (1,), ((1, 0, 0, 0),))),
    ("tropical_linear_W", lambda a: M.tropical_linear(Q, a)),
    ("build_mechanism", lambda a: build_mechanism(a, 8, 2)),
]


@pytest.mark.parametrize("name,f", _SWEEP, ids=[n for n, _ in _SWEEP])
def test_bad_arguments_raise_tropix_errors(name, f):
    """Each bad value either is valid input for that argument or raises a TropixError (never a raw error)."""
    raw = {}
    for label, bad in _BAD.items():
        try:
            f(bad)
        except TropixError:
            pass
        except Exception as err:  # noqa: BLE001 - the point of the test
            raw[label] = f"{type(err).__name__}: {err}"
    assert not raw, f"{name}: raw errors {raw}"


def test_an_array_where_a_number_belongs_is_named_not_printed():
    """A (50, 8) array passed as eps, a temperature or a tolerance: the message names its library, dtype and
    shape instead of printing 400 numbers."""
    from tropix.attention import region_sparse, tropicality

    big = np.ones((50, 8))
    q, k = np.ones((2, 8)), np.ones((3, 8))
    cases = [
        (lambda: region_sparse(q, k, np.ones((3, 2)), eps=big), "eps must be a number, got <numpy float64 (50, 8)>"),
        (lambda: region_sparse(q, k, np.ones((3, 2)), eps=torch.ones(50, 8)), "got <torch float32 (50, 8)>"),
        (lambda: tropicality(q, k, temperature=big), "got <numpy float64 (50, 8)>"),
        (lambda: T.kleene_star(np.zeros((2, 2)), tol=big), "got <numpy float64 (50, 8)>"),
    ]
    for call, text in cases:
        with pytest.raises(TropixError) as e:
            call()
        assert text in str(e.value) and len(str(e.value)) < 200, str(e.value)
