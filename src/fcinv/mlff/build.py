"""Build a material's embedded Stage I data from the force-field ensemble.

:func:`build_reference` runs (or reuses from the cache) every member, projects each
stable member's force constants onto θ, chooses the reference member, takes the
ensemble bounds, ranks the parameters by sensitivity and writes, atomically, into the
material's data folder (``src/fcinv/data/<Mat>/``):

``ensemble.json``
    Per-member records (package, version, lattice constant, frequencies at the
    high-symmetry points with mode labels, stability, wall time, θ and projection
    residuals), the dropped members with their reason, the reference member and why,
    the bounds, the sensitivity table, the ranking and the sampled parameters.
``reference_fc.hdf5``
    The reference member's compact force constants (phonopy layout: ``force_constants``
    (n_prim, n_super, 3, 3) eV/Å² and ``p2s_map``), the supercell matrix and the unit cell
    (primitive lattice, fractional positions, atomic numbers, masses) they belong to.
``members_fc.hdf5``
    Every stable member's compact force constants (``members/<name>/``, the same layout),
    so the bounds of any shell count are min/max over the members (not one member ± h).
``provenance.json``
    Members and package versions, supercell, displacement, lattice constant, the exact
    command, date, fcinv version, the convergence measurement when it was run.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

import fcinv
from fcinv.crystal import Crystal, default_grid, material_dir
from fcinv.io import jsonable
from fcinv.mlff.ensemble import Member
from fcinv.mlff.phonons import PhononSettings, scaled_crystal
from fcinv.mlff.runner import (
    MemberResult,
    atomic_write_h5,
    atomic_write_text,
    run_ensemble,
)
from fcinv.mlff.sensitivity import (
    SENSITIVITY_MEASURE,
    EnsembleError,
    choose_reference,
    ensemble_bounds,
    sensitivity,
)

# the readers live in the core (fcinv.reference), which runs without the [mlff] extra
from fcinv.reference import (
    ENSEMBLE_FILE,
    MEMBERS_FC_FILE,
    PROVENANCE_FILE,
    REFERENCE_FC_FILE,
    load_ensemble,
    read_reference_fc,
)

log = logging.getLogger(__name__)


REFERENCE_RULE = "the stable member whose frequencies at the reported high-symmetry points (all branches) are closest in rms to the ensemble median (median over stable members)"


def _member_crystal(crystal: Crystal, res: MemberResult) -> Crystal:
    if res.lattice_a is None or abs(res.lattice_a - crystal.conventional_a) < 1e-9:
        return crystal
    return scaled_crystal(crystal, res.lattice_a)


def project_results(crystal: Crystal, space, results: list[MemberResult]) -> dict[str, Any]:
    """Project every member with force constants onto θ: name → :class:`fcinv.fcspace.Projection`."""
    out = {}
    for res in results:
        if res.fc is None:
            continue
        c = _member_crystal(crystal, res)
        out[res.name] = space.project_phonopy(
            res.fc, c.to_phonopy_atoms(), np.array(res.settings["supercell_matrix"])
        )
    return out


def reference_pairs(crystal: Crystal, res: MemberResult):
    """The member's full force-constant set as a :class:`fcinv.fcspace.PairFC` on ``crystal``."""
    from fcinv.fcspace import pairs_from_phonopy

    c = _member_crystal(crystal, res)
    return pairs_from_phonopy(
        crystal, res.fc, c.to_phonopy_atoms(), np.array(res.settings["supercell_matrix"])
    )


def path_bin_frequencies(crystal: Crystal, res: MemberResult) -> list[list[float]]:
    """The member's frequencies on the default grid's q bins, shape (n_q, n_modes), THz (3 decimals)."""
    from fcinv.mlff.phonons import frequencies_thz, phonopy_from_fc

    c = _member_crystal(crystal, res)
    q_bins = default_grid(crystal).q_rlu
    f = frequencies_thz(phonopy_from_fc(c, res.fc, res.settings["supercell_matrix"]), c, q_bins)
    return np.round(f, 3).tolist()


def _material_broadening(crystal: Crystal):
    """The material's energy broadening (:attr:`fcinv.material.Material.broadening`), as the core's forward model uses it."""
    from fcinv.errors import MaterialError
    from fcinv.forward.model import Broadening
    from fcinv.material import Material

    try:
        return Material.from_name(crystal.name).broadening
    except MaterialError:
        return Broadening()


