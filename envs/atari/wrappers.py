"""The Atari preprocessing wrappers (single env). Each mirrors the SB3 / OpenAI-baselines wrapper of the same
name, so the whole stack is bit-exact with SB3's AtariWrapper + VecFrameStack (tests/test_atari.py checks it)."""

from __future__ import annotations

import time
from typing import Any, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlsuite.envs.atari.presets import AtariError


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
