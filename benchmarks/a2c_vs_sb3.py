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
import time
from pathlib import Path

import numpy as np
import torch

from rlsuite.agents import a2c
from rlsuite.agents.interface import TrainContext
from rlsuite.agents.logger import MetricLogger
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.sb3 import SB3Policy
from rlsuite.agents.settings import resolve_settings, settings_to_dict
from rlsuite.evaluation.harness import evaluate_policy

ENV_ID = "CartPole-v1"



def run_ours(seed: int, steps: int, root: Path) -> tuple[float, float, float]:
    settings = resolve_settings(a2c.A2CSettings, "a2c", ENV_ID,
                                cli_values={"seed": seed, "total_steps": steps, "eval_every": 0, "tensorboard": False})
    run = RunFolder.create(root, agent="a2c", env_id=ENV_ID, seed=seed, settings=settings_to_dict(settings),
                           command="benchmark", device="cpu")
    with MetricLogger(run.path, tensorboard=False) as logger:
        wall, cpu = time.perf_counter(), time.process_time()
        result = a2c.train(settings, TrainContext(run=run, logger=logger))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    policy = load_policy(run.path, "last").policy
    score = np.mean([e.episode_return for e in evaluate_policy(policy, ENV_ID, episodes=10)])
    return result.final_step / wall, result.final_step / cpu, float(score)


def run_sb3(seed: int, steps: int) -> tuple[float, float, float]:
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, device="cpu", verbose=0)  # RL Zoo: only ent_coef set
    wall, cpu = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    policy = SB3Policy(model.policy, model.observation_space, model.action_space, recurrent=False)
    score = np.mean([e.episode_return for e in evaluate_policy(policy, ENV_ID, episodes=10)])
    return model.num_timesteps / wall, model.num_timesteps / cpu, float(score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The first optimizer in a process imports torch._dynamo (seconds): pay it before either clock starts.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
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
