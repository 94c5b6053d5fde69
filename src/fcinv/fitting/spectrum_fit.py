"""Least-squares fit of θ to a folded I(q, E) image, and the ML-initialised refinement.

The misfit is, over the measured pixels only (the mask),

    r_ij = w_ij · (s · I_ij(θ) + b − y_ij),

with I(θ) the forward model's image, a fitted scale s and flat background b, and
weights w = 1/error where the data carry errors (else 1; a zero error, a pixel with zero
counts, takes the 10th percentile of the positive errors), or, when the folded spectrum carries
its exposure c (Poisson counts folded by fcinv; ``weighting="auto"`` then picks it, ``"poisson"``
asks for it), the signed Poisson deviance residuals sign(μ − y)·√(2c(μ − y + y ln(y/μ))) with
μ = s·I + b (Cash; :func:`fcinv.fitting.image.deviance_residuals`), whose χ² reported is Pearson's
Σ c(y − μ)²/μ with the model variance; plus the prior rows
(θ − μ)/σ of :mod:`fcinv.fitting.priors` (default: the training domain). The forward model
is the paper's :class:`~fcinv.forward.ForwardModel` (analytic Jacobian, below) or any model
with its interface, e.g. the physical model (central-difference Jacobian from one batched
``spectra`` call of 2k + 1 images). It is minimised with
scipy's Levenberg–Marquardt (``least_squares``, method ``lm``) and the analytic
Jacobian: the forward model's dynamical matrix is linear in θ,
D(q; θ) = M_c + Σ_p θ_p M_p, so with eigenpairs (ω²_n, e_n)

    ∂ω²_n/∂θ_p = e_nᵀ M_p e_n,    ∂E_n/∂θ_p = C² / (2 E_n) · ∂ω²_n/∂θ_p   (C: √(eV/Å²/amu) → meV),

and the derivative of each Gaussian line, integrated over an energy bin, with
respect to its centre is a difference of normal densities at the bin edges
(:mod:`fcinv.fitting.image`: the image, its Jacobian and the data as pixels).

Why this backend (Ge, 140 × 80 pixels, 8 parameters, measured on the 2-core dev
machine): one analytic Jacobian costs 3 ms against 250 ms for ``torch.func.jacfwd``
through the differentiable twin; a noiseless fit from 5 % away took 0.11–0.16 s
with LM against 8.5 s with torch autograd + L-BFGS (same optimum), and ``trf``
reaches the same optimum ~15× slower than ``lm`` (its SVD per step dominates).

Each local fit first minimises the residual image smoothed along E (σ =
``presmooth_meV``, the same linear operator on data and model), which widens the
basin of every line, then the exact misfit.

Multi-start (``n_starts > 1``): ``n_candidates`` points are drawn (seeded) from the
box ``domain`` (by default the training domain of the embedded reference), each is
scored by the misfit after the best linear scale and background, and local fits run
from the given start plus the ``n_starts − 1`` best-scoring candidates; the lowest
final cost wins. :func:`refine` scores the ML mean together with the ML model's
per-latent-sample predictions the same way and runs one local fit from the best.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal  # noqa: F401 - kept importable from here (Weighting's former home)

import numpy as np

from fcinv.errors import GridError  # noqa: F401 - kept importable from here
from fcinv.fitting._base import FitError, FitResult, mode_gradients, resolve_free  # noqa: F401
from fcinv.fitting.image import (  # noqa: F401 - the image and Jacobian are importable from here too
    _E_FLOOR_MEV,
    _FWHM_TO_SIGMA,
    _INV_SQRT_2PI,
    Weighting,
    _as_pixels,
    _image_and_jacobian,
    _linear_scale,
    _start_vector,
    _SubsetModel,
    deviance_residuals,
    image_and_jacobian,
    model_with_free,
    pearson_chi2,
    pixel_exposure,
    spectrum_and_jacobian,
)
from fcinv.fitting.priors import (
    STABILITY_MESH,
    STABILITY_TOL_MEV,
    build_prior,
    mesh_lowest_mode,
    posterior_covariance,
    undetermined_directions,
)
from fcinv.fitting.problem import _Problem
from fcinv.fitting.starts import select_from_starts
from fcinv.forward import ForwardModel
from fcinv.units import EV_A2_AMU_TO_MEV  # noqa: F401 - kept importable from here

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- one local fit
def _smoothing_kernel(energy: np.ndarray, width_meV: float) -> np.ndarray:
    """Column-normalised Gaussian smoothing matrix along E, shape (n_E, n_E)."""
    K = np.exp(-0.5 * ((energy[:, None] - energy[None, :]) / width_meV) ** 2)
    return K / K.sum(axis=0, keepdims=True)


def _local_fit(
    prob: _Problem,
    theta0: np.ndarray,
    *,
    max_nfev: int,
    ftol: float,
    xtol: float,
    presmooth_meV: float | None,
):
    """One Levenberg–Marquardt fit from ``theta0`` (scale and background started at their linear optimum).

    With ``presmooth_meV`` a first, loosely converged stage minimises the residual image
    smoothed along E by a Gaussian of that σ (the same linear operator on data and model,
    masked pixels as zeros), which widens the basin of each line; the final stage is the
    exact misfit.
    """
    from scipy.optimize import least_squares

    img, _ = prob._eval(theta0, jac=False)
    s0, b0 = _linear_scale(img[prob.active], prob.y[prob.active], prob.w[prob.active], prob.background)
    if not s0 > 0:
        s0, b0 = float(np.max(np.abs(prob.y)) / max(float(img.max()), 1e-12)), 0.0
    x = np.concatenate([theta0, [s0] + ([b0] if prob.background else [])])
    n0 = prob.n_eval
    nfev = 0
    with np.errstate(over="ignore", invalid="ignore"):
        if presmooth_meV:
            K = _smoothing_kernel(prob.model.grid.energy, float(presmooth_meV))
            nq, ne = prob.mask.shape

            def res_s(x):
                R = np.zeros((nq, ne))
                R[prob.mask] = np.where(prob.active, prob.linear_residual(x), 0.0) / prob.data_scale
                r = (R @ K).ravel()
                return r if prob.prior is None else np.concatenate([r, prob.prior.residual(x[: prob.k])])

            def jac_s(x):
                Jm = prob.linear_jacobian(x) * prob.active[:, None] / prob.data_scale
                J = np.zeros((nq, ne, Jm.shape[1]))
                J[prob.mask] = Jm
                J = np.matmul(K.T, J).reshape(nq * ne, -1)
                if prob.prior is None:
                    return J
                P = np.zeros((prob.k, J.shape[1]))
                P[np.arange(prob.k), np.arange(prob.k)] = 1.0 / prob.prior.sigma
                return np.vstack([J, P])

            pre = least_squares(
                res_s, x, jac=jac_s, method="lm", x_scale="jac", ftol=1e-4, xtol=1e-4, max_nfev=max_nfev
            )
            if np.all(np.isfinite(pre.x)):
                x = pre.x
            nfev += pre.nfev
        res = least_squares(
            prob.residual,
            x,
            jac=prob.jacobian,
            method="lm",
            x_scale="jac",
            ftol=ftol,
            xtol=xtol,
            gtol=ftol,
            max_nfev=max_nfev,
        )
    res.n_eval = prob.n_eval - n0
    res.nfev_total = nfev + res.nfev
    return res


# -------------------------------------------------------------------- public
def fit_spectrum(
    model,
    data,
    *,
    theta_start=None,
    candidates=None,
    free: str | int | Sequence[str] | None = None,
    ranking: Sequence[str] | None = None,
    n_starts: int = 1,
    domain=None,
    n_candidates: int | None = None,
    seed: int = 0,
    weighting: Weighting = "auto",
    fit_background: bool = True,
    prior="domain",
    material_reference=None,
    outliers: bool = True,
    outlier_sigma: float = 5.0,
    max_outlier_fraction: float = 0.02,
    stability_mesh: int = STABILITY_MESH,
    max_nfev: int = 200,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    presmooth_meV: float | None = 2.0,
    absolute_sigma: bool = False,
    strict: bool = False,
    progress: bool = False,
    method_label: str | None = None,
) -> FitResult:
    """Fit θ (with a scale and a flat background) to a measured I(q, E).

    The misfit is the weighted data residual plus the Gaussian prior of
    :mod:`fcinv.fitting.priors` (default: the training domain, centre ± half-width = 2σ), so
    directions of θ the measured pixels do not determine are held instead of drifting. With
    errors the data rows are (s·I + b − y)/error; without errors (uniform weights) their noise
    level is unknown, so a first fit without the prior measures it (rms residual) and the data
    rows are divided by it before the prior is added. Outlying pixels (|r| > ``outlier_sigma``
    × max(1, 1.4826 · median |r|) in those units) are flagged and the fit is redone without them,
    unless more than ``max_outlier_fraction`` of the pixels would be (a systematic misfit: warned).
    The result is trusted (``success``) only when the fit converged and no mode is imaginary on
    the path, on a full-zone mesh (``stability_mesh``³) and, for the paper model, on its own mesh.

    Parameters
    ----------
    model
        The forward model: a :class:`~fcinv.forward.ForwardModel` (analytic Jacobian) or any
        model with its interface (``names``, ``k``, ``theta0``, ``check``, ``full_theta``,
        ``spectra``, ``lowest_energy``, ``grid``; e.g. the physical model; central-difference
        Jacobian from one batched ``spectra`` call). Its grid must be the spectrum's.
        Parameters not free stay at the model's reference values.
    data
        A :class:`~fcinv.experiment.folded.FoldedSpectrum` (mask and errors used), or an
        array of shape (n_q, n_E) with NaN at unmeasured pixels.
    theta_start
        Start of the (first) local fit: ``None`` (the model's reference θ), a dict by
        name, a (k,) or full (n_params,) vector, or an object with ``names``/``theta``
        (an inference ``Prediction``; names it lacks start at the model's ``theta0``).
    candidates
        Optional alternative starts, shape (n, k) in ``model.names`` order: they are scored
        with ``theta_start`` by the misfit after the best linear scale and background,
        and the first local fit starts from the best of them.
    free
        Which parameters to fit instead of the model's own: names, shells, ``"all"`` or
        ``"top:K"`` (needs ``ranking``); see :func:`~fcinv.fitting.resolve_free`.
    ranking
        Parameter names by decreasing sensitivity, for ``"top:K"``.
    n_starts
        Number of local fits (multi-start, see the module docstring).
    domain
        A :class:`~fcinv.dataset.generate.Domain` over (at least) the free names to draw
        starts from; default: the embedded reference's widened training domain.
    n_candidates
        Candidates screened for the multi-start (default 32 × ``n_starts``).
    seed
        Seed of the candidate draw.
    weighting
        ``"auto"``: ``"poisson"`` where the folded spectrum carries its exposure (Poisson counts
        folded by fcinv: the default for them), else 1/error where every measured pixel has one,
        else uniform; ``"poisson"``: the count-honest misfit (module docstring; needs the exposure);
        ``"errors"``: require errors (1/error weights, the former default for counts);
        ``"uniform"``: ignore errors.
    fit_background
        Fit the flat background b (else b = 0).
    prior
        ``"domain"`` (default), ``"weak"``, ``"none"``/None, a
        :class:`~fcinv.fitting.priors.Prior` or a JSON path (:func:`~fcinv.fitting.priors.build_prior`).
    material_reference
        The :class:`~fcinv.reference.MaterialReference` whose training domain is the prior;
        default: the embedded reference of the model's material, if there is one.
    outliers
        Flag outlying pixels and refit without them (False: off).
    outlier_sigma
        The flagging threshold (see above).
    max_outlier_fraction
        When more than this fraction of the pixels would be flagged, the misfit is systematic
        (the forward model, not the pixels): nothing is left out and a warning says so.
    stability_mesh
        N of the Γ-centred N³ mesh of the stability check.
    max_nfev
        Residual evaluations per local fit (per stage) before it stops as not converged.
    ftol, xtol
        ``least_squares`` tolerances (gtol = ftol) of the final stage.
    presmooth_meV
        σ (meV) of the Gaussian smoothing along E in a first, loose stage of every local
        fit (see :func:`_local_fit`); ``None`` or 0 skips it.
    absolute_sigma
        Take the data errors as absolute (s² = 1) in the covariance.
    strict
        Raise :class:`FitError` when the result is not trusted (not converged or unstable);
        default: report it in ``success``/``message``/``extra["warnings"]`` and log a warning.
    progress
        Show a progress bar over the starts.
    method_label
        Overrides the result's ``method`` text.

    Returns
    -------
    FitResult
        θ, σ (Laplace: data and prior) and the fit statistics; ``extra`` holds ``scale``,
        ``background`` (and their σ), ``theta_full`` (every parameter by name),
        ``rms_residual``, ``r_factor``, ``lowest_mode_meV``, ``stable``, ``converged``,
        ``n_pixels``, ``n_used``, ``outliers``, ``undetermined``, ``prior``, ``warnings``,
        ``weighting`` and the per-start summaries ``starts``.

    Raises
    ------
    GridError
        The spectrum is on another grid.
    FitError
        Bad start, weighting or data; with ``strict``, a result that is not trusted.
    """
    t_wall = time.perf_counter()
    space = getattr(model, "space", None)
    if space is not None:
        free_names = resolve_free(space, free, ranking=ranking, default=model.names)
    elif free is None:
        free_names = list(model.names)
    else:
        free_names = [free] if isinstance(free, str) else list(free)
    model = model_with_free(model, free_names)
    y, w, mask, has_errors = _as_pixels(model, data, weighting)
    exposure = pixel_exposure(model, data, weighting)
    n_x = model.k + 1 + int(fit_background)
    if len(y) <= n_x:
        raise FitError(
            f"only {len(y)} measured pixels for {n_x} fitted values. Measure more of the path or fit fewer parameters."
        )
    if n_starts < 1:
        raise FitError(f"n_starts={n_starts}; pass at least 1.")
    theta0 = _start_vector(model, theta_start)
    if candidates is not None:
        cand = np.asarray(candidates, dtype=float)
        if cand.ndim != 2 or cand.shape[1] != model.k or not np.all(np.isfinite(cand)):
            raise FitError(
                f"candidates have shape {cand.shape}; pass a finite (n, {model.k}) array in the order {', '.join(model.names)}."
            )
        theta0 = _best_by_misfit(model, np.vstack([theta0[None], cand]), y, w, mask, fit_background)[0]
    starts = [theta0]
    if n_starts > 1:
        starts += list(
            _screen_starts(
                model, y, w, mask, fit_background, domain, n_starts - 1, n_candidates or 32 * n_starts, seed
            )
        )
    pri = model_prior(model, theta0, prior, material_reference)
    prob = _Problem(model, y, w, mask, fit_background, prior=None, exposure=exposure)
    fit_kw = {"max_nfev": max_nfev, "ftol": ftol, "xtol": xtol, "presmooth_meV": presmooth_meV}
    results = []
    warnings: list[str] = []
    if pri is not None and not has_errors:
        # the noise level of unweighted data, from a fit without the prior
        first = _local_fit(prob, np.asarray(theta0, float), **fit_kw)
        dof0 = len(y) - n_x
        rms_y = float(np.sqrt(np.mean((w * y) ** 2))) or 1.0
        prob.data_scale = (
            max(float(np.sqrt(2.0 * first.cost / max(dof0, 1))), 1e-9 * rms_y)
            if np.isfinite(first.cost)
            else rms_y
        )
        results.append((np.asarray(theta0, float), first, "no prior (noise level)"))
    prob.prior = pri
    bar = None
    if progress and len(starts) > 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(starts), desc="fit starts", unit="fit")
    fits = []
    try:
        for t0 in starts:
            res = _local_fit(prob, np.asarray(t0, float), **fit_kw)
            fits.append((t0, res))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(best=f"{min(r.cost for _, r in fits):.4g}")
    finally:
        if bar is not None:
            bar.close()
    best_start, best = min(fits, key=lambda tr: (not np.isfinite(tr[1].cost), tr[1].cost))
    # outlying pixels: flag, refit without them
    flagged_idx = np.zeros(0, dtype=int)
    if outliers and np.all(np.isfinite(best.x)):
        r = prob.data_residual(best.x) / prob.data_scale
        exact = (not has_errors) and prob.data_scale <= 1e-5 * (float(np.sqrt(np.mean((w * y) ** 2))) or 1.0)
        scale = max(1.0, 1.4826 * float(np.median(np.abs(r))))
        bad = np.abs(r) > outlier_sigma * scale
        if not exact and np.mean(bad) > max_outlier_fraction:
            warnings.append(
                f"{int(bad.sum())} pixels ({100 * np.mean(bad):.1f} %) lie beyond {outlier_sigma:g}× the robust scale: a systematic misfit of the "
                f"forward model, not outliers (none left out; more than {100 * max_outlier_fraction:g} % would be)"
            )
        elif not exact and np.any(bad) and int((~bad).sum()) > n_x:
            prob.active = ~bad
            flagged_idx = np.nonzero(bad)[0]
            again = _local_fit(prob, best.x[: model.k].copy(), **{**fit_kw, "presmooth_meV": None})
            if np.isfinite(again.cost):
                best = again
    theta, scale_, bg = prob.split(best.x)
    act = prob.active
    n_used = int(act.sum())
    dof = n_used - n_x
    r_s = prob.data_residual(best.x)[act] / prob.data_scale
    J_s = prob.data_jacobian(best.x)[act] / prob.data_scale
    chi2_s = float(np.sum(r_s**2))
    deviance = None
    if exposure is not None:  # goodness of fit: Pearson's χ² with the model variance (deviance beside)
        deviance = chi2_s
        chi2_s = pearson_chi2(prob.mean(best.x)[act], y[act], exposure[act], prob.mu0)
    prec = np.zeros(n_x)
    if pri is not None:
        prec[: model.k] = 1.0 / pri.sigma**2
    cov = posterior_covariance(J_s, chi2_s, dof, prec, absolute_sigma=absolute_sigma and has_errors)
    sig = np.sqrt(np.diag(cov))
    undetermined = undetermined_directions(J_s[:, : model.k], model.names, pri)
    lowest, low_where = _lowest_mode(model, theta, stability_mesh)
    stable = lowest > -STABILITY_TOL_MEV
    converged = bool(best.status > 0 and np.isfinite(best.cost))
    msg = best.message
    if not converged:
        warnings.append(
            f"NOT CONVERGED after {best.nfev_total} evaluations ({best.message}): start closer (e.g. from the ML prediction), use n_starts > 1 or raise max_nfev"
        )
    if not stable:
        warnings.append(
            f"DYNAMICALLY UNSTABLE: lowest mode {lowest:.2f} meV ({low_where}); the result is not a physical crystal"
        )
    if undetermined:
        held = "held by the prior" if pri is not None else "unconstrained (no prior)"
        warnings.append(
            f"{len(undetermined)} direction(s) the measured pixels do not determine, {held}: "
            + "; ".join(d["label"] for d in undetermined)
        )
    if len(flagged_idx):
        warnings.append(
            f"{len(flagged_idx)} outlying pixel(s) flagged (|r| > {outlier_sigma:g}× the robust scale) and left out"
        )
    success = converged and stable
    if not success:
        text = "; ".join(x for x in warnings if x.startswith(("NOT", "DYN")))
        if strict:
            if not converged:
                raise FitError(
                    f"the I(q, E) fit did not converge after {best.nfev_total} evaluations ({best.message}). Start closer, use n_starts > 1 or raise max_nfev."
                )
            raise FitError(f"the I(q, E) fit is not trusted: {text}.")
        log.warning("the I(q, E) fit is not trusted: %s", text)
        msg += " [" + "; ".join(x.split(":")[0] for x in warnings if x.startswith(("NOT", "DYN"))) + "]"
        if not converged:
            msg += f" (the I(q, E) fit did not converge after {best.nfev_total} evaluations)"
    chi2 = chi2_s if has_errors else None
    full = model.full_theta(theta)[0]
    wy = w * y
    cost_data = 0.5 * float(np.sum(prob.data_residual(best.x)[act] ** 2))
    is_paper = isinstance(model, ForwardModel)
    label = method_label or (
        "least squares (scipy Levenberg-Marquardt, "
        + ("analytic" if is_paper else "central-difference")
        + " Jacobian) to I(q,E) with a Gaussian prior, "
        + f"{len(starts)} start(s)"
        + (f" (best of {n_candidates or 32 * n_starts} screened)" if n_starts > 1 else "")
    )
    all_names = list(space.names) if space is not None else list(model.names)
    pix = np.argwhere(mask)
    extra = {
        "material": space.crystal.name if space is not None else "",
        # distinct distances, as load_reference counts them (diamond's 7NN and 8NN are one shell)
        "n_shells": _shell_count(space) if space is not None else None,
        "forward_model": "paper (weight 1)" if is_paper else type(getattr(model, "base", model)).__name__,
        "scale": scale_,
        "scale_sigma": float(sig[model.k]),
        "background": bg,
        "background_sigma": float(sig[model.k + 1]) if fit_background else 0.0,
        "theta_full": dict(zip(all_names, np.asarray(full, float).tolist())),
        "free": list(model.names),
        "reference_fc": "full FC set" if getattr(model, "reference", None) is not None else "theta_ref",
        "rms_residual": float(np.sqrt(2.0 * cost_data / max(n_used, 1))),
        "r_factor": float(np.sqrt(2.0 * cost_data / max(float(np.sum(wy[act] ** 2)), 1e-300))),
        "lowest_mode_meV": lowest,
        "lowest_mode_where": low_where,
        "stability_mesh": int(stability_mesh),
        "stable": bool(stable),
        "converged": converged,
        "n_pixels": len(y),
        "n_used": n_used,
        "outliers": [[int(a), int(b)] for a, b in pix[flagged_idx]][:1000],
        "n_outliers": len(flagged_idx),
        "outlier_rejection": f"flag |r| > {outlier_sigma:g} max(1, 1.4826 median|r|), refit"
        if outliers
        else "off",
        "undetermined": undetermined,
        "prior": None if pri is None else pri.as_dict(),
        "prior_chi2": None if pri is None else float(np.sum(pri.residual(theta) ** 2)),
        "data_noise_scale": float(prob.data_scale),
        "warnings": warnings,
        "weighting": "poisson" if exposure is not None else ("errors" if has_errors else "uniform"),
        "deviance": deviance,
        "grid_fingerprint": model.grid.fingerprint(),
        "starts": [
            {
                "theta_start": [float(v) for v in t0],
                "cost": float(r.cost),
                "success": bool(r.status > 0),
                "n_eval": int(r.n_eval),
            }
            for t0, r in fits
        ],
    }
    return FitResult(
        names=list(model.names),
        theta=np.asarray(theta, float).copy(),
        sigma=sig[: model.k],
        covariance=cov[: model.k, : model.k],
        theta_start=np.asarray(best_start, float).copy(),
        cost=float(best.cost),
        dof=int(dof),
        chi2=chi2,
        n_iter=int(best.n_eval),
        wall_s=time.perf_counter() - t_wall,
        success=success,
        message=msg,
        method=label,
        n_eval_total=int(sum(r.n_eval for _, r in fits) + sum(r.n_eval for _, r, _ in results)),
        extra=extra,
    )


def model_prior(model, start: np.ndarray, prior, material_reference=None):
    """The fit's prior for ``model`` (:func:`~fcinv.fitting.priors.build_prior`); ``prior="domain"``
    without a ``material_reference`` uses the embedded reference of the model's material at its
    shell count, where there is one."""
    space = getattr(model, "space", None)
    if (
        material_reference is None
        and isinstance(prior, str)
        and prior.lower() == "domain"
        and space is not None
    ):
        material_reference = _embedded_reference(space)
    return build_prior(model.names, start, spec=prior, ref=material_reference)


def _embedded_reference(space):
    """The embedded reference of the space's material at the space's shell count, or None."""
    from fcinv.errors import DataError, MaterialError

    try:
        from fcinv.reference import load_reference, shell_count

        return load_reference(space.crystal.name, shell_count(space))
    except (MaterialError, DataError, KeyError, OSError):
        return None


def _lowest_mode(model, theta: np.ndarray, mesh: int) -> tuple[float, str]:
    """Lowest signed mode (meV) over the model's own check and a full-zone ``mesh``³ mesh, and where."""
    lo = float(model.lowest_energy(theta)[0])
    where = "path / the model's own mesh"
    space = getattr(model, "space", None)
    if space is not None and hasattr(model, "theta_ref"):
        try:
            full = np.asarray(model.full_theta(theta)[0], float)
            m_lo, q = mesh_lowest_mode(
                space, full, reference=getattr(model, "reference", None), theta_ref=model.theta_ref, mesh=mesh
            )
        except Exception as exc:  # noqa: BLE001 - a model without the paper layout: its own check only
            log.info("full-zone mesh check skipped (%s)", exc)
        else:
            if m_lo < lo:
                lo, where = m_lo, f"at q = {np.round(q, 3).tolist()} r.l.u. on the {mesh}³ mesh"
    return lo, where


def _screen_starts(model, y, w, mask, background, domain, n_keep, n_candidates, seed) -> np.ndarray:
    """The ``n_keep`` best of ``n_candidates`` seeded draws from ``domain`` (by linear-scaled misfit)."""
    dom = _domain_for(model, domain)
    rng = np.random.default_rng(seed)
    cand = dom.sample(max(n_candidates, n_keep), rng)
    cand = cand[model.is_stable(cand)] if len(cand) else cand
    if len(cand) < n_keep:
        log.warning("only %d of %d multi-start candidates are dynamically stable", len(cand), n_candidates)
        extra = dom.sample(n_keep - len(cand), rng)
        cand = np.vstack([cand, extra]) if len(cand) else extra
    return _best_by_misfit(model, cand, y, w, mask, background)[:n_keep]


def _best_by_misfit(model, cand: np.ndarray, y, w, mask, background) -> np.ndarray:
    """``cand`` (n, k) sorted by increasing misfit after the best linear scale and background."""
    imgs = model.spectra(cand).astype(np.float64)[:, mask]
    costs = np.empty(len(cand))
    for i, img in enumerate(imgs):
        s, b = _linear_scale(img, y, w, background)
        costs[i] = float(np.sum((w * (s * img + b - y)) ** 2))
    return cand[np.argsort(costs, kind="stable")]


def _domain_for(model: ForwardModel, domain):
    """A Domain over the model's free names: ``domain`` reordered, or the reference's training domain."""
    from fcinv.dataset.generate import Domain

    if domain is None:
        from fcinv.errors import DataError, MaterialError
        from fcinv.reference import load_reference

        try:
            ref = load_reference(model.space.crystal.name)
        except (MaterialError, DataError) as exc:
            raise FitError(
                f"multi-start needs a domain to draw starts from, and {model.space.crystal.name} has no embedded reference ({exc}). Pass domain=Domain(...)."
            ) from None
        from fcinv.fitting.priors import training_domain

        return training_domain(ref, list(model.names))
    if not isinstance(domain, Domain):
        raise FitError(f"domain must be a fcinv.dataset.generate.Domain, not {type(domain).__name__}.")
    missing = [n for n in model.names if n not in domain.names]
    if missing:
        raise FitError(
            f"the multi-start domain lacks the free parameters {missing}. Pass a Domain over {model.names}."
        )
    idx = [domain.names.index(n) for n in model.names]
    return Domain(tuple(model.names), domain.low[idx], domain.high[idx])


def refine(
    model, folded_spectrum, theta_start, *, fallback: bool = True, extra_starts=None, **kwargs
) -> FitResult:
    """ML-initialised refinement: one local least-squares fit started from an ML estimate.

    This is what ``fcinv infer --refine`` calls with the VAE's mean θ. With ``fallback`` (the
    default) a refinement that is not trusted (did not converge, or its θ is dynamically
    unstable) does not replace the ML answer: the result then carries the start θ unchanged
    (and the prediction's σ where it has them), ``success=False``, the reason in ``message``
    and ``extra["warnings"]``, and the rejected fit in ``extra["rejected_fit"]``.

    Parameters
    ----------
    model
        The forward model of the material, varying the predicted parameters (e.g.
        ``load_reference("Ge").forward_model()``), or the physical model; ``free="all"``
        (with a model varying every parameter) refines everything, unpredicted names starting
        at the model's ``theta0``.
    folded_spectrum
        The measured I(q, E): a FoldedSpectrum or an (n_q, n_E) array (NaN = unmeasured).
    theta_start
        The ML estimate: an inference ``Prediction`` (matched by name; its per-latent-sample
        predictions ``samples``, when present, are screened by misfit with the mean and the
        fit starts from the best), a dict by name, or a (k,) vector in ``model.names`` order.
    fallback
        Return the ML answer (``success=False``) instead of an untrusted fit.
    extra_starts
        Further starts besides the ML one (the start-selection hook): a sequence of
        ``(label, theta, model_or_None)``, θ in ``model.names`` order (e.g. the energy-moment start
        of :func:`fcinv.fitting.moments.moment_start`), each fitted with its own model where one is
        given (a model re-centred at that θ) else ``model``. One local fit runs from the ML start
        and one from each of these; the answer is the trusted fit (converged and stable) of lowest
        data misfit (:func:`select_start`); ``extra["refine_start"]`` names the winning start and
        ``extra["start_selection"]`` lists every fit. ``None`` (default): the ML start only.
    **kwargs
        Passed to :func:`fit_spectrum` (``free``, ``prior``, ``weighting``, ``max_nfev``,
        ``strict`` ...); ``n_starts`` is 1.

    Returns
    -------
    FitResult
        As :func:`fit_spectrum`; ``method`` says it was ML-initialised.
    """
    if kwargs.pop("n_starts", 1) != 1:
        raise FitError(
            "refine runs one local fit from the ML estimate; use fit_spectrum(n_starts=...) for a multi-start fit."
        )
    free = kwargs.get("free")
    space = getattr(model, "space", None)
    fit_model = model_with_free(
        model,
        resolve_free(space, free, default=model.names)
        if space is not None and free is not None
        else (free or model.names),
    )
    samples = getattr(theta_start, "samples", None)
    if kwargs.get("candidates") is None and samples is not None and hasattr(theta_start, "names"):
        kwargs["candidates"] = _rows_for(fit_model, theta_start.names, np.asarray(samples, float))
    label = "ML-initialised refinement: least squares (scipy Levenberg-Marquardt) with the training-domain prior, from the ML estimate"
    if kwargs.get("candidates") is not None:
        label += f" (best of it and {len(kwargs['candidates'])} latent-sample predictions by misfit)"
    kwargs.setdefault("method_label", label)
    strict = bool(kwargs.pop("strict", False))
    res = fit_spectrum(
        model,
        folded_spectrum,
        theta_start=theta_start,
        n_starts=1,
        strict=strict and not extra_starts,
        **kwargs,
    )
    if extra_starts:
        res = select_from_starts(
            model, fit_model, folded_spectrum, res, extra_starts, kwargs, strict, fit_spectrum
        )
    if res.success or not fallback:
        return res
    start = _start_vector(fit_model, theta_start)
    sig = np.full(len(start), np.nan)
    if hasattr(theta_start, "names") and getattr(theta_start, "sigma", None) is not None:
        by = dict(zip(theta_start.names, np.asarray(theta_start.sigma, float)))
        sig = np.array([by.get(n, np.nan) for n in fit_model.names])
    reason = (
        "; ".join(w for w in res.extra.get("warnings", []) if w.startswith(("NOT", "DYN"))) or res.message
    )
    log.warning("refinement rejected (%s); returning the ML answer unchanged", reason)
    extra = dict(res.extra)
    extra["rejected_fit"] = {
        "theta": res.theta_dict(),
        "message": res.message,
        "cost": res.cost,
        "lowest_mode_meV": res.extra.get("lowest_mode_meV"),
    }
    extra["fallback"] = "refinement rejected: the ML answer is returned unchanged"
    extra["warnings"] = [f"REFINEMENT REJECTED ({reason}): the ML answer is returned unchanged"] + list(
        res.extra.get("warnings", [])
    )
    full = fit_model.full_theta(start)[0]
    all_names = list(space.names) if space is not None else list(fit_model.names)
    extra["theta_full"] = dict(zip(all_names, np.asarray(full, float).tolist()))
    return FitResult(
        names=list(fit_model.names),
        theta=start.copy(),
        sigma=sig,
        covariance=np.diag(sig**2),
        theta_start=start.copy(),
        cost=res.cost,
        dof=res.dof,
        chi2=res.chi2,
        n_iter=res.n_iter,
        wall_s=res.wall_s,
        success=False,
        message=f"refinement rejected ({reason}); the ML answer is returned unchanged",
        method=res.method,
        n_eval_total=res.n_eval_total,
        extra=extra,
    )


def _rows_for(model: ForwardModel, names, rows: np.ndarray) -> np.ndarray:
    """Rows of values for ``names`` → rows in ``model.names`` order (missing names at the model's reference)."""
    names = list(names)
    unknown = [n for n in names if n not in model.space.names]
    if unknown:
        raise FitError(
            f"the prediction's parameters {unknown} are not parameters of {model.space.crystal.name}. Use the material's model."
        )
    out = np.repeat(model.theta0[None], len(rows), axis=0)
    for j, n in enumerate(model.names):
        if n in names:
            out[:, j] = rows[:, names.index(n)]
    return out


def _shell_count(space) -> int:
    from fcinv.reference import shell_count

    return shell_count(space)