def check_symmetry(crystal: Crystal, results: list[MemberResult]) -> tuple[list[MemberResult], dict]:
    """Leave out every stable member whose set is not symmetric under ``crystal``'s space group.

    Such a set was computed on another cell or setting (:mod:`fcinv.mlff.symmetry`); its status becomes
    ``"asymmetric"`` with the reason, so it is neither a bound nor the reference. Returns the results
    (the others unchanged) and every checked member's relative residual (name → r).
    """
    from dataclasses import replace

    from fcinv.mlff.symmetry import SYMMETRY_TOL, asymmetry_reason, symmetry_residual

    out, residuals = [], {}
    for r in results:
        if r.status == "stable" and r.fc is not None:
            res = symmetry_residual(_member_crystal(crystal, r), r.fc, r.settings["supercell_matrix"])
            residuals[r.name] = res
            if res > SYMMETRY_TOL:
                log.warning("%s left out: %s", r.name, asymmetry_reason(res))
                r = replace(r, status="asymmetric", reason=asymmetry_reason(res))
        out.append(r)
    return out, residuals


def analyse(crystal: Crystal, results: list[MemberResult]) -> dict:
    """θ, reference, bounds and sensitivity of an ensemble's results: ``results`` (the members, those
    whose set is not symmetric on ``crystal`` marked ``"asymmetric"``, :func:`check_symmetry`),
    ``symmetry_residuals``, ``space``, ``projections`` (name → Projection), ``stable`` (results),
    ``reference`` (the reference result), ``distances``, ``theta_ref``, ``lower``, ``upper``, ``grid``,
    ``broadening``, ``sens``."""
    from fcinv.fcspace import FCSpace
    from fcinv.forward.model import ForwardModel

    space = FCSpace.for_material(crystal)
    results, residuals = check_symmetry(crystal, results)
    proj = project_results(crystal, space, results)
    stable = [r for r in results if r.status == "stable"]
    if not stable:
        raise EnsembleError(
            f"no stable member among {[r.name for r in results]} for {crystal.name}. Check the failures and instabilities in the cache, or add members."
        )
    points = {r.name: {lab: v["freqs_THz"] for lab, v in r.summary["points"].items()} for r in stable}
    ref_name, distances = choose_reference(points)
    ref = next(r for r in stable if r.name == ref_name)
    theta = np.array([proj[r.name].theta for r in stable])
    lower, upper = ensemble_bounds(theta)
    theta_ref = proj[ref_name].theta
    grid = default_grid(crystal)
    model = ForwardModel(
        space,
        grid,
        theta_ref,
        reference=reference_pairs(crystal, ref),
        broadening=_material_broadening(crystal),
    )
    return {
        "results": results,
        "symmetry_residuals": residuals,
        "space": space,
        "projections": proj,
        "stable": stable,
        "reference": ref,
        "distances": distances,
        "theta_ref": theta_ref,
        "lower": lower,
        "upper": upper,
        "grid": grid,
        "broadening": model.broadening,
        "sens": sensitivity(model, lower, upper),
    }


_NUMBER_LIST = re.compile(r"\[\s*(-?[0-9][-0-9.eE+]*(?:\s*,\s*-?[0-9][-0-9.eE+]*)*)\s*\]")


def dumps(obj: Any) -> str:
    """JSON with one-space indentation and innermost lists of numbers kept on one line."""
    text = json.dumps(jsonable(obj), indent=1, ensure_ascii=False)
    return (
        _NUMBER_LIST.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
        + "\n"
    )


def write_fc_group(
    h5,
    *,
    force_constants: np.ndarray,
    p2s_map: np.ndarray,
    supercell_matrix: np.ndarray,
    lattice: np.ndarray,
    positions: np.ndarray,
    numbers: np.ndarray,
    masses: np.ndarray,
    attrs: dict | None = None,
) -> None:
    """One compact force-constant set with its supercell and unit cell into an HDF5 file or group:
    the layout :func:`fcinv.reference.read_reference_fc` reads (both Stage I routes write it)."""
    d = h5.create_dataset("force_constants", data=np.asarray(force_constants, float), compression="gzip")
    d.attrs["unit"] = "eV/Angstrom^2"
    d.attrs["layout"] = "phonopy compact (n_unit, n_super, 3, 3)"
    h5.create_dataset("p2s_map", data=np.asarray(p2s_map, dtype=int))
    h5.create_dataset("supercell_matrix", data=np.asarray(supercell_matrix, dtype=int))
    g = h5.create_group("unitcell")
    g.create_dataset("lattice", data=np.asarray(lattice, float)).attrs["unit"] = "Angstrom"
    g.create_dataset("positions", data=np.asarray(positions, float)).attrs["unit"] = "fractional"
    g.create_dataset("numbers", data=np.asarray(numbers, dtype=int))
    g.create_dataset("masses", data=np.asarray(masses, float)).attrs["unit"] = "amu"
    for k, v in (attrs or {}).items():
        h5.attrs[k] = v


