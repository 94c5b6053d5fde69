"""A global start for the I(q, E) refinement from the energy moments of each q column (sum rules).

Why. The refinement (:func:`fcinv.fitting.refine`) is a local least-squares fit of I(q, E): where
the ML answer lies outside the truth's basin (a quick model over a wide training domain), it ends
in a wrong minimum or an unstable crystal. The energy moments of a column need no start.

The sum rules. For the coherent one-phonon intensity of a pixel (the physical model,
:mod:`fcinv.forward.physical`),

    I(q, E) = s · Σ_ν (n_ν + 1)/(2N ω_ν) y_νᵀ M(q, E) y_ν · G(E − ω_ν) + b,

detailed balance, (1 − e^{−E/kT})(n(E) + 1) = 1, gives per q column (sums over the measured
energy bins)

    m1(q) = Σ_E E (1 − e^{−E/kT}) (I − b) ΔE  ≈  s · tr M(q) / (2N)              (independent of θ),
    m3(q) = Σ_E E³ (1 − e^{−E/kT}) (I − b) ΔE ≈  s · tr(M(q) D_θ(q)) / (2N)     (linear in θ),

because Σ_ν ω_ν² y_ν y_νᵀ = D(q) and D(q) = D₀ + Σ_p θ_p B_p(q). With a flat background b the m1
equations fix (s, b) and the m3 equations (s·θ, b): a linear least-squares problem, so no local
minima. The default also takes m5 = Σ E⁵ (1 − e^{−E/kT}) (I − b) ΔE ≈ s · tr(M D²)/(2N), quadratic in
θ (linearised like the others): on the benchmark's GaAs run m1 and m3 alone left 1NN_xy with the
wrong sign (+0.83 against −1.33 eV/Å²), with m5 it came out −1.14.

How it is evaluated here. The "≈" hides these corrections: the
Gaussian resolution (it adds 3ωσ(ω)² to ω³), the finite energy window and the unmeasured bins of a
partly covered column, a matrix M that varies along E (the coverage weights of the zones change
with energy), the θ-change of the Debye–Waller factor and the dropped modes at or below the
model's ``e_min_mode``. Rather than rebuilding tr(M B_p) from the model's private per-pixel
matrices, :func:`moment_start` takes the moments of the *forward model's own images*, with the
same energy weights and the same mask as the data's: at a current estimate θ_c it evaluates the
model at θ_c and at θ_c + h_p e_p (one batched ``spectra`` call of k + 1 images) and so has

    m_p(q; θ) ≈ m_p(q; θ_c) + Σ_k A_pqk (θ_k − θ_c,k)

with A exactly tr(M B_k)/(2N) where the sum rule holds (then the moments are linear and one step
is the global answer), and every correction above included to first order where it does not.
The equations s·m_p(q; θ_c) + A_p (s(θ − θ_c)) + b·c_p(q) = d_p(q) are linear in
(s, v = s(θ − θ_c), b); each step solves them (weighted by the variance of each data moment, plus
the prior rows of the refinement), projects θ into the prior's box (the training domain: centre ±
2σ) and back into the stable region (bisection towards θ_c), and relinearises at the new θ. The
corrections are small, so 2–4 steps converge; no step depends on a start inside a basin.

Only columns with at least ``min_coverage`` of their energy bins measured take part: a column's
moment over a few bins is not a sum over its modes; with fewer than ``min_columns`` of the path's
columns taking part the start is refused (a sparse run: the ML start alone then).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fcinv.fitting._base import FitError
from fcinv.fitting.image import Weighting, _start_vector, spectrum_arrays
from fcinv.units import KB_MEV_PER_K

log = logging.getLogger(__name__)

#: Modes below −this (meV) count as unstable (the refinement's tolerance).
_STABLE_TOL_MEV = 0.5


@dataclass(frozen=True)
class MomentStart:
    """The answer of :func:`moment_start`.

    Attributes
    ----------
    names
        The model's varied parameters.
    theta
        Shape (k,), eV/Å²: the moment estimate (inside the prior's box, stable where ``stable``).
    scale, background
        The fitted s and b of the moment equations.
    n_columns
        q columns used.
    chi2
        Weighted squared residual of the moment equations at the end (prior rows excluded).
    iterations
        Linearisation steps taken.
    lowest_mode_meV
        The model's lowest signed mode at ``theta``.
    stable
        No mode below −0.5 meV.
    history
        θ after each step.
    """

    names: list[str]
    theta: np.ndarray
    scale: float
    background: float
    n_columns: int
    chi2: float
    iterations: int
    lowest_mode_meV: float
    stable: bool
    history: list[np.ndarray] = field(default_factory=list)

    def theta_dict(self) -> dict[str, float]:
        """θ by name."""
        return dict(zip(self.names, (float(v) for v in self.theta)))

    def as_dict(self) -> dict:
        """JSON-able summary (for provenance)."""
        return {
            "method": "energy-moment sum rules m1, m3 per q column (fcinv.fitting.moments), "
            "linearised on the model",
            "theta": self.theta_dict(),
            "scale": self.scale,
            "background": self.background,
            "n_columns": self.n_columns,
            "chi2_moments": self.chi2,
            "iterations": self.iterations,
            "lowest_mode_meV": self.lowest_mode_meV,
            "stable": self.stable,
        }


def _data_arrays(model, data, weighting: Weighting) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(intensity, σ (1 without errors), mask, whether errors are used) on the model's grid, NaN-checked."""
    if weighting not in ("auto", "errors", "uniform"):
        raise FitError(f"weighting={weighting!r} is unknown. Use 'auto', 'errors' or 'uniform'.")
    y, mask, err = spectrum_arrays(model, data)
    model_mask = getattr(model, "mask", None)
    if model_mask is not None:
        mask &= np.asarray(model_mask, bool)
    if not mask.any():
        raise FitError("the spectrum has no measured pixel the model covers. Check its coverage and grid.")
    e = err[mask]
    has = bool(np.all(np.isfinite(e)) and np.any(e > 0))
    if weighting == "errors" and not has:
        raise FitError(
            "weighting='errors' but not every measured pixel has an error. Use 'auto' or 'uniform'."
        )
    if not has or weighting == "uniform":
        return np.where(mask, y, 0.0), np.where(mask, 1.0, np.nan), mask, False
    floor = float(np.percentile(e[e > 0], 10.0))
    err = np.where(mask, np.where(err > 0, err, floor), np.nan)
    return np.where(mask, y, 0.0), err, mask, True


def recentred_model(model, theta):
    """A :class:`~fcinv.forward.physical.PhysicalModel` of ``model``'s settings about ``theta`` (k,).

    Its reference θ, and so its reference Debye–Waller factor, is ``theta`` (the free parameters;
    the others stay): the θ-change of the factor is expanded about the reference (cumulant form),
    which is least accurate for the large changes of a wide training domain (a refinement far from
    the reference member). The model predicts the same images otherwise. ``model`` itself is
    returned where that cannot be done: a model with a full reference FC set (its θ_ref is that
    set's projection) or one that is not a PhysicalModel.
    """
    from fcinv.forward.physical import PhysicalModel

    if not isinstance(model, PhysicalModel) or model.reference is not None:
        return model
    full = np.asarray(model.full_theta(np.asarray(theta, float)[None])[0], float)
    return model.rebuilt(model.space, full, free=list(model.free))


def _towards_stable(model, theta: np.ndarray, anchor: np.ndarray, n: int = 10) -> np.ndarray:
    """``theta`` moved back towards the stable ``anchor`` (bisection) until no mode is below −0.5 meV."""
    for _ in range(n):
        if float(model.lowest_energy(theta[None])[0]) >= -_STABLE_TOL_MEV:
            return theta
        theta = 0.5 * (theta + anchor)
    return anchor.copy()


def moment_start(
    model,
    data,
    *,
    theta_start=None,
    prior="domain",
    material_reference=None,
    powers: Sequence[int] = (1, 3, 5),
    min_coverage: float = 0.8,
    min_columns: float = 0.5,
    e_min_meV: float | None = None,
    n_iter: int = 30,
    tol: float = 1e-3,
    weighting: Weighting = "auto",
    fit_background: bool = True,
    step_fraction: float = 0.25,
) -> MomentStart:
    """θ from the energy moments of the q columns: a global start for the refinement (module docstring).

    Parameters
    ----------
    model
        The forward model of the refinement (a :class:`~fcinv.forward.physical.PhysicalModel` is
        what the sum rules describe; any model with ``names``, ``k``, ``theta0``, ``grid``,
        ``spectra`` and ``lowest_energy`` works, the linearisation is on its own images).
    data
        The measured I(q, E): a FoldedSpectrum (mask and errors used) or an (n_q, n_E) array with
        NaN at unmeasured pixels.
    theta_start
        Where the first linearisation is taken (default: the model's reference θ); any stable θ.
    prior
        The refinement's prior (:func:`~fcinv.fitting.priors.build_prior`: ``"domain"`` default);
        its rows regularise the directions the moments do not fix, and its box (centre ± 2σ)
        bounds the answer.
    material_reference
        The reference whose training domain is the prior (default: the model's material's).
    powers
        Energy powers of the moment equations: 1 (the scale), 3 (linear in θ) and 5 (m5 ≈ s·tr(M D²)/(2N),
        quadratic in θ: it separates what m3 alone leaves degenerate, e.g. the sign of GaAs's 1NN_xy;
        the Gauss–Newton stage takes its curvature).
    min_coverage
        A column takes part when at least this fraction of its energy bins above ``e_min_meV`` is
        measured.
    min_columns
        The start is refused (:class:`FitError`) when fewer than this fraction of the q columns
        take part: the moments of a third of the path fix only part of θ, the rest is the prior's
        (measured: ``fcinv demo --quick``, 3 orientations, 61 of 140 columns: a start 67 % off in
        1NN_xx whose local fit ends in a wrong basin, misfit 229,816 against 126,244 in the truth's).
    e_min_meV
        Bins at or below this energy are left out of the moments (default: one bin width, which
        leaves out the elastic line's bin).
    n_iter
        Evaluations of the damped Gauss–Newton stage at most (0: the sum-rule step only).
    tol
        Its ``xtol`` (relative step, in units of each prior σ).
    weighting
        ``"auto"`` (errors where every measured pixel has one), ``"errors"`` or ``"uniform"``.
    fit_background
        Fit the flat background b (else b = 0).
    step_fraction
        Finite-difference step of the linearisation, as a fraction of each prior σ.

    Returns
    -------
    MomentStart

    Raises
    ------
    FitError
        No column is covered enough, a measured pixel is NaN, or the start is unstable.
    """
    y, err, mask, has_errors = _data_arrays(model, data, weighting)
    grid = model.grid
    energy = np.asarray(grid.energy, float)
    de = float(np.mean(np.diff(grid.energy_edges)))
    e_lo = de if e_min_meV is None else float(e_min_meV)
    band = energy > e_lo
    if not band.any():
        raise FitError(f"no energy bin lies above e_min_meV = {e_lo:g} meV. Lower it.")
    if not 0.0 < min_coverage <= 1.0:
        raise FitError(f"min_coverage = {min_coverage}; pass a fraction in (0, 1].")
    cover = mask[:, band].mean(axis=1)
    cols = np.nonzero(cover >= min_coverage)[0]
    n_eq = len(cols) * len(powers)
    if len(cols) == 0:
        raise FitError(
            f"no q column has {100 * min_coverage:.0f} % of its energy bins measured (best "
            f"{100 * float(cover.max()):.0f} %). Measure more orientations or lower min_coverage."
        )
    if len(cols) < min_columns * len(cover):
        raise FitError(
            f"only {len(cols)} of {len(cover)} q columns have {100 * min_coverage:.0f} % of their energy "
            f"bins measured (the moment start needs {100 * min_columns:.0f} %). Measure more "
            "orientations, or start from the ML answer alone."
        )
    temperature = float(getattr(model, "temperature", 0.0) or 0.0)
    kt = KB_MEV_PER_K * temperature
    detail = -np.expm1(-energy / kt) if kt > 0 else np.ones_like(energy)
    efac = np.asarray(getattr(model, "energy_factor", np.ones_like(energy)), float)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.where(band & (efac > 0), detail * de / np.where(efac > 0, efac, 1.0), 0.0)
    g = np.stack([base * energy**p for p in powers])  # (n_p, n_E)
    msk = mask[cols].astype(float)  # (n_c, n_E)
    gm = g[:, None, :] * msk[None]  # (n_p, n_c, n_E)
    d = np.einsum("pce,ce->pc", gm, y[cols])
    var = np.einsum("pce,ce->pc", gm**2, np.where(mask[cols], err[cols], 0.0) ** 2)
    c_bg = gm.sum(axis=2)
    sw = 1.0 / np.sqrt(np.where(var > 0, var, np.inf))
    sw[~np.isfinite(sw)] = 0.0

    k = model.k
    theta = _start_vector(model, theta_start)
    from fcinv.fitting.spectrum_fit import model_prior

    pri = model_prior(model, np.asarray(model.theta0, float), prior, material_reference)
    if pri is not None:
        mu, sig = np.asarray(pri.mean, float), np.asarray(pri.sigma, float)
        lo, hi = mu - 2 * sig, mu + 2 * sig
    else:
        mu = np.asarray(model.theta0, float)
        sig = np.maximum(0.1 * np.abs(mu), 0.01 * max(float(np.abs(mu).max()), 1e-6))
        lo, hi = np.full(k, -np.inf), np.full(k, np.inf)
    theta = np.clip(theta, lo, hi)
    low0 = float(model.lowest_energy(theta[None])[0])
    if low0 < -_STABLE_TOL_MEV:
        raise FitError(
            f"the moment start's linearisation point is unstable (lowest mode {low0:.2f} meV). "
            "Pass a stable theta_start (e.g. the reference)."
        )

    def moments(images: np.ndarray) -> np.ndarray:
        return np.einsum("pce,bce->bpc", gm, images[:, cols].astype(float))

    def probes(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moments at t and at t + h_p e_p (h towards the stable side), and h."""
        h = step_fraction * sig
        probe = t[None] + np.diag(h)
        ok = model.is_stable(probe) if hasattr(model, "is_stable") else np.ones(k, bool)
        h = np.where(ok, h, -h)
        m = moments(np.asarray(model.spectra(np.vstack([t[None], t[None] + np.diag(h)])), float))
        return m, h

    nb = 1 + int(fit_background)
    w_rows = sw.ravel()

    # 1. the sum-rule step: linear least squares in (s, v = s(θ − θ_c), b) at θ_c = the start
    m, h = probes(theta)
    m0 = m[0]
    A = (m[1:] - m0[None]) / h[:, None, None]  # (k, n_p, n_c)
    lin = [m0.ravel()[:, None], A.reshape(k, -1).T] + ([c_bg.ravel()[:, None]] if fit_background else [])
    M = np.hstack(lin) * w_rows[:, None]
    rhs = d.ravel() * w_rows
    Ms = M[:, [0] + ([k + 1] if fit_background else [])]
    xs, *_ = np.linalg.lstsq(Ms, rhs, rcond=None)
    s0 = float(xs[0]) if xs[0] > 0 else 1.0
    x0, *_ = np.linalg.lstsq(M, rhs, rcond=None)
    rms = float(np.sqrt(np.mean((M @ x0 - rhs) ** 2))) if n_eq > k + 2 else 1.0
    # with errors the rows are in σ units (model error only widens them); without errors their noise
    # level is unknown: the residual rms of the unregularised solve (as fit_spectrum does)
    floor = 1e-9 * (float(np.sqrt(np.mean(rhs**2))) or 1.0)
    scale_eq = max(1.0, rms) if has_errors else max(rms, floor)
    P = np.zeros((k, M.shape[1]))
    P[np.arange(k), 1 + np.arange(k)] = 1.0 / (s0 * sig)
    big = np.vstack([M / scale_eq, P])
    colnorm = np.sqrt(np.sum(big**2, axis=0))
    colnorm[colnorm == 0] = 1.0
    x, *_ = np.linalg.lstsq(big / colnorm, np.concatenate([rhs / scale_eq, (mu - theta) / sig]), rcond=None)
    x = x / colnorm
    history = [theta.copy()]
    if np.isfinite(x[0]) and x[0] > 0:
        lin_theta = np.clip(theta + x[1 : k + 1] / x[0], lo, hi)
        lin_theta = _towards_stable(model, lin_theta, theta)
        s0, b0 = float(x[0]), (float(x[k + 1]) if fit_background else 0.0)
        theta = lin_theta
        history.append(theta.copy())
    else:
        b0 = 0.0

    # 2. the moments are not exactly linear (the corrections in the module docstring): damped
    # Gauss–Newton on the same equations, from the sum-rule step, inside the prior's box
    from scipy.optimize import least_squares

    cache: dict = {}

    def model_moments(t: np.ndarray):
        key = t.tobytes()
        if cache.get("key") != key:
            cache["key"], cache["m"] = key, probes(t)
        return cache["m"]

    def split(z):
        return z[:k], z[k], (z[k + 1] if fit_background else 0.0)

    def resid(z):
        t, s, bb = split(z)
        (m, _h) = model_moments(t)
        r = (s * m[0] + bb * c_bg - d).ravel() * w_rows / scale_eq
        return np.concatenate([r, (t - mu) / sig]) if pri is not None else r

    def jac(z):
        t, s, bb = split(z)
        m, h = model_moments(t)
        A = ((m[1:] - m[0][None]) / h[:, None, None]).reshape(k, -1).T  # (n_eq, k)
        cols_j = [s * A, m[0].ravel()[:, None]] + ([c_bg.ravel()[:, None]] if fit_background else [])
        J = np.hstack(cols_j) * (w_rows / scale_eq)[:, None]
        if pri is None:
            return J
        Pj = np.zeros((k, k + nb))
        Pj[np.arange(k), np.arange(k)] = 1.0 / sig
        return np.vstack([J, Pj])

    z0 = np.concatenate([np.clip(theta, lo + 1e-12, hi - 1e-12), [s0], [b0] if fit_background else []])
    zlo = np.concatenate([lo, [0.0], [-np.inf] if fit_background else []])
    zhi = np.concatenate([hi, [np.inf], [np.inf] if fit_background else []])
    it = 0
    if n_iter > 0:
        with np.errstate(over="ignore", invalid="ignore"):
            sol = least_squares(
                resid,
                z0,
                jac=jac,
                bounds=(zlo, zhi),
                method="trf",
                x_scale=np.concatenate(
                    [sig, [max(s0, 1e-300)], [max(abs(b0), 1e-12)] if fit_background else []]
                ),
                xtol=tol,
                ftol=1e-6,
                max_nfev=int(n_iter),
            )
        it = int(sol.nfev)
        if np.all(np.isfinite(sol.x)) and sol.cost <= 0.5 * float(np.sum(resid(z0) ** 2)):
            theta = _towards_stable(model, np.clip(sol.x[:k], lo, hi), theta)
            s0 = float(sol.x[k])
            b0 = float(sol.x[k + 1]) if fit_background else 0.0
            history.append(theta.copy())
    r_end = resid(np.concatenate([theta, [s0], [b0] if fit_background else []]))
    chi2 = float(np.sum(r_end[:n_eq] ** 2)) * scale_eq**2
    s_prev, b = s0, b0
    log.info("moment start: %d columns, %d evaluations, chi2 %.4g", len(cols), it, chi2)
    low = float(model.lowest_energy(theta[None])[0])
    return MomentStart(
        names=list(model.names),
        theta=theta,
        scale=float(s_prev),
        background=b,
        n_columns=len(cols),
        chi2=chi2,
        iterations=it,
        lowest_mode_meV=low,
        stable=low >= -_STABLE_TOL_MEV,
        history=history,
    )
