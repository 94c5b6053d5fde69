"""Fit of θ to I(q, E): analytic Jacobian, recovery from noiseless and noisy spectra, multi-start, refine, bad input."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from fcinv.dataset.generate import Domain
from fcinv.errors import ForceConstantError, GridError
from fcinv.experiment.folded import FoldedSpectrum
from fcinv.fitting import FitError, fit_spectrum, refine, resolve_free, spectrum_and_jacobian

from .fit_helpers import relative_error, spring_model, unnamed_spring_model


def masked(img: np.ndarray) -> np.ndarray:
    """Blank a band of q-bins and the top energies, as an incomplete measurement would."""
    out = np.array(img, dtype=float)
    out[20:35, :] = np.nan
    out[:, -10:] = np.nan
    return out


def test_jacobian_matches_finite_differences(spring):
    """∂I/∂θ from eigenvectors equals central differences of the image, and the image equals the numba kernel's."""
    theta = spring.theta0 * np.array([1.05, 0.97, 1.1, 0.9])
    img, jac = spectrum_and_jacobian(spring, theta)
    assert np.abs(img - spring.spectra(theta)[0]).max() < 1e-5 * img.max()
    h = 1e-6
    for p in range(spring.k):
        tp, tm = theta.copy(), theta.copy()
        tp[p] += h
        tm[p] -= h
        fd = (spectrum_and_jacobian(spring, tp, jacobian=False)[0] - spectrum_and_jacobian(spring, tm, jacobian=False)[0]) / (2 * h)
        assert np.abs(fd - jac[..., p]).max() < 1e-5 * np.abs(fd).max(), spring.names[p]


def test_fit_recovers_theta_from_noiseless_masked_spectrum(spring):
    """Start at the reference, truth 5-10 % away, a scale, a background and a masked band: θ recovered to 1e-5."""
    truth = spring.theta0 * np.array([1.08, 0.93, 1.1, 0.92])
    data = masked(2.5 * spring.spectra(truth)[0] + 0.05)
    res = fit_spectrum(spring, data)
    assert res.success, res.message
    assert relative_error(res.theta, truth).max() < 1e-5
    assert relative_error(res.theta_start, truth).min() > 0.05
    assert res.extra["scale"] == pytest.approx(2.5, rel=1e-5)
    assert res.extra["background"] == pytest.approx(0.05, abs=1e-5)
    assert res.extra["n_pixels"] == int(np.isfinite(data).sum())
    assert res.chi2 is None and res.chi2_dof is None  # no errors given
    d = res.as_dict()
    assert set(d["theta"]) == set(spring.names) and d["success"] is True and "statistical, local" in d["uncertainty"]


def test_fit_with_errors_gives_chi2_and_honest_sigma(ge_spring, rng):
    """Gaussian noise of known σ: χ²/dof within its statistical spread of 1, and θ within a few σ of the truth."""
    m = ge_spring
    truth = m.theta0 * np.array([1.04, 0.97, 1.05, 0.95])
    clean = 100.0 * m.spectra(truth)[0].astype(float) + 1.0
    err = np.full(clean.shape, 0.5)
    fs = FoldedSpectrum.from_arrays(clean + err * rng.normal(size=clean.shape), m.grid, error=err)
    res = fit_spectrum(m, fs)
    assert res.success and res.extra["weighting"] == "errors"
    assert abs(res.chi2_dof - 1.0) < 5 * np.sqrt(2.0 / res.dof)
    pulls = (res.theta - truth) / res.sigma
    assert np.all(np.abs(pulls) < 5), pulls
    assert np.all(res.sigma > 0) and np.allclose(res.covariance, res.covariance.T)


def test_multistart_escapes_a_local_minimum(ge_spring):
    """A truth the reference start cannot reach: one start stalls at a high cost, 4 screened starts find the truth."""
    m = ge_spring
    truth = m.theta0 * np.array([1.5, 0.7, 1.5, 0.5])
    assert m.is_stable(truth)[0]
    data = m.spectra(truth)[0]
    dom = Domain(tuple(m.names), m.theta0 - 0.6 * np.abs(m.theta0), m.theta0 + 0.6 * np.abs(m.theta0))
    one = fit_spectrum(m, data, prior=None)  # without the prior (which here happens to help) the local fit stalls
    many = fit_spectrum(m, data, n_starts=4, domain=dom, seed=0, prior=None)
    assert relative_error(one.theta, truth).max() > 0.1
    assert relative_error(many.theta, truth).max() < 1e-4
    assert many.cost < 1e-6 * one.cost
    assert len(many.extra["starts"]) == 4 and many.n_eval_total >= many.n_iter
    # the same seed gives the same starts
    again = fit_spectrum(m, data, n_starts=4, domain=dom, seed=0, max_nfev=1, prior=None)
    assert [s["theta_start"] for s in again.extra["starts"]] == [s["theta_start"] for s in many.extra["starts"]]


def test_refine_starts_from_a_prediction(ge_spring):
    """refine() takes an inference-like object (names, theta), matched by name, and says it was ML-initialised."""
    m = ge_spring
    truth = m.theta0 * np.array([1.2, 0.85, 1.3, 0.8])
    data = m.spectra(truth)[0]
    guess = SimpleNamespace(names=tuple(reversed(m.names)), theta=(truth * np.array([1.02, 0.98, 1.03, 0.97]))[::-1])
    res = refine(m, FoldedSpectrum.from_arrays(data.astype(float), m.grid), guess)
    assert res.success and relative_error(res.theta, truth).max() < 1e-5
    assert np.allclose(res.theta_start, truth * np.array([1.02, 0.98, 1.03, 0.97]))
    assert res.method.startswith("ML-initialised")
    with pytest.raises(FitError, match="one local fit"):
        refine(m, data, guess, n_starts=3)


