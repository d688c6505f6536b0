"""PPO on rlsuite/Reacher-v0 with the preset, over several seeds: the margin of the slow test's 90% threshold.

Trains exactly what tests/test_reacher.py::test_ppo_reaches_90_percent_success trains (the preset, 300k
steps), one seed after another, and evaluates each final policy on the same 200 fresh seeds (2,000,000+).

    nice -n 10 python benchmarks/reacher_ppo_seeds.py --seeds 0 1 2 [--set key=value ...]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import train_ppo_then_evaluate

from rlsuite.train import prepare_settings

ENV_ID = "rlsuite/Reacher-v0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="settings overrides, key=value")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        settings = prepare_settings("ppo", ENV_ID, cli_values={"seed": seed, "tensorboard": False},
                                    set_args=args.set)
        episodes, clock = train_ppo_then_evaluate(settings, ENV_ID, seed, "reacher_ppo_seeds",
                                                  eval_seeds=range(2_000_000, 2_000_200), n_envs=50)
        success = float(np.mean([e.metrics["is_success"] for e in episodes]))
        ret = float(np.mean([e.episode_return for e in episodes]))
        print(f"seed {seed}: success {success:.1%}, mean return {ret:.2f}, training {clock.cpu:.0f} CPU s "
              f"({clock.wall:.0f} s wall), steps {settings.total_steps}", flush=True)


if __name__ == "__main__":
    main()
