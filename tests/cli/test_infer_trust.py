"""`fcinv infer` through the CLI: calibrated σ, the adequacy verdict, refusal of data that hold nothing
(issue 11, items 1 and 3)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fcinv.cli.main import main

NXSPE = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nxspe").resolve()


@pytest.fixture(scope="module")
def ge_grid():
    from fcinv.inference import load_model

    return load_model("ge").grid


def _folded(grid, intensity, mask=None):
    from fcinv.experiment.folded import FoldedSpectrum

    shape = grid.shape
    mask = np.ones(shape, bool) if mask is None else mask
    img = np.where(mask, intensity, np.nan)
    return FoldedSpectrum(
        intensity=img,
        error=np.where(mask, 0.01, np.nan),
        mask=mask,
        n_contrib=np.where(mask, 1, 0).astype(np.int64),
        grid=grid,
    )


def test_all_zero_spectrum_is_refused(tmp_path, ge_grid, capsys):
    path = tmp_path / "zero.h5"
    _folded(ge_grid, np.zeros(ge_grid.shape)).to_hdf5(path)
    out = tmp_path / "fcs.json"
    rc = main(["infer", str(path), "--model", "ge", "--no-png", "--json", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "constrains no force" in err and "Traceback" not in err
    assert not out.exists()


def test_calibrated_sigma_and_verdict_in_table_and_json(tmp_path, ge_grid, capsys):
    from fcinv.material import load_material

    fm = load_material("Ge").forward_model()
    img = fm.spectra(fm.theta0)[0].astype(float)  # a clean weight-1 spectrum of the reference
    path = tmp_path / "clean.h5"
    _folded(ge_grid, img).to_hdf5(path)
    out = tmp_path / "fcs.json"
    rc = main(["infer", str(path), "--model", "ge", "--no-png", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "of the grid measured" in text  # the verdict's data line
    doc = json.loads(out.read_text())
    flat = json.dumps(doc)
    assert "split-conformal" in flat  # sigma_meaning of the calibrated ML answer
    assert "verdict" in flat and "half95" in flat


def test_six_percent_coverage_gets_the_warning(tmp_path, ge_grid, capsys):
    """A constructed run that measured 6 % of the grid (the first q-bins from Γ): answered, with the warning."""
    from fcinv.material import load_material

    fm = load_material("Ge").forward_model()
    img = fm.spectra(fm.theta0)[0].astype(float)
    mask = np.zeros(ge_grid.shape, bool)
    mask[30:39] = True  # 9 of 140 q-bins, every energy: 6.4 % of the pixels
    path = tmp_path / "six.h5"
    _folded(ge_grid, img, mask).to_hdf5(path)
    rc = main(["infer", str(path), "--model", "ge", "--no-png"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "WARNING:" in text and "of the grid is measured" in text


@pytest.mark.skipif(not NXSPE.is_dir(), reason="../shared/data/nxspe (real NXSPE files) is absent")
def test_real_mari_file_constrains_nothing_and_is_refused(capsys):
    """The real MARI NXSPE file (Ei 13 meV) on the Ge grid: 6 % measured, all below 10 meV, < 5 % of
    every parameter's sensitivity measured: refused, naming the shares."""
    argv = ["infer", str(NXSPE / "MAR11001_test.nxspe"), "--model", "ge", "--u", "1", "0", "0"]
    rc = main([*argv, "--v", "0", "1", "0", "--no-png"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "nothing is constrained" in err and "1NN_xx" in err and "Traceback" not in err
