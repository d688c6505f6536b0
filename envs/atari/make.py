"""Building preprocessed Atari envs: one (`make_atari`) or a vector env (`make_atari_env`)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.vector import AutoresetMode

from rlsuite.envs.atari.native import AtariNativeVectorEnv
from rlsuite.envs.atari.presets import (
    DEFAULT_PRESET,
    AtariError,
    AtariPreset,
    Purpose,
    _check_purpose,
    _native_vector_ok,
    get_preset,
)
from rlsuite.envs.atari.wrappers import (
    ClipReward,
    EpisodicLife,
    FireReset,
    FrameStack,
    GameStatistics,
    MaxAndSkip,
    NoopReset,
    WarpFrame,
    needs_fire,
)
from rlsuite.envs.atari_scores import is_atari_id


def _ale_kwargs(p: AtariPreset) -> dict[str, Any]:
    return {
        "frameskip": 1,  # our MaxAndSkip does the skipping, with max pooling
        "repeat_action_probability": p.sticky_prob,
        "full_action_space": p.full_action_space,
        "max_num_frames_per_episode": p.max_frames,
        "obs_type": "grayscale" if p.grayscale_source == "ale" else "rgb",
    }


def _check_atari_id(env_id: str) -> None:
    if not is_atari_id(env_id):
        raise AtariError(
            f"{env_id!r} is not an id the Atari pipeline takes: use ALE/<Game>-v5 (e.g. ALE/Breakout-v5) "
            f"or <Game>NoFrameskip-v4 (e.g. BreakoutNoFrameskip-v4)."
        )
    import ale_py

    gym.register_envs(ale_py)
    if env_id not in gym.registry:
        raise AtariError(f"Unknown Atari id {env_id!r}; `rlsuite list envs` shows the ALE ids.")


def wrap_atari(env: gym.Env, preset: str | AtariPreset = DEFAULT_PRESET, purpose: Purpose = "train") -> gym.Env:
    """Apply the preset's wrappers for `purpose` to an ALE env built with frameskip=1."""
    _check_purpose(purpose)
    p = get_preset(preset).for_purpose(purpose)
    if p.noop_max > 0:
        env = NoopReset(env, p.noop_max)
    env = MaxAndSkip(env, p.frame_skip, p.max_pool)
    if p.episodic_life:
        env = EpisodicLife(env)
    if p.fire_reset and needs_fire(env):
        env = FireReset(env)
    env = WarpFrame(env, p.screen_size)
    if p.clip_rewards:
        env = ClipReward(env)
    if p.frame_stack > 1:
        env = FrameStack(env, p.frame_stack)
    return env


def make_atari(env_id: str, preset: str | AtariPreset = DEFAULT_PRESET, purpose: Purpose = "eval",
               render_mode: str | None = None, **ale_kwargs: Any) -> gym.Env:
    """One preprocessed Atari env; `render()` gives the game's colour frames at their original size."""
    _check_atari_id(env_id)
    p = get_preset(preset)
    _check_purpose(purpose)
    env = gym.make(env_id, render_mode=render_mode, **{**_ale_kwargs(p), **ale_kwargs})
    return wrap_atari(env, p, purpose)




def make_atari_env(env_id: str, num_envs: int, preset: str | AtariPreset = DEFAULT_PRESET, *,
                   purpose: Purpose = "train", mode: str = "auto", record_stats: bool = True) -> gym.vector.VectorEnv:
    """A vector env of `num_envs` preprocessed games with next-step autoreset.

    With `record_stats` (training), `info["episode"]` carries whole-game raw scores, as Gymnasium's
    RecordEpisodeStatistics would without episodic life and reward clipping.

    `mode`: `auto` takes `AtariNativeVectorEnv` (ale-py's C++ emulators, `vector_entry_point`) when the
    preset allows it and we are training, else Gymnasium's SyncVectorEnv; `sync` and `async` force
    Gymnasium's vector envs of `make_atari` envs (there, row i equals `make_atari(...).reset(seed=seed + i)`,
    the reference path). The native path runs one C++ worker thread per game.
    """
    _check_atari_id(env_id)
    _check_purpose(purpose)
    p = get_preset(preset)
    if mode not in ("auto", "sync", "async", "vector_entry_point"):
        raise AtariError(f"Unknown vectorization mode {mode!r}; accepted: auto, sync, async, vector_entry_point.")
    if mode == "auto":
        mode = "vector_entry_point" if purpose == "train" and _native_vector_ok(p) else "sync"
    if mode == "vector_entry_point":
        if not _native_vector_ok(p):
            raise AtariError(f"ale-py's C++ emulators cannot preprocess as preset {p.name} does (RGB grayscale "
                             f"source, or no max pooling); use mode sync or async.")
        return AtariNativeVectorEnv(env_id, num_envs, p.for_purpose(purpose), record_stats=record_stats)

    def make_one() -> gym.Env:
        env = make_atari(env_id, p, purpose)
        return GameStatistics(env) if record_stats else env

    fns = [make_one] * num_envs
    if mode == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
