"""The demo (simulated experiment → fold → ML → single scans) at a tiny size; how it picks its truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("euphonic", reason="the simulated experiment needs Euphonic (the [experiment] extra)")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_tiny_demo(tmp_path, monkeypatch):
    from fcinv.pipeline import run_demo
    from fcinv.pipeline.demo import SHARED_DATA_ENV
    from fcinv.reference import load_reference
    from fcinv.result import FCResult

    # no shared data folder: the fallback truth (another force field's parameters on the reference set)
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "no-such-folder"))
    r = run_demo(tmp_path, orientations=3, single_scans=2, refine=False, progress=False)
    ref = load_reference("Ge")
    assert sorted(r.names) == sorted(ref.space.names) and r.refined is None and np.all(np.isfinite(r.ml))
    assert r.truth_label == "sampled:chgnet-0.2.0" and r.rel_err("ml").shape == (16,)
    # the truth is not the training reference
    assert np.max(np.abs(r.truth - ref.theta_ref)) > 1e-3
    # a 3-orientation ML answer is not the truth's dispersion, and not absurdly far from it (meV)
    assert len(r.per_orientation["psi_deg"]) == 2 and 0.05 < r.disp_rms_meV < 10.0
    assert r.ml_disp_rms_meV == r.disp_rms_meV  # no refinement: the final answer is the ML one
    for k in ("run", "folded", "figure", "single_scans", "result", "summary"):
        assert (tmp_path / r.files[k].split("/")[-1]).stat().st_size > 0
    back = FCResult.from_json(tmp_path / "result.json")
    np.testing.assert_array_equal(back.theta, r.result.theta)
    assert json.loads((tmp_path / "demo.json").read_text())["truth_label"] == r.truth_label


def test_auto_truth_is_the_full_dft_set_when_present(tmp_path, monkeypatch):
    from fcinv.pipeline.demo import DEFAULT_TRUTH, SHARED_DATA_ENV, resolve_truth

    folder = tmp_path / "ge_dft_pathsqe"
    folder.mkdir()
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    assert resolve_truth("Ge") == (DEFAULT_TRUTH, "sampled")  # the folder lacks the files
    (folder / "FORCE_CONSTANTS").write_text("2 2\n")
    (folder / "POSCAR").write_text("Ge\n")
    assert resolve_truth("Ge") == (f"dft:{folder}", "member")
    assert resolve_truth("Nb") == (DEFAULT_TRUTH, "sampled")
    assert resolve_truth("Ge", "7net-0", "member") == ("7net-0", "member")


def test_truth_dispersion_is_phonopys_of_the_whole_file():
    """The demo's dispersion truth for the DFT set: phonopy of the whole file, against fcinv's own energies
    of the same file's projection (close, not equal: the file has pairs beyond the model's cutoff)."""
    from fcinv.pipeline.demo import shared_data_dir, truth_dispersion, truth_force_constants
    from fcinv.reference import load_reference

    d = shared_data_dir()
    if d is None or not (d / "ge_dft_pathsqe" / "FORCE_CONSTANTS").is_file():
        pytest.skip("the DFT Ge set is not on this machine")
    ref = load_reference("Ge")
    fc, unit, smat, theta = truth_force_constants(
        ref, f"dft:{d / 'ge_dft_pathsqe'}", "member", list(ref.space.names)
    )
    q = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.5]])  # X and L
    e = truth_dispersion(fc, unit, smat, ref.crystal, q)
    assert e.shape == (2, 6) and np.all(np.diff(e, axis=1) >= 0)
    # Ge at X: TA ≈ 2.4 THz ≈ 10 meV, TO ≈ 8.2 THz ≈ 34 meV (neutron data, Nilsson & Nelin 1971)
    assert 8.0 < e[0, 0] < 12.0 and 30.0 < e[0, -1] < 38.0
    from fcinv.fitting.dispersion_fit import model_energies

    e_model = np.sort(model_energies(ref.space, theta, q), axis=1)
    assert np.max(np.abs(e_model - e)) < 2.0
