"""``fcinv export``: write θ as phonopy FORCE_CONSTANTS + POSCAR (+ phonopy.yaml, phonopy_params.yaml).

θ comes from a result JSON (``fcinv fit``, ``fit-dispersion`` or ``infer`` output, or
``{name: value}``) and/or ``--theta NAME=VALUE``; parameters not given keep the
reference's values (``--shells N``, or the JSON's ``n_shells``, sets the parameter space). Where the material has an embedded reference (and the JSON does
not say it was fitted without one), the exported set is the reference's full force
constants plus Σ (θ − θ_ref) × unit arrays, on the reference's supercell, so it
reproduces the forward model exactly; ``--no-reference`` writes θ's own force
constants (pairs within the cutoff only). Every export is checked with phonopy
against the forward model (relative 1e-6).

Load the result with ``phonopy.load("OUT/phonopy_params.yaml")`` or Euphonic's
``ForceConstants.from_phonopy(path="OUT")``.

Examples
--------
fcinv export --material Ge --theta-json fit.json -o ge_fc/
fcinv export --material Ge --theta 1NN_xx=-1.5 -o ge_fc/ --compact
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
    p = argparse.ArgumentParser(prog="fcinv export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_material_args(p)
    p.add_argument("--theta-json", default=None, metavar="JSON", help="θ from this result JSON")
    p.add_argument("--theta", nargs="+", metavar="NAME=VALUE", help="θ values (eV/Å²) overriding the JSON / reference")
    p.add_argument("--no-reference", action="store_true", help="write θ's own force constants, not reference + Δθ")
    p.add_argument("--shells", type=int, default=None, metavar="N", help="neighbour shells of θ (default: the JSON's n_shells, else the material's)")
    p.add_argument("--supercell", type=int, nargs="+", metavar="N", help="supercell (3 or 9 integers); default: the reference's, else the material's")
    p.add_argument("--compact", action="store_true", help="FORCE_CONSTANTS in phonopy's compact layout (n_prim × n_sc blocks)")
    p.add_argument("--no-check", action="store_true", help="skip the phonopy self-check")
    p.add_argument("-o", "--output", required=True, help="output folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.crystal import material_dir
    from fcinv.errors import DataError, MaterialError
    from fcinv.fcspace import FCSpace
    from fcinv.fitting import export_phonopy
    from fcinv.io import read_theta_json

    if not args.theta_json and not args.theta:
        raise UsageError("pass --theta-json FILE and/or --theta NAME=VALUE ... (the θ to export)")
    crystal = crystal_from_args(args)
    given, doc = read_theta_json(args.theta_json) if args.theta_json else ({}, {})
    fitted_without_ref = doc.get("reference_fc") == "theta_ref"
    n_shells = args.shells if args.shells is not None else (int(doc["n_shells"]) if isinstance(doc.get("n_shells"), int) else None)
    ref = None
    if not args.no_reference and not fitted_without_ref:
        try:
            from fcinv.reference import load_reference

            ref = load_reference(crystal.name, n_shells) if n_shells is not None else load_reference(crystal.name)
        except MaterialError:
            ref = None
        except DataError:
            if n_shells is not None:
                raise
            ref = None
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
            print(f"note: {len(missing)} parameters not given are exported as 0 ({', '.join(missing[:6])}{'...' if len(missing) > 6 else ''})")
    if args.supercell:
        smat = supercell_from_args(args.supercell)
    elif ref is not None:
        from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

        smat = np.asarray(read_reference_fc(material_dir(crystal.name) / REFERENCE_FC_FILE)["supercell_matrix"])
    else:
        smat = None
    meta = {"theta_json": args.theta_json, "reference_member": ref.reference_member if ref is not None else None}
    res = export_phonopy(
        args.output, space, theta, reference=ref.pairs if ref is not None else None, theta_ref=ref.theta_ref if ref is not None else None,
        supercell=smat, compact=args.compact, check=not args.no_check, meta=meta, command=command_line(),
    )
    what = f"reference ({ref.reference_member}) + Δθ" if ref is not None else "θ alone (pairs within the cutoff)"
    print(f"{crystal.name}: exported {what} on supercell {np.diag(res.supercell).tolist()} to {Path(args.output)}/")
    for kind, path in res.files.items():
        print(f"  {kind:<16} {path}")
    if res.max_rel_dev is not None:
        print(f"check: phonopy reproduces the forward model to {res.max_rel_dev:.1e} (relative) along the path and a 4x4x4 mesh")
    return 0
