"""Fixtures of the experiment tests: the pathSQE Ge grid, shared-data locations."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcinv.grid import SpectrumGrid

from .exp_helpers import ge_path_grid

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def ge_grid() -> SpectrumGrid:
    return ge_path_grid()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} is absent (it sits beside the repository)")
    return SHARED


@pytest.fixture(scope="session")
def ge_dft_dir(shared_data: Path) -> Path:
    d = shared_data / "ge_dft_pathsqe"
    if not (d / "FORCE_CONSTANTS").is_file() or not (d / "POSCAR").is_file():
        pytest.skip(f"{d} lacks FORCE_CONSTANTS/POSCAR (the DFT Ge force constants)")
    return d


@pytest.fixture(scope="session")
def nxspe_dir(shared_data: Path) -> Path:
    d = shared_data / "nxspe"
    if not d.is_dir():
        pytest.skip(f"{d} is absent (the real NXSPE test files)")
    return d
