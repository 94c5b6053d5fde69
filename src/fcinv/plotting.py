"""Figures shared by the commands: spectra with dispersions on labelled q-paths, residuals,
dispersion σ bands and phonon DOS.

Figures are built as :class:`matplotlib.figure.Figure` objects and rendered with the Agg canvas,
so plotting never touches pyplot's global state or the user's backend (a notebook keeps its own).
"""

from __future__ import annotations

import functools
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


#: Axis and colourbar labels every spectrum figure uses.
Q_LABEL = "q (path, r.l.u.)"
E_LABEL = "E (meV)"
INTENSITY_LABEL = "intensity (arb. u.)"
RESIDUAL_LABEL = "data − model (arb. u.)"
DOS_LABEL = "g(E) (states / meV / primitive cell)"


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
    colorbar: str | None = None,
):
    """Draw an I(q, E) image (NaN = unmeasured, shown grey) with optional dispersion lines.

    The x-axis carries the path's high-symmetry labels and :data:`Q_LABEL`, the y-axis :data:`E_LABEL`.

    Parameters
    ----------
    spectrum
        Shape (n_q, n_E).
    frequencies
        Shape (n_q, n_modes) meV, drawn as lines at the q-bin centres.
    colorbar
        Label of a colourbar drawn beside ``ax`` (e.g. :data:`INTENSITY_LABEL` or ``"counts"``);
        None: no colourbar.

    Returns
    -------
    matplotlib.image.AxesImage
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
        _path_lines(ax, grid, frequencies, color=line_color, lw=0.8, alpha=0.9, label=label)
    label_axes(ax, grid)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar)
    return im


def label_axes(ax, grid: SpectrumGrid) -> None:
    """The q-path ticks and labels on x (with :data:`Q_LABEL`), the energy range and :data:`E_LABEL` on y."""
    grid.plot_axes(ax)
    ax.set_xlabel(Q_LABEL)
    ax.set_ylim(grid.energy_edges[0], grid.energy_edges[-1])
    ax.set_ylabel(E_LABEL)


def _segment_starts(grid: SpectrumGrid) -> list[int]:
    return [0] + [int(t) for t in grid.ticks[1:-1]] + [grid.n_q]


def _path_lines(ax, grid: SpectrumGrid, frequencies: np.ndarray, *, label=None, **kw) -> None:
    """One line per mode and straight path segment (no line across a path break)."""
    x = np.arange(grid.n_q) + 0.5
    f = np.asarray(frequencies)
    starts = _segment_starts(grid)
    for mode in range(f.shape[1]):
        for a, b in zip(starts[:-1], starts[1:]):
            ax.plot(x[a:b], f[a:b, mode], label=label if (mode == 0 and a == 0) else None, **kw)


def plot_residual(
    ax,
    residual: np.ndarray,
    grid: SpectrumGrid,
    *,
    title: str = "data − model",
    colorbar: str | None = RESIDUAL_LABEL,
):
    """Draw a residual image on a diverging map centred at 0 (symmetric limits; NaN grey).

    Parameters
    ----------
    residual
        Shape (n_q, n_E): data − model, NaN where not measured.
    colorbar
        Colourbar label; None: no colourbar.

    Returns
    -------
    matplotlib.image.AxesImage
    """
    r = np.asarray(residual, float)
    lim = float(np.nanpercentile(np.abs(r), 99.5)) if np.any(np.isfinite(r)) else 1.0
    lim = lim if lim > 0 else 1.0
    im = ax.imshow(
        np.ma.masked_invalid(r).T,
        origin="lower",
        aspect="auto",
        extent=(0, grid.n_q, grid.energy_edges[0], grid.energy_edges[-1]),
        cmap=colormap("RdBu_r"),
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
    )
    label_axes(ax, grid)
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar)
    return im


def scaled_model(model: np.ndarray, data: np.ndarray, *, background: bool = True) -> np.ndarray:
    """``a · model + b``: the least-squares scale ``a`` (and background ``b``) over ``data``'s finite pixels.

    Parameters
    ----------
    model, data
        Shape (n_q, n_E); NaN in ``data`` marks unmeasured pixels.

    Returns
    -------
    numpy.ndarray
        Shape (n_q, n_E) float64: the model on the data's scale (NaN where ``data`` is NaN).
    """
    m, d = np.asarray(model, float), np.asarray(data, float)
    ok = np.isfinite(d) & np.isfinite(m)
    if not ok.any():
        return np.full(d.shape, np.nan)
    A = np.stack([m[ok], np.ones(int(ok.sum()))], 1) if background else m[ok][:, None]
    sol, *_ = np.linalg.lstsq(A, d[ok], rcond=None)
    out = sol[0] * m + (sol[1] if background else 0.0)
    return np.where(np.isfinite(d), out, np.nan)


# ------------------------------------------------------------------ dispersion σ bands
#: Lower and upper percentiles of a 1σ band (the 68.3 % central interval).
BAND_PERCENTILES = (15.87, 84.13)


def theta_samples(result, prediction=None, *, n: int = 200, seed: int = 0) -> tuple[np.ndarray, str]:
    """Samples of θ for a σ band, and a sentence saying what they are.

    The ML answer uses the VAE's latent samples (``prediction.samples``), each parameter's spread
    rescaled about θ to the result's σ when that differs (a calibrated σ). Otherwise (a refinement,
    a ResNet) θ is drawn from a Gaussian: θ ± the fit's covariance, rescaled to σ, when the result
    carries one; θ ± σ (independent) when only σ is known. A non-finite σ holds that parameter at θ.

    Parameters
    ----------
    result
        An :class:`~fcinv.result.FCResult`.
    prediction
        The :class:`~fcinv.inference.Prediction` the result came from (its samples), or None.
    n, seed
        Gaussian draws and their seed.

    Returns
    -------
    (numpy.ndarray, str)
        Shape (m, k) θ samples (eV/Å²) and the description for a legend or caption.
    """
    theta = np.asarray(result.theta, float)
    sigma = np.asarray(result.sigma, float)
    finite = np.isfinite(sigma)
    sig = np.where(finite, sigma, 0.0)
    held = "" if finite.all() else "; parameters without a finite σ held at θ"
    is_ml = "ml" not in getattr(result, "parts", {})
    samples = getattr(prediction, "samples", None) if prediction is not None else None
    if is_ml and samples is not None and len(samples) > 1:
        s = np.asarray(samples, float)
        spread = s.std(0)
        f = np.where(spread > 0, sig / np.where(spread > 0, spread, 1.0), 0.0)
        rescaled = not np.allclose(f[spread > 0], 1.0, rtol=1e-3)
        s = theta + (s - s.mean(0)) * f
        note = ", spread rescaled to the calibrated σ" if rescaled else ""
        return s, f"{len(s)} latent (posterior) samples of the VAE{note}{held}"
    rng = np.random.default_rng(seed)
    cov = np.asarray(getattr(result, "extra", {}).get("covariance", []), float)
    if cov.shape == (len(theta), len(theta)) and np.all(np.isfinite(cov)):
        d = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        scale = np.where(d > 0, sig / np.where(d > 0, d, 1.0), 0.0)
        c = cov * np.outer(scale, scale)
        return (
            rng.multivariate_normal(theta, c, size=n, method="eigh"),
            f"{n} Gaussian draws from θ ± the fit's covariance (scaled to σ){held}",
        )
    draws = theta + rng.standard_normal((n, len(theta))) * sig
    return draws, f"{n} Gaussian draws from θ ± σ (no covariance){held}"


def dispersion_band(frequencies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 1σ band (:data:`BAND_PERCENTILES`) of sampled dispersions, modes sorted per sample.

    Parameters
    ----------
    frequencies
        Shape (m, n_q, n_modes) meV: the dispersion of each θ sample.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Lower and upper edges, each (n_q, n_modes) meV.
    """
    f = np.sort(np.asarray(frequencies, float), axis=-1)
    lo, hi = np.percentile(f, BAND_PERCENTILES, axis=0)
    return lo, hi


