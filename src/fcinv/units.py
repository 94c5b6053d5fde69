"""Internal units of fcinv, fixed and documented in one place.

=================  ==========
quantity           unit
=================  ==========
energy             meV
frequency (print)  THz
force constant     eV/Å²
length             Å
mass               amu
q (printed)        r.l.u. of the conventional cell
q (internal)       fractional coordinates of the primitive reciprocal lattice
=================  ==========

The dynamical matrix is built in eV/(Å² amu); its eigenvalues are ω² in those units.
"""

from __future__ import annotations

import numpy as np

#: sqrt(eV / (Å² amu)) expressed in THz (ordinary frequency, not angular).
EV_A2_AMU_TO_THZ = float(np.sqrt(1.602176634e-19 / 1e-20 / 1.66053906660e-27) / (2 * np.pi) / 1e12)
#: 1 THz in meV (h * 1 THz).
THZ_TO_MEV = 4.135667696923859
#: sqrt(eV / (Å² amu)) expressed in meV.
EV_A2_AMU_TO_MEV = EV_A2_AMU_TO_THZ * THZ_TO_MEV
#: Boltzmann constant in meV/K.
KB_MEV_PER_K = 0.08617333262


def omega2_to_mev(omega2: np.ndarray) -> np.ndarray:
    """Convert eigenvalues ω² in eV/(Å² amu) to signed energies in meV.

    Imaginary modes (ω² < 0) are returned as negative energies, the phonopy
    convention.
    """
    omega2 = np.asarray(omega2)
    return np.sign(omega2) * np.sqrt(np.abs(omega2)) * EV_A2_AMU_TO_MEV
