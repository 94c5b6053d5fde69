"""The simulated ToF experiment on the DFT Ge force constants (skipped without the shared data)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from fcinv.errors import DataError, ForceConstantError
from fcinv.experiment.fold import cubic_rotations, fold_volume
from fcinv.experiment.instrument import E_K2, Goniometer, Instrument
from fcinv.experiment.readers import rotation_y, ub_from_vectors
from fcinv.experiment.simulate import (
    ExperimentConfig,
    SimulatedRun,
    fold_orientations,
    load_force_constants,
    one_phonon,
    simulate_experiment,
)

from .exp_helpers import ge_path_grid

pytest.importorskip("euphonic", reason="the simulated experiment needs Euphonic (the [experiment] extra)")


@pytest.fixture(scope="module")
def ge(ge_dft_dir):
    return load_force_constants(ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", [4, 4, 4])


@pytest.fixture(scope="module")
def small_run(ge, ge_grid):
    fc, crystal = ge
    return simulate_experiment(
        fc,
        crystal,
        goniometer=Goniometer.steps(0.0, 20.0, 6),
        config=ExperimentConfig(seed=5),
        region=ge_grid,
    )


def _phonopy_mev(ge_dft_dir, q_prim):
    import phonopy

    ph = phonopy.load(
        supercell_matrix=[4, 4, 4],
        primitive_matrix="P",
        unitcell_filename=str(ge_dft_dir / "POSCAR"),
        force_constants_filename=str(ge_dft_dir / "FORCE_CONSTANTS"),
        produce_fc=False,
        log_level=0,
    )
    ph.run_qpoints(np.atleast_2d(q_prim))
    return np.asarray(ph.qpoints.frequencies) * 4.135667696923859


def test_ge_geometry_from_the_poscar(ge):
    _, crystal = ge
    assert crystal.centering == "F"
    rots = cubic_rotations()
    assert len(crystal.rotations) == 48 and all(
        any(np.allclose(r, c) for c in rots) for r in crystal.rotations
    )
    np.testing.assert_allclose(np.linalg.norm(crystal.conventional_lattice, axis=1), 5.64633, atol=1e-4)
    # X = (0,1,0) r.l.u. is (1/2, 0, 1/2) of the primitive reciprocal lattice (fcc)
    np.testing.assert_allclose(crystal.rlu_to_prim_frac([[0, 1, 0]]), [[0.5, 0, 0.5]], atol=1e-12)


def test_euphonic_mode_energies_match_phonopy(ge, ge_dft_dir):
    fc, crystal = ge
    hkl = np.array([[0, 1, 0], [0.5, 0.5, 0.5], [2.3, 0.1, 1.7]])  # X, L, and a general Q far out
    energies, sf = one_phonon(fc, crystal, hkl, temperature=5.0)
    prim = np.array([[0.5, 0, 0.5], [0.5, 0.5, 0.5], [0.9, 2.0, 1.2]])  # fcc: f = (k+l, h+l, h+k)/2
    for i in range(3):
        np.testing.assert_allclose(
            np.sort(energies[i]), np.sort(_phonopy_mev(ge_dft_dir, prim[i])[0]), atol=0.05
        )
    assert np.all(sf >= 0) and np.all(np.isfinite(sf))


def test_force_constants_from_an_array_match_the_files(ge, ge_dft_dir):
    """The θ route (a full phonopy-layout FC array, e.g. FCSpace.to_phonopy) gives the same phonons."""
    from phonopy.file_IO import parse_FORCE_CONSTANTS
    from phonopy.interface.vasp import read_vasp

    from fcinv.experiment.simulate import force_constants_from_array

    fc, crystal = ge
    arr = parse_FORCE_CONSTANTS(str(ge_dft_dir / "FORCE_CONSTANTS"))
    assert arr.shape == (2, 128, 3, 3)
    cell = read_vasp(str(ge_dft_dir / "POSCAR"))
    fc2, crystal2 = force_constants_from_array(arr, cell.cell, cell.scaled_positions, cell.numbers, [4, 4, 4])
    hkl = np.array([[0.0, 1.0, 0.0], [0.3, 0.2, 0.1], [1.7, -2.2, 0.4]])
    e1, s1 = one_phonon(fc, crystal, hkl, temperature=5.0)
    e2, s2 = one_phonon(fc2, crystal2, hkl, temperature=5.0)
    np.testing.assert_allclose(e2, e1, atol=1e-6)
    np.testing.assert_allclose(s2, s1, rtol=1e-6)
    with pytest.raises(ForceConstantError, match=r"force constants have shape \(2, 100, 3, 3\)"):
        force_constants_from_array(arr[:, :100], cell.cell, cell.scaled_positions, cell.numbers, [4, 4, 4])


def test_every_entry_obeys_the_scattering_kinematics(small_run, ge):
    _, crystal = ge
    run = small_run
    inst = Instrument()
    shape = tuple(len(e) - 1 for e in run.edges)
    ub = ub_from_vectors(crystal.b_matrix(), (1, 0, 0), (0, 1, 0))
    o = np.repeat(np.arange(run.n_orientations), np.diff(run.offsets))
    ih, ik, il, ie = np.unravel_index(run.index, shape)
    cen = [0.5 * (e[1:] + e[:-1]) for e in run.edges]
    hkl = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1)
    q_lab = np.einsum("nij,nj->ni", rotation_y(run.psi[o]), hkl @ (2 * np.pi * ub).T)
    kf = np.array([0, 0, inst.ki]) - q_lab
    energy = inst.ei - E_K2 * np.sum(kf**2, axis=1)
    # the bin's energy range reaches the kinematic energy at its centre within the spread over the bin
    spread = 2 * E_K2 * np.linalg.norm(kf, axis=1) * (0.05 * 2 * np.pi / 5.6463) * np.sqrt(3) / 2
    e_lo, e_hi = run.edges[3][ie], run.edges[3][ie + 1]
    assert np.all(energy >= e_lo - spread - 1e-9) and np.all(energy <= e_hi + spread + 1e-9)
    assert np.all(inst.covers(kf))
    assert np.all(run.norm > 0) and np.all(run.counts >= 0)


def test_orientations_hold_only_measured_bins_and_sum_to_the_run(small_run):
    run = small_run
    vols = [run.orientation(j) for j in range(run.n_orientations)]
    total = run.total()
    assert all(np.all(v.norm > 0) for v in vols)  # uncovered bins are absent, never zero-norm entries
    union = np.unique(np.concatenate([v.index for v in vols]))
    np.testing.assert_array_equal(union, total.index)
    np.testing.assert_allclose(sum(v.norm.sum() for v in vols), total.norm.sum())
    np.testing.assert_array_equal(total.index, run.expected_index)
    # counts/norm scatter around the noise-free intensity (Poisson): the normalised mean agrees
    exp = run.expected_volume()
    assert np.sum(total.signal * total.norm) / np.sum(exp.signal * total.norm) == pytest.approx(1.0, abs=0.01)
    with pytest.raises(DataError, match="orientation 6 does not exist"):
        run.orientation(6)


def test_seeds_make_runs_reproducible(ge):
    fc, crystal = ge

    def run(seed):
        small = {
            "instrument": Instrument(ei=15.0, resolution="gaussian"),
            "e_edges": np.arange(0.0, 12.01, 1.0),
            "config": ExperimentConfig(seed=seed, dw_mesh=4),
        }
        return simulate_experiment(
            fc,
            crystal,
            goniometer=Goniometer.steps(30.0, 40.0, 2),
            region=ge_path_grid(e_edges=small["e_edges"]),
            **small,
        )

    a, b, c = run(5), run(5), run(6)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.index, c.index)
    assert not np.array_equal(a.counts, c.counts)


def test_run_file_round_trip(tmp_path, small_run):
    p = tmp_path / "run.h5"
    small_run.write(p, command="pytest")
    back = SimulatedRun.read(p)
    np.testing.assert_array_equal(back.index, small_run.index)
    np.testing.assert_array_equal(back.counts, small_run.counts)
    np.testing.assert_allclose(back.norm, small_run.norm, rtol=1e-6)
    np.testing.assert_array_equal(back.offsets, small_run.offsets)
    assert back.meta["seed"] == 5 and back.meta["instrument"]["ei_meV"] == 40.0
    with pytest.raises(DataError, match="expected 'fcinv-simulated-run'"):
        small_run.total().to_hdf5(tmp_path / "vol.h5")
        SimulatedRun.read(tmp_path / "vol.h5")


def test_folded_simulation_peaks_at_the_phonopy_modes(small_run, ge, ge_dft_dir):
    """The noise-free run folded onto the path: at Γ-X pixel 20 and L-W pixel 110 the intensity peaks
    at phonopy's mode energies of the DFT force constants."""
    _, crystal = ge
    grid = ge_path_grid()
    fs = fold_volume(small_run.expected_volume(), grid, crystal.rotations)
    background = small_run.meta["config"]["background"]
    e = grid.energy
    checked = 0
    for pix in (20, 110):
        h, k, l = grid.q_rlu[pix]  # noqa: E741 - the Miller indices
        modes = _phonopy_mev(ge_dft_dir, [(k + l) / 2, (h + l) / 2, (h + k) / 2])[0]
        excess = fs.intensity[pix] - background
        far = np.min(np.abs(e[:, None] - modes[None, :]), axis=1) > 4.0
        floor = max(float(np.nanmax(excess[far])), 1e-3)
        for w in modes[modes > 2.0]:
            j = int(w // 0.5)
            near = excess[max(j - 1, 0) : j + 2]
            if np.all(np.isnan(near)):
                continue
            assert np.nanmax(near) > 5 * floor, (pix, w, np.nanmax(near), floor)
            checked += 1
    assert checked >= 4


def test_full_volume_contains_the_path_tubes(ge, ge_grid):
    """region=None simulates every covered bin; the path-tube run is a subset with the same intensities."""
    fc, crystal = ge
    kw = {
        "instrument": Instrument(ei=8.0, resolution="gaussian"),
        "goniometer": Goniometer.steps(0.0, 30.0, 3),
        "config": ExperimentConfig(q_step=0.1),
        "e_edges": np.arange(0.0, 6.01, 1.0),
    }
    full = simulate_experiment(fc, crystal, region=None, **kw)
    grid = ge_path_grid(e_edges=np.arange(0.0, 6.01, 1.0))
    tubes = simulate_experiment(fc, crystal, region=grid, **kw)
    assert 0 < len(tubes.expected_index) < len(full.expected_index)
    pos = np.searchsorted(full.expected_index, tubes.expected_index)
    np.testing.assert_array_equal(full.expected_index[pos], tubes.expected_index)
    # intensities are normalised by the mean over each run's bins: compare shapes, not scales
    ratio = full.expected[pos] / tubes.expected
    assert np.std(ratio[tubes.expected > 0.5]) / np.mean(ratio) < 0.05


def test_fold_single_orientations(small_run, ge):
    _, crystal = ge
    grid = ge_path_grid()
    singles = fold_orientations(small_run, grid, crystal.rotations)
    whole = fold_volume(small_run.total(), grid, crystal.rotations)
    assert len(singles) == small_run.n_orientations
    assert all(fs.coverage < whole.coverage for fs in singles)
    assert [fs.meta["psi_deg"] for fs in singles] == small_run.psi.tolist()


def test_bad_simulation_input_is_refused(ge, ge_dft_dir, tmp_path):
    fc, crystal = ge
    with pytest.raises(DataError, match="q_step = 0"):
        ExperimentConfig(q_step=0.0)
    with pytest.raises(DataError, match="energy transfer must stay below Ei"):
        simulate_experiment(fc, crystal, e_edges=np.arange(50.0, 60.0, 1.0))
    with pytest.raises(ForceConstantError, match="does not exist"):
        load_force_constants(tmp_path / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", [4, 4, 4])
    with pytest.raises(ForceConstantError, match="phonopy could not read"):
        load_force_constants(ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", [3, 3, 3])
    with pytest.raises(ForceConstantError, match="is not 3 integers"):
        load_force_constants(ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", [4, 4])


@pytest.mark.slow
def test_default_full_ge_run_meets_the_time_budget(ge, ge_grid):
    """The paper's run (5 K, 40 meV, 120 orientations): simulate <= 60 s, fold <= 30 s on 2 cores."""
    fc, crystal = ge
    t0 = time.perf_counter()
    run = simulate_experiment(fc, crystal, region=ge_grid)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    fs = fold_volume(run.total(), ge_grid, crystal.rotations)
    t_fold = time.perf_counter() - t0
    assert run.n_orientations == 120 and fs.coverage > 0.95
    assert t_sim <= 60.0, t_sim
    assert t_fold <= 30.0, t_fold
