"""Typed training settings, and how they are resolved from presets, config files and the command line.

Every agent's settings are a dataclass that subclasses `TrainSettings`; each field is followed by a
one-line docstring (CleanRL/tyro style), which `field_help` reads with `ast` so that CLI help and error
messages quote it. Values arrive in layers, later wins:

    dataclass defaults < presets/<agent>.yaml < --config FILE < CLI options (--seed, --steps) < --set k=v

A preset or config file is either FLAT (`field: value`) or BLOCKED like RL Zoo's hyperparameter files
(a `default:` block plus one block per env id; the env's block overrides the default block; a block
keyed by a shell-style pattern such as `ALE/*-v5` sits in between and serves a whole env family).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import fnmatch
import functools
import inspect
import math
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml


class ConfigError(ValueError):
    """A user-facing problem with settings; the message says which value is wrong and what to do."""


S = TypeVar("S", bound="TrainSettings")

_DEVICE_PATTERN = re.compile(r"^(cpu|auto|mps|cuda(:\d+)?)$")
_AGENT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_TRUE = ("true", "1", "yes", "on", "y")
_FALSE = ("false", "0", "no", "off", "n")
_NONE = ("none", "null", "~")


@dataclass
class TrainSettings:
    """Settings shared by every trainable agent; agents subclass this and add their hyperparameters."""

    env_id: str = "CartPole-v1"
    """Env id to train on (`rlsuite list envs` shows them all)."""
    seed: int = 0
    """Training seed for the env, the network initialisation and all random number generators."""
    total_steps: int = 100_000
    """Env steps to train for, summed over all sub-envs."""
    n_envs: int = 8
    """Number of sub-envs stepped together in one vector env."""
    vectorization: Literal["auto", "sync", "async", "vector_entry_point"] = "auto"
    """How sub-envs run: auto (the env's NumPy core if it has one, else sync), sync, async (processes), vector_entry_point."""
    device: str = "cpu"
    """Torch device for the networks: cpu, cuda, cuda:N or auto (cuda when available)."""
    torch_threads: int = 1
    """CPU threads torch may use (small networks train fastest with 1)."""
    eval_every: int = 10_000
    """Env steps between evaluations on separate envs with fixed seeds (0 = no evaluation)."""
    eval_episodes: int = 10
    """Episodes per periodic evaluation."""
    checkpoint_every: int = 0
    """Env steps between extra step_N checkpoints (0 = none); `last` is always kept, `best` when evaluating."""
    checkpoint_interval_s: float = 300.0
    """Seconds of training between `last` checkpoints, so a crash loses at most this much (`--resume` continues
    from the newest complete checkpoint)."""
    checkpoint_interval_updates: int = 0
    """Also write `last` after this many loop iterations (PPO, A2C, REINFORCE: updates; DQN and SB3: vector-env
    steps); 0: on the clock only."""
    tensorboard: bool = True
    """Write TensorBoard event files to <run>/tb next to metrics.csv."""
    env_preset: str = ""
    """Preprocessing preset of env families that have them (Atari: dqn-nature, machado2018); empty: the default."""
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Keyword arguments for the env constructor, e.g. {profile: held_out}; on the CLI: --env-kwarg key=value."""

    def require(self, ok: bool, name: str, requirement: str) -> None:
        """Raise a ConfigError for field `name` unless `ok`; `requirement` says what a valid value is."""
        if ok:
            return
        doc = field_help(type(self)).get(name, "")
        hint = f" ({name}: {doc})" if doc else ""
        raise ConfigError(f"Invalid setting {name}={getattr(self, name)!r}: {requirement}.{hint}")

    def validate(self) -> None:
        """Reject out-of-range values before any env or network is built; subclasses extend via super()."""
        self.require(isinstance(self.env_id, str) and bool(self.env_id.strip()), "env_id", "must be a non-empty env id")
        self.require(self.seed >= 0, "seed", "must be >= 0 (NumPy and Gymnasium reject negative seeds)")
        self.require(self.total_steps >= 1, "total_steps", "must be >= 1")
        self.require(self.n_envs >= 1, "n_envs", "must be >= 1")
        modes = typing.get_args(typing.get_type_hints(TrainSettings)["vectorization"])
        self.require(self.vectorization in modes, "vectorization", f"must be one of {', '.join(modes)}")
        self.require(
            isinstance(self.device, str) and bool(_DEVICE_PATTERN.match(self.device)),
            "device",
            "must be cpu, cuda, cuda:N, mps or auto",
        )
        self.require(self.torch_threads >= 1, "torch_threads", "must be >= 1")
        self.require(self.eval_every >= 0, "eval_every", "must be >= 0 (0 turns evaluation off)")
        self.require(self.eval_episodes >= 1, "eval_episodes", "must be >= 1")
        self.require(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0 = no step_N checkpoints)")
        self.require(self.checkpoint_interval_s > 0, "checkpoint_interval_s", "must be > 0 seconds")
        self.require(self.checkpoint_interval_updates >= 0, "checkpoint_interval_updates",
                     "must be >= 0 (0 = on the clock only)")


# ---------------------------------------------------------------------------------------------------
# Field docstrings and types


@functools.cache
def _class_field_docs(klass: type) -> dict[str, str]:
    """Attribute docstrings declared in `klass` itself (not its bases), read from its source with ast."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}  # defined in a REPL or generated: no source to read, so no help text
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    class_def = next((node for node in tree.body if isinstance(node, ast.ClassDef)), None)
    if class_def is None:
        return {}
    docs: dict[str, str] = {}
    body = class_def.body
    for node, following in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def field_help(cls: type | Any) -> dict[str, str]:
    """Field name -> its one-line docstring, for CLI help and error messages (subclasses override bases)."""
    klass = cls if isinstance(cls, type) else type(cls)
    docs: dict[str, str] = {}
    for base in reversed(klass.__mro__):
        if dataclasses.is_dataclass(base):
            docs.update(_class_field_docs(base))
    names = {f.name for f in dataclasses.fields(klass)} if dataclasses.is_dataclass(klass) else set(docs)
    return {name: doc for name, doc in docs.items() if name in names}


@functools.cache
def _field_types(klass: type) -> dict[str, Any]:
    return typing.get_type_hints(klass)


def _init_fields(klass: type) -> list[str]:
    return [f.name for f in dataclasses.fields(klass) if f.init]


def type_name(tp: Any) -> str:
    """A readable name for an annotation, e.g. `int`, `tuple[int, ...]`, `one of 'a', 'b'`."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and origin is None:
        return tp.__name__
    return str(tp).replace("typing.", "").replace("NoneType", "None")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


class _Mismatch(Exception):
    """Internal: `raw` does not fit the annotation; `why` is the reason, if more specific than the type."""

    def __init__(self, why: str = "") -> None:
        super().__init__(why)
        self.why = why


def _split_sequence(raw: str) -> list[str]:
    text = raw.strip()
    if len(text) >= 2 and text[0] + text[-1] in ("[]", "()"):
        text = text[1:-1]
    return [part.strip() for part in text.split(",") if part.strip()]


def _coerce(tp: Any, raw: Any) -> Any:
    """Convert `raw` to annotation `tp` or raise _Mismatch. Strings come from --set; others from YAML."""
    if tp is Any:
        return raw
    if tp is type(None):
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in _NONE):
            return None
        raise _Mismatch()
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_union(tp):
        # None first so "none" is not taken as a string; then each arm in declaration order.
        arms = sorted(args, key=lambda a: a is not type(None))
        for arm in arms:
            try:
                return _coerce(arm, raw)
            except _Mismatch:
                continue
        raise _Mismatch()
    if origin is Literal:
        for choice in args:
            if type(choice) is type(raw) and choice == raw:
                return choice
        if isinstance(raw, str):
            for choice in args:
                if str(choice) == raw.strip():
                    return choice
        raise _Mismatch(f"accepted values: {', '.join(repr(a) for a in args)}")
    if origin is dict:
        if isinstance(raw, str):  # --set env_kwargs="{profile: held_out}": a YAML flow mapping
            try:
                raw = yaml.safe_load(raw) if raw.strip() else {}
            except yaml.YAMLError:
                raise _Mismatch("a mapping of keyword: value, e.g. {profile: held_out}") from None
        if isinstance(raw, Mapping) and all(isinstance(k, str) for k in raw):
            return dict(raw)
        raise _Mismatch("a mapping of keyword: value, e.g. {profile: held_out}")
    if origin in (tuple, list):
        if isinstance(raw, str):
            items: list[Any] = _split_sequence(raw)
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            raise _Mismatch()
        if origin is list:
            elem_types = [args[0] if args else Any] * len(items)
        elif not args or (len(args) == 2 and args[1] is Ellipsis):
            elem_types = [args[0] if args else Any] * len(items)
        else:
            if len(args) != len(items):
                raise _Mismatch(f"expected {len(args)} items, got {len(items)}")
            elem_types = list(args)
        try:
            values = [_coerce(et, item) for et, item in zip(elem_types, items, strict=True)]
        except _Mismatch as err:
            raise _Mismatch(f"an item does not fit ({err.why})" if err.why else "an item does not fit") from None
        return tuple(values) if origin is tuple else values
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int) and raw in (0, 1):
            return bool(raw)
        if isinstance(raw, str):
            word = raw.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
        raise _Mismatch("use true/false (also accepted: yes/no, 1/0)")
    if tp is int:
        if isinstance(raw, bool):
            raise _Mismatch()
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)  # YAML reads 1.0e+6 as a float
        if isinstance(raw, str):
            text = raw.strip()
            try:
                return int(text)
            except ValueError:
                pass
            try:
                number = float(text)  # "1e6" (PyYAML leaves it a string too)
            except ValueError:
                raise _Mismatch() from None
            if number.is_integer():
                return int(number)
            raise _Mismatch("must be a whole number")
        raise _Mismatch()
    if tp is float:
        if isinstance(raw, bool):
            raise _Mismatch()
        if isinstance(raw, int | float):
            number = float(raw)
        elif isinstance(raw, str):
            try:
                number = float(raw.strip())
            except ValueError:
                raise _Mismatch() from None
        else:
            raise _Mismatch()
        if not math.isfinite(number):
            # Settings go into JSON manifests, which have no NaN/inf.
            raise _Mismatch("must be a finite number")
        return number
    if tp is str:
        if isinstance(raw, str):
            return raw
        raise _Mismatch("quote it in YAML if it looks like a number or a boolean")
    if isinstance(tp, type) and isinstance(raw, tp):
        return raw
    raise _Mismatch()


def coerce_field(cls: type, name: str, raw: Any) -> Any:
    """Convert a YAML value or a `--set` string to field `name`'s declared type, or raise ConfigError."""
    klass = cls if isinstance(cls, type) else type(cls)
    hints = _field_types(klass)
    if name not in hints:
        raise ConfigError(f"{klass.__name__} has no field {name!r}; accepted: {', '.join(_init_fields(klass))}.")
    tp = hints[name]
    try:
        return _coerce(tp, raw)
    except _Mismatch as err:
        why = f" ({err.why})" if err.why else ""
        doc = field_help(klass).get(name, "")
        doc_text = f" {name}: {doc}" if doc else ""
        raise ConfigError(
            f"Invalid value for {name}: expected {type_name(tp)}, got {raw!r}{why}.{doc_text}"
        ) from None


# ---------------------------------------------------------------------------------------------------
# Sources of values


def parse_set_args(args: Sequence[str]) -> dict[str, str]:
    """`["lr=3e-4", "net_arch=64,64"]` -> {"lr": "3e-4", "net_arch": "64,64"}; later repeats win."""
    out: dict[str, str] = {}
    for item in args:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key.isidentifier():
            raise ConfigError(
                f"Malformed --set {item!r}: expected key=value with a settings field as key, "
                f"e.g. --set total_steps=50000 or --set net_arch=64,64."
            )
        out[key] = value.strip()
    return out


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is {}); ConfigError says what to fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist; check the path given to --config.")
    try:
        with path.open(encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(
            f"{path} is not valid YAML{where}: {problem}. Fix the file (indentation and `key: value` pairs)."
        ) from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text ({err}); save it as UTF-8.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path} must hold a mapping of `field: value` lines (or `default:` and per-env blocks), "
            f"but its top level is a {type(data).__name__}."
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{path}: top-level keys must be field names or env ids, got {bad!r}; quote them.")
    return data


