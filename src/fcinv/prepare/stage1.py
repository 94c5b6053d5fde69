"""Stage I without force fields: a material folder's reference from user phonopy sets.

One or more phonopy force-constant sets (``FORCE_CONSTANTS`` or ``force_constants.hdf5``, each with
the POSCAR and the supercell it was computed with) stand in for the force-field ensemble. Each set
is projected onto the symmetry-reduced parameters θ; the reference set is the one whose θ is
closest (rms over the parameters) to the median θ of the sets (the first set when there are one
or two). The bounds cannot come from the spread of an ensemble alone (one set has none), so they
are widened by a documented relative rule, :data:`WIDENING_RULE`:

    lower_p = min_k θ_kp − w · m_p,   upper_p = max_k θ_kp + w · m_p,
    m_p = max(|θ_ref,p|, f · max_q |θ_ref,q|)

with the relative widening ``w`` (default :data:`DEFAULT_RELATIVE_WIDEN` = 0.25, ``--widen``) and
the floor ``f`` = :data:`WIDEN_FLOOR` (0.05), so that a parameter near zero still gets a range.
The training domain is then widened from these bounds as for any ensemble
(:func:`fcinv.dataset.generate.widened_domain`). The rule and ``w`` are written into
``ensemble.json`` (``bounds.rule``) and ``provenance.json`` and printed by ``fcinv reference``.

The material folder written (:func:`reference_from_phonopy`): ``material.json``, ``structure.vasp``
(the primitive cell), ``ensemble.json`` (built by :func:`fcinv.mlff.build.ensemble_document`, the
builder of the force-field route), ``reference_fc.hdf5``, ``members_fc.hdf5`` (every set, as the
force-field route writes its members, so the bounds at any shell count come from every set and the
widening rule) and ``provenance.json``, in the layout of the embedded materials, so that
:func:`fcinv.material.load_material` (``--material
DIR``) and :func:`fcinv.reference.load_reference` read it as they read ``Ge``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import fcinv
from fcinv.crystal import Crystal, build_path, register_material_folder
from fcinv.errors import FcinvError, ForceConstantError, StructureError

log = logging.getLogger(__name__)

#: Default relative widening w of the bounds around the phonopy sets.
DEFAULT_RELATIVE_WIDEN = 0.25
#: Floor f of the widening scale, as a fraction of the reference set's largest |θ|.
WIDEN_FLOOR = 0.05
#: The widening rule, stated once (written into ensemble.json and provenance.json).
WIDENING_RULE = (
    "lower_p = min over sets of theta_p - w * m_p, upper_p = max over sets of theta_p + w * m_p, "
    "m_p = max(|theta_ref_p|, f * max_q |theta_ref_q|), f = 0.05"
)
REFERENCE_SET_RULE = (
    "the set whose theta is closest (rms over the parameters) to the median theta of the sets "
    "(the first set when there are one or two)"
)
#: Headroom of the energy range over the reference's highest mode on the path.
E_MAX_HEADROOM = 1.2
#: The energy range is rounded up to a multiple of this (meV).
E_MAX_ROUND_MEV = 5.0
STRUCTURE_FILE = "structure.vasp"


class PrepareError(FcinvError):
    """A material folder cannot be made from the inputs given."""


@dataclass(frozen=True)
class PhonopySet:
    """One user phonopy force-constant set.

    Attributes
    ----------
    force_constants
        ``FORCE_CONSTANTS`` (text) or ``force_constants.hdf5``.
    structure
        The POSCAR the force constants were computed with (phonopy's unit cell).
    supercell
        Shape (3, 3) int: the supercell matrix relative to that unit cell.
    """

    force_constants: Path
    structure: Path
    supercell: np.ndarray

    @property
    def label(self) -> str:
        return str(self.force_constants)


def supercell_of(values) -> np.ndarray:
    """3 integers (diagonal) or 9 (a matrix) → (3, 3) int."""
    v = [int(x) for x in values]
    if len(v) == 1:
        return np.diag(v * 3)
    if len(v) == 3:
        return np.diag(v)
    if len(v) == 9:
        return np.array(v).reshape(3, 3)
    raise PrepareError(f"--supercell takes 1, 3 or 9 integers, got {len(v)}. Pass e.g. --supercell 4 4 4.")


def read_fc_array(path: Path) -> np.ndarray:
    """A phonopy FC file's array, (n, n_super, 3, 3) eV/Å² (full or compact)."""
    if not path.is_file():
        raise ForceConstantError(
            f"force-constant file '{path}' does not exist. Pass phonopy's FORCE_CONSTANTS or "
            "force_constants.hdf5."
        )
    try:
        if path.suffix in {".hdf5", ".h5"}:
            from phonopy.file_IO import read_force_constants_hdf5

            return np.asarray(read_force_constants_hdf5(str(path)), float)
        from phonopy.file_IO import parse_FORCE_CONSTANTS

        return np.asarray(parse_FORCE_CONSTANTS(str(path)), float)
    except Exception as exc:  # phonopy raises many kinds of errors on malformed files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ForceConstantError(
            f"could not parse force-constant file '{path}': {msg}. Check it is phonopy's "
            "FORCE_CONSTANTS or force_constants.hdf5."
        ) from None