def _member_fc(crystal: Crystal, res: MemberResult) -> dict:
    """A force-field member's :func:`write_fc_group` arguments."""
    c = _member_crystal(crystal, res)
    return {
        "force_constants": res.fc,
        "p2s_map": res.p2s_map,
        "supercell_matrix": np.array(res.settings["supercell_matrix"]),
        "lattice": c.lattice,
        "positions": c.positions,
        "numbers": c.numbers,
        "masses": c.masses,
        "attrs": {
            "member": res.name,
            "lattice_a_A": float(c.conventional_a),
            "displacement_A": float(res.settings["displacement_A"]),
        },
    }


def write_fc_file(path: Path, material: str, fc: dict, *, command: str) -> None:
    """``reference_fc.hdf5``: one :func:`write_fc_group` set (``fc``: its arguments), atomic."""

    def write(h5):
        write_fc_group(h5, **fc)
        h5.attrs["material"] = material
        h5.attrs["fcinv_version"] = fcinv.__version__
        h5.attrs["command"] = command

    atomic_write_h5(path, write)


def write_members_file(path: Path, material: str, sets: dict[str, dict], *, command: str) -> None:
    """``members_fc.hdf5``: every stable member's (or phonopy set's) compact force constants under
    ``members/<name>/`` (``sets``: name → :func:`write_fc_group` arguments), atomic, so the bounds of
    any shell count come from every member."""

    def write(h5):
        for name, fc in sets.items():
            write_fc_group(h5.create_group(f"members/{name}"), **fc)
        h5.attrs["material"] = material
        h5.attrs["members"] = ",".join(sets)
        h5.attrs["fcinv_version"] = fcinv.__version__
        h5.attrs["command"] = command

    atomic_write_h5(path, write)


def write_reference_fc(path: Path, crystal: Crystal, res: MemberResult, *, command: str) -> None:
    """Write a member's compact force constants with their supercell and unit cell (atomic)."""
    write_fc_file(path, crystal.name, _member_fc(crystal, res), command=command)


def write_members_fc(path: Path, crystal: Crystal, results: list[MemberResult], *, command: str) -> None:
    """Write every stable member's compact force constants (``members/<name>/``, the layout of
    ``reference_fc.hdf5`` per group), so the bounds of any shell count come from every member."""
    stable = [r for r in results if r.status == "stable" and r.fc is not None]
    write_members_file(path, crystal.name, {r.name: _member_fc(crystal, r) for r in stable}, command=command)


def ensemble_document(
    *,
    material: str,
    crystal: Crystal,
    space,
    members: list[dict],
    stable: list[str],
    reference: dict,
    theta_ref: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    grid,
    broadening,
    sens,
    top_k: int,
    command: str,
    created: str,
    header: dict | None = None,
    bounds_extra: dict | None = None,
    dropped: list[dict] | None = None,
) -> dict:
    """The content of ``ensemble.json``, for both Stage I routes (force-field ensemble:
    :func:`build_reference`; phonopy sets: :func:`fcinv.prepare.stage1.reference_from_phonopy`).

    ``header`` (route-specific keys after ``command``: ``source``, ``relax``, ``settings`` ...),
    ``members`` (per-member rows), ``reference`` (name, rule, distances), ``sens`` a
    :class:`fcinv.mlff.sensitivity.Sensitivity` over (lower, upper) on ``grid`` with ``broadening``,
    ``bounds_extra`` (e.g. the widening rule of phonopy sets).
    """
    names = list(space.names)
    ranked = sens.top(min(top_k, space.n_params))
    return {
        "format": "fcinv-ensemble",
        "format_version": 1,
        "material": material,
        "fcinv_version": fcinv.__version__,
        "created": created,
        "command": command,
        **(header or {}),
        "structure_a_A": round(crystal.conventional_a, 6),
        "members": members,
        "dropped": list(dropped or []),
        "space": {
            "cutoff_A": space.cutoff,
            "n_params": space.n_params,
            "names": names,
            "parameters": jsonable(space.describe()),
        },
        "stable_members": list(stable),
        "reference_member": reference,
        "theta_ref": dict(zip(names, np.asarray(theta_ref, float).tolist())),
        "bounds": {
            "lower": dict(zip(names, np.asarray(lower, float).tolist())),
            "upper": dict(zip(names, np.asarray(upper, float).tolist())),
            "over": list(stable),
            "unit": "eV/Å^2",
            **(bounds_extra or {}),
        },
        "sensitivity": {
            "measure": SENSITIVITY_MEASURE,
            "grid": {"n_q": grid.n_q, "n_E": grid.n_e, "labels": list(grid.labels)},
            "broadening": broadening.as_dict(),
            "rows": sens.rows(),
        },
        "ranking": sens.ranking,
        "top_k": len(ranked),
        "sampled": [{"label": f"FC{i}", "name": n} for i, n in enumerate(ranked)],
        "fixed": [n for n in names if n not in ranked],
    }


