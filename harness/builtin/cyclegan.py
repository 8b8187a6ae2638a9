"""``cyclegan``: unpaired image-to-image translation (Zhu et al. 2017) between two domains.

Two generators, G: A -> B and F: B -> A, and two discriminators, D_A and D_B. Per step:

* ``d_steps`` discriminator steps, each on fresh real batches of both domains and
  translations drawn under ``no_grad`` and passed through an **image pool** of the last
  ``pool_size`` translations (Shrivastava et al. 2017; 0 disables it): D_B scores real B
  against G(a), D_A real A against F(b), each with the study's loss (least squares by
  default, as in the paper);
* one generator step on the last D step's batches: the adversarial G loss of both
  directions, plus ``lambda_cycle`` x the cycle-consistency L1
  ``|F(G(a)) - a| + |G(F(b)) - b|``, plus ``lambda_cycle * lambda_identity`` x the identity
  L1 ``|G(b) - b| + |F(a) - a|`` when ``lambda_identity > 0``.

This is the harness's D-then-G order of Algorithm 1 (the official code updates G first,
then D on the same translations: the same sequence shifted by half a step). Identity loss
is off by default: it helps where the domains share colours (photo <-> painting, the
paper's 0.5), but for a geometric change such as a rotation it asks G to leave B images
alone while turning A images, which only slows learning.

Networks, for square images of side 28, 32 or 64 (two stride-2 stages): G is the
paper's ResNet generator (7x7 conv, two stride-2 downsamplings, ``n_res`` residual
blocks, two transposed-conv upsamplings, 7x7 conv, tanh; instance norm, reflection
padding); D is a PatchGAN (two stride-2 4x4 convs, two 3x3 convs, instance norm, LeakyReLU
0.2) whose every output is one patch's logit -- the losses average over patches.

Histories: ``loss_d``, ``loss_g`` (sums over both directions), ``d_real``, ``d_fake``,
``d_fake_after`` (means over both discriminators), ``grad_d``, ``grad_g``, ``loss_cycle``
and ``loss_identity`` (before their weights). Evaluations translate a fixed held-out set of
each domain (``eval_samples`` images); the pictures are rows x, G(x), F(G(x)) per direction.
"""

from __future__ import annotations

import io
from itertools import chain
from typing import Any

import torch
from torch import nn

from harness import names
from harness.config import DiagnosticSettings, TrainSettings
from harness.data import Dataset
from harness.loop import TrainingLoop
from harness.losses import Loss
from harness.metrics import EvalContext, Metric, Translations
from harness.models import Model
from harness.registry import register_model
from harness.trainer import frozen, grad_norm

#: history of the L1 identity term (both directions, before its weight); this game's own
LOSS_IDENTITY = "loss_identity"

SIZES = (28, 32, 64)


