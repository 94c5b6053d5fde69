"""Stage III on a real crystal: the FULL DFT Ge force-constant set as the truth of simulated ARCS runs.

Truth: ``../shared/data/ge_dft_pathsqe/FORCE_CONSTANTS`` + ``POSCAR`` on its 4×4×4 supercell, read as
it is (every pair the file holds; not a hybrid with the training reference). Runs (Euphonic S(Q, E)
with eigenvectors, Debye–Waller and Bose factors, ARCS-like coverage and energy resolution, flat
background, Poisson counts; Ei = 40 meV; 1° orientation steps from ψ = 0):

- ``T5_n120``: 5 K, 120 orientations (the headline, the RESULT line);
- ``T300_n120``: 300 K, 120 orientations;
- ``T5_n30``: 5 K, the first 30 orientations (30°).

Each run is folded with fcinv's fold (timed) twice: with the one-phonon corrections (Bose, |Q|², E;
the paper's weight-1 convention the shipped ML model was trained on) and without (what the physical
forward model predicts). Then

1. ML alone: the shipped model (``--model``, default ``ge``: whichever model is installed under that
   name; the output says which parameters it predicts and what its training data were);
2. refinement with the physical forward model (``fcinv.forward.physical.PhysicalModel``, when it
   exists) of the uncorrected fold: scale, background and every parameter in the cutoff free, the
   training domain as a Gaussian prior (centre of the box, half-width = 2σ), started from the ML
   answer (parameters the model does not predict start at the prior centre);
3. the same refinement with the paper-convention forward model of the corrected fold (beside it).

Compared with the truth's projection onto the parameter space (``fcinv project``: FC0–FC3 are the
four most sensitive parameters of the reference ranking) and with the DFT set's own phonopy
dispersion on the model's q-path and on a seeded random full-zone mesh (400 q-points).

The refined answer is compared with the truth's projection onto the space of the stage the
refinement returns, and every stage is printed in a table against the projection onto its own space
(χ²/dof, FC0–FC3 error, error / Laplace σ, path and mesh dispersion, wall time, its move from the
stage it started from in σ). With ``--refine-shells 9 11 4x4x4`` the last stage is the 4×4×4
supercell's Wigner–Seitz space (:meth:`fcinv.fcspace.FCSpace.for_supercell`, 55 parameters): the
truth's projection onto it *is* the file (phonopy's own model of it; its dispersion is the file's to
1e-6 THz with equal masses). That space is the truth file's own form, so choosing it *because* the
truth is a 4×4×4 set is a leak; for a real crystal the supercell is a modelling choice
(docs/fidelity.md). ``--refine-shells 9 11 3x3x3 4x4x4 5x5x5`` fits all three (3×3×3 from the
5-shell answer, 4×4×4 from 11 shells, 5×5×5 from 4×4×4) and prints the supercell systematic (the
moves between them, in σ) and the stage the data-only space rule
(:mod:`fcinv.fitting.continuation_select`) picks; ``--select stable`` returns that stage (and the
RESULT line is its), ``--select bic`` the stage of lowest BIC, ``--select last`` the largest.

Peers in the same run: phonopy (the truth's dispersion), Euphonic (the truth's S(Q, E)), and the
fold against a plain per-bin loop (timed on a subset of bins).

Simulations and folds are cached under ``--out`` (atomic writes; a rerun resumes).

``--ml-controls``: instead of the refinements, where ML alone goes wrong on each run (docs/fidelity.md,
"ML alone: what holds it back"): the model on noise-free physical spectra with the run's own coverage
(as the one-phonon-corrected fold) of (a) the truth's projection onto the model's space, (b) its
11-shell projection, (c) the whole file, (c) plus the run's flat raw background through the fold's
corrections (:func:`fcinv.dataset.physical.fold_background`, amplitude fitted to the fold), and (d)
the fold itself; no RESULT line.

Last line: ``RESULT ml_fc0_3_max_rel_err=<x> refined_fc0_3_max_rel_err=<x> disp_rms_THz=<path, refined>
mesh_rms_THz=<mesh, refined> ml_disp_rms_THz=<path, ML alone> fold_s=<s> infer_ms=<ms>`` for T5_n120.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ge_dft_pathsqe"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data/ge_dft_pathsqe")
#: The truth of the simulated runs: a phonopy folder (FORCE_CONSTANTS + POSCAR), its supercell and what it
#: is; ``--truth MEMBER`` replaces the DFT set with a Stage I member's whole FC set (a 5x5x5 force field).
TRUTH = {"dir": SHARED, "supercell": (4, 4, 4), "what": "the DFT Ge FORCE_CONSTANTS file as it is"}

#: (label, temperature K, orientations)
RUNS = (("T5_n120", 5.0, 120), ("T300_n120", 300.0, 120), ("T5_n30", 5.0, 30))
PAPER_CORRECTIONS = {"q2": True, "energy": True}

log = logging.getLogger("experiment_inversion")


def _atomic_json(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".partial")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


def simulate_and_fold(out: Path, label: str, temperature: float, n_orient: int, grid, crystal) -> dict:
    """Simulate (cached) one run of the DFT truth and fold it twice (timed): corrected and raw."""
    from fcinv.experiment.fold import Corrections, fold_volume
    from fcinv.experiment.folded import read_folded, write_folded
    from fcinv.experiment.instrument import Goniometer
    from fcinv.experiment.simulate import (
        ExperimentConfig,
        SimulatedRun,
        load_force_constants,
        simulate_experiment,
    )

    d = out / label
    d.mkdir(parents=True, exist_ok=True)
    info_path = d / "run_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if not (d / "run.h5").is_file():
        t = time.perf_counter()
        efc, ecrystal = load_force_constants(*truth_files(), TRUTH["supercell"])
        run = simulate_experiment(
            efc,
            ecrystal,
            goniometer=Goniometer.steps(0.0, 1.0, n_orient),
            config=ExperimentConfig(temperature=temperature, seed=0),
            region=grid,
            provenance={"truth": f"{TRUTH['what']} ({TRUTH['dir']})"},
        )
        run.write(d / "run.h5")
        info["simulate_s"] = time.perf_counter() - t
        _atomic_json(info_path, info)
    run = SimulatedRun.read(d / "run.h5")
    vol = run.total()
    centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
    for kind, corr in (
        ("paper", Corrections(bose_temperature=temperature, **PAPER_CORRECTIONS)),
        ("raw", None),
    ):
        f = d / f"folded_{kind}.h5"
        if not f.is_file() or f"fold_{kind}_s" not in info:
            t = time.perf_counter()
            fs = fold_volume(
                vol, grid, crystal.point_group_rlu, centering=centering, q_tolerance=0.05, corrections=corr
            )
            info[f"fold_{kind}_s"] = time.perf_counter() - t
            write_folded(f, fs)
            _atomic_json(info_path, info)
    info["folded_paper"] = read_folded(d / "folded_paper.h5")
    info["folded_raw"] = read_folded(d / "folded_raw.h5")
    info["run"] = run
    info["n_bins"] = len(vol.index)
    return info


def plain_fold_seconds_per_bin(
    run, grid, crystal, n_bins: int, q_tolerance: float = 0.05, seed: int = 0
) -> float:
    """A straightforward per-bin fold (what one writes first), timed on ``n_bins`` covered bins."""
    vol = run.total()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(vol.index), size=min(n_bins, len(vol.index)), replace=False)
    cen = [vol.centres(a) for a in range(4)]
    shape = vol.shape
    rots = crystal.point_group_rlu
    segs = []
    starts = [0] + [int(t) for t in grid.ticks[1:-1]] + [grid.n_q]
    for a, b in zip(starts[:-1], starts[1:]):
        q0 = grid.q_rlu[a] - 0.5 * (grid.q_rlu[a + 1] - grid.q_rlu[a]) if b - a > 1 else grid.q_rlu[a]
        step = grid.q_rlu[a + 1] - grid.q_rlu[a] if b - a > 1 else np.zeros(3)
        segs.append((a, b, q0, step))
    G = crystal.reciprocal_lattice_rlu(8)
    acc = np.zeros(grid.shape)
    t0 = time.perf_counter()
    for flat in vol.index[pick]:
        h, k, l, e = np.unravel_index(flat, shape)
        Q = np.array([cen[0][h], cen[1][k], cen[2][l]])
        ie = np.searchsorted(grid.energy_edges, cen[3][e]) - 1
        if not 0 <= ie < grid.n_e:
            continue
        for R in rots:
            gq = R @ Q
            q = gq - G[np.argmin(np.linalg.norm(G - gq, axis=1))]
            for a, b, q0, step in segs:
                n = b - a
                s2 = step @ step
                if s2 == 0:
                    continue
                t = (q - q0) @ step / s2
                if 0 <= t < n and np.linalg.norm(q - q0 - t * step) <= q_tolerance:
                    acc[a + int(t), ie] += 1.0
    return (time.perf_counter() - t0) / len(pick), len(vol.index)


def truth_files() -> tuple[Path, Path]:
    """The truth's FORCE_CONSTANTS and POSCAR."""
    return TRUTH["dir"] / "FORCE_CONSTANTS", TRUTH["dir"] / "POSCAR"


