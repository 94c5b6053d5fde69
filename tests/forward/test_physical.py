"""The physical forward model: eigenvectors, structure factors, Debye–Waller, coverage route, fold, bad "
"input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import ndtr

from fcinv.crystal import Crystal, default_grid
from fcinv.experiment.fold import FoldPlan
from fcinv.experiment.instrument import Instrument
from fcinv.fcspace import FCSpace, read_phonopy
from fcinv.forward import Broadening, ForwardModel, PhysicalModel, PhysicalModelError, make_forward
from fcinv.forward.physical import Coverage, coverage_for_run, coverage_from_fold, full_coverage
from fcinv.forward.scattering import SEARS_1992_FM, ScatteringLengthError, coherent_lengths
from fcinv.units import KB_MEV_PER_K

GENERIC_Q = np.array(
    [[0.13, 0.31, 0.07], [0.5, 0.5, 0.5], [0.0, 0.4, 0.0], [0.71, 0.22, -0.37], [1.0, 0.25, 0.75]]
)


@pytest.fixture(scope="module")
def ge(ge_dft_dir):
    """The DFT Ge set on the crystal of its own POSCAR, its 5-shell space and projection."""
    crystal = Crystal.from_file(ge_dft_dir / "POSCAR", name="Ge")
    space = FCSpace(crystal, n_shells=5)
    pairs = read_phonopy(crystal, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    return {
        "crystal": crystal,
        "space": space,
        "pairs": pairs,
        "theta": space.project(pairs).theta,
        "grid": default_grid(crystal),
    }


@pytest.fixture(scope="module")
def small_cov(ge):
    """A small coverage with energy-dependent weights and off-path term positions."""
    grid = ge["grid"]
    full = full_coverage(ge["crystal"], grid, qmax=5.0)
    rng = np.random.default_rng(3)
    sel = rng.choice(full.n_terms, 600, replace=False)
    n_t = len(sel)
    t_idx = np.repeat(np.arange(n_t), 12)
    e_idx = rng.integers(0, grid.n_e, size=len(t_idx))
    key = np.unique(t_idx * grid.n_e + e_idx)
    t_idx, e_idx = key // grid.n_e, key % grid.n_e
    w = rng.uniform(0.1, 2.0, size=len(t_idx))
    # off-path positions within 0.04 r.l.u. of the pixel's point
    q = grid.q_rlu[full.pixel[sel]] + rng.uniform(-0.04, 0.04, size=(n_t, 3))
    return Coverage(
        grid,
        full.rotations,
        full.pixel[sel],
        full.rot[sel],
        full.zone[sel],
        t_idx,
        e_idx,
        w,
        source="test",
        q=q,
    )


def _euphonic_same_fc(ge, theta):
    """Euphonic force constants of exactly the model's FC set (θ on the 5-shell space, through phonopy's "
    "array)."""
    from fcinv.experiment.simulate import force_constants_from_array

    c = ge["crystal"]
    arr = ge["space"].to_phonopy(theta, np.diag([4, 4, 4]))
    return force_constants_from_array(arr, c.lattice, c.positions, c.numbers, (4, 4, 4), masses=c.masses)


def _groups(energies: np.ndarray, tol: float = 1e-4) -> list[np.ndarray]:
    """Indices of the degenerate groups of ascending energies."""
    out, cur = [], [0]
    for i in range(1, len(energies)):
        if abs(energies[i] - energies[cur[-1]]) <= tol * max(1.0, abs(energies[i])):
            cur.append(i)
        else:
            out.append(np.array(cur))
            cur = [i]
    out.append(np.array(cur))
    return out


