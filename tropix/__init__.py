"""tropix: tropical geometry, tensor networks and attention, with exact arithmetic and certified bounds.

Layers (a lower layer never imports a higher one)::

    tropix.tropical  <-  tropix.tn  <-  tropix.attention  <-  tropix.models, the `tropix` command

Examples
--------
>>> import tropix
>>> tropix.MaxPlus.add(2, 5), tropix.MinPlus.add(2, 5)
(5, 2)
"""

from . import errors
from .errors import *  # noqa: F401,F403
from .tropical.semiring import LogSemiring, MaxPlus, MinPlus, Real, Semiring, get_semiring
from . import tropical

__version__ = "0.1.0"

__all__ = ["MaxPlus", "MinPlus", "LogSemiring", "Real", "Semiring", "get_semiring", "tropical", "errors"]
__all__ += errors.__all__
