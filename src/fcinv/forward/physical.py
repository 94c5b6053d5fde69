"""The physical forward model: coherent one-phonon intensities of the *folded measurement*.

:class:`PhysicalModel` has the public interface of :class:`fcinv.forward.ForwardModel`
(``names``, ``k``, ``theta0``, ``full_theta``, ``check``, ``frequencies``, ``lowest_energy``,
``is_stable``, ``spectra``, ``describe``), so datasets, fits and models can swap one for the
other (:func:`make_forward` picks ``intensity="paper"`` or ``"physical"``).

What it predicts. The fold (:mod:`fcinv.experiment.fold`) divides summed data by summed
normalisation, so a folded pixel (path q, energy bin j) is

    I(q, j) = f_j · Σ_t w_t(j) S(Q_t, j) / Σ_t w_t(j),

where t runs over the (segment image g, zone G) pairs whose tube reaches the pixel,
Q_t = g·q + G, w_t(j) is the summed normalisation (exposure) of the 4D bins of that tube at
that pixel and energy (:class:`Coverage`), and f_j the per-energy factor of the fold's
corrections (below). The coherent one-phonon cross-section per atom, averaged over the bin,

    S(Q, j) = Σ_ν (n(ω_ν) + 1) |F_ν(Q)|² / (2 N ω_ν) · ∫_bin G(E − ω_ν; σ(ω_ν)) dE / ΔE,
    F_ν(Q) = Σ_κ b_κ m_κ^{-1/2} exp(−Qᵀ W_κ Q) (Q · e*_κν(Q)) exp(iQ·r_κ)   (lattice phase convention),

is Euphonic's ``calculate_structure_factor`` (Dove 2003) times the Bose factor and the
bin-integrated Gaussian resolution, exactly as :func:`fcinv.experiment.simulate.binned_sqw`
combines them (modes at or below ``e_min_mode`` = 0.05 meV are dropped). Conventions:

- b_κ: bound coherent scattering lengths (fm), Sears (1992) (:mod:`fcinv.forward.scattering`);
  m_κ in amu; Q in 1/Å (2π included); ω in meV; n the Bose occupation at the sample
  temperature (0 at T = 0).
- Units: mbarn / meV per atom (Euphonic's), i.e. 10·ħ²/amu · b[fm]²Q²/(m ω) with
  ħ²/amu = 4.1802 meV Å². Overall scale and background are left to the fits.
- Eigenvectors come from the same batched Jacobi solve as the energies, in the block-diagonal
  real basis of :class:`~fcinv.forward.model.LinearDynamics` (x = V y, e = U^H x with U the
  inversion unitary). fcinv's dynamical matrix uses the bond phase exp(iq·(R + r_λ − r_κ)),
  for which e_κ(Q) of the image Q = S q + G is e^{−iG·r_κ'} S e_κ(q), κ' the image atom of
  κ under the space-group operation with rotation S (no other phase: bond vectors map onto bond
  vectors). Hence F_ν(Q_t)* = a_t · y_ν with the fixed row a_t = u_tᵀ U^H V and
  u_t,κ = b_κ' m_κ'^{-1/2} e^{−Q_tᵀ W_κ' Q_t} e^{−iG·r_κ'} Sᵀ Q_t, checked against the
  dynamical matrices at construction (D(Sq) = T D(q) T^H).
- Crystals without an inversion centre (zincblende GaAs): D(q) has no real basis. The frequencies
  use the compiled complex Hermitian Jacobi (:class:`LinearDynamics`); the intensities use the real
  embedding [[Re D, −Im D], [Im D, Re D]] of size 2m (:class:`RealForm`), whose eigenpairs are the
  complex ones twice (x and i·x), so the same real lane kernels run on it and every sum over modes
  carries a factor ½. Checked against Euphonic's S(Q, E) for GaAs (tests/forward/test_physical_complex.py).
- Precomputed once per measurement: per pixel (q, j) the real symmetric matrices
  M_k(q, j) = Σ_t w_t(j) |Q_t|^{2k}/k! (Re a_tᵀ Re a_t + Im a_tᵀ Im a_t) / Σ_t w_t(j); a θ then
  costs one blocked eigen-decomposition per q and one small quadratic form yᵀ M y per mode and
  energy bin of its resolution window. Batches run ``LANES`` (8) θ side by side in SIMD lanes
  (:func:`~fcinv.forward._phys_kernels.physical_spectra_lanes`: the blocks of eight θ are
  diagonalised together and each quadratic form is a 4-row × 8-lane tile); the packed
  triangles are padded to whole vectors. Where the time goes (Ge, 871 points, 5 K, one core,
  per spectrum, CPU time on the shared 2-core machine): ~0.7 ms eigen-decompositions, ~1.1 ms
  quadratic forms (3.3 Debye–Waller orders on average), ~0.3 ms the bin-integrated Gaussians.
- Debye–Waller (``dw``): W_κ = ħ/(4 m_κ N_q) Σ_qν e_κν e_κν^H coth(ħω/2k_BT)/ω (Euphonic's
  ``calculate_debye_waller``; modes < 0.01 meV left out; 1/ω at T = 0). At the reference it is
  summed on Euphonic's shifted Monkhorst–Pack ``dw_mesh``³ grid and symmetrised, as the
  simulation does. ``"theta"`` (default) follows θ: the change Δw = w(θ) − w(θ_ref) of the
  isotropic coefficient (W = w|Q|²) is summed on the irreducible points of the Γ-centred
  ``dw_mesh``³ grid (spglib; ~50 points for Ge instead of 1000) and applied as
  exp(−2ΔwQ²) = Σ_k (−2ΔwQ²)^k/k! (order 6, truncation < 1e-6 for |2ΔwQ²| < 0.25, warned
  beyond); it needs every atom's W isotropic (cubic sites: Ge, Nb, GaAs). With several symmetry
  orbits (GaAs: Ga and As) each orbit c has its own Δw_c and the matrices come in families (a, b),
  a ≤ b, each expanded in exp(−(Δw_a + Δw_b)Q²) (three families for two orbits).
  ``dw_expansion="cumulant"`` (default for one class) keeps only the rows k = 0, 1,
  r_k = Σ_t w_t |Q_t|^{2k} |a_t·y|², and applies r₀ exp(x r₁/r₀) (x = −2Δw): the exponential of
  the intensity-weighted mean |Q|² of each mode and bin, exact to first order in x, with a relative
  error ~ x² Var(Q²)/2 (measured: 2.5e-5 of the peak over ±10 % θ at 5 K on the 120-orientation
  run, 3.7e-7 in the tests' small coverage at 150 K); it needs two rows instead of 3–5, so the
  quadratic forms and the precomputed matrices shrink by ~2×–3.5×. ``"reference"`` keeps the
  reference's (full, symmetrised) W_κ for every θ; ``"none"`` drops it. Note: the simulated
  experiment uses no Debye–Waller factor at T = 0; pass ``dw="none"`` to reproduce it there.
- Resolution: a Gaussian of FWHM(ω) at the mode energy, from
  :meth:`fcinv.experiment.instrument.Instrument.fwhm` (tabulated every 0.01 meV) or a
  :class:`~fcinv.forward.model.Broadening`.
- The fold's corrections (:class:`fcinv.experiment.fold.Corrections`; ``fcinv fold
  --one-phonon T`` = Bose T, |Q|², E): pass the same object as ``corrections`` and the model
  predicts the corrected fold: ``q2`` divides each image's term by |Q_t|², ``bose_temperature``
  and ``energy`` give f_j = (1 − e^{−E_j/k_BT}) and |E_j| at the bin centres. A constant
  ``background`` subtraction is not part of the one-phonon model (the fits' background
  absorbs it; after the corrections a flat background becomes f_j · b).

Sampling (``sampling``). The fold sums 4D bins whose centres lie anywhere in the tube
(±``q_tolerance`` across, one path step along). ``"bins"`` (default for a coverage from a fold or a
run) evaluates each term at its bins' own position, q_t = g⁻¹(Q_bin − G): phonons are computed at
every distinct such q (merged per pixel by the point group: 871 points for the Ge path instead of
140) and the model reproduces Euphonic + fold to 2e-7 of the peak for identical force constants.
``"path"`` evaluates every term at the path point g·q + G: 6× fewer eigen-problems, but blind to
the dispersion across the tube (errors up to several times the peak next to Γ, a few % rms).
Measured (``benchmarks/physical_forward.py``, DFT Ge truth, 120 orientations): max |Δ|/peak
1.8e-3 (5 K) and 5.9e-4 (300 K) with ``"bins"``; the remainder is Euphonic's different treatment
of the 4x4x4 supercell images of the DFT file (0.02 meV at generic q). Speed with the lane
kernel at 5 K: 149 spectra/s wall, 383 per CPU-second (one thread, load average 8 on 2 CPUs).

Not modelled: multiphonon, incoherent, elastic and multiple scattering, Q-resolution.

Example::

    from fcinv.crystal import Crystal, default_grid
    from fcinv.experiment.instrument import Instrument
    from fcinv.forward import PhysicalModel, coverage_for_run
    from fcinv.reference import load_reference

    ref = load_reference("Ge")
    grid = default_grid(ref.space.crystal)
    # one orientation: psi=[30.0]; every image equally: full_coverage(ref.space.crystal, grid)
    cov = coverage_for_run(ref.space.crystal, grid, ei=40.0, psi=range(0, 120))
    model = PhysicalModel(ref.space, grid, ref.theta_ref, coverage=cov, temperature=5.0,
                          resolution=Instrument(ei=40.0))
    images = model.spectra(theta_batch)   # (B, n_q, n_E) float32, mbarn/meV per atom; 0 outside model.mask
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fcinv.errors import FcinvError, ForceConstantError
from fcinv.fcspace import FCSpace, PairFC
from fcinv.forward import _phys_kernels as pk
from fcinv.forward.model import (
    _CDF,
    STABILITY_TOL_MEV,
    Broadening,
    ForwardModel,
    FreeParameters,
    LinearDynamics,
    _block_diagonalise,
    _signed_mev,
    _threads,
    mesh_qpoints,
)
from fcinv.forward.scattering import coherent_lengths
from fcinv.grid import SpectrumGrid
from fcinv.units import EV_A2_AMU_TO_MEV, KB_MEV_PER_K

log = logging.getLogger(__name__)

#: ħ²/amu in meV Å² (CODATA 2018).
HBAR2_AMU_MEV_A2 = 4.180159286375
#: |F|²/ω with b in fm, Q in 1/Å, m in amu, ω in meV → mbarn (1 fm² = 10 mbarn).
SF_TO_MBARN = 10.0 * HBAR2_AMU_MEV_A2
#: Order of the Taylor expansion of the Debye–Waller change.
DW_ORDER = 6
#: A batch remainder (beyond whole groups of ``LANES`` θ) of at least this many is padded to a
#: group for the lane kernel; a smaller one goes through the one-θ kernel (cheaper for 1–5 θ).
PAD_FROM = 6

DWMode = Literal["theta", "reference", "none"]


class PhysicalModelError(FcinvError):
    """Bad settings or inputs of the physical forward model."""


# ----------------------------------------------------------------------- coverage
@dataclass(frozen=True, eq=False)
class Coverage:
    """Which images the folded measurement combines at each (q, E) pixel, and with what weight.

    Parameters
    ----------
    grid
        The (q, E) grid of the fold.
    rotations
        Shape (n_rot, 3, 3): point-group matrices acting on conventional r.l.u. column vectors.
    pixel
        Shape (n_t,) int64: path q-bin of each (image, zone) term t.
    rot
        Shape (n_t,) int64: row of ``rotations`` mapping the path onto the image (Q_t = g q + G).
    zone
        Shape (n_t, 3) float64, r.l.u.: the zone centre G of each term.
    t_idx, e_idx, w
        Shape (n_entries,): term, energy bin (−1: every energy bin) and weight (> 0, the summed
        normalisation of the 4D bins) of each entry.
    source
        How it was made (``"full"``, ``"fold"``, ``"run"``).
    meta
        Provenance (Ei, angles, numbers of terms).
    q
        Optional shape (n_t, 3) float64, r.l.u.: the q of each term in the path's frame, with
        Q_t = g q_t + G the centre of the 4D bins it stands for (``sampling="bins"``); None: the
        pixel's path point (``sampling="path"``).
    """

    grid: SpectrumGrid
    rotations: np.ndarray
    pixel: np.ndarray
    rot: np.ndarray
    zone: np.ndarray
    t_idx: np.ndarray
    e_idx: np.ndarray
    w: np.ndarray
    source: str = ""
    meta: dict = field(default_factory=dict)
    q: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_t = len(self.pixel)
        if self.q is not None and np.shape(self.q) != (n_t, 3):
            raise PhysicalModelError(
                f"coverage q has shape {np.shape(self.q)}; expected ({n_t}, 3), one path-frame q per term."
            )
        if not (len(self.rot) == n_t == len(self.zone)) or not (
            len(self.t_idx) == len(self.e_idx) == len(self.w)
        ):
            raise PhysicalModelError(
                f"coverage arrays disagree in length (pixel {n_t}, rot {len(self.rot)}, zone "
                f"{len(self.zone)}; "
                f"entries {len(self.t_idx)}, {len(self.e_idx)}, {len(self.w)}). Build it with the coverage "
                "functions."
            )
        if n_t == 0 or len(self.w) == 0:
            raise PhysicalModelError(
                "the coverage is empty: no image reaches the path. Check Ei, the angles and the grid."
            )
        if np.any(self.w <= 0) or not np.all(np.isfinite(self.w)):
            raise PhysicalModelError(
                "coverage weights must be finite and > 0. Drop the entries without exposure."
            )

    @property
    def n_terms(self) -> int:
        """Number of (pixel, image, zone) terms."""
        return len(self.pixel)

    def term_q(self) -> np.ndarray:
        """The path-frame q of every term, shape (n_t, 3) float64, r.l.u."""
        return self.grid.q_rlu[self.pixel] if self.q is None else np.asarray(self.q, float)

    def hkl(self) -> np.ndarray:
        """Q_t = g·q_t + G of every term, shape (n_t, 3) float64, conventional r.l.u."""
        q = self.term_q()
        return np.einsum("tij,tj->ti", self.rotations[self.rot], q) + self.zone

    @property
    def weight_sum(self) -> np.ndarray:
        """Σ_t w_t per pixel, shape (n_q, n_E) float64 (0 where unmeasured)."""
        g = self.grid
        out = np.zeros(g.n_q * g.n_e)
        per = self.e_idx >= 0
        cell = self.pixel[self.t_idx[per]] * g.n_e + self.e_idx[per]
        out += np.bincount(cell, weights=self.w[per], minlength=g.n_q * g.n_e)
        out = out.reshape(g.shape)
        if np.any(~per):
            out += np.bincount(self.pixel[self.t_idx[~per]], weights=self.w[~per], minlength=g.n_q)[:, None]
        return out

    @property
    def mask(self) -> np.ndarray:
        """Pixels the measurement covers, shape (n_q, n_E) bool."""
        return self.weight_sum > 0

    def describe(self) -> dict:
        """JSON-able summary."""
        return {
            "source": self.source,
            "n_terms": self.n_terms,
            "n_entries": len(self.w),
            "sampling": "path" if self.q is None else "bins",
            "covered_fraction": float(self.mask.mean()),
            **self.meta,
        }


def _rotation_of_images(grid: SpectrumGrid, rotations: np.ndarray):
    """The plan's segment images and, per image, one rotation mapping its segment onto it."""
    from fcinv.experiment.fold import path_segments, segment_images

    segs = path_segments(grid)
    images = segment_images(segs, rotations)
    rot = np.empty(len(images), dtype=np.int64)
    for m in range(len(images)):
        s = segs[int(images.segment[m])]
        a = rotations @ s.start
        st = rotations @ s.step
        ok = np.flatnonzero(
            np.all(np.abs(a - images.start[m]) < 1e-6, axis=1)
            & np.all(np.abs(st - images.step[m]) < 1e-6, axis=1)
        )
        rot[m] = int(ok[0])
    return images, rot


