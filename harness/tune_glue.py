"""Everything that knows Ray Tune: the trial entry point, its reporter, the study's searcher.

* :func:`trainable` runs in a Ray worker: it sizes torch's thread pool to the CPUs Ray
  granted, opens the trial's MLflow run and calls :func:`harness.trial.run_trial` with a
  :class:`TuneReporter` and the GPU share Ray granted (which picks ``train.device: auto``).
* :class:`TuneReporter` wraps the MLflow reporter and, at every evaluation, reports the
  metrics to Tune with a checkpoint holding the whole trial state and the MLflow run id
  (so a retried trial continues the same run).
* :func:`make_searcher` builds the study's searcher, :class:`harness.searcher.StudySearcher`
  (the study protocol inside one Tune experiment).
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from harness import names
from harness.checkpoint import load_first_good, save_checkpoint, trial_checkpoints
from harness.config import SearchSettings, TrialConfig, VariantPlan
from harness.reporting import HistoryRows, Reporter, TrialInfo, TrialResult
from harness.searcher import StudySearcher
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


class TuneReporter(Reporter):
    """Forwards to ``inner`` (MLflow) and reports to Tune with a checkpoint per evaluation."""

    def __init__(self, inner, extra: dict[str, Any] | None = None):
        self.inner = inner
        self.extra = extra or {}
        self.notes: dict[str, str] = {}  # tags set on the run at start (the node's, the restore's)

    def restore(self) -> dict[str, Any] | None:
        """The trial state of Tune's latest checkpoint, else of the newest older one that
        loads (each skipped one is printed and tagged on the run), else None: train from
        scratch in the same MLflow run."""
        state, meta = restore_checkpoint(self.notes)
        if meta is not None:
            self.inner.run_id = meta.get("mlflow_run_id") or self.inner.run_id
        return state

    def report_finished_run(self, digest: str | None = None) -> bool:
        """Called before training: when this trial's MLflow run already finished (a resumed
        study whose last saved Tune state predates the trial's end), report its final
        values to Tune instead of training again, and return True."""
        from ray import tune

        run = self.inner.finished_run(digest)
        if run is None:
            return False
        metrics = run.data.metrics
        tune.report({**metrics, "step": int(metrics.get(names.STEPS_DONE, 0)), "final": True,
                     names.TAG_STATUS: run.data.tags.get(names.TAG_STATUS, names.STATUS_OK),
                     "mlflow_run_id": run.info.run_id, **self.extra})
        return True

    def start(self, info: TrialInfo) -> None:
        info.tags.update(self.notes)
        self.inner.start(info)

    def history(self, rows: HistoryRows) -> None:
        self.inner.history(rows)

    def evaluation(self, step, values, artifacts, checkpoint: Callable[[], dict]) -> None:
        from ray import tune

        self.inner.evaluation(step, values, artifacts, checkpoint)
        with tempfile.TemporaryDirectory() as d:
            save_checkpoint(d, checkpoint(), {"mlflow_run_id": self.inner.run_id, "step": step})
            tune.report({**values, "step": step, "final": False, **self.extra},
                        checkpoint=tune.Checkpoint.from_directory(d))

    def finish(self, result: TrialResult, artifacts: dict[str, bytes]) -> None:
        from ray import tune

        self.inner.finish(result, artifacts)
        tune.report({**result.final, "step": result.steps_done, "final": True,
                     names.TAG_STATUS: result.status, "mlflow_run_id": self.inner.run_id,
                     **self.extra})

    def fail(self, error: BaseException) -> None:
        if isinstance(error, SystemExit) and error.code == 0:
            # tune.report's way of ending a trial Tune stopped (pruned, or the study was
            # interrupted): the driver ends the run (harness.tune_pruning, end_dangling_runs)
            return
        self.inner.fail(error)


def _granted_cpus() -> int:
    try:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
    except Exception:  # noqa: BLE001
        cpus = 1
    return max(1, math.floor(cpus))


def _granted_gpus() -> float | None:
    """The GPU share Ray granted this trial (0.0 when none), or None outside a Ray worker;
    what :func:`harness.trial.resolve_device` decides ``train.device: auto`` by."""
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
              parent_run_id: str) -> None:
    """The Ray Tune function trainable of every study trial."""
    import torch
    from ray import tune

    from harness.allocator import keep_freed_memory
    from harness.tracking import MlflowReporter
    from harness.trial import run_trial

    torch.set_num_threads(_granted_cpus())
    keep_freed_memory()  # a trial's steps reuse their freed memory: no page faults per step
    if config.get("copy_seeds"):
        vector_trainable(config, tracking_uri=tracking_uri, experiment_id=experiment_id,
                         parent_run_id=parent_run_id)
        return
    cfg = TrialConfig.model_validate(config["trial"])
    trial_id = tune.get_context().get_trial_id()
    label = config.get("label", cfg.key)
    inner = MlflowReporter(tracking_uri, experiment_id, parent_run_id, trial_id=trial_id,
                           run_name=label)
    reporter = TuneReporter(inner, extra={"label": label})
    reporter.notes.update(node_tags())
    if reporter.report_finished_run(cfg.digest()):
        return
    run_trial(cfg, reporter, granted_gpus=_granted_gpus())


def _combined(values: list[dict[str, float] | None]) -> dict[str, float]:
    """One Tune result from the copies' values: the mean over the copies that have one."""
    rows = [v for v in values if v]
    keys = sorted({k for v in rows for k in v})
    return {k: sum(v[k] for v in rows if k in v) / max(1, sum(k in v for v in rows))
            for k in keys}


