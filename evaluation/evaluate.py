"""Evaluate a run folder or a baseline under the common protocol and record it in the results database.

This is what `rlsuite evaluate`, the demo and sweeps call: load the policy through the agent
registry, run `harness.evaluate_policy` on the fixed evaluation seeds, optionally record the
median-return episode as H.264 MP4, then write the run, the evaluation and every episode to the
database in one transaction. Bad input (no checkpoint, foreign database, mismatched spaces) fails
before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rlsuite.agents.interface import Policy
from rlsuite.agents.registry import get_spec, load_policy, make_baseline
from rlsuite.agents.run import RunFolder, collect_versions, git_commit
from rlsuite.envs import make_env
from rlsuite.envs.factory import check_env_kwargs, describe_env_preset
from rlsuite.evaluation.harness import (
    DEFAULT_EVAL_THREADS,
    TEST_SEEDS,
    EvaluationError,
    check_spaces,
    eval_epsilon,
    evaluate_policy,
    evaluation_seeds,
    median_episode,
)
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.stats import summarize_returns
from rlsuite.evaluation.store import ResultsStore
from rlsuite.evaluation.video import record_episodes, write_sidecar


@dataclass(frozen=True)
class EvaluationOutcome:
    evaluation: EvaluationRecord
    episodes: list[EpisodeRecord]
    summary: dict[str, Any]
    """The machine-readable summary `rlsuite evaluate --json` prints as strict JSON (records.strict_json): a
    value with no finite measurement (NaN, or an env metric such as Highway's `min_ttc`, +inf when no car
    was ever ahead) is printed as null."""


@dataclass(frozen=True)
class AgentUnderTest:
    policy: Policy
    run: RunRecord
    env_id: str
    checkpoint: str
    checkpoint_step: int | None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Env constructor keywords: a run's own (its settings' env_kwargs), updated by the caller's."""
    validation_seeds: tuple[int, ...] | None = None
    """The seeds training evaluated on to choose `best` (manifest `validation_seeds`); None if not recorded."""

    @property
    def env_preset(self) -> str:
        """A trained run's preprocessing preset (Atari), "" when it has none."""
        return str(self.run.config.get("env_preset") or "")

    @property
    def eval_env_kwargs(self) -> dict[str, Any]:
        """What the env is built with to evaluate this subject: its run's preset, then its env kwargs."""
        return {**({"preset": self.env_preset} if self.env_preset else {}), **self.env_kwargs}


def baseline_run_id(agent: str, env_id: str) -> str:
    return f"baseline:{agent}:{env_id}"


def load_agent(*, run_dir: Path | None = None, agent: str | None = None, env_id: str | None = None,
               checkpoint: str = "best", seed: int = 0, env_kwargs: Mapping[str, Any] | None = None) -> AgentUnderTest:
    """A trained run's policy (from its folder) or a baseline's policy (from its name and an env id).

    `env_kwargs` (e.g. {"profile": "held_out"}, text from `--env-kwarg` or typed) update a run's own
    env kwargs, so a run is evaluated on the env it trained on unless the caller overrides a keyword."""
    if run_dir is not None:
        step_or_name: str | int = int(checkpoint) if checkpoint.isdigit() else checkpoint
        loaded = load_policy(run_dir, step_or_name)
        manifest = loaded.manifest
        status = RunFolder(Path(run_dir)).effective_status(manifest)  # "crashed" when its process died
        run = RunRecord(run_id=manifest["name"], agent=manifest["agent"], env_id=manifest["env_id"],
                        seed=manifest["seed"], status=status, run_dir=str(Path(run_dir).resolve()),
                        command=manifest.get("command"), config=manifest.get("settings", {}),
                        versions=manifest.get("versions", {}), git_commit=manifest.get("git_commit"),
                        error=manifest.get("error"), label=manifest.get("label"))
        target = env_id or manifest["env_id"]
        stored = dict(manifest.get("settings", {}).get("env_kwargs") or {})
        kwargs = check_env_kwargs(target, {**stored, **dict(env_kwargs or {})})
        validation = manifest.get("validation_seeds")
        return AgentUnderTest(loaded.policy, run, target, loaded.checkpoint, loaded.step, kwargs,
                              None if validation is None else tuple(int(s) for s in validation))
    if agent is None or env_id is None:
        raise EvaluationError("name a run folder, or a baseline agent with its env: --agent random --env CartPole-v1.")
    get_spec(agent)
    kwargs = check_env_kwargs(env_id, dict(env_kwargs or {}))
    env = make_env(env_id, **kwargs)
    try:
        policy = make_baseline(agent, env, seed=seed)
    finally:
        env.close()
    commit, _ = git_commit()
    run = RunRecord(run_id=baseline_run_id(agent, env_id), agent=agent, env_id=env_id, seed=seed, status="baseline",
                    command=f"rlsuite evaluate --agent {agent} --env {env_id}", versions=collect_versions(),
                    git_commit=commit)
    return AgentUnderTest(policy, run, env_id, "none", None, kwargs)


