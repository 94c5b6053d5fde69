"""Crystals without an inversion centre: the compiled complex Hermitian eigensolver (zincblende GaAs)."""

from __future__ import annotations

import numpy as np
import pytest

from _physics import check_frequencies, gaas_spring_model, phonopy_energies
from fcinv.forward import ForwardModel, LinearDynamics, _kernels

#: Nearest-neighbour-dominated central-force springs (eV/Å²): a stable Born–von Kármán model.
SPRINGS = {"1NN": 4.0, "2NN": 0.5, "3NN": 0.4}


@pytest.fixture(scope="module")
def gaas():
    return gaas_spring_model(SPRINGS)


def test_gaas_has_no_real_basis_and_uses_the_complex_kernel(gaas):
    crystal, space, grid, theta = gaas
    assert crystal.spacegroup == ("F-43m", 216)
    assert np.allclose(sorted(crystal.masses), [69.723, 74.9216])
    model = ForwardModel(space, grid, theta)
    assert not model.path.real
    assert model.is_stable(model.theta0)[0]


def test_gaas_frequencies_match_phonopy(gaas):
    """Reference and random θ: the compiled complex Jacobi against phonopy's own frequencies (1e-6)."""
    crystal, space, grid, theta = gaas
    model = ForwardModel(space, grid, theta)
    rng = np.random.default_rng(4)
    spread = 1 + 0.2 * rng.uniform(-1, 1, size=(4, model.k))
    samples = np.vstack([model.theta0[None], model.theta0 * spread])
    samples = samples[model.is_stable(samples)][:3]
    assert len(samples) == 3
    ours = model.frequencies(samples)
    for t, f in zip(model.full_theta(samples), ours):
        ref = phonopy_energies(crystal, space.to_phonopy(t, (4, 4, 4)), (4, 4, 4), grid.q_rlu)
        check_frequencies(f, ref, rtol=1e-6)


def test_complex_kernel_equals_lapack_eigenpairs(gaas):
    """Eigenvalues to 1e-12 of LAPACK's; vectors unitary and diagonalising D(q; θ)."""
    crystal, space, _, theta = gaas
    q = np.random.default_rng(0).uniform(-1, 1, size=(40, 3))
    dyn = LinearDynamics(space, q, theta, np.arange(space.n_params))
    th = theta[None] * (1 + 0.1 * np.random.default_rng(1).uniform(-1, 1, size=(3, space.n_params)))
    D = dyn.Mc[None] + np.einsum("bp,pqij->bqij", th, dyn.Mp)
    ref = np.linalg.eigvalsh(D)
    scale = np.abs(ref).max()
    assert np.abs(dyn.omega2(th) - ref).max() < 1e-12 * scale
    assert np.allclose(dyn.min_omega2(th), ref.min(axis=(1, 2)), rtol=0, atol=1e-12 * scale)
    vals, vecs = dyn.eigh(th)
    assert np.abs(vals - ref).max() < 1e-12 * scale
    m = D.shape[-1]
    assert np.abs(np.conj(np.swapaxes(vecs, -1, -2)) @ vecs - np.eye(m)).max() < 1e-10
    assert np.abs(D @ vecs - vecs * vals[:, :, None, :]).max() < 1e-10 * scale


def test_hermitian_jacobi_on_random_matrices():
    """The kernel itself on random Hermitian matrices, degenerate ones included."""
    rng = np.random.default_rng(2)
    m, nq = 6, 30
    x = rng.normal(size=(nq, m, m)) + 1j * rng.normal(size=(nq, m, m))
    Mc = x + np.conj(np.swapaxes(x, -1, -2))
    # a doubly degenerate spectrum at q = 0
    Q, _ = np.linalg.qr(x[0])
    Mc[0] = Q @ np.diag([1.0, 1.0, 2.0, 2.0, 3.0, -1.0]) @ np.conj(Q.T)
    Mp = np.zeros((1, nq, m, m), dtype=complex)
    th = np.zeros((1, 1))
    nblk = np.ones(nq, dtype=np.int64)  # one full block per q
    bstart = np.zeros((nq, m + 1), dtype=np.int64)
    bstart[:, 1] = m
    ref = np.linalg.eigvalsh(Mc)
    got = _kernels.eigenvalues_complex(Mc, Mp, nblk, bstart, th, 1)[0]
    assert np.abs(got - ref).max() < 1e-12 * np.abs(ref).max()
    vals, vecs = _kernels.eigh_complex(Mc, Mp, nblk, bstart, th, 1)
    assert np.abs(Mc @ vecs[0] - vecs[0] * vals[0][:, None, :]).max() < 1e-11 * np.abs(ref).max()
