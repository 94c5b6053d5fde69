"""Crystals, embedded materials and the pathSQE q-path."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.crystal import Crystal, available_materials, build_path, default_grid, load_crystal
from fcinv.errors import MaterialError, StructureError


def test_embedded_materials():
    assert {"Ge", "Nb"} <= set(available_materials())


@pytest.mark.parametrize(
    "material, sg, n_atoms, lattice_type",
    [("Ge", 227, 2, "fcc"), ("Nb", 229, 1, "bcc")],
)
def test_primitive_cell(material, sg, n_atoms, lattice_type):
    c = Crystal.from_name(material)
    assert c.spacegroup[1] == sg
    assert c.n_atoms == n_atoms
    assert c.lattice_type == lattice_type
    assert len(c.point_group_rlu) == 48
    # primitive volume = conventional volume / lattice points
    points = {"fcc": 4, "bcc": 2}[lattice_type]
    assert abs(np.linalg.det(c.lattice)) == pytest.approx(abs(np.linalg.det(c.conventional_lattice)) / points)


def test_ge_default_path_matches_pathsqe(ge_crystal):
    g = default_grid(ge_crystal)
    assert g.shape == (140, 80)
    assert g.segment_bins == (40, 10, 30, 20, 20, 20)
    assert g.labels == ("Γ", "X", "U|K", "Γ", "L", "W", "X")
    assert g.ticks == (0, 40, 50, 80, 100, 120, 140)
    # bin centres at half steps of 0.025 r.l.u. along Γ-X
    np.testing.assert_allclose(g.q_rlu[:3], [[0, 0.0125, 0], [0, 0.0375, 0], [0, 0.0625, 0]])
    np.testing.assert_allclose(g.q_rlu[40], [0.0125, 1, 0.0125])  # first bin of X-U
    np.testing.assert_allclose(g.energy_edges[[0, -1]], [0, 40])


def test_nb_default_path(nb_crystal):
    g = default_grid(nb_crystal)
    assert g.labels == ("Γ", "H", "N", "Γ", "P", "H|P", "N")
    assert g.segment_bins == (40, 20, 20, 20, 20, 20)


def test_path_from_labels_uses_seekpath_points(ge_crystal):
    q, labels, ticks, seg = build_path(ge_crystal, "G-X-W-L")
    assert labels == ["Γ", "X", "W", "L"]
    assert seg == [40, 20, 20]
    np.testing.assert_allclose(q[39], [0, 0.9875, 0])


def test_reciprocal_lattice_rules(ge_crystal, nb_crystal):
    G = ge_crystal.reciprocal_lattice_rlu(2)
    assert np.all([(len({int(v) % 2 for v in g}) == 1) for g in G])  # fcc: all even or all odd
    G = nb_crystal.reciprocal_lattice_rlu(2)
    assert np.all(G.sum(axis=1) % 2 == 0)  # bcc: h+k+l even


def test_structure_file_roundtrip(tmp_path):
    from ase.build import bulk
    from ase.io import write

    write(tmp_path / "si.cif", bulk("Si", "diamond", a=5.43))
    c = load_crystal(tmp_path / "si.cif")
    assert c.spacegroup[1] == 227 and c.n_atoms == 2
    assert c.conventional_a == pytest.approx(5.43)


def test_malformed_cif(tmp_path):
    p = tmp_path / "bad.cif"
    p.write_text("data_bad\n_cell_length_a five\nloop_\n_atom_site_label\n")
    with pytest.raises(StructureError, match="could not read structure file"):
        Crystal.from_file(p)


def test_missing_structure_file(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        Crystal.from_file(tmp_path / "nope.cif")


def test_unknown_material():
    with pytest.raises(MaterialError, match="unknown material 'Unobtainium'.*Ge"):
        load_crystal("Unobtainium")
    with pytest.raises(MaterialError, match="unknown material"):
        Crystal.from_name("Si")


def test_unknown_path_label(ge_crystal):
    with pytest.raises(StructureError, match="unknown point label"):
        build_path(ge_crystal, "Γ-Q")
