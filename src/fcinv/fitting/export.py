"""Write θ back as a force-constant set that phonopy and Euphonic load directly.

Output folder:

- ``POSCAR``: the crystal's primitive cell (spglib standard setting, the cell fcinv uses);
  q in fcinv's output is in r.l.u. of the *conventional* cell (see ``README.txt`` and
  :func:`cell_note`);
- ``FORCE_CONSTANTS``: phonopy's text format, eV/Å², compact (n_prim, n_sc, 3, 3) by default
  or full (n_sc, n_sc, 3, 3);
- ``phonopy.yaml``: the structure, masses and supercell matrix (no force constants) —
  Euphonic's ``ForceConstants.from_phonopy(path=OUT)`` reads it with ``FORCE_CONSTANTS``;
- ``phonopy_params.yaml``: the same with the (compact) force constants — ``phonopy.load``
  reads it alone;
- ``euphonic_force_constants.json``: Euphonic's own format
  (``euphonic.ForceConstants.from_json_file``), when Euphonic is installed;
- ``theta.csv``: ``index,name,theta,sigma,unit`` of the exported θ (σ where the input gave one);
- ``README.txt``: what each file is, which cell the POSCAR is and how q in r.l.u. maps onto it;
- ``fcinv_export.json``: θ by name, the supercell, masses, the self-check and provenance.

Which set is written: without a reference, the force constants of θ alone (every
pair within the cutoff, on-site terms from the acoustic sum rule). With a full
reference set (the ``D_ref`` of the forward model, e.g. the embedded force-field
reference), the reference plus Σ_p (θ − θ_ref)_p × (unit FC array of p), so the
exported set reproduces the forward model exactly, beyond-cutoff terms included
(θ = θ_ref exports the reference set itself).
The reference must be folded onto the supercell it was computed in (or a multiple
of it); every export checks phonopy's frequencies of the written set against the
forward model along the default path and on a 4×4×4 mesh (relative 1e-6).

Masses: ``POSCAR`` carries none, so phonopy reading POSCAR + FORCE_CONSTANTS uses its
own table (Ge 72.64 amu vs fcinv's ASE value 72.63: a 7e-5 relative frequency shift);
the YAML and Euphonic files carry fcinv's masses and reproduce the model exactly.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcinv.errors import ForceConstantError
from fcinv.units import THZ_TO_MEV

log = logging.getLogger(__name__)

#: Relative frequency agreement the export self-check demands (floor 1 meV).
EXPORT_RTOL = 1e-6


@dataclass
class ExportResult:
    """What :func:`export_phonopy` wrote.

    Attributes
    ----------
    outdir
        The output folder.
    files
        Kind (``poscar``, ``force_constants``, ``phonopy_yaml``, ``phonopy_params``,
        ``euphonic_json``, ``theta_csv``, ``readme``, ``json``) → path.
    supercell
        Shape (3, 3) int: the supercell matrix relative to the primitive cell.
    max_rel_dev
        Largest relative deviation (floor 1 meV) of phonopy's frequencies of the written
        set from the forward model's, or None when the check was skipped.
    cell_note
        What the POSCAR cell is and how q in r.l.u. maps onto it (also in ``README.txt``).
    notes
        Files not written and why (e.g. no Euphonic installed).
    """

    outdir: Path
    files: dict[str, Path] = field(default_factory=dict)
    supercell: np.ndarray | None = None
    max_rel_dev: float | None = None
    cell_note: str = ""
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "outdir": str(self.outdir),
            "files": {k: str(v) for k, v in self.files.items()},
            "supercell": None if self.supercell is None else np.asarray(self.supercell).tolist(),
            "max_rel_dev": self.max_rel_dev,
            "cell_note": self.cell_note,
            "notes": list(self.notes),
        }


def _smat(supercell) -> np.ndarray:
    from fcinv.fcspace.pairs import supercell_matrix

    return supercell_matrix(supercell)


def _phonopy(crystal, smat: np.ndarray):
    """A Phonopy of the crystal's (primitive) cell on ``smat``, without a symmetry search.

    The export needs only the supercell, the primitive map and dynamical matrices, none of
    which use symmetry; phonopy's search on a 250-atom supercell took ~4 s per object.
    ``phonopy.load`` of the written files does its own symmetry analysis.
    """
    from phonopy import Phonopy

    return Phonopy(
        crystal.to_phonopy_atoms(),
        supercell_matrix=smat,
        primitive_matrix="P",
        is_symmetry=False,
        log_level=0,
    )


def pairs_to_phonopy(pairs, supercell_matrix, *, compact: bool = False, phonopy=None) -> np.ndarray:
    """Fold a pair list onto a phonopy supercell of the crystal's primitive cell.

    Every pair (i, j, d) adds its tensor to the block of (primitive atom i, the supercell
    atom at r_i + d modulo the supercell). On the supercell a PairFC was read from (see
    :func:`~fcinv.fcspace.pairs_from_phonopy`) this restores the original array, so phonopy
    then builds the same dynamical matrices.

    Parameters
    ----------
    pairs
        A :class:`~fcinv.fcspace.PairFC`.
    supercell_matrix
        3 integers or a (3, 3) integer matrix, relative to the primitive cell.
    compact
        Return phonopy's compact layout (n_prim, n_sc, 3, 3) instead of the full one.
    phonopy
        A Phonopy object of this crystal and supercell to reuse (one is built otherwise).

    Returns
    -------
    numpy.ndarray
        Shape (n_sc, n_sc, 3, 3) (or compact) float64, eV/Å², phonopy's supercell order.
    """
    from scipy.spatial import cKDTree

    crystal = pairs.crystal
    ph = phonopy if phonopy is not None else _phonopy(crystal, _smat(supercell_matrix))
    sc, prim = ph.supercell, ph.primitive
    p2s = np.asarray(prim.p2s_map)
    lat = sc.cell
    frac = np.mod(sc.scaled_positions, 1.0)
    frac[frac >= 1.0] = 0.0
    home = sc.scaled_positions[p2s] @ lat  # Cartesian positions of the primitive atoms
    target = home[pairs.i] + pairs.d_conv @ crystal.conventional_lattice
    tf = np.mod(target @ np.linalg.inv(lat), 1.0)
    tf[tf >= 1.0] = 0.0
    dist, idx = cKDTree(frac, boxsize=1.0).query(tf)
    if np.any(dist > 1e-5):
        raise ForceConstantError(
            "a force-constant pair does not land on a supercell atom. The pairs belong to another structure; rebuild them for this crystal."
        )
    s2p = np.asarray(sc.s2p_map if hasattr(sc, "s2p_map") else prim.s2p_map)
    prim_index = {int(s): a for a, s in enumerate(p2s)}
    j_found = np.array([prim_index[int(s2p[s])] for s in idx])
    if np.any(j_found != pairs.j):
        raise ForceConstantError(
            "force-constant pairs point at atoms of the wrong kind in the supercell. Rebuild the pairs for this crystal."
        )
    fc = np.zeros((len(p2s), len(frac), 3, 3))
    np.add.at(fc, (pairs.i, idx), pairs.tensors)
    if compact:
        return fc
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    return compact_fc_to_full_fc(prim, fc)


def force_constants_array(
    space,
    theta_full,
    supercell,
    *,
    reference=None,
    theta_ref=None,
    compact: bool = False,
    phonopy=None,
) -> np.ndarray:
    """The phonopy force-constant array of a full θ (about a reference set, if given).

    Parameters
    ----------
    space
        The FC space.
    theta_full
        Shape (n_params,), eV/Å².
    supercell
        3 integers or (3, 3), relative to the primitive cell. With a reference: the supercell
        the reference was computed in (or a multiple).
    reference, theta_ref
        A full reference PairFC and its projection θ_ref: the result is
        reference + Σ (θ − θ_ref)_p × unit arrays.
    compact
        Phonopy's compact layout (n_prim, n_sc, 3, 3) instead of the full one.
    phonopy
        A Phonopy object of this crystal and supercell to reuse (one is built otherwise).

    Returns
    -------
    numpy.ndarray
        Shape (n_sc, n_sc, 3, 3) or (n_prim, n_sc, 3, 3) float64, eV/Å².
    """
    theta_full = space.check_theta(theta_full)
    smat = _smat(supercell)
    if reference is not None and theta_ref is None:
        raise ForceConstantError(
            "exporting about a reference FC set needs its projection theta_ref. Pass theta_ref=space.project(reference).theta."
        )
    ph = phonopy if phonopy is not None else _phonopy(space.crystal, smat)
    p2s = np.asarray(ph.primitive.p2s_map)
    if reference is None:
        fc = space.to_phonopy(theta_full, smat)[p2s]
    else:
        delta = theta_full - space.check_theta(theta_ref, what="theta_ref")
        fc = pairs_to_phonopy(reference, smat, compact=True, phonopy=ph)
        fc += space.to_phonopy(delta, smat)[p2s]
    fc = np.ascontiguousarray(fc)
    if compact:
        return fc
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    return compact_fc_to_full_fc(ph.primitive, fc)


def check_export(
    space,
    fc: np.ndarray,
    smat: np.ndarray,
    theta_full,
    *,
    reference=None,
    theta_ref=None,
    q_rlu: np.ndarray | None = None,
    phonopy=None,
) -> float:
    """Largest relative deviation (floor 1 meV) of phonopy's frequencies of ``fc`` from the forward model's.

    ``fc`` may be full or compact; ``phonopy`` is a Phonopy of the crystal on ``smat`` to reuse.
    """
    from fcinv.crystal import build_path
    from fcinv.fitting.dispersion_fit import model_energies
    from fcinv.forward import mesh_qpoints

    crystal = space.crystal
    if q_rlu is None:
        q_rlu = np.vstack([build_path(crystal)[0], mesh_qpoints(space, 4)])
    ph = phonopy if phonopy is not None else _phonopy(crystal, smat)
    ph.force_constants = fc
    ph.run_qpoints(crystal.rlu_to_prim_frac(q_rlu))
    theirs = ph.qpoints.frequencies * THZ_TO_MEV
    ours = model_energies(space, theta_full, q_rlu, reference=reference, theta_ref=theta_ref)
    return float((np.abs(theirs - ours) / np.maximum(np.abs(ours), 1.0)).max())


def _atomic(path: Path, writer) -> None:
    """Run ``writer(tmp_path)`` on a temporary name in the same folder, then move it onto ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        writer(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _summary_yaml(ph, path: str) -> None:
    """phonopy.yaml without force constants, declaring their unit so Euphonic reads FORCE_CONSTANTS beside it."""
    ph.save(path, settings={"force_constants": False})
    lines = Path(path).read_text().splitlines(keepends=True)
    if "physical_unit:\n" in lines:
        i = lines.index("physical_unit:\n") + 1
        block = []
        while i + len(block) < len(lines) and lines[i + len(block)].startswith("  "):
            block.append(lines[i + len(block)])
        if not any(b.lstrip().startswith("force_constants:") for b in block):
            lines.insert(i, '  force_constants: "eV/angstrom^2"\n')
    Path(path).write_text("".join(lines))


def _atoms(n: int) -> str:
    return f"{n} atom" + ("" if n == 1 else "s")


def cell_note(crystal) -> str:
    """What the exported POSCAR cell is and how fcinv's q (conventional r.l.u.) maps onto it.

    Parameters
    ----------
    crystal
        The :class:`~fcinv.crystal.Crystal` exported.

    Returns
    -------
    str
        A few lines: the cell (primitive or conventional, atoms, lattice vectors), the matrix M
        with q_POSCAR = q_rlu @ M (row vectors; phonopy's and Euphonic's q-points are fractional
        coordinates of the POSCAR's reciprocal cell) and an example.
    """
    prim = np.asarray(crystal.lattice, float)
    conv = np.asarray(crystal.conventional_lattice, float)
    m = np.linalg.inv(conv).T @ prim.T  # q_prim_frac = q_rlu @ m (Crystal.rlu_to_prim_frac)
    n_conv = int(round(abs(np.linalg.det(conv) / np.linalg.det(prim)))) * crystal.n_atoms

    def vec(v) -> str:
        return "(" + ", ".join(f"{x:.6g}" for x in np.where(np.abs(v) < 1e-12, 0.0, v)) + ")"

    same = np.allclose(prim, conv, atol=1e-8)
    kind = (
        "the conventional cell (here also the primitive one)"
        if same
        else f"the PRIMITIVE cell ({_atoms(crystal.n_atoms)}; the conventional cell has {n_conv})"
    )
    example = np.array([1.0, 0.0, 0.0])
    lines = [
        f"POSCAR is {kind} of {crystal.name} (spglib standard setting), lattice vectors as rows (Å):",
        *(f"    a{i + 1} = {vec(a)}" for i, a in enumerate(prim)),
        "q in fcinv (paths, folded files, tables) is in r.l.u. of the CONVENTIONAL cell:",
        *(f"    A{i + 1} = {vec(a)}" for i, a in enumerate(conv)),
        "phonopy's and Euphonic's q-points are fractional coordinates of the POSCAR cell's reciprocal lattice:",
        "    q_POSCAR = q_rlu @ M (row vectors), M =",
        *(f"        {vec(r)}" for r in m),
        f"    e.g. q_rlu {vec(example)} -> q_POSCAR {vec(example @ m)}"
        + ("" if same else "; use crystal.rlu_to_prim_frac in Python"),
    ]
    return "\n".join(lines)


def theta_sigma_rows(names, theta_full, sigma: dict | None = None) -> str:
    """CSV text ``index,name,theta,sigma,unit`` (σ empty where not known).

    Parameters
    ----------
    names
        Parameter names, in θ order.
    theta_full
        Shape (n_params,), eV/Å².
    sigma
        σ by name (eV/Å²); names without one get an empty σ field, ``inf`` stays ``inf``.
    """
    sigma = sigma or {}
    rows = ["index,name,theta,sigma,unit"]
    for i, (n, t) in enumerate(zip(names, np.asarray(theta_full, float))):
        sg = sigma.get(n)
        rows.append(f"{i},{n},{t:.10g},{'' if sg is None else f'{float(sg):.10g}'},eV/Å^2")
    return "\n".join(rows) + "\n"


def _readme(crystal, files: dict[str, Path], info: dict, note: str) -> str:
    what = {
        "poscar": "the crystal structure (no masses)",
        "force_constants": f"phonopy FORCE_CONSTANTS, eV/Å², {info['force_constants_layout']} layout",
        "phonopy_yaml": "structure, masses, supercell (no FCs): Euphonic reads it with FORCE_CONSTANTS",
        "phonopy_params": "phonopy.load(...) reads it alone (structure, masses, supercell, FCs)",
        "euphonic_json": "euphonic.ForceConstants.from_json_file(...)",
        "theta_csv": "index,name,theta,sigma,unit of the exported parameters (sigma empty if not given)",
        "json": "fcinv's record: θ, supercell, masses, the self-check, provenance",
        "readme": "this file",
    }
    smat = np.asarray(info["supercell_matrix"])
    lines = [
        f"fcinv export of {crystal.name}: {info['what']}",
        f"supercell matrix (relative to the POSCAR cell): {smat.tolist()}",
        "",
        note,
        "",
        "files:",
        *(f"  {p.name:<32} {what.get(k, '')}" for k, p in files.items()),
        "",
        "load:",
        "  phonopy:  ph = phonopy.load('phonopy_params.yaml'); ph.run_qpoints(q_POSCAR)",
        "            or phonopy.load(unitcell_filename='POSCAR', force_constants_filename='FORCE_CONSTANTS',",
        f"                            supercell_matrix={smat.tolist()}, primitive_matrix='P')",
        "            (then set ph.masses from phonopy.yaml: POSCAR has no masses)",
        "  Euphonic: "
        + (
            "euphonic.ForceConstants.from_json_file('euphonic_force_constants.json')\n            or "
            if "euphonic_json" in files
            else ""
        )
        + "euphonic.ForceConstants.from_phonopy(path='.')",
        *info.get("notes", []),
    ]
    if info.get("check_max_rel_dev") is not None:
        lines += [
            "",
            f"check: phonopy's frequencies of these files match fcinv's forward model to "
            f"{info['check_max_rel_dev']:.1e} (relative, floor 1 meV) on the default path and a 4x4x4 mesh",
        ]
    return "\n".join(lines) + "\n"


def sigma_from_json(doc: dict) -> dict[str, float | None]:
    """σ by name from a result JSON (an ``FCResult``, a fit, ``{name: {theta, sigma}}``); {} if none.

    Values are floats, or None where the file has no finite σ for that name.
    """

    def num(v):
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    if isinstance(doc.get("sigma"), dict):
        return {str(k): num(v) for k, v in doc["sigma"].items()}
    for key in ("theta_full", "theta", "refined", "ml", None):
        src = doc if key is None else doc.get(key)
        if isinstance(src, dict):
            nested = {str(k): num(v.get("sigma")) for k, v in src.items() if isinstance(v, dict)}
            if any(v is not None for v in nested.values()):
                return nested
    return {}


def _write_euphonic(out: Path, path: Path) -> None:
    """Euphonic's own JSON of the exported set, read back by Euphonic from phonopy.yaml + FORCE_CONSTANTS."""
    import contextlib
    import io

    from euphonic import ForceConstants

    with contextlib.redirect_stdout(io.StringIO()):  # Euphonic prints what it reads and writes
        fc = ForceConstants.from_phonopy(
            path=str(out), summary_name="phonopy.yaml", fc_name="FORCE_CONSTANTS"
        )
        _atomic(path, lambda p: fc.to_json_file(p))


def export_phonopy(
    outdir: str | Path,
    space,
    theta_full,
    *,
    reference=None,
    theta_ref=None,
    supercell=None,
    compact: bool = True,
    check: bool = True,
    euphonic: bool = True,
    sigma: dict | None = None,
    meta: dict | None = None,
    command: str | None = None,
) -> ExportResult:
    """Write θ as phonopy, Euphonic and CSV files (see the module docstring for the folder).

    Parameters
    ----------
    outdir
        Output folder (created; existing files of the same names are replaced).
    space
        The FC space of the crystal.
    theta_full
        Shape (n_params,), eV/Å²: every parameter (fitted or inferred ones and the fixed rest).
    reference, theta_ref
        Optional full reference FC set (PairFC) and its projection; then the export is
        reference + Σ (θ − θ_ref) × unit arrays (θ = θ_ref: the reference set itself).
    supercell
        3 integers or (3, 3) relative to the primitive cell; default: the material's
        ``supercell`` in ``material.json``. With a reference, pass the reference's supercell.
    compact
        Write FORCE_CONSTANTS in phonopy's compact layout (n_prim × n_sc blocks); False
        writes the full n_sc × n_sc layout (125 times larger for a 2-atom cell on 5×5×5).
    check
        Verify with phonopy that the written set reproduces the forward model (raises
        :class:`~fcinv.errors.ForceConstantError` beyond 1e-6 relative).
    euphonic
        Also write ``euphonic_force_constants.json`` (skipped, with a note, when Euphonic is
        not installed).
    sigma
        σ by parameter name (eV/Å²) for ``theta.csv``.
    meta
        Extra provenance stored in ``fcinv_export.json``.
    command
        The command line, for the provenance.

    Returns
    -------
    ExportResult
    """
    from phonopy.file_IO import write_FORCE_CONSTANTS
    from phonopy.interface.vasp import write_vasp

    import fcinv

    crystal = space.crystal
    theta_full = space.check_theta(theta_full)
    if supercell is None:
        if reference is not None:
            raise ForceConstantError(
                "exporting about a reference FC set needs the supercell it was computed in. Pass supercell=(n, n, n)."
            )
        from fcinv.crystal import material_info
        from fcinv.errors import MaterialError

        try:
            supercell = material_info(crystal.name).get("supercell")
        except MaterialError:
            supercell = None
        if supercell is None:
            raise ForceConstantError(
                f"no default supercell for '{crystal.name}'. Pass supercell=(n, n, n) (bonds must be shorter than half its shortest translation)."
            )
    smat = _smat(supercell)
    ph = _phonopy(crystal, smat)
    p2s = np.asarray(ph.primitive.p2s_map)
    fc_compact = force_constants_array(
        space, theta_full, smat, reference=reference, theta_ref=theta_ref, compact=True, phonopy=ph
    )
    dev = None
    if check:
        dev = check_export(
            space, fc_compact, smat, theta_full, reference=reference, theta_ref=theta_ref, phonopy=ph
        )
        if not dev <= EXPORT_RTOL:
            hint = (
                " Use the supercell the reference FC set was computed in."
                if reference is not None
                else " Use a larger supercell."
            )
            raise ForceConstantError(
                f"the exported force constants on supercell {np.diag(smat).tolist()} reproduce the forward model only to {dev:.1e} (relative).{hint}"
            )
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "poscar": out / "POSCAR",
        "force_constants": out / "FORCE_CONSTANTS",
        "phonopy_yaml": out / "phonopy.yaml",
        "phonopy_params": out / "phonopy_params.yaml",
    }
    _atomic(files["poscar"], lambda p: write_vasp(p, crystal.to_phonopy_atoms()))
    if compact:
        _atomic(
            files["force_constants"], lambda p: write_FORCE_CONSTANTS(fc_compact, filename=p, p2s_map=p2s)
        )
    else:
        from phonopy.harmonic.force_constants import compact_fc_to_full_fc

        fc_full = compact_fc_to_full_fc(ph.primitive, fc_compact)
        _atomic(files["force_constants"], lambda p: write_FORCE_CONSTANTS(fc_full, filename=p))
    _atomic(files["phonopy_yaml"], lambda p: _summary_yaml(ph, p))
    ph.force_constants = fc_compact
    _atomic(files["phonopy_params"], lambda p: ph.save(p, settings={"force_constants": True}))
    notes: list[str] = []
    if euphonic:
        import importlib.util

        if importlib.util.find_spec("euphonic") is None:
            notes.append(
                "euphonic_force_constants.json not written: Euphonic is not installed (pip install euphonic)"
            )
        else:
            files["euphonic_json"] = out / "euphonic_force_constants.json"
            _write_euphonic(out, files["euphonic_json"])
    files["theta_csv"] = out / "theta.csv"
    _atomic(
        files["theta_csv"],
        lambda p: Path(p).write_text(theta_sigma_rows(space.names, theta_full, sigma), encoding="utf-8"),
    )
    note = cell_note(crystal)
    if reference is None:
        what = "θ alone (pairs within the cutoff)"
    elif theta_ref is not None and np.array_equal(theta_full, np.asarray(theta_ref, float)):
        what = "the reference force-constant set"
    else:
        what = "the reference set + Σ (θ − θ_ref) × unit arrays"
    info = {
        "format": "fcinv-export",
        "fcinv_version": fcinv.__version__,
        "command": command,
        "material": crystal.name,
        "what": what,
        "theta": dict(zip(space.names, theta_full.tolist())),
        "sigma": None if not sigma else {k: sigma.get(k) for k in space.names},
        "unit": "eV/Å^2",
        "about_reference": reference is not None,
        "theta_ref": None
        if theta_ref is None
        else dict(zip(space.names, np.asarray(theta_ref, float).tolist())),
        "supercell_matrix": smat.tolist(),
        "force_constants_layout": "compact" if compact else "full",
        "poscar_cell": "primitive"
        if not np.allclose(crystal.lattice, crystal.conventional_lattice)
        else "conventional",
        "q_rlu_to_poscar_frac": (
            np.linalg.inv(crystal.conventional_lattice).T @ np.asarray(crystal.lattice).T
        ).tolist(),
        "masses_amu": crystal.masses.tolist(),
        "check_max_rel_dev": dev,
        "check": f"phonopy frequencies of the written set vs the forward model, default path + 4x4x4 mesh, relative (floor 1 meV) <= {EXPORT_RTOL}"
        if check
        else "skipped",
        "note_masses": "POSCAR has no masses: phonopy's own table applies when reading POSCAR + FORCE_CONSTANTS; phonopy.yaml / phonopy_params.yaml / the Euphonic JSON carry these masses",
        "notes": notes,
        **(meta or {}),
    }
    files["readme"] = out / "README.txt"
    files["json"] = out / "fcinv_export.json"
    _atomic(
        files["readme"], lambda p: Path(p).write_text(_readme(crystal, files, info, note), encoding="utf-8")
    )
    _atomic(
        files["json"], lambda p: Path(p).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    )
    log.info("exported %s force constants (supercell %s) to %s", crystal.name, np.diag(smat).tolist(), out)
    return ExportResult(outdir=out, files=files, supercell=smat, max_rel_dev=dev, cell_note=note, notes=notes)
