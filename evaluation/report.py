"""Comparison reports: one self-contained HTML page and the same content in Markdown, from the database.

A report answers "which agent is better, by how much, and how sure are we?" for whatever the results
database holds. It reads only the store (and, for learning curves, the run folders it names), so it can
be rebuilt at any time; the same database and seed give a byte-identical `report.md`.

How scores are defined (one definition everywhere):
- A row is a configuration: agent + resolved settings + evaluation protocol (evaluation/identity.py),
  never the agent name alone. Its runs are its training seeds; a run's score on an env is the mean
  return of its latest evaluation; a baseline (random, heuristic) is one run over many episodes.
- An "env" is an env id plus the env kwargs it was evaluated with (`--env-kwarg`): the same run on a
  held-out profile is a separate result, titled e.g. `rlsuite/TrafficGrid-v0 (profile=held_out)`.
- Per env, mean / median / IQM go across runs with stratified-bootstrap CIs (Agarwal et al. 2021). An
  agent with a single run has nothing to resample across, so its CIs bootstrap over its episodes.
- Each env compares every row with the leader (highest IQM): the IQM difference with its stratified-
  bootstrap CI and the probability of improvement. A star marks a winner only when every such CI
  excludes 0; otherwise the leaders are shown tied.
- Across envs, scores are normalised (random = 0, reference = 1) so envs with different return scales
  can be aggregated; an env without a reference score is left out of the aggregate with a note, never
  mixed in as a raw score and never a reason not to write the report.

The page is built once as a list of blocks (`_Heading`, `_Table`, `_Figure`, ...) and rendered twice,
to HTML and to Markdown, so the two never disagree. The HTML works offline from disk: CSS inline,
figures as base64 data URIs, videos as relative `videos/*.mp4` files next to it.
"""

from __future__ import annotations

import base64
import csv
import functools
import html
import io
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite import __version__ as rlsuite_version
from rlsuite.agents.fileio import atomic_write_bytes
from rlsuite.agents.logger import read_metrics
from rlsuite.agents.run import RunError, RunFolder
from rlsuite.envs import reference_score
from rlsuite.evaluation import plots, stats
from rlsuite.evaluation.harness import TEST_SEEDS, VALIDATION_SEEDS, median_episode
from rlsuite.evaluation.identity import configuration_key, configuration_name, protocol_key
from rlsuite.evaluation.plots import Curve, Interval
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.store import ResultsStore
from rlsuite.evaluation.video import read_sidecar

__all__ = ["ReportError", "format_interval", "format_number", "mean_curve", "write_report"]

CONFIDENCE = 0.95
"""Confidence level of every interval in a report."""

EVAL_RETURN_KEY = "eval/mean_return"
"""The metric (agents' flat namespace) that learning curves plot."""

CURVE_POINTS = 200
"""Most points on a learning curve's common step grid; keeps the bootstrap band cheap for long runs."""

TABLE_STATS = ("mean", "median", "iqm")
AGGREGATE_ORDER = ("median", "iqm", "mean", "optimality_gap")
STAT_TITLES = {"mean": "Mean", "median": "Median", "iqm": "IQM", "optimality_gap": "Optimality gap"}
BEST = "\u2605"  # the star beside the best agent

MIN_RUNS = 3
"""Runs (training seeds) per configuration below which a report says its intervals cannot speak for
training variance."""


class ReportError(ValueError):
    """A report cannot be written from this database and selection; the message says what to do."""


# ----------------------------------------------------------------------------------------------------
# Number formatting (public so tests and other tools print numbers exactly as reports do).


def _decimals(magnitude: float) -> int:
    """Decimals that suit a magnitude: 3 below 1, 2 below 100, 1 below 10,000, then 0."""
    return 3 if magnitude < 1 else 2 if magnitude < 100 else 1 if magnitude < 10_000 else 0


def format_number(x: float, decimals: int | None = None) -> str:
    """A score with `decimals` places, by default as many as its magnitude warrants (see `_decimals`)."""
    if not math.isfinite(x):
        return str(x)
    d = _decimals(abs(x)) if decimals is None else decimals
    text = f"{x:,.0f}" if d == 0 else f"{x:.{d}f}"
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text  # no "-0.00"


def format_interval(point: float, low: float, high: float, decimals: int | None = None) -> str:
    """`point [low, high]` with one number of decimals for all three (by default from the largest)."""
    d = _decimals(max(abs(point), abs(low), abs(high))) if decimals is None else decimals
    return f"{format_number(point, d)} [{format_number(low, d)}, {format_number(high, d)}]"


# ----------------------------------------------------------------------------------------------------
# The document model: inline pieces and blocks, rendered to HTML and Markdown.


@dataclass(frozen=True)
class _Code:
    text: str


@dataclass(frozen=True)
class _Strong:
    text: str


@dataclass(frozen=True)
class _Link:
    text: str
    href: str  # always a relative path inside the report folder


_Inline = str | _Code | _Strong | _Link
_Text = tuple[_Inline, ...]


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class _Para:
    text: _Text
    note: bool = False  # smaller, muted: footnotes and explanations


@dataclass(frozen=True)
class _Bullets:
    items: tuple[_Text, ...]


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[_Text, ...], ...]
    best: frozenset[int] = frozenset()  # row indices to highlight
    numeric: frozenset[int] = frozenset()  # right-aligned number columns
    wrap: frozenset[int] = frozenset()  # columns of long text that may wrap (others stay on one line)


@dataclass(frozen=True)
class _Figure:
    file: str  # relative path, e.g. figures/scores_CartPole-v1.png
    png: bytes
    alt: str


@dataclass(frozen=True)
class _Video:
    file: str | None  # relative path under videos/, None when there is nothing to show
    title: str
    caption: _Text


@dataclass(frozen=True)
class _Gallery:
    videos: tuple[_Video, ...]


_Block = _Heading | _Para | _Bullets | _Table | _Figure | _Gallery


def _text(*parts: _Inline) -> _Text:
    return tuple(parts)


# ----------------------------------------------------------------------------------------------------
# What the report is about: the selected evaluations, grouped per env (variant) and agent.


def _env_kwargs(evaluation: EvaluationRecord) -> dict[str, Any]:
    return dict(evaluation.protocol.get("env_kwargs") or {})


def _kwarg_items(kwargs: Mapping[str, Any]) -> list[str]:
    """`key=value` per env kwarg, sorted: as titles show them and as `--env-kwarg` takes them."""
    return [f"{key}={kwargs[key]}" for key in sorted(kwargs)]


def env_label(evaluation: EvaluationRecord) -> str:
    """The env an evaluation measured: its id, plus its env kwargs when it had any.

    Keeps a run's results on different env kwargs (held-out voices, another demand profile) apart.
    """
    kwargs = _env_kwargs(evaluation)
    return f"{evaluation.env_id} ({', '.join(_kwarg_items(kwargs))})" if kwargs else evaluation.env_id


@dataclass(frozen=True)
class _Run:
    """One run's latest evaluation with its episodes; `score` is the run's score on the env."""

    evaluation: EvaluationRecord
    record: RunRecord | None
    episodes: tuple[EpisodeRecord, ...]

    @property
    def returns(self) -> np.ndarray:
        return np.array([ep.episode_return for ep in self.episodes], dtype=np.float64)  # (episodes,)

    @property
    def score(self) -> float:
        return float(self.returns.mean())

    @property
    def mean_length(self) -> float:
        return float(np.mean([ep.length for ep in self.episodes]))


