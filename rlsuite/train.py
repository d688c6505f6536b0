"""Training orchestration: wire settings, env, agent, periodic evaluation and the run folder.

Everything that can be wrong with the user's input (agent, env id, config, spaces) is checked before
the run folder is created, so bad input never leaves a folder behind that looks like a run.
"""

from __future__ import annotations

import dataclasses
import signal
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from rlsuite.agents.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta
from rlsuite.agents.fileio import is_temp_file
from rlsuite.agents.interface import TrainContext, TrainResult
from rlsuite.agents.logger import MetricLogger
from rlsuite.agents.registry import agent_module
from rlsuite.agents.run import RunError, RunFolder
from rlsuite.agents.settings import (
    ConfigError,
    TrainSettings,
    resolve_settings,
    settings_from_dict,
    settings_to_dict,
)
from rlsuite.agents.tensors import resolve_device
from rlsuite.envs import make_env
from rlsuite.envs.factory import check_env_kwargs, describe_env_preset
from rlsuite.evaluation.harness import make_eval_callback, validation_seeds
from rlsuite.progress import TrainingProgress

DEFAULT_RUNS_ROOT = Path("runs")


class _StopFlag:
    """First Ctrl-C asks the loop to finish its update and checkpoint; a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _StopFlag:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def check_label(label: str | None) -> str | None:
    """A configuration label as given (stripped), None for none, or a ConfigError saying what is allowed."""
    if label is None or not label.strip():
        return None
    label = label.strip()
    if len(label) > 80 or any(not ch.isprintable() for ch in label):
        raise ConfigError(f"--label {label!r} must be printable text of at most 80 characters, e.g. ppo-tuned.")
    return label


def prepare_settings(agent: str, env_id: str, *, config_file: Path | None = None,
                     cli_values: Mapping[str, Any] | None = None, set_args: Sequence[str] = (),
                     env_kwargs: Mapping[str, Any] | None = None) -> TrainSettings:
    """Resolved settings for `agent` on `env_id`, after checking the env and that the agent handles its spaces.

    `env_kwargs` (from `--env-kwarg key=value`, text or typed) update the preset's and config file's
    `env_kwargs`; keys the env's constructor does not take are refused with the accepted ones listed."""
    module = agent_module(agent)
    settings = resolve_settings(module.Settings, agent, env_id, config_file=config_file,
                                cli_values=cli_values or {}, set_args=set_args)
    merged = check_env_kwargs(env_id, {**settings.env_kwargs, **dict(env_kwargs or {})})
    settings = dataclasses.replace(settings, env_kwargs=merged)
    env = make_env(env_id, preset=settings.env_preset, **merged)
    try:
        module.check_spaces(env.observation_space, env.action_space)
    finally:
        env.close()
    return settings


def _rounding_note(settings: TrainSettings, steps: int) -> str:
    """Why a finished run trained `steps` env steps rather than the budget: agents train in whole updates."""
    n_steps = getattr(settings, "n_steps", None)
    unit = (f"whole rollouts of {settings.n_envs} envs x {n_steps} steps" if isinstance(n_steps, int)
            else f"whole updates, each stepping all {settings.n_envs} envs")
    direction = "up" if steps > settings.total_steps else "down"
    return (f"trained {steps} env steps, not the {settings.total_steps} asked for: the agent trains in {unit}, "
            f"so the budget was rounded {direction}.")


def run_training(agent: str, settings: TrainSettings, run: RunFolder, *, resume_from: Path | None = None,
                 console: Console | None = None, show_progress: bool = True) -> TrainResult:
    """Train inside an existing run folder and keep its manifest's status true, whatever happens."""
    module = agent_module(agent)
    console = console or Console(stderr=True)
    resume_step = None
    if resume_from is not None:
        resume_step = int(read_checkpoint_meta(resume_from)["step"])
    env_kwargs = {"preset": settings.env_preset} if settings.env_preset else {}
    env_kwargs.update(settings.env_kwargs)  # evaluate on the env the run trains on (e.g. its demand profile)
    evaluate = (make_eval_callback(settings.env_id, episodes=settings.eval_episodes, env_kwargs=env_kwargs)
                if settings.eval_every > 0 else None)
    if evaluate is not None:  # curves and `best` come from these seeds; reports measure on the test seeds
        run.update_manifest(validation_seeds=validation_seeds(settings.eval_episodes))
    progress = TrainingProgress(f"{agent} {settings.env_id}", settings.total_steps, start=resume_step or 0,
                                console=console, enabled=show_progress)

    with MetricLogger(run.path, tensorboard=settings.tensorboard, resume_step=resume_step) as logger, \
            _StopFlag() as stop, progress:
        def after_update(step: int, metrics: Mapping[str, float]) -> None:
            progress.update(step, metrics)
            run.heartbeat()  # cheap: rewrites the manifest at most every HEARTBEAT_EVERY_S seconds

        ctx = TrainContext(run=run, logger=logger, evaluate=evaluate, progress=after_update,
                           stop_requested=lambda: stop.requested, resume_from=resume_from)
        try:
            result = module.train(settings, ctx)
            progress.finish(result.final_step, done=result.status == "finished")
        except KeyboardInterrupt:
            run.set_status("interrupted", error="aborted by a second Ctrl-C before a checkpoint was written")
            raise
        except BaseException as err:
            run.set_status("failed", error=f"{type(err).__name__}: {err}")
            (run.path / "error.txt").write_text(traceback.format_exc())
            raise
    run.set_status(result.status, final_step=result.final_step)
    if result.status == "finished" and result.final_step != settings.total_steps:
        console.print(f"note: {_rounding_note(settings, result.final_step)}", highlight=False)
    return result


