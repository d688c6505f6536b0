"""`rlsuite sweep`: a grid of agents x envs x seeds, on a local process pool or a Ray cluster.

Every trial trains one agent on one env with one seed (baselines are only evaluated), evaluates it
with the harness's fixed seeds, and sends the records back to the driver: the driver alone writes the
SQLite database, one transaction per trial, so workers on other machines need no shared file system
for results. Run folders go under `--out`, which on a cluster must be shared storage.

A trial is identified by its key: a hash of the agent, env, seed, resolved settings (which hold the
step budget) and evaluation protocol. The run id carries the key, so re-running a sweep skips every
trial already evaluated in the database (resume after the driver died), and changing a setting makes
new trials instead of mixing results. A trial that raises is retried, then recorded as failed with its
error; the grid goes on. A worker that dies (killed, out of memory) costs its trial an attempt, and the
next attempt resumes the trial from the newest checkpoint in its own run folder rather than from scratch.

Both backends run the same function, `run_trial`, in a fresh worker process with one torch thread,
so a trial gives the same evaluation results on either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from rlsuite.agents.checkpoint import CheckpointError
from rlsuite.agents.registry import agent_module, get_spec, make_baseline
from rlsuite.agents.run import RunError, RunFolder, collect_versions, git_commit, process_gone
from rlsuite.agents.settings import select_block, settings_from_dict, settings_to_dict
from rlsuite.agents.tensors import resolve_device
from rlsuite.envs import make_env
from rlsuite.envs.catalog import unavailable_reason
from rlsuite.evaluation.evaluate import load_agent, run_protocol
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord
from rlsuite.evaluation.report import ReportError, write_report
from rlsuite.evaluation.store import DEFAULT_DB, ResultsStore
from rlsuite.train import check_label, prepare_settings, resume, run_training

__all__ = ["BACKENDS", "SweepError", "SweepSpec", "SweepSummary", "Trial", "TrialResult", "load_sweep_file",
           "parse_seeds", "plan_trials", "run_sweep", "run_trial", "train_trial"]

BACKENDS = ("local", "ray")
DEFAULT_OUT = Path("sweep")
_POLL_S = 0.5
"""How often the driver wakes to refresh the live view while no trial finishes."""


class SweepError(ValueError):
    """A user-facing problem with a sweep's definition; the message says what to change."""


# ---------------------------------------------------------------------------------------------------
# What the user asks for


