"""Harmonic force constants of a crystal from an ASE calculator, by phonopy finite displacements.

The unit cell handed to phonopy is the crystal's primitive cell (``Crystal.lattice``,
spglib's standardised setting), so a supercell ``(4, 4, 4)`` means 4×4×4 primitive
cells (128 atoms for Ge), the layout of the DFT set in ``shared/data/ge_dft_pathsqe``.
Force constants are kept in phonopy's compact layout, shape ``(n_prim, n_super, 3, 3)``
(eV/Å²), with the ``p2s_map`` that places the primitive atoms in the supercell.

Stability: a force-constant set is *unstable* when any frequency on the default q-path
(its bin centres and its high-symmetry points) or on a Γ-centred ``mesh``×``mesh``×``mesh``
grid of the full zone lies below ``-imag_tol_thz`` (phonopy's convention: imaginary
frequencies are printed negative). The default tolerance, 0.05 THz, equals the
convergence target of the frequencies, so numerical noise of the acoustic branches
near Γ is not mistaken for an instability.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fcinv.crystal import BCC_POINTS, DEFAULT_PATHS, FCC_POINTS, HEX_POINTS, Crystal, build_path
from fcinv.errors import FcinvError, ForceConstantError

log = logging.getLogger(__name__)

#: Frequencies below ``-IMAG_TOL_THZ`` count as imaginary (THz).
IMAG_TOL_THZ = 0.05
#: Γ-centred mesh (per axis of the primitive reciprocal lattice) of the full-zone stability test.
STABILITY_MESH = 8
#: Default supercells (primitive-cell multiples) that converge the path frequencies to 0.05 THz
#: (measured: docs/stage1.md, "Convergence"); other crystals fall back to ``DEFAULT_SUPERCELL_OTHER``.
DEFAULT_SUPERCELLS: dict[str, tuple[int, int, int]] = {"Ge": (5, 5, 5), "Nb": (8, 8, 8)}
DEFAULT_SUPERCELL_OTHER = (5, 5, 5)
#: Default finite displacement, Å.
DEFAULT_DISPLACEMENT = 0.01
#: Frequencies closer than this are one degenerate group when modes are labelled (THz).
DEGENERACY_TOL_THZ = 1e-3

#: High-symmetry points reported per lattice type (conventional r.l.u.).
SUMMARY_POINTS: dict[str, dict[str, tuple[float, float, float]]] = {
    "fcc": {k: FCC_POINTS[k] for k in ("Γ", "X", "L")},
    "bcc": {k: BCC_POINTS[k] for k in ("H", "N", "P")},
    "hexagonal": {k: HEX_POINTS[k] for k in ("Γ", "M", "K", "A")},
}
# any other lattice: every labelled point of its default (seekpath) path


class PhononError(FcinvError):
    """A finite-displacement phonon calculation could not be set up or run."""


@dataclass(frozen=True)
class PhononSettings:
    """How force constants are computed.

    Parameters
    ----------
    supercell
        Shape (3, 3) int: supercell matrix in units of the primitive cell.
    displacement
        Finite displacement, Å.
    mesh
        Points per axis of the Γ-centred full-zone stability mesh.
    imag_tol_thz
        Frequencies below minus this value (THz) count as imaginary.
    """

    supercell: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]
    displacement: float = DEFAULT_DISPLACEMENT
    mesh: int = STABILITY_MESH
    imag_tol_thz: float = IMAG_TOL_THZ

    @classmethod
    def create(
        cls, supercell: Any, displacement: float = DEFAULT_DISPLACEMENT, **kwargs: Any
    ) -> PhononSettings:
        """Build from a supercell given as 1, 3 or 9 integers (diagonal or full matrix)."""
        return cls(
            supercell=supercell_matrix(supercell), displacement=check_displacement(displacement), **kwargs
        )

    def to_dict(self) -> dict:
        return {
            "supercell_matrix": [list(r) for r in self.supercell],
            "displacement_A": self.displacement,
            "stability_mesh": [self.mesh] * 3,
            "imag_tol_THz": self.imag_tol_thz,
        }


def supercell_matrix(value: Any) -> tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]:
    """Normalise a supercell given as N, (N1, N2, N3) or a 3×3 matrix to a 3×3 tuple of ints."""
    arr = np.asarray(value)
    if (
        arr.dtype.kind not in "iuf"
        or arr.size not in (1, 3, 9)
        or not np.all(np.isfinite(arr))
        or not np.allclose(arr, np.round(arr))
    ):
        raise PhononError(
            f"supercell {value!r} is not 1, 3 or 9 integers. Pass e.g. 4, '4 4 4' or a 3x3 integer matrix."
        )
    arr = np.round(arr).astype(int)
    mat = np.diag(np.broadcast_to(arr.ravel(), (3,))) if arr.size in (1, 3) else arr.reshape(3, 3)
    if round(abs(np.linalg.det(mat))) < 1:
        raise PhononError(
            f"supercell matrix {mat.tolist()} is singular. Pass a matrix with a non-zero determinant, e.g. 4 4 4."
        )
    return tuple(tuple(int(x) for x in row) for row in mat)  # type: ignore[return-value]


def check_displacement(displacement: float) -> float:
    """Validate a finite displacement (Å)."""
    d = float(displacement)
    if not np.isfinite(d) or not 1e-4 <= d <= 0.2:
        raise PhononError(f"displacement {displacement!r} Å is outside 0.0001–0.2 Å. Pass e.g. 0.01.")
    return d


def scaled_crystal(crystal: Crystal, a: float) -> Crystal:
    """The same crystal with its cell scaled isotropically to conventional lattice constant ``a`` (Å)."""
    s = float(a) / crystal.conventional_a
    return Crystal.from_cell(
        crystal.lattice * s, crystal.positions, crystal.numbers, name=crystal.name, masses=crystal.masses
    )


def _ase_atoms(
    lattice: np.ndarray, positions_frac: np.ndarray, numbers: np.ndarray, masses: np.ndarray | None = None
):
    from ase import Atoms

    atoms = Atoms(numbers=numbers, cell=lattice, scaled_positions=positions_frac, pbc=True)
    if masses is not None:
        atoms.set_masses(masses)
    return atoms


def relax_lattice_constant(
    crystal: Crystal, calculator, *, span: float = 0.04, n_points: int = 9, max_rounds: int = 4
) -> float:
    """The calculator's equilibrium conventional lattice constant (Å) from an equation-of-state fit.

    The structures handled here (diamond, bcc) have no free internal coordinates, so the
    relaxation is one-dimensional: the energy of the primitive cell is computed at
    ``n_points`` lattice constants within ±``span`` of the current one, fitted with a
    Birch–Murnaghan equation of state, and the window is re-centred until the minimum
    lies inside it.
    """
    from ase.eos import EquationOfState

    a = crystal.conventional_a
    for _ in range(max_rounds):
        scales = np.linspace(1 - span, 1 + span, n_points)
        vols, energies = [], []
        for s in scales:
            atoms = _ase_atoms(
                crystal.lattice * (a * s / crystal.conventional_a), crystal.positions, crystal.numbers
            )
            atoms.calc = calculator
            energies.append(float(atoms.get_potential_energy()))
            vols.append(float(atoms.get_volume()))
        i_min = int(np.argmin(energies))
        if 0 < i_min < n_points - 1:
            eos = EquationOfState(vols, energies, eos="birchmurnaghan")
            v0, _, _ = eos.fit()
            a_new = a * (v0 / (np.linalg.det(crystal.lattice) * (a / crystal.conventional_a) ** 3)) ** (1 / 3)
            return float(a_new)
        a = a * scales[i_min]
    raise PhononError(
        f"no energy minimum found for {crystal.name} within {max_rounds} windows of ±{span:.0%} around a={crystal.conventional_a:.4f} Å. Check the force field."
    )


def compute_force_constants(crystal: Crystal, calculator, settings: PhononSettings):
    """Finite-displacement force constants of ``crystal`` with an ASE ``calculator``.

    Returns
    -------
    phonopy.Phonopy
        With compact, symmetrised force constants set (``phonon.force_constants``,
        shape (n_prim, n_super, 3, 3), eV/Å²). Forces of the undisplaced supercell are
        subtracted from each displaced one.
    """
    from phonopy import Phonopy

    phonon = Phonopy(
        crystal.to_phonopy_atoms(),
        supercell_matrix=np.array(settings.supercell),
        primitive_matrix="P",  # the cell as given (phonopy 4 resolves None to "auto")
        log_level=0,
    )
    phonon.generate_displacements(distance=settings.displacement, is_plusminus="auto")
    sc = phonon.supercell
    perfect = _ase_atoms(sc.cell, sc.scaled_positions, sc.numbers)
    perfect.calc = calculator
    f0 = np.array(perfect.get_forces(), dtype=float)
    forces = []
    for disp in phonon.supercells_with_displacements:
        atoms = _ase_atoms(disp.cell, disp.scaled_positions, disp.numbers)
        atoms.calc = calculator
        forces.append(np.array(atoms.get_forces(), dtype=float) - f0)
    phonon.forces = np.array(forces)
    phonon.produce_force_constants(calculate_full_force_constants=False, show_drift=False)
    phonon.symmetrize_force_constants(show_drift=False)
    log.debug(
        "%s: %d displaced supercells of %d atoms, residual force %.2e eV/Å",
        crystal.name,
        len(forces),
        len(sc),
        np.abs(f0).max(),
    )
    return phonon


def phonopy_from_fc(crystal: Crystal, fc: np.ndarray, supercell: Any):
    """A ``phonopy.Phonopy`` for ``crystal`` with the given compact or full force constants set."""
    from phonopy import Phonopy

    phonon = Phonopy(
        crystal.to_phonopy_atoms(),
        supercell_matrix=np.array(supercell_matrix(supercell)),
        primitive_matrix="P",  # the cell as given (phonopy 4 resolves None to "auto")
        log_level=0,
    )
    fc = np.asarray(fc, dtype=float)
    n_s, n_p = len(phonon.supercell), len(phonon.primitive)
    if fc.shape not in ((n_p, n_s, 3, 3), (n_s, n_s, 3, 3)):
        raise ForceConstantError(
            f"force constants have shape {fc.shape}; a {n_s}-atom supercell of {crystal.name} needs ({n_p}, {n_s}, 3, 3) or ({n_s}, {n_s}, 3, 3). Pass the matching supercell."
        )
    phonon.force_constants = fc
    return phonon


def frequencies_thz(phonon, crystal: Crystal, q_rlu: np.ndarray, *, eigenvectors: bool = False):
    """Phonon frequencies (THz, sorted, imaginary negative) at conventional r.l.u. ``q_rlu``.

    Returns shape (n_q, n_modes) float64, and with ``eigenvectors`` also shape
    (n_q, n_modes, n_modes) complex128 (columns are modes).
    """
    q_frac = crystal.rlu_to_prim_frac(np.atleast_2d(q_rlu))
    phonon.run_qpoints(q_frac, with_eigenvectors=eigenvectors)
    res = phonon.qpoints
    f = np.asarray(res.frequencies, dtype=float)
    return (f, np.asarray(res.eigenvectors)) if eigenvectors else f


def mode_labels(crystal: Crystal, q_rlu: np.ndarray, freqs: np.ndarray, vecs: np.ndarray) -> list[str]:
    """Label the modes at one q-point: TA/LA/TO/LO away from Γ, A/O at Γ.

    A mode is longitudinal when its weight along q̂, summed over the atoms and averaged
    over its degenerate group, exceeds one half. Of the transverse modes the lowest two
    are acoustic, of the longitudinal ones the lowest; the rest are optical.
    """
    n = len(freqs)
    q_cart = crystal.rlu_to_cart(q_rlu)
    if np.linalg.norm(q_cart) < 1e-9:
        return ["A" if i < 3 else "O" for i in range(n)]
    qhat = q_cart / np.linalg.norm(q_cart)
    e = vecs.T.reshape(n, n // 3, 3)  # mode, atom, xyz
    long_frac = np.sum(np.abs(e @ qhat) ** 2, axis=1)
    groups: list[list[int]] = []
    for i in np.argsort(freqs):
        if groups and abs(freqs[i] - freqs[groups[-1][-1]]) < DEGENERACY_TOL_THZ:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    is_long = np.zeros(n, bool)
    for g in groups:
        is_long[g] = long_frac[g].mean() > 0.5
    labels = [""] * n
    n_t = n_l = 0
    for i in np.argsort(freqs, kind="stable"):
        if is_long[i]:
            labels[i] = "LA" if n_l == 0 else "LO"
            n_l += 1
        else:
            labels[i] = "TA" if n_t < 2 else "TO"
            n_t += 1
    return labels


@dataclass
class PhononSummary:
    """Frequencies of one force-constant set at the points that are reported, and its stability.

    ``points`` maps a label (``"X"``) to ``{"q_rlu": [...], "freqs_THz": [...], "modes": [...]}``;
    frequencies in THz, sorted ascending, imaginary negative.
    """

    points: dict[str, dict]
    path_min_thz: float
    mesh_min_thz: float
    imag_tol_thz: float
    unstable_at: list[str] = field(default_factory=list)

    @property
    def stable(self) -> bool:
        return min(self.path_min_thz, self.mesh_min_thz) >= -self.imag_tol_thz

    def to_dict(self) -> dict:
        return {
            "points": self.points,
            "path_min_THz": self.path_min_thz,
            "mesh_min_THz": self.mesh_min_thz,
            "imag_tol_THz": self.imag_tol_thz,
            "stable": self.stable,
            "unstable_at": self.unstable_at,
        }


def path_qpoints(crystal: Crystal) -> tuple[np.ndarray, dict[str, tuple[float, float, float]]]:
    """The default q-path's bin centres plus its high-symmetry points (conventional r.l.u.)."""
    q_bins, labels, _, _ = build_path(crystal)
    if crystal.lattice_type in DEFAULT_PATHS:
        pts = DEFAULT_PATHS[crystal.lattice_type][1]
    else:
        from fcinv.crystal import seekpath_points

        pts = seekpath_points(crystal)
    nodes: dict[str, tuple[float, float, float]] = {}
    for lab in (x for tick in labels for x in tick.split("|")):
        if lab in pts and lab not in nodes:
            nodes[lab] = pts[lab]
    return q_bins, nodes


