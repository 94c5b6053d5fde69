"""``fcinv reference``: regenerate a material's Stage I data from the force-field ensemble.

Examples
--------
fcinv reference Ge                               # all shipped members, default supercell
fcinv reference Nb --members 7net-0 chgnet-0.2.0 --supercell 8 8 8
fcinv reference Ge --relax --workdir out/reference/Ge-relaxed --out-dir out/Ge-relaxed
fcinv reference Ge --convergence --convergence-supercells 4 5 6
fcinv reference --list-members
fcinv reference --from-phonopy FORCE_CONSTANTS --structure POSCAR --supercell 4 4 4 --out Si
fcinv reference --from-phonopy a/FORCE_CONSTANTS --structure a/POSCAR --supercell 4 4 4 \
    --from-phonopy b/force_constants.hdf5 --structure b/POSCAR --supercell 5 5 5 --out Si --widen 0.3

Without force fields (``--from-phonopy``, no [mlff] extra needed) the user's phonopy sets stand in
for the ensemble; the bounds are the sets' range widened by the relative rule of
:mod:`fcinv.prepare.stage1` (printed, and written into the folder's ensemble.json and
provenance.json). The output is a material folder that ``--material DIR`` reads. Nothing is ever
written into the installed package: the default output folder is ./<material>.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from fcinv.errors import FcinvError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv reference",
        description=(
            "Compute force constants with every universal force field of the ensemble (phonopy finite displacements), "
            "drop unstable members, project onto the symmetry-reduced parameters θ, rank them by sensitivity and write "
            "ensemble.json, reference_fc.hdf5 and provenance.json. Needs the [mlff] extra. Results are cached per member "
            "in --workdir: a rerun skips finished members."
        ),
    )
    p.add_argument("material", nargs="?", help="embedded material (Ge, Nb) or a structure file (POSCAR/CIF)")
    g = p.add_argument_group("without force fields: user phonopy sets (repeat the three options per set)")
    g.add_argument(
        "--from-phonopy",
        action="append",
        metavar="FILE",
        help="a phonopy FORCE_CONSTANTS or force_constants.hdf5 standing in for the ensemble (repeatable)",
    )
    g.add_argument(
        "--structure",
        action="append",
        metavar="POSCAR",
        help="the POSCAR of the matching --from-phonopy set (one per set, or one for all)",
    )
    g.add_argument(
        "--widen",
        type=float,
        default=None,
        help="relative widening w of the bounds around the sets (default 0.25; rule in the output)",
    )
    g.add_argument("--name", default=None, help="the material's name (default: the structure file's stem)")
    g.add_argument(
        "--shells",
        type=int,
        default=None,
        help="neighbour shells in θ (default 5, or what the supercell holds)",
    )
    g.add_argument(
        "--e-max", type=float, default=None, help="energy range, meV (default: 1.2 × the highest mode)"
    )
    p.add_argument(
        "--members",
        nargs="+",
        metavar="NAME",
        help="members to run (default: every shipped one); a user weight file as FAMILY:PATH, e.g. mace:/path/model.model",
    )
    p.add_argument(
        "--list-members",
        action="store_true",
        help="list the shipped members and whether their weights are on disk, then exit",
    )
    p.add_argument(
        "--relax",
        action="store_true",
        help="compute each member at its own equilibrium lattice constant (default: the structure file's)",
    )
    p.add_argument(
        "--supercell",
        nargs="+",
        type=int,
        action="append",
        metavar="N",
        help="supercell of the primitive cell: N, N1 N2 N3 or 9 integers (default: Ge 5 5 5, Nb 8 8 8); "
        "with --from-phonopy the supercell of each set's POSCAR (one per set, or one for all)",
    )
    p.add_argument("--displacement", type=float, default=None, help="finite displacement in Å (default 0.01)")
    p.add_argument(
        "--top-k", type=int, default=8, help="number of sampled parameters FC0..FC{k-1} (default 8)"
    )
    p.add_argument(
        "--workdir",
        type=Path,
        help="cache folder for per-member results (default out/reference/<material>[-relax])",
    )
    p.add_argument(
        "--out",
        "--out-dir",
        dest="out_dir",
        type=Path,
        help="the material folder the files go to (default ./<material>; never the installed package)",
    )
    p.add_argument("--device", default="cpu", help="torch device of the force fields (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument(
        "--convergence",
        action="store_true",
        help="also measure supercell/displacement convergence (recorded in provenance.json; earlier studies of other members are kept)",
    )
    p.add_argument(
        "--convergence-members",
        nargs="+",
        default=["7net-0", "chgnet-0.2.0"],
        metavar="NAME",
        help="members used for the convergence study (default 7net-0 chgnet-0.2.0)",
    )
    p.add_argument(
        "--convergence-supercells",
        nargs="+",
        type=int,
        metavar="N",
        help="diagonal supercells to compare, smallest first; the last is the reference (default: default-1, default, default+1)",
    )
    p.add_argument(
        "--convergence-displacements",
        nargs="+",
        type=float,
        metavar="D",
        default=[0.01, 0.03],
        help="displacements to compare (Å); the first is the reference (default 0.01 0.03)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="log each member's steps")
    return p


def _list_members() -> int:
    from fcinv.mlff.ensemble import SHIPPED_MEMBERS

    for m in SHIPPED_MEMBERS.values():
        try:
            path, ok = m.weight_path(), "ok"
        except FcinvError as exc:
            path, ok = "-", str(exc)
        print(f"{m.name:18s} {m.package} {m.package_version() or 'not installed':10s} {ok:3s} {path}")
    return 0


def _fmt_points(summary: dict | None) -> str:
    if not summary:
        return ""
    parts = []
    for lab, v in summary["points"].items():
        parts.append(f"{lab}: " + " ".join(f"{f:.2f}" for f in v["freqs_THz"]))
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.list_members:
            return _list_members()
        if args.from_phonopy:
            return _run_from_phonopy(args, argv)
        if args.structure or args.widen is not None:
            raise FcinvError(
                "--structure and --widen belong to --from-phonopy. Add --from-phonopy FORCE_CONSTANTS, or drop them."
            )
        if not args.material:
            raise FcinvError(
                "no material given. Pass an embedded material (Ge, Nb) or a structure file, e.g. `fcinv reference Ge`."
            )
        return _run(args, argv)
    except FcinvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, argv: list[str] | None) -> int:
    import torch

    from fcinv.crystal import load_crystal
    from fcinv.mlff.build import build_reference
    from fcinv.mlff.ensemble import resolve_member, resolve_members
    from fcinv.mlff.phonons import (
        DEFAULT_DISPLACEMENT,
        DEFAULT_SUPERCELL_OTHER,
        DEFAULT_SUPERCELLS,
        PhononSettings,
    )
    from fcinv.mlff.runner import atomic_write_text, convergence_study

    if args.threads < 1:
        raise FcinvError(f"--threads {args.threads}; pass at least 1.")
    torch.set_num_threads(args.threads)
    from fcinv.crystal import available_materials

    if args.material.lower() not in {m.lower() for m in available_materials()}:
        return _run_structure(args)
    crystal = load_crystal(args.material)
    supercell = args.supercell[-1] if args.supercell else None
    supercell = supercell or DEFAULT_SUPERCELLS.get(crystal.name, DEFAULT_SUPERCELL_OTHER)
    displacement = DEFAULT_DISPLACEMENT if args.displacement is None else args.displacement
    settings = PhononSettings.create(supercell, displacement)
    members = resolve_members(args.members)
    workdir = args.workdir or Path("out") / "reference" / (crystal.name + ("-relax" if args.relax else ""))
    command = "fcinv reference " + " ".join(argv if argv is not None else sys.argv[1:])
    from fcinv.prepare.stage1 import refuse_package_folder

    if args.out_dir is None:
        args.out_dir = Path(crystal.name)  # ./<material>: never the installed package
    refuse_package_folder(args.out_dir)

    conv_path = workdir / "convergence.json"
    convergence = None
    if args.convergence:
        n0 = settings.supercell[0][0]
        scs = args.convergence_supercells or [n0 - 1, n0, n0 + 1]
        print(
            f"convergence study of {crystal.name} with {', '.join(args.convergence_members)}: supercells {scs}, displacements {args.convergence_displacements}"
        )
        previous = json.loads(conv_path.read_text()).get("studies", []) if conv_path.is_file() else []
        studies = []
        for name in args.convergence_members:
            try:
                studies.append(
                    convergence_study(
                        crystal,
                        resolve_member(name),
                        scs,
                        args.convergence_displacements,
                        device=args.device,
                        progress=not args.no_progress,
                    )
                )
            except FcinvError:
                raise
            except Exception as exc:  # noqa: BLE001 - a member that fails is reported, not fatal
                print(
                    f"  convergence study with {name} failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}",
                    file=sys.stderr,
                )
        # studies of other members from earlier runs are kept (one study per member)
        done = {st["member"] for st in studies}
        convergence = {"studies": [st for st in previous if st["member"] not in done] + studies}
        atomic_write_text(conv_path, json.dumps(convergence, indent=1, ensure_ascii=False) + "\n")
    elif conv_path.is_file():
        convergence = json.loads(conv_path.read_text())
    for study in (convergence or {}).get("studies", []):
        print(
            f"  {study['member']} (reference: supercell {study['reference']['supercell'][0][0]}, d={study['reference']['displacement_A']} Å)"
        )
        for row in study["rows"]:
            print(
                f"    supercell {row['supercell'][0][0]}x{row['supercell'][1][1]}x{row['supercell'][2][2]} ({row['n_atoms']} atoms), d={row['displacement_A']} Å: max |Δν| = {row['max_abs_dTHz']:.3f} THz"
            )

    ens = build_reference(
        crystal,
        members,
        settings,
        workdir=workdir,
        out_dir=args.out_dir,
        relax=args.relax,
        top_k=args.top_k,
        device=args.device,
        convergence=convergence,
        command=command,
        progress=not args.no_progress,
    )

    print(
        f"{crystal.name}: supercell {list(settings.supercell)}, displacement {settings.displacement} Å, {'relaxed' if args.relax else 'structure-file'} lattice constant"
    )
    for m in ens["members"]:
        a = f"{m['lattice_a_A']:.4f}" if m["lattice_a_A"] else "-"
        print(
            f"  {m['name']:18s} {m['status']:8s} a={a} Å  {m['wall_s']:6.1f} s  {_fmt_points(m['summary'])}"
        )
        if m["reason"]:
            print(f"  {'':18s} dropped: {m['reason']}")
    print(f"reference member: {ens['reference_member']['name']} ({ens['reference_member']['rule']})")
    print("sampled: " + ", ".join(f"{s['label']}={s['name']}" for s in ens["sampled"]))
    print(f"wrote ensemble.json, reference_fc.hdf5, provenance.json to {args.out_dir}")
    return 0


def _run_structure(args: argparse.Namespace) -> int:
    """A structure file: the ensemble's reference written as a material folder (fcinv.prepare)."""
    from fcinv.crystal import Crystal
    from fcinv.prepare.pipeline import PrepareOptions, stage1_forcefields
    from fcinv.prepare.stage1 import formula_of, material_name, refuse_package_folder

    if args.relax or args.convergence:
        raise FcinvError(
            "--relax and --convergence are supported for the embedded materials only. Drop them for a "
            "structure file (the supercell default holds the shells; pass --supercell to change it)."
        )
    structure = Path(args.material)
    name = material_name(structure, formula_of(Crystal.from_file(structure)), args.name)
    out = args.out_dir or Path(name)
    refuse_package_folder(out)
    opts = PrepareOptions(
        name=name,
        members=args.members,
        supercell=list(args.supercell[-1]) if args.supercell else None,
        shells=args.shells,
        e_max=args.e_max,
        device=args.device,
        progress=not args.no_progress,
    )
    stage1_forcefields(structure, out, name, opts, {}, print)
    ens = json.loads((out / "ensemble.json").read_text())
    print(f"reference member: {ens['reference_member']['name']}; stable: {', '.join(ens['stable_members'])}")
    print(f"wrote material.json, structure.vasp, ensemble.json, reference_fc.hdf5, provenance.json to {out}")
    print(f"use it as --material {out}")
    return 0


