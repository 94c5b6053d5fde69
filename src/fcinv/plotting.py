"""Figures shared by the commands: spectra with dispersions on labelled q-paths.

Figures are built as :class:`matplotlib.figure.Figure` objects and rendered with the Agg canvas,
so plotting never touches pyplot's global state or the user's backend (a notebook keeps its own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fcinv.grid import SpectrumGrid


def new_figure(nrows: int = 1, ncols: int = 1, **kwargs: Any):
    """A figure and its axes, like ``pyplot.subplots`` but without pyplot.

    Parameters
    ----------
    nrows, ncols
        The axes grid.
    **kwargs
        ``figsize``, ``dpi`` go to the Figure; ``sharex``, ``sharey``, ``squeeze``,
        ``gridspec_kw`` to ``Figure.subplots``.

    Returns
    -------
    (Figure, Axes or array of Axes)
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig_kw = {k: kwargs.pop(k) for k in ("figsize", "dpi") if k in kwargs}
    fig = Figure(**fig_kw)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


def colormap(name: str, bad: str | None = "0.75"):
    """A named colormap, with ``bad`` (NaN) pixels in that colour."""
    import matplotlib

    cm = matplotlib.colormaps[name]
    return cm.with_extremes(bad=bad) if bad is not None else cm


def plot_spectrum(
    ax,
    spectrum: np.ndarray,
    grid: SpectrumGrid,
    *,
    frequencies: np.ndarray | None = None,
    title: str = "",
    line_color: str = "w",
    cmap: str = "viridis",
    vmax: float | None = None,
    label: str | None = None,
):
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
    extent = (0, grid.n_q, grid.energy_edges[0], grid.energy_edges[-1])
    im = ax.imshow(
        img.T,
        origin="lower",
        aspect="auto",
        extent=extent,
        cmap=colormap(cmap),
        vmin=0,
        vmax=vmax or 1.0,
        interpolation="nearest",
    )
    if frequencies is not None:
        x = np.arange(grid.n_q) + 0.5
        f = np.asarray(frequencies)
        starts = [0] + [int(t) for t in grid.ticks[1:-1]] + [grid.n_q]
        for mode in range(f.shape[1]):
            for a, b in zip(starts[:-1], starts[1:]):
                ax.plot(
                    x[a:b],
                    f[a:b, mode],
                    color=line_color,
                    lw=0.8,
                    alpha=0.9,
                    label=label if (mode == 0 and a == 0) else None,
                )
    grid.plot_axes(ax)
    ax.set_ylim(grid.energy_edges[0], grid.energy_edges[-1])
    ax.set_ylabel("Energy (meV)")
    if title:
        ax.set_title(title, fontsize=9)
    return im


def save_figure(fig, path: str | Path, *, title: str = "") -> Path:
    """Lay out ``fig`` (with an optional suptitle) and write it to ``path`` atomically (folders created)."""
    from fcinv.io.atomic import atomic_path

    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fig.savefig(fh, format=path.suffix.lstrip(".").lower() or "png")
    if hasattr(fig, "number"):  # a pyplot figure (made by a caller): release it from pyplot's registry
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def save_spectrum_png(
    path: str | Path, spectrum: np.ndarray, grid: SpectrumGrid, *, frequencies=None, title: str = ""
) -> Path:
    """Write a one-panel figure of a spectrum (and dispersion)."""
    fig, ax = new_figure(figsize=(7, 3.6), dpi=130)
    im = plot_spectrum(ax, spectrum, grid, frequencies=frequencies, title=title)
    fig.colorbar(im, ax=ax, label="I(q, E) (arb. units)")
    return save_figure(fig, path)
