"""Preprocessed Atari games on ale-py's C++ emulators, with DeepMind's resets in NumPy.

Not on envs/vector.py's NumpyVectorEnv: its rows are C++ emulators seeded by their own generators, whose
resets take several emulator steps driven in rounds across games, and its episode statistics count whole
games while `terminated` marks every lost life; so it keeps its own next-step autoreset and statistics,
and has no `get_state` (an emulator's state is not a set of NumPy arrays).
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from rlsuite.envs.atari.presets import AtariError, AtariPreset, _native_vector_ok


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
