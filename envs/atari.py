"""Atari 2600 games with DeepMind-style preprocessing over the real ALE, as named, recorded presets.

## Description
Libraries disagree on Atari preprocessing: Gymnasium's `AtariPreprocessing` does no fire reset, reward
clipping or frame stacking; SB3's `AtariWrapper` does; ALE v5 ids add sticky actions and a frame skip
of their own. Scores are only comparable under the same protocol, so rlsuite names it: a *preset*
(`ATARI_PRESETS`) fixes every preprocessing choice, and a *purpose* says whether the env is for
training (episodic life and reward clipping, when the preset asks for them) or for evaluation (whole
games, raw rewards, the 108,000-frame cap). The preset name and its settings go into the run manifest.

The wrappers below are small Gymnasium wrappers written with NumPy and OpenCV. From the emulator up:

| wrapper | what it does |
| --- | --- |
| `StickyAction` | with probability p repeat the previous action (Machado et al. 2018); the pipeline uses the ALE's own per-frame stickiness, this wrapper serves envs without it |
| `NoopReset` | after reset take 1..noop_max NOOP frames (count from the env's seeded generator) |
| `MaxAndSkip` | repeat the action for `skip` frames, sum rewards, observe the max of the last two frames |
| `EpisodicLife` | training only: a lost life ends the episode (`info["life_loss"]`), the game goes on |
| `FireReset` | games that need FIRE to start (detected from the action meanings) get FIRE, then action 2 |
| `WarpFrame` | grayscale (`cv2.cvtColor` on RGB, or the ALE's own grayscale screen) and 84x84 `INTER_AREA` |
| `ClipReward` | training only: sign of the reward; the raw reward stays in `info["raw_reward"]` |
| `FrameStack` | the last 4 frames, channel-first uint8, a view into a ring buffer (no per-step copies) |

## Action space
`Discrete(n)` with the game's minimal action set (`full_action_space=False`, the ALE v5 default).

## Observation space
`Box(0, 255, (frame_stack, 84, 84), uint8)`: the last `frame_stack` grayscale 84x84 frames, oldest
first; frames before the start of an episode are zeros (as SB3's `VecFrameStack`).

## Rewards
The game score difference per agent step (sum over the skipped frames); its sign when training with a
preset that clips rewards (`info["raw_reward"]` keeps the game's reward).

## Episode end
The game ends (`terminated`), or the 108,000-frame cap is reached (`truncated`, 30 minutes of play at
60 Hz, the ALE's `max_num_frames_per_episode`). In training with episodic life a lost life also
terminates the episode; resetting then continues the same game with a NOOP step.

## Arguments
`make_atari_env(env_id, num_envs, preset="dqn-nature", purpose="train")` for vector envs,
`make_atari(env_id, preset=..., purpose="eval")` for one env. `env_id` is an `ALE/<Game>-v5` id (its
frame skip is set to 1 and its sticky actions to the preset's) or a `<Game>NoFrameskip-v4` id.
rlsuite's env factory (`make_env`, `make_vec_env`) routes these ids here, so every agent gets the
pipeline. The vector path is ale-py's C++ `AtariVectorEnv` when its preprocessing is the preset's
(grayscale from the ALE), else Gymnasium's sync or async vector env of single preprocessed envs.

## Version history
- v0: first version (ale-py 0.12, Gymnasium 1.x).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rlsuite.envs.atari_scores import is_atari_id
from rlsuite.envs.factory import EnvError

Purpose = Literal["train", "eval"]
PURPOSES: tuple[str, ...] = ("train", "eval")
DEFAULT_PRESET = "dqn-nature"


@dataclass(frozen=True)
class AtariPreset:
    """Every preprocessing choice of one Atari protocol; `purpose="eval"` turns the training-only ones off."""

    name: str
    """Preset name, as written in run manifests and reports."""
    source: str
    """Where the protocol comes from."""
    noop_max: int = 30
    """Up to this many NOOP frames after reset (0: none)."""
    frame_skip: int = 4
    """Emulator frames per agent step (action repeated, rewards summed)."""
    max_pool: bool = True
    """Observe the pixel-wise max of the last two skipped frames (removes sprite flicker)."""
    episodic_life: bool = True
    """Training only: a lost life ends the episode."""
    fire_reset: bool = True
    """Press FIRE after reset in games that need it to start."""
    clip_rewards: bool = True
    """Training only: rewards become their sign."""
    screen_size: int = 84
    """Side of the square grayscale observation."""
    grayscale_source: Literal["ale", "rgb"] = "ale"
    """`ale`: the emulator's grayscale screen (as Gymnasium's AtariPreprocessing and ale-py's vector env);
    `rgb`: `cv2.cvtColor` of the max-pooled RGB frame (as SB3's AtariWrapper)."""
    frame_stack: int = 4
    """Frames stacked channel-first."""
    sticky_prob: float = 0.0
    """Probability that the emulator repeats the previous action on each frame (Machado et al. 2018)."""
    full_action_space: bool = False
    """All 18 joystick actions instead of the game's minimal set."""
    max_frames: int = 108_000
    """Frame cap per episode (30 minutes at 60 Hz), training and evaluation."""

    def for_purpose(self, purpose: Purpose) -> AtariPreset:
        """The settings actually applied for `purpose`: evaluation plays whole games with raw rewards."""
        if purpose == "eval":
            return dataclasses.replace(self, episodic_life=False, clip_rewards=False)
        return self

    def describe(self, purpose: Purpose = "train") -> dict[str, Any]:
        """The preset's settings for `purpose`, JSON-ready, for manifests and reports."""
        return {"purpose": purpose, **dataclasses.asdict(self.for_purpose(purpose))}


ATARI_PRESETS: dict[str, AtariPreset] = {
    "dqn-nature": AtariPreset(
        name="dqn-nature",
        source="Mnih et al. 2015 (Nature), as SB3's AtariWrapper and CleanRL: no-op starts, skip 4, episodic life, "
               "fire reset, 84x84 gray, clipped rewards, 4 frames; no sticky actions",
    ),
    "machado2018": AtariPreset(
        name="machado2018",
        source="Machado et al. 2018 (JAIR), 'Revisiting the ALE': sticky actions p=0.25, no life-loss signal, "
               "no no-op starts; skip 4, 84x84 gray, 4 frames; minimal action set",
        noop_max=0,
        episodic_life=False,
        fire_reset=False,
        sticky_prob=0.25,
    ),
}


class AtariError(EnvError):
    """A user-facing problem with an Atari id or preset; the message says what to do."""


def get_preset(preset: str | AtariPreset) -> AtariPreset:
    """The preset named `preset` (an AtariPreset passes through); AtariError lists the names."""
    if isinstance(preset, AtariPreset):
        return preset
    name = preset or DEFAULT_PRESET
    if name not in ATARI_PRESETS:
        raise AtariError(f"Unknown Atari preset {preset!r}; accepted: {', '.join(ATARI_PRESETS)}.")
    return ATARI_PRESETS[name]


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise AtariError(f"Unknown purpose {purpose!r}; accepted: {', '.join(PURPOSES)}.")


# ---------------------------------------------------------------------------------------------------
# Wrappers (single env). Each mirrors the SB3 / OpenAI-baselines wrapper of the same name, so that the
# whole stack is bit-exact with SB3's AtariWrapper + VecFrameStack (tests/test_atari.py checks it).


def _ale(env: gym.Env) -> Any:
    ale = getattr(env.unwrapped, "ale", None)
    if ale is None:
        raise AtariError(f"{env.unwrapped} has no `ale` attribute: this wrapper needs an ALE env (ale-py).")
    return ale


class StickyAction(gym.Wrapper):
    """With probability `p` the previous action is taken again instead of the new one (per env step)."""

    def __init__(self, env: gym.Env, p: float) -> None:
        super().__init__(env)
        if not 0.0 <= p < 1.0:
            raise AtariError(f"sticky action probability must lie in [0, 1), got {p}.")
        self.p = p
        self._action = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._action = 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.np_random.random() >= self.p:  # the env's seeded generator, so episodes replay exactly
            self._action = action
        return self.env.step(self._action)


class NoopReset(gym.Wrapper):
    """After reset, 1..noop_max NOOP steps: random starting states for a deterministic emulator."""

    def __init__(self, env: gym.Env, noop_max: int = 30) -> None:
        super().__init__(env)
        if env.unwrapped.get_action_meanings()[0] != "NOOP":  # type: ignore[attr-defined]
            raise AtariError("NoopReset needs action 0 to be NOOP.")
        self.noop_max = noop_max

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        noops = int(self.unwrapped.np_random.integers(1, self.noop_max + 1)) if self.noop_max > 0 else 0
        for _ in range(noops):
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


class MaxAndSkip(gym.Wrapper):
    """Repeat the action `skip` frames, sum the rewards, return the max of the last two frames.

    As in SB3 and OpenAI baselines, when the episode ends early inside the skip the two-frame buffer
    keeps whatever frames it held; only the observation of that final step is affected.
    """

    def __init__(self, env: gym.Env, skip: int = 4, max_pool: bool = True) -> None:
        super().__init__(env)
        if skip < 1:
            raise AtariError(f"frame skip must be at least 1, got {skip}.")
        space = env.observation_space
        assert isinstance(space, spaces.Box)
        self._skip = skip
        self._max_pool = max_pool and skip > 1
        self._buffer = np.zeros((2, *space.shape), dtype=space.dtype)  # (2, H, W[, 3])

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        total = 0.0
        terminated = truncated = False
        info: dict[str, Any] = {}
        obs: Any = None
        for i in range(self._skip):
            obs, reward, terminated, truncated, info = self.env.step(action)
            if i == self._skip - 2:
                self._buffer[0] = obs
            if i == self._skip - 1:
                self._buffer[1] = obs
            total += float(reward)
            if terminated or truncated:
                break
        if not self._max_pool:
            return obs, total, terminated, truncated, info
        return self._buffer.max(axis=0), total, terminated, truncated, info


class EpisodicLife(gym.Wrapper):
    """Training only: a lost life terminates the episode (flagged `info["life_loss"]`); the game goes on.

    Resetting after a life loss takes one NOOP step instead of a new game. A reset with an explicit seed
    always starts a new game, so seeded resets stay reproducible.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.was_real_done = True

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.was_real_done = bool(terminated or truncated)
        lives = _ale(self.env).lives()
        if 0 < lives < self.lives:
            terminated = True
            info = {**info, "life_loss": True}
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.was_real_done or kwargs.get("seed") is not None:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.was_real_done = False
        self.lives = _ale(self.env).lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Games that wait for FIRE (Breakout, ...): after reset press FIRE, then action 2, as SB3 does."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise AtariError(f"FireReset needs FIRE as action 1 and at least 3 actions, got {meanings}.")

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:
            self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(2)
        if terminated or truncated:
            obs, info = self.env.reset(**kwargs)
        return obs, info


def needs_fire(env: gym.Env) -> bool:
    """Whether the game has a FIRE action (SB3's rule for adding FireReset)."""
    return "FIRE" in env.unwrapped.get_action_meanings()  # type: ignore[attr-defined]


class WarpFrame(gym.ObservationWrapper):
    """Grayscale (from RGB with `cv2.cvtColor`, or already gray) and resize to (size, size) with INTER_AREA."""

    def __init__(self, env: gym.Env, size: int = 84) -> None:
        super().__init__(env)
        self.size = size
        self.observation_space = spaces.Box(0, 255, (size, size), dtype=np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        frame = np.asarray(observation)
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return cv2.resize(frame, (self.size, self.size), interpolation=cv2.INTER_AREA)  # (size, size) uint8


class ClipReward(gym.Wrapper):
    """Training only: the reward becomes its sign; `info["raw_reward"]` keeps the game's reward."""

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(np.sign(float(reward))), terminated, truncated, {**info, "raw_reward": float(reward)}


class FrameStack(gym.Wrapper):
    """The last `k` frames, channel-first, as a view into a ring buffer: no frame is copied per step.

    The ring has `C = history + k` slots plus `k - 1` spare ones at its end that mirror slots 0..k-2
    (those frames are written twice), so the newest `k` frames are always one contiguous slice. A
    returned observation is a view that stays unchanged for the next `history` steps (a reset zeroes
    the padding slots, so copy across resets); pass `copy=True` for an array of your own. Vector envs
    and agents copy observations into their own batches, so the view costs nothing. Frames before the
    episode start are zeros, as in SB3's VecFrameStack.
    """

    def __init__(self, env: gym.Env, k: int = 4, history: int = 64, copy: bool = False) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, spaces.Box) and space.dtype == np.uint8
        if k < 1 or history < 1:
            raise AtariError(f"FrameStack needs k >= 1 and history >= 1, got k={k}, history={history}.")
        self.k = k
        self.copy = copy
        self._slots = history + k  # ring capacity C
        self._buffer = np.zeros((self._slots + k - 1, *space.shape), dtype=np.uint8)  # (C + k - 1, H, W)
        self._newest = k - 1  # ring slot of the newest frame, in [0, C)
        self.observation_space = spaces.Box(0, 255, (k, *space.shape), dtype=np.uint8)

    def _push(self, frame: np.ndarray) -> None:
        self._newest = (self._newest + 1) % self._slots
        self._buffer[self._newest] = frame
        if self._newest < self.k - 1:  # mirrored past the end, so a window never wraps around
            self._buffer[self._slots + self._newest] = frame

    def _window(self) -> np.ndarray:
        end = self._newest if self._newest >= self.k - 1 else self._newest + self._slots
        view = self._buffer[end - self.k + 1 : end + 1]  # (k, H, W), contiguous, oldest first
        return view.copy() if self.copy else view

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._buffer[: self.k - 1] = 0
        self._buffer[self._slots :] = 0
        self._newest = self.k - 2  # the first frame lands in slot k - 1, after k - 1 zero frames
        self._push(obs)
        return self._window(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._push(obs)
        return self._window(), reward, terminated, truncated, info


class GameStatistics(gym.Wrapper):
    """`info["episode"]` = {"r": game score, "l": agent steps, "t": seconds} when a whole game ends.

    Counts the raw (unclipped) reward over the whole game, across the life-loss episodes of
    EpisodicLife, so training logs show game scores comparable with evaluation. Put it on top of
    the stack; it replaces Gymnasium's RecordEpisodeStatistics for Atari.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._return, self._length, self._start = 0.0, 0, time.perf_counter()
        self._game_over = True

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        if self._game_over or kwargs.get("seed") is not None:
            self._return, self._length, self._start = 0.0, 0, time.perf_counter()
            self._game_over = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(info.get("raw_reward", reward))
        self._length += 1
        if (terminated or truncated) and not info.get("life_loss", False):
            self._game_over = True
            info = {**info, "episode": {"r": self._return, "l": self._length,
                                        "t": round(time.perf_counter() - self._start, 6)}}
        return obs, reward, terminated, truncated, info


# ---------------------------------------------------------------------------------------------------
# Building envs


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


def _native_vector_ok(p: AtariPreset) -> bool:
    """Whether ale-py's C++ emulators can serve this preset: everything but the grayscale source is ours.

    The C++ side max-pools the ALE's grayscale screen and resizes it with INTER_AREA, as our `ale`
    grayscale source does (checked frame by frame in tests/test_atari.py); SB3's `rgb` source converts
    max-pooled RGB frames instead, which the C++ side cannot do, and its max pooling needs a skip of 2+.
    """
    return p.grayscale_source == "ale" and p.max_pool and p.frame_skip >= 2


def make_atari_env(env_id: str, num_envs: int, preset: str | AtariPreset = DEFAULT_PRESET, *,
                   purpose: Purpose = "train", mode: str = "auto", num_threads: int = 0,
                   record_stats: bool = True) -> gym.vector.VectorEnv:
    """A vector env of `num_envs` preprocessed games with next-step autoreset.

    With `record_stats` (training), `info["episode"]` carries whole-game raw scores, as Gymnasium's
    RecordEpisodeStatistics would without episodic life and reward clipping.

    `mode`: `auto` takes `AtariNativeVectorEnv` (ale-py's C++ emulators, `vector_entry_point`) when the
    preset allows it and we are training, else Gymnasium's SyncVectorEnv; `sync` and `async` force
    Gymnasium's vector envs of `make_atari` envs (there, row i equals `make_atari(...).reset(seed=seed + i)`,
    the reference path). `num_threads` is kept for callers of the first version: the native path runs one
    C++ worker thread per game.
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


# ---------------------------------------------------------------------------------------------------
# The native vector path: ale-py's C++ emulators below, DeepMind's resets in NumPy above


@dataclass
class _Raw:
    """One C++ step or reset of one game: the max-pooled, resized grayscale frame and the game's state."""

    frame: np.ndarray  # (H, W) uint8
    reward: float  # game score difference over the skipped frames
    terminated: bool  # game over
    truncated: bool  # the episode's frame cap reached
    lives: int
    frames: int  # emulator frames since the game's start, no-op starts included


# What a per-game generator asks the driver for: ("step", action) or ("reset", seed or None).
_Command = tuple[str, Any]
_Gen = Generator[_Command, _Raw, Any]


class AtariNativeVectorEnv(gym.vector.VectorEnv):
    """Preprocessed Atari games on ale-py's C++ emulators, with the preset's resets, episodic life, reward
    clipping, frame stacking and game statistics in NumPy: the wrapper stack of `make_atari`, batched.

    ale-py's `AtariVectorEnv` runs each game on a C++ worker thread with no-op starts, frame skip, max
    pooling and resizing, but its fire reset is one observed FIRE frame and its episodic life restarts
    the game, where DeepMind's protocol (SB3's AtariWrapper) presses FIRE then action 2 (a step each)
    and continues the game after a lost life with a NOOP step. Those resets take extra steps of one game
    while the others wait, which one C++ vector env stepping all its games together cannot do; so each
    game is its own one-game C++ vector env, `step` sends every game its action before receiving any
    (the emulators run in parallel), and games in a reset sequence go on for their extra steps in
    further rounds. Each game's protocol is a generator mirroring the wrappers (`_life_step` is
    `EpisodicLife.step`, `_fire_reset` is `FireReset.reset`, ...).

    Bit-exact with the Gymnasium path (`mode="sync"`, itself bit-exact with SB3) except in two places,
    both tested: the number of no-op frames after a reset comes from the C++ env's own generator (the
    same uniform 1..noop_max, another stream: the same seed gives other starts), and the frame cap is
    checked after each agent step, not each frame (a game reaching it inside a step plays out the step,
    at most 3 frames more; never with no-op starts off, where steps end on multiples of the skip).
    Sticky actions are the ALE's own in both paths (seeded differently).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "supports_reset_mask": True}

    def __init__(self, env_id: str, num_envs: int, preset: AtariPreset, record_stats: bool = True) -> None:
        from ale_py.vector_env import AtariVectorEnv

        if num_envs < 1:
            raise AtariError(f"num_envs must be at least 1, got {num_envs}.")
        if not _native_vector_ok(preset):
            raise AtariError(f"preset {preset.name} cannot run on ale-py's C++ emulators; use mode sync or async.")
        self.preset, self.num_envs, self.record_stats = preset, num_envs, record_stats
        game = gym.spec(env_id).kwargs["game"]
        self._games = [
            AtariVectorEnv(
                game, 1, num_threads=1, max_num_frames_per_episode=2**31 - 1,  # the cap is checked here, in frames
                repeat_action_probability=preset.sticky_prob, full_action_space=preset.full_action_space,
                autoreset_mode=AutoresetMode.NEXT_STEP, img_height=preset.screen_size, img_width=preset.screen_size,
                grayscale=True, stack_num=1, frameskip=preset.frame_skip, maxpool=True,
                noop_max=preset.noop_max + 1 if preset.noop_max > 0 else 0,  # 0..noop_max, 0 drawn again
                episodic_life=False, life_loss_info=False, reward_clipping=False, use_fire_reset=False,
            )
            for _ in range(num_envs)
        ]
        # the C++ handles, called directly: the Python wrapper's send checks its argument and builds a paddle
        # array on every call: about a third of the driver thread's CPU (outside the emulator threads)
        self._ales = [g.ale for g in self._games]
        self._paddle = [1.0]  # paddle strength of a discrete action (what the wrapper sends)
        action_set = [a.name for a in self._games[0].ale.get_action_set()]
        self._fire = preset.fire_reset and "FIRE" in action_set
        if self._fire and (len(action_set) < 3 or action_set[1] != "FIRE"):
            raise AtariError(f"fire reset needs FIRE as action 1 and at least 3 actions, got {action_set}.")
        k, size = preset.frame_stack, preset.screen_size
        self.single_observation_space = spaces.Box(0, 255, (k, size, size), dtype=np.uint8)
        self.single_action_space = spaces.Discrete(len(action_set))
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._stack = np.zeros((num_envs, k, size, size), dtype=np.uint8)  # (N, k, H, W), oldest first
        self._lives = np.zeros(num_envs, dtype=np.int64)  # EpisodicLife.lives
        self._real_done = np.ones(num_envs, dtype=bool)  # EpisodicLife.was_real_done
        self._cpp_over = np.zeros(num_envs, dtype=bool)  # the C++ env resets itself on its next step
        self._autoreset = np.zeros(num_envs, dtype=bool)  # next-step autoreset pending
        self._game_over = np.ones(num_envs, dtype=bool)  # GameStatistics._game_over
        self._return = np.zeros(num_envs)  # raw score of the current game
        self._length = np.zeros(num_envs, dtype=np.int64)  # agent steps of the current game
        self._start = np.zeros(num_envs)  # perf_counter at the game's start
        self._frames = np.zeros(num_envs, dtype=np.int64)  # emulator frames of the current game (info)
        self._autoresetting: set[int] = set()  # games whose C++ env resets on the step in flight

    # --- the driver: run one generator per game, sending all games their actions before receiving

    def _receive(self, i: int) -> _Raw:
        obs, reward, terminated, truncated, info = self._ales[i].recv()
        self._cpp_over[i] = bool(terminated[0] or truncated[0])
        return self._raw(obs, float(reward[0]), bool(terminated[0]), info)

    def _raw(self, obs: np.ndarray, reward: float, terminated: bool, info: dict[str, Any]) -> _Raw:
        frames = int(info["episode_frame_number"][0])
        return _Raw(obs[0, 0], reward, terminated, frames >= self.preset.max_frames, int(info["lives"][0]), frames)

    def _reset_now(self, i: int, seed: int | None) -> _Raw:
        obs, info = self._games[i].reset(seed=seed)
        self._cpp_over[i] = False
        return self._raw(obs, 0.0, False, info)

    def _redraw_zero_noops(self, i: int, raw: _Raw) -> _Raw:
        """The C++ env takes 0..n-1 no-op frames after a reset (n = noop_max + 1 here); NoopReset takes
        1..noop_max. Drawing again after a 0 makes the counts uniform over 1..noop_max, as NoopReset's."""
        while self.preset.noop_max > 0 and raw.frames == 0:
            raw = self._reset_now(i, None)
        return raw

    def _advance(self, i: int, gen: _Gen, value: _Raw | None, actions: dict[int, int], out: dict[int, Any]) -> None:
        """Feed `value` to game i's generator until it asks for a step (queued in `actions`) or returns."""
        try:
            if value is not None and i in self._autoresetting:  # the C++ env's own reset after a game over
                self._autoresetting.discard(i)
                value = self._redraw_zero_noops(i, value)
            command = gen.send(value)  # type: ignore[arg-type]  # None primes the generator
            while command[0] == "reset":
                if command[1] is None and self._cpp_over[i]:  # the C++ env resets on its next step: in parallel
                    self._autoresetting.add(i)
                    actions[i] = 0
                    return
                raw = self._redraw_zero_noops(i, self._reset_now(i, command[1]))  # seeded, or after the cap: now
                command = gen.send(raw)
            actions[i] = int(command[1])
        except StopIteration as stop:
            out[i] = stop.value

    def _drive(self, gens: dict[int, _Gen], plain: dict[int, int] | None = None) -> dict[int, Any]:
        """Run the generators to their ends; `plain` (game: action) are plain steps of games in no reset
        sequence, sent in the first round with no generator (`_life_step` without its Python machinery,
        the common case), whose results are `_life_step`'s."""
        out: dict[int, Any] = {}
        actions: dict[int, int] = dict(plain) if plain else {}
        for i, gen in gens.items():
            self._advance(i, gen, None, actions, out)
        while actions:
            for i, action in actions.items():
                self._ales[i].send([action], self._paddle)  # type: ignore[arg-type]  # any sequence (the stub says ndarray)
            received = {i: self._receive(i) for i in actions}
            actions = {}
            for i, raw in received.items():
                if plain and i in plain:  # a plain step: no generator, so only ever in the first round
                    out[i] = self._life_update(i, raw)
                else:
                    self._advance(i, gens[i], raw, actions, out)
        return out

    # --- one game's protocol, wrapper by wrapper (see the single-env wrappers above)

    def _raw_step(self, action: int) -> _Gen:  # MaxAndSkip.step (the C++ env)
        return (yield ("step", action))

    def _raw_reset(self, seed: int | None) -> _Gen:  # NoopReset.reset (the C++ env)
        return (yield ("reset", seed))

    def _life_step(self, i: int, action: int) -> _Gen:  # EpisodicLife.step: (raw, life lost)
        raw = yield from self._raw_step(action)
        return self._life_update(i, raw)

    def _life_update(self, i: int, raw: _Raw) -> tuple[_Raw, bool]:
        """EpisodicLife.step's bookkeeping after the step: (raw, life lost)."""
        self._real_done[i] = raw.terminated or raw.truncated
        life_loss = self.preset.episodic_life and 0 < raw.lives < self._lives[i]
        self._lives[i] = raw.lives
        return raw, bool(life_loss)

    def _life_reset(self, i: int, seed: int | None) -> _Gen:  # EpisodicLife.reset
        if not self.preset.episodic_life or self._real_done[i] or seed is not None:
            raw = yield from self._raw_reset(seed)
        else:  # a lost life: the game goes on after a NOOP step
            raw = yield from self._raw_step(0)
            if raw.terminated or raw.truncated:
                raw = yield from self._raw_reset(seed)
        self._real_done[i] = False
        self._lives[i] = raw.lives
        return raw

    def _fire_reset(self, i: int, seed: int | None) -> _Gen:  # FireReset.reset
        raw = yield from self._life_reset(i, seed)
        if not self._fire:
            return raw
        raw, life_loss = yield from self._life_step(i, 1)
        if raw.terminated or raw.truncated or life_loss:
            yield from self._life_reset(i, seed)
        raw, life_loss = yield from self._life_step(i, 2)
        if raw.terminated or raw.truncated or life_loss:
            raw = yield from self._life_reset(i, seed)
        return raw

    # --- the vector env

    def _restart(self, i: int, frame: np.ndarray, new_game: bool) -> None:
        """FrameStack.reset and GameStatistics.reset for row i."""
        self._stack[i] = 0
        self._stack[i, -1] = frame
        if new_game:
            self._return[i], self._length[i], self._start[i] = 0.0, 0, time.perf_counter()
            self._game_over[i] = False

    def reset(self, *, seed: int | list[int | None] | None = None,  # type: ignore[override]
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every game, or the rows of `options["reset_mask"]`; `seed`: an int (row i gets seed + i) or
        one seed (or None) per row, as Gymnasium's SyncVectorEnv."""
        mask = np.ones(self.num_envs, dtype=bool) if not options or "reset_mask" not in options \
            else np.asarray(options["reset_mask"], dtype=bool)
        rows = np.flatnonzero(mask)
        if seed is None or isinstance(seed, int | np.integer):
            per_row: list[int | None] = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        else:
            per_row = [None if s is None else int(s) for s in seed]
            if len(per_row) != self.num_envs:
                raise AtariError(f"reset got {len(per_row)} seeds for {self.num_envs} envs; pass one per env.")
        seeds = {int(i): per_row[int(i)] for i in rows}
        out = self._drive({i: self._fire_reset(i, seeds[i]) for i in seeds})
        for i, raw in out.items():
            self._restart(i, raw.frame, self._game_over[i] or seeds[i] is not None)
            self._frames[i] = raw.frames
        self._autoreset[rows] = False
        return self._stack.copy(), {"lives": self._lives.copy(), "episode_frame_number": self._frames.copy()}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        resetting = self._autoreset.copy()
        gens = {i: self._fire_reset(i, None) for i in np.flatnonzero(resetting).tolist()}
        plain = {i: action for i, action in enumerate(actions.astype(np.int64).reshape(-1).tolist()) if not resetting[i]}
        out = self._drive(gens, plain)
        n = self.num_envs
        raw_reward, terminated, truncated = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        life_loss, finished = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i in range(n):
            if resetting[i]:
                raw = out[i]
                self._restart(i, raw.frame, bool(self._game_over[i]))
                self._frames[i] = raw.frames
                continue
            raw, life_loss[i] = out[i]
            self._frames[i] = raw.frames
            raw_reward[i] = raw.reward
            terminated[i], truncated[i] = raw.terminated or life_loss[i], raw.truncated
            self._stack[i, :-1] = self._stack[i, 1:]  # FrameStack.step
            self._stack[i, -1] = raw.frame
            self._return[i] += raw.reward  # GameStatistics.step
            self._length[i] += 1
            if (terminated[i] or truncated[i]) and not life_loss[i]:
                self._game_over[i] = finished[i] = True
        self._autoreset = terminated | truncated
        reward = np.sign(raw_reward) if self.preset.clip_rewards else raw_reward.copy()
        info: dict[str, Any] = {"lives": self._lives.copy(), "episode_frame_number": self._frames.copy(),
                                "life_loss": life_loss, "_life_loss": life_loss}
        if self.preset.clip_rewards:
            info["raw_reward"], info["_raw_reward"] = raw_reward, ~resetting
        if self.record_stats and finished.any():
            elapsed = np.round(time.perf_counter() - self._start, 6)
            info["episode"] = {"r": np.where(finished, self._return, 0.0), "l": np.where(finished, self._length, 0),
                               "t": np.where(finished, elapsed, 0.0)}
            info["_episode"] = finished
        return self._stack.copy(), reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        for game in self._games:
            game.close()
