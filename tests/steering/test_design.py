"""Steering: the design criterion, the joint model and the incremental fold."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.steering.design import Posterior, SteeringError, gains, rank


@pytest.fixture(scope="module")
def ge():
    from fcinv.crystal import default_grid
    from fcinv.reference import load_reference

    ref = load_reference("Ge")
    return ref, default_grid(ref.crystal)


def _segment_coverage(full, lo: int, hi: int):
    """The terms of ``full`` on path pixels lo..hi-1 only (one segment of the path)."""
    from fcinv.forward.physical import Coverage

    sel = np.flatnonzero((full.pixel >= lo) & (full.pixel < hi))
    return Coverage(
        grid=full.grid,
        rotations=full.rotations,
        pixel=full.pixel[sel],
        rot=full.rot[sel],
        zone=full.zone[sel],
        t_idx=np.arange(len(sel), dtype=np.int64),
        e_idx=np.full(len(sel), -1, dtype=np.int64),
        w=np.ones(len(sel)),
        source=f"pixels {lo}..{hi - 1}",
    )


@pytest.fixture(scope="module")
def segments(ge):
    """Orientation-like coverages of two path segments: Γ–X (pixels 0..39) and Γ–L (pixels 80..99)."""
    from fcinv.forward.physical import PhysicalModel, full_coverage
    from fcinv.steering.combine import with_coverage
    from fcinv.steering.design import linearise

    ref, grid = ge
    full = full_coverage(ref.crystal, grid, qmax=4.0)
    ca, cb = _segment_coverage(full, 0, 40), _segment_coverage(full, 80, 100)
    base = PhysicalModel(
        ref.space,
        grid,
        ref.theta_ref,
        free=ref.sampled,
        coverage=ca,
        temperature=5.0,
        dw="none",
        sampling="path",
    )
    th = base.theta0
    return ref, linearise(base, th, psi=1.0), linearise(with_coverage(base, cb), th, psi=2.0), th


def _prior(ref, th):
    from fcinv.fitting.priors import build_prior

    pri = build_prior(ref.sampled, th, spec="domain", ref=ref)
    return Posterior.from_prior(ref.sampled, th, pri.sigma, scale=1.0, background=0.1)


@pytest.mark.parametrize("criterion", ["D", "A"])
def test_ranking_prefers_unconstrained_segment(segments, criterion):
    """Γ–X measured three times: measuring Γ–X again must rank below Γ–L, which nothing has measured."""
    ref, a, b, th = segments
    post = _prior(ref, th)
    before = gains(
        post,
        np.stack([x.fisher(scale=1.0, background=0.1, rate_time=10.0) for x in (a, b)]),
        criterion=criterion,
    )
    assert np.all(before > 0)
    for _ in range(3):
        post.add(a, rate_time=10.0)
    r = rank(post, [a, b], rate_time=10.0, criterion=criterion)
    assert r.psi[0] == 2.0, f"{criterion}: ranked {r.psi} with gains {r.gain}"
    assert r.gain[0] > 1.5 * r.gain[1]
    # what was measured shrank the posterior: the repeat gains less than it did on the empty prior
    assert r.gain[1] < before[0]


def test_information_adds_and_sigma_shrinks(segments):
    ref, a, b, th = segments
    post = _prior(ref, th)
    s0 = post.sigma()
    post.add(a, rate_time=10.0)
    s1 = post.sigma()
    post.add(b, rate_time=10.0)
    s2 = post.sigma()
    assert np.all(s1 <= s0 + 1e-15) and np.all(s2 <= s1 + 1e-15) and np.any(s2 < 0.9 * s0)
    # Poisson: the information is linear in the counting time, and zero-intensity pixels carry only the
    # background
    f1 = a.fisher(scale=1.0, background=0.1, rate_time=1.0)
    assert np.allclose(a.fisher(scale=1.0, background=0.1, rate_time=4.0), 4 * f1)
    assert np.allclose(f1, f1.T) and np.linalg.eigvalsh(f1).min() > -1e-9 * np.abs(f1).max()


def test_forecast_and_stop_rule(segments):
    from fcinv.steering.design import forecast, stop_advice

    ref, a, b, th = segments
    post = _prior(ref, th)
    fc = forecast(post, [a, b], rate_time=10.0, minutes_per=10.0, n_steps=12)
    assert fc.sigma.shape == (13, 4) and np.all(np.diff(fc.sigma, axis=0) <= 1e-12)
    assert set(fc.psi[1:3]) == {1.0, 2.0}  # greedy: both segments before any repeat
    stop = stop_advice(post, fc, target=fc.sigma[0] * 10)
    assert stop["stop"] and "target reached" in stop["reason"]
    go = stop_advice(post, fc, target=fc.sigma[-1] * 0.5, min_gain_per_hour=0.01)
    assert not go["stop"] and go["minutes_to_target"] == float("inf")
    flat = stop_advice(post, fc, target=None, min_gain_per_hour=0.999)
    assert flat["stop"] and "next hour" in flat["reason"]


def test_bad_inputs(segments):
    from fcinv.steering.candidates import parse_angles

    ref, a, b, th = segments
    post = _prior(ref, th)
    with pytest.raises(SteeringError, match="criterion = 'E'"):
        gains(post, np.stack([a.fisher(scale=1.0, background=0.1, rate_time=1.0)]), criterion="E")  # type: ignore[arg-type]
    with pytest.raises(SteeringError, match="rate × counting time = 0"):
        rank(post, [a], rate_time=0.0)
    with pytest.raises(SteeringError, match="no candidate orientations"):
        rank(post, [], rate_time=1.0)
    with pytest.raises(SteeringError, match="not in the model"):
        post.sigma(["9NN_xx"])
    with pytest.raises(SteeringError, match="start:stop:step"):
        parse_angles("10:0:1")
    assert parse_angles("0:10:5").tolist() == [0.0, 5.0, 10.0]
    assert parse_angles("3,1").tolist() == [3.0, 1.0]


def test_joint_model_equals_model_of_combined_coverage(ge):
    """The exposure-weighted sum of per-orientation models is the model of their joint fold."""
    from fcinv.forward.physical import Coverage, PhysicalModel
    from fcinv.steering.candidates import candidate_coverages
    from fcinv.steering.combine import joint_model, with_coverage

    ref, grid = ge
    c0, c1 = candidate_coverages(ref.crystal, grid, [0.0, 17.0])
    kw = dict(free=ref.sampled, temperature=5.0, dw="none", sampling="path")
    m0 = PhysicalModel(ref.space, grid, ref.theta_ref, coverage=c0, **kw)
    m1 = with_coverage(m0, c1)
    direct1 = PhysicalModel(ref.space, grid, ref.theta_ref, coverage=c1, **kw)
    th = m0.theta0 * 1.03
    assert np.array_equal(m1.spectra(th), direct1.spectra(th))
    n0 = c0.n_terms
    both = Coverage(
        grid=grid,
        rotations=c0.rotations,
        pixel=np.r_[c0.pixel, c1.pixel],
        rot=np.r_[c0.rot, c1.rot],
        zone=np.r_[c0.zone, c1.zone],
        t_idx=np.r_[c0.t_idx, c1.t_idx + n0],
        e_idx=np.r_[c0.e_idx, c1.e_idx],
        w=np.r_[c0.w, c1.w],
    )
    direct = PhysicalModel(ref.space, grid, ref.theta_ref, coverage=both, **kw)
    joint = joint_model([m0, m1])
    a, b = joint.spectra(th)[0], direct.spectra(th)[0]
    assert np.array_equal(joint.mask, direct.mask)
    assert np.abs(a - b).max() <= 1e-5 * b.max()


def test_candidate_coverage_equals_coverage_for_run_of_that_angle(ge):
    """One shared RunGeometry: each candidate's coverage is coverage_for_run's for that single angle."""
    from fcinv.forward import coverage_for_run
    from fcinv.steering.candidates import candidate_coverages

    ref, grid = ge
    (c,) = candidate_coverages(ref.crystal, grid, [23.0])
    d = coverage_for_run(ref.crystal, grid, psi=[23.0], sampling="path")
    for attr in ("pixel", "rot", "zone", "t_idx", "e_idx", "w"):
        assert np.array_equal(getattr(c, attr), getattr(d, attr)), attr
    assert c.meta["bin_exposure"] > 0 and c.meta["psi_deg"] == 23.0
