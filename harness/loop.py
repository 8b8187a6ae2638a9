"""The budget loop every game shares: train, evaluate, report, checkpoint, finish.

A :class:`TrainingLoop` subclass plays one *game* -- the adversarial GAN game of
:class:`harness.trainer.Trainer`, CycleGAN's two-way game, the bilinear xy game -- by
implementing the hooks below; the loop around them (evaluation cadence, divergence stop,
histories, checkpoint state, the final status and artifacts) exists once, here. A model
family picks its game with :meth:`harness.models.Model.loop_class`.

Hooks, in the order the loop calls them:

* :meth:`train_step` once per step (``measure`` on every ``log_every``-th step);
* at every evaluation :meth:`sample` and :meth:`eval_context`, then every metric, then
  :meth:`pictures` for the evaluation's PNGs;
* :meth:`game_state` / :meth:`load_game_state` whenever a checkpoint is written / restored;
* :meth:`final_artifacts` once, when the budget is spent.

The loop knows nothing of Ray or MLflow: it talks to a :class:`~harness.reporting.Reporter`.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from typing import Any

import torch

from harness import names
from harness.config import DiagnosticSettings, TrainSettings
from harness.data import Dataset
from harness.diagnostics import EvalRecord, divergence_reason, early_stop_reason, summarize
from harness.metrics import EvalContext, Metric
from harness.reporting import Reporter, TrialResult


class TrainingLoop(ABC):
    """Trains one configuration; :meth:`fit` runs the whole budget and reports as it goes."""

    #: history keys whose NaN/inf or magnitude above ``diagnostics.diverge_loss`` stops training
    divergence_keys: tuple[str, ...] = (names.LOSS_D, names.LOSS_G)

    def __init__(self, dataset: Dataset, metrics: list[Metric], settings: TrainSettings,
                 diagnostics: DiagnosticSettings, seed: int,
                 device: torch.device | str = "cpu", title: str = ""):
        self.dataset, self.metrics = dataset, list(metrics)
        self.settings, self.diag, self.seed = settings, diagnostics, seed
        self.device = torch.device(device)
        self.title = title
        self.step = 0
        self.train_seconds = 0.0
        self.diverged = False
        self.diverged_reason: str | None = None
        #: the status training was stopped early for (``diagnostics.stop_early``), or None
        self.stopped: str | None = None
        self.history: list[tuple[int, dict[str, float]]] = []
        self.evals: list[EvalRecord] = []

    # -- the game's hooks -------------------------------------------------------------------
    @abstractmethod
    def train_step(self, measure: bool) -> dict[str, float] | None:
        """Called once per step: one step of the game. With ``measure`` returns the
        history row of :mod:`harness.names` values for this step, otherwise None."""

    @abstractmethod
    def sample(self) -> torch.Tensor:
        """Called at every evaluation: the samples the metrics score, on the CPU."""

    @abstractmethod
    def eval_context(self) -> EvalContext:
        """Called at every evaluation after :meth:`sample`: what metrics know besides it
        (the loop sets its ``device`` to the trial's device when the game leaves it None)."""

    def pictures(self, samples: torch.Tensor, title: str, prefix: str) -> dict[str, bytes]:
        """Called after every evaluation and once at the end: PNG artifacts named
        ``{prefix}*.png``; the dataset's own picture of the samples by default."""
        png = self.dataset.plot_samples(samples, title)
        return {} if png is None else {f"{prefix}.png": png}

    @abstractmethod
    def game_state(self) -> dict[str, Any]:
        """Called whenever a checkpoint is written: networks, optimizers, game RNG."""

    @abstractmethod
    def load_game_state(self, state: dict[str, Any]) -> None:
        """Called on restore with the full checkpoint state (what :meth:`state_dict` wrote)."""

    def final_artifacts(self) -> dict[str, bytes]:
        """Called once when the budget is spent: files to keep besides the final pictures."""
        return {}

    def summary_tags(self) -> dict[str, str]:
        """Called once at the end: tags that classify the finished run (none by default)."""
        return {}

    def n_modes(self) -> int | None:
        return dataset_modes(self.dataset)

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self) -> tuple[EvalRecord, torch.Tensor]:
        samples = self.sample()
        context = self.eval_context()
        if context.device is None:  # metrics run their networks on the trial's device
            context = dataclasses.replace(context, device=self.device)
        values: dict[str, float] = {}
        covered = None
        for metric in self.metrics:
            ev = metric.evaluate(samples, self.dataset, context)
            values.update(ev.values)
            covered = ev.extras.get("covered_modes", covered)
        record = EvalRecord(self.step, values, covered)
        self.evals.append(record)
        return record, samples

    def _is_final(self) -> bool:
        return self.step >= self.settings.steps or self.diverged or self.stopped is not None

    def check_early_stop(self) -> None:
        """Called after every evaluation, before its checkpoint: stops training (sets
        :attr:`stopped`) when a status of ``diagnostics.stop_early`` holds now and budget is
        left (:func:`harness.diagnostics.early_stop_reason`)."""
        if self.diag.stop_early and self.step < self.settings.steps and not self.diverged:
            self.stopped = early_stop_reason(self.evals, self.history, self.n_modes(),
                                             self.diag, self.diag.stop_early)

    # -- the whole budget -----------------------------------------------------------------
    def fit(self, reporter: Reporter) -> TrialResult:
        s = self.settings
        pending: list[tuple[int, dict[str, float]]] = []
        samples = None
        while self.step < s.steps and not self.diverged and self.stopped is None:
            stop_at = min(s.steps, (self.step // s.eval_every + 1) * s.eval_every)
            t0 = time.perf_counter()
            while self.step < stop_at:
                row = self.train_step(measure=(self.step + 1) % s.log_every == 0)
                self.step += 1
                if row is not None:
                    pending.append((self.step, row))
                    reason = divergence_reason(row, self.divergence_keys,
                                               self.diag.diverge_loss, self.step)
                    if reason is not None:
                        self.diverged, self.diverged_reason = True, reason
                        break
            if self.device.type == "cuda":  # count the queued kernels as training time
                torch.cuda.synchronize(self.device)
            self.train_seconds += time.perf_counter() - t0
            record, samples = self.evaluate()
            self.history.extend(pending)
            self.check_early_stop()
            reporter.history(pending)
            pending = []
            artifacts = self.pictures(samples, self._plot_title(record),
                                      f"{names.ARTIFACT_SAMPLES_DIR}/step_{self.step:07d}")
            reporter.evaluation(self.step, record.values, artifacts, self.state_dict)
        if samples is None:  # restored after the last evaluation: nothing left to train
            samples = self.sample()
        return self._finish(reporter, samples)

    def _result_tags(self) -> dict[str, str]:
        tags = self.summary_tags()
        if self.diverged_reason is not None:
            tags[names.TAG_DIVERGED_REASON] = self.diverged_reason
        return tags

    def _plot_title(self, record: EvalRecord) -> str:
        n = self.n_modes()
        cov = record.values.get(names.MODES_COVERED)
        extra = f" - {int(cov)}/{n} modes" if n and cov is not None else ""
        return f"{self.title} step {record.step}{extra}".strip()

    def _finish(self, reporter: Reporter, samples: torch.Tensor) -> TrialResult:
        result = trial_result(self.evals, self.history, self.n_modes(), self.settings,
                              self.diag, self.step, self.train_seconds, self.diverged,
                              self.stopped, tags=self._result_tags())
        artifacts = self.final_artifacts()
        title = (f"{self._plot_title(self.evals[-1])} [{result.status}]" if self.evals
                 else f"{self.title} [{result.status}]")
        artifacts.update(self.pictures(samples, title,
                                       names.ARTIFACT_FINAL_SAMPLES.removesuffix(".png")))
        reporter.finish(result, artifacts)
        return result

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The whole trial state: the game's (networks, optimizers, RNG) plus the loop's
        (step, histories, evaluations, time spent)."""
        return {
            **self.game_state(),
            "step": self.step,
            "torch_rng": torch.get_rng_state(),
            "train_seconds": self.train_seconds,
            "diverged": self.diverged,
            "diverged_reason": self.diverged_reason,
            "stopped": self.stopped,
            "history": list(self.history),
            "evals": evals_state(self.evals),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_game_state(state)
        self.step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        self.train_seconds = float(state["train_seconds"])
        self.diverged = bool(state["diverged"])
        self.diverged_reason = state.get("diverged_reason")  # absent from older checkpoints
        self.stopped = state.get("stopped")  # absent from checkpoints older than stop_early
        self.history = list(state["history"])
        self.evals = evals_from_state(state["evals"])


def dataset_modes(dataset: Dataset) -> int | None:
    """The modes a dataset's coverage counts: its mixture's components or its classes."""
    n = getattr(dataset, "n_modes", None) or getattr(dataset, "n_classes", None)
    return int(n) if n else None


def evals_state(evals: list[EvalRecord]) -> list:
    """Evaluation records as checkpoint state (plain tuples; modes as sorted lists)."""
    return [(e.step, dict(e.values), sorted(e.covered) if e.covered is not None else None)
            for e in evals]


def evals_from_state(state: list) -> list[EvalRecord]:
    """The inverse of :func:`evals_state`."""
    return [EvalRecord(s, dict(v), frozenset(c) if c is not None else None) for s, v, c in state]


def trial_result(evals: list[EvalRecord], history: list[tuple[int, dict[str, float]]],
                 n_modes: int | None, settings: TrainSettings, diag: DiagnosticSettings,
                 step: int, train_seconds: float, diverged: bool, stopped: str | None = None,
                 tags: dict[str, str] | None = None) -> TrialResult:
    """A finished trial's :class:`~harness.reporting.TrialResult`: its status and summary
    metrics (:func:`~harness.diagnostics.summarize`), the last evaluation's values, and the
    budget and timing values every run records."""
    summary = summarize(evals, history, n_modes, settings.steps, diag, diverged, stopped)
    final = dict(evals[-1].values) if evals else {}
    final.update(summary.metrics)
    final[names.STEPS_DONE] = float(step)
    final[names.STEPS_BUDGET] = float(settings.steps)
    final[names.STOPPED_EARLY] = float(step < settings.steps)
    final[names.TRAIN_SECONDS] = train_seconds
    if train_seconds > 0:
        final[names.STEPS_PER_SECOND] = step / train_seconds
    if n_modes:
        final[names.N_MODES] = float(n_modes)
    return TrialResult(status=summary.status, final=final, steps_done=step,
                       train_seconds=train_seconds, evals=list(evals), history=list(history),
                       tags=dict(tags or {}))
