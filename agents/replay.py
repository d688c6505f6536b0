"""Replay memory for off-policy agents: compact storage, n-step returns, prioritised and sequence sampling.

Layout. Every vector-env step writes one row of `n_envs` slots: the observation the agent acted on, its
action, and the reward / terminated / truncated that followed. Each observation is stored ONCE: the next
observation of row t is the observation of row t + 1 in the same column, which next-step autoreset
(envs/factory.py) makes exact: after an episode ends, the following row holds that episode's final
observation (the bootstrap target after a truncation) and is itself a reset step whose action the env
ignored, so it is marked invalid and never sampled as a transition. Observations keep the space's dtype
(uint8 images stay uint8, 1 byte a pixel), so a buffer holds half what obs + next_obs copies would.
Frame stacks are stored as the env returns them (the stack once per row, not once per transition).
Channel-first images (C, H, W) are held channels-last in memory, (H, W, C) per observation, and handed
out as arrays of the space's shape (B, C, H, W) with channels-last strides: the same values, in the
memory order a CPU convolution reads without a transposing copy (`NatureCNN.forward_channels_last`).
Writing a step transposes its n_envs images once; otherwise every sampled batch would be transposed.

Sampling draws (row, env) pairs with NumPy index arrays; the only Python loops run over the n of the
n-step return or the levels of the sum-tree, never over the samples of a batch.

- `sample(batch_size)`: uniform, or proportional to priority (Schaul et al. 2016) on a sum-tree with
  importance-sampling weights `(N * P(i)) ** -beta`, divided by their batch maximum;
- `sample_sequences(batch_size, length)`: contiguous (length + 1)-row windows for recurrent agents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlsuite.policies import SpaceError, image_layout, is_image_space

Obs = np.ndarray | dict[str, np.ndarray]


def _channels_first_image(space: gym.Space) -> bool:
    """A Box the encoders read as a (C, H, W) image."""
    try:
        return is_image_space(space) and image_layout(cast(spaces.Box, space)).order == "chw"
    except SpaceError:  # an ambiguous layout: not stored as an image
        return False


def _alloc(space: gym.Space, leading: tuple[int, ...]) -> Obs:
    """Zeros shaped `leading + space.shape` in the space's own dtype (uint8 stays uint8); a channel-first image
    channels-last in memory (a transposed view of `leading + (H, W, C)`)."""
    if isinstance(space, spaces.Dict):
        return {key: _alloc(sub, leading) for key, sub in space.spaces.items()}  # type: ignore[misc]
    if _channels_first_image(space):
        channels, height, width = space.shape  # type: ignore[misc]
        n = len(leading)
        return np.zeros(leading + (height, width, channels), dtype=space.dtype).transpose(
            *range(n), n + 2, n, n + 1)  # (..., C, H, W) with C innermost in memory
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return np.zeros(leading + tuple(space.shape or ()), dtype=space.dtype)
    raise ValueError(f"the replay buffer stores Box, Discrete, MultiDiscrete, MultiBinary or Dict observations, not {space}.")


def _put(store: Obs, index: Any, value: Any) -> None:
    if isinstance(store, dict):
        for key in store:
            store[key][index] = value[key]
    else:
        store[index] = value


def _take(store: Obs, *index: Any) -> Obs:
    if isinstance(store, dict):
        return {key: value[index] for key, value in store.items()}
    return store[index]


def _nbytes(store: Obs) -> int:
    return sum(v.nbytes for v in store.values()) if isinstance(store, dict) else store.nbytes


class SumTree:
    """A binary tree whose leaves hold priorities and whose inner nodes hold sums of their children.

    Array layout: the root at 1, node i's children at 2i and 2i + 1, leaf j at `size + j` (size a power of
    two). Updates and prefix-sum searches walk the log2(size) levels, each level vectorised over a batch.
    """

    def __init__(self, capacity: int) -> None:
        self.size = 1 << max(0, int(capacity - 1).bit_length())
        self.depth = self.size.bit_length() - 1
        self.nodes = np.zeros(2 * self.size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self.nodes[1])

    @property
    def leaves(self) -> np.ndarray:
        return self.nodes[self.size:]

    def update(self, leaf: np.ndarray, priority: np.ndarray) -> None:
        """Set leaves (duplicates: the last value wins) and recompute the sums above them."""
        node = np.asarray(leaf, dtype=np.int64) + self.size
        self.nodes[node] = priority
        for _ in range(self.depth):
            node = np.unique(node >> 1)
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1]

    def find(self, mass: np.ndarray) -> np.ndarray:
        """For each value in [0, total), the leaf where the running sum of priorities passes it."""
        mass = np.array(mass, dtype=np.float64)
        node = np.ones(len(mass), dtype=np.int64)
        for _ in range(self.depth):
            left = self.nodes[2 * node]
            # Only step into subtrees with positive mass, so zero-priority leaves are never returned even
            # when rounding leaves `mass` a hair above a subtree's sum.
            go_right = (mass >= left) & (self.nodes[2 * node + 1] > 0)
            mass = np.where(go_right, mass - left, mass)
            node = 2 * node + go_right
        return node - self.size


@dataclass
class Batch:
    """Transitions with n-step returns, ready for a TD target: y = returns + discounts * max_a Q(next_obs, a)."""

    obs: Obs  # (B, ...)
    actions: np.ndarray  # (B,)
    returns: np.ndarray  # (B,) sum_k gamma^k r_{t+k} up to n steps or the episode's end
    next_obs: Obs  # (B, ...) the observation m steps later (the final one when the episode ended)
    discounts: np.ndarray  # (B,) gamma^m, 0 when the episode terminated inside the window
    weights: np.ndarray  # (B,) importance-sampling weights (ones when uniform)
    indices: np.ndarray  # (B,) slot ids, for update_priorities


@dataclass
class SequenceBatch:
    """(L + 1)-row windows for a recurrent agent; row L only supplies the next observation of row L - 1."""

    obs: Obs  # (L + 1, B, ...)
    episode_starts: np.ndarray  # (L + 1, B) float32, 1 where an episode begins (clear the hidden state)
    actions: np.ndarray  # (L, B)
    rewards: np.ndarray  # (L, B) float32
    terminated: np.ndarray  # (L, B) float32
    valid: np.ndarray  # (L, B) float32, 0 on reset steps (the env ignored the action)


class ReplayBuffer:
    """A circular buffer of `capacity` transitions from `n_envs` sub-envs (see the module docstring)."""

    def __init__(self, observation_space: gym.Space, capacity: int, n_envs: int = 1, *, n_step: int = 1,
                 gamma: float = 0.99, prioritized: bool = False, alpha: float = 0.6, eps: float = 1e-6,
                 seed: int = 0) -> None:
        self.rows = -(-capacity // n_envs)  # ceil: whole rows of n_envs slots
        if self.rows < n_step + 2:
            raise ValueError(f"a replay buffer of {capacity} transitions over {n_envs} envs cannot hold an "
                             f"{n_step}-step window; raise buffer_size to at least {(n_step + 2) * n_envs}.")
        self.n_envs, self.n_step, self.gamma = n_envs, n_step, gamma
        self.capacity = self.rows * n_envs
        self.obs = _alloc(observation_space, (self.rows, n_envs))
        self.actions = np.zeros((self.rows, n_envs), dtype=np.int64)
        self.rewards = np.zeros((self.rows, n_envs), dtype=np.float32)
        self.terminated = np.zeros((self.rows, n_envs), dtype=bool)
        self.dones = np.zeros((self.rows, n_envs), dtype=bool)  # terminated or truncated
        self.valid = np.zeros((self.rows, n_envs), dtype=bool)  # False on reset steps
        self.starts = np.zeros((self.rows, n_envs), dtype=bool)  # the row's observation begins an episode
        self.written = 0  # rows written since creation (absolute row counter)
        self.rng = np.random.default_rng(seed)
        self.prioritized, self.alpha, self.eps = prioritized, alpha, eps
        self.tree = SumTree(self.capacity) if prioritized else None
        self.max_priority = 1.0

    # --- bookkeeping -------------------------------------------------------------------------------------

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored arrays (and the sum-tree)."""
        arrays = (self.actions, self.rewards, self.terminated, self.dones, self.valid, self.starts)
        tree = self.tree.nodes.nbytes if self.tree is not None else 0
        return _nbytes(self.obs) + sum(a.nbytes for a in arrays) + tree

    def describe(self) -> str:
        obs_bytes = _nbytes(self.obs)
        return (f"replay buffer: {self.capacity} transitions ({self.rows} rows x {self.n_envs} envs), "
                f"{self.nbytes} bytes ({self.nbytes / 2**20:.1f} MiB; observations {obs_bytes} bytes, stored once each)")

    def state(self) -> dict[str, Any]:
        """The stored transitions (only the rows written so far), the write position, the sampling generator
        and the priorities, as a tree of arrays for a checkpoint; `load_state` continues from it exactly."""
        held = min(self.written, self.rows)
        arrays = {name: getattr(self, name)[:held] for name in ("actions", "rewards", "terminated", "dones", "valid", "starts")}
        obs = {k: v[:held] for k, v in self.obs.items()} if isinstance(self.obs, dict) else self.obs[:held]
        return {"obs": obs, **arrays, "written": self.written, "rng": dict(self.rng.bit_generator.state),
                "tree": None if self.tree is None else self.tree.nodes, "max_priority": self.max_priority}

    def load_state(self, state: dict[str, Any]) -> None:
        held = min(int(state["written"]), self.rows)
        if isinstance(self.obs, dict):
            for k, v in self.obs.items():
                v[:held] = state["obs"][k]
        else:
            self.obs[:held] = state["obs"]
        for name in ("actions", "rewards", "terminated", "dones", "valid", "starts"):
            getattr(self, name)[:held] = state[name]
        self.written = int(state["written"])
        self.rng.bit_generator.state = state["rng"]
        if self.tree is not None:
            self.tree.nodes[:] = state["tree"]
        self.max_priority = float(state["max_priority"])

    def __len__(self) -> int:
        """Transitions held (sampleable or not yet)."""
        return min(self.written, self.rows) * self.n_envs

    def _first_row(self) -> int:
        return max(0, self.written - self.rows)

    def _last_sampleable_row(self) -> int:
        """Row t is sampleable once rows t .. t + n_step exist (its whole window and the bootstrap observation)."""
        return self.written - 1 - self.n_step

    def can_sample(self) -> bool:
        return self._last_sampleable_row() >= self._first_row()

    def add(self, obs: Obs, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
            truncated: np.ndarray, valid: np.ndarray, episode_starts: np.ndarray) -> None:
        """Write one vector-env step: the (n_envs, ...) observation acted on, and what followed it."""
        row = self.written % self.rows
        _put(self.obs, row, obs)
        self.actions[row] = actions
        self.rewards[row] = rewards
        self.terminated[row] = terminated
        self.dones[row] = np.logical_or(terminated, truncated)
        self.valid[row] = valid
        self.starts[row] = episode_starts
        self.written += 1
        if self.tree is not None:
            env = np.arange(self.n_envs)
            self.tree.update(row * self.n_envs + env, np.zeros(self.n_envs))  # overwritten slots leave the tree
            ready = self._last_sampleable_row()  # this row's window just completed: it enters at max priority
            if ready >= self._first_row():
                ready_row = ready % self.rows
                priority = np.where(self.valid[ready_row], self.max_priority ** self.alpha, 0.0)
                self.tree.update(ready_row * self.n_envs + env, priority)

    # --- transitions -------------------------------------------------------------------------------------

    def _uniform_slots(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform (absolute row, env) pairs among valid sampleable slots, by vectorised rejection."""
        low, high = self._first_row(), self._last_sampleable_row()
        rows, envs = np.empty(0, np.int64), np.empty(0, np.int64)
        for _ in range(1000):  # a reset step is at most every other row, so this ends in a few rounds
            if len(rows) >= batch_size:
                break
            if high < low:
                break
            r = self.rng.integers(low, high + 1, size=2 * batch_size)
            e = self.rng.integers(0, self.n_envs, size=2 * batch_size)
            keep = self.valid[r % self.rows, e]
            rows, envs = np.concatenate([rows, r[keep]]), np.concatenate([envs, e[keep]])
        if len(rows) < batch_size:
            raise ValueError("the replay buffer holds no complete transition yet; collect more steps before sampling.")
        return rows[:batch_size], envs[:batch_size]

    def n_step_returns(self, rows: np.ndarray, envs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns, bootstrap discounts and bootstrap rows for transitions at absolute `rows`, `envs`.

        The window runs n steps or to the episode's end, whichever comes first. After a termination there
        is nothing to bootstrap (discount 0); after a truncation the next row holds the final observation."""
        returns = np.zeros(len(rows), dtype=np.float64)
        alive = np.ones(len(rows), dtype=bool)
        steps = np.zeros(len(rows), dtype=np.int64)  # m: steps inside the window
        terminated = np.zeros(len(rows), dtype=bool)
        for k in range(self.n_step):
            slot = (rows + k) % self.rows
            returns += np.where(alive, self.gamma ** k * self.rewards[slot, envs], 0.0)
            steps += alive
            terminated |= alive & self.terminated[slot, envs]
            alive &= ~self.dones[slot, envs]
        discounts = np.where(terminated, 0.0, self.gamma ** steps)
        return returns.astype(np.float32), discounts.astype(np.float32), rows + steps

    def sample(self, batch_size: int, beta: float = 0.4) -> Batch:
        """A batch of n-step transitions, uniform or (prioritized) proportional to priority ** alpha."""
        if self.tree is None:
            rows, envs = self._uniform_slots(batch_size)
            weights = np.ones(batch_size, dtype=np.float32)
            slots = (rows % self.rows) * self.n_envs + envs
        else:
            total = self.tree.total
            if total <= 0:
                raise ValueError("the replay buffer holds no complete transition yet; collect more steps before sampling.")
            # stratified: one draw from each of batch_size equal slices of the total mass
            mass = (np.arange(batch_size) + self.rng.random(batch_size)) * (total / batch_size)
            slots = self.tree.find(np.minimum(mass, np.nextafter(total, 0)))
            probs = self.tree.leaves[slots] / total  # (B,) P(i)
            count = np.count_nonzero(self.tree.leaves)
            weights = (count * probs) ** -beta
            weights = (weights / weights.max()).astype(np.float32)
            slot_rows, envs = slots // self.n_envs, slots % self.n_envs
            # absolute row of each slot: the latest write of that slot
            newest = (self.written - 1) % self.rows
            rows = self.written - 1 - (newest - slot_rows) % self.rows
        returns, discounts, next_rows = self.n_step_returns(rows, envs)
        return Batch(obs=_take(self.obs, rows % self.rows, envs), actions=self.actions[rows % self.rows, envs],
                     returns=returns, next_obs=_take(self.obs, next_rows % self.rows, envs),
                     discounts=discounts, weights=weights, indices=slots)

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """New priorities (|td error| + eps) ** alpha for sampled slots."""
        assert self.tree is not None, "update_priorities needs a prioritized buffer"
        priority = np.abs(td_errors).astype(np.float64) + self.eps
        self.max_priority = max(self.max_priority, float(priority.max()))
        self.tree.update(indices, priority ** self.alpha)

    # --- sequences ---------------------------------------------------------------------------------------

    def sample_sequences(self, batch_size: int, length: int) -> SequenceBatch:
        """Uniform windows of `length` steps (plus the row after, for the last bootstrap) from one env each."""
        low, high = self._first_row(), self.written - 1 - length
        if high < low:
            raise ValueError(f"the replay buffer holds fewer than {length + 1} rows; collect more steps before sampling.")
        start = self.rng.integers(low, high + 1, size=batch_size)  # (B,)
        envs = self.rng.integers(0, self.n_envs, size=batch_size)  # (B,)
        rows = (start[None, :] + np.arange(length + 1)[:, None]) % self.rows  # (L + 1, B)
        cols = np.broadcast_to(envs, rows.shape)
        head, head_cols = rows[:-1], cols[:-1]
        return SequenceBatch(obs=_take(self.obs, rows, cols),
                             episode_starts=self.starts[rows, cols].astype(np.float32),
                             actions=self.actions[head, head_cols], rewards=self.rewards[head, head_cols],
                             terminated=self.terminated[head, head_cols].astype(np.float32),
                             valid=self.valid[head, head_cols].astype(np.float32))
