"""Atari preprocessing: each wrapper on a synthetic Atari-like env with known frames, lives and FIRE;
bit-exact equivalence with SB3's AtariWrapper + VecFrameStack, Gymnasium's AtariPreprocessing and
ale-py's AtariVectorEnv on real ROMs; the factory, the evaluation protocol and recording."""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

pytest.importorskip("ale_py")

from rlsuite.envs import EnvError, make_env, make_vec_env, reference_score  # noqa: E402
from rlsuite.envs.atari import (  # noqa: E402
    ATARI_PRESETS,
    AtariError,
    AtariNativeVectorEnv,
    ClipReward,
    EpisodicLife,
    FireReset,
    FrameStack,
    GameStatistics,
    MaxAndSkip,
    NoopReset,
    StickyAction,
    WarpFrame,
    make_atari,
    make_atari_env,
    needs_fire,
    wrap_atari,
)
from rlsuite.envs.factory import describe_env_preset  # noqa: E402

H, W = 210, 160


class _FakeALE:
    def __init__(self, env: FakeAtari) -> None:
        self.env = env

    def lives(self) -> int:
        return self.env.lives


class FakeAtari(gym.Env):
    """A tiny Atari stand-in: frame t is a known pattern of t, lives drop at given frames, rewards are known.

    Every action the emulator receives is logged in `actions`, every reset counted in `resets`.
    """

    def __init__(self, meanings: tuple[str, ...] = ("NOOP", "FIRE", "RIGHT", "LEFT"), rgb: bool = False,
                 life_loss_frames: tuple[int, ...] = (), game_frames: int = 1_000, lives: int = 3) -> None:
        self.meanings = meanings
        self.rgb = rgb
        self.life_loss_frames = life_loss_frames
        self.game_frames = game_frames
        self.start_lives = lives
        shape = (H, W, 3) if rgb else (H, W)
        self.observation_space = spaces.Box(0, 255, shape, dtype=np.uint8)
        self.action_space = spaces.Discrete(len(meanings))
        self.ale = _FakeALE(self)
        self.actions: list[int] = []
        self.resets = 0
        self.t = 0
        self.lives = lives

    def get_action_meanings(self) -> list[str]:
        return list(self.meanings)

    def frame(self, t: int) -> np.ndarray:
        base = (np.arange(H * W, dtype=np.int64).reshape(H, W) * 7 + t * 37) % 256  # changes every frame
        if self.rgb:
            return np.stack([base, (base * 3 + 11) % 256, (base + 101) % 256], axis=-1).astype(np.uint8)
        return base.astype(np.uint8)

    @staticmethod
    def reward(t: int) -> float:
        return {0: 0.0, 1: 3.0, 2: 0.0, 3: -2.0, 4: 0.5}[t % 5]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t, self.lives = 0, self.start_lives
        self.resets += 1
        return self.frame(0), {"lives": self.lives}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.actions.append(int(action))
        self.t += 1
        if self.t in self.life_loss_frames:
            self.lives -= 1
        terminated = self.t >= self.game_frames or self.lives == 0
        return self.frame(self.t), self.reward(self.t), terminated, False, {"lives": self.lives}


# --- each wrapper on the synthetic env -----------------------------------------------------------------


def test_noop_reset_takes_the_seeded_number_of_noops() -> None:
    env = NoopReset(FakeAtari(), noop_max=30)
    counts = set()
    for seed in range(20):
        env.unwrapped.actions.clear()
        obs, _ = env.reset(seed=seed)
        expected = np.random.default_rng(seed).integers(1, 31)  # Gymnasium seeds np_random with PCG64(seed)
        assert env.unwrapped.actions == [0] * expected
        np.testing.assert_array_equal(obs, env.unwrapped.frame(expected))
        counts.add(len(env.unwrapped.actions))
    assert len(counts) > 5 and min(counts) >= 1 and max(counts) <= 30


def test_max_and_skip_sums_rewards_and_maxes_the_last_two_frames() -> None:
    fake = FakeAtari()
    env = MaxAndSkip(fake, skip=4)
    env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(2)
    assert fake.actions == [2, 2, 2, 2]
    assert reward == sum(FakeAtari.reward(t) for t in range(1, 5))
    np.testing.assert_array_equal(obs, np.maximum(fake.frame(3), fake.frame(4)))
    obs, *_ = env.step(3)
    np.testing.assert_array_equal(obs, np.maximum(fake.frame(7), fake.frame(8)))
    assert not (terminated or truncated)


