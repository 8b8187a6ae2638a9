"""Everything that knows Ray Tune: the trial entry point, its checkpoints, the study's searcher.

* :func:`trainable` runs in a Ray worker: it sizes torch's thread pool to the CPUs Ray
  granted, opens one MLflow run per copy of the trial (one for a plain trial, N for a
  vectorized one), restores Tune's latest checkpoint (:func:`restore_checkpoint`) and runs
  :func:`harness.trial.run_copies` with the GPU share Ray granted (which picks
  ``train.device: auto``); after every evaluation round it reports the copies' mean values
  to Tune with a checkpoint holding the whole trial state and every run id (so a retried
  trial continues the same runs).
* :func:`make_searcher` builds the study's searcher, :class:`harness.searcher.StudySearcher`
  (the study protocol inside one Tune experiment).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

from harness import names
from harness.checkpoint import load_first_good, save_checkpoint, trial_checkpoints
from harness.config import SearchSettings, TrialConfig, VariantPlan
from harness.names import RECOVERED, RETRY_ATTEMPT, RETRY_OF
from harness.searcher import ERRORED_TRIALS, STARTED_TRIALS, StudySearcher
from harness.tune_pruning import stopped_by_scheduler

RAY_ENV = {
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "PYTHONWARNINGS": "ignore::DeprecationWarning",
}


def set_ray_env() -> None:
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)


#: checkpoints Tune keeps per trial: the latest and the one to fall back to if it is corrupt
CHECKPOINTS_KEPT = 2


def _is_local(ckpt) -> bool:
    import pyarrow.fs

    return isinstance(ckpt.filesystem, pyarrow.fs.LocalFileSystem) and Path(ckpt.path).is_dir()


def restore_checkpoint(notes: dict[str, str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(state, meta)`` of Tune's latest checkpoint of this trial, else of the newest older
    one that loads (each skipped one is printed and noted in ``notes``, a tag for the run),
    else ``(None, None)``."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return None, None
    if _is_local(ckpt):
        state, meta, skipped = load_first_good(trial_checkpoints(ckpt.path))
    else:  # remote storage: only the latest is fetched
        with ckpt.as_directory() as d:
            state, meta, skipped = load_first_good([d])
    for line in skipped:
        print(f"harness: {line}; trying an older checkpoint", file=sys.stderr, flush=True)
    if skipped:
        notes[names.TAG_CHECKPOINT_SKIPPED] = " | ".join(skipped)[:5000]
        if state is None:
            print("harness: no usable checkpoint; the trial restarts from scratch",
                  file=sys.stderr, flush=True)
    return state, meta


def _granted_cpus() -> int:
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except Exception:  # noqa: BLE001
        cpus = 1
    return max(1, math.floor(cpus))


def _granted_gpus() -> float | None:
    """The GPU share Ray granted this trial (0.0 when none), or None outside a Ray worker;
    what :func:`harness.device.resolve_device` decides ``train.device: auto`` by."""
    try:
        import ray

        if not ray.is_initialized():  # get_runtime_context() would start Ray
            return None
        return float(ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0))
    except Exception:  # noqa: BLE001  (the driver: not a worker)
        return None


def node_tags() -> dict[str, str]:
    """Where this trial runs: the Ray node's id and its machine's host name (provenance;
    on a cluster, which node to look at when a trial misbehaves)."""
    import socket

    import ray

    tags = {names.TAG_HOST: socket.gethostname()}
    if ray.is_initialized():  # get_runtime_context() would start Ray
        tags[names.TAG_RAY_NODE] = ray.get_runtime_context().get_node_id()
    return tags


def trainable(config: dict[str, Any], *, tracking_uri: str, experiment_id: str,
              parent_run_id: str, resumed: bool = False) -> None:
    """The Ray Tune function trainable of every study trial: one config, or the copies of a
    vectorized trial (study key ``vectorize``: ``config["copy_seeds"]``, with
    ``config["copy_params"]`` for a batch of search suggestions), trained by
    :func:`harness.trial.run_copies`.

    Copy ``k`` writes its own MLflow child run (a single trial: the trial's run, named
    ``config["label"]``; a vectorized one: named ``config["copy_labels"][k]``, tagged and
    parametrised as the single seeds trial with its seed would be, plus ``trial_id`` = Tune
    trial id + ``-copyK`` and the ``vector_*`` tags). Tune gets one result per evaluation
    round (the copies' mean values) with one checkpoint holding the whole trial state and
    every copy's run id, so a retried trial continues every copy's run; the final result
    carries ``final``, the status (``ok`` when every copy's is, else the distinct statuses
    joined by commas), every run id (``mlflow_run_id``: the first; ``mlflow_run_ids``),
    and every copy's final metrics and status (``copy_values``, what a batch's Optuna
    suggestions are told). A trial whose runs all finished before reports them without
    training; in a ``resumed`` study that includes a finished run of the same configuration
    and seed under another trial id (Tune's last saved state predates the trial's end)."""
    import torch
    from ray import tune

    from harness.allocator import keep_freed_memory
    from harness.tracking import MlflowReporter
    from harness.trial import run_copies
    from harness.vector.trial import copy_configs

    torch.set_num_threads(_granted_cpus())
    keep_freed_memory()  # a trial's steps reuse their freed memory: no page faults per step
    base = TrialConfig.model_validate(config["trial"])
    label = config.get("label", base.key)
    # a trial suggested again after it failed before it started keeps its first id: a run
    # that first attempt may have opened is found and continued
    trial_id = config.get(RETRY_OF) or tune.get_context().get_trial_id()
    # only a trial that ran before can have a run: a first attempt makes its own without
    # searching for one (a request per trial; a checkpoint names its runs anyway)
    ran_before = bool(resumed or config.get(RETRY_OF) or config.get(RECOVERED))
    notes = dict(node_tags())
    if config.get("copy_seeds"):
        cfgs = copy_configs(base, config["copy_seeds"], config.get("copy_params"))
        labels, ids = list(config["copy_labels"]), [
            f"{trial_id}{names.COPY_SUFFIX}{k}" for k in range(len(cfgs))]
        tags = [{names.TAG_VECTOR_TRIAL: trial_id, names.TAG_VECTOR_COPY: str(k),
                 names.TAG_VECTOR_COPIES: str(len(cfgs)), names.TAG_VECTORIZED: "true"}
                for k in range(len(cfgs))]
    else:
        cfgs, labels, ids, tags = [base], [label], [trial_id], [{}]
    # an evaluation's batch goes just before its checkpoint, the last with the run's summary
    inners = [MlflowReporter(tracking_uri, experiment_id, parent_run_id, trial_id=ids[k],
                             run_name=labels[k], hold_evaluations=True,
                             new_run=not ran_before)
              for k in range(len(cfgs))]
    extra = {"label": label, "copies": len(cfgs)}

    def run_ids() -> dict[str, Any]:
        runs = [inner.run_id for inner in inners]
        return {"mlflow_run_id": runs[0], "mlflow_run_ids": runs}

    state, meta = restore_checkpoint(notes)
    if meta is not None:
        saved = meta.get("mlflow_run_ids") or [meta.get("mlflow_run_id")]
        for inner, run_id in zip(inners, saved):
            inner.run_id = run_id or inner.run_id
    before = [inner.finished_run(cfg.digest() if resumed else None)
              for inner, cfg in zip(inners, cfgs)]
    for inner, run in zip(inners, before):
        if run is not None:
            inner.run_id = run.info.run_id
    finals: list[dict[str, Any] | None] = [
        None if run is None else {**run.data.metrics,
                                  names.TAG_STATUS: run.data.tags.get(names.TAG_STATUS,
                                                                      names.STATUS_OK)}
        for run in before]

    if not all(finals):
        def after_evaluation(step: int, values, checkpoint) -> None:
            for inner in inners:  # MLflow holds what the checkpoint says was done
                inner.send_pending()
            with tempfile.TemporaryDirectory() as d:
                save_checkpoint(d, checkpoint(), {**run_ids(), "step": step})
                tune.report({**_combined(values), "step": step, "final": False, **extra},
                            checkpoint=tune.Checkpoint.from_directory(d))

        results = run_copies(cfgs, inners, state=state, finished=[f is not None for f in finals],
                             tags=[{**notes, **t} for t in tags],
                             granted_gpus=_granted_gpus(), after_evaluation=after_evaluation)
        for k, result in enumerate(results):
            if result is not None:
                finals[k] = {**result.final, names.TAG_STATUS: result.status}
    statuses = [str(f[names.TAG_STATUS]) for f in finals]
    metrics = _combined([{k: v for k, v in f.items() if k != names.TAG_STATUS} for f in finals])
    tune.report({**metrics, "step": int(max(f.get(names.STEPS_DONE, 0) for f in finals)),
                 "final": True, names.TAG_STATUS: ",".join(sorted(set(statuses))),
                 **run_ids(), "copy_values": finals, **extra})


def _combined(values: list[dict[str, float] | None]) -> dict[str, float]:
    """One Tune result from the copies' values: the mean over the copies that have one."""
    rows = [v for v in values if v]
    keys = sorted({k for v in rows for k in v})
    return {k: sum(v[k] for v in rows if k in v) / max(1, sum(k in v for v in rows))
            for k in keys}


