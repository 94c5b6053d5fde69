"""Write θ back as a full force-constant set that phonopy and Euphonic load directly.

Output folder:

- ``POSCAR``: the crystal's primitive cell (spglib standard setting, the cell fcinv uses);
- ``FORCE_CONSTANTS``: phonopy's text format, eV/Å², full (n_sc, n_sc, 3, 3) by default or
  compact (n_prim, n_sc, 3, 3);
- ``phonopy.yaml``: the structure, masses and supercell matrix (no force constants) —
  Euphonic's ``ForceConstants.from_phonopy(path=OUT)`` reads it with ``FORCE_CONSTANTS``;
- ``phonopy_params.yaml``: the same with the (compact) force constants — ``phonopy.load``
  reads it alone;
- ``fcinv_export.json``: θ by name, the supercell, masses, the self-check and provenance.

Which set is written: without a reference, the force constants of θ alone (every
pair within the cutoff, on-site terms from the acoustic sum rule). With a full
reference set (the ``D_ref`` of the forward model, e.g. the embedded force-field
reference), the reference plus Σ_p (θ − θ_ref)_p × (unit FC array of p), so the
exported set reproduces the forward model exactly, beyond-cutoff terms included.
The reference must be folded onto the supercell it was computed in (or a multiple
of it); every export checks phonopy's frequencies of the written set against the
forward model along the default path and on a 4×4×4 mesh (relative 1e-6).

Masses: ``POSCAR`` carries none, so phonopy reading POSCAR + FORCE_CONSTANTS uses its
own table (Ge 72.64 amu vs fcinv's ASE value 72.63: a 7e-5 relative frequency shift);
the YAML files carry fcinv's masses and reproduce the model exactly.
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
        Kind (``poscar``, ``force_constants``, ``phonopy_yaml``, ``phonopy_params``, ``json``) → path.
    supercell
        Shape (3, 3) int: the supercell matrix relative to the primitive cell.
    max_rel_dev
        Largest relative deviation (floor 1 meV) of phonopy's frequencies of the written
        set from the forward model's, or None when the check was skipped.
    """

    outdir: Path
    files: dict[str, Path] = field(default_factory=dict)
    supercell: np.ndarray | None = None
    max_rel_dev: float | None = None

    def as_dict(self) -> dict:
        return {
            "outdir": str(self.outdir),
            "files": {k: str(v) for k, v in self.files.items()},
            "supercell": None if self.supercell is None else np.asarray(self.supercell).tolist(),
            "max_rel_dev": self.max_rel_dev,
        }


def _smat(supercell) -> np.ndarray:
    from fcinv.fcspace.pairs import supercell_matrix

    return supercell_matrix(supercell)


def _phonopy(crystal, smat: np.ndarray):
    from phonopy import Phonopy

    return Phonopy(crystal.to_phonopy_atoms(), supercell_matrix=smat, primitive_matrix=None, log_level=0)


def pairs_to_phonopy(pairs, supercell_matrix, *, compact: bool = False) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        Shape (n_sc, n_sc, 3, 3) (or compact) float64, eV/Å², phonopy's supercell order.
    """
    from scipy.spatial import cKDTree

    crystal = pairs.crystal
    ph = _phonopy(crystal, _smat(supercell_matrix))
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
    space, theta_full, supercell, *, reference=None, theta_ref=None, compact: bool = False
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

    Returns
    -------
    numpy.ndarray
        Shape (n_sc, n_sc, 3, 3) or (n_prim, n_sc, 3, 3) float64, eV/Å².
    """
    theta_full = space.check_theta(theta_full)
    smat = _smat(supercell)
    if reference is None:
        fc = space.to_phonopy(theta_full, smat)
    else:
        if theta_ref is None:
            raise ForceConstantError(
                "exporting about a reference FC set needs its projection theta_ref. Pass theta_ref=space.project(reference).theta."
            )
        delta = theta_full - space.check_theta(theta_ref, what="theta_ref")
        fc = pairs_to_phonopy(reference, smat) + space.to_phonopy(delta, smat)
    if compact:
        ph = _phonopy(space.crystal, smat)
        return np.ascontiguousarray(fc[np.asarray(ph.primitive.p2s_map)])
    return fc


