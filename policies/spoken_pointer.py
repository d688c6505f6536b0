"""`spoken_pointer`: a listener and a pointer in front of the actor and critic MLPs, for spoken-command reaching.

SpokenReach (envs/spoken.py) observes a Dict: audio of a spoken colour and a flat state that lists four
targets in colour order (or, in the image variant, an image showing them). The policy must reach the one
that was said. Reading a product of "which word" and "every target" is what PPO's plain MLPs did not learn
in 300k steps even with the word given (benchmarks/spoken_oracle.py); this network does the selection
for them, so the MLPs after it read Reacher's own layout for the heard target:

- the listener: an encoder of every non-flat key except the selected one (the audio) and a linear
  classifier of the command, trained only by the auxiliary cross-entropy on the env's label (its
  softmax is detached before it points, so the policy's and the value's gradients never reach it);
- the pointer: softmax p (B, C) over the C classes picks sum_k p_k * slot_k from C equal slots of a flat
  key (`select="state:8:16"`), or from C keypoints that `SpatialKeypoints` finds in an image key
  (`select="image"`), trained by the policy's and the value's gradients and, with `keypoint_key`, by a
  squared error on the env's target positions (Levine et al. 2016 pretrained theirs on object positions);
- the output (B, F): the other flat keys as observed, the selected key with its slots replaced by the
  pointed-at one, and with `offset` the key's offset slice minus that slot (fingertip - target).

`aux_keys` names the `info` keys the agent records beside each observation (training only; evaluation and
inference never read them) and `aux_loss` turns them into the auxiliary loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from rlsuite.policies.encoders import SpatialKeypoints, is_image_space, make_encoder


def parse_slice(spec: str, what: str) -> tuple[str, int, int]:
    """"KEY:START:STOP" as (key, start, stop), "KEY" alone (an image key) as (key, 0, 0); ValueError otherwise."""
    parts = spec.split(":")
    if len(parts) == 1 and parts[0]:
        return parts[0], 0, 0
    if len(parts) != 3 or not all(p.isdigit() for p in parts[1:]) or int(parts[1]) >= int(parts[2]):
        raise ValueError(f"{what}={spec!r} must be KEY:START:STOP with 0 <= START < STOP, e.g. state:8:16 (the slice "
                         "of a flat Dict key holding one equal slot per class), or an image key alone, e.g. image.")
    return parts[0], int(parts[1]), int(parts[2])


class SpokenPointer(nn.Module):
    """(B, ...) Dict observation -> (B, output_dim) flat vector: listen, classify, point (module docstring)."""

    def __init__(self, space: spaces.Space, *, classes: int, select: str, offset: str | None = None,
                 label_key: str = "command", label_coef: float = 1.0, keypoint_key: str | None = None,
                 keypoint_coef: float = 1.0, hidden_sizes: Sequence[int] = (64, 64), activation: str = "tanh",
                 cnn: str = "nature") -> None:
        super().__init__()
        if not isinstance(space, spaces.Dict):
            raise ValueError(f"spoken_pointer needs a Dict observation (a key to listen to, a key to point into), got {space}.")
        if classes < 2:
            raise ValueError(f"spoken_pointer: classes={classes} must be >= 2 (the label values 0 .. classes - 1).")
        key, start, stop = parse_slice(select, "select")
        keys = ", ".join(f"{k} {v}" for k, v in space.spaces.items())
        chosen = space.spaces.get(key)
        flat = {k for k, v in space.spaces.items() if isinstance(v, spaces.Box) and len(v.shape) == 1}
        self.keypoints: SpatialKeypoints | None = None
        if isinstance(chosen, spaces.Box) and is_image_space(chosen):
            if (start, stop) != (0, 0) or offset is not None:
                raise ValueError(f"spoken_pointer: select={key!r} names an image key: give the key alone (its slots are "
                                 "keypoints found in the image), without START:STOP or an offset.")
            self.keypoints = SpatialKeypoints(chosen, classes)
            slot, width, offset_slice = 2, 0, None
        elif key in flat:
            width = int(cast(spaces.Box, chosen).shape[0])
            if stop > width or (stop - start) % classes:
                raise ValueError(f"spoken_pointer: select={select} must lie within {key}'s {width} values and split "
                                 f"into classes={classes} equal slots.")
            slot = (stop - start) // classes
            offset_slice = parse_slice(f"{key}:{offset}", "offset")[1:] if offset is not None else None
            if offset_slice is not None and (offset_slice[1] > width or offset_slice[1] - offset_slice[0] != slot):
                raise ValueError(f"spoken_pointer: offset={offset} must lie within {key}'s {width} values and be one "
                                 f"slot ({slot} values) wide.")
        else:
            raise ValueError(f"spoken_pointer: select names {key!r}, which is not a flat (1-D Box) or image key of the "
                             f"Dict observation; its keys: {keys}.")
        if keypoint_key is not None and self.keypoints is None:
            raise ValueError("spoken_pointer: keypoint_key needs select naming an image key (its keypoints are what it teaches).")
        self.passed = tuple(sorted(flat - {key}))  # flat keys the MLPs read as observed
        heard = {k: v for k, v in space.spaces.items() if k != key and k not in flat}
        if not heard:
            raise ValueError(f"spoken_pointer: the Dict observation has no key besides {key!r} and its flat keys to "
                             f"classify the label from; its keys: {keys}.")
        self.key, self.start, self.stop, self.classes, self.offset = key, start, stop, classes, offset_slice
        self.label_key, self.label_coef = label_key, label_coef
        self.keypoint_key, self.keypoint_coef = keypoint_key, keypoint_coef
        self.listener = make_encoder(spaces.Dict(heard), mlp_hidden=hidden_sizes, activation=activation, cnn=cnn)
        self.code_head = nn.Linear(self.listener.features_dim, classes)
        passed_dim = sum(int(cast(spaces.Box, space.spaces[k]).shape[0]) for k in self.passed)
        self.output_dim = passed_dim + width - (stop - start) + slot * (2 if offset_slice is not None else 1)
        self.aux_keys: tuple[str, ...] = (label_key,) + ((keypoint_key,) if keypoint_key is not None else ())
        """The env `info` keys the agent records beside each observation for `aux_loss`."""
        self.last_logits: torch.Tensor | None = None  # (B, C) of the latest forward, for aux_loss
        self.last_keypoints: torch.Tensor | None = None  # (B, C, 2) of the latest forward, for aux_loss

    def forward(self, obs: Any) -> torch.Tensor:
        listened = self.listener({k: obs[k] for k in cast(Any, self.listener).keys})  # (B, F)
        self.last_logits = self.code_head(listened)  # (B, C)
        code = torch.softmax(self.last_logits, -1).detach()  # (B, C): no policy or value gradient to the listener
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

    def aux_loss(self, targets: dict[str, torch.Tensor],
                 mean: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted auxiliary loss of the latest forward against the recorded `info` values (B, ...), and
        its parts for the logs (no gradient); rows averaged by `mean`."""
        assert self.last_logits is not None, "aux_loss reads the latest forward: run the network first"
        label, accuracy = label_loss(self.last_logits, targets[self.label_key].long(), mean)
        loss = self.label_coef * label
        terms = {"aux_label_loss": label.detach(), "aux_label_accuracy": accuracy}
        if self.keypoint_key is not None:
            assert self.last_keypoints is not None
            error = keypoint_error(self.last_keypoints, targets[self.keypoint_key], mean)
            loss = loss + self.keypoint_coef * error
            terms["aux_keypoint_error"] = error.detach()
        return loss, terms


