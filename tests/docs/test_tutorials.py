"""The tutorials run as tests: every fenced block marked ``<!-- test: ... -->`` is executed.

A block is marked by an HTML comment on the line before its fence (invisible on the site)::

    <!-- test: run -->              runs in the fast suite
    <!-- test: slow -->             runs only with ``-m slow`` (with the ``run`` blocks, in order)
    <!-- test: run needs-data -->   needs ``../shared/data`` (``$FCINV_SHARED_DATA``): the page's
                                    test skips from there when it is absent

The blocks of one page run in order in one empty folder, so later blocks read what earlier ones
wrote. ``bash`` blocks run under ``set -euo pipefail`` with ``fcinv`` meaning this interpreter's
``python -m fcinv.cli.main`` (the package under test, not whatever ``fcinv`` is on the PATH);
variables they set carry over to the page's later ``bash`` blocks, as in one terminal.
``python`` blocks run as scripts with the same interpreter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import fcinv

REPO = Path(__file__).resolve().parents[2]
TUTORIALS = sorted((REPO / "docs" / "tutorials").glob("*.md"))
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
FLAGS = {"run", "slow", "needs-data"}
_BLOCK = re.compile(
    r"<!--\s*test:(?P<flags>[^>]*?)-->[ \t]*\n```(?P<lang>[\w-]*)[ \t]*\n(?P<code>.*?)\n```[ \t]*$",
    re.S | re.M,
)
_PRELUDE = """set -euo pipefail
set -a
fcinv() { "$FCINV_TEST_PYTHON" -m fcinv.cli.main "$@"; }
[ -f .tutorial_env ] && source .tutorial_env
"""
_EPILOGUE = "\nexport -p | grep -v -E ' (BASH|SHELLOPTS|BASHOPTS|PWD|OLDPWD|SHLVL|_)=' > .tutorial_env\n"


@dataclass(frozen=True)
class Block:
    page: str
    index: int
    lang: str
    code: str
    flags: frozenset[str]

    @property
    def where(self) -> str:
        return f"{self.page} block {self.index} ({self.lang})"


def marked_blocks(path: Path) -> list[Block]:
    """The marked fenced blocks of a page, in order; a bad marker or language raises ValueError."""
    out = []
    for i, m in enumerate(_BLOCK.finditer(path.read_text(encoding="utf-8"))):
        flags = frozenset(m["flags"].split())
        if not flags or flags - FLAGS or not flags & {"run", "slow"}:
            raise ValueError(
                f"{path.name}: marker 'test:{m['flags']}' must hold 'run' or 'slow' (and optionally "
                f"'needs-data'); known flags: {', '.join(sorted(FLAGS))}"
            )
        if m["lang"] not in ("bash", "python"):
            raise ValueError(f"{path.name}: a marked block must be ```bash or ```python, not {m['lang']!r}")
        out.append(Block(path.name, i, m["lang"], m["code"], flags))
    return out


def _env(tmp: Path) -> dict[str, str]:
    src = str(Path(fcinv.__file__).resolve().parents[1])  # the fcinv under test
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])]),
        FCINV_TEST_PYTHON=sys.executable,
        OMP_NUM_THREADS="1",
        MPLBACKEND="Agg",
        COLUMNS="100",
        HOME=env.get("HOME", str(tmp)),
    )
    if SHARED_DATA.is_dir() and not env.get("FCINV_SHARED_DATA"):
        env["FCINV_SHARED_DATA"] = str(SHARED_DATA)
    return env


def run_block(block: Block, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    """Run one block in ``cwd``; its combined output, or an AssertionError that shows it."""
    if block.lang == "bash":
        cmd = ["bash", "-c", _PRELUDE + block.code + _EPILOGUE]
    else:
        script = cwd / f".tutorial_block_{block.index}.py"
        script.write_text(block.code + "\n", encoding="utf-8")
        cmd = [sys.executable, str(script)]
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    out = p.stdout + p.stderr
    shown = f"{block.code}\n--- output ---\n{out[-4000:]}"
    assert p.returncode == 0, f"{block.where} exited {p.returncode}:\n{shown}"
    return out


def run_page(path: Path, tmp: Path, *, slow: bool) -> int:
    env = _env(tmp)
    n = 0
    for block in marked_blocks(path):
        if "slow" in block.flags and not slow:
            continue
        if "needs-data" in block.flags and not env.get("FCINV_SHARED_DATA"):
            pytest.skip(
                f"{block.where} needs the shared data ({SHARED_DATA} or $FCINV_SHARED_DATA), absent "
                f"here; {n} block(s) before it ran"
            )
        run_block(block, tmp, env)
        n += 1
    return n


@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(page, tmp_path):
    """The page's ``run`` blocks, in order, at the small sizes the page uses."""
    assert run_page(page, tmp_path, slow=False) > 0, f"{page.name} has no block marked to run"


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_with_slow_blocks(page, tmp_path):
    """Every marked block, the slow ones (the quick demo, the export) included."""
    run_page(page, tmp_path, slow=True)


def test_every_tutorial_is_marked_and_every_marker_is_valid():
    assert {p.stem for p in TUTORIALS} >= {"ge-demo", "own-data", "new-material"}
    for page in TUTORIALS:
        blocks = marked_blocks(page)
        assert any("run" in b.flags for b in blocks), f"{page.name}: no block runs in the fast suite"


def test_a_bad_marker_is_refused(tmp_path):
    page = tmp_path / "bad.md"
    page.write_text("<!-- test: rnu -->\n```bash\necho hi\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must hold 'run' or 'slow'"):
        marked_blocks(page)
    page.write_text("<!-- test: run -->\n```console\n$ echo hi\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bash or ```python"):
        marked_blocks(page)


def test_a_failing_block_fails_and_variables_carry_over(tmp_path):
    env = _env(tmp_path)
    run_block(Block("t.md", 0, "bash", "GREETING=hello", frozenset({"run"})), tmp_path, env)
    out = run_block(Block("t.md", 1, "bash", 'echo "$GREETING"', frozenset({"run"})), tmp_path, env)
    assert "hello" in out
    with pytest.raises(AssertionError, match="exited 3"):
        run_block(Block("t.md", 2, "bash", "false || exit 3", frozenset({"run"})), tmp_path, env)
    with pytest.raises(AssertionError, match="exited 1"):
        run_block(Block("t.md", 3, "python", "raise SystemExit(1)", frozenset({"run"})), tmp_path, env)
