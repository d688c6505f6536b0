"""Episode videos: checked with ffmpeg (an independent decoder, tests/videoprobe.py), and against the evaluation harness."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from videoprobe import probe

from rlsuite.evaluation.harness import evaluate_policy
from rlsuite.evaluation.video import VideoError, annotate, record_episodes, write_gif, write_mp4

torch.set_num_threads(1)

CARTPOLE = gym.make("CartPole-v1")


class LeanPolicy:
    """CartPole: push toward the pole's lean; deterministic, short seed-dependent episodes (~45 steps)."""

    observation_space = CARTPOLE.observation_space
    action_space = CARTPOLE.action_space

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        return (obs[:, 2] > 0).astype(np.int64)  # (n,)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_recorded_cartpole_is_browser_ready_h264(tmp_path):
    out, gif = tmp_path / "videos" / "episodes.mp4", tmp_path / "videos" / "preview.gif"
    seeds = [1_000_000, 1_000_001]
    records = record_episodes(LeanPolicy(), "CartPole-v1", out, episodes=2, seeds=seeds, gif=gif)

    stream = probe(out)
    assert stream["codec_name"] == "h264"
    assert stream["pix_fmt"] == "yuv420p"
    assert int(stream["nb_read_frames"]) == sum(r.length + 1 for r in records)  # reset frame + one per step
    banded = annotate(np.zeros((400, 600, 3), np.uint8), ["env", "episode", "step"])  # the overlay's band on top
    assert (stream["width"], stream["height"]) == (600, banded.shape[0] + banded.shape[0] % 2)
    assert stream["fps"] == 50  # CartPole's render_fps: real time
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart: playable while downloading

    # The same episodes as the harness measures for those seeds.
    assert records == evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=2, seeds=seeds)

    assert gif.read_bytes()[:4] == b"GIF8"
    preview = probe(gif)
    assert preview["width"] <= 320
    assert int(preview["nb_read_frames"]) == int(
        np.ceil(int(stream["nb_read_frames"]) / 3)
    )  # every 3rd: 50 -> ~17 fps
    assert leftovers(out.parent) == []


def test_default_seeds_are_the_evaluation_seeds(tmp_path):
    records = record_episodes(LeanPolicy(), "CartPole-v1", tmp_path / "a.mp4", overlay=False, fps=25)
    assert records == evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=1)


def test_write_mp4_pads_odd_sizes_and_counts_frames(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (31, 45, 3), dtype=np.uint8) for _ in range(7)]
    out = tmp_path / "odd.mp4"
    assert write_mp4(iter(frames), out, fps=10) == 7
    stream = probe(out)
    assert (stream["width"], stream["height"], int(stream["nb_read_frames"])) == (46, 32, 7)
    assert stream["pix_fmt"] == "yuv420p"


def test_write_gif_downscales(tmp_path):
    frames = [np.full((100, 640, 3), 40 * k, dtype=np.uint8) for k in range(5)]
    out = tmp_path / "small.gif"
    assert write_gif(frames, out, fps=5, max_width=320) == 5
    assert out.read_bytes()[:4] == b"GIF8"
    stream = probe(out)
    assert (stream["width"], stream["height"], int(stream["nb_read_frames"])) == (320, 50, 5)


def test_bad_frames_raise_and_leave_no_file(tmp_path):
    out = tmp_path / "x.mp4"
    with pytest.raises(VideoError, match="no frames"):
        write_mp4([], out)
    with pytest.raises(VideoError, match="uint8"):
        write_mp4([np.zeros((8, 8, 3), dtype=np.float32)], out)
    with pytest.raises(VideoError, match="one size"):
        write_mp4([np.zeros((8, 8, 3), np.uint8), np.zeros((10, 8, 3), np.uint8)], out)

    def failing():
        yield np.zeros((8, 8, 3), np.uint8)
        raise RuntimeError("policy crashed")

    with pytest.raises(RuntimeError, match="policy crashed"):
        write_mp4(failing(), out)
    assert list(tmp_path.iterdir()) == []  # no half-written video, no temp file


def test_failed_rewrite_keeps_the_old_video(tmp_path):
    out = tmp_path / "keep.mp4"
    write_mp4([np.zeros((8, 8, 3), np.uint8)] * 3, out)
    before = out.read_bytes()
    with pytest.raises(VideoError):
        write_mp4([np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4, 3), np.uint8)], out)
    assert out.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_annotate_puts_text_in_a_band_outside_the_scene():
    frame = np.random.default_rng(0).integers(0, 256, (400, 600, 3), dtype=np.uint8)
    original = frame.copy()
    out = annotate(frame, ["CartPole-v1  episode 1/1  seed 1000000", "step 3   action 1   reward 1   return 3"])
    band = out.shape[0] - 400
    assert out.dtype == np.uint8 and out.shape[1:] == (600, 3) and 0 < band < 100
    assert np.array_equal(frame, original)  # the input is untouched
    assert np.array_equal(out[band:], frame)  # every scene pixel is shown as it was: nothing covers it
    assert (out[:band] == 24).mean() > 0.5 and (out[:band] > 200).any()  # dark band, light text
    # the band's height does not depend on the text, so every frame of a video has one size
    assert annotate(frame, ["x", "y"]).shape == out.shape


