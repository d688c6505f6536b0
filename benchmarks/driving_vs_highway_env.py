"""Steps per second of highway-env's `highway-fast-v0` and of rlsuite's Highway, in one process.

Equivalent settings: 3 lanes, 20 traffic vehicles, simulation at 5 Hz, decisions at 1 Hz, 30 s episodes,
kinematics observation of 5 vehicles, discrete meta-actions, uniform random actions, episodes reset when
they end. The primary rows are `rlsuite/Highway-Fast-v0`, which also has highway-fast-v0's traffic:
collisions of the ego only (highway-fast-v0 sets `check_collisions = False` on every traffic vehicle)
and MOBIL politeness 0; the second figure is `rlsuite/Highway-v0`, which checks all pairs of vehicles
(more work than the peer does) and draws each vehicle's politeness in [0, 0.3].
Repeats alternate peer / ours (A B A B ...) and the ratio of medians is printed, since absolute figures
on a shared machine move from run to run. Each contestant runs for `--seconds` of its own CPU time and
both rates are printed: steps per CPU second (the process's time, so the other jobs on a loaded machine
hardly move it; every contestant is single-threaded) and steps per wall second.

    python benchmarks/driving_vs_highway_env.py [--seconds 3] [--repeats 3] [--sizes 1 256 1024] [--no-all-pairs]
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)

Rates = tuple[float, float]  # (steps per CPU second, steps per wall second)
EQUIVALENT = "rlsuite/Highway-Fast-v0"  # highway-fast-v0's settings, collision rule and politeness
ALL_PAIRS = "rlsuite/Highway-v0"  # the same, with collisions checked between all vehicles


def _single_env_rates(env: gym.Env, seconds: float) -> Rates:
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps, cpu, wall = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu < seconds:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(5)))
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def peer_rates(seconds: float) -> Rates:
    import highway_env  # noqa: F401  (registers highway-fast-v0)

    return _single_env_rates(gym.make("highway-fast-v0"), seconds)


def ours_rates(env_id: str, num_envs: int, seconds: float) -> Rates:
    if num_envs == 1:
        return _single_env_rates(gym.make(env_id), seconds)
    rng = np.random.default_rng(0)
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    steps, cpu, wall = 0, time.process_time(), time.perf_counter()
    while time.process_time() - cpu < seconds:  # next-step autoreset: no reset calls needed
        envs.step(rng.integers(5, size=num_envs))
        steps += num_envs
    return steps / (time.process_time() - cpu), steps / (time.perf_counter() - wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per repeat and contestant")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 256, 1024], help="numbers of envs of ours")
    parser.add_argument("--no-all-pairs", action="store_true", help=f"skip the second figure ({ALL_PAIRS})")
    args = parser.parse_args()
    env_ids = [EQUIVALENT] + ([] if args.no_all_pairs else [ALL_PAIRS])
    peer: list[Rates] = []
    ours: dict[tuple[str, int], list[Rates]] = {(e, n): [] for e in env_ids for n in args.sizes}
    for _ in range(args.repeats):  # alternate A B A B so load changes hit both sides
        peer.append(peer_rates(args.seconds))
        for key in ours:
            ours[key].append(ours_rates(*key, args.seconds))
    peer_cpu, peer_wall = (statistics.median(r[k] for r in peer) for k in (0, 1))
    print(f"{'contestant':44s} {'steps/CPU s':>12s} {'ratio':>8s} {'steps/wall s':>13s} {'ratio':>8s}")
    print(f"{'highway-fast-v0 (highway-env), 1 env':44s} {peer_cpu:12.1f} {1:7.1f}x {peer_wall:13.1f} {1:7.1f}x")
    for (env_id, n), values in ours.items():
        cpu, wall = (statistics.median(r[k] for r in values) for k in (0, 1))
        print(f"{f'{env_id}, {n} env(s)':44s} {cpu:12.1f} {cpu / peer_cpu:7.1f}x {wall:13.1f} {wall / peer_wall:7.1f}x")


if __name__ == "__main__":
    main()
