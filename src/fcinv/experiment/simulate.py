"""A simulated single-crystal direct-geometry time-of-flight experiment (ARCS-like).

Higher fidelity than the training forward model: the coherent one-phonon S(Q, E) comes
from Euphonic (structure factors with eigenvectors, Debye–Waller factor at temperature T
from a q-mesh, Bose factor n+1), broadened by the instrument's energy resolution (a
Gaussian of FWHM(E), :mod:`fcinv.experiment.instrument`), plus a flat background, and
Poisson counts for a counting time per sample orientation.

The histogram. Q-bins are cubes of ``q_step`` r.l.u. (default 0.05) with centres at
``(n + ¼)·q_step``; energy bins are the grid's (default 0.5 meV). By default only the
Q-bins inside the folding tubes of the q-path (``region=grid``: the bins that folding with
``q_tolerance`` can use, in every zone reachable with Ei) are simulated, which is what a
path fold needs: 5.5·10⁶ bins for the default Ge run, a tenth of the covered volume;
``region=None`` simulates every covered bin (~6·10⁷ for the default Ge run: minutes and
several GB, measured only up to 5 orientations, 26 s). Bins outside the coverage are
absent, never zero.

Coverage of one orientation. For a Q-bin centre (sample frame) and rotation ψ,
Q_lab = R_y(ψ) Q, kf = ki ẑ − Q_lab and E = Ei − 2.0721 |kf|² is the energy transfer at
which the orientation's detector-time manifold passes through that Q; the bin is measured
if kf points at a detector. Across the bin's width E varies by the gradient
∇E = 2·2.0721·kf; the bin's measured energy range is taken as a uniform distribution of
width W = √Σ(∂E/∂Q_i ΔQ_i)² (variance-matched to the exact distribution) around E, and each
energy bin receives the overlapping fraction as its normalisation weight.

Counts. Per (orientation, bin): λ = rate · t · w · (S/S̄ + background), counts ~ Poisson(λ),
norm = rate · t · w, so counts/norm estimates S/S̄ + background, where S̄ is the mean
one-phonon intensity over the simulated bins above 2 meV (intensity 1 = that mean). The ki/kf
and solid-angle factors cancel per unit Q-volume for a fixed Ei, so w carries the
exposure. Q-resolution, detector gaps, multiple scattering and the elastic line are not
modelled.

Speed. Phonons are computed once per distinct Q-bin centre (Euphonic reduces them to
distinct q in the first zone and uses its C extension when available), never per
orientation; the coverage of all (orientation, Q-bin) pairs is one compiled (numba) pass
(:mod:`fcinv.experiment._kernels`). Measured on the 2-core machine (shared, loaded):
the default Ge run (5 K, 40 meV, 120 orientations) simulates in 7–25 s and folds in 1–2 s.
"""

from __future__ import annotations

import logging
import os  # noqa: F401
import tempfile  # noqa: F401
import time
import warnings  # noqa: F401
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import ndtr  # noqa: F401

from fcinv.errors import DataError, ForceConstantError, StructureError, describe_exception, require  # noqa: F401
from fcinv.experiment import _h5
from fcinv.experiment._kernels import coverage_kernel  # noqa: F401
from fcinv.experiment.fold import (
    Corrections,
    FoldPlan,
    cubic_rotations,
    path_segments,
    segment_images,
    tube_bins,
    zone_centres,
)
from fcinv.experiment.folded import FoldedSpectrum
from fcinv.experiment.geometry import (
    rotation_y,  # noqa: F401
    ub_from_vectors,
)
from fcinv.experiment.instrument import E_K2, Goniometer, Instrument
from fcinv.experiment.sqw import (  # noqa: F401 - the phonon side; every name stays importable from here
    _SF_CHUNK,
    ExperimentCrystal,
    _euphonic_from_phonopy,
    _euphonic_kw,
    _supercell_matrix,
    binned_sqw,
    coverage,
    force_constants_from_array,
    load_force_constants,
    one_phonon,
)
from fcinv.experiment.volume import Volume4D, regular_edges
from fcinv.grid import SpectrumGrid
from fcinv.units import KB_MEV_PER_K  # noqa: F401

log = logging.getLogger(__name__)

