"""Long Range Arena data without downloads: a seeded ListOps generator and a byte-level text loader.

**ListOps** (Nangia & Bowman 2018, as generated for LRA by ``lra_benchmarks/data/listops.py``),
reimplemented from its published description:

* operators ``[MIN``, ``[MAX``, ``[MED`` (median, rounded down as ``int(np.median(...))``), ``[SM`` (sum mod 10),
  each closed by ``]``; values 0–9; 10 classes;
* a tree at depth ``< max_depth`` (10) is a leaf with probability 0.75, otherwise an operator (uniform)
  with ``randint(2, max_args)`` (2–10) children of depth + 1; at ``max_depth`` it is a leaf;
* sequence length = number of tokens (operator, children, closing bracket); trees are kept when
  ``min_length < length < max_length`` (500 and 2000 for LRA, both strict) and deduplicated.

The LRA script uses the unseeded ``random`` module and a set's iteration order; here a seeded
``random.Random`` and generation order make every split reproducible.  The LRA pipeline deletes the
parentheses of its string form and renames ``]`` to ``X``; the tokens here are the same symbols
without parentheses (``]`` kept), so the token sequences are identical up to that renaming.

**Byte-level text classification** (LRA "Text", IMDb): UTF-8 bytes with id ``byte + 1``, 0 = padding,
vocabulary 257, truncated/padded to ``max_length`` (LRA's paper uses 4K, its code 1000; 4000 is the
recommended choice).  IMDb cannot be downloaded here: :func:`load_text_dataset` reads a local copy
(``aclImdb`` layout, TSV or JSONL) when one is given.

Nothing here imports torch; arrays are NumPy.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..._repr import compact_repr
from ...errors import ArgumentTypeError, EmptyInputError, ParseError, ShapeError, ToleranceError
from ...tropical._args import check_int

__all__ = [
    "OPERATORS",
    "LISTOPS_VOCAB",
    "ListOpsSplit",
    "generate_tree",
    "tree_tokens",
    "tree_value",
    "listops_value",
    "generate_listops",
    "encode_listops",
    "encode_bytes",
    "load_text_dataset",
    "encode_text_dataset",
]

OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
END = "]"
#: token vocabulary: 0 = padding, then the operators, the closing bracket and the digits
LISTOPS_VOCAB = ("<pad>",) + OPERATORS + (END,) + tuple(str(d) for d in range(10))
_TOKEN_ID = {t: i for i, t in enumerate(LISTOPS_VOCAB)}


def generate_tree(rng: random.Random, depth: int = 1, *, max_depth: int = 10, max_args: int = 10):
    """One random ListOps tree: an ``int`` leaf or ``(operator, [children])``.

    Examples
    --------
    >>> import random
    >>> t = generate_tree(random.Random(3))
    >>> tree_value(t) in range(10)
    True
    """
    r = rng.random() if depth < max_depth else 1.0
    if r > 0.25:
        return rng.randint(0, 9)
    n_args = rng.randint(2, max_args)
    op = rng.choice(OPERATORS)
    return (op, [generate_tree(rng, depth + 1, max_depth=max_depth, max_args=max_args) for _ in range(n_args)])


def tree_tokens(tree) -> list[str]:
    """The token sequence of a tree (iterative, so deep trees are fine).

    Examples
    --------
    >>> " ".join(tree_tokens(("[MAX", [2, ("[MIN", [4, 7]), 0])))
    '[MAX 2 [MIN 4 7 ] 0 ]'
    """
    out: list[str] = []
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, str):
            out.append(t)
        elif isinstance(t, int):
            out.append(str(t))
        else:
            op, children = t
            out.append(op)
            stack.append(END)
            stack.extend(reversed(children))
    return out


def _apply(op: str, args: Sequence[int]) -> int:
    if op == "[MIN":
        return min(args)
    if op == "[MAX":
        return max(args)
    if op == "[MED":
        return int(np.median(np.asarray(args)))
    if op == "[SM":
        return sum(args) % 10
    raise ParseError(f"unknown ListOps operator {op!r}")


def tree_value(tree) -> int:
    """The label (0–9) of a tree.

    Examples
    --------
    >>> tree_value(("[SM", [5, 6, ("[MED", [1, 2, 8, 9])]))   # (5 + 6 + 5) mod 10
    6
    """
    return listops_value(" ".join(tree_tokens(tree)))


def listops_value(expression: str) -> int:
    """Evaluate a ListOps expression given as text (parentheses ignored; ``X`` accepted for ``]``).

    Parsed with an explicit stack (no ``eval``); malformed input raises :class:`~tropix.errors.ParseError`.

    Examples
    --------
    >>> listops_value("[MAX 2 9 [MIN 4 7 ] 0 ]")
    9
    >>> listops_value("( ( ( [MED 1 ) 2 ) 4 ) ]")     # the LRA string form: median of 1 2 4
    2
    >>> listops_value("[MED 1 2 ]"), listops_value("[SM 9 9 7 ]")
    (1, 5)
    """
    tokens = expression.replace("(", " ").replace(")", " ").split()
    if not tokens:
        raise ParseError("empty ListOps expression")
    stack: list[tuple[str, list[int]]] = []
    result: int | None = None
    for pos, tok in enumerate(tokens):
        if result is not None:
            raise ParseError(f"trailing token {tok!r} at position {pos} after a complete expression")
        if tok in OPERATORS:
            stack.append((tok, []))
        elif tok in (END, "X"):
            if not stack:
                raise ParseError(f"unmatched {tok!r} at position {pos}")
            op, args = stack.pop()
            if not args:
                raise ParseError(f"operator {op} at position {pos} has no arguments")
            val = _apply(op, args)
            if stack:
                stack[-1][1].append(val)
            else:
                result = val
        elif len(tok) == 1 and tok in "0123456789":  # (str.isdigit accepts '²', which int() rejects)
            if stack:
                stack[-1][1].append(int(tok))
            elif len(tokens) == 1:
                result = int(tok)
            else:
                raise ParseError(f"value {tok} at position {pos} is outside any operator")
        else:
            raise ParseError(f"unknown token {tok!r} at position {pos}")
    if stack or result is None:
        raise ParseError(f"unclosed operator {stack[-1][0] if stack else ''} at the end of the expression")
    return result


@dataclass(frozen=True)
class ListOpsSplit:
    """Encoded ListOps examples: ``tokens`` ``(N, max_length)`` int64 (0 = pad), ``labels`` ``(N,)``, ``lengths``."""

    tokens: np.ndarray
    labels: np.ndarray
    lengths: np.ndarray
    __repr__ = compact_repr


def generate_listops(n: int, *, seed: int = 0, min_length: int = 500, max_length: int = 2000, max_depth: int = 10,
                     max_args: int = 10, exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
    """``n`` distinct ListOps examples ``(expression, label)`` with ``min_length < length < max_length``.

    Examples
    --------
    >>> ex = generate_listops(3, seed=1, min_length=10, max_length=40)
    >>> all(10 < len(s.split()) < 40 and listops_value(s) == y for s, y in ex)
    True
    >>> ex == generate_listops(3, seed=1, min_length=10, max_length=40)
    True
    """
    if n < 0 or min_length >= max_length - 1:
        raise ToleranceError(f"need n >= 0 and min_length + 1 < max_length, got {n}, {min_length}, {max_length}")
    max_depth, max_args = check_int(max_depth, "max_depth", minimum=1), check_int(max_args, "max_args", minimum=2)
    longest = 1  # the most tokens a tree can have: a leaf at max_depth, above it 2 + max_args children
    for _ in range(max_depth - 1):
        longest = 2 + max_args * longest
    if longest <= min_length:  # (the loop below would never end)
        raise ToleranceError(f"no ListOps tree of depth <= {max_depth} with <= {max_args} arguments has more than "
                             f"{min_length} tokens (at most {longest})")
    rng = random.Random(seed)
    seen = set(exclude)
    out: list[tuple[str, int]] = []
    misses = 0
    while len(out) < n:
        if misses > 200_000:  # (a window so narrow, or so few trees fit, that new distinct ones stopped coming)
            raise ToleranceError(f"only {len(out)} of {n} distinct examples found with {min_length} < length < "
                                 f"{max_length}, depth <= {max_depth}, <= {max_args} arguments: widen the window")
        tree = generate_tree(rng, 1, max_depth=max_depth, max_args=max_args)
        toks = tree_tokens(tree)
        misses += 1
        if not (min_length < len(toks) < max_length):
            continue
        s = " ".join(toks)
        if s in seen:
            continue
        seen.add(s)
        out.append((s, listops_value(s)))
        misses = 0
    return out


def encode_listops(examples: Sequence[tuple[str, int]], max_length: int) -> ListOpsSplit:
    """Token ids padded/truncated to ``max_length`` (ids from :data:`LISTOPS_VOCAB`).

    Examples
    --------
    >>> encode_listops([("[MAX 2 9 ]", 9)], 6).tokens.tolist()
    [[2, 8, 15, 5, 0, 0]]
    """
    if not examples:
        raise EmptyInputError("no ListOps examples to encode")
    if max_length <= 0:
        raise ShapeError(f"max_length must be positive, got {max_length}")
    T = np.zeros((len(examples), max_length), dtype=np.int64)
    y = np.zeros(len(examples), dtype=np.int64)
    L = np.zeros(len(examples), dtype=np.int64)
    for i, (s, label) in enumerate(examples):
        # the LRA string form is accepted: parentheses dropped, "X" read as "]" (its "(" was a raw KeyError)
        toks = s.replace("(", " ").replace(")", " ").split()
        bad = [t for t in toks if t != "X" and t not in _TOKEN_ID]
        if bad:
            raise ParseError(f"example {i}: unknown ListOps token {bad[0]!r}")
        ids = [_TOKEN_ID[END if t == "X" else t] for t in toks][:max_length]
        T[i, : len(ids)] = ids
        y[i] = label
        L[i] = len(ids)
    return ListOpsSplit(T, y, L)


def encode_bytes(text: str | bytes, max_length: int) -> np.ndarray:
    """UTF-8 byte ids (``byte + 1``; 0 = padding) truncated/padded to ``max_length``.

    Examples
    --------
    >>> encode_bytes("hé", 5).tolist()      # 'h' = 104, 'é' = 0xC3 0xA9
    [105, 196, 170, 0, 0]
    """
    if max_length <= 0:
        raise ShapeError(f"max_length must be positive, got {max_length}")
    if not isinstance(text, (str, bytes, bytearray, memoryview)):  # (bytes(5) is five NUL bytes)
        raise ArgumentTypeError(f"text must be a str or bytes, got {type(text).__name__}")
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    ids = np.frombuffer(data[:max_length], dtype=np.uint8).astype(np.int64) + 1
    out = np.zeros(max_length, dtype=np.int64)
    out[: ids.size] = ids
    return out


def _read_utf8(p: Path) -> str:
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:  # (was a raw UnicodeDecodeError)
        raise ParseError(f"{p} is not UTF-8 text ({err.reason} at byte {err.start})") from None


def load_text_dataset(path: str | Path, split: str = "train") -> list[tuple[str, int]]:
    """Read labelled texts from a local copy: an ``aclImdb`` directory (``<split>/pos``, ``<split>/neg``), a
    ``.tsv`` file (``label<TAB>text``) or a ``.jsonl`` file (``{"text": ..., "label": ...}``).

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "t.tsv")
    >>> _ = open(p, "w").write("1\\tgreat film\\n0\\tdull\\n")
    >>> load_text_dataset(p)
    [('great film', 1), ('dull', 0)]
    """
    p = Path(path)
    out: list[tuple[str, int]] = []
    if p.is_dir():
        root = p / split if (p / split).is_dir() else p
        for label, sub in ((1, "pos"), (0, "neg")):
            for f in sorted((root / sub).glob("*.txt")):
                out.append((f.read_text(encoding="utf-8", errors="replace"), label))
    elif p.suffix == ".tsv":
        for ln, line in enumerate(_read_utf8(p).splitlines()):
            if not line.strip():
                continue
            lab, _, text = line.partition("\t")
            try:
                out.append((text, int(lab)))
            except ValueError:
                raise ParseError(f"{p}:{ln + 1}: label {lab!r} is not an integer") from None
    elif p.suffix == ".jsonl":
        for ln, line in enumerate(_read_utf8(p).splitlines()):
            if line.strip():
                try:  # (a malformed line was a raw JSONDecodeError / KeyError / TypeError)
                    rec = json.loads(line)
                    out.append((str(rec["text"]), int(rec["label"])))
                except (ValueError, KeyError, TypeError) as err:
                    raise ParseError(f"{p}:{ln + 1}: expected {{\"text\": ..., \"label\": <int>}} ({err})") from None
    else:
        raise ParseError(f"{p}: expected an aclImdb directory, a .tsv or a .jsonl file")
    if not out:
        raise EmptyInputError(f"no labelled texts found under {p}")
    return out


def encode_text_dataset(pairs: Sequence[tuple[str, int]], max_length: int = 4000):
    """``(tokens (N, max_length) int64, labels (N,) int64)`` of byte-encoded texts.

    Examples
    --------
    >>> X, y = encode_text_dataset([("ab", 1), ("c", 0)], 3)
    >>> X.tolist(), y.tolist()
    ([[98, 99, 0], [100, 0, 0]], [1, 0])
    """
    if not pairs:
        raise EmptyInputError("no texts to encode")
    X = np.stack([encode_bytes(t, max_length) for t, _ in pairs])
    y = np.asarray([int(lab) for _, lab in pairs], dtype=np.int64)
    return X, y
