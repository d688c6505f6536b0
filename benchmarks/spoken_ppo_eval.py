"""Evaluate a PPO run on rlsuite/SpokenReach-v0 by voice split, and with the audio zeroed.

Train first (the preset in agents/presets/ppo.yaml), e.g.

    nice -n 10 rlsuite train --agent ppo --env rlsuite/SpokenReach-v0 --seed 0 --run-dir runs/spoken

then `python benchmarks/spoken_ppo_eval.py runs/spoken [--checkpoint last|best|STEP] [--episodes 200]`.
Every setting runs the same fixed seeds (3,000,000+, never used in training) through the evaluation
harness with the env kwargs `voices="train"`, `voices="heldout"` and `mute=True`; chance is 1/4.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from rlsuite.agents.registry import load_policy
from rlsuite.evaluation.harness import evaluate_policy

ENV_ID = "rlsuite/SpokenReach-v0"
SETTINGS: dict[str, dict[str, object]] = {
    "train voices": {"voices": "train"},
    "held-out voices": {"voices": "heldout"},
    "train voices, audio zeroed": {"voices": "train", "mute": True},
    "held-out voices, audio zeroed": {"voices": "heldout", "mute": True},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", default="last", help="best, last or a step number")
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    checkpoint: str | int = int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint
    loaded = load_policy(args.run_dir, checkpoint)
    env_id = loaded.manifest.get("env_id", ENV_ID)
    print(f"{args.run_dir} checkpoint {loaded.checkpoint} (step {loaded.step}), env {env_id}, "
          f"{args.episodes} episodes per setting, seeds 3,000,000+")
    print("| setting | success | wrong target | mean return |")
    print("| --- | ---: | ---: | ---: |")
    for name, kwargs in SETTINGS.items():
        episodes = evaluate_policy(loaded.policy, env_id, episodes=args.episodes, n_envs=min(args.episodes, 100),
                                   env_kwargs=kwargs, seeds=range(3_000_000, 3_000_000 + args.episodes))
        success = np.mean([e.metrics["is_success"] for e in episodes])
        wrong = np.mean([e.metrics["wrong_target"] for e in episodes])
        ret = np.mean([e.episode_return for e in episodes])
        print(f"| {name} | {success:.3f} | {wrong:.3f} | {ret:.2f} |", flush=True)


if __name__ == "__main__":
    main()
