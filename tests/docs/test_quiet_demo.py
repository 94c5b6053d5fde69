"""The demo's terminal output: one progress bar per stage and the table; log lines only with -v.

What a terminal shows is reconstructed from the captured stderr: each line is what is left after
its last carriage return (tqdm redraws a bar in place with ``\\r``).
"""

from __future__ import annotations

import re

import pytest

from fcinv.cli.main import main

STAGES = ("load", "simulate", "fold + ML", "single scans")  # --no-refine: no refine stage


def visible_lines(stream: str) -> list[str]:
    """The lines a terminal keeps: for each newline-ended line, the text after its last ``\\r``."""
    return [ln.rsplit("\r", 1)[-1].rstrip() for ln in stream.split("\n") if ln.rsplit("\r", 1)[-1].strip()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The default, -v and -q runs of a 2-orientation demo without the refinement, once per module."""
    out = {}
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("OMP_NUM_THREADS", "1")
        for name, flags in (("default", ()), ("verbose", ("-v",)), ("quiet", ("-q",))):
            capture = _Capture()
            with capture:
                rc = main(
                    [
                        "demo",
                        "--quick",
                        "--no-refine",
                        "--orientations",
                        "2",
                        "--single-scans",
                        "1",
                        "--out",
                        str(tmp_path_factory.mktemp(name)),
                        *flags,
                    ]
                )
            out[name] = (rc, capture.out, capture.err)
    finally:
        mp.undo()
    return out


class _Capture:
    """Swap sys.stdout / sys.stderr for StringIO (tqdm and the log handler write to sys.stderr)."""

    def __enter__(self):
        import io
        import sys

        self._saved = sys.stdout, sys.stderr
        self._out, self._err = io.StringIO(), io.StringIO()
        sys.stdout, sys.stderr = self._out, self._err
        return self

    def __exit__(self, *exc):
        import sys

        sys.stdout, sys.stderr = self._saved
        self.out, self.err = self._out.getvalue(), self._err.getvalue()
        return False


def test_default_run_shows_one_bar_per_stage_and_no_log_lines(runs):
    rc, out, err = runs["default"]
    assert rc == 0
    lines = visible_lines(err)
    assert not [ln for ln in lines if re.match(r"(INFO|DEBUG) ", ln)], err
    for i, stage in enumerate(STAGES, 1):
        done = [ln for ln in lines if ln.startswith(f"[{i}/{len(STAGES)}] {stage}") and "100%" in ln]
        assert len(done) == 1, f"stage {stage!r}: {len(done)} finished bars in\n" + "\n".join(lines)
    assert len(lines) == len(STAGES), "\n".join(lines)  # nothing but the bars on stderr
    assert "FC0" in out and "timings:" in out


def test_verbose_run_adds_each_log_line_once_and_keeps_one_bar_per_stage(runs):
    rc, _, err = runs["verbose"]
    assert rc == 0
    lines = visible_lines(err)
    info = [ln for ln in lines if ln.startswith("INFO ")]
    assert info, "-v shows no INFO lines"
    assert any("fcinv.experiment.fold" in ln for ln in info)
    bars = [ln for ln in lines if re.match(r"\[\d/\d\] ", ln)]
    assert len(bars) == len(STAGES), "\n".join(lines)  # a log line does not print a bar twice
    assert len(lines) == len(info) + len(bars), "\n".join(lines)


def test_quiet_run_prints_the_answer_only(runs):
    rc, out, err = runs["quiet"]
    assert rc == 0 and "FC0" in out
    assert err.strip() == "", err


def test_visible_lines_keeps_the_last_redraw():
    assert visible_lines("a 10%\ra 50%\ra 100%\nINFO x\n\r   \r") == ["a 100%", "INFO x"]
