"""Atari on a CPU: what the `--config cpu` recipe buys, per CPU second and per score.

`speed` trains one agent for the same frames, in this one process and one torch thread, three ways, sides
alternating, and prints frames per CPU second (the process's, the emulator threads included) and their
ratios. `--agent ppo`: the CPU recipe (`rlsuite train --agent ppo --env ALE/<Game>-v5 --config cpu`), the
Atari preset (Nature CNN, as RL Zoo and CleanRL) and SB3's PPO (CnnPolicy, its AtariWrapper, RL Zoo's
Atari settings). `--agent dqn`: DQN's CPU recipe (`--agent dqn --config cpu`), that recipe with the Nature
CNN, and SB3's DQN with RL Zoo's Atari settings; all three learn from agent step 1,000 on. `curve RUN [RUN ...]` reads run folders and plots the evaluation score against the training
process's CPU seconds and against frames (one figure, both axes), for the docs.

    OMP_NUM_THREADS=1 python benchmarks/atari_cpu.py speed --game Pong --frames 32768 --repeats 2
    OMP_NUM_THREADS=1 python benchmarks/atari_cpu.py speed --agent dqn --game Pong --frames 65536 --repeats 2
    python benchmarks/atari_cpu.py curve docs/atari_cpu/dqn-pong-cpu --out docs/atari_cpu/learning_curve.png
    OMP_NUM_THREADS=1 python benchmarks/atari_cpu.py epsilon docs/atari_cpu/dqn-pong-cpu --episodes 10
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from atari_pipeline import FRAME_SKIP, atari_ours, dqn_sb3, ppo_sb3

from rlsuite.agents.logger import read_metrics


def speed_arms(agent: str, game: str, frames: int) -> dict[str, Callable[[Path], tuple[float, float]]]:
    """The three sides for `agent`: our CPU recipe, the same agent with the Nature CNN, and SB3's agent.
    DQN's sides all start learning after 1,000 agent steps, so a short run times the learning loop."""
    if agent == "ppo":
        return {
            "ours PPO, --config cpu (NIPS CNN)": lambda root: atari_ours(frames, root, game, config="cpu"),
            "ours PPO, Atari preset (Nature CNN)": lambda root: atari_ours(frames, root, game),
            "SB3 PPO (Nature CNN)": lambda root: ppo_sb3(frames, game),
        }
    warm = {"learning_starts": 1_000}
    return {
        "ours DQN, --config cpu (NIPS CNN)": lambda root: atari_ours(frames, root, game, "cpu", "dqn", warm),
        "ours DQN, --config cpu with the Nature CNN": lambda root: atari_ours(
            frames, root, game, "cpu", "dqn", {**warm, "cnn": "nature"}),
        "SB3 DQN (Nature CNN, RL Zoo)": lambda root: dqn_sb3(frames, game, learning_starts=1_000),
    }


def speed(agent: str, game: str, frames: int, repeats: int) -> None:
    torch.set_num_threads(1)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], fused=True)  # torch._dynamo's import, before the clocks
    arms = speed_arms(agent, game, frames)
    per_cpu: dict[str, list[float]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            for name, arm in arms.items():
                wall, cpu = arm(Path(tmp) / f"{repeat}-{len(per_cpu[name])}-{name[:4]}")
                per_cpu[name].append(cpu)
                print(f"{game} {frames} frames, {name}: {cpu:.0f} frames per CPU s ({wall:.0f} per wall s)", flush=True)
    cpu_arm, nature_arm, sb3_arm = (np.array(v) for v in per_cpu.values())
    print(f"\n{game}, {frames} frames, median of {repeats} (frames per CPU second):")
    for name, values in per_cpu.items():
        print(f"| {name} | {np.median(values):.0f} |")
    print(f"CPU recipe vs Nature CNN: {np.median(cpu_arm / nature_arm):.2f}x; vs SB3: "
          f"{np.median(cpu_arm / sb3_arm):.2f}x; Nature CNN vs SB3: {np.median(nature_arm / sb3_arm):.2f}x "
          "(medians of paired ratios)")


def read_curve(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, training CPU seconds, eval/mean_return) at each periodic evaluation of a run folder."""
    metrics = read_metrics(run)
    cpu_at = dict(zip(*metrics.get("charts/process_cpu_s", ((), ())), strict=True))
    score_at = dict(zip(*metrics.get("eval/mean_return", ((), ())), strict=True))
    steps = sorted(s for s in score_at if s in cpu_at)
    return (np.array(steps) * FRAME_SKIP, np.array([cpu_at[s] for s in steps]), np.array([score_at[s] for s in steps]))


def curve(runs: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_cpu, by_frames) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for run in runs:
        frames, cpu, score = read_curve(run)
        by_cpu.plot(cpu / 3600, score, marker="o", label=run.name)
        by_frames.plot(frames / 1e6, score, marker="o", label=run.name)
        print(f"{run.name}: " + ", ".join(f"{f / 1e6:.1f}M frames / {c / 3600:.2f} CPU h: {s:.1f}"
                                          for f, c, s in zip(frames, cpu, score, strict=True)))
    by_cpu.set_xlabel("training CPU hours (whole process, all threads)")
    by_frames.set_xlabel("emulator frames (millions)")
    by_cpu.set_ylabel("evaluation score (validation seeds)")
    for ax in (by_cpu, by_frames):
        ax.axhline(18, color="grey", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    by_cpu.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def epsilon_cost(run: Path, checkpoint: str, episodes: int, epsilons: list[float]) -> None:
    """A run's checkpoint on the same validation-seed games at each evaluation epsilon: what the
    protocol's epsilon (0.05) costs a policy against the epsilon it trained with."""
    from rlsuite.evaluation.evaluate import load_agent
    from rlsuite.evaluation.harness import evaluate_policy, validation_seeds

    subject = load_agent(run_dir=run, checkpoint=checkpoint)
    print(f"{run.name}, checkpoint {checkpoint} (step {subject.checkpoint_step}), {episodes} games, validation seeds")
    for eps in epsilons:
        records = evaluate_policy(subject.policy, subject.env_id, episodes=episodes, seeds=validation_seeds(episodes),
                                  epsilon=eps, env_kwargs=subject.eval_env_kwargs, threads=1)
        returns = [r.episode_return for r in records]
        print(f"| {eps:g} | {np.mean(returns):.1f} | {' '.join(f'{r:g}' for r in returns)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fast = sub.add_parser("speed", help="frames per CPU second of the three training loops")
    fast.add_argument("--agent", choices=("ppo", "dqn"), default="ppo")
    fast.add_argument("--game", default="Pong")
    fast.add_argument("--frames", type=int, default=32_768)
    fast.add_argument("--repeats", type=int, default=2)
    plot = sub.add_parser("curve", help="score against CPU time and frames, from run folders")
    plot.add_argument("runs", nargs="+", type=Path)
    plot.add_argument("--out", type=Path, required=True)
    cost = sub.add_parser("epsilon", help="a checkpoint's score at several evaluation epsilons (validation seeds)")
    cost.add_argument("run", type=Path)
    cost.add_argument("--checkpoint", default="last")
    cost.add_argument("--episodes", type=int, default=10)
    cost.add_argument("--epsilons", type=float, nargs="+", default=[0.05, 0.01, 0.001])
    args = parser.parse_args()
    if args.command == "speed":
        speed(args.agent, args.game, args.frames, args.repeats)
    elif args.command == "curve":
        curve(args.runs, args.out)
    else:
        epsilon_cost(args.run, args.checkpoint, args.episodes, args.epsilons)


if __name__ == "__main__":
    main()
