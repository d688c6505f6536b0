"""The training curve of an Atari run from its metrics.csv, for runs without periodic evaluation.

A long run on a shared CPU is trained with `eval_every=0` (evaluation would cost a tenth of its time),
so the report's evaluation curve is empty; this script draws what training logged instead. Under the
`dqn-nature` preset rlsuite's PPO logs `charts/episodic_return` per life with clipped rewards (one
point per brick or paddle hit in Breakout), so the curve is read as "points per life", not the game
score; the harness measures game scores.

Run: `python benchmarks/atari_learning_curve.py RUN_DIR OUT.png [--window 100] [--frame-skip 4]`;
prints frames, wall time and the smoothed return at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rlsuite.agents.logger import read_metrics  # noqa: E402


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each point (fewer at the start)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))  # (n + 1,)
    counts = np.minimum(np.arange(1, len(values) + 1), window)  # (n,)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--window", type=int, default=100, help="episodes in the moving average")
    parser.add_argument("--frame-skip", type=int, default=4)
    args = parser.parse_args()
    metrics = read_metrics(args.run_dir)
    manifest = json.loads((args.run_dir / "manifest.json").read_text())
    steps, returns = metrics["charts/episodic_return"]
    frames = steps * args.frame_skip
    smooth = moving_average(returns, args.window)
    fig, ax = plt.subplots(figsize=(7.0, 4.0))
    ax.plot(frames, returns, ".", markersize=2, alpha=0.25, color="tab:blue", label="one life")
    ax.plot(frames, smooth, color="tab:blue", linewidth=2, label=f"mean of the last {args.window} lives")
    ax.set_xlabel("emulator frames")
    ax.set_ylabel("return per life (clipped rewards)")
    ax.set_title(f"{manifest['agent']} on {manifest['env_id']}, seed {manifest['seed']} "
                 f"({manifest['env_preprocessing']['name']})")
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    ax.legend(loc="upper left")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    sps_steps, _ = metrics["charts/sps"]
    rows = (args.run_dir / "metrics.csv").read_text().splitlines()[1:]  # read_metrics drops wall_time
    first, last = float(rows[0].split(",")[1]), float(rows[-1].split(",")[1])
    print(f"frames {int(sps_steps[-1]) * args.frame_skip} (last update), lives {len(returns)}, "
          f"logged wall time {last - first:.0f} s, return per life: first {args.window} "
          f"{returns[:args.window].mean():.2f}, last {args.window} {smooth[-1]:.2f}, status {manifest['status']}")


if __name__ == "__main__":
    main()
