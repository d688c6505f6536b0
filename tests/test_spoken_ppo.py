"""PPO on SpokenReach: the command label the env reports, the fusion MLP over Dict features, and the
auxiliary command-classification loss (agents/onpolicy.py, agents/ppo.py)."""

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
from rlsuite.agents.interface import AgentError, TrainContext
from rlsuite.agents.logger import MetricLogger, read_metrics
from rlsuite.agents.onpolicy import ActorCritic, FusionEncoder
from rlsuite.agents.registry import load_policy
from rlsuite.agents.run import RunFolder
from rlsuite.agents.settings import ConfigError, resolve_settings, settings_to_dict
from rlsuite.envs.spoken import SpokenReachVectorEnv


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
        np.testing.assert_array_equal(info["command"], vec.core.command)
        seen.append(info["command"].copy())
    # the commands change only at the reset steps (steps 5 and 10 of each row) and agree with the clip's word
    changes = [t for t in range(1, 11) if (seen[t] != seen[t - 1]).any()]
    assert set(changes) <= {5, 10} and changes  # some row drew another word (probability 1 - 4^-6 here)
    clips_word = rlsuite.envs.speech_data._shipped_clips().word
    np.testing.assert_array_equal(clips_word[vec.core.clip], info["command"])


def _dict_space() -> spaces.Dict:
    return spaces.Dict({"a": spaces.Box(-1, 1, (3,), np.float32), "b": spaces.Box(-1, 1, (3,), np.float32)})


