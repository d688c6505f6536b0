"""Metric logging (CSV rows, resume truncation, read-back) and the checkpointable normalisers, each
checked against a direct computation."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest

from rlsuite.agents.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler, RunningMeanStd

# --- logger -------------------------------------------------------------------------------------------


def _rows(run_dir):
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.reader(f))


def test_logger_writes_long_format_rows(tmp_path):
    with MetricLogger(tmp_path, tensorboard=False) as log:
        log.log(100, {"charts/episodic_return": 12.5, "losses/value_loss": 0.25})
        log.log(200, {"charts/episodic_return": 20.0, "skipped": None})
        # flushed after each call: readable while the logger is still open
        assert len(_rows(tmp_path)) == 4
    rows = _rows(tmp_path)
    assert rows[0] == ["step", "wall_time", "key", "value"]
    assert [(r[0], r[2], float(r[3])) for r in rows[1:]] == [
        ("100", "charts/episodic_return", 12.5),
        ("100", "losses/value_loss", 0.25),
        ("200", "charts/episodic_return", 20.0),
    ]
    assert float(rows[1][1]) > 1e9  # unix time


def test_read_metrics_round_trip_in_step_order(tmp_path):
    assert read_metrics(tmp_path) == {}
    with MetricLogger(tmp_path, tensorboard=False) as log:
        log.log(300, {"a": 3.0})
        log.log(100, {"a": 1.0, "b": 0.1 + 0.2})  # exact float survives the CSV
        log.log(200, {"a": 2.0})
    metrics = read_metrics(tmp_path)
    steps, values = metrics["a"]
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == [100, 200, 300] and values.tolist() == [1.0, 2.0, 3.0]
    assert metrics["b"][1][0] == 0.1 + 0.2


def test_resume_drops_rows_after_checkpoint_and_appends(tmp_path):
    with MetricLogger(tmp_path, tensorboard=False) as log:
        for step in (100, 200, 300, 400):
            log.log(step, {"a": float(step)})
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("500,123.0,a,5")  # a torn row from a killed run, no newline
    with MetricLogger(tmp_path, tensorboard=False, resume_step=200) as log:
        log.log(300, {"a": -3.0})
    steps, values = read_metrics(tmp_path)["a"]
    assert steps.tolist() == [100, 200, 300] and values.tolist() == [100.0, 200.0, -3.0]
    assert _rows(tmp_path)[0] == ["step", "wall_time", "key", "value"]
    assert sum(r[0] == "step" for r in _rows(tmp_path)) == 1


def test_appending_after_torn_line_keeps_rows_apart(tmp_path):
    with MetricLogger(tmp_path, tensorboard=False) as log:
        log.log(1, {"a": 1.0})
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("2,1.0,a")  # torn
    with MetricLogger(tmp_path, tensorboard=False) as log:
        log.log(3, {"a": 3.0})
    assert read_metrics(tmp_path)["a"][0].tolist() == [1, 3]


def test_tensorboard_events_written(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricLogger(tmp_path, tensorboard=True) as log:
        log.log(1, {"a": 1.0})
        log.log(5, {"a": 2.5, "b": -3.0, "skipped": None, "not_finite": float("nan")})
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert sorted(events.Tags()["scalars"]) == ["a", "b"]  # as TensorBoard shows them: None and NaN left out
    assert [(e.step, e.value) for e in events.Scalars("a")] == [(1, 1.0), (5, 2.5)]
    assert [(e.step, e.value) for e in events.Scalars("b")] == [(5, -3.0)]


# --- normalisers --------------------------------------------------------------------------------------


def test_running_mean_std_matches_concatenation():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 2, 3)) for n in (1, 7, 64, 5)]
    everything = np.concatenate(batches)  # (77, 2, 3)
    exact = RunningMeanStd(shape=(2, 3), epsilon=0.0)
    prior = RunningMeanStd(shape=(2, 3))  # default tiny prior count: equal up to ~1e-4 / 77
    for b in batches:
        exact.update(b)
        prior.update(b)
    np.testing.assert_allclose(exact.mean, everything.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(exact.var, everything.var(axis=0), rtol=1e-12)
    assert exact.count == 77
    np.testing.assert_allclose(prior.mean, everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(prior.var, everything.var(axis=0), rtol=1e-5)
    with pytest.raises(ValueError, match="shaped"):
        exact.update(np.zeros((4, 3)))


def test_running_mean_std_agrees_with_stable_baselines3():
    sb3_rms = pytest.importorskip("stable_baselines3.common.running_mean_std")
    rng = np.random.default_rng(3)
    ours, theirs = RunningMeanStd(shape=(4,)), sb3_rms.RunningMeanStd(shape=(4,))
    for n in (3, 1, 50):
        batch = rng.normal(size=(n, 4)) * 10
        ours.update(batch)
        theirs.update(batch)
    np.testing.assert_allclose(ours.mean, theirs.mean, rtol=1e-12)
    np.testing.assert_allclose(ours.var, theirs.var, rtol=1e-12)
    assert ours.count == pytest.approx(theirs.count)


def test_obs_normalizer_box_and_dict(tmp_path):
    space = gym.spaces.Dict(
        {
            "pos": gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32),
            "image": gym.spaces.Box(0, 255, shape=(4, 4, 1), dtype=np.uint8),
            "mode": gym.spaces.Discrete(3),
        }
    )
    norm = ObsNormalizer(space, clip=5.0)
    assert norm.active and list(norm.stats) == ["pos"]
    rng = np.random.default_rng(1)
    batches = [
        {
            "pos": rng.normal([10.0, -2.0], [3.0, 0.5], size=(8, 2)).astype(np.float32),
            "image": rng.integers(0, 255, size=(8, 4, 4, 1), dtype=np.uint8),
            "mode": rng.integers(0, 3, size=8),
        }
        for _ in range(4)
    ]
    for b in batches:
        norm.update(b)
    obs = batches[-1]
    out = norm.normalize(obs)
    allpos = np.concatenate([b["pos"] for b in batches]).astype(np.float64)  # (32, 2)
    expected = np.clip((obs["pos"] - allpos.mean(0)) / np.sqrt(allpos.var(0) + 1e-8), -5, 5)
    assert out["pos"].dtype == np.float32
    np.testing.assert_allclose(out["pos"], expected, rtol=1e-4, atol=1e-4)
    assert out["image"] is obs["image"] and out["mode"] is obs["mode"]
    assert np.abs(norm.normalize({**obs, "pos": obs["pos"] * 1e6})["pos"]).max() == 5.0  # clipped

    save_checkpoint(tmp_path / "n.safetensors", norm.state_tensors("obs_norm"), {})
    tensors, _ = load_checkpoint(tmp_path / "n.safetensors")
    fresh = ObsNormalizer(space, clip=5.0)
    fresh.load_state_tensors("obs_norm", tensors)
    np.testing.assert_array_equal(fresh.normalize(obs)["pos"], out["pos"])
    assert fresh.stats["pos"].count == norm.stats["pos"].count


def test_obs_normalizer_leaves_sequences_to_the_sequence_encoder():
    space = gym.spaces.Dict({"audio": gym.spaces.Box(-np.inf, np.inf, shape=(98, 40), dtype=np.float32),
                             "state": gym.spaces.Box(-np.inf, np.inf, shape=(3,), dtype=np.float32)})
    norm = ObsNormalizer(space)
    assert list(norm.stats) == ["state"]
    obs = {"audio": np.full((2, 98, 40), 5.0, np.float32), "state": np.ones((2, 3), np.float32) * 4.0}
    norm.update(obs)
    out = norm.normalize(obs)
    assert out["audio"] is obs["audio"]
    assert np.abs(out["state"]).max() < 1e-2  # (4 - 4) / std


def test_obs_normalizer_plain_box_and_passthrough():
    box = gym.spaces.Box(-1, 1, shape=(3,), dtype=np.float64)
    norm = ObsNormalizer(box)
    x = np.arange(6, dtype=np.float64).reshape(2, 3)
    norm.update(x)
    assert norm.normalize(x).dtype == np.float32
    assert set(norm.state_tensors("o")) == {"o.mean", "o.var", "o.count"}
    images = ObsNormalizer(gym.spaces.Box(0, 255, shape=(2, 2), dtype=np.uint8))
    assert not images.active
    img = np.ones((1, 2, 2), dtype=np.uint8)
    images.update(img)
    assert images.normalize(img) is img
    with pytest.raises(CheckpointError, match="shape"):
        ObsNormalizer(gym.spaces.Box(-1, 1, shape=(4,))).load_state_tensors("o", norm.state_tensors("o"))


def _reference_reward_scaling(rewards, dones, gamma, clip, eps=1e-8, prior_count=1e-4):
    """Slow reference: loop over envs one by one, keep every discounted return ever seen, and compute the
    variance of (history + the prior pseudo-sample of variance 1 at mean 0) in one shot each step."""
    steps, n = rewards.shape
    ret = [0.0] * n
    history: list[float] = []
    out = np.zeros_like(rewards)
    for t in range(steps):
        for i in range(n):
            ret[i] = ret[i] * gamma + rewards[t, i]
        history.extend(ret)
        h = np.array(history)
        k = len(h)
        total = prior_count + k
        # Chan's merge of two groups: the prior (mean 0, variance 1) and the whole history.
        m2 = 1.0 * prior_count + ((h - h.mean()) ** 2).sum() + h.mean() ** 2 * prior_count * k / total
        var = m2 / total
        for i in range(n):
            out[t, i] = min(max(rewards[t, i] / np.sqrt(var + eps), -clip), clip)
            if dones[t, i]:
                ret[i] = 0.0
    return out


def test_reward_scaler_matches_reference_loop(tmp_path):
    rng = np.random.default_rng(2)
    steps, n, gamma = 60, 3, 0.9
    rewards = rng.normal(5.0, 3.0, size=(steps, n))
    dones = rng.random((steps, n)) < 0.1
    scaler = RewardScaler(n, gamma, clip=4.0)
    got = np.stack([scaler.scale(rewards[t], dones[t]) for t in range(steps)])
    assert got.dtype == np.float32
    expected = _reference_reward_scaling(rewards, dones, gamma, clip=4.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.abs(got).max() <= 4.0

    # State round trip: a restored scaler continues exactly like the original.
    save_checkpoint(tmp_path / "r.safetensors", scaler.state_tensors("reward_scaler"), {})
    tensors, _ = load_checkpoint(tmp_path / "r.safetensors")
    restored = RewardScaler(n, gamma, clip=4.0)
    restored.load_state_tensors("reward_scaler", tensors)
    more = rng.normal(size=(5, n))
    no_dones = np.zeros(n, dtype=bool)
    for r in more:
        np.testing.assert_array_equal(scaler.scale(r, no_dones), restored.scale(r, no_dones))
    with pytest.raises(CheckpointError, match="n_envs=4"):
        RewardScaler(4, gamma).load_state_tensors("reward_scaler", tensors)
    with pytest.raises(ValueError, match="gamma"):
        RewardScaler(2, 1.5)
