"""One trial, N copies: seeds or search suggestions of one pair trained as one model.

The study key ``vectorize`` (:class:`harness.config.StudySpec`, planned by
:mod:`harness.vector.plan`) makes the searcher emit, for every pair
:func:`fallback_reason` accepts, seeds-phase trials holding up to N copy seeds each and,
when the pair searches only per-copy settings, search trials holding up to N Optuna
suggestions (each with its own seed). Such a trial trains a
:class:`harness.vector.engine.VectorizedGAN` (copy ``k`` plays exactly the game of the
single seeds trial with that seed) as :class:`VectorTrainer`, the N-copy game of the
loop every trial runs (:class:`harness.loop.CopiesLoop`); so per copy:

* the same evaluation cadence (every ``eval_every`` steps and at the end), the same
  history rows (every ``log_every`` steps), the same metric values: every metric of the
  pair is called once per evaluation round through
  :meth:`~harness.metrics.Metric.evaluate_copies` with every training copy's samples and
  :class:`~harness.metrics.EvalContext` (``mode_coverage`` computes all copies' distances
  at once, ``class_modes`` and ``fidelity`` pass all copies' samples through the
  classifier / torch-fidelity's extractor at once; a context's ``generate`` draws the
  extra samples of every copy in one batched generation);
* one :class:`~harness.reporting.Reporter` per copy (in a study: one MLflow child run
  each, named and tagged as the single seeds trial would be), called as a single trial's
  reporter is: ``start``, then per evaluation ``history`` and
  ``evaluation`` (with that evaluation's picture), finally ``finish`` with the copy's
  :func:`~harness.diagnostics.summarize` status, final metrics and artifacts
  (``final_samples.png``, the copy's ``generator.pt``);
* a copy that diverges is frozen at that step (:class:`~harness.vector.engine.VectorizedGAN`),
  evaluated and finished at the next evaluation boundary with the step it diverged at,
  as the single loop would have stopped there; the other copies go on.

Differences from N single trials, by design: ``train_seconds`` of a copy is its share of
the shared training time (the wall time divided by the copies still training), and a
loss that turns NaN inside an optimiser step (not at a logged step) ends the copy at that
step rather than at the next logged one. Knows nothing of Ray or MLflow.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch

from harness import names
from harness.config import TrialConfig
from harness.loop import CopiesLoop
from harness.metrics import EvalContext

#: device types in the reasons :func:`fallback_reason` gives
_DEVICE_WORDS = {"cpu": "a CPU", "cuda": "a GPU"}


def fallback_reason(cfg: TrialConfig, auto_device: str | None = None) -> str | None:
    """Why the seeds phase of ``cfg``'s pair cannot be vectorized, or None when it can.

    The model and the loss must declare themselves vectorizable
    (:mod:`harness.vector.stacking`; read before anything is built) and the loss must use
    no hook (:func:`harness.losses.hooks_of`) and not be a critic, then one copy is built
    and stacked on the CPU, which names any layer that does not stack. With
    ``auto_device`` (the device type the study's trials train on, for ``vectorize: auto``)
    also when the stacked networks gain nothing there (their ``auto_devices``)."""
    from harness.losses import hooks_of
    from harness.plugins import load_plugins
    from harness.registry import LOSSES, MODELS
    from harness.vector.engine import VectorizedGAN
    from harness.vector.stacking import auto_devices, declares_vectorizable, stepping_tricks

    load_plugins(cfg.plugins, cfg.plugin_paths)
    model = MODELS.get(cfg.model.name)
    if not declares_vectorizable(model):
        return (f"model {cfg.model.name!r} does not declare stackable networks: "
                f"{model.__qualname__}.vectorizable is not True")
    stepping = stepping_tricks(cfg.tricks)
    if stepping:
        return (f"trick {stepping[0]} acts" if len(stepping) == 1
                else f"tricks {', '.join(stepping)} act") + " in the training step"
    if cfg.loss is None:
        return "no loss"
    loss = LOSSES.get(cfg.loss.name)
    hooks = hooks_of(loss)
    if "penalty" in hooks:
        return (f"loss {cfg.loss.name!r} penalises D's input gradient (double backward), "
                "which the stacked layers do not provide")
    if hooks:
        return (f"loss {cfg.loss.name!r} changes D after its steps ({', '.join(hooks)} hook, "
                "e.g. weight clipping), which the stacked game does not call")
    if getattr(loss, "critic", False):
        return (f"loss {cfg.loss.name!r} scores with a critic, whose histories (critic_real, "
                "critic_fake, critic_gap) the stacked game does not log")
    if not declares_vectorizable(loss):
        return (f"loss {cfg.loss.name!r} is not declared a pure function of the logits: "
                f"{loss.__qualname__}.vectorizable is not True")
    try:
        vec = VectorizedGAN([cfg], device="cpu")
    except (ValueError, TypeError) as exc:
        return str(exc)
    if auto_device is not None:
        devices = sorted(set(auto_devices(vec.G)) & set(auto_devices(vec.D)))
        if auto_device not in devices:
            where = " or ".join(_DEVICE_WORDS.get(d, d) for d in devices) or "no device"
            return (f"model {cfg.model.name!r}: auto stacks it on {where} only, "
                    f"{_DEVICE_WORDS.get(auto_device, auto_device)} gains nothing from it")
    return None


def copy_configs(cfg: TrialConfig, seeds: Sequence[int],
                 params: Sequence[dict[str, Any]] | None = None) -> list[TrialConfig]:
    """``cfg`` once per seed, with copy ``k``'s searched ``params[k]`` applied (a batch of
    search suggestions): the configs of the single trials the copies stand for."""
    out = []
    for k, seed in enumerate(seeds):
        c = cfg.with_params(params[k]) if params else cfg
        out.append(TrialConfig.model_validate({**c.model_dump(), "seed": int(seed)}))
    return out


class VectorTrainer(CopiesLoop):
    """The game of the N copies of one :class:`~harness.vector.engine.VectorizedGAN`,
    trained by :class:`harness.loop.CopiesLoop`'s loop (module docstring)."""

    def __init__(self, cfgs: Sequence[TrialConfig], device: torch.device | str | None = None):
        from harness.registry import METRICS
        from harness.vector.engine import VectorizedGAN

        self.cfgs = list(cfgs)
        self.vec = VectorizedGAN(self.cfgs, device=device)
        first = self.cfgs[0]
        metrics = [METRICS.build(m.name, m.params, f"metrics[{i}].params")
                   for i, m in enumerate(first.metrics)]
        super().__init__(self.vec.dataset, metrics, first.train, first.diagnostics,
                         [cfg.key for cfg in self.cfgs], self.vec.device)

    # -- the copy hooks -----------------------------------------------------------------------
    def train_copies(self, measure: bool) -> list[dict[str, float] | None] | None:
        return self.vec.train_step(measure)

    def frozen(self) -> dict[int, int]:
        return self.vec.diverged

    def freeze(self, k: int) -> None:
        self.vec.stop(k)

    def sample_copies(self) -> torch.Tensor:
        return self.vec.sample()

    def eval_contexts(self, copies: Sequence[int]) -> list[EvalContext]:
        extra: dict[int, torch.Tensor] = {}

        def generate_all(n: int) -> torch.Tensor:  # every copy's extra samples, once per round
            if n not in extra:
                extra[n] = self.vec.sample(n)
            return extra[n]

        return [EvalContext(step=self.copy_step(k), final=self.copy_is_final(k),
                            generate=lambda n, k=k: generate_all(n)[k], device=self.vec.device)
                for k in copies]

    def copy_final_artifacts(self, k: int) -> dict[str, bytes]:
        buf = io.BytesIO()
        torch.save(self.vec.G.copy_state(k), buf)
        return {names.ARTIFACT_GENERATOR: buf.getvalue()}

    # -- checkpointing ----------------------------------------------------------------------
    def game_state(self) -> dict[str, Any]:
        """The stacked networks and optimisers, each copy's RNG, which copies are frozen."""
        v = self.vec
        return {
            "G": v.G.state_dict(), "D": v.D.state_dict(),
            "opt": [{"steps": o.steps, "exp_avg": list(o.exp_avg), "exp_avg_sq": list(o.exp_avg_sq)}
                    for o in (v.opt_d, v.opt_g)],
            "rngs": [g.get_state() for g in v.rngs],
            "active": v.active, "diverged_at": v.diverged_at,
            "vec_history": [list(h) for h in v.history],
        }

    def load_game_state(self, state: dict[str, Any]) -> None:
        v = self.vec
        v.G.load_state_dict(state["G"])
        v.D.load_state_dict(state["D"])
        for o, st in zip((v.opt_d, v.opt_g), state["opt"]):
            o.steps.copy_(st["steps"])
            for mine, saved in zip(o.exp_avg, st["exp_avg"]):
                mine.copy_(saved)
            for mine, saved in zip(o.exp_avg_sq, st["exp_avg_sq"]):
                mine.copy_(saved)
        for g, st in zip(v.rngs, state["rngs"]):
            g.set_state(st)
        v.step = int(state["step"])
        v.active = state["active"].to(v.device)
        v.diverged_at = state["diverged_at"].to(v.device)
        v.history = [list(h) for h in state["vec_history"]]


__all__ = ["VectorTrainer", "copy_configs", "fallback_reason"]
