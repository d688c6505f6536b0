"""`rlsuite tune` against the agent's preset, the untuned defaults and Optuna in RL Zoo's style, on one env.

Two studies on the same budget of training runs, in one process, sharing one results database:

- rlsuite: `--trials T --seeds K`: each trial trains K seeds, is scored by the IQM of their mean returns on
  20 validation episodes each, and is pruned (median pruner) after a seed when its IQM so far falls below
  the median of earlier trials at that rung; the top 2 trials are confirmed.
- RL Zoo style: `--trials K*T --seeds 1`: one seed per trial, scored by its last evaluation (RL Zoo's
  `--optimize` objective); its best trial is confirmed.

Both confirm stages retrain on the same fresh seeds (10000 onwards) and evaluate on the test seeds; the
preset (at this budget) and the untuned defaults (the preset file's `default:` block) are confirmed
alongside, once: the second study reuses those runs from the database. The table printed at the end is
what docs/tune.md records: each configuration's tuning score next to its confirmed IQM with a 95%
bootstrap interval, and the CPU seconds each study spent.

Run: `OMP_NUM_THREADS=1 nice python benchmarks/tune_vs_preset.py --env Acrobot-v1 [--agent ppo] [--trials 8]
[--seeds 2] [--steps 50000] [--confirm-seeds 4] [--out bench_tune]`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from rlsuite.evaluation.tune_report import confirm_interval
from rlsuite.tune import TuneSpec, run_tune


def study(name: str, spec: TuneSpec, console: Console) -> dict:
    wall = time.monotonic()
    summary = run_tune(spec, command=f"benchmarks/tune_vs_preset.py ({name})", console=console)
    data = json.loads((spec.out / "tune.json").read_text())
    # CPU seconds of the tuning runs, as each worker measured them (a resumed call reuses earlier runs, so
    # the sum is read from the study, not from this process's children)
    data["tuning_cpu_seconds"] = sum(u["cpu_seconds"] for t in data["trials"] for u in t["units"])
    data["tuning_runs"] = sum(len(t["units"]) for t in data["trials"])
    data["wall_seconds"] = time.monotonic() - wall
    data["summary"] = {"trials": summary.trials, "complete": summary.complete, "pruned": summary.pruned,
                       "failed": summary.failed}
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="ppo")
    parser.add_argument("--env", default="Acrobot-v1")
    parser.add_argument("--trials", type=int, default=8, help="rlsuite trials (RL Zoo style gets seeds x as many)")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per rlsuite trial")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--confirm-seeds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench_tune"))
    args = parser.parse_args()
    console = Console(stderr=True)
    common = dict(agent=args.agent, envs=(args.env,), steps=args.steps, episodes=20,
                  confirm_seeds=args.confirm_seeds, workers=args.workers, db=args.out / "results.db")
    ours = study("rlsuite", TuneSpec(**common, trials=args.trials, seeds=args.seeds, pruner="median",
                                     confirm_top=2, out=args.out / "rlsuite"), console)
    # Its own sampler seed: with the same one its first (random) proposals would repeat the first study's
    zoo = study("rl-zoo-style", TuneSpec(**common, trials=args.seeds * args.trials, seeds=1, pruner="none",
                                         confirm_top=1, sampler_seed=1, out=args.out / "rlzoo"), console)
    print(f"{args.agent} on {args.env}, {args.steps} steps per run, confirm: {args.confirm_seeds} fresh seeds x 20 "
          "test episodes; IQM of the runs' mean returns [95% bootstrap CI]")
    print("| study | configuration | tuning score | confirmed test IQM [95% CI] | CPU s / run |")
    print("|---|---|---|---|---|")
    for name, data in ((f"rlsuite ({args.seeds} seeds/trial)", ours), ("RL Zoo style (1 seed/trial)", zoo)):
        for row in data["confirm"]:
            point, low, high = confirm_interval(row["test"], data["envs"])
            tuning = f"{row['tuning_values'][0]:.1f}" if row["tuning_values"] else "-"
            star = " (winner)" if row["label"] == data["winner"] else ""
            print(f"| {name} | {row['label']}{star} | {tuning} | {point:.1f} [{low:.1f}, {high:.1f}] | "
                  f"{row['cpu_seconds']:.1f} |")
    for name, data in (("rlsuite", ours), ("RL Zoo style", zoo)):
        print(f"{name}: {data['summary']}, {data['tuning_runs']} tuning runs, {data['tuning_cpu_seconds']:.0f} CPU s "
              f"of tuning runs; this call's wall time {data['wall_seconds']:.0f} s")
        best = data.get("best_file")
        if best:
            print(f"{name} best.yaml ({best}):\n{Path(best).read_text()}")


if __name__ == "__main__":
    main()
