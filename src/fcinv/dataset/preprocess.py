"""How a measured (or measurement-like) spectrum is presented to the models: one function.

A folded measurement I(q, E) differs from a training image in two ways that carry
no information about θ:

- **unmeasured pixels**: (q, E) bins that no detector pixel, zone or image covered
  are NaN in a fold (and in a physical-model spectrum with partial coverage);
- **the overall scale**: counts per monitor, sample mass, detector efficiency and
  the arbitrary units of the physical model multiply the whole image.

:func:`prepare_input` removes both the same way for every caller (dataset
generation of the measurement-like sets, training, evaluation, inference):

1. the spectrum is min–max scaled over its *measured* (finite) pixels to [0, 1],
   which removes the overall scale and a constant background offset;
2. unmeasured pixels are then set to 0, i.e. they look like empty background.

This is exactly :func:`fcinv.models.scaling.minmax_scale` (the checkpoints'
``input_scaling`` = ``minmax_per_spectrum``, ``nan`` = ``zero_after_scaling``),
so the shipped models (paper and physical) and ``FCPredictor`` already agree with
it; inference must keep calling this function (or ``minmax_scale``) on the raw
folded spectrum, NaN included, and must not zero-fill before scaling. A separate
mask channel was considered and not used: it would change the network input and
break the paper-convention checkpoints, while the zero fill lets the
domain-randomised training sets (coverage masks drawn per sample) teach the model
that a zero pixel may be unmeasured. :func:`measured_mask` returns the mask if a
caller needs it.
"""

from __future__ import annotations

import numpy as np

from fcinv.models.scaling import INPUT_SCALING, minmax_scale

#: The preprocessing recorded in datasets and checkpoints (same as the models' input scaling).
PREPROCESSING = dict(INPUT_SCALING)


def prepare_input(spectra: np.ndarray) -> np.ndarray:
    """Model input from raw spectra: min–max over measured pixels, unmeasured (NaN) → 0.

    Parameters
    ----------
    spectra
        Shape (n_q, n_E) or (B, n_q, n_E), any units; NaN marks unmeasured pixels.

    Returns
    -------
    numpy.ndarray
        Same shape, float32 in [0, 1]; 0 where unmeasured. A spectrum with no measured
        pixel (or a constant one) becomes all zeros.
    """
    return minmax_scale(spectra)


def measured_mask(spectra: np.ndarray) -> np.ndarray:
    """True where a pixel was measured (finite): same shape as ``spectra``, bool."""
    return np.isfinite(np.asarray(spectra, dtype=float))


__all__ = ["PREPROCESSING", "measured_mask", "prepare_input"]
