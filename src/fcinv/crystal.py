"""Crystals: structure loading, the primitive cell, symmetry and the q-path.

A :class:`Crystal` is always held in spglib's standardised setting: the
idealised conventional cell (for cubic crystals, axes along x, y, z) and the
primitive cell in the same Cartesian frame. Printed q-points are in
reciprocal-lattice units (r.l.u.) of that conventional cell.

The default q-path of a face-centred cubic crystal is the one pathSQE folds the Ge ARCS data onto,
Γ–X–U|K–Γ–L–W–X, and that of a body-centred cubic crystal is Γ–H–N–Γ–P–H|P–N; that of a hexagonal
crystal (hcp Mg, wurtzite) is Γ–M–K–Γ–A–L–H–A. Each segment is binned at a step of 0.025 in its
largest r.l.u. component (bin centres), so our spectra line up with pathSQE's folded output pixel
for pixel. Any other path is given by its labels, with point coordinates from seekpath.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
import spglib

from fcinv.errors import MaterialError, StructureError, describe_exception
from fcinv.grid import SpectrumGrid

log = logging.getLogger(__name__)

#: High-symmetry points (conventional r.l.u.) of the pathSQE default paths.
FCC_POINTS = {
    "Γ": (0, 0, 0),
    "X": (0, 1, 0),
    "U": (0.25, 1, 0.25),
    "K": (0.75, 0.75, 0),
    "L": (0.5, 0.5, 0.5),
    "W": (0.5, 1, 0),
}
BCC_POINTS = {"Γ": (0, 0, 0), "H": (0, 1, 0), "N": (0.5, 0.5, 0), "P": (0.5, 0.5, 0.5)}
#: Hexagonal lattices (spglib's setting, γ = 120°): the points seekpath gives, in conventional r.l.u.
HEX_POINTS = {
    "Γ": (0, 0, 0),
    "M": (0.5, 0, 0),
    "K": (1 / 3, 1 / 3, 0),
    "A": (0, 0, 0.5),
    "L": (0.5, 0, 0.5),
    "H": (1 / 3, 1 / 3, 0.5),
}
#: Default paths: continuous pieces separated by a jump ("|").
DEFAULT_PATHS = {
    "fcc": ("Γ-X-U|K-Γ-L-W-X", FCC_POINTS),
    "bcc": ("Γ-H-N-Γ-P-H|P-N", BCC_POINTS),
    "hexagonal": ("Γ-M-K-Γ-A-L-H-A", HEX_POINTS),
}
#: pathSQE's bin step along a segment, in its largest r.l.u. component.
PATH_STEP_RLU = 0.025

_GAMMA_NAMES = {"G", "GAMMA", "Γ", "\\GAMMA"}


@dataclass(frozen=True, eq=False)
class Crystal:
    """A crystal in spglib's standardised setting.

    Parameters
    ----------
    name
        Material name or file stem.
    lattice
        Shape (3, 3) float64, Å: primitive lattice vectors as rows.
    positions
        Shape (n_atoms, 3) float64: fractional coordinates in the primitive cell.
    numbers
        Shape (n_atoms,) int: atomic numbers.
    masses
        Shape (n_atoms,) float64, amu.
    conventional_lattice
        Shape (3, 3) float64, Å: conventional lattice vectors as rows (same frame).
    spacegroup
        International symbol and number, e.g. ``("Fd-3m", 227)``.
    """

    name: str
    lattice: np.ndarray
    positions: np.ndarray
    numbers: np.ndarray
    masses: np.ndarray
    conventional_lattice: np.ndarray
    spacegroup: tuple[str, int]

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_cell(
        cls, lattice, positions, numbers, *, name: str = "", masses=None, symprec: float = 1e-4
    ) -> Crystal:
        """Build from any cell (rows of ``lattice`` in Å, fractional ``positions``).

        The cell is reduced to spglib's standardised primitive cell; masses
        default to the standard atomic masses (ASE's table).
        """
        lattice = np.asarray(lattice, dtype=float)
        positions = np.asarray(positions, dtype=float)
        numbers = np.asarray(numbers, dtype=int)
        if (
            lattice.shape != (3, 3)
            or positions.ndim != 2
            or positions.shape[1] != 3
            or len(numbers) != len(positions)
        ):
            raise StructureError(
                f"cell has lattice {lattice.shape}, positions {positions.shape}, {len(numbers)} atomic "
                "numbers; "
                "expected (3, 3), (n, 3) and n. Check the structure file."
            )
        if (
            len(numbers) == 0
            or abs(np.linalg.det(lattice)) < 1e-6
            or not np.all(np.isfinite(lattice))
            or not np.all(np.isfinite(positions))
        ):
            raise StructureError(
                f"structure '{name}' has no atoms, a degenerate lattice or non-finite numbers. Check the "
                "structure file."
            )
        cell = (lattice, positions, numbers)
        dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
        if dataset is None:
            raise StructureError(
                f"spglib could not find the symmetry of '{name}' (symprec={symprec}). Check for "
                "overlapping atoms or pass a larger symprec."
            )
        prim = spglib.standardize_cell(cell, to_primitive=True, no_idealize=False, symprec=symprec)
        conv = spglib.standardize_cell(cell, to_primitive=False, no_idealize=False, symprec=symprec)
        plat, ppos, pnum = (np.asarray(x) for x in prim)
        if masses is None:
            from ase.data import atomic_masses

            pmass = np.array([atomic_masses[z] for z in pnum], dtype=float)
        else:
            masses = np.asarray(masses, dtype=float)
            by_number = {int(z): float(m) for z, m in zip(numbers, masses)}
            pmass = np.array([by_number[int(z)] for z in pnum])
        return cls(
            name=name,
            lattice=plat,
            positions=np.mod(ppos + 1e-12, 1.0) - 1e-12,
            numbers=pnum.astype(int),
            masses=pmass,
            conventional_lattice=np.asarray(conv[0], dtype=float),
            spacegroup=(str(dataset.international), int(dataset.number)),
        )

    @classmethod
    def from_file(cls, path: str | Path, *, name: str | None = None) -> Crystal:
        """Load a structure file (CIF, POSCAR, or anything ASE reads)."""
        path = Path(path)
        if not path.is_file():
            raise StructureError(
                f"structure file '{path}' does not exist. Pass the path of a CIF or POSCAR file, or an "
                f"embedded material name ({', '.join(available_materials())})."
            )
        try:
            from ase.io import read

            fmt = (
                "vasp"
                if path.suffix.lower() in {".vasp", ".poscar"} or path.name.upper() in {"POSCAR", "CONTCAR"}
                else None
            )
            atoms = read(str(path), format=fmt)
        except Exception as exc:  # ASE raises many kinds of errors on malformed files
            msg = describe_exception(exc)
            raise StructureError(
                f"could not read structure file '{path}': {msg}. Check that it is a valid CIF or POSCAR."
            ) from None
        if len(atoms) == 0:
            raise StructureError(
                f"structure file '{path}' contains no atoms. Check that it is a valid CIF or POSCAR."
            )
        return cls.from_cell(
            atoms.cell[:],
            atoms.get_scaled_positions(),
            atoms.numbers,
            name=name or path.stem,
            masses=atoms.get_masses(),
        )

    @classmethod
    def from_name(cls, material: str) -> Crystal:
        """One of the embedded materials (``"Ge"``, ``"Nb"``), case-insensitive."""
        info = material_info(material)
        return cls.from_file(material_dir(info["name"]) / info["structure"], name=info["name"])

    # --------------------------------------------------------------- derived
    @property
    def n_atoms(self) -> int:
        """Atoms in the primitive cell."""
        return len(self.positions)

    @property
    def n_modes(self) -> int:
        """Phonon branches, 3 × atoms."""
        return 3 * self.n_atoms

    @property
    def symbols(self) -> list[str]:
        """Chemical symbols of the primitive cell's atoms."""
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.numbers]

    @property
    def cartesian_positions(self) -> np.ndarray:
        """Shape (n_atoms, 3) float64, Å."""
        return self.positions @ self.lattice

    @property
    def lattice_type(self) -> str:
        """``"fcc"``, ``"bcc"``, ``"sc"`` for cubic crystals, else the crystal system name."""
        n = self.spacegroup[1]
        if n >= 195:
            return {"F": "fcc", "I": "bcc", "P": "sc"}.get(self.centering, "cubic")
        for lo, name in (
            (168, "hexagonal"),
            (143, "trigonal"),
            (75, "tetragonal"),
            (16, "orthorhombic"),
            (3, "monoclinic"),
            (1, "triclinic"),
        ):
            if n >= lo:
                return name
        return "triclinic"

    @property
    def centering(self) -> str:
        """Lattice centering letter of the space-group symbol: ``"P"``, ``"F"``, ``"I"``, ``"A"``, ``"B"``,
        ``"C"`` or ``"R"``.

        The one place fcinv decides it (folding, the simulated experiment and the material use it).
        """
        return self.spacegroup[0][0].upper()

    @property
    def lattice_parameters(self) -> list[float]:
        """Conventional a, b, c (Å) and α, β, γ (degrees)."""
        A = self.conventional_lattice
        a, b, c = (float(x) for x in np.linalg.norm(A, axis=1))

        def ang(u: np.ndarray, v: np.ndarray) -> float:
            return float(np.degrees(np.arccos(np.clip(u @ v / np.linalg.norm(u) / np.linalg.norm(v), -1, 1))))

        return [a, b, c, ang(A[1], A[2]), ang(A[0], A[2]), ang(A[0], A[1])]

    @property
    def reciprocal_cell(self) -> np.ndarray:
        """Shape (3, 3) float64, 1/Å (with 2π): conventional reciprocal vectors as rows; Q = hkl @ this."""
        return 2 * np.pi * np.linalg.inv(self.conventional_lattice).T

    @property
    def conventional_a(self) -> float:
        """Length of the first conventional lattice vector, Å."""
        return float(np.linalg.norm(self.conventional_lattice[0]))

    @cached_property
    def symmetry(self) -> tuple[np.ndarray, np.ndarray]:
        """Space-group operations of the primitive cell: rotations (n_ops, 3, 3) int, translations (n_ops, 3)
        fractional."""
        ds = spglib.get_symmetry((self.lattice, self.positions, self.numbers), symprec=1e-4)
        return np.asarray(ds["rotations"]), np.asarray(ds["translations"])

    @cached_property
    def cartesian_rotations(self) -> np.ndarray:
        """Shape (n_ops, 3, 3) float64: the space group's rotations as Cartesian matrices."""
        L = self.lattice.T  # columns are lattice vectors
        rots = self.symmetry[0]
        return np.einsum("ij,njk,kl->nil", L, rots, np.linalg.inv(L))

    @cached_property
    def point_group_rlu(self) -> np.ndarray:
        """Shape (n_pg, 3, 3) float64: the point group acting on conventional r.l.u. q-vectors (q' = R q)."""
        A = self.conventional_lattice  # rows a_i; q_cart = 2π B q_rlu with B = inv(A) (columns b_i/2π)
        B = np.linalg.inv(A)
        mats = np.einsum("ij,njk,kl->nil", A, self.cartesian_rotations, B)
        uniq: list[np.ndarray] = []
        for m in np.round(mats, 8):
            if not any(np.allclose(m, u) for u in uniq):
                uniq.append(m)
        return np.array(uniq) + 0.0

    def reciprocal_lattice_rlu(self, max_index: int) -> np.ndarray:
        """Reciprocal-lattice vectors G of the primitive cell, conventional r.l.u., |components| <= max_index.

        Returns shape (n_G, 3) float64 (integers for cubic cells: fcc all-even-or-all-odd, bcc h+k+l even).
        """
        r = np.arange(-max_index, max_index + 1)
        hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3).astype(float)
        frac = self.rlu_to_prim_frac(hkl)
        keep = np.all(np.abs(frac - np.round(frac)) < 1e-8, axis=1)
        return hkl[keep]

    # ------------------------------------------------------- q conversions
    def rlu_to_cart(self, q_rlu: np.ndarray) -> np.ndarray:
        """Conventional r.l.u. → Cartesian wavevector, 1/Å (includes 2π)."""
        return 2 * np.pi * np.asarray(q_rlu, float) @ np.linalg.inv(self.conventional_lattice).T

    def rlu_to_prim_frac(self, q_rlu: np.ndarray) -> np.ndarray:
        """Conventional r.l.u. → fractional coordinates of the primitive reciprocal lattice."""
        # q_frac_i = a_prim_i . q_cart / 2π
        return np.asarray(q_rlu, float) @ np.linalg.inv(self.conventional_lattice).T @ self.lattice.T

    def cart_to_conv_frac(self, d_cart: np.ndarray) -> np.ndarray:
        """Cartesian real-space vectors (Å) → fractional coordinates of the conventional cell."""
        return np.asarray(d_cart, float) @ np.linalg.inv(self.conventional_lattice)

    def to_phonopy_atoms(self):
        """The primitive cell as a ``phonopy.structure.atoms.PhonopyAtoms``."""
        from phonopy.structure.atoms import PhonopyAtoms

        return PhonopyAtoms(
            numbers=self.numbers, cell=self.lattice, scaled_positions=self.positions, masses=self.masses
        )

    def __repr__(self) -> str:
        return (
            f"Crystal({self.name!r}, {self.spacegroup[0]} #{self.spacegroup[1]}, {self.n_atoms} "
            f"atoms/primitive cell, a={self.conventional_a:.4f} Å)"
        )


