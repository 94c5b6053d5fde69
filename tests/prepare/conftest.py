"""Material folders registered by a test are forgotten after it (no leak into other tests)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _forget_material_folders():
    from fcinv import crystal

    before = dict(crystal._USER_FOLDERS)
    yield
    crystal._USER_FOLDERS.clear()
    crystal._USER_FOLDERS.update(before)
