"""Latent-space analysis of a VAE: spread of μ and log σ², active dimensions, UMAP, interpolation.

A latent dimension is *active* when its KL divergence from the N(0, 1) prior,
averaged over the test spectra, ``mean_x ½(μ² + σ² − log σ² − 1)``, exceeds
:data:`ACTIVE_KL_THRESHOLD` = 0.1 nats: an unused dimension keeps μ ≈ 0 and
log σ² ≈ 0 for every input (KL ≈ 0), as the paper observes for ~6 of its 20.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fcinv.errors import MissingDependencyError, require

log = logging.getLogger(__name__)

#: Mean KL per dimension (nats) above which a latent dimension counts as active.
ACTIVE_KL_THRESHOLD = 0.1


@dataclass
class LatentStats:
    """Latent distributions of a set of spectra.

    Attributes
    ----------
    mu, logvar
        Shape (N, d) float32.
    kl_per_dim
        Shape (d,) float64, nats: mean KL from the prior per dimension.
    active
        Shape (d,) bool: ``kl_per_dim > threshold``.
    """

    mu: np.ndarray
    logvar: np.ndarray
    kl_per_dim: np.ndarray
    active: np.ndarray
    threshold: float

    @classmethod
    def compute(
        cls, mu: np.ndarray, logvar: np.ndarray, threshold: float = ACTIVE_KL_THRESHOLD
    ) -> LatentStats:
        mu64, lv64 = np.asarray(mu, dtype=float), np.asarray(logvar, dtype=float)
        kl = 0.5 * (mu64**2 + np.exp(lv64) - lv64 - 1.0)
        kl_dim = kl.mean(axis=0)
        return cls(np.asarray(mu), np.asarray(logvar), kl_dim, kl_dim > threshold, threshold)

    @property
    def n_active(self) -> int:
        return int(self.active.sum())

    def to_dict(self) -> dict:
        return {
            "latent_dim": int(self.mu.shape[1]),
            "n_active": self.n_active,
            "active_kl_threshold_nats": self.threshold,
            "kl_per_dim": self.kl_per_dim.round(5).tolist(),
            "mu_mean": self.mu.mean(axis=0).round(4).tolist(),
            "mu_std": self.mu.std(axis=0).round(4).tolist(),
            "logvar_mean": self.logvar.mean(axis=0).round(4).tolist(),
            "logvar_std": self.logvar.std(axis=0).round(4).tolist(),
        }


def interpolate(mu_a: np.ndarray, mu_b: np.ndarray, n: int = 8) -> np.ndarray:
    """``n`` latent vectors on the straight line from ``mu_a`` to ``mu_b``, shape (n, d)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return ((1 - t) * np.asarray(mu_a)[None] + t * np.asarray(mu_b)[None]).astype(np.float32)


def umap_embedding(mu: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """2-D UMAP embedding of μ (N, d) → (N, 2); None (with a logged note) without umap-learn."""
    try:
        umap = require("umap", "latent", "the UMAP figure of the latent space")
    except MissingDependencyError as exc:
        log.warning("skipping the UMAP figure: %s", exc)
        return None
    reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(np.asarray(mu, dtype=np.float32)))
