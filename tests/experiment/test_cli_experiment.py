"""The ``fcinv simulate-experiment`` and ``fcinv fold`` commands (called through ``main([...])``)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fcinv.errors import DataError, FcinvError
from fcinv.experiment.folded import read_folded
from fcinv.experiment.simulate import SimulatedRun

pytest.importorskip("euphonic", reason="the simulated experiment needs Euphonic (the [experiment] extra)")


@pytest.fixture(scope="module")
def run_file(tmp_path_factory, ge_dft_dir):
    from fcinv.cli import simexp

    out = tmp_path_factory.mktemp("simexp")
    args = [
        "--material", "Ge",
        "--force-constants", str(ge_dft_dir / "FORCE_CONSTANTS"),
        "--structure", str(ge_dft_dir / "POSCAR"),
        "--supercell", "4", "4", "4",
        "--n-orientations", "3", "--psi-step", "30", "--seed", "2",
        "-o", str(out / "run.h5"), "--fold", str(out / "folded.h5"),
    ]  # fmt: skip
    assert simexp.main(args) == 0
    return out


def test_simulate_experiment_writes_a_run_and_its_fold(run_file, ge_grid):
    run = SimulatedRun.read(run_file / "run.h5")
    assert run.n_orientations == 3 and run.meta["seed"] == 2
    assert run.meta["supercell"] == [4, 4, 4]
    with h5py.File(run_file / "run.h5") as f:
        assert f.attrs["command"].startswith("fcinv") and f["psi"].attrs["unit"] == "degree"
    fs = read_folded(run_file / "folded.h5")
    assert fs.grid.same_as(ge_grid) and 0.2 < fs.coverage < 1.0


def test_fold_command_on_a_run_and_one_orientation(run_file, capsys):
    from fcinv.cli import fold

    assert fold.main([str(run_file / "run.h5"), "--material", "Ge", "-o", str(run_file / "all.h5")]) == 0
    assert (
        fold.main(
            [
                str(run_file / "run.h5"),
                "--material",
                "Ge",
                "--orientation",
                "1",
                "-o",
                str(run_file / "one.h5"),
                "--png",
                str(run_file / "one.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "folded onto 140 q x 80 E" in out and (run_file / "one.png").is_file()
    whole, one = read_folded(run_file / "all.h5"), read_folded(run_file / "one.h5")
    np.testing.assert_array_equal(whole.mask, read_folded(run_file / "folded.h5").mask)
    assert one.coverage < whole.coverage and one.meta["psi_deg"] == 30.0


def test_fold_command_converts_pathsqe_output(tmp_path, ge_grid):
    from fcinv.cli import fold

    img = np.random.default_rng(0).uniform(0, 1, ge_grid.shape)
    img[:5] = np.nan
    np.save(tmp_path / "folded_path_plot_3.npy", img)
    assert (
        fold.main(
            [str(tmp_path / "folded_path_plot_3.npy"), "--material", "Ge", "-o", str(tmp_path / "f.h5")]
        )
        == 0
    )
    np.testing.assert_array_equal(read_folded(tmp_path / "f.h5").intensity, img)


def test_fold_command_bad_input(tmp_path, nxspe_dir, run_file):
    from fcinv.cli import fold

    with pytest.raises(DataError, match="does not exist"):
        fold.main([str(tmp_path / "nope.h5"), "--material", "Ge", "-o", str(tmp_path / "x.h5")])
    with pytest.raises(FcinvError, match=r"option\(s\) \['orientation'\] do not apply to volume input"):
        fold.main(
            [
                str(run_file / "run.h5"),
                "--material",
                "Ge",
                "--format",
                "volume",
                "--orientation",
                "1",
                "-o",
                str(tmp_path / "x.h5"),
            ]
        )
    p = tmp_path / "junk.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("whatever", data=[1, 2])
    with pytest.raises(DataError, match="is not recognised .no MDHistoWorkspace, NXSPE entry"):
        fold.main([str(p), "--material", "Ge", "-o", str(tmp_path / "x.h5")])


def test_simulate_experiment_needs_force_constants(tmp_path):
    from fcinv.cli import simexp

    with pytest.raises(FcinvError, match="--force-constants is required"):
        simexp.main(["--material", "Ge", "-o", str(tmp_path / "r.h5")])


def test_fold_nxspe_takes_the_material_lattice(tmp_path, nxspe_dir):
    """NXSPE files carry no orientation: the material's lattice is the default, as --lattice would give."""
    from fcinv.cli import fold

    f = str(nxspe_dir / "MAR11001_test.nxspe")
    assert fold.main([f, "--material", "Ge", "-o", str(tmp_path / "a.h5")]) == 0
    assert fold.main([f, "--material", "Ge", "--lattice", "5.658", "-o", str(tmp_path / "b.h5")]) == 0
    a, b = read_folded(tmp_path / "a.h5"), read_folded(tmp_path / "b.h5")
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.filled(), b.filled(), rtol=1e-6)
    assert 0 < a.coverage < 1


def test_infer_a_run_and_its_single_orientations(run_file, tmp_path, monkeypatch, capsys):
    """fcinv infer on a simulated run: folded with the one-phonon corrections, then each orientation alone."""
    import json

    from fcinv.cli.main import main
    from fcinv.result import FCResult

    monkeypatch.chdir(tmp_path)
    args = ["infer", str(run_file / "run.h5"), "--model", "ge", "--k-samples", "5", "--per-orientation"]
    assert main([*args, "--json", "r.json", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "3 single orientations folded and inverted" in out and "wrote run_fcinv.png" in out
    per = json.loads((tmp_path / "run_orientations.json").read_text())
    assert (
        per["psi_deg"] == [0.0, 30.0, 60.0]
        and len(per["theta"]) == 3
        and len(per["msd_vs_full_domain_widths"]) == 3
    )
    assert (tmp_path / "run_orientations.png").stat().st_size > 10_000
    res = FCResult.from_json(tmp_path / "r.json")
    assert 0.5 < res.adequacy["coverage"] < 1 and res.provenance.command.startswith("fcinv infer")
