"""Stage III on the command line: fcinv simulate → fcinv infer with a tiny Ge model; grid checks; --rebin."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.cli.main import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ge_model(tmp_path_factory):
    """A tiny VAE + regressor on the real Ge grid and names (quality irrelevant: the plumbing is tested)."""
    from fcinv.dataset import generate, widened_domain
    from fcinv.reference import load_reference
    from fcinv.training import TrainConfig, train_regressor, train_vae

    root = tmp_path_factory.mktemp("ge_model")
    ref = load_reference("Ge")
    model = ref.forward_model()
    lo, hi = ref.bounds()
    dom = widened_domain(ref.sampled, lo, hi, model.theta0)
    generate(model, dom, 80, root / "ge.h5", seed=0, progress=False, command="test")
    cfg = dict(batch_size=16, lr=1e-2, progress=False)
    train_vae(
        root / "ge.h5",
        root / "vae",
        TrainConfig(epochs=1, **cfg),
        latent_dim=4,
        channels=(4, 4),
        hidden_dim=16,
    )
    train_regressor(
        root / "ge.h5", root / "regressor", root / "vae", TrainConfig(epochs=1, **cfg), hidden=(16,)
    )
    return root


def test_simulate_then_infer(tmp_path, ge_model, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--material", "Ge", "--theta", "1NN_xx=-2.0", "-o", "s.h5", "--no-png"]) == 0
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"1NN_xx": -2.0}))
    rc = main(
        [
            "infer",
            "s.h5",
            "--model",
            str(ge_model),
            "--json",
            "r.json",
            "--truth",
            str(truth),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "FC0   1NN_xx" in out and "% of the 140×80 grid measured" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["format"] == "fcinv-result" and r["names"][0] == "1NN_xx"
    assert np.isfinite(r["theta"]["1NN_xx"]) and r["sigma"]["1NN_xx"] > 0
    assert r["provenance"]["command"].startswith("fcinv infer s.h5") and r["adequacy"]["coverage"] == 1.0
    assert (tmp_path / "s_fcinv.png").stat().st_size > 10_000


def test_infer_refuses_another_grid(tmp_path, ge_model, capsys):
    s = tmp_path / "coarse.h5"
    assert main(["simulate", "--material", "Ge", "--e-step", "1.0", "-o", str(s), "--no-png"]) == 0
    rc = main(["infer", str(s), "--model", str(ge_model), "--no-png", "--device", "cpu"])
    assert rc == 1
    assert "is on another grid (shape (140, 40) vs expected (140, 80))" in capsys.readouterr().err
    assert main(["infer", str(s), "--model", str(ge_model), "--rebin", "--no-png", "--device", "cpu"]) == 0


def test_infer_missing_file(tmp_path, ge_model, capsys):
    assert main(["infer", str(tmp_path / "nope.h5"), "--model", str(ge_model), "--device", "cpu"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_untrusted_refinement_exits_1_unless_allowed(tmp_path, ge_model, capsys, monkeypatch):
    """A refinement cut off after one evaluation is not trusted: the ML answer comes back, exit 1;
    with --allow-unstable exit 0 and the same θ."""
    import fcinv.fitting

    real = fcinv.fitting.refine
    monkeypatch.setattr(fcinv.fitting, "refine", lambda m, fs, p: real(m, fs, p, max_nfev=1))
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "--material", "Ge", "--theta", "1NN_xx=-2.0", "-o", "s.h5", "--no-png"]) == 0
    base = ["infer", "s.h5", "--model", str(ge_model), "--refine", "--no-png", "--device", "cpu"]
    assert main(base + ["--json", "a.json"]) == 1
    err = capsys.readouterr().err
    assert "--allow-unstable" in err and "refinement rejected" in err
    assert main(base + ["--json", "b.json", "--allow-unstable"]) == 0
    assert "--allow-unstable: exit 0" in capsys.readouterr().out
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["adequacy"]["success"] is False and a["theta"] == b["theta"]
    assert a["theta"] == a["parts"]["ml"]["theta"]
