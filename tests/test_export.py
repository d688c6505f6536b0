"""`rlsuite export` and `rlsuite evaluate --onnx` (agents/export.py, agents/onnx_policy.py).

The oracle is the PyTorch policy the registry loads, the object evaluation acts with: every export is run
in onnxruntime beside it on real episodes, and the tests check that this verification holds for each
agent family and observation kind, that it refuses a graph that differs (a negative control), that the
file's evaluation equals the run's episode by episode, and that bad files get a clear error.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from typer.testing import CliRunner  # noqa: E402

from rlsuite.agents import export as export_mod  # noqa: E402
from rlsuite.agents.export import ATOL, RTOL, ExportError, export_run  # noqa: E402
from rlsuite.agents.onnx_policy import FORMAT, load_onnx_policy, space_from_json, space_to_json  # noqa: E402
from rlsuite.agents.registry import load_policy  # noqa: E402
from rlsuite.cli import app  # noqa: E402
from rlsuite.train import train  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "export.md"


def _train(tmp_path: Path, agent: str, env_id: str, steps: int, *sets: str, name: str = "run") -> Path:
    run, result = train(agent, env_id, cli_values={"total_steps": steps, "seed": 0},
                        set_args=["eval_every=0", "tensorboard=false", *sets], run_dir=tmp_path / name,
                        show_progress=False)
    assert result.status == "finished"
    return run.path


def _export(run_dir: Path, out: Path, **kwargs: int) -> export_mod.ExportResult:
    result = export_run(run_dir, out, checkpoint="last", **kwargs)
    assert out.is_file()
    return result


def _inputs(path: Path) -> dict[str, tuple[str, list]]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return {arg.name: (arg.type, arg.shape) for arg in session.get_inputs()}


# ------------------------------------------------------------------------------- parity, family by family


def test_ppo_mlp_with_observation_normalisation_discrete(tmp_path: Path) -> None:
    """The normaliser's statistics are inside the graph: the file is fed raw CartPole observations and acts
    exactly as the PyTorch policy (which normalises in NumPy); metadata says what was exported."""
    run = _train(tmp_path, "ppo", "CartPole-v1", 512, "n_envs=2", "n_steps=128", "normalize_obs=true")
    result = _export(run, tmp_path / "policy.onnx")
    loaded = load_policy(run, "last")
    stats = loaded.policy.obs_normalizer.stats[""]  # type: ignore[attr-defined]
    assert np.abs(stats.mean).max() > 1e-3  # statistics that matter: not the identity
    v = result.verification
    assert v.episodes >= 4 and v.max_abs_diff == 0.0
    meta = load_onnx_policy(tmp_path / "policy.onnx").metadata
    assert meta["agent"] == "ppo" and meta["env_id"] == "CartPole-v1" and meta["checkpoint"] == "last"
    assert meta["checkpoint_step"] == loaded.step and meta["settings"]["normalize_obs"] is True
    assert meta["opset"] == export_mod.OPSET and meta["rlsuite_version"]
    assert meta["verification"]["steps"] == v.steps
    assert _inputs(tmp_path / "policy.onnx") == {"obs": ("tensor(float)", ["batch", 4])}
    # a hand check of one observation against the PyTorch policy, far from the normaliser's mean
    obs = (stats.mean + 3 * np.sqrt(stats.var))[None].astype(np.float32)
    session = ort.InferenceSession(str(tmp_path / "policy.onnx"))
    np.testing.assert_array_equal(session.run(["action"], {"obs": obs})[0],
                                  loaded.policy.act(obs, np.ones(1, dtype=bool)))


def test_box_actions_clipped_and_tanh_squashed(tmp_path: Path) -> None:
    """A2C on Pendulum with clipped Gaussian actions and PPO with tanh-squashed ones: the graph's actions are
    in the Box, within the stated tolerance of PyTorch's."""
    for agent, squash in (("a2c", "clip"), ("ppo", "tanh")):
        run = _train(tmp_path, agent, "Pendulum-v1", 256, "n_envs=2", f"squash={squash}", "normalize_obs=true",
                     "log_std_init=1.0", name=f"{agent}-{squash}")
        out = tmp_path / f"{agent}.onnx"
        result = _export(run, out, verify_episodes=2, verify_max_steps=220)
        assert result.verification.steps >= 200 and result.verification.max_abs_diff <= ATOL
        policy = load_onnx_policy(out)
        policy.reset(3)
        obs = np.array([[1.0, 0.0, 8.0], [-1.0, 0.0, -8.0], [0.0, 1.0, 0.0]], dtype=np.float32)
        action = policy.act(obs, np.ones(3, dtype=bool))
        assert action.dtype == np.float32 and action.shape == (3, 1) and np.all(np.abs(action) <= 2.0)
        torch_action = load_policy(run, "last").policy.act(obs, np.ones(3, dtype=bool))
        np.testing.assert_allclose(action, torch_action, atol=ATOL, rtol=RTOL)


