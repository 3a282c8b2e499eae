"""The bias path of ``screened``, continued: the dense fallback rows with a bias (sliced from the bias rows,
against ``dense``) and the query-blocked float32 bias layout validation writes for the fused kernel (against
the NumPy reference bit for bit; odd query counts, chunks of queries, broadcast biases, ``-inf`` entries)."""

from __future__ import annotations

import numpy as np
import pytest

from tropix.attention import dense, screened
from tropix.attention._bf16 import available
from tropix.attention._inputs import prepare
from tropix.attention.region_sparse import _dense_rows, _HeadData

needs_bf16 = pytest.mark.skipif(not available(), reason="CPU without AVX512-BF16")
F32 = np.float32


def _bias(rng, shape, neginf=0.2):
    b = rng.normal(scale=2.0, size=shape)
    b[rng.random(shape) < neginf] = -np.inf
    return b


@pytest.mark.parametrize("shape", [(40, 700), (1, 700), (40, 1), (700,), (1, 1)])
@pytest.mark.parametrize("rows", ["all", "run", "scattered"])
def test_dense_rows_with_bias_match_dense(shape, rows):
    """The fallback rows with a bias alone (slices of its rows, views for consecutive queries) equal dense
    attention of those rows; the support is the number of keys each query sees."""
    rng = np.random.default_rng(len(shape) * 7 + shape[-1])
    q, k, v = rng.normal(size=(40, 8)), rng.normal(size=(700, 8)), rng.normal(size=(700, 3))
    b = _bias(rng, shape)
    if len(shape) == 2 and shape[0] == 40:
        b[5] = -np.inf  # a query that sees no key: output 0
    P = prepare(q, k, v, None, b, None, False)
    H = _HeadData(P, (P.q, P.k, P.v), ())
    r = {"all": np.arange(40), "run": np.arange(3, 20), "scattered": np.array([33, 2, 5, 17, 39])}[rows]
    o, sup = _dense_rows(H, r)
    ref = np.asarray(dense(q, k, v, bias=b))[r]
    assert np.allclose(o, ref, rtol=0, atol=1e-12)
    vis = np.isfinite(np.broadcast_to(b, (40, 700)))[r].sum(axis=1)
    assert np.array_equal(sup, vis)


def test_dense_rows_key_only_mask_and_general_mask():
    """A term of the key only (a padding mask and a per-key bias) and a general mask (the generic path)."""
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(30, 8)), rng.normal(size=(500, 8)), rng.normal(size=(500, 3))
    for mask, bias in ((rng.random(500) < 0.7, None), (rng.random(500) < 0.7, rng.normal(size=500)),
                       (rng.random((30, 500)) < 0.5, None)):
        P = prepare(q, k, v, mask, bias, None, False)
        H = _HeadData(P, (P.q, P.k, P.v), ())
        r = np.array([0, 4, 29, 7])
        o, sup = _dense_rows(H, r)
        ref = np.asarray(dense(q, k, v, mask=mask, bias=bias))[r]
        assert np.allclose(o, ref, rtol=0, atol=1e-12)
        assert np.array_equal(sup, np.broadcast_to(mask, (30, 500))[r].sum(axis=1))


@pytest.mark.parametrize("shape", [(77, 4096), (1, 4096), (77, 1)])
def test_screened_flat_biased_heads_fall_back_densely(shape):
    """Flat scores with a bias: every row goes to the dense fallback, certified (check=True), equal to dense."""
    rng = np.random.default_rng(shape[0] + shape[1])
    q, k, v = rng.normal(size=(77, 32)), rng.normal(size=(4096, 32)), rng.normal(size=(4096, 4))
    b = _bias(rng, shape, 0.05)
    r = screened(q, k, v, bias=b, check=True)
    assert r.counters["dense_fallback_rows"] > 60
    ref = np.asarray(dense(q, k, v, bias=b))
    assert np.all(np.linalg.norm(np.asarray(r.output) - ref, axis=1) <= r.bound + 1e-12)
