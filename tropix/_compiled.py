"""Lazy import of the numba-compiled kernel modules (numba compiles them, or loads them from its cache, on
first use); every fast path falls back to its generic code when numba is missing."""

from __future__ import annotations

import functools
import importlib
from types import ModuleType


@functools.lru_cache(maxsize=None)
def compiled(module: str) -> ModuleType | None:
    """The kernel module ``module`` (a dotted name), imported once; None when numba cannot be imported.

    Examples
    --------
    >>> compiled("tropix.attention._kernels_numba").__name__
    'tropix.attention._kernels_numba'
    """
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
