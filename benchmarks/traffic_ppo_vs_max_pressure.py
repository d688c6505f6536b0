"""Parameter-shared PPO vs the classic controllers on a traffic scenario, training and held-out demand.

Trains PPO with its preset on a shared traffic id (one row per intersection), then evaluates the last
checkpoint, fixed-time (Webster) and max-pressure through rlsuite's harness on the same evaluation
seeds, with the scenario's training profiles and its held-out profiles; prints average travel time
and return. Run: `python benchmarks/traffic_ppo_vs_max_pressure.py --env rlsuite/TrafficGridShared-v0
[--steps 150000] [--seed 0] [--episodes 8] [--out runs/]`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rlsuite.agents.registry import load_policy, make_baseline
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import settings_to_dict
from rlsuite.envs import make_env
from rlsuite.evaluation.harness import evaluate_policy
from rlsuite.train import prepare_settings, run_training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="rlsuite/TrafficGridShared-v0")
    parser.add_argument("--steps", type=int, default=None, help="total agent steps (default: the preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cli = {"seed": args.seed, "tensorboard": False}
    if args.steps is not None:
        cli["total_steps"] = args.steps
    settings = prepare_settings("ppo", args.env, cli_values=cli)
    run = RunFolder.create(args.out, agent="ppo", env_id=args.env, seed=args.seed,
                           settings=settings_to_dict(settings), command="benchmarks/traffic_ppo_vs_max_pressure.py",
                           device="cpu")
    start = time.perf_counter()
    run_training("ppo", settings, run, show_progress=False)
    print(f"trained {settings.total_steps} steps in {time.perf_counter() - start:.0f} s: {run.path}")
    ppo = load_policy(run.path, "last").policy
    base_id = args.env.replace("Shared", "")
    print("| profiles | agent | travel time (s) | return |\n| --- | --- | ---: | ---: |")
    for profile in ("train", "held_out"):
        kwargs = {"profile": profile}
        agents = [("ppo (shared)", ppo, args.env)] + [
            (name, make_baseline(name, make_env(base_id)), base_id) for name in ("fixed-time", "max-pressure")]
        for name, policy, env_id in agents:
            records = evaluate_policy(policy, env_id, episodes=args.episodes, env_kwargs=kwargs)
            travel = np.mean([r.metrics["travel_time"] for r in records])
            ret = np.mean([r.episode_return for r in records])
            print(f"| {profile} | {name} | {travel:.1f} | {ret:.1f} |", flush=True)


if __name__ == "__main__":
    main()
