"""Highway with several learning vehicles, as a PettingZoo ParallelEnv over the same core."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from rlsuite.envs.highway.dynamics import HighwayCore
from rlsuite.envs.highway.observations import action_space, kinematics, observation_space, occupancy
from rlsuite.envs.highway.params import IDLE, fields_of
from rlsuite.envs.highway.rendering import render_frame


class HighwayParallelEnv(ParallelEnv):
    """Several learning vehicles on one highway, each with its own observation, reward and termination.

    Agents `vehicle_0 .. vehicle_{K-1}` (K = `controlled_vehicles`, default 3) each drive with the single
    env's action space and see the kinematics (or occupancy) observation centred on themselves; each gets
    the reward of the single env computed for its own vehicle. An agent that crashes terminates and leaves
    `agents`; its wreck stays on the road as an obstacle. All remaining agents truncate at the time limit.
    With `collision_scope="controlled"` (highway-fast-v0's rule) only pairs with a learning vehicle collide.
    Built with `highway_parallel_env(**fields of HighwayParams)`.
    """

    metadata = {"name": "rlsuite_highway_v0", "render_modes": ["rgb_array"], "render_fps": 5, "is_parallelizable": True}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("controlled_vehicles", 3)
        self.params = fields_of(kwargs)
        if self.params.observation not in ("kinematics", "occupancy"):
            raise ValueError("Highway multi-agent: observation must be 'kinematics' or 'occupancy' (one view per vehicle).")
        self.render_mode = render_mode
        self.possible_agents = [f"vehicle_{k}" for k in range(self.params.controlled_vehicles)]
        self.agents = list(self.possible_agents)
        self._obs_space = observation_space(self.params)
        self._act_space = action_space(self.params)
        self.core = HighwayCore(self.params, 1)
        self.state = self.core.init_state()
        self._rng = np.random.default_rng()
        self._alive = np.ones(self.params.controlled_vehicles, dtype=bool)

    def observation_space(self, agent: str) -> gym.Space:
        return self._obs_space

    def action_space(self, agent: str) -> gym.Space:
        return self._act_space

    def _observations(self) -> dict[str, np.ndarray]:
        per_vehicle = kinematics(self.core, self.state) if self.params.observation == "kinematics" else occupancy(self.core, self.state)
        flat = per_vehicle[0].reshape(self.params.controlled_vehicles, -1).astype(np.float32)  # (K, D)
        return {a: flat[k] for k, a in enumerate(self.possible_agents) if a in self.agents}

    def _infos(self, terms: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        metrics = {**self.core.metrics(self.state), **terms}
        if self.params.action == "discrete":
            metrics["action_mask"] = self.core.action_mask(self.state)
        out = {}
        for k, a in enumerate(self.possible_agents):
            if a in self.agents:
                out[a] = {name: (v[0, k].copy() if v[0, k].ndim else v[0, k].item()) for name, v in metrics.items()}
        return out

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is not None:
            self._rng = gym.utils.seeding.np_random(seed)[0]
        self.core.reset_rows(self.state, np.array([0]), [self._rng])
        self.agents = list(self.possible_agents)
        self._alive[:] = True
        _, terms = self.core.rewards(self.state, None)
        return self._observations(), self._infos(terms)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        K = self.params.controlled_vehicles
        batch: np.ndarray
        if self.params.action == "discrete":
            batch = np.full((1, K), IDLE, dtype=np.int64)  # finished agents' wrecks ignore actions anyway
        else:
            batch = np.zeros((1, K, 2))
        for k, a in enumerate(self.possible_agents):
            if a in actions and self._alive[k]:
                batch[0, k] = actions[a]
        self.core.advance(self.state, batch)
        reward, terms = self.core.rewards(self.state, batch)
        terminated, truncated = self.core.terminated(self.state)[0], bool(self.core.truncated(self.state)[0])
        live = [a for k, a in enumerate(self.possible_agents) if self._alive[k]]
        rewards = {a: float(reward[0, int(a.split("_")[1])]) for a in live}
        terminations = {a: bool(terminated[int(a.split("_")[1])]) for a in live}
        truncations = {a: truncated for a in live}
        observations, infos = self._observations(), self._infos(terms)
        self._alive &= ~terminated
        self.agents = [a for a in live if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, infos

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_frame(self.core, self.state, 0, 0.0)

    def close(self) -> None:
        pass


def highway_parallel_env(**kwargs: Any) -> HighwayParallelEnv:
    """The multi-agent Highway (PettingZoo Parallel API); see HighwayParallelEnv."""
    return HighwayParallelEnv(**kwargs)
