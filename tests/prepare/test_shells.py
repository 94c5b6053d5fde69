"""``refine_shells`` of a prepared material from its members' n-shell projections (fcinv.prepare.shells)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from tests.prepare._crystals import silicon, spring_set

from fcinv.cli.main import main
from fcinv.prepare.shells import (
    REFINE_SHELLS_RULE,
    SHELL_TOLERANCE_THZ,
    choose_refine_shells,
    max_shells_held,
    measure_shells,
    write_refine_shells,
)


def test_rule_smallest_within_tolerance_else_lowest_else_none():
    # the smallest n within the tolerance, not the lowest rms
    assert choose_refine_shells([5, 6, 7, 8], [0.2, 0.015, 0.01, 0.03], 5) == [6]
    # none within: the n of the lowest worst-member rms (Si's truths: 6 shells, 7 is worse)
    assert choose_refine_shells([5, 6, 7], [0.200, 0.088, 0.161], 5) == [6]
    # the model's own shells are best (or already within): no continuation
    assert choose_refine_shells([5, 6], [0.062, 0.098], 5) == []
    assert choose_refine_shells([5, 6], [0.010, 0.001], 5) == []
    # counts below the model's are never chosen
    assert choose_refine_shells([3, 4, 5, 6], [0.0, 0.0, 0.3, 0.2], 5) == [6]
    assert choose_refine_shells([5], [0.3], 5) == [] and choose_refine_shells([], [], 5) == []
    assert SHELL_TOLERANCE_THZ == 0.02 and "0.02 THz" in REFINE_SHELLS_RULE


def test_supercell_limit():
    c = silicon()
    # 3x3x3 primitive cells: shortest translation 11.52 Å, so pairs up to 5.76 Å (4 shells, 4NN 5.43 Å)
    assert max_shells_held(c, np.diag([3, 3, 3]), c.lattice) == 4
    assert max_shells_held(c, np.diag([4, 4, 4]), c.lattice) == 7


@pytest.fixture
def prepared_si(tmp_path, capsys):
    """A material folder of 2 shells whose two sets hold a real 3NN spring (3 shells, 3x3x3)."""
    c = silicon()
    s0, _ = spring_set(tmp_path / "a", c, {"1NN": 7.0, "2NN": 0.7, "3NN": 0.6}, n_shells=3)
    s1, _ = spring_set(tmp_path / "b", c, {"1NN": 6.0, "2NN": 0.9, "3NN": 0.5}, n_shells=3)
    out = tmp_path / "Si"
    argv = ["reference"]
    for s in (s0, s1):
        argv += ["--from-phonopy", str(s.force_constants), "--structure", str(s.structure)]
        argv += ["--supercell", "3", "3", "3"]
    assert main([*argv, "--out", str(out), "--no-progress", "--shells", "2"]) == 0
    capsys.readouterr()
    return out


def test_measurement_finds_the_sets_cutoff_and_is_written(prepared_si, capsys):
    from fcinv.material import load_material

    mat = load_material(prepared_si)
    m = measure_shells(mat)
    assert m["shells"] == [2, 3, 4] and m["max_shells_held"] == 4
    assert sorted(m["rms_THz"]) == ["set0", "set1"]
    # 2 shells cut the 3NN spring off; 3 and 4 shells hold the sets exactly
    assert m["worst_THz"][0] > 0.1
    assert m["worst_THz"][1] < 1e-3 and m["worst_THz"][2] < 1e-3
    assert write_refine_shells(prepared_si, say=print) == [3]
    assert "refine_shells [3]" in capsys.readouterr().out
    info = json.loads((prepared_si / "material.json").read_text())
    assert info["refine_shells"] == [3] and info["refine_shells_rule"] == REFINE_SHELLS_RULE
    assert info["shell_projection"]["worst_THz"] == m["worst_THz"]
    # measured once: a second call reads it back; a hand-written refine_shells is kept
    assert write_refine_shells(prepared_si, say=print) == [3]
    assert "measured earlier" in capsys.readouterr().out
    del info["refine_shells_rule"]
    info["refine_shells"] = [4]
    (prepared_si / "material.json").write_text(json.dumps(info))
    assert write_refine_shells(prepared_si, say=print) == [4]
    assert "set by hand" in capsys.readouterr().out


def test_continuation_shells_of_a_prepared_folder(prepared_si):
    from fcinv.forward.physical import PhysicalModel
    from fcinv.material import load_material
    from fcinv.pipeline.core import Pipeline, PipelineConfig
    from fcinv.reference import load_reference

    write_refine_shells(prepared_si, say=lambda _m: None)
    mat = load_material(prepared_si)
    assert not mat.embedded and mat.reference_available
    pm = PhysicalModel.__new__(PhysicalModel)  # continuation_shells only asks the model's kind

    def shells_of(config, model):
        return Pipeline.continuation_shells(SimpleNamespace(material=mat, config=config), model)

    def shells(config):
        return shells_of(config, pm)

    assert shells(PipelineConfig()) == (3,)  # the folder's own refine_shells
    assert shells(PipelineConfig(refine_shells=())) == ()  # the model's own space
    assert shells(PipelineConfig(refine_shells=(4,))) == (4,)
    # the continuation's stage space comes from the folder's own reference (bounds from both sets)
    ref3 = load_reference(mat.name, 3)
    assert ref3.n_shells == 3 and (ref3.upper >= ref3.lower).all()
    # a non-physical model does not continue
    assert shells_of(PipelineConfig(), object()) == ()