def _per_set(values: list | None, n: int, what: str) -> list:
    """One value per phonopy set: as many as sets, or one for all."""
    if not values:
        raise FcinvError(
            f"--from-phonopy needs {what} for each set. Pass {what} after each --from-phonopy FILE."
        )
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise FcinvError(
            f"{len(values)} {what} for {n} --from-phonopy sets. Pass one per set (in the same order), or one for all."
        )
    return values


def _run_from_phonopy(args: argparse.Namespace, argv: list[str] | None) -> int:
    from fcinv.prepare.stage1 import (
        DEFAULT_RELATIVE_WIDEN,
        PhonopySet,
        reference_from_phonopy,
        supercell_of,
    )

    n = len(args.from_phonopy)
    structures = _per_set(args.structure, n, "--structure POSCAR")
    supercells = _per_set(args.supercell, n, "--supercell N N N")
    sets = [
        PhonopySet(Path(fc), Path(st), supercell_of(sc))
        for fc, st, sc in zip(args.from_phonopy, structures, supercells)
    ]
    structure = Path(args.material) if args.material else sets[0].structure
    if args.material and not structure.is_file():
        raise FcinvError(
            f"with --from-phonopy the positional argument is the crystal's structure file; '{args.material}' is not a file. "
            "Drop it (the first set's POSCAR is used) or pass a CIF/POSCAR."
        )
    from fcinv.crystal import Crystal
    from fcinv.prepare.stage1 import formula_of, material_name

    name = material_name(structure, formula_of(Crystal.from_file(structure)), args.name)
    out = args.out_dir or Path(name)
    widen = DEFAULT_RELATIVE_WIDEN if args.widen is None else args.widen
    command = "fcinv reference " + " ".join(argv if argv is not None else sys.argv[1:])
    summary = reference_from_phonopy(
        sets,
        out,
        structure=structure,
        name=name,
        shells=args.shells,
        widen=widen,
        top_k=args.top_k,
        e_max=args.e_max,
        command=command,
        say=None if args.no_progress else print,
    )
    print(
        f"{summary['name']}: Stage I from {n} phonopy set(s) (no force fields), {summary['n_shells']} shells, "
        f"{summary['n_params']} parameters, reference {summary['reference_set']}, highest mode "
        f"{summary['highest_mode_meV']:.2f} meV -> energy range 0..{summary['energy_max_meV']:g} meV"
    )
    print(f"bounds: relative widening w = {widen:g}: {summary['rule']}")
    print(f"wrote material.json, structure.vasp, ensemble.json, reference_fc.hdf5, provenance.json to {out}")
    print(f"use it as --material {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
