"""The Wigner–Seitz cell of a supercell: which pair orbits a supercell force-constant set holds.

phonopy builds the dynamical matrix of a supercell force-constant set by giving each (primitive
atom, supercell atom) block to the shortest bond vectors between them, the block divided by their
number (the *multiplicity*). A bond vector d is used when it lies inside or on the boundary of the
supercell's Wigner–Seitz cell: |d| ≤ |d + T| for every supercell translation T.

When every point operation of the crystal keeps the supercell lattice (a 4×4×4 supercell of an fcc
primitive cell keeps the cubic group), W(d + T) = Wd + WT with WT again a supercell translation, so
a pair orbit lies wholly inside, wholly on the boundary of, or wholly outside the Wigner–Seitz cell,
with one multiplicity for the whole orbit. The space of exactly the orbits inside or on the cell
(:meth:`fcinv.fcspace.FCSpace.for_supercell`) then holds a symmetric supercell set exactly.
"""

from __future__ import annotations

import re

import numpy as np

from fcinv.crystal import Crystal
from fcinv.errors import ForceConstantError

#: Relative tolerance of "the same length" between images, as :func:`fcinv.fcspace.pairs_from_phonopy`
#: (and phonopy) compare them: |d + T| < |d| + WS_TOL · max(1, |d|).
WS_TOL = 1e-4
_r = np.arange(-2, 3)
_CELLS = np.stack(np.meshgrid(_r, _r, _r, indexing="ij"), -1).reshape(-1, 3)
_CELLS = _CELLS[np.any(_CELLS != 0, axis=1)]


def parse_supercell(spec) -> np.ndarray | None:
    """A supercell stage given as ``"4x4x4"`` (or 3 integers, or a 3×3 integer matrix) as a 3×3 matrix;
    None for anything that is a shell count (an int or a string of digits).

    Raises
    ------
    ForceConstantError
        A string that is neither a shell count nor ``AxBxC``.
    """
    from fcinv.fcspace.pairs import supercell_matrix

    if isinstance(spec, (int, np.integer)):
        return None
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s.isdigit():
            return None
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", s)
        if not m:
            raise ForceConstantError(
                f"{spec!r} is neither a shell count nor a supercell; pass e.g. 11 or '4x4x4'."
            )
        return supercell_matrix([int(g) for g in m.groups()])
    return supercell_matrix(spec)


def supercell_label(smat: np.ndarray) -> str:
    """``"4x4x4"`` for a diagonal supercell matrix, else its rows (``"[[..], ..]"``)."""
    m = np.asarray(smat, int)
    if np.all(m == np.diag(np.diag(m))):
        return "x".join(str(int(v)) for v in np.diag(m))
    return str(m.tolist())


def supercell_translations(crystal: Crystal, smat: np.ndarray) -> np.ndarray:
    """Non-zero Cartesian translations (Å) of the supercell lattice ``smat @ lattice``, 124 nearest
    combinations of its vectors (shape (124, 3))."""
    return _CELLS @ (np.asarray(smat, float) @ crystal.lattice)


def check_supercell_symmetry(crystal: Crystal, smat: np.ndarray) -> None:
    """Raise unless every rotation of the crystal's space group keeps the supercell lattice."""
    S = np.asarray(smat, float).T  # columns: supercell vectors in primitive fractional units
    Sinv = np.linalg.inv(S)
    for W in crystal.symmetry[0]:
        M = Sinv @ W @ S
        if np.abs(M - np.round(M)).max() > 1e-6:
            raise ForceConstantError(
                f"the supercell {np.asarray(smat).tolist()} breaks the symmetry of {crystal.name} "
                "(a point operation "
                "does not keep its lattice), so its Wigner-Seitz cell splits pair orbits. Use a supercell "
                "that keeps the crystal's symmetry (e.g. n x n x n of the primitive cell of a cubic crystal)."
            )


def ws_multiplicity(vectors: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """For Cartesian bond vectors (n, 3): 0 outside the Wigner–Seitz cell, else the number of shortest
    images d + T (1 strictly inside, > 1 on the boundary)."""
    d = np.atleast_2d(np.asarray(vectors, float))
    n0 = np.linalg.norm(d, axis=1)
    img = np.linalg.norm(d[:, None, :] + translations[None, :, :], axis=2)
    tol = WS_TOL * np.maximum(1.0, n0)
    inside = img.min(axis=1) >= n0 - tol
    return np.where(inside, 1 + np.sum(img < n0[:, None] + tol[:, None], axis=1), 0)


def ws_cutoff(crystal: Crystal, smat: np.ndarray) -> float:
    """The longest bond (Å) inside or on the supercell's Wigner–Seitz cell."""
    from fcinv.fcspace.shells import _enumerate_pairs

    T = supercell_translations(crystal, smat)
    # every point of the cell is within half the sum of the supercell vectors' lengths
    r_max = 0.5 * float(np.linalg.norm(np.asarray(smat, float) @ crystal.lattice, axis=1).sum())
    pairs = _enumerate_pairs(crystal, r_max)
    L, x = crystal.lattice, crystal.positions
    d = np.array([(x[j] + np.array(R) - x[i]) @ L for i, j, R, _ in pairs])
    m = ws_multiplicity(d, T)
    return float(np.linalg.norm(d[m > 0], axis=1).max())
