"""Pipeline.refine's starts: the ML answer and the energy-moment start (PipelineConfig.refine_starts)."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.pipeline import Pipeline, PipelineConfig, starts

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pipe():
    return Pipeline("ge", config=PipelineConfig(k_samples=10))


def test_refine_starts_option():
    assert PipelineConfig().refine_starts == ("ml", "moments")
    assert PipelineConfig(refine_starts=("ml",)).refine_starts == ("ml",)
    assert PipelineConfig(refine_starts=("ml", "moments", "screen")).refine_starts[-1] == "screen"
    for bad in [("moments",), ("ml", "grid"), (), ("ml", "ml")]:
        with pytest.raises(DataError, match="refine_starts") as e:
            PipelineConfig(refine_starts=bad)
        assert "\n" not in str(e.value)


def test_extra_starts_only_for_a_physical_model(pipe):
    # the paper forward model: the sum rules are the physical intensities', no moment start
    assert pipe.extra_starts(pipe.forward_model, None) == ([], None)


def test_extra_starts_gives_a_stable_moment_start_on_a_recentred_model(pipe):
    from fcinv.crystal import default_grid
    from fcinv.experiment.instrument import Instrument
    from fcinv.forward.physical import PhysicalModel, full_coverage

    ref = pipe.material.reference
    grid = default_grid(ref.crystal)
    pm = PhysicalModel(
        ref.space,
        grid,
        ref.theta_ref,
        free=["1NN_xx", "1NN_xy"],
        coverage=full_coverage(ref.crystal, grid, qmax=5.0),
        temperature=5.0,
        resolution=Instrument(ei=40.0),
        dw="none",
    )
    truth = pm.theta0 * np.array([1.05, 0.95])
    img = np.asarray(pm.spectra(truth[None])[0], float)
    img[~pm.mask] = np.nan
    starts, info = pipe.extra_starts(pm, img)
    assert len(starts) == 1 and starts[0][0] == "moments" and info["stable"]
    label, theta, centred = starts[0]
    assert isinstance(centred, PhysicalModel) and centred is not pm
    np.testing.assert_allclose(centred.theta0, list(info["first_pass_theta"].values()))
    assert np.max(np.abs(theta - truth)) < 0.02 * np.abs(truth).max()
    off = Pipeline(pipe.predictor, config=PipelineConfig(k_samples=10, refine_starts=("ml",)))
    assert off.extra_starts(pm, img) == ([], None)


def test_continuation_passes_the_starts_to_its_first_stage_only(monkeypatch):
    import fcinv.fitting

    seen = []

    def fake_refine(model, spectrum, theta_start, **kw):
        seen.append(kw.get("extra_starts"))
        from types import SimpleNamespace

        return SimpleNamespace(extra={"refine_start": "moments", "start_selection": [{"start": "ml"}]})

    monkeypatch.setattr(fcinv.fitting, "refine", fake_refine)
    fn = starts.first_stage_with_starts([("moments", np.zeros(2), None)])
    fn(None, None, None)
    fn(None, None, None, max_nfev=3)
    assert len(seen) == 2 and seen[0][0][0] == "moments" and seen[1] is None
    assert fn.first_stage["refine_start"] == "moments"


@pytest.mark.parametrize("rule", [None, "bic"])
def test_refine_passes_the_stage_rule_to_the_continuation(pipe, monkeypatch, rule):
    """PipelineConfig.refine_select reaches refine_in_shells (None: the material's refine_select)."""
    import fcinv.fitting.continuation as cont
    from fcinv.forward.physical import PhysicalModel

    seen = {}

    class Stop(Exception):
        pass

    def fake(model, spectrum, start, shells, **kw):
        seen.update(kw, shells=tuple(shells))
        raise Stop("stop")

    p = Pipeline(pipe.predictor, config=PipelineConfig(k_samples=10, refine_select=rule))
    pm = object.__new__(PhysicalModel)  # only its type matters: the fit is replaced
    pm.corrections = None
    monkeypatch.setattr(cont, "refine_in_shells", fake)
    monkeypatch.setattr(p, "refinement_model", lambda measurement=None: (pm, None))
    monkeypatch.setattr(p, "extra_starts", lambda *a, **k: ([], None))
    with pytest.raises(Stop, match="stop"):
        p.refine(None, None, None)
    assert seen["select"] == rule and seen["shells"] == p.continuation_shells(pm) and seen["shells"]
