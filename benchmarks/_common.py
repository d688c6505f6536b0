"""Scaffolding shared by the ours-vs-SB3 benchmarks (ppo_vs_sb3, a2c_vs_sb3, dqn_vs_sb3, time_to_solve).

Each script keeps what differs (settings, the SB3 model, what it prints); the timing, the run folder for
our agent, scoring a final policy on our harness and the one-time torch set-up live here once. The
scripts import it as `from _common import ...`, which works because `python benchmarks/x.py` puts
benchmarks/ first on sys.path.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from rlsuite.agents.interface import TrainContext, TrainResult
from rlsuite.agents.logger import MetricLogger
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.sb3 import SB3Policy
from rlsuite.agents.settings import resolve_settings, settings_to_dict
from rlsuite.evaluation import stats
from rlsuite.evaluation.harness import evaluate_policy
from rlsuite.evaluation.records import EpisodeRecord
from rlsuite.train import run_training


def setup_torch() -> None:
    """One torch thread (both sides run in this process), and the first optimizer's torch._dynamo import
    (seconds) paid before either clock starts."""
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)


@dataclass
class Stopwatch:
    """Wall and process-CPU seconds of a `with` block (CPU time: steadier on a shared machine)."""

    wall: float = 0.0
    cpu: float = 0.0

    @contextmanager
    def running(self) -> Iterator[Stopwatch]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield self
        finally:
            self.wall, self.cpu = time.perf_counter() - wall, time.process_time() - cpu


def score(policy: Any, env_id: str, episodes: int = 10) -> float:
    """Mean return of `policy` on our harness's fixed evaluation seeds."""
    return float(np.mean([e.episode_return for e in evaluate_policy(policy, env_id, episodes=episodes)]))


def sb3_policy(model: Any) -> SB3Policy:
    """A trained SB3 model as a policy our harness can evaluate."""
    return SB3Policy(model.policy, model.observation_space, model.action_space, recurrent=False)


@dataclass
class OursRun:
    """One training run of our agent: its folder, result and timing."""

    path: Path
    result: TrainResult
    clock: Stopwatch


def train_ours(module: ModuleType, agent: str, env_id: str, seed: int, root: Path, cli_values: dict[str, Any],
               evaluate: Callable[[Any, int], dict[str, float]] | None = None,
               stop_requested: Callable[[], bool] | None = None,
               on_start: Callable[[], None] | None = None) -> OursRun:
    """Train `agent` (its preset for `env_id` plus `cli_values`) in a new run folder under `root`, timed.

    `on_start` runs just before training starts (time_to_solve restarts its own clock there)."""
    settings = resolve_settings(module.Settings, agent, env_id, cli_values={"seed": seed, "tensorboard": False, **cli_values})
    run = RunFolder.create(root, agent=agent, env_id=env_id, seed=seed, settings=settings_to_dict(settings),
                           command="benchmark", device="cpu")
    clock = Stopwatch()
    context: dict[str, Any] = {"evaluate": evaluate}
    if stop_requested is not None:
        context["stop_requested"] = stop_requested
    with MetricLogger(run.path, tensorboard=False) as logger:
        if on_start is not None:
            on_start()
        with clock.running():
            result = module.train(settings, TrainContext(run=run, logger=logger, **context))
    return OursRun(run.path, result, clock)


def train_ppo_then_evaluate(settings: Any, env_id: str, seed: int, command: str, eval_seeds: range, n_envs: int,
                            env_kwargs: dict[str, Any] | None = None,
                            run_dir: str | None = None) -> tuple[list[EpisodeRecord], Stopwatch]:
    """Train PPO with resolved `settings` (rlsuite.train.prepare_settings) in a run folder, a temporary one
    unless `run_dir`, then evaluate its last checkpoint on `eval_seeds`: (episodes, training clock)."""
    with tempfile.TemporaryDirectory() as tmp:
        run = RunFolder.create(run_dir or tmp, agent="ppo", env_id=env_id, seed=seed,
                               settings=settings_to_dict(settings), command=command, device="cpu")
        clock = Stopwatch()
        with clock.running():
            run_training("ppo", settings, run, show_progress=False)
        policy = load_policy(run.path, "last").policy
        episodes = evaluate_policy(policy, env_id, episodes=len(eval_seeds), n_envs=n_envs, env_kwargs=env_kwargs,
                                   seeds=eval_seeds)
    return episodes, clock


def bootstrap_ci(diffs: np.ndarray, resamples: int = 100_000, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap 95% CI of the mean of per-seed differences (seeds resampled with replacement):
    the reports' bootstrap (evaluation/stats.py) with the seeds as runs of one task."""
    _, low, high = stats.stratified_bootstrap_ci(diffs[:, None], stats.mean, reps=resamples, seed=seed)
    return low, high


Measured = tuple[float, float, float]
"""(env steps per wall second, per CPU second, final evaluation mean) of one training run."""


def compare_on_seeds(run_ours: Callable[[int, int, Path], Measured], run_sb3: Callable[[int, int], Measured],
                     description: str | None, default_steps: int) -> None:
    """The command line and seed loop of a throughput benchmark: ours then SB3 for each seed, one line per
    seed, then medians and ratios. Each seed's pair runs back to back, so the per-seed ratio is the fair
    one when the machine's load drifts; the ratio of the medians is printed beside it."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=default_steps)
    args = parser.parse_args()
    setup_torch()
    rows = []  # (ours wall, sb3 wall, ours CPU, sb3 CPU, ours eval, sb3 eval) per seed
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            ours_wall, ours_cpu, ours_score = run_ours(seed, args.steps, Path(tmp))
            sb3_wall, sb3_cpu, sb3_score = run_sb3(seed, args.steps)
            rows.append((ours_wall, sb3_wall, ours_cpu, sb3_cpu, ours_score, sb3_score))
            print(f"seed {seed}: ours {ours_wall:7.0f} steps/s wall, {ours_cpu:7.0f} per CPU s (eval {ours_score:6.1f}) | "
                  f"sb3 {sb3_wall:7.0f} wall, {sb3_cpu:7.0f} per CPU s (eval {sb3_score:6.1f}) | "
                  f"ratio wall {ours_wall / sb3_wall:.2f}, CPU {ours_cpu / sb3_cpu:.2f}", flush=True)
    table = np.array(rows)
    for label, ours_col, sb3_col in (("steps/s (wall)", 0, 1), ("steps per CPU second", 2, 3)):
        ours, sb3 = np.median(table[:, ours_col]), np.median(table[:, sb3_col])
        print(f"median {label}: ours {ours:.0f}, sb3 {sb3:.0f}; ratio of medians {ours / sb3:.2f}, "
              f"median per-seed ratio {np.median(table[:, ours_col] / table[:, sb3_col]):.2f}")
    print(f"mean final eval return: ours {table[:, 4].mean():.1f}, sb3 {table[:, 5].mean():.1f}")
    if len(table) > 1:
        diffs = table[:, 4] - table[:, 5]
        low, high = bootstrap_ci(diffs)
        print(f"per seed ours - sb3: {' '.join(f'{d:.1f}' for d in diffs)}; mean {diffs.mean():.1f}, "
              f"bootstrap 95% CI [{low:.1f}, {high:.1f}]")
