"""How many shells a prepared crystal's refinement continues into (``refine_shells`` of material.json).

A prepared material's ML model predicts the parameters of ``cutoff_shells`` shells (5 by default);
beyond them its force constants are zero. Whether that cutoff holds the crystal is measured on the
crystal's own Stage I sets, as ``docs/fidelity.md`` measures it for Ge: every stable member's full
FC set (``members_fc.hdf5``) is projected onto the space of n shells, and the projection's phonon
energies along the material's path are compared with the member's own (phonopy, the whole set).

The rule (:func:`choose_refine_shells`), over n from ``cutoff_shells`` up to the largest n the
members' supercell holds without boundary images (the condition of
:meth:`fcinv.fcspace.FCSpace._check_supercell`, at most :data:`fcinv.reference.MAX_SHELLS`):

- the *worst* member's rms (THz) is the figure of n (a cutoff must hold every member the
  training domain was drawn from);
- ``refine_shells`` = [n] for the smallest n whose figure is within :data:`SHELL_TOLERANCE_THZ`;
- if no n is within it, the n of the lowest figure (the supercell limits what can be measured);
- none (the refinement stays in the model's space) when that n is ``cutoff_shells`` itself.

The measurement and the rule are written into material.json (``shell_projection``,
``refine_shells_rule``), so :meth:`fcinv.pipeline.Pipeline.continuation_shells` continues a
prepared material's refinement as it does Ge's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

#: A cutoff holds the crystal when its projection's dispersion is within this rms (THz) of the set's own.
SHELL_TOLERANCE_THZ = 0.02
#: The rule, stated once (written into material.json).
REFINE_SHELLS_RULE = (
    "per n shells (cutoff_shells .. the largest the members' supercell holds): the worst stable member's "
    "rms (THz, along the path) of its n-shell projection's dispersion against its own; refine_shells = "
    f"the smallest n within {SHELL_TOLERANCE_THZ} THz, else the n of the lowest rms; none when that n is "
    "cutoff_shells"
)
_THZ_TO_MEV = 4.135667696


def _phonopy_frequencies(fc: np.ndarray, fcset: dict, q_prim: np.ndarray) -> np.ndarray:
    """Sorted phonon frequencies (THz), shape (n_q, n_modes), of an FC array on ``fcset``'s cell."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    atoms = PhonopyAtoms(
        cell=np.asarray(fcset["lattice"]),
        scaled_positions=np.asarray(fcset["positions"]),
        numbers=np.asarray(fcset["numbers"]),
        masses=np.asarray(fcset["masses"]),
    )
    ph = Phonopy(
        atoms, supercell_matrix=np.asarray(fcset["supercell_matrix"]), primitive_matrix="P", log_level=0
    )
    ph.force_constants = np.asarray(fc)
    ph.run_qpoints(q_prim)
    return np.sort(np.asarray(ph.qpoints.frequencies, float), axis=1)


def max_shells_held(crystal, supercell_matrix, lattice) -> int:
    """The largest shell count whose pairs the supercell ``supercell_matrix`` (of the cell ``lattice``)
    holds without boundary images (0 when not even one)."""
    from fcinv.errors import FcinvError
    from fcinv.fcspace import FCSpace
    from fcinv.reference import MAX_SHELLS

    smat = np.asarray(supercell_matrix) @ np.asarray(lattice) @ np.linalg.inv(crystal.lattice)
    best = 0
    for n in range(1, MAX_SHELLS + 1):
        try:
            FCSpace(crystal, n_shells=n)._check_supercell(smat)
        except FcinvError:
            break
        best = n
    return best


