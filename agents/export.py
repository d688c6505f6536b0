"""Export a trained policy to ONNX: one graph from the raw env observation to the env action, verified.

`export_run(run_dir, out)` loads a checkpoint through the agent registry (the very policy object that
evaluation acts with), wraps it in `PolicyGraph`, a torch module that does in tensors everything the
policy object does around its network in Python: the observation normaliser with the checkpoint's
statistics, image scaling and layout, the deterministic action (argmax / mean), clipping or unscaling
into the action space, and for recurrent policies the LSTM state as explicit inputs and outputs, cleared
where `episode_start` is set. The module is traced to ONNX, the rlsuite metadata is added, and the file
is run in onnxruntime beside the PyTorch policy on real episodes of the env (several sub-envs, so
recurrent state is carried across episode resets); a single differing action (discrete: any; Box: beyond
`ATOL + RTOL * |action|`) and nothing is written. The file is written atomically.

Graph interface (also in docs/export.md), B = batch (sub-envs):

| name                        | shape, dtype                                 | when |
|-----------------------------|----------------------------------------------|------|
| in  `obs`                   | (B, *obs shape), the observation's dtype     | Box / Discrete / Multi* observations |
| in  `obs.<key>`             | one per key of a Dict, in sorted key order   | Dict observations |
| in  `episode_start`         | (B,) bool: True on an episode's first step   | recurrent |
| in  `lstm_h`, `lstm_c`      | (L, B, H) float32: the previous step's state | recurrent |
| out `action`                | (B, *action shape): int64 or the Box's dtype | always |
| out `lstm_h_out`, `lstm_c_out` | (L, B, H) float32                          | recurrent |

The adapter from a loaded policy to tensors (`policy_graph`) is the one place here that knows the
policy classes; everything else reads only the registry's `LoadedPolicy`.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlsuite.agents.fileio import atomic_write_bytes
from rlsuite.agents.interface import Policy
from rlsuite.agents.normalize import ObsNormalizer
from rlsuite.agents.onnx_policy import (
    FORMAT,
    INSTALL_HINT,
    ExportError,
    OnnxPolicy,
    open_session,
    read_metadata,
    space_to_json,
)
from rlsuite.agents.registry import LoadedPolicy, load_policy
from rlsuite.envs import make_vec_env
from rlsuite.policies import SequenceEncoder

OPSET = 17
"""ONNX opset of exported graphs (onnxruntime >= 1.11 runs it)."""

ATOL = 1e-4
RTOL = 1e-4
"""Box actions of the file and of the PyTorch policy may differ by at most ATOL + RTOL * |action| (env units):
float32 kernels of onnxruntime and PyTorch round differently, nothing more. Discrete actions must be equal."""

VERIFY_SEED = 5_000_000
"""First env seed of the verification episodes: apart from training seeds and the harness's test (1M-2M) and
validation (2M-3M) seeds."""


# ---------------------------------------------------------------------------------------------- the adapter


class _Normalize(nn.Module):
    """ObsNormalizer.normalize in the graph: (x - mean) / sqrt(var + eps), clipped, in float64 like NumPy's,
    then float32; the same arithmetic, so discrete actions do not flip on rounding."""

    def __init__(self, normalizer: ObsNormalizer) -> None:
        super().__init__()
        self.paths = list(normalizer.stats)
        self.clip = normalizer.clip
        for i, path in enumerate(self.paths):
            rms = normalizer.stats[path]
            self.register_buffer(f"mean{i}", torch.as_tensor(rms.mean, dtype=torch.float64))
            self.register_buffer(f"std{i}", torch.as_tensor(np.sqrt(rms.var + normalizer.epsilon), dtype=torch.float64))

    def forward(self, obs: Any) -> Any:
        for i, path in enumerate(self.paths):
            mean, std = getattr(self, f"mean{i}"), getattr(self, f"std{i}")
            x = obs[path] if path else obs
            z = ((x.to(torch.float64) - mean) / std).clamp(-self.clip, self.clip).to(torch.float32)  # (B, *shape)
            if path:
                obs = {**obs, path: z}
            else:
                obs = z
        return obs


class _ActorCriticAct(nn.Module):
    """PPO, A2C, REINFORCE (agents/actor_critic.py's ActorCriticPolicy.act): features, head, mode, to_env."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.network = policy.network
        core = self.network.core
        self.state_shape = (1, core.hidden_size) if core is not None else None

    def forward(self, obs: Any, state: tuple[torch.Tensor, torch.Tensor] | None) -> Any:
        net = self.network
        # the method the policy acts with; recurrent: one step (T = 1), the caller already cleared the rows
        # whose episode starts, so no row restarts here
        starts = torch.zeros_like(state[0][0, :, 0])[None] if state is not None else None  # (1, B)
        features, _, state = net.features(obs, state, starts)  # (B, F)
        dist = net.actor(features)
        return dist.to_env(dist.mode()), state


class _QAct(nn.Module):
    """DQN and DRQN (agents/dqn.py's DQNPolicy.act): greedy action of the Q-network."""

    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.network = policy.network
        core = self.network.core
        self.state_shape = (1, core.hidden_size) if core is not None else None
        self.start = int(policy.action_space.start)

    def forward(self, obs: Any, state: tuple[torch.Tensor, torch.Tensor] | None) -> Any:
        net = self.network
        if state is None:
            q = net(obs)  # (B, A)
        else:  # one step (T = 1) of the sequence forward, as DQNPolicy.act runs it; rows already cleared
            starts = torch.zeros_like(state[0][0, :, 0])[None]  # (1, B)
            obs_seq = {k: v[None] for k, v in obs.items()} if isinstance(obs, dict) else obs[None]
            q, state = net.forward_sequence(obs_seq, starts, state)
            q = q[0]  # (B, A)
        return q.argmax(dim=1) + self.start, state


class _SB3Act(nn.Module):
    """The SB3 agents (agents/sb3.py's SB3Policy.act -> SB3's `predict`): channel-last images transposed
    as SB3's obs_to_tensor does, `_predict(deterministic=True)` (RecurrentPPO: its LSTM for one step), then
    predict's post-processing of Box actions: unscaled from [-1, 1] when the policy squashes, else clipped."""

    low: torch.Tensor  # (A,) Box actions only
    high: torch.Tensor

    def __init__(self, policy: Any, observation_space: gym.Space, action_space: gym.Space) -> None:
        super().__init__()
        self.policy = policy.policy
        self.recurrent = bool(policy.recurrent)
        sb3_space = self.policy.observation_space
        pairs = (list(observation_space.spaces.items()) if isinstance(observation_space, spaces.Dict)
                 else [("", observation_space)])
        sb3_sub = sb3_space.spaces if isinstance(sb3_space, spaces.Dict) else {"": sb3_space}
        # keys whose images SB3 holds channel-first while the env gives them channel-last (VecTransposeImage)
        self.transposed = [key for key, sub in pairs
                           if isinstance(sub, spaces.Box) and sub.shape != sb3_sub[key].shape and len(sub.shape) == 3]
        self.state_shape = ((int(self.policy.lstm_actor.num_layers), int(self.policy.lstm_actor.hidden_size))
                            if self.recurrent else None)
        self.box = isinstance(action_space, spaces.Box)
        self.action_shape = tuple(action_space.shape) if action_space.shape is not None else ()
        if isinstance(action_space, spaces.Box):
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))
        self.squash = bool(self.policy.squash_output)

    def forward(self, obs: Any, state: tuple[torch.Tensor, torch.Tensor] | None) -> Any:
        from stable_baselines3.common.policies import BaseModel

        for key in self.transposed:
            if key:
                obs = {**obs, key: obs[key].permute(0, 3, 1, 2)}
            else:
                obs = obs.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        policy = self.policy
        if state is None:
            actions = policy._predict(obs, deterministic=True)
        else:  # sb3_contrib's get_distribution for one step (its _process_sequence with T = 1)
            features = BaseModel.extract_features(policy, obs, policy.pi_features_extractor)  # (B, F)
            out, state = policy.lstm_actor(features[None], state)  # (1, B, H)
            latent = policy.mlp_extractor.forward_actor(out[0])
            actions = policy._get_action_dist_from_latent(latent).get_actions(deterministic=True)
        actions = actions.reshape(-1, *self.action_shape)
        if self.box:
            if self.squash:
                actions = self.low + 0.5 * (actions + 1.0) * (self.high - self.low)
            else:
                actions = torch.maximum(torch.minimum(actions, self.high), self.low)
        return actions, state


