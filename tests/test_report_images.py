"""The image-GAN parts of the stability report: the image-metric table, provenance (refusing
to rank runs measured differently), FID / IS curves and the sample grids of conditional and
InfoGAN runs -- on small hand-made MLflow stores whose answers are known."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest

from harness import names
from harness.reports import provenance
from harness.reports.images import best_variants, summarize_images
from harness.reports.provenance import (
    NOT_SET,
    TAG_DATASET_SPLIT,
    is_provenance_tag,
    provenance_conflicts,
    provenance_groups,
)
from harness.reports.stability import build_report, load_runs
from harness.reports.stats import bootstrap_ci
from tests.test_report import _client, _png

DATASET = "mnist"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# variant -> [(seed, fid, is_mean, modes_covered, extra metric value)]
# every run's final real-data floor is FLOOR: one cgan run (FID 20) is below it
FLOOR = 25.0
RUNS = {
    "dcgan": [(0, 30.0, 2.0, 9.0, None), (1, 40.0, 2.2, 10.0, None), (2, 50.0, 2.4, 10.0, None)],
    "cgan": [(0, 20.0, 2.5, 10.0, 0.90), (1, 25.0, 2.6, 10.0, 0.95), (2, 27.0, 2.7, 10.0, 0.92)],
    "infogan": [(0, 60.0, 1.8, 8.0, 0.70), (1, 70.0, 1.6, 7.0, 0.80)],
}
EXTRA = {"cgan": names.COND_ACCURACY, "infogan": names.CODE_ACCURACY}
# the final pictures each model logs at the artifact root (trainer.pictures / _finish)
GRIDS = {"dcgan": [None], "cgan": ["classes"], "infogan": ["code_grid", "continuous_0"]}
SAMPLES_FINAL = {"same": "10000", "conflict_infogan": "5000"}


def _provenance(variant: str, conflict: bool) -> dict[str, str]:
    final = (SAMPLES_FINAL["conflict_infogan"] if conflict and variant == "infogan"
             else SAMPLES_FINAL["same"])
    return {names.TAG_FIDELITY_EXTRACTOR: "classifier",
            names.TAG_FIDELITY_EXTRACTOR_HASH: "abc123", names.TAG_FIDELITY_REAL_HASH: "def456",
            names.TAG_FIDELITY_SAMPLES_EVAL: "2000", names.TAG_FIDELITY_SAMPLES_FINAL: final,
            names.TAG_CLASSIFIER_HASH: "abc123", names.TAG_CLASSIFIER_ACCURACY: "0.9900",
            names.TAG_CLASS_MODES_SAMPLES_FINAL: "10000", names.TAG_CLASS_MODES_MIN_COUNT: "20",
            names.TAG_CLASS_MODES_CONFIDENCE: "0.9", TAG_DATASET_SPLIT: "t10k only: 8000 / 2000"}


def _final_name(grid: str | None) -> str:
    stem = names.ARTIFACT_FINAL_SAMPLES.removesuffix(".png")
    return f"{stem}_{grid}.png" if grid else names.ARTIFACT_FINAL_SAMPLES


def _image_run(client, exp, parent, variant, seed, fid, is_mean, modes, extra, conflict,
               pictures):
    from mlflow.entities import Metric, Param, RunTag

    tags = {names.TAG_PARENT: parent, names.TAG_VARIANT: variant, names.TAG_MODEL: variant,
            names.TAG_LOSS: "non_saturating", names.TAG_TRICKS: "none",
            names.TAG_DATASET: DATASET, names.TAG_SEED: str(seed),
            names.TAG_PHASE: names.PHASE_SEEDS, names.TAG_KIND: "trial",
            **_provenance(variant, conflict)}
    rid = client.create_run(exp, tags=tags, run_name=f"{variant}-{seed}").info.run_id
    now = int(time.time() * 1000)
    metrics = []
    for step in (50, 100, 150, 200):
        metrics += [Metric(names.LOSS_D, 1.2, now, step), Metric(names.LOSS_G, 0.8, now, step),
                    Metric(names.D_REAL, 0.6, now, step), Metric(names.D_FAKE, 0.4, now, step),
                    Metric(names.D_FAKE_AFTER, 0.45, now, step)]
        if variant == "infogan":
            metrics.append(Metric(names.LOSS_Q, 0.5 - step / 1000, now, step))
    # evaluations at steps 100 and 200: the final values are the step-200 ones
    metrics += [Metric(names.FID, fid * 2, now, 100), Metric(names.FID, fid, now, 200),
                Metric(names.FID_FLOOR, 2 * FLOOR, now, 100),
                Metric(names.FID_FLOOR, FLOOR, now, 200),
                Metric(names.IS_MEAN, is_mean / 2, now, 100),
                Metric(names.IS_MEAN, is_mean, now, 200), Metric(names.IS_STD, 0.1, now, 200),
                Metric(names.KID_MEAN, fid / 1000, now, 200),
                Metric(names.KID_STD, 0.001, now, 200),
                Metric(names.PRECISION, 0.5 + seed / 10, now, 200),
                Metric(names.RECALL, 0.4 + seed / 10, now, 200),
                Metric(names.MODES_COVERED, modes - 2, now, 100),
                Metric(names.MODES_COVERED, modes, now, 200),
                Metric(names.HQ_FRACTION, 0.8, now, 200), Metric(names.MODE_KL, 0.05, now, 200),
                Metric(names.STABILITY_SCORE, modes / 10, now, 200),
                Metric(names.N_MODES, 10.0, now, 200)]
    if extra is not None:
        metrics += [Metric(EXTRA[variant], extra / 2, now, 100),
                    Metric(EXTRA[variant], extra, now, 200)]
    client.log_batch(rid, metrics=metrics,
                     params=[Param("lr_d", "0.0002"), Param("seed", str(seed))],
                     tags=[RunTag(names.TAG_STATUS, names.STATUS_OK)])
    for grid in GRIDS[variant]:
        client.log_artifact(rid, str(pictures[grid]))
        # a per-evaluation picture, which the report must not take for a final one
        client.log_artifact(rid, str(pictures[grid]), names.ARTIFACT_SAMPLES_DIR)
    client.set_terminated(rid, "FINISHED")
    return rid


def _study(client, exp, conflict: bool, pictures) -> dict:
    from mlflow.entities import RunTag

    parent = client.create_run(exp, tags={names.TAG_KIND: "study",
                                          names.TAG_STUDY: "images"}).info.run_id
    children = {}
    for variant, runs in RUNS.items():
        for seed, fid, is_mean, modes, extra in runs:
            children[(variant, seed)] = _image_run(client, exp, parent, variant, seed, fid,
                                                   is_mean, modes, extra, conflict, pictures)
    # a cgan seed that raised before the trial started: no provenance tags, no metrics
    failed = client.create_run(exp, tags={
        names.TAG_PARENT: parent, names.TAG_VARIANT: "cgan", names.TAG_DATASET: DATASET,
        names.TAG_SEED: "3", names.TAG_PHASE: names.PHASE_SEEDS, names.TAG_KIND: "trial"})
    client.log_batch(failed.info.run_id, tags=[RunTag(names.TAG_STATUS, names.STATUS_FAILED),
                                               RunTag(names.TAG_ERROR, "ValueError: boom")])
    client.set_terminated(failed.info.run_id, "FAILED")
    client.set_terminated(parent, "FINISHED")
    return {"parent": parent, "children": children}


@pytest.fixture(scope="module")
def stores(tmp_path_factory, request):
    tmp = tmp_path_factory.mktemp("image_store")
    client = _client(tmp, getattr(request.config, "cache", None))
    pictures = {}
    for grids in GRIDS.values():
        for grid in grids:
            pictures[grid] = _png(tmp / _final_name(grid))
    exp = client.create_experiment("images", artifact_location=(tmp / "art").as_uri())
    same = _study(client, exp, conflict=False, pictures=pictures)
    conflict = _study(client, exp, conflict=True, pictures=pictures)
    return {"client": client, "exp": exp, "same": same, "conflict": conflict}


@pytest.fixture(scope="module")
def reports(stores, tmp_path_factory):
    out = {}
    for key in ("same", "conflict"):
        folder = tmp_path_factory.mktemp(f"report_{key}")
        out[key] = build_report(stores["client"], stores["exp"], stores[key]["parent"], folder,
                                attach=False, n_resamples=500)
    return out


def _section(md: str, heading: str) -> str:
    return md.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]


# --- provenance: pure functions -----------------------------------------------------------


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def test_is_provenance_tag():
    for tag in (names.TAG_FIDELITY_EXTRACTOR, names.TAG_FIDELITY_SAMPLES_FINAL,
                names.TAG_CLASSIFIER_HASH, names.TAG_CLASS_MODES_MIN_COUNT, TAG_DATASET_SPLIT):
        assert is_provenance_tag(tag)
    for tag in (names.TAG_VARIANT, names.TAG_DATASET, names.FID, f"{names.TAG_DATASET}.data_dir"):
        assert not is_provenance_tag(tag)


def test_provenance_same_tags_no_conflict_one_group():
    df = _frame([{names.TAG_VARIANT: v, names.TAG_FIDELITY_EXTRACTOR: "classifier",
                  TAG_DATASET_SPLIT: "s", names.FID: f} for v, f in (("a", 1.0), ("b", 2.0))])
    assert provenance_conflicts(df) == {}
    groups = provenance_groups(df)
    assert len(groups) == 1
    assert groups[0].tags == {names.TAG_FIDELITY_EXTRACTOR: "classifier", TAG_DATASET_SPLIT: "s"}
    assert groups[0].variants == ["a", "b"] and len(groups[0].rows) == 2


def test_provenance_conflict_names_tags_values_and_variants():
    tag = names.TAG_FIDELITY_SAMPLES_FINAL
    df = _frame([
        {names.TAG_VARIANT: "a", tag: "10000", names.TAG_CLASSIFIER_HASH: "h"},
        {names.TAG_VARIANT: "a", tag: "10000", names.TAG_CLASSIFIER_HASH: "h"},
        {names.TAG_VARIANT: "b", tag: "5000", names.TAG_CLASSIFIER_HASH: "h"},
        {names.TAG_VARIANT: "c", tag: None, names.TAG_CLASSIFIER_HASH: "h"},
    ])
    conflicts = provenance_conflicts(df)
    assert conflicts == {tag: {"10000": ["a"], "5000": ["b"], NOT_SET: ["c"]}}
    groups = provenance_groups(df)
    assert [g.variants for g in groups] == [["a"], ["b"], ["c"]]  # order of first appearance
    assert [len(g.rows) for g in groups] == [2, 1, 1]
    assert groups[2].tags[tag] is None
    text = provenance.describe_conflicts(conflicts)
    assert f"`{tag}`" in text and "`5000` (b)" in text and "`10000` (a)" in text


def test_provenance_edge_cases():
    assert provenance_groups(pd.DataFrame(columns=[names.TAG_VARIANT])) == []
    assert provenance_conflicts(pd.DataFrame(columns=[names.TAG_VARIANT])) == {}
    # no provenance columns at all (mixture datasets): one group, nothing to conflict
    df = _frame([{names.TAG_VARIANT: "a", names.MODES_COVERED: 8.0},
                 {names.TAG_VARIANT: "b", names.MODES_COVERED: 7.0}])
    assert provenance_conflicts(df) == {} and len(provenance_groups(df)) == 1
    # only the given tags count
    df = _frame([{names.TAG_VARIANT: "a", names.TAG_FIDELITY_SAMPLES_FINAL: "1"},
                 {names.TAG_VARIANT: "b", names.TAG_FIDELITY_SAMPLES_FINAL: "2"}])
    assert provenance_conflicts(df, tags=[names.TAG_CLASSIFIER_HASH]) == {}
    assert len(provenance_groups(df, tags=[])) == 1


def test_best_variants_direction_and_ties():
    summary = _frame([{names.TAG_VARIANT: v, f"{names.FID}_mean": f, f"{names.IS_MEAN}_mean": i}
                      for v, f, i in (("a", 10.0, 2.0), ("b", 5.0, 3.0), ("c", 5.0, np.nan))])
    assert best_variants(summary, names.FID) == ["b", "c"]  # lower is better; a tie
    assert best_variants(summary, names.IS_MEAN) == ["b"]  # higher is better
    assert best_variants(summary.iloc[:1], names.FID) == []  # one variant: nothing to rank
    assert best_variants(summary, names.RECALL) == []


# --- the image table ----------------------------------------------------------------------


def test_summarize_images_means(stores):
    df = load_runs(stores["client"], stores["exp"], stores["same"]["parent"])
    s = summarize_images(df, n_resamples=500, seed=1).set_index(names.TAG_VARIANT)
    assert sorted(s.index) == ["cgan", "dcgan", "infogan"]
    assert set(s["provenance_group"]) == {1}
    d, c, i = s.loc["dcgan"], s.loc["cgan"], s.loc["infogan"]
    assert d[f"{names.FID}_mean"] == pytest.approx(40.0)  # final values, not step 100
    # the real-data floor beside FID, and the runs below it (possible memorisation)
    assert s["fid_floor_mean"].tolist() == [FLOOR] * 3
    assert s["fid_below_floor"].to_dict() == {"cgan": 1, "dcgan": 0, "infogan": 0}
    assert d[f"{names.FID}_std"] == pytest.approx(10.0)
    assert d[f"{names.IS_MEAN}_mean"] == pytest.approx(2.2)
    assert d[f"{names.KID_MEAN}_mean"] == pytest.approx(0.04)
    assert d[f"{names.PRECISION}_mean"] == pytest.approx(0.6)
    assert (d[f"{names.FID}_ci_low"], d[f"{names.FID}_ci_high"]) == pytest.approx(
        bootstrap_ci([30.0, 40.0, 50.0], n_resamples=500, seed=1))
    assert d[f"{names.COND_ACCURACY}_n"] == 0 and math.isnan(d[f"{names.COND_ACCURACY}_mean"])
    assert c[f"{names.COND_ACCURACY}_mean"] == pytest.approx(np.mean([0.90, 0.95, 0.92]))
    assert c[f"{names.FID}_mean"] == pytest.approx(24.0)
    # the failed cgan seed counts in n, not in the means
    assert (c["n"], c["n_group"], c[f"{names.FID}_n"]) == (4, 3, 3)
    assert i[f"{names.CODE_ACCURACY}_mean"] == pytest.approx(0.75)
    assert i[f"{names.CODE_ACCURACY}_std"] == pytest.approx(float(np.std([0.7, 0.8], ddof=1)))
    assert i["n"] == 2 and i[f"{names.FID}_mean"] == pytest.approx(65.0)


def test_summarize_images_empty_without_image_metrics():
    df = _frame([{names.TAG_VARIANT: "a", names.TAG_DATASET: "ring8",
                  names.TAG_PHASE: names.PHASE_SEEDS, names.TAG_STATUS: names.STATUS_OK,
                  "run_status": "FINISHED", names.MODES_COVERED: 8.0}])
    assert summarize_images(df).empty


def test_report_image_table_same_provenance_is_ranked(reports):
    md = reports["same"]["md"].read_text()
    section = _section(md, "Image metrics")
    assert ("| variant | phase | runs (used / all) | FID ↓ | 95% CI (FID) | "
            "real-data floor (FID) | IS ↑ | KID ↓ |" in section)
    low, high = bootstrap_ci([30.0, 40.0, 50.0], n_resamples=500)
    assert (f"| dcgan | seeds | 3 / 3 | 40.00 ± 10.00 | [{low:.2f}, {high:.2f}] | 25.00 | "
            "2.20 ± 0.20 | 0.0400 ± 0.0100 | 0.600 ± 0.100 | 0.500 ± 0.100 | — | — |") in section
    assert "| cgan | seeds | 3 / 4 | 24.00 ± 3.61 |" in section
    # cgan's seed 0 (FID 20) beat the floor (25): flagged in its row and below the table
    assert "| 25.00 (⚠ 1 / 3 below: possible memorisation) |" in section
    assert section.count("possible memorisation") == 1
    assert ("**Possible memorisation** -- FID below the real-data floor (unseen real images "
            "score worse against the same reference): `cgan` in 1 of 3 runs.") in section
    assert "**Real-data floor**" in md
    assert "| infogan | seeds | 2 / 2 | 65.00 ± 7.07 |" in section
    assert "Warning" not in md
    assert "All compared runs share one provenance" in section
    assert f"`{names.TAG_FIDELITY_SAMPLES_FINAL}` = `10000`" in section
    best = next(line for line in section.splitlines() if line.startswith("Best mean"))
    assert "FID (lowest) **cgan** (24.00)" in best
    assert "IS (highest) **cgan** (2.60)" in best
    assert "cond accuracy" not in best  # one variant reported it: nothing to rank
    # the image section sits between the summary and the pairwise comparisons
    assert md.index("\n## Summary over seeds") < md.index("\n## Image metrics") \
        < md.index("\n## Pairwise comparisons")
    # and the how-to-read list explains the metrics and provenance
    assert "**Provenance**" in md and "Fréchet" in md


def test_report_refuses_to_rank_on_provenance_conflict(reports):
    md = reports["conflict"]["md"].read_text()
    tag = names.TAG_FIDELITY_SAMPLES_FINAL
    section = _section(md, "Image metrics")
    assert "**Warning -- provenance differs, not ranked.**" in section
    assert f"`{tag}`: `10000` (cgan, dcgan); `5000` (infogan)" in section
    assert "Best mean" not in md and "(lowest)" not in md
    assert f"**Provenance group 1** (cgan, dcgan; 6 runs): `{tag}` = `10000`." in section
    assert f"**Provenance group 2** (infogan; 2 runs): `{tag}` = `5000`." in section
    group1 = section.split("**Provenance group 1**", 1)[1].split("**Provenance group 2**", 1)[0]
    group2 = section.split("**Provenance group 2**", 1)[1]
    assert "| dcgan | seeds | 3 / 3 | 40.00 ± 10.00 |" in group1 and "infogan" not in group1
    assert "| infogan | seeds | 2 / 2 | 65.00 ± 7.07 |" in group2 and "dcgan" not in group2
    # the summary says its order is no ranking; pairwise comparisons stay within a group
    summary = _section(md, "Summary over seeds")
    assert "provenance differs" in summary and "is not a ranking" in summary
    pairwise = _section(md, "Pairwise comparisons")
    assert "provenance differs" in pairwise and "never across groups" in pairwise
    assert "| cgan | dcgan |" in pairwise
    assert "| dcgan | infogan |" not in pairwise and "| cgan | infogan |" not in pairwise
    page = reports["conflict"]["html"].read_text()
    assert "<strong>Warning -- provenance differs, not ranked.</strong>" in page
    assert f"<code>{tag}</code>" in page


def test_report_csv_has_image_metrics_and_provenance(stores, reports):
    csv = pd.read_csv(reports["same"]["csv"])
    for col in (names.FID, names.FID_FLOOR, names.IS_MEAN, names.IS_STD, names.KID_MEAN,
                names.PRECISION,
                names.RECALL, names.COND_ACCURACY, names.CODE_ACCURACY,
                names.TAG_FIDELITY_SAMPLES_FINAL, names.TAG_CLASSIFIER_HASH, TAG_DATASET_SPLIT):
        assert col in csv.columns, col
    rid = stores["same"]["children"][("dcgan", 1)]
    assert csv.loc[csv["run_id"] == rid, names.FID].iloc[0] == pytest.approx(40.0)


# --- curves and sample grids -------------------------------------------------------------


def test_report_image_curves(reports):
    paths = reports["same"]
    assert "image_metrics_mnist" in paths
    png = paths["image_metrics_mnist"]
    assert png.name == "image_metrics_mnist.png" and png.read_bytes()[:8] == PNG_MAGIC
    md = paths["md"].read_text()
    assert f"]({png.name})" in md and "Image metrics over generator steps" in md
    assert "do not rank them by these curves" in reports["conflict"]["md"].read_text()


def test_report_copies_final_sample_grids(reports):
    paths = reports["same"]
    folder = paths["md"].parent
    expected = {"samples_mnist_dcgan.png", "samples_mnist_cgan_classes.png",
                "samples_mnist_infogan_code_grid.png", "samples_mnist_infogan_continuous_0.png"}
    written = {p.name for p in folder.glob("samples_*.png")}
    assert written == expected  # the per-evaluation pictures under samples/ are not copied
    md = paths["md"].read_text()
    final = md.split("### Final samples", 1)[1].split("\n## ", 1)[0]
    for name in expected:
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in final
        assert paths[name.removesuffix(".png")] == folder / name
    assert "*cgan, grid `classes`*: rows: fixed noise vectors, columns: the class" in final
    assert "*infogan, grid `continuous_0`*: continuous code 0 traversed" in final
    assert "grid `code_grid`" in final
    assert "no `final_samples.png` artifact" not in final
    page = paths["html"].read_text()
    assert page.count("<img") == sum(p.suffix == ".png" for p in paths.values())


def test_mixture_report_has_no_image_section(tmp_path, request):
    """A study without image metrics keeps its report as it was: no image table or curves."""
    from tests.test_report import _make_run

    client = _client(tmp_path, getattr(request.config, "cache", None))
    png = _png(tmp_path / names.ARTIFACT_FINAL_SAMPLES)
    exp = client.create_experiment("mix", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, tags={names.TAG_KIND: "study"}).info.run_id
    for variant in ("a", "b"):
        _make_run(client, exp, parent, variant, 0, names.PHASE_SEEDS, 8.0, "0.001", png)
    paths = build_report(client, exp, parent, tmp_path / "out", attach=False, n_resamples=100)
    md = paths["md"].read_text()
    assert "## Image metrics" not in md and "Warning" not in md and "**Provenance**" not in md
    assert "image_metrics_ring8" not in paths and "samples_ring8_a" in paths
