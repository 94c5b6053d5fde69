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
