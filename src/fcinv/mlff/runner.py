"""Run the force-field ensemble on a crystal: force constants per member, cached and resumable.

Each member's result is written atomically to ``<workdir>/<member>.h5`` (compact force
constants in eV/Å² plus a JSON record); a rerun with the same settings skips members
whose file is there. A member that fails to load or run is reported and skipped: its
record carries ``status="failed"`` and the one-line reason, and it is retried on the next run.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

import fcinv
from fcinv.crystal import Crystal
from fcinv.errors import DataError
from fcinv.mlff.ensemble import Member, file_sha256, safe_name
from fcinv.mlff.phonons import (
    PhononSettings,
    compute_force_constants,
    path_frequencies,
    phonopy_from_fc,
    relax_lattice_constant,
    scaled_crystal,
    summarize,
)

log = logging.getLogger(__name__)

Status = Literal["stable", "unstable", "failed", "asymmetric"]


@dataclass
class MemberResult:
    """One member's force constants and phonon summary.

    Attributes
    ----------
    name
        Member name.
    member
        The member's description (family, package, version, model, modal).
    status
        ``"stable"``, ``"unstable"`` (imaginary modes: dropped), ``"failed"`` (skipped) or
        ``"asymmetric"`` (not symmetric on the crystal it is read with: dropped,
        :func:`fcinv.mlff.build.check_symmetry`; never written to a cache file).
    reason
        Why a member was dropped or skipped, else ``None``.
    lattice_a
        Conventional lattice constant the force constants were computed at, Å.
    relaxed
        Whether ``lattice_a`` is the member's own equilibrium (``--relax``).
    settings
        Supercell, displacement and stability-test settings.
    summary
        Frequencies at the high-symmetry points and the stability test (see :class:`PhononSummary`).
    wall_s
        Wall time of the member (load, relaxation, forces, summary), s.
    fc
        Shape (n_prim, n_super, 3, 3) float64, eV/Å²: compact force constants; ``None`` when failed.
    p2s_map
        Shape (n_prim,) int: supercell index of each primitive atom.
    """

    name: str
    member: dict
    status: Status
    reason: str | None
    lattice_a: float | None
    relaxed: bool
    settings: dict
    summary: dict | None = None
    wall_s: float = 0.0
    weights_sha256: str | None = None
    fc: np.ndarray | None = field(default=None, repr=False)
    p2s_map: np.ndarray | None = field(default=None, repr=False)

    def record(self) -> dict:
        """The JSON-serialisable part (everything but the arrays)."""
        return {
            "name": self.name,
            "member": self.member,
            "status": self.status,
            "reason": self.reason,
            "lattice_a_A": self.lattice_a,
            "relaxed": self.relaxed,
            "settings": self.settings,
            "summary": self.summary,
            "wall_s": round(self.wall_s, 2),
            "weights_sha256": self.weights_sha256,
        }


def _cell_fingerprint(crystal: Crystal) -> str:
    """sha256 (16 hex digits) of the cell: lattice (Å, 1e-6), fractional positions (1e-6), numbers."""
    import hashlib

    doc = {
        "lattice": np.round(np.asarray(crystal.lattice, float), 6).tolist(),
        "positions": np.round(np.mod(np.asarray(crystal.positions, float), 1.0), 6).tolist(),
        "numbers": [int(n) for n in crystal.numbers],
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(crystal: Crystal, member: Member, settings: PhononSettings, relax: bool) -> dict:
    """Everything that determines a member's result (a cached file is reused only when it matches)."""
    return {
        # a material folder named after an embedded material is registered as "Ge@<folder>": the
        # same crystal, so the same force-field results
        "material": crystal.name.split("@")[0],
        "structure_a_A": round(crystal.conventional_a, 8),
        # the whole cell, not only a: two hexagonal cells with one a and another c (or other positions)
        # under one name must not share results
        "cell_sha": _cell_fingerprint(crystal),
        "member": member.name,
        "model": member.model,
        "modal": member.modal,
        "package_version": member.package_version(),
        "relax": bool(relax),
        **settings.to_dict(),
    }


