"""Embedded Stage I references: the force-field ensemble's θ, bounds, ranking and D_ref.

Each embedded material folder (``fcinv/data/<Mat>/``) holds, produced by
``fcinv reference <Mat>`` (the ``[mlff]`` extra):

- ``ensemble.json``: per-member θ and frequencies, the ensemble bounds, the
  sensitivity ranking, the sampled parameters (FC0…FC{k-1}) and the reference member;
- ``reference_fc.hdf5``: the reference member's full force constants (phonopy compact
  layout) with the unit cell and supercell they belong to;
- ``members_fc.hdf5``: every stable member's, in the same layout (``members/<name>/``);
- ``provenance.json``: models, versions, settings and the command.

This module only reads them, so the core runs without the force-field packages.

Parameters, shells and what lies beyond the cutoff
--------------------------------------------------
Every symmetry-allowed parameter within the cutoff is a model parameter
(:attr:`MaterialReference.sampled`: all of them, ordered FC0, FC1, ... by the
sensitivity ranking; the ranking orders and reports, it no longer freezes
anything). The paper's convention (the top-k of the ranking sampled, the rest
held at the reference member) is kept as :attr:`MaterialReference.paper_sampled`
for the ``ge-paper`` / ``nb-paper`` models.

The cutoff is a shell count: ``cutoff_shells`` in material.json by default, any
other with :func:`load_reference` ``(material, n_shells=N)`` (``fcinv dataset
--shells N``). ``members_fc.hdf5`` holds every stable member's full (compact) FC
set, so at any shell count each parameter's bounds are the min/max over the stable
members' own projections onto that space: no parameter is bounded by one member.
Where that file is absent (a material folder made before it existed), the bounds of
the shells in ``ensemble.json`` are its min/max over the members and, beyond them, the
reference member's value ± h, h the largest |θ| of any stable member in the outermost
embedded shell (``bounds_source`` says ``reference±h``; regenerate with ``fcinv reference``).

Beyond the cutoff (:data:`TAIL_ZERO`, the default when every parameter is
free): the force constants are zero; D(q) is built from θ alone. The
alternative, :data:`TAIL_REFERENCE`, keeps the reference member's full FC set
beyond the cutoff in D_ref (and, for a model that frees only some parameters,
holds the others at the reference member: the paper's convention). Measured on
the DFT Ge set (its projection onto the 16 parameters of 5 shells, against the
full DFT set's own dispersion on the default path, ``docs/stage1.md``): zero tail
0.134 THz rms, reference-member (7net-0) tail 0.202 THz rms, so zero is the default.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from fcinv.crystal import Crystal, material_dir, material_info
from fcinv.errors import DataError
from fcinv.fcspace import FCSpace, PairFC, pairs_from_phonopy

log = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"
#: Beyond the cutoff: zero force constants.
TAIL_ZERO = "zero"
#: Beyond the cutoff: the reference member's full FC set (the paper's D_ref).
TAIL_REFERENCE = "reference"
#: Largest shell count accepted by :func:`load_reference` (and ``--shells``).
MAX_SHELLS = 12
REFERENCE_FC_FILE = "reference_fc.hdf5"
#: Every stable member's compact FC set (bounds at any shell count from every member).
MEMBERS_FC_FILE = "members_fc.hdf5"
PROVENANCE_FILE = "provenance.json"


_FC_DATASETS = (
    "force_constants",
    "p2s_map",
    "supercell_matrix",
    "unitcell/lattice",
    "unitcell/positions",
    "unitcell/numbers",
    "unitcell/masses",
)


def _read_fc_group(h5, path: Path, where: str = "") -> dict:
    missing = [k for k in _FC_DATASETS if k not in h5]
    if missing:
        raise DataError(
            f"force-constant file '{path}'{where} lacks {missing}. Regenerate it with `fcinv reference <material>`."
        )
    out = {k.split("/")[-1]: h5[k][()] for k in _FC_DATASETS}
    out.update({k: (v.item() if hasattr(v, "item") else v) for k, v in h5.attrs.items()})
    return out


def read_reference_fc(path: str | Path) -> dict:
    """Read a ``reference_fc.hdf5``: force constants, p2s map, supercell and unit cell.

    Returns
    -------
    dict
        ``force_constants`` (n_prim, n_super, 3, 3) eV/Å², ``p2s_map`` (n_prim,),
        ``supercell_matrix`` (3, 3), ``lattice`` (3, 3) Å, ``positions`` (n_prim, 3)
        fractional, ``numbers``, ``masses`` (amu), and the file's string attributes.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            return _read_fc_group(h5, path)
    except OSError as exc:
        raise DataError(
            f"cannot read reference force-constant file '{path}' ({exc}). Regenerate it with `fcinv reference <material>`."
        ) from None


