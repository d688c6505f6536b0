"""Run folders (manifest lifecycle, checkpoint lookup) and safetensors checkpoints (round trips,
damaged files, optimiser continuation, RNG restore)."""

from __future__ import annotations

import importlib.metadata
import json
import random
import struct
from datetime import datetime

import numpy as np
import pytest
import torch
from torch import nn

from rlsuite.agents.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_module_tensors,
    load_optimizer_state,
    module_tensors,
    optimizer_state,
    read_checkpoint_meta,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from rlsuite.agents.run import (
    RUN_STATUSES,
    RunError,
    RunFolder,
    collect_versions,
    git_commit,
    run_name,
    step_checkpoint_name,
)

torch.set_num_threads(1)


def _create(tmp_path, **kwargs):
    args = {
        "agent": "ppo",
        "env_id": "CartPole-v1",
        "seed": 0,
        "settings": {"seed": 0, "net_arch": [64, 64]},
        "command": "rlsuite train --agent ppo --env CartPole-v1",
        "device": "cpu",
    }
    args.update(kwargs)
    return RunFolder.create(tmp_path, **args)


# --- run folder ---------------------------------------------------------------------------------------


def test_run_name_is_filesystem_safe():
    now = datetime(2026, 11, 29, 15, 30, 0)
    assert run_name("ppo", "CartPole-v1", 0, now) == "ppo-CartPole-v1-s0-20261129-153000"
    assert run_name("dqn", "rlsuite/Highway v0", 3, now) == "dqn-rlsuite_Highway_v0-s3-20261129-153000"
    assert step_checkpoint_name(100_000) == "step_000100000"


def test_create_writes_manifest(tmp_path):
    run = _create(tmp_path, name="r1")
    assert run.path == tmp_path / "r1" and run.checkpoints_dir.is_dir()
    m = json.loads((run.path / "manifest.json").read_text())
    expected_keys = {
        "schema_version", "name", "agent", "env_id", "seed", "settings", "command", "versions", "git_commit",
        "git_dirty", "device", "hostname", "process", "started_at", "heartbeat", "ended_at", "status", "error",
        "final_step", "resumed",
    }  # fmt: skip
    assert set(m) == expected_keys
    assert m["status"] == "running" and m["ended_at"] is None and m["resumed"] == [] and m["schema_version"] == 1
    assert m["settings"] == {"seed": 0, "net_arch": [64, 64]}
    assert m["started_at"].endswith("+00:00")  # ISO-8601 UTC
    assert m["versions"]["torch"] == importlib.metadata.version("torch")
    assert "python" in m["versions"] and "numpy" in m["versions"]
    assert run.manifest == m


def test_create_default_name_and_refuses_non_empty_folder(tmp_path):
    run = _create(tmp_path)
    assert run.path.name.startswith("ppo-CartPole-v1-s0-")
    with pytest.raises(RunError, match="--run-dir"):
        _create(tmp_path, name=run.path.name)
    (tmp_path / "empty").mkdir()
    assert _create(tmp_path, name="empty").path == tmp_path / "empty"  # an empty folder may be reused