def plot_dispersion(
    ax,
    grid: SpectrumGrid,
    frequencies: np.ndarray,
    *,
    band: tuple[np.ndarray, np.ndarray] | None = None,
    band_label: str = "±1σ",
    label: str = "inferred",
    reference: np.ndarray | None = None,
    reference_label: str = "reference",
    title: str = "",
) -> None:
    """The dispersion along the path, its σ band (shaded) and a reference dispersion (dashed).

    Parameters
    ----------
    frequencies
        Shape (n_q, n_modes) meV.
    band
        (lower, upper) edges, each (n_q, n_modes) meV (:func:`dispersion_band`).
    reference
        Shape (n_q, n_modes) meV, or None.
    """
    x = np.arange(grid.n_q) + 0.5
    starts = _segment_starts(grid)
    if band is not None:
        lo, hi = band
        for mode in range(lo.shape[1]):
            for a, b in zip(starts[:-1], starts[1:]):
                ax.fill_between(
                    x[a:b],
                    lo[a:b, mode],
                    hi[a:b, mode],
                    color="C0",
                    alpha=0.35,
                    lw=0,
                    label=band_label if (mode == 0 and a == 0) else None,
                )
    _path_lines(ax, grid, np.sort(frequencies, axis=1), color="C0", lw=1.0, label=label)
    if reference is not None:
        _path_lines(ax, grid, np.sort(reference, axis=1), color="C3", lw=0.9, ls="--", label=reference_label)
    grid.plot_axes(ax)
    for t in grid.ticks[1:-1]:
        ax.axvline(t, color="0.7", lw=0.6)
    ax.set_xlabel(Q_LABEL)
    ax.set_ylabel(E_LABEL)
    top = [np.nanmax(frequencies)] + ([np.nanmax(reference)] if reference is not None else [])
    if band is not None:
        top.append(np.nanmax(band[1]))
    ax.set_ylim(min(0.0, float(np.nanmin(frequencies))), 1.08 * float(max(top)))
    ax.legend(loc="lower right", fontsize=6, framealpha=0.85)
    if title:
        ax.set_title(title, fontsize=9)


