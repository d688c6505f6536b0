"""PPO on SpokenReach: the command label the env reports, and the named network spoken_pointer (a listener
trained by an auxiliary classification loss, pointing into the state or at image keypoints:
policies/spoken_pointer.py) that PPO builds with `network: spoken_pointer`."""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import rlsuite.envs  # noqa: F401  (registers rlsuite/ ids)
from rlsuite.agents import ppo
from rlsuite.agents.actor_critic import ActorCritic
from rlsuite.agents.interface import AgentError, TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import ConfigError, resolve_settings, settings_to_dict
from rlsuite.envs.spoken import SpokenReachVectorEnv
from rlsuite.policies.spoken_pointer import SpokenPointer, keypoint_error, label_loss


def test_vector_info_labels_every_returned_observation_with_its_command() -> None:
    """info["command"] is the index of the word that the observation just returned says: at reset, during
    an episode, and on the reset step that starts the next one (next-step autoreset)."""
    num_envs = 3
    vec = SpokenReachVectorEnv(num_envs, max_episode_steps=4)
    _, info = vec.reset(seed=5)
    singles = [gym.make("rlsuite/SpokenReach-v0", max_episode_steps=4) for _ in range(num_envs)]
    words = vec.core.words
    assert [words[c] for c in info["command"]] == [env.reset(seed=5 + i)[1]["command"] for i, env in enumerate(singles)]
    seen = [info["command"].copy()]
    for _ in range(10):
        _, _, _, _, info = vec.step(np.zeros((num_envs, 2), np.float32))
        np.testing.assert_array_equal(info["command"], vec.state.command)
        seen.append(info["command"].copy())
    # the commands change only at the reset steps (steps 5 and 10 of each row) and agree with the clip's word
    changes = [t for t in range(1, 11) if (seen[t] != seen[t - 1]).any()]
    assert set(changes) <= {5, 10} and changes  # some row drew another word (probability 1 - 4^-6 here)
    clips_word = rlsuite.envs.speech_data._shipped_clips().word
    np.testing.assert_array_equal(clips_word[vec.state.clip], info["command"])


def test_aux_label_loss_hand_computed() -> None:
    head = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    features = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # logits (2, 0, 0) and (0, 1, 0)
    labels = torch.tensor([0, 2])
    loss, accuracy = label_loss(head(features), labels)
    expected = (-(2 - math.log(math.exp(2) + 2)) - (0 - math.log(2 + math.e))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert accuracy.item() == 0.5  # row 0 right (argmax 0), row 1 wrong (argmax 1, label 2)


def test_network_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="network"):
        ppo.PPOSettings(env_id="x", network="fusion").validate()
    with pytest.raises(ConfigError, match="network_kwargs"):
        ppo.PPOSettings(env_id="x", network_kwargs={"classes": 4}).validate()
    with pytest.raises(ConfigError, match="recurrent"):
        ppo.PPOSettings(env_id="x", network="spoken_pointer", recurrent=True).validate()
    box = spaces.Box(-1, 1, (2,), np.float32)
    with pytest.raises(ConfigError, match="Dict observation"):
        ppo.make_network(box, box, ppo.PPOSettings(env_id="x", network="spoken_pointer",
                                                   network_kwargs={"classes": 4, "select": "state:0:8"}))
    with pytest.raises(ConfigError, match="unexpected keyword argument 'slots'"):
        ppo.make_network(_SPACE, box, ppo.PPOSettings(env_id="x", network="spoken_pointer",
                                                      network_kwargs={"classes": 2, "select": "state:1:5", "slots": 2}))


def _context(tmp_path: Path, settings: ppo.PPOSettings) -> tuple[RunFolder, TrainContext]:
    run = RunFolder.create(tmp_path, agent="ppo", env_id=settings.env_id, seed=settings.seed,
                           settings=settings_to_dict(settings), command="test", device="cpu", name="run")
    logger = MetricLogger(run.path, tensorboard=False)
    return run, TrainContext(run=run, logger=logger, progress=None, stop_requested=lambda: False, resume_from=None)


def test_aux_key_missing_from_info_is_a_clear_error(tmp_path: Path) -> None:
    settings = resolve_settings(ppo.PPOSettings, "ppo", "rlsuite/SpokenReach-v0", cli_values=dict(
        total_steps=256, n_envs=2, n_steps=32, eval_every=0, tensorboard=False,
        network_kwargs={"classes": 4, "select": "state:8:16", "label_key": "word"}))
    _, ctx = _context(tmp_path, settings)
    with pytest.raises(AgentError, match="no such key"):
        ppo.train(settings, ctx)
    ctx.logger.close()