@lru_cache(maxsize=8)
def truth_projection(ref):
    """The DFT set's projection onto the parameter space (what ``fcinv project`` prints), by name
    (once per space: every run and the best-fit lines ask for the same ones)."""
    from fcinv.fcspace import read_phonopy

    pairs = read_phonopy(ref.crystal, *truth_files(), TRUTH["supercell"])
    proj = ref.space.project(pairs)
    return dict(zip(ref.space.names, np.asarray(proj.theta, float).tolist()))


def phonopy_thz(crystal, q_rlu: np.ndarray) -> np.ndarray:
    """The DFT set's own dispersion (phonopy, the whole FORCE_CONSTANTS file), THz, ascending per q."""
    import phonopy

    ph = phonopy.load(
        supercell_matrix=np.diag(TRUTH["supercell"]),
        primitive_matrix="P",
        unitcell_filename=str(truth_files()[1]),
        force_constants_filename=str(truth_files()[0]),
        produce_fc=False,
        log_level=0,
    )
    ph.run_qpoints(crystal.rlu_to_prim_frac(q_rlu))
    return np.sort(np.asarray(ph.qpoints.frequencies, float), axis=1)


def model_thz(ref, theta: dict, q_rlu: np.ndarray, tail: str) -> np.ndarray:
    """Dispersion of θ (by name, all parameters) in THz; ``tail`` "reference" keeps the reference member beyond the cutoff."""
    from fcinv.fitting.dispersion_fit import model_energies
    from fcinv.units import THZ_TO_MEV

    full = np.array([theta[n] for n in ref.space.names])
    if tail == "reference":
        e = model_energies(ref.space, full, q_rlu, reference=ref.pairs, theta_ref=ref.theta_ref)
    else:
        e = model_energies(ref.space, full, q_rlu)
    return np.sort(e / THZ_TO_MEV, axis=1)


