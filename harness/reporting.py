"""The small interface through which a trial reports: the trainer knows nothing else.

Implementations: :class:`MemoryReporter` (tests, notebooks), the MLflow reporter in
:mod:`harness.tracking` (``harness run``) and the Ray Tune reporter in
:mod:`harness.tune_glue` (studies), which wraps the MLflow one.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.config import TrialConfig
from harness.diagnostics import EvalRecord

HistoryRows = list[tuple[int, dict[str, float]]]


@dataclass
class TrialInfo:
    """What a reporter learns when a trial starts."""

    config: TrialConfig
    #: the MLflow params: ``config.flat_params()`` with derived values filled in
    #: (:func:`harness.trial.recorded_params`)
    params: dict[str, Any]
    tags: dict[str, str]
    resumed_from_step: int = 0
    #: ``{param: value}`` of the params whose configured ``None`` a plugin derived
    derived: dict[str, Any] = field(default_factory=dict)
    #: the chance levels of the trial's metrics (:func:`harness.metrics.chance_metrics`),
    #: logged as run metrics at step 0
    chance: dict[str, float] = field(default_factory=dict)


@dataclass
class TrialResult:
    """What :func:`harness.trial.run_trial` returns and :meth:`Reporter.finish` receives."""

    status: str
    final: dict[str, float]  # last evaluation's values + per-trial summary metrics
    steps_done: int
    train_seconds: float
    evals: list[EvalRecord] = field(default_factory=list)
    history: HistoryRows = field(default_factory=list)
    #: tags that classify the finished run, set by the game (e.g. the xy game's orbit)
    tags: dict[str, str] = field(default_factory=dict)


class Reporter(ABC):
    """Receives what a trial produces, in this order of calls:

    ``restore`` once, ``start`` once, then for every evaluation ``history`` followed by
    ``evaluation``; finally ``finish`` (or ``fail`` if the trial raised).
    """

    def restore(self) -> dict[str, Any] | None:
        """Called once before anything is trained: a checkpoint state to resume from, or None."""
        return None

    @abstractmethod
    def start(self, info: TrialInfo) -> None:
        """Called once, after models are built (and restored), before the first step."""

    @abstractmethod
    def history(self, rows: HistoryRows) -> None:
        """Called at every evaluation with the per-step rows logged since the previous call."""

    @abstractmethod
    def evaluation(self, step: int, values: dict[str, float], artifacts: dict[str, bytes],
                   checkpoint: Callable[[], dict[str, Any]]) -> None:
        """Called after every evaluation; ``checkpoint()`` builds the full trial state."""

    @abstractmethod
    def finish(self, result: TrialResult, artifacts: dict[str, bytes]) -> None:
        """Called once when training ends (also when it ended early: diverged, or a status
        of ``diagnostics.stop_early``)."""

    def fail(self, error: BaseException) -> None:
        """Called when the trial raised; the exception is re-raised afterwards."""


class NullReporter(Reporter):
    """Keeps nothing: a trial run for its result alone (benchmarks, bare baselines)."""

    def start(self, info: TrialInfo) -> None:
        pass

    def history(self, rows: HistoryRows) -> None:
        pass

    def evaluation(self, step, values, artifacts, checkpoint) -> None:
        pass

    def finish(self, result: TrialResult, artifacts: dict[str, bytes]) -> None:
        pass


class MemoryReporter(Reporter):
    """Keeps everything in memory; optionally resumes from a given state."""

    def __init__(self, resume: dict[str, Any] | None = None, keep_checkpoints: bool = False):
        self.resume = resume
        self.keep_checkpoints = keep_checkpoints
        self.info: TrialInfo | None = None
        self.rows: HistoryRows = []
        self.evals: list[tuple[int, dict[str, float]]] = []
        self.artifacts: dict[str, bytes] = {}
        self.checkpoints: list[dict[str, Any]] = []
        self.result: TrialResult | None = None
        self.error: BaseException | None = None

    def restore(self) -> dict[str, Any] | None:
        return self.resume

    def start(self, info: TrialInfo) -> None:
        self.info = info

    def history(self, rows: HistoryRows) -> None:
        self.rows.extend(rows)

    def evaluation(self, step, values, artifacts, checkpoint) -> None:
        self.evals.append((step, dict(values)))
        self.artifacts.update(artifacts)
        if self.keep_checkpoints:
            self.checkpoints.append(copy.deepcopy(checkpoint()))  # state_dicts alias live tensors

    def finish(self, result: TrialResult, artifacts: dict[str, bytes]) -> None:
        self.result = result
        self.artifacts.update(artifacts)

    def fail(self, error: BaseException) -> None:
        self.error = error
