"""Parameter sharing for cooperative multi-agent envs: every agent becomes a row of a vector env.

A multi-agent env family exposes a batched core (`MultiAgentCore`): `num_envs` copies of a game with
`num_agents` homogeneous agents, stepped together. `SharedAgentsVectorEnv` turns it into an ordinary
Gymnasium vector env with one row per (env, agent): row `e * num_agents + a` is agent a of env e, its
observation is the agent's own with the agent's features (id one-hot or position) appended, so one
policy (any single-agent rlsuite agent) acts for all agents. `TurnTakingEnv` is the same game as one
plain `gym.Env` with the per-agent spaces, the agents acting in turn; it is what `gym.make` of a shared
id builds (evaluation, space checks), its return being the whole team's.

Row layout and the team: each agent is rewarded with its own reward; all agents of an env share its
episode, so every row of an env ends together (next-step autoreset, like every rlsuite vector env).
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rlsuite.envs.vector import EnvState, generator_from_state, generator_state


class MultiAgentCore(Protocol):
    """What a multi-agent env family provides (see envs/traffic/env.py:TrafficGridVectorEnv)."""

    num_envs: int
    num_agents: int
    agent_observation_space: gym.spaces.Box
    """One agent's own observation (without agent features)."""
    agent_action_space: gym.Space
    agent_features: np.ndarray
    """(num_agents, F) float32 features identifying each agent (one-hot id, position)."""

    def reset_agents(self, seed: int | list[int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """(num_envs, num_agents, D) observations and batched info."""
        ...

    def step_agents(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """(num_envs, num_agents) actions -> obs (E, A, D), rewards (E, A), terminated (E,), truncated (E,),
        info (batched per env; per-agent entries shaped (E, A)); next-step autoreset."""
        ...

    def render(self) -> Any:
        """(num_envs, H, W, 3) uint8 frames when built with render_mode="rgb_array"."""
        ...

    def get_state(self) -> EnvState:
        """Everything the next steps depend on (envs/vector.py's NumpyVectorEnv.get_state)."""
        ...

    def set_state(self, state: EnvState) -> None:
        ...


def _with_features(space: gym.spaces.Box, features: np.ndarray) -> gym.spaces.Box:
    low = np.concatenate([space.low, np.full(features.shape[1], features.min(initial=0.0))]).astype(np.float32)
    high = np.concatenate([space.high, np.full(features.shape[1], features.max(initial=1.0))]).astype(np.float32)
    return gym.spaces.Box(low, high, dtype=np.float32)


class SharedAgentsVectorEnv(gym.vector.VectorEnv):
    """One row per (env, agent) over a MultiAgentCore; `num_envs` (rows) = envs x agents."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, core: MultiAgentCore) -> None:
        self.core = core
        self.num_agents = core.num_agents
        self.num_envs = core.num_envs * core.num_agents
        self._features = np.tile(core.agent_features.astype(np.float32), (core.num_envs, 1))  # (rows, F)
        self.single_observation_space = _with_features(core.agent_observation_space, core.agent_features)
        self.single_action_space = core.agent_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def _rows(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([obs.reshape(self.num_envs, -1), self._features], axis=1)

    def _row_info(self, info: dict[str, Any]) -> dict[str, Any]:
        """Per-env entries repeated for each agent's row; per-agent (E, A) entries flattened."""
        out: dict[str, Any] = {}
        for key, value in info.items():
            value = np.asarray(value)
            if value.ndim >= 2 and value.shape[1] == self.num_agents:
                out[key] = value.reshape(self.num_envs, *value.shape[2:])
            elif value.ndim >= 1 and value.shape[0] == self.core.num_envs:
                out[key] = np.repeat(value, self.num_agents, axis=0)
        return out

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if isinstance(seed, list):  # one seed per row: the env of each group of rows takes its first row's seed
            seed = seed[:: self.num_agents]
        obs, info = self.core.reset_agents(seed)
        return self._rows(obs), self._row_info(info)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions).reshape(self.core.num_envs, self.num_agents)
        obs, rewards, terminated, truncated, info = self.core.step_agents(actions)
        rep = self.num_agents
        return (self._rows(obs), rewards.reshape(-1), np.repeat(terminated, rep), np.repeat(truncated, rep),
                self._row_info(info))

    def get_state(self) -> EnvState:
        """The core's state: the rows add nothing to it."""
        return self.core.get_state()

    def set_state(self, state: EnvState) -> None:
        self.core.set_state(state)


class TurnTakingEnv(gym.Env):
    """The shared-policy game as one env: the agents of a single MultiAgentCore act in turn.

    Each `step` takes one agent's action and returns the next agent's observation; the core advances
    after the last agent, and that step carries the team reward (the sum over agents), so an episode's
    return is the team's return and its final `info` holds the env's metrics.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, core: MultiAgentCore, render_mode: str | None = None) -> None:
        if core.num_envs != 1:
            raise ValueError(f"TurnTakingEnv plays one env; got a core of {core.num_envs}.")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.core, self.render_mode = core, render_mode
        self.observation_space = _with_features(core.agent_observation_space, core.agent_features)
        self.action_space = core.agent_action_space
        self._features = core.agent_features.astype(np.float32)
        self._obs = np.zeros((core.num_agents, core.agent_observation_space.shape[0]), dtype=np.float32)
        self._actions = np.zeros((1, core.num_agents), dtype=np.int64)
        self._turn = 0

    @staticmethod
    def _scalar_info(info: dict[str, Any]) -> dict[str, float]:
        """Env-wide entries as they are, per-agent entries as `<key>_<agent index>` (so evaluation stores them)."""
        out: dict[str, float] = {}
        for key, value in info.items():
            value = np.asarray(value)
            if value.ndim == 1:
                out[key] = value[0].item()
            elif value.ndim == 2:
                out.update({f"{key}_{a}": float(v) for a, v in enumerate(value[0])})
        return out

    def _agent_obs(self) -> np.ndarray:
        return np.concatenate([self._obs[self._turn], self._features[self._turn]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is None:  # carry on the core's own generator, seeded from ours on first use
            seed = int(self.np_random.integers(2**31))
        obs, info = self.core.reset_agents([seed])
        self._obs, self._turn = obs[0], 0
        return self._agent_obs(), self._scalar_info(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._actions[0, self._turn] = int(action)
        self._turn += 1
        if self._turn < self.core.num_agents:
            return self._agent_obs(), 0.0, False, False, {}
        obs, rewards, terminated, truncated, info = self.core.step_agents(self._actions)
        self._obs, self._turn = obs[0], 0
        return (self._agent_obs(), float(rewards[0].sum()), bool(terminated[0]), bool(truncated[0]),
                self._scalar_info(info))

    def get_state(self) -> EnvState:
        """The core's state, the turn, the actions taken so far this round, and `np_random`'s state."""
        inner = self.core.get_state()
        arrays = {**inner.arrays, "turn.obs": self._obs.copy(), "turn.actions": self._actions.copy()}
        return EnvState(arrays, {**inner.meta, "turn": self._turn, "turn_rng": generator_state(self.np_random)})

    def set_state(self, state: EnvState) -> None:
        self.core.set_state(EnvState({k: v for k, v in state.arrays.items() if not k.startswith("turn.")}, state.meta))
        self._obs = np.array(state.arrays["turn.obs"], dtype=np.float32)
        self._actions = np.array(state.arrays["turn.actions"], dtype=np.int64)
        self._turn = int(state.meta["turn"])
        self._np_random = generator_from_state(state.meta["turn_rng"])

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        return self.core.render()[0] if self.render_mode == "rgb_array" else None
