"""Inference: loading models, θ ± σ from latent samples, grid checks, save → load identity."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fcinv.dataset import write_dataset
from fcinv.dataset.toy import make_toy_dataset, toy_grid
from fcinv.errors import CheckpointError, GridError, MaterialError
from fcinv.inference import MODELS_DIR, FCPredictor, available_models, export_model, load_model
from fcinv.models import VAE, Regressor, RegressorConfig, ResNet18, ResNet18Config, Standardizer, VAEConfig
from fcinv.training import TrainConfig, train_regressor, train_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained VAE + regressor in <root>/vae and <root>/regressor, and the dataset."""
    root = tmp_path_factory.mktemp("model")
    ds = make_toy_dataset(n=200, k=3, n_q=16, n_e=12, seed=1)
    write_dataset(root / "toy.h5", ds)
    cfg = dict(batch_size=16, lr=1e-2, progress=False)
    train_vae(
        root / "toy.h5",
        root / "vae",
        TrainConfig(epochs=6, **cfg),
        latent_dim=4,
        channels=(4, 8),
        hidden_dim=32,
        beta=0.01,
    )
    train_regressor(
        root / "toy.h5", root / "regressor", root / "vae", TrainConfig(epochs=8, **cfg), hidden=(32,)
    )
    return root, ds


def test_load_by_folder_or_regressor_dir(trained):
    root, ds = trained
    a = load_model(root)
    b = load_model(root / "regressor")
    assert a.kind == b.kind == "vae" and a.names == ds.names and a.grid.same_as(ds.grid)
    x = ds.spectra[:5]
    np.testing.assert_array_equal(a.predict_batch(x)[0], b.predict_batch(x)[0])


def test_predict_mean_sigma_from_samples(trained):
    root, ds = trained
    p = load_model(root)
    r = p.predict(ds.spectra[0], k_samples=50, seed=3)
    assert r.theta.shape == r.sigma.shape == (3,) and r.samples.shape == (50, 3)
    np.testing.assert_allclose(r.theta, r.samples.mean(axis=0))
    np.testing.assert_allclose(r.sigma, r.samples.std(axis=0, ddof=1))
    assert np.all(r.sigma > 0)
    assert r.mu.shape == r.logvar.shape == (4,) and r.reconstruction.shape == (16, 12)
    again = p.predict(ds.spectra[0], k_samples=50, seed=3)
    np.testing.assert_array_equal(again.samples, r.samples)
    assert not np.array_equal(p.predict(ds.spectra[0], k_samples=50, seed=4).samples, r.samples)
    point = p.predict(ds.spectra[0], k_samples=0)
    assert point.samples is None and np.all(point.sigma == 0)
    np.testing.assert_allclose(point.theta, p.predict_batch(ds.spectra[:1])[0][0], rtol=1e-6)
    assert set(r.as_dict()) == set(ds.names)


def test_batch_sampling_matches_its_spread(trained):
    root, ds = trained
    p = load_model(root)
    mean, sigma = p.predict_batch(ds.spectra[:4], k_samples=400, seed=0)
    one = p.predict(ds.spectra[2], k_samples=400, seed=9)
    np.testing.assert_allclose(mean[2], one.theta, atol=4 * one.sigma.max() / np.sqrt(400) + 1e-9)
    np.testing.assert_allclose(sigma[2], one.sigma, rtol=0.25)


def test_input_scaling_invariance_and_masks(trained):
    """Predictions depend on the spectrum's shape, not its units; NaN pixels are masked."""
    root, ds = trained
    p = load_model(root)
    x = ds.spectra[3]
    np.testing.assert_allclose(
        p.predict(x, k_samples=0).theta, p.predict(250.0 * x + 7.0, k_samples=0).theta, rtol=1e-5
    )
    masked = x.copy()
    masked[2, :] = np.nan
    assert np.all(np.isfinite(p.predict(masked, k_samples=10).theta))


def test_save_load_predicts_identically(tmp_path, trained):
    root, ds = trained
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vae = VAE(VAEConfig((16, 12), latent_dim=4, channels=(4, 8), hidden_dim=32)).eval()
        reg = Regressor(RegressorConfig(latent_dim=4, n_out=3, hidden=(8,))).eval()
    st = Standardizer((1.0, 1.0, 1.0), (0.3, 0.2, 0.1))
    mem = FCPredictor(grid=ds.grid, names=ds.names, target_scaling=st, vae=vae, regressor=reg)
    vae.save_checkpoint(tmp_path / "m" / "vae", grid=ds.grid, names=ds.names)
    reg.save_checkpoint(tmp_path / "m" / "regressor", grid=ds.grid, names=ds.names, target_scaling=st)
    disk = load_model(tmp_path / "m")
    x = ds.spectra[:6]
    for k in (0, 20):
        np.testing.assert_array_equal(
            mem.predict_batch(x, k_samples=k, seed=1)[0], disk.predict_batch(x, k_samples=k, seed=1)[0]
        )
    np.testing.assert_array_equal(mem.predict(x[0], seed=2).samples, disk.predict(x[0], seed=2).samples)
    # and the trained model survives a move of its folder (relative VAE path)
    shutil.copytree(root, tmp_path / "moved", ignore=shutil.ignore_patterns("*.h5", "trainer_state.pt"))
    np.testing.assert_array_equal(
        load_model(root).predict_batch(x)[0], load_model(tmp_path / "moved" / "regressor").predict_batch(x)[0]
    )


