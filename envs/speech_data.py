"""Spoken command clips for SpokenReach: generated with espeak-ng, shipped as package data, featurised in NumPy.

Generate (needs the Debian package `espeak-ng`; nothing else reads espeak-ng, and CI uses the shipped file):

    python -m rlsuite.envs.speech_data            # writes envs/data/spoken_commands.npz

Each command word is spoken by many voices: a voice is an espeak-ng accent (en-us, en-gb-scotland, ...)
with a voice variant (m1, f2, klatt, ...), at a random pitch and speed. Voices are split by *variant*:
training voices use one set of variants, held-out voices the others, so a held-out voice's timbre is
never heard in training. Clips are trimmed of silence, resampled to 16 kHz, peak-normalised and stored
as int16 in a compressed .npz (read with `allow_pickle=False`: no pickle anywhere).

Features: log-mel spectrogram, 16 kHz, 25 ms Hann window (400 samples, FFT 512), 10 ms hop (160), 40
HTK mel bands over 0-8 kHz, `log(power + 1e-6)`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000  # Hz
WINDOW = 400  # samples, 25 ms
HOP = 160  # samples, 10 ms
N_FFT = 512
N_MELS = 40
LOG_FLOOR = 1e-6
WORDS = ("red", "blue", "green", "yellow")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
TRAIN_VARIANTS = ("m1", "m3", "m4", "m5", "m6", "f1", "f3", "f5")
HELDOUT_VARIANTS = ("m2", "m7", "f2", "f4")
HELDOUT_RENDITIONS = 1
TRAIN_RENDITIONS = 1
DATA_PATH = Path(__file__).parent / "data" / "spoken_commands.npz"


@dataclass(frozen=True)
class SpeechClips:
    """The shipped clips: `audio` holds clip i at `audio[offsets[i]:offsets[i + 1]]` (int16, 16 kHz)."""

    audio: np.ndarray
    offsets: np.ndarray
    word: np.ndarray
    """(num_clips,) index into `words`."""
    voice: np.ndarray
    """(num_clips,) index into `voices`."""
    heldout: np.ndarray
    """(num_clips,) bool: spoken by a held-out voice."""
    words: tuple[str, ...]
    voices: tuple[str, ...]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.word)

    def clip(self, i: int) -> np.ndarray:
        return self.audio[self.offsets[i] : self.offsets[i + 1]]


def load_clips(path: Path = DATA_PATH) -> SpeechClips:
    """The clips shipped with rlsuite (or another file written by `generate`)."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: reinstall rlsuite, or regenerate it with `python -m rlsuite.envs.speech_data` "
            "(needs espeak-ng: apt-get install espeak-ng)."
        )
    with np.load(path, allow_pickle=False) as data:
        return SpeechClips(
            audio=data["audio"], offsets=data["offsets"], word=data["word"], voice=data["voice"],
            heldout=data["heldout"], words=tuple(str(w) for w in data["words"]),
            voices=tuple(str(v) for v in data["voices"]), sample_rate=int(data["sample_rate"]),
        )


@cache
def _shipped_clips() -> SpeechClips:
    return load_clips()


# ----------------------------------------------------------------------------------------------- features


@cache
def mel_filterbank() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) triangular HTK-mel filters over 0 .. SAMPLE_RATE / 2."""
    def hz_to_mel(hz: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(0.0, hz_to_mel(np.array(SAMPLE_RATE / 2)), N_MELS + 2))  # Hz
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)  # Hz of each FFT bin
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]  # (N_MELS, 1)
    rising = (freqs[None] - lower) / (centre - lower)
    falling = (upper - freqs[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T  # (bins, N_MELS)


def mel_power(wave: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) mel power of a float waveform (in [-1, 1]); frames = 1 + (len - WINDOW) // HOP."""
    wave = np.asarray(wave, dtype=np.float64)
    if len(wave) < WINDOW:
        wave = np.pad(wave, (0, WINDOW - len(wave)))
    frames = 1 + (len(wave) - WINDOW) // HOP
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(frames)[:, None]  # (frames, WINDOW)
    spectrum = np.fft.rfft(wave[index] * np.hanning(WINDOW), n=N_FFT)  # (frames, bins)
    return (np.abs(spectrum) ** 2) @ mel_filterbank()  # (frames, N_MELS)


