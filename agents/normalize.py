"""Observation and reward normalisers whose statistics go into checkpoints (as tensors, not pickles).

They follow SB3's VecNormalize / CleanRL's wrappers numerically, but live in the agent rather than in an
env wrapper, so the statistics are saved with the weights and evaluation can apply them without
updating them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.checkpoint import CheckpointError
from rlsuite.policies.encoders import is_sequence_space


class RunningMeanStd:
    """Running mean and variance over batches, merged with Chan et al.'s parallel formula."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)  # a tiny prior count keeps the first division finite

    def update(self, batch: np.ndarray) -> None:
        """Fold in a batch whose first axis indexes samples: (B, *shape)."""
        x = np.asarray(batch, dtype=np.float64)
        if x.shape[1:] != self.mean.shape:
            raise ValueError(f"RunningMeanStd expects batches shaped (B, *{self.mean.shape}), got {x.shape}.")
        if x.shape[0] == 0:
            return
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), x.shape[0])

    def update_from_moments(self, batch_mean: np.ndarray, batch_var: np.ndarray, batch_count: int) -> None:
        """Merge another group's (mean, population variance, count) into these statistics."""
        delta = batch_mean - self.mean
        total = self.count + batch_count
        new_mean = self.mean + delta * batch_count / total
        m2 = self.var * self.count + batch_var * batch_count + np.square(delta) * self.count * batch_count / total
        # asarray: with shape () NumPy arithmetic returns scalars, and we keep arrays throughout.
        self.mean = np.asarray(new_mean, dtype=np.float64)
        self.var = np.asarray(m2 / total, dtype=np.float64)
        self.count = total

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """{"<prefix>.mean", "<prefix>.var", "<prefix>.count"} as float64 tensors."""
        return {
            f"{prefix}.mean": torch.from_numpy(self.mean.copy()),
            f"{prefix}.var": torch.from_numpy(self.var.copy()),
            f"{prefix}.count": torch.tensor(self.count, dtype=torch.float64),
        }

    def load_state_tensors(self, prefix: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Inverse of `state_tensors`; the shape must match this instance's."""
        names = [f"{prefix}.mean", f"{prefix}.var", f"{prefix}.count"]
        missing = [n for n in names if n not in tensors]
        if missing:
            raise CheckpointError(f"Checkpoint lacks normaliser statistics {missing}; was it saved with normalisation on?")
        mean = tensors[names[0]].detach().cpu().to(torch.float64).numpy().copy()
        var = tensors[names[1]].detach().cpu().to(torch.float64).numpy().copy()
        if mean.shape != self.mean.shape or var.shape != self.var.shape:
            raise CheckpointError(
                f"Normaliser {prefix!r} in the checkpoint has shape {mean.shape}, the env gives {self.mean.shape}."
            )
        self.mean, self.var = mean, var
        self.count = float(tensors[names[2]].item())


def _is_float_box(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and np.issubdtype(space.dtype, np.floating)


class ObsNormalizer:
    """Normalises float Box observations (alone or inside a Dict) to about zero mean and unit variance.

    Integer boxes (images), discrete and other spaces pass through unchanged: scaling pixels is the
    encoder's job, and one-hot or index observations must keep their meaning. (T, F) sequences pass
    through too: the SequenceEncoder standardises each sequence itself, and running statistics, which
    change at every step, would make an episode's repeated sequence (a spoken command) differ from step
    to step and defeat the encoder's reuse of repeated rows.
    """

    def __init__(self, space: gym.Space, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        self.space = space
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        # Path of keys into the observation ("" = the observation itself) -> its statistics.
        self.stats: dict[str, RunningMeanStd] = {}
        self._collect(space, "")

    def _collect(self, space: gym.Space, path: str) -> None:
        if _is_float_box(space) and not is_sequence_space(space):
            self.stats[path] = RunningMeanStd(shape=space.shape or ())
        elif isinstance(space, gym.spaces.Dict):
            for key, sub in space.spaces.items():
                self._collect(sub, f"{path}.{key}" if path else str(key))

    @property
    def active(self) -> bool:
        """False when the space has nothing to normalise (then `normalize` is the identity)."""
        return bool(self.stats)

    def _map(self, obs: Any, path: str, fn: Any) -> Any:
        if path in self.stats:
            return fn(self.stats[path], obs)
        if isinstance(obs, Mapping):
            return {k: self._map(v, f"{path}.{k}" if path else str(k), fn) for k, v in obs.items()}
        return obs

    def update(self, obs: Any) -> None:
        """Fold a batch of observations (leading axis = sub-envs) into the statistics."""

        def _update(rms: RunningMeanStd, x: Any) -> Any:
            rms.update(np.asarray(x))
            return x

        self._map(obs, "", _update)

    def normalize(self, obs: Any) -> Any:
        """(obs - mean) / sqrt(var + eps), clipped to [-clip, clip], as float32; statistics unchanged."""

        def _normalize(rms: RunningMeanStd, x: Any) -> np.ndarray:
            z = (np.asarray(x, dtype=np.float64) - rms.mean) / np.sqrt(rms.var + self.epsilon)  # (B, *shape)
            return np.clip(z, -self.clip, self.clip).astype(np.float32)

        return self._map(obs, "", _normalize)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """Statistics as tensors: `<prefix>.mean` etc. for a Box, `<prefix>.<key>.mean` for Dict entries."""
        out: dict[str, torch.Tensor] = {}
        for path, rms in self.stats.items():
            out.update(rms.state_tensors(f"{prefix}.{path}" if path else prefix))
        return out

    def load_state_tensors(self, prefix: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Inverse of `state_tensors`."""
        for path, rms in self.stats.items():
            rms.load_state_tensors(f"{prefix}.{path}" if path else prefix, tensors)


class RewardScaler:
    """Divides rewards by the running std of each env's discounted return (SB3 VecNormalize's reward scaling).

    Dividing by the return's scale (not the reward's) keeps value targets near unit size whatever the
    reward magnitude; the mean is not subtracted, so the sign of every reward is kept.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0, epsilon: float = 1e-8) -> None:
        if num_envs < 1:
            raise ValueError(f"RewardScaler needs num_envs >= 1, got {num_envs}.")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"RewardScaler needs 0 <= gamma <= 1, got {gamma}.")
        self.num_envs = num_envs
        self.gamma = float(gamma)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.returns = np.zeros(num_envs, dtype=np.float64)  # (N,) discounted return so far, per env
        self.return_rms = RunningMeanStd(shape=())

    def scale(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        """Update the return statistics with this step, then return the scaled, clipped rewards (float32)."""
        r = np.asarray(rewards, dtype=np.float64)  # (N,)
        d = np.asarray(dones, dtype=bool)  # (N,) terminated | truncated
        if r.shape != (self.num_envs,) or d.shape != (self.num_envs,):
            raise ValueError(f"RewardScaler expects rewards and dones shaped ({self.num_envs},), got {r.shape}, {d.shape}.")
        self.returns = self.returns * self.gamma + r
        self.return_rms.update(self.returns)  # a batch of N scalar samples
        scaled = np.clip(r / np.sqrt(self.return_rms.var + self.epsilon), -self.clip, self.clip)
        self.returns[d] = 0.0
        return scaled.astype(np.float32)

    def state_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """Per-env returns and the return statistics as tensors under `prefix`."""
        out = self.return_rms.state_tensors(f"{prefix}.return_rms")
        out[f"{prefix}.returns"] = torch.from_numpy(self.returns.copy())
        return out

    def load_state_tensors(self, prefix: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Inverse of `state_tensors`; the number of envs must match."""
        key = f"{prefix}.returns"
        if key not in tensors:
            raise CheckpointError(f"Checkpoint lacks {key!r}; was it saved with reward normalisation on?")
        returns = tensors[key].detach().cpu().to(torch.float64).numpy().copy()
        if returns.shape != (self.num_envs,):
            raise CheckpointError(
                f"Checkpoint reward scaler was saved for {returns.shape[0] if returns.ndim else 1} envs, "
                f"this run has n_envs={self.num_envs}; resume with the run's own settings."
            )
        self.return_rms.load_state_tensors(f"{prefix}.return_rms", tensors)
        self.returns = returns
