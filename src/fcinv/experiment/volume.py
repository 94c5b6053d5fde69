"""A measured or simulated 4D S(Q, E) histogram, stored sparsely.

:class:`Volume4D` holds a histogram on a regular-or-not (H, K, L, E) grid: H, K, L
in reciprocal-lattice units (r.l.u.) of the conventional cell, E in meV. Only
*covered* bins are stored: their flat C-order indices into the dense shape
``(n_H, n_K, n_L, n_E)`` (sorted, unique) with the signal, its standard error and
optionally the normalisation (exposure: flux × solid angle × time). A bin that was
not measured is absent; it is never a zero.

Why sparse: a full ARCS-like Ge run (Ei = 40 meV, 120 orientations) binned at
0.05 r.l.u. × 0.5 meV covers about 6·10⁷ of the ~10⁹ bins of its bounding box,
and the path-tube region that folding uses 5.5·10⁶. Sparse storage costs 32 bytes
per covered bin (int64 index + three float64) and scales with coverage, not with
the bounding box. :meth:`Volume4D.to_dense` exists for small volumes only
(at most :data:`DENSE_LIMIT` bins).

Data and normalisation. When ``norm`` is present the bin's raw data are
``signal × norm`` and its raw variance ``(error × norm)²``; volumes are combined,
and folded, by summing data and normalisation separately and dividing at the end
(Mantid's MDNorm and pathSQE do the same). Without ``norm`` every bin weighs 1.

Bin-size advice for folding: a path bin is 0.025 of its segment's largest r.l.u.
component long, so the Q-bins should be at most 0.05 r.l.u. wide; a grid whose bin
centres sit at a quarter step off the origin (``centre = (n + ¼) Δ``) puts the
symmetry images of the bin centres exactly on the path-bin centres of axis-aligned
segments (see :func:`regular_edges`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcinv.errors import DataError, describe_exception
from fcinv.experiment import _h5
from fcinv.experiment.geometry import (  # noqa: F401  (check_edges, edges_from_axis: re-exported)
    AXIS_NAMES,
    AXIS_UNITS,
    check_edges,
    edges_from_axis,
    lattice_b_matrix,
    normalise_lattice,
    nxspe_to_points,
    ub_from_vectors,
)
from fcinv.experiment.readers import mdhisto_axes, read_array4d, read_mdhisto, read_nxspe

log = logging.getLogger(__name__)

#: Largest number of bins :meth:`Volume4D.to_dense` will allocate (4·10⁸ float64 = 3.2 GB).
DENSE_LIMIT = 400_000_000
FORMAT = "fcinv-volume"
FORMAT_VERSION = 1


def regular_edges(lo: float, hi: float, step: float, offset: float = 0.0) -> np.ndarray:
    """Bin edges of step ``step`` whose centres are at ``offset + n·step`` and cover [lo, hi].

    Parameters
    ----------
    lo, hi
        Range to cover (r.l.u. or meV).
    step
        Bin width, > 0.
    offset
        Position of one bin centre modulo ``step`` (``step/4`` is the folding-friendly choice).

    Returns
    -------
    Shape (n + 1,) float64 edges.
    """
    if not step > 0 or not hi > lo:
        raise DataError(f"cannot make bins from {lo} to {hi} in steps of {step}. Pass hi > lo and step > 0.")
    n0 = int(np.floor((lo - offset) / step + 0.5))
    n1 = int(np.ceil((hi - offset) / step - 0.5))
    centres = offset + step * np.arange(n0, n1 + 1)
    return np.concatenate([centres - step / 2, [centres[-1] + step / 2]])


@dataclass(frozen=True, eq=False)
class Volume4D:
    """Sparse 4D histogram I(H, K, L, E).

    Parameters
    ----------
    edges
        Four arrays of bin edges: H, K, L (r.l.u. of the conventional cell) and E (meV),
        each 1-D float64 and increasing.
    index
        Shape (n,) int64: flat C-order indices of the covered bins into the dense shape
        ``(n_H, n_K, n_L, n_E)``; unique (sorted on construction).
    signal
        Shape (n,) float64, arbitrary units: the (normalised) intensity of each covered bin.
    error
        Shape (n,) float64, same unit: its standard error (>= 0).
    norm
        Shape (n,) float64 (>= 0) or ``None``: the normalisation (exposure) of each bin.
    meta
        Free-form provenance (source, psi, instrument, ...), JSON-serialisable.
    reciprocal_cell
        Shape (3, 3) float64, 1/Å (including 2π): rows are the conventional reciprocal
        lattice vectors, so that Q(1/Å) = (H, K, L) @ reciprocal_cell; ``None`` when unknown.
    allow_negative
        Accept negative signal (background-subtracted data). Raw-count inputs never accept it.
    """

    edges: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    index: np.ndarray
    signal: np.ndarray
    error: np.ndarray
    norm: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    reciprocal_cell: np.ndarray | None = None
    allow_negative: bool = False

    def __post_init__(self) -> None:
        edges = check_edges(self.edges)
        shape = tuple(len(e) - 1 for e in edges)
        index = np.asarray(self.index, dtype=np.int64).ravel()
        n = len(index)
        if n == 0:
            raise DataError(
                "the volume is empty (no covered bins). Check the coverage of the data or the binning."
            )
        arrays = {"signal": self.signal, "error": self.error}
        if self.norm is not None:
            arrays["norm"] = self.norm
        conv: dict[str, np.ndarray] = {}
        for name, a in arrays.items():
            a = np.asarray(a, dtype=float).ravel()
            if len(a) != n:
                raise DataError(
                    f"the volume has {n} bin indices but {len(a)} {name} values. Pass one value per "
                    "covered bin."
                )
            if not np.all(np.isfinite(a)):
                raise DataError(
                    f"{name} has {int(np.sum(~np.isfinite(a)))} NaN/inf values in covered bins. Drop "
                    "uncovered bins from the index instead of storing NaN."
                )
            conv[name] = a
        if np.any(conv["error"] < 0):
            raise DataError(
                f"error has {int(np.sum(conv['error'] < 0))} negative values (min "
                f"{conv['error'].min():g}). Pass standard errors (>= 0)."
            )
        if "norm" in conv and np.any(conv["norm"] < 0):
            raise DataError(
                f"norm has {int(np.sum(conv['norm'] < 0))} negative values (min {conv['norm'].min():g}); a "
                "normalisation (exposure) cannot be negative. Check the normalisation input."
            )
        if not self.allow_negative and np.any(conv["signal"] < 0):
            raise DataError(
                f"signal has {int(np.sum(conv['signal'] < 0))} negative values (min "
                f"{conv['signal'].min():g}). "
                "Counts and intensities must be >= 0; pass allow_negative=True for background-subtracted "
                "data."
            )
        total = int(np.prod(shape, dtype=np.int64))
        if index.min() < 0 or index.max() >= total:
            raise DataError(
                f"bin index out of range [0, {total}) for shape {shape} (got "
                f"{index.min()}..{index.max()}). Indices are flat C-order into (n_H, n_K, n_L, n_E)."
            )
        if n > 1 and not np.all(np.diff(index) > 0):
            order = np.argsort(index, kind="stable")
            index = index[order]
            if np.any(np.diff(index) == 0):
                raise DataError(
                    "the volume lists some bins twice. Combine duplicate bins (Volume4D.from_points sums "
                    "them) before building the volume."
                )
            conv = {k: v[order] for k, v in conv.items()}
        rc = None
        if self.reciprocal_cell is not None:
            rc = np.asarray(self.reciprocal_cell, dtype=float)
            if rc.shape != (3, 3) or not np.all(np.isfinite(rc)) or abs(np.linalg.det(rc)) < 1e-12:
                raise DataError(
                    f"reciprocal_cell has shape {rc.shape} or is singular; expected a (3, 3) matrix of "
                    "reciprocal lattice vectors (1/Å) as rows."
                )
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "signal", conv["signal"])
        object.__setattr__(self, "error", conv["error"])
        object.__setattr__(self, "norm", conv.get("norm"))
        object.__setattr__(self, "reciprocal_cell", rc)
        object.__setattr__(self, "meta", dict(self.meta))

    # ------------------------------------------------------------------ derived
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """Dense shape ``(n_H, n_K, n_L, n_E)``."""
        return tuple(len(e) - 1 for e in self.edges)  # type: ignore[return-value]

    @property
    def n_covered(self) -> int:
        """Number of covered bins."""
        return len(self.index)

    @property
    def coverage(self) -> float:
        """Fraction of the bounding box's bins that are covered."""
        return self.n_covered / float(np.prod(self.shape, dtype=np.float64))

    def centres(self, axis: int) -> np.ndarray:
        """Bin centres of one axis (0..3 = H, K, L, E), shape (n_axis,) float64."""
        e = self.edges[axis]
        return 0.5 * (e[1:] + e[:-1])

    def unravel(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-axis bin indices of the covered bins, four (n,) int64 arrays."""
        return np.unravel_index(self.index, self.shape)  # type: ignore[return-value]

    def hkle(self) -> np.ndarray:
        """Bin centres of the covered bins, shape (n, 4) float64: H, K, L (r.l.u.), E (meV)."""
        idx = self.unravel()
        return np.stack([self.centres(a)[i] for a, i in enumerate(idx)], axis=1)

    @property
    def weights(self) -> np.ndarray:
        """The normalisation of each bin (ones when ``norm`` is absent), shape (n,) float64."""
        return self.norm if self.norm is not None else np.ones(self.n_covered)

    # ------------------------------------------------------------- builders
    @classmethod
    def from_dense(
        cls,
        edges: Sequence[np.ndarray],
        signal: np.ndarray,
        error: np.ndarray | None = None,
        *,
        errors_squared: np.ndarray | None = None,
        norm: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        meta: dict | None = None,
        reciprocal_cell: np.ndarray | None = None,
        allow_negative: bool = False,
    ) -> Volume4D:
        """Build from dense arrays of shape ``(n_H, n_K, n_L, n_E)``.

        A bin is covered where ``signal`` is finite, ``mask`` (True = masked) is False and
        ``norm`` (if given) is > 0. NaN in ``error`` of a covered bin is an error.
        """
        edges = check_edges(edges)
        shape = tuple(len(e) - 1 for e in edges)
        signal = np.asarray(signal, dtype=float)
        if signal.shape != shape:
            raise DataError(
                f"signal has shape {signal.shape} but the axes give {shape} bins (n_H, n_K, n_L, n_E). "
                "Check the axis order and the edge lengths."
            )
        if error is None and errors_squared is None:
            raise DataError("no error given. Pass error (standard errors) or errors_squared with the signal.")
        if error is None:
            es = np.asarray(errors_squared, dtype=float)
            if es.shape == shape and np.any(es[np.isfinite(es)] < 0):
                raise DataError(
                    f"errors_squared has negative values (min {np.nanmin(es):g}). Pass variances (>= 0)."
                )
            error = np.sqrt(np.abs(es))
        error = np.asarray(error, dtype=float)
        if error.shape != shape:
            raise DataError(f"error has shape {error.shape}, signal {shape}. Pass arrays of the same shape.")
        covered = np.isfinite(signal)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != shape:
                raise DataError(
                    f"mask has shape {mask.shape}, signal {shape}. Pass arrays of the same shape."
                )
            covered &= ~mask
        nrm = None
        if norm is not None:
            nrm = np.asarray(norm, dtype=float)
            if nrm.shape != shape:
                raise DataError(f"norm has shape {nrm.shape}, signal {shape}. Pass arrays of the same shape.")
            covered &= np.isfinite(nrm) & (nrm != 0)
        bad = covered & ~np.isfinite(error)
        if np.any(bad):
            raise DataError(
                f"error is NaN/inf in {int(bad.sum())} bins whose signal is finite. Give every measured "
                "bin a finite error, or mark the bin uncovered (NaN signal)."
            )
        flat = np.flatnonzero(covered.ravel())
        return cls(
            edges=edges,  # type: ignore[arg-type]
            index=flat,
            signal=signal.ravel()[flat],
            error=error.ravel()[flat],
            norm=None if nrm is None else nrm.ravel()[flat],
            meta=meta or {},
            reciprocal_cell=reciprocal_cell,
            allow_negative=allow_negative,
        )

    @classmethod
    def from_counts(
        cls,
        edges: Sequence[np.ndarray],
        index: np.ndarray,
        counts: np.ndarray,
        norm: np.ndarray,
        *,
        meta: dict | None = None,
        reciprocal_cell: np.ndarray | None = None,
    ) -> Volume4D:
        """Build from raw counts and their normalisation: signal = counts/norm, error = √counts / norm.

        Negative counts raise :class:`DataError`; bins with ``norm == 0`` are dropped.
        """
        counts = np.asarray(counts, dtype=float).ravel()
        norm = np.asarray(norm, dtype=float).ravel()
        index = np.asarray(index, dtype=np.int64).ravel()
        if not (len(counts) == len(norm) == len(index)):
            raise DataError(
                f"index, counts and norm have lengths {len(index)}, {len(counts)}, {len(norm)}. Pass one "
                "value per bin."
            )
        if np.any(~np.isfinite(counts)):
            raise DataError(
                f"counts contain {int(np.sum(~np.isfinite(counts)))} NaN/inf values. Counts must be finite "
                "integers >= 0."
            )
        if np.any(counts < 0):
            raise DataError(
                f"counts contain {int(np.sum(counts < 0))} negative values (min {counts.min():g}). Counts "
                "must be >= 0; check the input."
            )
        if np.any(norm < 0) or np.any(~np.isfinite(norm)):
            raise DataError(
                "norm contains negative or non-finite values. A normalisation (exposure) must be finite "
                "and >= 0."
            )
        keep = norm > 0
        counts, norm, index = counts[keep], norm[keep], index[keep]
        with np.errstate(divide="ignore", invalid="ignore"):
            signal = counts / norm
            error = np.sqrt(counts) / norm
        return cls(
            edges=tuple(edges),
            index=index,
            signal=signal,
            error=error,
            norm=norm,
            meta=meta or {},
            reciprocal_cell=reciprocal_cell,
        )  # type: ignore[arg-type]

    @classmethod
    def from_points(
        cls,
        edges: Sequence[np.ndarray],
        hkl: np.ndarray,
        energy: np.ndarray,
        signal: np.ndarray,
        error: np.ndarray,
        *,
        meta: dict | None = None,
        reciprocal_cell: np.ndarray | None = None,
    ) -> Volume4D:
        """Histogram scattered (H, K, L, E) points (e.g. NXSPE pixels) onto ``edges``.

        Each bin's signal is the mean of its points, its error ``√Σσ²/n`` and its ``norm``
        the number of points n (Horace's pixel averaging). Points outside the edges and points
        with non-finite signal (masked detectors) are dropped.

        Parameters
        ----------
        hkl
            Shape (n, 3) float64, r.l.u.
        energy
            Shape (n,) float64, meV.
        signal, error
            Shape (n,) float64.
        """
        edges = check_edges(edges)
        hkl = np.asarray(hkl, dtype=float).reshape(-1, 3)
        energy = np.asarray(energy, dtype=float).ravel()
        signal = np.asarray(signal, dtype=float).ravel()
        error = np.asarray(error, dtype=float).ravel()
        if not (len(hkl) == len(energy) == len(signal) == len(error)):
            raise DataError(
                f"hkl, energy, signal and error have {len(hkl)}, {len(energy)}, {len(signal)}, "
                f"{len(error)} points. Pass one value per point."
            )
        ok = np.isfinite(signal)
        bad = ok & ~np.isfinite(error)
        if np.any(bad):
            raise DataError(
                f"error is NaN/inf for {int(bad.sum())} points with finite signal. Give every measured "
                "point a finite error."
            )
        coords = (hkl[:, 0], hkl[:, 1], hkl[:, 2], energy)
        shape = tuple(len(e) - 1 for e in edges)
        idx = []
        for c, e, n in zip(coords, edges, shape):
            i = np.searchsorted(e, c, side="right") - 1
            ok &= (i >= 0) & (i < n) & np.isfinite(c)
            idx.append(i)
        flat = np.ravel_multi_index(tuple(i[ok] for i in idx), shape)
        uniq, inv = np.unique(flat, return_inverse=True)
        n = np.bincount(inv).astype(float)
        s = np.bincount(inv, weights=signal[ok]) / n
        e = np.sqrt(np.bincount(inv, weights=error[ok] ** 2)) / n
        return cls(
            edges=edges,
            index=uniq,
            signal=s,
            error=e,
            norm=n,
            meta=meta or {},
            reciprocal_cell=reciprocal_cell,
            allow_negative=True,
        )  # type: ignore[arg-type]

    @classmethod
    def combine(cls, volumes: Sequence[Volume4D], *, meta: dict | None = None) -> Volume4D:
        """Sum volumes on the same grid: data and normalisation summed separately, then divided.

        Every volume needs ``norm``; errors add in quadrature on the data.
        """
        if not volumes:
            raise DataError("no volumes to combine. Pass at least one Volume4D.")
        first = volumes[0]
        for v in volumes:
            if v.norm is None:
                raise DataError(
                    "a volume without norm cannot be combined by data and normalisation. Build it with "
                    "norm (exposure) or from_counts."
                )
            if v.shape != first.shape or not all(np.allclose(a, b) for a, b in zip(v.edges, first.edges)):
                raise DataError(
                    f"volumes are on different grids ({v.shape} vs {first.shape}). Rebin them onto the "
                    "same edges first."
                )
        index = np.concatenate([v.index for v in volumes])
        data = np.concatenate([v.signal * v.norm for v in volumes])  # type: ignore[operator]
        var = np.concatenate([(v.error * v.norm) ** 2 for v in volumes])  # type: ignore[operator]
        norm = np.concatenate([v.norm for v in volumes])  # type: ignore[misc]
        uniq, inv = np.unique(index, return_inverse=True)
        d = np.bincount(inv, weights=data)
        w = np.bincount(inv, weights=var)
        nrm = np.bincount(inv, weights=norm)
        keep = nrm > 0
        return cls(
            edges=first.edges,
            index=uniq[keep],
            signal=d[keep] / nrm[keep],
            error=np.sqrt(w[keep]) / nrm[keep],
            norm=nrm[keep],
            meta=meta if meta is not None else dict(first.meta),
            reciprocal_cell=first.reciprocal_cell,
            allow_negative=any(v.allow_negative for v in volumes),
        )

    # ------------------------------------------------------------- from files
    @classmethod
    def from_mdhisto(
        cls,
        path: str | Path,
        *,
        norm_path: str | Path | None = None,
        reciprocal_cell: np.ndarray | None = None,
        allow_negative: bool = False,
    ) -> Volume4D:
        """A Mantid MDHistoWorkspace saved by SaveMD; dimensions [H,0,0], [0,K,0], [0,0,L], DeltaE, any order.

        A bin is covered where the signal is finite and not masked. With ``norm_path`` (the
        normalisation workspace MDNorm writes beside the data, as pathSQE saves them) the file
        at ``path`` holds the raw data: signal = data / norm, error = √errors_squared / norm.
        Negative ``num_events`` raise :class:`DataError`.
        """
        md = read_mdhisto(path)
        order = mdhisto_axes(md)
        edges = [md["edges"][i] for i in order]

        def arr(a):
            return None if a is None else np.transpose(a, order)

        sig, es, nev, mask = (
            arr(md["signal"]),
            arr(md["errors_squared"]),
            arr(md["num_events"]),
            arr(md["mask"]),
        )
        if nev is not None and np.any(nev[np.isfinite(nev)] < 0):
            raise DataError(
                f"'{path}': num_events has {int(np.sum(nev < 0))} negative values (min "
                f"{np.nanmin(nev):g}); event counts cannot be negative. The file is corrupt."
            )
        if es is None:
            raise DataError(
                f"'{path}' has no errors_squared. Save the workspace with SaveMD (it writes errors_squared)."
            )
        meta = {
            "source": str(path),
            "source_format": "Mantid MDHisto (SaveMD)",
            "dimensions": [md["names"][i] for i in order],
        }
        if norm_path is None:
            return cls.from_dense(
                edges,
                sig,
                errors_squared=es,
                mask=mask,
                meta=meta,
                reciprocal_cell=reciprocal_cell,
                allow_negative=allow_negative,
            )
        nm = read_mdhisto(norm_path)
        norm = np.transpose(nm["signal"], mdhisto_axes(nm))
        if norm.shape != sig.shape:
            raise DataError(
                f"normalisation '{norm_path}' has shape {norm.shape}, data '{path}' {sig.shape}. Pass the "
                "_norm workspace written with the same binning."
            )
        if np.any(norm[np.isfinite(norm)] < 0):
            raise DataError(
                f"normalisation '{norm_path}' has negative values (min {np.nanmin(norm):g}). Pass MDNorm's "
                "normalisation workspace."
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            signal = np.where(norm > 0, sig / norm, np.nan)
            error = np.where(norm > 0, np.sqrt(np.abs(es)) / norm, np.nan)
        meta["normalisation"] = str(norm_path)
        return cls.from_dense(
            edges,
            signal,
            error,
            norm=np.where(norm > 0, norm, 0.0),
            mask=mask,
            meta=meta,
            reciprocal_cell=reciprocal_cell,
            allow_negative=allow_negative,
        )

    @classmethod
    def from_nxspe(
        cls,
        paths: Sequence[str | Path],
        edges: Sequence[np.ndarray] | None = None,
        *,
        q_step: float = 0.05,
        e_edges: np.ndarray | None = None,
        ub: np.ndarray | None = None,
        lattice: Sequence[float] | None = None,
        u: Sequence[float] = (1.0, 0.0, 0.0),
        v: Sequence[float] = (0.0, 1.0, 0.0),
        psi_offset: float = 0.0,
    ) -> Volume4D:
        """Bin a set of NXSPE files (one per orientation) onto ``edges`` (H, K, L r.l.u., E meV).

        Without ``edges`` the Q axes span the data in bins of ``q_step`` r.l.u. (centres at
        (n + ¼)·q_step) and the energy axis is ``e_edges`` (default: the first file's).

        The orientation is either ``ub`` (3×3, 1/Å, Mantid's convention) or ``lattice``
        (a, b, c in Å, α, β, γ in degrees) with the scattering-plane vectors ``u``, ``v``.
        Pixels are averaged per bin (:meth:`from_points`); masked (NaN) pixels are skipped.
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise DataError("no NXSPE files given. Pass one file per sample orientation.")
        if ub is None:
            if lattice is None:
                raise DataError(
                    "NXSPE files carry no sample orientation. Pass ub (3x3, 1/Å) or lattice (a, b, c, "
                    "alpha, beta, gamma) with u and v."
                )
            lat = normalise_lattice(lattice)
            b = lattice_b_matrix(*lat)
            ub = ub_from_vectors(b, u, v)
        ub = np.asarray(ub, dtype=float)
        pts: dict[str, list[np.ndarray]] = {"hkl": [], "energy": [], "signal": [], "error": []}
        psis, eis = [], []
        for p in paths:
            nx = read_nxspe(p)
            d = nxspe_to_points(nx, ub, psi_offset=psi_offset)
            for k in pts:
                pts[k].append(d[k])
            psis.append(nx["psi"])
            eis.append(nx["ei"])
        meta = {"source": [str(p) for p in paths], "source_format": "NXSPE", "psi_deg": psis, "ei_meV": eis}
        rc = 2 * np.pi * ub.T
        hkl, energy, signal, error = (np.concatenate(pts[k]) for k in ("hkl", "energy", "signal", "error"))
        if edges is None:
            if not q_step > 0:
                raise DataError(f"q_step = {q_step}; pass a positive bin width in r.l.u.")
            ok = np.isfinite(signal)
            if not np.any(ok):
                raise DataError(
                    f"every pixel of {len(paths)} NXSPE file(s) is masked (NaN). Check the files."
                )
            lo, hi = hkl[ok].min(axis=0), hkl[ok].max(axis=0)
            e_ax = np.asarray(e_edges, float) if e_edges is not None else read_nxspe(paths[0])["energy_edges"]
            edges = [
                regular_edges(lo[a], max(hi[a], lo[a] + q_step), q_step, offset=q_step / 4) for a in range(3)
            ] + [e_ax]
        return cls.from_points(edges, hkl, energy, signal, error, meta=meta, reciprocal_cell=rc)

    @classmethod
    def from_array_file(cls, path: str | Path, *, group: str | None = None) -> Volume4D:
        """A plain 4D array with its axes, from HDF5 or NPZ (keys in :mod:`fcinv.experiment.readers`)."""
        d = read_array4d(path, group=group)
        meta = {"source": str(path), "source_format": "plain 4D array"}
        if d["counts"] is not None and d["signal"] is None:
            counts = np.asarray(d["counts"], dtype=float)
            norm = np.ones_like(counts) if d["norm"] is None else np.asarray(d["norm"], dtype=float)
            if norm.shape != counts.shape:
                raise DataError(
                    f"'{path}': norm has shape {norm.shape}, counts {counts.shape}. Pass arrays of the "
                    "same shape."
                )
            covered = np.isfinite(counts) & np.isfinite(norm) & (norm > 0)
            flat = np.flatnonzero(covered.ravel())
            return cls.from_counts(
                d["edges"],
                flat,
                counts.ravel()[flat],
                norm.ravel()[flat],
                meta=meta,
                reciprocal_cell=d["reciprocal_cell"],
            )
        return cls.from_dense(
            d["edges"],
            d["signal"],
            d["error"],
            errors_squared=d["errors_squared"],
            norm=d["norm"],
            meta=meta,
            reciprocal_cell=d["reciprocal_cell"],
            allow_negative=True,
        )

    # --------------------------------------------------------------- export
    def to_dense(self) -> dict[str, np.ndarray]:
        """Dense arrays (NaN where not covered): ``signal``, ``error`` and ``norm`` (0 where not covered).

        Refuses volumes of more than :data:`DENSE_LIMIT` bins.
        """
        total = int(np.prod(self.shape, dtype=np.int64))
        if total > DENSE_LIMIT:
            raise DataError(
                f"the dense volume would have {total:,} bins (limit {DENSE_LIMIT:,}). Work with the sparse "
                "arrays (index, signal, error, norm) instead."
            )
        out = {}
        for name, fill, vals in (
            ("signal", np.nan, self.signal),
            ("error", np.nan, self.error),
            ("norm", 0.0, self.weights),
        ):
            a = np.full(total, fill)
            a[self.index] = vals
            out[name] = a.reshape(self.shape)
        return out

    def to_hdf5(self, path: str | Path, *, command: str | None = None, seed: int | None = None) -> None:
        """Write atomically to HDF5 (format ``fcinv-volume``).

        Layout: ``/edges/{H,K,L,E}`` (unit attribute), ``/index`` (int64), ``/signal``,
        ``/error``, optional ``/norm``, optional ``/reciprocal_cell`` (1/Å); root attributes
        format, fcinv_version, command, seed, meta (JSON); and the NeXus default plot
        ``/entry/data`` (NXdata: dense with H, K, L, E bin edges for small volumes, scattered
        data with bin-centre coordinates for large ones; :func:`fcinv.io.nexus.sparse_4d_nxdata`).
        Files without the NeXus group read the same.
        """
        with _h5.atomic_h5(path) as f:
            _h5.stamp(f, FORMAT, FORMAT_VERSION, command=command, seed=seed, meta=self.meta)
            f.attrs["allow_negative"] = bool(self.allow_negative)
            g = f.create_group("edges")
            for name, unit, e in zip(AXIS_NAMES, AXIS_UNITS, self.edges):
                _h5.put(g, name, e, unit)
            _h5.put(
                f,
                "index",
                self.index,
                "1",
                compress=True,
                description="flat C-order index into (n_H, n_K, n_L, n_E)",
            )
            _h5.put(f, "signal", self.signal, "arb. units", compress=True)
            _h5.put(f, "error", self.error, "arb. units", compress=True)
            if self.norm is not None:
                _h5.put(f, "norm", self.norm, "arb. units", compress=True)
            if self.reciprocal_cell is not None:
                _h5.put(f, "reciprocal_cell", self.reciprocal_cell, "1/Å")
            from fcinv.io.nexus import sparse_4d_nxdata

            sparse_4d_nxdata(
                f,
                self.edges,
                f["index"],
                f["signal"],
                f["error"],
                axis_names=AXIS_NAMES,
                axis_units=AXIS_UNITS,
                title=str(self.meta.get("source", "fcinv Volume4D")),
            )

    @classmethod
    def from_hdf5(cls, path: str | Path) -> Volume4D:
        """Read a file written by :meth:`to_hdf5`."""
        with _h5.open_checked(path, FORMAT) as f:
            try:
                edges = tuple(f["edges"][n][()] for n in AXIS_NAMES)
                kw = {"index": f["index"][()], "signal": f["signal"][()], "error": f["error"][()]}
            except KeyError as exc:
                raise DataError(
                    f"'{path}' is incomplete ({describe_exception(exc)}). The file is truncated or not a "
                    "Volume4D file; regenerate it."
                ) from None
            norm = f["norm"][()] if "norm" in f else None
            rc = f["reciprocal_cell"][()] if "reciprocal_cell" in f else None
            meta = _h5.read_meta(f)
            allow = bool(f.attrs.get("allow_negative", False))
        return cls(edges=edges, norm=norm, reciprocal_cell=rc, meta=meta, allow_negative=allow, **kw)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (
            f"Volume4D(shape={self.shape}, covered={self.n_covered:,} ({100 * self.coverage:.2f} %), "
            f"norm={'yes' if self.norm is not None else 'no'})"
        )
