"""The Born–von Kármán forward model θ → I(q, E).

The dynamical matrix is linear in the force-constant parameters, so along a
fixed set of q-points it is precomputed once:

    D(q; θ) = D_ref(q) + Σ_p (θ_p − θ_ref,p) B_p(q),

where D_ref comes from a full reference force-constant set (all its shells, as
phonopy builds it) and B_p is the dynamical matrix of the unit parameter e_p
(acoustic sum rule included). For a centrosymmetric crystal a fixed unitary
change of basis U = (1 + iP)/√2 (P: the atom permutation of the inversion)
makes every D(q) real symmetric, so the batched eigenvalue problem runs on
real matrices in a compiled kernel.

Intensity convention (the paper's): no eigenvectors, no Debye–Waller factor, no
Bose factor; every mode has weight 1 and is broadened by a unit-area Gaussian
integrated over each energy bin, with FWHM(E) = fwhm0 + fwhm1·E.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fcinv.errors import ForceConstantError
from fcinv.fcspace import FCSpace, PairFC
from fcinv.forward import _kernels
from fcinv.grid import SpectrumGrid
from fcinv.units import EV_A2_AMU_TO_MEV

log = logging.getLogger(__name__)

#: Modes below this signed energy (meV) count as imaginary (unstable).
STABILITY_TOL_MEV = 0.05


@dataclass(frozen=True)
class Broadening:
    """Gaussian energy broadening, FWHM(E) = ``fwhm0`` + ``fwhm1`` · E (meV).

    ``nsig`` is the half-width (in σ) beyond which a Gaussian is cut off.
    """

    fwhm0: float = 1.2
    fwhm1: float = 0.0
    nsig: float = 5.0

    def __post_init__(self) -> None:
        if (
            not (self.fwhm0 > 0 and np.isfinite(self.fwhm0))
            or not np.isfinite(self.fwhm1)
            or self.fwhm0 + self.fwhm1 * 1e3 < 0
        ):
            raise ForceConstantError(
                f"broadening FWHM {self.fwhm0} + {self.fwhm1}·E meV must be positive over the energy range. Pass fwhm0 > 0."
            )

    def as_dict(self) -> dict:
        return {"fwhm0_meV": self.fwhm0, "fwhm1": self.fwhm1, "nsig": self.nsig}


def _inversion_unitary(space: FCSpace) -> np.ndarray | None:
    """U = (1 + iP)/√2 ⊗ 1₃ that makes D(q) real, or None without inversion symmetry."""
    crystal = space.crystal
    rots, trans = crystal.symmetry
    x = crystal.positions
    for W, w in zip(rots, trans):
        if np.array_equal(W, -np.eye(3, dtype=int)):
            y = -x + w
            perm = np.empty(crystal.n_atoms, dtype=int)
            for a in range(crystal.n_atoms):
                d = y[a] - x
                perm[a] = int(np.nonzero(np.all(np.abs(d - np.round(d)) < 1e-4, axis=1))[0][0])
            P = np.zeros((crystal.n_atoms, crystal.n_atoms))
            P[np.arange(crystal.n_atoms), perm] = 1.0
            if not np.allclose(P, P.T):
                return None
            return np.kron((np.eye(crystal.n_atoms) + 1j * P) / np.sqrt(2.0), np.eye(3))
    return None


class LinearDynamics:
    """D(q; θ) = M_const(q) + Σ_p θ_p M_p(q) on a fixed set of q-points.

    Parameters
    ----------
    space
        The FC space.
    q_rlu
        Shape (n_q, 3), conventional r.l.u.
    theta_ref
        Shape (n_params,): the full reference θ.
    free_idx
        Indices (into ``space.names``) of the parameters that vary.
    reference
        Full reference FC set giving D_ref; ``None`` means D_ref = D(θ_ref).
    """

    def __init__(
        self,
        space: FCSpace,
        q_rlu: np.ndarray,
        theta_ref: np.ndarray,
        free_idx: np.ndarray,
        reference: PairFC | None = None,
    ):
        q = np.atleast_2d(np.asarray(q_rlu, dtype=float))
        units = space.unit_pairs()
        B = np.stack([u.dynamical_matrices(q) for u in units])  # (n_params, n_q, m, m)
        D_ref = (
            reference.dynamical_matrices(q)
            if reference is not None
            else np.einsum("p,pqij->qij", theta_ref, B)
        )
        Dc = D_ref - np.einsum("p,pqij->qij", theta_ref[free_idx], B[free_idx])
        Bp = B[free_idx]
        U = _inversion_unitary(space)
        #: the unitary U of the real basis (None without inversion); D_real = U D U^H
        self.U = U
        #: per q, the orthogonal matrix V with (block-diagonal matrices) = V^T (U D U^H) V; set in the real case
        self.basis: np.ndarray | None = None
        self.q_rlu = q
        self.real = U is not None
        if self.real:
            Uh = U.conj().T
            Mc = U @ Dc @ Uh
            Mp = U @ Bp @ Uh
            scale = max(np.abs(Mc).max(), np.abs(Mp).max(), 1e-30)
            if max(np.abs(Mc.imag).max(), np.abs(Mp.imag).max()) > 1e-9 * scale:
                log.warning("inversion basis left an imaginary part; using complex eigenvalues")
                self.real = False
                self.Mc, self.Mp = Dc, Bp
                self._hermitian_basis(theta_ref[free_idx])
            else:
                Mc = 0.5 * (Mc.real + Mc.real.transpose(0, 2, 1))
                Mp = 0.5 * (Mp.real + Mp.real.transpose(0, 1, 3, 2))
                self.Mc, self.Mp, self.nblk, self.bstart, self.bdup, self.basis = _block_diagonalise(
                    Mc, Mp, theta_ref[free_idx], return_basis=True
                )
        else:
            self.Mc, self.Mp = Dc, Bp
            self._hermitian_basis(theta_ref[free_idx])

    def _hermitian_basis(self, theta0: np.ndarray, seed: int = 12345) -> None:
        """Complex case: per q, the finest common block-diagonal form of span{Mc(q), Mp(q)}.

        As :func:`_block_diagonalise` for real matrices: the eigenvectors of a generic Hermitian member
        of the span, grouped by which of them any basis matrix couples, give the blocks (the little
        group of q); within each block the basis diagonalises the reference D(q; θ0), so the compiled
        Hermitian Jacobi starts near-diagonal. A unitary change of basis keeps every eigenvalue.
        ``Mc``/``Mp`` stay in the Cartesian basis; the kernels use ``_Hc``, ``_Hp`` (with ``_nblk``,
        ``_bstart``) and ``_W`` maps their eigenvectors back (x = W y).
        """
        rng = np.random.default_rng(seed)
        Mc = np.asarray(self.Mc, dtype=complex)
        Mp = np.asarray(self.Mp, dtype=complex)
        nq, m, _ = Mc.shape
        Hc = np.empty_like(Mc)
        Hp = np.empty_like(Mp)
        W = np.empty((nq, m, m), dtype=complex)
        nblk = np.zeros(nq, dtype=np.int64)
        bstart = np.zeros((nq, m + 1), dtype=np.int64)
        for q in range(nq):
            mats = np.concatenate([Mc[q][None], Mp[:, q]])
            scale = np.abs(mats).max() or 1.0
            X = np.einsum("k,kij->ij", rng.normal(size=len(mats)), mats)
            _, V = np.linalg.eigh(0.5 * (X + X.conj().T))
            rot = np.einsum("ji,kjl,lm->kim", V.conj(), mats, V)
            adj = np.any(np.abs(rot) > 1e-11 * scale, axis=0)
            label = -np.ones(m, dtype=int)
            nlab = 0
            for i in range(m):
                if label[i] >= 0:
                    continue
                stack, label[i] = [i], nlab
                while stack:
                    u = stack.pop()
                    for v in np.nonzero(adj[u])[0]:
                        if label[v] < 0:
                            label[v] = nlab
                            stack.append(v)
                nlab += 1
            order = np.argsort(label, kind="stable")
            V = V[:, order]
            starts = np.concatenate([[0], np.cumsum(np.bincount(label))])
            ref = mats[0] + np.einsum("k,kij->ij", theta0, mats[1:])
            R = V.conj().T @ ref @ V
            for a, b in zip(starts[:-1], starts[1:]):
                _, E = np.linalg.eigh(0.5 * (R[a:b, a:b] + R[a:b, a:b].conj().T))
                V[:, a:b] = V[:, a:b] @ E
            rot = np.einsum("ji,kjl,lm->kim", V.conj(), mats, V)
            mask = np.zeros((m, m), dtype=bool)
            for a, b in zip(starts[:-1], starts[1:]):
                mask[a:b, a:b] = True
            rot[:, ~mask] = 0.0
            W[q], Hc[q], Hp[:, q] = V, rot[0], rot[1:]
            nblk[q] = len(starts) - 1
            bstart[q, : len(starts)] = starts
        self._W = W
        self._Hc = np.ascontiguousarray(Hc)
        self._Hp = np.ascontiguousarray(Hp)
        self._nblk, self._bstart = nblk, bstart

    @property
    def n_q(self) -> int:
        return len(self.q_rlu)

    def omega2(self, theta: np.ndarray) -> np.ndarray:
        """Eigenvalues ω², shape (B, n_q, m), ascending, eV/(Å² amu)."""
        if self.real:
            return _kernels.eigenvalues_real(
                self.Mc, self.Mp, self.nblk, self.bstart, self.bdup, np.ascontiguousarray(theta), _threads()
            )
        return _kernels.eigenvalues_complex(
            self._Hc, self._Hp, self._nblk, self._bstart, np.ascontiguousarray(theta), _threads()
        )

    def eigh(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eigenpairs of D(q; θ): ω² (B, n_q, m) ascending and eigenvectors (B, n_q, m, m) as columns.

        Vectors are in the Cartesian basis of D (complex), whether or not the real basis is used.
        """
        t = np.ascontiguousarray(theta)
        if self.real:
            from fcinv.forward import _phys_kernels

            vals, vecs = _phys_kernels.eigh_real(
                self.Mc, self.Mp, self.nblk, self.bstart, self.bdup, t, _threads()
            )
            order = np.argsort(vals, axis=2, kind="stable")
            vals = np.take_along_axis(vals, order, axis=2)
            vecs = np.take_along_axis(vecs, order[:, :, None, :], axis=3)
            return vals, np.einsum("ij,qjk,bqkn->bqin", self.U.conj().T, self.basis, vecs)
        vals, vecs = _kernels.eigh_complex(self._Hc, self._Hp, self._nblk, self._bstart, t, _threads())
        return vals, np.einsum("qij,bqjn->bqin", self._W, vecs)

    def min_omega2(self, theta: np.ndarray) -> np.ndarray:
        """Smallest ω² over the q-points, per sample: shape (B,)."""
        if self.real:
            return _kernels.min_eigenvalue_real(
                self.Mc, self.Mp, self.nblk, self.bstart, self.bdup, np.ascontiguousarray(theta), _threads()
            )
        return _kernels.min_eigenvalue_complex(
            self._Hc, self._Hp, self._nblk, self._bstart, np.ascontiguousarray(theta), _threads()
        )


