"""The README's test command on a fresh machine: every tool a test runs comes with the test extra.

The one exception is the browser: the report test drives a system Chromium, skips with its reason when
there is none, and fails instead of skipping under RLSUITE_REQUIRE_BROWSER=1, which `.ci/run` sets.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
SUBPROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output"}


def _is_call(node: ast.AST, module: str, names: set[str]) -> bool:
    return (isinstance(node, ast.Call) and bool(node.args) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == module and node.func.attr in names)


def _executables(path: Path) -> set[str]:
    """Program names a test file runs by name: the literal first item of a subprocess call's argument list,
    and what shutil.which looks up (a literal, or each name of a literal tuple a for loop hands it)."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if _is_call(node, "subprocess", SUBPROCESS_CALLS) and isinstance(node.args[0], ast.List):
            first = node.args[0].elts[0] if node.args[0].elts else None
            if isinstance(first, ast.Constant):
                found.add(str(first.value))
        elif _is_call(node, "shutil", {"which"}) and isinstance(node.args[0], ast.Constant):
            found.add(str(node.args[0].value))
        elif (isinstance(node, ast.For) and isinstance(node.target, ast.Name)
              and isinstance(node.iter, ast.Tuple | ast.List)):
            looked_up = any(_is_call(inner, "shutil", {"which"}) and isinstance(inner.args[0], ast.Name)
                            and inner.args[0].id == node.target.id for inner in ast.walk(node))
            if looked_up:
                found.update(str(e.value) for e in node.iter.elts if isinstance(e, ast.Constant))
    return found


def test_no_test_needs_a_system_tool_but_the_browser():
    """ffprobe, ffmpeg, git, espeak-ng and the like are not in a fresh Python: tests use sys.executable, the
    venv's own scripts, and imageio-ffmpeg's ffmpeg (tests/videoprobe.py)."""
    used = {path.name: _executables(path) for path in sorted((ROOT / "tests").glob("*.py")) if path != Path(__file__)}
    outside = {name: sorted(tools - BROWSERS) for name, tools in used.items() if tools - BROWSERS}
    assert not outside, outside
    assert set().union(*used.values()) == BROWSERS  # the scan does see the browser test's lookup


def test_video_probe_uses_the_ffmpeg_the_test_extra_installs(tmp_path, monkeypatch):
    import numpy as np
    from videoprobe import probe

    from rlsuite.evaluation.video import write_mp4

    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: no system ffmpeg or ffprobe
    assert shutil.which("ffprobe") is None and shutil.which("ffmpeg") is None
    out = tmp_path / "x.mp4"
    write_mp4([np.zeros((16, 16, 3), np.uint8)] * 3, out, fps=10)
    assert probe(out)["nb_read_frames"] == 3


def test_ci_requires_the_browser_and_runs_the_readme_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^export RLSUITE_REQUIRE_BROWSER=1$", ci, re.M)
    assert "chromium" in ci and ci.rstrip().splitlines()[-1] == "pytest"
    readme = (ROOT / "README.md").read_text()
    assert 'pip install "torch==2.13.0" -e ".[test]" && pytest' in readme


def test_missing_browser_skips_with_a_reason_or_fails_under_ci(monkeypatch):
    from test_report import require_chromium

    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("RLSUITE_CHROMIUM", raising=False)
    monkeypatch.delenv("RLSUITE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium"):
        require_chromium()
    monkeypatch.setenv("RLSUITE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="RLSUITE_REQUIRE_BROWSER"):
        require_chromium()
