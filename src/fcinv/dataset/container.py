"""The in-memory (or lazily read) dataset: :class:`Dataset` and its :class:`LazySpectra`; importable
from :mod:`fcinv.dataset.io` too, where the file format is described."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from fcinv.dataset.layout import (
    SPLITS,
    _check_split,
    _name,
)
from fcinv.errors import DataError, GridError
from fcinv.grid import SpectrumGrid

log = logging.getLogger(__name__)


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
                f"dataset {_name(self.path)} has NaN in '/spectra' (samples {bad}). Regenerate it with "
                "fcinv dataset."
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
                f"{where}: theta has shape {self.theta.shape}; expected (N, k). Pass one row of "
                "parameters per sample."
            )
        n, k = self.theta.shape
        if len(self.names) != k or len(set(self.names)) != k:
            raise DataError(
                f"{where}: {len(self.names)} names {list(self.names)} for theta with k={k} columns. "
                "Pass one unique name per column."
            )
        if not isinstance(self.spectra, LazySpectra):
            self.spectra = np.asarray(self.spectra, dtype=np.float32)
        shape = tuple(self.spectra.shape)
        if shape != (n, *self.grid.shape):
            raise GridError(
                f"{where}: spectra have shape {shape}; expected {(n, *self.grid.shape)} (N from theta, "
                "(n_q, n_E) from the grid). Pass spectra on the dataset's grid."
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
                f"{where}: per-sample conditions {bad} do not have one value per sample (N={n}). Pass "
                "arrays of length N."
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
