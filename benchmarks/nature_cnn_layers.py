"""Nature CNN training step on the CPU: ways to compute the same function, forward + backward, in one process.

Every variant computes `NatureCNN.forward` (to float32 tolerance; the script checks outputs and every
parameter gradient against the plain module first) on a (B, 4, 84, 84) uint8 batch. The script times
forward + backward of the summed features, alternating the variants within each repeat (A B C ... A B C)
and timing the CPU seconds of this thread (torch runs on it with one thread), so load from other jobs
hits all alike; it prints each variant's median and its ratio against the plain module.

- `plain`: the module as SB3 runs it (NCHW).
- `channels_last`: `NatureCNN.forward_channels_last`, what our PPO trains with on the CPU (agents/fast.accelerate).
- `s2d`: space-to-depth: conv 8x8/4 on (4, 84, 84) == conv 2x2/1 on space_to_depth_4(x) (64, 21, 21) with
  the weight (32, 4, 8, 8) rearranged to (32, 64, 2, 2), and conv 4x4/2 on (32, 20, 20) == conv 2x2/1 on
  space_to_depth_2 (128, 10, 10) with (64, 32, 4, 4) -> (64, 128, 2, 2); channels-last. The rearranged
  weights are views of the module's own parameters, so autograd maps the gradients back.
- `s2d_first`: only the first conv rewritten, its uint8 input rearranged with each row's 4-byte run moved
  as one int32 (a 4x cheaper transpose than the float channels-last conversion of `channels_last`).

`--layers` times each layer alone instead (forward and backward, NCHW, channels-last, space-to-depth).

Run: `OMP_NUM_THREADS=1 python benchmarks/nature_cnn_layers.py [--batch 256] [--repeats 9] [--layers]`
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from rlsuite.policies.encoders import NatureCNN

CL = torch.channels_last


def space_to_depth_nhwc(x: torch.Tensor, block: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, block*block*C, H/block, W/block) channels-last, channels in (dy, dx, c) order."""
    batch, ch, height, width = x.shape
    blocks = x.permute(0, 2, 3, 1).reshape(batch, height // block, block, width // block, block, ch)  # (B, I, dy, J, dx, c)
    out = blocks.permute(0, 1, 3, 2, 4, 5).reshape(batch, height // block, width // block, block * block * ch)
    return out.permute(0, 3, 1, 2)  # (B, b*b*C, H/b, W/b), channels-last strides


def weight_s2d_nhwc(weight: torch.Tensor, block: int) -> torch.Tensor:
    """(O, C, k, k) kernel of stride `block` -> (O, block*block*C, k/block, k/block), channels (dy, dx, c)."""
    out_ch, ch, k, _ = weight.shape
    taps = k // block
    w = weight.reshape(out_ch, ch, taps, block, taps, block)  # (O, c, a, dy, b, dx); kernel row = a*block + dy
    return w.permute(0, 3, 5, 1, 2, 4).reshape(out_ch, block * block * ch, taps, taps)


def weight_s2d_nchw(weight: torch.Tensor, block: int) -> torch.Tensor:
    """As `weight_s2d_nhwc`, channels in (c, dy, dx) order."""
    out_ch, ch, k, _ = weight.shape
    taps = k // block
    w = weight.reshape(out_ch, ch, taps, block, taps, block)  # (O, c, a, dy, b, dx)
    return w.permute(0, 1, 3, 5, 2, 4).reshape(out_ch, ch * block * block, taps, taps)


def packed_space_to_depth_4(obs: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float (B, C*16, H/4, W/4) channels-last, channels (c, dy, dx): each row's run of
    4 bytes (dx) moves as one int32, so the transpose moves 4x fewer elements."""
    batch, ch, height, width = obs.shape
    words = obs.contiguous().view(torch.int32).view(batch, ch, height // 4, 4, width // 4)  # (B, c, I, dy, J)
    packed = words.permute(0, 2, 4, 1, 3).contiguous().view(torch.uint8)  # (B, I, J, c, dy, dx) bytes
    return packed.view(batch, height // 4, width // 4, ch * 16).float().permute(0, 3, 1, 2)


def variants(enc: NatureCNN) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    conv1, conv2, conv3 = (m for m in enc.cnn if isinstance(m, torch.nn.Conv2d))
    scale = enc.input.scale

    def s2d(obs: torch.Tensor) -> torch.Tensor:
        x = space_to_depth_nhwc(obs.to(torch.float32, memory_format=CL), 4)  # (B, 64, 21, 21)
        x = F.relu(F.conv2d(x, weight_s2d_nhwc(conv1.weight * scale, 4).contiguous(memory_format=CL), conv1.bias))
        x = space_to_depth_nhwc(x, 2)  # (B, 32, 20, 20) -> (B, 128, 10, 10)
        x = F.relu(F.conv2d(x, weight_s2d_nhwc(conv2.weight, 2).contiguous(memory_format=CL), conv2.bias))
        x = F.relu(F.conv2d(x, conv3.weight.contiguous(memory_format=CL), conv3.bias))
        return enc.linear(x.contiguous().flatten(1))  # (B, 512)

    def s2d_first(obs: torch.Tensor) -> torch.Tensor:
        x = packed_space_to_depth_4(obs)  # (B, 64, 21, 21)
        x = F.relu(F.conv2d(x, weight_s2d_nchw(conv1.weight * scale, 4).contiguous(memory_format=CL), conv1.bias))
        x = F.relu(F.conv2d(x, conv2.weight.contiguous(memory_format=CL), conv2.bias, 2))
        x = F.relu(F.conv2d(x, conv3.weight.contiguous(memory_format=CL), conv3.bias))
        return enc.linear(x.contiguous().flatten(1))  # (B, 512)

    return {"plain": enc, "channels_last": enc.forward_channels_last, "s2d": s2d, "s2d_first": s2d_first}


def check(enc: NatureCNN, fns: dict[str, Callable[[torch.Tensor], torch.Tensor]], obs: torch.Tensor) -> None:
    """Each variant's output and parameter gradients against the plain module's (relative to their scale)."""
    enc.zero_grad()
    ref_out = enc(obs)
    ref_out.sum().backward()
    ref = {name: p.grad.clone() for name, p in enc.named_parameters() if p.grad is not None}
    for name, fn in fns.items():
        enc.zero_grad()
        out = fn(obs)
        out.sum().backward()
        grad_err = max(float((p.grad - ref[k]).abs().max() / ref[k].abs().max().clamp(min=1e-12))
                       for k, p in enc.named_parameters() if p.grad is not None)
        print(f"{name:14s} max |output diff| {float((out - ref_out).detach().abs().max()):.1e}, "
              f"max relative gradient diff {grad_err:.1e}")


def cpu_time(fn: Callable[[], object]) -> float:
    start = time.thread_time()  # this thread's CPU seconds: torch runs here with one thread
    fn()
    return time.thread_time() - start


def whole(args: argparse.Namespace) -> None:
    enc = NatureCNN(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8))
    obs = torch.randint(0, 256, (args.batch, 4, 84, 84), dtype=torch.uint8)
    fns = variants(enc)
    check(enc, fns, obs[:32])

    def step(fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        enc.zero_grad(set_to_none=True)
        fn(obs).sum().backward()

    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up
        step(fn)
    for _ in range(args.repeats):
        for name, fn in fns.items():
            times[name].append(cpu_time(lambda fn=fn: step(fn)))  # type: ignore[misc]
    base = statistics.median(times["plain"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:14s} {1000 * med:6.1f} CPU ms per {args.batch}-batch forward + backward, "
              f"{base / med:.2f}x vs plain")


def _conv_times(x: torch.Tensor, w: torch.Tensor, stride: int) -> tuple[float, float]:
    """CPU seconds of one conv's forward and of its backward (of a ones gradient)."""
    start = time.thread_time()
    out = F.conv2d(x, w, None, stride)
    mid = time.thread_time()
    out.backward(torch.ones_like(out))
    return mid - start, time.thread_time() - mid


def layers(args: argparse.Namespace) -> None:
    """Each conv alone: forward, then backward of a ones gradient (the first conv needs no input gradient)."""
    batch = args.batch
    w1, w2, w3 = torch.randn(32, 4, 8, 8), torch.randn(64, 32, 4, 4), torch.randn(64, 64, 3, 3)
    x1, x2, x3 = torch.rand(batch, 4, 84, 84), torch.rand(batch, 32, 20, 20), torch.rand(batch, 64, 9, 9)
    cases = {  # name: (input, weight, stride, input needs a gradient)
        "conv1 8x8/4 NCHW": (x1, w1, 4, False),
        "conv1 8x8/4 channels-last": (x1.contiguous(memory_format=CL), w1.contiguous(memory_format=CL), 4, False),
        "conv1 s2d 2x2/1 channels-last": (space_to_depth_nhwc(x1, 4).contiguous(memory_format=CL),
                                          weight_s2d_nhwc(w1, 4).contiguous(memory_format=CL), 1, False),
        "conv2 4x4/2 NCHW": (x2, w2, 2, True),
        "conv2 4x4/2 channels-last": (x2.contiguous(memory_format=CL), w2.contiguous(memory_format=CL), 2, True),
        "conv2 s2d 2x2/1 channels-last": (space_to_depth_nhwc(x2, 2).contiguous(memory_format=CL),
                                          weight_s2d_nhwc(w2, 2).contiguous(memory_format=CL), 1, True),
        "conv3 3x3/1 NCHW": (x3, w3, 1, True),
        "conv3 3x3/1 channels-last": (x3.contiguous(memory_format=CL), w3.contiguous(memory_format=CL), 1, True),
    }
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for rep in range(args.repeats + 1):
        for name, (x, w, stride, input_grad) in cases.items():
            fwd, bwd = _conv_times(x.detach().requires_grad_(input_grad), w.detach().requires_grad_(True), stride)
            if rep:  # the first round warms up
                times[name][0].append(fwd)
                times[name][1].append(bwd)
    for name, (fwd_t, bwd_t) in times.items():
        print(f"{name:32s} forward {1000 * statistics.median(fwd_t):6.1f} CPU ms, "
              f"backward {1000 * statistics.median(bwd_t):6.1f} CPU ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--layers", action="store_true", help="time each conv alone")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    (layers if args.layers else whole)(args)


if __name__ == "__main__":
    main()