def check_export(
    space,
    fc: np.ndarray,
    smat: np.ndarray,
    theta_full,
    *,
    reference=None,
    theta_ref=None,
    q_rlu: np.ndarray | None = None,
) -> float:
    """Largest relative deviation (floor 1 meV) of phonopy's frequencies of ``fc`` from the forward model's."""
    from fcinv.crystal import build_path
    from fcinv.fitting.dispersion_fit import model_energies
    from fcinv.forward import mesh_qpoints

    crystal = space.crystal
    if q_rlu is None:
        q_rlu = np.vstack([build_path(crystal)[0], mesh_qpoints(space, 4)])
    ph = _phonopy(crystal, smat)
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


def export_phonopy(
    outdir: str | Path,
    space,
    theta_full,
    *,
    reference=None,
    theta_ref=None,
    supercell=None,
    compact: bool = False,
    check: bool = True,
    meta: dict | None = None,
    command: str | None = None,
) -> ExportResult:
    """Write θ as phonopy ``FORCE_CONSTANTS`` + ``POSCAR`` (+ YAML files, see the module docstring).

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
        reference + Σ (θ − θ_ref) × unit arrays.
    supercell
        3 integers or (3, 3) relative to the primitive cell; default: the material's
        ``supercell`` in ``material.json``. With a reference, pass the reference's supercell.
    compact
        Write FORCE_CONSTANTS in phonopy's compact layout.
    check
        Verify with phonopy that the written set reproduces the forward model (raises
        :class:`~fcinv.errors.ForceConstantError` beyond 1e-6 relative).
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
    fc_full = force_constants_array(space, theta_full, smat, reference=reference, theta_ref=theta_ref)
    dev = None
    if check:
        dev = check_export(space, fc_full, smat, theta_full, reference=reference, theta_ref=theta_ref)
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
    ph = _phonopy(crystal, smat)
    p2s = np.asarray(ph.primitive.p2s_map)
    fc_compact = np.ascontiguousarray(fc_full[p2s])
    files = {
        "poscar": out / "POSCAR",
        "force_constants": out / "FORCE_CONSTANTS",
        "phonopy_yaml": out / "phonopy.yaml",
        "phonopy_params": out / "phonopy_params.yaml",
        "json": out / "fcinv_export.json",
    }
    _atomic(files["poscar"], lambda p: write_vasp(p, crystal.to_phonopy_atoms()))
    if compact:
        _atomic(
            files["force_constants"], lambda p: write_FORCE_CONSTANTS(fc_compact, filename=p, p2s_map=p2s)
        )
    else:
        _atomic(files["force_constants"], lambda p: write_FORCE_CONSTANTS(fc_full, filename=p))
    _atomic(files["phonopy_yaml"], lambda p: _summary_yaml(ph, p))
    ph.force_constants = fc_compact
    _atomic(files["phonopy_params"], lambda p: ph.save(p, settings={"force_constants": True}))
    info = {
        "format": "fcinv-export",
        "fcinv_version": fcinv.__version__,
        "command": command,
        "material": crystal.name,
        "theta": dict(zip(space.names, theta_full.tolist())),
        "unit": "eV/Å^2",
        "about_reference": reference is not None,
        "theta_ref": None
        if theta_ref is None
        else dict(zip(space.names, np.asarray(theta_ref, float).tolist())),
        "supercell_matrix": smat.tolist(),
        "force_constants_layout": "compact" if compact else "full",
        "masses_amu": crystal.masses.tolist(),
        "check_max_rel_dev": dev,
        "check": f"phonopy frequencies of the written set vs the forward model, default path + 4x4x4 mesh, relative (floor 1 meV) <= {EXPORT_RTOL}"
        if check
        else "skipped",
        "note_masses": "POSCAR has no masses: phonopy's own table applies when reading POSCAR + FORCE_CONSTANTS; phonopy.yaml / phonopy_params.yaml carry these masses",
        **(meta or {}),
    }
    _atomic(
        files["json"], lambda p: Path(p).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    )
    log.info("exported %s force constants (supercell %s) to %s", crystal.name, np.diag(smat).tolist(), out)
    return ExportResult(outdir=out, files=files, supercell=smat, max_rel_dev=dev)
