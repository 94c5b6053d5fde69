"""The public API, used as the README shows it: only ``import fcinv`` and what it offers."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_readme_script(tmp_path, capsys):
    """Invert a simulated folded spectrum, print the table, write JSON and phonopy files, reload them."""
    import phonopy

    import fcinv

    truth = {"1NN_xx": -2.0, "1NN_xy": -1.1}
    spectrum = fcinv.simulate("Ge", truth)
    result = fcinv.invert(spectrum, model="ge")
    print(result.table(truth))
    result.to_json(tmp_path / "fcs.json")
    result.to_csv(tmp_path / "fcs.csv")
    export = result.to_phonopy(tmp_path / "fcs")

    out = capsys.readouterr().out
    assert "FC0   1NN_xx" in out and "eV/Å²" in out and "adequacy: " in out
    k = len(result.names)
    assert {"1NN_xx", "1NN_xy"} <= set(result.names) and result.theta.shape == result.sigma.shape == (k,)
    assert np.all(np.isfinite(result.theta)) and np.all(result.sigma >= 0)
    back = fcinv.FCResult.from_json(tmp_path / "fcs.json")
    np.testing.assert_array_equal(back.theta, result.theta)
    assert back.names == result.names and back.material == "Ge" and back.provenance == result.provenance
    assert (tmp_path / "fcs.csv").read_text().splitlines()[1].startswith("0,1NN_xx,")

    # the phonopy files reload and give the forward model's frequencies of the inverted θ
    ph = phonopy.load(str(tmp_path / "fcs" / "phonopy_params.yaml"), log_level=0)
    material = fcinv.load_material("Ge")
    # the result's own forward model: zero beyond the cutoff when it holds every parameter (tail_for)
    model = material.reference.forward_model(free=list(result.names))
    grid = model.grid
    q = grid.q_rlu[::7]
    ph.run_qpoints(material.crystal.rlu_to_prim_frac(q))
    f_ph = np.sort(ph.qpoints.frequencies, axis=1) * 4.135667696923859  # THz -> meV
    f_fc = np.sort(model.frequencies(result.theta)[0][::7], axis=1)
    np.testing.assert_allclose(f_ph, f_fc, atol=1e-3)
    assert export.max_rel_dev is not None and export.max_rel_dev < 1e-6


def test_invert_takes_a_path_and_a_volume(tmp_path):
    import fcinv

    spectrum = fcinv.simulate("Ge")
    spectrum.to_hdf5(tmp_path / "s.h5")
    a = fcinv.invert(tmp_path / "s.h5", model="ge", k_samples=10)
    b = fcinv.invert(spectrum, model=fcinv.load_model("ge"), k_samples=10)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert a.extra["data"] == str(tmp_path / "s.h5") and a.adequacy["coverage"] == 1.0


def test_fit_returns_the_same_result_type():
    import fcinv

    truth = {"1NN_xx": -2.0}
    res = fcinv.fit(fcinv.simulate("Ge", truth), "Ge", free=["1NN_xx", "1NN_xy"], n_starts=1)
    assert isinstance(res, fcinv.FCResult) and res.names == ("1NN_xx", "1NN_xy")
    assert res.method.startswith("fit: ") and "linearised" in res.sigma_meaning and res.adequacy["success"]
    assert abs(res["1NN_xx"][0] - truth["1NN_xx"]) < 1e-3


def test_simulate_and_material():
    import fcinv

    ge = fcinv.load_material("Ge")
    s = fcinv.simulate(ge, {"1NN_xx": -2.2})
    assert s.grid.same_as(ge.grid()) and s.coverage == 1.0 and s.meta["theta"]["1NN_xx"] == -2.2
    with pytest.raises(fcinv.FcinvError, match="'9NN_xx' is not a parameter of Ge"):
        fcinv.simulate("Ge", {"9NN_xx": 1.0})
    with pytest.raises(fcinv.FcinvError, match="unknown material 'Xx'"):
        fcinv.load_material("Xx")
