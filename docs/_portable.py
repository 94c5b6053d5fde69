"""Machine paths out of the generated pages: absolute paths become names relative to the repository.

The generators (``docs/make_*.py``) record commands and model folders as they ran, e.g.
``fcinv train vae --data <workspace>/runs/ge.h5``. :func:`portable` rewrites every absolute path on
this machine's workspace (the repository's parent folder) relative to the repository root —
``../runs/ge.h5`` — and a path into a checkout's ``src/fcinv/`` as ``src/fcinv/...``; other text is
left alone. The generators pass their output through it; run it on a page generated before::

    python docs/_portable.py docs/results.md docs/models.md docs/models.json
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# an absolute path: a "/" not preceded by a word character, "." , ":" or "/" (so not "eV/Å²",
# "40/10", "https://..."), then path components
_ABS = re.compile(r"(?<![\w.:/~-])/(?:[\w.+-]+/)*[\w.+-]+/?")


def _relative(p: str, repo: Path) -> str:
    i = p.find("/src/fcinv/")
    if i >= 0:
        return p[i + 1 :]
    path = Path(p)
    if path.is_relative_to(repo.parent):
        rel = os.path.relpath(path, repo)
        return rel + ("/" if p.endswith("/") and rel != "." else "")
    return p


def machine_paths(text: str, repo: Path = REPO) -> list[str]:
    """The absolute paths in ``text`` that :func:`portable` rewrites."""
    repo = Path(repo).resolve()
    return [m.group(0) for m in _ABS.finditer(text) if _relative(m.group(0), repo) != m.group(0)]


def portable(text: str, repo: Path = REPO) -> str:
    """``text`` with the absolute paths under ``repo``'s parent folder made relative to ``repo``."""
    repo = Path(repo).resolve()
    return _ABS.sub(lambda m: _relative(m.group(0), repo), text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the named files in place; print how many paths each lost."""
    files = sys.argv[1:] if argv is None else argv
    if not files:
        print("usage: python docs/_portable.py FILE [FILE ...]", file=sys.stderr)
        return 2
    for f in files:
        path = Path(f)
        old = path.read_text(encoding="utf-8")
        new = portable(old)
        n = len(machine_paths(old))
        if new != old:
            path.write_text(new, encoding="utf-8")
        print(f"{f}: {n} machine path(s) made relative")
    return 0


if __name__ == "__main__":
    sys.exit(main())
