"""Encoders: observation space in, `(B, features_dim)` features out.

Every encoder is an `nn.Module` with an int `features_dim`, so an agent can size its heads without a dry
run, and the same module serves our agents and Stable-Baselines3 (through its features-extractor seam).
Inputs are batched torch tensors in the env's dtype: images stay uint8 until the encoder scales them, so
replay buffers can keep the compact dtype; Dict observations arrive as `dict[str, Tensor]`.

`make_encoder(space)` picks the encoder from the space:

| space                                   | encoder                       |
|-----------------------------------------|-------------------------------|
| 1-D Box, Discrete, MultiDiscrete, MultiBinary | `MLPEncoder` (one-hot for discrete) |
| image Box: (C,H,W), (H,W,C), uint8 (H,W) | `NatureCNN`, `NipsCNN` or `ImpalaCNN` |
| 2-D float Box (T, F), e.g. log-mel audio | `SequenceEncoder`             |
| Dict                                    | `DictEncoder` (one per key)   |
| other Box (0-D, >= 3-D non-image)       | `MLPEncoder` on the flattened values |
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ACTIVATIONS",
    "CNN_KINDS",
    "DictEncoder",
    "ImageLayout",
    "ImpalaCNN",
    "MLPEncoder",
    "NatureCNN",
    "NipsCNN",
    "SequenceEncoder",
    "SpaceError",
    "image_layout",
    "is_image_space",
    "is_sequence_space",
    "layer_init",
    "make_encoder",
    "mlp_layers",
]


class SpaceError(ValueError):
    """An observation or action space that the backbone cannot build a network for."""


ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}
"""Accepted `activation` names for MLPs."""

CNN_KINDS = ("nature", "nips", "impala")
"""Accepted `cnn` names for image encoders."""

_CHANNELS = (1, 3, 4)  # grayscale, RGB, RGBA or a 4-frame grayscale stack


def layer_init(layer: nn.Module, gain: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with `gain`, constant bias (CleanRL's layer_init): keeps activations well scaled
    at the start of training, which PPO's small-learning-rate updates rely on."""
    nn.init.orthogonal_(layer.weight, gain)  # type: ignore[arg-type]
    if getattr(layer, "bias", None) is not None:
        nn.init.constant_(layer.bias, bias)  # type: ignore[arg-type]
    return layer


def _activation(name: str) -> type[nn.Module]:
    """The activation class for `name`, or a ValueError listing the accepted names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; accepted values: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


def mlp_layers(in_dim: int, hidden_sizes: Sequence[int], activation: str) -> tuple[nn.Sequential, int]:
    """`Linear -> activation` per width in `hidden_sizes` (orthogonal init), and the output width."""
    act = _activation(activation)
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, int(size))), act()]
        in_dim = int(size)
    return nn.Sequential(*layers), in_dim


# --------------------------------------------------------------------------------------------- space tests


def is_image_space(space: gym.Space) -> bool:
    """True for a Box that looks like an image: uint8 with 2 or 3 dims, or 3 dims with a channel dim in
    {1, 3, 4} first or last (float images are expected in [0, 1]).

    A 3-D uint8 Box whose layout is ambiguous still counts as an image, so the CNN can reject it with an
    explanation rather than an MLP silently flattening pixels."""
    if not isinstance(space, gym.spaces.Box):
        return False
    shape = space.shape
    if len(shape) == 2:
        return space.dtype == np.uint8
    if len(shape) == 3:
        return space.dtype == np.uint8 or shape[0] in _CHANNELS or shape[-1] in _CHANNELS
    return False


def is_sequence_space(space: gym.Space) -> bool:
    """True for a 2-D float Box that is not an image: a (time, features) array such as a log-mel
    spectrogram, which a SequenceEncoder reads along its first axis."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 2
        and np.issubdtype(space.dtype, np.floating)
        and not is_image_space(space)
    )


@dataclass(frozen=True)
class ImageLayout:
    """Where the channels of an image observation live."""

    order: str
    """"chw", "hwc" or "hw" (grayscale without a channel dim)."""
    channels: int
    height: int
    width: int


_LAYOUT_HELP = (
    "accepted layouts are (C, H, W) or (H, W, C) with C in {1, 3, 4} (grayscale, RGB, RGBA or a 4-frame "
    "grayscale stack) and (H, W) grayscale"
)


