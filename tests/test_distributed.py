"""DDP training: the per-rank batch split, 1 process equal to the Trainer, 2 gloo processes (torchrun)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import fcinv
from fcinv.dataset import write_dataset
from fcinv.dataset.toy import make_toy_dataset
from fcinv.models import VAE
from fcinv.models.checkpoint import CONFIG, WEIGHTS
from fcinv.training import TrainConfig, TrainingError, train_vae
from fcinv.training.distributed import GlobalBatchSampler, process_group

TINY = ["--latent-dim", "4", "--channels", "4,8", "--hidden-dim", "32", "--beta", "0.01"]
TINY_VAE = dict(latent_dim=4, channels=(4, 8), hidden_dim=32, beta=0.01)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ddp") / "toy.h5"
    write_dataset(path, make_toy_dataset(n=240, k=3, n_q=16, n_e=12, seed=0))
    return path


def test_global_batch_split_weights_give_the_global_mean():
    parts = [GlobalBatchSampler(r, 3) for r in range(3)]
    assert [p.bounds(10) for p in parts] == [(0, 4), (4, 7), (7, 10)]
    idx = np.arange(10)
    out = [list(p.split(iter([(idx, torch.arange(10.0))]))) for p in parts]
    assert np.array_equal(np.concatenate([o[0][0][0] for o in out]), idx)
    # DDP averages the weighted local means: (1/W) Σ_r w_r mean_r = the global-batch mean
    x = torch.arange(10.0)
    avg = sum(w * b[1].mean() for ((b, w),) in out) / 3
    assert torch.isclose(avg, x.mean())
    small = GlobalBatchSampler(0, 3)
    assert list(small.split(iter([np.arange(5)]))) == [] and small.skipped == 1  # < 2 per rank (BatchNorm)
    with pytest.raises(TrainingError, match="rank 3 is outside 0..2"):
        GlobalBatchSampler(3, 3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_process_group_takes_the_trainer_steps(tmp_path, data, monkeypatch):
    """World size 1: DistributedTrainer (gloo) follows the single-process Trainer step for step."""
    from fcinv.training import distributed

    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, progress=False, seed=0, device="cpu")
    ref = train_vae(data, tmp_path / "single", cfg, **TINY_VAE)
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }.items():
        monkeypatch.setenv(k, v)
    try:
        res = distributed.train_vae(data, tmp_path / "ddp1", cfg, **TINY_VAE)
        with pytest.raises(fcinv.errors.CheckpointError, match="already holds a checkpoint"):
            distributed.train_vae(data, tmp_path / "ddp1", cfg, **TINY_VAE)  # a second call reuses the group
    finally:
        distributed.shutdown()
    np.testing.assert_allclose(
        [h["val_loss"] for h in res.history], [h["val_loss"] for h in ref.history], rtol=1e-5
    )
    conf = json.loads((tmp_path / "ddp1" / CONFIG).read_text())
    assert conf["distributed"]["world_size"] == 1 and conf["distributed"]["backend"] == "gloo"


def test_ddp_outside_torchrun_says_how_to_launch(monkeypatch, tmp_path, data, capsys):
    from fcinv.cli import train as train_cli

    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(TrainingError, match="torchrun --nproc_per_node N -m fcinv.training"):
        with process_group("cpu"):
            pass
    assert train_cli.main(["vae", "--data", str(data), "--out", str(tmp_path / "x"), "--ddp", "--quiet"]) == 2
    assert "torchrun" in capsys.readouterr().err


DRIVER = textwrap.dedent(
    """
    import json, sys
    from fcinv.cli.train import main
    data, root, *tiny = sys.argv[1:]
    common = ["--data", data, "--batch-size", "32", "--lr", "3e-3", "--quiet", "--device", "cpu", "--ddp"]
    common += tiny
    assert main(["vae", "--out", root + "/killed", "--epochs", "2", *common]) == 0    # 'killed' after epoch 2
    assert main(["vae", "--out", root + "/killed", "--epochs", "3", "--resume", *common]) == 0
    assert main(["vae", "--out", root + "/straight", "--epochs", "3", *common]) == 0
    """
)


def test_two_gloo_processes_train_checkpoint_and_resume(tmp_path, data):
    """torchrun, 2 processes: train 2 epochs, resume to 3 (= 3 straight epochs); checkpoint loads as usual."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    src = str(Path(fcinv.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(driver),
        str(data),
        str(tmp_path),
        *TINY,
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
        _, err = proc.communicate()
        pytest.fail(f"the 2-process run did not finish in 300 s: {err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    conf = json.loads((killed / CONFIG).read_text())
    assert conf["distributed"]["world_size"] == 2 and conf["distributed"]["backend"] == "gloo"
    hist = conf["training"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    ref = json.loads((straight / CONFIG).read_text())["training"]["history"]
    np.testing.assert_allclose([h["val_loss"] for h in hist], [h["val_loss"] for h in ref], rtol=1e-6)
    assert (killed / WEIGHTS).read_bytes() == (straight / WEIGHTS).read_bytes()
    vae = VAE.from_checkpoint(killed)  # loads like a single-process checkpoint
    assert vae.config.latent_dim == 4
    # and a single process continues the 2-process run
    cfg = TrainConfig(epochs=4, batch_size=32, lr=3e-3, progress=False, seed=0, device="cpu")
    res = train_vae(data, killed, cfg, resume=True, **TINY_VAE)
    assert res.epochs_run == 4 and len(res.history) == 4