def check_database(db: Path) -> None:
    """Refuse a foreign or newer database before any work (and before writing anything)."""
    if db.exists():
        ResultsStore(db, create=False).close()


def checkpoint_selection(subject: AgentUnderTest) -> str:
    """How the evaluated checkpoint was chosen, in words, for the protocol and the report."""
    if subject.checkpoint == "none":
        return "none: a baseline has no checkpoints"
    if subject.checkpoint != "best":
        return f"{subject.checkpoint}: taken as is, no selection"
    seeds = subject.validation_seeds
    if not seeds:
        return ("best: selected during training on evaluation seeds this run did not record (older run: they "
                "may be the test seeds, so its score may be optimistic)")
    where = f"validation seeds {min(seeds)}-{max(seeds)}"
    if any(s in TEST_SEEDS for s in seeds):
        return f"best: selected on seeds {min(seeds)}-{max(seeds)}, which overlap the test seeds (optimistic)"
    return f"best: highest eval/mean_return during training on {where}, disjoint from the test seeds"


def run_protocol(subject: AgentUnderTest, *, episodes: int = 20, deterministic: bool = True,
                 video_dir: Path | None = None, threads: int | None = DEFAULT_EVAL_THREADS,
                 progress: Callable[[int, int], None] | None = None) -> tuple[EvaluationRecord, list[EpisodeRecord]]:
    """Measure `subject` on the test seeds, writing nothing but the optional video.

    Sweep workers call this and send the records back to the driver, which alone writes the database.
    The video (the median-return episode) goes to `video_dir`; its absolute path is in `video_path`.
    `threads` pins torch's CPU threads (None: leave them); `progress(done, total)` follows the episodes.
    """
    if episodes < 1:
        raise EvaluationError(f"episodes must be at least 1, got {episodes}.")
    env_kwargs = subject.eval_env_kwargs
    env = make_env(subject.env_id, **env_kwargs)
    try:
        check_spaces(subject.policy, env, subject.env_id)
    except EvaluationError as err:
        raise EvaluationError(f"{err} {subject.run.run_id} was trained on {subject.run.env_id}.") from None
    finally:
        env.close()
    seeds = evaluation_seeds(episodes)
    epsilon = eval_epsilon(subject.env_id)
    records = evaluate_policy(subject.policy, subject.env_id, episodes=episodes, seeds=seeds, deterministic=deterministic,
                              env_kwargs=env_kwargs, epsilon=epsilon, threads=threads, progress=progress)
    protocol: dict[str, Any] = {"vectorization": "sync", "checkpoint_selection": checkpoint_selection(subject)}
    if epsilon > 0:
        protocol["epsilon"] = epsilon
    preprocessing = describe_env_preset(subject.env_id, subject.env_preset, "eval")
    if preprocessing is not None:
        protocol["env_preprocessing"] = preprocessing
    if subject.env_kwargs:  # e.g. a held-out demand profile: part of what was measured
        protocol["env_kwargs"] = dict(subject.env_kwargs)
    evaluation = EvaluationRecord(
        run_id=subject.run.run_id, agent=subject.run.agent, env_id=subject.env_id, checkpoint=subject.checkpoint,
        checkpoint_step=subject.checkpoint_step, deterministic=deterministic, seeds=tuple(seeds),
        protocol=protocol,
    )
    if video_dir is not None:
        median = median_episode(records)
        video_dir.mkdir(parents=True, exist_ok=True)
        name = subject.run.run_id.replace(":", "_").replace("/", "_")
        video = video_dir / f"{name}-{subject.checkpoint}-seed{median.seed}.mp4"
        record_episodes(subject.policy, subject.env_id, video, seeds=[median.seed], deterministic=deterministic,
                        env_kwargs=env_kwargs, epsilon=epsilon, threads=threads)
        evaluation = replace(evaluation, video_path=str(video.resolve()))
    return evaluation, records


