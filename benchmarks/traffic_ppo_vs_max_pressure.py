"""Parameter-shared PPO vs the classic controllers on traffic scenarios, several seeds, training and held-out demand.

For each shared traffic id and each seed, trains PPO with its preset (one row per intersection), then
evaluates the last checkpoint through rlsuite's harness on the same evaluation seeds as fixed-time
(Webster) and max-pressure (deterministic controllers, evaluated once), with the scenario's training
profiles and its held-out profiles. Prints average travel time per seed, then mean, standard deviation
and range over seeds, and the margin to max-pressure. Run: `python benchmarks/traffic_ppo_vs_max_pressure.py
--env rlsuite/TrafficSingleShared-v0 rlsuite/TrafficGridShared-v0 --seeds 0 1 2 [--steps 150000]
[--episodes 8] [--out runs/] [--json results.json]`.
"""

from __future__ import annotations

import argparse
import json
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

PROFILES = ("train", "held_out")


def travel_time(policy: object, env_id: str, profile: str, episodes: int) -> float:
    """Mean average travel time (s) over the harness's fixed evaluation seeds."""
    records = evaluate_policy(policy, env_id, episodes=episodes, env_kwargs={"profile": profile})
    return float(np.mean([r.metrics["travel_time"] for r in records]))


def train_ppo(env_id: str, seed: int, steps: int | None, out: Path) -> Path:
    """Train PPO with its preset on `env_id`; return the run folder."""
    cli: dict[str, object] = {"seed": seed, "tensorboard": False}
    if steps is not None:
        cli["total_steps"] = steps
    settings = prepare_settings("ppo", env_id, cli_values=cli)
    run = RunFolder.create(out, agent="ppo", env_id=env_id, seed=seed, settings=settings_to_dict(settings),
                           command="benchmarks/traffic_ppo_vs_max_pressure.py", device="cpu")
    start = time.perf_counter()
    run_training("ppo", settings, run, show_progress=False)
    print(f"{env_id} seed {seed}: trained {settings.total_steps} steps in {time.perf_counter() - start:.0f} s "
          f"({run.path})", flush=True)
    return run.path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=["rlsuite/TrafficGridShared-v0"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=None, help="total agent steps (default: the preset's)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs"))
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, dict[str, object]] = {}
    for env_id in args.env:
        base_id = env_id.replace("Shared", "")
        controllers = {name: {p: travel_time(make_baseline(name, make_env(base_id)), base_id, p, args.episodes)
                              for p in PROFILES} for name in ("fixed-time", "max-pressure")}
        ppo: dict[str, list[float]] = {p: [] for p in PROFILES}
        for seed in args.seeds:
            policy = load_policy(train_ppo(env_id, seed, args.steps, args.out), "last").policy
            for p in PROFILES:
                ppo[p].append(travel_time(policy, env_id, p, args.episodes))
                print(f"  {p}: ppo {ppo[p][-1]:.1f}  max-pressure {controllers['max-pressure'][p]:.1f}  "
                      f"fixed-time {controllers['fixed-time'][p]:.1f}", flush=True)
        results[env_id] = {"seeds": args.seeds, "ppo": ppo, **controllers}
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=1))
    print("\n| scenario | profiles | PPO mean | PPO std | PPO min-max | per seed | fixed-time | max-pressure "
          "| PPO vs max-pressure |\n| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for env_id, res in results.items():
        for p in PROFILES:
            values = np.asarray(res["ppo"][p])  # type: ignore[index]
            mp = res["max-pressure"][p]  # type: ignore[index]
            ft = res["fixed-time"][p]  # type: ignore[index]
            per_seed = ", ".join(f"{v:.1f}" for v in values)
            print(f"| {env_id} | {p} | {values.mean():.1f} | {values.std(ddof=1) if len(values) > 1 else 0.0:.1f} "
                  f"| {values.min():.1f}-{values.max():.1f} | {per_seed} | {ft:.1f} | {mp:.1f} "
                  f"| {100 * (values.mean() / mp - 1):+.1f} % |")


if __name__ == "__main__":
    main()