def test_recurrent_ppo_and_drqn_carry_state_across_resets(tmp_path: Path) -> None:
    """LSTM policies (PPO recurrent, DRQN): state in and out of the graph, cleared by episode_start; the
    verification runs whole episodes on 2 sub-envs, so resets happen while the other row keeps its state."""
    for agent, sets in (("ppo", ("recurrent=true", "n_envs=2", "n_steps=64", "lstm_hidden=16")),
                        ("dqn", ("recurrent=true", "learning_starts=100", "lstm_hidden=16", "burn_in=2",
                                 "sequence_length=4"))):
        run = _train(tmp_path, agent, "CartPole-v1", 300, *sets, name=agent)
        out = tmp_path / f"{agent}.onnx"
        result = _export(run, out, verify_episodes=6)
        assert result.verification.episodes >= 6
        inputs = _inputs(out)
        assert inputs["episode_start"][0] == "tensor(bool)" and inputs["lstm_h"] == ("tensor(float)", [1, "batch", 16])
        # the state matters: one step from a non-zero state differs from one from zeros somewhere
        policy = load_onnx_policy(out)
        session = policy.session
        rng = np.random.default_rng(0)
        obs = rng.normal(size=(64, 4)).astype(np.float32)
        zeros = np.zeros((1, 64, 16), np.float32)
        state = rng.normal(size=(1, 64, 16)).astype(np.float32)
        keep = session.run(None, {"obs": obs, "episode_start": np.zeros(64, bool), "lstm_h": state, "lstm_c": state})
        fresh = session.run(None, {"obs": obs, "episode_start": np.zeros(64, bool), "lstm_h": zeros, "lstm_c": zeros})
        cleared = session.run(None, {"obs": obs, "episode_start": np.ones(64, bool), "lstm_h": state, "lstm_c": state})
        assert not np.allclose(keep[1], fresh[1])
        np.testing.assert_array_equal(cleared[0], fresh[0])
        np.testing.assert_allclose(cleared[1], fresh[1], atol=1e-6)


def test_nature_cnn_on_atari_frames(tmp_path: Path) -> None:
    """PPO's Nature CNN on Pong's uint8 (4, 84, 84) frame stacks: the /255 scaling is in the graph, which
    takes the env's uint8 frames."""
    run = _train(tmp_path, "ppo", "ALE/Pong-v5", 128, "n_envs=2", "n_steps=64", "n_epochs=1")
    out = tmp_path / "pong.onnx"
    result = _export(run, out, verify_episodes=1, verify_max_steps=64)
    assert result.verification.steps == 64
    assert _inputs(out) == {"obs": ("tensor(uint8)", ["batch", 4, 84, 84])}
    meta = load_onnx_policy(out).metadata
    assert meta["env_preset"] == "dqn-nature"