def measure_shells(material, *, n_min: int | None = None, n_max: int | None = None) -> dict:
    """The n-shell projection of every stable member against its own dispersion (module docstring).

    Parameters
    ----------
    material
        A :class:`~fcinv.material.Material` with a Stage I reference and ``members_fc.hdf5``.
    n_min, n_max
        Shell counts measured (default: ``cutoff_shells`` .. the largest the members' supercells hold).

    Returns
    -------
    dict
        ``shells`` (the n measured), ``n_params``, ``cutoff_A``, ``rms_THz`` (member → rms per n),
        ``worst_THz`` (per n), ``max_shells_held``.
    """
    from phonopy.structure.atoms import PhonopyAtoms

    from fcinv.errors import DataError
    from fcinv.fcspace import FCSpace, pairs_from_phonopy
    from fcinv.reference import MEMBERS_FC_FILE, read_members_fc

    crystal = material.crystal
    path = Path(material.folder) / MEMBERS_FC_FILE
    if not path.is_file():
        raise DataError(
            f"{path} does not exist, so the shells the crystal needs cannot be measured. Rerun "
            "`fcinv prepare` for this folder (Stage I writes members_fc.hdf5)."
        )
    members = read_members_fc(path)
    stable = [str(n) for n in material.reference.ensemble.get("stable_members", [])] or sorted(members)
    sets = {n: members[n] for n in stable if n in members}
    held = min(max_shells_held(crystal, s["supercell_matrix"], s["lattice"]) for s in sets.values())
    lo = int(material.shells if n_min is None else n_min)
    hi = min(held, int(n_max)) if n_max is not None else held
    q = np.asarray(material.grid().q_rlu, float)
    q_prim = crystal.rlu_to_prim_frac(q)
    shells = list(range(lo, hi + 1))
    spaces = [FCSpace(crystal, n_shells=n) for n in shells]
    rms: dict[str, list[float]] = {}
    for name, s in sets.items():
        unit = PhonopyAtoms(
            numbers=s["numbers"], cell=s["lattice"], scaled_positions=s["positions"], masses=s["masses"]
        )
        pairs = pairs_from_phonopy(crystal, s["force_constants"], unit, s["supercell_matrix"])
        own = _phonopy_frequencies(s["force_constants"], s, q_prim)
        row = []
        for sp in spaces:
            fc_n = sp.to_phonopy(sp.project(pairs).theta, s["supercell_matrix"])
            f_n = _phonopy_frequencies(fc_n, s, q_prim)
            row.append(round(float(np.sqrt(np.mean((f_n - own) ** 2))), 4))
        rms[name] = row
    worst = [max(r[i] for r in rms.values()) for i in range(len(shells))] if rms else []
    return {
        "shells": shells,
        "n_params": [sp.n_params for sp in spaces],
        "cutoff_A": [round(float(sp.cutoff), 3) for sp in spaces],
        "rms_THz": rms,
        "worst_THz": worst,
        "max_shells_held": held,
    }


def choose_refine_shells(
    shells: list[int], worst_thz: list[float], cutoff_shells: int, tol: float = SHELL_TOLERANCE_THZ
) -> list[int]:
    """:data:`REFINE_SHELLS_RULE`: ``[n]``, or ``[]`` when the model's own ``cutoff_shells`` is best.

    Parameters
    ----------
    shells, worst_thz
        The shell counts measured and the worst member's rms (THz) at each (:func:`measure_shells`).
    cutoff_shells
        The model's own shell count.
    tol
        The rms (THz) within which a cutoff holds the crystal.
    """
    cand = [(n, w) for n, w in zip(shells, worst_thz) if n >= cutoff_shells]
    if not cand:
        return []
    within = [n for n, w in cand if w <= tol]
    n = within[0] if within else min(cand, key=lambda t: (t[1], t[0]))[0]
    return [] if n <= cutoff_shells else [int(n)]


def write_refine_shells(
    folder: str | Path, *, say: Callable[[str], None] = print, force: bool = False
) -> list[int]:
    """Measure (:func:`measure_shells`), choose (:func:`choose_refine_shells`) and write ``refine_shells``,
    ``refine_shells_rule`` and ``shell_projection`` into ``folder``'s material.json; returns the shells.

    A folder whose material.json already holds a measurement by this rule is left as it is (unless
    ``force``); a hand-written ``refine_shells`` without a measurement is kept.
    """
    from fcinv.material import load_material
    from fcinv.prepare.stage1 import write_material_json

    folder = Path(folder)
    info_path = folder / "material.json"
    info = json.loads(info_path.read_text())
    if not force and info.get("refine_shells_rule") == REFINE_SHELLS_RULE and "shell_projection" in info:
        shells = list(info.get("refine_shells") or [])
        say(f"      shells measured earlier: refine_shells {shells or 'none'}")
        return shells
    if not force and "refine_shells" in info and "refine_shells_rule" not in info:
        shells = list(info.get("refine_shells") or [])
        say(f"      refine_shells {shells} set by hand in material.json: kept")
        return shells
    material = load_material(folder)
    m = measure_shells(material)
    shells = choose_refine_shells(m["shells"], m["worst_THz"], material.shells)
    info = json.loads(info_path.read_text())
    info["refine_shells"] = shells
    info["refine_shells_rule"] = REFINE_SHELLS_RULE
    info["shell_projection"] = m
    write_material_json(folder, info)
    table = ", ".join(f"{n}: {w:.3f}" for n, w in zip(m["shells"], m["worst_THz"]))
    say(
        f"      shells: worst member's projection vs its own dispersion (THz) {table} (the supercell holds "
        f"{m['max_shells_held']}) -> refine_shells {shells or 'none (the model space)'}"
    )
    return shells
