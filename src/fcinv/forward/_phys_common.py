"""Shared pieces of the physical forward model: constants, errors, symmetry helpers, the real form.

:class:`RealForm` is the real symmetric block form of D(q; θ) that the intensity kernels of
:mod:`fcinv.forward._phys_kernels` diagonalise, for centrosymmetric crystals (the inversion basis)
and for crystals without an inversion centre (the real embedding of the Hermitian D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcinv.errors import FcinvError
from fcinv.forward.model import LinearDynamics, _block_diagonalise

#: ħ²/amu in meV Å² (CODATA 2018).
HBAR2_AMU_MEV_A2 = 4.180159286375
#: |F|²/ω with b in fm, Q in 1/Å, m in amu, ω in meV → mbarn (1 fm² = 10 mbarn).
SF_TO_MBARN = 10.0 * HBAR2_AMU_MEV_A2
#: Order of the Taylor expansion of the Debye–Waller change.
DW_ORDER = 6


class PhysicalModelError(FcinvError):
    """Bad settings or inputs of the physical forward model."""


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