def atomic_write_h5(path: Path, write) -> None:
    """Call ``write(h5file)`` on a temporary file in ``path``'s folder, then move it into place."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as h5:
            write(h5)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file in the same folder, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_result(path: Path, result: MemberResult, key: dict) -> None:
    """Write one member's result (atomic)."""

    def write(h5):
        h5.attrs["record"] = json.dumps(result.record(), ensure_ascii=False)
        h5.attrs["cache_key"] = json.dumps(key, sort_keys=True)
        h5.attrs["fcinv_version"] = fcinv.__version__
        if result.fc is not None:
            d = h5.create_dataset("force_constants", data=result.fc, compression="gzip")
            d.attrs["unit"] = "eV/Angstrom^2"
            d.attrs["layout"] = "phonopy compact (n_prim, n_super, 3, 3)"
            h5.create_dataset("p2s_map", data=result.p2s_map)

    atomic_write_h5(path, write)


def load_result(path: Path) -> tuple[MemberResult, dict]:
    """Read one member's cached result and its cache key."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            rec = json.loads(h5.attrs["record"])
            key = json.loads(h5.attrs["cache_key"])
            fc = h5["force_constants"][()] if "force_constants" in h5 else None
            p2s = h5["p2s_map"][()] if "p2s_map" in h5 else None
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise DataError(
            f"cached member file '{path}' is unreadable ({type(exc).__name__}). Delete it to recompute the member."
        ) from None
    res = MemberResult(
        name=rec["name"],
        member=rec["member"],
        status=rec["status"],
        reason=rec["reason"],
        lattice_a=rec["lattice_a_A"],
        relaxed=rec["relaxed"],
        settings=rec["settings"],
        summary=rec["summary"],
        wall_s=rec["wall_s"],
        weights_sha256=rec.get("weights_sha256"),
        fc=fc,
        p2s_map=p2s,
    )
    return res, key


def _quiet_force_fields():
    """Silence the force-field packages' own warnings (CHGNet's tensor-to-scalar advice, torch.jit deprecation)."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", category=UserWarning, module=r"chgnet(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.jit")
    return ctx


def compute_member(
    member: Member, crystal: Crystal, settings: PhononSettings, *, relax: bool = False, device: str = "cpu"
) -> MemberResult:
    """Force constants and phonon summary of one member (exceptions propagate)."""
    ctx = _quiet_force_fields()
    try:
        return _compute_member(member, crystal, settings, relax=relax, device=device)
    finally:
        ctx.__exit__(None, None, None)


def _compute_member(
    member: Member, crystal: Crystal, settings: PhononSettings, *, relax: bool, device: str
) -> MemberResult:
    t0 = time.perf_counter()
    path = member.weight_path()
    sha = file_sha256(path)
    calc = member.calculator(device=device)
    target = crystal
    if relax:
        a = relax_lattice_constant(crystal, calc)
        target = scaled_crystal(crystal, a)
        log.info("%s: relaxed a = %.4f Å (structure file %.4f Å)", member.name, a, crystal.conventional_a)
    phonon = compute_force_constants(target, calc, settings)
    summary = summarize(phonon, target, settings)
    status: Status = "stable" if summary.stable else "unstable"
    reason = None
    if not summary.stable:
        reason = f"imaginary modes (min {min(summary.path_min_thz, summary.mesh_min_thz):.2f} THz) at {', '.join(summary.unstable_at)}"
    return MemberResult(
        name=member.name,
        member=member.to_dict(),
        status=status,
        reason=reason,
        lattice_a=round(target.conventional_a, 6),
        relaxed=relax,
        settings=settings.to_dict(),
        summary=summary.to_dict(),
        wall_s=time.perf_counter() - t0,
        weights_sha256=sha,
        fc=np.asarray(phonon.force_constants, dtype=float),
        p2s_map=np.asarray(phonon.primitive.p2s_map, dtype=int),
    )


