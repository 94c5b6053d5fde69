"""Argument groups and helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import contextvars
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from fcinv.errors import FcinvError

_VERBOSITY: contextvars.ContextVar[int] = contextvars.ContextVar("fcinv_cli_verbosity", default=0)
_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
_NOISY = ("numba", "matplotlib", "h5py", "PIL")


class TqdmHandler(logging.Handler):
    """A logging handler that writes through ``tqdm.write``, so records never break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(verbosity: int) -> dict[str, Any]:
    """Route fcinv's log records through tqdm at the level ``verbosity`` selects (the CLI only).

    Returns what :func:`restore_logging` needs to undo it (tests call ``main`` in-process).
    """
    root = logging.getLogger()
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    state = {
        "level": root.level,
        "handler": handler,
        "token": _VERBOSITY.set(verbosity),
        "noisy": {n: logging.getLogger(n).level for n in _NOISY},
    }
    root.addHandler(handler)
    root.setLevel(_LEVELS[max(-1, min(2, verbosity))])
    for n in _NOISY:
        logging.getLogger(n).setLevel(logging.WARNING)
    return state


def restore_logging(state: dict[str, Any]) -> None:
    """Undo :func:`configure_logging`."""
    root = logging.getLogger()
    root.removeHandler(state["handler"])
    root.setLevel(state["level"])
    for n, lvl in state["noisy"].items():
        logging.getLogger(n).setLevel(lvl)
    _VERBOSITY.reset(state["token"])


def show_progress() -> bool:
    """Whether progress bars are wanted (False under ``-q``)."""
    return _VERBOSITY.get() >= 0


def add_logging_args(p: argparse.ArgumentParser) -> None:
    """List the shared ``-v``/``-q`` in a command's help (``fcinv`` takes them off the command line)."""
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    g.add_argument("-q", "--quiet", action="store_true", help="errors only, no progress bars")