def _mean_action(network: ActorCritic, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        features, _, _ = network.features({"a": torch.as_tensor(a)[None], "b": torch.as_tensor(b)[None]})
        return network.actor(features).mean[0].numpy()


@pytest.mark.parametrize("fusion", [(), (32,)])
def test_heads_on_a_bare_concatenation_cannot_combine_keys_but_the_fusion_mlp_can(fusion: tuple[int, ...]) -> None:
    """Without fusion the action mean is f(a) + g(b), so mu(a1, b1) + mu(a2, b2) == mu(a1, b2) + mu(a2, b1):
    what is heard cannot change how the state is used. The fusion MLP breaks that identity."""
    torch.manual_seed(0)
    settings = ppo.PPOSettings(env_id="x", hidden_sizes=(8,), fusion_hidden=fusion)
    network = ActorCritic(_dict_space(), spaces.Box(-1, 1, (2,), np.float32), settings)
    assert isinstance(network.actor_encoder, FusionEncoder) == bool(fusion)
    torch.nn.init.normal_(network.actor.mean.weight)  # type: ignore[union-attr]  # O(1) means (the init is 0.01-scaled)
    rng = np.random.default_rng(0)
    a1, a2, b1, b2 = rng.uniform(-1, 1, (4, 3)).astype(np.float32)
    gap = (_mean_action(network, a1, b1) + _mean_action(network, a2, b2)
           - _mean_action(network, a1, b2) - _mean_action(network, a2, b1))
    if fusion:
        assert np.abs(gap).max() > 0.05
    else:
        np.testing.assert_allclose(gap, 0.0, atol=1e-5)


def test_aux_label_loss_hand_computed() -> None:
    head = torch.nn.Linear(2, 3, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
    features = torch.tensor([[2.0, 0.0], [0.0, 1.0]])  # logits (2, 0, 0) and (0, 1, 0)
    labels = torch.tensor([0, 2])
    loss, accuracy = ppo.label_loss(head(features), labels)
    expected = (-(2 - math.log(math.exp(2) + 2)) - (0 - math.log(2 + math.e))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert accuracy.item() == 0.5  # row 0 right (argmax 0), row 1 wrong (argmax 1, label 2)


def test_aux_label_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="aux_label_classes"):
        ppo.PPOSettings(env_id="x", aux_label_key="command").validate()
    with pytest.raises(ConfigError, match="fusion_hidden"):
        ppo.PPOSettings(env_id="x", fusion_hidden=(0,)).validate()


def _context(tmp_path: Path, settings: ppo.PPOSettings) -> tuple[RunFolder, TrainContext]:
    run = RunFolder.create(tmp_path, agent="ppo", env_id=settings.env_id, seed=settings.seed,
                           settings=settings_to_dict(settings), command="test", device="cpu", name="run")
    logger = MetricLogger(run.path, tensorboard=False)
    return run, TrainContext(run=run, logger=logger, progress=None, stop_requested=lambda: False, resume_from=None)


def test_aux_label_key_missing_from_info_is_a_clear_error(tmp_path: Path) -> None:
    settings = resolve_settings(ppo.PPOSettings, "ppo", "CartPole-v1", cli_values=dict(
        total_steps=256, n_envs=2, n_steps=32, eval_every=0, tensorboard=False, aux_label_key="command",
        aux_label_classes=4))
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
    assert settings.aux_label_select == "state:8:16" and settings.aux_label_key == "command"
    run, ctx = _context(tmp_path, settings)
    result = ppo.train(settings, ctx)
    ctx.logger.close()
    assert result.status == "finished"
    metrics = read_metrics(run.path)
    accuracy, loss = metrics["losses/aux_label_accuracy"][1], metrics["losses/aux_label_loss"][1]
    assert len(accuracy) == 3
    assert accuracy[-1] >= 0.6 and loss[-1] < math.log(4) - 0.3
    loaded, again = load_policy(run.path, "last"), load_policy(run.path, "last")
    assert loaded.policy.network.has_aux()  # type: ignore[attr-defined]
    env = gym.make_vec("rlsuite/SpokenReach-v0", num_envs=4, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=3)
    starts = np.ones(4, dtype=bool)
    np.testing.assert_array_equal(loaded.policy.act(obs, starts), again.policy.act(obs, starts))


def test_fusion_split_gives_the_critic_its_own_mlp_over_one_dict_encoding() -> None:
    """fusion_split: the actor's features are those of the unsplit network with the same weights, the
    critic reads the same Dict encoding through its own MLP, and a value-only loss leaves the actor's
    fusion MLP without gradient."""
    torch.manual_seed(0)
    net = ActorCritic(_dict_space(), spaces.Box(-1, 1, (2,), np.float32),
                      ppo.PPOSettings(env_id="x", hidden_sizes=(8,), fusion_hidden=(16,), fusion_split=True))
    assert net.critic_fusion is not None and net.critic_encoder is net.actor_encoder
    obs = {"a": torch.randn(5, 3), "b": torch.randn(5, 3)}
    actor_f, critic_f, _ = net.features(obs)
    fusion = net.actor_encoder
    assert isinstance(fusion, FusionEncoder)
    torch.testing.assert_close(actor_f, fusion(obs))
    torch.testing.assert_close(critic_f, net.critic_fusion(fusion.encoder(obs)))
    net.critic(critic_f).sum().backward()
    assert all(p.grad is None for p in fusion.mlp.parameters())
    assert all(p.grad is not None for p in fusion.encoder.parameters())


@pytest.mark.parametrize("split", [False, True])
def test_aux_label_feed_appends_the_classifier_softmax_detached(split: bool) -> None:
    """aux_label_feed: the code head classifies the Dict encoding, the fusion MLP (and the critic's own one with
    fusion_split) reads [encoding, softmax(code)], the aux logits are the code head's, and the policy's
    gradient reaches the encoder but not the code head, which only the auxiliary loss trains."""
    torch.manual_seed(0)
    net = ActorCritic(_dict_space(), spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
        env_id="x", hidden_sizes=(8,), fusion_hidden=(16,), fusion_split=split, aux_label_key="command",
        aux_label_classes=4, aux_label_feed=True))
    fusion = net.actor_encoder
    assert isinstance(fusion, FusionEncoder) and fusion.code_head is not None and net.aux_head is None
    assert net.has_aux() and fusion.input_dim == 16 + 4  # two keys x MLP width 8, then 4 code entries
    obs = {"a": torch.randn(5, 3), "b": torch.randn(5, 3)}
    actor_f, critic_f, _ = net.features(obs)
    logits = net.aux_logits(actor_f)
    assert actor_f.shape == (5, 16) and logits.shape == (5, 4)
    base = fusion.encoder(obs)  # (5, 16)
    torch.testing.assert_close(logits, fusion.code_head(base))
    code_input = torch.cat([base, torch.softmax(fusion.code_head(base), -1)], 1)  # (5, 20)
    torch.testing.assert_close(actor_f, fusion.mlp(code_input))
    if split:
        assert net.critic_fusion is not None
        torch.testing.assert_close(critic_f, net.critic_fusion(code_input))
    (net.actor(actor_f).mean.sum() + net.critic(critic_f).sum()).backward()
    assert all(p.grad is None for p in fusion.code_head.parameters())
    assert all(p.grad is not None for p in fusion.encoder.parameters())
    loss, _ = ppo.label_loss(net.aux_logits(net.features(obs)[0]), torch.tensor([0, 1, 2, 3, 0]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in fusion.code_head.parameters())


def test_aux_label_experts_mix_one_fusion_mlp_per_class_by_the_code() -> None:
    """aux_label_experts: the actor features are the code-weighted sum of one fusion MLP per class; with a
    confident code (a large code-head bias) only that class's expert receives the policy's gradient."""
    torch.manual_seed(0)
    net = ActorCritic(_dict_space(), spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
        env_id="x", hidden_sizes=(8,), fusion_hidden=(16,), aux_label_key="command", aux_label_classes=3,
        aux_label_feed=True, aux_label_experts=True))
    fusion = net.actor_encoder
    assert isinstance(fusion, FusionEncoder) and fusion.code_head is not None and len(fusion.experts) == 2
    obs = {"a": torch.randn(5, 3), "b": torch.randn(5, 3)}
    actor_f, _, _ = net.features(obs)
    x = fusion.fusion_input(obs)  # (5, 16 + 3)
    code = torch.softmax(fusion.code_head(fusion.encoder(obs)), -1)  # (5, 3)
    experts = [fusion.mlp, *fusion.experts]
    expected = sum(code[:, k:k + 1] * experts[k](x) for k in range(3))
    torch.testing.assert_close(actor_f, expected)
    with torch.no_grad():
        fusion.code_head.bias.copy_(torch.tensor([0.0, 60.0, 0.0]))  # code = one-hot of class 1
    net.actor(net.features(obs)[0]).mean.sum().backward()
    grads = [sum(float(p.grad.abs().sum()) for p in e.parameters() if p.grad is not None) for e in experts]
    assert grads[1] > 0 and grads[0] < 1e-12 * grads[1] and grads[2] < 1e-12 * grads[1]


def test_film_key_modulates_the_other_keys_features() -> None:
    """film_key: [h_b * (1 + gamma(h_a)) + beta(h_a), h_a] feeds the fusion MLP; the FiLM map starts at zero
    (the identity, so the network starts as plain fusion) and gets a gradient; a wrong key is refused."""
    torch.manual_seed(0)
    settings = ppo.PPOSettings(env_id="x", hidden_sizes=(8,), fusion_hidden=(16,), film_key="a")
    net = ActorCritic(_dict_space(), spaces.Box(-1, 1, (2,), np.float32), settings)
    fusion = net.actor_encoder
    assert isinstance(fusion, FusionEncoder) and fusion.film is not None
    obs = {"a": torch.randn(5, 3), "b": torch.randn(5, 3)}
    h_a, h_b = (enc(obs[k]) for k, enc in zip(("a", "b"), fusion.encoder.encoders, strict=True))  # type: ignore[attr-defined]
    torch.testing.assert_close(fusion.fusion_input(obs), torch.cat([h_b, h_a], 1))  # zero FiLM: identity
    torch.nn.init.normal_(fusion.film.weight)
    gamma, beta = fusion.film(h_a).chunk(2, dim=1)
    torch.testing.assert_close(fusion.fusion_input(obs), torch.cat([h_b * (1 + gamma) + beta, h_a], 1))
    net.actor(net.features(obs)[0]).mean.sum().backward()
    assert fusion.film.weight.grad is not None and fusion.film.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="film_key='c'"):
        ActorCritic(_dict_space(), spaces.Box(-1, 1, (2,), np.float32),
                    ppo.PPOSettings(env_id="x", fusion_hidden=(16,), film_key="c"))


