"""The table of SB3 algorithms served as rlsuite agents, and the SB3 constructor arguments built from
their settings."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from torch import nn

from rlsuite.agents.interface import AgentError
from rlsuite.agents.sb3.settings import (
    SB3A2CSettings,
    SB3DQNSettings,
    SB3OffPolicySettings,
    SB3OnPolicySettings,
    SB3PPOSettings,
    SB3QRDQNSettings,
    SB3RecurrentPPOSettings,
    SB3SACSettings,
    SB3Settings,
    SB3TD3Settings,
)
from rlsuite.policies import SpaceError, make_encoder

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
        Algorithm("sb3-ppo", "stable_baselines3", "PPO", SB3PPOSettings, True, _ON_POLICY_ACTIONS),
        Algorithm("sb3-a2c", "stable_baselines3", "A2C", SB3A2CSettings, True, _ON_POLICY_ACTIONS),
        Algorithm("sb3-dqn", "stable_baselines3", "DQN", SB3DQNSettings, False, (spaces.Discrete,)),
        Algorithm("sb3-sac", "stable_baselines3", "SAC", SB3SACSettings, False, (spaces.Box,)),
        Algorithm("sb3-td3", "stable_baselines3", "TD3", SB3TD3Settings, False, (spaces.Box,)),
        Algorithm("sb3-recurrent-ppo", "sb3_contrib", "RecurrentPPO", SB3RecurrentPPOSettings, True,
                  (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary), recurrent=True),
        Algorithm("sb3-qrdqn", "sb3_contrib", "QRDQN", SB3QRDQNSettings, False, (spaces.Discrete,)),
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
    if isinstance(s, SB3OnPolicySettings):
        kwargs["log_std_init"] = s.log_std_init
        kwargs["ortho_init"] = s.ortho_init
    if isinstance(s, SB3RecurrentPPOSettings):
        kwargs.update(lstm_hidden_size=s.lstm_hidden_size, n_lstm_layers=s.n_lstm_layers, shared_lstm=s.shared_lstm,
                      enable_critic_lstm=s.enable_critic_lstm)
    if isinstance(s, SB3QRDQNSettings):
        kwargs["n_quantiles"] = s.n_quantiles
    return kwargs


def algorithm_kwargs(algo: Algorithm, s: SB3Settings, action_space: gym.Space) -> dict[str, Any]:
    """The SB3 constructor's keyword arguments (besides policy, env, seed, device) from the settings."""
    lr: Any = _linear(s.learning_rate) if s.anneal_lr else s.learning_rate
    kw: dict[str, Any] = {"learning_rate": lr, "gamma": s.gamma}
    if isinstance(s, SB3OnPolicySettings):
        kw.update(n_steps=s.n_steps, gae_lambda=s.gae_lambda, ent_coef=s.ent_coef, vf_coef=s.vf_coef,
                  max_grad_norm=s.max_grad_norm, normalize_advantage=s.normalize_advantage)
    if isinstance(s, SB3PPOSettings):
        kw.update(batch_size=s.batch_size, n_epochs=s.n_epochs, target_kl=s.target_kl,
                  clip_range=_linear(s.clip_range) if s.anneal_clip else s.clip_range)
    if isinstance(s, SB3A2CSettings):
        kw.update(use_rms_prop=s.use_rms_prop, rms_prop_eps=s.rms_prop_eps)
    if isinstance(s, SB3OffPolicySettings):
        kw.update(buffer_size=s.buffer_size, learning_starts=s.learning_starts, batch_size=s.batch_size, tau=s.tau,
                  train_freq=s.train_freq, gradient_steps=s.gradient_steps)
    if isinstance(s, SB3DQNSettings):
        kw.update(target_update_interval=s.target_update_interval, exploration_fraction=s.exploration_fraction,
                  exploration_initial_eps=s.exploration_initial_eps, exploration_final_eps=s.exploration_final_eps)
        if s.max_grad_norm is not None or isinstance(s, SB3QRDQNSettings):
            kw["max_grad_norm"] = s.max_grad_norm
    if isinstance(s, SB3SACSettings):
        kw.update(ent_coef=s.ent_coef, target_entropy=s.target_entropy, target_update_interval=s.target_update_interval)
    if isinstance(s, SB3TD3Settings):
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
