"""The run folder: one directory per training run, holding everything needed to trust and reuse it.

    <root>/<agent>-<env>-s<seed>-<YYYYmmdd-HHMMSS>/
        manifest.json     what ran (settings, command, versions, git commit) and how it ended
        metrics.csv       long-format metrics (agents/logger.py), tb/ for TensorBoard
        checkpoints/      last.safetensors, best.safetensors, step_000100000.safetensors

The manifest is rewritten atomically on every change, so a killed run still has a readable manifest.
Its status then still says "running"; the manifest also names the process that trains it (pid, host,
start time) and carries a heartbeat the run refreshes, so `RunFolder.effective_status()` can tell a
live run from a crashed one: on the same machine by asking the OS whether that process still exists,
from another machine (a shared filesystem) by the age of the heartbeat.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rlsuite.agents.fileio import atomic_write_json, is_temp_file


class RunError(ValueError):
    """A user-facing problem with a run folder or its checkpoints; the message says what to do."""


RUN_STATUSES = ("running", "finished", "interrupted", "failed")
CRASHED = "crashed"
"""Not stored: what `effective_status` reports for a "running" run whose process is gone."""
HEARTBEAT_EVERY_S = 30.0
"""`RunFolder.heartbeat()` rewrites the manifest at most this often, so the run loop may call it every update."""
STALE_AFTER_S = 30 * 60.0
"""A run trained on another machine counts as crashed when its heartbeat is older than this. Generous,
because one update or periodic evaluation may take minutes and clocks of two machines differ."""
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
CHECKPOINT_SUFFIX = ".safetensors"
REQUIRED_KEYS = ("schema_version", "name", "agent", "env_id", "seed", "settings", "status")
_VERSIONED_PACKAGES = (
    "torch",
    "gymnasium",
    "numpy",
    "stable-baselines3",
    "sb3-contrib",
    "pettingzoo",
    "ale-py",
    "opencv-python-headless",
)
_STEP_NAME = re.compile(r"^step_(\d+)$")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _boot_id() -> str | None:
    """This machine's boot id (Linux); it changes on every reboot, so a pid from before one is not ours."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks since boot) of a process from /proc; None if unreadable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 (state) onwards
    return fields[0], fields[19]  # field 3: state; field 22: starttime


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """Who trains a run: pid, host, and (Linux) boot id + start ticks, which tell a reused pid apart."""
    pid = os.getpid() if pid is None else pid
    stat = _proc_stat(pid)
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(),
            "start_ticks": None if stat is None else stat[1]}


def process_gone(process: Mapping[str, Any]) -> bool | None:
    """Whether the process a manifest names has ended: True, False, or None when this machine cannot tell
    (another host, another boot, or no pid recorded)."""
    pid = process.get("pid")
    if not isinstance(pid, int) or process.get("host") != socket.gethostname():
        return None
    recorded_boot, boot = process.get("boot_id"), _boot_id()
    if recorded_boot is not None and boot is not None and recorded_boot != boot:
        return None  # rebooted since, or another machine of the same name: the heartbeat decides
    if Path("/proc/self/stat").exists():
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # no such process, or a zombie nobody has reaped yet
            return True
        ticks = process.get("start_ticks")
        return ticks is not None and stat[1] != ticks  # the pid now belongs to a later process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _age_s(iso: Any, now: datetime) -> float | None:
    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (now - when).total_seconds()


def crash_reason(manifest: Mapping[str, Any], now: datetime | None = None) -> str | None:
    """Why a manifest that says "running" belongs to a run that is no longer running, or None if it may be."""
    if manifest.get("status") != "running":
        return None
    process = manifest.get("process")
    if not isinstance(process, Mapping):
        return None  # written before rlsuite recorded its process: nothing to check against
    gone = process_gone(process)
    where = f"process {process.get('pid')} on {process.get('host')}"
    if gone is True:
        return f"its {where} is gone"
    if gone is False:
        return None
    age = _age_s(manifest.get("heartbeat"), now or datetime.now(timezone.utc))
    if age is not None and age > STALE_AFTER_S:
        return f"its {where} has sent no heartbeat for {timedelta(seconds=int(age))}"
    return None


def _who(manifest: Mapping[str, Any]) -> str:
    process = manifest.get("process")
    if not isinstance(process, Mapping):
        return f"on {manifest.get('hostname', 'an unknown host')}"
    return f"{process.get('pid')} on {process.get('host')}"


def run_name(agent: str, env_id: str, seed: int, now: datetime | None = None) -> str:
    """A sortable, filesystem-safe folder name, e.g. `ppo-CartPole-v1-s0-20261129-153000`."""
    when = now if now is not None else datetime.now()
    return _safe(f"{agent}-{env_id.replace('/', '_')}-s{seed}-{when:%Y%m%d-%H%M%S}")


def step_checkpoint_name(step: int) -> str:
    """`step_000100000` for step 100000: zero-padded so names sort in step order."""
    if step < 0:
        raise RunError(f"Checkpoint step must be >= 0, got {step}.")
    return f"step_{step:09d}"


