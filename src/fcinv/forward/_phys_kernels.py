"""Numba kernels of the physical forward model: batched real-symmetric eigenpairs and intensities.

Kernels receive plain arrays; each thread owns its work arrays. The matrices are the
block-diagonal real matrices of :class:`fcinv.forward.physical.RealForm`. The one-θ kernels live
here; the ``LANES``-θ SIMD kernels in :mod:`fcinv.forward._phys_lanes` share the helpers below.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from fcinv.forward._jit import cached_njit
from fcinv.forward._kernels import _cdf, _jacobi_sym


@cached_njit(inline="always")
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
        _jacobi_sym(a, w, v, sz, True)
    return sz


@cached_njit(parallel=True)
def eigh_real(Mc, Mp, nblk, bstart, bdup, theta, nthreads):
    """Eigenvalues (B, n_q, m) and eigenvectors (B, n_q, m, m) in the block basis.

    Vectors are columns; modes are not sorted across blocks.

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


@cached_njit(parallel=True)
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


@cached_njit(inline="always")
def _sigma_at(e, fw_tab, fw_e0, fw_de):
    """Gaussian σ (meV) at mode energy ``e`` from the FWHM table (linear interpolation, clamped)."""
    nfw = fw_tab.shape[0]
    x = (e - fw_e0) / fw_de
    if x <= 0.0:
        fw = fw_tab[0]
    elif x >= nfw - 1:
        fw = fw_tab[nfw - 1]
    else:
        ix = int(x)
        fx = x - ix
        fw = fw_tab[ix] + fx * (fw_tab[ix + 1] - fw_tab[ix])
    return fw / 2.3548200450309493


@cached_njit(inline="always")
def _mode_amplitude(e, kT):
    """(n(ω) + 1)/ω at mode energy ``e`` (meV), k_BT = ``kT`` meV (0: 1/ω)."""
    am = 1.0 / e
    if kT > 0.0:
        am = am / (-math.expm1(-e / kT))
    return am


@cached_njit(inline="always")
def _exp_small(z):
    """exp(z) for |z| <= 0.6 (the Debye–Waller changes): degree-6 Horner, relative error < 6e-6."""
    return 1.0 + z * (1.0 + z / 2.0 * (1.0 + z / 3.0 * (1.0 + z / 4.0 * (1.0 + z / 5.0 * (1.0 + z / 6.0)))))