def test_refine_screens_latent_samples(ge_spring):
    """A prediction whose mean is too far for a local fit, but with a latent sample near the truth: refine starts there."""
    m = ge_spring
    truth = m.theta0 * np.array([1.5, 0.7, 1.5, 0.5])
    data = m.spectra(truth)[0]
    far = m.theta0  # from here one local fit stalls (see test_multistart_escapes_a_local_minimum)
    rng = np.random.default_rng(0)
    samples = np.vstack([far * (1 + 0.1 * rng.normal(size=(20, 4))), truth * 1.02])
    pred = SimpleNamespace(names=tuple(m.names), theta=far, samples=samples)
    res = refine(m, data, pred)
    assert np.allclose(res.theta_start, truth * 1.02) and "21 latent-sample predictions" in res.method
    assert relative_error(res.theta, truth).max() < 1e-4
    with pytest.raises(FitError, match=r"candidates have shape \(2, 3\)"):
        fit_spectrum(m, data, candidates=np.ones((2, 3)))


def test_free_selection_rebuilds_the_model(ge_spring):
    """free= changes which parameters are fitted; the fixed ones stay at the model's reference."""
    m = ge_spring
    idx = m.space.index(["1NN_xx", "1NN_xy"])
    truth = m.theta_ref[idx] * np.array([1.05, 1.0])
    img = spring_model("Ge", free=["1NN_xx"]).spectra(truth[:1])[0]
    res = fit_spectrum(m, img, free=["1NN_xx", "1NN_xy"])
    assert res.names == ["1NN_xx", "1NN_xy"]
    assert res.theta == pytest.approx(truth, rel=1e-5)
    assert res.extra["theta_full"]["2NN_xx"] == pytest.approx(m.theta_ref[m.space.index(["2NN_xx"])[0]])


def test_resolve_free(ge_spring):
    space = ge_spring.space
    assert resolve_free(space, "all") == space.names
    assert resolve_free(space, "2NN") == ["2NN_xx", "2NN_zz", "2NN_xy", "2NN_yz"]
    assert resolve_free(space, "1NN_xy,1NN") == ["1NN_xy", "1NN_xx"]
    assert resolve_free(space, "top:2", ranking=["2NN_zz", "1NN_xx", "1NN_xy"]) == ["2NN_zz", "1NN_xx"]
    assert resolve_free(space, 1, ranking=["3NN_xx"]) == ["3NN_xx"]
    with pytest.raises(ForceConstantError, match="unknown free parameter or shell '9NN'"):
        resolve_free(space, ["9NN"])
    with pytest.raises(ForceConstantError, match="needs a sensitivity ranking"):
        resolve_free(space, "top:3")
    with pytest.raises(ForceConstantError, match="top:40 is out of range"):
        resolve_free(space, "top:40", ranking=space.names)


def test_nonconvergence_is_reported(ge_spring):
    m = ge_spring
    data = m.spectra(m.theta0 * np.array([1.2, 0.8, 1.3, 0.7]))[0]
    res = fit_spectrum(m, data, max_nfev=2, presmooth_meV=None)
    assert not res.success and "maximum number of function evaluations" in res.message
    with pytest.raises(FitError, match="did not converge after"):
        fit_spectrum(m, data, max_nfev=2, presmooth_meV=None, strict=True)


def test_bad_input(ge_spring):
    m = ge_spring
    data = m.spectra(m.theta0)[0]
    with pytest.raises(GridError, match=r"shape \(80, 140\) but the model's grid is \(140, 80\)"):
        fit_spectrum(m, data.T)
    other = spring_model("Nb")
    with pytest.raises(GridError, match="the folded spectrum is on another grid"):
        fit_spectrum(m, FoldedSpectrum.from_arrays(other.spectra(other.theta0)[0].astype(float), other.grid))
    with pytest.raises(FitError, match="no measured pixel"):
        fit_spectrum(m, np.full(m.grid.shape, np.nan))
    with pytest.raises(FitError, match="theta_start has 3 values"):
        fit_spectrum(m, data, theta_start=[1.0, 2.0, 3.0])
    with pytest.raises(FitError, match=r"theta_start names \['7NN_xx'\]"):
        fit_spectrum(m, data, theta_start={"7NN_xx": 1.0})
    with pytest.raises(ForceConstantError, match="unknown free parameter or shell 'bogus'"):
        fit_spectrum(m, data, free="bogus")
    with pytest.raises(FitError, match="weighting='errors' but"):
        fit_spectrum(m, data, weighting="errors")
    bare = unnamed_spring_model()
    with pytest.raises(FitError, match="has no embedded reference"):
        fit_spectrum(bare, bare.spectra(bare.theta0)[0], n_starts=2)
    with pytest.raises(FitError, match="lacks the free parameters"):
        fit_spectrum(m, data, n_starts=2, domain=Domain(("1NN_xx",), np.array([-3.0]), np.array([-1.0])))


def test_reference_model_recovers_sampled_parameters(ge_reference):
    """The embedded reference model (paper convention: D_ref, 8 sampled parameters): a noiseless spectrum 5 % away is recovered."""
    m = ge_reference.forward_model(free=list(ge_reference.paper_sampled), tail="reference")
    sign = np.where(np.arange(m.k) % 2 == 0, 1.0, -1.0)
    truth = m.theta0 * (1 + 0.05 * sign)
    res = fit_spectrum(m, m.spectra(truth)[0])
    assert res.success and res.extra["reference_fc"] == "full FC set"
    assert relative_error(res.theta[:4], truth[:4]).max() < 1e-4
