"""The Born–von Kármán forward model θ → I(q, E) (numpy/numba and torch backends)."""

from fcinv.forward.model import STABILITY_TOL_MEV, Broadening, ForwardModel, LinearDynamics, mesh_qpoints

__all__ = ["Broadening", "ForwardModel", "LinearDynamics", "STABILITY_TOL_MEV", "mesh_qpoints"]
