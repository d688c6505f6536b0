"""Per-row seeding of our natively vectorised envs, the same as gym.Env.reset's.

`reset(seed=s)` on a vector env of N rows seeds row i with s + i (or with the i-th entry of a list), and
each row draws from its own generator made exactly as `gym.Env.reset(seed=...)` makes one, so row i of
the vector env equals a single env reset with seed s + i (every env's tests check it).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


def row_seeds(seed: int | list[int], num_envs: int) -> list[int]:
    """The seed of each row: seed + i, or the list as given."""
    return seed if isinstance(seed, list) else [seed + i for i in range(num_envs)]


def row_generators(seed: int | list[int], num_envs: int) -> list[np.random.Generator]:
    """One generator per row, seeded like gym.Env.reset with `row_seeds(seed, num_envs)`."""
    return [gym.utils.seeding.np_random(s)[0] for s in row_seeds(seed, num_envs)]
