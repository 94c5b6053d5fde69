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
import hashlib  # noqa: F401 - kept importable from here
import json
import logging
import os
import shlex
import shutil
import sys
import time
import uuid  # noqa: F401 - kept importable from here
from collections.abc import Iterator  # noqa: F401
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any  # noqa: F401

import h5py
import numpy as np  # noqa: F401

from fcinv.dataset.executors import (  # noqa: F401 - every name stays importable from here
    DaskExecutor,
    SerialExecutor,
    _import_distributed,
    make_executor,
)
from fcinv.dataset.shard_jobs import (  # noqa: F401 - every name stays importable from here
    _CACHE,
    CLI_BUILD_KEYS,
    DEFAULT_SHARD_SIZE,
    EXECUTORS,
    MANIFEST,
    SHARD_FORMAT,
    SHARD_FORMAT_VERSION,
    ModelRecipe,
    ShardError,
    ShardJob,
    _describe,
    _draw_shard,
    _hash_of,
    _resolve,
    describe_job,
    recipe_from_args,
    run_shard,
    shard_name,
    shard_rng,
    shard_sizes,
)
from fcinv.errors import DataError, FcinvError, install_command  # noqa: F401 - kept importable from here
from fcinv.io import jsonable

log = logging.getLogger(__name__)


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
