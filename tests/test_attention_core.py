"""Dense reference, tropical limit, input validation and the result object of tropix.attention."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tropix
from tropix.attention import AttentionResult, auto, dense, hierarchical, region_sparse, tropical
from tropix.errors import (
    BackendMismatchError,
    ConventionError,
    EmptyInputError,
    NaNError,
    ShapeError,
    ToleranceError,
)

from conftest import to_np


def naive(q, k, v, mask=None, bias=None, scale=None, causal=False):
    """Textbook softmax attention on full matrices (NumPy, float64)."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    d = q.shape[-1]
    s = (q @ np.swapaxes(k, -1, -2)) * (1 / math.sqrt(d) if scale is None else scale)
    if bias is not None:
        s = s + bias
    keep = np.ones(s.shape, dtype=bool)
    if mask is not None:
        keep &= np.broadcast_to(mask, s.shape)
    if causal:
        keep &= np.tril(np.ones(s.shape[-2:], dtype=bool))
    s = np.where(keep, s, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    w = np.exp(s - m)
    z = w.sum(axis=-1, keepdims=True)
    return (w @ v) / np.where(z > 0, z, 1.0)


RNG = np.random.default_rng(7)


@pytest.mark.parametrize("block", [None, 1, 3, 16])
def test_dense_matches_naive_all_options(backend, block):
    q, k, v = RNG.normal(size=(2, 3, 6, 4)), RNG.normal(size=(2, 3, 9, 4)), RNG.normal(size=(2, 3, 9, 5))
    mask = RNG.random((6, 9)) > 0.3
    mask[2] = False  # a fully masked row
    bias = RNG.normal(size=(3, 1, 9))
    for kw in (dict(), dict(mask=mask), dict(bias=bias, scale=0.7), dict(causal=True), dict(mask=mask, bias=bias, causal=True)):
        args = {key: (backend(val) if key == "bias" else val) for key, val in kw.items()}
        if "mask" in args:
            args["mask"] = _bool(backend, mask)
        out = dense(backend(q), backend(k), backend(v), block=block, **args)
        np.testing.assert_allclose(to_np(out), naive(q, k, v, **kw), rtol=1e-12, atol=1e-13)
        if "mask" in kw:
            assert np.all(to_np(out)[..., 2, :] == 0.0)  # documented: a query seeing no key outputs zero


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.sampled_from([None, 1, 5, 16, 512]), st.booleans(),
       st.integers(0, 2**32 - 1))
def test_dense_causal_skips_blocks_above_the_diagonal_exactly(n_q, n_k, block, with_mask, seed):
    # the key blocks wholly above the diagonal are skipped and those wholly below carry no mask: the result
    # must still be the masked softmax, for n_q above, equal to and below n_k
    rng = np.random.default_rng(seed)
    q, k, v = rng.normal(size=(n_q, 3)), rng.normal(size=(n_k, 3)), rng.normal(size=(n_k, 2))
    mask = rng.random((n_q, n_k)) > 0.3 if with_mask else None
    out = dense(q, k, v, mask=mask, causal=True, block=block)
    np.testing.assert_allclose(out, naive(q, k, v, mask=mask, causal=True), rtol=1e-12, atol=1e-13)


def test_dense_causal_default_blocks_large():
    # the default causal blocking (512 x 512) on an input with several blocks on both sides of the diagonal
    q, k, v = RNG.normal(size=(1300, 8)), RNG.normal(size=(1700, 8)), RNG.normal(size=(1700, 3))
    np.testing.assert_allclose(dense(q, k, v, causal=True), naive(q, k, v, causal=True), rtol=1e-11, atol=1e-13)
    qt, kt, vt = (torch.tensor(x) for x in (q, k, v))
    np.testing.assert_allclose(dense(qt, kt, vt, causal=True).numpy(), naive(q, k, v, causal=True), rtol=1e-11,
                               atol=1e-13)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(1, 2), max_size=2), st.integers(1, 8), st.integers(1, 8), st.integers(0, 4),
       st.integers(0, 4), st.booleans(), st.integers(0, 2**32 - 1))
