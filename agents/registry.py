"""The agent registry: one name for each agent across CLI, run folders, databases and reports.

Trainable agents are modules with the same four names (`Settings`, `check_spaces`, `train`,
`load_policy`), imported lazily so `rlsuite list agents` stays fast. Baselines (random, and the envs'
heuristic controllers) are built directly as policies and never trained.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym

from rlsuite.agents.baselines import RandomPolicy
from rlsuite.agents.checkpoint import read_checkpoint_meta
from rlsuite.agents.interface import AgentError, Policy
from rlsuite.agents.run import RunFolder


@dataclass(frozen=True)
class AgentSpec:
    name: str
    description: str
    module: str | None
    """Module holding Settings/check_spaces/train/load_policy; None for baselines."""

    @property
    def trainable(self) -> bool:
        return self.module is not None


AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("ppo", "Proximal Policy Optimization: clipped surrogate, GAE, optional LSTM (hand-written)", "rlsuite.agents.ppo"),
        AgentSpec("random", "Uniform random actions: the score that normalises to 0", None),
    )
}


def agent_names(trainable: bool | None = None) -> list[str]:
    return [name for name, spec in AGENTS.items() if trainable is None or spec.trainable == trainable]


def get_spec(name: str) -> AgentSpec:
    """The registered agent `name`, or an AgentError naming close matches."""
    if name in AGENTS:
        return AGENTS[name]
    close = difflib.get_close_matches(name, list(AGENTS), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise AgentError(f"Unknown agent {name!r}.{hint} Registered agents: {', '.join(AGENTS)} (see `rlsuite list agents`).")


def agent_module(name: str) -> ModuleType:
    """The training module of a trainable agent."""
    spec = get_spec(name)
    if spec.module is None:
        raise AgentError(
            f"{name!r} is a baseline and is not trained; evaluate it directly: "
            f"`rlsuite evaluate --agent {name} --env ENV_ID`. Trainable agents: {', '.join(agent_names(True))}."
        )
    return importlib.import_module(spec.module)


def make_baseline(name: str, observation_space: gym.Space, action_space: gym.Space, seed: int = 0) -> Policy:
    """A policy for an agent that is not trained (random, or an env's heuristic)."""
    spec = get_spec(name)
    if spec.trainable:
        raise AgentError(f"{name!r} is trained, not a baseline: evaluate one of its run folders instead.")
    return RandomPolicy(observation_space, action_space, seed=seed)


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    manifest: dict[str, Any]
    checkpoint: str
    """The checkpoint's name: best, last or step_<N>."""
    step: int


def load_policy(run_dir: Path, checkpoint: str | int = "best", device: str = "cpu") -> LoadedPolicy:
    """The policy saved in a run folder, through its agent's own loader (never by reaching into internals).

    `checkpoint="best"` falls back to `last` when the run never evaluated (no best checkpoint).
    """
    run = RunFolder.open(run_dir)
    manifest = run.manifest
    module = agent_module(manifest["agent"])
    available = run.list_checkpoints()
    if checkpoint == "best" and "best" not in available and "last" in available:
        checkpoint = "last"
    path = run.find_checkpoint(checkpoint)
    meta = read_checkpoint_meta(path)
    return LoadedPolicy(module.load_policy(path, device=device), manifest, path.name.removesuffix(".safetensors"), int(meta["step"]))
