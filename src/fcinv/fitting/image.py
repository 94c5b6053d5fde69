"""The forward image of a spectrum fit and its Jacobian with respect to θ; the data as pixels.

Used by :mod:`fcinv.fitting.spectrum_fit` (and importable from there, as before). The forward
model's dynamical matrix is linear in θ, D(q; θ) = M_c + Σ_p θ_p M_p, so with eigenpairs
(ω²_n, e_n)

    ∂ω²_n/∂θ_p = e_nᵀ M_p e_n,    ∂E_n/∂θ_p = C² / (2 E_n) · ∂ω²_n/∂θ_p   (C: √(eV/Å²/amu) → meV),

and the derivative of each Gaussian line, integrated over an energy bin, with respect to its
centre is a difference of normal densities at the bin edges. Degenerate modes: only sums over a
degenerate subspace enter the image, and those sums are basis-independent, so the Jacobian is
exact there too. A model without this structure (e.g. the physical model) gets central
differences from one batched ``spectra`` call of 2k + 1 images.

The data side (:func:`_as_pixels`): the measured pixels (the mask), their weights
w = 1/error where the data carry errors (else 1; a zero error takes the 10th percentile of the
positive errors), the best linear scale and background, and the start vector of a fit.

Count-honest weighting (``weighting="poisson"``, the default of ``"auto"`` when the folded spectrum
carries an ``exposure`` c, the effective counts per unit of intensity of each pixel): the variance of
a pixel is the model's μ/c, not the data's, and the misfit is the Poisson deviance
(:func:`deviance_residuals`, Cash), so a pixel with zero counts is weighted by its own exposure
(its deviance is 2cμ) and low-count pixels do not bias the scale down as 1/error weights (Neyman χ²)
do. The goodness of fit is Pearson's χ² with the model variance, Σ c (y − μ)²/μ, whose expectation is
the number of pixels at any count level. The data-based weights w = √(c / max(y, 1/c)) (one count in
the pixel's own exposure where it has none) serve only the start screening and the pre-smoothed stage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

from fcinv.errors import GridError
from fcinv.fitting._base import FitError, mode_gradients
from fcinv.forward import ForwardModel
from fcinv.units import EV_A2_AMU_TO_MEV

log = logging.getLogger(__name__)

Weighting = Literal["auto", "poisson", "errors", "uniform"]
_FWHM_TO_SIGMA = 1.0 / 2.3548200450309493
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
#: |E| floor (meV) in ∂E/∂ω², against the 1/E singularity of exactly-zero modes.
_E_FLOOR_MEV = 1e-3


# ------------------------------------------------------------ model + Jacobian
def model_with_free(model, free: Sequence[str]):
    """The same forward model varying ``free`` instead.

    A :class:`~fcinv.forward.ForwardModel` is rebuilt (same reference, θ_ref, broadening, grid);
    any other model with the same interface (e.g. the physical model) is wrapped so that the
    parameters it varies but ``free`` leaves out stay at their ``theta0`` values.
    """
    free = list(free)
    if free == list(model.names):
        return model
    if isinstance(model, ForwardModel):
        return ForwardModel(
            model.space,
            model.grid,
            model.theta_ref,
            reference=model.reference,
            free=free,
            broadening=model.broadening,
            mesh=model.mesh,
        )
    return _SubsetModel(model, free)


class _SubsetModel:
    """A model varying a subset of another model's parameters (the rest held at its ``theta0``)."""

    def __init__(self, base, free: list[str]):
        unknown = [n for n in free if n not in base.names]
        if unknown:
            raise FitError(
                f"the forward model varies {list(base.names)}; it cannot fit {unknown}. Build it with "
                "those parameters free."
            )
        self.base = base
        self.free = list(free)
        self._idx = np.array([list(base.names).index(n) for n in free])
        self._fixed = np.asarray(base.theta0, float).copy()
        for attr in ("space", "grid", "theta_ref", "reference"):
            if hasattr(base, attr):
                setattr(self, attr, getattr(base, attr))

    @property
    def names(self) -> list[str]:
        return list(self.free)

    @property
    def k(self) -> int:
        return len(self.free)

    @property
    def theta0(self) -> np.ndarray:
        return self._fixed[self._idx].copy()

    def check(self, theta) -> np.ndarray:
        t = np.asarray(theta, dtype=float)
        t = t[None] if t.ndim == 1 else t
        if t.ndim != 2 or t.shape[1] != self.k or not np.all(np.isfinite(t)):
            raise FitError(
                f"theta has shape {np.shape(theta)} (or is not finite); the fit varies {self.k} "
                f"parameters ({', '.join(self.free)})."
            )
        return t

    def _embed(self, theta) -> np.ndarray:
        t = self.check(theta)
        out = np.repeat(self._fixed[None], len(t), axis=0)
        out[:, self._idx] = t
        return out

    def full_theta(self, theta) -> np.ndarray:
        return self.base.full_theta(self._embed(theta))

    def spectra(self, theta, **kw):
        return self.base.spectra(self._embed(theta), **kw)

    def frequencies(self, theta, *a, **kw):
        return self.base.frequencies(self._embed(theta), *a, **kw)

    def lowest_energy(self, theta) -> np.ndarray:
        return self.base.lowest_energy(self._embed(theta))

    def is_stable(self, theta, *a, **kw) -> np.ndarray:
        return self.base.is_stable(self._embed(theta), *a, **kw)

    def describe(self) -> dict:
        d = dict(self.base.describe()) if hasattr(self.base, "describe") else {}
        d["free"] = list(self.free)
        return d