# ---------------------------------------------------------------------------------------
# The study searcher
# ---------------------------------------------------------------------------------------


def make_searcher(plans: list[VariantPlan], search: SearchSettings, seeds: int, base_seed: int,
                  vectorize=None, retries: int = 1) -> StudySearcher:
    """The study's Tune searcher (:class:`harness.searcher.StudySearcher`); ``vectorize``:
    the study's :class:`~harness.vector.plan.VectorPlan`, or just its ``{pair key: copies
    per seeds trial}``; ``retries``: how often a trial that failed before it started is
    suggested again (the study's ``max_failures``)."""
    return StudySearcher(plans, search, seeds, base_seed, vectorize, retries)


class StartedTrials(Callback):
    """Keeps :data:`harness.searcher.STARTED_TRIALS`: the trials Tune started, which the
    searcher reads to tell a trial that failed before it started (suggested again) from one
    that failed running (retried by Tune, then failed); and :data:`ERRORED_TRIALS`, each
    trial Tune set to ERROR, once, so that the searcher learns of one Tune did not tell it
    of."""

    def __init__(self):
        self.errored: set[str] = set()  # the ERROR trials already put in ERRORED_TRIALS

    def __setstate__(self, state):  # pickled by an older harness: it had no state
        self.__dict__.update({"errored": set(), **state})

    def on_step_end(self, iteration, trials, **info):
        """Called by Tune at the end of every step of its loop, with every trial."""
        for trial in trials:
            if trial.status == "ERROR" and trial.trial_id not in self.errored:
                self.errored.add(trial.trial_id)
                ERRORED_TRIALS.add(trial.trial_id)

    def on_trial_start(self, iteration, trials, trial, **info):
        STARTED_TRIALS.add(trial.trial_id)

    def on_trial_recover(self, iteration, trials, trial, **info):
        """Tune put a failed running trial back to PENDING: until it starts again it can
        fail before it starts (its new worker may be dead too), like a new one. Its config
        is marked :data:`~harness.names.RECOVERED` (Tune hands a trial's config to every
        start): the run its first attempt opened is looked up, not made again."""
        STARTED_TRIALS.discard(trial.trial_id)
        trial.config[RECOVERED] = True


