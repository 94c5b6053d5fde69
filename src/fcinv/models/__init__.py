"""Inversion models: the VAE, the latent → θ regressor and ResNet-18.

Names are imported lazily, so that ``fcinv.models.scaling`` (numpy only) can be
used without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "VAE": "fcinv.models.vae",
    "VAEConfig": "fcinv.models.vae",
    "VAEOutput": "fcinv.models.vae",
    "kl_per_dim": "fcinv.models.vae",
    "Regressor": "fcinv.models.regressor",
    "RegressorConfig": "fcinv.models.regressor",
    "ResNet18": "fcinv.models.resnet",
    "ResNet18Config": "fcinv.models.resnet",
    "CheckpointMeta": "fcinv.models.checkpoint",
    "load_checkpoint": "fcinv.models.checkpoint",
    "read_checkpoint_config": "fcinv.models.checkpoint",
    "Standardizer": "fcinv.models.scaling",
    "minmax_scale": "fcinv.models.scaling",
    "INPUT_SCALING": "fcinv.models.scaling",
}

#: kind stored in a checkpoint → model class name.
MODEL_KINDS = {"vae": "VAE", "regressor": "Regressor", "resnet": "ResNet18"}

__all__ = sorted(_EXPORTS) + ["MODEL_KINDS", "model_class"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fcinv.models' has no attribute {name!r}")


def model_class(kind: str) -> type:
    """The model class for a checkpoint ``kind`` (``vae``, ``regressor``, ``resnet``)."""
    from fcinv.errors import CheckpointError

    if kind not in MODEL_KINDS:
        raise CheckpointError(f"unknown model kind {kind!r}. Use one of {sorted(MODEL_KINDS)}.")
    return __getattr__(MODEL_KINDS[kind])
