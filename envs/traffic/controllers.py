"""Classic signal controllers (fixed-time by Webster, max-pressure, actuated) that act on batched observations
like any agent; agents/registry.py wraps them as baselines."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from rlsuite.envs.traffic.env import TrafficSim, obs_dim
from rlsuite.envs.traffic.network import (
    PHASE_GREEN,
    Network,
    ScenarioError,
)


def _unwrapped_net(env: Any) -> tuple[Network, int]:
    """The network and the per-intersection observation width of a (possibly wrapped) traffic env."""
    base = env.unwrapped
    sim: TrafficSim = base.sim
    if getattr(base, "obs_mode", "vector") != "vector":
        raise ScenarioError("The classic controllers read vector observations; build the env with obs_mode='vector'.")
    return sim.net, obs_dim(sim.pressure_obs, sim.neighbour_obs)


def webster_plan(net: Network) -> np.ndarray:
    """(K, 4) decision intervals each phase holds per cycle (green + its clearance), by Webster's formula.

    Cycle C0 = (1.5 L + 5) / (1 - Y), L = lost time per cycle (4 clearances), Y = sum of the phases'
    critical flow ratios y = flow / saturation flow from the training profiles' mean demand; effective
    green is split in proportion to y. Rounded to whole decision intervals, at least min green each.
    """
    K, delta, clear = net.num_nodes, net.delta_time_s, net.clearance_s
    ratio = (net.design_flow / net.rate).reshape(K, 4, 3)  # (K, approach, movement) flow ratio
    y = (ratio[:, None] * PHASE_GREEN[None]).max(axis=(2, 3))  # (K, 4) critical ratio per phase
    Y = np.minimum(y.sum(axis=1, keepdims=True), 0.9)
    lost = 4.0 * clear  # s
    cycle = np.clip((1.5 * lost + 5.0) / (1.0 - Y), 4 * (net.min_green_s + clear), 4 * (net.max_green_s + clear))
    green = (cycle - lost) * y / np.maximum(y.sum(axis=1, keepdims=True), 1e-9)  # (K, 4) s
    lo = int(np.ceil((net.min_green_s + clear) / delta))
    hi = max(lo, int((net.max_green_s + clear) // delta))
    return np.clip(np.round((green + clear) / delta), lo, hi).astype(np.int64)


class FixedTimeController:
    """Fixed-time signals: phases 0-3 in turn, each for its Webster share of the cycle (no offsets)."""

    def __init__(self, env: gym.Env, plan: np.ndarray | None = None) -> None:
        self.net, self.dim = _unwrapped_net(env)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.plan = webster_plan(self.net) if plan is None else np.asarray(plan, dtype=np.int64)  # (K, 4)
        ends = np.cumsum(self.plan, axis=1)  # (K, 4) interval at which each phase ends
        self._cycle = ends[:, -1]  # (K,)
        self._table = np.zeros((self.net.num_nodes, int(self._cycle.max())), dtype=np.int64)
        for k in range(self.net.num_nodes):
            self._table[k, : self._cycle[k]] = np.repeat(np.arange(4), self.plan[k])
        self._k = np.zeros(1, dtype=np.int64)

    def reset(self, num_envs: int) -> None:
        self._k = np.zeros(num_envs, dtype=np.int64)

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if len(self._k) != len(episode_start):
            self.reset(len(episode_start))
        self._k[np.asarray(episode_start, dtype=bool)] = 0
        pos = self._k[:, None] % self._cycle[None, :]  # (n, K)
        self._k += 1
        return self._table[np.arange(self.net.num_nodes)[None, :], pos]


class MaxPressureController:
    """Max-pressure (Varaiya 2013): give green to the phase with the largest sum of saturation flow x
    (queue upstream - turning-weighted queue downstream) over its movements; hold it on a tie."""

    def __init__(self, env: gym.Env) -> None:
        self.net, self.dim = _unwrapped_net(env)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        net = self.net
        self._ratios = np.diff(np.concatenate([[0.0], net.turning[list(net.train_profiles)].mean(0)]))  # (3,)

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        net, K = self.net, self.net.num_nodes
        o = np.asarray(obs, dtype=np.float64).reshape(len(episode_start), K, self.dim)
        queue = (o[:, :, 17:29] * net.mov_capacity.reshape(1, K, 12)).reshape(-1, net.num_links, 3)  # (n, L, 3) vehicles
        downstream = (queue * self._ratios).sum(axis=2)  # (n, L) turning-weighted queue of each link
        tgt = np.where(net.target >= 0, net.target, 0)
        w = queue - np.where(net.target >= 0, downstream[:, tgt], 0.0)  # (n, L, 3)
        w = (w * net.rate).reshape(-1, K, 4, 3)
        phase_pressure = (w[:, :, None] * PHASE_GREEN[None, None]).sum(axis=(3, 4))  # (n, K, 4)
        current = o[:, :, :4].argmax(axis=2)  # (n, K)
        best = phase_pressure.argmax(axis=2)
        hold = np.take_along_axis(phase_pressure, current[..., None], axis=2)[..., 0] >= phase_pressure.max(axis=2)
        return np.where(hold, current, best)


class ActuatedController:
    """Actuated gap-out: extend the green while its movements still have stopped vehicles (the env ends
    it at max green); once they are served, move to the next phase in the cycle that has demand."""

    def __init__(self, env: gym.Env) -> None:
        self.net, self.dim = _unwrapped_net(env)
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        K = self.net.num_nodes
        o = np.asarray(obs, dtype=np.float64).reshape(len(episode_start), K, self.dim)
        green_sets = PHASE_GREEN.reshape(1, 1, 4, 12)
        queued = (o[:, :, None, 17:29] * green_sets).sum(axis=3)  # (n, K, 4) stopped share per phase
        demand = (o[:, :, None, 5:17] * green_sets).sum(axis=3)  # (n, K, 4) vehicles present per phase
        current = o[:, :, :4].argmax(axis=2)
        extend = np.take_along_axis(queued, current[..., None], axis=2)[..., 0] > 0
        order = (current[..., None] + np.arange(1, 5)) % 4  # (n, K, 4) next phases, current last
        has_demand = np.take_along_axis(demand, order, axis=2) > 0
        first = has_demand.argmax(axis=2)  # the first later phase with demand (or current when none)
        nxt = np.where(has_demand.any(axis=2), np.take_along_axis(order, first[..., None], axis=2)[..., 0], current)
        return np.where(extend, current, nxt)
