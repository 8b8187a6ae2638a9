"""``harness report STUDY1 STUDY2``: one report over several studies of one store."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import names
from harness.errors import ConfigError
from tests.test_report import _client, _make_run, _png


@pytest.fixture(scope="module")
def two_studies(tmp_path_factory, request):
    """Study ``first`` (alpha 8,7 / beta 3,4 modes) and ``second`` (alpha 2,2 / gamma 6,6),
    both on ring8, and ``lonely`` on no shared dataset. For ``--pool``: ``third`` ran first's
    settings on seeds 2, 3 (alpha 6,5 / beta 5,6), ``fourth`` alpha at another lr_d on 4, 5."""
    tmp = tmp_path_factory.mktemp("merge")
    client = _client(tmp, getattr(request.config, "cache", None))
    png = _png(tmp / names.ARTIFACT_FINAL_SAMPLES)
    parents = {}
    layout = {"first": (0, "0.001", {"alpha": (8.0, 7.0), "beta": (3.0, 4.0)}),
              "second": (0, "0.001", {"alpha": (2.0, 2.0), "gamma": (6.0, 6.0)}),
              "third": (2, "0.001", {"alpha": (6.0, 5.0), "beta": (5.0, 6.0)}),
              "fourth": (4, "0.002", {"alpha": (1.0, 1.0)})}
    for study, (seed0, lr_d, variants) in layout.items():
        exp = client.create_experiment(study, artifact_location=(tmp / study).as_uri())
        parent = client.create_run(exp, tags={names.TAG_KIND: "study",
                                              names.TAG_STUDY: study}).info.run_id
        for variant, modes in variants.items():
            for seed, m in enumerate(modes, start=seed0):
                rid = _make_run(client, exp, parent, variant, seed, names.PHASE_SEEDS, m,
                                lr_d, png)
                client.set_tag(rid, names.TAG_STUDY, study)
        client.set_terminated(parent, "FINISHED")
        parents[study] = (exp, parent)
    exp = client.create_experiment("lonely", artifact_location=(tmp / "lonely").as_uri())
    parent = client.create_run(exp, tags={names.TAG_KIND: "study",
                                          names.TAG_STUDY: "lonely"}).info.run_id
    rid = _make_run(client, exp, parent, "delta", 0, names.PHASE_SEEDS, 5.0, "0.001", png)
    client.set_tag(rid, names.TAG_DATASET, "grid25")
    client.set_terminated(parent, "FINISHED")
    parents["lonely"] = (exp, parent)
    return client, parents, tmp


def test_merged_frame_keeps_every_run_and_separates_shared_variant_names(two_studies):
    from harness.reports.merge import SOURCE, merged_frame

    client, parents, _ = two_studies
    frame, sources = merged_frame(client, [parents["first"], parents["second"]])
    assert [s for s, _ in sources] == ["first", "second"]
    assert len(frame) == 8
    assert sorted(frame[names.TAG_VARIANT].unique()) == [
        "beta", "first/alpha", "gamma", "second/alpha"]
    alpha1 = frame[frame[names.TAG_VARIANT] == "first/alpha"]
    assert set(alpha1[SOURCE]) == {"first"} and sorted(alpha1[names.MODES_COVERED]) == [7.0, 8.0]


def test_studies_without_a_shared_dataset_are_refused(two_studies):
    from harness.reports.merge import merged_frame

    client, parents, _ = two_studies
    with pytest.raises(ConfigError, match="lonely shares no dataset .*lonely: grid25"):
        merged_frame(client, [parents["first"], parents["lonely"]])
    with pytest.raises(ConfigError, match="named twice"):
        merged_frame(client, [parents["first"], parents["first"]])


def test_merged_report_compares_the_variants_of_both(two_studies, tmp_path):
    from harness.reports.merge import merged_frame
    from harness.reports.stability import build_report

    client, parents, _ = two_studies
    frame, sources = merged_frame(client, [parents["first"], parents["second"]])
    paths = build_report(client, *parents["first"], tmp_path, attach=False, frame=frame,
                         sources=sources)
    md = paths["md"].read_text()
    assert md.startswith("# Stability report: first + second")
    assert f"`second` (parent run `{parents['second'][1]}`)" in md
    for variant in ("first/alpha", "second/alpha", "beta", "gamma"):
        assert f"| {variant} | ring8 |" in md
    # the two studies' alphas are compared as two variants: 7.5 vs 2.0 modes
    assert "| first/alpha | second/alpha | 2 / 2 | 7.50 | 2.00 | 5.50 [5.00, 6.00] |" in md
    # nothing was attached to either study's parent run
    for exp, parent in (parents["first"], parents["second"]):
        assert "report" not in {a.path for a in client.list_artifacts(parent)}


def test_cli_merges_two_studies_and_refuses_a_lonely_one(two_studies, tmp_path):
    _client, _parents, store = two_studies
    uri = f"sqlite:///{store / 'mlflow.db'}"
    base = [sys.executable, "-m", "harness.cli", "report", "--tracking-uri", uri]
    ok = subprocess.run([*base, "first", "second"], cwd=tmp_path, capture_output=True,
                        text=True, timeout=300, check=False)
    assert ok.returncode == 0, ok.stderr
    out = tmp_path / "runs" / "reports" / "merged-first+second"
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    bad = subprocess.run([*base, "first", "lonely"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, check=False)
    assert bad.returncode == 2 and "shares no dataset" in bad.stderr
    assert not (tmp_path / "runs" / "reports" / "merged-first+lonely").exists()


def test_cli_bootstrap_settings_reach_the_report(two_studies, tmp_path, capsys):
    from harness.cli import main

    _, _, store = two_studies
    uri = f"sqlite:///{store / 'mlflow.db'}"
    assert main(["report", "first", "--tracking-uri", uri, "--out", str(tmp_path / "r"),
                 "--resamples", "500", "--bootstrap-seed", "3"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    assert "500 times" in md and "seeded with 3" in md
    assert main(["report", "first", "--tracking-uri", uri, "--out", str(tmp_path / "bad"),
                 "--resamples", "50"]) == 2
    assert "--resamples must be >= 100" in capsys.readouterr().err
    assert main(["report", "first", "--tracking-uri", uri, "--out", str(tmp_path / "bad"),
                 "--bootstrap-seed", "-1"]) == 2
    assert "--bootstrap-seed must be >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_pooled_studies_are_one_group_per_variant(two_studies):
    from harness.reports.merge import SOURCE, merged_frame

    client, parents, _ = two_studies
    frame, sources = merged_frame(client, [parents["first"], parents["third"]], pool=True)
    assert [s for s, _ in sources] == ["first", "third"]
    assert sorted(frame[names.TAG_VARIANT].unique()) == ["alpha", "beta"]
    alpha = frame[frame[names.TAG_VARIANT] == "alpha"]
    assert sorted(alpha[names.TAG_SEED]) == [0, 1, 2, 3] and set(alpha[SOURCE]) == {"first", "third"}
    assert sorted(alpha[names.MODES_COVERED]) == [5.0, 6.0, 7.0, 8.0]


def test_pooling_refuses_other_settings_and_a_seed_run_twice(two_studies):
    from harness.reports.merge import merged_frame

    client, parents, _ = two_studies
    with pytest.raises(ConfigError, match=r"--pool: alpha/ring8 trained different settings in "
                       r"first and fourth \(lr_d: 0.001 vs 0.002\)"):
        merged_frame(client, [parents["first"], parents["fourth"]], pool=True)
    with pytest.raises(ConfigError, match=r"--pool: alpha/ring8 ran seed 0 in both first \(ok\) "
                       r"and second \(collapsed\), so the pooled runs would count it twice"):
        merged_frame(client, [parents["first"], parents["second"]], pool=True)


def test_pooling_ignores_where_the_files_are(two_studies):
    """A dataset's ``root`` (a Path parameter) differs between machines holding the same files."""
    from harness.reports.merge import merged_frame

    client, _, store = two_studies
    png = _png(store / "parts.png")
    parts = []
    for i, root in enumerate(("/home/a/mnist", "/srv/b/mnist")):
        exp = client.create_experiment(f"part{i}", artifact_location=(store / f"p{i}").as_uri())
        parent = client.create_run(exp, tags={names.TAG_KIND: "study"}).info.run_id
        rid = _make_run(client, exp, parent, "alpha", i, names.PHASE_SEEDS, 7.0, "0.001", png)
        client.log_param(rid, "dataset.root", root)
        parts.append((exp, parent))
    frame, _ = merged_frame(client, parts, pool=True)
    assert sorted(frame[names.TAG_SEED]) == [0, 1]
    client.log_param(rid, "model.z_dim", "2")  # a setting, not a place: refused
    with pytest.raises(ConfigError, match=r"model.z_dim: \(none\) vs 2"):
        merged_frame(client, parts, pool=True)


