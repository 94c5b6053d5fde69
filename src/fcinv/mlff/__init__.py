"""Stage I: the universal force-field ensemble (optional extra ``[mlff]``).

- :mod:`fcinv.mlff.ensemble`: the member registry (shipped CHGNet and SevenNet weights,
  user weight files for MACE, M3GNet, MatterSim) and their ASE calculators.
- :mod:`fcinv.mlff.phonons`: phonopy finite-displacement force constants, frequencies at
  the high-symmetry points with mode labels, the stability test, lattice relaxation.
- :mod:`fcinv.mlff.runner`: the ensemble run with a resumable per-member cache, and the
  supercell/displacement convergence study.
- :mod:`fcinv.mlff.sensitivity`: reference member, ensemble bounds, sensitivity ranking.
- :mod:`fcinv.mlff.build`: writes the embedded ``ensemble.json``, ``reference_fc.hdf5`` and
  ``provenance.json`` of a material, and reads them back.

Importing this package needs neither chgnet nor sevenn; they are imported when a member's
calculator is built.
"""

from __future__ import annotations

from fcinv.mlff.ensemble import (
    SHIPPED_MEMBERS,
    Member,
    MemberError,
    resolve_member,
    resolve_members,
)
from fcinv.mlff.phonons import DEFAULT_DISPLACEMENT, DEFAULT_SUPERCELLS, PhononSettings

__all__ = [
    "DEFAULT_DISPLACEMENT",
    "DEFAULT_SUPERCELLS",
    "SHIPPED_MEMBERS",
    "Member",
    "MemberError",
    "PhononSettings",
    "resolve_member",
    "resolve_members",
]
