"""``fcinv train --resume`` with other options than the interrupted run names each difference (issue 16)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from fcinv.cli.main import main
from fcinv.dataset import write_dataset
from fcinv.dataset.toy import make_toy_dataset
from fcinv.models.checkpoint import TRAINER_STATE

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--epochs", "2", "--batch-size", "32", "--latent-dim", "3", "--channels", "4,8", "--hidden-dim", "16"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished two-epoch VAE run (its trainer state kept, as after an interruption) and its data."""
    d = tmp_path_factory.mktemp("train_resume")
    write_dataset(d / "toy.h5", make_toy_dataset(n=160, k=3, n_q=16, n_e=12, seed=0))
    write_dataset(d / "other.h5", make_toy_dataset(n=160, k=3, n_q=16, n_e=12, seed=1))
    assert main(["-q", "train", "vae", "--data", str(d / "toy.h5"), "--out", str(d / "run"), *TINY]) == 0
    assert (d / "run" / TRAINER_STATE).is_file()
    return d


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file's size and mtime (folders' mtimes move with the writable probe, their files do not)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def _resume(d: Path, *extra: str, data: str | None = None) -> list[str]:
    return [
        "train",
        "vae",
        "--data",
        data or str(d / "toy.h5"),
        "--out",
        str(d / "run"),
        *TINY,
        *extra,
        "--resume",
    ]


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("fcinv train: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_resume_names_every_differing_option(run_dir, capsys):
    before = _snapshot(run_dir)
    argv = _resume(
        run_dir, "--epochs", "5", "--batch-size", "16", "--lr", "0.01", "--seed", "3", "--latent-dim", "4"
    )
    argv[argv.index("--data") + 1] = str(run_dir / "other.h5")
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    line = _error_line(err)
    for want in (
        r"--batch-size 16 \(the run used 32\)",
        r"--data \S*other\.h5 \(the run used \S*toy\.h5\)",
        r"--latent-dim 4 \(the run used 3\)",
        r"--lr 0\.01 \(the run used 0\.001\)",
        r"--seed 3 \(the run used 0\)",
    ):
        assert re.search(want, line), (want, line)
    assert re.search(r"--resume with other options than the run in .* Resume with the original options", line)
    assert "--hidden-dim" not in line and "--threads" not in line and "--epochs" not in line
    assert _snapshot(run_dir) == before, "a refused resume changed the run"


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        (["--channels", "4,4"], r"--channels 4 4 \(the run used 4 8\)"),
        (["--beta", "0.5"], r"--beta 0\.5 \(the run used 0\.1\)"),
        (["--noise-augment"], r"--noise-augment True \(the run used False\)"),
        (["--max-train", "10"], r"--max-train 10 \(the run used None\)"),
    ],
    ids=["channels", "beta", "noise-augment", "max-train"],
)
def test_resume_names_an_architecture_or_data_option(run_dir, capsys, extra, want):
    capsys.readouterr()
    assert main(_resume(run_dir, *extra)) == 1
    assert re.search(want, _error_line(capsys.readouterr().err))


def test_resume_with_the_same_options_runs(run_dir, monkeypatch, capsys):
    """Where it runs (device, threads), bars and a relative path to the same data are not differences."""
    monkeypatch.chdir(run_dir)
    argv = _resume(run_dir, "--threads", "1", "--device", "cpu", "--quiet", data="toy.h5")
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err


def test_a_state_without_command_falls_back_to_the_checkpoint(run_dir, tmp_path, capsys):
    """Trainer states written before the command was kept: the checkpoint's config.json command is used."""
    import shutil

    from fcinv.cli._guards import train_resume_command

    run = tmp_path / "run"
    shutil.copytree(run_dir / "run", run)
    st = torch.load(run / TRAINER_STATE, weights_only=True)
    st.pop("command")
    torch.save(st, run / TRAINER_STATE)
    cmd = train_resume_command(run)
    assert cmd is not None and "--latent-dim 3" in cmd
    argv = _resume(run_dir, "--seed", "7")
    argv[argv.index("--out") + 1] = str(run)
    capsys.readouterr()
    assert main(argv) == 1
    assert re.search(r"--seed 7 \(the run used 0\)", _error_line(capsys.readouterr().err))
    assert os.path.getsize(run / TRAINER_STATE) > 0


def test_weights_and_config_out_of_step_name_resume_which_repairs_them(run_dir, tmp_path, capsys):
    """Killed between writing weights.pt and config.json: the message names --resume, and it repairs."""
    import shutil

    from fcinv.errors import CheckpointError
    from fcinv.models import VAE
    from fcinv.models.checkpoint import WEIGHTS

    run = tmp_path / "run"
    shutil.copytree(run_dir / "run", run)
    st = torch.load(run / TRAINER_STATE, weights_only=True)
    torch.save(st["model"], run / WEIGHTS)  # the last epoch's weights, the config of the best one
    with pytest.raises(
        CheckpointError, match=r"hash differs.*Retrain or rerun the same `fcinv train` command with --resume"
    ):
        VAE.from_checkpoint(run)
    argv = _resume(run_dir)
    argv[argv.index("--out") + 1] = str(run)
    assert main(["-q", *argv]) == 0, capsys.readouterr().err
    VAE.from_checkpoint(run)  # consistent again


def test_resume_with_more_epochs_extends_a_finished_run(run_dir, tmp_path, capsys):
    """A finished 2-epoch run resumed with --epochs 3 trains one more epoch: the same as 3 straight epochs."""
    import json
    import shutil

    from fcinv.models.checkpoint import CONFIG, WEIGHTS

    run = tmp_path / "run"
    shutil.copytree(run_dir / "run", run)
    argv = _resume(run_dir, "--epochs", "3", "--quiet")
    argv[argv.index("--out") + 1] = str(run)
    capsys.readouterr()
    assert main(argv) == 0, capsys.readouterr().err
    straight = [w if w != "2" else "3" for w in TINY]
    data = str(run_dir / "toy.h5")
    assert main(["-q", "train", "vae", "--data", data, "--out", str(tmp_path / "straight"), *straight]) == 0
    hist = json.loads((run / CONFIG).read_text())["training"]["history"]
    ref = json.loads((tmp_path / "straight" / CONFIG).read_text())["training"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert [h["val_loss"] for h in hist] == [h["val_loss"] for h in ref]
    assert (run / WEIGHTS).read_bytes() == (tmp_path / "straight" / WEIGHTS).read_bytes()
