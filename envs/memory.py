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
1 for the right answer on the query step, 0 otherwise.

## Starting state
The cue is drawn uniformly from `num_cues` with the env's seeded generator.

## Episode end
Terminates on the answer: every episode has exactly `delay + 2` steps. No truncation.

## Arguments
`gym.make("rlsuite/MemoryCue-v0", num_cues=4, delay=5)`; `gym.make_vec(..., vectorization_mode=
"vector_entry_point")` gives the NumPy-batched core (next-step autoreset), row i equal to a single env
reset with seed + i.

## Version history
- v0: first version.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rlsuite.envs.seeding import row_seeds


def _check_params(num_cues: int, delay: int) -> None:
    if num_cues < 2:
        raise ValueError(f"num_cues must be at least 2 (a single cue needs no memory), got {num_cues}.")
    if delay < 0:
        raise ValueError(f"delay must be 0 or more steps, got {delay}.")


def _observe(cue: np.ndarray, t: np.ndarray, num_cues: int, delay: int) -> np.ndarray:
    """Observations for a batch at time steps `t` (0 = cue shown, delay + 1 = query)."""
    obs = np.zeros((len(cue), num_cues + 1), dtype=np.float32)  # (N, num_cues + 1)
    shown = t == 0
    obs[np.flatnonzero(shown), cue[shown]] = 1.0
    obs[t == delay + 1, num_cues] = 1.0
    return obs


class MemoryCueEnv(gym.Env[np.ndarray, np.int64]):
    """The single env: one row of the vectorised core."""

    metadata = {"render_modes": [], "render_fps": 4}

    def __init__(self, num_cues: int = 4, delay: int = 5, render_mode: str | None = None) -> None:
        _check_params(num_cues, delay)
        self.num_cues, self.delay = num_cues, delay
        self.observation_space = gym.spaces.Box(0.0, 1.0, (num_cues + 1,), np.float32)
        self.action_space = gym.spaces.Discrete(num_cues)
        self.render_mode = render_mode
        self._cue = np.zeros(1, dtype=np.int64)
        self._t = np.zeros(1, dtype=np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._cue[0] = self.np_random.integers(self.num_cues)
        self._t[0] = 0
        return _observe(self._cue, self._t, self.num_cues, self.delay)[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        answering = self._t[0] == self.delay + 1
        reward = float(answering and int(action) == self._cue[0])
        self._t[0] += 1
        info = {"is_success": reward > 0} if answering else {}
        return _observe(self._cue, self._t, self.num_cues, self.delay)[0], reward, bool(answering), False, info


class MemoryCueVectorEnv(gym.vector.VectorEnv):
    """`num_envs` MemoryCue envs stepped in array operations, with next-step autoreset."""

    # supports_reset_mask: reset(options={"reset_mask": mask}) resets only the masked rows (Gymnasium 1.x's
    # partial reset), which SB3's same-step autoreset needs (agents/sb3_vecenv.py).
    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP, "supports_reset_mask": True}

    def __init__(self, num_envs: int, num_cues: int = 4, delay: int = 5, render_mode: str | None = None) -> None:
        _check_params(num_cues, delay)
        self.num_envs, self.num_cues, self.delay = num_envs, num_cues, delay
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (num_cues + 1,), np.float32)
        self.single_action_space = gym.spaces.Discrete(num_cues)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._cue = np.zeros(num_envs, dtype=np.int64)
        self._t = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def _reset_rows(self, rows: np.ndarray) -> None:
        for i in rows:  # one draw per resetting row, from that row's own generator
            self._cue[i] = self._rngs[i].integers(self.num_cues)
        self._t[rows] = 0

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        mask = (options or {}).get("reset_mask")
        rows = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        if seed is not None:
            seeds = row_seeds(seed, self.num_envs)
            for i in rows:  # the same seeding as gym.Env.reset: row i == single env reset with seed + i
                self._rngs[i] = gym.utils.seeding.np_random(seeds[i])[0]
        self._reset_rows(rows)
        self._needs_reset[rows] = False
        return _observe(self._cue, self._t, self.num_cues, self.delay), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions)  # (N,)
        answering = (self._t == self.delay + 1) & ~self._needs_reset
        rewards = (answering & (actions == self._cue)).astype(np.float64)  # (N,)
        self._t += 1
        restarting = np.flatnonzero(self._needs_reset)
        self._reset_rows(restarting)  # next-step autoreset: these rows ignore their action
        rewards[restarting] = 0.0
        terminated = answering.copy()
        self._needs_reset = terminated.copy()
        obs = _observe(self._cue, self._t, self.num_cues, self.delay)
        return obs, rewards, terminated, np.zeros(self.num_envs, dtype=bool), {}
