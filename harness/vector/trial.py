"""One trial, N copies: seeds or search suggestions of one pair trained as one model.

The study key ``vectorize`` (:class:`harness.config.StudySpec`, planned by
:mod:`harness.vector.plan`) makes the searcher emit, for every pair
:func:`fallback_reason` accepts, seeds-phase trials holding up to N copy seeds each and,
when the pair searches only per-copy settings, search trials holding up to N Optuna
suggestions (each with its own seed). Such a trial trains a
:class:`harness.vector.engine.VectorizedGAN` (copy ``k`` plays exactly the game of the
single seeds trial with that seed) inside :class:`VectorLoop`, which mirrors
:meth:`harness.loop.TrainingLoop.fit` per copy:

* the same evaluation cadence (every ``eval_every`` steps and at the end), the same
  history rows (every ``log_every`` steps), the same metric values: every metric of the
  pair is called once per evaluation round through
  :meth:`~harness.metrics.Metric.evaluate_copies` with every training copy's samples and
  :class:`~harness.metrics.EvalContext` (``mode_coverage`` computes all copies' distances
  at once, ``class_modes`` and ``fidelity`` pass all copies' samples through the
  classifier / torch-fidelity's extractor at once; a context's ``generate`` draws the
  extra samples of every copy in one batched generation);
* one :class:`~harness.reporting.Reporter` per copy (in a study: one MLflow child run
  each, named and tagged as the single seeds trial would be), called in the order the
  single loop calls its reporter: ``start``, then per evaluation ``history`` and
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
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness import names
from harness.config import TrialConfig
from harness.diagnostics import EvalRecord, divergence_reason
from harness.loop import (
    TrainingLoop,
    dataset_modes,
    evals_from_state,
    evals_state,
    trial_result,
)
from harness.metrics import EvalContext
from harness.reporting import Reporter, TrialResult

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
    from harness.vector.stacking import auto_devices, declares_vectorizable

    load_plugins(cfg.plugins, cfg.plugin_paths)
    model = MODELS.get(cfg.model.name)
    if not declares_vectorizable(model):
        return (f"model {cfg.model.name!r} does not declare stackable networks: "
                f"{model.__qualname__}.vectorizable is not True")
    if cfg.tricks:
        return f"tricks {', '.join(t.name for t in cfg.tricks)}"
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
    if cfg.diagnostics.stop_early:
        return "diagnostics.stop_early"
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


class VectorLoop:
    """``TrainingLoop.fit`` for the N copies of one :class:`~harness.vector.engine.VectorizedGAN`
    (module docstring); :meth:`fit` runs the whole budget."""

    def __init__(self, cfgs: Sequence[TrialConfig], device: torch.device | str | None = None):
        from harness.registry import METRICS
        from harness.vector.engine import VectorizedGAN

        self.cfgs = list(cfgs)
        self.n = len(self.cfgs)
        self.vec = VectorizedGAN(self.cfgs, device=device)
        first = self.cfgs[0]
        self.settings, self.diag = first.train, first.diagnostics
        self.metrics = [METRICS.build(m.name, m.params, f"metrics[{i}].params")
                        for i, m in enumerate(first.metrics)]
        self.dataset = self.vec.dataset
        self.n_modes = dataset_modes(self.dataset)
        self.history: list[list[tuple[int, dict[str, float]]]] = [[] for _ in self.cfgs]
        self.evals: list[list[EvalRecord]] = [[] for _ in self.cfgs]
        self.train_seconds = [0.0] * self.n
        #: copies whose run is finished (budget spent or diverged)
        self.done = [False] * self.n

    @property
    def step(self) -> int:
        return self.vec.step

    def copy_step(self, k: int) -> int:
        """The step copy ``k`` is at: where it was frozen, else the shared step."""
        return self.vec.diverged.get(k, self.vec.step)

    # -- the whole budget -----------------------------------------------------------------
    def fit(self, reporters: Sequence[Reporter | None],
            after_evaluation: Callable[[int, list[dict[str, float] | None],
                                        Callable[[], dict]], None] | None = None,
            ) -> list[TrialResult | None]:
        """Train every unfinished copy to its end. ``reporters[k]`` (None: nobody listens)
        receives copy ``k``'s calls; ``after_evaluation(step, values, checkpoint)`` is
        called once per evaluation round with each copy's values (None for copies finished
        before it) and a function building the state of every copy. Returns each copy's
        result (None for copies finished before this call)."""
        s = self.settings
        results: list[TrialResult | None] = [None] * self.n
        pending: list[list[tuple[int, dict[str, float]]]] = [[] for _ in self.cfgs]
        while not all(self.done):
            stop_at = min(s.steps, (self.step // s.eval_every + 1) * s.eval_every)
            training = [k for k in range(self.n) if not self.done[k]]
            t0 = time.perf_counter()
            while self.step < stop_at:
                rows = self.vec.train_step(measure=(self.step + 1) % s.log_every == 0)
                if rows is None:
                    continue
                for k, row in enumerate(rows):
                    if row is not None and not self.done[k]:
                        pending[k].append((self.step, row))
                if not bool(self.vec.active.any()):  # every copy frozen: nothing to train
                    break
            if self.vec.device.type == "cuda":
                torch.cuda.synchronize(self.vec.device)
            elapsed = time.perf_counter() - t0
            samples = self.vec.sample()
            values: list[dict[str, float] | None] = [None] * self.n
            covered = self._evaluate(training, samples, values)
            for k in training:
                self.train_seconds[k] += elapsed / len(training)
                step = self.copy_step(k)
                record = EvalRecord(step, values[k], covered[k])
                self.evals[k].append(record)
                self.history[k].extend(pending[k])
                rep = reporters[k]
                if rep is not None:
                    rep.history(pending[k])
                pending[k] = []
                if rep is not None:
                    art = self._pictures(k, samples[k], self._title(k, record),
                                         f"{names.ARTIFACT_SAMPLES_DIR}/step_{step:07d}")
                    rep.evaluation(step, values[k], art, self.state_dict)
                if k in self.vec.diverged or step >= s.steps:
                    self.done[k] = True
                    results[k] = self._finish(k, rep, samples[k])
            if after_evaluation is not None:
                after_evaluation(self.step, values, self.state_dict)
        return results

    def _evaluate(self, training: list[int], samples: torch.Tensor,
                  values: list[dict[str, float] | None]) -> dict[int, frozenset[int] | None]:
        """Every metric's values for the copies ``training`` into ``values[k]`` (as
        ``TrainingLoop.evaluate`` gathers them); returns each copy's covered modes."""
        extra: dict[int, torch.Tensor] = {}

        def generate_all(n: int) -> torch.Tensor:  # every copy's extra samples, once per round
            if n not in extra:
                extra[n] = self.vec.sample(n)
            return extra[n]

        contexts = [EvalContext(step=self.copy_step(k),
                                final=k in self.vec.diverged or self.copy_step(k) >= self.settings.steps,
                                generate=lambda n, k=k: generate_all(n)[k], device=self.vec.device)
                    for k in training]
        covered: dict[int, frozenset[int] | None] = {k: None for k in training}
        for k in training:
            values[k] = {}
        for metric in self.metrics:
            evs = metric.evaluate_copies([samples[k] for k in training], self.dataset, contexts)
            for k, ev in zip(training, evs):
                values[k].update(ev.values)
                covered[k] = ev.extras.get("covered_modes", covered[k])
        return covered

    def _title(self, k: int, record: EvalRecord) -> str:
        cov = record.values.get(names.MODES_COVERED)
        extra = f" - {int(cov)}/{self.n_modes} modes" if cov is not None and self.n_modes else ""
        return f"{self.cfgs[k].key} step {record.step}{extra}".strip()

    def _pictures(self, k: int, samples: torch.Tensor, title: str, prefix: str) -> dict[str, bytes]:
        png = self.dataset.plot_samples(samples, title)
        return {} if png is None else {f"{prefix}.png": png}

    def _diverged_tags(self, k: int) -> dict[str, str]:
        """``diverged_reason`` of a frozen copy, as ``TrainingLoop`` records a single trial's."""
        step = self.vec.diverged.get(k)
        if step is None:
            return {}
        row = next((r for s, r in reversed(self.history[k]) if s == step), None)
        reason = None if row is None else divergence_reason(
            row, TrainingLoop.divergence_keys, self.diag.diverge_loss, step)
        return {names.TAG_DIVERGED_REASON: reason or
                f"a non-finite loss or gradient at step {step} (its update withheld)"}

    def _finish(self, k: int, reporter: Reporter | None, samples: torch.Tensor) -> TrialResult:
        """Copy ``k``'s result, as ``TrainingLoop._finish`` builds a single trial's."""
        evals = self.evals[k]
        result = trial_result(evals, self.history[k], self.n_modes, self.settings, self.diag,
                              self.copy_step(k), self.train_seconds[k], k in self.vec.diverged,
                              tags=self._diverged_tags(k))
        if reporter is not None:
            buf = io.BytesIO()
            torch.save(self.vec.G.copy_state(k), buf)
            artifacts = {names.ARTIFACT_GENERATOR: buf.getvalue()}
            title = (f"{self._title(k, evals[-1])} [{result.status}]" if evals
                     else f"{self.cfgs[k].key} [{result.status}]")
            artifacts.update(self._pictures(k, samples, title,
                                            names.ARTIFACT_FINAL_SAMPLES.removesuffix(".png")))
            reporter.finish(result, artifacts)
        return result

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Every copy's state: the stacked networks and optimisers, each copy's RNG, which
        copies are frozen and finished, and each copy's histories and evaluations."""
        v = self.vec
        return {
            "G": v.G.state_dict(), "D": v.D.state_dict(),
            "opt": [{"steps": o.steps, "exp_avg": list(o.exp_avg), "exp_avg_sq": list(o.exp_avg_sq)}
                    for o in (v.opt_d, v.opt_g)],
            "rngs": [g.get_state() for g in v.rngs],
            "step": v.step, "active": v.active, "diverged_at": v.diverged_at,
            "vec_history": [list(h) for h in v.history],
            "torch_rng": torch.get_rng_state(),
            "history": [list(h) for h in self.history],
            "evals": [evals_state(e) for e in self.evals],
            "train_seconds": list(self.train_seconds),
            "done": list(self.done),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
        torch.set_rng_state(state["torch_rng"])
        self.history = [list(h) for h in state["history"]]
        self.evals = [evals_from_state(e) for e in state["evals"]]
        self.train_seconds = [float(x) for x in state["train_seconds"]]
        self.done = [bool(x) for x in state["done"]]


__all__ = ["VectorLoop", "copy_configs", "fallback_reason"]
