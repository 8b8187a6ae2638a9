"""MLflow: the tracking store, the study's parent run and one child run per trial.

Layout: one experiment per study name, one parent run per ``harness study`` invocation
(tag ``kind=study``), one child run per trial (tag ``mlflow.parentRunId``). The default
store is a sqlite file ``runs/mlflow.db`` in the working directory with artifacts in
``runs/artifacts/``; ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` point elsewhere (for a
cluster: an MLflow tracking server every node can reach).

Histories are written with ``log_batch`` (one call per evaluation, at most 1,000 metrics
per call); a sqlite store shared by several trial processes answers "database is locked"
under contention, so every write is retried with back-off.

A tracking server (``http(s)://``, e.g. ``harness server`` on a cluster's head node) that
stops answering -- restarted, its machine rebooting, the network down -- does not fail the
trials: every call through :func:`retry` waits and tries again until the server has been
unreachable for ``HARNESS_TRACKING_TIMEOUT`` seconds (default 300, read in each process; the
driver forwards its value to the Ray workers). Nothing is lost when the server returns
within that time: the trial simply waits at the call that found it gone.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

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


def sqlite_path(uri: str) -> Path | None:
    """The file of a sqlite store's URI (``sqlite:///PATH``); None for any other store."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str, experiment: str, workdir: Path | None = None) -> str | None:
    """Where a new experiment keeps artifacts: beside a sqlite file, else the server's choice."""
    db = sqlite_path(uri)
    return None if db is None else (db.parent / "artifacts" / experiment).resolve().as_uri()


def _quiet_mlflow() -> None:
    import logging

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    # "View run ... at: http://..." on stdout for every run a server's client ends
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    import mlflow  # noqa: F401  -- importing mlflow configures its loggers; override after

    for name in ("mlflow", "alembic", "sqlalchemy"):
        logging.getLogger(name).setLevel(logging.WARNING)


#: environment variable: seconds a tracking server may stay unreachable before logging fails
TIMEOUT_ENV = "HARNESS_TRACKING_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
#: a proxy in front of a server that is down: MLflow's "error code 502", or, once its own HTTP
#: retries (which cover 502/503/504) run out, urllib3's "too many 502 error responses"
_HTTP_DOWN = re.compile(r"error code (502|503|504)\b|too many (502|503|504) error responses")
_down_since: float | None = None  # when this process first found the tracking server unreachable


def tracking_timeout() -> float:
    """``$HARNESS_TRACKING_TIMEOUT`` in seconds (default 300); TrackingError when malformed."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or math.isinf(value):
        raise TrackingError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds; allowed: a "
                            f"number >= 0 (default {DEFAULT_TIMEOUT:g}; 0 fails at once)")
    return value


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the tracking server could not be reached (refused, reset, timed
    out, a 502/503/504 from a proxy) rather than that it refused the request."""
    import requests

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return True
        e = e.__cause__ or e.__context__
    return bool(_HTTP_DOWN.search(str(exc)))