def summarize(phonon, crystal: Crystal, settings: PhononSettings) -> PhononSummary:
    """Frequencies at the reported high-symmetry points, and the path and mesh stability test."""
    summary_pts = SUMMARY_POINTS.get(crystal.lattice_type) or path_qpoints(crystal)[1]
    points = {}
    for lab, q in summary_pts.items():
        f, v = frequencies_thz(phonon, crystal, np.array([q], float), eigenvectors=True)
        points[lab] = {
            "q_rlu": list(map(float, q)),
            "freqs_THz": [round(float(x), 5) for x in f[0]],
            "modes": mode_labels(crystal, np.array(q, float), f[0], v[0]),
        }
    q_bins, nodes = path_qpoints(crystal)
    f_path = frequencies_thz(phonon, crystal, np.vstack([q_bins, np.array(list(nodes.values()), float)]))
    phonon.run_mesh([settings.mesh] * 3, is_gamma_center=True)
    f_mesh = np.asarray(phonon.mesh.frequencies)
    unstable = []
    for lab, q in nodes.items():
        fq = frequencies_thz(phonon, crystal, np.array([q], float))[0]
        if fq.min() < -settings.imag_tol_thz:
            unstable.append(lab)
    if f_path[: len(q_bins)].min() < -settings.imag_tol_thz:
        unstable.append("path")
    if f_mesh.min() < -settings.imag_tol_thz:
        unstable.append(f"mesh {settings.mesh}x{settings.mesh}x{settings.mesh}")
    return PhononSummary(
        points=points,
        path_min_thz=float(f_path.min()),
        mesh_min_thz=float(f_mesh.min()),
        imag_tol_thz=settings.imag_tol_thz,
        unstable_at=unstable,
    )


def path_frequencies(phonon, crystal: Crystal) -> np.ndarray:
    """Frequencies on the default path bins and high-symmetry points: shape (n_q, n_modes), THz."""
    q_bins, nodes = path_qpoints(crystal)
    return frequencies_thz(phonon, crystal, np.vstack([q_bins, np.array(list(nodes.values()), float)]))