def test_fusion_raw_appends_the_flat_keys_as_observed_but_not_sequences() -> None:
    """fusion_raw: the flat Box keys join the fusion input after the per-key features; a (T, F) sequence
    key (SpokenReach's audio) does not."""
    space = spaces.Dict({"audio": spaces.Box(-1, 1, (8, 4), np.float32), "state": spaces.Box(-1, 1, (3,), np.float32)})
    net = ActorCritic(space, spaces.Box(-1, 1, (2,), np.float32),
                      ppo.PPOSettings(env_id="x", hidden_sizes=(8,), fusion_hidden=(16,), fusion_raw=True))
    fusion = net.actor_encoder
    assert isinstance(fusion, FusionEncoder) and fusion.raw_keys == ("state",)
    obs = {"audio": torch.randn(5, 8, 4), "state": torch.randn(5, 3)}
    x = fusion.fusion_input(obs)
    assert fusion.input_dim == fusion.encoder.features_dim + 3 == x.shape[1]
    torch.testing.assert_close(x, torch.cat([fusion.encoder(obs), obs["state"]], 1))


def _pointer_net(spec: str = "state:1:5", offset: str | None = "5:7") -> ActorCritic:
    space = spaces.Dict({"audio": spaces.Box(-1, 1, (8, 4), np.float32), "state": spaces.Box(-1, 1, (7,), np.float32)})
    return ActorCritic(space, spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
        env_id="x", hidden_sizes=(8,), aux_label_key="command", aux_label_classes=2, aux_label_select=spec,
        aux_label_offset=offset))


