"""The training-set file: (θ, I(q, E)) pairs in HDF5, with everything needed to reproduce them.

Layout of a dataset file (format ``fcinv-dataset``, version 1)::

    /theta                 (N, k) float64, attr unit = "eV/Å^2"   sampled parameters FC0..FC{k-1}
    /spectra               (N, n_q, n_E) float32, attr unit = "arb. units"
                           chunked one spectrum per chunk, compressed (gzip level 1 by default)
    /names                 (k,) utf-8 strings, e.g. "1NN_xx"
    /split/train|val|test  int64 index arrays into the N samples (disjoint, covering 0..N-1)
    /axes/q_rlu            (n_q, 3) float64, attr unit = "r.l.u."
    /axes/energy_edges     (n_E + 1,) float64, attr unit = "meV"
    /axes/energy           (n_E,) float64, attr unit = "meV" (bin centres)
    /domain/low, /domain/high  (k,) float64, attr unit = "eV/Å^2" (copies of meta, for h5dump readers)
    /conditions/<name>     (N,) float64, optional: per-sample measurement conditions of a
                           domain-randomised set (temperature_K, coverage_id, fwhm_scale,
                           background, counts_scale, measured_fraction; see
                           fcinv.dataset.randomise), each with attr unit
    root attributes        format, format_version, grid (JSON), meta (JSON), content_sha256,
                           n_total, n_written, complete, fcinv_version, material, seed, command, created
    /entry/data            NeXus NXdata (see fcinv.io.nexus): spectra (a link to /spectra) against
                           q_path (path coordinate) and energy (meV edges); older files lack it and
                           read the same

``meta`` (JSON) is the single source of truth for the metadata; the scalar root
attributes duplicate a few entries so that ``h5dump -A`` shows the provenance.
``content_sha256`` hashes the θ bytes (float64) and spectra bytes (float32) in
sample order; it identifies the data independently of compression.

Files are written atomically: :func:`write_dataset` writes a temporary file in
the same folder and renames it; :class:`DatasetWriter` writes ``<path>.partial``,
can be resumed after a crash, and renames it to ``<path>`` when complete.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fcinv.errors import DataError, GridError, describe_exception
from fcinv.grid import SpectrumGrid
from fcinv.io import jsonable

log = logging.getLogger(__name__)

FORMAT = "fcinv-dataset"
FORMAT_VERSION = 1
THETA_UNIT = "eV/Å^2"
SPECTRA_UNIT = "arb. units"
SPLITS = ("train", "val", "test")
#: Metadata keys a dataset must carry (``fcinv_version`` and ``created`` are filled in on write).
REQUIRED_META = (
    "material",
    "seed",
    "command",
    "domain_low",
    "domain_high",
    "fixed_names",
    "fixed_values",
    "width_meV",
    "accepted_fraction",
    "forward_model",
)
#: Metadata entries returned as numpy arrays by the reader.
_ARRAY_META = ("domain_low", "domain_high", "fixed_values")
#: Reference dataset size for which ``make_split`` uses its full ``n_test`` (the paper: 10,000).
_REFERENCE_N = 10_000


# ------------------------------------------------------------------------- helpers
def _version() -> str:
    from fcinv import __version__

    return __version__


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _name(path: str | os.PathLike) -> str:
    return Path(path).name


def default_command() -> str:
    """The command line of the running process, for provenance."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"


def content_hasher() -> hashlib._Hash:
    """A fresh hasher for :attr:`Dataset.content_hash` (feed θ then spectra per chunk)."""
    return hashlib.sha256()


def _update_hash(h, theta: np.ndarray, spectra: np.ndarray) -> None:
    for t, s in zip(
        np.ascontiguousarray(theta, dtype=np.float64), np.ascontiguousarray(spectra, dtype=np.float32)
    ):
        h.update(t.tobytes())
        h.update(s.tobytes())


