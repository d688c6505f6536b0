"""Agents that are not trained: a uniform random agent for every env, and env heuristics as agents.

An env's heuristic controller is a plain function in the env's own file (envs/ knows nothing of
agents); `HeuristicPolicy` wraps such a function behind the same `Policy` interface as trained agents.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np


class RandomPolicy:
    """Uniform random actions from the action space, seeded for reproducible evaluations."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, seed: int = 0) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self.seed = seed
        self._num_envs = 1
        self.reset(1)

    def reset(self, num_envs: int) -> None:
        self._num_envs = num_envs
        self._batch_space = gym.vector.utils.batch_space(self.action_space, num_envs)
        self._batch_space.seed(self.seed)
        self._row_spaces: list[gym.Space] = []

    def seed_episodes(self, seeds: Sequence[int]) -> None:
        """Give row i its own action stream, seeded by (self.seed, seeds[i]): an episode then gets the same
        actions whether it is evaluated in a batch of 8 or recorded alone (the harness calls this)."""
        self._row_spaces = []
        for episode_seed in seeds:
            space = copy.deepcopy(self.action_space)
            space.seed(int(np.random.SeedSequence([self.seed, int(episode_seed)]).generate_state(1)[0]))
            self._row_spaces.append(space)

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        # A random agent has no deterministic mode: `deterministic` is accepted for the common interface.
        num_envs = len(episode_start)
        if num_envs != self._num_envs:
            self.reset(num_envs)
        if self._row_spaces:
            samples = [space.sample() for space in self._row_spaces]
            empty = gym.vector.utils.create_empty_array(self.action_space, num_envs)
            return gym.vector.utils.concatenate(self.action_space, samples, empty)  # type: ignore[arg-type,return-value]
        return self._batch_space.sample()


HeuristicFn = Callable[[Any, gym.Env], np.ndarray]
"""(batched observation, the vector env's unwrapped core) -> batched actions."""


class HeuristicPolicy:
    """Wraps an env's heuristic controller (a plain function from the env's file) as a Policy."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, controller: Callable[[Any], np.ndarray]) -> None:
        self.observation_space = observation_space
        self.action_space = action_space
        self._controller = controller

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return np.asarray(self._controller(obs))
