"""Sharded training-set generation: deterministic per-shard seeds, a serial or a Dask executor.

The draw of ``n`` accepted samples is cut into shards of ``shard_size`` samples
(the last one holds the remainder). Shard ``k`` owns its own random stream,

    rng_k = numpy.random.default_rng(SeedSequence(seed, spawn_key=(k,)))

(the ``k``-th child of ``SeedSequence(seed).spawn(...)``, independent of how many
shards there are), and draws batches of at most ``chunk`` θ from the domain until
it holds its ``n_k`` stable samples. The batch size depends only on the shard's
own acceptance history, so shard ``k``'s samples depend on nothing but
``(seed, k, n_k, chunk)``, the domain, the forward model and the randomisation:
not on which process ran it, in what order, or whether it was re-run after a
kill. The assembled file concatenates the shards in order ``0, 1, ...``, so its
content hash (:attr:`fcinv.dataset.Dataset.content_hash`) is identical for one
process, any number of Dask workers, and a killed-and-resumed job.

**The sharded layout is the reference.** A plain :func:`fcinv.dataset.generate`
run with the same seed draws all samples from one stream
``default_rng(seed)`` and therefore holds different samples (the same
distribution, other draws). A sharded run is reproduced by the same
``(seed, shard_size, chunk)``, whatever ``--scheduler``/``--workers``.

On disk, next to the output ``ge.h5``::

    ge.h5.shards/manifest.json     the plan (fingerprint of everything that sets the content)
                                   and the finished shards (n, drawn, sha256), rewritten
                                   atomically after every finished shard
    ge.h5.shards/shard-00000.h5    shard 0: /theta, /spectra, /conditions/*, attrs
    ...

Shard files are written to a temporary name and renamed, so a killed shard
leaves at most a ``.tmp`` file, which a resumed job deletes before re-running
that shard; a resumed job skips every finished shard (a shard file that is
complete but missing from the manifest, e.g. when the client died, is verified
and adopted). The shards are then assembled with :class:`fcinv.dataset.DatasetWriter`
(``ge.h5.partial`` renamed to ``ge.h5``) and the shard folder is deleted
(``keep_shards=True`` keeps it).

Executors: ``"serial"`` runs the shards in this process, in order (no Dask
needed); ``"dask"`` submits one task per shard to a ``distributed`` cluster, a
:class:`~distributed.LocalCluster` of ``workers`` single-threaded processes or
the scheduler at ``address`` (``tcp://host:port``, e.g. a dask-jobqueue cluster;
the output folder must be on a filesystem every worker sees). Progress comes from
the futures as they complete. A worker that dies mid-shard has its task re-run
by the scheduler on another worker.

Workers build the forward model themselves from a small picklable *source*
(:class:`ModelRecipe`, a factory) and keep it for the following shards; the
Python API also accepts a built forward object, which is then shipped to the
workers once (fine for the paper model, heavy for the physical one: ~300 MB).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fcinv.errors import DataError, FcinvError, install_command
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
    from fcinv.dataset.generate import draw_stable

    thetas, spectra, conds = [], [], []
    drawn = 0
    for theta, sp, cond, so_far in draw_stable(
        model, domain, rng, n_k, chunk, randomisation=rnd, where=" in a shard"
    ):
        drawn = so_far
        if len(theta):
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
    from fcinv.dataset.generate import base_model, dataset_meta

    meta = dataset_meta(model, domain, rnd, job.seed)
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
    return {"grid": grid.to_json(), "names": list(domain.names), "meta": jsonable(meta), "fingerprint": fp}


# ----------------------------------------------------------------------- executors
class SerialExecutor:
    """Run the shards one after the other in this process (no Dask needed)."""

    name = "serial"

    def describe(self, job: ShardJob) -> dict:
        return describe_job(job)

    def run(self, job: ShardJob, ks: list[int]) -> Iterator[dict]:
        for k in ks:
            yield run_shard(job, k)

    def close(self) -> None:
        pass


def _import_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ShardError(
            "--scheduler dask needs dask.distributed, which is not installed. Install the extra with: "
            f"{install_command('dask')} (or run with --scheduler serial)."
        ) from None
    return distributed


class DaskExecutor:
    """Submit one task per shard to a Dask ``distributed`` cluster.

    Parameters
    ----------
    workers
        Start a :class:`distributed.LocalCluster` of this many single-threaded worker processes.
    address
        Connect to the scheduler at this address instead (``tcp://host:port``); ``workers`` is then ignored.
    client
        An existing :class:`distributed.Client` (not closed by :meth:`close`).
    threads_per_worker
        Threads of each local worker (default 1: one shard at a time per process).

    Attributes
    ----------
    restrict
        None, or the worker addresses the shard tasks may run on (e.g. to time one worker).
    """

    name = "dask"

    def __init__(
        self, workers: int | None = None, address: str | None = None, client=None, threads_per_worker: int = 1
    ) -> None:
        distributed = _import_distributed()
        self._own: list = []
        if client is not None:
            self.client = client
        elif address:
            try:
                self.client = distributed.Client(address, timeout="30s")
            except (OSError, TimeoutError) as exc:
                raise ShardError(
                    f"cannot reach the Dask scheduler at {address} ({exc}). Check --address "
                    "(tcp://HOST:PORT) and that the scheduler runs."
                ) from None
            self._own.append(self.client)
        else:
            n = int(workers or 1)
            if n < 1:
                raise ShardError(f"--workers {workers} must be >= 1.")
            cluster = distributed.LocalCluster(
                n_workers=n,
                threads_per_worker=int(threads_per_worker),
                processes=True,
                dashboard_address=None,
                env={
                    "NUMBA_NUM_THREADS": str(threads_per_worker),
                    "OMP_NUM_THREADS": str(threads_per_worker),
                },
            )
            self.client = distributed.Client(cluster)
            self._own += [self.client, cluster]
        self._job_future = None
        self.restrict: list[str] | None = None

    def _job(self, job: ShardJob):
        if self._job_future is None or self._job_key != job.fingerprint:
            self._job_future = self.client.scatter(job, broadcast=True, hash=False)
            self._job_key = job.fingerprint
        return self._job_future

    def describe(self, job: ShardJob) -> dict:
        return self.client.submit(describe_job, self._job(job), pure=False).result()

    def run(self, job: ShardJob, ks: list[int]) -> Iterator[dict]:
        from distributed import as_completed

        jf = self._job(job)
        futures = [
            self.client.submit(
                run_shard,
                jf,
                k,
                pure=False,
                workers=self.restrict,
                key=f"fcinv-shard-{job.fingerprint[:12]}-{k}-{uuid.uuid4().hex[:6]}",
            )
            for k in ks
        ]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        finally:
            for fut in futures:
                if not fut.done():
                    fut.cancel()

    def close(self) -> None:
        for obj in self._own:
            obj.close()
        self._own = []


def make_executor(scheduler: str = "serial", *, workers: int | None = None, address: str | None = None):
    """The executor named ``scheduler`` (``"serial"`` or ``"dask"``)."""
    if scheduler == "serial":
        if address:
            raise ShardError(f"--address {address} needs --scheduler dask.")
        return SerialExecutor()
    if scheduler == "dask":
        return DaskExecutor(workers=workers, address=address)
    raise ShardError(f"unknown scheduler {scheduler!r}. Use one of {EXECUTORS}.")


# ----------------------------------------------------------------------- manifest
def _write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(jsonable(obj), indent=1, sort_keys=True))
    os.replace(tmp, path)


def _shard_ok(folder: Path, k: int, n_k: int, fingerprint: str, sha: str | None) -> dict | None:
    """The shard's record if its file is complete and belongs to this plan, else None."""
    p = folder / shard_name(k)
    if not p.exists():
        return None
    try:
        with h5py.File(p, "r") as f:
            a = dict(f.attrs)
            if a.get("fingerprint") != fingerprint or int(a.get("n", -1)) != n_k:
                return None
            if sha is None or a.get("sha256") != sha:  # not (or differently) recorded: verify the data
                if _hash_of(f["theta"][()], f["spectra"][()]) != a.get("sha256"):
                    return None
            return {"k": k, "n": n_k, "drawn": int(a["drawn"]), "sha256": str(a["sha256"]), "file": p.name}
    except (OSError, KeyError):
        return None


def shard_folder(path: str | os.PathLike) -> Path:
    """The shard folder of output ``path``: ``<path>.shards``."""
    path = Path(path)
    return path.with_name(path.name + ".shards")


@dataclass
class ShardRun:
    """Outcome of :func:`generate_sharded`."""

    path: Path
    n_shards: int
    shards_run: int
    shards_skipped: int
    wall_s: float
    shard_wall_s: list[float] = field(default_factory=list)


# ----------------------------------------------------------------------- driver
def generate_sharded(
    source,
    n: int,
    path: str | os.PathLike,
    *,
    seed: int = 0,
    shard_size: int = DEFAULT_SHARD_SIZE,
    chunk: int = 2000,
    n_test: int = 1500,
    executor=None,
    resume: bool = False,
    overwrite: bool = False,
    keep_shards: bool = False,
    progress: bool = True,
    command: str | None = None,
    compression: str | None = "lzf",
    threads: int | None = None,
    stop_after: int | None = None,
) -> ShardRun:
    """Write a dataset of ``n`` stable samples to ``path``, drawn shard by shard (module docstring).

    Parameters
    ----------
    source
        A :class:`ModelRecipe` whose factory returns ``(model, domain, randomisation)``,
        or that tuple itself: ``model`` a forward object varying ``domain.names`` (as for
        :func:`fcinv.dataset.generate`), ``randomisation`` a
        :class:`~fcinv.dataset.randomise.Randomisation` or None.
    n
        Number of accepted samples.
    path
        Output HDF5 file (the usual ``fcinv-dataset`` format).
    seed, shard_size, chunk
        The plan; together they fix the content.
    executor
        :class:`SerialExecutor` (default), :class:`DaskExecutor` or anything with
        ``describe(job)`` and ``run(job, ks)`` yielding the :func:`run_shard` records.
    resume
        Continue a killed job: skip finished shards, re-run the others.
    overwrite
        Delete an existing shard folder (and ``<path>.partial``) and start again.
    keep_shards
        Keep the shard folder after assembly.
    threads
        Numba threads per shard task (None: unchanged).
    stop_after
        Stop (without assembling) after this many shards were run in this call; for tests
        and for splitting a job over several allocations.

    Returns
    -------
    ShardRun
        With ``path`` the finished file (or the shard folder when stopped early).

    Raises
    ------
    ShardError
        The shard folder exists without ``resume``/``overwrite``, or belongs to another plan.
    """
    t0 = time.perf_counter()
    path = Path(path)
    folder = shard_folder(path)
    sizes = shard_sizes(n, shard_size)
    if chunk < 1:
        raise ShardError(f"chunk={chunk} must be >= 1. Pass e.g. --chunk 2000.")
    if folder.exists() and not (resume or overwrite):
        raise ShardError(
            f"{folder} exists (an interrupted sharded run). Continue it with --resume or pass "
            "--overwrite to start again."
        )
    if overwrite and folder.exists():
        shutil.rmtree(folder)
    if overwrite:
        path.with_name(path.name + ".partial").unlink(missing_ok=True)
    if resume and not folder.exists():
        if path.exists():
            log.info("%s is already complete; nothing to resume", path)
            return ShardRun(path, len(sizes), 0, len(sizes), time.perf_counter() - t0)
        raise ShardError(f"nothing to resume: {folder} does not exist. Start without --resume.")
    folder.mkdir(parents=True, exist_ok=True)
    own = executor is None
    executor = executor or SerialExecutor()
    job = ShardJob(
        source=source,
        seed=int(seed),
        n=int(n),
        shard_size=int(shard_size),
        chunk=int(chunk),
        folder=str(folder.resolve()),
        compression=compression,
        threads=threads,
    )
    try:
        desc = executor.describe(job)
        job = dataclasses.replace(job, fingerprint=desc["fingerprint"])
        mpath = folder / MANIFEST
        done: dict[int, dict] = {}
        if mpath.exists():
            man = json.loads(mpath.read_text())
            if man.get("fingerprint") != job.fingerprint:
                raise ShardError(
                    f"{folder} holds shards of another plan (seed, -n, --shard-size, --chunk, model or "
                    "domain differ: "
                    f"{ {k: man.get('plan', {}).get(k) for k in ('seed', 'n', 'shard_size', 'chunk')} }). "
                    "Resume with the same options or pass --overwrite."
                )
            done = {int(k): v for k, v in man.get("shards", {}).items()}
        for stale in folder.glob(".shard-*.tmp-*"):  # a killed shard's leftovers
            log.info("removing %s (a shard that did not finish)", stale.name)
            stale.unlink(missing_ok=True)
        finished: dict[int, dict] = {}
        for k, n_k in enumerate(sizes):
            rec = _shard_ok(folder, k, n_k, job.fingerprint, done.get(k, {}).get("sha256"))
            if rec is not None:
                finished[k] = rec
        manifest = {
            "format": SHARD_FORMAT,
            "format_version": SHARD_FORMAT_VERSION,
            "fingerprint": job.fingerprint,
            "plan": {
                "seed": job.seed,
                "n": job.n,
                "shard_size": job.shard_size,
                "chunk": job.chunk,
                "n_shards": len(sizes),
                "stream": "numpy.random.default_rng(SeedSequence(seed, spawn_key=(k,)))",
            },
            "shards": {str(k): v for k, v in sorted(finished.items())},
        }
        _write_json_atomic(mpath, manifest)
        todo = [k for k in range(len(sizes)) if k not in finished]
        if finished:
            log.info(
                "%s: %d of %d shards already finished; running %d",
                folder.name,
                len(finished),
                len(sizes),
                len(todo),
            )
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=n,
                initial=sum(r["n"] for r in finished.values()),
                desc=f"{desc['meta']['material']} shards ({executor.name})",
                unit="spectra",
            )
        walls: list[float] = []
        try:
            for i, rec in enumerate(executor.run(job, todo)):
                walls.append(float(rec.get("wall_s", float("nan"))))
                if not (folder / rec["file"]).exists():
                    raise ShardError(
                        f"shard {rec['k']} was written on {rec.get('host')} but {folder / rec['file']} "
                        "is not visible here. "
                        "Put the output on a filesystem every Dask worker shares."
                    )
                finished[int(rec["k"])] = {key: rec[key] for key in ("k", "n", "drawn", "sha256", "file")}
                manifest["shards"] = {str(k): v for k, v in sorted(finished.items())}
                _write_json_atomic(mpath, manifest)
                if bar is not None:
                    bar.update(rec["n"])
                if stop_after is not None and i + 1 >= stop_after and len(finished) < len(sizes):
                    break
        finally:
            if bar is not None:
                bar.close()
        if len(finished) < len(sizes):
            return ShardRun(
                folder, len(sizes), len(walls), len(sizes) - len(todo), time.perf_counter() - t0, walls
            )
        out = _assemble(
            path,
            folder,
            sizes,
            finished,
            desc,
            n_test=n_test,
            compression=compression,
            command=command or " ".join(shlex.quote(a) for a in ["fcinv", *sys.argv[1:]]),
            sharding={
                "scheme": manifest["plan"]["stream"],
                "shard_size": job.shard_size,
                "n_shards": len(sizes),
                "chunk": job.chunk,
                "executor": executor.name,
            },
        )
    finally:
        if own:
            executor.close()
    if not keep_shards:
        shutil.rmtree(folder, ignore_errors=True)
    return ShardRun(out, len(sizes), len(walls), len(sizes) - len(todo), time.perf_counter() - t0, walls)


