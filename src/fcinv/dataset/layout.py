"""The dataset file's layout: format constants, the content hash, the split, metadata checks, and the
groups a writer creates (:mod:`fcinv.dataset.io` has the format's description; everything here is
importable from there too)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fcinv.errors import DataError
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
                f"{where}: meta['{key}'] has shape {np.asarray(meta[key]).shape}; expected ({k},), one "
                "bound per name."
            )
    if len(meta["fixed_names"]) != len(meta["fixed_values"]):
        raise DataError(
            f"{where}: {len(meta['fixed_names'])} fixed_names but {len(meta['fixed_values'])} "
            "fixed_values. Pass one value per fixed name."
        )


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
