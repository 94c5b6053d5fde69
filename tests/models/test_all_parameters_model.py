"""Every parameter in the cutoff through dataset → VAE + regressor → prediction with σ (tiny set)."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.dataset import generate, read_dataset
from fcinv.dataset.randomise import PaperConditioner, Randomisation
from fcinv.inference import FCPredictor
from fcinv.reference import load_reference
from fcinv.training import TrainConfig, train_regressor, train_vae

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_all_parameters_dataset_to_prediction(tmp_path):
    ref = load_reference("Ge")
    model = ref.forward_model()
    assert model.k == ref.space.n_params == 16
    path = generate(
        PaperConditioner(model),
        ref.domain(),
        48,
        tmp_path / "ge16.h5",
        randomisation=Randomisation(group=6),
        seed=0,
        chunk=60,
        progress=False,
        command="test",
    )
    ds = read_dataset(path)
    assert ds.names == tuple(ref.sampled) and ds.conditions["background"].shape == (48,)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=3e-3, progress=False, seed=0)
    train_vae(path, tmp_path / "vae", cfg, latent_dim=4, channels=(4, 8), hidden_dim=32, beta=0.01)
    train_regressor(path, tmp_path / "reg", tmp_path / "vae", cfg, hidden=(16,))
    p = FCPredictor.from_vae_regressor(tmp_path / "vae", tmp_path / "reg")
    assert p.names == tuple(ref.sampled)
    r = p.predict(ds.spectra[0], k_samples=8)
    assert r.theta.shape == (16,) and r.sigma.shape == (16,)
    assert np.all(np.isfinite(r.theta)) and np.all(r.sigma > 0)


def test_beyond_five_shells_dataset_to_model_to_one_stage_refinement(tmp_path):
    """A 6-shell all-parameter model: the Pipeline works in its space (not the material's 5 shells), and
    the refinement continued 'into' shells not above the model's own is one stage in that space."""
    from fcinv.experiment.folded import FoldedSpectrum
    from fcinv.fitting.continuation import refine_in_shells
    from fcinv.pipeline import Pipeline, PipelineConfig
    from fcinv.pipeline.core import model_reference

    ref = load_reference("Ge", 6)
    assert ref.n_shells == 6 and ref.space.n_params > load_reference("Ge").space.n_params
    from fcinv.material import load_material

    # 20 energy bins: seconds, not minutes
    model = ref.forward_model(grid=load_material("Ge").grid(e_step=2.0))
    path = generate(
        PaperConditioner(model),
        ref.domain(),
        48,
        tmp_path / "ge6.h5",
        randomisation=Randomisation(group=6, clean_fraction=1.0),
        seed=1,
        chunk=60,
        progress=False,
        command="test",
    )
    cfg = TrainConfig(epochs=2, batch_size=16, lr=3e-3, progress=False, seed=0)
    train_vae(path, tmp_path / "vae", cfg, latent_dim=4, channels=(4, 8), hidden_dim=32, beta=0.01)
    train_regressor(path, tmp_path / "reg", tmp_path / "vae", cfg, hidden=(16,))
    p = FCPredictor.from_vae_regressor(tmp_path / "vae", tmp_path / "reg")
    assert p.names == tuple(ref.sampled)
    pipe = Pipeline(p, "Ge", config=PipelineConfig(k_samples=4, trust=False))
    assert pipe.reference is model_reference(pipe.material, p.names) and pipe.reference.n_shells == 6
    assert tuple(pipe.forward_model.names) == p.names and pipe.forward_model.space.n_params == len(p.names)
    ds = read_dataset(path)
    truth = ds.theta.mean(axis=0)  # a crystal inside the training domain, in the model's order
    spec = model.spectra(truth)[0]
    pred, ml = pipe.predict(pipe.fold(FoldedSpectrum.from_arrays(spec.astype(float), model.grid)))
    assert ml.extra["n_shells"] == 6 and "in_domain" in ml.adequacy
    res = refine_in_shells(pipe.forward_model, spec, pred, [5, 6], max_nfev=200)
    assert [s["shells"] for s in res.extra["stages"]] == [6]  # no stage at or below the model's own count
    assert res.extra["n_shells"] == 6 and "sigma_cutoff" not in res.extra
    assert res.success and list(res.names) == list(p.names)
    # the fit moves the ML answer towards the crystal that made the spectrum
    err_fit = np.abs(res.theta - truth).max()
    assert err_fit < 0.5 * np.abs(np.asarray(pred.theta) - truth).max() and err_fit < 0.05, err_fit


def test_model_reference_names_the_smallest_space_and_rejects_strangers():
    from fcinv.errors import DataError
    from fcinv.material import load_material
    from fcinv.pipeline.core import model_reference

    ge = load_material("Ge")
    assert model_reference(ge, ["1NN_xx", "2NN_zz"]) is ge.reference  # inside the material's 5 shells
    eleven = load_reference("Ge", 11)
    assert model_reference(ge, eleven.sampled).n_shells == 11
    # 7NN and 8NN share one distance: a name of 8NN needs 7 shells, not 8
    seven = load_reference("Ge", 7)
    far = [n for n in seven.space.names if n.startswith("8NN")]
    assert far and model_reference(ge, far).n_shells == 7
    with pytest.raises(DataError, match="no parameters of Ge"):
        model_reference(ge, ["1NN_xx", "99NN_xx"])
