"""The symmetry-reduced force-constant space θ.

Harmonic force constants Φ(i, j, R) (eV/Å², the second derivative of the energy
with respect to displacements of atom i in the home cell and atom j in cell R)
are grouped into neighbour shells: orbits of atom pairs under the space group
(and under the exchange Φ(i, j, R) = Φ(j, i, -R)ᵀ). Each shell has a
representative bond whose 3×3 tensor lies in the subspace invariant under the
bond's site symmetry; that subspace is derived from the space group (the null
space of the stabiliser constraints), never tabulated by hand.

Parameters are named ``<shell>_<component>`` (``1NN_xx``, ``1NN_xy``, ...): θ_p
*is* the Cartesian component ``<component>`` of the representative bond's
tensor. The representative of a shell is the pair whose Cartesian bond vector is
lexicographically largest (x, then y, then z), ties broken by the lowest atom
indices. The on-site term is fixed by the acoustic sum rule,
Φ(i, i, 0) = -Σ_(j,R)≠(i,0) Φ(i, j, R), so it is not a parameter.

:class:`PairFC` is the common currency: any force-constant set (from θ, or a
full phonopy array with its supercell images) becomes a list of pairs with
Cartesian 3×3 blocks, from which dynamical matrices are built.
"""

from __future__ import annotations

from fcinv.fcspace.pairs import PairFC, merge_pairs, pairs_from_phonopy, read_phonopy
from fcinv.fcspace.shells import Shell, find_shells, shell_distances
from fcinv.fcspace.space import FCSpace, Projection

__all__ = [
    "FCSpace",
    "PairFC",
    "Projection",
    "Shell",
    "find_shells",
    "merge_pairs",
    "pairs_from_phonopy",
    "read_phonopy",
    "shell_distances",
]
