"""`fcinv reference --from-phonopy`: a material folder's Stage I reference from user phonopy sets."""

from __future__ import annotations

import json

import numpy as np
from tests.prepare._crystals import silicon, spring_set

from fcinv.cli.main import main
from fcinv.prepare.stage1 import WIDEN_FLOOR


def _ref_argv(sets, out, *extra):
    argv = ["reference"]
    for s in sets:
        sc = np.diag(s.supercell).astype(str).tolist()
        argv += [
            "--from-phonopy",
            str(s.force_constants),
            "--structure",
            str(s.structure),
            "--supercell",
            *sc,
        ]
    return [*argv, "--out", str(out), "--no-progress", *extra]


def test_two_spring_sets_make_a_material_folder(tmp_path, capsys):
    from fcinv.material import load_material

    c = silicon()
    s0, th0 = spring_set(tmp_path / "a", c, {"1NN": 7.0, "2NN": 0.7})
    s1, th1 = spring_set(tmp_path / "b", c, {"1NN": 6.0, "2NN": 0.9})
    out = tmp_path / "Si"
    assert main(_ref_argv([s0, s1], out, "--shells", "2", "--widen", "0.2")) == 0
    text = capsys.readouterr().out
    assert "relative widening w = 0.2" in text and "no force fields" in text
    for f in ("material.json", "structure.vasp", "ensemble.json", "reference_fc.hdf5", "provenance.json"):
        assert (out / f).is_file(), f
    # every set is kept, as the force-field route keeps its members (the same writer)
    from fcinv.reference import read_members_fc, read_reference_fc

    sets = read_members_fc(out / "members_fc.hdf5")
    assert sorted(sets) == ["set0", "set1"]
    np.testing.assert_array_equal(
        sets["set0"]["force_constants"], read_reference_fc(out / "reference_fc.hdf5")["force_constants"]
    )
    mat = load_material(out)
    assert mat.reference_available and not mat.embedded and mat.name == "Si"
    ref = mat.reference
    names = list(ref.space.names)
    assert ref.n_shells == 2 and len(names) == 6
    # two sets: the reference is the first; its θ is set0's springs (exact: in-shell, nothing beyond)
    np.testing.assert_allclose(ref.theta_ref, th0, atol=1e-9)
    m = np.maximum(np.abs(th0), WIDEN_FLOOR * np.abs(th0).max())
    np.testing.assert_allclose(ref.lower, np.minimum(th0, th1) - 0.2 * m, atol=1e-9)
    np.testing.assert_allclose(ref.upper, np.maximum(th0, th1) + 0.2 * m, atol=1e-9)
    # at more shells (3 fit the 3x3x3 sets) the bounds still follow the widening rule, from both sets
    from fcinv.reference import load_reference

    ref3 = load_reference(mat.name, 3)
    assert ref3.space.n_params > 6 and set(ref3.bounds_source) == {"sets widened"}
    i6 = ref3.space.index(names)
    np.testing.assert_allclose(ref3.lower[i6], ref.lower, atol=1e-9)
    np.testing.assert_allclose(ref3.upper[i6], ref.upper, atol=1e-9)
    assert (ref3.upper - ref3.lower > 0).all()  # 3NN (zero in both sets) gets the floor's width
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["bounds"]["relative_widen"] == 0.2 and "max(|theta_ref_p|" in prov["bounds"]["rule"]
    info = json.loads((out / "material.json").read_text())
    # energy range from the reference's highest mode: 1.2 x, rounded up to 5 meV
    top = float(np.max(ref.pairs.frequencies(np.zeros((1, 3)))))
    assert info["energy_max_meV"] >= 1.2 * top and info["energy_max_meV"] % 5 == 0
    assert mat.grid().shape[1] == int(info["energy_max_meV"] / 0.5)
    # the folder is accepted by simulate (its reference, not Ge's)
    h5 = tmp_path / "si.h5"
    assert main(["simulate", "--material", str(out), "-o", str(h5), "--no-png"]) == 0
    from fcinv.experiment.folded import read_folded

    assert read_folded(h5).meta["material"] == "Si"


def test_never_writes_into_the_package(tmp_path, capsys):
    import fcinv

    s0, _ = spring_set(tmp_path / "a", silicon(), {"1NN": 7.0})
    pkg = tmp_path.parent / "unused"
    from pathlib import Path

    inside = Path(fcinv.__file__).parent / "data" / "Si-test"
    rc = main(_ref_argv([s0], inside))
    err = capsys.readouterr().err
    assert rc == 2 and "inside the installed fcinv package" in err and not inside.exists()
    assert not pkg.exists()