FORMAT = "fcinv-simulated-run"
FORMAT_VERSION = 1


# --------------------------------------------------------------------- the result
@dataclass(frozen=True, eq=False)
class SimulatedRun:
    """The simulated measurement: per-orientation sparse counts on one 4D grid.

    Parameters
    ----------
    edges
        H, K, L (r.l.u.) and E (meV) bin edges.
    psi
        Shape (n_o,) float64, degrees.
    offsets
        Shape (n_o + 1,) int64: entries of orientation j are ``offsets[j]:offsets[j+1]``.
    index
        Shape (n,) int64: flat 4D bin index of each entry.
    counts
        Shape (n,) int64: Poisson counts.
    norm
        Shape (n,) float64: normalisation (rate × time × weight), counts / norm estimates the intensity.
    expected_index, expected
        The noise-free intensity (S/S̄ + background) on every covered bin, sorted index.
    reciprocal_cell
        Shape (3, 3), 1/Å.
    meta
        Provenance: instrument, goniometer, temperature, seed, force constants, timings.
    """

    edges: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    psi: np.ndarray
    offsets: np.ndarray
    index: np.ndarray
    counts: np.ndarray
    norm: np.ndarray
    expected_index: np.ndarray
    expected: np.ndarray
    reciprocal_cell: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_orientations(self) -> int:
        """Number of sample orientations."""
        return len(self.psi)

    def orientation(self, j: int) -> Volume4D:
        """The 4D histogram of orientation ``j`` alone."""
        if not (-self.n_orientations <= j < self.n_orientations):
            raise DataError(
                f"orientation {j} does not exist; the run has {self.n_orientations} (0..{self.n_orientations - 1})."
            )
        j %= self.n_orientations
        a, b = int(self.offsets[j]), int(self.offsets[j + 1])
        meta = dict(self.meta, source=f"simulated orientation {j}", psi_deg=float(self.psi[j]))
        return Volume4D.from_counts(
            self.edges,
            self.index[a:b],
            self.counts[a:b],
            self.norm[a:b],
            meta=meta,
            reciprocal_cell=self.reciprocal_cell,
        )

    def total(self) -> Volume4D:
        """The whole run: counts and normalisation summed per bin over the orientations."""
        uniq, inv = np.unique(self.index, return_inverse=True)
        counts = np.bincount(inv, weights=self.counts)
        norm = np.bincount(inv, weights=self.norm)
        meta = dict(self.meta, source="simulated run (all orientations)")
        return Volume4D.from_counts(
            self.edges, uniq, counts, norm, meta=meta, reciprocal_cell=self.reciprocal_cell
        )

    def expected_volume(self) -> Volume4D:
        """The noise-free intensity on the covered bins (error 0, norm 1)."""
        n = len(self.expected_index)
        return Volume4D(
            edges=self.edges,
            index=self.expected_index,
            signal=self.expected,
            error=np.zeros(n),
            norm=np.ones(n),
            meta=dict(self.meta, source="simulated run (noise-free)"),
            reciprocal_cell=self.reciprocal_cell,
        )

    def write(self, path: str | Path, *, command: str | None = None) -> None:
        """Write atomically to HDF5 (format ``fcinv-simulated-run``)."""
        with _h5.atomic_h5(path) as f:
            _h5.stamp(f, FORMAT, FORMAT_VERSION, command=command, seed=self.meta.get("seed"), meta=self.meta)
            g = f.create_group("edges")
            for name, unit, e in zip(("H", "K", "L", "E"), ("r.l.u.", "r.l.u.", "r.l.u.", "meV"), self.edges):
                _h5.put(g, name, e, unit)
            _h5.put(f, "psi", self.psi, "degree")
            _h5.put(f, "offsets", self.offsets, "1")
            _h5.put(
                f,
                "index",
                self.index,
                "1",
                compress=True,
                description="flat C-order index into (n_H, n_K, n_L, n_E)",
            )
            _h5.put(f, "counts", self.counts.astype(np.int32), "counts", compress=True)
            _h5.put(f, "norm", self.norm.astype(np.float32), "arb. units", compress=True)
            _h5.put(f, "expected_index", self.expected_index, "1", compress=True)
            _h5.put(
                f,
                "expected",
                self.expected.astype(np.float32),
                "arb. units",
                compress=True,
                description="noise-free S/mean(S) + background",
            )
            _h5.put(f, "reciprocal_cell", self.reciprocal_cell, "1/Å")
            from fcinv.io.nexus import sparse_4d_nxdata

            total = self.total()  # the NeXus default plot: all orientations summed (float32, as counts)
            sig, err = total.signal.astype(np.float32), total.error.astype(np.float32)
            sparse_4d_nxdata(f, self.edges, total.index, sig, err, title="simulated run (all orientations)")

    def to_hdf5(self, path: str | Path, *, command: str | None = None) -> None:
        """Same as :meth:`write` (the name every fcinv container shares)."""
        self.write(path, command=command)

    @classmethod
    def from_hdf5(cls, path: str | Path) -> SimulatedRun:
        """Same as :meth:`read` (the name every fcinv container shares)."""
        return cls.read(path)

    @classmethod
    def read(cls, path: str | Path) -> SimulatedRun:
        """Read a file written by :meth:`write`."""
        with _h5.open_checked(path, FORMAT) as f:
            try:
                edges = tuple(f["edges"][n][()] for n in ("H", "K", "L", "E"))
                kw = {
                    k: f[k][()]
                    for k in (
                        "psi",
                        "offsets",
                        "index",
                        "counts",
                        "norm",
                        "expected_index",
                        "expected",
                        "reciprocal_cell",
                    )
                }
            except KeyError as exc:
                raise DataError(
                    f"'{path}' is incomplete ({describe_exception(exc)}). The file is truncated; simulate again."
                ) from None
            meta = _h5.read_meta(f)
        _check_run_layout(path, edges, kw)
        kw["counts"] = kw["counts"].astype(np.int64)
        kw["norm"] = kw["norm"].astype(np.float64)
        kw["expected"] = kw["expected"].astype(np.float64)
        return cls(edges=edges, meta=meta, **kw)  # type: ignore[arg-type]


