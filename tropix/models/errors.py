"""Errors of the model layer: a model that is not there, or one tropix cannot read.

Both subclass :class:`~tropix.errors.TropixError` (and the built-in exception a Python programmer
expects), so the ``tropix`` command turns them into one readable line instead of a traceback.

Examples
--------
>>> from tropix.models import load_model
>>> try:
...     load_model("/nonexistent/model")
... except ModelNotFoundError as err:
...     print(str(err).splitlines()[0])
no model at /nonexistent/model: give a directory with config.json and *.safetensors, a .safetensors file, or 'all-MiniLM-L6-v2'
"""

from __future__ import annotations

from ..errors import ModelNotFoundError, UnsupportedModelError

__all__ = ["ModelNotFoundError", "UnsupportedModelError"]