@dataclass(frozen=True)
class SweepSpec:
    """One sweep: the grid, how each trial is trained and evaluated, and where it runs."""

    agents: tuple[str, ...]
    """Agent names (`rlsuite list agents`); baselines are evaluated only."""
    envs: tuple[str, ...]
    """Env ids."""
    seeds: tuple[int, ...]
    """Training seeds; each (agent, env, seed) is one trial."""
    steps: int | None = None
    """Training steps for every trainable agent (None: each preset's total_steps)."""
    config_file: Path | None = None
    """A settings YAML (flat, or default + per-env blocks) applied to every trainable agent."""
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-agent settings (flat, or default + per-env blocks), above config_file."""
    set_args: tuple[str, ...] = ()
    """`key=value` overrides for every trainable agent, applied last."""
    episodes: int = 20
    """Evaluation episodes per trial, one fixed seed each (the harness's seeds)."""
    checkpoint: str = "best"
    """Checkpoint evaluated: best (falls back to last when the run never evaluated) or last."""
    deterministic: bool = True
    """Greedy (True) or sampled actions in the evaluation."""
    videos: bool = False
    """Record each trial's median-return evaluation episode as MP4 in its run folder."""
    backend: Literal["local", "ray"] = "local"
    """local: a process pool on this machine; ray: Ray tasks on a cluster (or a local Ray)."""
    workers: int | None = None
    """Trials at once (None: the machine's cores, or the Ray cluster's CPUs, / cpus_per_trial)."""
    ray_address: str | None = None
    """Address of a running Ray cluster (host:port or ray://host:10001); None starts a local Ray."""
    cpus_per_trial: float = 1.0
    """CPUs Ray reserves for each trial (and the local pool divides the cores by)."""
    gpus_per_trial: float = 0.0
    """GPUs Ray reserves for each trial (set device=cuda in the settings to use them)."""
    retries: int = 2
    """Extra attempts for a trial that fails or whose worker dies, before it is recorded as failed."""
    db: Path = DEFAULT_DB
    """The results database the driver writes."""
    out: Path = DEFAULT_OUT
    """Sweep folder: run folders in out/runs (shared storage on a cluster), the report in out/report."""
    report: bool = True
    """Write out/report/report.html when the grid is done."""
    label: str | None = None
    """Name of the trained configuration in results and reports (with several trainable agents, `<label>-<agent>`);
    None: the agent plus the settings that differ from its preset."""

    def validate(self) -> None:
        for name in ("agents", "envs", "seeds"):
            if not getattr(self, name):
                raise SweepError(f"a sweep needs at least one of {name}: e.g. --agents ppo,random --envs CartPole-v1 "
                                 f"--seeds 0-4 (or `{name}:` in the sweep file).")
        for name in ("agents", "envs", "seeds"):
            values = list(getattr(self, name))
            if len(set(values)) != len(values):
                raise SweepError(f"{name} repeat: {values}; name each one once.")
        if any(s < 0 for s in self.seeds):
            raise SweepError(f"seeds must be >= 0 (Gymnasium's rule), got {list(self.seeds)}.")
        if self.backend not in BACKENDS:
            raise SweepError(f"unknown backend {self.backend!r}; accepted: {', '.join(BACKENDS)}.")
        if self.steps is not None and self.steps < 1:
            raise SweepError(f"--steps must be >= 1, got {self.steps}.")
        if self.episodes < 1:
            raise SweepError(f"--episodes must be >= 1, got {self.episodes}.")
        if self.workers is not None and self.workers < 1:
            raise SweepError(f"--workers must be >= 1, got {self.workers}.")
        if self.retries < 0:
            raise SweepError(f"--retries must be >= 0, got {self.retries}.")
        if self.cpus_per_trial <= 0 or self.gpus_per_trial < 0:
            raise SweepError(f"cpus_per_trial must be > 0 and gpus_per_trial >= 0, got {self.cpus_per_trial} "
                             f"and {self.gpus_per_trial}.")
        if self.checkpoint not in ("best", "last"):
            raise SweepError(f"checkpoint must be best or last, got {self.checkpoint!r}.")
        unknown = sorted(set(self.settings) - set(self.agents))
        if unknown:
            raise SweepError(f"settings are given for {', '.join(unknown)}, which the sweep does not run; "
                             f"agents in this sweep: {', '.join(self.agents)}.")


_SEED_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(text: str | int | Sequence[int | str]) -> tuple[int, ...]:
    """`0-4` -> (0, 1, 2, 3, 4); `0,3,7` and `0-2,9` work too; a list of ints passes through."""
    if isinstance(text, bool):
        raise SweepError(f"seeds must be integers or ranges like 0-4, got {text!r}.")
    if isinstance(text, int):
        parts: list[str] = [str(text)]
    elif isinstance(text, str):
        parts = text.split(",")
    else:
        parts = [str(p) for p in text]
    seeds: list[int] = []
    for part in parts:
        match = _SEED_PART.match(part)
        if match is None:
            raise SweepError(f"cannot read seeds {text!r}: use a range like 0-4, a list like 0,3,7, or both: 0-2,9.")
        first, last = int(match.group(1)), int(match.group(2) or match.group(1))
        if last < first:
            raise SweepError(f"seed range {part.strip()!r} runs backwards; write it low-high, e.g. {last}-{first}.")
        seeds.extend(range(first, last + 1))
    return tuple(seeds)


def _names(value: Any, what: str) -> tuple[str, ...]:
    """A comma-separated string or a list of strings -> a tuple of names."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, list | tuple):
        items = [str(v).strip() for v in value]
    else:
        raise SweepError(f"{what} must be a list or a comma-separated string, got {value!r}.")
    return tuple(item for item in items if item)


_FILE_KEYS = ({f.name for f in dataclasses.fields(SweepSpec)} - {"config_file"}) | {"config"}
_SCALARS: dict[str, tuple[type, ...]] = {
    "steps": (int, type(None)), "episodes": (int,), "workers": (int, type(None)), "retries": (int,),
    "cpus_per_trial": (int, float), "gpus_per_trial": (int, float), "deterministic": (bool,),
    "videos": (bool,), "report": (bool,), "backend": (str,), "ray_address": (str, type(None)),
    "checkpoint": (str,), "label": (str, type(None)),
}
"""The sweep file's plain keys and the YAML types each accepts."""


def read_spec_file(path: Path, kind: str, accepted: set[str], examples: str,
                   error: type[SweepError] = SweepError) -> dict[str, Any]:
    """The raw mapping of a sweep or tuning YAML file (`kind` names it in messages), refused with `error`
    when unreadable, not a mapping, or holding keys outside `accepted`."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise error(f"cannot read the {kind} file {path}: {err}.") from None
    except yaml.YAMLError as err:
        raise error(f"the {kind} file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise error(f"the {kind} file {path} must be a mapping of keys such as {examples}.")
    unknown = sorted(set(raw) - accepted)
    if unknown:
        raise error(f"the {kind} file {path} has unknown keys {', '.join(unknown)}; accepted: "
                    f"{', '.join(sorted(accepted))}.")
    return raw


def load_sweep_file(path: Path) -> dict[str, Any]:
    """The fields a sweep YAML file sets, typed like SweepSpec's (paths relative to the file)."""
    raw = read_spec_file(path, "sweep", _FILE_KEYS, "agents, envs, seeds")
    base = Path(path).parent
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("agents", "envs"):
            values[key] = _names(value, key)
        elif key == "seeds":
            values[key] = parse_seeds(value)
        elif key == "set_args":
            values[key] = tuple(value) if isinstance(value, list) else _names(value, key)
        elif key in ("config", "db", "out"):
            if value is not None:
                values["config_file" if key == "config" else key] = base / Path(str(value))
        elif key == "settings":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise SweepError(f"`settings` in {path} maps each agent name to its settings, e.g. "
                                 "settings: {ppo: {default: {n_envs: 4}, CartPole-v1: {learning_rate: 0.001}}}.")
            values[key] = value
        else:
            accepted = _SCALARS[key]
            if not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted):
                names = " or ".join("null" if t is type(None) else t.__name__ for t in accepted)
                raise SweepError(f"`{key}` in {path} must be {names}, got {value!r}.")
            values[key] = value
    return values


