"""Our A2C vs Stable-Baselines3's A2C on CartPole-v1, same hyperparameters, one process run.

Both use RL Zoo's CartPole A2C settings (hyperparams/a2c.yml: 8 envs, ent_coef 0, the rest SB3's A2C
defaults: n_steps 5, lr 7e-4, gamma 0.99, n-step returns (gae_lambda 1), vf_coef 0.5, max_grad_norm 0.5,
RMSprop alpha 0.99 eps 1e-5, separate 64x64 tanh MLPs) and one torch thread. Throughput is env steps per
second over the whole `learn` (rollouts and updates), measured both in wall time and in process CPU time
(CPU time is steadier on a shared machine); seeds alternate ours, SB3, ours, SB3, ... The score is the
final policy's mean return over the same 10 fixed evaluation seeds through our harness.
Run: `python benchmarks/a2c_vs_sb3.py [--seeds 0 1 2] [--steps 100000]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from _common import Stopwatch, sb3_policy, score, setup_torch, train_ours

from rlsuite.agents import a2c
from rlsuite.agents.registry import load_policy

ENV_ID = "CartPole-v1"


def run_ours(seed: int, steps: int, root: Path) -> tuple[float, float, float]:
    ours = train_ours(a2c, "a2c", ENV_ID, seed, root, {"total_steps": steps, "eval_every": 0})
    steps_done = ours.result.final_step
    return steps_done / ours.clock.wall, steps_done / ours.clock.cpu, score(load_policy(ours.path, "last").policy, ENV_ID)


def run_sb3(seed: int, steps: int) -> tuple[float, float, float]:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, device="cpu", verbose=0)  # RL Zoo: only ent_coef set
    clock = Stopwatch()
    with clock.running():
        model.learn(total_timesteps=steps)
    return model.num_timesteps / clock.wall, model.num_timesteps / clock.cpu, score(sb3_policy(model), ENV_ID)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    setup_torch()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            ours_wall, ours_cpu, ours_score = run_ours(seed, args.steps, Path(tmp))
            sb3_wall, sb3_cpu, sb3_score = run_sb3(seed, args.steps)
            rows.append((seed, ours_wall, sb3_wall, ours_cpu, sb3_cpu, ours_score, sb3_score))
            print(f"seed {seed}: ours {ours_wall:6.0f} steps/s wall, {ours_cpu:6.0f} per CPU s (eval {ours_score:6.1f}) | "
                  f"sb3 {sb3_wall:6.0f} wall, {sb3_cpu:6.0f} per CPU s (eval {sb3_score:6.1f}) | "
                  f"ratio wall {ours_wall / sb3_wall:.2f}, CPU {ours_cpu / sb3_cpu:.2f}", flush=True)
    # Each seed's pair ran back to back, so the per-seed ratio is the fair one when the machine's load drifts.
    wall_ratios = [r[1] / r[2] for r in rows]
    cpu_ratios = [r[3] / r[4] for r in rows]
    print(f"median steps/s (wall): ours {np.median([r[1] for r in rows]):.0f}, sb3 {np.median([r[2] for r in rows]):.0f}; "
          f"median per-seed ratio ours/sb3 {np.median(wall_ratios):.2f}")
    print(f"median steps per CPU second: ours {np.median([r[3] for r in rows]):.0f}, sb3 {np.median([r[4] for r in rows]):.0f}; "
          f"median per-seed ratio ours/sb3 {np.median(cpu_ratios):.2f}")
    print(f"mean final eval return: ours {np.mean([r[5] for r in rows]):.1f}, sb3 {np.mean([r[6] for r in rows]):.1f}")


if __name__ == "__main__":
    main()
