"""What a report is about: the evaluations it selects from the database, grouped per env and row, and the
rows' names (a row is a configuration and protocol, evaluation/identity.py; never the agent name alone)."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.agents.run import RunError, RunFolder
from rlsuite.evaluation.identity import configuration_key, configuration_name, protocol_key
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.store import ResultsStore


class ReportError(ValueError):
    """A report cannot be written from this database and selection; the message says what to do."""


def _env_kwargs(evaluation: EvaluationRecord) -> dict[str, Any]:
    return dict(evaluation.protocol.get("env_kwargs") or {})


def kwarg_items(kwargs: Mapping[str, Any]) -> list[str]:
    """`key=value` per env kwarg, sorted: as titles show them and as `--env-kwarg` takes them."""
    return [f"{key}={kwargs[key]}" for key in sorted(kwargs)]


def env_label(evaluation: EvaluationRecord) -> str:
    """The env an evaluation measured: its id, plus its env kwargs when it had any.

    Keeps a run's results on different env kwargs (held-out voices, another demand profile) apart.
    """
    kwargs = _env_kwargs(evaluation)
    return f"{evaluation.env_id} ({', '.join(kwarg_items(kwargs))})" if kwargs else evaluation.env_id


@dataclass(frozen=True)
class Run:
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
class Selection:
    envs: tuple[str, ...]  # env labels (env_label): an env id, or an id with the env kwargs evaluated on
    agents: tuple[str, ...]
    groups: Mapping[tuple[str, str], tuple[Run, ...]]  # (env label, agent) -> runs, ordered by (seed, run_id)
    other_runs: tuple[RunRecord, ...]  # failed, interrupted or never-evaluated runs matching the filters
    env_ids: Mapping[str, str]  # env label -> the env id it is a variant of
    env_kwargs: Mapping[str, Mapping[str, Any]]  # env label -> its env kwargs ({} for the env as registered)

    def runs(self, env_id: str, agent: str) -> tuple[Run, ...]:
        return self.groups.get((env_id, agent), ())

    def all_runs(self) -> list[Run]:
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
        tags.append(f"seeds {seed_range(ev.seeds)}")
    if not tags and len({protocol_key(e) for e in group}) > 1:
        tags.append(f"protocol {protocol_key(ev)[:6]}")
    return ", ".join(tags)


def _pairs_text(evaluations: Sequence[EvaluationRecord]) -> str:
    pairs = sorted({(e.agent, env_label(e)) for e in evaluations})
    return "; ".join(f"{agent} on {env_id}" for agent, env_id in pairs)


def select(
    store: ResultsStore, db_path: Path, envs: Sequence[str] | None, agents: Sequence[str] | None
) -> Selection:
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
    groups: dict[tuple[str, str], list[Run]] = {}
    for ev in chosen:
        assert ev.eval_id is not None  # the store assigns it
        episodes = tuple(store.episodes(ev.eval_id))
        run = Run(evaluation=ev, record=records.get(ev.run_id), episodes=episodes)
        groups.setdefault((env_label(ev), names[ev.eval_id]), []).append(run)

    def run_order(run: Run) -> tuple[int, int, str]:
        seed = run.record.seed if run.record is not None else None
        return (seed is None, seed or 0, run.evaluation.run_id)

    evaluated = {(e.run_id, e.env_id) for e in chosen}
    validated = {e.run_id for e in stored if e.protocol.get("split") == "validation"}  # tuning's runs
    other = [
        r
        for r in records.values()
        if (envs is None or r.env_id in envs)
        and (agents is None or r.agent in agents or r.label in agents)
        and ((r.run_id, r.env_id) not in evaluated or r.status in UNFINISHED)
        and not (r.status == "finished" and r.run_id in validated)
    ]
    return Selection(
        envs=tuple(chosen_envs),
        agents=tuple(sorted({name for (_, name) in groups})),
        groups={key: tuple(sorted(runs, key=run_order)) for key, runs in groups.items()},
        other_runs=tuple(sorted(other, key=lambda r: (r.env_id, r.agent, r.run_id))),
        env_ids={env_label(e): e.env_id for e in chosen},
        env_kwargs={env_label(e): _env_kwargs(e) for e in chosen},
    )


def seed_range(seeds: Sequence[int]) -> str:
    """`a–b` for consecutive seeds, else a short list."""
    s = sorted(seeds)
    if not s:
        return "none"
    if s == list(range(s[0], s[0] + len(s))):
        return f"{s[0]}" if len(s) == 1 else f"{s[0]}\u2013{s[-1]}"
    if len(s) <= 6:
        return ", ".join(map(str, s))
    return f"{len(s)} seeds from {s[0]} to {s[-1]}"


UNFINISHED = ("failed", "interrupted", "crashed")


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