def read_members_fc(path: str | Path) -> dict[str, dict]:
    """Read a ``members_fc.hdf5``: every stable member's FC set, name → :func:`read_reference_fc`'s dict."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            if "members" not in h5 or not len(h5["members"]):
                raise DataError(
                    f"'{path}' holds no members/ group. Regenerate it with `fcinv reference <material>`."
                )
            return {name: _read_fc_group(g, path, f" (member {name})") for name, g in h5["members"].items()}
    except OSError as exc:
        raise DataError(
            f"cannot read the members' force-constant file '{path}' ({exc}). Regenerate it with `fcinv reference <material>`."
        ) from None


def load_ensemble(material: str) -> dict:
    """The embedded ``ensemble.json`` of a material."""
    path = material_dir(material) / ENSEMBLE_FILE
    if not path.is_file():
        raise DataError(
            f"no embedded ensemble data at '{path}'. Generate it with `fcinv reference {material}` (needs the [mlff] extra)."
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(
            f"'{path}' is not valid JSON ({exc}). Regenerate it with `fcinv reference {material}`."
        ) from None


@dataclass(frozen=True, eq=False)
class MaterialReference:
    """A material's Stage I reference.

    Attributes
    ----------
    crystal, space
        The crystal and its FC space.
    pairs
        The reference member's full FC set (gives D_ref).
    theta_ref
        Shape (n_params,) eV/Å²: the reference member's projection onto θ.
    sampled
        Every parameter name of ``space``, FC0 first (decreasing sensitivity; parameters
        the embedded ranking does not cover follow in space order).
    lower, upper
        Shape (n_params,) eV/Å²: the ensemble bounds (stable members; see the module
        docstring for parameters beyond the embedded shells).
    ensemble
        The raw ``ensemble.json``.
    paper_sampled
        The paper convention's sampled parameters (the ensemble's top-k, FC0…FC7).
    n_shells
        Number of neighbour shells of ``space``.
    tail
        What lies beyond the cutoff for an all-parameter model: :data:`TAIL_ZERO` or
        :data:`TAIL_REFERENCE`.
    bounds_source
        Per parameter: ``"ensemble"`` (min/max over stable members), ``"sets widened"`` (phonopy
        sets: their min/max widened by the rule in ``ensemble.json`` ``bounds``) or
        ``"reference±h"`` (beyond the embedded shells, when no ``members_fc.hdf5`` is embedded).
    member_theta
        Each stable member's projection onto ``space`` (name → (n_params,) eV/Å²), when the
        members' FC sets are embedded; else empty.
    """

    crystal: Crystal
    space: FCSpace
    pairs: PairFC
    theta_ref: np.ndarray
    sampled: list[str]
    lower: np.ndarray
    upper: np.ndarray
    ensemble: dict = field(repr=False)
    paper_sampled: list[str] = field(default_factory=list)
    n_shells: int = 5
    tail: str = TAIL_ZERO
    bounds_source: tuple[str, ...] = ()
    member_theta: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def material(self) -> str:
        return self.crystal.name

    @property
    def reference_member(self) -> str:
        return str(self.ensemble.get("reference_member", {}).get("name", "?"))

    def bounds(self, names: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble (lower, upper) bounds of ``names`` (default: the sampled parameters)."""
        idx = self.space.index(names or self.sampled)
        return self.lower[idx], self.upper[idx]

    def tail_for(self, free: list[str] | None) -> str:
        """The tail a model varying ``free`` uses: :attr:`tail` when every parameter is free,
        else :data:`TAIL_REFERENCE` (the paper convention: all that is not free is the
        reference member's)."""
        if free is None or set(free) == set(self.space.names):
            return self.tail
        return TAIL_REFERENCE

    def forward_model(
        self,
        *,
        free: list[str] | None = None,
        grid=None,
        broadening=None,
        mesh: int = 4,
        tail: str | None = None,
    ):
        """The forward model about this reference, varying ``free`` (default: every parameter).

        Parameters
        ----------
        free
            Varied parameter names, in θ order; default :attr:`sampled` (all, ranked).
        grid, broadening, mesh
            As :class:`fcinv.forward.ForwardModel`; default the material's grid and width.
        tail
            :data:`TAIL_ZERO` (D(q) from θ alone) or :data:`TAIL_REFERENCE` (D_ref from the
            reference member's full FC set); default :meth:`tail_for` ``(free)``.
        """
        from fcinv.crystal import default_grid
        from fcinv.forward import Broadening, ForwardModel

        tail = tail or self.tail_for(free)
        check_tail(tail)
        if broadening is None:
            info = material_info(self.material)
            broadening = Broadening(float(info.get("fwhm_meV", 1.2)), float(info.get("fwhm_slope", 0.0)))
        return ForwardModel(
            self.space,
            grid or default_grid(self.crystal),
            self.theta_ref,
            reference=self.pairs if tail == TAIL_REFERENCE else None,
            free=free or self.sampled,
            broadening=broadening,
            mesh=mesh,
        )

    def domain(self, names: list[str] | None = None, *, widen: tuple[float, float] | None = None):
        """The training domain (:func:`fcinv.dataset.widened_domain`) of ``names`` (default all, ranked)."""
        from fcinv.dataset.generate import DEFAULT_WIDEN, widened_domain

        names = list(names or self.sampled)
        lo, hi = self.bounds(names)
        return widened_domain(
            names, lo, hi, self.theta_ref[self.space.index(names)], widen=tuple(widen or DEFAULT_WIDEN)
        )

    def summary(self) -> dict:
        """JSON-able description: shells, cutoff, parameters in ranking order with bounds and sources."""
        idx = {n: i for i, n in enumerate(self.space.names)}
        return {
            "material": self.material,
            "n_shells": self.n_shells,
            "cutoff_A": self.space.cutoff,
            "n_params": self.space.n_params,
            "tail": self.tail,
            "reference_member": self.reference_member,
            "parameters": [
                {
                    "label": f"FC{r}",
                    "name": n,
                    "theta_ref": float(self.theta_ref[idx[n]]),
                    "lower": float(self.lower[idx[n]]),
                    "upper": float(self.upper[idx[n]]),
                    "bounds": self.bounds_source[idx[n]] if self.bounds_source else "ensemble",
                }
                for r, n in enumerate(self.sampled)
            ],
        }


