"""SpokenReach: the shipped clips, log-mel features against direct computation, the env's contract."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)
from rlsuite.envs import speech_data as sd
from rlsuite.envs.spoken import SpokenReachEnv, SpokenReachVectorEnv, _padded


@pytest.fixture(scope="module")
def clips() -> sd.SpeechClips:
    return sd.load_clips()


def test_shipped_clips_count_rate_duration_and_loudness(clips: sd.SpeechClips) -> None:
    voices = len(sd.ACCENTS) * (len(sd.TRAIN_VARIANTS) + len(sd.HELDOUT_VARIANTS))
    assert len(clips.voices) == voices
    expected = len(sd.WORDS) * len(sd.ACCENTS) * (len(sd.TRAIN_VARIANTS) * sd.TRAIN_RENDITIONS
                                                   + len(sd.HELDOUT_VARIANTS) * sd.HELDOUT_RENDITIONS)
    assert len(clips) == expected == 288
    assert clips.sample_rate == 16_000 and clips.audio.dtype == np.int16
    seconds = np.diff(clips.offsets) / clips.sample_rate
    assert seconds.min() >= 0.2 and seconds.max() <= 0.9  # one word each, silence trimmed
    for i in range(len(clips)):
        wave = clips.clip(i).astype(np.float64) / 32768
        assert np.abs(wave).max() > 0.85  # peak-normalised to 0.9
        frame_rms = np.sqrt(np.mean(wave[: len(wave) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
        assert (frame_rms > 0.05).mean() > 0.3  # speech, not a click in silence
    assert sd.DATA_PATH.stat().st_size < 4_000_000  # a few MB


def test_voice_splits_are_disjoint_and_each_voice_says_every_word(clips: sd.SpeechClips) -> None:
    train = {clips.voices[v] for v in clips.voice[~clips.heldout]}
    heldout = {clips.voices[v] for v in clips.voice[clips.heldout]}
    assert train and heldout and not train & heldout
    # disjoint by timbre too: no voice variant is heard in both splits
    assert not {v.split("+")[1] for v in train} & {v.split("+")[1] for v in heldout}
    for v in range(len(clips.voices)):
        assert sorted(clips.word[clips.voice == v]) == list(range(len(sd.WORDS)))


def test_log_mel_of_a_sine_peaks_in_the_band_of_its_frequency() -> None:
    t = np.arange(sd.SAMPLE_RATE) / sd.SAMPLE_RATE  # 1 s
    for freq in (300.0, 1000.0, 3000.0):
        features = sd.log_mel(0.5 * np.sin(2 * np.pi * freq * t))
        assert features.shape == (98, 40) == (sd.frames_for(1.0), sd.N_MELS)
        mel = 2595 * np.log10(1 + freq / 700)
        centres = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 42)[1:-1]  # HTK mel band centres
        assert abs(int(np.median(features.argmax(1))) - int(np.abs(centres - mel).argmin())) <= 1


def test_cached_shifted_features_equal_features_of_the_shifted_waveform() -> None:
    env = gym.make("rlsuite/SpokenReach-v0", snr_db=None)
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        core = env.unwrapped.core
        heard = core.waveform(env.unwrapped.state, 0)  # the shifted clip, as samples
        np.testing.assert_allclose(obs["audio"], sd.log_mel(heard), rtol=1e-4, atol=1e-3)


def test_noise_is_at_the_requested_snr() -> None:
    quiet = gym.make("rlsuite/SpokenReach-v0", snr_db=None)
    noisy = gym.make("rlsuite/SpokenReach-v0", snr_db=10.0)
    quiet.reset(seed=4)
    noisy.reset(seed=4)
    clean, mixed = quiet.unwrapped.core.waveform(quiet.unwrapped.state, 0), noisy.unwrapped.core.waveform(noisy.unwrapped.state, 0)
    clip_power = _padded(int(quiet.unwrapped.state.clip[0]))[2]
    noise_power = np.mean((mixed - clean).astype(np.float64) ** 2)
    assert 10 * np.log10(clip_power / noise_power) == pytest.approx(10.0, abs=0.3)


@pytest.mark.parametrize("env_id", ["rlsuite/SpokenReach-v0", "rlsuite/SpokenReachImage-v0"])
def test_passes_gymnasium_env_checker(env_id: str) -> None:
    check_env(gym.make(env_id).unwrapped, skip_render_check=True)


def test_vector_rows_equal_single_envs_and_autoreset() -> None:
    num_envs = 3
    vec = gym.make_vec("rlsuite/SpokenReach-v0", num_envs=num_envs, vectorization_mode="vector_entry_point",
                       max_episode_steps=5)
    singles = [gym.make("rlsuite/SpokenReach-v0", max_episode_steps=5) for _ in range(num_envs)]
    vec_obs, _ = vec.reset(seed=21)
    single_obs = [env.reset(seed=21 + i)[0] for i, env in enumerate(singles)]
    rng = np.random.default_rng(0)
    for t in range(12):
        for key in vec_obs:
            np.testing.assert_allclose(vec_obs[key], np.stack([o[key] for o in single_obs]), rtol=1e-6, atol=1e-6)
        actions = rng.uniform(-1, 1, (num_envs, 2)).astype(np.float32)
        vec_obs, rewards, _, truncated, _ = vec.step(actions)
        if t in (5, 11):
            assert (rewards == 0).all()
            single_obs = [env.reset()[0] for env in singles]
        else:
            steps = [env.step(actions[i]) for i, env in enumerate(singles)]
            single_obs = [s[0] for s in steps]
            np.testing.assert_allclose(rewards, [s[1] for s in steps], rtol=1e-12)
            assert truncated.all() == (t in (4, 10))


def test_voice_split_mute_and_commands() -> None:
    clips = sd.load_clips()
    for voices, heldout in (("train", False), ("heldout", True)):
        env = gym.make("rlsuite/SpokenReach-v0", voices=voices)
        for seed in range(10):
            env.reset(seed=seed)
            core = env.unwrapped.state
            assert bool(clips.heldout[core.clip[0]]) == heldout
            assert clips.word[core.clip[0]] == core.command[0]  # the clip says the named colour
    muted = gym.make("rlsuite/SpokenReach-v0", mute=True)
    obs, _ = muted.reset(seed=0)
    assert not obs["audio"].any()
    with pytest.raises(ValueError, match="voices"):
        gym.make("rlsuite/SpokenReach-v0", voices="test")


def test_reward_right_and_wrong_target() -> None:
    env = gym.make("rlsuite/SpokenReach-v0", wrong_penalty_on="step")  # the penalty on this very step
    env.reset(seed=3)
    core = env.unwrapped.state
    env.step(np.zeros(2, np.float32))
    tip = core.arm.tip[0].copy()
    wrong = (core.command[0] + 1) % 4
    core.targets[0, wrong] = tip  # a wrong target right under the (nearly still) fingertip
    _, reward, _, _, info = env.step(np.zeros(2, np.float32))
    named_distance = np.linalg.norm(core.arm.tip[0] - core.targets[0, core.command[0]])
    assert info["wrong_target"] and not info["is_success"]
    assert reward == pytest.approx(-named_distance - 1.0)
    core.targets[0, core.command[0]], core.targets[0, wrong] = tip, core.targets[0, core.command[0]].copy()
    core.arm.target[0] = tip
    _, reward, _, _, info = env.step(np.zeros(2, np.float32))
    assert info["is_success"] and not info["wrong_target"] and reward > -0.01


def _penalties(rule: str, inside: list[bool]) -> list[float]:
    """Wrong-target penalty per step (reward + named distance + control cost) of one 6-step episode
    (max_episode_steps=6) whose fingertip sits on a wrong target on the steps marked True."""
    env = SpokenReachEnv(wrong_penalty=0.5, wrong_penalty_on=rule, max_episode_steps=6)
    env.reset(seed=3)
    core = env.state
    wrong = (core.command[0] + 1) % 4
    away = core.targets[0, wrong].copy()
    out = []
    for on in inside:
        # the arm barely moves under zero torque: put the wrong target under the fingertip (or away) before the step
        core.targets[0, wrong] = core.arm.tip[0] if on else away
        _, reward, _, truncated, info = env.step(np.zeros(2, np.float32))
        named_distance = np.linalg.norm(core.arm.tip[0] - core.targets[0, core.command[0]])
        assert info["wrong_target"] == on and truncated == (len(out) == 5)
        out.append(round(-(reward + named_distance), 6))
    return out


def test_wrong_target_penalty_rules() -> None:
    """"step" charges every step on a wrong target, "enter" the steps that enter one, "end" only the last
    step if it ends on one (by hand: 0.5 per event)."""
    inside = [False, True, True, False, True, True]
    assert _penalties("step", inside) == [0, 0.5, 0.5, 0, 0.5, 0.5]
    assert _penalties("enter", inside) == [0, 0.5, 0, 0, 0.5, 0]
    assert _penalties("end", inside) == [0, 0, 0, 0, 0, 0.5]
    assert _penalties("end", inside[:5] + [False]) == [0] * 6
    assert gym.make("rlsuite/SpokenReach-v0").unwrapped.core.wrong_penalty_on == "end"  # the default
    with pytest.raises(ValueError, match="wrong_penalty_on"):
        gym.make("rlsuite/SpokenReach-v0", wrong_penalty_on="always")


def test_image_variant_reports_where_each_target_is_in_the_image() -> None:
    """info["target_xy"] (image variant, vector env): each target's centre in the -1 .. 1 image frame, equal
    to the centroid of its colour's pixels in the observed image (within half a pixel: anti-aliased edges)."""
    from rlsuite.envs.spoken import COLOURS

    vec = SpokenReachVectorEnv(3, image=True)
    obs, info = vec.reset(seed=1)
    for _ in range(2):
        for i in range(3):
            image = obs["image"][i].astype(int)
            for k, rgb in enumerate(COLOURS.values()):
                rows, cols = np.nonzero(np.abs(image - np.array(rgb)).sum(-1) < 30)
                centroid = [(cols.mean() + 0.5) / 32 - 1, (rows.mean() + 0.5) / 32 - 1]
                np.testing.assert_allclose(info["target_xy"][i, k], centroid, atol=0.5 / 32)
        obs, _, _, _, info = vec.step(np.zeros((3, 2), np.float32))
    assert "target_xy" not in SpokenReachVectorEnv(2).reset(seed=0)[1]


