"""The one vector base of rlsuite's NumPy envs: seeding by row, autoreset, episode statistics, state capture.

An env family writes a *core* (`VectorCore`): the step of N rows in array operations, as a function of
their `State` (a dataclass of arrays; as in gymnax, parameters and caches live on the core, the state
apart). `NumpyVectorEnv(core, ...)` turns a core of N rows into a Gymnasium vector env and `CoreEnv` turns a core of one row into the single env, so row i of a vector env reset with seed s is a
single env reset with seed s + i by construction (tests/test_env_rows.py checks it for every id).

| what | how |
| --- | --- |
| seeding | `reset(seed=s)` gives row i its own generator, made as `gym.Env.reset(seed=s + i)` makes one (or from the i-th seed of a list) |
| partial reset | `reset(options={"reset_mask": mask})` resets only the masked rows |
| autoreset | next-step (default: the step after an episode ends ignores its action and returns the reset observation, reward 0, not done) or same-step (`autoreset_mode="same_step"`: the reset observation at once, the last one in `info["final_obs"]`) |
| episode statistics | with `episode_statistics=True`, `info["episode"] = {"r", "l", "t"}` and `info["_episode"]` on the step an episode ends, as Gymnasium's `RecordEpisodeStatistics` |
| state | `env.state` is the State of every row; `get_state()` captures its arrays, the base's bookkeeping and every row's generator state as an `EnvState` (NumPy arrays plus JSON-able values, nothing pickled); `set_state` restores it exactly |
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

Info = dict[str, np.ndarray]


def row_seeds(seed: int | Sequence[int | None], num_envs: int) -> list[int | None]:
    """The seed of each row: seed + i, or the sequence as given (one per row)."""
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(num_envs)]
    seeds = [None if s is None else int(s) for s in seed]
    if len(seeds) != num_envs:
        raise ValueError(f"reset got {len(seeds)} seeds for {num_envs} envs; pass an int or one seed per env.")
    return seeds


def row_generator(seed: int | None) -> np.random.Generator:
    """A generator made exactly as `gym.Env.reset(seed=seed)` makes `np_random`."""
    return gym.utils.seeding.np_random(seed)[0]


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """The generator's bit-generator state: a JSON-able dict (Python ints and strings)."""
    return dict(rng.bit_generator.state)


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


