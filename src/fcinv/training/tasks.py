"""Model-specific training tasks (data, batches, losses) and the ``train_*`` entry points.

* ``vae``: inputs are the min–max scaled training spectra (noisy copies with
  ``noise_augment``); loss = reconstruction + β·KL (:meth:`fcinv.models.VAE.loss`);
  the validation loss decodes μ (no sampling), so it is deterministic.
* ``regressor``: a frozen VAE encodes the spectra once (again every epoch with
  ``noise_augment``); the regressor is trained on latent samples z ~ N(μ, σ²)
  (``latent_input="sample"``, the inference-time distribution) or on μ, against
  θ standardised with the training split's mean and std; MSE loss; validated on μ.
* ``resnet``: scaled spectra → standardised θ, MSE loss.

With ``noise_augment`` every training batch gets fresh noise
(:class:`fcinv.noise.NoiseAugmenter`), the VAE is trained as a denoising VAE
(noisy input, clean reconstruction target), and the validation spectra are made
noisy once, with a fixed seed, so that early stopping selects for the noisy task
at a constant target.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn import functional as F

from fcinv.dataset.io import Dataset, default_command, read_dataset
from fcinv.grid import SpectrumGrid
from fcinv.models.checkpoint import check_grid
from fcinv.models.regressor import Regressor, RegressorConfig
from fcinv.models.resnet import ResNet18, ResNet18Config
from fcinv.models.scaling import Standardizer, minmax_scale
from fcinv.models.vae import VAE, VAEConfig
from fcinv.noise import NoiseAugmenter
from fcinv.training.trainer import TrainConfig, Trainer, TrainingError, TrainResult

log = logging.getLogger(__name__)

LatentInput = Literal["sample", "mu"]


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block (e.g. weight initialisation) with torch's global RNG seeded, then restore it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _batches(n: int, rng: np.random.Generator, batch_size: int) -> Iterator[np.ndarray]:
    perm = rng.permutation(n)
    for i in range(0, n, batch_size):
        idx = perm[i : i + batch_size]
        if len(idx) < 2 and n >= 2:  # BatchNorm needs 2 samples; fold a lone last sample away
            continue
        yield np.sort(idx)


def _load_parts(ds: Dataset, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    th_tr, x_tr = ds.part("train", cfg.max_train)
    th_va, x_va = ds.part("val", cfg.max_val)
    if len(th_tr) < 2 or len(th_va) < 1:
        raise TrainingError(
            f"dataset has {len(th_tr)} training and {len(th_va)} validation samples; training needs >= 2 and >= 1. Use a larger dataset."
        )
    return th_tr, minmax_scale(x_tr), th_va, minmax_scale(x_va)


def _dataset_info(ds: Dataset) -> dict:
    return {
        "dataset": {
            "path": str(Path(ds.path).resolve()) if ds.path else "",
            "content_hash": ds.content_hash,
            "material": ds.meta.get("material", ""),
            "n": ds.n,
            "seed": ds.meta.get("seed"),
        }
    }


def _encode(
    vae: VAE, x: np.ndarray, device: torch.device, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    mus, lvs = [], []
    vae.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            mu, lv = vae.encode(torch.from_numpy(x[i : i + batch_size]).to(device))
            mus.append(mu)
            lvs.append(lv)
    return torch.cat(mus), torch.cat(lvs)


class _SpectraTask:
    """Shared data handling of tasks whose input is a batch of scaled spectra."""

    kind = ""

    def __init__(self, ds: Dataset, cfg: TrainConfig) -> None:
        self.grid: SpectrumGrid = ds.grid
        self.names: tuple[str, ...] = ds.names
        self.cfg = cfg
        self.ds_info = _dataset_info(ds)
        self.theta_tr, self.x_tr, self.theta_va, self.x_va = _load_parts(ds, cfg)
        self.augmenter = NoiseAugmenter() if cfg.noise_augment else None
        self.x_va_clean = self.x_va
        if self.augmenter is not None:
            self.x_va = self.augmenter(self.x_va, np.random.default_rng([cfg.seed, 7]))
        self.device = torch.device("cpu")

    def setup(self, device: torch.device, rng: np.random.Generator) -> None:
        self.device = device

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        pass

    def _inputs(self, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        x = self.x_tr[idx]
        if self.augmenter is not None:
            x = self.augmenter(x, rng)
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Any]:
        for idx in _batches(len(self.x_tr), rng, batch_size):
            yield idx, self._inputs(idx, rng)

    def checkpoint_extra(self, out_dir: Path) -> dict:
        extra = dict(self.ds_info)
        extra["noise_augment"] = self.augmenter.to_dict() if self.augmenter is not None else None
        return extra


class VAETask(_SpectraTask):
    """Train a :class:`VAE` on the dataset's spectra."""

    kind = "vae"
    target_scaling = None

    def __init__(
        self, ds: Dataset, cfg: TrainConfig, model_config: VAEConfig | None = None, **arch: Any
    ) -> None:
        super().__init__(ds, cfg)
        model_config = model_config or VAEConfig(input_shape=ds.grid.shape, **arch)
        if tuple(model_config.input_shape) != ds.grid.shape:
            raise TrainingError(
                f"VAEConfig.input_shape={model_config.input_shape} but the dataset's spectra are {ds.grid.shape}. Use the dataset's shape."
            )
        with seeded(cfg.seed):
            self.model = VAE(model_config)

    def train_loss(self, batch, generator):
        idx, x = batch
        target = x if self.augmenter is None else torch.from_numpy(self.x_tr[idx]).to(self.device)
        out = self.model(x, generator=generator)
        parts = self.model.loss(target, out)
        return parts["loss"], {k: float(v.detach()) for k, v in parts.items()}

    def validate(self) -> dict[str, float]:
        tot: dict[str, float] = {}
        n, bs = len(self.x_va), self.cfg.eval_batch_size
        for i in range(0, n, bs):
            x = torch.from_numpy(self.x_va[i : i + bs]).to(self.device)
            target = torch.from_numpy(self.x_va_clean[i : i + bs]).to(self.device)
            parts = self.model.loss(target, self.model(x, sample=False))
            for k, v in parts.items():
                tot[k] = tot.get(k, 0.0) + float(v) * len(x)
        return {k: v / n for k, v in tot.items()}


