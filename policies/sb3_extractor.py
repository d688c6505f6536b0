"""Our encoders as Stable-Baselines3 features extractors: SB3 sees exactly the modules our agents use.

`RLSuiteExtractor(space, ...)` builds `make_encoder(space, ...)` and exposes it through SB3's
`BaseFeaturesExtractor` seam, so an SB3 policy built with
`policy_kwargs=sb3_policy_kwargs(...)` holds the same `MLPEncoder` / `NatureCNN` / `ImpalaCNN` /
`SequenceEncoder` / `DictEncoder` classes, with the same parameter shapes, as our PPO for that space.

Two things SB3 does to observations before the extractor sees them, and how the adapter meets them:

- Images: SB3 divides by 255 unless the policy has `normalize_images=False`. Our encoders scale uint8
  images themselves (by the space's dtype), so the policy kwargs always set `normalize_images=False`.
- Discrete, MultiDiscrete and MultiBinary: SB3 always turns them into (concatenated) one-hot / 0-1
  float vectors. That is exactly our `MLPEncoder.encode_input`, so for these the adapter skips our own
  one-hot and feeds SB3's vector straight into the encoder's MLP (inside Dicts too).

SB3 also transposes channel-last images to channel-first (`VecTransposeImage`) before building the
policy; `make_encoder` reads either layout, so the module classes and parameter shapes do not change.

Which losses train the extractor (the sharing rule, `share_features_extractor`):

- on-policy (PPO, A2C, RecurrentPPO): one extractor shared by actor and critic (SB3's default); the
  policy loss, the entropy bonus and `vf_coef` times the value loss all train it.
- SAC and TD3 (SB3's off-policy convention): the actor and the critic each own an extractor; the actor
  loss trains the actor's, the critic (TD) loss the critic's; the target networks are Polyak copies.
  With `share_features_extractor=True` the critic reuses the actor's extractor and only the actor loss
  trains it (SB3 stops the critic's gradient there).
- DQN and QR-DQN: one Q-network whose extractor the TD loss trains; the target network's extractor is a
  copy synced every `target_update_interval` steps.

This module imports stable_baselines3; `rlsuite.policies` does not import it, so only SB3 users pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from rlsuite.policies.encoders import DictEncoder, MLPEncoder, make_encoder

__all__ = ["RLSuiteExtractor", "sb3_forward"]


def sb3_forward(encoder: nn.Module, obs: Any) -> torch.Tensor:
    """Run one of our encoders on an observation batch that SB3's `preprocess_obs` already prepared."""
    if isinstance(encoder, MLPEncoder) and encoder.kind in ("discrete", "multidiscrete"):
        # SB3 already one-hot encoded it: (B, n) or (B, sum(nvec)) floats, our encode_input's output.
        return encoder.net(obs.reshape(obs.shape[0], -1).float())  # (B, features_dim)
    if isinstance(encoder, DictEncoder):
        parts = [sb3_forward(sub, obs[key]) for key, sub in zip(encoder.keys, encoder.encoders, strict=True)]
        return torch.cat(parts, dim=1)  # (B, sum of features_dim), sorted key order like DictEncoder
    return encoder(obs)  # (B, features_dim)


class RLSuiteExtractor(BaseFeaturesExtractor):
    """`make_encoder(observation_space, ...)` behind SB3's features-extractor interface.

    The encoder is the attribute `encoder`; its `features_dim` becomes SB3's `features_dim`.
    """

    def __init__(
        self,
        observation_space: gym.Space,
        mlp_hidden: Sequence[int] = (64, 64),
        activation: str = "tanh",
        cnn: str = "nature",
        cnn_features: int | None = None,
        sequence_hidden: int = 64,
    ) -> None:
        encoder = make_encoder(observation_space, mlp_hidden=tuple(mlp_hidden), activation=activation, cnn=cnn,
                               cnn_features=cnn_features, sequence_hidden=sequence_hidden)
        super().__init__(observation_space, int(encoder.features_dim))
        self.encoder = encoder

    def forward(self, observations: Any) -> torch.Tensor:
        return sb3_forward(self.encoder, observations)