def test_export_model(tmp_path, trained):
    root, ds = trained
    dest = export_model(root / "regressor", tmp_path / "ship" / "toy")
    assert sorted(p.name for p in (dest / "vae").iterdir()) == ["config.json", "weights.pt"]
    assert sorted(p.name for p in (dest / "regressor").iterdir()) == ["config.json", "weights.pt"]
    r = load_model(dest).predict(ds.spectra[0], seed=1)
    np.testing.assert_array_equal(r.samples, load_model(root).predict(ds.spectra[0], seed=1).samples)


def test_refuses_other_grid(trained):
    root, ds = trained
    p = load_model(root)
    with pytest.raises(GridError, match=r"spectrum has shape \(16, 13\); this model expects \(16, 12\)"):
        p.predict(np.ones((16, 13)))
    with pytest.raises(GridError, match=r"expects \(N, 16, 12\)"):
        p.predict_batch(np.ones((16, 12)))
    with pytest.raises(
        GridError, match=r"trained on another grid \(model energies 0..40 meV vs data 0..30 meV\)"
    ):
        p.predict(ds.spectra[0], grid=toy_grid(16, 12, e_max=30.0))


def test_regressor_of_another_vae_is_refused(tmp_path, trained):
    root, ds = trained
    other = VAE(VAEConfig((16, 12), latent_dim=4, channels=(4, 8), hidden_dim=32))
    other.save_checkpoint(tmp_path / "other_vae", grid=ds.grid, names=ds.names)
    with pytest.raises(CheckpointError, match="was trained on another VAE"):
        FCPredictor.from_vae_regressor(tmp_path / "other_vae", root / "regressor")


def test_bad_model_names_and_dirs(tmp_path, trained):
    root, _ = trained
    with pytest.raises(MaterialError, match="no model directory or shipped model named 'unobtainium'"):
        load_model("unobtainium")
    with pytest.raises(CheckpointError, match="is a vae checkpoint, which predicts no force constants"):
        load_model(root / "vae")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no vae/ \\+ regressor/ or resnet/ checkpoints"):
        load_model(tmp_path / "empty")


def test_resnet_point_estimate(tmp_path, trained):
    _, ds = trained
    net = ResNet18(ResNet18Config((16, 12), n_out=3))
    st = Standardizer((1.0, 1.0, 1.0), (0.3, 0.2, 0.1))
    net.save_checkpoint(tmp_path / "resnet", grid=ds.grid, names=ds.names, target_scaling=st)
    p = load_model(tmp_path / "resnet")
    r = p.predict(ds.spectra[0])
    assert p.kind == "resnet" and r.samples is None and r.mu is None and np.all(r.sigma == 0)
    np.testing.assert_allclose(r.theta, p.predict_batch(ds.spectra[:1])[0][0], rtol=1e-5)
    with pytest.raises(CheckpointError, match="has no latent space"):
        p.encode(ds.spectra[:1])


def test_shipped_models_load():
    names = available_models()
    assert {"ge", "nb"} <= set(names), f"the shipped models in {MODELS_DIR}: {names}"
    for name in names:
        p = load_model(name)
        r = p.predict(np.random.default_rng(0).random(p.grid.shape), k_samples=10)
        assert np.all(np.isfinite(r.theta))
        ck = (p.regressor or p.resnet).checkpoint
        assert ck.raw["command"].startswith("fcinv train"), (
            "shipped models record the fcinv train command that made them"
        )


def test_ge_size_vae_predicts_with_k_samples():
    """A Ge-size (140 × 80) spectrum with K = 100 latent samples (its latency is measured by
    benchmarks/train_infer_speed.py, not asserted here)."""
    grid = toy_grid(140, 80)
    names = tuple(f"FC{j}" for j in range(8))
    p = FCPredictor(
        grid=grid,
        names=names,
        target_scaling=Standardizer((0.0,) * 8, (1.0,) * 8),
        vae=VAE(VAEConfig((140, 80))),
        regressor=Regressor(RegressorConfig(20, 8)),
    )
    x = np.random.default_rng(0).random((140, 80)).astype(np.float32)
    r = p.predict(x, k_samples=100, seed=3)
    assert r.samples.shape == (100, 8) and np.all(r.sigma > 0) and r.k_samples == 100 and r.seed == 3
    np.testing.assert_allclose(r.theta, r.samples.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(p.predict(x, k_samples=100, seed=3).theta, r.theta)


def test_predict_takes_a_folded_spectrum_and_checks_its_grid():
    from fcinv.errors import GridError
    from fcinv.experiment.folded import FoldedSpectrum

    grid = toy_grid(140, 80)
    names = tuple(f"FC{j}" for j in range(3))
    p = FCPredictor(
        grid=grid,
        names=names,
        target_scaling=Standardizer((0.0,) * 3, (1.0,) * 3),
        vae=VAE(VAEConfig((140, 80))),
        regressor=Regressor(RegressorConfig(20, 3)),
    )
    img = np.random.default_rng(1).random((140, 80))
    img[:10] = np.nan
    fs = FoldedSpectrum.from_arrays(img, grid)
    np.testing.assert_array_equal(p.predict(fs, k_samples=5).theta, p.predict(img, k_samples=5).theta)
    res = p.predict(fs, k_samples=5).to_result(material="toy")
    assert (
        res.names == names
        and res.method.startswith("ML: VAE + latent regressor")
        and "latent samples" in res.sigma_meaning
    )
    other = FoldedSpectrum.from_arrays(np.ones((140, 40)), toy_grid(140, 40))
    with pytest.raises(GridError, match="another grid"):
        p.predict(other)


def test_models_dir_is_inside_package():
    assert MODELS_DIR == Path(__import__("fcinv").__file__).parent / "data" / "models"