@dataclass(frozen=True)
class _Selection:
    envs: tuple[str, ...]  # env labels (env_label): an env id, or an id with the env kwargs evaluated on
    agents: tuple[str, ...]
    groups: Mapping[tuple[str, str], tuple[_Run, ...]]  # (env label, agent) -> runs, ordered by (seed, run_id)
    other_runs: tuple[RunRecord, ...]  # failed, interrupted or never-evaluated runs matching the filters
    env_ids: Mapping[str, str]  # env label -> the env id it is a variant of
    env_kwargs: Mapping[str, Mapping[str, Any]]  # env label -> its env kwargs ({} for the env as registered)

    def runs(self, env_id: str, agent: str) -> tuple[_Run, ...]:
        return self.groups.get((env_id, agent), ())

    def all_runs(self) -> list[_Run]:
        return [run for key in sorted(self.groups) for run in self.groups[key]]


@functools.cache
def _preset_settings(agent: str, env_id: str) -> Mapping[str, Any] | None:
    """The agent's resolved preset settings for `env_id` (what a plain `rlsuite train` would use), or None
    for a baseline or when they cannot be resolved (agent removed, preset broken)."""
    try:
        from rlsuite.agents.registry import agent_module
        from rlsuite.agents.settings import resolve_settings, settings_to_dict

        module = agent_module(agent)
        return settings_to_dict(resolve_settings(module.Settings, agent, env_id))
    except Exception:  # a report must still be written: the row is then named by its settings hash
        return None


def _row_names(evaluations: Sequence[EvaluationRecord], records: Mapping[str, RunRecord]) -> dict[int, str]:
    """eval_id -> the name of its row: one row per configuration and protocol (evaluation/identity.py).

    A row is named by its label, else by the agent and the settings that differ from the agent's preset
    for the env (so plain `ppo` on two envs is one row across them). Rows of one env that would share a
    name (same name, another checkpoint, episode count or action mode) get what tells them apart in
    brackets, and a hash of their settings as the last resort."""
    keys: dict[int, tuple[str, str, str]] = {}
    base: dict[tuple[str, str, str], str] = {}
    sample: dict[tuple[str, str, str], EvaluationRecord] = {}
    for ev in evaluations:
        assert ev.eval_id is not None
        run = records.get(ev.run_id)
        key = (env_label(ev), configuration_key(run) if run is not None else ev.run_id, protocol_key(ev))
        keys[ev.eval_id] = key
        base.setdefault(key, configuration_name(run, ev.agent, _preset_settings))
        sample.setdefault(key, ev)
    names: dict[tuple[str, str, str], str] = {}
    for env, name in sorted({(key[0], n) for key, n in base.items()}):
        clash = sorted(key for key, n in base.items() if n == name and key[0] == env)
        if len(clash) == 1:
            names[clash[0]] = name
            continue
        tags = {key: _protocol_tags(sample[key], [sample[k] for k in clash]) for key in clash}
        for key in clash:
            tagged = f"{name} [{tags[key]}]" if tags[key] else name
            if sum(1 for k in clash if tags[k] == tags[key]) > 1:  # same protocol: settings beyond the name
                tagged = f"{tagged} #{key[1][:6]}"
            names[key] = tagged
    return {eval_id: names[key] for eval_id, key in keys.items()}


def _protocol_tags(ev: EvaluationRecord, group: Sequence[EvaluationRecord]) -> str:
    """What sets `ev`'s protocol apart within `group`: checkpoint, action mode, seeds, other fields."""
    tags = []
    if len({e.checkpoint for e in group}) > 1:
        tags.append(f"checkpoint {ev.checkpoint}")
    if len({e.deterministic for e in group}) > 1:
        tags.append("greedy" if ev.deterministic else "stochastic")
    if len({e.seeds for e in group}) > 1:
        tags.append(f"seeds {_seed_range(ev.seeds)}")
    if not tags and len({protocol_key(e) for e in group}) > 1:
        tags.append(f"protocol {protocol_key(ev)[:6]}")
    return ", ".join(tags)


def _pairs_text(evaluations: Sequence[EvaluationRecord]) -> str:
    pairs = sorted({(e.agent, env_label(e)) for e in evaluations})
    return "; ".join(f"{agent} on {env_id}" for agent, env_id in pairs)


def _select(
    store: ResultsStore, db_path: Path, envs: Sequence[str] | None, agents: Sequence[str] | None
) -> _Selection:
    """The newest evaluation of every run (per env variant) matching the filters, or a ReportError naming
    what exists. An `envs` entry selects an env id with all its variants, or one variant by its label."""
    stored = store.latest_evaluations()
    # Validation-seed evaluations (tuning trials) chose settings; a report measures on test seeds only.
    everything = [e for e in stored if e.protocol.get("split") != "validation"]
    if stored and not everything:
        raise ReportError(
            f"{db_path} holds only validation-seed evaluations (tuning trials), which reports leave out: they "
            f"were used to choose settings. Evaluate on the test seeds first, e.g. `rlsuite evaluate RUN_DIR "
            f"--db {db_path}`, or read the tuning report that `rlsuite tune` wrote."
        )
    if not everything:
        raise ReportError(
            f"{db_path} holds no evaluations yet; record some with `rlsuite evaluate RUN_DIR --db {db_path}` "
            f"or `rlsuite evaluate --agent random --env ENV_ID --db {db_path}`, then write the report."
        )
    records = {r.run_id: _current(r) for r in store.runs()}

    def names_of(e: EvaluationRecord) -> set[str]:  # an agent name, or a configuration's --label
        label = records[e.run_id].label if e.run_id in records else None
        return {e.agent, label} if label else {e.agent}

    have_envs = sorted({e.env_id for e in everything} | {env_label(e) for e in everything})
    have_agents = sorted({name for e in everything for name in names_of(e)})
    listing = f"The database has agents: {', '.join(have_agents)}; envs: {', '.join(have_envs)}."
    for kind, wanted, have in (("env", envs, have_envs), ("agent", agents, have_agents)):
        missing = [name for name in (wanted or ()) if name not in have]
        if missing:
            raise ReportError(
                f"No evaluations of {kind} {', '.join(map(repr, missing))} in {db_path}. {listing} "
                f"Pick from those, or evaluate the missing {kind} first with `rlsuite evaluate`."
            )
    chosen = [
        e
        for e in everything
        if (envs is None or e.env_id in envs or env_label(e) in envs) and (agents is None or names_of(e) & set(agents))
    ]  # an agent name selects all its configurations, a label the configuration it names
    chosen_envs = sorted({env_label(e) for e in chosen})
    chosen_names = set(chosen_envs) | {e.env_id for e in chosen}
    empty_envs = [env_id for env_id in (envs or ()) if env_id not in chosen_names]
    if not chosen or empty_envs:
        which = ", ".join(empty_envs) or ", ".join(envs or have_envs)
        raise ReportError(
            f"No evaluations match the selection (env {which}, agents {', '.join(agents or have_agents)}). "
            f"{listing} Evaluated pairs: {_pairs_text(everything)}."
        )

    names = _row_names(chosen, records)
    groups: dict[tuple[str, str], list[_Run]] = {}
    for ev in chosen:
        assert ev.eval_id is not None  # the store assigns it
        episodes = tuple(store.episodes(ev.eval_id))
        run = _Run(evaluation=ev, record=records.get(ev.run_id), episodes=episodes)
        groups.setdefault((env_label(ev), names[ev.eval_id]), []).append(run)

    def run_order(run: _Run) -> tuple[int, int, str]:
        seed = run.record.seed if run.record is not None else None
        return (seed is None, seed or 0, run.evaluation.run_id)

    evaluated = {(e.run_id, e.env_id) for e in chosen}
    validated = {e.run_id for e in stored if e.protocol.get("split") == "validation"}  # tuning's runs
    other = [
        r
        for r in records.values()
        if (envs is None or r.env_id in envs)
        and (agents is None or r.agent in agents or r.label in agents)
        and ((r.run_id, r.env_id) not in evaluated or r.status in _UNFINISHED)
        and not (r.status == "finished" and r.run_id in validated)
    ]
    return _Selection(
        envs=tuple(chosen_envs),
        agents=tuple(sorted({name for (_, name) in groups})),
        groups={key: tuple(sorted(runs, key=run_order)) for key, runs in groups.items()},
        other_runs=tuple(sorted(other, key=lambda r: (r.env_id, r.agent, r.run_id))),
        env_ids={env_label(e): e.env_id for e in chosen},
        env_kwargs={env_label(e): _env_kwargs(e) for e in chosen},
    )