# ------------------------------------------------------------------ materials
def _data_root() -> Path:
    return Path(str(resources.files("fcinv") / "data"))


def available_materials() -> list[str]:
    """Names of the embedded materials."""
    root = _data_root()
    return sorted(p.name for p in root.iterdir() if (p / "material.json").is_file())


#: Material folders met in this process (``fcinv prepare`` output, ``--material DIR``): name → folder.
#: Registered by :func:`register_material_folder`, so that every reader that looks a material up by
#: name (its info, its folder, its reference) finds a user folder as it finds an embedded one.
_USER_FOLDERS: dict[str, tuple[str, Path]] = {}


def read_folder_info(folder: str | Path) -> dict:
    """A material folder's ``material.json`` (with ``name`` and ``structure``), checked.

    Raises
    ------
    MaterialError
        No material.json, invalid JSON, or no structure file named.
    """
    folder = Path(folder)
    path = folder / "material.json"
    if not path.is_file():
        raise MaterialError(
            f"'{folder}' has no material.json. A material folder holds material.json "
            "(name, structure, energy_max_meV, ...) and the structure file it names; "
            "`fcinv prepare STRUCTURE --out DIR` makes one."
        )
    from fcinv.errors import describe_exception, json_kind

    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MaterialError(
            f"'{path}' is not valid JSON ({describe_exception(exc)}). Fix the file."
        ) from None
    if not isinstance(info, dict):
        raise MaterialError(
            f"'{path}' holds a JSON {json_kind(info)}, not an object. Write "
            '{"name": ..., "structure": "<file>", ...}.'
        )
    if not isinstance(info.get("structure"), str) or not info["structure"]:
        raise MaterialError(f'\'{path}\' names no structure file. Add "structure": "<file>" (CIF or POSCAR).')
    return dict(info, name=str(info.get("name") or folder.name))


