"""Argument groups and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import shlex
import sys

from fcinv.errors import FcinvError


def add_material_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--material NAME`` (embedded) or ``--crystal FILE`` (any structure file)."""
    g = p.add_argument_group("crystal")
    g.add_argument("--material", "-m", default=None if required else None, help="embedded material (Ge, Nb)")
    g.add_argument("--crystal", default=None, metavar="FILE", help="any structure file (CIF, POSCAR) instead of an embedded material")


def crystal_from_args(args):
    from fcinv.crystal import Crystal, load_crystal

    if args.crystal:
        return Crystal.from_file(args.crystal)
    return load_crystal(args.material or "Ge")


def add_fc_file_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("phonopy force constants")
    g.add_argument("--force-constants", metavar="FILE", help="phonopy FORCE_CONSTANTS or force_constants.hdf5")
    g.add_argument("--structure", metavar="POSCAR", help="the unit cell the force constants belong to")
    g.add_argument("--supercell", type=int, nargs="+", metavar="N", help="supercell matrix: 3 integers (diagonal) or 9")


def supercell_from_args(values):
    import numpy as np

    if values is None:
        raise UsageError("--supercell is required with --force-constants (e.g. --supercell 4 4 4)")
    if len(values) == 3:
        return np.diag(values)
    if len(values) == 9:
        return np.array(values).reshape(3, 3)
    raise UsageError(f"--supercell takes 3 or 9 integers, got {len(values)}")


def parse_theta(items: list[str] | None, names: list[str], base):
    """``NAME=VALUE`` pairs (override ``base``) or ``len(names)`` plain numbers → θ array."""
    import numpy as np

    from fcinv.errors import ForceConstantError

    theta = np.array(base, dtype=float).copy()
    if not items:
        return theta
    if all("=" not in s for s in items):
        try:
            vals = [float(s) for s in items]
        except ValueError as exc:
            raise ForceConstantError(f"--theta value {exc}; pass numbers or NAME=VALUE pairs.") from None
        if len(vals) != len(names):
            raise ForceConstantError(f"--theta has {len(vals)} values; expected {len(names)} ({', '.join(names)}). Pass one value per name or NAME=VALUE pairs.")
        return np.array(vals)
    for s in items:
        if "=" not in s:
            raise ForceConstantError(f"--theta item '{s}' is not NAME=VALUE. Mix of plain numbers and pairs is not allowed.")
        k, v = s.split("=", 1)
        if k not in names:
            raise ForceConstantError(f"unknown parameter '{k}' in --theta. Names: {', '.join(names)}.")
        try:
            theta[names.index(k)] = float(v)
        except ValueError:
            raise ForceConstantError(f"--theta {k}={v}: '{v}' is not a number.") from None
    return theta


def parse_springs(items: list[str]) -> dict[str, float]:
    """``["1NN=6", "2NN=0.6"]`` → ``{"1NN": 6.0, "2NN": 0.6}`` (central-force springs, eV/Å²)."""
    out = {}
    for s in items:
        k, _, v = s.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            raise UsageError(f"--springs item '{s}' is not SHELL=K (e.g. 1NN=6)") from None
    return out


class UsageError(FcinvError):
    """Bad command-line arguments."""


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["fcinv", *sys.argv[1:]])


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="torch device: cpu, cuda or auto (default: auto, i.e. cuda when available)")