def _assemble(
    path: Path,
    folder: Path,
    sizes: list[int],
    finished: dict,
    desc: dict,
    *,
    n_test: int,
    compression,
    command: str,
    sharding: dict,
) -> Path:
    """Concatenate the shards in order into the usual dataset file (atomic: ``.partial`` then rename)."""
    from fcinv.dataset.io import DatasetWriter
    from fcinv.grid import SpectrumGrid

    meta = dict(desc["meta"])
    meta["command"] = command
    meta["sharding"] = sharding
    drawn = sum(int(finished[k]["drawn"]) for k in range(len(sizes)))
    writer = DatasetWriter(
        path,
        SpectrumGrid.from_json(desc["grid"]),
        desc["names"],
        meta,
        sum(sizes),
        n_test=n_test,
        compression=compression,
        compression_opts=1 if compression == "gzip" else None,
        overwrite=True,
    )
    try:
        for k in range(len(sizes)):
            with h5py.File(folder / shard_name(k), "r") as f:
                theta, spectra = f["theta"][()], f["spectra"][()]
                cond = (
                    {key: f["conditions"][key][()] for key in f["conditions"]} if "conditions" in f else None
                )
            if _hash_of(theta, spectra) != finished[k]["sha256"]:
                raise ShardError(
                    f"shard {k} in {folder} does not match its recorded hash (corrupt). Resume to re-run it."
                )
            writer.append(theta, spectra, conditions=cond)
        writer.meta["accepted_fraction"] = writer.n_written / drawn
        writer.meta["drawn"] = drawn
        out = writer.close()
    except BaseException:
        writer.close()
        raise
    if out is None:  # pragma: no cover - the writer holds every sample here
        raise ShardError(f"assembly of {path} ended incomplete. Resume the job.")
    return out
