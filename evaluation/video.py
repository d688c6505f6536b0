"""Episode videos: H.264 MP4s that browsers play, small GIF previews, and text overlays.

`record_episodes` re-runs evaluation episodes on one `make_env(env_id, render_mode="rgb_array")` env,
seeded like the harness seeds its sub-envs, so a recorded episode has the same return as the one
`evaluate_policy` measured for that seed (for deterministic policies; a stochastic one matches an
evaluation run with `n_envs=1`, since both seed torch with the episode's seed). Each episode gives its
reset frame plus one frame per step, so the video holds `length + 1` frames per episode; episodes are
concatenated into one MP4.

MP4s are encoded by the ffmpeg binary that imageio-ffmpeg ships (OpenCV's wheels cannot encode H.264):
libx264, yuv420p (what browsers decode), `+faststart` (playable before fully downloaded). Frames are
streamed to ffmpeg as they are rendered, so a long Atari episode never sits in memory.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
import torch

from rlsuite.agents.fileio import atomic_write_json
from rlsuite.agents.interface import Policy
from rlsuite.envs.factory import make_env
from rlsuite.evaluation.harness import (
    EpisodeActions,
    check_spaces,
    episode_metrics,
    eval_epsilon,
    evaluation_seeds,
    torch_threads,
)
from rlsuite.evaluation.records import EpisodeRecord

MIN_ANNOTATED_HEIGHT = 256
"""Frames lower than this are upscaled (nearest neighbour) before text goes on them, so it stays legible."""

GIF_FPS = 15.0
"""Target frame rate of previews: smooth enough, a fraction of the size of the full-rate video."""

GIF_MAX_WIDTH = 320
"""Width of previews: enough to see what happens, small enough to embed many in one report."""


class VideoError(ValueError):
    """A user-facing problem with recording or encoding a video; the message says what to do."""


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (it encodes H.264)."""
    import imageio_ffmpeg

    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:
        raise VideoError(
            f"no ffmpeg binary found ({err}). Reinstall imageio-ffmpeg (pip install --force-reinstall "
            "imageio-ffmpeg) or point the IMAGEIO_FFMPEG_EXE environment variable at an ffmpeg binary."
        ) from None


