"""The dispatcher: the same -v/-q on every command, logging through tqdm, exit codes 0/1/2."""

from __future__ import annotations

import logging

import pytest

from fcinv.cli.main import COMMANDS, EXIT_ERROR, EXIT_OK, EXIT_USAGE, main, split_verbosity


def test_split_verbosity_takes_whole_words_only():
    assert split_verbosity(["-v", "fold", "x", "--v", "0", "1", "0"]) == (
        1,
        ["fold", "x", "--v", "0", "1", "0"],
    )
    assert split_verbosity(["fold", "-vv"]) == (2, ["fold"])
    assert split_verbosity(["-q", "fold", "-v"]) == (-1, ["fold"])
    assert split_verbosity(["fold"]) == (0, ["fold"])


def test_exit_codes(tmp_path, capsys):
    assert main(["--help"]) == EXIT_OK and "Exit codes" in capsys.readouterr().out
    assert main(["nope"]) == EXIT_USAGE and "unknown command 'nope'" in capsys.readouterr().err
    assert main(["fold", "--no-such-option"]) == EXIT_USAGE  # argparse's usage error
    assert main(["fold", "--help"]) == EXIT_OK
    assert main(["simulate-experiment", "--material", "Ge", "-o", str(tmp_path / "r.h5")]) == EXIT_USAGE
    assert "usage error: --force-constants is required" in capsys.readouterr().err
    assert (
        main(["fold", str(tmp_path / "missing.h5"), "--material", "Ge", "-o", str(tmp_path / "f.h5")])
        == EXIT_ERROR
    )
    assert "error: input" in capsys.readouterr().err


def test_logging_levels_and_no_forced_level(tmp_path, capsys):
    root = logging.getLogger()
    before, handlers = root.level, list(root.handlers)
    args = ["simulate", "--material", "Ge", "--theta", "1NN_xx=3", "-o", str(tmp_path / "s.h5"), "--no-png"]
    assert main(args) == EXIT_OK  # an unstable θ: a WARNING is logged
    assert "WARNING fcinv.cli.simulate: this θ is dynamically unstable" in capsys.readouterr().err
    assert main(["-q", *args, "--force"]) == EXIT_OK  # the second write replaces the first
    assert capsys.readouterr().err == ""
    assert root.level == before and root.handlers == handlers, "main restores the logging it configured"


def test_every_command_lists_the_shared_flags_or_gets_them_from_fcinv():
    """-v/-q are taken off the command line by fcinv for every command; these list them in --help too."""
    import importlib

    for cmd in ("simulate", "project", "simulate-experiment", "fold", "infer", "demo"):
        parser = importlib.import_module(COMMANDS[cmd][0]).get_parser()
        assert {"-v", "-q"} <= set(parser._option_string_actions), cmd


@pytest.mark.parametrize("flag", ["-q", "-v"])
def test_commands_own_quiet_or_verbose_still_reach_them(flag):
    import importlib

    from fcinv.cli.main import _pass_own_flags

    train = importlib.import_module("fcinv.cli.train")
    out = _pass_own_flags(train, -1 if flag == "-q" else 1, ["vae"])
    assert out == (["vae", "--quiet"] if flag == "-q" else ["vae"])
