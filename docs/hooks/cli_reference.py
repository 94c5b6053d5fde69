"""MkDocs hook: the command-line reference, generated from the argparse parsers.

``docs/reference/cli.md`` holds the marker ``<!-- cli-reference -->``; at build time it is replaced by
``fcinv --help`` (the dispatcher's own usage text) and, for every command in
:data:`fcinv.cli.commands.COMMANDS`, the ``--help`` of its ``get_parser()`` and of each of its
sub-commands (``fcinv train vae`` ...). Nothing is written to disk, so the page cannot go stale.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from pathlib import Path

MARKER = "<!-- cli-reference -->"
_SRC = Path(__file__).resolve().parents[2] / "src"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # argparse keeps no public list of sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            out.update(action.choices)
    return out


def _help_block(text: str) -> str:
    return "```text\n" + text.rstrip() + "\n```\n"


def cli_reference() -> str:
    """Markdown for every ``fcinv`` command: its one-line description and its full ``--help``."""
    if str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))
    os.environ["COLUMNS"] = "100"  # argparse wraps at $COLUMNS: a fixed width, whatever the terminal
    from fcinv.cli.commands import COMMANDS
    from fcinv.cli.main import _usage

    parts = ["## `fcinv`\n", _help_block(_usage())]
    for cmd, (module_name, desc) in COMMANDS.items():
        parts.append(f"## `fcinv {cmd}`\n\n{desc}\n")
        if importlib.util.find_spec(module_name) is None:
            parts.append("*(this command's module is not installed)*\n")
            continue
        module = importlib.import_module(module_name)
        if not hasattr(module, "get_parser"):
            parts.append("*(this command takes no options)*\n")
            continue
        parser = module.get_parser()
        parts.append(_help_block(parser.format_help()))
        for name, sub in _subparsers(parser).items():
            parts.append(f"### `fcinv {cmd} {name}`\n")
            parts.append(_help_block(sub.format_help()))
    return "\n".join(parts)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - the hook's signature
    """Replace the marker on the CLI page with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())
