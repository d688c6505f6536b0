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


class _VectorClipReward(gym.vector.VectorWrapper):
    """Sign of the rewards of a vector env; `info["raw_reward"]` keeps them (the native path's ClipReward)."""

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return obs, np.sign(reward).astype(np.float32), terminated, truncated, {**info, "raw_reward": reward}


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
    """Whether ale-py's AtariVectorEnv preprocesses exactly as this preset does.

    Checked frame by frame in tests/test_atari.py: its resize, max pooling, grayscale and zero-padded
    stack equal ours. Its fire reset does not (one FIRE frame, observed, against SB3's FIRE step and
    action-2 step), and its no-op counts come from its own generator; episodic life is left to our
    wrappers. So presets with fire reset or episodic life take Gymnasium's vector envs.
    """
    return p.grayscale_source == "ale" and p.max_pool and not p.fire_reset and not p.episodic_life


def make_atari_env(env_id: str, num_envs: int, preset: str | AtariPreset = DEFAULT_PRESET, *,
                   purpose: Purpose = "train", mode: str = "auto", num_threads: int = 0,
                   record_stats: bool = True) -> gym.vector.VectorEnv:
    """A vector env of `num_envs` preprocessed games with next-step autoreset.

    With `record_stats` (training), `info["episode"]` carries whole-game raw scores, as Gymnasium's
    RecordEpisodeStatistics would without episodic life and reward clipping.

    `mode`: `auto` takes ale-py's C++ AtariVectorEnv (`vector_entry_point`) when the preset allows it and
    we are training, else Gymnasium's SyncVectorEnv; `sync` and `async` force Gymnasium's vector envs of
    `make_atari` envs (there, row i equals `make_atari(...).reset(seed=seed + i)`).
    """
    _check_atari_id(env_id)
    _check_purpose(purpose)
    p = get_preset(preset)
    if mode not in ("auto", "sync", "async", "vector_entry_point"):
        raise AtariError(f"Unknown vectorization mode {mode!r}; accepted: auto, sync, async, vector_entry_point.")
    if mode == "auto":
        mode = "vector_entry_point" if purpose == "train" and _native_vector_ok(p.for_purpose(purpose)) else "sync"
    if mode == "vector_entry_point":
        if not _native_vector_ok(p.for_purpose(purpose)):
            raise AtariError(f"ale-py's AtariVectorEnv does not preprocess as preset {p.name} does for {purpose} "
                             f"(fire reset, episodic life or RGB grayscale); use mode sync or async.")
        q = p.for_purpose(purpose)
        envs: gym.vector.VectorEnv = _native_vector_env(env_id, num_envs, q, num_threads)
        if record_stats:  # native presets have no episodic life: its episodes are whole games
            envs = gym.wrappers.vector.RecordEpisodeStatistics(envs)
        return _VectorClipReward(envs) if q.clip_rewards else envs

    def make_one() -> gym.Env:
        env = make_atari(env_id, p, purpose)
        return GameStatistics(env) if record_stats else env

    fns = [make_one] * num_envs
    if mode == "async":
        return gym.vector.AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    return gym.vector.SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)


def _native_vector_env(env_id: str, num_envs: int, p: AtariPreset, num_threads: int) -> gym.vector.VectorEnv:
    from ale_py.vector_env import AtariVectorEnv

    game = gym.spec(env_id).kwargs["game"]
    return AtariVectorEnv(
        game, num_envs, num_threads=num_threads, max_num_frames_per_episode=p.max_frames,
        repeat_action_probability=p.sticky_prob, full_action_space=p.full_action_space,
        autoreset_mode=AutoresetMode.NEXT_STEP, img_height=p.screen_size, img_width=p.screen_size,
        grayscale=True, stack_num=p.frame_stack, frameskip=p.frame_skip, maxpool=p.max_pool,
        noop_max=p.noop_max, episodic_life=p.episodic_life, reward_clipping=False,  # clipped after the statistics
        use_fire_reset=p.fire_reset,
    )
