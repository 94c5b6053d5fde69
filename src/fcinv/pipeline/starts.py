"""The refinement's starts besides the ML answer, for :meth:`fcinv.pipeline.Pipeline.refine`.

:func:`refinement_starts` gathers those ``PipelineConfig.refine_starts`` names:
:func:`moment_starts` builds the energy-moment start (:mod:`fcinv.fitting.moments`),
:func:`screen_start` the screening start (:mod:`fcinv.fitting.screen`);
:func:`first_stage_with_starts` hands it to the first stage of a shell continuation only;
:func:`record_start` writes which start won into the result's ``extra``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

log = logging.getLogger(__name__)


def moment_starts(model, spectrum) -> tuple[list, dict | None]:
    """The energy-moment start for ``model`` and ``spectrum``: ``([("moments", θ, model)], summary)``.

    The start (:func:`fcinv.fitting.moments.moment_start`) is computed from the reference θ, then
    again on a physical model re-centred at that estimate, which the local fit from it uses. Only
    for a :class:`~fcinv.forward.physical.PhysicalModel`; an estimate that fails or is unstable is
    logged and left out (``[]``, with the reason in the summary).
    """
    from fcinv.forward.physical import PhysicalModel

    if not isinstance(model, PhysicalModel):
        return [], None
    from fcinv.fitting import FitError
    from fcinv.fitting.moments import moment_start, recentred_model

    t = time.perf_counter()
    try:
        first = moment_start(model, spectrum)
        centred = recentred_model(model, first.theta)
        ms = moment_start(centred, spectrum, theta_start=first.theta)
    except FitError as exc:
        log.warning("moment start left out: %s", exc)
        return [], {"error": str(exc)}
    info = ms.as_dict()
    info["first_pass_theta"] = first.theta_dict()
    info["recentred"] = (
        "the local fit from it uses a PhysicalModel about the first-pass estimate"
        if centred is not model
        else "no (the model has a full reference FC set)"
    )
    info["wall_s"] = round(time.perf_counter() - t, 3)
    if not ms.stable:
        log.warning("moment start left out: unstable (lowest mode %.2f meV)", ms.lowest_mode_meV)
        return [], {**info, "error": "unstable"}
    return [("moments", ms.theta, centred)], info


def screen_start(model, spectrum, material, prediction=None, seed: int = 0) -> tuple[list, dict | None]:
    """The screening start (:func:`fcinv.fitting.screen.screen_starts`) for ``model`` and ``spectrum``.

    The material's training domain is screened over its 4 most sensitive parameters, the others at
    the ML answer ``prediction`` (an object with ``names``/``theta``; else the model's ``theta0``);
    6 short fits, the best 2 endpoints returned as ``("screen1", θ, None)``, ``("screen2", ...)``.
    Only for a :class:`~fcinv.forward.physical.PhysicalModel`; a screen that fails is logged and left
    out (``[]``, with the reason in the summary).
    """
    import numpy as np

    from fcinv.forward.physical import PhysicalModel

    if not isinstance(model, PhysicalModel):
        return [], None
    from fcinv.fitting import FitError
    from fcinv.fitting.priors import training_domain
    from fcinv.fitting.screen import screen_starts

    anchor = np.asarray(model.theta0, float)
    if prediction is not None and hasattr(prediction, "names"):
        by = dict(zip(prediction.names, np.asarray(prediction.theta, float)))
        anchor = np.array([by.get(n, a) for n, a in zip(model.names, anchor)])
    try:
        domain = training_domain(material.reference, list(model.names))
        return screen_starts(
            model, spectrum, domain, anchor=anchor, subspace=min(4, model.k), seed=seed, progress=True
        )
    except FitError as exc:
        log.warning("screen start left out: %s", exc)
        return [], {"error": str(exc)}


def refinement_starts(config, material, model, spectrum, prediction=None) -> tuple[list, dict | None]:
    """The starts ``config.refine_starts`` names besides the ML one, and their summary.

    The summary is the moment start's (:func:`moment_starts`), with the screen's under ``"screen"``
    when it ran (:func:`record_start` moves it to ``extra["screen_start"]``); None when neither ran.
    """
    starts, info = moment_starts(model, spectrum) if "moments" in config.refine_starts else ([], None)
    if "screen" in config.refine_starts:
        more, sinfo = screen_start(model, spectrum, material, prediction, seed=config.seed)
        if sinfo is not None:
            starts = [*starts, *more]
            info = {**(info or {}), "screen": sinfo}
    return starts, info


def first_stage_with_starts(starts: list):
    """A refine callable for :func:`~fcinv.fitting.continuation.refine_in_shells` that passes ``starts`` to
    its first stage only (the later stages have more parameters and start from the previous one)."""
    from fcinv.fitting import refine

    calls = {"n": 0}

    def fn(model, spectrum, theta_start, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1 and starts:
            res = refine(model, spectrum, theta_start, extra_starts=starts, **kwargs)
            fn.first_stage = {k: res.extra.get(k) for k in ("refine_start", "start_selection", "fallback")}
            return res
        return refine(model, spectrum, theta_start, **kwargs)

    fn.first_stage = {}
    return fn


def record_start(out, first_stage: dict, start_info: dict):
    """``out`` with ``extra["moment_start"]``, ``extra["screen_start"]`` (where the screen ran),
    ``extra["refine_start"]`` (the winning start; with a continuation the first stage's, the later
    stages start from it) and ``start_selection``."""
    start_info = dict(start_info or {})
    screen = start_info.pop("screen", None)
    sel = {
        **first_stage,
        **{k: out.extra[k] for k in ("refine_start", "start_selection") if k in out.extra},
    }
    won = sel.get("refine_start") or "ml"
    if out.extra.get("fallback") and not first_stage:
        won = "none (refinement rejected: the ML answer is kept)"
    extra = {**out.extra, "moment_start": start_info or None, "refine_start": won}
    if screen is not None:
        extra["screen_start"] = screen
    if sel.get("start_selection"):
        extra["start_selection"] = sel["start_selection"]
    return replace(out, extra=extra)
