"""Alternative attention mechanisms (issue #7), each a backend-generic functional core.

=========================  ==========================================================================
module                     mechanism
=========================  ==========================================================================
``softmax``                scaled dot-product attention (baseline)
``force``                  force-directed attention: emitter/receptor displacement along ``μ_h``
``gravitational``          ``softmax(log m_j − log(‖q_i − k_j‖² + ε))`` (linear-normalised gravity)
``multiscale``             T discounted timescales, learned or fixed Laplace-like decoder
``grav_multiscale``        gravitational weights discounted per timescale
``powerlaw``               decoupled power-law positional field ``−α log(1 + β|i − j|)``
``resonant``               prime-set resonance (Jaccard, quaternion alignment, phase coherence)
``tropical_hilbert``       tropical attention: Hilbert projective metric, max-plus aggregation
``lra_data``               seeded ListOps generator and byte-level text loader (Long Range Arena)
=========================  ==========================================================================

The functional cores take arrays of any array-API library (NumPy, torch with autograd,
array-api-strict) and never import torch.  The torch ``nn.Module`` wrappers holding the learnable
parameters live in :mod:`tropix.attention.mechanisms.modules` and are loaded lazily on first access
(``tropix.attention.mechanisms.MECHANISMS`` / ``build_mechanism``).

Examples
--------
>>> import numpy as np
>>> from tropix.attention.mechanisms import gravitational_attention, softmax_attention
>>> q = k = v = np.eye(3)
>>> softmax_attention(q, k, v).shape, gravitational_attention(q, k, v).shape
((3, 3), (3, 3))
"""

from __future__ import annotations

from .force import ForceField, force_attention, force_field, force_scores
from .grav_multiscale import grav_multiscale_attention
from .gravitational import gravitational_attention, gravitational_logits
from .multiscale import discounted_logits, laplace_decoder, laplace_decoder_matrix, multiscale_attention
from .powerlaw import powerlaw_attention, powerlaw_bias
from .resonant import (
    SparsePrimeState,
    first_primes,
    resonance,
    resonant_attend,
    resonant_attention,
    resonant_scores,
    states_to_arrays,
)
from .softmax import softmax_attention
from .tropical_hilbert import dequantize, hilbert_distance, tropical_attention, tropical_linear, tropicalize

__all__ = [
    "softmax_attention",
    "force_attention",
    "force_scores",
    "force_field",
    "ForceField",
    "gravitational_attention",
    "gravitational_logits",
    "multiscale_attention",
    "discounted_logits",
    "laplace_decoder",
    "laplace_decoder_matrix",
    "grav_multiscale_attention",
    "powerlaw_attention",
    "powerlaw_bias",
    "SparsePrimeState",
    "first_primes",
    "resonance",
    "resonant_attend",
    "resonant_scores",
    "resonant_attention",
    "states_to_arrays",
    "tropical_attention",
    "hilbert_distance",
    "tropicalize",
    "dequantize",
    "tropical_linear",
]

_LAZY = {"MECHANISMS", "build_mechanism"}


def __getattr__(name):  # lazy torch wrappers
    if name in _LAZY:
        from . import modules

        return getattr(modules, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
