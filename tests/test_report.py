"""The stability report on a small hand-made MLflow store whose answers are known."""

from __future__ import annotations

import math
import os
import re
import shutil
import time

import numpy as np
import pytest

from harness import names
from harness.errors import ConfigError
from harness.plots import figure_png, plt
from harness.reports.stability import (
    build_report,
    latest_study_run,
    load_runs,
    summarize,
    summary_table,
)
from harness.reports.stats import bootstrap_ci

STUDY = "stab"
ERROR_TEXT = "RuntimeError: CUDA out of memory | at step 42"
# variant -> [(seed, final modes_covered)] for the seeds phase; all on ring8 (8 modes)
SEEDS = {"alpha": [(0, 8.0), (1, 7.0), (2, 8.0)], "beta": [(0, 3.0), (1, 5.0), (2, 4.0)]}
SEARCH = {"alpha": (7, 6.0, "0.001"), "beta": (7, 5.0, "0.003")}  # seed, modes, lr_d
MISSING_SAMPLES = ("beta", 2)  # the median run of beta has no final_samples.png


def _png(path):
    fig, ax = plt.subplots(figsize=(1, 1), dpi=30)
    ax.plot([0, 1], [0, 1])
    path.write_bytes(figure_png(fig))
    return path


def _make_run(client, exp_id, parent_id, variant, seed, phase, modes, lr_d, png,
              with_samples=True):
    from mlflow.entities import Metric, Param, RunTag

    tags = {names.TAG_PARENT: parent_id, names.TAG_VARIANT: variant,
            names.TAG_MODEL: "mlp", names.TAG_LOSS: "non_saturating", names.TAG_TRICKS: "none",
            names.TAG_DATASET: "ring8", names.TAG_SEED: str(seed), names.TAG_PHASE: phase,
            names.TAG_STUDY: STUDY, names.TAG_KIND: "trial"}
    run = client.create_run(exp_id, tags=tags, run_name=f"{variant}-{phase}-{seed}")
    rid = run.info.run_id
    params = {"lr_d": lr_d, "lr_g": "0.0002", "beta1": "0.5", "beta2": "0.999", "d_steps": "1",
              "batch_size": "64", "steps": "200", "eval_every": "100", "model.hidden": "128",
              "loss.label_smoothing": "0.0", "seed": str(seed)}
    now = int(time.time() * 1000)
    metrics = []
    for step in (50, 100, 150, 200):
        metrics += [Metric(names.LOSS_D, 1.3 - step / 1000 + seed / 100, now, step),
                    Metric(names.LOSS_G, 0.7 + step / 1000, now, step),
                    Metric(names.D_REAL, 0.6, now, step), Metric(names.D_FAKE, 0.4, now, step),
                    Metric(names.D_FAKE_AFTER, 0.45, now, step)]
    metrics += [Metric(names.MODES_COVERED, modes - 1, now, 100),
                Metric(names.MODES_COVERED, modes, now, 200),
                Metric(names.HQ_FRACTION, 0.5 + modes / 20, now, 200),
                Metric(names.MODE_KL, (8 - modes) / 10, now, 200),
                Metric(names.STABILITY_SCORE, modes / 8, now, 200),
                Metric(names.N_MODES, 8.0, now, 200),
                Metric(names.STEPS_DONE, 200.0, now, 200)]
    if modes >= 8:
        metrics.append(Metric(names.STEPS_TO_FULL_COVERAGE, 200.0, now, 200))
    status = names.STATUS_OK if modes >= 6 else names.STATUS_COLLAPSED
    client.log_batch(rid, metrics=metrics, params=[Param(k, v) for k, v in params.items()],
                     tags=[RunTag(names.TAG_STATUS, status)])
    if with_samples:
        client.log_artifact(rid, str(png))
    client.set_terminated(rid, "FINISHED")
    return rid