def test_annotate_upscales_atari_sized_frames():
    frame = np.random.default_rng(1).integers(0, 256, (84, 84, 3), dtype=np.uint8)
    out = annotate(frame, ["ALE/Breakout-v5  episode 1/1  seed 1000000", "step 0"])
    band = out.shape[0] - 336
    assert out.shape[1:] == (336, 3) and band > 0  # a whole factor (4) so pixels stay square
    assert np.array_equal(out[band:][::4, ::4], frame)  # nearest-neighbour copies, uncovered


def test_annotate_band_height_does_not_depend_on_how_long_the_lines_are():
    """Lines too wide for the frame are drawn smaller, inside the same band: a long action or return on one
    step must not change the video's frame size (ffmpeg needs one size)."""
    frame = np.zeros((210, 160, 3), np.uint8)  # an Atari screen, upscaled to 420x320
    short = annotate(frame, ["ALE/Pong-v5", "step 1"])
    long = annotate(frame, ["ALE/Pong-v5  episode 1/1  seed 1000000  checkpoint last",
                            "step 3051   action 3   reward -1   return 11   epsilon 0.05   lives 0"])
    assert short.shape == long.shape
    assert np.array_equal(long[-420:], short[-420:])  # the same scene under the band


class NoPixelsEnv(gym.Env):
    """An env that renders nothing (its metadata offers no rgb_array)."""

    metadata: dict[str, Any] = {"render_modes": []}
    observation_space = CARTPOLE.observation_space
    action_space = CARTPOLE.action_space

    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return np.zeros(4, dtype=np.float32), {}

    def step(self, action: int):
        return np.zeros(4, dtype=np.float32), 0.0, True, False, {}


class NoRenderArgEnv(NoPixelsEnv):
    """An env whose constructor does not even take render_mode."""

    def __init__(self) -> None:
        self.render_mode = None


@pytest.mark.parametrize("entry_point", [NoPixelsEnv, NoRenderArgEnv])
def test_env_without_rgb_array_raises(tmp_path, entry_point):
    env_id = f"VideoTest{entry_point.__name__}-v0"
    gym.register(env_id, entry_point=entry_point)
    try:
        with pytest.raises(VideoError, match="cannot render rgb_array"):
            record_episodes(LeanPolicy(), env_id, tmp_path / "none.mp4")
    finally:
        del gym.registry[env_id]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Barely trained ppo and sb3-ppo runs on CartPole-v1 (seconds): policies whose actions vary by state."""
    from rlsuite.train import train

    root = tmp_path_factory.mktemp("tiny_runs")
    runs = {}
    for agent, extra in (("ppo", []), ("sb3-ppo", ["n_steps=128", "batch_size=64"])):
        run, _ = train(agent, "CartPole-v1", cli_values={"total_steps": 512, "n_envs": 2},
                       set_args=["eval_every=0", *extra], runs_root=root, show_progress=False)
        runs[agent] = run.path
    return runs


@pytest.mark.parametrize("agent", ["random", "ppo", "sb3-ppo"])
def test_record_replays_the_evaluated_episode_for_every_agent(agent, tiny_runs, tmp_path):
    """Evaluation = recording: an episode recorded alone equals the one the harness measured in a wave of 8
    (the random baseline once drew from one stream for the whole wave, so its recordings differed)."""
    from rlsuite.agents.registry import load_policy, make_baseline
    from rlsuite.envs import make_env

    if agent == "random":
        env = make_env("CartPole-v1")
        policy = make_baseline("random", env, seed=0)
        env.close()
    else:
        policy = load_policy(tiny_runs[agent], "last").policy
    evaluated = evaluate_policy(policy, "CartPole-v1", episodes=10)  # waves of 8 and 2
    for episode in (evaluated[0], evaluated[5], evaluated[9]):
        (recorded,) = record_episodes(policy, "CartPole-v1", tmp_path / f"{episode.seed}.mp4", seeds=[episode.seed],
                                      overlay=False)
        assert recorded == replace(episode, index=0), agent


def test_epsilon_greedy_draws_per_episode_and_record_agrees(tmp_path):
    """Atari-style evaluation with epsilon: the random actions belong to the episode's seed, not its wave."""
    evaluated = evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=9, epsilon=0.3)
    greedy = evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=9, epsilon=0.0)
    assert evaluated != greedy  # epsilon does act
    alone = evaluate_policy(LeanPolicy(), "CartPole-v1", episodes=1, seeds=[evaluated[8].seed], epsilon=0.3)
    assert alone == [replace(evaluated[8], index=0)]
    (recorded,) = record_episodes(LeanPolicy(), "CartPole-v1", tmp_path / "e.mp4", seeds=[evaluated[4].seed],
                                  overlay=False, epsilon=0.3)
    assert recorded == replace(evaluated[4], index=0)


def test_max_steps_cuts_a_recording(tmp_path):
    (record,) = record_episodes(LeanPolicy(), "CartPole-v1", tmp_path / "short.mp4", max_steps=5, overlay=False)
    assert record.length == 5
