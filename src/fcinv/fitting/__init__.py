"""Classical baselines and the hybrid: least-squares fits of θ, ML-initialised refinement, export.

- :func:`fit_spectrum`: θ (with scale and flat background) fitted to a folded I(q, E) and its mask;
- :func:`refine`: the same, one local fit started from an ML estimate (``fcinv infer --refine``);
- :func:`fit_dispersion`: θ fitted to measured phonon energies at arbitrary q (triple-axis style);
- :func:`export_phonopy`: θ written as phonopy ``FORCE_CONSTANTS`` + ``POSCAR`` (+ ``phonopy_params.yaml``).

Uncertainties are the linearised s²(JᵀJ)⁻¹ at the optimum: statistical, local, assuming the
model is right (see :mod:`fcinv.fitting._base`).
"""

from fcinv.fitting._base import UNCERTAINTY_NOTE, FitError, FitResult, resolve_free
from fcinv.fitting.dispersion_fit import DispersionPoints, fit_dispersion, read_points
from fcinv.fitting.export import ExportResult, export_phonopy, pairs_to_phonopy
from fcinv.fitting.spectrum_fit import fit_spectrum, model_with_free, refine, spectrum_and_jacobian

__all__ = [
    "DispersionPoints",
    "ExportResult",
    "FitError",
    "FitResult",
    "UNCERTAINTY_NOTE",
    "export_phonopy",
    "fit_dispersion",
    "fit_spectrum",
    "model_with_free",
    "pairs_to_phonopy",
    "read_points",
    "refine",
    "resolve_free",
    "spectrum_and_jacobian",
]
