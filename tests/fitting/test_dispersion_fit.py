"""Fit of θ to dispersion points: recovery with χ²/dof ≈ 1, branch labels, the CSV reader and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.fitting import DispersionPoints, FitError, fit_dispersion, read_points
from fcinv.fitting.dispersion_fit import model_energies, scaled_start, write_points
from fcinv.units import THZ_TO_MEV

from .fit_helpers import SPRINGS


@pytest.fixture(scope="module")
def nb_truth():
    """A stable Nb θ with all 13 parameters non-trivial (springs plus a seeded perturbation)."""
    from fcinv.crystal import Crystal
    from fcinv.fcspace import FCSpace
    from fcinv.forward import LinearDynamics, mesh_qpoints

    space = FCSpace.for_material(Crystal.from_name("Nb"))
    rng = np.random.default_rng(3)
    base = space.central_force_theta(SPRINGS["Nb"])
    truth = base + 0.05 * np.abs(base).max() * rng.normal(size=space.n_params)
    dyn = LinearDynamics(space, mesh_qpoints(space, 6), truth, np.arange(space.n_params))
    assert dyn.min_omega2(truth[None])[0] > 0
    return space, truth


def make_points(space, truth, n, sigma, seed, *, labelled=False, reference=None, theta_ref=None):
    rng = np.random.default_rng(seed)
    q = rng.uniform(-1, 1, (n, 3))
    e = model_energies(space, truth, q, reference=reference, theta_ref=theta_ref)
    b = rng.integers(0, e.shape[1], n)
    keep = e[np.arange(n), b] > 2.0  # triple-axis points are rarely below a few meV
    q, b = q[keep], b[keep]
    s = np.full(len(q), sigma)
    en = e[keep][np.arange(len(q)), b] + s * rng.normal(size=len(q))
    return DispersionPoints(q, en, s, b if labelled else None)


def test_recovers_theta_with_chi2_near_one(nb_truth):
    """Every Nb parameter free, start from a scaled spring model: truth within 5σ, χ²/dof within its spread of 1."""
    space, truth = nb_truth
    pts = make_points(space, truth, 400, 0.15, seed=1)
    start = scaled_start(space, pts, space.central_force_theta({"1NN": 1.0, "2NN": 0.5}))
    res = fit_dispersion(space, pts, start, free="all")
    assert res.success, res.message
    assert res.names == space.names
    assert abs(res.chi2_dof - 1.0) < 4 * np.sqrt(2.0 / res.dof), res.chi2_dof
    pulls = (res.theta - truth) / res.sigma
    assert np.all(np.abs(pulls) < 5), pulls
    assert abs(res.theta[0] - truth[0]) < 0.02 * abs(truth[0])
    ex = res.extra
    assert ex["rms_residual_THz"] == pytest.approx(ex["rms_residual_meV"] / THZ_TO_MEV)
    assert 0.1 < ex["rms_residual_meV"] < 0.2
    assert len(ex["branch"]) == len(pts) and ex["n_labelled"] == 0


def test_branch_labels_and_reference(ge_reference):
    """Ge about its full reference FC set, labelled points, 4 free parameters: recovered within 5σ, χ²/dof ≈ 1."""
    ref = ge_reference
    space = ref.space
    free = list(ref.sampled[:4])
    truth = ref.theta_ref.copy()
    idx = space.index(free)
    truth[idx] *= np.array([1.06, 0.95, 1.1, 0.92])
    pts = make_points(space, truth, 250, 0.2, seed=2, labelled=True, reference=ref.pairs, theta_ref=ref.theta_ref)
    res = fit_dispersion(space, pts, ref.theta_ref, free=free, reference=ref.pairs)
    assert res.success and res.extra["n_labelled"] == len(pts)
    assert res.extra["branch"] == pts.branch.tolist()
    assert np.all(np.abs((res.theta - truth[idx]) / res.sigma) < 5)
    assert abs(res.chi2_dof - 1.0) < 4 * np.sqrt(2.0 / res.dof)
    # absolute_sigma (no prior, so σ² is the data's alone): σ scaled by 1/√(χ²/dof)
    res_np = fit_dispersion(space, pts, ref.theta_ref, free=free, reference=ref.pairs, prior=None)
    res_abs = fit_dispersion(space, pts, ref.theta_ref, free=free, reference=ref.pairs, absolute_sigma=True, prior=None)
    assert res_abs.sigma == pytest.approx(res_np.sigma / np.sqrt(res_np.chi2_dof), rel=1e-6)
    # the prior adds information: σ with it are no larger
    assert np.all(res.sigma <= res_np.sigma * (1 + 1e-9))


def test_nearest_assignment_is_rematched(nb_truth):
    """Unlabelled points are matched to the branch nearest in energy at the final θ."""
    space, truth = nb_truth
    pts = make_points(space, truth, 60, 0.05, seed=5)
    res = fit_dispersion(space, pts, truth * 1.1, free=["1NN_xx", "1NN_xy", "2NN_xx"])
    e = model_energies(space, np.array(list(res.extra["theta_full"].values())), pts.q_rlu)
    assert res.extra["branch"] == np.argmin(np.abs(e - pts.energy[:, None]), axis=1).tolist()


def test_csv_round_trip_and_thz(tmp_path, nb_truth):
    space, truth = nb_truth
    pts = make_points(space, truth, 20, 0.1, seed=4, labelled=True)
    back = read_points(write_points(tmp_path / "p.csv", pts))
    assert np.allclose(back.q_rlu, pts.q_rlu, atol=1e-5) and np.allclose(back.energy, pts.energy, atol=1e-6)
    assert back.branch.tolist() == pts.branch.tolist()
    (tmp_path / "thz.csv").write_text("# a comment\nh,k,l,energy_THz,sigma_THz\n0.5,0,0,2.0,0.05\n0,0.5,0.5,3,0.1\n")
    t = read_points(tmp_path / "thz.csv")
    assert t.energy.tolist() == pytest.approx([2.0 * THZ_TO_MEV, 3.0 * THZ_TO_MEV])
    assert t.branch.tolist() == [-1, -1]


@pytest.mark.parametrize(
    "text, match",
    [
        ("h,k,energy_meV,sigma_meV\n0,0,1,0.1\n", r"lacks the column\(s\) \['l'\]"),
        ("h,k,l,energy,sigma\n0,0,0.5,1,0.1\n", r"lacks the column\(s\) \['energy_meV', 'sigma_meV'\]"),
        ("h,k,l,energy_meV,sigma_meV\n0,0,0.5,nan,0.1\n", "data row 1: energy_mev is nan"),
        ("h,k,l,energy_meV,sigma_meV\n0,0,0.5,10,-0.2\n", "data row 1: sigma_mev = -0.2; standard errors must be positive"),
        ("h,k,l,energy_meV,sigma_meV\n0,0,0.5,10,0.2\n0,0,x,10,0.2\n", "data row 2: l = 'x' is not a number"),
        ("h,k,l,energy_meV,sigma_meV,branch\n0,0,0.5,10,0.2,TX\n", "branch = 'TX' is neither an index"),
        ("h,k,l,energy_meV,sigma_meV,branch\n0,0,0.5,10,0.2,L1\n", "branch = 'L1' is neither an index"),
        ("h,k,l,energy_meV,sigma_meV\n0,0,0.5,10\n", "data row 1 has 4 fields, the header 5"),
        ("# only a comment\n", "is empty"),
    ],
)
def test_csv_errors(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(DataError, match=match):
        read_points(p)


def test_bad_fits(tmp_path, nb_truth):
    space, truth = nb_truth
    with pytest.raises(DataError, match="does not exist"):
        read_points(tmp_path / "missing.csv")
    pts = DispersionPoints(np.array([[0.5, 0, 0], [0, 0.5, 0.5]]), np.array([10.0, 12.0]), np.array([0.1, 0.1]), np.array([0, 7]))
    with pytest.raises(FitError, match="point 1 has branch 7, but Nb has 3 branches"):
        fit_dispersion(space, pts, truth, free="1NN_xx")
    two = DispersionPoints(pts.q_rlu, pts.energy, pts.sigma, np.array([0, 1]))
    with pytest.raises(FitError, match="2 points cannot determine 13 parameters without a prior"):
        fit_dispersion(space, two, truth, free="all", prior=None)
    with pytest.raises(DataError, match="sigma of point 0 is 0 meV"):
        DispersionPoints(np.zeros((1, 3)), np.array([1.0]), np.array([0.0]), None)
    with pytest.raises(FitError, match="theta_start has 2 values"):
        fit_dispersion(space, make_points(space, truth, 30, 0.1, seed=0), truth, free="1NN,2NN", theta_start=[1.0, 2.0])