class VectorCore(Protocol):
    """What an env family writes: the step of N rows in array operations, as a function of their state.

    A core holds the parameters, derived constants, caches and scratch buffers, never the state: that is a
    `State` dataclass of arrays (rows first) made by `init_state` and passed to every call, which updates it
    in place (new arrays per step would cost more than the step at a few rows). Caches a core keeps between
    calls are keyed by the identity of the state's arrays, so a restored state (new arrays) misses them."""

    num_envs: int

    def init_state(self) -> Any:
        """The `State` of `num_envs` rows, before any reset."""

    def reset_rows(self, state: Any, rows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Start fresh episodes in `rows`, drawing row `rows[j]`'s randomness from `rngs[j]` only."""

    def observe(self, state: Any) -> Any:
        """The observations of every row: an (N, ...) array or a dict of them."""

    def step(self, state: Any, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, Info]:
        """Advance every row of `state`: rewards (N,), terminated (N,), truncated (N,), info arrays (N, ...)."""

    def reset_info(self, state: Any) -> Info:
        """Info arrays (N, ...) that describe freshly reset rows (taken for the rows just reset)."""


def capture(state: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Copies of a State's arrays by field name (a nested State's fields as `outer.inner`)."""
    out: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if dataclasses.is_dataclass(value):
            out.update(capture(value, f"{prefix}{f.name}."))
        elif value is not None:  # an optional part this env does not have (e.g. frames without pixels)
            out[prefix + f.name] = np.array(value, copy=True)
    return out


def restore(like: Any, arrays: dict[str, np.ndarray], prefix: str = "") -> Any:
    """A new State of `like`'s type from captured arrays (copied), checked against `like`'s shapes."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(like):
        current, name = getattr(like, f.name), prefix + f.name
        if dataclasses.is_dataclass(current) or current is None:
            values[f.name] = None if current is None else restore(current, arrays, name + ".")
            continue
        if name not in arrays:
            raise ValueError(f"the saved env state lacks {name}; it was saved from another env.")
        value, target = np.asarray(arrays[name]), np.asarray(current)
        if target.shape != value.shape:
            raise ValueError(f"the saved env state's {name} has shape {value.shape}, this env's {target.shape}: "
                             "restore into an env built with the same settings and number of envs.")
        value = value.astype(target.dtype, copy=True)
        values[f.name] = value if isinstance(current, np.ndarray) else value.item()
    return type(like)(**values)


@dataclass
class EnvState:
    """An env's whole state, pickle-free: `arrays` (NumPy arrays, e.g. for np.savez or safetensors) and
    `meta` (JSON-able: the generators' states and the autoreset mode)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def index_obs(obs: Any, i: int | np.ndarray) -> Any:
    """Row(s) i of batched observations (an array or a dict of arrays)."""
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def _set_rows(obs: Any, rows: np.ndarray, value: Any) -> None:
    if isinstance(obs, dict):
        for k in obs:
            obs[k][rows] = value[k][rows]
    else:
        obs[rows] = value[rows]


def scalar_info(info: Info, row: int = 0) -> dict[str, Any]:
    """One row of batched info: Python scalars, or array copies for per-row arrays."""
    out: dict[str, Any] = {}
    for k, v in info.items():
        value = v[row]
        out[k] = value.copy() if isinstance(value, np.ndarray) else value.item() if hasattr(value, "item") else value
    return out


class NumpyVectorEnv(gym.vector.VectorEnv):
    """A core of N rows as a Gymnasium vector env (module docstring); env families subclass it to build
    their core and spaces, and add nothing to reset or step."""

    metadata: dict[str, Any] = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP,
                                "supports_reset_mask": True}

    def __init__(self, core: Any, single_observation_space: gym.Space, single_action_space: gym.Space, *,
                 render_mode: str | None = None, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 episode_statistics: bool = False) -> None:
        names = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}
        mode = names.get(autoreset_mode, autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        if mode not in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
            raise ValueError(f"autoreset_mode must be 'next_step' or 'same_step', got {autoreset_mode!r}.")
        if render_mode is not None and render_mode not in self.metadata.get("render_modes", []):
            raise ValueError(f"render_mode must be None or one of {self.metadata.get('render_modes', [])}, got {render_mode!r}.")
        self.metadata = {**self.metadata, "autoreset_mode": mode, "supports_reset_mask": True}
        self.core, self.num_envs, self.autoreset_mode = core, core.num_envs, mode
        self.state = core.init_state()
        self.render_mode = render_mode
        self.single_observation_space, self.single_action_space = single_observation_space, single_action_space
        self.observation_space = batch_space(single_observation_space, self.num_envs)
        self.action_space = batch_space(single_action_space, self.num_envs)
        self.episode_statistics = episode_statistics
        self._rngs = [np.random.default_rng() for _ in range(self.num_envs)]
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)  # next-step autoreset pending
        self._return = np.zeros(self.num_envs)  # episode statistics
        self._length = np.zeros(self.num_envs, dtype=np.int64)
        self._start = np.zeros(self.num_envs)
        self.last_rewards = np.zeros(self.num_envs)  # for renderers that caption the reward

    # ---- reset and step ----------------------------------------------------------------------------
    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        mask = (options or {}).get("reset_mask")
        rows = np.arange(self.num_envs) if mask is None else np.flatnonzero(mask)
        if seed is not None:
            seeds = row_seeds(seed, self.num_envs)
            for i in rows:  # row i's generator is the one a single env reset with seed + i would make
                self._rngs[i] = row_generator(seeds[i])
        self._reset(rows)
        self._needs_reset[rows] = False
        self.last_rewards[rows] = 0.0
        return self.core.observe(self.state), self.core.reset_info(self.state)

    def _reset(self, rows: np.ndarray) -> None:
        self.core.reset_rows(self.state, rows, [self._rngs[i] for i in rows])
        self._return[rows], self._length[rows], self._start[rows] = 0.0, 0, time.perf_counter()

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        rewards, terminated, truncated, info = self.core.step(self.state, actions)
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            restarting = np.flatnonzero(self._needs_reset)
            if restarting.size:  # these rows ignore their action and start afresh
                self._reset(restarting)
                rewards[restarting] = 0.0
                terminated[restarting] = truncated[restarting] = False
                fresh = self.core.reset_info(self.state)
                for key, values in info.items():
                    if key in fresh:
                        values[restarting] = fresh[key][restarting]
                    else:
                        values[restarting] = 0
            done = terminated | truncated
            self._needs_reset = done
            info = self._statistics(info, rewards, done, ~self._pending(restarting))
            obs = self.core.observe(self.state)
        else:
            done = terminated | truncated
            info = self._statistics(info, rewards, done, np.ones(self.num_envs, dtype=bool))
            obs = self.core.observe(self.state)
            finished = np.flatnonzero(done)
            if finished.size:
                final_obs = np.empty(self.num_envs, dtype=object)
                for i in finished:
                    final_obs[i] = index_obs(obs, int(i))
                info = {**info, "final_obs": final_obs, "_final_obs": done, "final_info": dict(info),
                        "_final_info": done}
                self._reset(finished)
                obs = self.core.observe(self.state)
                fresh = self.core.reset_info(self.state)
                for key, values in fresh.items():  # the reset rows' info describes their new episode
                    if key in info:
                        info[key] = np.array(info[key], copy=True)
                        info[key][finished] = values[finished]
        self.last_rewards = rewards.copy()
        return obs, rewards, terminated, truncated, info

    def _pending(self, restarting: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[restarting] = True
        return mask

    def _statistics(self, info: Info, rewards: np.ndarray, done: np.ndarray, counted: np.ndarray) -> dict[str, Any]:
        """Count the step into the episode statistics (rows in `counted`), and report finished episodes."""
        if not self.episode_statistics:
            return info
        self._return += np.where(counted, rewards, 0.0)
        self._length += counted
        if not done.any():
            return info
        elapsed = np.round(time.perf_counter() - self._start, 6)
        out: dict[str, Any] = dict(info)
        out["episode"] = {"r": np.where(done, self._return, 0.0), "l": np.where(done, self._length, 0),
                          "t": np.where(done, elapsed, 0.0)}
        out["_episode"] = done.copy()
        return out

    # ---- state capture ------------------------------------------------------------------------------
    def get_state(self) -> EnvState:
        """Everything the next steps depend on (module docstring); `set_state` on an env built with the same
        settings and number of envs continues exactly where this one is."""
        arrays = {f"core.{k}": v for k, v in capture(self.state).items()}
        arrays.update({"vector.needs_reset": self._needs_reset.copy(), "vector.return": self._return.copy(),
                       "vector.length": self._length.copy()})
        meta = {"rngs": [generator_state(rng) for rng in self._rngs], "autoreset_mode": self.autoreset_mode.value,
                "num_envs": self.num_envs}
        return EnvState(arrays, meta)

    def set_state(self, state: EnvState) -> None:
        if state.meta.get("num_envs") != self.num_envs:
            raise ValueError(f"the saved env state has {state.meta.get('num_envs')} envs, this env {self.num_envs}.")
        self.state = restore(self.state, {k.removeprefix("core."): v for k, v in state.arrays.items() if k.startswith("core.")})
        self._needs_reset = np.array(state.arrays["vector.needs_reset"], dtype=bool)
        self._return = np.array(state.arrays["vector.return"], dtype=np.float64)
        self._length = np.array(state.arrays["vector.length"], dtype=np.int64)
        self._rngs = [generator_from_state(s) for s in state.meta["rngs"]]


class CoreEnv(gym.Env):
    """A core of one row as a Gymnasium env: reset draws from `np_random`, step is the core's step on a
    batch of one. Env families subclass it to build their core and spaces."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, core: Any) -> None:
        self.core, self.state = core, core.init_state()
        self.last_reward = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.core.reset_rows(self.state, np.zeros(1, dtype=np.int64), [self.np_random])
        self.last_reward = 0.0
        return index_obs(self.core.observe(self.state), 0), scalar_info(self.core.reset_info(self.state))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        rewards, terminated, truncated, info = self.core.step(self.state, np.asarray(action)[None])
        self.last_reward = float(rewards[0])
        return (index_obs(self.core.observe(self.state), 0), self.last_reward, bool(terminated[0]), bool(truncated[0]),
                scalar_info(info))

    def get_state(self) -> EnvState:
        """The State's arrays and `np_random`'s state (see NumpyVectorEnv.get_state)."""
        return EnvState({f"core.{k}": v for k, v in capture(self.state).items()},
                        {"rngs": [generator_state(self.np_random)], "num_envs": 1})

    def set_state(self, state: EnvState) -> None:
        self.state = restore(self.state, {k.removeprefix("core."): v for k, v in state.arrays.items() if k.startswith("core.")})
        self._np_random = generator_from_state(state.meta["rngs"][0])