def make_split(n: int, n_test: int = 1500, val_fraction: float = 0.1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random train/validation/test split of ``n`` samples.

    The test set has ``n_test`` samples for datasets of at least 10,000 samples (the
    paper's 1,500 of 10,000). Smaller datasets get a proportionally smaller test set,
    ``round(n_test * n / 10000)``, so that a 1,000-sample dataset keeps 150 test
    spectra rather than losing most of its data. The validation set is
    ``round(val_fraction * (n - n_test))`` of the rest. Each part has at least one
    sample when ``n >= 3``.

    Parameters
    ----------
    n
        Number of samples.
    n_test
        Test-set size at the reference size of 10,000 samples and above.
    val_fraction
        Fraction of the non-test samples used for validation (early stopping).
    seed
        Seed of the permutation.

    Returns
    -------
    dict
        ``{"train", "val", "test"}`` → sorted int64 index arrays, disjoint, covering ``0..n-1``.
    """
    if n < 3:
        raise DataError(f"a split needs at least 3 samples, got n={n}. Generate a larger dataset.")
    if not 0 <= val_fraction < 1:
        raise DataError(f"val_fraction={val_fraction} is outside [0, 1). Pass e.g. 0.1.")
    if n_test < 1:
        raise DataError(f"n_test={n_test} must be >= 1. Pass e.g. 1500.")
    n_te = n_test if n >= _REFERENCE_N else int(round(n_test * n / _REFERENCE_N))
    n_te = min(max(n_te, 1), n - 2)
    n_va = min(max(int(round(val_fraction * (n - n_te))), 1), n - n_te - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return {
        "test": np.sort(perm[:n_te]).astype(np.int64),
        "val": np.sort(perm[n_te : n_te + n_va]).astype(np.int64),
        "train": np.sort(perm[n_te + n_va :]).astype(np.int64),
    }


def _check_split(split: dict, n: int, where: str) -> dict[str, np.ndarray]:
    missing = [s for s in SPLITS if s not in split]
    if missing:
        raise DataError(
            f"{where}: the split lacks {missing}. Pass train, val and test index arrays (see make_split)."
        )
    out = {s: np.asarray(split[s], dtype=np.int64).reshape(-1) for s in SPLITS}
    allidx = np.concatenate([out[s] for s in SPLITS])
    if len(allidx) != n or not np.array_equal(np.sort(allidx), np.arange(n)):
        raise DataError(
            f"{where}: the split is not a partition of 0..{n - 1} (sizes {[len(out[s]) for s in SPLITS]}). "
            "Pass disjoint train/val/test indices that cover every sample (see make_split)."
        )
    return out


def _check_meta(meta: dict, k: int, where: str) -> None:
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise DataError(
            f"{where}: the metadata lacks {missing}. Add them to meta (see fcinv.dataset.REQUIRED_META)."
        )
    for key in ("domain_low", "domain_high"):
        if np.asarray(meta[key]).shape != (k,):
            raise DataError(
                f"{where}: meta['{key}'] has shape {np.asarray(meta[key]).shape}; expected ({k},), one bound per name."
            )
    if len(meta["fixed_names"]) != len(meta["fixed_values"]):
        raise DataError(
            f"{where}: {len(meta['fixed_names'])} fixed_names but {len(meta['fixed_values'])} fixed_values. Pass one value per fixed name."
        )


# --------------------------------------------------------------------- container
class LazySpectra:
    """Spectra read from the HDF5 file on access (``lazy=True`` datasets).

    Indexing with an int, a slice or an index array returns float32 numpy arrays
    of shape ``(n_q, n_E)`` or ``(m, n_q, n_E)``; NaN is refused on read. The file
    is opened on first access (so the object can cross process boundaries) and
    closed by :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int, int]) -> None:
        self.path = Path(path)
        self.shape = tuple(shape)
        self.dtype = np.dtype(np.float32)
        self._file: h5py.File | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def ndim(self) -> int:
        return 3

    def _ds(self) -> h5py.Dataset:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file["spectra"]

    def __getitem__(self, idx) -> np.ndarray:
        ds = self._ds()
        if isinstance(idx, (int, np.integer, slice)):
            out = ds[idx]
        else:
            idx = np.asarray(idx, dtype=np.int64)
            if idx.ndim != 1:
                raise DataError(f"index the spectra with a 1-D array, got shape {idx.shape}.")
            order = np.argsort(idx)
            sorted_idx = idx[order]
            uniq, inverse = np.unique(sorted_idx, return_inverse=True)
            block = self._read_sorted(ds, uniq)
            out = np.empty((len(idx), *self.shape[1:]), np.float32)
            out[order] = block[inverse]
        out = np.asarray(out, dtype=np.float32)
        if np.isnan(out).any():
            rows = np.atleast_1d(np.arange(self.shape[0])[idx] if not isinstance(idx, np.ndarray) else idx)
            bad = rows[np.isnan(out).reshape(len(rows), -1).any(axis=1)][:5].tolist()
            raise DataError(
                f"dataset {_name(self.path)} has NaN in '/spectra' (samples {bad}). Regenerate it with fcinv dataset."
            )
        return out

    def _read_sorted(self, ds: h5py.Dataset, uniq: np.ndarray, block: int = 512) -> np.ndarray:
        """Rows ``uniq`` (sorted, unique). Dense selections are read in contiguous blocks,
        which is several times faster than HDF5 point selection; sparse ones by selection."""
        if len(uniq) == 0:
            return np.empty((0, *self.shape[1:]), np.float32)
        lo, hi = int(uniq[0]), int(uniq[-1]) + 1
        if len(uniq) < 0.1 * (hi - lo):
            return ds[uniq]
        out = np.empty((len(uniq), *self.shape[1:]), np.float32)
        pos = 0
        for start in range(lo, hi, block):
            stop = min(start + block, hi)
            a, b = np.searchsorted(uniq, [start, stop])
            if b > a:
                out[pos : pos + b - a] = ds[start:stop][uniq[a:b] - start]
                pos += b - a
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self[slice(None)]
        return arr if dtype is None else arr.astype(dtype)

    def iter_chunks(self, indices: np.ndarray, chunk: int = 512) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(index_chunk, spectra_chunk)`` over ``indices`` in pieces of ``chunk``."""
        for i in range(0, len(indices), chunk):
            sel = np.asarray(indices[i : i + chunk])
            yield sel, self[sel]

    def close(self) -> None:
        """Close the underlying file (reopened on next access)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):
        return {"path": self.path, "shape": self.shape, "dtype": self.dtype, "_file": None}


