"""Shared physics helpers for the tests: phonopy as the reference, and one frequency check."""

from __future__ import annotations

import numpy as np

from fcinv.units import THZ_TO_MEV

#: Supercells that hold the default 5-shell cutoffs (bonds shorter than half the shortest translation).
SUPERCELL = {"Ge": (4, 4, 4), "Nb": (5, 5, 5)}
#: Stable central-force spring models (eV/Å²) for tests that need no reference data.
SPRINGS = {"Ge": {"1NN": 6.0, "2NN": 0.6}, "Nb": {"1NN": 3.0, "2NN": 1.5}}


def check_frequencies(actual, expected, rtol=1e-6, floor_meV=1.0):
    """Relative agreement of phonon energies, with an absolute floor near zero (acoustic modes at Γ)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    err = np.abs(actual - expected) / np.maximum(np.abs(expected), floor_meV)
    assert err.max() < rtol, (
        f"max relative deviation {err.max():.2e} at {np.unravel_index(err.argmax(), err.shape)}"
    )


def phonopy_energies(crystal, fc, supercell, q_rlu):
    """phonopy's own phonon energies (meV) for a full FC array on ``crystal``'s primitive cell."""
    from phonopy import Phonopy

    ph = Phonopy(crystal.to_phonopy_atoms(), supercell_matrix=np.diag(supercell), primitive_matrix="P")
    ph.force_constants = fc
    ph.run_qpoints(crystal.rlu_to_prim_frac(q_rlu))
    return ph.qpoints.frequencies * THZ_TO_MEV


#: GaAs, zincblende (F-43m), a = 5.65 Å; masses in amu.
GAAS_A = 5.65
GAAS_MASSES = {31: 69.723, 33: 74.9216}


def gaas_spring_model(springs: dict[str, float], n_shells: int = 2, e_max: float = 40.0):
    """Zincblende GaAs (no inversion centre) with central-force ``springs`` (eV/Å²): the crystal, its
    ``n_shells`` FC space, the default grid to ``e_max`` meV and θ of the springs."""
    from fcinv.crystal import Crystal, default_grid
    from fcinv.fcspace import FCSpace

    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    numbers = [31] * 4 + [33] * 4
    crystal = Crystal.from_cell(
        np.eye(3) * GAAS_A,
        np.vstack([fcc, fcc + 0.25]),
        numbers,
        name="GaAs",
        masses=[GAAS_MASSES[z] for z in numbers],
    )
    space = FCSpace(crystal, n_shells=n_shells)
    grid = default_grid(crystal, e_max=e_max)
    return crystal, space, grid, space.central_force_theta(springs)
