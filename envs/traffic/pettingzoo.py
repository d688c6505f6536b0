"""Traffic as a PettingZoo ParallelEnv: one agent per intersection, over the same core."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

from rlsuite.envs.traffic.env import TrafficGridVectorEnv
from rlsuite.envs.traffic.rendering import render_frames


class TrafficParallelEnv(ParallelEnv):
    """PettingZoo ParallelEnv: one agent per intersection (`tl_<row>_<col>`), over the same core."""

    metadata = {"render_modes": ["rgb_array"], "name": "traffic_grid_v0", "is_parallelizable": True, "render_fps": 4}

    def __init__(self, scenario: str | Path | dict = "grid2x2", profile: str = "train", reward: str = "wait",
                 pressure: bool = False, neighbour_phases: bool = False, render_mode: str | None = None) -> None:
        self.core = TrafficGridVectorEnv(1, scenario, profile, reward, pressure, neighbour_phases)
        net = self.core.net
        self.render_mode = render_mode
        self.possible_agents = [f"tl_{k // net.cols}_{k % net.cols}" for k in range(net.num_nodes)]
        self.agents: list[str] = []
        self._obs_space = self.core.agent_observation_space
        self._act_space = self.core.agent_action_space
        self._obs_spaces = {a: self._obs_space for a in self.possible_agents}
        self._act_spaces = {a: gym.spaces.Discrete(4) for a in self.possible_agents}
        self._seeded = False

    def observation_space(self, agent: str) -> gym.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self._act_spaces[agent]

    def _infos(self, info: dict[str, Any]) -> dict[str, dict[str, Any]]:
        network = {k: float(np.asarray(v)[0]) for k, v in info.items() if not k.startswith("agent_")}
        per_agent = {k.removeprefix("agent_"): np.asarray(v)[0] for k, v in info.items() if k.startswith("agent_")}
        return {a: {**network, **{k: float(v[i]) for k, v in per_agent.items()}} for i, a in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if seed is None and not self._seeded:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._seeded = True
        obs, info = self.core.reset_agents(seed)
        self.agents = list(self.possible_agents)
        return {a: obs[0, i] for i, a in enumerate(self.agents)}, self._infos(info)

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        act = np.array([[int(actions.get(a, 0)) for a in self.possible_agents]])
        obs, rewards, terminated, truncated, info = self.core.step_agents(act)
        names = self.possible_agents
        out = ({a: obs[0, i] for i, a in enumerate(names)}, {a: float(rewards[0, i]) for i, a in enumerate(names)},
               {a: bool(terminated[0]) for a in names}, {a: bool(truncated[0]) for a in names}, self._infos(info))
        if truncated[0] or terminated[0]:
            self.agents = []
        return out

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_frames(self.core.sim.core, self.core.state, np.array([0]))[0]

    def close(self) -> None:
        pass