def _check_frame(frame: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    """`frame` as a contiguous (H, W, 3) uint8 array, or a VideoError saying what was wrong."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise VideoError(
            f"video frames must be (H, W, 3) uint8 RGB arrays, got shape {frame.shape} dtype {frame.dtype}: "
            "convert with frame.astype(np.uint8) (values 0..255) or stack grey frames to 3 channels."
        )
    if shape is not None and frame.shape != shape:
        raise VideoError(f"all frames of a video must have one size: got {frame.shape} after {shape}.")
    return np.ascontiguousarray(frame)


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by one black row/column: yuv420p stores colour at half resolution."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))  # (H', W', 3), H' and W' even


def _encode(frames: Iterable[np.ndarray], path: Path, fps: float, output_args: list[str], even: bool) -> int:
    """Stream rgb24 frames into ffmpeg, writing a temp file beside `path`, then rename it into place."""
    if not fps > 0:
        raise VideoError(f"fps must be positive, got {fps}.")
    path = Path(path)
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise VideoError(f"no frames to write to {path}: record at least one step.")
    first = _check_frame(first, None)
    shape = first.shape
    height, width = (_pad_even(first) if even else first).shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    # ffmpeg creates the temp file itself, so it gets the usual permissions (mkstemp's are owner-only).
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    rate = str(Fraction(fps).limit_denominator(1001))  # exact: 50 / 3 fps is "50/3", not 16.6667
    command = [
        ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", rate, "-i", "-",
        "-an", *output_args, str(tmp),
    ]  # fmt: skip
    count = 0
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: ffmpeg can never block on a full stderr pipe
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        try:
            assert proc.stdin is not None
            frame: np.ndarray | None = first
            while frame is not None:
                frame = _check_frame(frame, shape)
                proc.stdin.write((_pad_even(frame) if even else frame).tobytes())
                count += 1
                frame = next(iterator, None)
            proc.stdin.close()
            code = proc.wait()
            if code != 0:
                log.seek(0)
                message = log.read().decode(errors="replace").strip()
                raise VideoError(f"ffmpeg failed to write {path} (exit code {code}): {message}")
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]
            proc.kill()
            proc.wait()
            tmp.unlink(missing_ok=True)
            if isinstance(err, BrokenPipeError):  # ffmpeg died mid-stream: say why
                log.seek(0)
                message = log.read().decode(errors="replace").strip()
                raise VideoError(f"ffmpeg stopped while writing {path}: {message}") from None
            raise
    return count


def write_mp4(frames: Iterable[np.ndarray], path: Path, fps: float = 30.0) -> int:
    """Encode (H, W, 3) uint8 RGB frames as a browser-playable H.264 MP4, atomically; returns the frame count.

    Odd sizes are padded by one black row/column, since yuv420p needs even dimensions.
    """
    output_args = [
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        "23",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
    ]
    return _encode(frames, path, fps, output_args, even=True)


def _sound_track(sounds: Sequence[tuple[int, np.ndarray, int]], frames: int, fps: float) -> np.ndarray:
    """One mono float track as long as the video, each sound starting at its frame's time."""
    rate = sounds[0][2]
    track = np.zeros(int(math.ceil(frames / fps * rate)), np.float64)
    for first_frame, samples, sound_rate in sounds:
        if sound_rate != rate:
            raise VideoError(f"all sounds of one video need one sample rate: got {sound_rate} Hz after {rate} Hz.")
        start = int(round(first_frame / fps * rate))
        piece = np.asarray(samples, np.float64)[: max(0, len(track) - start)]
        track[start : start + len(piece)] += piece
    return track


def mux_audio(video: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Add a mono audio track (float samples in [-1, 1]) to an MP4, in place and atomically (AAC, video
    stream copied untouched)."""
    video = Path(video)
    pcm = np.round(np.clip(np.asarray(samples, np.float64), -1.0, 1.0) * 32767).astype("<i2")
    tmp = video.with_name(f".{video.name}.{uuid.uuid4().hex}.tmp")
    command = [
        ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(video),
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "-",
        "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-b:a", "96k",
        "-movflags", "+faststart", "-f", "mp4", str(tmp),
    ]  # fmt: skip
    result = subprocess.run(command, input=pcm.tobytes(), capture_output=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise VideoError(f"ffmpeg failed to add audio to {video}: {result.stderr.decode(errors='replace').strip()}")
    os.replace(tmp, video)


def _fit_width(frame: np.ndarray, max_width: int) -> np.ndarray:
    """Downscale (area averaging, no aliasing) so the width is at most `max_width`, keeping the aspect."""
    h, w = frame.shape[:2]
    if w <= max_width:
        return frame
    new_h = max(1, round(h * max_width / w))
    return cv2.resize(frame, (max_width, new_h), interpolation=cv2.INTER_AREA)


def write_gif(
    frames: Iterable[np.ndarray], path: Path, fps: float = GIF_FPS, max_width: int = GIF_MAX_WIDTH
) -> int:
    """A small looping animated GIF preview (frames downscaled to `max_width`); returns the frame count.

    ffmpeg builds one palette for the whole clip (palettegen/paletteuse), which looks far better than
    a fixed web palette.
    """
    if max_width < 1:
        raise VideoError(f"max_width must be at least 1 pixel, got {max_width}.")
    palette = "split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer"
    output_args = ["-filter_complex", palette, "-loop", "0", "-f", "gif"]
    small = (_fit_width(_check_frame(f, None), max_width) for f in frames)
    return _encode(small, path, fps, output_args, even=False)


def annotate(frame: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """`frame` below a dark band holding `lines` of text: the overlay never covers a scene pixel.

    Returns a new array of the frame's width and height + band; the band's height depends only on the
    frame's size and the number of lines, so every frame of an episode gets the same size. Frames lower
    than 256 px (Atari's 84x84 observations) are first upscaled by a whole factor with nearest neighbour,
    so the text has pixels to live in.
    """
    frame = _check_frame(frame, None)
    h = frame.shape[0]
    if h < MIN_ANNOTATED_HEIGHT:
        factor = math.ceil(MIN_ANNOTATED_HEIGHT / h)
        frame = cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    if not lines:
        return frame.copy()
    h, w = frame.shape[:2]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.4, h / 650)  # 0.4 at 256 px, ~0.6 at CartPole's 400 px
    thickness = max(1, round(scale * 1.5))
    # The band's geometry comes from the frame's nominal font size, never from this text, so every frame
    # of a video has one size whatever its lines say.
    margin = max(3, round(6 * scale))
    (_, text_h), base = cv2.getTextSize("Ag", font, scale, thickness)
    line_height = text_h + base + max(2, round(4 * scale))
    band = np.full((line_height * len(lines) + margin, w, 3), 24, dtype=np.uint8)  # (band_h, W, 3)
    widest = max(cv2.getTextSize(line, font, scale, thickness)[0][0] for line in lines)
    if widest > w - 2 * margin:  # narrow frame: shrink the text to fit (within the band) rather than cut it off
        scale = max(0.3, scale * (w - 2 * margin) / widest)
        thickness = max(1, round(scale * 1.5))
        lines = [_fit_text(line, font, scale, thickness, w - 2 * margin) for line in lines]
    for k, line in enumerate(lines):
        y = margin + line_height * k + text_h
        cv2.putText(band, line, (margin, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return np.concatenate([band, frame], axis=0)  # (band_h + H, W, 3)


def _fit_text(line: str, font: int, scale: float, thickness: int, width: int) -> str:
    """`line`, cut with "..." at the end when it is wider than `width` pixels even at the smallest scale."""
    while len(line) > 4 and cv2.getTextSize(line, font, scale, thickness)[0][0] > width:
        line = line[:-4] + "..."
    return line


def _format_action(action: Any) -> str:
    """A short, one-line rendering of an action of any space."""
    if isinstance(action, np.ndarray) and action.ndim > 0:
        text = np.array2string(action, precision=2, separator=" ", max_line_width=10_000)
    elif isinstance(action, Mapping):
        text = " ".join(f"{k}={_format_action(v)}" for k, v in action.items())
    elif isinstance(action, (float, np.floating)):
        text = f"{float(action):.2f}"
    else:
        text = str(action.item() if isinstance(action, np.generic) else action)
    return text if len(text) <= 40 else text[:37] + "..."


def _make_render_env(env_id: str, env_kwargs: Mapping[str, Any] | None) -> gym.Env:
    """`make_env(env_id, render_mode="rgb_array")`, or a VideoError when the env cannot render pixels."""
    advice = (
        f"{env_id} cannot render rgb_array frames, so it cannot be recorded: record an env whose "
        "metadata['render_modes'] includes 'rgb_array' (evaluate this one with `rlsuite evaluate` instead)."
    )
    # pygame-drawn envs (classic control) render off-screen; without this SDL probes for a display
    # and prints an XDG_RUNTIME_DIR complaint on headless machines.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        with warnings.catch_warnings():  # Gymnasium's warning would only repeat the VideoError below
            warnings.filterwarnings("ignore", message=".*not in the possible render_modes")
            env = make_env(env_id, render_mode="rgb_array", **dict(env_kwargs or {}))
    except TypeError as err:  # the constructor takes no render_mode at all
        raise VideoError(f"{advice} ({err})") from None
    if "rgb_array" not in env.metadata.get("render_modes", []) or env.render_mode != "rgb_array":
        env.close()
        raise VideoError(f"{advice} It offers: {env.metadata.get('render_modes', [])}.")
    return env


def _rendered(env: gym.Env, env_id: str) -> np.ndarray:
    """The current frame, checked: some envs declare rgb_array yet return nothing."""
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise VideoError(
            f"{env_id}.render() returned {type(frame).__name__}, not an (H, W, 3) image: it cannot be recorded."
        )
    return frame


def record_episodes(
    policy: Policy,
    env_id: str,
    out: Path,
    *,
    episodes: int = 1,
    seeds: Sequence[int] | None = None,
    deterministic: bool = True,
    fps: float | None = None,
    gif: Path | None = None,
    overlay: bool = True,
    env_kwargs: Mapping[str, Any] | None = None,
    max_episode_steps: int | None = None,
    audio: bool = True,
    epsilon: float | None = None,
    threads: int | None = None,
    max_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[EpisodeRecord]:
    """Play `episodes` evaluation episodes into one MP4 at `out` (and a GIF preview at `gif`).

    Returns their records, equal to `evaluate_policy`'s for the same seeds: the same env (purpose
    "eval"), the same per-episode action streams (`EpisodeActions`, with the protocol's `epsilon` when
    None) and the same batching of observations. `fps` defaults to the env's `render_fps` (real time),
    else 30. The overlay, in a band above the scene, shows the env id, episode and seed, step, action,
    reward and running return. `max_steps` stops each episode after that many steps (its record then
    ends there, truncated). `threads` pins torch's CPU threads (None: leave them). `progress(episode,
    step)` is called every 100 steps and at each episode's end. With `audio`, an env that speaks (its
    unwrapped env has `command_audio() -> (samples, sample_rate)`, e.g. SpokenReach) gets each
    episode's sound muxed in, starting at the episode's first frame.
    """
    seeds = evaluation_seeds(episodes) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != episodes:
        raise VideoError(
            f"got {len(seeds)} seeds for {episodes} episodes: pass one seed per episode, or none."
        )
    if max_steps is not None and max_steps < 1:
        raise VideoError(f"max_steps must be at least 1, got {max_steps}.")
    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    eps = eval_epsilon(env_id) if epsilon is None else float(epsilon)
    env = _make_render_env(env_id, kwargs)
    try:
        with torch_threads(threads):
            return _record(policy, env, env_id, out, seeds, deterministic, fps, gif, overlay, audio, eps, max_steps,
                           progress)
    finally:
        env.close()


def _record(
    policy: Policy, env: gym.Env, env_id: str, out: Path, seeds: Sequence[int], deterministic: bool,
    fps: float | None, gif: Path | None, overlay: bool, audio: bool, epsilon: float, max_steps: int | None,
    progress: Callable[[int, int], None] | None,
) -> list[EpisodeRecord]:
    """Play the episodes into `out` on an open render env (the body of record_episodes)."""
    check_spaces(policy, env, env_id)
    fps = float(fps or env.metadata.get("render_fps") or 30.0)
    gif_every = max(1, round(fps / GIF_FPS))  # keep every k-th frame so the preview plays in real time
    gif_frames: list[np.ndarray] = []
    records: list[EpisodeRecord] = []
    sounds: list[tuple[int, np.ndarray, int]] | None = [] if audio else None
    frames = _episode_frames(policy, env, env_id, seeds, deterministic, overlay, records, sounds, epsilon,
                             max_steps, progress)
    if gif is not None:
        frames = _tee_small(frames, gif_frames, gif_every)
    count = write_mp4(frames, out, fps=fps)
    if sounds:
        mux_audio(out, _sound_track(sounds, count, fps), sounds[0][2])
    if gif is not None:
        write_gif(gif_frames, gif, fps=fps / gif_every)
    return records


SIDECAR_SUFFIX = ".json"
"""`episode.mp4` -> `episode.mp4.json`: which episodes a recorded video shows, for reports' captions."""


def write_sidecar(video: Path, records: Sequence[EpisodeRecord], *, checkpoint: str) -> Path:
    """Write `<video>.json` (checkpoint; seed, return and length of each episode), atomically."""
    path = Path(f"{video}{SIDECAR_SUFFIX}")
    atomic_write_json(path, {"checkpoint": checkpoint, "episodes": [
        {"seed": r.seed, "return": r.episode_return, "length": r.length} for r in records]})
    return path


def read_sidecar(video: Path) -> dict[str, Any] | None:
    """The `<video>.json` that `write_sidecar` wrote, or None when there is none or it is unreadable."""
    try:
        data = json.loads(Path(f"{video}{SIDECAR_SUFFIX}").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("episodes"), list) else None


def _tee_small(frames: Iterator[np.ndarray], keep: list[np.ndarray], every: int) -> Iterator[np.ndarray]:
    """Pass frames through, keeping a GIF-sized copy of every `every`-th one (small: fine in memory)."""
    for k, frame in enumerate(frames):
        if k % every == 0:
            keep.append(_fit_width(frame, GIF_MAX_WIDTH))
        yield frame


def _episode_frames(
    policy: Policy,
    env: gym.Env,
    env_id: str,
    seeds: Sequence[int],
    deterministic: bool,
    overlay: bool,
    records: list[EpisodeRecord],
    sounds: list[tuple[int, np.ndarray, int]] | None = None,
    epsilon: float = 0.0,
    max_steps: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Run one episode per seed, yielding (annotated) frames and appending each finished EpisodeRecord.

    Observations are batched and actions unbatched with Gymnasium's own vector utilities, exactly as a
    SyncVectorEnv does, so the policy sees the same inputs as in `evaluate_policy`.
    """
    obs_space = env.observation_space
    batch_actions = gym.vector.utils.batch_space(env.action_space, 1)

    def show(frame: np.ndarray, lines: list[str]) -> np.ndarray:
        return annotate(frame, lines) if overlay else frame

    for index, seed in enumerate(seeds):
        rng = nullcontext() if deterministic else torch.random.fork_rng()
        with rng:
            if not deterministic:
                torch.manual_seed(seed)  # as evaluate_policy seeds a one-episode wave
            header = [env_id, f"episode {index + 1}/{len(seeds)}   seed {seed}"]
            obs, _ = env.reset(seed=seed)
            speaker = getattr(env.unwrapped, "command_audio", None)
            if sounds is not None and callable(speaker):  # (first frame of the episode, samples, rate)
                sounds.append((sum(r.length + 1 for r in records), *speaker()))
            chooser = EpisodeActions(policy, [seed], deterministic, epsilon)  # as the harness's waves do
            episode_start = np.ones(1, dtype=bool)
            episode_return, length, done = 0.0, 0, False
            info: dict[str, Any] = {}
            yield show(_rendered(env, env_id), [*header, "step 0   action -   reward -   return 0"])
            while not done:
                empty = gym.vector.utils.create_empty_array(obs_space, 1)
                batched = gym.vector.utils.concatenate(obs_space, [obs], empty)  # type: ignore[arg-type]
                # ^ leading dim 1, exactly as a SyncVectorEnv batches it
                actions = chooser.act(batched, episode_start)
                action = next(iter(gym.vector.utils.iterate(batch_actions, actions)))
                obs, reward, terminated, truncated, info = env.step(action)
                episode_return += float(reward)
                length += 1
                done = bool(terminated or truncated) or (max_steps is not None and length >= max_steps)
                episode_start = np.zeros(1, dtype=bool)
                status = (f"step {length}   action {_format_action(action)}   reward {float(reward):.3g}   "
                          f"return {episode_return:.4g}")
                yield show(_rendered(env, env_id), [*header, status])
                if progress is not None and (done or length % 100 == 0):
                    progress(index, length)
        records.append(
            EpisodeRecord(
                index=index,
                seed=seed,
                episode_return=episode_return,
                length=length,
                metrics=episode_metrics(info),
            )
        )
