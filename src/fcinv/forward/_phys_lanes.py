"""SIMD-lane kernels of the physical forward model: ``LANES`` θ side by side.

:func:`physical_spectra_lanes` computes what :func:`fcinv.forward._phys_kernels.physical_spectra`
does for a batch whose size is a multiple of ``LANES``, with the per-mode helpers of that module.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from fcinv.forward._jit import cached_njit
from fcinv.forward._kernels import _cdf
from fcinv.forward._phys_kernels import _exp_small, _mode_amplitude, _sigma_at

#: θ samples processed together by the lane kernels (one SIMD vector of float64 on AVX-512).
LANES = 8
#: Fast-math flags of the lane kernels: no NaN/inf assumptions (the Jacobi guards divide by zero).
_LANE_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


#: Convergence of the lane Jacobi: off-diagonal norm² below this fraction of the diagonal's (vectors to
#: ~1e-8 of the norm over the gap). 1e-14 moved near-degenerate pairs enough to differ from the one-θ
#: kernel by 2.6e-5 of the peak (tests/forward/test_physical.py allows 1e-5); 1e-16 keeps within it.
LANE_TOL = 1e-16


@cached_njit(inline="always", fastmath=_LANE_MATH)
def _jacobi_lanes(a, w, v, n, cs, sn, done):
    """``LANES`` independent cyclic Jacobi solves at once: ``a`` (n, n, LANES) symmetric, overwritten.

    The same rotation sequence as :func:`fcinv.forward._kernels._jacobi_sym` with vectors (same
    negligible-element rule; converged at ``LANE_TOL`` = 1e-16 instead of 1e-18), each lane with its
    own angles, so the innermost loops run over the lanes.
    An element negligible in all lanes is zeroed without computing a rotation.
    Eigenvalues into ``w`` (n, LANES), vectors as columns of ``v`` (n, n, LANES); not sorted.
    A lane that has converged keeps rotating with angle 0 while the others finish.
    """
    L = a.shape[2]
    for i in range(n):
        for j in range(n):
            for ln in range(L):
                v[i, j, ln] = 0.0
        for ln in range(L):
            v[i, i, ln] = 1.0
    for _sweep in range(60):
        alldone = True
        for ln in range(L):
            off = 0.0
            scale = 0.0
            for p in range(n):
                scale += a[p, p, ln] * a[p, p, ln]
                for q in range(p + 1, n):
                    off += a[p, q, ln] * a[p, q, ln]
            done[ln] = off <= LANE_TOL * scale or off == 0.0
            alldone = alldone and done[ln]
        if alldone:
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                # an element negligible in every lane is zeroed without a rotation (no square roots)
                nskip = 0
                for ln in range(L):
                    if done[ln] or abs(a[p, q, ln]) <= 1e-12 * (abs(a[p, p, ln]) + abs(a[q, q, ln])):
                        nskip += 1
                if nskip == L:
                    for ln in range(L):
                        if not done[ln]:
                            a[p, q, ln] = 0.0
                            a[q, p, ln] = 0.0
                    continue
                for ln in range(L):
                    apq = a[p, q, ln]
                    app = a[p, p, ln]
                    aqq = a[q, q, ln]
                    small = done[ln] or abs(apq) <= 1e-12 * (abs(app) + abs(aqq))
                    den = 1.0 if small else 2.0 * apq
                    th = (aqq - app) / den
                    t = 1.0 / (abs(th) + math.sqrt(th * th + 1.0))
                    if th < 0.0:
                        t = -t
                    if small:
                        t = 0.0
                    c = 1.0 / math.sqrt(t * t + 1.0)
                    cs[ln] = c
                    sn[ln] = t * c
                    a[p, p, ln] = app - t * apq
                    a[q, q, ln] = aqq + t * apq
                    if not done[ln]:
                        a[p, q, ln] = 0.0
                        a[q, p, ln] = 0.0
                for r in range(n):
                    if r != p and r != q:
                        for ln in range(L):
                            arp = a[r, p, ln]
                            arq = a[r, q, ln]
                            x = cs[ln] * arp - sn[ln] * arq
                            y = sn[ln] * arp + cs[ln] * arq
                            a[r, p, ln] = x
                            a[p, r, ln] = x
                            a[r, q, ln] = y
                            a[q, r, ln] = y
                for r in range(n):
                    for ln in range(L):
                        vrp = v[r, p, ln]
                        vrq = v[r, q, ln]
                        v[r, p, ln] = cs[ln] * vrp - sn[ln] * vrq
                        v[r, q, ln] = sn[ln] * vrp + cs[ln] * vrq
    for i in range(n):
        for ln in range(L):
            w[i, ln] = a[i, i, ln]


@cached_njit(inline="always", fastmath=_LANE_MATH)
def _tile4(yyt, packed, o0, nps, n, acc, row0):
    """acc[row0 + i, :] = Σ_r yyt[:, r] · packed[o0 + i·nps + r] for i < 4: four rows × ``LANES`` (= 8) lanes.

    Written out as 32 named accumulators so that they stay in four vector registers and the four
    rows' multiply-add chains overlap (a loop over an accumulator array is latency-bound).
    ``yyt``, ``packed`` and ``acc`` are float32 and so are the accumulators (a sum of ~20 products:
    relative rounding ~1e-6, far inside the model's error budget). numba leaves LLVM's SLP vectoriser
    off, so the loop vectoriser takes the loop over r (each accumulator a vector of partial sums, reduced
    at the end): with the lanes' values of one r contiguous in ``yyt`` (layout (LANES, n)) and unsigned
    indices (no negative-index wrap-around select), both operands are plain vector loads; with the
    (n, LANES) layout and signed indices it gathered them (2–3× slower per tile).
    """
    z = np.float32(0.0)
    s00 = s01 = s02 = s03 = s04 = s05 = s06 = s07 = z
    s10 = s11 = s12 = s13 = s14 = s15 = s16 = s17 = z
    s20 = s21 = s22 = s23 = s24 = s25 = s26 = s27 = z
    s30 = s31 = s32 = s33 = s34 = s35 = s36 = s37 = z
    u0 = np.uint64(o0)
    un = np.uint64(nps)
    u1 = u0 + un
    u2 = u1 + un
    u3 = u2 + un
    for r in range(n):
        ur = np.uint64(r)
        y0 = yyt[np.uint64(0), ur]
        y1 = yyt[np.uint64(1), ur]
        y2 = yyt[np.uint64(2), ur]
        y3 = yyt[np.uint64(3), ur]
        y4 = yyt[np.uint64(4), ur]
        y5 = yyt[np.uint64(5), ur]
        y6 = yyt[np.uint64(6), ur]
        y7 = yyt[np.uint64(7), ur]
        p = packed[u0 + ur]
        s00 += y0 * p
        s01 += y1 * p
        s02 += y2 * p
        s03 += y3 * p
        s04 += y4 * p
        s05 += y5 * p
        s06 += y6 * p
        s07 += y7 * p
        p = packed[u1 + ur]
        s10 += y0 * p
        s11 += y1 * p
        s12 += y2 * p
        s13 += y3 * p
        s14 += y4 * p
        s15 += y5 * p
        s16 += y6 * p
        s17 += y7 * p
        p = packed[u2 + ur]
        s20 += y0 * p
        s21 += y1 * p
        s22 += y2 * p
        s23 += y3 * p
        s24 += y4 * p
        s25 += y5 * p
        s26 += y6 * p
        s27 += y7 * p
        p = packed[u3 + ur]
        s30 += y0 * p
        s31 += y1 * p
        s32 += y2 * p
        s33 += y3 * p
        s34 += y4 * p
        s35 += y5 * p
        s36 += y6 * p
        s37 += y7 * p
    acc[row0 + 0, 0] = s00
    acc[row0 + 0, 1] = s01
    acc[row0 + 0, 2] = s02
    acc[row0 + 0, 3] = s03
    acc[row0 + 0, 4] = s04
    acc[row0 + 0, 5] = s05
    acc[row0 + 0, 6] = s06
    acc[row0 + 0, 7] = s07
    acc[row0 + 1, 0] = s10
    acc[row0 + 1, 1] = s11
    acc[row0 + 1, 2] = s12
    acc[row0 + 1, 3] = s13
    acc[row0 + 1, 4] = s14
    acc[row0 + 1, 5] = s15
    acc[row0 + 1, 6] = s16
    acc[row0 + 1, 7] = s17
    acc[row0 + 2, 0] = s20
    acc[row0 + 2, 1] = s21
    acc[row0 + 2, 2] = s22
    acc[row0 + 2, 3] = s23
    acc[row0 + 2, 4] = s24
    acc[row0 + 2, 5] = s25
    acc[row0 + 2, 6] = s26
    acc[row0 + 2, 7] = s27
    acc[row0 + 3, 0] = s30
    acc[row0 + 3, 1] = s31
    acc[row0 + 3, 2] = s32
    acc[row0 + 3, 3] = s33
    acc[row0 + 3, 4] = s34
    acc[row0 + 3, 5] = s35
    acc[row0 + 3, 6] = s36
    acc[row0 + 3, 7] = s37


@cached_njit(parallel=True, fastmath=_LANE_MATH)
def physical_spectra_lanes(
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
    """:func:`physical_spectra` for a batch whose size is a multiple of ``LANES``, θ in SIMD lanes.

    Same arguments and result (to rounding): per pixel, sample point and group of ``LANES`` θ,
    the blocks are diagonalised side by side (:func:`_jacobi_lanes`) and every mode's quadratic
    forms yᵀ M_k(s, j) y run over the lanes, each lane keeping its own ±``nsig``σ window.
    """
    B, k = theta.shape
    # L is LANES read at run time (B is a multiple of LANES): with the compile-time 8, LLVM unrolls every
    # loop over the lanes and, numba leaving its SLP vectoriser off, keeps them scalar; with a run-time
    # trip count the loop vectoriser takes them (10 % less CPU per spectrum, Ge run, 300 K)
    L = B // (B // LANES)
    m = Mc.shape[1]
    nk = ck.shape[1]
    nchunk = B // L
    nthreads = pbound.shape[0] - 1
    for t in prange(nthreads):
        a = np.empty((m, m, L))
        w = np.empty((m, L))
        v = np.empty((m, m, L))
        yyt = np.empty((L, m * (m + 1) // 2 + L), dtype=np.float32)
        sp = np.empty((n_e, L))
        cs = np.empty(L)
        sn = np.empty(L)
        done = np.empty(L, dtype=np.bool_)
        el = np.empty(L)
        inv = np.empty(L)
        amp = np.empty(L)
        lol = np.empty(L, dtype=np.int64)
        hil = np.empty(L, dtype=np.int64)
        gl = np.empty((n_e + 4, L))
        acc = np.empty((nk * (n_e + 4), L), dtype=np.float32)
        ckl = np.empty((nk, L))
        for p in range(pbound[t], pbound[t + 1]):
            for ch in range(nchunk):
                b0 = ch * L
                kmax = 0
                for kk in range(nk):
                    for ln in range(L):
                        ckl[kk, ln] = ck[b0 + ln, kk]
                        if ckl[kk, ln] != 0.0:
                            kmax = kk + 1
                for j in range(n_e):
                    for ln in range(L):
                        sp[j, ln] = 0.0
                for s in range(pstart[p], pstart[p + 1]):
                    base = poff[s]
                    nps = npack[s]
                    for blk in range(nblk[s]):
                        o = bstart[s, blk]
                        sz = bstart[s, blk + 1] - o
                        if not bdup[s, blk]:
                            for r in range(sz):
                                for c in range(r, sz):
                                    for ln in range(L):
                                        x = Mc[s, o + r, o + c]
                                        for pp in range(k):
                                            x += theta[b0 + ln, pp] * Mp[pp, s, o + r, o + c]
                                        a[r, c, ln] = x
                                        a[c, r, ln] = x
                            if sz == 1:
                                for ln in range(L):
                                    w[0, ln] = a[0, 0, ln]
                                    v[0, 0, ln] = 1.0
                            else:
                                _jacobi_lanes(a, w, v, sz, cs, sn, done)
                        bo = bpoff[s, blk]
                        for i in range(sz):
                            jlo = n_e
                            jhi = 0
                            for ln in range(L):
                                lam = w[i, ln]
                                lol[ln] = 0
                                hil[ln] = 0
                                amp[ln] = 0.0
                                el[ln] = 0.0
                                inv[ln] = 0.0
                                if lam <= 0.0:
                                    continue
                                e = math.sqrt(lam) * conv
                                if e <= e_min_mode:
                                    continue
                                sigma = _sigma_at(e, fw_tab, fw_e0, fw_de)
                                lo = max(int(math.floor((e - nsig * sigma - e_lo) / de)), 0)
                                hi = min(int(math.ceil((e + nsig * sigma - e_lo) / de)), n_e)
                                if hi <= lo:
                                    continue
                                el[ln] = e
                                inv[ln] = 1.0 / sigma
                                amp[ln] = _mode_amplitude(e, kT)
                                lol[ln] = lo
                                hil[ln] = hi
                                jlo = min(jlo, lo)
                                jhi = max(jhi, hi)
                            if jhi <= jlo:
                                continue
                            n = 0
                            for r in range(sz):
                                for ln in range(L):
                                    yyt[ln, n] = v[r, i, ln] * v[r, i, ln]
                                n += 1
                                for c in range(r + 1, sz):
                                    for ln in range(L):
                                        yyt[ln, n] = 2.0 * v[r, i, ln] * v[c, i, ln]
                                    n += 1
                            # the block's triangle is padded to whole vectors (zeros in packed)
                            n8 = (n + L - 1) // L * L
                            for r in range(n, n8):
                                for ln in range(L):
                                    yyt[ln, r] = 0.0
                            # all rows (k, j) of the union window, four at a time
                            nw = jhi - jlo
                            nw4 = (nw + 3) // 4 * 4
                            for kk in range(kmax):
                                for jj in range(0, nw4, 4):
                                    o4 = base + (kk * n_e + jlo + jj) * nps + bo
                                    _tile4(yyt, packed, o4, nps, n8, acc, kk * nw4 + jj)
                            # bin-integrated Gaussians × (n+1)/ω per lane (table look-ups: scalar)
                            for ln in range(L):
                                prv = _cdf((e_lo + jlo * de - el[ln]) * inv[ln], table, zmax, scale)
                                for jj in range(nw):
                                    j = jlo + jj
                                    nxt = _cdf((e_lo + (j + 1) * de - el[ln]) * inv[ln], table, zmax, scale)
                                    gl[jj, ln] = 0.0 if j < lol[ln] or j >= hil[ln] else (nxt - prv) * amp[ln]
                                    prv = nxt
                            # the quadratic forms' combination: branch-free loops over the lanes
                            if cumulant and kmax > 2:
                                for jj in range(nw):
                                    for ln in range(L):
                                        r0 = acc[jj, ln]
                                        ir = 1.0 / max(r0, 1e-30)
                                        k1 = acc[nw4 + jj, ln] * ir
                                        k2 = 2.0 * acc[2 * nw4 + jj, ln] * ir - k1 * k1
                                        z = ckl[1, ln] * k1 + 0.5 * ckl[2, ln] * k2
                                        z = min(max(z, -1.0), 1.0)
                                        sp[jlo + jj, ln] += gl[jj, ln] * r0 * _exp_small(z)
                            elif cumulant and kmax > 1:
                                for jj in range(nw):
                                    for ln in range(L):
                                        r0 = acc[jj, ln]
                                        z = ckl[1, ln] * acc[nw4 + jj, ln] / max(r0, 1e-30)
                                        z = min(max(z, -1.0), 1.0)
                                        sp[jlo + jj, ln] += gl[jj, ln] * r0 * _exp_small(z)
                            elif cumulant or kmax == 1:
                                for jj in range(nw):
                                    for ln in range(L):
                                        sp[jlo + jj, ln] += gl[jj, ln] * ckl[0, ln] * acc[jj, ln]
                            else:
                                for jj in range(nw):
                                    for ln in range(L):
                                        q = 0.0
                                        for kk in range(kmax):
                                            q += ckl[kk, ln] * acc[kk * nw4 + jj, ln]
                                        sp[jlo + jj, ln] += gl[jj, ln] * q
                for j in range(n_e):
                    f = efac[j] / de
                    for ln in range(L):
                        spectra[b0 + ln, p, j] = sp[j, ln] * f
