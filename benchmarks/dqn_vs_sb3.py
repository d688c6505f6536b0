"""Our DQN vs Stable-Baselines3's DQN on CartPole-v1, same hyperparameters, one process run.

Both use RL Zoo's CartPole DQN settings (hyperparams/dqn.yml: 50k steps, 1 env, lr 2.3e-3, batch 64,
buffer 100k, learning_starts 1000, gamma 0.99, target_update_interval 10, train_freq 256,
gradient_steps 128, exploration 0.16 -> 0.04, net_arch [256, 256]) and one torch thread. Throughput is
env steps and gradient updates per second over the whole `learn`, in wall time and in process CPU time
(CPU time is steadier on a shared machine); the score is the final policy's mean return over the same
10 fixed evaluation seeds through our harness. Ours and SB3 alternate seed by seed (A B A B ...) so both
see the same machine load.

Run: `python benchmarks/dqn_vs_sb3.py [--seeds 0 1 2] [--steps 50000] [--set double=true] [--sides ours]
[--out rows.jsonl]`; `--summarize a.jsonl b.jsonl` prints the per-seed table of earlier runs (several
processes, one per seed range), both means and a bootstrap 95% CI of the mean score difference.
`--set` changes OUR settings only (e.g. our double Q, which SB3 lacks): such a row is not like for like.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import Stopwatch, bootstrap_ci, sb3_policy, score, setup_torch, train_ours

from rlsuite.agents import dqn
from rlsuite.agents.logger import read_metrics
from rlsuite.agents.registry import load_policy
from rlsuite.agents.settings import parse_set_args

ENV_ID = "CartPole-v1"


def run_ours(seed: int, steps: int, root: Path, overrides: dict[str, str]) -> tuple[float, float, Stopwatch, float]:
    """(env steps, gradient updates, timing, final eval mean)."""
    ours = train_ours(dqn, "dqn", ENV_ID, seed, root, {"total_steps": steps, "eval_every": 0, **overrides})
    updates = float(read_metrics(ours.path)["charts/updates"][1][-1])
    return ours.result.final_step, updates, ours.clock, score(load_policy(ours.path, "last").policy, ENV_ID)


def run_sb3(seed: int, steps: int) -> tuple[float, float, Stopwatch, float]:
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
    model = DQN("MlpPolicy", env, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128, exploration_fraction=0.16,
                exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]}, seed=seed, device="cpu", verbose=0)
    clock = Stopwatch()
    with clock.running():
        model.learn(total_timesteps=steps)
    return model.num_timesteps, model._n_updates, clock, score(sb3_policy(model), ENV_ID)


def summarize(paths: list[str]) -> None:
    """Per-seed table (ours, SB3, difference), both means and the CI, from --out files of earlier runs.

    Rows of one label and seed from several files are merged (a later file's fields win), so an ours-only
    run and an SB3 figure recorded elsewhere pair up. A label without SB3 figures (a --set row) is paired
    with the like-for-like rows' SB3 scores of the same seeds: SB3's side is the same run."""
    merged: dict[tuple[str, int], dict] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                merged.setdefault((row["label"], row["seed"]), {}).update(row)
    sb3_by_seed = {seed: row["sb3_eval"] for (label, seed), row in merged.items()
                   if label == "like-for-like" and row.get("sb3_eval") is not None}
    for label in sorted({label for label, _ in merged}, key=lambda name: name != "like-for-like"):
        by_seed = {seed: row for (name, seed), row in merged.items() if name == label and "ours_eval" in row}
        sb3 = {seed: row.get("sb3_eval", sb3_by_seed.get(seed)) for seed, row in by_seed.items()}
        print(f"[{label}] seed  ours eval  sb3 eval  ours-sb3  ratio steps/CPU s")
        for seed in sorted(by_seed):
            row = by_seed[seed]
            ratio = row["ours_steps_cpu"] / row["sb3_steps_cpu"] if row.get("sb3_steps_cpu") else float("nan")
            pair = f"{sb3[seed]:8.1f}  {row['ours_eval'] - sb3[seed]:8.1f}" if sb3[seed] is not None else f"{'-':>8}  {'-':>8}"
            print(f"[{label}] {seed:4d}  {row['ours_eval']:9.1f}  {pair}  {ratio:6.2f}")
        ratios = [row["ours_steps_cpu"] / row["sb3_steps_cpu"] for row in by_seed.values() if row.get("sb3_steps_cpu")]
        if ratios:
            print(f"[{label}] median per-seed ratio env steps per CPU s ours/sb3 {np.median(ratios):.2f} "
                  f"({len(ratios)} seeds, range {min(ratios):.2f}-{max(ratios):.2f})")
        paired = sorted(seed for seed in by_seed if sb3[seed] is not None)
        if paired:
            o = np.array([by_seed[s]["ours_eval"] for s in paired])
            b = np.array([sb3[s] for s in paired])
            low, high = bootstrap_ci(o - b)
            print(f"[{label}] {len(paired)} paired seeds: ours mean {o.mean():.1f} (500 on {int((o >= 500).sum())}), "
                  f"sb3 mean {b.mean():.1f} (500 on {int((b >= 500).sum())}), mean difference ours - sb3 "
                  f"{np.mean(o - b):.1f}, bootstrap 95% CI [{low:.1f}, {high:.1f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="our settings only (not like for like)")
    parser.add_argument("--sides", choices=["both", "ours"], default="both", help="ours: skip SB3 (for --set rows)")
    parser.add_argument("--out", help="append one JSON line per seed to this file")
    parser.add_argument("--summarize", nargs="+", metavar="FILE", help="summarize --out files instead of running")
    args = parser.parse_args()
    if args.summarize:
        summarize(args.summarize)
        return
    overrides = parse_set_args(args.set)
    label = "like-for-like" if not overrides else "ours " + " ".join(args.set)
    setup_torch()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            o_steps, o_updates, o_clock, o_score = run_ours(seed, args.steps, Path(tmp), overrides)
            record = {"label": label, "seed": seed, "steps": args.steps, "ours_eval": o_score,
                      "ours_steps_cpu": o_steps / o_clock.cpu, "ours_updates_cpu": o_updates / o_clock.cpu,
                      "ours_steps_wall": o_steps / o_clock.wall}
            if args.sides == "both":
                s_steps, s_updates, s_clock, s_score = run_sb3(seed, args.steps)
                record.update({"sb3_eval": s_score, "sb3_steps_cpu": s_steps / s_clock.cpu,
                               "sb3_updates_cpu": s_updates / s_clock.cpu, "sb3_steps_wall": s_steps / s_clock.wall})
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(record) + "\n")
            if args.sides == "ours":
                print(f"seed {seed} [{label}]: ours {o_steps / o_clock.cpu:6.0f} steps per CPU s, eval {o_score:6.1f}",
                      flush=True)
                continue
            # per second of wall time and of CPU time: env steps and gradient updates, ours then SB3
            row = (o_steps / o_clock.wall, o_updates / o_clock.wall, o_steps / o_clock.cpu, o_updates / o_clock.cpu,
                   s_steps / s_clock.wall, s_updates / s_clock.wall, s_steps / s_clock.cpu, s_updates / s_clock.cpu,
                   o_score, s_score)
            rows.append(row)
            print(f"seed {seed}: ours {row[0]:6.0f} steps/s {row[1]:6.0f} updates/s wall, {row[2]:6.0f} steps {row[3]:6.0f} "
                  f"updates per CPU s (eval {o_score:6.1f}) | sb3 {row[4]:6.0f} steps/s {row[5]:6.0f} updates/s wall, "
                  f"{row[6]:6.0f} steps {row[7]:6.0f} updates per CPU s (eval {s_score:6.1f}) | "
                  f"ratio steps wall {row[0] / row[4]:.2f} CPU {row[2] / row[6]:.2f}, "
                  f"updates wall {row[1] / row[5]:.2f} CPU {row[3] / row[7]:.2f}", flush=True)
    if not rows:
        return
    table = np.array(rows)
    # Each seed's pair ran back to back, so the per-seed ratio is the fair one when the machine's load drifts.
    for label, ours_col, sb3_col in (("env steps/s (wall)", 0, 4), ("gradient updates/s (wall)", 1, 5),
                                     ("env steps per CPU s", 2, 6), ("gradient updates per CPU s", 3, 7)):
        ratio = np.median(table[:, ours_col] / table[:, sb3_col])
        print(f"median {label}: ours {np.median(table[:, ours_col]):.0f}, sb3 {np.median(table[:, sb3_col]):.0f}; "
              f"median per-seed ratio ours/sb3 {ratio:.2f}")
    print(f"mean final eval return: ours {table[:, 8].mean():.1f}, sb3 {table[:, 9].mean():.1f}")
    if len(table) > 1:
        low, high = bootstrap_ci(table[:, 8] - table[:, 9])
        print(f"mean difference ours - sb3 {np.mean(table[:, 8] - table[:, 9]):.1f}, bootstrap 95% CI [{low:.1f}, {high:.1f}]")


if __name__ == "__main__":
    main()
