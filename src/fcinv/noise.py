"""Counting-noise model of a measured spectrum, its SNR, and the 5×5 robustness grid.

The model (our definition of the paper's "constant background B plus Poisson
counting statistics at scale P"; the paper's SI section 4 is not available):

1. the clean spectrum is min–max scaled to [0, 1] (:func:`~fcinv.models.scaling.minmax_scale`),
   giving I with peak 1;
2. counts are drawn per pixel, ``C ~ Poisson(P · (I + B))``: P is the number of
   counts at unit intensity (large P = low noise), B a constant background as a
   fraction of the peak;
3. the noisy intensity is ``N = C / P`` (expectation I + B, variance (I + B) / P);
4. ``N`` is min–max scaled again, exactly as inference scales a measured input
   (``rescale=True``), which removes most of the background offset but not its
   noise.

Masked pixels (NaN) stay masked: they get no counts and become 0 on re-scaling.

SNR (one number per spectrum): over the signal pixels S = {I > 0.1}, the mean
clean signal divided by the root-mean-square Poisson noise,

    SNR = mean_S(I) / sqrt(mean_S((I + B) / P)),

i.e. the typical signal of a pixel on a phonon line over its counting noise,
before the re-scaling of step 4. :func:`expected_snr` computes it from (I, B, P);
:func:`measured_snr` estimates it from a noisy draw (they agree on average).

The grid spans mild to heavy noise: B ∈ {0, 0.05, 0.1, 0.2, 0.4} (background
0–40 % of the peak) × P ∈ {10⁴, 10³, 300, 100, 10} counts at the peak. Its middle,
B = 0.1 and P = 300, is our stand-in for a realistic folded ToF measurement
(a few hundred counts in the strongest bins of a path-folded I(q, E), a
background of ~10 % of the peak).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fcinv.errors import FcinvError
from fcinv.models.scaling import minmax_scale

#: Pixels with clean scaled intensity above this are "signal" in the SNR.
SNR_THRESHOLD = 0.1


class NoiseError(FcinvError):
    """A noise parameter is out of range."""


def _check(background: float, scale: float) -> None:
    if not (np.isfinite(background) and background >= 0):
        raise NoiseError(
            f"background B={background} must be finite and >= 0 (a fraction of the peak). Pass e.g. 0.1."
        )
    if not (scale > 0):
        raise NoiseError(f"scale P={scale} must be > 0 (counts at unit intensity). Pass e.g. 300.")


@dataclass(frozen=True)
class NoiseSetting:
    """One (B, P) noise setting.

    Parameters
    ----------
    background
        B, constant background as a fraction of the peak intensity (>= 0).
    scale
        P, counts at unit (peak) intensity (> 0); ``inf`` means no counting noise.
    """

    background: float
    scale: float

    def __post_init__(self) -> None:
        _check(self.background, self.scale)

    @property
    def label(self) -> str:
        """Short label, e.g. ``"B=0.1 P=300"``."""
        return f"B={self.background:g} P={self.scale:g}"


@dataclass(frozen=True)
class NoiseGrid:
    """A rectangular grid of noise settings: rows = backgrounds, columns = scales."""

    backgrounds: tuple[float, ...]
    scales: tuple[float, ...]

    def __post_init__(self) -> None:
        for b in self.backgrounds:
            for p in self.scales:
                _check(b, p)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.backgrounds), len(self.scales))

    def setting(self, i: int, j: int) -> NoiseSetting:
        """The setting at row ``i`` (background) and column ``j`` (scale)."""
        return NoiseSetting(self.backgrounds[i], self.scales[j])

    def __iter__(self) -> Iterator[tuple[int, int, NoiseSetting]]:
        """Yield ``(i, j, setting)`` over the grid, row by row."""
        for i in range(len(self.backgrounds)):
            for j in range(len(self.scales)):
                yield i, j, self.setting(i, j)

    @property
    def middle(self) -> NoiseSetting:
        """The central setting (the realistic experiment)."""
        return self.setting(len(self.backgrounds) // 2, len(self.scales) // 2)

    def to_dict(self) -> dict:
        return {"backgrounds": list(self.backgrounds), "scales": list(self.scales)}


#: Backgrounds B (fraction of the peak), mild → heavy.
NOISE_BACKGROUNDS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.4)
#: Counting scales P (counts at the peak), mild → heavy.
NOISE_SCALES: tuple[float, ...] = (1e4, 1e3, 300.0, 100.0, 10.0)
#: The 5×5 robustness grid.
NOISE_GRID = NoiseGrid(NOISE_BACKGROUNDS, NOISE_SCALES)
#: Its middle setting, B = 0.1, P = 300: a realistic folded ToF measurement.
MIDDLE_SETTING: NoiseSetting = NOISE_GRID.middle


def add_noise(
    spectra: np.ndarray,
    background: float | np.ndarray,
    scale: float | np.ndarray,
    rng: np.random.Generator,
    rescale: bool = True,
) -> np.ndarray:
    """Draw noisy versions of spectra under the background + Poisson model.

    Parameters
    ----------
    spectra
        Shape (..., n_q, n_E), clean intensities (any units; they are min–max scaled first).
        NaN marks masked pixels.
    background
        B, a scalar or one value per spectrum (shape ``spectra.shape[:-2]``).
    scale
        P, a scalar or one value per spectrum; ``np.inf`` returns the clean spectrum.
    rng
        Source of the Poisson draws.
    rescale
        Min–max scale the result (the model input). With False, return ``N = C / P``
        in units of the clean peak (expectation I + B), NaN where masked.

    Returns
    -------
    np.ndarray
        Same shape as ``spectra``, float32.
    """
    x = np.asarray(spectra)
    if x.ndim < 2:
        raise NoiseError(f"spectra have shape {x.shape}; expected (..., n_q, n_E). Pass 2-D spectra.")
    batch = x.shape[:-2]
    b = (
        np.broadcast_to(np.asarray(background, dtype=float), batch)
        if np.ndim(background)
        else np.full(batch, float(background))
    )
    p = (
        np.broadcast_to(np.asarray(scale, dtype=float), batch)
        if np.ndim(scale)
        else np.full(batch, float(scale))
    )
    for bv, pv in zip(np.ravel(b)[:1000], np.ravel(p)[:1000]):
        _check(bv, pv)
    mask = ~np.isfinite(x)
    clean = minmax_scale(x).astype(np.float64)
    b_ = b[..., None, None]
    p_ = p[..., None, None]
    lam = np.where(np.isfinite(p_), p_, 1.0) * (clean + b_)
    counts = rng.poisson(lam).astype(np.float64)
    noisy = np.where(np.isfinite(p_), counts / np.where(np.isfinite(p_), p_, 1.0), clean + b_)
    noisy = np.where(mask, np.nan, noisy)
    if rescale:
        return minmax_scale(noisy)
    return noisy.astype(np.float32)


def expected_snr(
    spectra: np.ndarray, background: float, scale: float, threshold: float = SNR_THRESHOLD
) -> np.ndarray:
    """SNR of spectra under (B, P): ``mean_S(I) / sqrt(mean_S((I + B) / P))`` over S = {I > threshold}.

    Parameters
    ----------
    spectra
        Shape (..., n_q, n_E) clean intensities (min–max scaled internally).
    background, scale
        B and P.
    threshold
        Signal-pixel threshold on the scaled clean intensity.

    Returns
    -------
    np.ndarray
        Shape ``spectra.shape[:-2]`` float64 (a 0-d array for one spectrum); ``inf`` for P = inf.
    """
    _check(background, scale)
    i = minmax_scale(spectra).astype(np.float64)
    s = i > threshold
    n = np.maximum(s.sum(axis=(-2, -1)), 1)
    mean_i = np.where(s, i, 0).sum(axis=(-2, -1)) / n
    if not np.isfinite(scale):
        return np.full(mean_i.shape, np.inf)
    mean_var = np.where(s, (i + background) / scale, 0).sum(axis=(-2, -1)) / n
    return mean_i / np.sqrt(mean_var)


def measured_snr(
    clean: np.ndarray, noisy_unscaled: np.ndarray, background: float, threshold: float = SNR_THRESHOLD
) -> np.ndarray:
    """Estimate the SNR from one noisy draw (``add_noise(..., rescale=False)``).

    ``mean_S(I) / sqrt(mean_S((N − I − B)²))`` over S = {I > threshold}; shape ``clean.shape[:-2]``.
    """
    i = minmax_scale(clean).astype(np.float64)
    nz = np.asarray(noisy_unscaled, dtype=np.float64)
    s = (i > threshold) & np.isfinite(nz)
    n = np.maximum(s.sum(axis=(-2, -1)), 1)
    mean_i = np.where(s, i, 0).sum(axis=(-2, -1)) / n
    mse = np.where(s, (np.nan_to_num(nz) - i - background) ** 2, 0).sum(axis=(-2, -1)) / n
    with np.errstate(divide="ignore"):
        return mean_i / np.sqrt(mse)


@dataclass(frozen=True)
class NoiseAugmenter:
    """Random noise for training: per spectrum B ~ U(b_range), log10 P ~ U(log10 p_range).

    A fraction ``p_clean`` of the spectra stays clean (so the model keeps its
    clean-data accuracy). The default ranges are those of :data:`NOISE_GRID`.
    """

    b_range: tuple[float, float] = (min(NOISE_BACKGROUNDS), max(NOISE_BACKGROUNDS))
    p_range: tuple[float, float] = (min(NOISE_SCALES), max(NOISE_SCALES))
    p_clean: float = 0.2

    def __post_init__(self) -> None:
        _check(self.b_range[0], self.p_range[0])
        _check(self.b_range[1], self.p_range[1])
        if not 0 <= self.p_clean <= 1:
            raise NoiseError(
                f"p_clean={self.p_clean} must be in [0, 1]. Pass the fraction of spectra left clean."
            )

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` (B, P) pairs; clean ones have P = inf and B = 0."""
        b = rng.uniform(self.b_range[0], self.b_range[1], n)
        p = 10.0 ** rng.uniform(np.log10(self.p_range[0]), np.log10(self.p_range[1]), n)
        clean = rng.random(n) < self.p_clean
        return np.where(clean, 0.0, b), np.where(clean, np.inf, p)

    def __call__(self, spectra: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy, re-scaled copies of ``spectra`` (N, n_q, n_E) → (N, n_q, n_E) float32."""
        b, p = self.sample(len(spectra), rng)
        return add_noise(spectra, b, p, rng, rescale=True)

    def to_dict(self) -> dict:
        return {"b_range": list(self.b_range), "p_range": list(self.p_range), "p_clean": self.p_clean}
