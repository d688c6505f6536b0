"""An exported policy file (`rlsuite export`) as an agent: onnxruntime acts, the harness evaluates.

`load_onnx_policy(path)` reads the file's rlsuite metadata (spaces, recurrent state shape, what was
exported), opens an onnxruntime session and returns an `OnnxPolicy`, which has the `Policy` methods every
agent has, so `rlsuite evaluate --onnx FILE --env ID` measures the deployed file with the same protocol
as the run it came from. The file's spaces are stored as JSON (`space_to_json` / `space_from_json`), so
the harness can refuse an env whose spaces differ before it runs a step.

Only onnxruntime and NumPy are needed here (no torch): this is also what a deployment reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlsuite.agents.interface import AgentError

FORMAT = "rlsuite-policy/1"
"""The value of the `format` metadata key in every exported file; a file without it was not written by rlsuite."""

INSTALL_HINT = "install the export extra: pip install 'rlsuite[export]' (onnx and onnxruntime)"


class ExportError(AgentError):
    """A user-facing problem with exporting a policy or reading an exported file; says what to do."""


# ------------------------------------------------------------------------------------------ spaces as JSON


def _number(x: float) -> float | str:
    """JSON has no infinities: they travel as the strings "inf" / "-inf"."""
    return x if np.isfinite(x) else ("inf" if x > 0 else "-inf")


def _bound(values: np.ndarray) -> Any:
    """A Box bound as one number when all its entries are equal (images: 0 and 255), else a nested list."""
    flat = values.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return _number(float(flat[0]))
    return np.vectorize(lambda v: _number(float(v)), otypes=[object])(values).tolist()


def _unbound(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    as_float = np.vectorize(float, otypes=[np.float64])(np.asarray(value, dtype=object))
    return np.broadcast_to(as_float, shape).astype(dtype)


def space_to_json(space: gym.Space) -> dict[str, Any]:
    """Box, Discrete, MultiDiscrete, MultiBinary and Dict of these as plain JSON values (exact round trip)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": _bound(space.low), "high": _bound(space.high)}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": space.nvec.tolist(), "start": space.start.tolist(),
                "dtype": str(space.dtype)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    raise ExportError(f"cannot describe the space {space} in an exported file; supported: Box, Discrete, "
                      "MultiDiscrete, MultiBinary and Dict of these.")


def space_from_json(data: dict[str, Any]) -> gym.Space:
    """Inverse of `space_to_json`."""
    kind = data.get("type")
    if kind == "Box":
        shape = tuple(int(d) for d in data["shape"])
        dtype = np.dtype(data["dtype"])
        return spaces.Box(_unbound(data["low"], shape, dtype), _unbound(data["high"], shape, dtype), shape, dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data["start"]))
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(data["nvec"]), dtype=np.dtype(data["dtype"]), start=np.asarray(data["start"]))
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Dict":
        return spaces.Dict({key: space_from_json(sub) for key, sub in data["spaces"].items()})
    raise ExportError(f"unknown space type {kind!r} in the exported file's metadata.")


# ------------------------------------------------------------------------------------------ the policy


def open_session(model: str | bytes) -> Any:
    """An onnxruntime CPU session of a file path or model bytes; ExportError when it cannot be read."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError(f"running an exported policy needs onnxruntime; {INSTALL_HINT}.") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the exporter's unused-initialiser notes are not the user's concern
    # no busy-waiting worker threads between the small calls of an episode loop (they burn CPU the env needs)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own classes (InvalidProtobuf, Fail, ...) for unreadable models
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"onnxruntime cannot load it as an ONNX model ({first}); is the file complete? "
                          "Export it again with `rlsuite export RUN_DIR --out FILE`.") from None


class OnnxPolicy:
    """Acts with an exported graph in onnxruntime; keeps the LSTM state of recurrent graphs between calls."""

    def __init__(self, session: Any, metadata: dict[str, Any], source: str = "") -> None:
        self.session = session
        self.metadata = metadata
        self.source = source
        self.observation_space = space_from_json(metadata["observation_space"])
        self.action_space = space_from_json(metadata["action_space"])
        self.env_id: str = metadata["env_id"]
        self.obs_inputs: list[str] = list(metadata["inputs"]["observation"])
        self.obs_keys: list[str] | None = (list(metadata["inputs"]["observation_keys"])
                                           if isinstance(self.observation_space, spaces.Dict) else None)
        state = metadata.get("recurrent_state")
        self.state_shape: tuple[int, int] | None = (int(state["layers"]), int(state["hidden"])) if state else None
        self._dtypes = {arg.name: _ORT_DTYPES.get(arg.type) for arg in session.get_inputs()}
        self._state: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self, num_envs: int) -> None:
        if self.state_shape is not None:
            layers, hidden = self.state_shape
            zeros = np.zeros((layers, num_envs, hidden), dtype=np.float32)
            self._state = (zeros, zeros.copy())

    def feeds(self, obs: Any) -> dict[str, np.ndarray]:
        """The graph's observation inputs for a batch of env observations, in the inputs' dtypes."""
        arrays = [obs[key] for key in self.obs_keys] if self.obs_keys is not None else [obs]
        return {name: np.ascontiguousarray(np.asarray(value, dtype=self._dtypes[name]))
                for name, value in zip(self.obs_inputs, arrays, strict=True)}

    def act(self, obs: Any, episode_start: np.ndarray, deterministic: bool = True) -> np.ndarray:
        if not deterministic:
            raise ExportError("an exported policy acts deterministically (argmax or mean action); evaluate it "
                              "with --deterministic, or evaluate the run folder itself for sampled actions.")
        feeds = self.feeds(obs)
        if self.state_shape is None:
            return self.session.run(["action"], feeds)[0]
        batch = len(episode_start)
        if self._state is None or self._state[0].shape[1] != batch:
            self.reset(batch)
        assert self._state is not None
        feeds.update(episode_start=np.asarray(episode_start, dtype=bool), lstm_h=self._state[0], lstm_c=self._state[1])
        action, h, c = self.session.run(["action", "lstm_h_out", "lstm_c_out"], feeds)
        self._state = (h, c)
        return action


_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(uint8)": np.uint8,
               "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32,
               "tensor(int64)": np.int64, "tensor(bool)": np.bool_, "tensor(float16)": np.float16}


def read_metadata(session: Any, source: str) -> dict[str, Any]:
    """The rlsuite metadata of a loaded session; ExportError for an ONNX file that rlsuite did not write."""
    props = dict(session.get_modelmeta().custom_metadata_map)
    if props.get("format") != FORMAT:
        found = f"format={props['format']!r}" if "format" in props else "no rlsuite metadata"
        raise ExportError(f"{source} is an ONNX model, but not a policy exported by rlsuite ({found}; expected "
                          f"format={FORMAT!r}); export one with `rlsuite export RUN_DIR --out FILE`.")
    try:
        return {key: json.loads(value) for key, value in props.items() if key != "format"}
    except json.JSONDecodeError as err:
        raise ExportError(f"{source} has damaged rlsuite metadata ({err}); export it again.") from None


def load_onnx_policy(path: Path) -> OnnxPolicy:
    """The policy in an exported file; ExportError for a missing, corrupted or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path} does not exist; give the file `rlsuite export RUN_DIR --out FILE` wrote.")
    session = open_session(str(path))
    return OnnxPolicy(session, read_metadata(session, str(path)), source=str(path))
