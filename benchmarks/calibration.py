"""Calibration of the inferred σ on held-out simulated Ge experiments (issue 11, item 1).

Truths (none drawn from the training sampler, which draws the sampled parameters uniformly
in the training domain on the reference member's background):

- ``dft``: the DFT Ge set (../shared/data/ge_dft_pathsqe, the whole FORCE_CONSTANTS file,
  beyond-cutoff pairs included) with every one of its in-cutoff parameters (the model's space:
  16 of 5 shells, 47 of 11) moved by N(0, 10 %) of its own value;
- ``member``: an ensemble member's own set in the model's space (every parameter its own
  projection), moved by N(0, 5 %); the stable members are cycled through.

Each truth is rejected and redrawn until it is dynamically stable (Euphonic, 8³ mesh + path).
For each truth one ARCS-like run is simulated with Euphonic (fcinv.experiment.simulate:
eigenvectors, Debye–Waller, Bose, resolution, flat background, Poisson counts) at a random
temperature (5–300 K), counting time (0.3–6 min per orientation), background and orientation
set, and folded with fcinv's fold (one-phonon corrections at the run's temperature). Three
experiments come from every run: all its orientations folded together, its first orientation
alone and its last orientation alone. To fit the budget of the 2-core machine the runs have 2, 4 or 8
orientations (not the 120 of a full run): the orientation count per experiment is cut,
not the number of experiments.

Splits are by truth (a truth's three experiments stay in one split): truths t with
⌊t/2⌋ % 6 = 0 (one DFT and one member truth in every 12) form the calibration split, the
others the test split. The calibration (:mod:`fcinv.calibration`) is fitted on the
calibration split only and measured on the test split; ``--write`` stores it beside the
model as ``calibration.json``, with the OOD reference statistics of the calibration split.
Also printed: coverage per family of experiment, and the transfer of a calibration fitted on
one family of truths only to the other family (where the conformal guarantee does not hold).

Peer in the same run: the uncalibrated σ (the latent-sample spread for ML, the Laplace σ of
the fit for the refinement), whose coverage is printed beside the calibrated one.

Phases: ``--collect`` (expensive, resumable: one JSON line per experiment in
``<out>/records-w<i>.jsonl``; ``--worker i --n-workers n`` splits the plan between processes)
and ``--evaluate`` (cheap: fit, measure, figure). Without either flag both run.

Last line: ``RESULT cov68_ml=<f> cov95_ml=<f> cov68_refined=<f> cov95_refined=<f> n_experiments=<n>``
(test split, pooled over FC0–FC7).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ge_dft_pathsqe"
TEMPERATURES = (5.0, 50.0, 100.0, 200.0, 300.0)
N_ORIENT = (2, 4, 8)
STEPS_DEG = (1.0, 2.0, 5.0)
COUNT_MIN = (0.3, 1.5, 6.0)
CAL_EVERY = 6

log = logging.getLogger("calibration-benchmark")


def split_of(t: int) -> str:
    """The split of truth ``t``: ``"calibration"`` or ``"test"``."""
    return "calibration" if (t // 2) % CAL_EVERY == 0 else "test"  # pairs (DFT, member): both families


class TruthMaker:
    """Builds the held-out truths: perturbed DFT Ge and perturbed ensemble members."""

    def __init__(self, ref, names: list[str], dft_dir: Path):
        from phonopy.file_IO import parse_FORCE_CONSTANTS
        from phonopy.interface.calculator import read_crystal_structure

        from fcinv.demo import truth_theta

        self.ref, self.names = ref, names
        self.idx = ref.space.index(names)
        self.smat = np.diag([4, 4, 4])
        self.unit, _ = read_crystal_structure(str(dft_dir / "POSCAR"), interface_mode="vasp")
        self.fc_dft = parse_FORCE_CONSTANTS(str(dft_dir / "FORCE_CONSTANTS"))
        self.theta_dft = ref.space.project_phonopy(self.fc_dft, self.unit, self.smat).theta
        self.fm_all = ref.forward_model(free=list(ref.space.names))  # the model's space exactly (zero tail)
        members = [m["name"] for m in ref.ensemble.get("members", []) if m.get("projection")]
        self.member_theta = {m: truth_theta(ref, m) for m in members}
        self.members = [m for m in members if bool(self.fm_all.is_stable(self.member_theta[m][None])[0])]
        log.info("stable members used as truths: %s (of %s)", self.members, members)
        c = ref.crystal
        self.c = c
        self.fc_dft, self.unit = self._reorder(self.fc_dft, self.unit, np.asarray(c.positions))
        from phonopy import Phonopy

        self.p2s = np.asarray(
            Phonopy(self.unit, self.smat, primitive_matrix="P").primitive.p2s_map
        )  # compact layout: 3x faster to convert

    def _reorder(self, fc_compact, unit, positions):
        """The DFT set as a full FC array on the same cell translated so its atoms sit at ``positions``.

        A rigid translation leaves the force constants unchanged; it only renumbers the supercell
        atoms (pairs across the sublattices land on other images), so the space's in-cutoff
        perturbation, built in the embedded crystal's supercell order, can be added in place.
        """
        from phonopy import Phonopy
        from phonopy.harmonic.force_constants import compact_fc_to_full_fc
        from phonopy.structure.atoms import PhonopyAtoms

        shift = unit.scaled_positions[0] - positions[0]
        new_pos = (unit.scaled_positions - shift) % 1.0
        if not np.allclose(new_pos, positions, atol=1e-6):
            raise SystemExit(
                f"the DFT POSCAR's atoms {unit.scaled_positions.tolist()} are not a translate of the "
                "crystal's"
            )
        old = Phonopy(unit, self.smat, primitive_matrix="P")
        full = (
            compact_fc_to_full_fc(old.primitive, fc_compact)
            if fc_compact.shape[0] != fc_compact.shape[1]
            else fc_compact
        )
        new_unit = PhonopyAtoms(
            cell=unit.cell, scaled_positions=new_pos, numbers=unit.numbers, masses=unit.masses
        )
        new = Phonopy(new_unit, self.smat, primitive_matrix="P")
        a = (old.supercell.scaled_positions - shift / 4.0) % 1.0
        b = new.supercell.scaled_positions % 1.0
        d = a[:, None, :] - b[None, :, :]
        d -= np.round(d)
        perm = np.argmin(np.linalg.norm(d, axis=2), axis=1)
        if len(set(perm.tolist())) != len(perm) or np.abs(d[np.arange(len(perm)), perm]).max() > 1e-6:
            raise SystemExit("could not match the DFT supercell atoms to the translated cell's")
        out = np.empty_like(full)
        out[np.ix_(perm, perm)] = full
        return out, new_unit

    def make(self, t: int, rng: np.random.Generator):
        """Truth ``t``: (label, euphonic FC, experiment crystal, θ of the model's names, lowest mode meV)."""
        from fcinv.experiment.simulate import force_constants_from_array

        for attempt in range(20):
            if t % 2 == 0:
                delta = self.theta_dft * rng.normal(0.0, 0.10, self.theta_dft.shape)
                fc = self.fc_dft + self.ref.space.to_phonopy(delta, self.smat)
                unit = (self.unit.cell, self.unit.scaled_positions, self.unit.numbers, None)
                label = "dft-perturbed"
            else:
                m = self.members[(t // 2) % len(self.members)]
                th = self.member_theta[m]
                th = th + th * rng.normal(0.0, 0.05, th.shape)
                if not bool(self.fm_all.is_stable(th[None])[0]):
                    continue
                fc = self.ref.space.to_phonopy(th, self.smat)
                c = self.c
                unit = (c.lattice, c.positions, c.numbers, c.masses)
                label = f"member-perturbed:{m}"
            masses = unit[3] if unit[3] is not None else np.full(len(unit[2]), self.c.masses[0])
            efc, ecr = force_constants_from_array(
                fc[self.p2s], unit[0], unit[1], unit[2], self.smat, masses=masses
            )
            low = lowest_mode_meV(efc)
            if low > -0.05:
                from phonopy.structure.atoms import PhonopyAtoms

                cell = PhonopyAtoms(cell=unit[0], scaled_positions=unit[1], numbers=unit[2], masses=masses)
                theta = self.ref.space.project_phonopy(fc, cell, self.smat).theta[self.idx]
                if t % 2 == 0:  # the in-place perturbation must project back onto θ_DFT + δ
                    want = (self.theta_dft + delta)[self.idx]
                    if not np.allclose(theta, want, atol=1e-6):
                        raise RuntimeError(f"perturbed DFT set projects to {theta}, expected {want}")
                return label, efc, ecr, theta, low, attempt
        raise RuntimeError(f"no stable truth for t={t} in 20 draws")


def lowest_mode_meV(efc, n: int = 8) -> float:
    """Lowest mode (meV, negative = imaginary) of a Euphonic FC set on an n³ Γ-centred mesh."""
    grid = np.stack(np.meshgrid(*[np.arange(n) / n] * 3, indexing="ij"), -1).reshape(-1, 3)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        modes = efc.calculate_qpoint_frequencies(grid, asr="reciprocal")
    f = modes.frequencies.to("meV").magnitude
    return float(f[1:].min())  # Γ (row 0) carries the three zero acoustic modes


def plan(n_truths: int) -> list[dict]:
    """The deterministic experiment plan: one dict per truth (settings of its run)."""
    out = []
    for t in range(n_truths):
        rng = np.random.default_rng(20260 + t)
        out.append(
            {
                "t": t,
                "split": split_of(t),
                "temperature": float(rng.choice(TEMPERATURES)),
                "n_orient": int(rng.choice(N_ORIENT)),
                "step_deg": float(rng.choice(STEPS_DEG)),
                "psi0_deg": float(rng.uniform(0.0, 90.0)),
                "counting_time": float(rng.choice(COUNT_MIN)),
                "background": float(rng.uniform(0.05, 0.3)),
                "seed": 7000 + t,
            }
        )
    return out


def _done(out: Path) -> set[int]:
    done = set()
    for f in out.glob("records-w*.jsonl"):
        for line in f.read_text().splitlines():
            try:
                done.add(int(json.loads(line)["t"]))  # a line is written whole; a cut last line is redone
            except (ValueError, KeyError):
                continue
    return done


def _record(pred, fs, truth, names) -> dict:
    x = np.asarray(pred.spectrum, float)
    fin = np.isfinite(x)
    recon = (
        float(np.mean((np.asarray(pred.reconstruction, float)[fin] - x[fin]) ** 2))
        if fin.any()
        else float("nan")
    )
    return {
        "ml_theta": np.asarray(pred.theta).tolist(),
        "ml_sigma": np.asarray(pred.sigma).tolist(),
        "recon_mse": recon,
        "mu": np.asarray(pred.mu, float).tolist(),
        "logvar": np.asarray(pred.logvar, float).tolist(),
        "coverage": float(fs.coverage),
    }


def _fast_undetermined():
    """Make the fit's SVD of its weighted Jacobian economical (same result, seconds instead of ~25 s).

    ``fitting.priors.undetermined_directions`` takes a full-matrices SVD of the (n_pixels × k)
    Jacobian, which builds an n_pixels² U it never uses. With J = QR, J·D and R·D have the same
    singular values and right singular vectors for any column scaling D, so passing R (k × k)
    changes nothing but the time. The fix belongs in fitting/priors.py (reported to the lead).
    """
    import fcinv.fitting.spectrum_fit as sf

    orig = sf.undetermined_directions
    if getattr(orig, "_qr_reduced", False):
        return

    def reduced(jac_data, names, prior):
        J = np.asarray(jac_data, float)
        if J.ndim == 2 and J.shape[0] > J.shape[1]:
            J = np.linalg.qr(J, mode="r")
        return orig(J, names, prior)

    reduced._qr_reduced = True  # type: ignore[attr-defined]
    sf.undetermined_directions = reduced


def collect(args) -> None:
    """Simulate, fold, infer and refine every planned truth this worker owns (resumable)."""
    _fast_undetermined()
    from fcinv.inference import load_model
    from fcinv.material import load_material
    from fcinv.pipeline.core import model_reference

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    predictor = load_model(args.model)
    names = list(predictor.names)
    # the model's own parameter space (5 shells for the 16-parameter model, 11 for the 47-parameter one)
    ref = model_reference(load_material(predictor.grid.material or "Ge"), names)
    fm = ref.forward_model(free=names, grid=predictor.grid)
    maker = TruthMaker(ref, names, Path(args.dft))
    done = _done(out)
    todo = [p for p in plan(args.n_truths) if p["t"] % args.n_workers == args.worker and p["t"] not in done]
    log.info("worker %d: %d truths to do (%d done)", args.worker, len(todo), len(done))
    path = out / f"records-w{args.worker}.jsonl"
    for p in todo:
        try:
            rec = _one(p, maker, predictor, fm, ref, names, args)
        except Exception as exc:  # noqa: BLE001 - a failed truth is recorded, the benchmark goes on
            log.exception("truth %d failed", p["t"])
            rec = dict(p, failed=f"{type(exc).__name__}: {exc}"[:300], experiments={})
        with open(path, "a") as f:
            f.write(json.dumps(rec, allow_nan=True) + "\n")


def _one(p, maker, predictor, fm, ref, names, args) -> dict:
    """Simulate, fold, infer and refine one planned truth; its record."""
    from fcinv.experiment.fold import Corrections, FoldPlan
    from fcinv.experiment.instrument import Goniometer
    from fcinv.experiment.simulate import ExperimentConfig, simulate_experiment
    from fcinv.fitting import refine
    from fcinv.workflow import _fold

    t0 = time.perf_counter()
    rng = np.random.default_rng(90000 + p["t"])
    label, efc, ecr, theta, low, attempts = maker.make(p["t"], rng)
    gon = Goniometer.steps(p["psi0_deg"], p["step_deg"], p["n_orient"])
    cfg = ExperimentConfig(
        temperature=p["temperature"],
        counting_time=p["counting_time"],
        background=p["background"],
        seed=p["seed"],
    )
    run = simulate_experiment(efc, ecr, goniometer=gon, config=cfg, region=predictor.grid)
    t_sim = time.perf_counter() - t0
    corr = Corrections(bose_temperature=p["temperature"], q2=True, energy=True)
    fplan = FoldPlan.build(
        run.edges[:3], predictor.grid, ref.crystal.point_group_rlu, centering="F", q_tolerance=0.05
    )
    exps = {
        "all": _fold(run.total(), predictor.grid, ref.crystal, 0.05, corr),
        "single": fplan.apply(run.orientation(0), corrections=corr),
        "single_last": fplan.apply(run.orientation(-1), corrections=corr),
    }
    rec = dict(
        p,
        truth=label,
        truth_theta=theta.tolist(),
        truth_lowest_meV=low,
        truth_attempts=attempts,
        names=names,
        model=str(args.model),
        t_sim_s=t_sim,
        experiments={},
    )
    for key, fs in exps.items():
        img = np.where(fs.mask, fs.intensity, np.nan)
        te = time.perf_counter()
        pred = predictor.predict(img, k_samples=100, seed=p["seed"])
        e = _record(pred, fs, theta, names)
        e["n_orient"] = p["n_orient"] if key == "all" else 1
        e["psi_deg"] = [
            float(v) for v in (run.psi if key == "all" else run.psi[[0 if key == "single" else -1]])
        ]
        tr = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            r = refine(fm, fs, pred)
        e.update(
            {
                "refined_theta": np.asarray(r.theta).tolist(),
                "refined_sigma": [float(v) for v in r.sigma],
                "refined_success": bool(r.success),
                "refined_message": r.message[:300],
                "chi2_dof": r.chi2_dof,
                "t_ml_s": tr - te,
                "t_refine_s": time.perf_counter() - tr,
            }
        )
        rec["experiments"][key] = e
    rec["wall_s"] = time.perf_counter() - t0
    log.info(
        "t=%d %s T=%g n_o=%d: %.1f s (sim %.1f)",
        p["t"],
        label,
        p["temperature"],
        p["n_orient"],
        rec["wall_s"],
        t_sim,
    )
    return rec


def load_records(out: Path) -> list[dict]:
    """Every experiment of every collected truth, flattened (one dict per experiment)."""
    rows = []
    for f in sorted(out.glob("records-w*.jsonl")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            for key, e in rec["experiments"].items():
                rows.append(
                    dict(
                        e,
                        kind=key,
                        t=rec["t"],
                        split=split_of(int(rec["t"])),
                        truth=rec["truth"],
                        truth_theta=rec["truth_theta"],
                        temperature=rec["temperature"],
                        counting_time=rec["counting_time"],
                        names=rec["names"],
                    )
                )
    return rows


LEVELS = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.6827, 0.8, 0.9, 0.95, 0.99])


def _arrays(rows: list[dict]) -> dict[str, np.ndarray]:
    get = lambda key: np.array([r[key] for r in rows], float)  # noqa: E731
    ok = np.array([bool(r["refined_success"]) for r in rows])
    ml, ref = get("ml_theta"), get("refined_theta")
    return {
        "truth": get("truth_theta"),
        "ml": ml,
        "ml_s": get("ml_sigma"),
        "ok": ok,
        "rf": np.where(ok[:, None], ref, ml),
        "rf_s": get("refined_sigma"),
    }


def _intervals(cal, a: dict[str, np.ndarray], level_q: tuple | None = None):
    """Calibrated half-widths (68, 95) of the ML and the refined answers of rows ``a``."""
    ml68, ml95 = cal.ml.apply(a["ml_s"])
    if cal.refined is not None:
        r68, r95 = cal.refined.apply(np.where(a["ok"][:, None], a["rf_s"], 0.0))
        r68 = np.where(a["ok"][:, None], r68, ml68)
        r95 = np.where(a["ok"][:, None], r95, ml95)
    else:
        r68, r95 = ml68, ml95
    return ml68, ml95, r68, r95


def reliability(
    cal_part, a_cal: dict, a_test: dict, est: str, sig: str, ok_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Test coverage of the calibrated interval at each level in :data:`LEVELS`, and of the raw ±z σ."""
    from scipy.stats import norm

    from fcinv.calibration import conformal_quantile

    sel = a_cal["ok"] if ok_only else np.ones(len(a_cal["ok"]), bool)
    base_c = cal_part.base(a_cal[sig][sel])
    score = np.abs(a_cal[est][sel] - a_cal["truth"][sel]) / base_c
    base_t = cal_part.base(a_test[sig])
    err_t = np.abs(a_test[est] - a_test["truth"])
    tsel = a_test["ok"] if ok_only else np.ones(len(a_test["ok"]), bool)
    cal_cov, raw_cov = [], []
    for p in LEVELS:
        q = np.array([conformal_quantile(score[:, j], p) for j in range(score.shape[1])])
        inside = err_t[tsel] <= q * base_t[tsel]
        inside_raw = err_t[tsel] <= norm.ppf(0.5 + p / 2) * a_test[sig][tsel]
        cal_cov.append(float(np.mean(inside[:, :8])))  # FC0-FC7, as the RESULT line
        raw_cov.append(float(np.mean(inside_raw[:, :8])))
    return np.array(cal_cov), np.array(raw_cov)


def evaluate(args, rows: list[dict]) -> None:
    """Fit the calibration on the calibration split; measure it on the test split; figure; RESULT line."""
    from fcinv.calibration import (
        RAW_SIGMA_MEANING,
        SIGMA_MEANING,
        ModelCalibration,
        OODReference,
        ScaleCalibration,
        coverage,
        model_fingerprint,
    )
    from fcinv.inference import load_model

    rows = [r for r in rows if "ml_theta" in r]
    if not rows:
        raise SystemExit(f"no records in {args.out}; run --collect first")
    names = rows[0]["names"]
    cal_rows = [r for r in rows if r["split"] == "calibration"]
    test_rows = [r for r in rows if r["split"] == "test"]
    ac, at = _arrays(cal_rows), _arrays(test_rows)
    ml = ScaleCalibration.fit(names, ac["ml"], ac["ml_s"], ac["truth"], estimator="ml")
    ok = ac["ok"]
    refined = (
        ScaleCalibration.fit(names, ac["rf"][ok], ac["rf_s"][ok], ac["truth"][ok], estimator="refined")
        if ok.sum() >= 20
        else None
    )
    predictor = load_model(args.model)
    ood = OODReference.fit(
        np.array([r["recon_mse"] for r in cal_rows]),
        np.array([r["mu"] for r in cal_rows]),
        source=f"calibration split of benchmarks/calibration.py ({len(cal_rows)} simulated Ge experiments)",
    )
    n_truth_cal = len({r["t"] for r in cal_rows})
    cal = ModelCalibration(
        tuple(names),
        ml,
        refined,
        model_fingerprint(predictor),
        ood,
        provenance={
            "benchmark": "benchmarks/calibration.py",
            "model": str(args.model),
            "n_calibration_experiments": len(cal_rows),
            "n_calibration_truths": n_truth_cal,
            "n_refined_accepted": int(ok.sum()),
            "truths": "DFT Ge (whole file) with its 16 in-cutoff parameters moved by N(0, 10%); "
            "stable ensemble members' 5-shell sets moved by N(0, 5%)",
            "experiments": "Euphonic-simulated ARCS-like runs, 5-300 K, 0.3-6 min per orientation, "
            "2/4/8 orientations folded together, "
            "and single orientations; folded with fcinv fold (one-phonon corrections at the run temperature)",
        },
    )
    ml68, ml95, r68, r95 = _intervals(cal, at)
    tr = at["truth"]
    pool = slice(
        0, min(8, len(names))
    )  # the RESULT pools FC0-FC7 (issue 11); all parameters are in the table

    def cov_of(est, half):
        return coverage(est[:, pool], tr[:, pool], half[:, pool])

    rf_raw = np.where(at["ok"][:, None], at["rf_s"], at["ml_s"])
    res = {
        "cov68_ml": cov_of(at["ml"], ml68),
        "cov95_ml": cov_of(at["ml"], ml95),
        "cov68_refined": cov_of(at["rf"], r68),
        "cov95_refined": cov_of(at["rf"], r95),
        "raw_cov68_ml": cov_of(at["ml"], at["ml_s"]),
        "raw_cov95_ml": cov_of(at["ml"], 1.96 * at["ml_s"]),
        "raw_cov68_refined": cov_of(at["rf"], rf_raw),
        "raw_cov95_refined": cov_of(at["rf"], 1.96 * rf_raw),
    }
    if len(names) > 8:
        res.update(
            {
                "cov68_ml_all": coverage(at["ml"], tr, ml68),
                "cov95_ml_all": coverage(at["ml"], tr, ml95),
                "cov68_refined_all": coverage(at["rf"], tr, r68),
                "cov95_refined_all": coverage(at["rf"], tr, r95),
            }
        )
        print(
            f"all {len(names)} parameters pooled: ML {res['cov68_ml_all']:.3f}/{res['cov95_ml_all']:.3f}, "
            f"refined {res['cov68_refined_all']:.3f}/{res['cov95_refined_all']:.3f}"
        )
    n_t = len({r["t"] for r in test_rows})
    print(
        f"model: {args.model} ({predictor.source}); {len(cal_rows)} calibration experiments ({n_truth_cal} "
        "truths), "
        f"{len(test_rows)} test experiments ({n_t} truths); refinements accepted: calibration "
        f"{int(ok.sum())}/{len(ok)}, test {int(at['ok'].sum())}/{len(at['ok'])}"
    )
    print(f"sigma now means: {SIGMA_MEANING}")
    print(f"raw sigma (peer): ML {RAW_SIGMA_MEANING['ml']}; refined {RAW_SIGMA_MEANING['refined']}")
    print(
        f"{'':4} {'name':<8} {'a_ml':>8} {'tau_ml':>8} {'q68':>6} {'q95':>6} {'cov68':>6} {'cov95':>6} "
        f"{'raw68':>6} | "
        f"{'a_rf':>8} {'tau_rf':>8} {'cov68':>6} {'cov95':>6} {'raw68':>6} {'med|err| ml':>12} {'rf':>8} "
        f"{'med sigma ml':>12} {'rf':>8}"
    )
    per = {}
    for j, n in enumerate(names):
        c68, c95 = (
            coverage(at["ml"][:, j], tr[:, j], ml68[:, j]),
            coverage(at["ml"][:, j], tr[:, j], ml95[:, j]),
        )
        d68, d95 = (
            coverage(at["rf"][:, j], tr[:, j], r68[:, j]),
            coverage(at["rf"][:, j], tr[:, j], r95[:, j]),
        )
        raw = coverage(at["ml"][:, j], tr[:, j], at["ml_s"][:, j])
        rraw = coverage(at["rf"][:, j], tr[:, j], np.where(at["ok"], at["rf_s"][:, j], at["ml_s"][:, j]))
        ra = refined.a[j] if refined is not None else math.nan
        rt = refined.tau[j] if refined is not None else math.nan
        me, mr = (
            float(np.median(np.abs(at["ml"][:, j] - tr[:, j]))),
            float(np.median(np.abs(at["rf"][:, j] - tr[:, j]))),
        )
        print(
            f"FC{j:<2} {n:<8} {ml.a[j]:>8.3f} {ml.tau[j]:>8.4f} {ml.q68[j]:>6.2f} {ml.q95[j]:>6.2f} "
            f"{c68:>6.3f} {c95:>6.3f} {raw:>6.3f} | "
            f"{ra:>8.3f} {rt:>8.4f} {d68:>6.3f} {d95:>6.3f} {rraw:>6.3f} {me:>12.4f} {mr:>8.4f} "
            f"{np.median(ml68[:, j]):>12.4f} {np.median(r68[:, j]):>8.4f}"
        )
        per[n] = {
            "cov68_ml": c68,
            "cov95_ml": c95,
            "cov68_refined": d68,
            "cov95_refined": d95,
            "raw_cov68_ml": raw,
            "raw_cov68_refined": rraw,
            "median_abs_err_ml": me,
            "median_abs_err_refined": mr,
            "median_sigma_ml": float(np.median(ml68[:, j])),
            "median_sigma_refined": float(np.median(r68[:, j])),
        }
    # coverage by family of experiment (the guarantee is marginal; these show where it holds)
    groups = {}
    for key, fn in (
        ("truth", lambda r: r["truth"].split(":")[0]),
        ("kind", lambda r: r["kind"]),
        ("temperature", lambda r: f"{r['temperature']:g} K"),
        ("counting_time", lambda r: f"{r['counting_time']:g} min"),
    ):
        labels = sorted({fn(r) for r in test_rows})
        for lab in labels:
            sel = np.array([fn(r) == lab for r in test_rows])
            g = {
                k: coverage(v[sel][:, pool], tr[sel][:, pool], h[sel][:, pool])
                for k, v, h in (
                    ("cov68_ml", at["ml"], ml68),
                    ("cov95_ml", at["ml"], ml95),
                    ("cov68_refined", at["rf"], r68),
                    ("cov95_refined", at["rf"], r95),
                )
            }
            groups[f"{key}={lab}"] = dict(g, n=int(sel.sum()))
            print(
                f"  {key}={lab:<16} n={int(sel.sum()):>4}  ML {g['cov68_ml']:.3f}/{g['cov95_ml']:.3f}  "
                f"refined {g['cov68_refined']:.3f}/{g['cov95_refined']:.3f}"
            )
    # transfer: calibrated on one family of truths only, measured on the other's test experiments
    fam = lambda r: r["truth"].split(":")[0]  # noqa: E731
    transfer = {}
    for src, dst in (("dft-perturbed", "member-perturbed"), ("member-perturbed", "dft-perturbed")):
        cs = [r for r in cal_rows if fam(r) == src]
        ts = [r for r in test_rows if fam(r) == dst]
        if len(cs) < 20 or not ts:
            continue
        a_s, a_d = _arrays(cs), _arrays(ts)
        c = ScaleCalibration.fit(names, a_s["ml"], a_s["ml_s"], a_s["truth"], estimator="ml")
        h68, h95 = c.apply(a_d["ml_s"])
        transfer[f"{src}->{dst}"] = {
            "cov68_ml": coverage(a_d["ml"][:, pool], a_d["truth"][:, pool], h68[:, pool]),
            "cov95_ml": coverage(a_d["ml"][:, pool], a_d["truth"][:, pool], h95[:, pool]),
            "n_cal": len(cs),
            "n_test": len(ts),
        }
        t = transfer[f"{src}->{dst}"]
        print(
            f"  transfer: ML calibrated on {src} only ({len(cs)}), tested on {dst} ({len(ts)}): "
            f"{t['cov68_ml']:.3f}/{t['cov95_ml']:.3f}"
        )
    # OOD reference check: share of test inputs above the 99th percentile (about 1% if the reference is right)
    sc = [ood.score(r["recon_mse"], np.array(r["mu"])) for r in test_rows]
    above = {k: float(np.mean([s[k] > 99.0 for s in sc])) for k in ("recon_percentile", "latent_percentile")}
    print(
        "OOD reference: test inputs above its 99th percentile: reconstruction "
        f"{100 * above['recon_percentile']:.1f}%, latent {100 * above['latent_percentile']:.1f}%"
    )
    rel = {"levels": LEVELS.tolist()}
    rel["ml_calibrated"], rel["ml_raw"] = (x.tolist() for x in reliability(ml, ac, at, "ml", "ml_s"))
    if refined is not None:
        rel["refined_calibrated"], rel["refined_raw"] = (
            x.tolist() for x in reliability(refined, ac, at, "rf", "rf_s", ok_only=True)
        )
    _figure(
        Path(args.figure), rel, res, len(test_rows), f"{Path(str(args.model)).name} ({len(names)} parameters)"
    )
    summary = {
        "model": str(args.model),
        "n_calibration": len(cal_rows),
        "n_test": len(test_rows),
        "result": res,
        "per_parameter": per,
        "groups": groups,
        "transfer": transfer,
        "reliability": rel,
        "ood_above_p99": above,
        "calibration": cal.to_dict(),
    }
    out = Path(args.out)
    from fcinv._json import write_json

    write_json(out / "summary.json", summary)
    if args.write:
        dest = Path(predictor.source).parent if args.write == "model" else Path(args.write)
        print(f"calibration written to {cal.write(dest)}")
    print(
        f"RESULT cov68_ml={res['cov68_ml']:.3f} cov95_ml={res['cov95_ml']:.3f} "
        f"cov68_refined={res['cov68_refined']:.3f} "
        f"cov95_refined={res['cov95_refined']:.3f} n_experiments={len(test_rows)}"
    )


def _figure(path: Path, rel: dict, res: dict, n: int, model: str) -> None:
    from fcinv.plotting import _plt, save_figure

    plt = _plt()
    fig, ax = plt.subplots(1, 1, figsize=(4.6, 4.2), dpi=130)
    lv = np.asarray(rel["levels"])
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="ideal")
    ax.fill_between([0, 1], [-0.05, 0.95], [0.05, 1.05], color="0.9", lw=0)
    for key, lab, st in (
        ("ml_calibrated", "ML, calibrated", "o-"),
        ("ml_raw", "ML, raw latent spread", "o:"),
        ("refined_calibrated", "refined, calibrated", "s-"),
        ("refined_raw", "refined, raw Laplace σ", "s:"),
    ):
        if key in rel:
            ax.plot(
                lv,
                rel[key],
                st,
                ms=3.5,
                lw=1.1,
                label=lab,
                color="tab:blue" if key.startswith("ml") else "tab:orange",
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("nominal coverage of the interval")
    ax.set_ylabel("empirical coverage, test split (FC0–FC7 pooled)")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{n} held-out simulated Ge experiments, model {model}", fontsize=8)
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ge", help="shipped model name or model directory (default ge)")
    ap.add_argument("--dft", default=str(SHARED), help="folder with the DFT Ge POSCAR + FORCE_CONSTANTS")
    ap.add_argument(
        "--n-truths", type=int, default=126, help="truths (3 experiments each; 1 in 6 calibrates)"
    )
    ap.add_argument("--out", default="out/calibration")
    ap.add_argument("--collect", action="store_true", help="only simulate/infer/refine (resumable)")
    ap.add_argument("--evaluate", action="store_true", help="only fit the calibration and measure coverage")
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--n-workers", type=int, default=1)
    ap.add_argument("--write", default=None, help="write calibration.json here ('model' = beside the model)")
    ap.add_argument("--figure", default="docs/figures/calibration_reliability.png")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    both = not (args.collect or args.evaluate)
    if args.collect or both:
        if not (Path(args.dft) / "FORCE_CONSTANTS").is_file():
            raise SystemExit(f"the DFT Ge set is not at {args.dft}; pass --dft")
        collect(args)
    if args.evaluate or both:
        evaluate(args, load_records(Path(args.out)))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
