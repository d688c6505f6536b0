"""Every preset block resolves to valid settings of its agent: each key is a field, each value has the
field's type and passes the settings' own checks (a batch that does not fit the rollout, a bad range)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlsuite.agents.registry import agent_module
from rlsuite.agents.settings import load_yaml_mapping, preset_path, resolve_settings

PRESETS = sorted(p for p in Path(preset_path("ppo")).parent.glob("*.yaml") if "." not in p.stem)  # not recipes
BLOCKS = [(p.stem, env_id) for p in PRESETS for env_id in load_yaml_mapping(p)
          if env_id != "default" and "*" not in env_id]


@pytest.mark.parametrize("agent, env_id", BLOCKS, ids=[f"{a}:{e}" for a, e in BLOCKS])
def test_preset_block_resolves(agent, env_id):
    settings = resolve_settings(agent_module(agent).Settings, agent, env_id)
    block = load_yaml_mapping(preset_path(agent))[env_id]
    assert settings.env_id == env_id
    for key, value in block.items():  # the block's values are the ones a run gets
        got = getattr(settings, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key


def test_classic_control_presets_cover_rl_zoo():
    """The classic-control envs each agent has a preset for: RL Zoo's published settings, where it has them."""
    classic = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"}
    have = {agent: {env for a, env in BLOCKS if a == agent} & classic for agent in {a for a, _ in BLOCKS}}
    discrete, continuous = classic - {"MountainCarContinuous-v0", "Pendulum-v1"}, {"MountainCarContinuous-v0",
                                                                                   "Pendulum-v1"}
    for agent in ("ppo", "a2c", "sb3-ppo", "sb3-a2c"):
        assert have[agent] == classic, agent
    for agent in ("dqn", "sb3-dqn", "sb3-qrdqn"):
        assert have[agent] == discrete, agent
    for agent in ("sb3-sac", "sb3-td3"):
        assert have[agent] == continuous, agent
