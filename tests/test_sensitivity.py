"""The sensitivity section (harness.reports.sensitivity, harness.reports.sections.sensitivity)
on hand-made per-run frames with known answers: fake MLflow runs go through
``harness.reports.load.runs_frame``, so the frame has the report's shape (string params made
numeric, NaN metrics for failed runs) without a store."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from harness import names
from harness.reports import ReportContext, tables
from harness.reports import sensitivity as sens
from harness.reports.document import to_html, to_markdown
from harness.reports.load import runs_frame
from harness.reports.sections.sensitivity import Sensitivity

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_TRIALS = 20
N_FAILED = 2  # failed search trials of alpha (no metric)


def _run(i: int, variant: str, *, dataset: str = "ring8", phase: str = names.PHASE_SEARCH,
         metrics: dict | None = None, params: dict | None = None,
         status: str = names.STATUS_OK, run_status: str = "FINISHED") -> SimpleNamespace:
    tags = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset, names.TAG_PHASE: phase,
            names.TAG_STATUS: status, names.TAG_SEED: str(i),
            names.TAG_RUN_NAME: f"{variant}-{phase}-{i}"}
    base = {"lr_d": 2e-4, "lr_g": 2e-4, "beta1": 0.5, "beta2": 0.999, "d_steps": 1,
            "batch_size": 64, "model.hidden": 128}
    base.update(params or {})
    info = SimpleNamespace(run_id=f"{variant}-{dataset}-{phase}-{i}",
                           status=run_status, start_time=1_700_000_000_000 + i,
                           run_name=tags[names.TAG_RUN_NAME])
    data = SimpleNamespace(tags=tags, params={k: str(v) for k, v in base.items()},
                           metrics=dict(metrics or {}))
    return SimpleNamespace(info=info, data=data)


def _modes(lr: float) -> float:
    """0 .. 8 modes, a step function of log10(lr) over 1e-4 .. 1e-2."""
    return float(round(8 * (np.log10(lr) + 4) / 2))


def _known_runs() -> list:
    """alpha: modes depend on lr_d only (lr_g is noise); beta: on lr_g only; both ~log-
    uniform over 1e-4 .. 1e-2, 20 trials each; alpha also has 2 failed trials and seeds-phase
    runs (which the section must ignore)."""
    rng = np.random.default_rng(0)
    runs = []
    for variant, driver in (("alpha", "lr_d"), ("beta", "lr_g")):
        for i in range(N_TRIALS):
            lrs = {"lr_d": 10 ** rng.uniform(-4, -2), "lr_g": 10 ** rng.uniform(-4, -2)}
            runs.append(_run(i, variant, params=lrs,
                             metrics={names.MODES_COVERED: _modes(lrs[driver]),
                                      names.N_MODES: 8.0}))
    for i in range(N_FAILED):
        runs.append(_run(100 + i, "alpha", status=names.STATUS_FAILED, run_status="FAILED",
                         params={"lr_d": 1e-3 * (i + 1), "lr_g": 3e-4}))
    for i in range(3):
        runs.append(_run(200 + i, "alpha", phase=names.PHASE_SEEDS, params={"lr_d": 5e-3},
                         metrics={names.MODES_COVERED: 8.0}))
    return runs


@pytest.fixture(scope="module")
def known() -> pd.DataFrame:
    return runs_frame(_known_runs())


@pytest.fixture(scope="module")
def known_importances(known) -> pd.DataFrame:
    return sens.param_importances(known, names.MODES_COVERED)


def _imp(table: pd.DataFrame, variant: str, param: str) -> pd.Series:
    row = table[(table[names.TAG_VARIANT] == variant) & (table["param"] == param)]
    assert len(row) == 1, (variant, param, table)
    return row.iloc[0]


def _tables(doc) -> list[tuple]:
    return [b for b in doc.blocks if b[0] == "table"]


def _paragraphs(doc) -> list[str]:
    return [b[1] for b in doc.blocks if b[0] == "p"]


def _section(df: pd.DataFrame, out_dir, metric: str | None = None) -> tuple[list, ReportContext]:
    """The section written for ``df``: (paths written, its context, whose ``doc`` it filled)."""
    ctx = ReportContext(df=df, out_dir=out_dir, metric=metric)
    return Sensitivity().write(ctx), ctx


def test_importance_finds_the_parameter_the_metric_depends_on(known_importances):
    alpha_d = _imp(known_importances, "alpha", "lr_d")
    alpha_g = _imp(known_importances, "alpha", "lr_g")
    assert alpha_d["importance"] > alpha_g["importance"]
    assert alpha_d["importance"] > 0.7
    beta_d = _imp(known_importances, "beta", "lr_d")
    beta_g = _imp(known_importances, "beta", "lr_g")
    assert beta_g["importance"] > beta_d["importance"]
    assert beta_g["importance"] > 0.7
    # the importances of a variant sum to 1; the failed trials and seeds runs are not used
    for variant in ("alpha", "beta"):
        rows = known_importances[known_importances[names.TAG_VARIANT] == variant]
        assert rows["importance"].sum() == pytest.approx(1.0)
        assert set(rows["n"]) == {N_TRIALS}
    # only the hyperparameters that vary are searched (beta1, d_steps, ... are constant)
    assert list(dict.fromkeys(known_importances["param"])) == ["lr_d", "lr_g"]
    assert alpha_d["cell"] == f"{alpha_d['importance']:.2f}"


def test_section_writes_a_png_a_heading_and_a_row_per_variant(known, known_importances,
                                                              tmp_path):
    written, ctx = _section(known, tmp_path)
    doc = ctx.doc
    png = tmp_path / "sensitivity_ring8.png"
    assert written == [png]
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert ("h", 2, "Sensitivity") in doc.blocks
    assert ("img", png.name, "sensitivity ring8") in doc.blocks
    (table,) = _tables(doc)
    headers, rows = table[1], table[2]
    assert headers == ["variant", "trials used", "lr_d", "lr_g"]
    assert [r[0] for r in rows] == ["alpha", "beta"]
    assert [r[1] for r in rows] == [str(N_TRIALS), str(N_TRIALS)]
    assert rows[0][2] == _imp(known_importances, "alpha", "lr_d")["cell"]
    # the failed trials do not vanish: the caption counts them
    caption = next(p for p in _paragraphs(doc) if p.startswith(f"`{names.MODES_COVERED}` "
                                                               "against"))
    assert f"(x): alpha {N_FAILED}" in caption
    assert "log x axis for `lr_d`, `lr_g`" in caption
    # the blocks render (markdown and the self-contained html)
    assert "## Sensitivity" in to_markdown(doc)
    assert "data:image/png;base64," in to_html(doc, "t", tmp_path)


def test_constant_variant_too_few_trials_and_no_search_rows(tmp_path):
    rng = np.random.default_rng(1)
    runs = []
    for i in range(5):  # gamma: one configuration, five seeds
        runs.append(_run(i, "gamma", metrics={names.MODES_COVERED: float(i)}))
    for i in range(2):  # delta: two trials, lr_d varies
        runs.append(_run(i, "delta", params={"lr_d": 10 ** rng.uniform(-4, -2)},
                         metrics={names.MODES_COVERED: float(i)}))
    for i in range(4):  # eps: lr_d varies, every trial reaches 8 modes
        runs.append(_run(i, "eps", params={"lr_d": 10 ** rng.uniform(-4, -2)},
                         metrics={names.MODES_COVERED: 8.0}))
    # a pruned trial is drawn but not used: delta still has fewer than 3
    runs.append(_run(9, "delta", status=names.STATUS_PRUNED, params={"lr_d": 5e-3},
                     metrics={names.MODES_COVERED: 1.0}))
    df = runs_frame(runs)
    written, ctx = _section(df, tmp_path, names.MODES_COVERED)
    doc = ctx.doc
    assert written == [tmp_path / "sensitivity_ring8.png"]
    (table,) = _tables(doc)
    assert table[1] == ["variant", "trials used", "lr_d"]
    assert table[2] == [["delta", "2", sens.TOO_FEW],
                        ["eps", "4", sens.METRIC_CONSTANT],
                        ["gamma", "5", sens.NOT_SEARCHED]]
    assert sens.TOO_FEW == "n < 3" and sens.NOT_SEARCHED == tables.DASH
    assert "hollow" in next(p for p in _paragraphs(doc) if "against each" in p)

    # no search rows (a single run and a seeds phase): nothing appended, nothing written
    seeds_only = runs_frame([_run(i, "alpha", phase=names.PHASE_SEEDS,
                                     params={"lr_d": 1e-4 * (i + 1)},
                                     metrics={names.MODES_COVERED: 8.0}) for i in range(3)]
                               + [_run(7, "alpha", phase=names.PHASE_SINGLE)])
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    written, ctx = _section(seeds_only, empty_dir)
    assert written == [] and ctx.doc.blocks == []
    assert list(empty_dir.iterdir()) == []
    # search rows where nothing varies: nothing appended either
    written, ctx = _section(runs_frame(runs[:5]), empty_dir)
    assert written == [] and ctx.doc.blocks == []


def test_importances_are_deterministic(known, known_importances, tmp_path):
    again = sens.param_importances(known, names.MODES_COVERED)
    pd.testing.assert_frame_equal(again, known_importances)
    docs = []
    for _ in range(2):
        _, ctx = _section(known, tmp_path)
        docs.append(_tables(ctx.doc))
    assert docs[0] == docs[1]


def test_default_metric_and_axis_rule(tmp_path):
    # an image study: modes_covered is NaN everywhere (a core column), FID is the metric
    rng = np.random.default_rng(2)
    runs = []
    for i in range(6):
        beta1 = float(rng.choice([0.0, 0.5, 0.9]))
        runs.append(_run(i, "dcgan", dataset="mnist", params={"beta1": beta1,
                                                             "loss.kind": ["a", "b"][i % 2]},
                         metrics={names.FID: 100.0 - 50 * beta1 + i % 2}))
    df = runs_frame(runs)
    assert sens.default_metric(sens.search_rows(df)) == names.FID
    written, ctx = _section(df, tmp_path)
    doc = ctx.doc
    assert written == [tmp_path / "sensitivity_mnist.png"]
    (table,) = _tables(doc)
    assert table[1] == ["variant", "trials used", "beta1", "loss.kind"]
    assert all(c not in (sens.TOO_FEW, sens.NOT_SEARCHED) for c in table[2][0][2:])
    assert not any("log x axis" in p for p in _paragraphs(doc))
    # the log-axis rule: all > 0 and max / min >= 10
    assert sens.log_scale(pd.Series([1e-4, 5e-4, 1e-3]))
    assert not sens.log_scale(pd.Series([1e-3, 5e-3]))
    assert not sens.log_scale(pd.Series([0.0, 1.0, 100.0]))
    assert not sens.log_scale(pd.Series(["1", "100"]))