def policy_graph(loaded: LoadedPolicy) -> PolicyGraph:
    """The torch module of a loaded policy, from raw observation to env action (a deep copy: the loaded
    policy is not changed)."""
    from rlsuite.agents.actor_critic import ActorCriticPolicy
    from rlsuite.agents.dqn import DQNPolicy
    from rlsuite.agents.sb3 import SB3Policy

    policy = copy.deepcopy(loaded.policy)
    obs_space, act_space = policy.observation_space, policy.action_space
    normalizer = None
    act: nn.Module
    if isinstance(policy, ActorCriticPolicy):
        act = _ActorCriticAct(policy)
        normalizer = policy.obs_normalizer if policy.obs_normalizer is not None and policy.obs_normalizer.active else None
    elif isinstance(policy, DQNPolicy):
        act = _QAct(policy)
    elif isinstance(policy, SB3Policy):
        act = _SB3Act(policy, obs_space, act_space)
    else:
        raise ExportError(f"the agent {loaded.manifest.get('agent')!r} has no ONNX export (its policy is a "
                          f"{type(policy).__name__}); exportable agents: ppo, a2c, reinforce, dqn and the sb3-* agents.")
    return PolicyGraph(obs_space, act_space, act, normalizer)


class PolicyGraph(nn.Module):
    """A policy as one function of tensors: observation inputs [+ episode_start, lstm_h, lstm_c] -> action
    [+ lstm_h_out, lstm_c_out] (the module docstring's table)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, act: nn.Module,
                 normalizer: ObsNormalizer | None) -> None:
        super().__init__()
        self.keys: list[str] | None = (sorted(observation_space.spaces) if isinstance(observation_space, spaces.Dict)
                                       else None)
        self.normalize = _Normalize(normalizer) if normalizer is not None else None
        self.act = act
        self.state_shape: tuple[int, int] | None = getattr(act, "state_shape", None)
        self.action_dtype = _torch_dtype(np.int64 if not isinstance(action_space, spaces.Box) else action_space.dtype)
        for module in self.modules():  # the plain forward: the rollout-time cache of repeated rows is not a graph
            if isinstance(module, SequenceEncoder):
                module.forward = module.encode  # type: ignore[method-assign]

    @property
    def input_names(self) -> list[str]:
        names = [f"obs.{key}" for key in self.keys] if self.keys is not None else ["obs"]
        return names + (["episode_start", "lstm_h", "lstm_c"] if self.state_shape is not None else [])

    @property
    def output_names(self) -> list[str]:
        return ["action"] + (["lstm_h_out", "lstm_c_out"] if self.state_shape is not None else [])

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        n_obs = len(self.keys) if self.keys is not None else 1
        obs: Any = dict(zip(self.keys, inputs[:n_obs], strict=True)) if self.keys is not None else inputs[0]
        if self.normalize is not None:
            obs = self.normalize(obs)
        if self.state_shape is None:
            action, _ = self.act(obs, None)
            return action.to(self.action_dtype)
        episode_start, h, c = inputs[n_obs:]
        keep = (~episode_start).to(h.dtype)[None, :, None]  # (1, B, 1): 0 clears the rows whose episode starts
        action, (h, c) = self.act(obs, (h * keep, c * keep))
        return action.to(self.action_dtype), h, c


def _torch_dtype(dtype: Any) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=dtype)).dtype


# ------------------------------------------------------------------------------------------ tracing to ONNX


def _example_inputs(graph: PolicyGraph, observation_space: gym.Space, batch: int = 3) -> tuple[torch.Tensor, ...]:
    """Inputs to trace with: space samples (a batch size that the verification does not use, so a size frozen
    into the trace would show), rows that start and rows that continue an episode."""
    subs = ([observation_space.spaces[k] for k in graph.keys] if graph.keys is not None and isinstance(observation_space, spaces.Dict)
            else [observation_space])
    rng = np.random.default_rng(0)
    tensors = []
    for sub in subs:
        sub.seed(int(rng.integers(2**31)))
        sample = np.stack([np.asarray(sub.sample()) for _ in range(batch)])  # (B, *shape) in the space's dtype
        tensors.append(torch.as_tensor(sample))
    if graph.state_shape is not None:
        layers, hidden = graph.state_shape
        tensors += [torch.arange(batch) % 2 == 0, torch.zeros(layers, batch, hidden), torch.zeros(layers, batch, hidden)]
    return tuple(tensors)


@contextmanager
def _quiet_tracing() -> Iterator[None]:
    """No argument validation in torch.distributions while tracing (SB3's distributions check their arguments
    with Python `if`s, which a trace cannot hold and which the verification replaces), and no tracer notes."""
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)


def to_onnx(graph: PolicyGraph, observation_space: gym.Space) -> bytes:
    """Trace `graph` into ONNX bytes with a dynamic batch dimension."""
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise ExportError(f"exporting needs the onnx package; {INSTALL_HINT}.") from None
    graph.eval()
    inputs = _example_inputs(graph, observation_space)
    dynamic = {name: {0: "batch"} for name in graph.input_names + graph.output_names}
    for name in ("lstm_h", "lstm_c", "lstm_h_out", "lstm_c_out"):
        if name in dynamic:
            dynamic[name] = {1: "batch"}
    buffer = io.BytesIO()
    with torch.no_grad(), _quiet_tracing():
        torch.onnx.export(graph, inputs, buffer,  # type: ignore[arg-type]  # the TorchScript exporter takes file objects
                          input_names=graph.input_names, output_names=graph.output_names,
                          dynamic_axes=dynamic, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def with_metadata(model_bytes: bytes, metadata: dict[str, Any]) -> bytes:
    """The model with `format` and every metadata entry (as JSON text) in its metadata_props, checked by onnx."""
    import onnx

    model = onnx.load_from_string(model_bytes)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, {"format": FORMAT, **{k: json.dumps(v) for k, v in metadata.items()}})
    model.producer_name = "rlsuite"
    onnx.checker.check_model(model)
    return model.SerializeToString()


# -------------------------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verification:
    """What the verification ran and the largest difference it saw."""

    steps: int
    """Vector-env steps compared (each compares `n_envs` actions)."""
    episodes: int
    """Episodes that ended during the comparison (their resets were fed to both policies)."""
    n_envs: int
    max_abs_diff: float
    """Largest |file action - PyTorch action| (0 for discrete actions, which must be equal)."""

    def as_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "episodes": self.episodes, "n_envs": self.n_envs, "max_abs_diff": self.max_abs_diff,
                "atol": ATOL, "rtol": RTOL, "seed": VERIFY_SEED}


def verify(torch_policy: Policy, onnx_policy: OnnxPolicy, env_id: str, *, episodes: int, max_steps: int,
           n_envs: int = 2, env_kwargs: dict[str, Any] | None = None) -> Verification:
    """Run both policies on the same observations from real episodes (the PyTorch policy's actions drive the
    env) until `episodes` episodes ended or `max_steps` vector steps passed; ExportError at the first
    differing action."""
    envs = make_vec_env(env_id, n_envs, mode="sync", record_stats=False, purpose="eval", **dict(env_kwargs or {}))
    box = isinstance(torch_policy.action_space, spaces.Box)
    worst = 0.0
    ended = 0
    try:
        obs, _ = envs.reset(seed=[VERIFY_SEED + i for i in range(n_envs)])  # type: ignore[arg-type]  # one seed per sub-env
        torch_policy.reset(n_envs)
        onnx_policy.reset(n_envs)
        episode_start = np.ones(n_envs, dtype=bool)
        step = 0
        while step < max_steps and ended < episodes:
            expected = np.asarray(torch_policy.act(obs, episode_start, deterministic=True))
            got = onnx_policy.act(obs, episode_start, deterministic=True)
            if got.shape != expected.shape:
                raise ExportError(f"the exported graph returns actions of shape {got.shape}, the PyTorch policy "
                                  f"{expected.shape}; nothing was written.")
            if box:
                diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
                worst = max(worst, float(diff.max()))
                bad = diff > ATOL + RTOL * np.abs(expected)
            else:
                bad = got != expected
            if bad.any():
                raise ExportError(
                    f"the exported graph's action differs from the PyTorch policy's at verification step {step} "
                    f"(sub-env {int(np.flatnonzero(bad.reshape(n_envs, -1).any(1))[0])}): {got.tolist()} against "
                    f"{expected.tolist()} (allowed: {'equal' if not box else f'{ATOL} + {RTOL} * |action|'}); "
                    "nothing was written. Please report this with the run folder.")
            obs, _, terminated, truncated, _ = envs.step(expected)
            episode_start = np.logical_or(terminated, truncated)
            ended += int(episode_start.sum())
            step += 1
    finally:
        envs.close()
    return Verification(steps=step, episodes=ended, n_envs=n_envs, max_abs_diff=worst)


# -------------------------------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportResult:
    path: Path
    metadata: dict[str, Any]
    verification: Verification


def export_run(run_dir: Path, out: Path, *, checkpoint: str | int = "best", verify_episodes: int = 4,
               verify_max_steps: int = 5_000) -> ExportResult:
    """Export a run folder's checkpoint to `out`: trace, add metadata, verify against PyTorch, write atomically."""
    import rlsuite

    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder; give a file path, e.g. {out / 'policy.onnx'}.")
    if not out.parent.is_dir():
        raise ExportError(f"the folder of --out {out} does not exist; create it or choose another path.")
    if verify_episodes < 1 or verify_max_steps < 1:
        raise ExportError("verification needs at least one episode and one step (--verify-episodes, --verify-steps).")
    loaded = load_policy(Path(run_dir), checkpoint)
    manifest = loaded.manifest
    settings = dict(manifest.get("settings") or {})
    env_id = str(manifest["env_id"])
    env_kwargs: dict[str, Any] = dict(settings.get("env_kwargs") or {})
    preset = str(settings.get("env_preset") or "")
    if preset:
        env_kwargs["preset"] = preset
    graph = policy_graph(loaded)
    obs_space, act_space = loaded.policy.observation_space, loaded.policy.action_space
    metadata: dict[str, Any] = {
        "agent": manifest["agent"], "env_id": env_id, "env_kwargs": dict(settings.get("env_kwargs") or {}),
        "env_preset": preset, "settings": settings, "run": manifest.get("name"), "label": manifest.get("label"),
        "validation_seeds": manifest.get("validation_seeds"), "git_commit": manifest.get("git_commit"),
        "checkpoint": loaded.checkpoint, "checkpoint_step": loaded.step,
        "rlsuite_version": getattr(rlsuite, "__version__", "unknown"), "torch_version": torch.__version__,
        "opset": OPSET, "observation_space": space_to_json(obs_space), "action_space": space_to_json(act_space),
        "inputs": {"observation": graph.input_names[: len(graph.keys) if graph.keys is not None else 1],
                   "observation_keys": graph.keys, "recurrent": graph.input_names[len(graph.keys or [0]):]},
        "outputs": graph.output_names,
        "recurrent_state": ({"layers": graph.state_shape[0], "hidden": graph.state_shape[1]}
                            if graph.state_shape is not None else None),
        "deterministic": True,
    }
    model = with_metadata(to_onnx(graph, obs_space), metadata)
    session = open_session(model)
    onnx_policy = OnnxPolicy(session, read_metadata(session, str(out)), source=str(out))
    result = verify(loaded.policy, onnx_policy, env_id, episodes=verify_episodes, max_steps=verify_max_steps,
                    env_kwargs=env_kwargs)
    metadata["verification"] = result.as_dict()
    atomic_write_bytes(out, with_metadata(model, metadata))
    return ExportResult(out, metadata, result)