# ---------------------------------------------------------------------------------------
# Progress on the terminal
# ---------------------------------------------------------------------------------------


def _fmt(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class Progress(Callback):
    """A Tune callback printing one line per finished trial and a progress line."""

    def __init__(self, total: int, concurrency: int, stream=None, retries: int = 0):
        self.total, self.concurrency, self.retries = total, concurrency, retries
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.done = self.failed = 0
        #: trial id -> when it first started; a retried trial keeps its entry (Tune calls
        #: on_trial_start again for every retry), so it counts as running once
        self.started: dict[str, float] = {}
        #: trials Tune put back to PENDING after they failed running, not yet started again
        self.recovered: set[str] = set()
        self.durations: list[float] = []

    def __getstate__(self):  # Tune pickles its callbacks; a stream does not pickle
        return {k: v for k, v in self.__dict__.items() if k != "stream"}

    def __setstate__(self, state):
        self.__dict__.update({"retries": 0, "recovered": set()})  # pickled by an older harness
        self.__dict__.update(state)
        self.stream = sys.stderr

    def _line(self) -> str:
        elapsed = time.monotonic() - self.t0
        finished = self.done + self.failed
        eta = ""
        if self.durations:
            per = sum(self.durations) / len(self.durations)
            eta = f", ~{_fmt((self.total - finished) * per / max(1, self.concurrency))} left"
        return (f"  [{_fmt(elapsed)}] {finished}/{self.total} trials finished "
                f"({self.done} ok, {self.failed} failed), {self.running} running{eta}")

    @property
    def running(self) -> int:
        return len(self.started)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started.setdefault(trial.trial_id, time.monotonic())
        self.recovered.discard(trial.trial_id)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.recovered.add(trial.trial_id)

    def _end(self, trial) -> float:
        dt = time.monotonic() - self.started.pop(trial.trial_id, time.monotonic())
        self.durations.append(dt)
        return dt

    def on_trial_complete(self, iteration, trials, trial, **info):
        dt = self._end(trial)
        self.done += 1
        r = trial.last_result or {}
        label = trial.config.get("label", trial.trial_id)
        cov, n = r.get(names.MODES_COVERED), r.get(names.N_MODES)
        cov_s = f"{int(cov)}/{int(n)} modes" if cov is not None and n else ""
        if cov_s and int(r.get("copies", 1)) > 1:  # a vectorized trial: the copies' mean
            cov_s = f"{cov:.1f}/{int(n)} mean"
        status = (names.STATUS_PRUNED if stopped_by_scheduler(r)
                  else r.get(names.TAG_STATUS, "?"))
        print(f"  done  {label:<40} {cov_s:<11} {status:<13} "
              f"{dt:5.1f}s", file=self.stream)
        print(self._line(), file=self.stream, flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        label = trial.config.get("label", trial.trial_id)
        unstarted = trial.trial_id not in self.started or trial.trial_id in self.recovered
        if unstarted and trial.config.get(RETRY_ATTEMPT, 0) < self.retries:
            # the searcher suggests it again (StudySearcher): not a result
            self.started.pop(trial.trial_id, None)
            self.recovered.discard(trial.trial_id)
            print(f"  lost  {label:<40} its worker died before it started; running it again",
                  file=self.stream, flush=True)
            return
        dt = self._end(trial)
        self.failed += 1
        print(f"  FAIL  {label:<40} {'':<11} {'failed':<13} {dt:5.1f}s", file=self.stream)
        print(self._line(), file=self.stream, flush=True)
