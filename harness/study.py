"""``harness study``: a study file -> Ray Tune trials chosen by Optuna -> MLflow -> report.

Order of work, so that bad input costs nothing: validate the file and every plugin name
(exit 2, nothing started) -> open the tracking store (exit 2, no run created) -> start
or join Ray (exit 2 when the address cannot be reached, no run created) -> create the
experiment and the parent run -> run one Tune experiment with the
:func:`~harness.tune_glue.make_searcher` protocol -> mark any child run a killed process
left RUNNING as KILLED -> write the report and attach it to the parent run.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness import names
from harness.config import StudySpec, VariantPlan, find_study_file, load_study
from harness.environment import provenance_tags
from harness.errors import ClusterError, ConfigError
from harness.metrics import Metric
from harness.resolve import resolve
from harness.tracking import (
    RUNS_DIR,
    MlflowReporter,
    artifact_location,
    child_runs,
    end_dangling_runs,
    ensure_experiment,
    log_bytes,
    open_store,
    resolve_tracking_uri,
    retry,
    sqlite_path,
)


@dataclass
class StudyOutcome:
    """What a finished (or interrupted) study leaves behind."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    report: dict[str, Path] = field(default_factory=dict)
    interrupted: bool = False
    resumed: bool = False  # ``--resume``: its runs trained in earlier sittings too
    n_trials: int = 0  # Tune trials
    n_runs: int = 0  # child runs (a vectorized seeds trial writes one per seed)
    n_measured: int = 0  # child runs whose values are results (reports.runs.measured_mask)
    concurrency: int = 1
    study_seconds: float = 0.0
    train_seconds: float = 0.0

    @property
    def nothing_measured(self) -> bool:
        """A study that ended with no run measured (every one failed, or none recorded):
        ``harness study`` exits 1 and the parent run's status tag says ``failed``."""
        return not self.interrupted and self.n_measured == 0

    @property
    def training_share(self) -> float | None:
        """Sum of trials' time in the training loop / (study wall time x concurrent slots);
        None for a resumed or interrupted study: a run logs its training time when it ends,
        so runs cut short count nothing and resumed runs count their earlier sittings."""
        if self.resumed or self.interrupted:
            return None
        return self.train_seconds / max(1e-9, self.study_seconds * self.concurrency)


def _check_address(address: str) -> None:
    if address == "auto" or address.startswith(("ray://", "local")):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"--address {address!r} is not understood; allowed: auto, HOST:PORT, ray://HOST:PORT"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot reach a Ray cluster at --address {address!r}: {exc}") from None


