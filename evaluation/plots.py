"""Figures for reports: per-env scores, aggregate intervals, probability of improvement, learning curves.

Each function takes plain numbers and returns PNG bytes; the report decides where they go (a file in
`figures/` and a base64 data URI in the HTML), so nothing here touches the file system. Colours come
from `agent_colors`, computed once per report, so an agent keeps its colour in every figure.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; must precede the pyplot import

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 110
RANDOM_COLOUR = "#8c8c8c"
_PALETTE = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79",
)  # fmt: skip

_STYLE: Any = {  # matplotlib types rcParams keys as Literals; a plain dict is what it accepts at runtime
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval."""

    point: float
    low: float
    high: float


@dataclass(frozen=True)
class Curve:
    """One agent's learning curve on a common step grid: the mean over runs and its CI band."""

    steps: np.ndarray  # (G,)
    mean: np.ndarray  # (G,)
    low: np.ndarray  # (G,)
    high: np.ndarray  # (G,)
    num_runs: int


def agent_colors(agents: Sequence[str]) -> dict[str, str]:
    """A colour per agent, stable for a given set of names: `random` is grey, others follow sorted order."""
    colours: dict[str, str] = {}
    others = sorted(a for a in set(agents) if a != "random")
    for i, agent in enumerate(others):
        colours[agent] = _PALETTE[i % len(_PALETTE)]
    if "random" in agents:
        colours["random"] = RANDOM_COLOUR
    return colours


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes; no timestamp or software tag, so the same data gives the same bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _error_bars(intervals: Sequence[Interval]) -> np.ndarray:
    """Distances from each point to its interval ends, shape (2, N), as `errorbar` expects."""
    points = np.array([iv.point for iv in intervals])
    lows = np.array([iv.low for iv in intervals])
    highs = np.array([iv.high for iv in intervals])
    return np.vstack([np.maximum(points - lows, 0.0), np.maximum(highs - points, 0.0)])


def env_scores_figure(
    env_id: str, scores: Mapping[str, Interval], colours: Mapping[str, str], confidence: float
) -> bytes:
    """IQM return per agent with its bootstrap CI as a horizontal error bar, best agent on top."""
    agents = sorted(scores, key=lambda a: (scores[a].point, a))  # barh draws bottom-up: best ends on top
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 0.55 * len(agents) + 1.4))
        ys = np.arange(len(agents))
        for y, agent in zip(ys, agents, strict=True):
            iv = scores[agent]
            ax.errorbar(
                iv.point, y, xerr=_error_bars([iv]), fmt="o", color=colours[agent],
                ecolor=colours[agent], elinewidth=3, capsize=5, markersize=7,
            )  # fmt: skip
        ax.set_yticks(ys, agents)
        ax.set_ylim(-0.6, len(agents) - 0.4)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("IQM of evaluation return (per episode)")
        ax.set_title(f"{env_id}: IQM return, {confidence:.0%} bootstrap CI")
        return _png(fig)


AGGREGATE_TITLES = {"median": "Median", "iqm": "IQM", "mean": "Mean", "optimality_gap": "Optimality gap"}


def aggregates_figure(
    aggregates: Mapping[str, Mapping[str, Interval]], colours: Mapping[str, str], confidence: float
) -> bytes:
    """rliable-style interval plot: one panel per aggregate, one shaded bar per agent spanning its CI."""
    agents = sorted(aggregates, key=lambda a: (aggregates[a]["iqm"].point, a))
    metrics = list(AGGREGATE_TITLES)
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            1, len(metrics), figsize=(3.0 * len(metrics), 0.5 * len(agents) + 1.6), sharey=True
        )
        for ax, metric in zip(axes, metrics, strict=True):
            for y, agent in enumerate(agents):
                iv = aggregates[agent][metric]
                colour = colours[agent]
                ax.barh(y, iv.high - iv.low, left=iv.low, height=0.6, color=colour, alpha=0.75)
                ax.vlines(iv.point, y - 0.3, y + 0.3, color="black", linewidth=1.5)
            ax.set_title(AGGREGATE_TITLES[metric])
            ax.grid(axis="y", visible=False)
            ax.set_yticks(range(len(agents)), agents)
            ax.set_ylim(-0.6, len(agents) - 0.4)
        fig.supxlabel("Normalised score (random = 0, reference = 1)", fontsize=10)
        fig.suptitle(
            f"Aggregate metrics across envs with {confidence:.0%} stratified bootstrap CIs "
            "(optimality gap: lower is better)",
            fontsize=11,
            fontweight="bold",
        )
        fig.tight_layout()
        return _png(fig)


def improvement_figure(
    pairs: Sequence[tuple[str, str, Interval]], colours: Mapping[str, str], confidence: float
) -> bytes:
    """Probability that the first agent of each pair beats the second, with CI bars; 0.5 marks a tie."""
    labels = [f"P({a} > {b})" for a, b, _ in pairs]
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 0.5 * len(pairs) + 1.4))
        for y, (a, _b, iv) in enumerate(pairs):
            ax.barh(y, iv.high - iv.low, left=iv.low, height=0.55, color=colours[a], alpha=0.75)
            ax.vlines(iv.point, y - 0.28, y + 0.28, color="black", linewidth=1.5)
            ax.plot(iv.point, y, "o", color=colours[a], markeredgecolor="black", markersize=6)
        ax.axvline(0.5, color="#555555", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(pairs)), labels)
        ax.set_ylim(-0.6, len(pairs) - 0.4)
        ax.set_xlim(-0.02, 1.02)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel("Probability of improvement")
        ax.set_title(f"Probability of improvement, {confidence:.0%} stratified bootstrap CI")
        return _png(fig)


def learning_curves_figure(
    env_id: str,
    curves: Mapping[str, Curve],
    colours: Mapping[str, str],
    confidence: float,
    baselines: Mapping[str, float] | None = None,
) -> bytes:
    """Mean evaluation return vs env steps per agent, with a bootstrap CI band across runs (seeds).

    `baselines` (agents that do not learn, e.g. random) are drawn as dashed horizontal lines at their
    score, so a curve can be read against them.
    """
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7.0, 4.0))
        for agent in sorted(baselines or {}):
            assert baselines is not None
            ax.axhline(baselines[agent], color=colours[agent], linestyle="--", linewidth=1.5, label=f"{agent} (baseline)")
        for agent in sorted(curves):
            curve = curves[agent]
            colour = colours[agent]
            runs = "run" if curve.num_runs == 1 else "runs"
            ax.plot(curve.steps, curve.mean, color=colour, linewidth=2, label=f"{agent} ({curve.num_runs} {runs})")
            if curve.num_runs > 1:
                ax.fill_between(curve.steps, curve.low, curve.high, color=colour, alpha=0.2, linewidth=0)
        ax.set_xlabel("env steps")
        ax.set_ylabel("evaluation return (mean per episode)")
        ax.set_title(f"{env_id}: learning curves, mean over runs with {confidence:.0%} bootstrap CI")
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
        ax.legend(loc="best")
        return _png(fig)
