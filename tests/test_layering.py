"""The layering of docs/architecture.md: tropical <- tn <- attention <- models <- report, cli.

A lower layer never imports a higher one, not even inside a function or by a module name given as a string
(the lazy loader ``tropix._compiled.compiled("tropix.attention._kernels_numba")``); the shared modules
(errors, _array, _repr, _compiled) import no layer at all.  Checked on the source, so that an import
added anywhere fails here rather than in a user's cycle.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "tropix"
RANK = {"tropical": 0, "tn": 1, "attention": 2, "models": 3, "report": 4, "cli": 4, "__main__": 4}
SHARED = {"errors", "_array", "_repr", "_compiled"}
_MODULE_NAME = re.compile(r"^(tropix(?:\.[A-Za-z_]+)+)$")


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> tuple[str, str]:
    """``(module, package)`` dotted names of a source file."""
    parts = ("tropix",) + path.relative_to(ROOT).with_suffix("").parts
    mod = ".".join(parts)
    if parts[-1] == "__init__":
        return mod[: -len(".__init__")], mod[: -len(".__init__")]
    return mod, ".".join(parts[:-1])


def _imports(path: Path) -> list[str]:
    """Every tropix module the file names: import statements anywhere in it (relative ones resolved) and
    string literals of dotted tropix module names."""
    src = path.read_text()
    _, pkg = _name(path)
    out = []
    tree = ast.parse(src)
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            out += _MODULE_NAME.findall(node.value)  # (a docstring's examples do not import)
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                if node.module is None:
                    out += [".".join(base + [a.name]) for a in node.names]
                else:
                    out.append(".".join(base + [node.module]))
            elif node.module:
                out.append(node.module)
    return [m for m in out if m == "tropix" or m.startswith("tropix.")]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_higher_layer(path):
    mod, _ = _name(path)
    if mod == "tropix":  # the package's facade re-exports every layer
        return
    me = _layer(mod)
    bad = []
    for target in _imports(path):
        other = _layer(target)
        if other is None:  # `import tropix` itself: the facade, i.e. every layer
            bad.append(target)
        elif me in SHARED and other not in SHARED:
            bad.append(target)
        elif me in RANK and other in RANK and RANK[other] > RANK[me]:
            bad.append(target)
    assert not bad, f"{mod} (layer {me!r}) imports {sorted(set(bad))}, above its layer"


def test_the_check_sees_every_kind_of_import(tmp_path, monkeypatch):
    # the parser itself: a function-level relative import and a string module name are found, a docstring's
    # example is not
    src = ROOT / "tn" / "_probe_for_the_layering_test.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (
        '"""compiled("tropix.report.document")"""\n'
        "def f():\n    from ..attention import dense\n    return compiled('tropix.models.extraction')\n"))
    assert _imports(src) == ["tropix.attention", "tropix.models.extraction"]