def init_ray(address: str | None) -> bool:
    """Start local Ray (or join ``address``); returns whether this call started it."""
    from harness.tune_glue import set_ray_env

    set_ray_env()
    import logging

    import ray

    for name in ("ray.tune", "ray.train", "ray.air"):  # Tune's own chatter; our callback reports
        logging.getLogger(name).setLevel(logging.ERROR)
    if ray.is_initialized():
        return False
    if address:
        _check_address(address)
    kwargs: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=False,
                                  include_dashboard=False)
    from harness.server_auth import forwarded
    from harness.tracking import TIMEOUT_ENV

    # the trials' processes (on every node) use the same timeout and tracking credentials
    env_vars = {**({TIMEOUT_ENV: os.environ[TIMEOUT_ENV]} if os.environ.get(TIMEOUT_ENV) else {}),
                **forwarded()}
    if env_vars:
        kwargs["runtime_env"] = {"env_vars": env_vars}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:  # a Ray of its own: Ray would join the last cluster started on this machine
            ray.init(address="local", num_cpus=os.cpu_count(), **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot start or join Ray (address={address or 'local'}): {first}") from None
    return True


def default_concurrency(spec: StudySpec) -> int:
    """As many trials as the cluster's CPUs (and GPUs, if trials ask for them) allow."""
    import ray

    res = ray.cluster_resources()
    n = math.floor(res.get("CPU", 1) / spec.resources.cpu + 1e-9)  # 0.3 / 0.1 is 2.999...
    if spec.resources.gpu > 0:
        n = min(n, math.floor(res.get("GPU", 0) / spec.resources.gpu + 1e-9))
    for name, amount in spec.resources.custom.items():
        n = min(n, math.floor(res.get(name, 0) / amount + 1e-9))
    return max(1, n)


def trial_resources(spec: StudySpec) -> dict[str, float]:
    """What every trial asks Ray for (``tune.with_resources``): CPUs, GPUs and the study's
    custom resources (``resources.custom``)."""
    return {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu, **spec.resources.custom}


def check_resources(spec: StudySpec, cluster: dict[str, float], joined: bool) -> str | None:
    """Refuse a study whose trials can never be placed: Tune would wait for them forever
    (its warnings are silenced). ``cluster`` is ``ray.cluster_resources()``. On Ray started
    here (``joined`` false) a trial asking for more CPUs or GPUs than the machine has is a
    :class:`~harness.errors.ClusterError`; on a joined cluster, whose autoscaler may add
    nodes, it is a warning line, returned for the caller to print (None when all fits)."""
    short = [f"{spec.resources.cpu:g} CPU" if spec.resources.cpu > cluster.get("CPU", 0) else "",
             f"{spec.resources.gpu:g} GPU" if spec.resources.gpu > cluster.get("GPU", 0) else ""]
    missing = {k: v for k, v in spec.resources.custom.items() if v > cluster.get(k, 0)}
    short = [x for x in short if x] + [f"{v:g} {k!r}" for k, v in missing.items()]
    if not short:
        return None
    has = f"{cluster.get('CPU', 0):g} CPU and {cluster.get('GPU', 0):g} GPU"
    has += "".join(f" and {cluster.get(k, 0):g} {k!r}" for k in missing)
    msg = (f"resources: every trial asks for {' and '.join(short)}, but the Ray cluster has "
           f"{has} in all")
    if joined:
        return f"warning: {msg}; trials wait until the cluster grows"
    hint = ("set resources.gpu: 0 to train on the CPU, or run on a machine with a GPU (or "
            "--address a Ray cluster with GPU nodes)" if spec.resources.gpu > cluster.get("GPU", 0)
            else f"set resources.cpu to at most {cluster.get('CPU', 0):g}"
            if spec.resources.cpu > cluster.get("CPU", 0)
            else "custom resources come from the nodes of a cluster (ray start --resources); "
                 "remove resources.custom to run here, or pass --address")
    raise ClusterError(f"{msg}, so no trial could ever start; {hint}")


def _parent_params(spec: StudySpec, plans: list[VariantPlan]) -> dict[str, str]:
    return {
        "trials_per_variant": str(spec.search.trials),
        "seeds": str(spec.seeds),
        "algorithm": spec.search.algorithm,
        "metric": spec.search.metric,
        "mode": spec.search.direction,
        "pairs": ",".join(p.key for p in plans)[:6000],
        "space": ",".join(spec.search.space),
        "cpu_per_trial": str(spec.resources.cpu),
        "gpu_per_trial": str(spec.resources.gpu),
        **({"custom_resources_per_trial": json.dumps(spec.resources.custom, sort_keys=True)}
           if spec.resources.custom else {}),
    }


def prepare_metrics(plans: list[VariantPlan], stream: TextIO | None = None) -> None:
    """Call every metric's ``prepare`` once per (dataset, metric) pair of the study, here
    on the driver, so trials find feature extractors and reference statistics cached."""
    from harness.registry import DATASETS, METRICS

    done: set[str] = set()
    datasets: dict[str, Any] = {}  # one build (file reads, checksums) per dataset spec
    for plan in plans:
        ds_spec = plan.base.dataset
        ds_key = json.dumps(ds_spec.model_dump(mode="json"), sort_keys=True)
        for i, m in enumerate(plan.base.metrics):
            key = json.dumps([ds_key, m.model_dump(mode="json")], sort_keys=True)
            if key in done:
                continue
            done.add(key)
            metric = METRICS.build(m.name, m.params, f"metrics[{i}].params")
            if type(metric).prepare is Metric.prepare:
                continue
            if ds_key not in datasets:
                datasets[ds_key] = DATASETS.build(ds_spec.name, ds_spec.params, "dataset.params")
            dataset = datasets[ds_key]
            if stream is not None:
                print(f"preparing metric {m.name!r} for dataset {plan.base.dataset_key!r}",
                      file=stream, flush=True)
            metric.prepare(dataset)


def _new_store_paths(uri: str) -> list[Path]:
    """What :func:`open_store` would create for ``uri`` on this machine: a sqlite file that
    does not exist yet, then the missing folders above it, deepest first; ``[]`` for a
    store that exists or is not a local file."""
    db = sqlite_path(uri)
    if db is None or db.exists():
        return []
    made = [db]
    folder = db.parent
    while not folder.exists():
        made.append(folder)
        folder = folder.parent
    return made


def _remove_new_store(made: list[Path]) -> None:
    """Removes what :func:`_new_store_paths` listed (a command refused after opening its
    store leaves nothing behind); a folder that holds anything else stays."""
    for path in made:
        try:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        except OSError:
            pass


def run_study(path: str | Path, *, address: str | None = None, tracking_uri: str | None = None,
              workdir: str | Path | None = None, max_concurrent: int | None = None,
              stream: TextIO | None = None, write_report: bool = True,
              resume: bool = False) -> StudyOutcome:
    """Run a whole study; see the module docstring for the order of work.

    ``resume`` continues the study's newest interrupted run instead (:mod:`harness.resume`):
    Tune restores its trials and the searcher's (Optuna's) state, finished trials are not
    run again, unfinished ones continue from their checkpoints in their own MLflow runs,
    and the same parent run is reopened and finished."""
    t_start = time.monotonic()
    stream = stream or sys.stderr
    workdir = Path(workdir or Path.cwd()).resolve()
    file = find_study_file(path)
    spec = load_study(file)
    plans = resolve(spec, source=str(file), base_dir=file.parent)
    if max_concurrent is not None and max_concurrent < 1:
        raise ConfigError(f"--max-concurrent must be >= 1, got {max_concurrent}")
    prepare_metrics(plans, stream)
    uri = resolve_tracking_uri(tracking_uri, workdir)
    made = _new_store_paths(uri)
    client = open_store(uri)
    resumable = None
    try:  # refused before anything ran (nothing to resume, no cluster): no store left behind
        if resume:
            from harness.resume import find_resumable

            resumable = find_resumable(spec, workdir / RUNS_DIR / "tune", client, uri)
        started_ray = init_ray(address)
    except BaseException:
        _remove_new_store(made)
        raise
    try:
        import ray

        warning = check_resources(spec, ray.cluster_resources(), joined=address is not None)
        if warning:
            print(warning, file=stream, flush=True)
        return _run(spec, plans, file, uri, client, workdir, max_concurrent, stream,
                    write_report, t_start, resumable)
    finally:
        if started_ray:
            import ray

            ray.shutdown()


def _run(spec, plans, file, uri, client, workdir, max_concurrent, stream, write_report, t_start,
         resumable=None):
    if resumable is None:
        exp_id = ensure_experiment(client, spec.name, artifact_location(uri, spec.name, workdir))
        parent = retry(client.create_run, exp_id,
                       run_name=f"{spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}",
                       tags={names.TAG_KIND: "study", names.TAG_STUDY: spec.name,
                             "study_file": str(file), **provenance_tags()})
        parent_id = parent.info.run_id
    else:
        exp_id, parent_id = resumable.experiment_id, resumable.parent_run_id
        tags = retry(client.get_run, parent_id).data.tags
        retry(client.set_tag, parent_id, names.TAG_RESTARTS,
              str(int(tags.get(names.TAG_RESTARTS, "0")) + 1))
        if names.TAG_ERROR in tags:
            retry(client.set_tag, parent_id, names.TAG_PREVIOUS_ERROR, tags[names.TAG_ERROR])
            retry(client.delete_tag, parent_id, names.TAG_ERROR)
        for key, value in provenance_tags().items():  # the code that finishes the study
            retry(client.set_tag, parent_id, key, value)
        retry(client.update_run, parent_id, status="RUNNING")
    outcome = StudyOutcome(uri, exp_id, parent_id, resumed=resumable is not None)
    status = "FAILED"
    try:
        _execute(spec, plans, file, client, workdir, max_concurrent, stream, write_report,
                 t_start, outcome, resumable)
        status = "KILLED" if outcome.interrupted else "FINISHED"
    except KeyboardInterrupt:
        outcome.interrupted, status = True, "KILLED"
        end_dangling_runs(client, exp_id, parent_id)
        raise
    except BaseException as exc:
        retry(client.set_tag, parent_id, names.TAG_ERROR, f"{type(exc).__name__}: {exc}"[:5000])
        end_dangling_runs(client, exp_id, parent_id)
        raise
    finally:
        if status == "FINISHED" and outcome.nothing_measured:
            status_tag = names.STATUS_FAILED  # the study ran; none of its runs measured anything
            retry(client.set_tag, parent_id, names.TAG_ERROR, "every run failed")
        else:
            status_tag = {"FINISHED": names.STATUS_OK,
                          "KILLED": names.STATUS_STOPPED}.get(status, names.STATUS_FAILED)
        retry(client.set_tag, parent_id, names.TAG_STATUS, status_tag)
        retry(client.set_terminated, parent_id, status)
    share = outcome.training_share
    ended = "interrupted after" if outcome.interrupted else "finished in"
    print(f"\nstudy {ended} {outcome.study_seconds:.0f}s: {outcome.n_runs} runs "
          f"({outcome.n_trials} Tune trials)"
          + ("" if share is None else
             f", {share:.0%} of {outcome.concurrency} slot(s) spent training"), file=stream)
    if outcome.interrupted:
        print(f"  continue it from this folder (finished trials kept, the others from their "
              f"checkpoints): harness study {file} --resume{_uri_flag(uri, workdir)}",
              file=stream)
    if outcome.report:
        print(f"  report: {outcome.report['md']}\n          {outcome.report['html']}", file=stream)
    print(f"  browse the runs: harness ui{_uri_flag(uri, workdir)}", file=stream, flush=True)
    return outcome


def tune_trials(spec: StudySpec, plans: list[VariantPlan], vector=None) -> int:
    """How many Tune trials the protocol runs: per pair its search trials and seeds trials,
    fewer where :class:`~harness.vector.plan.VectorPlan` ``vector`` puts several copies in
    one trial (a trial that fails before it starts runs again on top)."""
    from harness.vector.plan import VectorPlan

    vector = vector or VectorPlan()
    return sum(vector.trials(p.base.key, spec.search.trials, spec.seeds) for p in plans)


_TRIAL_PREFIX = "trial_"


def _trial_name(trial) -> str:
    return f"{_TRIAL_PREFIX}{trial.trial_id}"


def _result_trial_id(result) -> str | None:
    """The Tune trial id of a result of the study's grid, from its folder (:func:`_trial_name`)."""
    return Path(result.path).name.removeprefix(_TRIAL_PREFIX) if result.path else None


def _execute(spec, plans, file, client, workdir, max_concurrent, stream, write_report, t_start,
             outcome: StudyOutcome, resumable=None) -> None:
    from mlflow.entities import Param
    from ray import tune

    from harness.tune_glue import trainable

    uri, exp_id, parent_id = outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id
    if resumable is None:  # a resumed study logged these when it started
        retry(client.log_batch, parent_id,
              params=[Param(k, v) for k, v in _parent_params(spec, plans).items()])
        log_bytes(client, parent_id, {
            f"study/{file.name}": file.read_bytes(),
            "study/resolved.json": json.dumps([p.base.model_dump(mode="json") for p in plans],
                                              indent=2).encode(),
            # the report's Reproduction section reads the published numbers from here
            **({names.ARTIFACT_PUBLISHED: spec.published.model_dump_json(indent=2).encode()}
               if spec.published is not None else {}),
        })
    from harness.vector.plan import plan_vectorize

    vector = plan_vectorize(spec, plans)
    total = tune_trials(spec, plans, vector)
    concurrency = max_concurrent or spec.max_concurrent_trials or default_concurrency(spec)
    outcome.n_trials, outcome.concurrency = total, concurrency
    runs_total = len(plans) * (spec.search.trials + spec.seeds)
    phases = (f"{spec.search.trials} search + {spec.seeds} seed trials" if spec.search.trials
              else f"no search, {spec.seeds} seed trials")
    print(f"study {spec.name!r}: {len(plans)} variant x dataset pairs x ({phases}) = "
          f"{runs_total} runs"
          + (f" in {total} Tune trials" if total != runs_total else " (trials)")
          + f", {concurrency} at a time", file=stream)
    for line in vector.lines:
        print(line, file=stream)
    print(f"  MLflow: {uri} (experiment {spec.name!r}, parent run {parent_id})", file=stream,
          flush=True)
    if resumable is not None:
        print(f"  resuming the interrupted run from {resumable.path}", file=stream, flush=True)

    def study_trial(config: dict) -> None:
        trainable(config, tracking_uri=uri, experiment_id=exp_id, parent_run_id=parent_id,
                  resumed=resumable is not None)

    resources = trial_resources(spec)
    if resumable is not None:
        from harness.resume import repair_named_checkpoints

        for line in repair_named_checkpoints(resumable.path):
            print(f"  {line}", file=stream, flush=True)
        # the searcher (with every Optuna study), the callbacks and the trials come back as
        # Tune saved them; errored trials stay errored (a failure is a result, not a loss)
        tuner = tune.Tuner.restore(str(resumable.path),
                                   trainable=tune.with_resources(study_trial, resources),
                                   resume_unfinished=True, resume_errored=False,
                                   restart_errored=False)
    else:
        tuner = _new_tuner(spec, plans, study_trial, resources, total, concurrency, workdir,
                           outcome, stream, vector)
    try:
        grid = tuner.fit()
        # Tune catches the first SIGINT itself, saves its state and returns normally; a study
        # whose trials did not all end (done or failed) was stopped, whatever the trials saw.
        outcome.interrupted = _trials_ended(grid) < total
        _drop_orphans(client, exp_id, parent_id, grid, stream)
    except KeyboardInterrupt:
        outcome.interrupted = True
    dangling = end_dangling_runs(client, exp_id, parent_id)
    if dangling or outcome.interrupted:
        outcome.interrupted = True
        print(f"  interrupted: {dangling} running trial(s) marked KILLED in MLflow", file=stream)
    from harness.reports.load import runs_frame
    from harness.reports.runs import measured_mask

    runs = child_runs(client, exp_id, parent_id)  # read once: the sums and the report
    frame = runs_frame(runs)
    outcome.n_runs, outcome.n_measured = len(runs), int(measured_mask(frame).sum())
    outcome.train_seconds = float(sum(r.data.metrics.get(names.TRAIN_SECONDS, 0.0) for r in runs))
    if write_report:
        from harness.reports.stability import build_report
        from harness.reports.terminal import terminal_summary

        out_dir = workdir / RUNS_DIR / "reports" / f"{spec.name}-{parent_id[:8]}"
        outcome.report = build_report(client, exp_id, parent_id, out_dir, runs=runs)
        # the table with the study's metric and chance levels, then the verdict
        print("\n" + terminal_summary(frame, spec.search.metric, spec.search.direction),
              file=stream)
    outcome.study_seconds = time.monotonic() - t_start
    retry(client.log_batch, parent_id, metrics=_parent_metrics(outcome))


def _trials_ended(grid) -> int:
    """The protocol's trials that ended (done or failed): Tune's ended trials less those
    lost before they started whose retry reported (the retry's result stands for them)."""
    retried = {(r.config or {}).get(names.RETRY_OF) for r in grid} - {None}
    lost = sum(1 for r in grid if r.error is not None and _result_trial_id(r) in retried)
    return grid.num_terminated + grid.num_errors - lost


def _drop_orphans(client, exp_id: str, parent_id: str, grid, stream) -> None:
    """Delete the unfinished child runs of trials this Tune experiment does not know: a
    driver killed between a trial's start and Tune's next state save leaves such a run
    RUNNING, and the resumed study ran that trial again (same label, config and seed) in
    a run of its own. Only unfinished runs go; each deletion is printed."""
    known = {_result_trial_id(r) for r in grid} - {None}

    def tune_id(run) -> str | None:  # a vectorized trial's copies: "<trial id>-copyK"
        tid = run.data.tags.get(names.TAG_TRIAL_ID)
        return tid.rsplit(names.COPY_SUFFIX, 1)[0] if tid and names.COPY_SUFFIX in tid else tid

    orphans = [r for r in child_runs(client, exp_id, parent_id)
               if r.info.status == "RUNNING" and tune_id(r) not in known]
    for run in orphans:
        retry(client.delete_run, run.info.run_id)
        print(f"  removed run {run.info.run_id} ({run.info.run_name}): its trial started after "
              "Tune last saved the study and ran again in a new run", file=stream, flush=True)


def _new_tuner(spec, plans, study_trial, resources, total, concurrency, workdir, outcome, stream,
               vector=None):
    """A fresh Tune experiment for the study, with the note ``--resume`` will look for."""
    from ray import tune

    from harness.resume import write_note
    from harness.tune_glue import CHECKPOINTS_KEPT, Progress, StartedTrials, make_searcher
    from harness.tune_pruning import PrunedRuns, make_scheduler

    uri, exp_id, parent_id = outcome.tracking_uri, outcome.experiment_id, outcome.parent_run_id
    name = f"{spec.name}-{parent_id[:8]}"
    storage = workdir / RUNS_DIR / "tune"
    write_note(storage / name, spec, parent_id, exp_id, uri)
    return tune.Tuner(
        tune.with_resources(study_trial, resources),
        tune_config=tune.TuneConfig(
            search_alg=make_searcher(plans, spec.search, spec.seeds, spec.seed, vector,
                                     retries=spec.max_failures),
            scheduler=make_scheduler(spec.search),
            # the searcher ends the experiment (FINISHED); above `total`, room for the trials
            # suggested again after they failed before they started
            num_samples=total * (1 + spec.max_failures), max_concurrent_trials=concurrency,
            reuse_actors=True,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage),
            verbose=0,
            callbacks=[StartedTrials(), Progress(total, concurrency, stream, spec.max_failures),
                       PrunedRuns(uri, exp_id, parent_id)],
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
        ),
    )


