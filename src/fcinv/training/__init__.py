"""Training of the inversion models: the generic :class:`Trainer` and the ``train_*`` entry points."""

from __future__ import annotations

from fcinv.training.tasks import RegressorTask, ResNetTask, VAETask, train_regressor, train_resnet, train_vae
from fcinv.training.trainer import TrainConfig, Trainer, TrainingError, TrainResult

__all__ = [
    "RegressorTask",
    "ResNetTask",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingError",
    "VAETask",
    "train_regressor",
    "train_resnet",
    "train_vae",
]
