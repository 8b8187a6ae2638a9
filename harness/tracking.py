"""MLflow: the tracking store, the study's parent run and one child run per trial.

Layout: one experiment per study name, one parent run per ``harness study`` invocation
(tag ``kind=study``), one child run per trial (tag ``mlflow.parentRunId``). The default
store is a sqlite file ``runs/mlflow.db`` in the working directory with artifacts in
``runs/artifacts/``; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` point elsewhere (for a
cluster: an MLflow tracking server every node can reach).

Histories are written with ``log_batch`` (one call per evaluation, at most 1,000 metrics
per call); a sqlite store shared by several trial processes answers "database is locked"
under contention, so every write is retried with back-off.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from harness import names
from harness.errors import TrackingError
from harness.reporting import HistoryRows, Reporter, TrialInfo, TrialResult

T = TypeVar("T")
RUNS_DIR = "runs"
MAX_BATCH = 1000


def default_tracking_uri(workdir: Path | None = None) -> str:
    root = (workdir or Path.cwd()) / RUNS_DIR
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def resolve_tracking_uri(given: str | None = None, workdir: Path | None = None) -> str:
    """``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else ``./runs/mlflow.db`` (sqlite)."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(workdir)
    if "://" not in uri:  # a bare path: treat as a sqlite file
        uri = f"sqlite:///{Path(uri).resolve()}"
    return uri


def artifact_location(uri: str, experiment: str, workdir: Path | None = None) -> str | None:
    """Where a new experiment keeps artifacts: beside a sqlite file, else the server's choice."""
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        return (db.parent / "artifacts" / experiment).resolve().as_uri()
    return None


def _quiet_mlflow() -> None:
    import logging

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    import mlflow  # noqa: F401  -- importing mlflow configures its loggers; override after

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


def retry(fn: Callable[..., T], *args: Any, attempts: int = 12, **kwargs: Any) -> T:
    """Call ``fn``, retrying while a shared sqlite store is locked by another writer."""
    delay = 0.05
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- MLflow wraps the sqlite error in several types
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def open_store(uri: str, create: bool = True):
    """An ``MlflowClient`` for ``uri`` after checking the store answers; TrackingError if not.

    A sqlite store's folder is created only when ``create`` is true; nothing else is written.
    """
    _quiet_mlflow()
    from mlflow.tracking import MlflowClient

    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.is_dir():
            if not create:
                raise TrackingError(f"cannot open tracking store {uri!r}: folder {db.parent} does not exist")
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrackingError(f"cannot open tracking store {uri!r}: {exc}") from None
    elif not uri.startswith(("http://", "https://", "databricks", "file:", "postgresql", "mysql")):
        raise TrackingError(
            f"cannot open tracking store {uri!r}: unsupported scheme; allowed: sqlite:///PATH, "
            "http(s)://HOST:PORT (an MLflow server), postgresql://, mysql://"
        )
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"cannot open tracking store {uri!r}: {first[:300]}") from None
    return client


def ensure_experiment(client, name: str, artifact_root: str | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    return retry(client.create_experiment, name, artifact_location=artifact_root)


def log_bytes(client, run_id: str, artifacts: dict[str, bytes]) -> None:
    """Log in-memory files as artifacts at their relative paths."""
    if not artifacts:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for rel, data in artifacts.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        retry(client.log_artifacts, run_id, tmp)


def log_metrics(client, run_id: str, rows: HistoryRows) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(key, float(v), now, step) for step, row in rows for key, v in row.items()
             if v is not None]
    for i in range(0, len(batch), MAX_BATCH):
        retry(client.log_batch, run_id, metrics=batch[i:i + MAX_BATCH])


def _param_value(v: Any) -> str:
    text = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return text[:6000]