def _init(module: nn.Module) -> None:
    """N(0, 0.02) conv weights, zero biases (the paper's ``init_type='normal'``)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image -> image of the same shape (see the module docstring)."""

    def __init__(self, channels: int, ngf: int, n_res: int):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7),
                                   nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        ch = ngf
        for _ in range(2):
            layers += [nn.Conv2d(ch, 2 * ch, 3, 2, 1), nn.InstanceNorm2d(2 * ch), nn.ReLU(True)]
            ch *= 2
        layers += [ResBlock(ch) for _ in range(n_res)]
        for _ in range(2):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1),
                       nn.InstanceNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """Image -> one logit per patch, flattened to ``(n * patches,)``."""

    def __init__(self, channels: int, ndf: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1), nn.InstanceNorm2d(2 * ndf), nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * ndf, 4 * ndf, 3, 1, 1), nn.InstanceNorm2d(4 * ndf),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(4 * ndf, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class CyclePair(nn.Module):
    """What :class:`CycleGAN` builds: G (``g_ab``), F (``g_ba``), ``d_a`` and ``d_b``."""

    def __init__(self, g_ab: nn.Module, g_ba: nn.Module, d_a: nn.Module, d_b: nn.Module):
        super().__init__()
        self.g_ab, self.g_ba, self.d_a, self.d_b = g_ab, g_ba, d_a, d_b

    def generators(self) -> list[nn.Parameter]:
        return list(chain(self.g_ab.parameters(), self.g_ba.parameters()))

    def discriminators(self) -> list[nn.Parameter]:
        return list(chain(self.d_a.parameters(), self.d_b.parameters()))


def cycle_l1(pair: CyclePair, a: torch.Tensor, b: torch.Tensor,
             ab: torch.Tensor | None = None, ba: torch.Tensor | None = None) -> torch.Tensor:
    """``mean|F(G(a)) - a| + mean|G(F(b)) - b|``, zero when F inverts G on both domains;
    ``ab = G(a)`` and ``ba = F(b)`` when already computed."""
    ab = pair.g_ab(a) if ab is None else ab
    ba = pair.g_ba(b) if ba is None else ba
    return (pair.g_ba(ab) - a).abs().mean() + (pair.g_ab(ba) - b).abs().mean()


class ImagePool:
    """The last ``size`` translations; a query returns, image by image, either the new
    image or (with probability 1/2, once the pool is full) a stored one, which the new
    image replaces. ``size = 0`` returns the new images unchanged."""

    def __init__(self, size: int):
        self.size = int(size)
        self.images: torch.Tensor | None = None

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = images.clone()
        stored = self.images
        for i in range(images.shape[0]):
            if stored is None or stored.shape[0] < self.size:
                stored = images[i:i + 1].clone() if stored is None else torch.cat(
                    [stored, images[i:i + 1]])
                continue
            u = torch.rand((), generator=generator, device=generator.device)
            if u < 0.5:
                j = int(torch.randint(0, self.size, (), generator=generator,
                                      device=generator.device))
                out[i] = stored[j]
                stored[j] = images[i]
        self.images = stored
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.images = state["images"]


@register_model("cyclegan")
class CycleGAN(Model):
    """CycleGAN: ResNet generators A->B and B->A, PatchGAN discriminators, cycle L1 (needs a
    two-domain dataset such as mnist_pair)."""

    family = "cyclegan"
    default_loss = "least_squares"
    accepts_tricks = False

    def __init__(self, ngf: int = 32, ndf: int = 32, n_res: int = 3,
                 lambda_cycle: float = 10.0, lambda_identity: float = 0.0,
                 pool_size: int = 50):
        for key, value in (("ngf", ngf), ("ndf", ndf)):
            if value < 1:
                raise ValueError(f"{key} must be >= 1, got {value}")
        if n_res < 0:
            raise ValueError(f"n_res must be >= 0, got {n_res}")
        if lambda_cycle < 0 or lambda_identity < 0:
            raise ValueError(f"lambda_cycle and lambda_identity must be >= 0, got "
                             f"{lambda_cycle} and {lambda_identity}")
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0 (0 disables the pool), got {pool_size}")
        self.ngf, self.ndf, self.n_res = int(ngf), int(ndf), int(n_res)
        self.lambda_cycle, self.lambda_identity = float(lambda_cycle), float(lambda_identity)
        self.pool_size = int(pool_size)

    def capabilities(self) -> frozenset[str]:
        return frozenset({"translation"})

    def check(self, dataset: Dataset) -> None:
        a, b = getattr(dataset, "domain_a", None), getattr(dataset, "domain_b", None)
        if a is None or b is None:
            raise ValueError(f"CycleGAN needs a two-domain dataset (with domain_a and domain_b, "
                             f"e.g. mnist_pair); {type(dataset).__name__} has one domain")
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"the two domains' images differ in shape: {tuple(a.shape)} and "
                             f"{tuple(b.shape)}")
        shape = tuple(a.shape)
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] not in SIZES:
            raise ValueError(f"images must be square with side in {SIZES}, got shape {shape}")

    def build(self, dataset: Dataset) -> CyclePair:
        self.check(dataset)
        c = int(dataset.domain_a.shape[0])
        pair = CyclePair(ResnetGenerator(c, self.ngf, self.n_res),
                         ResnetGenerator(c, self.ngf, self.n_res),
                         PatchDiscriminator(c, self.ndf), PatchDiscriminator(c, self.ndf))
        pair.apply(_init)
        return pair

    def loop_class(self) -> type:
        return CycleLoop


