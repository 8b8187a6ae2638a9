"""Penalties on the discriminator's input gradient, as pure functions (torch only).

``critic`` is any callable ``x -> scores of shape (n,)``; in a training step it is
``lambda x: ctx.gan.discriminate(x, labels)[0]``, so conditional and InfoGAN
discriminators work too. Every gradient is taken with ``create_graph=True``: the penalty
is minimised by D's optimizer, which needs the gradient of a gradient (double backward).
Random draws take an explicit ``torch.Generator`` (the trainer's), so a trial stays
reproducible from its seed.

Used by the penalty losses (``wgan_gp``, ``dragan``: :meth:`harness.losses.Loss.penalty`)
and the regularizer tricks (``gradient_penalty``, ``r1``, ``r2``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Critic = Callable[[torch.Tensor], torch.Tensor]


def input_gradient(critic: Critic, x: torch.Tensor) -> torch.Tensor:
    """``∇ₓ sum(critic(x))`` per sample, flattened to ``(n, d)``, differentiable in D's weights.

    Summing the scores gives each sample its own gradient as long as a score depends on its
    own sample only (true of every D without batch statistics)."""
    x = x.detach().requires_grad_(True)
    scores = critic(x)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(critic: Critic, x: torch.Tensor, center: float = 1.0) -> torch.Tensor:
    """``mean over the batch of (‖∇ₓ critic(x)‖₂ − center)²``.

    ``center`` 1: WGAN-GP's one-centred penalty (Gulrajani et al. 2017, eq. 3; DRAGAN);
    ``center`` 0: the zero-centred penalty (Mescheder et al. 2018), computed as the squared
    norm without the square root, whose gradient is undefined at a zero gradient."""
    grad = input_gradient(critic, x)
    if center == 0:
        return grad.pow(2).sum(dim=1).mean()
    return (torch.linalg.vector_norm(grad, dim=1) - center).pow(2).mean()


def squared_grad_norm(critic: Critic, x: torch.Tensor) -> torch.Tensor:
    """``mean over the batch of ‖∇ₓ critic(x)‖₂²`` (R1 on real, R2 on generated samples)."""
    return input_gradient(critic, x).pow(2).sum(dim=1).mean()


def _per_sample_uniform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    return torch.rand(shape, generator=generator, device=generator.device).to(x)


def interpolates(real: torch.Tensor, fake: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """``ε·real + (1 − ε)·fake`` with one ``ε ~ U[0, 1]`` per sample (WGAN-GP's sampling
    distribution), detached from both inputs' graphs."""
    eps = _per_sample_uniform(real, generator)
    return (eps * real.detach() + (1 - eps) * fake.detach())


def dragan_perturb(real: torch.Tensor, generator: torch.Generator, c: float = 0.5) -> torch.Tensor:
    """``x + c·std(x)·u``, ``u ~ U[0, 1]`` per element, ``std`` over the whole batch: the
    perturbed data around which DRAGAN penalises (Kodali et al. 2017, sec. 5; the authors'
    code ``X + 0.5 * X.std() * np.random.random(X.shape)``)."""
    x = real.detach()
    u = torch.rand(x.shape, generator=generator, device=generator.device).to(x)
    return x + c * x.std() * u


__all__ = ["dragan_perturb", "gradient_penalty", "input_gradient", "interpolates",
           "squared_grad_norm"]
