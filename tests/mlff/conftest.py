"""Fixtures of the force-field tests (helpers in mlff_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def weights_file(tmp_path) -> Path:
    p = tmp_path / "weights.bin"
    p.write_bytes(b"not really weights")
    return p


@pytest.fixture
def nb_crystal():
    from fcinv.crystal import Crystal

    return Crystal.from_name("Nb")
