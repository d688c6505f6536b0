"""Backbone tests: every result is checked against an independent reference (torch.distributions, autograd,
a slow per-step LSTM loop, hand-built one-hot vectors), not just run."""

from __future__ import annotations

import math
from collections import OrderedDict

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal

from rlsuite.policies import (
    CategoricalHead,
    DictEncoder,
    GaussianHead,
    ImpalaCNN,
    LSTMCore,
    MLPEncoder,
    MultiCategoricalHead,
    NatureCNN,
    NipsCNN,
    QHead,
    SequenceEncoder,
    SpaceError,
    ValueHead,
    is_image_space,
    is_sequence_space,
    make_action_head,
    make_encoder,
)

S = gym.spaces
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def batch_of(space: gym.Space, n: int = 3):
    """n samples of a space as a batched tensor (or dict of tensors)."""
    space.seed(0)
    if isinstance(space, S.Dict):
        return {k: batch_of(sub, n) for k, sub in space.spaces.items()}
    return torch.as_tensor(np.stack([space.sample() for _ in range(n)]))


# ------------------------------------------------------------------------------------------------ encoders

ENCODER_CASES = [
    (S.Box(-1, 1, (7,), np.float32), {}, MLPEncoder),
    (S.Box(-1, 1, (7,), np.float64), {"mlp_hidden": ()}, MLPEncoder),
    (S.Box(-1, 1, (2, 3, 5), np.float32), {"mlp_hidden": (32,)}, MLPEncoder),
    (S.Discrete(5), {"mlp_hidden": (16, 8)}, MLPEncoder),
    (S.MultiDiscrete([3, 4, 2]), {}, MLPEncoder),
    (S.MultiBinary(6), {"mlp_hidden": ()}, MLPEncoder),
    (S.Box(0, 255, (84, 84, 3), np.uint8), {}, NatureCNN),
    (S.Box(0, 255, (4, 84, 84), np.uint8), {"cnn_features": 100}, NatureCNN),
    (S.Box(0, 255, (36, 36), np.uint8), {}, NatureCNN),
    (S.Box(0.0, 1.0, (1, 40, 48), np.float32), {}, NatureCNN),
    (S.Box(0, 255, (64, 64, 3), np.uint8), {"cnn": "impala"}, ImpalaCNN),
    (S.Box(0, 255, (3, 9, 8), np.uint8), {"cnn": "impala", "cnn_features": 32}, ImpalaCNN),
    (S.Box(-5, 5, (8, 40), np.float32), {"sequence_hidden": 24}, SequenceEncoder),
    (S.Box(-5, 5, (51, 13), np.float32), {}, SequenceEncoder),
    (
        S.Dict({"pos": S.Box(-1, 1, (3,), np.float32), "cam": S.Box(0, 255, (3, 36, 36), np.uint8)}),
        {"cnn_features": 20},
        DictEncoder,
    ),
]


@pytest.mark.parametrize("space,kwargs,kind", ENCODER_CASES, ids=lambda v: str(v)[:40])
def test_features_dim_is_the_real_output_width(space, kwargs, kind):
    enc = make_encoder(space, **kwargs)
    assert type(enc) is kind
    out = enc(batch_of(space))
    assert out.shape == (3, enc.features_dim)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_mlp_without_hidden_layers_is_width_of_flat_input():
    assert MLPEncoder(S.Box(-1, 1, (2, 3, 5)), hidden_sizes=()).features_dim == 30
    assert MLPEncoder(S.MultiDiscrete([3, 4, 2]), hidden_sizes=()).features_dim == 9
    assert make_encoder(S.Box(-1, 1, (7,)), mlp_hidden=(64, 33)).features_dim == 33