def _check_run_layout(path, edges, kw: dict) -> None:
    """Refuse a run file whose arrays do not fit together (a damaged or hand-edited file)."""

    def bad(what: str) -> DataError:
        return DataError(f"'{path}' is inconsistent: {what}. The file is corrupt; simulate again.")

    psi, off, idx = np.ravel(kw["psi"]), np.ravel(kw["offsets"]), np.ravel(kw["index"])
    if len(off) != len(psi) + 1:
        raise bad(f"{len(off)} offsets for {len(psi)} orientations (expected {len(psi) + 1})")
    if off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != len(idx):
        raise bad(f"offsets {off[:4].tolist()}... do not run from 0 up to the {len(idx)} entries")
    for name in ("counts", "norm"):
        if np.shape(kw[name]) != np.shape(idx):
            raise bad(f"{name} has {np.size(kw[name])} entries, index {len(idx)}")
    if np.shape(kw["expected"]) != np.shape(kw["expected_index"]):
        raise bad(
            f"expected has {np.size(kw['expected'])} entries, expected_index {np.size(kw['expected_index'])}"
        )
    n_bins = int(np.prod([max(len(e) - 1, 0) for e in edges]))
    for name in ("index", "expected_index"):
        i = np.ravel(kw[name])
        if len(i) and (i.min() < 0 or i.max() >= n_bins):
            raise bad(f"{name} points outside the {n_bins:,} bins of its edges")


