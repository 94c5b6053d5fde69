"""Stage III through fcinv.pipeline: the steps, pluggable refinement and forward model, every input kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fcinv.errors import DataError, GridError
from fcinv.pipeline import Pipeline, PipelineConfig
from fcinv.result import FCResult

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "io"
SHARED = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="module")
def pipe():
    return Pipeline("ge", config=PipelineConfig(k_samples=10))


@pytest.fixture(scope="module")
def spectrum():
    import fcinv

    return fcinv.simulate("Ge", {"1NN_xx": -2.0})


def test_steps_one_at_a_time_equal_run(pipe, spectrum):
    fs = pipe.fold(pipe.load(spectrum))
    pred, ml = pipe.predict(fs)
    run = pipe.run(spectrum)
    np.testing.assert_array_equal(run.result.theta, ml.theta)
    assert run.ml is run.result and run.refined is None
    assert run.frequencies.shape == (140, 6) and set(run.timings) == {"load", "fold", "ml", "trust"}
    assert ml.adequacy["coverage"] == 1.0 and ml.adequacy["in_domain"] in (True, False)
    assert ml.provenance is not None and ml.provenance.seed == 0 and pred.k_samples == 10


def test_refinement_is_pluggable(pipe, spectrum):
    seen = {}

    def my_refine(model, fs, prediction):
        seen["args"] = (model, fs, prediction)
        return FCResult(
            prediction.names,
            np.asarray(prediction.theta) * 0 - 1.0,
            np.full(len(prediction.names), 0.1),
            method="my refinement",
            sigma_meaning="made up for the test",
        )

    p = Pipeline(pipe.predictor, refine=my_refine, config=pipe.config)
    run = p.run(spectrum, refine=True)
    assert seen["args"][0] is p.forward_model and seen["args"][1] is run.spectrum
    assert run.result.method == "my refinement" and np.all(run.result.theta == -1.0)
    assert run.refined is run.result and run.ml.method.startswith("ML: ")
    assert run.result.parts["ml"].theta.tolist() == run.ml.theta.tolist() and run.result.material == "Ge"


def test_default_refinement_converts_the_fit():
    """A paper-intensity model is refined with the paper forward model: the paper spectrum's θ comes back."""
    from fcinv.experiment.folded import FoldedSpectrum

    pipe = Pipeline("ge-paper", config=PipelineConfig(k_samples=10))
    assert pipe.convention.intensity == "paper" and not pipe.convention.recorded
    fm = pipe.forward_model  # the paper convention: the sampled parameters about D_ref
    assert fm.reference is pipe.material.reference.pairs
    theta = fm.theta0.copy()
    theta[list(fm.names).index("1NN_xx")] = -2.0
    spectrum = FoldedSpectrum.from_arrays(fm.spectra(theta[None])[0].astype(float), fm.grid)
    run = pipe.run(spectrum, refine=True)
    assert run.result.method.startswith("fit: ML-initialised refinement") and "ml" in run.result.parts
    assert run.result.adequacy["success"] and abs(run.result["1NN_xx"][0] + 2.0) < 1e-3
    assert run.result.adequacy["refinement_model"] == "ForwardModel"
    assert not any(w.startswith("REFINEMENT MODEL") for w in run.result.adequacy.get("warnings", []))


def test_physical_model_on_a_folded_input_falls_back_with_a_warning(pipe, spectrum):
    assert pipe.convention.intensity == "physical" and pipe.convention.recorded
    model, warning = pipe.refinement_model(spectrum)
    assert model is pipe.forward_model and "carries no coverage" in warning
    run = pipe.run(spectrum, refine=True)
    assert run.result.adequacy["refinement_model"] == "ForwardModel"
    assert run.result.adequacy["warnings"][0].startswith("REFINEMENT MODEL: the input is already folded")


