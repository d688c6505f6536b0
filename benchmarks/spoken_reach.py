"""SpokenReach preset on several seeds: train each with `rlsuite train`, score success on both voice splits.

    OMP_NUM_THREADS=1 nice -n 19 python benchmarks/spoken_reach.py --seeds 0 1 2 --root runs/spoken-reach

Each seed trains the PPO preset (agents/presets/ppo.yaml, 500k steps, about 17 CPU minutes) in its own
`rlsuite train` process into ROOT/s<seed>; a folder whose run already finished is scored, not retrained, and
one whose run stopped is resumed from its last checkpoint (the CPU column then counts the resumed part only).
The final policy then plays 200 fresh episodes (seeds 3,000,000+, never used in training) through the
evaluation harness with the training voices and with the held-out voices; chance is 1/4.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.evaluation.harness import evaluate_policy

ENV_ID = "rlsuite/SpokenReach-v0"
SPLITS = {"training voices": "train", "held-out voices": "heldout"}
THRESHOLD = 0.9


def train(run_dir: Path, seed: int, steps: int | None) -> float:
    """Train one seed in its own process (one torch thread), or resume its stopped run; the CPU seconds this
    process took (user + system)."""
    command = ["rlsuite", "train", "--no-progress"] + (["--steps", str(steps)] if steps else [])
    command += (["--resume", str(run_dir)] if run_dir.exists() else
                ["--agent", "ppo", "--env", ENV_ID, "--seed", str(seed), "--run-dir", str(run_dir)])
    before = os.times()
    code = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode
    if code != 0:
        sys.exit(f"seed {seed}: `{' '.join(command)}` stopped with exit code {code}; rerun this script to resume it")
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def success(run_dir: Path, voices: str, episodes: int) -> float:
    """Success rate of the run's last checkpoint on `episodes` fresh seeds with the given voice split."""
    loaded = load_policy(run_dir, "last")
    run_kwargs = dict(loaded.manifest.get("settings", {}).get("env_kwargs") or {})
    played = evaluate_policy(loaded.policy, ENV_ID, episodes=episodes, n_envs=min(episodes, 100),
                             env_kwargs={**run_kwargs, "voices": voices},
                             seeds=range(3_000_000, 3_000_000 + episodes))
    return float(np.mean([e.metrics["is_success"] for e in played]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--root", type=Path, default=Path("runs/spoken-reach"))
    parser.add_argument("--steps", type=int, default=None, help="override the preset's 500k (a quick check)")
    parser.add_argument("--episodes", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        run_dir = args.root / f"s{seed}"
        cpu = float("nan")
        if not (run_dir.exists() and RunFolder.open(run_dir).effective_status() == "finished"):
            started = time.perf_counter()
            cpu = train(run_dir, seed, args.steps)
            print(f"seed {seed}: trained in {cpu:.0f} CPU s ({time.perf_counter() - started:.0f} s wall)", flush=True)
        rows.append((seed, cpu, {name: success(run_dir, voices, args.episodes) for name, voices in SPLITS.items()}))
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.1%}" for k, v in rows[-1][2].items()), flush=True)
    print(f"\n{ENV_ID}, PPO preset, {args.episodes} fresh episodes per split (seeds 3,000,000+), chance 25%")
    print("| seed | training CPU s | " + " | ".join(SPLITS) + " |")
    print("| ---: | ---: | " + " | ".join("---:" for _ in SPLITS) + " |")
    for seed, cpu, scores in rows:
        print(f"| {seed} | {cpu:.0f} | " + " | ".join(f"{scores[name]:.1%}" for name in SPLITS) + " |")
    worst = {name: min(scores[name] for _, _, scores in rows) for name in SPLITS}
    print("lowest: " + ", ".join(f"{k} {v:.1%}" for k, v in worst.items())
          + f"; every seed >= {THRESHOLD:.0%} on both splits: {all(v >= THRESHOLD for v in worst.values())}")


if __name__ == "__main__":
    main()
