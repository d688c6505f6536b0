"""`--env-kwarg key=value` on `rlsuite train` and `rlsuite evaluate`: checked against the env's constructor,
typed by its annotations, stored in the run manifest and reused when the run is evaluated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import rlsuite.agents.onpolicy_setup
import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)
from rlsuite.agents.registry import load_policy, make_baseline
from rlsuite.cli import app
from rlsuite.envs import EnvError, make_env
from rlsuite.envs.factory import check_env_kwargs, env_kwarg_types, parse_env_kwargs
from rlsuite.evaluation.harness import evaluate_policy

SINGLE = "rlsuite/TrafficSingle-v0"
SHARED = "rlsuite/TrafficSingleShared-v0"
runner = CliRunner()


def cli(*args: str) -> Any:
    torch.set_num_threads(1)
    return runner.invoke(app, list(args))


def mean_travel_time(policy: Any, env_id: str, episodes: int, **env_kwargs: Any) -> float:
    records = evaluate_policy(policy, env_id, episodes=episodes, env_kwargs=env_kwargs)
    return float(np.mean([r.metrics["travel_time"] for r in records]))


def test_values_are_typed_by_the_constructor_and_unknown_keys_list_the_accepted_ones() -> None:
    assert parse_env_kwargs(["profile=held_out", "pressure = true", "profile=ns_peak"]) == {
        "profile": "ns_peak", "pressure": "true"}
    typed = check_env_kwargs(SINGLE, parse_env_kwargs(["profile=held_out", "pressure=yes", "scenario=grid2x2"]))
    assert typed == {"profile": "held_out", "pressure": True, "scenario": "grid2x2"}
    assert check_env_kwargs("CartPole-v1", {"sutton_barto_reward": "true"}) == {"sutton_barto_reward": True}
    # the shared (parameter-sharing) ids forward **kwargs, and declare the keywords they accept
    assert set(env_kwarg_types(SHARED) or {}) == set(env_kwarg_types(SINGLE) or {})
    with pytest.raises(EnvError, match=r"no keyword argument 'profil'.*Did you mean: profile.*Accepted env kwargs: "
                                       r"scenario, profile, reward, pressure, neighbour_phases, obs_mode"):
        check_env_kwargs(SHARED, {"profil": "held_out"})
    with pytest.raises(EnvError, match=r"refused.*Unknown profile 'nope'; accepted: train, held_out"):
        check_env_kwargs(SINGLE, {"profile": "nope"})
    with pytest.raises(EnvError, match="Malformed --env-kwarg 'profile'"):
        parse_env_kwargs(["profile"])


@pytest.mark.slow
def test_baseline_evaluation_on_a_named_profile_from_the_command_line(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    result = cli("evaluate", "--agent", "max-pressure", "--env", SINGLE, "--env-kwarg", "profile=held_out",
                 "--episodes", "1", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["env_kwargs"] == {"profile": "held_out"}
    # oracle: the harness run directly on the held-out profile, and it is not the training profiles' figure
    held = mean_travel_time(make_baseline("max-pressure", make_env(SINGLE)), SINGLE, 1, profile="held_out")
    train = mean_travel_time(make_baseline("max-pressure", make_env(SINGLE)), SINGLE, 1)
    assert summary["env_metrics"]["travel_time"] == pytest.approx(held)
    assert held != pytest.approx(train)
    for bad, fragment in ((["--env-kwarg", "profil=held_out"], "Accepted env kwargs: scenario, profile"),
                          (["--env-kwarg", "profile=nope"], "Unknown profile 'nope'")):
        result = cli("evaluate", "--agent", "max-pressure", "--env", SINGLE, *bad, "--episodes", "1", "--db", str(db))
        assert result.exit_code == 2 and fragment in " ".join(result.output.split()), result.output


@pytest.mark.slow
def test_train_stores_the_env_kwargs_and_evaluation_reuses_them_unless_overridden(tmp_path: Path, monkeypatch) -> None:
    built: list[dict[str, Any]] = []
    make_vec_env = rlsuite.agents.onpolicy_setup.make_vec_env

    def spy(env_id: str, num_envs: int, **kwargs: Any) -> Any:
        built.append(kwargs)
        return make_vec_env(env_id, num_envs, **kwargs)

    monkeypatch.setattr(rlsuite.agents.onpolicy_setup, "make_vec_env", spy)
    run = tmp_path / "run"
    result = cli("train", "--agent", "ppo", "--env", SHARED, "--steps", "512", "--n-envs", "4",
                 "--set", "n_steps=64", "--set", "tensorboard=false", "--set", "eval_every=0",
                 "--env-kwarg", "profile=held_out", "--env-kwarg", "reward=queue", "--run-dir", str(run), "--no-progress")
    assert result.exit_code == 0, result.output
    assert built and built[0]["profile"] == "held_out" and built[0]["reward"] == "queue"  # the training env
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["settings"]["env_kwargs"] == {"profile": "held_out", "reward": "queue"}
    policy = load_policy(run, "last").policy

    db = tmp_path / "r.db"
    reused = json.loads(cli("evaluate", str(run), "--checkpoint", "last", "--episodes", "1", "--db", str(db),
                            "--json").output)
    assert reused["env_kwargs"] == {"profile": "held_out", "reward": "queue"}
    records = evaluate_policy(policy, SHARED, episodes=1, env_kwargs={"profile": "held_out", "reward": "queue"})
    assert reused["mean"] == pytest.approx(float(np.mean([r.episode_return for r in records])))
    overridden = json.loads(cli("evaluate", str(run), "--checkpoint", "last", "--episodes", "1", "--db", str(db),
                                "--env-kwarg", "profile=ns_peak", "--json").output)
    assert overridden["env_kwargs"] == {"profile": "ns_peak", "reward": "queue"}
    records = evaluate_policy(policy, SHARED, episodes=1, env_kwargs={"profile": "ns_peak", "reward": "queue"})
    assert overridden["mean"] == pytest.approx(float(np.mean([r.episode_return for r in records])))

    result = cli("train", "--env", SHARED, "--env-kwarg", "presure=true", "--steps", "64", "--run-dir", str(tmp_path / "x"))
    assert result.exit_code == 2 and "Did you mean: pressure" in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()  # bad input leaves no run folder
    result = cli("train", "--resume", str(run), "--env-kwarg", "profile=train")
    assert result.exit_code == 2 and "cannot change a run being resumed" in " ".join(result.output.split())
