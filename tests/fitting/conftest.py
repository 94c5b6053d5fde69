"""Fixtures of the fitting tests (helpers in fit_helpers.py); all module-scoped and read-only."""

from __future__ import annotations

import pytest

from .fit_helpers import spring_model


@pytest.fixture(scope="module", params=["Ge", "Nb"])
def spring(request):
    """A central-force forward model of Ge or Nb varying 4 parameters."""
    return spring_model(request.param)


@pytest.fixture(scope="module")
def ge_spring():
    return spring_model("Ge")


@pytest.fixture(scope="module")
def ge_reference():
    """The embedded Ge reference (skips when its data files are absent)."""
    from fcinv.errors import DataError

    try:
        from fcinv.reference import load_reference

        return load_reference("Ge")
    except DataError as exc:
        pytest.skip(f"embedded Ge reference not available: {exc}")