def test_max_and_skip_stops_at_game_over() -> None:
    fake = FakeAtari(game_frames=6)
    env = MaxAndSkip(fake, skip=4)
    env.reset(seed=0)
    env.step(0)
    _, reward, terminated, _, _ = env.step(0)
    assert terminated and len(fake.actions) == 6
    assert reward == FakeAtari.reward(5) + FakeAtari.reward(6)


def test_episodic_life_ends_episodes_on_life_loss_but_not_the_game() -> None:
    fake = FakeAtari(life_loss_frames=(3, 5), lives=3)
    env = EpisodicLife(fake)
    env.reset(seed=0)
    results = [env.step(0) for _ in range(3)]
    assert [r[2] for r in results] == [False, False, True]
    assert results[2][4]["life_loss"] and "life_loss" not in results[1][4]
    env.reset()  # continues the game with one NOOP
    assert fake.resets == 1 and fake.t == 4
    _, _, terminated, _, info = env.step(0)  # frame 5: last life lost -> real game over (lives == 1 > 0: life loss)
    assert terminated and info["life_loss"]
    env.reset(seed=3)  # a seeded reset always starts a new game
    assert fake.resets == 2 and fake.t == 0


def test_episodic_life_resets_after_the_real_game_over() -> None:
    fake = FakeAtari(game_frames=2)
    env = EpisodicLife(fake)
    env.reset(seed=0)
    env.step(0)
    assert env.step(0)[2]
    env.reset()
    assert fake.resets == 2


def test_fire_reset_presses_fire_then_action_two() -> None:
    fake = FakeAtari()
    env = FireReset(fake)
    obs, _ = env.reset(seed=0)
    assert fake.actions == [1, 2]
    np.testing.assert_array_equal(obs, fake.frame(2))
    assert needs_fire(fake)
    assert not needs_fire(FakeAtari(meanings=("NOOP", "UP", "DOWN")))
    with pytest.raises(AtariError, match="FIRE as action 1"):
        FireReset(FakeAtari(meanings=("NOOP", "UP", "FIRE")))