def preset_path(agent: str, preset_dir: Path | None = None) -> Path:
    """The preset file `presets/<agent>.yaml` shipped with the package (or in `preset_dir`)."""
    if not _AGENT_NAME.match(agent):
        raise ConfigError(f"Invalid agent name {agent!r}: use letters, digits, '_', '-' and '.'.")
    directory = Path(preset_dir) if preset_dir is not None else Path(__file__).parent / "presets"
    return directory / f"{agent}.yaml"


def config_path(agent: str, config: Path | str, preset_dir: Path | None = None) -> Path:
    """The YAML file `--config` names: a path, or the name of a recipe shipped beside the agent's preset
    (`--config cpu` for ppo is `presets/ppo.cpu.yaml`); ConfigError lists the recipes when neither exists."""
    path = Path(config)
    if path.is_file() or path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        return path
    recipe = preset_path(agent, preset_dir).with_name(f"{agent}.{path.name}.yaml")
    if recipe.is_file():
        return recipe
    names = sorted(p.name[len(agent) + 1:-len(".yaml")] for p in recipe.parent.glob(f"{agent}.*.yaml"))
    shipped = f"the recipes shipped for {agent}: {', '.join(names)}" if names else f"{agent} ships no named recipes"
    raise ConfigError(f"--config {config}: no such file and no recipe of that name ({shipped}). "
                      f"Pass a YAML file path or one of those names.")