def default_command() -> str:
    return (
        " ".join(["fcinv", *sys.argv[1:]])
        if sys.argv and Path(sys.argv[0]).name == "fcinv"
        else " ".join(sys.argv)
    )


def build_reference(
    crystal: Crystal,
    members: list[Member],
    settings: PhononSettings,
    *,
    workdir: str | Path,
    out_dir: str | Path | None = None,
    relax: bool = False,
    top_k: int = 8,
    device: str = "cpu",
    convergence: dict | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the ensemble (cached), analyse it and write the embedded data files.

    Parameters
    ----------
    crystal
        The material at the structure file's lattice constant.
    members, settings, relax, device
        See :func:`fcinv.mlff.runner.run_ensemble`.
    workdir
        Cache folder of the per-member results.
    out_dir
        Where ``ensemble.json``, ``reference_fc.hdf5`` and ``provenance.json`` go; default
        the material's embedded data folder.
    top_k
        Number of sampled parameters.
    convergence
        A :func:`fcinv.mlff.runner.convergence_study` result to record, if any.
    command
        The command line recorded in the files (default: this process's).

    Returns
    -------
    dict
        The content of ``ensemble.json``.
    """
    command = command or default_command()
    out_dir = Path(out_dir) if out_dir is not None else material_dir(crystal.name)
    results = run_ensemble(crystal, members, settings, workdir, relax=relax, device=device, progress=progress)
    an = analyse(crystal, results)
    results = an["results"]
    ref: MemberResult = an["reference"]
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    member_rows = []
    for r in results:
        row = r.record()
        if r.name in an["symmetry_residuals"]:
            row["symmetry_residual"] = an["symmetry_residuals"][r.name]
        if r.name in an["projections"]:
            row["projection"] = an["projections"][r.name].as_dict()
        if r.fc is not None:
            row["path_freqs_THz"] = path_bin_frequencies(crystal, r)
        member_rows.append(row)
    ensemble = ensemble_document(
        material=crystal.name,
        crystal=crystal,
        space=an["space"],
        members=member_rows,
        stable=[r.name for r in an["stable"]],
        reference={"name": ref.name, "rule": REFERENCE_RULE, "rms_distance_to_median_THz": an["distances"]},
        theta_ref=an["theta_ref"],
        lower=an["lower"],
        upper=an["upper"],
        grid=an["grid"],
        broadening=an["broadening"],
        sens=an["sens"],
        top_k=top_k,
        command=command,
        created=created,
        header={
            "units": {"theta": "eV/Å^2", "frequencies": "THz", "lattice_a": "Å", "wall_s": "s"},
            "relax": relax,
            "settings": settings.to_dict(),
        },
        dropped=[
            {"name": r.name, "status": r.status, "reason": r.reason} for r in results if r.status != "stable"
        ],
    )
    provenance = {
        "material": crystal.name,
        "fcinv_version": fcinv.__version__,
        "created": created,
        "command": command,
        "python": sys.version.split()[0],
        "structure_a_A": round(crystal.conventional_a, 6),
        "relax": relax,
        "lattice_a_A": {r.name: r.lattice_a for r in results},
        "settings": settings.to_dict(),
        "supercell_in": "primitive cell (spglib standard setting)",
        "members": [{**r.member, "weights_sha256": r.weights_sha256} for r in results],
        "packages": _package_versions(),
        "reference_member": ref.name,
        "convergence": convergence,
        "files": [ENSEMBLE_FILE, REFERENCE_FC_FILE, MEMBERS_FC_FILE, PROVENANCE_FILE],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    write_reference_fc(out_dir / REFERENCE_FC_FILE, crystal, ref, command=command)
    write_members_fc(out_dir / MEMBERS_FC_FILE, crystal, results, command=command)
    atomic_write_text(out_dir / ENSEMBLE_FILE, dumps(ensemble))
    atomic_write_text(out_dir / PROVENANCE_FILE, dumps(provenance))
    return ensemble


def _package_versions() -> dict[str, str | None]:
    import importlib.metadata as md

    out = {}
    for pkg in ("phonopy", "ase", "spglib", "numpy", "torch", "chgnet", "sevenn"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


__all__ = [
    "analyse",
    "check_symmetry",
    "build_reference",
    "load_ensemble",
    "project_results",
    "read_reference_fc",
    "reference_pairs",
    "ensemble_document",
    "write_fc_file",
    "write_fc_group",
    "write_members_fc",
    "write_members_file",
    "write_reference_fc",
]
