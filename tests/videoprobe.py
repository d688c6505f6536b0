"""What a video file holds, as an independent decoder reads it: the ffmpeg that imageio-ffmpeg ships.

The tests need no system ffmpeg/ffprobe: imageio-ffmpeg (a dependency) carries its own binary.
`ffmpeg -i FILE` prints the input's streams; decoding the first video stream to the null muxer with
frames passed through unchanged counts every frame (what ffprobe's -count_frames reports).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg

_VIDEO_LINE = re.compile(r"Stream #0:\d+.*?: Video: (?P<codec>\w+).*?, (?P<pix_fmt>[a-z0-9_]+)(?:\([^)]*\))?, "
                         r"(?P<width>\d+)x(?P<height>\d+)")
_FPS = re.compile(r"(\d+(?:\.\d+)?) fps")
_FRAMES = re.compile(r"frame=\s*(\d+)")


def probe(path: Path) -> dict[str, Any]:
    """codec_name, pix_fmt, width, height, fps and nb_read_frames (decoded) of the first video stream."""
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
         "-fps_mode", "passthrough", "-f", "null", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"ffmpeg could not decode {path}:\n{result.stderr[-2000:]}")
    inputs = result.stderr.split("Output #0")[0]
    stream = _VIDEO_LINE.search(inputs)
    assert stream is not None, f"no video stream in {path}:\n{inputs}"
    fps = _FPS.search(inputs[stream.start():].splitlines()[0])
    frames = _FRAMES.findall(result.stderr)
    return {
        "codec_name": stream["codec"], "pix_fmt": stream["pix_fmt"], "width": int(stream["width"]),
        "height": int(stream["height"]), "fps": float(fps.group(1)) if fps else None,
        "nb_read_frames": int(frames[-1]) if frames else 0,
    }  # fmt: skip
