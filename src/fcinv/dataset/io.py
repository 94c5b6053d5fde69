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

import datetime as _dt  # noqa: F401 - kept importable from here
import hashlib  # noqa: F401
import json
import logging
import os
import sys  # noqa: F401
from collections.abc import Iterator  # noqa: F401
from dataclasses import dataclass, field  # noqa: F401
from pathlib import Path
from typing import Any  # noqa: F401

import h5py
import numpy as np

# the format's parts live in neighbouring modules; every name stays importable from here
from fcinv.dataset.container import Dataset, LazySpectra
from fcinv.dataset.layout import (  # noqa: F401
    _ARRAY_META,
    _REFERENCE_N,
    FORMAT,
    FORMAT_VERSION,
    REQUIRED_META,
    SPECTRA_UNIT,
    SPLITS,
    THETA_UNIT,
    _check_meta,
    _check_split,
    _create_layout,
    _name,
    _nexus_layout,
    _now,
    _update_hash,
    _version,
    _write_meta,
    _write_split,
    content_hasher,
    default_command,
    make_split,
)
from fcinv.dataset.writer import DatasetWriter, write_dataset  # noqa: F401
from fcinv.errors import DataError, GridError, describe_exception
from fcinv.grid import SpectrumGrid
from fcinv.io import jsonable  # noqa: F401

log = logging.getLogger(__name__)


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
