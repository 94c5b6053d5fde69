"""A non-cubic crystal end to end: hcp Mg (6/mmm) - point group for folding, path, shells, a run."""

from __future__ import annotations

import numpy as np
import pytest
from tests.prepare._crystals import MG_SPRINGS, magnesium, spring_set

from fcinv.cli.main import main


@pytest.fixture(scope="module")
def mg():
    return magnesium()


def _cartesian(crystal, rots_rlu):
    B = np.linalg.inv(crystal.conventional_lattice)  # q_cart = 2π B q_rlu (columns b_i / 2π)
    return np.einsum("ij,njk,kl->nil", B, rots_rlu, np.linalg.inv(B))


def test_point_group_is_6_over_mmm(mg):
    assert mg.spacegroup == ("P6_3/mmc", 194) and mg.lattice_type == "hexagonal"
    pg = mg.point_group_rlu
    assert pg.shape == (24, 3, 3)
    assert any(np.allclose(r, -np.eye(3)) for r in pg)  # inversion
    cart = _cartesian(mg, pg)
    # every operation is orthogonal in Cartesian space: it keeps |Q| (a cubic matrix on r.l.u. would not)
    assert np.allclose(np.einsum("nij,nkj->nik", cart, cart), np.eye(3), atol=1e-10)
    c60, s60 = np.cos(np.pi / 3), np.sin(np.pi / 3)
    six = np.array([[c60, -s60, 0], [s60, c60, 0], [0, 0, 1]])
    assert any(np.allclose(r, six, atol=1e-10) for r in cart)  # the 6-fold axis along c
    dets = np.linalg.det(cart)
    assert np.sum(dets > 0) == 12 and np.sum(dets < 0) == 12
    # the group is closed
    keys = {tuple(np.round(r, 6).ravel()) for r in pg}
    assert all(tuple(np.round(a @ b, 6).ravel()) in keys for a in pg for b in pg)


def test_fold_uses_the_materials_point_group(mg, monkeypatch):
    from fcinv.experiment.volume import Volume4D
    from fcinv.material import Material
    from fcinv.pipeline import core

    mat = Material(mg, {"energy_max_meV": 40.0})
    grid = mat.grid()
    seen = {}

    def spy(volume, grid_, rotations, **kw):
        seen["rotations"], seen["centering"] = np.asarray(rotations), kw["centering"]
        return "folded"

    monkeypatch.setattr(core, "fold_volume", spy)
    edges = tuple(np.linspace(-1, 1, 3) for _ in range(3)) + (np.linspace(0, 40, 3),)
    vol = Volume4D(edges, np.array([0]), np.array([1.0]), np.array([0.1]))
    assert core.fold_measurement(vol, mat, grid) == "folded"
    assert seen["centering"] == "P" and np.array_equal(seen["rotations"], mg.point_group_rlu)


def test_default_path_and_labels(mg):
    from fcinv.crystal import build_path

    q, labels, ticks, seg = build_path(mg)
    assert labels == ["Γ", "M", "K", "Γ", "A", "L", "H", "A"]
    assert seg == [20, 13, 13, 20, 20, 13, 13]
    # M = (1/2, 0, 0) and K = (1/3, 1/3, 0) in spglib's γ = 120° setting: |ΓK| = 2/√3 |ΓM|
    qm, qk = mg.rlu_to_cart([0.5, 0, 0]), mg.rlu_to_cart([1 / 3, 1 / 3, 0])
    assert np.isclose(np.linalg.norm(qk) / np.linalg.norm(qm), 2 / np.sqrt(3))


def test_hexagonal_shells_are_symmetric(mg, rng):
    from fcinv.fcspace import FCSpace

    space = FCSpace(mg, n_shells=4)
    # out-of-plane 1NN (3.197 Å) before in-plane 2NN (a = 3.209 Å)
    assert [round(s.distance, 3) for s in space.shells] == [3.197, 3.209, 4.530, 5.211]
    assert space.n_params == 14
    theta = rng.normal(0, 0.5, space.n_params)
    pairs = space.to_pairs(theta)
    assert pairs.asr_violation() < 1e-10
    q = rng.uniform(-0.5, 0.5, (3, 3))
    ref = pairs.frequencies(q)
    for r in mg.point_group_rlu:  # a random θ of the symmetric basis keeps the crystal's symmetry
        np.testing.assert_allclose(pairs.frequencies(q @ r.T), ref, atol=1e-8)
    assert np.allclose(np.sort(np.abs(pairs.frequencies(np.zeros((1, 3)))[0]))[:3], 0, atol=1e-5)  # acoustic


def test_hexagonal_forward_model_agrees_with_phonopy(mg):
    from _physics import check_frequencies, phonopy_energies
    from fcinv.crystal import build_path
    from fcinv.fcspace import FCSpace
    from fcinv.forward import ForwardModel
    from fcinv.grid import SpectrumGrid

    space = FCSpace(mg, n_shells=4)
    theta = space.central_force_theta(MG_SPRINGS)
    q = build_path(mg)[0]
    grid = SpectrumGrid(q_rlu=q, energy_edges=np.linspace(0, 50, 101))
    f = ForwardModel(space, grid, theta).frequencies(theta)[0]
    fc = space.to_phonopy(theta, (4, 4, 3))
    check_frequencies(f, phonopy_energies(mg, fc, (4, 4, 3), q))


def test_mg_material_folder_and_simulated_run(tmp_path, mg, capsys):
    from fcinv.experiment.folded import read_folded
    from fcinv.material import load_material

    s, theta = spring_set(tmp_path / "set", mg, MG_SPRINGS, supercell=(4, 4, 3), n_shells=4)
    out = tmp_path / "Mg"
    argv = ["reference", "--from-phonopy", str(s.force_constants), "--structure", str(s.structure)]
    assert (
        main([*argv, "--supercell", "4", "4", "3", "--shells", "4", "--out", str(out), "--no-progress"]) == 0
    )
    mat = load_material(out)
    assert mat.name == "Mg" and mat.path == "Γ-M-K-Γ-A-L-H-A" and mat.reference.n_shells == 4
    np.testing.assert_allclose(mat.reference.theta_ref, theta, atol=1e-9)
    h5 = tmp_path / "mg.h5"
    assert main(["simulate", "--material", str(out), "-o", str(h5), "--no-png"]) == 0
    fs = read_folded(h5)
    assert fs.grid.labels == ("Γ", "M", "K", "Γ", "A", "L", "H", "A")
    assert fs.intensity.shape[0] == 112 and np.nanmax(fs.intensity) > 0


def test_stage1_phonon_summary_of_a_hexagonal_crystal(mg):
    """The force-field route's phonon summary (points, stability) works beyond fcc/bcc."""
    from fcinv.fcspace import FCSpace
    from fcinv.mlff.phonons import PhononSettings, phonopy_from_fc, summarize

    space = FCSpace(mg, n_shells=4)
    fc = space.to_phonopy(space.central_force_theta(MG_SPRINGS), (4, 4, 3))
    settings = PhononSettings.create((4, 4, 3), 0.01)
    summary = summarize(phonopy_from_fc(mg, fc, (4, 4, 3)), mg, settings)
    assert list(summary.points) == ["Γ", "M", "K", "A"] and summary.stable
    gamma = summary.points["Γ"]
    assert gamma["modes"][:3] == ["A", "A", "A"] and max(gamma["freqs_THz"]) > 1  # optical modes at Γ
