"""The screening start (fcinv.fitting.screen): it finds a basin a bad start misses, and records every fit."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.fitting import FitError, fit_spectrum
from fcinv.fitting.screen import linear_misfits, screen_starts
from fcinv.reference import load_reference


@pytest.fixture(scope="module")
def case():
    ref = load_reference("Ge", 2)
    names = list(ref.sampled)
    model = ref.forward_model(free=names)
    dom = ref.domain(names)
    truth = np.asarray(model.theta0, float) * 1.05
    data = model.spectra(truth[None])[0].astype(float)
    # a bad start: the far corner of the box from the truth
    bad = np.where(truth - dom.low > dom.high - truth, dom.low, dom.high)[[dom.names.index(n) for n in names]]
    return model, dom, truth, data, bad


def test_screen_beats_a_bad_start_and_records_every_fit(case):
    model, dom, truth, data, bad = case
    kw = {"anchor": bad, "n_samples": 256, "n_fits": 4, "n_keep": 2, "max_nfev": 40, "seed": 1}
    starts, summary = screen_starts(model, data, dom, **kw)
    assert [s[0] for s in starts] == ["screen1", "screen2"]
    # the same short fit from the bad start stays in its basin (misfit 291 of the corner's 373) ...
    bad_fit = fit_spectrum(model, data, theta_start=bad, max_nfev=40)
    mask = np.isfinite(data)
    thetas = np.stack([bad, np.asarray(bad_fit.theta, float), starts[0][1]])
    m_bad, m_bad_fit, m_best = linear_misfits(model, thetas, data[mask], np.ones(mask.sum()), mask)
    # ... the screen reaches the truth's (a no-op screen, returning the anchor, fails)
    assert m_bad_fit > 0.5 * m_bad and m_best < 1e-6 * m_bad
    np.testing.assert_allclose(starts[0][1], truth, rtol=1e-4)
    fits = summary["fits"]
    assert len(fits) == 4 and all(np.isfinite(f["fit_misfit"]) for f in fits)
    # the same seed gives the same starts
    again, _ = screen_starts(model, data, dom, **kw)
    np.testing.assert_array_equal(again[0][1], starts[0][1])


@pytest.mark.parametrize(
    ("kw", "match"),
    [({"n_samples": 0}, "n_samples"), ({"n_keep": 5, "n_fits": 2}, "n_keep"), ({"subspace": 99}, "subspace")],
)
def test_screen_bad_settings_are_one_line(case, kw, match):
    model, dom, _truth, data, bad = case
    with pytest.raises(FitError, match=match) as e:
        screen_starts(model, data, dom, anchor=bad, **kw)
    assert "\n" not in str(e.value)
