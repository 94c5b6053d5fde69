"""Force constants as a list of atom pairs, and reading phonopy force-constant files.

:class:`PairFC` is the common currency of fcinv: any force-constant set (from θ,
or a full phonopy array with its supercell images) becomes a list of pairs with
Cartesian 3×3 blocks, from which dynamical matrices are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcinv.crystal import Crystal
from fcinv.errors import ForceConstantError, StructureError, describe_exception


# --------------------------------------------------------------------- PairFC
@dataclass(frozen=True, eq=False)
class PairFC:
    """Force constants as a list of atom pairs.

    Parameters
    ----------
    crystal
        The crystal whose primitive atoms ``i`` and ``j`` index.
    i, j
        Shape (n_pairs,) int: atoms of the pair (home cell, other cell).
    d_conv
        Shape (n_pairs, 3) float64: bond vector r_j + R - r_i in fractional coordinates
        of the conventional cell (so the phase at q (r.l.u.) is 2π q·d_conv).
    tensors
        Shape (n_pairs, 3, 3) float64, eV/Å²: Φ_αβ(i, j, R), supercell-image weights included.
    """

    crystal: Crystal
    i: np.ndarray
    j: np.ndarray
    d_conv: np.ndarray
    tensors: np.ndarray

    def dynamical_matrices(self, q_rlu: np.ndarray) -> np.ndarray:
        """Mass-weighted dynamical matrices, shape (n_q, 3n, 3n) complex128, eV/(Å² amu)."""
        q = np.atleast_2d(np.asarray(q_rlu, float))
        n = self.crystal.n_atoms
        phase = np.exp(2j * np.pi * (q @ self.d_conv.T))  # (n_q, P)
        m = self.crystal.masses
        w = self.tensors / np.sqrt(m[self.i] * m[self.j])[:, None, None]
        out = np.zeros((len(q), n, n, 3, 3), dtype=complex)
        for a in range(n):
            for b in range(n):
                sel = (self.i == a) & (self.j == b)
                if np.any(sel):
                    out[:, a, b] = np.einsum("qp,pxy->qxy", phase[:, sel], w[sel])
        D = out.transpose(0, 1, 3, 2, 4).reshape(len(q), 3 * n, 3 * n)
        return 0.5 * (D + D.conj().transpose(0, 2, 1))

    def frequencies(self, q_rlu: np.ndarray) -> np.ndarray:
        """Signed phonon energies at ``q_rlu``, shape (n_q, 3n) float64, meV (negative = imaginary)."""
        from fcinv.units import omega2_to_mev

        return omega2_to_mev(np.linalg.eigvalsh(self.dynamical_matrices(q_rlu)))

    def asr_violation(self) -> float:
        """Largest |Σ_(j,R) Φ(i, j, R)| over atoms and components, eV/Å²."""
        s = np.zeros((self.crystal.n_atoms, 3, 3))
        np.add.at(s, self.i, self.tensors)
        return float(np.abs(s).max())


# ---------------------------------------------------------------- helpers
_r = np.arange(-1, 2)
_NEIGH = np.stack(np.meshgrid(_r, _r, _r, indexing="ij"), -1).reshape(-1, 3).astype(float)


def _key(d: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.round(np.asarray(d) * 1e5))


def supercell_matrix(smat) -> np.ndarray:
    """A supercell as a 3×3 integer matrix: 3 integers (a diagonal) or a non-singular 3×3 integer matrix.

    Raises
    ------
    ForceConstantError
        Anything else.
    """
    m = np.asarray(smat)
    if m.shape == (3,):
        m = np.diag(m)
    if m.shape != (3, 3) or not np.all(np.round(m) == m) or round(abs(np.linalg.det(m))) < 1:
        raise ForceConstantError(
            f"supercell {np.asarray(smat).tolist()} is not 3 integers or a non-singular 3x3 integer matrix. Pass e.g. --supercell 4 4 4."
        )
    return m.astype(int)


#: The former private name, used inside :mod:`fcinv.fcspace`.
_supercell_matrix = supercell_matrix


def merge_pairs(fc: PairFC) -> PairFC:
    """Sum the tensors of identical (i, j, d) pairs."""
    keys = {}
    order = []
    for k, (a, b, d) in enumerate(zip(fc.i, fc.j, fc.d_conv)):
        key = (int(a), int(b), _key(d))
        if key not in keys:
            keys[key] = len(order)
            order.append(k)
    idx = np.array([keys[(int(a), int(b), _key(d))] for a, b, d in zip(fc.i, fc.j, fc.d_conv)])
    t = np.zeros((len(order), 3, 3))
    np.add.at(t, idx, fc.tensors)
    o = np.array(order)
    return PairFC(fc.crystal, fc.i[o], fc.j[o], fc.d_conv[o], t)


def _supercell_to_primitive(crystal: Crystal, sc) -> np.ndarray:
    """Index of the primitive atom each supercell atom is an image of."""
    frac = (sc.scaled_positions @ sc.cell) @ np.linalg.inv(crystal.lattice)
    out = np.empty(len(frac), dtype=int)
    for s, f in enumerate(frac):
        diff = f - crystal.positions
        k = np.nonzero(np.all(np.abs(diff - np.round(diff)) < 1e-4, axis=1))[0]
        if len(k) != 1:
            raise StructureError(
                "a supercell atom is not an image of exactly one primitive atom. Check the structure."
            )
        out[s] = k[0]
    return out


def _lattice_rotations(conv_lattice: np.ndarray) -> list[np.ndarray]:
    """The identity, then the other proper Cartesian rotations that keep the lattice (its holohedry)."""
    import spglib

    rots = spglib.get_symmetry((conv_lattice, [[0.0, 0.0, 0.0]], [1]), symprec=1e-5)["rotations"]
    L = np.asarray(conv_lattice, float).T
    out = [np.eye(3)]
    for r in rots:
        m = L @ r @ np.linalg.inv(L)
        if np.linalg.det(m) > 0 and not np.allclose(m, np.eye(3)):
            out.append(m)
    return out


def _match_cells(
    crystal: Crystal, lattice: np.ndarray, positions: np.ndarray, numbers: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Map a phonopy unit cell onto ``crystal``: a rotation (Cartesian) and each atom's crystal index.

    The cell may differ from the crystal's standard setting by a rotation (found with spglib),
    an origin shift, the atom order, and the lattice constant.
    """
    import spglib

    ds = spglib.get_symmetry_dataset((lattice, positions, numbers), symprec=1e-4)
    if ds is None:
        raise StructureError(
            "spglib could not analyse the force-constant file's unit cell. Check its POSCAR."
        )
    if int(ds.number) != crystal.spacegroup[1]:
        raise StructureError(
            f"the force-constant file's structure has space group {ds.international} (#{ds.number}), the crystal {crystal.spacegroup[0]} (#{crystal.spacegroup[1]}). Pass the structure the FCs were computed for."
        )
    rot = np.asarray(ds.std_rotation_matrix)
    # positions in the conventional fractional frame of each cell (lattice constant drops out)
    cart = positions @ lattice @ rot.T
    conv_other = spglib.standardize_cell(
        (lattice, positions, numbers), to_primitive=False, no_idealize=False, symprec=1e-4
    )[0]
    f_mine = crystal.cartesian_positions @ np.linalg.inv(crystal.conventional_lattice)
    prim_in_conv = crystal.lattice @ np.linalg.inv(
        crystal.conventional_lattice
    )  # primitive vectors, conv frac
    # spglib's rotation aligns the lattice; without an inversion centre it may give the structure's
    # twin (zincblende: a 4-fold axis), so the lattice's own rotations are tried after it
    for extra in _lattice_rotations(crystal.conventional_lattice):
        f_other = cart @ extra.T @ np.linalg.inv(conv_other)
        for a in range(len(f_mine)):
            if crystal.numbers[a] != numbers[0]:
                continue
            shift = f_mine[a] - f_other[0]
            g = f_other + shift
            mapping = []
            for b, fb in enumerate(g):
                diff = (fb - f_mine) @ np.linalg.inv(prim_in_conv)  # in primitive lattice units
                k = np.nonzero(
                    np.all(np.abs(diff - np.round(diff)) < 1e-3, axis=1) & (crystal.numbers == numbers[b])
                )[0]
                if len(k) != 1:
                    break
                mapping.append(k[0])
            else:
                if len(set(mapping)) == len(mapping):
                    return extra @ rot, np.array(mapping)
    raise StructureError(
        "the force-constant file's atoms cannot be matched to the crystal's (different structure or atom count). Pass the POSCAR the FCs were computed with."
    )


