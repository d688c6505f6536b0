"""The one vector base of rlsuite's NumPy envs: seeding by row, autoreset, episode statistics, state capture.

An env family writes a *core* (`VectorCore`): the state of N rows as arrays and a step made of array
operations. `NumpyVectorEnv(core, ...)` turns a core of N rows into a Gymnasium vector env and
`CoreEnv` turns a core of one row into the single env, so row i of a vector env reset with seed s is a
single env reset with seed s + i by construction (tests/test_env_rows.py checks it for every id).

| what | how |
| --- | --- |
| seeding | `reset(seed=s)` gives row i its own generator, made as `gym.Env.reset(seed=s + i)` makes one (or from the i-th seed of a list) |
| partial reset | `reset(options={"reset_mask": mask})` resets only the masked rows |
| autoreset | next-step (default: the step after an episode ends ignores its action and returns the reset observation, reward 0, not done) or same-step (`autoreset_mode="same_step"`: the reset observation at once, the last one in `info["final_obs"]`) |
| episode statistics | with `episode_statistics=True`, `info["episode"] = {"r", "l", "t"}` and `info["_episode"]` on the step an episode ends, as Gymnasium's `RecordEpisodeStatistics` |
| state | `get_state()` captures the core's state arrays, the base's bookkeeping and every row's generator state as an `EnvState` (NumPy arrays plus JSON-able values, nothing pickled); `set_state` restores it exactly |
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

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
    """What an env family writes: N rows of state and their step, in array operations.

    `STATE` names the attributes that hold the physical state (arrays with the rows first, or per-row
    scalars); everything else on a core is parameters, derived constants, caches or scratch buffers."""

    STATE: ClassVar[tuple[str, ...]]
    num_envs: int

    def reset_rows(self, rows: np.ndarray, rngs: Sequence[np.random.Generator]) -> None:
        """Start fresh episodes in `rows`, drawing row `rows[j]`'s randomness from `rngs[j]` only."""

    def observe(self) -> Any:
        """The observations of every row: an (N, ...) array or a dict of them."""

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, Info]:
        """Advance every row: rewards (N,), terminated (N,), truncated (N,) and info arrays (N, ...)."""

    def reset_info(self) -> Info:
        """Info arrays (N, ...) that describe freshly reset rows (taken for the rows just reset)."""


def capture(core: Any) -> dict[str, np.ndarray]:
    """Copies of the core's `STATE` arrays (dotted names reach into dicts of arrays)."""
    out: dict[str, np.ndarray] = {}
    for name in core.STATE:
        out[name] = np.array(_get(core, name), copy=True)
    return out


def restore(core: Any, arrays: dict[str, np.ndarray]) -> None:
    """Write captured `STATE` arrays back into the core (in place, so views of them stay valid)."""
    missing = [name for name in core.STATE if name not in arrays]
    if missing:
        raise ValueError(f"the saved env state lacks {', '.join(missing)}; it was saved from another env.")
    for name in core.STATE:
        target = _get(core, name)
        value = np.asarray(arrays[name])
        if isinstance(target, np.ndarray):
            if target.shape != value.shape:
                raise ValueError(f"the saved env state's {name} has shape {value.shape}, this env's {target.shape}: "
                                 "restore into an env built with the same settings and number of envs.")
            target[...] = value
        else:
            _set(core, name, value.item() if value.ndim == 0 else value)
    if hasattr(core, "state_restored"):
        core.state_restored()


def _get(core: Any, name: str) -> Any:
    """`a.b.c`: attributes, or keys of dicts along the way."""
    value = core
    for part in name.split("."):
        value = value[part] if isinstance(value, dict) else getattr(value, part)
    return value