def register_material_folder(folder: str | Path) -> str:
    """Register a user material folder; returns the name it is known by in this process.

    A folder whose ``name`` is an embedded material's (``Ge``) is known as ``Ge@<folder name>``, so
    it never shadows the embedded one; a later folder with the same name replaces an earlier one.
    """
    folder = Path(folder).resolve()
    name = read_folder_info(folder)["name"]
    if name.lower() in {m.lower() for m in available_materials()}:
        name = f"{name}@{folder.name}"
    _USER_FOLDERS[name.lower()] = (name, folder)
    return name


def _user_folder(material: str | Path) -> tuple[str, Path] | None:
    """(name, folder) of a registered user folder or of a folder path (registered now), else None."""
    s = str(material)
    if s.lower() in _USER_FOLDERS:
        return _USER_FOLDERS[s.lower()]
    if s.lower() not in {m.lower() for m in available_materials()} and (Path(s) / "material.json").is_file():
        return _USER_FOLDERS[register_material_folder(s).lower()]
    return None


def material_dir(material: str) -> Path:
    """Folder of a material's data files: embedded, or a registered material folder (or its path)."""
    user = _user_folder(material)
    if user is not None:
        return user[1]
    return _data_root() / material_info(material)["name"]


def material_info(material: str) -> dict:
    """The material's ``material.json`` (grid, cutoff, supercell defaults): an embedded name, a
    registered material folder's name, or a material folder's path."""
    user = _user_folder(material)
    if user is not None:
        return dict(read_folder_info(user[1]), name=user[0])
    names = {m.lower(): m for m in available_materials()}
    key = str(material).lower()
    if key not in names:
        raise MaterialError(
            f"unknown material '{material}'. Embedded materials: {', '.join(names.values())}; for any "
            "other crystal pass a structure file (--crystal FILE) or a material folder made by "
            "`fcinv prepare STRUCTURE --out DIR` (--material DIR)."
        )
    return json.loads((_data_root() / names[key] / "material.json").read_text())


