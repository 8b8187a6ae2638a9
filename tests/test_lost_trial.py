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
from harness.resolve import resolve
from harness.searcher import RETRY_OF, STARTED_TRIALS, StudySearcher
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
