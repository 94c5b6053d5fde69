"""The steering refit: one full continuation, then warm-started single stages in the final space."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.crystal import default_grid
from fcinv.fitting.continuation import refine_in_shells
from fcinv.forward import ForwardModel
from fcinv.reference import load_reference
from fcinv.steering.design import SteeringError
from fcinv.steering.refit import IncrementalRefit


@pytest.fixture(scope="module")
def setup():
    two, three = load_reference("Ge", 2), load_reference("Ge", 3)
    grid = default_grid(two.crystal)
    truth = three.theta_ref.copy()  # a 3-shell crystal
    truth2 = truth * 1.01  # the "crystal" the next data say (the answer moves a little)
    fm3 = ForwardModel(three.space, grid, truth)
    spec1, spec2 = fm3.spectra(truth)[0], fm3.spectra(truth2)[0]
    refs = {2: two, 3: three}

    def model_for(n):
        r = refs[n]
        return ForwardModel(r.space, grid, r.theta_ref, free=list(r.sampled))

    return refs, model_for, truth2, spec1, spec2


def test_first_refit_continues_later_refits_are_one_stage(setup):
    refs, model_for, truth2, spec1, spec2 = setup
    start = dict(zip(refs[2].space.names, refs[2].theta_ref * 1.03))
    inc = IncrementalRefit(
        "Ge", model_for, shells=[3], base_shells=2, max_nfev=20, first_kwargs={"max_nfev": 200}
    )
    assert inc.targets() == list(refs[2].sampled[:4]) and not inc.started
    first = inc.refit(spec1, start)
    assert first.success, first.message
    assert [s["shells"] for s in first.extra["stages"]] == [2, 3]
    assert inc.n_final == 3 and inc.final_names == list(refs[3].sampled)
    cut = np.array([first.extra["sigma_cutoff"][n] for n in inc.final_names])
    np.testing.assert_allclose(inc.sigma_cutoff, cut)
    assert cut.max() > 0  # the continuation moved the inner parameters

    second = inc.refit(spec2, start)  # the start is ignored now: warm start from the first answer
    assert [h["kind"] for h in inc.history] == ["continuation", "incremental"]
    assert list(second.names) == inc.final_names and "stages" not in second.extra
    np.testing.assert_allclose(second.theta_start, first.theta, atol=1e-12)
    assert second.success, second.message
    assert second.n_iter <= 20 + 1
    # sigma: this refit's Laplace sigma and, in quadrature, the cutoff systematic re-measured on these data
    # (|θ(3 shells) − θ(2 shells)| of its two warm stages), not the first continuation's
    assert second.extra["cutoff_stage"]["shells"] == 2 and second.extra["cutoff_stage"]["converged"]
    cut2 = np.array([second.extra["sigma_cutoff"][n] for n in inc.final_names])
    stat = np.array([second.extra["sigma_statistical"][n] for n in second.names])
    np.testing.assert_allclose(second.sigma, np.sqrt(stat**2 + cut2**2))
    assert "re-measured by this refit" in second.extra["uncertainty"]
    assert not np.allclose(cut2, cut)
    # the same answer, and the same cutoff systematic, as a full continuation on the same data
    full = refine_in_shells(model_for(2), spec2, start, [3], max_nfev=200)
    # (the warm stages have no pre-smoothing or outlier stage: so has this continuation)
    plain = refine_in_shells(
        model_for(2), spec2, start, [3], max_nfev=200, outliers=False, presmooth_meV=None
    )
    shift = np.array([abs(plain.extra["cutoff_shift"].get(n, 0.0)) for n in inc.final_names])
    np.testing.assert_allclose(cut2, shift, atol=2e-3 * np.abs(truth2).max())
    got = np.array([second.extra["theta_full"][n] for n in refs[3].space.names])
    ref_full = np.array([full.extra["theta_full"][n] for n in refs[3].space.names])
    np.testing.assert_allclose(got, ref_full, atol=2e-3 * np.abs(ref_full).max())
    np.testing.assert_allclose(got, truth2, atol=2e-3 * np.abs(truth2).max())
    by = dict(zip(second.names, second.sigma))
    np.testing.assert_allclose(inc.sigma_of(second, inc.targets(2)), [by[n] for n in inc.targets(2)])
    with pytest.raises(SteeringError, match="not in the refit's space"):
        inc.sigma_of(second, ["9NN_qq"])


def test_shared_first_continuation_and_space_check(setup):
    refs, model_for, truth2, spec1, spec2 = setup
    start = dict(zip(refs[2].space.names, refs[2].theta_ref * 1.03))
    a = IncrementalRefit("Ge", model_for, shells=[3], base_shells=2, first_kwargs={"max_nfev": 200})
    first = a.refit(spec1, start)
    b = IncrementalRefit("Ge", model_for, shells=[3], base_shells=2, cutoff="first")
    b.start_from(first)  # a second strategy that measured the same first data
    assert b.started and b.n_final == a.n_final and b.theta_full == a.theta_full
    np.testing.assert_allclose(b.sigma_cutoff, a.sigma_cutoff)
    held = b.refit(spec2)  # cutoff="first": the continuation's cutoff systematic is held, not re-measured
    stat = np.array([held.extra["sigma_statistical"][n] for n in held.names])
    np.testing.assert_allclose(held.sigma, np.sqrt(stat**2 + a.sigma_cutoff**2))
    assert "cutoff_stage" not in held.extra and "held" in held.extra["uncertainty"]
    wrong = IncrementalRefit("Ge", lambda n: model_for(2), shells=[3], base_shells=2)
    wrong.start_from(first)
    with pytest.raises(SteeringError, match="final space"):
        wrong.refit(spec2)
    with pytest.raises(SteeringError, match="positive integers"):
        IncrementalRefit("Ge", model_for, max_nfev=0)
    with pytest.raises(SteeringError, match="'remeasure' or 'first'"):
        IncrementalRefit("Ge", model_for, cutoff="later")
    with pytest.raises(SteeringError, match="positive bound"):
        IncrementalRefit("Ge", model_for, chi2_max=0)


def test_retry_continues_after_a_short_first_continuation(setup):
    """A first continuation that stops short (its 3-shell stage starved of evaluations) leaves the refit in
    the 2-shell space; with retry the next refit continues again and reaches 3 shells."""
    from fcinv.fitting import refine

    refs, model_for, truth2, spec1, spec2 = setup
    start = dict(zip(refs[2].space.names, refs[2].theta_ref * 1.03))
    calls = {"n3": 0}

    def starved_once(model, spectrum, theta, **kw):
        if model.k > 6:
            calls["n3"] += 1
            if calls["n3"] == 1:
                kw = {**kw, "max_nfev": 1}
        return refine(model, spectrum, theta, **kw)

    kw = {"shells": [3], "base_shells": 2, "first_kwargs": {"max_nfev": 200}, "refine_fn": starved_once}
    stay = IncrementalRefit("Ge", model_for, **kw)
    stay.refit(spec1, start)
    assert stay.n_final == 2 and not stay.retry
    calls["n3"] = 0
    again = IncrementalRefit("Ge", model_for, retry=True, **kw)
    again.refit(spec1, start)
    assert again.n_final == 2
    res = again.refit(spec2)
    assert again.n_final == 3 and res.success, res.message
    assert [h["kind"] for h in again.history] == ["continuation", "continuation (retry)"]
    assert [s["shells"] for s in res.extra["stages"]] == [2, 3]
    assert again.sigma_cutoff.max() > 0
    again.refit(spec2)
    assert again.history[-1]["kind"] == "incremental"


def _with_errors(grid, spec, err):
    from fcinv.experiment.folded import FoldedSpectrum

    mask = np.isfinite(spec)
    return FoldedSpectrum(
        intensity=spec,
        error=np.where(mask, err, np.nan),
        mask=mask,
        n_contrib=mask.astype(np.int64),
        grid=grid,
    )


def test_trust_gate_an_untrusted_refit_does_not_steer(setup):
    """Trust: last space reached, converged and stable, chi2/dof <= bound; only a trusted refit steers."""
    from fcinv.fitting import refine
    from fcinv.steering.refit import gated_choice

    refs, model_for, truth2, spec1, spec2 = setup
    grid = model_for(2).grid
    start = dict(zip(refs[2].space.names, refs[2].theta_ref * 1.03))
    noise = 1e-3 * float(np.nanmax(spec1))
    good, tight = _with_errors(grid, spec1, noise), _with_errors(grid, spec1, 1e-9 * noise)
    steer, scan = (lambda: 7), (lambda: 1)
    assert gated_choice(None, steer, scan) == (1, "default (no refit yet)")

    ok = IncrementalRefit("Ge", model_for, shells=[3], base_shells=2, first_kwargs={"max_nfev": 200})
    res = ok.refit(good, start)
    assert ok.verdict.trusted and res.extra["trust"]["trusted"], ok.verdict.why
    assert ok.history[-1]["trusted"] and ok.history[-1]["n_shells"] == 3
    assert gated_choice(ok.verdict, steer, scan) == (7, "steered")

    # the same refit, but the data errors 1e9 x smaller: chi2/dof far above the bound
    bad = IncrementalRefit("Ge", model_for, shells=[3], base_shells=2, first_kwargs={"max_nfev": 200})
    bad.refit(tight, start)
    assert not bad.verdict.trusted and "chi2/dof" in bad.verdict.why and "> 3" in bad.verdict.why
    j, src = gated_choice(bad.verdict, steer, scan)
    assert j == 1 and src.startswith("default (chi2/dof")

    # a continuation starved of evaluations in its 3-shell stage stops at 2 shells: not trusted, no steering
    def starved(model, spectrum, theta, **kw):
        return refine(model, spectrum, theta, **({**kw, "max_nfev": 1} if model.k > 6 else kw))

    short = IncrementalRefit(
        "Ge", model_for, shells=[3], base_shells=2, first_kwargs={"max_nfev": 200}, refine_fn=starved
    )
    res = short.refit(good, start)
    assert res.success and short.n_final == 2  # the 2-shell stage itself is fine
    v = short.verdict
    assert not v.trusted and v.why.startswith(
        "continuation stopped at 2 of 3 shells (its 3-shell stage: not converged"
    )
    assert gated_choice(v, steer, scan)[0] == 1


def test_restart_untrusted_continues_again_from_the_first_start(setup):
    """A refit in the last space that is not trusted (here: chi2/dof above a tiny bound) makes the next refit
    a full continuation from the first refit's start; without the option the next refit is a warm stage."""
    refs, model_for, truth2, spec1, spec2 = setup
    grid = model_for(2).grid
    start = dict(zip(refs[2].space.names, refs[2].theta_ref * 1.03))
    data1 = _with_errors(grid, spec1, 1e-9 * float(np.nanmax(spec1)))
    data2 = _with_errors(grid, spec2, 1e-9 * float(np.nanmax(spec1)))
    kw = {"shells": [3], "base_shells": 2, "first_kwargs": {"max_nfev": 200}}
    for restart, kind in ((True, "continuation (restart)"), (False, "incremental")):
        r = IncrementalRefit("Ge", model_for, restart_untrusted=restart, **kw)
        r.refit(data1, start)
        assert r.n_final == 3 and not r.verdict.trusted and "chi2/dof" in r.verdict.why
        res = r.refit(data2)
        assert r.history[-1]["kind"] == kind
        if restart:
            assert [s["shells"] for s in res.extra["stages"]] == [2, 3]
            s0 = res.extra["stage0_theta_start"]
            np.testing.assert_allclose([s0[k] for k in start], list(start.values()), atol=1e-12)