def check_tail(tail: str) -> str:
    """Validate a tail name (:data:`TAIL_ZERO` or :data:`TAIL_REFERENCE`)."""
    if tail not in (TAIL_ZERO, TAIL_REFERENCE):
        raise DataError(
            f"tail={tail!r} is not known. Pass '{TAIL_ZERO}' (nothing beyond the cutoff) or '{TAIL_REFERENCE}' (the reference member's FCs)."
        )
    return tail


def shell_count(space: FCSpace) -> int:
    """The number of neighbour shells of ``space``: its distinct pair distances (two inequivalent
    shells at one distance, as diamond's 7NN and 8NN at 7.35 Å, count once, as ``n_shells`` does)."""
    return len({round(float(sh.distance), 3) for sh in space.shells})


def check_shells(n_shells, material: str = "") -> int:
    """Validate a shell count (1 … :data:`MAX_SHELLS`) and return it as int."""
    try:
        n = int(n_shells)
    except (TypeError, ValueError):
        raise DataError(f"--shells {n_shells!r} is not an integer. Pass a shell count such as 5.") from None
    if n != n_shells or not 1 <= n <= MAX_SHELLS:
        where = f" for {material}" if material else ""
        raise DataError(
            f"--shells {n_shells}{where} is out of range. Pass a neighbour-shell count from 1 to {MAX_SHELLS} (default: the material's cutoff_shells)."
        )
    return n


