"""Input scaling of spectra and standardisation of targets, shared by training and inference.

Input scaling (the paper's): every spectrum is min–max scaled on its own to
[0, 1], ``x = (I − min I) / (max I − min I)``, over its finite pixels. Masked
pixels (NaN: no detector coverage) do not enter min and max and are set to 0
after scaling, i.e. they look like empty background to the model. A constant
spectrum (max = min) becomes all zeros. The same function is applied in
training, evaluation, the noise model and inference, so the model never sees
inputs scaled another way.

Targets are standardised per parameter, ``y = (θ − mean) / std``, with mean and
std of the training split, and stored in every checkpoint.

This module imports numpy only (torch is imported lazily by the tensor variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcinv.errors import CheckpointError, DataError

#: Description of the input scaling stored in checkpoints and compared on load.
INPUT_SCALING = {"method": "minmax_per_spectrum", "range": [0.0, 1.0], "nan": "zero_after_scaling"}


def minmax_scale(spectra: np.ndarray) -> np.ndarray:
    """Scale each spectrum to [0, 1] over its finite pixels; NaN → 0 after scaling.

    Parameters
    ----------
    spectra
        Shape (..., n_q, n_E), any float dtype, arbitrary intensity units.

    Returns
    -------
    np.ndarray
        Same shape, float32, values in [0, 1].
    """
    x = np.asarray(spectra, dtype=np.float32)
    if x.ndim < 2:
        raise DataError(
            f"a spectrum has shape (n_q, n_E); got shape {x.shape}. Pass a 2-D array or a stack of them."
        )
    finite = np.isfinite(x)
    if finite.all():
        lo = x.min(axis=(-2, -1), keepdims=True)
        hi = x.max(axis=(-2, -1), keepdims=True)
        rng = hi - lo
        out = (x - lo) / np.where(rng > 0, rng, 1.0)
        return np.where(rng > 0, out, 0.0).astype(np.float32)
    lo = np.where(finite, x, np.inf).min(axis=(-2, -1), keepdims=True)
    hi = np.where(finite, x, -np.inf).max(axis=(-2, -1), keepdims=True)
    lo = np.where(np.isfinite(lo), lo, 0.0)
    hi = np.where(np.isfinite(hi), hi, 0.0)
    rng = hi - lo
    with np.errstate(invalid="ignore"):
        out = (x - lo) / np.where(rng > 0, rng, 1.0)
    out = np.where(finite & (rng > 0), out, 0.0)
    return out.astype(np.float32)


def minmax_scale_torch(x):
    """Torch version of :func:`minmax_scale` for a tensor of shape (..., n_q, n_E)."""
    import torch

    finite = torch.isfinite(x)
    if bool(finite.all()):
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
    else:
        lo = torch.where(finite, x, torch.full_like(x, float("inf"))).amin(dim=(-2, -1), keepdim=True)
        hi = torch.where(finite, x, torch.full_like(x, float("-inf"))).amax(dim=(-2, -1), keepdim=True)
        lo = torch.where(torch.isfinite(lo), lo, torch.zeros_like(lo))
        hi = torch.where(torch.isfinite(hi), hi, torch.zeros_like(hi))
    rng = hi - lo
    out = (x - lo) / torch.where(rng > 0, rng, torch.ones_like(rng))
    return torch.where(finite & (rng > 0), out, torch.zeros_like(out))


@dataclass(frozen=True)
class Standardizer:
    """Per-parameter standardisation ``y = (θ − mean) / std``.

    Parameters
    ----------
    mean, std
        Shape (k,) float64, eV/Å².
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def fit(cls, theta: np.ndarray) -> Standardizer:
        """Mean and std (ddof=0) of ``theta`` (N, k); a zero std is replaced by 1."""
        theta = np.asarray(theta, dtype=float)
        std = theta.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(tuple(float(v) for v in theta.mean(axis=0)), tuple(float(v) for v in std))

    @property
    def k(self) -> int:
        return len(self.mean)

    def transform(self, theta: np.ndarray) -> np.ndarray:
        """θ (…, k) eV/Å² → standardised (…, k) float32."""
        return ((np.asarray(theta, dtype=float) - np.asarray(self.mean)) / np.asarray(self.std)).astype(
            np.float32
        )

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """Standardised (…, k) → θ (…, k) float64, eV/Å²."""
        return np.asarray(y, dtype=float) * np.asarray(self.std) + np.asarray(self.mean)

    def to_dict(self) -> dict:
        return {"method": "standardize", "mean": list(self.mean), "std": list(self.std), "unit": "eV/Å^2"}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        try:
            mean, std = tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"the target scaling in the checkpoint is malformed ({exc!r}). Retrain or restore the checkpoint."
            ) from None
        if len(mean) != len(std) or not all(s > 0 for s in std):
            raise CheckpointError(
                "the target scaling in the checkpoint is malformed (mean/std lengths differ or std <= 0). Retrain the model."
            )
        return cls(mean, std)
