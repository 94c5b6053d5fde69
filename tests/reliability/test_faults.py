"""Fault injection (issue 16): long jobs killed at random points in a subprocess, then resumed.

Each test runs ``fcinv <command>`` in a child process, sends SIGINT or SIGKILL at a random moment of
the work, checks what the interruption left (one SIGINT: exit 130 within a second, the resume flag
printed; no temporary file after the resumed run), resumes, and compares with an uninterrupted run
bit for bit. They start fresh interpreters, so they are ``slow`` (``make test-slow``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import fcinv
from fcinv.cli.main import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

SRC = str(Path(fcinv.__file__).resolve().parents[1])
ENV = {
    **os.environ,
    "PYTHONPATH": SRC,
    "NUMBA_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
DATASET = ["dataset", "--material", "Ge", "-n", "4000", "--chunk", "64", "--seed", "3", "--no-progress"]


def _spawn(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fcinv.cli.main", "-q", *argv],
        cwd=cwd,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_during(proc: subprocess.Popen, started: Path, sig: int, delay: float) -> tuple[int, str, float]:
    """Wait until ``started`` exists, then ``delay`` s, send ``sig``; (exit code, stderr, seconds to exit)."""
    t0 = time.monotonic()
    while not started.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() - t0 < 120, "the job never started writing"
        time.sleep(0.02)
    time.sleep(delay)
    assert proc.poll() is None, "the job finished before the fault; lower the delay"
    t = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, time.monotonic() - t


def _h5_arrays(path: Path) -> dict[str, bytes]:
    import h5py

    out = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                a = np.asarray(obj[()])
                out[name] = repr(a.tolist()).encode() if a.dtype.kind == "O" else a.tobytes()

        f.visititems(visit)
    return out


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*") if "tmp" in p.name)


@pytest.fixture(scope="module")
def dataset_reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ds_ref")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        assert main(["-q", *DATASET, "-o", "ref.h5"]) == 0
    finally:
        os.chdir(cwd)
    return _h5_arrays(d / "ref.h5")


@pytest.mark.parametrize(
    "sig,delay", [(signal.SIGINT, 0.3), (signal.SIGINT, 1.1), (signal.SIGKILL, 0.2), (signal.SIGKILL, 0.9)]
)
def test_dataset_killed_and_resumed_is_bit_identical(
    sig, delay, tmp_path, dataset_reference, monkeypatch, capsys
):
    rng = np.random.default_rng(int(sig) * 100 + int(delay * 10))
    delay = float(delay * rng.uniform(0.7, 1.3))
    proc = _spawn([*DATASET, "-o", "d.h5"], tmp_path)
    rc, err, dt = _kill_during(proc, tmp_path / "d.h5.partial", sig, delay)
    if sig == signal.SIGINT:
        assert rc == 130, err
        assert dt < 1.0, f"one SIGINT took {dt:.2f} s to stop the job"
        assert "--resume" in err and "Traceback" not in err and "Exception ignored" not in err, err
    else:
        assert rc == -signal.SIGKILL
    assert (tmp_path / "d.h5.partial").exists() and not (tmp_path / "d.h5").exists()
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    # a resume with another option is refused, naming it; the partial is untouched
    other = [("4" if a == "3" else a) for a in DATASET]  # --seed 4
    assert main(["-q", *other, "-o", "d.h5", "--resume"]) == 1
    assert "--seed 4 (the partial run used 3)" in capsys.readouterr().err
    assert main(["-q", *DATASET, "-o", "d.h5", "--resume"]) == 0
    assert _h5_arrays(tmp_path / "d.h5") == dataset_reference
    assert _temporaries(tmp_path) == []


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("train_data")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        assert main(["-q", "dataset", "--material", "Ge", "-n", "120", "--no-progress", "-o", "ge.h5"]) == 0
    finally:
        os.chdir(cwd)
    return d / "ge.h5"


def _train_args(data: Path, out: str) -> list[str]:
    return [
        "train",
        "vae",
        "--data",
        str(data),
        "--out",
        out,
        "--epochs",
        "40",
        "--patience",
        "100",
        "--batch-size",
        "16",
        "--latent-dim",
        "4",
        "--channels",
        "4,4",
        "--hidden-dim",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--quiet",
    ]


def _weights(folder: Path) -> dict[str, bytes]:
    import torch

    sd = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    sd = sd.get("state_dict", sd) if isinstance(sd, dict) else sd
    return {k: v.numpy().tobytes() for k, v in sd.items() if hasattr(v, "numpy")}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_train_killed_and_resumed_is_bit_identical(sig, tmp_path, small_dataset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["-q", *_train_args(small_dataset, "ref")]) == 0
    proc = _spawn(_train_args(small_dataset, "run"), tmp_path)
    delay = float(np.random.default_rng(int(sig)).uniform(0.05, 0.4))
    rc, err, dt = _kill_during(proc, tmp_path / "run" / "trainer_state.pt", sig, delay)
    if sig == signal.SIGINT:
        assert rc == 130, err
        assert dt < 1.0, f"one SIGINT took {dt:.2f} s to stop training"
        assert "--resume" in err and "Traceback" not in err, err
    else:
        assert rc == -signal.SIGKILL
    # a temporary of the killed writer, as SIGKILL leaves it mid-save
    (tmp_path / "run" / ".weights.pt.tmp-999999").write_bytes(b"partial")
    assert main(["-q", *_train_args(small_dataset, "run"), "--resume"]) == 0
    assert _weights(tmp_path / "run") == _weights(tmp_path / "ref")
    assert _temporaries(tmp_path / "run") == []


def test_fold_of_a_large_volume_stops_on_one_sigint_and_leaves_no_output(tmp_path):
    """fold writes its output atomically: interrupted, nothing is left; rerun, the result is the same."""
    vol = tmp_path / "vol.npz"
    rng = np.random.default_rng(0)
    h = np.arange(-3.0, 3.0, 0.1)
    e = np.arange(0.25, 40.0, 0.5)
    shape = (len(h), len(h), len(h), len(e))
    np.savez(
        vol,
        signal=rng.random(shape, dtype=np.float32),
        error=np.full(shape, 0.1, np.float32),
        H=h,
        K=h,
        L=h,
        E=e,
    )
    args = ["fold", str(vol), "--material", "Ge", "-o", "f.h5"]
    ref = subprocess.run(
        [sys.executable, "-m", "fcinv.cli.main", "-q", *args, "-o", "ref.h5"], cwd=tmp_path, env=ENV
    )
    assert ref.returncode == 0
    # timed on a second, warm run: the first one also fills numba's cache and the page cache, and a
    # fault timed from it can land after a warm run has already finished
    t = time.monotonic()
    warm = subprocess.run(
        [sys.executable, "-m", "fcinv.cli.main", "-q", *args, "-o", "warm.h5"], cwd=tmp_path, env=ENV
    )
    assert warm.returncode == 0
    whole = time.monotonic() - t
    # past the start-up (imports take up to ~40 % of a run), inside the read or the fold; on a loaded
    # machine a run can be quicker than the timed one, so one that finished first is repeated with a
    # somewhat earlier fault
    for fraction in (float(rng.uniform(0.55, 0.8)), 0.6, 0.55, 0.5):
        proc = _spawn(args, tmp_path)
        time.sleep(whole * fraction)
        if proc.poll() is None:
            break
        proc.communicate()
        (tmp_path / "f.h5").unlink(missing_ok=True)
    assert proc.poll() is None, "fold finished before the fault, four times"
    t = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    dt = time.monotonic() - t
    assert proc.returncode == 130, err
    assert dt < 1.0, f"one SIGINT took {dt:.2f} s to stop fold"
    assert "interrupted; no output was written" in err
    assert not (tmp_path / "f.h5").exists() and _temporaries(tmp_path) == []
    assert (
        subprocess.run(
            [sys.executable, "-m", "fcinv.cli.main", "-q", *args], cwd=tmp_path, env=ENV
        ).returncode
        == 0
    )
    assert _h5_arrays(tmp_path / "f.h5") == _h5_arrays(tmp_path / "ref.h5")