def test_visible_counts_equal_counting_the_additive_term(batch, n_q, n_k, mi, bi, causal, seed):
    from tropix.attention._inputs import block_extra, prepare, visible_counts

    rng = np.random.default_rng(seed)
    b = tuple(batch)
    q, k, v = rng.normal(size=b + (n_q, 2)), rng.normal(size=b + (n_k, 2)), rng.normal(size=b + (n_k, 1))
    mshape = [None, (n_k,), (n_q, n_k), (n_q, 1), b + (1, n_k)][mi]
    bshape = [None, (n_k,), (n_q, n_k), (1, n_k), b + (n_q, 1)][bi]
    mask = None if mshape is None else rng.random(mshape) > 0.4
    bias = None
    if bshape is not None:
        bias = rng.normal(size=bshape)
        bias[rng.random(bshape) < 0.3] = -np.inf
    P = prepare(q, k, v, mask=mask, bias=bias, causal=causal)
    E = block_extra(P, slice(0, n_q), slice(0, n_k), np.float64)
    want = np.full(b + (n_q,), n_k) if E is None else np.isfinite(np.broadcast_to(E, b + (n_q, n_k))).sum(-1)
    got = visible_counts(P)
    assert got.shape == b + (n_q,) and np.array_equal(got, want)
    if bias is not None:  # the largest finite |bias| per row, for the rounding bound
        from tropix.attention._inputs import bias_row_stats

        absmax = bias_row_stats(P)[1]
        ref = np.where(np.isfinite(bias), np.abs(bias), 0.0).max(axis=-1)
        assert np.array_equal(np.broadcast_to(absmax, np.broadcast_shapes(absmax.shape, ref.shape)),
                              np.broadcast_to(ref, np.broadcast_shapes(absmax.shape, ref.shape)))


def _bool(backend, m):
    x = backend(np.asarray(m, dtype=np.float64))
    return x > 0.5


def test_dense_matches_torch_sdpa_and_gradients():
    q, k, v = (torch.tensor(RNG.normal(size=s), requires_grad=True) for s in ((2, 7, 8), (2, 11, 8), (2, 11, 3)))
    mask = torch.tensor(RNG.random((7, 11)) > 0.4)
    mask[:, 0] = True
    for kw, tkw in ((dict(mask=mask), dict(attn_mask=mask)), (dict(causal=True), dict(is_causal=True))):
        o = dense(q, k, v, block=4, **kw)
        ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, **tkw)
        assert torch.allclose(o, ref, atol=1e-13)
        g = torch.autograd.grad(o.sum() + (o ** 2).sum(), (q, k, v))
        gr = torch.autograd.grad(ref.sum() + (ref ** 2).sum(), (q, k, v))
        for a, b in zip(g, gr):
            assert torch.allclose(a, b, atol=1e-12)


def test_dense_gradient_finite_with_fully_masked_row():
    q, k, v = (torch.tensor(RNG.normal(size=s), requires_grad=True) for s in ((3, 4), (5, 4), (5, 2)))
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    o = dense(q, k, v, mask=mask, block=2)
    o.sum().backward()
    assert torch.all(o[1] == 0)
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
    assert torch.all(q.grad[1] == 0)


def test_dense_65536_keys_streams():
    q = RNG.normal(size=(4, 16))
    k = RNG.normal(size=(65536, 16))
    v = RNG.normal(size=(65536, 2))
    np.testing.assert_allclose(dense(q, k, v, block=4096), naive(q, k, v), rtol=1e-11, atol=1e-13)


def test_dense_lists_and_exact_input():
    out = dense([[1, 0]], [[1, 0], [0, 1]], [[1], [0]], scale=1)
    assert out.dtype == np.float64
    assert out[0, 0] == pytest.approx(math.e / (math.e + 1), rel=1e-15)


# ----------------------------------------------------------------------------------- tropical