class MlflowReporter(Reporter):
    """Writes one trial into one MLflow run.

    The run is created on :meth:`start` as a child of ``parent_run_id`` -- unless this
    reporter already knows its run id (a restored checkpoint carries it) or a run tagged
    with the same Ray ``trial_id`` exists under the parent; then that run is reopened, so
    a retried trial never makes a duplicate.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str | None = None,
                 trial_id: str | None = None, run_name: str | None = None,
                 run_id: str | None = None):
        _quiet_mlflow()
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.trial_id = trial_id
        self.run_name = run_name
        self.run_id = run_id
        self.finished = False

    def _find_existing(self) -> str | None:
        if not self.trial_id or not self.parent_run_id:
            return None
        runs = retry(self.client.search_runs, [self.experiment_id],
                     filter_string=(f"tags.`{names.TAG_PARENT}` = '{self.parent_run_id}' and "
                                    f"tags.{names.TAG_TRIAL_ID} = '{self.trial_id}'"),
                     max_results=1)
        return runs[0].info.run_id if runs else None

    def start(self, info: TrialInfo) -> None:
        from mlflow.entities import Param, RunTag

        self.run_id = self.run_id or self._find_existing()
        tags = dict(info.tags)
        if self.parent_run_id:
            tags[names.TAG_PARENT] = self.parent_run_id
        if self.trial_id:
            tags[names.TAG_TRIAL_ID] = self.trial_id
        if self.run_id is None:
            run = retry(self.client.create_run, self.experiment_id, tags=tags,
                        run_name=self.run_name or info.config.key)
            self.run_id = run.info.run_id
            params = [Param(k, _param_value(v)) for k, v in sorted(info.params.items())]
            for i in range(0, len(params), 100):
                retry(self.client.log_batch, self.run_id, params=params[i:i + 100])
            from harness.config import config_json

            log_bytes(self.client, self.run_id,
                      {names.ARTIFACT_CONFIG: config_json(info.config).encode()})
        else:  # a retried or resumed trial: the same run, with its restart on record
            run = retry(self.client.get_run, self.run_id)
            old = run.data.tags
            tags[names.TAG_RESTARTS] = str(int(old.get(names.TAG_RESTARTS, "0")) + 1)
            tags[names.TAG_RESUMED_FROM_STEP] = str(info.resumed_from_step)
            if names.TAG_ERROR in old:  # the error that caused the restart, kept but renamed
                tags[names.TAG_PREVIOUS_ERROR] = old[names.TAG_ERROR]
                retry(self.client.delete_tag, self.run_id, names.TAG_ERROR)
            retry(self.client.update_run, self.run_id, status="RUNNING")
        retry(self.client.log_batch, self.run_id,
              tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def history(self, rows: HistoryRows) -> None:
        log_metrics(self.client, self.run_id, rows)

    def evaluation(self, step, values, artifacts, checkpoint) -> None:
        log_metrics(self.client, self.run_id, [(step, values)])
        log_bytes(self.client, self.run_id, artifacts)

    def finish(self, result: TrialResult, artifacts: dict[str, bytes]) -> None:
        logged = result.evals[-1].values if result.evals else {}  # already in the histories
        summary = {k: v for k, v in result.final.items()
                   if k not in logged and isinstance(v, float) and math.isfinite(v)}
        log_metrics(self.client, self.run_id, [(result.steps_done, summary)])
        log_bytes(self.client, self.run_id, artifacts)
        for key, value in result.tags.items():
            retry(self.client.set_tag, self.run_id, key, value)
        retry(self.client.set_tag, self.run_id, names.TAG_STATUS, result.status)
        retry(self.client.set_terminated, self.run_id, "FINISHED")
        self.finished = True

    def fail(self, error: BaseException) -> None:
        if self.run_id is None or self.finished:  # nothing to mark, or already complete
            return
        interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
        text = f"{type(error).__name__}: {error}"[:5000]
        try:
            retry(self.client.set_tag, self.run_id, names.TAG_STATUS,
                  names.STATUS_STOPPED if interrupted else names.STATUS_FAILED)
            retry(self.client.set_tag, self.run_id, names.TAG_ERROR, text)
            retry(self.client.set_terminated, self.run_id, "KILLED" if interrupted else "FAILED")
        except Exception:  # noqa: BLE001 -- never hide the trial's own error behind ours
            pass


def search_all(client, experiment_ids: list[str], filter_string: str,
               order_by: list[str] | None = None, limit: int | None = None) -> list:
    """Every run matching ``filter_string`` (up to ``limit``), following page tokens."""
    out: list = []
    token = None
    while True:
        page = retry(client.search_runs, experiment_ids, filter_string=filter_string,
                     max_results=1000 if limit is None else min(limit, 1000),
                     order_by=order_by, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token or (limit is not None and len(out) >= limit):
            return out


def end_dangling_runs(client, experiment_id: str, parent_run_id: str, status: str = "KILLED") -> int:
    """Mark child runs still RUNNING (their process was killed) as ``status``; returns how many."""
    runs = search_all(client, [experiment_id],
                      f"tags.`{names.TAG_PARENT}` = '{parent_run_id}' and "
                      "attributes.status = 'RUNNING'")
    for run in runs:
        if names.TAG_STATUS not in run.data.tags:
            retry(client.set_tag, run.info.run_id, names.TAG_STATUS, names.STATUS_STOPPED)
        retry(client.set_terminated, run.info.run_id, status)
    return len(runs)


def child_runs(client, experiment_id: str, parent_run_id: str) -> list:
    """Every child run of ``parent_run_id``."""
    return search_all(client, [experiment_id], f"tags.`{names.TAG_PARENT}` = '{parent_run_id}'")
