"""Checks of a command's input that need neither torch nor an env family's code.

A bad env id, agent name or setting is refused in well under a second, before the CLI imports torch,
Stable-Baselines3 or the env families. Everything checked here is checked again by the real path
(rlsuite/train.py with the agent's own settings class); this module only answers sooner.

An agent's settings dataclass lives in its algorithm's file, which imports torch, so its fields are read
from that file's source with `ast` (as `field_help` reads their docstrings): class bases are followed
through the module's `from ... import` lines down to `TrainSettings`, and annotations are rebuilt from a
small vocabulary (int, float, str, bool, None, Any, Literal, tuple, list, dict, unions). Where the source
cannot be read that way (an agent whose settings sit behind an object), the early check of settings is
skipped and the real path checks them.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from rlsuite.agents.interface import AgentError
from rlsuite.agents.registry import agent_names, get_spec
from rlsuite.agents.settings import TrainSettings, resolve_settings

SETTINGS_BASE_MODULE = "rlsuite.agents.settings"
_NAMES: dict[str, Any] = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict, "list": list,
                          "tuple": tuple, "Any": Any, "None": type(None)}


class _Unreadable(Exception):
    """Internal: the settings class cannot be rebuilt from source; the early check is skipped."""


@dataclasses.dataclass(frozen=True)
class _Module:
    classes: dict[str, ast.ClassDef]
    imports: dict[str, tuple[str, str]]  # local name -> (module, name)
    aliases: dict[str, str]  # `Settings = PPOSettings`


@functools.cache
def _read_module(module: str) -> _Module:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        raise _Unreadable(module) from None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise _Unreadable(module)
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    classes: dict[str, ast.ClassDef] = {}
    imports: dict[str, tuple[str, str]] = {}
    aliases: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            classes[node.name] = node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                imports[alias.asname or alias.name] = (node.module, alias.name)
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and isinstance(node.value, ast.Name)):
            aliases[node.targets[0].id] = node.value.id
    return _Module(classes, imports, aliases)


def _annotation(node: ast.expr, mod: _Module) -> Any:
    """The type an annotation's source names, or _Unreadable."""
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted annotation
        return _annotation(ast.parse(node.value, mode="eval").body, mod)
    if isinstance(node, ast.Name | ast.Attribute):
        name = node.id if isinstance(node, ast.Name) else node.attr
        if isinstance(node, ast.Attribute) and not (isinstance(node.value, ast.Name) and node.value.id == "typing"):
            raise _Unreadable(ast.unparse(node))
        if name in _NAMES:
            return _NAMES[name]
        raise _Unreadable(name)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _annotation(node.left, mod) | _annotation(node.right, mod)
    if isinstance(node, ast.Subscript):
        head = node.value.id if isinstance(node.value, ast.Name) else getattr(node.value, "attr", "")
        items = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == "Literal":
            choices = tuple(i.value for i in items if isinstance(i, ast.Constant))
            if len(choices) != len(items):
                raise _Unreadable(ast.unparse(node))
            return Literal[choices]  # type: ignore[valid-type]
        if head == "Optional":
            return _annotation(items[0], mod) | None
        if head in ("tuple", "list", "dict"):
            args = tuple(Ellipsis if isinstance(i, ast.Constant) and i.value is Ellipsis else _annotation(i, mod)
                         for i in items)
            return _NAMES[head][args]
    raise _Unreadable(ast.unparse(node))


def _is_classvar(node: ast.expr) -> bool:
    target = node.value if isinstance(node, ast.Subscript) else node
    return isinstance(target, ast.Name | ast.Attribute) and getattr(target, "id", getattr(target, "attr", "")) == "ClassVar"


def _no_init(value: ast.expr | None) -> bool:
    return isinstance(value, ast.Call) and any(
        k.arg == "init" and isinstance(k.value, ast.Constant) and k.value.value is False for k in value.keywords)


