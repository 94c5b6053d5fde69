"""``fcinv``: force constants from single-crystal inelastic neutron scattering.

Dispatches ``fcinv <command> ...`` to ``fcinv.cli.<module>.main``. Modules are imported only when
their command runs, so ``fcinv --help`` is instant.

Every command takes the same ``-v`` (INFO; ``-vv`` DEBUG) and ``-q`` (errors only, no progress
bars); without them the level is WARNING. Log records are written through tqdm, so they never
break a progress bar. Exit codes: 0 success, 1 an error in the data or the result, 2 usage.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from fcinv import __version__
from fcinv.cli.commands import COMMANDS
from fcinv.errors import FcinvError

#: Exit codes.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_VERBOSITY = {"-q": -1, "--quiet": -1, "-v": 1, "--verbose": 1, "-vv": 2, "-vvv": 2}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [
        f"usage: fcinv [-v | -q] <command> [options]   (fcinv {__version__})",
        "",
        "Force constants with error bars from single-crystal inelastic neutron scattering.",
        "",
        "commands:",
    ]
    for cmd, (module, desc) in COMMANDS.items():
        if importlib.util.find_spec(module) is not None:
            lines.append(f"  {cmd:<{width}}  {desc}")
    lines += [
        "",
        "-v / -vv: more log output (INFO / DEBUG); -q: errors only, no progress bars.",
        "Run `fcinv <command> --help` for a command's options.",
        "Exit codes: 0 success, 1 error in the data or the result, 2 usage.",
    ]
    return "\n".join(lines)


def split_verbosity(argv: list[str]) -> tuple[int, list[str]]:
    """Remove ``-v``/``-vv``/``-q`` (and ``--verbose``/``--quiet``) from ``argv``: (verbosity, the rest).

    Verbosity: -1 quiet, 0 default (WARNING), 1 INFO, 2 DEBUG. Only whole words are taken, so an option
    such as ``--v`` (NXSPE's scattering-plane vector) is left alone.
    """
    level, rest = 0, []
    for a in argv:
        if a in _VERBOSITY:
            v = _VERBOSITY[a]
            level = -1 if v < 0 else max(level, v) if level >= 0 else level
        else:
            rest.append(a)
    return level, rest


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fcinv`` script; returns the exit code."""
    from fcinv.cli._common import UsageError, configure_logging, restore_logging
    from fcinv.cli._guards import interrupt_guard, interrupt_message, precheck
    from fcinv.io.provenance import command_scope

    as_script = argv is None  # the `fcinv` script (tests and scripts pass a list)
    argv = list(sys.argv[1:] if argv is None else argv)
    typed = ["fcinv", *argv]  # the provenance of every file this run writes, built once here
    verbosity, argv = split_verbosity(argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return EXIT_OK
    if argv[0] in {"-V", "--version"}:
        print(f"fcinv {__version__}")
        return EXIT_OK
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS or importlib.util.find_spec(COMMANDS[cmd][0]) is None:
        known = ", ".join(c for c, (m, _) in COMMANDS.items() if importlib.util.find_spec(m))
        print(f"fcinv: unknown command '{cmd}'. Commands: {known}.", file=sys.stderr)
        return EXIT_USAGE
    try:
        module = importlib.import_module(COMMANDS[cmd][0])
    except KeyboardInterrupt:  # Ctrl-C while the command's libraries load: nothing was started
        print(interrupt_message(cmd, rest), file=sys.stderr)
        return EXIT_INTERRUPTED
    rest = _pass_own_flags(module, verbosity, rest)
    state = configure_logging(verbosity)
    try:
        with command_scope(typed), interrupt_guard():
            rest = precheck(cmd, module, rest)
            return int(module.main(rest) or 0)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
        return code
    except UsageError as exc:
        print(f"fcinv {cmd}: usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FcinvError as exc:
        print(f"fcinv {cmd}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(interrupt_message(cmd, rest), file=sys.stderr)
        if as_script:
            _exit_now(EXIT_INTERRUPTED)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(
            f"fcinv {cmd}: error: out of memory. Shrink the job (fewer samples, bins or orientations) "
            "or run it on a larger machine.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except OSError as exc:  # a file the command reads or writes: permissions, a full disk, a lost mount
        where = f" '{exc.filename}'" if getattr(exc, "filename", None) else ""
        print(
            f"fcinv {cmd}: error: cannot access{where}: {exc.strerror or exc}. Check the path, its "
            "permissions and the free disk space.",
            file=sys.stderr,
        )
        return EXIT_ERROR
    finally:
        restore_logging(state)


def _exit_now(code: int) -> None:
    """Leave at once after an interruption: every output is closed by now, and the interpreter's own
    shutdown (torch's and numba's thread pools) can take seconds, past the one second a Ctrl-C may take."""
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _pass_own_flags(module, verbosity: int, rest: list[str]) -> list[str]:
    """Commands whose own parser defines ``--quiet`` / ``--verbose`` still receive them."""
    if verbosity == 0 or not hasattr(module, "get_parser"):
        return rest
    try:
        opts = _option_strings(module.get_parser())
    except Exception:  # noqa: BLE001 - a parser that cannot be built is reported when the command runs
        return rest
    if verbosity < 0 and "--quiet" in opts:
        return [*rest, "--quiet"]
    if verbosity > 0 and "--verbose" in opts:
        return [*rest, "--verbose"]
    return rest


def _option_strings(parser) -> set[str]:
    """Every option string of an argparse parser and of its sub-command parsers."""
    import argparse

    out = set(parser._option_string_actions)  # argparse keeps no public table of them
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                out |= _option_strings(sub)
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