def label_loss(logits: torch.Tensor, labels: torch.Tensor,
               mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of (B, classes) logits against labels (B,), and the accuracy (no gradient), both averaged
    by `mean` (Jaderberg et al. 2017 for auxiliary losses; Hermann et al. 2017 for grounding words)."""
    loss = mean(F.cross_entropy(logits, labels, reduction="none"))
    with torch.no_grad():
        accuracy = mean((logits.argmax(-1) == labels).float())
    return loss, accuracy


def keypoint_error(keypoints: torch.Tensor, targets: torch.Tensor,
                   mean: Callable[[torch.Tensor], torch.Tensor] = torch.mean) -> torch.Tensor:
    """Squared distance between (B, C, 2) keypoints and (B, C, 2) positions, summed over the C keypoints and
    averaged over the batch by `mean`."""
    return mean(((keypoints - targets) ** 2).sum((1, 2)))


NETWORKS: dict[str, type[SpokenPointer]] = {"spoken_pointer": SpokenPointer}
"""Named networks an actor-critic can put in front of its towers (`network` in PPO's settings)."""


def make_front(name: str, space: spaces.Space, kwargs: dict[str, Any], **backbone: Any) -> SpokenPointer:
    """Build the named network `name` for observations from `space`; `backbone` (hidden_sizes, activation, cnn)
    shapes its own encoders. ValueError with the accepted names or arguments when either is wrong."""
    if name not in NETWORKS:
        raise ValueError(f"network={name!r} is not a named network; choose one of {sorted(NETWORKS)}.")
    try:
        return NETWORKS[name](space, **kwargs, **backbone)
    except TypeError as err:  # an unknown or missing keyword
        raise ValueError(f"network_kwargs for {name}: {err}") from None
