"""The background + Poisson noise model, its SNR and the 5×5 grid."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.dataset.toy import toy_grid, toy_spectra
from fcinv.models.scaling import minmax_scale
from fcinv.noise import (
    MIDDLE_SETTING,
    NOISE_GRID,
    NoiseAugmenter,
    NoiseError,
    NoiseSetting,
    add_noise,
    expected_snr,
    measured_snr,
)


@pytest.fixture
def spectra() -> np.ndarray:
    theta = np.random.default_rng(0).uniform(0.5, 1.5, (6, 3))
    return 7.0 * toy_spectra(theta, toy_grid(20, 16)) + 2.0  # arbitrary units and offset


def test_poisson_mean_and_variance():
    """N = C / P has mean I + B and variance (I + B) / P, pixel by pixel."""
    clean = np.array([[0.0, 0.25], [0.5, 1.0]])
    b, p = 0.1, 50.0
    draws = add_noise(np.broadcast_to(clean, (20000, 2, 2)), b, p, np.random.default_rng(1), rescale=False)
    lam = clean + b
    np.testing.assert_allclose(draws.mean(axis=0), lam, rtol=0.01)
    np.testing.assert_allclose(draws.var(axis=0), lam / p, rtol=0.05)
    np.testing.assert_allclose(draws * p, np.round(draws * p), atol=1e-3)  # integer counts


def test_same_seed_same_noise(spectra):
    a = add_noise(spectra, 0.1, 300, np.random.default_rng(5))
    b = add_noise(spectra, 0.1, 300, np.random.default_rng(5))
    c = add_noise(spectra, 0.1, 300, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_rescaled_output_is_model_input(spectra):
    noisy = add_noise(spectra, 0.2, 100, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.shape == spectra.shape
    np.testing.assert_allclose(noisy.min(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(noisy.max(axis=(1, 2)), 1.0)


def test_noise_decreases_with_scale(spectra):
    clean = minmax_scale(spectra)
    errs = [
        np.abs(add_noise(spectra, 0.0, p, np.random.default_rng(0)) - clean).mean() for p in (10, 100, 1e4)
    ]
    assert errs[0] > errs[1] > errs[2]
    np.testing.assert_allclose(add_noise(spectra, 0.3, np.inf, np.random.default_rng(0)), clean, atol=1e-6)


def test_snr_definition_matches_draws(spectra):
    """The analytic SNR agrees with the SNR measured on a draw (mean over spectra)."""
    for b, p in [(0.0, 1e4), (0.1, 300), (0.4, 10)]:
        exp = expected_snr(spectra, b, p)
        meas = measured_snr(spectra, add_noise(spectra, b, p, np.random.default_rng(2), rescale=False), b)
        np.testing.assert_allclose(meas.mean(), exp.mean(), rtol=0.05)
    i = minmax_scale(spectra[0]).astype(float)
    s = i > 0.1
    np.testing.assert_allclose(
        expected_snr(spectra[0], 0.1, 300), i[s].mean() / np.sqrt(((i[s] + 0.1) / 300).mean())
    )


def test_grid_spans_mild_to_heavy(spectra):
    assert NOISE_GRID.shape == (5, 5)
    assert MIDDLE_SETTING == NoiseSetting(0.1, 300.0)
    snr = np.array(
        [
            [
                np.median(expected_snr(spectra, s.background, s.scale))
                for j, s in [(j, NOISE_GRID.setting(i, j)) for j in range(5)]
            ]
            for i in range(5)
        ]
    )
    assert np.all(np.diff(snr, axis=1) < 0), "SNR must fall along P (columns)"
    assert np.all(np.diff(snr, axis=0) <= 0), "SNR must fall along B (rows)"
    assert snr[0, 0] / snr[-1, -1] > 30
    assert len(list(NOISE_GRID)) == 25


def test_masked_pixels_stay_masked(spectra):
    x = spectra.copy()
    x[:, 3, :] = np.nan
    raw = add_noise(x, 0.1, 300, np.random.default_rng(0), rescale=False)
    assert np.isnan(raw[:, 3, :]).all() and not np.isnan(np.delete(raw, 3, axis=1)).any()
    scaled = add_noise(x, 0.1, 300, np.random.default_rng(0))
    assert np.all(scaled[:, 3, :] == 0) and np.isfinite(scaled).all()


def test_per_spectrum_settings(spectra):
    b = np.array([0.0, 0.4, 0.0, 0.4, 0.0, 0.4])
    p = np.array([1e4, 10, 1e4, 10, 1e4, 10])
    raw = add_noise(spectra, b, p, np.random.default_rng(0), rescale=False)
    clean = minmax_scale(spectra)
    err = np.abs(raw - clean - b[:, None, None]).mean(axis=(1, 2))
    assert err[1::2].min() > 5 * err[0::2].max()


def test_augmenter(spectra):
    aug = NoiseAugmenter(p_clean=0.5)
    b, p = aug.sample(2000, np.random.default_rng(0))
    clean = np.isinf(p)
    assert 0.45 < clean.mean() < 0.55 and np.all(b[clean] == 0)
    assert b[~clean].min() >= 0 and b[~clean].max() <= 0.4
    assert p[~clean].min() >= 10 and p[~clean].max() <= 1e4
    a1 = aug(spectra, np.random.default_rng(3))
    np.testing.assert_array_equal(a1, aug(spectra, np.random.default_rng(3)))


@pytest.mark.parametrize(
    "b, p, msg", [(-0.1, 10, "background B=-0.1"), (0.1, 0, "scale P=0"), (np.nan, 10, "background B=nan")]
)
def test_bad_parameters(spectra, b, p, msg):
    with pytest.raises(NoiseError, match=msg):
        add_noise(spectra, b, p, np.random.default_rng(0))
    with pytest.raises(NoiseError, match=msg):
        NoiseSetting(b, p)
