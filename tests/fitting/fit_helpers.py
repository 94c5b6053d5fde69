"""Helpers of the fitting tests: small spring-model forward models that need no embedded data."""

from __future__ import annotations

import numpy as np

SPRINGS = {"Ge": {"1NN": 6.0, "2NN": 0.6}, "Nb": {"1NN": 3.0, "2NN": 1.5, "3NN": 0.3}}
FREE = {"Ge": ["1NN_xx", "1NN_xy", "2NN_xx", "2NN_xy"], "Nb": ["1NN_xx", "1NN_xy", "2NN_xx", "3NN_xx"]}


def spring_model(material: str, free: list[str] | None = None):
    """A central-force forward model on the material's default grid, varying 4 parameters."""
    from fcinv.crystal import Crystal, default_grid
    from fcinv.fcspace import FCSpace
    from fcinv.forward import ForwardModel

    c = Crystal.from_name(material)
    space = FCSpace.for_material(c)
    return ForwardModel(
        space, default_grid(c), space.central_force_theta(SPRINGS[material]), free=free or FREE[material]
    )


def relative_error(a, b) -> np.ndarray:
    """|a − b| / |b| elementwise."""
    return np.abs(np.asarray(a, float) - np.asarray(b, float)) / np.abs(np.asarray(b, float))


def unnamed_spring_model():
    """A Ge spring model on a crystal read from a file under another name: no embedded data of any kind."""
    from fcinv.crystal import Crystal, material_dir
    from fcinv.fcspace import FCSpace
    from fcinv.forward import ForwardModel

    c = Crystal.from_file(material_dir("Ge") / "structure.vasp", name="diamond-test")
    space = FCSpace(c, n_shells=5)
    from fcinv.crystal import default_grid

    return ForwardModel(
        space, default_grid(c, e_max=40.0), space.central_force_theta(SPRINGS["Ge"]), free=FREE["Ge"]
    )
