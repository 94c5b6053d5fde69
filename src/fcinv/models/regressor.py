"""Feed-forward regressor from a VAE latent vector to the standardised parameters θ.

``Linear → activation (→ dropout)`` for each hidden width, then a linear layer to
the k standardised outputs. It is trained on latent samples z ~ N(μ, σ²) of a
frozen VAE (or on μ), so that at inference K samples of the latent distribution
give K samples of θ, whose spread is the uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fcinv.errors import FcinvError
from fcinv.models.checkpoint import CheckpointMixin

ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass(frozen=True)
class RegressorConfig:
    """Architecture of :class:`Regressor`.

    Parameters
    ----------
    latent_dim
        Input dimension (the VAE's latent dimension).
    n_out
        Number of outputs k.
    hidden
        Widths of the hidden layers.
    activation
        One of ``silu``, ``relu``, ``gelu``, ``tanh``.
    dropout
        Dropout probability after each hidden activation.
    """

    latent_dim: int
    n_out: int
    hidden: tuple[int, ...] = (256, 256, 128)
    activation: str = "silu"
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.latent_dim < 1 or self.n_out < 1 or any(h < 1 for h in self.hidden):
            raise FcinvError(
                f"latent_dim={self.latent_dim}, n_out={self.n_out}, hidden={self.hidden} must be positive."
            )
        if self.activation not in ACTIVATIONS:
            raise FcinvError(f"activation={self.activation!r} is unknown. Use one of {sorted(ACTIVATIONS)}.")
        if not 0 <= self.dropout < 1:
            raise FcinvError(f"dropout={self.dropout} must be in [0, 1).")


class Regressor(CheckpointMixin, nn.Module):
    """Latent (B, latent_dim) → standardised θ (B, n_out)."""

    kind = "regressor"
    config_cls = RegressorConfig

    def __init__(self, config: RegressorConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.latent_dim
        for h in config.hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[config.activation]()]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            width = h
        layers.append(nn.Linear(width, config.n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (..., latent_dim) → standardised θ (..., n_out)."""
        if z.shape[-1] != self.config.latent_dim:
            raise FcinvError(
                f"the regressor takes latent vectors of size {self.config.latent_dim}; got shape {tuple(z.shape)}. Use the VAE it was trained with."
            )
        return self.net(z)