def image_and_jacobian(model, theta, *, jacobian: bool = True):
    """Image (n_q, n_E) float64 and ∂I/∂θ (n_q, n_E, k) per eV/Å² (None without ``jacobian``) of any
    forward model at θ (shape (k,), eV/Å², values of ``model.names``): analytic for ForwardModel,
    else central differences.

    Central-difference steps: h_p = 1e-3 · max(|θ_p|, 0.05 · max|θ|); all 2k + 1 images in one
    batched call of ``model.spectra``.
    """
    if isinstance(model, ForwardModel):
        return spectrum_and_jacobian(model, theta, jacobian=jacobian)
    t = model.check(theta)[0]
    if not jacobian:
        return np.asarray(model.spectra(t[None])[0], dtype=np.float64), None
    k = len(t)
    h = 1e-3 * np.maximum(np.abs(t), 0.05 * max(float(np.abs(t).max()), 1e-6))
    batch = np.repeat(t[None], 2 * k + 1, axis=0)
    batch[1 : k + 1][np.arange(k), np.arange(k)] += h
    batch[k + 1 :][np.arange(k), np.arange(k)] -= h
    imgs = np.asarray(model.spectra(batch), dtype=np.float64)
    jac = ((imgs[1 : k + 1] - imgs[k + 1 :]) / (2.0 * h)[:, None, None]).transpose(1, 2, 0)
    return imgs[0], jac


#: The former private name (used in this module).
_image_and_jacobian = image_and_jacobian


