"""Bound coherent neutron scattering lengths of the elements (natural isotopic abundance).

Values, in fm, from V. F. Sears, "Neutron scattering lengths and cross sections",
Neutron News 3(3), 26–37 (1992), the table also packaged by Euphonic and NIST; a test
compares this copy with Euphonic's (``euphonic/isotopes/data/sears-1992.csv``). Strongly
absorbing elements carry their imaginary part (complex values).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fcinv.errors import FcinvError


class ScatteringLengthError(FcinvError):
    """An element has no tabulated coherent scattering length."""


#: Sears (1992) bound coherent scattering lengths b_c, fm, natural elements.
SEARS_1992_FM: dict[str, complex] = {
    "H": -3.739, "He": 3.26, "Li": -1.90, "Be": 7.79, "B": 5.30 - 0.213j, "C": 6.646, "N": 9.36,
    "O": 5.803, "F": 5.654, "Ne": 4.566, "Na": 3.63, "Mg": 5.375, "Al": 3.449, "Si": 4.1491,
    "P": 5.13, "S": 2.847, "Cl": 9.577, "Ar": 1.909, "K": 3.67, "Ca": 4.70, "Sc": 12.29,
    "Ti": -3.438, "V": -0.3824, "Cr": 3.635, "Mn": -3.73, "Fe": 9.45, "Co": 2.49, "Ni": 10.3,
    "Cu": 7.718, "Zn": 5.680, "Ga": 7.288, "Ge": 8.185, "As": 6.58, "Se": 7.970, "Br": 6.795,
    "Kr": 7.81, "Rb": 7.09, "Sr": 7.02, "Y": 7.75, "Zr": 7.16, "Nb": 7.054, "Mo": 6.715,
    "Tc": 6.8, "Ru": 7.03, "Rh": 5.88, "Pd": 5.91, "Ag": 5.922, "Cd": 4.87 - 0.70j,
    "In": 4.065 - 0.0539j, "Sn": 6.225, "Sb": 5.57, "Te": 5.80, "I": 5.28, "Xe": 4.92,
    "Cs": 5.42, "Ba": 5.07, "La": 8.24, "Ce": 4.84, "Pr": 4.58, "Nd": 7.69, "Hf": 7.77,
    "Ta": 6.91, "W": 4.86, "Re": 9.2, "Os": 10.7, "Ir": 10.6, "Pt": 9.60, "Au": 7.63,
    "Hg": 12.692, "Tl": 8.776, "Pb": 9.405, "Bi": 8.532, "Th": 10.31, "U": 8.417,
}


def coherent_lengths(symbols: Sequence[str], overrides: dict[str, complex] | None = None) -> np.ndarray:
    """Coherent scattering lengths of the atoms ``symbols``, shape (n_atoms,) complex128, fm.

    Parameters
    ----------
    symbols
        Chemical symbols, one per atom.
    overrides
        Optional ``{symbol: b_fm}`` replacing the table (e.g. an isotope-enriched sample).
    """
    table = dict(SEARS_1992_FM)
    if overrides:
        table.update({str(k): complex(v) for k, v in overrides.items()})
    out = []
    for s in symbols:
        if s not in table:
            raise ScatteringLengthError(
                f"no coherent scattering length for element '{s}' in the Sears (1992) table. "
                f"Pass scattering_lengths={{'{s}': b_fm}}."
            )
        out.append(complex(table[s]))
    return np.asarray(out, dtype=complex)
