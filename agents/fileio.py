"""Atomic file writes: a crash at any moment leaves either the old file or the new one, never half of one.

Every file rlsuite writes that something else later reads (manifests, checkpoints, rewritten metric
logs) goes through here. The recipe: write a temp file in the same directory (same filesystem, so the
rename is atomic), flush and fsync it, `os.replace` it over the target, then fsync the directory so
the rename itself survives a power cut.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"


def is_temp_file(path: Path) -> bool:
    """True for the temp files `atomic_write_bytes` leaves behind only if it is killed mid-write."""
    return path.name.startswith(TEMP_PREFIX) and path.name.endswith(TEMP_SUFFIX)


def _fsync_dir(directory: Path) -> None:
    # Directory fsync makes the rename durable; some platforms (Windows) cannot open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_file_mode() -> int:
    """The mode `open()` would give a new file (0o666 less the umask); mkstemp's own 0o600 would make
    manifests, checkpoints and reports private to their writer."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


KILL_HOOK_ENV = "RLSUITE_TEST_KILL_BEFORE_RENAME"
"""Tests set it to `NAME:K` to kill -9 this process on its K-th write of a file named NAME, after the temp
file is written and synced, before the rename: the worst moment for a crash."""
_writes: dict[str, int] = {}


def _kill_hook(path: Path) -> None:
    spec = os.environ.get(KILL_HOOK_ENV)
    if not spec:
        return
    name, _, count = spec.rpartition(":")
    if path.name != name:
        return
    _writes[name] = _writes.get(name, 0) + 1
    if _writes[name] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old content or the new, never a partial file."""
    path = Path(path)
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, _default_file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _kill_hook(path)
        os.replace(tmp, path)
    except BaseException:
        # Any failure (including KeyboardInterrupt) removes the temp file; the target is untouched.
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def atomic_write_text(path: Path, text: str) -> None:
    """`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write `obj` as indented JSON; NaN/inf are rejected (callers convert them, e.g. to None)."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except ValueError as err:
        raise ValueError(
            f"Cannot write {path}: {err}. JSON has no NaN or infinity; convert such values to None first."
        ) from None
    atomic_write_text(path, text + "\n")