def test_cli_pools_and_a_pooled_preset_keeps_its_published_block(two_studies, tmp_path):
    import json

    from harness.tracking import log_bytes
    from tests.test_reproduction import _published

    client, parents, store = two_studies
    uri = f"sqlite:///{store / 'mlflow.db'}"
    base = [sys.executable, "-m", "harness.cli", "report", "--tracking-uri", uri]

    def report(*args):
        return subprocess.run([*base, *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300, check=False)

    bad = report("first", "fourth", "--pool")
    assert bad.returncode == 2 and "trained different settings" in bad.stderr
    assert not (tmp_path / "runs").exists()
    one = report("first", "--pool")
    assert one.returncode == 2 and "--pool pools a variant's runs across studies" in one.stderr
    pub = _published({"alpha": {"ring8": {names.MODES_COVERED: [6.5, 0.5]}}}, seeds=4,
                     budget={"steps": 200})
    for study in ("first", "third"):
        log_bytes(client, parents[study][1], {names.ARTIFACT_PUBLISHED: json.dumps(pub).encode()})
    ok = report("first", "third", "--pool")
    assert ok.returncode == 0, ok.stderr
    md = (tmp_path / "runs" / "reports" / "pooled-first+third" / "report.md").read_text()
    assert "Studies pooled: `first`" in md
    assert "| alpha | ring8 | seeds | 4 | 6.50 " in md  # one group of 4 seeds
    part = md.split("\n## Reproduction", 1)[1].split("\n## ", 1)[0]
    assert "| alpha | `modes_covered` | 6.50 ± 0.50 |" in part and "| 4 |" in part
