"""The classic controllers on every shipped traffic scenario: average travel time, training and held-out demand.

Evaluates fixed-time (Webster), max-pressure, actuated and random through rlsuite's harness on the fixed
evaluation seeds (1,000,000+), with the scenario's training profiles and, where it has them, its
held-out profiles; prints a Markdown table and max-pressure's margin over fixed-time. The same figures
come from `rlsuite evaluate --agent <name> --env <id> --episodes 8 [--env-kwarg profile=held_out]`.
Run: `python benchmarks/traffic_controllers.py [--episodes 8]`.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from rlsuite.agents.registry import make_baseline
from rlsuite.envs import make_env
from rlsuite.envs.traffic import load_network
from rlsuite.evaluation.harness import evaluate_policy

SCENARIOS = (("single", "rlsuite/TrafficSingle-v0"), ("arterial 1x4", "rlsuite/TrafficArterial-v0"),
             ("grid 2x2", "rlsuite/TrafficGrid-v0"), ("grid 4x4", "rlsuite/TrafficGrid4x4-v0"))
AGENTS = ("fixed-time", "max-pressure", "actuated", "random")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| scenario | profiles | " + " | ".join(AGENTS) + " | max-pressure vs fixed-time |")
    print("| --- | --- | " + " | ".join("---:" for _ in AGENTS) + " | ---: |")
    for name, env_id in SCENARIOS:
        scenario = make_env(env_id).unwrapped.net.name  # type: ignore[attr-defined]
        profiles = ["train"] + (["held_out"] if load_network(scenario).held_out_profiles else [])
        for profile in profiles:
            travel = {}
            for agent in AGENTS:
                policy = make_baseline(agent, make_env(env_id, profile=profile), seed=0)
                records = evaluate_policy(policy, env_id, episodes=args.episodes, env_kwargs={"profile": profile})
                travel[agent] = float(np.mean([r.metrics["travel_time"] for r in records]))
            margin = 100 * (travel["max-pressure"] / travel["fixed-time"] - 1)
            print(f"| {name} | {profile} | " + " | ".join(f"{travel[a]:.1f}" for a in AGENTS) + f" | {margin:+.0f} % |",
                  flush=True)


if __name__ == "__main__":
    main()