def test_open_rejects_non_run_folders(tmp_path):
    with pytest.raises(RunError, match="not an rlsuite run folder"):
        RunFolder.open(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RunError, match="no manifest.json"):
        RunFolder.open(tmp_path / "plain")
    (tmp_path / "plain" / "manifest.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        RunFolder.open(tmp_path / "plain")
    (tmp_path / "plain" / "manifest.json").write_text('{"name": "x"}')
    with pytest.raises(RunError, match="lacks .*agent"):
        RunFolder.open(tmp_path / "plain")
    run = _create(tmp_path, name="ok")
    assert RunFolder.open(run.path).manifest["name"] == "ok"


def test_status_lifecycle(tmp_path):
    run = _create(tmp_path, name="r")
    run.set_status("finished", final_step=5000)
    m = run.manifest
    assert m["status"] == "finished" and m["final_step"] == 5000 and m["ended_at"] is not None
    run.mark_resumed(4096)
    m = run.manifest
    assert m["status"] == "running" and m["ended_at"] is None and m["resumed"][0]["step"] == 4096
    run.set_status("failed", error="RuntimeError: boom")
    assert run.manifest["error"] == "RuntimeError: boom" and run.manifest["final_step"] == 5000
    with pytest.raises(RunError, match=", ".join(RUN_STATUSES)):
        run.set_status("done")
    run.update_manifest(note="hi")
    assert run.manifest["note"] == "hi" and run.manifest["status"] == "failed"
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_find_checkpoint(tmp_path):
    run = _create(tmp_path, name="r")
    with pytest.raises(RunError, match="no checkpoint yet"):
        run.find_checkpoint()
    w = {"w": torch.zeros(2)}
    save_checkpoint(run.checkpoint_path("last"), w, {"step": 300})
    save_checkpoint(run.checkpoint_path("best"), w, {"step": 200})
    save_checkpoint(run.checkpoint_path(step_checkpoint_name(100)), w, {"step": 100})
    save_checkpoint(run.checkpoint_path(step_checkpoint_name(300)), w, {"step": 300})
    (run.checkpoints_dir / ".last.safetensors.abc.tmp").write_bytes(b"partial")
    assert list(run.list_checkpoints()) == ["best", "last", "step_000000100", "step_000000300"]
    assert run.find_checkpoint() == run.checkpoint_path("last")
    assert run.find_checkpoint("best").name == "best.safetensors"
    assert run.find_checkpoint(100).name == "step_000000100.safetensors"
    assert run.find_checkpoint("step_100").name == "step_000000100.safetensors"
    assert run.find_checkpoint("100").name == "step_000000100.safetensors"
    assert run.find_checkpoint("latest") == run.checkpoint_path("last")  # ties go to last
    save_checkpoint(run.checkpoint_path(step_checkpoint_name(400)), w, {"step": 400})
    assert run.find_checkpoint("latest").name == "step_000000400.safetensors"
    with pytest.raises(RunError, match="available: best, last, step_000000100"):
        run.find_checkpoint("step_7")


def test_provenance_helpers_do_not_raise():
    versions = collect_versions()
    assert versions["numpy"] == np.__version__
    commit, dirty = git_commit()
    assert (commit is None) == (dirty is None) or commit is not None
    if commit is not None:
        assert len(commit) == 40


# --- checkpoint files ---------------------------------------------------------------------------------


def test_round_trip_tensors_and_meta(tmp_path):
    path = tmp_path / "c.safetensors"
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tensors = {
        "a": base,
        "a_t": base.t(),  # non-contiguous view sharing storage with "a"
        "b": torch.tensor([1, 2, 3], dtype=torch.int64),
        "c": torch.tensor(2.5, dtype=torch.float64),
    }
    meta = {"step": 123, "settings": {"net_arch": [64, 64]}, "np": np.float32(0.5), "none": None}
    save_checkpoint(path, tensors, meta)
    loaded, loaded_meta = load_checkpoint(path)
    assert set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(loaded[k], v) and loaded[k].dtype == v.dtype
    assert loaded_meta == {"step": 123, "settings": {"net_arch": [64, 64]}, "np": 0.5, "none": None,
                           "format": "rlsuite-checkpoint/1"}  # fmt: skip
    assert read_checkpoint_meta(path) == loaded_meta
    assert "format" not in meta  # the caller's dict is left alone

    # No pickle: an 8-byte little-endian header length, then a JSON header that holds our metadata.
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    assert json.loads(header["__metadata__"]["rlsuite"])["step"] == 123
    assert b"\x80\x04" not in raw[:2] and not raw.startswith(b"PK")  # neither a pickle nor a torch zip


def test_save_rejects_nan_and_non_json(tmp_path):
    path = tmp_path / "c.safetensors"
    with pytest.raises(CheckpointError, match=r"meta\['eval'\]\['mean'\] is NaN"):
        save_checkpoint(path, {}, {"eval": {"mean": float("nan")}})
    with pytest.raises(CheckpointError, match="plain JSON"):
        save_checkpoint(path, {}, {"obj": object()})
    with pytest.raises(CheckpointError, match="not a torch.Tensor"):
        save_checkpoint(path, {"x": np.zeros(2)}, {})
    assert not path.exists()


def test_damaged_or_foreign_files_raise_checkpoint_error(tmp_path):
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, {"w": torch.randn(100, 100)}, {"step": 1})
    raw = path.read_bytes()
    cases = {
        "missing": None,
        "empty": b"",
        "header_cut": raw[:20],
        "body_cut": raw[: len(raw) // 2],
        "garbage": b"\x00" * 8 + b"hello world",
    }
    for name, data in cases.items():
        target = tmp_path / f"{name}.safetensors"
        if data is not None:
            target.write_bytes(data)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(target)
        assert str(target) in str(info.value) and "best, last or a step_N" in str(info.value)
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(1)}, str(foreign))
    with pytest.raises(CheckpointError, match="not an rlsuite checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not an rlsuite checkpoint"):
        read_checkpoint_meta(foreign)