def test_aux_label_select_points_the_listeners_code_at_one_slot() -> None:
    """aux_label_select: the actor and critic MLPs (separate) read the state with its slots replaced by
    sum_k code_k * slot_k and, with aux_label_offset, the offset slice minus it; the code is the listener's
    softmax over the audio alone; a confident code passes its slot through exactly; the policy's and the
    value's gradients never reach the listener, the auxiliary loss does."""
    torch.manual_seed(0)
    net = _pointer_net()
    pointer = net.pointer
    assert pointer is not None and net.has_aux() and net.aux_head is None
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
    torch.testing.assert_close(net.aux_logits(actor_f), pointer.code_head(pointer.listener({"audio": obs["audio"]})))
    (net.actor(actor_f).mean.sum() + net.critic(critic_f).sum()).backward()
    assert all(p.grad is None for p in pointer.parameters())
    loss, _ = ppo.label_loss(net.aux_logits(net.features(obs)[0]), torch.tensor([0, 1]))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pointer.code_head.parameters())
    with torch.no_grad():
        pointer.code_head.bias.copy_(torch.tensor([0.0, 60.0]))  # code = one-hot of class 1
    torch.testing.assert_close(pointer(obs)[:, 1:3], state[:, 3:5])
    assert _pointer_net(offset=None).pointer.output_dim == 7 - 4 + 2  # type: ignore[union-attr]


