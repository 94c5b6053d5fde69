"""The symmetry-reduced FC space: bases, the acoustic sum rule, phonopy round trips."""

from __future__ import annotations

import numpy as np
import pytest

from _physics import SPRINGS, SUPERCELL, check_frequencies, phonopy_energies
from fcinv.crystal import Crystal, default_grid
from fcinv.errors import ForceConstantError
from fcinv.fcspace import FCSpace, pairs_from_phonopy, read_phonopy
from fcinv.units import THZ_TO_MEV


@pytest.fixture(scope="module", params=["Ge", "Nb"])
def space(request):
    return FCSpace.for_material(Crystal.from_name(request.param))


def test_names_and_counts(space):
    expected = {"Ge": 16, "Nb": 13}[space.crystal.name]
    assert space.n_params == expected
    assert space.names[:2] == ["1NN_xx", "1NN_xy"]
    assert len(set(space.names)) == space.n_params


def test_basis_obeys_site_symmetry(space):
    """Every op that maps the representative bond onto itself (or its reverse) leaves each basis tensor invariant."""
    c = space.crystal
    rots, trans = c.symmetry
    cart = c.cartesian_rotations
    x = c.positions
    checked = 0
    for shell in space.shells:
        i, j, R = shell.rep
        d = x[j] + np.array(R) - x[i]
        for W, w, C in zip(rots, trans, cart):
            y = x @ W.T + w
            gi = [
                a
                for a in range(c.n_atoms)
                if np.allclose((y[i] - x[a]) % 1 % 1, 0, atol=1e-6)
                or np.allclose(np.abs((y[i] - x[a]) - np.round(y[i] - x[a])), 0, atol=1e-6)
            ][0]
            gj = [
                a
                for a in range(c.n_atoms)
                if np.allclose(np.abs((y[j] - x[a]) - np.round(y[j] - x[a])), 0, atol=1e-6)
            ][0]
            dn = W @ d
            for B in shell.basis:
                T = C @ B @ C.T
                if (gi, gj) == (i, j) and np.allclose(dn, d):
                    np.testing.assert_allclose(T, B, atol=1e-12)
                    checked += 1
                if (gi, gj) == (j, i) and np.allclose(dn, -d):
                    np.testing.assert_allclose(T.T, B, atol=1e-12)
                    checked += 1
    assert checked > 0


def test_acoustic_sum_rule(space):
    rng = np.random.default_rng(0)
    theta = rng.normal(size=space.n_params)
    assert space.to_pairs(theta).asr_violation() < 1e-12
    fc = space.to_phonopy(theta, SUPERCELL[space.crystal.name])
    assert np.abs(fc.sum(axis=1)).max() < 1e-12
    assert np.abs(fc.sum(axis=0)).max() < 1e-12


def test_projection_roundtrip(space):
    """θ → phonopy FC array → θ exactly."""
    rng = np.random.default_rng(1)
    theta = rng.normal(size=space.n_params)
    sc = SUPERCELL[space.crystal.name]
    fc = space.to_phonopy(theta, sc)
    proj = space.project(pairs_from_phonopy(space.crystal, fc, space.crystal.to_phonopy_atoms(), sc))
    np.testing.assert_allclose(proj.theta, theta, atol=1e-8, rtol=0)
    assert proj.in_shell_residual < 1e-10 and proj.beyond_cutoff < 1e-10


def test_theta_frequencies_match_phonopy(space):
    """Frequencies of a θ-built FC set, ours against phonopy's own, at every path q."""
    c = space.crystal
    g = default_grid(c)
    theta = space.central_force_theta(SPRINGS[c.name])
    sc = SUPERCELL[c.name]
    ours = space.to_pairs(theta).frequencies(g.q_rlu)
    theirs = phonopy_energies(c, space.to_phonopy(theta, sc), sc, g.q_rlu)
    check_frequencies(ours, theirs)


