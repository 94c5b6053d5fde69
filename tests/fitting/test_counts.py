"""The count-honest error model: the exposure in the file, the Poisson fit at truth level, zero counts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fcinv.experiment.folded import FoldedSpectrum, read_folded, write_folded
from fcinv.fitting import fit_spectrum
from fcinv.fitting.image import _as_pixels, deviance_residuals

from .fit_helpers import spring_model


def _low_count(model, seed: int, scale: float = 1.0, background: float = 0.02):
    """Poisson counts of mean c·μ, μ = scale·I(θ0) + background, exposure c log-uniform over 0.05–50."""
    rng = np.random.default_rng(seed)
    img = np.asarray(model.spectra(model.theta0[None])[0], float)
    img = img / img.max()  # the fitted scale is then scale / max I(θ0)
    c = np.exp(rng.uniform(np.log(0.05), np.log(50.0), img.shape))
    mu = scale * img + background
    n = rng.poisson(c * mu)
    fs = FoldedSpectrum.from_arrays(n / c, model.grid, error=np.sqrt(n) / c, exposure=c)
    return fs, mu, c, n


def test_exposure_round_trip_and_old_files(tmp_path):
    model = spring_model("Ge")
    fs, _, c, _ = _low_count(model, 0)
    path = tmp_path / "f.h5"
    write_folded(path, fs)
    back = read_folded(path)
    np.testing.assert_array_equal(back.exposure, c)
    assert back.has_exposure
    with h5py.File(path, "a") as f:  # a file written before the exposure existed
        del f["exposure"]
    old = read_folded(path)
    assert old.exposure is None and not old.has_exposure
    np.testing.assert_array_equal(old.intensity, fs.intensity)


def test_truth_level_chi2_is_dof_with_poisson_and_not_with_errors():
    model = spring_model("Ge")
    fs, _, _, n = _low_count(model, 1)
    assert np.mean(n == 0) > 0.3  # a low-count case: many empty pixels
    kw = {"theta_start": model.theta0, "prior": "none", "outliers": False, "presmooth_meV": None}
    p = fit_spectrum(model, fs, **kw)
    assert p.extra["weighting"] == "poisson"  # the default when the data carry their exposure
    assert abs(p.chi2_dof - 1.0) < 0.15, p.chi2_dof
    s_true = 1.0 / float(np.max(model.spectra(model.theta0[None])[0]))
    assert abs(p.extra["scale"] / s_true - 1.0) < 3 * p.extra["scale_sigma"] / s_true + 0.01
    e = fit_spectrum(model, fs, weighting="errors", **kw)  # 1/error weights with the floor (Neyman χ²)
    assert abs(e.chi2_dof - 1.0) > 0.2, e.chi2_dof  # fails the tolerance the Poisson fit meets
    assert e.extra["scale"] / s_true < 0.5  # and biases the scale down (zero-count pixels over-weighted)


def test_zero_count_pixel_is_weighted_by_its_own_exposure():
    model = spring_model("Ge")
    fs, mu, c, n = _low_count(model, 2)
    y, w, mask, _ = _as_pixels(model, fs, "auto")
    zero = n[mask] == 0
    assert zero.sum() > 10
    # data-based weight: one count in the pixel's own exposure, w = √(c / (1/c)) = c
    np.testing.assert_allclose(w[zero], c[mask][zero], rtol=1e-12)
    # the fit's misfit of an empty pixel: deviance 2cμ, from its own exposure and the model's mean
    r, dr = deviance_residuals(mu[mask][zero], y[zero], c[mask][zero], 1e-12)
    np.testing.assert_allclose(r**2, 2 * c[mask][zero] * mu[mask][zero], rtol=1e-10)
    np.testing.assert_allclose(dr, np.sqrt(c[mask][zero] / (2 * mu[mask][zero])), rtol=1e-10)


def test_deviance_jacobian_matches_differences():
    rng = np.random.default_rng(3)
    y = np.r_[0.0, 0.0, rng.uniform(0.1, 5, 20)]
    c = rng.uniform(0.1, 10, len(y))
    mu = np.r_[0.3, -0.2, rng.uniform(0.05, 5, 20)]  # one below the floor
    h = 1e-7
    r, dr = deviance_residuals(mu, y, c, 1e-3)
    num = (deviance_residuals(mu + h, y, c, 1e-3)[0] - deviance_residuals(mu - h, y, c, 1e-3)[0]) / (2 * h)
    np.testing.assert_allclose(dr, num, rtol=1e-4, atol=1e-6)


def test_poisson_weighting_needs_exposure():
    from fcinv.fitting import FitError

    model = spring_model("Ge")
    fs, *_ = _low_count(model, 4)
    plain = FoldedSpectrum.from_arrays(fs.intensity, model.grid, error=fs.error)
    with pytest.raises(FitError, match="exposure"):
        fit_spectrum(model, plain, weighting="poisson", prior="none")
