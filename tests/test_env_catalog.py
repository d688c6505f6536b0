"""`rlsuite list envs` and the refusal of ids whose optional dependency is missing (envs/catalog.py)."""

from __future__ import annotations

import importlib.util
import resource
import subprocess
import sys

import gymnasium as gym
import pytest
from typer.testing import CliRunner

from rlsuite.cli import app
from rlsuite.envs import EnvError, check_env_id, make_vec_env
from rlsuite.envs.catalog import env_catalog, unavailable_reason

NO_BOX2D = importlib.util.find_spec("Box2D") is None


def test_catalog_lists_rlsuite_first_then_atari_then_what_gymnasium_can_make_here() -> None:
    entries = env_catalog()
    groups = [e.group for e in entries]
    assert groups == sorted(groups, key=["rlsuite", "atari", "gymnasium"].index)  # in blocks, in this order
    rlsuite_ids = [e.env_id for e in entries if e.group == "rlsuite"]
    assert sorted(rlsuite_ids) == sorted(i for i in gym.registry if i.startswith("rlsuite/"))
    assert all(e.description for e in entries)
    if importlib.util.find_spec("ale_py") is not None:
        assert "ALE/Pong-v5" in [e.env_id for e in entries if e.group == "atari"]
    listed = {e.env_id for e in entries}
    assert "CartPole-v1" in listed and "Ant-v2" not in listed
    assert all(unavailable_reason(e.env_id) is None for e in entries)
    if NO_BOX2D:
        assert "LunarLander-v3" not in listed


@pytest.mark.skipif(not NO_BOX2D, reason="Box2D is installed here")
def test_missing_dependency_is_refused_with_the_install_command() -> None:
    assert 'pip install "gymnasium[box2d]"' in (unavailable_reason("LunarLander-v3") or "")
    assert "Ant-v5" in (unavailable_reason("Ant-v2") or "")
    with pytest.raises(EnvError, match=r"gymnasium\[box2d\]"):
        check_env_id("LunarLander-v3")
    with pytest.raises(EnvError, match=r"gymnasium\[box2d\]"):
        make_vec_env("LunarLander-v3", 2)
    result = CliRunner().invoke(app, ["evaluate", "--agent", "random", "--env", "LunarLander-v3", "--episodes", "1"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert 'pip install "gymnasium[box2d]"' in result.output.replace("\n", " ") and "Traceback" not in result.output


def test_the_check_is_light() -> None:
    """The check imports no optional package and no torch: well under 2 s of CPU in a fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = ("import sys; from rlsuite.envs.catalog import unavailable_reason; unavailable_reason('LunarLander-v3'); "
            "assert 'torch' not in sys.modules and 'Box2D' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 2.0


def test_list_envs_command_shows_rlsuite_envs_first() -> None:
    result = CliRunner().invoke(app, ["list", "envs"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "rlsuite/" in line or "CartPole-v1" in line]
    assert "rlsuite/MemoryCue-v0" in lines[0] and "needs memory" in lines[0]
    assert "CartPole-v1" in lines[-1]
