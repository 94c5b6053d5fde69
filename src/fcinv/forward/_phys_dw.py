"""Debye–Waller factor of the physical forward model (mixin of :class:`~fcinv.forward.PhysicalModel`).

The reference tensors W_κ on Euphonic's Monkhorst–Pack grid, the per-θ change of the isotropic
coefficient per symmetry orbit on the reduced Γ-centred grid, and the coefficients the kernels
apply (the order-6 series, or the two-row cumulant form); :mod:`fcinv.forward.physical` documents
the physics.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from fcinv.forward import _phys_kernels as pk
from fcinv.forward._phys_common import (
    DW_ORDER,
    HBAR2_AMU_MEV_A2,
    PhysicalModelError,
    _atom_orbits,
    _cartesian_ops,
    _mp_grid_rlu,
    _reduce_mesh,
    real_form,
)
from fcinv.forward.model import _signed_mev, _threads
from fcinv.units import EV_A2_AMU_TO_MEV

log = logging.getLogger("fcinv.forward.physical")

#: Largest relative error allowed to the first-order cumulant form before the second cumulant is used.
CUMULANT_TOL = 1e-4


class DebyeWallerMixin:
    """The Debye–Waller methods of :class:`~fcinv.forward.physical.PhysicalModel`."""

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
        iso = np.array([np.trace(w) / 3 for w in self._dw_ref])
        #: largest |W_κ − w_κ 1| over the atoms relative to the largest w (0 on cubic sites)
        self._dw_anisotropy = float(
            max(np.abs(w - np.eye(3) * i).max() for w, i in zip(self._dw_ref, iso)) / max(iso.max(), 1e-30)
        )
        if self.dw == "theta":
            cls = _atom_orbits(perms)
            spread = max(float(np.ptp(iso[cls == c])) for c in range(cls.max() + 1))
            if spread > 1e-6 * max(iso.max(), 1e-30):
                raise PhysicalModelError(
                    "dw='theta' needs every atom's Debye–Waller tensor equal in trace within a symmetry "
                    f"orbit; {crystal.name} has {np.round(iso, 6).tolist()} Å². Pass dw='reference'."
                )
            if self._dw_anisotropy > 1e-6:
                # anisotropic sites (hcp Mg): the reference factor exp(−Q·W_κ·Q) stays exact (full
                # tensor); only its change with θ is taken isotropic, exp(−Δw_κ Q²), Δw = Δtr W / 3
                log.debug(
                    "Debye–Waller: anisotropic reference tensors (%.2e); the θ-change is isotropic",
                    self._dw_anisotropy,
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

        Cumulant form: (B, 3) = [1, x, x²]; x is set to 0 when |x| Q²max < 1e-9 and x² to 0 when
        the first-cumulant form's error bound (|x| Q²max)²/8 (Popoviciu: κ₂ <= Q⁴max/4) is below
        ``CUMULANT_TOL`` (relative to each pixel's own intensity).
        """
        B = len(t)
        if self.dw != "theta":
            return np.ones((B, 1))
        fams = self._dw_families()
        dw = self._dw_w(t) - self._dw_w_ref_reduced[None]  # (B, n_cls)
        x = np.stack([-(dw[:, a] + dw[:, b]) for a, b, _ in fams], axis=1)  # (B, n_fam)
        xq = float(np.abs(x).max() * self._q2max)
        # the cumulant form drops the third cumulant of Q² over a pixel's images: its relative error is at
        # most |x|³|κ₃|/6 with |κ₃| <= (Q²max)³/(6√3) (any distribution on [0, Q²max]), i.e. xq³/(36√3)
        if self._cumulant and xq**3 / (36.0 * math.sqrt(3.0)) > 1e-3:
            log.warning(
                "Debye–Waller change %.3g Å² is large for the cumulant form (|ΔwQ²| up to %.2f: the error "
                "bound %.1g of the intensity); pass dw_expansion='taylor' for the order-%d series",
                float(np.abs(dw).max()),
                xq,
                xq**3 / (36.0 * math.sqrt(3.0)),
                DW_ORDER,
            )
        if not self._cumulant and xq > 0.6:
            log.warning(
                "Debye–Waller change %.3g Å² is large for the order-%d expansion (|2ΔwQ²| up to %.2f)",
                float(np.abs(dw).max()),
                DW_ORDER,
                float(np.abs(x).max() * self._q2max),
            )
        if self._cumulant:
            xm = np.abs(x[:, 0]) * self._q2max
            x1 = np.where(xm < 1e-9, 0.0, x[:, 0])
            x2 = np.where(xm**2 / 8.0 < CUMULANT_TOL, 0.0, x[:, 0] ** 2)
            return np.stack([np.ones(B), x1, x2], axis=1)
        ck = np.stack([x**kk for kk in range(DW_ORDER + 1)], axis=1)  # (B, order, n_fam)
        # per sample and family, the orders whose term is below 1e-7 of the factor are dropped
        xm = np.abs(x) * self._q2max
        for kk in range(1, DW_ORDER + 1):
            ck[:, kk][xm**kk / math.factorial(kk) < 1e-7] = 0.0
        return ck.reshape(B, -1)

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