# ----------------------------------------------------------------------------------------------------
# Small helpers.


def _slug(text: str) -> str:
    """A file-name-safe form of an env id or agent name (rlsuite/Highway-v0 -> rlsuite_Highway-v0)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def _anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _seed_range(seeds: Sequence[int]) -> str:
    """`a–b` for consecutive seeds, else a short list."""
    s = sorted(seeds)
    if not s:
        return "none"
    if s == list(range(s[0], s[0] + len(s))):
        return f"{s[0]}" if len(s) == 1 else f"{s[0]}\u2013{s[-1]}"
    if len(s) <= 6:
        return ", ".join(map(str, s))
    return f"{len(s)} seeds from {s[0]} to {s[-1]}"


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


def _score_matrix(runs: Sequence[_Run]) -> tuple[np.ndarray, bool]:
    """(runs, 1) matrix of run scores; for a single run its episode returns, flagged True."""
    if len(runs) == 1:
        return runs[0].returns[:, None], True  # (episodes, 1)
    return np.array([[run.score] for run in runs]), False  # (runs, 1)


def _metric_means(runs: Sequence[_Run]) -> dict[str, float]:
    """Env metric -> mean over runs of the run's mean over the episodes that report it."""
    names = sorted({name for run in runs for ep in run.episodes for name in ep.metrics})
    means: dict[str, float] = {}
    for name in names:
        per_run = [
            float(np.mean([ep.metrics[name] for ep in run.episodes if name in ep.metrics]))
            for run in runs
            if any(name in ep.metrics for ep in run.episodes)
        ]
        means[name] = float(np.mean(per_run))
    return means


def _agent_cell(agent: str, mark: str | None) -> _Text:
    """The agent's name, with `★ best` for a significant winner or `= tied for best` for tied leaders."""
    if mark == "best":
        return _text(_Strong(agent), f" {BEST} best")
    if mark == "tied":
        return _text(_Strong(agent), " = tied for best")
    return _text(agent)


# ----------------------------------------------------------------------------------------------------
# Sections.


_PROTOCOL_TITLES = {
    "checkpoint_selection": "How the evaluated checkpoint was chosen",
    "epsilon": "Epsilon-greedy evaluation (Atari protocol, Mnih et al. 2015: a uniformly random action with "
               "this probability at every step, so a policy that never presses FIRE cannot stall a game)",
}
"""Readable titles of the protocol fields that evaluate.py records."""


def _protocol_section(
    sel: _Selection, reps: int, seed: int, confidence: float
) -> list[_Block]:
    runs = sel.all_runs()
    evals = [run.evaluation for run in runs]
    seed_sets = Counter(_seed_range(ev.seeds) for ev in evals)
    episodes = Counter(str(len(run.episodes)) for run in runs)
    modes = Counter("deterministic, greedy" if ev.deterministic else "stochastic, sampled" for ev in evals)
    checkpoints = Counter(ev.checkpoint for ev in evals)
    settings: dict[str, Counter[str]] = {}
    for ev in evals:
        for key, value in ev.protocol.items():
            settings.setdefault(key, Counter())[json.dumps(value, sort_keys=True, default=str)] += 1
    items: list[_Text] = [
        _text(_Strong("Test seeds: "), _counted(seed_sets) + "; one episode per seed"),
        _text(
            _Strong("Validation seeds: "),
            f"training-time evaluation (learning curves, the choice of the best checkpoint) runs on seeds "
            f"{VALIDATION_SEEDS.start:,}\u2013{VALIDATION_SEEDS.stop - 1:,}, disjoint from the test seeds "
            f"({TEST_SEEDS.start:,}\u2013{TEST_SEEDS.stop - 1:,}) every score here is measured on, so a "
            "checkpoint is never measured on the episodes it was selected on.",
        ),
        _text(_Strong("Episodes per evaluation: "), _counted(episodes)),
        _text(_Strong("Actions: "), _counted(modes)),
        _text(_Strong("Checkpoints evaluated: "), _counted(checkpoints)),
    ]
    unrecorded = sum(1 for ev in evals if "checkpoint_selection" not in ev.protocol)
    if unrecorded:
        settings.setdefault("checkpoint_selection", Counter())["not recorded (older evaluation)"] += unrecorded
    for key in sorted(settings, key=lambda k: (k not in _PROTOCOL_TITLES, k)):
        counted = _counted(Counter({json.loads(v) if v.startswith('"') else v: n
                                    for v, n in settings[key].items()}))
        items.append(_text(_Strong(f"{_PROTOCOL_TITLES.get(key, key)}: "), counted))
    items += [
        _text(
            _Strong("Bootstrap: "),
            f"{reps} resamples, {confidence:.0%} percentile intervals, seed {seed}; stratified: runs are "
            "resampled within each env.",
        ),
        _text(
            _Strong("Scores: "),
            "a row is one configuration (agent + resolved settings + evaluation protocol), named by its label or "
            "by the settings that differ from the agent's preset; its runs are its training seeds, and a run's "
            "score is the mean return of its latest evaluation (evaluating the same configuration and seed again "
            "replaces the older result). A baseline is one run evaluated over many episodes.",
        ),
    ]
    blocks: list[_Block] = [_Heading(2, "Protocol", "protocol"), _Bullets(tuple(items))]

    records = [run.record for run in runs if run.record is not None]
    versions: dict[str, Counter[str]] = {}
    for record in records:
        for package, version in record.versions.items():
            versions.setdefault(package, Counter())[str(version)] += 1
    commits = Counter(record.git_commit or "unknown" for record in records if record.status != "baseline")
    blocks.append(_Heading(3, "Software of the runs", "software"))
    if versions:
        rows = tuple(
            (_text(package), _text(_counted(versions[package], "run") if len(versions[package]) > 1
                                   else next(iter(versions[package]))))
            for package in sorted(versions)
        )  # fmt: skip
        blocks.append(_Table(("Package", "Version"), rows))
    else:
        blocks.append(_Para(_text("The run records hold no package versions."), note=True))
    if commits:
        blocks.append(_Para(_text(_Strong("Git commit of the trained runs: "), _counted(commits, "run"))))
    return blocks


