"""The batched forward model: parity with phonopy, backends, gradients, stability, broadening."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _physics import SPRINGS, SUPERCELL, check_frequencies, phonopy_energies
from fcinv.crystal import Crystal, default_grid
from fcinv.errors import ForceConstantError
from fcinv.fcspace import FCSpace, read_phonopy
from fcinv.forward import Broadening, ForwardModel
from fcinv.units import THZ_TO_MEV


@pytest.fixture(scope="module", params=["Ge", "Nb"])
def setup(request):
    c = Crystal.from_name(request.param)
    space = FCSpace.for_material(c)
    grid = default_grid(c)
    theta = space.central_force_theta(SPRINGS[c.name])
    return c, space, grid, theta


def stable_samples(model, n, spread, seed):
    rng = np.random.default_rng(seed)
    t = model.theta0 * (1 + spread * rng.uniform(-1, 1, size=(4 * n, model.k)))
    return t[model.is_stable(t)][:n]


def test_reference_and_random_theta_match_phonopy(setup):
    """Frequencies at every path q equal phonopy's for full FC sets made from θ (reference and random stable θ)."""
    c, space, grid, theta = setup
    model = ForwardModel(space, grid, theta, free=space.names[:6])
    samples = np.vstack([model.theta0[None], stable_samples(model, 3, 0.3, seed=2)])
    assert len(samples) == 4
    ours = model.frequencies(samples)
    for t, f in zip(model.full_theta(samples), ours):
        fc = space.to_phonopy(t, SUPERCELL[c.name])
        check_frequencies(f, phonopy_energies(c, fc, SUPERCELL[c.name], grid.q_rlu))


def test_dft_reference_matches_phonopy(ge_crystal, ge_dft_dir):
    """The real DFT Ge set as D_ref: at θ_ref the model reproduces phonopy's frequencies; perturbed θ moves them."""
    import phonopy

    space = FCSpace.for_material(ge_crystal)
    grid = default_grid(ge_crystal)
    pairs = read_phonopy(ge_crystal, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    model = ForwardModel.from_pairs(space, grid, pairs, free=space.names[:8])
    ph = phonopy.load(
        unitcell_filename=str(ge_dft_dir / "POSCAR"),
        supercell_matrix=[4, 4, 4],
        primitive_matrix="P",
        force_constants_filename=str(ge_dft_dir / "FORCE_CONSTANTS"),
        produce_fc=False,
        symmetrize_fc=False,
        log_level=0,
    )
    ph.masses = np.full(len(ph.masses), ge_crystal.masses[0])
    dft = Crystal.from_file(ge_dft_dir / "POSCAR")
    ph.run_qpoints(grid.q_rlu @ np.linalg.inv(dft.conventional_lattice).T @ ph.primitive.cell.T)
    check_frequencies(model.frequencies(model.theta0)[0], ph.qpoints.frequencies * THZ_TO_MEV)
    # a perturbation of θ changes D by exactly Σ Δθ_p B_p (checked against an independent dense build)
    delta = np.zeros(model.k)
    delta[0], delta[3] = 0.2, -0.05
    D = pairs.dynamical_matrices(grid.q_rlu)
    for p in (0, 3):
        D = D + delta[p] * space.unit_pairs()[model.free_idx[p]].dynamical_matrices(grid.q_rlu)
    from fcinv.units import omega2_to_mev

    check_frequencies(model.frequencies(model.theta0 + delta)[0], omega2_to_mev(np.linalg.eigvalsh(D)))


def test_numpy_and_torch_agree(setup):
    c, space, grid, theta = setup
    model = ForwardModel(space, grid, theta, free=space.names[:5], broadening=Broadening(1.0, 0.02))
    t = stable_samples(model, 4, 0.3, seed=3)
    spec, freqs = model.spectra(t, return_frequencies=True)
    tf = model.torch()
    with torch.no_grad():
        spec_t = tf(torch.as_tensor(t)).numpy()
        e_t = tf.energies(torch.as_tensor(t)).numpy()
    np.testing.assert_allclose(e_t, freqs, atol=1e-9)
    np.testing.assert_allclose(spec_t, spec, atol=2e-6)


def test_torch_gradient_matches_finite_differences(setup):
    c, space, grid, theta = setup
    model = ForwardModel(space, grid, theta, free=space.names[:4])
    tf = model.torch()
    t0 = torch.tensor(model.theta0[None], requires_grad=True)
    weights = torch.as_tensor(np.random.default_rng(0).normal(size=(grid.n_q, grid.n_e)))
    loss = (tf(t0)[0] * weights).sum()
    (grad,) = torch.autograd.grad(loss, t0)
    h = 1e-6
    fd = []
    for p in range(model.k):
        tp, tm = t0.detach().clone(), t0.detach().clone()
        tp[0, p] += h
        tm[0, p] -= h
        with torch.no_grad():
            fd.append(((tf(tp)[0] - tf(tm)[0]) * weights).sum().item() / (2 * h))
    np.testing.assert_allclose(grad[0].numpy(), fd, rtol=1e-5, atol=1e-6)


def test_spectrum_area_and_shape(setup):
    """Every mode has weight 1: a spectrum integrates to 3n per q (minus what falls outside the energy window)."""
    c, space, grid, theta = setup
    model = ForwardModel(space, grid, theta, free=space.names[:2])
    spec, f = model.spectra(model.theta0, return_frequencies=True)
    assert spec.shape == (1, grid.n_q, grid.n_e) and spec.dtype == np.float32
    inside = (f[0] > 3.0) & (f[0] < grid.energy_edges[-1] - 3.0)
    rows = np.all(inside, axis=1)
    np.testing.assert_allclose(spec[0][rows].sum(axis=1), c.n_modes, atol=1e-5)


def test_stability(setup):
    c, space, grid, theta = setup
    model = ForwardModel(space, grid, theta, free=["1NN_xx", "1NN_xy"])
    assert model.is_stable(model.theta0)[0]
    bad = model.theta0 * np.array([-1.0, -1.0])  # repulsive nearest-neighbour springs
    assert not model.is_stable(bad)[0]
    assert model.lowest_energy(bad)[0] < -1.0


def test_frequencies_off_path(setup):
    c, space, grid, theta = setup
    model = ForwardModel(space, grid, theta, free=space.names[:3])
    q = np.array([[0.1, 0.2, 0.3]])
    np.testing.assert_allclose(
        model.frequencies(model.theta0, q)[0], space.to_pairs(theta).frequencies(q), atol=1e-9
    )


def test_bad_theta(ge_crystal):
    space = FCSpace.for_material(ge_crystal)
    model = ForwardModel(
        space,
        default_grid(ge_crystal),
        space.central_force_theta({"1NN": 6.0, "2NN": 0.6}),
        free=space.names[:8],
    )
    with pytest.raises(ForceConstantError, match=r"theta has shape \(7,\); the model varies 8 parameters"):
        model.spectra(np.zeros(7))
    t = np.tile(model.theta0, (3, 1))
    t[2, 1] = np.nan
    with pytest.raises(ForceConstantError, match="theta row 2 contains NaN"):
        model.spectra(t)
    with pytest.raises(ForceConstantError, match="unknown force-constant parameter '9NN_xx'"):
        ForwardModel(space, model.grid, model.theta_ref, free=["9NN_xx"])
