"""The shards of a sharded generation (:mod:`fcinv.dataset.shards`, where the scheme is described and
every name here stays importable): the plan (shard sizes, per-shard random streams), the picklable
model recipe, the job, and the computation and atomic writing of one shard, which the executors
(:mod:`fcinv.dataset.executors`) run."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fcinv.errors import DataError, FcinvError
from fcinv.io import jsonable

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SHARD_FORMAT = "fcinv-shards"
SHARD_FORMAT_VERSION = 1
#: Default samples per shard.
DEFAULT_SHARD_SIZE = 500
EXECUTORS = ("serial", "dask")


class ShardError(FcinvError):
    """A sharded generation cannot start or continue (bad plan, foreign shard folder, missing Dask)."""


# ----------------------------------------------------------------------- the plan
def shard_sizes(n: int, shard_size: int) -> list[int]:
    """Samples per shard: ``shard_size`` each, the last one the remainder.

    Parameters
    ----------
    n
        Total number of accepted samples (>= 1).
    shard_size
        Samples per shard (>= 1).
    """
    if n < 1:
        raise DataError(f"n={n}; pass a positive number of samples.")
    if shard_size < 1:
        raise ShardError(
            f"shard_size={shard_size} must be >= 1. Pass e.g. --shard-size {DEFAULT_SHARD_SIZE}."
        )
    full, rest = divmod(int(n), int(shard_size))
    return [int(shard_size)] * full + ([rest] if rest else [])


def shard_rng(seed: int, k: int) -> np.random.Generator:
    """The random stream of shard ``k``: ``default_rng(SeedSequence(seed, spawn_key=(k,)))``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(k),)))


@dataclass(frozen=True)
class ModelRecipe:
    """A picklable recipe of the forward object, built where the shards run.

    ``factory(**kwargs)`` must return ``(model, domain, randomisation)`` (see
    :func:`generate_sharded`); ``factory`` must be importable by name on the
    workers (a module-level function). Workers cache the built triple per recipe.

    Attributes
    ----------
    factory
        ``"module:function"``.
    kwargs
        Keyword arguments, as a sorted tuple of (name, value) pairs (hashable).
    """

    factory: str
    kwargs: tuple = ()

    @classmethod
    def of(cls, factory: str, **kwargs) -> ModelRecipe:
        """A recipe from keyword arguments (lists become tuples)."""

        def freeze(v):
            return tuple(freeze(x) for x in v) if isinstance(v, (list, tuple)) else v

        return cls(factory, tuple(sorted((k, freeze(v)) for k, v in kwargs.items())))

    def build(self):
        import importlib

        mod, _, fn = self.factory.partition(":")
        try:
            func = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as exc:
            raise ShardError(
                f"cannot import the model factory {self.factory!r} ({exc}). Pass 'module:function' "
                "importable on every worker."
            ) from None
        return func(**dict(self.kwargs))


#: Options of ``fcinv dataset`` that define the forward object (recorded in the CLI recipe).
CLI_BUILD_KEYS = (
    "material",
    "shells",
    "tail",
    "top_k",
    "intensity",
    "randomise",
    "temperature",
    "coverage",
    "clean_fraction",
    "widen",
    "tail_shells",
    "tail_width",
    "background",
)

_CACHE: dict[Any, tuple] = {}


def recipe_from_args(args) -> ModelRecipe:
    """The :class:`ModelRecipe` of parsed ``fcinv dataset`` arguments (:data:`CLI_BUILD_KEYS`)."""
    return ModelRecipe.of("fcinv.cli.dataset:recipe_build", **{k: getattr(args, k) for k in CLI_BUILD_KEYS})


def _resolve(source) -> tuple:
    """(model, domain, randomisation) of a job's source, cached per process."""
    key = source if isinstance(source, ModelRecipe) else id(source)
    hit = _CACHE.get(key)
    if hit is not None and (isinstance(source, ModelRecipe) or hit[0] is source):
        return hit[1]
    if isinstance(source, ModelRecipe):
        triple = source.build()
    else:
        triple = tuple(source)
    model, domain, rnd = triple
    if rnd is not None and not hasattr(model, "spectra_under"):
        from fcinv.dataset.randomise import PaperConditioner

        model = PaperConditioner(model)
    if list(model.names) != list(domain.names):
        from fcinv.dataset.generate import DomainError

        raise DomainError(
            f"the forward model varies {list(model.names)} but the domain is over {list(domain.names)}. "
            "Build the model with free=domain.names."
        )
    out = (model, domain, rnd)
    if len(_CACHE) > 4:
        _CACHE.clear()
    _CACHE[key] = (source, out)
    return out


