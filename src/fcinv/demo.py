"""Stage III end to end on the embedded Ge default, as a beamline user would run it.

1. a "truth" force-constant set that is *not* the training reference. By default
   (``truth_mode="sampled"``) it is the reference member's full FC set with the 8
   sampled parameters moved to the values of the ``chgnet-0.2.0`` member (another model
   family than the reference ``7net-0``): a truth the forward model can represent, so
   the test isolates the experiment's physics (structure factors, Debye–Waller, Bose,
   resolution, counting noise, coverage, folding). ``truth_mode="member"`` takes that
   member's own 5-shell FC set instead, which also changes the 8 parameters the model
   holds fixed: the gap between the two shows the cost of the fixed parameters;
2. a simulated ARCS-like experiment from it (Euphonic S(Q, E) with eigenvectors,
   Debye–Waller and Bose factors at 5 K, Ei = 40 meV, 120 orientations in 1° steps,
   energy resolution, flat background, Poisson counts);
3. Brillouin-zone folding of the whole run onto the model's q-path;
4. inference with the shipped VAE + regressor (θ ± σ from 100 latent samples), and
   a least-squares refinement started from the ML answer;
5. the same for single orientations (the paper's one-minute scans).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcinv._json import write_json

log = logging.getLogger(__name__)

DEFAULT_TRUTH = "chgnet-0.2.0"


@dataclass
class DemoResult:
    """What the demo measured."""

    names: list[str]
    truth: np.ndarray
    ml: np.ndarray
    ml_sigma: np.ndarray
    refined: np.ndarray | None
    refined_sigma: np.ndarray | None
    disp_rms_meV: float
    per_orientation: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    truth_label: str = ""

    def rel_err(self, which: str = "ml") -> np.ndarray:
        est = self.ml if which == "ml" else self.refined
        return np.abs(est - self.truth) / np.abs(self.truth)

    def as_dict(self) -> dict:
        d = {
            "names": self.names,
            "truth": self.truth.tolist(),
            "truth_label": self.truth_label,
            "ml": self.ml.tolist(),
            "ml_sigma": self.ml_sigma.tolist(),
            "ml_rel_err": self.rel_err("ml").tolist(),
            "disp_rms_meV": self.disp_rms_meV,
            "per_orientation": self.per_orientation,
            "timings_s": self.timings,
            "files": self.files,
        }
        if self.refined is not None:
            d.update({"refined": self.refined.tolist(), "refined_sigma": self.refined_sigma.tolist(), "refined_rel_err": self.rel_err("refined").tolist()})
        return d


def truth_force_constants(ref, member: str = DEFAULT_TRUTH, mode: str = "sampled", names: list[str] | None = None):
    """The truth as a phonopy FC array on its unit cell, and its sampled parameters.

    Parameters
    ----------
    ref
        The material's :class:`~fcinv.reference.MaterialReference`.
    member
        An ensemble member's name, or ``dft:<folder>`` for a phonopy set (``POSCAR`` +
        ``FORCE_CONSTANTS`` on a 4×4×4 supercell, e.g. the DFT Ge set).
    mode
        ``"sampled"``: the reference FC set with the sampled parameters moved to the
        member's values (representable by the forward model); ``"member"``: the member's
        own FC set (5 shells for ensemble members, the whole file for ``dft:``).
    names
        The parameters whose truth values are returned (default: the sampled ones).

    Returns
    -------
    fc, unitcell, supercell, theta_sampled
        FC array (phonopy compact or full layout), (lattice, positions, numbers, masses),
        the supercell matrix, and the truth's values of ``names``.
    """
    from fcinv.crystal import material_dir
    from fcinv.errors import DataError
    from fcinv.fcspace import read_phonopy
    from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

    names = list(names or ref.sampled)
    idx = ref.space.index(names)
    c = ref.crystal
    if member.startswith("dft:"):
        folder = Path(member[4:])
        pairs = read_phonopy(c, folder / "FORCE_CONSTANTS", folder / "POSCAR", (4, 4, 4))
        member_theta = ref.space.project(pairs).theta
        if mode == "member":
            from phonopy.file_IO import parse_FORCE_CONSTANTS
            from phonopy.interface.calculator import read_crystal_structure

            unit, _ = read_crystal_structure(str(folder / "POSCAR"), interface_mode="vasp")
            masses = np.full(len(unit), c.masses[0]) if len(set(unit.numbers)) == 1 else None
            return parse_FORCE_CONSTANTS(str(folder / "FORCE_CONSTANTS")), (unit.cell, unit.scaled_positions, unit.numbers, masses), np.diag([4, 4, 4]), member_theta[idx]
    else:
        member_theta = truth_theta(ref, member)
        if mode == "member":
            fc = ref.space.to_phonopy(member_theta, (4, 4, 4))
            return fc, (c.lattice, c.positions, c.numbers, c.masses), np.diag([4, 4, 4]), member_theta[idx]
    if mode != "sampled":
        raise DataError(f"truth mode '{mode}' is unknown; use 'sampled' or 'member'.")
    d = read_reference_fc(material_dir(c.name) / REFERENCE_FC_FILE)
    smat = np.asarray(d["supercell_matrix"])
    delta = np.zeros(ref.space.n_params)
    delta[idx] = member_theta[idx] - ref.theta_ref[idx]
    unit = (np.asarray(d["lattice"]), np.asarray(d["positions"]), np.asarray(d["numbers"]), np.asarray(d["masses"]))
    if not (np.allclose(unit[0], c.lattice) and np.allclose(unit[1], c.positions)):
        raise DataError("the reference FC file's unit cell differs from the crystal's; regenerate it with `fcinv reference`.")
    full = ref.space.to_phonopy(delta, smat)
    fc = np.asarray(d["force_constants"]) + full[np.asarray(d["p2s_map"])]
    return fc, unit, smat, member_theta[idx]


def domain_width(ref, names: list[str], theta0: np.ndarray) -> np.ndarray:
    """Width of the training domain per parameter (the default widening of the ensemble bounds)."""
    from fcinv.dataset.generate import widened_domain

    lo, hi = ref.bounds(names)
    dom = widened_domain(names, lo, hi, theta0)
    return dom.high - dom.low


def truth_theta(ref, member: str = DEFAULT_TRUTH) -> np.ndarray:
    """Full θ of an ensemble member (its projection), from the embedded ensemble."""
    from fcinv.errors import DataError

    members = {m["name"]: m for m in ref.ensemble.get("members", []) if m.get("projection")}
    if member not in members:
        raise DataError(f"no ensemble member '{member}' with force constants in the embedded {ref.material} data. Members: {', '.join(members)}.")
    th = members[member]["projection"]["theta"]
    return np.array([th[n] for n in ref.space.names])


def run_demo(
    out: str | Path,
    *,
    model: str = "ge",
    truth: str = DEFAULT_TRUTH,
    truth_mode: str = "sampled",
    orientations: int = 120,
    single_scans: int = 12,
    refine: bool = True,
    corrections=None,
    seed: int = 0,
    progress: bool = True,
) -> DemoResult:
    """Run the demo, writing the run, the folded spectrum, the JSON summary and figures into ``out``."""
    from fcinv.experiment.fold import Corrections
    from fcinv.experiment.folded import write_folded
    from fcinv.experiment.instrument import Goniometer
    from fcinv.experiment.simulate import (
        ExperimentConfig,
        fold_orientations,
        force_constants_from_array,
        simulate_experiment,
    )
    from fcinv.inference import load_model
    from fcinv.reference import load_reference
    from fcinv.workflow import _fold, invert, plot_inversion

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    predictor = load_model(model)
    ref = load_reference(predictor.grid.material or "Ge")
    fm = ref.forward_model(free=list(predictor.names), grid=predictor.grid)
    timings["load"] = time.perf_counter() - t

    # 1. the truth: a full FC set
    crystal = ref.crystal
    fc_arr, unit, smat, truth_sampled = truth_force_constants(ref, truth, truth_mode, list(predictor.names))
    efc, ecrystal = force_constants_from_array(fc_arr, unit[0], unit[1], unit[2], smat, masses=unit[3])

    # 2. simulated experiment (only the Q-bins that folding onto the path can use)
    t = time.perf_counter()
    gonio = Goniometer.steps(0.0, 1.0, orientations)
    run = simulate_experiment(efc, ecrystal, goniometer=gonio, config=ExperimentConfig(seed=seed), region=predictor.grid, progress=progress,
                              provenance={"truth": f"{truth_mode}:{truth}", "truth_theta_sampled": dict(zip(predictor.names, truth_sampled.tolist()))})
    timings["simulate"] = time.perf_counter() - t
    run.write(out / "run.h5")

    # 3. fold the whole run; one-phonon corrections towards the forward model's weight-1 convention
    corr = corrections if corrections is not None else Corrections(bose_temperature=5.0, q2=True, energy=True)
    t = time.perf_counter()
    fs = _fold(run.total(), predictor.grid, crystal, 0.05, corr)
    timings["fold"] = time.perf_counter() - t
    write_folded(out / "folded.h5", fs)

    # 4. inference (+ refinement)
    t = time.perf_counter()
    inv = invert(fs, predictor, fm, k_samples=100, seed=seed, refine=False)
    timings["infer"] = time.perf_counter() - t
    refined = refined_sigma = None
    if refine:
        try:
            from fcinv.fitting import refine as refine_fit
        except ImportError:  # pragma: no cover - fitting is part of the package
            refine_fit = None
        if refine_fit is not None:
            t = time.perf_counter()
            r = refine_fit(fm, fs, inv.prediction)
            timings["refine"] = time.perf_counter() - t
            refined, refined_sigma = np.asarray(r.theta), np.asarray(r.sigma)
            inv.refined = r
    truth_f = fm.frequencies(truth_sampled)[0]
    est_f = fm.frequencies(inv.final_theta)[0]
    disp_rms = float(np.sqrt(np.mean((est_f - truth_f) ** 2)))
    inv.frequencies = est_f
    fig = plot_inversion(out / "inversion.png", fs, inv, title=f"Ge, simulated ARCS run ({orientations} orientations), truth = {truth_mode}:{truth}", truth_frequencies=truth_f)

    # 5. single orientations
    per = {}
    if single_scans:
        t = time.perf_counter()
        which = np.unique(np.linspace(0, orientations - 1, single_scans).round().astype(int))
        scans = fold_orientations(run, predictor.grid, crystal.point_group_rlu, orientations=list(which), corrections=corr)
        preds = np.array([invert(s, predictor, fm, k_samples=100, seed=seed).theta for s in scans])
        timings["single_scans"] = time.perf_counter() - t
        err = np.abs(preds - truth_sampled) / np.abs(truth_sampled)
        per = {
            "psi_deg": [float(run.psi[j]) for j in which],
            "coverage": [s.coverage for s in scans],
            "theta": preds.tolist(),
            "median_rel_err_fc0_3": float(np.median(err[:, :4])),
            "worst_rel_err_fc0_3": float(err[:, :4].max()),
        }
        plot_single_scans(out / "single_scans.png", per, list(predictor.names), truth_sampled, inv.theta, domain_width(ref, list(predictor.names), fm.theta0))
    res = DemoResult(list(predictor.names), truth_sampled, inv.theta, inv.sigma, refined, refined_sigma, disp_rms, per, timings,
                     {"run": str(out / "run.h5"), "folded": str(out / "folded.h5"), "figure": str(fig)}, truth_label=f"{truth_mode}:{truth}")
    write_json(out / "demo.json", res.as_dict())
    return res


def plot_single_scans(path: Path, per: dict, names: list[str], truth: np.ndarray, full: np.ndarray, scale: np.ndarray, reference_label: str = "truth") -> None:
    """Per-FC scatter over orientations and the error versus angle (the paper's Fig. 4e–f).

    Deviations are from ``truth`` (the known truth of a simulation, or the full-run
    answer for real data, as the paper does), in units of ``scale`` (the training
    domain's width per parameter), so parameters near zero stay readable.
    """
    from fcinv.plotting import _plt, save_figure

    plt = _plt()
    th = np.array(per["theta"])
    psi = np.array(per["psi_deg"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=120)
    k = len(names)
    dev = (th - truth) / scale
    for i in range(k):
        sc = a.scatter(np.full(len(psi), i) + np.linspace(-0.2, 0.2, len(psi)), dev[:, i], c=psi, cmap="viridis", s=12)
    if reference_label != "full run":
        a.scatter(np.arange(k), (full - truth) / scale, marker="_", s=300, color="k", label="full run")
    a.axhline(0, color="tab:red", lw=0.8, label=reference_label)
    a.set_xticks(range(k))
    a.set_xticklabels([f"FC{i}\n{n}" for i, n in enumerate(names)], fontsize=7)
    a.set_ylabel(f"(prediction − {reference_label}) / domain width", fontsize=8)
    a.legend(fontsize=7)
    fig.colorbar(sc, ax=a, label="ψ (deg)")
    b.plot(psi, np.mean(dev**2, axis=1), "o-", ms=3)
    b.set_xlabel("sample rotation ψ (deg)")
    b.set_ylabel(f"mean squared deviation from {reference_label}\n(domain widths², FC0–FC{k - 1})", fontsize=8)
    b.set_title("single-orientation scans", fontsize=9)
    save_figure(fig, path)