def brute_tropical(q, k, v, bias=None, scale=Fraction(1), sense=1, mask=None):
    out = []
    for i, qi in enumerate(q):
        scores = {}
        for j, kj in enumerate(k):
            if mask is not None and not mask[i][j]:
                continue
            b = 0 if bias is None else bias[i][j]
            if isinstance(b, float) and math.isinf(b):
                continue
            scores[j] = scale * sum(Fraction(a) * c for a, c in zip(qi, kj)) + b
        if not scores:
            out.append([0] * len(v[0]))
            continue
        best = (max if sense == 1 else min)(scores.values())
        ties = [j for j, s in scores.items() if s == best]
        out.append([sum(Fraction(v[j][c]) for j in ties) / len(ties) for c in range(len(v[0]))])
    return out


small_int = st.integers(-3, 3)


@given(st.data())
@settings(max_examples=40)
def test_tropical_exact_matches_brute_force(data):
    nq, nk, d = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 5)), data.draw(st.sampled_from([1, 2, 4]))
    mat = lambda r, c: data.draw(st.lists(st.lists(small_int, min_size=c, max_size=c), min_size=r, max_size=r))  # noqa: E731
    q, k, v = mat(nq, d), mat(nk, d), mat(nk, 2)
    mask = data.draw(st.lists(st.lists(st.booleans(), min_size=nk, max_size=nk), min_size=nq, max_size=nq))
    for sense, sr in ((1, tropix.MaxPlus), (-1, tropix.MinPlus)):
        got = tropical(q, k, v, mask=np.array(mask), semiring=sr)
        want = brute_tropical(q, k, v, scale=Fraction(1, math.isqrt(d)), sense=sense, mask=mask)
        assert got.dtype == object
        assert [[Fraction(x) for x in row] for row in got] == want


def test_tropical_irrational_scale_exact_ties():
    # d = 2: scores x/sqrt(2) + b.  x = (2, 0), b = (0, sqrt 2 is irrational so never ties) -> exact order
    q, k, v = [[1, 1]], [[1, 1], [0, 0]], [[1, 0], [0, 1]]
    # key 0: 2/sqrt(2) = 1.41421..., key 1: 0 + 7/5 = 1.4 -> key 0 wins (a float rounding of 1.4 would not matter)
    out = tropical(q, k, v, bias=[[0, Fraction(7, 5)]])
    assert out.tolist() == [[1, 0]]
    out = tropical(q, k, v, bias=[[0, Fraction(71, 50)]])  # 1.42 > 1.41421...
    assert out.tolist() == [[0, 1]]


def test_tropical_is_zero_temperature_limit_of_dense():
    q, k, v = RNG.normal(size=(5, 3)), RNG.normal(size=(8, 3)), RNG.normal(size=(8, 2))
    t = tropical(q, k, v, scale=1.0)
    lim = dense(q, k, v, scale=1e6)
    np.testing.assert_allclose(t, lim, atol=1e-9)
    k2 = np.vstack([k, k[:1]])  # a duplicated key: exact tie, uniform average
    v2 = np.vstack([v, -v[:1] + 4.0])
    t2 = tropical(q, k2, v2, scale=1.0)
    np.testing.assert_allclose(t2, dense(q, k2, v2, scale=1e6), atol=1e-9)


def test_tropical_min_plus_is_max_plus_of_negated_queries(backend):
    q, k, v = RNG.normal(size=(4, 3)), RNG.normal(size=(6, 3)), RNG.normal(size=(6, 2))
    a = tropical(backend(q), backend(k), backend(v), semiring="min")
    b = tropical(backend(-q), backend(k), backend(v))
    np.testing.assert_array_equal(to_np(a), to_np(b))
    with pytest.raises(ConventionError):
        tropical(q, k, v, bias=np.full((4, 6), np.inf))  # +inf is not a max-plus element
    out = tropical(q, k, v, bias=np.full((4, 6), np.inf), semiring="min")  # min-plus zero: all masked
    assert np.all(out == 0)


# ----------------------------------------------------------------------------------- bad input

METHODS = [
    lambda *a, **kw: dense(*a, **kw),
    lambda *a, **kw: region_sparse(*a, eps=1e-3, **kw),
    lambda *a, **kw: hierarchical(*a, eps=1e-3, **kw),
    lambda *a, **kw: auto(*a, eps=1e-3, **kw),
    lambda *a, **kw: tropical(*a, **kw),
]


