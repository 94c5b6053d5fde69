"""fcinv: interatomic force constants from single-crystal inelastic neutron scattering."""

from __future__ import annotations

__version__ = "0.1.0"

from fcinv.errors import FcinvError  # noqa: E402

__all__ = ["FcinvError", "__version__"]