@pytest.mark.slow
def test_aux_loss_teaches_the_audio_encoder_the_words_and_the_policy_reloads(tmp_path: Path) -> None:
    """Three updates of PPO with the preset (the listener's classifier, trained by the auxiliary loss, points
    into the state) on SpokenReach: the classifier names the command well above chance (1/4) on fresh
    rollouts; the checkpoint (listener and pointer included) reloads and acts the same."""
    settings = resolve_settings(ppo.PPOSettings, "ppo", "rlsuite/SpokenReach-v0", cli_values=dict(
        total_steps=3 * 16 * 32, n_envs=16, n_steps=32, n_epochs=10, eval_every=0, tensorboard=False))
    assert settings.network == "spoken_pointer" and settings.network_kwargs["select"] == "state:8:16"
    run, ctx = _context(tmp_path, settings)
    result = ppo.train(settings, ctx)
    ctx.logger.close()
    assert result.status == "finished"
    metrics = read_metrics(run.path)
    accuracy, loss = metrics["losses/aux_label_accuracy"][1], metrics["losses/aux_label_loss"][1]
    assert len(accuracy) == 3
    assert accuracy[-1] >= 0.6 and loss[-1] < math.log(4) - 0.3
    loaded, again = load_policy(run.path, "last"), load_policy(run.path, "last")
    assert isinstance(loaded.policy.network.front, SpokenPointer)  # type: ignore[attr-defined]
    env = gym.make_vec("rlsuite/SpokenReach-v0", num_envs=4, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=3)
    starts = np.ones(4, dtype=bool)
    np.testing.assert_array_equal(loaded.policy.act(obs, starts), again.policy.act(obs, starts))


_SPACE = spaces.Dict({"audio": spaces.Box(-1, 1, (8, 4), np.float32), "state": spaces.Box(-1, 1, (7,), np.float32)})


def _pointer_net(spec: str = "state:1:5", offset: str | None = "5:7") -> ActorCritic:
    kwargs = {"classes": 2, "select": spec, "label_coef": 0.5} | ({"offset": offset} if offset is not None else {})
    return ppo.make_network(_SPACE, spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
        env_id="x", hidden_sizes=(8,), network="spoken_pointer", network_kwargs=kwargs))


def test_spoken_pointer_points_the_listeners_code_at_one_slot() -> None:
    """select: the actor and critic MLPs (separate) read the state with its slots replaced by
    sum_k code_k * slot_k and, with offset, the offset slice minus it; the code is the listener's softmax
    over the audio alone; a confident code passes its slot through exactly; the policy's and the value's
    gradients never reach the listener, the auxiliary loss (label_coef times the cross-entropy) does."""
    torch.manual_seed(0)
    net = _pointer_net()
    pointer = net.front
    assert isinstance(pointer, SpokenPointer) and net.aux_keys == ("command",)
    assert net.actor_encoder is not net.critic_encoder and pointer.output_dim == 7 - 4 + 2 + 2
    # state: [9, slot 0 (2), slot 1 (2), anchor (2)]
    state = torch.tensor([[9.0, 1.0, 2.0, 3.0, 4.0, 0.5, 0.5], [9.0, -1.0, -2.0, -3.0, -4.0, 0.0, 1.0]])
    obs = {"audio": torch.randn(2, 8, 4), "state": state}
    actor_f, critic_f, _ = net.features(obs)
    code = torch.softmax(pointer.code_head(pointer.listener({"audio": obs["audio"]})), -1)  # (2, 2)
    pointed = code[:, :1] * state[:, 1:3] + code[:, 1:] * state[:, 3:5]  # the slow obvious sum, slot by slot
    flat = torch.cat([state[:, :1], pointed, state[:, 5:7], state[:, 5:7] - pointed], 1)  # (2, 7)
    torch.testing.assert_close(pointer(obs), flat)
    torch.testing.assert_close(actor_f, net.actor_encoder(flat))
    torch.testing.assert_close(critic_f, net.critic_encoder(flat))
    (net.actor(actor_f).mean.sum() + net.critic(critic_f).sum()).backward()
    assert all(p.grad is None for p in pointer.parameters())
    net.features(obs)
    loss, terms = net.aux_loss({"command": torch.tensor([0, 1])}, torch.mean)
    expected, _ = label_loss(pointer.code_head(pointer.listener({"audio": obs["audio"]})), torch.tensor([0, 1]))
    torch.testing.assert_close(loss, 0.5 * expected)
    torch.testing.assert_close(terms["aux_label_loss"], expected.detach())
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pointer.code_head.parameters())
    with torch.no_grad():
        pointer.code_head.bias.copy_(torch.tensor([0.0, 60.0]))  # code = one-hot of class 1
    torch.testing.assert_close(pointer(obs)[:, 1:3], state[:, 3:5])
    assert _pointer_net(offset=None).front.output_dim == 7 - 4 + 2  # type: ignore[union-attr]


