"""The GAN training loop: Algorithm 1 of Goodfellow et al. (2014), with hooks for tricks.

Per generator step: ``d_steps`` discriminator steps, each on a fresh real minibatch and
fresh noise, then one generator step on fresh noise; separate Adam optimizers and
learning rates for D and G. Every ``log_every`` steps the trainer also measures the
diagnostics of :mod:`harness.names` (losses, D(x), D(G(z)) before and after the G step,
gradient norms); on other steps it does nothing but train, so the harness costs
(almost) nothing over a bare loop.

The trainer knows nothing of Ray or MLflow: it talks to a
:class:`~harness.reporting.Reporter`.
"""

from __future__ import annotations

import io
import time
from typing import Any

import torch

from harness import names
from harness.config import DiagnosticSettings, TrainSettings
from harness.data import Dataset
from harness.diagnostics import EvalRecord, is_bad, summarize
from harness.losses import Loss
from harness.metrics import Metric
from harness.models import GANPair, Model
from harness.reporting import Reporter, TrialResult
from harness.tricks import StepContext, Trick


def grad_norm(params: list[torch.nn.Parameter]) -> float:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))))


class Trainer:
    """Trains one GAN; :meth:`fit` runs the whole budget and reports as it goes."""

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
        self.model, self.gan, self.loss, self.dataset = model, gan, loss, dataset
        self.metrics, self.settings, self.diag = list(metrics), settings, diagnostics
        self.tricks = list(tricks)
        self.device = torch.device(device)
        self.title = title
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
        self.rng = torch.Generator(device=self.device).manual_seed(seed)
        eval_rng = torch.Generator().manual_seed(seed + 1_000_003)
        self.eval_noise = model.noise(s.eval_samples, gan.z_dim, eval_rng).to(self.device)
        self.step = 0
        self.train_seconds = 0.0
        self.diverged = False
        self.history: list[tuple[int, dict[str, float]]] = []
        self.evals: list[EvalRecord] = []

    # -- one generator step ---------------------------------------------------------------
    def _real_batch(self) -> torch.Tensor:
        idx = torch.randint(0, self.data.shape[0], (self.settings.batch_size,),
                            generator=self.rng, device=self.device)
        return self.data[idx]

    def _noise(self) -> torch.Tensor:
        return self.model.noise(self.settings.batch_size, self.gan.z_dim, self.rng)

    def train_step(self, measure: bool) -> dict[str, float] | None:
        """One generator step preceded by ``d_steps`` discriminator steps.

        With ``measure`` the diagnostics are computed and returned; otherwise None.
        """
        G, D, loss = self.G, self.D, self.loss
        for _ in range(self.settings.d_steps):
            real = self._real_batch()
            with torch.no_grad():
                fake = G(self._noise())
            real_logits, fake_logits = D(real), D(fake)
            loss_d = loss.d_loss(real_logits, fake_logits)
            if self.tricks:
                ctx = StepContext(self.step, real, fake, real_logits, fake_logits, self.gan, loss)
                for trick in self.tricks:
                    loss_d = trick.d_loss(loss_d, ctx)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if measure:
                grad_d = grad_norm(self.d_params)
            self.opt_d.step()
            for trick in self.tricks:
                trick.after_d_step(self.gan, self.step + 1)

        z = self._noise()
        fake = G(z)
        fake_logits = D(fake)
        loss_g = loss.g_loss(fake_logits)
        if self.tricks:
            ctx = StepContext(self.step, real, fake, None, fake_logits, self.gan, loss)
            for trick in self.tricks:
                loss_g = trick.g_loss(loss_g, ctx)
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
            d_fake_after = loss.d_prob(D(G(z))).mean()
            return {
                names.LOSS_D: float(loss_d),
                names.LOSS_G: float(loss_g),
                names.D_REAL: float(loss.d_prob(real_logits).mean()),
                names.D_FAKE: float(loss.d_prob(fake_logits).mean()),
                names.D_FAKE_AFTER: float(d_fake_after),
                names.GRAD_D: grad_d,
                names.GRAD_G: grad_g,
            }

    # -- evaluation ---------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, noise: torch.Tensor | None = None) -> torch.Tensor:
        noise = self.eval_noise if noise is None else noise
        was_training = self.G.training
        self.G.eval()
        try:
            return torch.cat([self.G(chunk) for chunk in noise.split(4096)]).cpu()
        finally:
            self.G.train(was_training)

    def evaluate(self) -> tuple[EvalRecord, torch.Tensor]:
        samples = self.sample()
        values: dict[str, float] = {}
        covered = None
        for metric in self.metrics:
            ev = metric.evaluate(samples, self.dataset)
            values.update(ev.values)
            covered = ev.extras.get("covered_modes", covered)
        record = EvalRecord(self.step, values, covered)
        self.evals.append(record)
        return record, samples

    def n_modes(self) -> int | None:
        n = getattr(self.dataset, "n_modes", None)
        return int(n) if n else None

    # -- the whole budget -----------------------------------------------------------------
    def fit(self, reporter: Reporter) -> TrialResult:
        s = self.settings
        pending: list[tuple[int, dict[str, float]]] = []
        samples = None
        while self.step < s.steps and not self.diverged:
            stop_at = min(s.steps, (self.step // s.eval_every + 1) * s.eval_every)
            t0 = time.perf_counter()
            while self.step < stop_at:
                row = self.train_step(measure=(self.step + 1) % s.log_every == 0)
                self.step += 1
                if row is not None:
                    pending.append((self.step, row))
                    if is_bad(row[names.LOSS_D], self.diag.diverge_loss) or is_bad(
                            row[names.LOSS_G], self.diag.diverge_loss):
                        self.diverged = True
                        break
            self.train_seconds += time.perf_counter() - t0
            record, samples = self.evaluate()
            self.history.extend(pending)
            reporter.history(pending)
            pending = []
            artifacts = {}
            png = self.dataset.plot_samples(samples, self._plot_title(record))
            if png is not None:
                artifacts[f"{names.ARTIFACT_SAMPLES_DIR}/step_{self.step:07d}.png"] = png
            reporter.evaluation(self.step, record.values, artifacts, self.state_dict)
        if samples is None:  # restored after the last evaluation: nothing left to train
            samples = self.sample()
        return self._finish(reporter, samples)

    def _plot_title(self, record: EvalRecord) -> str:
        n = self.n_modes()
        cov = record.values.get(names.MODES_COVERED)
        extra = f" - {int(cov)}/{n} modes" if n and cov is not None else ""
        return f"{self.title} step {record.step}{extra}".strip()

    def _finish(self, reporter: Reporter, samples: torch.Tensor) -> TrialResult:
        summary = summarize(self.evals, self.history, self.n_modes(), self.settings.steps,
                            self.diag, self.diverged)
        final = dict(self.evals[-1].values) if self.evals else {}
        final.update(summary.metrics)
        final[names.STEPS_DONE] = float(self.step)
        final[names.TRAIN_SECONDS] = self.train_seconds
        if self.train_seconds > 0:
            final[names.STEPS_PER_SECOND] = self.step / self.train_seconds
        if self.n_modes():
            final[names.N_MODES] = float(self.n_modes())
        result = TrialResult(status=summary.status, final=final, steps_done=self.step,
                             train_seconds=self.train_seconds, evals=list(self.evals),
                             history=list(self.history))
        buf = io.BytesIO()
        torch.save(self.G.state_dict(), buf)
        artifacts = {names.ARTIFACT_GENERATOR: buf.getvalue()}
        png = self.dataset.plot_samples(samples, f"{self._plot_title(self.evals[-1])} [{summary.status}]")
        if png is not None:
            artifacts[names.ARTIFACT_FINAL_SAMPLES] = png
        reporter.finish(result, artifacts)
        return result

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The whole trial state: networks, optimizers, trick state, RNG, step, histories."""
        return {
            "step": self.step,
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "tricks": [t.state_dict() for t in self.tricks],
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "train_seconds": self.train_seconds,
            "diverged": self.diverged,
            "history": list(self.history),
            "evals": [(e.step, dict(e.values), sorted(e.covered) if e.covered is not None else None)
                      for e in self.evals],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for trick, ts in zip(self.tricks, state["tricks"]):
            trick.load_state_dict(ts)
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.train_seconds = float(state["train_seconds"])
        self.diverged = bool(state["diverged"])
        self.history = list(state["history"])
        self.evals = [EvalRecord(s, v, frozenset(c) if c is not None else None)
                      for s, v, c in state["evals"]]

