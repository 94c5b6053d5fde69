"""The one atomic writer: the target appears whole or not at all, with the usual permissions."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from fcinv.io import atomic_h5, atomic_path, jsonable, write_json, write_text


def test_atomic_path_renames_on_success_and_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("one")
        assert not target.exists()
    assert target.read_text() == "one"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("two, half written")
            raise RuntimeError("boom")
    assert target.read_text() == "one"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"], "no temporary file left behind"


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = write_text(tmp_path / "p.txt", "x")
    finally:
        os.umask(old)
    assert oct(p.stat().st_mode & 0o777) == oct(0o644)


def test_atomic_h5_and_json(tmp_path):
    with atomic_h5(tmp_path / "f.h5") as f:
        f["x"] = np.arange(3)
    with h5py.File(tmp_path / "f.h5") as f:
        np.testing.assert_array_equal(f["x"][()], [0, 1, 2])
    doc = {"a": np.float32(1.5), "b": np.arange(2), "c": (1, 2), "d": tmp_path}
    write_json(tmp_path / "d.json", doc)
    assert json.loads((tmp_path / "d.json").read_text()) == {
        "a": 1.5,
        "b": [0, 1],
        "c": [1, 2],
        "d": str(tmp_path),
    }
    assert jsonable({1: np.int64(2)}) == {"1": 2}
