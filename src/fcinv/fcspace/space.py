"""The parameter space θ: θ ↔ force constants, phonopy arrays, projection."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from fcinv.crystal import Crystal
from fcinv.errors import ForceConstantError
from fcinv.fcspace.pairs import (
    _NEIGH,
    PairFC,
    _key,
    _supercell_matrix,
    _supercell_to_primitive,
    merge_pairs,
    pairs_from_phonopy,
)
from fcinv.fcspace.shells import find_shells, shell_distances

log = logging.getLogger(__name__)


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
    supercell
        Instead of a cutoff: every pair orbit inside or on the Wigner–Seitz cell of this supercell
        of the primitive cell (3 integers or a 3×3 matrix), as :meth:`for_supercell` builds it.
    """

    def __init__(
        self,
        crystal: Crystal,
        *,
        cutoff: float | None = None,
        n_shells: int | None = None,
        supercell=None,
    ):
        self.supercell: np.ndarray | None = None
        #: shell name → its Wigner–Seitz multiplicity (supercell spaces only)
        self.multiplicity: dict[str, int] = {}
        if supercell is not None:
            from fcinv.fcspace.supercell import check_supercell_symmetry, ws_cutoff

            if cutoff is not None or n_shells is not None:
                raise ForceConstantError(
                    "FCSpace takes a cutoff, a shell count or a supercell, not several. Pass one of them."
                )
            smat = _supercell_matrix(supercell)
            check_supercell_symmetry(crystal, smat)
            self.supercell = smat
            cutoff = ws_cutoff(crystal, smat) + 1e-3
        if cutoff is None:
            if n_shells is None:
                raise ForceConstantError(
                    "FCSpace needs a cutoff (Å) or a number of shells. Pass cutoff=... or n_shells=...."
                )
            if n_shells < 1:
                raise ForceConstantError(f"n_shells={n_shells}; pass at least 1.")
            dists = shell_distances(crystal, crystal.conventional_a * (1.0 + n_shells))
            cutoff = float(dists[n_shells - 1]) + 1e-3 if len(dists) >= n_shells else float(dists[-1]) + 1e-3
        if cutoff <= 0:
            raise ForceConstantError(f"cutoff={cutoff} Å; pass a positive distance.")
        self.crystal = crystal
        self.cutoff = float(cutoff)
        self.shells = find_shells(crystal, self.cutoff)
        if self.supercell is not None:
            self._keep_ws_orbits()
        self.names: list[str] = [f"{s.name}_{c}" for s in self.shells for c in s.components]
        self._slices = []
        k = 0
        for s in self.shells:
            self._slices.append(slice(k, k + len(s.components)))
            k += len(s.components)
        self._unit_pairs: list[PairFC] | None = None
        self._merged: tuple[PairFC, np.ndarray] | None = None
        self._sc_index: dict[tuple, object] = {}

    @classmethod
    def for_supercell(cls, crystal: Crystal, supercell_matrix) -> FCSpace:
        """The space of every pair orbit inside or on the Wigner–Seitz cell of a supercell.

        This is the form of a phonopy force-constant set on that supercell: its least-squares
        projection (:meth:`project`) reproduces the set's own phonopy dispersion (to 1e-6 THz on the
        DFT Ge 4×4×4 set, ``docs/fidelity.md``), and :meth:`to_phonopy` on the same supercell gives
        each (atom, atom) block the sum over its shortest images, so a set comes back unchanged.
        Shells keep the names they have in the distance-shell spaces (``1NN_xx`` is the same
        parameter in both); orbits outside the cell are left out, so names may skip numbers.

        Parameters
        ----------
        crystal
            The crystal.
        supercell_matrix
            3 integers (diagonal) or a (3, 3) integer matrix, relative to the primitive cell. It
            must keep the crystal's symmetry, and its Wigner–Seitz cell must hold the nearest
            neighbours strictly inside.

        Raises
        ------
        ForceConstantError
            A supercell that breaks the symmetry or is too small.
        """
        return cls(crystal, supercell=supercell_matrix)

    def _keep_ws_orbits(self) -> None:
        from fcinv.fcspace.supercell import supercell_label, supercell_translations, ws_multiplicity

        T = supercell_translations(self.crystal, self.supercell)
        mult = ws_multiplicity(np.array([s.rep_vector for s in self.shells]), T)
        if not len(self.shells) or mult[0] != 1:
            raise ForceConstantError(
                f"the supercell {supercell_label(self.supercell)} is too small for {self.crystal.name}: its "
                "Wigner-Seitz cell does not hold the nearest neighbours strictly inside. Use a larger supercell."
            )
        self.multiplicity = {s.name: int(m) for s, m in zip(self.shells, mult) if m > 0}
        self.shells = [s for s, m in zip(self.shells, mult) if m > 0]

    @property
    def label(self) -> str:
        """``"4x4x4"`` for a supercell space, else ``"<n> shells"``."""
        from fcinv.fcspace.supercell import supercell_label

        if self.supercell is not None:
            return supercell_label(self.supercell)
        return f"{len({round(float(s.distance), 3) for s in self.shells})} shells"

    @classmethod
    def for_material(cls, crystal: Crystal) -> FCSpace:
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
        if self.supercell is not None:
            return f"FCSpace({self.crystal.name}, supercell {self.label}, {len(self.shells)} shells, {self.n_params} parameters)"
        return f"FCSpace({self.crystal.name}, cutoff={self.cutoff:.3f} Å, {len(self.shells)} shells, {self.n_params} parameters)"

    def index(self, names: list[str] | tuple[str, ...]) -> np.ndarray:
        """Positions of ``names`` in :attr:`names`; an unknown name raises ForceConstantError."""
        out = []
        for nm in names:
            if nm not in self.names:
                raise ForceConstantError(
                    f"unknown force-constant parameter '{nm}'. Parameters of {self.crystal.name}: {', '.join(self.names)}."
                )
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
                rows.append(
                    {
                        "name": f"{s.name}_{c}",
                        "shell": s.name,
                        "distance": s.distance,
                        "bond": s.rep_vector.round(4).tolist(),
                        "component": c,
                        "pairs": s.n_pairs,
                    }
                )
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
                raise ForceConstantError(
                    f"unknown shell '{name}'. Shells of {self.crystal.name}: {', '.join(shells)}."
                )
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

    def _merged_units(self) -> tuple[PairFC, np.ndarray]:
        """The merged pair structure shared by every θ, and each parameter's tensors on it (n_params, P, 3, 3)."""
        if self._merged is None:
            units = self.unit_pairs()
            i = np.concatenate([u.i for u in units])
            j = np.concatenate([u.j for u in units])
            d = np.concatenate([u.d_conv for u in units])
            keys = [(int(a), int(b), _key(v)) for a, b, v in zip(i, j, d)]
            index: dict = {}
            first = []
            for r, k in enumerate(keys):
                if k not in index:
                    index[k] = len(first)
                    first.append(r)
            row = np.array([index[k] for k in keys])
            T = np.zeros((len(units), len(first), 3, 3))
            start = 0
            for p, u in enumerate(units):
                np.add.at(T[p], row[start : start + len(u.i)], u.tensors)
                start += len(u.i)
            f = np.array(first)
            self._merged = (PairFC(self.crystal, i[f], j[f], d[f], np.zeros((len(f), 3, 3))), T)
        return self._merged

    def to_pairs(self, theta) -> PairFC:
        """Force constants of a parameter vector θ as a PairFC (pairs merged)."""
        theta = self.check_theta(theta)
        base, T = self._merged_units()
        return PairFC(self.crystal, base.i, base.j, base.d_conv, np.einsum("p,pkab->kab", theta, T))

    def _phonopy_index(self, smat: np.ndarray) -> np.ndarray:
        """For each (s1, s2) of phonopy's supercell, the merged pair index (-1: no bond), cached per supercell."""
        key = tuple(smat.reshape(-1).tolist())
        if key not in self._sc_index:
            from phonopy.structure.cells import get_supercell

            self._check_supercell(smat)
            base, _ = self._merged_units()
            sc = get_supercell(self.crystal.to_phonopy_atoms(), smat)
            pos = sc.scaled_positions @ sc.cell  # Cartesian
            s2p = _supercell_to_primitive(self.crystal, sc)
            sc_lat = sc.cell
            lookup = {
                (int(a), int(b), _key(d)): k for k, (a, b, d) in enumerate(zip(base.i, base.j, base.d_conv))
            }
            conv_inv = np.linalg.inv(self.crystal.conventional_lattice)
            inv_sc = np.linalg.inv(sc_lat)
            nsc = len(pos)
            idx = -np.ones((nsc, nsc), dtype=np.int64)
            for s1 in range(nsc):
                f = (pos - pos[s1]) @ inv_sc
                f -= np.round(f)
                # the image of each atom nearest to s1 (unique within the cutoff, checked above)
                dc = (f[:, None, :] + _NEIGH[None, :, :]) @ sc_lat
                best = np.argmin(np.linalg.norm(dc, axis=2), axis=1)
                keys = np.rint(dc[np.arange(nsc), best] @ conv_inv * 1e5).astype(np.int64)
                for s2 in range(nsc):
                    k = lookup.get((int(s2p[s1]), int(s2p[s2]), tuple(int(v) for v in keys[s2])))
                    if k is not None:
                        idx[s1, s2] = k
            self._sc_index[key] = idx
        return self._sc_index[key]

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
        pairs = self.to_pairs(theta)
        smat = _supercell_matrix(supercell_matrix)
        if self._is_own_supercell(smat):
            s1, s2, k = self._phonopy_images(smat)
            nsc = int(round(abs(np.linalg.det(smat)))) * self.crystal.n_atoms
            fc = np.zeros((nsc, nsc, 3, 3))
            np.add.at(fc, (s1, s2), pairs.tensors[k])
            return fc
        idx = self._phonopy_index(smat)
        fc = pairs.tensors[np.where(idx >= 0, idx, 0)]
        fc[idx < 0] = 0.0
        return fc

    def _is_own_supercell(self, smat: np.ndarray) -> bool:
        """True when ``smat`` spans the same lattice as this supercell space's supercell."""
        if self.supercell is None:
            return False
        m = np.linalg.solve(np.asarray(self.supercell, float).T, np.asarray(smat, float).T)
        return bool(np.abs(m - np.round(m)).max() < 1e-8 and abs(abs(np.linalg.det(m)) - 1) < 1e-8)

    def _phonopy_images(self, smat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s1, s2, pair index) for every shortest image of every (s1, s2) of phonopy's supercell
        (a supercell space on its own supercell), cached."""
        key = ("images", *smat.reshape(-1).tolist())
        if key not in self._sc_index:
            from phonopy.structure.cells import get_supercell

            from fcinv.fcspace.supercell import WS_TOL

            base, _ = self._merged_units()
            sc = get_supercell(self.crystal.to_phonopy_atoms(), smat)
            sc_lat = sc.cell
            pos = sc.scaled_positions @ sc_lat
            s2p = _supercell_to_primitive(self.crystal, sc)
            lookup = {
                (int(a), int(b), _key(d)): k for k, (a, b, d) in enumerate(zip(base.i, base.j, base.d_conv))
            }
            conv_inv = np.linalg.inv(self.crystal.conventional_lattice)
            inv_sc = np.linalg.inv(sc_lat)
            r = np.arange(-2, 3)
            cells = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3).astype(float)
            nsc = len(pos)
            S1, S2, K = [], [], []
            for s1 in range(nsc):
                f = (pos - pos[s1]) @ inv_sc
                f -= np.round(f)
                dc = (f[:, None, :] + cells[None, :, :]) @ sc_lat  # (nsc, 125, 3)
                dist = np.linalg.norm(dc, axis=2)
                dmin = dist.min(axis=1, keepdims=True)
                s2s, imgs = np.nonzero(dist < dmin + WS_TOL * np.maximum(1.0, dmin))
                keys = np.rint(dc[s2s, imgs] @ conv_inv * 1e5).astype(np.int64)
                for s2, kk in zip(s2s, keys):
                    k = lookup.get((int(s2p[s1]), int(s2p[s2]), tuple(int(v) for v in kk)))
                    if k is None:
                        continue  # an orbit whose tensor vanishes by symmetry
                    S1.append(s1)
                    S2.append(int(s2))
                    K.append(k)
            self._sc_index[key] = (np.array(S1), np.array(S2), np.array(K))
        return self._sc_index[key]

    def _check_supercell(self, smat: np.ndarray) -> None:
        if self._is_own_supercell(smat):
            return
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
    def project(self, fc: PairFC) -> Projection:
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
            raise ForceConstantError(
                f"force constants are for {fc.crystal.n_atoms} atoms per cell, the space for {self.crystal.n_atoms}. Use the matching structure."
            )
        merged = merge_pairs(fc)
        lookup = {
            (int(a), int(b), _key(d)): k for k, (a, b, d) in enumerate(zip(merged.i, merged.j, merged.d_conv))
        }
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

    def project_phonopy(self, fc_array: np.ndarray, unitcell, supercell_matrix) -> Projection:
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