def image_layout(space: gym.spaces.Box) -> ImageLayout:
    """Detect the channel order of an image Box, or raise SpaceError saying how to fix the observation.

    Channel-last when the last dim is in {1, 3, 4} and the first is not; channel-first when the first is
    in {1, 3, 4} and the last is not; anything else is ambiguous and rejected rather than guessed."""
    shape = tuple(int(d) for d in space.shape)
    if len(shape) == 2:
        return ImageLayout("hw", 1, shape[0], shape[1])
    if len(shape) != 3:
        raise SpaceError(
            f"image observation of shape {shape} has {len(shape)} dims; {_LAYOUT_HELP}. Merge frame "
            "stacks into the channel dim (e.g. grayscale frames stacked with FrameStackObservation)."
        )
    first, last = shape[0] in _CHANNELS, shape[-1] in _CHANNELS
    if last and not first:
        return ImageLayout("hwc", shape[2], shape[0], shape[1])
    if first and not last:
        return ImageLayout("chw", shape[0], shape[1], shape[2])
    raise SpaceError(
        f"cannot tell the channel dim of image observation shape {shape}: {_LAYOUT_HELP}. Fix: reshape or "
        "transpose the observation with a wrapper (gymnasium.wrappers.TransformObservation / "
        "ReshapeObservation), use GrayscaleObservation or stack 4 grayscale frames, or, if this is not an "
        "image, use a float dtype with FlattenObservation so an MLP reads it."
    )


