"""benchmarks/new_materials.py's refinement options: --refine-starts and a supercell in --refine-shells."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "new_materials.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("new_materials_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_refine_starts(bench):
    assert bench.parse_refine_starts(["moments"]) == ("ml", "moments")
    assert bench.parse_refine_starts(["moments", "screen"]) == ("ml", "moments", "screen")
    assert bench.parse_refine_starts(["screen"]) == ("ml", "screen")
    assert bench.parse_refine_starts(["ml"]) == ("ml",)
    with pytest.raises(ValueError, match="'global' is not a start"):
        bench.parse_refine_starts(["global"])


def test_refine_shells_take_a_supercell_last(bench):
    assert bench.parse_refine_shells(["auto"]) == ["auto"]
    assert bench.parse_refine_shells(["7", "4x4x4"]) == ["7", "4x4x4"]
    assert bench.continuation_for(None, ["7", "4x4x4"]) == ((7, "4x4x4"), "--refine-shells 7 4x4x4")
    assert bench.continuation_for(None, ["model"])[0] == ()
    for bad in (["4x4x4", "7"], ["auto", "7"], ["0"], ["4x4"]):
        with pytest.raises(ValueError, match="is not known"):
            bench.parse_refine_shells(bad)


def test_config_accepts_what_the_options_give(bench):
    from fcinv.pipeline.core import PipelineConfig

    cfg = PipelineConfig(
        refine_starts=bench.parse_refine_starts(["moments", "screen"]),
        refine_shells=bench.continuation_for(None, ["7", "4x4x4"])[0],
    )
    assert cfg.refine_starts == ("ml", "moments", "screen") and cfg.refine_shells == (7, "4x4x4")


def test_bad_option_is_one_line(bench, capsys):
    with pytest.raises(SystemExit, match="^2$"):
        bench.main(["--refine-starts", "nope"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("Pass any of ml, moments, screen, e.g. moments screen.")
