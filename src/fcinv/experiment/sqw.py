"""The phonon side of the simulated experiment: the crystal as Euphonic sees it, its force constants
(phonopy files or arrays), the coherent one-phonon S(Q, E) binned into the histogram, and the
coverage of an orientation (module docstring of :mod:`fcinv.experiment.simulate`, where every name
here stays importable too)."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from fcinv.errors import DataError, ForceConstantError, StructureError, describe_exception, require
from fcinv.experiment._kernels import coverage_kernel
from fcinv.experiment.geometry import rotation_y
from fcinv.experiment.instrument import Instrument
from fcinv.units import KB_MEV_PER_K

log = logging.getLogger(__name__)

#: Q-points per Euphonic structure-factor call.
_SF_CHUNK = 100_000


# ------------------------------------------------------------------------ the crystal
@dataclass(frozen=True, eq=False)
class ExperimentCrystal:
    """The crystal as the experiment sees it.

    Parameters
    ----------
    primitive_lattice
        Shape (3, 3) float64, Å: primitive vectors as rows (the frame of the force constants).
    conventional_lattice
        Shape (3, 3) float64, Å: conventional vectors as rows, same Cartesian frame.
    centering
        ``"F"``, ``"I"`` or ``"P"``: fixes the zone centres in conventional r.l.u.
    rotations
        Shape (n_ops, 3, 3): point group acting on conventional r.l.u.
    name
        Informational.
    """

    primitive_lattice: np.ndarray
    conventional_lattice: np.ndarray
    centering: str
    rotations: np.ndarray
    name: str = ""

    @classmethod
    def from_cell(
        cls,
        lattice: np.ndarray,
        positions: np.ndarray,
        numbers: Sequence[int],
        *,
        name: str = "",
        symprec: float = 1e-4,
    ) -> ExperimentCrystal:
        """The package's :class:`~fcinv.crystal.Crystal` of the cell (point group, centering), in the
        input frame.

        The point group and the centering come from :class:`~fcinv.crystal.Crystal` (one place);
        only the conventional cell is re-expressed in the frame of ``lattice`` (the force constants').
        """
        import spglib

        from fcinv.crystal import Crystal

        lattice = np.asarray(lattice, dtype=float)
        crystal = Crystal.from_cell(lattice, positions, numbers, name=name, symprec=symprec)
        if crystal.centering not in ("F", "I", "P"):
            raise StructureError(
                f"'{name}' has a {crystal.centering}-centred lattice ({crystal.spacegroup[0]}); the "
                "experiment simulation supports P, F and I lattices."
            )
        ds = spglib.get_symmetry_dataset(
            (lattice, np.asarray(positions, float), np.asarray(numbers, int)), symprec=symprec
        )
        conv = np.linalg.inv(np.asarray(ds.transformation_matrix, float)).T @ lattice
        return cls(
            primitive_lattice=lattice,
            conventional_lattice=conv,
            centering=crystal.centering,
            rotations=crystal.point_group_rlu,
            name=name,
        )

    @property
    def reciprocal_cell(self) -> np.ndarray:
        """Rows: conventional reciprocal vectors (1/Å, with 2π); Q = hkl @ reciprocal_cell."""
        return 2 * np.pi * np.linalg.inv(self.conventional_lattice).T

    def rlu_to_prim_frac(self, hkl: np.ndarray) -> np.ndarray:
        """Conventional r.l.u. → fractional coordinates of the primitive reciprocal lattice."""
        return np.asarray(hkl, float) @ np.linalg.inv(self.conventional_lattice).T @ self.primitive_lattice.T

    def b_matrix(self) -> np.ndarray:
        """B (1/Å, no 2π) in the crystal Cartesian frame: B @ hkl = Q/2π."""
        return np.linalg.inv(self.conventional_lattice)


# ---------------------------------------------------------------- force constants
def load_force_constants(
    force_constants: str | Path, structure: str | Path, supercell: Sequence[int] | np.ndarray
):
    """Phonopy FORCE_CONSTANTS (or force_constants.hdf5) + POSCAR + supercell → (Euphonic "
    "ForceConstants, ExperimentCrystal)."""
    phonopy = require("phonopy", "experiment", "reading phonopy force constants")
    fc_path, st_path = Path(force_constants), Path(structure)
    for p, what in ((fc_path, "force-constant"), (st_path, "structure")):
        if not p.is_file():
            raise ForceConstantError(
                f"{what} file '{p}' does not exist. Pass phonopy's FORCE_CONSTANTS and the POSCAR it "
                "belongs to."
            )
    smat = _supercell_matrix(supercell)
    try:
        ph = phonopy.load(
            supercell_matrix=smat,
            primitive_matrix="P",  # the cell as given (phonopy 4 resolves None to "auto")
            unitcell_filename=str(st_path),
            force_constants_filename=str(fc_path),
            produce_fc=False,
            log_level=0,
        )
    except Exception as exc:  # noqa: BLE001 - phonopy raises many kinds of errors for malformed files
        msg = describe_exception(exc)
        raise ForceConstantError(
            f"phonopy could not read '{fc_path}' with '{st_path}' and supercell "
            f"{smat.diagonal().tolist()}: {msg}. Check that the supercell matches the FC file."
        ) from None
    if ph.force_constants is None:
        raise ForceConstantError(
            f"'{fc_path}' holds no force constants. Pass phonopy's FORCE_CONSTANTS file."
        )
    return _euphonic_from_phonopy(ph), ExperimentCrystal.from_cell(
        ph.unitcell.cell, ph.unitcell.scaled_positions, ph.unitcell.numbers, name=st_path.stem
    )


def force_constants_from_array(
    fc_array: np.ndarray,
    lattice: np.ndarray,
    positions: np.ndarray,
    numbers: Sequence[int],
    supercell: Sequence[int] | np.ndarray,
    masses: Sequence[float] | None = None,
):
    """A full phonopy-layout FC array (e.g. ``FCSpace.to_phonopy(θ, ...)``) → (Euphonic
    ForceConstants, ExperimentCrystal).

    Parameters
    ----------
    fc_array
        Shape (n_prim, n_super, 3, 3) or (n_super, n_super, 3, 3), eV/Å², phonopy's layout for
        the supercell ``supercell`` of the unit cell (``lattice``, ``positions``, ``numbers``).
    """
    phonopy = require("phonopy", "experiment", "building force constants")
    from phonopy.structure.atoms import PhonopyAtoms

    fc = np.asarray(fc_array, dtype=float)
    unit = PhonopyAtoms(
        numbers=list(numbers),
        cell=np.asarray(lattice, float),
        scaled_positions=np.asarray(positions, float),
        masses=None if masses is None else list(masses),
    )
    ph = phonopy.Phonopy(
        unit, supercell_matrix=_supercell_matrix(supercell), primitive_matrix="P", log_level=0
    )
    n_s = len(ph.supercell)
    if fc.ndim != 4 or fc.shape[1:] != (n_s, 3, 3) or fc.shape[0] not in (len(ph.primitive), n_s):
        raise ForceConstantError(
            f"force constants have shape {fc.shape}; the {n_s}-atom supercell needs "
            f"({len(ph.primitive)} or {n_s}, {n_s}, 3, 3). Check the supercell."
        )
    ph.force_constants = fc
    return _euphonic_from_phonopy(ph), ExperimentCrystal.from_cell(
        ph.unitcell.cell, ph.unitcell.scaled_positions, ph.unitcell.numbers
    )


def _supercell_matrix(supercell) -> np.ndarray:
    s = np.asarray(supercell, dtype=int)
    if s.shape == (3,):
        s = np.diag(s)
    if s.shape != (3, 3) or abs(round(np.linalg.det(s))) < 1:
        raise ForceConstantError(
            f"supercell {np.asarray(supercell).tolist()} is not 3 integers or a non-singular 3x3 "
            "matrix. Pass e.g. 4 4 4."
        )
    return s


def _euphonic_from_phonopy(ph):
    euphonic = require("euphonic", "experiment", "the simulated experiment (Euphonic structure factors)")
    with tempfile.TemporaryDirectory() as td:
        ph.save(os.path.join(td, "phonopy.yaml"), settings={"force_constants": True})
        return euphonic.ForceConstants.from_phonopy(path=td, summary_name="phonopy.yaml")


# ------------------------------------------------------------------ phonon physics
def one_phonon(
    fc, crystal: ExperimentCrystal, hkl: np.ndarray, *, temperature: float, dw_mesh: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Mode energies and Euphonic structure factors at Q-points.

    Parameters
    ----------
    fc
        ``euphonic.ForceConstants``.
    hkl
        Shape (n, 3) float64, conventional r.l.u. (full Q, not reduced).
    temperature
        K, for the Debye–Waller factor (from a ``dw_mesh``³ Monkhorst–Pack grid).

    Returns
    -------
    energies, sf
        Shape (n, n_modes) float64: mode energies (meV) and |F|²/ω structure factors (mbarn,
        Euphonic's definition, Debye–Waller included, Bose factor not).
    """
    euphonic = require("euphonic", "experiment", "the simulated experiment")
    from euphonic.util import mp_grid

    ureg = euphonic.ureg
    kw = _euphonic_kw(fc)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="More than one OpenMP")
        dw = None
        if temperature > 0:
            mesh = fc.calculate_qpoint_phonon_modes(mp_grid([dw_mesh] * 3), asr="reciprocal", **kw)
            dw = mesh.calculate_debye_waller(temperature * ureg("K"))
        frac = crystal.rlu_to_prim_frac(hkl)
        n = len(frac)
        nm = 3 * fc.crystal.n_atoms
        energies = np.empty((n, nm))
        sf = np.empty((n, nm))
        for a in range(0, n, _SF_CHUNK):
            modes = fc.calculate_qpoint_phonon_modes(
                frac[a : a + _SF_CHUNK], asr="reciprocal", reduce_qpts=True, **kw
            )
            s = modes.calculate_structure_factor(dw=dw)
            energies[a : a + _SF_CHUNK] = s.frequencies.to("meV").magnitude
            sf[a : a + _SF_CHUNK] = s.structure_factors.to("mbarn").magnitude
    return energies, sf


def _euphonic_kw(fc) -> dict:
    try:
        import euphonic._euphonic  # noqa: F401

        return {"use_c": True, "n_threads": min(2, os.cpu_count() or 1)}
    except ImportError:  # pragma: no cover - depends on the Euphonic build
        log.warning("Euphonic's C extension is not available; using the slower Python path")
        return {"use_c": False}


def binned_sqw(
    energies: np.ndarray,
    sf: np.ndarray,
    q_row: np.ndarray,
    e_lo: np.ndarray,
    e_hi: np.ndarray,
    *,
    temperature: float,
    instrument: Instrument,
    e_min_mode: float = 0.05,
) -> np.ndarray:
    """S averaged over energy bins: Σ_ν sf_ν (n_ν+1) ∫_bin G(E − ω_ν; σ(ω_ν)) dE / ΔE.

    Parameters
    ----------
    energies, sf
        Shape (n_q, n_modes) from :func:`one_phonon`.
    q_row
        Shape (n,) int: which Q-point each entry belongs to.
    e_lo, e_hi
        Shape (n,) float64, meV: the entry's energy-bin edges.

    Returns
    -------
    Shape (n,) float64, mbarn/meV.
    """
    w = energies
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        nb = 1.0 / np.expm1(w / (KB_MEV_PER_K * temperature)) if temperature > 0 else np.zeros_like(w)
    amp = np.where(w > e_min_mode, sf * (nb + 1.0), 0.0)
    sig = instrument.fwhm(np.clip(w, 0, None)) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    out = np.zeros(len(q_row))
    width = e_hi - e_lo
    for nu in range(w.shape[1]):
        wn, sn, an = w[q_row, nu], sig[q_row, nu], amp[q_row, nu]
        out += an * (ndtr((e_hi - wn) / sn) - ndtr((e_lo - wn) / sn))
    return out / width


# -------------------------------------------------------------------------- coverage
def coverage(
    hkl: np.ndarray,
    ub: np.ndarray,
    q_step: Sequence[float],
    e_edges: np.ndarray,
    instrument: Instrument,
    psi: np.ndarray,
) -> dict[str, np.ndarray]:
    """Which (Q-bin, energy bin) each orientation measures, with normalisation weights.

    Parameters
    ----------
    hkl
        Shape (n, 3) float64, r.l.u.: Q-bin centres.
    ub
        Shape (3, 3), 1/Å without 2π (lab frame at ψ = 0).
    q_step
        (ΔH, ΔK, ΔL) bin widths, r.l.u.
    e_edges
        Shape (n_E + 1,) evenly spaced energy edges, meV.
    psi
        Shape (n_o,) rotation angles, degrees.

    Returns
    -------
    dict with ``q`` (row into ``hkl``), ``e`` (energy bin), ``o`` (orientation) int64 arrays and
    ``w`` (float64 weight in (0, 1]), one entry per measured (orientation, bin), sorted by orientation.
    """
    e_edges = np.asarray(e_edges, float)
    de = float(e_edges[1] - e_edges[0])
    if not np.allclose(np.diff(e_edges), de, rtol=1e-6):
        raise DataError(
            "the simulation needs evenly spaced energy bins. Pass e.g. 0..40 meV in 0.5 meV steps."
        )
    m = 2 * np.pi * np.asarray(ub, float)  # Q_lab(ψ=0) = m @ hkl
    qs = np.asarray(hkl, float) @ m.T
    rm = np.einsum("oij,jk->oik", rotation_y(np.asarray(psi, float)), m)
    limits = np.array([*instrument.in_plane, *instrument.out_of_plane], dtype=float)
    out = coverage_kernel(
        qs,
        rm,
        np.asarray(psi, float),
        instrument.ki,
        instrument.ei,
        e_edges,
        limits,
        np.abs(np.asarray(q_step, float)),
    )
    if len(out["q"]) == 0:
        raise DataError(
            f"no simulated bin is measured: with Ei = {instrument.ei} meV and the detector coverage, "
            f"none of the {len(qs)} Q-bins is reached. Check Ei, the energy range and the orientations."
        )
    return out
