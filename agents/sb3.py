"""Stable-Baselines3 agents on our backbone, our CLI, our run folders and our safe checkpoints.

Seven agents, one table (`ALGORITHMS`): sb3-ppo, sb3-a2c, sb3-dqn, sb3-sac, sb3-td3 from
stable-baselines3 and sb3-recurrent-ppo, sb3-qrdqn from sb3-contrib. Each is SB3's own algorithm class,
unchanged, trained by SB3's `learn()`; what rlsuite supplies around it:

- the network's perception: `RLSuiteExtractor` (policies/sb3_extractor.py), i.e. `make_encoder`, so an
  SB3 agent holds the very encoder classes our agents use (the sharing rule for actor and critic is
  stated there);
- the envs: our vector envs through `SB3VecEnv` (same-step autoreset, `terminal_observation`);
- settings: one typed dataclass per algorithm (its SB3 constructor arguments, our defaults = SB3's), so
  `--set` and `presets/sb3-*.yaml` are checked field by field like every agent's;
- a callback that feeds our metric logger (SB3's logger keys mapped into charts/..., losses/...), the
  progress bar, periodic evaluation through our harness (fixed seeds), best/last/step checkpoints and
  Ctrl-C;
- checkpoints without pickle: every torch state SB3 itself would save (policy weights, optimisers,
  SAC's entropy coefficient) as safetensors tensors, plus the policy's constructor arguments as JSON
  (`policy_spec`). Loading builds the SB3 policy class from that JSON and loads the weights; classes
  are looked up by name in fixed allow-lists, never imported from a string.

The replay buffer of the off-policy agents is not checkpointed (it can be gigabytes): a resumed run
refills it for `learning_starts` steps before it trains again.
"""

from __future__ import annotations

import hashlib
import importlib
import time
import zipfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from rlsuite.agents.interface import AgentError, TrainContext, TrainResult
from rlsuite.agents.run import RunFolder, step_checkpoint_name
from rlsuite.agents.settings import ConfigError, TrainSettings, settings_to_dict
from rlsuite.agents.tensors import resolve_device
from rlsuite.envs import make_env
from rlsuite.policies import SpaceError, make_encoder

# --------------------------------------------------------------------------------------------- settings


@dataclass
class SB3Settings(TrainSettings):
    learning_rate: float = 3e-4
    """Optimiser step size (at the start of training when annealed)."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over training (RL Zoo's `lin_<lr>`)."""
    gamma: float = 0.99
    """Discount factor."""
    encoder_hidden: tuple[int, ...] = (64, 64)
    """MLP widths of our encoder for vector observations (the features extractor); () flattens only."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "tanh"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    cnn: Literal["nature", "impala"] = "nature"
    """CNN of our encoder for image observations."""
    net_arch: tuple[int, ...] = ()
    """SB3's layers between the encoder and the heads (for the actor and for the critic each); () puts the
    heads straight on the encoder's features, like our PPO."""
    share_features_extractor: bool | None = None
    """One encoder for actor and critic. None: SB3's convention (shared on-policy; separate for SAC and TD3);
    DQN and QR-DQN have a single Q-network and take no value here."""

    def validate(self) -> None:
        super().validate()
        self.require(self.learning_rate > 0, "learning_rate", "must be > 0")
        self.require(0.0 <= self.gamma <= 1.0, "gamma", "must lie in [0, 1]")
        self.require(all(w >= 1 for w in self.encoder_hidden), "encoder_hidden", "widths must be >= 1")
        self.require(all(w >= 1 for w in self.net_arch), "net_arch", "widths must be >= 1")


