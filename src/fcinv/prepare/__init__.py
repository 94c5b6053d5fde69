"""``fcinv prepare``: a new crystal from its structure file to a self-contained material folder.

- :mod:`fcinv.prepare.stage1`: Stage I without force fields, from user phonopy sets (the bounds by a
  documented relative widening), written as a material folder's reference.
- :mod:`fcinv.prepare.pipeline`: the resumable steps Stage I → domain → dataset → training.
"""

from __future__ import annotations

from fcinv.prepare.stage1 import (
    DEFAULT_RELATIVE_WIDEN,
    WIDENING_RULE,
    PhonopySet,
    PrepareError,
    reference_from_phonopy,
)

__all__ = ["DEFAULT_RELATIVE_WIDEN", "WIDENING_RULE", "PhonopySet", "PrepareError", "reference_from_phonopy"]
