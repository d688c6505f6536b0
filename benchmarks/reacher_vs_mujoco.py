"""Our Reacher (NumPy) vs Gymnasium's MuJoCo Reacher-v5: env steps per second, single env and vectorised.

Single env: `gym.make` of each (the same wrappers: order enforcing, passive checker, and MuJoCo's time
limit), random actions drawn beforehand, reset on truncation. Vectorised with N sub-envs: ours is the
natively vectorised core (`vectorization_mode="vector_entry_point"`), MuJoCo's is Gymnasium's
`SyncVectorEnv` (MuJoCo has no batched Gymnasium env; `async` forks N processes, which a 2-core machine
cannot run faster). Both autoreset. Each measurement runs for about `--seconds` and the two sides
alternate (A B A B ...) `--repeats` times in this one process; the table shows medians and the ratio.
Run: `python benchmarks/reacher_vs_mujoco.py [--sizes 256 1024] [--repeats 3] [--seconds 1.5]`.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)

OURS, PEER = "rlsuite/Reacher-v0", "Reacher-v5"


def single_steps_per_second(env_id: str, seconds: float) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (4096, 2)).astype(np.float32)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions[:500]:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        steps += 500
    rate = steps / (time.perf_counter() - start)
    env.close()
    return rate


def vector_steps_per_second(env_id: str, num_envs: int, seconds: float) -> float:
    mode = "vector_entry_point" if env_id == OURS else "sync"
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    envs.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (64, num_envs, 2)).astype(np.float32)
    envs.step(actions[0])  # warm-up
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[calls % 64])
        calls += 1
    rate = calls * num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()

    rows: list[tuple[str, float, float]] = []
    ours, peer = [], []
    for _ in range(args.repeats):
        ours.append(single_steps_per_second(OURS, args.seconds))
        peer.append(single_steps_per_second(PEER, args.seconds))
    rows.append(("single env", float(np.median(ours)), float(np.median(peer))))
    mujoco_single = rows[0][2]
    for size in args.sizes:
        ours, peer = [], []
        for _ in range(args.repeats):
            ours.append(vector_steps_per_second(OURS, size, args.seconds))
            peer.append(vector_steps_per_second(PEER, size, args.seconds))
        rows.append((f"{size} envs", float(np.median(ours)), float(np.median(peer))))

    print("| setting | ours steps/s | MuJoCo Reacher-v5 steps/s | ratio | ratio to MuJoCo single env |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, ours_rate, peer_rate in rows:
        print(f"| {name} | {ours_rate:,.0f} | {peer_rate:,.0f} | {ours_rate / peer_rate:.1f}x "
              f"| {ours_rate / mujoco_single:.1f}x |")


if __name__ == "__main__":
    main()