def dispersion_best_theta(ref, truth: dict, q_path, q_mesh, disp_path, disp_mesh) -> dict:
    """The best θ of the parameter space for the truth's own dispersion (every mode above 1 meV on path + mesh, σ = 0.01 THz)."""
    from fcinv.fitting import DispersionPoints, fit_dispersion
    from fcinv.units import THZ_TO_MEV

    q = np.vstack([q_path, q_mesh])
    e = np.vstack([disp_path, disp_mesh]) * THZ_TO_MEV
    qq = np.repeat(q, e.shape[1], axis=0)
    br = np.tile(np.arange(e.shape[1]), len(q))
    ee = e.ravel()
    keep = ee > 1.0
    pts = DispersionPoints(qq[keep], ee[keep], np.full(int(keep.sum()), 0.01 * THZ_TO_MEV), br[keep])
    start = np.array([truth[n] for n in ref.space.names])
    res = fit_dispersion(ref.space, pts, start, free="all", prior=None, outliers=False)
    return dict(zip(ref.space.names, [res.extra["theta_full"][n] for n in ref.space.names]))


def ml_input_kind(predictor) -> tuple[str, str]:
    """The fold the model reads, and a description of the model (what it was trained on).

    Every shipped model reads the one-phonon-corrected fold (``fcinv fold --one-phonon T``): the
    paper models were trained on weight-1 images, the physical ones on the physical model's
    prediction of that corrected fold (``fcinv.dataset.physical``).
    """
    src = Path(str(predictor.source))
    cfg_path = src / "config.json"
    desc = f"{src.parent.name} ({predictor.kind}, {len(predictor.names)} parameters)"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text())
        ds = cfg.get("dataset", {})
        desc += f", trained {cfg.get('created', '?')} on {ds.get('path', '?')} (n = {ds.get('n', '?')})"
        intensity = "unknown (dataset file not on this machine)"
        try:
            import h5py

            with h5py.File(ds.get("path", ""), "r") as f:
                meta = (
                    json.loads(f.attrs.get("meta", "{}"))
                    if isinstance(f.attrs.get("meta"), (str, bytes))
                    else {}
                )
            intensity = str(meta.get("forward_model", {}).get("intensity", intensity))[:60]
        except (OSError, ValueError, TypeError):
            pass
        desc += f", training intensity: {intensity}"
    return "paper", desc + "; reads the one-phonon-corrected (Bose, |Q|², E) fold"


