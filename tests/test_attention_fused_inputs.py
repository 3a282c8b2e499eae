"""Validation with row norms in one pass (prepare's fused path for large NumPy keys / values)."""

import numpy as np
import pytest

from tropix.attention import dense, screened
from tropix.attention._inputs import _fused_norms, prepare
from tropix.attention._kernels_numba import rownorms_finite
from tropix.attention.dense import _rownorm
from tropix.errors import NaNError

N, D = 4096, 16  # 2^16 entries: the fused path


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(8, D)), rng.normal(size=(N, D)), rng.normal(size=(N, D))


def test_large_inputs_take_the_fused_path():
    q, k, v = _data()
    assert _fused_norms(k) and _fused_norms(v) and not _fused_norms(q)
    assert not _fused_norms(k[:, :8]) and not _fused_norms(k.astype(np.float32)) and not _fused_norms(k[:100])
    P = prepare(q, k, v)
    np.testing.assert_allclose(P.knorm, _rownorm(k), rtol=1e-14)
    np.testing.assert_allclose(P.vnorm, _rownorm(v), rtol=1e-14)


@pytest.mark.parametrize("scale", [1e-200, 1e-160, 1e-100, 1.0, 1e100, 1e160, 1e200])
def test_norms_at_extreme_scales_agree_with_rownorm(scale):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 7)) * scale
    x[3] = 0.0
    x[5, :] = 0.0
    x[5, 2] = scale  # a single entry
    out = np.empty(300)
    assert rownorms_finite(x, out)
    ref = _rownorm(x)
    np.testing.assert_allclose(out, ref, rtol=1e-14)
    assert out[3] == 0.0 and out[5] == pytest.approx(scale, rel=1e-15)


@pytest.mark.parametrize("which", ["k", "v"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_entries_raise_the_same_errors_as_small_inputs(which, bad):
    q, k, v = _data(2)
    big = {"k": k, "v": v}
    big[which] = big[which].copy()
    big[which][15, D - 1] = bad  # the same position: the messages name it
    small = {"k": k[:16].copy(), "v": v[:16].copy()}
    small[which][15, D - 1] = bad
    with pytest.raises(NaNError) as e_big:
        dense(q, big["k"], big["v"])
    with pytest.raises(NaNError) as e_small:
        dense(q, small["k"], small["v"])
    assert str(e_big.value) == str(e_small.value)
    with pytest.raises(NaNError):
        screened(q, big["k"], big["v"])


def test_screened_with_fused_norms_matches_dense():
    q, k, v = _data(3)
    r = screened(10 * q, k, v, eps=1e-3, check=True)
    assert np.all(r.relative_bound <= 1e-3)


def test_verify_sees_errors_whose_squares_underflow():
    # an error of 1e-170 against a bound of 1e-200: the squares underflow to 0 in a plain norm
    from tropix.attention.result import AttentionResult
    from tropix.errors import BoundViolationError

    out = np.zeros((2, 3))
    ref = np.zeros((2, 3))
    ref[1, 2] = 1e-170
    res = AttentionResult(out, np.full(2, 1e-200), 1e-3, np.ones(()), np.ones(2, dtype=np.int64), "dense", {}, (),
                          np.zeros(2))
    with pytest.raises(BoundViolationError):
        res.verify(ref)
    err = AttentionResult(out, np.full(2, 2e-170), 1e-3, np.ones(()), np.ones(2, dtype=np.int64), "dense", {}, (),
                          np.zeros(2)).verify(ref)
    assert err[1] == pytest.approx(1e-170, rel=1e-15) and err[0] == 0.0


def test_validation_fingerprint_equals_key_hash_and_the_tree_checks_it():
    # the fingerprint validation computes on the way equals key_hash (integer sums: any order), and a
    # prebuilt tree accepts exactly the keys it was built from
    from tropix.attention import build_key_tree, region_sparse
    from tropix.attention._inputs import key_hash
    from tropix.errors import ShapeError

    q, k, v = _data(2)
    k[5, 3] = -0.0
    k[7] = 1e-300
    assert prepare(q, k, v).khash is None  # (only asked for with a prebuilt tree)
    P = prepare(q, k, v, hash_keys=True)
    assert P.khash is not None and P.khash == key_hash(k) == key_hash(k.copy())
    tree = build_key_tree(k)
    assert tree.fingerprint == P.khash and tree.matches(k) and tree.matches(k, P.khash)
    r = region_sparse(q, k, v, eps=1e-3, tree=tree, check=True)
    assert r.bound.shape == (8,)
    k2 = k.copy()
    k2[100, 0] = np.nextafter(k2[100, 0], np.inf)  # one bit
    assert key_hash(k2) != P.khash and not tree.matches(k2)
    with pytest.raises(ShapeError, match="fingerprint"):
        region_sparse(q, k2, v, eps=1e-3, tree=tree)
    k3 = k.copy()
    k3[[3, 4]] = k3[[4, 3]]  # two keys swapped
    assert not tree.matches(k3)


def test_key_hash_numpy_formula_equals_the_kernel():
    from tropix.attention._inputs import _finish_hash, hash_consts, key_hash

    rng = np.random.default_rng(3)
    for n, d in ((1, 1), (7, 3), (1000, 64), (333, 33)):
        k = rng.normal(size=(n, d)) * 10.0 ** rng.uniform(-300, 300, size=(n, 1))
        c = hash_consts(d)
        with np.errstate(over="ignore"):
            rows = (k.view(np.uint64) * c).sum(axis=1, dtype=np.uint64)
            h = (rows * (np.arange(n, dtype=np.uint64) * np.uint64(2) + np.uint64(1))).sum(dtype=np.uint64)
        assert _finish_hash(h, k.shape) == key_hash(k)


@pytest.mark.parametrize("bad", [None, np.nan, np.inf])
def test_norms_on_request_from_smaller_inputs(bad):
    """prepare(norms=True) (auto's validation) takes the fused pass from 2^12 entries: the norms of _rownorm,
    the same errors as the NumPy check for a non-finite entry, and auto's dense result certified with them."""
    from tropix.attention import auto

    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(64, 32)), rng.normal(size=(1024, 32)), rng.normal(size=(1024, 16))
    assert not _fused_norms(k) and _fused_norms(k, 2**12) and not _fused_norms(k[:100], 2**12)
    if bad is None:
        P = prepare(q, k, v, norms=True)
        np.testing.assert_allclose(P.knorm, _rownorm(k), rtol=1e-14)
        np.testing.assert_allclose(P.vnorm, _rownorm(v), rtol=1e-14)
        assert prepare(q, k, v).knorm is None
        r = auto(q, k, v, eps=1e-3, check=True)
        assert r.method == "dense"
        return
    k = k.copy()
    k[100, 3] = bad
    with pytest.raises(NaNError) as e_req:
        prepare(q, k, v, norms=True)
    with pytest.raises(NaNError) as e_np:
        prepare(q, k, v)
    assert str(e_req.value) == str(e_np.value)


def test_count_last_matches_numpy():
    """The compiled count of True entries along the last axis (visible keys per query) equals NumPy's, for
    2-D and batched masks, strided views, and empty rows."""
    from tropix.attention._inputs import count_last

    rng = np.random.default_rng(6)
    for shape in ((512, 8192), (3, 4, 9000), (2, 70000), (9, 0), (1, 1)):
        m = rng.random(shape) < 0.7
        assert np.array_equal(count_last(m), np.count_nonzero(m, axis=-1))
    m = (rng.random((600, 300)) < 0.5)[:, ::2]
    assert np.array_equal(count_last(m), np.count_nonzero(m, axis=-1))