def select_block(mapping: Mapping[str, Any], env_id: str, source: str) -> dict[str, Any]:
    """The settings a preset/config file gives for `env_id`: the whole file if FLAT, else default < blocks
    whose key is a pattern matching `env_id` (`ALE/*-v5`) < the env's own block."""
    blocks = {k: v for k, v in mapping.items() if isinstance(v, dict)}
    if not blocks:
        return dict(mapping)
    flat = [k for k, v in mapping.items() if not isinstance(v, dict) and v is not None]
    if flat:
        raise ConfigError(
            f"{source} mixes top-level fields ({', '.join(flat)}) with blocks ({', '.join(blocks)}). "
            f"Either write every field at the top level, or put shared fields under `default:` and "
            f"env-specific ones under the env id (e.g. `CartPole-v1:`)."
        )
    merged: dict[str, Any] = dict(mapping.get("default") or {})
    for key, block in blocks.items():  # family blocks such as `ALE/*-v5:` (shell-style patterns) come next
        if key != env_id and any(c in key for c in "*?[") and fnmatch.fnmatchcase(env_id, key):
            merged.update(block)
    merged.update(mapping.get(env_id) or {})
    return merged


def _check_keys(klass: type, keys: Sequence[str], source: str) -> None:
    accepted = _init_fields(klass)
    for key in keys:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"Unknown setting {key!r} in {source}.{hint} "
                f"Accepted fields for {klass.__name__}: {', '.join(accepted)}."
            )


