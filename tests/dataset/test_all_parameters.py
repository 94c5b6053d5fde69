"""Every parameter in the cutoff free, --shells, the ensemble domain, domain-randomised sets."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.dataset import generate, read_dataset
from fcinv.dataset.preprocess import prepare_input
from fcinv.dataset.randomise import PaperConditioner, Randomisation, RandomisationError, measurement_like
from fcinv.errors import DataError
from fcinv.reference import load_reference


@pytest.fixture(scope="module")
def ge():
    return load_reference("Ge")


def test_every_parameter_is_sampled_ranked(ge):
    assert ge.space.n_params == 16 and len(ge.sampled) == 16 and set(ge.sampled) == set(ge.space.names)
    assert ge.sampled[:8] == ge.paper_sampled and ge.sampled == ge.ensemble["ranking"]
    model = ge.forward_model()
    assert model.names == ge.sampled and model.reference is None  # zero tail: nothing held at one member
    assert ge.forward_model(free=ge.paper_sampled).reference is ge.pairs  # the paper convention keeps D_ref


def test_shells_change_the_parameter_count(ge):
    three = load_reference("Ge", 3)
    assert three.space.n_params == 10 and len(three.sampled) == 10 and three.n_shells == 3
    assert set(three.space.names) <= set(ge.space.names)
    np.testing.assert_allclose(three.theta_ref, ge.theta_ref[ge.space.index(three.space.names)])
    six = load_reference("Ge", 6)
    assert six.space.n_params == 21 and set(six.bounds_source) == {"ensemble"}
    new = six.space.index([n for n in six.space.names if n.startswith("6NN")])
    assert np.all(six.lower[new] <= six.theta_ref[new]) and np.all(six.theta_ref[new] <= six.upper[new])


def test_bounds_at_any_shell_count_come_from_every_member(ge):
    """members_fc.hdf5: the bounds of the 6th-8th shells are min/max over all seven stable members'
    own projections, and in the embedded shells they equal ensemble.json's."""
    eight = load_reference("Ge", 8)
    stable = sorted(ge.ensemble["stable_members"])
    assert sorted(eight.member_theta) == stable and len(stable) == 7
    vals = np.array([eight.member_theta[m] for m in stable])
    np.testing.assert_allclose(eight.lower, vals.min(axis=0))
    np.testing.assert_allclose(eight.upper, vals.max(axis=0))
    inner = eight.space.index(list(ge.space.names))
    np.testing.assert_allclose(eight.lower[inner], ge.lower, atol=1e-9)
    np.testing.assert_allclose(eight.upper[inner], ge.upper, atol=1e-9)
    # the reference member is one of them: its projection is theta_ref
    np.testing.assert_allclose(eight.member_theta[ge.reference_member], eight.theta_ref, atol=1e-9)
    # and the bounds of a far shell are not one member's value ± h
    far = eight.space.index([n for n in eight.space.names if n.startswith("8NN")])
    assert np.all(eight.upper[far] - eight.lower[far] > 0)


def test_members_file_errors(tmp_path):
    import h5py

    from fcinv.reference import read_members_fc

    empty = tmp_path / "members_fc.hdf5"
    with h5py.File(empty, "w") as h5:
        h5.create_group("members")
    with pytest.raises(DataError, match="holds no members/ group.*fcinv reference"):
        read_members_fc(empty)
    broken = tmp_path / "broken.hdf5"
    with h5py.File(broken, "w") as h5:
        h5.create_group("members/a").create_dataset("force_constants", data=np.zeros((1, 1, 3, 3)))
    with pytest.raises(DataError, match=r"\(member a\) lacks \['p2s_map'"):
        read_members_fc(broken)
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="cannot read the members' force-constant file"):
        read_members_fc(garbage)


@pytest.mark.parametrize("bad", [0, 99, -1])
def test_bad_shells_are_one_line_errors(bad, tmp_path):
    from fcinv.cli.dataset import main

    with pytest.raises(DataError, match=rf"--shells {bad} for Ge is out of range"):
        main(["-m", "Ge", "-n", "10", "--shells", str(bad), "-o", str(tmp_path / "x.h5"), "--no-progress"])


