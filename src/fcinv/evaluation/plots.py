"""Figures of the evaluation, drawn with matplotlib's object API (no pyplot, no global backend).

Every function returns a ``matplotlib.figure.Figure``; :func:`save` writes it as PNG
atomically. Spectra are drawn as images with q along x (path ticks and labels of
the grid) and energy (meV) along y.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fcinv.grid import SpectrumGrid
from fcinv.plotting import E_LABEL, INTENSITY_LABEL, Q_LABEL


def save(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, dpi=dpi)
    os.replace(tmp, path)
    return path


def _grid_shape(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return -(-n // cols), cols


def show_spectrum(ax, spectrum: np.ndarray, grid: SpectrumGrid, title: str = "", vmax: float | None = None):
    """Draw one (n_q, n_E) spectrum on ``ax`` (q-path and E (meV) labelled); returns the image."""
    e = grid.energy_edges
    im = ax.imshow(
        np.asarray(spectrum).T,
        origin="lower",
        aspect="auto",
        cmap="viridis",
        vmin=0,
        vmax=vmax,
        extent=(0, grid.n_q, e[0], e[-1]),
        interpolation="nearest",
    )
    grid.plot_axes(ax)
    ax.set_xlabel(Q_LABEL, fontsize=8)
    ax.set_ylabel(E_LABEL)
    if title:
        ax.set_title(title, fontsize=9)
    return im


def _shared_colorbar(fig: Figure, im) -> None:
    """One intensity colourbar for every panel of ``fig`` (they share the colour scale)."""
    fig.colorbar(im, ax=fig.axes, shrink=0.8, label=INTENSITY_LABEL)


def parity(
    theta: np.ndarray, pred: np.ndarray, names, r2: np.ndarray, mae: np.ndarray, title: str = ""
) -> Figure:
    """Predicted vs true θ, one panel per parameter, with R² and MAE."""
    k = len(names)
    rows, cols = _grid_shape(k)
    fig = Figure(figsize=(3.0 * cols, 2.9 * rows), layout="constrained")
    for j in range(k):
        ax = fig.add_subplot(rows, cols, j + 1)
        lo, hi = (
            float(min(theta[:, j].min(), pred[:, j].min())),
            float(max(theta[:, j].max(), pred[:, j].max())),
        )
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.scatter(theta[:, j], pred[:, j], s=3, alpha=0.4, lw=0)
        ax.set_title(f"FC{j} {names[j]}\nR²={r2[j]:.3f}  MAE={mae[j]:.3g}", fontsize=8)
        ax.set_xlabel("true (eV/Å²)", fontsize=8)
        ax.set_ylabel("predicted (eV/Å²)", fontsize=8)
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title)
    return fig


def r2_bars(results: dict[str, np.ndarray], names, title: str = "clean test R²") -> Figure:
    """Grouped bars of R² per parameter, one group per parameter, one bar per model."""
    k = len(names)
    fig = Figure(figsize=(max(6, 0.9 * k + 2), 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    w = 0.8 / max(len(results), 1)
    for m, (lab, r2) in enumerate(results.items()):
        ax.bar(np.arange(k) + (m - (len(results) - 1) / 2) * w, np.clip(r2, -0.1, None), w, label=lab)
    ax.set_xticks(np.arange(k))
    ax.set_xticklabels([f"FC{j} {n}" for j, n in enumerate(names)], fontsize=7, rotation=45, ha="right")
    ax.set_ylim(min(0.0, min(float(np.nanmin(r)) for r in results.values()) - 0.05) if results else 0, 1.02)
    ax.axhline(1.0, color="k", lw=0.5)
    ax.set_ylabel("R²")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def reconstructions(inputs: np.ndarray, recons: np.ndarray, grid: SpectrumGrid, labels=None) -> Figure:
    """Input (top) and VAE reconstruction (bottom) for a few spectra."""
    n = len(inputs)
    fig = Figure(figsize=(3.4 * n + 1, 5.2), layout="constrained")
    im = None
    for i in range(n):
        show_spectrum(
            fig.add_subplot(2, n, i + 1), inputs[i], grid, f"input {labels[i] if labels else i}", vmax=1
        )
        im = show_spectrum(fig.add_subplot(2, n, n + i + 1), recons[i], grid, "reconstruction", vmax=1)
    if im is not None:
        _shared_colorbar(fig, im)
    return fig


def noise_examples(spectra: list[np.ndarray], titles: list[str], grid: SpectrumGrid) -> Figure:
    """One test spectrum under several noise settings."""
    n = len(spectra)
    rows, cols = _grid_shape(n, 3)
    fig = Figure(figsize=(3.6 * cols + 1, 2.8 * rows), layout="constrained")
    im = None
    for i, (s, t) in enumerate(zip(spectra, titles)):
        im = show_spectrum(fig.add_subplot(rows, cols, i + 1), s, grid, t, vmax=1)
    if im is not None:
        _shared_colorbar(fig, im)
    return fig


def noise_heatmaps(
    r2: np.ndarray, backgrounds, scales, names, snr: np.ndarray | None = None, title: str = ""
) -> Figure:
    """R² per parameter over the (B, P) grid: rows = B, columns = P (mild → heavy)."""
    k = r2.shape[-1]
    rows, cols = _grid_shape(k)
    fig = Figure(figsize=(3.4 * cols, 3.1 * rows), layout="constrained")
    for j in range(k):
        ax = fig.add_subplot(rows, cols, j + 1)
        im = ax.imshow(np.clip(r2[..., j], 0, 1), vmin=0, vmax=1, cmap="magma", origin="upper")
        for a in range(r2.shape[0]):
            for b in range(r2.shape[1]):
                v = r2[a, b, j]
                ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
        ax.set_xticks(range(len(scales)))
        ax.set_xticklabels([f"{p:g}" for p in scales], fontsize=7)
        ax.set_yticks(range(len(backgrounds)))
        ax.set_yticklabels([f"{b:g}" for b in backgrounds], fontsize=7)
        ax.set_xlabel("P (counts at peak)", fontsize=7)
        ax.set_ylabel("B (background)", fontsize=7)
        ax.set_title(f"FC{j} {names[j]}", fontsize=8)
    fig.colorbar(im, ax=fig.axes, shrink=0.6, label="R²")
    if title:
        fig.suptitle(
            title + (f" (median SNR {np.nanmin(snr):.1f}–{np.nanmax(snr):.0f})" if snr is not None else "")
        )
    return fig


def latent_spread(mu: np.ndarray, logvar: np.ndarray, active: np.ndarray, kl: np.ndarray) -> Figure:
    """μ and log σ² of every test spectrum per latent dimension, mean ± std in black."""
    d = mu.shape[1]
    fig = Figure(figsize=(max(6, 0.45 * d + 2), 6), layout="constrained")
    rng = np.random.default_rng(0)
    for r, (vals, lab) in enumerate(((mu, "μ"), (logvar, "log σ²"))):
        ax = fig.add_subplot(2, 1, r + 1)
        for i in range(d):
            x = i + rng.uniform(-0.25, 0.25, len(vals))
            ax.scatter(x, vals[:, i], s=1, alpha=0.15, color="C0" if active[i] else "C7", lw=0)
        ax.errorbar(np.arange(d), vals.mean(0), yerr=vals.std(0), fmt="o", color="k", ms=3, capsize=2)
        ax.set_ylabel(lab)
        ax.set_xticks(np.arange(d))
        ax.set_xticklabels([f"{i}{'' if active[i] else '·'}" for i in range(d)], fontsize=7)
    fig.axes[0].set_title(
        f"{int(active.sum())}/{d} active dimensions (mean KL > threshold; inactive marked ·, grey)"
    )
    fig.axes[1].set_xlabel("latent dimension")
    return fig


def umap_scatter(emb: np.ndarray, theta: np.ndarray, names) -> Figure:
    """2-D UMAP embedding of μ, one panel per parameter, coloured by its true value."""
    k = len(names)
    rows, cols = _grid_shape(k)
    fig = Figure(figsize=(3.4 * cols, 3.0 * rows), layout="constrained")
    for j in range(k):
        ax = fig.add_subplot(rows, cols, j + 1)
        sc = ax.scatter(emb[:, 0], emb[:, 1], c=theta[:, j], s=2, cmap="viridis", lw=0)
        fig.colorbar(sc, ax=ax, shrink=0.8, label="eV/Å²")
        ax.set_title(f"FC{j} {names[j]}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def interpolation(
    decoded: np.ndarray, grid: SpectrumGrid, theta_ends: tuple[float, float] | None = None, name: str = ""
) -> Figure:
    """Spectra decoded along a straight latent line."""
    n = len(decoded)
    fig = Figure(figsize=(2.4 * n + 1, 2.8), layout="constrained")
    im = None
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1)
        im = show_spectrum(ax, decoded[i], grid, f"t={i / max(n - 1, 1):.2f}", vmax=1)
        if i:
            ax.set_ylabel("")
    if im is not None:
        _shared_colorbar(fig, im)
    if theta_ends is not None:
        fig.suptitle(
            f"decoded latent interpolation from low to high {name} ({theta_ends[0]:.3g} → {theta_ends[1]:.3g} eV/Å²)",
            fontsize=9,
        )
    return fig


def training_curves(history: list[dict], title: str = "") -> Figure:
    """Training and validation loss per epoch."""
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ep = [h["epoch"] for h in history]
    for key in ("train_loss", "val_loss"):
        ax.plot(ep, [h.get(key, np.nan) for h in history], label=key)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    if title:
        ax.set_title(title)
    return fig