def test_dict_observation_with_audio(tmp_path: Path) -> None:
    """SpokenReach: a Dict of a log-mel spectrogram (through the SequenceEncoder's Conv1d + LSTM) and a state
    vector (normalised), Box actions; one graph input per key."""
    run = _train(tmp_path, "ppo", "rlsuite/SpokenReach-v0", 256, "n_envs=4", "n_steps=32", "n_epochs=1",
                 "normalize_obs=true")
    out = tmp_path / "spoken.onnx"
    _export(run, out, verify_episodes=2, verify_max_steps=300)
    names = list(_inputs(out))
    policy = load_onnx_policy(out)
    assert names == [f"obs.{key}" for key in sorted(policy.observation_space.spaces)]
    assert len(names) >= 2 and any(len(shape) == 3 for _, shape in _inputs(out).values())  # (batch, T, F) audio


@pytest.mark.parametrize("agent,env_id,steps,sets", [
    ("reinforce", "CartPole-v1", 300, ("n_envs=2",)),
    ("dqn", "CartPole-v1", 300, ("learning_starts=100", "dueling=true")),
    ("sb3-ppo", "CartPole-v1", 256, ("n_envs=2", "n_steps=64", "batch_size=64", "n_epochs=1")),
    ("sb3-sac", "Pendulum-v1", 200, ("learning_starts=100",)),
    pytest.param("sb3-td3", "Pendulum-v1", 200, ("learning_starts=100",), marks=pytest.mark.slow),
    # Discrete observations: one-hot in our MLPEncoder, and in SB3's preprocessing before our extractor
    ("ppo", "FrozenLake-v1", 256, ("n_envs=2", "n_steps=64")),
    ("sb3-dqn", "FrozenLake-v1", 200, ("learning_starts=100",)),
    ("sb3-qrdqn", "CartPole-v1", 300, ("learning_starts=100",)),
    ("sb3-recurrent-ppo", "CartPole-v1", 128, ("n_envs=2", "n_steps=64", "batch_size=64", "n_epochs=1")),
    # a Dict of audio, a channel-last uint8 image (SB3 holds it channel-first: the graph transposes) and a vector
    ("sb3-ppo", "rlsuite/SpokenReachImage-v0", 64, ("n_envs=2", "n_steps=32", "batch_size=64", "n_epochs=1")),
    # the preset's listener and keypoint pointer (SpatialKeypoints on the image, the audio classifier's softmax)
    ("ppo", "rlsuite/SpokenReachImage-v0", 64, ("n_envs=2", "n_steps=32", "n_epochs=1")),
])
def test_other_agents_export_and_verify(tmp_path: Path, agent: str, env_id: str, steps: int, sets: tuple[str, ...]) -> None:
    run = _train(tmp_path, agent, env_id, steps, *sets)
    result = _export(run, tmp_path / "policy.onnx", verify_episodes=2, verify_max_steps=400)
    assert result.verification.steps > 0
    assert result.metadata["agent"] == agent


# ------------------------------------------------------------------------------- refusing a differing graph


