"""The DFT Ge validation: truth spectrum from the full file, comparison with the projection."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.evaluation.dft import dft_check, dft_truth_spectrum, read_dft_ge
from fcinv.reference import load_reference


@pytest.fixture(scope="module")
def dft(ge_dft_dir):
    return read_dft_ge(ge_dft_dir)


def test_truth_spectrum_is_the_full_file(dft):
    from fcinv.forward import ForwardModel

    ref = load_reference("Ge")
    spec, theta = dft_truth_spectrum(ref, ref.paper_sampled, dft, intensity="paper")
    full = ForwardModel.from_pairs(ref.space, ref.forward_model().grid, dft)
    np.testing.assert_allclose(spec, full.spectra(full.theta0)[0], atol=1e-6)
    np.testing.assert_allclose(theta, full.theta0[ref.space.index(ref.paper_sampled)])
    # not the projection's own spectrum: the file's tail beyond the cutoff shows
    proj_only = ForwardModel(ref.space, full.grid, full.theta0)
    assert np.abs(spec - proj_only.spectra(full.theta0)[0]).max() > 1e-3


def test_dft_check_of_the_paper_model(dft):
    from fcinv.inference import available_models, load_model

    if "ge-paper" not in available_models():
        pytest.skip("the ge-paper model is not shipped in this installation")
    ref = load_reference("Ge")
    r = dft_check(load_model("ge-paper"), ref, dft, intensity="paper", k_samples=20)
    assert r["names"] == ref.paper_sampled and r["tail"] == "reference"
    row = r["per_parameter"]["1NN_xx"]
    assert row["rel_err"] == pytest.approx(abs(row["pred"] - row["truth"]) / abs(row["truth"]))
    assert r["max_rel_err_fc0_3"] == pytest.approx(max(r["per_parameter"][n]["rel_err"] for n in ref.paper_sampled[:4]))
    assert 0 < r["disp_rms_THz"] < 2
