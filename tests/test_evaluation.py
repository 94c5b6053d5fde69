"""Evaluation: metrics, latent statistics, the full report and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.cli import evaluate as evaluate_cli
from fcinv.dataset import write_dataset
from fcinv.dataset.toy import make_toy_dataset
from fcinv.errors import DataError, GridError
from fcinv.evaluation import (
    ACTIVE_KL_THRESHOLD,
    EvalConfig,
    LatentStats,
    interpolate,
    mae,
    r2_score,
    run_evaluation,
)
from fcinv.inference import load_model
from fcinv.models import ResNet18, ResNet18Config, Standardizer
from fcinv.noise import NOISE_GRID
from fcinv.training import TrainConfig, train_regressor, train_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    ds = make_toy_dataset(n=300, k=3, n_q=16, n_e=12, seed=2)
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
    ResNet18(ResNet18Config((16, 12), n_out=3)).save_checkpoint(
        root / "resnet", grid=ds.grid, names=ds.names, target_scaling=Standardizer.fit(ds.theta)
    )
    return root, ds


def test_r2_and_mae():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 2))
    np.testing.assert_allclose(r2_score(y, y), 1.0)
    np.testing.assert_allclose(r2_score(y, np.broadcast_to(y.mean(axis=0), y.shape)), 0.0, atol=1e-12)
    pred = y + np.array([0.1, -0.5])
    np.testing.assert_allclose(mae(y, pred), [0.1, 0.5])
    np.testing.assert_allclose(r2_score(y, pred), 1 - np.array([0.01, 0.25]) / y.var(axis=0))
    with pytest.raises(DataError, match=r"got \(200, 2\) and \(200, 3\)"):
        r2_score(y, np.zeros((200, 3)))


def test_latent_stats_active_dimensions():
    rng = np.random.default_rng(0)
    mu = np.zeros((500, 5))
    logvar = np.zeros((500, 5))
    mu[:, :3] = rng.normal(0, 1.5, (500, 3))
    logvar[:, :3] = -3.0
    st = LatentStats.compute(mu, logvar)
    assert st.n_active == 3 and st.active.tolist() == [True, True, True, False, False]
    assert st.threshold == ACTIVE_KL_THRESHOLD
    np.testing.assert_allclose(st.kl_per_dim[3:], 0.0)
    np.testing.assert_allclose(st.kl_per_dim[0], 0.5 * (mu[:, 0] ** 2 + np.exp(-3.0) + 3.0 - 1.0).mean())
    path = interpolate(np.zeros(5), np.ones(5), n=5)
    np.testing.assert_allclose(path[:, 0], [0, 0.25, 0.5, 0.75, 1.0])


def test_run_evaluation_writes_metrics_and_figures(tmp_path, setup):
    root, ds = setup
    vae_model = load_model(root)
    cfg = EvalConfig(progress=False, umap=False)
    rep = run_evaluation(
        {"vae": vae_model, "vae_again": vae_model, "resnet": root / "resnet"}, root / "toy.h5", tmp_path, cfg
    )
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["models"].keys() == rep["models"].keys() == {"vae", "vae_again", "resnet"}
    assert rep["dataset"]["n_test"] == len(ds.split["test"])
    for lab in ("vae", "resnet"):
        per = rep["models"][lab]["clean"]["per_fc"]
        assert list(per) == list(ds.names) and all(np.isfinite(v["mae"]) for v in per.values())
        grid = np.array(rep["models"][lab]["noise_grid"]["r2"])
        assert grid.shape == (*NOISE_GRID.shape, 3)
        assert (tmp_path / f"parity_{lab}.png").exists() and (tmp_path / f"noise_r2_{lab}.png").exists()
    # every model sees the same noisy draws
    assert rep["models"]["vae"]["noise_grid"] == rep["models"]["vae_again"]["noise_grid"]
    lat = rep["models"]["vae"]["latent"]
    assert lat["latent_dim"] == 4 and 0 <= lat["n_active"] <= 4 and len(lat["kl_per_dim"]) == 4
    snr = np.array(rep["models"]["vae"]["noise_grid"]["snr_median"])
    assert snr[0, 0] > snr[2, 2] > snr[-1, -1]
    for name in (
        "r2_clean.png",
        "reconstructions_vae.png",
        "latent_spread_vae.png",
        "latent_interpolation_vae.png",
        "noise_examples.png",
        "training_vae_regressor.png",
    ):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert "resnet" not in {f.split("_")[-1][:-4] for f in rep["figures"] if f.startswith("latent")}


def test_umap_skipped_with_a_note_without_umap_learn(tmp_path, setup, monkeypatch, caplog):
    import fcinv.evaluation.latent as latent
    from fcinv.errors import MissingDependencyError

    def missing(module, extra, purpose):
        raise MissingDependencyError(
            f"{purpose} needs the optional package '{module}'; install it with: pip install 'fcinv[{extra}]'"
        )

    monkeypatch.setattr(latent, "require", missing)
    root, _ = setup
    rep = run_evaluation(
        {"vae": root}, root / "toy.h5", tmp_path, EvalConfig(progress=False, noise_grid=False)
    )
    assert "umap-learn not installed" in rep["models"]["vae"]["umap"]
    assert not (tmp_path / "latent_umap_vae.png").exists()
    assert "skipping the UMAP figure" in caplog.text


@pytest.mark.slow
def test_umap_figure(tmp_path, setup):
    pytest.importorskip("umap", reason="umap-learn (the [latent] extra) is not installed")
    root, _ = setup
    rep = run_evaluation(
        {"vae": root}, root / "toy.h5", tmp_path, EvalConfig(progress=False, noise_grid=False)
    )
    assert (
        "latent_umap_vae.png" in rep["figures"] and (tmp_path / "latent_umap_vae.png").stat().st_size > 1000
    )


def test_clean_metrics_match_direct_prediction(tmp_path, setup):
    root, ds = setup
    rep = run_evaluation(
        {"m": root}, root / "toy.h5", tmp_path, EvalConfig(noise_grid=False, latent=False, progress=False)
    )
    assert "latent" not in rep["models"]["m"]
    theta, spectra = ds.part("test")
    pred, _ = load_model(root).predict_batch(spectra)
    r2 = [rep["models"]["m"]["clean"]["per_fc"][n]["r2"] for n in ds.names]
    np.testing.assert_allclose(r2, r2_score(theta, pred))


def test_refuses_model_of_another_grid(tmp_path, setup):
    root, _ = setup
    other = make_toy_dataset(n=60, k=3, n_q=16, n_e=10, seed=0)
    write_dataset(tmp_path / "other.h5", other)
    with pytest.raises(
        GridError,
        match=r"model 'm' was trained on another grid \(model grid \(16, 12\) vs data grid \(16, 10\)\)",
    ):
        run_evaluation({"m": root}, tmp_path / "other.h5", tmp_path / "out", EvalConfig(progress=False))


def test_cli_evaluate(tmp_path, setup, capsys):
    root, _ = setup
    code = evaluate_cli.main(
        [
            "--model",
            f"vae={root}",
            "--model",
            str(root / "resnet"),
            "--data",
            str(root / "toy.h5"),
            "--out",
            str(tmp_path),
            "--max-test",
            "20",
            "--quiet",
            "--no-umap",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "clean test R² (20 spectra)" in out and "noise B=0.1 P=300" in out and "resnet" in out
    rep = json.loads((tmp_path / "metrics.json").read_text())
    assert rep["command"].startswith("fcinv evaluate --model")
    assert (
        evaluate_cli.main(
            [
                "--model",
                str(root),
                "--data",
                str(tmp_path / "missing.h5"),
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
        == 2
    )
    assert "fcinv evaluate: error: dataset" in capsys.readouterr().err