@dataclass
class OnPolicySettings(SB3Settings):
    n_steps: int = 2048
    """Env steps per sub-env per rollout."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is one-step TD, 1 is Monte Carlo."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value loss coefficient."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    normalize_advantage: bool = True
    """Normalise advantages per minibatch."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian actions (Box action spaces)."""
    ortho_init: bool = True
    """SB3's orthogonal initialisation of the encoder (gain sqrt 2) and heads (0.01 actor, 1 critic)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.n_steps >= 1, "n_steps", "must be >= 1")
        self.require(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", "must lie in [0, 1]")


@dataclass
class PPOSettings(OnPolicySettings):
    batch_size: int = 64
    """Minibatch size (transitions) of each gradient step; n_envs * n_steps should be a multiple of it."""
    n_epochs: int = 10
    """Passes over each rollout."""
    clip_range: float = 0.2
    """PPO ratio clip."""
    anneal_clip: bool = False
    """Decay the clip range linearly to 0 (RL Zoo's `lin_0.2`)."""
    target_kl: float | None = None
    """Stop an update's epochs early once the approximate KL exceeds this (None: never)."""

    def validate(self) -> None:
        super().validate()
        rollout = self.n_envs * self.n_steps
        self.require(1 < self.batch_size <= rollout, "batch_size",
                     f"must lie in [2, n_envs * n_steps = {rollout}] (advantages are normalised per minibatch)")
        self.require(self.n_epochs >= 1, "n_epochs", "must be >= 1")
        self.require(self.clip_range > 0, "clip_range", "must be > 0")


@dataclass
class RecurrentPPOSettings(PPOSettings):
    n_steps: int = 128
    """Env steps per sub-env per rollout."""
    batch_size: int = 128
    """Minibatch size (transitions, cut into whole sequences) of each gradient step."""
    lstm_hidden_size: int = 256
    """LSTM hidden size."""
    n_lstm_layers: int = 1
    """Stacked LSTM layers."""
    shared_lstm: bool = False
    """Actor and critic share one LSTM (the critic's gradient then stops before it)."""
    enable_critic_lstm: bool = True
    """The critic has its own LSTM (when not shared); false: the critic reads the encoder's features."""

    def validate(self) -> None:
        super().validate()
        self.require(self.lstm_hidden_size >= 1, "lstm_hidden_size", "must be >= 1")
        self.require(not (self.shared_lstm and self.enable_critic_lstm), "shared_lstm",
                     "cannot be true together with enable_critic_lstm=true (set one of them false)")


@dataclass
class A2CSettings(OnPolicySettings):
    learning_rate: float = 7e-4
    """Optimiser step size (at the start of training when annealed)."""
    n_steps: int = 5
    """Env steps per sub-env per update."""
    gae_lambda: float = 1.0
    """GAE lambda (1: plain n-step returns, A2C's classic choice)."""
    normalize_advantage: bool = False
    """Normalise advantages per update."""
    use_rms_prop: bool = True
    """RMSprop (alpha 0.99) as in the A2C paper instead of Adam."""
    rms_prop_eps: float = 1e-5
    """RMSprop epsilon."""


@dataclass
class OffPolicySettings(SB3Settings):
    n_envs: int = 1
    """Number of sub-envs stepped together in one vector env."""
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions)."""
    learning_starts: int = 100
    """Env steps of experience collected before the first gradient step."""
    batch_size: int = 256
    """Transitions per gradient step."""
    tau: float = 0.005
    """Polyak coefficient of the target network update (1: hard copy)."""
    train_freq: int = 1
    """Env steps (per sub-env) between training phases."""
    gradient_steps: int = 1
    """Gradient steps per training phase (-1: as many as env steps collected)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.buffer_size >= 1, "buffer_size", "must be >= 1")
        self.require(self.learning_starts >= 0, "learning_starts", "must be >= 0")
        self.require(self.batch_size >= 1, "batch_size", "must be >= 1")
        self.require(0.0 < self.tau <= 1.0, "tau", "must lie in (0, 1]")
        self.require(self.train_freq >= 1, "train_freq", "must be >= 1")
        self.require(self.gradient_steps >= 1 or self.gradient_steps == -1, "gradient_steps", "must be >= 1 or -1")