def _set(core: Any, name: str, value: Any) -> None:
    head, _, last = name.rpartition(".")
    owner = _get(core, head) if head else core
    if isinstance(owner, dict):
        owner[last] = value
    else:
        setattr(owner, last, value)


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
        return self.core.observe(), self.core.reset_info()

    def _reset(self, rows: np.ndarray) -> None:
        self.core.reset_rows(rows, [self._rngs[i] for i in rows])
        self._return[rows], self._length[rows], self._start[rows] = 0.0, 0, time.perf_counter()

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        rewards, terminated, truncated, info = self.core.step(actions)
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            restarting = np.flatnonzero(self._needs_reset)
            if restarting.size:  # these rows ignore their action and start afresh
                self._reset(restarting)
                rewards[restarting] = 0.0
                terminated[restarting] = truncated[restarting] = False
                fresh = self.core.reset_info()
                for key, values in info.items():
                    if key in fresh:
                        values[restarting] = fresh[key][restarting]
                    else:
                        values[restarting] = 0
            done = terminated | truncated
            self._needs_reset = done
            info = self._statistics(info, rewards, done, ~self._pending(restarting))
            obs = self.core.observe()
        else:
            done = terminated | truncated
            info = self._statistics(info, rewards, done, np.ones(self.num_envs, dtype=bool))
            obs = self.core.observe()
            finished = np.flatnonzero(done)
            if finished.size:
                final_obs = np.empty(self.num_envs, dtype=object)
                for i in finished:
                    final_obs[i] = index_obs(obs, int(i))
                info = {**info, "final_obs": final_obs, "_final_obs": done, "final_info": dict(info),
                        "_final_info": done}
                self._reset(finished)
                obs = self.core.observe()
                fresh = self.core.reset_info()
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
        arrays = {f"core.{k}": v for k, v in capture(self.core).items()}
        arrays.update({"vector.needs_reset": self._needs_reset.copy(), "vector.return": self._return.copy(),
                       "vector.length": self._length.copy()})
        meta = {"rngs": [generator_state(rng) for rng in self._rngs], "autoreset_mode": self.autoreset_mode.value,
                "num_envs": self.num_envs}
        return EnvState(arrays, meta)

    def set_state(self, state: EnvState) -> None:
        if state.meta.get("num_envs") != self.num_envs:
            raise ValueError(f"the saved env state has {state.meta.get('num_envs')} envs, this env {self.num_envs}.")
        restore(self.core, {k.removeprefix("core."): v for k, v in state.arrays.items() if k.startswith("core.")})
        self._needs_reset = np.array(state.arrays["vector.needs_reset"], dtype=bool)
        self._return = np.array(state.arrays["vector.return"], dtype=np.float64)
        self._length = np.array(state.arrays["vector.length"], dtype=np.int64)
        self._rngs = [generator_from_state(s) for s in state.meta["rngs"]]


class CoreEnv(gym.Env):
    """A core of one row as a Gymnasium env: reset draws from `np_random`, step is the core's step on a
    batch of one. Env families subclass it to build their core and spaces."""

    metadata: dict[str, Any] = {"render_modes": []}
    core: Any

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.core.reset_rows(np.zeros(1, dtype=np.int64), [self.np_random])
        self.last_reward = 0.0
        return index_obs(self.core.observe(), 0), scalar_info(self.core.reset_info())

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        rewards, terminated, truncated, info = self.core.step(np.asarray(action)[None])
        self.last_reward = float(rewards[0])
        return (index_obs(self.core.observe(), 0), self.last_reward, bool(terminated[0]), bool(truncated[0]),
                scalar_info(info))

    def get_state(self) -> EnvState:
        """The core's state arrays and `np_random`'s state (see NumpyVectorEnv.get_state)."""
        return EnvState({f"core.{k}": v for k, v in capture(self.core).items()},
                        {"rngs": [generator_state(self.np_random)], "num_envs": 1})

    def set_state(self, state: EnvState) -> None:
        restore(self.core, {k.removeprefix("core."): v for k, v in state.arrays.items() if k.startswith("core.")})
        self._np_random = generator_from_state(state.meta["rngs"][0])