def _client(tmp, cache):
    """An MlflowClient on ``tmp/mlflow.db``.

    Creating an MLflow sqlite store runs every schema migration (several seconds), so an
    empty migrated database is kept in pytest's cache, per MLflow version, and copied.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    db = tmp / "mlflow.db"
    template = None
    if cache is not None:
        template = cache.mkdir("gan-harness-mlflow") / f"empty-{mlflow.__version__}.db"
        if template.is_file():
            shutil.copyfile(template, db)
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    client.search_experiments(max_results=1)  # creates / checks the schema
    if template is not None and not template.is_file():
        part = template.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(db, part)
        os.replace(part, template)
    return client


def study_store(tmp, cache, study: str) -> tuple:
    """``(client, uri, experiment_id, parent_run_id)``: a fresh MLflow store in ``tmp`` with
    an experiment and the parent run of study ``study``, as ``harness study`` makes them."""
    client = _client(tmp, cache)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    exp = client.create_experiment(study, artifact_location=(tmp / "art").as_uri())
    parent = client.create_run(exp, tags={names.TAG_KIND: "study",
                                          names.TAG_STUDY: study}).info.run_id
    return client, uri, exp, parent


@pytest.fixture(scope="module")
def store(tmp_path_factory, request):
    from mlflow.entities import RunTag

    tmp = tmp_path_factory.mktemp("store")
    client = _client(tmp, getattr(request.config, "cache", None))
    png = _png(tmp / names.ARTIFACT_FINAL_SAMPLES)
    t0 = int(time.time() * 1000)

    other = client.create_experiment("other", artifact_location=(tmp / "art_other").as_uri())
    client.create_run(other, tags={names.TAG_KIND: "study", names.TAG_STUDY: "other"},
                      start_time=t0 - 3_600_000)
    exp = client.create_experiment(STUDY, artifact_location=(tmp / "art").as_uri())
    old = client.create_run(exp, tags={names.TAG_KIND: "study", names.TAG_STUDY: STUDY},
                            start_time=t0 - 7_200_000).info.run_id
    client.set_terminated(old, "FINISHED")
    parent = client.create_run(exp, tags={names.TAG_KIND: "study", names.TAG_STUDY: STUDY},
                               start_time=t0).info.run_id

    children = {}
    for variant, runs in SEEDS.items():
        for seed, modes in runs:
            children[(variant, names.PHASE_SEEDS, seed)] = _make_run(
                client, exp, parent, variant, seed, names.PHASE_SEEDS, modes, "0.0004", png,
                with_samples=(variant, seed) != MISSING_SAMPLES)
        seed, modes, lr_d = SEARCH[variant]
        children[(variant, names.PHASE_SEARCH, seed)] = _make_run(
            client, exp, parent, variant, seed, names.PHASE_SEARCH, modes, lr_d, png)
    # a seeds-phase run of alpha that raised before logging any metric
    failed = client.create_run(exp, tags={
        names.TAG_PARENT: parent, names.TAG_VARIANT: "alpha", names.TAG_DATASET: "ring8",
        names.TAG_SEED: "3", names.TAG_PHASE: names.PHASE_SEEDS, names.TAG_KIND: "trial"})
    fid = failed.info.run_id
    client.log_batch(fid, tags=[RunTag(names.TAG_STATUS, names.STATUS_FAILED),
                                RunTag(names.TAG_ERROR, ERROR_TEXT)])
    client.set_terminated(fid, "FAILED")
    children[("alpha", names.PHASE_SEEDS, 3)] = fid
    client.set_terminated(parent, "FINISHED")
    return {"client": client, "exp": exp, "parent": parent, "old": old, "other": other,
            "children": children, "failed": fid, "tmp": tmp}


@pytest.fixture(scope="module")
def report(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    t = time.perf_counter()
    paths = build_report(store["client"], store["exp"], store["parent"], out)
    return paths, time.perf_counter() - t


def test_load_runs_keeps_every_child_and_the_failure(store):
    df = load_runs(store["client"], store["exp"], store["parent"])
    assert len(df) == len(store["children"]) == 9
    assert set(df["run_id"]) == set(store["children"].values())
    row = df[df["run_id"] == store["failed"]].iloc[0]
    assert row["run_status"] == "FAILED"
    assert row[names.TAG_STATUS] == names.STATUS_FAILED
    assert row[names.TAG_ERROR] == ERROR_TEXT
    assert int(row[names.TAG_SEED]) == 3
    assert math.isnan(row[names.MODES_COVERED])
    ok = df[df["run_id"] == store["children"][("beta", names.PHASE_SEEDS, 1)]].iloc[0]
    assert ok[names.MODES_COVERED] == 5.0  # the final value, not the step-100 one
    assert ok["lr_d"] == pytest.approx(0.0004)
    assert ok[names.TAG_PHASE] == names.PHASE_SEEDS


def test_summarize_hand_computed(store):
    df = load_runs(store["client"], store["exp"], store["parent"])
    s = summarize(df).set_index(names.TAG_VARIANT)
    assert list(s.index) == ["alpha", "beta"]  # sorted by mean modes covered, descending
    a, b = s.loc["alpha"], s.loc["beta"]
    assert a["modes_covered_mean"] == pytest.approx(23 / 3)
    assert a["modes_covered_std"] == pytest.approx(float(np.std([8, 7, 8], ddof=1)))
    assert a["modes_covered_std"] == pytest.approx(math.sqrt(1 / 3))
    assert b["modes_covered_mean"] == pytest.approx(4.0)
    assert b["modes_covered_std"] == pytest.approx(1.0)
    # seeds phase only: the failed seed counts in n and in the status counts, not in the mean
    assert a["n"] == 4 and a["modes_covered_n"] == 3
    assert b["n"] == 3
    assert (a[names.STATUS_OK], a[names.STATUS_FAILED], a[names.STATUS_COLLAPSED]) == (3, 1, 0)
    assert (b[names.STATUS_OK], b[names.STATUS_COLLAPSED]) == (0, 3)
    assert a[names.N_MODES] == 8
    assert a["full_coverage"] == "2/4" and b["full_coverage"] == "0/3"
    assert a["steps_to_full_coverage_mean"] == pytest.approx(200.0)
    assert math.isnan(b["steps_to_full_coverage_mean"])
    assert a["stability_score_mean"] == pytest.approx(23 / 24)


def test_summarize_leaves_partial_metrics_of_failed_runs_out_of_the_means(store):
    df = load_runs(store["client"], store["exp"], store["parent"])
    df.loc[df["run_id"] == store["failed"], names.MODES_COVERED] = 1.0  # logged before it died
    a = summarize(df).set_index(names.TAG_VARIANT).loc["alpha"]
    assert a["modes_covered_mean"] == pytest.approx(23 / 3) and a["modes_covered_n"] == 3
    assert a["n"] == 4 and a[names.STATUS_FAILED] == 1


def test_summarize_falls_back_to_all_runs_and_nan_std_for_one(store):
    df = load_runs(store["client"], store["exp"], store["parent"])
    only_search = df[df[names.TAG_PHASE] == names.PHASE_SEARCH]
    s = summarize(only_search).set_index(names.TAG_VARIANT)
    assert s.loc["alpha", "phase"] == "all" and s.loc["alpha", "n"] == 1
    assert s.loc["alpha", "modes_covered_mean"] == 6.0
    assert math.isnan(s.loc["alpha", "modes_covered_std"])


def test_summary_table_text(store):
    df = load_runs(store["client"], store["exp"], store["parent"])
    text = summary_table(summarize(df))
    assert "7.7 ± 0.6 / 8" in text and "4.0 ± 1.0 / 8" in text
    assert "ok 3, failed 1" in text and "collapsed 3" in text


def test_report_files_and_content(store, report):
    paths, _ = report  # how long it took is a benchmark's business, not a test's
    md = paths["md"].read_text()
    assert STUDY in md and store["parent"] in md
    # summary numbers as formatted in the table
    assert "| alpha | ring8 | seeds | 4 | 7.67 ± 0.58 / 8 | 0.88 ± 0.03 |" in md
    assert "| beta | ring8 | seeds | 3 | 4.00 ± 1.00 / 8 | 0.70 ± 0.05 |" in md
    assert "| 0.96 ± 0.07 | 200 (2/4) | ok 3, failed 1 |" in md
    # the failure with its error text (the pipe escaped for the markdown table)
    failures = md.split("## Failures", 1)[1]
    assert store["failed"] in failures
    assert ERROR_TEXT.replace("|", "\\|") in failures
    # definitions copied in the how-to-read section
    assert "stayed covered at *every*" in md
    # figures and samples exist and are referenced; the missing artifact is skipped, not fatal
    images = [p for p in paths.values() if p.suffix == ".png"]
    names_ = {p.name for p in images}
    assert {"coverage_ring8.png", "losses_ring8.png", "d_outputs_ring8.png",
            "samples_ring8_alpha.png"} <= names_
    assert "samples_ring8_beta.png" not in names_
    assert "no `final_samples.png` artifact" in md
    for name in names_:
        assert f"]({name})" in md
        assert (paths["md"].parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # best hyperparameters and the search table
    assert "model.hidden=128" in md
    search = md.split("## Search trials", 1)[1].split("## Failures", 1)[0]
    assert "| alpha | ring8 | 7 | 0.001 |" in search
    assert "| beta | ring8 | 7 | 0.003 |" in search


def test_summarize_bootstrap_ci_columns(store):
    df = load_runs(store["client"], store["exp"], store["parent"])
    s = summarize(df, n_resamples=500, seed=3).set_index(names.TAG_VARIANT)
    values = {"alpha": [8.0, 7.0, 8.0], "beta": [3.0, 5.0, 4.0]}
    for variant, vals in values.items():
        low, high = bootstrap_ci(vals, n_resamples=500, seed=3)
        assert s.loc[variant, "modes_covered_ci_low"] == pytest.approx(low)
        assert s.loc[variant, "modes_covered_ci_high"] == pytest.approx(high)
        assert min(vals) <= low <= s.loc[variant, "modes_covered_mean"] <= high <= max(vals)
    # the same values as the mean: the failed alpha seed is left out
    hq = df[(df[names.TAG_VARIANT] == "alpha") & (df[names.TAG_PHASE] == names.PHASE_SEEDS)
            & (df[names.TAG_STATUS] != names.STATUS_FAILED)][names.HQ_FRACTION]
    assert s.loc["alpha", "hq_fraction_ci_low"] == pytest.approx(
        bootstrap_ci(hq.to_numpy(), n_resamples=500, seed=3)[0])
    for m in ("modes_covered", "hq_fraction", "mode_kl", "stability_score"):
        assert {f"{m}_ci_low", f"{m}_ci_high"} <= set(s.columns)
    # one value: no interval
    only_search = summarize(df[df[names.TAG_PHASE] == names.PHASE_SEARCH]).set_index(
        names.TAG_VARIANT)
    assert math.isnan(only_search.loc["alpha", "modes_covered_ci_low"])


def test_report_ci_column_and_pairwise_section(report):
    paths, _ = report
    md = paths["md"].read_text()
    assert "95% CI (modes covered)" in md
    low, high = bootstrap_ci([8.0, 7.0, 8.0])
    alpha_row = next(line for line in md.splitlines() if line.startswith("| alpha | ring8 | seeds"))
    assert alpha_row.endswith(f"| [{low:.2f}, {high:.2f}] |")
    assert "percentile bootstrap" in md and "2000" in md
    assert "## Pairwise comparisons" in md
    pairwise = md.split("## Pairwise comparisons", 1)[1].split("\n## ", 1)[0]
    # alpha (8, 7, 8) vs beta (3, 5, 4): every alpha run above every beta run -> p = 2/20
    assert "| alpha | beta | 3 / 3 | 7.67 | 4.00 | 3.67 [" in pairwise
    assert "| 0.100 | 0.100 | no |" in pairwise
    assert "No pair is distinguishable" in pairwise
    assert "2/C(6, 3) = 0.1" in pairwise
    assert "## Pairwise comparisons" in paths["html"].read_text().replace("<h2>", "## ")


def test_report_score_vs_budget_section(report):
    paths, _ = report
    md = paths["md"].read_text()
    assert "## Score vs budget" in md
    # after the pairwise comparisons, before the per-dataset figures
    assert md.index("\n## Pairwise comparisons") < md.index("\n## Score vs budget") \
        < md.index("\n## Dataset `ring8`")
    section = md.split("## Score vs budget", 1)[1].split("\n## ", 1)[0]
    assert "budget_ring8" in paths
    png = paths["budget_ring8"]
    assert png.name == "budget_ring8.png" and png.parent == paths["md"].parent
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"]({png.name})" in section
    # one search trial per variant (alpha 6, beta 5): K = 1, best of 1 = best of all
    assert "| alpha | 1 | 6.00 [6.00, 6.00] | 6.00 (k = 1) | 6.00 |" in section
    assert "| beta | 1 | 5.00 [5.00, 5.00] | 5.00 (k = 1) | 5.00 |" in section
    page = paths["html"].read_text()
    assert "<h2>Score vs budget</h2>" in page


def test_report_html_is_self_contained(report):
    paths, _ = report
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page
    assert not re.search(r"""(src|href)\s*=\s*["']?https?://""", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower()
    assert "7.67 ± 0.58 / 8" in page
    assert page.count("<img") == sum(p.suffix == ".png" for p in paths.values())


def test_report_csv_and_attachment(store, report):
    import pandas as pd

    paths, _ = report
    csv = pd.read_csv(paths["csv"])
    assert len(csv) == len(store["children"])
    assert set(csv["run_id"]) == set(store["children"].values())
    listed = {a.path for a in store["client"].list_artifacts(store["parent"], "report")}
    assert {"report/report.md", "report/report.html", "report/report.csv",
            "report/coverage_ring8.png"} <= listed


def test_latest_study_run(store):
    client = store["client"]
    assert latest_study_run(client, STUDY) == (store["exp"], store["parent"])
    assert latest_study_run(client, store["old"]) == (store["exp"], store["old"])
    assert latest_study_run(client, None) == (store["exp"], store["parent"])
    exp_other, _ = latest_study_run(client, "other")
    assert exp_other == store["other"]
    with pytest.raises(ConfigError) as err:
        latest_study_run(client, "nope")
    assert "nope" in str(err.value) and "other" in str(err.value) and STUDY in str(err.value)
    child = store["children"][("alpha", names.PHASE_SEEDS, 0)]
    with pytest.raises(ConfigError, match=store["parent"]):
        latest_study_run(client, child)
