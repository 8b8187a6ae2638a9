"""Known values, numerical stability and parameter checks of the built-in losses."""

import math

import pytest
import torch

from harness.errors import ConfigError
from harness.losses import Loss
from harness.plugins import load_plugins
from harness.registry import LOSSES

load_plugins()

LOG2 = math.log(2.0)
BERNOULLI = ("minimax", "non_saturating", "maximum_likelihood")


def build(name, **params):
    return LOSSES.build(name, params)


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


def approx(x, expected, tol=1e-6):
    assert torch.is_tensor(x) and x.ndim == 0, f"loss must be a scalar tensor, got {x!r}"
    assert float(x) == pytest.approx(expected, abs=tol)


def test_builtin_losses_are_registered():
    assert {"minimax", "non_saturating", "maximum_likelihood", "least_squares"} <= set(LOSSES.names())
    for name in LOSSES.names():
        assert issubclass(LOSSES.get(name), Loss)


# --- minimax ------------------------------------------------------------------------


def test_minimax_at_zero_logits():
    loss = build("minimax")
    z = torch.zeros(5)
    approx(loss.d_loss(z, z), 2 * LOG2)  # -log(1/2) - log(1/2)
    approx(loss.g_loss(z), -LOG2)  # log(1 - 1/2)


def test_minimax_known_values():
    loss = build("minimax")
    # D(x) = sigmoid(log 3) = 3/4 -> -log(3/4); D(G(z)) = sigmoid(-log 3) = 1/4 -> -log(3/4)
    approx(loss.d_loss(t(math.log(3)), t(-math.log(3))), -2 * math.log(0.75))
    # g_loss = log(1 - D(G(z))) = log(1 - 3/4) = log(1/4)
    approx(loss.g_loss(t(math.log(3))), math.log(0.25))
    # mean over the batch: logits log3 and -log3 -> mean(log(1/4), log(3/4))
    approx(loss.g_loss(t(math.log(3), -math.log(3))), 0.5 * (math.log(0.25) + math.log(0.75)))


# --- non-saturating -----------------------------------------------------------------


def test_non_saturating_known_values():
    loss = build("non_saturating")
    z = torch.zeros(3)
    approx(loss.d_loss(z, z), 2 * LOG2)
    approx(loss.g_loss(z), LOG2)  # -log(1/2)
    approx(loss.g_loss(t(math.log(3))), -math.log(0.75))  # -log D = -log(3/4)
    approx(loss.g_loss(t(-math.log(3))), -math.log(0.25))


# --- maximum likelihood -------------------------------------------------------------


def test_maximum_likelihood_known_values():
    loss = build("maximum_likelihood")
    z = torch.zeros(4)
    approx(loss.d_loss(z, z), 2 * LOG2)
    approx(loss.g_loss(z), -0.5)  # -1/2 * exp(0)
    approx(loss.g_loss(t(math.log(3))), -1.5)  # -1/2 * D/(1-D) with D = 3/4
    approx(loss.g_loss(t(0.0, math.log(3))), -1.0)  # batch mean of -0.5 and -1.5


# --- least squares ------------------------------------------------------------------


def test_least_squares_defaults():
    loss = build("least_squares")
    assert (loss.a, loss.b, loss.c) == (0.0, 1.0, 1.0)
    z = torch.zeros(4)
    approx(loss.d_loss(z, z), 0.5)  # 1/2 (0-1)^2 + 1/2 (0-0)^2
    approx(loss.g_loss(z), 0.5)  # 1/2 (0-1)^2
    # perfect discriminator: real at b, fake at a -> 0
    approx(loss.d_loss(torch.ones(4), torch.zeros(4)), 0.0)
    approx(loss.g_loss(torch.ones(4)), 0.0)
    # real 2 -> 1/2 * 1; fake 3 -> 1/2 * 9
    approx(loss.d_loss(t(2.0), t(3.0)), 0.5 + 4.5)
    approx(loss.g_loss(t(3.0, -1.0)), 2.0)  # 1/2 * mean((3-1)^2, (-1-1)^2)


def test_least_squares_custom_targets():
    loss = build("least_squares", a=-1.0, b=1.0, c=0.0)
    z = torch.zeros(2)
    approx(loss.d_loss(z, z), 0.5 * 1 + 0.5 * 1)
    approx(loss.g_loss(z), 0.0)
    approx(loss.d_loss(t(1.0), t(-1.0)), 0.0)
    approx(loss.g_loss(t(2.0)), 2.0)  # 1/2 * (2-0)^2
    approx(loss.d_loss(t(3.0), t(1.0)), 0.5 * 4 + 0.5 * 4)


