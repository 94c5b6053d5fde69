"""``fcinv project``: project a phonopy force-constant set onto the symmetry-reduced parameters θ.

Example
-------
fcinv project FORCE_CONSTANTS --structure POSCAR --supercell 4 4 4
"""

from __future__ import annotations

import argparse

import numpy as np

from fcinv.cli._common import UsageError, add_logging_args, cli_main, command_line, supercell_from_args
from fcinv.io import write_json


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv project", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("force_constants", help="phonopy FORCE_CONSTANTS or force_constants.hdf5")
    p.add_argument(
        "--structure", required=True, metavar="POSCAR", help="the unit cell the force constants belong to"
    )
    p.add_argument(
        "--supercell",
        type=int,
        nargs="+",
        required=True,
        metavar="N",
        help="supercell matrix: 3 integers or 9",
    )
    p.add_argument(
        "--material",
        default=None,
        help="express θ in an embedded material's space (default: the structure's own, same names)",
    )
    p.add_argument(
        "--shells", type=int, default=None, help="neighbour shells (default: the material's, else 5)"
    )
    p.add_argument("--cutoff", type=float, default=None, help="pair cutoff in Å instead of --shells")
    p.add_argument("--json", default=None, help="also write θ and the residuals to this JSON file")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_logging_args(p)
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.crystal import Crystal, default_grid, load_crystal
    from fcinv.fcspace import FCSpace, read_phonopy
    from fcinv.forward import ForwardModel

    crystal = load_crystal(args.material) if args.material else Crystal.from_file(args.structure)
    if args.cutoff is not None and args.shells is not None:
        raise UsageError("pass --shells or --cutoff, not both")
    space = (
        FCSpace(crystal, cutoff=args.cutoff)
        if args.cutoff
        else (FCSpace(crystal, n_shells=args.shells) if args.shells else FCSpace.for_material(crystal))
    )
    pairs = read_phonopy(crystal, args.force_constants, args.structure, supercell_from_args(args.supercell))
    proj = space.project(pairs)
    rows = space.describe()
    print(
        f"{crystal!r}: {space.n_params} parameters in {len(space.shells)} shells (cutoff "
        f"{space.cutoff:.3f} Å)"
    )
    print(f"{'name':<10} {'theta (eV/Å²)':>14}  {'shell distance (Å)':>18}  bond (Å)")
    for r, v in zip(rows, proj.theta):
        print(f"{r['name']:<10} {v:>14.6f}  {r['distance']:>18.4f}  {r['bond']}")
    print(
        f"in-shell residual (asymmetric part θ cannot represent): {proj.in_shell_residual:.2e} (relative "
        "Frobenius norm)"
    )
    print(
        f"beyond the cutoff: {proj.beyond_cutoff:.2e} of the FC norm (largest component "
        f"{proj.max_beyond_cutoff:.4f} eV/Å²)"
    )
    # what the truncation costs in frequencies along the default path
    from fcinv.errors import StructureError

    try:
        grid = default_grid(crystal)
    except StructureError:  # crystals without an energy range: use a nominal one, only q matters here
        grid = default_grid(crystal, e_max=100.0)
    full = ForwardModel(space, grid, proj.theta, reference=pairs, free=space.names[:1]).frequencies(
        proj.theta[:1]
    )[0]
    trunc = ForwardModel(space, grid, proj.theta, free=space.names[:1]).frequencies(proj.theta[:1])[0]
    rms = float(np.sqrt(np.mean((full - trunc) ** 2)))
    print(
        f"θ alone vs the full set along {'-'.join(grid.labels)}: rms {rms:.4f} meV "
        f"({rms / 4.135667696923859:.4f} THz), max {np.abs(full - trunc).max():.4f} meV"
    )
    if args.json:
        out = proj.as_dict()
        out.update(
            {
                "material": crystal.name,
                "cutoff_A": space.cutoff,
                "freq_rms_truncation_meV": rms,
                "command": command_line(),
            }
        )
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0
