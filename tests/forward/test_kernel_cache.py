"""Kernel caching: numba's on-disk cache where it can be written, in-memory compilation where not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fcinv import jit as _jit
from fcinv.jit import cached_njit

SRC = Path(__file__).resolve().parents[2] / "src"


def test_cached_njit_without_a_cache_location_compiles_in_memory(monkeypatch):
    """A function whose file has no cache location (here: no file at all) still compiles, with one warning."""
    monkeypatch.setattr(_jit, "_warned", False)
    ns: dict = {}
    exec(compile("def double(x):\n    return 2 * x\n", "<no file>", "exec"), ns)
    with pytest.warns(RuntimeWarning, match="NUMBA_CACHE_DIR"):
        fn = cached_njit()(ns["double"])
    assert fn(3) == 6
    assert not fn._cache.__class__.__name__.endswith("FunctionCache")


def test_kernels_cache_where_writable(tmp_path):
    """With a writable location the forward kernels are cached (no warning)."""
    import warnings

    ns: dict = {}
    src = tmp_path / "mod_cached.py"
    src.write_text("def triple(x):\n    return 3 * x\n")
    exec(compile(src.read_text(), str(src), "exec"), ns)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fn = cached_njit()(ns["triple"])
    assert fn(2) == 6
    assert fn._cache.__class__.__name__ == "FunctionCache"


@pytest.mark.slow
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare for a read-only mount",
)
def test_read_only_installation_runs(tmp_path):
    """A copy of the package on a read-only mount, no writable home, no NUMBA_CACHE_DIR: simulate works."""
    ro = tmp_path / "ro"
    shutil.copytree(SRC, ro / "src", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "out.h5"
    script = (
        f"mount --bind {ro} {ro} && mount -o remount,ro,bind {ro} && "
        f"{sys.executable} -m fcinv.cli.main simulate --material Ge -o {out} --no-png --force"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(HOME=str(ro), PYTHONPATH=str(ro / "src"), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, capture_output=True, text=True)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("mount namespaces are not permitted here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "kernels are compiled at every start" in proc.stderr
    assert out.is_file()
    assert not list((ro / "src").rglob("*.nbi"))
