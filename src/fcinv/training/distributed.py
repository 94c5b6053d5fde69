"""Data-parallel training with PyTorch DistributedDataParallel (gloo on CPU, NCCL on GPU).

Launch with torchrun (one process per CPU socket share or per GPU)::

    torchrun --standalone --nproc_per_node 4 -m fcinv.training vae --data ge.h5 --out runs/vae
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
        -m fcinv.training vae --data ge.h5 --out runs/vae
    fcinv train vae --ddp --data ge.h5 --out runs/vae          # inside torchrun, same thing

Every model of :mod:`fcinv.training.tasks` trains this way, unchanged: the task's
model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` for the
training passes and unwrapped for validation and checkpoints.

Batches (the distributed sampler, :class:`GlobalBatchSampler`). Every rank draws
the *same* global batch order from the trainer's seeded generator (as a
single-process run with ``--batch-size B`` does) and computes on its contiguous
slice of each global batch of ``B`` samples: rank ``r`` of ``W`` gets
``B // W`` samples (the first ``B % W`` ranks one more). The local loss is
weighted by ``W · n_r / B``, so that DDP's gradient average is exactly the
gradient of the global-batch mean. The global batches, the noise augmentation
and the learning-rate schedule are therefore those of a single-process run
with the same seed and ``--batch-size``, whatever ``W``; what differs is the
BatchNorm statistics (per-rank slices on CPU: SyncBatchNorm needs a GPU;
``sync_batchnorm=True`` converts on CUDA), the latent-sample noise (one
generator per rank) and float summation order. A 1-process run takes the same
steps as :class:`~fcinv.training.Trainer`. Global batches with fewer than two
samples per rank (the BatchNorm minimum) are skipped.

Validation runs on rank 0 (on the unwrapped model, the one that is saved) and
its metrics are broadcast, so early stopping and the learning-rate schedule
agree on every rank. Rank 0 alone writes the checkpoint directory and
``trainer_state.pt``: the same files as a single-process run (plus a
``distributed`` entry in config.json and the other ranks' RNG states), so a
checkpoint loads with ``VAE.from_checkpoint`` as usual and a run can be
resumed with ``--resume`` under torchrun (any number of processes) or in a
single process. Every rank reads the dataset itself (put it on a filesystem all
nodes see) and keeps the training split in memory, as a single-process run does.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import logging
import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from fcinv.errors import CheckpointError
from fcinv.training.trainer import TrainConfig, Trainer, TrainingError, TrainResult

log = logging.getLogger(__name__)

#: Environment variables torchrun sets for every process.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def under_torchrun() -> bool:
    """True when the process was started by torchrun (or another launcher setting ``RANK``/``WORLD_SIZE``)."""
    return all(v in os.environ for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def _dist():
    import torch.distributed as dist

    if not dist.is_available():  # pragma: no cover - every supported torch build has it
        raise TrainingError(
            "this torch build has no torch.distributed. Install a standard torch wheel to use --ddp."
        )
    return dist


def backend_for(device: torch.device) -> str:
    """``"nccl"`` for a CUDA device, ``"gloo"`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device: str | None = None, timeout_s: float = 600.0):
    """Join (or reuse) the torchrun process group; yield ``(rank, world_size, torch.device)``.

    The group stays initialised after the block (see :func:`shutdown`).

    Parameters
    ----------
    device
        ``cpu``, ``cuda`` or ``auto``/None (see :func:`fcinv.devices.resolve_device`); on CUDA
        each process takes ``cuda:LOCAL_RANK``.
    timeout_s
        Timeout of collective operations (a rank that died makes the others fail after this).

    Raises
    ------
    TrainingError
        Not started by torchrun and no process group initialised.
    """
    from fcinv.devices import resolve_device

    dist = _dist()
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        if not under_torchrun():
            raise TrainingError(
                "--ddp needs the torchrun environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are "
                "not set). "
                "Launch with: torchrun --nproc_per_node N -m fcinv.training ..."
            )
        dist.init_process_group(
            backend_for(dev),
            init_method="env://",
            timeout=_dt.timedelta(seconds=timeout_s),
            **({"device_id": dev} if dev.type == "cuda" else {}),
        )
        atexit.register(shutdown)
    yield dist.get_rank(), dist.get_world_size(), dev


def shutdown() -> None:
    """Leave the process group (registered at exit by :func:`process_group`; safe to call twice).

    The group is kept for the life of the process on purpose: under torchrun a second
    ``init_process_group`` after ``destroy_process_group`` reuses the agent's store under
    the same key prefix and can meet the first group's stale keys (a hang), so several
    ``train_*`` calls in one process share one group.
    """
    dist = _dist()
    if dist.is_initialized():
        dist.destroy_process_group()


class GlobalBatchSampler:
    """Split each global batch into per-rank slices (the distributed sampler of the module docstring).

    Parameters
    ----------
    rank, world_size
        This process and the number of processes.
    min_per_rank
        Global batches smaller than ``min_per_rank · world_size`` are skipped.
    """

    def __init__(self, rank: int, world_size: int, min_per_rank: int = 2) -> None:
        if not 0 <= rank < world_size:
            raise TrainingError(f"rank {rank} is outside 0..{world_size - 1}.")
        self.rank, self.world_size, self.min_per_rank = int(rank), int(world_size), int(min_per_rank)
        self.skipped = 0
        #: samples of the global batches yielded so far (all ranks together)
        self.global_samples = 0

    def bounds(self, n: int) -> tuple[int, int]:
        """[lo, hi) of this rank's slice of a global batch of ``n`` samples."""
        q, r = divmod(int(n), self.world_size)
        lo = self.rank * q + min(self.rank, r)
        return lo, lo + q + (1 if self.rank < r else 0)

    def split(self, batches: Iterator[Any]) -> Iterator[tuple[Any, float]]:
        """Yield ``(local_batch, weight)`` for each global batch; ``weight = W·n_r/n``."""
        for batch in batches:
            n = _batch_len(batch)
            if n < self.min_per_rank * self.world_size:
                self.skipped += 1
                continue
            lo, hi = self.bounds(n)
            self.global_samples += n
            yield _slice(batch, lo, hi), self.world_size * (hi - lo) / n


def _batch_len(batch) -> int:
    if isinstance(batch, (tuple, list)):
        return _batch_len(batch[0])
    if isinstance(batch, (torch.Tensor, np.ndarray)):
        return int(batch.shape[0])
    raise TrainingError(
        f"cannot split a training batch of type {type(batch).__name__} across ranks. "
        "A task's train_batches must yield arrays/tensors or tuples of them."
    )


def _slice(batch, lo: int, hi: int):
    if isinstance(batch, (tuple, list)):
        return type(batch)(_slice(b, lo, hi) for b in batch)
    return batch[lo:hi]


def _rank_seed(seed: int, rank: int, what: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(rank), int(what)]).generate_state(1, np.uint64)[0] >> 1)


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP forwarding unknown attributes (``loss``, ``config``...) to the model: tasks run unchanged."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("module")
            if inner is None or name == "module":
                raise
            return getattr(inner, name)


class DistributedTrainer(Trainer):
    """:class:`~fcinv.training.Trainer` over the processes of a torchrun job (module docstring).

    The training loop is the Trainer's; this class overrides its hooks: the model is wrapped in
    DDP, batches are split by :class:`GlobalBatchSampler`, the mean training loss is all-reduced,
    validation runs on rank 0 and is broadcast, every rank's RNG states are gathered into the
    trainer state, and rank 0 alone writes files.

    Call :meth:`fit` inside :func:`process_group` (the ``train_*`` functions of this module do).

    Parameters
    ----------
    task, out_dir, config, command
        As for :class:`~fcinv.training.Trainer`; ``config.batch_size`` is the *global* batch.
    sync_batchnorm
        Convert BatchNorm layers to SyncBatchNorm (CUDA only).
    """

    def __init__(
        self, task, out_dir, config: TrainConfig, command: str = "", sync_batchnorm: bool = False
    ) -> None:
        super().__init__(task, out_dir, config, command)
        dist = _dist()
        if not dist.is_initialized():
            raise TrainingError(
                "DistributedTrainer needs an initialised process group. Run inside "
                "fcinv.training.distributed.process_group()."
            )
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.sync_batchnorm = sync_batchnorm

    # ------------------------------------------------------------------ collectives
    def _agree(self, obj):
        """Rank 0's ``obj`` on every rank."""
        box = [obj]
        _dist().broadcast_object_list(box, src=0)
        return box[0]

    def _gather(self, obj) -> list:
        out = [None] * self.world_size
        _dist().all_gather_object(out, obj)
        return out

    # ------------------------------------------------------------------ hooks of the Trainer loop
    def _provenance(self) -> dict:
        return {
            "distributed": {
                "world_size": self.world_size,
                "backend": _dist().get_backend(),
                "global_batch_size": self.config.batch_size,
                "sampler": "GlobalBatchSampler",
            }
        }

    def _device(self) -> torch.device:
        device = super()._device()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return device

    def _seed(self, what: int) -> int:
        return self.config.seed if self.rank == 0 else _rank_seed(self.config.seed, self.rank, what)

    def _prepare(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        model = model.to(device)
        if self.sync_batchnorm and device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            self.task.model = model
        self._sampler = GlobalBatchSampler(self.rank, self.world_size)
        self.samples_local = 0
        return model

    def _wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        return _DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

    def _batches(self, rng: np.random.Generator) -> Iterator[tuple[Any, float]]:
        for local, weight in self._sampler.split(self.task.train_batches(rng, self.config.batch_size)):
            self.samples_local += _batch_len(local)
            yield local, weight

    def _step(self, loss, weight, params, opt, epoch) -> None:
        """DDP step: the gradient norm is checked after the all-reduce, so every rank stops together."""
        opt.zero_grad(set_to_none=True)
        (loss * weight).backward()
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip or math.inf)
        if not torch.isfinite(norm):  # the same all-reduced gradients on every rank: all stop together
            raise TrainingError(
                f"the {self.task.kind} training gradient became {norm.item()} at epoch {epoch + 1}. "
                f"Lower --lr (now {opt.param_groups[0]['lr']:.2g}) or --beta."
            )
        opt.step()

    def _train_means(self, sums: dict[str, float], n_batches: int) -> dict[str, float]:
        """The epoch's mean training loss over all ranks and batches."""
        keys = sorted(sums)
        loc = torch.tensor([sums[k] for k in keys] + [float(n_batches)], dtype=torch.float64)
        _dist().all_reduce(loc)
        return {f"train_{k}": float(loc[i]) / max(float(loc[-1]), 1.0) for i, k in enumerate(keys)}

    def _validate(self) -> dict[str, float]:
        val = None
        if self.rank == 0:
            try:
                val = super()._validate()
            except Exception as exc:  # noqa: BLE001 - re-raised on every rank below
                val = {"error": f"{type(exc).__name__}: {exc}"}
        val = self._agree(val)
        if "error" in val:
            raise TrainingError(f"validation failed on rank 0: {val['error']}")
        return val

    def _save_rngs(self, st: dict, gen: torch.Generator) -> None:
        gens = self._gather(gen.get_state().cpu())
        globs = self._gather(torch.get_rng_state())
        st["rng_torch"] = gens[0]
        st["rng_torch_ranks"] = gens
        st["torch_global"] = globs[0]
        st["torch_global_ranks"] = globs
        st["world_size"] = self.world_size

    def _done(self, t_train: float) -> None:
        sampler = self._sampler
        if sampler.skipped and self.rank == 0:
            log.info(
                "skipped %d global batches with fewer than %d samples per rank",
                sampler.skipped,
                sampler.min_per_rank,
            )
        _dist().barrier()  # the files exist for every rank when fit returns
        #: training-pass time (s) of this rank and the global training throughput (samples/s, all ranks)
        self.train_time_s = t_train
        self.samples_per_s = sampler.global_samples / t_train if t_train > 0 else float("nan")

    # -------------------------------------------------------------------- fit
    def fit(self, resume: bool = False) -> TrainResult:
        """Run (or continue) training on every rank; rank 0 writes the files.

        Raises
        ------
        CheckpointError
            As :meth:`Trainer.fit`, on every rank.
        """
        dist = _dist()
        problem = self._agree(self._start_problem(resume) if self.rank == 0 else None)
        if problem:
            raise CheckpointError(problem)
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        st: dict | None = None
        if resume:
            err = None
            try:
                st = self._load_state()
            except CheckpointError as exc:
                err = str(exc)
            first = next((e for e in self._gather(err) if e), None)
            if first:
                raise CheckpointError(first)
        dist.barrier()
        return self._fit_seeded(self._device(), st)


# ------------------------------------------------------------------------ entry points
def _run(
    make_task,
    data,
    out_dir,
    cfg: TrainConfig,
    resume: bool,
    command: str | None,
    sync_batchnorm: bool = False,
) -> TrainResult:
    from fcinv.dataset.io import default_command, read_dataset

    with process_group(cfg.device) as (rank, world, _dev):
        ds = read_dataset(data, lazy=True) if not hasattr(data, "theta") else data
        try:
            task = make_task(ds)
        finally:
            ds.close()
        cfg_r = cfg if rank == 0 else TrainConfig(**{**cfg.to_dict(), "progress": False})
        trainer = DistributedTrainer(
            task, out_dir, cfg_r, command=command or default_command(), sync_batchnorm=sync_batchnorm
        )
        res = trainer.fit(resume=resume)
        res.samples_per_s = getattr(trainer, "samples_per_s", float("nan"))  # type: ignore[attr-defined]
        res.rank, res.world_size = rank, world  # type: ignore[attr-defined]
        return res


def train_vae(
    data,
    out_dir,
    config: TrainConfig = TrainConfig(),
    model_config=None,
    *,
    resume: bool = False,
    command: str | None = None,
    sync_batchnorm: bool = False,
    **arch: Any,
) -> TrainResult:
    """:func:`fcinv.training.train_vae` under torchrun (DDP); ``config.batch_size`` is the global batch."""
    from fcinv.training.tasks import VAETask

    return _run(
        lambda ds: VAETask(ds, config, model_config, **arch),
        data,
        out_dir,
        config,
        resume,
        command,
        sync_batchnorm,
    )


def train_regressor(
    data,
    out_dir,
    vae_dir,
    config: TrainConfig = TrainConfig(),
    model_config=None,
    *,
    latent_input="sample",
    resume: bool = False,
    command: str | None = None,
    **arch: Any,
) -> TrainResult:
    """:func:`fcinv.training.train_regressor` under torchrun (DDP)."""
    from fcinv.training.tasks import RegressorTask

    return _run(
        lambda ds: RegressorTask(ds, config, vae_dir, model_config, latent_input, **arch),
        data,
        out_dir,
        config,
        resume,
        command,
    )


def train_resnet(
    data,
    out_dir,
    config: TrainConfig = TrainConfig(),
    model_config=None,
    *,
    pretrained=None,
    resume: bool = False,
    command: str | None = None,
    sync_batchnorm: bool = False,
) -> TrainResult:
    """:func:`fcinv.training.train_resnet` under torchrun (DDP)."""
    from fcinv.training.tasks import ResNetTask

    return _run(
        lambda ds: ResNetTask(ds, config, model_config, pretrained),
        data,
        out_dir,
        config,
        resume,
        command,
        sync_batchnorm,
    )


def is_rank_zero() -> bool:
    """True in a single process and on rank 0 of a torchrun job (for printing)."""
    return int(os.environ.get("RANK", "0")) == 0


__all__ = [
    "DistributedTrainer",
    "GlobalBatchSampler",
    "process_group",
    "train_regressor",
    "train_resnet",
    "train_vae",
    "under_torchrun",
    "shutdown",
    "backend_for",
    "is_rank_zero",
]
