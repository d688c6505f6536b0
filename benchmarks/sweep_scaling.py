"""Sweep scaling on the local backend: the same 8 short CPU trials with 1 and with 2 workers, one process run.

Each trial trains PPO on CartPole-v1 (RL Zoo settings, `--steps` env steps, no periodic evaluation) and
evaluates it on 10 fixed seeds. A repeat runs the grid from scratch (fresh database and run folders, so
nothing is skipped) and its wall time includes starting the worker processes. Repeats alternate
1, 2, 1, 2, ... workers so that load from other jobs on a shared machine hits both sides alike; the
ratio is median(1 worker) / median(2 workers), and 2.0 would be perfect scaling.

Run: `python benchmarks/sweep_scaling.py [--steps 8192] [--repeats 2]`.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console

from rlsuite.sweep import SweepSpec, machine_cores, run_sweep


def one_grid(workers: int, steps: int, trials: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the workers) for the whole grid, from an empty database."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = SweepSpec(agents=("ppo",), envs=("CartPole-v1",), seeds=tuple(range(trials)), steps=steps,
                         set_args=("eval_every=0", "tensorboard=false"), episodes=10, workers=workers,
                         db=Path(tmp) / "results.db", out=Path(tmp) / "sweep", report=False)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers count once the pool has joined them
        start = time.perf_counter()
        summary = run_sweep(spec, console=Console(file=io.StringIO()), show_progress=False)
        seconds = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert summary.finished == trials, summary
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8192, help="PPO env steps per trial")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="grids per worker count")
    args = parser.parse_args()
    print(f"{args.trials} trials x {args.steps} steps, {machine_cores()} cores, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    walls: dict[int, list[float]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for workers in (1, 2):
            seconds, cpu = one_grid(workers, args.steps, args.trials)
            walls[workers].append(seconds)
            # CPU / wall is the parallelism the workers got: about 2 with 2 workers on 2 free cores.
            print(f"repeat {repeat}: {workers} worker(s) {seconds:7.1f} s wall, workers' CPU {cpu:6.1f} s, "
                  f"parallelism {cpu / seconds:.2f} (load average {os.getloadavg()[0]:.2f})", flush=True)
    one, two = statistics.median(walls[1]), statistics.median(walls[2])
    print(f"median wall: 1 worker {one:.1f} s, 2 workers {two:.1f} s; ratio {one / two:.2f} (2.0 = perfect)")


if __name__ == "__main__":
    main()