def test_frequencies_invariant_under_symmetry(space):
    c = space.crystal
    theta = space.central_force_theta(SPRINGS[c.name])
    pairs = space.to_pairs(theta)
    q = np.array([[0.13, 0.41, 0.27], [0.6, 0.1, 0.05]])
    f0 = pairs.frequencies(q)
    G = c.reciprocal_lattice_rlu(1)
    for R in c.point_group_rlu[::5]:
        np.testing.assert_allclose(pairs.frequencies(q @ R.T), f0, atol=1e-9)
    for g in G[::7]:
        np.testing.assert_allclose(pairs.frequencies(q + g), f0, atol=1e-9)


def test_dft_projection(ge_crystal, ge_dft_dir):
    space = FCSpace.for_material(ge_crystal)
    pairs = read_phonopy(ge_crystal, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    proj = space.project(pairs)
    d = dict(zip(proj.names, proj.theta))
    # the nearest-neighbour bond dominates and is attractive along the bond
    assert d["1NN_xx"] < -2 and d["1NN_xy"] < -1
    assert np.abs(proj.theta[2:]).max() < np.abs(proj.theta[:2]).min()
    assert proj.in_shell_residual < 0.01  # DFT FCs are symmetric to ~1e-3
    assert 0 < proj.beyond_cutoff < 0.1  # a few percent lies beyond the 5th shell


def test_dft_frequencies_match_phonopy(ge_crystal, ge_dft_dir):
    """The DFT set read through our pairs equals phonopy's own frequencies (same masses)."""
    import phonopy

    g = default_grid(ge_crystal)
    pairs = read_phonopy(ge_crystal, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    ph = phonopy.load(
        unitcell_filename=str(ge_dft_dir / "POSCAR"),
        supercell_matrix=[4, 4, 4],
        primitive_matrix="P",
        force_constants_filename=str(ge_dft_dir / "FORCE_CONSTANTS"),
        produce_fc=False,
        symmetrize_fc=False,
        log_level=0,
    )
    ph.masses = ge_crystal.masses[: len(ph.masses)]
    dft = Crystal.from_file(ge_dft_dir / "POSCAR")
    qf = g.q_rlu @ np.linalg.inv(dft.conventional_lattice).T @ ph.primitive.cell.T
    ph.run_qpoints(qf)
    check_frequencies(pairs.frequencies(g.q_rlu), ph.qpoints.frequencies * THZ_TO_MEV)


def test_fc_array_wrong_shape(ge_crystal):
    space = FCSpace.for_material(ge_crystal)
    with pytest.raises(ForceConstantError, match=r"force-constant array has shape \(2, 100, 3, 3\)"):
        pairs_from_phonopy(ge_crystal, np.zeros((2, 100, 3, 3)), ge_crystal.to_phonopy_atoms(), (4, 4, 4))
    del space


def test_poscar_atom_count_mismatch(ge_crystal, ge_dft_dir):
    """The 8-atom conventional Ge POSCAR does not match the 2-atom FORCE_CONSTANTS file."""
    from fcinv.crystal import material_dir

    with pytest.raises(ForceConstantError, match=r"needs \(512, 512, 3, 3\).*POSCAR matches"):
        read_phonopy(
            ge_crystal, ge_dft_dir / "FORCE_CONSTANTS", material_dir("Ge") / "structure.vasp", (4, 4, 4)
        )


def test_theta_wrong_length_and_nan(ge_crystal):
    space = FCSpace.for_material(ge_crystal)
    with pytest.raises(ForceConstantError, match="theta has 3 values; the Ge space has 16"):
        space.to_pairs([1.0, 2.0, 3.0])
    bad = np.zeros(space.n_params)
    bad[4] = np.nan
    with pytest.raises(ForceConstantError, match="NaN"):
        space.to_pairs(bad)


def test_supercell_too_small(nb_crystal):
    space = FCSpace.for_material(nb_crystal)
    with pytest.raises(ForceConstantError, match="too small for the 5.7.. Å cutoff"):
        space.to_phonopy(np.zeros(space.n_params), (4, 4, 4))