def rel_err(est: dict, truth: dict, names) -> np.ndarray:
    return np.array([abs(est[n] - truth[n]) / abs(truth[n]) for n in names])


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def evaluate_run(
    label: str,
    info: dict,
    predictor,
    ref,
    truth: dict,
    q_path,
    q_mesh,
    disp_path,
    disp_mesh,
    temperature: float,
    args,
    paper_predictor=None,
) -> dict:
    """ML alone (and the paper-convention model's), the physical refinement and the paper-convention refinement on one run."""
    from fcinv.experiment.fold import FoldPlan
    from fcinv.experiment.instrument import Instrument

    names_all = list(ref.space.names)
    fc03 = list(ref.sampled[:4])
    kind, _ = ml_input_kind(predictor)
    fs_ml = info["folded_raw"] if kind == "physical" else info["folded_paper"]
    img = np.where(fs_ml.mask, fs_ml.intensity, np.nan)
    predictor.predict(img, k_samples=100, seed=0)  # warm-up (first call builds kernels)
    t = time.perf_counter()
    pred = predictor.predict(img, k_samples=100, seed=0)
    infer_ms = 1e3 * (time.perf_counter() - t)
    ml = dict(zip(predictor.names, np.asarray(pred.theta, float).tolist()))
    ml_sig = dict(zip(predictor.names, np.asarray(pred.sigma, float).tolist()))
    predicts_all = set(predictor.names) == set(names_all)
    # ML alone, in the model's own convention: a paper model holds the rest at the reference member (and its tail)
    ml_full = dict(zip(names_all, ref.theta_ref.tolist()))
    ml_full.update(ml)
    ml_tail = "zero" if predicts_all else "reference"
    out = {
        "label": label,
        "temperature_K": temperature,
        "orientations": info["run"].n_orientations,
        "ml_kind": kind,
        "infer_ms": infer_ms,
        "fold_s": info["fold_raw_s"] if kind == "physical" else info["fold_paper_s"],
        "fold_paper_s": info["fold_paper_s"],
        "fold_raw_s": info["fold_raw_s"],
        "coverage": float(fs_ml.mask.mean()),
        "ml": ml,
        "ml_sigma": ml_sig,
    }
    out["ml_rel_err"] = dict(zip(fc03, rel_err(ml_full, truth, fc03).tolist()))
    out["ml_disp_rms_THz"] = rms(model_thz(ref, ml_full, q_path, ml_tail), disp_path)
    out["ml_mesh_rms_THz"] = rms(model_thz(ref, ml_full, q_mesh, ml_tail), disp_mesh)
    if paper_predictor is not None:  # the paper-convention model beside it (same corrected fold)
        pp = paper_predictor.predict(img, k_samples=100, seed=0)
        pfull = dict(zip(names_all, ref.theta_ref.tolist()))
        pfull.update(dict(zip(paper_predictor.names, np.asarray(pp.theta, float).tolist())))
        ptail = "zero" if set(paper_predictor.names) == set(names_all) else "reference"
        out["paper_ml"] = {
            "rel_err": dict(zip(fc03, rel_err(pfull, truth, fc03).tolist())),
            "disp_rms_THz": rms(model_thz(ref, pfull, q_path, ptail), disp_path),
            "mesh_rms_THz": rms(model_thz(ref, pfull, q_mesh, ptail), disp_mesh),
        }
    # the start of both refinements: ML values, the prior centre (training-domain centre) for what the model does not predict
    dom = ref.domain(names_all)
    centre = dict(zip(names_all, (0.5 * (dom.low + dom.high)).tolist()))
    start = {n: ml.get(n, centre[n]) for n in names_all}
    fits = {}
    # paper convention (weight-1 lines) on the corrected fold, same parameters, zero tail
    fm = ref.forward_model(grid=predictor.grid, free=names_all, tail="zero")
    fits["paper"] = run_refinement(
        fm, info["folded_paper"], start, ref, truth, fc03, q_path, q_mesh, disp_path, disp_mesh
    )
    # physical forward model on the raw fold; the paper fit's θ is screened with the ML start by misfit (refine's candidates)
    try:
        from fcinv.forward.physical import PhysicalModel, coverage_from_fold
    except ImportError as exc:  # the physical model is not there yet
        fits["physical"] = {"error": f"physical forward model unavailable ({exc})"}
        PhysicalModel = None
    if PhysicalModel is not None:
        vol = info["run"].total()
        crystal = ref.crystal
        t = time.perf_counter()
        plan = FoldPlan.build(
            vol.edges[:3], predictor.grid, crystal.point_group_rlu, centering="F", q_tolerance=0.05
        )
        cov = coverage_from_fold(plan, vol, rotations=crystal.point_group_rlu, sampling=args.sampling)
        pm = PhysicalModel(
            ref.space,
            predictor.grid,
            ref.theta_ref,
            free=names_all,
            coverage=cov,
            temperature=temperature,
            resolution=Instrument(ei=40.0),
            sampling=args.sampling,
        )
        t_build = time.perf_counter() - t
        cand = (
            np.array([[fits["paper"]["theta"][n] for n in names_all]]) if fits["paper"]["success"] else None
        )
        fits["physical"] = run_refinement(
            pm,
            info["folded_raw"],
            start,
            ref,
            truth,
            fc03,
            q_path,
            q_mesh,
            disp_path,
            disp_mesh,
            candidates=cand,
            shells=args.refine_shells,
            select=args.select,
        )
        fits["physical"]["model_build_s"] = t_build
    out["refined"] = fits
    return out


