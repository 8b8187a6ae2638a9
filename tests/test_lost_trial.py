"""A trial Tune could not start is suggested again: nothing of the protocol is lost.

Tune reuses a trial's worker for the next trial. When that worker dies between two trials
(on a cluster: its node is killed), Tune starts the next trial on the dead worker, the
trial fails while PENDING, and ``max_failures`` does not apply (Tune retries only running
trials). The study's searcher then suggests the same config again under a new trial id,
with ``retry_of`` naming the first (:class:`harness.searcher.StudySearcher`).

Here a real Tune experiment, on one local CPU so that every trial reuses one worker, kills
that worker right after the first trial completes, as a node kill between trials would.
"""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path

import pytest
from ray.tune import Callback

from harness.config import parse_study
from harness.names import RETRY_OF
from harness.resolve import resolve
from harness.searcher import STARTED_TRIALS, StudySearcher
from harness.tune_glue import Progress, StartedTrials

STUDY = {"name": "lost", "seed": 0, "seeds": 2, "datasets": ["ring8"],
         "train": {"steps": 10, "eval_every": 10},
         "search": {"trials": 2, "algorithm": "random",
                    "space": {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3}}},
         "variants": [{"name": "ns", "loss": "non_saturating", "model": "mlp"}]}


def run(tmp_path: Path, retries: int) -> tuple[list, object, str]:
    import ray
    from ray import tune

    spec = parse_study(STUDY)
    searcher = StudySearcher(resolve(spec), spec.search, spec.seeds, spec.seed, retries=retries)
    log = tmp_path / "ran.jsonl"
    pid = tmp_path / "pid"

    def trial(config):
        pid.write_text(str(os.getpid()))
        with open(log, "a") as f:
            f.write(json.dumps([config["label"], config.get(RETRY_OF)]) + "\n")
        time.sleep(0.3)
        tune.report({"modes_covered": 5.0, "hq_fraction": 0.5, "final": True})

    class KillWorkerAfterFirstTrial(Callback):
        def __init__(self):
            self.done = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done += 1
            if self.done == 1:  # the worker now waits, cached, for the next trial
                os.kill(int(pid.read_text()), signal.SIGKILL)

    stream = io.StringIO()
    STARTED_TRIALS.clear()
    ray.init(num_cpus=1, address="local", include_dashboard=False, log_to_driver=False)
    try:
        grid = tune.Tuner(trial, tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=4 * (1 + retries), max_concurrent_trials=1,
            reuse_actors=True), run_config=tune.RunConfig(
            storage_path=str(tmp_path / "tune"), verbose=0,
            callbacks=[StartedTrials(), KillWorkerAfterFirstTrial(),
                       Progress(4, 1, stream, retries)],
            failure_config=tune.FailureConfig(max_failures=retries))).fit()
    finally:
        ray.shutdown()
        STARTED_TRIALS.clear()
    ran = [tuple(json.loads(line)) for line in log.read_text().splitlines()]
    return ran, grid, stream.getvalue()


def test_a_trial_lost_before_it_started_runs_again_once(tmp_path):
    ran, grid, progress = run(tmp_path, retries=1)
    labels = [label for label, _ in ran]
    assert sorted(labels) == ["ns/ring8 search #0", "ns/ring8 search #1",
                              "ns/ring8 seeds #0", "ns/ring8 seeds #1"]
    # Tune's one error is the lost trial; its retry ran under the lost trial's id
    (lost,) = [Path(r.path).name for r in grid if r.error]
    retried = dict(ran)["ns/ring8 search #1"]
    assert retried is not None and lost.startswith(f"trial_{retried}_")
    assert "search_1" in lost
    assert grid.num_terminated == 4 and grid.num_errors == 1
    assert "lost  ns/ring8 search #1" in progress and "FAIL" not in progress
    assert "4/4 trials finished (4 ok, 0 failed)" in progress


@pytest.mark.parametrize("retries", [0])
def test_without_retries_the_lost_trial_is_a_failure(tmp_path, retries):
    """The same experiment with ``max_failures: 0``: the lost trial stays lost, and the
    progress says it failed (what every study did before the searcher suggested again)."""
    ran, _, progress = run(tmp_path, retries=retries)
    assert len(ran) == 3 and "ns/ring8 search #1" not in dict(ran)
    assert "FAIL  ns/ring8 search #1" in progress


