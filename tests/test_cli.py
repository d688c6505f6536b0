"""The `rlsuite` command as a user runs it: real subprocesses, exit codes, run folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlsuite.agents.logger import read_metrics


def rlsuite(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "rlsuite.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    text = " ".join(result.stderr.split())  # rich wraps long lines
    for fragment in fragments:
        assert fragment in text, text


def test_list_agents_and_envs(tmp_path):
    agents = rlsuite("list", "agents", cwd=tmp_path)
    assert agents.returncode == 0 and "ppo" in agents.stdout and "random" in agents.stdout
    envs = rlsuite("list", "envs", cwd=tmp_path)
    assert envs.returncode == 0 and "CartPole-v1" in envs.stdout and "Pendulum-v1" in envs.stdout


@pytest.mark.parametrize("args, fragments", [
    (["--env", "CartPol-v1"], ["Unknown env id 'CartPol-v1'", "CartPole-v1"]),
    (["--agent", "ppx"], ["Unknown agent 'ppx'", "ppo"]),
    (["--agent", "random"], ["baseline", "rlsuite evaluate --agent random"]),
    (["--set", "learning_rat=0.1"], ["learning_rat", "learning_rate"]),
    (["--set", "n_epochs=many"], ["n_epochs", "many"]),
    (["--set", "activation=sigmoid"], ["activation", "tanh"]),
    (["--set", "n_minibatches=0"], ["n_minibatches", "[1,"]),
])
def test_bad_training_input_is_a_clear_error_and_leaves_no_run(tmp_path, args, fragments):
    result = rlsuite("train", *args, "--steps", "256", cwd=tmp_path)
    assert_user_error(result, *fragments)
    assert not (tmp_path / "runs").exists()


def test_malformed_yaml_config_names_the_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("learning_rate: 0.001\nn_steps: [1, 2\n")
    assert_user_error(rlsuite("train", "--config", str(config), cwd=tmp_path), "bad.yaml", "line")
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "notarun").mkdir()
    assert_user_error(rlsuite("train", "--resume", str(tmp_path / "notarun"), cwd=tmp_path), "not an rlsuite run")


@pytest.mark.slow
def test_train_writes_a_complete_run_folder_and_survives_ctrl_c(tmp_path):
    # A short run end to end.
    run_dir = tmp_path / "runs" / "short"
    result = rlsuite("train", "--agent", "ppo", "--env", "CartPole-v1", "--steps", "2048", "--n-envs", "4",
                     "--set", "eval_every=1024", "--set", "eval_episodes=3", "--run-dir", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["final_step"] == 2048
    assert manifest["settings"]["n_envs"] == 4 and manifest["settings"]["gamma"] == 0.98  # preset applied
    assert manifest["command"].startswith("rlsuite train --agent ppo")
    assert {"torch", "gymnasium", "numpy"} <= set(manifest["versions"])
    assert {"best.safetensors", "last.safetensors"} <= {p.name for p in (run_dir / "checkpoints").iterdir()}
    metrics = read_metrics(run_dir)
    assert {"charts/episodic_return", "losses/policy_loss", "losses/approx_kl", "charts/sps", "eval/mean_return"} <= set(metrics)
    assert any((run_dir / "tb").iterdir())

    # Ctrl-C: finish the update, checkpoint, mark interrupted, exit 130; then resume to the end.
    run_dir = tmp_path / "runs" / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", "rlsuite.cli", "train", "--steps", "40960", "--n-envs", "4",
                             "--set", "eval_every=0", "--run-dir", str(run_dir), "--no-progress"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ((run_dir / "metrics.csv").exists() and
                                          "losses/policy_loss" in (run_dir / "metrics.csv").read_text()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    assert 0 < manifest["final_step"] < 40960
    assert (run_dir / "checkpoints" / "last.safetensors").exists()

    resumed = rlsuite("train", "--resume", str(run_dir), "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["final_step"] == 40960
    assert len(manifest["resumed"]) == 1
    steps = read_metrics(run_dir)["charts/learning_rate"][0]
    assert len(steps) == len(set(steps.tolist()))  # no update logged twice across the resume


def test_resume_with_a_corrupt_checkpoint_is_refused(tmp_path):
    run_dir = tmp_path / "runs" / "tiny"
    result = rlsuite("train", "--steps", "256", "--n-envs", "4", "--set", "eval_every=0", "--set", "n_steps=32",
                     "--run-dir", str(run_dir), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["status"] = "interrupted"
    manifest_path.write_text(json.dumps(manifest))
    last = run_dir / "checkpoints" / "last.safetensors"
    last.write_bytes(last.read_bytes()[:100])
    assert_user_error(rlsuite("train", "--resume", str(run_dir), cwd=tmp_path), "last.safetensors")


@pytest.mark.slow
def test_report_keeps_env_kwarg_variants_apart_and_takes_references(tmp_path):
    for extra in ([], ["--env-kwarg", "sutton_barto_reward=true"]):
        result = rlsuite("evaluate", "--agent", "random", "--env", "CartPole-v1", "--episodes", "3", "--db", "r.db",
                         *extra, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    variant = "CartPole-v1 (sutton_barto_reward=True)"
    # A variant without a reference score never blocks the report: it is left out of the aggregate, with a note.
    result = rlsuite("report", "--db", "r.db", "--out", "noref", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    noref = (tmp_path / "noref" / "report.md").read_text()
    assert f"{variant} is left out of the aggregates" in noref and f"--reference '{variant}=SCORE'" in noref
    assert_user_error(rlsuite("report", "--db", "r.db", "--reference", "oops", cwd=tmp_path), "is not ENV=SCORE")
    result = rlsuite("report", "--db", "r.db", "--out", "rep", "--reference", f"{variant}=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert f"### {variant}" in md and f"| {variant} | -1.00 | 0.000 |" in md  # the variant's random return is -1
