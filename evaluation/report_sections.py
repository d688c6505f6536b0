"""The report's sections around the scores: the protocol, learning curves, videos, failed and unevaluated
runs, tuning studies, and the raw episodes behind it all (episodes.csv)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.agents.logger import read_metrics
from rlsuite.evaluation import plots, stats
from rlsuite.evaluation.harness import TEST_SEEDS, VALIDATION_SEEDS, median_episode
from rlsuite.evaluation.plots import Curve
from rlsuite.evaluation.records import RunRecord
from rlsuite.evaluation.report_document import (
    Block,
    Bullets,
    Code,
    Figure,
    Gallery,
    Heading,
    Para,
    Strong,
    Table,
    Text,
    Video,
    anchor,
    format_number,
    slug,
    text,
)
from rlsuite.evaluation.report_selection import UNFINISHED, Selection, seed_range
from rlsuite.evaluation.store import ResultsStore
from rlsuite.evaluation.video import read_sidecar

EVAL_RETURN_KEY = "eval/mean_return"
"""The metric (agents' flat namespace) that learning curves plot."""

CURVE_POINTS = 200
"""Most points on a learning curve's common step grid; keeps the bootstrap band cheap for long runs."""


def _counted(counter: Counter[str], unit: str = "evaluation") -> str:
    """`a (3 evaluations), b (1 evaluation)`, or `a (all 4 evaluations)` when there is one value."""
    def many(n: int) -> str:
        return f"{n} {unit}" if n == 1 else f"{n} {unit}s"

    if len(counter) == 1:
        (key, n), = counter.items()
        return f"{key} ({'the only ' + unit if n == 1 else 'all ' + many(n)})"
    return ", ".join(f"{key} ({many(n)})" for key, n in sorted(counter.items()))


def _resolve(path_text: str, db_path: Path) -> Path | None:
    """An existing file or folder named in the database: absolute, or relative to the working dir or the db."""
    path = Path(path_text)
    candidates = [path] if path.is_absolute() else [path, db_path.parent / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return None


_PROTOCOL_TITLES = {
    "checkpoint_selection": "How the evaluated checkpoint was chosen",
    "epsilon": "Epsilon-greedy evaluation (Atari protocol, Mnih et al. 2015: a uniformly random action with "
               "this probability at every step, so a policy that never presses FIRE cannot stall a game)",
}
"""Readable titles of the protocol fields that evaluate.py records."""


def protocol_section(
    sel: Selection, reps: int, seed: int, confidence: float
) -> list[Block]:
    runs = sel.all_runs()
    evals = [run.evaluation for run in runs]
    seed_sets = Counter(seed_range(ev.seeds) for ev in evals)
    episodes = Counter(str(len(run.episodes)) for run in runs)
    modes = Counter("deterministic, greedy" if ev.deterministic else "stochastic, sampled" for ev in evals)
    checkpoints = Counter(ev.checkpoint for ev in evals)
    settings: dict[str, Counter[str]] = {}
    for ev in evals:
        for key, value in ev.protocol.items():
            settings.setdefault(key, Counter())[json.dumps(value, sort_keys=True, default=str)] += 1
    items: list[Text] = [
        text(Strong("Test seeds: "), _counted(seed_sets) + "; one episode per seed"),
        text(
            Strong("Validation seeds: "),
            f"training-time evaluation (learning curves, the choice of the best checkpoint) runs on seeds "
            f"{VALIDATION_SEEDS.start:,}\u2013{VALIDATION_SEEDS.stop - 1:,}, disjoint from the test seeds "
            f"({TEST_SEEDS.start:,}\u2013{TEST_SEEDS.stop - 1:,}) every score here is measured on, so a "
            "checkpoint is never measured on the episodes it was selected on.",
        ),
        text(Strong("Episodes per evaluation: "), _counted(episodes)),
        text(Strong("Actions: "), _counted(modes)),
        text(Strong("Checkpoints evaluated: "), _counted(checkpoints)),
    ]
    unrecorded = sum(1 for ev in evals if "checkpoint_selection" not in ev.protocol)
    if unrecorded:
        settings.setdefault("checkpoint_selection", Counter())["not recorded (older evaluation)"] += unrecorded
    for key in sorted(settings, key=lambda k: (k not in _PROTOCOL_TITLES, k)):
        counted = _counted(Counter({json.loads(v) if v.startswith('"') else v: n
                                    for v, n in settings[key].items()}))
        items.append(text(Strong(f"{_PROTOCOL_TITLES.get(key, key)}: "), counted))
    items += [
        text(
            Strong("Bootstrap: "),
            f"{reps} resamples, {confidence:.0%} percentile intervals, seed {seed}; stratified: runs are "
            "resampled within each env.",
        ),
        text(
            Strong("Scores: "),
            "a row is one configuration (agent + resolved settings + evaluation protocol), named by its label or "
            "by the settings that differ from the agent's preset; its runs are its training seeds, and a run's "
            "score is the mean return of its latest evaluation (evaluating the same configuration and seed again "
            "replaces the older result). A baseline is one run evaluated over many episodes.",
        ),
    ]
    blocks: list[Block] = [Heading(2, "Protocol", "protocol"), Bullets(tuple(items))]

    records = [run.record for run in runs if run.record is not None]
    versions: dict[str, Counter[str]] = {}
    for record in records:
        for package, version in record.versions.items():
            versions.setdefault(package, Counter())[str(version)] += 1
    commits = Counter(record.git_commit or "unknown" for record in records if record.status != "baseline")
    blocks.append(Heading(3, "Software of the runs", "software"))
    if versions:
        rows = tuple(
            (text(package), text(_counted(versions[package], "run") if len(versions[package]) > 1
                                   else next(iter(versions[package]))))
            for package in sorted(versions)
        )  # fmt: skip
        blocks.append(Table(("Package", "Version"), rows))
    else:
        blocks.append(Para(text("The run records hold no package versions."), note=True))
    if commits:
        blocks.append(Para(text(Strong("Git commit of the trained runs: "), _counted(commits, "run"))))
    return blocks


def _eval_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, values) of eval/mean_return, sorted by step with one value per step (the last logged)."""
    metrics = read_metrics(run_dir)
    if EVAL_RETURN_KEY not in metrics:
        return None
    steps, values = metrics[EVAL_RETURN_KEY]
    last = dict(zip(steps.tolist(), values.tolist(), strict=True))  # a resumed run may log a step twice
    keys = sorted(last)
    return np.array(keys, dtype=np.float64), np.array([last[k] for k in keys], dtype=np.float64)


def mean_curve(
    curves: Sequence[tuple[np.ndarray, np.ndarray]], reps: int, confidence: float, seed: int
) -> Curve | None:
    """Mean of runs' curves on the steps all of them cover, with a percentile bootstrap band over runs.

    Runs evaluate at slightly different steps, so each is linearly interpolated onto a common grid
    (the union of their steps within the shared range, at most CURVE_POINTS points). None when the runs
    share no step range.
    """
    lo = max(float(s[0]) for s, _ in curves)
    hi = min(float(s[-1]) for s, _ in curves)
    if lo > hi:
        return None
    grid = np.unique(np.concatenate([s[(s >= lo) & (s <= hi)] for s, _ in curves]))  # (G,)
    if grid.size > CURVE_POINTS:
        grid = np.linspace(lo, hi, CURVE_POINTS)
    ys = np.stack([np.interp(grid, s, v) for s, v in curves])  # (N, G)
    mean = ys.mean(axis=0)  # (G,)
    n = len(curves)
    if n == 1:
        return Curve(grid, mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=reps) / n  # (R, N): resampled-run counts / N
    boot = weights @ ys  # (R, G): the mean curve of each bootstrap resample of runs
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [tail, 100.0 - tail], axis=0)  # (G,) each
    return Curve(grid, mean, low, high, n)


def curves_section(
    sel: Selection, db_path: Path, colours: Mapping[str, str], reps: int, seed: int, confidence: float
) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Learning curves", "learning-curves"),
        Para(
            text(
                f"{EVAL_RETURN_KEY} logged during training (periodic evaluation on the validation seeds) against "
                "env steps: the mean "
                f"over runs (seeds) with a {confidence:.0%} bootstrap band over runs. Runs are interpolated "
                "onto the steps they all cover."
            )
        ),
    ]
    for env_id in sorted(set(sel.env_ids.values())):  # training curves belong to env ids, not to variants
        curves: dict[str, Curve] = {}
        notes: list[str] = []
        variants = [label for label in sel.envs if sel.env_ids[label] == env_id]
        for agent in sel.agents:
            trained = list({run.evaluation.run_id: run for label in variants for run in sel.runs(label, agent)
                            if run.record is not None and run.record.run_dir}.values())
            raw = []
            for run in trained:
                assert run.record is not None and run.record.run_dir is not None
                folder = _resolve(run.record.run_dir, db_path)
                curve = None if folder is None else _eval_curve(folder)
                if folder is None:
                    notes.append(f"{run.record.run_id}: run folder {run.record.run_dir} is missing; skipped.")
                elif curve is None:
                    notes.append(f"{run.record.run_id}: no {EVAL_RETURN_KEY} in {folder}/metrics.csv; skipped.")
                else:
                    raw.append(curve)
            if raw:
                combined = mean_curve(raw, reps, confidence, seed)
                if combined is None:
                    notes.append(f"{agent}: its runs share no range of env steps; no curve drawn.")
                else:
                    curves[agent] = combined
        blocks.append(Heading(3, env_id, f"curves-{anchor(env_id)}"))
        if curves:
            baselines = {  # agents without curves (baselines) appear as flat lines at their score
                agent: float(np.mean([run.score for run in sel.runs(env_id, agent)]))
                for agent in sel.agents
                if agent not in curves and sel.runs(env_id, agent)
                and all(run.record is None or not run.record.run_dir for run in sel.runs(env_id, agent))
            }
            blocks.append(
                Figure(
                    f"figures/curves_{slug(env_id)}.png",
                    plots.learning_curves_figure(env_id, curves, colours, confidence, baselines),
                    f"Learning curves on {env_id}",
                )
            )
        else:
            blocks.append(Para(text("No learning curves: no trained run with a metrics.csv."), note=True))
        blocks += [Para(text(note), note=True) for note in notes]
    return blocks


def _video_for(
    env_id: str, agent: str, sel: Selection, db_path: Path, videos: dict[str, Path]
) -> Video:
    """The video of the median-score run that has one; registers the file to copy in `videos`."""
    title = f"{agent} on {env_id}"
    with_video = [run for run in sel.runs(env_id, agent) if run.evaluation.video_path]
    if not with_video:
        return Video(
            None,
            title,
            text(
                "No video recorded. Record one with ",
                Code(f"rlsuite evaluate ... --video-dir DIR --db {db_path.name}"),
                ".",
            ),
        )
    ranked = sorted(with_video, key=lambda run: (run.score, run.evaluation.run_id))
    run = ranked[(len(ranked) - 1) // 2]
    assert run.evaluation.video_path is not None
    source = _resolve(run.evaluation.video_path, db_path)
    if source is None or not source.is_file():
        return Video(None, title, text(f"The recorded video {run.evaluation.video_path} is missing."))
    file = f"videos/{slug(agent)}__{slug(env_id)}{source.suffix.lower() or '.mp4'}"
    videos[file] = source
    shown = read_sidecar(source)  # a video `rlsuite record` attached says which episodes it shows
    if shown is not None:
        episodes = "; ".join(f"seed {ep.get('seed')}, return {format_number(float(ep.get('return', math.nan)))}, "
                             f"{ep.get('length')} steps" for ep in shown["episodes"])
        return Video(file, title, text(f"Run {run.evaluation.run_id}, checkpoint {run.evaluation.checkpoint}, "
                                         f"recorded with rlsuite record: {episodes}."))
    episode = median_episode(run.episodes)
    return Video(
        file,
        title,
        text(
            f"Run {run.evaluation.run_id}, checkpoint {run.evaluation.checkpoint}: the median-return episode "
            f"(episode {episode.index}, seed {episode.seed}, return {format_number(episode.episode_return)}, "
            f"{episode.length} steps)."
        ),
    )


def videos_section(sel: Selection, db_path: Path, videos: dict[str, Path]) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Videos", "videos"),
        Para(
            text(
                "One episode per agent and env: the median-return episode of the evaluation (of the run with "
                "the median score when several runs have videos), so it shows typical behaviour, not the best."
            )
        ),
    ]
    for env_id in sel.envs:
        blocks.append(Heading(3, env_id, f"videos-{anchor(env_id)}"))
        blocks.append(
            Gallery(
                tuple(
                    _video_for(env_id, agent, sel, db_path, videos)
                    for agent in sel.agents
                    if sel.runs(env_id, agent)
                )
            )
        )
    return blocks


def failures_section(sel: Selection) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Failed, interrupted and unevaluated runs", "failed-runs")]
    if not sel.other_runs:
        blocks.append(Para(text("None: every run in the selection finished and was evaluated.")))
        return blocks
    blocks.append(
        Para(
            text(
                "Runs that failed or were interrupted, and runs with no evaluation, so that none is dropped "
                "silently. Each can be reproduced with its command."
            )
        )
    )
    evaluated = {(run.evaluation.run_id, run.evaluation.env_id) for run in sel.all_runs()}

    def status(r: RunRecord) -> str:
        if r.status == "crashed":
            resume = f"; resume: rlsuite train --resume {r.run_dir}" if r.run_dir else ""
            seen = ", its checkpoint at that time is evaluated above" if (r.run_id, r.env_id) in evaluated else ""
            return f"crashed (its process died before it finished{seen}{resume})"
        if (r.run_id, r.env_id) in evaluated:
            return f"{r.status} (its last checkpoint is evaluated above)"
        return r.status if r.status in UNFINISHED else f"{r.status}, not evaluated"

    rows = tuple(
        (
            text(r.run_id),
            text(r.agent),
            text(r.env_id),
            text("\u2014" if r.seed is None else str(r.seed)),
            text(status(r)),
            text(r.error or "\u2014"),
            text(Code(r.command)) if r.command else text("\u2014 (no command recorded)"),
        )
        for r in sel.other_runs
    )
    header = ("Run", "Agent", "Env", "Seed", "Status", "Error", "Command")
    blocks.append(Table(header, rows, wrap=frozenset({5, 6})))
    return blocks


# ----------------------------------------------------------------------------------------------------
# Tuning studies.


def tuning_section(store: ResultsStore, env_ids: set[str]) -> list[Block]:
    """Every configuration that `rlsuite tune` studies on the report's envs tried, with its runs' scores.

    Search-stage runs are scored on validation seeds only, so they are listed here and never enter the
    comparison tables; confirm-stage runs were also evaluated on test seeds and appear above as their own
    rows, under the label shown here."""
    runs = {r.run_id: r for r in store.runs()}
    links = [t for t in store.tune_runs() if t.run_id in runs and runs[t.run_id].env_id in env_ids]
    if not links:
        return []
    wanted = {t.run_id for t in links}
    means: dict[tuple[str, str], float] = {}  # (run id, split) -> mean return of its newest evaluation
    for ev in store.evaluations():
        if ev.run_id in wanted and ev.eval_id is not None:
            split = "validation" if ev.protocol.get("split") == "validation" else "test"
            means[(ev.run_id, split)] = float(np.mean([e.episode_return for e in store.episodes(ev.eval_id)]))
    blocks: list[Block] = [
        Heading(2, "Tuning studies", "tuning"),
        Para(
            text(
                "Configurations that ",
                Code("rlsuite tune"),
                " tried on these envs. Search-stage runs are scored on validation seeds, which chose the "
                "settings, so they stay out of the tables above; confirm-stage reruns on fresh training seeds are "
                "the rows named in the last column. Scores: IQM over the runs of each one's mean return.",
            )
        ),
    ]

    def score(run_ids: list[str], split: str) -> str:
        values = [means[(r, split)] for r in run_ids if (r, split) in means]
        return format_number(stats.iqm(values)) if values else "\u2014"

    for study in sorted({t.study for t in links}):
        groups: dict[tuple[bool, int, str, str], list[str]] = {}  # search first, by trial number
        params: dict[tuple[bool, int, str, str], dict[str, Any]] = {}
        for t in links:
            if t.study == study:
                key = (t.stage != "search", t.trial if t.trial is not None else 1 << 30, t.candidate, t.stage)
                groups.setdefault(key, []).append(t.run_id)
                params[key] = t.params
        rows = []
        for key, ids in sorted(groups.items()):
            _, _, candidate, stage = key
            confirmed = stage == "confirm"
            rows.append((
                text(stage),
                text(candidate),
                text(", ".join(str(runs[r].seed) for r in sorted(ids, key=lambda r: runs[r].seed or 0))),
                text(score(ids, "validation")),
                text(score(ids, "test") if confirmed else "\u2014"),
                text(", ".join(f"{k}={v}" for k, v in sorted(params[key].items())) or "(preset)"),
                text((runs[ids[0]].label if confirmed else None) or "\u2014"),
            ))
        agent_env = {(runs[t.run_id].agent, runs[t.run_id].env_id) for t in links if t.study == study}
        blocks.append(Heading(3, f"Study {study}", anchor(f"tuning-{study}")))
        blocks.append(Para(text(f"{'; '.join(f'{a} on {e}' for a, e in sorted(agent_env))}.")))
        header = ("Stage", "Configuration", "Training seeds", "Validation IQM", "Test IQM", "Settings searched", "Row")
        blocks.append(Table(header, tuple(rows), numeric=frozenset({3, 4}), wrap=frozenset({5})))
    return blocks


# ----------------------------------------------------------------------------------------------------
# Raw episodes.

EPISODE_COLUMNS = (
    "agent", "env_id", "env_kwargs", "run_id", "eval_id", "checkpoint", "checkpoint_step", "deterministic",
    "episode", "seed", "return", "length",
)  # fmt: skip


def episodes_csv(sel: Selection) -> str:
    """Every episode behind the report, one row each, env metrics as extra columns (empty when absent)."""
    runs = sel.all_runs()
    metric_names = sorted({name for run in runs for ep in run.episodes for name in ep.metrics})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*EPISODE_COLUMNS, *metric_names])
    for run in runs:
        ev = run.evaluation
        for ep in run.episodes:
            writer.writerow(
                [
                    ev.agent, ev.env_id, json.dumps(ev.protocol.get("env_kwargs") or {}, sort_keys=True),
                    ev.run_id, ev.eval_id, ev.checkpoint,
                    "" if ev.checkpoint_step is None else ev.checkpoint_step, int(ev.deterministic),
                    ep.index, ep.seed, repr(float(ep.episode_return)), ep.length,
                    *(repr(float(ep.metrics[m])) if m in ep.metrics else "" for m in metric_names),
                ]
            )  # fmt: skip
    return buf.getvalue()
