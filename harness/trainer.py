"""The GAN training loop: Algorithm 1 of Goodfellow et al. (2014), with hooks for tricks.

Per generator step: ``d_steps`` discriminator steps, each on a fresh real minibatch and
fresh noise, then one generator step on fresh noise; separate Adam optimizers and
learning rates for D and G. Every ``log_every`` steps the trainer also measures the
diagnostics of :mod:`harness.names` (losses, D(x), D(G(z)) before and after the G step --
for a critic loss its mean scores and their gap instead --, gradient norms); on other
steps it does nothing but train, so the harness costs
(almost) nothing over a bare loop.

The budget loop around the step (evaluation cadence, reporting, checkpoint state) is
:class:`harness.loop.TrainingLoop`'s; this module is the adversarial game it plays.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from harness import names
from harness.config import DiagnosticSettings, TrainSettings
from harness.data import Dataset
from harness.loop import TrainingLoop
from harness.losses import Loss, hooks_of
from harness.metrics import EvalContext, Metric
from harness.models import GANPair, Model
from harness.tricks import StepContext, Trick


def grad_norm(params: list[torch.nn.Parameter]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))


@contextlib.contextmanager
def frozen(params: Sequence[torch.Tensor]) -> Iterator[None]:
    """``params`` do not require grad inside the block; their flags are restored after,
    also when the block raises.

    For a G step that differentiates through D: D's weights then take no part in the
    autograd graph, so no weight gradient of D is computed or kept.
    """
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


class Trainer(TrainingLoop):
    """The adversarial game: trains one GAN; :meth:`fit` runs the whole budget."""

    def __init__(
        self,
        model: Model,
        gan: GANPair,
        loss: Loss,
        dataset: Dataset,
        metrics: list[Metric],
        settings: TrainSettings,
        diagnostics: DiagnosticSettings,
        seed: int,
        tricks: list[Trick] = (),
        device: torch.device | str = "cpu",
        title: str = "",
    ):
        super().__init__(dataset, metrics, settings, diagnostics, seed, device, title)
        self.model, self.gan, self.loss = model, gan, loss
        self.tricks = list(tricks)
        # the D step applies the tricks changing the targets first (see train_step)
        self._target_tricks = [t for t in self.tricks if "targets" in t.changes]
        self._other_tricks = [t for t in self.tricks if "targets" not in t.changes]
        # the step context is built only when someone reads it
        self._loss_penalises = "penalty" in hooks_of(type(loss))
        for trick in self.tricks:  # before the optimizers: a trick may replace a network
            trick.setup(gan, loss, dataset, model)
        self.G = gan.generator.to(self.device)
        self.D = gan.discriminator.to(self.device)
        gan.generator, gan.discriminator = self.G, self.D
        for trick in self.tricks:
            trick.start(gan)
        s = settings
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=s.lr_d, betas=(s.beta1, s.beta2))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=s.lr_g, betas=(s.beta1, s.beta2))
        self.d_params = list(self.D.parameters())
        self.g_params = list(self.G.parameters())
        self.data = dataset.train_data().to(self.device)
        self.labels = None
        if gan.conditional:
            labels = dataset.train_labels()
            if labels is None:
                raise ValueError(f"a conditional model needs a labelled dataset; "
                                 f"{type(dataset).__name__} has no labels")
            self.labels = labels.to(self.device)
        self.rng = torch.Generator(device=self.device).manual_seed(seed)
        eval_rng = torch.Generator().manual_seed(seed + 1_000_003)
        self.eval_noise = model.noise(s.eval_samples, gan.z_dim, eval_rng).to(self.device)
        self.eval_labels = self._balanced_labels(s.eval_samples)
        self.grid_specs = model.grids(gan, eval_rng)
        self._extra_seed = seed + 2_000_003
        self._extra: tuple[torch.Tensor, torch.Tensor | None] | None = None

    # -- one generator step ---------------------------------------------------------------
    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(0, self.data.shape[0], (self.settings.batch_size,),
                            generator=self.rng, device=self.device)
        return self.data[idx], (None if self.labels is None else self.labels[idx])

    def _latent(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fresh noise, and class labels drawn uniformly when the model is conditional."""
        n = self.settings.batch_size
        z = self.model.noise(n, self.gan.z_dim, self.rng)
        if not self.gan.conditional:
            return z, None
        return z, torch.randint(0, self.gan.n_classes, (n,), generator=self.rng,
                                device=self.device)

    def _balanced_labels(self, n: int) -> torch.Tensor | None:
        if not self.gan.conditional:
            return None
        return (torch.arange(n, device=self.device) % self.gan.n_classes)

    def train_step(self, measure: bool) -> dict[str, float] | None:
        """One generator step preceded by ``d_steps`` discriminator steps.

        Each D step minimises the loss's ``d_loss`` -- passed first through the ``d_loss``
        hooks of the tricks that change the targets, which recompute it --, plus InfoGAN's
        auxiliary term, plus ``loss.penalty(ctx)``, then through the other tricks' ``d_loss``
        hooks in their order (penalties add up); after its optimizer step
        ``loss.after_d_step(D)`` and the tricks' ``after_d_step`` run. With ``measure`` the
        diagnostics are computed and returned (for a ``loss.critic``: the critic scores
        instead of D's probabilities); otherwise None.
        """
        gan, loss, aux = self.gan, self.loss, self.gan.aux
        for _ in range(self.settings.d_steps):
            real, real_y = self._real_batch()
            z, y = self._latent()
            with torch.no_grad():
                fake = gan.generate(z, y)
            real_logits, _ = gan.discriminate(real, real_y)
            fake_logits, fake_aux = gan.discriminate(fake, y)
            loss_d = loss.d_loss(real_logits, fake_logits)
            ctx = None
            if self.tricks or self._loss_penalises:
                ctx = StepContext(self.step, real, fake, real_logits, fake_logits, self.gan,
                                  loss, real_y, y, self.rng)
                # a targets trick recomputes the adversarial term: it sees that term alone,
                # so nothing added below (or by a trick listed before it) is dropped
                for trick in self._target_tricks:
                    loss_d = trick.d_loss(loss_d, ctx)
            if aux is not None:
                loss_d = loss_d + aux.loss(fake_aux, z)
            if ctx is not None:
                penalty = loss.penalty(ctx)
                if penalty is not None:
                    loss_d = loss_d + penalty
                for trick in self._other_tricks:
                    loss_d = trick.d_loss(loss_d, ctx)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if measure:
                grad_d = grad_norm(self.d_params)
            self.opt_d.step()
            loss.after_d_step(self.D)
            for trick in self.tricks:
                trick.after_d_step(self.gan, self.step + 1)

        z, y = self._latent()
        fake = gan.generate(z, y)
        fake_logits, fake_aux = gan.discriminate(fake, y)
        loss_g = loss.g_loss(fake_logits)
        if self.tricks:
            ctx = StepContext(self.step, real, fake, None, fake_logits, self.gan, loss,
                              real_y, y, self.rng)
            for trick in self.tricks:
                loss_g = trick.g_loss(loss_g, ctx)
        if aux is not None:
            loss_q = aux.loss(fake_aux, z)
            loss_g = loss_g + loss_q
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        if measure:
            grad_g = grad_norm(self.g_params)
        self.opt_g.step()
        for trick in self.tricks:
            trick.after_g_step(self.gan, self.step + 1)
        if not measure:
            return None
        with torch.no_grad():
            row = {names.LOSS_D: float(loss_d), names.LOSS_G: float(loss_g)}
            if loss.critic:
                # scores, not probabilities: no sigmoid; the gap estimates the distance
                # (Wasserstein for WGAN) between the data and the samples
                critic_real, critic_fake = float(real_logits.mean()), float(fake_logits.mean())
                row[names.CRITIC_REAL] = critic_real
                row[names.CRITIC_FAKE] = critic_fake
                row[names.CRITIC_GAP] = critic_real - critic_fake
            else:
                d_fake_after = loss.d_prob(gan.discriminate(gan.generate(z, y), y)[0]).mean()
                row[names.D_REAL] = float(loss.d_prob(real_logits).mean())
                row[names.D_FAKE] = float(loss.d_prob(fake_logits).mean())
                row[names.D_FAKE_AFTER] = float(d_fake_after)
            row[names.GRAD_D] = grad_d
            row[names.GRAD_G] = grad_g
            if aux is not None:
                row[names.LOSS_Q] = float(loss_q)
            return row

    # -- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, noise: torch.Tensor | None = None,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """Samples in eval mode, on the CPU; the fixed evaluation noise by default."""
        if noise is None:
            noise, labels = self.eval_noise, self.eval_labels
        was_training = self.G.training
        self.G.eval()
        try:
            chunks = noise.split(4096)
            ys = labels.split(4096) if labels is not None else [None] * len(chunks)
            return torch.cat([self.gan.generate(c.to(self.device),
                                                None if y is None else y.to(self.device))
                              for c, y in zip(chunks, ys)]).cpu()
        finally:
            self.G.train(was_training)

    def generate_extra(self, n: int) -> torch.Tensor:
        """``n`` samples from noise seeded once per trial (the same noise at every eval)."""
        if self._extra is None or self._extra[0].shape[0] < n:
            g = torch.Generator().manual_seed(self._extra_seed)
            z = self.model.noise(n, self.gan.z_dim, g)
            self._extra = (z, self._balanced_labels(n))
        z, y = self._extra
        return self.sample(z[:n], None if y is None else y[:n])

    def eval_context(self) -> EvalContext:
        aux = self.gan.aux
        return EvalContext(
            step=self.step, final=self._is_final(), generate=self.generate_extra,
            labels=None if self.eval_labels is None else self.eval_labels.cpu(),
            codes=None if aux is None else aux.codes(self.eval_noise.cpu()),
        )

    def pictures(self, samples: torch.Tensor, title: str, prefix: str) -> dict[str, bytes]:
        """The PNGs of one evaluation: the model's grids if it has any, else the dataset's."""
        from harness.plots import image_grid_png

        out: dict[str, bytes] = {}
        for grid in self.grid_specs if samples.ndim == 4 else ():
            images = self.sample(grid.z, grid.labels)
            out[f"{prefix}_{grid.name}.png"] = image_grid_png(
                images, grid.ncol, f"{title} - {grid.name}", grid.row_labels, grid.col_labels)
        return out or super().pictures(samples, title, prefix)

    def final_artifacts(self) -> dict[str, bytes]:
        buf = io.BytesIO()
        torch.save(self.G.state_dict(), buf)
        return {names.ARTIFACT_GENERATOR: buf.getvalue()}

    # -- checkpointing ----------------------------------------------------------------------
    def game_state(self) -> dict[str, Any]:
        """Networks, optimizers, trick state and the trainer's RNG."""
        return {
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "tricks": [t.state_dict() for t in self.tricks],
            "rng": self.rng.get_state(),
        }

    def load_game_state(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for trick, ts in zip(self.tricks, state["tricks"]):
            trick.load_state_dict(ts)
        self.rng.set_state(state["rng"])
