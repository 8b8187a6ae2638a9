"""Determinism and provenance: the same study file and seed on the CPU give identical
metrics, and every run records the code and libraries it ran with."""

from __future__ import annotations

import importlib.metadata
import subprocess

import pytest
import yaml

from harness import names
from harness.environment import git_state, library_versions, provenance_tags

STUDY = {
    "name": "determinism",
    "seed": 7,
    "seeds": 1,
    "datasets": ["ring8"],
    "train": {"steps": 80, "eval_every": 40, "eval_samples": 300, "log_every": 10,
              "batch_size": 32},
    "search": {"trials": 2, "algorithm": "tpe",
               "space": {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
                         "lr_g": {"type": "loguniform", "low": 3e-4, "high": 3e-3}}},
    "variants": [{"name": "ns", "loss": "non_saturating",
                  "model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}}}],
}


def _run(tmp_path, label):
    from harness.study import run_study
    from harness.tracking import child_runs, open_store

    work = tmp_path / label
    work.mkdir()
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    outcome = run_study(path, workdir=work, max_concurrent=2, write_report=False)
    client = open_store(outcome.tracking_uri, create=False)
    kids = child_runs(client, outcome.experiment_id, outcome.parent_run_id)
    table = {}
    for run in kids:
        key = (run.data.tags[names.TAG_PHASE], run.data.tags[names.TAG_SEED],
               tuple(sorted(run.data.params.items())))
        histories = {m: [(h.step, h.value) for h in client.get_metric_history(run.info.run_id, m)]
                     for m in run.data.metrics}
        table[key] = (run.data.tags[names.TAG_STATUS], histories)
    return table, client.get_run(outcome.parent_run_id), kids, client


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("determinism")
    return _run(tmp, "first"), _run(tmp, "second")


def test_same_study_file_and_seed_give_identical_metrics(two_runs):
    (first, *_), (second, *_) = two_runs
    assert len(first) == 3  # 2 search trials + 1 seed trial, each a distinct configuration
    assert first.keys() == second.keys()  # the searcher suggested the same configurations
    for key, (status, histories) in first.items():
        assert second[key][0] == status
        assert histories.keys() == second[key][1].keys()
        for metric, points in histories.items():
            # timings are measurements, everything else must match bit for bit
            if metric in (names.TRAIN_SECONDS, names.STEPS_PER_SECOND):
                continue
            assert points == second[key][1][metric], (key, metric)
    assert any(names.MODES_COVERED in h for _, h in first.values())


def test_every_run_records_commit_versions_and_the_resolved_config(two_runs):
    (_, parent, kids, client), _ = two_runs
    expected = provenance_tags()
    assert expected[f"{names.TAG_VERSION_PREFIX}torch"] == importlib.metadata.version("torch")
    for run in [parent, *kids]:
        tags = run.data.tags
        for key, value in expected.items():
            assert tags.get(key) == value, (run.info.run_name, key)
    for run in kids:
        assert names.ARTIFACT_CONFIG in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_git_state_names_the_checkout_and_its_changes(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    assert git_state(tmp_path) == {}  # not a checkout: no tag rather than a guess
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "y")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {names.TAG_GIT_COMMIT: head, names.TAG_GIT_DIRTY: "false"}
    (tmp_path / "untracked.txt").write_text("b")  # untracked files do not change the code
    assert git_state(tmp_path)[names.TAG_GIT_DIRTY] == "false"
    (tmp_path / "f.txt").write_text("changed")
    assert git_state(tmp_path)[names.TAG_GIT_DIRTY] == "true"


def test_library_versions_are_the_installed_ones():
    versions = library_versions()
    for dist in ("torch", "ray", "optuna", "mlflow", "numpy"):
        assert versions[f"{names.TAG_VERSION_PREFIX}{dist}"] == importlib.metadata.version(dist)
    import torch

    assert versions[f"{names.TAG_VERSION_PREFIX}cuda"] == (torch.version.cuda or "none")


def test_a_tie_goes_to_the_earlier_suggestion_whatever_order_trials_finish_in():
    """Two search trials with equal results: the seeds phase re-runs the first suggested,
    also when it finished last (trials side by side finish in any order)."""
    from harness.config import parse_study
    from harness.resolve import resolve
    from harness.tune_glue import make_searcher

    spec = parse_study({**STUDY, "search": {**STUDY["search"], "algorithm": "random"}})
    plans = resolve(spec)
    picked = []
    for finish_order in (("t1", "t2"), ("t2", "t1")):
        searcher = make_searcher(plans, spec.search, spec.seeds, spec.seed)
        first, second = searcher.suggest("t1"), searcher.suggest("t2")
        assert first["params"] != second["params"]
        for trial_id in finish_order:
            searcher.on_trial_complete(trial_id, {names.MODES_COVERED: 5.0,
                                                  names.HQ_FRACTION: 0.5, "step": 80})
        seeds = searcher.suggest("t3")
        assert seeds["trial"]["phase"] == names.PHASE_SEEDS
        picked.append(seeds["params"])
    assert picked == [first["params"], first["params"]]
