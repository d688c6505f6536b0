"""The tuning report: what a study tried, what mattered, and whether its winner holds up on fresh seeds.

`rlsuite tune` writes the study's record as plain data (tune.json: trials, their rungs and scores,
parameter importances, the Pareto front, the confirm-stage scores per seed and env) and this module
renders it, so the report needs neither Optuna nor the study's storage. Sections:

- optimisation history: every trial's validation score (pruned ones at their last rung), best so far;
- parameter importances (PED-ANOVA, Optuna's default evaluator, on the completed trials);
- the Pareto front, for multi-objective studies;
- the confirm table: each confirmed configuration's tuning score next to its IQM on fresh training seeds,
  on the validation seeds (which picks the winner) and on the test seeds (which reports it), with 95%
  stratified-bootstrap intervals, beside the preset and the untuned defaults;
- the commands that reproduce the study and the winner.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.envs.factory import reference_score
from rlsuite.evaluation.stats import iqm, normalize, stratified_bootstrap_ci

__all__ = ["confirm_interval", "write_tune_report"]

CONFIDENCE = 0.95


def confirm_interval(scores: Sequence[Sequence[float]], envs: Sequence[str], seed: int = 0) -> tuple[float, float, float]:
    """(IQM, low, high) over a (seeds, envs) matrix of mean returns; normalised by each env's reference
    scores when there are several envs (raw returns for one)."""
    x = np.asarray(scores, dtype=float)  # (seeds, envs)
    if len(envs) > 1:
        columns = []
        for j, env in enumerate(envs):
            ref = reference_score(env)
            if ref is None:
                raise ValueError(f"no reference score for {env}: cannot normalise a multi-env confirm table")
            columns.append(normalize(x[:, j], ref.random, ref.reference))
        x = np.stack(columns, axis=1)
    return stratified_bootstrap_ci(x, iqm, confidence=CONFIDENCE, seed=seed)


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.2f}" if abs(x) >= 10 else f"{x:.{digits}f}"


def _values(values: Sequence[float] | None) -> str:
    return " / ".join(_fmt(v) for v in values) if values else "-"


def _settings_text(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in settings.items()) or "(preset)"


def _history_figure(data: Mapping[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = data["trials"]
    maximise = data["objectives"][0]["direction"] == "maximize"
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    best, best_x, best_y = None, [], []
    plotted = False
    for t in trials:
        if t["state"] == "COMPLETE" and t["values"]:
            y = t["values"][0]
            ax.scatter(t["number"], y, color="tab:blue", s=18, zorder=3)
            plotted = True
            best = y if best is None or (y > best if maximise else y < best) else best
        elif t["state"] == "PRUNED" and t["intermediate"]:
            last = list(t["intermediate"].values())[-1]
            ax.scatter(t["number"], last, color="tab:gray", marker="x", s=18, zorder=3)
            plotted = True
        if best is not None:
            best_x.append(t["number"])
            best_y.append(best)
    if not plotted:
        plt.close(fig)
        return False
    ax.step(best_x, best_y, where="post", color="tab:orange", label="best so far")
    ax.scatter([], [], color="tab:blue", s=18, label="completed (all seeds)")
    ax.scatter([], [], color="tab:gray", marker="x", s=18, label="pruned (at its last rung)")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {data['objectives'][0]['name']} (IQM over seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _importance_figure(importances: Mapping[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.35 * len(names) + 1.0))
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (PED-ANOVA)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pareto_figure(data: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objectives = data["objectives"]
    front = set(data["pareto"])
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for t in data["trials"]:
        if t["state"] != "COMPLETE":
            continue
        on = t["number"] in front
        ax.scatter(t["values"][0], t["values"][1], color="tab:red" if on else "tab:gray", s=24 if on else 14)
        if on:
            ax.annotate(str(t["number"]), (t["values"][0], t["values"][1]), fontsize=7)
    ax.set_xlabel(f"{objectives[0]['name']} ({objectives[0]['direction']})")
    ax.set_ylabel(f"{objectives[1]['name']} ({objectives[1]['direction']})")
    ax.set_title("Pareto front (red)", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _confirm_rows(data: Mapping[str, Any]) -> list[list[str]]:
    envs = data["envs"]
    rows = []
    for row in data["confirm"]:
        v_point, v_low, v_high = confirm_interval(row["validation"], envs)
        t_point, t_low, t_high = confirm_interval(row["test"], envs)
        star = " \u2605" if row["label"] == data.get("winner") else ""
        rows.append([row["label"] + star, _values(row["tuning_values"]),
                     f"{_fmt(v_point)} [{_fmt(v_low)}, {_fmt(v_high)}]",
                     f"{_fmt(t_point)} [{_fmt(t_low)}, {_fmt(t_high)}]", _fmt(row["cpu_seconds"], 1),
                     _settings_text(row["params"])])
    return rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_tune_report(data: Mapping[str, Any], out: Path) -> Path:
    """Write out/report.md, out/report.html and their figures from a study's record; returns the HTML path."""
    out.mkdir(parents=True, exist_ok=True)
    unit = "normalised score" if data["normalised"] else "return"
    budget = (f"{len(data['trials'])} trials (of {data['trials_asked']} asked) x {data['seeds']} seeds x "
              f"{data['steps'] or 'preset'} steps on {', '.join(data['envs'])}")
    objectives = ", ".join(f"{o['name']} ({o['direction']})" for o in data["objectives"])
    intro = [f"Study `{data['study']}`: {data['agent']}, {budget}.",
             f"Objectives: {objectives}; pruner: {data['pruner']} (one rung per training seed). A trial's score is "
             f"the IQM of its runs' mean {unit}s on validation seeds {data['validation_seeds'][0]}-"
             f"{data['validation_seeds'][1]}; the confirm stage reports test seeds {data['test_seeds'][0]}-"
             f"{data['test_seeds'][1]}."]
    md: list[str] = [f"# Tuning report: {data['agent']} on {', '.join(data['envs'])}", "", *intro, ""]
    parts: list[str] = [f"<h1>Tuning report: {html.escape(data['agent'])} on {html.escape(', '.join(data['envs']))}</h1>",
                        *(f"<p>{html.escape(p)}</p>" for p in intro)]

    md += ["## Optimisation history", ""]
    parts.append("<h2>Optimisation history</h2>")
    if _history_figure(data, out / "history.png"):
        md += ["![optimisation history](history.png)", ""]
        parts.append('<img src="history.png" alt="optimisation history">')
    header = ["trial", "state", "values", "IQM after each seed", "settings"]
    rows = [[str(t["number"]), t["state"] + (f" ({t['error']})" if t.get("error") else ""), _values(t["values"]),
             " -> ".join(_fmt(v) for v in t["intermediate"].values()) or "-", _settings_text(t["settings"])]
            for t in data["trials"]]
    md += [*_md_table(header, rows), ""]
    parts.append(_html_table(header, rows))

    md += ["## Parameter importances", ""]
    parts.append("<h2>Parameter importances</h2>")
    for objective, importances in data["importances"].items():
        slug = objective.replace(":", "_")
        _importance_figure(importances, out / f"importance_{slug}.png")
        md += [f"{objective}:", "", f"![importances {objective}](importance_{slug}.png)", ""]
        parts.append(f'<p>{html.escape(objective)}:</p><img src="importance_{html.escape(slug)}.png" alt="importances">')
    for note in data.get("notes", []):
        md += [f"_{note}_", ""]
        parts.append(f"<p><em>{html.escape(note)}</em></p>")

    if data["pareto"]:
        _pareto_figure(data, out / "pareto.png")
        front = [t for t in data["trials"] if t["number"] in set(data["pareto"])]
        rows = [[str(t["number"]), _values(t["values"]), _settings_text(t["settings"])] for t in front]
        md += ["## Pareto front", "", "![Pareto front](pareto.png)", "", *_md_table(["trial", "values", "settings"], rows), ""]
        parts += ["<h2>Pareto front</h2>", '<img src="pareto.png" alt="Pareto front">',
                  _html_table(["trial", "values", "settings"], rows)]

    md += ["## Confirm stage", ""]
    parts.append("<h2>Confirm stage</h2>")
    if data["confirm"]:
        seeds = data["confirm"][0]["seeds"]
        text = (f"Each configuration retrained on fresh seeds {seeds[0]}-{seeds[-1]}; IQM of the runs' mean {unit}s "
                f"with {int(CONFIDENCE * 100)}% stratified-bootstrap intervals. The winner (\u2605) has the best "
                "validation IQM here; its test IQM is the number to quote.")
        header = ["configuration", "tuning score", "confirm: validation IQM [CI]", "confirm: test IQM [CI]",
                  "CPU s / run", "settings"]
        rows = _confirm_rows(data)
        md += [text, "", *_md_table(header, rows), ""]
        parts += [f"<p>{html.escape(text)}</p>", _html_table(header, rows)]
    else:
        md += ["No confirm stage (--confirm-top 0, or no trial completed).", ""]
        parts.append("<p>No confirm stage (--confirm-top 0, or no trial completed).</p>")

    md += ["## Reproduce", ""]
    parts.append("<h2>Reproduce</h2>")
    lines = [("the study (rerunning it resumes)", data.get("command")), ("the winner", data.get("reproduce"))]
    for what, cmd in lines:
        if cmd:
            md += [f"{what}:", "", "```", cmd, "```", ""]
            parts.append(f"<p>{html.escape(what)}:</p><pre>{html.escape(cmd)}</pre>")
    if data.get("best_file") and Path(data["best_file"]).is_file():
        block = Path(data["best_file"]).read_text(encoding="utf-8")
        md += ["best.yaml:", "", "```yaml", block.rstrip(), "```", ""]
        parts.append(f"<p>best.yaml:</p><pre>{html.escape(block)}</pre>")

    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;}table{border-collapse:collapse;font-size:"
             "13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}img{max-width:100%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Tuning report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
