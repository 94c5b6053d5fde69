"""The refinement continued into a supercell's Wigner-Seitz space (fcinv.fitting.continuation)."""

from __future__ import annotations

import numpy as np

from fcinv.crystal import default_grid
from fcinv.fitting.continuation import refine_in_shells, shell_prior
from fcinv.forward import ForwardModel
from fcinv.pipeline.core import PipelineConfig
from fcinv.reference import load_reference


def test_continuation_into_a_supercell_space():
    two, ws = load_reference("Ge", 2), load_reference("Ge", supercell="2x2x2")
    assert ws.space.supercell is not None and ws.space.names[: two.space.n_params] == two.space.names
    grid = default_grid(two.crystal)
    truth = ws.theta_ref.copy()  # a crystal the 2x2x2 space holds (the reference's projection onto it)
    spec = ForwardModel(ws.space, grid, truth).spectra(truth)[0]
    fm = ForwardModel(two.space, grid, two.theta_ref)
    start = dict(zip(two.space.names, two.theta_ref * 1.03))
    res = refine_in_shells(fm, spec, start, ["2x2x2"], max_nfev=200)
    assert res.success, res.message
    st = res.extra["stages"]
    assert [s["shells"] for s in st] == [2, "2x2x2"] and st[-1]["n_params"] == ws.space.n_params
    assert res.extra["supercell"] == "2x2x2" and list(res.names) == list(ws.sampled)
    # the recorded space is the one load_reference gives back
    back = load_reference("Ge", res.extra["n_shells"], supercell=res.extra["supercell"])
    assert back.space.names == ws.space.names
    got = np.array([res.extra["theta_full"][n] for n in ws.space.names])
    assert np.abs(got - truth).max() < 0.02 * np.abs(truth).max(), np.abs(got - truth).max()
    assert "(2 -> 2x2x2 shells)" in res.as_dict()["uncertainty"]
    # the prior of the new space exists for every parameter, with the far-shell floor
    p = shell_prior(ws)
    assert len(p.names) == ws.space.n_params and np.all(p.sigma > 0)


def test_parameters_the_members_do_not_hold_get_the_floor_prior():
    ws = load_reference("Ge", supercell="4x4x4")  # the members are 5x5x5: 15NN (10.1 Å), 19NN (11.3 Å) beyond
    far = [k for k, n in enumerate(ws.space.names) if n.split("_")[0] in ("15NN", "19NN")]
    near = [k for k, n in enumerate(ws.space.names) if n.split("_")[0] in ("1NN", "13NN")]
    lo, hi = ws.bounds()
    assert far and np.all(lo[far] == 0) and np.all(hi[far] == 0) and np.all(ws.theta_ref[far] == 0)
    assert np.all(hi[near] > lo[near])
    p = shell_prior(ws)
    assert np.abs(p.mean[far]).max() < 1e-3 and np.all(p.sigma[far] > 0.01)


def test_config_accepts_supercell_stages():
    cfg = PipelineConfig(refine_shells=(9, "11", "4X4X4"))
    assert cfg.refine_shells == (9, 11, "4x4x4")


def test_infer_shells_option_takes_a_supercell():
    import argparse

    import pytest

    from fcinv.cli.infer import _shells_or_supercell

    assert _shells_or_supercell("11") == 11 and _shells_or_supercell("4X4x4") == "4x4x4"
    with pytest.raises(argparse.ArgumentTypeError, match="neither a shell count"):
        _shells_or_supercell("4x4")


def test_stage_rule_option_and_its_errors():
    """``fcinv infer --select bic`` → PipelineConfig.refine_select; an unknown rule is a one-line error."""
    import pytest

    import fcinv.fitting.continuation as cont
    from fcinv.cli.infer import get_parser
    from fcinv.errors import DataError

    assert get_parser().parse_args(["x.nxspe", "--refine", "--select", "bic"]).select == "bic"
    assert PipelineConfig(refine_select="bic").refine_select == "bic"
    assert PipelineConfig().refine_select is None
    with pytest.raises(DataError, match="refine_select = 'aic'; pass one of last, stable, bic"):
        PipelineConfig(refine_select="aic")
    assert cont.SELECT_RULES == ("last", "stable", "bic")
    with pytest.raises(DataError, match="select='aic' is not a stage rule"):
        cont._select_setting("Ge", "aic")
