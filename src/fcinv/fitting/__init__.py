"""Classical baselines and the hybrid: least-squares fits of θ, ML-initialised refinement, export.

- :func:`fit_spectrum`: θ (with scale and flat background) fitted to a folded I(q, E) and its mask;
- :func:`refine`: the same, one local fit started from an ML estimate (``fcinv infer --refine``);
- :func:`fit_dispersion`: θ fitted to measured phonon energies at arbitrary q (triple-axis style);
- :func:`export_phonopy`: θ written as phonopy ``FORCE_CONSTANTS`` + ``POSCAR`` (+ ``phonopy_params.yaml``).

Every fit carries a Gaussian prior (default: the training domain; :mod:`fcinv.fitting.priors`)
that holds the directions the data leave open (named in the result), flags outliers, and is
checked for dynamical stability on a full-zone mesh; an unconverged or unstable result has
``success=False`` and a warning line. Dispersion points take branch labels L/T/T1/T2
(:mod:`fcinv.fitting.labels`). Uncertainties are the Laplace (data + prior) covariance at the
optimum: statistical, local, assuming the model is right (see :mod:`fcinv.fitting._base`).
"""

from fcinv.fitting._base import UNCERTAINTY_NOTE, FitError, FitResult, resolve_free
from fcinv.fitting.dispersion_fit import DispersionPoints, fit_dispersion, read_points
from fcinv.fitting.export import ExportResult, export_phonopy, pairs_to_phonopy
from fcinv.fitting.priors import Prior, build_prior, undetermined_directions
from fcinv.fitting.spectrum_fit import fit_spectrum, model_with_free, refine, spectrum_and_jacobian

__all__ = [
    "DispersionPoints",
    "ExportResult",
    "FitError",
    "FitResult",
    "Prior",
    "UNCERTAINTY_NOTE",
    "build_prior",
    "export_phonopy",
    "fit_dispersion",
    "fit_spectrum",
    "model_with_free",
    "pairs_to_phonopy",
    "read_points",
    "refine",
    "resolve_free",
    "spectrum_and_jacobian",
    "undetermined_directions",
]