@pytest.mark.parametrize("cls", [NatureCNN, NipsCNN, ImpalaCNN])
def test_channel_last_and_channel_first_give_identical_outputs(cls):
    chw = cls(S.Box(0, 255, (3, 40, 44), np.uint8))
    hwc = cls(S.Box(0, 255, (40, 44, 3), np.uint8))
    hwc.load_state_dict(chw.state_dict())  # same weights: the layout lives in no parameter
    x = torch.randint(0, 256, (2, 3, 40, 44), dtype=torch.uint8)
    torch.testing.assert_close(hwc(x.permute(0, 2, 3, 1)), chw(x), rtol=0, atol=1e-6)


def test_grayscale_2d_uint8_and_float_images_scale_like_uint8_over_255():
    gray = NatureCNN(S.Box(0, 255, (36, 40), np.uint8))
    one_ch = NatureCNN(S.Box(0, 255, (1, 36, 40), np.uint8))
    as_float = NatureCNN(S.Box(0.0, 1.0, (1, 36, 40), np.float32))
    one_ch.load_state_dict(gray.state_dict())
    as_float.load_state_dict(gray.state_dict())
    x = torch.randint(0, 256, (2, 36, 40), dtype=torch.uint8)
    ref = gray(x)
    torch.testing.assert_close(one_ch(x.unsqueeze(1)), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(as_float(x.unsqueeze(1).float() / 255.0), ref, rtol=0, atol=1e-6)
    # a buffer that stored the uint8 frames as float32 is still scaled by the space's dtype
    torch.testing.assert_close(gray(x.float()), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("cls", [NatureCNN, NipsCNN])
@pytest.mark.parametrize("space", [S.Box(0, 255, (4, 84, 84), np.uint8), S.Box(0.0, 1.0, (3, 40, 44), np.float32)])
def test_nature_cnn_channels_last_path_equals_forward_with_its_gradients(space, cls):
    # the training fast path (agents/fast.accelerate): channels-last convs, 1/255 folded into the first
    # conv's weights; the same outputs and parameter gradients as the plain module to float tolerance
    torch.manual_seed(0)
    cnn = cls(space)
    if space.dtype == np.uint8:
        x = torch.randint(0, 256, (16, *space.shape), dtype=torch.uint8)
    else:
        x = torch.rand(16, *space.shape)
    target = torch.randn(16, cnn.features_dim)
    grads = []
    for forward in (cnn.forward, cnn.forward_channels_last):
        cnn.zero_grad()
        out = forward(x)
        ((out - target) ** 2).mean().backward()
        grads.append((out.detach(), [p.grad.clone() for p in cnn.parameters()]))
    (ref, ref_grads), (got, got_grads) = grads
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)  # outputs of order 0.1-1
    for g, r in zip(got_grads, ref_grads, strict=True):
        assert g.is_contiguous()  # parameters and their gradients stay NCHW (flat optimiser buffers)
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


def test_minibatch_rows_gathered_by_numpy_equal_torch_indexing():
    from rlsuite.agents.tensors import index_obs, take_rows

    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (10, 4, 6, 6), dtype=torch.uint8, generator=gen)
    floats = torch.randn(10, 3, generator=gen)
    order = torch.randperm(10, generator=gen)[:6]
    for x in (frames, floats, torch.randn(3, 10, generator=gen).t()):  # the last: a non-contiguous source
        for index in (order, order.to(torch.int32), order.numpy(), np.array([-1, 0, 0, 3]), slice(2, 5),
                      torch.arange(len(x)) % 2 == 0, 4):
            got, want = take_rows(x, index), x[index]
            assert got.dtype == want.dtype and torch.equal(got, want)
    rows = take_rows(frames, order)
    rows[0] = 0  # a copy, as advanced indexing gives, never a view of the rollout
    assert torch.equal(frames[order[0]], frames.clone()[order[0]]) and frames[order[0]].any()
    with pytest.raises(IndexError):
        take_rows(frames, torch.tensor([10]))
    grad_source = torch.randn(5, 2, requires_grad=True)
    take_rows(grad_source, torch.tensor([1, 3])).sum().backward()  # with gradients: torch indexing
    assert torch.equal(grad_source.grad, torch.tensor([[0.0, 0], [1, 1], [0, 0], [1, 1], [0, 0]]))
    mixed = index_obs({"image": frames, "vector": floats}, order)
    assert torch.equal(mixed["image"], frames[order]) and torch.equal(mixed["vector"], floats[order])