def _conv_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    """Output length of a convolution or pooling along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


class _ImageInput(nn.Module):
    """Turns an env image batch into float (B, C, H, W): scales uint8 by 1/255 and moves channels first.

    The scale is decided by the space's dtype, not the tensor's, so a buffer that stored uint8 frames as
    float32 (as CleanRL's rollout buffer does) is still scaled."""

    def __init__(self, space: gym.spaces.Box, min_size: int, encoder: str):
        super().__init__()
        self.layout = image_layout(space)
        lay = self.layout
        if lay.height < min_size or lay.width < min_size:
            hint = " or use cnn='impala' (needs >= 8x8)" if min_size > 8 else ""
            raise SpaceError(
                f"image observation of shape {tuple(space.shape)} (H={lay.height}, W={lay.width}) is too "
                f"small for {encoder}, which needs at least {min_size}x{min_size}. Fix: resize with "
                f"gymnasium.wrappers.ResizeObservation{hint}, or, if this is not an image, use a float "
                "dtype with FlattenObservation so an MLP reads it."
            )
        self.scale = 1.0 / 255.0 if space.dtype == np.uint8 else 1.0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float()
        if self.scale != 1.0:
            x = x * self.scale
        if self.layout.order == "hwc":
            x = x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        elif self.layout.order == "hw":
            x = x.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
        return x


# ----------------------------------------------------------------------------------------------- encoders


class Encoder(nn.Module):
    """What every encoder is: a module from a batch of observations to `(B, features_dim)` features."""

    features_dim: int


class MLPEncoder(Encoder):
    """Flattens a Box (or one-hot encodes Discrete / MultiDiscrete, 0/1 for MultiBinary) and applies an MLP.

    One-hot because a discrete observation is a label, not a magnitude: state 7 is not "more" than state 3.
    """

    shift: torch.Tensor  # MultiDiscrete only: (K,) offset of each component in the concatenated one-hot

    def __init__(
        self,
        space: gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
    ):
        super().__init__()
        _activation(activation)  # an unknown name fails before the space is inspected
        self.kind: str
        if isinstance(space, gym.spaces.Discrete):
            self.kind = "discrete"
            self.n = int(space.n)
            self.start = int(space.start)
            in_dim = self.n
        elif isinstance(space, gym.spaces.MultiDiscrete):
            self.kind = "multidiscrete"
            nvec = np.asarray(space.nvec, dtype=np.int64).reshape(-1)
            offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
            start = np.asarray(space.start, dtype=np.int64).reshape(-1)
            # index of component k's value v in the concatenated one-hot: offsets[k] + v - start[k]
            self.register_buffer("shift", torch.as_tensor(offsets - start), persistent=False)
            in_dim = int(nvec.sum())
        elif isinstance(space, gym.spaces.Box | gym.spaces.MultiBinary):
            self.kind = "flat"
            in_dim = int(np.prod(space.shape))
        else:
            raise SpaceError(
                f"MLPEncoder cannot read {space}; it accepts Box, Discrete, MultiDiscrete and MultiBinary "
                "(use make_encoder to pick an encoder for any supported space)"
            )
        self.in_dim = in_dim
        self.net, self.features_dim = mlp_layers(in_dim, hidden_sizes, activation)

    def encode_input(self, obs: torch.Tensor) -> torch.Tensor:
        """The MLP's input (B, in_dim): flattened floats or the concatenated one-hot vectors."""
        batch = obs.shape[0]
        if self.kind == "discrete":
            return F.one_hot(obs.reshape(batch).long() - self.start, self.n).float()  # (B, n)
        if self.kind == "multidiscrete":
            idx = obs.reshape(batch, -1).long() + self.shift  # (B, K) positions in the one-hot
            out = torch.zeros(batch, self.in_dim, device=obs.device)  # (B, sum(nvec))
            return out.scatter_(1, idx, 1.0)
        return obs.reshape(batch, -1).float()  # (B, prod(shape))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(self.encode_input(obs))  # (B, features_dim)


class NatureCNN(Encoder):
    """The DQN-Nature CNN (Mnih et al. 2015): three convs then a linear layer, all ReLU.

    Needs images of at least 36x36 (the smallest input its three convs reduce to 1x1)."""

    KERNELS: tuple[tuple[int, int, int], ...] = ((32, 8, 4), (64, 4, 2), (64, 3, 1))  # (out channels, kernel, stride)

    FEATURES = 512

    def __init__(self, space: gym.spaces.Box, features_dim: int | None = None):
        super().__init__()
        features_dim = features_dim or self.FEATURES
        min_size = 1
        for _, kernel, stride in reversed(self.KERNELS):  # invert _conv_out for an output of 1
            min_size = (min_size - 1) * stride + kernel
        self.input = _ImageInput(space, min_size, "NatureCNN")
        layers: list[nn.Module] = []
        in_ch = self.input.layout.channels
        for out_ch, kernel, stride in self.KERNELS:
            layers += [layer_init(nn.Conv2d(in_ch, out_ch, kernel, stride)), nn.ReLU()]
            in_ch = out_ch
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        lay = self.input.layout
        with torch.no_grad():  # dry run: the flatten size follows from the image size
            n_flat = self.cnn(torch.zeros(1, lay.channels, lay.height, lay.width)).shape[1]
        self.linear = nn.Sequential(layer_init(nn.Linear(n_flat, features_dim)), nn.ReLU())
        self.features_dim = int(features_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.input(obs)  # (B, C, H, W) floats
        return self.linear(self.cnn(x))  # (B, features_dim)

    def forward_channels_last(self, obs: torch.Tensor) -> torch.Tensor:
        """`forward`'s function (equal to float tolerance), cheaper to train on a CPU.

        oneDNN's convolution backward is much faster on channels-last (NHWC) tensors than on NCHW ones here
        (the first conv's weight gradient about 2.5x on an AVX2 CPU), and the uint8 scaling is folded into
        the first conv's weights, `conv(x / 255, w) = conv(x, w / 255)`, which saves a pass over the
        batch. Parameters stay NCHW (optimisers may view them in one flat buffer); only the per-call
        weight copies are channels-last. Channel-first images only; others take `forward`.
        """
        if self.input.layout.order != "chw":
            return self(obs)
        # (B, C, H, W) raw values, NHWC in memory: transposed as uint8, then converted (strides kept), about
        # 1.5x cheaper than converting and transposing in one copy
        x = obs.contiguous(memory_format=torch.channels_last).to(torch.float32)
        first = True
        for layer in self.cnn:
            if isinstance(layer, nn.Conv2d):
                weight = layer.weight * self.input.scale if first and self.input.scale != 1.0 else layer.weight
                x = F.conv2d(x, weight.contiguous(memory_format=torch.channels_last), layer.bias, layer.stride,
                             layer.padding)
                first = False
            elif isinstance(layer, nn.ReLU):
                x = F.relu(x)
        x = x.contiguous().flatten(1)  # (B, C*H*W) in NCHW order, as the linear layer was built for
        return self.linear(x)  # (B, features_dim)


class NipsCNN(NatureCNN):
    """The smaller DQN CNN of Mnih et al. 2013 (NIPS workshop): two convs (16 8x8/4, 32 4x4/2) then 256 units.

    About a third of the Nature CNN's multiply-adds on 84x84 frames, for CPU training where the network's
    cost per sample bounds the frames per CPU second (docs/atari.md). Needs images of at least 20x20."""

    KERNELS = ((16, 8, 4), (32, 4, 2))
    FEATURES = 256


class _ResidualBlock(nn.Module):
    """relu -> conv3x3 -> relu -> conv3x3, plus the input (pre-activation residual block)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))  # (B, C, H, W)


class ImpalaCNN(Encoder):
    """The IMPALA residual CNN (Espeholt et al. 2018): per stack a conv, a 3x3/2 max-pool and two residual
    blocks; then ReLU, linear to `features_dim`, ReLU.

    Convs keep PyTorch's default init and the linear layer gets the orthogonal init, as in CleanRL's
    ppo_procgen. Needs images of at least 8x8."""

    MIN_SIZE = 8

    def __init__(self, space: gym.spaces.Box, features_dim: int = 256, channels: Sequence[int] = (16, 32, 32)):
        super().__init__()
        self.input = _ImageInput(space, self.MIN_SIZE, "ImpalaCNN")
        lay = self.input.layout
        stacks: list[nn.Module] = []
        in_ch = lay.channels
        for out_ch in channels:
            stacks += [
                nn.Conv2d(in_ch, int(out_ch), 3, padding=1),
                nn.MaxPool2d(3, stride=2, padding=1),  # halves H and W (rounding up)
                _ResidualBlock(int(out_ch)),
                _ResidualBlock(int(out_ch)),
            ]
            in_ch = int(out_ch)
        self.cnn = nn.Sequential(*stacks, nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, lay.channels, lay.height, lay.width)).shape[1]
        self.linear = nn.Sequential(layer_init(nn.Linear(n_flat, features_dim)), nn.ReLU())
        self.features_dim = int(features_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self.input(obs)  # (B, C, H, W) floats
        return self.linear(self.cnn(x))  # (B, features_dim)


class SequenceEncoder(Encoder):
    """For (time, features) inputs such as log-mel spectrograms: each sequence is standardised (zero mean,
    unit variance over all its values, so loudness and the log floor do not matter), then a Conv1d front
    over time (kernel 3, then `log2(time_stride)` convs of kernel 5 and stride 2, all ReLU) picks up local
    patterns and shortens the sequence, and a one-layer LSTM runs over the remaining steps; the features
    are its final hidden state (B, H). The LSTM's sequential steps dominate the cost, hence the stride
    (4 by default: a 98-frame spectrogram becomes 25 steps).

    The LSTM sees the whole window every call (no state carried between env steps): memory across steps
    belongs to LSTMCore in recurrent.py.

    Sequences that stay the same for a whole episode (a spoken command) repeat across a batch and across
    calls, and the LSTM dominates the cost of a network, so the forward pass encodes each distinct row of a
    batch once and copies the features to its repeats (exact, gradients included); without gradients
    (rollouts, evaluation) it also reuses the previous call's features for rows that did not change, as
    long as the weights did not change either. Standardising inside the encoder (not with running
    statistics in the agent's observation normaliser, which skips sequences) keeps repeats identical."""

    MIN_STEPS = 8
    KEY_COLUMNS = 256  # values per row that group repeated rows before the exact check

    def __init__(self, space: gym.spaces.Box, conv_channels: int = 32, hidden_size: int = 64, time_stride: int = 4):
        super().__init__()
        if time_stride < 1 or time_stride & (time_stride - 1):
            raise ValueError(f"time_stride must be a power of 2 (1, 2, 4, 8, ...), got {time_stride}")
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 2:
            raise SpaceError(
                f"SequenceEncoder needs a 2-D Box of shape (T, F) (time, features), got {space}; "
                "reshape the observation or use MLPEncoder for flat vectors"
            )
        steps, feats = (int(d) for d in space.shape)
        if steps < self.MIN_STEPS:
            raise SpaceError(
                f"SequenceEncoder needs at least {self.MIN_STEPS} time steps, got shape {tuple(space.shape)} "
                "(T, F); use a longer window, or FlattenObservation so an MLP reads it"
            )
        layers: list[nn.Module] = [layer_init(nn.Conv1d(feats, conv_channels, 3, padding=1)), nn.ReLU()]
        for _ in range(time_stride.bit_length() - 1):  # each halves the length (rounding up)
            layers += [layer_init(nn.Conv1d(conv_channels, conv_channels, 5, stride=2, padding=2)), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.lstm = nn.LSTM(conv_channels, hidden_size, batch_first=True)
        for name, param in self.lstm.named_parameters():
            if "bias" in name:
                nn.init.constant_(param, 0.0)
            else:
                nn.init.orthogonal_(param, 1.0)
        self.features_dim = int(hidden_size)
        # Without gradients: (rows (B, T*F), features (B, H), weights) of the previous call.
        self._last: tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]] | None = None
        self._columns: torch.Tensor | None = None  # (K,) the columns that group repeated rows

    @staticmethod
    def standardize(x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) -> each sequence minus its mean, divided by its std (an all-constant one becomes 0)."""
        mean = x.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1)
        std = x.std(dim=(1, 2), keepdim=True, unbiased=False)  # (B, 1, 1)
        return (x - mean) / (std + 1e-5)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """The network on every row, no de-duplication: (B, T, F) -> (B, H)."""
        x = self.standardize(obs.float()).transpose(1, 2)  # (B, T, F) -> (B, F, T): Conv1d convolves the last axis
        x = self.conv(x).transpose(1, 2)  # (B, T', C) with T' about T / time_stride
        _, (h_n, _) = self.lstm(x)  # h_n: (1, B, H)
        return h_n[0]  # (B, H)

    def _encode_distinct(self, obs: torch.Tensor) -> torch.Tensor:
        """encode(obs), running the network once per distinct row: (B, T, F) -> (B, H)."""
        batch = obs.shape[0]
        if batch < 2:
            return self.encode(obs)
        rows = obs.reshape(batch, -1)  # (B, T*F)
        # Group rows by a fixed random subset of their columns (an exact unique over a (B, 256) slice, far
        # cheaper than over whole rows), then check that every row equals its group's first row; if two
        # different rows agree on the subset, or on NaNs, encode every row.
        if self._columns is None or self._columns.device != rows.device:
            gen = torch.Generator(device="cpu").manual_seed(0)
            columns = torch.randperm(rows.shape[1], generator=gen)[: self.KEY_COLUMNS]
            self._columns = columns.sort().values.to(rows.device)  # (K,)
        _, inverse = torch.unique(rows.index_select(1, self._columns), dim=0, return_inverse=True)  # (B,) group
        first = torch.full((int(inverse.max()) + 1,), batch, dtype=torch.long, device=rows.device)
        first = first.scatter_reduce(0, inverse, torch.arange(batch, device=rows.device), "amin")  # (U,)
        if len(first) == batch or not torch.equal(rows.index_select(0, first[inverse]), rows):
            return self.encode(obs)
        return self.encode(obs[first])[inverse]  # (U, H) -> (B, H)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self._last = None
            return self._encode_distinct(obs)  # (B, H)
        rows = obs.reshape(obs.shape[0], -1)  # (B, T*F)
        weights = [p.detach() for p in self.parameters()]
        last = self._last
        if (last is not None and last[0].shape == rows.shape and last[0].dtype == rows.dtype
                and all(torch.equal(w, old) for w, old in zip(weights, last[2], strict=True))):
            changed = (rows != last[0]).any(dim=1)  # (B,) rows that differ from the previous call's
            features = last[1].clone()  # (B, H)
            if bool(changed.any()):
                features[changed] = self._encode_distinct(obs[changed])
            weights_copy = last[2]
        else:
            features = self._encode_distinct(obs)
            weights_copy = [w.clone() for w in weights]
        self._last = (rows.clone(), features, weights_copy)
        return features.clone()  # (B, H)


class SpatialKeypoints(Encoder):
    """Image -> K keypoints, each an expected (x, y) in [-1, 1]: a small CNN ends in K heatmaps, and the spatial
    softmax of each gives its expected image coordinates (Levine et al. 2016, "End-to-end training of deep
    visuomotor policies"). It says where things are rather than what the image looks like, which is what
    reaching toward something seen needs. Coordinates are in the image frame: x from -1 (left edge) to +1
    (right edge), y from -1 (top) to +1 (bottom). Features: (B, 2K), the keypoints flattened (`keypoints`
    gives them as (B, K, 2))."""

    def __init__(self, space: gym.spaces.Box, keypoints: int, channels: int = 8, pool: int = 2):
        super().__init__()
        self.input = _ImageInput(space, 2 * pool, "SpatialKeypoints")
        lay = self.input.layout
        # average-pool first (keypoints are expectations, so sub-pixel precision survives it), then a 3x3 conv
        # and a 1x1 conv to one map per keypoint: colour and local shape, about 250 multiply-adds a pixel
        self.net = nn.Sequential(
            nn.AvgPool2d(pool), layer_init(nn.Conv2d(lay.channels, channels, 3, padding=1)), nn.ReLU(),
            layer_init(nn.Conv2d(channels, keypoints, 1)),
        )
        height, width = lay.height // pool, lay.width // pool
        self.grid_x: torch.Tensor
        self.grid_y: torch.Tensor
        # cell centres in the image frame: -1 is the left (top) edge, +1 the right (bottom) edge
        self.register_buffer("grid_x", torch.linspace(-1.0 + 1.0 / width, 1.0 - 1.0 / width, width))  # (W',)
        self.register_buffer("grid_y", torch.linspace(-1.0 + 1.0 / height, 1.0 - 1.0 / height, height))  # (H',)
        self.features_dim = 2 * keypoints

    def keypoints(self, obs: torch.Tensor) -> torch.Tensor:
        maps = self.net(self.input(obs))  # (B, K, H', W')
        batch, k, height, width = maps.shape
        prob = torch.softmax(maps.reshape(batch, k, height * width), -1).reshape(batch, k, height, width)
        x = (prob.sum(2) * self.grid_x).sum(-1)  # (B, K): expectation over columns
        y = (prob.sum(3) * self.grid_y).sum(-1)  # (B, K): expectation over rows
        return torch.stack([x, y], -1)  # (B, K, 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.keypoints(obs).flatten(1)  # (B, 2K)


class DictEncoder(Encoder):
    """One encoder per key of a Dict space (chosen by make_encoder with `**kwargs`), outputs concatenated in
    sorted key order so the feature layout never depends on dict insertion order."""

    def __init__(self, space: gym.spaces.Dict, **kwargs: Any):
        super().__init__()
        if not isinstance(space, gym.spaces.Dict) or len(space.spaces) == 0:
            raise SpaceError(f"DictEncoder needs a non-empty gymnasium Dict space, got {space}")
        self.keys = tuple(sorted(space.spaces))
        self.encoders = nn.ModuleList(make_encoder(space.spaces[k], **kwargs) for k in self.keys)
        widths: list[int] = [int(getattr(e, "features_dim")) for e in self.encoders]  # noqa: B009
        self.features_dim = sum(widths)

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        parts = [enc(obs[k]) for k, enc in zip(self.keys, self.encoders, strict=True)]
        return torch.cat(parts, dim=1)  # (B, sum of features_dim)


# ------------------------------------------------------------------------------------------------ factory


def make_encoder(
    space: gym.Space,
    *,
    mlp_hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    cnn: str = "nature",
    cnn_features: int | None = None,
    sequence_hidden: int = 64,
) -> Encoder:
    """The encoder for an observation space (see the module table), so agents never branch on spaces.

    `cnn_features=None` keeps each CNN's published width (512 for Nature, 256 for IMPALA)."""
    if cnn not in CNN_KINDS:
        raise ValueError(f"unknown cnn {cnn!r}; accepted values: {', '.join(CNN_KINDS)}")
    _activation(activation)  # reject a bad name even when the space needs no MLP
    if isinstance(space, gym.spaces.Dict):
        return DictEncoder(
            space,
            mlp_hidden=mlp_hidden,
            activation=activation,
            cnn=cnn,
            cnn_features=cnn_features,
            sequence_hidden=sequence_hidden,
        )
    if isinstance(space, gym.spaces.Discrete | gym.spaces.MultiDiscrete | gym.spaces.MultiBinary):
        return MLPEncoder(space, mlp_hidden, activation)
    if isinstance(space, gym.spaces.Box):
        if is_image_space(space):
            if cnn == "impala":
                return ImpalaCNN(space, cnn_features or 256)
            if cnn == "nips":
                return NipsCNN(space, cnn_features)
            return NatureCNN(space, cnn_features)
        if is_sequence_space(space):
            return SequenceEncoder(space, hidden_size=sequence_hidden)
        if space.dtype == np.uint8 and len(space.shape) > 3:
            raise SpaceError(
                f"uint8 observation of shape {space.shape} looks like stacked images; {_LAYOUT_HELP}. "
                "Merge the stack into the channel dim (e.g. grayscale frames with FrameStackObservation)."
            )
        return MLPEncoder(space, mlp_hidden, activation)
    raise SpaceError(
        f"no encoder for observation space {space}; supported: Box (vectors, images, (T, F) sequences), "
        "Discrete, MultiDiscrete, MultiBinary and Dict of these. Wrap the env to convert it "
        "(e.g. FlattenObservation for a Tuple of Boxes)."
    )