def test_physical_model_of_a_volume_has_its_coverage(pipe):
    """A 4D volume gives the physical refinement model the fold's own coverage; it predicts the raw fold
    (no one-phonon corrections), which Pipeline.refine fits."""
    pytest.importorskip("euphonic", reason="the simulated experiment needs Euphonic")
    from fcinv.experiment.instrument import Goniometer
    from fcinv.experiment.simulate import ExperimentConfig, force_constants_from_array, simulate_experiment
    from fcinv.forward.physical import PhysicalModel

    ref = pipe.material.reference
    c = ref.crystal
    fc = ref.space.to_phonopy(ref.theta_ref, (4, 4, 4))
    efc, ecr = force_constants_from_array(
        fc, c.lattice, c.positions, c.numbers, np.diag([4, 4, 4]), masses=c.masses
    )
    run = simulate_experiment(
        efc, ecr, goniometer=Goniometer.steps(0.0, 1.0, 1), config=ExperimentConfig(seed=0), region=pipe.grid
    )
    vol = run.total()
    fs = pipe.fold(vol)
    model, warning = pipe.refinement_model(vol)
    assert warning is None and isinstance(model, PhysicalModel)
    assert tuple(model.names) == pipe.names and model.corrections is None
    assert pipe.corrections is not None  # the ML fold keeps its corrections
    # the model predicts exactly the pixels the fold measured
    np.testing.assert_array_equal(np.asarray(model.mask), np.asarray(fs.mask))


def test_forward_model_must_vary_the_models_parameters(pipe):
    wrong = pipe.material.forward_model(free=["1NN_xx"], grid=pipe.grid)
    with pytest.raises(GridError, match="but the forward model varies"):
        Pipeline(pipe.predictor, forward_model=wrong)


def test_pathsqe_output_and_another_grid(pipe, tmp_path):
    import fcinv

    run = pipe.run(DATA / "ge_pathsqe_folded.npy")
    assert 0.7 < run.spectrum.coverage < 0.8 and run.result.extra["data"].endswith("ge_pathsqe_folded.npy")
    coarse = fcinv.simulate("Ge", grid=fcinv.load_material("Ge").grid(e_step=1.0))
    with pytest.raises(GridError, match="is on another grid"):
        pipe.run(coarse)
    rebinned = Pipeline(pipe.predictor, config=PipelineConfig(k_samples=10, rebin=True)).run(coarse)
    assert rebinned.spectrum.grid.same_as(pipe.grid)
    with pytest.raises(DataError, match="apply to files only"):
        pipe.load(coarse, transpose=True)


def test_nxspe_infers_where_fold_reads_it(pipe):
    """The bug of issue 10: infer read NXSPE as a plain array ("neither 'signal' nor 'counts')."""
    f = SHARED / "nxspe" / "MAR11001_test.nxspe"
    if not f.exists():
        pytest.skip(f"shared test data not found at {f} (the ../shared/data folder beside the repository)")
    raw = Pipeline("ge", config=PipelineConfig(k_samples=10, trust=False))
    run = raw.run(f)
    assert 0 < run.spectrum.coverage < 0.2 and np.all(np.isfinite(run.result.theta))
    # with the adequacy verdict (the default) the same file is refused: it constrains nothing
    from fcinv.adequacy import AdequacyError

    with pytest.raises(AdequacyError, match="nothing is constrained"):
        pipe.run(f)


def test_infer_cli_reads_nxspe(tmp_path, monkeypatch, capsys):
    from fcinv.cli.main import main

    f = SHARED / "nxspe" / "MAR11001_test.nxspe"
    if not f.exists():
        pytest.skip(f"shared test data not found at {f} (the ../shared/data folder beside the repository)")
    monkeypatch.chdir(tmp_path)
    argv = ["infer", str(f), "--model", "ge", "--k-samples", "5", "--no-png", "--json", "r.json"]
    rc = main([*argv, "--device", "cpu"])
    err = capsys.readouterr().err
    # read and folded (the refusal names each parameter's measured share), then refused: 6 % of the
    # grid below 10 meV constrains nothing
    assert rc == 1 and "nothing is constrained" in err and "1NN_xx" in err
    assert not (tmp_path / "r.json").exists()
