"""A screening start: sample the training domain, rank by misfit, fit briefly from the best few.

A local fit from the ML answer or the energy-moment start (:mod:`fcinv.fitting.moments`) ends in the
basin its start lies in. :func:`screen_starts` looks wider:

1. ``n_samples`` scrambled-Sobol points (seeded) of the training domain, over every free parameter
   or, with ``subspace=m``, over the m parameters of largest sensitivity (the weighted image change
   across each parameter's domain width, by finite differences at ``anchor``) with the others at
   ``anchor``;
2. each scored by the misfit after the best linear scale and background (one batched ``spectra``
   call per chunk);
3. the ``n_fits`` best dynamically stable points that are at least ``min_distance`` apart (in unit-box
   coordinates of the screened parameters) each get a short local fit (:func:`fcinv.fitting.fit_spectrum`,
   ``max_nfev`` evaluations);
4. the ``n_keep`` endpoints of lowest data misfit (:func:`fcinv.fitting.starts.data_misfit`; stable
   endpoints first) are returned as ``(label, θ, None)`` starts for ``refine(extra_starts=...)``, whose
   :func:`~fcinv.fitting.starts.select_from_starts` fits on from each and keeps the trusted fit of
   lowest misfit beside the ML and moment starts.

The short fits matter more than the raw ranking: in 24 dimensions (GaAs, 5 shells) no Sobol point
of thousands comes near the truth's misfit, but a few local fits from the best of them reach basins
deeper than the moment start's (docs/new-material.md gives the measured figures).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np

from fcinv.fitting._base import FitError
from fcinv.fitting.image import Weighting, _as_pixels, _linear_scale

log = logging.getLogger(__name__)

#: Spectra per batched ``spectra`` call of the screen.
CHUNK = 64


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        rng = f"{low}..{high}" if high is not None else f">= {low}"
        raise FitError(f"screen {name} = {value!r}; pass an integer {rng}.")
    return int(value)


def _domain_box(model, domain) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of ``domain`` in ``model.names`` order."""
    from fcinv.dataset.generate import Domain

    if not isinstance(domain, Domain):
        raise FitError(
            f"screen domain must be a fcinv.dataset.generate.Domain, not {type(domain).__name__}. "
            "Pass the training domain (fcinv.fitting.priors.training_domain)."
        )
    missing = [n for n in model.names if n not in domain.names]
    if missing:
        raise FitError(
            f"the screen domain lacks the free parameters {missing}. Pass a Domain over {model.names}."
        )
    idx = [domain.names.index(n) for n in model.names]
    return np.asarray(domain.low, float)[idx], np.asarray(domain.high, float)[idx]


def linear_misfits(model, thetas: np.ndarray, y, w, mask, *, bar=None) -> np.ndarray:
    """Σ (w (s·I(θ) + b − y))² after the best linear scale s and background b, for each row of ``thetas``."""
    out = np.empty(len(thetas))
    for i in range(0, len(thetas), CHUNK):
        imgs = model.spectra(thetas[i : i + CHUNK]).astype(np.float64)[:, mask]
        for j, img in enumerate(imgs):
            s, b = _linear_scale(img, y, w, True)
            out[i + j] = float(np.sum((w * (s * img + b - y)) ** 2))
        if bar is not None:
            bar.update(len(imgs))
    out[~np.isfinite(out)] = np.inf
    return out


def sensitivity(model, anchor: np.ndarray, low: np.ndarray, high: np.ndarray, w, mask) -> np.ndarray:
    """‖w ΔI‖ per parameter across its domain width (finite difference of 2 % of the width at ``anchor``)."""
    width = high - low
    step = 0.02 * width
    pts = np.vstack([anchor, anchor + np.diag(step)])
    imgs = model.spectra(pts).astype(np.float64)[:, mask]
    return np.array([np.linalg.norm(w * (imgs[p + 1] - imgs[0])) / 0.02 for p in range(len(anchor))])


