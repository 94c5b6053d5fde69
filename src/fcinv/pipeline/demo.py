"""Stage III end to end on the embedded Ge default, as a beamline user would run it.

1. a "truth" force-constant set the model did not make. By default (``truth="auto"``,
   :func:`resolve_truth`) it is the **full DFT Ge set** (``ge_dft_pathsqe``: the whole
   FORCE_CONSTANTS file of a 4×4×4 supercell, found through ``$FCINV_SHARED_DATA`` or
   ``<repo>/../shared/data``; it cannot ship in the package). Without it the fallback is the
   reference member's full FC set with every model parameter moved to the values of the
   ``chgnet-0.2.0`` member (another model family than the reference ``7net-0``); the report's
   ``truth_label`` says which. θ is compared with the truth's projection onto the model's
   parameters, the dispersion with the truth's own (phonopy, the whole set);
2. a simulated ARCS-like experiment from it (Euphonic S(Q, E) with eigenvectors,
   Debye–Waller and Bose factors at 5 K, Ei = 40 meV, 120 orientations in 1° steps,
   energy resolution, flat background, Poisson counts);
3. Brillouin-zone folding of the whole run onto the model's q-path;
4. inference with the shipped VAE + regressor (θ ± σ from 100 latent samples), and
   a least-squares refinement started from the ML answer with the forward model the model was
   trained on (:meth:`~fcinv.pipeline.core.Pipeline.refinement_model`: for ``ge`` the physical
   model of this run's coverage, every parameter free, the training-domain prior);
5. the same for single orientations (the paper's one-minute scans).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fcinv.io.atomic import write_json
from fcinv.result import FCResult

log = logging.getLogger(__name__)

#: The fallback truth's ensemble member (when the DFT Ge set is not on this machine).
DEFAULT_TRUTH = "chgnet-0.2.0"
#: ``truth="auto"``: the full DFT Ge set when present, else :data:`DEFAULT_TRUTH` (sampled mode).
AUTO_TRUTH = "auto"
#: Environment variable naming the shared data folder (the one holding ``ge_dft_pathsqe/``).
SHARED_DATA_ENV = "FCINV_SHARED_DATA"
#: The DFT Ge set's folder inside the shared data folder.
DFT_GE_FOLDER = "ge_dft_pathsqe"


def shared_data_dir() -> Path | None:
    """The shared data folder: ``$FCINV_SHARED_DATA``, else ``<repo>/../shared/data``; None when absent.

    The DFT Ge set cannot ship in the package, so the demo looks for it there.
    """
    import os

    env = os.environ.get(SHARED_DATA_ENV)
    if env:
        return Path(env) if Path(env).is_dir() else None
    repo = Path(__file__).resolve().parents[3]
    cand = repo.parent / "shared" / "data"
    return cand if cand.is_dir() else None


def resolve_truth(material: str, truth: str = AUTO_TRUTH, mode: str = "sampled") -> tuple[str, str]:
    """``(truth, mode)`` for :func:`run_demo`: ``"auto"`` becomes the full DFT Ge set
    (``dft:<folder>``, mode ``"member"``: the whole FORCE_CONSTANTS file) when the material is Ge and
    the set is found (:func:`shared_data_dir`), else the fallback ``DEFAULT_TRUTH`` in ``mode``
    ``"sampled"`` (the reference member's full FC set with every model parameter moved to the
    ``chgnet-0.2.0`` member's values: another force field than the training reference ``7net-0``)."""
    if truth != AUTO_TRUTH:
        return truth, mode
    d = shared_data_dir()
    if material == "Ge" and d is not None:
        folder = d / DFT_GE_FOLDER
        if (folder / "FORCE_CONSTANTS").is_file() and (folder / "POSCAR").is_file():
            return f"dft:{folder}", "member"
    log.info("the DFT Ge set is not here (set %s); the demo's truth is the fallback", SHARED_DATA_ENV)
    return DEFAULT_TRUTH, "sampled"


class StageBars:
    """One progress bar per stage of the demo, one line each on stderr (tqdm), or nothing.

    The demo's steps call the library with its own progress bars off, so each stage shows exactly
    one bar (its name, the steps done, the elapsed time) and nothing nests: log records (``-v``,
    written through ``tqdm.write``) then print once, above the running bar.
    """

    def __init__(self, n_stages: int, enabled: bool = True) -> None:
        self.n_stages = n_stages
        self.enabled = enabled
        self.done = 0

    @contextmanager
    def stage(self, name: str, total: int = 1, unit: str = "step") -> Iterator:
        """A bar for ``name`` with ``total`` steps; completed (and left on screen) when the block ends."""
        self.done += 1
        bar = None
        if self.enabled:
            from tqdm import tqdm

            bar = tqdm(
                total=total,
                desc=f"[{self.done}/{self.n_stages}] {name:<12}",
                unit=unit,
                leave=True,
                bar_format="{desc} {percentage:3.0f}%|{bar:20}| {n_fmt}/{total_fmt} {unit} [{elapsed}]",
            )
        try:
            yield bar
            if bar is not None:
                bar.update(total - bar.n)
        finally:
            if bar is not None:
                bar.close()


def truth_dispersion(fc, unit, smat, crystal, q_rlu: np.ndarray) -> np.ndarray:
    """The truth's own phonon energies (phonopy, the FC array as it is), shape (n_q, n_modes) meV, ascending.

    ``fc``, ``unit``, ``smat`` as :func:`truth_force_constants` returns them; ``q_rlu`` (n_q, 3) in the
    crystal's reciprocal-lattice units.
    """
    from fcinv.units import THZ_TO_MEV

    ph = _truth_phonopy(fc, unit, smat)
    ph.run_qpoints(crystal.rlu_to_prim_frac(np.asarray(q_rlu, float)))
    return np.sort(np.asarray(ph.qpoints.frequencies, float), axis=1) * THZ_TO_MEV


def _truth_phonopy(fc, unit, smat):
    """A Phonopy object holding the truth's FC array as it is."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    lattice, positions, numbers, masses = unit
    atoms = PhonopyAtoms(
        cell=np.asarray(lattice),
        scaled_positions=np.asarray(positions),
        numbers=np.asarray(numbers),
        masses=None if masses is None else np.asarray(masses),
    )
    ph = Phonopy(atoms, supercell_matrix=np.asarray(smat), primitive_matrix="P", log_level=0)
    ph.force_constants = np.asarray(fc)
    return ph


def truth_dos(fc, unit, smat, *, mesh: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The truth's own phonon DOS (phonopy, the FC array as it is): energies (meV), g(E) per meV."""
    from fcinv.plotting import phonopy_dos

    return phonopy_dos(_truth_phonopy(fc, unit, smat), mesh=mesh)


@dataclass(frozen=True, eq=False)
class DemoReport:
    """What the demo measured: the final θ ± σ (an :class:`~fcinv.result.FCResult`) against a known truth.

    Attributes
    ----------
    truth_label
        Where the truth came from (``"sampled:chgnet-0.2.0"``).
    truth_theta
        Shape (k,) eV/Å²: the truth's values of ``result.names``.
    result
        The final answer (refined when the refinement ran; the ML one in ``result.parts["ml"]``).
    disp_rms_meV
        RMS of the final θ's dispersion minus the truth's own (phonopy) along the path, meV.
    per_orientation
        Single-orientation scans (psi, coverage, θ, error summary).
    timings
        Seconds per step.
    files
        What was written.
    ml_disp_rms_meV
        The same for the ML answer (equal to ``disp_rms_meV`` without a refinement), meV.
    """

    truth_label: str
    truth_theta: np.ndarray
    result: FCResult
    disp_rms_meV: float
    per_orientation: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    ml_disp_rms_meV: float | None = None

    # the fields of the former DemoResult, derived from the result
    @property
    def names(self) -> list[str]:
        return list(self.result.names)

    @property
    def truth(self) -> np.ndarray:
        return self.truth_theta

    @property
    def truth_dict(self) -> dict[str, float]:
        return dict(zip(self.result.names, (float(v) for v in self.truth_theta)))

    @property
    def ml_result(self) -> FCResult:
        return self.result.parts.get("ml", self.result)

    @property
    def ml(self) -> np.ndarray:
        return self.ml_result.theta

    @property
    def ml_sigma(self) -> np.ndarray:
        return self.ml_result.sigma

    @property
    def refined(self) -> np.ndarray | None:
        return self.result.theta if "ml" in self.result.parts else None

    @property
    def refined_sigma(self) -> np.ndarray | None:
        return self.result.sigma if "ml" in self.result.parts else None

    def rel_err(self, which: str = "ml") -> np.ndarray:
        """|estimate − truth| / |truth| of the ML (``"ml"``) or the refined (``"refined"``) answer."""
        res = self.ml_result if which == "ml" else self.result
        return res.relative_error(self.truth_dict)

    def as_dict(self) -> dict:
        d = {
            "truth_label": self.truth_label,
            "truth": self.truth_dict,
            "result": self.result.to_dict(),
            "ml_rel_err": self.rel_err("ml").tolist(),
            "disp_rms_meV": self.disp_rms_meV,
            "ml_disp_rms_meV": self.ml_disp_rms_meV,
            "per_orientation": self.per_orientation,
            "timings_s": self.timings,
            "files": self.files,
        }
        if self.refined is not None:
            d["refined_rel_err"] = self.rel_err("refined").tolist()
        return d


def truth_force_constants(
    ref, member: str = DEFAULT_TRUTH, mode: str = "sampled", names: list[str] | None = None
):
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
            return (
                parse_FORCE_CONSTANTS(str(folder / "FORCE_CONSTANTS")),
                (unit.cell, unit.scaled_positions, unit.numbers, masses),
                np.diag([4, 4, 4]),
                member_theta[idx],
            )
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
    unit = (
        np.asarray(d["lattice"]),
        np.asarray(d["positions"]),
        np.asarray(d["numbers"]),
        np.asarray(d["masses"]),
    )
    if not (np.allclose(unit[0], c.lattice) and np.allclose(unit[1], c.positions)):
        raise DataError(
            "the reference FC file's unit cell differs from the crystal's; regenerate it with `fcinv "
            "reference`."
        )
    full = ref.space.to_phonopy(delta, smat)
    fc = np.asarray(d["force_constants"]) + full[np.asarray(d["p2s_map"])]
    return fc, unit, smat, member_theta[idx]


def truth_theta(ref, member: str = DEFAULT_TRUTH) -> np.ndarray:
    """Full θ of an ensemble member (its projection onto ``ref``'s space), from the embedded data."""
    from fcinv.errors import DataError

    if member in ref.member_theta:  # the members' FC sets projected at the reference's own shell count
        return np.asarray(ref.member_theta[member], float).copy()
    members = {m["name"]: m for m in ref.ensemble.get("members", []) if m.get("projection")}
    if member not in members:
        raise DataError(
            f"no ensemble member '{member}' with force constants in the embedded {ref.material} data. "
            f"Members: {', '.join(members)}."
        )
    th = members[member]["projection"]["theta"]
    return np.array([th[n] for n in ref.space.names])


def domain_width(ref, names: list[str], theta0: np.ndarray | None = None) -> np.ndarray:
    """Width of the training domain per parameter (the default widening of the ensemble bounds)."""
    from fcinv.dataset.generate import widened_domain

    lo, hi = ref.bounds(names)
    th0 = ref.theta_ref[ref.space.index(names)] if theta0 is None else theta0
    dom = widened_domain(names, lo, hi, th0)
    return dom.high - dom.low


def run_demo(
    out: str | Path,
    *,
    model: str = "ge",
    truth: str = AUTO_TRUTH,
    truth_mode: str = "sampled",
    orientations: int = 120,
    single_scans: int = 12,
    refine: bool = True,
    corrections=None,
    seed: int = 0,
    progress: bool = True,
    refine_fn=None,
    plot: bool = True,
) -> DemoReport:
    """Run the demo, writing the run, the folded spectrum, the result and figures into ``out``.

    ``truth`` (:func:`resolve_truth`): ``"auto"`` (default) is the full DFT Ge set when present, else
    the fallback; or an ensemble member (with ``truth_mode``), or ``dft:<folder>``. The report
    compares θ with the truth's projection onto the model's parameters and the final dispersion with
    the truth's own (phonopy, the whole FC set).

    ``refine_fn`` replaces the default refinement (see :class:`~fcinv.pipeline.core.Pipeline`).
    ``plot=False`` writes no figures. The inversion figure holds the measured fold, the model at the
    answer and their residual, the dispersion with its σ band beside the truth's, the VAE
    reconstruction and the phonon DOS of the answer, the reference and the truth (phonopy 16³).
    """
    from fcinv.adequacy import check_spectrum
    from fcinv.experiment.instrument import Goniometer
    from fcinv.experiment.simulate import ExperimentConfig, force_constants_from_array, simulate_experiment
    from fcinv.pipeline.core import InversionRun, Pipeline, PipelineConfig, one_phonon_corrections
    from fcinv.pipeline.plots import plot_inversion, plot_single_scans

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    bars = StageBars(3 + bool(refine) + bool(single_scans), enabled=progress)
    with bars.stage("load"):
        t = time.perf_counter()
        corr = corrections if corrections is not None else one_phonon_corrections(5.0)
        pipe = Pipeline(
            model, refine=refine_fn, config=PipelineConfig(k_samples=100, seed=seed, corrections=corr)
        )
        names = list(pipe.names)
        ref = pipe.reference  # the model's own parameter space
        timings["load"] = time.perf_counter() - t
        truth, truth_mode = resolve_truth(pipe.material.name, truth, truth_mode)

        # 1. the truth: a full FC set
        fc_arr, unit, smat, truth_sampled = truth_force_constants(ref, truth, truth_mode, names)
        efc, ecrystal = force_constants_from_array(fc_arr, unit[0], unit[1], unit[2], smat, masses=unit[3])

    # 2. simulated experiment (only the Q-bins that folding onto the path can use)
    with bars.stage("simulate", orientations, "orientations"):
        t = time.perf_counter()
        gonio = Goniometer.steps(0.0, 1.0, orientations)
        prov = {
            "truth": f"{truth_mode}:{truth}",
            "truth_theta_sampled": dict(zip(names, truth_sampled.tolist())),
        }
        run = simulate_experiment(
            efc,
            ecrystal,
            goniometer=gonio,
            config=ExperimentConfig(seed=seed),
            region=pipe.grid,
            progress=False,
            provenance=prov,
        )
        timings["simulate"] = time.perf_counter() - t
        run.to_hdf5(out / "run.h5")

    # 3.-4. fold the whole run (one-phonon corrections), infer, refine: Pipeline.run's steps one at
    # a time, so that each gets its bar
    measurement = run.total()
    with bars.stage("fold + ML"):
        t = time.perf_counter()
        fs = pipe.fold(measurement, source="the simulated run")
        timings["fold"] = time.perf_counter() - t
        t = time.perf_counter()
        if pipe.config.trust:
            check_spectrum(fs)
        pred, result = pipe.predict(fs)
        timings["infer"] = time.perf_counter() - t
    if refine:
        with bars.stage("refine"):
            t = time.perf_counter()
            result = pipe.refine(fs, pred, result, measurement=measurement)
            timings["refine"] = time.perf_counter() - t
    if pipe.config.trust:
        result = pipe.attach_trust(fs, pred, result)
    steps = {k: round(timings[k], 4) for k in ("fold", "infer", "refine") if k in timings}
    result = replace(result, extra=dict(result.extra, timings_s=steps))  # as Pipeline.run records them
    truth_result = truth_sampled
    ref_n = pipe.continued_reference(result)
    if ref_n is not None:
        # a refinement continued into more shells: the truth's projection onto the result's own space
        truth_result = truth_force_constants(ref_n, truth, truth_mode, list(result.names))[3]
    inv = InversionRun(fs, pred, result, pipe.frequencies(result), dict(timings))
    inv.spectrum.to_hdf5(out / "folded.h5", seed=seed)
    truth_f = truth_dispersion(fc_arr, unit, smat, ref.crystal, pipe.grid.q_rlu)
    disp_rms = float(np.sqrt(np.mean((np.sort(inv.frequencies, axis=1) - truth_f) ** 2)))
    ml_f = np.sort(pipe.frequencies(inv.ml), axis=1)
    ml_disp_rms = float(np.sqrt(np.mean((ml_f - truth_f) ** 2)))
    files = {"run": str(out / "run.h5"), "folded": str(out / "folded.h5")}
    if plot:
        from fcinv.pipeline.plots import inversion_extras

        short = f"dft:{Path(truth[4:]).name}" if truth.startswith("dft:") else truth  # no machine paths
        extras = inversion_extras(pipe, inv, seed=seed, dos=True, measurement=measurement)
        extras["dos"][f"truth ({truth_mode}:{short})"] = truth_dos(fc_arr, unit, smat)
        extras.update(truth_frequencies=truth_f, truth_label="truth (phonopy)")
        fig = plot_inversion(
            out / "inversion.png",
            inv,
            title=f"{pipe.material.name}, simulated ARCS run ({orientations} orientations), truth = "
            f"{truth_mode}:{short}",
            **extras,
        )
        files["figure"] = str(fig)

    # 5. single orientations
    per: dict = {}
    if single_scans:
        which = np.unique(np.linspace(0, orientations - 1, single_scans).round().astype(int))
        with bars.stage("single scans", len(which), "scans"):
            t = time.perf_counter()
            scans = pipe.scans(run, orientations=list(which))
            timings["single_scans"] = time.perf_counter() - t
        err = np.abs(scans.theta - truth_sampled) / np.abs(truth_sampled)
        per = {
            **scans.to_dict(),
            "median_rel_err_fc0_3": float(np.median(err[:, :4])),
            "worst_rel_err_fc0_3": float(err[:, :4].max()),
        }
        dom = pipe.reference.domain(names)
        if plot:
            files["single_scans"] = str(
                plot_single_scans(
                    out / "single_scans.png", scans, truth_sampled, inv.ml.theta, dom.high - dom.low
                )
            )
    report = DemoReport(
        f"{truth_mode}:{truth}", truth_result, inv.result, disp_rms, per, timings, files, ml_disp_rms
    )
    inv.result.to_json(out / "result.json")
    files["result"] = str(out / "result.json")
    write_json(out / "demo.json", report.as_dict())
    files["summary"] = str(out / "demo.json")
    return report
