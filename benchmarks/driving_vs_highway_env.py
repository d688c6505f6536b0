"""Steps per second of highway-env's `highway-fast-v0` and of rlsuite/Highway-v0, in one process.

Equivalent settings: 3 lanes, 20 traffic vehicles, simulation at 5 Hz, decisions at 1 Hz, kinematics
observation of 5 vehicles, discrete meta-actions, uniform random actions, episodes reset when they end.
(rlsuite checks collisions between all vehicles; highway-fast-v0 only for the ego, so ours does more.)
Repeats alternate peer / ours (A B A B ...) and the ratio of medians is printed, since absolute figures
on a shared machine move from run to run.

    python benchmarks/driving_vs_highway_env.py [--seconds 3] [--repeats 3] [--sizes 1 256 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)


def peer_steps_per_second(seconds: float) -> float:
    import highway_env  # noqa: F401  (registers highway-fast-v0)

    env = gym.make("highway-fast-v0")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(5)))
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def ours_steps_per_second(num_envs: int, seconds: float) -> float:
    rng = np.random.default_rng(0)
    if num_envs == 1:
        env = gym.make("rlsuite/Highway-v0")
        env.reset(seed=0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(5)))
            steps += 1
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - start)
    envs = gym.make_vec("rlsuite/Highway-v0", num_envs=num_envs, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:  # next-step autoreset: no reset calls needed
        envs.step(rng.integers(5, size=num_envs))
        steps += num_envs
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per repeat and contestant")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 256, 1024], help="numbers of envs of ours")
    args = parser.parse_args()
    peer: list[float] = []
    ours: dict[int, list[float]] = {n: [] for n in args.sizes}
    for _ in range(args.repeats):  # alternate A B A B so load changes hit both sides
        peer.append(peer_steps_per_second(args.seconds))
        for n in args.sizes:
            ours[n].append(ours_steps_per_second(n, args.seconds))
    peer_median = statistics.median(peer)
    print(f"highway-fast-v0 (highway-env), single env: {peer_median:10.1f} steps/s  (repeats {[round(x, 1) for x in peer]})")
    for n, values in ours.items():
        median = statistics.median(values)
        print(f"rlsuite/Highway-v0, {n:5d} env(s):          {median:10.1f} steps/s  ratio {median / peer_median:8.1f}x")


if __name__ == "__main__":
    main()
