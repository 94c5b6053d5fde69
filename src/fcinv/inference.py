"""Predict force constants from a spectrum with a trained model.

``load_model("ge")`` (a shipped model) or ``load_model(DIR)`` (a checkpoint)
returns an :class:`FCPredictor`. For the VAE path, ``predict`` encodes the
min–max scaled spectrum to N(μ, σ²), draws K latent samples, passes them
through the regressor and reports the mean and standard deviation of the K
θ samples (the paper's uncertainty), the latent distribution and the
reconstruction decoded from μ. The ResNet path gives a point estimate (σ = 0).

Model directories: a checkpoint of kind ``resnet``; a checkpoint of kind
``regressor`` (its VAE is found through the path recorded in its config); or a
folder holding ``vae/`` and ``regressor/`` (and/or ``resnet/``) checkpoints, such
as the shipped ``fcinv/data/models/<material>/``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from fcinv.errors import CheckpointError, GridError, MaterialError
from fcinv.grid import SpectrumGrid
from fcinv.models.checkpoint import CONFIG, check_grid, read_checkpoint_config
from fcinv.models.regressor import Regressor
from fcinv.models.resnet import ResNet18
from fcinv.models.scaling import Standardizer, minmax_scale
from fcinv.models.vae import VAE

log = logging.getLogger(__name__)

#: Folder of the shipped models, one sub-folder per material (``ge``, ``nb``).
MODELS_DIR = Path(__file__).resolve().parent / "data" / "models"
ModelKind = Literal["auto", "vae", "resnet"]


@dataclass
class Prediction:
    """Force constants inferred from one spectrum.

    Attributes
    ----------
    names
        The k parameter names.
    theta
        Shape (k,) float64, eV/Å²: the mean prediction.
    sigma
        Shape (k,) float64, eV/Å²: standard deviation over the latent samples (0 for ResNet).
    samples
        Shape (K, k) float64, eV/Å²: the per-sample predictions (None for ResNet or K = 0).
    mu, logvar
        Shape (latent_dim,) float32: the latent distribution (None for ResNet).
    reconstruction
        Shape (n_q, n_E) float32 in [0, 1]: decoded from μ (None for ResNet).
    spectrum
        Shape (n_q, n_E) float32: the scaled input the model saw.
    """

    names: tuple[str, ...]
    theta: np.ndarray
    sigma: np.ndarray
    samples: np.ndarray | None = None
    mu: np.ndarray | None = None
    logvar: np.ndarray | None = None
    reconstruction: np.ndarray | None = None
    spectrum: np.ndarray | None = field(default=None, repr=False)

    method: str = "ML"
    k_samples: int = 0
    seed: int | None = None

    def as_dict(self) -> dict:
        """θ and σ by name, in eV/Å² (JSON-able)."""
        return {
            n: {"theta": float(t), "sigma": float(s)} for n, t, s in zip(self.names, self.theta, self.sigma)
        }

    @property
    def reconstruction_rms(self) -> float | None:
        """RMS of (reconstruction − scaled input) over the measured pixels, [0, 1] units (None for ResNet)."""
        if self.reconstruction is None or self.spectrum is None:
            return None
        x = np.asarray(self.spectrum, float)
        ok = np.isfinite(x)
        return (
            float(np.sqrt(np.mean((np.asarray(self.reconstruction, float)[ok] - x[ok]) ** 2)))
            if ok.any()
            else None
        )

    def to_result(
        self, *, material: str | None = None, adequacy: dict | None = None, extra: dict | None = None
    ):
        """This prediction as an :class:`fcinv.result.FCResult` (σ: the spread over latent samples)."""
        from fcinv.io.provenance import Provenance
        from fcinv.result import SIGMA_ML, SIGMA_POINT, FCResult

        adq = {} if self.reconstruction_rms is None else {"reconstruction_rms": self.reconstruction_rms}
        adq.update(adequacy or {})
        spread = self.k_samples > 1
        ext = {"k_samples": int(self.k_samples)}
        ext.update(extra or {})
        return FCResult(
            self.names,
            self.theta,
            self.sigma,
            method=self.method,
            sigma_meaning=SIGMA_ML if spread else SIGMA_POINT,
            material=material,
            adequacy=adq,
            provenance=Provenance.now(seed=self.seed),
            extra=ext,
        )


class FCPredictor:
    """A trained inversion model: VAE + regressor, or ResNet-18.

    Build it with :func:`load_model`, :meth:`from_vae_regressor` or :meth:`from_resnet`.
    """

    def __init__(
        self,
        *,
        grid: SpectrumGrid,
        names: tuple[str, ...],
        target_scaling: Standardizer,
        vae: VAE | None = None,
        regressor: Regressor | None = None,
        resnet: ResNet18 | None = None,
        device: torch.device | str = "cpu",
        source: str = "",
    ) -> None:
        if resnet is None and (vae is None or regressor is None):
            raise CheckpointError(
                "a predictor needs a VAE and a regressor, or a ResNet. Load both checkpoints."
            )
        self.grid = grid
        self.names = tuple(names)
        self.target_scaling = target_scaling
        self.vae, self.regressor, self.resnet = vae, regressor, resnet
        self.device = torch.device(device)
        self.source = source
        for m in (vae, regressor, resnet):
            if m is not None:
                m.to(self.device).eval()

    @property
    def kind(self) -> str:
        """``"vae"`` (VAE + regressor) or ``"resnet"``."""
        return "resnet" if self.resnet is not None else "vae"

    @property
    def latent_dim(self) -> int | None:
        return self.vae.config.latent_dim if self.vae is not None else None

    def __repr__(self) -> str:
        return (
            f"FCPredictor(kind={self.kind!r}, names={list(self.names)}, grid={self.grid.shape}, "
            f"source={self.source!r})"
        )

    # ----------------------------------------------------------- constructors
    @classmethod
    def from_vae_regressor(
        cls, vae_dir: str | os.PathLike, regressor_dir: str | os.PathLike, device: str | None = "cpu"
    ) -> FCPredictor:
        """Load a VAE and the regressor trained on its latent space.

        Raises
        ------
        CheckpointError
            Corrupt checkpoints, or a regressor trained on another VAE.
        GridError
            The two checkpoints were made for different grids.
        """
        from fcinv.devices import resolve_device

        dev = resolve_device(device)
        vae = VAE.from_checkpoint(vae_dir, map_location=dev)
        reg = Regressor.from_checkpoint(regressor_dir, map_location=dev)
        rmeta, vmeta = reg.checkpoint, vae.checkpoint
        check_grid(rmeta.grid, vmeta.grid, f"regressor checkpoint {regressor_dir}")
        want = rmeta.raw.get("vae", {}).get("weights_sha256")
        if want and want != vmeta.weights_sha256:
            raise CheckpointError(
                f"the regressor in {regressor_dir} was trained on another VAE than {vae_dir} (weights "
                "differ). Pair it with its own VAE or retrain it."
            )
        if reg.config.latent_dim != vae.config.latent_dim:
            raise CheckpointError(
                f"regressor latent size {reg.config.latent_dim} != VAE latent size "
                f"{vae.config.latent_dim}. Pair matching checkpoints."
            )
        if rmeta.target_scaling is None:
            raise CheckpointError(
                f"regressor checkpoint {regressor_dir} lacks its target scaling. Retrain it."
            )
        return cls(
            grid=vmeta.grid,
            names=rmeta.names,
            target_scaling=rmeta.target_scaling,
            vae=vae,
            regressor=reg,
            device=dev,
            source=str(regressor_dir),
        )

    @classmethod
    def from_resnet(cls, resnet_dir: str | os.PathLike, device: str | None = "cpu") -> FCPredictor:
        """Load a ResNet-18 checkpoint."""
        from fcinv.devices import resolve_device

        dev = resolve_device(device)
        net = ResNet18.from_checkpoint(resnet_dir, map_location=dev)
        meta = net.checkpoint
        if meta.target_scaling is None:
            raise CheckpointError(f"ResNet checkpoint {resnet_dir} lacks its target scaling. Retrain it.")
        return cls(
            grid=meta.grid,
            names=meta.names,
            target_scaling=meta.target_scaling,
            resnet=net,
            device=dev,
            source=str(resnet_dir),
        )

    # ---------------------------------------------------------------- inputs
    def _prepare(self, spectra: np.ndarray, grid: SpectrumGrid | None, single: bool) -> np.ndarray:
        if grid is not None:
            check_grid(self.grid, grid, f"the {self.kind} model ({self.source or 'in memory'})")
        x = np.asarray(spectra, dtype=np.float32)
        want = self.grid.shape
        if (single and x.shape != want) or (not single and (x.ndim != 3 or x.shape[1:] != want)):
            expect = f"{want}" if single else f"(N, {want[0]}, {want[1]})"
            raise GridError(
                f"spectrum has shape {x.shape}; this model expects {expect} (n_q, n_E) on its grid "
                f"({self.grid.material or 'unnamed'}, {want[0]} q-bins × {want[1]} E-bins). Fold/rebin the "
                "data onto the model's grid."
            )
        return minmax_scale(x)

    # ------------------------------------------------------------- prediction
    @property
    def material(self) -> str | None:
        """The material the model was trained for (its grid's), or None."""
        return self.grid.material or None

    def describe(self) -> str:
        """One line: the kind of model and where it came from."""
        what = "ResNet-18" if self.kind == "resnet" else "VAE + latent regressor"
        return f"{what} ({self.source or 'in memory'})"

    def predict(
        self, spectrum, k_samples: int = 100, seed: int = 0, grid: SpectrumGrid | None = None
    ) -> Prediction:
        """Infer θ from one spectrum.

        Parameters
        ----------
        spectrum
            A :class:`~fcinv.experiment.folded.FoldedSpectrum` (its grid is checked against the
            model's), or an array of shape (n_q, n_E), any intensity units (min–max scaled here),
            NaN = masked pixel.
        k_samples
            Latent samples K for the mean and σ (VAE path); 0 uses μ only (σ = 0).
        seed
            Seed of the latent samples.
        grid
            The spectrum's grid, checked against the model's when given.

        Raises
        ------
        GridError
            The spectrum's shape or grid differs from the model's.
        """
        if hasattr(spectrum, "mask") and hasattr(spectrum, "grid"):  # a FoldedSpectrum
            grid = spectrum.grid if grid is None else grid
            spectrum = np.where(spectrum.mask, spectrum.intensity, np.nan)
        x = self._prepare(spectrum, grid, single=True)
        xt = torch.from_numpy(x)[None].to(self.device)
        k_used = 0 if self.resnet is not None else int(k_samples)
        label = f"ML: {self.describe()}" + (f", mean over {k_used} latent samples" if k_used > 0 else "")
        info = {"method": label, "k_samples": k_used, "seed": int(seed) if k_used > 0 else None}
        with torch.inference_mode():
            if self.resnet is not None:
                theta = self.target_scaling.inverse(self.resnet(xt)[0].cpu().numpy())
                return Prediction(self.names, theta, np.zeros_like(theta), spectrum=x, **info)
            assert self.vae is not None and self.regressor is not None
            mu, logvar = self.vae.encode(xt)
            recon = self.vae.decode(mu)[0].cpu().numpy()
            if k_samples > 0:
                gen = torch.Generator(device=self.device)
                gen.manual_seed(int(seed))
                z = VAE.reparameterize(mu.expand(k_samples, -1), logvar.expand(k_samples, -1), gen)
                samples = self.target_scaling.inverse(self.regressor(z).cpu().numpy())
                theta, sigma = (
                    samples.mean(axis=0),
                    samples.std(axis=0, ddof=1) if k_samples > 1 else np.zeros(len(self.names)),
                )
            else:
                samples = None
                theta = self.target_scaling.inverse(self.regressor(mu)[0].cpu().numpy())
                sigma = np.zeros_like(theta)
        return Prediction(
            self.names,
            theta,
            sigma,
            samples=samples,
            mu=mu[0].cpu().numpy(),
            logvar=logvar[0].cpu().numpy(),
            reconstruction=recon,
            spectrum=x,
            **info,
        )

    def predict_batch(
        self,
        spectra: np.ndarray,
        k_samples: int = 0,
        seed: int = 0,
        batch_size: int = 256,
        grid: SpectrumGrid | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Infer θ for a stack of spectra.

        Parameters
        ----------
        spectra
            Shape (N, n_q, n_E).
        k_samples
            0: regress μ (deterministic; used for test metrics); K > 0: mean and σ over K latent samples.

        Returns
        -------
        (theta, sigma)
            Each of shape (N, k) float64, eV/Å² (σ = 0 for ResNet or K = 0).
        """
        x = self._prepare(spectra, grid, single=False)
        thetas, sigmas = [], []
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(seed))
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                xt = torch.from_numpy(x[i : i + batch_size]).to(self.device)
                if self.resnet is not None:
                    y = self.target_scaling.inverse(self.resnet(xt).cpu().numpy())
                    thetas.append(y)
                    sigmas.append(np.zeros_like(y))
                    continue
                mu, logvar = self.vae.encode(xt)  # type: ignore[union-attr]
                if k_samples > 0:
                    b, d = mu.shape
                    z = VAE.reparameterize(
                        mu[:, None].expand(b, k_samples, d), logvar[:, None].expand(b, k_samples, d), gen
                    )
                    s = self.target_scaling.inverse(self.regressor(z).cpu().numpy())  # type: ignore[misc]
                    thetas.append(s.mean(axis=1))
                    sigmas.append(s.std(axis=1, ddof=1) if k_samples > 1 else np.zeros_like(s[:, 0]))
                else:
                    y = self.target_scaling.inverse(self.regressor(mu).cpu().numpy())  # type: ignore[misc]
                    thetas.append(y)
                    sigmas.append(np.zeros_like(y))
        k = len(self.names)
        if not thetas:
            return np.zeros((0, k)), np.zeros((0, k))
        return np.concatenate(thetas), np.concatenate(sigmas)

    def encode(self, spectra: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Latent μ and log σ², each (N, latent_dim) float32, for spectra (N, n_q, n_E) (VAE only)."""
        if self.vae is None:
            raise CheckpointError("this predictor is a ResNet; it has no latent space. Load a VAE model.")
        x = self._prepare(spectra, None, single=False)
        mus, lvs = [], []
        with torch.inference_mode():
            for i in range(0, len(x), batch_size):
                mu, lv = self.vae.encode(torch.from_numpy(x[i : i + batch_size]).to(self.device))
                mus.append(mu.cpu().numpy())
                lvs.append(lv.cpu().numpy())
        d = self.vae.config.latent_dim
        return (
            (np.concatenate(mus), np.concatenate(lvs))
            if mus
            else (np.zeros((0, d), np.float32), np.zeros((0, d), np.float32))
        )

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Latent vectors (N, latent_dim) → reconstructions (N, n_q, n_E) in [0, 1] (VAE only)."""
        if self.vae is None:
            raise CheckpointError("this predictor is a ResNet; it has no decoder. Load a VAE model.")
        with torch.inference_mode():
            return (
                self.vae.decode(torch.as_tensor(np.asarray(z, dtype=np.float32), device=self.device))
                .cpu()
                .numpy()
            )


# ------------------------------------------------------------ what a model reads
#: Intensity models a checkpoint can have been trained on.
INTENSITY_MODELS = ("paper", "physical")


@dataclass(frozen=True)
class InputConvention:
    """What a trained model reads and which forward model matches it.

    Attributes
    ----------
    intensity
        ``"paper"`` (weight-1 Gaussian lines, :class:`~fcinv.forward.ForwardModel`) or ``"physical"``
        (coherent one-phonon intensity, :class:`~fcinv.forward.physical.PhysicalModel`).
    fold
        The fold convention of its training input: ``"one_phonon"`` (Bose, |Q|², E corrections,
        ``fcinv fold --one-phonon T``) or ``"raw"``.
    preprocessing
        The input preprocessing (:func:`fcinv.dataset.preprocess.prepare_input` for every shipped model).
    recorded
        Whether the checkpoint recorded this (``training_input`` in its config) or it is the default
        of a checkpoint written before the key existed (paper intensity, one-phonon fold).
    """

    intensity: str = "paper"
    fold: str = "one_phonon"
    preprocessing: str = "fcinv.dataset.preprocess.prepare_input"
    recorded: bool = False


def input_convention(model) -> InputConvention:
    """The :class:`InputConvention` of a model: an :class:`FCPredictor` or a checkpoint directory.

    Read from ``training_input`` of the regressor's (or ResNet's) ``config.json``; a checkpoint
    without it was trained on the paper intensity of the one-phonon-corrected fold (every model
    before the physical forward model existed).

    Raises
    ------
    CheckpointError
        An intensity or fold name the package does not know.
    """
    src = Path(str(getattr(model, "source", model)))
    cfg: dict = {}
    if (src / CONFIG).is_file():
        cfg = read_checkpoint_config(src)
    ti = cfg.get("training_input")
    if not ti:
        return InputConvention()
    conv = InputConvention(
        intensity=str(ti.get("intensity", "paper")),
        fold=str(ti.get("fold", "one_phonon")),
        preprocessing=str(ti.get("preprocessing", InputConvention.preprocessing)),
        recorded=True,
    )
    if conv.intensity not in INTENSITY_MODELS:
        raise CheckpointError(
            f"{src}: training_input.intensity = {conv.intensity!r}; expected one of {INTENSITY_MODELS}. "
            "Fix the checkpoint's config.json."
        )
    if conv.fold not in ("one_phonon", "raw"):
        raise CheckpointError(
            f"{src}: training_input.fold = {conv.fold!r}; expected 'one_phonon' or 'raw'. "
            "Fix the checkpoint's config.json."
        )
    return conv


# ---------------------------------------------------------------------- loading
def available_models() -> list[str]:
    """Names of the shipped models (sub-folders of :data:`MODELS_DIR`)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def _vae_of_regressor(reg_dir: Path) -> Path:
    cfg = read_checkpoint_config(reg_dir, "regressor")
    info = cfg.get("vae") or {}
    for cand in (
        reg_dir / str(info.get("path", "")),
        Path(str(info.get("abs_path", ""))),
        reg_dir.parent / "vae",
    ):
        if str(cand) and (cand / CONFIG).exists():
            return cand
    raise CheckpointError(
        f"the VAE of regressor {reg_dir} is not at {info.get('path')!r} (relative to it) nor next to it. "
        "Pass the folder holding vae/ and regressor/."
    )


def load_model(
    name_or_dir: str | os.PathLike, kind: ModelKind = "auto", device: str | None = "cpu"
) -> FCPredictor:
    """Load a shipped model by material name (``"ge"``, ``"nb"``) or a model directory.

    Parameters
    ----------
    name_or_dir
        A shipped model name or a directory (see the module docstring).
    kind
        In a folder holding both, ``"vae"`` or ``"resnet"``; ``"auto"`` prefers the VAE.
    device
        Torch device (see :func:`fcinv.devices.resolve_device`).

    Raises
    ------
    MaterialError
        An unknown name.
    CheckpointError
        A directory that holds no usable model, or corrupt checkpoints.
    """
    if kind not in ("auto", "vae", "resnet"):
        raise CheckpointError(f"kind={kind!r} is unknown. Use 'auto', 'vae' or 'resnet'.")
    path = Path(name_or_dir)
    if not path.is_dir():
        names = available_models()
        lookup = {n.lower(): n for n in names}
        key = str(name_or_dir).lower()
        if key not in lookup:
            shipped = ", ".join(names) if names else "none shipped in this installation"
            raise MaterialError(
                f"no model directory or shipped model named {str(name_or_dir)!r} (shipped: {shipped}). "
                "Pass a checkpoint directory from fcinv train."
            )
        path = MODELS_DIR / lookup[key]
    if (path / CONFIG).exists():
        ck = read_checkpoint_config(path).get("kind")
        if ck == "resnet":
            return FCPredictor.from_resnet(path, device)
        if ck == "regressor":
            return FCPredictor.from_vae_regressor(_vae_of_regressor(path), path, device)
        raise CheckpointError(
            f"{path} is a {ck} checkpoint, which predicts no force constants. Pass its regressor's "
            "directory or the folder holding vae/ and regressor/."
        )
    has_vae = (path / "vae" / CONFIG).exists() and (path / "regressor" / CONFIG).exists()
    has_resnet = (path / "resnet" / CONFIG).exists()
    if kind in ("auto", "vae") and has_vae:
        return FCPredictor.from_vae_regressor(path / "vae", path / "regressor", device)
    if kind in ("auto", "resnet") and has_resnet:
        return FCPredictor.from_resnet(path / "resnet", device)
    want = {"auto": "vae/ + regressor/ or resnet/", "vae": "vae/ + regressor/", "resnet": "resnet/"}[kind]
    parts = {"auto": ("vae", "regressor", "resnet"), "vae": ("vae", "regressor"), "resnet": ("resnet",)}[kind]
    missing = [f"{d}/{CONFIG}" for d in parts if (path / d).is_dir() and not (path / d / CONFIG).exists()]
    if missing:
        raise CheckpointError(
            f"{path} holds no {want} checkpoints: {', '.join(missing)} is missing. Restore it (fcinv train "
            "... --resume rewrites it from a complete run) or retrain that model."
        )
    raise CheckpointError(
        f"{path} holds no {want} checkpoints. Train them with fcinv train, or pass a checkpoint directory."
    )


def export_model(source: str | os.PathLike, dest: str | os.PathLike, kind: ModelKind = "auto") -> Path:
    """Copy a trained model's checkpoints (``config.json`` + ``weights.pt`` only) into ``dest``.

    ``dest`` becomes a model folder that :func:`load_model` reads (``dest/vae`` +
    ``dest/regressor``, or ``dest/resnet``), e.g. ``src/fcinv/data/models/ge`` for a
    shipped model; trainer states are left behind. The copy is loaded back and must
    predict exactly as the source does.

    Parameters
    ----------
    source
        Anything :func:`load_model` accepts.
    dest
        Target folder (created; existing checkpoint files in it are replaced).

    Returns
    -------
    Path
        ``dest``.
    """
    import shutil

    from fcinv.models.checkpoint import WEIGHTS

    pred = load_model(source, kind=kind)
    dest = Path(dest)
    parts = (
        {"resnet": pred.resnet} if pred.resnet is not None else {"vae": pred.vae, "regressor": pred.regressor}
    )
    for sub, model in parts.items():
        src_dir = model.checkpoint.path  # type: ignore[union-attr]
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS, CONFIG):
            tmp = dest / sub / f".{name}.tmp"
            shutil.copyfile(src_dir / name, tmp)
            os.replace(tmp, dest / sub / name)
    copy = load_model(dest, kind=pred.kind)
    x = np.random.default_rng(0).random((2, *pred.grid.shape)).astype(np.float32)
    if not np.array_equal(copy.predict_batch(x)[0], pred.predict_batch(x)[0]):
        raise CheckpointError(f"the exported model in {dest} does not predict like {source}. Export again.")
    return dest
