"""Figures shared by the CLI commands: spectra with dispersions, on labelled q-paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinv.grid import SpectrumGrid


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_spectrum(ax, spectrum: np.ndarray, grid: SpectrumGrid, *, frequencies: np.ndarray | None = None, title: str = "", line_color: str = "w", cmap: str = "viridis", vmax: float | None = None, label: str | None = None):
    """Draw an I(q, E) image (NaN = unmeasured, shown grey) with optional dispersion lines.

    Parameters
    ----------
    spectrum
        Shape (n_q, n_E).
    frequencies
        Shape (n_q, n_modes) meV, drawn as lines at the q-bin centres.
    """
    img = np.ma.masked_invalid(np.asarray(spectrum, float))
    finite = img.compressed()
    vmax = vmax if vmax is not None else (float(np.percentile(finite, 99.5)) if finite.size else 1.0)
    cm = _plt().get_cmap(cmap).with_extremes(bad="0.75")
    im = ax.imshow(img.T, origin="lower", aspect="auto", extent=(0, grid.n_q, grid.energy_edges[0], grid.energy_edges[-1]), cmap=cm, vmin=0, vmax=vmax or 1.0, interpolation="nearest")
    if frequencies is not None:
        x = np.arange(grid.n_q) + 0.5
        f = np.asarray(frequencies)
        starts = [0] + [int(t) for t in grid.ticks[1:-1]] + [grid.n_q]
        for mode in range(f.shape[1]):
            for a, b in zip(starts[:-1], starts[1:]):
                ax.plot(x[a:b], f[a:b, mode], color=line_color, lw=0.8, alpha=0.9, label=label if (mode == 0 and a == 0) else None)
    grid.plot_axes(ax)
    ax.set_ylim(grid.energy_edges[0], grid.energy_edges[-1])
    ax.set_ylabel("Energy (meV)")
    if title:
        ax.set_title(title, fontsize=9)
    return im


def save_figure(fig, path: str | Path, *, title: str = "") -> Path:
    """Lay out ``fig`` (with an optional suptitle), write it to ``path`` (folders created) and close it."""
    plt = _plt()
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def save_spectrum_png(path: str | Path, spectrum: np.ndarray, grid: SpectrumGrid, *, frequencies=None, title: str = "") -> Path:
    """Write a one-panel PNG of a spectrum (and dispersion)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=130)
    im = plot_spectrum(ax, spectrum, grid, frequencies=frequencies, title=title)
    fig.colorbar(im, ax=ax, label="I(q, E) (arb. units)")
    return save_figure(fig, path)
