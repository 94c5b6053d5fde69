"""A member's set read with the wrong setting of its cell is caught (issue 13: GaAs's CHGNet member).

Zincblende has two inversion twins (the second atom at 1/4 or at 3/4 of the primitive diagonal), and
spglib's standardisation turns each into the other; a set computed on one and read with the other is
not symmetric under the space group. Stage I now computes every member on the cell the folder is
read with, and leaves out a set that is not symmetric on it, with the reason.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.crystal import Crystal
from fcinv.mlff.build import check_symmetry
from fcinv.mlff.phonons import PhononSettings, compute_force_constants
from fcinv.mlff.runner import MemberResult
from fcinv.mlff.symmetry import SYMMETRY_TOL, symmetry_residual

from .mlff_helpers import FakeMember, SpringCalculator

A = 5.653
LAT = A / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
#: Central springs of zincblende: nearest (Ga-As) and second (Ga-Ga, As-As) neighbours (Å, eV/Å²).
SHELLS = ((A * np.sqrt(3) / 4, 4.0), (A / np.sqrt(2), 0.6))


def zincblende(x: float) -> Crystal:
    return Crystal.from_cell(LAT, [[0, 0, 0], [x, x, x]], [31, 33], name="GaAs")


@pytest.fixture(scope="module")
def twins():
    c1, c3 = zincblende(0.25), zincblende(0.75)
    assert c1.spacegroup == c3.spacegroup == ("F-43m", 216)
    assert not np.allclose(c1.positions, c3.positions)  # the standardised cells are the two twins
    phonon = compute_force_constants(c1, SpringCalculator(list(SHELLS)), PhononSettings.create(3, 0.01))
    return c1, c3, np.asarray(phonon.force_constants)


def test_a_set_is_symmetric_on_its_own_cell_and_not_on_the_twin(twins):
    c1, c3, fc = twins
    assert symmetry_residual(c1, fc, 3) < 1e-10
    assert symmetry_residual(c3, fc, 3) > 0.1


def _result(name: str, crystal: Crystal, fc: np.ndarray) -> MemberResult:
    return MemberResult(
        name=name,
        member={"name": name},
        status="stable",
        reason=None,
        lattice_a=crystal.conventional_a,
        relaxed=False,
        settings=PhononSettings.create(3).to_dict(),
        fc=fc,
        p2s_map=np.array([0, 27]),
    )


def test_check_symmetry_leaves_out_the_set_of_the_other_twin(twins):
    c1, c3, fc = twins
    fc_right = np.asarray(
        compute_force_constants(c3, SpringCalculator(list(SHELLS)), PhononSettings.create(3)).force_constants
    )
    out, res = check_symmetry(c3, [_result("right", c3, fc_right), _result("twin", c3, fc)])
    assert [r.status for r in out] == ["stable", "asymmetric"]
    assert res["right"] < SYMMETRY_TOL < res["twin"]
    assert out[1].reason.startswith("force constants not symmetric under the crystal's space group")
    assert "\n" not in out[1].reason


def test_prepare_computes_every_member_once_on_the_folders_cell(tmp_path, monkeypatch, weights_file):
    """``prepare``'s Stage I ran the first member on the structure file's cell (for the energy range) and
    then on the folder's (the twin): computed twice, and before the cache key held the whole cell the
    first result was reused on the twin. Now each member runs once, on the cell the folder is read with."""
    from ase.build import bulk
    from ase.io import write

    import fcinv.mlff.ensemble as ensemble_mod
    from fcinv.material import load_material
    from fcinv.prepare.pipeline import PrepareOptions, prepare

    members = [
        FakeMember(name="stiff", shells=SHELLS, weights=weights_file),
        FakeMember(name="soft", shells=((SHELLS[0][0], 3.0), (SHELLS[1][0], 0.5)), weights=weights_file),
    ]
    monkeypatch.setattr(ensemble_mod, "resolve_members", lambda specs=None: members)
    poscar = tmp_path / "GaAs.vasp"
    write(str(poscar), bulk("GaAs", "zincblende", a=A), format="vasp", direct=True)
    out = tmp_path / "GaAs"
    opts = PrepareOptions(supercell=[3, 3, 3], shells=2, until="stage1", progress=False)
    prepare(poscar, out, opts, say=lambda _m: None)
    assert [len(m.calls) for m in members] == [1, 1]
    ens = json.loads((out / "ensemble.json").read_text())
    assert ens["stable_members"] == ["stiff", "soft"]
    rows = {m["name"]: m for m in ens["members"]}
    assert all(rows[n]["symmetry_residual"] < 1e-10 for n in ("stiff", "soft"))
    crystal = load_material(out).crystal
    from fcinv.mlff.runner import load_result

    res, _ = load_result(out / "stage1_cache" / "stiff.h5")
    assert symmetry_residual(crystal, res.fc, 3) < 1e-10