def retry(fn: Callable[..., T], *args: Any, attempts: int = 12, **kwargs: Any) -> T:
    """Call ``fn``, retrying while a shared sqlite store is locked by another writer (up to
    ``attempts`` times) and while the tracking server is unreachable (until it has been so,
    in this process, for :func:`tracking_timeout` seconds; then TrackingError). Each wait
    is printed on stderr once, and so is the server's return."""
    global _down_since
    delay = 0.05
    locked = 0
    while True:
        try:
            out = fn(*args, **kwargs)
        except Exception as exc:
            if unreachable(exc):
                now = time.monotonic()
                timeout = tracking_timeout()
                if _down_since is None:
                    _down_since = now
                    print(f"harness: tracking server unreachable ({_first_line(exc)[:200]}); "
                          f"retrying for up to {timeout:g}s ({TIMEOUT_ENV})",
                          file=sys.stderr, flush=True)
                left = _down_since + timeout - now
                if left <= 0:
                    raise TrackingError(
                        f"tracking server unreachable for {now - _down_since:.0f}s, longer than "
                        f"{TIMEOUT_ENV}={timeout:g}: {_first_line(exc)[:300]}") from exc
                time.sleep(min(max(delay, 1.0), left))
                delay = min(max(delay, 1.0) * 2, 10.0)
                continue
            if "locked" not in str(exc).lower() or locked >= attempts - 1:
                raise
            locked += 1
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            if _down_since is not None:
                print(f"harness: tracking server reachable again after "
                      f"{time.monotonic() - _down_since:.0f}s", file=sys.stderr, flush=True)
                _down_since = None
            return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _root_cause(exc: BaseException) -> str:
    """The first line of the innermost exception ``exc`` was raised from (e.g. "[Errno 111]
    Connection refused" under MLflow's and requests' wrappers)."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return _first_line(exc)


def open_store(uri: str, create: bool = True):
    """An ``MlflowClient`` for ``uri`` after checking the store answers; TrackingError if not.

    A sqlite store's folder is created only when ``create`` is true; nothing else is written.
    """
    _quiet_mlflow()
    from mlflow.tracking import MlflowClient

    db = sqlite_path(uri)
    if db is not None:
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
    tracking_timeout()  # a malformed HARNESS_TRACKING_TIMEOUT fails here, before any work
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001
        if unreachable(exc):  # at start no retry: a wrong URI should not cost minutes
            raise TrackingError(
                f"cannot open tracking store {uri!r}: no MLflow server answers there "
                f"({_root_cause(exc)[:160]}); start one with `harness server` on that "
                "host, or check --tracking-uri") from None
        refused = _credentials_refused(exc)
        if refused:
            raise TrackingError(f"cannot open tracking store {uri!r}: {refused}") from None
        raise TrackingError(
            f"cannot open tracking store {uri!r}: {_first_line(exc)[:300]}") from None
    return client


def _credentials_refused(exc: BaseException) -> str | None:
    """What to do about a server that refused the request for want of credentials
    (``harness server --auth``, HTTP 401/403); None for any other failure."""
    from harness.server_auth import PASSWORD_ENV, USER_ENV

    text = str(exc)
    if "error code 401" in text:
        user = os.environ.get(USER_ENV)
        if user:
            return (f"the server refused the credentials of user {user!r} (HTTP 401): check "
                    f"{USER_ENV} and {PASSWORD_ENV} against the ones `harness server --auth` "
                    "was started with")
        return (f"the server requires credentials (HTTP 401): set {USER_ENV} and "
                f"{PASSWORD_ENV} to the account `harness server --auth` was started with")
    if "error code 403" in text:
        return (f"the server refused user {os.environ.get(USER_ENV)!r} (HTTP 403: no permission "
                "on this store); use the account `harness server --auth` was started with")
    return None


def ensure_experiment(client, name: str, artifact_root: str | None) -> str:
    """The experiment ``name`` (restored if deleted), else a new one keeping its artifacts
    at ``artifact_root`` (None: where the server decides; ``harness server``: on the
    server, uploaded over HTTP). An existing experiment keeps its artifact location: one
    on a local folder, reached through a tracking server, is written by each trial on its
    own node's disk, which a cluster without a shared filesystem cannot do; a warning
    says so, unless the folder is under ``harness server --artifacts-root``. TrackingError
    when this machine does not see the folder (:func:`check_artifact_access`); a new
    experiment refused so is deleted again."""
    exp = retry(client.get_experiment_by_name, name)
    if exp is None:
        exp_id = retry(client.create_experiment, name, artifact_location=artifact_root)
        exp = retry(client.get_experiment, exp_id)
        try:
            check_artifact_access(client.tracking_uri, exp.artifact_location, run=False)
        except TrackingError:
            retry(client.delete_experiment, exp_id)  # nothing left half made
            raise
        return exp_id
    if exp.lifecycle_stage == "deleted":
        retry(client.restore_experiment, exp.experiment_id)
    check_artifact_access(client.tracking_uri, exp.artifact_location, run=False)
    folder = served_local_folder(client.tracking_uri, exp.artifact_location)
    if folder is not None and shared_root(folder) is None:
        print(f"warning: experiment {name!r} keeps its artifacts in the local folder "
              f"{exp.artifact_location} (it was created without a tracking server); "
              "trials on other machines cannot write there unless that path is a shared "
              "filesystem: give the study another name to get a new experiment whose "
              "artifacts go through the server", file=sys.stderr, flush=True)
    return exp.experiment_id


def log_bytes(client, run_id: str, artifacts: dict[str, bytes], repo=None) -> None:
    """Log in-memory files as artifacts at their relative paths, through the run's artifact
    repository ``repo`` when given (else the client looks it up: one request)."""
    if not artifacts:
        return
    with tempfile.TemporaryDirectory() as tmp:
        for rel, data in artifacts.items():
            path = Path(tmp, rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if repo is None:
            retry(client.log_artifacts, run_id, tmp)
        else:
            retry(repo.log_artifacts, tmp)


#: experiments' local artifact folders found reachable (a marker above, or already there)
_REACHABLE: set[Path] = set()


def check_artifact_access(tracking_uri: str, artifact_uri: str, *, run: bool = True) -> None:
    """TrackingError when a tracking server's experiment keeps its artifacts in a local folder
    that this machine does not share with the server.

    ``artifact_uri`` is a run's (``run=True``: ``<experiment folder>/<run id>/artifacts``,
    MLflow's layout) or an experiment's own location. ``harness server --artifacts-root DIR``
    gives new experiments folders under DIR, which every node must mount at the same path,
    and leaves a marker in DIR (:data:`harness.names.ARTIFACT_ROOT_MARKER`). A machine
    without the mount would write its artifacts to its own disk, where nobody else looks, and
    read none. So the experiment's folder must have that marker above it, or already be
    here (an experiment a local study made before the server existed, on this machine: the
    study warns about it, :func:`ensure_experiment`). Runs of a local store (sqlite),
    proxied (``mlflow-artifacts:``) and object-store URIs are not concerned."""
    path = served_local_folder(tracking_uri, artifact_uri)
    if path is None:
        return
    folder = path.parents[1] if run and len(path.parents) > 1 else path
    if folder in _REACHABLE:
        return
    if shared_root(folder) is not None or folder.is_dir():
        _REACHABLE.add(folder)
        return
    raise TrackingError(
        f"the artifacts go to {folder}, a folder this machine does not share with the "
        f"tracking server at {tracking_uri} (no {names.ARTIFACT_ROOT_MARKER} above it): "
        "mount the folder given to `harness server --artifacts-root` at the same path here, "
        "or start the server without --artifacts-root so that artifacts go through it")


def served_local_folder(tracking_uri: str, artifact_uri: str) -> Path | None:
    """The local folder ``artifact_uri`` names when runs are tracked by a server
    (``http(s)://``), else None: a local store's own folders, the server's proxy
    (``mlflow-artifacts:``) and object stores are every machine's alike."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    if urllib.parse.urlparse(artifact_uri).scheme not in ("", "file"):
        return None
    from mlflow.utils.file_utils import local_file_uri_to_path

    return Path(local_file_uri_to_path(artifact_uri))


def shared_root(folder: Path) -> Path | None:
    """The ``harness server --artifacts-root`` folder at or above ``folder`` (its marker
    seen), else None."""
    for f in (folder, *folder.parents):
        if (f / names.ARTIFACT_ROOT_MARKER).is_file():
            return f
    return None


def artifact_repo(tracking_uri: str, artifact_uri: str):
    """The artifact repository of a run whose ``artifact_uri`` is known (as MLflow's client
    builds it from the run it fetches); TrackingError when it is a local folder this machine
    does not share with the tracking server (:func:`check_artifact_access`)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

    check_artifact_access(tracking_uri, artifact_uri)
    return get_artifact_repository(
        add_databricks_profile_info_to_artifact_uri(artifact_uri, tracking_uri),
        tracking_uri=tracking_uri)


def log_metrics(client, run_id: str, rows: HistoryRows, params: Sequence = (),
                tags: Sequence = ()) -> None:
    """``rows`` (``[(step, {key: value})]``), ``params`` and ``tags`` in as few
    ``log_batch`` requests as MLflow's limits allow (1,000 metrics, 100 params and 100 tags
    a request); nothing is sent when all are empty."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [Metric(key, float(v), now, step) for step, row in rows for key, v in row.items()
               if v is not None]
    params, tags = list(params), list(tags)
    i = 0
    while metrics[i * MAX_BATCH:] or params[i * 100:] or tags[i * 100:]:
        retry(client.log_batch, run_id, metrics=metrics[i * MAX_BATCH:(i + 1) * MAX_BATCH],
              params=params[i * 100:(i + 1) * 100], tags=tags[i * 100:(i + 1) * 100])
        i += 1


