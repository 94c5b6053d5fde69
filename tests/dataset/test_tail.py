"""A documented tail in training sets (fcinv.dataset.tail) and the fold-shaped background
(fcinv.dataset.randomise background_shape="fold", fcinv.dataset.physical.fold_background)."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.dataset import generate, read_dataset
from fcinv.dataset.randomise import Randomisation, RandomisationError, fold_noise
from fcinv.dataset.tail import TAIL_PREFIX, check_tail_option, tail_domain, tail_forward
from fcinv.errors import DataError
from fcinv.reference import load_reference


@pytest.fixture(scope="module")
def ge2():
    return load_reference("Ge", 2)


def _paper(r, free):
    return r.forward_model(free=free)


@pytest.fixture(scope="module")
def tail_set(tmp_path_factory, ge2):
    model, dom = tail_forward(ge2, ge2.sampled, tail_shells=3, tail_width=2.0, make_forward=_paper)
    path = tmp_path_factory.mktemp("tail") / "t.h5"
    generate(model, dom, 16, path, seed=3, chunk=32, n_test=2, progress=False, command="test")
    return model, dom, read_dataset(path)


def test_tail_set_labels_are_the_projection(tail_set, ge2):
    model, dom, ds = tail_set
    big = load_reference("Ge", 3)
    assert list(ds.names) == list(ge2.sampled) and ds.theta.shape == (16, len(ge2.sampled))
    far = [n for n in big.space.names if n not in ge2.space.names]
    assert far and model.tail_names == far
    tail = np.column_stack([ds.conditions[TAIL_PREFIX + n] for n in far])
    full = np.hstack([ds.theta, tail])  # in the generator's order: labels, then far shells
    assert dom.contains(full).all()
    for row, lab in zip(full, ds.theta):
        theta_big = np.empty(big.space.n_params)
        theta_big[big.space.index(list(dom.names))] = row
        proj = ge2.space.project(big.space.to_pairs(theta_big)).theta
        np.testing.assert_allclose(proj[ge2.space.index(list(ds.names))], lab, atol=1e-10)
    # the far shells vary (the tail is drawn, not zero)
    assert np.all(tail.std(axis=0) > 0)


def test_tail_domain_bounds_and_meta(tail_set, ge2):
    model, dom, ds = tail_set
    big = load_reference("Ge", 3)
    far = model.tail_names
    lo, hi = big.bounds(far)
    r = np.maximum(np.maximum(hi - lo, 0.05 * np.maximum(abs(lo), abs(hi))), 1e-4)
    k = len(ge2.sampled)
    np.testing.assert_allclose(dom.low[k:], lo - 2.0 * r)
    np.testing.assert_allclose(dom.high[k:], hi + 2.0 * r)
    near = ge2.domain(ge2.sampled)
    np.testing.assert_allclose(dom.low[:k], near.low)
    np.testing.assert_allclose(dom.high[:k], near.high)
    t = ds.meta["tail"]
    assert t["model_shells"] == 2 and t["tail_shells"] == 3 and t["tail_width"] == 2.0
    assert t["names"] == far and np.allclose(t["low"], dom.low[k:]) and np.allclose(t["high"], dom.high[k:])
    np.testing.assert_allclose(ds.meta["domain_low"], near.low)
    assert ds.meta["forward_model"]["tail"]["tail_shells"] == 3


def test_default_tail_width_contains_the_dft_set(ge_dft_dir):
    from fcinv.fcspace import read_phonopy

    ref, big = load_reference("Ge", 5), load_reference("Ge", 11)
    dom, far = tail_domain(ref, big, ref.sampled)  # default width 3
    pairs = read_phonopy(big.crystal, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    proj = np.asarray(big.space.project(pairs).theta, float)
    theta = proj[big.space.index(list(dom.names))]
    outside = [n for n, v, a, b in zip(dom.names, theta, dom.low, dom.high) if not a <= v <= b]
    assert len(far) == 31 and outside == []
    # the members' own far-shell box (no widening) does not contain it: 9NN_zz = 0.081
    narrow, _ = tail_domain(ref, big, ref.sampled, width=0.0)
    assert not narrow.contains(theta)[0]


@pytest.mark.parametrize(
    ("shells", "width", "match"),
    [
        (5, 3.0, "above the model's 5 shells"),
        (13, 3.0, "at most 12"),
        (7.5, 3.0, "not an integer|above"),
        ("x", 3.0, "not an integer"),
        (11, -1.0, "finite number >= 0"),
        (11, float("nan"), "finite number >= 0"),
        (11, "wide", "not a number"),
    ],
)
def test_bad_tail_options(shells, width, match):
    with pytest.raises(DataError, match=match) as e:
        check_tail_option(shells, width, 5, 12)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--tail-width", "3"], "--tail-width needs --tail-shells"),
        (["--tail-shells", "4"], "above the model's 5 shells"),
        (["--tail-shells", "11", "--top-k", "8"], "drop --top-k"),
        (["--background", "fold"], "--background fold needs --randomise --intensity physical"),
        # the sharded path checks the same options before any worker builds a model
        (["--background", "fold", "--scheduler", "serial"], "--background fold needs --randomise"),
        (["--tail-width", "3", "--scheduler", "serial"], "--tail-width needs --tail-shells"),
        (["--tail-shells", "11", "--top-k", "8", "--scheduler", "serial"], "drop --top-k"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, args, match):
    from fcinv.cli.main import main

    out = tmp_path / "x.h5"
    rc = main(["dataset", "-m", "Ge", "-n", "4", "-o", str(out), "--no-progress", *args])
    err = capsys.readouterr().err
    assert rc != 0 and match.split("|")[0] in err
    assert "Traceback" not in err and not out.exists()


def test_sharded_tail_set_stores_the_labels(tmp_path, ge2):
    """``--tail-shells`` with ``--scheduler``: the shards store the model's labels (the projection) and
    the far shells as conditions, as a plain run does."""
    from fcinv.cli.main import main

    out = tmp_path / "s.h5"
    argv = ["dataset", "-m", "Ge", "--shells", "2", "--tail-shells", "3", "--tail-width", "2", "-n", "8"]
    rc = main([*argv, "-o", str(out), "--no-progress", "--scheduler", "serial", "--shard-size", "4"])
    assert rc == 0
    ds = read_dataset(out)
    big = load_reference("Ge", 3)
    far = [n for n in big.space.names if n not in ge2.space.names]
    assert list(ds.names) == list(ge2.sampled) and ds.theta.shape == (8, len(ge2.sampled))
    assert ds.meta["tail"]["names"] == far and ds.meta["tail"]["tail_width"] == 2.0
    tail = np.column_stack([ds.conditions[TAIL_PREFIX + n] for n in far])
    assert np.all(tail.std(axis=0) > 0)
    names = list(ge2.sampled) + far
    for row, lab in zip(np.hstack([ds.theta, tail]), ds.theta):
        theta_big = np.empty(big.space.n_params)
        theta_big[big.space.index(names)] = row
        proj = ge2.space.project(big.space.to_pairs(theta_big)).theta
        np.testing.assert_allclose(proj[ge2.space.index(list(ds.names))], lab, atol=1e-10)


def test_shard_recipe_carries_tail_and_background():
    from fcinv.cli.dataset import get_parser
    from fcinv.dataset.shard_jobs import recipe_from_args

    args = get_parser().parse_args(
        ["-m", "Ge", "-n", "4", "-o", "x.h5", "--randomise", "--intensity", "physical"]
        + ["--background", "fold", "--tail-shells", "11", "--tail-width", "2.5"]
    )
    kw = dict(recipe_from_args(args).kwargs)
    assert (kw["background"], kw["tail_shells"], kw["tail_width"]) == ("fold", 11, 2.5)


def test_fold_noise_clean_and_noisy():
    rng = np.random.default_rng(0)
    clean = np.array([[[0.0, 0.5, 1.0, np.nan]]])
    g = np.array([[[1.0, 4.0, 0.0, 1.0]]])  # G = 0: no background and no noise there
    out = fold_noise(clean, g, np.array([0.1]), np.array([np.inf]), rng)
    np.testing.assert_allclose(out[0, 0, :3], [0.1, 0.5 + 0.4, 1.0])
    assert np.isnan(out[0, 0, 3])
    # noisy: mean I + B G, variance G (I + B G) / P, per pixel
    m = 4000
    c = np.broadcast_to(np.array([[0.0, 0.5, 1.0]]), (m, 1, 3)).copy()
    c[:, 0, 0] = 0.0
    gg = np.broadcast_to(np.array([[1.0, 4.0, 0.25]]), (m, 1, 3)).copy()
    p = 200.0
    out = fold_noise(c, gg, np.full(m, 0.1), np.full(m, p), rng)
    want_mean = c[0, 0] + 0.1 * gg[0, 0]
    np.testing.assert_allclose(out.mean(axis=0)[0], want_mean, rtol=0.05, atol=2e-3)
    np.testing.assert_allclose(out.var(axis=0)[0], gg[0, 0] * want_mean / p, rtol=0.15)
    with pytest.raises(RandomisationError, match="background image shape"):
        fold_noise(clean, g[..., :2], np.array([0.1]), np.array([np.inf]), rng)


def test_bad_background_shape():
    with pytest.raises(RandomisationError, match="background_shape='tilted' is not known"):
        Randomisation(background_shape="tilted")


def test_fold_background_against_a_direct_sum():
    pytest.importorskip("fcinv.forward.physical")
    from fcinv.crystal import Crystal
    from fcinv.dataset.physical import _coverage, fold_background

    crystal = Crystal.from_name("Ge")
    cov = _coverage("Ge", "single0", 40.0)
    f = np.linspace(0.0, 2.0, cov.grid.n_e)
    g = fold_background(cov, f, crystal)
    recip = 2 * np.pi * np.linalg.inv(crystal.conventional_lattice)
    q2 = np.sum((cov.hkl() @ recip.T) ** 2, axis=1)
    num, den = np.zeros(cov.grid.shape), np.zeros(cov.grid.shape)
    for t, e, w in zip(cov.t_idx, cov.e_idx, cov.w):
        es = range(cov.grid.n_e) if e < 0 else [e]
        for j in es:
            num[cov.pixel[t], j] += w / q2[t]
            den[cov.pixel[t], j] += w
    want = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan) * f[None, :]
    pos = np.isfinite(want) & (want > 0)
    want = want / np.median(want[pos])
    np.testing.assert_allclose(g, want, rtol=1e-10, equal_nan=True)
    assert np.isclose(np.median(g[np.isfinite(g) & (g > 0)]), 1.0)


def test_physical_set_with_fold_background():
    pytest.importorskip("fcinv.forward.physical")
    from fcinv.dataset.physical import physical_forward, physical_model
    from fcinv.dataset.preprocess import prepare_input
    from fcinv.dataset.randomise import measurement_like

    ge3 = load_reference("Ge", 3)
    cond = physical_forward(ge3, ge3.sampled, coverages=["single0"], randomised=True)
    rnd = Randomisation(
        group=4,
        clean_fraction=0.0,
        temperature_levels=(5.0,),
        fwhm_levels=(1.0,),
        background=(0.05, 0.05),
        counts_scale=(1e12, 1e12),
        background_shape="fold",
    )
    theta = ge3.theta_ref[None, :].repeat(2, axis=0)
    spectra, c = measurement_like(cond, theta, rnd, np.random.default_rng(0))
    m = physical_model(ge3, ge3.sampled, coverage="single0", temperature_K=float(c["temperature_K"][0]))
    clean = np.where(m.mask, m.spectra(theta[:1]), np.nan)
    from fcinv.models.scaling import minmax_scale

    g = cond.background_image(c["temperature_K"][0], 1.0, 0)
    want = prepare_input(np.where(m.mask, minmax_scale(clean) + 0.05 * np.where(g > 0, g, 0.0), np.nan))
    np.testing.assert_allclose(spectra[0], want[0], atol=1e-4)
