"""End to end: a tiny study through Ray Tune + Optuna + MLflow into a temp store, then the report.

One study (module-scoped fixture) serves every assertion: it registers a loss from a
plugin module in tests/ through the study file, and includes a variant whose trials
raise, so failure handling is checked on the same run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from harness import names

STEPS, EVAL_EVERY = 120, 60
STUDY = {
    "name": "e2e",
    "plugins": ["tests.plugin_example"],
    "seeds": 2,
    "max_failures": 0,  # the boom variant's failures are the point: no retry
    "datasets": ["ring8"],
    "train": {"steps": STEPS, "eval_every": EVAL_EVERY, "eval_samples": 400, "log_every": 10,
              "batch_size": 32},
    "search": {"trials": 2, "algorithm": "random",
               "space": {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
                         "beta1": {"type": "choice", "values": [0.5, 0.9]}}},
    "variants": [
        {"name": "ns", "model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
         "loss": "non_saturating"},
        {"name": "hinge", "model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
         "loss": {"name": "test_hinge", "params": {"margin": 1.0}}},
        {"name": "boom", "model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
         "loss": {"name": "test_explodes", "params": {"after": 70}}},
    ],
}
N_TRIALS = 3 * (2 + 2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from harness.study import run_study
    from harness.tracking import open_store

    work = tmp_path_factory.mktemp("study")
    path = work / "e2e.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    outcome = run_study(path, workdir=work, max_concurrent=2)
    client = open_store(outcome.tracking_uri, create=False)
    runs = client.search_runs([outcome.experiment_id], max_results=1000)
    children = [r for r in runs if r.data.tags.get(names.TAG_PARENT) == outcome.parent_run_id]
    return outcome, client, children, work


def test_one_parent_and_one_child_per_trial(study):
    outcome, client, children, work = study
    parent = client.get_run(outcome.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[names.TAG_KIND] == "study"
    assert len(children) == N_TRIALS
    assert len({c.data.tags[names.TAG_TRIAL_ID] for c in children}) == N_TRIALS
    phases = sorted(c.data.tags[names.TAG_PHASE] for c in children)
    assert phases.count(names.PHASE_SEARCH) == 6 and phases.count(names.PHASE_SEEDS) == 6
    # state stays under the working directory
    assert (work / "runs" / "mlflow.db").is_file()
    assert (work / "runs" / "tune").is_dir()
    assert outcome.tracking_uri == f"sqlite:///{work / 'runs' / 'mlflow.db'}"


def test_children_carry_tags_params_histories_and_artifacts(study):
    _outcome, client, children, _ = study
    ok = [c for c in children if c.data.tags["variant"] != "boom"]
    assert len(ok) == 8
    for run in ok:
        tags = run.data.tags
        assert run.info.status == "FINISHED"
        for key in (names.TAG_VARIANT, names.TAG_MODEL, names.TAG_LOSS, names.TAG_TRICKS,
                    names.TAG_DATASET, names.TAG_SEED, names.TAG_PHASE, names.TAG_STATUS):
            assert key in tags, key
        assert tags[names.TAG_STATUS] in names.STATUSES
        assert tags[names.TAG_DATASET] == "ring8" and tags[names.TAG_TRICKS] == "none"
        params = run.data.params
        for key in ("lr_d", "lr_g", "beta1", "beta2", "d_steps", "batch_size", "seed"):
            assert key in params
        assert params["seed"] == tags[names.TAG_SEED]
        hist = client.get_metric_history(run.info.run_id, names.LOSS_D)
        assert [m.step for m in hist] == list(range(10, STEPS + 1, 10))
        for key in names.STEP_HISTORIES:
            assert len(client.get_metric_history(run.info.run_id, key)) == STEPS // 10, key
        cov = client.get_metric_history(run.info.run_id, names.MODES_COVERED)
        assert [m.step for m in cov] == [60, 120]
        assert run.data.metrics[names.N_MODES] == 8
        assert 0 <= run.data.metrics[names.STABILITY_SCORE] <= 1
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {names.ARTIFACT_CONFIG, names.ARTIFACT_GENERATOR, names.ARTIFACT_FINAL_SAMPLES,
                names.ARTIFACT_SAMPLES_DIR} <= arts
        pngs = {a.path for a in client.list_artifacts(run.info.run_id, names.ARTIFACT_SAMPLES_DIR)}
        assert pngs == {"samples/step_0000060.png"}  # step 120's is final_samples.png


def test_plugin_from_study_file_ran(study):
    _, _client, children, _ = study
    hinge = [c for c in children if c.data.tags["variant"] == "hinge"]
    assert len(hinge) == 4 and all(c.data.tags[names.TAG_LOSS] == "test_hinge" for c in hinge)
    assert all(c.info.status == "FINISHED" for c in hinge)


def test_seeds_phase_reruns_best_search_config(study):
    _, _client, children, _ = study
    for variant in ("ns", "hinge"):
        runs = [c for c in children if c.data.tags["variant"] == variant]
        search = sorted((c for c in runs if c.data.tags[names.TAG_PHASE] == names.PHASE_SEARCH),
                        key=lambda r: int(r.data.tags[names.TAG_SEED]))  # ties go to the first
        seeds = [c for c in runs if c.data.tags[names.TAG_PHASE] == names.PHASE_SEEDS]
        best = max(search, key=lambda r: (r.data.metrics[names.MODES_COVERED],
                                          r.data.metrics[names.HQ_FRACTION]))
        for r in seeds:
            assert r.data.params["lr_d"] == best.data.params["lr_d"]
            assert r.data.params["beta1"] == best.data.params["beta1"]
        assert len({r.data.params["seed"] for r in seeds + search}) == 4


def test_failing_trials_are_failed_with_error_and_study_continues(study):
    _outcome, _client, children, _ = study
    boom = [c for c in children if c.data.tags["variant"] == "boom"]
    assert len(boom) == 4
    for run in boom:
        assert run.info.status == "FAILED"
        assert run.data.tags[names.TAG_STATUS] == names.STATUS_FAILED
        assert "boom after 70 steps" in run.data.tags[names.TAG_ERROR]
    assert (_outcome.n_measured, _outcome.n_runs) == (N_TRIALS - 4, N_TRIALS)  # 4 failed: exit 0


@pytest.mark.slow  # a study of its own (~25 s): the fast suite stays near 10 minutes
def test_a_study_whose_every_run_failed_exits_1(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    boom = {**STUDY, "name": "allboom", "seeds": 1, "search": {"trials": 0},
            "train": {**STUDY["train"], "steps": 80},
            "variants": [v for v in STUDY["variants"] if v["name"] == "boom"]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(boom))
    monkeypatch.chdir(tmp_path)
    assert main(["study", "s.yaml", "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "harness: error: the study's one run failed; nothing was measured" in err
    from harness.tracking import open_store

    client = open_store(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", create=False)
    exp = client.get_experiment_by_name("allboom")
    (parent,) = [r for r in client.search_runs([exp.experiment_id])
                 if r.data.tags.get(names.TAG_KIND) == "study"]
    assert parent.data.tags[names.TAG_STATUS] == names.STATUS_FAILED
    assert parent.data.tags[names.TAG_ERROR] == "every run failed"


def test_report_written_attached_and_matches_mlflow(study):
    outcome, client, children, _ = study
    md = Path(outcome.report["md"]).read_text()
    html = Path(outcome.report["html"]).read_text()
    assert "data:image/png;base64," in html
    assert not re.search(r"""(src|href)=["']https?://""", html)
    arts = {a.path for a in client.list_artifacts(outcome.parent_run_id, "report")}
    assert "report/report.md" in arts and "report/report.html" in arts
    # the summary's mean modes covered over seeds matches the MLflow runs
    for variant in ("ns", "hinge"):
        seeds = [c.data.metrics[names.MODES_COVERED] for c in children
                 if c.data.tags["variant"] == variant
                 and c.data.tags[names.TAG_PHASE] == names.PHASE_SEEDS]
        mean = sum(seeds) / len(seeds)
        row = next(line for line in md.splitlines() if line.startswith(f"| {variant} "))
        assert f"{mean:.2f}" in row, (row, mean)
    assert "boom after 70 steps" in md  # failures are listed, not dropped
    # every section of the report is there, each figure beside it
    for heading in ("## Summary over seeds", "## Pairwise comparisons", "## Score vs budget",
                    "## Sensitivity", "## Collapse timeline", "## Best hyperparameters",
                    "## Search trials", "## Failures"):
        assert heading in md, heading
    for png in ("coverage_ring8", "d_outputs_ring8", "budget_ring8", "timeline_ring8",
                "sensitivity_ring8"):
        assert Path(outcome.report[png]).is_file(), png
    study_arts = {a.path for a in client.list_artifacts(outcome.parent_run_id, "study")}
    assert study_arts == {"study/e2e.yaml", "study/resolved.json"}


def test_report_command_rebuilds_the_report(study, tmp_path, capsys):
    from harness.cli import main

    outcome, *_ = study
    assert main(["report", "e2e", "--tracking-uri", outcome.tracking_uri,
                 "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.md").is_file() and (tmp_path / "rep" / "report.html").is_file()
    assert str(tmp_path / "rep" / "report.md") in capsys.readouterr().out
    assert main(["report", "nope", "--tracking-uri", outcome.tracking_uri]) == 2
    assert "e2e" in capsys.readouterr().err  # the error lists the studies there are
