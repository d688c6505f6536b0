"""Our DQN vs Stable-Baselines3's DQN on CartPole-v1, same hyperparameters, one process run.

Both use RL Zoo's CartPole DQN settings (hyperparams/dqn.yml: 50k steps, 1 env, lr 2.3e-3, batch 64,
buffer 100k, learning_starts 1000, gamma 0.99, target_update_interval 10, train_freq 256,
gradient_steps 128, exploration 0.16 -> 0.04, net_arch [256, 256]) and one torch thread. Throughput is
env steps and gradient updates per second over the whole `learn`, in wall time and in process CPU time
(CPU time is steadier on a shared machine); the score is the final policy's mean return over the same
10 fixed evaluation seeds through our harness. Ours and SB3 alternate seed by seed (A B A B ...) so both
see the same machine load.

Run: `python benchmarks/dqn_vs_sb3.py [--seeds 0 1 2] [--steps 50000]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import Stopwatch, sb3_policy, score, setup_torch, train_ours

from rlsuite.agents import dqn
from rlsuite.agents.logger import read_metrics
from rlsuite.agents.registry import load_policy

ENV_ID = "CartPole-v1"


def run_ours(seed: int, steps: int, root: Path) -> tuple[float, float, Stopwatch, float]:
    """(env steps, gradient updates, timing, final eval mean)."""
    ours = train_ours(dqn, "dqn", ENV_ID, seed, root, {"total_steps": steps, "eval_every": 0})
    updates = float(read_metrics(ours.path)["charts/updates"][1][-1])
    return ours.result.final_step, updates, ours.clock, score(load_policy(ours.path, "last").policy, ENV_ID)


def run_sb3(seed: int, steps: int) -> tuple[float, float, Stopwatch, float]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
    model = DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu", verbose=0)
    clock = Stopwatch()
    with clock.running():
        model.learn(total_timesteps=steps)
    return model.num_timesteps, model._n_updates, clock, score(sb3_policy(model), ENV_ID)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    args = parser.parse_args()
    setup_torch()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            o_steps, o_updates, o_clock, o_score = run_ours(seed, args.steps, Path(tmp))
            s_steps, s_updates, s_clock, s_score = run_sb3(seed, args.steps)
            # per second of wall time and of CPU time: env steps and gradient updates, ours then SB3
            row = (o_steps / o_clock.wall, o_updates / o_clock.wall, o_steps / o_clock.cpu, o_updates / o_clock.cpu,
                   s_steps / s_clock.wall, s_updates / s_clock.wall, s_steps / s_clock.cpu, s_updates / s_clock.cpu,
                   o_score, s_score)
            rows.append(row)
            print(f"seed {seed}: ours {row[0]:6.0f} steps/s {row[1]:6.0f} updates/s wall, {row[2]:6.0f} steps {row[3]:6.0f} "
                  f"updates per CPU s (eval {o_score:6.1f}) | sb3 {row[4]:6.0f} steps/s {row[5]:6.0f} updates/s wall, "
                  f"{row[6]:6.0f} steps {row[7]:6.0f} updates per CPU s (eval {s_score:6.1f}) | "
                  f"ratio steps wall {row[0] / row[4]:.2f} CPU {row[2] / row[6]:.2f}, "
                  f"updates wall {row[1] / row[5]:.2f} CPU {row[3] / row[7]:.2f}", flush=True)
    table = np.array(rows)
    # Each seed's pair ran back to back, so the per-seed ratio is the fair one when the machine's load drifts.
    for label, ours_col, sb3_col in (("env steps/s (wall)", 0, 4), ("gradient updates/s (wall)", 1, 5),
                                     ("env steps per CPU s", 2, 6), ("gradient updates per CPU s", 3, 7)):
        ratio = np.median(table[:, ours_col] / table[:, sb3_col])
        print(f"median {label}: ours {np.median(table[:, ours_col]):.0f}, sb3 {np.median(table[:, sb3_col]):.0f}; "
              f"median per-seed ratio ours/sb3 {ratio:.2f}")
    print(f"mean final eval return: ours {table[:, 8].mean():.1f}, sb3 {table[:, 9].mean():.1f}")


if __name__ == "__main__":
    main()
