"""A Stable-Baselines3 `VecEnv` over our Gymnasium vector envs, with SB3's same-step autoreset.

SB3 expects the reset observation of a finished sub-env in the same `step` that ended its episode, and
the episode's last observation in `infos[i]["terminal_observation"]` (DummyVecEnv's contract). Our vector
envs use next-step autoreset (envs/factory.py). The adapter bridges the two without stepping anything
twice: after a step where some rows are done, it resets exactly those rows with Gymnasium 1.x's partial
reset, `reset(options={"reset_mask": done})`, so they start their next episode at once and their
`next-step` reset never happens.

Which vector envs can do a partial reset: Gymnasium's SyncVectorEnv and AsyncVectorEnv, and our natively
vectorised cores that declare `metadata["supports_reset_mask"] = True` (rlsuite/MemoryCue-v0 does).
`make_sb3_vec_env` takes the native core when it can and otherwise SyncVectorEnv, i.e. all copies in
this process, never one process per copy.

Each finished episode also gets `infos[i]["episode"] = {"r", "l", "t"}` (SB3's Monitor keys), which is
what SB3's `ep_info_buffer` and its `rollout/ep_rew_mean` read, and is queued for our metric logger.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, SupportsIndex, cast

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from rlsuite.envs import EnvError, check_env_id, make_vec_env

if TYPE_CHECKING:
    from rlsuite.envs.factory import VectorMode

__all__ = ["SB3VecEnv", "make_sb3_vec_env", "supports_reset_mask"]


def supports_reset_mask(envs: gym.vector.VectorEnv) -> bool:
    """True when `envs.reset(options={"reset_mask": mask})` resets only the masked rows."""
    base = envs.unwrapped
    if isinstance(base, gym.vector.SyncVectorEnv | gym.vector.AsyncVectorEnv):
        return True
    return bool(base.metadata.get("supports_reset_mask", False))


def _row(obs: Any, i: SupportsIndex) -> Any:
    """Sub-env i's observation (a copy, so later steps cannot change it)."""
    if isinstance(obs, Mapping):
        return {key: np.array(value[i]) for key, value in obs.items()}
    return np.array(obs[i])


def _split_info(info: Mapping[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's batched info (arrays plus `_key` masks) as one dict per sub-env, like DummyVecEnv's."""
    out: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, values in info.items():
        if key.startswith("_"):
            continue
        mask = info.get(f"_{key}")
        for i in range(num_envs):
            if mask is not None and not mask[i]:
                continue
            if isinstance(values, Mapping):
                nested = _split_info(values, num_envs)[i]
                if nested:
                    out[i][key] = nested
            else:
                out[i][key] = values[i]
    return out


class SB3VecEnv(VecEnv):
    """SB3's VecEnv interface over a Gymnasium vector env that can reset single rows."""

    def __init__(self, envs: gym.vector.VectorEnv) -> None:
        if not supports_reset_mask(envs):
            raise EnvError(
                f"{type(envs.unwrapped).__name__} cannot reset single sub-envs (options['reset_mask']), which SB3's "
                "same-step autoreset needs; build it with vectorization 'sync', or give the core partial resets "
                "and metadata['supports_reset_mask'] = True."
            )
        self.envs = envs
        super().__init__(envs.num_envs, envs.single_observation_space, envs.single_action_space)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._start = time.perf_counter()
        self.finished_episodes: list[tuple[float, int]] = []
        """(return, length) of every episode ended since the last `pop_finished_episodes`."""

    def reset(self) -> Any:
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options[0] or None  # SB3 sets the same options for every row
        obs, info = self.envs.reset(seed=cast(Any, seeds), options=options)  # one seed per row
        self.reset_infos = _split_info(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_async must come before step_wait"
        obs, rewards, terminated, truncated, info = self.envs.step(self._actions)
        dones = np.logical_or(terminated, truncated)  # (N,) bool
        infos = _split_info(info, self.num_envs)
        self._returns += rewards
        self._lengths += 1
        for i in range(self.num_envs):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        done_rows = np.flatnonzero(dones)
        if len(done_rows):
            for row in done_rows:
                infos[row]["terminal_observation"] = _row(obs, row)
                episode = (float(self._returns[row]), int(self._lengths[row]))
                infos[row]["episode"] = {"r": episode[0], "l": episode[1],
                                         "t": round(time.perf_counter() - self._start, 6)}
                self.finished_episodes.append(episode)
            self._returns[done_rows] = 0.0
            self._lengths[done_rows] = 0
            reset_obs, reset_info = self.envs.reset(options={"reset_mask": dones.astype(bool)})
            obs = self._merge(obs, reset_obs, dones)
            reset_infos = _split_info(reset_info, self.num_envs)
            for row in done_rows:
                self.reset_infos[row] = reset_infos[row]
        return obs, np.asarray(rewards, dtype=np.float32), dones.astype(bool), infos

    @staticmethod
    def _merge(obs: Any, reset_obs: Any, rows: np.ndarray) -> Any:
        """`obs` with the rows in `rows` replaced by the reset observations."""
        if isinstance(obs, Mapping):
            return {key: np.where(rows.reshape((-1,) + (1,) * (np.ndim(value) - 1)), reset_obs[key], value)
                    for key, value in obs.items()}
        mask = rows.reshape((-1,) + (1,) * (np.ndim(obs) - 1))
        return np.where(mask, reset_obs, obs).astype(np.asarray(obs).dtype, copy=False)

    def pop_finished_episodes(self) -> list[tuple[float, int]]:
        episodes, self.finished_episodes = self.finished_episodes, []
        return episodes

    def close(self) -> None:
        self.envs.close()

    # --- attribute access: the vector env is one object, so every row sees the same attribute ------------

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            value = getattr(self.envs, "render_mode", None)
        else:
            value = getattr(self.envs.unwrapped, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.envs.unwrapped, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any) -> list[Any]:
        result = getattr(self.envs.unwrapped, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        frames = self.envs.render()
        return list(cast("Sequence[np.ndarray]", frames)) if frames is not None else [None] * self.num_envs


def make_sb3_vec_env(env_id: str, num_envs: int, mode: str = "auto", preset: str = "",
                     env_kwargs: Mapping[str, Any] | None = None) -> SB3VecEnv:
    """An SB3VecEnv for `env_id`: the env's native core when it supports partial resets, else sync."""
    spec = check_env_id(env_id)
    if mode in ("auto", "vector_entry_point") and spec.vector_entry_point is not None:
        envs = make_vec_env(env_id, num_envs, mode="vector_entry_point", record_stats=False, preset=preset,
                            **dict(env_kwargs or {}))
        if supports_reset_mask(envs):
            return SB3VecEnv(envs)
        envs.close()
        if mode == "vector_entry_point":
            raise EnvError(
                f"{env_id}'s vectorised core cannot reset single sub-envs, which SB3 agents need; "
                "use --set vectorization=sync (or auto)."
            )
    elif mode == "vector_entry_point":
        raise EnvError(f"{env_id} has no natively vectorised core; use vectorization 'sync', 'async' or 'auto'.")
    vec_mode = cast("VectorMode", "sync" if mode == "auto" else mode)
    return SB3VecEnv(make_vec_env(env_id, num_envs, mode=vec_mode, record_stats=False,
                                  preset=preset, **dict(env_kwargs or {})))
