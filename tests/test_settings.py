"""Settings: type coercion, YAML layering (defaults < preset < config < CLI < --set), help text, errors;
and the atomic file writer that manifests and checkpoints rely on."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from rlsuite.agents import fileio
from rlsuite.agents.settings import (
    ConfigError,
    TrainSettings,
    coerce_field,
    field_help,
    load_yaml_mapping,
    parse_set_args,
    preset_path,
    resolve_settings,
    select_block,
    settings_from_dict,
    settings_to_dict,
)


@dataclass
class ToySettings(TrainSettings):
    """A made-up agent's settings, declared the way real agents declare theirs."""

    learning_rate: float = 3e-4
    """Adam step size."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the MLP."""
    schedule: Literal["constant", "linear"] = "linear"
    """How the learning rate decays."""
    target_kl: float | None = None
    """Stop the epoch early above this KL (none = never)."""
    norm_obs: bool = False
    """Normalise observations with running statistics."""

    def validate(self) -> None:
        super().validate()
        self.require(self.learning_rate > 0, "learning_rate", "must be > 0")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- coercion ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("total_steps", "5000", 5000),
        ("total_steps", "100_000", 100_000),
        ("total_steps", "1e6", 1_000_000),  # PyYAML reads 1e6 as a string
        ("total_steps", 2.0e5, 200_000),
        ("learning_rate", "3e-4", 3e-4),
        ("learning_rate", 1, 1.0),
        ("norm_obs", "yes", True),
        ("norm_obs", "FALSE", False),
        ("norm_obs", "1", True),
        ("norm_obs", "0", False),
        ("norm_obs", True, True),
        ("net_arch", "64,64", (64, 64)),
        ("net_arch", "[128, 32]", (128, 32)),
        ("net_arch", [256], (256,)),
        ("net_arch", "", ()),
        ("schedule", "constant", "constant"),
        ("target_kl", "none", None),
        ("target_kl", "null", None),
        ("target_kl", None, None),
        ("target_kl", "0.02", 0.02),
        ("env_id", "rlsuite/Highway-v0", "rlsuite/Highway-v0"),
    ],
)
def test_coerce_field_converts_yaml_and_set_values(name, raw, expected):
    value = coerce_field(ToySettings, name, raw)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw", "needle"),
    [
        ("total_steps", "lots", "int"),
        ("total_steps", True, "int"),  # bools are not ints here
        ("total_steps", "1.5", "whole number"),
        ("learning_rate", "fast", "float"),
        ("learning_rate", "nan", "finite"),
        ("norm_obs", "maybe", "true/false"),
        ("net_arch", "64,wide", "tuple[int, ...]"),
        ("env_id", 3, "quote it"),
        ("seed", None, "int"),
    ],
)
def test_coerce_field_rejects_wrong_types_with_field_and_doc(name, raw, needle):
    with pytest.raises(ConfigError) as info:
        coerce_field(ToySettings, name, raw)
    message = str(info.value)
    assert name in message and needle in message and repr(raw) in message
    assert field_help(ToySettings)[name] in message


def test_literal_error_lists_accepted_values():
    with pytest.raises(ConfigError, match="'constant', 'linear'"):
        coerce_field(ToySettings, "schedule", "cosine")
    with pytest.raises(ConfigError, match="'auto', 'sync', 'async', 'vector_entry_point'"):
        coerce_field(ToySettings, "vectorization", "threads")


def test_field_help_reads_docstrings_of_base_and_subclass():
    docs = field_help(ToySettings)
    assert docs["learning_rate"] == "Adam step size."
    assert docs["n_envs"] == "Number of sub-envs stepped together in one vector env."
    assert list(docs)[:2] == ["env_id", "seed"]
    # every field of the base class is documented
    assert set(field_help(TrainSettings)) == set(TrainSettings.__dataclass_fields__)


def test_parse_set_args():
    assert parse_set_args(["a=1", "net_arch=64,64", "x=", "a=2", "total-steps=5"]) == {
        "a": "2",
        "net_arch": "64,64",
        "x": "",
        "total_steps": "5",
    }
    for bad in ["novalue", "=3", "two words=1"]:
        with pytest.raises(ConfigError, match="key=value"):
            parse_set_args([bad])


# --- YAML files and layering --------------------------------------------------------------------------