def test_nips_cnn_is_mnih_2013s_network():
    # 84 -> (84 - 8) / 4 + 1 = 20 -> (20 - 4) / 2 + 1 = 9: 32 x 9 x 9 = 2592 flat features, then 256 units
    cnn = NipsCNN(S.Box(0, 255, (4, 84, 84), np.uint8))
    convs = [m for m in cnn.cnn if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(16, (8, 8), (4, 4)), (32, (4, 4), (2, 2))]
    assert cnn.linear[0].in_features == 2592 and cnn.features_dim == 256
    assert isinstance(make_encoder(S.Box(0, 255, (4, 84, 84), np.uint8), cnn="nips"), NipsCNN)
    with pytest.raises(SpaceError, match="at least 20x20"):
        NipsCNN(S.Box(0, 255, (4, 19, 84), np.uint8))


def test_nature_cnn_flatten_size_matches_conv_arithmetic():
    cnn = NatureCNN(S.Box(0, 255, (4, 84, 84), np.uint8))
    assert cnn.linear[0].in_features == 64 * 7 * 7  # the DQN-Nature 84x84 -> 7x7 feature map


@pytest.mark.parametrize(
    "shape,cnn",
    [
        ((3, 84, 3), "nature"),  # both ends could be channels
        ((84, 84, 84), "nature"),  # neither end is a channel dim
        ((12, 84, 84), "impala"),  # 4 RGB frames stacked: not a layout we guess
        ((4, 84, 84, 1), "nature"),  # 4-D
        ((3, 35, 84), "nature"),  # < 36 high for Nature
        ((84, 30, 3), "nature"),
        ((3, 7, 8), "impala"),  # < 8x8 for Impala
    ],
)
def test_ambiguous_or_too_small_images_raise_space_error_naming_the_shape(shape, cnn):
    space = S.Box(0, 255, shape, np.uint8)
    with pytest.raises(SpaceError) as info:
        make_encoder(space, cnn=cnn)
    assert str(shape) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_impala_accepts_8x8_and_nature_accepts_36x36():
    assert ImpalaCNN(S.Box(0, 255, (3, 8, 8), np.uint8))(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)).shape == (1, 256)
    NatureCNN(S.Box(0, 255, (36, 36, 1), np.uint8))


@pytest.mark.parametrize(
    "space",
    [
        S.Tuple((S.Discrete(2), S.Discrete(3))),
        S.Text(8),
        S.Graph(node_space=S.Box(-1, 1, (3,)), edge_space=None),
        S.Dict({"ok": S.Discrete(2), "bad": S.Text(4)}),
    ],
    ids=["tuple", "text", "graph", "dict-with-text"],
)
def test_unsupported_observation_space_raises_space_error(space):
    with pytest.raises(SpaceError, match="supported"):
        make_encoder(space)


def test_bad_names_raise_value_error_listing_accepted_values():
    with pytest.raises(ValueError, match="relu"):
        make_encoder(S.Box(-1, 1, (3,)), activation="gelu")
    with pytest.raises(ValueError, match="impala"):
        make_encoder(S.Box(-1, 1, (3,)), cnn="resnet")
    with pytest.raises(ValueError, match="tanh"):
        make_action_head(S.Box(-1, 1, (2,)), 8, squash="sigmoid")


