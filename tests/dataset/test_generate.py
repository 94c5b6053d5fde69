"""Training-set generation: domain, seeds, stability filter, resume."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.crystal import default_grid
from fcinv.dataset import DomainError, generate, read_dataset, widened_domain
from fcinv.fcspace import FCSpace
from fcinv.forward import ForwardModel


@pytest.fixture(scope="module")
def model(ge_crystal):
    space = FCSpace.for_material(ge_crystal)
    theta = space.central_force_theta({"1NN": 6.0, "2NN": 0.6})
    return ForwardModel(space, default_grid(ge_crystal), theta, free=["1NN_xx", "1NN_xy", "2NN_xx", "2NN_xy"])


@pytest.fixture(scope="module")
def domain(model):
    ref = model.theta0
    return widened_domain(model.names, ref - 0.1 * np.abs(ref) - 0.01, ref + 0.1 * np.abs(ref) + 0.01, ref)


def test_widening_formula(model):
    ref = np.array([-2.0, 0.5])
    dom = widened_domain(["a", "b"], [-2.2, 0.4], [-1.8, 0.6], ref, widen=(0.25, 1.5))
    # negative parameter: long (150 %) side away from zero, i.e. downwards
    np.testing.assert_allclose(dom.low, [-2.2 - 1.5 * 0.4, 0.4 - 0.25 * 0.2])
    np.testing.assert_allclose(dom.high, [-1.8 + 0.25 * 0.4, 0.6 + 1.5 * 0.2])


def test_default_domain_contains_dft_ge(ge_crystal, ge_dft_dir):
    """The embedded Ge domain (default widening) contains the DFT Ge set's projection in every sampled parameter."""
    from fcinv.fcspace import read_phonopy
    from fcinv.reference import load_reference

    ref = load_reference("Ge")
    dft = ref.space.project(
        read_phonopy(ref.crystal, ge_dft_dir / "FORCE_CONSTANTS", ge_dft_dir / "POSCAR", (4, 4, 4))
    ).theta
    idx = ref.space.index(ref.sampled)
    lo, hi = ref.bounds()
    dom = widened_domain(ref.sampled, lo, hi, ref.theta_ref[idx])
    assert dom.contains(dft[idx])[0], dict(zip(ref.sampled, dom.where(dft[idx]).round(3)))
    paper = widened_domain(ref.sampled, lo, hi, ref.theta_ref[idx], widen=(0.25, 1.5))
    assert not paper.contains(dft[idx])[0]  # the paper's widening misses 5NN_zz (documented)


def test_domain_excluding_reference_raises():
    with pytest.raises(DomainError, match=r"excludes the reference for \['a'\]"):
        widened_domain(["a"], [1.0], [2.0], [10.0])
    with pytest.raises(DomainError, match="empty or not finite"):
        from fcinv.dataset import Domain

        Domain(("a",), np.array([1.0]), np.array([1.0]))


def test_same_seed_same_dataset_and_all_stable(tmp_path, model, domain):
    a = generate(model, domain, 60, tmp_path / "a.h5", seed=3, chunk=50, progress=False, command="test")
    b = generate(model, domain, 60, tmp_path / "b.h5", seed=3, chunk=50, progress=False, command="test")
    da, db = read_dataset(a), read_dataset(b)
    np.testing.assert_array_equal(da.theta, db.theta)
    np.testing.assert_array_equal(da.spectra, db.spectra)
    assert da.names == tuple(model.names) or list(da.names) == model.names
    assert model.is_stable(da.theta).all()
    assert domain.contains(da.theta).all()
    assert 0 < da.meta["accepted_fraction"] <= 1
    np.testing.assert_allclose(da.spectra[:5], model.spectra(da.theta[:5]), atol=1e-6)
    assert sum(len(v) for v in da.split.values()) == 60
    c = generate(model, domain, 60, tmp_path / "c.h5", seed=4, chunk=50, progress=False, command="test")
    assert not np.array_equal(read_dataset(c).theta, da.theta)


def test_resume_after_interruption(tmp_path, model, domain, monkeypatch):
    """A run killed mid-way resumes from its .partial file and ends with the same data as an uninterrupted run."""
    full = read_dataset(
        generate(model, domain, 90, tmp_path / "full.h5", seed=5, chunk=40, progress=False, command="test")
    )
    calls = {"n": 0}
    real = model.spectra

    def flaky(theta, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real(theta, **kw)

    monkeypatch.setattr(model, "spectra", flaky)
    with pytest.raises(KeyboardInterrupt, match="simulated interruption"):
        generate(model, domain, 90, tmp_path / "r.h5", seed=5, chunk=40, progress=False, command="test")
    assert (tmp_path / "r.h5.partial").exists() and not (tmp_path / "r.h5").exists()
    monkeypatch.setattr(model, "spectra", real)
    out = generate(
        model, domain, 90, tmp_path / "r.h5", seed=5, chunk=40, progress=False, command="test", resume=True
    )
    np.testing.assert_array_equal(read_dataset(out).theta, full.theta)


def test_model_domain_mismatch(model, domain, tmp_path):
    from fcinv.dataset import Domain

    other = Domain(("1NN_xx",), np.array([-5.0]), np.array([0.0]))
    with pytest.raises(DomainError, match="the forward model varies"):
        generate(model, other, 10, tmp_path / "x.h5", progress=False)
