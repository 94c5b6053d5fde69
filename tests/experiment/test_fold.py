"""Brillouin-zone folding: known spectra come back, symmetry images land together, data/norm combine."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.errors import DataError, GridError
from fcinv.experiment.fold import (
    Corrections,
    FoldPlan,
    cubic_rotations,
    fold_volume,
    is_zone_centre,
    path_segments,
    segment_images,
    tube_bins,
    zone_centres,
)
from fcinv.experiment.volume import Volume4D, regular_edges
from fcinv.grid import SpectrumGrid

from .exp_helpers import ge_path_grid

ROT = cubic_rotations()


def _index(edges, hkl, e_bin):
    """Flat 4D index of bins containing the points ``hkl`` at energy bin ``e_bin``."""
    shape = tuple(len(e) - 1 for e in edges)
    ijk = [np.searchsorted(edges[a], hkl[:, a], side="right") - 1 for a in range(3)]
    return np.ravel_multi_index((*ijk, np.broadcast_to(e_bin, len(hkl))), shape)


def test_cubic_rotations_are_the_48_signed_permutations():
    assert ROT.shape == (48, 3, 3)
    assert len({tuple(m.ravel()) for m in ROT}) == 48
    for m in ROT:
        np.testing.assert_allclose(m @ m.T, np.eye(3))
        assert set(np.abs(m).sum(axis=0)) == {1.0}


@pytest.mark.parametrize(
    "centering, point, expected",
    [
        ("F", (2, 0, 0), True),
        ("F", (1, 1, 1), True),
        ("F", (1, 1, 0), False),
        ("F", (2, 1, 1), False),
        ("I", (1, 1, 0), True),
        ("I", (1, 0, 0), False),
        ("P", (1, 0, 0), True),
    ],
)
def test_zone_centres_follow_the_lattice_centering(centering, point, expected):
    assert bool(is_zone_centre(np.array([point]), centering)[0]) is expected
    zc = zone_centres(np.array([-2, -2, -2]), np.array([2, 2, 2]), centering)
    assert (tuple(float(x) for x in point) in {tuple(z) for z in zc}) is expected


def test_path_segments_and_images_of_the_ge_path(ge_grid):
    segs = path_segments(ge_grid)
    assert [s.n for s in segs] == [40, 10, 30, 20, 20, 20]
    np.testing.assert_allclose(segs[0].start, [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(segs[0].step, [0, 0.025, 0], atol=1e-12)
    np.testing.assert_allclose(segs[2].start, [0.75, 0.75, 0], atol=1e-12)
    images = segment_images(segs, ROT)
    # Γ-X has 6 distinct images (±x, ±y, ±z); Γ-L has 8
    assert int(np.sum(images.segment == 0)) == 6
    assert int(np.sum(images.segment == 3)) == 8
    # without segment_bins the segments are found from the step vectors
    bare = SpectrumGrid(q_rlu=ge_grid.q_rlu, energy_edges=ge_grid.energy_edges)
    assert [s.n for s in path_segments(bare)] == [40, 10, 30, 20, 20, 20]


def test_path_segment_with_one_bin_is_refused():
    grid = SpectrumGrid(
        q_rlu=np.array([[0.0, 0.5, 0.0], [0.1, 0.1, 0.1], [0.2, 0.2, 0.2]]),
        energy_edges=np.arange(3.0),
        segment_bins=(1, 2),
    )
    with pytest.raises(GridError, match="at least 2 bins per segment"):
        path_segments(grid)


def test_fold_returns_a_known_spectrum_on_the_covered_pixels():
    """A synthetic 4D volume built from a known I(q, E): every bin sits exactly at G + g·q_i of a
    path pixel i and carries I[i, :]; folding must return I on every pixel."""
    grid = ge_path_grid(e_edges=np.arange(0.0, 5.0 + 1e-9, 1.0))
    rng = np.random.default_rng(7)
    truth = rng.uniform(1.0, 2.0, grid.shape)
    zones = np.array([[0, 0, 0], *[[a, b, c] for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]], float)
    # every image point: pixel i, rotation g, zone G -> Q = G + g q_i (on the 0.0125 lattice)
    q = np.einsum("gij,nj->gni", ROT, grid.q_rlu)  # (48, n_q, 3)
    pts = (zones[:, None, None, :] + q[None]).reshape(-1, 3)
    pix = np.broadcast_to(np.arange(grid.n_q), (len(zones), len(ROT), grid.n_q)).reshape(-1)
    key = np.round(pts / 0.0125).astype(np.int64)
    _, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.ravel()
    # drop points produced by two different pixels
    clash = np.zeros(len(first), bool)
    np.logical_or.at(clash, inv, pix != pix[first][inv])
    pts, pix = pts[first][~clash], pix[first][~clash]
    step = 0.0125
    edges = [regular_edges(-2.3, 2.3, step, offset=0.0)] * 3 + [grid.energy_edges]
    n_e = grid.n_e
    index = np.concatenate([_index(edges, pts, e) for e in range(n_e)])
    signal = np.concatenate([truth[pix, e] for e in range(n_e)])
    vol = Volume4D(
        edges=tuple(edges), index=index, signal=signal, error=0.01 * signal, norm=np.ones(len(signal))
    )
    fs = fold_volume(vol, grid, ROT, centering="F", q_tolerance=0.004)
    assert fs.mask.all()
    np.testing.assert_allclose(fs.intensity, truth, rtol=1e-12)
    assert fs.meta["n_zones_with_data"] >= 9  # boundary points also belong to neighbouring zones
    # every pixel gathered bins from several images and zones
    assert fs.n_contrib.min() >= 2


def test_symmetry_equivalent_points_land_on_the_same_path_pixel(ge_grid):
    """g·Q + G for all 48 g and several zones fold onto the one pixel that Q itself lands on."""
    step = 0.025
    edges = [regular_edges(-3.1, 3.1, step, offset=step / 2)] * 3 + [ge_grid.energy_edges]
    plan = FoldPlan.build(tuple(edges[:3]), ge_grid, ROT, centering="F", q_tolerance=0.05)
    q0 = np.array([0.0125, 0.3125, 0.0125])  # near Γ-X, along-path coordinate 12.5 bins -> pixel 12
    seen = set()
    for G in ([0, 0, 0], [1, 1, 1], [2, 0, 0], [-1, 1, -1], [0, 2, 2]):
        for g in ROT:
            Q = np.asarray(G, float) + g @ q0
            idx = _index(edges, Q[None], 10)
            vol = Volume4D(edges=tuple(edges), index=idx, signal=[3.0], error=[0.1], norm=[1.0])
            fs = plan.apply(vol)
            hit = np.argwhere(fs.mask)
            assert hit.tolist() == [[12, 10]], (G, g.tolist())
            assert fs.intensity[12, 10] == pytest.approx(3.0)
            seen.add(tuple(np.round(Q, 4)))
    assert len(seen) == 5 * 24  # 24 distinct images of q0 per zone (q0 has a mirror symmetry)


def test_each_bin_lands_on_at_most_one_pixel_per_image_and_zone(ge_grid):
    edges = [regular_edges(-2.1, 2.1, 0.05, offset=0.0125)] * 3
    images = segment_images(path_segments(ge_grid), ROT)
    zones = zone_centres(np.full(3, -3.0), np.full(3, 3.0), "F")
    mem = tube_bins(tuple(edges), images, zones, 0.05)
    key = np.stack([mem["q3"], mem["image"], mem["zone"]], axis=1)
    assert len(np.unique(key, axis=0)) == len(key)
    assert mem["pixel"].min() >= 0 and mem["pixel"].max() < ge_grid.n_q


def test_data_and_normalisation_are_summed_separately(ge_grid):
    step = 0.025
    edges = [regular_edges(-1.1, 1.1, step, offset=step / 2)] * 3 + [ge_grid.energy_edges]
    q0 = np.array([0.0125, 0.3125, 0.0125])
    pts = np.array([q0, [-0.0125, 0.3125, 0.0125], [0.0125, 0.3125, -0.0125]])  # same pixel, three bins
    idx = _index(edges, pts, 4)
    sig, err, nrm = np.array([1.0, 4.0, 2.0]), np.array([0.1, 0.2, 0.3]), np.array([1.0, 3.0, 0.5])
    fs = fold_volume(Volume4D(edges=tuple(edges), index=idx, signal=sig, error=err, norm=nrm), ge_grid, ROT)
    assert fs.intensity[12, 4] == pytest.approx(np.sum(sig * nrm) / nrm.sum())
    assert fs.error[12, 4] == pytest.approx(np.sqrt(np.sum((err * nrm) ** 2)) / nrm.sum())
    assert fs.n_contrib[12, 4] == 3
    assert np.isnan(fs.intensity[11, 4]) and not fs.mask[11, 4]


def test_volume_energy_bins_finer_than_the_grid_are_summed(ge_grid):
    step = 0.025
    e_fine = np.arange(0.0, 40.0 + 1e-9, 0.25)
    edges = [regular_edges(-1.1, 1.1, step, offset=step / 2)] * 3 + [e_fine]
    q0 = np.array([0.0125, 0.3125, 0.0125])
    idx = np.concatenate(
        [_index(edges, q0[None], 8), _index(edges, q0[None], 9)]
    )  # 2.0-2.25 and 2.25-2.5 meV
    fs = fold_volume(
        Volume4D(edges=tuple(edges), index=idx, signal=[1.0, 3.0], error=[0.1, 0.1], norm=[1.0, 1.0]),
        ge_grid,
        ROT,
    )
    assert fs.mask.sum() == 1 and fs.intensity[12, 4] == pytest.approx(2.0)


def test_corrections_and_qmod_range(ge_grid):
    step = 0.025
    edges = [regular_edges(-1.1, 1.1, step, offset=step / 2)] * 3 + [ge_grid.energy_edges]
    q0 = np.array([0.0125, 0.3125, 0.0125])
    idx = _index(edges, q0[None], 20)  # 10-10.5 meV
    rc = 2 * np.pi / 5.65 * np.eye(3)
    vol = Volume4D(edges=tuple(edges), index=idx, signal=[2.0], error=[0.2], norm=[1.0], reciprocal_cell=rc)
    q2 = float(np.sum((q0 @ rc) ** 2))
    e = 10.25
    bose = -np.expm1(-e / (0.08617333262 * 100.0))
    fs = fold_volume(
        vol, ge_grid, ROT, corrections=Corrections(background=0.5, bose_temperature=100.0, q2=True)
    )
    assert fs.intensity[12, 20] == pytest.approx((2.0 - 0.5) * bose / q2)
    assert fs.meta["corrections"] == ["background -0.5", "bose T=100 K", "divide by |Q|^2"]
    assert fold_volume(vol, ge_grid, ROT).meta["corrections"] == []
    with pytest.raises(DataError, match="nothing of the volume lands on the path"):
        fold_volume(vol, ge_grid, ROT, qmod_range=(2.0, 5.0))


def test_zones_are_ranked_and_thresholded(ge_grid):
    step = 0.025
    edges = [regular_edges(-2.1, 2.1, step, offset=step / 2)] * 3 + [ge_grid.energy_edges]
    # zone 000: pixel 12 at 3 energies; zone 111: pixel 12 at 1 energy
    q0 = np.array([0.0125, 0.3125, 0.0125])
    idx = np.concatenate([_index(edges, q0[None], e) for e in (1, 2, 3)] + [_index(edges, (q0 + 1)[None], 5)])
    vol = Volume4D(edges=tuple(edges), index=idx, signal=np.ones(4), error=np.ones(4), norm=np.ones(4))
    fs = fold_volume(vol, ge_grid, ROT)
    zones = fs.meta["zones"]
    assert [z["G"] for z in zones] == [[0, 0, 0], [1, 1, 1]]
    assert zones[0]["coverage"] > zones[1]["coverage"]
    assert fs.mask.sum() == 4
    cut = fold_volume(vol, ge_grid, ROT, min_zone_coverage=2.5 / ge_grid.n_q / ge_grid.n_e)
    assert cut.mask.sum() == 3 and [z["used"] for z in cut.meta["zones"]] == [True, False]


def test_fold_plan_refuses_another_grid_and_bad_parameters(ge_grid):
    edges = [regular_edges(-1.1, 1.1, 0.05, offset=0.0125)] * 3
    plan = FoldPlan.build(tuple(edges), ge_grid, ROT)
    other = [regular_edges(-1.2, 1.2, 0.05, offset=0.0125)] * 3 + [ge_grid.energy_edges]
    vol = Volume4D(edges=tuple(other), index=[5], signal=[1.0], error=[1.0])
    with pytest.raises(DataError, match="differs from the fold plan"):
        plan.apply(vol)
    with pytest.raises(DataError, match="q_tolerance = 2"):
        fold_volume(vol, ge_grid, ROT, q_tolerance=2.0)
    with pytest.raises(DataError, match="centering 'Q' is unknown"):
        fold_volume(vol, ge_grid, ROT, centering="Q")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="rotations have shape"):
        fold_volume(vol, ge_grid, np.eye(3))
    with pytest.raises(DataError, match="min_zone_coverage = 1.5"):
        fold_volume(vol, ge_grid, ROT, min_zone_coverage=1.5)


def test_tube_enumeration_fast_path_matches_the_general_one(ge_grid):
    from fcinv.experiment import fold as fold_mod

    edges = [regular_edges(-2.1, 2.1, 0.05, offset=0.0125)] * 3
    cen = [0.5 * (e[1:] + e[:-1]) for e in edges]
    images = segment_images(path_segments(ge_grid), ROT)
    zones = zone_centres(np.full(3, -3.0), np.full(3, 3.0), "F")
    shifts = fold_mod._regular_shifts(cen, zones)
    assert shifts is not None
    fast = fold_mod._tube_bins_regular(cen, images, zones, shifts, 0.05)
    slow = fold_mod._tube_bins_general(cen, images, zones, 0.05)

    def rows(m):
        return np.unique(np.stack([m["q3"], m["pixel"], m["zone"], m["image"]], axis=1), axis=0)

    np.testing.assert_array_equal(rows(fast), rows(slow))
    assert len(fast["q3"]) > 10_000
    # an uneven axis takes the general path
    uneven = [np.sort(np.r_[e[:5], e[5:] + 0.001]) for e in edges]
    assert fold_mod._regular_shifts([0.5 * (e[1:] + e[:-1]) for e in uneven], zones) is None


def test_helper_grid_is_the_package_default_ge_grid(ge_grid):
    """The test helper builds pathSQE's Ge path by hand; fcinv.crystal must give the same grid."""
    from fcinv.crystal import Crystal, default_grid

    lead = default_grid(Crystal.from_name("Ge"))
    assert lead.same_as(ge_grid)
    assert lead.segment_bins == ge_grid.segment_bins and lead.labels == ge_grid.labels