# ---------------------------------------------------------------------- the driver
@dataclass(frozen=True)
class ExperimentConfig:
    """Settings of a simulated run (defaults: the paper's Ge ARCS measurement).

    Parameters
    ----------
    temperature
        Sample temperature, K (Debye–Waller and Bose factors).
    q_step
        Q-bin width, r.l.u. (cubes; centres at (n + ¼)·q_step).
    counting_time
        Minutes per orientation.
    count_rate
        Expected counts per minute in a bin of weight 1 at intensity 1 (the mean one-phonon intensity).
    background
        Flat background, in units of the mean one-phonon intensity.
    q_tolerance
        Radius (r.l.u.) of the path tubes simulated when a region grid is given.
    dw_mesh
        Monkhorst–Pack mesh size for the Debye–Waller factor.
    seed
        Seed of the Poisson noise.
    """

    temperature: float = 5.0
    q_step: float = 0.05
    counting_time: float = 1.5
    count_rate: float = 1.0
    background: float = 0.1
    q_tolerance: float = 0.05
    dw_mesh: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            ("temperature", self.temperature >= 0, "a temperature >= 0 K"),
            (
                "q_step",
                0 < self.q_step <= 0.5,
                "a bin width in (0, 0.5] r.l.u. (0.05 suits the 0.025 path step)",
            ),
            ("counting_time", self.counting_time > 0, "a positive time in minutes"),
            ("count_rate", self.count_rate > 0, "a positive rate"),
            ("background", self.background >= 0, "a background >= 0"),
            ("q_tolerance", 0 < self.q_tolerance < 1, "a tube radius in (0, 1) r.l.u."),
            ("dw_mesh", self.dw_mesh >= 1, "a mesh size >= 1"),
        )
        for name, ok, want in checks:
            if not ok:
                raise DataError(f"{name} = {getattr(self, name)}; pass {want}.")


def reachable_box(
    crystal: ExperimentCrystal, instrument: Instrument, ub: np.ndarray, e_min: float
) -> tuple[np.ndarray, float, np.ndarray]:
    """Limits of the Q reachable with Ei and the detectors' out-of-plane coverage.

    Returns
    -------
    ext, qy_max, y_hat
        Per-axis half-extent of the reachable region (r.l.u.), the largest vertical |Q| (1/Å)
        and the vertical direction as a covector on hkl (Q_y = hkl @ y_hat, 1/Å).
    """
    kf_max = float(np.sqrt(max(instrument.ei - min(e_min, 0.0), 0.0) / E_K2))
    qmax = instrument.ki + kf_max
    oop = np.deg2rad(max(abs(instrument.out_of_plane[0]), abs(instrument.out_of_plane[1])))
    qy_max = kf_max * np.sin(min(oop, np.pi / 2))
    rc = crystal.reciprocal_cell
    y_hat = 2 * np.pi * np.asarray(ub, float)[1]  # Q_y = y_hat . hkl
    y_cart = y_hat @ np.linalg.inv(rc).T  # unit vector in the Cartesian frame of rc
    y_cart = y_cart / np.linalg.norm(y_cart)
    inv = np.linalg.inv(rc)
    y = np.linspace(-min(qy_max, qmax), min(qy_max, qmax), 2001)
    ext = np.empty(3)
    for i in range(3):
        c = inv[:, i]
        c_par = float(c @ y_cart)
        c_perp = float(np.linalg.norm(c - c_par * y_cart))
        ext[i] = float(np.max(c_par * y + c_perp * np.sqrt(np.maximum(qmax * qmax - y * y, 0.0))))
    return ext, float(qy_max), y_hat


