"""``fcinv advise`` through the CLI entry point."""

from __future__ import annotations

import json

import pytest

from fcinv.cli.main import main


def test_advise_ranks_and_writes(tmp_path, capsys):
    out, png = tmp_path / "adv.json", tmp_path / "adv.png"
    rc = main(
        [
            "advise",
            "--material",
            "Ge",
            "--candidates",
            "0:40:20",
            "--measured",
            "0,0",
            "--sigma-target",
            "1e-6",
            "--hours",
            "0.5",
            "--json",
            str(out),
            "--png",
            str(png),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "rank" in text and ("CONTINUE" in text or "STOP" in text)
    doc = json.loads(out.read_text())
    assert [r["rank"] for r in doc["next"]] == [1, 2, 3]
    assert doc["next"][0]["psi_deg"] != 0.0  # twice-measured 0° is not the best next orientation
    assert doc["stop"]["stop"] is False and doc["forecast"]["adaptive_minutes_to_target"] == float("inf")
    assert png.is_file() and png.stat().st_size > 0


def test_advise_refuses_bad_angles(capsys):
    rc = main(["advise", "--material", "Ge", "--candidates", "9:1:1"])
    assert rc == 1
    assert "start:stop:step" in capsys.readouterr().err


def test_advise_refuses_unknown_parameter(capsys):
    rc = main(["advise", "--material", "Ge", "--candidates", "0", "--names", "1NN_xx,7NN_qq", "--no-png"])
    assert rc == 1
    assert "7NN_qq" in capsys.readouterr().err


def test_advise_steers_in_the_refinements_final_space(tmp_path):
    """Default: the last space the Ge refinement continues into (11 shells, 47 parameters), targets FC0–FC3
    by name; --shells 0 keeps the ML model's own 16; an answer picks the smallest space that holds it."""
    from fcinv.cli.advise import steering_shells
    from fcinv.reference import load_reference
    from fcinv.steering.design import SteeringError

    out = tmp_path / "adv.json"
    assert main(["advise", "--candidates", "0,30", "--hours", "0.1", "--json", str(out), "--no-png"]) == 0
    doc = json.loads(out.read_text())
    assert doc["space"] == {"n_shells": 11, "n_params": 47}
    assert doc["names"] == ["1NN_xx", "1NN_xy", "2NN_zz", "2NN_xx"]
    assert steering_shells("Ge", 0, {}) is None and steering_shells("Ge", None, {}) == 11
    nine = [n for n in load_reference("Ge", 9).sampled if n not in load_reference("Ge").sampled]
    assert steering_shells("Ge", None, {nine[0]: 0.01, "1NN_xx": 1.4}) == 9
    with pytest.raises(SteeringError, match="no space"):
        steering_shells("Ge", None, {"99NN_xx": 0.0})