def full_coverage(
    crystal, grid: SpectrumGrid, *, qmax: float = 8.0, rotations: np.ndarray | None = None
) -> Coverage:
    """Every distinct image of every path segment in every zone with |Q| <= ``qmax`` (1/Å).

    Weight 1 at all energies (an idealised, fully covered measurement).

    ``crystal`` is a :class:`fcinv.crystal.Crystal`; ``rotations`` default to its point group.
    """
    from fcinv.experiment.fold import zone_centres

    if not qmax > 0:
        raise PhysicalModelError(f"qmax = {qmax} 1/Å; pass a positive |Q| limit (e.g. 8).")
    rots = np.asarray(crystal.point_group_rlu if rotations is None else rotations, float)
    images, img_rot = _rotation_of_images(grid, rots)
    centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
    C = 2 * np.pi * np.linalg.inv(crystal.conventional_lattice)  # Q_cart = C @ hkl
    hmax = qmax / np.linalg.svd(C, compute_uv=False).min() + 2.0
    zones = zone_centres(-np.full(3, hmax), np.full(3, hmax), centering)  # type: ignore[arg-type]
    pix, rot, zon = [], [], []
    for m in range(len(images)):
        n = int(images.n[m])
        js = np.arange(n) + int(images.offset[m])
        qimg = images.start[m] + (np.arange(n) + 0.5)[:, None] * images.step[m]
        Q = qimg[:, None, :] + zones[None]
        ok = np.linalg.norm(Q @ C.T, axis=2) <= qmax
        jj, zz = np.nonzero(ok)
        pix.append(js[jj])
        rot.append(np.full(len(jj), img_rot[m]))
        zon.append(zones[zz])
    pixel = np.concatenate(pix).astype(np.int64)
    n_t = len(pixel)
    return Coverage(
        grid=grid,
        rotations=rots,
        pixel=pixel,
        rot=np.concatenate(rot).astype(np.int64),
        zone=np.concatenate(zon),
        t_idx=np.arange(n_t, dtype=np.int64),
        e_idx=np.full(n_t, -1, dtype=np.int64),
        w=np.ones(n_t),
        source="full",
        meta={"qmax_inv_A": qmax},
    )


