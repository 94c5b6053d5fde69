"""The Born–von Kármán forward model θ → I(q, E) (numpy/numba and torch backends).

``ForwardModel``: the paper's convention (every mode weight 1). ``PhysicalModel``: the coherent
one-phonon intensity of the folded measurement (:mod:`fcinv.forward.physical`).
``make_forward(..., intensity="paper"|"physical")`` picks one.
"""

from fcinv.forward.model import STABILITY_TOL_MEV, Broadening, ForwardModel, LinearDynamics, mesh_qpoints
from fcinv.forward.physical import (
    Coverage,
    PhysicalModel,
    PhysicalModelError,
    coverage_for_run,
    coverage_from_fold,
    full_coverage,
    make_forward,
)

__all__ = [
    "Broadening",
    "Coverage",
    "ForwardModel",
    "LinearDynamics",
    "PhysicalModel",
    "PhysicalModelError",
    "STABILITY_TOL_MEV",
    "coverage_for_run",
    "coverage_from_fold",
    "full_coverage",
    "make_forward",
    "mesh_qpoints",
]