def spectrum_and_jacobian(
    model: ForwardModel, theta, *, jacobian: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """The forward image and its analytic Jacobian with respect to the free θ.

    Parameters
    ----------
    model
        The forward model (its free parameters are the columns of the Jacobian).
    theta
        Shape (k,), eV/Å²: values of ``model.names``.
    jacobian
        Also return ∂I/∂θ.

    Returns
    -------
    (image, jac)
        image shape (n_q, n_E) float64 (the numba kernel's image to ~1e-6, which uses a
        tabulated normal CDF cut at ±5σ); jac shape (n_q, n_E, k) float64 per eV/Å², or None.
    """
    t = model.check(theta)[0]
    dyn = model.path
    D = dyn.Mc + np.einsum("p,pqij->qij", t, dyn.Mp)
    if jacobian:
        w2, V = np.linalg.eigh(D)
    else:
        w2, V = np.linalg.eigvalsh(D), None
    C = EV_A2_AMU_TO_MEV
    E = np.sign(w2) * np.sqrt(np.abs(w2)) * C  # (n_q, m) meV
    br = model.broadening
    edges = model.grid.energy_edges
    sig = (br.fwhm0 + br.fwhm1 * np.maximum(E, 0.0)) * _FWHM_TO_SIGMA
    z = (edges[None, None, :] - E[..., None]) / sig[..., None]  # (n_q, m, n_E + 1)
    from scipy.special import ndtr

    cdf = ndtr(z)
    image = (cdf[..., 1:] - cdf[..., :-1]).sum(axis=1)
    if not jacobian:
        return image, None
    dsig = br.fwhm1 * _FWHM_TO_SIGMA * (E > 0)
    dz = -(1.0 + z * dsig[..., None]) / sig[..., None]  # ∂z/∂E
    dpdf = np.exp(-0.5 * z * z) * _INV_SQRT_2PI * dz
    dI_dE = dpdf[..., 1:] - dpdf[..., :-1]  # (n_q, m, n_E)
    g = mode_gradients(dyn.Mp, V)  # ∂ω²/∂θ_p, (n_q, m, k)
    dE = C * C / (2.0 * np.maximum(np.abs(E), _E_FLOOR_MEV))[..., None] * g
    jac = np.matmul(dI_dE.transpose(0, 2, 1), dE)  # (n_q, n_E, k)
    return image, jac


# --------------------------------------------------------------------- data
def spectrum_arrays(model, data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``data`` (a FoldedSpectrum or an (n_q, n_E) array) on the model's grid, checked: intensity,
    mask of the measured pixels and their errors (NaN where none), all of the grid's shape."""
    from fcinv.experiment.folded import FoldedSpectrum

    if isinstance(data, FoldedSpectrum):
        model.grid.check_same(data.grid, "the folded spectrum")
        y = np.asarray(data.intensity, float)
        mask = np.asarray(data.mask, bool).copy()
        err = np.asarray(data.error, float) if data.error is not None else np.full(y.shape, np.nan)
        bad = mask & ~np.isfinite(y)
        if bad.any():
            raise FitError(
                f"the folded spectrum has {int(bad.sum())} measured pixels that are NaN or infinite. "
                "Mask them out (mask=False) or refold the data."
            )
        return y, mask, err
    y = np.asarray(data, dtype=float)
    if y.shape != model.grid.shape:
        raise GridError(
            f"the spectrum has shape {y.shape} but the model's grid is {model.grid.shape} (n_q, "
            "n_E). Fold or rebin onto the model's grid, or pass a FoldedSpectrum."
        )
    if np.any(np.isinf(y)):
        raise FitError(
            f"the spectrum has {int(np.isinf(y).sum())} infinite values. Mark unmeasured pixels with NaN."
        )
    return y, np.isfinite(y), np.full(y.shape, np.nan)


def pixel_exposure(model, data, weighting: Weighting) -> np.ndarray | None:
    """The exposure c of the measured pixels (1-D, the mask's order) when the fit is count-honest
    (``weighting`` "poisson", or "auto" with data that carry one), else None."""
    from fcinv.experiment.folded import FoldedSpectrum

    if weighting not in ("auto", "poisson"):
        return None
    ok = isinstance(data, FoldedSpectrum) and data.has_exposure
    if weighting == "poisson" and not ok:
        raise FitError(
            "weighting='poisson' needs the folded spectrum's exposure (counts per intensity), which these "
            "data lack. Fold Poisson counts with fcinv (fcinv fold), or use weighting='errors' or 'auto'."
        )
    if not ok:
        return None
    return np.asarray(data.exposure, float)[np.asarray(data.mask, bool)]


def deviance_residuals(mu: np.ndarray, y: np.ndarray, c: np.ndarray, mu0: float):
    """Signed Poisson deviance residuals r = sign(μ − y) √D and ∂r/∂μ, per pixel.

    D = 2c (μ − y + y ln(y/μ)) is the Poisson deviance of n = c·y counts of mean c·μ; y ≤ ``mu0``
    counts as zero (D = 2cμ, r ≥ 0). Below ``mu0`` (an unphysical or vanishing mean) D continues as
    its quadratic Taylor expansion at ``mu0`` (positive, smooth), so a least-squares step may cross it.
    """
    yz = np.where(y > mu0, y, 0.0)
    m = np.maximum(mu, mu0)
    d = m - yz
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(yz > 0, yz * np.log1p(d / np.where(yz > 0, yz, 1.0)), 0.0)
        D = 2.0 * c * (d - t)
        D1 = 2.0 * c * (1.0 - yz / m)
    low = mu < mu0
    if np.any(low):
        dd = np.where(low, mu - mu0, 0.0)
        D2 = 2.0 * c * np.maximum(yz, mu0) / mu0**2
        D = np.where(low, D + D1 * dd + 0.5 * D2 * dd * dd, D)
        D1 = np.where(low, D1 + D2 * dd, D1)
    D = np.maximum(D, 0.0)
    sgn = np.where((yz > 0) & (mu < yz), -1.0, 1.0)
    r = sgn * np.sqrt(D)
    near = np.abs(mu - yz) <= 1e-6 * m
    with np.errstate(divide="ignore", invalid="ignore"):
        dr = np.where(near | (r == 0), np.sqrt(c / m), D1 / (2.0 * np.where(r == 0, 1.0, r)))
    return r, dr


def pearson_chi2(mu: np.ndarray, y: np.ndarray, c: np.ndarray, mu0: float) -> float:
    """Pearson's χ² with the model variance, Σ c (y − μ)² / μ (μ floored at ``mu0``)."""
    m = np.maximum(mu, mu0)
    return float(np.sum(c * (y - m) ** 2 / m))


def _as_pixels(
    model: ForwardModel, data, weighting: Weighting
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Measured values, weights and mask of ``data`` on the model's grid.

    With the count-honest weighting (:func:`pixel_exposure`) the weights are the data-based
    √(c / max(y, 1/c)): a zero-count pixel is weighted by its own exposure (one count's worth).
    """
    y, mask, err = spectrum_arrays(model, data)
    n = int(mask.sum())
    if n == 0:
        raise FitError("the spectrum has no measured pixel (all NaN/masked). Check its coverage.")
    if weighting not in ("auto", "poisson", "errors", "uniform"):
        raise FitError(f"weighting={weighting!r} is unknown. Use 'auto', 'poisson', 'errors' or 'uniform'.")
    c = pixel_exposure(model, data, weighting)
    if c is not None:
        yy = y[mask]
        return yy, np.sqrt(c / np.maximum(yy, 1.0 / c)), mask, True
    e = err[mask]
    has = bool(np.all(np.isfinite(e)) and np.any(e > 0))
    if weighting == "errors" and not has:
        raise FitError(
            f"weighting='errors' but {int((~np.isfinite(e)).sum())} of {n} measured pixels have no "
            "error. Use weighting='auto' or 'uniform'."
        )
    if has and weighting != "uniform":
        pos = e[e > 0]
        # a zero error (a pixel with zero counts) is not an infinitely precise pixel: such pixels get the
        # 10th percentile of the positive errors (about one count's worth), not the smallest one
        floor = float(np.percentile(pos, 10.0))
        if np.any(e <= 0):
            log.info(
                "%d pixels have zero error; using the 10th percentile of the positive errors (%.3g) there",
                int((e <= 0).sum()),
                floor,
            )
        w = 1.0 / np.where(e > 0, e, floor)
        return y[mask], w, mask, True
    return y[mask], np.ones(n), mask, False


def _linear_scale(img: np.ndarray, y: np.ndarray, w: np.ndarray, background: bool) -> tuple[float, float]:
    """Weighted least-squares scale (and background) of ``img`` to ``y``."""
    A = np.stack([img, np.ones_like(img)], axis=1) if background else img[:, None]
    sol, *_ = np.linalg.lstsq(A * w[:, None], y * w, rcond=None)
    return float(sol[0]), (float(sol[1]) if background else 0.0)


def _start_vector(model, theta_start) -> np.ndarray:
    """θ_start for ``model.names`` from None, a dict, a (k,) or full (n_params,) vector, or a prediction.

    Names the start does not give (or gives but are not free) take the model's ``theta0``.
    """
    if theta_start is None:
        return np.asarray(model.theta0, float)
    if hasattr(theta_start, "names") and hasattr(
        theta_start, "theta"
    ):  # an inference Prediction or a FitResult
        theta_start = dict(zip(theta_start.names, np.asarray(theta_start.theta, float)))
    space = getattr(model, "space", None)
    names = list(space.names) if space is not None else list(model.names)
    what = space.crystal.name if space is not None else "the model"
    if isinstance(theta_start, dict):
        unknown = [k for k in theta_start if k not in names]
        if unknown:
            raise FitError(
                f"theta_start names {unknown} are not parameters of {what} ({', '.join(names)}). Pass "
                "values by parameter name."
            )
        out = np.asarray(model.theta0, float).copy()
        for i, n in enumerate(model.names):
            if n in theta_start:
                out[i] = float(theta_start[n])
        return model.check(out)[0]
    t = np.asarray(theta_start, dtype=float).ravel()
    if t.shape == (model.k,):
        return model.check(t)[0]
    if t.shape == (len(names),):
        return model.check(t[[names.index(n) for n in model.names]])[0]
    raise FitError(
        f"theta_start has {t.size} values; pass {model.k} (the free parameters "
        f"{', '.join(model.names)}) or all {len(names)}, or a dict by name."
    )