def log_mel(wave: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) float32 log-mel spectrogram."""
    return np.log(mel_power(wave) + LOG_FLOOR).astype(np.float32)


def frames_for(seconds: float) -> int:
    return 1 + (int(round(seconds * SAMPLE_RATE)) - WINDOW) // HOP


# --------------------------------------------------------------------------------------------- generation


def _synthesise(word: str, voice: str, pitch: int, speed: int, workdir: Path) -> np.ndarray:
    """One clip from espeak-ng: trimmed, resampled to 16 kHz, peak 0.9, int16."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    path = workdir / "clip.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(path), word],
                   check=True, capture_output=True)
    rate, samples = wavfile.read(path)
    wave = samples.astype(np.float64) / 32768.0
    loud = np.flatnonzero(np.abs(wave) > 0.02 * np.abs(wave).max())
    margin = int(0.02 * rate)  # keep 20 ms around the speech
    wave = wave[max(0, loud[0] - margin) : loud[-1] + margin]
    wave = resample_poly(wave, SAMPLE_RATE, rate)  # 22050 -> 16000 Hz
    wave = 0.9 * wave / np.abs(wave).max()
    return np.round(wave * 32767).astype(np.int16)


def generate(path: Path = DATA_PATH, seed: int = 0) -> SpeechClips:
    """Synthesise every (word, voice, rendition) with espeak-ng and write the compressed .npz."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng (Debian/Ubuntu), then rerun.")
    rng = np.random.default_rng(seed)
    plan = [(f"{accent}+{variant}", heldout, renditions)
            for variants, heldout, renditions in ((TRAIN_VARIANTS, False, TRAIN_RENDITIONS),
                                                  (HELDOUT_VARIANTS, True, HELDOUT_RENDITIONS))
            for variant in variants for accent in ACCENTS]
    voices = tuple(name for name, _, _ in plan)
    clips, word_ids, voice_ids, heldout_flags = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for voice_id, (voice, heldout, renditions) in enumerate(plan):
            for word_id, word in enumerate(WORDS):
                for _ in range(renditions):
                    pitch, speed = int(rng.integers(25, 76)), int(rng.integers(130, 211))  # espeak 0-99, words/min
                    clips.append(_synthesise(word, voice, pitch, speed, Path(tmp)))
                    word_ids.append(word_id)
                    voice_ids.append(voice_id)
                    heldout_flags.append(heldout)
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp_path, audio=np.concatenate(clips), offsets=offsets, word=np.array(word_ids, np.int64),
                        voice=np.array(voice_ids, np.int64), heldout=np.array(heldout_flags, bool),
                        words=np.array(WORDS), voices=np.array(voices), sample_rate=np.array(SAMPLE_RATE))
    tmp_path.replace(path)  # atomic: a reader never sees half a file
    return load_clips(path)


def main() -> None:
    parser = argparse.ArgumentParser(description="Synthesise SpokenReach's command clips with espeak-ng.")
    parser.add_argument("--out", type=Path, default=DATA_PATH)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    clips = generate(args.out, args.seed)
    seconds = np.diff(clips.offsets) / clips.sample_rate
    print(f"{len(clips)} clips ({int((~clips.heldout).sum())} train, {int(clips.heldout.sum())} held-out), "
          f"{len(clips.voices)} voices, {seconds.min():.2f}-{seconds.max():.2f} s, "
          f"{args.out.stat().st_size / 1e6:.2f} MB -> {args.out}")


if __name__ == "__main__":
    main()