@cached_njit(parallel=True, fastmath=True)
def physical_spectra(
    Mc,
    Mp,
    nblk,
    bstart,
    bdup,
    theta,
    conv,
    e_lo,
    de,
    n_e,
    fw_tab,
    fw_e0,
    fw_de,
    nsig,
    table,
    zmax,
    scale,
    pstart,
    poff,
    bpoff,
    npack,
    packed,
    ck,
    cumulant,
    kT,
    e_min_mode,
    efac,
    spectra,
    pbound,
):
    """Coherent one-phonon images (B, n_pix, n_E) of the folded measurement for a batch of θ.

    Sample points s (the rows of ``Mc``) are grouped by output pixel: pixel p owns points
    ``pstart[p]:pstart[p+1]``. For each point and sample b the blocks of D(q_s; θ_b) are
    diagonalised (vectors y in the block basis); mode ν of energy ω > ``e_min_mode`` adds, in
    every energy bin j of its ±``nsig``σ window,

        efac_j · (n(ω)+1)/ω · Σ_k ck[b, k] yᵀ M_k(s, j) y · ∫_bin G(E − ω; σ(ω)) dE / ΔE

    to pixel p, σ from the FWHM table ``fw_tab`` (meV, from ``fw_e0`` in steps ``fw_de``).
    Thread t computes the pixels ``pbound[t]:pbound[t+1]`` (``len(pbound) - 1`` threads).
    M_k(s, j) are packed block by block (upper triangles, row-major) in ``packed``: point s
    starts at ``poff[s]`` with layout [k][j][npack[s]], block ``blk`` at ``bpoff[s, blk]``.

    With ``cumulant`` the Debye–Waller change is applied as r₀ exp(x κ₁ + x² κ₂/2) with the
    cumulants κ₁ = r₁/r₀, κ₂ = 2r₂/r₀ − κ₁² of the intensity-weighted |Q|² (r_k = yᵀ M_k y;
    ``ck[b]`` = [1, x, x²], the last 0 when the second cumulant is not needed) instead of the
    series Σ_k ck[b, k] r_k.
    """
    B, k = theta.shape
    m = Mc.shape[1]
    nk = ck.shape[1]
    nthreads = pbound.shape[0] - 1
    for t in prange(nthreads):
        a = np.empty((m, m))
        w = np.empty(m)
        v = np.empty((m, m))
        yy = np.empty(m * (m + 1) // 2)
        for p in range(pbound[t], pbound[t + 1]):
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
                            sigma = _sigma_at(e, fw_tab, fw_e0, fw_de)
                            lo = int(math.floor((e - nsig * sigma - e_lo) / de))
                            hi = int(math.ceil((e + nsig * sigma - e_lo) / de))
                            lo = max(lo, 0)
                            hi = min(hi, n_e)
                            if hi <= lo:
                                continue
                            amp = _mode_amplitude(e, kT)
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
                                if cumulant:
                                    off = base + j * nps + bo
                                    r0 = 0.0
                                    for r in range(n):
                                        r0 += yy[r] * packed[off + r]
                                    qf = r0
                                    c = ck[b, 1] if nk > 1 else 0.0
                                    if c != 0.0 and r0 > 0.0:
                                        off = base + (n_e + j) * nps + bo
                                        r1 = 0.0
                                        for r in range(n):
                                            r1 += yy[r] * packed[off + r]
                                        k1 = r1 / r0
                                        z = c * k1
                                        c2 = ck[b, 2] if nk > 2 else 0.0
                                        if c2 != 0.0:
                                            off = base + (2 * n_e + j) * nps + bo
                                            r2 = 0.0
                                            for r in range(n):
                                                r2 += yy[r] * packed[off + r]
                                            z += 0.5 * c2 * (2.0 * r2 / r0 - k1 * k1)
                                        qf = r0 * _exp_small(min(max(z, -1.0), 1.0))
                                else:
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


@cached_njit()
def accumulate_packed(
    ar,
    ai,
    br,
    bi,
    tpt,
    q2,
    e_idx,
    t_idx,
    wts,
    fac,
    nord,
    n_fam,
    fam,
    n_e,
    nblk,
    bstart,
    poff,
    bpoff,
    npack,
    packed,
    allbuf,
):
    """Scatter coverage entries into the packed per-point matrices of one Debye–Waller family.

    ``ar``, ``ai``, ``br``, ``bi`` (n_t, m): real and imaginary parts of two amplitude rows a_t and
    b_t (block basis of the term's point ``tpt[t]``; the same arrays for a diagonal family);
    ``q2[t]`` = |Q_t|², ``fac[t]`` the constant factor of the term. Entry n adds, for every order
    k < ``nord``, ``wts[n]``·fac·|Q|^{2k}/k!·½(ar brᵀ + br arᵀ + ai biᵀ + bi aiᵀ) (block upper
    triangles) into row k·``n_fam`` + ``fam`` at energy bin ``e_idx[n]`` of ``packed``, or, when
    ``e_idx[n]`` < 0, into ``allbuf`` (point s at ``s·nk·P``, layout [row][P], nk = nord·n_fam,
    P = max npack), meant for every energy bin.
    """
    P = npack.max()
    nk = nord * n_fam
    for n in range(e_idx.shape[0]):
        t = t_idx[n]
        s = tpt[t]
        j = e_idx[n]
        f = 0.5 * wts[n] * fac[t]
        for kk in range(nord):
            if kk > 0:
                f = f * q2[t] / kk
            row = kk * n_fam + fam
            if j >= 0:
                off = poff[s] + (row * n_e + j) * npack[s]
            else:
                off = (s * nk + row) * P
            for blk in range(nblk[s]):
                o = bstart[s, blk]
                sz = bstart[s, blk + 1] - o
                idx = off + bpoff[s, blk]
                for r in range(sz):
                    xr = ar[t, o + r]
                    xi = ai[t, o + r]
                    yr = br[t, o + r]
                    yi = bi[t, o + r]
                    for c in range(r, sz):
                        val = f * (
                            xr * br[t, o + c] + yr * ar[t, o + c] + xi * bi[t, o + c] + yi * ai[t, o + c]
                        )
                        if j >= 0:
                            packed[idx] += val
                        else:
                            allbuf[idx] += val
                        idx += 1
