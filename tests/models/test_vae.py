"""The convolutional VAE: shapes for any grid, loss definition, determinism of sampling."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from fcinv.errors import FcinvError, GridError
from fcinv.models import VAE, VAEConfig, kl_per_dim

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("shape", [(140, 80), (16, 12), (13, 7), (33, 50)])
def test_any_grid_shape(shape):
    cfg = VAEConfig(shape, latent_dim=5, channels=(4, 8, 8), hidden_dim=16)
    assert all(p % 8 == 0 and p >= s for p, s in zip(cfg.padded_shape, shape))
    vae = VAE(cfg).eval()
    x = torch.rand(3, *shape)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (3, 5)
    out = vae(x, sample=False)
    assert out.logits.shape == (3, *shape)
    assert torch.all((out.reconstruction >= 0) & (out.reconstruction <= 1))
    assert vae.decode(mu).shape == (3, *shape)


def test_ge_default_size():
    cfg = VAEConfig((140, 80))
    assert cfg.latent_dim == 20 and cfg.padded_shape == (144, 80)
    n = sum(p.numel() for p in VAE(cfg).parameters())
    assert n * 4 < 20e6, "the shipped VAE must stay below 20 MB"


def test_loss_is_recon_plus_beta_kl():
    torch.manual_seed(0)
    vae = VAE(VAEConfig((16, 12), latent_dim=3, channels=(4, 8), hidden_dim=16, beta=0.5))
    x = torch.rand(4, 16, 12)
    out = vae(x, generator=torch.Generator().manual_seed(0))
    parts = vae.loss(x, out)
    recon = F.binary_cross_entropy_with_logits(out.logits, x, reduction="sum") / 4
    kl = (0.5 * (out.mu**2 + out.logvar.exp() - out.logvar - 1)).sum() / 4
    torch.testing.assert_close(parts["recon"], recon)
    torch.testing.assert_close(parts["kl"], kl)
    torch.testing.assert_close(parts["loss"], recon + 0.5 * kl)
    mse = VAE(VAEConfig((16, 12), latent_dim=3, channels=(4, 8), hidden_dim=16, recon_loss="mse"))
    mse.load_state_dict(vae.state_dict())
    torch.testing.assert_close(mse.loss(x, out)["recon"], ((out.reconstruction - x) ** 2).sum() / 4)


def test_kl_zero_at_prior():
    assert float(kl_per_dim(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max()) == 0.0


def test_sampling_uses_the_generator():
    vae = VAE(VAEConfig((16, 12), latent_dim=3, channels=(4, 8), hidden_dim=16)).eval()
    x = torch.rand(2, 16, 12)
    a = vae(x, generator=torch.Generator().manual_seed(1)).z
    b = vae(x, generator=torch.Generator().manual_seed(1)).z
    c = vae(x, generator=torch.Generator().manual_seed(2)).z
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_bad_config_and_input():
    with pytest.raises(FcinvError, match="recon_loss='l1' is unknown"):
        VAEConfig((16, 12), recon_loss="l1")
    vae = VAE(VAEConfig((16, 12), latent_dim=3, channels=(4, 8), hidden_dim=16))
    with pytest.raises(GridError, match=r"takes spectra of shape \(B, 16, 12\); got \(2, 1, 12, 16\)"):
        vae.encode(torch.rand(2, 12, 16))
