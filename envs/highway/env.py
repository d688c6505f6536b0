"""Highway as Gymnasium envs: the single env (the core with one row) and the vector env, on envs/vector.py's base."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from rlsuite.envs.highway.dynamics import HighwayCore
from rlsuite.envs.highway.observations import action_space, observation_space
from rlsuite.envs.highway.params import fields_of
from rlsuite.envs.highway.rendering import render_frame
from rlsuite.envs.vector import CoreEnv, NumpyVectorEnv


class HighwayEnv(CoreEnv):
    """The single env: the core with one row."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        self.params = fields_of(kwargs)
        if self.params.controlled_vehicles != 1:
            raise ValueError("Highway: the gym env drives one vehicle; for several learning vehicles use highway_parallel_env().")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"Highway: render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.render_mode = render_mode
        self.observation_space = observation_space(self.params)
        self.action_space = action_space(self.params)
        super().__init__(HighwayCore(self.params, 1))

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return render_frame(self.core, self.state, 0, self.last_reward)


class HighwayVectorEnv(NumpyVectorEnv):
    """`num_envs` highways stepped together in array operations; next-step (default) or same-step autoreset."""

    metadata = {**NumpyVectorEnv.metadata, "render_modes": ["rgb_array"], "render_fps": 5}

    def __init__(self, num_envs: int, render_mode: str | None = None,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP, episode_statistics: bool = False,
                 **kwargs: Any) -> None:
        self.params = fields_of(kwargs)
        if self.params.controlled_vehicles != 1:
            raise ValueError("Highway: the vector env drives one vehicle per row; use highway_parallel_env() for several.")
        super().__init__(HighwayCore(self.params, num_envs), observation_space(self.params), action_space(self.params),
                         render_mode=render_mode, autoreset_mode=autoreset_mode, episode_statistics=episode_statistics)

    def render(self) -> tuple[np.ndarray, ...] | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        return tuple(render_frame(self.core, self.state, i, float(self.last_rewards[i])) for i in range(self.num_envs))

