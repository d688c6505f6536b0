"""MemoryCue: a cue is shown once, then hidden; after a delay the agent must name it.

## Description
The smallest task that separates agents with memory from agents without: at reset the observation
shows one of `num_cues` cues (one-hot); for the next `delay` steps the observation is blank; then a
query flag appears and the action taken on that step is the answer. An agent that sees only the
current observation cannot do better than guessing (mean return 1 / num_cues); an agent that carries
the cue in a recurrent state answers every time (mean return 1).

## Action space
`Discrete(num_cues)`: the answer. Actions before the query step are ignored.

## Observation space
`Box(0, 1, (num_cues + 1,), float32)`: entries `0..num_cues-1` are the cue one-hot (only on the first
observation), the last entry is the query flag (only on the last observation).

## Rewards
1 for the right answer on the query step, 0 otherwise; `info["is_success"]` says whether the answer was right.

## Starting state
The cue is drawn uniformly from `num_cues` with the env's seeded generator.

## Episode end
Terminates on the answer: every episode has exactly `delay + 2` steps. No truncation.

## Arguments
`gym.make("rlsuite/MemoryCue-v0", num_cues=4, delay=5)` (the fields of `MemoryParams`);
`render_mode="rgb_array"` draws the cue cells and the query flag. `gym.make_vec(...,
vectorization_mode="vector_entry_point")` gives the NumPy-batched core on envs/vector.py's base
(next-step autoreset), row i equal to a single env reset with seed + i.

## Version history
- v0: first version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from rlsuite.envs.vector import CoreEnv, NumpyVectorEnv


@dataclass(frozen=True)
class MemoryParams:
    """Every knob of the task."""

    num_cues: int = 4
    """Number of distinct cues (and answers)."""
    delay: int = 5
    """Blank steps between the cue and the query."""

    def __post_init__(self) -> None:
        if self.num_cues < 2:
            raise ValueError(f"num_cues must be at least 2 (a single cue needs no memory), got {self.num_cues}.")
        if self.delay < 0:
            raise ValueError(f"delay must be 0 or more steps, got {self.delay}.")


@dataclass
class MemoryState:
    """N rows of the task (rows first)."""

    cue: np.ndarray
    """(N,) the cue shown at the start."""
    t: np.ndarray
    """(N,) steps into the episode: 0 = cue shown, delay + 1 = query."""


class MemoryCore:
    """The step of N rows on a MemoryState (envs/vector.py's VectorCore)."""

    def __init__(self, params: MemoryParams, num_envs: int) -> None:
        self.p, self.num_envs = params, num_envs

    def init_state(self) -> MemoryState:
        return MemoryState(np.zeros(self.num_envs, dtype=np.int64), np.zeros(self.num_envs, dtype=np.int64))

    def reset_rows(self, s: MemoryState, rows: np.ndarray, rngs: Any) -> None:
        for i, rng in zip(rows, rngs, strict=True):  # one draw per resetting row, from that row's own generator
            s.cue[i] = rng.integers(self.p.num_cues)
        s.t[rows] = 0

    def observe(self, s: MemoryState) -> np.ndarray:
        p = self.p
        obs = np.zeros((self.num_envs, p.num_cues + 1), dtype=np.float32)  # (N, num_cues + 1)
        shown = s.t == 0
        obs[np.flatnonzero(shown), s.cue[shown]] = 1.0
        obs[s.t == p.delay + 1, p.num_cues] = 1.0
        return obs

    def step(self, s: MemoryState, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        answering = s.t == self.p.delay + 1  # (N,)
        right = answering & (np.asarray(actions).reshape(self.num_envs) == s.cue)
        s.t += 1
        return (right.astype(np.float64), answering, np.zeros(self.num_envs, dtype=bool), {"is_success": right})

    def reset_info(self, s: MemoryState) -> dict[str, np.ndarray]:
        return {}

    def draw(self, s: MemoryState, row: int, cell: int = 48) -> np.ndarray:
        """The observation as an image: one cell per cue (white when shown) and the query flag (yellow)."""
        obs = self.observe(s)[row]
        img = np.full((cell, cell * len(obs), 3), 40, np.uint8)
        for k, value in enumerate(obs):
            colour = (230, 200, 40) if k == self.p.num_cues else (235, 235, 235)
            if value:
                img[4:-4, k * cell + 4:(k + 1) * cell - 4] = colour
            cv2.rectangle(img, (k * cell + 2, 2), ((k + 1) * cell - 3, cell - 3), (120, 120, 120), 1)
        return img


def _spaces(p: MemoryParams) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    return gym.spaces.Box(0.0, 1.0, (p.num_cues + 1,), np.float32), gym.spaces.Discrete(p.num_cues)


class MemoryCueEnv(CoreEnv):
    """The single env: the core with one row."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, num_cues: int = 4, delay: int = 5, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.params = MemoryParams(num_cues, delay)
        super().__init__(MemoryCore(self.params, 1))
        self.observation_space, self.action_space = _spaces(self.params)
        self.render_mode = render_mode

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        return self.core.draw(self.state, 0) if self.render_mode == "rgb_array" else None


class MemoryCueVectorEnv(NumpyVectorEnv):
    """`num_envs` MemoryCue envs stepped in array operations."""

    metadata = {**NumpyVectorEnv.metadata, "render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, num_envs: int, num_cues: int = 4, delay: int = 5, render_mode: str | None = None,
                 **vector_kwargs: Any) -> None:
        self.params = MemoryParams(num_cues, delay)
        super().__init__(MemoryCore(self.params, num_envs), *_spaces(self.params), render_mode=render_mode,
                         **vector_kwargs)

    def render(self) -> tuple[np.ndarray, ...] | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        return tuple(self.core.draw(self.state, i) for i in range(self.num_envs))