def test_a_searcher_and_progress_pickled_before_retries_resume_retrying_nothing():
    """``Tuner.restore`` unpickles the searcher and the callbacks of an interrupted study;
    those an older harness pickled lack the retry records: they resume as before."""
    import pickle

    from harness import names

    spec = parse_study(STUDY)
    searcher = StudySearcher(resolve(spec), spec.search, spec.seeds, spec.seed, retries=1)
    for name in ("given", "requeued", "alias", "retries"):
        del searcher.__dict__[name]
    old = pickle.loads(pickle.dumps(searcher))
    assert (old.retries, old.given, old.requeued, old.alias) == (0, {}, [], {})
    assert old.suggest("t0")["label"] == "ns/ring8 search #0"
    old.on_trial_complete("t0", None, error=True)  # not started, but nothing is retried
    assert old.completed == {"ns/ring8": 1} and not old.requeued
    state = old.get_state()
    for name in ("given", "requeued", "alias"):
        del state["progress"][name]
    fresh = StudySearcher(resolve(spec), spec.search, spec.seeds, spec.seed, retries=1)
    fresh.set_state(state)
    assert (fresh.given, fresh.requeued, fresh.alias) == ({}, [], {})

    progress = Progress(2, 1, io.StringIO(), retries=1)
    del progress.__dict__["retries"], progress.__dict__["recovered"]
    restored = pickle.loads(pickle.dumps(progress))
    trial = type("T", (), {"trial_id": "t0", "config": {"label": "x"}})()
    restored.on_trial_error(0, [], trial)
    assert restored.failed == 1 and restored.retries == 0
    assert names.RETRY_OF == RETRY_OF


def test_a_trial_put_back_to_pending_can_be_lost_again():
    """Tune recovers a trial that failed running by putting it back to PENDING; if its new
    worker is dead too it fails before it starts: the searcher suggests it again and the
    progress says so."""
    from types import SimpleNamespace

    STARTED_TRIALS.clear()
    starts, stream = StartedTrials(), io.StringIO()
    progress = Progress(2, 1, stream, retries=1)
    trial = SimpleNamespace(trial_id="t0", config={"label": "x"})
    for callback in (starts, progress):
        callback.on_trial_start(0, [], trial)
    assert "t0" in STARTED_TRIALS and progress.running == 1
    for callback in (starts, progress):
        callback.on_trial_recover(0, [], trial)
    assert "t0" not in STARTED_TRIALS
    progress.on_trial_error(0, [], trial)
    assert "lost  x" in stream.getvalue() and progress.failed == 0 and progress.running == 0


def test_a_lost_trial_whose_retry_reported_is_not_counted_twice():
    from types import SimpleNamespace as NS

    from harness.study import _trials_ended

    results = [NS(error=None, path="/t/trial_a", config={"label": "a"}),
               NS(error=RuntimeError("lost"), path="/t/trial_b", config=None),
               NS(error=None, path="/t/trial_c", config={"label": "b", RETRY_OF: "b"}),
               NS(error=RuntimeError("failed"), path="/t/trial_d", config=None)]

    class Grid(list):
        num_terminated = 2
        num_errors = 2

    assert _trials_ended(Grid(results)) == 3  # a, b (by its retry c), d


def test_a_trial_whose_reused_worker_could_not_be_reset_runs_again(tmp_path):
    """Tune stops a trial whose function is still running (here: a stopper at its first
    result, and the function goes on for 4 s, past Ray's 2 s wait for the thread), caches
    its worker and hands it the next trial; the worker cannot be reset while the old
    thread runs, so Tune ends the next trial with ERROR and tells no searcher of it. The
    study's callback reports it and the searcher suggests it again: every trial runs, and
    the experiment ends (before, the searcher waited for that trial forever)."""
    import ray
    from ray import tune

    spec = parse_study(STUDY)
    searcher = StudySearcher(resolve(spec), spec.search, spec.seeds, spec.seed, retries=1)
    log = tmp_path / "ran.jsonl"

    def trial(config):
        with open(log, "a") as f:
            f.write(json.dumps([config["label"], config.get(RETRY_OF)]) + "\n")
        try:  # Ray ends a stopped trial's report() by raising into its thread
            tune.report({"modes_covered": 5.0, "hq_fraction": 0.5, "final": True})
        finally:
            if config["label"].endswith("search #0"):
                time.sleep(4)  # the stopped trial's thread outlives Ray's wait at the reset

    STARTED_TRIALS.clear()
    ray.init(num_cpus=1, address="local", include_dashboard=False, log_to_driver=False)
    try:
        grid = tune.Tuner(trial, tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=8, max_concurrent_trials=1, reuse_actors=True),
            run_config=tune.RunConfig(
                storage_path=str(tmp_path / "tune"), verbose=0, stop={"training_iteration": 1},
                callbacks=[StartedTrials()],
                failure_config=tune.FailureConfig(max_failures=1))).fit()
    finally:
        ray.shutdown()
        STARTED_TRIALS.clear()
    ran = [tuple(json.loads(line)) for line in log.read_text().splitlines()]
    assert sorted(label for label, _ in ran) == [
        "ns/ring8 search #0", "ns/ring8 search #1", "ns/ring8 seeds #0", "ns/ring8 seeds #1"]
    assert grid.num_errors == 1  # the trial the worker could not be reset for
    (lost,) = [Path(r.path).name for r in grid if r.error]
    assert "search_1" in lost and dict(ran)["ns/ring8 search #1"] is not None
    assert "reset_config" in str(next(r.error for r in grid if r.error))
