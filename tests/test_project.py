"""The project's shape: the layer stack, the wheel's contents, lint, and no unsafe loading."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {"rlsuite": "rlsuite", "agents": "rlsuite/agents", "envs": "rlsuite/envs",
                "policies": "rlsuite/policies", "evaluation": "rlsuite/evaluation"}


def _layout_as_installed(target: Path) -> None:
    """Copy the source folders into the installed layout (rlsuite/agents, ...), as the wheel has them."""
    for source, dest in PACKAGE_DIRS.items():
        shutil.copytree(ROOT / source, target / dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def test_layer_stack_holds(tmp_path):
    # import-linter reads packages from the file system, so give it the installed layout.
    _layout_as_installed(tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--config", "pyproject.toml", "--no-cache"], cwd=tmp_path,
                            capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_ruff_is_clean():
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean(tmp_path):
    # mypy cannot follow the package-dir mapping of an editable install: check the installed layout.
    _layout_as_installed(tmp_path)
    mypy = Path(sys.executable).with_name("mypy")
    result = subprocess.run([str(mypy), "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / ".mypy"),
                             "-p", "rlsuite"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_pickle_or_eval_in_the_package():
    offenders = []
    for folder in PACKAGE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            for needle in ("import pickle", "cloudpickle", "torch.load(", " eval(", "exec(", "PPO.load("):
                if needle in text:
                    offenders.append(f"{path.relative_to(ROOT)}: {needle}")
    assert not offenders, offenders


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    shutil.copytree(ROOT, build / "src", ignore=shutil.ignore_patterns(".venv", ".git", "runs", "*.egg-info", "build",
                                                                      "__pycache__", "demo", "report"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(out), str(build / "src")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (path,) = out.glob("rlsuite-*.whl")
    return path


def test_wheel_installs_one_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level == {"rlsuite", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    for expected in ("rlsuite/cli.py", "rlsuite/agents/ppo.py", "rlsuite/agents/presets/ppo.yaml",
                     "rlsuite/envs/factory.py", "rlsuite/policies/encoders.py", "rlsuite/evaluation/report.py",
                     "rlsuite/tune/run.py", "rlsuite/search_spaces/ppo.yaml"):
        assert expected in names, expected
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "rlsuite = rlsuite.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_imports_like_the_editable_install(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import rlsuite.agents.ppo, rlsuite.evaluation.report, rlsuite.cli, rlsuite.agents.settings as s;"
            "print(rlsuite.agents.ppo.__file__); print(s.preset_path('ppo').exists())")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    module_file, preset_exists = result.stdout.split()
    assert module_file.startswith(str(target)) and preset_exists == "True"
