"""Physical forward model against Euphonic + fcinv's fold of the same simulated run (issue 17, item 3).

Truth: the full DFT Ge force-constant set (../shared/data/ge_dft_pathsqe/FORCE_CONSTANTS with its
POSCAR, 4x4x4 supercell, the whole file). For each temperature (5 K and 300 K) this

1. simulates an ARCS-like run with :func:`fcinv.experiment.simulate.simulate_experiment`
   (Euphonic S(Q, E): eigenvectors, Debye–Waller on a 10³ mesh, Bose, the instrument's FWHM(E);
   Ei = 40 meV, ``--n-orientations`` orientations in 1° steps; timed: the Euphonic peer),
2. folds its noise-free expected intensity with fcinv's fold (``FoldPlan``; each 4D bin weighted by
   its summed exposure, as the fold of the counts weights it; timed), converted back to mbarn/meV
   (expected − background)·S̄,
3. builds :class:`fcinv.forward.PhysicalModel` from the same FC set with the coverage of that fold
   (:func:`coverage_from_fold`) and compares its spectrum pixel by pixel:
   max_dev_rel = max |model − fold| / max(fold) over the covered pixels.

The same comparison is made with the DFT set's projection onto the 5-shell space exported to
Euphonic through phonopy's array (``--projection``, default on): there Euphonic and fcinv use the
identical force constants, which separates the model's own approximation (the tube average) from
Euphonic's different treatment of the 4x4x4 supercell images of the DFT file.

Two samplings of the model are measured: ``bins`` (the default for a fold's coverage: phonons at every
distinct 4D-bin position, merged by symmetry, so the fold's average across the tube is reproduced)
and ``path`` (phonons only at the 140 path points: faster, but blind to the dispersion across the
±0.05 r.l.u. tube, which matters most near Γ).

Speed: ``PhysicalModel.spectra`` on batches of stable random θ (±10 % about the DFT projection, all
16 parameters free), best of 3; batches run 8 θ at a time in SIMD lanes (the path the dataset
generator takes, its groups being batches too); the Euphonic route's time per spectrum is the
simulation plus the fold of one run (phonons once per Q-bin, never per orientation).

Usage: python benchmarks/physical_forward.py [--n-orientations 120] [--n-spectra 2000]
Last line: ``RESULT max_dev_rel=<x> spectra_per_s=<n> speedup_vs_euphonic=<x>`` for ``sampling=bins``
(max over both temperatures for max_dev_rel; the DFT file as truth); the ``path`` figures above it.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numba
import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ge_dft_pathsqe"


def truth_fold(run, grid, crystal):
    """The noise-free fold of a run in mbarn/meV, the Volume4D folded and the FoldPlan."""
    from fcinv.experiment.fold import FoldPlan
    from fcinv.experiment.volume import Volume4D

    tot = run.total()
    if not np.array_equal(tot.index, run.expected_index):
        raise SystemExit("the run's expected and measured bins differ; cannot weight by exposure")
    s_mean = float(run.meta["mean_one_phonon_mbarn_per_meV"])
    bg = float(run.meta["config"]["background"])
    sig = (run.expected - bg) * s_mean
    vol = Volume4D(
        edges=run.edges,
        index=run.expected_index,
        signal=sig,
        error=np.zeros(len(sig)),
        norm=tot.weights,
        meta={"source": "noise-free expected, exposure-weighted"},
        reciprocal_cell=run.reciprocal_cell,
    )
    t = time.perf_counter()
    plan = FoldPlan.build(run.edges[:3], grid, crystal.point_group_rlu, centering="F", q_tolerance=0.05)
    fs = plan.apply(vol)
    return fs, vol, plan, time.perf_counter() - t


def compare(model, fs) -> tuple[float, float]:
    """(max |Δ| / peak, rms |Δ| / peak) over the pixels both cover."""
    pred = model.spectra(model.theta0)[0].astype(float)
    m = fs.mask & model.mask
    ref = np.where(m, fs.intensity, 0.0)
    d = np.abs(pred - ref)[m]
    peak = float(ref.max())
    return float(d.max() / peak), float(np.sqrt(np.mean(d**2)) / peak)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-orientations", type=int, default=120)
    ap.add_argument("--n-spectra", type=int, default=2000)
    ap.add_argument("--temperatures", type=float, nargs="+", default=[5.0, 300.0])
    ap.add_argument("--no-projection", action="store_true", help="skip the identical-force-constant control")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from fcinv.crystal import Crystal, default_grid
    from fcinv.experiment.instrument import Goniometer, Instrument
    from fcinv.experiment.simulate import (
        ExperimentConfig,
        force_constants_from_array,
        load_force_constants,
        simulate_experiment,
    )
    from fcinv.fcspace import FCSpace, read_phonopy
    from fcinv.forward import PhysicalModel, coverage_from_fold

    if not (SHARED / "FORCE_CONSTANTS").is_file():
        raise SystemExit(f"the DFT Ge set is not at {SHARED}; this benchmark needs it as the truth")
    crystal = Crystal.from_file(SHARED / "POSCAR", name="Ge")
    space = FCSpace(crystal, n_shells=5)
    grid = default_grid(crystal)
    pairs = read_phonopy(crystal, SHARED / "FORCE_CONSTANTS", SHARED / "POSCAR", (4, 4, 4))
    theta_proj = space.project(pairs).theta
    inst = Instrument(ei=40.0)
    gon = Goniometer.steps(0.0, 1.0, args.n_orientations)
    truths = [
        ("DFT file", load_force_constants(SHARED / "FORCE_CONSTANTS", SHARED / "POSCAR", (4, 4, 4))[0], pairs)
    ]
    if not args.no_projection:
        arr = space.to_phonopy(theta_proj, np.diag([4, 4, 4]))
        efc_p, _ = force_constants_from_array(
            arr, crystal.lattice, crystal.positions, crystal.numbers, (4, 4, 4), masses=crystal.masses
        )
        truths.append(("5-shell projection", efc_p, None))
    _, ecrystal = load_force_constants(SHARED / "FORCE_CONSTANTS", SHARED / "POSCAR", (4, 4, 4))

    print(
        f"truth: DFT Ge FORCE_CONSTANTS (whole file, 4x4x4) at {SHARED.resolve()}; Ei 40 meV, "
        f"{args.n_orientations} orientations (1° steps), "
        f"grid {grid.shape}, resolution {inst.resolution_model()} FWHM(0) = {float(inst.fwhm(0.0)):.3f} meV"
    )
    devs = {}
    euph_s = []
    models = {}
    for T in args.temperatures:
        for label, efc, ref_pairs in truths:
            cfg = ExperimentConfig(temperature=T, seed=0)
            t = time.perf_counter()
            run = simulate_experiment(efc, ecrystal, instrument=inst, goniometer=gon, config=cfg, region=grid)
            t_sim = time.perf_counter() - t
            fs, vol, plan, t_fold = truth_fold(run, grid, crystal)
            if ref_pairs is not None:
                euph_s.append(t_sim + t_fold)
            for sampling in ("bins", "path"):
                t = time.perf_counter()
                cov = coverage_from_fold(plan, vol, rotations=crystal.point_group_rlu, sampling=sampling)
                # the simulation has no Debye–Waller factor at T = 0
                kw = {
                    "coverage": cov,
                    "temperature": T,
                    "resolution": inst,
                    "dw": "theta" if T > 0 else "none",
                }
                if ref_pairs is not None:
                    model = PhysicalModel.from_pairs(space, grid, ref_pairs, **kw)
                else:
                    model = PhysicalModel(space, grid, theta_proj, **kw)
                t_build = time.perf_counter() - t
                mx, rms = compare(model, fs)
                devs[(T, label, sampling)] = mx
                if ref_pairs is not None:
                    models[sampling] = model
                print(
                    f"T={T:g} K truth={label} sampling={sampling} ({len(model._pts_pixel)} points): "
                    f"max_dev_rel={mx:.2e} rms_dev_rel={rms:.2e} "
                    f"covered={int((fs.mask & model.mask).sum())} px; Euphonic simulate {t_sim:.1f} s + "
                    f"fold {t_fold:.1f} s; "
                    f"model build (coverage + precompute) {t_build:.1f} s"
                )

    # speed (all 16 parameters free, DFT file as D_ref, the last temperature's coverage), stable θ only
    rng = np.random.default_rng(0)
    m0 = models["bins"]
    cand = m0.theta0 * (1 + 0.1 * rng.uniform(-1, 1, size=(2 * args.n_spectra, m0.k)))
    theta = cand[m0.is_stable(cand)][: args.n_spectra]
    sps = {}
    for sampling, model in models.items():
        model.spectra(theta[:8])
        best, best_cpu = np.inf, np.inf
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            model.spectra(theta)
            best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
        sps[sampling] = len(theta) / best
        print(
            f"physical model sampling={sampling}: {sps[sampling]:.0f} spectra/s wall, "
            f"{len(theta) / best_cpu:.0f} per CPU-second "
            f"({len(theta)} stable θ within ±10 %, best of 3, {model.k} parameters, dw={model.dw}, "
            f"{numba.get_num_threads()} threads, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
        )
    # the cumulant form of the Debye–Waller change (the default) against the order-6 series, same θ
    import copy

    m_tay = copy.copy(m0)
    m_tay.dw_expansion = "taylor"
    m_tay._precompute()
    sub = theta[:256]
    a, b = m0.spectra(sub), m_tay.spectra(sub)
    print(
        f"dw_expansion=cumulant vs taylor ({len(sub)} θ, T={args.temperatures[-1]:g} K): "
        f"max |Δ| / peak = {float(np.abs(a - b).max() / b.max()):.2e}"
    )
    euph_per = float(np.median(euph_s))
    print(
        f"Euphonic + fold: {euph_per:.1f} s per spectrum (median over temperatures; phonons once per Q-bin)"
    )
    for sampling in ("path",):
        worst_p = max(v for (T, lab, smp), v in devs.items() if lab == "DFT file" and smp == sampling)
        print(
            f"sampling={sampling} (fast, path points only): max_dev_rel={worst_p:.4f} "
            f"spectra_per_s={sps[sampling]:.0f} "
            f"speedup_vs_euphonic={euph_per * sps[sampling]:.0f}"
        )
    worst = max(v for (T, lab, smp), v in devs.items() if lab == "DFT file" and smp == "bins")
    print(
        f"RESULT max_dev_rel={worst:.2e} spectra_per_s={sps['bins']:.0f} "
        f"speedup_vs_euphonic={euph_per * sps['bins']:.0f}"
    )


if __name__ == "__main__":
    main()