def pairs_from_phonopy(crystal: Crystal, fc_array: np.ndarray, unitcell, supercell_matrix) -> PairFC:
    """A phonopy force-constant set as a PairFC on ``crystal``, with phonopy's image convention.

    Each (primitive atom, supercell atom) block is shared equally among the supercell
    images at the shortest distance, exactly as phonopy builds its dynamical matrix.

    Parameters
    ----------
    crystal
        The crystal the pairs index (same structure as ``unitcell``, any setting).
    fc_array
        Shape (n_sc, n_sc, 3, 3) (full) or (n_uc, n_sc, 3, 3) (compact), eV/Å².
    unitcell
        The phonopy unit cell: a path to its POSCAR or a ``PhonopyAtoms``.
    supercell_matrix
        Relative to the unit cell.
    """
    from phonopy.structure.atoms import PhonopyAtoms
    from phonopy.structure.cells import get_supercell

    if isinstance(unitcell, (str, Path)):
        uc = Crystal.from_file(unitcell)  # validates the file
        from phonopy.interface.calculator import read_crystal_structure

        try:
            unitcell, _ = read_crystal_structure(str(unitcell), interface_mode="vasp")
        except Exception as exc:
            raise StructureError(
                f"phonopy could not read '{unitcell}': {describe_exception(exc)}. Pass a POSCAR."
            ) from None
        del uc
    if not isinstance(unitcell, PhonopyAtoms):
        raise StructureError(
            "unitcell must be a POSCAR path or a PhonopyAtoms. Pass the POSCAR the FCs were computed with."
        )
    smat = _supercell_matrix(supercell_matrix)
    sc = get_supercell(unitcell, smat)
    n_uc, n_sc = len(unitcell), len(sc)
    fc = np.asarray(fc_array, dtype=float)
    if fc.ndim != 4 or fc.shape[2:] != (3, 3) or fc.shape[1] != n_sc or fc.shape[0] not in (n_sc, n_uc):
        raise ForceConstantError(
            f"force-constant array has shape {fc.shape}; the {n_uc}-atom cell in a {np.diag(smat).tolist() if np.all(smat == np.diag(np.diag(smat))) else smat.tolist()} supercell "
            f"needs ({n_sc}, {n_sc}, 3, 3) or ({n_uc}, {n_sc}, 3, 3). Check --supercell and that the POSCAR matches the FORCE_CONSTANTS file."
        )
    if not np.all(np.isfinite(fc)):
        raise ForceConstantError("force-constant array contains NaN or inf. Check the FORCE_CONSTANTS file.")
    rot, atom_map = _match_cells(crystal, unitcell.cell, unitcell.scaled_positions, unitcell.numbers)
    # phonopy puts the images of unit-cell atom u at indices u*N .. u*N+N-1 (N = det smat)
    N = n_sc // n_uc
    p2s = np.arange(n_uc) * N
    s2u = np.repeat(np.arange(n_uc), N)
    rows = fc[p2s] if fc.shape[0] == n_sc else fc
    sc_lat = sc.cell
    pos = sc.scaled_positions @ sc_lat
    uc_pos = unitcell.scaled_positions @ unitcell.cell
    # conventional cell of the file's structure (rotated into the standard frame)
    import spglib

    conv_other = spglib.standardize_cell(
        (unitcell.cell, unitcell.scaled_positions, unitcell.numbers),
        to_primitive=False,
        no_idealize=False,
        symprec=1e-4,
    )[0]
    conv_inv = np.linalg.inv(conv_other)
    r = np.arange(-2, 3)
    neigh = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3) @ sc_lat
    I, J, D, T = [], [], [], []
    for u in range(n_uc):
        d = pos - uc_pos[u]
        cand = d[:, None, :] + neigh[None, :, :]  # (n_sc, 125, 3)
        dist = np.linalg.norm(cand, axis=2)
        dmin = dist.min(axis=1, keepdims=True)
        for s in range(n_sc):
            imgs = np.nonzero(dist[s] < dmin[s, 0] + 1e-4 * max(1.0, dmin[s, 0]))[0]
            block = rot @ rows[u, s] @ rot.T / len(imgs)
            for k in imgs:
                I.append(atom_map[u])
                J.append(atom_map[s2u[s]])
                D.append((cand[s, k] @ rot.T) @ conv_inv)
                T.append(block)
    return PairFC(crystal, np.array(I), np.array(J), np.array(D), np.array(T))


