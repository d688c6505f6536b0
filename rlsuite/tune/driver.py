"""The driver: runs configurations' units on a backend (the sweep's local process pool or Ray tasks) in
rung order, retries a unit whose worker died, and stores every finished unit once."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from rlsuite.agents.run import RunFolder
from rlsuite.evaluation.harness import TEST_SEED_BASE
from rlsuite.evaluation.records import EpisodeRecord, EvaluationRecord, RunRecord, TuneRunRecord
from rlsuite.evaluation.store import ResultsStore
from rlsuite.sweep import SweepSpec, machine_cores
from rlsuite.sweep import _LocalBackend as LocalBackend
from rlsuite.sweep import _RayBackend as RayBackend
from rlsuite.tune.spec import TuneSpec
from rlsuite.tune.study import _state
from rlsuite.tune.units import TuneUnit, UnitResult, UnitScore, _Config, _score

_POLL_S = 0.5


_Evaluated = tuple[EvaluationRecord, list[EpisodeRecord]]


def _recorded(db: Path) -> tuple[dict[str, dict[str, _Evaluated]], dict[str, RunRecord]]:
    """What the database already holds: run_id -> {"validation": ..., "test": ...}, and the runs by id."""
    if not db.exists():
        return {}, {}
    found: dict[str, dict[str, _Evaluated]] = {}
    with ResultsStore(db, create=False) as store:
        for evaluation in store.evaluations():
            split = "validation" if evaluation.protocol.get("split") == "validation" else "test"
            if split == "test" and evaluation.seeds[:1] != (TEST_SEED_BASE,):
                continue
            assert evaluation.eval_id is not None
            found.setdefault(evaluation.run_id, {})[split] = (evaluation, store.episodes(evaluation.eval_id))
        return found, {r.run_id: r for r in store.runs()}


def _cpu_from_manifest(run: RunRecord | None) -> float:
    if run is None or run.run_dir is None:
        return float("nan")
    try:
        return float(RunFolder.open(Path(run.run_dir)).manifest.get("tune", {}).get("cpu_seconds", float("nan")))
    except (OSError, ValueError):
        return float("nan")


class _Driver:
    """Runs configurations' units on a backend, in rung order, storing every finished unit once."""

    def __init__(self, spec: TuneSpec, study: str, store: ResultsStore, console: Console,
                 task: Callable[[TuneUnit], UnitResult]) -> None:
        self.spec, self.study, self.store, self.console, self.task = spec, study, store, console, task
        self.recorded, self.runs = _recorded(spec.db)
        self.summary_run = 0
        self.summary_reused = 0
        self.attempts: dict[str, int] = {}
        self.backend: Any = None

    def _backend(self) -> Any:
        if self.backend is None:
            spec = self.spec
            if spec.backend == "ray":
                sweep = SweepSpec(agents=(spec.agent,), envs=spec.envs, seeds=(0,), backend="ray",
                                  workers=spec.workers, ray_address=spec.ray_address,
                                  cpus_per_trial=spec.cpus_per_trial, retries=spec.retries)
                self.backend = RayBackend(sweep, task=self.task)
            else:
                workers = spec.workers or max(1, int(machine_cores() // spec.cpus_per_trial))
                self.backend = LocalBackend(workers, task=self.task)
        return self.backend

    def close(self, force: bool = False) -> None:
        if self.backend is not None:
            self.backend.close(force=force)
            self.backend = None

    def _link(self, config: _Config, unit: TuneUnit) -> TuneRunRecord:
        """The run's place in the study: stage, configuration, trial number and searched values."""
        number = None if config.trial is None else config.trial.number
        if config.stage == "confirm" and config.label.startswith("trial "):
            number = int(config.label.split()[1])
        return TuneRunRecord(self.study, config.stage, config.label, number, unit.trial.run_id, dict(config.params))

    def reuse(self, config: _Config, unit: TuneUnit) -> UnitScore | None:
        """The unit's score from the database, if an earlier call (or another trial or study with the same
        settings) finished it; the run is then linked to this study's configuration too."""
        found = self.recorded.get(unit.trial.run_id, {})
        if "validation" not in found or (unit.test and "test" not in found):
            return None
        self.store.link_tune_run(self._link(config, unit))
        test = found["test"][1] if unit.test else None
        return _score(unit, found["validation"], _cpu_from_manifest(self.runs.get(unit.trial.run_id)), test)

    def store_result(self, config: _Config, unit: TuneUnit, result: UnitResult) -> UnitScore:
        """Record the run, its evaluations and its place in the study in one transaction."""
        assert result.run is not None and result.validation is not None
        validation, episodes = result.validation
        evaluations: list[tuple[EvaluationRecord, Sequence[EpisodeRecord]]] = [(validation, episodes)]
        found: dict[str, _Evaluated] = {"validation": (validation, list(episodes))}
        if unit.test and result.test is not None:
            evaluations.append(result.test)
            found["test"] = (result.test[0], list(result.test[1]))
        self.store.record_tune_run(result.run, evaluations, self._link(config, unit))
        self.recorded[unit.trial.run_id] = found
        return _score(unit, result.validation, result.cpu_seconds, result.test[1] if result.test else None)

    def run(self, next_config: Callable[[], _Config | None], on_rung: Callable[[_Config, int], bool],
            slots_hint: int | None = None) -> bool:
        """Run configurations from `next_config` until it returns None and all are settled. After each rung,
        `on_rung(config, rung)` says whether to go on with the next rung. Returns False if interrupted."""
        active: list[_Config] = []
        queue: deque[tuple[_Config, TuneUnit]] = deque()
        inflight: dict[Any, tuple[_Config, TuneUnit]] = {}
        pending: dict[int, set[str]] = {}  # id(config) -> run ids of its current rung not yet finished
        exhausted = False

        def open_rung(config: _Config) -> None:
            """Queue the config's next rung, settling at once the units the database already holds."""
            while config.submitted_rungs < len(config.rungs):
                rung = config.submitted_rungs
                config.submitted_rungs += 1
                waiting: set[str] = set()
                for unit in config.rungs[rung]:
                    reused = self.reuse(config, unit)
                    if reused is not None:
                        config.scores[unit.trial.run_id] = reused
                        self.summary_reused += 1
                    else:
                        waiting.add(unit.trial.run_id)
                        queue.append((config, unit))
                pending[id(config)] = waiting
                if waiting:
                    return
                if not on_rung(config, rung):  # every unit reused: settle the rung now
                    config.done = True
                    return
            config.done = True

        def slots() -> int:
            return self._backend().slots if slots_hint is None else slots_hint

        try:
            while True:
                while not exhausted and len(queue) < 1 and len(inflight) < slots():
                    config = next_config()
                    if config is None:
                        exhausted = True
                        break
                    active.append(config)
                    open_rung(config)
                while queue and len(inflight) < slots():
                    config, unit = queue.popleft()
                    inflight[self._backend().submit(unit)] = (config, unit)
                if not inflight and not queue and exhausted:
                    break
                if not inflight:
                    continue
                for handle, outcome in self._backend().wait(list(inflight), timeout=_POLL_S):
                    config, unit = inflight.pop(handle)
                    result = outcome if isinstance(outcome, UnitResult) else UnitResult(
                        unit.trial.run_id, "failed", error=_describe(outcome))
                    retry_allowed = isinstance(outcome, UnitResult) or self.spec.backend == "local"
                    if result.status == "finished":
                        config.scores[unit.trial.run_id] = self.store_result(config, unit, result)
                        self.summary_run += 1
                        self.console.print(f"[green]done[/] {config.label} {unit.trial.env_id} seed "
                                           f"{unit.trial.seed}: validation return "
                                           f"{config.scores[unit.trial.run_id].validation_return:.2f}",
                                           highlight=False)
                    elif result.status == "interrupted":
                        raise KeyboardInterrupt
                    else:
                        attempts = self.attempts[unit.trial.run_id] = self.attempts.get(unit.trial.run_id, 0) + 1
                        first = (result.error or "unknown error").splitlines()[0]
                        if retry_allowed and attempts <= self.spec.retries:
                            self.console.print(f"[yellow]retry[/] {unit.trial.run_id}: {first}", highlight=False)
                            queue.appendleft((config, unit))
                            continue
                        self.console.print(f"[red]failed[/] {config.label} {unit.trial.run_id}: {first}",
                                           highlight=False)
                        self._fail(config, first, queue)
                        continue
                    waiting = pending[id(config)]
                    waiting.discard(unit.trial.run_id)
                    if not waiting and not config.done:
                        if on_rung(config, config.submitted_rungs - 1):
                            open_rung(config)
                        else:
                            config.done = True
        except KeyboardInterrupt:
            self.close(force=True)
            return False
        return True

    def _fail(self, config: _Config, error: str, queue: deque[tuple[_Config, TuneUnit]]) -> None:
        if config.done:  # another of its runs failed first
            return
        config.done = True
        for item in [q for q in queue if q[0] is config]:
            queue.remove(item)
        if config.trial is not None:
            config.trial.set_user_attr("error", error)
            config.trial.study.tell(config.trial, state=_state("FAIL"))


def _describe(error: BaseException) -> str:
    from concurrent.futures.process import BrokenProcessPool

    if isinstance(error, BrokenProcessPool):
        return "the worker process died (killed, or out of memory) while running the unit"
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"  # Ray's: a traceback, the exception last
