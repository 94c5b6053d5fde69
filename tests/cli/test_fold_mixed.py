"""`fcinv fold` refuses to merge runs of different Ei unless --allow-mixed (issue 11, item 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcinv.cli.main import main

NXSPE = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nxspe").resolve()
FILES = ["MAR11001_test.nxspe", "gen_sqw_96dets.nxspe", "nxspe_version1_0.nxspe"]


@pytest.mark.skipif(not NXSPE.is_dir(), reason="../shared/data/nxspe (real NXSPE files) is absent")
def test_fold_refuses_mixed_ei(tmp_path, capsys):
    out = tmp_path / "folded.h5"
    rc = main(["fold", *[str(NXSPE / f) for f in FILES], "--material", "Ge", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "differ in Ei 12.9728, 35.5, 800 meV" in err and "--allow-mixed" in err
    assert "Traceback" not in err
    assert not out.exists()
