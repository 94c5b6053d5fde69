"""Closed-loop steering benchmark (issue 12): adaptive acquisition against the uniform 1° rotation scan.

Truth: the full DFT Ge force-constant set (../shared/data/ge_dft_pathsqe/FORCE_CONSTANTS with its POSCAR,
4x4x4 supercell, the whole file). The candidate orientations ψ = 0, 1, ..., ``--n-candidates``−1 degrees
are simulated once with Euphonic (:func:`fcinv.experiment.simulate.simulate_experiment`: eigenvectors,
Debye–Waller, Bose, the instrument's FWHM(E), 5 K, Ei = 40 meV, ``--minutes`` per orientation);
every strategy draws from them: measuring orientation ψ once more draws fresh Poisson counts from that
orientation's expected counts (seeded per repeat), so repeats are independent measurements.

The pipeline, the same for both strategies, after every new orientation: the incremental fold
(:class:`fcinv.steering.incremental.IncrementalFold`, no corrections), the joint physical model of the
measured orientations (:class:`fcinv.steering.combine.JointModel`, path sampling, all 16 parameters,
Debye–Waller following θ) and the refinement fit (:func:`fcinv.fitting.fit_spectrum`: the training-domain
prior, warm-started from the previous answer; the first fit starts from the embedded reference θ, or
from the truth's projection with ``--start-at-truth``). The σ compared with the target is the refined
fit's reported σ (Laplace: data + prior, scaled by χ²/dof), on FC0–FC3.

- uniform: ψ = a, a+1°, a+2°, ... (the paper's scan), refitted every ``--check-uniform`` orientations.
- adaptive: a, a+1°, a+2° first (``--n-start``), then, each step, the orientation that
  :func:`fcinv.steering.rank` puts first (D-optimal on FC0–FC3, Fisher information of every candidate
  linearised at the first fitted answer, posterior = prior + the information measured so far), refitted
  every ``--check-adaptive`` orientations.

Beam time to the target: the first refit at which σ_i ≤ ``--target-rel`` × |θ̂_i| for all of FC0–FC3
(orientations × minutes). Repeats: ``--seeds`` Poisson seeds × ``--starts`` starting angles.
beamtime_ratio = median over repeats of uniform time / adaptive time (a strategy that never reaches the
target within its budget counts at its budget, and the ratio is then flagged as a bound);
adaptive_err_over_sigma = median over repeats and FC0–FC3 of |θ̂ − θ_true|/σ at the adaptive target
(θ_true = the DFT set's projection onto the 16 parameters); update_s = median time of one incremental
fold + joint model + refit (all steps, both strategies). Above the RESULT line: the same for the Fisher
forecast σ (what ``fcinv advise`` predicts), and the per-repeat figures.

Cut to fit the 2 loaded cores (measured: 29 min with a control run beside it): 5 seeds × 2 starts,
150 candidates (0–149°: the uniform scan from 30° needs 149°), refits every 10 (uniform) / 5 (adaptive)
orientations instead of after each, the fast fit settings (no pre-smoothing stage, no outlier stage,
30 evaluations, 4³ stability mesh), path sampling (bins sampling is closer to the Euphonic fold but has
no joint model).

Usage: python benchmarks/steering.py [--n-candidates 150] [--seeds 5] [--starts 0 30] [--figure
docs/figures/steering.png]
Last line: ``RESULT beamtime_ratio=<x> adaptive_err_over_sigma=<x> update_s=<s>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ge_dft_pathsqe"
FC03 = 4


def _thin_svd_shim() -> None:
    """fitting.priors.undetermined_directions takes a full SVD (U: n_pix × n_pix, ~20 s at 8,000 pixels)
    of the data Jacobian; its singular values and right vectors are those of R in J = QR, so pass R
    (identical output)."""
    from fcinv.fitting import spectrum_fit

    orig = spectrum_fit.undetermined_directions
    if getattr(orig, "_thin", False):
        return

    def thin(J, names, prior):
        J = np.asarray(J, float)
        if J.ndim == 2 and J.shape[0] > J.shape[1]:
            J = np.linalg.qr(J, mode="r")
        return orig(J, names, prior)

    thin._thin = True  # type: ignore[attr-defined]
    spectrum_fit.undetermined_directions = thin


class Pool:
    """The simulated candidate orientations: per orientation its bins, exposure and expected intensity."""

    def __init__(self, run):
        self.run = run
        pos = np.searchsorted(run.expected_index, run.index)
        if not np.array_equal(run.expected_index[np.minimum(pos, len(pos) - 1)], run.index):
            raise SystemExit("the run's expected bins do not cover its measured bins")
        self.expected = run.expected[pos]

    def draw(self, j: int, rng):
        from fcinv.experiment.volume import Volume4D

        r = self.run
        a, b = int(r.offsets[j]), int(r.offsets[j + 1])
        counts = rng.poisson(r.norm[a:b] * self.expected[a:b])
        return Volume4D.from_counts(
            r.edges,
            r.index[a:b],
            counts,
            r.norm[a:b],
            meta={"psi_deg": float(r.psi[j])},
            reciprocal_cell=r.reciprocal_cell,
        )


def fit(model, fs, start):
    from fcinv.fitting import fit_spectrum

    t = time.perf_counter()
    res = fit_spectrum(
        model, fs, theta_start=start, presmooth_meV=None, outliers=False, max_nfev=30, stability_mesh=4
    )
    return res, time.perf_counter() - t


def run_strategy(kind, pool, models, a, seed, args, names, prior_sigma, theta_start, truth):
    from fcinv.steering.combine import JointModel
    from fcinv.steering.design import Posterior, gains
    from fcinv.steering.incremental import IncrementalFold

    rng = np.random.default_rng(1000 * seed + a)
    inc = IncrementalFold(args.plan)
    jm = JointModel(models[0])
    n_c = len(models)
    theta = np.asarray(theta_start, float)
    budget = args.budget
    hist, updates = [], []
    post, infos, F = None, None, None
    for step in range(budget):
        if kind == "uniform" or step < args.n_start:
            j = (a + step) % n_c
        else:
            j = int(np.argmax(gains(post, F, names=names[:FC03], criterion="D")))
        t0 = time.perf_counter()
        inc.add(pool.draw(j, rng), source=str(j))
        jm.add(models[j], float(pool.run.psi[j]))
        n = step + 1
        every = args.check_uniform if kind == "uniform" else args.check_adaptive
        due = (n == args.n_start) or (n > args.n_start and (n - args.n_start) % every == 0) or n == budget
        if post is not None:
            post.precision = post.precision + F[j]
        if not due:
            continue
        fs = inc.folded()
        res, _ = fit(jm.model(), fs, theta)
        dt = time.perf_counter() - t0
        updates.append(dt)
        theta = np.asarray(res.theta, float)
        sig = np.asarray(res.sigma, float)
        if post is None:
            # linearise every candidate at the first answer; the posterior = prior + what was measured
            post = Posterior.from_prior(
                names,
                theta,
                prior_sigma,
                scale=float(res.extra.get("scale", 1.0)),
                background=max(float(res.extra.get("background", 0.0)), 1e-3),
            )
            infos = [args.relinearise(ii, theta) for ii in range(n_c)]
            F = np.stack(
                [c.fisher(scale=post.scale, background=post.background, rate_time=1.0) for c in infos]
            )
            for jj in inc.sources:
                post.precision = post.precision + F[int(jj)]
        fsig = post.sigma(names[:FC03])
        rec = {
            "n": n,
            "minutes": n * args.minutes,
            "sigma": sig[:FC03].tolist(),
            "theta": theta[:FC03].tolist(),
            "err_over_sigma": (np.abs(theta - truth) / sig)[:FC03].tolist(),
            "chi2_dof": res.chi2_dof,
            "success": bool(res.success),
            "forecast_sigma": fsig.tolist(),
            "update_s": dt,
        }
        hist.append(rec)
        if np.all(sig[:FC03] <= args.target_rel * np.abs(theta[:FC03])) and n >= args.n_start:
            break
    last = hist[-1]
    reached = bool(np.all(np.asarray(last["sigma"]) <= args.target_rel * np.abs(np.asarray(last["theta"]))))
    fhit = [
        x["minutes"]
        for x in hist
        if np.all(np.asarray(x["forecast_sigma"]) <= args.target_rel * np.abs(np.asarray(x["theta"])))
    ]
    return {
        "kind": kind,
        "start_deg": a,
        "seed": seed,
        "reached": reached,
        "minutes": last["minutes"] if reached else budget * args.minutes,
        "history": hist,
        "update_s": updates,
        "psi_measured": [float(pool.run.psi[int(s)]) for s in inc.sources],
        "forecast_minutes": fhit[0] if fhit else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--n-candidates", type=int, default=150, help="candidate orientations 0..n-1 degrees (1° apart)"
    )
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--starts", type=float, nargs="+", default=[0.0, 30.0])
    ap.add_argument("--n-start", type=int, default=3, help="orientations measured before steering starts")
    ap.add_argument(
        "--budget", type=int, default=120, help="most orientations per strategy (the paper's run)"
    )
    ap.add_argument("--minutes", type=float, default=1.5, help="counting time per orientation (min)")
    ap.add_argument("--target-rel", type=float, default=0.05, help="σ target on FC0–FC3, fraction of |θ|")
    ap.add_argument("--check-uniform", type=int, default=10)
    ap.add_argument("--check-adaptive", type=int, default=5)
    ap.add_argument(
        "--start-at-truth", action="store_true", help="first fit from the truth's projection (diagnostic)"
    )
    ap.add_argument(
        "--truth",
        choices=("dft", "projection"),
        default="dft",
        help="dft: the DFT file as it is (the benchmark); projection: its 16-parameter projection exported "
        "to "
        "phonopy (a control the model can hold, up to path sampling)",
    )
    ap.add_argument("--figure", default="docs/figures/steering.png")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    _thin_svd_shim()

    from fcinv.crystal import default_grid
    from fcinv.experiment.fold import FoldPlan
    from fcinv.experiment.instrument import Goniometer, Instrument
    from fcinv.experiment.simulate import ExperimentConfig, load_force_constants, simulate_experiment
    from fcinv.fcspace import read_phonopy
    from fcinv.fitting.priors import build_prior
    from fcinv.forward.physical import PhysicalModel, coverage_from_fold
    from fcinv.reference import load_reference
    from fcinv.steering.combine import with_coverage
    from fcinv.steering.design import linearise

    if not (SHARED / "FORCE_CONSTANTS").is_file():
        raise SystemExit(f"the DFT Ge set is not at {SHARED}; this benchmark needs it as the truth")
    t_all = time.perf_counter()
    ref = load_reference("Ge")
    cr, grid, inst = ref.crystal, default_grid(ref.crystal), Instrument(ei=40.0)
    names = list(ref.sampled)
    pairs = read_phonopy(cr, SHARED / "FORCE_CONSTANTS", SHARED / "POSCAR", (4, 4, 4))
    truth = ref.space.project(pairs).theta[ref.space.index(names)]
    efc, ec = load_force_constants(SHARED / "FORCE_CONSTANTS", SHARED / "POSCAR", (4, 4, 4))
    if args.truth == "projection":
        from fcinv.experiment.simulate import force_constants_from_array

        full = ref.space.project(pairs).theta
        arr = ref.space.to_phonopy(full, np.diag([4, 4, 4]))
        efc, _ = force_constants_from_array(
            arr, cr.lattice, cr.positions, cr.numbers, (4, 4, 4), masses=cr.masses
        )
    t = time.perf_counter()
    cfg = ExperimentConfig(temperature=5.0, seed=0, counting_time=args.minutes)
    run = simulate_experiment(
        efc,
        ec,
        instrument=inst,
        goniometer=Goniometer.steps(0.0, 1.0, args.n_candidates),
        config=cfg,
        region=grid,
    )
    t_sim = time.perf_counter() - t
    pool = Pool(run)
    args.plan = FoldPlan.build(run.edges[:3], grid, cr.point_group_rlu, centering="F", q_tolerance=0.05)
    t = time.perf_counter()
    models = []
    for j in range(run.n_orientations):
        cov = coverage_from_fold(args.plan, run.orientation(j), rotations=cr.point_group_rlu, sampling="path")
        if not models:
            models.append(
                PhysicalModel(
                    ref.space,
                    grid,
                    ref.theta_ref,
                    free=names,
                    coverage=cov,
                    temperature=5.0,
                    resolution=inst,
                    dw="theta",
                    sampling="path",
                )
            )
        else:
            models.append(with_coverage(models[0], cov))
    t_models = time.perf_counter() - t
    start = truth.copy() if args.start_at_truth else ref.theta_ref[ref.space.index(names)]
    prior = build_prior(names, start, spec="domain", ref=ref)
    args.relinearise = lambda j, th: linearise(models[j], th, psi=float(run.psi[j]))
    t = time.perf_counter()
    for j in range(min(10, run.n_orientations)):
        args.relinearise(j, start)
    t_lin = (time.perf_counter() - t) / min(10, run.n_orientations)
    what = (
        "whole file, 4x4x4"
        if args.truth == "dft"
        else "CONTROL: its projection onto the 16 parameters, exported to phonopy"
    )
    print(
        f"truth: DFT Ge FORCE_CONSTANTS ({what}) at {SHARED.resolve()}; compared with its projection onto "
        "the 16 parameters"
    )
    print(
        f"candidates: {run.n_orientations} orientations 0..{run.n_orientations - 1}° simulated with "
        f"Euphonic in {t_sim:.1f} s "
        f"(5 K, Ei 40 meV, {args.minutes:g} min each); per-orientation physical models {t_models:.1f} s; "
        f"Jacobian (33 spectra) {1e3 * t_lin:.0f} ms per candidate"
    )
    print(
        "pipeline σ: the refined fit's reported σ (fit_spectrum, physical model, 16 parameters, "
        "training-domain prior); "
        f"target σ ≤ {100 * args.target_rel:g} % of |θ| on FC0–FC3 ({', '.join(names[:FC03])}); first fit "
        "from "
        f"{'the truth projection (diagnostic)' if args.start_at_truth else 'the embedded reference θ'}"
    )
    results = []
    for a in args.starts:
        for seed in range(args.seeds):
            row = {}
            for kind in ("uniform", "adaptive"):
                r = run_strategy(kind, pool, models, int(a), seed, args, names, prior.sigma, start, truth)
                results.append(r)
                row[kind] = r
                last = r["history"][-1]
                print(
                    f"start {a:5.1f}° seed {seed} {kind:8s}: {'reached' if r['reached'] else 'NOT reached'} "
                    f"at {r['minutes']:6.1f} min "
                    f"({len(r['psi_measured'])} orientations); "
                    f"σ/|θ| % {np.round(100 * np.array(last['sigma']) / np.abs(last['theta']), 3).tolist()} "
                    f"|err|/σ {np.round(last['err_over_sigma'], 1).tolist()} χ²/dof {last['chi2_dof']:.1f}",
                    flush=True,
                )
            ratio = row["uniform"]["minutes"] / row["adaptive"]["minutes"]
            row_ratio = {
                "start": a,
                "seed": seed,
                "ratio": ratio,
                "bound": not (row["uniform"]["reached"] and row["adaptive"]["reached"]),
            }
            results[-1]["ratio"] = row_ratio
    ratios = [r["ratio"]["ratio"] for r in results if "ratio" in r]
    bounds = [r["ratio"]["bound"] for r in results if "ratio" in r]
    ad = [r for r in results if r["kind"] == "adaptive"]
    eos = np.concatenate([r["history"][-1]["err_over_sigma"] for r in ad])
    upd = np.concatenate([r["update_s"] for r in results])

    def fmin(r):
        return r["forecast_minutes"] if r["forecast_minutes"] is not None else args.budget * args.minutes

    uni = [r for r in results if r["kind"] == "uniform"]
    f_ratio = [fmin(u) / fmin(d) for u, d in zip(uni, ad)]
    print(
        "Fisher forecast σ (advise's prediction along each measured sequence): target reached in "
        f"{sum(r['forecast_minutes'] is not None for r in ad)}/{len(ad)} "
        f"adaptive and {sum(r['forecast_minutes'] is not None for r in uni)}/{len(uni)} uniform repeats; "
        "forecast beamtime ratio median "
        f"{np.median(f_ratio):.2f} (per repeat {np.round(f_ratio, 2).tolist()})"
    )
    print(
        f"pipeline σ reached the target in {sum(r['reached'] for r in ad)}/{len(ad)} adaptive and "
        f"{sum(r['reached'] for r in uni)}/{len(uni)} uniform repeats; "
        f"median χ²/dof of the last refit {np.median([r['history'][-1]['chi2_dof'] for r in results]):.1f}"
    )
    print(f"adaptive orientations chosen (first repeat): {ad[0]['psi_measured']}")
    print(
        f"ratios per repeat: {np.round(ratios, 2).tolist()} ({sum(bounds)} of them bounds: a strategy did "
        "not reach the target)"
    )
    print(f"total {time.perf_counter() - t_all:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, default=float, indent=1))
    if args.figure:
        plot(results, names[:FC03], args, Path(args.figure))
        print(f"wrote {args.figure}")
    print(
        f"RESULT beamtime_ratio={np.median(ratios):.2f} adaptive_err_over_sigma={np.median(eos):.2f} "
        f"update_s={np.median(upd):.2f}"
    )


def plot(results, names, args, path: Path) -> None:
    from fcinv.plotting import _plt, save_figure

    plt = _plt()
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.2), dpi=120)
    colors = {"uniform": "tab:blue", "adaptive": "tab:red"}
    for r in results:
        h = r["history"]
        m = [x["minutes"] for x in h]
        for i, ax in enumerate(axes):
            rel = [100 * x["sigma"][i] / abs(x["theta"][i]) for x in h]
            ax.plot(
                m,
                rel,
                color=colors[r["kind"]],
                lw=0.7,
                alpha=0.6,
                label=r["kind"] if r is results[0] or r is results[1] else None,
            )
    for i, ax in enumerate(axes):
        ax.axhline(100 * args.target_rel, color="k", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("beam time (min)")
        ax.set_title(f"FC{i} {names[i]}", fontsize=9)
    axes[0].set_ylabel("refined σ / |θ| (%)")
    axes[0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, title="steering: σ on FC0–FC3 against beam time (DFT Ge truth)")


if __name__ == "__main__":
    main()