def _split_pairs(mats: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """Basis splitting a block whose every eigenvalue is doubly degenerate into two identical halves.

    When symmetry forces all eigenvalues of a block into pairs (two-dimensional
    irreducible representations, or band sticking on a zone face of a
    non-symmorphic crystal such as diamond's X–W), every matrix of the block's span
    is A ⊗ 1₂ in a suitable basis. Returns that orthogonal basis (columns: first
    half, then second half), or None when the block is not of that form.
    """
    m = mats.shape[-1]
    scale = np.abs(mats).max() or 1.0
    X = np.einsum("k,kij->ij", rng.normal(size=len(mats)), mats)
    w, V = np.linalg.eigh(0.5 * (X + X.T))
    if m % 2 or not np.allclose(w[0::2], w[1::2], rtol=1e-9, atol=1e-12 * scale):
        return None
    pairs = [V[:, 2 * j : 2 * j + 2] for j in range(m // 2)]
    W = [np.eye(2)]
    for j in range(1, m // 2):
        for _ in range(4):
            Y = np.einsum("k,kij->ij", rng.normal(size=len(mats)), mats)
            B = pairs[0].T @ (0.5 * (Y + Y.T)) @ pairs[j]
            a = np.sqrt(abs(np.linalg.det(B)))
            if a > 1e-8 * scale:
                W.append((B / a).T)
                break
        else:
            return None
    U = np.concatenate([pairs[j] @ W[j] for j in range(m // 2)], axis=1)
    U = U[:, [2 * j for j in range(m // 2)] + [2 * j + 1 for j in range(m // 2)]]
    R = np.einsum("ji,kjl,lm->kim", U, mats, U)
    h = m // 2
    if max(np.abs(R[:, :h, h:]).max(), np.abs(R[:, :h, :h] - R[:, h:, h:]).max()) > 1e-10 * scale:
        return None
    return U


def _block_diagonalise(
    Mc: np.ndarray, Mp: np.ndarray, theta0: np.ndarray, seed: int = 12345, return_basis: bool = False
):
    """Rotate every q's matrices into their common finest block-diagonal form.

    All D(q; θ) at one q lie in span{Mc(q), Mp(q)}; symmetry (the little group of q)
    makes them share invariant subspaces. The eigenvectors of a generic member of the
    span, grouped by which of them any basis matrix couples, give those blocks.
    Blocks whose eigenvalues all come in symmetry-forced pairs are split into two
    identical halves; the second is flagged so the kernel copies its eigenvalues.
    Returns the rotated (block-diagonal) matrices, the number of blocks per q, the
    block offsets (n_q, m + 1) and the duplicate flags (n_q, m). Within each block the basis diagonalises the
    reference matrix Mc + Σ θ0_p Mp, so Jacobi sweeps start close to convergence.
    With ``return_basis`` also the orthogonal basis per q, shape (n_q, m, m): rotated = basisᵀ · M · basis.
    """
    rng = np.random.default_rng(seed)
    nq, m, _ = Mc.shape
    Mc2 = np.empty_like(Mc)
    Mp2 = np.empty_like(Mp)
    nblk = np.zeros(nq, dtype=np.int64)
    bstart = np.zeros((nq, m + 1), dtype=np.int64)
    bdup = np.zeros((nq, m), dtype=np.bool_)
    basis = np.zeros((nq, m, m))
    for q in range(nq):
        mats = np.concatenate([Mc[q][None], Mp[:, q]])
        scale = np.abs(mats).max() or 1.0
        X = np.einsum("k,kij->ij", rng.normal(size=len(mats)), mats)
        _, V = np.linalg.eigh(0.5 * (X + X.T))
        rot = np.einsum("ji,kjl,lm->kim", V, mats, V)
        adj = np.any(np.abs(rot) > 1e-11 * scale, axis=0)
        label = -np.ones(m, dtype=int)
        nlab = 0
        for i in range(m):
            if label[i] >= 0:
                continue
            stack, label[i] = [i], nlab
            while stack:
                u = stack.pop()
                for v in np.nonzero(adj[u])[0]:
                    if label[v] < 0:
                        label[v] = nlab
                        stack.append(v)
            nlab += 1
        order = np.argsort(label, kind="stable")
        rot = rot[:, order][:, :, order]
        sizes = np.bincount(label)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        # split blocks made of doubly degenerate pairs into two identical halves
        new_sizes, new_dup = [], []
        T = np.eye(m)
        for a, b in zip(starts[:-1], starts[1:]):
            U = _split_pairs(rot[:, a:b, a:b], rng) if b - a >= 2 else None
            if U is None:
                new_sizes.append(b - a)
                new_dup.append(False)
            else:
                T[a:b, a:b] = U
                new_sizes += [(b - a) // 2, (b - a) // 2]
                new_dup += [False, True]
        rot = np.einsum("ji,kjl,lm->kim", T, rot, T)
        sizes = np.array(new_sizes)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        bdup[q, : len(new_dup)] = new_dup
        mask = np.zeros((m, m), dtype=bool)
        for a, b in zip(starts[:-1], starts[1:]):
            mask[a:b, a:b] = True
        rot[:, ~mask] = 0.0
        ref = rot[0] + np.einsum("k,kij->ij", theta0, rot[1:])
        W = np.zeros((m, m))
        for a, b in zip(starts[:-1], starts[1:]):
            _, W[a:b, a:b] = np.linalg.eigh(ref[a:b, a:b])
        rot = np.einsum("ji,kjl,lm->kim", W, rot, W)
        rot[:, ~mask] = 0.0
        basis[q] = V[:, order] @ T @ W
        Mc2[q] = rot[0]
        Mp2[:, q] = rot[1:]
        nblk[q] = len(sizes)
        bstart[q, : len(starts)] = starts
    if return_basis:
        return np.ascontiguousarray(Mc2), np.ascontiguousarray(Mp2), nblk, bstart, bdup, basis
    return np.ascontiguousarray(Mc2), np.ascontiguousarray(Mp2), nblk, bstart, bdup


#: the tabulated normal CDF used by the broadening kernels
_CDF = _kernels.cdf_table()


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _signed_mev(omega2: np.ndarray) -> np.ndarray:
    return np.sign(omega2) * np.sqrt(np.abs(omega2)) * EV_A2_AMU_TO_MEV


def mesh_qpoints(space: FCSpace, mesh: int) -> np.ndarray:
    """Irreducible points of a Γ-centred ``mesh``³ grid (Γ excluded), conventional r.l.u."""
    import spglib

    c = space.crystal
    _, grid = spglib.get_ir_reciprocal_mesh(
        [mesh] * 3, (c.lattice, c.positions, c.numbers), is_shift=[0, 0, 0]
    )
    mapping, _ = spglib.get_ir_reciprocal_mesh(
        [mesh] * 3, (c.lattice, c.positions, c.numbers), is_shift=[0, 0, 0]
    )
    frac = grid[np.unique(mapping)] / float(mesh)
    frac = frac[np.any(frac != 0, axis=1)]
    to_frac = np.linalg.inv(c.conventional_lattice).T @ c.lattice.T  # q_frac = q_rlu @ to_frac
    return frac @ np.linalg.inv(to_frac)


class FreeParameters:
    """The varied parameters of a forward model: ``free`` names within ``theta_ref``.

    Shared by :class:`ForwardModel` and :class:`~fcinv.forward.physical.PhysicalModel`; the
    class using it sets ``free`` (list of names), ``free_idx`` (their indices into the space)
    and ``theta_ref`` (shape (n_params,), eV/Å²).
    """

    free: list[str]
    free_idx: np.ndarray
    theta_ref: np.ndarray

    @property
    def names(self) -> list[str]:
        """Names of the varied parameters, in θ order."""
        return list(self.free)

    @property
    def k(self) -> int:
        """Number of varied parameters."""
        return len(self.free)

    @property
    def theta0(self) -> np.ndarray:
        """Reference values of the varied parameters, shape (k,)."""
        return self.theta_ref[self.free_idx].copy()

    def full_theta(self, theta) -> np.ndarray:
        """Expand varied parameters (B, k) to full θ vectors (B, n_params)."""
        t = self.check(theta)
        full = np.repeat(self.theta_ref[None], len(t), axis=0)
        full[:, self.free_idx] = t
        return full

    def check(self, theta) -> np.ndarray:
        """Validate θ (shape (k,) or (B, k)) and return it as (B, k) float64."""
        t = np.asarray(theta, dtype=float)
        if t.ndim == 1:
            t = t[None]
        if t.ndim != 2 or t.shape[1] != self.k:
            raise ForceConstantError(
                f"theta has shape {np.shape(theta)}; the model varies {self.k} parameters ({', '.join(self.free)}). Pass one value per name (or a (batch, {self.k}) array)."
            )
        if not np.all(np.isfinite(t)):
            bad = int(np.argmax(~np.all(np.isfinite(t), axis=1)))
            raise ForceConstantError(
                f"theta row {bad} contains NaN or inf. Pass finite force constants (eV/Å²)."
            )
        return np.ascontiguousarray(t)


class ForwardModel(FreeParameters):
    """Batched Born–von Kármán forward model on a spectrum grid.

    Parameters
    ----------
    space
        The symmetry-reduced FC space.
    grid
        The (q, E) grid of the spectra.
    theta_ref
        Shape (n_params,), eV/Å²: the reference θ; parameters not in ``free`` stay here.
    reference
        Optional full reference FC set for D_ref (e.g. from phonopy); ``theta_ref`` should be
        its projection (see :meth:`from_pairs`).
    free
        Names of the varied parameters, in the order θ is passed; default all.
    broadening
        Energy broadening; default FWHM 1.2 meV.
    mesh
        Size of the Γ-centred full-zone mesh used, with the path, by the stability test.
    """

    def __init__(
        self,
        space: FCSpace,
        grid: SpectrumGrid,
        theta_ref,
        *,
        reference: PairFC | None = None,
        free: Sequence[str] | None = None,
        broadening: Broadening | None = None,
        mesh: int = 4,
    ):
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
        self.broadening = broadening or Broadening()
        self.mesh = mesh
        self.path = LinearDynamics(space, grid.q_rlu, self.theta_ref, self.free_idx, reference)
        self._mesh_dyn: LinearDynamics | None = None
        e = grid.energy_edges
        steps = np.diff(e)
        if not np.allclose(steps, steps[0], rtol=1e-9, atol=1e-12):
            raise ForceConstantError(
                "the forward model needs equally spaced energy bins. Build the grid with a constant step."
            )

    # ------------------------------------------------------------ construction
    @classmethod
    def from_pairs(cls, space: FCSpace, grid: SpectrumGrid, pairs: PairFC, **kw) -> ForwardModel:
        """Use a full FC set as D_ref, with θ_ref its projection onto ``space``."""
        proj = space.project(pairs)
        return cls(space, grid, proj.theta, reference=pairs, **kw)

    # ---------------------------------------------------------------- physics
    def frequencies(self, theta, q_rlu: np.ndarray | None = None) -> np.ndarray:
        """Signed phonon energies, shape (B, n_q, n_modes), meV (negative = imaginary).

        ``q_rlu`` defaults to the grid's path; other q-points are computed on the fly.
        """
        t = self.check(theta)
        dyn = (
            self.path
            if q_rlu is None
            else LinearDynamics(self.space, q_rlu, self.theta_ref, self.free_idx, self.reference)
        )
        return _signed_mev(dyn.omega2(t))

    def spectra(self, theta, *, return_frequencies: bool = False):
        """I(q, E) images, shape (B, n_q, n_E) float32 (and energies (B, n_q, m) meV if asked)."""
        t = self.check(theta)
        e = self.grid.energy_edges
        br = self.broadening
        B = len(t)
        m = self.path.Mc.shape[-1]
        out = np.zeros((B, self.grid.n_q, self.grid.n_e), dtype=np.float32)
        freqs = np.empty((B, self.grid.n_q, m) if return_frequencies else (1, 1, 1))
        if self.path.real:
            p = self.path
            _kernels.spectra_real(
                p.Mc,
                p.Mp,
                p.nblk,
                p.bstart,
                p.bdup,
                t,
                EV_A2_AMU_TO_MEV,
                float(e[0]),
                float(e[1] - e[0]),
                self.grid.n_e,
                br.fwhm0,
                br.fwhm1,
                br.nsig,
                *_CDF,
                out,
                freqs,
                return_frequencies,
                _threads(),
            )
        else:
            f = _signed_mev(self.path.omega2(t))
            out = _kernels.broaden(
                f,
                np.ones_like(f),
                float(e[0]),
                float(e[1] - e[0]),
                self.grid.n_e,
                br.fwhm0,
                br.fwhm1,
                br.nsig,
                *_CDF,
                _threads(),
            )
            freqs = f
        return (out, freqs) if return_frequencies else out

    def lowest_energy(self, theta) -> np.ndarray:
        """Lowest signed mode energy over the path and the stability mesh, per sample: (B,) meV."""
        t = self.check(theta)
        if self._mesh_dyn is None:
            self._mesh_dyn = LinearDynamics(
                self.space, mesh_qpoints(self.space, self.mesh), self.theta_ref, self.free_idx, self.reference
            )
        lo = np.minimum(self.path.min_omega2(t), self._mesh_dyn.min_omega2(t))
        return _signed_mev(lo)

    def is_stable(self, theta, tol_meV: float = STABILITY_TOL_MEV) -> np.ndarray:
        """True where no mode on the path or the mesh is imaginary beyond ``tol_meV``: (B,) bool."""
        return self.lowest_energy(theta) > -tol_meV

    def describe(self) -> dict:
        """JSON-able description stored with datasets and models."""
        return {
            "material": self.space.crystal.name,
            "cutoff_A": self.space.cutoff,
            "all_names": list(self.space.names),
            "free": list(self.free),
            "theta_ref": self.theta_ref.tolist(),
            "reference": "full FC set" if self.reference is not None else "theta_ref",
            "broadening": self.broadening.as_dict(),
            "intensity": "every mode weight 1; no eigenvectors, Debye-Waller or Bose factor",
            "stability_mesh": self.mesh,
            "stability_tol_meV": STABILITY_TOL_MEV,
        }

    def torch(self, device: str = "cpu", dtype=None):
        """A differentiable torch twin of this model (see :class:`fcinv.forward.torch_backend.TorchForward`)."""
        from fcinv.forward.torch_backend import TorchForward

        return TorchForward(self, device=device, dtype=dtype)
