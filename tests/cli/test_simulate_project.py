"""CLI: fcinv simulate / project / --help, through main([...])."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.cli.main import main


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("simulate", "project", "dataset"):
        assert cmd in out


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_simulate_from_phonopy_files(tmp_path, ge_dft_dir, capsys):
    from fcinv.experiment.folded import read_folded

    out = tmp_path / "dft.h5"
    rc = main(
        [
            "simulate",
            "--material",
            "Ge",
            "--force-constants",
            str(ge_dft_dir / "FORCE_CONSTANTS"),
            "--structure",
            str(ge_dft_dir / "POSCAR"),
            "--supercell",
            "4",
            "4",
            "4",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    fs = read_folded(out)
    assert fs.intensity.shape == (140, 80) and fs.mask.all()
    assert (tmp_path / "dft.png").stat().st_size > 10_000
    # optical Γ of DFT Ge near 9 THz (37 meV): the top row near Γ peaks there
    f = np.array(fs.meta["frequencies_meV"])
    assert 36 < f[0, -1] < 39


def test_simulate_springs_any_structure(tmp_path, ge_dft_dir):
    out = tmp_path / "s.h5"
    assert (
        main(
            [
                "simulate",
                "--crystal",
                str(ge_dft_dir / "POSCAR"),
                "--springs",
                "1NN=6",
                "2NN=0.6",
                "--e-max",
                "60",
                "-o",
                str(out),
                "--no-png",
            ]
        )
        == 0
    )
    assert out.exists() and not (tmp_path / "s.png").exists()


def test_simulate_bad_theta(tmp_path, capsys):
    rc = main(
        [
            "simulate",
            "--crystal",
            str(_ge_poscar()),
            "--springs",
            "1NN=6",
            "--theta",
            "7NN_xx=1",
            "--e-max",
            "50",
            "-o",
            str(tmp_path / "x.h5"),
        ]
    )
    assert rc == 1
    assert "unknown parameter '7NN_xx'" in capsys.readouterr().err


def test_project_prints_theta(ge_dft_dir, capsys, tmp_path):
    rc = main(
        [
            "project",
            str(ge_dft_dir / "FORCE_CONSTANTS"),
            "--structure",
            str(ge_dft_dir / "POSCAR"),
            "--supercell",
            "4",
            "4",
            "4",
            "--json",
            str(tmp_path / "t.json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "1NN_xx" in out and "beyond the cutoff" in out
    import json

    d = json.loads((tmp_path / "t.json").read_text())
    assert d["theta"]["1NN_xx"] == pytest.approx(-2.9449, abs=1e-3)


def test_project_wrong_supercell(ge_dft_dir, capsys):
    rc = main(
        [
            "project",
            str(ge_dft_dir / "FORCE_CONSTANTS"),
            "--structure",
            str(ge_dft_dir / "POSCAR"),
            "--supercell",
            "3",
            "3",
            "3",
        ]
    )
    assert rc == 1
    assert "force-constant array has shape (2, 128, 3, 3)" in capsys.readouterr().err


def _ge_poscar():
    from fcinv.crystal import material_dir

    return material_dir("Ge") / "structure.vasp"