def read_unitcell(path: Path):
    """The POSCAR of a set as phonopy reads it (``PhonopyAtoms``)."""
    from phonopy.interface.calculator import read_crystal_structure

    if not path.is_file():
        raise StructureError(f"structure file '{path}' does not exist. Pass the POSCAR of the phonopy set.")
    try:
        unit, _ = read_crystal_structure(str(path), interface_mode="vasp")
    except Exception as exc:  # noqa: BLE001 - phonopy's reader raises many kinds
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StructureError(f"phonopy could not read '{path}' ({msg}). Pass a VASP POSCAR.") from None
    return unit


def compact_fc(fc: np.ndarray, n_unit: int) -> tuple[np.ndarray, np.ndarray]:
    """Full (n_sc, n_sc, 3, 3) or compact force constants → compact rows and phonopy's p2s map."""
    n_sc = fc.shape[1]
    p2s = np.arange(n_unit) * (n_sc // n_unit)
    return (fc[p2s] if fc.shape[0] == n_sc else fc), p2s


def choose_reference_set(theta: np.ndarray) -> tuple[int, list[float]]:
    """Index of the reference set (:data:`REFERENCE_SET_RULE`) and each set's rms distance (eV/Å²)."""
    med = np.median(theta, axis=0)
    d = np.sqrt(np.mean((theta - med) ** 2, axis=1))
    k = 0 if len(theta) <= 2 else int(np.argmin(d))
    return k, d.round(6).tolist()


def widened_bounds(theta: np.ndarray, theta_ref: np.ndarray, widen: float) -> tuple[np.ndarray, np.ndarray]:
    """The bounds of :data:`WIDENING_RULE`: ``theta`` (n_sets, n_params), the reference θ, ``w``."""
    if not (math.isfinite(widen) and widen >= 0):
        raise PrepareError(f"--widen {widen} must be a non-negative fraction, e.g. 0.25.")
    m = np.maximum(np.abs(theta_ref), WIDEN_FLOOR * float(np.max(np.abs(theta_ref))))
    return theta.min(axis=0) - widen * m, theta.max(axis=0) + widen * m


def max_shells_for(crystal: Crystal, sets_cells: list[tuple[np.ndarray, np.ndarray]], limit: int) -> int:
    """The most neighbour shells (≤ ``limit``) that every set's supercell holds (bond < half its
    shortest translation)."""
    from fcinv.fcspace import FCSpace

    for n in range(limit, 0, -1):
        space = FCSpace(crystal, n_shells=n)
        try:
            for smat, lat in sets_cells:
                space._check_supercell(smat @ lat @ np.linalg.inv(crystal.lattice))
        except FcinvError:
            continue
        return n
    raise PrepareError(
        "no neighbour shell fits in the supercell of the phonopy set(s). Compute the force "
        "constants in a larger supercell."
    )


def energy_max_for(max_mode_meV: float) -> float:
    """The energy range of a new material: :data:`E_MAX_HEADROOM` × its highest mode, rounded up."""
    return float(E_MAX_ROUND_MEV * math.ceil(E_MAX_HEADROOM * max_mode_meV / E_MAX_ROUND_MEV))


def highest_mode_meV(pairs, crystal: Crystal) -> float:
    """The highest phonon energy of a force-constant set on the crystal's default path and at Γ, meV."""
    q = build_path(crystal)[0]
    return float(np.max(pairs.frequencies(np.vstack([q, np.zeros((1, 3))]))))


def material_name(structure: Path, crystal_formula: str, name: str | None) -> str:
    """The name a new material gets: ``name``, else the structure file's stem, else its formula."""
    if name:
        return name
    stem = structure.stem
    if stem.upper() in {"POSCAR", "CONTCAR", "STRUCTURE", "UNITCELL", ""} or stem.startswith("POSCAR"):
        return crystal_formula
    return stem


def write_structure(path: Path, crystal: Crystal) -> None:
    """The primitive cell as a VASP POSCAR (direct coordinates)."""
    from ase import Atoms
    from ase.io import write

    atoms = Atoms(numbers=crystal.numbers, cell=crystal.lattice, scaled_positions=crystal.positions, pbc=True)
    atoms.set_masses(crystal.masses)
    write(str(path), atoms, format="vasp", direct=True, sort=False)


def folder_crystal(crystal: Crystal, name: str | None = None) -> Crystal:
    """The crystal a folder's ``structure.vasp``, written from ``crystal`` (:func:`write_structure`), is
    read back as: the cell every later reader of the folder (``load_material``) works in.

    spglib's standardisation is not idempotent for every cell: a zincblende cell with the second atom at
    1/4 of the primitive diagonal is standardised to 3/4 and that one back to 1/4 (the two inversion
    twins). Force constants computed or projected on the crystal of the user's file and then read with
    the folder's would have every bond pointing the wrong way (issue 13: GaAs's CHGNet member, 79 %
    asymmetric). Stage I therefore computes and projects on this crystal.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fcinv-structure-") as tmp:
        path = Path(tmp) / STRUCTURE_FILE
        write_structure(path, crystal)
        return Crystal.from_file(path, name=name or crystal.name)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _dumps(obj) -> str:
    from fcinv.io import jsonable

    return json.dumps(jsonable(obj), indent=1, ensure_ascii=False) + "\n"


def write_material_json(out: Path, info: dict) -> None:
    """Write ``material.json`` (atomic)."""
    _atomic_write_text(out / "material.json", _dumps(info))


def reference_from_phonopy(
    sets: list[PhonopySet],
    out: str | Path,
    *,
    structure: str | Path | None = None,
    name: str | None = None,
    shells: int | None = None,
    widen: float = DEFAULT_RELATIVE_WIDEN,
    top_k: int = 8,
    e_max: float | None = None,
    e_step: float | None = None,
    fwhm: float | None = None,
    extra_info: dict | None = None,
    command: str | None = None,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Build a material folder's Stage I reference from phonopy sets (module docstring).

    Parameters
    ----------
    sets
        One or more phonopy sets of the same crystal.
    out
        The material folder to write (created; never the installed package).
    structure
        The crystal's structure file (default: the first set's POSCAR).
    name
        The material's name (default: the structure file's stem, or its formula).
    shells
        Neighbour shells in θ (default: 5, or fewer when a set's supercell holds fewer).
    widen
        The relative widening ``w`` of :data:`WIDENING_RULE`.
    top_k
        Sampled parameters of the paper convention (FC0…FC{k-1}); every parameter is a model
        parameter (:attr:`fcinv.reference.MaterialReference.sampled`).
    e_max, e_step, fwhm
        Energy range (meV; default from the reference's highest mode), bin (0.5 meV) and width (1.2 meV).
    extra_info
        More material.json keys (e.g. ``path``, ``intensity``).
    command
        The command line recorded in the files.
    say
        Progress printer (default: none).

    Returns
    -------
    dict
        A summary: name, folder, shells, n_params, reference set, e_max, the widening.
    """
    from fcinv.dataset.physical import ei_rule
    from fcinv.fcspace import FCSpace, pairs_from_phonopy
    from fcinv.forward.model import Broadening, ForwardModel
    from fcinv.mlff.build import ensemble_document, write_fc_file, write_members_file
    from fcinv.mlff.sensitivity import sensitivity
    from fcinv.reference import (
        ENSEMBLE_FILE,
        MAX_SHELLS,
        MEMBERS_FC_FILE,
        PROVENANCE_FILE,
        REFERENCE_FC_FILE,
        check_shells,
    )

    say = say or (lambda _msg: None)
    if not sets:
        raise PrepareError(
            "no phonopy set given. Pass --from-phonopy FORCE_CONSTANTS --structure POSCAR --supercell N N N."
        )
    out = Path(out)
    refuse_package_folder(out)
    structure = Path(structure) if structure is not None else sets[0].structure
    crystal = Crystal.from_file(structure)
    name = material_name(structure, formula_of(crystal), name)
    file_crystal = Crystal.from_file(structure, name=name)
    crystal = folder_crystal(file_crystal)  # the cell the folder is read with (see folder_crystal)
    units = [read_unitcell(s.structure) for s in sets]
    arrays = [read_fc_array(s.force_constants) for s in sets]
    cells = [(np.asarray(s.supercell), np.asarray(u.cell)) for s, u in zip(sets, units)]
    limit = max_shells_for(crystal, cells, MAX_SHELLS)
    if shells is None:
        n_shells = min(5, limit)
    else:
        n_shells = check_shells(shells, name)
        if n_shells > limit:
            raise PrepareError(
                f"--shells {n_shells}: the phonopy set's supercell holds {limit} shell(s) of {name} "
                "(bonds must be shorter than half its shortest translation). Pass "
                f"--shells {limit} or compute the FCs in a larger supercell."
            )
    space = FCSpace(crystal, n_shells=n_shells)
    say(
        f"Stage I from {len(sets)} phonopy set(s): {name} ({crystal.spacegroup[0]}), "
        f"{n_shells} shells, {space.n_params} parameters"
    )
    pairs, proj = [], []
    for s, u, fc in zip(sets, units, arrays):
        p = pairs_from_phonopy(crystal, fc, u, s.supercell)
        pairs.append(p)
        proj.append(space.project(p))
        say(
            f"  projected {s.label}: in-shell residual {proj[-1].in_shell_residual:.2e}, "
            f"beyond cutoff {proj[-1].beyond_cutoff:.3f}"
        )
    theta = np.array([p.theta for p in proj])
    k_ref, dist = choose_reference_set(theta)
    theta_ref = theta[k_ref]
    lower, upper = widened_bounds(theta, theta_ref, widen)
    top = highest_mode_meV(pairs[k_ref], crystal)
    if top <= 0:
        raise PrepareError(
            f"the reference set of {name} has no real mode on the path (highest {top:.3g} meV). "
            "Check the force constants."
        )
    e_max = float(e_max) if e_max is not None else energy_max_for(top)
    out.mkdir(parents=True, exist_ok=True)
    write_structure(out / STRUCTURE_FILE, file_crystal)  # read back as `crystal`
    smat0, lat0 = cells[k_ref]
    prim_sc = smat0 @ lat0 @ np.linalg.inv(crystal.lattice)
    info = {
        "name": name,
        "description": (
            f"{crystal.spacegroup[0]} #{crystal.spacegroup[1]}; Stage I from {len(sets)} phonopy set(s)"
        ),
        "structure": STRUCTURE_FILE,
        "energy_min_meV": 0.0,
        "energy_max_meV": e_max,
        "energy_step_meV": 0.5 if e_step is None else float(e_step),
        "fwhm_meV": 1.2 if fwhm is None else float(fwhm),
        "cutoff_shells": n_shells,
        "ei_meV": ei_rule(e_max),
        **(extra_info or {}),
    }
    if np.allclose(prim_sc, np.round(prim_sc), atol=1e-6) and np.allclose(prim_sc, np.diag(np.diag(prim_sc))):
        info["supercell"] = [int(round(x)) for x in np.diag(prim_sc)]
    write_material_json(out, info)
    registered = register_material_folder(out)
    crystal = Crystal.from_file(out / STRUCTURE_FILE, name=registered)
    space = FCSpace(crystal, n_shells=n_shells)
    from fcinv.crystal import default_grid

    grid = default_grid(crystal)
    ref_pairs = pairs_from_phonopy(crystal, arrays[k_ref], units[k_ref], sets[k_ref].supercell)
    model = ForwardModel(
        space, grid, theta_ref, reference=ref_pairs, broadening=Broadening(info["fwhm_meV"], 0.0)
    )
    say(f"  sensitivity ranking on the default path ({grid.n_q} q × {grid.n_e} E bins, E ≤ {e_max:g} meV)")
    sens = sensitivity(model, lower, upper)
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    command = command or " ".join(["fcinv", *sys.argv[1:]])
    members = [
        {
            "name": f"set{k}",
            "member": {
                "family": "phonopy",
                "force_constants": str(s.force_constants.resolve()),
                "structure": str(s.structure.resolve()),
                "supercell_matrix": np.asarray(s.supercell).tolist(),
            },
            "status": "stable",
            "reason": None,
            "projection": p.as_dict(),
        }
        for k, (s, p) in enumerate(zip(sets, proj))
    ]
    widening = {"rule": WIDENING_RULE, "relative_widen": float(widen), "floor": WIDEN_FLOOR}
    ensemble = ensemble_document(
        material=registered,
        crystal=crystal,
        space=space,
        members=members,
        stable=[m["name"] for m in members],
        reference={
            "name": f"set{k_ref}",
            "rule": REFERENCE_SET_RULE,
            "rms_distance_to_median_eV_per_A2": dist,
        },
        theta_ref=theta_ref,
        lower=lower,
        upper=upper,
        grid=grid,
        broadening=model.broadening,
        sens=sens,
        top_k=top_k,
        command=command,
        created=created,
        header={
            "source": "phonopy sets",
            "units": {"theta": "eV/Å^2", "frequencies": "THz", "lattice_a": "Å"},
        },
        bounds_extra=widening,
    )
    fcs = {f"set{k}": _set_fc(crystal, s, u, fc) for k, (s, u, fc) in enumerate(zip(sets, units, arrays))}
    ref_fc = dict(fcs[f"set{k_ref}"])
    ref_fc["attrs"] = {"member": "phonopy set " + str(sets[k_ref].force_constants)}
    write_fc_file(out / REFERENCE_FC_FILE, registered, ref_fc, command=command)
    write_members_file(out / MEMBERS_FC_FILE, registered, fcs, command=command)
    _atomic_write_text(out / ENSEMBLE_FILE, _dumps(ensemble))
    provenance = {
        "material": registered,
        "stage1": "phonopy sets (no force fields)",
        "fcinv_version": fcinv.__version__,
        "created": created,
        "command": command,
        "python": sys.version.split()[0],
        "sets": [{**m["member"], "sha256": _sha256(s.force_constants)} for m, s in zip(members, sets)],
        "reference_member": f"set{k_ref}",
        "bounds": widening,
        "energy_max_rule": (
            f"{E_MAX_HEADROOM} x the reference's highest mode on the path ({top:.3f} meV), "
            f"rounded up to {E_MAX_ROUND_MEV:g} meV"
            if info["energy_max_meV"] == energy_max_for(top)
            else "given"
        ),
        "files": [
            "material.json",
            STRUCTURE_FILE,
            ENSEMBLE_FILE,
            REFERENCE_FC_FILE,
            MEMBERS_FC_FILE,
            PROVENANCE_FILE,
        ],
    }
    _atomic_write_text(out / PROVENANCE_FILE, _dumps(provenance))
    return {
        "name": registered,
        "folder": str(out),
        "n_shells": n_shells,
        "n_params": space.n_params,
        "reference_set": f"set{k_ref}",
        "highest_mode_meV": top,
        "energy_max_meV": e_max,
        **widening,
    }


def formula_of(crystal: Crystal) -> str:
    """The reduced formula of the primitive cell in the cell's species order (``Si``, ``GaAs``)."""
    from collections import Counter

    count = Counter(crystal.symbols)
    g = math.gcd(*count.values())
    return "".join(f"{s}{'' if c // g == 1 else c // g}" for s, c in count.items())


def refuse_package_folder(out: Path) -> None:
    """Refuse an output folder inside the installed package."""
    from importlib import resources

    pkg = Path(str(resources.files("fcinv"))).resolve()
    o = out.resolve()
    if o == pkg or pkg in o.parents:
        raise PrepareError(
            f"--out {out} lies inside the installed fcinv package ({pkg}). Pass a folder of your own."
        )


def _set_fc(crystal: Crystal, s: PhonopySet, unit, fc: np.ndarray) -> dict:
    """A phonopy set's :func:`fcinv.mlff.build.write_fc_group` arguments (its own unit cell and supercell)."""
    rows, p2s = compact_fc(fc, len(unit))
    masses = {int(z): float(m) for z, m in zip(crystal.numbers, crystal.masses)}
    return {
        "force_constants": rows,
        "p2s_map": p2s,
        "supercell_matrix": np.asarray(s.supercell, dtype=int),
        "lattice": np.asarray(unit.cell),
        "positions": np.asarray(unit.scaled_positions),
        "numbers": np.asarray(unit.numbers),
        "masses": np.array([masses.get(int(z), m) for z, m in zip(unit.numbers, unit.masses)]),
        "attrs": {"member": "phonopy set " + str(s.force_constants)},
    }


def write_phonopy_set(
    out: str | Path, crystal: Crystal, theta: np.ndarray, supercell, *, n_shells: int
) -> PhonopySet:
    """Write θ (``n_shells`` shells) as a phonopy set: ``POSCAR`` + ``FORCE_CONSTANTS`` in ``out``.

    For tests, tutorials and benchmarks without DFT or force fields (e.g. θ of a spring model from
    :meth:`fcinv.fcspace.FCSpace.central_force_theta`, or a perturbed set as a truth).
    """
    from phonopy.file_IO import write_FORCE_CONSTANTS

    from fcinv.fcspace import FCSpace

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    smat = supercell_of(np.asarray(supercell).reshape(-1))
    space = FCSpace(crystal, n_shells=n_shells)
    fc = space.to_phonopy(np.asarray(theta, float), smat)
    write_structure(out / "POSCAR", crystal)
    write_FORCE_CONSTANTS(fc, filename=str(out / "FORCE_CONSTANTS"))
    return PhonopySet(out / "FORCE_CONSTANTS", out / "POSCAR", smat)
