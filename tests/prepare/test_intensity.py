"""prepare's intensity model: physical (at the material's Ei) wherever the PhysicalModel accepts the
crystal, else paper; the PhysicalModel's own refusal decides, not the crystal's name."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.prepare._crystals import silicon, spring_set

from fcinv.cli.main import main


def _reference(tmp_path, crystal, name):
    s, _ = spring_set(tmp_path / f"set_{name}", crystal, {"1NN": 5.0, "2NN": 0.5})
    argv = ["reference", "--from-phonopy", str(s.force_constants), "--structure", str(s.structure)]
    out = tmp_path / name
    assert (
        main([*argv, "--supercell", "3", "3", "3", "--shells", "2", "--out", str(out), "--no-progress"]) == 0
    )
    from fcinv.material import load_material

    return load_material(out)


def test_ei_rule_and_material_ei(tmp_path, capsys):
    from fcinv.dataset.physical import EI_MEV, ei_for, ei_rule
    from fcinv.errors import DataError

    assert ei_rule(20.0) == EI_MEV == 40.0  # a soft crystal keeps the Ge convention
    assert ei_rule(65.0) == pytest.approx(104.0)  # Si: 1.6 x its energy range
    assert ei_for("Ge") == 40.0  # no ei_meV in Ge's material.json: the shipped model's 40 meV
    mat = _reference(tmp_path, silicon(), "Si")
    info = json.loads((mat.folder / "material.json").read_text())
    assert info["ei_meV"] == ei_rule(info["energy_max_meV"]) == ei_for(mat.name)
    info["ei_meV"] = -3
    (mat.folder / "material.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="ei_meV"):
        ei_for(str(mat.folder))


def test_physical_model_at_the_material_ei(tmp_path, capsys):
    from fcinv.dataset.physical import ei_for, physical_model

    mat = _reference(tmp_path, silicon(), "Si")
    pm = physical_model(mat.reference, list(mat.reference.sampled), coverage="single0")
    assert pm.resolution.ei == pytest.approx(ei_for(mat.name)) and pm.resolution.ei > 40.0


def test_auto_intensity_follows_the_physical_models_refusal(tmp_path, capsys):
    from fcinv.crystal import Crystal
    from fcinv.dataset.physical import physical_model
    from fcinv.forward.physical import PhysicalModelError
    from fcinv.prepare.pipeline import resolve_intensity
    from fcinv.prepare.stage1 import PrepareError

    si = _reference(tmp_path, silicon(), "Si").reference
    assert resolve_intensity(si, "auto", say=lambda m: None) == "physical"
    assert resolve_intensity(si, "paper", say=lambda m: None) == "paper"

    a = 5.653
    lat = a / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    gaas = Crystal.from_cell(lat, [[0, 0, 0], [0.25, 0.25, 0.25]], [31, 33], name="GaAs")
    ref = _reference(tmp_path, gaas, "GaAs").reference
    try:
        physical_model(ref, list(ref.sampled), coverage="single0")
        accepted = True
    except PhysicalModelError:
        accepted = False
    said = []
    got = resolve_intensity(ref, "auto", say=said.append)
    assert got == ("physical" if accepted else "paper")
    if not accepted:
        assert "paper (the physical model refuses" in said[0]
        with pytest.raises(PrepareError, match="--intensity paper"):
            resolve_intensity(ref, "physical", say=said.append)