def _coverage(n_runs: int) -> str:
    """What an interval over `n_runs` runs measures, in words a reader notices."""
    if n_runs >= MIN_RUNS:
        return f"training seeds ({n_runs} runs)"
    if n_runs == 2:
        return f"2 training seeds only: too few; needs \u2265 {MIN_RUNS}"
    return f"episode noise only, not training variance; needs \u2265 {MIN_RUNS} seeds"


@dataclass(frozen=True)
class _Comparison:
    """Every agent against the leader (highest IQM point): IQM difference and P(agent > leader), with CIs."""

    leader: str
    differences: Mapping[str, tuple[float, float, float]]  # agent -> IQM(agent) - IQM(leader)
    improvement: Mapping[str, tuple[float, float, float]]  # agent -> P(agent > leader)
    tied: frozenset[str]  # the leader and every agent whose difference's CI holds 0

    @property
    def winner(self) -> str | None:
        """The leader when its lead over every other agent is significant (CI excludes 0), else None."""
        return self.leader if len(self.tied) == 1 else None

    def mark(self, agent: str) -> str | None:
        if agent == self.winner:
            return "best"
        return "tied" if agent in self.tied and self.winner is None else None


def _compare(matrices: Mapping[str, np.ndarray], reps: int, seed: int, confidence: float) -> _Comparison:
    """The leader by IQM and each other agent's difference from it (stats.difference_ci) and probability
    of improvement over it (stats.probability_of_improvement_ci), all on the same (rows, envs) matrices."""
    points = {agent: stats.iqm(m) for agent, m in matrices.items()}
    leader = min(points, key=lambda agent: (-points[agent], agent))
    differences, improvement = {}, {}
    for agent in sorted(matrices, key=lambda a: (-points[a], a)):
        if agent == leader:
            continue
        differences[agent] = stats.difference_ci(matrices[agent], matrices[leader], stats.iqm, reps=reps,
                                                 confidence=confidence, seed=seed)
        improvement[agent] = stats.probability_of_improvement_ci(matrices[agent], matrices[leader], reps=reps,
                                                                 confidence=confidence, seed=seed)
    tied = {leader} | {agent for agent, (_, low, high) in differences.items() if low <= 0.0 <= high}
    return _Comparison(leader, differences, improvement, frozenset(tied))


def _comparison_blocks(
    comparison: _Comparison, runs: Mapping[str, int], confidence: float, anchor: str, unit: str
) -> list[_Block]:
    """The table of differences from the leader, and what its intervals can and cannot say."""
    leader = comparison.leader
    rows = tuple(
        (
            _text(agent),
            _text(format_interval(*comparison.differences[agent])),
            _text(_normalised_ci(comparison.improvement[agent])),
            _text("tied (CI holds 0)" if agent in comparison.tied else "below the leader"),
            _text(_coverage(min(runs[agent], runs[leader]))),
        )
        for agent in comparison.differences
    )
    verdict = (
        f"{BEST} {leader} leads every other agent: each difference's {confidence:.0%} CI excludes 0."
        if comparison.winner
        else f"No single winner: {', '.join(sorted(comparison.tied))} are tied for the lead (the {confidence:.0%} "
             f"CI of the IQM difference from {leader} holds 0)."
    )
    blocks: list[_Block] = [
        _Heading(4, f"Against the leader ({leader})", anchor),
        _Table(
            ("Agent", f"IQM {unit} \u2212 leader's [{confidence:.0%} CI]", f"P(agent > leader) [{confidence:.0%} CI]",
             "Verdict", "Interval covers"),
            rows,
            numeric=frozenset({1, 2}),
            wrap=frozenset({4}),
        ),
        _Para(_text(verdict)),
        _Para(
            _text(
                "Difference: IQM of the agent minus IQM of the leader, with a stratified-bootstrap CI that resamples "
                "both agents' runs independently (Agarwal et al. 2021). P(agent > leader): the chance that a run of "
                "the agent scores higher than a run of the leader (ties count half); 0.5 means no evidence either way."
            ),
            note=True,
        ),
    ]
    few = sorted(agent for agent, n in runs.items() if n < MIN_RUNS)
    if few:
        blocks.append(
            _Para(
                _text(
                    f"Fewer than {MIN_RUNS} runs ({', '.join(few)}): an interval over one run's episodes covers "
                    "episode noise only, not training variance (how much another training seed would change the "
                    f"score), so it can call a difference that another seed would erase. A sound comparison needs "
                    f"at least {MIN_RUNS} training seeds per configuration, 5 or more preferably: e.g. ",
                    _Code("rlsuite sweep --agents AGENT --envs ENV --seeds 0-4"),
                    ".",
                ),
                note=True,
            )
        )
    return blocks


def _env_section(
    env_id: str, sel: _Selection, colours: Mapping[str, str], reps: int, seed: int, confidence: float
) -> list[_Block]:
    agents = [agent for agent in sel.agents if sel.runs(env_id, agent)]
    metric_names = sorted({name for agent in agents for name in _metric_means(sel.runs(env_id, agent))})
    cis: dict[str, dict[str, tuple[float, float, float]]] = {}
    single: dict[str, bool] = {}
    matrices: dict[str, np.ndarray] = {}
    for agent in agents:
        matrices[agent], single[agent] = _score_matrix(sel.runs(env_id, agent))
        cis[agent] = {
            name: stats.stratified_bootstrap_ci(
                matrices[agent], stats.AGGREGATES[name], reps=reps, confidence=confidence, seed=seed
            )
            for name in TABLE_STATS
        }
    comparison = _compare(matrices, reps, seed, confidence) if len(agents) >= 2 else None
    marks = {agent: comparison.mark(agent) if comparison else None for agent in agents}
    rows = []
    for agent in agents:
        runs = sel.runs(env_id, agent)
        metrics = _metric_means(runs)
        rows.append(
            (
                _agent_cell(agent, marks[agent]),
                _text(f"{len(runs)}\u2020" if single[agent] else str(len(runs))),
                *(_text(format_interval(*cis[agent][name])) for name in TABLE_STATS),
                _text(format_number(float(np.mean([run.mean_length for run in runs])))),
                *(_text(format_number(metrics[m]) if m in metrics else "\u2014") for m in metric_names),
                _text(_coverage(len(runs))),
            )
        )
    header = (
        "Agent",
        "Runs",
        *(f"{STAT_TITLES[name]} return [{confidence:.0%} CI]" for name in TABLE_STATS),
        "Length (steps)",
        *metric_names,
        "CIs cover",
    )
    coverage_column = len(header) - 1
    blocks: list[_Block] = [
        _Heading(3, env_id, f"env-{_anchor(env_id)}"),
        _Table(
            header,
            tuple(rows),
            best=frozenset(i for i, a in enumerate(agents) if marks[a] is not None),
            numeric=frozenset(range(1, len(header))) - {coverage_column},
            wrap=frozenset({coverage_column}),
        ),
        _Para(
            _text(
                f"Mean, median and IQM of run scores across runs, with {confidence:.0%} stratified-bootstrap "
                f"CIs. {BEST} marks the highest IQM only when the CI of its difference from every other agent "
                "excludes 0; otherwise the leaders are marked tied. Episode length (env steps) and env metrics"
                + (f" ({', '.join(metric_names)})" if metric_names else "")
                + " are means over runs of each run's episode mean."
            ),
            note=True,
        ),
    ]
    singles = [agent for agent in agents if single[agent]]
    if singles:
        counts = ", ".join(f"{a}: {len(sel.runs(env_id, a)[0].episodes)} episodes" for a in singles)
        blocks.append(
            _Para(
                _text(
                    f"\u2020 A single run ({counts}): there are no runs to resample, so its CIs bootstrap "
                    "over the run's episodes instead (episode noise only, not training variance), and its median "
                    "and IQM are of episode returns."
                ),
                note=True,
            )
        )
    if comparison is not None:
        runs_per_agent = {agent: len(sel.runs(env_id, agent)) for agent in agents}
        blocks += _comparison_blocks(comparison, runs_per_agent, confidence, f"vs-{_anchor(env_id)}", "return")
    scores = {agent: Interval(*cis[agent]["iqm"]) for agent in agents}
    blocks.append(
        _Figure(
            f"figures/scores_{_slug(env_id)}.png",
            plots.env_scores_figure(env_id, scores, colours, confidence),
            f"IQM return per agent on {env_id} with {confidence:.0%} CIs",
        )
    )
    return blocks


