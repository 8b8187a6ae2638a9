"""The loss families and regularizers of the large GAN studies: WGAN, WGAN-GP, DRAGAN, hinge,
and the gradient-penalty, R1, R2 and spectral-norm tricks. Known answers on tiny cases,
their hooks in a real Trainer step, validation refusals, critic diagnostics, and a few real
steps of every new loss and trick on an MLP and a DCGAN."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from harness import names
from harness.config import DiagnosticSettings, TrialConfig, parse_study
from harness.diagnostics import d_overpowers
from harness.errors import ConfigError, RegistryError
from harness.losses import hooks_of
from harness.models import GANPair
from harness.penalties import (
    dragan_perturb,
    gradient_penalty,
    interpolates,
    squared_grad_norm,
)
from harness.plugins import load_plugins
from harness.registry import LOSSES, TRICKS, register_loss
from harness.reporting import MemoryReporter
from harness.resolve import resolve
from harness.trial import build_trainer, run_trial
from harness.tricks import StepContext

load_plugins()

NEW_LOSSES = ["wgan", "wgan_gp", "dragan", "hinge"]
NEW_TRICKS = ["gradient_penalty", "r1", "r2", "spectral_norm"]
CRITICS = {"wgan", "wgan_gp", "hinge"}

pytestmark = pytest.mark.usefixtures("one_thread")


def linear_critic(w: torch.Tensor, b: float = 0.3):
    return lambda x: x.flatten(1) @ w + b


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


# --- penalties: known answers on a linear critic -----------------------------------------

@pytest.mark.parametrize("center", [1.0, 0.0])
def test_gradient_penalty_of_a_linear_critic_is_exact(center):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, generator=g)
    x = torch.randn(5, 6, generator=g) * 10  # anywhere: the gradient is w everywhere
    got = gradient_penalty(linear_critic(w), x, center)
    assert got.item() == pytest.approx((w.norm().item() - center) ** 2, rel=1e-5)
    assert squared_grad_norm(linear_critic(w), x).item() == pytest.approx(
        w.norm().item() ** 2, rel=1e-5)


def test_the_penalty_is_differentiable_in_the_critic_weights():
    w = torch.tensor([3.0, 4.0], requires_grad=True)  # |w| = 5
    gp = gradient_penalty(linear_critic(w), torch.randn(4, 2), 1.0)
    (grad,) = torch.autograd.grad(gp, w)
    # d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    assert torch.allclose(grad, 2 * 4 * torch.tensor([3.0, 4.0]) / 5)


def test_interpolates_lie_between_real_and_fake_one_epsilon_per_sample():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.zeros(64, 1, 2, 2), torch.ones(64, 1, 2, 2)
    x = interpolates(real, fake, g)
    per_sample = x.flatten(1)
    assert torch.all(per_sample == per_sample[:, :1])  # the same eps over a sample
    assert per_sample.min() >= 0 and per_sample.max() <= 1 and per_sample.std() > 0.1
    again = interpolates(real, fake, torch.Generator().manual_seed(1))
    assert torch.equal(x, again)  # the trainer's generator makes it reproducible


def test_dragan_perturbation_is_within_c_std_above_the_data():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(128, 3, generator=g)
    p = dragan_perturb(real, g, c=0.5)
    delta = p - real
    assert delta.min() >= 0 and delta.max() <= 0.5 * real.std() + 1e-6
    assert delta.mean().item() == pytest.approx(0.25 * real.std().item(), rel=0.15)


# --- losses: known values on fixed logits -------------------------------------------------

REAL, FAKE = t(2.0, 0.5, -1.0), t(-2.0, 0.5, 1.0)


def test_hinge_known_values():
    hinge = LOSSES.build("hinge")
    # relu(1 - real) = (0, .5, 2), relu(1 + fake) = (0, 1.5, 2)
    assert hinge.d_loss(REAL, FAKE).item() == pytest.approx(2.5 / 3 + 3.5 / 3)
    assert hinge.g_loss(FAKE).item() == pytest.approx(0.5 / 3)
    assert hinge.critic and hooks_of(type(hinge)) == ()


@pytest.mark.parametrize("name", ["wgan", "wgan_gp"])
def test_wgan_known_values(name):
    loss = LOSSES.build(name)
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(-0.5 / 3 - 1.5 / 3)
    assert loss.g_loss(FAKE).item() == pytest.approx(0.5 / 3)
    assert loss.critic and not loss.supports_targets


def test_dragan_is_the_non_saturating_loss_plus_a_penalty():
    dragan, ns = LOSSES.build("dragan"), LOSSES.build("non_saturating")
    assert dragan.d_loss(REAL, FAKE).item() == pytest.approx(ns.d_loss(REAL, FAKE).item())
    assert dragan.g_loss(FAKE).item() == pytest.approx(ns.g_loss(FAKE).item())
    assert not dragan.critic and hooks_of(type(dragan)) == ("penalty",)


def linear_pair(w: torch.Tensor, conditional: bool = False) -> GANPair:
    lin = nn.Linear(w.numel(), 1)
    with torch.no_grad():
        lin.weight.copy_(w[None])
        lin.bias.fill_(0.3)

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = lin

        def forward(self, x, labels=None):
            return self.lin(x).squeeze(1)

    return GANPair(nn.Identity(), D(), 2, n_classes=3 if conditional else None)


def ctx_for(gan, loss=None, step=0, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    real, fake = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g)
    y = torch.zeros(n, dtype=torch.long) if gan.conditional else None
    return StepContext(step, real, fake, gan.discriminate(real, y)[0],
                       gan.discriminate(fake, y)[0], gan, loss, y, y, g)


@pytest.mark.parametrize("name", ["wgan_gp", "dragan"])
@pytest.mark.parametrize("conditional", [False, True])
def test_penalty_losses_on_a_linear_critic(name, conditional):
    w = t(3.0, 4.0)
    loss = LOSSES.build(name, {"gp_weight": 2.0})
    got = loss.penalty(ctx_for(linear_pair(w, conditional), loss))
    assert got.item() == pytest.approx(2.0 * (5 - 1) ** 2, rel=1e-5)


def test_plain_losses_have_no_penalty_and_no_after_d_step():
    for name in ("minimax", "non_saturating", "least_squares", "hinge"):
        loss = LOSSES.build(name)
        assert loss.penalty(None) is None and loss.after_d_step(nn.Linear(1, 1)) is None
        assert loss.provides == frozenset()
    assert LOSSES.build("wgan").provides == {"weight_clipping"}
    assert LOSSES.build("wgan", {"clip": 0}).provides == frozenset()
    assert LOSSES.build("wgan", {"clip": None}).clip is None


# --- tricks: known answers ---------------------------------------------------------------

@pytest.mark.parametrize("center", [1.0, 0.0])
@pytest.mark.parametrize("at", ["interpolates", "real"])
def test_gradient_penalty_trick_adds_weight_times_the_penalty(center, at):
    w = t(3.0, 4.0)
    trick = TRICKS.build("gradient_penalty", {"weight": 10, "center": center, "at": at})
    got = trick.d_loss(torch.tensor(1.5), ctx_for(linear_pair(w)))
    assert got.item() == pytest.approx(1.5 + 10 * (5 - center) ** 2, rel=1e-5)
    with pytest.raises(ConfigError, match="center must be 1.0"):
        TRICKS.build("gradient_penalty", {"center": 0.5})


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_r1_r2_of_a_linear_d_is_half_gamma_squared_norm(name):
    w = t(3.0, 4.0)  # |w|^2 = 25
    trick = TRICKS.build(name, {"gamma": 4.0})
    got = trick.d_loss(torch.tensor(0.0), ctx_for(linear_pair(w), step=7))
    assert got.item() == pytest.approx(4.0 / 2 * 25, rel=1e-5)


def test_lazy_r1_applies_every_k_steps_times_k():
    gan, w2 = linear_pair(t(3.0, 4.0)), 25.0
    trick = TRICKS.build("r1", {"gamma": 2.0, "every": 4})
    values = [trick.d_loss(torch.tensor(0.0), ctx_for(gan, step=s)).item() for s in range(8)]
    assert values == pytest.approx([4 * w2, 0, 0, 0, 4 * w2, 0, 0, 0], rel=1e-5)


@pytest.mark.parametrize("layer", [nn.Linear(7, 5), nn.Conv2d(3, 4, 3),
                                   nn.ConvTranspose2d(4, 3, 4, stride=2)])
def test_spectral_norm_makes_the_top_singular_value_one(layer):
    torch.manual_seed(0)
    d = nn.Sequential(layer)
    gan = GANPair(nn.Identity(), d, 2)
    TRICKS.build("spectral_norm", {"n_power_iterations": 50}).start(gan)
    x = torch.randn(2, 7) if isinstance(layer, nn.Linear) else torch.randn(2, layer.in_channels, 6, 6)
    for _ in range(3):  # power iterations run in training-mode forward passes
        d(x)
    weight = layer.weight
    mat = (weight.transpose(0, 1) if isinstance(layer, nn.ConvTranspose2d) else weight).flatten(1)
    assert torch.linalg.matrix_norm(mat.detach(), ord=2).item() == pytest.approx(1.0, abs=1e-3)


# --- the hooks in a real Trainer step ----------------------------------------------------

def mlp_cfg(loss, tricks=(), steps=6, loss_params=None, log_every=3, seed=0, **train):
    return TrialConfig(
        study="t", variant="v", dataset_key="ring8",
        model={"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
        loss={"name": loss, "params": loss_params or {}}, tricks=list(tricks),
        dataset={"name": "ring8", "params": {"n_train": 2000}}, metrics=["mode_coverage"],
        train=dict(steps=steps, eval_every=steps, log_every=log_every, eval_samples=100,
                   batch_size=16, **train), seed=seed)


def test_wgan_clipping_keeps_every_d_weight_within_c_after_a_step():
    trainer = build_trainer(mlp_cfg("wgan", loss_params={"clip": 0.01}))
    assert max(p.abs().max().item() for p in trainer.D.parameters()) > 0.01  # as initialised
    trainer.train_step(measure=False)
    assert all(p.abs().max().item() <= 0.01 for p in trainer.D.parameters())
    unclipped = build_trainer(mlp_cfg("wgan", loss_params={"clip": 0}))
    unclipped.train_step(measure=False)
    assert max(p.abs().max().item() for p in unclipped.D.parameters()) > 0.01


def test_spectral_norm_is_applied_before_the_optimizer_exists():
    trainer = build_trainer(mlp_cfg("hinge", ["spectral_norm"]))
    linears = [m for m in trainer.D.modules() if isinstance(m, nn.Linear)]
    assert linears and all(hasattr(m, "parametrizations") for m in linears)
    optimised = {id(p) for group in trainer.opt_d.param_groups for p in group["params"]}
    assert all(id(m.parametrizations.weight.original) in optimised for m in linears)


class NaNPenalty(LOSSES.get("non_saturating")):
    """non_saturating with a penalty that is NaN (keeps the graph)."""

    def penalty(self, ctx):
        return ctx.real_logits.mean() * float("nan")


@pytest.fixture
def nan_penalty():
    register_loss("test-nan-penalty", NaNPenalty)
    yield
    LOSSES.unregister("test-nan-penalty")


def test_a_nan_penalty_ends_as_diverged(nan_penalty):
    result = run_trial(mlp_cfg("test-nan-penalty", steps=12, log_every=3), MemoryReporter())
    assert result.status == names.STATUS_DIVERGED
    assert result.steps_done == 3  # stopped at the first logged step
    assert math.isnan(result.history[-1][1][names.LOSS_D])
    assert result.tags[names.TAG_DIVERGED_REASON] == "loss_d = nan at step 3"


def test_penalty_runs_are_reproducible_from_the_seed():
    a = run_trial(mlp_cfg("wgan_gp", ["r1"]), MemoryReporter())
    b = run_trial(mlp_cfg("wgan_gp", ["r1"]), MemoryReporter())
    assert a.history == b.history


# --- critic diagnostics ------------------------------------------------------------------

def test_critic_trials_log_critic_histories_and_never_d_real():
    result = run_trial(mlp_cfg("wgan_gp"), MemoryReporter())
    for _, row in result.history:
        assert set(row) == set(names.CRITIC_STEP_HISTORIES)
        assert row[names.CRITIC_GAP] == pytest.approx(row[names.CRITIC_REAL]
                                                      - row[names.CRITIC_FAKE])
    assert result.status != names.STATUS_D_OVERPOWERS


def test_d_overpowers_does_not_apply_to_critic_histories():
    diag = DiagnosticSettings()
    row = {names.CRITIC_REAL: 50.0, names.CRITIC_FAKE: -50.0, names.CRITIC_GAP: 100.0,
           names.GRAD_G: 0.0}
    assert d_overpowers([(s, row) for s in range(10)], diag) is False
    probs = {names.D_REAL: 1.0, names.D_FAKE: 0.0, names.GRAD_G: 0.0}
    assert d_overpowers([(s, probs) for s in range(10)], diag) is True


# --- validation --------------------------------------------------------------------------

def study(variant, datasets=("ring8",)):
    return parse_study({"name": "s", "datasets": list(datasets),
                        "search": {"space": {"lr_d": {"type": "choice", "values": [1e-3]}}},
                        "variants": [{"name": "v", **variant}]})


def test_weight_clipping_and_spectral_norm_are_refused_together_naming_both():
    with pytest.raises(ConfigError) as exc:
        resolve(study({"model": "mlp", "loss": "wgan", "tricks": ["spectral_norm"]}))
    msg = str(exc.value)
    assert "variants[0].tricks: trick 'spectral_norm' cannot be combined with loss 'wgan'" in msg
    assert "weight_clipping" in msg and "hinge" in msg and "wgan_gp" in msg
    # without clipping they go together
    resolve(study({"model": "mlp", "loss": {"name": "wgan", "params": {"clip": 0}},
                   "tricks": ["spectral_norm"]}))


def test_spectral_norm_of_d_combines_with_virtual_batch_norm_of_g():
    # one normalises D's weights, the other G's batch norm: different things, so both go
    resolve(study({"model": {"name": "mlp", "params": {"g_batchnorm": True}},
                   "loss": "hinge", "tricks": ["spectral_norm", "virtual_batch_norm"]}))
    assert TRICKS.get("spectral_norm").changes == {"d_normalisation"}
    assert TRICKS.get("virtual_batch_norm").changes == {"g_normalisation"}


@pytest.mark.parametrize("trick", ["gradient_penalty", "r1", "r2"])
def test_penalty_tricks_are_refused_on_games_of_their_own(trick):
    with pytest.raises(ConfigError) as exc:
        resolve(study({"model": "xy_game", "tricks": [trick]}, datasets=["xy_game"]))
    assert "model 'xy_game'" in str(exc.value) and repr(trick) in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        resolve(study({"model": "cyclegan", "tricks": [trick]}))
    assert "model 'cyclegan'" in str(exc.value) and repr(trick) in str(exc.value)


def test_penalty_tricks_apply_to_the_families_with_an_input_gradient():
    for trick in ("gradient_penalty", "r1", "r2"):
        assert TRICKS.get(trick).applies_to == {"mlp", "dcgan", "cgan", "infogan"}


@pytest.mark.parametrize("loss", ["wgan", "wgan_gp", "dragan", "hinge"])
def test_losses_with_hooks_or_critics_are_refused_for_cyclegan(loss):
    with pytest.raises(ConfigError) as exc:
        resolve(study({"model": "cyclegan", "loss": loss}))
    msg = str(exc.value)
    assert f"variants[0].loss: loss {loss!r}" in msg and "model 'cyclegan'" in msg
    assert "allowed with 'cyclegan': " in msg and "least_squares" in msg


def test_new_plugins_resolve_with_their_defaults_recorded():
    plans = resolve(study({"model": "mlp", "loss": "dragan",
                           "tricks": ["gradient_penalty", "r1", "r2", "spectral_norm"]}))
    base = plans[0].base
    assert base.loss.params == {"gp_weight": 10.0, "c": 0.5}
    assert [t.params for t in base.tricks] == [
        {"weight": 10.0, "center": 1.0, "at": "interpolates"}, {"gamma": 10.0, "every": 1},
        {"gamma": 10.0, "every": 1}, {"n_power_iterations": 1}]


def test_registering_a_taken_name_is_refused_naming_the_owner():
    with pytest.raises(RegistryError, match="loss 'hinge' is already registered by "
                                            "harness.builtin.hinge.Hinge"):
        register_loss("hinge", NaNPenalty)


# --- vectorization -----------------------------------------------------------------------

def test_fallback_reasons_of_the_new_losses():
    from harness.vector.trial import fallback_reason

    def reason(loss):
        return fallback_reason(TrialConfig(
            study="t", variant="v", dataset_key="ring8", dataset="ring8", loss=loss,
            model={"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
            metrics=["mode_coverage"]))

    assert reason("wgan_gp") == ("loss 'wgan_gp' penalises D's input gradient (double "
                                 "backward), which the stacked layers do not provide")
    assert reason("dragan").startswith("loss 'dragan' penalises D's input gradient")
    assert reason("wgan").startswith("loss 'wgan' changes D after its steps (after_d_step")
    assert reason("hinge").startswith("loss 'hinge' scores with a critic")
    assert reason("non_saturating") is None


# --- a few real steps of every new loss and trick on an MLP and a DCGAN -------------------

def smoke_cfg(model, loss, tricks, mnist_dir):
    train = dict(steps=4, eval_every=4, log_every=2, eval_samples=20, batch_size=8, d_steps=2)
    if model == "mlp":
        return mlp_cfg(loss, tricks, steps=4, log_every=2, d_steps=2)
    return TrialConfig(
        study="t", variant="v", dataset_key="mnist",
        model={"name": "dcgan", "params": {"ngf": 8, "ndf": 8, "z_dim": 8}},
        loss={"name": loss}, tricks=list(tricks),
        dataset={"name": "mnist", "params": {"root": str(mnist_dir), "n_train": 64}},
        metrics=[], train=train, seed=0)


SMOKE = ([(loss, []) for loss in NEW_LOSSES]
         + [("hinge" if trick == "spectral_norm" else "non_saturating", [trick])
            for trick in NEW_TRICKS])


@pytest.mark.parametrize("model", ["mlp", "dcgan"])
@pytest.mark.parametrize("loss,tricks", SMOKE)
def test_every_new_loss_and_trick_trains(request, model, loss, tricks):
    mnist_dir = request.getfixturevalue("mnist_dir") if model == "dcgan" else None
    rep = MemoryReporter()
    result = run_trial(smoke_cfg(model, loss, tricks, mnist_dir), rep)
    assert result.steps_done == 4 and result.status != names.STATUS_DIVERGED
    expected = names.CRITIC_STEP_HISTORIES if loss in CRITICS else names.STEP_HISTORIES
    assert [s for s, _ in result.history] == [2, 4]
    for _, row in result.history:
        assert set(row) == set(expected), row
        assert all(math.isfinite(v) for v in row.values()), row


@pytest.mark.parametrize("model,params", [
    ("cgan", {"g_hidden": [16], "d_hidden": [16], "z_dim": 8}),
    ("infogan", {"ngf": 4, "ndf": 4, "z_dim": 8, "q_hidden": 8}),
])
def test_penalties_use_the_labels_of_conditional_and_infogan_discriminators(
        mnist_dir, model, params):
    cfg = TrialConfig(
        study="t", variant="v", dataset_key="mnist", model={"name": model, "params": params},
        loss={"name": "wgan_gp"}, tricks=["r1", "r2", "gradient_penalty"],
        dataset={"name": "mnist", "params": {"root": str(mnist_dir), "n_train": 64}},
        metrics=[], train=dict(steps=2, eval_every=2, log_every=2, eval_samples=20,
                               batch_size=8), seed=0)
    result = run_trial(cfg, MemoryReporter())
    assert result.steps_done == 2 and result.status != names.STATUS_DIVERGED
    assert names.CRITIC_GAP in result.history[-1][1]


def test_the_report_plots_the_critic_gap_beside_the_losses(monkeypatch):
    import pandas as pd

    from harness.reports import curves
    from harness.reports.load import RUN_ID

    assert names.CRITIC_GAP in curves.PLOT_HISTORIES
    shapes = []
    real_panels = curves.panels

    def recording(nrows, ncols, title):
        shapes.append((nrows, ncols))
        return real_panels(nrows, ncols, title)

    monkeypatch.setattr(curves, "panels", recording)
    rows = {v: pd.DataFrame({RUN_ID: [v], names.TAG_SEED: [0],
                             names.TAG_PHASE: [names.PHASE_SEEDS]}) for v in ("wgan", "ns")}
    steps = pd.Series([1.0, 0.5], index=[10, 20])
    hist = {(rid, k): steps for rid in ("wgan", "ns") for k in (names.LOSS_D, names.LOSS_G)}
    hist[("wgan", names.CRITIC_GAP)] = steps
    png = curves.losses_figure("ring8", list(rows.items()), hist, {"wgan": "C0", "ns": "C1"})
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert shapes == [(2, 3)]  # loss_d, loss_g and the gap (hidden in the row of "ns")
    del hist[("wgan", names.CRITIC_GAP)]
    curves.losses_figure("ring8", list(rows.items()), hist, {"wgan": "C0", "ns": "C1"})
    assert shapes[-1] == (2, 2)


class NaNPenaltyTrick(TRICKS.get("r1")):
    """A penalty trick whose term is NaN."""

    def d_loss(self, value, ctx):
        return value + ctx.real_logits.mean() * float("nan")


@pytest.fixture
def nan_trick():
    from harness.registry import register_trick

    register_trick("test-nan-trick", NaNPenaltyTrick)
    yield
    TRICKS.unregister("test-nan-trick")


@pytest.mark.parametrize("tricks", [["test-nan-trick", "one_sided_label_smoothing"],
                                    ["one_sided_label_smoothing", "test-nan-trick"]])
def test_a_penalty_survives_label_smoothing_in_either_order(nan_trick, tricks):
    """Label smoothing recomputes the adversarial term first, so a penalty listed before it
    is not dropped: the NaN penalty diverges the run in both orders."""
    result = run_trial(mlp_cfg("non_saturating", tricks, steps=6), MemoryReporter())
    assert result.status == names.STATUS_DIVERGED


def test_dragan_penalty_survives_label_smoothing(nan_penalty):
    result = run_trial(mlp_cfg("test-nan-penalty", ["one_sided_label_smoothing"], steps=6),
                       MemoryReporter())
    assert result.status == names.STATUS_DIVERGED


# --- D's normalisation in the DCGAN: batch, layer or none ---------------------------------

def test_dcgan_layer_norm_in_d_is_per_sample_and_refuses_unknown_norms(mnist_dir):
    from harness.builtin.dcgan import ConvDiscriminator
    from harness.registry import MODELS

    torch.manual_seed(0)
    x = torch.randn(6, 1, 28, 28)
    layer = ConvDiscriminator(1, 28, 8, norm="layer").train()
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in layer.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in layer.modules())
    # per sample: an image's score does not depend on the rest of its batch (batch norm's does)
    assert torch.allclose(layer(x)[:2], layer(x[:2]), atol=1e-6)
    batch = ConvDiscriminator(1, 28, 8, norm="batch").train()
    assert not torch.allclose(batch(x)[:2], batch(x[:2]), atol=1e-6)
    none = ConvDiscriminator(1, 28, 8, norm="none")
    assert not any(isinstance(m, (nn.GroupNorm, nn.BatchNorm2d)) for m in none.modules())
    with pytest.raises(ConfigError, match="d_norm: Input should be 'batch', 'layer' or 'none'"):
        MODELS.build("dcgan", {"d_norm": "group"})


def test_wgan_gp_trains_with_layer_norm_in_the_dcgan_critic(mnist_dir):
    cfg = smoke_cfg("dcgan", "wgan_gp", [], mnist_dir).model_dump()
    cfg["model"]["params"]["d_norm"] = "layer"
    cfg = TrialConfig.model_validate(cfg)
    result = run_trial(cfg, MemoryReporter())
    assert result.steps_done == 4 and result.status != names.STATUS_DIVERGED
    from harness.vector.trial import fallback_reason

    assert "penalises D's input gradient" in fallback_reason(cfg)
    plain = cfg.model_dump()
    plain["loss"] = {"name": "non_saturating"}
    # layer norm does not stack: vectorize runs such a pair one copy per trial, saying why
    assert "cannot stack GroupNorm" in fallback_reason(TrialConfig.model_validate(plain))