def load_reference(
    material: str, n_shells: int | None = None, *, tail: str | None = None, supercell=None
) -> MaterialReference:
    """Load an embedded material's reference, optionally at another shell count (cached; read-only).

    This is the one builder of a material's parameter space: the FCSpace of
    ``n_shells`` shells, the reference θ, the ensemble bounds and the ranking
    (see the module docstring for shells beyond the embedded ensemble).

    Parameters
    ----------
    material
        Embedded material name (``Ge``, ``Nb``).
    n_shells
        Neighbour shells in the cutoff; default ``cutoff_shells`` of material.json.
    tail
        What lies beyond the cutoff for all-parameter models; default ``tail`` of
        material.json, else :data:`TAIL_ZERO`.
    supercell
        Instead of ``n_shells``: the space of every orbit inside or on this supercell's
        Wigner–Seitz cell (:meth:`FCSpace.for_supercell`, e.g. ``"4x4x4"``). Parameters the
        members' (and reference's) own supercell does not hold strictly inside get the reference
        value 0 and bounds [0, 0]: the refinement's far-shell σ floor is their prior.

    Raises
    ------
    DataError
        Missing or stale embedded data, a shell count out of range or too long for
        the reference FC supercell, an unknown tail.
    """
    info = material_info(material)
    if supercell is None:
        n = check_shells(info.get("cutoff_shells", 5) if n_shells is None else n_shells, info["name"])
    else:
        n = 0  # the supercell decides the space (its shell count is set on loading)
    folder = material_dir(info["name"])
    stamp = tuple((folder / f).stat().st_mtime_ns if (folder / f).is_file() else 0 for f in _FILES)
    sc = None
    if supercell is not None:
        from fcinv.fcspace.supercell import parse_supercell

        m = parse_supercell(supercell)
        if m is None:
            raise DataError(f"supercell={supercell!r} is a shell count; pass n_shells or e.g. '4x4x4'.")
        sc = tuple(int(v) for v in m.reshape(-1))
    return _load_reference(
        info["name"], n, check_tail(tail or info.get("tail", TAIL_ZERO)), str(folder), stamp, sc
    )


_FILES = ("material.json", ENSEMBLE_FILE, REFERENCE_FC_FILE, MEMBERS_FC_FILE)


