"""A plain ``pip install .`` works on a CPU machine, by the README's own instructions.

A fresh virtual environment gets the CPU torch wheel first (``/opt/wheels`` when it is there,
else ``pip install torch==<version>``, which resolves to the CPU build where pip is configured
for it), then the checkout, non-editable, with no extras; then ``fcinv demo --quick`` must run to
completion. Slow (several minutes: dependencies are installed and the kernels compile cold).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
TORCH_VERSION = "2.13.0"
_SKIP = shutil.ignore_patterns(
    ".git", ".venv*", "out", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs"
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    assert p.returncode == 0, f"{' '.join(cmd)} exited {p.returncode}:\n{out[-5000:]}"
    return out


def _torch_requirement() -> str:
    wheels = sorted(Path("/opt/wheels").glob(f"torch-{TORCH_VERSION}+cpu-*.whl"))
    return str(wheels[0]) if wheels else f"torch=={TORCH_VERSION}"


@pytest.mark.slow
def test_pip_install_then_quick_demo(tmp_path):
    src = tmp_path / "checkout"  # a copy, so the build leaves nothing in the working tree
    shutil.copytree(REPO, src, ignore=_SKIP)
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    if SHARED_DATA.is_dir():
        env["FCINV_SHARED_DATA"] = str(SHARED_DATA)
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env, 300)
    py = str(venv / "bin" / "python")
    _run([py, "-m", "pip", "install", "-q", _torch_requirement()], tmp_path, env, 1200)
    _run([py, "-m", "pip", "install", "-q", str(src)], tmp_path, env, 1800)
    t_install = time.perf_counter() - t0
    # the installed package, not the checkout: run from elsewhere, through the console script
    fcinv = str(venv / "bin" / "fcinv")
    where = _run([py, "-c", "import fcinv; print(fcinv.__file__)"], tmp_path, env, 120)
    assert str(venv) in where and str(src) not in where
    t1 = time.perf_counter()
    out = _run([fcinv, "demo", "--quick", "--out", str(tmp_path / "demo")], tmp_path, env, 1800)
    t_demo = time.perf_counter() - t1
    assert "FC0" in out and "timings:" in out, out[-3000:]
    assert (tmp_path / "demo" / "result.json").is_file()
    assert "INFO" not in out, "the demo printed INFO log lines without -v"
    print(f"pip install (torch + fcinv): {t_install:.0f} s; fcinv demo --quick: {t_demo:.0f} s")
