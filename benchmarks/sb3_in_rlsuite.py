"""SB3 agents inside rlsuite vs plain Stable-Baselines3: same algorithm, same settings, one process run.

For each seed, in turn: the rlsuite agent (`sb3-ppo` or `sb3-sac`: our encoder as the features extractor,
our VecEnv adapter, our callback and checkpoints, no periodic evaluation), then SB3's own class as its users
run it (`make_vec_env` -> DummyVecEnv, `MlpPolicy`) with the same hyperparameters (RL Zoo's, from our preset).
Prints env steps per wall second of both, the ratio rlsuite / plain, and each final policy's mean return on
the same 10 fixed evaluation seeds through our harness.

    python benchmarks/sb3_in_rlsuite.py --algo ppo --seeds 0 1 2      # CartPole-v1, 100k steps
    python benchmarks/sb3_in_rlsuite.py --algo sac --seeds 0 1 2      # Pendulum-v1, 20k steps
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rlsuite.agents import sb3
from rlsuite.agents.interface import TrainContext
from rlsuite.agents.logger import MetricLogger
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import resolve_settings, settings_to_dict
from rlsuite.envs import make_env
from rlsuite.evaluation.harness import evaluate_policy

SETUPS = {"ppo": ("sb3-ppo", "CartPole-v1"), "sac": ("sb3-sac", "Pendulum-v1")}


def score(policy, env_id: str) -> float:
    return float(np.mean([e.episode_return for e in evaluate_policy(policy, env_id, episodes=10)]))


def run_rlsuite(agent: str, env_id: str, seed: int, root: Path) -> tuple[float, float]:
    algo = sb3.get_algorithm(agent)
    settings = resolve_settings(algo.settings, agent, env_id,
                                cli_values={"seed": seed, "eval_every": 0, "tensorboard": False})
    run = RunFolder.create(root, agent=agent, env_id=env_id, seed=seed, settings=settings_to_dict(settings),
                           command="benchmark", device="cpu")
    with MetricLogger(run.path, tensorboard=False) as logger:
        start = time.perf_counter()
        result = sb3.SB3Agent(algo).train(settings, TrainContext(run=run, logger=logger))
        elapsed = time.perf_counter() - start
    return result.final_step / elapsed, score(load_policy(run.path, "last").policy, env_id)


def run_plain(agent: str, env_id: str, seed: int) -> tuple[float, float]:
    from stable_baselines3.common.env_util import make_vec_env

    algo = sb3.get_algorithm(agent)
    s = resolve_settings(algo.settings, agent, env_id, cli_values={"seed": seed})
    kwargs = sb3.algorithm_kwargs(algo, s, None if algo.on_policy else _action_space(env_id))
    policy_kwargs = {"net_arch": {"pi": [64, 64], "vf": [64, 64]}} if algo.on_policy else {}
    env = make_vec_env(env_id, n_envs=s.n_envs, seed=seed)
    model = algo.sb3_class()("MlpPolicy", env, seed=seed, device="cpu", verbose=0, policy_kwargs=policy_kwargs,
                             **kwargs)
    start = time.perf_counter()
    model.learn(total_timesteps=s.total_steps)
    elapsed = time.perf_counter() - start
    env_spaces = make_env(env_id)
    policy = sb3.SB3Policy(model.policy, env_spaces.observation_space, env_spaces.action_space, False)
    env_spaces.close()
    return model.num_timesteps / elapsed, score(policy, env_id)


def _action_space(env_id: str):
    env = make_env(env_id)
    space = env.action_space
    env.close()
    return space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=sorted(SETUPS), default="ppo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # pay torch's first-optimiser import before any clock
    agent, env_id = SETUPS[args.algo]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            ours_sps, ours_score = run_rlsuite(agent, env_id, seed, Path(tmp))
            plain_sps, plain_score = run_plain(agent, env_id, seed)
            rows.append((ours_sps, plain_sps, ours_score, plain_score))
            print(f"{agent} {env_id} seed {seed}: rlsuite {ours_sps:7.0f} steps/s (eval {ours_score:7.1f}) | "
                  f"plain SB3 {plain_sps:7.0f} steps/s (eval {plain_score:7.1f}) | ratio {ours_sps / plain_sps:.2f}",
                  flush=True)
    ours, plain = np.median([r[0] for r in rows]), np.median([r[1] for r in rows])
    print(f"median steps/s: rlsuite {ours:.0f}, plain {plain:.0f}, ratio rlsuite/plain {ours / plain:.2f}")
    print(f"mean final eval return: rlsuite {np.mean([r[2] for r in rows]):.1f}, "
          f"plain {np.mean([r[3] for r in rows]):.1f}")


if __name__ == "__main__":
    main()
