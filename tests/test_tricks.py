"""Tricks: each one's mathematical effect on a tiny case with a known answer, composition
checks at validation time, checkpoint/restore of trick state, and a few real steps of every
compatible model x loss x trick combination."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness.builtin.feature_matching import feature_matching_loss
from harness.builtin.historical_averaging import RunningMean
from harness.builtin.minibatch_discrimination import MinibatchDiscrimination
from harness.config import TrialConfig, parse_study
from harness.errors import ConfigError
from harness.losses import bernoulli_d_loss
from harness.models import GANPair, Model
from harness.plugins import load_plugins
from harness.registry import DATASETS, LOSSES, MODELS, TRICKS, register_model, register_trick
from harness.reporting import MemoryReporter
from harness.resolve import resolve
from harness.trial import run_trial
from harness.tricks import Trick

load_plugins()
SMALL = {"g_hidden": [8, 8], "d_hidden": [8, 8]}


def cfg(tricks, loss="non_saturating", steps=20, model=None, **train):
    return TrialConfig(study="t", variant="v", dataset_key="ring8",
                       model={"name": "mlp", "params": model or SMALL}, loss=loss,
                       tricks=tricks, dataset={"name": "ring8", "params": {"n_train": 2000}},
                       metrics=["mode_coverage"],
                       train=dict(steps=steps, eval_every=10, log_every=5, eval_samples=100,
                                  batch_size=16, **train))


# --- one-sided label smoothing ------------------------------------------------------------

def test_smoothed_bce_is_minimised_at_the_target():
    alpha = 0.9
    real = torch.full((4,), math.log(alpha / (1 - alpha)), requires_grad=True)  # sigmoid = 0.9
    loss = bernoulli_d_loss(real, torch.zeros(4), real_target=alpha, fake_target=0.0)
    loss.backward()
    assert torch.allclose(real.grad, torch.zeros(4), atol=1e-6)
    # value: the entropy of Bernoulli(0.9) plus log 2 for the fake logits at 0
    h = -(alpha * math.log(alpha) + (1 - alpha) * math.log(1 - alpha))
    assert loss.item() == pytest.approx(h + math.log(2), rel=1e-6)


def test_label_smoothing_trick_changes_only_real_targets():
    trick = TRICKS.build("one_sided_label_smoothing", {"alpha": 0.8})
    ns = LOSSES.build("non_saturating")
    real, fake = torch.tensor([0.3, -1.0]), torch.tensor([2.0, 0.5])

    class Ctx:
        real_logits, fake_logits, loss = real, fake, ns

    got = trick.d_loss(ns.d_loss(real, fake), Ctx)
    expected = (0.8 * torch.nn.functional.softplus(-real)
                + 0.2 * torch.nn.functional.softplus(real)).mean() \
        + torch.nn.functional.softplus(fake).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    ls = LOSSES.build("least_squares", {"a": -1.0, "b": 1.0})  # alpha 0.8 -> target 0.6
    got = trick.d_loss(None, type("C", (), dict(real_logits=real, fake_logits=fake, loss=ls)))
    expected = 0.5 * ((real - 0.6) ** 2).mean() + 0.5 * ((fake + 1.0) ** 2).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ConfigError, match="alpha must be in"):
        TRICKS.build("one_sided_label_smoothing", {"alpha": 1.5})


# --- feature matching -----------------------------------------------------------------------

def test_feature_matching_loss_known_values():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    b = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # mean (1, 1)
    assert feature_matching_loss(a, a).item() == 0.0
    assert feature_matching_loss(a, b).item() == pytest.approx(1.0 + 4.0)


def test_feature_matching_replaces_or_adds_to_the_generator_loss():
    torch.manual_seed(0)
    ring = DATASETS.build("ring8", {"n_train": 10})
    gan = MODELS.build("mlp", {"g_hidden": [4], "d_hidden": [6, 5]}).build(ring)
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    fm = feature_matching_loss(gan.discriminator.features(real, 0),
                               gan.discriminator.features(fake, 0))
    ctx = type("C", (), dict(gan=gan, real=real, fake=fake))
    replace = TRICKS.build("feature_matching", {"layer": 0})
    add = TRICKS.build("feature_matching", {"layer": 0, "mode": "add", "weight": 2.0})
    base = torch.tensor(1.5)
    assert replace.g_loss(base, ctx).item() == pytest.approx(fm.item(), rel=1e-6)
    assert add.g_loss(base, ctx).item() == pytest.approx(1.5 + 2 * fm.item(), rel=1e-6)
    assert gan.discriminator.features(real, 0).shape == (8, 6)
    assert gan.discriminator.features(real).shape == (8, 5)


# --- minibatch discrimination ---------------------------------------------------------------

def test_minibatch_discrimination_shape_values_and_permutation_invariance():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(5, b=3, c=4)
    f = torch.randn(6, 5)
    out = mbd(f)
    assert out.shape == (6, 3)
    perm = torch.randperm(6)
    assert torch.allclose(mbd(f[perm]), out[perm], atol=1e-6)
    same = mbd(torch.ones(4, 5))  # identical samples: every c_b(x_i, x_j) = 1
    assert torch.allclose(same, torch.full((4, 3), 3.0))
    assert torch.allclose(mbd(torch.randn(1, 5)), torch.zeros(1, 3))
    # by hand for one pair
    m = (f[:2] @ mbd.T).view(2, 3, 4)
    expected = torch.exp(-(m[0] - m[1]).abs().sum(-1))
    assert torch.allclose(mbd(f[:2])[0], expected, atol=1e-6)


def test_minibatch_discrimination_wraps_d_before_the_optimizer():
    rep = MemoryReporter(keep_checkpoints=True)
    run_trial(cfg([{"name": "minibatch_discrimination", "params": {"b": 4, "c": 3}}]), rep)
    first, last = (c["discriminator"] for c in rep.checkpoints)
    assert first["mbd.T"].shape == (8, 12) and first["head.weight"].shape == (1, 8 + 4)
    # the optimizer was built over the wrapped D: its new parameters were trained
    assert not torch.equal(first["mbd.T"], last["mbd.T"])
    assert not torch.equal(first["head.weight"], last["head.weight"])


# --- historical averaging ---------------------------------------------------------------------

def test_running_mean_is_the_mean_of_all_parameter_values():
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    avg = RunningMean([p])
    seen = [p.detach().clone()]
    for v in ([3.0, 0.0], [5.0, 4.0], [-1.0, 1.0]):
        with torch.no_grad():
            p.copy_(torch.tensor(v))
        avg.update()
        seen.append(p.detach().clone())
    mean = torch.stack(seen).mean(0)
    assert torch.allclose(avg.mean[0], mean)
    assert avg.penalty().item() == pytest.approx(((p - mean) ** 2).sum().item())
    clone = RunningMean([p])
    clone.load_state_dict(avg.state_dict())
    assert clone.t == 4 and torch.allclose(clone.mean[0], mean)


@pytest.mark.parametrize("on", ["g", "d", "both"])
def test_historical_averaging_penalises_and_survives_checkpoint(on):
    torch.set_num_threads(1)
    tricks = [{"name": "historical_averaging", "params": {"weight": 0.1, "apply_to": on}}]
    full = MemoryReporter(keep_checkpoints=True)
    r1 = run_trial(cfg(tricks), full)
    state = full.checkpoints[0]
    assert set(state["tricks"][0]) == ({"g", "d"} if on == "both" else {on})
    assert state["tricks"][0][on if on != "both" else "g"]["t"] > 1
    resumed = run_trial(cfg(tricks), MemoryReporter(resume=state))
    drop = ("train_seconds", "steps_per_second")
    assert {k: v for k, v in r1.final.items() if k not in drop} == \
        {k: v for k, v in resumed.final.items() if k not in drop}


# --- packing ---------------------------------------------------------------------------------

def test_pack_puts_consecutive_samples_side_by_side():
    from harness.builtin.packing import pack

    x = torch.arange(12.0).view(6, 2)
    assert torch.equal(pack(x, 3), torch.tensor([[0.0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]))
    img = torch.arange(2 * 3 * 2 * 2.0).view(2, 3, 2, 2)
    assert pack(img, 2).shape == (1, 6, 2, 2)
    with pytest.raises(ValueError, match="divisible by 4"):
        pack(torch.zeros(6, 2), 4)


def test_packing_builds_a_discriminator_for_m_samples():
    ring = DATASETS.build("ring8", {"n_train": 10})
    model = MODELS.build("mlp", {"g_hidden": [4], "d_hidden": [6]})
    gan = model.build(ring)
    TRICKS.build("packing", {"m": 4}).setup(gan, LOSSES.build("minimax"), ring, model)
    first = next(m for m in gan.discriminator.modules() if isinstance(m, nn.Linear))
    assert first.in_features == 8  # 4 samples x 2 coordinates
    assert gan.discriminator(torch.randn(12, 2)).shape == (3,)
    rep = MemoryReporter()
    run_trial(cfg([{"name": "packing", "params": {"m": 4}}]), rep)
    assert rep.result.steps_done == 20
    with pytest.raises(ValueError, match="divisible by 3"):
        run_trial(cfg([{"name": "packing", "params": {"m": 3}}]), MemoryReporter())


# --- virtual batch norm --------------------------------------------------------------------

def test_vbn_normalises_with_the_reference_batch_plus_the_example():
    from harness.builtin.virtual_batch_norm import VBNGenerator, VirtualBatchNorm

    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    g = VBNGenerator(nn.Sequential(VirtualBatchNorm(bn)), torch.randn(5, 3))
    x = torch.randn(4, 3)
    out = g(x)
    ref = g.z_ref
    for i in range(4):  # by hand: statistics of the 5 reference rows and row i (6 rows)
        rows = torch.cat([ref, x[i:i + 1]])
        mean = rows.mean(0)
        var = (rows * rows).mean(0) - mean * mean
        expected = (x[i] - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias
        assert torch.allclose(out[i], expected, atol=1e-5)
    # an example's output does not depend on the rest of its minibatch
    assert torch.allclose(g(x[:1]), out[:1], atol=1e-6)
    assert torch.allclose(g(torch.cat([x[:1], 100 * torch.randn(7, 3)]))[:1], out[:1], atol=1e-6)


def test_vbn_needs_batchnorm_in_the_generator_and_trains_with_it():
    with pytest.raises(ConfigError, match="trick 'virtual_batch_norm' needs g_batchnorm"):
        resolve(study({"model": "mlp", "loss": "minimax", "tricks": ["virtual_batch_norm"]}))
    plans = resolve(study({"model": {"name": "mlp", "params": {"preset": "pacgan"}},
                           "loss": "minimax", "tricks": ["virtual_batch_norm"]}))
    assert plans[0].base.tricks[0].name == "virtual_batch_norm"
    torch.set_num_threads(1)
    tricks = [{"name": "virtual_batch_norm", "params": {"ref_size": 8}}]
    model = {"g_hidden": [8, 8], "d_hidden": [8], "g_batchnorm": True}
    full = MemoryReporter(keep_checkpoints=True)
    r1 = run_trial(cfg(tricks, model=model), full)
    assert "z_ref" in full.checkpoints[0]["generator"]
    resumed = run_trial(cfg(tricks, model=model), MemoryReporter(resume=full.checkpoints[0]))
    drop = ("train_seconds", "steps_per_second")
    assert {k: v for k, v in r1.final.items() if k not in drop} == \
        {k: v for k, v in resumed.final.items() if k not in drop}


# --- composition checks at validation time ------------------------------------------------------

class NoFeaturesModel(Model):
    """A model whose discriminator exposes no features (for the checks below)."""

    family = "plain"

    def build(self, dataset):
        return GANPair(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 1), nn.Flatten(0)), 2)


class OtherTargets(Trick):
    """Also changes the targets."""

    changes = frozenset({"targets"})


@pytest.fixture
def extra_plugins():
    register_model("test_plain", NoFeaturesModel)
    register_trick("test_other_targets", OtherTargets)
    yield
    MODELS.unregister("test_plain")
    TRICKS.unregister("test_other_targets")


def study(variant):
    return parse_study({"name": "s", "datasets": ["ring8"],
                        "search": {"space": {"lr_d": {"type": "choice", "values": [1e-3]}}},
                        "variants": [{"name": "v", **variant}]})


def test_two_tricks_changing_the_targets_are_refused_naming_both(extra_plugins):
    spec = study({"model": "mlp", "loss": "minimax",
                  "tricks": ["one_sided_label_smoothing", "test_other_targets"]})
    with pytest.raises(ConfigError) as exc:
        resolve(spec)
    assert ("variants[0].tricks: 'one_sided_label_smoothing' and 'test_other_targets' both "
            "change the targets") in str(exc.value)


def test_feature_tricks_need_a_discriminator_with_features(extra_plugins):
    for trick in ("feature_matching", "minibatch_discrimination"):
        with pytest.raises(ConfigError) as exc:
            resolve(study({"model": "test_plain", "loss": "minimax", "tricks": [trick]}))
        assert f"trick '{trick}' needs d_features" in str(exc.value)
        assert "model 'test_plain'" in str(exc.value)


def test_label_smoothing_needs_a_loss_with_targets():
    from tests import plugin_example  # noqa: F401  registers test_hinge

    with pytest.raises(ConfigError, match="trick 'one_sided_label_smoothing' needs loss_targets"):
        resolve(study({"model": "mlp", "loss": "test_hinge",
                       "tricks": ["one_sided_label_smoothing"]}))


def test_penalties_stack_and_compatible_tricks_resolve():
    plans = resolve(study({"model": "mlp", "loss": "least_squares", "tricks": [
        "one_sided_label_smoothing", "feature_matching", "minibatch_discrimination",
        {"name": "historical_averaging", "params": {"apply_to": "g"}},
        {"name": "historical_averaging", "params": {"apply_to": "d"}}]}))
    assert [t.name for t in plans[0].base.tricks][-2:] == ["historical_averaging"] * 2


# --- a few real steps of every compatible combination ---------------------------------------

BUILTIN_TRICKS = ["feature_matching", "historical_averaging", "minibatch_discrimination",
                  "one_sided_label_smoothing", "packing", "virtual_batch_norm"]
NEEDS_BN = {"virtual_batch_norm"}
BUILTIN_LOSSES = ["least_squares", "maximum_likelihood", "minimax", "non_saturating"]


@pytest.mark.parametrize("trick", BUILTIN_TRICKS)
@pytest.mark.parametrize("loss", BUILTIN_LOSSES)
def test_every_trick_trains_with_every_loss(trick, loss):
    rep = MemoryReporter()
    model = {**SMALL, "g_batchnorm": True} if trick in NEEDS_BN else None
    result = run_trial(cfg([trick], loss=loss, steps=10, model=model), rep)
    assert result.steps_done == 10
    for _, row in rep.rows:
        assert all(math.isfinite(v) for v in row.values()), row


def test_compatible_tricks_together_with_pacgan_preset():
    rep = MemoryReporter()
    tricks = [t for t in BUILTIN_TRICKS if t != "packing"]  # packing and MBD both change D's body
    result = run_trial(cfg(tricks, loss="minimax", steps=10,
                           model={"preset": "pacgan", "g_hidden": [16], "d_hidden": [16, 16]}), rep)
    assert result.steps_done == 10


def test_a_batch_packing_cannot_split_is_refused_when_the_study_is_validated():
    packed = {"model": "mlp", "loss": "minimax",
              "tricks": [{"name": "packing", "params": {"m": 3}}]}
    with pytest.raises(ConfigError) as exc:
        resolve(study({**packed, "train": {"batch_size": 64}}))
    assert ("variants[0].tricks[0]: trick 'packing': train.batch_size 64 is not divisible by "
            "m=3 (packs of 3 samples); allowed: a multiple of 3, e.g. 63 or 66") in str(exc.value)
    resolve(study({**packed, "train": {"batch_size": 63}}))
    # every batch size a search may try
    spec = parse_study({"name": "s", "datasets": ["ring8"], "train": {"batch_size": 60},
                        "search": {"space": {"batch_size": {"type": "choice",
                                                            "values": [60, 64]}}},
                        "variants": [{"name": "v", **packed}]})
    with pytest.raises(ConfigError, match=r"search.space.batch_size: variant v/ring8, trick "
                                          r"'packing': train.batch_size 64 is not divisible"):
        resolve(spec)