def test_space_predicates():
    assert is_image_space(S.Box(0, 255, (84, 84, 3), np.uint8))
    assert is_image_space(S.Box(0, 255, (84, 84), np.uint8))
    assert is_image_space(S.Box(0.0, 1.0, (3, 32, 32), np.float32))
    assert is_image_space(S.Box(0, 255, (84, 84, 84), np.uint8))  # counted, then rejected as ambiguous
    assert not is_image_space(S.Box(0.0, 1.0, (10, 10, 10), np.float32))
    assert not is_image_space(S.Box(-1, 1, (16, 40), np.float32))
    assert not is_image_space(S.Discrete(3))
    assert is_sequence_space(S.Box(-1, 1, (16, 40), np.float32))
    assert not is_sequence_space(S.Box(0, 255, (16, 40), np.uint8))
    assert not is_sequence_space(S.Box(-1, 1, (16,), np.float32))


def test_mlp_encoder_one_hot_for_discrete_observations():
    enc = MLPEncoder(S.Discrete(4, start=1), hidden_sizes=())
    obs = torch.tensor([1, 4, 2])
    expected = torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]])
    torch.testing.assert_close(enc(obs), expected)


def test_mlp_encoder_concatenated_one_hot_for_multidiscrete():
    enc = MLPEncoder(S.MultiDiscrete([2, 3], start=[0, 5]), hidden_sizes=())
    obs = torch.tensor([[1, 5], [0, 7]])
    expected = torch.tensor([[0.0, 1, 1, 0, 0], [1, 0, 0, 0, 1]])
    torch.testing.assert_close(enc(obs), expected)


def test_mlp_hidden_layers_are_orthogonal_with_gain_sqrt2_and_zero_bias():
    enc = MLPEncoder(S.Box(-1, 1, (5,)), hidden_sizes=(64, 64), activation="relu")
    first = enc.net[0]
    torch.testing.assert_close(first.weight.T @ first.weight, 2.0 * torch.eye(5), atol=1e-5, rtol=0)
    assert torch.count_nonzero(first.bias) == 0
    assert isinstance(enc.net[1], torch.nn.ReLU)


@pytest.mark.parametrize("steps", [8, 9, 50])
def test_sequence_encoder_any_length_from_8(steps):
    enc = SequenceEncoder(S.Box(-1, 1, (steps, 6), np.float32), conv_channels=8, hidden_size=12)
    assert enc(torch.randn(2, steps, 6)).shape == (2, 12)


def test_sequence_encoder_rejects_short_windows():
    with pytest.raises(SpaceError, match=r"\(7, 6\)"):
        SequenceEncoder(S.Box(-1, 1, (7, 6), np.float32))


def test_sequence_encoder_features_are_the_lstm_final_hidden_state():
    enc = SequenceEncoder(S.Box(-1, 1, (10, 3), np.float32), conv_channels=4, hidden_size=5, time_stride=2)
    x = torch.randn(2, 10, 3) * 3.0 + 1.0
    z = (x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), unbiased=False, keepdim=True)  # per sequence
    conv = enc.conv(z.transpose(1, 2)).transpose(1, 2)  # (B, 5, 4): stride 2 halves the 10 steps
    assert conv.shape == (2, 5, 4)
    out, _ = enc.lstm(conv)
    torch.testing.assert_close(enc(x), out[:, -1])


def _lstm_batch_sizes(enc: SequenceEncoder) -> list[int]:
    """Records how many rows each call of the encoder's LSTM processes."""
    sizes: list[int] = []
    enc.lstm.register_forward_hook(lambda _m, args, _out: sizes.append(int(args[0].shape[0])))
    return sizes