def run_refinement(
    model,
    fs,
    start: dict,
    ref,
    truth,
    fc03,
    q_path,
    q_mesh,
    disp_path,
    disp_mesh,
    candidates=None,
    shells=(),
    select=None,
) -> dict:
    """refine() from ``start`` (or the best of it and ``candidates`` by misfit), every parameter free, the
    training-domain prior; with ``shells``, continued into those shell counts
    (:func:`fcinv.fitting.continuation.refine_in_shells`) and compared with the truth's projection onto
    the final space."""
    from inversion_stages import stage_figures, supercell_moves

    from fcinv.fitting import refine
    from fcinv.fitting.continuation import refine_in_shells
    from fcinv.reference import load_reference

    t = time.perf_counter()
    kw = {"prior": "domain", "material_reference": ref, "max_nfev": 300, "candidates": candidates}
    if shells:
        res = refine_in_shells(
            model, fs, {n: start[n] for n in model.names}, list(shells), select=select, **kw
        )
    else:
        res = refine(model, fs, {n: start[n] for n in model.names}, **kw)
    wall = time.perf_counter() - t
    n_final = int(res.extra.get("n_shells") or ref.n_shells)
    if res.extra.get("supercell"):
        rf = load_reference("Ge", supercell=res.extra["supercell"])
    else:
        rf = ref if n_final == ref.n_shells else load_reference("Ge", n_final)

    # each stage's FC0-FC3 against the truth's projection onto that stage's own space; the space rule
    def disp(r, th):
        return rms(model_thz(r, th, q_path, "zero"), disp_path), rms(
            model_thz(r, th, q_mesh, "zero"), disp_mesh
        )

    stages = res.extra.get("stages", [])
    stage_fig = stage_figures(stages, fc03, truth_projection, disp) if len(stages) > 1 else None
    tr = truth if rf is ref else truth_projection(rf)
    th = dict(zip(rf.space.names, [res.extra["theta_full"][n] for n in rf.space.names]))
    sig = dict(zip(res.names, [float(x) for x in res.sigma]))
    big = [n for n in rf.space.names if abs(tr[n]) > 0.02 * max(abs(v) for v in tr.values())]
    st0 = res.extra.get("stage0_theta_start") or dict(zip(res.names, res.theta_start))
    return {
        "success": bool(res.success),
        "message": res.message,
        "warnings": res.extra.get("warnings", []),
        "wall_s": wall,
        "chi2_dof": res.chi2_dof,
        "r_factor": res.extra.get("r_factor"),
        "lowest_mode_meV": res.extra.get("lowest_mode_meV"),
        "n_shells": n_final,
        "n_params": rf.space.n_params,
        "stages": [{k: v for k, v in st.items() if k not in ("theta", "sigma")} for st in stages],
        "stage_figures": stage_fig,
        "supercell_moves": supercell_moves(stages, fc03),
        "selection": res.extra.get("selection"),
        "supercell": res.extra.get("supercell"),
        "theta": th,
        "truth": tr,
        "sigma": sig,
        "rel_err": dict(zip(fc03, rel_err(th, tr, fc03).tolist())),
        "n_sigma": {n: abs(th[n] - tr[n]) / sig[n] if sig.get(n) else float("inf") for n in fc03},
        # relative errors only where the truth is not ~0 (> 2 % of its largest |θ|)
        "all_rel_err": dict(zip(big, rel_err(th, tr, big).tolist())),
        "disp_rms_THz": rms(model_thz(rf, th, q_path, "zero"), disp_path),
        "mesh_rms_THz": rms(model_thz(rf, th, q_mesh, "zero"), disp_mesh),
        "undetermined": [d["label"] for d in res.extra.get("undetermined", [])],
        "started_from": "ML answer"
        if np.allclose([st0[n] for n in model.names], [start[n] for n in model.names])
        else "the paper fit (lower misfit)",
    }