def test_render_shows_arena_spectrogram_and_caption() -> None:
    env = gym.make("rlsuite/SpokenReach-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape[1] == 256 and frame.shape[0] > 256 + 64
    strip = frame[256 : 256 + 64]
    assert strip.std() > 10  # the spectrogram is drawn, not blank
    audio, rate = env.unwrapped.command_audio()
    assert rate == 16_000 and audio.shape == (16_000,) and np.abs(audio).max() > 0.5


def test_recorded_video_carries_the_spoken_command(tmp_path) -> None:
    import subprocess

    from rlsuite.agents.baselines import RandomPolicy
    from rlsuite.evaluation.video import ffmpeg_exe, record_episodes

    env = gym.make("rlsuite/SpokenReach-v0")
    policy = RandomPolicy(env.observation_space, env.action_space, seed=0)
    out = tmp_path / "spoken.mp4"
    record_episodes(policy, "rlsuite/SpokenReach-v0", out, episodes=2, max_episode_steps=25, overlay=False)
    decoded = subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(out), "-vn", "-f", "s16le", "-ac", "1",
                              "-ar", "16000", "-"], capture_output=True, check=True).stdout
    sound = np.frombuffer(decoded, "<i2").astype(np.float64) / 32768
    per_episode = int(26 / 50 * 16_000)  # 26 frames at 50 fps
    assert len(sound) >= 2 * per_episode - 2048
    # each episode's first second holds its command; compare with what the env says it played
    for index in range(2):
        env.reset(seed=1_000_000 + index)
        heard, _ = env.unwrapped.command_audio()
        start = index * per_episode
        expected_energy = np.sum(heard[:per_episode] ** 2)
        got_energy = np.sum(sound[start : start + per_episode] ** 2)
        assert got_energy == pytest.approx(expected_energy, rel=0.25)


