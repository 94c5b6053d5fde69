"""Several refinement starts, one answer: the trusted fit of lowest data misfit.

:func:`fcinv.fitting.refine` with ``extra_starts`` (e.g. the energy-moment start of
:func:`fcinv.fitting.moments.moment_start`) runs one local fit from each start beside the ML one and
keeps the fit :func:`select_start` picks; :func:`data_misfit` is the common yardstick.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from fcinv.fitting._base import FitError, FitResult
from fcinv.fitting.image import Weighting, _as_pixels, model_with_free

log = logging.getLogger(__name__)


def data_misfit(model, data, result: FitResult, weighting: Weighting = "auto") -> float:
    """Σ (w (s·I(θ) + b − y))² of a fit's θ, scale and background over every measured pixel.

    The fit's own cost leaves out its outliers and, without errors, is in units of a noise level
    measured per fit; this misfit is the same sum for every fit of one spectrum (outliers
    included), so fits from different starts, or with models re-centred at different θ, compare.
    """
    fit_model = model_with_free(model, list(result.names))
    y, w, mask, _ = _as_pixels(fit_model, data, weighting)
    img = fit_model.spectra(np.asarray(result.theta, float)[None]).astype(np.float64)[0][mask]
    s = float(result.extra.get("scale", 1.0))
    b = float(result.extra.get("background", 0.0))
    return float(np.sum((w * (s * img + b - y)) ** 2))


def select_start(fits: Sequence[tuple[str, FitResult, float]]) -> tuple[int, list[dict]]:
    """The index of the trusted fit (converged and stable) of lowest misfit, and a summary of all.

    ``fits`` are ``(label, result, misfit)``. Where no fit is trusted, the lowest misfit among all
    is returned (the caller's fallback then rejects it).
    """
    if not fits:
        raise FitError("no fit to select from. Pass at least one (label, result, misfit).")
    table = [
        {
            "start": lab,
            "misfit": float(m),
            "chi2": r.chi2,
            "success": bool(r.success),
            "lowest_mode_meV": r.extra.get("lowest_mode_meV"),
            "theta_start": [float(v) for v in r.theta_start],
        }
        for lab, r, m in fits
    ]
    key = [(not r.success, not np.isfinite(m), m) for _, r, m in fits]
    return min(range(len(fits)), key=key.__getitem__), table


def select_from_starts(
    model, fit_model, data, res_ml: FitResult, extra_starts, kwargs, strict, fit
) -> FitResult:
    """Local fits from ``extra_starts`` beside the ML one; the selected fit (:func:`select_start`).

    ``fit`` is :func:`fcinv.fitting.fit_spectrum` (passed in: that module calls this one).
    """
    weighting = kwargs.get("weighting", "auto")
    fits = [("ml", res_ml, data_misfit(model, data, res_ml, weighting))]
    kw = {k: v for k, v in kwargs.items() if k not in ("candidates", "method_label")}
    for entry in extra_starts:
        if len(entry) != 3:
            raise FitError("extra_starts entries are (label, theta, model_or_None). Pass triples.")
        lab, theta, m = entry
        theta = np.asarray(theta, float)
        if theta.shape != (fit_model.k,) or not np.all(np.isfinite(theta)):
            raise FitError(
                f"extra start {lab!r} has shape {theta.shape} or non-finite values; pass a finite "
                f"({fit_model.k},) vector in the order {', '.join(fit_model.names)}."
            )
        mm = m if m is not None else model
        r = fit(
            mm,
            data,
            theta_start=dict(zip(fit_model.names, theta)),
            n_starts=1,
            method_label=(
                "least squares (scipy Levenberg-Marquardt) with the training-domain prior, "
                f"from the {lab} start"
            ),
            **kw,
        )
        fits.append((str(lab), r, data_misfit(mm, data, r, weighting)))
    i, table = select_start(fits)
    lab, best, _ = fits[i]
    log.info(
        "refinement starts: %s; selected %s",
        ", ".join(
            f"{t['start']} misfit {t['misfit']:.6g}{'' if t['success'] else ' (not trusted)'}" for t in table
        ),
        lab,
    )
    if strict and not best.success:
        raise FitError(f"no refinement start gave a trusted fit ({'; '.join(t['start'] for t in table)}).")
    extra = dict(best.extra)
    extra["refine_start"] = lab
    extra["start_selection"] = table
    return replace(best, extra=extra, n_eval_total=int(sum(r.n_eval_total for _, r, _m in fits)))
