"""A folded spectrum I(q, E) on the model's grid, with its coverage, and its file format.

File layout (HDF5, format ``fcinv-folded``, version 1)::

    /intensity     (n_q, n_E) float64, attr unit = "arb. units"   NaN where not measured
    /error         (n_q, n_E) float64, attr unit = "arb. units"   standard error; NaN where unknown
    /mask          (n_q, n_E) bool,    attr unit = "1"            True = measured
    /n_contrib     (n_q, n_E) int64,   attr unit = "1"            4D bins x (symmetry image, zone) summed
    /exposure      (n_q, n_E) float64, attr unit = "counts per intensity unit"   optional (see below)
    /axes/q_rlu    (n_q, 3) float64,   attr unit = "r.l.u."
    /axes/energy_edges (n_E + 1,) float64, attr unit = "meV"
    root attributes format, format_version, grid (JSON), meta (JSON), fcinv_version,
                    created, command, seed
    /entry/data    NeXus NXdata (NXroot -> NXentry -> NXdata, see :mod:`fcinv.io.nexus`):
                   intensity, intensity_errors (links to /intensity, /error), axes
                   q_path (n_q,) "path coordinate" (q-bin index, centres at i + 0.5) and
                   energy (n_E + 1,) meV bin edges; coordinates h, k, l (n_q,) r.l.u.

Files written before the NeXus group existed read the same (the readers use the root layout).

``/exposure`` (optional; files without it, all written before it existed, read with ``exposure=None``):
the pixel's effective counts per unit of intensity, c = (Σ w)² / Σ m² f w over the 4D bins landing
there (w: a bin's normalisation, f: its correction factor, m: how many times the fold adds the bin into
that pixel). For Poisson counts of mean w·λ per bin and an intensity μ constant over the pixel the fold's
value has variance μ / c, so c is what a count-honest fit needs (``weighting="poisson"``): the variance
from the model's μ, not from the data, and a pixel with zero counts is weighted by its own exposure.
NaN where not measured or unknown.

Files are written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcinv.errors import DataError, GridError, describe_exception
from fcinv.experiment import _h5
from fcinv.experiment.readers import read_pathsqe_folded
from fcinv.grid import SpectrumGrid

FORMAT = "fcinv-folded"
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class FoldedSpectrum:
    """I(q, E) on a :class:`~fcinv.grid.SpectrumGrid`, NaN where nothing was measured.

    Parameters
    ----------
    intensity
        Shape (n_q, n_E) float64, arbitrary units; NaN exactly where ``mask`` is False.
    error
        Shape (n_q, n_E) float64, same unit: standard error (>= 0), NaN where unknown
        (unmeasured pixels, or inputs that carry no errors such as pathSQE's output).
    mask
        Shape (n_q, n_E) bool: True where the pixel was measured.
    n_contrib
        Shape (n_q, n_E) int64 (>= 0): number of contributing 4D bins, each counted once per
        (symmetry image, Brillouin zone) it was folded from; -1 everywhere when unknown.
    grid
        The (q, E) grid.
    meta
        Provenance: source file, corrections applied, zones used, timings.
    exposure
        Shape (n_q, n_E) float64 or None: effective counts per unit of intensity of each pixel
        (module docstring), > 0 where measured and known, NaN elsewhere; None when the data are not
        Poisson counts with a normalisation (then fits weight by ``error``).
    """

    intensity: np.ndarray
    error: np.ndarray
    mask: np.ndarray
    n_contrib: np.ndarray
    grid: SpectrumGrid
    meta: dict = field(default_factory=dict)
    exposure: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = self.grid.shape
        arrs = {}
        for name, dtype in (("intensity", float), ("error", float), ("mask", bool), ("n_contrib", np.int64)):
            a = np.asarray(getattr(self, name))
            if a.shape != shape:
                raise GridError(
                    f"{name} has shape {a.shape} but the grid is {shape} (n_q, n_E). Fold or rebin onto "
                    "the grid first."
                )
            arrs[name] = a.astype(dtype, copy=False)
        inten, err, mask = arrs["intensity"], arrs["error"], arrs["mask"]
        bad = mask & ~np.isfinite(inten)
        if np.any(bad):
            raise DataError(
                f"intensity is NaN/inf at {int(bad.sum())} pixels marked measured. Set mask False there "
                "(or pass finite values)."
            )
        if np.any(~mask & ~np.isnan(inten)):
            inten = np.where(mask, inten, np.nan)
        if np.any(err[np.isfinite(err)] < 0):
            raise DataError(
                f"error has negative values (min {np.nanmin(err):g}). Pass standard errors (>= 0)."
            )
        err = np.where(mask, err, np.nan)
        if np.any(arrs["n_contrib"] < -1):
            raise DataError("n_contrib has values below -1. Pass counts (>= 0) or -1 for unknown.")
        if not np.any(mask):
            raise DataError(
                "the folded spectrum has no measured pixel. Check the data's coverage, the q tolerance and "
                "the zones used."
            )
        if self.exposure is not None:
            ex = np.asarray(self.exposure, dtype=float)
            if ex.shape != shape:
                raise GridError(
                    f"exposure has shape {ex.shape} but the grid is {shape} (n_q, n_E). Pass one value per "
                    "pixel."
                )
            if np.any(ex[np.isfinite(ex)] < 0):
                raise DataError(
                    f"exposure has negative values (min {np.nanmin(ex):g}). Pass counts per intensity (>= 0)."
                )
            ex = np.where(mask & (ex > 0), ex, np.nan)
            object.__setattr__(self, "exposure", ex)
        object.__setattr__(self, "intensity", inten)
        object.__setattr__(self, "error", err)
        object.__setattr__(self, "mask", mask)
        object.__setattr__(self, "n_contrib", arrs["n_contrib"])
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ derived
    @property
    def has_exposure(self) -> bool:
        """Whether every measured pixel has a positive exposure (the count-honest fit can be used)."""
        return self.exposure is not None and bool(np.all(np.isfinite(self.exposure[self.mask])))

    @property
    def coverage(self) -> float:
        """Fraction of measured pixels."""
        return float(self.mask.mean())

    def filled(self, value: float = 0.0) -> np.ndarray:
        """Intensity with unmeasured pixels set to ``value``, shape (n_q, n_E) float64."""
        return np.where(self.mask, self.intensity, value)

    # ------------------------------------------------------------- builders
    @classmethod
    def from_arrays(
        cls,
        intensity: np.ndarray,
        grid: SpectrumGrid,
        *,
        error: np.ndarray | None = None,
        n_contrib: np.ndarray | None = None,
        meta: dict | None = None,
        exposure: np.ndarray | None = None,
    ) -> FoldedSpectrum:
        """Build from an intensity image whose NaNs mark unmeasured pixels."""
        intensity = np.asarray(intensity, dtype=float)
        if intensity.shape != grid.shape:
            raise GridError(
                f"the spectrum has shape {intensity.shape} but the grid is {grid.shape} (n_q, n_E). Pass a "
                "spectrum on this grid, or rebin it."
            )
        if np.any(np.isinf(intensity)):
            raise DataError(
                f"the spectrum has {int(np.isinf(intensity).sum())} infinite values. Mark unmeasured "
                "pixels with NaN, not inf."
            )
        mask = np.isfinite(intensity)
        err = np.full(grid.shape, np.nan) if error is None else np.asarray(error, dtype=float)
        nc = np.full(grid.shape, -1, dtype=np.int64) if n_contrib is None else np.asarray(n_contrib)
        return cls(
            intensity=intensity,
            error=err,
            mask=mask,
            n_contrib=nc,
            grid=grid,
            meta=meta or {},
            exposure=exposure,
        )

    @classmethod
    def from_pathsqe(cls, path: str | Path, grid: SpectrumGrid, *, transpose: bool = False) -> FoldedSpectrum:
        """Read pathSQE's folded output (``folded_path_plot_*.npy`` or ``.npz``) onto ``grid``.

        pathSQE stores data/normalisation (no errors): ``error`` is NaN and ``n_contrib`` -1.
        """
        d = read_pathsqe_folded(path, transpose=transpose)
        img = d["intensity"]
        if img.shape != grid.shape:
            hint = (
                " It looks transposed: pass transpose=True (--transpose)."
                if img.shape == grid.shape[::-1]
                else ""
            )
            raise GridError(
                f"pathSQE file '{path}' holds a {img.shape} image but the grid is {grid.shape} (n_q, "
                f"n_E).{hint} Otherwise fold with the grid pathSQE used."
            )
        meta = {
            "source": str(path),
            "source_format": "pathSQE folded_path_plot",
            "errors": "unknown (pathSQE output has none)",
            "corrections": [],
        }
        return cls.from_arrays(img, grid, meta=meta)

    def __repr__(self) -> str:
        return (
            f"FoldedSpectrum(shape={self.grid.shape}, coverage={100 * self.coverage:.1f} %, "
            f"source={self.meta.get('source', '?')!r})"
        )

    # ---------------------------------------------------------------- files
    def to_hdf5(self, path: str | Path, *, command: str | None = None, seed: int | None = None) -> Path:
        """Write atomically as an ``fcinv-folded`` HDF5 file (layout in the module docstring)."""
        with _h5.atomic_h5(path) as f:
            _h5.stamp(f, FORMAT, FORMAT_VERSION, command=command, seed=seed, meta=self.meta)
            f.attrs["grid"] = self.grid.to_json()
            _h5.put(f, "intensity", self.intensity, "arb. units")
            _h5.put(f, "error", self.error, "arb. units")
            _h5.put(f, "mask", self.mask, "1", description="True = measured")
            _h5.put(f, "n_contrib", self.n_contrib, "1")
            if self.exposure is not None:
                _h5.put(
                    f,
                    "exposure",
                    self.exposure,
                    "counts per intensity unit",
                    description="effective counts per unit of intensity; variance = mean / exposure",
                )
            g = f.create_group("axes")
            _h5.put(g, "q_rlu", self.grid.q_rlu, "r.l.u.")
            _h5.put(g, "energy_edges", self.grid.energy_edges, "meV")
            nexus_folded(f, self.grid, f["intensity"], f["error"], title=self.meta.get("source"))
        return Path(path)

    @classmethod
    def from_hdf5(cls, path: str | Path) -> FoldedSpectrum:
        """Read a file written by :meth:`to_hdf5`."""
        with _h5.open_checked(path, FORMAT) as f:
            try:
                raw = f.attrs["grid"]
                grid = SpectrumGrid.from_json(raw.decode() if isinstance(raw, bytes) else raw)
                arrs = {k: f[k][()] for k in ("intensity", "error", "mask", "n_contrib")}
                arrs["exposure"] = f["exposure"][()] if "exposure" in f else None
            except KeyError as exc:
                raise DataError(
                    f"'{path}' is incomplete ({describe_exception(exc)}). The file is truncated or not a "
                    "folded spectrum; regenerate it."
                ) from None
            meta = _h5.read_meta(f)
        return cls(grid=grid, meta=meta, **arrs)


def nexus_folded(f, grid: SpectrumGrid, signal, error, *, title: str | None = None) -> None:
    """Add the NeXus NXdata of an I(q, E) on ``grid`` to an open HDF5 file (see the module docstring).

    Parameters
    ----------
    f
        h5py.File open for writing.
    grid
        The (q, E) grid of the image.
    signal, error
        Shape (n_q, n_E): the intensity and its standard error (datasets of ``f`` or arrays).
    title
        The NXentry title.
    """
    from fcinv.io.nexus import NXField, write_nxdata

    q = grid.q_rlu
    write_nxdata(
        f,
        NXField("intensity", signal, "arb. units"),
        [
            NXField("q_path", np.arange(grid.n_q) + 0.5, "path coordinate", long_name="q-bin along the path"),
            NXField("energy", grid.energy_edges, "meV", long_name="energy transfer (meV)"),
        ],
        errors=error,
        coordinates=[NXField(c, q[:, i], "r.l.u.", dims=(0,)) for i, c in enumerate("hkl")],
        title=None if title is None else str(title),
    )


def write_folded(
    path: str | Path, fs: FoldedSpectrum, *, command: str | None = None, seed: int | None = None
) -> None:
    """Write a :class:`FoldedSpectrum` (same as :meth:`FoldedSpectrum.to_hdf5`)."""
    fs.to_hdf5(path, command=command, seed=seed)


def read_folded(path: str | Path) -> FoldedSpectrum:
    """Read a file written by :func:`write_folded` (same as :meth:`FoldedSpectrum.from_hdf5`)."""
    return FoldedSpectrum.from_hdf5(path)
