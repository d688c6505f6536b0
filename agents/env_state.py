"""A training vector env's state, captured for exact resume and written back into a fresh env.

Captured exactly: rlsuite's NumPy envs (`NumpyVectorEnv.get_state`), Gymnasium's vectorised CartPole, and a
`SyncVectorEnv` of Gymnasium's classic-control envs (each env's physical `state`, its `np_random` bit-generator
state, TimeLimit's elapsed steps and the vector env's pending autoresets), with or without Gymnasium's
`RecordEpisodeStatistics` around them. Anything else (the ALE, async workers, box2d, mujoco) raises
`NotCapturable` with the reason; a run on it resumes inexactly.

A state is a tree of dicts and lists whose leaves are NumPy arrays or JSON values; `agents/checkpoint.py`'s
`pack_tree` stores the arrays as tensors and the rest as JSON, nothing pickled.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from rlsuite.envs.vector import EnvState, NumpyVectorEnv, generator_from_state, generator_state

# Gymnasium's classic-control envs and the attributes that hold their state (render-only fields left out).
_CLASSIC_ENVS = {
    "CartPoleEnv": ("state", "steps_beyond_terminated"),
    "AcrobotEnv": ("state",),
    "MountainCarEnv": ("state",),
    "Continuous_MountainCarEnv": ("state",),
    "PendulumEnv": ("state", "last_u"),
}
_CLASSIC_VECTOR_ENVS = {"CartPoleVectorEnv": ("state", "steps", "prev_done", "low", "high", "steps_beyond_terminated")}


ALE_REASON = ("the ALE's state is not captured: ale-py's vectorised emulators (C++ worker threads) expose no state "
              "capture, and although ale-py serialises one emulator (ALEState.serialize), the preprocessing's frame "
              "stacks, max-pool buffers, no-op and life counters would need capturing too")


class NotCapturable(Exception):
    """The env's state cannot be captured; the message says why (it goes into the manifest)."""


def _value(x: Any) -> Any:
    """An attribute as a tree leaf: arrays copied, tuples as arrays, NumPy scalars as Python numbers."""
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, tuple):
        return np.asarray(x)
    if isinstance(x, np.generic):
        return x.item()
    return x


def _attrs(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _value(getattr(obj, name)) for name in names if hasattr(obj, name)}


def _set_attrs(obj: Any, values: dict[str, Any]) -> None:
    for name, value in values.items():
        current = getattr(obj, name, None)
        if isinstance(value, np.ndarray) and isinstance(current, tuple):
            value = tuple(value.tolist())
        elif isinstance(value, np.ndarray):
            value = value.copy()
        setattr(obj, name, value)


def _single_env_state(env: gym.Env) -> dict[str, Any]:
    """One Gymnasium classic-control env through its wrappers: the env's state, np_random, elapsed steps."""
    out: dict[str, Any] = {"wrappers": []}
    layer: Any = env
    while isinstance(layer, gym.Wrapper):
        out["wrappers"].append(_attrs(layer, ("_elapsed_steps", "_has_reset")))
        layer = layer.env
    name = type(layer).__name__
    if name not in _CLASSIC_ENVS:
        raise NotCapturable(f"{name} is not one of Gymnasium's classic-control envs, whose state rlsuite captures")
    out["env"] = _attrs(layer, _CLASSIC_ENVS[name])
    out["np_random"] = generator_state(layer.np_random)
    return out


def _set_single_env_state(env: gym.Env, state: dict[str, Any]) -> None:
    layer: Any = env
    for values in state["wrappers"]:
        _set_attrs(layer, values)
        layer = layer.env
    _set_attrs(layer, state["env"])
    layer._np_random = generator_from_state(state["np_random"])


def env_state(envs: gym.vector.VectorEnv) -> dict[str, Any]:
    """The vector env's whole state as a tree (module docstring); NotCapturable says why not."""
    if _is_atari(envs):
        raise NotCapturable(ALE_REASON)
    if isinstance(envs, gym.wrappers.vector.RecordEpisodeStatistics):
        stats = _attrs(envs, ("episode_count", "episode_returns", "episode_lengths", "prev_dones"))
        stats["return_queue"] = [float(x) for x in envs.return_queue]
        stats["length_queue"] = [int(x) for x in envs.length_queue]
        stats["time_queue"] = [float(x) for x in envs.time_queue]
        return {"record_episode_statistics": stats, "inner": env_state(envs.env)}
    if isinstance(envs, NumpyVectorEnv):
        captured = envs.get_state()
        return {"numpy_vector_env": {"arrays": captured.arrays, "meta": captured.meta}}
    name = type(envs).__name__
    if name in _CLASSIC_VECTOR_ENVS:
        return {"classic_vector_env": {**_attrs(envs, _CLASSIC_VECTOR_ENVS[name]),
                                       "np_random": generator_state(envs.np_random)}}
    if isinstance(envs, gym.vector.SyncVectorEnv):
        return {"sync_vector_env": {"autoreset_envs": envs._autoreset_envs.copy(),
                                    "envs": [_single_env_state(env) for env in envs.envs]}}
    raise NotCapturable(f"the state of a {name} cannot be captured (rlsuite captures its own NumPy envs and "
                        "Gymnasium's classic-control envs)")


def _is_atari(envs: gym.vector.VectorEnv) -> bool:
    layers: list[Any] = [envs, envs.unwrapped]
    if isinstance(envs.unwrapped, gym.vector.SyncVectorEnv) and envs.unwrapped.envs:
        layers.append(envs.unwrapped.envs[0].unwrapped)
    return any("atari" in type(layer).__name__.lower() or type(layer).__module__.startswith("ale_py") for layer in layers)


def set_env_state(envs: gym.vector.VectorEnv, state: dict[str, Any]) -> None:
    """Write a tree from `env_state` back into an env built with the same id, settings and number of envs."""
    if "record_episode_statistics" in state:
        assert isinstance(envs, gym.wrappers.vector.RecordEpisodeStatistics)
        stats = dict(state["record_episode_statistics"])
        for name in ("return_queue", "length_queue", "time_queue"):
            queue: deque[Any] = getattr(envs, name)
            queue.clear()
            queue.extend(stats.pop(name))
        _set_attrs(envs, stats)
        set_env_state(envs.env, state["inner"])
    elif "numpy_vector_env" in state:
        assert isinstance(envs, NumpyVectorEnv)
        saved = state["numpy_vector_env"]
        envs.set_state(EnvState(dict(saved["arrays"]), dict(saved["meta"])))
    elif "classic_vector_env" in state:
        values = dict(state["classic_vector_env"])
        envs.unwrapped._np_random = generator_from_state(values.pop("np_random"))
        _set_attrs(envs, values)
    elif "sync_vector_env" in state:
        assert isinstance(envs, gym.vector.SyncVectorEnv)
        saved = state["sync_vector_env"]
        envs._autoreset_envs = np.array(saved["autoreset_envs"], dtype=bool)
        for env, env_saved in zip(envs.envs, saved["envs"], strict=True):
            _set_single_env_state(env, env_saved)
    else:
        raise NotCapturable(f"the saved env state has an unknown layout ({sorted(state)})")


def capture_problem(envs: gym.vector.VectorEnv) -> str | None:
    """None when the env's state can be captured, else why not (checked once, at the start of training)."""
    try:
        env_state(envs)
    except NotCapturable as err:
        return str(err)
    return None