def test_warp_frame_matches_opencv_by_hand() -> None:
    fake = FakeAtari(rgb=True)
    env = WarpFrame(fake, 84)
    obs, _ = env.reset(seed=0)
    gray = cv2.cvtColor(fake.frame(0), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(obs, cv2.resize(gray, (84, 84), interpolation=cv2.INTER_AREA))
    assert obs.shape == (84, 84) and obs.dtype == np.uint8 and env.observation_space.shape == (84, 84)
    # a constant frame stays constant; a 2x2-block frame area-averages exactly
    const = np.full((H, W), 77, np.uint8)
    np.testing.assert_array_equal(env.observation(const), np.full((84, 84), 77, np.uint8))
    blocks = np.kron(np.arange(84 * 84, dtype=np.int64).reshape(84, 84) % 256, np.ones((2, 2))).astype(np.uint8)
    np.testing.assert_array_equal(env.observation(blocks), np.arange(84 * 84).reshape(84, 84) % 256)


def test_clip_reward_keeps_the_raw_reward_in_info() -> None:
    env = ClipReward(FakeAtari())
    env.reset(seed=0)
    seen = [env.step(0) for _ in range(5)]
    assert [r[1] for r in seen] == [1.0, 0.0, -1.0, 1.0, 0.0]
    assert [r[4]["raw_reward"] for r in seen] == [3.0, 0.0, -2.0, 0.5, 0.0]


def test_frame_stack_matches_a_deque_across_buffer_wraps() -> None:
    fake = FakeAtari()
    env = FrameStack(WarpFrame(fake, 16), k=4, history=5)  # a tiny ring so it wraps many times
    rng = np.random.default_rng(0)
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        reference: deque[np.ndarray] = deque([np.zeros((16, 16), np.uint8)] * 3, maxlen=4)
        reference.append(env.env.observation(fake.frame(0)))
        views = [(obs, np.stack(reference))]
        for _ in range(23):
            obs, *_ = env.step(int(rng.integers(4)))
            reference.append(env.env.observation(fake.frame(fake.t)))
            np.testing.assert_array_equal(obs, np.stack(reference))
            views.append((obs, np.stack(reference)))
            assert obs.shape == (4, 16, 16) and obs.flags.c_contiguous
            # a view stays intact for the next `history` steps
            for old, expected in views[-6:]:
                np.testing.assert_array_equal(old, expected)
    copied = FrameStack(WarpFrame(FakeAtari(), 16), k=4, history=5, copy=True)
    first, _ = copied.reset(seed=0)
    keep = first.copy()
    for _ in range(12):
        copied.step(0)
    assert len(views) == 24
    np.testing.assert_array_equal(first, keep)


def test_sticky_action_equals_sb3s() -> None:
    from stable_baselines3.common.atari_wrappers import StickyActionEnv

    actions = np.random.default_rng(1).integers(0, 4, 200)
    logs = []
    for wrapper in (lambda e: StickyAction(e, 0.25), lambda e: StickyActionEnv(e, 0.25)):
        fake = FakeAtari()
        env = wrapper(fake)
        env.reset(seed=7)
        for a in actions:
            env.step(int(a))
        logs.append(fake.actions)
    assert logs[0] == logs[1]
    assert logs[0] != list(actions)  # some actions did stick
    with pytest.raises(AtariError):
        StickyAction(FakeAtari(), 1.0)


def test_whole_stack_on_the_synthetic_env() -> None:
    fake = FakeAtari(rgb=False, life_loss_frames=(40,))
    p = dataclasses.replace(ATARI_PRESETS["dqn-nature"], noop_max=0)
    env = wrap_atari(fake, p, "train")
    obs, _ = env.reset(seed=0)
    assert fake.actions == [1] * 4 + [2] * 4  # fire reset through the frame skip
    assert obs.shape == (4, 84, 84) and not obs[:3].any()
    for step in range(8):
        obs, reward, terminated, _, info = env.step(0)
        assert terminated == (step == 7)
    assert info["life_loss"] and info["raw_reward"] == sum(FakeAtari.reward(t) for t in range(37, 41))  # 8 fire frames + 32
    assert reward == np.sign(info["raw_reward"])
    eval_env = wrap_atari(FakeAtari(life_loss_frames=(40,)), p, "eval")
    eval_env.reset(seed=0)
    for _ in range(8):
        _, reward, terminated, _, info = eval_env.step(0)
    assert not terminated and "raw_reward" not in info and reward == sum(FakeAtari.reward(t) for t in range(37, 41))


def test_game_statistics_report_whole_games_with_raw_scores() -> None:
    fake = FakeAtari(life_loss_frames=(20, 40), lives=2)  # the last life is lost at frame 40: game over
    p = dataclasses.replace(ATARI_PRESETS["dqn-nature"], noop_max=0, fire_reset=False)
    env = GameStatistics(wrap_atari(fake, p, "train"))
    env.reset(seed=0)
    episodes, steps, done = [], 0, False
    while not episodes:
        if done:
            env.reset()
        _, _, terminated, truncated, info = env.step(0)
        steps += 1
        done = terminated or truncated
        if "episode" in info:
            episodes.append(info["episode"])
    # two episodes of one game (frames 1-20, 25-40): the reset after the life loss is a NOOP step of
    # frames 21-24, which no episode sees (as with SB3's Monitor above EpisodicLife)
    seen_frames = list(range(1, 21)) + list(range(25, 41))
    assert episodes[0]["r"] == sum(FakeAtari.reward(t) for t in seen_frames)
    assert episodes[0]["l"] == steps == 9


# --- presets, factory and reference scores --------------------------------------------------------------


def test_presets_and_errors() -> None:
    assert set(ATARI_PRESETS) == {"dqn-nature", "machado2018"}
    d = describe_env_preset("ALE/Breakout-v5", "machado2018", "eval")
    assert d is not None and d["sticky_prob"] == 0.25 and d["episodic_life"] is False and d["purpose"] == "eval"
    assert describe_env_preset("CartPole-v1") is None
    with pytest.raises(EnvError, match="accepted: dqn-nature, machado2018"):
        make_env("ALE/Pong-v5", preset="dqn")
    with pytest.raises(EnvError, match="no preprocessing presets"):
        make_env("CartPole-v1", preset="dqn-nature")
    with pytest.raises(AtariError, match="ALE/<Game>-v5"):
        make_atari("CartPole-v1")


def test_reference_scores_are_human_normalising() -> None:
    for env_id in ("ALE/Breakout-v5", "BreakoutNoFrameskip-v4"):
        ref = reference_score(env_id)
        assert ref is not None and (ref.random, ref.reference) == (1.7, 30.5) and "Nature" in ref.source
    pong = reference_score("ALE/Pong-v5")
    assert pong is not None and (pong.random, pong.reference) == (-20.7, 14.6)


def test_real_roms_through_the_factory() -> None:
    for env_id in ("ALE/Pong-v5", "BreakoutNoFrameskip-v4"):
        env = make_env(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=0)
        assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
        frame = env.render()
        assert frame.shape == (210, 160, 3) and not np.array_equal(frame[..., 0], frame[..., 1])  # colour, original size
        for _ in range(20):
            obs, reward, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        env.close()
    envs = make_vec_env("ALE/Breakout-v5", 2)  # dqn-nature: ale-py's C++ emulators, our resets in NumPy
    assert isinstance(envs.unwrapped, AtariNativeVectorEnv)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84)
    envs.close()
    native = make_vec_env("ALE/Pong-v5", 2, preset="machado2018")
    assert isinstance(native.unwrapped, AtariNativeVectorEnv)
    assert native.reset(seed=0)[0].shape == (2, 4, 84, 84)
    native.close()