def simulate_experiment(
    fc,
    crystal: ExperimentCrystal,
    *,
    instrument: Instrument | None = None,
    goniometer: Goniometer | None = None,
    config: ExperimentConfig | None = None,
    region: SpectrumGrid | None = None,
    e_edges: np.ndarray | None = None,
    progress: bool = False,
    provenance: dict | None = None,
) -> SimulatedRun:
    """Simulate a single-crystal ToF run (module docstring for the model).

    Parameters
    ----------
    fc
        ``euphonic.ForceConstants`` (:func:`load_force_constants`, :func:`force_constants_from_array`).
    crystal
        Geometry of the same crystal.
    instrument, goniometer, config
        Defaults: ARCS-like, Ei = 40 meV; 120 orientations in 1° steps, u = [1,0,0], v = [0,1,0];
        5 K, 0.05 r.l.u. bins, 1.5 min per orientation, seed 0.
    region
        A :class:`SpectrumGrid`: simulate only the Q-bins in the folding tubes of its path
        (default behaviour of the CLI); None simulates every covered bin.
    e_edges
        Energy bin edges (meV, evenly spaced); default: the region grid's, else 0..0.95 Ei in 0.5 meV.
    progress
        Show a progress bar for the phonon calculation.
    provenance
        Extra entries for the run's ``meta`` (force-constant source, command, ...).
    """
    t0 = time.perf_counter()
    inst = instrument or Instrument()
    gon = goniometer or Goniometer()
    cfg = config or ExperimentConfig()
    if e_edges is None:
        e_edges = region.energy_edges if region is not None else np.arange(0.0, 0.95 * inst.ei + 1e-9, 0.5)
    e_edges = np.asarray(e_edges, float)
    if e_edges.ndim != 1 or len(e_edges) < 2 or e_edges[0] >= inst.ei:
        raise DataError(
            f"energy bins {e_edges[0]:g}..{e_edges[-1]:g} meV lie above Ei = {inst.ei:g} meV; energy transfer must stay below Ei. Lower the energy range or raise Ei."
        )
    ub = ub_from_vectors(crystal.b_matrix(), gon.u, gon.v)
    ext_box, qy_max, y_hat = reachable_box(crystal, inst, ub, float(e_edges[0]))
    edges = (*(regular_edges(-x, x, cfg.q_step, offset=cfg.q_step / 4) for x in ext_box), e_edges)
    shape = tuple(len(e) - 1 for e in edges)
    cen = [0.5 * (e[1:] + e[:-1]) for e in edges[:3]]
    rc = crystal.reciprocal_cell
    qmax = inst.ki + float(np.sqrt(max(inst.ei - min(float(e_edges[0]), 0.0), 0.0) / E_K2))
    margin = cfg.q_step * float(np.linalg.norm(rc, axis=1).max())

    # candidate Q-bins
    if region is not None:
        segs = path_segments(region)
        rots = crystal.rotations if crystal.rotations is not None else cubic_rotations()
        images = segment_images(segs, rots)
        reach = (
            float(
                np.max(
                    np.linalg.norm(
                        np.concatenate([images.start, images.start + images.n[:, None] * images.step]), axis=1
                    )
                )
            )
            + cfg.q_tolerance
        )
        ext = np.array([c[-1] for c in cen])
        zones = zone_centres(-ext - reach, ext + reach, crystal.centering)  # type: ignore[arg-type]
        reach_a = reach * float(np.linalg.norm(rc, axis=1).max())
        zones = zones[
            (np.linalg.norm(zones @ rc, axis=1) <= qmax + reach_a)
            & (np.abs(zones @ y_hat) <= qy_max + reach_a)
        ]
        mem = tube_bins(edges[:3], images, zones, cfg.q_tolerance)
        q3 = np.unique(mem["q3"])
    else:
        grids = np.meshgrid(*[np.arange(len(c)) for c in cen], indexing="ij")
        q3 = np.ravel_multi_index(tuple(g.ravel() for g in grids), shape[:3])
    ih, ik, il = np.unravel_index(q3, shape[:3])
    hkl = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1)
    keep = (np.linalg.norm(hkl @ rc, axis=1) <= qmax + margin) & (np.abs(hkl @ y_hat) <= qy_max + margin)
    q3, hkl = q3[keep], hkl[keep]
    t_region = time.perf_counter() - t0

    cov = coverage(hkl, ub, (cfg.q_step,) * 3, e_edges, inst, np.asarray(gon.psi))
    t_cov = time.perf_counter() - t0 - t_region

    # phonons once per distinct measured Q-bin
    used_q, q_row = np.unique(cov["q"], return_inverse=True)
    log.info(
        "simulating %d Q-bins (%d candidates), %d (orientation, bin) entries",
        len(used_q),
        len(q3),
        len(cov["q"]),
    )
    energies, sf = _phonons_with_progress(fc, crystal, hkl[used_q], cfg, progress)
    t_ph = time.perf_counter() - t0 - t_region - t_cov

    # noise-free intensity on the union of measured (Q-bin, E-bin)
    key = q_row.astype(np.int64) * shape[3] + cov["e"]
    ukey, kinv = np.unique(key, return_inverse=True)
    urow, ue = ukey // shape[3], ukey % shape[3]
    s = binned_sqw(
        energies, sf, urow, e_edges[ue], e_edges[ue + 1], temperature=cfg.temperature, instrument=inst
    )
    ref = s[e_edges[ue] >= 2.0]
    s_mean = float(ref.mean()) if len(ref) and ref.mean() > 0 else float(s.mean())
    if not s_mean > 0:
        raise DataError(
            "the simulated one-phonon intensity is zero everywhere. Check the force constants (imaginary modes?) and the energy range."
        )
    expected_u = s / s_mean + cfg.background
    flat_u = q3[used_q][urow] * shape[3] + ue
    order_u = np.argsort(flat_u)

    # Poisson counts per (orientation, bin)
    rng = np.random.default_rng(cfg.seed)
    norm = cfg.count_rate * cfg.counting_time * cov["w"]
    counts = rng.poisson(norm * expected_u[kinv])
    flat = q3[used_q][q_row] * shape[3] + cov["e"]
    offsets = np.searchsorted(cov["o"], np.arange(gon.n + 1)).astype(np.int64)
    elapsed = time.perf_counter() - t0
    meta = {
        "source": "fcinv simulated experiment",
        "instrument": inst.describe(),
        "goniometer": {
            "psi_deg": [gon.psi[0], gon.psi[-1]],
            "n_orientations": gon.n,
            "u": list(gon.u),
            "v": list(gon.v),
        },
        "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
        "seed": cfg.seed,
        "temperature_K": cfg.temperature,
        "intensity_unit": "mean one-phonon intensity above 2 meV",
        "mean_one_phonon_mbarn_per_meV": s_mean,
        "crystal": crystal.name,
        "region": "path tubes" if region is not None else "all covered bins",
        "n_qbins": len(used_q),
        "n_bins": len(ukey),
        "n_entries": len(flat),
        "timings_s": {
            "region": round(t_region, 3),
            "coverage": round(t_cov, 3),
            "phonons": round(t_ph, 3),
            "total": round(elapsed, 3),
        },
        **(provenance or {}),
    }
    log.info(
        "simulated run: %d orientations, %d bins, %d entries in %.1f s", gon.n, len(ukey), len(flat), elapsed
    )
    return SimulatedRun(
        edges=edges,  # type: ignore[arg-type]
        psi=np.asarray(gon.psi, float),
        offsets=offsets,
        index=flat.astype(np.int64),
        counts=counts.astype(np.int64),
        norm=norm,
        expected_index=flat_u[order_u].astype(np.int64),
        expected=expected_u[order_u],
        reciprocal_cell=rc,
        meta=meta,
    )


