"""Result objects print as one short summary line, never as an array dump (tropix._repr)."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tropix
from tropix import attention as A
from tropix import tn
from tropix import tropical as T
from tropix._repr import SMALL, compact_repr, summary


def _result_classes():
    """Every dataclass of the library that prints with compact_repr."""
    out = []
    for m in pkgutil.walk_packages(tropix.__path__, "tropix."):
        if m.name == "tropix.__main__":
            continue  # (runs the command line)
        mod = importlib.import_module(m.name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == m.name:
                if obj.__repr__ is compact_repr:
                    out.append(obj)
    return out


def test_result_classes_use_compact_repr():
    names = {c.__name__ for c in _result_classes()}
    for n in ("AttentionResult", "KeyTree", "KeyGeometry", "HeadTropicality", "TensorTrain", "TTMatrix",
              "TuckerDecomposition", "PEPS", "TropicalHypersurface", "NormalFan", "RegularSubdivision",
              "ArgmaxVertices", "SolveResult", "CompressedAttention", "Extraction", "AnalysisResult"):
        assert n in names
    for c in _result_classes():  # a named attribute must exist on the class (field or property)
        fields = {f.name for f in dataclasses.fields(c)}
        for n in getattr(c, "_repr_fields", ()):
            assert n in fields or isinstance(getattr(c, n, None), property), (c, n)


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, max_side=9),
                  elements=st.floats(allow_nan=True, allow_infinity=True)))
def test_summary_of_arrays(a):
    s = summary(a)
    assert "\n" not in s and len(s) <= 200
    if a.size > SMALL or a.ndim > 2:
        assert s == f"<numpy float64 {a.shape}>"
    else:  # in full: the values round-trip at the printed precision
        vals = np.array(ast.literal_eval(s.replace("nan", "None").replace("inf", "1e999")), dtype=float)
        assert vals.shape == a.shape
        np.testing.assert_allclose(vals, a, rtol=1e-5, equal_nan=True)


def test_summary_exact_and_containers():
    assert summary(np.array([[Fraction(1, 3), 2], [float("-inf"), 0]], dtype=object)) == "[[1/3, 2], [-inf, 0]]"
    assert summary(tuple(range(40))) == str(tuple(range(40)))  # numbers: in full
    assert summary(tuple(np.eye(3) for _ in range(9))).startswith("<tuple of 9: [[1, 0, 0],")
    assert summary({"a": 1, "b": np.zeros((100, 2))}) == "{'a': 1, 'b': <numpy float64 (100, 2)>}"
    assert summary(np.float32(0.1)) == "0.1" and summary(True) == "True" and summary(None) == "None"
    assert summary(summary) == "summary"


def test_attention_result_repr():
    rng = np.random.default_rng(0)
    q, k, v = 4 * rng.normal(size=(2, 300, 16)), rng.normal(size=(2, 500, 16)), rng.normal(size=(2, 500, 8))
    r = A.region_sparse(q, k, v, eps=1e-3)
    s = repr(r)
    assert len(s) < 400 and "\n" not in s
    assert s.startswith("AttentionResult(method='region_sparse', output=<numpy float64 (2, 300, 8)>, eps=0.001")
    assert f"max_relative_bound={float(r.relative_bound.max()):.6g}" in s
    assert f"mean_support={float(r.support.mean()):.6g}" in s
    t = repr(A.build_key_tree(k[0]))
    assert t.startswith("KeyTree(n=500, depth=") and len(t) < 200


def test_torch_arrays_are_summarised():
    import torch

    assert summary(torch.zeros(3, 4, dtype=torch.float32)) == "<torch float32 (3, 4)>"


def test_tn_and_tropical_reprs():
    x = np.random.default_rng(1).normal(size=(3,) * 6)
    t = tn.tt_svd(x, max_rank=2)
    assert repr(t) == f"TensorTrain(shape=(3, 3, 3, 3, 3, 3), ranks={t.ranks}, error_bound={t.error_bound:.6g}, " \
                      f"eps={summary(t.eps)})"
    f = T.TropicalPolynomial.parse("max(0, x + 1, y + 1, x + y)")
    H = f.hypersurface()
    assert repr(H) == ("TropicalHypersurface(polynomial=TropicalPolynomial('max(0, 1 + y, 1 + x, x + y)'), "
                       "f_vector=(2, 5), vertices=((-1, -1), (1, 1)), rays=((-1, 0), (0, -1), (0, 1), (1, 0)), "
                       "lineality=())")
    pts = np.random.default_rng(2).integers(0, 50, size=(200, 3))
    s = repr(T.argmax_vertices(pts))
    assert "status=<numpy" in s and len(s) < 400