@pytest.mark.parametrize("method", METHODS)
def test_bad_input_raises_specific_errors(method):
    q, k, v = RNG.normal(size=(3, 4)), RNG.normal(size=(5, 4)), RNG.normal(size=(5, 2))
    with pytest.raises(ShapeError, match="head dims"):
        method(q, RNG.normal(size=(5, 3)), v)
    with pytest.raises(ShapeError, match="keys"):
        method(q, k, RNG.normal(size=(4, 2)))
    with pytest.raises(ShapeError, match="mask"):
        method(q, k, v, mask=np.ones((3, 4), dtype=bool))
    with pytest.raises(ShapeError, match="bias"):
        method(q, k, v, bias=np.zeros((2, 5)))
    bad = q.copy()
    bad[1, 2] = np.nan
    with pytest.raises(NaNError):
        method(bad, k, v)
    with pytest.raises(EmptyInputError):
        method(q, k[:0], v[:0])
    with pytest.raises(BackendMismatchError):
        method(torch.tensor(q), k, v)


@pytest.mark.parametrize("fn", [region_sparse, hierarchical, auto])
def test_bad_eps(fn):
    q, k, v = RNG.normal(size=(3, 4)), RNG.normal(size=(5, 4)), RNG.normal(size=(5, 2))
    with pytest.raises(ToleranceError):
        fn(q, k, v, eps=-1e-3)
    with pytest.raises(NaNError):
        fn(q, k, v, eps=float("nan"))


def test_result_is_immutable():
    q, k, v = RNG.normal(size=(3, 4)), RNG.normal(size=(50, 4)), RNG.normal(size=(50, 2))
    r = region_sparse(q, k, v, eps=0.01)
    assert isinstance(r, AttentionResult)
    with pytest.raises(Exception):
        r.bound = None
    with pytest.raises(ValueError):
        r.bound[0] = 0.0
    with pytest.raises(TypeError):
        r.counters["score_evals"] = 0


from conftest import gpu  # noqa: E402


@gpu
def test_cupy_inputs_dense_and_certified():  # pragma: no cover - needs a CUDA device
    import cupy

    q, k, v = RNG.normal(size=(4, 8)), RNG.normal(size=(300, 8)), RNG.normal(size=(300, 3))
    cq, ck, cv = (cupy.asarray(x) for x in (q, k, v))
    out = dense(cq, ck, cv, causal=True)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(out), naive(q, k, v, causal=True), atol=1e-12)
    r = region_sparse(cq, ck, cv, eps=1e-3, check=True)
    assert isinstance(r.output, cupy.ndarray)


@pytest.mark.parametrize("dts", [("float32", "float64", "float16"), ("bfloat16", "float32", "float32"),
                                 ("float16", "bfloat16", "float16")])
def test_torch_inputs_of_mixed_float_dtypes_take_the_common_one(dts):
    # torch's matmul refuses mixed dtypes: dense, auto and tropical raised a raw RuntimeError where the other
    # methods (and NumPy) promote; every method now computes in the common dtype of q, k and v
    from tropix.attention import screened

    rng = np.random.default_rng(3)
    arrs = [rng.normal(size=s) for s in ((8, 4), (40, 4), (40, 3))]
    q, k, v = (torch.tensor(a).to(getattr(torch, dt)) for a, dt in zip(arrs, dts))
    want = torch.promote_types(torch.promote_types(q.dtype, k.dtype), v.dtype)
    ref = dense(*(x.double().numpy() for x in (q, k, v)))  # the inputs' values, exactly, in float64
    out = dense(q, k, v)
    assert out.dtype == want
    tol = 1e-2 if want in (torch.float16, torch.bfloat16) else 1e-5
    assert np.allclose(out.double().numpy(), ref, atol=tol * np.abs(ref).max())
    assert tropical(q, k, v).dtype == want
    for f in (auto, region_sparse, screened, hierarchical):
        r = f(q, k, v, eps=1e-2, check=True)
        assert r.output.dtype == want
        err = np.linalg.norm(r.output.double().numpy() - ref, axis=-1)
        assert np.all(err <= np.asarray(r.bound) + r.reference_slack + 1e-12)
