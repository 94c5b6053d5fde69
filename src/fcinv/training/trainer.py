"""The training loop: optimiser, learning-rate schedule, early stopping, checkpoints, resume.

The :class:`Trainer` knows nothing about the model beyond a :class:`Task` (see
``tasks.py``): the task yields batches and their losses; the trainer steps the
optimiser, validates after every epoch, keeps a copy of the best state dict,
writes the checkpoint directory whenever the validation loss improves, and
writes ``trainer_state.pt`` after every epoch so that a killed run continues
with ``resume=True`` from the last finished epoch, bit for bit on the CPU. Resuming with a
larger ``epochs`` trains a finished or early-stopped run on, continuing its history.

Randomness: batches and noise come from a ``np.random.Generator`` and latent
samples from a ``torch.Generator``, both made from ``TrainConfig.seed`` and
saved in the trainer state. Weight initialisation and any layer that draws from
torch's global generator run inside ``torch.random.fork_rng`` seeded from the
config, so the caller's global RNG state is left untouched.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from fcinv.errors import CheckpointError, FcinvError
from fcinv.grid import SpectrumGrid
from fcinv.models.checkpoint import (
    CONFIG,
    TRAINER_STATE,
    atomic_torch_save,
    read_checkpoint_config,
    torch_load,
)
from fcinv.models.scaling import Standardizer

log = logging.getLogger(__name__)


class TrainingError(FcinvError):
    """Bad training options or a training run that cannot continue."""


@dataclass(frozen=True)
class TrainConfig:
    """Options of a training run (the model architecture lives in the model's config).

    Parameters
    ----------
    epochs
        Maximum number of epochs.
    batch_size
        Training batch size.
    lr
        Initial learning rate of AdamW.
    weight_decay
        AdamW weight decay.
    patience
        Early stopping: stop after this many epochs without a validation improvement.
    min_delta
        Relative improvement of the validation loss that counts (``val < best·(1 − min_delta)``).
    lr_patience, lr_factor
        ReduceLROnPlateau: multiply the learning rate by ``lr_factor`` after
        ``lr_patience`` epochs without improvement.
    grad_clip
        Clip the gradient norm to this (None: no clipping).
    seed
        Seed of initialisation, shuffling, noise and latent sampling.
    device
        ``cpu``, ``cuda``, ``auto`` or None (see :func:`fcinv.devices.resolve_device`).
    noise_augment
        Train on noisy copies of the spectra (:class:`fcinv.noise.NoiseAugmenter`).
    max_train, max_val
        Use at most this many training / validation samples (the first ones of the split).
    eval_batch_size
        Batch size of validation and encoding passes.
    progress
        Show progress bars.
    """

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int = 10
    min_delta: float = 1e-4
    lr_patience: int = 4
    lr_factor: float = 0.5
    grad_clip: float | None = 10.0
    seed: int = 0
    device: str | None = None
    noise_augment: bool = False
    max_train: int | None = None
    max_val: int | None = None
    eval_batch_size: int = 256
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise TrainingError(f"{name}={getattr(self, name)} must be >= 1.")
        if not self.lr > 0:
            raise TrainingError(f"lr={self.lr} must be > 0. Pass e.g. --lr 1e-3.")
        if not 0 < self.lr_factor < 1:
            raise TrainingError(f"lr_factor={self.lr_factor} must be in (0, 1).")
        for name in ("max_train", "max_val"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise TrainingError(f"{name}={v} must be >= 1 (or omitted).")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Task(Protocol):
    """What the trainer needs from a model-specific task (see ``tasks.py``)."""

    kind: str
    model: torch.nn.Module
    grid: SpectrumGrid
    names: tuple[str, ...]
    target_scaling: Standardizer | None

    def setup(self, device: torch.device, rng: np.random.Generator) -> None:
        """Move data/model to ``device``; called once before the first epoch."""

    def on_epoch_start(self, epoch: int, rng: np.random.Generator) -> None:
        """Per-epoch preparation (e.g. re-encoding noisy spectra)."""

    def train_batches(self, rng: np.random.Generator, batch_size: int) -> Iterator[Any]:
        """Shuffled training batches of one epoch."""

    def train_loss(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss tensor to minimise and its parts (floats) for one batch."""

    def validate(self) -> dict[str, float]:
        """Validation metrics; ``"loss"`` is the early-stopping criterion."""

    def checkpoint_extra(self, out_dir: Path) -> dict:
        """Entries for config.json (dataset, model-specific provenance) of a checkpoint in ``out_dir``."""


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    out_dir: Path
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    stopped_early: bool
    history: list[dict]
    wall_s: float


class Trainer:
    """Train a task's model into the checkpoint directory ``out_dir``.

    The one training loop of fcinv: :class:`fcinv.training.distributed.DistributedTrainer`
    runs it too, overriding the few hooks below (``_wrap``, ``_batches``, ``_step``,
    ``_train_means``, ``_validate``, the RNG and rank-0 I/O hooks).

    Parameters
    ----------
    task
        Model, data and losses.
    out_dir
        Checkpoint directory (created).
    config
        Training options.
    command
        The command line recorded in the checkpoint.
    """

    #: this process and the number of processes (a torchrun job has more)
    rank: int = 0
    world_size: int = 1

    def __init__(self, task: Task, out_dir: str | Path, config: TrainConfig, command: str = "") -> None:
        self.task = task
        self.out_dir = Path(out_dir)
        self.config = config
        self.command = command

    # ------------------------------------------------------------------ state
    def _state_path(self) -> Path:
        return self.out_dir / TRAINER_STATE

    def _save_state(self, st: dict) -> None:
        if self.rank != 0:
            return
        st.setdefault("command", self.command)  # the run's first command: `fcinv train --resume` checks it
        atomic_torch_save(st, self._state_path())

    def _provenance(self) -> dict:
        """Extra config.json entries of this kind of run (the distributed trainer adds its own)."""
        return {}

    def _write_checkpoint(self, best_state: dict, summary: dict) -> None:
        if self.rank != 0:
            return
        extra = {
            "seed": self.config.seed,
            "command": self.command,
            "train_config": self.config.to_dict(),
            "training": summary,
            **self._provenance(),
            **self.task.checkpoint_extra(self.out_dir),
        }
        self.task.model.save_checkpoint(  # type: ignore[attr-defined]
            self.out_dir,
            grid=self.task.grid,
            names=self.task.names,
            target_scaling=self.task.target_scaling,
            extra=extra,
            state_dict=best_state,
        )

    def _summary(self, st: dict, wall: float) -> dict:
        return {
            "epochs_run": st["epoch"],
            "best_epoch": st["best_epoch"],
            "best_val_loss": st["best_val"],
            "stopped_early": st["stopped"],
            "wall_s": round(wall, 2),
            "history": st["history"],
        }

    def _start_problem(self, resume: bool) -> str | None:
        """Why this run cannot start in ``out_dir`` (None: it can)."""
        sp = self._state_path()
        if not resume and ((self.out_dir / CONFIG).exists() or sp.exists()):
            return (
                f"{self.out_dir} already holds a checkpoint. "
                "Pass --resume to continue it, or choose another --out."
            )
        if resume and not sp.exists():
            return f"nothing to resume in {self.out_dir} (no {sp.name}). Start without --resume."
        return None

    def _load_state(self) -> dict:
        """The trainer state to resume, checked against the task; the model gets its weights.

        Raises
        ------
        CheckpointError
            Another kind of run, another grid or another architecture.
        """
        sp = self._state_path()
        st = torch_load(sp, "trainer state")
        if not isinstance(st, dict) or st.get("kind") != self.task.kind:
            raise CheckpointError(
                f"{sp} is not the trainer state of a {self.task.kind} run. Start without --resume or pick "
                "the right --out."
            )
        if (self.out_dir / CONFIG).exists():
            old = read_checkpoint_config(self.out_dir)
            if old.get("grid_fingerprint") and old["grid_fingerprint"] != self.task.grid.fingerprint():
                raise CheckpointError(
                    f"{self.out_dir} was trained on another grid than --data. Resume with the same dataset."
                )
        try:
            self.task.model.load_state_dict(st["model"])
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(
                f"{sp} does not fit this model ({str(exc).splitlines()[0][:120]}). Resume with the same "
                "architecture options."
            ) from None
        return st

    # ------------------------------------------------------------------ hooks
    def _device(self) -> torch.device:
        from fcinv.devices import resolve_device

        return resolve_device(self.config.device)

    def _seed(self, what: int) -> int:
        """Seed of this process's latent-noise generator (``what=1``) or torch global RNG (``what=2``)."""
        return self.config.seed

    def _prepare(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The model to train, on ``device`` (before the task's setup)."""
        return model.to(device)

    def _wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module the training passes go through."""
        return model

    def _batches(self, rng: np.random.Generator) -> Iterator[tuple[Any, float]]:
        """``(batch, loss weight)`` of one epoch."""
        for batch in self.task.train_batches(rng, self.config.batch_size):
            yield batch, 1.0

    def _step(
        self,
        loss: torch.Tensor,
        weight: float,
        params: list[torch.nn.Parameter],
        opt: torch.optim.Optimizer,
        epoch: int,
    ) -> None:
        """One optimiser step on ``weight · loss``; a non-finite loss is a :class:`TrainingError`."""
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the {self.task.kind} training loss became {loss.item()} at epoch {epoch + 1}. Lower --lr "
                f"(now {opt.param_groups[0]['lr']:.2g}) or --beta."
            )
        opt.zero_grad(set_to_none=True)
        (loss * weight if weight != 1.0 else loss).backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        opt.step()

    def _train_means(self, sums: dict[str, float], n_batches: int) -> dict[str, float]:
        """The epoch's mean training loss parts."""
        return {f"train_{k}": v / max(n_batches, 1) for k, v in sums.items()}

    def _validate(self) -> dict[str, float]:
        """Validation metrics (``val_`` prefixed) of the model in eval mode."""
        with torch.no_grad():
            return {f"val_{k}": v for k, v in self.task.validate().items()}

    def _restore_rngs(self, st: dict, gen: torch.Generator) -> None:
        """Set the latent-noise generator from a resumed state (rank r takes rank r's, if saved)."""
        ranks = st.get("rng_torch_ranks", [st["rng_torch"]])
        if self.rank < len(ranks):
            gen.set_state(ranks[self.rank].cpu())
        if len(ranks) < self.world_size and self.rank == 0:
            log.warning(
                "resuming a %d-process run on %d processes: ranks beyond %d draw fresh latent noise",
                len(ranks),
                self.world_size,
                len(ranks),
            )

    def _restore_global(self, st: dict) -> None:
        glob = st.get("torch_global_ranks", [st.get("torch_global")])
        if self.rank < len(glob) and glob[self.rank] is not None:
            torch.set_rng_state(glob[self.rank])

    def _save_rngs(self, st: dict, gen: torch.Generator) -> None:
        st["rng_torch"] = gen.get_state()
        st["torch_global"] = torch.get_rng_state()

    def _previous_max_epochs(self, st: dict) -> int | None:
        """The ``--epochs`` of the run that saved ``st`` (older states: from the checkpoint's config)."""
        if isinstance(st.get("max_epochs"), int):
            return int(st["max_epochs"])
        if (self.out_dir / CONFIG).exists():
            with contextlib.suppress(CheckpointError, TypeError, ValueError):
                epochs = (read_checkpoint_config(self.out_dir).get("train_config") or {}).get("epochs")
                if epochs is not None:
                    return int(epochs)
        return None

    def _extend(self, st: dict) -> None:
        """Resume a run that had stopped early with more epochs than it was given: train on.

        A run that stopped early under ``--epochs N`` continues when resumed with ``--epochs M > N``:
        the stop is lifted and the patience count restarts, so that it trains at least ``patience``
        more epochs (fewer if ``M`` is reached first), keeping its history, optimiser, schedule and
        RNG states. A finished run (``N`` epochs run) continues to ``M`` without this.
        """
        if not st["stopped"]:
            return
        before = self._previous_max_epochs(st)
        if before is not None and self.config.epochs > before and self.config.epochs > int(st["epoch"]):
            if self.rank == 0:
                log.info(
                    "%s: the run had stopped early at epoch %d of %d; --epochs %d extends it",
                    self.out_dir,
                    st["epoch"],
                    before,
                    self.config.epochs,
                )
            st["stopped"] = False
            st["bad_epochs"] = 0

    def _done(self, t_train: float) -> None:
        """After the final checkpoint is written."""

    # -------------------------------------------------------------------- fit
    def fit(self, resume: bool = False) -> TrainResult:
        """Run (or continue) training; return the summary.

        Raises
        ------
        CheckpointError
            ``out_dir`` already holds a checkpoint and ``resume`` is False, or the
            trainer state cannot be resumed.
        """
        problem = self._start_problem(resume)
        if problem:
            raise CheckpointError(problem)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        st = self._load_state() if resume else None
        return self._fit_seeded(self._device(), st)

    def _fit_seeded(self, device: torch.device, st: dict | None) -> TrainResult:
        """:meth:`_fit` with torch's global RNG seeded (and restored for the caller afterwards)."""
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(self._seed(2))
            if st is not None:
                self._restore_global(st)
            return self._fit(device, st)

    def _fit(self, device: torch.device, st: dict | None) -> TrainResult:
        cfg = self.config
        task = self.task
        main = self.rank == 0
        model = self._prepare(task.model, device)
        rng = np.random.default_rng(cfg.seed)
        gen = torch.Generator(device=device)
        gen.manual_seed(self._seed(1))
        task.setup(device, np.random.default_rng([cfg.seed, 1]))
        params = [p for p in model.parameters() if p.requires_grad]
        train_model = self._wrap(model, device)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience
        )
        if st is None:
            st = {
                "kind": task.kind,
                "epoch": 0,
                "history": [],
                "best_val": math.inf,
                "best_epoch": -1,
                "bad_epochs": 0,
                "stopped": False,
                "best_state": None,
                "wall_s": 0.0,
            }
        else:
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            rng.bit_generator.state = json.loads(st["rng_numpy"])
            self._restore_rngs(st, gen)
            self._extend(st)
            if main and st["stopped"]:
                log.info(
                    "%s: training had already stopped early at epoch %d; nothing to resume",
                    self.out_dir,
                    st["epoch"],
                )
            elif main and st["epoch"] >= cfg.epochs:
                log.info(
                    "%s: %d epochs already run (--epochs %d); nothing to resume",
                    self.out_dir,
                    st["epoch"],
                    cfg.epochs,
                )
        t0 = time.perf_counter() - float(st.get("wall_s", 0.0))
        start = int(st["epoch"])
        ddp = f" (ddp x{self.world_size})" if self.world_size > 1 or train_model is not model else ""
        bar = tqdm(
            total=cfg.epochs,
            initial=start,
            desc=f"train {task.kind}{ddp}",
            unit="epoch",
            disable=not (cfg.progress and main),
            dynamic_ncols=True,
        )
        t_train = 0.0
        try:
            for epoch in range(start, cfg.epochs):
                if st["stopped"]:
                    break
                train_model.train()
                task.on_epoch_start(epoch, rng)
                sums: dict[str, float] = {}
                n_batches = 0
                te = time.perf_counter()
                task.model = train_model  # training passes go through the wrapper (DDP: gradient all-reduce)
                try:
                    inner = tqdm(
                        self._batches(rng),
                        desc=f"epoch {epoch + 1}",
                        leave=False,
                        disable=not (cfg.progress and main),
                        unit="batch",
                        dynamic_ncols=True,
                    )
                    for batch, weight in inner:
                        loss, parts = task.train_loss(batch, gen)
                        self._step(loss, weight, params, opt, epoch)
                        n_batches += 1
                        for k, v in parts.items():
                            sums[k] = sums.get(k, 0.0) + v
                        inner.set_postfix(loss=f"{parts['loss']:.4g}")
                    inner.close()
                finally:
                    task.model = model
                t_train += time.perf_counter() - te
                train = self._train_means(sums, n_batches)
                model.eval()
                val = self._validate()
                vloss = val["val_loss"]
                sched.step(vloss)
                rec = {
                    "epoch": epoch + 1,
                    **train,
                    **val,
                    "lr": opt.param_groups[0]["lr"],
                    "wall_s": round(time.perf_counter() - t0, 3),
                }
                st["history"].append(rec)
                st["epoch"] = epoch + 1
                improved = (
                    vloss < st["best_val"] * (1 - cfg.min_delta)
                    if math.isfinite(st["best_val"])
                    else math.isfinite(vloss)
                )
                if improved:
                    st["best_val"], st["best_epoch"], st["bad_epochs"] = float(vloss), epoch + 1, 0
                    st["best_state"] = {
                        k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                    }
                else:
                    st["bad_epochs"] += 1
                    if st["bad_epochs"] >= cfg.patience:
                        st["stopped"] = True
                st["wall_s"] = time.perf_counter() - t0
                if improved:
                    self._write_checkpoint(st["best_state"], self._summary(st, st["wall_s"]))
                st["model"] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                st["optimizer"] = copy.deepcopy(opt.state_dict())
                st["scheduler"] = sched.state_dict()
                st["rng_numpy"] = json.dumps(rng.bit_generator.state)
                st["max_epochs"] = cfg.epochs
                self._save_rngs(st, gen)
                self._save_state(st)
                bar.update(1)
                bar.set_postfix(
                    train=f"{train.get('train_loss', float('nan')):.4g}",
                    val=f"{vloss:.4g}",
                    best=f"{st['best_val']:.4g}@{st['best_epoch']}",
                )
                if main:
                    log.info(
                        "%s epoch %d%s: %s",
                        task.kind,
                        epoch + 1,
                        ddp,
                        {k: round(v, 5) for k, v in rec.items() if isinstance(v, float)},
                    )
        finally:
            bar.close()
        if st["best_state"] is None:
            raise TrainingError(
                f"no finite validation loss in {st['epoch']} epochs of {task.kind} training. Check the "
                "dataset and lower --lr."
            )
        wall = time.perf_counter() - t0
        self._write_checkpoint(st["best_state"], self._summary(st, wall))
        self._done(t_train)
        model.load_state_dict(st["best_state"])
        model.eval()
        return TrainResult(
            out_dir=self.out_dir,
            best_epoch=int(st["best_epoch"]),
            best_val_loss=float(st["best_val"]),
            epochs_run=int(st["epoch"]),
            stopped_early=bool(st["stopped"]),
            history=list(st["history"]),
            wall_s=wall,
        )
