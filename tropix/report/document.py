"""An HTML report with embedded PNG figures and tables, and the JSON file of all its numbers.

The HTML file is self-contained (figures are embedded as base64 ``data:`` URIs, styles inline), so it
can be mailed or archived alone; the PNGs are also written beside it for papers and slides.  Numbers
go to JSON with non-finite values spelled ``"inf"``, ``"-inf"`` and ``null`` (NaN), which standard
JSON readers accept.

Examples
--------
>>> import tempfile, pathlib, json
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> r = Report("demo")
>>> r.add(Section("Numbers", text="Two rows.", table=[{"a": 1, "b": float("inf")}, {"a": 2, "b": 0.5}]))
>>> html = r.write(d / "report.html")
>>> "<table" in html.read_text()
True
>>> write_json(d / "r.json", {"x": [1.0, float("nan"), float("-inf")]})
>>> json.loads((d / "r.json").read_text())
{'x': [1.0, None, '-inf']}
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Section", "Report", "json_safe", "write_json", "format_number"]


def json_safe(x: Any) -> Any:
    """Convert NumPy scalars/arrays, tuples, dataclass dicts and non-finite floats to plain JSON values."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        f = float(x)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(x, Path):
        return str(x)
    return x


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` (after :func:`json_safe`) as indented, strictly valid JSON."""
    Path(path).write_text(json.dumps(json_safe(data), indent=1, allow_nan=False) + "\n", encoding="utf-8")


def format_number(v: Any) -> str:
    """Short human form of a number for tables (4 significant digits).

    Examples
    --------
    >>> format_number(0.000123456), format_number(12345.678), format_number(3), format_number(float("inf"))
    ('0.0001235', '1.235e+04', '3', 'inf')
    """
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}"
    return str(v)


@dataclass(frozen=True)
class Section:
    """One part of a report: a heading, paragraphs (plain text, blank-line separated), an optional table
    (a list of dicts with the same keys), and figures (PNG paths)."""

    title: str
    text: str = ""
    table: tuple | list = ()
    figures: tuple | list = ()
    code: str = ""


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;font-size:0.85em;margin:1em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f5f5f5;padding:0.5em}
"""


@dataclass
class Report:
    """Collects sections and writes them as one self-contained HTML file (see the module docstring)."""

    title: str
    sections: list = field(default_factory=list)

    def add(self, section: Section) -> None:
        self.sections.append(section)

    def render(self) -> str:
        parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"]
        for s in self.sections:
            parts.append(f"<h2>{html.escape(s.title)}</h2>")
            for para in [p for p in s.text.split("\n\n") if p.strip()]:
                parts.append(f"<p>{html.escape(para)}</p>")
            if s.code:
                parts.append(f"<pre>{html.escape(s.code)}</pre>")
            if s.table:
                keys = list(s.table[0].keys())
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(k))}</th>" for k in keys) + "</tr>")
                for row in s.table:
                    parts.append("<tr>" + "".join(f"<td>{html.escape(format_number(row.get(k, '')))}</td>"
                                                  for k in keys) + "</tr>")
                parts.append("</table>")
            for fig in s.figures:
                data = base64.b64encode(Path(fig).read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{html.escape(Path(fig).name)}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{html.escape(Path(fig).name)}</figcaption></figure>")
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.render(), encoding="utf-8")
        return path
