"""N copies of one GAN trial trained as one vectorized model: :class:`VectorizedGAN`.

Copy ``k`` of a :class:`VectorizedGAN` built from trial configs ``cfgs`` plays exactly the
game a single-copy :class:`harness.trainer.Trainer` built by
:func:`harness.trial.build_trainer` from ``cfgs[k]`` plays, step for step:

* **Initialisation.** Each copy's networks are built the way ``build_trainer`` builds them
  (``torch.manual_seed(cfg.seed)``, then the dataset, the model, ``model.build`` and the
  ``setup`` of its tricks, which may rebuild a network: packing's D), and
  their parameters are *stacked* by the networks' own classes (``stack_copies``,
  :mod:`harness.vector.stacking`: batched products, :mod:`harness.vector.linear`, or
  grouped convolutions, :mod:`harness.vector.conv`), so copy ``k`` starts from bit-equal
  weights.
* **Noise and data.** ``Trainer`` draws every minibatch index and every latent from one
  ``torch.Generator(device).manual_seed(seed)`` (not from the global RNG), in a fixed
  order per step: ``d_steps`` x (``randint`` for the real batch, ``model.noise`` for the
  fakes), then ``model.noise`` for the generator step. Each copy here owns such a generator
  and makes the same calls in the same order, so it draws bit-equal batches and noise.
  The evaluation noise is the Trainer's too (``seed + 1_000_003``; ``seed + 2_000_003`` for
  :meth:`VectorizedGAN.sample` with ``n``).
* **Algorithm 1.** One step is ``d_steps`` discriminator steps, each on a fresh real
  batch and fresh noise, then one generator step on fresh noise -- ``Trainer.train_step``.
* **Gradients.** The loss minimised is the *sum* over copies of each copy's loss (the
  harness's registered :class:`~harness.losses.Loss` applied per copy, with ``torch.vmap``
  or a loop, so its ``.mean()`` is a per-copy mean). Copy ``k``'s parameters appear only in copy
  ``k``'s term, so the gradient of the sum with respect to them is copy ``k``'s own
  gradient. (A mean over copies would scale every gradient by ``1/N``; Adam is almost
  invariant to that, but not exactly: ``eps``.)
* **Optimiser.** :class:`~harness.vector.adam.StackedAdam` is ``torch.optim.Adam`` (the
  single-tensor CPU path, which the Trainer gets on the CPU) with per-copy ``lr``,
  ``beta1``, ``beta2`` tensors: the same operations, in the same order, on the same
  float32 constants. Param groups cannot split one stacked tensor, and scaling copy
  ``k``'s loss does not change its Adam step, so a per-copy learning rate needs per-copy
  tensors.

Bit-equality. On the CPU (eager) copy ``k``'s parameters, diagnostics rows and
evaluation samples are *bit-equal* to its single-copy trial's at every step
(``tests/test_vectorized.py``: 200 steps, and under MKL's AVX2/SSE4.2 and ATen's AVX2 and
scalar kernels). That takes care in three places:
:class:`~harness.vector.linear.StackedLinear` keeps ``nn.Linear``'s weight layout,
computes its weight gradient as ``F.linear``'s backward does and a one-unit head's per
copy, so every product rounds like the single layer's;
:class:`~harness.vector.adam.StackedAdam` feeds per-copy coefficients through
``addcmul_``/``addcdiv_`` so the kernels' rounding (fused multiply-adds) is torch's; the
gradient norm is the norm of the per-tensor norms with each copy's norms contiguous, as
``harness.trainer.grad_norm`` computes it. On CUDA or another BLAS the batched and single
matmuls may accumulate in another order: equal to float32 rounding, drifting apart slowly
like any two runs that differ in the last bit.

Throughput. Each step makes ``N x (2 d_steps + 1)`` small RNG calls (one per copy and
draw, as the Trainer makes them); everything else is one batched operation for all
copies. ``StackedLinear``'s backward returns weight gradients in the weights' own
layout, and ``StackedAdam``'s eager update allocates nothing and keeps zeros and
subnormals out of ``torch.sqrt`` (both exact; docs/vectorize.md has the measurements). The
loss is applied with ``torch.vmap`` (``loss_mode``). ``compile`` compiles the networks and
the Adam update with ``torch.compile``; on the 2-core CPU it measured no faster than eager
(docs/vectorize.md), and it gives up bit-equality, so the default is eager.

Divergence. A copy whose loss or gradient is NaN/inf at some optimiser step is *frozen*
before that step is applied: its gradients are masked to zero and its Adam coefficients to
"no update" (``StackedAdam.step``'s ``active``), on the device, without a host sync. A
copy whose *logged* loss exceeds ``diagnostics.diverge_loss`` (the rule of
:class:`harness.loop.TrainingLoop`) is frozen at that log step. Frozen copies are reported
in :attr:`VectorizedGAN.diverged` with the step; the others are unaffected (every operation
here is per copy: batched matmuls, per-copy means, element-wise Adam), so their parameters
equal those of a run without the diverged copy. A single-copy Trainer would report a
non-finite loss only at its next logged step (its ``steps_done`` is that step); its
parameters by then may be NaN, a frozen copy's are its last finite ones.

Copies stacked as grouped convolutions (the DCGAN's) are equal to float32 rounding rather
than bit for bit: a grouped convolution is another kernel than the single one
(:mod:`harness.vector.conv`).

Scope: unconditional models without an auxiliary head that play the Trainer's game,
whose network classes declare how their copies stack (:mod:`harness.vector.stacking`),
with any registered loss (a trial is vectorized only with a loss that declares itself
vectorizable: :func:`harness.vector.trial.fallback_reason`) and only tricks that change the
networks alone (``Trick.vectorizable``: packing), whose ``setup`` runs for every copy as
the Trainer runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from harness import names
from harness.config import TrialConfig
from harness.diagnostics import is_bad
from harness.metrics import ModeCoverage
from harness.trainer import frozen
from harness.vector.adam import StackedAdam, check_compile_mode
from harness.vector.stacking import stack_networks, stepping_tricks

#: train settings that may differ between the copies (everything else must agree)
PER_COPY_TRAIN = ("lr_d", "lr_g", "beta1", "beta2")


def check_compatible(cfgs: Sequence[TrialConfig]) -> None:
    first = cfgs[0]
    for i, cfg in enumerate(cfgs[1:], 1):
        for part in ("model", "loss", "dataset", "tricks", "plugins", "plugin_paths",
                     "diagnostics"):
            if getattr(cfg, part) != getattr(first, part):
                raise ValueError(f"copy {i} differs from copy 0 in {part!r}; copies may "
                                 f"differ only in seed and {', '.join(PER_COPY_TRAIN)}")
        a, b = first.train.model_dump(), cfg.train.model_dump()
        diff = sorted(key for key in a if key not in PER_COPY_TRAIN and a[key] != b[key])
        if diff:
            raise ValueError(f"copy {i} differs from copy 0 in train.{', train.'.join(diff)}; "
                             f"copies may differ only in seed and {', '.join(PER_COPY_TRAIN)}")
    if first.loss is None:
        raise ValueError("the vectorized GAN needs a loss")


class VectorizedGAN:
    """``N`` GANs, one per trial config, trained as one stacked model.

    Copy ``k`` equals the single-copy ``Trainer`` of ``build_trainer(cfgs[k])`` (see the
    module docstring for what is equal and why): same initial weights, same real batches
    and noise, same Algorithm-1 step, same Adam update with its own ``lr_d``, ``lr_g``,
    ``beta1``, ``beta2``, same diagnostics rows. Copies may differ only in those four
    settings and the seed.

    ``loss_mode``: ``"vmap"`` applies the registered loss per copy with ``torch.vmap``
    (one call for all copies); ``"loop"`` calls it once per copy (also for losses vmap
    cannot batch). Both give the same per-copy losses ``[N]``. ``"auto"`` (default) loops
    for N <= 2, where vmap's fixed cost per call (about 0.8 ms on a CPU) exceeds the
    loop's, and vmaps otherwise (measured with ``benchmarks/vectorized.py``).

    ``compile`` (default None: eager) is a ``torch.compile`` mode
    (:data:`~harness.vector.adam.COMPILE_MODES`)
    for the training step: the stacked G and D forward passes (and, through AOTAutograd,
    their backward passes) and both optimisers' updates
    (:class:`~harness.vector.adam.StackedAdam`). On CUDA,
    ``"reduce-overhead"`` also replays the networks as CUDA graphs. Sampling for
    evaluation stays eager. Compiled kernels round differently, so a compiled copy equals
    its single-copy trial to float32 rounding, not bit for bit (the eager default does).
    The first steps pay the compilation (seconds to a minute).
    """

    def __init__(self, cfgs: Sequence[TrialConfig], device: torch.device | str | None = None,
                 loss_mode: str = "auto", compile: str | None = None):
        from harness.device import resolve_device
        from harness.plugins import load_plugins
        from harness.registry import DATASETS, LOSSES, MODELS, TRICKS
        from harness.trainer import Trainer

        cfgs = list(cfgs)
        if not cfgs:
            raise ValueError("no trial configs")
        check_compatible(cfgs)
        if loss_mode not in ("auto", "vmap", "loop"):
            raise ValueError(f"loss_mode must be 'auto', 'vmap' or 'loop', got {loss_mode!r}")
        if loss_mode == "auto":
            loss_mode = "loop" if len(cfgs) <= 2 else "vmap"
        self.compile = check_compile_mode(compile)
        first = cfgs[0]
        self.cfgs = cfgs
        self.n = len(cfgs)
        self.device = torch.device(device) if device is not None else resolve_device(first.train.device)
        self.settings, self.diag = first.train, first.diagnostics
        self.seeds = [cfg.seed for cfg in cfgs]
        self.loss_mode = loss_mode
        load_plugins(first.plugins, first.plugin_paths)
        self.loss = LOSSES.build(first.loss.name, first.loss.params, "loss.params")
        unstackable = stepping_tricks(first.tricks)
        if unstackable:
            raise ValueError(f"tricks {', '.join(unstackable)} act in the training step; the "
                             "vectorized GAN applies only tricks that change the networks "
                             "(Trick.vectorizable)")

        # the networks of every copy, built as build_trainer builds them
        rng_state = torch.get_rng_state()
        gens, discs = [], []
        try:
            for cfg in cfgs:
                torch.manual_seed(cfg.seed)
                dataset = DATASETS.build(cfg.dataset.name, cfg.dataset.params, "dataset.params")
                model = MODELS.build(cfg.model.name, cfg.model.params, "model.params")
                gan = model.build(dataset)
                # as the Trainer does before its optimisers: e.g. packing rebuilds D
                tricks = [TRICKS.build(t.name, t.params, f"tricks[{i}].params")
                          for i, t in enumerate(cfg.tricks)]
                for trick in tricks:
                    trick.setup(gan, self.loss, dataset, model)
                if gan.conditional or gan.aux is not None:
                    raise ValueError("the vectorized GAN trains unconditional models only")
                if model.loop_class() not in (None, Trainer):
                    raise ValueError(f"model {cfg.model.name!r} does not play Trainer's game")
                gens.append(gan.generator)
                discs.append(gan.discriminator)
                if len(gens) == 1:  # copy 0's plugins stand for all (recorded params)
                    self.dataset, self.model, self.z_dim = dataset, model, gan.z_dim
                    self.tricks = tricks
        finally:
            torch.set_rng_state(rng_state)
        self.G = stack_networks(gens).to(self.device)
        self.D = stack_networks(discs).to(self.device)
        self.g_params = list(self.G.parameters())
        self.d_params = list(self.D.parameters())
        betas = ([c.train.beta1 for c in cfgs], [c.train.beta2 for c in cfgs])
        self.opt_d = StackedAdam(self.d_params, [c.train.lr_d for c in cfgs], betas,
                                 compile=compile)
        self.opt_g = StackedAdam(self.g_params, [c.train.lr_g for c in cfgs], betas,
                                 compile=compile)
        #: the networks as the training step calls them (compiled or not); ``self.G`` and
        #: ``self.D`` stay the plain modules (state, copies, evaluation). Static shapes: a
        #: trial's shapes do not change, and inductor failed on the DCGAN's dynamic ones
        self._g = self.G if compile is None else torch.compile(self.G, mode=compile, dynamic=False)
        self._d = self.D if compile is None else torch.compile(self.D, mode=compile, dynamic=False)
        self.data = self.dataset.train_data().to(self.device)

        # the Trainer's generators, one per copy
        self.rngs = [torch.Generator(device=self.device).manual_seed(s) for s in self.seeds]
        self.eval_noise = torch.stack([
            self.model.noise(self.settings.eval_samples, self.z_dim,
                             torch.Generator().manual_seed(s + 1_000_003)) for s in self.seeds
        ]).to(self.device)
        self._extra: torch.Tensor | None = None

        self.step = 0
        self.active = torch.ones(self.n, dtype=torch.bool, device=self.device)
        #: step at which each copy was frozen (0: still training)
        self.diverged_at = torch.zeros(self.n, dtype=torch.long, device=self.device)
        #: per-copy history rows ``[(step, row), ...]`` as ``TrainingLoop.history``
        self.history: list[list[tuple[int, dict[str, float]]]] = [[] for _ in cfgs]

    # -- drawing ----------------------------------------------------------------------------
    def _real_batch(self) -> torch.Tensor:
        """``[N, batch, *shape]``: each copy's ``Trainer._real_batch``, from its generator."""
        b, n_data = self.settings.batch_size, self.data.shape[0]
        idx = torch.stack([torch.randint(0, n_data, (b,), generator=g, device=self.device)
                           for g in self.rngs])
        return self.data[idx]

    def _latent(self) -> torch.Tensor:
        """``[N, batch, z_dim]``: each copy's ``Trainer._latent``, from its generator."""
        b = self.settings.batch_size
        return torch.stack([self.model.noise(b, self.z_dim, g) for g in self.rngs])

    # -- per-copy losses --------------------------------------------------------------------
    def _per_copy(self, fn: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
        if self.loss_mode == "vmap":
            return torch.vmap(fn)(*args)
        return torch.stack([fn(*(a[k] for a in args)) for k in range(self.n)])

    @staticmethod
    def _grad_norms(grads: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-copy L2 norm over all tensors: ``harness.trainer.grad_norm`` per copy (the
        norm of the per-tensor norms, as it computes it)."""
        per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads],
                                 dim=1)  # [N, tensors]: each copy's norms contiguous, as in torch.stack
        return torch.linalg.vector_norm(per_tensor, dim=1)

    def _freeze_bad(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Freezes, before the optimiser step, every copy whose loss or gradient is NaN/inf."""
        ok = torch.isfinite(loss) & torch.isfinite(grad_norm)
        newly = self.active & ~ok
        self.diverged_at = torch.where(newly, self.step + 1, self.diverged_at)
        self.active = self.active & ok

    # -- one generator step -----------------------------------------------------------------
    def train_step(self, measure: bool) -> list[dict[str, float] | None] | None:
        """One step of every copy: ``d_steps`` D steps then one G step (Algorithm 1).

        With ``measure`` returns one diagnostics row per copy (``Trainer.train_step``'s
        keys and meanings), None for copies frozen before this step; otherwise None.
        """
        loss = self.loss
        was_active = self.active.clone() if measure else None
        if self.compile is not None and self.device.type == "cuda":
            # CUDA graphs (reduce-overhead): a new step may reuse the last one's buffers
            torch.compiler.cudagraph_mark_step_begin()
        for _ in range(self.settings.d_steps):
            real = self._real_batch()
            z = self._latent()
            with torch.no_grad():
                fake = self._g(z)
            real_logits = self._d(real)
            fake_logits = self._d(fake)
            loss_d = self._per_copy(loss.d_loss, real_logits, fake_logits)
            grads = torch.autograd.grad(loss_d.sum(), self.d_params)
            grad_d = self._grad_norms(grads)
            self._freeze_bad(loss_d, grad_d)
            self.opt_d.step(grads, self.active)

        z = self._latent()
        fake = self._g(z)
        # D frozen: torch.autograd.grad(loss_g, g_params) prunes autograd's own D weight
        # gradients, not StackedLinear's own backward's, whose needs_input_grad is fixed
        # when the forward runs (three of the 36 or so 64x128x128 products of a 4x128 ring
        # MLP step at N = 32: 6-7 % of the step in one-thread A/B runs at N = 32 and 128).
        # G's input gradients are the same products, bit for bit
        with frozen(self.d_params):
            fake_logits = self._d(fake)
        if measure:  # read now: a CUDA-graph replay may overwrite a graph's outputs
            with torch.no_grad():
                d_real = loss.d_prob(real_logits).mean(dim=1)
                d_fake = loss.d_prob(fake_logits).mean(dim=1)
        loss_g = self._per_copy(loss.g_loss, fake_logits)
        grads = torch.autograd.grad(loss_g.sum(), self.g_params)
        grad_g = self._grad_norms(grads)
        self._freeze_bad(loss_g, grad_g)
        self.opt_g.step(grads, self.active)
        self.step += 1
        if not measure:
            return None
        with torch.no_grad():
            d_fake_after = loss.d_prob(self._d(self._g(z))).mean(dim=1)
            cols = {
                names.LOSS_D: loss_d,
                names.LOSS_G: loss_g,
                names.D_REAL: d_real,
                names.D_FAKE: d_fake,
                names.D_FAKE_AFTER: d_fake_after,
                names.GRAD_D: grad_d,
                names.GRAD_G: grad_g,
            }
            table = torch.stack([c.detach().to(torch.float64) for c in cols.values()]).cpu()
        keys = list(cols)
        alive = was_active.cpu().tolist()
        rows: list[dict[str, float] | None] = []
        bad = []
        for k in range(self.n):
            if not alive[k]:
                rows.append(None)
                continue
            row = dict(zip(keys, table[:, k].tolist()))
            rows.append(row)
            self.history[k].append((self.step, row))
            if any(is_bad(row[key], self.diag.diverge_loss) for key in (names.LOSS_D, names.LOSS_G)):
                bad.append(k)
        if bad:  # TrainingLoop's rule on the logged row: stop the copy here
            idx = torch.tensor(bad, device=self.device)
            newly = torch.zeros_like(self.active)
            newly[idx] = True
            newly &= self.active
            self.diverged_at = torch.where(newly, self.step, self.diverged_at)
            self.active = self.active & ~newly
        return rows

    def train(self, steps: int) -> None:
        """``steps`` steps, measuring every ``log_every``-th as ``TrainingLoop.fit`` does."""
        log_every = self.settings.log_every
        for _ in range(steps):
            self.train_step(measure=(self.step + 1) % log_every == 0)

    # -- results ----------------------------------------------------------------------------
    @property
    def diverged(self) -> dict[int, int]:
        """``{copy: step}`` of every frozen copy (the step whose update was withheld, or
        the log step whose loss exceeded ``diverge_loss``)."""
        at = self.diverged_at.cpu().tolist()
        return {k: s for k, s in enumerate(at) if s > 0}

    def stop(self, k: int) -> None:
        """Stops training copy ``k`` (no more updates; its parameters stay as they are),
        e.g. when the loop ends it early; not a divergence unless it was one."""
        self.active[k] = False

    def copy_state(self, k: int) -> dict[str, dict[str, torch.Tensor]]:
        """Copy ``k``'s networks as the single-copy modules' state dicts."""
        return {"generator": self.G.copy_state(k), "discriminator": self.D.copy_state(k)}

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """``[N, n, *shape]`` on the CPU from per-copy noise ``z`` ``[N, n, z_dim]``,
        generated in chunks of 4096 samples like ``Trainer.sample``."""
        was = self.G.training
        self.G.eval()
        try:
            return torch.cat([self.G(c.to(self.device)) for c in z.split(4096, dim=1)],
                             dim=1).cpu()
        finally:
            self.G.train(was)

    def sample(self, n: int | None = None) -> torch.Tensor:
        """Every copy's evaluation samples, ``[N, n, *shape]`` on the CPU.

        Without ``n``: from the Trainer's fixed evaluation noise (``train.eval_samples``
        per copy, seeded ``seed + 1_000_003``), i.e. ``Trainer.sample()`` per copy. With
        ``n``: ``Trainer.generate_extra(n)`` per copy -- noise seeded ``seed + 2_000_003``,
        drawn for the largest ``n`` asked so far and cut to ``n`` as the Trainer does.
        """
        if n is None:
            return self.generate(self.eval_noise)
        if self._extra is None or self._extra.shape[1] < n:
            self._extra = torch.stack([
                self.model.noise(n, self.z_dim, torch.Generator().manual_seed(s + 2_000_003))
                for s in self.seeds])
        return self.generate(self._extra[:, :n])

    def mode_coverage(self, metric: ModeCoverage | None = None,
                      samples: torch.Tensor | None = None) -> list[dict[str, float]]:
        """Per copy, the values ``ModeCoverage.evaluate`` reports for its evaluation
        samples, computed for all copies at once (``ModeCoverage.evaluate_copies``)."""
        metric = metric or ModeCoverage()
        samples = self.sample() if samples is None else samples
        evs = metric.evaluate_copies(list(samples), self.dataset, [None] * self.n)
        return [ev.values for ev in evs]



__all__ = ["PER_COPY_TRAIN", "VectorizedGAN", "check_compatible"]
