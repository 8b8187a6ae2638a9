"""The budget loop every trial runs, for a game of one copy or of N: train, evaluate,
report, checkpoint, finish.

:class:`CopiesLoop` is the loop, written once: it trains a *game* of ``copies`` >= 1
copies -- each copy the game of one trial config -- in rounds of ``eval_every`` steps,
evaluates every copy still training after each round, and keeps one :class:`CopyRun`
(histories, evaluations, time spent, how it ended) and one
:class:`~harness.reporting.Reporter` per copy. Two kinds of game plug into it:

* a game of one copy subclasses :class:`TrainingLoop` and implements its one-copy hooks --
  the adversarial GAN game of :class:`harness.trainer.Trainer`, CycleGAN's two-way game,
  the bilinear xy game (a model family picks its game with
  :meth:`harness.models.Model.loop_class`);
* a game of N stacked copies implements the copy hooks of :class:`CopiesLoop` itself --
  :class:`harness.vector.trial.VectorTrainer`, N seeds or search suggestions of one pair
  trained as one vectorized model.

Hooks of a game, in the order the loop calls them:

* :meth:`CopiesLoop.train_copies` once per step (``measure`` on every ``log_every``-th
  step), :meth:`CopiesLoop.frozen` after every measured step and every round;
* :meth:`CopiesLoop.freeze` when the loop ends a copy the others outlive (its loss
  diverged, or ``diagnostics.stop_early`` held);
* at every evaluation :meth:`CopiesLoop.sample_copies` and :meth:`CopiesLoop.eval_contexts`,
  then every metric, then :meth:`CopiesLoop.copy_pictures` for each copy's PNGs;
* :meth:`CopiesLoop.game_state` / :meth:`CopiesLoop.load_game_state` whenever a checkpoint
  is written / restored;
* :meth:`CopiesLoop.copy_final_artifacts` and :meth:`CopiesLoop.copy_summary_tags` once per
  copy, when its budget is spent.

The loop knows nothing of Ray or MLflow: it talks to reporters.
"""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch

from harness import names
from harness.config import DiagnosticSettings, TrainSettings
from harness.data import Dataset
from harness.diagnostics import EvalRecord, divergence_reason, early_stop_reason, summarize
from harness.metrics import EvalContext, Metric
from harness.reporting import Reporter, TrialResult


@dataclasses.dataclass
class CopyRun:
    """What the loop keeps of one copy: the record a single trial's run is built from."""

    #: ``[(step, row)]``, a row of :mod:`harness.names` values every ``log_every`` steps
    history: list[tuple[int, dict[str, float]]] = dataclasses.field(default_factory=list)
    evals: list[EvalRecord] = dataclasses.field(default_factory=list)
    #: time in the training loop; a copy of N gets its share of each round's wall time
    train_seconds: float = 0.0
    diverged: bool = False
    diverged_reason: str | None = None
    #: the status training was stopped early for (``diagnostics.stop_early``), or None
    stopped: str | None = None
    #: the step the copy stopped training at (diverged or stopped), None while it trains
    ended_at: int | None = None
    #: whether its reporter got ``finish``
    done: bool = False

    def state(self) -> dict[str, Any]:
        return {"history": list(self.history), "evals": evals_state(self.evals),
                "train_seconds": self.train_seconds, "diverged": self.diverged,
                "diverged_reason": self.diverged_reason, "stopped": self.stopped,
                "ended_at": self.ended_at, "done": self.done}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CopyRun:
        return cls(history=list(state["history"]), evals=evals_from_state(state["evals"]),
                   train_seconds=float(state["train_seconds"]),
                   diverged=bool(state["diverged"]),
                   diverged_reason=state.get("diverged_reason"),  # absent before it existed
                   stopped=state.get("stopped"), ended_at=state.get("ended_at"),
                   done=bool(state.get("done", False)))


#: what :meth:`CopiesLoop.run` calls after every evaluation round: ``(step, values,
#: checkpoint)`` with each copy's values (None for copies not evaluated in that round)
AfterEvaluation = Callable[[int, list[dict[str, float] | None], Callable[[], dict]], None]