def read_phonopy(
    crystal: Crystal, force_constants: str | Path, structure: str | Path, supercell_matrix
) -> PairFC:
    """Read a phonopy ``FORCE_CONSTANTS`` or ``force_constants.hdf5`` file with its POSCAR.

    Parameters
    ----------
    crystal
        The crystal to express the pairs on (e.g. ``Crystal.from_file(structure)``).
    force_constants
        Path of the FC file (text ``FORCE_CONSTANTS`` or ``*.hdf5``).
    structure
        Path of the POSCAR the FCs were computed with.
    supercell_matrix
        3 integers or a (3, 3) matrix.
    """
    path = Path(force_constants)
    if not path.is_file():
        raise ForceConstantError(
            f"force-constant file '{path}' does not exist. Pass phonopy's FORCE_CONSTANTS or force_constants.hdf5."
        )
    try:
        if path.suffix in {".hdf5", ".h5"}:
            from phonopy.file_IO import read_force_constants_hdf5

            fc = read_force_constants_hdf5(str(path))
        else:
            from phonopy.file_IO import parse_FORCE_CONSTANTS

            fc = parse_FORCE_CONSTANTS(str(path))
    except Exception as exc:
        msg = describe_exception(exc)
        raise ForceConstantError(
            f"could not parse force-constant file '{path}': {msg}. Check it is phonopy's FORCE_CONSTANTS or force_constants.hdf5."
        ) from None
    return pairs_from_phonopy(crystal, fc, structure, supercell_matrix)