def test_module_tensors_strict(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    tensors = module_tensors("policy", net)
    assert "policy.0.weight" in tensors and "policy.1.running_mean" in tensors
    save_checkpoint(tmp_path / "c.safetensors", tensors, {})
    loaded, _ = load_checkpoint(tmp_path / "c.safetensors")
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    load_module_tensors("policy", other, loaded)
    for (k, a), b in zip(net.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(CheckpointError, match="missing"):
        load_module_tensors("policy", nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2), nn.Linear(2, 2)), loaded)
    with pytest.raises(CheckpointError, match="shapes"):
        load_module_tensors("policy", nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 5)), loaded)


def _train_steps(net: nn.Module, opt: torch.optim.Optimizer, xs: torch.Tensor) -> None:
    for x in xs:
        opt.zero_grad()
        loss = net(x).pow(2).mean()  # (B, 1) -> scalar
        loss.backward()
        opt.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.95)),
    lambda p: torch.optim.SGD(p, lr=1e-2, momentum=0.9),
])  # fmt: skip
def test_optimizer_continues_bit_identically(tmp_path, make_opt):
    torch.manual_seed(0)
    xs = torch.randn(5, 8, 3)  # 5 steps of (B=8, 3)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    opt = make_opt(net.parameters())
    _train_steps(net, opt, xs[:3])

    opt_t, opt_m = optimizer_state("optimizer", opt)
    save_checkpoint(tmp_path / "c.safetensors", {**module_tensors("policy", net), **opt_t}, {"step": 3, **opt_m})

    # Reference: keep going without saving.
    _train_steps(net, opt, xs[3:])

    tensors, meta = load_checkpoint(tmp_path / "c.safetensors")
    torch.manual_seed(123)  # a differently initialised network, fully overwritten by the checkpoint
    net2 = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    opt2 = make_opt(net2.parameters())
    load_module_tensors("policy", net2, tensors)
    load_optimizer_state("optimizer", opt2, tensors, meta)
    _train_steps(net2, opt2, xs[3:])
    for a, b in zip(net.parameters(), net2.parameters(), strict=True):
        assert torch.equal(a, b)
    # The stored payload alone also works (callers may keep it under their own key).
    opt3 = make_opt(net2.parameters())
    load_optimizer_state("optimizer", opt3, tensors, meta["optimizer"])
    groups = opt3.state_dict()["param_groups"]
    assert groups == opt2.state_dict()["param_groups"]
    assert all(not isinstance(v, list) or k == "params" for k, v in groups[0].items())  # betas are tuples again


def test_optimizer_state_rejects_other_network(tmp_path):
    net = nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    t, m = optimizer_state("opt", opt)
    bigger = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    with pytest.raises(CheckpointError, match="parameters"):
        load_optimizer_state("opt", torch.optim.Adam(bigger.parameters()), t, m)


def test_rng_restore_reproduces_draws(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gaussian in python's state
    np.random.standard_normal()  # and in numpy's
    t, m = rng_state()
    save_checkpoint(tmp_path / "c.safetensors", t, m)
    expected = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.standard_normal(), torch.rand(3))
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    tensors, meta = load_checkpoint(tmp_path / "c.safetensors")
    restore_rng_state(tensors, meta)
    got = (random.random(), random.gauss(0, 1), np.random.rand(3), np.random.standard_normal(), torch.rand(3))
    assert got[0] == expected[0] and got[1] == expected[1]
    assert np.array_equal(got[2], expected[2]) and got[3] == expected[3]
    assert torch.equal(got[4], expected[4])