class CycleLoop(TrainingLoop):
    """CycleGAN's game (see the module docstring); tricks are refused at validation."""

    def __init__(self, model: CycleGAN, gan: CyclePair, loss: Loss, dataset: Dataset,
                 metrics: list[Metric], settings: TrainSettings,
                 diagnostics: DiagnosticSettings, seed: int, tricks=(),
                 device: torch.device | str = "cpu", title: str = ""):
        if tricks:
            raise ValueError("CycleGAN's loop takes no tricks")
        super().__init__(dataset, metrics, settings, diagnostics, seed, device, title)
        self.model, self.loss = model, loss
        self.pair = gan.to(self.device)
        s = settings
        self.g_params, self.d_params = self.pair.generators(), self.pair.discriminators()
        self.opt_g = torch.optim.Adam(self.g_params, lr=s.lr_g, betas=(s.beta1, s.beta2))
        self.opt_d = torch.optim.Adam(self.d_params, lr=s.lr_d, betas=(s.beta1, s.beta2))
        self.data_a = dataset.domain_a.train_data().to(self.device)
        self.data_b = dataset.domain_b.train_data().to(self.device)
        self.rng = torch.Generator(device=self.device).manual_seed(seed)
        self.pool_a, self.pool_b = ImagePool(model.pool_size), ImagePool(model.pool_size)
        g = torch.Generator().manual_seed(seed + 1_000_003)
        # fixed held-out images per domain, in a seeded order; evaluations use the first
        # eval_samples, generate(n) the first n
        self.order_a = torch.randperm(dataset.domain_a.heldout_labels().shape[0], generator=g)
        self.order_b = torch.randperm(dataset.domain_b.heldout_labels().shape[0], generator=g)
        self._translations: Translations | None = None

    # -- one step -------------------------------------------------------------------------
    def _batch(self, data: torch.Tensor) -> torch.Tensor:
        idx = torch.randint(0, data.shape[0], (self.settings.batch_size,),
                            generator=self.rng, device=self.device)
        return data[idx]

    def train_step(self, measure: bool) -> dict[str, float] | None:
        P, loss, m = self.pair, self.loss, self.model
        for _ in range(self.settings.d_steps):
            a, b = self._batch(self.data_a), self._batch(self.data_b)
            with torch.no_grad():
                fake_b = self.pool_b.query(P.g_ab(a), self.rng)
                fake_a = self.pool_a.query(P.g_ba(b), self.rng)
            real_b_logits, real_a_logits = P.d_b(b), P.d_a(a)
            loss_d = (loss.d_loss(real_b_logits, P.d_b(fake_b))
                      + loss.d_loss(real_a_logits, P.d_a(fake_a)))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if measure:
                grad_d = grad_norm(self.d_params)
            self.opt_d.step()

        with frozen(self.d_params):
            fake_b, fake_a = P.g_ab(a), P.g_ba(b)
            fake_b_logits, fake_a_logits = P.d_b(fake_b), P.d_a(fake_a)
            adversarial = loss.g_loss(fake_b_logits) + loss.g_loss(fake_a_logits)
            cycle = cycle_l1(P, a, b, fake_b, fake_a)
            loss_g = adversarial + m.lambda_cycle * cycle
            identity = None
            if m.lambda_identity > 0:
                identity = (P.g_ab(b) - b).abs().mean() + (P.g_ba(a) - a).abs().mean()
                loss_g = loss_g + m.lambda_cycle * m.lambda_identity * identity
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            if measure:
                grad_g = grad_norm(self.g_params)
            self.opt_g.step()
        if not measure:
            return None
        with torch.no_grad():
            after = 0.5 * (loss.d_prob(P.d_b(P.g_ab(a))).mean()
                           + loss.d_prob(P.d_a(P.g_ba(b))).mean())
            row = {
                names.LOSS_D: float(loss_d),
                names.LOSS_G: float(loss_g),
                names.D_REAL: float(0.5 * (loss.d_prob(real_b_logits).mean()
                                           + loss.d_prob(real_a_logits).mean())),
                names.D_FAKE: float(0.5 * (loss.d_prob(fake_b_logits).mean()
                                           + loss.d_prob(fake_a_logits).mean())),
                names.D_FAKE_AFTER: float(after),
                names.GRAD_D: grad_d,
                names.GRAD_G: grad_g,
                names.LOSS_CYCLE: float(cycle),
            }
            if identity is not None:
                row[LOSS_IDENTITY] = float(identity)
            return row

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def _map(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        was = net.training
        net.eval()
        try:
            return torch.cat([net(c.to(self.device)).cpu() for c in images.split(1024)])
        finally:
            net.train(was)

    def translate(self, n: int) -> Translations:
        """The first ``n`` held-out images of each domain (fixed order), both ways round."""
        A, B = self.dataset.domain_a, self.dataset.domain_b
        ia, ib = self.order_a[:n], self.order_b[:n]
        a, b = A.heldout_data()[ia], B.heldout_data()[ib]
        ab, ba = self._map(self.pair.g_ab, a), self._map(self.pair.g_ba, b)
        return Translations(a=a, ab=ab, aba=self._map(self.pair.g_ba, ab),
                            a_labels=A.heldout_labels()[ia], b=b, ba=ba,
                            bab=self._map(self.pair.g_ab, ba), b_labels=B.heldout_labels()[ib])

    def sample(self) -> torch.Tensor:
        """G(a) for the evaluation's held-out A images (the metrics read both directions
        from :attr:`EvalContext.translations`)."""
        self._translations = self.translate(self.settings.eval_samples)
        return self._translations.ab

    def eval_context(self) -> EvalContext:
        if self._translations is None:
            self.sample()
        heldout_a = self.dataset.domain_a.heldout_data()
        return EvalContext(step=self.step, final=self._is_final(),
                           generate=lambda n: self._map(self.pair.g_ab,
                                                        heldout_a[self.order_a[:n]]),
                           translations=self._translations)

    def pictures(self, samples: torch.Tensor, title: str, prefix: str) -> dict[str, bytes]:
        """Rows x, G(x), F(G(x)) for 8 held-out images of each domain."""
        from harness.plots import image_grid_png

        t = self._translations if self._translations is not None else self.translate(8)
        out = {}
        for key, rows, labels in (
                ("ab", (t.a, t.ab, t.aba), ["a", "G(a)", "F(G(a))"]),
                ("ba", (t.b, t.ba, t.bab), ["b", "F(b)", "G(F(b))"])):
            images = torch.cat([r[:8] for r in rows])
            out[f"{prefix}_{key}.png"] = image_grid_png(
                images, min(8, rows[0].shape[0]), f"{title} - {key[0]} to {key[1]}", labels)
        return out

    def final_artifacts(self) -> dict[str, bytes]:
        buf = io.BytesIO()
        torch.save({"g_ab": self.pair.g_ab.state_dict(),
                    "g_ba": self.pair.g_ba.state_dict()}, buf)
        return {names.ARTIFACT_GENERATOR: buf.getvalue()}

    # -- checkpointing ----------------------------------------------------------------------
    def game_state(self) -> dict[str, Any]:
        return {"networks": self.pair.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "rng": self.rng.get_state(),
                "pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_game_state(self, state: dict[str, Any]) -> None:
        self.pair.load_state_dict(state["networks"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.rng.set_state(state["rng"])
        self.pool_a.load_state_dict(state["pool_a"])
        self.pool_b.load_state_dict(state["pool_b"])
