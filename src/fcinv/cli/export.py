"""``fcinv export``: write force constants for phonopy and Euphonic (+ θ ± σ as CSV).

Without θ, the material's reference force-constant set is exported as it is (``fcinv export
--material Ge -o ge_ref/``). θ comes from a result JSON (``fcinv fit``, ``fit-dispersion``,
``infer`` or ``demo`` output, or ``{name: value}``) and/or ``--theta NAME=VALUE``; parameters
not given keep the reference's values (``--shells N``, or the JSON's ``n_shells``, sets the
parameter space). Where the material has an embedded reference (and the JSON does not say it
was fitted without one), the exported set is the reference's full force constants plus
Σ (θ − θ_ref) × unit arrays, on the reference's supercell, so it reproduces the forward model
exactly; ``--no-reference`` writes θ's own force constants (pairs within the cutoff only).
Every export is checked with phonopy against the forward model (relative 1e-6).

The folder holds POSCAR (the PRIMITIVE cell; fcinv's q is in r.l.u. of the conventional cell:
README.txt gives the matrix between them), FORCE_CONSTANTS (compact: n_prim × n_sc blocks;
``--full`` for n_sc × n_sc), phonopy.yaml, phonopy_params.yaml,
euphonic_force_constants.json (with Euphonic installed), theta.csv (θ ± σ where the JSON
has σ), README.txt and fcinv_export.json.

Load it with ``phonopy.load("OUT/phonopy_params.yaml")``,
``euphonic.ForceConstants.from_json_file("OUT/euphonic_force_constants.json")`` or
``ForceConstants.from_phonopy(path="OUT")``.

Examples
--------
fcinv export --material Ge -o ge_ref/
fcinv export --material Ge --theta-json result.json -o ge_fc/
fcinv export --material Ge --theta 1NN_xx=-1.5 -o ge_fc/ --full
fcinv export --material Nb --theta-json nb_fit.json -o nb_fc/ --supercell 5 5 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from fcinv.cli._common import (
    UsageError,
    add_material_args,
    command_line,
    crystal_from_args,
    parse_theta,
    supercell_from_args,
)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_material_args(p)
    p.add_argument("--theta-json", default=None, metavar="JSON", help="θ from this result JSON")
    p.add_argument(
        "--theta", nargs="+", metavar="NAME=VALUE", help="θ values (eV/Å²) overriding the JSON / reference"
    )
    p.add_argument(
        "--no-reference", action="store_true", help="write θ's own force constants, not reference + Δθ"
    )
    p.add_argument(
        "--shells",
        type=int,
        default=None,
        metavar="N",
        help="neighbour shells of θ (default: the JSON's n_shells, else the material's)",
    )
    p.add_argument(
        "--supercell",
        type=int,
        nargs="+",
        metavar="N",
        help="supercell (3 or 9 integers); default: the reference's, else the material's",
    )
    layout = p.add_mutually_exclusive_group()
    layout.add_argument(
        "--compact",
        action="store_true",
        help="FORCE_CONSTANTS in phonopy's compact layout, n_prim × n_sc blocks (the default)",
    )
    layout.add_argument(
        "--full",
        action="store_true",
        help="FORCE_CONSTANTS in phonopy's full layout, n_sc × n_sc blocks (n_sc/n_prim times larger)",
    )
    p.add_argument("--no-check", action="store_true", help="skip the phonopy self-check")
    p.add_argument("--no-euphonic", action="store_true", help="do not write euphonic_force_constants.json")
    p.add_argument("-o", "--output", "--out", dest="output", required=True, help="output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.crystal import material_dir
    from fcinv.errors import DataError, MaterialError
    from fcinv.fcspace import FCSpace
    from fcinv.fitting.export import export_phonopy, sigma_from_json
    from fcinv.io import read_theta_json

    crystal = crystal_from_args(args)
    reference_only = not args.theta_json and not args.theta
    given, doc = read_theta_json(args.theta_json) if args.theta_json else ({}, {})
    fitted_without_ref = doc.get("reference_fc") == "theta_ref"
    n_shells = (
        args.shells
        if args.shells is not None
        else (int(doc["n_shells"]) if isinstance(doc.get("n_shells"), int) else None)
    )
    ref = None
    if not args.no_reference and not fitted_without_ref:
        try:
            from fcinv.reference import load_reference

            ref = (
                load_reference(crystal.name, n_shells)
                if n_shells is not None
                else load_reference(crystal.name)
            )
        except MaterialError:
            ref = None
        except DataError:
            if n_shells is not None:
                raise
            ref = None
    if reference_only and ref is None:
        why = (
            "--no-reference leaves no reference set to export"
            if args.no_reference
            else f"{crystal.name} has no embedded reference force-constant set"
        )
        raise UsageError(
            f"nothing to export without θ: {why}; pass --theta-json FILE and/or --theta NAME=VALUE"
        )
    if ref is not None:
        space, base = ref.space, ref.theta_ref.copy()
    else:
        space = FCSpace(crystal, n_shells=n_shells) if n_shells is not None else FCSpace.for_material(crystal)
        base = np.zeros(space.n_params)
    for k, v in given.items():
        base[space.index([k])[0]] = v
    theta = parse_theta(args.theta, space.names, base)
    named = set(given) | {s.split("=", 1)[0] for s in (args.theta or []) if "=" in s}
    if ref is None and not (args.theta and all("=" not in s for s in args.theta)):
        missing = [n for n in space.names if n not in named]
        if missing:
            print(
                f"note: {len(missing)} parameters not given are exported as 0 ({', '.join(missing[:6])}{'...' if len(missing) > 6 else ''})"
            )
    overridden = {s.split("=", 1)[0] for s in (args.theta or []) if "=" in s}
    sigma = {k: v for k, v in sigma_from_json(doc).items() if k not in overridden}
    if args.supercell:
        smat = supercell_from_args(args.supercell)
    elif ref is not None:
        from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

        smat = np.asarray(
            read_reference_fc(material_dir(crystal.name) / REFERENCE_FC_FILE)["supercell_matrix"]
        )
    else:
        smat = None
    meta = {
        "theta_json": args.theta_json,
        "reference_member": ref.reference_member if ref is not None else None,
    }
    res = export_phonopy(
        args.output,
        space,
        theta,
        reference=ref.pairs if ref is not None else None,
        theta_ref=ref.theta_ref if ref is not None else None,
        supercell=smat,
        compact=not args.full,
        check=not args.no_check,
        euphonic=not args.no_euphonic,
        sigma=sigma,
        meta=meta,
        command=command_line(),
    )
    if ref is None:
        what = "θ alone (pairs within the cutoff)"
    elif reference_only:
        what = f"the reference force-constant set ({ref.reference_member})"
    else:
        what = f"reference ({ref.reference_member}) + Δθ"
    layout = "full" if args.full else "compact"
    print(
        f"{crystal.name}: exported {what} on supercell {np.diag(res.supercell).tolist()} "
        f"({layout} FORCE_CONSTANTS) to {Path(args.output)}/"
    )
    for kind, path in res.files.items():
        print(f"  {kind:<16} {path}")
    for line in res.notes:
        print(f"note: {line}")
    print(res.cell_note)
    if res.max_rel_dev is not None:
        print(
            f"check: phonopy reproduces the forward model to {res.max_rel_dev:.1e} (relative) along the path and a 4x4x4 mesh"
        )
    return 0
