"""agents/fast against the plain PyTorch path it replaces: same outputs, same gradients of each agent's own loss."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlsuite.agents import a2c, dqn, fast, ppo
from rlsuite.agents.actor_critic import ActorCritic
from rlsuite.agents.fast import mlp as fast_mlp
from rlsuite.agents.rollout import ModuleStep


def _perturbed(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Off the init (heads start near zero), so every weight matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in network.parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=generator))
    return network


def _assert_same_grads(plain: torch.nn.Module, accelerated: torch.nn.Module) -> None:
    for (name, p), (_, q) in zip(plain.named_parameters(), accelerated.named_parameters(), strict=True):
        assert p.grad is not None and q.grad is not None, name
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")


def _pair(obs_space: gym.Space, action_space: gym.Space, settings) -> tuple[ActorCritic, ActorCritic]:
    plain = _perturbed(ActorCritic(obs_space, action_space, settings))
    accelerated = copy.deepcopy(plain)
    swapped = fast.accelerate(accelerated)
    assert swapped, "accelerate took none of the towers"
    assert list(accelerated.state_dict()) == list(plain.state_dict())  # checkpoints do not change
    return plain, accelerated


@pytest.mark.parametrize("overrides", [
    {},
    {"share_encoder": True, "hidden_sizes": (16, 8, 4), "activation": "relu", "ent_coef": 0.01},
    {"hidden_sizes": (32,), "activation": "relu", "ent_coef": 0.05},
])
def test_mlp_tower_gives_ppo_loss_the_same_gradients(overrides):
    obs_space, action_space = spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Discrete(3)
    settings = ppo.PPOSettings(env_id="x", **overrides)
    plain, accelerated = _pair(obs_space, action_space, settings)
    batch = 64
    torch.manual_seed(1)
    mb = {"obs": torch.randn(batch, 4) * 2.0, "actions": torch.randint(0, 3, (batch,)), "logprobs": torch.randn(batch) - 1.0,
          "values": torch.randn(batch), "advantages": torch.randn(batch), "returns": torch.randn(batch) * 3.0}
    losses = []
    for network in (plain, accelerated):
        loss, _ = ppo.ppo_loss(network, mb, 0.2, settings)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0])
    _assert_same_grads(plain, accelerated)


@pytest.mark.parametrize("action_space, overrides", [
    (spaces.Discrete(2), {}),
    (spaces.Box(-2.0, 2.0, (3,)), {"squash": "tanh", "log_std_init": -0.5}),
    (spaces.Box(-1.0, 1.0, (1,)), {"hidden_sizes": (32,), "activation": "relu", "share_encoder": True}),
])
def test_mlp_tower_gives_a2c_loss_the_same_gradients(action_space, overrides):
    obs_space = spaces.Box(-np.inf, np.inf, (5,), np.float32)
    plain, accelerated = _pair(obs_space, action_space, a2c.A2CSettings(**overrides))
    torch.manual_seed(2)
    batch = 40
    obs = torch.randn(batch, 5) * 2.0
    actions = (torch.randint(0, int(action_space.n), (batch,)) if isinstance(action_space, spaces.Discrete)
               else torch.rand(batch, action_space.shape[0]) * 1.8 - 0.9)
    advantages, returns, valid = torch.randn(batch), torch.randn(batch) * 3.0, (torch.rand(batch) > 0.15).float()
    for network in (plain, accelerated):
        a2c.a2c_loss(network, obs, actions, advantages, returns, valid, 0.5, 0.01)[0].backward()
    _assert_same_grads(plain, accelerated)


@pytest.mark.parametrize("activation, loss, weighted", [("relu", "huber", False), ("tanh", "mse", True)])
def test_mlp_tower_gives_the_td_loss_the_same_gradients(activation, loss, weighted):
    settings = dqn.DQNSettings(env_id="x", hidden_sizes=(32, 16), activation=activation, loss=loss)
    plain = _perturbed(dqn.QNetwork(spaces.Box(-1.0, 1.0, (6,), np.float32), 4, settings))
    accelerated = copy.deepcopy(plain)
    assert fast.accelerate(accelerated) == ["encoder.net"]
    torch.manual_seed(3)
    obs, actions, y = torch.randn(50, 6), torch.randint(0, 4, (50,)), torch.randn(50) * 5.0  # errors beyond huber's 1
    weights = torch.rand(50) if weighted else None
    for network in (plain, accelerated):
        dqn.td_loss(network(obs).gather(1, actions[:, None]).squeeze(1), y, loss, weights).backward()
    _assert_same_grads(plain, accelerated)


def test_tanh_by_sigmoid_is_tanh_and_weight_grad_is_the_matmul():
    x = torch.cat([torch.linspace(-30.0, 30.0, 20_001), torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e4, -1e4, float("inf"),
                                                                     float("-inf")])])
    exact = torch.tanh(x.double())
    got = fast_mlp.tanh_(x.clone()).double()
    assert (got - exact).abs().max() <= 2.5e-7
    assert got.abs().max() == 1.0 and got[-2:].tolist() == [1.0, -1.0]  # saturates exactly, never beyond
    assert fast_mlp.tanh_(torch.tensor([float("nan")])).isnan().all()
    generator = torch.Generator().manual_seed(4)
    for n_in, n_out in [(4, 64), (64, 64), (64, 2), (1, 3)]:
        grad, inputs = torch.randn(33, n_out, generator=generator), torch.randn(33, n_in, generator=generator)
        torch.testing.assert_close(fast_mlp.weight_grad(grad, inputs), grad.t() @ inputs)  # (out, in)


def test_accelerate_takes_only_tanh_and_relu_towers():
    box = spaces.Box(-1.0, 1.0, (3,), np.float32)
    assert fast.accelerate(ActorCritic(box, spaces.Discrete(2), a2c.A2CSettings(activation="elu"))) == []
    assert fast.accelerate(ActorCritic(box, spaces.Discrete(2), a2c.A2CSettings())) == ["act_value"]
    shared = ActorCritic(box, spaces.Discrete(2), a2c.A2CSettings(share_encoder=True))
    assert fast.accelerate(shared) == ["actor_encoder.net"]


@pytest.mark.parametrize("action_space, activation", [(spaces.Discrete(3), "tanh"), (spaces.Box(-1.0, 1.0, (2,)), "relu")])
def test_fused_actor_critic_is_act_value_in_one_node(action_space, activation):
    """The same head outputs and values as the modules, and its hand-written backward against finite differences."""
    box = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    plain, accelerated = _pair(box, action_space, ppo.PPOSettings(env_id="x", hidden_sizes=(8, 5), activation=activation))
    obs = torch.randn(16, 4)
    (dist_a, value_a, _), (dist_p, value_p, _) = accelerated.act_value(obs), plain.act_value(obs)
    torch.testing.assert_close(value_a, value_p, rtol=0, atol=1e-6)  # tanh as 2 sigmoid(2x) - 1: within 2e-7 per unit
    torch.testing.assert_close(dist_a.mode(), dist_p.mode())
    assert type(dist_a) is type(dist_p)
    fused = fast.FusedActorCritic(accelerated)
    params = [p.detach().double().requires_grad_() for p in (*fused.actor_params, *fused.critic_params)]
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *p: fast.ActorCriticFunction.apply(x, activation == "relu",
                                                                               len(fused.actor_params), *p),
                                    (x, *params))


@pytest.mark.parametrize("env_id, overrides, kind", [
    ("CartPole-v1", {}, fast.NumpyCategoricalStep),
    ("CartPole-v1", {"share_encoder": True, "hidden_sizes": (16, 8, 4), "activation": "relu"}, fast.NumpyCategoricalStep),
    ("CartPole-v1", {"activation": "elu"}, fast.FusedMLPForward),
    ("Pendulum-v1", {"squash": "tanh"}, fast.FusedMLPForward),
    ("Pendulum-v1", {}, fast.FusedMLPForward),
])
def test_fast_rollout_steps_sample_what_the_module_step_samples(env_id, overrides, kind):
    """Same torch seed, same actions; the same log-probabilities and values; and the next rollout's step reads
    the weights as they are then."""
    env = gym.make(env_id)
    network = _perturbed(ActorCritic(env.observation_space, env.action_space, a2c.A2CSettings(env_id=env_id, **overrides)))
    make_step = fast.rollout_step(network)
    assert type(make_step()) is kind
    obs = torch.as_tensor(np.stack([env.observation_space.sample() for _ in range(64)]))
    with torch.inference_mode():
        torch.manual_seed(5)
        got = make_step()(obs, None, None)
        torch.manual_seed(5)
        expected = ModuleStep(network)(obs, None, None)
        torch.testing.assert_close(got[0], expected[0])  # the actions
        np.testing.assert_allclose(got[3], expected[3], rtol=1e-5, atol=1e-5)  # as the env takes them
        torch.testing.assert_close(got[1], expected[1], rtol=1e-5, atol=1e-5)  # log-probabilities
        torch.testing.assert_close(got[2], expected[2], rtol=1e-5, atol=1e-5)  # values
        torch.testing.assert_close(make_step().value(obs, None, None), expected[2], rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # an optimiser step: the next rollout's step reads the new weights
        network.critic.linear.bias.add_(1.0)
    with torch.inference_mode():
        torch.testing.assert_close(make_step().value(obs, None, None), expected[2] + 1.0, rtol=1e-5, atol=1e-5)


def test_rollout_step_keeps_the_module_path_where_no_fast_step_applies():
    box = spaces.Box(-1.0, 1.0, (3,), np.float32)
    recurrent = ActorCritic(box, spaces.Discrete(2), a2c.A2CSettings(recurrent=True))
    assert type(fast.rollout_step(recurrent)()) is ModuleStep
    front = ppo.make_network(spaces.Dict({"audio": spaces.Box(-1, 1, (8, 4), np.float32), "state": box}),
                             spaces.Discrete(2), ppo.PPOSettings(env_id="x", network="spoken_pointer",
                                                                 network_kwargs={"classes": 3, "select": "state:0:3"}))
    assert type(fast.rollout_step(front)()) is ModuleStep


@pytest.mark.parametrize("cnn", ["nature", "nips"])
def test_accelerate_trains_a_nature_cnn_on_the_cpu_by_its_channels_last_forward(cnn):
    image = spaces.Box(0, 255, (4, 84, 84), np.uint8)
    plain = _perturbed(ActorCritic(image, spaces.Discrete(4), ppo.PPOSettings(env_id="x", cnn=cnn)))
    accelerated = copy.deepcopy(plain)
    assert fast.accelerate(accelerated) == ["actor_encoder"]  # shared by actor and critic (image observations)
    obs = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    for network in (plain, accelerated):
        dist, value, _ = network.act_value(obs)
        (dist.logp.sum() + value.sum()).backward()
    torch.testing.assert_close(accelerated.act_value(obs)[1], plain.act_value(obs)[1], rtol=1e-5, atol=1e-5)
    for (name, p), (_, q) in zip(plain.named_parameters(), accelerated.named_parameters(), strict=True):
        # float32 sums in another order over 8192-element kernels: equal to 1e-4 of the gradient's norm
        assert (q.grad - p.grad).norm() <= 1e-4 * p.grad.norm() + 1e-6, name