def _apply_layer(klass: type, values: dict[str, Any], layer: Mapping[str, Any], source: str, env_id: str) -> None:
    _check_keys(klass, list(layer), source)
    for key, raw in layer.items():
        value = coerce_field(klass, key, raw)
        if key == "env_id" and value != env_id:
            raise ConfigError(
                f"{source} sets env_id={value!r}, but this run is for {env_id!r}. The env is chosen with "
                f"--env; remove env_id from {source} (use a per-env block to give env-specific settings)."
            )
        values[key] = value


def resolve_settings(
    cls: type[S],
    agent: str,
    env_id: str,
    *,
    config_file: Path | None = None,
    cli_values: Mapping[str, Any] | None = None,
    set_args: Sequence[str] = (),
    preset_dir: Path | None = None,
) -> S:
    """Settings for one run, layered defaults < preset < config file < CLI options < --set; validated."""
    values: dict[str, Any] = {}
    preset = preset_path(agent, preset_dir)
    if preset.is_file():
        mapping = load_yaml_mapping(preset)
        _apply_layer(cls, values, select_block(mapping, env_id, f"preset {preset}"), f"preset {preset}", env_id)
    if config_file is not None:
        config_file = config_path(agent, config_file, preset_dir)
        source = f"config file {config_file}"
        mapping = load_yaml_mapping(config_file)
        _apply_layer(cls, values, select_block(mapping, env_id, source), source, env_id)
    if cli_values:
        typed = {k: v for k, v in cli_values.items() if v is not None}
        _apply_layer(cls, values, typed, "command-line options", env_id)
    if set_args:
        _apply_layer(cls, values, parse_set_args(set_args), "--set", env_id)
    values["env_id"] = env_id
    settings = cls(**values)
    settings.validate()
    return settings


# ---------------------------------------------------------------------------------------------------
# Manifests and checkpoints


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def settings_to_dict(s: TrainSettings) -> dict[str, Any]:
    """Field -> value, JSON-ready (tuples become lists), in declaration order."""
    return {f.name: _jsonable(getattr(s, f.name)) for f in dataclasses.fields(s)}


def settings_from_dict(cls: type[S], d: Mapping[str, Any]) -> S:
    """Inverse of `settings_to_dict`; strict: unknown keys raise ConfigError, missing ones take defaults."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"Stored settings must be a mapping, got {type(d).__name__}.")
    _check_keys(cls, list(d), "stored settings")
    settings = cls(**{k: coerce_field(cls, k, v) for k, v in d.items()})
    settings.validate()
    return settings
