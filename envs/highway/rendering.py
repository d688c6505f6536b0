"""Highway's `rgb_array` frames, drawn with OpenCV (no display, no pygame)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rlsuite.envs.highway.params import LENGTH, WIDTH

if TYPE_CHECKING:
    from rlsuite.envs.highway.dynamics import HighwayCore
    from rlsuite.envs.highway.state import HighwayState

RENDER_SIZE = (720, 160)  # [px] width, height
RENDER_SCALE = 6.0  # [px/m]
COLOURS = {"road": (60, 60, 60), "grass": (70, 110, 60), "line": (230, 230, 230), "traffic": (60, 120, 220),
           "ego": (60, 200, 90), "agent": (230, 200, 40), "crashed": (220, 50, 50), "text": (255, 255, 255)}


def render_frame(core: HighwayCore, st: HighwayState, row: int, reward: float) -> np.ndarray:
    """An RGB frame (H, W, 3) of env `row` centred on its first controlled vehicle, drawn with OpenCV."""
    import cv2

    p = core.p
    W, H = RENDER_SIZE
    img = np.empty((H, W, 3), dtype=np.uint8)
    img[:] = COLOURS["grass"]
    x0 = st.x[row, 0] - 0.3 * W / RENDER_SCALE  # [m] world x at the left edge
    y0 = (p.lanes_count - 1) * p.lane_width / 2 - H / 2 / RENDER_SCALE  # [m] world y at the top edge

    def px(x: float, y: float) -> tuple[int, int]:
        return int(round((x - x0) * RENDER_SCALE)), int(round((y - y0) * RENDER_SCALE))

    top, bottom = px(0, -p.lane_width / 2)[1], px(0, (p.lanes_count - 0.5) * p.lane_width)[1]
    cv2.rectangle(img, (0, top), (W - 1, bottom), COLOURS["road"], -1)
    if p.merge_ramp:
        ramp_bottom = px(0, (p.all_lanes - 0.5) * p.lane_width)[1]
        cv2.rectangle(img, (0, bottom), (px(p.ramp_end, 0)[0], ramp_bottom), COLOURS["road"], -1)
    dash = 3.0  # [m]
    for i in range(p.lanes_count + 1):
        y = (i - 0.5) * p.lane_width
        row_px = px(0, y)[1]
        if i in (0, p.lanes_count):
            cv2.line(img, (0, row_px), (W - 1, row_px), COLOURS["line"], 2)
            continue
        start = np.floor(x0 / (2 * dash)) * 2 * dash
        for xs in np.arange(start, x0 + W / RENDER_SCALE, 2 * dash):
            cv2.line(img, px(xs, y), px(xs + dash, y), COLOURS["line"], 1)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * np.array([LENGTH / 2, WIDTH / 2])
    for v in np.argsort(-np.arange(st.x.shape[1])):  # controlled vehicles drawn last, on top
        c, s = np.cos(st.heading[row, v]), np.sin(st.heading[row, v])
        world = corners @ np.array([[c, s], [-s, c]]) + np.array([st.x[row, v], st.y[row, v]])
        poly = np.array([px(*pt) for pt in world], dtype=np.int32)
        role = "crashed" if st.crashed[row, v] else "ego" if v == 0 else "agent" if core.controlled[v] else "traffic"
        cv2.fillPoly(img, [poly], COLOURS[role], lineType=cv2.LINE_AA)
        cv2.polylines(img, [poly], True, (20, 20, 20), 1, lineType=cv2.LINE_AA)
    text = f"t {st.steps[row] / p.policy_frequency:4.0f} s   speed {st.speed[row, 0]:5.1f} m/s   reward {reward:5.2f}"
    cv2.putText(img, text, (W - 390, H - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, COLOURS["text"], 1, cv2.LINE_AA)  # bottom right
    return img