def copy_trial_info(loop, k: int, tags: dict[str, str]) -> TrialInfo:
    """What copy ``k`` of a :class:`~harness.vector.trial.VectorLoop` tells its reporter when
    it starts: its config, its params -- those :func:`harness.trial.run_trial` records for
    the same config, derived values included (:func:`harness.trial.recorded_params`, with
    the loop's one model, loss, dataset and metrics: the copies differ only in seed and
    searched train settings) -- ``tags`` and the step it is at."""
    from harness.metrics import chance_metrics
    from harness.trial import recorded_params

    cfg = loop.cfgs[k]
    params, derived = recorded_params(cfg, model=loop.vec.model, dataset=loop.dataset,
                                      loss=loop.vec.loss, metrics=loop.metrics)
    chance = chance_metrics(loop.metrics, loop.dataset, cfg.train.eval_samples)
    return TrialInfo(cfg, params, tags, loop.copy_step(k), derived, chance)


def vector_trainable(config: dict[str, Any], *, tracking_uri: str, experiment_id: str,
                     parent_run_id: str) -> None:
    """A vectorized trial (study key ``vectorize``): the copies of ``config["copy_seeds"]``
    (with ``config["copy_params"]``, a batch of search suggestions) trained as one
    :class:`~harness.vector.trial.VectorLoop`.

    Copy ``k`` writes its own MLflow child run, named (``config["copy_labels"][k]``),
    tagged and parametrised as the single seeds trial with its seed would be, plus
    ``trial_id`` = Tune trial id + ``-copyK`` and the ``vector_*`` tags. Tune gets one
    result per evaluation (the copies' mean values) with one checkpoint holding every
    copy's state and its run id, so a retried trial continues every copy's run; the final
    result carries ``final``, the copies' statuses (``status``: ``ok`` when all are, else
    the distinct statuses joined by commas), every run id (``mlflow_run_ids``) and every
    copy's final metrics and status (``copy_values``)."""
    from ray import tune

    from harness.environment import provenance_tags
    from harness.tracking import MlflowReporter, retry
    from harness.trial import resolve_device, trial_tags
    from harness.vector.trial import VectorLoop, copy_configs

    base = TrialConfig.model_validate(config["trial"])
    cfgs = copy_configs(base, config["copy_seeds"], config.get("copy_params"))
    labels = list(config["copy_labels"])
    label = config.get("label", base.key)
    trial_id = tune.get_context().get_trial_id()
    inners = [MlflowReporter(tracking_uri, experiment_id, parent_run_id,
                             trial_id=f"{trial_id}{names.COPY_SUFFIX}{k}", run_name=labels[k])
              for k in range(len(cfgs))]
    notes = dict(node_tags())

    def final_report() -> None:
        runs = [retry(inner.client.get_run, inner.run_id) for inner in inners]
        statuses = [r.data.tags.get(names.TAG_STATUS, names.STATUS_OK) for r in runs]
        distinct = sorted(set(statuses))
        metrics = _combined([dict(r.data.metrics) for r in runs])
        tune.report({**metrics, "step": int(max(r.data.metrics.get(names.STEPS_DONE, 0)
                                                for r in runs)),
                     "final": True, "label": label, "copies": len(cfgs),
                     names.TAG_STATUS: ",".join(distinct),
                     "mlflow_run_id": runs[0].info.run_id,
                     "mlflow_run_ids": [r.info.run_id for r in runs],
                     # per copy, in copy order: what a batch's Optuna suggestions are told
                     "copy_values": [{**r.data.metrics, names.TAG_STATUS: s}
                                     for r, s in zip(runs, statuses)]})

    started: list[MlflowReporter] = []  # the runs this process reopened or created
    try:
        state, meta = restore_checkpoint(notes)
        if meta is not None:
            for inner, run_id in zip(inners, meta.get("mlflow_run_ids") or []):
                inner.run_id = run_id or inner.run_id
        finished = [False] * len(cfgs)
        if state is None:  # a study resumed after these runs ended: report, do not train
            finished = [inner.finished_run(cfg.digest()) is not None
                        for inner, cfg in zip(inners, cfgs)]
            if all(finished):
                for inner in inners:
                    inner.run_id = inner.run_id or inner._find_existing()
                final_report()
                return
        device = resolve_device(base.train.device, _granted_gpus())
        loop = VectorLoop(cfgs, device=device)
        if state is not None:
            loop.load_state_dict(state)
        reporters: list[MlflowReporter | None] = []
        for k, (inner, cfg) in enumerate(zip(inners, cfgs)):
            if loop.done[k] or finished[k]:  # its run is complete: leave it as it is
                loop.done[k] = True
                reporters.append(None)
                if inner.run_id is None:
                    inner.run_id = inner._find_existing()
                continue
            tags = {**loop.dataset.tags(), **trial_tags(cfg), **provenance_tags(),
                    **{t: v for m in loop.metrics for t, v in m.provenance(loop.dataset).items()},
                    **notes,
                    names.TAG_VECTOR_TRIAL: trial_id, names.TAG_VECTOR_COPY: str(k),
                    names.TAG_VECTOR_COPIES: str(len(cfgs)), names.TAG_VECTORIZED: "true",
                    names.TAG_DEVICE: device.type}
            started.append(inner)
            inner.start(copy_trial_info(loop, k, tags))
            reporters.append(inner)

        def after_evaluation(step: int, values, checkpoint) -> None:
            if all(loop.done):
                return  # the final report below ends the trial
            with tempfile.TemporaryDirectory() as d:
                save_checkpoint(d, checkpoint(), {
                    "mlflow_run_id": inners[0].run_id, "step": step,
                    "mlflow_run_ids": [inner.run_id for inner in inners]})
                tune.report({**_combined(values), "step": step, "final": False,
                             "label": label, "copies": len(cfgs)},
                            checkpoint=tune.Checkpoint.from_directory(d))

        loop.fit(reporters, after_evaluation)
        final_report()
    except BaseException as exc:
        if not (isinstance(exc, SystemExit) and exc.code == 0):  # 0: Tune stopped it
            for inner in started:  # a run finished before a restore stays finished
                inner.fail(exc)
        raise


