"""Where the shards of a sharded generation run: :class:`SerialExecutor` (this process, in order) and
:class:`DaskExecutor` (a Dask ``distributed`` cluster); importable from :mod:`fcinv.dataset.shards`
too, whose docstring describes them."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from fcinv.dataset.shard_jobs import EXECUTORS, ShardError, ShardJob, describe_job, run_shard
from fcinv.errors import install_command

log = logging.getLogger(__name__)


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
