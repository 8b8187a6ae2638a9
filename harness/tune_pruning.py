"""Pruning search-phase trials (``search.pruner``) and ending a pruned trial's MLflow run.

* :func:`make_scheduler` turns ``search.pruner`` into the study's Tune scheduler: a
  :class:`StudyPruner`, or None for ``none``.
* :class:`StudyPruner` gives every (variant, dataset) pair its own Tune scheduler --
  ``MedianStoppingRule`` for ``median``, ``ASHAScheduler`` (asynchronous successive
  halving) for ``asha`` -- on ``search.metric`` with time attribute ``step``, so a trial is
  only compared with the trials of its own pair (as each pair has its own Optuna sampler).
  Only **search**-phase trials are handed to them: a seeds-phase trial (which measures the
  chosen configuration's reliability) always continues. The last evaluation (``step`` at the
  budget) and the final report are never pruned, and a scheduler's PAUSE is turned into
  CONTINUE: a trial is either pruned or trained to its end.
* :class:`PrunedRuns` is the driver-side callback that ends a pruned trial's MLflow child run:
  tag ``status=pruned``, metrics ``steps_done`` (the step it was pruned at),
  ``steps_budget`` and ``stopped_early=1``, run status FINISHED (a pruned trial did not fail:
  it was ended by the study's protocol, and its metrics are those of its last evaluation).

How a Ray 2.60 function trainable learns that the scheduler stopped it: it does not, until
its next ``tune.report``. The report that led to the STOP decision is still blocked in
``tune.report`` (``_TrainSession._report_training_result`` waits on ``continue_lock``);
when Tune stops or reuses the actor, ``session.finish`` sets ``stop_event`` and releases the
lock, and ``tune.report`` raises ``SystemExit(0)``, which ``RunnerThread`` swallows. Tune
calls ``Callback.on_trial_complete`` *before* it tells the actor to stop, and may never wait
for the thread (``cleanup`` uses ``timeout=0``; a cached actor may be killed before reuse), so
the trial process cannot be relied on to end its run: the driver does, here, and
:func:`harness.trial.run_copies` leaves a ``SystemExit(0)`` alone. A trial the
scheduler stopped is recognised by its last result: a non-final evaluation report
(``final: False``) -- a trial that ran to its end always last reported ``final: True``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from ray.tune import Callback
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler

from harness import names
from harness.config import PrunerSettings, SearchSettings


def stopped_by_scheduler(result: dict[str, Any] | None) -> bool:
    """Whether a completed trial's last result says Tune's scheduler stopped it (a non-final
    evaluation report: see the module docstring)."""
    return bool(result) and result.get("final") is False


def make_scheduler(search: SearchSettings) -> StudyPruner | None:
    """The study's Tune scheduler for ``search.pruner`` (None: Tune's default FIFO)."""
    if search.pruner.type == "none":
        return None
    return StudyPruner(search.pruner, search.metric, search.direction)


def inner_scheduler(pruner: PrunerSettings, metric: str, mode: str, steps: int,
                    eval_every: int) -> TrialScheduler:
    """One pair's Tune scheduler, on ``metric`` with time attribute ``step``; ``grace``
    evaluations become ``grace * eval_every`` steps (at most the budget ``steps``)."""
    grace = min(pruner.grace * eval_every, steps)
    if pruner.type == "median":
        # min_time_slice=inf: never PAUSE a trial to let others run (StudyPruner also refuses)
        return MedianStoppingRule(time_attr="step", metric=metric, mode=mode,
                                  grace_period=grace, min_samples_required=pruner.min_trials,
                                  min_time_slice=math.inf, hard_stop=True)
    if pruner.type == "asha":
        return ASHAScheduler(time_attr="step", metric=metric, mode=mode, max_t=steps,
                             grace_period=grace, reduction_factor=pruner.reduction_factor,
                             brackets=1)
    raise ValueError(f"unknown pruner {pruner.type!r}")


def _search_pair(trial) -> tuple[str, dict[str, Any]] | None:
    """``(variant/dataset, train settings)`` of a search-phase trial, else None."""
    cfg = (trial.config or {}).get("trial") or {}
    if cfg.get("phase") != names.PHASE_SEARCH:
        return None
    return f"{cfg['variant']}/{cfg['dataset_key']}", cfg["train"]


class StudyPruner(FIFOScheduler):
    """Prunes search-phase trials, one inner scheduler per (variant, dataset) pair (module
    docstring); every other trial, and every final or budget-end report, continues."""

    def __init__(self, pruner: PrunerSettings, metric: str, mode: str):
        super().__init__()
        self.settings = pruner
        self._metric, self._mode = metric, mode
        self.inner: dict[str, TrialScheduler] = {}  # pair key -> its scheduler
        self.pairs: dict[str, tuple[str, int]] = {}  # live search trial id -> (pair, budget)
        self.pruned: set[str] = set()  # trial ids this scheduler stopped

    def _inner(self, trial) -> TrialScheduler | None:
        entry = self.pairs.get(trial.trial_id)
        return None if entry is None else self.inner[entry[0]]

    def on_trial_add(self, tune_controller, trial) -> None:
        """Called when Tune adds a trial (or re-adds a restored one)."""
        found = _search_pair(trial)
        if found is None:
            return
        key, train = found
        if key not in self.inner:
            self.inner[key] = inner_scheduler(self.settings, self._metric, self._mode,
                                              int(train["steps"]), int(train["eval_every"]))
        self.pairs[trial.trial_id] = (key, int(train["steps"]))
        self.inner[key].on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        """Called with every report: STOP only for a search trial its pair's scheduler
        prunes before the budget's end; CONTINUE otherwise (never PAUSE)."""
        entry = self.pairs.get(trial.trial_id)
        if entry is None or result.get("final") is not False:
            return TrialScheduler.CONTINUE
        if result.get("step", 0) >= entry[1]:  # the budget's last evaluation: let it finish
            return TrialScheduler.CONTINUE
        decision = self.inner[entry[0]].on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:
            self.pruned.add(trial.trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        """Called when a trial ended (finished or pruned)."""
        inner = self._inner(trial)
        if inner is None:
            return
        # MedianStoppingRule keeps every result it is given and reads its metric later
        if result and "step" in result and result.get(self._metric) is not None:
            inner.on_trial_complete(tune_controller, trial, result)
        self.pairs.pop(trial.trial_id, None)

    def on_trial_error(self, tune_controller, trial) -> None:
        """Called when a trial raised (before a retry, if any)."""
        inner = self._inner(trial)
        if inner is not None:
            inner.on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        """Called when a pending or paused trial is removed."""
        inner = self._inner(trial)
        if inner is not None:
            inner.on_trial_remove(tune_controller, trial)
            self.pairs.pop(trial.trial_id, None)

    def debug_string(self) -> str:
        return (f"StudyPruner({self.settings.type}): {len(self.pruned)} search trial(s) pruned "
                f"over {len(self.inner)} pair(s)")


def end_pruned_run(client, experiment_id: str, parent_run_id: str, trial_id: str,
                   step: float | None, budget: float | None) -> str | None:
    """End the MLflow child run of Tune trial ``trial_id`` as pruned at ``step`` of
    ``budget`` (module docstring); returns its run id, None when there is no such run."""
    from mlflow.entities import Metric, RunTag

    from harness.tracking import retry, search_all

    runs = search_all(client, [experiment_id],
                      f"tags.`{names.TAG_PARENT}` = '{parent_run_id}' and "
                      f"tags.{names.TAG_TRIAL_ID} = '{trial_id}'", limit=1)
    if not runs:
        return None
    run_id = runs[0].info.run_id
    now = int(time.time() * 1000)
    at = int(step or 0)
    metrics = [Metric(names.STOPPED_EARLY, 1.0, now, at)]
    if step is not None:
        metrics.append(Metric(names.STEPS_DONE, float(step), now, at))
    if budget is not None:
        metrics.append(Metric(names.STEPS_BUDGET, float(budget), now, at))
    retry(client.log_batch, run_id, metrics=metrics,
          tags=[RunTag(names.TAG_STATUS, names.STATUS_PRUNED)])
    retry(client.set_terminated, run_id, "FINISHED")
    return run_id


class PrunedRuns(Callback):
    """Driver-side Tune callback: ends the MLflow run of each trial the scheduler stopped
    (:func:`end_pruned_run`), when Tune reports the trial complete."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.tracking_uri, self.experiment_id = tracking_uri, experiment_id
        self.parent_run_id = parent_run_id
        self._client = None

    def __getstate__(self):  # Tune pickles its callbacks; an MLflow client need not travel
        return {**self.__dict__, "_client": None}

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        """Called by Tune when a trial ended, before its actor is told to stop."""
        result = trial.last_result or {}
        if not stopped_by_scheduler(result):
            return
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        budget = ((trial.config or {}).get("trial") or {}).get("train", {}).get("steps")
        # a trial suggested again logs under its first trial's id (harness.searcher)
        run_trial_id = (trial.config or {}).get(names.RETRY_OF) or trial.trial_id
        end_pruned_run(self._client, self.experiment_id, self.parent_run_id, run_trial_id,
                       result.get("step"), budget)
