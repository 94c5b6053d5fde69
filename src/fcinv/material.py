"""One material object: everything fcinv knows about a crystal under study, decided in one place.

A :class:`Material` owns the structure (:class:`~fcinv.crystal.Crystal`), its lattice centering
and point group, the default q-path and (q, E) grid, the energy broadening, the number of
neighbour shells and the FC space, the Stage I reference (when one is embedded or shipped in the
material's folder), the training domain, and builds the forward model. The CLI, the pipeline,
the simulated experiment and the public API take these from here instead of re-reading
``material.json``.

Three ways in (:func:`load_material`): an embedded name (``"Ge"``, ``"Nb"``), a material folder
(``material.json`` + the structure file it names, as the embedded ones are laid out), or a bare
structure file (CIF/POSCAR; then the energy range must be given to :meth:`Material.grid`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from fcinv.crystal import Crystal, available_materials, build_path, default_grid, material_info
from fcinv.errors import DataError, MaterialError, StructureError

log = logging.getLogger(__name__)

#: material.json keys and the defaults used when a key (or the whole file) is absent.
DEFAULTS: dict[str, Any] = {
    "fwhm_meV": 1.2,
    "fwhm_slope": 0.0,
    "cutoff_shells": 5,
    "energy_min_meV": 0.0,
    "energy_step_meV": 0.5,
}


def _check_info_numbers(info: dict, path: Path) -> None:
    """Refuse material.json entries that must be numbers (the energy grid, broadening, shells) and
    are not, or a supercell that is not 3 or 9 integers."""
    for key in ("energy_max_meV", *DEFAULTS):
        v = info.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise MaterialError(
                f"'{path}': {key} is {json.dumps(v)[:40]}, not a number. Give it as a finite number."
            )
    sc = info.get("supercell")
    if sc is not None and not (
        isinstance(sc, list)
        and len(sc) in (3, 9)
        and all(isinstance(x, int) and not isinstance(x, bool) for x in sc)
    ):
        raise MaterialError(f"'{path}': supercell is {json.dumps(sc)[:40]}. Give 3 integers (diagonal) or 9.")


@dataclass(frozen=True, eq=False)
class Material:
    """A crystal under study, with its defaults.

    Parameters
    ----------
    crystal
        The structure in spglib's standard setting.
    info
        The material's ``material.json`` content (``{}`` for a bare structure file).
    folder
        Where the material's files live (``None`` for a bare structure file).
    embedded
        True for the materials shipped in ``fcinv/data`` (they have a Stage I reference).
    """

    crystal: Crystal
    info: dict = field(default_factory=dict)
    folder: Path | None = None
    embedded: bool = False

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_name(cls, name: str) -> Material:
        """An embedded material by name (case-insensitive)."""
        info = material_info(name)
        from fcinv.crystal import material_dir

        if info["name"] not in available_materials():  # a material folder registered earlier
            return cls.from_folder(material_dir(info["name"]))
        return cls(Crystal.from_name(info["name"]), dict(info), material_dir(info["name"]), True)

    @classmethod
    def from_folder(cls, folder: str | Path) -> Material:
        """A material folder: ``material.json`` (with ``name`` and ``structure``) and the structure file.

        The folder is registered (:func:`fcinv.crystal.register_material_folder`), so everything that
        looks the material up by name (its grid, its reference, exports) finds this folder. With
        ``ensemble.json`` and ``reference_fc.hdf5`` beside it (``fcinv reference --out DIR``,
        ``fcinv prepare``) it has a Stage I reference, as an embedded material does.
        """
        from fcinv.crystal import material_info, read_folder_info, register_material_folder

        folder = Path(folder).resolve()
        # the one-line errors for a folder that is not a material folder, or a malformed material.json
        _check_info_numbers(read_folder_info(folder), folder / "material.json")
        name = register_material_folder(folder)
        info = material_info(name)
        crystal = Crystal.from_file(folder / info["structure"], name=name)
        return cls(crystal, dict(info), folder, False)

    @classmethod
    def from_structure(cls, path: str | Path, *, name: str | None = None) -> Material:
        """A bare structure file (CIF, POSCAR): defaults for everything else."""
        return cls(Crystal.from_file(path, name=name), {}, None, False)

    # ---------------------------------------------------------------- basics
    @property
    def name(self) -> str:
        return self.crystal.name

    def _get(self, key: str) -> Any:
        return self.info.get(key, DEFAULTS.get(key))

    @property
    def centering(self) -> str:
        """Lattice centering (``"P"``, ``"F"``, ``"I"``, ...), from the space group."""
        return self.crystal.centering

    @property
    def point_group(self) -> np.ndarray:
        """Shape (n_ops, 3, 3) float64: the point group on conventional r.l.u. (q' = R q)."""
        return self.crystal.point_group_rlu

    @property
    def lattice(self) -> list[float]:
        """Conventional a, b, c (Å), α, β, γ (degrees): what an NXSPE orientation needs."""
        return self.crystal.lattice_parameters

    @property
    def path(self) -> str:
        """The default q-path, e.g. ``"Γ-X-U|K-Γ-L-W-X"`` for fcc (pathSQE's)."""
        if "path" in self.info:
            return str(self.info["path"])
        _, labels, _, _ = build_path(self.crystal)
        return "-".join(labels)

    @property
    def energy_range(self) -> tuple[float, float | None, float]:
        """(E_min, E_max or None when unknown, E_step), meV."""
        e_max = self.info.get("energy_max_meV")
        return (
            float(self._get("energy_min_meV")),
            None if e_max is None else float(e_max),
            float(self._get("energy_step_meV")),
        )

    def grid(self, *, path: str | None = None, e_max: float | None = None, e_step: float | None = None):
        """The (q, E) grid: the default path (or ``path``) and the material's energy bins.

        Raises
        ------
        StructureError
            No energy range is known (a bare structure file) and ``e_max`` is not given.
        """
        e_min, e_max0, e_step0 = self.energy_range
        e_max = e_max if e_max is not None else e_max0
        if e_max is None:
            raise StructureError(
                f"no energy range is known for '{self.name}'. Pass the maximum energy transfer "
                "(e_max in meV, --e-max), or give energy_max_meV in its material.json."
            )
        path = path if path is not None else self.info.get("path")
        return default_grid(self.crystal, path=path, e_max=e_max, e_step=e_step or e_step0, e_min=e_min)

    @property
    def broadening(self):
        """The energy broadening of the forward model: FWHM(E) = fwhm_meV + fwhm_slope · E."""
        from fcinv.forward import Broadening

        return Broadening(float(self._get("fwhm_meV")), float(self._get("fwhm_slope")))

    @property
    def shells(self) -> int:
        """Neighbour shells in θ (``cutoff_shells``)."""
        return int(self._get("cutoff_shells"))

    @property
    def supercell(self) -> list[int] | None:
        """The supercell of force-field calculations and exports (``supercell``), or None."""
        s = self.info.get("supercell")
        return None if s is None else [int(x) for x in s]

    @cached_property
    def space(self):
        """The symmetry-reduced FC space (:class:`~fcinv.fcspace.FCSpace`) with :attr:`shells` shells."""
        if self.embedded or self.reference_available:
            return self.reference.space
        from fcinv.fcspace import FCSpace

        return FCSpace(self.crystal, n_shells=self.shells)

    # ------------------------------------------------------------- reference
    @property
    def reference_available(self) -> bool:
        """Whether a Stage I reference (ensemble.json + reference_fc.hdf5) exists for this material."""
        if self.embedded:
            return True
        from fcinv.reference import ENSEMBLE_FILE, REFERENCE_FC_FILE

        return self.folder is not None and all(
            (self.folder / f).is_file() for f in (ENSEMBLE_FILE, REFERENCE_FC_FILE)
        )

    @cached_property
    def reference(self):
        """The Stage I reference (:class:`~fcinv.reference.MaterialReference`).

        Raises
        ------
        MaterialError
            The material has no embedded reference (run ``fcinv reference`` for it).
        """
        if not self.reference_available:
            where = f"its folder {self.folder} has" if self.folder else "a bare structure file has"
            raise MaterialError(
                f"'{self.name}' has no Stage I reference ({where} no ensemble.json + "
                f"reference_fc.hdf5; the embedded materials {', '.join(available_materials())} ship one). "
                "Make one with `fcinv reference --from-phonopy FORCE_CONSTANTS --structure POSCAR "
                "--supercell N N N --out DIR` or `fcinv prepare STRUCTURE --out DIR`, or work from θ / a "
                "phonopy FC set."
            )
        from fcinv.reference import load_reference

        return load_reference(self.name)

    @property
    def reference_supercell(self) -> np.ndarray:
        """Shape (3, 3) int: the supercell of the reference force constants (exports use it)."""
        from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

        self.reference  # noqa: B018 - raises when there is none
        assert self.folder is not None
        return np.asarray(read_reference_fc(self.folder / REFERENCE_FC_FILE)["supercell_matrix"], dtype=int)

    @property
    def sampled(self) -> list[str]:
        """The sampled parameter names, FC0 first (the reference's)."""
        return list(self.reference.sampled)

    def domain(self, names: list[str] | None = None):
        """The training domain (:class:`~fcinv.dataset.generate.Domain`) of ``names`` (default: sampled):
        the ensemble bounds widened by the default rule."""
        from fcinv.dataset.generate import widened_domain

        ref = self.reference
        names = list(names or ref.sampled)
        lo, hi = ref.bounds(names)
        return widened_domain(names, lo, hi, ref.theta_ref[ref.space.index(names)])

    def theta_full(self, values: dict[str, float] | None = None) -> np.ndarray:
        """Every parameter of :attr:`space`, eV/Å²: the reference θ (zeros without one), ``values`` by name.

        Raises
        ------
        DataError
            A name that is not a parameter of this material.
        """
        space = self.space
        base = self.reference.theta_ref.copy() if self.reference_available else np.zeros(space.n_params)
        for k, v in (values or {}).items():
            if k not in space.names:
                raise DataError(
                    f"'{k}' is not a parameter of {self.name}. Parameters: {', '.join(space.names)}."
                )
            base[space.names.index(k)] = float(v)
        return base

    def forward_model(self, *, free: list[str] | None = None, grid=None, broadening=None, theta=None):
        """The forward model θ → I(q, E) of this material.

        With a reference: :meth:`MaterialReference.forward_model
        <fcinv.reference.MaterialReference.forward_model>` about it, varying ``free`` (default: the
        sampled parameters, i.e. every one), with its tail convention
        (:meth:`~fcinv.reference.MaterialReference.tail_for`): zero beyond the cutoff when every
        parameter is free, the reference member's D_ref when only some are (the paper convention).
        Without one: θ alone (``theta``, default zeros) varying ``free`` (default: every parameter).

        Parameters
        ----------
        free
            The parameters that vary.
        grid
            Default :meth:`grid`.
        broadening
            Default :attr:`broadening`.
        theta
            Shape (n_params,) eV/Å²: the full θ of a material without a reference.
        """
        from fcinv.forward import ForwardModel

        grid = grid if grid is not None else self.grid()
        broadening = broadening if broadening is not None else self.broadening
        if self.reference_available:
            return self.reference.forward_model(free=free, grid=grid, broadening=broadening)
        space = self.space
        th = np.zeros(space.n_params) if theta is None else np.asarray(theta, float)
        return ForwardModel(space, grid, th, free=free, broadening=broadening)

    def __repr__(self) -> str:
        where = "embedded" if self.embedded else (str(self.folder) if self.folder else "structure file")
        return f"Material({self.name!r}, {self.crystal.spacegroup[0]}, {where})"


def load_material(name_or_path: str | Path | Material) -> Material:
    """An embedded material by name, a material folder, or a structure file (see the module docstring).

    Raises
    ------
    MaterialError
        An unknown name (the message lists the embedded ones).
    StructureError
        An unreadable structure file.
    """
    if isinstance(name_or_path, Material):
        return name_or_path
    s = str(name_or_path)
    if s.lower() in {m.lower() for m in available_materials()}:
        return Material.from_name(s)
    p = Path(s)
    if p.is_dir():
        return Material.from_folder(p)
    if p.is_file():
        return Material.from_structure(p)
    return Material.from_name(s)  # raises MaterialError listing the embedded materials
