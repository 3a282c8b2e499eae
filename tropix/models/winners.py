"""Which keys of a head can ever be the strict argmax, for some query: vertices of conv(K), as a mask.

A thin layer over :func:`tropix.tropical.argmax_lp.argmax_vertices` (filter + HiGHS LPs with certified
witness queries), the one implementation of this question in tropix.  Key ``k_j`` is the *strict*
argmax of ``q·k`` (of ``b_j + q·k_j`` with biases) for some ``q`` exactly when it is a vertex of the
convex hull of the (lifted) keys and no other key equals it: a repeated key ties with its copy at every
query, so it never wins alone and is not counted (``argmax_vertices`` reports copies like their first
occurrence instead).  Keys on a face of the hull (``"boundary"``: they tie at best) and the never-seen
``"undecided"`` keys (positive LP margin whose witness failed certification) are not counted either, so
the mask is a certified under-approximation that is exact whenever no key is undecided.

Examples
--------
>>> import numpy as np
>>> K = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.25, 0.25], [1.0, 0.0]])
>>> keys_that_can_win(K).tolist()             # the interior point and the repeated vertex cannot win
[True, False, True, False, False]
"""

from __future__ import annotations

import numpy as np

from ..tropical.argmax_lp import argmax_vertices
from ..tropical.semiring import MaxPlus

__all__ = ["keys_that_can_win", "can_win_fraction"]


def keys_that_can_win(keys, biases=None, *, semiring=MaxPlus, tol: float = 1e-7, n_jobs: int = 1) -> np.ndarray:
    """Boolean mask: is key ``j`` the strict ⊕-argmax of ``b_j + q·k_j`` for some query ``q``?

    Parameters
    ----------
    keys : array (n, d)
    biases : array (n,), optional
    semiring : MaxPlus (default) or MinPlus
    tol, n_jobs
        Passed to :func:`~tropix.tropical.argmax_lp.argmax_vertices` (LP margin tolerance, LP threads).

    Examples
    --------
    >>> keys_that_can_win([[0], [1], [2]]).tolist()          # the middle key only ties on the segment
    [True, False, True]
    >>> keys_that_can_win([[0], [1], [2]], biases=[0, 2, 0]).tolist()
    [True, True, True]
    """
    R = argmax_vertices(keys, biases, semiring=semiring, tol=tol, n_jobs=n_jobs)
    first = np.asarray(R.duplicate_of)
    copies = np.bincount(first, minlength=first.size)[first] > 1
    return np.asarray(R.is_vertex, dtype=bool) & ~copies


def can_win_fraction(keys, biases=None, *, semiring=MaxPlus) -> float:
    """Fraction of the keys that can be the strict argmax for some query (:func:`keys_that_can_win`).

    Examples
    --------
    >>> can_win_fraction([[0, 0], [1, 0], [0, 1], [1, 1], [0.5, 0.5]])
    0.8
    """
    return float(np.mean(keys_that_can_win(keys, biases, semiring=semiring)))
