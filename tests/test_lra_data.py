"""Long Range Arena data: ListOps labels on hand-made expressions, the generator's specification, and the
byte-level text loader on small generated text."""

from __future__ import annotations

import json
import random
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tropix
from tropix.attention.mechanisms import lra_data as D


@pytest.mark.parametrize(
    "expr, label",
    [
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MIN 2 9 [MAX 4 7 ] 0 ]", 0),
        ("[MED 1 2 ]", 1),  # median 1.5, rounded down like int(np.median)
        ("[MED 1 2 3 4 ]", 2),  # 2.5 -> 2
        ("[MED 9 0 5 ]", 5),
        ("[SM 9 9 7 ]", 5),  # 25 mod 10
        ("[SM 5 5 ]", 0),
        ("[SM [MAX 3 8 ] [MED 1 4 9 ] 2 ]", 4),  # 8 + 4 + 2 = 14
        ("[MIN [SM 9 9 ] [MED [MAX 1 2 ] 7 3 ] ]", 3),  # min(8, med(2, 7, 3) = 3)
        ("( ( ( ( [MAX 2 ) 9 ) [MIN 4 7 ] ) 0 ) ]", 9),  # the LRA string form, parentheses ignored
        ("[MAX 2 9 X", 9),  # the LRA pipeline's X for ]
        ("7", 7),
    ],
)
def test_listops_hand_made_labels(expr, label):
    assert D.listops_value(expr) == label


@pytest.mark.parametrize("bad", ["", "[MAX 1 2", "[MAX ]", "1 2", "[MAX 1 2 ] ]", "[POW 1 2 ]", "[MAX 12 ]",
                                 "] 1", "[MAX 1 ] 3"])
def test_listops_parse_errors(bad):
    with pytest.raises(tropix.ParseError):
        D.listops_value(bad)


def _independent_value(tree):
    """Recursive evaluation straight from the specification (median floored)."""
    if isinstance(tree, int):
        return tree
    op, children = tree
    vals = [_independent_value(c) for c in children]
    if op == "[MIN":
        return min(vals)
    if op == "[MAX":
        return max(vals)
    if op == "[SM":
        return sum(vals) % 10
    return int(statistics.median(vals) // 1)


def _shape(tree, depth=1):
    """(max depth, list of argument counts) of a tree."""
    if isinstance(tree, int):
        return depth, []
    counts = [len(tree[1])]
    deepest = depth
    for c in tree[1]:
        d, cs = _shape(c, depth + 1)
        deepest = max(deepest, d)
        counts += cs
    return deepest, counts


@settings(max_examples=40)
@given(st.integers(0, 2**31))
def test_generated_trees_follow_the_specification(seed):
    tree = D.generate_tree(random.Random(seed))
    depth, counts = _shape(tree)
    assert depth <= 10
    assert all(2 <= c <= 10 for c in counts)
    toks = D.tree_tokens(tree)
    # length = 1 per leaf, 2 + children per operator
    assert len(toks) == sum(1 for t in toks if t.isdigit()) + 2 * len(counts)
    assert D.tree_value(tree) == _independent_value(tree)


def test_generate_listops_lengths_labels_dedup_and_seed():
    ex = D.generate_listops(25, seed=3, min_length=20, max_length=60)
    assert len({s for s, _ in ex}) == 25
    assert all(20 < len(s.split()) < 60 for s, _ in ex)
    assert ex == D.generate_listops(25, seed=3, min_length=20, max_length=60)
    assert ex != D.generate_listops(25, seed=4, min_length=20, max_length=60)
    # labels agree with a parser-free evaluation: rebuild the tree from the tokens with a stack
    for s, y in ex:
        stack = [[]]
        for t in s.split():
            if t.startswith("["):
                stack.append([t])
            elif t == "]":
                node = stack.pop()
                stack[-1].append((node[0], node[1:]))
            else:
                stack[-1].append(int(t))
        assert _independent_value(stack[0][0]) == y
    # exclusion keeps validation/test examples out of training
    ex2 = D.generate_listops(5, seed=3, min_length=20, max_length=60, exclude=[s for s, _ in ex[:5]])
    assert not {s for s, _ in ex2} & {s for s, _ in ex[:5]}


def test_generate_listops_lra_lengths():
    ex = D.generate_listops(4, seed=0)
    assert all(500 < len(s.split()) < 2000 for s, _ in ex)
    enc = D.encode_listops(ex, 2000)
    assert enc.tokens.shape == (4, 2000) and set(np.unique(enc.tokens)) <= set(range(len(D.LISTOPS_VOCAB)))
    for row, (s, _), n in zip(enc.tokens, ex, enc.lengths):
        assert [D.LISTOPS_VOCAB[i] for i in row[:n]] == s.split()
        assert np.all(row[n:] == 0)
    with pytest.raises(tropix.ToleranceError):
        D.generate_listops(1, min_length=10, max_length=11)


def test_encode_bytes_roundtrip_and_padding():
    text = "Ünïcode review — great!"
    ids = D.encode_bytes(text, 64)
    raw = text.encode("utf-8")
    assert ids.shape == (64,) and ids.max() <= 256 and ids.min() >= 0
    assert bytes((ids[: len(raw)] - 1).astype(np.uint8).tolist()) == raw
    assert np.all(ids[len(raw):] == 0)
    assert bytes((D.encode_bytes(text, 5) - 1).astype(np.uint8).tolist()) == raw[:5]
    with pytest.raises(tropix.ShapeError):
        D.encode_bytes("x", 0)


def test_load_text_dataset_layouts(tmp_path):
    rng = random.Random(0)
    words = ["good", "bad", "plot", "actor", "é", "boring", "great"]
    docs = [(" ".join(rng.choice(words) for _ in range(rng.randint(3, 30))), rng.randint(0, 1)) for _ in range(12)]
    # aclImdb layout
    for split in ("train", "test"):
        for i, (t, y) in enumerate(docs):
            d = tmp_path / "aclImdb" / split / ("pos" if y else "neg")
            d.mkdir(parents=True, exist_ok=True)
            (d / f"{i}_7.txt").write_text(t, encoding="utf-8")
    got = D.load_text_dataset(tmp_path / "aclImdb", "test")
    assert sorted(got) == sorted(docs)
    # TSV and JSONL
    (tmp_path / "d.tsv").write_text("".join(f"{y}\t{t}\n" for t, y in docs), encoding="utf-8")
    assert D.load_text_dataset(tmp_path / "d.tsv") == docs
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in docs))
    assert D.load_text_dataset(tmp_path / "d.jsonl") == docs
    X, y = D.encode_text_dataset(docs, 40)
    assert X.shape == (12, 40) and y.tolist() == [lab for _, lab in docs]
    assert all(bytes((X[i][X[i] > 0] - 1).astype(np.uint8).tolist()) == t.encode()[:40] for i, (t, _) in enumerate(docs))
    (tmp_path / "bad.tsv").write_text("pos\ttext\n")
    with pytest.raises(tropix.ParseError):
        D.load_text_dataset(tmp_path / "bad.tsv")
    with pytest.raises(tropix.ParseError):
        D.load_text_dataset(tmp_path / "d.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(tropix.EmptyInputError):
        D.load_text_dataset(tmp_path / "empty")