def load_crystal(material_or_path: str | Path) -> Crystal:
    """An embedded material by name, or a structure file by path."""
    s = str(material_or_path)
    if s.lower() in {m.lower() for m in available_materials()}:
        return Crystal.from_name(s)
    if not Path(s).exists() and "/" not in s and "." not in s:
        return Crystal.from_name(s)  # looks like a material name: raises MaterialError listing the known ones
    return Crystal.from_file(s)


# ---------------------------------------------------------------------- q-path
def _normalise_label(label: str) -> str:
    return "Γ" if label.strip().upper() in _GAMMA_NAMES else label.strip()


def parse_path(spec: str) -> list[list[str]]:
    """``"Γ-X-U|K-Γ"`` → ``[["Γ", "X", "U"], ["K", "Γ"]]``."""
    pieces = [
        [_normalise_label(p) for p in piece.split("-") if p.strip()]
        for piece in spec.replace(",", "|").split("|")
    ]
    if not pieces or any(len(p) < 2 for p in pieces):
        raise StructureError(
            f"path '{spec}' must be labels joined by '-', with '|' between separate pieces, each piece at "
            "least two points (e.g. 'Γ-X-U|K-Γ-L')."
        )
    return pieces


def seekpath_points(crystal: Crystal) -> dict[str, tuple[float, float, float]]:
    """High-symmetry points of ``crystal`` from seekpath, in conventional r.l.u."""
    import seekpath

    res = seekpath.get_path((crystal.lattice, crystal.positions, crystal.numbers), with_time_reversal=True)
    recip = np.asarray(res["reciprocal_primitive_lattice"])
    conv = np.asarray(res["conv_lattice"])
    pts = {}
    for lab, frac in res["point_coords"].items():
        cart = np.asarray(frac) @ recip
        rlu = cart @ conv.T / (2 * np.pi)
        pts[_normalise_label(lab)] = tuple(float(x) for x in np.round(rlu, 10))
    return pts


