"""The supercell (Wigner–Seitz) space: it holds a phonopy supercell set exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fcinv.crystal import Crystal
from fcinv.errors import ForceConstantError
from fcinv.fcspace import FCSpace, pairs_from_phonopy, read_phonopy
from fcinv.fcspace.supercell import parse_supercell
from fcinv.units import THZ_TO_MEV

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ge_dft_pathsqe"


def _phonopy_thz(crystal, fc, smat, q_rlu, unitcell=None, fc_file=None):
    import phonopy

    if fc_file is not None:
        ph = phonopy.load(
            supercell_matrix=np.diag(smat),
            primitive_matrix="P",
            unitcell_filename=str(unitcell),
            force_constants_filename=str(fc_file),
            produce_fc=False,
            log_level=0,
        )
    else:
        ph = phonopy.Phonopy(
            crystal.to_phonopy_atoms(), supercell_matrix=np.diag(smat), primitive_matrix="P", log_level=0
        )
        ph.force_constants = fc
    ph.masses = crystal.masses  # the same masses as fcinv's, so only the force constants differ
    ph.run_qpoints(crystal.rlu_to_prim_frac(q_rlu))
    return np.sort(np.asarray(ph.qpoints.frequencies, float), axis=1)


@pytest.fixture(scope="module", params=[("Ge", 3), ("Nb", 3), ("Ge", 2)])
def case(request):
    name, n = request.param
    crystal = Crystal.from_name(name)
    return crystal, (n, n, n), FCSpace.for_supercell(crystal, (n, n, n))


def test_orbits_are_the_ws_cell_and_names_match_distance_shells(case):
    crystal, smat, space = case
    assert space.supercell is not None and space.label == "x".join(map(str, smat))
    # the shells inside the cell are the distance spaces' shells of the same name, same bond and basis
    n_common = min(5, len({round(s.distance, 3) for s in space.shells}))
    ref = FCSpace(crystal, n_shells=n_common)
    mine = {s.name: s for s in space.shells}
    for s in ref.shells:
        if s.name in mine:
            assert np.allclose(mine[s.name].rep_vector, s.rep_vector)
            assert mine[s.name].components == s.components
    assert space.names[:2] == ["1NN_xx", "1NN_xy"]
    # strictly inside: shorter than half the shortest supercell translation; every kept orbit has m >= 1
    half = 0.5 * min(np.linalg.norm(np.array(smat)[:, None] * crystal.lattice, axis=1))
    for s in space.shells:
        m = space.multiplicity[s.name]
        assert m >= 1
        if s.distance < half - 1e-3:
            assert m == 1


def test_random_symmetric_set_round_trips(case):
    """A supercell set made from random symmetric θ is held exactly: projected back, it gives the same set,
    and the projection's D(q) is phonopy's own D(q) of that set at every q."""
    crystal, smat, space = case
    rng = np.random.default_rng(3)
    theta = rng.normal(size=space.n_params) * 0.2
    theta[:2] = [-3.0, -2.0]  # a stiff nearest-neighbour shell, so the set is mostly stable
    fc = space.to_phonopy(theta, smat)
    proj = space.project(pairs_from_phonopy(crystal, fc, crystal.to_phonopy_atoms(), smat))
    assert proj.in_shell_residual < 1e-12 and proj.beyond_cutoff == 0.0
    assert np.abs(space.to_phonopy(proj.theta, smat) - fc).max() < 1e-12
    interior = [k for k, n in enumerate(space.names) if space.multiplicity[n.split("_")[0]] == 1]
    assert np.abs(proj.theta[interior] - theta[interior]).max() < 1e-12
    q = np.random.default_rng(0).uniform(-1.0, 1.0, (30, 3))
    ours = space.to_pairs(proj.theta).dynamical_matrices(q)
    w_ours = np.sort(np.linalg.eigvalsh(ours), axis=1)
    w_file = np.sort(
        np.linalg.eigvalsh(
            pairs_from_phonopy(crystal, fc, crystal.to_phonopy_atoms(), smat).dynamical_matrices(q)
        ),
        axis=1,
    )
    assert np.abs(w_ours - w_file).max() < 1e-10 * max(1.0, np.abs(w_file).max())
    # and at the supercell's own (commensurate) q the original θ's D(q) is the set's too
    g = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [1, 2, 0]], float) / smat[0]
    q_comm = g @ np.linalg.inv(crystal.lattice).T @ crystal.conventional_lattice.T  # primitive frac → r.l.u.
    a = np.sort(np.linalg.eigvalsh(space.to_pairs(theta).dynamical_matrices(q_comm)), axis=1)
    b = np.sort(np.linalg.eigvalsh(space.to_pairs(proj.theta).dynamical_matrices(q_comm)), axis=1)
    assert np.abs(a - b).max() < 1e-10 * max(1.0, np.abs(a).max())


def test_one_line_errors():
    ge = Crystal.from_name("Ge")
    with pytest.raises(ForceConstantError, match="breaks the symmetry"):
        FCSpace.for_supercell(ge, (2, 2, 3))
    with pytest.raises(ForceConstantError, match="too small"):
        FCSpace.for_supercell(ge, (1, 1, 1))
    with pytest.raises(ForceConstantError, match="not several"):
        FCSpace(ge, n_shells=5, supercell=(3, 3, 3))
    with pytest.raises(ForceConstantError, match="neither a shell count"):
        parse_supercell("4x4")
    assert parse_supercell(11) is None and parse_supercell("11") is None
    assert parse_supercell("4x4x4").tolist() == np.diag([4, 4, 4]).tolist()


@pytest.mark.skipif(
    not (SHARED / "FORCE_CONSTANTS").is_file(), reason="the DFT Ge set (../shared/data) is absent"
)
def test_dft_ge_file_is_held_exactly():
    """The 4×4×4 space's projection of the DFT Ge file is phonopy's own model of it."""
    ge = Crystal.from_name("Ge")
    space = FCSpace.for_supercell(ge, (4, 4, 4))
    assert space.n_params == 55
    assert space.multiplicity == {
        **{f"{k}NN": 1 for k in range(1, 9)},
        "9NN": 2,
        "10NN": 2,
        "11NN": 2,
        "12NN": 3,
        "13NN": 4,
        "15NN": 3,
        "19NN": 6,
    }
    # 11 shells are the first 12 orbits, with the same names and bonds
    s11 = FCSpace(ge, n_shells=11)
    assert space.names[: s11.n_params] == s11.names
    pairs = read_phonopy(ge, SHARED / "FORCE_CONSTANTS", SHARED / "POSCAR", (4, 4, 4))
    proj = space.project(pairs)
    assert proj.beyond_cutoff == 0.0
    q = np.random.default_rng(0).uniform(-1.0, 1.0, (60, 3))
    truth = _phonopy_thz(ge, None, (4, 4, 4), q, SHARED / "POSCAR", SHARED / "FORCE_CONSTANTS")
    ours = np.sort(space.to_pairs(proj.theta).frequencies(q) / THZ_TO_MEV, axis=1)
    assert np.abs(ours - truth).max() < 1e-5
    # the 11-shell projection is 1000x further away
    p11 = s11.project(pairs)
    f11 = np.sort(s11.to_pairs(p11.theta).frequencies(q) / THZ_TO_MEV, axis=1)
    assert np.sqrt(np.mean((f11 - truth) ** 2)) > 1e-3
    # written back as a phonopy set on the same supercell: phonopy's dispersion of it is the file's
    back = _phonopy_thz(ge, space.to_phonopy(proj.theta, (4, 4, 4)), (4, 4, 4), q)
    assert np.abs(back - truth).max() < 1e-5
