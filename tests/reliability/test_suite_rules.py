"""Rules the test suite keeps (issue 16): every ``pytest.raises`` checks its message with ``match=``."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
#: Exceptions whose message says nothing: a bare ``pytest.raises`` is enough.
NO_MESSAGE = {"KeyboardInterrupt"}


def _bare_raises(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "raises"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "pytest"
        ):
            continue
        if any(k.arg == "match" for k in node.keywords):
            continue
        exc = ast.unparse(node.args[0]) if node.args else ""
        if exc not in NO_MESSAGE:
            out.append((node.lineno, exc))
    return out


def test_every_pytest_raises_has_a_match():
    bare = [
        f"{p.relative_to(TESTS)}:{line} pytest.raises({exc})"
        for p in sorted(TESTS.rglob("test_*.py"))
        for line, exc in _bare_raises(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert not bare, "pytest.raises without match= (check the message): " + ", ".join(bare)


def test_the_rule_sees_a_bare_raises():
    tree = ast.parse(
        "with pytest.raises(ValueError):\n    f()\nwith pytest.raises(KeyboardInterrupt):\n    g()\n"
    )
    assert _bare_raises(tree) == [(1, "ValueError")]
