"""The geometry of the fold (steps 1-3 of :mod:`fcinv.experiment.fold`): the point group, the zone
centres, the path's straight segments, their distinct symmetry images and the Q-bins of a volume
inside each image's tube in every zone. Every name here stays importable from
:mod:`fcinv.experiment.fold` too."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fcinv.errors import DataError, GridError
from fcinv.grid import SpectrumGrid

log = logging.getLogger(__name__)

Centering = Literal["P", "F", "I"]


# --------------------------------------------------------------------- symmetry helpers


def cubic_rotations() -> np.ndarray:
    """The 48 signed permutation matrices (point group m-3m), shape (48, 3, 3) float64."""
    import itertools

    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for i, (p, s) in enumerate(zip(perm, signs)):
                m[i, p] = s
            mats.append(m)
    return np.array(mats)


def is_zone_centre(hkl: np.ndarray, centering: Centering) -> np.ndarray:
    """Whether integer (h, k, l) rows are reciprocal-lattice points of the primitive cell.

    ``"F"`` (fcc direct lattice): h, k, l all even or all odd; ``"I"`` (bcc): h + k + l even;
    ``"P"``: every integer triple.
    """
    h = np.asarray(hkl, dtype=np.int64)
    if centering == "P":
        return np.ones(len(h), dtype=bool)
    if centering == "F":
        par = np.mod(h, 2)
        return np.all(par == par[:, :1], axis=1)
    if centering == "I":
        return np.mod(h.sum(axis=1), 2) == 0
    raise DataError(f"lattice centering {centering!r} is unknown; pass 'P', 'F' (fcc) or 'I' (bcc).")


def zone_centres(lo: np.ndarray, hi: np.ndarray, centering: Centering) -> np.ndarray:
    """Reciprocal-lattice points G (conventional r.l.u.) inside the box [lo, hi], shape (n, 3) float64."""
    lo, hi = (
        np.ceil(np.asarray(lo, float) - 1e-9).astype(int),
        np.floor(np.asarray(hi, float) + 1e-9).astype(int),
    )
    axes = [np.arange(a, b + 1) for a, b in zip(lo, hi)]
    if any(len(a) == 0 for a in axes):
        return np.zeros((0, 3))
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return g[is_zone_centre(g, centering)].astype(float)


@dataclass(frozen=True)
class Segment:
    """A straight piece of the q-path: bins ``offset .. offset + n - 1`` of the grid.

    ``start`` (r.l.u.) is the lower edge of its first bin, ``step`` (r.l.u.) one bin's vector.
    """

    offset: int
    n: int
    start: np.ndarray
    step: np.ndarray


def path_segments(grid: SpectrumGrid) -> list[Segment]:
    """Split the grid's q-path into straight, evenly binned segments.

    Uses ``grid.segment_bins`` when present, else breaks where the step vector changes.
    """
    q = grid.q_rlu
    if grid.segment_bins:
        counts = list(grid.segment_bins)
        if sum(counts) != grid.n_q:
            raise GridError(
                f"grid.segment_bins sums to {sum(counts)} but the grid has {grid.n_q} q-bins. Rebuild "
                "the grid."
            )
    else:
        d = np.diff(q, axis=0)
        counts, start = [], 0
        while start < grid.n_q:
            j = start + 1
            while j < grid.n_q - 1 and np.allclose(d[j], d[start], atol=1e-6):
                j += 1
            counts.append(min(j, grid.n_q - 1) - start + 1 if j <= grid.n_q - 1 else 1)
            start += counts[-1]
    segs: list[Segment] = []
    o = 0
    for n in counts:
        c = q[o : o + n]
        if n < 2:
            raise GridError(
                f"path segment at q-bin {o} has {n} bin; folding needs at least 2 bins per segment to "
                "know its direction. Use a finer path step."
            )
        step = (c[-1] - c[0]) / (n - 1)
        if not np.allclose(c, c[0] + np.arange(n)[:, None] * step, atol=1e-6):
            raise GridError(
                f"path segment at q-bins {o}..{o + n - 1} is not evenly binned along a straight line. "
                "Pass a grid made of straight, evenly binned segments."
            )
        segs.append(Segment(offset=o, n=n, start=c[0] - step / 2, step=step))
        o += n
    return segs


@dataclass(frozen=True)
class SegmentImages:
    """Distinct symmetry images of every path segment, stacked.

    Attributes are arrays over images: ``start``, ``step`` (m, 3) r.l.u., ``n`` and
    ``offset`` (m,) int, ``segment`` (m,) int (which path segment).
    """

    start: np.ndarray
    step: np.ndarray
    n: np.ndarray
    offset: np.ndarray
    segment: np.ndarray

    def __len__(self) -> int:
        return len(self.n)


def segment_images(segments: list[Segment], rotations: np.ndarray) -> SegmentImages:
    """The distinct images g·segment (by start and end point, as pathSQE dedupes them)."""
    rots = np.asarray(rotations, dtype=float)
    if rots.ndim != 3 or rots.shape[1:] != (3, 3) or len(rots) == 0:
        raise DataError(
            f"rotations have shape {rots.shape}; expected (n_ops, 3, 3) point-group matrices acting on "
            "conventional r.l.u. (e.g. cubic_rotations())."
        )
    starts, steps, ns, offs, segi = [], [], [], [], []
    for k, s in enumerate(segments):
        a = rots @ s.start
        st = rots @ s.step
        key = np.round(np.concatenate([a, a + s.n * st], axis=1), 6)
        _, first = np.unique(key, axis=0, return_index=True)
        first = np.sort(first)
        starts.append(a[first])
        steps.append(st[first])
        ns.append(np.full(len(first), s.n))
        offs.append(np.full(len(first), s.offset))
        segi.append(np.full(len(first), k))
    return SegmentImages(*(np.concatenate(x) for x in (starts, steps, ns, offs, segi)))


def _bin_centres(edges: np.ndarray) -> np.ndarray:
    return 0.5 * (edges[1:] + edges[:-1])


def tube_bins(
    q_edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    images: SegmentImages,
    zones: np.ndarray,
    tolerance: float,
) -> dict[str, np.ndarray]:
    """All (Q-bin, path pixel, zone) memberships of a Q grid in the tubes around the path images.

    Parameters
    ----------
    q_edges
        H, K, L bin edges (r.l.u.).
    images
        From :func:`segment_images`.
    zones
        Shape (n_zones, 3) zone centres G, r.l.u.
    tolerance
        Tube radius, r.l.u.

    Returns
    -------
    dict with ``q3`` (flat C-order index into (n_H, n_K, n_L), int64), ``pixel`` (path q-bin,
    int64), ``zone`` (index into ``zones``, int64) and ``image`` (int64), one entry per membership.
    """
    cen = [_bin_centres(np.asarray(e, float)) for e in q_edges]
    zones = np.asarray(zones, dtype=float).reshape(-1, 3)
    shifts = _regular_shifts(cen, zones)
    if shifts is not None:
        return _tube_bins_regular(cen, images, zones, shifts, tolerance)
    return _tube_bins_general(cen, images, zones, tolerance)


def _regular_shifts(cen: list[np.ndarray], zones: np.ndarray) -> np.ndarray | None:
    """Zone translations in bin-index units when every axis is evenly binned and commensurate, else None."""
    shifts = np.zeros((len(zones), 3), dtype=np.int64)
    for a, c in enumerate(cen):
        if len(c) < 2:
            return None
        d = np.diff(c)
        step = float(d.mean())
        if not np.allclose(d, step, rtol=1e-9, atol=1e-12):
            return None
        f = zones[:, a] / step
        if not np.allclose(f, np.round(f), atol=1e-6):
            return None
        shifts[:, a] = np.round(f).astype(np.int64)
    return shifts


def _tube_bins_regular(
    cen: list[np.ndarray], images: SegmentImages, zones: np.ndarray, shifts: np.ndarray, tolerance: float
) -> dict[str, np.ndarray]:
    """Fast path: on an even grid commensurate with the zones, one tube template per image is shifted "
    "to every zone."""
    steps = np.array([c[1] - c[0] for c in cen])
    c0 = np.array([c[0] for c in cen])
    nbin = np.array([len(c) for c in cen])
    nk, nl = nbin[1], nbin[2]
    out: dict[str, list[np.ndarray]] = {"q3": [], "pixel": [], "zone": [], "image": []}
    tol2 = tolerance * tolerance * (1 + 1e-9) + 1e-15
    for m in range(len(images)):
        a, st, n = images.start[m], images.step[m], int(images.n[m])
        end = a + n * st
        lo, hi = np.minimum(a, end) - tolerance, np.maximum(a, end) + tolerance
        i0 = np.ceil((lo - c0) / steps - 1e-9).astype(np.int64)
        i1 = np.floor((hi - c0) / steps + 1e-9).astype(np.int64)
        axes = [np.arange(x0, x1 + 1) for x0, x1 in zip(i0, i1)]
        if any(len(x) == 0 for x in axes):
            continue
        idx = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        r = c0 + idx * steps - a
        t = (r @ st) / (st @ st)
        perp = r - t[:, None] * st
        keep = (t >= -1e-9) & (t < n - 1e-9) & (np.einsum("ij,ij->i", perp, perp) <= tol2)
        if not np.any(keep):
            continue
        idx = idx[keep]
        pix = np.clip(np.floor(t[keep] + 1e-9).astype(np.int64), 0, n - 1) + int(images.offset[m])
        full = idx[None, :, :] + shifts[:, None, :]  # (n_zones, n_t, 3)
        inside = np.all((full >= 0) & (full < nbin), axis=2)
        zi, ti = np.nonzero(inside)
        if len(zi) == 0:
            continue
        f = full[zi, ti]
        out["q3"].append((f[:, 0] * nk + f[:, 1]) * nl + f[:, 2])
        out["pixel"].append(pix[ti])
        out["zone"].append(zi.astype(np.int64))
        out["image"].append(np.full(len(zi), m, dtype=np.int64))
    if not out["q3"]:
        return {k: np.zeros(0, dtype=np.int64) for k in out}
    return {k: np.concatenate(v) for k, v in out.items()}


