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

from pathlib import Path

from _common import Stopwatch, compare_on_seeds, sb3_policy, score, train_ours

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
    compare_on_seeds(run_ours, run_sb3, __doc__, default_steps=100_000)


if __name__ == "__main__":
    main()
