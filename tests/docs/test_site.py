"""The documentation site builds with ``mkdocs build --strict`` (a warning fails) and says what it should."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_MISSING = [
    m
    for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    if importlib.util.find_spec(m.split(".")[0]) is None
]
needs_mkdocs = pytest.mark.skipif(
    bool(_MISSING),
    reason=f"the docs extra is not installed ({', '.join(_MISSING)} missing): pip install '.[docs]'",
)


def _env() -> dict[str, str]:
    src = str(REPO / "src")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", COLUMNS="100", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(cmd, cwd=config.parent, env=_env(), capture_output=True, text=True, timeout=600)


def _text(html: Path) -> str:
    import html as h

    return h.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.read_text(encoding="utf-8"))))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    p = _build(REPO / "mkdocs.yml", out)
    assert p.returncode == 0, f"mkdocs build --strict failed:\n{(p.stdout + p.stderr)[-5000:]}"
    return out


@needs_mkdocs
def test_site_builds_strict_with_every_page(site):
    for page in (
        "index",
        "getting-started",
        "tutorials/ge-demo",
        "tutorials/own-data",
        "tutorials/new-material",
        "conventions",
        "physics",
        "reference/api",
        "reference/cli",
        "models",
        "results",
        "stage1",
        "calibration",
        "steering",
        "scale-out",
        "DESIGN",
    ):
        assert (site / f"{page}.html").is_file(), f"{page}.html was not built"


@needs_mkdocs
def test_cli_reference_holds_every_command_help(site):
    from fcinv.cli.commands import COMMANDS

    text = _text(site / "reference" / "cli.html")
    assert "<!-- cli-reference -->" not in (site / "reference" / "cli.html").read_text(encoding="utf-8")
    for cmd in COMMANDS:
        assert f"usage: fcinv {cmd}" in text, f"no --help of fcinv {cmd} on the CLI page"
    for sub in ("vae", "regressor", "resnet"):
        assert f"fcinv train {sub}" in text


@needs_mkdocs
def test_api_reference_is_generated_from_the_docstrings(site):
    text = _text(site / "reference" / "api.html")
    for obj in (
        "FCResult",
        "Material",
        "Pipeline",
        "PhysicalModel",
        "ForwardModel",
        "fit_spectrum",
        "ModelCalibration",
        "assess",
        "rank",
        "invert",
    ):
        assert obj in text, f"{obj} is missing from the API page"
    # a sentence of FCResult.table's docstring, and no raw Sphinx role left
    assert ":class:" not in text and ":func:" not in text


@needs_mkdocs
def test_generated_pages_carry_no_machine_paths(site):
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert "/work/" not in text and "/tmp/" not in text, f"{page.name} holds a machine path"


@needs_mkdocs
def test_strict_build_fails_on_a_warning(tmp_path):
    """The check is real: a page with a dead link fails the same kind of strict build."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# x\n\n[dead](nowhere.md)\n", encoding="utf-8")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\nstrict: true\n", encoding="utf-8")
    p = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert p.returncode != 0 and "nowhere.md" in p.stdout + p.stderr


def test_readme_links_only_files_inside_the_repository():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r"`((?:\.\./|docs/)[^`\s]+\.md)`", text)
    assert targets, "the README links nothing"
    for t in targets:
        if re.match(r"[a-z]+://", t):
            continue
        path = (REPO / t).resolve()
        assert path.is_relative_to(REPO), f"README links {t}, outside the repository"
        assert path.exists(), f"README links {t}, which does not exist"
