"""Training: losses fall, early stopping, resume after interruption, seeds, devices, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fcinv.cli import train as train_cli
from fcinv.dataset import write_dataset
from fcinv.dataset.toy import make_toy_dataset
from fcinv.devices import DeviceError, resolve_device
from fcinv.errors import CheckpointError
from fcinv.models import VAE, Regressor, ResNet18
from fcinv.models.checkpoint import CONFIG, TRAINER_STATE, WEIGHTS
from fcinv.training import TrainConfig, Trainer, TrainingError, train_regressor, train_resnet, train_vae
from fcinv.training.tasks import VAETask

TINY_VAE = dict(latent_dim=4, channels=(4, 8), hidden_dim=32, beta=0.01)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "toy.h5"
    write_dataset(path, make_toy_dataset(n=240, k=3, n_q=16, n_e=12, seed=0))
    return path


def cfg(**kw) -> TrainConfig:
    base = dict(epochs=4, batch_size=32, lr=3e-3, progress=False, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_vae_training_lowers_validation_loss(tmp_path, data):
    before = torch.get_rng_state()
    res = train_vae(data, tmp_path / "vae", cfg(epochs=6), **TINY_VAE)
    assert torch.equal(before, torch.get_rng_state()), "training must not touch torch's global RNG"
    val = [h["val_loss"] for h in res.history]
    assert val[-1] < 0.9 * val[0]
    assert res.best_val_loss == min(val)
    for f in (WEIGHTS, CONFIG, TRAINER_STATE):
        assert (tmp_path / "vae" / f).exists()
    conf = json.loads((tmp_path / "vae" / CONFIG).read_text())
    assert conf["dataset"]["content_hash"] and conf["seed"] == 0 and conf["command"]
    assert conf["training"]["best_epoch"] == res.best_epoch
    assert conf["input_scaling"]["method"] == "minmax_per_spectrum"
    assert conf["model_config"]["latent_dim"] == 4


def test_regressor_training_lowers_validation_loss(tmp_path, data):
    train_vae(data, tmp_path / "vae", cfg(epochs=10, batch_size=16, lr=1e-2), **TINY_VAE)
    reg = train_regressor(data, tmp_path / "reg", tmp_path / "vae", cfg(epochs=15, lr=1e-2), hidden=(32, 32))
    val = [h["val_loss"] for h in reg.history]
    assert min(val) < 0.9 * val[0]
    conf = json.loads((tmp_path / "reg" / CONFIG).read_text())
    assert conf["vae"]["path"] == "../vae" and conf["target_scaling"]["mean"]


def test_resnet_training_lowers_training_loss(tmp_path, data):
    # (on 64 tiny spectra the eval-mode BatchNorm statistics lag, so the validation loss is not a fair test here;
    # 4 epochs: after 2 the drop was 0.85 of the first epoch's loss here, too close to the bound)
    net = train_resnet(
        data, tmp_path / "resnet", cfg(epochs=4, batch_size=16, max_train=64, max_val=16, lr=1e-3)
    )
    train = [h["train_loss"] for h in net.history]
    assert train[-1] < 0.8 * train[0]
    assert all(np.isfinite(h["val_loss"]) for h in net.history)
    assert ResNet18.from_checkpoint(tmp_path / "resnet").checkpoint.target_scaling is not None


def test_same_seed_same_model(tmp_path, data):
    a = train_vae(data, tmp_path / "a", cfg(epochs=2), **TINY_VAE)
    b = train_vae(data, tmp_path / "b", cfg(epochs=2), **TINY_VAE)
    c = train_vae(data, tmp_path / "c", cfg(epochs=2, seed=1), **TINY_VAE)
    assert a.history[-1]["val_loss"] == b.history[-1]["val_loss"] != c.history[-1]["val_loss"]
    assert (tmp_path / "a" / WEIGHTS).read_bytes() == (tmp_path / "b" / WEIGHTS).read_bytes()


class _Boom(RuntimeError):
    pass


@pytest.mark.parametrize("augment", [False, True], ids=["clean", "noise-augment"])
def test_resume_after_interruption_continues_bit_for_bit(tmp_path, data, monkeypatch, augment):
    full = train_vae(data, tmp_path / "full", cfg(epochs=4, noise_augment=augment), **TINY_VAE)
    original = VAETask.on_epoch_start

    def crash_at_epoch_3(self, epoch, rng):
        if epoch == 2:
            raise _Boom("killed")
        return original(self, epoch, rng)

    monkeypatch.setattr(VAETask, "on_epoch_start", crash_at_epoch_3)
    with pytest.raises(_Boom, match="killed"):
        train_vae(data, tmp_path / "cut", cfg(epochs=4, noise_augment=augment), **TINY_VAE)
    state = torch.load(tmp_path / "cut" / TRAINER_STATE, weights_only=True)
    assert state["epoch"] == 2
    monkeypatch.setattr(VAETask, "on_epoch_start", original)
    with pytest.raises(CheckpointError, match="already holds a checkpoint. Pass --resume"):
        train_vae(data, tmp_path / "cut", cfg(epochs=4, noise_augment=augment), **TINY_VAE)
    resumed = train_vae(data, tmp_path / "cut", cfg(epochs=4, noise_augment=augment), resume=True, **TINY_VAE)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3, 4]
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
    a, b = VAE.from_checkpoint(tmp_path / "full"), VAE.from_checkpoint(tmp_path / "cut")
    for k, v in a.state_dict().items():
        torch.testing.assert_close(v, b.state_dict()[k], rtol=0, atol=0)


def test_noise_augmented_vae_is_denoising(data):
    from fcinv.dataset import read_dataset

    task = VAETask(read_dataset(data), cfg(noise_augment=True), **TINY_VAE)
    task.setup(torch.device("cpu"), np.random.default_rng(0))
    idx, x = next(iter(task.train_batches(np.random.default_rng(0), 8)))
    clean = torch.from_numpy(task.x_tr[idx])
    assert not torch.allclose(x, clean), "inputs are noisy"
    assert not np.array_equal(task.x_va, task.x_va_clean), "validation inputs are noisy, targets clean"
    loss, _ = task.train_loss((idx, x), torch.Generator().manual_seed(0))
    expected = task.model.loss(clean, task.model(x, generator=torch.Generator().manual_seed(0)))["loss"]
    torch.testing.assert_close(loss, expected)


def test_resume_needs_state(tmp_path, data):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train_vae(data, tmp_path / "none", cfg(), resume=True, **TINY_VAE)


class _StubTask:
    """A task whose validation losses are scripted: exercises the trainer alone."""

    kind = "regressor"
    names = ("a",)
    target_scaling = None

    def __init__(self, val_losses):
        from fcinv.dataset.toy import toy_grid
        from fcinv.models import RegressorConfig

        self.grid = toy_grid(4, 3)
        self.model = Regressor(RegressorConfig(latent_dim=2, n_out=1, hidden=(4,)))
        self.val = list(val_losses)
        self.calls = 0

    def setup(self, device, rng):
        pass

    def on_epoch_start(self, epoch, rng):
        pass

    def train_batches(self, rng, batch_size):
        yield torch.ones(3, 2)

    def train_loss(self, batch, generator):
        loss = self.model(batch).pow(2).mean()
        return loss, {"loss": float(loss.detach())}

    def validate(self):
        self.calls += 1
        return {"loss": self.val[self.calls - 1]}

    def checkpoint_extra(self, out_dir):
        return {}


def test_early_stopping_keeps_best(tmp_path):
    task = _StubTask([5.0, 3.0, 4.0, 3.5, 3.2, 1.0])
    res = Trainer(task, tmp_path / "ck", cfg(epochs=6, patience=3)).fit()
    assert res.stopped_early and res.epochs_run == 5 and res.best_epoch == 2 and res.best_val_loss == 3.0
    state = torch.load(tmp_path / "ck" / TRAINER_STATE, weights_only=True)
    saved = torch.load(tmp_path / "ck" / WEIGHTS, weights_only=True)
    for k, v in state["best_state"].items():
        torch.testing.assert_close(saved[k], v, rtol=0, atol=0)
    assert not torch.equal(state["model"]["net.0.weight"], state["best_state"]["net.0.weight"]), (
        "best state must be a copy"
    )


def test_resume_with_more_epochs_extends_an_early_stopped_run(tmp_path):
    """A run that stopped early continues when resumed with a larger epochs; the same epochs is a no-op."""
    first = Trainer(_StubTask([5.0, 3.0, 4.0, 3.5, 3.2]), tmp_path / "ck", cfg(epochs=6, patience=3)).fit()
    assert first.stopped_early and first.epochs_run == 5
    same = _StubTask([])
    again = Trainer(same, tmp_path / "ck", cfg(epochs=6, patience=3)).fit(resume=True)
    assert again.epochs_run == 5 and same.calls == 0, "nothing to resume at the same epochs"
    more = _StubTask([2.0, 2.5, 2.6])
    res = Trainer(more, tmp_path / "ck", cfg(epochs=8, patience=3)).fit(resume=True)
    assert [h["epoch"] for h in res.history] == list(range(1, 9))
    assert [h["val_loss"] for h in res.history] == [5.0, 3.0, 4.0, 3.5, 3.2, 2.0, 2.5, 2.6]
    assert res.best_epoch == 6 and res.best_val_loss == 2.0 and not res.stopped_early and more.calls == 3
    conf = json.loads((tmp_path / "ck" / CONFIG).read_text())
    assert conf["training"]["epochs_run"] == 8 and conf["train_config"]["epochs"] == 8
    # a finished (not stopped) run goes on as one straight run would: 2 bad epochs (7, 8) + 1 = patience
    late = Trainer(_StubTask([2.1, 2.2, 2.3]), tmp_path / "ck", cfg(epochs=50, patience=3)).fit(resume=True)
    assert late.stopped_early and late.epochs_run == 9 and late.best_epoch == 6


def test_nan_loss_is_reported(tmp_path):
    task = _StubTask([1.0] * 3)
    task.train_loss = lambda batch, gen: (
        torch.tensor(float("nan"), requires_grad=True),
        {"loss": float("nan")},
    )
    with pytest.raises(TrainingError, match="training loss became nan at epoch 1. Lower --lr"):
        Trainer(task, tmp_path / "ck", cfg(epochs=2)).fit()


def test_bad_options():
    with pytest.raises(TrainingError, match="lr=0 must be > 0"):
        TrainConfig(lr=0)
    with pytest.raises(TrainingError, match="max_train=0 must be >= 1"):
        TrainConfig(max_train=0)


def test_devices(monkeypatch):
    monkeypatch.delenv("FCINV_DEVICE", raising=False)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("FCINV_DEVICE", "cpu")
    assert resolve_device(None).type == "cpu"
    monkeypatch.setenv("FCINV_DEVICE", "tpu")
    with pytest.raises(DeviceError, match="FCINV_DEVICE='tpu' is not a device"):
        resolve_device(None)
    assert resolve_device("cpu").type == "cpu", "an explicit --device wins over the environment"
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU is available"):
            resolve_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda(tmp_path, data):
    res = train_vae(data, tmp_path / "vae", cfg(epochs=2, device="cuda"), **TINY_VAE)
    assert np.isfinite(res.best_val_loss)
    train_regressor(data, tmp_path / "reg", tmp_path / "vae", cfg(epochs=2, device="cuda"), hidden=(8,))


def test_cli_train(tmp_path, data, capsys):
    common = ["--data", str(data), "--epochs", "2", "--batch-size", "32", "--quiet"]
    assert (
        train_cli.main(
            [
                "vae",
                *common,
                "--out",
                str(tmp_path / "vae"),
                "--latent-dim",
                "3",
                "--channels",
                "4,8",
                "--hidden-dim",
                "16",
            ]
        )
        == 0
    )
    assert (
        train_cli.main(
            [
                "regressor",
                *common,
                "--out",
                str(tmp_path / "reg"),
                "--vae",
                str(tmp_path / "vae"),
                "--hidden",
                "16",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "vae: best validation loss" in out and "regressor: best validation loss" in out
    conf = json.loads((tmp_path / "reg" / CONFIG).read_text())
    assert conf["command"].startswith("fcinv train regressor --data")
    assert (
        train_cli.main(
            ["vae", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x"), "--quiet"]
        )
        == 2
    )
    assert "fcinv train: error: dataset" in capsys.readouterr().err
