"""The training progress display: the loop's own steps/s, the steps actually trained, whole lines in logs."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from test_cli import rlsuite

from rlsuite.progress import TrainingProgress


def plain(total: int = 1000) -> tuple[TrainingProgress, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=40, force_terminal=False)  # a log file: narrower than any line
    return TrainingProgress("dqn CartPole-v1", total, console=console), out


def test_evaluation_metrics_keep_the_loops_steps_per_second():
    progress, out = plain()
    with progress:
        progress.update(100, {"charts/sps": 812.4, "charts/recent_return": 20.0})
        progress.update(200, {"eval/mean_return": 35.5})  # what DQN reports after an evaluation
        assert progress.sps == pytest.approx(812.4)
        progress.update(300, {"charts/sps": 790.0})
        progress.finish(300, done=False)
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("dqn CartPole-v1: 200/1000 steps (20%), 812 steps/s, return 35.5, 0:00:")
    assert all(" 0 steps/s" not in line for line in lines)


def test_plain_lines_are_whole_and_at_most_one_per_tenth():
    progress, out = plain(total=100_000)
    with progress:
        for step in range(1024, 100_001, 1024):
            progress.update(step, {"charts/sps": 5000.0})
        progress.finish(100_352, done=True)  # whole rollouts past the budget
    lines = out.getvalue().splitlines()
    assert 10 <= len(lines) <= 12
    assert all(re.fullmatch(r"dqn CartPole-v1: \d+/\d+ steps \(\d+%\), 5000 steps/s, return -, .*", line)
               for line in lines), lines
    assert lines[-1].startswith("dqn CartPole-v1: 100352/100352 steps (100%)")
    assert max(map(len, lines)) > 40  # not cut at the console's width


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    progress = TrainingProgress("ppo CartPole-v1", 10, console=Console(file=out), enabled=False)
    with progress:
        progress.update(10, {"charts/sps": 1.0})
        progress.finish(10, done=True)
    assert out.getvalue() == ""


def test_one_step_trains_a_whole_rollout_and_says_so(tmp_path):
    run_dir = tmp_path / "runs" / "one"
    result = rlsuite("train", "--steps", "1", "--n-envs", "8", "--set", "n_steps=32", "--set", "eval_every=0",
                     "--set", "tensorboard=false", "--run-dir", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((run_dir / "manifest.json").read_text())["final_step"] == 256
    text = " ".join(result.stderr.split())
    assert "trained 256 env steps, not the 1 asked for" in text and "8 envs x 32 steps" in text and "rounded up" in text
    assert re.search(r"ppo CartPole-v1: 256/256 steps \(100%\), \d+ steps/s", result.stderr), result.stderr


def test_dqn_steps_per_second_survive_its_evaluations(tmp_path: Path):
    result = rlsuite("train", "--agent", "dqn", "--steps", "2000", "--n-envs", "1", "--set", "eval_every=500",
                     "--set", "eval_episodes=1", "--set", "learning_starts=100", "--set", "tensorboard=false",
                     "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("dqn CartPole-v1:")]
    assert lines and lines[-1].startswith("dqn CartPole-v1: 2000/2000 steps (100%)")
    shown = [re.search(r", (\S+) steps/s", line).group(1) for line in lines]
    first = next(i for i, sps in enumerate(shown) if sps != "-")  # "-" only until DQN's first log (1000 steps)
    assert all(sps != "-" and float(sps) > 0 for sps in shown[first:]), lines
    assert any("(25%)" in line or "(50%)" in line for line in lines[first:] if "return" in line)