def test_load_yaml_mapping_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml_mapping(tmp_path / "missing.yaml")
    bad = _write(tmp_path / "bad.yaml", "seed: 1\nn_envs: [1, 2\ntotal_steps: 3\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+"):
        load_yaml_mapping(bad)
    listing = _write(tmp_path / "list.yaml", "- seed\n- 1\n")
    with pytest.raises(ConfigError, match="top level is a list"):
        load_yaml_mapping(listing)
    assert load_yaml_mapping(_write(tmp_path / "empty.yaml", "")) == {}


def test_malformed_yaml_names_the_right_line(tmp_path):
    bad = _write(tmp_path / "bad.yaml", "seed: 1\ntotal_steps: 2\nn_envs: : 3\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_yaml_mapping(bad)


def test_select_block_flat_and_blocked():
    flat = {"seed": 1, "n_envs": 2}
    assert select_block(flat, "CartPole-v1", "x") == flat
    blocked = {"default": {"seed": 1, "n_envs": 2}, "CartPole-v1": {"n_envs": 4}, "Acrobot-v1": {"seed": 9}}
    assert select_block(blocked, "CartPole-v1", "x") == {"seed": 1, "n_envs": 4}
    assert select_block(blocked, "Pendulum-v1", "x") == {"seed": 1, "n_envs": 2}
    assert select_block({"CartPole-v1": {"seed": 3}}, "CartPole-v1", "x") == {"seed": 3}
    assert select_block({"default": None, "CartPole-v1": {"seed": 3}}, "CartPole-v1", "x") == {"seed": 3}
    with pytest.raises(ConfigError, match="mixes"):
        select_block({"seed": 1, "CartPole-v1": {"n_envs": 4}}, "CartPole-v1", "x")


def test_resolve_layers_later_wins(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    # Each layer sets one field that only it touches, plus fields later layers override.
    _write(
        presets / "toy.yaml",
        "default:\n  seed: 1\n  n_envs: 2\n  total_steps: 100\n  eval_every: 7\n  learning_rate: 0.1\n"
        "CartPole-v1:\n  torch_threads: 3\n  n_envs: 3\n",
    )
    config = _write(tmp_path / "run.yaml", "n_envs: 4\ntotal_steps: 200\nseed: 2\nnet_arch: [32, 16]\n")
    s = resolve_settings(
        ToySettings,
        "toy",
        "CartPole-v1",
        config_file=config,
        cli_values={"total_steps": 300, "seed": None, "norm_obs": True},
        set_args=["total_steps=400", "schedule=constant"],
        preset_dir=presets,
    )
    assert s.env_id == "CartPole-v1"
    assert s.learning_rate == 0.1  # preset default block
    assert s.eval_every == 7  # preset default block
    assert s.torch_threads == 3  # preset env block
    assert s.n_envs == 4  # config beats preset
    assert s.net_arch == (32, 16)  # config
    assert s.seed == 2  # cli None is skipped, config stands
    assert s.norm_obs is True  # cli
    assert s.total_steps == 400  # --set beats cli
    assert s.schedule == "constant"
    assert s.eval_episodes == 10  # dataclass default


def test_resolve_without_preset_uses_defaults(tmp_path):
    s = resolve_settings(ToySettings, "toy", "Acrobot-v1", preset_dir=tmp_path)
    assert s == ToySettings(env_id="Acrobot-v1")


def test_unknown_key_names_key_source_and_close_match(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    _write(presets / "toy.yaml", "learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as info:
        resolve_settings(ToySettings, "toy", "CartPole-v1", preset_dir=presets)
    message = str(info.value)
    assert "'learning_rat'" in message and "learning_rate" in message and str(presets / "toy.yaml") in message
    assert "Accepted fields" in message and "net_arch" in message

    with pytest.raises(ConfigError, match=r"'n_env' in --set\. Did you mean: n_envs"):
        resolve_settings(ToySettings, "toy", "CartPole-v1", set_args=["n_env=3"], preset_dir=tmp_path)
    config = _write(tmp_path / "c.yaml", "default:\n  sed: 1\n")
    with pytest.raises(ConfigError, match="'sed' in config file"):
        resolve_settings(ToySettings, "toy", "CartPole-v1", config_file=config, preset_dir=tmp_path)


def test_resolve_validates_values(tmp_path):
    with pytest.raises(ConfigError, match="n_envs"):
        resolve_settings(ToySettings, "toy", "CartPole-v1", set_args=["n_envs=0"], preset_dir=tmp_path)
    with pytest.raises(ConfigError, match="learning_rate"):  # subclass validate extends the base
        resolve_settings(ToySettings, "toy", "CartPole-v1", set_args=["learning_rate=-1"], preset_dir=tmp_path)
    with pytest.raises(ConfigError, match="cuda:N"):
        resolve_settings(ToySettings, "toy", "CartPole-v1", set_args=["device=gpu"], preset_dir=tmp_path)
    with pytest.raises(ConfigError, match="'linear'"):
        resolve_settings(ToySettings, "toy", "CartPole-v1", set_args=["schedule=cosine"], preset_dir=tmp_path)
    with pytest.raises(ConfigError, match="--env"):
        resolve_settings(ToySettings, "toy", "CartPole-v1", set_args=["env_id=Acrobot-v1"], preset_dir=tmp_path)
    assert resolve_settings(ToySettings, "toy", "CartPole-v1", set_args=["device=cuda:1"], preset_dir=tmp_path).device == "cuda:1"


def test_config_names_a_recipe_beside_the_preset_or_a_file(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    _write(presets / "toy.yaml", "default:\n  n_envs: 2\n  learning_rate: 0.1\n")
    _write(presets / "toy.cpu.yaml", "ALE/*-v5:\n  n_envs: 5\n")
    _write(presets / "toy.big.yaml", "n_envs: 64\n")
    s = resolve_settings(ToySettings, "toy", "ALE/Pong-v5", config_file=Path("cpu"), preset_dir=presets)
    assert (s.n_envs, s.learning_rate) == (5, 0.1)  # the recipe's block over the preset
    assert resolve_settings(ToySettings, "toy", "CartPole-v1", config_file=Path("cpu"), preset_dir=presets).n_envs == 2
    with pytest.raises(ConfigError, match=r"--config gpu: no such file .*recipes shipped for toy: big, cpu"):
        resolve_settings(ToySettings, "toy", "CartPole-v1", config_file=Path("gpu"), preset_dir=presets)
    with pytest.raises(ConfigError, match="does not exist"):  # a path is a path, never a recipe name
        resolve_settings(ToySettings, "toy", "CartPole-v1", config_file=Path("cpu.yaml"), preset_dir=presets)


def test_shipped_ppo_cpu_recipe_loads_for_atari():
    from rlsuite.agents.ppo import PPOSettings

    s = resolve_settings(PPOSettings, "ppo", "ALE/Pong-v5", config_file=Path("cpu"))
    assert (s.cnn, s.env_preset, s.torch_threads) == ("nips", "machado2018", 1)


def test_preset_path_is_package_data_and_rejects_traversal():
    path = preset_path("ppo")
    assert path.name == "ppo.yaml" and path.parent.name == "presets"
    assert path.parent.parent == Path(fileio.__file__).parent
    with pytest.raises(ConfigError):
        preset_path("../etc/passwd")


def test_settings_dict_round_trip_through_json():
    s = ToySettings(env_id="Acrobot-v1", seed=3, net_arch=(8, 4), target_kl=0.01, schedule="constant")
    d = settings_to_dict(s)
    assert d["net_arch"] == [8, 4]
    back = settings_from_dict(ToySettings, json.loads(json.dumps(d)))
    assert back == s and isinstance(back.net_arch, tuple)
    with pytest.raises(ConfigError, match="'bogus'"):
        settings_from_dict(ToySettings, {**d, "bogus": 1})


# --- fileio -------------------------------------------------------------------------------------------


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "m.json"
    fileio.atomic_write_json(target, {"a": 1})
    fileio.atomic_write_json(target, {"a": 2, "b": [1, 2]})
    assert json.loads(target.read_text()) == {"a": 2, "b": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    with pytest.raises(ValueError, match="NaN"):
        fileio.atomic_write_json(target, {"x": float("nan")})
    assert json.loads(target.read_text()) == {"a": 2, "b": [1, 2]}


def test_atomic_write_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "data.bin"
    fileio.atomic_write_bytes(target, b"old content")
    seen: list[str] = []

    def broken_replace(src, dst):
        seen.append(os.fspath(src))
        assert Path(src).read_bytes() == b"new content"  # the temp file was fully written first
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fileio.atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]
    name = Path(seen[0]).name
    assert name.startswith(".") and name.endswith(".tmp") and Path(seen[0]).parent == tmp_path
