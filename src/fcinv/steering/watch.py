"""Live inference: fold each orientation file as it lands, re-infer, and write answer + adequacy + advice.

:func:`watch` polls a directory for orientation volumes (fcinv volume HDF5, :meth:`Volume4D.to_hdf5`;
one file per goniometer orientation, processed in name order), folds each new one into the running
sums (:class:`~fcinv.steering.incremental.IncrementalFold`: nothing is refolded), runs the ML model on
the updated fold (optionally the refinement fit) and writes ``answer.json`` atomically after every file:
θ ± σ by name, the adequacy verdict, the advice of an optional :class:`Advisor`, the files used and the
time the update took. The final answer equals a batch run on all files (the incremental fold equals the
batch fold; the same inference follows).

Adequacy verdict (until the uncertainty issue's calibrated verdict lands): with a refinement, the fit's
χ²/dof (adequate when ≤ ``chi2_max``) and its trust flag; without, the VAE's reconstruction rms over the
measured pixels of the scaled input (adequate when ≤ ``recon_max``); either way a one-line reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcinv.errors import DataError, describe_exception
from fcinv.io import write_json
from fcinv.steering.incremental import IncrementalFold

log = logging.getLogger(__name__)

#: Adequacy thresholds (see the module docstring).
CHI2_MAX = 2.0
RECON_MAX = 0.1


@dataclass
class Update:
    """One re-inference after a new file."""

    n_files: int
    names: tuple[str, ...]
    theta: np.ndarray
    sigma: np.ndarray
    sigma_source: str
    adequacy: dict
    advice: dict | None
    seconds: dict
    files: list[str]

    def as_dict(self) -> dict:
        return {
            "n_files": self.n_files,
            "unit": "eV/Å^2",
            "answer": {
                n: {"theta": float(t), "sigma": float(s)}
                for n, t, s in zip(self.names, self.theta, self.sigma)
            },
            "sigma_source": self.sigma_source,
            "adequacy": self.adequacy,
            "advice": self.advice,
            "seconds": self.seconds,
            "files": self.files,
        }


def _adequacy(pred, refined, mask, *, chi2_max: float, recon_max: float) -> dict:
    if refined is not None:
        c = refined.chi2_dof
        ok = bool(refined.success) and c is not None and c <= chi2_max
        why = (
            f"refined fit χ²/dof = {c:.2f} ({'≤' if c is not None and c <= chi2_max else '>'} {chi2_max:g})"
            if c is not None
            else "no χ²"
        )
        if not refined.success:
            why += "; fit not trusted: " + str(refined.message)
        return {"adequate": ok, "reason": why, "chi2_dof": c}
    rec, x = getattr(pred, "reconstruction", None), getattr(pred, "spectrum", None)
    if rec is None or x is None:
        return {
            "adequate": None,
            "reason": "no reconstruction to judge (ResNet model); refine for a χ² verdict",
        }
    r = float(np.sqrt(np.mean((np.asarray(rec, float) - np.asarray(x, float))[mask] ** 2)))
    return {
        "adequate": r <= recon_max,
        "reason": f"VAE reconstruction rms {r:.3f} of the scaled input "
        f"({'≤' if r <= recon_max else '>'} {recon_max:g})",
        "reconstruction_rms": r,
    }


@dataclass
class WatchState:
    """What the loop has seen and answered."""

    fold: IncrementalFold | None = None
    seen: list[str] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)

    @property
    def last(self) -> Update | None:
        return self.updates[-1] if self.updates else None


def infer_folded(
    fs,
    predictor,
    *,
    refine_model=None,
    k_samples: int = 100,
    seed: int = 0,
    chi2_max: float = CHI2_MAX,
    recon_max: float = RECON_MAX,
):
    """ML (and optional refinement) on a folded spectrum: (names, θ, σ, σ source, adequacy, pred, refined)."""
    img = np.where(fs.mask, fs.intensity, np.nan)
    pred = predictor.predict(img, k_samples=k_samples, seed=seed)
    refined = None
    if refine_model is not None:
        from fcinv.fitting import refine

        refined = refine(refine_model, fs, pred)
        theta, sigma, src = (
            np.asarray(refined.theta),
            np.asarray(refined.sigma),
            "refined fit (Laplace: data + prior)",
        )
        names = tuple(refined.names)
    else:
        theta, sigma, src = np.asarray(pred.theta), np.asarray(pred.sigma), "ML: spread over latent samples"
        names = tuple(pred.names)
    theta, sigma, src = _calibrated(predictor, names, theta, sigma, src, refined)
    adequacy = _adequacy(pred, refined, fs.mask, chi2_max=chi2_max, recon_max=recon_max)
    return names, theta, sigma, src, adequacy, pred, refined


def _calibrated(predictor, names, theta, sigma, src: str, refined):
    """σ calibrated as the batch pipeline does (``calibration.json`` beside the model), else unchanged.

    The refined calibration was fitted on refinements with the paper forward model, which is the
    model the live loop refines with."""
    from fcinv.calibration import load_calibration

    cal = load_calibration(predictor)
    if cal is None or list(cal.names) != list(names):
        return theta, sigma, src
    if refined is None:
        c = cal.calibrate(theta, sigma, estimator="ml")
    else:
        c = cal.calibrate(
            theta, sigma, estimator="refined", accepted=bool(getattr(refined, "success", False))
        )
    return theta, np.array([c[n]["sigma"] for n in names], float), c["sigma_meaning"]


def read_volume(path: Path):
    """An orientation file: a fcinv volume HDF5 (e.g. a simulated run's orientation written with to_hdf5)."""
    from fcinv.experiment.volume import Volume4D

    try:
        return Volume4D.from_hdf5(path)
    except OSError as exc:
        raise DataError(
            f"'{path}' is not a readable fcinv volume HDF5 ({describe_exception(exc)}). Write each "
            "orientation with Volume4D.to_hdf5."
        ) from None


def process_file(
    state: WatchState,
    path: Path,
    *,
    crystal,
    grid,
    predictor,
    corrections=None,
    refine_model=None,
    advisor: Callable | None = None,
    q_tolerance: float = 0.05,
    k_samples: int = 100,
    seed: int = 0,
) -> Update:
    """Fold one new file into ``state`` and re-infer; returns the update (not written)."""
    from fcinv.experiment.fold import FoldPlan

    t0 = time.perf_counter()
    vol = read_volume(path)
    t_read = time.perf_counter() - t0
    if state.fold is None or not state.fold.plan.matches(vol):
        if state.fold is not None:
            raise DataError(
                f"'{path.name}' has another Q grid than the files before it. Bin every orientation on the "
                "same grid."
            )
        centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
        plan = FoldPlan.build(
            vol.edges[:3], grid, crystal.point_group_rlu, centering=centering, q_tolerance=q_tolerance
        )
        state.fold = IncrementalFold(plan, corrections)
    t1 = time.perf_counter()
    state.fold.add(vol, source=path.name)
    fs = state.fold.folded()
    t_fold = time.perf_counter() - t1
    t2 = time.perf_counter()
    names, theta, sigma, src, adequacy, pred, refined = infer_folded(
        fs, predictor, refine_model=refine_model, k_samples=k_samples, seed=seed
    )
    t_inf = time.perf_counter() - t2
    advice = None
    t_adv = 0.0
    if advisor is not None:
        t3 = time.perf_counter()
        advice = advisor(vol, dict(zip(names, theta)), dict(zip(names, sigma)))
        t_adv = time.perf_counter() - t3
    state.seen.append(path.name)
    sec = {
        "read": round(t_read, 4),
        "fold": round(t_fold, 4),
        "infer": round(t_inf, 4),
        "advise": round(t_adv, 4),
        "total": round(time.perf_counter() - t0, 4),
    }
    up = Update(len(state.seen), names, theta, sigma, src, adequacy, advice, sec, list(state.seen))
    state.updates.append(up)
    return up


def watch(
    directory,
    *,
    crystal,
    grid,
    predictor,
    out: str | Path | None = None,
    pattern: str = "*.h5",
    corrections=None,
    refine_model=None,
    advisor: Callable | None = None,
    poll_s: float = 0.25,
    max_files: int | None = None,
    idle_timeout_s: float | None = None,
    settle_s: float = 0.0,
    on_update: Callable[[Update], None] | None = None,
    q_tolerance: float = 0.05,
    k_samples: int = 100,
    seed: int = 0,
) -> WatchState:
    """Watch ``directory`` and re-infer after every new orientation file (module docstring).

    Parameters
    ----------
    directory
        Folder that gains one volume file per orientation (``pattern``), processed in name order.
    crystal, grid, predictor
        The material's :class:`~fcinv.crystal.Crystal`, the model's grid and
        :class:`~fcinv.inference.FCPredictor`.
    out
        Where to write the answer JSON after each update (atomically); default ``directory/answer.json``
        is not used (the watched folder is left alone): None writes nothing.
    corrections
        :class:`fcinv.experiment.fold.Corrections` for the fold (as ``fcinv infer`` uses for 4D input).
    refine_model
        A forward model to refine with after the ML answer (as ``infer --refine``), or None.
    advisor
        Optional ``advisor(volume, theta_by_name, sigma_by_name) -> dict`` (e.g.
        :class:`fcinv.steering.advise.Advisor`).
    max_files, idle_timeout_s
        Stop after this many files, or when no new file came for this long (None: never).
    settle_s
        Ignore files modified less than this long ago (writers still busy; atomic writers need 0).
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(
            f"watch directory '{d}' does not exist. Pass the folder the orientation files are written to."
        )
    if not poll_s > 0:
        raise DataError(f"poll interval {poll_s} s; pass a positive interval (e.g. 0.25).")
    state = WatchState()
    last_new = time.monotonic()
    while True:
        now = time.time()
        new = sorted(
            p
            for p in d.glob(pattern)
            if p.name not in state.seen
            and not p.name.startswith(".")
            and (settle_s <= 0 or now - p.stat().st_mtime >= settle_s)
        )
        for p in new:
            up = process_file(
                state,
                p,
                crystal=crystal,
                grid=grid,
                predictor=predictor,
                corrections=corrections,
                refine_model=refine_model,
                advisor=advisor,
                q_tolerance=q_tolerance,
                k_samples=k_samples,
                seed=seed,
            )
            if out is not None:
                write_json(out, up.as_dict())
            if on_update is not None:
                on_update(up)
            log.info(
                "watch: %s folded and inferred in %.2f s (%d files)", p.name, up.seconds["total"], up.n_files
            )
            last_new = time.monotonic()
            if max_files is not None and len(state.seen) >= max_files:
                return state
        if idle_timeout_s is not None and time.monotonic() - last_new > idle_timeout_s:
            return state
        time.sleep(poll_s)