def build_path(
    crystal: Crystal,
    spec: str | None = None,
    points: dict[str, tuple[float, float, float]] | None = None,
    step: float = PATH_STEP_RLU,
) -> tuple[np.ndarray, list[str], list[float], list[int]]:
    """Sample a q-path the way pathSQE bins it.

    Parameters
    ----------
    crystal
        The crystal (selects the default path and supplies seekpath's points).
    spec
        Path labels such as ``"Γ-X-U|K-Γ-L-W-X"``; ``None`` gives the default for the lattice.
    points
        Label → conventional r.l.u. coordinates; defaults to the pathSQE points for the
        default fcc/bcc paths and to seekpath's points otherwise.
    step
        Bin step in the segment's largest r.l.u. component.

    Returns
    -------
    q_rlu, labels, ticks, segment_bins
        Bin centres (n_q, 3) in conventional r.l.u.; tick labels (``"U|K"`` at a jump);
        tick positions in bin units; number of bins per segment.
    """
    default_path = spec is None
    if spec is None:
        if crystal.lattice_type in DEFAULT_PATHS:
            spec, default_points = DEFAULT_PATHS[crystal.lattice_type]
        else:
            default_points = seekpath_points(crystal)
            import seekpath

            res = seekpath.get_path((crystal.lattice, crystal.positions, crystal.numbers))
            pieces: list[list[str]] = []
            for a, b in res["path"]:
                a, b = _normalise_label(a), _normalise_label(b)
                if pieces and pieces[-1][-1] == a:
                    pieces[-1].append(b)
                else:
                    pieces.append([a, b])
            spec = "|".join("-".join(p) for p in pieces)
        points = points or default_points
    elif points is None:
        default = DEFAULT_PATHS.get(crystal.lattice_type)
        labels_needed = {lab for piece in parse_path(spec) for lab in piece}
        if default is not None and labels_needed <= set(default[1]):
            points = default[1]
        else:
            points = seekpath_points(crystal)
    pieces = parse_path(spec)
    missing = sorted({lab for piece in pieces for lab in piece} - set(points))
    if missing:
        raise StructureError(
            f"path '{spec}' uses unknown point label(s) {missing} for {crystal.name}; known labels: "
            f"{', '.join(sorted(points))}."
        )
    qs: list[np.ndarray] = []
    labels: list[str] = []
    ticks: list[float] = []
    seg_bins: list[int] = []
    n = 0
    for k, piece in enumerate(pieces):
        if k == 0:
            labels.append(piece[0])
            ticks.append(0.0)
        else:
            labels[-1] = f"{labels[-1]}|{piece[0]}"
        for a, b in zip(piece[:-1], piece[1:]):
            qa, qb = np.asarray(points[a], float), np.asarray(points[b], float)
            nb = int(round(np.max(np.abs(qb - qa)) / step))
            if nb < 1:
                raise _zero_segment_error(crystal, a, b, default_path=default_path)
            t = (np.arange(nb) + 0.5) / nb
            qs.append(qa + t[:, None] * (qb - qa))
            n += nb
            seg_bins.append(nb)
            labels.append(b)
            ticks.append(float(n))
    return np.concatenate(qs), labels, ticks, seg_bins