def coverage_from_fold(
    plan,
    volume,
    *,
    qmod_range: tuple[float, float] | None = None,
    min_zone_coverage: float = 0.0,
    rotations: np.ndarray | None = None,
    sampling: str = "bins",
) -> Coverage:
    """The coverage of a real fold: :class:`~fcinv.experiment.fold.FoldPlan` + the volume it folds.

    ``rotations`` must be the point group the plan was built with, in the same order (default:
    the plan's own). Weights are the volume's normalisation (``volume.weights``),
    exactly as :meth:`FoldPlan.apply` sums them. ``sampling="bins"`` keeps, per term, where the
    4D bins' centres lie in the tube (their path-frame q = g⁻¹(Q_bin − G)), so the model sees the
    dispersion across the tube; ``"path"`` puts every term at its pixel's path point.
    """
    if sampling not in ("bins", "path"):
        raise PhysicalModelError(
            f"sampling = {sampling!r}; pass 'bins' (4D-bin centres) or 'path' (path points)."
        )
    if rotations is None:
        rotations = getattr(plan, "rotations", None)
        if rotations is None:
            raise PhysicalModelError(
                "the fold plan does not carry its rotations; pass rotations=... (the point group it was "
                "built with)."
            )
    rots = np.asarray(rotations, float)
    if len(rots) != plan.n_rotations or (
        getattr(plan, "rotations", None) is not None and not np.allclose(rots, plan.rotations)
    ):
        raise PhysicalModelError(
            f"the {len(rots)} rotations given are not the {plan.n_rotations} the fold plan was built with "
            "(their order fixes the segment images). Pass the plan's rotations."
        )
    images, img_rot = _rotation_of_images(plan.grid, rots)
    if len(images) != plan.n_images:
        raise PhysicalModelError(
            f"the rotations give {len(images)} segment images but the plan has {plan.n_images}. Pass the "
            "plan's rotations."
        )
    by_bin = sampling == "bins"
    iw = plan.image_weights(volume, qmod_range=qmod_range, min_zone_coverage=min_zone_coverage, by_bin=by_bin)
    if len(iw["w"]) == 0:
        raise PhysicalModelError(
            "nothing of the volume lands on the path: the coverage is empty. Check the volume and the plan."
        )
    n_q = plan.grid.n_q
    if by_bin:
        n_q3 = int(np.prod([len(e) - 1 for e in plan.q_edges]))
        key = (iw["zone"] * len(images) + iw["image"]) * n_q3 + iw["q3"]
    else:
        key = (iw["zone"] * len(images) + iw["image"]) * n_q + iw["pixel"]
    _, first, t_idx = np.unique(key, return_index=True, return_inverse=True)
    pixel = iw["pixel"][first]
    image = iw["image"][first]
    zone = iw["zone"][first]
    q = None
    if by_bin:
        shape3 = tuple(len(e) - 1 for e in plan.q_edges)
        cen = [0.5 * (e[1:] + e[:-1]) for e in plan.q_edges]
        ih, ik, il = np.unravel_index(iw["q3"][first], shape3)
        Qb = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1)
        ginv = np.linalg.inv(rots)[img_rot[image]]
        q = np.einsum("tij,tj->ti", ginv, Qb - plan.zones[zone])
    return Coverage(
        grid=plan.grid,
        rotations=rots,
        pixel=pixel.astype(np.int64),
        rot=img_rot[image],
        zone=plan.zones[zone].astype(float),
        t_idx=t_idx.ravel().astype(np.int64),
        e_idx=iw["e"].astype(np.int64),
        w=iw["w"].astype(float),
        source="fold",
        meta={"q_tolerance_rlu": plan.q_tolerance, "n_zones": len(np.unique(zone))},
        q=q,
    )


def coverage_for_run(
    crystal,
    grid: SpectrumGrid,
    *,
    ei: float = 40.0,
    psi: Sequence[float] = tuple(float(x) for x in range(120)),
    u: Sequence[float] = (1.0, 0.0, 0.0),
    v: Sequence[float] = (0.0, 1.0, 0.0),
    instrument=None,
    q_step: float = 0.05,
    q_tolerance: float = 0.05,
    exposure: bool = True,
    sampling: str = "bins",
) -> Coverage:
    """The coverage of a (simulated-geometry) ARCS-like run, without computing any S(Q, E).

    The same Q grid, tube selection and kinematic coverage as
    :func:`fcinv.experiment.simulate.simulate_experiment` with ``region=grid``, folded by
    :class:`~fcinv.experiment.fold.FoldPlan` as ``fcinv fold`` does. ``exposure=True`` weights
    each 4D bin by its summed normalisation (the fold of the counts); ``False`` weights every
    covered bin 1 (the fold of :meth:`SimulatedRun.expected_volume`). ``sampling`` as in
    :func:`coverage_from_fold`.

    Parameters
    ----------
    crystal
        :class:`fcinv.crystal.Crystal`.
    ei
        Incident energy, meV (ignored when ``instrument`` is given).
    psi
        Goniometer angles, degrees (one orientation or a full run).
    u, v
        Scattering-plane vectors (r.l.u.).
    instrument
        :class:`fcinv.experiment.instrument.Instrument` (default ARCS-like at ``ei``).
    """
    from fcinv.experiment.fold import FoldPlan
    from fcinv.experiment.instrument import Instrument
    from fcinv.experiment.readers import ub_from_vectors
    from fcinv.experiment.simulate import ExperimentCrystal, coverage, reachable_box
    from fcinv.experiment.volume import Volume4D, regular_edges

    inst = instrument or Instrument(ei=float(ei))
    psi = np.atleast_1d(np.asarray(list(psi), dtype=float))
    if len(psi) == 0 or not np.all(np.isfinite(psi)):
        raise PhysicalModelError(
            f"psi has {len(psi)} angles (or NaN); pass at least one finite goniometer angle in degrees."
        )
    e_edges = grid.energy_edges
    if e_edges[0] >= inst.ei:
        raise PhysicalModelError(
            f"the grid's energies start at {e_edges[0]:g} meV, above Ei = {inst.ei:g} meV. Raise Ei."
        )
    ec = ExperimentCrystal.from_cell(crystal.lattice, crystal.positions, crystal.numbers, name=crystal.name)
    rots = np.asarray(crystal.point_group_rlu, float)
    ub = ub_from_vectors(ec.b_matrix(), tuple(u), tuple(v))
    ext_box, qy_max, y_hat = reachable_box(ec, inst, ub, float(e_edges[0]))
    edges = (*(regular_edges(-x, x, q_step, offset=q_step / 4) for x in ext_box), e_edges)
    shape = tuple(len(e) - 1 for e in edges)
    centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
    plan = FoldPlan.build(
        edges[:3],
        grid,
        rots,
        centering=centering,
        q_tolerance=q_tolerance,  # type: ignore[arg-type]
    )
    q3 = np.unique(plan.members["q3"])
    cen = [0.5 * (e[1:] + e[:-1]) for e in edges[:3]]
    ih, ik, il = np.unravel_index(q3, shape[:3])
    hkl = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1)
    rc = ec.reciprocal_cell
    qmax = inst.ki + float(np.sqrt(max(inst.ei - min(float(e_edges[0]), 0.0), 0.0) / 2.0721247))
    margin = q_step * float(np.linalg.norm(rc, axis=1).max())
    keep = (np.linalg.norm(hkl @ rc, axis=1) <= qmax + margin) & (np.abs(hkl @ y_hat) <= qy_max + margin)
    q3, hkl = q3[keep], hkl[keep]
    cov = coverage(hkl, ub, (q_step,) * 3, e_edges, inst, psi)
    key = q3[cov["q"]] * shape[3] + cov["e"]
    ukey, inv = np.unique(key, return_inverse=True)
    norm = np.bincount(inv.ravel(), weights=cov["w"]) if exposure else np.ones(len(ukey))
    vol = Volume4D(
        edges=edges,
        index=ukey,
        signal=np.zeros(len(ukey)),
        error=np.zeros(len(ukey)),
        norm=norm,
        meta={"source": "coverage_for_run"},
        reciprocal_cell=rc,
    )
    out = coverage_from_fold(plan, vol, rotations=rots, sampling=sampling)
    meta = dict(
        out.meta,
        ei_meV=float(inst.ei),
        n_orientations=len(psi),
        psi_deg=[float(psi[0]), float(psi[-1])],
        u=list(u),
        v=list(v),
        q_step_rlu=q_step,
        exposure=bool(exposure),
    )
    return Coverage(
        grid=out.grid,
        rotations=out.rotations,
        pixel=out.pixel,
        rot=out.rot,
        zone=out.zone,
        t_idx=out.t_idx,
        e_idx=out.e_idx,
        w=out.w,
        source="run",
        meta=meta,
        q=out.q,
    )


