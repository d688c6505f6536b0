"""PPO on rlsuite/Reacher-v0 with the preset, over several seeds: the margin of the slow test's 90% threshold.

Trains exactly what tests/test_reacher.py::test_ppo_reaches_90_percent_success trains (the preset, 300k
steps), one seed after another, and evaluates each final policy on the same 200 fresh seeds (2,000,000+).

    nice -n 10 python benchmarks/reacher_ppo_seeds.py --seeds 0 1 2 [--set key=value ...]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np
import torch

from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import settings_to_dict
from rlsuite.evaluation.harness import evaluate_policy
from rlsuite.train import prepare_settings, run_training

ENV_ID = "rlsuite/Reacher-v0"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="settings overrides, key=value")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        settings = prepare_settings("ppo", ENV_ID, cli_values={"seed": seed, "tensorboard": False},
                                    set_args=args.set)
        with tempfile.TemporaryDirectory() as tmp:
            run = RunFolder.create(tmp, agent="ppo", env_id=ENV_ID, seed=seed,
                                   settings=settings_to_dict(settings), command="reacher_ppo_seeds", device="cpu")
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            run_training("ppo", settings, run, show_progress=False)
            cpu, wall = cpu_seconds() - cpu0, time.perf_counter() - wall0
            policy = load_policy(run.path, "last").policy
            episodes = evaluate_policy(policy, ENV_ID, episodes=200, n_envs=50, seeds=range(2_000_000, 2_000_200))
        success = float(np.mean([e.metrics["is_success"] for e in episodes]))
        ret = float(np.mean([e.episode_return for e in episodes]))
        print(f"seed {seed}: success {success:.1%}, mean return {ret:.2f}, training {cpu:.0f} CPU s "
              f"({wall:.0f} s wall), steps {settings.total_steps}", flush=True)


if __name__ == "__main__":
    main()
