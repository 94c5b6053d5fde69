"""The refinement continued into more shells (fcinv.fitting.continuation)."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.crystal import default_grid
from fcinv.errors import DataError
from fcinv.fitting.continuation import model_in_space, refine_in_shells, shell_prior
from fcinv.forward import ForwardModel
from fcinv.reference import load_reference, shell_count


@pytest.fixture(scope="module")
def setup():
    two, three = load_reference("Ge", 2), load_reference("Ge", 3)
    grid = default_grid(two.crystal)
    truth = three.theta_ref.copy()  # a 3-shell crystal (the reference member's 3-shell projection)
    spec = ForwardModel(three.space, grid, truth).spectra(truth)[0]
    return two, three, grid, truth, spec


def test_shell_count_counts_distances():
    assert shell_count(load_reference("Ge", 3).space) == 3
    eight = load_reference("Ge", 8).space
    assert len(eight.shells) == 9 and shell_count(eight) == 8  # 7NN and 8NN share 7.35 Å


def test_continuation_reaches_the_larger_space(setup):
    two, three, grid, truth, spec = setup
    fm = ForwardModel(two.space, grid, two.theta_ref)
    start = dict(zip(two.space.names, two.theta_ref * 1.03))
    res = refine_in_shells(fm, spec, start, [3], max_nfev=200)
    assert res.success, res.message
    st = res.extra["stages"]
    assert [s["shells"] for s in st] == [2, 3] and [s["n_params"] for s in st] == [6, 10]
    assert res.extra["n_shells"] == 3 and list(res.names) == list(three.sampled)  # ranking order
    # the larger space holds the 3-shell crystal: its fit is closer than the 2-shell effective values
    got = np.array([res.extra["theta_full"][n] for n in three.space.names])
    inner = three.space.index(list(two.space.names))
    two_only = refine_in_shells(fm, spec, start, [], max_nfev=200)
    err3 = np.abs(got[inner] - truth[inner]).max()
    err2 = np.abs(np.array([two_only.extra["theta_full"][n] for n in two.space.names]) - truth[inner]).max()
    assert err3 < 0.2 * err2, (err3, err2)
    assert two_only.extra["stages"] == two_only.extra["stages"][:1] and two_only.extra["n_shells"] == 2
    # sigma: the last stage's Laplace sigma and the cutoff systematic (its move in that stage) in quadrature
    stat = np.array([res.extra["sigma_statistical"][n] for n in res.names])
    cut = np.array([res.extra["sigma_cutoff"][n] for n in res.names])
    np.testing.assert_allclose(res.sigma, np.sqrt(stat**2 + cut**2))
    moved = [abs(res.extra["theta_full"][n] - two_only.extra["theta_full"][n]) for n in two.space.names]
    np.testing.assert_allclose([res.extra["sigma_cutoff"][n] for n in two.space.names], moved, atol=1e-9)
    note = res.as_dict()["uncertainty"]
    assert "cutoff systematic" in note and "(2 -> 3 shells)" in note


def test_a_stage_that_fails_returns_the_last_trusted_one(setup):
    two, three, grid, truth, spec = setup
    fm = ForwardModel(two.space, grid, two.theta_ref)
    start = dict(zip(two.space.names, two.theta_ref))
    from fcinv.fitting import refine

    def starved(model, spectrum, theta, **kw):  # the 3-shell stage gets one evaluation: it cannot converge
        return refine(model, spectrum, theta, **{**kw, "max_nfev": 1 if model.k > 6 else 200})

    res = refine_in_shells(fm, spec, start, [3], refine_fn=starved)
    assert res.extra["stages"][0]["success"] is True
    assert [s["success"] for s in res.extra["stages"]][-1] is False
    assert res.extra["n_shells"] == 2 and list(res.names) == list(two.space.names)
    stop = "CONTINUATION STOPPED: the continuation to 3 shells"
    assert any(w.startswith(stop) for w in res.extra["warnings"])


def test_prior_floor_and_model_errors(setup):
    two, three, grid, truth, spec = setup
    p = shell_prior(three, floor=0.05)
    assert p.sigma.min() >= 0.05 * np.abs(three.theta_ref).max() - 1e-12
    assert "far-shell floor" in p.source
    with pytest.raises(DataError, match="needs a zero-tail forward model"):
        tailed = ForwardModel(two.space, grid, two.theta_ref, reference=two.pairs)
        model_in_space(tailed, three.space, three.theta_ref)
    with pytest.raises(DataError, match="cannot continue a refinement with a dict"):
        model_in_space({}, three.space, three.theta_ref)


def test_fit_records_the_shell_count_load_reference_reads():
    """Diamond's 7NN and 8NN share one distance: a fit in the 7-shell space says 7 shells (not its 8
    shell labels), so exports and the continuation reload the same space."""
    from fcinv.fitting import refine
    from fcinv.material import load_material

    seven = load_reference("Ge", 7)
    assert len(seven.space.shells) == 8 and shell_count(seven.space) == 7
    fm = ForwardModel(seven.space, load_material("Ge").grid(e_step=4.0), seven.theta_ref)
    spec = fm.spectra(seven.theta_ref)[0]
    res = refine(fm, spec, dict(zip(fm.names, seven.theta_ref)), max_nfev=2, fallback=False)
    assert res.extra["n_shells"] == 7
    assert load_reference("Ge", res.extra["n_shells"]).space.names == seven.space.names
