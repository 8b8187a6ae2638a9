"""The MLP family: the published PacGAN architecture and the fast default, built and stepped."""

from __future__ import annotations

import torch
from torch import nn

from harness.config import TrialConfig
from harness.plugins import load_plugins
from harness.registry import DATASETS, MODELS
from harness.reporting import MemoryReporter
from harness.trial import run_trial

load_plugins()


def layers(module: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


def test_pacgan_preset_is_the_published_architecture():
    ring = DATASETS.build("ring8", {"n_train": 100})
    gan = MODELS.build("mlp", {"preset": "pacgan"}).build(ring)
    assert gan.z_dim == 2
    g_linear = layers(gan.generator, nn.Linear)
    assert [(m.in_features, m.out_features) for m in g_linear] == [
        (2, 400), (400, 400), (400, 400), (400, 400), (400, 2)]
    assert [m.num_features for m in layers(gan.generator, nn.BatchNorm1d)] == [400] * 4
    assert len(layers(gan.generator, nn.ReLU)) == 4
    maxout = [m for m in gan.discriminator.modules() if type(m).__name__ == "Maxout"]
    assert [(m.n_out, m.pieces) for m in maxout] == [(200, 5)] * 3
    assert [(m.in_features, m.out_features) for m in layers(gan.discriminator, nn.Linear)] == [
        (2, 1000), (200, 1000), (200, 1000), (200, 1)]
    logits = gan.discriminator(torch.randn(7, 2))
    assert logits.shape == (7,)
    # maxout is the max over the pieces
    m = maxout[0]
    x = torch.randn(3, 2)
    expected = m.linear(x).view(3, 200, 5).max(dim=-1).values
    assert torch.equal(m(x), expected)


def test_the_pacgan_preset_starts_from_the_papers_normal_weights():
    ring = DATASETS.build("ring8", {"n_train": 100})
    torch.manual_seed(0)
    gan = MODELS.build("mlp", {"preset": "pacgan"}).build(ring)
    for net in (gan.generator, gan.discriminator):
        for m in layers(net, nn.Linear):
            assert torch.equal(m.bias, torch.zeros_like(m.bias))
            assert abs(float(m.weight.detach().std()) - 0.02) < 0.02 * 0.2, m  # 400+ draws a layer
    for bn in layers(gan.generator, nn.BatchNorm1d):  # batch norm as the paper's: 1 and 0
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
    # PyTorch's own start: uniform within 1/sqrt(fan_in), biases not all zero
    torch.manual_seed(0)
    plain = MODELS.build("mlp", {"preset": "pacgan", "init": "pytorch"}).build(ring)
    first = layers(plain.discriminator, nn.Linear)[0]
    assert float(first.weight.detach().abs().max()) <= 1 / 2 ** 0.5 and float(first.weight.detach().std()) > 0.2
    assert bool(first.bias.ne(0).any())
    # a packed D (PacGAN's) is built by the model, so it starts the same way
    from harness.builtin.packing import Packing
    from harness.registry import LOSSES

    model = MODELS.build("mlp", {"preset": "pacgan"})
    packed = model.build(ring)
    Packing(m=3).setup(packed, LOSSES.build("non_saturating", {}), ring, model)
    first = layers(packed.discriminator, nn.Linear)[0]
    assert first.in_features == 6 and abs(float(first.weight.detach().std()) - 0.02) < 0.004


def test_default_preset_and_overrides():
    ring = DATASETS.build("ring8", {"n_train": 100})
    gan = MODELS.build("mlp", {}).build(ring)
    assert [(m.in_features, m.out_features) for m in layers(gan.generator, nn.Linear)] == [
        (2, 128), (128, 128), (128, 128), (128, 2)]
    assert not layers(gan.generator, nn.BatchNorm1d)
    gan = MODELS.build("mlp", {"preset": "pacgan", "g_hidden": [32], "z_dim": 5}).build(ring)
    assert [(m.in_features, m.out_features) for m in layers(gan.generator, nn.Linear)] == [
        (5, 32), (32, 2)]
    assert layers(gan.generator, nn.BatchNorm1d)  # the rest of the preset stays


def test_pacgan_preset_trains_a_few_steps():
    cfg = TrialConfig(study="t", variant="pac", dataset_key="ring8",
                      model={"name": "mlp", "params": {"preset": "pacgan"}}, loss="non_saturating",
                      dataset={"name": "ring8", "params": {"n_train": 1000}},
                      metrics=["mode_coverage"],
                      train=dict(steps=6, eval_every=6, log_every=3, eval_samples=100,
                                 batch_size=16, d_steps=2))
    rep = MemoryReporter()
    result = run_trial(cfg, rep)
    assert result.steps_done == 6 and [s for s, _ in rep.rows] == [3, 6]
    assert all(torch.isfinite(torch.tensor(list(row.values()))).all() for _, row in rep.rows)
