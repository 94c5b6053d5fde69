"""Figures of a Stage III run: input, reconstruction and inferred dispersion; single-orientation scans."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinv.plotting import new_figure, plot_spectrum, save_figure


def plot_inversion(
    path: str | Path, run, *, title: str = "", truth_frequencies: np.ndarray | None = None
) -> Path:
    """Input, VAE reconstruction (when there is one) and the inferred dispersion over the input.

    Parameters
    ----------
    run
        An :class:`~fcinv.pipeline.core.InversionRun`.
    truth_frequencies
        Shape (n_q, n_modes) meV: a known dispersion drawn dashed.
    """
    fs, pred = run.spectrum, run.prediction
    rec = getattr(pred, "reconstruction", None)
    scaled = getattr(pred, "spectrum", None)
    n = 3 if rec is not None else 2
    fig, axes = new_figure(1, n, figsize=(4.2 * n, 3.4), dpi=120, sharey=True)
    grid = fs.grid
    shown = np.where(fs.mask, scaled if scaled is not None else fs.intensity, np.nan)
    plot_spectrum(axes[0], shown, grid, title="input (scaled; grey = not measured)")
    if rec is not None:
        plot_spectrum(axes[1], rec, grid, title="VAE reconstruction")
    plot_spectrum(
        axes[-1],
        shown,
        grid,
        frequencies=run.frequencies,
        title="inferred dispersion over the input",
        label="inferred",
    )
    if truth_frequencies is not None:
        x = np.arange(grid.n_q) + 0.5
        for m in range(truth_frequencies.shape[1]):
            axes[-1].plot(
                x,
                truth_frequencies[:, m],
                ls="--",
                color="tab:red",
                lw=0.7,
                label="truth" if m == 0 else None,
            )
        axes[-1].legend(loc="upper right", fontsize=7)
    for ax in axes[1:]:
        ax.set_ylabel("")
    return save_figure(fig, path, title=title)


def plot_single_scans(
    path: str | Path,
    scans,
    truth: np.ndarray,
    full: np.ndarray,
    scale: np.ndarray,
    reference_label: str = "truth",
) -> Path:
    """Per-FC scatter over orientations and the deviation versus angle (the paper's Fig. 4e–f).

    Deviations are from ``truth`` (the known truth of a simulation, or the full-run answer for
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
    fig, (a, b) = new_figure(1, 2, figsize=(10, 3.6), dpi=120)
    k = len(names)
    dev = (th - truth) / scale
    sc = None
    for i in range(k):
        sc = a.scatter(
            np.full(len(psi), i) + np.linspace(-0.2, 0.2, len(psi)), dev[:, i], c=psi, cmap="viridis", s=12
        )
    if reference_label != "full run":
        a.scatter(np.arange(k), (full - truth) / scale, marker="_", s=300, color="k", label="full run")
    a.axhline(0, color="tab:red", lw=0.8, label=reference_label)
    a.set_xticks(range(k))
    a.set_xticklabels([f"FC{i}\n{n}" for i, n in enumerate(names)], fontsize=7)
    a.set_ylabel(f"(prediction − {reference_label}) / domain width", fontsize=8)
    a.legend(fontsize=7)
    if sc is not None:
        fig.colorbar(sc, ax=a, label="ψ (deg)")
    b.plot(psi, np.mean(dev**2, axis=1), "o-", ms=3)
    b.set_xlabel("sample rotation ψ (deg)")
    b.set_ylabel(
        f"mean squared deviation from {reference_label}\n(domain widths², FC0–FC{k - 1})", fontsize=8
    )
    b.set_title("single-orientation scans", fontsize=9)
    return save_figure(fig, path)
