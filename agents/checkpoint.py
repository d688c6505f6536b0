"""Checkpoints: one safetensors file holding the tensors plus JSON metadata, written in one atomic rename.

Nothing is pickled. Tensors (network weights, optimiser moments, normaliser statistics, RNG states) go
into the safetensors body; everything else (step count, settings, optimiser hyperparameters, the
non-tensor parts of RNG states) is one JSON document stored in the safetensors header metadata under
the key "rlsuite". Agents put the env step reached under meta["step"] (`RunFolder.find_checkpoint("latest")`
reads it).

    save_checkpoint(path, {**module_tensors("policy", net), **opt_t, **rng_t}, {"step": 5000, **opt_m, **rng_m})

`optimizer_state` and `rng_state` return (tensors, meta) pairs whose meta is a one-key dict ({prefix: ...}
and {"rng": ...}), so merging them into the checkpoint meta and passing the whole meta back on load works,
as does storing and passing back the returned dict itself.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save
from torch import nn

from rlsuite.agents.fileio import atomic_write_bytes

FORMAT = "rlsuite-checkpoint/1"
META_KEY = "rlsuite"
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
KILL_AFTER_CHECKPOINT_ENV = "RLSUITE_TEST_KILL_AFTER_CHECKPOINT"
"""For crash tests: set to a file path that does not exist yet, and the first process to save a checkpoint
creates that file (with the checkpoint's path and step as JSON) and SIGKILLs itself right after the save.
Only once per path, so a resumed run or a retried sweep trial carries on."""


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or not ours; the message names the file and what to try."""


def _retry_hint(path: Path) -> str:
    return (
        f"Try another checkpoint of the same run (best, last or a step_N file in {path.parent}), "
        f"or `rlsuite evaluate --checkpoint latest`."
    )


def _json_default(value: Any) -> Any:
    # NumPy scalars slip into metadata easily (np.float32 returns, np.int64 steps); store them as numbers.
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _find_non_finite(value: Any, where: str = "meta") -> str | None:
    if isinstance(value, float | np.floating) and not np.isfinite(value):
        return where
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _find_non_finite(v, f"{where}[{k!r}]")
            if found:
                return found
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _find_non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return None


def save_checkpoint(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write tensors + JSON metadata to one safetensors file atomically (old file or new, never half)."""
    path = Path(path)
    prepared: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"Checkpoint entry {name!r} is a {type(tensor).__name__}, not a torch.Tensor.")
        # Own, contiguous CPU storage: safetensors refuses tensors that share memory (tied weights, views).
        prepared[name] = tensor.detach().to("cpu").contiguous().clone()
    full_meta = dict(meta)
    full_meta["format"] = FORMAT
    bad = _find_non_finite(full_meta)
    if bad is not None:
        raise CheckpointError(
            f"Cannot save {path}: {bad} is NaN or infinite, which JSON cannot store; convert it to None first."
        )
    try:
        meta_text = json.dumps(full_meta, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"Cannot save {path}: checkpoint metadata must be plain JSON ({err}).") from None
    data = _st_save(prepared, metadata={META_KEY: meta_text})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    if os.environ.get(KILL_AFTER_CHECKPOINT_ENV):
        _crash_once(Path(os.environ[KILL_AFTER_CHECKPOINT_ENV]), path, full_meta.get("step"))


def _crash_once(marker: Path, saved: Path, step: Any) -> None:
    """The crash-test hook of KILL_AFTER_CHECKPOINT_ENV: the first process to create `marker` dies."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        json.dump({"checkpoint": str(saved), "step": step, "pid": os.getpid()}, f)
    os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


def _parse_header(path: Path, head: bytes, size: int) -> dict[str, Any]:
    """The rlsuite metadata from the first bytes of a safetensors file (8-byte length + JSON header)."""
    if len(head) < 8:
        raise CheckpointError(f"{path} is truncated or not a checkpoint (only {size} bytes). {_retry_hint(path)}")
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len > _MAX_HEADER_BYTES or 8 + header_len > size:
        raise CheckpointError(f"{path} is truncated or not a safetensors checkpoint. {_retry_hint(path)}")
    try:
        header = json.loads(head[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is corrupt: its header is not valid JSON. {_retry_hint(path)}") from None
    file_meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(file_meta, dict) or META_KEY not in file_meta:
        raise CheckpointError(
            f"{path} is a safetensors file but not an rlsuite checkpoint (no {META_KEY!r} metadata). "
            f"{_retry_hint(path)}"
        )
    try:
        meta = json.loads(file_meta[META_KEY])
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is corrupt: its rlsuite metadata is not valid JSON. {_retry_hint(path)}") from None
    if not isinstance(meta, dict) or not str(meta.get("format", "")).startswith("rlsuite-checkpoint/"):
        raise CheckpointError(f"{path} has metadata in an unknown format. {_retry_hint(path)}")
    return meta


def _open_error(path: Path, err: OSError) -> CheckpointError:
    if isinstance(err, FileNotFoundError):
        return CheckpointError(f"Checkpoint {path} does not exist. {_retry_hint(path)}")
    return CheckpointError(f"Cannot read checkpoint {path} ({err}). {_retry_hint(path)}")


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    """Only the JSON metadata of a checkpoint (reads the header, not the tensors)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            size = path.stat().st_size
            head = f.read(8)
            if len(head) == 8:
                (header_len,) = struct.unpack("<Q", head)
                if header_len <= _MAX_HEADER_BYTES:
                    head += f.read(header_len)
    except OSError as err:
        raise _open_error(path, err) from None
    return _parse_header(path, head, size)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors on `device`, metadata) of a checkpoint; CheckpointError if it is missing, damaged or not ours."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise _open_error(path, err) from None
    meta = _parse_header(path, data, len(data))
    try:
        tensors = _st_load(data)
    except Exception as err:  # safetensors raises its own error types for damaged bodies
        raise CheckpointError(f"{path} is truncated or corrupt ({err}). {_retry_hint(path)}") from None
    target = torch.device(device)
    if target.type != "cpu":
        tensors = {k: v.to(target) for k, v in tensors.items()}
    return tensors, meta


# ---------------------------------------------------------------------------------------------------
# Modules


def module_tensors(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's parameters and buffers as {"<prefix>.<name>": tensor}."""
    return {f"{prefix}.{name}": tensor.detach() for name, tensor in module.state_dict().items()}


def load_module_tensors(prefix: str, module: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Load `<prefix>.*` tensors into `module`, strictly: missing, unexpected or misshapen entries raise."""
    start = f"{prefix}."
    stored = {k[len(start) :]: v for k, v in tensors.items() if k.startswith(start)}
    expected = module.state_dict()
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"Checkpoint does not fit the {prefix!r} network: missing {missing or 'nothing'}, "
            f"unexpected {unexpected or 'nothing'}. Was it saved with other settings (net_arch, env)? "
            f"Use the settings stored in the run's manifest."
        )
    wrong = [
        f"{k}: checkpoint {tuple(stored[k].shape)} vs network {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(stored[k].shape) != tuple(v.shape)
    ]
    if wrong:
        raise CheckpointError(
            f"Checkpoint shapes do not fit the {prefix!r} network ({'; '.join(wrong)}). "
            f"Use the settings stored in the run's manifest."
        )
    module.load_state_dict(stored, strict=True)


# ---------------------------------------------------------------------------------------------------
# Optimisers


def optimizer_state(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten `optimizer.state_dict()`: state tensors to `<prefix>.state.<idx>.<key>`, the rest to {prefix: ...}."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    state_meta: dict[str, dict[str, Any]] = {}
    for idx, param_state in sd["state"].items():
        plain: dict[str, Any] = {}
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.state.{idx}.{key}"] = value.detach()
            else:
                plain[key] = value
        state_meta[str(idx)] = plain
    groups: list[dict[str, Any]] = []
    for gi, group in enumerate(sd["param_groups"]):
        plain_group: dict[str, Any] = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):  # e.g. a tensor learning rate
                tensors[f"{prefix}.param_groups.{gi}.{key}"] = value.detach()
            else:
                plain_group[key] = list(value) if isinstance(value, tuple) else value
        groups.append(plain_group)
    return tensors, {prefix: {"state": state_meta, "param_groups": groups}}


def _payload(meta: Mapping[str, Any], key: str, marker: str, what: str) -> Mapping[str, Any]:
    """Accept both the whole checkpoint meta ({key: payload, ...}) and the payload itself."""
    if key in meta and isinstance(meta[key], Mapping):
        return meta[key]
    if marker in meta:
        return meta
    raise CheckpointError(f"Checkpoint metadata has no {what} under {key!r}; was it saved by this agent?")


def load_optimizer_state(
    prefix: str,
    optimizer: torch.optim.Optimizer,
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
) -> None:
    """Inverse of `optimizer_state`: rebuild the state dict and load it (training continues bit-identically)."""
    payload = _payload(meta, prefix, "param_groups", "optimiser state")
    state: dict[int, dict[str, Any]] = {int(idx): dict(values) for idx, values in payload["state"].items()}
    groups: list[dict[str, Any]] = [dict(g) for g in payload["param_groups"]]
    state_start = f"{prefix}.state."
    group_start = f"{prefix}.param_groups."
    for name, tensor in tensors.items():
        if name.startswith(state_start):
            idx, _, key = name[len(state_start) :].partition(".")
            state.setdefault(int(idx), {})[key] = tensor
        elif name.startswith(group_start):
            gi, _, key = name[len(group_start) :].partition(".")
            groups[int(gi)][key] = tensor
    current = optimizer.state_dict()["param_groups"]
    if len(current) != len(groups):
        raise CheckpointError(
            f"Checkpoint optimiser {prefix!r} has {len(groups)} parameter groups, this one has {len(current)}."
        )
    for live, stored in zip(current, groups, strict=True):
        if len(live["params"]) != len(stored.get("params", [])):
            raise CheckpointError(
                f"Checkpoint optimiser {prefix!r} was built for {len(stored.get('params', []))} parameters, "
                f"this network has {len(live['params'])}; use the settings stored in the run's manifest."
            )
        for key, value in live.items():
            # JSON turned tuples (Adam's betas) into lists; give them back their type.
            if isinstance(value, tuple) and isinstance(stored.get(key), list):
                stored[key] = tuple(stored[key])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# ---------------------------------------------------------------------------------------------------
# Random number generators


def seed_global_rngs(seed: int) -> None:
    """Seed every global RNG a checkpoint saves (python `random`, NumPy's legacy global RNG, torch on every
    device), so a seeded run's checkpoints are the same run after run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The global RNG states (python `random`, NumPy's legacy global RNG, torch CPU and CUDA)."""
    version, mt_state, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    tensors = {
        "rng.python": torch.tensor(mt_state, dtype=torch.int64),  # (625,) 32-bit words + position
        "rng.numpy": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),  # (624,) uint32 words
        "rng.torch": torch.get_rng_state(),  # uint8 byte state
    }
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    for i, s in enumerate(cuda_states):
        tensors[f"rng.cuda.{i}"] = s
    meta = {
        "rng": {
            "python_version": version,
            "python_gauss_next": gauss_next,
            "numpy": {"name": np_name, "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_cached)},
            "cuda_devices": len(cuda_states),
        }
    }
    return tensors, meta


def restore_rng_state(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Inverse of `rng_state`: the next random numbers equal those drawn after the save."""
    payload = _payload(meta, "rng", "python_version", "RNG state")
    for key in ("rng.python", "rng.numpy", "rng.torch"):
        if key not in tensors:
            raise CheckpointError(f"Checkpoint has RNG metadata but no {key!r} tensor; it is incomplete.")
    mt_state = tuple(int(x) for x in tensors["rng.python"].tolist())
    random.setstate((payload["python_version"], mt_state, payload["python_gauss_next"]))
    np_meta = payload["numpy"]
    np_keys = tensors["rng.numpy"].cpu().numpy().astype(np.uint32)
    np.random.set_state(
        (np_meta["name"], np_keys, int(np_meta["pos"]), int(np_meta["has_gauss"]), float(np_meta["cached_gaussian"]))
    )
    torch.set_rng_state(tensors["rng.torch"].cpu().to(torch.uint8))
    if torch.cuda.is_available():
        n = min(int(payload.get("cuda_devices", 0)), torch.cuda.device_count())
        for i in range(n):
            key = f"rng.cuda.{i}"
            if key in tensors:
                torch.cuda.set_rng_state(tensors[key].cpu().to(torch.uint8), device=i)


# ---------------------------------------------------------------------------------------------------
# Trees: nested dicts and lists of arrays and JSON values (env states, loop state, replay buffers)


def pack_tree(prefix: str, tree: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """(tensors, JSON description) of a tree whose leaves are NumPy arrays, tensors or JSON values.

    NumPy arrays are stored as their raw bytes (any dtype, bit for bit) with dtype and shape in the JSON, so
    `unpack_tree` gives back equal arrays; dicts need string keys; tuples come back as tuples."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(key: str, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise CheckpointError(f"{key} is an object array, which a checkpoint cannot store without pickle.")
            data = np.ascontiguousarray(value)
            tensors[key] = torch.from_numpy(data.reshape(-1).view(np.uint8).copy())
            return {"a": key, "dtype": data.dtype.str, "shape": list(data.shape)}
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach()
            return {"T": key}
        if isinstance(value, Mapping):
            return {"d": {str(k): walk(f"{key}.{k}", v) for k, v in value.items()}}
        if isinstance(value, tuple):
            return {"t": [walk(f"{key}.{i}", v) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return {"l": [walk(f"{key}.{i}", v) for i, v in enumerate(value)]}
        if isinstance(value, np.generic):
            return {"v": value.item()}
        if value is None or isinstance(value, bool | int | float | str):
            return {"v": value}
        raise CheckpointError(f"{key} is a {type(value).__name__}; a checkpoint tree holds arrays, tensors and JSON values.")

    return tensors, walk(prefix, tree)


def unpack_tree(tensors: Mapping[str, torch.Tensor], packed: Any) -> Any:
    """Inverse of `pack_tree`."""
    if "a" in packed:
        raw = tensors[packed["a"]].cpu().numpy()
        return raw.view(np.dtype(packed["dtype"])).reshape(packed["shape"]).copy()
    if "T" in packed:
        return tensors[packed["T"]]
    if "d" in packed:
        return {k: unpack_tree(tensors, v) for k, v in packed["d"].items()}
    if "t" in packed:
        return tuple(unpack_tree(tensors, v) for v in packed["t"])
    if "l" in packed:
        return [unpack_tree(tensors, v) for v in packed["l"]]
    return packed["v"]