def test_least_squares_params_are_coerced_from_strings():
    loss = LOSSES.build("least_squares", {"a": "-1", "b": "2"})
    assert loss.a == -1.0 and loss.b == 2.0 and isinstance(loss.a, float)


def test_least_squares_d_prob_rescales_targets_to_0_and_1():
    loss = build("least_squares")
    assert torch.allclose(loss.d_prob(t(0.0, 1.0, 0.5)), t(0.0, 1.0, 0.5))
    loss = build("least_squares", a=-1.0, b=1.0, c=0.0)
    assert torch.allclose(loss.d_prob(t(-1.0, 1.0, 0.0)), t(0.0, 1.0, 0.5))
    loss = build("least_squares", a=2.0, b=-2.0)  # reversed targets still map a->0, b->1
    assert torch.allclose(loss.d_prob(t(2.0, -2.0, 0.0)), t(0.0, 1.0, 0.5))


@pytest.mark.parametrize("name", BERNOULLI)
def test_bernoulli_d_prob_is_sigmoid(name):
    loss = build(name)
    assert torch.allclose(loss.d_prob(t(0.0, math.log(3), -math.log(3))), t(0.5, 0.75, 0.25))


def test_least_squares_refuses_equal_targets():
    from harness.builtin.least_squares import LeastSquares

    with pytest.raises(ValueError, match="must differ"):
        LeastSquares(a=1.0, b=1.0)
    # through the registry the ValueError becomes a ConfigError naming the key path
    with pytest.raises(ConfigError, match=r"^loss\.params: loss 'least_squares': .*must differ"):
        LOSSES.build("least_squares", {"a": 0.5, "b": 0.5}, where="loss.params")


# --- numerical stability ------------------------------------------------------------


@pytest.mark.parametrize("name", ["minimax", "non_saturating"])
@pytest.mark.parametrize("value", [200.0, -200.0])
def test_extreme_logits_give_finite_losses_and_gradients(name, value):
    loss = build(name)
    real = torch.full((8,), value, requires_grad=True)
    fake = torch.full((8,), -value, requires_grad=True)
    d = loss.d_loss(real, fake)
    d.backward()
    assert math.isfinite(d.item())
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()

    fake_g = torch.full((8,), value, requires_grad=True)
    g = loss.g_loss(fake_g)
    g.backward()
    assert math.isfinite(g.item())
    assert torch.isfinite(fake_g.grad).all()

    # and swapped: the discriminator is confidently *wrong*
    real2 = torch.full((8,), -value, requires_grad=True)
    fake2 = torch.full((8,), value, requires_grad=True)
    d2 = loss.d_loss(real2, fake2)
    d2.backward()
    assert math.isfinite(d2.item())
    assert torch.isfinite(real2.grad).all() and torch.isfinite(fake2.grad).all()


def test_extreme_logit_values_are_exact():
    """softplus on logits: a confidently wrong D pays ~|logit| per term, not inf."""
    loss = build("minimax")
    approx(loss.d_loss(t(-200.0), t(200.0)), 400.0, tol=1e-3)
    approx(loss.d_loss(t(200.0), t(-200.0)), 0.0)
    approx(loss.g_loss(t(200.0)), -200.0, tol=1e-3)
    ns = build("non_saturating")
    approx(ns.g_loss(t(-200.0)), 200.0, tol=1e-3)
    approx(ns.g_loss(t(200.0)), 0.0)


@pytest.mark.parametrize("name", ["minimax", "non_saturating", "maximum_likelihood"])
def test_d_loss_gradient_sign(name):
    """D's loss decreases when real logits go up and fake logits go down."""
    loss = build(name)
    real = torch.zeros(4, requires_grad=True)
    fake = torch.zeros(4, requires_grad=True)
    loss.d_loss(real, fake).backward()
    # d/dl softplus(-l) at 0 = -1/2, averaged over 4 -> -1/8; softplus(l) -> +1/8
    assert torch.allclose(real.grad, torch.full((4,), -0.125))
    assert torch.allclose(fake.grad, torch.full((4,), 0.125))