@pytest.mark.parametrize(("spec", "offset", "match"), [
    ("state:8", None, "KEY:START:STOP"), ("state:4:2", None, "KEY:START:STOP"), ("audio:0:4", None, "not a flat"),
    ("state:0:8", None, "within state's 7 values"), ("state:0:5", None, "2 equal slots"),
    ("state:1:5", "5:8", "offset=5:8"), ("state:1:5", "4", "START:STOP"),
])
def test_spoken_pointer_errors_say_what_to_write(spec: str, offset: str | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _pointer_net(spec, offset)


class _OnePeak(torch.nn.Module):
    """Stands in for the keypoint CNN's last layer output: map k peaks at (row k, column 2k) of a 7x9 grid."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.zeros(len(x), 3, 7, 9)
        for k in range(3):
            maps[:, k, k, 2 * k] = 80.0  # softmax ~ one-hot at that pixel
        return maps


def test_spatial_keypoints_are_the_expected_coordinates_of_each_heatmap() -> None:
    """SpatialKeypoints: x = sum_ij p_ij x_j, y = sum_ij p_ij y_i with x_j, y_i the cell centres in the image
    frame (-1 .. 1 edge to edge); a peaked map gives its cell's centre, a flat map the image's centre."""
    from rlsuite.policies import SpatialKeypoints

    enc = SpatialKeypoints(spaces.Box(0, 255, (14, 18, 3), np.uint8), keypoints=3)
    assert enc.features_dim == 6 and enc.grid_x.shape == (9,) and enc.grid_y.shape == (7,)
    image = torch.randint(0, 256, (2, 14, 18, 3), dtype=torch.uint8)
    enc.net = _OnePeak()
    points = enc.keypoints(image)  # (2, 3, 2)
    for k in range(3):  # cell (row k, column 2k) of 7 x 9 cells: its centre in the -1 .. 1 image frame
        torch.testing.assert_close(points[:, k], torch.tensor([[-1 + (2 * (2 * k) + 1) / 9, -1 + (2 * k + 1) / 7]] * 2))
    enc.net = torch.nn.Sequential(torch.nn.AvgPool2d(2), torch.nn.Conv2d(3, 3, 1))
    torch.nn.init.zeros_(enc.net[1].weight)  # each map constant: the bias
    torch.testing.assert_close(enc.keypoints(image), torch.zeros(2, 3, 2), atol=1e-6, rtol=0)


def test_spoken_pointer_on_an_image_points_at_a_keypoint() -> None:
    """An image key alone: the MLPs read the state as observed plus sum_k code_k * keypoint_k, and the
    policy's gradient trains the keypoint CNN (not the listener)."""
    torch.manual_seed(0)
    space = spaces.Dict({"audio": spaces.Box(-1, 1, (8, 4), np.float32), "image": spaces.Box(0, 255, (16, 16, 3), np.uint8),
                         "state": spaces.Box(-1, 1, (3,), np.float32)})
    net = ppo.make_network(space, spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
        env_id="x", hidden_sizes=(8,), network="spoken_pointer", network_kwargs={"classes": 2, "select": "image"}))
    pointer = net.front
    assert isinstance(pointer, SpokenPointer) and pointer.keypoints is not None and pointer.output_dim == 3 + 2
    obs = {"audio": torch.randn(4, 8, 4), "image": torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8),
           "state": torch.randn(4, 3)}
    code = torch.softmax(pointer.code_head(pointer.listener({"audio": obs["audio"]})), -1)  # (4, 2)
    points = pointer.keypoints.keypoints(obs["image"])  # (4, 2, 2)
    expected = torch.cat([obs["state"], code[:, :1] * points[:, 0] + code[:, 1:] * points[:, 1]], 1)
    torch.testing.assert_close(pointer(obs), expected)
    net.actor(net.features(obs)[0]).mean.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pointer.keypoints.parameters())
    assert all(p.grad is None for p in [*pointer.listener.parameters(), *pointer.code_head.parameters()])
    with pytest.raises(ConfigError, match="image key"):
        ppo.make_network(space, spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
            env_id="x", network="spoken_pointer", network_kwargs={"classes": 2, "select": "image:0:4"}))


def test_keypoint_error_and_its_settings() -> None:
    """keypoint_key: squared distances summed over keypoints, averaged over rows (by hand); it needs an image
    pointer."""
    keypoints = torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[0.5, 0.0], [0.0, 0.0]]])  # (2, 2, 2)
    targets = torch.tensor([[[0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, -2.0]]])
    assert keypoint_error(keypoints, targets).item() == pytest.approx(((1.0 + 0.0) + (0.25 + 4.0)) / 2)
    with pytest.raises(ConfigError, match="keypoint_key"):
        _pointer_net_kwargs = {"classes": 2, "select": "state:1:5", "keypoint_key": "target_xy"}
        ppo.make_network(_SPACE, spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
            env_id="x", network="spoken_pointer", network_kwargs=_pointer_net_kwargs))


@pytest.mark.parametrize("module", ["a2c", "reinforce"])
def test_agents_without_the_auxiliary_loss_have_no_named_network(module: str) -> None:
    settings_cls = importlib.import_module(f"rlsuite.agents.{module}").Settings
    with pytest.raises(ConfigError, match="network"):
        resolve_settings(settings_cls, module, "rlsuite/SpokenReach-v0", cli_values={"network": "spoken_pointer"})