def test_domain_contains_dft_ge_in_every_parameter(ge, ge_dft_dir):
    from fcinv.fcspace import read_phonopy

    dft = ge.space.project(
        read_phonopy(ge.crystal, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    ).theta
    dom = ge.domain()
    assert list(dom.names) == ge.sampled and len(dom.names) == 16
    where = dom.where(dft[ge.space.index(ge.sampled)])
    assert np.all((where > 0) & (where < 1)), dict(zip(ge.sampled, where.round(3)))
    # the bounds come from every stable member, not one
    stable = [m for m in ge.ensemble["members"] if m["status"] == "stable"]
    vals = np.array([[m["projection"]["theta"][n] for n in ge.space.names] for m in stable])
    np.testing.assert_allclose(ge.lower, vals.min(axis=0))
    np.testing.assert_allclose(ge.upper, vals.max(axis=0))


def test_cli_dataset_all_parameters_and_shells(tmp_path):
    from fcinv.cli.dataset import main

    assert main(["-m", "Ge", "-n", "40", "--seed", "2", "-o", str(tmp_path / "a.h5"), "--no-progress"]) == 0
    assert (
        main(
            [
                "-m",
                "Ge",
                "-n",
                "40",
                "--seed",
                "2",
                "--shells",
                "3",
                "-o",
                str(tmp_path / "b.h5"),
                "--no-progress",
            ]
        )
        == 0
    )
    a, b = read_dataset(tmp_path / "a.h5"), read_dataset(tmp_path / "b.h5")
    assert a.k == 16 and b.k == 10 and a.meta["fixed_names"] == [] and b.meta["fixed_names"] == []
    assert a.meta["forward_model"]["reference"] == "theta_ref"  # zero tail


def test_randomised_set_is_deterministic_resumable_and_recorded(tmp_path, ge, monkeypatch):
    model = ge.forward_model()
    cond = PaperConditioner(model)
    rnd = Randomisation(group=7, clean_fraction=0.3)
    dom = ge.domain()
    kw = dict(randomisation=rnd, seed=11, chunk=40, progress=False, command="test")
    a = read_dataset(generate(cond, dom, 50, tmp_path / "a.h5", **kw))
    b = read_dataset(generate(cond, dom, 50, tmp_path / "b.h5", **kw))
    np.testing.assert_array_equal(a.spectra, b.spectra)
    for key in ("fwhm_scale", "background", "counts_scale", "coverage_id", "measured_fraction", "clean"):
        np.testing.assert_array_equal(a.conditions[key], b.conditions[key])
    assert np.isnan(a.conditions["temperature_K"]).all()  # the paper intensity has no temperature
    assert a.meta["randomisation"]["group"] == 7 and a.meta["coverages"] == ["full"]
    clean = a.conditions["clean"] > 0
    assert clean.any() and (~clean).any()
    assert np.all(np.isinf(a.conditions["counts_scale"][clean])) and np.all(
        a.conditions["background"][clean] == 0
    )
    np.testing.assert_allclose(a.spectra[clean], prepare_input(model.spectra(a.theta[clean])), atol=1e-6)
    assert not np.allclose(a.spectra[~clean], prepare_input(model.spectra(a.theta[~clean])), atol=1e-3)
    # resume after an interruption gives the same file
    calls = {"n": 0}
    real = cond.spectra_under

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(cond, "spectra_under", flaky)
    with pytest.raises(KeyboardInterrupt, match="simulated interruption"):
        generate(cond, dom, 50, tmp_path / "r.h5", **kw)
    monkeypatch.setattr(cond, "spectra_under", real)
    r = read_dataset(generate(cond, dom, 50, tmp_path / "r.h5", resume=True, **kw))
    assert r.content_hash == a.content_hash
    np.testing.assert_array_equal(r.conditions["background"], a.conditions["background"])


def test_masks_make_unmeasured_pixels_zero(ge, rng):
    model = ge.forward_model()
    mask = np.ones(model.grid.shape, bool)
    mask[:20] = False
    cond = PaperConditioner(model, {"full": np.ones(model.grid.shape, bool), "half": mask})
    theta = model.theta0[None].repeat(4, 0)
    spectra, c = measurement_like(cond, theta, Randomisation(group=1, clean_fraction=0.0), rng)
    half = c["coverage_id"] == 1
    assert np.all(spectra[half][:, :20] == 0)
    np.testing.assert_allclose(c["measured_fraction"][half], mask.mean())
    with pytest.raises(RandomisationError, match="coverage mask 'bad' has shape"):
        PaperConditioner(model, {"bad": np.ones((3, 3), bool)})


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"temperature_K": (300, 5)}, r"temperature_K=\(300, 5\) is not a valid range"),
        ({"clean_fraction": 2.0}, "clean_fraction=2.0 is outside"),
        ({"group": 0}, "group=0 must be a positive integer"),
    ],
)
def test_bad_randomisation(kw, match):
    with pytest.raises(RandomisationError, match=match):
        Randomisation(**kw)


def test_prepare_input_measured_pixels_only():
    x = np.array([[np.nan, 2.0], [4.0, 6.0]])
    np.testing.assert_allclose(prepare_input(x), [[0.0, 0.0], [0.5, 1.0]])
    np.testing.assert_allclose(prepare_input(10 * x), prepare_input(x))  # the overall scale does not matter