@lru_cache(maxsize=16)
def _load_reference(
    material: str, n_shells: int, tail: str, folder: str, stamp: tuple, supercell: tuple | None = None
) -> MaterialReference:
    # folder and stamp key the cache: a material folder (same name, another place or rewritten) is reloaded

    crystal = Crystal.from_name(material)
    ens = load_ensemble(material)
    ens_names = list(ens.get("space", {}).get("names") or [])
    try:
        ens_theta_ref = {n: float(ens["theta_ref"][n]) for n in ens_names or ens["theta_ref"]}
        ens_lower = {n: float(ens["bounds"]["lower"][n]) for n in ens_theta_ref}
        ens_upper = {n: float(ens["bounds"]["upper"][n]) for n in ens_theta_ref}
        paper = [s["name"] if isinstance(s, dict) else str(s) for s in ens["sampled"]]
        ranking = [str(r) for r in ens.get("ranking", paper)]
    except KeyError as exc:
        raise DataError(
            f"the embedded ensemble of {crystal.name} lacks {exc}. Regenerate it with `fcinv reference {crystal.name}`."
        ) from None
    ens_names = ens_names or list(ens_theta_ref)
    if supercell is None:
        space = FCSpace(crystal, n_shells=n_shells)
    else:
        space = FCSpace.for_supercell(crystal, np.array(supercell).reshape(3, 3))
        n_shells = shell_count(space)
    cut = ens.get("space", {}).get("cutoff_A")
    ens_shells = (
        FCSpace(crystal, cutoff=float(cut)) if cut else FCSpace(crystal, n_shells=_n_shells_of(ens_names))
    )
    if list(ens_shells.names) != ens_names:
        raise DataError(
            f"the embedded ensemble of {crystal.name} was made for parameters {ens_names[:4]}... but the current space has "
            f"{ens_shells.names[:4]}...; regenerate it with `fcinv reference {crystal.name}`."
        )
    fc = read_reference_fc(material_dir(crystal.name) / REFERENCE_FC_FILE)
    pairs = _fc_pairs(crystal, space, fc, "the embedded reference FC set")
    proj = space.project(pairs).theta * _held(crystal, space, fc)
    theta_ref = np.array([ens_theta_ref.get(n, proj[i]) for i, n in enumerate(space.names)])
    members_path = material_dir(crystal.name) / MEMBERS_FC_FILE
    member_theta = _member_projections(crystal, space, members_path, ens) if members_path.is_file() else {}
    if member_theta:
        # every parameter, at any shell count: min/max over the stable members' own projections
        mat = np.array(list(member_theta.values()))
        lower, upper = mat.min(axis=0), mat.max(axis=0)
        source = ["ensemble"] * space.n_params
        widen = ens.get("bounds", {}).get("relative_widen")
        if widen is not None:
            # phonopy sets (fcinv.prepare.stage1.WIDENING_RULE): the range widened by w * m_p
            floor = float(ens["bounds"].get("floor", 0.05))
            m = np.maximum(np.abs(theta_ref), floor * float(np.max(np.abs(theta_ref))))
            lower, upper = lower - float(widen) * m, upper + float(widen) * m
            source = ["sets widened"] * space.n_params
    else:
        lower, upper, source = _bounds_beyond_embedded(
            space, theta_ref, ens, ens_names, ens_shells, ens_lower, ens_upper
        )
    sampled = [n for n in ranking if n in space.names] + [n for n in space.names if n not in ranking]
    return MaterialReference(
        crystal,
        space,
        pairs,
        theta_ref,
        sampled,
        np.array(lower, float),
        np.array(upper, float),
        ens,
        paper_sampled=[n for n in paper if n in space.names],
        n_shells=n_shells,
        tail=tail,
        bounds_source=tuple(source),
        member_theta=member_theta,
    )


def _member_projections(crystal: Crystal, space: FCSpace, path: Path, ens: dict) -> dict[str, np.ndarray]:
    """Each stable member's projection onto ``space`` (name → θ), from ``members_fc.hdf5``."""

    members = read_members_fc(path)
    stable = [str(n) for n in ens.get("stable_members", [])]
    if stable and sorted(stable) != sorted(members):
        raise DataError(
            f"'{path}' holds members {sorted(members)} but the ensemble's stable members are {sorted(stable)}; "
            f"the two files are from different runs. Regenerate both with `fcinv reference {crystal.name}`."
        )
    out = {}
    for name in stable or sorted(members):
        pairs = _fc_pairs(crystal, space, members[name], f"member {name}'s FC set")
        out[name] = np.asarray(space.project(pairs).theta, float) * _held(crystal, space, members[name])
    return out


