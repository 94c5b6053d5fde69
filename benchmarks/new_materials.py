"""New crystals end to end (issue 13): Si, Al, Cu, NaCl, GaAs and hcp Mg from a structure file.

For each material:

1. ``fcinv prepare STRUCTURE --out WORK/<mat> --quick`` (Stage I from the force-field ensemble,
   the ``[mlff]`` extra; ``--from-phonopy`` is not used here). A folder prepared earlier with the
   same inputs is reused (``prepare`` skips its finished steps and says so); the prepare time
   printed is then the one recorded in its ``prepare.json`` and the row says ``reused``.
2. The truth, outside the training sampler: the full force-constant set of the ensemble member
   that is *not* the reference (the dataset is sampled about the reference member), read from the
   Stage I cache. When no second stable member exists, the reference set with every in-cutoff
   parameter moved by ±5 % (a perturbed set; the row says so).
3. A simulated ARCS-like run of that truth (Euphonic S(Q, E), resolution, Bose, Debye–Waller,
   Poisson counts; ``--orientations`` orientations (30), Ei = max(40, 1.6 × the material's E_max)
   meV, the ``ei_meV`` that ``prepare`` writes), folded onto the material's path with the
   one-phonon corrections and inverted by the prepared model (trained on physical intensities
   where the PhysicalModel accepts the crystal, else on the paper intensity).
4. The refinement as the Ge pipeline does it (:meth:`fcinv.pipeline.Pipeline.refinement_model`):
   a :class:`~fcinv.forward.physical.PhysicalModel` of the measurement's own coverage at the run's
   Ei, fitted to the raw fold from two starts, the ML answer and the energy-moment start
   (:func:`fcinv.fitting.moments.moment_start`; the trusted fit of lower misfit is kept and the
   row records which start won, ``refine_start``), continued into the material's
   ``refine_shells`` where it sets them (``prepare`` writes them from each stable member's n-shell
   projection, :mod:`fcinv.prepare.shells`; a folder prepared before that rule gets them measured
   into its material.json here; ``--refine-shells model`` keeps the model's own shells, ``N``
   continues into N; the row records which, ``refine_shells_choice``); where the PhysicalModel
   refuses the crystal (no inversion centre), the paper forward model on the corrected fold.
5. Printed per material: the prepare time (the sum of the steps' recorded wall times), the FC0–FC3
   relative errors of the ML and of the refined answer against the truth's projection onto the
   answer's own space, and the dispersion rms of the refined θ against the truth's own (phonopy,
   its whole FC set) along the path, in THz. Beside FC0–FC3 (the ensemble's ranking, which scales
   each derivative by the members' disagreement and so ranks near-zero parameters high), the
   errors of the 4 parameters of largest |θ_truth,p| · rms ∂I/∂θ_p (:func:`relative_ranking`),
   the parameters whose relative value the spectrum fixes best.

The last line counts only the materials that ran to the end:
``RESULT n_materials=<n> worst_refined_fc0_3_err=<fraction> worst_disp_rms_THz=<THz>
worst_prepare_min=<minutes>``. Targets (issue 13): n ≥ 6, err ≤ 0.05, rms ≤ 0.1 THz, prepare ≤ 30 min.

Usage::

    python benchmarks/new_materials.py [--work out/new_materials] [--materials Si Al ...]
        [--orientations 30] [--threads 1] [--refine-shells auto|model|N [M ...] [AxBxC]]
        [--refine-starts moments|screen|moments screen|ml]
    python benchmarks/new_materials.py --combine A/results.json B/results.json

``--combine`` runs nothing: it reads the rows of earlier runs' ``results.json`` (a later file's row
replaces an earlier file's row of the same material), prints where each row came from, and prints
the RESULT line of those rows by the same formula.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from pathlib import Path

import numpy as np

#: name → (ASE bulk arguments): lattice constants at room temperature (Å).
STRUCTURES = {
    "Si": dict(name="Si", crystalstructure="diamond", a=5.431),
    "Al": dict(name="Al", crystalstructure="fcc", a=4.050),
    "Cu": dict(name="Cu", crystalstructure="fcc", a=3.615),
    "NaCl": dict(name="NaCl", crystalstructure="rocksalt", a=5.640),
    "GaAs": dict(name="GaAs", crystalstructure="zincblende", a=5.653),
    "Mg": dict(name="Mg", crystalstructure="hcp", a=3.209, c=5.211),
}
THZ_TO_MEV = 4.135667696


def write_structure(mat: str, path: Path) -> Path:
    from ase.build import bulk
    from ase.io import write

    write(str(path), bulk(**STRUCTURES[mat]), format="vasp", direct=True)
    return path


def prepare(mat: str, work: Path, threads: int) -> tuple[Path, float, bool]:
    """``fcinv prepare --quick``; returns the folder, the prepare minutes and whether it was reused."""
    from fcinv.cli.prepare import main as prepare_main

    struct = write_structure(mat, work / f"{mat}.vasp")
    out = work / mat
    state = out / "prepare.json"
    before = json.loads(state.read_text())["steps"] if state.is_file() else {}
    t0 = time.perf_counter()
    rc = prepare_main([str(struct), "--out", str(out), "--quick", "--threads", str(threads), "--no-progress"])
    wall = time.perf_counter() - t0
    if rc != 0:
        raise RuntimeError(f"fcinv prepare {mat} failed (exit {rc})")
    steps = json.loads(state.read_text())["steps"]
    reused = bool(before) and all(before.get(k) == v for k, v in steps.items())
    # each step's recorded wall time (from the run that made it), so that a folder finished after an
    # interruption counts the steps done before it; the wall of this call when it is longer
    minutes = sum(v["wall_s"] for v in steps.values()) / 60
    return out, (minutes if reused else max(minutes, wall / 60)), reused


def truth_set(folder: Path, material, rng) -> tuple[np.ndarray, tuple, np.ndarray, str]:
    """(compact FC array, unit cell (lattice, positions, numbers, masses), supercell, description)."""
    from fcinv.mlff.ensemble import safe_name
    from fcinv.mlff.runner import load_result

    ref = material.reference
    ens = ref.ensemble
    others = [m for m in ens["stable_members"] if m != ref.reference_member]
    c = material.crystal
    unit = (c.lattice, c.positions, c.numbers, c.masses)
    for name in others:
        path = folder / "stage1_cache" / f"{safe_name(name)}.h5"
        if path.is_file():
            res, _ = load_result(path)
            if res.fc is not None and (res.lattice_a is None or abs(res.lattice_a - c.conventional_a) < 1e-6):
                smat = np.asarray(res.settings["supercell_matrix"])
                return np.asarray(res.fc), unit, smat, f"member {name} (reference: {ref.reference_member})"
    # fallback: the reference set with each in-cutoff parameter moved by ±5 %
    sc = material.supercell or [5, 5, 5]
    smat = np.diag(sc)
    theta = ref.theta_ref * (1 + 0.05 * rng.choice([-1.0, 1.0], ref.space.n_params))
    fc = ref.space.to_phonopy(theta, smat)
    return fc, unit, smat, "perturbed reference set (±5 % per parameter)"


def physical_refinement_model(pipe, measurement, ei: float, temperature: float):
    """The refinement model of the Ge pipeline (:meth:`fcinv.pipeline.Pipeline.physical_model_for`) at this
    run's incident energy and temperature; None (with the reason) where the PhysicalModel refuses the
    crystal."""
    from fcinv.forward.physical import PhysicalModelError

    try:
        return pipe.physical_model_for(measurement, ei=ei, temperature=temperature), None
    except PhysicalModelError as exc:
        return None, str(exc)


def relative_ranking(material, truth_full: np.ndarray) -> list[str]:
    """Parameters by decreasing |θ_truth,p| · rms ∂I/∂θ_p / rms I (the ensemble's sensitivity rows).

    The ensemble ranking S_p = (θ_p,max − θ_p,min) · rms ∂I/∂θ_p / rms I scales the derivative by the
    members' disagreement, so a parameter near zero on which the two members differ ranks high (Al:
    3NN_yy, truth −0.0006 eV/Å²); its *relative* error says nothing. The image change per relative
    change of θ_p, |θ_p| · ∂I/∂θ_p, ranks the parameters whose relative value the spectrum fixes: a 5 %
    error of such a parameter moves the image most. Magnitude from the truth (the error's denominator).
    """
    ref = material.reference
    rows = {r["name"]: r for r in ref.ensemble["sensitivity"]["rows"]}
    names = list(ref.space.names)
    score = []
    for i, n in enumerate(names):
        r = rows.get(n)
        span = (r["upper"] - r["lower"]) if r else 0.0
        deriv = r["S_image"] / span if r and span > 0 else 0.0
        score.append(abs(truth_full[i]) * deriv)
    return [names[i] for i in np.argsort(score)[::-1]]


def parse_refine_shells(values: list[str]) -> list[str]:
    """``--refine-shells`` entries, checked: ``auto`` or ``model`` alone, else shell counts and supercells
    ``AxBxC`` (a supercell only as the last entry, as :class:`fcinv.pipeline.PipelineConfig` takes them).

    Raises
    ------
    ValueError
        With the one-line message naming the bad entry and what to pass.
    """
    vals = [str(v).strip().lower() for v in values]
    if vals in (["auto"], ["model"]):
        return vals
    for i, v in enumerate(vals):
        sc = re.fullmatch(r"[1-9][0-9]*x[1-9][0-9]*x[1-9][0-9]*", v)
        if not (v.isdigit() and int(v) >= 1) and not (sc and i == len(vals) - 1):
            raise ValueError(
                f"--refine-shells {' '.join(values)}: {v!r} is not known. Pass auto, model, or shell counts "
                "with an optional supercell last, e.g. 7 or 7 4x4x4."
            )
    return vals


def parse_refine_starts(values: list[str]) -> tuple[str, ...]:
    """``--refine-starts`` names → ``PipelineConfig.refine_starts`` (the ML start always runs first).

    Raises
    ------
    ValueError
        With the one-line message naming the bad entry and what to pass.
    """
    names = [str(v).strip().lower() for v in values]
    for v in names:
        if v not in ("ml", "moments", "screen"):
            raise ValueError(
                f"--refine-starts: {v!r} is not a start. Pass any of ml, moments, screen, "
                "e.g. moments screen."
            )
    out = ["ml"] + [v for v in dict.fromkeys(names) if v != "ml"]
    return tuple(out)


def continuation_for(material, choice: list[str] | str) -> tuple[tuple[int | str, ...] | None, str]:
    """The ``PipelineConfig.refine_shells`` of ``--refine-shells`` and what the row records.

    ``auto``: the material's own ``refine_shells`` (what ``prepare`` measured and wrote,
    :mod:`fcinv.prepare.shells`; a folder prepared before that rule is measured now, into material.json);
    ``model``: none (the model's own shells, the behaviour before); numbers (and a supercell ``AxBxC``
    last): those stages.
    """
    choice = [choice] if isinstance(choice, str) else list(choice)
    if choice == ["model"]:
        return (), "model space (--refine-shells model)"
    if choice != ["auto"]:
        stages = tuple(int(v) if v.isdigit() else v for v in choice)
        return stages, f"--refine-shells {' '.join(choice)}"
    from fcinv.prepare.shells import write_refine_shells

    shells = write_refine_shells(material.folder, say=lambda m: print(f"  {material.name}: {m.strip()}"))
    return None, f"material.json refine_shells {shells or 'none'} (fcinv.prepare.shells rule)"


def run_one(
    mat: str,
    work: Path,
    orientations: int,
    threads: int,
    seed: int,
    refine_shells: list[str] | str = "auto",
    refine_starts: tuple[str, ...] = ("ml", "moments"),
) -> dict:
    from fcinv.experiment.instrument import Goniometer, Instrument
    from fcinv.experiment.simulate import ExperimentConfig, force_constants_from_array, simulate_experiment
    from fcinv.fcspace import pairs_from_phonopy
    from fcinv.material import load_material
    from fcinv.pipeline.core import Pipeline, PipelineConfig, one_phonon_corrections
    from fcinv.pipeline.demo import truth_dispersion

    folder, prep_min, reused = prepare(mat, work, threads)
    material = load_material(folder)
    cont, cont_note = continuation_for(material, refine_shells)
    material = load_material(folder)  # material.json may hold the measured refine_shells now
    rng = np.random.default_rng(seed)
    fc, unit, smat, what = truth_set(folder, material, rng)
    temperature = 5.0
    config = PipelineConfig(
        k_samples=100,
        seed=seed,
        corrections=one_phonon_corrections(temperature),
        refine_shells=cont,
        refine_starts=refine_starts,
    )
    pipe = Pipeline(str(folder / "models"), material, config=config)
    names = list(pipe.names)
    from phonopy.structure.atoms import PhonopyAtoms

    atoms = PhonopyAtoms(numbers=unit[2], cell=unit[0], scaled_positions=unit[1], masses=unit[3])
    truth_pairs = pairs_from_phonopy(material.crystal, fc, atoms, smat)
    e_max = material.energy_range[1]
    ei = max(40.0, 1.6 * e_max)
    efc, ecrystal = force_constants_from_array(fc, unit[0], unit[1], unit[2], smat, masses=unit[3])
    t0 = time.perf_counter()
    run = simulate_experiment(
        efc,
        ecrystal,
        instrument=Instrument(ei=ei),
        goniometer=Goniometer.steps(0.0, 1.0, orientations),
        config=ExperimentConfig(seed=seed, temperature=temperature),
        region=pipe.grid,
        progress=False,
    )
    t_sim = time.perf_counter() - t0
    measurement = run.total()
    pm, why = physical_refinement_model(pipe, measurement, ei, temperature)
    if pm is not None:
        # the Ge pipeline's refinement: physical model on the raw fold (+ continuation where the
        # material sets refine_shells)
        pipe = Pipeline(str(folder / "models"), material, forward_model=pm, config=config)
        how = f"physical model (Ei {ei:g} meV, raw fold)"
    else:
        how = f"paper model (physical refused: {why.split('.')[0]})"
    t0 = time.perf_counter()
    inv = pipe.run(measurement, refine=True)
    t_inv = time.perf_counter() - t0
    stages = inv.result.extra.get("stages")
    if stages:
        how += ", continued into " + "/".join(str(s.get("shells", "?")) for s in stages) + " shells"
    truth_f = truth_dispersion(fc, unit, smat, material.crystal, pipe.grid.q_rlu)
    disp = float(np.sqrt(np.mean((np.sort(inv.frequencies, axis=1) - truth_f) ** 2))) / THZ_TO_MEV
    # the truth's projection onto the space of each answer (the model's, or the one it continued into)
    space0 = material.reference.space
    truth0 = dict(zip(space0.names, space0.project(truth_pairs).theta))
    ref_n = pipe.continued_reference(inv.result)
    space_r = ref_n.space if ref_n is not None else space0
    truth_r = dict(zip(space_r.names, space_r.project(truth_pairs).theta))
    ml = inv.ml.theta_dict()
    fin = inv.result.theta_dict()

    def errs(sel, est, tru):
        return [abs(est[n] - tru[n]) / abs(tru[n]) for n in sel]

    sel_old = names[:4]
    sel_new = relative_ranking(material, np.array([truth0[n] for n in space0.names]))[:4]
    err_ref = errs(sel_old, fin, truth_r)
    err_new = errs(sel_new, fin, truth_r)
    return {
        "material": mat,
        "spacegroup": material.crystal.spacegroup[0],
        "prepare_min": prep_min,
        "reused": reused,
        "truth": what,
        "ei_meV": ei,
        "orientations": orientations,
        "refinement": how,
        "refine_shells_choice": cont_note,
        "refine_starts": list(refine_starts),
        "stages": stages or [],
        "continuation_warnings": [
            w for w in inv.result.extra.get("warnings", []) if str(w).startswith("CONTINUATION")
        ],
        "shell_projection": material.info.get("shell_projection"),
        "names": sel_old,
        "truth_fc0_3": [truth_r[n] for n in sel_old],
        "ml_fc0_3": [ml[n] for n in sel_old],
        "refined_fc0_3": [fin[n] for n in sel_old],
        "refined": bool(inv.result.adequacy.get("success", inv.refined is not None)),
        "ml_err_fc0_3": errs(sel_old, ml, truth0),
        "refined_err_fc0_3": err_ref,
        "worst_refined_fc0_3_err": float(max(err_ref)),
        "names_relative": sel_new,
        "truth_rel4": [truth_r[n] for n in sel_new],
        "refined_rel4": [fin[n] for n in sel_new],
        "refined_err_rel4": err_new,
        "worst_refined_rel4_err": float(max(err_new)),
        "disp_rms_THz": disp,
        "refine_start": inv.result.extra.get("refine_start"),
        "start_selection": [
            {k: t.get(k) for k in ("start", "misfit", "success", "lowest_mode_meV")}
            for t in inv.result.extra.get("start_selection", [])
        ],
        "simulate_s": t_sim,
        "infer_refine_s": t_inv,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("out/new_materials"))
    p.add_argument("--materials", nargs="+", default=list(STRUCTURES), choices=list(STRUCTURES))
    p.add_argument("--orientations", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--refine-shells",
        nargs="+",
        default=["auto"],
        help="auto: the material's refine_shells (measured by fcinv.prepare.shells; a folder prepared "
        "before the rule gets it now); model: stay in the model's shells; N [M ...] [AxBxC]: continue into "
        "those shell counts, a supercell AxBxC (its Wigner-Seitz space, e.g. 4x4x4) as the last stage",
    )
    p.add_argument(
        "--refine-starts",
        nargs="+",
        default=["moments"],
        metavar="START",
        help="the refinement's starts besides the ML answer (which always runs): moments (default), "
        "screen (fcinv.fitting.screen, the 4-parameter screening start), or both: moments screen; ml alone: "
        "the ML start only",
    )
    p.add_argument(
        "--combine",
        type=Path,
        nargs="+",
        metavar="RESULTS_JSON",
        help="run nothing; print the RESULT line over the rows of these results.json files",
    )
    args = p.parse_args(argv)
    try:
        args.refine_shells = parse_refine_shells(args.refine_shells)
        args.refine_starts = parse_refine_starts(args.refine_starts)
    except ValueError as exc:
        p.error(str(exc))
    if args.combine:
        return combine(args.combine)
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for mat in args.materials:
        t0 = time.perf_counter()
        try:
            row = run_one(
                mat,
                args.work,
                args.orientations,
                args.threads,
                args.seed,
                args.refine_shells,
                args.refine_starts,
            )
        except Exception as exc:  # noqa: BLE001 - a material that fails is reported and not counted
            print(f"{mat}: FAILED ({type(exc).__name__}: {exc})")
            traceback.print_exc(limit=3)
            continue
        rows.append(row)
        errs = " ".join(
            f"{n}={e * 100:.1f}%(ML {m * 100:.1f}%)"
            for n, e, m in zip(row["names"], row["refined_err_fc0_3"], row["ml_err_fc0_3"])
        )
        print(
            f"{mat} ({row['spacegroup']}): prepare {row['prepare_min']:.1f} min"
            f"{' (reused: recorded time)' if row['reused'] else ''}; truth {row['truth']}; FC0-FC3 refined "
            f"err {errs}; dispersion rms {row['disp_rms_THz']:.3f} THz; "
            f"{'refined' if row['refined'] else 'refinement not trusted: ML answer'} ({row['refinement']}"
            f"{', start: ' + str(row['refine_start']) if row.get('refine_start') else ''}); "
            f"{time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        rel = " ".join(f"{n}={e * 100:.1f}%" for n, e in zip(row["names_relative"], row["refined_err_rel4"]))
        if row["start_selection"]:
            sel = "; ".join(
                f"{t['start']}: misfit {t['misfit']:.6g}{'' if t['success'] else ' (not trusted)'}"
                for t in row["start_selection"]
            )
            print(f"  {mat}: refinement starts {sel}")
        stages = "/".join(str(s.get("shells", "?")) for s in row["stages"])
        print(
            f"  {mat}: refine starts {', '.join(row['refine_starts'])}; shells {row['refine_shells_choice']}"
            f"{'; stages ' + stages if stages else ''}"
        )
        print(f"  {mat}: 4 parameters of largest |theta| * dI/dtheta (relative_ranking): refined err {rel}")
        (args.work / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    if not rows:
        print("RESULT n_materials=0 worst_refined_fc0_3_err=nan worst_disp_rms_THz=nan worst_prepare_min=nan")
        return 1
    print_result(rows)
    return 0


def print_result(rows: list[dict]) -> None:
    """The closing lines over ``rows`` (the materials that ran to the end)."""
    print(
        "also: worst refined error over each material's 4 parameters of largest |theta| * dI/dtheta = "
        f"{max(r['worst_refined_rel4_err'] for r in rows):.4f} (FC0-FC3 rank by the members' disagreement)"
    )
    print(
        f"RESULT n_materials={len(rows)} "
        f"worst_refined_fc0_3_err={max(r['worst_refined_fc0_3_err'] for r in rows):.4f} "
        f"worst_disp_rms_THz={max(r['disp_rms_THz'] for r in rows):.4f} "
        f"worst_prepare_min={max(r['prepare_min'] for r in rows):.1f}"
    )


def combine(files: list[Path]) -> int:
    """The RESULT line over the rows of several runs' ``results.json`` (a later file's row of a
    material replaces an earlier one's)."""
    rows: dict[str, tuple[dict, Path]] = {}
    for f in files:
        if not f.is_file():
            print(f"--combine: {f} does not exist. Pass the results.json files of earlier runs.")
            return 2
        for r in json.loads(f.read_text()):
            rows[r["material"]] = (r, f)
    if not rows:
        print("--combine: the files hold no rows. Pass the results.json files of finished runs.")
        return 2
    for mat, (r, f) in rows.items():
        print(
            f"{mat}: from {f}: worst FC0-FC3 refined err {r['worst_refined_fc0_3_err']:.4f}; dispersion rms "
            f"{r['disp_rms_THz']:.4f} THz; prepare {r['prepare_min']:.1f} min ({r['refinement']}; starts "
            f"{', '.join(r.get('refine_starts') or ['ml', 'moments'])}; "
            f"shells {r.get('refine_shells_choice', '?')})"
        )
    print(f"combined from {len(files)} runs' results.json")
    print_result([r for r, _ in rows.values()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
