"""Report writing for the ``tropix`` command: a self-contained HTML page, PNG plots and a JSON file.

This package sits above :mod:`tropix.models`; it needs matplotlib (the ``plot`` extra).
"""

from .document import Report, Section, json_safe, write_json

__all__ = ["Report", "Section", "json_safe", "write_json"]
