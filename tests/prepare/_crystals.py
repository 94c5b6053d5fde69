"""Small crystals and spring-model phonopy sets for the prepare tests (no DFT, no force fields)."""

from __future__ import annotations

import numpy as np

from fcinv.crystal import Crystal


def silicon() -> Crystal:
    """Diamond Si, a = 5.431 Å (2 atoms per primitive cell)."""
    a = 5.431
    lat = a / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    return Crystal.from_cell(lat, [[0, 0, 0], [0.25, 0.25, 0.25]], [14, 14], name="Si")


def spring_set(tmp, crystal: Crystal, springs: dict[str, float], *, supercell=(3, 3, 3), n_shells=2):
    """A phonopy set (POSCAR + FORCE_CONSTANTS in ``tmp``) of a central-force spring model."""
    from fcinv.fcspace import FCSpace
    from fcinv.prepare.stage1 import write_phonopy_set

    theta = FCSpace(crystal, n_shells=n_shells).central_force_theta(springs)
    return write_phonopy_set(tmp, crystal, theta, supercell, n_shells=n_shells), theta


def magnesium() -> Crystal:
    """hcp Mg, P6_3/mmc, a = 3.2094 Å, c = 5.2108 Å (2 atoms per primitive cell)."""
    a, c = 3.2094, 5.2108
    lat = np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]])
    return Crystal.from_cell(lat, [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]], [12, 12], name="Mg")


#: A central-force spring model of hcp Mg (eV/Å²): out-of-plane 1NN, in-plane 2NN, then weaker shells.
MG_SPRINGS = {"1NN": 1.6, "2NN": 1.5, "3NN": 0.1, "4NN": 0.05}
