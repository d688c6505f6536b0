"""Our DQN vs Stable-Baselines3's DQN on CartPole-v1, same hyperparameters, one process run.

Both use RL Zoo's CartPole DQN settings (hyperparams/dqn.yml: 50k steps, 1 env, lr 2.3e-3, batch 64,
buffer 100k, learning_starts 1000, gamma 0.99, target_update_interval 10, train_freq 256,
gradient_steps 128, exploration 0.16 -> 0.04, net_arch [256, 256]) and one torch thread. Throughput is
env steps and gradient updates per wall second over the whole `learn`; the score is the final policy's
mean return over the same 10 fixed evaluation seeds through our harness. Ours and SB3 alternate seed by
seed (A B A B ...) so both see the same machine load.

Run: `python benchmarks/dqn_vs_sb3.py [--seeds 0 1 2] [--steps 50000]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlsuite.agents import dqn
from rlsuite.agents.interface import TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.sb3 import SB3Policy
from rlsuite.agents.settings import resolve_settings, settings_to_dict
from rlsuite.evaluation.harness import evaluate_policy

ENV_ID = "CartPole-v1"



def score(policy) -> float:
    return float(np.mean([e.episode_return for e in evaluate_policy(policy, ENV_ID, episodes=10)]))


def run_ours(seed: int, steps: int, root: Path) -> tuple[float, float, float]:
    settings = resolve_settings(dqn.DQNSettings, "dqn", ENV_ID,
                                cli_values={"seed": seed, "total_steps": steps, "eval_every": 0, "tensorboard": False})
    run = RunFolder.create(root, agent="dqn", env_id=ENV_ID, seed=seed, settings=settings_to_dict(settings),
                           command="benchmark", device="cpu")
    with MetricLogger(run.path, tensorboard=False) as logger:
        start = time.perf_counter()
        result = dqn.train(settings, TrainContext(run=run, logger=logger))
        elapsed = time.perf_counter() - start
    updates = float(read_metrics(run.path)["charts/updates"][1][-1])
    return result.final_step / elapsed, updates / elapsed, score(load_policy(run.path, "last").policy)


def run_sb3(seed: int, steps: int) -> tuple[float, float, float]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
    model = DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(total_timesteps=steps)
    elapsed = time.perf_counter() - start
    policy = SB3Policy(model.policy, model.observation_space, model.action_space, recurrent=False)
    return model.num_timesteps / elapsed, model._n_updates / elapsed, score(policy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The first optimizer in a process imports torch._dynamo (seconds): pay it before either clock starts.
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            ours = run_ours(seed, args.steps, Path(tmp))
            sb3 = run_sb3(seed, args.steps)
            rows.append((seed, *ours, *sb3))
            print(f"seed {seed}: ours {ours[0]:6.0f} steps/s {ours[1]:6.0f} updates/s (eval {ours[2]:6.1f}) | "
                  f"sb3 {sb3[0]:6.0f} steps/s {sb3[1]:6.0f} updates/s (eval {sb3[2]:6.1f}) | "
                  f"ratio {ours[0] / sb3[0]:.2f}", flush=True)
    table = np.array([r[1:] for r in rows])
    ours_sps, ours_ups, sb3_sps, sb3_ups = (np.median(table[:, i]) for i in (0, 1, 3, 4))
    print(f"median env steps/s: ours {ours_sps:.0f}, sb3 {sb3_sps:.0f}, ratio ours/sb3 {ours_sps / sb3_sps:.2f}")
    print(f"median gradient updates/s: ours {ours_ups:.0f}, sb3 {sb3_ups:.0f}, ratio ours/sb3 {ours_ups / sb3_ups:.2f}")
    print(f"mean final eval return: ours {table[:, 2].mean():.1f}, sb3 {table[:, 5].mean():.1f}")


if __name__ == "__main__":
    main()
