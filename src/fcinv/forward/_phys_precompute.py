"""Coverage precompute of the physical forward model (mixin of :class:`~fcinv.forward.PhysicalModel`).

Per sample point and energy bin, the coverage-weighted structure-factor matrices M_k(s, j),
packed block by block for the kernels; the sample points (path points or 4D-bin positions merged
by the point group) and the check that the symmetry operations map D(q) onto D(Sq + G).
"""

from __future__ import annotations

import logging

import numpy as np

from fcinv.forward import _phys_kernels as pk
from fcinv.forward._phys_common import (
    DW_ORDER,
    SF_TO_MBARN,
    PhysicalModelError,
    _cartesian_ops,
    _composition_table,
    _inverse_index,
    real_form,
)
from fcinv.forward._phys_lanes import LANES

log = logging.getLogger("fcinv.forward.physical")


class CoveragePrecomputeMixin:
    """The coverage precompute of :class:`~fcinv.forward.physical.PhysicalModel`."""

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
        nord = (3 if self._cumulant else DW_ORDER + 1) if self.dw == "theta" else 1
        nk = nord * len(fams)
        g = self.grid
        # packing offsets
        nblk, bstart = dyn.nblk, dyn.bstart
        bpoff = np.zeros_like(bstart)
        npack = np.zeros(n_pts, dtype=np.int64)
        for sidx in range(n_pts):
            sizes = np.diff(bstart[sidx, : nblk[sidx] + 1])
            tri = -(-(sizes * (sizes + 1) // 2) // LANES) * LANES  # padded: whole SIMD vectors
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
        #: d Σ_s tr D(q_s; θ) / dθ: the order in which spectra() groups a batch into lanes
        self._stiffness = np.einsum("psii->p", dyn.Mp)
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