def _phonons_with_progress(
    fc, crystal: ExperimentCrystal, hkl: np.ndarray, cfg: ExperimentConfig, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    if not progress or len(hkl) <= _SF_CHUNK:
        return one_phonon(fc, crystal, hkl, temperature=cfg.temperature, dw_mesh=cfg.dw_mesh)
    from tqdm import tqdm

    parts_e, parts_s = [], []
    for a in tqdm(range(0, len(hkl), 4 * _SF_CHUNK), desc="phonons (Euphonic)", unit="block"):
        e, s = one_phonon(
            fc, crystal, hkl[a : a + 4 * _SF_CHUNK], temperature=cfg.temperature, dw_mesh=cfg.dw_mesh
        )
        parts_e.append(e)
        parts_s.append(s)
    return np.concatenate(parts_e), np.concatenate(parts_s)


def fold_orientations(
    run: SimulatedRun,
    grid: SpectrumGrid,
    rotations: np.ndarray,
    *,
    orientations: Sequence[int] | None = None,
    centering: str = "F",
    q_tolerance: float = 0.05,
    corrections: Corrections | None = None,
    progress: bool = False,
) -> list[FoldedSpectrum]:
    """Fold every single orientation of a run (the paper's one-minute scans), reusing one fold plan.

    Returns one :class:`FoldedSpectrum` per orientation (``meta["psi_deg"]`` tells which); an
    orientation that reaches no path pixel raises :class:`DataError`.
    """
    plan = FoldPlan.build(run.edges[:3], grid, rotations, centering=centering, q_tolerance=q_tolerance)  # type: ignore[arg-type]
    which = range(run.n_orientations) if orientations is None else orientations
    if progress:
        from tqdm import tqdm

        which = tqdm(list(which), desc="folding orientations", unit="scan")
    return [plan.apply(run.orientation(j), corrections=corrections) for j in which]