@dataclass(eq=False)
class Dataset:
    """A set of (θ, I(q, E)) pairs on one grid, with its split and provenance.

    Parameters
    ----------
    theta
        Shape (N, k) float64, eV/Å²: the sampled parameters, ordered FC0..FC{k-1}
        by decreasing sensitivity.
    names
        The k parameter names, e.g. ``("1NN_xx", "1NN_xy", ...)``.
    spectra
        Shape (N, n_q, n_E) float32, arbitrary units: I(q, E) per sample, either a
        numpy array or a :class:`LazySpectra` reading from the file.
    grid
        The (q, E) grid of every spectrum.
    split
        ``{"train", "val", "test"}`` → int64 index arrays, disjoint, covering 0..N-1.
    meta
        Provenance and domain: see :data:`REQUIRED_META`.
    conditions
        Optional per-sample measurement conditions, name → shape (N,) float64
        (domain-randomised sets: ``temperature_K``, ``coverage_id``, ...; units in
        ``meta["conditions_units"]``).
    content_hash
        sha256 of the θ and spectra bytes (set by the reader and the writer).
    path
        The file it was read from, if any.
    """

    theta: np.ndarray
    names: tuple[str, ...]
    spectra: np.ndarray | LazySpectra
    grid: SpectrumGrid
    split: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    content_hash: str = ""
    path: Path | None = None
    conditions: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"dataset {_name(self.path)}" if self.path else "the dataset"
        self.theta = np.asarray(self.theta, dtype=np.float64)
        self.names = tuple(str(x) for x in self.names)
        if self.theta.ndim != 2:
            raise DataError(
                f"{where}: theta has shape {self.theta.shape}; expected (N, k). Pass one row of parameters per sample."
            )
        n, k = self.theta.shape
        if len(self.names) != k or len(set(self.names)) != k:
            raise DataError(
                f"{where}: {len(self.names)} names {list(self.names)} for theta with k={k} columns. Pass one unique name per column."
            )
        if not isinstance(self.spectra, LazySpectra):
            self.spectra = np.asarray(self.spectra, dtype=np.float32)
        shape = tuple(self.spectra.shape)
        if shape != (n, *self.grid.shape):
            raise GridError(
                f"{where}: spectra have shape {shape}; expected {(n, *self.grid.shape)} (N from theta, (n_q, n_E) from the grid). Pass spectra on the dataset's grid."
            )
        if not np.all(np.isfinite(self.theta)):
            raise DataError(f"{where}: theta contains NaN or inf. Drop or regenerate those samples.")
        if isinstance(self.spectra, np.ndarray) and np.isnan(self.spectra).any():
            bad = int(np.isnan(self.spectra).reshape(n, -1).any(axis=1).sum())
            raise DataError(f"{where}: {bad} spectra contain NaN. Drop or regenerate those samples.")
        self.split = _check_split(self.split, n, where)
        self.conditions = {
            str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in (self.conditions or {}).items()
        }
        bad = {k: len(v) for k, v in self.conditions.items() if len(v) != n}
        if bad:
            raise DataError(
                f"{where}: per-sample conditions {bad} do not have one value per sample (N={n}). Pass arrays of length N."
            )

    @property
    def n(self) -> int:
        """Number of samples N."""
        return self.theta.shape[0]

    @property
    def k(self) -> int:
        """Number of parameters k."""
        return self.theta.shape[1]

    def indices(self, part: str) -> np.ndarray:
        """Index array of one split part (``"train"``, ``"val"`` or ``"test"``)."""
        if part not in SPLITS:
            raise DataError(f"unknown split part {part!r}. Use one of {SPLITS}.")
        return self.split[part]

    def get_spectra(self, idx: np.ndarray | slice) -> np.ndarray:
        """Spectra at ``idx`` as a float32 array, shape (m, n_q, n_E); works eager or lazy."""
        if isinstance(self.spectra, LazySpectra):
            return self.spectra[idx]
        return np.asarray(self.spectra[idx], dtype=np.float32)

    def part(self, part: str, max_n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(theta, spectra)`` of one split part, optionally its first ``max_n`` samples."""
        idx = self.indices(part)
        if max_n is not None:
            idx = idx[: int(max_n)]
        return self.theta[idx], self.get_spectra(idx)

    def close(self) -> None:
        """Release the file handle of a lazy dataset (no-op for eager ones)."""
        if isinstance(self.spectra, LazySpectra):
            self.spectra.close()


# ------------------------------------------------------------------------ writing
def _create_layout(
    f: h5py.File,
    grid: SpectrumGrid,
    names: tuple[str, ...],
    n_total: int,
    compression: str | None,
    compression_opts: int | None,
) -> None:
    k = len(names)
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["fcinv_version"] = _version()
    f.attrs["grid"] = grid.to_json()
    f.attrs["n_total"] = int(n_total)
    f.attrs["n_written"] = 0
    f.attrs["complete"] = False
    d = f.create_dataset(
        "theta", shape=(0, k), maxshape=(None, k), dtype="f8", chunks=(max(1, min(4096, n_total)), k)
    )
    d.attrs["unit"] = THETA_UNIT
    kw: dict[str, Any] = {}
    if compression:
        kw["compression"] = compression
        if compression_opts is not None:
            kw["compression_opts"] = compression_opts
        kw["shuffle"] = True
    s = f.create_dataset(
        "spectra",
        shape=(0, *grid.shape),
        maxshape=(None, *grid.shape),
        dtype="f4",
        chunks=(1, *grid.shape),
        **kw,
    )
    s.attrs["unit"] = SPECTRA_UNIT
    f.create_dataset("names", data=np.array(names, dtype=object), dtype=h5py.string_dtype("utf-8"))
    ax = f.create_group("axes")
    ax.create_dataset("q_rlu", data=grid.q_rlu).attrs["unit"] = "r.l.u."
    ax.create_dataset("energy_edges", data=grid.energy_edges).attrs["unit"] = "meV"
    ax.create_dataset("energy", data=grid.energy).attrs["unit"] = "meV"
    _nexus_layout(f, grid, s)


def _nexus_layout(f: h5py.File, grid: SpectrumGrid, spectra: h5py.Dataset) -> None:
    """The NeXus default plot: /entry/data (NXdata) links /spectra, axes sample × q_path × energy."""
    from fcinv.io.nexus import NXField, write_nxdata

    write_nxdata(
        f,
        NXField("spectra", spectra, SPECTRA_UNIT),
        [
            None,
            NXField("q_path", np.arange(grid.n_q) + 0.5, "path coordinate", long_name="q-bin along the path"),
            NXField("energy", grid.energy_edges, "meV", long_name="energy transfer (meV)"),
        ],
        coordinates=[NXField(c, grid.q_rlu[:, i], "r.l.u.", dims=(1,)) for i, c in enumerate("hkl")],
        title="fcinv training dataset (theta, I(q, E)) pairs",
    )


def _write_meta(f: h5py.File, meta: dict) -> None:
    f.attrs["meta"] = json.dumps(jsonable(meta))
    for key in ("material", "seed", "command", "created", "fcinv_version"):
        if meta.get(key) is not None:
            f.attrs[key] = (
                jsonable(meta[key])
                if not isinstance(meta[key], (dict, list))
                else json.dumps(jsonable(meta[key]))
            )
    if "domain_low" in meta and "domain_high" in meta:
        g = f.require_group("domain")
        for key, name in (("domain_low", "low"), ("domain_high", "high")):
            if name in g:
                del g[name]
            g.create_dataset(name, data=np.asarray(meta[key], dtype=float)).attrs["unit"] = THETA_UNIT


def _write_split(f: h5py.File, split: dict[str, np.ndarray]) -> None:
    if "split" in f:
        del f["split"]
    g = f.create_group("split")
    for s in SPLITS:
        g.create_dataset(s, data=np.asarray(split[s], dtype=np.int64))


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
        HDF5 filter of ``/spectra`` (``"gzip"`` level 1 by default: readable by any HDF5 tool; ``"lzf"`` is faster, h5py only).
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
                f"{self.partial_path.name} exists (an interrupted run). Continue it with DatasetWriter.resume('{self.path}') "
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
                        f"{partial.name} is not an fcinv dataset (format {f.attrs.get('format')!r}). Delete it and start again."
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
                f"theta chunk has shape {theta_chunk.shape}; expected (m, {k}). Pass one value per name {list(self.names)}."
            )
        m = theta_chunk.shape[0]
        if spectra_chunk.shape != (m, *self.grid.shape):
            raise GridError(
                f"spectra chunk has shape {spectra_chunk.shape}; expected {(m, *self.grid.shape)}. Pass spectra on the writer's grid."
            )
        if not np.all(np.isfinite(theta_chunk)) or np.isnan(spectra_chunk).any():
            raise DataError("the chunk contains NaN (or inf in theta). Drop those samples before appending.")
        cond = {
            str(key): np.asarray(v, dtype=np.float64).reshape(-1) for key, v in (conditions or {}).items()
        }
        have = sorted(self._file["conditions"].keys()) if "conditions" in self._file else []
        if (have or self.n_written) and sorted(cond) != have:
            raise DataError(
                f"conditions {sorted(cond)} differ from those already written {have}. Pass the same names on every append."
            )
        for key, v in cond.items():
            if len(v) != m:
                raise DataError(
                    f"condition '{key}' has {len(v)} values for {m} samples. Pass one value per sample."
                )
        n = self.n_written
        if n + m > self.n_total:
            raise DataError(
                f"appending {m} samples to {n} exceeds n_total={self.n_total}. Append at most {self.n_total - n}."
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


# ------------------------------------------------------------------------ reading
def _fail_missing(path: Path, field_: str) -> DataError:
    return DataError(
        f"dataset {path.name} lacks '{field_}'; it was not written by fcinv or is truncated. Regenerate it with fcinv dataset."
    )


def read_dataset(
    path: str | os.PathLike,
    expect_grid: SpectrumGrid | None = None,
    lazy: bool = False,
    verify: bool = True,
) -> Dataset:
    """Read and validate a dataset file.

    Parameters
    ----------
    path
        The HDF5 file written by :func:`write_dataset` or :class:`DatasetWriter`.
    expect_grid
        If given, the file's grid must equal it (:class:`GridError` otherwise).
    lazy
        Keep the spectra in the file (:class:`LazySpectra`) instead of loading them.
    verify
        Check ``content_sha256`` against the data (eager reads only).

    Raises
    ------
    DataError
        Missing file or field, wrong shapes, NaN, incomplete file or hash mismatch.
    GridError
        The grid differs from ``expect_grid``, or the spectra do not match the grid.
    """
    path = Path(path)
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        hint = (
            f" ({partial.name} exists: the generation was interrupted; resume it)" if partial.exists() else ""
        )
        raise DataError(f"dataset {path} does not exist{hint}. Generate it with fcinv dataset.")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(
            f"dataset {path.name} is not a readable HDF5 file ({describe_exception(exc)}). Regenerate it with fcinv dataset."
        ) from None
    with f:
        for key in ("/theta", "/spectra", "/names", "/split/train", "/split/val", "/split/test"):
            if key not in f:
                raise _fail_missing(path, key)
        for key in ("grid", "meta"):
            if key not in f.attrs:
                raise _fail_missing(path, f"attribute {key}")
        if not bool(f.attrs.get("complete", True)):
            raise DataError(
                f"dataset {path.name} is incomplete ({f.attrs.get('n_written')}/{f.attrs.get('n_total')} samples). Resume its generation."
            )
        grid = SpectrumGrid.from_json(f.attrs["grid"])
        if expect_grid is not None:
            expect_grid.check_same(grid, what=f"dataset {path.name}")
        try:
            meta = json.loads(f.attrs["meta"])
        except json.JSONDecodeError as exc:
            raise DataError(
                f"dataset {path.name} has corrupt metadata ({describe_exception(exc)}). Regenerate it with fcinv dataset."
            ) from None
        for key in _ARRAY_META:
            if key in meta:
                meta[key] = np.asarray(meta[key], dtype=float)
        theta = f["theta"][()]
        names = tuple(str(x) for x in f["names"].asstr()[()])
        split = {s: f["split"][s][()] for s in SPLITS}
        conditions = (
            {str(key): f["conditions"][key][()] for key in f["conditions"].keys()}
            if "conditions" in f
            else {}
        )
        sshape = f["spectra"].shape
        if len(sshape) != 3:
            raise DataError(
                f"dataset {path.name}: '/spectra' has shape {sshape}; expected (N, n_q, n_E). Regenerate it with fcinv dataset."
            )
        if sshape[1:] != grid.shape:
            raise GridError(
                f"dataset {path.name}: spectra are {sshape[1:]} but its grid is {grid.shape}. The file is corrupt; regenerate it."
            )
        if theta.ndim != 2 or theta.shape[0] != sshape[0]:
            raise DataError(
                f"dataset {path.name}: theta has shape {theta.shape} for {sshape[0]} spectra. The file is corrupt; regenerate it."
            )
        stored_hash = str(f.attrs.get("content_sha256", ""))
        if lazy:
            spectra: np.ndarray | LazySpectra = LazySpectra(path, sshape)
        else:
            spectra = f["spectra"][()]
            if verify and stored_hash:
                h = content_hasher()
                _update_hash(h, theta, spectra)
                if h.hexdigest() != stored_hash:
                    raise DataError(
                        f"dataset {path.name}: the data do not match their content hash. The file is corrupt; regenerate it."
                    )
    _check_meta(meta, theta.shape[1] if theta.ndim == 2 else 0, f"dataset {path.name}")
    return Dataset(
        theta=theta,
        names=names,
        spectra=spectra,
        grid=grid,
        split=split,
        meta=meta,
        content_hash=stored_hash,
        path=path,
        conditions=conditions,
    )
