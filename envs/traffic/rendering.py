"""Traffic's `rgb_array` frames (and pixel observations): NumPy + OpenCV, top-down."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rlsuite.envs.traffic.network import _STEP, PHASE_GREEN, Network

if TYPE_CHECKING:
    from rlsuite.envs.traffic.dynamics import TrafficCore, TrafficState


_CELL = 96  # pixels per intersection
_SIGNAL_COLOURS = {"green": (40, 200, 40), "yellow": (240, 200, 0), "red": (220, 40, 40)}


def frame_shape(net: Network) -> tuple[int, int, int]:
    return (net.rows * _CELL + 16, net.cols * _CELL, 3)


def render_frames(core: TrafficCore, st: TrafficState, rows: np.ndarray) -> np.ndarray:
    """(len(rows), H, W, 3) uint8 frames: roads, queue bars per approach, signal colours, the clock."""
    import cv2  # imported here: only rendering needs OpenCV

    net = core.net
    H, W, _ = frame_shape(net)
    frames = np.full((len(rows), H, W, 3), 235, dtype=np.uint8)
    half, lane_w = _CELL // 2, 6
    for out_i, row in enumerate(rows):
        img = frames[out_i]
        for k in range(net.num_nodes):
            r, c = divmod(k, net.cols)
            cy, cx = r * _CELL + half, c * _CELL + half
            img[cy - lane_w * 2: cy + lane_w * 2, c * _CELL:(c + 1) * _CELL] = 120  # east-west road
            img[r * _CELL:(r + 1) * _CELL, cx - lane_w * 2: cx + lane_w * 2] = 120  # north-south road
            clearing = st.clear_left[row, k] > 0
            yellow = clearing and st.clear_left[row, k] > net.all_red_s
            for d in range(4):
                link = k * 4 + d
                q = st.queue[row, link]  # (3,)
                if clearing:
                    colour = _SIGNAL_COLOURS["yellow"] if yellow and PHASE_GREEN[st.prev_phase[row, k], d].any() else _SIGNAL_COLOURS["red"]
                else:
                    colour = _SIGNAL_COLOURS["green"] if PHASE_GREEN[st.phase[row, k], d].any() else _SIGNAL_COLOURS["red"]
                dy, dx = _STEP[d]
                for m in range(3):  # a bar per movement, length = queue / storage of the movement
                    frac = min(1.0, q[m] / net.mov_capacity[link, m])
                    length = int(round(frac * (half - 2 * lane_w)))
                    off = (m - 1) * 4
                    if dx == 0:  # N or S approach: vertical bar
                        y0 = cy + dy * (2 * lane_w + 1)
                        y1 = y0 + dy * length
                        x = cx + off - dy * 2
                        img[min(y0, y1):max(y0, y1) + 1, x - 1:x + 2] = (30, 30, 160)
                    else:
                        x0 = cx + dx * (2 * lane_w + 1)
                        x1 = x0 + dx * length
                        y = cy + off + dx * 2
                        img[y - 1:y + 2, min(x0, x1):max(x0, x1) + 1] = (30, 30, 160)
                sy, sx = cy + dy * (2 * lane_w - 2), cx + dx * (2 * lane_w - 2)
                img[sy - 2:sy + 3, sx - 2:sx + 3] = colour
        t = int(st.t[row])
        cv2.putText(img, f"t={t // 60:02d}:{t % 60:02d}", (2, H - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return frames
