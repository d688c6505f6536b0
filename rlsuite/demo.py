"""`rlsuite demo`: the main job end to end on an embedded default, in a few minutes on 2 cores.

Trains PPO on CartPole-v1, evaluates its best checkpoint and the random baseline with the same seeds,
records the median-return episode of each as H.264 MP4, and writes the comparison report.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console

from rlsuite.evaluation.evaluate import evaluate_baseline, evaluate_run
from rlsuite.evaluation.report import write_report
from rlsuite.train import train

DEMO_ENV = "CartPole-v1"
DEMO_EPISODES = 20


def run_demo(out: Path, *, steps: int = 100_000, seed: int = 0, console: Console | None = None) -> Path:
    """Run the demo into `out` (runs/, results.db, videos/, report/); returns the report's HTML path."""
    console = console or Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    db = out / "results.db"
    command = shlex.join(["rlsuite", "train", "--agent", "ppo", "--env", DEMO_ENV, "--steps", str(steps), "--seed", str(seed)])
    console.print(f"[bold]1/4[/] training PPO on {DEMO_ENV} for {steps} steps")
    run, _ = train("ppo", DEMO_ENV, cli_values={"total_steps": steps, "seed": seed}, runs_root=out / "runs",
                   command=command, console=console)
    console.print(f"[bold]2/4[/] evaluating {run.path.name} and the random baseline ({DEMO_EPISODES} episodes each)")
    videos = out / "videos"
    evaluate_run(run.path, checkpoint="best", episodes=DEMO_EPISODES, db=db, video_dir=videos)
    evaluate_baseline("random", DEMO_ENV, episodes=DEMO_EPISODES, db=db, video_dir=videos)
    console.print("[bold]3/4[/] median-return episodes recorded in " + str(videos))
    html = write_report(db, out / "report", envs=[DEMO_ENV])
    console.print(f"[bold]4/4[/] report written: {html}")
    return html
