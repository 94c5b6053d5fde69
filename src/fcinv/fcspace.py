"""The symmetry-reduced force-constant space θ.

Harmonic force constants Φ(i, j, R) (eV/Å², the second derivative of the energy
with respect to displacements of atom i in the home cell and atom j in cell R)
are grouped into neighbour shells: orbits of atom pairs under the space group
(and under the exchange Φ(i, j, R) = Φ(j, i, -R)ᵀ). Each shell has a
representative bond whose 3×3 tensor lies in the subspace invariant under the
bond's site symmetry; that subspace is derived from the space group (the null
space of the stabiliser constraints), never tabulated by hand.

Parameters are named ``<shell>_<component>`` (``1NN_xx``, ``1NN_xy``, ...): θ_p
*is* the Cartesian component ``<component>`` of the representative bond's
tensor. The representative of a shell is the pair whose Cartesian bond vector is
lexicographically largest (x, then y, then z), ties broken by the lowest atom
indices. The on-site term is fixed by the acoustic sum rule,
Φ(i, i, 0) = -Σ_(j,R)≠(i,0) Φ(i, j, R), so it is not a parameter.

:class:`PairFC` is the common currency: any force-constant set (from θ, or a
full phonopy array with its supercell images) becomes a list of pairs with
Cartesian 3×3 blocks, from which dynamical matrices are built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcinv.crystal import Crystal
from fcinv.errors import ForceConstantError, StructureError

log = logging.getLogger(__name__)

_COMPONENTS = ("xx", "yy", "zz", "xy", "yz", "xz", "yx", "zy", "zx")
# flat index (3*a+b) of each component above, the RREF pivot preference order
_COMP_INDEX = (0, 4, 8, 1, 5, 2, 3, 7, 6)
_TOL = 1e-6


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
            k = np.nonzero(np.all(np.abs(diff - np.round(diff)) < 1e-4, axis=1) & (crystal.numbers == crystal.numbers[a]))[0]
            if len(k) != 1:
                raise StructureError(f"symmetry operation {o} does not map atom {a} onto exactly one atom. Symmetrise the structure or loosen symprec.")
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
                raise StructureError("a symmetry operation maps a bond off the lattice. Symmetrise the structure.")
            for key, tr in (((gi, gj, Rr), False), ((gj, gi, tuple(-v for v in Rr)), True)):
                if key not in members:
                    members[key] = (o, tr)
        keys = list(members)
        for key in keys:
            if key not in index:
                raise StructureError(f"bond {key} of the orbit of {pairs[start][:3]} is outside the cutoff; the structure is not symmetric within tolerance.")
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


# -------------------------------------------------------------------- FCSpace
class FCSpace:
    """Symmetry-reduced force-constant parameters θ of a crystal.

    Parameters
    ----------
    crystal
        The crystal.
    cutoff
        Include every pair up to this distance (Å). Give this or ``n_shells``.
    n_shells
        Include the first ``n_shells`` distinct distances.
    """

    def __init__(self, crystal: Crystal, *, cutoff: float | None = None, n_shells: int | None = None):
        if cutoff is None:
            if n_shells is None:
                raise ForceConstantError("FCSpace needs a cutoff (Å) or a number of shells. Pass cutoff=... or n_shells=....")
            if n_shells < 1:
                raise ForceConstantError(f"n_shells={n_shells}; pass at least 1.")
            dists = shell_distances(crystal, crystal.conventional_a * (1.0 + n_shells))
            cutoff = float(dists[n_shells - 1]) + 1e-3 if len(dists) >= n_shells else float(dists[-1]) + 1e-3
        if cutoff <= 0:
            raise ForceConstantError(f"cutoff={cutoff} Å; pass a positive distance.")
        self.crystal = crystal
        self.cutoff = float(cutoff)
        self.shells = find_shells(crystal, self.cutoff)
        self.names: list[str] = [f"{s.name}_{c}" for s in self.shells for c in s.components]
        self._slices = []
        k = 0
        for s in self.shells:
            self._slices.append(slice(k, k + len(s.components)))
            k += len(s.components)
        self._unit_pairs: list[PairFC] | None = None

    @classmethod
    def for_material(cls, crystal: Crystal) -> "FCSpace":
        """The default space of an embedded material (``cutoff_shells`` in its material.json), else 5 shells."""
        from fcinv.crystal import material_info
        from fcinv.errors import MaterialError

        try:
            n = int(material_info(crystal.name).get("cutoff_shells", 5))
        except MaterialError:
            n = 5
        return cls(crystal, n_shells=n)

    # ----------------------------------------------------------------- basics
    @property
    def n_params(self) -> int:
        """Number of parameters θ."""
        return len(self.names)

    def __repr__(self) -> str:
        return f"FCSpace({self.crystal.name}, cutoff={self.cutoff:.3f} Å, {len(self.shells)} shells, {self.n_params} parameters)"

    def index(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """Positions of ``names`` in :attr:`names`; an unknown name raises ForceConstantError."""
        out = []
        for nm in names:
            if nm not in self.names:
                raise ForceConstantError(f"unknown force-constant parameter '{nm}'. Parameters of {self.crystal.name}: {', '.join(self.names)}.")
            out.append(self.names.index(nm))
        return np.array(out, dtype=int)

    def check_theta(self, theta, *, what: str = "theta") -> np.ndarray:
        """Validate a full parameter vector (or batch) and return it as float64."""
        t = np.asarray(theta, dtype=float)
        if t.shape[-1:] != (self.n_params,):
            raise ForceConstantError(
                f"{what} has {t.shape[-1] if t.ndim else 1} values; the {self.crystal.name} space has {self.n_params} ({', '.join(self.names)}). Pass one value per name."
            )
        if not np.all(np.isfinite(t)):
            raise ForceConstantError(f"{what} contains NaN or inf. Pass finite force constants (eV/Å²).")
        return t

    def describe(self) -> list[dict]:
        """One row per parameter: name, shell, distance (Å), bond vector (Å), component."""
        rows = []
        for s, sl in zip(self.shells, self._slices):
            for c in s.components:
                rows.append({"name": f"{s.name}_{c}", "shell": s.name, "distance": s.distance, "bond": s.rep_vector.round(4).tolist(), "component": c, "pairs": s.n_pairs})
        return rows

    def central_force_theta(self, springs: dict[str, float]) -> np.ndarray:
        """θ of a central-force (spring) model: Φ(bond) = -k b̂ b̂ᵀ for each listed shell.

        Parameters
        ----------
        springs
            Shell name → spring constant k (eV/Å²), e.g. ``{"1NN": 3.0, "2NN": 0.5}``;
            unlisted shells get zero.

        Returns
        -------
        numpy.ndarray
            Shape (n_params,), eV/Å². A quick, physically sensible starting point for a
            crystal without a reference FC set.
        """
        theta = np.zeros(self.n_params)
        shells = {s.name: (s, sl) for s, sl in zip(self.shells, self._slices)}
        for name, k in springs.items():
            if name not in shells:
                raise ForceConstantError(f"unknown shell '{name}'. Shells of {self.crystal.name}: {', '.join(shells)}.")
            s, sl = shells[name]
            b = s.rep_vector / np.linalg.norm(s.rep_vector)
            target = -float(k) * np.outer(b, b)
            A = s.basis.reshape(len(s.basis), 9).T
            theta[sl] = np.linalg.lstsq(A, target.reshape(9), rcond=None)[0]
        return theta

    # --------------------------------------------------------------- θ → FCs
    def unit_pairs(self) -> list[PairFC]:
        """For each parameter p, the PairFC of θ = e_p, on-site terms (acoustic sum rule) included."""
        if self._unit_pairs is None:
            out = []
            n = self.crystal.n_atoms
            for s in self.shells:
                for b in s.basis:
                    t = s.pair_tensors(b)
                    onsite = np.zeros((n, 3, 3))
                    np.add.at(onsite, s.i, -t)
                    i = np.concatenate([s.i, np.arange(n)])
                    j = np.concatenate([s.j, np.arange(n)])
                    d = np.concatenate([s.d_conv, np.zeros((n, 3))])
                    out.append(PairFC(self.crystal, i, j, d, np.concatenate([t, onsite])))
            self._unit_pairs = out
        return self._unit_pairs

    def to_pairs(self, theta) -> PairFC:
        """Force constants of a parameter vector θ as a PairFC (pairs merged)."""
        theta = self.check_theta(theta)
        units = self.unit_pairs()
        i = np.concatenate([u.i for u in units])
        j = np.concatenate([u.j for u in units])
        d = np.concatenate([u.d_conv for u in units])
        t = np.concatenate([th * u.tensors for th, u in zip(theta, units)])
        return merge_pairs(PairFC(self.crystal, i, j, d, t))

    def to_phonopy(self, theta, supercell_matrix) -> np.ndarray:
        """Full phonopy force-constant array of θ on a supercell of the primitive cell.

        Parameters
        ----------
        theta
            Shape (n_params,), eV/Å².
        supercell_matrix
            3 integers (diagonal) or a (3, 3) integer matrix, relative to the primitive cell.

        Returns
        -------
        numpy.ndarray
            Shape (n_sc, n_sc, 3, 3) float64, eV/Å², atoms in phonopy's supercell order.
        """
        from phonopy.structure.cells import get_supercell

        pairs = self.to_pairs(theta)
        smat = _supercell_matrix(supercell_matrix)
        sc = get_supercell(self.crystal.to_phonopy_atoms(), smat)
        self._check_supercell(smat)
        pos = sc.scaled_positions @ sc.cell  # Cartesian
        s2p = _supercell_to_primitive(self.crystal, sc)
        sc_lat = sc.cell
        lookup = {(int(a), int(b), _key(d)): k for k, (a, b, d) in enumerate(zip(pairs.i, pairs.j, pairs.d_conv))}
        conv_inv = np.linalg.inv(self.crystal.conventional_lattice)
        nsc = len(pos)
        fc = np.zeros((nsc, nsc, 3, 3))
        inv_sc = np.linalg.inv(sc_lat)
        for s1 in range(nsc):
            d = pos - pos[s1]
            f = d @ inv_sc
            f -= np.round(f)
            # the image of each atom nearest to s1 (unique within the cutoff, checked above)
            cands = f[:, None, :] + _NEIGH[None, :, :]
            dc = cands @ sc_lat
            best = np.argmin(np.linalg.norm(dc, axis=2), axis=1)
            dmin = dc[np.arange(nsc), best] @ conv_inv
            for s2 in range(nsc):
                k = lookup.get((int(s2p[s1]), int(s2p[s2]), _key(dmin[s2])))
                if k is not None:
                    fc[s1, s2] = pairs.tensors[k]
        return fc

    def _check_supercell(self, smat: np.ndarray) -> None:
        lat = smat @ self.crystal.lattice
        # shortest non-zero supercell translation
        r = np.arange(-2, 3)
        n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
        n = n[np.any(n != 0, axis=1)]
        shortest = np.linalg.norm(n @ lat, axis=1).min()
        if self.cutoff >= shortest / 2 - 1e-6:
            raise ForceConstantError(
                f"the supercell {smat.tolist()} is too small for the {self.cutoff:.3f} Å cutoff (its shortest translation is {shortest:.3f} Å; "
                f"bonds must be shorter than half of it). Use a larger supercell or fewer shells."
            )

    # ------------------------------------------------------------- projection
    def project(self, fc: PairFC) -> "Projection":
        """Least-squares projection of a force-constant set onto θ.

        Parameters
        ----------
        fc
            Any PairFC on this crystal (e.g. from :func:`read_phonopy`).

        Returns
        -------
        Projection
            θ and the residuals of what θ cannot represent.
        """
        if fc.crystal.n_atoms != self.crystal.n_atoms:
            raise ForceConstantError(f"force constants are for {fc.crystal.n_atoms} atoms per cell, the space for {self.crystal.n_atoms}. Use the matching structure.")
        merged = merge_pairs(fc)
        lookup = {(int(a), int(b), _key(d)): k for k, (a, b, d) in enumerate(zip(merged.i, merged.j, merged.d_conv))}
        theta = np.zeros(self.n_params)
        used = np.zeros(len(merged.i), dtype=bool)
        in_shell_res = 0.0
        in_shell_norm = 0.0
        for s, sl in zip(self.shells, self._slices):
            target = np.zeros((s.n_pairs, 3, 3))
            for p, (a, b, d) in enumerate(zip(s.i, s.j, s.d_conv)):
                k = lookup.get((int(a), int(b), _key(d)))
                if k is not None:
                    target[p] = merged.tensors[k]
                    used[k] = True
            A = np.stack([s.pair_tensors(b).reshape(-1) for b in s.basis], axis=1)
            sol, *_ = np.linalg.lstsq(A, target.reshape(-1), rcond=None)
            theta[sl] = sol
            in_shell_res += float(np.sum((A @ sol - target.reshape(-1)) ** 2))
            in_shell_norm += float(np.sum(target**2))
        onsite = (merged.i == merged.j) & np.all(np.abs(merged.d_conv) < 1e-8, axis=1)
        outside = ~used & ~onsite
        out_norm = float(np.sum(merged.tensors[outside] ** 2))
        total = float(np.sum(merged.tensors[~onsite] ** 2))
        return Projection(
            theta=theta,
            names=list(self.names),
            in_shell_residual=float(np.sqrt(in_shell_res / max(in_shell_norm, 1e-300))),
            beyond_cutoff=float(np.sqrt(out_norm / max(total, 1e-300))),
            max_beyond_cutoff=float(np.abs(merged.tensors[outside]).max()) if np.any(outside) else 0.0,
        )

    def project_phonopy(self, fc_array: np.ndarray, unitcell, supercell_matrix) -> "Projection":
        """Project a phonopy force-constant array (full or compact) onto θ.

        ``unitcell`` is a :class:`Crystal`-compatible source: a path to the POSCAR, or
        a ``PhonopyAtoms``.
        """
        return self.project(pairs_from_phonopy(self.crystal, fc_array, unitcell, supercell_matrix))


@dataclass(frozen=True)
class Projection:
    """Result of :meth:`FCSpace.project`.

    Attributes
    ----------
    theta
        Shape (n_params,) float64, eV/Å².
    names
        Parameter names.
    in_shell_residual
        Relative Frobenius norm of the part of the in-cutoff force constants that the
        symmetric basis cannot represent (0 for a symmetric FC set).
    beyond_cutoff
        Relative Frobenius norm of the (non-on-site) force constants beyond the cutoff.
    max_beyond_cutoff
        Largest single component beyond the cutoff, eV/Å².
    """

    theta: np.ndarray
    names: list[str]
    in_shell_residual: float
    beyond_cutoff: float
    max_beyond_cutoff: float

    def as_dict(self) -> dict:
        return {
            "theta": dict(zip(self.names, self.theta.tolist())),
            "in_shell_residual": self.in_shell_residual,
            "beyond_cutoff": self.beyond_cutoff,
            "max_beyond_cutoff_eV_per_A2": self.max_beyond_cutoff,
        }


# ---------------------------------------------------------------- helpers
_r = np.arange(-1, 2)
_NEIGH = np.stack(np.meshgrid(_r, _r, _r, indexing="ij"), -1).reshape(-1, 3).astype(float)


def _key(d: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.round(np.asarray(d) * 1e5))


def _supercell_matrix(smat) -> np.ndarray:
    m = np.asarray(smat)
    if m.shape == (3,):
        m = np.diag(m)
    if m.shape != (3, 3) or not np.all(np.round(m) == m) or round(abs(np.linalg.det(m))) < 1:
        raise ForceConstantError(f"supercell {np.asarray(smat).tolist()} is not 3 integers or a non-singular 3x3 integer matrix. Pass e.g. --supercell 4 4 4.")
    return m.astype(int)


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
            raise StructureError("a supercell atom is not an image of exactly one primitive atom. Check the structure.")
        out[s] = k[0]
    return out


def _match_cells(crystal: Crystal, lattice: np.ndarray, positions: np.ndarray, numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map a phonopy unit cell onto ``crystal``: a rotation (Cartesian) and each atom's crystal index.

    The cell may differ from the crystal's standard setting by a rotation (found with spglib),
    an origin shift, the atom order, and the lattice constant.
    """
    import spglib

    ds = spglib.get_symmetry_dataset((lattice, positions, numbers), symprec=1e-4)
    if ds is None:
        raise StructureError("spglib could not analyse the force-constant file's unit cell. Check its POSCAR.")
    if int(ds.number) != crystal.spacegroup[1]:
        raise StructureError(
            f"the force-constant file's structure has space group {ds.international} (#{ds.number}), the crystal {crystal.spacegroup[0]} (#{crystal.spacegroup[1]}). Pass the structure the FCs were computed for."
        )
    rot = np.asarray(ds.std_rotation_matrix)
    # positions in the conventional fractional frame of each cell (lattice constant drops out)
    cart = positions @ lattice @ rot.T
    conv_other = spglib.standardize_cell((lattice, positions, numbers), to_primitive=False, no_idealize=False, symprec=1e-4)[0]
    f_other = cart @ np.linalg.inv(conv_other)
    f_mine = crystal.cartesian_positions @ np.linalg.inv(crystal.conventional_lattice)
    prim_in_conv = crystal.lattice @ np.linalg.inv(crystal.conventional_lattice)  # primitive vectors, conv frac
    for a in range(len(f_mine)):
        if crystal.numbers[a] != numbers[0]:
            continue
        shift = f_mine[a] - f_other[0]
        g = f_other + shift
        mapping = []
        for b, fb in enumerate(g):
            diff = (fb - f_mine) @ np.linalg.inv(prim_in_conv)  # in primitive lattice units
            k = np.nonzero(np.all(np.abs(diff - np.round(diff)) < 1e-3, axis=1) & (crystal.numbers == numbers[b]))[0]
            if len(k) != 1:
                break
            mapping.append(k[0])
        else:
            if len(set(mapping)) == len(mapping):
                return rot, np.array(mapping)
    raise StructureError("the force-constant file's atoms cannot be matched to the crystal's (different structure or atom count). Pass the POSCAR the FCs were computed with.")


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
            raise StructureError(f"phonopy could not read '{unitcell}': {exc}. Pass a POSCAR.") from None
        del uc
    if not isinstance(unitcell, PhonopyAtoms):
        raise StructureError("unitcell must be a POSCAR path or a PhonopyAtoms. Pass the POSCAR the FCs were computed with.")
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

    conv_other = spglib.standardize_cell((unitcell.cell, unitcell.scaled_positions, unitcell.numbers), to_primitive=False, no_idealize=False, symprec=1e-4)[0]
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


def read_phonopy(crystal: Crystal, force_constants: str | Path, structure: str | Path, supercell_matrix) -> PairFC:
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
        raise ForceConstantError(f"force-constant file '{path}' does not exist. Pass phonopy's FORCE_CONSTANTS or force_constants.hdf5.")
    try:
        if path.suffix in {".hdf5", ".h5"}:
            from phonopy.file_IO import read_force_constants_hdf5

            fc = read_force_constants_hdf5(str(path))
        else:
            from phonopy.file_IO import parse_FORCE_CONSTANTS

            fc = parse_FORCE_CONSTANTS(str(path))
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ForceConstantError(f"could not parse force-constant file '{path}': {msg}. Check it is phonopy's FORCE_CONSTANTS or force_constants.hdf5.") from None
    return pairs_from_phonopy(crystal, fc, structure, supercell_matrix)
