"""Texts to run a model on: the default corpus (Python's own documentation) and user text files.

The default corpus is :mod:`pydoc_data.topics`, the help texts of the Python language reference,
which ships with every CPython: real English, technical, reproducible on any machine.

Examples
--------
>>> texts = default_corpus(3)
>>> len(texts), all(len(t) > 100 for t in texts)
(3, True)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import EmptyInputError, ShapeError

__all__ = ["default_corpus", "read_texts", "split_passages"]


def split_passages(text: str, max_chars: int = 1200, min_chars: int = 40) -> list[str]:
    """Blank-line separated paragraphs, short ones merged with the next, long ones cut at ``max_chars``.

    Examples
    --------
    >>> split_passages("A first paragraph, long enough to stand alone.\\n\\nTiny.\\n\\nAnother one, long enough as well, really.")
    ['A first paragraph, long enough to stand alone.', 'Tiny. Another one, long enough as well, really.']
    """
    paras = [" ".join(p.split()) for p in text.replace("\r\n", "\n").split("\n\n")]
    paras = [p for p in paras if p]
    out, buf = [], ""
    for p in paras:
        buf = f"{buf} {p}".strip()
        if len(buf) >= min_chars:
            out.append(buf[:max_chars])
            buf = ""
    if buf:
        if out and len(out[-1]) + len(buf) + 1 <= max_chars:
            out[-1] = f"{out[-1]} {buf}"
        else:
            out.append(buf)
    return out


def default_corpus(n_texts: int = 16, max_chars: int = 1200) -> list[str]:
    """The first ``n_texts`` passages (one per topic, sorted by topic name) of :mod:`pydoc_data.topics`."""
    if n_texts < 1:
        raise ShapeError(f"n_texts must be at least 1, got {n_texts}")
    from pydoc_data.topics import topics

    texts = []
    for name in sorted(topics):
        # prose only: skip grammar productions and reStructuredText headings
        paras = [" ".join(p.split()) for p in topics[name].split("\n\n")]
        prose = [p for p in paras if p and "::=" not in p and "****" not in p and ">>>" not in p]
        text = ""
        for p in prose:
            if len(text) >= max_chars // 2:
                break
            text = f"{text} {p}".strip()
        if len(text) >= 200:
            texts.append(text[:max_chars])
        if len(texts) == n_texts:
            break
    return texts


def read_texts(path: str | Path, n_texts: int | None = None, max_chars: int = 1200) -> list[str]:
    """Passages of a UTF-8 text file (see :func:`split_passages`); at most ``n_texts`` of them.

    Raises
    ------
    FileNotFoundError
        No such file.
    EmptyInputError
        The file holds no text.
    """
    if n_texts is not None and n_texts < 1:  # (0 silently meant "all passages")
        raise ShapeError(f"n_texts must be at least 1, got {n_texts}")
    p = Path(path).expanduser()
    if p.is_dir():  # (was "text file DIR does not exist")
        raise IsADirectoryError(f"{p} is a directory, not a text file")
    if not p.is_file():
        raise FileNotFoundError(f"text file {p} does not exist")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise EmptyInputError(f"{p} is not UTF-8 text ({err.reason} at byte {err.start})") from err
    passages = split_passages(text, max_chars=max_chars)
    if not passages:
        raise EmptyInputError(f"the text file {p} is empty: give a file with at least one paragraph of text")
    return passages if n_texts is None else passages[:n_texts]
