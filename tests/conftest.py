"""Shared fixtures: the real data in ../shared/data and the embedded crystals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data, skipping the test with a reason when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared test data not found at {p} (the ../shared/data folder beside the repository)")
    return p


@pytest.fixture(scope="session")
def ge_dft_dir() -> Path:
    """The DFT Ge force-constant set (POSCAR + FORCE_CONSTANTS, 4x4x4 supercell)."""
    return shared_path("ge_dft_pathsqe")


@pytest.fixture(scope="session")
def ge_crystal():
    from fcinv.crystal import Crystal

    return Crystal.from_name("Ge")


@pytest.fixture(scope="session")
def nb_crystal():
    from fcinv.crystal import Crystal

    return Crystal.from_name("Nb")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a test module (faster than two on a loaded 2-core machine), restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
