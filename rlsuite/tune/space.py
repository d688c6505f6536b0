"""Search spaces as data (rlsuite/search_spaces/<agent>.yaml, RL Zoo's ranges), checked against the
agent's typed settings, and how a trial draws from one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlsuite.agents.registry import agent_module
from rlsuite.agents.settings import ConfigError, coerce_field, load_yaml_mapping
from rlsuite.tune.spec import TuneError

if TYPE_CHECKING:
    import optuna


SEARCH_SPACE_DIR = Path(__file__).parent.parent / "search_spaces"


@dataclass(frozen=True)
class Param:
    """One searched setting: a float or int range (optionally log-scaled) or a list of choices."""

    name: str
    """The settings field it sets."""
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    """Sample integers in [low, high] (the field is an int)."""
    choices: tuple[Any, ...] = ()
    one_minus: bool = False
    """Sample 1 - value in [low, high] (log-scaled): how RL Zoo searches gamma and gae_lambda near 1."""

    @property
    def optuna_name(self) -> str:
        return f"one_minus_{self.name}" if self.one_minus else self.name


def _choice_key(value: Any) -> Any:
    """Optuna stores None, bool, int, float and str choices; a list (hidden sizes) travels as '64,64'."""
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return value


def _parse_param(settings_cls: type, name: str, raw: Any, source: str) -> Param:
    if not isinstance(raw, Mapping):
        raise TuneError(f"{source}: `{name}` must be a mapping such as {{low: 1.0e-5, high: 1.0e-2, log: true}} or "
                        f"{{choices: [1, 5, 10]}}, got {raw!r}.")
    unknown = sorted(set(raw) - {"low", "high", "log", "choices", "one_minus"})
    if unknown:
        raise TuneError(f"{source}: `{name}` has unknown keys {', '.join(unknown)}; accepted: low, high, log, "
                        "choices, one_minus.")
    try:
        if "choices" in raw:
            choices = raw["choices"]
            if not isinstance(choices, list) or not choices:
                raise TuneError(f"{source}: `{name}.choices` must be a non-empty list, got {choices!r}.")
            for choice in choices:  # each one must be a valid value of the field
                coerce_field(settings_cls, name, _choice_key(choice) if isinstance(choice, list) else choice)
            return Param(name, choices=tuple(_choice_key(c) for c in choices))
        low, high = raw.get("low"), raw.get("high")
        if not isinstance(low, int | float) or not isinstance(high, int | float) or isinstance(low, bool) \
                or not low < high:
            raise TuneError(f"{source}: `{name}` needs numbers low < high, got low={low!r}, high={high!r}.")
        one_minus = bool(raw.get("one_minus", False))
        probe_low, probe_high = (1 - high, 1 - low) if one_minus else (low, high)
        integer = isinstance(coerce_field(settings_cls, name, probe_low), int) and not one_minus
        if integer and not (isinstance(low, int) and isinstance(high, int)):
            raise TuneError(f"{source}: `{name}` is an integer setting; give integer low and high.")
        coerce_field(settings_cls, name, probe_high)
        log = bool(raw.get("log", False))
        if log and low <= 0:
            raise TuneError(f"{source}: `{name}` is log-scaled, so low must be > 0, got {low}.")
        return Param(name, float(low) if not integer else low, float(high) if not integer else high, log=log,
                     integer=integer, one_minus=one_minus)
    except ConfigError as err:
        raise TuneError(f"{source}: `{name}` does not fit {settings_cls.__name__}: {err}") from None


def load_search_space(agent: str, path: Path | None = None,
                      overrides: Mapping[str, Any] | None = None) -> dict[str, Param]:
    """The agent's search space: its data file (or `path`), then `overrides` (a param mapping, or null to
    drop a param). Every param must be a field of the agent's settings, with values of the field's type."""
    settings_cls = agent_module(agent).Settings
    source_path = path if path is not None else SEARCH_SPACE_DIR / f"{agent}.yaml"
    if path is None and not source_path.is_file():
        known = sorted(p.stem for p in SEARCH_SPACE_DIR.glob("*.yaml"))
        raise TuneError(f"no search space for agent {agent!r}; agents with one: {', '.join(known)}. Write one "
                        f"(see docs/tune.md) and pass it with --search-space FILE.")
    try:
        raw = load_yaml_mapping(source_path)
    except ConfigError as err:
        raise TuneError(str(err)) from None
    raw.update(overrides or {})
    space: dict[str, Param] = {}
    for name, definition in raw.items():
        if definition is None:
            continue
        space[name] = _parse_param(settings_cls, name, definition, f"search space {source_path}")
    if not space:
        raise TuneError(f"the search space of {agent} ({source_path}) is empty: name at least one setting.")
    return space


def sample_params(trial: optuna.Trial, space: Mapping[str, Param]) -> dict[str, Any]:
    """Draw (or, on a resumed trial, read back) one value per param, as settings values ('64,64' stays a
    string: the settings' --set parser turns it into a tuple)."""
    values: dict[str, Any] = {}
    for param in space.values():
        if param.choices:
            values[param.name] = trial.suggest_categorical(param.optuna_name, list(param.choices))
        elif param.integer:
            values[param.name] = trial.suggest_int(param.optuna_name, int(param.low), int(param.high),  # type: ignore[arg-type]
                                                   log=param.log)
        else:
            x = trial.suggest_float(param.optuna_name, float(param.low), float(param.high), log=param.log)  # type: ignore[arg-type]
            values[param.name] = 1.0 - x if param.one_minus else x
    return values
