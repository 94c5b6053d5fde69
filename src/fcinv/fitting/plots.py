"""Figures of the fits: measured vs fitted I(q, E), and a fitted dispersion over measured points."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinv.grid import SpectrumGrid
from fcinv.plotting import (
    E_LABEL,
    INTENSITY_LABEL,
    Q_LABEL,
    dispersion_band,
    new_figure,
    plot_residual,
    plot_spectrum,
    save_figure,
)


def save_spectrum_fit_png(
    path: str | Path,
    data: np.ndarray,
    fitted: np.ndarray,
    grid: SpectrumGrid,
    *,
    frequencies: np.ndarray | None = None,
    title: str = "",
    colorbar: str = INTENSITY_LABEL,
) -> Path:
    """Three panels: the measured image, the fitted model (scale and background applied), their difference.

    Every panel has the q-path on x, E (meV) on y and a colourbar; the difference uses a diverging
    map centred at 0.

    Parameters
    ----------
    data, fitted
        Shape (n_q, n_E); NaN in ``data`` marks unmeasured pixels (also blanked in the difference).
    frequencies
        Shape (n_q, n_modes) meV: the fitted dispersion, drawn over the data.
    colorbar
        Label of the intensity colourbars (e.g. ``"counts"`` for raw counts).
    """
    fig, axes = new_figure(1, 3, figsize=(16, 3.9), dpi=110, sharey=True)
    vmax = float(np.nanpercentile(data, 99.5)) if np.any(np.isfinite(data)) else 1.0
    plot_spectrum(
        axes[0],
        data,
        grid,
        frequencies=frequencies,
        title="data, fitted dispersion",
        vmax=vmax,
        colorbar=colorbar,
    )
    plot_spectrum(axes[1], fitted, grid, title="fitted model", vmax=vmax, colorbar=colorbar)
    diff = np.where(np.isfinite(data), data - fitted, np.nan)
    plot_residual(axes[2], diff, grid, title="data − model")
    return save_figure(fig, path, title=title)


def fit_dispersion_band(
    space,
    theta_full: np.ndarray,
    free: list[str],
    covariance: np.ndarray,
    q_rlu: np.ndarray,
    *,
    reference=None,
    theta_ref=None,
    n: int = 200,
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], str] | None:
    """The dispersion's 1σ band from a Gaussian draw of the fitted parameters (θ ± the fit's covariance).

    Parameters
    ----------
    theta_full
        Shape (n_params,) eV/Å²: the fitted full θ (the parameters not in ``free`` stay fixed).
    free, covariance
        The fitted parameter names and their (k, k) covariance, (eV/Å²)².
    q_rlu
        Shape (n_q, 3), conventional r.l.u.
    reference, theta_ref
        As :func:`~fcinv.fitting.dispersion_fit.model_energies`.

    Returns
    -------
    ((lower, upper), label) or None
        Band edges, each (n_q, n_modes) meV, and its legend text; None when the covariance is not finite.
    """
    from fcinv.forward import LinearDynamics
    from fcinv.units import EV_A2_AMU_TO_MEV

    cov = np.asarray(covariance, float)
    if cov.shape != (len(free), len(free)) or not np.all(np.isfinite(cov)):
        return None
    theta_full = space.check_theta(theta_full)
    idx = [space.names.index(n) for n in free]
    rng = np.random.default_rng(seed)
    draws = np.repeat(theta_full[None], n, axis=0)
    draws[:, idx] = rng.multivariate_normal(theta_full[idx], cov, size=n, method="eigh")
    tref = theta_full if theta_ref is None else space.check_theta(theta_ref, what="theta_ref")
    dyn = LinearDynamics(space, q_rlu, tref, np.arange(space.n_params), reference)
    w2 = dyn.omega2(draws)
    band = dispersion_band(np.sign(w2) * np.sqrt(np.abs(w2)) * EV_A2_AMU_TO_MEV)
    return band, f"±1σ band: {n} Gaussian draws from θ ± the fit's covariance"


def _segments(grid: SpectrumGrid) -> list[tuple[np.ndarray, np.ndarray, float, int]]:
    """(start q, end q, start bin, n bins) of each straight segment of the path."""
    out = []
    o = 0
    for nb in grid.segment_bins:
        c = grid.q_rlu[o : o + nb]
        if nb >= 2:
            step = (c[-1] - c[0]) / (nb - 1)
            out.append((c[0] - step / 2, c[-1] + step / 2, float(o), nb))
        o += nb
    return out


def points_on_path(crystal, grid: SpectrumGrid, q_rlu: np.ndarray, tol: float = 2e-3) -> np.ndarray:
    """Position along the path (q-bin units) of points equivalent to a path point, else NaN.

    A point maps onto the path through the point group (with time reversal, q ≡ −q)
    and any reciprocal-lattice vector of the primitive cell.

    Parameters
    ----------
    q_rlu
        Shape (n, 3), conventional r.l.u.
    tol
        Largest distance (r.l.u.) from the path that still counts.

    Returns
    -------
    numpy.ndarray
        Shape (n,) float64.
    """
    q = np.atleast_2d(np.asarray(q_rlu, float))
    segs = _segments(grid)
    x = np.full(len(q), np.nan)
    if not segs:
        return x
    ops = crystal.point_group_rlu
    ops = np.concatenate([ops, -ops])
    max_index = int(min(6, max(2, np.ceil(np.abs(q).max()) + 1)))
    G = crystal.reciprocal_lattice_rlu(max_index)
    for n, qn in enumerate(q):
        cand = (np.einsum("oij,j->oi", ops, qn)[:, None, :] - G[None, :, :]).reshape(-1, 3)
        cand = cand[np.linalg.norm(cand, axis=1) < 2.5]
        best, bx = tol, np.nan
        for a, b, start, nb in segs:
            d = b - a
            t = np.clip((cand - a) @ d / (d @ d), 0.0, 1.0)
            dist = np.linalg.norm(cand - a - t[:, None] * d, axis=1)
            i = int(np.argmin(dist))
            if dist[i] <= best:
                best, bx = dist[i], start + t[i] * nb
        x[n] = bx
    return x


def save_dispersion_fit_png(
    path: str | Path,
    crystal,
    grid: SpectrumGrid,
    path_energies: np.ndarray,
    points,
    energy_model: np.ndarray,
    *,
    title: str = "",
    band: tuple[np.ndarray, np.ndarray] | None = None,
    band_label: str = "±1σ",
) -> Path:
    """Two panels: the fitted dispersion along the path (with its σ band) and the points that lie on it;
    model vs measured energy.

    Parameters
    ----------
    path_energies
        Shape (n_q, n_modes) meV: the fitted dispersion at ``grid.q_rlu``.
    points
        The :class:`~fcinv.fitting.dispersion_fit.DispersionPoints`.
    energy_model
        Shape (n,) meV: the fitted energy of each point's assigned branch.
    band, band_label
        The 1σ band (lower, upper; each (n_q, n_modes) meV, :func:`fit_dispersion_band`) and its legend.
    """
    fig, (ax, ax2) = new_figure(1, 2, figsize=(13, 4.2), dpi=110, gridspec_kw={"width_ratios": [2.2, 1]})
    x = np.arange(grid.n_q) + 0.5
    starts = [0] + [int(t) for t in grid.ticks[1:-1]] + [grid.n_q]
    for mode in range(path_energies.shape[1]):
        for a, b in zip(starts[:-1], starts[1:]):
            if band is not None:
                ax.fill_between(
                    x[a:b],
                    band[0][a:b, mode],
                    band[1][a:b, mode],
                    color="C0",
                    alpha=0.3,
                    lw=0,
                    label=band_label if (mode == 0 and a == 0) else None,
                )
            ax.plot(
                x[a:b],
                path_energies[a:b, mode],
                color="C0",
                lw=1.2,
                label="fit" if (mode == 0 and a == 0) else None,
            )
    xp = points_on_path(crystal, grid, points.q_rlu)
    on = np.isfinite(xp)
    ax.errorbar(
        xp[on],
        points.energy[on],
        yerr=points.sigma[on],
        fmt="o",
        ms=3.5,
        color="C3",
        ecolor="C3",
        elinewidth=0.8,
        label=f"points on the path ({int(on.sum())} of {len(on)})",
    )
    grid.plot_axes(ax)
    for t in grid.ticks[1:-1]:
        ax.axvline(t, color="0.7", lw=0.6)
    pmax = float(np.nanmax(path_energies))
    sane = points.energy + points.sigma <= 2.0 * pmax  # an absurd point must not squash the figure
    top = max(pmax, float(np.max((points.energy + points.sigma)[sane])) if np.any(sane) else pmax)
    ax.set_ylim(0, 1.05 * top)
    ax.set_xlabel(Q_LABEL)
    ax.set_ylabel(E_LABEL)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("fitted dispersion", fontsize=9)
    ax2.errorbar(points.energy, energy_model, xerr=points.sigma, fmt="o", ms=3, color="C3", elinewidth=0.8)
    ax2.plot([0, top], [0, top], color="0.5", lw=0.8)
    ax2.set_xlim(0, 1.05 * top)
    ax2.set_ylim(0, 1.05 * top)
    ax2.set_xlabel("measured E (meV)")
    ax2.set_ylabel("fitted E (meV)")
    ax2.set_title("all points", fontsize=9)
    return save_figure(fig, path, title=title)


def save_dispersion_residuals_png(
    path: str | Path, points, residual_meV: np.ndarray, *, flagged=(), title: str = ""
) -> Path:
    """One panel per branch (label, index or "nearest"): residual (model − measured, meV) against |q| with ±σ bars.

    Parameters
    ----------
    points
        The :class:`~fcinv.fitting.dispersion_fit.DispersionPoints`.
    residual_meV
        Shape (n,) meV: model − measured at the fitted θ.
    flagged
        Indices of points flagged as outliers (drawn as crosses; their residual is clipped to
        the panel and printed).
    """
    names = points.names
    groups = list(dict.fromkeys(names))
    n = len(groups)
    cols = min(n, 3)
    rows = int(np.ceil(n / cols))
    fig, axes = new_figure(rows, cols, figsize=(4.3 * cols, 3.0 * rows), dpi=110, squeeze=False)
    qn = np.linalg.norm(points.q_rlu, axis=1)
    bad = np.zeros(len(points), bool)
    bad[list(flagged)] = True
    res = np.asarray(residual_meV, float)
    for ax, g in zip(axes.ravel(), groups):
        sel = np.array([x == g for x in names])
        ok, out = sel & ~bad, sel & bad
        ax.errorbar(qn[ok], res[ok], yerr=points.sigma[ok], fmt="o", ms=3, color="C0", elinewidth=0.8)
        lim = (
            max(
                3.0 * float(np.max(points.sigma[sel])),
                float(np.max(np.abs(res[ok]) + points.sigma[ok])) if np.any(ok) else 1.0,
            )
            * 1.1
        )
        if np.any(out):
            ax.plot(
                qn[out],
                np.clip(res[out], -lim, lim),
                "x",
                color="C3",
                ms=7,
                label="flagged: " + ", ".join(f"{v:.3g}" for v in res[out][:3]) + " meV",
            )
            ax.legend(fontsize=7, loc="upper right")
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.set_ylim(-lim, lim)
        chi = float(np.mean((res[ok] / points.sigma[ok]) ** 2)) if np.any(ok) else float("nan")
        ax.set_title(f"branch {g}: {int(sel.sum())} points, mean (r/σ)² = {chi:.2f}", fontsize=8)
        ax.set_xlabel("|q| (r.l.u.)", fontsize=8)
        ax.set_ylabel("model − measured (meV)", fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path, title=title)