@pytest.mark.parametrize(("spec", "offset", "match"), [
    ("state:8", None, "KEY:START:STOP"), ("state:4:2", None, "KEY:START:STOP"), ("audio:0:4", None, "not a flat"),
    ("state:0:8", None, "within state's 7 values"), ("state:0:5", None, "2 equal slots"),
    ("state:1:5", "5:8", "aux_label_offset=5:8"), ("state:1:5", "4", "START:STOP"),
])
def test_aux_label_select_errors_say_what_to_write(spec: str, offset: str | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _pointer_net(spec, offset)


def test_aux_label_select_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="aux_label_select"):
        ppo.PPOSettings(env_id="x", aux_label_select="state:0:4").validate()
    with pytest.raises(ConfigError, match="aux_label_select"):
        ppo.PPOSettings(env_id="x", aux_label_key="command", aux_label_classes=2, aux_label_select="state:0:4",
                        fusion_hidden=(8,)).validate()
    with pytest.raises(ConfigError, match="aux_label_offset"):
        ppo.PPOSettings(env_id="x", aux_label_offset="0:2").validate()


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


def test_aux_label_select_on_an_image_points_at_a_keypoint() -> None:
    """An image key alone: the MLPs read the state as observed plus sum_k code_k * keypoint_k, and the
    policy's gradient trains the keypoint CNN (not the listener)."""
    torch.manual_seed(0)
    space = spaces.Dict({"audio": spaces.Box(-1, 1, (8, 4), np.float32), "image": spaces.Box(0, 255, (16, 16, 3), np.uint8),
                         "state": spaces.Box(-1, 1, (3,), np.float32)})
    net = ActorCritic(space, spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
        env_id="x", hidden_sizes=(8,), aux_label_key="command", aux_label_classes=2, aux_label_select="image"))
    pointer = net.pointer
    assert pointer is not None and pointer.keypoints is not None and pointer.output_dim == 3 + 2
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
        ActorCritic(space, spaces.Box(-1, 1, (2,), np.float32), ppo.PPOSettings(
            env_id="x", aux_label_key="command", aux_label_classes=2, aux_label_select="image:0:4"))


def test_keypoint_error_and_its_settings() -> None:
    """aux_keypoint_key: squared distances summed over keypoints, averaged over rows (by hand); the setting
    needs an image pointer."""
    keypoints = torch.tensor([[[0.0, 0.0], [1.0, 1.0]], [[0.5, 0.0], [0.0, 0.0]]])  # (2, 2, 2)
    targets = torch.tensor([[[0.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [0.0, -2.0]]])
    assert ppo.keypoint_error(keypoints, targets).item() == pytest.approx(((1.0 + 0.0) + (0.25 + 4.0)) / 2)
    with pytest.raises(ConfigError, match="aux_keypoint_key"):
        ppo.PPOSettings(env_id="x", aux_label_key="command", aux_label_classes=4, aux_label_select="state:8:16",
                        aux_keypoint_key="target_xy").validate()
    ppo.PPOSettings(env_id="x", aux_label_key="command", aux_label_classes=4, aux_label_select="image",
                    aux_keypoint_key="target_xy").validate()


def test_aux_label_feed_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="aux_label_feed"):
        ppo.PPOSettings(env_id="x", fusion_hidden=(8,), aux_label_feed=True).validate()
    with pytest.raises(ConfigError, match="aux_label_feed"):
        ppo.PPOSettings(env_id="x", aux_label_key="command", aux_label_classes=4, aux_label_feed=True).validate()
    with pytest.raises(ConfigError, match="aux_label_feed"):
        ppo.PPOSettings(env_id="x", fusion_hidden=(8,), aux_label_key="command", aux_label_classes=4,
                        aux_label_feed=True, share_encoder=False).validate()
    with pytest.raises(ConfigError, match="aux_label_experts"):
        ppo.PPOSettings(env_id="x", fusion_hidden=(8,), aux_label_key="command", aux_label_classes=4,
                        aux_label_experts=True).validate()
    with pytest.raises(ConfigError, match="film_key"):
        ppo.PPOSettings(env_id="x", film_key="audio").validate()


@pytest.mark.parametrize("module", ["a2c", "reinforce"])
def test_agents_without_the_auxiliary_loss_refuse_it(module: str) -> None:
    settings_cls = importlib.import_module(f"rlsuite.agents.{module}").Settings
    with pytest.raises(ConfigError, match="aux_label_key.*PPO"):
        settings_cls(aux_label_key="command", aux_label_classes=4).validate()
