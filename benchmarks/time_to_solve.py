"""Time to solve CartPole-v1: env steps and training seconds until the first evaluation with mean >= 475.

Four agents, each with RL Zoo's CartPole hyperparameters: our PPO and our DQN (their presets), SB3's PPO
and SB3's DQN. Every `--eval-every` env steps each one is evaluated by OUR harness (10 episodes on the
fixed evaluation seeds, deterministic actions); a run stops at its first mean >= 475. Seconds count
training only (evaluation time is subtracted). Median over seeds; a run that never solves within its
budget (PPO 100k, DQN 50k steps, RL Zoo's n_timesteps) counts as not solved. Agents alternate within
each seed so all four see the same machine load.

Run: `python benchmarks/time_to_solve.py [--seeds 0 1 2] [--eval-every 2500]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import sb3_policy, score, setup_torch, train_ours

from rlsuite.agents import dqn, ppo

ENV_ID = "CartPole-v1"
SOLVED = 475.0
BUDGET = {"ppo": 100_000, "dqn": 50_000}


class Clock:
    """Training seconds and the first solving step, with evaluation time left out."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.solved_at: tuple[int, float] | None = None

    def evaluate(self, policy, step: int) -> float:
        t0 = time.perf_counter()
        train_seconds = t0 - self.start - self.eval_seconds
        mean = score(policy, ENV_ID)
        self.eval_seconds += time.perf_counter() - t0
        if mean >= SOLVED and self.solved_at is None:
            self.solved_at = (step, train_seconds)
        return mean


def run_ours(agent: str, seed: int, eval_every: int, root: Path) -> tuple[int, float] | None:
    module = {"ppo": ppo, "dqn": dqn}[agent]
    clock = Clock()

    def evaluate(policy, step):
        return {"eval/mean_return": clock.evaluate(policy, step)}

    def start() -> None:
        clock.start = time.perf_counter()

    train_ours(module, agent, ENV_ID, seed, root, {"total_steps": BUDGET[agent], "eval_every": eval_every},
               evaluate=evaluate, stop_requested=lambda: clock.solved_at is not None, on_start=start)
    return clock.solved_at


def run_sb3(agent: str, seed: int, eval_every: int) -> tuple[int, float] | None:
    from stable_baselines3 import DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    clock = Clock()

    class EvalCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval = eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                self.next_eval += eval_every
                clock.evaluate(sb3_policy(self.model), self.num_timesteps)
            return clock.solved_at is None

    if agent == "ppo":
        def linear(start: float):
            return lambda progress_remaining: progress_remaining * start

        env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                    ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu")
    else:
        env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
        model = DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                    gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                    exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
                    seed=seed, device="cpu")
    clock.start = time.perf_counter()
    model.learn(total_timesteps=BUDGET[agent], callback=EvalCallback())
    return clock.solved_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-every", type=int, default=2500)
    args = parser.parse_args()
    setup_torch()
    results: dict[str, list[tuple[int, float] | None]] = {name: [] for name in ("ours ppo", "ours dqn", "sb3 ppo", "sb3 dqn")}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for name in results:
                side, agent = name.split()
                solved = run_ours(agent, seed, args.eval_every, Path(tmp)) if side == "ours" else \
                    run_sb3(agent, seed, args.eval_every)
                results[name].append(solved)
                text = "not solved" if solved is None else f"{solved[0]} steps, {solved[1]:.1f} s"
                print(f"seed {seed} {name}: {text}", flush=True)
    print("agent     | solved | median steps | median train seconds")
    for name, runs in results.items():
        # unsolved runs sort last (infinite), so the median is honest about failures
        steps = np.median([r[0] if r else np.inf for r in runs])
        seconds = np.median([r[1] if r else np.inf for r in runs])
        print(f"{name:9s} | {sum(r is not None for r in runs)}/{len(runs)}    | {steps:12.0f} | {seconds:8.1f}")


if __name__ == "__main__":
    main()
