"""`--structure` without `--force-constants`, and paths with a zero-length segment (issue 13, item 1)."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.cli.main import main
from fcinv.crystal import Crystal, build_path
from fcinv.errors import StructureError


def write_poscar(path, lattice, symbols, counts, frac) -> None:
    """A VASP POSCAR (direct coordinates)."""
    lines = [path.stem, "1.0"]
    lines += [" ".join(f"{x:.10f}" for x in row) for row in np.asarray(lattice, float)]
    lines += [" ".join(symbols), " ".join(str(c) for c in counts), "Direct"]
    lines += [" ".join(f"{x:.10f}" for x in row) for row in np.asarray(frac, float)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def si_poscar(tmp_path):
    a = 5.431
    path = tmp_path / "Si.vasp"
    write_poscar(
        path, a / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]]), ["Si"], [2], [[0, 0, 0], [0.25] * 3]
    )
    return path


def test_structure_alone_names_the_crystal(tmp_path, si_poscar, capsys):
    from fcinv.experiment.folded import read_folded

    out = tmp_path / "si.h5"
    argv = ["simulate", "--structure", str(si_poscar), "--springs", "1NN=7", "2NN=0.7"]
    rc = main([*argv, "--e-max", "70", "-o", str(out), "--no-png"])
    assert rc == 0, capsys.readouterr().err
    fs = read_folded(out)
    assert fs.meta["material"] == "Si"
    # Si is lighter and stiffer here than Ge: the top mode is well above Ge's 37 meV
    assert np.max(fs.meta["frequencies_meV"]) > 45


def test_structure_with_another_crystal_is_refused(tmp_path, si_poscar, capsys):
    out = tmp_path / "x.h5"
    rc = main(["simulate", "--material", "Ge", "--structure", str(si_poscar), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    line = err.strip().splitlines()
    assert len(line) == 1 and "--structure" in line[0] and "--force-constants" in line[0]
    assert "Traceback" not in err


def test_unknown_material_hint_names_crystal_and_prepare(capsys, tmp_path):
    rc = main(["simulate", "--material", "Unobtainium", "-o", str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert rc != 0 and "--crystal FILE" in err and "fcinv prepare" in err and "Traceback" not in err


def test_zero_length_segment_names_the_structure():
    from ase.lattice import RHL

    # a rhombohedral lattice next to simple cubic: seekpath's default path has two coinciding points
    c = Crystal.from_cell(RHL(4.0, 89.5).tocell()[:], [[0, 0, 0]], [29], name="pseudo-cubic")
    with pytest.raises(StructureError, match="default path has the points") as exc:
        build_path(c)
    msg = str(exc.value)
    assert "read as R-3m #166" in msg and "setting" in msg and "--path" in msg
    assert "\n" not in msg


def test_zero_length_segment_of_given_labels(ge_crystal):
    with pytest.raises(StructureError, match="Remove the repeated label"):
        build_path(ge_crystal, "Γ-Γ-X")
