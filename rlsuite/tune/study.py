"""The Optuna study: its name (a hash of what defines it), journal storage, the pruner that acts on
seed rungs, the seeded sampler, and the lock that keeps one driver per study folder."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlsuite.evaluation.harness import validation_seeds
from rlsuite.tune.space import Param
from rlsuite.tune.spec import TuneError, TuneSpec, objective_direction
from rlsuite.tune.units import _base_settings

if TYPE_CHECKING:
    import optuna


def study_name(spec: TuneSpec, space: Mapping[str, Param]) -> str:
    """`<agent>-<envs>-<12 hex>`: a hash of everything that defines the study, so the same command finds
    (and resumes) the same study and a changed one starts a new study."""
    bases = {env: _base_settings(spec, env) for env in spec.envs}
    text = json.dumps({"agent": spec.agent, "envs": spec.envs, "seeds": spec.seeds, "objectives": spec.objectives,
                       "pruner": spec.pruner, "episodes": spec.episodes, "sampler_seed": spec.sampler_seed,
                       "validation_seeds": validation_seeds(1), "bases": bases,
                       "space": [dataclasses.asdict(p) for p in space.values()]},
                      sort_keys=True, separators=(",", ":"), default=str)
    envs = "+".join(env.replace("/", "_") for env in spec.envs)
    return f"{spec.agent}-{envs}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


@contextlib.contextmanager
def _study_lock(out: Path) -> Iterator[None]:
    """One driver per study folder: a second one would resume the first one's running trials."""
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    with (out / "study.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TuneError(f"another `rlsuite tune` is driving the study in {out}; wait for it to finish, or "
                            "give this one another --out.") from None
        yield


def _open_study(spec: TuneSpec, name: str) -> optuna.Study:
    try:
        import optuna
    except ImportError:
        raise TuneError("rlsuite tune needs Optuna: pip install 'rlsuite[tune]' (or pip install optuna).") from None
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(spec.out / "study.journal")))
    pruner: optuna.pruners.BasePruner
    if spec.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    elif spec.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    else:
        pruner = optuna.pruners.NopPruner()
    study = optuna.create_study(study_name=name, storage=storage, pruner=pruner,
                                directions=[objective_direction(o) for o in spec.objectives], load_if_exists=True)
    # Seeded by the trials already asked: a fresh study proposes the same configurations for the same
    # command, and a resumed one does not propose its first ones again.
    study.sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed + len(study.trials),
                                               n_startup_trials=min(5, spec.trials))
    return study


def _state(name: str) -> Any:
    import optuna

    return getattr(optuna.trial.TrialState, name)
