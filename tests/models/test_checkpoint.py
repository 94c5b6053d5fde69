"""Checkpoint directories: save → load identity, grid/name checks, corruption."""

from __future__ import annotations

import json

import pytest
import torch

from fcinv.dataset.toy import toy_grid
from fcinv.errors import CheckpointError, GridError
from fcinv.models import (
    VAE,
    Regressor,
    RegressorConfig,
    ResNet18,
    ResNet18Config,
    Standardizer,
    VAEConfig,
    load_checkpoint,
)
from fcinv.models.checkpoint import CONFIG, WEIGHTS

GRID = toy_grid(16, 12)
NAMES = ("a", "b")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _models():
    st = Standardizer((1.0, 2.0), (0.5, 0.25))
    return [
        (VAE(VAEConfig((16, 12), latent_dim=3, channels=(4, 8), hidden_dim=16)), None, torch.rand(3, 16, 12)),
        (Regressor(RegressorConfig(latent_dim=3, n_out=2, hidden=(8,))), st, torch.rand(3, 3)),
        (ResNet18(ResNet18Config((16, 12), n_out=2)), st, torch.rand(3, 16, 12)),
    ]


@pytest.mark.parametrize("i", range(3), ids=["vae", "regressor", "resnet"])
def test_save_load_identical(tmp_path, i):
    model, st, x = _models()[i]
    model.eval()
    model.save_checkpoint(tmp_path / "ck", grid=GRID, names=NAMES, target_scaling=st, extra={"seed": 4})
    back = type(model).from_checkpoint(tmp_path / "ck", expect_grid=GRID, expect_names=NAMES)
    with torch.no_grad():
        a = model(x, sample=False).logits if isinstance(model, VAE) else model(x)
        b = back(x, sample=False).logits if isinstance(back, VAE) else back(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert back.config == model.config
    assert back.checkpoint.names == NAMES and back.checkpoint.raw["seed"] == 4
    assert back.checkpoint.target_scaling == st
    cfg = json.loads((tmp_path / "ck" / CONFIG).read_text())
    assert cfg["fcinv_version"] and cfg["kind"] == model.kind and cfg["grid"]["energy_edges"][-1] == 40.0


def test_refuses_other_grid_and_names(tmp_path):
    model, st, _ = _models()[1]
    model.save_checkpoint(tmp_path / "ck", grid=GRID, names=NAMES, target_scaling=st)
    with pytest.raises(
        GridError, match=r"trained on another grid \(model grid \(16, 12\) vs data grid \(16, 13\)\)"
    ):
        Regressor.from_checkpoint(tmp_path / "ck", expect_grid=toy_grid(16, 13))
    with pytest.raises(CheckpointError, match=r"predicts \['a', 'b'\], not \['a', 'c'\]"):
        Regressor.from_checkpoint(tmp_path / "ck", expect_names=("a", "c"))
    with pytest.raises(CheckpointError, match="holds a regressor model, not a vae"):
        VAE.from_checkpoint(tmp_path / "ck")


def test_corrupt_checkpoints(tmp_path):
    model, st, _ = _models()[1]
    ck = tmp_path / "ck"
    model.save_checkpoint(ck, grid=GRID, names=NAMES, target_scaling=st)
    with pytest.raises(CheckpointError, match="does not exist"):
        Regressor.from_checkpoint(tmp_path / "missing")
    data = (ck / WEIGHTS).read_bytes()
    (ck / WEIGHTS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"weights.pt does not match config.json \(hash differs"):
        Regressor.from_checkpoint(ck)
    cfg = json.loads((ck / CONFIG).read_text())
    import hashlib

    cfg["weights_sha256"] = hashlib.sha256((ck / WEIGHTS).read_bytes()).hexdigest()
    (ck / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="is corrupt or not a torch file"):
        Regressor.from_checkpoint(ck)
    (ck / CONFIG).write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        Regressor.from_checkpoint(ck)
    (ck / CONFIG).unlink()
    with pytest.raises(CheckpointError, match="lacks config.json; it is not an fcinv checkpoint"):
        load_checkpoint(ck)
    # a training interrupted between the weights and the config: the message names --resume
    (ck / "trainer_state.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="interrupted while saving.*with --resume"):
        load_checkpoint(ck)


def test_architecture_mismatch(tmp_path):
    model, st, _ = _models()[1]
    ck = tmp_path / "ck"
    model.save_checkpoint(ck, grid=GRID, names=NAMES, target_scaling=st)
    cfg = json.loads((ck / CONFIG).read_text())
    cfg["model_config"]["hidden"] = [9]
    (ck / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="weights do not fit the Regressor architecture"):
        Regressor.from_checkpoint(ck)
    cfg["model_config"]["width"] = 3
    (ck / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"unknown keys \['width'\]"):
        Regressor.from_checkpoint(ck)
