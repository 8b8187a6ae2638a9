"""``## Reproduction``: a study's ``published:`` numbers (:class:`harness.config.PublishedSpec`,
recorded on the parent run as :data:`harness.names.ARTIFACT_PUBLISHED`) against what its
seeds-phase runs measured. A study without a published block gets no section.

The rules, each checkable from the table's own columns:

* **Measured**: per variant, dataset and metric, the seeds-phase runs that ended (a run
  still RUNNING is in flight: its values are not its results; the section counts them),
  did not fail and reported the metric: their mean, the 95 % percentile-bootstrap interval of the mean
  ``[low, high]`` (:func:`harness.reports.stats.bootstrap_ci`, as the summary computes it)
  and their number ``n``.
* **The published error as a 95 % half-width** ``h``: ``standard_error`` -> ``h = 1.96·se``;
  ``std`` (over the published ``seeds`` trials) -> ``se = std / √seeds``, ``h = 1.96·se``;
  ``ci95`` -> ``h`` is the published half-width itself.
* **Row "reproduced"** when the published mean lies in ``[low − h, high + h]``, the measured
  interval widened by the published error; **"not reproduced"** otherwise; **"too few runs"**
  when ``n < 2`` (no interval).
* **The published ordering** of a metric on a dataset: the pairs of variants whose published
  95 % intervals (mean ± h) do not overlap, the higher published mean first; pairs the
  paper's own errors do not separate are no part of it. It **holds** when every such pair
  is measured in the same order and distinguishable: Holm-adjusted Mann–Whitney p < 0.05
  over every pair of the dataset's variants on that metric
  (:func:`harness.reports.stats.pairwise`, as the pairwise section computes it).
* **Table verdict** (a metric on a dataset): "reproduced" when every row is; else
  "too few runs" when no row has an interval; else "ordering reproduced" when the
  published ordering holds (and has at least one pair); else "not reproduced".
* **"at chance"**: a variant the report's verdict finds at chance on the dataset (its
  deciding value, e.g. the HQ fraction, does not clearly beat a generator that ignores the
  data: docs/chance.md) reproduces nothing there. Its rows say "at chance" instead of
  "reproduced"/"not reproduced", no published ordering pair holds through it (noise covers
  most modes: a coverage ranking at chance says nothing), and a table whose rows are all at
  chance says "at chance".
* **"different budget"** replaces the verdict of a row, and of its table, whose runs'
  protocol differs from the published one: a ``published.budget`` key whose value a run
  recorded differently (or did not record), or ``n`` other than the published ``seeds``
  (a pair without runs measured nothing: "too few runs"); "; at chance" is added where the
  rule above applies too. The differing keys are listed; the columns still show what the
  checks above found.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.reports import display, stats, tables
from harness.reports.context import ReportContext
from harness.reports.runs import measured_mask, unended_mask
from harness.reports.samples import no_progress_bars
from harness.reports.section import Section
from harness.reports.verdict import ALPHA
from harness.tracking import retry

Z95 = 1.96
REPRODUCED = "reproduced"
ORDERING = "ordering reproduced"
NOT_REPRODUCED = "not reproduced"
DIFFERENT_BUDGET = "different budget"
TOO_FEW = "too few runs"
AT_CHANCE = "at chance"


def half_width(error: float, kind: str, seeds: int) -> float:
    """The published ``±`` ``error`` of kind ``kind`` as a 95 % half-width (module docstring)."""
    if kind == "standard_error":
        return Z95 * error
    if kind == "std":
        return Z95 * error / math.sqrt(seeds)
    if kind == "ci95":
        return error
    raise ValueError(f"unknown published error kind {kind!r}; allowed: standard_error, std, ci95")


@dataclass
class Row:
    variant: str
    dataset: str
    metric: str
    published: float
    error: float
    h: float
    mean: float
    low: float
    high: float
    n: int
    inside: bool | None  # None: too few runs for an interval
    budget: dict[str, tuple[Any, list[Any]]]  # key -> (published, the runs' values)
    verdict: str = ""
    at_chance: bool = False


@dataclass
class Table:
    dataset: str
    metric: str
    rows: list[Row]
    #: (higher published, lower published, held, Holm p, why not held or "")
    order: list[tuple[str, str, bool, float, str]] = field(default_factory=list)
    verdict: str = ""

    @property
    def ordering_holds(self) -> bool:
        return bool(self.order) and all(ok for _, _, ok, _, _ in self.order)


def _same(published: Any, recorded: Any) -> bool:
    try:
        return math.isclose(float(published), float(recorded), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return str(published).lower() == str(recorded).lower()  # YAML true / MLflow "True"


def _budget_diff(runs: pd.DataFrame, budget: dict[str, Any], seeds: int, n: int
                 ) -> dict[str, tuple[Any, list[Any]]]:
    out: dict[str, tuple[Any, list[Any]]] = {}
    for key, value in budget.items():
        col = f"param.{key}" if f"param.{key}" in runs else key
        recorded = (list(dict.fromkeys(runs[col].dropna().tolist())) if col in runs else [])
        if not recorded or not all(_same(value, r) for r in recorded):
            out[key] = (value, recorded)
    if n != seeds:
        out["seeds"] = (seeds, [n])
    return out


def _with_budget(verdict: str, budget: bool, at_chance: bool) -> str:
    if budget:
        return DIFFERENT_BUDGET + (f"; {AT_CHANCE}" if at_chance else "")
    return verdict


def assess(df: pd.DataFrame, published: dict, n_resamples: int = 2000,
           seed: int = 0, at_chance: dict[str, set[str]] | None = None) -> list[Table]:
    """The rows and tables of the section (the rules of the module docstring), per dataset
    and metric in the order the published block lists them; ``at_chance``: dataset -> the
    variants the verdict finds at chance there."""
    at_chance = at_chance or {}
    kind, p_seeds, budget = published["error"], int(published["seeds"]), published.get("budget", {})
    runs = df[(df[names.TAG_PHASE] == names.PHASE_SEEDS) & measured_mask(df)] if len(df) else df
    order: dict[tuple[str, str], list[Row]] = {}
    for variant, per_ds in published["results"].items():
        for dataset, per_metric in per_ds.items():
            pair = runs[(runs[names.TAG_VARIANT] == variant) & (runs[names.TAG_DATASET] == dataset)]
            for metric, (mean_p, err) in per_metric.items():
                vals = (pair[metric].to_numpy(dtype=float) if metric in pair else np.array([]))
                vals = vals[np.isfinite(vals)]
                low, high = stats.bootstrap_ci(vals, n_resamples=n_resamples, seed=seed)
                h = half_width(float(err), kind, p_seeds)
                inside = None if math.isnan(low) else bool(low - h <= mean_p <= high + h)
                row = Row(variant, dataset, metric, float(mean_p), float(err), h,
                          float(vals.mean()) if len(vals) else math.nan, low, high, len(vals),
                          inside,
                          # a pair with no runs measured nothing, under no budget at all
                          _budget_diff(pair, budget, p_seeds, len(vals)) if len(pair) else {})
                row.at_chance = variant in at_chance.get(dataset, ()) and inside is not None
                row.verdict = _with_budget(
                    TOO_FEW if inside is None else AT_CHANCE if row.at_chance
                    else REPRODUCED if inside else NOT_REPRODUCED, bool(row.budget), row.at_chance)
                order.setdefault((dataset, metric), []).append(row)
    out = []
    for (dataset, metric), rows in order.items():
        table = Table(dataset, metric, rows)
        scored = runs[(runs[names.TAG_DATASET] == dataset)]
        scored = scored[np.isfinite(scored[metric].to_numpy(dtype=float))] if metric in scored \
            else scored.iloc[0:0]
        result = stats.pairwise(scored, metric, group_col=names.TAG_VARIANT,
                                n_resamples=n_resamples, seed=seed, alpha=ALPHA)
        for a, b in itertools.combinations(rows, 2):
            if abs(a.published - b.published) <= a.h + b.h:
                continue  # the paper's own errors do not separate them
            hi, lo = (a, b) if a.published > b.published else (b, a)
            match = result[((result["a"] == hi.variant) & (result["b"] == lo.variant))
                           | ((result["a"] == lo.variant) & (result["b"] == hi.variant))]
            chance = [v.variant for v in (hi, lo) if v.at_chance]
            if match.empty:
                table.order.append((hi.variant, lo.variant, False, math.nan, "not measured"))
                continue
            r = match.iloc[0]
            ok = bool(r["distinguishable"]) and hi.mean > lo.mean
            why = "; ".join(
                ([] if ok else ["other order" if hi.mean <= lo.mean else "not distinguishable"])
                + ([f"{' and '.join(chance)} at chance"] if chance else []))
            table.order.append((hi.variant, lo.variant, ok and not chance, float(r["p_holm"]), why))
        all_chance = all(r.at_chance for r in rows)
        verdict = (TOO_FEW if all(r.inside is None for r in rows)
                   else AT_CHANCE if all_chance
                   else REPRODUCED if all(r.inside and not r.at_chance for r in rows)
                   else ORDERING if table.ordering_holds else NOT_REPRODUCED)
        table.verdict = _with_budget(verdict, any(r.budget for r in rows), all_chance)
        out.append(table)
    return out


def load_published(client, parent_run_id: str) -> dict | None:
    """The parent run's published block, None when the study has none."""
    folder, name = names.ARTIFACT_PUBLISHED.rsplit("/", 1)
    listed = retry(client.list_artifacts, parent_run_id, folder)
    if not any(Path(f.path).name == name for f in listed):
        return None
    with tempfile.TemporaryDirectory() as tmp, no_progress_bars():
        local = retry(client.download_artifacts, parent_run_id, names.ARTIFACT_PUBLISHED, tmp)
        return json.loads(Path(local).read_text(encoding="utf-8"))


