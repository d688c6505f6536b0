"""What the on-policy agents (PPO, A2C, REINFORCE) share, so each agent file keeps only its algorithm.

- `ActorCriticSettings`: the network and normaliser fields every actor-critic agent has.
- `ActorCritic`: encoder(s) from the observation space, an optional LSTM, an action head and a value head.
- `ActorCriticPolicy`: the inference side (what evaluation, recording and reports call).
- `Rollout` + `RolloutCollector`: (T, N) storage and the loop that fills it from a next-step-autoreset
  vector env, with the recurrent state carried between rollouts.
- `compute_gae` and `discounted_returns`: advantage and return estimators over (T, N) rollouts.
- `TrainingRun`: the run-folder side of a loop: resume, checkpoints (last, best, step_N), periodic
  evaluation, progress and Ctrl-C.
- `load_actor_critic_policy`: rebuild a policy from a checkpoint.

Layout under next-step autoreset (envs/factory.py): the step after an episode ends is a reset step whose
action is ignored. It is stored with `valid = 0` and masked out of every loss; its stored observation is
the final observation of the episode before, so `values[t + 1]` after a truncated step t is V(final
observation), the right bootstrap, with no `final_obs` bookkeeping.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
from gymnasium import spaces

from rlsuite.agents.checkpoint import (
    load_checkpoint,
    load_module_tensors,
    module_tensors,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from rlsuite.agents.interface import AgentError, TrainContext
from rlsuite.agents.mlp_grad import linear_backward, mlp_backward, mlp_forward
from rlsuite.agents.normalize import ObsNormalizer, RewardScaler
from rlsuite.agents.optim import FlatParameters
from rlsuite.agents.run import step_checkpoint_name
from rlsuite.agents.settings import ConfigError, TrainSettings, settings_from_dict, settings_to_dict
from rlsuite.agents.tensors import empty_like_space, obs_to_tensor, resolve_device, store_obs
from rlsuite.envs import make_env
from rlsuite.policies import (
    ACTIVATIONS,
    CategoricalHead,
    Encoder,
    GaussianHead,
    LSTMCore,
    MLPEncoder,
    NatureCNN,
    SpaceError,
    SpatialKeypoints,
    ValueHead,
    is_image_space,
    make_action_head,
    make_encoder,
    mlp_layers,
)
from rlsuite.policies.heads import ActionDist, CategoricalDist, GaussianDist

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
    cnn: Literal["nature", "impala"] = "nature"
    """CNN for image observations."""
    squash: Literal["clip", "tanh"] = "clip"
    """Box actions: clip Gaussian samples to the bounds, or squash them with tanh."""
    log_std_init: float = 0.0
    """Initial log standard deviation of Gaussian actions."""
    recurrent: bool = False
    """Insert an LSTM between encoder and heads; updates then replay whole env sequences."""
    lstm_hidden: int = 128
    """LSTM hidden size when recurrent."""
    fusion_hidden: tuple[int, ...] = ()
    """Dict observations: MLP widths applied to the concatenated per-key features before the heads (SB3's
    net_arch after its CombinedExtractor). Empty: the heads read the concatenation, so the action is a sum
    of a per-key term each, and no key can change how another is used (e.g. which target a heard word picks)."""
    fusion_split: bool = False
    """With fusion_hidden and a shared encoder: the critic gets its own fusion MLP over the shared Dict
    features (SB3's separate pi / vf net_arch), so value regression does not shape the policy's layers."""
    aux_label_key: str | None = None
    """Auxiliary supervised loss (PPO): the `info` key under which the vector env gives an integer label of
    each observation it returns (e.g. "command" on SpokenReach); a linear head on the encoder features learns
    to predict it. Training only: evaluation and inference never read the label. None: off."""
    aux_label_classes: int = 0
    """Number of label values (0 .. classes - 1) when aux_label_key is set."""
    aux_label_coef: float = 1.0
    """Weight of the auxiliary cross-entropy in the loss."""
    aux_label_feed: bool = False
    """With aux_label_key and fusion_hidden (Dict observations, shared encoder): the auxiliary classifier reads
    the Dict encoding before the fusion MLP, and its softmax, detached, joins the fusion MLP's input. The
    policy then conditions on the classifier's decision (a soft one-hot of the label, e.g. the heard word)
    instead of having to dig it out of the features; the label is still read in training only."""

    aux_label_experts: bool = False
    """With aux_label_feed: one fusion MLP per label class (experts), their outputs mixed by the classifier's
    code (a mixture of experts gated by what the classifier decided, e.g. one reaching policy per heard
    word): the policy does not have to learn the selection, only each expert's own task."""
    fusion_raw: bool = False
    """With fusion_hidden: the Dict's flat (1-D Box) keys, as observed (after normalisation), also join the
    fusion MLP's input: a skip connection past their per-key MLPs, so each fusion MLP (each expert with
    aux_label_experts) reads the raw state and not only features that every expert's gradient shapes."""
    aux_label_select: str | None = None
    """With aux_label_key, Dict observations: "KEY:START:STOP", a slice of a flat Dict key that lists one equal
    slot per label value (e.g. "state:8:16", SpokenReach's four target positions in colour order). The other
    keys (the audio) feed only a listener: an encoder and a linear classifier of the label, trained by the
    auxiliary loss alone. Its softmax, detached, points into the slots, sum_k p_k * slot_k, and the actor
    and critic MLPs (separate, as for any flat observation) read KEY with its slots replaced by the
    pointed-at one. The policy then reaches the heard target as Reacher reaches its one target; it never
    has to learn the selection as a product of a code and every slot, which PPO did not learn in 300k steps
    even with the label given (benchmarks/spoken_oracle.py). An image key alone (e.g. "image", for
    SpokenReachImage) has keypoints as its slots: SpatialKeypoints finds one (x, y) per label value in the
    image, trained through the pointer by the policy's and the value's gradients (and by aux_keypoint_key's
    loss), and the MLPs read the other flat keys plus the pointed-at keypoint. Excludes fusion_hidden."""
    aux_label_offset: str | None = None
    """With aux_label_select: "START:STOP", a slice of the same key as wide as one slot (e.g. "6:8",
    SpokenReach's fingertip); the policy also reads this slice minus the pointed-at slot (Reacher's
    fingertip-to-target vector, which PPO needs given, not computed: 100% against 50-60% success without it
    when the command is given, benchmarks/spoken_oracle.py)."""
    aux_keypoint_key: str | None = None
    """With aux_label_select on an image key: the `info` key under which the vector env gives, for each
    returned observation, the (C, 2) image-frame positions (x right, y down, -1 .. 1 edge to edge) of the C
    things the keypoints should find (SpokenReachImage's "target_xy": the four targets in colour order). An
    auxiliary squared error teaches each keypoint its thing's position, as Levine et al. (2016) pretrained
    their spatial-softmax keypoints on object positions. Training only, like aux_label_key. None: off."""
    aux_keypoint_coef: float = 1.0
    """Weight of the keypoint squared error in the loss."""
    film_key: str | None = None
    """Dict observations with fusion_hidden: feature-wise linear modulation (FiLM; Perez et al. 2018) before
    the fusion MLP. The other keys' features are scaled and shifted, feature by feature, by a linear map of
    this key's features (with aux_label_feed: of the auxiliary classifier's code), so what this key says can
    switch which of the other features the policy uses (multiplicative, where concatenation is additive)."""

    def validate(self) -> None:
        super().validate()
        self.require(len(self.hidden_sizes) >= 1 and min(self.hidden_sizes) >= 1, "hidden_sizes",
                     "must list at least one positive width, e.g. 64,64")
        self.require(self.lstm_hidden >= 1, "lstm_hidden", "must be >= 1")
        self.require(all(w >= 1 for w in self.fusion_hidden), "fusion_hidden", "must list positive widths, e.g. 256,256")
        if self.aux_label_key is not None:
            self.require(self.aux_label_classes >= 2, "aux_label_classes", "must be >= 2 when aux_label_key is set")
            self.require(self.aux_label_coef >= 0, "aux_label_coef", "must be >= 0")
        if self.aux_label_feed:
            self.require(self.aux_label_key is not None and bool(self.fusion_hidden), "aux_label_feed",
                         "needs aux_label_key (and aux_label_classes) and fusion_hidden, e.g. 256,256")
            self.require(self.share_encoder is not False and not self.recurrent, "aux_label_feed",
                         "needs a shared, feed-forward encoder (share_encoder unset or true, recurrent false)")
        if self.film_key is not None:
            self.require(bool(self.fusion_hidden), "film_key", "needs fusion_hidden, e.g. 256,256")
        if self.aux_label_experts:
            self.require(self.aux_label_feed, "aux_label_experts", "needs aux_label_feed=true (the code gates the experts)")
        self.require(self.aux_label_offset is None or self.aux_label_select is not None, "aux_label_offset",
                     "needs aux_label_select (the offset is taken from the pointed-at slot)")
        self.require(self.aux_keypoint_key is None or (self.aux_label_select is not None
                                                       and parse_select(self.aux_label_select)[1:] == (0, 0)),
                     "aux_keypoint_key", "needs aux_label_select naming an image key (its keypoints are what it teaches)")
        self.require(self.aux_keypoint_coef >= 0, "aux_keypoint_coef", "must be >= 0")
        if self.aux_label_select is not None:
            parse_select(self.aux_label_select)
            if self.aux_label_offset is not None:
                parse_select(f"key:{self.aux_label_offset}")
            self.require(self.aux_label_key is not None, "aux_label_select",
                         "needs aux_label_key and aux_label_classes (the classifier's softmax is the pointer)")
            self.require(not self.fusion_hidden and not self.recurrent, "aux_label_select",
                         "replaces the fusion MLP: leave fusion_hidden empty and recurrent false")
        if self.recurrent and self.share_encoder is False:
            raise ConfigError("recurrent agents need share_encoder=true or unset (one LSTM feeds both heads).")


def parse_select(spec: str) -> tuple[str, int, int]:
    """"KEY:START:STOP" (aux_label_select) as (key, start, stop), "KEY" alone (an image key) as (key, 0, 0);
    ConfigError when it is neither."""
    parts = spec.split(":")
    if len(parts) == 1 and parts[0]:  # an image key: its slots are keypoints
        return parts[0], 0, 0
    if len(parts) != 3 or not parts[0] or not all(p.isdigit() for p in parts[1:]) or int(parts[1]) >= int(parts[2]):
        raise ConfigError(f"aux_label_select={spec!r} must be KEY:START:STOP with 0 <= START < STOP, e.g. state:8:16 "
                          "(the slice of a flat Dict key holding one equal slot per label value) or an image key alone, e.g. "
                          "image; aux_label_offset takes START:STOP of the same key, e.g. 6:8.")
    return parts[0], int(parts[1]), int(parts[2])


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


def encode(encoder: nn.Module, obs: Any) -> torch.Tensor:
    """`encoder(obs)`, by NatureCNN's channels-last path when training on the CPU (the same function to float
    tolerance, about 1.3x cheaper forward and backward: NatureCNN.forward_channels_last). Rollout and
    evaluation forwards (no gradient, small batches) gain nothing from it and keep the plain path."""
    if isinstance(encoder, NatureCNN) and torch.is_grad_enabled() and obs.device.type == "cpu":
        return encoder.forward_channels_last(obs)
    return encoder(obs)


class ActorCritic(nn.Module):
    """Encoder(s) from the observation space, an optional LSTM, an action head and a value head."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, s: ActorCriticSettings) -> None:
        super().__init__()
        vector_obs = not (isinstance(observation_space, spaces.Dict) or is_image_space(observation_space))
        shared = s.share_encoder if s.share_encoder is not None else (not vector_obs or s.recurrent)
        if s.recurrent and not shared:
            raise ConfigError("recurrent agents need share_encoder=true (one LSTM feeds both heads).")

        def encoder() -> Encoder:
            enc = make_encoder(observation_space, mlp_hidden=s.hidden_sizes, activation=s.activation, cnn=s.cnn)
            if s.fusion_hidden and isinstance(observation_space, spaces.Dict):
                return FusionEncoder(enc, s.fusion_hidden, s.activation,
                                     code_classes=s.aux_label_classes if s.aux_label_feed else 0, film_key=s.film_key,
                                     experts=s.aux_label_experts, raw=s.fusion_raw)
            return enc

        # aux_label_select: a listener and pointer turn the Dict into one flat vector for plain MLP encoders
        self.pointer: LabelPointer | None = None
        if s.aux_label_select is not None:
            if not isinstance(observation_space, spaces.Dict):
                raise ConfigError(f"aux_label_select needs a Dict observation (a key to listen to and a key to point "
                                  f"into), got {observation_space}.")
            offset = parse_select(f"key:{s.aux_label_offset}")[1:] if s.aux_label_offset else None
            self.pointer = LabelPointer(observation_space, parse_select(s.aux_label_select), offset, s.aux_label_classes, s)
            observation_space = spaces.Box(-np.inf, np.inf, (self.pointer.output_dim,), np.float32)
            shared = s.share_encoder if s.share_encoder is not None else False

        self.actor_encoder = encoder()
        self.critic_encoder = self.actor_encoder if shared else encoder()
        self.critic_fusion: nn.Module | None = None  # fusion_split: the critic's own MLP over the shared Dict features
        if s.fusion_split and shared and not s.recurrent and isinstance(self.actor_encoder, FusionEncoder):
            self.critic_fusion = mlp_layers(self.actor_encoder.input_dim, s.fusion_hidden, s.activation)[0]
        features_dim = self.actor_encoder.features_dim
        self.core = LSTMCore(features_dim, s.lstm_hidden) if s.recurrent else None
        if self.core is not None:
            features_dim = self.core.features_dim
        self.actor = make_action_head(action_space, features_dim, squash=s.squash, log_std_init=s.log_std_init)
        self.critic = ValueHead(features_dim)
        # training-only classifier of the env's label (aux_label_key); absent unless asked for, so checkpoints
        # of other runs keep their tensors. With aux_label_feed it is the fusion encoder's code head instead.
        self.aux_head = (nn.Linear(features_dim, s.aux_label_classes)
                         if s.aux_label_key and not s.aux_label_feed and self.pointer is None else None)

    def has_aux(self) -> bool:
        """Whether the network has an auxiliary label classifier (aux_label_key)."""
        return self.aux_head is not None or self.pointer is not None or (
            isinstance(self.actor_encoder, FusionEncoder) and self.actor_encoder.code_head is not None)

    def aux_logits(self, actor_features: torch.Tensor) -> torch.Tensor:
        """(B, classes) logits of the auxiliary classifier for the batch whose actor features were just
        computed by `features` (with aux_label_feed: the code head's logits of that same forward)."""
        if self.aux_head is not None:
            return self.aux_head(actor_features)
        if self.pointer is not None:
            assert self.pointer.last_logits is not None and len(self.pointer.last_logits) == len(actor_features)
            return self.pointer.last_logits
        fusion = cast(FusionEncoder, self.actor_encoder)
        assert fusion.last_logits is not None and len(fusion.last_logits) == len(actor_features)
        return fusion.last_logits

    def features(self, obs: Any, state: Any = None, episode_starts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Actor and critic features for (B, ...) inputs, or (T, B, ...) flattened to (T*B, ...) when recurrent."""
        if self.critic_fusion is not None:  # one Dict encoding, two fusion MLPs
            fusion = cast(FusionEncoder, self.actor_encoder)
            base = fusion.fusion_input(obs)  # (B, sum of per-key features [+ code])
            return fusion.fuse(base), self.critic_fusion(base), None
        if self.pointer is not None:
            obs = self.pointer(obs)  # (B, F): the flat vector the MLPs read
        actor_features = encode(self.actor_encoder, obs)  # (B, F)
        if self.core is None:
            critic_features = actor_features if self.critic_encoder is self.actor_encoder else encode(self.critic_encoder, obs)
            return actor_features, critic_features, None
        assert episode_starts is not None
        steps, batch = episode_starts.shape  # (T, B)
        out, state = self.core(actor_features.reshape(steps, batch, -1), state, episode_starts)  # (T, B, H)
        out = out.reshape(steps * batch, -1)  # (T*B, H)
        return out, out, state

    def initial_state(self, num_envs: int, device: torch.device) -> LSTMState | None:
        return self.core.initial_state(num_envs, device) if self.core is not None else None


class LabelPointer(nn.Module):
    """aux_label_select: listen to the Dict's non-flat keys, classify the label, point into one key's slots.

    The slots are either C equal slices of a flat key (S values each) or, for an image key, C keypoints
    (x, y) found by `SpatialKeypoints`. (B, ...) Dict -> (B, F): the other flat keys as observed, then the
    selected flat key with its slots replaced by the one the classifier's softmax points at, sum_k p_k *
    slot_k (for an image: the pointed-at keypoint), then [with `offset`] the key's offset slice minus that
    slot. The listener reads every non-flat key but the selected one (the audio). The softmax is detached,
    so the policy's and the value's gradients never reach the listener: only the auxiliary loss (on
    `last_logits`, the logits of the latest forward) trains it; they do train the keypoints."""

    def __init__(self, space: spaces.Dict, select: tuple[str, int, int], offset: tuple[int, int] | None, classes: int,
                 s: ActorCriticSettings) -> None:
        super().__init__()
        key, start, stop = select
        chosen = space.spaces.get(key)
        keys = ", ".join(f"{k} {v}" for k, v in space.spaces.items())
        flat = {k for k, v in space.spaces.items() if isinstance(v, spaces.Box) and len(v.shape) == 1}
        self.keypoints: SpatialKeypoints | None = None
        if isinstance(chosen, spaces.Box) and is_image_space(chosen):
            if (start, stop) != (0, 0) or offset is not None:
                raise ConfigError(f"aux_label_select={key!r} names an image key: give the key alone (its slots are "
                                  "keypoints found in the image), without START:STOP or aux_label_offset.")
            self.keypoints = SpatialKeypoints(chosen, classes)
            slot, width = 2, 0
        elif key in flat:
            width = int(cast(spaces.Box, chosen).shape[0])
            if stop > width or stop <= start or classes < 1 or (stop - start) % classes:
                raise ConfigError(f"aux_label_select={key}:{start}:{stop} must lie within {key}'s {width} values and "
                                  f"split into aux_label_classes={classes} equal slots.")
            slot = (stop - start) // classes
            if offset is not None and (offset[1] > width or offset[1] - offset[0] != slot):
                raise ConfigError(f"aux_label_offset={offset[0]}:{offset[1]} must lie within {key}'s {width} values and "
                                  f"be one slot ({slot} values) wide.")
        else:
            raise ConfigError(f"aux_label_select names {key!r}, which is not a flat (1-D Box) or image key of the Dict "
                              f"observation; its keys: {keys}.")
        self.passed = tuple(sorted(flat - {key}))  # flat keys the policy reads as observed
        heard = {k: v for k, v in space.spaces.items() if k != key and k not in flat}
        if not heard:
            raise ConfigError(f"aux_label_select: the Dict observation has no key besides {key!r} and its flat keys to "
                              f"classify the label from; its keys: {keys}.")
        self.key, self.start, self.stop, self.classes, self.offset = key, start, stop, classes, offset
        self.listener = make_encoder(spaces.Dict(heard), mlp_hidden=s.hidden_sizes, activation=s.activation, cnn=s.cnn)
        self.code_head = nn.Linear(self.listener.features_dim, classes)
        passed_dim = sum(int(cast(spaces.Box, space.spaces[k]).shape[0]) for k in self.passed)
        self.output_dim = passed_dim + width - (stop - start) + slot * (2 if offset is not None else 1)
        self.last_logits: torch.Tensor | None = None
        self.last_keypoints: torch.Tensor | None = None  # (B, C, 2) of the latest forward, for aux_keypoint_key

    def forward(self, obs: Any) -> torch.Tensor:
        listened = self.listener({k: obs[k] for k in cast(Any, self.listener).keys})  # (B, F)
        self.last_logits = self.code_head(listened)  # (B, C)
        code = torch.softmax(self.last_logits, -1).detach()  # (B, C)
        parts = [obs[k].flatten(1).float() for k in self.passed]  # (B, D_k) each
        if self.keypoints is not None:
            slots = self.keypoints.keypoints(obs[self.key])  # (B, C, 2)
            self.last_keypoints = slots
            parts.append((code[:, :, None] * slots).sum(1))  # (B, 2): the pointed-at keypoint
            return torch.cat(parts, 1)
        vector = obs[self.key].flatten(1).float()  # (B, D)
        slots = vector[:, self.start:self.stop].reshape(vector.shape[0], self.classes, -1)  # (B, C, S); shape[0] keeps B dynamic in an ONNX trace
        pointed = (code[:, :, None] * slots).sum(1)  # (B, S)
        parts += [vector[:, :self.start], pointed, vector[:, self.stop:]]
        if self.offset is not None:
            parts.append(vector[:, self.offset[0]:self.offset[1]] - pointed)  # (B, S), e.g. fingertip - target
        return torch.cat(parts, 1)  # (B, F)


class FusionEncoder(Encoder):
    """A Dict encoder followed by an MLP over its concatenated features, so the keys interact before the heads.

    With `code_classes > 0` (aux_label_feed) a linear code head classifies the Dict encoding, and its softmax,
    detached from the policy's gradient, is appended to the MLP's input: a soft one-hot of the label the
    auxiliary loss teaches (the loss reads `last_logits`, the logits of the latest forward).

    With `film_key`, the features of the other keys are modulated, h * (1 + gamma(z)) + beta(z), by a linear
    map (zero at initialisation: the identity) of z, that key's features or, with a code head, the code."""

    def __init__(self, encoder: Encoder, hidden_sizes: tuple[int, ...], activation: str, code_classes: int = 0,
                 film_key: str | None = None, experts: bool = False, raw: bool = False) -> None:
        super().__init__()
        self.encoder = encoder
        self.code_head = nn.Linear(encoder.features_dim, code_classes) if code_classes else None
        # raw: the flat Box keys of the Dict, appended as observed (MLPEncoder's "flat" kind)
        self.raw_keys = tuple(k for k, e in zip(getattr(encoder, "keys", ()), getattr(encoder, "encoders", ()), strict=True)
                              if raw and isinstance(e, MLPEncoder) and e.kind == "flat")
        raw_dim = sum(int(cast(Any, e).net[0].in_features) for k, e in zip(getattr(encoder, "keys", ()),
                                                                         getattr(encoder, "encoders", ()), strict=True)
                      if k in self.raw_keys)
        self.input_dim = encoder.features_dim + code_classes + raw_dim
        self.mlp, self.features_dim = mlp_layers(self.input_dim, hidden_sizes, activation)
        # aux_label_experts: one more MLP per class beyond the first (self.mlp is expert 0), mixed by the code
        self.experts = nn.ModuleList(mlp_layers(self.input_dim, hidden_sizes, activation)[0]
                                     for _ in range(code_classes - 1 if experts and code_classes else 0))
        self.last_code: torch.Tensor | None = None
        self.last_logits: torch.Tensor | None = None
        self.film: nn.Linear | None = None
        self.film_index = -1
        if film_key is not None:
            keys = tuple(getattr(encoder, "keys", ()))
            if film_key not in keys:
                raise ConfigError(f"film_key={film_key!r} is not a key of the Dict observation; its keys: "
                                  f"{', '.join(keys)}.")
            dict_encoder = cast(Any, encoder)
            self.film_index = keys.index(film_key)
            widths = [int(e.features_dim) for e in dict_encoder.encoders]
            cond_dim = code_classes if code_classes else widths[self.film_index]
            self.film = nn.Linear(cond_dim, 2 * (sum(widths) - widths[self.film_index]))
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def fusion_input(self, obs: Any) -> torch.Tensor:
        """The MLP's input (B, F [+ C]): the Dict encoding (its non-`film_key` part modulated with FiLM), then
        the detached code with a code head."""
        if self.film is None:
            base = self.encoder(obs)  # (B, F)
            parts = [base]
        else:
            dict_encoder = cast(Any, self.encoder)
            features = [enc(obs[k]) for k, enc in zip(dict_encoder.keys, dict_encoder.encoders, strict=True)]
            base = torch.cat(features, 1)  # (B, F), the DictEncoder's output
        code = None
        if self.code_head is not None:
            self.last_logits = self.code_head(base)  # (B, C)
            code = torch.softmax(self.last_logits, -1).detach()  # (B, C)
            self.last_code = code
        if self.film is not None:
            cond = features[self.film_index] if code is None else code  # (B, Z)
            others = torch.cat([f for i, f in enumerate(features) if i != self.film_index], 1)  # (B, F - Z')
            gamma, beta = self.film(cond).chunk(2, dim=1)  # (B, F - Z') each
            parts = [others * (1.0 + gamma) + beta, features[self.film_index]]
        if code is not None:
            parts.append(code)
        parts.extend(obs[k].flatten(1).float() for k in self.raw_keys)  # (B, D_k) each
        return torch.cat(parts, 1) if len(parts) > 1 else parts[0]

    def fuse(self, x: torch.Tensor) -> torch.Tensor:
        """The fusion MLP on its input (B, input_dim), or the code-weighted sum of the experts' outputs."""
        if len(self.experts) == 0:
            return self.mlp(x)  # (B, features_dim)
        assert self.last_code is not None and len(self.last_code) == len(x)
        outs = torch.stack([self.mlp(x)] + [e(x) for e in self.experts], 1)  # (B, C, features_dim)
        return (self.last_code[:, :, None] * outs).sum(1)  # (B, features_dim)

    def forward(self, obs: Any) -> torch.Tensor:
        return self.fuse(self.fusion_input(obs))  # (B, features_dim)


class FusedMLPForward:
    """The rollout-time forward of a feed-forward MLP actor-critic as one chain of matmuls, no nn.Module calls.

    With small networks on CPU, the time of a rollout step goes to dispatch (module calls, one small op after
    another), not to arithmetic. Here the actor and critic MLPs run side by side: layer 1 stacks both weight
    matrices ([W_actor; W_critic] on the same input), deeper layers and the heads are block-diagonal, so
    the whole forward is one `addmm` + activation per layer. The result is the same function as
    `ActorCritic.features` followed by the heads (tests/test_pg.py checks it); `refresh()` rebuilds the
    stacked weights from the live parameters and must follow every optimiser step.
    Used for Box observations with Discrete or Box actions; anything else takes the module path.
    """

    def __init__(self, network: ActorCritic) -> None:
        self.network = network
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []  # (W^T (in, out), b (out,)) per fused layer
        self.blocks: list[list[tuple[nn.Linear, slice, slice]]] = []
        self.activation: Any = None
        self.n_out = 0  # width of the actor head's output (logits or means)
        self.refresh()

    @staticmethod
    def supports(network: ActorCritic) -> bool:
        encoders = (network.actor_encoder, network.critic_encoder)
        return (network.core is None and network.pointer is None and isinstance(network.actor, (CategoricalHead, GaussianHead))
                and all(isinstance(e, MLPEncoder) and e.kind == "flat" for e in encoders))

    def _linears(self, encoder: nn.Module) -> list[nn.Linear]:
        return [m for m in encoder.modules() if isinstance(m, nn.Linear)]  # in forward order

    @torch.no_grad()
    def refresh(self) -> None:
        net = self.network
        head = cast(nn.Linear, net.actor.linear if isinstance(net.actor, CategoricalHead) else net.actor.mean)
        actor = self._linears(net.actor_encoder) + [head]
        shared = net.critic_encoder is net.actor_encoder
        critic_head = cast(nn.Linear, net.critic.linear)
        critic = [critic_head] if shared else self._linears(net.critic_encoder) + [critic_head]
        if not self.layers:  # first call: allocate the fused (W^T, b) per layer, zeros off the diagonal blocks
            self.activation = next(m for m in net.actor_encoder.modules() if isinstance(m, tuple(ACTIVATIONS.values())))
            self.n_out = head.weight.shape[0]
            self.blocks = self._blocks(actor, critic, shared)
            self.layers = [(torch.zeros(n_in, n_out), torch.zeros(n_out)) for n_in, n_out in self._sizes()]
        for (w_t, b), layer_blocks in zip(self.layers, self.blocks, strict=True):
            for linear, rows, cols in layer_blocks:  # W^T[rows, cols] = W.T, b[cols] = bias
                w_t[rows, cols].copy_(linear.weight.t())
                b[cols].copy_(linear.bias)

    def _blocks(self, actor: list[nn.Linear], critic: list[nn.Linear], shared: bool) -> list[list[tuple[nn.Linear, slice, slice]]]:
        """Where each original layer sits in the fused ones: (linear, input rows, output columns)."""
        blocks = []
        if shared:  # one chain; only the last layer holds both heads side by side
            for linear in actor[:-1]:
                blocks.append([(linear, slice(None), slice(None))])
            last_a, last_c = actor[-1], critic[-1]
            blocks.append([(last_a, slice(None), slice(0, last_a.out_features)),
                           (last_c, slice(None), slice(last_a.out_features, None))])
            return blocks
        for i, (la, lc) in enumerate(zip(actor, critic, strict=True)):
            rows_a = slice(None) if i == 0 else slice(0, la.in_features)  # layer 1: both read the observation
            rows_c = slice(None) if i == 0 else slice(la.in_features, None)
            blocks.append([(la, rows_a, slice(0, la.out_features)), (lc, rows_c, slice(la.out_features, None))])
        return blocks

    def _sizes(self) -> list[tuple[int, int]]:
        sizes = []
        for layer_blocks in self.blocks:
            first = layer_blocks[0][0]
            n_in = first.in_features if layer_blocks[0][1] == slice(None) else sum(lin.in_features for lin, _, _ in layer_blocks)
            sizes.append((n_in, sum(lin.out_features for lin, _, _ in layer_blocks)))
        return sizes

    def __call__(self, obs: torch.Tensor) -> tuple[ActionDist, torch.Tensor]:
        """(action distribution, value (B,)) for a (B, ...) float observation; call under torch.inference_mode."""
        x = obs.reshape(obs.shape[0], -1).float()  # (B, in)
        act = self.activation
        for w_t, b in self.layers[:-1]:
            x = act(torch.addmm(b, x, w_t))  # (B, hidden_actor + hidden_critic)
        w_t, b = self.layers[-1]
        out = torch.addmm(b, x, w_t)  # (B, n_out + 1): actor head outputs, then V
        head_out, value = out[:, : self.n_out], out[:, self.n_out]
        head = self.network.actor
        if isinstance(head, CategoricalHead):
            return CategoricalDist(head_out, head.start), value
        gaussian = cast(GaussianHead, head)  # supports() admits only Categorical and Gaussian heads
        return GaussianDist(head_out, gaussian.log_std, gaussian.low, gaussian.high, gaussian.tanh,
                            gaussian.log_half_range), value


class NumpyRolloutForward:
    """FusedMLPForward's stacked weights run in NumPy: a rollout step of a Categorical MLP policy on CPU.

    A rollout step sees 8 observations; torch spends several microseconds dispatching each op on such
    tiny arrays, NumPy about one. Same function as the fused forward (read from the same weight buffers,
    which `FusedMLPForward.refresh` updates in place), with the action drawn by Gumbel-max from NumPy's
    global RNG (seeded by the run and saved in checkpoints, like torch's).
    """

    def __init__(self, fused: FusedMLPForward) -> None:
        self.layers = [(w_t.numpy(), b.numpy()) for w_t, b in fused.layers]  # views: refresh() updates them
        self.n_out = fused.n_out
        self.relu = isinstance(fused.activation, nn.ReLU)

    @staticmethod
    def supports(network: ActorCritic, device: torch.device) -> bool:
        return (device.type == "cpu" and FusedMLPForward.supports(network) and isinstance(network.actor, CategoricalHead)
                and any(isinstance(m, (nn.Tanh, nn.ReLU)) for m in network.actor_encoder.modules()))

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V (N,) of (N, ...) observations."""
        return self._out(obs)[:, self.n_out]

    def _out(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)  # (N, in)
        for w_t, b in self.layers[:-1]:
            x = x @ w_t
            x += b  # (N, hidden_actor + hidden_critic)
            if self.relu:
                np.maximum(x, 0.0, out=x)
            else:
                np.tanh(x, out=x)
        w_t, b = self.layers[-1]
        return x @ w_t + b  # (N, n_out + 1): logits, then V

    def __call__(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(action (N,) int64 without the space's start, its log-probability (N,), V (N,)) for (N, ...) observations."""
        out = self._out(obs)
        logits = out[:, : self.n_out]  # (N, n)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # (N, n) log-softmax
        gumbel = -np.log(np.random.standard_exponential(logp.shape))  # (N, n) Gumbel(0, 1)
        action = (logp + gumbel).argmax(axis=1)  # (N,) exact categorical sample
        return action, logp[np.arange(len(action)), action], out[:, self.n_out]


class HandGradMLP:
    """Training forward and hand-written backward of a feed-forward MLP actor-critic with a Discrete action.

    A PPO update on CartPole takes 20 gradient steps per 256 transitions through 4x64x64 MLPs; at that size
    the autograd engine (graph building, one node per op, AccumulateGrad per parameter) and nn.Module calls
    cost more than the matmuls. The loss side hands in dL/dlogits and dL/dvalue (formulas written out in
    the agent), and `backward` runs the chain rule through both towers with plain matmuls (agents/mlp_grad.py),
    writing every parameter's gradient in place with `out=` (into FlatAdam's flat gradient buffer, so no
    zeroing or accumulation is needed). Same parameters, same function, same gradients as autograd up to float
    rounding (tests/test_ppo.py and tests/test_pg.py compare them); the checkpoint is untouched. Only tanh and
    ReLU MLPs over flat Box observations with a Categorical head (PPO, A2C) or, with `box=True`, a Gaussian
    head (A2C: its state-independent log_std gets its gradient handed in directly) are handled; `supports`
    says when, otherwise the agent takes the autograd path.
    """

    def __init__(self, network: ActorCritic) -> None:
        self.network = network
        self.shared = network.critic_encoder is network.actor_encoder
        self.actor_layers = self._linears(network.actor_encoder)
        self.critic_layers = self.actor_layers if self.shared else self._linears(network.critic_encoder)
        actor = network.actor
        # Gaussian: the head's linear gives the mean (B, A); log_std (A,) is a parameter of its own
        self.log_std: nn.Parameter | None = actor.log_std if isinstance(actor, GaussianHead) else None
        self.actor_head = cast(nn.Linear, actor.mean if isinstance(actor, GaussianHead) else actor.linear)
        self.critic_head = cast(nn.Linear, network.critic.linear)
        self.relu = any(isinstance(m, nn.ReLU) for m in network.actor_encoder.modules())
        covered = {id(p) for lin in self._all_linears() for p in (lin.weight, lin.bias)}
        if self.log_std is not None:
            covered.add(id(self.log_std))
        if covered != {id(p) for p in network.parameters()}:  # every gradient is written by `backward`
            raise ValueError("HandGradMLP needs a network whose parameters are all MLP or head linears.")
        # what forward keeps for backward
        self._acts_a: list[torch.Tensor] = []
        self._acts_c: list[torch.Tensor] = []

    @staticmethod
    def supports(network: ActorCritic, box: bool = False) -> bool:
        """Whether `network` is handled: a Categorical head, or with `box` (the caller's loss knows Gaussians) also
        a Gaussian one."""
        heads: tuple[type[nn.Module], ...] = (CategoricalHead, GaussianHead) if box else (CategoricalHead,)
        return (FusedMLPForward.supports(network) and isinstance(network.actor, heads) and network.aux_head is None
                and any(isinstance(m, (nn.Tanh, nn.ReLU)) for m in network.actor_encoder.modules()))

    @staticmethod
    def _linears(encoder: nn.Module) -> list[nn.Linear]:
        return [m for m in encoder.modules() if isinstance(m, nn.Linear)]  # in forward order

    def _all_linears(self) -> list[nn.Linear]:
        critic = [] if self.shared else self.critic_layers
        return [*self.actor_layers, *critic, self.actor_head, self.critic_head]

    @torch.no_grad()
    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, n) or Gaussian means (B, A), value (B,)) for flat float observations (B, ...); keeps
        activations for backward."""
        x = obs.reshape(obs.shape[0], -1).float()  # (B, in)
        self._acts_a = mlp_forward(self.actor_layers, x, self.relu)
        self._acts_c = self._acts_a if self.shared else mlp_forward(self.critic_layers, x, self.relu)
        logits = torch.addmm(self.actor_head.bias, self._acts_a[-1], self.actor_head.weight.t())  # (B, n)
        value = torch.addmm(self.critic_head.bias, self._acts_c[-1], self.critic_head.weight.t())  # (B, 1)
        return logits, value.squeeze(-1)

    @torch.no_grad()
    def backward(self, grad_logits: torch.Tensor, grad_value: torch.Tensor, grad_log_std: torch.Tensor | None = None) -> None:
        """Write every parameter's .grad from dL/dlogits (B, n) (dL/dmean for a Gaussian), dL/dvalue (B,) of the
        last `forward`, and for a Gaussian head dL/dlog_std (A,)."""
        if self.log_std is not None:
            assert grad_log_std is not None and self.log_std.grad is not None, "a Gaussian head needs dL/dlog_std"
            self.log_std.grad.copy_(grad_log_std)
        grad_value = grad_value[:, None]  # (B, 1)
        linear_backward(self.actor_head, self._acts_a[-1], grad_logits)  # (n, H)
        linear_backward(self.critic_head, self._acts_c[-1], grad_value)  # (1, H)
        grad_a = grad_logits @ self.actor_head.weight  # (B, H)
        grad_c = grad_value @ self.critic_head.weight  # (B, H)
        if self.shared:
            mlp_backward(self.actor_layers, self._acts_a, grad_a + grad_c, self.relu)
        else:
            mlp_backward(self.actor_layers, self._acts_a, grad_a, self.relu)
            mlp_backward(self.critic_layers, self._acts_c, grad_c, self.relu)


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


# ------------------------------------------------------------------------------------------ returns


Array = TypeVar("Array", torch.Tensor, np.ndarray)


def compute_gae(rewards: Array, values: Array, next_value: Array, terminated: Array,
                dones: Array, gamma: float, gae_lambda: float) -> tuple[Array, Array]:
    """Generalised advantage estimates and returns for (T, N) rollouts (torch tensors or NumPy arrays).

    `terminated[t]` cuts the bootstrap (the episode truly ended); `dones[t]` (terminated or truncated)
    cuts the advantage recursion. The value after step t is values[t + 1] (or `next_value` for the
    last step): under next-step autoreset that is V(final observation), the right bootstrap after a
    truncation.
    """
    advantages = rewards * 0.0  # (T, N)
    last_gae = next_value * 0.0  # (N,)
    for t in reversed(range(rewards.shape[0])):
        following_value = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        delta = rewards[t] + gamma * following_value * (1.0 - terminated[t]) - values[t]
        last_gae = delta + gamma * gae_lambda * (1.0 - dones[t]) * last_gae
        advantages[t] = last_gae
    return advantages, advantages + values


def discounted_returns(rewards: Array, values: Array, next_value: Array, terminated: Array, dones: Array,
                       gamma: float) -> Array:
    """Discounted reward-to-go G_t for (T, N) rollouts (torch tensors or NumPy arrays), bootstrapped only
    where the data stops.

    G_t = r_t                       if step t terminated the episode,
          r_t + gamma * V(s_{t+1})  if it was truncated (values[t + 1] is V(final observation)),
          r_t + gamma * G_{t+1}     otherwise; after the last step G_T = next_value (the rollout's cut).

    REINFORCE reads it as the Monte Carlo return of complete episodes (the bootstrap only enters at a
    time-limit truncation); A2C as the n-step return with n running to the end of its short rollout.
    """
    returns = rewards * 0.0  # (T, N)
    following = next_value  # (N,) G_{t+1}
    for t in reversed(range(rewards.shape[0])):
        value_after = next_value if t == rewards.shape[0] - 1 else values[t + 1]  # (N,) V(s_{t+1})
        truncated = dones[t] * (1.0 - terminated[t])
        # terminated: no future; truncated: the critic's estimate of it; otherwise: the return that follows
        future = (1.0 - dones[t]) * following + truncated * value_after
        following = rewards[t] + gamma * future
        returns[t] = following
    return returns


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var(target - predicted) / Var(target); nan when the target is constant."""
    var_y = torch.var(target)
    return float("nan") if var_y == 0 else float(1 - torch.var(target - predicted) / var_y)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the entries where mask is 1 (reset steps and unused tails are 0)."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def normalize_advantages(adv: torch.Tensor, mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean) -> torch.Tensor:
    """(A - mean) / (std + 1e-8) with the population std, means taken by `mean` (masked where reset steps or
    padding carry no loss, e.g. `partial(masked_mean, mask=valid)`)."""
    adv_mean = mean(adv)
    return (adv - adv_mean) / (mean((adv - adv_mean) ** 2).sqrt() + 1e-8)


# ------------------------------------------------------------------------------------------ rollouts


class Rollout:
    """(T, N) storage for one rollout. Network inputs and outputs live in torch; per-step env scalars stay
    in NumPy during the rollout and cross to torch once, in `scalars()`."""

    def __init__(self, obs_space: gym.Space, act_space: gym.Space, n_steps: int, n_envs: int, device: torch.device) -> None:
        self.n_steps, self.n_envs, self.device = n_steps, n_envs, device
        self.obs = empty_like_space(obs_space, (n_steps, n_envs), device)
        # action heads take no Dict action space, so actions are one tensor
        self.actions = cast(torch.Tensor, empty_like_space(act_space, (n_steps, n_envs), device))
        self.logprobs = torch.zeros((n_steps, n_envs), device=device)
        self.values = torch.zeros((n_steps, n_envs), device=device)
        self.rewards = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.terminated = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.dones = np.zeros((n_steps, n_envs), dtype=np.float32)
        self.starts = np.zeros((n_steps, n_envs), dtype=np.float32)
        """1 where a step begins an episode: the LSTM clears that row's state before it."""
        self.valid = np.zeros((n_steps, n_envs), dtype=np.float32)
        """0 for reset steps (next-step autoreset), which no loss may see."""
        self.initial_state: LSTMState | None = None
        """The LSTM state before the first step, from which updates replay the sequences."""
        self.labels: np.ndarray | None = None
        """(T, N) int64 label of each stored observation, when the collector records one (aux_label_key)."""
        self.keypoints: np.ndarray | None = None
        """(T, N, C, 2) float32 keypoint targets of each stored observation (aux_keypoint_key)."""

    def scalars(self, steps: int | None = None) -> dict[str, torch.Tensor]:
        """rewards, terminated, dones, starts, valid of the first `steps` steps as (T, N) tensors."""
        steps = self.n_steps if steps is None else steps
        return {name: torch.as_tensor(getattr(self, name)[:steps], device=self.device)
                for name in ("rewards", "terminated", "dones", "starts", "valid")}


class RolloutCollector:
    """Steps a vector env with an actor-critic and fills a Rollout; keeps the env, LSTM and normaliser state
    between rollouts, and logs every finished episode (`charts/episodic_return`, `charts/episodic_length`)."""

    def __init__(self, envs: gym.vector.VectorEnv, network: ActorCritic, device: torch.device,
                 obs_normalizer: ObsNormalizer | None, reward_scaler: RewardScaler | None, ctx: TrainContext,
                 numpy_forward: bool = False) -> None:
        self.envs, self.network, self.device = envs, network, device
        self.obs_normalizer, self.reward_scaler, self.ctx = obs_normalizer, reward_scaler, ctx
        self.n_envs = envs.num_envs
        self.recent_returns: deque[float] = deque(maxlen=20)
        self.raw_obs: Any = None
        self.prev_done = np.zeros(self.n_envs, dtype=bool)  # the previous step ended an episode: this is a reset step
        self.episode_start = np.ones(self.n_envs, dtype=bool)
        self.lstm_state: LSTMState | None = None
        self.fused = FusedMLPForward(network) if FusedMLPForward.supports(network) else None
        # opt-in (PPO): the rollout forward and sampling in NumPy where NumpyRolloutForward supports the network
        self.numpy_forward = (NumpyRolloutForward(self.fused) if numpy_forward and self.fused is not None
                              and NumpyRolloutForward.supports(network, device) else None)
        # Episode statistics kept here (what RecordEpisodeStatistics does, in three NumPy ops per step):
        # raw rewards, before any reward scaling; reset steps belong to no episode.
        self.episode_return = np.zeros(self.n_envs, dtype=np.float64)
        self.episode_length = np.zeros(self.n_envs, dtype=np.int64)
        self.label_key: str | None = None  # set it to record info[label_key] beside each observation
        self.raw_label = np.zeros(self.n_envs, dtype=np.int64)
        self.keypoint_key: str | None = None  # set it to record info[keypoint_key] (N, C, 2) beside each observation
        self.raw_keypoints: np.ndarray | None = None

    def refresh(self) -> None:
        """Call after every optimiser step: the fused rollout forward copies the weights."""
        if self.fused is not None:
            self.fused.refresh()

    def reset(self, seed: int | None) -> None:
        """Start fresh episodes in every sub-env (seeded when `seed` is given) with a zero LSTM state."""
        self.raw_obs, info = self.envs.reset(seed=seed)
        self._read_label(info)
        self.prev_done[:] = False
        self.episode_start[:] = True
        self.lstm_state = self.network.initial_state(self.n_envs, self.device)
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0

    def _read_label(self, info: dict[str, Any]) -> None:
        """Keep info[label_key] (N,), the label of the observations just returned, when labels are recorded (and
        info[keypoint_key] (N, C, 2) likewise)."""
        for setting, key in (("aux_label_key", self.label_key), ("aux_keypoint_key", self.keypoint_key)):
            if key is not None and key not in info:
                raise AgentError(f"{setting}={key!r}, but the env's info has no such key (it has {sorted(info)}); "
                                 "use a key the env reports at reset and every step, or unset it.")
        if self.label_key is not None:
            self.raw_label = np.asarray(info[self.label_key], dtype=np.int64).copy()
        if self.keypoint_key is not None:
            self.raw_keypoints = np.asarray(info[self.keypoint_key], dtype=np.float32).copy()

    def _obs(self, update_stats: bool) -> Any:
        if self.obs_normalizer is None:
            return self.raw_obs
        if update_stats:
            self.obs_normalizer.update(self.raw_obs)
        return self.obs_normalizer.normalize(self.raw_obs)

    def collect(self, rollout: Rollout, global_step: int, stop_when_all_done: bool = False) -> tuple[int, int]:
        """Fill `rollout` step by step; returns (global_step after it, steps stored).

        With `stop_when_all_done`, stops early once every sub-env has ended at least one episode (REINFORCE's
        batches of complete episodes); otherwise runs all `rollout.n_steps` steps.
        """
        network, envs = self.network, self.envs
        rollout.initial_state = (self.lstm_state[0].clone(), self.lstm_state[1].clone()) if self.lstm_state is not None else None
        ended = np.zeros(self.n_envs, dtype=bool)
        steps = rollout.n_steps
        numpy_forward = self.numpy_forward
        if numpy_forward is not None:  # NumPy views of the (CPU) torch storage
            np_obs, np_actions = cast(torch.Tensor, rollout.obs).numpy(), rollout.actions.numpy()
            np_logprobs, np_values = rollout.logprobs.numpy(), rollout.values.numpy()
            start = cast(CategoricalHead, network.actor).start
        with torch.inference_mode():  # entered once per rollout: entering it costs as much as a small op
            for step in range(rollout.n_steps):
                global_step += self.n_envs
                rollout.starts[step] = self.episode_start
                live = ~self.prev_done  # False on reset steps, whose action the env ignores
                rollout.valid[step] = live
                if self.label_key is not None:
                    if rollout.labels is None:
                        rollout.labels = np.zeros((rollout.n_steps, self.n_envs), dtype=np.int64)
                    rollout.labels[step] = self.raw_label
                if self.raw_keypoints is not None:
                    if rollout.keypoints is None:
                        rollout.keypoints = np.zeros((rollout.n_steps, *self.raw_keypoints.shape), dtype=np.float32)
                    rollout.keypoints[step] = self.raw_keypoints
                if numpy_forward is not None:
                    np_obs[step] = self._obs(update_stats=True)
                    np_actions[step], np_logprobs[step], np_values[step] = numpy_forward(np_obs[step])
                    env_action = np_actions[step] + start if start else np_actions[step]
                else:
                    env_action = self._torch_step(rollout, step)

                self.raw_obs, reward, terminated, truncated, info = envs.step(env_action)
                self._read_label(info)
                done = np.logical_or(terminated, truncated)
                self.episode_return += reward * live
                self.episode_length += live
                if done.any():
                    for i in np.flatnonzero(done):
                        ret, length = float(self.episode_return[i]), float(self.episode_length[i])
                        self.recent_returns.append(ret)
                        self.ctx.logger.log(global_step, {"charts/episodic_return": ret, "charts/episodic_length": length})
                    self.episode_return[done] = 0.0
                    self.episode_length[done] = 0
                if self.reward_scaler is not None:
                    reward = self.reward_scaler.scale(reward, done)
                rollout.rewards[step], rollout.terminated[step], rollout.dones[step] = reward, terminated, done
                self.episode_start, self.prev_done = self.prev_done, done  # the step after a reset step starts an episode
                if stop_when_all_done:
                    ended |= done
                    if ended.all():
                        steps = step + 1
                        break
        return global_step, steps

    def _torch_step(self, rollout: Rollout, step: int) -> np.ndarray:
        """Store the observation, act with the network, store action, log-prob and value; the env's action."""
        network, device = self.network, self.device
        obs_t = obs_to_tensor(self._obs(update_stats=True), device)
        store_obs(rollout.obs, step, obs_t)
        if self.fused is not None:
            dist, value = self.fused(cast(torch.Tensor, obs_t))  # fused: flat Box observations only
        else:
            step_starts = (torch.as_tensor(rollout.starts[step][None], device=device)
                           if self.lstm_state is not None else None)  # (1, N)
            actor_f, critic_f, self.lstm_state = network.features(obs_t, self.lstm_state, step_starts)
            dist, value = network.actor(actor_f), network.critic(critic_f)
        action = dist.sample()
        rollout.logprobs[step] = dist.log_prob(action)
        rollout.values[step] = value
        rollout.actions[step] = action
        return dist.to_env(action).cpu().numpy()

    @torch.inference_mode()
    def next_value(self) -> torch.Tensor:
        """V of the current observations (N,), continuing the LSTM state: the bootstrap after the rollout."""
        if self.numpy_forward is not None:
            return torch.from_numpy(self.numpy_forward.value(self._obs(update_stats=False)))
        obs_t = obs_to_tensor(self._obs(update_stats=False), self.device)
        if self.fused is not None:
            return self.fused(cast(torch.Tensor, obs_t))[1]  # fused: flat Box observations only
        starts = torch.as_tensor(self.episode_start, dtype=torch.float32, device=self.device)[None]  # (1, N)
        _, critic_f, _ = self.network.features(obs_t, self.lstm_state, starts)
        return self.network.critic(critic_f)


# ------------------------------------------------------------------------------------------ the run folder side


class TrainingRun:
    """Resume, checkpoints, periodic evaluation, progress and Ctrl-C for an actor-critic training loop.

    A checkpoint holds the network, the optimiser, the RNG states and the normalisers, with the settings,
    step, update and best evaluation return in its JSON header.
    """

    def __init__(self, agent: str, s: TrainSettings, ctx: TrainContext, network: nn.Module,
                 optimizer: FlatParameters, obs_normalizer: ObsNormalizer | None,
                 reward_scaler: RewardScaler | None, device: torch.device) -> None:
        self.agent, self.s, self.ctx, self.network, self.optimizer = agent, s, ctx, network, optimizer
        self.obs_normalizer, self.reward_scaler, self.device = obs_normalizer, reward_scaler, device
        self.global_step, self.update = 0, 0
        self.best_return: float | None = None
        self.status = "finished"
        self.env_seed = s.seed
        self._start_time, self._start_step = time.perf_counter(), 0
        self.next_eval: int | None = None
        self.next_snapshot: int | None = None

    def start(self) -> None:
        """Resume from ctx.resume_from, or seed torch and NumPy for a fresh run."""
        s = self.s
        if self.ctx.resume_from is not None:
            tensors, meta = load_checkpoint(self.ctx.resume_from, self.device)
            load_module_tensors("model", self.network, tensors)
            self.optimizer.load_state_tensors("optim", tensors)
            restore_rng_state(tensors, meta["rng"])
            if self.obs_normalizer is not None:
                self.obs_normalizer.load_state_tensors("obs_rms", tensors)
            if self.reward_scaler is not None:
                self.reward_scaler.load_state_tensors("ret_rms", tensors)
            self.global_step, self.update, self.best_return = meta["step"], meta["update"], meta["best_eval_return"]
            # Env states cannot be checkpointed in general: a resumed run restarts its episodes from fresh seeds.
            self.env_seed = s.seed + 1_000 * (self.update + 1)
        else:
            torch.manual_seed(s.seed)
            np.random.seed(s.seed)
        self.next_eval = (self.global_step // s.eval_every + 1) * s.eval_every if s.eval_every else None
        self.next_snapshot = (self.global_step // s.checkpoint_every + 1) * s.checkpoint_every if s.checkpoint_every else None
        self._start_time, self._start_step = time.perf_counter(), self.global_step

    def save(self, name: str) -> None:
        tensors = module_tensors("model", self.network)
        rng_tensors, rng_meta = rng_state()
        tensors.update(self.optimizer.state_tensors("optim"))
        tensors.update(rng_tensors)
        if self.obs_normalizer is not None:
            tensors.update(self.obs_normalizer.state_tensors("obs_rms"))
        if self.reward_scaler is not None:
            tensors.update(self.reward_scaler.state_tensors("ret_rms"))
        meta = {"agent": self.agent, "settings": settings_to_dict(self.s), "step": self.global_step,
                "update": self.update, "best_eval_return": self.best_return, "rng": rng_meta}
        save_checkpoint(self.ctx.run.checkpoint_path(name), tensors, meta)

    def sps(self) -> float:
        return (self.global_step - self._start_step) / max(time.perf_counter() - self._start_time, 1e-9)

    def end_update(self, metrics: dict[str, float] | None, policy: Any, recent_returns: deque[float], last: bool) -> bool:
        """Log `metrics` (None: nothing to log this update), evaluate (keeping `best`), snapshot and report
        progress after an update; True means stop now."""
        s, ctx, step = self.s, self.ctx, self.global_step
        if metrics is not None:
            metrics["charts/sps"] = self.sps()
            ctx.logger.log(step, metrics)
        else:
            metrics = {"charts/sps": self.sps()}
        if recent_returns:
            metrics["charts/recent_return"] = float(np.mean(recent_returns))
        if ctx.evaluate is not None and self.next_eval is not None and (step >= self.next_eval or last):
            eval_metrics = ctx.evaluate(policy, step)
            ctx.logger.log(step, eval_metrics)
            metrics.update(eval_metrics)
            self.next_eval = (step // s.eval_every + 1) * s.eval_every
            if self.best_return is None or eval_metrics["eval/mean_return"] > self.best_return:
                self.best_return = eval_metrics["eval/mean_return"]
                self.save("best")
        if self.next_snapshot is not None and step >= self.next_snapshot:
            self.save(step_checkpoint_name(step))
            self.next_snapshot = (step // s.checkpoint_every + 1) * s.checkpoint_every
        if ctx.progress is not None:
            ctx.progress(step, metrics)
        if ctx.stop_requested() and not last:
            self.status = "interrupted"
            return True
        return False


S = TypeVar("S", bound=ActorCriticSettings)


def load_actor_critic_policy(checkpoint: Path, settings_cls: type[S], device: str = "cpu") -> ActorCriticPolicy:
    """Rebuild the network from the checkpoint's settings and the env's spaces; load the weights."""
    torch_device = resolve_device(device)
    tensors, meta = load_checkpoint(checkpoint, torch_device)
    s = settings_from_dict(settings_cls, meta["settings"])
    env = make_env(s.env_id, preset=s.env_preset, **s.env_kwargs)
    obs_space, act_space = env.observation_space, env.action_space
    env.close()
    network = ActorCritic(obs_space, act_space, s).to(torch_device)
    load_module_tensors("model", network, tensors)
    network.eval()
    obs_normalizer = None
    if s.normalize_obs:
        obs_normalizer = ObsNormalizer(obs_space)
        obs_normalizer.load_state_tensors("obs_rms", tensors)
    return ActorCriticPolicy(network, obs_space, act_space, obs_normalizer, torch_device)
