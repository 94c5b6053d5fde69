"""The data-only rule that picks the space of a continued refinement (fcinv.fitting.continuation_select)."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.crystal import default_grid
from fcinv.errors import DataError
from fcinv.fitting.continuation import refine_in_shells
from fcinv.fitting.continuation_select import (
    DEVIANCE_Z,
    bic_scores,
    choose_stage,
    choose_stage_bic,
    stage_step,
)
from fcinv.forward import ForwardModel
from fcinv.reference import load_reference


def _stage(label, theta, sigma, n_params, deviance, chi2_dof=1.0, dof=1000):
    return {
        "shells": label,
        "n_params": n_params,
        "theta": dict(theta),
        "sigma": dict(sigma),
        "deviance": deviance,
        "chi2": chi2_dof * dof,
        "dof": dof,
    }


def test_a_step_is_settled_only_without_a_real_gain_and_inside_sigma():
    a = _stage(9, {"x": 1.0, "y": 0.5}, {"x": 0.1, "y": 0.1}, 10, 1500.0)
    dp = 8
    allowed = dp + DEVIANCE_Z * np.sqrt(2 * dp)
    # no real gain (a drop within chance), moves inside sigma: settled
    b = _stage(
        11, {"x": 1.05, "y": 0.45, "z": 0.0}, {"x": 0.1, "y": 0.1, "z": 0.1}, 18, 1500.0 - 0.9 * allowed
    )
    s = stage_step(a, b)
    assert s["settled"] and not s["significant"] and s["added_params"] == dp
    assert s["max_move_sigma"] == pytest.approx(0.5) and s["allowed"] == pytest.approx(allowed)
    # the same drop is significant when the larger fit's chi2/dof is small (no quasi-likelihood inflation)...
    big_drop = _stage(11, b["theta"], b["sigma"], 18, 1500.0 - 1.2 * allowed)
    assert stage_step(a, big_drop)["significant"]
    # ...and not when the larger fit's chi2/dof is 1.5 (the drop scaled by 1/1.5)
    inflated = _stage(11, b["theta"], b["sigma"], 18, 1500.0 - 1.2 * allowed, chi2_dof=1.5)
    assert not stage_step(a, inflated)["significant"]
    # a move beyond sigma is not settled even without a gain
    moved = _stage(11, {"x": 1.3, "y": 0.5, "z": 0.0}, b["sigma"], 18, 1500.0)
    s = stage_step(a, moved)
    assert not s["settled"] and s["worst"] == "x" and s["max_move_sigma"] == pytest.approx(3.0)


def test_choose_stage_keeps_the_first_settled_stage_else_the_last():
    sig = {"x": 0.1}
    st = [
        _stage(5, {"x": 0.0}, sig, 16, 5000.0),
        _stage(9, {"x": 1.0}, sig, 37, 1200.0),  # a large gain
        _stage(11, {"x": 1.02}, sig, 47, 1195.0),  # settled: no real gain, inside sigma
        _stage("4x4x4", {"x": 1.5}, sig, 55, 1100.0),
    ]
    k, steps = choose_stage(st)
    assert k == 1 and [s["settled"] for s in steps] == [False, True]
    k, steps = choose_stage(st[:2])
    assert k == 1 and len(steps) == 1 and not steps[0]["settled"]  # never settled: the last


@pytest.fixture(scope="module")
def three_shell_data():
    two, three = load_reference("Ge", 2), load_reference("Ge", 3)
    grid = default_grid(two.crystal)
    truth = three.theta_ref.copy()
    spec = ForwardModel(three.space, grid, truth).spectra(truth)[0]
    return two, three, grid, spec


def test_stages_run_in_order_of_size_and_record_theta_and_sigma(three_shell_data):
    two, three, grid, spec = three_shell_data
    fm = ForwardModel(two.space, grid, two.theta_ref)
    start = dict(zip(two.space.names, two.theta_ref * 1.03))
    four = load_reference("Ge", 4)
    assert four.space.n_params > three.space.n_params
    res = refine_in_shells(fm, spec, start, [4, 3], max_nfev=200, select="last")
    st = res.extra["stages"]
    assert [s["shells"] for s in st] == [2, 3, 4] and res.extra["n_shells"] == 4
    assert [s["selected"] for s in st] == [False, False, True]
    for s in st:
        assert set(s["theta"]) >= set(s["sigma"]) and len(s["sigma"]) == s["n_params"]
    assert "selection" not in res.extra
    # the cutoff systematic of the last stage is its move from the previous one
    moved = {n: st[2]["theta"][n] - st[1]["theta"][n] for n in st[1]["theta"]}
    np.testing.assert_allclose([res.extra["cutoff_shift"][n] for n in moved], list(moved.values()))


def test_select_stable_returns_the_chosen_stage_with_its_move_to_the_next(three_shell_data):
    """Noisy data of a 3-shell crystal with its errors: 4 shells add nothing, so the rule keeps 3."""
    from fcinv.experiment.folded import FoldedSpectrum

    two, three, grid, spec = three_shell_data
    fm = ForwardModel(two.space, grid, two.theta_ref)
    start = dict(zip(two.space.names, two.theta_ref * 1.03))
    err = 0.01 * np.nanmax(spec) * np.ones_like(spec)
    noisy = spec + err * np.random.default_rng(0).standard_normal(spec.shape)
    fs = FoldedSpectrum(noisy, err, np.ones(spec.shape, bool), np.ones(spec.shape, int), grid)
    res = refine_in_shells(fm, fs, start, [3, 4], max_nfev=200, select="stable")
    sel = res.extra["selection"]
    assert [s["to"] for s in sel["steps"]] == [3, 4]
    assert sel["steps"][0]["significant"] and sel["steps"][1]["settled"], sel["steps"]
    assert sel["chosen"] == 3 and res.extra["n_shells"] == 3 and list(res.names) == list(three.sampled)
    assert [s["selected"] for s in res.extra["stages"]] == [False, True, False]
    # its cutoff systematic is the move to the next (rejected) stage
    st = res.extra["stages"]
    moved = [abs(st[2]["theta"][n] - st[1]["theta"][n]) for n in res.names]
    np.testing.assert_allclose([res.extra["sigma_cutoff"][n] for n in res.names], moved, atol=1e-12)
    assert "(3 -> 4 shells)" in res.as_dict()["uncertainty"]


def test_select_must_be_a_known_rule(three_shell_data):
    two, three, grid, spec = three_shell_data
    fm = ForwardModel(two.space, grid, two.theta_ref)
    with pytest.raises(DataError, match="not a stage rule"):
        refine_in_shells(fm, spec, dict(zip(two.space.names, two.theta_ref)), [3], select="best")


def test_a_supercell_starts_from_the_largest_fitted_space_it_holds(three_shell_data):
    """2x2x2 holds 4 shells, not 5: after 2 -> 5 it continues from the 2-shell answer, not from 5."""
    two, three, grid, spec = three_shell_data
    fm = ForwardModel(two.space, grid, two.theta_ref)
    start = dict(zip(two.space.names, two.theta_ref * 1.03))
    res = refine_in_shells(fm, spec, start, ["2x2x2", 5], max_nfev=200, select="last")
    st = res.extra["stages"]
    assert [s["shells"] for s in st] == [2, 5, "2x2x2"] and [s.get("from") for s in st] == [None, 2, 2]
    assert res.extra["supercell"] == "2x2x2" and "dropped" not in st[2]


def test_bic_charges_ln_n_per_parameter():
    sig = {"x": 0.1}
    # 10,000 pixels: ln N = 9.2 per parameter; 38 more parameters must buy a drop of 350 to win
    a = _stage("4x4x4", {"x": 1.0}, sig, 55, 11100.0, dof=10000 - 55)
    b = _stage("5x5x5", {"x": 1.0}, sig, 93, 11100.0 - 150.0, dof=10000 - 93)
    scores = bic_scores([a, b])
    assert scores[1] - scores[0] == pytest.approx(-150.0 + 38 * np.log(10000), rel=1e-9)
    assert choose_stage_bic([a, b])[0] == 0
    c = dict(b, deviance=11100.0 - 400.0)
    assert choose_stage_bic([a, c])[0] == 1
