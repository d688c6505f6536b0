"""What makes two results the same configuration, and the name a report gives each configuration.

A configuration is agent + env + resolved settings + evaluation protocol (+ the user's `--label`, when
given): runs that share it differ only in their training seed, so they are pooled as that
configuration's runs; anything else is a separate row. Evaluating the same configuration and seed
again replaces the older result instead of counting it twice.

Rows are named by what differs from the agent's preset for the env, e.g. `ppo (learning_rate=1e-05)`,
or by the label the user gave with `--label`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from rlsuite.evaluation.records import EvaluationRecord, RunRecord

__all__ = [
    "NON_IDENTITY_SETTINGS",
    "configuration_key",
    "evaluation_key",
    "protocol_key",
    "settings_diff",
    "settings_hash",
]

NON_IDENTITY_SETTINGS = frozenset({"seed", "device", "torch_threads", "tensorboard", "checkpoint_every"})
"""Settings that do not define a configuration: the seed (seeds are its runs), where or how fast it ran,
and which extra files it wrote (TensorBoard events, step_N snapshots)."""

_SHORT = 8
"""Hex digits of a hash shown in names."""


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def identity_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The resolved settings that define a configuration (NON_IDENTITY_SETTINGS dropped)."""
    return {k: v for k, v in config.items() if k not in NON_IDENTITY_SETTINGS}


def settings_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the identity settings as canonical JSON (sorted keys); {} for a baseline."""
    return _digest(identity_settings(config))


def configuration_key(run: RunRecord) -> str:
    """Agent + env the run trained on + settings hash + label: equal exactly for runs of one configuration."""
    return _digest({"agent": run.agent, "env_id": run.env_id, "settings": settings_hash(run.config),
                    "label": run.label or ""})


def protocol_key(evaluation: EvaluationRecord) -> str:
    """How the run was measured, apart from the env variant: checkpoint, actions, seeds, protocol fields."""
    protocol = {k: v for k, v in evaluation.protocol.items() if k != "env_kwargs"}
    return _digest({"checkpoint": evaluation.checkpoint, "deterministic": evaluation.deterministic,
                    "seeds": list(evaluation.seeds), "protocol": protocol})


def evaluation_key(run: RunRecord | None, evaluation: EvaluationRecord) -> str:
    """Equal for evaluations that measure the same thing: configuration, training seed, env variant and
    protocol. Of evaluations sharing a key only the newest counts (a re-evaluation replaces the older)."""
    env_variant = {"env_id": evaluation.env_id, "env_kwargs": evaluation.protocol.get("env_kwargs") or {}}
    if run is None:  # an evaluation whose run record is missing: it stands for itself
        return _digest({"run_id": evaluation.run_id, "env": env_variant, "protocol": protocol_key(evaluation)})
    return _digest({"configuration": configuration_key(run), "seed": run.seed, "env": env_variant,
                    "protocol": protocol_key(evaluation)})


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)  # 1e-05, 0.0003: the shortest text that reads back as the same number
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def settings_diff(config: Mapping[str, Any], preset: Mapping[str, Any] | None) -> list[str]:
    """`key=value` for every identity setting that differs from `preset` (sorted by key)."""
    if not config or preset is None:
        return []
    mine, base = identity_settings(config), identity_settings(preset)
    keys = sorted((set(mine) | set(base)) - {"env_id"})
    return [f"{k}={_format_value(mine.get(k))}" for k in keys if mine.get(k) != base.get(k)]


PresetLookup = Callable[[str, str], Mapping[str, Any] | None]
"""(agent, env_id) -> the agent's resolved preset settings for the env, or None when unknown."""

MAX_DIFFS_SHOWN = 3
"""A row name lists at most this many differing settings; the rest are counted (`+2 more`)."""


def configuration_name(run: RunRecord | None, agent: str, preset: PresetLookup) -> str:
    """`label` if given; else the agent, plus the settings that differ from its preset for the env."""
    if run is None:
        return agent
    if run.label:
        return run.label
    if not run.config:
        return agent
    base = preset(agent, run.env_id)
    if base is None:  # the preset cannot be resolved (agent renamed or removed): name by hash
        return f"{agent} (settings {settings_hash(run.config)[:_SHORT]})"
    diffs = settings_diff(run.config, base)
    if not diffs:
        return agent
    shown = diffs[:MAX_DIFFS_SHOWN]
    more = f", +{len(diffs) - len(shown)} more" if len(diffs) > len(shown) else ""
    return f"{agent} ({', '.join(shown)}{more})"