def _tube_bins_general(
    cen: list[np.ndarray], images: SegmentImages, zones: np.ndarray, tolerance: float
) -> dict[str, np.ndarray]:
    """General path (uneven or incommensurate bins): bins searched per zone from the sorted centres."""
    nk, nl = len(cen[1]), len(cen[2])
    out: dict[str, list[np.ndarray]] = {"q3": [], "pixel": [], "zone": [], "image": []}
    tol2 = tolerance * tolerance * (1 + 1e-9) + 1e-15
    for m in range(len(images)):
        a, st, n = images.start[m], images.step[m], int(images.n[m])
        end = a + n * st
        lo, hi = np.minimum(a, end) - tolerance, np.maximum(a, end) + tolerance
        i0 = [np.searchsorted(c, lo[x] + zones[:, x] - 1e-9, "left") for x, c in enumerate(cen)]
        i1 = [np.searchsorted(c, hi[x] + zones[:, x] + 1e-9, "right") for x, c in enumerate(cen)]
        cnt = [np.maximum(b - a_, 0) for a_, b in zip(i0, i1)]
        tot = cnt[0] * cnt[1] * cnt[2]
        total = int(tot.sum())
        if total == 0:
            continue
        zi = np.repeat(np.arange(len(zones)), tot)
        local = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(tot) - tot, tot)
        c12 = (cnt[1] * cnt[2])[zi]
        ih = i0[0][zi] + local // c12
        rem = local % c12
        ik = i0[1][zi] + rem // cnt[2][zi]
        il = i0[2][zi] + rem % cnt[2][zi]
        r = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1) - zones[zi] - a
        t = (r @ st) / (st @ st)
        perp = r - t[:, None] * st
        d2 = np.einsum("ij,ij->i", perp, perp)
        keep = (t >= -1e-9) & (t < n - 1e-9) & (d2 <= tol2)
        if not np.any(keep):
            continue
        pix = np.clip(np.floor(t[keep] + 1e-9).astype(np.int64), 0, n - 1) + int(images.offset[m])
        out["q3"].append((ih[keep] * nk + ik[keep]) * nl + il[keep])
        out["pixel"].append(pix)
        out["zone"].append(zi[keep].astype(np.int64))
        out["image"].append(np.full(int(keep.sum()), m, dtype=np.int64))
    if not out["q3"]:
        return {k: np.zeros(0, dtype=np.int64) for k in out}
    return {k: np.concatenate(v) for k, v in out.items()}


def zones_for_box(
    q_edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    images: SegmentImages,
    centering: Centering,
    tolerance: float,
) -> np.ndarray:
    """Zone centres whose path tubes can reach the Q box spanned by ``q_edges``."""
    reach = (
        float(
            np.max(
                np.linalg.norm(
                    np.concatenate([images.start, images.start + images.n[:, None] * images.step]), axis=1
                )
            )
        )
        + tolerance
    )
    lo = np.array([e[0] for e in q_edges]) - reach
    hi = np.array([e[-1] for e in q_edges]) + reach
    return zone_centres(lo, hi, centering)
