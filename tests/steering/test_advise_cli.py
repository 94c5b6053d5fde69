"""``fcinv advise`` through the CLI entry point."""

from __future__ import annotations

import json

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
