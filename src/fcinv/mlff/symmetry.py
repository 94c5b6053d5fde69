"""Is a member's force-constant set symmetric under the crystal's space group, as fcinv reads it?

A finite-displacement set computed by phonopy on a cell is symmetric under that cell's space group by
construction (phonopy builds each row from the symmetry-irreducible displacements). A set that is
*not* symmetric under the space group of the crystal it is read with was computed on another cell
or setting: for example zincblende's two inversion twins (the second atom at 1/4 or at 3/4 of the
primitive diagonal), which spglib's standardisation can turn into each other. Read with the wrong
twin, every bond of the set points the wrong way, and its projection onto θ is meaningless (issue
13: GaAs's CHGNet member, computed before the cache key held the whole cell, was 79 % asymmetric).

:func:`symmetry_residual` measures it directly on the supercell, independent of the parameter space:

    r = max over the rotations g of ‖Φ(g i, g j) − R_g Φ(i, j) R_gᵀ‖ / ‖Φ‖

(Frobenius norms over every supercell pair, R_g the Cartesian rotation, one operation per distinct
rotation; the pure translations hold by the compact layout). A set phonopy made on this cell gives
r ≈ 1e-15; :data:`SYMMETRY_TOL` separates the two.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fcinv.crystal import Crystal

#: Largest relative symmetry residual of a set that is accepted as symmetric (measured: phonopy sets
#: of the six benchmark crystals on their own cells 1e-15 to 1e-13; GaAs read with its twin 0.6–0.75).
SYMMETRY_TOL = 1e-6


def symmetry_residual(crystal: Crystal, fc: np.ndarray, supercell: Any) -> float:
    """The relative symmetry residual r of a phonopy set on ``crystal`` (see the module docstring).

    Parameters
    ----------
    crystal
        The crystal the set is read with (its primitive cell is phonopy's unit cell).
    fc
        Shape (n_prim, n_super, 3, 3) (compact) or (n_super, n_super, 3, 3), eV/Å².
    supercell
        The supercell matrix (1, 3 or 9 integers) relative to the primitive cell.

    Returns
    -------
    float
        0 for an exactly symmetric set; of order 1 for a set computed on another setting.
    """
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc
    from phonopy.structure.symmetry import Symmetry

    from fcinv.mlff.phonons import phonopy_from_fc

    phonon = phonopy_from_fc(crystal, fc, supercell)
    full = np.asarray(phonon.force_constants, float)
    if full.shape[0] != full.shape[1]:
        full = compact_fc_to_full_fc(phonon.primitive, full)
    norm = float(np.linalg.norm(full))
    if norm == 0.0:
        return 0.0
    sc = phonon.supercell
    ds = Symmetry(sc, symprec=1e-5).dataset
    lat = np.asarray(sc.cell, float)  # rows are the supercell vectors
    pos = np.asarray(sc.scaled_positions, float)
    L = lat.T
    seen: list[np.ndarray] = []
    worst = 0.0
    for R, t in zip(ds.rotations, ds.translations):
        if any(np.array_equal(R, s) for s in seen):
            continue
        seen.append(R)
        moved = pos @ R.T + t
        d = moved[:, None, :] - pos[None, :, :]
        d -= np.round(d)
        perm = np.argmin(np.linalg.norm(d @ lat, axis=2), axis=1)
        Rc = L @ R @ np.linalg.inv(L)
        rotated = np.einsum("ab,ijbc,dc->ijad", Rc, full, Rc)
        worst = max(worst, float(np.linalg.norm(full[np.ix_(perm, perm)] - rotated)) / norm)
    return worst


def asymmetry_reason(residual: float) -> str:
    """The one-line reason a member with this residual is left out."""
    return (
        f"force constants not symmetric under the crystal's space group (relative residual {residual:.2g} "
        f"> {SYMMETRY_TOL:g}): computed on another cell or setting of the structure (e.g. the inversion "
        "twin); delete its cache file to recompute it on this cell"
    )


__all__ = ["SYMMETRY_TOL", "asymmetry_reason", "symmetry_residual"]
