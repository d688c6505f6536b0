"""LSTMCore: memory across env steps for recurrent PPO/A2C (the CleanRL ppo_atari_lstm pattern).

The agent encodes each observation, then feeds a (T, B, F) chunk of features through the core together
with `episode_starts` (T, B); the hidden state of a row is zeroed just before the step where its episode
begins, so no memory leaks from one episode into the next, in rollouts and in training alike.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LSTMCore", "LSTMState"]

LSTMState = tuple[torch.Tensor, torch.Tensor]
"""(h, c), each (1, B, H): one layer, B rows."""


class LSTMCore(nn.Module):
    """A one-layer LSTM that resets rows at episode starts; `features_dim = hidden_size`."""

    def __init__(self, input_dim: int, hidden_size: int = 128):
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden_size)
        for name, param in self.lstm.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0.0)
            else:
                nn.init.orthogonal_(param, 1.0)
        self.hidden_size = int(hidden_size)
        self.features_dim = int(hidden_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> LSTMState:
        """Zero (h, c), each (1, B, H), the state of a freshly reset env."""
        weight = next(self.lstm.parameters())
        device = device if device is not None else weight.device
        zeros = torch.zeros(1, batch_size, self.hidden_size, device=device, dtype=weight.dtype)
        return zeros, zeros.clone()

    def forward(
        self, x: torch.Tensor, state: LSTMState, episode_starts: torch.Tensor
    ) -> tuple[torch.Tensor, LSTMState]:
        """Run x (T, B, F) from `state`, zeroing row b's state before step t where episode_starts[t, b].

        Returns out (T, B, H) and the state after the last step. Exactly a per-step loop, but stretches of
        steps where no row restarts go through cuDNN/MKL in one call, which is what makes it cheap."""
        steps, batch = x.shape[0], x.shape[1]
        if episode_starts.shape != (steps, batch):
            raise ValueError(
                f"episode_starts must have shape (T, B) = {(steps, batch)} to match x {tuple(x.shape)}, "
                f"got {tuple(episode_starts.shape)}"
            )
        keep = 1.0 - episode_starts.to(x.dtype)  # (T, B): 0 where a row's state must be cleared
        # a new segment begins at t = 0 and at every step where any row restarts
        restart = episode_starts.bool().any(dim=1)  # (T,)
        restart[0] = True
        bounds = torch.nonzero(restart).flatten().tolist() + [steps]
        h, c = state
        outs = []
        for t0, t1 in zip(bounds[:-1], bounds[1:], strict=True):
            mask = keep[t0].view(1, batch, 1)  # (1, B, 1)
            out, (h, c) = self.lstm(x[t0:t1], (h * mask, c * mask))  # out: (t1 - t0, B, H)
            outs.append(out)
        return torch.cat(outs, dim=0), (h, c)  # (T, B, H)