@dataclass(frozen=True)
class _Normaliser:
    random: float
    reference: float
    random_source: str
    reference_source: str


def _normalisers(sel: _Selection, references: Mapping[str, float]) -> tuple[dict[str, _Normaliser], list[str]]:
    """Random and reference score per env that has both, and a note for each env left out (saying how to
    provide what is missing): a missing score never blocks a report, it only shrinks the aggregate."""
    out: dict[str, _Normaliser] = {}
    notes: list[str] = []
    for env_id in sel.envs:
        # the table's scores are for the env as registered; a variant (other env kwargs) needs its own
        known = reference_score(env_id) if sel.env_ids[env_id] == env_id else None
        if env_id in references:
            reference, reference_source = float(references[env_id]), "given (--reference)"
        elif known is not None:
            reference, reference_source = known.reference, known.source
        else:
            where = ("add it to _REFERENCE_SCORES in envs/factory.py, or " if sel.env_ids[env_id] == env_id
                     else "")
            why = "" if sel.env_ids[env_id] == env_id else " (the reference table covers envs as registered)"
            notes.append(f"{env_id} is left out of the aggregates: it has no reference score (normalised 1){why}. "
                         f"To include it, {where}pass --reference '{env_id}=SCORE' to rlsuite report.")
            continue
        if known is not None:
            random, random_source = known.random, "rlsuite reference table"
        elif sel.runs(env_id, "random"):
            runs = sel.runs(env_id, "random")
            random = float(np.mean([run.score for run in runs]))
            episodes = sum(len(run.episodes) for run in runs)
            random_source = f"random agent in this database ({episodes} episodes)"
        else:
            flags = "".join(f" --env-kwarg {item}" for item in _kwarg_items(sel.env_kwargs[env_id]))
            notes.append(f"{env_id} is left out of the aggregates: it has no random score (normalised 0). To "
                         f"include it, evaluate the random agent (rlsuite evaluate --agent random --env "
                         f"{sel.env_ids[env_id]}{flags}) into the same database.")
            continue
        if reference == random:
            notes.append(f"{env_id} is left out of the aggregates: its reference score equals its random score "
                         f"({reference}), so it cannot be normalised; pass another --reference.")
            continue
        out[env_id] = _Normaliser(random, reference, random_source, reference_source)
    return out, notes


def _normalised_matrix(
    agent: str, sel: _Selection, norms: Mapping[str, _Normaliser]
) -> tuple[np.ndarray, str, list[str]]:
    """(rows, envs) normalised scores of an agent evaluated on every env of `norms`, its row kind, and notes.

    Rows are runs (truncated to the fewest runs any env has, in seed order) when every env has 2+ runs;
    otherwise the single run's episodes, like the per-env tables.
    """
    envs = list(norms)
    groups = [sel.runs(env_id, agent) for env_id in envs]
    notes: list[str] = []
    n_runs = min(len(runs) for runs in groups)
    if n_runs >= 2:
        if any(len(runs) > n_runs for runs in groups):
            notes.append(f"{agent}: envs have different numbers of runs; the first {n_runs} by seed are used.")
        columns = [np.array([run.score for run in runs[:n_runs]]) for runs in groups]  # envs x (runs,)
        kind = f"{n_runs} runs"
    else:
        if any(len(runs) > 1 for runs in groups):
            notes.append(f"{agent}: an env has a single run, so only the first run of each env is used.")
        n_eps = min(len(runs[0].episodes) for runs in groups)
        if any(len(runs[0].episodes) > n_eps for runs in groups):
            notes.append(f"{agent}: evaluations differ in length; the first {n_eps} episodes are used.")
        columns = [runs[0].returns[:n_eps] for runs in groups]
        kind = f"1 run\u2020 ({n_eps} episodes)"
    normalised = [
        stats.normalize(col, norms[env_id].random, norms[env_id].reference)
        for env_id, col in zip(envs, columns, strict=True)
    ]
    return np.stack(normalised, axis=1), kind, notes  # (rows, envs)


def _normalised_ci(ci: tuple[float, float, float]) -> str:
    """Normalised scores and probabilities live near [0, 1]: always three decimals."""
    point, low, high = ci
    return format_interval(point, low, high, decimals=3)


