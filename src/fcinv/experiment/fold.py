"""Brillouin-zone folding of a 4D S(Q, E) volume onto the model's q-path, as pathSQE does it.

pathSQE (the folding code used for the paper's Ge ARCS data) takes, for every segment of
the path, every *distinct* symmetry image g·segment (g in the crystal's point group,
conventional r.l.u.) in every Brillouin zone G the data cover, cuts a tube around it (bins
of 0.025 of the segment's largest r.l.u. component along it, ±0.05 r.l.u. across it),
sums the data and the normalisation of every cut separately and divides at the end;
zones are ranked by their coverage. Its output bins are centred at the half-steps
(``start + (j + ½)·step``), the path points being bin edges, which is what the lead's
grid uses.

This module does the same in one vectorised pass, without a loop over zones in Python:

1. the path is split into straight segments (start, step vector, n bins) from the grid;
2. the distinct images of each segment under the point group are listed once;
3. for each image, the Q-bins of the volume's grid inside its tube are enumerated for all
   zones at once (index arithmetic on the sorted bin centres); a bin belongs to the tube
   when its centre's distance from the image line is <= ``q_tolerance`` (a cylinder, where
   pathSQE uses a ±0.05 box whose orientation depends on the scattering plane) and its
   coordinate along the line falls in [0, n); it lands on path bin ``floor(t)``, so each
   4D bin lands on at most one path pixel per (image, zone);
4. the covered bins are looked up (the volume's flat indices are sorted, so its Q-bins
   form contiguous runs) and every (Q-bin, path pixel, zone) pair scatters all of its
   energy bins with ``np.bincount``: data (signal × norm), variance, norm and count are
   accumulated per (zone, pixel, E) and summed over the kept zones.

Zones are ranked by coverage: the fraction of the grid's (q, E) pixels a zone contributes
to. ``min_zone_coverage`` drops the poorly covered ones (pathSQE's "BZ to process"
threshold, 0.89 for the Ge data, though pathSQE measures coverage in an octant box); the
default 0 keeps every zone with data.

A 4D bin's energy goes to the grid's energy bin containing its bin centre, so the volume's
energy bins should be at most as wide as the grid's. Corrections (all off by default) are
applied per 4D bin before folding: ``background`` (subtract a constant from the signal),
``bose`` (multiply by 1 − exp(−E/k_B T), which removes the n(E)+1 factor of energy-loss
one-phonon scattering) and ``q2`` (divide by |Q|², in 1/Å² when the reciprocal cell is
known, else in r.l.u.²).

Exposure: when the volume holds Poisson counts with their normalisation (error² · norm = signal, as
``Volume4D.from_counts`` makes them) and no background is subtracted, the folded spectrum also carries
each pixel's effective counts per unit of intensity c = (Σ w)² / Σ m² f w (w: a bin's normalisation,
f: its correction factor, m: how many memberships add that bin into that pixel; a bin often lands in
one pixel through two segment images, and its counts are then added twice). The pixel's variance is
μ/c for a mean intensity μ, which is what the count-honest fit uses (``weighting="poisson"``). With
``min_zone_coverage > 0`` m still counts the dropped zones' memberships (the variance is then
overstated, never understated). Same-bin additions into *different* pixels correlate those pixels;
that is not represented.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fcinv.errors import DataError, GridError  # noqa: F401 - GridError kept importable from here
from fcinv.experiment.folded import FoldedSpectrum
from fcinv.experiment.tubes import (  # noqa: F401 - the fold's geometry; every name stays importable from here
    Segment,
    SegmentImages,
    _bin_centres,
    _regular_shifts,
    _tube_bins_general,
    _tube_bins_regular,
    cubic_rotations,
    is_zone_centre,
    path_segments,
    segment_images,
    tube_bins,
    zone_centres,
    zones_for_box,
)
from fcinv.experiment.volume import Volume4D
from fcinv.grid import SpectrumGrid
from fcinv.units import KB_MEV_PER_K

log = logging.getLogger(__name__)

Centering = Literal["P", "F", "I"]
#: Accumulate per (zone, pixel, E) when the table has at most this many cells.
_ZONE_TABLE_LIMIT = 60_000_000
#: Energy entries expanded per chunk of the scatter.
_CHUNK = 8_000_000


def _entry_chunks(row: np.ndarray, ptr: np.ndarray, cell_e: np.ndarray):
    """The (tube bin, energy entry) pairs of ``row`` in chunks of about ``_CHUNK`` entries.

    ``ptr`` is the CSR row pointer into the per-entry energy cells ``cell_e`` (-1: outside the grid).
    Yields ``(r, entry, e_cell)``: for each entry inside the grid, its index into ``row``, its index
    into ``cell_e`` and its energy cell.
    """
    lengths = ptr[row + 1] - ptr[row]
    cum = np.cumsum(lengths)
    begin = 0
    while begin < len(row):
        end = max(
            int(np.searchsorted(cum, (cum[begin - 1] if begin else 0) + _CHUNK, side="right")), begin + 1
        )
        ln = lengths[begin:end]
        tot = int(ln.sum())
        if tot:
            rep = np.repeat(np.arange(begin, end), ln)
            entry = np.repeat(ptr[row[begin:end]], ln) + (np.arange(tot) - np.repeat(np.cumsum(ln) - ln, ln))
            ce = cell_e[entry]
            ok = ce >= 0
            yield rep[ok], entry[ok], ce[ok]
        begin = end


def _multiplicity(plan) -> np.ndarray:
    """Per membership of ``plan.members``: how many memberships share its (Q-bin, path pixel), i.e. how
    many times the fold adds one 4D bin into one pixel (over images and zones). Cached in the members."""
    mem = plan.members
    if "mult" not in mem:
        key = mem["q3"].astype(np.int64) * plan.grid.n_q + mem["pixel"]
        _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
        mem["mult"] = cnt[inv.ravel()].astype(np.float64)
    return mem["mult"]


def _poisson_counts(volume: Volume4D) -> bool:
    """Whether the volume's errors are those of Poisson counts with its normalisation:
    error² · norm = signal in every bin (as :meth:`Volume4D.from_counts` and ``combine`` make them)."""
    if volume.norm is None or volume.allow_negative:
        return False
    lhs = volume.error**2 * volume.norm
    scale = float(np.max(np.abs(volume.signal))) if volume.n_covered else 0.0
    return bool(np.allclose(lhs, volume.signal, rtol=1e-6, atol=1e-12 * max(scale, 1e-300)))


# ---------------------------------------------------------------------------- folding
@dataclass(frozen=True)
class Corrections:
    """Optional corrections applied to every 4D bin before folding (all off by default).

    Parameters
    ----------
    background
        Constant subtracted from the signal (signal units), or None.
    bose_temperature
        Temperature (K) for the factor 1 − exp(−E/k_B T), or None.
    q2
        Divide by |Q|².
    energy
        Multiply by the energy transfer E (meV): undoes the 1/ω of the one-phonon cross
        section. With ``bose_temperature`` and ``q2`` it brings a measured S(Q, E) close to
        the forward model's convention (every mode weight 1), up to the polarisation
        factor |Q̂·e|², which folding over many zones and images averages.
    """

    background: float | None = None
    bose_temperature: float | None = None
    q2: bool = False
    energy: bool = False

    def names(self) -> list[str]:
        """Human-readable list of the corrections switched on."""
        out = []
        if self.background is not None:
            out.append(f"background -{self.background:g}")
        if self.bose_temperature is not None:
            out.append(f"bose T={self.bose_temperature:g} K")
        if self.q2:
            out.append("divide by |Q|^2")
        if self.energy:
            out.append("multiply by E")
        return out


@dataclass(frozen=True, eq=False)
class FoldPlan:
    """The geometry of a fold, computed once per Q grid and reused for many volumes.

    Build it with :meth:`FoldPlan.build`; :meth:`apply` folds any volume on the same Q grid
    (e.g. every single orientation of a run) without enumerating the tubes again.
    """

    grid: SpectrumGrid
    q_edges: tuple[np.ndarray, np.ndarray, np.ndarray]
    zones: np.ndarray
    members: dict
    centering: str
    q_tolerance: float
    n_rotations: int
    n_images: int
    build_seconds: float
    #: the point-group matrices the plan was built with (their order fixes the segment images)
    rotations: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        q_edges: tuple[np.ndarray, np.ndarray, np.ndarray],
        grid: SpectrumGrid,
        rotations: np.ndarray,
        *,
        centering: Centering = "F",
        q_tolerance: float = 0.05,
    ) -> FoldPlan:
        """Enumerate the path tubes of ``grid`` on the Q grid ``q_edges`` (H, K, L edges, r.l.u.)."""
        t0 = time.perf_counter()
        if not (0 < q_tolerance < 1):
            raise DataError(
                f"q_tolerance = {q_tolerance} r.l.u.; pass a tube radius between 0 and 1 (pathSQE uses 0.05)."
            )
        if centering not in ("P", "F", "I"):
            raise DataError(f"lattice centering {centering!r} is unknown; pass 'P', 'F' (fcc) or 'I' (bcc).")
        images = segment_images(path_segments(grid), rotations)
        q_edges = tuple(np.asarray(e, float) for e in q_edges)  # type: ignore[assignment]
        zones = zones_for_box(q_edges, images, centering, q_tolerance)
        mem = tube_bins(q_edges, images, zones, q_tolerance)
        order = np.argsort(mem["q3"], kind="stable")
        mem = {k: v[order] for k, v in mem.items()}
        return cls(
            grid,
            q_edges,
            zones,
            mem,
            centering,
            q_tolerance,
            len(rotations),
            len(images),
            time.perf_counter() - t0,
            np.asarray(rotations, dtype=float),
        )

    def matches(self, volume: Volume4D) -> bool:
        """Whether ``volume`` has this plan's Q grid."""
        return all(len(a) == len(b) and np.allclose(a, b) for a, b in zip(self.q_edges, volume.edges[:3]))

    def image_weights(
        self,
        volume: Volume4D,
        *,
        qmod_range: tuple[float, float] | None = None,
        min_zone_coverage: float = 0.0,
        by_bin: bool = False,
    ) -> dict[str, np.ndarray]:
        """Per folded pixel, the (image, zone) pairs the fold combines there and their summed weights.

        The fold's value at pixel (q, E) is Σ data / Σ norm over the 4D bins landing there;
        grouped by the segment image ``m`` and zone ``G`` each bin belongs to, the weight of
        (q, m, G, E) is the sum of the bins' ``volume.weights`` (their normalisation), with the
        same energy mapping, ``qmod_range`` and zone selection as :meth:`apply` (corrections do
        not change weights). Nothing depends on the volume's signal.

        With ``by_bin`` the entries are not summed over the 4D bins: one entry per (Q-bin,
        image, zone, E), with the Q-bin's flat index (into (n_H, n_K, n_L)) in ``q3``.

        Returns
        -------
        dict with ``pixel``, ``image`` (row of the plan's segment images), ``zone`` (row of
        ``self.zones``) and ``e`` (grid energy bin) int64 arrays and ``w`` float64, one entry per
        (pixel, image, zone, E) with w > 0, sorted by (zone, image, pixel, E) (with ``by_bin``:
        also ``q3``, sorted by (zone, image, Q-bin, E)).
        """
        if not self.matches(volume):
            raise DataError(
                f"the volume's Q grid {volume.shape[:3]} differs from the fold plan's {tuple(len(e) - 1 for e in self.q_edges)}. Build a FoldPlan for this volume."
            )
        if not (0 <= min_zone_coverage <= 1):
            raise DataError(f"min_zone_coverage = {min_zone_coverage}; pass a fraction between 0 and 1.")
        grid = self.grid
        mem = self.members
        ne_vol = volume.shape[3]
        q3_all = volume.index // ne_vol
        starts = np.flatnonzero(np.r_[True, q3_all[1:] != q3_all[:-1]])
        uq = q3_all[starts]
        ptr = np.r_[starts, len(q3_all)]
        lo = np.searchsorted(mem["q3"], uq, side="left")
        cnt = np.searchsorted(mem["q3"], uq, side="right") - lo
        row = np.repeat(np.arange(len(uq)), cnt)
        midx = np.repeat(lo, cnt) + (np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        pix, zone, image = mem["pixel"][midx], mem["zone"][midx], mem["image"][midx]
        e_vol = volume.centres(3)
        e_map = np.searchsorted(grid.energy_edges, e_vol, side="right") - 1
        e_map[(e_map < 0) | (e_map >= grid.n_e)] = -1
        w = volume.weights
        if qmod_range is not None:
            qh = volume.unravel()
            hkl = np.stack([volume.centres(a)[qh[a]] for a in range(3)], axis=1)
            qc = hkl @ volume.reciprocal_cell if volume.reciprocal_cell is not None else hkl
            qmod2 = np.einsum("ij,ij->i", qc, qc)
            lo_q, hi_q = qmod_range
            w = np.where((qmod2 < lo_q * lo_q) | (qmod2 > hi_q * hi_q), 0.0, w)
        cell_e = np.where(w > 0, e_map[volume.index % ne_vol], -1)
        n_img = max(self.n_images, 1)
        n_e = grid.n_e
        n_q3 = int(np.prod([len(e) - 1 for e in self.q_edges]))
        keys, vals = [], []
        for r, ent, e_cell in _entry_chunks(row, ptr, cell_e):
            if by_bin:
                key = ((zone[r] * n_img + image[r]) * n_q3 + uq[row[r]]) * n_e + e_cell
            else:
                key = ((zone[r] * n_img + image[r]) * grid.n_q + pix[r]) * n_e + e_cell
            uk, inv = np.unique(key, return_inverse=True)
            keys.append(uk)
            vals.append(np.bincount(inv.ravel(), weights=w[ent], minlength=len(uk)))
        if keys:
            uk, inv = np.unique(np.concatenate(keys), return_inverse=True)
            wk = np.bincount(inv.ravel(), weights=np.concatenate(vals), minlength=len(uk))
        else:
            uk, wk = np.zeros(0, dtype=np.int64), np.zeros(0)
        e_k = uk % n_e
        rest = uk // n_e
        q3_k = None
        if by_bin:
            q3_k = rest % n_q3
            rest //= n_q3
            img_k = rest % n_img
            zone_k = rest // n_img
            # the pixel of each (Q-bin, image): look the membership up
            mkey = (mem["zone"] * n_img + mem["image"]) * n_q3 + mem["q3"]
            order = np.argsort(mkey, kind="stable")
            pos_m = np.searchsorted(mkey[order], (zone_k * n_img + img_k) * n_q3 + q3_k)
            pix_k = mem["pixel"][order[np.minimum(pos_m, len(order) - 1)]]
        else:
            pix_k = rest % grid.n_q
            rest //= grid.n_q
            img_k = rest % n_img
            zone_k = rest // n_img
        if min_zone_coverage > 0 and len(uk):
            cells = np.unique(zone_k * (grid.n_q * n_e) + pix_k * n_e + e_k)
            zcov = np.bincount(cells // (grid.n_q * n_e), minlength=len(self.zones)) / (grid.n_q * n_e)
            keep = zcov[zone_k] >= min_zone_coverage
            e_k, pix_k, img_k, zone_k, wk = e_k[keep], pix_k[keep], img_k[keep], zone_k[keep], wk[keep]
            if q3_k is not None:
                q3_k = q3_k[keep]
        pos = wk > 0
        out = {"pixel": pix_k[pos], "image": img_k[pos], "zone": zone_k[pos], "e": e_k[pos], "w": wk[pos]}
        if q3_k is not None:
            out["q3"] = q3_k[pos]
        return out

    def apply(
        self,
        volume: Volume4D,
        *,
        qmod_range: tuple[float, float] | None = None,
        min_zone_coverage: float = 0.0,
        corrections: Corrections | None = None,
    ) -> FoldedSpectrum:
        """Fold ``volume`` (same Q grid) onto the plan's grid; parameters as in :func:`fold_volume`."""
        t0 = time.perf_counter()
        if not self.matches(volume):
            raise DataError(
                f"the volume's Q grid {volume.shape[:3]} differs from the fold plan's {tuple(len(e) - 1 for e in self.q_edges)}. Build a FoldPlan for this volume."
            )
        if not (0 <= min_zone_coverage <= 1):
            raise DataError(f"min_zone_coverage = {min_zone_coverage}; pass a fraction between 0 and 1.")
        grid = self.grid
        corr = corrections or Corrections()
        mem = self.members

        # covered Q-bins of the volume: contiguous runs of the sorted flat index
        ne_vol = volume.shape[3]
        q3_all = volume.index // ne_vol
        starts = np.flatnonzero(np.r_[True, q3_all[1:] != q3_all[:-1]])
        uq = q3_all[starts]
        ptr = np.r_[starts, len(q3_all)]
        # memberships are sorted by Q-bin: find each covered Q-bin's run of memberships
        lo = np.searchsorted(mem["q3"], uq, side="left")
        cnt = np.searchsorted(mem["q3"], uq, side="right") - lo
        row = np.repeat(np.arange(len(uq)), cnt)
        midx = np.repeat(lo, cnt) + (np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        pix, zone_all = mem["pixel"][midx], mem["zone"][midx]
        poisson = _poisson_counts(volume) and corr.background is None
        mult = _multiplicity(self)[midx] if poisson else None
        # compact table over the zones that are hit
        hit_zones, zone = np.unique(zone_all, return_inverse=True)
        zone = zone.ravel()
        zones = self.zones[hit_zones]

        # per-entry quantities (corrections applied here)
        e_vol = volume.centres(3)
        e_idx_entry = volume.index % ne_vol
        e_map = np.searchsorted(grid.energy_edges, e_vol, side="right") - 1
        e_map[(e_map < 0) | (e_map >= grid.n_e)] = -1
        w = volume.weights
        sig = volume.signal.copy()
        err = volume.error.copy()
        fac = np.ones(len(sig))  # each bin's correction factor (for the exposure)
        if corr.background is not None:
            sig = sig - corr.background
        if corr.bose_temperature is not None:
            if not corr.bose_temperature > 0:
                raise DataError(
                    f"Bose correction temperature {corr.bose_temperature} K; pass a positive temperature."
                )
            f = -np.expm1(-e_vol / (KB_MEV_PER_K * corr.bose_temperature))
            sig, err = sig * f[e_idx_entry], err * np.abs(f[e_idx_entry])
            fac = fac * np.abs(f[e_idx_entry])
        if corr.energy:
            f = np.abs(e_vol)
            sig, err = sig * f[e_idx_entry], err * f[e_idx_entry]
            fac = fac * f[e_idx_entry]
        if corr.q2 or qmod_range is not None:
            qh = volume.unravel()
            hkl = np.stack([volume.centres(a)[qh[a]] for a in range(3)], axis=1)
            qc = hkl @ volume.reciprocal_cell if volume.reciprocal_cell is not None else hkl
            qmod2 = np.einsum("ij,ij->i", qc, qc)
            del hkl, qc, qh
            if corr.q2:
                inv = np.where(qmod2 > 0, 1.0 / np.where(qmod2 > 0, qmod2, 1.0), 0.0)
                sig, err = sig * inv, err * inv
                fac = fac * inv
            if qmod_range is not None:
                lo, hi = qmod_range
                w = np.where((qmod2 < lo * lo) | (qmod2 > hi * hi), 0.0, w)
        data_e = sig * w
        var_e = (err * w) ** 2
        cell_e = np.where((w > 0) & (e_map[e_idx_entry] >= 0), e_map[e_idx_entry], -1)

        n_cells = grid.n_q * grid.n_e
        nz = len(zones)
        per_zone = nz * n_cells <= _ZONE_TABLE_LIMIT
        size = nz * n_cells if per_zone else n_cells
        acc = {k: np.zeros(size) for k in ("data", "var", "norm", "count") + (("m2fw",) if poisson else ())}
        fw = fac * w
        for r, ent, e_cell in _entry_chunks(row, ptr, cell_e):
            cell = pix[r] * grid.n_e + e_cell
            if per_zone:
                cell = zone[r] * n_cells + cell
            acc["data"] += np.bincount(cell, weights=data_e[ent], minlength=size)
            acc["var"] += np.bincount(cell, weights=var_e[ent], minlength=size)
            acc["norm"] += np.bincount(cell, weights=w[ent], minlength=size)
            acc["count"] += np.bincount(cell, minlength=size)
            if poisson:  # each of a bin's m additions into a pixel adds m·f·w: Σ m² f w in all
                acc["m2fw"] += np.bincount(cell, weights=mult[r] * fw[ent], minlength=size)

        zone_cov = np.zeros(nz)
        if per_zone:
            for k in acc:
                acc[k] = acc[k].reshape(nz, n_cells)
            zone_cov = (acc["norm"] > 0).sum(axis=1) / n_cells
            keep = zone_cov >= max(min_zone_coverage, 1e-300)
            tot_acc = {k: v[keep].sum(axis=0) for k, v in acc.items()}
        else:
            if min_zone_coverage > 0:
                raise DataError(
                    f"{nz} zones x {n_cells} pixels is too many to rank zones by coverage. Pass min_zone_coverage=0 or a smaller volume."
                )
            keep = np.ones(nz, dtype=bool)
            tot_acc = acc
        norm = tot_acc["norm"].reshape(grid.shape)
        measured = (norm > 0) & (tot_acc["count"].reshape(grid.shape) > 0)
        if not np.any(measured):
            qe = self.q_edges
            raise DataError(
                f"nothing of the volume lands on the path within q_tolerance={self.q_tolerance} r.l.u. "
                f"(volume H {qe[0][0]:.2f}..{qe[0][-1]:.2f}, K {qe[1][0]:.2f}..{qe[1][-1]:.2f}, L {qe[2][0]:.2f}..{qe[2][-1]:.2f}; "
                f"E {volume.edges[3][0]:g}..{volume.edges[3][-1]:g} meV vs grid {grid.energy_edges[0]:g}..{grid.energy_edges[-1]:g}). Check the axes, the centering and the tolerance."
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            inten = np.where(measured, tot_acc["data"].reshape(grid.shape) / norm, np.nan)
            error = np.where(measured, np.sqrt(tot_acc["var"].reshape(grid.shape)) / norm, np.nan)
            exposure = None
            if poisson:
                m2fw = tot_acc["m2fw"].reshape(grid.shape)
                exposure = np.where(measured & (m2fw > 0), norm**2 / m2fw, np.nan)
        order = np.argsort(-zone_cov, kind="stable")
        ranked = [
            {
                "G": zones[i].astype(int).tolist(),
                "coverage": round(float(zone_cov[i]), 5),
                "used": bool(keep[i]),
            }
            for i in order
            if zone_cov[i] > 0
        ]
        elapsed = time.perf_counter() - t0
        meta = dict(volume.meta)
        meta.update(
            {
                "source": volume.meta.get("source", "Volume4D"),
                "folded_by": "fcinv.experiment.fold",
                "corrections": corr.names(),
                "q_tolerance_rlu": self.q_tolerance,
                "qmod_range": list(qmod_range) if qmod_range is not None else None,
                "centering": self.centering,
                "n_rotations": self.n_rotations,
                "n_segment_images": self.n_images,
                "n_zones_with_data": len(ranked),
                "n_zones_used": int(sum(z["used"] for z in ranked)),
                "min_zone_coverage": min_zone_coverage,
                "zones": ranked,
                "fold_seconds": round(elapsed + self.build_seconds, 3),
                "plan_seconds": round(self.build_seconds, 3),
                "exposure": "counts per intensity, (Σw)²/Σm²fw (Poisson counts)"
                if poisson
                else "none (not Poisson counts with a normalisation, or a background subtracted)",
            }
        )
        log.info(
            "folded %d covered bins onto %s in %.2f s + %.2f s plan (%d zones, %d images)",
            volume.n_covered,
            grid.shape,
            elapsed,
            self.build_seconds,
            meta["n_zones_used"],
            self.n_images,
        )
        return FoldedSpectrum(
            intensity=inten,
            error=error,
            mask=measured,
            n_contrib=tot_acc["count"].reshape(grid.shape).astype(np.int64),
            grid=grid,
            meta=meta,
            exposure=exposure,
        )


def fold_volume(
    volume: Volume4D,
    grid: SpectrumGrid,
    rotations: np.ndarray,
    *,
    centering: Centering = "F",
    q_tolerance: float = 0.05,
    qmod_range: tuple[float, float] | None = None,
    min_zone_coverage: float = 0.0,
    corrections: Corrections | None = None,
    plan: FoldPlan | None = None,
) -> FoldedSpectrum:
    """Fold a 4D volume onto the grid's q-path (module docstring for the method).

    Parameters
    ----------
    volume
        The 4D histogram (H, K, L in conventional r.l.u., E in meV).
    grid
        The model's (q, E) grid; its q-path must be made of straight, evenly binned segments.
    rotations
        Shape (n_ops, 3, 3): the point group acting on conventional r.l.u. column vectors
        (``Crystal.point_group_rlu``; :func:`cubic_rotations` for m-3m).
    centering
        Direct-lattice centering that fixes the zone centres: ``"F"``, ``"I"`` or ``"P"``.
    q_tolerance
        Tube radius around each path image, r.l.u. (pathSQE: ±0.05).
    qmod_range
        (min, max) |Q| of the 4D bins used, 1/Å when the volume has a reciprocal cell,
        else r.l.u.; None keeps all.
    min_zone_coverage
        Keep only zones contributing to at least this fraction of the grid's pixels.
    corrections
        :class:`Corrections`, or None for none.
    plan
        A :class:`FoldPlan` built for this volume's Q grid, grid, rotations, centering and
        tolerance (then those arguments are ignored); None builds one.

    Returns
    -------
    FoldedSpectrum on ``grid``: intensity = Σ data / Σ norm, NaN where nothing landed.
    """
    if plan is None:
        plan = FoldPlan.build(volume.edges[:3], grid, rotations, centering=centering, q_tolerance=q_tolerance)
    return plan.apply(
        volume, qmod_range=qmod_range, min_zone_coverage=min_zone_coverage, corrections=corrections
    )
