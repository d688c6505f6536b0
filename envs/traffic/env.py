"""Traffic as Gymnasium envs on envs/vector.py's base: the single env (one agent for every signal), the
vector env with its multi-agent view, and the parameter-sharing ids."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import gymnasium as gym
import numpy as np

from rlsuite.envs.traffic.dynamics import TrafficCore, TrafficState
from rlsuite.envs.traffic.network import (
    OBS_MODES,
    REWARDS,
    Network,
    ScenarioError,
    load_network,
)
from rlsuite.envs.traffic.rendering import frame_shape, render_frames
from rlsuite.envs.vector import CoreEnv, NumpyVectorEnv

if TYPE_CHECKING:
    from rlsuite.envs.multiagent import MultiAgentCore


def obs_dim(pressure: bool, neighbour_phases: bool) -> int:
    return 29 + int(pressure) + 16 * int(neighbour_phases)


def _obs_low(pressure: bool, neighbour_phases: bool) -> np.ndarray:
    low = np.zeros(obs_dim(pressure, neighbour_phases), dtype=np.float32)
    if pressure:
        low[29] = -1.0
    return low


@dataclass(frozen=True)
class TrafficParams:
    """Every knob of a traffic env besides the scenario file's own (those load into `Network`)."""

    scenario: str | Path | dict = "grid2x2"
    """A shipped scenario name (envs/scenarios/; `single_sumo` is sumo-rl's single intersection, the one to
    train on when the policy will run in SUMO), a path to a YAML file of the same form, or its dict."""
    profile: str = "train"
    """Demand profiles drawn at reset: "train", "held_out", or one profile's name."""
    reward: str = "wait"
    """"wait", "queue" or "pressure" (module docstring)."""
    pressure: bool = False
    """Add the pressure entry to each intersection's observation."""
    neighbour_phases: bool = False
    """Add the neighbours' phase one-hots to each intersection's observation."""
    obs_mode: str = "vector"
    """"vector" (sumo-rl's layout) or "pixels" (the rgb_array frame)."""

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise ScenarioError(f"Unknown reward {self.reward!r}; accepted: {', '.join(REWARDS)}.")
        if self.obs_mode not in OBS_MODES:
            raise ScenarioError(f"Unknown obs_mode {self.obs_mode!r}; accepted: {', '.join(OBS_MODES)}.")


def _check_profile(net: Network, profile: str) -> None:
    if profile not in ("train", "held_out") and profile not in net.profile_names:
        raise ScenarioError(f"Unknown profile {profile!r}; accepted: train, held_out, {', '.join(net.profile_names)}.")
    if profile == "held_out" and not net.held_out_profiles:
        raise ScenarioError(f"Scenario {net.name!r} holds out no profile; use profile='train' or a name.")