def run_ensemble(
    crystal: Crystal,
    members: list[Member],
    settings: PhononSettings,
    workdir: str | Path,
    *,
    relax: bool = False,
    device: str = "cpu",
    progress: bool = True,
    recompute: bool = False,
) -> list[MemberResult]:
    """Run every member on ``crystal``, reusing cached results in ``workdir``.

    Parameters
    ----------
    crystal
        The crystal at the structure file's lattice constant.
    members
        The ensemble (see :func:`fcinv.mlff.ensemble.resolve_members`).
    settings
        Supercell, displacement, stability test.
    workdir
        Folder of the per-member cache files.
    relax
        Compute each member at its own equilibrium lattice constant.
    device
        Torch device for the force fields.
    progress
        Show a progress bar across members.
    recompute
        Ignore cached results.

    Returns
    -------
    list of MemberResult
        One per member, in the order given; failed members included with their reason.
    """
    from tqdm.auto import tqdm

    workdir = Path(workdir)
    results = []
    bar = tqdm(members, desc=f"{crystal.name} ensemble", unit="member", disable=not progress)
    for member in bar:
        bar.set_postfix_str(member.name)
        path = workdir / f"{safe_name(member.name)}.h5"
        key = cache_key(crystal, member, settings, relax)
        if path.is_file() and not recompute:
            try:
                cached, cached_key = load_result(path)
            except DataError as exc:
                log.warning("%s", exc)
            else:
                if cached_key == key and cached.status != "failed":
                    log.info("%s: cached (%s)", member.name, path)
                    results.append(cached)
                    continue
        try:
            res = compute_member(member, crystal, settings, relax=relax, device=device)
        except Exception as exc:  # noqa: BLE001 - a member that fails is reported and skipped, never fatal
            msg = (str(exc).splitlines() or [""])[0][:300]
            log.warning("%s failed: %s: %s", member.name, type(exc).__name__, msg)
            res = MemberResult(
                name=member.name,
                member=member.to_dict(),
                status="failed",
                reason=f"{type(exc).__name__}: {msg}",
                lattice_a=None,
                relaxed=relax,
                settings=settings.to_dict(),
            )
        save_result(path, res, key)
        results.append(res)
    return results


def convergence_study(
    crystal: Crystal,
    member: Member,
    supercells: list[Any],
    displacements: list[float],
    *,
    device: str = "cpu",
    progress: bool = True,
) -> dict:
    """How much the path frequencies move with the supercell and the displacement.

    Every (supercell, displacement) pair is computed with ``member``; each is compared with
    the reference pair, the last supercell given (list them smallest first) with the first
    displacement, by the largest absolute frequency difference over the default path's bins
    and high-symmetry points (THz).

    Returns
    -------
    dict
        ``{"member", "reference": {...}, "rows": [{"supercell", "displacement_A", "max_abs_dTHz", "wall_s"}]}``.
    """
    ctx = _quiet_force_fields()
    try:
        return _convergence_study(
            crystal, member, supercells, displacements, device=device, progress=progress
        )
    finally:
        ctx.__exit__(None, None, None)


def _convergence_study(
    crystal: Crystal,
    member: Member,
    supercells: list[Any],
    displacements: list[float],
    *,
    device: str,
    progress: bool,
) -> dict:
    from tqdm.auto import tqdm

    calc = member.calculator(device=device)
    combos = [(sc, d) for sc in supercells for d in displacements]
    freqs = {}
    rows = []
    for sc, d in tqdm(combos, desc=f"{crystal.name} convergence ({member.name})", disable=not progress):
        s = PhononSettings.create(sc, d)
        t0 = time.perf_counter()
        phonon = compute_force_constants(crystal, calc, s)
        wall = time.perf_counter() - t0
        freqs[(s.supercell, d)] = path_frequencies(phonon, crystal)
        rows.append(
            {
                "supercell": [list(r) for r in s.supercell],
                "displacement_A": d,
                "n_atoms": len(phonon.supercell),
                "wall_s": round(wall, 2),
            }
        )
    i_ref = (len(supercells) - 1) * len(displacements)
    ref = list(freqs.values())[i_ref]
    for row, f in zip(rows, freqs.values()):
        row["max_abs_dTHz"] = float(np.max(np.abs(f - ref)))
    return {
        "member": member.name,
        "lattice_a_A": round(crystal.conventional_a, 6),
        "reference": rows[i_ref],
        "rows": rows,
        "measure": "max |Δν| over the default path bins and high-symmetry points, all branches, THz",
    }


__all__ = [
    "MemberResult",
    "compute_member",
    "convergence_study",
    "load_result",
    "phonopy_from_fc",
    "run_ensemble",
    "save_result",
]
