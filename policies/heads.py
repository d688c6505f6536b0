"""Heads: features in, action distributions or values out.

The distributions are written by hand rather than with torch.distributions: on CPU with small networks
the argument validation and broadcasting machinery there costs more than the maths. Each one offers

- `sample()` / `mode()`: the action to *store* (random / deterministic),
- `log_prob(actions) -> (B,)` and `entropy() -> (B,)` for the losses,
- `to_env(actions)`: what the env is sent.

Agents always store what `sample()` returns, compute `log_prob` on that, and step the env with
`to_env(...)`. For discrete spaces `to_env` is the identity (it adds the space's `start` when that is not
0). For Box actions it depends on `squash`:

- "clip" (PPO's usual choice): the stored action is the raw Gaussian sample, `log_prob` is the Gaussian
  density, and `to_env` clips into the Box bounds.
- "tanh": the stored action is the pre-squash Gaussian sample `u`; `to_env(u) = low + (tanh(u) + 1) / 2 *
  (high - low)`, and `log_prob(u)` is the log-density of that squashed env action (Gaussian density minus
  the log-Jacobian of tanh and the rescale). Storing `u` rather than the env action avoids inverting tanh,
  which loses all precision near the bounds. `entropy()` stays the Gaussian entropy of `u`, an
  approximation: the squashed distribution's entropy has no closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rlsuite.policies.encoders import SpaceError, layer_init

__all__ = [
    "SQUASH_MODES",
    "ActionDist",
    "CategoricalDist",
    "CategoricalHead",
    "GaussianDist",
    "GaussianHead",
    "MultiCategoricalDist",
    "MultiCategoricalHead",
    "QHead",
    "ValueHead",
    "make_action_head",
]

SQUASH_MODES = ("clip", "tanh")
"""Accepted `squash` values for Box action heads."""

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
_LOG2 = math.log(2.0)


@runtime_checkable
class ActionDist(Protocol):
    """What every action head's forward returns (B = batch)."""

    def sample(self) -> torch.Tensor:
        """A random action per row, to store and later pass to log_prob."""
        ...

    def mode(self) -> torch.Tensor:
        """The most likely action per row (deterministic evaluation)."""
        ...

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability (B,) of stored actions."""
        ...

    def entropy(self) -> torch.Tensor:
        """Entropy (B,) (summed over action components)."""
        ...

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        """Stored actions turned into what the env accepts."""
        ...


# ------------------------------------------------------------------------------------------ distributions


class CategoricalDist:
    """Categorical over the last dim of `logits` (..., n); any leading dims are batch dims."""

    __slots__ = ("logp", "start")

    def __init__(self, logits: torch.Tensor, start: int = 0):
        self.logp = logits.log_softmax(-1)  # (..., n) normalised log-probs
        self.start = start

    def sample(self) -> torch.Tensor:
        # Gumbel-max: argmax(logp + G), G = -log(E), E ~ Exp(1), is an exact categorical sample
        gumbel = -torch.empty_like(self.logp).exponential_().log()
        return (self.logp + gumbel).argmax(-1)  # (...,) int64

    def mode(self) -> torch.Tensor:
        return self.logp.argmax(-1)  # (...,)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)  # (...,)

    def entropy(self) -> torch.Tensor:
        # clamp so that a -inf logit (masked action) contributes 0 * finite instead of 0 * -inf = nan
        logp = self.logp.clamp(min=torch.finfo(self.logp.dtype).min)
        return -(logp.exp() * logp).sum(-1)  # (...,)

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        return actions + self.start if self.start else actions


class MultiCategoricalDist:
    """Independent categoricals, one per component; log_prob and entropy are summed over components.

    Components of different sizes are padded to the largest with -inf logits, so all the maths runs as one
    (B, K, max_n) tensor op instead of a Python loop over components."""

    __slots__ = ("cat", "start")

    def __init__(self, padded_logits: torch.Tensor, start: torch.Tensor | None = None):
        self.cat = CategoricalDist(padded_logits)  # (B, K, max_n)
        self.start = start  # (K,) or None when every component starts at 0

    def sample(self) -> torch.Tensor:
        return self.cat.sample()  # (B, K) int64

    def mode(self) -> torch.Tensor:
        return self.cat.mode()  # (B, K)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.cat.log_prob(actions).sum(-1)  # (B, K) -> (B,)

    def entropy(self) -> torch.Tensor:
        return self.cat.entropy().sum(-1)  # (B,)

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        return actions + self.start if self.start is not None else actions


class GaussianDist:
    """Diagonal Gaussian over the stored action (B, A); see the module docstring for the two squash modes."""

    __slots__ = ("mean", "log_std", "low", "high", "tanh", "log_half_range")

    def __init__(
        self,
        mean: torch.Tensor,
        log_std: torch.Tensor,
        low: torch.Tensor,
        high: torch.Tensor,
        tanh: bool = False,
        log_half_range: float = 0.0,
    ):
        self.mean = mean  # (B, A)
        self.log_std = log_std  # (A,) or (B, A)
        self.low, self.high = low, high  # (A,)
        self.tanh = tanh
        self.log_half_range = log_half_range  # sum_i log((high_i - low_i) / 2), the rescale's log-Jacobian

    def sample(self) -> torch.Tensor:
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)  # (B, A)

    def mode(self) -> torch.Tensor:
        return self.mean  # (B, A); to_env squashes or clips it

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        z = (actions - self.mean) * torch.exp(-self.log_std)  # (B, A) standardised
        logp = (-0.5 * z * z - self.log_std - _LOG_SQRT_2PI).sum(-1)  # (B,)
        if self.tanh:
            # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), stable for large |u|
            log_dtanh = 2.0 * (_LOG2 - actions - F.softplus(-2.0 * actions))  # (B, A)
            logp = logp - log_dtanh.sum(-1) - self.log_half_range
        return logp

    def entropy(self) -> torch.Tensor:
        ent = (0.5 + _LOG_SQRT_2PI + self.log_std).sum(-1)  # () or (B,)
        return ent.expand(self.mean.shape[0])  # (B,); for tanh an approximation (entropy of u)

    def to_env(self, actions: torch.Tensor) -> torch.Tensor:
        if self.tanh:
            return self.low + (torch.tanh(actions) + 1.0) * 0.5 * (self.high - self.low)  # (B, A)
        return torch.clamp(actions, min=self.low, max=self.high)  # (B, A)


# -------------------------------------------------------------------------------------------------- heads


class CategoricalHead(nn.Module):
    """Linear logits for a Discrete(n) action; gain 0.01 starts the policy near uniform, so early
    updates explore rather than commit to whatever the random init preferred."""

    def __init__(self, features_dim: int, n: int, start: int = 0):
        super().__init__()
        self.linear = layer_init(nn.Linear(features_dim, int(n)), gain=0.01)
        self.start = int(start)

    def forward(self, features: torch.Tensor) -> CategoricalDist:
        return CategoricalDist(self.linear(features), self.start)  # logits (B, n)


class MultiCategoricalHead(nn.Module):
    """One linear layer producing sum(nvec) logits, split per component; actions are (B, len(nvec)) int64."""

    index: torch.Tensor  # (K * max_n,) position of each padded logit in the flat logits
    pad: torch.Tensor  # (K, max_n) True where a component has fewer choices than max_n
    start: torch.Tensor  # (K,) or empty

    def __init__(self, features_dim: int, nvec: Sequence[int], start: Sequence[int] | None = None):
        super().__init__()
        sizes = [int(n) for n in nvec]
        if not sizes or min(sizes) < 1:
            raise SpaceError(f"MultiCategoricalHead needs a non-empty nvec of positive sizes, got {list(nvec)}")
        self.nvec = tuple(sizes)
        self.linear = layer_init(nn.Linear(features_dim, sum(sizes)), gain=0.01)
        max_n = max(sizes)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        # gather index (K, max_n) into the flat logits; padded slots point at 0 and are masked to -inf
        index = np.zeros((len(sizes), max_n), dtype=np.int64)
        pad = np.ones((len(sizes), max_n), dtype=bool)
        for k, (n, off) in enumerate(zip(sizes, offsets, strict=True)):
            index[k, :n] = off + np.arange(n)
            pad[k, :n] = False
        self.register_buffer("index", torch.as_tensor(index).reshape(-1), persistent=False)
        self.register_buffer("pad", torch.as_tensor(pad), persistent=False)
        self.uniform = len(set(sizes)) == 1  # no padding needed: a plain reshape
        starts = [int(s) for s in start] if start is not None else []
        # empty when every component starts at 0, so to_env stays the identity
        start_t = torch.as_tensor(starts if any(starts) else [], dtype=torch.int64)
        self.register_buffer("start", start_t, persistent=False)

    def forward(self, features: torch.Tensor) -> MultiCategoricalDist:
        flat = self.linear(features)  # (B, sum(nvec))
        batch, k = flat.shape[0], len(self.nvec)
        if self.uniform:
            logits = flat.reshape(batch, k, self.nvec[0])  # (B, K, n)
        else:
            logits = flat[:, self.index].reshape(batch, k, -1)  # (B, K, max_n)
            logits = logits.masked_fill(self.pad, float("-inf"))
        return MultiCategoricalDist(logits, self.start if self.start.numel() else None)


class GaussianHead(nn.Module):
    """Diagonal Gaussian for a flat Box action: mean from a linear layer (gain 0.01, so early actions sit
    near the centre), state-independent learned log_std as in CleanRL/SB3 PPO."""

    low: torch.Tensor  # (A,)
    high: torch.Tensor  # (A,)

    def __init__(
        self, features_dim: int, action_space: gym.spaces.Box, squash: str = "clip", log_std_init: float = 0.0
    ):
        super().__init__()
        if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
            raise SpaceError(
                f"GaussianHead needs a flat Box action space of shape (A,), got {action_space}; "
                "flatten the action with a TransformAction wrapper"
            )
        if squash not in SQUASH_MODES:
            raise ValueError(f"unknown squash {squash!r}; accepted values: {', '.join(SQUASH_MODES)}")
        low = np.asarray(action_space.low, dtype=np.float64)
        high = np.asarray(action_space.high, dtype=np.float64)
        if squash == "tanh" and not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise SpaceError(
                f"squash='tanh' needs finite action bounds, got low={low.tolist()}, high={high.tolist()}; "
                "use squash='clip' or bound the action space (gymnasium.wrappers.RescaleAction)"
            )
        n = int(action_space.shape[0])
        self.mean = layer_init(nn.Linear(features_dim, n), gain=0.01)
        self.log_std = nn.Parameter(torch.full((n,), float(log_std_init)))
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float32), persistent=False)
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float32), persistent=False)
        self.tanh = squash == "tanh"
        self.log_half_range = float(np.log((high - low) / 2.0).sum()) if self.tanh else 0.0

    def forward(self, features: torch.Tensor) -> GaussianDist:
        mean = self.mean(features)  # (B, A)
        return GaussianDist(mean, self.log_std, self.low, self.high, self.tanh, self.log_half_range)


def make_action_head(
    action_space: gym.Space, features_dim: int, *, squash: str = "clip", log_std_init: float = 0.0
) -> nn.Module:
    """The action head for an action space: Categorical for Discrete, MultiCategorical for MultiDiscrete
    and MultiBinary (two choices per bit), Gaussian for a flat Box."""
    if squash not in SQUASH_MODES:
        raise ValueError(f"unknown squash {squash!r}; accepted values: {', '.join(SQUASH_MODES)}")
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(features_dim, int(action_space.n), int(action_space.start))
    if isinstance(action_space, gym.spaces.MultiDiscrete) and len(action_space.shape) == 1:
        return MultiCategoricalHead(features_dim, action_space.nvec.tolist(), action_space.start.tolist())
    if isinstance(action_space, gym.spaces.MultiBinary) and len(action_space.shape) == 1:
        return MultiCategoricalHead(features_dim, [2] * int(action_space.shape[0]))
    if isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
        return GaussianHead(features_dim, action_space, squash, log_std_init)
    raise SpaceError(
        f"no action head for action space {action_space}; supported: Discrete, 1-D MultiDiscrete, "
        "1-D MultiBinary and flat Box of shape (A,). Flatten the action space with a wrapper."
    )


class ValueHead(nn.Module):
    """State value V(s): a linear layer (gain 1.0) returning (B,)."""

    def __init__(self, features_dim: int):
        super().__init__()
        self.linear = layer_init(nn.Linear(features_dim, 1), gain=1.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).squeeze(-1)  # (B, 1) -> (B,)


def _stream(features_dim: int, hidden: int, out: int) -> nn.Sequential:
    """Optional hidden ReLU layer then a linear output: one stream of a Q head."""
    if hidden <= 0:
        return nn.Sequential(layer_init(nn.Linear(features_dim, out), gain=1.0))
    return nn.Sequential(
        layer_init(nn.Linear(features_dim, hidden)), nn.ReLU(), layer_init(nn.Linear(hidden, out), gain=1.0)
    )


class QHead(nn.Module):
    """Q-values (B, n_actions). With `dueling`, separate value and advantage streams combined as
    Q = V + A - mean(A) (Wang et al. 2016): subtracting the mean makes V and A identifiable, so V learns
    from every action's TD error. `hidden > 0` adds a ReLU layer of that width to each stream."""

    def __init__(self, features_dim: int, n_actions: int, dueling: bool = False, hidden: int = 0):
        super().__init__()
        self.dueling = dueling
        if dueling:
            self.value = _stream(features_dim, hidden, 1)
            self.advantage = _stream(features_dim, hidden, n_actions)
        else:
            self.q = _stream(features_dim, hidden, n_actions)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.dueling:
            return self.q(features)  # (B, n_actions)
        value = self.value(features)  # (B, 1)
        adv = self.advantage(features)  # (B, n_actions)
        return value + adv - adv.mean(dim=1, keepdim=True)  # (B, n_actions)