class TrafficSim:
    """The decision-level process over a TrafficCore (envs/vector.py's VectorCore): phase requests every
    delta_time_s, rewards per intersection, the demand profile and counter-based key of each episode; its
    state is the core's TrafficState.

    Shared by the Gymnasium single env (one row), its vector env and the PettingZoo env."""

    def __init__(self, num_envs: int, params: TrafficParams) -> None:
        self.params = params
        self.net = load_network(params.scenario)
        _check_profile(self.net, params.profile)
        self.profile, self.reward_kind = params.profile, params.reward
        self.pressure_obs, self.neighbour_obs = params.pressure, params.neighbour_phases
        self.num_envs = num_envs
        self.core = TrafficCore(self.net, num_envs)

    def _choices(self) -> tuple[int, ...]:
        if self.profile == "train":
            return self.net.train_profiles
        if self.profile == "held_out":
            return self.net.held_out_profiles
        return (self.net.profile_names.index(self.profile),)

    def init_state(self) -> TrafficState:
        return self.core.init_state()

    def reset_rows(self, st: TrafficState, rows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        choices = self._choices()
        keys = np.array([rng.integers(0, 2**63, dtype=np.int64) for rng in rngs], dtype=np.uint64)
        profiles = np.array([choices[rng.integers(len(choices))] for rng in rngs], dtype=np.int64)
        self.core.reset_rows(st, np.asarray(rows), keys, profiles)

    def agent_observations(self, st: TrafficState) -> np.ndarray:
        """(N, K, D): one observation per intersection."""
        return self.core.observe(st, self.pressure_obs, self.neighbour_obs)

    def observe(self, st: TrafficState) -> np.ndarray:
        if self.params.obs_mode == "pixels":
            return render_frames(self.core, st, np.arange(self.num_envs))
        return self.agent_observations(st).reshape(self.num_envs, -1)

    def step(self, st: TrafficState, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Phase requests (N, K): the team rewards (N,), terminated (never), truncated, and info with the
        network metrics and `agent_rewards` (N, K)."""
        core, net = self.core, self.net
        stopped_before = st.node_stopped_s.copy()
        core.apply_actions(st, np.asarray(actions, dtype=np.int64).reshape(self.num_envs, -1))
        core.prepare(st, net.delta_time_s)
        for _ in range(net.delta_time_s):
            core.tick(st)
        if self.reward_kind == "wait":
            rewards = -(st.node_stopped_s - stopped_before) / 100.0
        elif self.reward_kind == "queue":
            rewards = -st.queue.reshape(self.num_envs, -1, 12).sum(axis=2) / 10.0
        else:
            rewards = -core.pressure(st) / 10.0
        rewards = rewards.astype(np.float64)
        info = {**core.metrics(st), "agent_rewards": rewards}
        return rewards.sum(axis=1), np.zeros(self.num_envs, dtype=bool), st.t >= net.duration_s, info

    def reset_info(self, st: TrafficState) -> dict[str, np.ndarray]:
        return self.core.metrics(st)


def _spaces(net: Network, p: TrafficParams) -> tuple[gym.spaces.Box, gym.spaces.MultiDiscrete]:
    obs: gym.spaces.Box
    if p.obs_mode == "pixels":
        obs = gym.spaces.Box(0, 255, frame_shape(net), np.uint8)
    else:
        low = np.tile(_obs_low(p.pressure, p.neighbour_phases), net.num_nodes)
        obs = gym.spaces.Box(low, np.ones_like(low), dtype=np.float32)
    return obs, gym.spaces.MultiDiscrete([4] * net.num_nodes)


class TrafficGridEnv(CoreEnv):
    """The single env: the core with one row, one agent controlling every intersection."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, scenario: str | Path | dict = "grid2x2", profile: str = "train", reward: str = "wait",
                 pressure: bool = False, neighbour_phases: bool = False, obs_mode: str = "vector",
                 render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ScenarioError(f"render_mode must be None or 'rgb_array', got {render_mode!r}.")
        self.params = TrafficParams(scenario, profile, reward, pressure, neighbour_phases, obs_mode)
        self.sim = TrafficSim(1, self.params)
        super().__init__(self.sim)
        self.net = self.sim.net
        self.obs_mode, self.render_mode = obs_mode, render_mode
        self.observation_space, self.action_space = _spaces(self.net, self.params)

    def _profile(self) -> str:
        return self.net.profile_names[int(self.state.profile[0])]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        obs, info = super().reset(seed=seed, options=options)
        return obs, {**info, "profile": self._profile()}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated, truncated, {**info, "profile": self._profile()}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        if self.render_mode != "rgb_array":
            return None
        return render_frames(self.sim.core, self.state, np.array([0]))[0]


class TrafficGridVectorEnv(NumpyVectorEnv):
    """`num_envs` networks in array operations; row i equals the single env at seed + i."""

    metadata = {**NumpyVectorEnv.metadata, "render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, num_envs: int, scenario: str | Path | dict = "grid2x2", profile: str = "train",
                 reward: str = "wait", pressure: bool = False, neighbour_phases: bool = False,
                 obs_mode: str = "vector", render_mode: str | None = None, **vector_kwargs: Any) -> None:
        self.params = TrafficParams(scenario, profile, reward, pressure, neighbour_phases, obs_mode)
        self.sim = TrafficSim(num_envs, self.params)
        self.net, self.obs_mode = self.sim.net, obs_mode
        super().__init__(self.sim, *_spaces(self.net, self.params), render_mode=render_mode, **vector_kwargs)

    def render(self) -> np.ndarray | None:  # type: ignore[override]  # batched frames
        if self.render_mode != "rgb_array":
            return None
        return render_frames(self.sim.core, self.state, np.arange(self.num_envs))

    # -- the multi-agent view (envs/multiagent.py:MultiAgentCore): one agent per intersection ----------------
    @property
    def num_agents(self) -> int:
        return self.net.num_nodes

    @property
    def agent_observation_space(self) -> gym.spaces.Box:
        low = _obs_low(self.sim.pressure_obs, self.sim.neighbour_obs)
        return gym.spaces.Box(low, np.ones_like(low), dtype=np.float32)

    @property
    def agent_action_space(self) -> gym.spaces.Discrete:
        return gym.spaces.Discrete(4)

    @property
    def agent_features(self) -> np.ndarray:
        """(K, K + 2): one-hot intersection id, then its (row, col) position scaled to [0, 1]."""
        K, net = self.net.num_nodes, self.net
        rc = np.stack([np.arange(K) // net.cols / max(net.rows - 1, 1), np.arange(K) % net.cols / max(net.cols - 1, 1)], 1)
        return np.concatenate([np.eye(K), rc], axis=1).astype(np.float32)

    def agent_info(self, rewards: np.ndarray | None = None) -> dict[str, Any]:
        """Network metrics per env (N,) and per-intersection metrics (N, K)."""
        core, st = self.sim.core, self.state
        info: dict[str, Any] = dict(core.metrics(st))
        info["agent_queue"] = st.queue.reshape(self.num_envs, -1, 12).sum(axis=2).astype(np.float64)
        info["agent_waiting_time"] = st.node_stopped_s / np.maximum(st.generated[:, None], 1)
        info["agent_pressure"] = core.pressure(st).astype(np.float64)
        if rewards is not None:
            info["agent_reward"] = rewards
        return info

    def reset_agents(self, seed: int | list[int] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if self.obs_mode != "vector":
            raise ScenarioError("The multi-agent view reads vector observations; use obs_mode='vector'.")
        obs, _ = self.reset(seed=seed)
        return obs.reshape(self.num_envs, self.num_agents, -1), self.agent_info()

    def step_agents(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, _, terminated, truncated, info = self.step(np.asarray(actions, dtype=np.int64).reshape(self.num_envs, -1))
        rewards = info["agent_rewards"]
        return obs.reshape(self.num_envs, self.num_agents, -1), rewards, terminated, truncated, self.agent_info(rewards)


def make_shared_vector_env(num_envs: int, **kwargs: Any) -> gym.vector.VectorEnv:
    """Parameter-sharing view: one row per intersection; `num_envs` rows = networks x intersections."""
    from rlsuite.envs.multiagent import SharedAgentsVectorEnv

    kwargs.pop("render_mode", None)
    agents = load_network(kwargs.get("scenario", "grid2x2")).num_nodes
    if num_envs % agents:
        raise ScenarioError(f"The shared-policy traffic env has one row per intersection: num_envs (n_envs) must be "
                            f"a multiple of {agents}, the scenario's intersections; got {num_envs}.")
    # TrafficGridVectorEnv provides MultiAgentCore's members as read-only properties
    return SharedAgentsVectorEnv(cast("MultiAgentCore", TrafficGridVectorEnv(num_envs // agents, **kwargs)))


def make_shared_env(**kwargs: Any) -> gym.Env:
    """The shared-policy game as one env (agents act in turn): what gym.make of a shared id builds."""
    from rlsuite.envs.multiagent import TurnTakingEnv

    render_mode = kwargs.pop("render_mode", None)
    core = TrafficGridVectorEnv(1, render_mode=render_mode, **kwargs)
    return TurnTakingEnv(cast("MultiAgentCore", core), render_mode)  # read-only properties


# The shared ids forward **kwargs to TrafficGridVectorEnv: declare the keywords (the single env's), so that the
# factory can check and type command-line env kwargs (`rlsuite train --env-kwarg profile=held_out`).
make_shared_env.__signature__ = inspect.signature(TrafficGridEnv, eval_str=True)  # type: ignore[attr-defined]
