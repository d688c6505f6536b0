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
from rlsuite.agents.interface import AgentError, Policy
from rlsuite.agents.run import RunFolder


@dataclass(frozen=True)
class AgentSpec:
    name: str
    description: str
    module: str | None
    """Module holding Settings/check_spaces/train/load_policy, or "module:attribute" for an object holding them
    (one module serving several agents, as agents/sb3/ does); None for baselines."""
    controller: str | None = None
    """For an env's heuristic baseline: "module:Class" of a controller in the env's file. The class is built
    as `Class(env)` from one plain instance of the env being evaluated (for its spaces and parameters) and
    has the Policy methods `reset(num_envs)` and `act(obs, episode_start, deterministic)`."""
    env_prefixes: tuple[str, ...] = ()
    """Env ids a heuristic baseline applies to (prefix match); empty means every env."""

    @property
    def trainable(self) -> bool:
        return self.module is not None


AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("ppo", "Proximal Policy Optimization: clipped surrogate, GAE, optional LSTM (hand-written)", "rlsuite.agents.ppo"),
        AgentSpec("random", "Uniform random actions: the score that normalises to 0", None),
        # --- DQN family (issue 4) ---
        AgentSpec("dqn", "Deep Q-Network: double, dueling, prioritised replay, n-step, optional LSTM (DRQN) (hand-written)",
                  "rlsuite.agents.dqn"),

        # --- policy-gradient family (issue 4) ---
        AgentSpec("a2c", "Synchronous advantage actor-critic: n-step returns or GAE, RMSprop, optional LSTM (hand-written)", "rlsuite.agents.a2c"),
        AgentSpec("reinforce", "REINFORCE: Monte Carlo reward-to-go over complete episodes, learned value baseline (hand-written)", "rlsuite.agents.reinforce"),

        # --- Stable-Baselines3 (issue 5) ---
        AgentSpec("sb3-ppo", "Stable-Baselines3 PPO on our encoders (safe checkpoints, our harness)", "rlsuite.agents.sb3:ppo"),
        AgentSpec("sb3-a2c", "Stable-Baselines3 A2C on our encoders", "rlsuite.agents.sb3:a2c"),
        AgentSpec("sb3-dqn", "Stable-Baselines3 DQN on our encoders (Discrete actions)", "rlsuite.agents.sb3:dqn"),
        AgentSpec("sb3-sac", "Stable-Baselines3 SAC on our encoders (Box actions)", "rlsuite.agents.sb3:sac"),
        AgentSpec("sb3-td3", "Stable-Baselines3 TD3 on our encoders (Box actions)", "rlsuite.agents.sb3:td3"),
        AgentSpec("sb3-recurrent-ppo", "sb3-contrib RecurrentPPO (LSTM) on our encoders", "rlsuite.agents.sb3:recurrent_ppo"),
        AgentSpec("sb3-qrdqn", "sb3-contrib QR-DQN on our encoders (Discrete actions)", "rlsuite.agents.sb3:qrdqn"),

        # --- driving baselines (issue 6) ---
        AgentSpec("highway-idm", "Highway ego that keeps its lane, speed set by IDM (the reference score)", None,
                  controller="rlsuite.envs.highway:IDMController", env_prefixes=("rlsuite/Highway", "rlsuite/Merge")),
        AgentSpec("highway-mobil", "Highway ego with IDM speed and MOBIL lane changes with a keep-right bias", None,
                  controller="rlsuite.envs.highway:MOBILController", env_prefixes=("rlsuite/Highway", "rlsuite/Merge")),

        # --- traffic controllers (issue 7) ---
        AgentSpec("fixed-time", "Fixed-time signals, Webster cycle and splits from the scenario's demand", None,
                  controller="rlsuite.envs.traffic:FixedTimeController", env_prefixes=("rlsuite/Traffic",)),
        AgentSpec("max-pressure", "Max-pressure signal control (Varaiya 2013)", None,
                  controller="rlsuite.envs.traffic:MaxPressureController", env_prefixes=("rlsuite/Traffic",)),
        AgentSpec("actuated", "Actuated signals: extend green until its queues clear (gap-out), max green", None,
                  controller="rlsuite.envs.traffic:ActuatedController", env_prefixes=("rlsuite/Traffic",)),

        # --- robot-arm baselines (issue 8) ---
        AgentSpec("reacher_pd", "Reacher's scripted baseline: inverse kinematics, then computed-torque PD", None,
                  controller="rlsuite.envs.reacher:ReacherPDController",
                  env_prefixes=("rlsuite/Reacher-", "rlsuite/Reacher3Link-", "rlsuite/ReacherGoal-")),
        AgentSpec("spoken_pd", "SpokenReach's listening baseline: nearest-centroid word classifier, then IK + PD",
                  None, controller="rlsuite.envs.spoken:SpokenReachController", env_prefixes=("rlsuite/SpokenReach-",)),

        # --- end of registry ---
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


def agent_module(name: str) -> ModuleType | Any:
    """The training module of a trainable agent (or the object a "module:attribute" spec names)."""
    spec = get_spec(name)
    if spec.module is None:
        raise AgentError(
            f"{name!r} is a baseline and is not trained; evaluate it directly: "
            f"`rlsuite evaluate --agent {name} --env ENV_ID`. Trainable agents: {', '.join(agent_names(True))}."
        )
    module_name, _, attribute = spec.module.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def make_baseline(name: str, env: gym.Env, seed: int = 0) -> Policy:
    """A policy for an agent that is not trained: random, or an env's heuristic controller.

    `env` is one plain instance of the env to be evaluated; a controller reads its spaces and parameters
    (never its live state: the controller acts on observations like any agent).
    """
    spec = get_spec(name)
    if spec.trainable:
        raise AgentError(f"{name!r} is trained, not a baseline: evaluate one of its run folders instead.")
    if spec.controller is None:
        return RandomPolicy(env.observation_space, env.action_space, seed=seed)
    env_id = env.spec.id if env.spec is not None else ""
    if spec.env_prefixes and not env_id.startswith(spec.env_prefixes):
        raise AgentError(
            f"The baseline {name!r} is a controller for {', '.join(spec.env_prefixes)} envs and cannot drive "
            f"{env_id or 'this env'}; the random baseline works on every env: --agent random."
        )
    module_name, _, class_name = spec.controller.partition(":")
    controller_cls = getattr(importlib.import_module(module_name), class_name)
    return controller_cls(env)


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
    from rlsuite.agents.checkpoint import read_checkpoint_meta  # torch: imported only when a policy is loaded

    run = RunFolder.open(run_dir)
    manifest = run.manifest
    module = agent_module(manifest["agent"])
    available = run.list_checkpoints()
    if checkpoint == "best" and "best" not in available and "last" in available:
        checkpoint = "last"
    path = run.find_checkpoint(checkpoint)
    meta = read_checkpoint_meta(path)
    return LoadedPolicy(module.load_policy(path, device=device), manifest, path.name.removesuffix(".safetensors"), int(meta["step"]))
