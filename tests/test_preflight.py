"""Bad training input is refused before torch, SB3 or an env family is imported (rlsuite/preflight.py)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from test_cli import assert_user_error

from rlsuite import preflight
from rlsuite.agents.registry import agent_module, agent_names

HEAVY = ("torch", "stable_baselines3", "rlsuite.agents.ppo", "rlsuite.envs.highway", "rlsuite.evaluation.harness")

_PROBE = """
import json, sys
from rlsuite.cli import main
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["rlsuite", *args]
try:
    main()
    code = 0
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "loaded": [m for m in watched if m in sys.modules]}))
"""


@pytest.mark.parametrize("args, fragments", [
    (["--env", "NoSuch-v0"], ["Unknown env id 'NoSuch-v0'"]),
    (["--env", "CartPol-v1"], ["Unknown env id 'CartPol-v1'", "CartPole-v1"]),
    (["--agent", "ppx"], ["Unknown agent 'ppx'", "ppo"]),
    (["--agent", "random"], ["baseline", "rlsuite evaluate --agent random"]),
    (["--set", "learning_rat=0.1"], ["learning_rat", "learning_rate"]),
    (["--set", "n_epochs=many"], ["n_epochs", "many"]),
    (["--set", "activation=sigmoid"], ["activation", "tanh"]),
    (["--agent", "dqn", "--set", "double=maybe"], ["double", "true/false"]),
    (["--agent", "a2c", "--set", "advantage=td"], ["advantage", "nstep"]),
    (["--steps", "0"], ["total_steps", ">= 1"]),
    (["--set", "oops"], ["Malformed --set 'oops'"]),
])
def test_bad_training_input_is_refused_before_heavy_imports(tmp_path, args, fragments):
    _assert_refused_light(tmp_path, ["train", *args], fragments)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, fragments", [
    (["evaluate", "--agent", "random", "--env", "NoSuch-v0"], ["Unknown env id 'NoSuch-v0'"]),
    (["evaluate", "--agent", "ppo", "--env", "CartPole-v1"], ["trained, not a baseline"]),
    (["evaluate", "notarun"], ["not an rlsuite run folder"]),
    (["record", "--agent", "randm", "--env", "CartPole-v1"], ["Unknown agent 'randm'", "random"]),
    (["record", "--agent", "random", "--env", "CartPole-v1", "--out", "x.avi"], [".mp4 or .gif"]),
    (["sweep", "--agents", "ppo,ppx", "--envs", "CartPole-v1", "--seeds", "0"], ["Unknown agent 'ppx'"]),
    (["sweep", "--agents", "ppo", "--envs", "CartPol-v1", "--seeds", "0"], ["Unknown env id 'CartPol-v1'"]),
])
def test_bad_evaluate_record_and_sweep_input_is_refused_before_heavy_imports(tmp_path, args, fragments):
    _assert_refused_light(tmp_path, args, fragments)
    assert list(tmp_path.iterdir()) == []


def _assert_refused_light(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(args), json.dumps(HEAVY)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, COLUMNS="200"))
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 2, "loaded": []}, result.stderr
    result.returncode = outcome["code"]
    assert_user_error(result, *fragments)


def test_env_id_typo_exits_2_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "rlsuite.cli", "train", "--env", "NoSuch-v0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert_user_error(result, "Unknown env id 'NoSuch-v0'", "rlsuite list envs")


@pytest.mark.parametrize("agent", agent_names(trainable=True))
def test_settings_read_from_source_equal_the_real_class(agent):
    """The oracle: the agent's own settings dataclass, imported."""
    schema = preflight.settings_schema(agent)
    if schema is None:  # settings behind an object (the SB3 agents): the full path checks them
        assert ":" in (preflight.get_spec(agent).module or ""), f"{agent}'s settings could not be read from source"
        return
    cls = agent_module(agent).Settings
    hints = typing.get_type_hints(cls)
    assert schema == {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
    assert preflight.settings_class_name(agent) == cls.__name__


@pytest.mark.parametrize("agent", ["ppo", "a2c", "reinforce", "dqn"])
def test_in_house_agents_are_checked_early(agent):
    assert preflight.settings_schema(agent) is not None


def test_a_good_command_passes_the_early_check(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("default:\n  n_epochs: 3\nCartPole-v1:\n  hidden_sizes: [32, 32]\n")
    preflight.check_train_input("ppo", "CartPole-v1", config_file=config, cli_values={"total_steps": 512, "seed": None},
                                set_args=["activation=relu", "share_encoder=none"])
    preflight.check_train_input("sb3-ppo", "CartPole-v1", set_args=["whatever=1"])  # checked later, after import
    assert Path(config).exists()


def test_every_user_error_class_is_where_the_cli_looks_for_it():
    """The CLI finds error classes among loaded modules (importing nothing on an error path): each entry must
    name a real ValueError subclass, or its errors would print a traceback."""
    import importlib

    from rlsuite.cli import _USER_ERRORS

    for module, name in _USER_ERRORS:
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(cls, type) and issubclass(cls, ValueError), f"{module}.{name}"