def add_material_args(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """``--material NAME`` (embedded) or ``--crystal FILE`` (any structure file)."""
    g = p.add_argument_group("crystal")
    g.add_argument("--material", "-m", default=None, help="embedded material (Ge, Nb) or a material folder")
    g.add_argument(
        "--crystal",
        default=None,
        metavar="FILE",
        help="any structure file (CIF, POSCAR) instead of an embedded material",
    )


def material_from_args(args):
    """The :class:`~fcinv.material.Material` named by ``--material`` / ``--crystal`` (default Ge)."""
    from fcinv.material import Material, load_material

    if args.crystal and args.material:
        raise UsageError(
            f"--material {args.material} and --crystal {args.crystal} both name the crystal. "
            "Pass one of them."
        )
    structure = getattr(args, "structure", None)
    if structure and not getattr(args, "force_constants", None):
        # --structure belongs to --force-constants; alone it names the crystal (never a silent Ge)
        if args.crystal or args.material:
            raise UsageError(
                f"--structure {structure} is the unit cell of --force-constants, which is not given; "
                f"the crystal is already --{'crystal' if args.crystal else 'material'}. Drop --structure, "
                "or add --force-constants FILE --supercell N N N."
            )
        return Material.from_structure(structure)
    if args.crystal:
        return Material.from_structure(args.crystal)
    return load_material(args.material or "Ge")


def model_from_args(model: str, material: str | None) -> tuple[str, str | None]:
    """``--model`` / ``--material`` with a prepared material folder (``fcinv prepare``) as the model:
    its ``models/`` folder, and the folder itself as the material unless ``--material`` names one."""
    from pathlib import Path

    folder = Path(model)
    if (folder / "material.json").is_file() and (folder / "models").is_dir():
        return str(folder / "models"), material or str(folder)
    return model, material


def crystal_from_args(args):
    """The crystal of :func:`material_from_args`."""
    return material_from_args(args).crystal


def add_fc_file_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("phonopy force constants")
    g.add_argument(
        "--force-constants", metavar="FILE", help="phonopy FORCE_CONSTANTS or force_constants.hdf5"
    )
    g.add_argument("--structure", metavar="POSCAR", help="the unit cell the force constants belong to")
    g.add_argument(
        "--supercell", type=int, nargs="+", metavar="N", help="supercell matrix: 3 integers (diagonal) or 9"
    )


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
            raise ForceConstantError(
                f"--theta has {len(vals)} values; expected {len(names)} ({', '.join(names)}). Pass one "
                "value per name or NAME=VALUE pairs."
            )
        return np.array(vals)
    for s in items:
        if "=" not in s:
            raise ForceConstantError(
                f"--theta item '{s}' is not NAME=VALUE. Mix of plain numbers and pairs is not allowed."
            )
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
    """Bad command-line arguments (exit code 2)."""


def command_line() -> str:
    """The command being run, for provenance: the one :func:`fcinv.cli.main.main` recorded, else
    ``fcinv`` + this process's arguments."""
    from fcinv.io.provenance import format_command, scoped_command

    cmd = scoped_command()
    return cmd if cmd is not None else format_command(["fcinv", *sys.argv[1:]])


def cli_main(fn: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """Decorate a command's ``main(argv)``: files and results it makes record ``fcinv <command> argv``
    also when ``main`` is called directly (tests, scripts) rather than through ``fcinv``."""

    @functools.wraps(fn)
    def wrapper(argv: list[str] | None = None) -> int:
        from fcinv.cli.commands import COMMANDS
        from fcinv.io.provenance import command_scope, scoped_command

        if scoped_command() is not None:
            return fn(argv)
        cmd = next((c for c, (m, _) in COMMANDS.items() if m == fn.__module__), fn.__module__)
        words = list(sys.argv[1:] if argv is None else argv)
        with command_scope(["fcinv", cmd, *words]):
            return fn(argv)

    return wrapper


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="torch device: cpu, cuda or auto (default: auto, i.e. cuda when available)",
    )


#: The figure convention of every command that draws, appended to its help epilog.
PLOT_EPILOG = (
    "Figures: --plot/--no-plot turns the figures on or off; --png PATH names the figure file "
    "(and implies --plot); --no-png, the old spelling of --no-plot, still works."
)


def add_plot_args(p: argparse.ArgumentParser, *, default: bool, png_help: str | None = None) -> None:
    """The one figure convention: ``--plot/--no-plot`` (default ``default``), ``--png PATH`` when
    ``png_help`` is given (with the hidden, deprecated ``--no-png``), and :data:`PLOT_EPILOG`."""
    if png_help is not None:
        p.add_argument("--png", default=None, metavar="PATH", help=png_help)
        p.add_argument("--no-png", dest="no_png", action="store_true", help=argparse.SUPPRESS)
    when = "yes" if default else ("no, unless --png is given" if png_help is not None else "no")
    p.add_argument(
        "--plot", action=argparse.BooleanOptionalAction, default=None, help=f"write figures (default: {when})"
    )
    p.set_defaults(plot_default=default)
    import textwrap

    epilog = textwrap.fill(PLOT_EPILOG if png_help is not None else PLOT_EPILOG.split(";")[0] + ".", 78)
    p.epilog = f"{p.epilog}\n\n{epilog}" if p.epilog else epilog


def plot_wanted(args) -> bool:
    """Whether to draw, from :func:`add_plot_args`' options: ``--no-png`` (deprecated) or ``--no-plot``
    off, ``--plot`` or ``--png`` on, else the command's default. ``--png`` with ``--no-plot`` is an error."""
    png = getattr(args, "png", None)
    if getattr(args, "no_png", False):
        if args.plot:
            raise UsageError("--plot and --no-png contradict each other; drop one (--no-png means --no-plot)")
        return False
    if args.plot is False and png is not None:
        raise UsageError(f"--png {png} and --no-plot contradict each other; drop one")
    if args.plot is None:
        return bool(args.plot_default or png is not None)
    return bool(args.plot)


def add_fit_trust_args(group, *, what: str, robust_stage: bool = False) -> None:
    """The options of a fit that guard what it reports (``fit`` and ``fit-dispersion``): outlier
    flagging (per ``what``: pixel or point), the full-zone stability mesh and ``--allow-unstable``."""
    stage = "no robust stage, " if robust_stage else ""
    group.add_argument(
        "--no-outlier-rejection", action="store_true", help=f"keep every {what} ({stage}nothing flagged)"
    )
    group.add_argument(
        "--outlier-sigma",
        type=float,
        default=5.0,
        help=f"flag {what}s beyond this many robust σ (default 5)",
    )
    group.add_argument(
        "--stability-mesh",
        type=int,
        default=8,
        metavar="N",
        help="N³ full-zone mesh of the stability check (default 8)",
    )
    group.add_argument(
        "--allow-unstable",
        action="store_true",
        help="exit 0 even when the fitted θ has imaginary modes (the warning stays)",
    )


def fit_exit_code(
    prog: str, ex: dict, message: str, *, allow_unstable: bool, converge_hint: str, stable_hint: str
) -> int:
    """The exit status of a fit command from its result's ``extra`` (``converged``, ``stable``,
    ``lowest_mode_meV``): 1, with an error line naming the fix, for a fit that did not converge or
    is dynamically unstable (unless ``allow_unstable``); else 0."""
    if not ex["converged"]:
        print(f"{prog}: error: the fit did not converge ({message}); {converge_hint}.", file=sys.stderr)
        return 1
    if ex["stable"]:
        return 0
    lowest = f"the fitted θ is dynamically unstable (lowest mode {ex['lowest_mode_meV']:.2f} meV)"
    if allow_unstable:
        print(f"{prog}: warning: {lowest}; accepted (--allow-unstable).", file=sys.stderr)
        return 0
    print(
        f"{prog}: error: {lowest}; it is not a physical crystal. {stable_hint}, or pass --allow-unstable "
        "to accept it.",
        file=sys.stderr,
    )
    return 1