def _held(crystal: Crystal, space: FCSpace, fc: dict) -> np.ndarray:
    """1 for each parameter of ``space`` whose bond the FC set's supercell holds strictly inside its
    Wigner–Seitz cell (shorter than half its shortest translation), else 0 (all 1 for a distance space,
    which :func:`_fc_pairs` has checked)."""
    if space.supercell is None:
        return np.ones(space.n_params)
    smat = (
        np.asarray(fc["supercell_matrix"]).reshape(3, 3)
        @ np.asarray(fc["lattice"])
        @ np.linalg.inv(crystal.lattice)
    )
    r = np.arange(-2, 3)
    n = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    half = 0.5 * np.linalg.norm(n[np.any(n != 0, axis=1)] @ smat @ crystal.lattice, axis=1).min()
    return np.array([1.0 if s.distance < half - 1e-3 else 0.0 for s in space.shells for _ in s.components])


def _fc_pairs(crystal: Crystal, space: FCSpace, fc: dict, what: str) -> PairFC:
    """A :func:`read_reference_fc`-style FC set as pairs on ``crystal``, after checking that its supercell
    holds every pair of ``space``."""
    from phonopy.structure.atoms import PhonopyAtoms

    smat = np.asarray(fc["supercell_matrix"]).reshape(3, 3)
    try:
        # the supercell is of the file's unit cell (the primitive cell, or a user set's POSCAR); a
        # supercell space takes what the set holds (:func:`_held`)
        if space.supercell is None:
            space._check_supercell(smat @ np.asarray(fc["lattice"]) @ np.linalg.inv(crystal.lattice))
    except Exception:
        raise DataError(
            f"--shells {shell_count(space)} for {crystal.name} reaches {space.cutoff:.2f} Å, beyond what {what} "
            f"(supercell {np.diag(smat).tolist()}) holds. Pass fewer shells or regenerate the reference at a larger supercell."
        ) from None
    unit = PhonopyAtoms(
        numbers=fc["numbers"], cell=fc["lattice"], scaled_positions=fc["positions"], masses=fc["masses"]
    )
    return pairs_from_phonopy(crystal, fc["force_constants"], unit, fc["supercell_matrix"])


def _bounds_beyond_embedded(space, theta_ref, ens, ens_names, ens_shells, ens_lower, ens_upper):
    """Bounds without ``members_fc.hdf5``: the embedded ensemble's within its shells; beyond them the
    reference member's value ± h, h the largest |θ| of a stable member in the outermost embedded shell."""
    outer = ens_shells.shells[-1].name
    members = [m for m in ens.get("members", []) if m.get("status") == "stable" and "projection" in m]
    outer_vals = [
        abs(float(m["projection"]["theta"][n]))
        for m in members
        for n in ens_names
        if n.startswith(outer + "_")
    ]
    outer_vals += [abs(ens_lower[n]) for n in ens_names if n.startswith(outer + "_")]
    outer_vals += [abs(ens_upper[n]) for n in ens_names if n.startswith(outer + "_")]
    h = max(outer_vals)
    lower, upper, source = [], [], []
    for i, n in enumerate(space.names):
        if n in ens_lower:
            lower.append(ens_lower[n])
            upper.append(ens_upper[n])
            source.append("ensemble")
        else:
            lower.append(theta_ref[i] - max(h, abs(theta_ref[i])))
            upper.append(theta_ref[i] + max(h, abs(theta_ref[i])))
            source.append("reference±h")
    return lower, upper, source


def _n_shells_of(names: list[str]) -> int:
    """Number of shells named in ``names`` (``1NN_xx`` … ``5NN_yz`` → 5)."""
    shells = []
    for n in names:
        sh = n.split("_")[0]
        if sh not in shells:
            shells.append(sh)
    return len(shells)
