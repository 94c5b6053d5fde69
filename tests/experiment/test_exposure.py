"""The fold's exposure: the variance of a folded pixel is μ / exposure (bins added twice included)."""

from __future__ import annotations

import numpy as np

from fcinv.experiment.fold import Corrections, FoldPlan, cubic_rotations
from fcinv.experiment.volume import Volume4D, regular_edges

ROT = cubic_rotations()


def _box(ge_grid, seed=0):
    step = 0.05
    edges = [regular_edges(-0.6, 0.6, step, offset=step / 4)] * 3 + [ge_grid.energy_edges[:9]]
    shape = tuple(len(e) - 1 for e in edges)
    index = np.arange(int(np.prod(shape)))
    norm = np.random.default_rng(seed).uniform(0.2, 3.0, len(index))
    return edges, index, norm


def test_folded_variance_is_mean_over_exposure(ge_grid):
    edges, index, norm = _box(ge_grid)
    plan = FoldPlan.build(tuple(edges[:3]), ge_grid, ROT, centering="F", q_tolerance=0.05)
    lam = 2.0  # the same intensity in every bin
    rng = np.random.default_rng(1)
    reps = []
    for _ in range(300):
        vol = Volume4D.from_counts(edges, index, rng.poisson(norm * lam), norm)
        reps.append(plan.apply(vol))
    fs = reps[0]
    assert fs.exposure is not None and fs.has_exposure
    m = fs.mask
    var = np.var([r.intensity[m] for r in reps], axis=0, ddof=1)
    ratio = var / (lam / fs.exposure[m])
    assert abs(np.mean(ratio) - 1.0) < 0.05, np.mean(ratio)
    # the fold's own error (each addition of a bin counted as independent) understates it where bins
    # land twice in one pixel; the exposure does not
    naive = var / np.mean([r.error[m] ** 2 for r in reps], axis=0)
    assert np.mean(naive) > 1.1


def test_no_exposure_without_counts_or_with_a_background(ge_grid):
    edges, index, norm = _box(ge_grid)
    plan = FoldPlan.build(tuple(edges[:3]), ge_grid, ROT, centering="F", q_tolerance=0.05)
    counts = np.random.default_rng(2).poisson(norm * 2.0)
    vol = Volume4D.from_counts(edges, index, counts, norm)
    assert plan.apply(vol).exposure is not None
    assert plan.apply(vol, corrections=Corrections(background=0.1)).exposure is None
    other = Volume4D(
        edges=tuple(edges), index=vol.index, signal=vol.signal, error=0.1 + vol.error, norm=vol.norm
    )
    assert plan.apply(other).exposure is None


def test_incremental_exposure_equals_the_batch_fold(ge_grid):
    from fcinv.steering.incremental import IncrementalFold

    edges, index, norm = _box(ge_grid)
    plan = FoldPlan.build(tuple(edges[:3]), ge_grid, ROT, centering="F", q_tolerance=0.05)
    rng = np.random.default_rng(3)
    vols = [Volume4D.from_counts(edges, index, rng.poisson(norm * k), norm * k) for k in (1.0, 2.5)]
    inc = IncrementalFold(plan, Corrections(bose_temperature=5.0))
    for v in vols:
        inc.add(v)
    batch = plan.apply(Volume4D.combine(vols), corrections=Corrections(bose_temperature=5.0))
    m = batch.mask
    np.testing.assert_allclose(inc.folded().exposure[m], batch.exposure[m], rtol=1e-10)
