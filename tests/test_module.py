"""SERModule: the loss terms (label smoothing, mixed targets), optimiser groups and the network
factory record."""

import functools
import pickle

import pytest
import torch
import torch.nn.functional as F

from ser.errors import ConfigError
from ser.losses import CenterLoss
from ser.models import ADRNN, ASRNN
from ser.module import SERModule

CLASSES = ["ang", "sad", "hap", "neu"]
SMALL_ASRNN = {"conv_channels": [4, 4, 4], "linear_dim": 8, "window_hidden": 4,
               "sequence_hidden": 8, "fc_dim": 8}  # fmt: skip


SMALL_ADRNN = {"conv_channels": 4, "dilated_channels": [4, 4, 8], "linear_dim": 8,
               "lstm_hidden": 4, "fc_dim": 8}  # fmt: skip


def module(**kwargs) -> SERModule:
    defaults = {
        "name": "asrnn",
        "net": functools.partial(ASRNN, **SMALL_ASRNN),
        "class_names": CLASSES,
        "optimizer": functools.partial(torch.optim.Adam, lr=1e-3),
    }
    return SERModule(**(defaults | kwargs))


@pytest.fixture
def batch():
    torch.manual_seed(0)
    return torch.randn(6, 3, 300, 40), torch.tensor([0, 1, 2, 3, 0, 0])


def test_loss_is_the_nll_of_the_networks_log_probabilities(batch):
    x, y = batch
    m = module().eval()
    loss, nll, log_probs = m.compute_loss(x, y)
    torch.testing.assert_close(log_probs, m.net(x))
    torch.testing.assert_close(loss, F.nll_loss(m.net(x), y))
    assert torch.equal(loss, nll)


def test_class_weights_and_mse_term(batch):
    x, y = batch
    m = module(mse_weight=0.01).eval()
    m.class_weights = torch.tensor([0.5, 1.0, 2.0, 1.5])
    loss, nll, log_probs = m.compute_loss(x, y)
    expected_nll = F.nll_loss(log_probs, y, weight=m.class_weights)
    mse = F.mse_loss(log_probs.exp(), F.one_hot(y, 4).float())
    torch.testing.assert_close(nll, expected_nll)
    torch.testing.assert_close(loss, expected_nll + 0.01 * mse)
    assert not torch.equal(nll, F.nll_loss(log_probs, y))


def test_center_loss_uses_the_embedding_and_its_own_learning_rate(batch):
    x, y = batch
    m = module(
        name="adrnn",
        net=functools.partial(ADRNN, **SMALL_ADRNN),
        center_loss=functools.partial(CenterLoss, weight=0.5, lr=0.25),
    ).eval()
    assert m.center_loss.centers.shape == (4, 8)
    loss, nll, _ = m.compute_loss(x, y)
    # weight 0.5 * 0.5 * mean over the batch of the squared distance to the label's centre
    embedding, centers = m.net.embed(x), m.center_loss.centers
    squared = [(embedding[i] - centers[label]).square().sum() for i, label in enumerate(y.tolist())]
    torch.testing.assert_close(loss - nll, 0.5 * 0.5 * torch.stack(squared).mean())
    groups = m.configure_optimizers()["optimizer"].param_groups
    assert [g["lr"] for g in groups] == [1e-3, 0.25]
    assert groups[1]["params"] == [m.center_loss.centers]


def test_unknown_combination_rule_is_rejected():
    with pytest.raises(ConfigError, match=r"model\.combine='median'"):
        module(combine="median")


def test_label_smoothing_smooths_the_nll_only(batch):
    x, y = batch
    m = module(label_smoothing=0.2, mse_weight=0.01).eval()
    m.class_weights = torch.tensor([0.5, 1.0, 2.0, 1.5])
    loss, nll, log_probs = m.compute_loss(x, y)
    # by hand: targets 0.8 + 0.2/4 for the label, 0.2/4 for the other classes
    numerator = denominator = 0.0
    for i, label in enumerate(y.tolist()):
        for c in range(4):
            share = (0.8 if c == label else 0.0) + 0.05
            numerator -= m.class_weights[c] * share * log_probs[i, c]
            denominator += m.class_weights[c] * share
    torch.testing.assert_close(nll, numerator / denominator)
    assert not torch.allclose(nll, F.nll_loss(log_probs, y, weight=m.class_weights))
    mse = F.mse_loss(log_probs.exp(), F.one_hot(y, 4).float())  # unsmoothed targets
    torch.testing.assert_close(loss, nll + 0.01 * mse)
    with pytest.raises(ConfigError, match=r"model\.label_smoothing=1\.0"):
        module(label_smoothing=1.0)