def screen_starts(
    model,
    data,
    domain,
    *,
    anchor=None,
    n_samples: int = 1024,
    n_fits: int = 6,
    n_keep: int = 2,
    subspace: int | None = None,
    max_nfev: int = 20,
    min_distance: float = 0.1,
    seed: int = 0,
    weighting: Weighting = "auto",
    progress: bool = False,
    fit_kwargs: dict | None = None,
) -> tuple[list[tuple[str, np.ndarray, None]], dict]:
    """Extra refinement starts from a seeded screen of ``domain`` (see the module docstring).

    Parameters
    ----------
    model
        The forward model of the refinement (e.g. a :class:`~fcinv.forward.physical.PhysicalModel`).
    data
        The measured spectrum (a FoldedSpectrum or an (n_q, n_E) array, NaN = unmeasured).
    domain
        A :class:`~fcinv.dataset.generate.Domain` over (at least) ``model.names``: the box sampled.
    anchor
        θ (``model.names`` order) of the parameters not screened (``subspace``) and of the
        sensitivity; default ``model.theta0``.
    n_samples
        Sobol points (rounded up to a power of two, the balanced size of a Sobol sequence).
    n_fits
        Short local fits, from the best stable, mutually distant points.
    n_keep
        Fit endpoints returned as starts.
    subspace
        Screen only the ``subspace`` parameters of largest sensitivity (None: all).
    max_nfev
        Evaluations of each short fit.
    min_distance
        Least distance between fitted points, × √(screened dimension), in unit-box coordinates.
    seed
        Seed of the scrambled Sobol sequence.
    weighting
        As :func:`fcinv.fitting.fit_spectrum`.
    progress
        Show a progress bar over the screen and the fits.
    fit_kwargs
        Further keywords of the short fits (:func:`fcinv.fitting.fit_spectrum`, e.g. ``prior``).

    Returns
    -------
    (starts, summary)
        ``starts``: ``[("screen1", θ, None), ...]`` (best first); ``summary``: the screen's settings,
        the screened names, the best screen misfits, every short fit's screen and fit misfit,
        stability and wall time, and the total wall time (JSON-able).
    """
    from scipy.stats import qmc

    from fcinv.fitting.spectrum_fit import fit_spectrum
    from fcinv.fitting.starts import data_misfit

    t_start = time.perf_counter()
    k = int(model.k)
    n_samples = _check_int("n_samples", n_samples, 1)
    n_fits = _check_int("n_fits", n_fits, 1)
    n_keep = _check_int("n_keep", n_keep, 1, n_fits)
    max_nfev = _check_int("max_nfev", max_nfev, 1)
    if subspace is not None:
        subspace = _check_int("subspace", subspace, 1, k)
    if not (isinstance(min_distance, (int, float)) and math.isfinite(min_distance) and min_distance >= 0):
        raise FitError(f"screen min_distance = {min_distance!r}; pass a finite number >= 0.")
    low, high = _domain_box(model, domain)
    if not np.all(high > low):
        raise FitError(
            "the screen domain has a parameter of zero or negative width. Pass a box with high > low."
        )
    anchor = np.asarray(model.theta0 if anchor is None else anchor, float).ravel()
    if anchor.shape != (k,) or not np.all(np.isfinite(anchor)):
        raise FitError(
            f"screen anchor has shape {anchor.shape} or non-finite values; pass a finite ({k},) vector."
        )
    y, w, mask, _ = _as_pixels(model, data, weighting)

    if subspace is None or subspace == k:
        idx = np.arange(k)
    else:
        sens = sensitivity(model, anchor, low, high, w, mask)
        idx = np.sort(np.argsort(sens)[::-1][:subspace])
    d = len(idx)
    n_pow = 1 << max(0, math.ceil(math.log2(n_samples)))
    unit = qmc.Sobol(d, scramble=True, seed=seed).random_base2(int(math.log2(n_pow)))
    cand = np.tile(anchor, (n_pow, 1))
    cand[:, idx] = low[idx] + (high[idx] - low[idx]) * unit

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_pow + n_fits, desc="screen start", unit="spectrum")
    try:
        t0 = time.perf_counter()
        mis = linear_misfits(model, cand, y, w, mask, bar=bar)
        t_screen = time.perf_counter() - t0
        log.info("screen start: %d points over %d parameters in %.1f s", n_pow, d, t_screen)
        order = np.argsort(mis, kind="stable")
        picked: list[int] = []
        n_checked = n_unstable = 0
        min_d = float(min_distance) * math.sqrt(d)
        for c0 in range(0, n_pow, CHUNK):
            block = [i for i in order[c0 : c0 + CHUNK] if np.isfinite(mis[i])]
            if not block:
                break
            stable = np.asarray(model.is_stable(cand[block]), bool)
            n_checked += len(block)
            n_unstable += int((~stable).sum())
            for i, ok in zip(block, stable):
                if ok and all(np.linalg.norm(unit[i] - unit[j]) >= min_d for j in picked):
                    picked.append(int(i))
                if len(picked) == n_fits:
                    break
            if len(picked) == n_fits:
                break
        if not picked:
            raise FitError(
                f"no dynamically stable point among the {n_pow} screened; the domain holds no stable crystal "
                "near the data. Check the material's training domain."
            )
        fits = []
        kw = {"weighting": weighting, **(fit_kwargs or {})}
        for i in picked:
            t1 = time.perf_counter()
            r = fit_spectrum(
                model,
                data,
                theta_start=cand[i],
                max_nfev=max_nfev,
                method_label=f"short local fit of the screen start ({max_nfev} evaluations)",
                **kw,
            )
            stable = bool(np.asarray(model.is_stable(np.asarray(r.theta, float)[None]), bool)[0])
            fits.append(
                {
                    "screen_misfit": float(mis[i]),
                    "fit_misfit": data_misfit(model, data, r, weighting),
                    "stable": stable,
                    "converged": bool(r.success),
                    "n_eval": int(r.n_eval_total),
                    "wall_s": round(time.perf_counter() - t1, 2),
                    "theta": np.asarray(r.theta, float),
                }
            )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    ranked = sorted(range(len(fits)), key=lambda j: (not fits[j]["stable"], fits[j]["fit_misfit"]))
    keep = [j for j in ranked if np.all(np.isfinite(fits[j]["theta"]))][:n_keep]
    starts = [(f"screen{r + 1}", fits[j]["theta"].copy(), None) for r, j in enumerate(keep)]
    summary = {
        "n_samples": n_pow,
        "seed": int(seed),
        "screened": [model.names[i] for i in idx],
        "subspace": subspace,
        "max_nfev": max_nfev,
        "best_screen_misfits": [float(v) for v in mis[order[:5]]],
        "stability_checked": n_checked,
        "unstable": n_unstable,
        "fits": [{k_: v for k_, v in f.items() if k_ != "theta"} for f in fits],
        "kept": [f"fit {j + 1}" for j in keep],
        "screen_s": round(t_screen, 2),
        "wall_s": round(time.perf_counter() - t_start, 2),
    }
    log.info(
        "screen start: %d short fits (misfits %s) in %.0f s; kept %d",
        len(fits),
        ", ".join(f"{f['fit_misfit']:.4g}{'' if f['stable'] else ' (unstable)'}" for f in fits),
        summary["wall_s"],
        len(starts),
    )
    return starts, summary