# ---------------------------------------------------------------- symmetry helpers
def _cartesian_ops(crystal):
    """Per r.l.u. point-group matrix: Cartesian rotation S and atom permutation κ → κ'."""
    A = crystal.conventional_lattice
    rots, trans = crystal.symmetry
    cart = crystal.cartesian_rotations
    x = crystal.positions
    perms = []
    for W, w in zip(rots, trans):
        y = x @ W.T + w
        perm = np.empty(crystal.n_atoms, dtype=np.int64)
        for a in range(crystal.n_atoms):
            d = y[a] - x
            hit = np.nonzero(np.all(np.abs(d - np.round(d)) < 1e-4, axis=1))[0]
            perm[a] = int(hit[0])
        perms.append(perm)
    g_rlu = np.einsum("ij,njk,kl->nil", A, cart, np.linalg.inv(A))
    return g_rlu, cart, np.array(perms)


def _atom_orbits(perms: np.ndarray) -> np.ndarray:
    """Symmetry orbit of every atom under the permutations ``perms`` (n_ops, n_atoms): labels 0, 1, ..."""
    n_at = perms.shape[1]
    label = -np.ones(n_at, dtype=np.int64)
    n = 0
    for a in range(n_at):
        if label[a] < 0:
            label[np.unique(perms[:, a])] = n
            n += 1
    return label


def _composition_table(rots: np.ndarray) -> np.ndarray | None:
    """comp[i, j] = index of rots[i] @ rots[j] in ``rots``, or None when the set is not a group."""
    n = len(rots)
    flat = np.round(rots.reshape(n, 9), 6)
    lut = {tuple(r): i for i, r in enumerate(flat)}
    comp = np.empty((n, n), dtype=np.int64)
    prod = np.round(np.einsum("aij,bjk->abik", rots, rots).reshape(n, n, 9), 6)
    for i in range(n):
        for j in range(n):
            k = lut.get(tuple(prod[i, j]))
            if k is None:
                return None
            comp[i, j] = k
    return comp


def _inverse_index(rots: np.ndarray) -> np.ndarray:
    """Index of the inverse of each rotation in ``rots`` (a group)."""
    n = len(rots)
    flat = np.round(rots.reshape(n, 9), 6)
    lut = {tuple(r): i for i, r in enumerate(flat)}
    return np.array([lut[tuple(np.round(np.linalg.inv(r).reshape(9), 6))] for r in rots], dtype=np.int64)


def _mp_grid_rlu(crystal, n: int) -> np.ndarray:
    """Euphonic's Monkhorst–Pack n³ grid (primitive reciprocal fractions) in conventional r.l.u."""
    k = (2 * (np.arange(n) + 1) - n - 1) / (2 * n)
    frac = np.stack(np.meshgrid(k, k, k, indexing="ij"), -1).reshape(-1, 3)
    to_frac = np.linalg.inv(crystal.conventional_lattice).T @ crystal.lattice.T  # q_frac = q_rlu @ to_frac
    return frac @ np.linalg.inv(to_frac), frac


def _reduce_mesh(crystal, n: int):
    """Irreducible points of the Γ-centred n³ mesh (spglib, time reversal included): (q_rlu, weights)."""
    import spglib

    cell = (crystal.lattice, crystal.positions, crystal.numbers)
    mapping, grid = spglib.get_ir_reciprocal_mesh([n] * 3, cell, is_shift=[0, 0, 0])
    uniq, counts = np.unique(mapping, return_counts=True)
    frac = grid[uniq] / float(n)
    to_frac = np.linalg.inv(crystal.conventional_lattice).T @ crystal.lattice.T  # q_frac = q_rlu @ to_frac
    return frac @ np.linalg.inv(to_frac), counts.astype(float)


@dataclass(frozen=True, eq=False)
class RealForm:
    """The real symmetric block-diagonal form of D(q; θ) that the intensity kernels diagonalise.

    D_blocks(q; θ) = ``Mc[q]`` + Σ_p θ_p ``Mp[p, q]`` (blocks ``bstart``, duplicates ``bdup``), with
    Cartesian eigenvectors x = ``cart`` · ``basis[q]`` · y for the real block eigenvectors y.

    - Centrosymmetric crystals: the inversion basis of :class:`LinearDynamics` (``cart`` = U^H,
      m × m); every mode appears once (``mult`` = 1).
    - Crystals without an inversion centre: the real embedding of the Hermitian D = A + iB,
      [[A, −B], [B, A]] acting on z = [Re x; Im x] (``cart`` = [1, i], m × 2m). Each mode appears
      twice (z and the embedding of i·x, equal |Q·e|² and energy), so intensities and
      Debye–Waller sums carry ``1/mult`` with ``mult`` = 2. The lane kernels then run unchanged on
      2m × 2m blocks.
    """

    Mc: np.ndarray
    Mp: np.ndarray
    nblk: np.ndarray
    bstart: np.ndarray
    bdup: np.ndarray
    basis: np.ndarray
    cart: np.ndarray
    mult: int

    @property
    def n_q(self) -> int:
        return len(self.Mc)


def real_form(dyn: LinearDynamics, theta0: np.ndarray) -> RealForm:
    """The :class:`RealForm` of ``dyn`` (its own real basis, or the real embedding of a complex D)."""
    if dyn.real:
        return RealForm(dyn.Mc, dyn.Mp, dyn.nblk, dyn.bstart, dyn.bdup, dyn.basis, dyn.U.conj().T, 1)
    Mc = np.asarray(dyn.Mc, dtype=complex)
    Mp = np.asarray(dyn.Mp, dtype=complex)

    def embed(x: np.ndarray) -> np.ndarray:
        top = np.concatenate([x.real, -x.imag], axis=-1)
        bot = np.concatenate([x.imag, x.real], axis=-1)
        e = np.concatenate([top, bot], axis=-2)
        return 0.5 * (e + np.swapaxes(e, -1, -2))

    Mc2, Mp2, nblk, bstart, bdup, basis = _block_diagonalise(
        embed(Mc), embed(Mp), np.asarray(theta0, float), return_basis=True
    )
    m = Mc.shape[-1]
    cart = np.concatenate([np.eye(m), 1j * np.eye(m)], axis=1)
    return RealForm(Mc2, Mp2, nblk, bstart, bdup, basis, cart, 2)


