"""Physical-intensity training sets (fcinv.dataset.physical): deterministic, resumable, recorded."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fcinv.forward.physical")

from fcinv.dataset import generate, read_dataset  # noqa: E402
from fcinv.dataset.physical import physical_forward, physical_model  # noqa: E402
from fcinv.dataset.preprocess import prepare_input  # noqa: E402
from fcinv.dataset.randomise import Randomisation  # noqa: E402
from fcinv.errors import DataError  # noqa: E402
from fcinv.reference import load_reference  # noqa: E402


@pytest.fixture(scope="module")
def ge3():
    return load_reference("Ge", 3)  # 10 parameters: every one free, a quicker stability mesh


@pytest.fixture(scope="module")
def conditioner(ge3):
    return physical_forward(ge3, ge3.sampled, coverages=["single0"], randomised=True)


RND = Randomisation(temperature_K=(5.0, 300.0), group=8, clean_fraction=0.3, temperature_levels=(5.0, 300.0), fwhm_levels=(1.0,))


def test_physical_set_deterministic_and_resumable(tmp_path, ge3, conditioner, monkeypatch):
    dom = ge3.domain()
    kw = dict(randomisation=RND, seed=4, chunk=30, progress=False, command="test")
    a = read_dataset(generate(conditioner, dom, 24, tmp_path / "a.h5", **kw))
    b = read_dataset(generate(conditioner, dom, 24, tmp_path / "b.h5", **kw))
    assert a.content_hash == b.content_hash and a.k == 10
    np.testing.assert_array_equal(a.conditions["temperature_K"], b.conditions["temperature_K"])
    assert set(np.unique(a.conditions["temperature_K"])) <= {5.0, 300.0}
    assert a.meta["forward_model"]["intensity"] == "physical" and a.meta["coverages"] == ["single0"]
    assert 0.5 < a.conditions["measured_fraction"].min() < 1.0  # one orientation leaves pixels unmeasured
    clean = a.conditions["clean"] > 0
    assert clean.any()
    # a clean sample is the preprocessed physical spectrum at 5 K, 0 where unmeasured
    m = physical_model(ge3, ge3.sampled, coverage="single0", temperature_K=5.0)
    want = prepare_input(np.where(m.mask, m.spectra(a.theta[clean]), np.nan))
    np.testing.assert_allclose(a.spectra[clean], want, atol=1e-5)
    calls = {"n": 0}
    real = conditioner.spectra_under

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    monkeypatch.setattr(conditioner, "spectra_under", flaky)
    kw["chunk"] = 12
    with pytest.raises(KeyboardInterrupt, match="simulated interruption"):
        generate(conditioner, dom, 24, tmp_path / "r.h5", **kw)
    monkeypatch.setattr(conditioner, "spectra_under", real)
    full = read_dataset(generate(conditioner, dom, 24, tmp_path / "f.h5", **kw))
    r = read_dataset(generate(conditioner, dom, 24, tmp_path / "r.h5", resume=True, **kw))
    assert r.content_hash == full.content_hash


def test_unknown_coverage(ge3):
    with pytest.raises(DataError, match=r"unknown coverage \['moon'\]"):
        physical_forward(ge3, ge3.sampled, coverages=["moon"], randomised=True)