def print_run(r: dict, truth: dict, fc03) -> None:
    from inversion_stages import print_stages, print_supercell_moves

    print(
        f"--- {r['label']}: {r['temperature_K']:g} K, {r['orientations']} orientations; coverage {r['coverage']:.2f}; "
        f"fold {r['fold_s']:.2f} s; ML input: {r['ml_kind']} fold; inference {r['infer_ms']:.0f} ms"
    )
    head = f"{'':4} {'name':<8} {'truth':>9} {'ML':>9} {'±σ':>7} {'err':>7}"
    kinds = [k for k in ("physical", "paper") if "theta" in r["refined"].get(k, {})]
    for k in kinds:
        head += f" {k[:8] + ' fit':>13} {'err':>7}"
    print(head)
    for i, n in enumerate(fc03):
        line = f"FC{i:<2} {n:<8} {truth[n]:>9.4f} {r['ml'].get(n, float('nan')):>9.4f} {r['ml_sigma'].get(n, float('nan')):>7.4f} {100 * r['ml_rel_err'][n]:>6.1f}%"
        for k in kinds:
            f = r["refined"][k]
            line += f" {f['theta'][n]:>13.4f} {100 * f['rel_err'][n]:>6.1f}%"
        print(line)
    print(
        f"ML alone: FC0-FC3 max {max(r['ml_rel_err'].values()):.3f}; dispersion rms {r['ml_disp_rms_THz']:.3f} THz (path), {r['ml_mesh_rms_THz']:.3f} THz (mesh)"
    )
    if "paper_ml" in r:
        pm = r["paper_ml"]
        print(
            f"ML alone, paper-convention model ({r['paper_model']}): FC0-FC3 "
            + ", ".join(f"{100 * pm['rel_err'][n]:.1f} %" for n in fc03)
            + f" (max {max(pm['rel_err'].values()):.3f}); dispersion rms {pm['disp_rms_THz']:.3f} THz (path), {pm['mesh_rms_THz']:.3f} THz (mesh)"
        )
    for k in ("physical", "paper"):
        f = r["refined"].get(k, {})
        if "theta" not in f:
            print(f"refined ({k}): {f.get('error', 'not run')}")
            continue
        worst = max(f["all_rel_err"], key=f["all_rel_err"].get)
        print(
            f"refined ({k} model): success={f['success']}, FC0-FC3 max {max(f['rel_err'].values()):.3f}; dispersion rms {f['disp_rms_THz']:.3f} THz (path), "
            f"{f['mesh_rms_THz']:.3f} THz (mesh); chi2/dof {f['chi2_dof'] if f['chi2_dof'] is not None else float('nan'):.2f}, R {f['r_factor']:.3f}; "
            f"lowest mode {f['lowest_mode_meV']:.2f} meV; worst parameter {worst} {100 * f['all_rel_err'][worst]:.0f}%; {f['wall_s']:.1f} s; "
            f"started from {f['started_from']}"
        )
        if f.get("stage_figures"):
            print_stages(f["stage_figures"], fc03)
            print_supercell_moves(f["supercell_moves"], fc03)
        if f.get("n_sigma"):
            print(
                "    FC0-FC3 |refined - truth| / sigma: "
                + ", ".join(f"{n} {f['n_sigma'][n]:.1f}" for n in fc03)
                + " (sigma: the fit's Laplace sigma, with the cutoff systematic of a continued refinement)"
            )
        if "rel_err_vs_dispersion_best" in f:
            print(
                f"    FC0-FC3 against the best fit of the truth's dispersion (not its projection): max {max(f['rel_err_vs_dispersion_best'].values()):.3f}"
            )
        for w in f["warnings"]:
            print(f"    warning: {w}")


