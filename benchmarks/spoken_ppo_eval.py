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

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.actor_critic import ActorCriticPolicy
from rlsuite.agents.registry import load_policy
from rlsuite.agents.tensors import obs_to_tensor
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
    run_kwargs = dict(loaded.manifest.get("settings", {}).get("env_kwargs") or {})  # e.g. the reward rule trained on
    print(f"{args.run_dir} checkpoint {loaded.checkpoint} (step {loaded.step}), env {env_id}, "
          f"{args.episodes} episodes per setting, seeds 3,000,000+, env kwargs {run_kwargs}")
    print("| setting | success | wrong target | mean return |")
    print("| --- | ---: | ---: | ---: |")
    for name, kwargs in SETTINGS.items():
        episodes = evaluate_policy(loaded.policy, env_id, episodes=args.episodes, n_envs=min(args.episodes, 100),
                                   env_kwargs={**run_kwargs, **kwargs}, seeds=range(3_000_000, 3_000_000 + args.episodes))
        success = np.mean([e.metrics["is_success"] for e in episodes])
        wrong = np.mean([e.metrics["wrong_target"] for e in episodes])
        ret = np.mean([e.episode_return for e in episodes])
        print(f"| {name} | {success:.3f} | {wrong:.3f} | {ret:.2f} |", flush=True)
    if getattr(getattr(loaded.policy, "network", None), "front", None) is not None:
        print_command_accuracy(loaded.policy, env_id, args.episodes, run_kwargs)


def print_command_accuracy(policy: ActorCriticPolicy, env_id: str, episodes: int, run_kwargs: dict) -> None:
    """Runs trained with spoken_pointer's auxiliary command loss: how often its classifier
    names the command from the first observation of each evaluation episode, by setting (chance 1/4)."""
    print("\n| setting | auxiliary classifier names the command |\n| --- | ---: |")
    for name, kwargs in SETTINGS.items():
        envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode="vector_entry_point",
                            **{**run_kwargs, **kwargs})
        obs, info = envs.reset(seed=3_000_000)  # row i == the harness's episode with seed 3,000,000 + i
        x = policy.obs_normalizer.normalize(obs) if policy.obs_normalizer is not None else obs
        with torch.no_grad():
            policy.network.features(obs_to_tensor(x, policy.device))
            guess = policy.network.front.last_logits.argmax(-1).cpu().numpy()  # type: ignore[union-attr]
        print(f"| {name} | {np.mean(guess == info['command']):.3f} |", flush=True)
        envs.close()


if __name__ == "__main__":
    main()