def test_mismatched_set_options(tmp_path, capsys):
    s0, _ = spring_set(tmp_path / "a", silicon(), {"1NN": 7.0})
    argv = ["reference", "--from-phonopy", str(s0.force_constants), "--from-phonopy", str(s0.force_constants)]
    argv += ["--structure", str(s0.structure), "--supercell", "3", "3", "3", "--supercell", "3", "3", "3"]
    argv += ["--supercell", "3", "3", "3", "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "3 --supercell" in err and "2 --from-phonopy" in err


def test_shells_beyond_the_supercell_are_refused(tmp_path, capsys):
    s0, _ = spring_set(tmp_path / "a", silicon(), {"1NN": 7.0})
    assert main(_ref_argv([s0], tmp_path / "x", "--shells", "8")) == 2
    assert "--shells 8" in capsys.readouterr().err


def test_dft_ge_set(tmp_path, ge_dft_dir, capsys):
    from fcinv.crystal import Crystal
    from fcinv.fcspace import FCSpace, read_phonopy
    from fcinv.material import load_material

    out = tmp_path / "GeDFT"
    argv = ["reference", "--from-phonopy", str(ge_dft_dir / "FORCE_CONSTANTS"), "--structure"]
    argv += [str(ge_dft_dir / "POSCAR"), "--supercell", "4", "4", "4", "--out", str(out), "--name", "GeDFT"]
    assert main(argv) == 0
    assert "energy range 0..45 meV" in capsys.readouterr().out  # highest DFT mode 37.4 meV
    mat = load_material(out)
    ref = mat.reference
    assert ref.n_shells == 5 and ref.space.n_params == 16
    ge = Crystal.from_file(ge_dft_dir / "POSCAR", name="ge")
    proj = FCSpace(ge, n_shells=5).project(
        read_phonopy(ge, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    )
    np.testing.assert_allclose(ref.theta_ref, proj.theta, atol=1e-9)
    assert np.all(ref.lower < ref.theta_ref) and np.all(ref.theta_ref < ref.upper)
    assert ref.sampled[0] == "1NN_xx" or ref.sampled[0] == "1NN_xy"
    assert mat.domain().contains(ref.theta_ref[ref.space.index(ref.sampled)][None])[0]


def test_a_crystal_without_inversion_centre(tmp_path):
    """Zincblende GaAs: a phonopy set of its own cell is matched (spglib's alignment can give the twin)."""
    from fcinv.crystal import Crystal
    from fcinv.fcspace import FCSpace, pairs_from_phonopy

    a = 5.653
    lat = a / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    c = Crystal.from_cell(lat, [[0, 0, 0], [0.25, 0.25, 0.25]], [31, 33], name="GaAs")
    assert c.spacegroup == ("F-43m", 216)
    space = FCSpace(c, n_shells=2)
    theta = space.central_force_theta({"1NN": 5.0, "2NN": 0.5})
    fc = space.to_phonopy(theta, (3, 3, 3))
    pairs = pairs_from_phonopy(c, fc, c.to_phonopy_atoms(), np.diag([3, 3, 3]))
    np.testing.assert_allclose(space.project(pairs).theta, theta, atol=1e-12)
    s, _ = spring_set(tmp_path / "set", c, {"1NN": 5.0, "2NN": 0.5})
    assert main(_ref_argv([s], tmp_path / "GaAs", "--shells", "2")) == 0


def test_a_set_given_on_the_inversion_twin_projects_to_the_same_parameters():
    """GaAs without an inversion centre: the user's set on the twin cell (every r → −r, the same tensors;
    the crystal rotated by 90° about [001]) is the same crystal, so it must give the same θ on the
    folder's cell, including the components inversion would flip (not only central forces)."""
    from phonopy.structure.atoms import PhonopyAtoms
    from phonopy.structure.cells import get_supercell

    from fcinv.crystal import Crystal
    from fcinv.fcspace import FCSpace, pairs_from_phonopy

    lat = 5.653 / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    c = Crystal.from_cell(lat, [[0, 0, 0], [0.25, 0.25, 0.25]], [31, 33], name="GaAs")
    space = FCSpace(c, n_shells=3)
    theta = np.random.default_rng(1).normal(0.0, 0.5, space.n_params)
    smat = np.diag([3, 3, 3])
    fc = space.to_phonopy(theta, (3, 3, 3))
    unit = c.to_phonopy_atoms()
    twin = PhonopyAtoms(
        cell=unit.cell,
        scaled_positions=(-unit.scaled_positions) % 1.0,
        numbers=unit.numbers,
        masses=unit.masses,
    )
    d = (-get_supercell(unit, smat).scaled_positions)[:, None, :] - get_supercell(twin, smat).scaled_positions
    d -= np.round(d)
    perm = np.argmin(np.linalg.norm(d, axis=2), axis=1)
    assert sorted(perm) == list(range(len(perm)))
    fc_twin = np.empty_like(fc)
    fc_twin[np.ix_(perm, perm)] = fc
    np.testing.assert_allclose(
        space.project(pairs_from_phonopy(c, fc_twin, twin, smat)).theta, theta, atol=1e-10
    )
