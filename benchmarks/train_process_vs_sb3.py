"""The whole `rlsuite train` process vs an SB3 script with the same RL Zoo settings: CPU seconds as a user feels them.

Each side runs as its own child process with OMP_NUM_THREADS=1 (and one torch thread), start-up included:
imports, env and network construction, training, the final checkpoint. CPU seconds are the child's user +
system time (`resource.getrusage(RUSAGE_CHILDREN)`), which other jobs on a shared machine disturb far less
than wall time. Ours runs with periodic evaluation off (`eval_every=0`), since the SB3 script evaluates
nothing. Sides alternate seed by seed (ours, SB3, ours, SB3, ...).

Run: `python benchmarks/train_process_vs_sb3.py --agent ppo --steps 100000 --seeds 3 4 5`
(agents: ppo, a2c, dqn on CartPole-v1). `--before /other/checkout/.venv/bin/rlsuite` adds a column: that
checkout's CLI run in the same loop (ours, before, SB3 per seed), so a change is measured under the same load.
`--repeats K` runs each side K times per seed, interleaved, and tables each side's median: a side's CPU
seconds move by up to a fifth between identical runs, even on an idle machine. The last line is the ratio of
the two sides' total CPU seconds with a 95% bootstrap interval over the interleaved (ours, SB3) pairs of runs:
the figure that a single run's noise moves least.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from math import nan
from pathlib import Path

import numpy as np

ENV_ID = "CartPole-v1"

# RL Zoo hyperparams (ppo.yml, a2c.yml, dqn.yml, CartPole-v1), as benchmarks/*_vs_sb3.py run them
SB3_SCRIPTS = {
    "ppo": """
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
lin = lambda start: (lambda progress: progress * start)
env = make_vec_env("CartPole-v1", n_envs=8, seed={seed})
model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
            learning_rate=lin(1e-3), clip_range=lin(0.2), seed={seed}, device="cpu", verbose=0)
""",
    "a2c": """
from stable_baselines3 import A2C
from stable_baselines3.common.env_util import make_vec_env
env = make_vec_env("CartPole-v1", n_envs=8, seed={seed})
model = A2C("MlpPolicy", env, ent_coef=0.0, seed={seed}, device="cpu", verbose=0)
""",
    "dqn": """
from stable_baselines3 import DQN
from stable_baselines3.common.env_util import make_vec_env
env = make_vec_env("CartPole-v1", n_envs=1, seed={seed})
model = DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
            gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
            exploration_final_eps=0.04, policy_kwargs=dict(net_arch=[256, 256]), seed={seed}, device="cpu", verbose=0)
""",
}
SB3_TAIL = """
model.learn(total_timesteps={steps})
model.save({path!r})
"""


def child_cpu_seconds(cmd: list[str]) -> float:
    """Run `cmd` to completion with one thread; its user + system CPU seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def ours(agent: str, seed: int, steps: int, root: Path, rlsuite: str = "rlsuite") -> float:
    return child_cpu_seconds([*rlsuite.split(), "train", "--agent", agent, "--env", ENV_ID, "--seed", str(seed),
                              "--steps", str(steps), "--set", "eval_every=0", "--no-progress",
                              "--run-dir", str(root / f"ours-{agent}-{seed}")])


def sb3(agent: str, seed: int, steps: int, root: Path) -> float:
    script = ("import torch; torch.set_num_threads(1)\n" + SB3_SCRIPTS[agent].format(seed=seed)
              + SB3_TAIL.format(steps=steps, path=str(root / f"sb3-{agent}-{seed}")))
    return child_cpu_seconds([sys.executable, "-c", script])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", choices=sorted(SB3_SCRIPTS), default="ppo")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--sides", choices=["both", "ours", "sb3"], default="both")
    parser.add_argument("--rlsuite", default="rlsuite", help="the command that runs our CLI (e.g. another checkout's)")
    parser.add_argument("--before", default=None, help="another checkout's CLI, run in the same loop as a column")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each side per seed, interleaved; the table shows each side's median")
    args = parser.parse_args()
    print(f"{args.agent} on {ENV_ID}, {args.steps} steps, whole process, OMP_NUM_THREADS=1; CPU seconds")
    before_cols = (" before CPU s |", " SB3 / before |") if args.before else ("", "")
    print(f"| seed | ours CPU s |{before_cols[0]} SB3 CPU s | SB3 / ours |{before_cols[1]}\n"
          + "|---" * (6 if args.before else 4) + "|", flush=True)
    ratios = []
    pairs: list[tuple[float, float]] = []  # (ours, SB3) CPU seconds of each interleaved pair of runs
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            runs: list[tuple[float, float, float]] = []
            for repeat in range(args.repeats):  # ours, before, SB3, ours, ...: drifts in load hit every side
                root = Path(tmp) / f"repeat-{repeat}"
                runs.append((ours(args.agent, seed, args.steps, root, args.rlsuite) if args.sides != "sb3" else nan,
                             ours(args.agent, seed, args.steps, root / "before", args.before) if args.before else nan,
                             sb3(args.agent, seed, args.steps, root) if args.sides != "ours" else nan))
            a, c, b = (statistics.median(side) for side in zip(*runs, strict=True))
            if args.repeats > 1:
                print(f"seed {seed}, each run (ours, before, SB3): "
                      + "; ".join(", ".join(f"{x:.1f}" for x in run) for run in runs), flush=True)
            ratios.append(b / a)
            pairs += [(run[0], run[2]) for run in runs]
            cells = (f" {c:.1f} |", f" {b / c:.2f} |") if args.before else ("", "")
            print(f"| {seed} | {a:.1f} |{cells[0]} {b:.1f} | {b / a:.2f} |{cells[1]}", flush=True)
    if args.sides == "both":
        print(f"mean SB3 / ours: {sum(ratios) / len(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")
        total, low, high = total_ratio_ci(np.array(pairs))
        print(f"total SB3 / ours: {total:.2f}, 95% CI [{low:.2f}, {high:.2f}] (bootstrap over {len(pairs)} pairs of runs)")


def total_ratio_ci(pairs: np.ndarray, reps: int = 10_000) -> tuple[float, float, float]:
    """SB3's total CPU seconds over ours for (n, 2) rows of (ours, SB3), and its 95% percentile bootstrap
    interval, resampling the rows."""
    rows = np.random.default_rng(0).integers(0, len(pairs), size=(reps, len(pairs)))  # (reps, n) resampled rows
    totals = pairs[rows].sum(axis=1)  # (reps, 2)
    low, high = np.percentile(totals[:, 1] / totals[:, 0], [2.5, 97.5])
    return float(pairs[:, 1].sum() / pairs[:, 0].sum()), float(low), float(high)


if __name__ == "__main__":
    main()