def test_sequence_encoder_encodes_each_distinct_row_once_with_the_same_values_and_gradients():
    space = S.Box(-5, 5, (20, 6), np.float32)
    enc = SequenceEncoder(space, conv_channels=8, hidden_size=12)
    reference = SequenceEncoder(space, conv_channels=8, hidden_size=12)
    reference.load_state_dict(enc.state_dict())
    pool = torch.randn(5, 20, 6)
    x = pool[torch.tensor([3, 0, 3, 3, 1, 0, 4, 1, 3, 0])]  # 10 rows, 4 distinct
    sizes = _lstm_batch_sizes(enc)
    weights = torch.randn(10, 12)
    (enc(x) * weights).sum().backward()
    assert sizes == [4]
    # the reference runs every row through the network (encode: no de-duplication)
    ref_out = reference.encode(x)
    (ref_out * weights).sum().backward()
    torch.testing.assert_close(enc(x).detach(), ref_out.detach(), rtol=1e-5, atol=1e-6)
    for p, q in zip(enc.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6)
    # all rows distinct, or a NaN row (never equal to itself): every row is encoded
    sizes.clear()
    x = torch.randn(6, 20, 6)
    x[2, 0, 0] = float("nan")
    x[3] = x[2]
    out = enc(x)
    assert sizes == [6]
    torch.testing.assert_close(out, enc.encode(x), equal_nan=True)


def test_sequence_encoder_without_gradients_reuses_unchanged_rows_until_the_weights_change():
    from rlsuite.agents.fast.optim import FlatAdam

    enc = SequenceEncoder(S.Box(-5, 5, (20, 6), np.float32), conv_channels=8, hidden_size=12)
    sizes = _lstm_batch_sizes(enc)
    x = torch.randn(8, 20, 6)
    with torch.inference_mode():
        first = enc(x)
        again = enc(x)  # nothing changed: nothing encoded
        x2 = x.clone()
        x2[[1, 5]] = torch.randn(2, 20, 6)  # two envs started new episodes
        second = enc(x2)
    assert sizes == [8, 2]
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    torch.testing.assert_close(second, enc.encode(x2), rtol=1e-5, atol=1e-6)
    # an optimiser step (FlatAdam updates views of one buffer in place) invalidates the features
    optimizer = FlatAdam(enc, lr=1e-2)
    optimizer.zero_grad()
    enc(x2).sum().backward()
    optimizer.step()
    sizes.clear()
    with torch.no_grad():
        third = enc(x2)
        fourth = enc(x2)
    assert sizes == [8]  # one full pass with the new weights, then reuse
    torch.testing.assert_close(third, enc.encode(x2), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fourth, third, rtol=0, atol=0)
    assert not torch.allclose(third, second)
    # a batch of another size is encoded afresh
    with torch.no_grad():
        torch.testing.assert_close(enc(x2[:3]), enc.encode(x2[:3]), rtol=1e-5, atol=1e-6)


def test_sequence_encoder_standardises_each_sequence_and_checks_the_stride():
    enc = SequenceEncoder(S.Box(-5, 5, (20, 6), np.float32), conv_channels=8, hidden_size=12, time_stride=4)
    x = torch.randn(3, 20, 6)
    torch.testing.assert_close(enc.encode(x * 7.0 - 30.0), enc.encode(x), rtol=1e-4, atol=1e-5)  # loudness, floor
    assert torch.isfinite(enc(torch.zeros(2, 20, 6))).all()  # muted audio
    assert enc.conv(x.transpose(1, 2)).shape == (3, 8, 5)  # 20 steps / 4
    with pytest.raises(ValueError, match="power of 2"):
        SequenceEncoder(S.Box(-5, 5, (20, 6), np.float32), time_stride=3)


def test_dict_encoder_concatenates_in_sorted_key_order():
    sub = {"b": S.Box(-1, 1, (3,), np.float32), "a": S.Discrete(4)}
    enc = DictEncoder(S.Dict(OrderedDict([("b", sub["b"]), ("a", sub["a"])])), mlp_hidden=(5,))
    assert enc.keys == ("a", "b")
    obs = {"a": torch.tensor([0, 3]), "b": torch.randn(2, 3)}
    manual = torch.cat([enc.encoders[0](obs["a"]), enc.encoders[1](obs["b"])], dim=1)
    torch.testing.assert_close(enc(obs), manual)
    assert enc.features_dim == 10


# --------------------------------------------------------------------------------------------------- heads


