"""Stage I of a new structure file from the force-field ensemble (needs the [mlff] extra; slow)."""

from __future__ import annotations

import json

import pytest

from fcinv.cli.main import main

pytestmark = [pytest.mark.mlff, pytest.mark.slow]


def test_reference_of_a_structure_file_is_a_material_folder(tmp_path, capsys):
    pytest.importorskip("chgnet")
    pytest.importorskip("sevenn")
    from ase.build import bulk
    from ase.io import write

    from fcinv.material import load_material

    poscar = tmp_path / "Al.vasp"
    write(str(poscar), bulk("Al", "fcc", a=4.05), format="vasp", direct=True)
    out = tmp_path / "Al"
    argv = ["reference", str(poscar), "--members", "chgnet-0.2.0", "7net-0", "--shells", "3"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    assert "use it as --material" in capsys.readouterr().out
    ens = json.loads((out / "ensemble.json").read_text())
    assert ens["stable_members"] == ["chgnet-0.2.0", "7net-0"]
    mat = load_material(out)
    ref = mat.reference
    assert ref.n_shells == 3 and mat.energy_range[1] > 20  # Al's top mode is near 40 meV
    assert (ref.lower <= ref.theta_ref).all() and (ref.theta_ref <= ref.upper).all()