# ------------------------------------------------------------------ eigenvectors
def test_eigenvectors_match_phonopy_projectors(ge, ge_dft_dir):
    phonopy = pytest.importorskip("phonopy")
    c = ge["crystal"]
    model = PhysicalModel.from_pairs(
        ge["space"], ge["grid"], ge["pairs"], coverage=full_coverage(c, ge["grid"], qmax=2.0), dw="none"
    )
    om, E = model.eigenvectors(model.theta0, GENERIC_Q)
    ph = phonopy.load(
        supercell_matrix=np.diag([4, 4, 4]),
        primitive_matrix="P",
        unitcell_filename=str(ge_dft_dir / "POSCAR"),
        force_constants_filename=str(ge_dft_dir / "FORCE_CONSTANTS"),
        produce_fc=False,
        log_level=0,
    )
    # phonopy's atom κ sits where fcinv's atom perm[κ] sits, up to one common translation
    r_ph = ph.primitive.scaled_positions @ ph.primitive.cell
    r_fc = c.positions @ c.lattice
    shift = r_ph[0] - r_fc[0]
    inv_a = np.linalg.inv(c.lattice)
    perm = []
    for r in r_ph:
        d = (r - shift - r_fc) @ inv_a
        perm.append(int(np.nonzero(np.all(np.abs(d - np.round(d)) < 1e-4, axis=1))[0][0]))
    qfrac = GENERIC_Q @ np.linalg.inv(c.conventional_lattice).T @ ph.primitive.cell.T
    ph.run_qpoints(qfrac, with_eigenvectors=True)
    evs = ph.qpoints.eigenvectors
    worst = []
    for iq in range(len(GENERIC_Q)):
        Eph = np.zeros_like(evs[iq])
        for k, pk in enumerate(perm):
            Eph[3 * pk : 3 * pk + 3] = evs[iq][3 * k : 3 * k + 3]
        for grp in _groups(om[0, iq]):
            P1 = E[0, iq][:, grp] @ E[0, iq][:, grp].conj().T
            P2 = Eph[:, grp] @ Eph[:, grp].conj().T
            assert np.abs(P1 - P2).max() < 1e-6, (iq, grp)
            worst.append(np.abs(P1 - P2).max())
    assert len(worst) >= 3 * len(GENERIC_Q) - 4 and max(worst) < 1e-6


def test_eigenvectors_diagonalise_the_dynamical_matrix(ge):
    model = PhysicalModel(
        ge["space"],
        ge["grid"],
        ge["theta"],
        coverage=full_coverage(ge["crystal"], ge["grid"], qmax=2.0),
        dw="none",
    )
    th = model.theta0[None] * np.array([[1.0], [1.05]])
    om, E = model.eigenvectors(th, GENERIC_Q)
    from fcinv.units import omega2_to_mev

    for b in range(2):
        D = ge["space"].to_pairs(model.full_theta(th)[b]).dynamical_matrices(GENERIC_Q)
        lam = np.einsum("qin,qij,qjn->qn", E[b].conj(), D, E[b]).real
        np.testing.assert_allclose(omega2_to_mev(lam), om[b], atol=1e-7)
        np.testing.assert_allclose(
            np.einsum("qin,qim->qnm", E[b].conj(), E[b]),
            np.broadcast_to(np.eye(6), (len(GENERIC_Q), 6, 6)),
            atol=1e-10,
        )


