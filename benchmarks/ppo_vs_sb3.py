"""Our PPO vs Stable-Baselines3's PPO on CartPole-v1, same hyperparameters, one process run.

Both use RL Zoo's CartPole PPO settings (8 envs, n_steps 32, batch 256, 20 epochs, gamma 0.98, GAE 0.8,
lr lin_1e-3, clip lin_0.2) and one torch thread. Training throughput is env steps per wall second over
the whole `learn` (rollouts and updates); the score is the final policy's mean return over the same 10
fixed evaluation seeds through our harness. Both run single-threaded in this process, so besides wall-clock
steps/s the script reports steps per CPU second of the process (`time.process_time`), which other jobs on a
shared machine disturb far less. Run: `python benchmarks/ppo_vs_sb3.py [--seeds 0 1 2]`.
"""

from __future__ import annotations

from pathlib import Path

from _common import Stopwatch, compare_on_seeds, sb3_policy, score, train_ours

from rlsuite.agents import ppo
from rlsuite.agents.registry import load_policy

ENV_ID = "CartPole-v1"


def run_ours(seed: int, steps: int, root: Path) -> tuple[float, float, float]:
    ours = train_ours(ppo, "ppo", ENV_ID, seed, root, {"total_steps": steps, "eval_every": 0})
    steps_done = ours.result.final_step
    return steps_done / ours.clock.wall, steps_done / ours.clock.cpu, score(load_policy(ours.path, "last").policy, ENV_ID)


def run_sb3(seed: int, steps: int) -> tuple[float, float, float]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    def linear(start: float):
        return lambda progress_remaining: progress_remaining * start

    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu", verbose=0)
    clock = Stopwatch()
    with clock.running():
        model.learn(total_timesteps=steps)
    return model.num_timesteps / clock.wall, model.num_timesteps / clock.cpu, score(sb3_policy(model), ENV_ID)


def main() -> None:
    compare_on_seeds(run_ours, run_sb3, __doc__, default_steps=100_000)


if __name__ == "__main__":
    main()