class ResNetTask(_SpectraTask):
    """Train a :class:`ResNet18` from scaled spectra to standardised θ."""

    kind = "resnet"

    def __init__(
        self,
        ds: Dataset,
        cfg: TrainConfig,
        model_config: ResNet18Config | None = None,
        pretrained: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(ds, cfg)
        self.target_scaling = Standardizer.fit(self.theta_tr)
        self.y_tr = self.target_scaling.transform(self.theta_tr)
        self.y_va = self.target_scaling.transform(self.theta_va)
        model_config = model_config or ResNet18Config(
            input_shape=ds.grid.shape, n_out=ds.k, pretrained=str(pretrained or "")
        )
        if model_config.n_out != ds.k or tuple(model_config.input_shape) != ds.grid.shape:
            raise TrainingError(
                f"ResNet18Config {model_config.input_shape}→{model_config.n_out} does not fit the dataset {ds.grid.shape}→{ds.k}."
            )
        with seeded(cfg.seed):
            self.model = ResNet18(model_config)
        if pretrained:
            loaded = self.model.load_pretrained(pretrained)
            log.info("loaded %d pretrained tensors from %s", len(loaded), pretrained)

    def train_loss(self, batch, generator):
        idx, x = batch
        y = torch.from_numpy(self.y_tr[idx]).to(self.device)
        loss = F.mse_loss(self.model(x), y)
        return loss, {"loss": float(loss.detach())}

    def validate(self) -> dict[str, float]:
        se, n = 0.0, len(self.x_va)
        for i in range(0, n, self.cfg.eval_batch_size):
            x = torch.from_numpy(self.x_va[i : i + self.cfg.eval_batch_size]).to(self.device)
            y = torch.from_numpy(self.y_va[i : i + self.cfg.eval_batch_size]).to(self.device)
            se += float(((self.model(x) - y) ** 2).mean(dim=1).sum())
        return {"loss": se / n}


class RegressorTask(_SpectraTask):
    """Train a :class:`Regressor` on the latent space of a frozen VAE."""

    kind = "regressor"

    def __init__(
        self,
        ds: Dataset,
        cfg: TrainConfig,
        vae_dir: str | os.PathLike,
        model_config: RegressorConfig | None = None,
        latent_input: LatentInput = "sample",
        **arch: Any,
    ) -> None:
        super().__init__(ds, cfg)
        if latent_input not in ("sample", "mu"):
            raise TrainingError(f"latent_input={latent_input!r} is unknown. Use 'sample' or 'mu'.")
        self.vae_dir = Path(vae_dir)
        self.vae = VAE.from_checkpoint(self.vae_dir)
        check_grid(self.vae.checkpoint.grid, ds.grid, f"VAE checkpoint {self.vae_dir}")
        vhash = self.vae.checkpoint.raw.get("dataset", {}).get("content_hash")
        if vhash and ds.content_hash and vhash != ds.content_hash:
            log.warning("the VAE in %s was trained on another dataset than %s", self.vae_dir, ds.path)
        for p in self.vae.parameters():
            p.requires_grad_(False)
        self.latent_input = latent_input
        self.target_scaling = Standardizer.fit(self.theta_tr)
        self.y_tr = self.target_scaling.transform(self.theta_tr)
        self.y_va = self.target_scaling.transform(self.theta_va)
        d = self.vae.config.latent_dim
        model_config = model_config or RegressorConfig(latent_dim=d, n_out=ds.k, **arch)
        if model_config.latent_dim != d or model_config.n_out != ds.k:
            raise TrainingError(
                f"RegressorConfig {model_config.latent_dim}→{model_config.n_out} does not fit the VAE latent {d} and k={ds.k}."
            )
        with seeded(cfg.seed):
            self.model = Regressor(model_config)

    def setup(self, device: torch.device, rng: np.random.Generator) -> None:
        self.device = device
        self.vae.to(device).eval()
        bs = self.cfg.eval_batch_size
        self.mu_va, _ = _encode(self.vae, self.x_va, device, bs)
        self.mu_tr, self.lv_tr = _encode(self.vae, self.x_tr, device, bs)

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        if self.augmenter is not None:
            noisy = np.concatenate(
                [self.augmenter(self.x_tr[i : i + 1024], rng) for i in range(0, len(self.x_tr), 1024)]
            )
            self.mu_tr, self.lv_tr = _encode(self.vae, noisy, self.device, self.cfg.eval_batch_size)

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Any]:
        for idx in _batches(len(self.y_tr), rng, batch_size):
            yield torch.from_numpy(idx).to(self.device)

    def train_loss(self, batch, generator):
        idx = batch
        mu = self.mu_tr[idx]
        z = VAE.reparameterize(mu, self.lv_tr[idx], generator) if self.latent_input == "sample" else mu
        y = torch.from_numpy(self.y_tr[idx.cpu().numpy()]).to(self.device)
        loss = F.mse_loss(self.model(z), y)
        return loss, {"loss": float(loss.detach())}

    def validate(self) -> dict[str, float]:
        pred = self.model(self.mu_va)
        y = torch.from_numpy(self.y_va).to(self.device)
        return {"loss": float(((pred - y) ** 2).mean())}

    def checkpoint_extra(self, out_dir: Path) -> dict:
        extra = super().checkpoint_extra(out_dir)
        extra["latent_input"] = self.latent_input
        extra["vae"] = {
            "path": os.path.relpath(self.vae_dir.resolve(), start=Path(out_dir).resolve()),
            "abs_path": str(self.vae_dir.resolve()),
            "weights_sha256": self.vae.checkpoint.weights_sha256,
        }
        return extra


