"""A tiny `fcinv prepare` on a two-atom crystal (spring-model phonopy set), its resumption, and the
folder used as `--material DIR` / `--model DIR`."""

from __future__ import annotations

import json

import numpy as np
from tests.prepare._crystals import silicon, spring_set

from fcinv.cli.main import main

TINY = ["--shells", "2", "--vae-epochs", "1", "--reg-epochs", "2", "--channels", "4,8", "--latent-dim", "4"]
TINY += ["--hidden-dim", "16", "--e-step", "2", "--no-progress", "--quick", "--intensity", "paper"]


def _prepare(s, out, n):
    argv = ["prepare", str(s.structure), "--out", str(out), "--from-phonopy", str(s.force_constants)]
    return main([*argv, "--supercell", "3", "3", "3", "-n", str(n), *TINY])


def test_tiny_prepare_resumes_and_is_a_material(tmp_path, capsys, one_torch_thread):
    from fcinv.experiment.folded import read_folded
    from fcinv.fcspace import FCSpace
    from fcinv.prepare.stage1 import write_phonopy_set

    c = silicon()
    s, theta = spring_set(tmp_path / "set", c, {"1NN": 7.0, "2NN": 0.7})
    out = tmp_path / "Si"
    assert _prepare(s, out, 48) == 0
    text = capsys.readouterr().out
    for step in ("[1/4] Stage I", "[2/4] domain", "[3/4] dataset", "[4/4] training"):
        assert step in text
    assert "skipped" not in text
    for f in ("material.json", "structure.vasp", "ensemble.json", "reference_fc.hdf5", "domain.json"):
        assert (out / f).is_file(), f
    assert (out / "models" / "vae" / "config.json").is_file()
    assert (out / "models" / "regressor" / "config.json").is_file()
    state = json.loads((out / "prepare.json").read_text())
    assert set(state["steps"]) == {"stage1", "domain", "dataset", "training"}

    # a rerun with the same inputs skips every step
    assert _prepare(s, out, 48) == 0
    assert capsys.readouterr().out.count("done earlier with the same inputs: skipped") == 4
    # more spectra: Stage I and the domain are kept, the dataset and the training are redone
    assert _prepare(s, out, 56) == 0
    text = capsys.readouterr().out
    assert text.count("skipped") == 2 and "56 spectra in" in text

    # the folder is a material and a model: simulate a perturbed truth, infer it with --model DIR
    truth = theta * (1 + 0.05 * np.array([1, -1, 1, -1, 0, 0]))
    space = FCSpace(c, n_shells=2)
    t = write_phonopy_set(tmp_path / "truth", c, truth, (3, 3, 3), n_shells=2)
    assert np.allclose(space.project(space.to_pairs(truth)).theta, truth)
    h5 = tmp_path / "truth.h5"
    argv = ["simulate", "--material", str(out), "--force-constants", str(t.force_constants)]
    argv += ["--structure", str(t.structure), "--supercell", "3", "3", "3", "-o", str(h5), "--no-png"]
    assert main(argv) == 0
    assert read_folded(h5).intensity.shape == (140, 38)
    res = tmp_path / "fcs.json"
    assert main(["infer", str(h5), "--model", str(out), "--no-png", "--json", str(res)]) == 0
    got = json.loads(res.read_text())
    assert got["material"] == "Si" and len(got["names"]) == 6


def test_prepare_path_is_the_models_grid(tmp_path, capsys, one_torch_thread):
    """--path labels reach material.json, the dataset and the trained model's grid."""
    from fcinv.inference import load_model
    from fcinv.material import load_material

    s, _ = spring_set(tmp_path / "set", silicon(), {"1NN": 7.0, "2NN": 0.7})
    out = tmp_path / "Si"
    argv = ["prepare", str(s.structure), "--out", str(out), "--from-phonopy", str(s.force_constants)]
    assert main([*argv, "--supercell", "3", "3", "3", "-n", "24", "--path", "Γ-X-W-L", *TINY]) == 0
    assert load_material(out).path == "Γ-X-W-L"
    assert load_model(out / "models").grid.labels == ("Γ", "X", "W", "L")