def _zero_segment_error(crystal: Crystal, a: str, b: str, *, default_path: bool) -> StructureError:
    """The error for a path segment shorter than one bin, naming the structure's setting."""
    a_, b_, c_, al, be, ga = crystal.lattice_parameters
    setting = (
        f"{crystal.name} was read as {crystal.spacegroup[0]} #{crystal.spacegroup[1]} "
        f"({crystal.lattice_type}, conventional a={a_:.4f} b={b_:.4f} c={c_:.4f} Å, "
        f"α={al:.2f} β={be:.2f} γ={ga:.2f}°)"
    )
    if default_path:
        return StructureError(
            f"{setting}: its default path has the points {a} and {b} at the same place, so the "
            "lattice sits next to a higher-symmetry one. If the crystal has that higher symmetry "
            "(e.g. it is cubic), the structure file breaks it: check its setting and coordinates "
            "(a CIF in a rhombohedral or primitive setting, or rounded positions); otherwise give the "
            "path labels yourself (--path)."
        )
    return StructureError(
        f"segment {a}-{b} of the path has zero length ({setting}). Remove the repeated label from "
        "the path, or check that the structure is in the setting the labels assume."
    )


def energy_edges(e_min: float, e_max: float, step: float) -> np.ndarray:
    """Energy bin edges from ``e_min`` to ``e_max`` in ``step`` (meV)."""
    n = int(round((e_max - e_min) / step))
    if n < 1 or step <= 0:
        raise StructureError(
            f"energy range {e_min}..{e_max} meV with step {step} meV gives no bins. Pass e_max > e_min and "
            "step > 0."
        )
    return e_min + step * np.arange(n + 1)


def default_grid(
    crystal: Crystal,
    *,
    path: str | None = None,
    e_max: float | None = None,
    e_step: float | None = None,
    e_min: float | None = None,
) -> SpectrumGrid:
    """The default (q, E) grid of a crystal: the pathSQE path and the material's energy range.

    Embedded materials and material folders take their energy range (and their ``path``, when
    material.json names one, e.g. ``fcinv prepare --path``) from ``material.json``; any other
    crystal needs ``e_max`` (meV).
    """
    try:
        info = material_info(crystal.name)
    except MaterialError:
        info = {}
    e_min = info.get("energy_min_meV", 0.0) if e_min is None else e_min
    e_step = info.get("energy_step_meV", 0.5) if e_step is None else e_step
    e_max = info.get("energy_max_meV") if e_max is None else e_max
    if e_max is None:
        raise StructureError(
            f"no energy range is known for '{crystal.name}'. Pass the maximum energy transfer (--e-max, meV)."
        )
    q, labels, ticks, seg = build_path(crystal, info.get("path") if path is None else path)
    return SpectrumGrid(
        q_rlu=q,
        energy_edges=energy_edges(e_min, e_max, e_step),
        labels=tuple(labels),
        ticks=tuple(ticks),
        material=crystal.name,
        segment_bins=tuple(seg),
    )