def _fields(module: str, name: str) -> tuple[type, dict[str, Any], str]:
    """(the real light base class, {field: type} declared above it, the class's name) of `name` in `module`."""
    if module == SETTINGS_BASE_MODULE:
        return getattr(importlib.import_module(module), name), {}, name
    mod = _read_module(module)
    name = mod.aliases.get(name, name)
    if name not in mod.classes:
        if name in mod.imports:
            return _fields(*mod.imports[name])
        raise _Unreadable(f"{module}:{name}")
    node = mod.classes[name]
    if len(node.bases) != 1 or not isinstance(node.bases[0], ast.Name):
        raise _Unreadable(f"{module}:{name} bases")
    base = node.bases[0].id
    real_base, inherited, _ = _fields(module, base) if base in mod.classes else _fields(*mod.imports.get(base, ("", "")))
    fields = dict(inherited)
    for item in node.body:
        if (isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and not _is_classvar(item.annotation)
                and not _no_init(item.value)):
            fields[item.target.id] = _annotation(item.annotation, mod)
    return real_base, fields, name


@functools.cache
def _schema(agent: str) -> tuple[dict[str, Any], str] | None:
    spec = get_spec(agent)
    if spec.module is None or ":" in spec.module:
        return None
    try:
        base, fields, name = _fields(spec.module, "Settings")
    except (_Unreadable, SyntaxError, OSError, ImportError):
        return None
    hints = typing.get_type_hints(base)
    return {**{f.name: hints[f.name] for f in dataclasses.fields(base) if f.init}, **fields}, name


def settings_schema(agent: str) -> dict[str, Any] | None:
    """{field: type} of a trainable agent's settings as its source declares them; None when unreadable."""
    found = _schema(agent)
    return None if found is None else dict(found[0])


def settings_class_name(agent: str) -> str | None:
    """The name of the agent's settings class (error messages name it), read with its fields."""
    found = _schema(agent)
    return None if found is None else found[1]


@functools.cache
def _stand_in(agent: str) -> type[TrainSettings] | None:
    """A dataclass with the agent's settings fields over the real TrainSettings, for checking keys, types and
    TrainSettings' own ranges through `resolve_settings` itself; the agent's fields default to None."""
    found = _schema(agent)
    if found is None:
        return None
    schema, name = found
    own = {f.name for f in dataclasses.fields(TrainSettings)}
    extra = [(key, tp, dataclasses.field(default=None)) for key, tp in schema.items() if key not in own]
    return dataclasses.make_dataclass(name, extra, bases=(TrainSettings,))


def check_train_input(agent: str, env_id: str, *, config_file: Path | None = None,
                      cli_values: Mapping[str, Any] | None = None, set_args: Sequence[str] = ()) -> None:
    """Raise the user-facing error the full path would raise for a wrong agent, env id or setting."""
    from rlsuite.envs.factory import check_env_id

    if not get_spec(agent).trainable:
        raise AgentError(
            f"{agent!r} is a baseline and is not trained; evaluate it directly: "
            f"`rlsuite evaluate --agent {agent} --env ENV_ID`. Trainable agents: {', '.join(agent_names(True))}."
        )
    check_env_id(env_id)
    stand_in = _stand_in(agent)
    if stand_in is not None:
        resolve_settings(stand_in, agent, env_id, config_file=config_file, cli_values=cli_values, set_args=set_args)


def check_subject(*, run_dir: Path | None = None, agent: str | None = None, env_id: str | None = None) -> None:
    """For evaluate and record: the run folder opens, or the baseline is one; the env id, if given, exists."""
    from rlsuite.agents.run import RunFolder
    from rlsuite.envs.factory import check_env_id

    if run_dir is not None:
        RunFolder.open(run_dir)
    if agent is not None and get_spec(agent).trainable:
        raise AgentError(f"{agent!r} is trained, not a baseline: evaluate one of its run folders instead.")
    if env_id is not None:
        check_env_id(env_id)


def check_grid(agents: Sequence[str], envs: Sequence[str]) -> None:
    """For sweep: every agent name and env id of the grid exists."""
    from rlsuite.envs.factory import check_env_id

    for agent in agents:
        get_spec(agent)
    for env_id in envs:
        check_env_id(env_id)