# ---------------------------------------------------------------------------------------------------
# Trials


@dataclass(frozen=True)
class Trial:
    """One cell of the grid, with everything a worker needs (plain data: it travels to other machines)."""

    agent: str
    env_id: str
    seed: int
    key: str
    """Hash of agent, env, seed, resolved settings and evaluation protocol."""
    run_id: str
    """`<agent>-<env>-s<seed>-<key>`: the run folder's name and the database's run id."""
    settings: dict[str, Any]
    """Resolved settings (settings_to_dict); empty for baselines."""
    command: str
    """The command that reproduces the trial's run on its own."""
    runs_root: str
    """Absolute folder the run folder goes into."""
    episodes: int
    checkpoint: str
    deterministic: bool
    videos: bool
    label: str | None = None
    """The configuration's name in results and reports (manifest `label`); None for baselines and unnamed runs."""
    unavailable: str = ""
    """Why the trial cannot run here (its env's optional dependency is missing); recorded as failed."""

    @property
    def trainable(self) -> bool:
        return bool(self.settings)


def trial_key(agent: str, env_id: str, seed: int, settings: Mapping[str, Any], evaluation: Mapping[str, Any]) -> str:
    """12 hex digits of SHA-256 over the trial's definition, written as canonical JSON."""
    text = json.dumps({"agent": agent, "env_id": env_id, "seed": seed, "settings": dict(settings),
                       "evaluation": dict(evaluation)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _run_id(agent: str, env_id: str, seed: int, key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{agent}-{env_id.replace('/', '_')}-s{seed}-{key}")


def plan_trials(spec: SweepSpec) -> list[Trial]:
    """The grid's trials in agent, env, seed order; every user error is raised here, before any work."""
    spec.validate()
    runs_root = str((spec.out / "runs").resolve())
    evaluation = {"episodes": spec.episodes, "checkpoint": spec.checkpoint, "deterministic": spec.deterministic}
    label = check_label(spec.label)
    n_trainable = sum(1 for agent in spec.agents if get_spec(agent).trainable)
    trials: list[Trial] = []
    for agent in spec.agents:
        trainable = get_spec(agent).trainable
        agent_label = None if not (trainable and label) else label if n_trainable == 1 else f"{label}-{agent}"
        for env_id in spec.envs:
            first = None
            unavailable = unavailable_reason(env_id) or ""
            if unavailable:  # recorded as a failed trial with the install command; the grid goes on
                pass
            elif trainable:
                block = select_block(spec.settings.get(agent, {}), env_id, f"settings of {agent} in the sweep")
                cli_values = {**block, "total_steps": spec.steps, "seed": spec.seeds[0]}
                first = prepare_settings(agent, env_id, config_file=spec.config_file, cli_values=cli_values,
                                         set_args=spec.set_args)
            else:
                env = make_env(env_id)
                try:
                    make_baseline(agent, env)  # a controller for another family of envs fails here
                finally:
                    env.close()
            for seed in spec.seeds:
                settings = settings_to_dict(dataclasses.replace(first, seed=seed)) if first is not None else {}
                key = trial_key(agent, env_id, seed, settings,
                                {**evaluation, **({"label": agent_label} if agent_label else {})})
                run_id = _run_id(agent, env_id, seed, key)
                if trainable:
                    args = ["rlsuite", "train", "--agent", agent, "--env", env_id, "--run-dir",
                            str(Path(runs_root) / run_id)]
                    args += [a for k, v in settings.items() if k != "env_id" for a in ("--set", f"{k}={_cli(v)}")]
                    args += ["--label", agent_label] if agent_label else []
                else:
                    args = ["rlsuite", "evaluate", "--agent", agent, "--env", env_id,
                            "--episodes", str(spec.episodes)]
                trials.append(Trial(agent, env_id, seed, key, run_id, settings, shlex.join(args), runs_root,
                                    spec.episodes, spec.checkpoint, spec.deterministic, spec.videos, agent_label,
                                    unavailable))
    return trials


def _cli(value: Any) -> str:
    """A settings value as `--set` reads it back (lists as comma-separated, None as none)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(_cli(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class TrialResult:
    """What a worker sends back: the records for the driver to store, or why the trial did not finish."""

    run_id: str
    status: Literal["finished", "failed", "interrupted"]
    run: RunRecord | None = None
    evaluation: EvaluationRecord | None = None
    episodes: tuple[EpisodeRecord, ...] = ()
    error: str | None = None
    host: str = ""
    seconds: float = 0.0


def train_trial(trial: Trial) -> tuple[Path, str]:
    """Train the trial's run folder and return it and the status: reuse a folder an earlier attempt finished,
    resume one whose attempt died after a checkpoint (from that checkpoint), else train from scratch."""
    module = agent_module(trial.agent)
    settings = settings_from_dict(module.Settings, trial.settings)
    path = Path(trial.runs_root) / trial.run_id
    quiet = Console(file=io.StringIO())
    if path.exists():
        folder: RunFolder | None = None
        manifest: dict[str, Any] = {}
        try:
            folder = RunFolder.open(path)
            manifest = folder.manifest
        except RunError:
            folder = None
        if manifest.get("sweep", {}).get("trial_key") == trial.key:
            same = manifest["settings"] == trial.settings
            if manifest["status"] == "finished" and same:
                return path, "finished"  # trained before the driver died: only the evaluation is missing
            if same and folder is not None and folder.list_checkpoints():
                status = _resume_trial(folder, manifest, quiet)
                if status is not None:
                    return path, status
            shutil.rmtree(path)  # nothing to resume from: start over
    run = RunFolder.create(path.parent, agent=trial.agent, env_id=trial.env_id, seed=trial.seed,
                           settings=trial.settings, command=trial.command,
                           device=str(resolve_device(settings.device)), name=trial.run_id)
    run.update_manifest(sweep={"trial_key": trial.key, "host": socket.gethostname(), "pid": os.getpid()},
                        **({"label": trial.label} if trial.label else {}))
    result = run_training(trial.agent, settings, run, console=quiet, show_progress=False)
    return path, result.status


_PREVIOUS_ATTEMPT_WAIT_S = 60.0
"""How long a retry waits for the worker of the attempt before it to exit (a broken pool ends its workers)."""


def _resume_trial(folder: RunFolder, manifest: Mapping[str, Any], console: Console) -> str | None:
    """Continue an earlier attempt's run from its newest checkpoint (`rlsuite train --resume`); None when
    there is nothing it can resume from, so the caller starts over."""
    process = manifest.get("process")
    if isinstance(process, Mapping) and process.get("pid") != os.getpid():
        deadline = time.monotonic() + _PREVIOUS_ATTEMPT_WAIT_S
        while process_gone(process) is False:  # the same machine: wait until that worker is gone
            if time.monotonic() > deadline:
                raise SweepError(f"the previous attempt of {folder.path.name} (process {process.get('pid')}) is "
                                 f"still running after {_PREVIOUS_ATTEMPT_WAIT_S:.0f} s; stop it and re-run the sweep.")
            time.sleep(0.2)
    folder.update_manifest(sweep={**manifest["sweep"], "host": socket.gethostname(), "pid": os.getpid()})
    try:
        _, result = resume(folder.path, console=console, show_progress=False)
    except (RunError, CheckpointError):  # no checkpoint resume can use, or a damaged one
        return None
    return result.status


def prepare_worker(seed: int) -> None:
    """Same state in every worker, whatever ran there before: one torch thread, and the global generators
    seeded from the trial (agents seed their own; this covers anything that draws before they do)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def run_trial(trial: Trial) -> TrialResult:
    """Train (unless a baseline) and evaluate one trial in this process; never writes the database."""

    prepare_worker(trial.seed)
    start = time.monotonic()
    host = socket.gethostname()
    try:
        if trial.trainable:
            path, status = train_trial(trial)
            if status != "finished":
                return TrialResult(trial.run_id, "interrupted", host=host, seconds=time.monotonic() - start)
            subject = load_agent(run_dir=path, checkpoint=trial.checkpoint)
            video_dir = path / "videos"
        else:
            subject = load_agent(agent=trial.agent, env_id=trial.env_id, seed=trial.seed)
            run = dataclasses.replace(subject.run, run_id=trial.run_id, seed=trial.seed, command=trial.command)
            subject = dataclasses.replace(subject, run=run)
            video_dir = Path(trial.runs_root) / trial.run_id / "videos"
        evaluation, episodes = run_protocol(subject, episodes=trial.episodes, deterministic=trial.deterministic,
                                            video_dir=video_dir if trial.videos else None)
        return TrialResult(trial.run_id, "finished", subject.run, evaluation, tuple(episodes), host=host,
                           seconds=time.monotonic() - start)
    except Exception as err:  # the driver retries it, then records the error; KeyboardInterrupt passes
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        return TrialResult(trial.run_id, "failed", error=f"{detail} (on {host})\n{traceback.format_exc()}",
                           host=host, seconds=time.monotonic() - start)


# ---------------------------------------------------------------------------------------------------
# Backends


class _Backend(Protocol):
    slots: int

    def submit(self, trial: Trial) -> Any: ...

    def wait(self, handles: Sequence[Any], timeout: float) -> list[tuple[Any, TrialResult | BaseException]]: ...

    def interrupt(self, handles: Sequence[Any]) -> None: ...

    def close(self, force: bool = False) -> None: ...


def _watch_parent(parent: int) -> None:
    """End this worker when the driver is gone (SIGKILLed drivers cannot take their pool with them)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _init_local_worker(parent: int) -> None:
    """Own process group (the terminal's Ctrl-C reaches only the driver, which stops workers once),
    SIGINT ignored outside training (training's own handler finishes the update and checkpoints),
    one torch thread, and exit when the driver dies."""
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def machine_cores() -> int:
    """Cores this process may use (the CPU affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class _LocalBackend:
    """A spawn-context process pool; a dead worker breaks the pool, which is rebuilt for the next trials.

    `task` is what a worker runs on each submitted item: `run_trial` for sweeps (rlsuite/tune/ hands
    its own unit runner); a top-level function, so spawned workers can import it."""

    def __init__(self, workers: int, task: Callable[[Any], Any] = run_trial) -> None:
        self.slots = workers
        self._task = task
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=self.slots, mp_context=get_context("spawn"),
                                                 initializer=_init_local_worker, initargs=(os.getpid(),))
        return self._executor

    def submit(self, trial: Trial) -> Future[TrialResult]:
        return self._pool().submit(self._task, trial)

    def wait(self, handles: Sequence[Any], timeout: float) -> list[tuple[Any, TrialResult | BaseException]]:
        done, _ = wait_futures(handles, timeout=timeout, return_when=FIRST_COMPLETED)
        results: list[tuple[Any, TrialResult | BaseException]] = []
        for future in done:
            error = future.exception()
            if isinstance(error, BrokenProcessPool) and self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None  # the next submit builds a fresh pool
            results.append((future, error if error is not None else future.result()))
        return results

    def _pids(self) -> list[int]:
        # ProcessPoolExecutor keeps no public list of its workers before Python 3.14.
        return list(getattr(self._executor, "_processes", None) or {})

    def interrupt(self, handles: Sequence[Any]) -> None:
        for pid in self._pids():
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def close(self, force: bool = False) -> None:
        if self._executor is None:
            return
        if force:
            for pid in self._pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._executor.shutdown(wait=not force, cancel_futures=True)
        self._executor = None


class _RayBackend:
    """Ray tasks with per-trial resources; Ray re-runs a task whose worker or node died (max_retries)."""

    def __init__(self, spec: SweepSpec, task: Callable[[Any], Any] = run_trial) -> None:
        try:
            import ray
        except ImportError:
            raise SweepError("the ray backend needs Ray: pip install 'rlsuite[ray]' (or pip install 'ray[default]'), "
                             "or use --backend local.") from None
        self._ray = ray
        self._owns_connection = not ray.is_initialized()
        if self._owns_connection:
            try:
                if spec.ray_address is None:  # a local Ray instance for this sweep, stopped at the end
                    ray.init(include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=spec.ray_address, log_to_driver=False)
            except ConnectionError as err:
                raise SweepError(f"cannot reach the Ray cluster at {spec.ray_address}: {err}; start it with "
                                 "`ray start --head` (see docs/sweep.md) or leave out --ray-address for a local "
                                 "Ray.") from None
        # Exceptions inside a trial come back as failed results (the driver retries them); max_retries
        # covers what the trial cannot report itself: its worker process or node dying.
        self._task = ray.remote(task).options(num_cpus=spec.cpus_per_trial, num_gpus=spec.gpus_per_trial,
                                                   max_retries=spec.retries, retry_exceptions=False)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.slots = spec.workers or max(1, int(cpus // spec.cpus_per_trial))

    def submit(self, trial: Trial) -> Any:
        return self._task.remote(trial)

    def wait(self, handles: Sequence[Any], timeout: float) -> list[tuple[Any, TrialResult | BaseException]]:
        ready, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        results: list[tuple[Any, TrialResult | BaseException]] = []
        for ref in ready:
            try:
                results.append((ref, self._ray.get(ref)))
            except self._ray.exceptions.RayError as err:
                results.append((ref, err))
        return results

    def interrupt(self, handles: Sequence[Any]) -> None:
        for ref in handles:
            self._ray.cancel(ref)

    def close(self, force: bool = False) -> None:
        if self._owns_connection:
            self._ray.shutdown()


# ---------------------------------------------------------------------------------------------------
# The driver


@dataclass
class SweepSummary:
    """How a sweep ended; `failures` maps run ids to their errors."""

    total: int
    skipped: int = 0
    finished: int = 0
    failed: int = 0
    interrupted: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    report: Path | None = None
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.skipped + self.finished == self.total


def _finished_run_ids(db: Path) -> set[str]:
    """Run ids with an evaluation in the database: their trials are done."""
    if not db.exists():
        return set()
    with ResultsStore(db, create=False) as store:
        return {evaluation.run_id for evaluation in store.evaluations()}


def _failed_record(trial: Trial, error: str) -> RunRecord:
    """The record of a trial that ran out of attempts: `crashed` when its training process died last (its run
    folder keeps the checkpoints a re-run resumes from), else `failed`."""
    commit, _ = git_commit()
    run_dir = str(Path(trial.runs_root) / trial.run_id) if trial.trainable else None
    status = "failed"
    if run_dir is not None and Path(run_dir).is_dir():
        try:
            status = "crashed" if RunFolder.open(Path(run_dir)).effective_status() == "crashed" else "failed"
        except RunError:
            pass
    return RunRecord(run_id=trial.run_id, agent=trial.agent, env_id=trial.env_id, seed=trial.seed, status=status,
                     run_dir=run_dir, command=trial.command, config=trial.settings, versions=collect_versions(),
                     git_commit=commit, error=error)


class _LiveView:
    """One progress bar for the grid: done of total, running, failed, skipped, elapsed and ETA."""

    def __init__(self, console: Console, total: int, skipped: int, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}  failed {task.fields[failed]}  "
                       "skipped {task.fields[skipped]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, disable=not enabled,
        )
        self.task = self.progress.add_task("sweep", total=total, running=0, failed=0, skipped=skipped)

    def update(self, **fields: Any) -> None:
        self.progress.update(self.task, **fields)


def _describe(error: BaseException) -> str:
    if isinstance(error, BrokenProcessPool):
        return "the worker process died (killed, or out of memory) while running the trial"
    return f"{type(error).__name__}: {error}"


def run_sweep(spec: SweepSpec, *, console: Console | None = None, show_progress: bool = True) -> SweepSummary:
    """Run every trial of `spec` not yet in the database; write the report when the grid is complete.

    Ctrl-C stops scheduling and asks running trials to stop (a training finishes its update and
    checkpoints); what finished is recorded and the rest runs on the next call. A second Ctrl-C kills
    the workers at once and raises KeyboardInterrupt.
    """
    console = console or Console(stderr=True)
    started = time.monotonic()
    trials = plan_trials(spec)
    done_ids = _finished_run_ids(spec.db)
    todo = deque(t for t in trials if t.run_id not in done_ids)
    summary = SweepSummary(total=len(trials), skipped=len(trials) - len(todo))
    blocked = [t for t in todo if t.unavailable]
    if blocked:
        with ResultsStore(spec.db) as store:
            for trial in blocked:
                store.record_run(_failed_record(trial, trial.unavailable))
                summary.failed += 1
                summary.failures[trial.run_id] = trial.unavailable
                console.print(f"[red]failed[/] {trial.run_id}: {escape(trial.unavailable)}", highlight=False)
        todo = deque(t for t in todo if not t.unavailable)
    if todo:
        _run_grid(spec, todo, summary, console, show_progress)
    if spec.report and summary.finished + summary.skipped > 0 and summary.interrupted == 0:
        # Filtered by env only: an agent whose every trial failed has no evaluation, yet its failed runs
        # belong in the report's list of failures.
        with ResultsStore(spec.db, create=False) as store:
            evaluated = {e.env_id for e in store.evaluations()}
        try:
            summary.report = write_report(spec.db, spec.out / "report",
                                          envs=[env for env in spec.envs if env in evaluated])
        except ReportError as err:
            console.print(f"[yellow]no report:[/] {err}")
    summary.seconds = time.monotonic() - started
    return summary


def _run_grid(spec: SweepSpec, todo: deque[Trial], summary: SweepSummary, console: Console,
              show_progress: bool) -> None:
    (spec.out / "runs").mkdir(parents=True, exist_ok=True)
    backend: _Backend
    if spec.backend == "ray":
        backend = _RayBackend(spec)
    else:
        workers = spec.workers or max(1, int(machine_cores() // spec.cpus_per_trial))
        backend = _LocalBackend(min(workers, len(todo)))
    crash_retried_by_driver = spec.backend == "local"
    attempts: dict[str, int] = {}
    inflight: dict[Any, Trial] = {}
    stopping = False
    view = _LiveView(console, len(todo), summary.skipped, show_progress)
    try:
        with ResultsStore(spec.db) as store, view.progress:
            while todo or inflight:
                try:
                    while todo and len(inflight) < backend.slots and not stopping:
                        trial = todo.popleft()
                        inflight[backend.submit(trial)] = trial
                    view.update(running=len(inflight))
                    for handle, outcome in backend.wait(list(inflight), timeout=_POLL_S):
                        trial = inflight.pop(handle)
                        if isinstance(outcome, TrialResult):
                            result, retry = outcome, outcome.status == "failed"
                        else:  # the worker died, or Ray gave up on the task or cancelled it
                            # While stopping, a worker may die of the stop signal itself (a local one
                            # still starting up, a cancelled Ray task): not the trial's failure.
                            cancelled = stopping or type(outcome).__name__ == "TaskCancelledError"
                            result = TrialResult(trial.run_id, "interrupted" if cancelled else "failed",
                                                 error=_describe(outcome))
                            retry = crash_retried_by_driver
                        _settle(trial, result, retry and not stopping, spec, store, attempts, todo, summary, console)
                        view.update(completed=summary.finished + summary.failed, failed=summary.failed)
                except KeyboardInterrupt:
                    if stopping:
                        raise
                    stopping = True
                    summary.interrupted += len(todo)
                    todo.clear()
                    console.print("[yellow]stopping:[/] running trials finish their update and stop; "
                                  "Ctrl-C again to kill them. Re-run the same sweep to finish the grid.")
                    backend.interrupt(list(inflight))
    except BaseException:
        backend.close(force=True)
        raise
    backend.close()


def _settle(trial: Trial, result: TrialResult, may_retry: bool, spec: SweepSpec, store: ResultsStore,
            attempts: dict[str, int], todo: deque[Trial], summary: SweepSummary, console: Console) -> None:
    """Store a finished trial; retry or record a failed one; count an interrupted one."""
    if result.status == "finished":
        assert result.run is not None and result.evaluation is not None
        evaluation = result.evaluation
        if evaluation.video_path is not None:
            relative = os.path.relpath(evaluation.video_path, spec.db.resolve().parent)
            evaluation = dataclasses.replace(evaluation, video_path=relative)
        store.record_run_with_evaluation(result.run, evaluation, result.episodes)
        summary.finished += 1
        mean = sum(e.episode_return for e in result.episodes) / len(result.episodes)
        console.print(f"[green]done[/] {trial.run_id}: mean return {mean:.2f} ({result.seconds:.0f} s on "
                      f"{result.host})", highlight=False)
        return
    if result.status == "interrupted":
        summary.interrupted += 1
        return
    attempts[trial.key] = attempts.get(trial.key, 0) + 1
    first_line = (result.error or "unknown error").splitlines()[0]
    if may_retry and attempts[trial.key] <= spec.retries:
        console.print(f"[yellow]retry[/] {trial.run_id} (attempt {attempts[trial.key] + 1} of {spec.retries + 1}): "
                      f"{first_line}", highlight=False)
        todo.appendleft(trial)
        return
    record = _failed_record(trial, first_line)
    store.record_run(record)
    if record.status == "crashed":
        first_line += "; re-run the sweep to resume it from its newest checkpoint"
    summary.failed += 1
    summary.failures[trial.run_id] = first_line
    console.print(f"[red]{record.status}[/] {trial.run_id}: {first_line}", highlight=False)
