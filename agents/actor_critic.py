"""The actor-critic network PPO, A2C and REINFORCE share, its settings, its inference side and its loader.

- `ActorCriticSettings`: the network and normaliser fields every actor-critic agent has.
- `ActorCritic`: encoder(s) from the observation space (after an optional named network from policies/,
  e.g. `spoken_pointer`), an optional LSTM, an action head and a value head.
- `ActorCriticPolicy`: the inference side (what evaluation, recording, reports and export call).
- `load_actor_critic_policy`: rebuild a policy from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from gymnasium import spaces

from rlsuite.agents.checkpoint import load_checkpoint, load_module_tensors
from rlsuite.agents.interface import AgentError
from rlsuite.agents.normalize import ObsNormalizer
from rlsuite.agents.settings import ConfigError, TrainSettings, settings_from_dict
from rlsuite.agents.tensors import obs_to_tensor, resolve_device
from rlsuite.envs import make_env
from rlsuite.policies import LSTMCore, SpaceError, ValueHead, is_image_space, make_action_head, make_encoder
from rlsuite.policies.heads import ActionDist

LSTMState = tuple[torch.Tensor, torch.Tensor]


@dataclass
class ActorCriticSettings(TrainSettings):
    """Fields shared by the actor-critic agents: the network and the normalisers."""

    normalize_obs: bool = False
    """Running mean/std normalisation of float observations (saved in checkpoints)."""
    normalize_reward: bool = False
    """Scale rewards by the std of the discounted return (saved in checkpoints)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """MLP widths for vector observations."""
    activation: Literal["tanh", "relu", "elu", "silu"] = "tanh"
    """MLP activation."""
    share_encoder: bool | None = None
    """Actor and critic share one encoder; None: shared for images, dicts and recurrent, separate for vectors."""
    cnn: Literal["nature", "nips", "impala"] = "nature"
    """CNN for image observations: nature (Mnih 2015), nips (Mnih 2013, smaller, for CPUs) or impala."""
    squash: Literal["clip", "tanh"] = "clip"
    """Box actions: clip Gaussian samples to the bounds, or squash them with tanh."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian actions."""
    recurrent: bool = False
    """Insert an LSTM between encoder and heads; updates then replay whole env sequences."""
    lstm_hidden: int = 128
    """LSTM hidden size when recurrent."""

    def validate(self) -> None:
        super().validate()
        self.require(len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1, "hidden_sizes",
                     "must list at least one positive width, e.g. 64,64")
        self.require(self.lstm_hidden >= 1, "lstm_hidden", "must be >= 1")
        if self.recurrent and self.share_encoder is False:
            raise ConfigError("recurrent agents need share_encoder=true or unset (one LSTM feeds both heads).")


