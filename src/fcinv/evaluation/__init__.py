"""Evaluation of trained models: metrics, noise robustness, latent analysis and figures."""

from __future__ import annotations

from fcinv.evaluation.latent import ACTIVE_KL_THRESHOLD, LatentStats, interpolate, umap_embedding
from fcinv.evaluation.metrics import (
    FCMetrics,
    NoiseGridResult,
    mae,
    noise_grid_metrics,
    noisy_test_sets,
    r2_score,
)
from fcinv.evaluation.report import EvalConfig, run_evaluation

__all__ = [
    "ACTIVE_KL_THRESHOLD",
    "EvalConfig",
    "FCMetrics",
    "LatentStats",
    "NoiseGridResult",
    "interpolate",
    "mae",
    "noise_grid_metrics",
    "noisy_test_sets",
    "r2_score",
    "run_evaluation",
    "umap_embedding",
]