def test_categorical_matches_torch_distributions():
    head = CategoricalHead(8, 5)
    head.linear.weight.data.normal_()  # away from the near-uniform init, so the test can fail
    feats = torch.randn(64, 8)
    dist = head(feats)
    ref = Categorical(logits=head.linear(feats))
    actions = torch.randint(0, 5, (64,))
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions), atol=1e-5, rtol=0)
    torch.testing.assert_close(dist.entropy(), ref.entropy(), atol=1e-5, rtol=0)
    assert torch.equal(dist.mode(), ref.logits.argmax(-1))
    assert torch.equal(dist.to_env(actions), actions)


def test_categorical_samples_follow_the_probabilities():
    head = CategoricalHead(1, 3)
    head.linear.weight.data.zero_()
    head.linear.bias.data.copy_(torch.log(torch.tensor([0.2, 0.5, 0.3])))
    samples = head(torch.zeros(20000, 1)).sample()
    freq = torch.bincount(samples, minlength=3).float() / 20000
    torch.testing.assert_close(freq, torch.tensor([0.2, 0.5, 0.3]), atol=0.015, rtol=0)


def test_discrete_start_is_added_by_to_env():
    head = make_action_head(S.Discrete(3, start=-1), 4)
    assert torch.equal(head(torch.zeros(2, 4)).to_env(torch.tensor([0, 2])), torch.tensor([-1, 1]))


