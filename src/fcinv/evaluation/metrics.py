"""Accuracy of θ predictions: R² and MAE per parameter, on clean and noisy test spectra.

Definitions (per parameter j over the N test samples):
``R²_j = 1 − Σ (θ̂ − θ)² / Σ (θ − mean θ)²`` and ``MAE_j = mean |θ̂ − θ|`` in eV/Å².
Predictions of the VAE path regress μ (``k_samples=0``, deterministic) unless
``k_samples`` > 0, in which case the mean of K latent samples is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from fcinv.errors import DataError
from fcinv.noise import NOISE_GRID, NoiseGrid, add_noise, expected_snr

log = logging.getLogger(__name__)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column.

    Parameters
    ----------
    y_true, y_pred
        Shape (N, k).

    Returns
    -------
    np.ndarray
        Shape (k,) float64; NaN for a column with no variance.
    """
    y_true, y_pred = _check(y_true, y_pred)
    ss_res = ((y_pred - y_true) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean absolute error per column, shape (k,), in the units of the inputs."""
    y_true, y_pred = _check(y_true, y_pred)
    return np.abs(y_pred - y_true).mean(axis=0)


def _check(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[0] < 2:
        raise DataError(f"true and predicted values must both be (N >= 2, k); got {a.shape} and {b.shape}.")
    return a, b


@dataclass
class FCMetrics:
    """R² and MAE per parameter."""

    names: tuple[str, ...]
    r2: np.ndarray
    mae: np.ndarray
    n: int

    @classmethod
    def compute(cls, names, y_true: np.ndarray, y_pred: np.ndarray) -> FCMetrics:
        return cls(tuple(names), r2_score(y_true, y_pred), mae(y_true, y_pred), int(len(y_true)))

    def to_dict(self) -> dict:
        return {
            "n": self.n,
            "unit_mae": "eV/Å^2",
            "per_fc": {
                name: {"r2": float(r), "mae": float(m)} for name, r, m in zip(self.names, self.r2, self.mae)
            },
        }


@dataclass
class NoiseGridResult:
    """R² and MAE per (background, scale) setting and parameter.

    Attributes
    ----------
    r2, mae
        Shape (n_B, n_P, k).
    snr_median
        Shape (n_B, n_P): median SNR of the test spectra at each setting.
    """

    grid: NoiseGrid
    names: tuple[str, ...]
    r2: np.ndarray
    mae: np.ndarray
    snr_median: np.ndarray
    seed: int

    def middle(self) -> dict:
        i, j = len(self.grid.backgrounds) // 2, len(self.grid.scales) // 2
        return {
            "setting": self.grid.setting(i, j).label,
            "snr_median": float(self.snr_median[i, j]),
            "r2": {n: float(v) for n, v in zip(self.names, self.r2[i, j])},
        }

    def to_dict(self) -> dict:
        return {
            "grid": self.grid.to_dict(),
            "seed": self.seed,
            "names": list(self.names),
            "r2": self.r2.tolist(),
            "mae": self.mae.tolist(),
            "snr_median": self.snr_median.tolist(),
            "middle": self.middle(),
        }


def noisy_test_sets(spectra: np.ndarray, grid: NoiseGrid = NOISE_GRID, seed: int = 0, progress: bool = True):
    """Yield ``(i, j, setting, noisy, snr)`` over the grid: re-scaled noisy copies and their SNRs.

    Each setting draws from its own generator ``default_rng([seed, i, j])``, so every
    model evaluated with the same seed sees the same noisy spectra.
    """
    for i, j, s in tqdm(list(grid), desc="noise grid", disable=not progress, leave=False):
        noisy = add_noise(spectra, s.background, s.scale, np.random.default_rng([seed, i, j]))
        yield i, j, s, noisy, expected_snr(spectra, s.background, s.scale)


def noise_grid_metrics(
    predictors: dict,
    theta: np.ndarray,
    spectra: np.ndarray,
    grid: NoiseGrid = NOISE_GRID,
    seed: int = 0,
    k_samples: int = 0,
    progress: bool = True,
) -> dict[str, NoiseGridResult]:
    """R² and MAE of each predictor over the noise grid, on identical noisy draws.

    Parameters
    ----------
    predictors
        label → :class:`fcinv.inference.FCPredictor`.
    theta
        Shape (N, k) true parameters, eV/Å².
    spectra
        Shape (N, n_q, n_E) clean test spectra.
    """
    nb, npp = grid.shape
    out = {}
    acc = {
        lab: (np.full((nb, npp, theta.shape[1]), np.nan), np.full((nb, npp, theta.shape[1]), np.nan))
        for lab in predictors
    }
    snr = np.zeros((nb, npp))
    for i, j, _s, noisy, s_snr in noisy_test_sets(spectra, grid, seed, progress):
        snr[i, j] = float(np.median(s_snr))
        for lab, pred in predictors.items():
            y, _ = pred.predict_batch(noisy, k_samples=k_samples, seed=seed)
            acc[lab][0][i, j] = r2_score(theta, y)
            acc[lab][1][i, j] = mae(theta, y)
    for lab, pred in predictors.items():
        out[lab] = NoiseGridResult(grid, tuple(pred.names), acc[lab][0], acc[lab][1], snr.copy(), seed)
    return out