# ------------------------------------------------------------------------ entry points
def _open(data: str | os.PathLike | Dataset) -> Dataset:
    return data if isinstance(data, Dataset) else read_dataset(data, lazy=True)


def _run(make_task, data, out_dir, cfg: TrainConfig, resume: bool, command: str | None) -> TrainResult:
    ds = _open(data)
    try:
        task = make_task(ds)
    finally:
        ds.close()
    return Trainer(task, out_dir, cfg, command=command or default_command()).fit(resume=resume)


def train_vae(
    data: str | os.PathLike | Dataset,
    out_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    model_config: VAEConfig | None = None,
    *,
    resume: bool = False,
    command: str | None = None,
    **arch: Any,
) -> TrainResult:
    """Train a VAE on a dataset file (or :class:`Dataset`) into the checkpoint directory ``out_dir``.

    ``arch`` are :class:`VAEConfig` fields (``latent_dim``, ``beta``, ...) used when
    ``model_config`` is None.
    """
    return _run(lambda ds: VAETask(ds, config, model_config, **arch), data, out_dir, config, resume, command)


def train_regressor(
    data: str | os.PathLike | Dataset,
    out_dir: str | os.PathLike,
    vae_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    model_config: RegressorConfig | None = None,
    *,
    latent_input: LatentInput = "sample",
    resume: bool = False,
    command: str | None = None,
    **arch: Any,
) -> TrainResult:
    """Train the latent → θ regressor on the frozen VAE in ``vae_dir``."""
    return _run(
        lambda ds: RegressorTask(ds, config, vae_dir, model_config, latent_input, **arch),
        data,
        out_dir,
        config,
        resume,
        command,
    )


def train_resnet(
    data: str | os.PathLike | Dataset,
    out_dir: str | os.PathLike,
    config: TrainConfig = TrainConfig(),
    model_config: ResNet18Config | None = None,
    *,
    pretrained: str | os.PathLike | None = None,
    resume: bool = False,
    command: str | None = None,
) -> TrainResult:
    """Train ResNet-18 (from scratch, or from ImageNet weights in the local file ``pretrained``)."""
    return _run(
        lambda ds: ResNetTask(ds, config, model_config, pretrained), data, out_dir, config, resume, command
    )