def collect_versions() -> dict[str, str]:
    """Python, rlsuite and the installed versions of the packages that change results."""
    import rlsuite

    versions = {"python": platform.python_version(), "rlsuite": getattr(rlsuite, "__version__", "unknown")}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> tuple[str | None, bool | None]:
    """(sha, dirty) of the git checkout holding the rlsuite source; (None, None) outside one. Never raises."""
    try:
        import rlsuite

        source_dir = Path(rlsuite.__file__).resolve().parent
        head = subprocess.run(
            ["git", "-C", str(source_dir), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", str(source_dir), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        return head.stdout.strip() or None, dirty
    except Exception:  # git missing, timeout, odd install: provenance is best effort
        return None, None


class RunFolder:
    """One run's directory: manifest, checkpoints and metrics. Create it with `create`, reopen with `open`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._last_beat = time.monotonic()

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME

    @classmethod
    def create(
        cls,
        root: Path,
        *,
        agent: str,
        env_id: str,
        seed: int,
        settings: Mapping[str, Any],
        command: str,
        device: str,
        name: str | None = None,
    ) -> RunFolder:
        """Make `root/name` with checkpoints/ and a fresh manifest; refuse to reuse a non-empty folder."""
        folder_name = name if name is not None else run_name(agent, env_id, seed)
        if not folder_name or folder_name in (".", "..") or "/" in folder_name or "\\" in folder_name:
            raise RunError(f"Invalid run name {folder_name!r}: use a plain folder name without slashes.")
        path = Path(root) / folder_name
        if path.exists():
            if not path.is_dir():
                raise RunError(f"{path} exists and is a file; choose another --run-dir.")
            if any(path.iterdir()):
                raise RunError(
                    f"Run folder {path} already exists and is not empty; choose another --run-dir or "
                    f"resume it with `rlsuite train --resume {path}`."
                )
        (path / "checkpoints").mkdir(parents=True, exist_ok=True)
        commit, dirty = git_commit()
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "name": folder_name,
            "agent": agent,
            "env_id": env_id,
            "seed": seed,
            "settings": dict(settings),
            "command": command,
            "versions": collect_versions(),
            "git_commit": commit,
            "git_dirty": dirty,
            "device": device,
            "hostname": socket.gethostname(),
            "process": process_identity(),
            "started_at": _now_iso(),
            "heartbeat": _now_iso(),
            "ended_at": None,
            "status": "running",
            "error": None,
            "final_step": None,
            "resumed": [],
        }
        atomic_write_json(path / MANIFEST_NAME, manifest)
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        """Reopen an existing run folder (to resume, evaluate or report on it), checking its manifest."""
        path = Path(path)
        hint = "pass the folder that `rlsuite train` printed as its last line"
        if not path.is_dir():
            raise RunError(f"{path} is not an rlsuite run folder: no such directory; {hint}.")
        folder = cls(path)
        folder._read_manifest(hint)
        return folder

    def _read_manifest(self, hint: str = "pass the folder that `rlsuite train` printed as its last line") -> dict:
        where = f"{self.path} is not an rlsuite run folder"
        try:
            text = self.manifest_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunError(f"{where}: it has no {MANIFEST_NAME}; {hint}.") from None
        except OSError as err:
            raise RunError(f"{where}: cannot read {MANIFEST_NAME} ({err}); {hint}.") from None
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as err:
            raise RunError(f"{where}: {MANIFEST_NAME} is not valid JSON ({err}); {hint}.") from None
        if not isinstance(manifest, dict):
            raise RunError(f"{where}: {MANIFEST_NAME} is not a JSON object; {hint}.")
        missing = [k for k in REQUIRED_KEYS if k not in manifest]
        if missing:
            raise RunError(f"{where}: {MANIFEST_NAME} lacks {', '.join(missing)}; {hint}.")
        return manifest

    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest as stored on disk now (read fresh on every access)."""
        return self._read_manifest()

    def update_manifest(self, **fields: Any) -> None:
        """Set top-level manifest keys with an atomic read-modify-write (the training process's own writes
        also refresh its heartbeat)."""
        manifest = self._read_manifest()
        manifest.update(fields)
        process = manifest.get("process")
        if isinstance(process, Mapping) and process.get("pid") == os.getpid() \
                and process.get("host") == socket.gethostname():
            manifest["heartbeat"] = _now_iso()
            self._last_beat = time.monotonic()
        atomic_write_json(self.manifest_path, manifest)

    def heartbeat(self, force: bool = False) -> None:
        """Tell readers on other machines that this run is alive: cheap to call every update, it rewrites
        the manifest at most every HEARTBEAT_EVERY_S seconds."""
        if force or time.monotonic() - self._last_beat >= HEARTBEAT_EVERY_S:
            self.update_manifest(heartbeat=_now_iso())
            self._last_beat = time.monotonic()

    def effective_status(self, manifest: Mapping[str, Any] | None = None) -> str:
        """The manifest's status, or "crashed" when it says "running" but its process is gone."""
        manifest = self.manifest if manifest is None else manifest
        return CRASHED if crash_reason(manifest) is not None else str(manifest["status"])

    def status_note(self, manifest: Mapping[str, Any] | None = None) -> str | None:
        """One line for commands that show or evaluate a run that did not finish (what happened, what to do);
        None for a finished run."""
        manifest = self.manifest if manifest is None else manifest
        status, resume = manifest["status"], f"rlsuite train --resume {self.path}"
        reason = crash_reason(manifest)
        if reason is not None:
            return f"run {self.path} crashed ({reason}) before it finished; resume it with: {resume}"
        if status == "running":
            return f"run {self.path} is still training (process {_who(manifest)}); its checkpoints will change"
        if status in ("interrupted", "failed"):
            step = manifest.get("final_step")
            at = f" at step {step}" if step is not None else ""
            return f"run {self.path} was {status}{at} before it finished; resume it with: {resume}"
        return None

    def set_status(self, status: str, *, error: str | None = None, final_step: int | None = None) -> None:
        """Record how the run stands; any status but "running" also stamps `ended_at`."""
        if status not in RUN_STATUSES:
            raise RunError(f"Unknown run status {status!r}; accepted: {', '.join(RUN_STATUSES)}.")
        fields: dict[str, Any] = {"status": status, "error": error}
        fields["ended_at"] = None if status == "running" else _now_iso()
        if final_step is not None:
            fields["final_step"] = int(final_step)
        self.update_manifest(**fields)

    def mark_resumed(self, step: int) -> None:
        """Note that training continues from `step` in this process (appends to `resumed`, status back to
        running, this process recorded as the one training it)."""
        manifest = self._read_manifest()
        resumed = list(manifest.get("resumed") or [])
        entry: dict[str, Any] = {"at": _now_iso(), "step": int(step)}
        reason = crash_reason(manifest)
        if reason is not None:
            entry["after_crash"] = reason
        resumed.append(entry)
        manifest.update(resumed=resumed, status="running", ended_at=None, error=None, process=process_identity(),
                        heartbeat=_now_iso())
        atomic_write_json(self.manifest_path, manifest)
        self._last_beat = time.monotonic()

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_path(self, name: str) -> Path:
        """checkpoints/<name>.safetensors for a name like last, best or step_000100000."""
        if not name or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name.startswith("."):
            raise RunError(f"Invalid checkpoint name {name!r}; use last, best or step_N.")
        return self.checkpoints_dir / f"{name}{CHECKPOINT_SUFFIX}"

    def list_checkpoints(self) -> dict[str, Path]:
        """Checkpoint name -> path, sorted by name (step_N sort by step); temp files are skipped."""
        if not self.checkpoints_dir.is_dir():
            return {}
        found = {
            p.name[: -len(CHECKPOINT_SUFFIX)]: p
            for p in self.checkpoints_dir.iterdir()
            if p.is_file() and p.name.endswith(CHECKPOINT_SUFFIX) and not is_temp_file(p) and not p.name.startswith(".")
        }
        return dict(sorted(found.items()))

    def find_checkpoint(self, which: str | int = "last") -> Path:
        """The checkpoint for last | best | step_N | N | latest (highest saved step, from metadata)."""
        available = self.list_checkpoints()
        if not available:
            raise RunError(
                f"{self.path} has no checkpoint yet: the run was stopped before its first save. "
                f"Train it longer (or resume it) and try again."
            )
        if isinstance(which, bool):
            raise RunError(f"Invalid checkpoint {which!r}; use last, best, latest, step_N or N.")
        if isinstance(which, int):
            name = step_checkpoint_name(which)
        elif which == "latest":
            return self._latest(available)
        elif which.isdigit():
            name = step_checkpoint_name(int(which))
        elif (m := _STEP_NAME.match(which)) is not None:
            name = step_checkpoint_name(int(m.group(1)))
        else:
            name = which
        if name in available:
            return available[name]
        raise RunError(
            f"{self.path} has no checkpoint {which!r}; available: {', '.join(available)} "
            f"(or `latest` for the one with the most training steps)."
        )

    def _latest(self, available: Mapping[str, Path]) -> Path:
        # The highest `step` in the checkpoints' own metadata; a name's step is the fallback.
        from rlsuite.agents.checkpoint import CheckpointError, read_checkpoint_meta

        best_path: Path | None = None
        best_step = -1
        for name, path in available.items():
            try:
                step = int(read_checkpoint_meta(path).get("step", -1))
            except (CheckpointError, TypeError, ValueError):
                m = _STEP_NAME.match(name)
                step = int(m.group(1)) if m else -1
            # Ties go to `last`, the checkpoint that also carries the newest optimiser state.
            if step > best_step or (step == best_step and name == "last"):
                best_path, best_step = path, step
        if best_path is None:
            raise RunError(f"{self.path}: no readable checkpoint; available: {', '.join(available)}.")
        return best_path
