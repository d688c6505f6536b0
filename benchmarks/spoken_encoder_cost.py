"""Cost of the audio SequenceEncoder in PPO on rlsuite/SpokenReach-v0: before and after de-duplication.

One rollout of the real env (16 envs x 64 steps, random actions, next-step autoreset) gives the audio
batches PPO sees. Timed, in one process with the contestants alternating (A B C A B C ...):
- rollout: 64 forward passes without gradients over the 16 envs' audio (one per env step);
- update: 4 minibatches of 256 rows drawn from the rollout, forward and backward (one PPO epoch).

Contestants: `before` = the full-rate encoder (64 conv channels, LSTM 128, time stride 2) running every
row (`SequenceEncoder.encode`); `dedup` = the same network through `forward` (each distinct row once,
unchanged rows reused without gradients); `default` = today's default encoder (32 channels, LSTM 64,
stride 4) through `forward`.

    nice -n 10 python benchmarks/spoken_encoder_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch

from rlsuite.envs.spoken import SpokenReachVectorEnv
from rlsuite.policies.encoders import SequenceEncoder

N_ENVS, N_STEPS, MINIBATCH, N_MINIBATCHES = 16, 64, 256, 4


def rollout_audio(seed: int = 0) -> torch.Tensor:
    """(steps, envs, T, F) log-mel observations of one rollout with random actions."""
    env = SpokenReachVectorEnv(N_ENVS)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(N_STEPS):
        frames.append(obs["audio"])
        obs, *_ = env.step(rng.uniform(-1, 1, (N_ENVS, 2)).astype(np.float32))
    return torch.as_tensor(np.stack(frames))


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    audio = rollout_audio()  # (64, 16, 98, 40)
    flat = audio.reshape(-1, *audio.shape[2:])  # (1024, 98, 40)
    distinct = len(torch.unique(flat.reshape(len(flat), -1), dim=0))
    space = gym.spaces.Box(-np.inf, np.inf, tuple(audio.shape[2:]), np.float32)
    old = SequenceEncoder(space, conv_channels=64, hidden_size=128, time_stride=2)
    new = SequenceEncoder(space)
    contestants: dict[str, tuple[SequenceEncoder, Callable[[torch.Tensor], torch.Tensor]]] = {
        "before (every row, 64/128/stride 2)": (old, old.encode),
        "dedup (same network)": (old, old),
        "default (dedup, 32/64/stride 4)": (new, new),
    }
    gen = torch.Generator().manual_seed(1)
    minibatches = [torch.randint(0, len(flat), (MINIBATCH,), generator=gen) for _ in range(N_MINIBATCHES)]
    times: dict[str, dict[str, list[float]]] = {name: {"rollout": [], "update": []} for name in contestants}

    for _ in range(args.repeats):
        for name, (module, call) in contestants.items():
            module._last = None  # no features carried over from the previous repeat

            def rollout(call: Callable[[torch.Tensor], torch.Tensor] = call) -> None:
                with torch.inference_mode():
                    for step in range(N_STEPS):
                        call(audio[step])

            def update(module: SequenceEncoder = module, call: Callable[[torch.Tensor], torch.Tensor] = call) -> None:
                for idx in minibatches:
                    module.zero_grad()
                    call(flat[idx]).square().mean().backward()

            times[name]["rollout"].append(timed(rollout))
            times[name]["update"].append(timed(update))

    print(f"one rollout: {N_ENVS} envs x {N_STEPS} steps, {distinct} distinct commands among {len(flat)} rows; "
          f"update: {N_MINIBATCHES} minibatches of {MINIBATCH} rows; medians of {args.repeats} repeats")
    base = {k: float(np.median(v)) for k, v in times["before (every row, 64/128/stride 2)"].items()}
    print("| encoder | rollout (s) | update (s) | rollout speed-up | update speed-up |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, t in times.items():
        roll, upd = float(np.median(t["rollout"])), float(np.median(t["update"]))
        print(f"| {name} | {roll:.3f} | {upd:.3f} | {base['rollout'] / roll:.1f}x | {base['update'] / upd:.1f}x |")


if __name__ == "__main__":
    main()