def check_actor_critic_spaces(agent: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Discrete, MultiDiscrete and Box actions over any observation our encoders read; else AgentError."""
    if not isinstance(action_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.Box)):
        raise AgentError(
            f"{agent} cannot act in {action_space}: it supports Discrete, MultiDiscrete and Box action spaces."
        )
    if isinstance(action_space, spaces.Box) and len(action_space.shape) != 1:
        raise AgentError(f"{agent} needs a flat Box action of shape (A,), got {action_space}; flatten it with a wrapper.")
    try:
        make_encoder(observation_space)
    except SpaceError as err:
        raise AgentError(f"{agent} cannot read observations from {observation_space}: {err}") from None


class ActorCritic(nn.Module):
    """[front ->] encoder(s) -> [LSTM ->] action head and value head.

    `front` is an optional named network from policies/ (e.g. SpokenPointer) that turns the observation into
    one flat vector (width `output_dim`) for plain MLP encoders; it may carry an auxiliary loss (`aux_keys`,
    `aux_loss`)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, s: ActorCriticSettings,
                 front: nn.Module | None = None) -> None:
        super().__init__()
        vector_obs = not (isinstance(observation_space, spaces.Dict) or is_image_space(observation_space))
        self.front = front
        if front is not None:  # the towers read the front's flat vector
            observation_space = spaces.Box(-np.inf, np.inf, (int(cast(Any, front).output_dim),), np.float32)
            vector_obs = True
        shared = s.share_encoder if s.share_encoder is not None else (not vector_obs or s.recurrent)
        if s.recurrent and not shared:
            raise ConfigError("recurrent agents need share_encoder=true (one LSTM feeds both heads).")

        def encoder() -> nn.Module:
            return make_encoder(observation_space, mlp_hidden=s.hidden_sizes, activation=s.activation, cnn=s.cnn)

        self.actor_encoder = encoder()
        self.critic_encoder = self.actor_encoder if shared else encoder()
        features_dim = int(cast(Any, self.actor_encoder).features_dim)
        self.core = LSTMCore(features_dim, s.lstm_hidden) if s.recurrent else None
        if self.core is not None:
            features_dim = self.core.features_dim
        self.actor = make_action_head(action_space, features_dim, squash=s.squash, log_std_init=s.log_std_init)
        self.critic = ValueHead(features_dim)
        self.aux_keys: tuple[str, ...] = tuple(getattr(front, "aux_keys", ()))
        """The env `info` keys the agent must record beside each observation for `aux_loss` (none without a front)."""

    def features(self, obs: Any, state: Any = None, episode_starts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Actor and critic features for (B, ...) inputs, or (T, B, ...) flattened to (T*B, ...) when recurrent."""
        if self.front is not None:
            obs = self.front(obs)  # (B, F): the flat vector the towers read
        actor_features = self.actor_encoder(obs)  # (B, F)
        if self.core is None:
            critic_features = actor_features if self.critic_encoder is self.actor_encoder else self.critic_encoder(obs)
            return actor_features, critic_features, None
        assert episode_starts is not None
        steps, batch = episode_starts.shape  # (T, B)
        out, state = self.core(actor_features.reshape(steps, batch, -1), state, episode_starts)  # (T, B, H)
        out = out.reshape(steps * batch, -1)  # (T*B, H)
        return out, out, state

    def act_value(self, obs: Any, state: Any = None,
                  episode_starts: torch.Tensor | None = None) -> tuple[ActionDist, torch.Tensor, Any]:
        """(action distribution, V (B,), next LSTM state) for (B, ...) observations: one rollout step."""
        actor_f, critic_f, state = self.features(obs, state, episode_starts)
        return self.actor(actor_f), self.critic(critic_f), state

    def aux_loss(self, targets: dict[str, torch.Tensor],
                 mean: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
        """The front's auxiliary loss for the latest `features` batch (None and no terms without one)."""
        if not self.aux_keys:
            return None, {}
        loss, terms = cast(Any, self.front).aux_loss(targets, mean)
        return loss, terms

    def initial_state(self, num_envs: int, device: torch.device) -> LSTMState | None:
        return self.core.initial_state(num_envs, device) if self.core is not None else None


class ActorCriticPolicy:
    """The inference side of an actor-critic network: what evaluation, recording and reports call."""

    def __init__(self, network: ActorCritic, observation_space: gym.Space, action_space: gym.Space,
                 obs_normalizer: ObsNormalizer | None, device: torch.device) -> None:
        self.network = network
        self.observation_space = observation_space
        self.action_space = action_space
        self.obs_normalizer = obs_normalizer
        self.device = device
        self._state: Any = None

    def reset(self, num_envs: int) -> None:
        self._state = self.network.initial_state(num_envs, self.device)

    @torch.inference_mode()
    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if self.obs_normalizer is not None:
            obs = self.obs_normalizer.normalize(obs)
        if self.network.core is not None and (self._state is None or self._state[0].shape[1] != len(episode_start)):
            self.reset(len(episode_start))
        starts = torch.as_tensor(episode_start, dtype=torch.float32, device=self.device)[None]  # (1, B)
        actor_features, _, self._state = self.network.features(obs_to_tensor(obs, self.device), self._state, starts)
        dist = self.network.actor(actor_features)
        action = dist.mode() if deterministic else dist.sample()
        return dist.to_env(action).cpu().numpy()


S = TypeVar("S", bound=ActorCriticSettings)
NetworkBuilder = Callable[[gym.Space, gym.Space, Any], ActorCritic]


def load_actor_critic_policy(checkpoint: Path, settings_cls: type[S], device: str = "cpu",
                             build: NetworkBuilder = ActorCritic) -> ActorCriticPolicy:
    """Rebuild the network (by `build`, from the checkpoint's settings and the env's spaces); load the weights."""
    torch_device = resolve_device(device)
    tensors, meta = load_checkpoint(checkpoint, torch_device)
    s = settings_from_dict(settings_cls, meta["settings"])
    env = make_env(s.env_id, preset=s.env_preset, **s.env_kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    network = build(obs_space, act_space, s).to(torch_device)
    load_module_tensors("model", network, tensors)
    network.eval()
    obs_normalizer = None
    if s.normalize_obs:
        obs_normalizer = ObsNormalizer(obs_space)
        obs_normalizer.load_state_tensors("obs_rms", tensors)
    return ActorCriticPolicy(network, obs_space, act_space, obs_normalizer, torch_device)
