"""Writing dataset files: :class:`DatasetWriter` (appends chunks to ``<path>.partial``, resumable,
renamed when complete) and :func:`write_dataset` (a whole dataset, atomically). Both are importable
from :mod:`fcinv.dataset.io` too, where the file format is described."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

from fcinv.dataset.container import Dataset
from fcinv.dataset.layout import (
    FORMAT,
    _check_meta,
    _create_layout,
    _now,
    _update_hash,
    _version,
    _write_meta,
    _write_split,
    content_hasher,
    default_command,
    make_split,
)
from fcinv.errors import DataError, GridError
from fcinv.grid import SpectrumGrid
from fcinv.io import jsonable

log = logging.getLogger(__name__)


class DatasetWriter:
    """Append (θ, spectra) chunks to ``<path>.partial``; rename to ``<path>`` when complete.

    Parameters
    ----------
    path
        Final file name, e.g. ``ge.h5``.
    grid
        Grid of every spectrum.
    names
        The k parameter names.
    meta
        Metadata (see :data:`REQUIRED_META`); may be completed later through
        :attr:`meta` (e.g. ``accepted_fraction``) before :meth:`close`.
    n_total
        Number of samples the finished file holds.
    split_seed
        Seed of the train/val/test split made on completion (default: ``meta["seed"]``).
    n_test, val_fraction
        Passed to :func:`make_split`.
    compression, compression_opts
        HDF5 filter of ``/spectra`` (``"gzip"`` level 1 by default: readable by any HDF5 tool;
        ``"lzf"`` is faster, h5py only).
    overwrite
        Replace an existing ``<path>.partial`` instead of refusing (use :meth:`resume` to continue one).

    Notes
    -----
    Every :meth:`append` flushes the file and then records ``n_written``; after a
    crash, :meth:`resume` reopens the partial file, drops any rows beyond
    ``n_written`` and continues. :attr:`state` is a free JSON-able dict stored with
    each append (e.g. the sampler's RNG state), returned on resume.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        grid: SpectrumGrid,
        names: tuple[str, ...] | list[str],
        meta: dict,
        n_total: int,
        *,
        split_seed: int | None = None,
        n_test: int = 1500,
        val_fraction: float = 0.1,
        compression: str | None = "gzip",
        compression_opts: int | None = 1,
        overwrite: bool = False,
        _resume: bool = False,
    ) -> None:
        self.path = Path(path)
        self.partial_path = self.path.with_name(self.path.name + ".partial")
        self.grid = grid
        self.names = tuple(str(x) for x in names)
        self.meta = dict(meta)
        self.n_total = int(n_total)
        self.split_seed = split_seed
        self.n_test = n_test
        self.val_fraction = val_fraction
        self.state: dict = {}
        self._hash = content_hasher()
        self._closed = False
        if self.n_total < 1:
            raise DataError(f"n_total={n_total} must be >= 1. Pass the number of samples to write.")
        if len(set(self.names)) != len(self.names) or not self.names:
            raise DataError(
                f"names {list(self.names)} must be non-empty and unique. Pass one name per parameter."
            )
        if _resume:
            self._file = h5py.File(self.partial_path, "r+")
            return
        if self.partial_path.exists() and not overwrite:
            raise DataError(
                f"{self.partial_path.name} exists (an interrupted run). Continue it with "
                f"DatasetWriter.resume('{self.path}') "
                "or pass overwrite=True to start again."
            )
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self.partial_path, "w")
        _create_layout(self._file, grid, self.names, self.n_total, compression, compression_opts)
        self.meta.setdefault("fcinv_version", _version())
        self.meta.setdefault("created", _now())
        self.meta.setdefault("command", default_command())
        _write_meta(self._file, self.meta)
        self._file.attrs["state"] = "{}"
        self._file.flush()

    # ------------------------------------------------------------------ resume
    @classmethod
    def resume(cls, path: str | os.PathLike) -> DatasetWriter:
        """Reopen ``<path>.partial`` (``path`` may name either file) to continue appending.

        Raises
        ------
        DataError
            When there is no partial file or it is not an fcinv dataset.
        """
        path = Path(path)
        if path.name.endswith(".partial"):
            path = path.with_name(path.name[: -len(".partial")])
        partial = path.with_name(path.name + ".partial")
        if not partial.exists():
            raise DataError(
                f"no interrupted dataset {partial.name} to resume. Start a new one (without --resume)."
            )
        try:
            with h5py.File(partial, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise DataError(
                        f"{partial.name} is not an fcinv dataset (format {f.attrs.get('format')!r}). "
                        "Delete it and start again."
                    )
                grid = SpectrumGrid.from_json(f.attrs["grid"])
                names = tuple(str(x) for x in f["names"].asstr()[()])
                meta = json.loads(f.attrs["meta"])
                n_total = int(f.attrs["n_total"])
                state = json.loads(f.attrs.get("state", "{}"))
                split_seed = f.attrs.get("split_seed", None)
        except (OSError, KeyError) as exc:
            raise DataError(f"{partial.name} cannot be resumed ({exc}). Delete it and start again.") from None
        w = cls(path, grid, names, meta, n_total, _resume=True)
        w.state = state
        if split_seed is not None:
            w.split_seed = int(split_seed)
        n = int(w._file.attrs["n_written"])
        keys = ["theta", "spectra"] + [
            f"conditions/{c}" for c in (w._file["conditions"].keys() if "conditions" in w._file else [])
        ]
        for key in keys:
            if w._file[key].shape[0] > n:  # rows written after the last recorded append: drop them
                w._file[key].resize(n, axis=0)
        for i in range(0, n, 1024):
            _update_hash(w._hash, w._file["theta"][i : i + 1024], w._file["spectra"][i : i + 1024])
        log.info("resuming %s at %d/%d samples", partial.name, n, n_total)
        return w

    # ------------------------------------------------------------------ writing
    @property
    def n_written(self) -> int:
        """Number of samples written so far."""
        return int(self._file.attrs["n_written"])

    def append(
        self,
        theta_chunk: np.ndarray,
        spectra_chunk: np.ndarray,
        state: dict | None = None,
        conditions: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Append samples.

        Parameters
        ----------
        theta_chunk
            Shape (m, k) float64, eV/Å².
        spectra_chunk
            Shape (m, n_q, n_E), stored as float32.
        state
            Optional JSON-able dict saved with this append (returned by :meth:`resume`).
        conditions
            Optional per-sample conditions, name → shape (m,); every append of a file must
            pass the same names (stored under ``/conditions``).
        """
        if self._closed:
            raise DataError(f"the writer of {self.path.name} is closed. Reopen it with DatasetWriter.resume.")
        theta_chunk = np.asarray(theta_chunk, dtype=np.float64)
        spectra_chunk = np.asarray(spectra_chunk, dtype=np.float32)
        k = len(self.names)
        if theta_chunk.ndim != 2 or theta_chunk.shape[1] != k:
            raise DataError(
                f"theta chunk has shape {theta_chunk.shape}; expected (m, {k}). Pass one value per name "
                f"{list(self.names)}."
            )
        m = theta_chunk.shape[0]
        if spectra_chunk.shape != (m, *self.grid.shape):
            raise GridError(
                f"spectra chunk has shape {spectra_chunk.shape}; expected {(m, *self.grid.shape)}. Pass "
                "spectra on the writer's grid."
            )
        if not np.all(np.isfinite(theta_chunk)) or np.isnan(spectra_chunk).any():
            raise DataError("the chunk contains NaN (or inf in theta). Drop those samples before appending.")
        cond = {
            str(key): np.asarray(v, dtype=np.float64).reshape(-1) for key, v in (conditions or {}).items()
        }
        have = sorted(self._file["conditions"].keys()) if "conditions" in self._file else []
        if (have or self.n_written) and sorted(cond) != have:
            raise DataError(
                f"conditions {sorted(cond)} differ from those already written {have}. Pass the same "
                "names on every append."
            )
        for key, v in cond.items():
            if len(v) != m:
                raise DataError(
                    f"condition '{key}' has {len(v)} values for {m} samples. Pass one value per sample."
                )
        n = self.n_written
        if n + m > self.n_total:
            raise DataError(
                f"appending {m} samples to {n} exceeds n_total={self.n_total}. Append at most "
                f"{self.n_total - n}."
            )
        f = self._file
        for key, arr in (("theta", theta_chunk), ("spectra", spectra_chunk)):
            f[key].resize(n + m, axis=0)
            f[key][n : n + m] = arr
        if cond:
            g = f.require_group("conditions")
            for key, v in cond.items():
                if key not in g:
                    g.create_dataset(key, shape=(0,), maxshape=(None,), dtype="f8", chunks=(4096,))
                g[key].resize(n + m, axis=0)
                g[key][n : n + m] = v
        _update_hash(self._hash, theta_chunk, spectra_chunk)
        if state is not None:
            self.state = dict(state)
            f.attrs["state"] = json.dumps(jsonable(self.state))
        f.flush()
        f.attrs["n_written"] = n + m
        f.flush()

    @property
    def complete(self) -> bool:
        """True when ``n_written == n_total``."""
        return self.n_written >= self.n_total

    def close(self, truncate: bool = False) -> Path | None:
        """Finish the file: write the split and metadata and rename it to ``path``.

        Parameters
        ----------
        truncate
            Finish with the samples written so far even if fewer than ``n_total``.

        Returns
        -------
        Path or None
            The final path, or None when the file is incomplete and was left as
            ``<path>.partial`` for :meth:`resume`.
        """
        if self._closed:
            return self.path if self.path.exists() else None
        n = self.n_written
        if not self.complete and not truncate:
            self._file.attrs["split_seed"] = self._split_seed()
            self._file.close()
            self._closed = True
            log.warning(
                "%s holds %d/%d samples; left as %s (continue it with fcinv dataset --resume)",
                self.path.name,
                n,
                self.n_total,
                self.partial_path.name,
            )
            return None
        try:
            _check_meta(self.meta, len(self.names), f"dataset {self.path.name}")
            split = make_split(n, n_test=self.n_test, val_fraction=self.val_fraction, seed=self._split_seed())
            f = self._file
            _write_split(f, split)
            _write_meta(f, self.meta)
            f.attrs["n_total"] = n
            f.attrs["content_sha256"] = self._hash.hexdigest()
            f.attrs["complete"] = True
            f.flush()
        except Exception:
            self._file.close()
            self._closed = True
            raise
        self._file.close()
        self._closed = True
        os.replace(self.partial_path, self.path)
        log.info("wrote %s (%d samples)", self.path, n)
        return self.path

    def _split_seed(self) -> int:
        if self.split_seed is not None:
            return int(self.split_seed)
        return int(self.meta.get("seed", 0))

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:  # keep the partial file for resume
            self._file.close()
            self._closed = True


def write_dataset(
    path: str | os.PathLike,
    ds: Dataset,
    *,
    compression: str | None = "gzip",
    compression_opts: int | None = 1,
) -> Path:
    """Write a dataset atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path
        Output file.
    ds
        The dataset; its split is stored as is, its metadata must hold :data:`REQUIRED_META`.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    _check_meta(ds.meta, ds.k, f"dataset {path.name}")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    meta = dict(ds.meta)
    meta.setdefault("fcinv_version", _version())
    meta.setdefault("created", _now())
    h = content_hasher()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(tmp, "w") as f:
            _create_layout(f, ds.grid, ds.names, ds.n, compression, compression_opts)
            f["theta"].resize(ds.n, axis=0)
            f["spectra"].resize(ds.n, axis=0)
            f["theta"][:] = ds.theta
            for i in range(0, ds.n, 1024):
                sp = ds.get_spectra(slice(i, min(i + 1024, ds.n)))
                f["spectra"][i : i + len(sp)] = sp
                _update_hash(h, ds.theta[i : i + len(sp)], sp)
            _write_split(f, ds.split)
            _write_meta(f, meta)
            if ds.conditions:
                g = f.create_group("conditions")
                for key, v in ds.conditions.items():
                    g.create_dataset(key, data=np.asarray(v, dtype=np.float64))
            f.attrs["n_written"] = ds.n
            f.attrs["content_sha256"] = h.hexdigest()
            f.attrs["complete"] = True
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
