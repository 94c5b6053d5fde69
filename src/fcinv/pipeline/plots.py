"""Figures of a Stage III run: measured, model at the answer and their residual; the inferred dispersion
with its σ band beside the reference; the phonon DOS; single-orientation scans."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from fcinv.plotting import (
    INTENSITY_LABEL,
    dispersion_band,
    new_figure,
    phonon_dos,
    plot_dispersion,
    plot_dos,
    plot_residual,
    plot_spectrum,
    save_figure,
    scaled_model,
    theta_samples,
)


def measured_image(run) -> np.ndarray:
    """The input as the model saw it (scaled when the prediction carries it), NaN where not measured."""
    fs, pred = run.spectrum, run.prediction
    scaled = getattr(pred, "spectrum", None)
    return np.where(fs.mask, scaled if scaled is not None else fs.intensity, np.nan).astype(float)


def fitted_model(pipeline, run, measurement=None, load_options: dict | None = None):
    """The forward model the run's answer was fitted with, and the image it was fitted to.

    A refined answer was fitted with :meth:`Pipeline.refinement_model
    <fcinv.pipeline.core.Pipeline.refinement_model>` of the measurement: for a physical-intensity
    model and a 4D volume a :class:`~fcinv.forward.physical.PhysicalModel` of its coverage, fitted
    to the raw fold (no one-phonon corrections); that model is rebuilt from ``measurement`` (the
    Volume4D, or what :meth:`Pipeline.load <fcinv.pipeline.core.Pipeline.load>` takes, with
    ``load_options``; loaded only when the refinement's model is not the pipeline's forward model).
    Otherwise (an ML answer, a refinement with the pipeline's forward model) it is
    ``pipeline.forward_model`` and the image is the run's input.

    Returns
    -------
    tuple
        ``(model, measured, label)``: the model (over the continued space when the refinement
        continued into more shells), the image it was fitted to (NaN where not measured; None: the
        run's input as :func:`measured_image` shows it) and the model's label for the figure.
    """
    from fcinv.experiment.folded import FoldedSpectrum
    from fcinv.experiment.volume import Volume4D
    from fcinv.forward.physical import PhysicalModel

    fm = pipeline.forward_model
    res = run.result
    measured = None
    label = type(fm).__name__
    kind = res.adequacy.get("refinement_model") if "ml" in res.parts else None
    if kind is not None and kind != type(fm).__name__:
        if measurement is None:
            label = f"{label} (not the {kind} the refinement fitted: pass the measurement)"
        else:
            m = measurement
            if not isinstance(m, (Volume4D, FoldedSpectrum)):
                m = pipeline.load(m, **(load_options or {}))
            fm, _ = pipeline.refinement_model(m)
            label = f"{type(fm).__name__} (the refinement's model)"
            if isinstance(fm, PhysicalModel) and fm.corrections is None and isinstance(m, Volume4D):
                raw = pipeline.fold(
                    m, source="the measurement (raw fold of the physical refinement)", raw=True
                )
                measured = np.where(raw.mask, raw.intensity, np.nan).astype(float)
    ref_n = pipeline.continued_reference(res)
    if ref_n is not None:
        # a refinement continued into more shells: the same kind of model over the result's own space
        from fcinv.fitting.continuation import model_in_space

        fm = model_in_space(fm, ref_n.space, ref_n.theta_ref, free=list(res.names))
    return fm, measured, label


def inversion_extras(
    pipeline,
    run,
    *,
    samples: int = 200,
    seed: int = 0,
    dos: bool = False,
    dos_mesh: int = 16,
    measurement=None,
    load_options: dict | None = None,
) -> dict:
    """What :func:`plot_inversion` draws beyond the run itself, computed with the run's pipeline.

    - ``model_spectrum``, ``model_label``: the I(q, E) at the answer θ of the model the answer was
      fitted with (:func:`fitted_model`: for a physical refinement of a 4D volume, given as
      ``measurement``, its PhysicalModel, with ``measured_spectrum`` the raw fold it fitted, so that
      the residual panel shows the fit's misfit), and its label;
    - ``truth_frequencies``, ``truth_label``: the reference's dispersion (the forward model at its
      reference θ; replace them with a known truth);
    - ``band``, ``band_label``: the 1σ band of the dispersion over θ samples
      (:func:`~fcinv.plotting.theta_samples`: the VAE's latent samples for an ML answer, a Gaussian
      draw from θ ± covariance or σ otherwise; the label says which);
    - with ``dos``: ``dos``, the phonon DOS of the answer and of the material's reference
      (phonopy, ``dos_mesh``³; a few seconds for the first call of a material).

    Parameters
    ----------
    pipeline
        The :class:`~fcinv.pipeline.core.Pipeline` that made ``run``.
    run
        An :class:`~fcinv.pipeline.core.InversionRun`.

    Returns
    -------
    dict
        Keyword arguments of :func:`plot_inversion`.
    """
    fm = pipeline.forward_model
    res = run.result
    d = res.theta_dict()
    ref_n = pipeline.continued_reference(res)
    if ref_n is not None:
        # a refinement continued into more shells: the same kind of model over the result's own space
        from fcinv.fitting.continuation import model_in_space

        fm = model_in_space(fm, ref_n.space, ref_n.theta_ref, free=list(res.names))
    fit, measured, label = fitted_model(pipeline, run, measurement, load_options)
    theta_fit = np.array([d[n] for n in fit.names], float)
    out: dict = {
        "model_spectrum": np.asarray(fit.spectra(theta_fit[None])[0], float),
        "model_label": label,
    }
    if measured is not None:
        out["measured_spectrum"] = measured
        out["measured_label"] = "measured (raw fold: what the refinement fitted)"
    th, kind = theta_samples(res, run.prediction, n=samples, seed=seed)
    idx = [list(res.names).index(n) for n in fm.names]
    out["band"] = dispersion_band(fm.frequencies(th[:, idx]))
    out["band_label"] = textwrap.fill(f"±1σ band: {kind}", 48)
    mat = pipeline.material
    who = f" ({mat.reference.reference_member})" if mat.reference_available else ""
    fm0 = pipeline.forward_model
    out["truth_frequencies"] = np.asarray(fm0.frequencies(np.asarray(fm0.theta0)[None])[0])
    out["truth_label"] = f"reference{who}"
    if dos:
        own = pipeline.reference
        n_shells = (ref_n or own).n_shells if (ref_n or own) is not None else None
        curves = {"inferred θ": phonon_dos(mat, d, mesh=dos_mesh, n_shells=n_shells)}
        if mat.reference_available:
            curves[f"reference ({mat.reference.reference_member})"] = phonon_dos(mat, None, mesh=dos_mesh)
        out["dos"] = curves
    return out


def plot_inversion(path: str | Path, run, *, title: str = "", **panels) -> Path:
    """Write :func:`inversion_figure` of ``run`` (keywords: its panels' inputs) to ``path``, titled ``title``.

    Parameters
    ----------
    run
        An :class:`~fcinv.pipeline.core.InversionRun`.
    **panels
        ``truth_frequencies``, ``truth_label``, ``model_spectrum``, ``model_label``, ``band``,
        ``band_label``, ``dos``, ``measured_spectrum``, ``measured_label``
        (:func:`inversion_figure`; :func:`inversion_extras` computes them).
    """
    return save_figure(inversion_figure(run, **panels), path, title=title)


def inversion_figure(
    run,
    *,
    truth_frequencies: np.ndarray | None = None,
    truth_label: str = "truth",
    model_spectrum: np.ndarray | None = None,
    model_label: str = "model",
    band: tuple[np.ndarray, np.ndarray] | None = None,
    band_label: str = "±1σ",
    dos: dict | None = None,
    measured_spectrum: np.ndarray | None = None,
    measured_label: str | None = None,
):
    """The inversion figure: measured | model at the answer | data − model; dispersion ± σ |
    VAE reconstruction | phonon DOS (the panels whose inputs are given), as a matplotlib Figure.

    Parameters
    ----------
    run
        An :class:`~fcinv.pipeline.core.InversionRun`.
    truth_frequencies
        Shape (n_q, n_modes) meV: a known (or reference) dispersion, drawn dashed as ``truth_label``.
    model_spectrum
        Shape (n_q, n_E): the forward model at the answer θ; drawn on the measured image's scale
        (least-squares scale and background over the measured pixels), with the residual
        measured − model on a diverging map centred at 0; ``model_label`` names the model.
    band, band_label
        The dispersion's 1σ band (lower, upper; each (n_q, n_modes) meV) and what it was drawn from.
    dos
        Label → (E meV, g(E) per meV): phonon DOS curves (the first solid, the others dashed).
    measured_spectrum, measured_label
        Shape (n_q, n_E), NaN where not measured: the image the model was fitted to when it is not
        the run's input (a physical refinement fits the raw fold); drawn in the data panel and used
        for the residual.

    :func:`inversion_extras` computes ``model_spectrum``, ``band`` and ``dos`` from the pipeline.
    """
    rec = getattr(run.prediction, "reconstruction", None)
    grid = run.spectrum.grid
    shown = measured_image(run) if measured_spectrum is None else np.asarray(measured_spectrum, float)
    vmax = float(np.nanpercentile(shown, 99.5)) if np.any(np.isfinite(shown)) else 1.0
    panels = ["data"]
    if model_spectrum is not None:
        panels += ["model", "residual"]
    panels.append("dispersion")
    if rec is not None:
        panels.append("reconstruction")
    if dos:
        panels.append("dos")
    cols = 3 if len(panels) > 2 else len(panels)
    rows = -(-len(panels) // cols)
    fig, axes = new_figure(rows, cols, figsize=(5.0 * cols, 3.7 * rows), dpi=120, squeeze=False)
    ax_of = dict(zip(panels, axes.ravel()))
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    scaled = measured_spectrum is None and getattr(run.prediction, "spectrum", None) is not None
    cbar = INTENSITY_LABEL + (" (scaled input)" if scaled else "")
    plot_spectrum(
        ax_of["data"],
        shown,
        grid,
        frequencies=run.frequencies,
        title=f"{measured_label or 'measured'} (grey: not measured), inferred dispersion",
        vmax=vmax,
        colorbar=cbar,
    )
    if model_spectrum is not None:
        model = scaled_model(model_spectrum, shown)
        plot_spectrum(
            ax_of["model"],
            np.where(np.isfinite(shown), model, np.nan),
            grid,
            title=f"{model_label} at the answer θ (scale, background: least squares)",
            vmax=vmax,
            colorbar=cbar,
        )
        plot_residual(ax_of["residual"], shown - model, grid, title="residual: measured − model")
    plot_dispersion(
        ax_of["dispersion"],
        grid,
        run.frequencies,
        band=band,
        band_label=band_label,
        label="inferred θ" + (" (refined)" if "ml" in run.result.parts else " (ML)"),
        reference=truth_frequencies,
        reference_label=truth_label,
        title="dispersion of the answer" + (", ±1σ band" if band is not None else ""),
    )
    if rec is not None:
        plot_spectrum(
            ax_of["reconstruction"], rec, grid, title="VAE reconstruction", colorbar=INTENSITY_LABEL
        )
    if dos:
        plot_dos(ax_of["dos"], dos, title="phonon DOS (phonopy mesh)")
    return fig


def plot_single_scans(
    path: str | Path,
    scans,
    truth: np.ndarray,
    full: np.ndarray,
    scale: np.ndarray,
    reference_label: str = "truth",
) -> Path:
    """Write :func:`single_scans_figure` to ``path``."""
    return save_figure(single_scans_figure(scans, truth, full, scale, reference_label), path)


def single_scans_figure(
    scans, truth: np.ndarray, full: np.ndarray, scale: np.ndarray, reference_label: str = "truth"
):
    """Per-FC scatter over orientations and the deviation versus angle (the paper's Fig. 4e–f).

    The parameters run down the y-axis (one labelled row each, so long names never collide);
    deviations are from ``truth`` (the known truth of a simulation, or the full-run answer for
    real data, as the paper does), in units of ``scale`` (the training domain's width per
    parameter), so parameters near zero stay readable.

    Parameters
    ----------
    scans
        :class:`~fcinv.pipeline.core.OrientationScans`.
    truth, full, scale
        Shape (k,) eV/Å²: the reference θ, the full-run answer, the domain widths.
    """
    th, psi, names = scans.theta, scans.psi, list(scans.names)
    k = len(names)
    fig, (a, b) = new_figure(
        1, 2, figsize=(11, max(3.6, 0.32 * k + 1.4)), dpi=120, gridspec_kw={"width_ratios": [1.3, 1]}
    )
    dev = (th - truth) / scale
    sc = None
    y = np.arange(k)
    for i in range(k):
        sc = a.scatter(
            dev[:, i], np.full(len(psi), i) + np.linspace(-0.25, 0.25, len(psi)), c=psi, cmap="viridis", s=12
        )
    if reference_label != "full run":
        a.scatter((full - truth) / scale, y, marker="|", s=200, color="k", label="full run")
    a.axvline(0, color="tab:red", lw=0.8, label=reference_label)
    a.set_yticks(y)
    a.set_yticklabels([f"FC{i}  {n}" for i, n in enumerate(names)], fontsize=8)
    a.set_ylim(k - 0.5, -0.5)
    a.set_xlabel(f"(prediction − {reference_label}) / domain width", fontsize=8)
    a.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    if sc is not None:
        fig.colorbar(sc, ax=a, label="ψ (deg)")
    b.plot(psi, np.mean(dev**2, axis=1), "o-", ms=3)
    b.set_xlabel("sample rotation ψ (deg)")
    b.set_ylabel(
        f"mean squared deviation from {reference_label}\n(domain widths², FC0–FC{k - 1})", fontsize=8
    )
    b.set_title("single-orientation scans", fontsize=9)
    return fig