# --------------------------------------------------------------------- the model
class PhysicalModel(FreeParameters):
    """Batched coherent one-phonon model of a folded measurement (module docstring for the physics).

    Parameters
    ----------
    space
        The symmetry-reduced FC space (any crystal; without an inversion centre the intensities
        go through the real embedding of the Hermitian D, :class:`RealForm`).
    grid
        The (q, E) grid (evenly spaced energy bins).
    theta_ref
        Shape (n_params,), eV/Å²: the reference θ; parameters not in ``free`` stay here.
    reference
        Optional full reference FC set for D_ref (``theta_ref`` its projection).
    free
        Names of the varied parameters, in θ order; default all.
    coverage
        A :class:`Coverage` on ``grid`` (:func:`coverage_for_run`, :func:`coverage_from_fold`,
        :func:`full_coverage`); default :func:`full_coverage`.
    temperature
        Sample temperature, K (Bose factor and Debye–Waller), >= 0.
    resolution
        :class:`fcinv.experiment.instrument.Instrument` (its FWHM(E)) or :class:`Broadening`;
        default the ARCS-like instrument at Ei = 40 meV.
    dw
        ``"theta"``, ``"reference"`` or ``"none"`` (module docstring).
    dw_mesh
        Monkhorst–Pack mesh size of the Debye–Waller sum (Euphonic's ``mp_grid``).
    corrections
        The fold's :class:`fcinv.experiment.fold.Corrections` to predict (default none).
    scattering_lengths
        ``{symbol: b_fm}`` overriding the Sears table.
    mesh
        Γ-centred mesh of the stability test (as :class:`ForwardModel`).
    e_min_mode
        Modes at or below this energy (meV) are left out (as the simulation does).
    sampling
        ``"bins"``: diagonalise at every distinct 4D-bin position of the coverage (exact fold of
        the one-phonon S at the bin centres); ``"path"``: only at the path points (fast; misses the
        dispersion across the tube); ``"auto"``: ``"bins"`` when the coverage has the positions.
    dw_expansion
        How ``dw="theta"`` applies the change of the Debye–Waller factor: ``"cumulant"`` (default,
        two matrix rows, one Debye–Waller class only; otherwise the series is used) or
        ``"taylor"`` (the order-6 series, exact to 1e-7). Module docstring.
    """

    def __init__(
        self,
        space: FCSpace,
        grid: SpectrumGrid,
        theta_ref,
        *,
        reference: PairFC | None = None,
        free: Sequence[str] | None = None,
        coverage: Coverage | None = None,
        temperature: float = 5.0,
        resolution=None,
        dw: DWMode = "theta",
        dw_mesh: int = 10,
        corrections=None,
        scattering_lengths: dict | None = None,
        mesh: int = 4,
        e_min_mode: float = 0.05,
        sampling: str = "auto",
        dw_expansion: str = "cumulant",
    ):
        from fcinv.experiment.instrument import Instrument

        if not (np.isfinite(temperature) and temperature >= 0):
            raise PhysicalModelError(f"temperature = {temperature} K; pass a sample temperature >= 0 K.")
        if dw not in ("theta", "reference", "none"):
            raise PhysicalModelError(f"dw = {dw!r}; pass 'theta', 'reference' or 'none'.")
        if int(dw_mesh) < 1:
            raise PhysicalModelError(f"dw_mesh = {dw_mesh}; pass a mesh size >= 1.")
        if dw_expansion not in ("cumulant", "taylor"):
            raise PhysicalModelError(f"dw_expansion = {dw_expansion!r}; pass 'cumulant' or 'taylor'.")
        self.space = space
        self.grid = grid
        self.theta_ref = space.check_theta(theta_ref, what="reference theta").copy()
        self.free = list(free) if free is not None else list(space.names)
        if len(set(self.free)) != len(self.free) or not self.free:
            raise ForceConstantError(
                f"free parameters {self.free} must be a non-empty list of distinct names from {space.names}."
            )
        self.free_idx = space.index(self.free)
        self.reference = reference
        self.temperature = float(temperature)
        self.dw = dw
        self.dw_mesh = int(dw_mesh)
        self.dw_expansion = dw_expansion
        self.mesh = mesh
        self.e_min_mode = float(e_min_mode)
        self.corrections = corrections
        e = grid.energy_edges
        steps = np.diff(e)
        if not np.allclose(steps, steps[0], rtol=1e-9, atol=1e-12):
            raise PhysicalModelError(
                "the physical model needs equally spaced energy bins. Build the grid with a constant step."
            )
        cov = coverage if coverage is not None else full_coverage(space.crystal, grid)
        if not isinstance(cov, Coverage):
            raise PhysicalModelError(
                f"coverage is a {type(cov).__name__}; pass a fcinv.forward.physical.Coverage "
                "(coverage_for_run, coverage_from_fold, full_coverage)."
            )
        if not cov.grid.same_as(grid):
            raise PhysicalModelError(
                f"the coverage was made on another grid ({cov.grid.shape} vs the model's {grid.shape}, or "
                "other q-points). "
                "Build the coverage on the model's grid."
            )
        self.coverage = cov
        if sampling not in ("auto", "bins", "path"):
            raise PhysicalModelError(f"sampling = {sampling!r}; pass 'auto', 'bins' or 'path'.")
        if sampling == "bins" and cov.q is None:
            raise PhysicalModelError(
                "sampling='bins' needs a coverage that keeps the 4D-bin positions "
                "(coverage_from_fold/coverage_for_run with sampling='bins')."
            )
        self.sampling = "path" if sampling == "path" or cov.q is None else "bins"
        # resolution table
        res = resolution if resolution is not None else Instrument()
        self.resolution = res
        lo_e, hi_e = min(0.0, float(e[0])), float(e[-1]) + 10.0
        fw_e = np.arange(lo_e, hi_e + 0.01, 0.01)
        if isinstance(res, Broadening):
            fw = res.fwhm0 + res.fwhm1 * np.maximum(fw_e, 0.0)
        elif isinstance(res, Instrument):
            fw = res.fwhm(np.clip(fw_e, 0.0, None))
        else:
            raise PhysicalModelError(
                f"resolution is a {type(res).__name__}; pass an experiment.instrument.Instrument or a "
                "forward.Broadening."
            )
        if not np.all(np.isfinite(fw)) or np.any(fw <= 0):
            raise PhysicalModelError(
                "the resolution FWHM is not positive over the energy range. Check the instrument settings."
            )
        self._fw = (np.ascontiguousarray(fw), float(fw_e[0]), 0.01)
        self._nsig = 5.0

        crystal = space.crystal
        self.path = LinearDynamics(space, grid.q_rlu, self.theta_ref, self.free_idx, reference)
        self._mesh_dyn: LinearDynamics | None = None
        self.b_fm = coherent_lengths(crystal.symbols, scattering_lengths)
        kT = KB_MEV_PER_K * self.temperature
        self._kT = kT
        # Debye–Waller at the reference
        self._dw_ref = np.zeros((crystal.n_atoms, 3, 3))
        self._dw_w_ref_reduced = np.zeros(1)
        #: Debye–Waller classes: atom → class (one symmetry orbit each with dw='theta', else all one)
        self._dw_cls = np.zeros(crystal.n_atoms, dtype=np.int64)
        self._dwdyn = None
        if dw != "none":
            self._setup_dw()
        self._precompute()
        self._efac = self._energy_factor()

    # ------------------------------------------------------------ construction
    @classmethod
    def from_pairs(cls, space: FCSpace, grid: SpectrumGrid, pairs: PairFC, **kw) -> PhysicalModel:
        """Use a full FC set as D_ref, with θ_ref its projection onto ``space``."""
        proj = space.project(pairs)
        return cls(space, grid, proj.theta, reference=pairs, **kw)

    def _dynamics(self, q_rlu: np.ndarray) -> LinearDynamics:
        return LinearDynamics(self.space, q_rlu, self.theta_ref, self.free_idx, self.reference)

    def _setup_dw(self) -> None:
        """Reference W_κ tensors (full grid, symmetrised) and the reduced grid for the per-θ update."""
        crystal = self.space.crystal
        n_at = crystal.n_atoms
        q_full, _ = _mp_grid_rlu(crystal, self.dw_mesh)
        pairs = self.reference if self.reference is not None else self.space.to_pairs(self.theta_ref)
        lam, E = np.linalg.eigh(pairs.dynamical_matrices(q_full))  # Cartesian eigenvectors (n_q, m, modes)
        om = _signed_mev(lam)
        ft = np.where(om >= 0.01, 1.0 / np.where(om >= 0.01, om, 1.0), 0.0)
        if self._kT > 0:
            ft = np.where(om >= 0.01, ft / np.tanh(np.where(om >= 0.01, om, 1.0) / (2 * self._kT)), 0.0)
        Ek = E.reshape(len(q_full), n_at, 3, -1)
        W = np.einsum("qkan,qkbn,qn->kab", Ek, Ek.conj(), ft).real / len(q_full)
        W *= HBAR2_AMU_MEV_A2 / (4.0 * crystal.masses)[:, None, None]
        # symmetrise over the space group (as Euphonic's symmetrise=True)
        _, cart, perms = _cartesian_ops(crystal)
        Ws = np.zeros_like(W)
        for S, p in zip(cart, perms):
            Ws[p] += np.einsum("ab,kbc,dc->kad", S, W, S)
        self._dw_ref = Ws / len(cart)
        if self.dw == "theta":
            iso = np.array([np.trace(w) / 3 for w in self._dw_ref])
            aniso = max(np.abs(w - np.eye(3) * i).max() for w, i in zip(self._dw_ref, iso))
            cls = _atom_orbits(perms)
            spread = max(float(np.ptp(iso[cls == c])) for c in range(cls.max() + 1))
            if aniso > 1e-6 * max(iso.max(), 1e-30) or spread > 1e-6 * max(iso.max(), 1e-30):
                raise PhysicalModelError(
                    "dw='theta' needs every atom's Debye–Waller tensor isotropic (and equal within a "
                    f"symmetry orbit); {crystal.name} has "
                    f"{np.round(iso, 6).tolist()} Å² (anisotropy {aniso:.2e}). Pass dw='reference'."
                )
            self._dw_cls = cls
            q_red, wts = _reduce_mesh(crystal, self.dw_mesh)
            form = real_form(self._dynamics(q_red), self.theta0)
            m = 3 * n_at
            mr = form.cart.shape[1]
            proj = np.zeros((form.n_q, n_at, mr, mr))
            for at in range(n_at):
                Pi = np.zeros((m, m))
                Pi[3 * at : 3 * at + 3, 3 * at : 3 * at + 3] = np.eye(3)
                R = (form.cart.conj().T @ Pi @ form.cart).real
                proj[:, at] = np.einsum("qji,jk,qkl->qil", form.basis, R, form.basis)
            self._dwdyn = (form, np.ascontiguousarray(proj), wts / wts.sum())
            self._dw_w_ref_reduced = self._dw_w(self.theta0[None])[0]
            log.debug("Debye–Waller: %d reduced mesh points of %d", len(q_red), self.dw_mesh**3)

    def _dw_w(self, t: np.ndarray) -> np.ndarray:
        """Isotropic Debye–Waller coefficients w(θ) (Å², W = w Q²) per class, reduced mesh: (B, n_cls)."""
        dyn, proj, wts = self._dwdyn
        tr = pk.dw_traces(
            dyn.Mc,
            dyn.Mp,
            dyn.nblk,
            dyn.bstart,
            dyn.bdup,
            np.ascontiguousarray(t),
            proj,
            wts,
            self._kT,
            EV_A2_AMU_TO_MEV,
            0.01,
            _threads(),
        )
        m = self.space.crystal.masses
        w = tr * HBAR2_AMU_MEV_A2 / (4.0 * m[None]) / 3.0 / dyn.mult  # (B, n_atoms)
        cls = self._dw_cls
        n_cls = int(cls.max()) + 1
        return np.stack([w[:, cls == c].mean(axis=1) for c in range(n_cls)], axis=1)

    def _sample_points(self) -> None:
        """The q-points diagonalised per θ, grouped by output pixel (``sampling``)."""
        cov = self.coverage
        g = self.grid
        self._term_rot = cov.rot
        if self.sampling == "path":
            self._pts_q = g.q_rlu
            self._pts_dyn = real_form(self.path, self.theta0)
            self._pts_pixel = np.arange(g.n_q, dtype=np.int64)
            self._term_point = cov.pixel.astype(np.int64)
        else:
            qt = cov.term_q()
            key = np.concatenate([cov.pixel[:, None], np.round(qt * 1e6).astype(np.int64)], axis=1)
            ukey, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
            inv = inv.ravel()
            pts_q, pts_pix = qt[first], ukey[:, 0]
            # merge the points of one pixel related by a point-group operation: q = h r, so the
            # term (q, g) becomes (r, g·h) with the same Q = g h r + G
            rots = cov.rotations
            comp = _composition_table(rots)
            if comp is not None:
                img = np.einsum("nij,sj->sni", rots, pts_q)  # (n_pts, n_rot, 3): h0 q
                keyi = np.round(img * 1e6).astype(np.int64)
                best = np.zeros(len(pts_q), dtype=np.int64)
                for sidx in range(len(pts_q)):
                    k3 = keyi[sidx]
                    best[sidx] = int(np.lexsort((k3[:, 2], k3[:, 1], k3[:, 0]))[-1])
                rep = keyi[np.arange(len(pts_q)), best]
                key2 = np.concatenate([pts_pix[:, None], rep], axis=1)
                uk2, first2, inv2 = np.unique(key2, axis=0, return_index=True, return_inverse=True)
                inv2 = inv2.ravel()
                h0 = best[inv]  # per term: r = h0 q  →  q = h0⁻¹ r
                h0inv = _inverse_index(rots)[h0]
                self._term_rot = comp[cov.rot, h0inv]
                r_q = img[first2, best[first2]]
                self._term_point = inv2[inv].astype(np.int64)
                pts_q, pts_pix = r_q, uk2[:, 0]
            else:
                self._term_point = inv.astype(np.int64)
            self._pts_pixel = pts_pix.astype(np.int64)
            self._pts_dyn = real_form(self._dynamics(pts_q), self.theta0)
            self._pts_q = pts_q
        self._pstart = np.searchsorted(self._pts_pixel, np.arange(g.n_q + 1)).astype(np.int64)

    def _precompute(self) -> None:
        """Per sample point and energy bin the coverage-weighted structure-factor matrices (packed)."""
        crystal = self.space.crystal
        cov = self.coverage
        n_at = crystal.n_atoms
        m = 3 * n_at
        g_ops, cart, perms = _cartesian_ops(crystal)
        op_of_rot = np.empty(len(cov.rotations), dtype=np.int64)
        for i, gm in enumerate(cov.rotations):
            hit = np.nonzero(np.all(np.abs(g_ops - gm[None]) < 1e-6, axis=(1, 2)))[0]
            if len(hit) == 0:
                raise PhysicalModelError(
                    f"coverage rotation {i} is not in {crystal.name}'s point group. Build the coverage "
                    "with the crystal's point_group_rlu."
                )
            op_of_rot[i] = hit[0]
        self._check_transforms(op_of_rot, cart, perms)
        self._sample_points()
        dyn = self._pts_dyn
        n_pts = len(self._pts_pixel)
        fams = self._dw_families()
        nord = (2 if self._cumulant else DW_ORDER + 1) if self.dw == "theta" else 1
        nk = nord * len(fams)
        g = self.grid
        # packing offsets
        nblk, bstart = dyn.nblk, dyn.bstart
        bpoff = np.zeros_like(bstart)
        npack = np.zeros(n_pts, dtype=np.int64)
        for sidx in range(n_pts):
            sizes = np.diff(bstart[sidx, : nblk[sidx] + 1])
            tri = -(-(sizes * (sizes + 1) // 2) // pk.LANES) * pk.LANES  # padded: whole SIMD vectors
            bpoff[sidx, : nblk[sidx]] = np.concatenate([[0], np.cumsum(tri)[:-1]])
            npack[sidx] = tri.sum()
        poff = np.concatenate([[0], np.cumsum(nk * g.n_e * npack)]).astype(np.int64)
        packed = np.zeros(int(poff[-1]))
        P = int(npack.max())
        allbuf = np.zeros(n_pts * nk * P)
        wsum = np.zeros((g.n_q, g.n_e))
        wq = np.zeros(g.n_q)

        C = 2 * np.pi * np.linalg.inv(crystal.conventional_lattice)  # Q_cart = C @ hkl
        r_cart = crystal.positions @ crystal.lattice
        c = self.b_fm / np.sqrt(crystal.masses)
        Uh = dyn.cart
        corr = self.corrections
        cls = self._dw_cls
        q2max = 0.0
        chunk = 100_000
        # entries are sorted by term (t_idx from np.unique); process terms in chunks
        order = np.argsort(cov.t_idx, kind="stable")
        t_sorted = cov.t_idx[order]
        for t0 in range(0, cov.n_terms, chunk):
            t1 = min(cov.n_terms, t0 + chunk)
            sl = slice(t0, t1)
            qt = self._pts_q[self._term_point[sl]]
            hkl = np.einsum("tij,tj->ti", cov.rotations[self._term_rot[sl]], qt) + cov.zone[sl]
            Qc = hkl @ C.T
            Gc = cov.zone[sl] @ C.T
            q2 = np.einsum("ti,ti->t", Qc, Qc)
            q2max = max(q2max, float(q2.max()))
            ops = op_of_rot[self._term_rot[sl]]
            S = cart[ops]
            Pm = perms[ops]
            StQ = np.einsum("tji,tj->ti", S, Qc)
            u = np.empty((t1 - t0, n_at, 3), dtype=complex)
            for kappa in range(n_at):
                kp = Pm[:, kappa]
                ph = np.exp(-1j * np.einsum("ti,ti->t", Gc, r_cart[kp]))
                dwf = np.exp(-np.einsum("ti,tij,tj->t", Qc, self._dw_ref[kp], Qc))
                u[:, kappa] = (c[kp] * ph * dwf)[:, None] * StQ
            tp = self._term_point[sl]
            # amplitude rows per Debye–Waller class (the atoms of other classes zeroed)
            rows = []
            for cl in range(int(cls.max()) + 1):
                uc = np.where((cls == cl)[None, :, None], u, 0.0).reshape(t1 - t0, m)
                av = np.einsum("ti,ij,tjk->tk", uc, Uh, dyn.basis[tp])
                rows.append((np.ascontiguousarray(av.real), np.ascontiguousarray(av.imag)))
            fac = np.full(t1 - t0, SF_TO_MBARN / (2.0 * n_at) / dyn.mult)
            if corr is not None and corr.q2:
                fac = fac / np.where(q2 > 0, q2, np.inf)
            e0, e1 = np.searchsorted(t_sorted, [t0, t1])
            ent = order[e0:e1]
            te = cov.t_idx[ent] - t0
            ee = cov.e_idx[ent]
            ww = cov.w[ent]
            for fi, (ca, cb, pair_w) in enumerate(fams):
                pk.accumulate_packed(
                    *rows[ca],
                    *rows[cb],
                    np.ascontiguousarray(tp),
                    q2,
                    np.ascontiguousarray(ee),
                    np.ascontiguousarray(te),
                    np.ascontiguousarray(ww),
                    fac * pair_w,
                    nord,
                    len(fams),
                    fi,
                    g.n_e,
                    nblk,
                    bstart,
                    poff,
                    bpoff,
                    npack,
                    packed,
                    allbuf,
                )
            pix = cov.pixel[cov.t_idx[ent]]
            per = ee >= 0
            wsum += np.bincount(pix[per] * g.n_e + ee[per], weights=ww[per], minlength=g.n_q * g.n_e).reshape(
                g.shape
            )
            wq += np.bincount(pix[~per], weights=ww[~per], minlength=g.n_q)
        wsum += wq[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(wsum > 0, 1.0 / np.where(wsum > 0, wsum, 1.0), 0.0)
        for sidx in range(n_pts):
            nps = int(npack[sidx])
            view = packed[poff[sidx] : poff[sidx + 1]].reshape(nk, g.n_e, nps)
            view += allbuf[sidx * nk * P : (sidx + 1) * nk * P].reshape(nk, P)[:, None, :nps]
            view *= inv[self._pts_pixel[sidx]][None, :, None]
        # zero tail: the lane kernel reads whole tiles of four energy rows past a window's end
        self._packed = np.concatenate([packed, np.zeros(4 * P)]).astype(np.float32)
        self._pack = (poff, bpoff, npack)
        self._mask = wsum > 0
        self._q2max = q2max
        log.info(
            "physical model: %d coverage terms, %d entries, %d sample points, %d of %d pixels covered",
            cov.n_terms,
            len(cov.w),
            n_pts,
            int(self._mask.sum()),
            self._mask.size,
        )

    def _dw_families(self) -> list[tuple[int, int, float]]:
        """The Debye–Waller families (class a, class b, weight): |F|² = Σ_f weight d_a d_b Re(F_a* F_b).

        One family for a single class (every centrosymmetric one-orbit crystal: Ge, Nb); three for
        two orbits (GaAs: Ga–Ga, Ga–As, As–As). Row k·n_fam + f of the packed matrices holds order k
        of family f.
        """
        n_cls = int(self._dw_cls.max()) + 1
        return [(a, b, 1.0 if a == b else 2.0) for a in range(n_cls) for b in range(a, n_cls)]

    @property
    def _cumulant(self) -> bool:
        """Whether the Debye–Waller change uses the two-row cumulant form (one class only)."""
        return self.dw == "theta" and self.dw_expansion == "cumulant" and int(self._dw_cls.max()) == 0

    def _dw_coefficients(self, t: np.ndarray) -> np.ndarray:
        """Per sample, the Taylor coefficients x_f^k of exp(x_f Q²) (x_f = −(Δw_a + Δw_b)): (B, nk).

        Cumulant form: (B, 2) = [1, x] (x set to 0 when |x| Q²max < 1e-9).
        """
        B = len(t)
        if self.dw != "theta":
            return np.ones((B, 1))
        fams = self._dw_families()
        dw = self._dw_w(t) - self._dw_w_ref_reduced[None]  # (B, n_cls)
        x = np.stack([-(dw[:, a] + dw[:, b]) for a, b, _ in fams], axis=1)  # (B, n_fam)
        if np.abs(x).max() * self._q2max > 0.6:
            log.warning(
                "Debye–Waller change %.3g Å² is large for the order-%d expansion (|2ΔwQ²| up to %.2f)",
                float(np.abs(dw).max()),
                DW_ORDER,
                float(np.abs(x).max() * self._q2max),
            )
        if self._cumulant:
            x1 = np.where(np.abs(x[:, 0]) * self._q2max < 1e-9, 0.0, x[:, 0])
            return np.stack([np.ones(B), x1], axis=1)
        ck = np.stack([x**kk for kk in range(DW_ORDER + 1)], axis=1)  # (B, order, n_fam)
        # per sample and family, the orders whose term is below 1e-7 of the factor are dropped
        xm = np.abs(x) * self._q2max
        for kk in range(1, DW_ORDER + 1):
            ck[:, kk][xm**kk / math.factorial(kk) < 1e-7] = 0.0
        return ck.reshape(B, -1)

    def _check_transforms(self, op_of_rot: np.ndarray, cart: np.ndarray, perms: np.ndarray) -> None:
        """D(S q + G) = T D(q) T^H for every operation used (one random q each)."""
        crystal = self.space.crystal
        pairs = self.reference if self.reference is not None else self.space.to_pairs(self.theta_ref)
        rng = np.random.default_rng(7)
        n_at = crystal.n_atoms
        A = crystal.conventional_lattice
        for op in np.unique(op_of_rot):
            q = rng.normal(size=3) * 0.3
            S = cart[op]
            g = A @ S @ np.linalg.inv(A)
            Gs = crystal.reciprocal_lattice_rlu(2)
            G = Gs[np.argmax(np.abs(Gs).sum(axis=1) > 0)]
            D0, D1 = pairs.dynamical_matrices(np.stack([q, g @ q + G]))
            T = np.zeros((3 * n_at, 3 * n_at), dtype=complex)
            Gc = 2 * np.pi * np.linalg.inv(A) @ G
            r = crystal.positions @ crystal.lattice
            for kappa in range(n_at):
                kp = perms[op][kappa]
                T[3 * kp : 3 * kp + 3, 3 * kappa : 3 * kappa + 3] = np.exp(-1j * Gc @ r[kp]) * S
            err = np.abs(T @ D0 @ T.conj().T - D1).max()
            if err > 1e-8 * max(np.abs(D1).max(), 1e-30):
                raise PhysicalModelError(
                    f"symmetry operation {op} does not map D(q) onto D(Sq+G) (error {err:.2e}); the "
                    "crystal's symmetry and FC set disagree."
                )

    def _energy_factor(self) -> np.ndarray:
        e = self.grid.energy
        f = np.ones(self.grid.n_e)
        corr = self.corrections
        if corr is not None:
            if corr.bose_temperature is not None:
                if not corr.bose_temperature > 0:
                    raise PhysicalModelError(
                        f"Bose correction temperature {corr.bose_temperature} K; pass a positive temperature."
                    )
                f = f * -np.expm1(-e / (KB_MEV_PER_K * corr.bose_temperature))
            if corr.energy:
                f = f * np.abs(e)
        return np.ascontiguousarray(f)

    @property
    def mask(self) -> np.ndarray:
        """Pixels covered by the measurement, shape (n_q, n_E) bool (elsewhere the spectra are 0)."""
        return self._mask.copy()

    @property
    def energy_factor(self) -> np.ndarray:
        """The corrections' per-energy factor f_j, shape (n_E,) (ones without corrections)."""
        return self._efac.copy()

    # ---------------------------------------------------------------- physics
    def frequencies(self, theta, q_rlu: np.ndarray | None = None) -> np.ndarray:
        """Signed phonon energies, shape (B, n_q, n_modes), meV (negative = imaginary)."""
        t = self.check(theta)
        dyn = self.path if q_rlu is None else self._dynamics(q_rlu)
        return _signed_mev(dyn.omega2(t))

    def eigenvectors(self, theta, q_rlu: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Energies (B, n_q, m) meV ascending and Cartesian eigenvectors (B, n_q, m, m) complex (columns), "
        "bond phase convention."""
        t = self.check(theta)
        dyn = self.path if q_rlu is None else self._dynamics(q_rlu)
        vals, E = dyn.eigh(t)  # real Jacobi in the inversion basis, or the complex Hermitian one
        return _signed_mev(vals), E

    def debye_waller(self, theta) -> np.ndarray:
        """Isotropic Debye–Waller coefficient w (Å², exponent W = w|Q|²) per sample.

        ``dw='theta'`` only: the reference tensor's w plus the change computed on the reduced mesh.
        Shape (B,) when every atom has the same w (one symmetry orbit: Ge, Nb), else (B, n_atoms).
        """
        w = self._debye_waller_atoms(theta)
        return w[:, 0] if int(self._dw_cls.max()) == 0 else w

    def _debye_waller_atoms(self, theta) -> np.ndarray:
        """Per sample and atom, the isotropic w (Å²) with ``dw='theta'``: (B, n_atoms)."""
        if self.dw != "theta":
            raise PhysicalModelError(f"debye_waller(theta) needs dw='theta' (this model has dw={self.dw!r}).")
        t = self.check(theta)
        iso = np.array([np.trace(w) / 3 for w in self._dw_ref])
        change = self._dw_w(t) - self._dw_w_ref_reduced[None]  # (B, n_cls)
        return iso[None] + change[:, self._dw_cls]

    def structure_factor(self, theta, hkl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mode energies and one-phonon structure factors at full Q-points, computed directly at Q.

        A plain-numpy route independent of the coverage precompute and of the compiled eigen-solver:
        LAPACK eigenvectors of D(Q) itself (bond phase convention, so
        F_ν* = Σ_κ b_κ m_κ^{-1/2} e^{−W_κ(Q)} Q·e_κν(Q)); Euphonic's definition |F|²/(2Nω) with the
        model's Debye–Waller factor, no Bose factor.

        Parameters
        ----------
        theta
            (k,) or (B, k) varied parameters, eV/Å².
        hkl
            Shape (n, 3) float64, conventional r.l.u. (full Q, not reduced).

        Returns
        -------
        energies, sf
            Shape (B, n, m): signed meV (ascending) and mbarn per atom (0 for modes <= ``e_min_mode``).
        """
        t = self.check(theta)
        crystal = self.space.crystal
        hkl = np.atleast_2d(np.asarray(hkl, float))
        # D(Q; θ) = D_ref(Q) + Σ_p (θ − θ_ref)_p B_p(Q) in the Cartesian basis, LAPACK eigh
        units = self.space.unit_pairs()
        B = np.stack([units[i].dynamical_matrices(hkl) for i in self.free_idx])  # (k, n, m, m)
        D_ref = (
            self.reference if self.reference is not None else self.space.to_pairs(self.theta_ref)
        ).dynamical_matrices(hkl)
        D = D_ref[None] + np.einsum("bp,pqij->bqij", t - self.theta0[None], B)
        lam, E = np.linalg.eigh(D)
        om = _signed_mev(lam)
        Qc = hkl @ (2 * np.pi * np.linalg.inv(crystal.conventional_lattice)).T
        n_at = crystal.n_atoms
        Ek = E.reshape(len(t), len(hkl), n_at, 3, -1)
        if self.dw == "theta":
            w = self._debye_waller_atoms(t)  # (B, n_atoms)
            dwf = np.exp(-w[:, None, :] * np.einsum("qi,qi->q", Qc, Qc)[None, :, None])  # (B, n, n_atoms)
        else:
            dwf = np.broadcast_to(
                np.exp(-np.einsum("qi,kij,qj->qk", Qc, self._dw_ref, Qc))[None], (len(t), len(hkl), n_at)
            )
        c = self.b_fm / np.sqrt(crystal.masses)
        F = np.einsum("k,bqk,qa,bqkan->bqn", c, dwf, Qc, Ek)
        with np.errstate(divide="ignore", invalid="ignore"):
            sf = np.where(om > self.e_min_mode, np.abs(F) ** 2 / np.where(om > 0, om, 1.0), 0.0)
        return om, sf * SF_TO_MBARN / (2.0 * n_at)

    def spectra(self, theta, *, return_frequencies: bool = False):
        """Folded one-phonon images, shape (B, n_q, n_E) float32, mbarn/meV per atom (and energies (B, "
        "n_q, m) meV if asked)."""
        t = self.check(theta)
        B = len(t)
        g = self.grid
        e = g.energy_edges
        ck = self._dw_coefficients(t)
        # whole groups of LANES θ side by side in SIMD lanes; a remainder of at least PAD_FROM is
        # padded to a group (copies of its last θ), a smaller one goes through the one-θ kernel
        L = pk.LANES
        n_lane = B // L * L
        rest = B - n_lane
        if rest >= PAD_FROM:
            n_lane, rest = n_lane + L, 0
        Bp = max(B, n_lane)
        if Bp > B:
            t = np.concatenate([t, np.repeat(t[-1:], Bp - B, axis=0)])
            ck = np.concatenate([ck, np.repeat(ck[-1:], Bp - B, axis=0)])
        out = np.zeros((Bp, g.n_q, g.n_e), dtype=np.float32)
        d = self._pts_dyn
        fw_tab, fw_e0, fw_de = self._fw
        poff, bpoff, npack = self._pack
        parts = [
            (pk.physical_spectra_lanes, slice(0, n_lane)),
            (pk.physical_spectra, slice(n_lane, n_lane + rest)),
        ]
        for kernel, sl in parts:
            if sl.stop <= sl.start:
                continue
            part = np.zeros((sl.stop - sl.start, g.n_q, g.n_e), dtype=np.float32)
            kernel(
                d.Mc,
                d.Mp,
                d.nblk,
                d.bstart,
                d.bdup,
                np.ascontiguousarray(t[sl]),
                EV_A2_AMU_TO_MEV,
                float(e[0]),
                float(e[1] - e[0]),
                g.n_e,
                fw_tab,
                fw_e0,
                fw_de,
                self._nsig,
                *_CDF,
                self._pstart,
                poff,
                bpoff,
                npack,
                self._packed,
                np.ascontiguousarray(ck[sl]),
                self._cumulant,
                self._kT,
                self.e_min_mode,
                self._efac,
                part,
                _threads(),
            )
            out[sl] = part
        out = out[:B]
        t = t[:B]
        if return_frequencies:
            freqs = _signed_mev(self.path.omega2(t))
        return (out, freqs) if return_frequencies else out

    def lowest_energy(self, theta) -> np.ndarray:
        """Lowest signed mode energy over the path and the stability mesh, per sample: (B,) meV."""
        t = self.check(theta)
        if self._mesh_dyn is None:
            self._mesh_dyn = self._dynamics(mesh_qpoints(self.space, self.mesh))
        lo = np.minimum(self.path.min_omega2(t), self._mesh_dyn.min_omega2(t))
        return _signed_mev(lo)

    def is_stable(self, theta, tol_meV: float = STABILITY_TOL_MEV) -> np.ndarray:
        """True where no mode on the path or the mesh is imaginary beyond ``tol_meV``: (B,) bool."""
        return self.lowest_energy(theta) > -tol_meV

    def describe(self) -> dict:
        """JSON-able description stored with datasets and models."""
        from fcinv.experiment.instrument import Instrument

        res = self.resolution
        corr = self.corrections
        return {
            "material": self.space.crystal.name,
            "cutoff_A": self.space.cutoff,
            "all_names": list(self.space.names),
            "free": list(self.free),
            "theta_ref": self.theta_ref.tolist(),
            "reference": "full FC set" if self.reference is not None else "theta_ref",
            "intensity": "physical: coherent one-phonon |F|^2 (n+1)/omega, Debye-Waller, folded with the "
            "coverage weights",
            "units": "mbarn/meV per atom",
            "temperature_K": self.temperature,
            "debye_waller": self.dw,
            "dw_expansion": ("cumulant" if self._cumulant else "taylor") if self.dw == "theta" else None,
            "dw_mesh": self.dw_mesh,
            "resolution": res.describe() if isinstance(res, Instrument) else {"broadening": res.as_dict()},
            "corrections": corr.names() if corr is not None else [],
            "scattering_lengths_fm": {
                s: [float(b.real), float(b.imag)] for s, b in zip(self.space.crystal.symbols, self.b_fm)
            },
            "coverage": self.coverage.describe(),
            "sampling": self.sampling,
            "n_sample_points": len(self._pts_pixel),
            "stability_mesh": self.mesh,
            "stability_tol_meV": STABILITY_TOL_MEV,
        }


# ---------------------------------------------------------------------- factory
_PHYSICAL_ONLY = (
    "coverage",
    "temperature",
    "resolution",
    "dw",
    "dw_mesh",
    "corrections",
    "scattering_lengths",
    "e_min_mode",
    "sampling",
)


def make_forward(space: FCSpace, grid: SpectrumGrid, theta_ref, *, intensity: str = "paper", **kw):
    """A forward model by intensity convention.

    ``"paper"``: :class:`ForwardModel` (every mode weight 1); ``"physical"``: :class:`PhysicalModel`.

    Keyword arguments go to the chosen class; physical-only ones (coverage, temperature,
    resolution, dw, ...) are refused for ``"paper"``.
    """
    if intensity == "paper":
        bad = [k for k in kw if k in _PHYSICAL_ONLY]
        if bad:
            raise PhysicalModelError(
                f"{', '.join(bad)} only apply to intensity='physical'; drop them or pass "
                "intensity='physical'."
            )
        return ForwardModel(space, grid, theta_ref, **kw)
    if intensity == "physical":
        if "broadening" in kw:
            kw["resolution"] = kw.pop("broadening")
        return PhysicalModel(space, grid, theta_ref, **kw)
    raise PhysicalModelError(
        f"intensity = {intensity!r}; pass 'paper' (weight-1 modes) or 'physical' (coherent one-phonon)."
    )