# ---------------------------------------------------------------------------------------
# The study searcher
# ---------------------------------------------------------------------------------------


def make_searcher(plans: list[VariantPlan], search: SearchSettings, seeds: int, base_seed: int,
                  vectorize=None) -> StudySearcher:
    """The study's Tune searcher (:class:`harness.searcher.StudySearcher`); ``vectorize``:
    the study's :class:`~harness.vector.plan.VectorPlan`, or just its ``{pair key: copies
    per seeds trial}``."""
    return StudySearcher(plans, search, seeds, base_seed, vectorize)


# ---------------------------------------------------------------------------------------
# Progress on the terminal
# ---------------------------------------------------------------------------------------


def _fmt(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class Progress(Callback):
    """A Tune callback printing one line per finished trial and a progress line."""

    def __init__(self, total: int, concurrency: int, stream=None):
        self.total, self.concurrency = total, concurrency
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.done = self.failed = self.running = 0
        self.started: dict[str, float] = {}
        self.durations: list[float] = []

    def __getstate__(self):  # Tune pickles its callbacks; a stream does not pickle
        return {k: v for k, v in self.__dict__.items() if k != "stream"}

    def __setstate__(self, state):
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

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running += 1
        self.started[trial.trial_id] = time.monotonic()

    def _end(self, trial) -> float:
        self.running = max(0, self.running - 1)
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
        dt = self._end(trial)
        self.failed += 1
        label = trial.config.get("label", trial.trial_id)
        print(f"  FAIL  {label:<40} {'':<11} {'failed':<13} {dt:5.1f}s", file=self.stream)
        print(self._line(), file=self.stream, flush=True)