def train(agent: str, env_id: str, *, config_file: Path | None = None, cli_values: Mapping[str, Any] | None = None,
          set_args: Sequence[str] = (), env_kwargs: Mapping[str, Any] | None = None, run_dir: Path | None = None,
          runs_root: Path = DEFAULT_RUNS_ROOT, command: str = "", console: Console | None = None,
          show_progress: bool = True, label: str | None = None) -> tuple[RunFolder, TrainResult]:
    """`rlsuite train`: validate everything, create the run folder, train.

    `label` names the run's configuration in results and reports (manifest `label`); without one,
    reports name it by the settings that differ from the agent's preset."""
    label = check_label(label)
    settings = prepare_settings(agent, env_id, config_file=config_file, cli_values=cli_values, set_args=set_args,
                                env_kwargs=env_kwargs)
    root, name = (run_dir.parent, run_dir.name) if run_dir is not None else (runs_root, None)
    device = str(resolve_device(settings.device))
    run = RunFolder.create(root, agent=agent, env_id=env_id, seed=settings.seed, settings=settings_to_dict(settings),
                           command=command, device=device, name=name)
    if label:
        run.update_manifest(label=label)
    preprocessing = describe_env_preset(env_id, settings.env_preset)
    if preprocessing is not None:  # Atari: the preset and every setting it applies, so scores say how they were made
        run.update_manifest(env_preprocessing=preprocessing)
    return run, run_training(agent, settings, run, console=console, show_progress=show_progress)


def resume_checkpoint(run: RunFolder) -> tuple[Path, int]:
    """The newest complete checkpoint of any name (last, step_N, best) and its step: the highest step in the
    checkpoints' own metadata, `last` first on a tie; files a kill left half-written or damaged are skipped."""
    candidates: list[tuple[int, bool, Path]] = []
    damaged: list[str] = []
    for name, path in run.list_checkpoints().items():
        try:
            candidates.append((int(read_checkpoint_meta(path)["step"]), name == "last", path))
        except (CheckpointError, KeyError, TypeError, ValueError):
            damaged.append(path.name)
    for step, _, path in sorted(candidates, reverse=True):
        try:
            load_checkpoint(path)  # the whole file reads: header and tensors
        except CheckpointError:
            damaged.append(path.name)
            continue
        return path, step
    why = (f"its checkpoints are damaged ({', '.join(damaged)})" if damaged else
           "the run stopped before its first save (after checkpoint_interval_s seconds, or at an evaluation)")
    raise RunError(f"{run.path} has no complete checkpoint to resume from: {why}. Start a new run instead.")


def resume(run_dir: Path, *, total_steps: int | None = None, console: Console | None = None,
           show_progress: bool = True) -> tuple[RunFolder, TrainResult]:
    """`rlsuite train --resume RUN_DIR [--steps N]`: continue from the newest complete checkpoint with the same
    settings; `total_steps` extends a finished or interrupted run to N env steps in all (the learning-rate,
    clip and exploration schedules stretch over the new total; the manifest records the extension)."""
    run = RunFolder.open(run_dir)
    manifest = run.manifest
    module = agent_module(manifest["agent"])
    settings = settings_from_dict(module.Settings, manifest["settings"])
    checkpoint, step = resume_checkpoint(run)
    if total_steps is not None:
        if total_steps <= step:
            raise ConfigError(f"--steps {total_steps} does not extend {run_dir}: it has trained {step} steps already; "
                              f"give a larger total.")
        if total_steps != settings.total_steps:
            extended = list(manifest.get("extended") or [])
            extended.append({"at_step": step, "from_total_steps": settings.total_steps, "to_total_steps": total_steps})
            settings = dataclasses.replace(settings, total_steps=total_steps)
            settings.validate()
            run.update_manifest(settings=settings_to_dict(settings), extended=extended)
    elif manifest["status"] == "finished":
        raise RunError(f"{run_dir} already finished ({manifest.get('final_step')} steps); extend it with "
                       f"`rlsuite train --resume {run_dir} --steps N` (N > {step}), or train a new run.")
    for stale in run.checkpoints_dir.glob("*"):
        if is_temp_file(stale):  # a write a crash cut short; the checkpoint it would have replaced is intact
            stale.unlink(missing_ok=True)
    run.mark_resumed(step)
    return run, run_training(manifest["agent"], settings, run, resume_from=checkpoint, console=console,
                             show_progress=show_progress)
