"""Crash-safe training as a user meets it: a real `rlsuite train` killed with SIGKILL (during a checkpoint write,
or between checkpoints), then `--resume`, ends with the same weights, bit for bit, and the same metric rows as a
run never interrupted; ALE resumes inexactly and says so; `--steps` extends a run; other flags are refused."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_cli import assert_user_error

from rlsuite.agents.fileio import KILL_HOOK_ENV

KILLED = -signal.SIGKILL


def rlsuite(*args: str, cwd: Path, kill_hook: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    if kill_hook is not None:
        env[KILL_HOOK_ENV] = kill_hook
    return subprocess.run([sys.executable, "-m", "rlsuite.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def kill_when_logged(args: list[str], cwd: Path, run_dir: Path, step: int, timeout: float = 600) -> None:
    """Start `rlsuite train`, SIGKILL it as soon as metrics.csv holds a row at or past `step`."""
    proc = subprocess.Popen([sys.executable, "-m", "rlsuite.cli", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + timeout
    metrics = run_dir / "metrics.csv"
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and any(int(row[0]) >= step for row in _rows(metrics)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == KILLED, f"the run ended before it could be killed (exit {proc.returncode}): {stderr}"


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return [row for row in csv.reader(f) if len(row) == 4 and row[0] != "step"]


def metric_rows(run_dir: Path) -> list[tuple[str, str, str]]:
    """(step, key, value) of every logged row but the clock ones (wall time, steps per second, CPU seconds)."""
    clocks = ("charts/sps", "charts/process_cpu_s")
    return [(row[0], row[2], row[3]) for row in _rows(run_dir / "metrics.csv") if row[2] not in clocks]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(run_dir / "checkpoints" / "last.safetensors")
    return {k: v for k, v in tensors.items() if k.startswith(("model.", "target.", "optim.", "rng."))}


def assert_same_run(resumed: Path, reference: Path) -> None:
    a, b = weights(resumed), weights(reference)
    assert a.keys() == b.keys() and a
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights or RNG states differ from the uninterrupted run: {different[:5]}"
    assert metric_rows(resumed) == metric_rows(reference)  # no row lost, none logged twice
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["resume_exact"] is True
    assert all(entry["exact"] for entry in manifest["resumed"])


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


PPO_CARTPOLE = ["train", "--agent", "ppo", "--env", "CartPole-v1", "--steps", "2048", "--seed", "3", "--no-progress",
                "--set", "n_envs=4", "--set", "n_steps=32", "--set", "n_epochs=2", "--set", "tensorboard=false",
                "--set", "eval_every=512", "--set", "eval_episodes=2", "--set", "checkpoint_interval_updates=3"]


@pytest.fixture(scope="module")
def ppo_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("reference")
    result = rlsuite(*PPO_CARTPOLE, "--run-dir", str(cwd / "run"), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "run"


def test_a_seeded_run_saves_the_same_checkpoint_every_time(tmp_path, ppo_reference):
    """Every tensor of `last`, the global RNG states included (python `random` too, which nothing draws from)."""
    assert rlsuite(*PPO_CARTPOLE, "--run-dir", str(tmp_path / "run"), cwd=tmp_path).returncode == 0
    again, reference = (load_file(run / "checkpoints" / "last.safetensors") for run in (tmp_path / "run", ppo_reference))
    assert again.keys() == reference.keys() and {"rng.python", "rng.numpy", "rng.torch"} <= again.keys()
    assert [k for k in again if not torch.equal(again[k], reference[k])] == []


def test_ppo_cartpole_killed_during_a_checkpoint_write_resumes_bit_exact(tmp_path, ppo_reference):
    run = tmp_path / "run"
    killed = rlsuite(*PPO_CARTPOLE, "--run-dir", str(run), cwd=tmp_path, kill_hook="last.safetensors:2")
    assert killed.returncode == KILLED, killed.stderr
    checkpoints = {p.name for p in (run / "checkpoints").iterdir()}
    assert any(name.startswith(".last.safetensors.") for name in checkpoints)  # the write the kill cut short
    assert manifest(run)["status"] == "running"
    resumed = rlsuite("train", "--resume", str(run), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    # the second `last` (step 768) never landed: the newest complete checkpoint is `best`, from the evaluation at 512
    assert manifest(run)["resumed"][0]["step"] == 512
    assert not any(p.name.endswith(".tmp") for p in (run / "checkpoints").iterdir())  # resume cleared it
    assert_same_run(run, ppo_reference)


def test_ppo_cartpole_killed_between_checkpoints_resumes_bit_exact(tmp_path, ppo_reference):
    run = tmp_path / "run"
    # past the first `last` (update 3) and the evaluation at step 512: `best` (step 512) is the newest checkpoint
    kill_when_logged([*PPO_CARTPOLE, "--run-dir", str(run)], tmp_path, run, step=640)
    assert rlsuite("train", "--resume", str(run), "--no-progress", cwd=tmp_path).returncode == 0
    assert_same_run(run, ppo_reference)


def test_resume_steps_extends_a_finished_run_and_stretches_the_schedule(tmp_path, ppo_reference):
    run = tmp_path / "run"
    shutil.copytree(ppo_reference, run)
    result = rlsuite("train", "--resume", str(run), "--steps", "2560", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    m = manifest(run)
    assert m["status"] == "finished" and m["final_step"] == 2560 and m["settings"]["total_steps"] == 2560
    assert m["extended"] == [{"at_step": 2048, "from_total_steps": 2048, "to_total_steps": 2560}]
    lr = {int(step): float(value) for step, key, value in metric_rows(run) if key == "charts/learning_rate"}
    # 20 updates of 128 steps now; update u (1-based) anneals to lr0 * (1 - (u - 1) / 20)
    lr0 = m["settings"]["learning_rate"]
    assert lr[17 * 128] == pytest.approx(lr0 * (1 - 16 / 20), rel=1e-12)
    assert lr[20 * 128] == pytest.approx(lr0 * (1 - 19 / 20), rel=1e-12)
    assert lr[16 * 128] == pytest.approx(lr0 * (1 - 15 / 16), rel=1e-12)  # the first 2048 steps as they were


def test_resume_refuses_flags_that_would_change_the_run(tmp_path, ppo_reference):
    for flags in (["--set", "learning_rate=0.1"], ["--seed", "4"], ["--agent", "dqn"], ["--config", "x.yaml"]):
        result = rlsuite("train", "--resume", str(ppo_reference), *flags, cwd=tmp_path)
        assert_user_error(result, f"{flags[0]} cannot change a run being resumed")
    assert_user_error(rlsuite("train", "--resume", str(ppo_reference), cwd=tmp_path), "already finished", "--steps N")
    assert_user_error(rlsuite("train", "--resume", str(ppo_reference), "--steps", "1024", cwd=tmp_path),
                      "does not extend", "2048 steps already")


DQN_CARTPOLE = ["train", "--agent", "dqn", "--env", "CartPole-v1", "--steps", "1200", "--seed", "2", "--no-progress",
                "--set", "learning_starts=200", "--set", "buffer_size=1000", "--set", "train_freq=4",
                "--set", "gradient_steps=1", "--set", "batch_size=16", "--set", "hidden_sizes=[32]",
                "--set", "target_update_interval=100",
                "--set", "eval_every=0", "--set", "tensorboard=false", "--set", "checkpoint_interval_updates=300"]


def test_dqn_cartpole_killed_mid_write_and_between_checkpoints_resumes_bit_exact(tmp_path):
    reference = tmp_path / "reference"
    assert rlsuite(*DQN_CARTPOLE, "--run-dir", str(reference), cwd=tmp_path).returncode == 0
    run = tmp_path / "run"
    killed = rlsuite(*DQN_CARTPOLE, "--run-dir", str(run), cwd=tmp_path, kill_hook="last.safetensors:2")
    assert killed.returncode == KILLED, killed.stderr
    assert rlsuite("train", "--resume", str(run), "--no-progress", cwd=tmp_path).returncode == 0
    assert manifest(run)["resumed"][0]["step"] == 300  # the replay buffer came back with it
    assert_same_run(run, reference)

    run = tmp_path / "run2"
    kill_when_logged([*DQN_CARTPOLE, "--run-dir", str(run)], tmp_path, run, step=700)
    assert rlsuite("train", "--resume", str(run), "--no-progress", cwd=tmp_path).returncode == 0
    assert_same_run(run, reference)


@pytest.mark.slow
def test_ppo_highway_killed_during_a_checkpoint_write_resumes_bit_exact(tmp_path):
    args = ["train", "--agent", "ppo", "--env", "rlsuite/Highway-v0", "--steps", "512", "--seed", "1", "--no-progress",
            "--set", "n_envs=2", "--set", "n_steps=32", "--set", "n_epochs=2", "--set", "tensorboard=false",
            "--set", "eval_every=0", "--set", "checkpoint_interval_updates=2"]
    reference, run = tmp_path / "reference", tmp_path / "run"
    assert rlsuite(*args, "--run-dir", str(reference), cwd=tmp_path).returncode == 0
    assert rlsuite(*args, "--run-dir", str(run), cwd=tmp_path, kill_hook="last.safetensors:2").returncode == KILLED
    assert rlsuite("train", "--resume", str(run), "--no-progress", cwd=tmp_path).returncode == 0
    assert_same_run(run, reference)


@pytest.mark.slow
def test_ale_resume_works_and_is_marked_not_exact(tmp_path):
    run = tmp_path / "run"
    args = ["train", "--agent", "ppo", "--env", "ALE/Pong-v5", "--steps", "256", "--no-progress", "--run-dir", str(run),
            "--set", "n_envs=2", "--set", "n_steps=32", "--set", "n_epochs=1", "--set", "tensorboard=false",
            "--set", "eval_every=0", "--set", "checkpoint_interval_updates=1"]
    killed = rlsuite(*args, cwd=tmp_path, kill_hook="last.safetensors:2")
    assert killed.returncode == KILLED, killed.stderr
    assert manifest(run)["exact_resume"]["possible"] is False
    resumed = rlsuite("train", "--resume", str(run), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    m = manifest(run)
    assert m["status"] == "finished" and m["final_step"] == 256 and m["resume_exact"] is False
    assert "ALE" in m["resumed"][0]["reason"]
    steps = [(step, key) for step, key, _ in metric_rows(run) if key.startswith("losses/")]
    assert len(steps) == len(set(steps))  # no update logged twice


@pytest.mark.parametrize(("env_id", "mode"), [("CartPole-v1", "auto"), ("CartPole-v1", "sync"), ("Acrobot-v1", "sync"),
                                              ("Pendulum-v1", "sync"), ("rlsuite/Highway-v0", "auto")])
def test_env_state_round_trip_continues_exactly(env_id, mode):
    """Capture mid-episode, store through a checkpoint tree, restore into a fresh env seeded differently:
    it then steps exactly as the original does (observations, rewards, ends, episode statistics)."""
    import numpy as np

    from rlsuite.agents.checkpoint import pack_tree, unpack_tree
    from rlsuite.agents.env_state import env_state, set_env_state
    from rlsuite.envs import make_vec_env

    original, copy = (make_vec_env(env_id, 3, mode=mode, record_stats=True) for _ in range(2))
    original.reset(seed=5)
    copy.reset(seed=99)
    original.action_space.seed(0)
    actions = [original.action_space.sample() for _ in range(260)]
    for action in actions[:60]:
        original.step(action)
    tensors, packed = pack_tree("env", env_state(original))
    set_env_state(copy, unpack_tree({k: v.clone() for k, v in tensors.items()}, packed))
    for action in actions[60:]:
        a, b = original.step(action), copy.step(action)
        for x, y in zip(a[:4], b[:4], strict=True):
            np.testing.assert_array_equal(x, y)
        assert ("episode" in a[4]) == ("episode" in b[4])
        if "episode" in a[4]:
            np.testing.assert_array_equal(a[4]["episode"]["r"], b[4]["episode"]["r"])
            np.testing.assert_array_equal(a[4]["episode"]["l"], b[4]["episode"]["l"])
    original.close()
    copy.close()