def evaluate_agent(subject: AgentUnderTest, *, episodes: int = 20, deterministic: bool = True, db: Path,
                   video_dir: Path | None = None, threads: int | None = DEFAULT_EVAL_THREADS,
                   progress: Callable[[int, int], None] | None = None) -> EvaluationOutcome:
    """Run the protocol on `subject`, record its median episode if asked, store everything."""
    check_database(db)
    evaluation, records = run_protocol(subject, episodes=episodes, deterministic=deterministic, video_dir=video_dir,
                                       threads=threads, progress=progress)
    if evaluation.video_path is not None:
        evaluation = replace(evaluation, video_path=os.path.relpath(evaluation.video_path, db.resolve().parent))
    with ResultsStore(db) as store:
        store.record_run(subject.run)
        eval_id = store.record_evaluation(evaluation, records)
    evaluation = replace(evaluation, eval_id=eval_id)
    returns = np.array([r.episode_return for r in records])
    metric_names = sorted({name for r in records for name in r.metrics})
    summary: dict[str, Any] = {
        "agent": subject.run.agent, "label": subject.run.label, "env_id": subject.env_id,
        "env_kwargs": dict(subject.env_kwargs), "run_id": subject.run.run_id,
        "checkpoint": subject.checkpoint, "checkpoint_step": subject.checkpoint_step, "episodes": episodes,
        "deterministic": deterministic, "seeds": [evaluation.seeds[0], evaluation.seeds[-1]], "eval_id": eval_id, "db": str(db),
        "video": evaluation.video_path,
        **summarize_returns(returns),
        "env_metrics": {name: float(np.mean([r.metrics[name] for r in records if name in r.metrics]))
                        for name in metric_names},
        "mean_length": float(np.mean([r.length for r in records])),
    }
    return EvaluationOutcome(evaluation, records, summary)


def evaluate_run(run_dir: Path, *, checkpoint: str = "best", episodes: int = 20, deterministic: bool = True,
                 db: Path = Path("results.db"), video_dir: Path | None = None, env_id: str | None = None,
                 env_kwargs: Mapping[str, Any] | None = None, threads: int | None = DEFAULT_EVAL_THREADS,
                 progress: Callable[[int, int], None] | None = None) -> EvaluationOutcome:
    """`rlsuite evaluate RUN_DIR`: a trained run's checkpoint under the common protocol."""
    subject = load_agent(run_dir=run_dir, checkpoint=checkpoint, env_id=env_id, env_kwargs=env_kwargs)
    return evaluate_agent(subject, episodes=episodes, deterministic=deterministic, db=db, video_dir=video_dir,
                          threads=threads, progress=progress)


def evaluate_baseline(agent: str, env_id: str, *, episodes: int = 20, deterministic: bool = True,
                      db: Path = Path("results.db"), video_dir: Path | None = None, seed: int = 0,
                      env_kwargs: Mapping[str, Any] | None = None, threads: int | None = DEFAULT_EVAL_THREADS,
                      progress: Callable[[int, int], None] | None = None) -> EvaluationOutcome:
    """`rlsuite evaluate --agent random --env ENV_ID`: a baseline under the same protocol."""
    subject = load_agent(agent=agent, env_id=env_id, seed=seed, env_kwargs=env_kwargs)
    return evaluate_agent(subject, episodes=episodes, deterministic=deterministic, db=db, video_dir=video_dir,
                          threads=threads, progress=progress)


def attach_recording(db: Path, subject: AgentUnderTest, video: Path, records: Sequence[EpisodeRecord], *,
                     deterministic: bool) -> int | None:
    """Let reports show a video `rlsuite record` made: attach it to the newest evaluation of the same run,
    checkpoint, actions and env kwargs, and write `<video>.json` beside it saying which episodes it shows.

    Returns the evaluation's id, or None when the database holds no such evaluation (nothing is written
    to it then). Evaluations share seeds with recordings (the test seeds), so the caption is exact."""
    if not db.exists():
        return None
    write_sidecar(video, records, checkpoint=subject.checkpoint)
    with ResultsStore(db, create=False) as store:
        matches = [ev for ev in store.evaluations(run_id=subject.run.run_id)
                   if ev.checkpoint == subject.checkpoint and ev.deterministic == deterministic
                   and ev.env_id == subject.env_id
                   and dict(ev.protocol.get("env_kwargs") or {}) == dict(subject.env_kwargs)]
        if not matches:
            return None
        eval_id = matches[-1].eval_id
        assert eval_id is not None
        store.set_video(eval_id, os.path.relpath(video.resolve(), db.resolve().parent))
    return eval_id