@pytest.mark.slow
def test_rows_of_the_sync_path_equal_single_envs() -> None:
    envs = make_atari_env("ALE/Breakout-v5", 2, purpose="train", mode="sync")
    obs, _ = envs.reset(seed=10)
    actions = np.random.default_rng(0).integers(0, 4, (60, 2))
    batch = [obs]
    for a in actions:
        batch.append(envs.step(a)[0])
    for i in range(2):
        single = make_atari("ALE/Breakout-v5", purpose="train")
        o, _ = single.reset(seed=10 + i)
        np.testing.assert_array_equal(o, batch[0][i])
        done = False
        for t, a in enumerate(actions[:, i]):
            if done:  # next-step autoreset: this step resets (a life loss continues the game)
                o, _ = single.reset()
                done = False
            else:
                o, _, terminated, truncated, _ = single.step(int(a))
                done = terminated or truncated
            np.testing.assert_array_equal(o, batch[t + 1][i])


# --- equivalence with the peers on real ROMs -------------------------------------------------------------


@pytest.mark.slow
def test_bit_exact_with_sb3_atari_wrapper_and_vec_frame_stack() -> None:
    from stable_baselines3.common.atari_wrappers import AtariWrapper
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

    env_id, steps = "BreakoutNoFrameskip-v4", 300
    sb3 = VecFrameStack(DummyVecEnv([lambda: AtariWrapper(gym.make(env_id))]), n_stack=4)
    sb3.seed(123)
    ref_obs = sb3.reset()  # (1, 84, 84, 4)
    rgb = dataclasses.replace(ATARI_PRESETS["dqn-nature"], grayscale_source="rgb")  # SB3 converts RGB frames
    ours = make_atari_env(env_id, 1, rgb, purpose="train", mode="sync")
    obs, _ = ours.reset(seed=123)  # (1, 4, 84, 84)
    np.testing.assert_array_equal(obs, ref_obs.transpose(0, 3, 1, 2))
    dones = 0
    for a in np.random.default_rng(0).integers(0, 4, (steps, 1)):
        ref_obs, ref_rew, ref_done, ref_infos = sb3.step(a)
        obs, rew, terminated, truncated, _ = ours.step(a)
        np.testing.assert_array_equal(rew, ref_rew)
        np.testing.assert_array_equal(terminated | truncated, ref_done)
        if ref_done[0]:  # SB3 resets within the step; we return the final obs now and reset on the next step
            np.testing.assert_array_equal(obs[0], ref_infos[0]["terminal_observation"].transpose(2, 0, 1))
            obs, *_ = ours.step(a)  # the reset step: its action is ignored
            dones += 1
        np.testing.assert_array_equal(obs, ref_obs.transpose(0, 3, 1, 2))
    assert dones >= 2, "too few lives lost to check the resets: lengthen the action sequence"
    sb3.close()
    ours.close()