@dataclass(frozen=True)
class ShardJob:
    """Everything a worker needs to compute one shard (pickled to the workers).

    Attributes
    ----------
    source
        A :class:`ModelRecipe`, or a ``(model, domain, randomisation)`` tuple.
    seed, n, shard_size, chunk
        The plan: shard ``k`` holds ``shard_sizes(n, shard_size)[k]`` samples drawn
        from :func:`shard_rng` ``(seed, k)`` in batches of at most ``chunk``.
    folder
        The shard folder (``<output>.shards``).
    fingerprint
        sha256 of the plan and of the model/domain/randomisation descriptions.
    compression
        HDF5 filter of the shard spectra.
    threads
        Numba threads per task (None: leave as is).
    """

    source: Any
    seed: int
    n: int
    shard_size: int
    chunk: int
    folder: str
    fingerprint: str = ""
    compression: str | None = "lzf"
    threads: int | None = None

    @property
    def sizes(self) -> list[int]:
        return shard_sizes(self.n, self.shard_size)


def shard_name(k: int) -> str:
    """File name of shard ``k``."""
    return f"shard-{k:05d}.h5"


def _hash_of(theta: np.ndarray, spectra: np.ndarray) -> str:
    from fcinv.dataset.io import _update_hash, content_hasher

    h = content_hasher()
    _update_hash(h, theta, spectra)
    return h.hexdigest()


def _draw_shard(model, domain, rnd, rng: np.random.Generator, n_k: int, chunk: int):
    """The shard's accepted samples: (theta, spectra, conditions, drawn), drawn by
    :func:`fcinv.dataset.generate.draw_stable` (the sampling loop of a plain run) from the shard's stream."""
    from fcinv.dataset.generate import as_labels, draw_stable

    thetas, spectra, conds = [], [], []
    drawn = 0
    for theta, sp, cond, so_far in draw_stable(
        model, domain, rng, n_k, chunk, randomisation=rnd, where=" in a shard"
    ):
        drawn = so_far
        if len(theta):
            theta, cond = as_labels(model, theta, cond)  # a tail set stores its labels
            thetas.append(np.asarray(theta, np.float64))
            spectra.append(np.asarray(sp, np.float32))
            if cond is not None:
                conds.append(cond)
    cond = (
        {key: np.concatenate([c[key] for c in conds]).astype(np.float64) for key in conds[0]} if conds else {}
    )
    return np.concatenate(thetas), np.concatenate(spectra), cond, drawn


def run_shard(job: ShardJob, k: int) -> dict:
    """Compute shard ``k`` of ``job`` and write it atomically; the executors call this.

    Returns
    -------
    dict
        ``{"k", "n", "drawn", "sha256", "file", "wall_s", "host", "pid"}``.
    """
    t0 = time.perf_counter()
    if job.threads:
        try:
            import numba

            numba.set_num_threads(int(job.threads))
        except (ImportError, ValueError):  # pragma: no cover - numba is a core dependency
            pass
    model, domain, rnd = _resolve(job.source)
    n_k = job.sizes[k]
    theta, spectra, cond, drawn = _draw_shard(model, domain, rnd, shard_rng(job.seed, k), n_k, job.chunk)
    sha = _hash_of(theta, spectra)
    folder = Path(job.folder)
    final = folder / shard_name(k)
    tmp = folder / f".{shard_name(k)}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    kw: dict[str, Any] = {"compression": job.compression, "shuffle": True} if job.compression else {}
    try:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("theta", data=theta)
            f.create_dataset("spectra", data=spectra, chunks=(1, *spectra.shape[1:]), **kw)
            if cond:
                g = f.create_group("conditions")
                for key, v in cond.items():
                    g.create_dataset(key, data=v)
            f.attrs.update(
                {
                    "format": SHARD_FORMAT,
                    "k": k,
                    "n": n_k,
                    "drawn": drawn,
                    "seed": job.seed,
                    "fingerprint": job.fingerprint,
                    "sha256": sha,
                }
            )
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {
        "k": k,
        "n": n_k,
        "drawn": int(drawn),
        "sha256": sha,
        "file": final.name,
        "wall_s": round(time.perf_counter() - t0, 3),
        "host": os.uname().nodename,
        "pid": os.getpid(),
    }


def describe_job(job: ShardJob) -> dict:
    """What the client needs without building the model itself: grid, names, meta, fingerprint."""
    model, domain, rnd = _resolve(job.source)
    return _describe(model, domain, rnd, job)


def _describe(model, domain, rnd, job: ShardJob) -> dict:
    from fcinv.dataset.generate import base_model, dataset_meta, label_meta

    meta = dataset_meta(model, domain, rnd, job.seed)
    labels = label_meta(model, domain, meta)
    grid = getattr(model, "grid", None) or base_model(model).grid
    plan = {
        "seed": int(job.seed),
        "n": int(job.n),
        "shard_size": int(job.shard_size),
        "chunk": int(job.chunk),
        "names": list(domain.names),
        "grid": grid.fingerprint(),
        "meta": jsonable(meta),
    }
    fp = hashlib.sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()
    return {"grid": grid.to_json(), "names": labels, "meta": jsonable(meta), "fingerprint": fp}