@dataclass
class DQNSettings(OffPolicySettings):
    learning_rate: float = 1e-4
    """Adam step size (at the start of training when annealed)."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "relu"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    batch_size: int = 32
    """Transitions per gradient step."""
    tau: float = 1.0
    """Polyak coefficient of the target network update (1: hard copy)."""
    train_freq: int = 4
    """Env steps (per sub-env) between training phases."""
    target_update_interval: int = 10_000
    """Env steps between target network updates."""
    exploration_fraction: float = 0.1
    """Fraction of training over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start."""
    exploration_final_eps: float = 0.05
    """Epsilon after the decay."""
    max_grad_norm: float | None = 10.0
    """Global gradient-norm clip (None: none)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.share_features_extractor is None, "share_features_extractor",
                     "must stay unset (none): DQN-style agents have one Q-network and no actor")
        self.require(self.target_update_interval >= 1, "target_update_interval", "must be >= 1")
        for name in ("exploration_fraction", "exploration_initial_eps", "exploration_final_eps"):
            self.require(0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")


@dataclass
class QRDQNSettings(DQNSettings):
    learning_rate: float = 5e-5
    """Adam step size (at the start of training when annealed)."""
    exploration_fraction: float = 0.005
    """Fraction of training over which epsilon decays linearly."""
    exploration_final_eps: float = 0.01
    """Epsilon after the decay."""
    max_grad_norm: float | None = None
    """Global gradient-norm clip (None: none)."""
    n_quantiles: int = 200
    """Quantiles of the return distribution per action."""

    def validate(self) -> None:
        super().validate()
        self.require(self.n_quantiles >= 1, "n_quantiles", "must be >= 1")


@dataclass
class SACSettings(OffPolicySettings):
    encoder_hidden: tuple[int, ...] = ()
    """MLP widths of our encoder for vector observations; () flattens only, and SB3's net_arch layers follow
    (the critic must see the action before its hidden layers)."""
    net_arch: tuple[int, ...] = (256, 256)
    """SB3's layers after the encoder, for the actor and for each Q-network (which also reads the action)."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "relu"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    ent_coef: float | str = "auto"
    """Entropy coefficient: a number, `auto` (learned, starting at 1) or `auto_<start>` (learned)."""
    target_entropy: float | Literal["auto"] = "auto"
    """Target entropy of the learned coefficient; auto: -dim(actions)."""
    target_update_interval: int = 1
    """Gradient steps between target network updates."""

    def validate(self) -> None:
        super().validate()
        if isinstance(self.ent_coef, str):
            ok = self.ent_coef == "auto"
            if self.ent_coef.startswith("auto_"):
                try:
                    ok = float(self.ent_coef[5:]) > 0
                except ValueError:
                    ok = False
            self.require(ok, "ent_coef", "must be a number > 0, 'auto' or 'auto_<start>' such as auto_0.1")
        else:
            self.require(self.ent_coef >= 0, "ent_coef", "must be >= 0")
        self.require(self.target_update_interval >= 1, "target_update_interval", "must be >= 1")


@dataclass
class TD3Settings(OffPolicySettings):
    learning_rate: float = 1e-3
    """Adam step size (at the start of training when annealed)."""
    encoder_hidden: tuple[int, ...] = ()
    """MLP widths of our encoder for vector observations; () flattens only, and SB3's net_arch layers follow
    (the critic must see the action before its hidden layers)."""
    net_arch: tuple[int, ...] = (400, 300)
    """SB3's layers after the encoder, for the actor and for each Q-network (which also reads the action)."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "relu"
    """Activation of the encoder MLP and of SB3's net_arch layers."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""
    target_policy_noise: float = 0.2
    """Std of the noise added to target actions (target policy smoothing)."""
    target_noise_clip: float = 0.5
    """Clip of that noise."""
    action_noise_sigma: float = 0.1
    """Std of the Gaussian exploration noise, as a fraction of the action range's half-width (0: none)."""

    def validate(self) -> None:
        super().validate()
        self.require(self.policy_delay >= 1, "policy_delay", "must be >= 1")
        self.require(self.action_noise_sigma >= 0, "action_noise_sigma", "must be >= 0")


# ------------------------------------------------------------------------------------------- the table

_ON_POLICY_ACTIONS = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


@dataclass(frozen=True)
class Algorithm:
    """One SB3 algorithm as an rlsuite agent."""

    agent: str
    """The agent name (CLI, run folders, reports)."""
    package: str
    """Where the SB3 class lives: stable_baselines3 or sb3_contrib."""
    class_name: str
    settings: type[SB3Settings]
    on_policy: bool
    actions: tuple[type[gym.Space], ...]
    """Action space classes the algorithm handles."""
    recurrent: bool = False

    def sb3_class(self) -> Any:
        # Imported on use: `rlsuite list agents` and our own agents never pay for SB3's import.
        return getattr(importlib.import_module(self.package), self.class_name)


ALGORITHMS: dict[str, Algorithm] = {
    a.agent: a
    for a in (
        Algorithm("sb3-ppo", "stable_baselines3", "PPO", PPOSettings, True, _ON_POLICY_ACTIONS),
        Algorithm("sb3-a2c", "stable_baselines3", "A2C", A2CSettings, True, _ON_POLICY_ACTIONS),
        Algorithm("sb3-dqn", "stable_baselines3", "DQN", DQNSettings, False, (spaces.Discrete,)),
        Algorithm("sb3-sac", "stable_baselines3", "SAC", SACSettings, False, (spaces.Box,)),
        Algorithm("sb3-td3", "stable_baselines3", "TD3", TD3Settings, False, (spaces.Box,)),
        Algorithm("sb3-recurrent-ppo", "sb3_contrib", "RecurrentPPO", RecurrentPPOSettings, True,
                  (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary), recurrent=True),
        Algorithm("sb3-qrdqn", "sb3_contrib", "QRDQN", QRDQNSettings, False, (spaces.Discrete,)),
    )
}


def get_algorithm(agent: str) -> Algorithm:
    if agent not in ALGORITHMS:
        raise AgentError(f"{agent!r} is not a Stable-Baselines3 agent; accepted: {', '.join(ALGORITHMS)}.")
    return ALGORITHMS[agent]


def _linear(start: float) -> Callable[[float], float]:
    """SB3 schedule: `progress_remaining` goes 1 -> 0 over training."""
    return lambda progress_remaining: progress_remaining * start


_ACTIVATION_CLASSES: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def policy_kwargs(algo: Algorithm, s: SB3Settings) -> dict[str, Any]:
    """SB3 `policy_kwargs`: our encoder as the features extractor, SB3's layers and the sharing rule."""
    from rlsuite.policies.sb3_extractor import RLSuiteExtractor

    kwargs: dict[str, Any] = {
        "features_extractor_class": RLSuiteExtractor,
        "features_extractor_kwargs": {"mlp_hidden": list(s.encoder_hidden), "activation": s.activation, "cnn": s.cnn},
        "normalize_images": False,  # our encoders scale uint8 images themselves
        "activation_fn": _ACTIVATION_CLASSES[s.activation],
    }
    layers = list(s.net_arch)
    if algo.on_policy:
        kwargs["net_arch"] = {"pi": layers, "vf": list(layers)}
    elif algo.class_name in ("SAC", "TD3"):
        kwargs["net_arch"] = {"pi": layers, "qf": list(layers)}
    else:
        kwargs["net_arch"] = layers
    if s.share_features_extractor is not None:
        kwargs["share_features_extractor"] = s.share_features_extractor
    if isinstance(s, OnPolicySettings):
        kwargs["log_std_init"] = s.log_std_init
        kwargs["ortho_init"] = s.ortho_init
    if isinstance(s, RecurrentPPOSettings):
        kwargs.update(lstm_hidden_size=s.lstm_hidden_size, n_lstm_layers=s.n_lstm_layers, shared_lstm=s.shared_lstm,
                      enable_critic_lstm=s.enable_critic_lstm)
    if isinstance(s, QRDQNSettings):
        kwargs["n_quantiles"] = s.n_quantiles
    return kwargs


def algorithm_kwargs(algo: Algorithm, s: SB3Settings, action_space: gym.Space) -> dict[str, Any]:
    """The SB3 constructor's keyword arguments (besides policy, env, seed, device) from the settings."""
    lr: Any = _linear(s.learning_rate) if s.anneal_lr else s.learning_rate
    kw: dict[str, Any] = {"learning_rate": lr, "gamma": s.gamma}
    if isinstance(s, OnPolicySettings):
        kw.update(n_steps=s.n_steps, gae_lambda=s.gae_lambda, ent_coef=s.ent_coef, vf_coef=s.vf_coef,
                  max_grad_norm=s.max_grad_norm, normalize_advantage=s.normalize_advantage)
    if isinstance(s, PPOSettings):
        kw.update(batch_size=s.batch_size, n_epochs=s.n_epochs, target_kl=s.target_kl,
                  clip_range=_linear(s.clip_range) if s.anneal_clip else s.clip_range)
    if isinstance(s, A2CSettings):
        kw.update(use_rms_prop=s.use_rms_prop, rms_prop_eps=s.rms_prop_eps)
    if isinstance(s, OffPolicySettings):
        kw.update(buffer_size=s.buffer_size, learning_starts=s.learning_starts, batch_size=s.batch_size, tau=s.tau,
                  train_freq=s.train_freq, gradient_steps=s.gradient_steps)
    if isinstance(s, DQNSettings):
        kw.update(target_update_interval=s.target_update_interval, exploration_fraction=s.exploration_fraction,
                  exploration_initial_eps=s.exploration_initial_eps, exploration_final_eps=s.exploration_final_eps)
        if s.max_grad_norm is not None or isinstance(s, QRDQNSettings):
            kw["max_grad_norm"] = s.max_grad_norm
    if isinstance(s, SACSettings):
        kw.update(ent_coef=s.ent_coef, target_entropy=s.target_entropy, target_update_interval=s.target_update_interval)
    if isinstance(s, TD3Settings):
        kw.update(policy_delay=s.policy_delay, target_policy_noise=s.target_policy_noise,
                  target_noise_clip=s.target_noise_clip)
        if s.action_noise_sigma > 0:
            from stable_baselines3.common.noise import NormalActionNoise

            assert isinstance(action_space, spaces.Box)
            half_range = (action_space.high - action_space.low) / 2.0  # noise in env action units
            kw["action_noise"] = NormalActionNoise(np.zeros(action_space.shape), s.action_noise_sigma * half_range)
    return kw


def policy_alias(algo: Algorithm, observation_space: gym.Space) -> str:
    """SB3's policy name for the observation space (the features extractor is ours either way)."""
    dict_obs = isinstance(observation_space, spaces.Dict)
    if algo.recurrent:
        return "MultiInputLstmPolicy" if dict_obs else "MlpLstmPolicy"
    return "MultiInputPolicy" if dict_obs else "MlpPolicy"


def check_algorithm_spaces(algo: Algorithm, observation_space: gym.Space, action_space: gym.Space) -> None:
    if not isinstance(action_space, algo.actions):
        names = ", ".join(cls.__name__ for cls in algo.actions)
        raise AgentError(f"{algo.agent} cannot act in {action_space}: it supports {names} action spaces.")
    try:
        make_encoder(observation_space)
    except SpaceError as err:
        raise AgentError(f"{algo.agent} cannot read observations from {observation_space}: {err}") from None


# ----------------------------------------------------------------------------- the policy spec (JSON)

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


# -------------------------------------------------------------------------------------------- training

# SB3 logger key -> our flat namespace; other `train/*` keys go to `losses/*`, anything else is dropped
# (episode returns and lengths we log per episode ourselves).
_METRIC_KEYS = {
    "train/learning_rate": "charts/learning_rate",
    "train/clip_range": "charts/clip_range",
    "train/policy_gradient_loss": "losses/policy_loss",
    "train/entropy_loss": "losses/entropy",  # SB3 logs -entropy; we log the entropy, as our PPO does
    "train/clip_fraction": "losses/clipfrac",
    "train/std": "charts/action_std",
    "train/ent_coef": "charts/ent_coef",
    "train/n_updates": "charts/n_updates",
    "rollout/exploration_rate": "charts/exploration_rate",
    "time/fps": "charts/sps",
}


def metric_name(sb3_key: str) -> str | None:
    """Our metric key for an SB3 logger key, or None for keys we do not keep."""
    if sb3_key in _METRIC_KEYS:
        return _METRIC_KEYS[sb3_key]
    if sb3_key.startswith("train/"):
        return "losses/" + sb3_key.removeprefix("train/")
    return None


def _metric_writer(ctx: TrainContext, latest: dict[str, float]) -> Any:
    from stable_baselines3.common.logger import KVWriter

    class MetricWriter(KVWriter):
        """Receives SB3's logger dumps and writes them to our metric logger under our keys."""

        def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
            metrics: dict[str, float] = {}
            for key, value in key_values.items():
                name = metric_name(key)
                if name is None or isinstance(value, bool) or not isinstance(value, int | float | np.number):
                    continue
                value = float(value)
                metrics[name] = -value if key == "train/entropy_loss" else value
            latest.update(metrics)
            ctx.logger.log(step, metrics)

        def close(self) -> None:
            pass

    return MetricWriter()


def _train(algo: Algorithm, s: SB3Settings, ctx: TrainContext) -> TrainResult:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger

    from rlsuite.agents.sb3_vecenv import make_sb3_vec_env

    torch.set_num_threads(s.torch_threads)
    device = resolve_device(s.device)
    venv = make_sb3_vec_env(s.env_id, s.n_envs, s.vectorization, preset=s.env_preset, env_kwargs=s.env_kwargs)
    check_algorithm_spaces(algo, venv.observation_space, venv.action_space)
    env_obs_space, env_act_space = venv.observation_space, venv.action_space

    resume_tensors, resume_meta = (None, None)
    if ctx.resume_from is not None:
        resume_tensors, resume_meta = load_checkpoint(ctx.resume_from, device)
        if resume_meta.get("sb3", {}).get("algorithm") != algo.agent:
            raise AgentError(f"{ctx.resume_from} was not saved by {algo.agent}; resume it with its own agent.")
    start_step = int(resume_meta["step"]) if resume_meta is not None else 0
    # A resumed run restarts its episodes from fresh env seeds (env states cannot be checkpointed).
    seed = s.seed if resume_meta is None else s.seed + 1_000 + start_step
    model = algo.sb3_class()(policy_alias(algo, env_obs_space), venv, seed=seed, device=device, verbose=0,
                             policy_kwargs=policy_kwargs(algo, s),
                             **algorithm_kwargs(algo, s, env_act_space))
    latest: dict[str, float] = {}
    model.set_logger(Logger(folder=None, output_formats=[_metric_writer(ctx, latest)]))
    best_return: float | None = None
    if resume_meta is not None:
        assert resume_tensors is not None
        load_model_state(model, resume_tensors, resume_meta)
        restore_rng_state(resume_tensors, resume_meta["rng"])
        model.num_timesteps = start_step
        model._episode_num = int(resume_meta.get("episode_num", 0))
        # Update counters drive TD3's policy delay and DQN's target syncs: they continue, never restart.
        model._n_updates = int(resume_meta.get("n_updates", 0))
        if hasattr(model, "_n_calls"):
            model._n_calls = int(resume_meta.get("n_calls", 0))
        best_return = resume_meta.get("best_eval_return")
        if not algo.on_policy:  # the replay buffer starts empty again: refill it before training
            model.learning_starts = start_step + int(getattr(s, "learning_starts", 0))

    policy = SB3Policy(model.policy, env_obs_space, env_act_space, algo.recurrent)

    def save(name: str, best: float | None) -> None:
        tensors, state_meta = model_state(model)
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        meta = {"agent": algo.agent, "env_id": s.env_id, "settings": settings_to_dict(s),
                "step": int(model.num_timesteps), "episode_num": int(model._episode_num), "best_eval_return": best,
                "n_updates": int(model._n_updates), "n_calls": int(getattr(model, "_n_calls", 0)),
                "sb3": policy_spec(algo, model), **state_meta, **rng_meta}
        save_checkpoint(ctx.run.checkpoint_path(name), tensors, meta)

    class Bridge(BaseCallback):
        """Our plumbing inside SB3's loop: episodes, evaluation, checkpoints, progress, Ctrl-C."""

        def __init__(self) -> None:
            super().__init__()
            self.best = best_return
            self.recent: deque[float] = deque(maxlen=20)
            self.interrupted = False
            self.last_eval_step: int | None = None
            self.next_eval = (start_step // s.eval_every + 1) * s.eval_every if s.eval_every else None
            self.next_snapshot = (start_step // s.checkpoint_every + 1) * s.checkpoint_every if s.checkpoint_every else None
            self.start_time, self.last_progress = time.perf_counter(), 0.0

        def _evaluate(self, step: int) -> None:
            assert ctx.evaluate is not None
            metrics = ctx.evaluate(policy, step)
            ctx.logger.log(step, metrics)
            latest.update(metrics)
            self.last_eval_step = step
            if self.best is None or metrics["eval/mean_return"] > self.best:
                self.best = metrics["eval/mean_return"]
                save("best", self.best)

        def _on_step(self) -> bool:
            step = int(self.num_timesteps)
            for episode_return, length in venv.pop_finished_episodes():
                self.recent.append(episode_return)
                ctx.logger.log(step, {"charts/episodic_return": episode_return, "charts/episodic_length": float(length)})
            if ctx.evaluate is not None and self.next_eval is not None and step >= self.next_eval:
                self._evaluate(step)
                self.next_eval = (step // s.eval_every + 1) * s.eval_every
            if self.next_snapshot is not None and step >= self.next_snapshot:
                save(step_checkpoint_name(step), self.best)
                self.next_snapshot = (step // s.checkpoint_every + 1) * s.checkpoint_every
            now = time.perf_counter()
            if ctx.progress is not None and now - self.last_progress >= 0.5:
                self.last_progress = now
                latest["charts/sps"] = (step - start_step) / max(now - self.start_time, 1e-9)
                if self.recent:
                    latest["charts/recent_return"] = float(np.mean(self.recent))
                ctx.progress(step, latest)
            if ctx.stop_requested():
                self.interrupted = True
                return False
            return True

    bridge = Bridge()
    remaining = max(1, s.total_steps - start_step)
    model.learn(total_timesteps=remaining, callback=bridge, log_interval=1 if algo.on_policy else 4,
                reset_num_timesteps=resume_meta is None, progress_bar=False)
    final_step = int(model.num_timesteps)
    model.logger.dump(step=final_step)  # the last update's losses (SB3 dumps before each update, not after)
    if not bridge.interrupted and ctx.evaluate is not None and s.eval_every and bridge.last_eval_step != final_step:
        bridge._evaluate(final_step)  # the finished policy is always evaluated, like our PPO's last update
    save("last", bridge.best)
    if ctx.progress is not None:
        latest["charts/sps"] = (final_step - start_step) / max(time.perf_counter() - bridge.start_time, 1e-9)
        ctx.progress(final_step, latest)
    venv.close()
    return TrainResult(status="interrupted" if bridge.interrupted else "finished", final_step=final_step)


# ------------------------------------------------------------------------------- the registry's view


class SB3Agent:
    """One SB3 algorithm with the agent contract's four names (Settings, check_spaces, train, load_policy);
    the registry names it as `rlsuite.agents.sb3:<attribute>`."""

    def __init__(self, algo: Algorithm) -> None:
        self.algorithm = algo
        self.Settings = algo.settings

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check_algorithm_spaces(self.algorithm, observation_space, action_space)

    def train(self, s: SB3Settings, ctx: TrainContext) -> TrainResult:
        if not isinstance(s, self.algorithm.settings):
            raise ConfigError(f"{self.algorithm.agent} needs {self.algorithm.settings.__name__}, got {type(s).__name__}.")
        return _train(self.algorithm, s, ctx)

    def load_policy(self, checkpoint: Path, device: str = "cpu") -> SB3Policy:
        return load_policy(checkpoint, device)


ppo = SB3Agent(ALGORITHMS["sb3-ppo"])
a2c = SB3Agent(ALGORITHMS["sb3-a2c"])
dqn = SB3Agent(ALGORITHMS["sb3-dqn"])
sac = SB3Agent(ALGORITHMS["sb3-sac"])
td3 = SB3Agent(ALGORITHMS["sb3-td3"])
recurrent_ppo = SB3Agent(ALGORITHMS["sb3-recurrent-ppo"])
qrdqn = SB3Agent(ALGORITHMS["sb3-qrdqn"])


# ------------------------------------------------------------------------------- importing SB3 archives

PICKLE_RISK = (
    "an SB3 .zip stores parts of the model (policy class, schedules, spaces, optimiser settings) as "
    "pickled Python objects, and loading it runs whatever code its author put there, with your user's "
    "rights (stable-baselines3 issue #2281). rlsuite loads it once, with SB3's own loader, and converts "
    "it into a run folder whose safetensors checkpoint loads without pickle."
)


def import_sb3_zip(path: Path, agent: str, env_id: str, out: Path, *, trust_pickle: bool = False,
                   command: str = "") -> RunFolder:
    """Convert an SB3 `.zip` into a run folder with a safe checkpoint; refuses unless `trust_pickle`."""
    algo = get_algorithm(agent)
    path = Path(path)
    if not path.is_file():
        raise AgentError(f"{path} does not exist; give the path of an SB3 .zip saved by model.save().")
    if not zipfile.is_zipfile(path):
        raise AgentError(f"{path} is not a zip archive; SB3 saves models as .zip files with model.save().")
    if not trust_pickle:
        raise AgentError(
            f"refusing to load {path}: {PICKLE_RISK} Nothing was read from it. Only if you trust where the "
            f"file came from, rerun with --trust-pickle."
        )
    if Path(out).exists() and any(Path(out).iterdir()):
        raise AgentError(f"{out} already exists and is not empty; choose another --out.")
    env = make_env(env_id)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    check_algorithm_spaces(algo, obs_space, act_space)
    model = algo.sb3_class().load(str(path), device="cpu")  # the one place rlsuite unpickles, by request
    expected_obs = sb3_observation_space(obs_space)
    if model.observation_space != expected_obs or model.action_space != act_space:
        raise AgentError(
            f"{path} was trained on observations {model.observation_space} and actions {model.action_space}, "
            f"but {env_id} gives {obs_space} and {act_space}; pass the env it was trained on with --env."
        )
    settings = algo.settings(env_id=env_id, seed=int(model.seed or 0))
    settings.validate()
    run = RunFolder.create(Path(out).parent, agent=agent, env_id=env_id, seed=settings.seed,
                           settings=settings_to_dict(settings), command=command, device="cpu", name=Path(out).name)
    tensors = module_tensors("net.policy", model.policy)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = {"agent": agent, "env_id": env_id, "settings": settings_to_dict(settings), "step": int(model.num_timesteps),
            "best_eval_return": None, "sb3": policy_spec(algo, model),
            "imported_from": {"file": path.name, "sha256": digest}}
    save_checkpoint(run.checkpoint_path("last"), tensors, meta)
    run.update_manifest(imported_from={"file": str(path), "sha256": digest})
    run.set_status("finished", final_step=int(model.num_timesteps))
    return run
