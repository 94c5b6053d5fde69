"""Every parameter in the cutoff through dataset → VAE + regressor → prediction with σ (tiny set)."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.dataset import generate, read_dataset
from fcinv.dataset.randomise import PaperConditioner, Randomisation
from fcinv.inference import FCPredictor
from fcinv.reference import load_reference
from fcinv.training import TrainConfig, train_regressor, train_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_all_parameters_dataset_to_prediction(tmp_path):
    ref = load_reference("Ge")
    model = ref.forward_model()
    assert model.k == ref.space.n_params == 16
    path = generate(PaperConditioner(model), ref.domain(), 48, tmp_path / "ge16.h5", randomisation=Randomisation(group=6),
                    seed=0, chunk=60, progress=False, command="test")
    ds = read_dataset(path)
    assert ds.names == tuple(ref.sampled) and ds.conditions["background"].shape == (48,)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=3e-3, progress=False, seed=0)
    train_vae(path, tmp_path / "vae", cfg, latent_dim=4, channels=(4, 8), hidden_dim=32, beta=0.01)
    train_regressor(path, tmp_path / "reg", tmp_path / "vae", cfg, hidden=(16,))
    p = FCPredictor.from_vae_regressor(tmp_path / "vae", tmp_path / "reg")
    assert p.names == tuple(ref.sampled)
    r = p.predict(ds.spectra[0], k_samples=8)
    assert r.theta.shape == (16,) and r.sigma.shape == (16,)
    assert np.all(np.isfinite(r.theta)) and np.all(r.sigma > 0)
