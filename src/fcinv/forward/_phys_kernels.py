"""Numba kernels of the physical forward model: batched real-symmetric eigenpairs and intensities.

Kernels receive plain arrays; each thread owns its work arrays. The matrices are the
block-diagonal real matrices of :class:`fcinv.forward.model.LinearDynamics`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from fcinv.forward._kernels import _cdf


@njit(cache=True, inline="always")
def _jacobi_eigh(a, w, v, n):
    """Eigenpairs of the symmetric ``a`` (n × n, overwritten): values ``w`` ascending, vectors columns of ``v``.

    Cyclic Jacobi rotations accumulated in ``v``, until the off-diagonal norm is below 1e-9 of the
    diagonal's: the eigenvalues are then exact to second order (~1e-18 relative) and the vectors
    to ~1e-9, also for degenerate eigenvalues.
    """
    for i in range(n):
        for j in range(n):
            v[i, j] = 0.0
        v[i, i] = 1.0
    for _sweep in range(60):
        off = 0.0
        scale = 0.0
        for p in range(n):
            scale += a[p, p] * a[p, p]
            for q in range(p + 1, n):
                off += a[p, q] * a[p, q]
        if off <= 1e-18 * scale or off == 0.0:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                apq = a[p, q]
                if apq == 0.0:
                    continue
                app = a[p, p]
                aqq = a[q, q]
                if abs(apq) < 1e-12 * (abs(app) + abs(aqq)):
                    # negligible: the rotation would move the eigenvalues by ~1e-24 and the vectors by ~1e-12
                    a[p, q] = 0.0
                    a[q, p] = 0.0
                    continue
                theta = (aqq - app) / (2.0 * apq)
                t = 1.0 / (abs(theta) + math.sqrt(theta * theta + 1.0))
                if theta < 0.0:
                    t = -t
                c = 1.0 / math.sqrt(t * t + 1.0)
                s = t * c
                a[p, p] = app - t * apq
                a[q, q] = aqq + t * apq
                a[p, q] = 0.0
                a[q, p] = 0.0
                for r in range(n):
                    if r != p and r != q:
                        arp = a[r, p]
                        arq = a[r, q]
                        x = c * arp - s * arq
                        y = s * arp + c * arq
                        a[r, p] = x
                        a[p, r] = x
                        a[r, q] = y
                        a[q, r] = y
                for r in range(n):
                    vrp = v[r, p]
                    vrq = v[r, q]
                    v[r, p] = c * vrp - s * vrq
                    v[r, q] = s * vrp + c * vrq
    for i in range(n):
        w[i] = a[i, i]
    # insertion sort of the eigenpairs
    for i in range(1, n):
        x = w[i]
        j = i - 1
        while j >= 0 and w[j] > x:
            j -= 1
        j += 1
        if j == i:
            continue
        for r in range(n):
            a[r, 0] = v[r, i]
        for k in range(i, j, -1):
            w[k] = w[k - 1]
            for r in range(n):
                v[r, k] = v[r, k - 1]
        w[j] = x
        for r in range(n):
            v[r, j] = a[r, 0]


@njit(cache=True, inline="always")
def _block_eigh(Mc, Mp, theta, b, q, blk, bstart, k, a, w, v):
    """Eigenpairs of block ``blk`` of D(q; θ_b) into ``w`` (sz,) and ``v`` (sz, sz); returns sz."""
    o = bstart[q, blk]
    sz = bstart[q, blk + 1] - o
    for r in range(sz):
        for c in range(r, sz):
            x = Mc[q, o + r, o + c]
            for p in range(k):
                x += theta[b, p] * Mp[p, q, o + r, o + c]
            a[r, c] = x
            a[c, r] = x
    if sz == 1:
        w[0] = a[0, 0]
        v[0, 0] = 1.0
    else:
        _jacobi_eigh(a, w, v, sz)
    return sz


@njit(parallel=True, cache=True)
def eigh_real(Mc, Mp, nblk, bstart, bdup, theta, nthreads):
    """Eigenvalues (B, n_q, m) and eigenvectors (B, n_q, m, m) in the block basis (columns; unsorted across blocks).

    Mode ``i`` of q lives in the block containing column ``i``; its vector is column ``i``.
    """
    B, k = theta.shape
    nq, m, _ = Mc.shape
    vals = np.zeros((B, nq, m))
    vecs = np.zeros((B, nq, m, m))
    total = B * nq
    chunk = (total + nthreads - 1) // nthreads
    for t in prange(nthreads):
        a = np.empty((m, m))
        w = np.empty(m)
        v = np.empty((m, m))
        for idx in range(t * chunk, min(total, (t + 1) * chunk)):
            b = idx // nq
            q = idx - b * nq
            for blk in range(nblk[q]):
                o = bstart[q, blk]
                sz = bstart[q, blk + 1] - o
                if not bdup[q, blk]:
                    _block_eigh(Mc, Mp, theta, b, q, blk, bstart, k, a, w, v)
                for i in range(sz):
                    vals[b, q, o + i] = w[i]
                    for r in range(sz):
                        vecs[b, q, o + r, o + i] = v[r, i]
    return vals, vecs


@njit(parallel=True, cache=True)
def dw_traces(Mc, Mp, nblk, bstart, bdup, theta, proj, qweight, kT, conv, f_min, nthreads):
    """Per sample and atom: Σ_q weight_q Σ_ν (yᵀ P_κ y) coth(ω/2k_BT)/ω, shape (B, n_atoms), 1/meV.

    ``proj`` (n_q, n_atoms, m, m): the per-atom projectors Σ_α |e_κα|² in the block basis;
    modes below ``f_min`` meV are left out (Euphonic's ``frequency_min``); ``kT`` = 0 gives 1/ω.
    """
    B, k = theta.shape
    nq, m, _ = Mc.shape
    na = proj.shape[1]
    part = np.zeros((nthreads, B, na))
    total = B * nq
    chunk = (total + nthreads - 1) // nthreads
    for t in prange(nthreads):
        a = np.empty((m, m))
        w = np.empty(m)
        v = np.empty((m, m))
        for idx in range(t * chunk, min(total, (t + 1) * chunk)):
            b = idx // nq
            q = idx - b * nq
            for blk in range(nblk[q]):
                o = bstart[q, blk]
                sz = bstart[q, blk + 1] - o
                if not bdup[q, blk]:
                    _block_eigh(Mc, Mp, theta, b, q, blk, bstart, k, a, w, v)
                for i in range(sz):
                    lam = w[i]
                    if lam <= 0.0:
                        continue
                    om = math.sqrt(lam) * conv
                    if om < f_min:
                        continue
                    ft = 1.0 / om
                    if kT > 0.0:
                        ft = ft / math.tanh(om / (2.0 * kT))
                    for at in range(na):
                        s = 0.0
                        for r in range(sz):
                            yr = v[r, i]
                            for c in range(sz):
                                s += yr * v[c, i] * proj[q, at, o + r, o + c]
                        part[t, b, at] += qweight[q] * s * ft
    out = np.zeros((B, na))
    for t in range(nthreads):
        for b in range(B):
            for at in range(na):
                out[b, at] += part[t, b, at]
    return out


@njit(parallel=True, cache=True, fastmath=True)
def physical_spectra(
    Mc, Mp, nblk, bstart, bdup, theta, conv, e_lo, de, n_e, fw_tab, fw_e0, fw_de, nsig,
    table, zmax, scale, pstart, poff, bpoff, npack, packed, ck, kT, e_min_mode, efac, spectra, nthreads,
):
    """Coherent one-phonon images (B, n_pix, n_E) of the folded measurement for a batch of θ.

    Sample points s (the rows of ``Mc``) are grouped by output pixel: pixel p owns points
    ``pstart[p]:pstart[p+1]``. For each point and sample b the blocks of D(q_s; θ_b) are
    diagonalised (vectors y in the block basis); mode ν of energy ω > ``e_min_mode`` adds, in
    every energy bin j of its ±``nsig``σ window,

        efac_j · (n(ω)+1)/ω · Σ_k ck[b, k] yᵀ M_k(s, j) y · ∫_bin G(E − ω; σ(ω)) dE / ΔE

    to pixel p, σ from the FWHM table ``fw_tab`` (meV, from ``fw_e0`` in steps ``fw_de``).
    M_k(s, j) are packed block by block (upper triangles, row-major) in ``packed``: point s
    starts at ``poff[s]`` with layout [k][j][npack[s]], block ``blk`` at ``bpoff[s, blk]``.
    """
    B, k = theta.shape
    nq, m, _ = Mc.shape
    nk = ck.shape[1]
    nfw = fw_tab.shape[0]
    npix = pstart.shape[0] - 1
    chunk = (npix + nthreads - 1) // nthreads
    for t in prange(nthreads):
        a = np.empty((m, m))
        w = np.empty(m)
        v = np.empty((m, m))
        yy = np.empty(m * (m + 1) // 2)
        for p in range(t * chunk, min(npix, (t + 1) * chunk)):
            for b in range(B):
                for j in range(n_e):
                    spectra[b, p, j] = 0.0
            for s in range(pstart[p], pstart[p + 1]):
                base = poff[s]
                nps = npack[s]
                for b in range(B):
                    for blk in range(nblk[s]):
                        o = bstart[s, blk]
                        sz = bstart[s, blk + 1] - o
                        if not bdup[s, blk]:
                            _block_eigh(Mc, Mp, theta, b, s, blk, bstart, k, a, w, v)
                        bo = bpoff[s, blk]
                        for i in range(sz):
                            lam = w[i]
                            if lam <= 0.0:
                                continue
                            e = math.sqrt(lam) * conv
                            if e <= e_min_mode:
                                continue
                            x = (e - fw_e0) / fw_de
                            if x <= 0.0:
                                fw = fw_tab[0]
                            elif x >= nfw - 1:
                                fw = fw_tab[nfw - 1]
                            else:
                                ix = int(x)
                                fx = x - ix
                                fw = fw_tab[ix] + fx * (fw_tab[ix + 1] - fw_tab[ix])
                            sigma = fw / 2.3548200450309493
                            lo = int(math.floor((e - nsig * sigma - e_lo) / de))
                            hi = int(math.ceil((e + nsig * sigma - e_lo) / de))
                            if lo < 0:
                                lo = 0
                            if hi > n_e:
                                hi = n_e
                            if hi <= lo:
                                continue
                            amp = 1.0 / e
                            if kT > 0.0:
                                amp = amp / (-math.expm1(-e / kT))
                            # packed outer product (off-diagonal entries doubled)
                            n = 0
                            for r in range(sz):
                                yr = v[r, i]
                                yy[n] = yr * yr
                                n += 1
                                for c in range(r + 1, sz):
                                    yy[n] = 2.0 * yr * v[c, i]
                                    n += 1
                            inv = 1.0 / sigma
                            prev = _cdf((e_lo + lo * de - e) * inv, table, zmax, scale)
                            for j in range(lo, hi):
                                nxt = _cdf((e_lo + (j + 1) * de - e) * inv, table, zmax, scale)
                                g = nxt - prev
                                prev = nxt
                                if g == 0.0:
                                    continue
                                qf = 0.0
                                for kk in range(nk):
                                    c = ck[b, kk]
                                    if c == 0.0:
                                        continue
                                    off = base + (kk * n_e + j) * nps + bo
                                    sacc = 0.0
                                    for r in range(n):
                                        sacc += yy[r] * packed[off + r]
                                    qf += c * sacc
                                spectra[b, p, j] += amp * qf * g
            for b in range(B):
                for j in range(n_e):
                    spectra[b, p, j] *= efac[j] / de


@njit(cache=True)
def accumulate_packed(ar, ai, tpt, q2, e_idx, t_idx, wts, fac, nk, n_e, nblk, bstart, poff, bpoff, npack, packed, allbuf):
    """Scatter coverage entries into the packed per-point matrices.

    ``ar``, ``ai`` (n_t, m): real and imaginary parts of the amplitude row a_t (block basis of
    its point ``tpt[t]``); ``q2[t]`` = |Q_t|², ``fac[t]`` the constant factor of the term.
    Entry n adds ``wts[n]``·fac·|Q|^{2k}/k!·(ar arᵀ + ai aiᵀ) (block upper triangles) at energy
    bin ``e_idx[n]`` into ``packed``, or, when ``e_idx[n]`` < 0, into ``allbuf`` (point s at
    ``s·nk·P``, layout [k][P], P = max npack), meant for every energy bin.
    """
    P = npack.max()
    for n in range(e_idx.shape[0]):
        t = t_idx[n]
        s = tpt[t]
        j = e_idx[n]
        f = wts[n] * fac[t]
        for kk in range(nk):
            if kk > 0:
                f = f * q2[t] / kk
            if j >= 0:
                off = poff[s] + (kk * n_e + j) * npack[s]
            else:
                off = (s * nk + kk) * P
            for blk in range(nblk[s]):
                o = bstart[s, blk]
                sz = bstart[s, blk + 1] - o
                idx = off + bpoff[s, blk]
                for r in range(sz):
                    xr = ar[t, o + r]
                    xi = ai[t, o + r]
                    for c in range(r, sz):
                        val = f * (xr * ar[t, o + c] + xi * ai[t, o + c])
                        if j >= 0:
                            packed[idx] += val
                        else:
                            allbuf[idx] += val
                        idx += 1
