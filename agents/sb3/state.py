"""SB3 models without pickle: the policy spec as JSON, every torch state as safetensors tensors, and the
policy that evaluation calls."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from rlsuite.agents.checkpoint import (
    load_checkpoint,
    load_module_tensors,
    load_optimizer_state,
    module_tensors,
    optimizer_state,
)
from rlsuite.agents.interface import AgentError
from rlsuite.agents.sb3.algorithms import Algorithm, get_algorithm
from rlsuite.agents.tensors import resolve_device
from rlsuite.envs import make_env


# Classes a policy spec may name; anything else in a spec is refused, so a checkpoint cannot make us
# import or call arbitrary code.
def _allowed_classes() -> dict[str, type]:
    from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor, NatureCNN

    from rlsuite.policies.sb3_extractor import RLSuiteExtractor

    classes: list[type] = [RLSuiteExtractor, FlattenExtractor, NatureCNN, CombinedExtractor,
                           nn.Tanh, nn.ReLU, nn.ELU, nn.SiLU, nn.LeakyReLU, nn.GELU,
                           torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.SGD]
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in classes}


def _encode(value: Any) -> Any:
    """policy_kwargs -> JSON: allowed classes become {"class": dotted name}; tuples become lists."""
    if isinstance(value, type):
        name = f"{value.__module__}.{value.__qualname__}"
        if name not in _allowed_classes():
            raise AgentError(f"cannot store the policy argument class {name} in a safe checkpoint; "
                             f"supported classes: {', '.join(_allowed_classes())}.")
        return {"class": name}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise AgentError(f"cannot store the policy argument {value!r} ({type(value).__name__}) in a safe checkpoint.")


def _decode(value: Any) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {"class"}:
            allowed = _allowed_classes()
            if value["class"] not in allowed:
                raise AgentError(f"checkpoint names the class {value['class']!r}, which is not allowed; "
                                 f"accepted: {', '.join(allowed)}.")
            return allowed[value["class"]]
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def policy_spec(algo: Algorithm, model: Any) -> dict[str, Any]:
    """The JSON that rebuilds `model.policy`: algorithm, policy class name and constructor arguments."""
    spec = {"algorithm": algo.agent, "policy_class": type(model.policy).__name__,
            "policy_kwargs": _encode(model.policy_kwargs)}
    if algo.on_policy:
        spec["use_sde"] = bool(model.use_sde)  # on-policy algorithms pass it beside policy_kwargs
    return spec


def sb3_observation_space(space: gym.Space) -> gym.Space:
    """The observation space SB3 builds its policy for: channel-last images transposed (VecTransposeImage)."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    def one(sub: gym.Space) -> gym.Space:
        if is_image_space(sub) and not is_image_space_channels_first(sub):  # type: ignore[arg-type]
            return VecTransposeImage.transpose_space(sub)  # type: ignore[arg-type]
        return sub

    if isinstance(space, spaces.Dict):
        return spaces.Dict({key: one(sub) for key, sub in space.spaces.items()})
    return one(space)


def build_policy(spec: Mapping[str, Any], observation_space: gym.Space, action_space: gym.Space) -> Any:
    """Construct the SB3 policy a spec describes, for the env's spaces (weights still to be loaded)."""
    algo = get_algorithm(str(spec.get("algorithm")))
    candidates = {cls.__name__: cls for cls in algo.sb3_class().policy_aliases.values()}
    name = spec.get("policy_class")
    if name not in candidates:
        raise AgentError(f"checkpoint names the policy class {name!r}, unknown to {algo.agent}; "
                         f"accepted: {', '.join(candidates)}.")
    kwargs = _decode(spec.get("policy_kwargs", {}))
    if algo.on_policy:
        kwargs["use_sde"] = bool(spec.get("use_sde", False))
    return candidates[name](sb3_observation_space(observation_space), action_space, lambda _: 0.0, **kwargs)


# ----------------------------------------------------------------------------------- policy for evaluation


class SB3Policy:
    """An SB3 policy behind our Policy interface (what evaluation, recording and reports call)."""

    def __init__(self, policy: Any, observation_space: gym.Space, action_space: gym.Space, recurrent: bool) -> None:
        self.policy = policy
        self.observation_space = observation_space  # the env's own spaces (SB3's may be transposed)
        self.action_space = action_space
        self.recurrent = recurrent
        self._state: Any = None

    def reset(self, num_envs: int) -> None:
        self._state = None

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if self.recurrent:
            if self._state is not None and self._state[0].shape[1] != len(episode_start):
                self._state = None
            actions, self._state = self.policy.predict(obs, state=self._state, episode_start=episode_start,
                                                       deterministic=deterministic)
            return actions
        actions, _ = self.policy.predict(obs, deterministic=deterministic)
        return actions


# ------------------------------------------------------------------------------------------- checkpoints


def _recursive_getattr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def model_state(model: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Everything SB3's own `save` keeps in torch form, as tensors + JSON: modules under `net.<name>`,
    optimisers under `optim.<name>`, loose tensors (SAC's log_ent_coef) under `var.<name>`."""
    module_names, variable_names = model._get_torch_save_params()
    tensors: dict[str, torch.Tensor] = {}
    optim_meta: dict[str, Any] = {}
    for name in module_names:
        obj = _recursive_getattr(model, name)
        if isinstance(obj, torch.optim.Optimizer):
            t, m = optimizer_state(f"optim.{name}", obj)
            tensors.update(t)
            optim_meta.update(m)
        else:
            tensors.update(module_tensors(f"net.{name}", obj))
    for name in variable_names:
        tensors[f"var.{name}"] = _recursive_getattr(model, name).detach()
    return tensors, {"optimizers": optim_meta, "modules": module_names, "variables": variable_names}


def load_model_state(model: Any, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Inverse of `model_state` on a freshly constructed model of the same settings."""
    module_names, variable_names = model._get_torch_save_params()
    for name in module_names:
        obj = _recursive_getattr(model, name)
        if isinstance(obj, torch.optim.Optimizer):
            load_optimizer_state(f"optim.{name}", obj, tensors, meta["optimizers"])
        else:
            load_module_tensors(f"net.{name}", obj, tensors)
    with torch.no_grad():
        for name in variable_names:
            _recursive_getattr(model, name).copy_(tensors[f"var.{name}"])


def load_policy(checkpoint: Path, device: str = "cpu") -> SB3Policy:
    """Rebuild the SB3 policy from the checkpoint's JSON spec and the env's spaces; load its weights."""
    tensors, meta = load_checkpoint(checkpoint, resolve_device(device))
    if "sb3" not in meta:
        raise AgentError(f"{checkpoint} is not a Stable-Baselines3 checkpoint (no policy spec in its metadata).")
    spec = meta["sb3"]
    stored = meta.get("settings", {})
    env = make_env(meta["env_id"], preset=str(stored.get("env_preset") or ""), **dict(stored.get("env_kwargs") or {}))
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    policy = build_policy(spec, obs_space, act_space).to(resolve_device(device))
    load_module_tensors("net.policy", policy, tensors)
    policy.set_training_mode(False)
    return SB3Policy(policy, obs_space, act_space, get_algorithm(spec["algorithm"]).recurrent)