def _param_value(v: Any) -> str:
    text = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
    return text[:6000]


class MlflowReporter(Reporter):
    """Writes one trial into one MLflow run.

    The run is created on :meth:`start` as a child of ``parent_run_id`` -- unless this
    reporter already knows its run id (a restored checkpoint carries it) or a run tagged
    with the same Ray ``trial_id`` exists under the parent; then that run is reopened, so
    a retried trial never makes a duplicate. ``new_run`` says the trial never ran before
    (nothing can have made its run): no search.

    Requests are batched (a tracking server answers each in turn): the params and chance
    levels go with one ``log_batch`` after ``create_run``, the history rows of an evaluation
    with its values, and a finished run's summary, tags and status in one batch before it
    is terminated; artifacts go straight to the run's artifact repository. With
    ``hold_evaluations`` an evaluation's batch waits for :meth:`send_pending` (the trial
    calls it before it saves a checkpoint, which must not get ahead of the run) or for
    :meth:`finish`, which sends the last evaluation with the summary.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str | None = None,
                 trial_id: str | None = None, run_name: str | None = None,
                 run_id: str | None = None, hold_evaluations: bool = False,
                 new_run: bool = False):
        _quiet_mlflow()
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.trial_id = trial_id
        self.run_name = run_name
        self.run_id = run_id
        self.hold_evaluations = hold_evaluations
        #: the run's artifact repository, once its artifact URI is known
        self.repo = None
        self.finished = False
        #: the last step a reopened run had logged metrics at: a trial restored from an
        #: older checkpoint trains those steps again and their points are not logged twice
        self.logged_until = -1
        #: history rows waiting for the next evaluation's batch
        self.pending: HistoryRows = []
        #: whether no run of this trial id exists: a search found none (nothing creates one
        #: for this trial id in between: it is this reporter's to create), or ``new_run``
        #: (the caller knows this trial never ran before: no search)
        self._absent = new_run

    def _find_existing(self) -> str | None:
        if not self.trial_id or not self.parent_run_id or self._absent:
            return None
        runs = retry(self.client.search_runs, [self.experiment_id],
                     filter_string=(f"tags.`{names.TAG_PARENT}` = '{self.parent_run_id}' and "
                                    f"tags.{names.TAG_TRIAL_ID} = '{self.trial_id}'"),
                     max_results=1)
        self._absent = not runs
        return runs[0].info.run_id if runs else None

    def finished_run(self, digest: str | None = None):
        """This trial's run when it already FINISHED: by run id, else by Ray trial id, else
        (``digest``: :meth:`TrialConfig.digest`) a finished run of the same parent with the
        same configuration and seed -- a trial that ended after Tune last saved its state,
        which a resumed study suggests again under a new trial id; that run is adopted
        (its ``trial_id`` tag becomes this trial's)."""
        run_id = self.run_id or self._find_existing()
        if run_id is not None:
            run = retry(self.client.get_run, run_id)
            return run if run.info.status == "FINISHED" else None
        if digest is None or not self.parent_run_id:
            return None
        runs = retry(self.client.search_runs, [self.experiment_id],
                     filter_string=(f"tags.`{names.TAG_PARENT}` = '{self.parent_run_id}' and "
                                    f"tags.{names.TAG_CONFIG_DIGEST} = '{digest}' and "
                                    "attributes.status = 'FINISHED'"), max_results=1)
        if not runs:
            return None
        if self.trial_id:
            retry(self.client.set_tag, runs[0].info.run_id, names.TAG_TRIAL_ID, self.trial_id)
        return runs[0]

    def start(self, info: TrialInfo) -> None:
        from mlflow.entities import RunTag

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
            self.repo = artifact_repo(self.tracking_uri, run.info.artifact_uri)
            self._absent = False
            self._record_setup(info)
            return  # its tags went with create_run
        # a retried or resumed trial: the same run, with its restart on record
        run = retry(self.client.get_run, self.run_id)
        self.repo = artifact_repo(self.tracking_uri, run.info.artifact_uri)
        # the first attempt may have died before its params and config were recorded
        self._record_setup(info, run)
        old = run.data.tags
        tags[names.TAG_RESTARTS] = str(int(old.get(names.TAG_RESTARTS, "0")) + 1)
        tags[names.TAG_RESUMED_FROM_STEP] = str(info.resumed_from_step)
        if names.TAG_ERROR in old:  # the error that caused the restart, kept but renamed
            tags[names.TAG_PREVIOUS_ERROR] = old[names.TAG_ERROR]
            retry(self.client.delete_tag, self.run_id, names.TAG_ERROR)
        retry(self.client.update_run, self.run_id, status="RUNNING")
        self.logged_until = self._last_logged_step(run)
        retry(self.client.log_batch, self.run_id,
              tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def _record_setup(self, info: TrialInfo, run=None) -> None:
        """The params, chance levels, ``config.json`` and ``derived_params.json`` of a new
        run; for a reopened ``run``, those of them it lacks (its artifacts are written
        again: MLflow overwrites a file, so a partly written one is replaced)."""
        from mlflow.entities import Param

        from harness.config import config_json

        have_params = {} if run is None else run.data.params
        have_metrics = {} if run is None else run.data.metrics
        params = [Param(k, _param_value(v)) for k, v in sorted(info.params.items())
                  if k not in have_params]
        chance = {k: v for k, v in (info.chance or {}).items() if k not in have_metrics}
        log_metrics(self.client, self.run_id, [(0, chance)] if chance else [], params=params)
        derived = json.dumps(info.derived, indent=2, sort_keys=True)
        log_bytes(self.client, self.run_id,
                  {names.ARTIFACT_CONFIG: config_json(info.config).encode(),
                   names.ARTIFACT_DERIVED_PARAMS: derived.encode()}, self.repo)

    def _last_logged_step(self, run) -> int:
        """The highest step of any metric history of ``run`` (-1: none). A trial that died
        after logging an evaluation but before Tune registered its checkpoint resumes from
        the checkpoint before: the steps in between are trained again (identically on the
        CPU, seeds and RNG states being restored) and the first attempt's points stand."""
        steps = [h.step for key in run.data.metrics
                 for h in retry(self.client.get_metric_history, run.info.run_id, key)]
        return max(steps, default=-1)

    def _new(self, rows: HistoryRows) -> HistoryRows:
        return [(step, row) for step, row in rows if step > self.logged_until]

    def history(self, rows: HistoryRows) -> None:
        """Kept for the evaluation's batch: the loop calls :meth:`evaluation` right after
        (a trial that dies in between trains these steps again from its checkpoint)."""
        self.pending.extend(self._new(rows))

    def _flush(self, rows: HistoryRows = (), **batch) -> None:
        rows, self.pending = [*self.pending, *rows], []
        log_metrics(self.client, self.run_id, rows, **batch)

    def evaluation(self, step, values, artifacts, checkpoint) -> None:
        self.pending.extend(self._new([(step, values)]))
        if not self.hold_evaluations:
            self._flush()
        log_bytes(self.client, self.run_id, artifacts, self.repo)

    def send_pending(self) -> None:
        """Send the history rows and evaluations held so far (``hold_evaluations``)."""
        if self.pending and self.run_id is not None:
            self._flush()

    def finish(self, result: TrialResult, artifacts: dict[str, bytes]) -> None:
        from mlflow.entities import RunTag

        logged = result.evals[-1].values if result.evals else {}  # already in the histories
        summary = {k: v for k, v in result.final.items()
                   if k not in logged and isinstance(v, float) and math.isfinite(v)}
        log_bytes(self.client, self.run_id, artifacts, self.repo)
        # the status last: a run's status tag says its artifacts and metrics are all there
        tags = {**result.tags, names.TAG_STATUS: result.status}
        self._flush([(result.steps_done, summary)],
                    tags=[RunTag(k, str(v)) for k, v in tags.items()])
        retry(self.client.set_terminated, self.run_id, "FINISHED")
        self.finished = True

    def fail(self, error: BaseException) -> None:
        if self.run_id is None or self.finished:  # nothing to mark, or already complete
            return
        interrupted = isinstance(error, (KeyboardInterrupt, SystemExit))
        text = f"{type(error).__name__}: {error}"[:5000]
        try:
            self.send_pending()  # what the trial measured before it raised
            retry(self.client.set_tag, self.run_id, names.TAG_STATUS,
                  names.STATUS_STOPPED if interrupted else names.STATUS_FAILED)
            retry(self.client.set_tag, self.run_id, names.TAG_ERROR, text)
            retry(self.client.set_terminated, self.run_id, "KILLED" if interrupted else "FAILED")
        except Exception:  # noqa: BLE001, S110 -- never hide the trial's own error behind ours
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