def _across_section(
    sel: _Selection,
    colours: Mapping[str, str],
    references: Mapping[str, float],
    reps: int,
    seed: int,
    confidence: float,
) -> list[_Block]:
    norms, left_out = _normalisers(sel, references)
    blocks: list[_Block] = [_Heading(2, "Across envs", "across-envs")]
    blocks += [_Para(_text(note), note=True) for note in left_out]
    if len(norms) < 2:
        blocks.append(_Para(_text(f"Aggregates need at least two envs with random and reference scores; "
                                  f"{len(norms)} of {len(sel.envs)} have them, so none are shown.")))
        return blocks
    blocks += [
        _Para(
            _text(
                "Scores are normalised per env so that the random agent scores 0 and the reference scores 1, "
                "then aggregated over the envs below. CIs: stratified bootstrap over runs within each env "
                f"({reps} resamples, seed {seed}). Optimality gap: mean shortfall below 1 (lower is better)."
            )
        ),
        _Table(
            ("Env", "Random score", "Reference score", "Random from", "Reference from"),
            tuple(
                (
                    _text(env_id),
                    _text(format_number(n.random)),
                    _text(format_number(n.reference)),
                    _text(n.random_source),
                    _text(n.reference_source),
                )
                for env_id, n in norms.items()
            ),
            numeric=frozenset({1, 2}),
            wrap=frozenset({3, 4}),
        ),
    ]
    complete = [a for a in sel.agents if all(sel.runs(env_id, a) for env_id in norms)]
    missing = [a for a in sel.agents if a not in complete]
    matrices: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    notes: list[str] = []
    for agent in complete:
        matrices[agent], kinds[agent], agent_notes = _normalised_matrix(agent, sel, norms)
        notes += agent_notes
    if missing:
        notes.append(
            f"Left out of the aggregates (not evaluated on every selected env): {', '.join(missing)}."
        )
    if not matrices:
        blocks.append(_Para(_text("No agent was evaluated on every selected env; nothing to aggregate."), note=True))
        blocks += [_Para(_text(note), note=True) for note in notes]
        return blocks

    aggregates = {
        agent: {
            name: stats.stratified_bootstrap_ci(
                matrix, stats.AGGREGATES[name], reps=reps, confidence=confidence, seed=seed
            )
            for name in AGGREGATE_ORDER
        }
        for agent, matrix in matrices.items()
    }
    comparison = _compare(matrices, reps, seed, confidence) if len(matrices) >= 2 else None
    marks = {agent: comparison.mark(agent) if comparison else None for agent in matrices}
    order = sorted(matrices)
    blocks.append(_Heading(3, "Aggregate scores", "aggregates"))
    blocks.append(
        _Table(
            ("Agent", "Rows per env", *(f"{STAT_TITLES[n]} [{confidence:.0%} CI]" for n in AGGREGATE_ORDER)),
            tuple(
                (
                    _agent_cell(agent, marks[agent]),
                    _text(kinds[agent]),
                    *(_text(_normalised_ci(aggregates[agent][name])) for name in AGGREGATE_ORDER),
                )
                for agent in order
            ),
            best=frozenset(i for i, agent in enumerate(order) if marks[agent] is not None),
            numeric=frozenset(range(2, 2 + len(AGGREGATE_ORDER))),
        )
    )
    if any("\u2020" in kind for kind in kinds.values()):
        notes.append(
            "\u2020 Agents with a single run per env (baselines) are aggregated over their episodes."
        )
    blocks += [_Para(_text(note), note=True) for note in notes]
    if comparison is not None:
        runs = {agent: int(matrices[agent].shape[0]) if "\u2020" not in kinds[agent] else 1 for agent in matrices}
        blocks += _comparison_blocks(comparison, runs, confidence, "vs-leader-aggregate", "normalised")
    blocks.append(
        _Figure(
            "figures/aggregates.png",
            plots.aggregates_figure(
                {a: {n: Interval(*aggregates[a][n]) for n in AGGREGATE_ORDER} for a in order}, colours, confidence
            ),
            "Aggregate metrics of normalised scores with confidence intervals",
        )
    )

    if len(matrices) >= 2:
        ranked = sorted(matrices, key=lambda a: (-aggregates[a]["iqm"][0], a))
        pairs = []
        for i, x in enumerate(ranked):
            for y in ranked[i + 1 :]:
                ci = stats.probability_of_improvement_ci(
                    matrices[x], matrices[y], reps=reps, confidence=confidence, seed=seed
                )
                pairs.append((x, y, Interval(*ci)))
        blocks += [
            _Heading(3, "Probability of improvement", "probability-of-improvement"),
            _Para(
                _text(
                    "P(X > Y): the chance that a run of X scores higher than a run of Y on an env, averaged "
                    "over envs (ties count half); 0.5 means no evidence either way."
                )
            ),
            _Table(
                ("Comparison", f"P(X > Y) [{confidence:.0%} CI]"),
                tuple(
                    (_text(f"P({x} > {y})"), _text(_normalised_ci((iv.point, iv.low, iv.high))))
                    for x, y, iv in pairs
                ),
                numeric=frozenset({1}),
            ),
            _Figure(
                "figures/probability_of_improvement.png",
                plots.improvement_figure(pairs, colours, confidence),
                "Probability of improvement between each pair of agents",
            ),
        ]
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