# --------------------------------------------------------------- structure factor
@pytest.mark.parametrize("temperature", [5.0, 300.0])
def test_structure_factor_matches_euphonic(ge, temperature):
    pytest.importorskip("euphonic")
    from fcinv.experiment.simulate import one_phonon

    efc, ecrystal = _euphonic_same_fc(ge, ge["theta"])
    model = PhysicalModel(
        ge["space"],
        ge["grid"],
        ge["theta"],
        coverage=full_coverage(ge["crystal"], ge["grid"], qmax=2.0),
        temperature=temperature,
    )
    hkl = np.array([[2.1, 0.3, 0.2], [1.5, 1.5, 1.5], [3.2, 1.1, -0.4], [0.3, 0.1, 4.05], [-2.7, 1.3, 0.9]])
    om, sf = model.structure_factor(model.theta0, hkl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e_eu, sf_eu = one_phonon(efc, ecrystal, hkl, temperature=temperature, dw_mesh=10)
    np.testing.assert_allclose(np.sort(om[0], axis=1), np.sort(e_eu, axis=1), atol=1e-6)
    np.testing.assert_allclose(sf[0].sum(axis=1), sf_eu.sum(axis=1), rtol=1e-6)
    assert np.abs(sf[0] - sf_eu).max() < 1e-6 * sf_eu.max()


def test_debye_waller_follows_theta_like_euphonic(ge):
    euphonic = pytest.importorskip("euphonic")
    from euphonic.util import mp_grid

    model = PhysicalModel(
        ge["space"],
        ge["grid"],
        ge["theta"],
        coverage=full_coverage(ge["crystal"], ge["grid"], qmax=2.0),
        temperature=300.0,
    )
    th = ge["theta"] * (1 + 0.12 * np.random.default_rng(1).uniform(-1, 1, size=ge["space"].n_params))
    assert model.is_stable(th)[0]
    efc, _ = _euphonic_same_fc(ge, th)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dw = efc.calculate_qpoint_phonon_modes(mp_grid([10] * 3), asr="reciprocal").calculate_debye_waller(
            300.0 * euphonic.ureg("K")
        )
    w_eu = np.trace(dw.debye_waller.to("angstrom**2").magnitude[0]) / 3
    w0 = model.debye_waller(model.theta0)[0]
    w = model.debye_waller(th)[0]
    assert abs(w - w0) > 5e-6  # the perturbation moves it
    assert abs(w - w_eu) < 2e-3 * w_eu  # the Γ-grid change approximation (module docstring)


# ------------------------------------------------------------- coverage route
def _numpy_reference(model: PhysicalModel, cov: Coverage, theta: np.ndarray, inst: Instrument) -> np.ndarray:
    """Plain numpy: Σ_t w_t S(Q_t, j) / Σ_t w_t with S from eigenvectors computed directly at every Q_t."""
    grid = model.grid
    e = grid.energy_edges
    om, sf = model.structure_factor(theta, cov.hkl())
    kT = KB_MEV_PER_K * model.temperature
    W = np.zeros(grid.shape)
    np.add.at(W, (cov.pixel[cov.t_idx], cov.e_idx), cov.w)
    out = np.zeros((len(theta), *grid.shape))
    for b in range(len(theta)):
        o, s = om[b][cov.t_idx], sf[b][cov.t_idx]
        sig = inst.fwhm(np.clip(o, 0, None)) / 2.3548200450309493
        nb = 1.0 / np.expm1(np.where(o > 0, o, 1.0) / kT) if kT > 0 else 0.0
        g = (ndtr((e[cov.e_idx + 1][:, None] - o) / sig) - ndtr((e[cov.e_idx][:, None] - o) / sig)) / (
            e[1] - e[0]
        )
        np.add.at(out[b], (cov.pixel[cov.t_idx], cov.e_idx), (s * (nb + 1) * g).sum(axis=1) * cov.w)
    return np.where(W > 0, out / np.where(W > 0, W, 1.0), 0.0)


@pytest.mark.parametrize(
    ("dw", "expansion", "tol"),
    [
        ("theta", "taylor", 2e-6),
        ("theta", "cumulant", 1e-5),
        ("reference", "cumulant", 2e-6),
        ("none", "taylor", 2e-6),
    ],
)
def test_precomputed_route_equals_direct_sum_over_images(ge, small_cov, dw, expansion, tol):
    """Kernels against exact exponentials: the order-6 series to rounding, the two-row cumulant form of
    the Debye–Waller change to its second-order error (measured 3.7e-7 of the peak here)."""
    inst = Instrument()
    model = PhysicalModel(
        ge["space"],
        ge["grid"],
        ge["theta"],
        coverage=small_cov,
        temperature=150.0,
        resolution=inst,
        dw=dw,
        dw_expansion=expansion,
    )
    assert model.sampling == "bins"
    th = model.theta0[None] * (1 + 0.08 * np.random.default_rng(2).uniform(-1, 1, size=(3, model.k)))
    th[0] = model.theta0
    fast = model.spectra(th)
    ref = _numpy_reference(model, small_cov, th, inst)
    assert fast.dtype == np.float32 and fast.shape == (3, *ge["grid"].shape)
    err = np.abs(fast - ref).max(axis=(1, 2)) / ref.max()
    print(f"dw={dw} {expansion}: max |fast - exact| / peak = {err.max():.2e}")
    assert err[0] < 2e-6  # at θ_ref every form is exact
    assert err.max() < tol
    assert np.array_equal(model.mask, small_cov.mask)


@pytest.mark.parametrize(("dw", "extra"), [("theta", 3), ("none", 6), ("theta", 7)])
def test_lane_batches_equal_the_one_sample_route(ge, small_cov, dw, extra):
    """A batch of LANES + extra θ (SIMD lanes; the remainder through the one-θ kernel when below
    PAD_FROM, else padded to a whole group) equals θ one at a time."""
    from fcinv.forward import _phys_lanes as pk

    model = PhysicalModel(ge["space"], ge["grid"], ge["theta"], coverage=small_cov, temperature=300.0, dw=dw)
    n = pk.LANES + extra
    th = model.theta0[None] * (1 + 0.1 * np.random.default_rng(5).uniform(-1, 1, size=(n, model.k)))
    batch = model.spectra(th)
    one = np.concatenate([model.spectra(th[i]) for i in range(n)])
    assert batch.shape == one.shape == (n, *ge["grid"].shape)
    assert np.abs(batch - one).max() <= 1e-5 * one.max()
    assert not np.array_equal(batch[0], batch[1])


def test_threads_and_batch_order_leave_the_spectra_unchanged(ge, small_cov):
    """1 and 2 numba threads (pixel ranges split by sample points) give the same spectra, and a
    permuted batch (grouped into lanes by stiffness) gives the permuted spectra, bit for bit."""
    import numba

    model = PhysicalModel(ge["space"], ge["grid"], ge["theta"], coverage=small_cov, temperature=300.0)
    th = model.theta0[None] * (1 + 0.1 * np.random.default_rng(11).uniform(-1, 1, size=(19, model.k)))
    split = model._pixel_split(2)
    pts = np.diff(model._pstart[split])
    assert split[0] == 0 and split[-1] == ge["grid"].n_q and abs(int(pts[0]) - int(pts[1])) <= 16
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = model.spectra(th)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = model.spectra(th)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(one, two)
    perm = np.random.default_rng(3).permutation(len(th))
    assert np.array_equal(model.spectra(th[perm]), one[perm])
    assert not np.array_equal(one[0], one[1])


def test_rebuilt_keeps_every_measurement_setting(ge, small_cov):
    """PhysicalModel.rebuilt (used by the shell continuation and the moment start) carries every
    setting over: the same space and θ give the same spectra; a larger space keeps the settings."""
    b = {"Ge": 9.0}
    model = PhysicalModel(
        ge["space"],
        ge["grid"],
        ge["theta"],
        coverage=small_cov,
        temperature=120.0,
        dw_expansion="taylor",
        scattering_lengths=b,
        e_min_mode=0.1,
    )
    again = model.rebuilt(model.space, model.theta_ref)
    th = model.theta0[None] * (1 + 0.05 * np.random.default_rng(5).uniform(-1, 1, size=(3, model.k)))
    assert np.array_equal(again.spectra(th), model.spectra(th))
    four = model.rebuilt(model.space, model.theta_ref, free=model.free[:4])
    th4 = np.repeat(model.theta0[None], 3, axis=0)
    th4[:, :4] = th[:, :4]
    assert np.array_equal(four.spectra(th[:, :4]), model.spectra(th4))
    big = model.rebuilt(
        FCSpace(ge["crystal"], n_shells=6), np.zeros(FCSpace(ge["crystal"], n_shells=6).n_params)
    )
    for attr in ("temperature", "dw", "dw_mesh", "dw_expansion", "e_min_mode", "sampling", "mesh"):
        assert getattr(big, attr) == getattr(model, attr), attr
    assert big.coverage is small_cov and big.scattering_lengths == b
    assert np.array_equal(big.b_fm, model.b_fm)


def test_path_sampling_puts_terms_at_the_path_points(ge, small_cov):
    inst = Instrument()
    fast = PhysicalModel(
        ge["space"],
        ge["grid"],
        ge["theta"],
        coverage=small_cov,
        temperature=5.0,
        resolution=inst,
        sampling="path",
    )
    on_path = Coverage(
        small_cov.grid,
        small_cov.rotations,
        small_cov.pixel,
        small_cov.rot,
        small_cov.zone,
        small_cov.t_idx,
        small_cov.e_idx,
        small_cov.w,
    )
    ref = _numpy_reference(fast, on_path, fast.theta0[None], inst)
    out = fast.spectra(fast.theta0)
    assert np.abs(out - ref).max() < 2e-6 * ref.max()


def test_fold_image_weights_reproduce_the_fold(ge):
    """FoldPlan.image_weights: Σ w f / Σ w per pixel equals the fold of a signal f that varies per Q-bin."""
    from fcinv.experiment.volume import Volume4D, regular_edges

    grid = ge["grid"]
    crystal = ge["crystal"]
    edges = (*(regular_edges(-2.6, 2.6, 0.05, offset=0.0125) for _ in range(3)), grid.energy_edges)
    plan = FoldPlan.build(edges[:3], grid, crystal.point_group_rlu, centering="F", q_tolerance=0.05)
    rng = np.random.default_rng(4)
    q3 = np.unique(plan.members["q3"])
    q3 = q3[rng.random(len(q3)) < 0.5]
    e = rng.integers(0, grid.n_e, size=(len(q3), 6))
    index = np.unique(q3[:, None] * grid.n_e + e)
    f = rng.uniform(0.5, 1.5, size=int(q3.max()) + 1)
    norm = rng.uniform(0.2, 3.0, size=len(index))
    vol = Volume4D(
        edges=edges, index=index, signal=f[index // grid.n_e], error=np.zeros(len(index)), norm=norm
    )
    fs = plan.apply(vol)
    for by_bin in (False, True):
        iw = plan.image_weights(vol, by_bin=by_bin)
        W = np.zeros(grid.shape)
        np.add.at(W, (iw["pixel"], iw["e"]), iw["w"])
        assert np.array_equal(W > 0, fs.mask)
        if by_bin:
            num = np.zeros(grid.shape)
            np.add.at(num, (iw["pixel"], iw["e"]), iw["w"] * f[iw["q3"]])
            np.testing.assert_allclose(num[fs.mask] / W[fs.mask], fs.intensity[fs.mask], rtol=1e-12)
    from fcinv.experiment.fold import cubic_rotations

    assert not np.allclose(cubic_rotations(), crystal.point_group_rlu)  # same group, another order
    with pytest.raises(PhysicalModelError, match="not the 48 the fold plan was built with"):
        coverage_from_fold(plan, vol, rotations=cubic_rotations())
    for sampling in ("bins", "path"):
        cov = coverage_from_fold(plan, vol, sampling=sampling)  # the plan's own rotations
        assert np.array_equal(cov.mask, fs.mask)
        np.testing.assert_allclose(cov.weight_sum[fs.mask], W[fs.mask], rtol=1e-12)


def test_model_predicts_euphonic_plus_fold_of_a_simulated_orientation(ge):
    """One simulated ARCS orientation (Euphonic S(Q, E), same FC set), folded: the model with its coverage "
    "agrees."""
    pytest.importorskip("euphonic")
    from fcinv.experiment.fold import Corrections
    from fcinv.experiment.instrument import Goniometer
    from fcinv.experiment.simulate import ExperimentConfig, simulate_experiment
    from fcinv.experiment.volume import Volume4D

    efc, ecrystal = _euphonic_same_fc(ge, ge["theta"])
    grid, crystal = ge["grid"], ge["crystal"]
    inst = Instrument(ei=40.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = simulate_experiment(
            efc,
            ecrystal,
            instrument=inst,
            goniometer=Goniometer(psi=(20.0,)),
            config=ExperimentConfig(temperature=300.0),
            region=grid,
        )
    s_mean, bg = run.meta["mean_one_phonon_mbarn_per_meV"], run.meta["config"]["background"]
    vol = Volume4D(
        edges=run.edges,
        index=run.expected_index,
        signal=(run.expected - bg) * s_mean,
        error=np.zeros(len(run.expected)),
        norm=run.total().weights,
        reciprocal_cell=run.reciprocal_cell,
    )
    plan = FoldPlan.build(run.edges[:3], grid, crystal.point_group_rlu, centering="F", q_tolerance=0.05)
    corr = Corrections(bose_temperature=300.0, q2=True, energy=True)
    cov = coverage_from_fold(plan, vol, rotations=crystal.point_group_rlu)
    for corrections in (None, corr):
        fs = plan.apply(vol, corrections=corrections)
        model = PhysicalModel(
            ge["space"],
            grid,
            ge["theta"],
            coverage=cov,
            temperature=300.0,
            resolution=inst,
            corrections=corrections,
        )
        pred = model.spectra(model.theta0)[0]
        m = fs.mask
        assert np.array_equal(m, model.mask)
        assert np.abs(pred[m] - fs.intensity[m]).max() < 1e-4 * np.abs(fs.intensity[m]).max()
    # the synthetic coverage of the same geometry (no S computed) is the fold's coverage
    run_cov = coverage_for_run(crystal, grid, ei=40.0, psi=[20.0])
    exposure = (
        run.meta["config"]["count_rate"] * run.meta["config"]["counting_time"]
    )  # the run's norm = rate·time·w
    np.testing.assert_allclose(run_cov.weight_sum * exposure, cov.weight_sum, rtol=1e-9, atol=1e-12)
    model = PhysicalModel(
        ge["space"], grid, ge["theta"], coverage=run_cov, temperature=300.0, resolution=inst
    )
    fs = plan.apply(vol)
    pred = model.spectra(model.theta0)[0]
    assert np.abs(pred[fs.mask] - fs.intensity[fs.mask]).max() < 1e-4 * fs.intensity[fs.mask].max()


def test_coverage_for_run_matches_the_fold_geometry(ge):
    grid, crystal = ge["grid"], ge["crystal"]
    one = coverage_for_run(crystal, grid, ei=40.0, psi=[20.0])
    two = coverage_for_run(crystal, grid, ei=40.0, psi=[20.0, 50.0])
    assert one.source == "run" and one.q is not None
    assert 0.2 < one.mask.mean() < two.mask.mean() <= 1.0
    assert np.all(two.mask[one.mask])
    flat = coverage_for_run(crystal, grid, ei=40.0, psi=[20.0], exposure=False, sampling="path")
    assert flat.q is None and np.array_equal(flat.mask, one.mask)


# ---------------------------------------------------------------- interface
def test_interface_matches_forward_model(ge):
    grid = ge["grid"]
    cov = full_coverage(ge["crystal"], grid, qmax=3.0)
    paper = make_forward(ge["space"], grid, ge["theta"], intensity="paper", free=ge["space"].names[:4])
    phys = make_forward(
        ge["space"],
        grid,
        ge["theta"],
        intensity="physical",
        free=ge["space"].names[:4],
        coverage=cov,
        resolution=Broadening(1.0, 0.01),
    )
    assert isinstance(paper, ForwardModel) and isinstance(phys, PhysicalModel)
    assert phys.names == paper.names and phys.k == 4
    np.testing.assert_allclose(phys.theta0, paper.theta0)
    th = np.stack([phys.theta0, phys.theta0 * 1.03])
    np.testing.assert_allclose(phys.full_theta(th), paper.full_theta(th))
    np.testing.assert_allclose(phys.frequencies(th), paper.frequencies(th), atol=1e-9)
    np.testing.assert_allclose(phys.lowest_energy(th), paper.lowest_energy(th), atol=1e-9)
    assert np.array_equal(phys.is_stable(th), paper.is_stable(th))
    out, f = phys.spectra(th, return_frequencies=True)
    assert (
        out.shape == (2, *grid.shape)
        and out.dtype == np.float32
        and np.all(np.isfinite(out))
        and out.max() > 0
    )
    np.testing.assert_allclose(f, paper.frequencies(th), atol=1e-9)
    d = phys.describe()
    assert (
        d["intensity"].startswith("physical")
        and d["coverage"]["source"] == "full"
        and d["free"] == paper.names
    )
    import json

    json.dumps(d)


def test_hotter_sample_scatters_more_at_low_energy(ge):
    cov = full_coverage(ge["crystal"], ge["grid"], qmax=3.0)
    cold = PhysicalModel(
        ge["space"], ge["grid"], ge["theta"], coverage=cov, temperature=5.0, dw="none"
    ).spectra(ge["theta"])
    hot = PhysicalModel(
        ge["space"], ge["grid"], ge["theta"], coverage=cov, temperature=300.0, dw="none"
    ).spectra(ge["theta"])
    e = ge["grid"].energy
    low = (e > 3) & (e < 10)
    ratio = hot[0][:, low].sum() / cold[0][:, low].sum()
    nb = 1.0 / np.expm1(7.0 / (KB_MEV_PER_K * 300.0)) + 1
    assert 0.7 * nb < ratio < 1.3 * nb


# ----------------------------------------------------------------- scattering
def test_sears_table_matches_euphonic_copy():
    import csv
    from pathlib import Path

    euphonic = pytest.importorskip("euphonic")
    path = Path(euphonic.__file__).parent / "isotopes" / "data" / "sears-1992.csv"
    if not path.is_file():
        pytest.skip("Euphonic's Sears table is not installed")
    rows = list(csv.reader(path.open()))[2:]
    natural = {}
    for r in rows:
        if r[2] == "":
            natural[r[0]] = complex(r[7])
    single = {r[0] for r in rows}
    for el, b in SEARS_1992_FM.items():
        if el in natural:
            assert abs(natural[el] - b) < 1e-9, el
        else:  # mono-isotopic elements are listed once, with their mass number
            assert el in single, el
            ref = complex(next(r for r in rows if r[0] == el)[7])
            assert abs(ref - b) < 1e-9, el
    np.testing.assert_allclose(coherent_lengths(["Ge", "Nb"]), [8.185, 7.054])
    with pytest.raises(ScatteringLengthError, match="no coherent scattering length for element 'Xx'"):
        coherent_lengths(["Xx"])


# ------------------------------------------------------------------ bad input
def test_bad_inputs_raise(ge):
    grid = ge["grid"]
    cov = full_coverage(ge["crystal"], grid, qmax=2.0)
    kw = {"coverage": cov}
    with pytest.raises(PhysicalModelError, match="temperature = -1"):
        PhysicalModel(ge["space"], grid, ge["theta"], temperature=-1.0, **kw)
    with pytest.raises(PhysicalModelError, match="dw = 'exact'"):
        PhysicalModel(ge["space"], grid, ge["theta"], dw="exact", **kw)
    with pytest.raises(PhysicalModelError, match="sampling = 'tube'"):
        PhysicalModel(ge["space"], grid, ge["theta"], sampling="tube", **kw)
    with pytest.raises(PhysicalModelError, match="sampling='bins' needs a coverage"):
        PhysicalModel(ge["space"], grid, ge["theta"], sampling="bins", **kw)
    other = default_grid(ge["crystal"], e_max=30.0)
    with pytest.raises(PhysicalModelError, match="coverage was made on another grid"):
        PhysicalModel(ge["space"], other, ge["theta"], **kw)
    with pytest.raises(PhysicalModelError, match="coverage is a dict"):
        PhysicalModel(ge["space"], grid, ge["theta"], coverage={})
    with pytest.raises(PhysicalModelError, match="resolution is a float"):
        PhysicalModel(ge["space"], grid, ge["theta"], resolution=1.5, **kw)
    with pytest.raises(PhysicalModelError, match="only apply to intensity='physical'"):
        make_forward(ge["space"], grid, ge["theta"], intensity="paper", temperature=5.0)
    with pytest.raises(PhysicalModelError, match="intensity = 'weird'"):
        make_forward(ge["space"], grid, ge["theta"], intensity="weird")
    with pytest.raises(PhysicalModelError, match="qmax = 0"):
        full_coverage(ge["crystal"], grid, qmax=0.0)
    with pytest.raises(PhysicalModelError, match="psi has 0 angles"):
        coverage_for_run(ge["crystal"], grid, psi=[])
    with pytest.raises(PhysicalModelError, match="coverage weights must be finite and > 0"):
        Coverage(grid, cov.rotations, cov.pixel, cov.rot, cov.zone, cov.t_idx, cov.e_idx, -cov.w)
    model = PhysicalModel(ge["space"], grid, ge["theta"], dw="none", **kw)
    with pytest.raises(PhysicalModelError, match="needs dw='theta'"):
        model.debye_waller(model.theta0)
    from fcinv.errors import ForceConstantError

    with pytest.raises(ForceConstantError, match="theta has shape"):
        model.spectra(np.zeros(3))


def test_structure_factor_matches_euphonic_nb(nb_crystal):
    """A one-atom bcc crystal (Nb, embedded reference θ): the same agreement with Euphonic."""
    pytest.importorskip("euphonic")
    from fcinv.experiment.simulate import force_constants_from_array, one_phonon
    from fcinv.reference import load_reference

    ref = load_reference("Nb")
    space, theta = ref.space, ref.theta_ref
    c = space.crystal
    efc, ecrystal = force_constants_from_array(
        space.to_phonopy(theta, np.diag([5, 5, 5])),
        c.lattice,
        c.positions,
        c.numbers,
        (5, 5, 5),
        masses=c.masses,
    )
    grid = default_grid(c)
    model = PhysicalModel(space, grid, theta, coverage=full_coverage(c, grid, qmax=2.0), temperature=300.0)
    hkl = np.array([[2.1, 0.3, 0.2], [1.5, 1.5, 1.0], [0.3, 0.1, 2.05], [-1.7, 1.3, 0.9]])
    om, sf = model.structure_factor(model.theta0, hkl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e_eu, sf_eu = one_phonon(efc, ecrystal, hkl, temperature=300.0, dw_mesh=10)
    np.testing.assert_allclose(np.sort(om[0], axis=1), np.sort(e_eu, axis=1), atol=1e-6)
    assert np.abs(sf[0] - sf_eu).max() < 1e-6 * sf_eu.max()