@pytest.mark.slow
def test_bit_exact_with_gymnasium_atari_preprocessing() -> None:
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    env_id = "ALE/Pong-v5"
    ref = FrameStackObservation(
        AtariPreprocessing(gym.make(env_id, frameskip=1, repeat_action_probability=0.0), noop_max=30, frame_skip=4,
                           screen_size=84, terminal_on_life_loss=False, grayscale_obs=True),
        4, padding_type="zero",
    )
    same = dataclasses.replace(ATARI_PRESETS["dqn-nature"], fire_reset=False)  # gymnasium has no fire reset
    ours = make_atari(env_id, same, purpose="eval")  # no episodic life, raw rewards: as gymnasium
    for seed in (0, 1):
        ref_obs, _ = ref.reset(seed=seed)
        obs, _ = ours.reset(seed=seed)
        np.testing.assert_array_equal(obs, ref_obs)
        for a in np.random.default_rng(seed).integers(0, 6, 200):
            ref_obs, ref_rew, ref_term, _, _ = ref.step(int(a))
            obs, rew, term, _, _ = ours.step(int(a))
            np.testing.assert_array_equal(obs, ref_obs)
            assert rew == ref_rew and term == ref_term


def _assert_same_steps(native: gym.vector.VectorEnv, ours: gym.vector.VectorEnv, actions: np.ndarray) -> tuple[int, int, int]:
    """Step both with `actions`: equal observations, rewards, terminations, truncations and game scores;
    returns (lives lost, games finished, truncations)."""
    lives_lost = games = truncations = 0
    for a in actions:
        got, want = native.step(a), ours.step(a)
        for x, y in zip(got[:4], want[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        finished = want[4].get("_episode", np.zeros(len(a), dtype=bool))
        np.testing.assert_array_equal(got[4].get("_episode", np.zeros(len(a), dtype=bool)), finished)
        for key in ("r", "l"):
            if finished.any():
                np.testing.assert_array_equal(got[4]["episode"][key][finished], want[4]["episode"][key][finished])
        lives_lost += int(got[4]["life_loss"].sum())
        games += int(finished.sum())
        truncations += int(want[3].sum())
    return lives_lost, games, truncations


@pytest.mark.slow
def test_native_path_is_bit_exact_with_the_gymnasium_path_but_for_noop_counts() -> None:
    # dqn-nature minus the no-op starts (their counts come from another generator): fire reset, episodic
    # life, reward clipping, frame stacking and game statistics in NumPy over the C++ emulators.
    p = dataclasses.replace(ATARI_PRESETS["dqn-nature"], noop_max=0)
    native = make_atari_env("ALE/Breakout-v5", 2, p, mode="vector_entry_point")
    ours = make_atari_env("ALE/Breakout-v5", 2, p, mode="sync")
    np.testing.assert_array_equal(native.reset(seed=0)[0], ours.reset(seed=0)[0])
    rng = np.random.default_rng(0)
    lives_lost, games, _ = _assert_same_steps(native, ours, rng.integers(0, 4, (200, 2)))
    assert lives_lost >= 10 and games >= 2, "too few resets to check: lengthen the action sequence"
    mask = np.array([False, True])  # a partial reset (SB3's VecEnv adapter asks for these)
    np.testing.assert_array_equal(native.reset(options={"reset_mask": mask})[0],
                                  ours.reset(options={"reset_mask": mask})[0])
    _assert_same_steps(native, ours, rng.integers(0, 4, (10, 2)))
    native.close()
    ours.close()
    # the frame cap: with no no-op starts agent steps end on multiples of 4 frames, so both stop at 80
    capped = dataclasses.replace(p, max_frames=80)
    native = make_atari_env("ALE/Breakout-v5", 2, capped, mode="vector_entry_point")
    ours = make_atari_env("ALE/Breakout-v5", 2, capped, mode="sync")
    np.testing.assert_array_equal(native.reset(seed=3)[0], ours.reset(seed=3)[0])
    assert _assert_same_steps(native, ours, np.full((45, 2), 1))[2] >= 2  # always FIRE: games last
    native.close()
    ours.close()
    with pytest.raises(AtariError, match="sync or async"):
        make_atari_env("ALE/Breakout-v5", 2, dataclasses.replace(p, grayscale_source="rgb"), mode="vector_entry_point")
    # through SB3's VecEnv adapter, which resets done rows at once with reset_mask (as SB3 agents see it)
    from rlsuite.agents.sb3_vecenv import SB3VecEnv

    native_sb3 = SB3VecEnv(make_atari_env("ALE/Breakout-v5", 2, p, mode="vector_entry_point", record_stats=False))
    ours_sb3 = SB3VecEnv(make_atari_env("ALE/Breakout-v5", 2, p, mode="sync", record_stats=False))
    native_sb3.seed(5)
    ours_sb3.seed(5)
    np.testing.assert_array_equal(native_sb3.reset(), ours_sb3.reset())
    dones = 0
    for a in rng.integers(0, 4, (80, 2)):
        got, want = native_sb3.step(a), ours_sb3.step(a)
        for x, y in zip(got[:3], want[:3], strict=True):
            np.testing.assert_array_equal(x, y)
        for i in np.flatnonzero(want[2]):
            np.testing.assert_array_equal(got[3][i]["terminal_observation"], want[3][i]["terminal_observation"])
            dones += 1
    assert dones >= 2
    native_sb3.close()
    ours_sb3.close()


@pytest.mark.slow
def test_native_noop_starts_are_seeded_and_uniform_over_1_to_30() -> None:
    envs = make_atari_env("ALE/Breakout-v5", 2)  # dqn-nature, auto: native
    assert isinstance(envs, AtariNativeVectorEnv)
    first = [envs.reset(seed=7)[0]] + [envs.step(np.array([2, 3]))[0] for _ in range(5)]
    again = [envs.reset(seed=7)[0]] + [envs.step(np.array([2, 3]))[0] for _ in range(5)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))  # the same seed replays the same starts
    envs.close()
    # after a reset: the no-op frames, then FIRE and action 2, 4 frames each (NoopReset and FireReset);
    # evaluation envs (no episodic life) start a new game on every reset
    envs = make_atari_env("ALE/Breakout-v5", 2, purpose="eval", mode="vector_entry_point")
    envs.reset(seed=0)
    counts = np.concatenate([envs.reset()[1]["episode_frame_number"] - 8 for _ in range(150)])
    envs.close()
    assert counts.min() == 1 and counts.max() == 30 and len(set(counts.tolist())) == 30


# --- evaluation protocol and recording -------------------------------------------------------------------


class _RandomPolicy:
    def __init__(self, env: gym.Env) -> None:
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.rng = np.random.default_rng(0)

    def reset(self, num_envs: int) -> None:
        self.rng = np.random.default_rng(0)

    def act(self, obs: np.ndarray, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return self.rng.integers(0, self.action_space.n, len(obs))


@pytest.mark.slow
def test_harness_plays_whole_games_with_raw_scores_and_record_replays_them(tmp_path) -> None:
    from rlsuite.evaluation.harness import evaluate_policy
    from rlsuite.evaluation.video import annotate, record_episodes

    env_id = "ALE/Breakout-v5"
    env = make_env(env_id)
    policy = _RandomPolicy(env)
    env.close()
    (record,) = evaluate_policy(policy, env_id, episodes=1)
    assert record.metrics["lives"] == 0  # the whole game, not one life
    assert record.length > 100
    video = tmp_path / "breakout.mp4"
    (replayed,) = record_episodes(policy, env_id, video, seeds=[record.seed])
    assert (replayed.episode_return, replayed.length) == (record.episode_return, record.length)
    frame = _first_video_frame(video)
    # 210x160 colour game frames, upscaled 2x for the overlay text, below the overlay's three-line band
    band = annotate(np.zeros((420, 320, 3), np.uint8), ["env", "episode", "status"]).shape[0] - 420
    assert band > 0 and frame.shape == (band + 420, 320, 3)


def _first_video_frame(path) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


@pytest.mark.slow
def test_cli_trains_ppo_on_pong_and_evaluation_records_the_protocol(tmp_path) -> None:
    import json

    from rlsuite.evaluation.evaluate import evaluate_run
    from rlsuite.train import train

    run, result = train("ppo", "ALE/Pong-v5", cli_values={"total_steps": 256},
                        set_args=["eval_every=0", "n_envs=2", "n_steps=64", "n_epochs=1", "tensorboard=false"],
                        run_dir=tmp_path / "run", show_progress=False)
    assert result.status == "finished"
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert manifest["settings"]["env_preset"] == "dqn-nature" and manifest["settings"]["cnn"] == "nature"
    assert manifest["env_preprocessing"]["name"] == "dqn-nature"
    assert manifest["env_preprocessing"]["clip_rewards"] is True
    outcome = evaluate_run(run.path, checkpoint="last", episodes=1, db=tmp_path / "results.db")
    protocol = outcome.evaluation.protocol["env_preprocessing"]
    assert protocol["purpose"] == "eval" and protocol["episodic_life"] is False and protocol["clip_rewards"] is False
    assert -21 <= outcome.episodes[0].episode_return <= 21 and outcome.episodes[0].length > 100  # a whole game