def test_clips_say_their_words_in_held_out_voices_too(clips: sd.SpeechClips) -> None:
    """A nearest-centroid classifier on log-mel features (mean over three time thirds), fitted on the
    training voices, names the word of held-out voices' clips far above chance (1/4): the labels are
    right and the held-out split is learnable from the training voices (measured 99% on both)."""

    def features(i: int) -> np.ndarray:
        spectrogram = sd.log_mel(clips.clip(i).astype(np.float64) / 32768)  # (frames, 40)
        f = np.concatenate([part.mean(0) for part in np.array_split(spectrogram, 3, axis=0)])
        return (f - f.mean()) / f.std()

    feats = np.stack([features(i) for i in range(len(clips))])
    train = ~clips.heldout
    centroids = np.stack([feats[train & (clips.word == w)].mean(0) for w in range(len(clips.words))])
    predicted = np.argmin(((feats[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (predicted[train] == clips.word[train]).mean() >= 0.95
    assert (predicted[~train] == clips.word[~train]).mean() >= 0.95


@pytest.mark.slow
def test_listening_baseline_by_voice_split_and_muted() -> None:
    """spoken_pd (nearest-centroid on what it hears, then IK + PD): measured 100% success on training
    voices, 94% on held-out voices at 20 dB SNR, 21% with the audio zeroed (chance: 25%)."""
    from rlsuite.agents.registry import make_baseline
    from rlsuite.evaluation.harness import evaluate_policy

    def success(**kwargs: object) -> float:
        policy = make_baseline("spoken_pd", gym.make("rlsuite/SpokenReach-v0", **kwargs))
        episodes = evaluate_policy(policy, "rlsuite/SpokenReach-v0", episodes=40, n_envs=40, env_kwargs=kwargs,
                                   seeds=range(3_000_000, 3_000_040))
        return float(np.mean([e.metrics["is_success"] for e in episodes]))

    assert success(voices="train") >= 0.95
    assert success(voices="heldout") >= 0.85
    assert success(voices="heldout", mute=True) <= 0.45