def test_mixed_targets_train_every_term_on_the_class_shares(batch):
    x, y = batch
    m = module(
        name="adrnn",
        net=functools.partial(ADRNN, **SMALL_ADRNN),
        center_loss=functools.partial(CenterLoss, weight=0.5),
        mse_weight=0.01,
    ).eval()
    m.class_weights = weight = torch.tensor([0.5, 1.0, 3.0, 1.5])
    # a mixing weight per segment, as mixup draws them (sum_ic w_c q_ic = 7.175, not 6)
    mixing = torch.tensor([0.7, 0.6, 0.8, 0.55, 0.9, 0.65])[:, None]
    shares = torch.lerp(F.one_hot(y.roll(1), 4).float(), F.one_hot(y, 4).float(), mixing)
    loss, nll, log_probs = m.compute_loss(x, shares)
    torch.testing.assert_close(log_probs, m.net(x))
    # NLL: sum_i sum_c w_c q_ic (-log p_ic) / sum_i sum_c w_c q_ic
    expected_nll = -(weight * shares * log_probs).sum() / (weight * shares).sum()
    torch.testing.assert_close(nll, expected_nll)
    assert not torch.allclose(nll, -(weight * shares * log_probs).sum() / len(y))
    # MSE of the probabilities against the shares, mean over the B x C entries
    mse = (log_probs.exp() - shares).square().mean()
    # center loss: weight 0.5 * 0.5 * mean_i sum_c q_ic ||z_i - c_c||^2
    embedding, centers = m.net.embed(x), m.center_loss.centers
    squared = (embedding[:, None, :] - centers[None, :, :]).square().sum(dim=2)  # (B, C)
    center = 0.5 * 0.5 * (shares * squared).sum(dim=1).mean()
    torch.testing.assert_close(loss, expected_nll + 0.01 * mse + center)
    # one-hot shares are the labels, to rounding
    hard, hard_nll, _ = m.compute_loss(x, y)
    soft, soft_nll, _ = m.compute_loss(x, F.one_hot(y, 4).float())
    torch.testing.assert_close(soft, hard)
    torch.testing.assert_close(soft_nll, hard_nll)


@pytest.mark.slow  # seconds: left out of make test-fast
def test_a_compiled_network_keeps_its_outputs_and_checkpoint_keys(batch):
    x, _ = batch
    torch.manual_seed(0)
    eager = module().eval()
    torch.manual_seed(0)
    # backend "eager": torch.compile's graph capture without code generation (which takes
    # minutes on 2 cores); compile=true uses the default backend
    compiled = module(compile_net={"backend": "eager"}).eval()
    compiled.configure_model()
    assert compiled.net._compiled_call_impl is not None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x))
    eager.load_state_dict(compiled.state_dict())  # a compiled run's checkpoint loads eagerly


@pytest.mark.slow  # seconds: left out of make test-fast
def test_with_a_center_loss_the_training_step_s_network_calls_are_compiled(batch):
    """ADRNN's center loss reads the embedding: the step calls embed and classify, which
    compile=true compiles too (compiling the network alone would leave them eager)."""
    x, y = batch
    kwargs = {"name": "adrnn", "net": functools.partial(ADRNN, **SMALL_ADRNN),
              "center_loss": functools.partial(CenterLoss, weight=0.5, lr=0.25)}  # fmt: skip
    torch.manual_seed(0)
    eager = module(**kwargs).eval()
    torch.manual_seed(0)
    compiled = module(**kwargs, compile_net={"backend": "eager"}).eval()
    compiled.configure_model()
    assert compiled.embed_and_classify._torchdynamo_orig_callable is not None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    torch.testing.assert_close(compiled.compute_loss(x, y), eager.compute_loss(x, y))
    copy = pickle.loads(pickle.dumps(compiled))  # as deepcopy: calls on the copy's own net
    assert copy.embed_and_classify.__self__ is copy
