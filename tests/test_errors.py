"""``errors.require``: the install hint names a command that works here (fcinv is on no package index)."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest

import fcinv
from fcinv import errors
from fcinv.errors import MissingDependencyError, install_command, require


def _project_root() -> Path:
    return Path(fcinv.__file__).resolve().parents[2]


def test_require_returns_the_module():
    assert require("json", "dev", "testing").dumps([1]) == "[1]"


def test_missing_module_hint_installs_the_extra_from_this_source_tree():
    with pytest.raises(MissingDependencyError, match="needs the optional package") as info:
        require("fcinv_no_such_module_xyz", "dask", "the test")
    msg = str(info.value)
    assert "\n" not in msg and "'fcinv[dask]'" not in msg
    assert msg.startswith("the test needs the optional package 'fcinv_no_such_module_xyz'")
    command = msg.split("install it with: ", 1)[1]
    words = shlex.split(command)
    assert words[:2] == ["pip", "install"] and len(words) == 3
    target, extra = words[2].removesuffix("]").rsplit("[", 1)
    assert extra == "dask"
    # pip can install the target: a folder whose pyproject is fcinv's and declares that extra
    doc = tomllib.loads((Path(target) / "pyproject.toml").read_text(encoding="utf-8"))
    assert doc["project"]["name"] == "fcinv" and "dask" in doc["project"]["optional-dependencies"]
    assert Path(target).resolve() == _project_root()


def test_without_a_source_tree_the_hint_names_the_extra_requirements(monkeypatch):
    monkeypatch.setattr(errors, "_source_tree", lambda: None)
    monkeypatch.setattr(errors, "_extra_requirements", lambda extra: ["dask[distributed]>=2024.1"])
    assert install_command("dask") == "pip install 'dask[distributed]>=2024.1'"
    monkeypatch.setattr(errors, "_extra_requirements", lambda extra: [])
    assert install_command("dask").startswith("pip install '<fcinv source folder>[dask]'")


def test_extra_requirements_read_the_installed_metadata():
    from importlib import metadata

    try:
        metadata.distribution("fcinv")
    except metadata.PackageNotFoundError:
        pytest.skip("fcinv is not installed (running from the source tree only)")
    assert any(r.startswith("umap-learn") for r in errors._extra_requirements("latent"))
    assert errors._extra_requirements("no-such-extra") == []
