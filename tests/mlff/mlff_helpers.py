"""Helpers of the force-field tests: an exactly known harmonic model standing in for a force field.

:class:`SpringCalculator` is an ASE calculator of central springs, E = ½ Σ k_s (r − r_s)² over
the pairs of each shell s (equilibrium length r_s, so the perfect crystal is force-free).
For bcc with nearest-neighbour springs k1 and second-neighbour springs k2 the dynamical
matrix is D(q) = Σ_n k_n (1 − cos q·r_n) r̂_n r̂_nᵀ / M, e.g. ω²(H) = 16 k1 / (3 M), triply
degenerate, which the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

NB_A = 3.3004
NB_SHELLS = (NB_A * np.sqrt(3) / 2, NB_A)


class SpringCalculator(Calculator):
    """Central springs per shell: ``shells`` is a list of (equilibrium length Å, k eV/Å²)."""

    implemented_properties = ("energy", "forces")

    def __init__(self, shells: list[tuple[float, float]], window: float = 0.2, **kw):
        super().__init__(**kw)
        self.shells = list(shells)
        self.window = window

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        from ase.neighborlist import neighbor_list

        super().calculate(atoms, properties, system_changes)
        cutoff = max(r for r, _ in self.shells) + self.window
        i, D = neighbor_list("iD", self.atoms, cutoff)
        r = np.linalg.norm(D, axis=1)
        energy = 0.0
        forces = np.zeros((len(self.atoms), 3))
        for r0, k in self.shells:
            sel = np.abs(r - r0) < self.window
            dr = r[sel] - r0
            energy += 0.25 * k * np.sum(dr**2)  # each pair appears twice
            f = (k * dr / r[sel])[:, None] * D[sel]  # force on i from the pair, towards j when stretched
            np.add.at(forces, i[sel], f)
        self.results = {"energy": energy, "forces": forces}


@dataclass(frozen=True)
class FakeMember:
    """Duck-typed stand-in for :class:`fcinv.mlff.ensemble.Member` with a spring calculator."""

    name: str
    shells: tuple[tuple[float, float], ...]
    weights: Path
    fail: bool = False
    calls: list = field(default_factory=list, compare=False, hash=False)
    family: str = "fake"
    model: str = "springs"
    modal: str | None = None
    shipped: bool = False

    @property
    def package(self) -> str:
        return "fake"

    def package_version(self) -> str:
        return "0"

    def weight_path(self) -> Path:
        return self.weights

    def calculator(self, device: str = "cpu"):
        self.calls.append(device)
        if self.fail:
            raise RuntimeError("weights are corrupt\nsecond line")
        return SpringCalculator(list(self.shells))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "package": self.package,
            "package_version": "0",
            "model": self.model,
            "modal": None,
            "shipped": False,
        }


def nb_member(name: str, k1: float, k2: float, weights: Path, **kw) -> FakeMember:
    return FakeMember(name=name, shells=((NB_SHELLS[0], k1), (NB_SHELLS[1], k2)), weights=weights, **kw)