def test_a_graph_that_differs_is_refused_and_nothing_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control: the same export with one output weight of the traced copy changed must fail the
    verification, leave no file (not even a temp file) and keep an existing file untouched."""
    run = _train(tmp_path, "ppo", "CartPole-v1", 256, "n_envs=2", "n_steps=128")
    real = export_mod.policy_graph

    def tampered(loaded: object) -> export_mod.PolicyGraph:
        graph = real(loaded)  # type: ignore[arg-type]
        head = graph.act.network.actor.linear  # type: ignore[union-attr]
        with __import__("torch").no_grad():
            head.bias[0] += 100.0  # always action 0
        return graph

    monkeypatch.setattr(export_mod, "policy_graph", tampered)
    out = tmp_path / "policy.onnx"
    out.write_bytes(b"previous")
    with pytest.raises(ExportError, match="differs from the PyTorch policy"):
        export_run(run, out, checkpoint="last")
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx", "run"]


# ------------------------------------------------------------------------------- evaluation through the harness


def test_cli_export_then_evaluate_onnx_equals_the_run(tmp_path: Path) -> None:
    """`rlsuite export` then `rlsuite evaluate --onnx`: the same seeds give the same return for every episode
    as `rlsuite evaluate RUN_DIR`, and the file is stored in the database as its own agent."""
    run = _train(tmp_path, "ppo", "CartPole-v1", 1024, "n_envs=4", "n_steps=128", "normalize_obs=true")
    runner = CliRunner()
    out = tmp_path / "policy.onnx"
    exported = runner.invoke(app, ["export", str(run), "--checkpoint", "last", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    db = tmp_path / "results.db"
    by_run = runner.invoke(app, ["evaluate", str(run), "--checkpoint", "last", "--episodes", "6", "--db", str(db), "--json"])
    by_file = runner.invoke(app, ["evaluate", "--onnx", str(out), "--env", "CartPole-v1", "--episodes", "6",
                                  "--db", str(db), "--json"])
    assert by_run.exit_code == 0 and by_file.exit_code == 0, by_run.output + by_file.output
    a, b = json.loads(by_run.stdout), json.loads(by_file.stdout)
    assert b["agent"] == "ppo-onnx" and b["run_id"].startswith("onnx:") and b["seeds"] == a["seeds"]
    assert b["mean"] == a["mean"] and b["mean_length"] == a["mean_length"]
    from rlsuite.evaluation.store import ResultsStore

    with ResultsStore(db, create=False) as store:
        by_seed = [{ep.seed: (ep.episode_return, ep.length) for ep in store.episodes(out["eval_id"])} for out in (a, b)]
        assert {r.run_id for r in store.runs()} == {a["run_id"], b["run_id"]}
    assert len(by_seed[0]) == 6 and by_seed[0] == by_seed[1]


def test_corrupted_foreign_or_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    runner = CliRunner()
    corrupted = tmp_path / "corrupted.onnx"
    corrupted.write_bytes(b"\x08\x07garbage" * 50)
    foreign = tmp_path / "foreign.onnx"
    node = onnx.helper.make_node("Relu", ["x"], ["y"])
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), str(foreign))
    for path, message in ((corrupted, "cannot load it as an ONNX model"), (foreign, "not a policy exported by rlsuite"),
                          (tmp_path / "missing.onnx", "does not exist")):
        result = runner.invoke(app, ["evaluate", "--onnx", str(path), "--env", "CartPole-v1", "--db", str(tmp_path / "r.db")])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "r.db").exists()
    missing_run = runner.invoke(app, ["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "p.onnx")])
    assert missing_run.exit_code == 2 and "Traceback" not in missing_run.output
    assert not (tmp_path / "p.onnx").exists()


def test_spaces_round_trip_through_json() -> None:
    from gymnasium import spaces

    for space in (spaces.Box(-np.inf, np.inf, (3,), np.float32), spaces.Box(0, 255, (4, 84, 84), np.uint8),
                  spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, 2.5]), dtype=np.float64), spaces.Discrete(5, start=1),
                  spaces.MultiDiscrete([3, 4]), spaces.MultiBinary(3),
                  spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(-1, 1, (2, 8), np.float32)})):
        assert space_from_json(json.loads(json.dumps(space_to_json(space)))) == space


# ------------------------------------------------------------------------------- the docs' example


def test_docs_example_runs_with_onnxruntime_and_gymnasium_only(tmp_path: Path) -> None:
    """The loop in docs/export.md, run as written on an exported CartPole policy in a fresh Python where torch
    and rlsuite cannot be imported; it checks the file's format marker and plays a whole episode."""
    run = _train(tmp_path, "ppo", "CartPole-v1", 256, "n_envs=2", "n_steps=128", "normalize_obs=true")
    _export(run, tmp_path / "policy.onnx", verify_episodes=1)
    code = re.search(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert code is not None and FORMAT in code.group(1)
    assert len(code.group(1).strip().splitlines()) <= 25
    (tmp_path / "example.py").write_text(code.group(1))
    blocked = ("import runpy, sys; sys.modules['torch'] = None; sys.modules['rlsuite'] = None; "
               "runpy.run_path('example.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", blocked], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"return [0-9.]+ in [0-9]+ steps", done.stdout), done.stdout
