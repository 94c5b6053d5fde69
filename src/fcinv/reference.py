"""Embedded Stage I references: the force-field ensemble's θ, bounds, ranking and D_ref.

Each embedded material folder (``fcinv/data/<Mat>/``) holds, produced by
``fcinv reference <Mat>`` (the ``[mlff]`` extra):

- ``ensemble.json``: per-member θ and frequencies, the ensemble bounds, the
  sensitivity ranking, the sampled parameters (FC0…FC{k-1}) and the reference member;
- ``reference_fc.hdf5``: the reference member's full force constants (phonopy compact
  layout) with the unit cell and supercell they belong to;
- ``provenance.json``: models, versions, settings and the command.

This module only reads them, so the core runs without the force-field packages.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from fcinv.crystal import Crystal, material_dir, material_info
from fcinv.errors import DataError
from fcinv.fcspace import FCSpace, PairFC, pairs_from_phonopy

log = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"
REFERENCE_FC_FILE = "reference_fc.hdf5"
PROVENANCE_FILE = "provenance.json"


def read_reference_fc(path: str | Path) -> dict:
    """Read a ``reference_fc.hdf5``: force constants, p2s map, supercell and unit cell.

    Returns
    -------
    dict
        ``force_constants`` (n_prim, n_super, 3, 3) eV/Å², ``p2s_map`` (n_prim,),
        ``supercell_matrix`` (3, 3), ``lattice`` (3, 3) Å, ``positions`` (n_prim, 3)
        fractional, ``numbers``, ``masses`` (amu), and the file's string attributes.
    """
    import h5py

    path = Path(path)
    need = ("force_constants", "p2s_map", "supercell_matrix", "unitcell/lattice", "unitcell/positions", "unitcell/numbers", "unitcell/masses")
    try:
        with h5py.File(path, "r") as h5:
            missing = [k for k in need if k not in h5]
            if missing:
                raise DataError(f"reference force-constant file '{path}' lacks {missing}. Regenerate it with `fcinv reference <material>`.")
            out = {k.split("/")[-1]: h5[k][()] for k in need}
            out.update({k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()})
    except OSError as exc:
        raise DataError(f"cannot read reference force-constant file '{path}' ({exc}). Regenerate it with `fcinv reference <material>`.") from None
    return out


def load_ensemble(material: str) -> dict:
    """The embedded ``ensemble.json`` of a material."""
    path = material_dir(material) / ENSEMBLE_FILE
    if not path.is_file():
        raise DataError(f"no embedded ensemble data at '{path}'. Generate it with `fcinv reference {material}` (needs the [mlff] extra).")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"'{path}' is not valid JSON ({exc}). Regenerate it with `fcinv reference {material}`.") from None


@dataclass(frozen=True, eq=False)
class MaterialReference:
    """A material's Stage I reference.

    Attributes
    ----------
    crystal, space
        The crystal and its FC space.
    pairs
        The reference member's full FC set (gives D_ref).
    theta_ref
        Shape (n_params,) eV/Å²: the reference member's projection onto θ.
    sampled
        The sampled parameter names, FC0 first (decreasing sensitivity).
    lower, upper
        Shape (n_params,) eV/Å²: the ensemble bounds (stable members).
    ensemble
        The raw ``ensemble.json``.
    """

    crystal: Crystal
    space: FCSpace
    pairs: PairFC
    theta_ref: np.ndarray
    sampled: list[str]
    lower: np.ndarray
    upper: np.ndarray
    ensemble: dict = field(repr=False)

    @property
    def material(self) -> str:
        return self.crystal.name

    @property
    def reference_member(self) -> str:
        return str(self.ensemble.get("reference_member", {}).get("name", "?"))

    def bounds(self, names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble (lower, upper) bounds of ``names`` (default: the sampled parameters)."""
        idx = self.space.index(names or self.sampled)
        return self.lower[idx], self.upper[idx]

    def forward_model(self, *, free: list[str] | None = None, grid=None, broadening=None, mesh: int = 4):
        """The forward model about this reference (D_ref from the full FC set), varying ``free`` (default: the sampled parameters)."""
        from fcinv.crystal import default_grid
        from fcinv.forward import Broadening, ForwardModel

        if broadening is None:
            info = material_info(self.material)
            broadening = Broadening(float(info.get("fwhm_meV", 1.2)), float(info.get("fwhm_slope", 0.0)))
        return ForwardModel(
            self.space, grid or default_grid(self.crystal), self.theta_ref, reference=self.pairs,
            free=free or self.sampled, broadening=broadening, mesh=mesh,
        )


@lru_cache(maxsize=8)
def load_reference(material: str) -> MaterialReference:
    """Load an embedded material's reference (cached; treat the result as read-only)."""
    from phonopy.structure.atoms import PhonopyAtoms

    info = material_info(material)
    crystal = Crystal.from_name(info["name"])
    ens = load_ensemble(info["name"])
    space = FCSpace.for_material(crystal)
    names = ens.get("space", {}).get("names")
    if names is not None and list(names) != list(space.names):
        raise DataError(
            f"the embedded ensemble of {crystal.name} was made for parameters {names[:4]}... but the current space has {space.names[:4]}...; "
            f"regenerate it with `fcinv reference {crystal.name}`."
        )
    try:
        theta_ref = np.array([ens["theta_ref"][n] for n in space.names])
        lower = np.array([ens["bounds"]["lower"][n] for n in space.names])
        upper = np.array([ens["bounds"]["upper"][n] for n in space.names])
        sampled = [s["name"] if isinstance(s, dict) else str(s) for s in ens["sampled"]]
    except KeyError as exc:
        raise DataError(f"the embedded ensemble of {crystal.name} lacks {exc}. Regenerate it with `fcinv reference {crystal.name}`.") from None
    fc = read_reference_fc(material_dir(crystal.name) / REFERENCE_FC_FILE)
    unit = PhonopyAtoms(numbers=fc["numbers"], cell=fc["lattice"], scaled_positions=fc["positions"], masses=fc["masses"])
    pairs = pairs_from_phonopy(crystal, fc["force_constants"], unit, fc["supercell_matrix"])
    return MaterialReference(crystal, space, pairs, theta_ref, sampled, lower, upper, ens)
