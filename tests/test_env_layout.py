"""envs/ keeps its shape: no module over 700 lines, and every env family's docstring is cartpole.py's table."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENVS = Path(__file__).resolve().parent.parent / "envs"
FAMILIES = ["memory.py", "reacher.py", "spoken.py", "highway/__init__.py", "traffic/__init__.py", "atari/__init__.py"]
SECTIONS = ["## Description", "## Action space", "## Observation space", "## Rewards", "## Starting state",
            "## Episode end", "## Arguments", "## Version history"]


@pytest.mark.parametrize("path", sorted(ENVS.rglob("*.py")), ids=lambda p: str(p.relative_to(ENVS)))
def test_no_env_module_is_over_700_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= 700, f"envs/{path.relative_to(ENVS)} has {lines} lines: split it by job (params, dynamics, ...)"


@pytest.mark.parametrize("name", FAMILIES)
def test_env_docstring_has_cartpoles_sections_in_order(name: str) -> None:
    doc = ast.get_docstring(ast.parse((ENVS / name).read_text())) or ""
    found = [line for line in doc.splitlines() if line in SECTIONS]
    assert found == SECTIONS, f"envs/{name}: sections {found}"


def test_no_hand_written_vector_env_outside_the_base() -> None:
    """Every NumPy env's vector env is envs/vector.py's NumpyVectorEnv (Atari's C++ path and the
    parameter-sharing view over a base env are the exceptions)."""
    allowed = {"vector.py", "atari/native.py", "multiagent.py"}
    for path in ENVS.rglob("*.py"):
        if str(path.relative_to(ENVS)) in allowed:
            continue
        assert "gym.vector.VectorEnv)" not in path.read_text(), f"envs/{path.relative_to(ENVS)} subclasses VectorEnv"