@pytest.mark.parametrize("nvec", [[3, 5, 2], [4, 4]], ids=["ragged", "uniform"])
def test_multicategorical_matches_sum_of_torch_categoricals(nvec):
    head = MultiCategoricalHead(6, nvec)
    head.linear.weight.data.normal_()
    feats = torch.randn(32, 6)
    dist = head(feats)
    refs = [Categorical(logits=chunk) for chunk in head.linear(feats).split(nvec, dim=1)]
    actions = torch.stack([torch.randint(0, n, (32,)) for n in nvec], dim=1)  # (B, K)
    ref_logp = sum(r.log_prob(actions[:, k]) for k, r in enumerate(refs))
    ref_ent = sum(r.entropy() for r in refs)
    torch.testing.assert_close(dist.log_prob(actions), ref_logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(dist.entropy(), ref_ent, atol=1e-5, rtol=0)
    assert torch.equal(dist.mode(), torch.stack([r.logits.argmax(-1) for r in refs], dim=1))
    samples = head(torch.randn(2000, 6)).sample()
    assert samples.shape == (2000, len(nvec)) and samples.dtype == torch.int64
    for k, n in enumerate(nvec):  # padding never leaks into a smaller component
        assert samples[:, k].min() >= 0 and samples[:, k].max() == n - 1


def test_multibinary_action_head_is_two_way_categorical_per_bit():
    head = make_action_head(S.MultiBinary(3), 4)
    assert isinstance(head, MultiCategoricalHead) and head.nvec == (2, 2, 2)
    head2 = make_action_head(S.MultiDiscrete([2, 3], start=[1, 0]), 4)
    assert torch.equal(head2(torch.zeros(1, 4)).to_env(torch.tensor([[0, 2]])), torch.tensor([[1, 2]]))


def test_gaussian_clip_matches_torch_normal_and_clips_into_bounds():
    space = S.Box(np.array([-1.0, 0.0, -2.0], np.float32), np.array([1.0, 0.5, 2.0], np.float32), dtype=np.float32)
    head = GaussianHead(8, space, log_std_init=-0.3)
    head.mean.weight.data.normal_()
    head.log_std.data.copy_(torch.tensor([-0.5, 0.2, 0.7]))
    feats = torch.randn(64, 8)
    dist = head(feats)
    ref = Normal(head.mean(feats), head.log_std.exp())
    actions = dist.sample()
    torch.testing.assert_close(dist.log_prob(actions), ref.log_prob(actions).sum(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(dist.entropy(), ref.entropy().sum(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(dist.mode(), ref.mean)
    clipped = dist.to_env(torch.tensor([[-5.0, 0.25, 3.0], [0.5, -1.0, -2.5]]))
    torch.testing.assert_close(clipped, torch.tensor([[-1.0, 0.25, 2.0], [0.5, 0.0, -2.0]]))


def test_gaussian_samples_have_the_head_mean_and_std():
    head = GaussianHead(1, S.Box(-1, 1, (2,)), log_std_init=math.log(0.5))
    head.mean.weight.data.zero_()
    head.mean.bias.data.copy_(torch.tensor([0.3, -0.7]))
    samples = head(torch.zeros(20000, 1)).sample()
    torch.testing.assert_close(samples.mean(0), torch.tensor([0.3, -0.7]), atol=0.02, rtol=0)
    torch.testing.assert_close(samples.std(0), torch.tensor([0.5, 0.5]), atol=0.02, rtol=0)


def test_tanh_log_prob_matches_autograd_change_of_variables():
    low, high = np.array([-1.0, 0.0, 2.0], np.float32), np.array([1.0, 4.0, 2.5], np.float32)
    head = GaussianHead(4, S.Box(low, high, dtype=np.float32), squash="tanh").double()
    head.mean.weight.data.normal_()
    head.log_std.data.copy_(torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64))
    feats = torch.randn(16, 4, dtype=torch.float64)
    dist = head(feats)
    u = dist.sample()
    u[0] = torch.tensor([9.0, -12.0, 0.0], dtype=torch.float64)  # deep in the saturated tails
    lo, hi = torch.tensor(low, dtype=torch.float64), torch.tensor(high, dtype=torch.float64)

    def squash(v: torch.Tensor) -> torch.Tensor:
        return lo + (torch.tanh(v) + 1) / 2 * (hi - lo)

    normal = Normal(head.mean(feats), head.log_std.exp())
    for b in range(u.shape[0]):  # slow reference: one Jacobian per sample
        jac = torch.autograd.functional.jacobian(squash, u[b])  # (A, A)
        ref = normal.log_prob(u)[b].sum() - torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(dist.log_prob(u)[b], ref.detach(), atol=1e-5, rtol=1e-7)
    env_actions = dist.to_env(u)
    assert (env_actions >= lo).all() and (env_actions <= hi).all()
    torch.testing.assert_close(dist.to_env(torch.zeros(1, 3, dtype=torch.float64))[0], (lo + hi) / 2)
    torch.testing.assert_close(dist.mode(), head.mean(feats))
    torch.testing.assert_close(dist.entropy(), normal.entropy().sum(-1))  # documented approximation


def test_action_head_space_errors():
    with pytest.raises(SpaceError, match="finite"):
        make_action_head(S.Box(-np.inf, np.inf, (2,)), 4, squash="tanh")
    with pytest.raises(SpaceError, match="supported"):
        make_action_head(S.Tuple((S.Discrete(2),)), 4)
    with pytest.raises(SpaceError, match="flat Box"):
        make_action_head(S.Box(-1, 1, (2, 2)), 4)
    clip = make_action_head(S.Box(-np.inf, np.inf, (2,)), 4)(torch.zeros(1, 4))
    assert torch.equal(clip.to_env(torch.tensor([[1e9, -3.0]])), torch.tensor([[1e9, -3.0]]))


def test_value_head_shape_and_linearity():
    head = ValueHead(6)
    feats = torch.randn(5, 6)
    torch.testing.assert_close(head(feats), feats @ head.linear.weight[0] + head.linear.bias[0])


@pytest.mark.parametrize("hidden", [0, 16])
def test_dueling_q_advantages_average_to_zero(hidden):
    head = QHead(8, 5, dueling=True, hidden=hidden)
    feats = torch.randn(10, 8)
    q = head(feats)  # (B, n)
    v = head.value(feats)  # (B, 1)
    assert q.shape == (10, 5)
    torch.testing.assert_close((q - v).mean(dim=1), torch.zeros(10), atol=1e-6, rtol=0)
    assert not torch.allclose(q, v.expand_as(q))  # the advantage stream is not trivially zero


def test_plain_q_head_is_linear_without_hidden():
    head = QHead(8, 3)
    feats = torch.randn(4, 8)
    torch.testing.assert_close(head(feats), feats @ head.q[0].weight.T + head.q[0].bias)


# ----------------------------------------------------------------------------------------------- recurrent


def reference_lstm(core: LSTMCore, x, state, starts):
    """Slow oracle: each row on its own, one step at a time, restarting from zeros at episode starts."""
    lstm = core.lstm
    outs = torch.zeros(x.shape[0], x.shape[1], core.hidden_size)
    h_fin, c_fin = torch.zeros_like(state[0]), torch.zeros_like(state[1])
    for b in range(x.shape[1]):
        h, c = state[0][:, b : b + 1].clone(), state[1][:, b : b + 1].clone()
        for t in range(x.shape[0]):
            if starts[t, b]:
                h, c = torch.zeros_like(h), torch.zeros_like(c)
            out, (h, c) = lstm(x[t : t + 1, b : b + 1], (h, c))
            outs[t, b] = out[0, 0]
        h_fin[:, b], c_fin[:, b] = h[:, 0], c[:, 0]
    return outs, (h_fin, c_fin)


def test_lstm_core_matches_slow_per_row_loop_with_episode_starts():
    core = LSTMCore(5, hidden_size=7)
    steps, batch = 9, 4
    x = torch.randn(steps, batch, 5)
    state = (torch.randn(1, batch, 7), torch.randn(1, batch, 7))  # non-zero: resets must clear it
    starts = torch.zeros(steps, batch, dtype=torch.bool)
    starts[0, 1] = starts[3, 0] = starts[3, 2] = starts[6, 0] = starts[8, 3] = True
    out, (h, c) = core(x, state, starts.float())
    ref_out, (ref_h, ref_c) = reference_lstm(core, x, state, starts)
    torch.testing.assert_close(out, ref_out, atol=1e-5, rtol=0)
    torch.testing.assert_close(h, ref_h, atol=1e-5, rtol=0)
    torch.testing.assert_close(c, ref_c, atol=1e-5, rtol=0)
    # one step at a time, carrying the state (how a rollout calls it), gives the same outputs
    s = state
    for t in range(steps):
        o, s = core(x[t : t + 1], s, starts[t : t + 1])
        torch.testing.assert_close(o[0], ref_out[t], atol=1e-5, rtol=0)


def test_lstm_core_gradients_flow_but_not_across_episode_starts():
    core = LSTMCore(3, hidden_size=4)
    x = torch.randn(6, 2, 3, requires_grad=True)
    starts = torch.zeros(6, 2)
    starts[3, 0] = 1.0
    out, _ = core(x, core.initial_state(2), starts)
    out[5, 0].sum().backward()  # row 0's last output: depends on steps 3..5 of row 0 only
    assert x.grad[3:, 0].abs().sum() > 0
    assert torch.count_nonzero(x.grad[:3, 0]) == 0  # the reset cut the earlier episode off
    assert torch.count_nonzero(x.grad[:, 1]) == 0
    assert core.lstm.weight_hh_l0.grad.abs().sum() > 0


def test_lstm_core_initial_state_and_init():
    core = LSTMCore(3, hidden_size=4)
    h, c = core.initial_state(5)
    assert h.shape == c.shape == (1, 5, 4) and not h.any() and not c.any()
    assert core.features_dim == 4
    assert torch.count_nonzero(core.lstm.bias_ih_l0) == 0
    w = core.lstm.weight_hh_l0  # (4H, H): orthogonal columns
    torch.testing.assert_close(w.T @ w, torch.eye(4), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        core(torch.zeros(2, 5, 3), (h, c), torch.zeros(5, 2))