# ------------------------------------------------------------------ phonon DOS
@functools.lru_cache(maxsize=4)
def _dos_setup(material_name: str):
    """(Phonopy with symmetry, compact reference FC array or None, p2s map, supercell) of a material."""
    from fcinv.fitting.export import _phonopy, _smat, pairs_to_phonopy
    from fcinv.material import load_material

    mat = load_material(material_name)
    if mat.reference_available:
        ref = mat.reference
        smat = _smat(mat.reference_supercell)
        fc_ref = pairs_to_phonopy(ref.pairs, smat, compact=True)
    else:
        smat = _smat(mat.supercell)
        fc_ref = None
    ph = _phonopy(mat.space.crystal if fc_ref is None else mat.reference.space.crystal, smat)
    return ph, fc_ref, np.asarray(ph.primitive.p2s_map), smat


def phonon_dos(
    material, theta: dict[str, float] | None = None, *, mesh: int = 16, pitch_meV: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Phonon density of states of a θ through the package's θ → phonopy route, on a Γ-centred mesh.

    The force constants are those :func:`fcinv.fitting.export.force_constants_array` exports
    (reference + Σ (θ − θ_ref) × unit arrays when the material has a reference set; the
    parameters θ does not name keep their reference values); phonopy's tetrahedron DOS.

    Parameters
    ----------
    material
        A :class:`~fcinv.material.Material` or what :func:`~fcinv.material.load_material` takes.
    theta
        Parameter name → eV/Å²; None: the reference itself.
    mesh
        The ``mesh``³ q-mesh.
    pitch_meV
        Energy step of the returned curve.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Energies (meV) and g(E) (states / meV per primitive cell; integrates to 3 × atoms).
    """
    from fcinv.material import load_material

    mat = load_material(material)
    ph, fc_ref, p2s, smat = _dos_setup(mat.name)
    theta_full = mat.theta_full(dict(theta or {}))
    if fc_ref is not None:
        ref = mat.reference
        fc = fc_ref + ref.space.to_phonopy(theta_full - ref.theta_ref, smat)[p2s]
    else:
        fc = mat.space.to_phonopy(theta_full, smat)[p2s]
    ph.force_constants = fc
    return phonopy_dos(ph, mesh=mesh, pitch_meV=pitch_meV)


def phonopy_dos(ph, *, mesh: int = 16, pitch_meV: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Tetrahedron DOS of a Phonopy object that holds force constants, on a Γ-centred ``mesh``³.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Energies (meV) and g(E) (states / meV per primitive cell; integrates to 3 × atoms).
    """
    from fcinv.units import THZ_TO_MEV

    ph.run_mesh([mesh] * 3, is_gamma_center=True)
    f = np.asarray(ph.mesh.frequencies) * THZ_TO_MEV
    pitch = float(pitch_meV)
    lo, hi = min(0.0, float(f.min())) - 5 * pitch, float(f.max()) + 5 * pitch
    ph.run_total_dos(
        use_tetrahedron_method=True,
        freq_min=lo / THZ_TO_MEV,
        freq_max=hi / THZ_TO_MEV,
        freq_pitch=pitch / THZ_TO_MEV,
    )
    dos = ph.total_dos
    return np.asarray(dos.frequency_points) * THZ_TO_MEV, np.asarray(dos.dos) / THZ_TO_MEV


def plot_dos(ax, curves: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str = "phonon DOS") -> None:
    """Phonon DOS curves (label → (E meV, g per meV)), the first solid, the others dashed."""
    for i, (lab, (e, g)) in enumerate(curves.items()):
        ax.plot(e, g, color=f"C{[0, 3, 2, 4][i % 4]}", lw=1.0, ls="-" if i == 0 else "--", label=lab)
    ax.set_xlabel(E_LABEL)
    ax.set_ylabel(DOS_LABEL, fontsize=8)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)


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
    path: str | Path,
    spectrum: np.ndarray,
    grid: SpectrumGrid,
    *,
    frequencies=None,
    title: str = "",
    colorbar: str = INTENSITY_LABEL,
) -> Path:
    """Write a one-panel figure of a spectrum (and dispersion), with a colourbar labelled ``colorbar``."""
    fig, ax = new_figure(figsize=(7, 3.6), dpi=130)
    plot_spectrum(ax, spectrum, grid, frequencies=frequencies, title=title, colorbar=colorbar)
    return save_figure(fig, path)
