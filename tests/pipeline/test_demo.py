"""The demo (simulated experiment → fold → ML → single scans) at a tiny size."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("euphonic", reason="the simulated experiment needs Euphonic (the [experiment] extra)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_demo(tmp_path):
    from fcinv.pipeline import run_demo
    from fcinv.result import FCResult

    r = run_demo(tmp_path, orientations=3, single_scans=2, refine=False, progress=False)
    assert r.names[0] == "1NN_xx" and r.refined is None and np.all(np.isfinite(r.ml))
    assert r.truth_label == "sampled:chgnet-0.2.0" and r.rel_err("ml").shape == (8,)
    assert len(r.per_orientation["psi_deg"]) == 2 and r.disp_rms_meV > 0
    for k in ("run", "folded", "figure", "single_scans", "result", "summary"):
        assert (tmp_path / r.files[k].split("/")[-1]).stat().st_size > 0
    back = FCResult.from_json(tmp_path / "result.json")
    np.testing.assert_array_equal(back.theta, r.result.theta)
    assert json.loads((tmp_path / "demo.json").read_text())["truth_label"] == r.truth_label
