"""The material object: one place for structure, centering, point group, path, grid, broadening, reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.errors import MaterialError, StructureError
from fcinv.material import Material, load_material


@pytest.mark.parametrize(
    "name, centering, path, n_pg", [("Ge", "F", "Γ-X-U|K-Γ-L-W-X", 48), ("Nb", "I", "Γ-H-N-Γ-P-H|P-N", 48)]
)
def test_embedded_materials(name, centering, path, n_pg):
    m = load_material(name.lower())
    assert (
        m.name == name and m.centering == centering and m.path == path and m.point_group.shape == (n_pg, 3, 3)
    )
    assert m.grid().material == name and m.embedded and m.reference_available
    info = json.loads((m.folder / "material.json").read_text())
    assert m.broadening.fwhm0 == info["fwhm_meV"] and m.broadening.fwhm1 == info.get("fwhm_slope", 0.0)
    assert m.shells == info["cutoff_shells"] and m.space is m.reference.space
    fm = m.forward_model()
    assert list(fm.names) == m.sampled and fm.broadening == m.broadening
    dom = m.domain()
    assert dom.contains(fm.theta0)[0]
    np.testing.assert_allclose(m.lattice[3:], [90, 90, 90])


def test_a_material_folder_and_a_bare_structure(tmp_path):
    from fcinv.crystal import material_dir

    src = material_dir("Ge") / "structure.vasp"
    (tmp_path / "POSCAR").write_text(src.read_text())
    (tmp_path / "material.json").write_text(
        json.dumps(
            {
                "name": "MyGe",
                "structure": "POSCAR",
                "energy_max_meV": 30.0,
                "fwhm_meV": 2.0,
                "cutoff_shells": 3,
            }
        )
    )
    m = load_material(tmp_path)
    assert (
        m.name == "MyGe"
        and not m.embedded
        and m.grid().energy_edges[-1] == 30.0
        and m.broadening.fwhm0 == 2.0
    )
    assert m.space.n_params > 0 and len(m.space.shells) == 3
    with pytest.raises(MaterialError, match="has no Stage I reference"):
        _ = m.reference
    bare = load_material(tmp_path / "POSCAR")
    assert isinstance(bare, Material) and bare.info == {}
    with pytest.raises(StructureError, match="no energy range is known"):
        bare.grid()
    assert bare.grid(e_max=40.0).n_e == 80
    (tmp_path / "bad").mkdir()
    with pytest.raises(MaterialError, match="has no material.json"):
        load_material(tmp_path / "bad")


def test_a_folder_named_like_an_embedded_material_does_not_shadow_it(tmp_path):
    from fcinv import crystal
    from fcinv.crystal import material_dir, material_info

    before = dict(crystal._USER_FOLDERS)
    try:
        folder = tmp_path / "mine"
        folder.mkdir()
        (folder / "POSCAR").write_text((material_dir("Ge") / "structure.vasp").read_text())
        info = {"name": "Ge", "structure": "POSCAR", "energy_max_meV": 25.0}
        (folder / "material.json").write_text(json.dumps(info))
        m = load_material(folder)
        assert m.name == "Ge@mine" and not m.embedded and m.grid().energy_edges[-1] == 25.0
        # the embedded Ge is untouched; the folder is found by its registered name and by its path
        assert load_material("Ge").embedded and material_info("Ge")["energy_max_meV"] == 40.0
        assert material_dir("Ge@mine") == folder.resolve() and material_info(folder)["name"] == "Ge@mine"
        assert not load_material("Ge@mine").embedded
    finally:
        crystal._USER_FOLDERS.clear()
        crystal._USER_FOLDERS.update(before)


@pytest.mark.parametrize("name", ["Ge", "Nb"])
def test_material_and_reference_forward_models_agree_on_the_tail(name):
    """An all-parameter θ has the zero tail beyond the cutoff from the Material as from the reference
    (so fcinv.simulate does too); a subset of free parameters keeps the reference member's D_ref."""
    import fcinv
    from fcinv.reference import TAIL_REFERENCE, TAIL_ZERO

    m = load_material(name)
    ref = m.reference
    assert ref.tail == TAIL_ZERO
    grid = m.grid(e_step=2.0)
    fm = m.forward_model(grid=grid)
    assert fm.reference is None and sorted(fm.names) == sorted(ref.space.names)
    expected = ref.forward_model(grid=grid, broadening=m.broadening)
    t0 = expected.theta0[None]  # the reference θ in the model's (ranked) order
    np.testing.assert_array_equal(fm.theta0, expected.theta0)
    np.testing.assert_array_equal(fm.spectra(t0), expected.spectra(t0))
    sub = m.forward_model(free=ref.paper_sampled, grid=grid)
    assert sub.reference is ref.pairs
    assert ref.tail_for(ref.paper_sampled) == TAIL_REFERENCE
    # fcinv.simulate: the zero-tail spectrum, which differs from the one with the reference member's tail
    sim = fcinv.simulate(name, grid=grid).intensity
    zero = expected.spectra(t0)[0]
    with_dref = ref.forward_model(grid=grid, broadening=m.broadening, tail=TAIL_REFERENCE)
    np.testing.assert_allclose(sim, zero, rtol=1e-6, atol=1e-12)
    assert not np.allclose(sim, with_dref.spectra(t0)[0], rtol=1e-3)
