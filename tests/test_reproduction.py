"""The ``published:`` block (validation) and the report's Reproduction section (its rules on
constructed runs with known answers, and the block's way from the parent run to the report)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import yaml

from harness import names
from harness.config import PROJECT_ROOT, load_study, parse_study
from harness.errors import ConfigError
from harness.reports import ReportContext
from harness.reports.load import runs_frame
from harness.reports.sections import reproduction as rp
from harness.resolve import resolve

PRESET = PROJECT_ROOT / "studies" / "reproduce" / "pacgan-2d.yaml"
PARAMS = {"steps": "2000", "lr_d": "0.0001", "model.preset": "pacgan"}


def _run(i, variant, metrics, *, dataset="ring8", params=None, phase=names.PHASE_SEEDS,
         status=names.STATUS_OK, run_status="FINISHED"):
    tags = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset, names.TAG_PHASE: phase,
            names.TAG_STATUS: status, names.TAG_SEED: str(i)}
    info = SimpleNamespace(run_id=f"{variant}-{dataset}-{phase}-{i}", status=run_status,
                           start_time=1_700_000_000_000 + i, run_name=f"{variant}-{i}")
    return SimpleNamespace(info=info, data=SimpleNamespace(
        tags=tags, params=dict(PARAMS if params is None else params), metrics=dict(metrics)))


def _frame(values: dict[str, list[float]], metric=names.MODES_COVERED, **kw):
    return runs_frame([_run(i, v, {metric: x}, **kw)
                       for v, xs in values.items() for i, x in enumerate(xs)])


# a: 7.0 .. 8.0 (mean 7.5), b: 5.0 .. 6.0 (mean 5.5), six seeds each: every a above every b,
# so Mann-Whitney p = 2 / C(12, 6) = 0.0022 (one pair: Holm changes nothing)
AB = {"a": [7.0, 7.2, 7.4, 7.6, 7.8, 8.0], "b": [5.0, 5.2, 5.4, 5.6, 5.8, 6.0]}


def _published(results, *, seeds=6, error="standard_error", budget=None):
    return {"source": "Someone 2020, Table 1", "url": None, "seeds": seeds, "error": error,
            "budget": {"steps": 2000, "model.preset": "pacgan"} if budget is None else budget,
            "results": results}


def _one(pub_a, pub_b, metric=names.MODES_COVERED):
    return {"a": {"ring8": {metric: pub_a}}, "b": {"ring8": {metric: pub_b}}}


# --- the rules ---------------------------------------------------------------------------

def test_the_published_error_becomes_a_95_percent_half_width():
    assert rp.half_width(0.1, "standard_error", 10) == pytest.approx(0.196)
    assert rp.half_width(0.5, "std", 25) == pytest.approx(0.196)  # se = 0.5 / 5
    assert rp.half_width(0.3, "ci95", 10) == 0.3
    with pytest.raises(ValueError, match="allowed: standard_error, std, ci95"):
        rp.half_width(0.1, "iqr", 10)


@pytest.mark.parametrize("error, err", [("standard_error", 0.1), ("std", 0.5)])
def test_a_row_is_reproduced_exactly_when_the_published_mean_is_in_the_widened_interval(
        error, err):
    # a constant sample has the interval (7, 7); h = 0.196 either way (std: over 25 trials)
    df = _frame({"a": [7.0] * 25})
    for published, verdict in ((7.19, rp.REPRODUCED), (6.81, rp.REPRODUCED),
                               (7.2, rp.NOT_REPRODUCED), (6.8, rp.NOT_REPRODUCED)):
        pub = _published({"a": {"ring8": {names.MODES_COVERED: [published, err]}}},
                         seeds=25, error=error)
        (table,) = rp.assess(df, pub, n_resamples=200)
        (row,) = table.rows
        assert (row.low, row.high, row.n) == (7.0, 7.0, 25)
        assert row.verdict == verdict, published
        assert table.verdict == verdict  # one row: no ordering to fall back on


def test_a_value_missed_but_an_ordering_held_is_ordering_reproduced():
    # a's 7.6 is inside its interval; b's 6.3 lies above b's (about [5.2, 5.8]) + 0.196
    (table,) = rp.assess(_frame(AB), _published(_one([7.6, 0.1], [6.3, 0.1])), n_resamples=500)
    assert [r.verdict for r in table.rows] == [rp.REPRODUCED, rp.NOT_REPRODUCED]
    ((hi, lo, ok, p, why),) = table.order
    assert (hi, lo, ok, why) == ("a", "b", True, "") and p == pytest.approx(2 / 924)
    assert table.verdict == rp.ORDERING


def test_an_ordering_measured_the_other_way_round_is_not_reproduced():
    (table,) = rp.assess(_frame(AB), _published(_one([5.5, 0.1], [7.5, 0.1])), n_resamples=500)
    assert [r.verdict for r in table.rows] == [rp.NOT_REPRODUCED, rp.NOT_REPRODUCED]
    assert table.order == [("b", "a", False, pytest.approx(2 / 924), "other order")]
    assert table.verdict == rp.NOT_REPRODUCED


def test_pairs_the_published_errors_do_not_separate_are_no_ordering():
    # 7.9 vs 7.8 +- 0.1 se: the published intervals overlap, so nothing to order
    (table,) = rp.assess(_frame(AB), _published(_one([7.9, 0.1], [7.8, 0.1])), n_resamples=500)
    assert table.order == [] and not table.ordering_holds
    assert table.verdict == rp.NOT_REPRODUCED  # b's 7.8 is far above b's runs


def test_an_ordering_needs_distinguishable_runs():
    # three seeds each cannot reach p < 0.05 (smallest p: 0.1), whatever the means
    df = _frame({"a": AB["a"][:3], "b": AB["b"][:3]})
    (table,) = rp.assess(df, _published(_one([9.5, 0.1], [5.2, 0.1]), seeds=3), n_resamples=200)
    ((hi, lo, ok, p, why),) = table.order
    assert (hi, lo, ok, why) == ("a", "b", False, "not distinguishable")
    assert p == pytest.approx(0.1)
    assert table.verdict == rp.NOT_REPRODUCED


def test_a_variant_at_chance_reproduces_nothing_and_no_ordering_holds_through_it():
    # the same runs and numbers as the held ordering above, but b is at chance on ring8
    pub = _published(_one([7.6, 0.1], [6.3, 0.1]))
    (table,) = rp.assess(_frame(AB), pub, n_resamples=500, at_chance={"ring8": {"b"}})
    assert [r.verdict for r in table.rows] == [rp.REPRODUCED, rp.AT_CHANCE]
    ((hi, lo, ok, _, why),) = table.order
    assert (hi, lo, ok, why) == ("a", "b", False, "b at chance")
    assert table.verdict == rp.NOT_REPRODUCED
    # a row inside its interval is not "reproduced" at chance either
    (table,) = rp.assess(_frame(AB), _published(_one([7.5, 0.1], [5.5, 0.1])), n_resamples=500,
                         at_chance={"ring8": {"a", "b"}})
    assert all(r.inside for r in table.rows)
    assert [r.verdict for r in table.rows] == [rp.AT_CHANCE] * 2
    assert table.verdict == rp.AT_CHANCE
    # at chance on another dataset changes nothing here; with a budget difference both show
    (table,) = rp.assess(_frame(AB), _published(_one([7.5, 0.1], [5.5, 0.1]), seeds=10),
                         n_resamples=500, at_chance={"grid25": {"a"}, "ring8": {"b"}})
    assert [r.verdict for r in table.rows] == [rp.DIFFERENT_BUDGET,
                                               f"{rp.DIFFERENT_BUDGET}; {rp.AT_CHANCE}"]
    assert table.verdict == rp.DIFFERENT_BUDGET


def test_a_different_budget_or_seed_count_replaces_the_verdict_and_names_the_keys():
    pub = _published(_one([7.5, 0.1], [5.5, 0.1]), budget={"steps": 400000,
                                                           "model.preset": "pacgan",
                                                           "beta1": 0.8})
    (table,) = rp.assess(_frame(AB), pub, n_resamples=500)
    for row in table.rows:
        assert row.inside  # the check itself still says what this budget reached
        assert row.budget == {"steps": (400000, [2000]), "beta1": (0.8, [])}
        assert row.verdict == rp.DIFFERENT_BUDGET
    assert table.verdict == rp.DIFFERENT_BUDGET
    (table,) = rp.assess(_frame(AB), _published(_one([7.5, 0.1], [5.5, 0.1]), seeds=10),
                         n_resamples=500)
    assert table.rows[0].budget == {"seeds": (10, [6])}
    assert table.verdict == rp.DIFFERENT_BUDGET
    # the same budget and seeds: every row reproduced
    (table,) = rp.assess(_frame(AB), _published(_one([7.5, 0.1], [5.5, 0.1])), n_resamples=500)
    assert [r.verdict for r in table.rows] == [rp.REPRODUCED] * 2
    assert table.verdict == rp.REPRODUCED


def test_failed_and_search_runs_are_not_measured():
    runs = [_run(i, "a", {names.MODES_COVERED: x}) for i, x in enumerate(AB["a"])]
    runs += [_run(9, "a", {names.MODES_COVERED: 0.0}, status=names.STATUS_FAILED,
                  run_status="FAILED"),
             _run(10, "a", {names.MODES_COVERED: 0.0}, phase=names.PHASE_SEARCH)]
    pub = _published({"a": {"ring8": {names.MODES_COVERED: [7.5, 0.1]}}})
    (table,) = rp.assess(runs_frame(runs), pub, n_resamples=200)
    assert table.rows[0].n == 6 and table.rows[0].mean == pytest.approx(7.5)
    one = runs_frame(runs[:1])
    (table,) = rp.assess(one, _published({"a": {"ring8": {names.MODES_COVERED: [7.0, 0.1]}}},
                                         seeds=1), n_resamples=200)
    assert table.rows[0].verdict == rp.TOO_FEW and table.verdict == rp.TOO_FEW


def test_runs_still_running_are_not_measured_and_the_section_says_so(tmp_path):
    runs = [_run(i, "a", {names.MODES_COVERED: x}) for i, x in enumerate(AB["a"])]
    runs += [_run(20 + i, "a", {names.MODES_COVERED: 1.0}, run_status="RUNNING")
             for i in range(2)]
    pub = _published({"a": {"ring8": {names.MODES_COVERED: [7.5, 0.1]}}})
    (table,) = rp.assess(runs_frame(runs), pub, n_resamples=200)
    assert table.rows[0].n == 6 and table.rows[0].mean == pytest.approx(7.5)
    assert table.rows[0].verdict == rp.REPRODUCED
    md = _write(runs_frame(runs), pub, tmp_path)
    assert "**2 seeds-phase run(s) still RUNNING** are not measured" in md
    assert "still RUNNING" not in _write(runs_frame(runs[:6]), pub, tmp_path / "done")


def _write(df, published, tmp_path):
    ctx = ReportContext(df=df, out_dir=tmp_path, n_resamples=200, published=published)
    assert rp.Reproduction().write(ctx) == []
    from harness.reports.document import to_markdown
    return to_markdown(ctx.doc)


def test_the_section_shows_rows_tables_and_the_budget_difference(tmp_path):
    pub = _published(_one([7.6, 0.1], [6.3, 0.1]), budget={"steps": 400000})
    md = _write(_frame(AB), pub, tmp_path)
    assert md.startswith("## Reproduction")
    assert "Someone 2020, Table 1; 6 trials, ± is `standard_error` (h = 1.96 · se)" in md
    assert "**Different budget**: the runs differ from the published protocol in `steps`: " \
           "published 400000, runs 2000." in md
    assert "| a | `modes_covered` | 7.60 ± 0.10 | 0.20 | 7.50 |" in md
    assert "| `modes_covered` | 1 of 2 | a > b (held, Holm p 0.002) | yes | different budget |" \
        in md
    ctx = ReportContext(df=_frame(AB), out_dir=tmp_path, n_resamples=200)
    assert rp.Reproduction().write(ctx) == [] and ctx.doc.blocks == []  # no block: not a word


def test_the_section_reads_chance_from_the_reports_verdict(tmp_path):
    from tests.test_verdict import RING8_CHANCE

    # b's HQ fraction (0.01) is below the chance bound (0.03): at chance, like noise
    runs = runs_frame([_run(i, v, {**RING8_CHANCE, names.MODES_COVERED: x,
                                   names.HQ_FRACTION: 0.9 if v == "a" else 0.01,
                                   names.N_MODES: 8.0})
                       for v, xs in AB.items() for i, x in enumerate(xs)])
    md = _write(runs, _published(_one([7.6, 0.1], [6.3, 0.1])), tmp_path)
    assert "| b | `modes_covered` | 6.30 ± 0.10 | 0.20 | 5.50 |" in md
    assert md.count("| at chance |") == 1  # b's row; a's is reproduced
    assert "| `modes_covered` | 1 of 2 | a > b (not held: b at chance, Holm p 0.002) | no | " \
           "not reproduced |" in md


# --- validation ----------------------------------------------------------------------------

BASE = {"name": "s", "datasets": ["ring8", "grid25"], "seeds": 2,
        "search": {"trials": 1, "space": {"lr_d": {"type": "choice", "values": [1.0e-3]}}},
        "variants": [{"name": "gan", "model": "mlp", "loss": "non_saturating"},
                     {"name": "ringonly", "model": "mlp", "loss": "non_saturating",
                      "datasets": ["ring8"]}],
        "published": {"source": "x", "seeds": 3, "error": "std",
                      "budget": {"steps": 2000},
                      "results": {"gan": {"ring8": {"modes_covered": [7, 1]}}}}}


def _error(change) -> str:
    raw = copy.deepcopy(BASE)
    change(raw["published"])
    with pytest.raises(ConfigError) as err:
        resolve(parse_study(raw))
    return str(err.value)


def test_a_valid_block_resolves_and_a_study_without_one_is_unchanged():
    assert len(resolve(parse_study(copy.deepcopy(BASE)))) == 3
    raw = copy.deepcopy(BASE)
    del raw["published"]
    assert parse_study(raw).published is None and len(resolve(parse_study(raw))) == 3


def test_unknown_names_in_the_block_are_refused_with_the_choices():
    assert _error(lambda p: p["results"].update(wgan={})) == (
        "study: published.results.wgan: unknown variant 'wgan'; variants of the study: "
        "gan, ringonly")
    assert _error(lambda p: p["results"].update(ringonly={"grid25": {}})) == (
        "study: published.results.ringonly.grid25: variant 'ringonly' does not train on "
        "dataset 'grid25'; its datasets: ring8")
    msg = _error(lambda p: p["results"]["gan"]["ring8"].update(fid=[1, 0]))
    assert msg.startswith("study: published.results.gan.ring8.fid: no metric of variant 'gan' "
                          "on dataset 'ring8' computes 'fid'; choices here: modes_covered, "
                          "hq_fraction, mode_kl")
    assert msg.endswith("stability_score")
    msg = _error(lambda p: p["budget"].update(epochs=400))
    assert msg.startswith("study: published.budget.epochs: no run of the published variants "
                          "records 'epochs', so it could not be compared; choices: ")
    assert "steps" in msg and "model.preset" in msg


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(error="sem"), ("published.error: unknown error kind 'sem'; allowed: "
                                       "standard_error, std, ci95")),
    (lambda p: p["results"]["gan"]["ring8"].update(hq_fraction=[0.9]),
     ("published.results: gan.ring8.hq_fraction: expected [mean, error] with a finite mean "
      "and an error >= 0, got [0.9]")),
    (lambda p: p["results"]["gan"]["ring8"].update(hq_fraction=[0.9, -0.1]),
     "expected [mean, error]"),
    (lambda p: p.update(seeds=0), "published.seeds: Input should be greater than or equal to 1"),
    (lambda p: p.update(sources="y"), ("published.sources: unknown key; allowed keys here: "
                                       "source, url, seeds, error, budget, results")),
    (lambda p: p.pop("error"), "published.error: required key is missing"),
    (lambda p: p["results"]["gan"]["ring8"].update(hq_fraction=[98.2, 0.2]),
     ("published.results.gan.ring8.hq_fraction: published mean 98.2 is outside the values "
      "'hq_fraction' takes (0 to 1); a fraction stays a fraction (98.2 % is 0.982)")),
    (lambda p: p["results"]["gan"]["ring8"].update(mode_kl=[-0.1, 0.02]),
     "published mean -0.1 is outside the values 'mode_kl' takes (at least 0)"),
])
def test_a_malformed_block_is_refused_naming_the_key(change, message):
    assert message in _error(change)


def test_the_cli_exits_2_on_a_bad_block_before_starting_anything(tmp_path):
    raw = copy.deepcopy(BASE)
    raw["published"]["results"]["gan"]["ring8"]["accuracy"] = [1, 0]
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(raw))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "study", "bad.yaml"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert "published.results.gan.ring8.accuracy: no metric of variant 'gan'" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


# --- the preset, and the block's way to the report ------------------------------------------

def test_the_pacgan_preset_validates_and_reports_a_different_budget(tmp_path):
    spec = load_study(PRESET)
    tiny = spec.model_copy(update={"train": spec.train.model_copy(
        update={"steps": 50, "eval_every": 50, "log_every": 5})})
    plans = resolve(tiny, source=PRESET.name, base_dir=PRESET.parent)
    assert sorted(p.key for p in plans) == sorted(
        f"{v}/{d}" for v in ("gan", "pacgan2", "pacgan3", "pacgan4") for d in ("ring8", "grid25"))
    base = {p.key: p.base for p in plans}
    assert base["gan/ring8"].model.params["preset"] == "pacgan"
    assert base["pacgan3/grid25"].tricks[0].params == {"m": 3}
    assert base["gan/ring8"].train.beta1 == 0.8 and base["gan/ring8"].train.lr_g == 1e-4
    pub = tiny.published.model_dump(mode="json")
    assert pub["results"]["gan"]["ring8"]["hq_fraction"] == [0.982, 0.002]
    assert pub["seeds"] == 10 and pub["error"] == "standard_error"
    # five seeds of gan and pacgan2 on ring8 as a 50-step run records its params
    runs = []
    for variant, modes in (("gan", 6.0), ("pacgan2", 8.0)):
        params = {k: str(v) for k, v in base[f"{variant}/ring8"].flat_params().items()}
        runs += [_run(i, variant, {names.MODES_COVERED: modes, names.HQ_FRACTION: 0.9,
                                   names.MODE_KL: 0.1}, params=params) for i in range(5)]
    md = _write(runs_frame(runs), pub, tmp_path)
    assert ("`steps`: published 400000, runs 50; `seeds`: published 10, runs 5." in md)
    assert "| gan | `hq_fraction` | 0.982 ± 0.002 |" in md
    # pacgan3 and pacgan4 have no runs here: nothing measured, under no budget
    assert ("| pacgan3 | `modes_covered` | 7.80 ± 0.10 | 0.20 | — | — | 0 | — | "
            "too few runs |") in md
    assert ("| `modes_covered` | 2 of 4 | pacgan2 > gan (held, Holm p 0.008); pacgan3 > gan "
            "(not held: not measured, Holm p —); pacgan4 > gan (not held: not measured, Holm p —) | no "
            "| different budget |"
            in md)
    assert "| `modes_covered` | 0 of 4 | pacgan2 > gan (not held: not measured, Holm p —)" in md
    # rows: 2 variants x 3 metrics on ring8, all 12 on grid25; and grid25's 3 tables
    assert md.count("| too few runs |") == 6 + 12 + 3
    assert "`lr_d`" not in md.split("Different budget")[1].split("\n")[0]  # same lr: not listed


def test_the_published_block_goes_from_the_parent_run_into_the_report(tmp_path, request, capfd):
    from harness.reports.stability import build_report
    from harness.tracking import log_bytes
    from tests.test_report import _make_run, _png, study_store

    client, _, exp, parent = study_store(tmp_path, getattr(request.config, "cache", None), "rp")
    png = _png(tmp_path / names.ARTIFACT_FINAL_SAMPLES)
    for variant, modes in (("alpha", 8.0), ("beta", 6.0)):
        for seed in range(2):
            _make_run(client, exp, parent, variant, seed, names.PHASE_SEEDS, modes, "0.001", png)
    assert rp.load_published(client, parent) is None
    md = build_report(client, exp, parent, tmp_path / "none", attach=False,
                      n_resamples=100)["md"].read_text()
    assert "Reproduction" not in md
    pub = _published({"alpha": {"ring8": {names.MODES_COVERED: [8.0, 0.1]}}}, seeds=2,
                     budget={"steps": 200})
    log_bytes(client, parent, {names.ARTIFACT_PUBLISHED: json.dumps(pub).encode()})
    capfd.readouterr()
    assert rp.load_published(client, parent) == pub
    assert "Downloading artifacts" not in capfd.readouterr().err  # MLflow's progress bar
    md = build_report(client, exp, parent, tmp_path / "with", attach=False,
                      n_resamples=100)["md"].read_text()
    assert md.index("\n## Summary") < md.index("\n## Reproduction") < md.index("\n## How to")
    part = md.split("\n## Reproduction", 1)[1].split("\n## ", 1)[0]
    assert "| alpha | `modes_covered` | 8.00 ± 0.10 | 0.20 | 8.00 | [8.00, 8.00] | 2 | yes | " \
           "reproduced |" in part


def test_a_one_variant_copy_of_the_preset_runs_and_its_report_has_the_section(tmp_path):
    from harness.study import run_study

    raw = yaml.safe_load(PRESET.read_text())
    raw.update(name="pacgan-tiny", seeds=2, datasets=["ring8"],
               variants=[v for v in raw["variants"] if v["name"] == "gan"])
    raw["train"].update(steps=50, eval_every=50, log_every=10, eval_samples=500)
    raw["published"]["results"] = {"gan": {"ring8": raw["published"]["results"]["gan"]["ring8"]}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    outcome = run_study(path, workdir=tmp_path, max_concurrent=2)
    md = outcome.report["md"].read_text()
    part = md.split("\n## Reproduction", 1)[1].split("\n## ", 1)[0]
    assert "Lin et al. 2018, PacGAN, Table 1" in part
    # steps, seeds and the evaluation samples differ from the paper's; the rest is the same
    assert ("**Different budget**: the runs differ from the published protocol in `steps`: "
            "published 400000, runs 50; `eval_samples`: published 2500, runs 500; `seeds`: "
            "published 10, runs 2.") in part
    assert "| gan | `modes_covered` | 6.30 ± 0.50 |" in part
    assert part.count("| 2 |") == 3  # three metrics, two seeds each


STACKED = PROJECT_ROOT / "studies" / "reproduce"


@pytest.mark.parametrize("name", ["stacked-mnist", "stacked-mnist-cpu"])
def test_the_stacked_mnist_presets_carry_table_2_and_the_veegan_protocol(name):
    path = STACKED / f"{name}.yaml"
    spec = load_study(path)
    plans = resolve(spec, source=path.name, base_dir=path.parent)
    base = {p.key: p.base for p in plans}
    assert sorted(base) == [f"{v}/stacked" for v in
                            ("dcgan", "pacdcgan2", "pacdcgan3", "pacdcgan4")]
    for m in (2, 3, 4):  # PacDCGANm: 64 discriminator examples of m samples each
        cfg = base[f"pacdcgan{m}/stacked"]
        assert cfg.tricks[0].params == {"m": m} and cfg.train.batch_size == 64 * m
    cfg = base["dcgan/stacked"]
    assert (cfg.train.batch_size, cfg.train.lr_d, cfg.train.lr_g, cfg.train.beta1) == (
        64, 2e-4, 2e-4, 0.5)
    assert cfg.model.params["z_dim"] == 100
    assert cfg.metrics[0].params["final_samples"] == 26000
    pub = spec.published.model_dump(mode="json")
    assert pub["results"]["dcgan"]["stacked"] == {"modes_covered": [78.9, 6.46],
                                                  "mode_kl": [4.50, 0.127]}
    assert pub["budget"]["steps"] == 100000 and pub["budget"]["dataset.n_train"] == 128000
    # the GPU preset is the published protocol; its CPU twin differs exactly where it says
    recorded = cfg.flat_params()
    differ = sorted(k for k, v in pub["budget"].items()
                    if not rp._same(v, recorded.get(k, recorded.get(k.split(".", 1)[-1]))))
    if name == "stacked-mnist":
        assert differ == [] and spec.seeds == pub["seeds"] == 10
    else:
        assert differ == ["dataset.n_train", "model.ndf", "model.ngf", "steps"]
        assert spec.seeds == 3


def test_the_gpu_command_refuses_a_missing_preset_or_gpu_before_writing(tmp_path):
    script = PROJECT_ROOT / "benchmarks" / "reproduce_gpu.sh"
    out = tmp_path / "out"
    r = subprocess.run(["bash", str(script)], check=False, capture_output=True, text=True)
    assert r.returncode == 2 and "stacked-mnist" in r.stderr and "pacgan-2d" in r.stderr
    r = subprocess.run(["bash", str(script), "nope", str(out)], check=False,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no preset nope" in r.stderr and "stacked-mnist-cpu" in r.stderr
    fake_torch = tmp_path / "py"
    fake_torch.mkdir()
    (fake_torch / "torch.py").write_text("class cuda:\n    is_available = staticmethod(lambda: False)\n")
    env = {**os.environ, "PYTHONPATH": str(fake_torch)}
    r = subprocess.run(["bash", str(script), "stacked-mnist", str(out)], check=False,
                       capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and "no CUDA GPU" in r.stderr and "stacked-mnist-cpu" in r.stderr
    assert not out.exists()


def test_the_grid25_preset_is_the_pacgan_preset_at_its_stated_budget():
    """pacgan-2d-grid25 differs from pacgan-2d only in what its header says: grid25 alone,
    60,000 steps evaluated every 2,000 with history points every 50, 5 seeds, and the
    grid25 rows of Table 1."""
    full = yaml.safe_load(PRESET.read_text())
    grid = yaml.safe_load((PRESET.parent / "pacgan-2d-grid25.yaml").read_text())
    assert grid["datasets"] == ["grid25"] and grid["seeds"] == 5
    assert grid["train"] == {**full["train"], "steps": 60000, "eval_every": 2000,
                             "log_every": 50}
    assert grid["variants"] == full["variants"] and grid["search"] == full["search"]
    assert grid["published"] == {**full["published"], "results": {
        v: {"grid25": rows["grid25"]} for v, rows in full["published"]["results"].items()}}
    spec = load_study(PRESET.parent / "pacgan-2d-grid25.yaml")
    plans = resolve(spec, source="pacgan-2d-grid25.yaml", base_dir=PRESET.parent)
    assert [p.key for p in plans] == [f"{v}/grid25" for v in ("gan", "pacgan2", "pacgan3",
                                                              "pacgan4")]
