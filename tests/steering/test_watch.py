"""Steering: the incremental fold and the live loop against batch runs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest


@pytest.fixture(scope="module")
def small_run():
    """A 4-orientation simulated Ge run (reference force constants, Euphonic), on the model's grid."""
    pytest.importorskip("euphonic")
    from fcinv.crystal import default_grid
    from fcinv.experiment.instrument import Goniometer, Instrument
    from fcinv.experiment.simulate import ExperimentConfig, force_constants_from_array, simulate_experiment
    from fcinv.reference import load_reference

    ref = load_reference("Ge")
    cr = ref.crystal
    grid = default_grid(cr)
    arr = ref.space.to_phonopy(ref.theta_ref, np.diag([4, 4, 4]))
    efc, ec = force_constants_from_array(
        arr, cr.lattice, cr.positions, cr.numbers, (4, 4, 4), masses=cr.masses
    )
    run = simulate_experiment(
        efc,
        ec,
        instrument=Instrument(ei=40.0),
        goniometer=Goniometer.steps(0.0, 11.0, 4),
        config=ExperimentConfig(seed=3),
        region=grid,
    )
    return ref, grid, run


@pytest.mark.parametrize("corrected", [False, True])
def test_incremental_fold_equals_batch_fold(small_run, corrected):
    from fcinv.experiment.fold import Corrections, FoldPlan
    from fcinv.steering.incremental import IncrementalFold

    ref, grid, run = small_run
    corr = Corrections(bose_temperature=5.0, q2=True, energy=True) if corrected else None
    plan = FoldPlan.build(run.edges[:3], grid, ref.crystal.point_group_rlu, centering="F")
    inc = IncrementalFold(plan, corr)
    for j in range(run.n_orientations):
        inc.add(run.orientation(j))
    a, b = inc.folded(), plan.apply(run.total(), corrections=corr)
    assert np.array_equal(a.mask, b.mask)
    assert np.nanmax(np.abs(a.intensity - b.intensity)) <= 1e-12 * np.nanmax(np.abs(b.intensity))
    assert np.nanmax(np.abs(a.error - b.error)) <= 1e-12 * np.nanmax(b.error)


def test_incremental_fold_refuses_empty(small_run):
    from fcinv.errors import DataError
    from fcinv.experiment.fold import FoldPlan
    from fcinv.steering.incremental import IncrementalFold

    ref, grid, run = small_run
    inc = IncrementalFold(FoldPlan.build(run.edges[:3], grid, ref.crystal.point_group_rlu, centering="F"))
    with pytest.raises(DataError, match="nothing has been folded yet"):
        inc.folded()


def test_watch_on_growing_directory_equals_batch(small_run, tmp_path):
    """Files land one by one while the loop runs; its final answer is the batch run's on all of them."""
    from fcinv.experiment.fold import Corrections
    from fcinv.inference import load_model
    from fcinv.pipeline import Pipeline, PipelineConfig
    from fcinv.steering.watch import watch

    ref, grid, run = small_run
    predictor = load_model("ge")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    corr = Corrections(bose_temperature=5.0, q2=True, energy=True)

    def writer():
        for j in range(run.n_orientations):
            time.sleep(0.3)
            run.orientation(j).to_hdf5(incoming / f"psi_{j:03d}.h5")

    th = threading.Thread(target=writer)
    th.start()
    out = tmp_path / "live.json"
    state = watch(
        incoming,
        crystal=ref.crystal,
        grid=predictor.grid,
        predictor=predictor,
        out=out,
        corrections=corr,
        poll_s=0.05,
        max_files=run.n_orientations,
        idle_timeout_s=60,
    )
    th.join()
    assert state.seen == [f"psi_{j:03d}.h5" for j in range(run.n_orientations)]
    assert [u.n_files for u in state.updates] == [1, 2, 3, 4]
    # batch: the summed run through the pipeline's reader, fold and inference
    batch = tmp_path / "all.h5"
    run.total().to_hdf5(batch)
    inv = Pipeline(predictor, config=PipelineConfig(corrections=corr)).invert(batch)
    last = state.last
    assert last.names == tuple(inv.names)
    assert np.allclose(last.theta, inv.theta, rtol=1e-5, atol=1e-7)
    assert np.allclose(last.sigma, inv.sigma, rtol=1e-5, atol=1e-7)
    import json

    doc = json.loads(out.read_text())
    assert doc["n_files"] == 4 and set(doc["answer"]) == set(inv.names)
    assert "adequate" in doc["adequacy"] and doc["seconds"]["total"] > 0


def test_watch_refuses_missing_directory(tmp_path):
    from fcinv.errors import DataError
    from fcinv.steering.watch import watch

    with pytest.raises(DataError, match="does not exist"):
        watch(tmp_path / "nope", crystal=None, grid=None, predictor=None)


def test_advisor_measured_volume_matches_its_candidate(small_run):
    """A measured orientation at a candidate angle counts as that candidate at the run's rate × time."""
    from fcinv.steering.advise import Advisor

    ref, grid, run = small_run
    adv = Advisor(ref, [0.0, 11.0], counting_time=1.5, grid=grid)
    full = Advisor(ref, [0.0, 11.0], counting_time=1.5, grid=grid)
    vol = run.orientation(1)  # ψ = 11°, 1.5 min at rate 1 (the simulator's defaults)
    adv.add_measured_volume(vol)  # shortcut: the candidate's linearisation
    meta = dict(vol.meta)
    meta.pop("psi_deg")
    from fcinv.experiment.volume import Volume4D

    anon = Volume4D(
        edges=vol.edges,
        index=vol.index,
        signal=vol.signal,
        error=vol.error,
        norm=vol.norm,
        meta=meta,
        reciprocal_cell=vol.reciprocal_cell,
    )
    full.add_measured_volume(anon)  # its own coverage and linearisation
    s_short, s_full = adv.post.sigma(), full.post.sigma()
    assert np.allclose(s_short, s_full, rtol=0.03), (s_short, s_full)
    # the same as measuring the candidate angle for the counting time; measuring it lowers its own gain
    ang = Advisor(ref, [0.0, 11.0], counting_time=1.5, grid=grid)
    g0 = dict(zip(ang.ranking().psi, ang.ranking().gain))
    ang.add_measured_psi(11.0)
    assert np.allclose(ang.post.sigma(), s_short, rtol=0.02)
    assert dict(zip(ang.ranking().psi, ang.ranking().gain))[11.0] < g0[11.0]