def _uri_flag(uri: str, workdir: Path) -> str:
    from harness.tracking import default_tracking_uri

    return "" if uri == default_tracking_uri(workdir) else f" --tracking-uri {uri}"


def _parent_metrics(outcome: StudyOutcome) -> list:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    share = outcome.training_share
    return [Metric("study_seconds", outcome.study_seconds, now, 0),
            Metric("train_seconds_total", outcome.train_seconds, now, 0),
            *([] if share is None else [Metric("training_share", share, now, 0)]),
            Metric("concurrency", float(outcome.concurrency), now, 0)]


def run_single(path: str | Path, variant: str, *, dataset: str | None = None,
               seed: int | None = None, tracking_uri: str | None = None,
               workdir: str | Path | None = None, stream: TextIO | None = None):
    """``harness run``: one configuration in this process, no Ray, one MLflow run."""
    from harness.trial import run_trial

    stream = stream or sys.stderr
    workdir = Path(workdir or Path.cwd()).resolve()
    file = find_study_file(path)
    spec = load_study(file)
    plans = resolve(spec, source=str(file), base_dir=file.parent)
    given = "--dataset"
    if "/" in variant and dataset is None:
        variant, dataset = variant.split("/", 1)
        given = f"--variant {variant}/{dataset}: dataset"
    matching = [p for p in plans if p.base.variant == variant]
    if not matching:
        raise ConfigError(f"--variant {variant!r} is not in {file.name}; "
                          f"allowed: {', '.join(sorted({p.base.variant for p in plans}))}")
    if dataset is None and len(matching) > 1:
        raise ConfigError(f"variant {variant!r} runs on several datasets; pick one with --dataset: "
                          f"{', '.join(p.base.dataset_key for p in matching)}")
    plan = next((p for p in matching if dataset is None or p.base.dataset_key == dataset), None)
    if plan is None:
        raise ConfigError(f"{given} {dataset!r} is not a dataset of variant {variant!r}; "
                          f"allowed: {', '.join(p.base.dataset_key for p in matching)}")
    cfg = plan.base.with_params({}, seed=spec.seed if seed is None else seed,
                                phase=names.PHASE_SINGLE)
    prepare_metrics([plan], stream)
    uri = resolve_tracking_uri(tracking_uri, workdir)
    client = open_store(uri)
    exp_id = ensure_experiment(client, spec.name, artifact_location(uri, spec.name, workdir))
    reporter = MlflowReporter(uri, exp_id, run_name=f"{cfg.key} run seed {cfg.seed}")
    print(f"training {cfg.key} (seed {cfg.seed}, {cfg.train.steps} steps) in-process", file=stream,
          flush=True)
    result = run_trial(cfg, reporter)
    print(f"status: {result.status}", file=stream)
    for k in sorted(result.final):
        print(f"  {k:<24} {result.final[k]:.6g}", file=stream)
    print(f"MLflow run {reporter.run_id} in experiment {spec.name!r} ({uri})", file=stream,
          flush=True)
    return result, reporter.run_id
