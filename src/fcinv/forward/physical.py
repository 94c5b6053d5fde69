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
  (:func:`~fcinv.forward._phys_lanes.physical_spectra_lanes`: the blocks of eight θ are
  diagonalised together and each quadratic form is a 4-row × 8-lane tile); the packed
  triangles are padded to whole vectors; the tiles run in float32 (vectorised along the triangle).
  A batch is grouped into lanes in order of stiffness (θ · dΣ tr D/dθ) so that a group's modes share
  their energy windows; each thread takes a pixel range of equal sample-point count.
  Where the time goes (Ge, 871 points, 300 K, ±10 % θ, one thread, CPU time per spectrum, the shared
  2-core AMD EPYC (Zen 5, AVX-512) at load 5.5, noisy to ±15 %; cut-off runs of the kernel): 0.65 ms the
  eigen-decompositions (matrix assembly 0.09), 0.15 ms the per-mode set-up and outer products,
  0.36 ms the quadratic-form tiles (all rows, the Debye–Waller ones included), 0.21 ms the
  bin-integrated Gaussians and the rows' combination, 0.04 ms the Debye–Waller coefficients: 1.4 ms in
  all (2.2–2.4 ms before the lane Jacobi's 1e-16 convergence, the stiffness order, the gather-free
  tiles and the run-time lane count, same window). numba leaves LLVM's SLP vectoriser off, so only
  loops with a run-time trip count vectorise (hence the lane count is read at run time).