def _once_per_kind():
    """A log filter that lets each kind of warning (logger, first 30 characters) through once."""
    seen = set()

    def keep(rec: logging.LogRecord) -> bool:
        key = (rec.name, rec.getMessage()[:30])
        if key in seen:
            return False
        seen.add(key)
        return True

    return keep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", default="ge", help="installed model name or folder (default ge: whichever is installed)"
    )
    ap.add_argument(
        "--paper-model", default="ge-paper", help="paper-convention model shown beside it ('none' to skip)"
    )
    ap.add_argument("--out", default="out/experiment_inversion")
    ap.add_argument(
        "--runs", default=",".join(r[0] for r in RUNS), help="which runs (comma-separated labels)"
    )
    ap.add_argument("--plain-bins", type=int, default=300, help="bins timed for the plain per-bin fold peer")
    ap.add_argument(
        "--sampling",
        default="bins",
        choices=("bins", "path"),
        help="physical model: diagonalise at the 4D-bin positions or the path",
    )
    ap.add_argument("--mesh-points", type=int, default=400)
    ap.add_argument(
        "--ml-controls",
        action="store_true",
        help="print where ML alone goes wrong on each run (controls (a)-(d), module docstring) instead of refining",
    )
    ap.add_argument(
        "--refine-shells",
        type=str,
        nargs="*",
        default=None,
        help="shell counts the physical refinement continues into after the model's own parameters "
        "(fcinv.fitting.continuation; default: the material's refine_shells; none given: no continuation)",
    )
    ap.add_argument(
        "--select",
        choices=("last", "stable", "bic"),
        default=None,
        help="which stage the refinement returns: the last, the data-only space rule's choice, or the "
        "lowest BIC (fcinv.fitting.continuation_select; default: the material's refine_select, else last)",
    )
    ap.add_argument(
        "--truth",
        default="dft",
        help="'dft' (the DFT Ge set) or a stable Stage I member of the embedded Ge ensemble (e.g. "
        "7net-0_22may2024): its whole 5x5x5 FC set, written as a phonopy folder under --out, is the truth",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().handlers[0].addFilter(_once_per_kind())

    from fcinv.inference import load_model
    from fcinv.material import load_material
    from fcinv.pipeline.core import model_reference
    from fcinv.reference import load_reference

    if not (SHARED / "FORCE_CONSTANTS").is_file():
        raise SystemExit(f"the DFT Ge set is not at {SHARED}; this benchmark needs it (the truth).")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.truth != "dft":
        from inversion_controls import write_member_truth

        TRUTH["dir"], TRUTH["supercell"] = write_member_truth(args.truth, out / f"truth_{args.truth}")
        TRUTH["what"] = f"the Ge ensemble member {args.truth}'s whole FC set"
    predictor = load_model(args.model)
    # the model's own parameter space (5 shells for a 16-parameter model, 11 for a 47-parameter one): ML
    # alone is compared with the truth's projection onto it
    ref = model_reference(load_material("Ge"), predictor.names)
    if args.refine_shells is None:
        args.refine_shells = list(load_material("Ge").info.get("refine_shells") or [])
    # the continuation skips counts not above the model's own (fcinv.fitting.continuation)
    from fcinv.fcspace.supercell import parse_supercell, supercell_label

    cells = [
        supercell_label(parse_supercell(n)) for n in args.refine_shells if parse_supercell(n) is not None
    ]
    args.refine_shells = sorted(
        {int(n) for n in args.refine_shells if parse_supercell(n) is None and int(n) > ref.n_shells}
    ) + list(dict.fromkeys(cells))
    print(
        "physical refinement: the model's "
        f"{ref.space.n_params} parameters ({ref.n_shells} shells)"
        + (
            f", continued into {args.refine_shells} (in order of size, each stage from the last, new parameters at zero)"
            if args.refine_shells
            else ""
        )
    )
    _, desc = ml_input_kind(predictor)
    paper_predictor = None
    if args.paper_model.lower() != "none" and args.paper_model != args.model:
        try:
            paper_predictor = load_model(args.paper_model)
        except Exception as exc:  # noqa: BLE001 - an optional comparison
            print(f"paper-convention model {args.paper_model!r} not available ({exc}); skipped")
        else:
            print(
                f"paper-convention model beside it: {args.paper_model} = {ml_input_kind(paper_predictor)[1]}"
            )
    print(
        f"truth: {TRUTH['what']} ({TRUTH['dir']}, {'x'.join(map(str, TRUTH['supercell']))} supercell); compared with its projection onto the "
        f"{ref.space.n_params} parameters of {len(ref.space.shells)} shells and with its own phonopy dispersion"
    )
    print(f"ML model: {args.model} = {desc}")
    truth = truth_projection(ref)
    fc03 = list(ref.sampled[:4])
    print("truth projection (eV/Å²): " + ", ".join(f"{n} {truth[n]:.4f}" for n in ref.space.names))
    q_path = predictor.grid.q_rlu
    q_mesh = np.random.default_rng(0).uniform(0.0, 1.0, (args.mesh_points, 3))
    t = time.perf_counter()
    disp_path, disp_mesh = phonopy_thz(ref.crystal, q_path), phonopy_thz(ref.crystal, q_mesh)
    t_ph = time.perf_counter() - t
    print(
        f"phonopy (peer, the truth's dispersion): {len(q_path)} path + {len(q_mesh)} mesh q-points in {t_ph:.2f} s"
    )
    proj_path = rms(model_thz(ref, truth, q_path, "zero"), disp_path)
    proj_mesh = rms(model_thz(ref, truth, q_mesh, "zero"), disp_mesh)
    print(
        f"floor: the truth's own projection (zero beyond the cutoff) is {proj_path:.3f} THz (path), {proj_mesh:.3f} THz (mesh) from the full set"
    )
    if args.ml_controls:  # no refinement: the best fits of the dispersion are not needed
        from inversion_controls import ml_controls

        for label, temp, n_or in [r for r in RUNS if r[0] in args.runs.split(",")]:
            info = simulate_and_fold(out, label, temp, n_or, predictor.grid, ref.crystal)
            ml_controls(label, info, predictor, ref, truth, q_path, disp_path, temp, sys.modules[__name__])
        return
    best = dispersion_best_theta(ref, truth, q_path, q_mesh, disp_path, disp_mesh)
    b_err = rel_err(best, truth, fc03)
    print(
        f"best {ref.space.n_params}-parameter fit of the truth's own dispersion (fit_dispersion to its phonopy energies): "
        f"{rms(model_thz(ref, best, q_path, 'zero'), disp_path):.3f} THz (path), {rms(model_thz(ref, best, q_mesh, 'zero'), disp_mesh):.3f} THz (mesh); "
        f"its FC0-FC3 differ from the projection by " + ", ".join(f"{100 * x:.1f} %" for x in b_err)
    )
    best_by_shells = {ref.n_shells: best}
    for n in args.refine_shells:
        if isinstance(n, str):
            # a supercell space: the truth's projection onto one that holds the truth's cell is the file itself
            rn = load_reference("Ge", supercell=n)
            tn = truth_projection(rn)
            p_path = rms(model_thz(rn, tn, q_path, "zero"), disp_path)
            print(
                f"{n} supercell space ({rn.space.n_params} parameters): the truth's projection is "
                f"{p_path:.4f} THz (path), {rms(model_thz(rn, tn, q_mesh, 'zero'), disp_mesh):.4f} THz (mesh) "
                "from the full set "
                + (
                    "(it holds the file: phonopy's masses 72.64 against fcinv's 72.63 amu; equal masses 1e-6 THz)"
                    if p_path < 0.01
                    else "(a truncation of the file)"
                )
            )
            continue
        rn = load_reference("Ge", n)
        tn = truth_projection(rn)
        bn = dispersion_best_theta(rn, tn, q_path, q_mesh, disp_path, disp_mesh)
        best_by_shells[n] = bn
        print(
            f"{n} shells ({rn.space.n_params} parameters): the truth's projection is "
            f"{rms(model_thz(rn, tn, q_path, 'zero'), disp_path):.3f} THz (path), {rms(model_thz(rn, tn, q_mesh, 'zero'), disp_mesh):.3f} THz (mesh) "
            f"from the full set; the best fit of its dispersion {rms(model_thz(rn, bn, q_path, 'zero'), disp_path):.3f} / "
            f"{rms(model_thz(rn, bn, q_mesh, 'zero'), disp_mesh):.3f} THz, FC0-FC3 "
            + ", ".join(f"{100 * x:.1f} %" for x in rel_err(bn, tn, fc03))
            + " from the projection (what the dispersion alone leaves open at this cutoff)"
        )
    results = {}
    wanted = [r for r in RUNS if r[0] in args.runs.split(",")]
    for label, temp, n_or in sorted(
        wanted, key=lambda r: r[0] == "T5_n120"
    ):  # the headline last, above RESULT
        info = simulate_and_fold(out, label, temp, n_or, predictor.grid, ref.crystal)
        r = evaluate_run(
            label,
            info,
            predictor,
            ref,
            truth,
            q_path,
            q_mesh,
            disp_path,
            disp_mesh,
            temp,
            args,
            paper_predictor=paper_predictor,
        )
        r["paper_model"] = args.paper_model
        for f in r["refined"].values():
            if "theta" in f:
                b = best_by_shells.get(f.get("n_shells"), best)
                f["rel_err_vs_dispersion_best"] = dict(zip(fc03, rel_err(f["theta"], b, fc03).tolist()))
        results[label] = r
        print_run(r, truth, fc03)
        if label == "T5_n120":
            per_bin, n_bins = plain_fold_seconds_per_bin(
                info["run"], predictor.grid, ref.crystal, args.plain_bins
            )
            r["plain_fold_s"] = per_bin * n_bins
            print(
                f"fold peer: plain per-bin loop {per_bin * 1e6:.0f} µs/bin over {n_bins:,} bins -> {per_bin * n_bins:.0f} s "
                f"against fcinv's {r['fold_s']:.2f} s ({per_bin * n_bins / r['fold_s']:.0f}x)"
            )
        _atomic_json(
            out / "summary.json",
            {
                "truth": truth,
                "dispersion_best": best,
                "model": desc,
                "floor_projection_THz": [proj_path, proj_mesh],
                "runs": results,
            },
        )
    h = results.get("T5_n120")
    if h is None:
        return
    f = h["refined"].get("physical", {})
    if "theta" not in f:
        f = {
            "rel_err": {n: float("nan") for n in fc03},
            "disp_rms_THz": float("nan"),
            "mesh_rms_THz": float("nan"),
        }
    print(
        f"truth of the RESULT line: {TRUTH['what']} ({TRUTH['dir'].name}, {'x'.join(map(str, TRUTH['supercell']))}); refined "
        f"FC0-FC3 against its projection onto the returned stage's space ({f.get('supercell') or f.get('n_shells')}), "
        "dispersions against its own phonopy dispersion"
    )
    print(
        f"RESULT ml_fc0_3_max_rel_err={max(h['ml_rel_err'].values()):.4f} refined_fc0_3_max_rel_err={max(f['rel_err'].values()):.4f} "
        f"disp_rms_THz={f['disp_rms_THz']:.4f} mesh_rms_THz={f['mesh_rms_THz']:.4f} ml_disp_rms_THz={h['ml_disp_rms_THz']:.4f} "
        f"fold_s={h['fold_s']:.2f} infer_ms={h['infer_ms']:.1f}"
    )


if __name__ == "__main__":
    main()