def _curves_section(
    sel: _Selection, db_path: Path, colours: Mapping[str, str], reps: int, seed: int, confidence: float
) -> list[_Block]:
    blocks: list[_Block] = [
        _Heading(2, "Learning curves", "learning-curves"),
        _Para(
            _text(
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
        blocks.append(_Heading(3, env_id, f"curves-{_anchor(env_id)}"))
        if curves:
            baselines = {  # agents without curves (baselines) appear as flat lines at their score
                agent: float(np.mean([run.score for run in sel.runs(env_id, agent)]))
                for agent in sel.agents
                if agent not in curves and sel.runs(env_id, agent)
                and all(run.record is None or not run.record.run_dir for run in sel.runs(env_id, agent))
            }
            blocks.append(
                _Figure(
                    f"figures/curves_{_slug(env_id)}.png",
                    plots.learning_curves_figure(env_id, curves, colours, confidence, baselines),
                    f"Learning curves on {env_id}",
                )
            )
        else:
            blocks.append(_Para(_text("No learning curves: no trained run with a metrics.csv."), note=True))
        blocks += [_Para(_text(note), note=True) for note in notes]
    return blocks


def _video_for(
    env_id: str, agent: str, sel: _Selection, db_path: Path, videos: dict[str, Path]
) -> _Video:
    """The video of the median-score run that has one; registers the file to copy in `videos`."""
    title = f"{agent} on {env_id}"
    with_video = [run for run in sel.runs(env_id, agent) if run.evaluation.video_path]
    if not with_video:
        return _Video(
            None,
            title,
            _text(
                "No video recorded. Record one with ",
                _Code(f"rlsuite evaluate ... --video-dir DIR --db {db_path.name}"),
                ".",
            ),
        )
    ranked = sorted(with_video, key=lambda run: (run.score, run.evaluation.run_id))
    run = ranked[(len(ranked) - 1) // 2]
    assert run.evaluation.video_path is not None
    source = _resolve(run.evaluation.video_path, db_path)
    if source is None or not source.is_file():
        return _Video(None, title, _text(f"The recorded video {run.evaluation.video_path} is missing."))
    file = f"videos/{_slug(agent)}__{_slug(env_id)}{source.suffix.lower() or '.mp4'}"
    videos[file] = source
    shown = read_sidecar(source)  # a video `rlsuite record` attached says which episodes it shows
    if shown is not None:
        episodes = "; ".join(f"seed {ep.get('seed')}, return {format_number(float(ep.get('return', math.nan)))}, "
                             f"{ep.get('length')} steps" for ep in shown["episodes"])
        return _Video(file, title, _text(f"Run {run.evaluation.run_id}, checkpoint {run.evaluation.checkpoint}, "
                                         f"recorded with rlsuite record: {episodes}."))
    episode = median_episode(run.episodes)
    return _Video(
        file,
        title,
        _text(
            f"Run {run.evaluation.run_id}, checkpoint {run.evaluation.checkpoint}: the median-return episode "
            f"(episode {episode.index}, seed {episode.seed}, return {format_number(episode.episode_return)}, "
            f"{episode.length} steps)."
        ),
    )


def _videos_section(sel: _Selection, db_path: Path, videos: dict[str, Path]) -> list[_Block]:
    blocks: list[_Block] = [
        _Heading(2, "Videos", "videos"),
        _Para(
            _text(
                "One episode per agent and env: the median-return episode of the evaluation (of the run with "
                "the median score when several runs have videos), so it shows typical behaviour, not the best."
            )
        ),
    ]
    for env_id in sel.envs:
        blocks.append(_Heading(3, env_id, f"videos-{_anchor(env_id)}"))
        blocks.append(
            _Gallery(
                tuple(
                    _video_for(env_id, agent, sel, db_path, videos)
                    for agent in sel.agents
                    if sel.runs(env_id, agent)
                )
            )
        )
    return blocks


_UNFINISHED = ("failed", "interrupted", "crashed")


def _current(record: RunRecord) -> RunRecord:
    """A run recorded while "running" (evaluated mid-training) as its folder says now (finished, interrupted,
    or crashed if its process died), so a dead run is not reported as live. Without its folder, the
    database's word stands."""
    if record.status != "running" or not record.run_dir:
        return record
    folder = RunFolder(Path(record.run_dir))
    try:
        status = folder.effective_status()
    except RunError:
        return record
    return record if status == record.status else replace(record, status=status)


def _failures_section(sel: _Selection) -> list[_Block]:
    blocks: list[_Block] = [_Heading(2, "Failed, interrupted and unevaluated runs", "failed-runs")]
    if not sel.other_runs:
        blocks.append(_Para(_text("None: every run in the selection finished and was evaluated.")))
        return blocks
    blocks.append(
        _Para(
            _text(
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
        return r.status if r.status in _UNFINISHED else f"{r.status}, not evaluated"

    rows = tuple(
        (
            _text(r.run_id),
            _text(r.agent),
            _text(r.env_id),
            _text("\u2014" if r.seed is None else str(r.seed)),
            _text(status(r)),
            _text(r.error or "\u2014"),
            _text(_Code(r.command)) if r.command else _text("\u2014 (no command recorded)"),
        )
        for r in sel.other_runs
    )
    header = ("Run", "Agent", "Env", "Seed", "Status", "Error", "Command")
    blocks.append(_Table(header, rows, wrap=frozenset({5, 6})))
    return blocks


# ----------------------------------------------------------------------------------------------------
# Tuning studies.


def _tuning_section(store: ResultsStore, env_ids: set[str]) -> list[_Block]:
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
    blocks: list[_Block] = [
        _Heading(2, "Tuning studies", "tuning"),
        _Para(
            _text(
                "Configurations that ",
                _Code("rlsuite tune"),
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
                _text(stage),
                _text(candidate),
                _text(", ".join(str(runs[r].seed) for r in sorted(ids, key=lambda r: runs[r].seed or 0))),
                _text(score(ids, "validation")),
                _text(score(ids, "test") if confirmed else "\u2014"),
                _text(", ".join(f"{k}={v}" for k, v in sorted(params[key].items())) or "(preset)"),
                _text((runs[ids[0]].label if confirmed else None) or "\u2014"),
            ))
        agent_env = {(runs[t.run_id].agent, runs[t.run_id].env_id) for t in links if t.study == study}
        blocks.append(_Heading(3, f"Study {study}", _anchor(f"tuning-{study}")))
        blocks.append(_Para(_text(f"{'; '.join(f'{a} on {e}' for a, e in sorted(agent_env))}.")))
        header = ("Stage", "Configuration", "Training seeds", "Validation IQM", "Test IQM", "Settings searched", "Row")
        blocks.append(_Table(header, tuple(rows), numeric=frozenset({3, 4}), wrap=frozenset({5})))
    return blocks


# ----------------------------------------------------------------------------------------------------
# Raw episodes.

EPISODE_COLUMNS = (
    "agent", "env_id", "env_kwargs", "run_id", "eval_id", "checkpoint", "checkpoint_step", "deterministic",
    "episode", "seed", "return", "length",
)  # fmt: skip


def _episodes_csv(sel: _Selection) -> str:
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


# ----------------------------------------------------------------------------------------------------
# Rendering.

_CSS = """
:root { --fg: #1c2330; --muted: #5d6778; --line: #e2e6ed; --head: #f2f4f8; --best: #fff5cf;
        --accent: #1f5fbf; --code: #f3f4f7; }
* { box-sizing: border-box; }
html { background: #eef1f5; }
body { margin: 0; color: var(--fg);
       font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 40px 56px 72px; background: #fff;
       min-height: 100vh; box-shadow: 0 0 0 1px var(--line); }
h1 { font-size: 30px; line-height: 1.2; margin: 0 0 6px; letter-spacing: -0.01em; }
h2 { font-size: 22px; margin: 48px 0 14px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 17px; margin: 30px 0 10px; }
p { margin: 8px 0; max-width: 80ch; }
p.meta { color: var(--muted); margin: 0 0 4px; }
p.note { color: var(--muted); font-size: 13.5px; }
ul { margin: 8px 0; padding-left: 22px; } li { margin: 3px 0; }
a { color: var(--accent); }
nav.toc { background: var(--head); border: 1px solid var(--line); border-radius: 8px; padding: 10px 18px;
          margin: 22px 0 8px; font-size: 14px; }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2; }
.table-wrap { overflow-x: auto; margin: 10px 0 6px; }
table { border-collapse: collapse; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { padding: 7px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
         white-space: nowrap; }
td.wrap { white-space: normal; min-width: 22ch; }
th { background: var(--head); font-weight: 600; border-bottom: 2px solid #cdd4de; white-space: normal;
     vertical-align: bottom; }
td.num, th.num { text-align: right; }
td.num { white-space: nowrap; }
tr.best td { background: var(--best); }
tr.best td:first-child { box-shadow: inset 3px 0 0 #e0a800; }
code { font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
       background: var(--code); padding: 1px 5px; border-radius: 4px; overflow-wrap: anywhere; }
figure { margin: 16px 0 26px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 22px; margin: 10px 0; }
.gallery figure { margin: 0; }
video { display: block; width: 100%; max-height: 420px; background: #111; border-radius: 6px; }
.missing { display: flex; align-items: center; justify-content: center; height: 120px; border-radius: 6px;
           border: 1px dashed #c4cad4; color: var(--muted); font-size: 13px; }
footer { margin-top: 48px; color: var(--muted); font-size: 13px; }
@media print { html { background: #fff; } main { box-shadow: none; padding: 0; } }
"""


def _html_inline(part: _Inline) -> str:
    if isinstance(part, str):
        return html.escape(part)
    if isinstance(part, _Code):
        return f"<code>{html.escape(part.text)}</code>"
    if isinstance(part, _Strong):
        return f"<strong>{html.escape(part.text)}</strong>"
    return f'<a href="{html.escape(part.href)}">{html.escape(part.text)}</a>'


def _html_text(text: _Text) -> str:
    return "".join(_html_inline(part) for part in text)


def _html_block(block: _Block) -> str:
    if isinstance(block, _Heading):
        return f'<h{block.level} id="{block.anchor}">{html.escape(block.text)}</h{block.level}>'
    if isinstance(block, _Para):
        note = ' class="note"' if block.note else ""
        return f"<p{note}>{_html_text(block.text)}</p>"
    if isinstance(block, _Bullets):
        return "<ul>" + "".join(f"<li>{_html_text(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, _Table):
        def cls(i: int) -> str:
            return ' class="num"' if i in block.numeric else ' class="wrap"' if i in block.wrap else ""

        head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(block.header))
        body = []
        for r, row in enumerate(block.rows):
            tr = '<tr class="best">' if r in block.best else "<tr>"
            body.append(tr + "".join(f"<td{cls(i)}>{_html_text(c)}</td>" for i, c in enumerate(row)) + "</tr>")
        return (
            f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )
    if isinstance(block, _Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
            f'<figcaption>{html.escape(block.alt)} (<a href="{html.escape(block.file)}">PNG</a>)</figcaption>'
            "</figure>"
        )
    items = []
    for video in block.videos:
        if video.file is None:
            media = f'<div class="missing">{html.escape(video.title)}: no video</div>'
        elif video.file.endswith(".gif"):
            media = f'<img src="{html.escape(video.file)}" alt="{html.escape(video.title)}">'
        else:
            media = (
                f'<video controls muted playsinline preload="metadata" src="{html.escape(video.file)}">'
                f'<a href="{html.escape(video.file)}">{html.escape(video.title)}</a></video>'
            )
        items.append(
            f"<figure>{media}<figcaption><strong>{html.escape(video.title)}</strong>. "
            f"{_html_text(video.caption)}</figcaption></figure>"
        )
    return f'<div class="gallery">{"".join(items)}</div>'


def _render_html(title: str, meta: Sequence[_Text], blocks: Sequence[_Block]) -> str:
    toc = "".join(
        f'<li><a href="#{b.anchor}">{html.escape(b.text)}</a></li>'
        for b in blocks
        if isinstance(b, _Heading) and b.level == 2
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        f"<h1>{html.escape(title)}</h1>",
        *(f'<p class="meta">{_html_text(line)}</p>' for line in meta),
        f'<nav class="toc"><strong>Contents</strong><ol>{toc}</ol></nav>',
        *(_html_block(block) for block in blocks),
        f"<footer>Written by rlsuite {html.escape(rlsuite_version)}.</footer>",
        "</main>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _md_inline(part: _Inline, in_table: bool) -> str:
    if isinstance(part, str):
        text = part
    elif isinstance(part, _Code):
        fence = "``" if "`" in part.text else "`"
        text = f"{fence}{part.text}{fence}"
    elif isinstance(part, _Strong):
        text = f"**{part.text.strip()}**" + (" " if part.text.endswith(" ") else "")
    else:
        text = f"[{part.text}]({part.href})"
    return text.replace("|", "\\|").replace("\n", " ") if in_table else text


def _md_text(text: _Text, in_table: bool = False) -> str:
    return "".join(_md_inline(part, in_table) for part in text)


def _md_block(block: _Block) -> str:
    if isinstance(block, _Heading):
        return f"{'#' * block.level} {block.text}"
    if isinstance(block, _Para):
        return f"*{_md_text(block.text)}*" if block.note else _md_text(block.text)
    if isinstance(block, _Bullets):
        return "\n".join(f"- {_md_text(item)}" for item in block.items)
    if isinstance(block, _Table):
        def row(cells: Sequence[str]) -> str:
            return "| " + " | ".join(cells) + " |"

        rule = ["---:" if i in block.numeric else "---" for i in range(len(block.header))]
        lines = [row([h.replace("|", "\\|") for h in block.header]), row(rule)]
        lines += [row([_md_text(cell, in_table=True) for cell in cells]) for cells in block.rows]
        return "\n".join(lines)
    if isinstance(block, _Figure):
        return f"![{block.alt}]({block.file})"
    lines = []
    for video in block.videos:
        head = f"[{video.title}]({video.file})" if video.file else f"{video.title} (no video)"
        lines.append(f"- {head}: {_md_text(video.caption)}")
    return "\n".join(lines)


def _render_md(title: str, meta: Sequence[_Text], blocks: Sequence[_Block]) -> str:
    parts = [f"# {title}", "\n".join(f"{_md_text(line)}  " for line in meta).rstrip()]
    parts += [_md_block(block) for block in blocks]
    return "\n\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------------------
# The entry point.


def write_report(
    db_path: Path,
    out_dir: Path,
    *,
    envs: Sequence[str] | None = None,
    agents: Sequence[str] | None = None,
    reps: int = 2000,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    references: Mapping[str, float] | None = None,
    now: datetime | None = None,
) -> Path:
    """Write report.html, report.md, episodes.csv, figures/ and videos/ into `out_dir`; return the HTML path.

    `envs` / `agents` restrict the report (None: everything in the database). `references` adds or
    overrides reference scores per env id (normalisation across envs needs one for every env). `now`
    fixes the "generated at" line (tests); everything else is a function of the database and `seed`.
    """
    db_path, out_dir = Path(db_path), Path(out_dir)
    if not db_path.exists():
        raise ReportError(
            f"No results database at {db_path}; pass --db with the file `rlsuite evaluate` wrote "
            "(default results.db)."
        )
    with ResultsStore(db_path, create=False) as store:
        sel = _select(store, db_path, list(envs) if envs else None, list(agents) if agents else None)
        tuning = _tuning_section(store, set(sel.env_ids.values()))
    colours = plots.agent_colors(sel.agents)
    videos: dict[str, Path] = {}
    generated = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S %Z").strip()

    blocks: list[_Block] = _protocol_section(sel, reps, seed, confidence)
    blocks.append(_Heading(2, "Results per env", "per-env"))
    for env_id in sel.envs:
        blocks += _env_section(env_id, sel, colours, reps, seed, confidence)
    if len(sel.envs) >= 2:
        blocks += _across_section(sel, colours, dict(references or {}), reps, seed, confidence)
    blocks += _curves_section(sel, db_path, colours, reps, seed, confidence)
    blocks += _videos_section(sel, db_path, videos)
    blocks += tuning
    blocks += _failures_section(sel)
    blocks += [
        _Heading(2, "Raw data", "raw-data"),
        _Para(
            _text(
                "Every episode behind this report, one row each (agent, env, env kwargs, run, evaluation, checkpoint, "
                "episode index, seed, return, length and the env's metrics): ",
                _Link("episodes.csv", "episodes.csv"),
                ".",
            )
        ),
    ]

    title = "rlsuite comparison report"
    meta = [
        _text(f"Generated at {generated} by rlsuite {rlsuite_version} from ", _Code(db_path.name), "."),
        _text(f"Envs: {', '.join(sel.envs)}. Agents: {', '.join(sel.agents)}."),
    ]

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [block for block in blocks if isinstance(block, _Figure)]
    if figures:
        (out_dir / "figures").mkdir(exist_ok=True)
    for figure in figures:
        atomic_write_bytes(out_dir / figure.file, figure.png)
    if videos:
        (out_dir / "videos").mkdir(exist_ok=True)
    for file, source in sorted(videos.items()):
        atomic_write_bytes(out_dir / file, source.read_bytes())
    atomic_write_bytes(out_dir / "episodes.csv", _episodes_csv(sel).encode("utf-8"))
    atomic_write_bytes(out_dir / "report.md", _render_md(title, meta, blocks).encode("utf-8"))
    html_path = out_dir / "report.html"
    atomic_write_bytes(html_path, _render_html(title, meta, blocks).encode("utf-8"))
    return html_path

