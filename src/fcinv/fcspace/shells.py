"""Neighbour shells (pair orbits) and their site-symmetric tensor bases, derived from the space group."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcinv.crystal import Crystal
from fcinv.errors import StructureError

_COMPONENTS = ("xx", "yy", "zz", "xy", "yz", "xz", "yx", "zy", "zx")
# flat index (3*a+b) of each component above, the RREF pivot preference order
_COMP_INDEX = (0, 4, 8, 1, 5, 2, 3, 7, 6)
_TOL = 1e-6


# --------------------------------------------------------------------- shells
@dataclass(frozen=True, eq=False)
class Shell:
    """One neighbour shell (pair orbit).

    Attributes
    ----------
    name
        ``"1NN"``, ``"2NN"``, ... by increasing distance.
    distance
        Bond length, Å.
    rep
        Representative pair (i, j, R) with R in primitive lattice units.
    rep_vector
        Cartesian bond vector of the representative, Å.
    basis
        Shape (n_basis, 3, 3): invariant tensors of the representative bond, each with
        1 at its own component and 0 at the other basis components.
    components
        Names of the basis components, e.g. ``("xx", "xy")``.
    i, j, d_conv
        All pairs of the orbit (n_pairs,), (n_pairs,), (n_pairs, 3).
    maps
        Shape (n_pairs, 3, 3): Cartesian matrix C with Φ(pair) = C Φ_rep Cᵀ (or its transpose
        where ``transposed`` is True).
    transposed
        Shape (n_pairs,) bool.
    """

    name: str
    distance: float
    rep: tuple[int, int, tuple[int, int, int]]
    rep_vector: np.ndarray
    basis: np.ndarray
    components: tuple[str, ...]
    i: np.ndarray
    j: np.ndarray
    R: np.ndarray
    d_conv: np.ndarray
    maps: np.ndarray
    transposed: np.ndarray

    @property
    def n_pairs(self) -> int:
        return len(self.i)

    def pair_tensors(self, basis_tensor: np.ndarray) -> np.ndarray:
        """Tensors of every pair of the orbit for a representative tensor, shape (n_pairs, 3, 3)."""
        t = np.einsum("pab,bc,pdc->pad", self.maps, basis_tensor, self.maps)
        t[self.transposed] = t[self.transposed].transpose(0, 2, 1)
        return t


def _null_space(a: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    _, s, vt = np.linalg.svd(a)
    rank = int(np.sum(s > tol * max(1.0, s[0] if len(s) else 1.0)))
    return vt[rank:]


def _rref_basis(ns: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """Reduce a null-space basis (rows, 9 components) to pivots on the preferred components."""
    m = ns[:, list(_COMP_INDEX)].copy()  # columns in preference order
    rows, cols = m.shape
    pivots = []
    r = 0
    for c in range(cols):
        if r >= rows:
            break
        p = r + int(np.argmax(np.abs(m[r:, c])))
        if abs(m[p, c]) < 1e-8:
            continue
        m[[r, p]] = m[[p, r]]
        m[r] /= m[r, c]
        for rr in range(rows):
            if rr != r:
                m[rr] -= m[rr, c] * m[r]
        pivots.append(c)
        r += 1
    m = np.round(m, 12) + 0.0
    basis = np.zeros((rows, 9))
    basis[:, list(_COMP_INDEX)] = m
    return basis.reshape(rows, 3, 3), tuple(_COMPONENTS[c] for c in pivots)


def _enumerate_pairs(crystal: Crystal, cutoff: float) -> list[tuple[int, int, tuple[int, int, int], float]]:
    L = crystal.lattice
    x = crystal.positions
    # lattice range: enough cells to cover the cutoff sphere
    inv = np.linalg.inv(L)
    nmax = np.ceil(cutoff * np.linalg.norm(inv, axis=0)).astype(int) + 1
    rng = [np.arange(-k, k + 1) for k in nmax]
    R = np.stack(np.meshgrid(*rng, indexing="ij"), -1).reshape(-1, 3)
    out = []
    for i in range(crystal.n_atoms):
        for j in range(crystal.n_atoms):
            d = (x[j] + R - x[i]) @ L
            dist = np.linalg.norm(d, axis=1)
            for k in np.nonzero((dist <= cutoff + _TOL) & (dist > _TOL))[0]:
                out.append((i, j, tuple(int(v) for v in R[k]), float(dist[k])))
    return out


def find_shells(crystal: Crystal, cutoff: float) -> list[Shell]:
    """Pair orbits of ``crystal`` up to ``cutoff`` (Å), ordered by distance, with invariant bases."""
    rots, trans = crystal.symmetry
    cart = crystal.cartesian_rotations
    L = crystal.lattice
    x = crystal.positions
    # atom mapping under each op: W x_i + w = x_{perm[i]} + t_i
    n = crystal.n_atoms
    perm = np.zeros((len(rots), n), dtype=int)
    shift = np.zeros((len(rots), n, 3))
    for o, (W, w) in enumerate(zip(rots, trans)):
        y = x @ W.T + w
        for a in range(n):
            diff = y[a] - x
            k = np.nonzero(
                np.all(np.abs(diff - np.round(diff)) < 1e-4, axis=1) & (crystal.numbers == crystal.numbers[a])
            )[0]
            if len(k) != 1:
                raise StructureError(
                    f"symmetry operation {o} does not map atom {a} onto exactly one atom. Symmetrise the structure or loosen symprec."
                )
            perm[o, a] = k[0]
            shift[o, a] = np.round(diff[k[0]])
    pairs = _enumerate_pairs(crystal, cutoff)
    index = {(i, j, R): k for k, (i, j, R, _) in enumerate(pairs)}
    seen = np.zeros(len(pairs), dtype=bool)
    conv_inv = np.linalg.inv(crystal.conventional_lattice)
    shells: list[Shell] = []
    for start in range(len(pairs)):
        if seen[start]:
            continue
        i0, j0, R0, dist = pairs[start]
        # orbit of the starting pair: each member with (op, transposed) mapping start -> member
        members: dict[tuple, tuple[int, bool]] = {}
        for o, W in enumerate(rots):
            d = x[j0] + np.array(R0) - x[i0]
            gi, gj = perm[o, i0], perm[o, j0]
            Rn = W @ d - x[gj] + x[gi]
            Rr = tuple(int(v) for v in np.round(Rn))
            if np.abs(Rn - np.round(Rn)).max() > 1e-4:
                raise StructureError(
                    "a symmetry operation maps a bond off the lattice. Symmetrise the structure."
                )
            for key, tr in (((gi, gj, Rr), False), ((gj, gi, tuple(-v for v in Rr)), True)):
                if key not in members:
                    members[key] = (o, tr)
        keys = list(members)
        for key in keys:
            if key not in index:
                raise StructureError(
                    f"bond {key} of the orbit of {pairs[start][:3]} is outside the cutoff; the structure is not symmetric within tolerance."
                )
            seen[index[key]] = True
        # representative: lexicographically largest Cartesian bond vector, then lowest atoms
        vecs = {k: (x[k[1]] + np.array(k[2]) - x[k[0]]) @ L for k in keys}
        rep = max(keys, key=lambda k: (tuple(np.round(vecs[k], 5)), -k[0], -k[1]))
        # re-express every member relative to the representative: Φ(m) = C_m Φ_rep C_mᵀ (or ᵀ)
        o_rep, tr_rep = members[rep]
        C_rep = cart[o_rep]
        maps, transposed = [], []
        for key in keys:
            o_m, tr_m = members[key]
            # start -> member: C_m (Φ_s)  [transpose if tr_m]; start -> rep: C_r Φ_s C_rᵀ [T if tr_r]
            # so rep -> member: C = C_m C_rᵀ, transposed = tr_m xor tr_r
            maps.append(cart[o_m] @ C_rep.T)
            transposed.append(tr_m != tr_rep)
        maps = np.array(maps)
        transposed = np.array(transposed)
        # stabiliser constraints on the representative tensor
        rows = []
        for C, tr, key in zip(maps, transposed, keys):
            if key == rep:
                M = np.kron(C, C)  # vec(C Φ Cᵀ) = (C ⊗ C) vec(Φ) for row-major vec
                if tr:
                    T = np.zeros((9, 9))
                    for a in range(3):
                        for b in range(3):
                            T[3 * a + b, 3 * b + a] = 1
                    M = T @ M
                rows.append(M - np.eye(9))
        # the rep appears once in keys; collect all ops that fix it directly
        ri, rj, rR = rep
        drep = x[rj] + np.array(rR) - x[ri]
        for o, W in enumerate(rots):
            gi, gj = perm[o, ri], perm[o, rj]
            Rn = tuple(int(v) for v in np.round(W @ drep - x[gj] + x[gi]))
            C = cart[o]
            M = np.kron(C, C)
            if (gi, gj, Rn) == rep:
                rows.append(M - np.eye(9))
            if (gj, gi, tuple(-v for v in Rn)) == rep:
                T = np.zeros((9, 9))
                for a in range(3):
                    for b in range(3):
                        T[3 * a + b, 3 * b + a] = 1
                rows.append(T @ M - np.eye(9))
        ns = _null_space(np.vstack(rows))
        if len(ns) == 0:
            continue  # a shell whose tensor must vanish by symmetry
        basis, comps = _rref_basis(ns)
        i_arr = np.array([k[0] for k in keys])
        j_arr = np.array([k[1] for k in keys])
        R_arr = np.array([k[2] for k in keys])
        d_conv = np.array([vecs[k] for k in keys]) @ conv_inv
        shells.append(
            Shell(
                name="",
                distance=dist,
                rep=rep,
                rep_vector=vecs[rep],
                basis=basis,
                components=comps,
                i=i_arr,
                j=j_arr,
                R=R_arr,
                d_conv=d_conv,
                maps=maps,
                transposed=transposed,
            )
        )
    shells.sort(key=lambda s: (round(s.distance, 4), s.rep[0], s.rep[1]))
    named = []
    for k, s in enumerate(shells, start=1):
        object.__setattr__(s, "name", f"{k}NN")
        named.append(s)
    return named


def shell_distances(crystal: Crystal, max_distance: float) -> np.ndarray:
    """Distinct interatomic distances (Å) up to ``max_distance``."""
    d = sorted({round(p[3], 4) for p in _enumerate_pairs(crystal, max_distance)})
    return np.array(d)
