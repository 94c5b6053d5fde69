"""Convolutional variational autoencoder on the 1-channel I(q, E) image.

Architecture (for ``channels = (c1, ..., cL)``): the [n_q, n_E] image is padded
with zeros at the high-q/high-E ends to multiples of 2^L, then L blocks
``Conv2d(k=4, s=2, p=1) → BatchNorm → LeakyReLU(0.2)`` halve it L times; a
``Linear → LeakyReLU → Linear`` head gives μ and log σ² (``latent_dim`` each).
The decoder mirrors it with ``ConvTranspose2d(k=4, s=2, p=1)`` blocks and a
final 1-channel transposed convolution giving logits, cropped back to
[n_q, n_E]; the reconstruction is ``sigmoid(logits)`` in [0, 1].

Loss (per spectrum, averaged over the batch), on min–max scaled inputs x ∈ [0, 1]:

* reconstruction, summed over the n_q·n_E pixels, either ``"bce"`` — binary
  cross-entropy of x against sigmoid(logits), the Bernoulli likelihood commonly
  used for [0, 1] images — or ``"mse"`` — squared error of sigmoid(logits);
* plus ``beta`` times the KL divergence of N(μ, σ²) from N(0, 1), summed over
  the latent dimensions.

With ``"bce"`` and β = 1 this is the negative evidence lower bound. Padding is
never part of the loss. The default β = 0.1 was chosen on the toy model of
``fcinv.dataset.toy`` at the Ge grid size (140 × 80, 2,000 spectra, 20 epochs):
β = 1 left 6 of 20 latent dimensions active and a regressor R² of
0.995/0.982/0.861/0.495 on its four parameters; β = 0.1 kept 17 active and
reached 0.999/0.993/0.921/0.705. (MSE with β = 1 collapsed the posterior
entirely on a 32 × 24 toy grid.) Retune it on the real datasets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from fcinv.errors import FcinvError, GridError
from fcinv.models.checkpoint import CheckpointMixin

RECON_LOSSES = ("bce", "mse")
#: log σ² is clamped to this range for numerical safety.
LOGVAR_RANGE = (-15.0, 10.0)


@dataclass(frozen=True)
class VAEConfig:
    """Architecture and loss of :class:`VAE`.

    Parameters
    ----------
    input_shape
        (n_q, n_E) of the spectra.
    latent_dim
        Dimension of the latent space.
    channels
        Output channels of the encoder's stride-2 convolutions (the decoder mirrors them).
    hidden_dim
        Width of the dense layer between the convolutions and the latent space.
    recon_loss
        ``"bce"`` or ``"mse"`` (see module docstring).
    beta
        Weight of the KL term.
    """

    input_shape: tuple[int, int]
    latent_dim: int = 20
    channels: tuple[int, ...] = (16, 32, 64, 128)
    hidden_dim: int = 256
    recon_loss: str = "bce"
    beta: float = 0.1

    def __post_init__(self) -> None:
        if len(self.input_shape) != 2 or min(self.input_shape) < 1:
            raise FcinvError(f"input_shape={self.input_shape} must be (n_q, n_E) with positive sizes.")
        if self.latent_dim < 1 or self.hidden_dim < 1 or not self.channels or min(self.channels) < 1:
            raise FcinvError(
                f"latent_dim={self.latent_dim}, hidden_dim={self.hidden_dim}, channels={self.channels} must be positive."
            )
        if self.recon_loss not in RECON_LOSSES:
            raise FcinvError(f"recon_loss={self.recon_loss!r} is unknown. Use one of {RECON_LOSSES}.")
        if not self.beta >= 0:
            raise FcinvError(f"beta={self.beta} must be >= 0.")

    @property
    def padded_shape(self) -> tuple[int, int]:
        """Input shape padded up to multiples of 2^len(channels)."""
        m = 2 ** len(self.channels)
        return tuple(-(-s // m) * m for s in self.input_shape)  # type: ignore[return-value]

    @property
    def bottleneck_shape(self) -> tuple[int, int, int]:
        """(channels, h, w) after the last convolution."""
        m = 2 ** len(self.channels)
        h, w = self.padded_shape
        return (self.channels[-1], h // m, w // m)


class VAEOutput(NamedTuple):
    """Result of :meth:`VAE.forward`; every tensor is per spectrum along dim 0."""

    logits: torch.Tensor  # (B, n_q, n_E) reconstruction logits
    mu: torch.Tensor  # (B, latent_dim)
    logvar: torch.Tensor  # (B, latent_dim)
    z: torch.Tensor  # (B, latent_dim) the sample decoded

    @property
    def reconstruction(self) -> torch.Tensor:
        """sigmoid(logits), (B, n_q, n_E) in [0, 1]."""
        return torch.sigmoid(self.logits)


def _as_images(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1 or tuple(x.shape[-2:]) != tuple(shape):
        raise GridError(
            f"the VAE takes spectra of shape (B, {shape[0]}, {shape[1]}); got {tuple(x.shape)}. Pass spectra on the model's grid."
        )
    return x


class VAE(CheckpointMixin, nn.Module):
    """Convolutional VAE; see the module docstring for architecture and loss."""

    kind = "vae"
    config_cls = VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        ch = (1, *config.channels)
        enc: list[nn.Module] = []
        for cin, cout in zip(ch[:-1], ch[1:]):
            enc += [nn.Conv2d(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
        self.encoder = nn.Sequential(*enc)
        c, h, w = config.bottleneck_shape
        flat = c * h * w
        self.enc_fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, config.hidden_dim), nn.LeakyReLU(0.2))
        self.fc_mu = nn.Linear(config.hidden_dim, config.latent_dim)
        self.fc_logvar = nn.Linear(config.hidden_dim, config.latent_dim)
        self.dec_fc = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(config.hidden_dim, flat),
            nn.LeakyReLU(0.2),
        )
        rch = ch[::-1]  # (cL, ..., c1, 1)
        dec: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(rch[:-1], rch[1:])):
            dec.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i < len(rch) - 2:
                dec += [nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
        self.decoder = nn.Sequential(*dec)

    # ----------------------------------------------------------------- pieces
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        (h, w), (ph, pw) = self.config.input_shape, self.config.padded_shape
        return F.pad(x, (0, pw - w, 0, ph - h)) if (ph, pw) != (h, w) else x

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode scaled spectra.

        Parameters
        ----------
        x
            Shape (B, n_q, n_E) or (B, 1, n_q, n_E), min–max scaled to [0, 1].

        Returns
        -------
        (mu, logvar)
            Each of shape (B, latent_dim).
        """
        x = _as_images(x, self.config.input_shape)
        hid = self.enc_fc(self.encoder(self._pad(x)))
        return self.fc_mu(hid), self.fc_logvar(hid).clamp(*LOGVAR_RANGE)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_dim) → reconstruction logits (B, n_q, n_E)."""
        c, h, w = self.config.bottleneck_shape
        out = self.decoder(self.dec_fc(z).view(-1, c, h, w))
        n_q, n_e = self.config.input_shape
        return out[:, 0, :n_q, :n_e]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent (B, latent_dim) → reconstruction (B, n_q, n_E) in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z))

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z = μ + σ·ε with ε ~ N(0, 1) drawn from ``generator``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, sample: bool = True
    ) -> VAEOutput:
        """Encode, sample (or take μ when ``sample`` is False) and decode."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator) if sample else mu
        return VAEOutput(self.decode_logits(z), mu, logvar, z)

    # ------------------------------------------------------------------- loss
    def loss(self, x: torch.Tensor, out: VAEOutput) -> dict[str, torch.Tensor]:
        """Per-spectrum loss averaged over the batch: ``{"loss", "recon", "kl"}``.

        Parameters
        ----------
        x
            The scaled input, (B, n_q, n_E) or (B, 1, n_q, n_E).
        out
            ``self(x)``.
        """
        x = _as_images(x, self.config.input_shape)[:, 0]
        if self.config.recon_loss == "bce":
            rec = F.binary_cross_entropy_with_logits(out.logits, x, reduction="none")
        else:
            rec = (torch.sigmoid(out.logits) - x) ** 2
        recon = rec.flatten(1).sum(1).mean()
        kl = kl_per_dim(out.mu, out.logvar).sum(1).mean()
        return {"loss": recon + self.config.beta * kl, "recon": recon, "kl": kl}


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent dimension, (B, d) nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)