def _digits(row: Row) -> int:
    """The metric's decimals, more where the published error needs them (0.982 ± 0.002)."""
    digits = display.decimals(row.metric)
    if row.error > 0:
        digits = max(digits, -math.floor(math.log10(row.error)))
    return min(digits, 6)


def _budget_text(tables_: list[Table]) -> list[str]:
    keys: dict[str, tuple[Any, list[Any]]] = {}
    for t in tables_:
        for r in t.rows:
            for key, (pub, seen) in r.budget.items():
                prev = keys.setdefault(key, (pub, []))[1]
                prev += [s for s in seen if s not in prev]
    return [f"`{k}`: published {p}, runs {', '.join(map(str, seen)) or 'not recorded'}"
            for k, (p, seen) in keys.items()]


class Reproduction(Section):
    """Published vs measured, per row and per table, with the verdicts of the module
    docstring; nothing for a study without a published block."""

    def write(self, ctx: ReportContext) -> list[Path]:
        published = ctx.published
        if not published:
            return []
        doc = ctx.doc
        doc.h(2, "Reproduction")
        src = published["source"] + (f" ({published['url']})" if published.get("url") else "")
        kind, seeds = published["error"], published["seeds"]
        conversion = {"standard_error": "h = 1.96 · se",
                      "std": f"se = std / √{seeds}, h = 1.96 · se",
                      "ci95": "h = the published 95 % half-width"}[kind]
        doc.p(f"Published: {src}; {seeds} trials, ± is `{kind}` ({conversion}). A row is "
              "**reproduced** when the published mean lies in the measured 95 % bootstrap "
              "interval widened by h on each side. A table is **reproduced** when every row "
              "is, **ordering reproduced** when every pair of variants the published "
              "intervals (mean ± h) separate is measured in the same order with Holm-adjusted "
              "Mann–Whitney p < 0.05, else **not reproduced**; **at chance** where a variant "
              "does not clearly beat a generator that ignores the data (as in the summary): "
              "it reproduces nothing and no ordering holds through it; **different budget** "
              "when the runs' protocol differs from the published one.")
        chance = {v.dataset: set(v.at_chance) for v in ctx.verdicts}
        found = assess(ctx.df, published, ctx.n_resamples, ctx.seed, chance)
        df = ctx.df
        in_flight = (int(((df[names.TAG_PHASE] == names.PHASE_SEEDS)
                          & unended_mask(df)).sum()) if len(df) else 0)
        if in_flight:
            doc.p(f"**{in_flight} seeds-phase run(s) still RUNNING** are not measured: their "
                  "values are not their results (the study is in flight, or a process died "
                  "without ending them: see Failures).")
        diffs = _budget_text(found)
        if diffs:
            doc.p("**Different budget**: the runs differ from the published protocol in "
                  + "; ".join(diffs) + ". The checks below say what this budget reached, "
                  "not whether the published numbers reproduce.")
        for dataset in dict.fromkeys(t.dataset for t in found):
            doc.h(3, f"Dataset `{dataset}`")
            rows = []
            for t in (t for t in found if t.dataset == dataset):
                for r in t.rows:
                    d = _digits(r)
                    ci = ("—" if r.inside is None else
                          f"[{tables.fmt_num(r.low, d)}, {tables.fmt_num(r.high, d)}]")
                    published = f"{tables.fmt_num(r.published, d)} ± {tables.fmt_num(r.error, d)}"
                    rows.append([r.variant, f"`{r.metric}`", published,
                                 tables.fmt_num(r.h, d), tables.fmt_num(r.mean, d), ci, str(r.n),
                                 "—" if r.inside is None else ("yes" if r.inside else "no"),
                                 r.verdict])
            doc.table(["variant", "metric", "published", "h", "measured mean", "95% CI", "n",
                       "published in CI ± h", "verdict"], rows)
            summary = []
            for t in (t for t in found if t.dataset == dataset):
                order = "; ".join(f"{a} > {b} ({'held' if ok else 'not held: ' + why}, Holm p "
                                  f"{tables.fmt_p(p)})" for a, b, ok, p, why in t.order)
                inside = sum(bool(r.inside) for r in t.rows)
                summary.append([f"`{t.metric}`", f"{inside} of {len(t.rows)}",
                                order or "none separated by the published errors",
                                "yes" if t.ordering_holds else "no", t.verdict])
            doc.table(["metric", "rows in CI ± h", "published ordering", "ordering holds",
                       "verdict"], summary)
        return []