- Debye–Waller (``dw``): W_κ = ħ/(4 m_κ N_q) Σ_qν e_κν e_κν^H coth(ħω/2k_BT)/ω (Euphonic's
  ``calculate_debye_waller``; modes < 0.01 meV left out; 1/ω at T = 0). At the reference it is
  summed on Euphonic's shifted Monkhorst–Pack ``dw_mesh``³ grid and symmetrised, as the
  simulation does. ``"theta"`` (default) follows θ: the change Δw = w(θ) − w(θ_ref) of the
  isotropic coefficient (W = w|Q|²) is summed on the irreducible points of the Γ-centred
  ``dw_mesh``³ grid (spglib; ~50 points for Ge instead of 1000) and applied as
  exp(−2ΔwQ²) = Σ_k (−2ΔwQ²)^k/k! (order 6, truncation < 1e-6 for |2ΔwQ²| < 0.25, warned
  beyond). The reference factor exp(−Q·W_κ·Q) keeps the full tensor, so anisotropic sites (hcp
  Mg, site −6m2: in-plane and c-axis W differ by 2–3 %) are exact at θ_ref; only the change is
  isotropic, exp(−Δw_κ Q²) with Δw_κ = Δtr W_κ / 3 (an approximation there, exact on cubic sites:
  Ge, Nb, GaAs). Measured against Euphonic for a four-shell Mg spring model
  (tests/forward/test_physical_anisotropic_dw.py), largest per-Q intensity error over Q up to
  4.9 Å⁻¹: θ_ref 9e-10; 1.05 θ_ref 4.4e-5 at 5 K, 5.2e-4 at 300 K (W moves nearly isotropically,
  3 % of the change); a random ±5 % θ that moves the in-plane and c-axis W oppositely 1.5e-3 at
  5 K, 4.6e-3 at 300 K, the size of the change itself (no better than dw="reference" there).
  Over the prepared Mg model's whole training domain (5 K, |Q|² up to 106 Å⁻²) up to 4.3e-2 of
  the factor at the largest |Q| (docs/new-material.md); the error grows as |Q|².
  Each orbit's W must share its trace (else refused). With several symmetry
  orbits (GaAs: Ga and As) each orbit c has its own Δw_c and the matrices come in families (a, b),
  a ≤ b, each expanded in exp(−(Δw_a + Δw_b)Q²) (three families for two orbits).
  ``dw_expansion="cumulant"`` (default for one class) keeps only the rows k = 0, 1, 2,
  r_k = Σ_t w_t |Q_t|^{2k}/k! |a_t·y|², and applies r₀ exp(x κ₁ + x² κ₂/2) (x = −2Δw) with the
  cumulants κ₁ = r₁/r₀ and κ₂ = 2r₂/r₀ − κ₁² of the intensity-weighted |Q|² of each mode and bin:
  exact to second order in x (the row k = 2 is skipped for a θ whose first-order bound
  (|x|Q²max)²/8 is below 1e-4 of each pixel). Measured against the order-6 series (``"taylor"``) on the
  120-orientation Ge run over ±10 % θ: 6.7e-5 of the peak at 300 K (|x|Q²max up to 0.34; the
  first-order form alone: 3.7e-3, worst at Γ where the zones' |Q|² spread most). It needs 2–3 rows
  where the series needs 3–7, so the quadratic forms and the precomputed matrices shrink.
  ``"reference"`` keeps the
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
kernel (benchmark, θ within ±10 %, 300 K coverage, 2 threads, the 2-CPU machine shared with other
jobs, so about one core): 711 spectra/s wall and 718 per CPU-second at load average 6.5; a later run
(with the run-time lane count) 445 wall and 684 per CPU-second at load 5.7 (172 wall and 347 per
CPU-second before, load 8.1). GaAs against Ge per sample
point and θ (path sampling, 300 K): ×2.9 with ``dw="none"`` (the 2m embedding), ×11 with
``dw="theta"`` (three Debye–Waller families in the order-6 series).

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
from collections.abc import Sequence
from typing import Literal

import numpy as np

from fcinv.errors import ForceConstantError
from fcinv.fcspace import FCSpace, PairFC
from fcinv.forward import _phys_kernels as pk
from fcinv.forward import _phys_lanes as pl
from fcinv.forward._phys_common import (
    DW_ORDER,
    HBAR2_AMU_MEV_A2,
    SF_TO_MBARN,
    PhysicalModelError,
    RealForm,
    real_form,
)
from fcinv.forward._phys_dw import DebyeWallerMixin
from fcinv.forward._phys_precompute import CoveragePrecomputeMixin
from fcinv.forward.coverage import Coverage, coverage_for_run, coverage_from_fold, full_coverage
from fcinv.forward.model import (
    _CDF,
    STABILITY_TOL_MEV,
    Broadening,
    ForwardModel,
    FreeParameters,
    LinearDynamics,
    _signed_mev,
    _threads,
    mesh_qpoints,
)
from fcinv.forward.scattering import coherent_lengths
from fcinv.grid import SpectrumGrid
from fcinv.units import EV_A2_AMU_TO_MEV, KB_MEV_PER_K

__all__ = [
    "DW_ORDER",
    "HBAR2_AMU_MEV_A2",
    "PAD_FROM",
    "SF_TO_MBARN",
    "Coverage",
    "PhysicalModel",
    "PhysicalModelError",
    "RealForm",
    "coverage_for_run",
    "coverage_from_fold",
    "full_coverage",
    "make_forward",
    "real_form",
]

log = logging.getLogger(__name__)

#: A batch remainder (beyond whole groups of ``LANES`` θ) of at least this many is padded to a
#: group for the lane kernel; a smaller one goes through the one-θ kernel (cheaper for 1–5 θ).
PAD_FROM = 6

DWMode = Literal["theta", "reference", "none"]


# --------------------------------------------------------------------- the model
class PhysicalModel(DebyeWallerMixin, CoveragePrecomputeMixin, FreeParameters):
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
        two or three matrix rows, one Debye–Waller class only; otherwise the series is used) or
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
        self.scattering_lengths = scattering_lengths
        self.b_fm = coherent_lengths(crystal.symbols, scattering_lengths)
        kT = KB_MEV_PER_K * self.temperature
        self._kT = kT
        # Debye–Waller at the reference
        self._dw_ref = np.zeros((crystal.n_atoms, 3, 3))
        self._dw_anisotropy = 0.0
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

    def rebuilt(self, space: FCSpace, theta_ref, *, free: Sequence[str] | None = None) -> PhysicalModel:
        """The same measurement (grid, coverage, temperature, resolution, Debye–Waller settings,
        corrections, scattering lengths, sampling) about another reference θ, in ``space``
        (which may hold more or fewer shells), with ``free`` the free names (default: all).

        No ``reference`` FC set is carried over: the new model's D_ref is ``theta_ref`` alone.
        """
        return type(self)(
            space,
            self.grid,
            theta_ref,
            free=free,
            coverage=self.coverage,
            temperature=self.temperature,
            resolution=self.resolution,
            dw=self.dw,
            dw_mesh=self.dw_mesh,
            corrections=self.corrections,
            scattering_lengths=self.scattering_lengths,
            mesh=self.mesh,
            e_min_mode=self.e_min_mode,
            sampling=self.sampling,
            dw_expansion=self.dw_expansion,
        )

    def _dynamics(self, q_rlu: np.ndarray) -> LinearDynamics:
        return LinearDynamics(self.space, q_rlu, self.theta_ref, self.free_idx, self.reference)

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
        # the reference tensors in full (anisotropic where the site is: hcp Mg), times the isotropic
        # θ-change exp(−Δw_κ Q²) with dw='theta'
        dwf = np.broadcast_to(
            np.exp(-np.einsum("qi,kij,qj->qk", Qc, self._dw_ref, Qc))[None], (len(t), len(hkl), n_at)
        )
        if self.dw == "theta":
            iso = np.trace(self._dw_ref, axis1=1, axis2=2) / 3
            dw = self._debye_waller_atoms(t) - iso[None]  # (B, n_atoms)
            dwf = dwf * np.exp(-dw[:, None, :] * np.einsum("qi,qi->q", Qc, Qc)[None, :, None])
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
        # θ of similar stiffness side by side: the lanes of a group then share most of their modes'
        # energy windows (each lane's result is the same in any group; only the union window shrinks)
        order = np.argsort(t @ self._stiffness, kind="stable") if B > pl.LANES else None
        if order is not None:
            t = t[order]
        ck = self._dw_coefficients(t)
        # whole groups of LANES θ side by side in SIMD lanes; a remainder of at least PAD_FROM is
        # padded to a group (copies of its last θ), a smaller one goes through the one-θ kernel
        L = pl.LANES
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
            (pl.physical_spectra_lanes, slice(0, n_lane)),
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
                self._pixel_split(_threads()),
            )
            out[sl] = part
        out = out[:B]
        t = t[:B]
        if order is not None:
            back = np.empty_like(order)
            back[order] = np.arange(B)
            out, t = out[back], t[back]
        if return_frequencies:
            freqs = _signed_mev(self.path.omega2(t))
        return (out, freqs) if return_frequencies else out

    def _pixel_split(self, nthreads: int) -> np.ndarray:
        """Pixel ranges of the kernels' threads, (nthreads + 1,) int64: equal numbers of sample points
        (2–16 per pixel for the Ge run), not of pixels, so that no thread waits on a heavier share."""
        ps = self._pstart
        cuts = np.searchsorted(ps, np.linspace(0, ps[-1], max(int(nthreads), 1) + 1)[1:-1])
        return np.concatenate([[0], cuts, [len(ps) - 1]]).astype(np.int64)

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
