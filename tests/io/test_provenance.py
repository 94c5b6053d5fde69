"""One provenance stamp: version, seed, command (set once by the CLI) and time, on files and results."""

from __future__ import annotations

import h5py

import fcinv
from fcinv.io import Provenance, command_scope, current_command, read_stamp, stamp_h5


def test_command_scope_sets_and_restores_the_command():
    outside = current_command()
    assert outside.startswith("python")
    with command_scope(["fcinv", "infer", "my data.h5"]) as cmd:
        assert cmd == "fcinv infer 'my data.h5'" == current_command()
        assert Provenance.now(seed=3).command == cmd
    assert current_command() == outside


def test_stamp_round_trip(tmp_path):
    p = Provenance.now(seed=7, command="fcinv x")
    assert p.fcinv_version == fcinv.__version__ and p.created.endswith("+00:00")
    with h5py.File(tmp_path / "s.h5", "w") as f:
        stamp_h5(f, "fcinv-test", 1, provenance=p, meta={"k": 1})
    with h5py.File(tmp_path / "s.h5") as f:
        assert read_stamp(f) == p and f.attrs["format"] == "fcinv-test" and f.attrs["meta"] == '{"k": 1}'
    assert Provenance.from_dict(p.to_dict()) == p
    assert Provenance.from_dict({"seed": -1}).seed is None


def test_cli_files_record_the_fcinv_command(tmp_path):
    from fcinv.cli.main import main

    out = tmp_path / "s.h5"
    assert main(["-q", "simulate", "--material", "Ge", "-o", str(out), "--no-png"]) == 0
    with h5py.File(out) as f:
        assert f.attrs["command"] == f"fcinv -q simulate --material Ge -o {out} --no-png"
        assert f.attrs["fcinv_version"] == fcinv.__version__