class CopiesLoop(ABC):
    """Trains the ``copies`` copies of one game; :meth:`run` spends the whole budget and
    reports as it goes (module docstring). Every copy shares ``settings`` and
    ``diagnostics`` (copies differ in seed and per-copy optimiser settings only)."""

    #: history keys whose NaN/inf or magnitude above ``diagnostics.diverge_loss`` stops a copy
    divergence_keys: tuple[str, ...] = (names.LOSS_D, names.LOSS_G)

    def __init__(self, dataset: Dataset, metrics: list[Metric], settings: TrainSettings,
                 diagnostics: DiagnosticSettings, titles: Sequence[str],
                 device: torch.device | str = "cpu"):
        self.dataset, self.metrics = dataset, list(metrics)
        self.settings, self.diag = settings, diagnostics
        self.device = torch.device(device)
        self.titles = list(titles)
        self.copies = len(self.titles)
        self.step = 0
        self.runs = [CopyRun() for _ in self.titles]

    # -- the game's hooks -------------------------------------------------------------------
    @abstractmethod
    def train_copies(self, measure: bool) -> Sequence[dict[str, float] | None] | None:
        """Called once per step: one step of every copy still training. With ``measure``
        returns one history row per copy (None for a copy that did not train), else None."""

    def frozen(self) -> dict[int, int]:
        """Called after every measured step and every round: ``{copy: step}`` of copies
        the game stopped on its own (a non-finite loss inside an optimiser step); none by
        default."""
        return {}

    def freeze(self, k: int) -> None:
        """Called when the loop ends copy ``k`` while others go on training (its logged
        loss diverged, or a ``stop_early`` status held): the game must stop changing it.
        Nothing by default: a one-copy game's loop ends with its copy."""

    @abstractmethod
    def sample_copies(self) -> Sequence[torch.Tensor]:
        """Called at every evaluation: each copy's samples the metrics score, on the CPU."""

    @abstractmethod
    def eval_contexts(self, copies: Sequence[int]) -> list[EvalContext]:
        """Called at every evaluation after :meth:`sample_copies`: for each of ``copies``,
        what metrics know besides its samples (the loop sets a context's ``device`` to the
        trial's device when the game leaves it None)."""

    def copy_pictures(self, k: int, samples: torch.Tensor, title: str,
                      prefix: str) -> dict[str, bytes]:
        """Called after every evaluation and once at the end, per copy: PNG artifacts named
        ``{prefix}*.png``; the dataset's own picture of the samples by default."""
        png = self.dataset.plot_samples(samples, title)
        return {} if png is None else {f"{prefix}.png": png}

    @abstractmethod
    def game_state(self) -> dict[str, Any]:
        """Called whenever a checkpoint is written: networks, optimizers, game RNG."""

    @abstractmethod
    def load_game_state(self, state: dict[str, Any]) -> None:
        """Called on restore with the full checkpoint state (what :meth:`state_dict` wrote)."""

    def copy_final_artifacts(self, k: int) -> dict[str, bytes]:
        """Called once per copy when its budget is spent: files to keep besides its final
        pictures (none by default)."""
        return {}

    def copy_summary_tags(self, k: int) -> dict[str, str]:
        """Called once per copy at its end: tags that classify the finished run."""
        return {}

    def n_modes(self) -> int | None:
        return dataset_modes(self.dataset)

    # -- where each copy is -----------------------------------------------------------------
    def copy_step(self, k: int) -> int:
        """The step copy ``k`` is at: where it stopped training, else the shared step."""
        at = self.runs[k].ended_at
        return self.step if at is None else at

    def copy_is_final(self, k: int) -> bool:
        """Whether copy ``k`` trains no more: budget spent, diverged or stopped early."""
        return self.runs[k].ended_at is not None or self.step >= self.settings.steps

    def _end(self, k: int, step: int, *, diverged: str | None = None,
             stopped: str | None = None) -> None:
        run = self.runs[k]
        run.ended_at = step
        run.diverged, run.diverged_reason = diverged is not None, diverged
        run.stopped = stopped
        if any(self.runs[j].ended_at is None for j in range(self.copies)):
            self.freeze(k)

    def _check_rows(self, rows: Sequence[dict[str, float] | None],
                    pending: list[list[tuple[int, dict[str, float]]]]) -> None:
        for k, row in enumerate(rows):
            if row is None or self.runs[k].ended_at is not None:
                continue
            pending[k].append((self.step, row))
            reason = divergence_reason(row, self.divergence_keys, self.diag.diverge_loss,
                                       self.step)
            if reason is not None:
                self._end(k, self.step, diverged=reason)

    def _check_frozen(self, pending: list[list[tuple[int, dict[str, float]]]]) -> None:
        for k, step in self.frozen().items():
            if self.runs[k].ended_at is None:
                # a loss non-finite inside an optimiser step: its row, when logged, says which
                rows = [r for s, r in pending[k] + self.runs[k].history if s == step]
                reason = rows and divergence_reason(rows[0], self.divergence_keys,
                                                    self.diag.diverge_loss, step)
                self._end(k, step, diverged=reason or
                          f"a non-finite loss or gradient at step {step} (its update withheld)")

    def check_early_stop(self, k: int) -> None:
        """Called after every evaluation of copy ``k``, before its checkpoint: ends it
        (``stopped``) when a status of ``diagnostics.stop_early`` holds now and budget is
        left (:func:`harness.diagnostics.early_stop_reason`)."""
        run = self.runs[k]
        if self.diag.stop_early and not self.copy_is_final(k):
            reason = early_stop_reason(run.evals, run.history, self.n_modes(), self.diag,
                                       self.diag.stop_early)
            if reason is not None:
                self._end(k, self.step, stopped=reason)

    # -- evaluation ---------------------------------------------------------------------
    def _evaluate(self, copies: list[int], samples: Sequence[torch.Tensor]
                  ) -> dict[int, EvalRecord]:
        """Every metric's values for ``copies``. One copy calls :meth:`Metric.evaluate`, the
        hook every metric defines; several call :meth:`Metric.evaluate_copies` once, which
        shares work between the copies."""
        contexts = [c if c.device is not None else dataclasses.replace(c, device=self.device)
                    for c in self.eval_contexts(copies)]
        values: dict[int, dict[str, float]] = {k: {} for k in copies}
        covered: dict[int, frozenset[int] | None] = {k: None for k in copies}
        for metric in self.metrics:
            if len(copies) == 1:
                evs = [metric.evaluate(samples[copies[0]], self.dataset, contexts[0])]
            else:
                evs = metric.evaluate_copies([samples[k] for k in copies], self.dataset,
                                             contexts)
            for k, ev in zip(copies, evs):
                values[k].update(ev.values)
                covered[k] = ev.extras.get("covered_modes", covered[k])
        return {k: EvalRecord(self.copy_step(k), values[k], covered[k]) for k in copies}

    # -- the whole budget -----------------------------------------------------------------
    def run(self, reporters: Sequence[Reporter | None],
            after_evaluation: AfterEvaluation | None = None) -> list[TrialResult | None]:
        """Train every unfinished copy to its end. ``reporters[k]`` (None: nobody listens)
        receives copy ``k``'s calls in this order: per evaluation ``history`` then
        ``evaluation`` (with that evaluation's pictures -- none for the copy's last, whose
        pictures go with ``finish`` -- and a function building the whole checkpoint
        state), at the end ``finish``. ``after_evaluation`` is called after
        every round that leaves a copy training. Returns each copy's result (None for
        copies finished before this call)."""
        s = self.settings
        results: list[TrialResult | None] = [None] * self.copies
        pending: list[list[tuple[int, dict[str, float]]]] = [[] for _ in range(self.copies)]
        while not all(run.done for run in self.runs):
            training = [k for k, run in enumerate(self.runs) if not run.done]
            # restored after a copy's last evaluation: finish it without evaluating again
            ready = [k for k in training if self.copy_is_final(k) and self.runs[k].evals
                     and self.runs[k].evals[-1].step == self.copy_step(k)]
            if ready:
                samples = self.sample_copies()
                for k in ready:
                    results[k] = self._finish(k, reporters[k], samples[k])
                continue
            stop_at = min(s.steps, (self.step // s.eval_every + 1) * s.eval_every)
            t0 = time.perf_counter()
            while self.step < stop_at and not all(self.copy_is_final(k) for k in training):
                rows = self.train_copies(measure=(self.step + 1) % s.log_every == 0)
                self.step += 1
                if rows is not None:
                    self._check_rows(rows, pending)
                    self._check_frozen(pending)
            if self.device.type == "cuda":  # count the queued kernels as training time
                torch.cuda.synchronize(self.device)
            elapsed = time.perf_counter() - t0
            self._check_frozen(pending)
            samples = self.sample_copies()
            records = self._evaluate(training, samples)
            for k in training:
                run, rep = self.runs[k], reporters[k]
                run.train_seconds += elapsed / len(training)
                run.evals.append(records[k])
                run.history.extend(pending[k])
                self.check_early_stop(k)
                final = self.copy_is_final(k)
                if rep is not None:
                    rep.history(pending[k])
                    step = records[k].step
                    # the last evaluation's picture is the final one (final_samples.png)
                    art = {} if final else self.copy_pictures(
                        k, samples[k], self._plot_title(k, records[k]),
                        f"{names.ARTIFACT_SAMPLES_DIR}/step_{step:07d}")
                    rep.evaluation(step, records[k].values, art, self.state_dict)
                pending[k] = []
                if final:
                    results[k] = self._finish(k, rep, samples[k])
            if after_evaluation is not None and not all(run.done for run in self.runs):
                values = [records[k].values if k in records else None
                          for k in range(self.copies)]
                after_evaluation(self.step, values, self.state_dict)
        return results

    def _result_tags(self, k: int) -> dict[str, str]:
        tags = self.copy_summary_tags(k)
        if self.runs[k].diverged_reason is not None:
            tags[names.TAG_DIVERGED_REASON] = self.runs[k].diverged_reason
        return tags

    def _plot_title(self, k: int, record: EvalRecord) -> str:
        n = self.n_modes()
        cov = record.values.get(names.MODES_COVERED)
        extra = f" - {int(cov)}/{n} modes" if n and cov is not None else ""
        return f"{self.titles[k]} step {record.step}{extra}".strip()

    def result(self, k: int) -> TrialResult:
        """Copy ``k``'s :class:`~harness.reporting.TrialResult` from its record so far."""
        run = self.runs[k]
        return trial_result(run.evals, run.history, self.n_modes(), self.settings, self.diag,
                            self.copy_step(k), run.train_seconds, run.diverged, run.stopped,
                            tags=self._result_tags(k))

    def _finish(self, k: int, reporter: Reporter | None, samples: torch.Tensor) -> TrialResult:
        run = self.runs[k]
        result = self.result(k)
        run.done = True
        if reporter is not None:
            artifacts = self.copy_final_artifacts(k)
            title = (f"{self._plot_title(k, run.evals[-1])} [{result.status}]" if run.evals
                     else f"{self.titles[k]} [{result.status}]")
            artifacts.update(self.copy_pictures(
                k, samples, title, names.ARTIFACT_FINAL_SAMPLES.removesuffix(".png")))
            reporter.finish(result, artifacts)
        return result

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The whole trial state: the game's (networks, optimizers, RNG) plus the loop's
        (step, and each copy's histories, evaluations, time spent and end)."""
        return {
            **self.game_state(),
            "step": self.step,
            "torch_rng": torch.get_rng_state(),
            "copies": [run.state() for run in self.runs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_game_state(state)
        self.step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        self.runs = [CopyRun.from_state(c) for c in _copies_state(state, self.copies)]


def _copies_state(state: dict[str, Any], copies: int) -> list[dict[str, Any]]:
    """Each copy's loop state; checkpoints written before :class:`CopyRun` kept one
    trial's loop state at the top level, or (vectorized trials) one list per field."""
    if "copies" in state:
        return state["copies"]
    if "done" in state:  # a vectorized trial's
        frozen = [int(s) for s in state["diverged_at"].tolist()]
        return [{"history": state["history"][k], "evals": state["evals"][k],
                 "train_seconds": state["train_seconds"][k], "diverged": frozen[k] > 0,
                 "ended_at": frozen[k] or None, "done": state["done"][k]}
                for k in range(copies)]
    ended = state["step"] if state["diverged"] or state.get("stopped") else None
    return [{"history": state["history"], "evals": state["evals"],
             "train_seconds": state["train_seconds"], "diverged": state["diverged"],
             "diverged_reason": state.get("diverged_reason"), "stopped": state.get("stopped"),
             "ended_at": ended}]


class TrainingLoop(CopiesLoop):
    """A game of one copy: one trial config trained by :class:`CopiesLoop`'s loop. A
    subclass implements the one-copy hooks below; :meth:`fit` runs the whole budget."""

    def __init__(self, dataset: Dataset, metrics: list[Metric], settings: TrainSettings,
                 diagnostics: DiagnosticSettings, seed: int,
                 device: torch.device | str = "cpu", title: str = ""):
        super().__init__(dataset, metrics, settings, diagnostics, [title], device)
        self.seed, self.title = seed, title

    # -- the one-copy game's hooks ----------------------------------------------------------
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
        return super().copy_pictures(0, samples, title, prefix)

    def final_artifacts(self) -> dict[str, bytes]:
        """Called once when the budget is spent: files to keep besides the final pictures."""
        return {}

    def summary_tags(self) -> dict[str, str]:
        """Called once at the end: tags that classify the finished run (none by default)."""
        return {}

    # -- the copy hooks, for the one copy -----------------------------------------------------
    def train_copies(self, measure: bool) -> list[dict[str, float] | None] | None:
        row = self.train_step(measure)
        return None if row is None else [row]

    def sample_copies(self) -> list[torch.Tensor]:
        return [self.sample()]

    def eval_contexts(self, copies: Sequence[int]) -> list[EvalContext]:
        return [self.eval_context()]

    def copy_pictures(self, k: int, samples: torch.Tensor, title: str,
                      prefix: str) -> dict[str, bytes]:
        return self.pictures(samples, title, prefix)

    def copy_final_artifacts(self, k: int) -> dict[str, bytes]:
        return self.final_artifacts()

    def copy_summary_tags(self, k: int) -> dict[str, str]:
        return self.summary_tags()

    # -- the one copy's record ------------------------------------------------------------------
    @property
    def history(self) -> list[tuple[int, dict[str, float]]]:
        return self.runs[0].history

    @property
    def evals(self) -> list[EvalRecord]:
        return self.runs[0].evals

    @property
    def train_seconds(self) -> float:
        return self.runs[0].train_seconds

    @property
    def diverged(self) -> bool:
        return self.runs[0].diverged

    @property
    def diverged_reason(self) -> str | None:
        return self.runs[0].diverged_reason

    @property
    def stopped(self) -> str | None:
        return self.runs[0].stopped

    def _is_final(self) -> bool:
        return self.copy_is_final(0)

    def evaluate(self) -> tuple[EvalRecord, torch.Tensor]:
        """One evaluation of the current state (recorded in :attr:`evals`), and its samples."""
        samples = self.sample_copies()
        record = self._evaluate([0], samples)[0]
        self.runs[0].evals.append(record)
        return record, samples[0]

    def fit(self, reporter: Reporter) -> TrialResult:
        """The whole budget, reported to ``reporter``: :meth:`CopiesLoop.run` for one copy."""
        result = self.run([reporter])[0]
        # restored after its end: nothing is reported twice
        return self.result(0) if result is None else result


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
