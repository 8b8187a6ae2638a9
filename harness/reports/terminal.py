"""What ``harness study`` prints when it ends: the per-variant summary table and the verdict."""

from __future__ import annotations

import pandas as pd

from harness import names
from harness.reports import display, headline, tables
from harness.reports.analysis import analyse
from harness.reports.verdict import terminal_text


def summary_table(summary_df: pd.DataFrame, metric: str | None = None) -> str:
    """A short plain-text table for the terminal: variant, dataset, n, the study's metric
    ``metric`` (``search.metric``; its own column unless it is a coverage one, which is then
    marked), modes covered ("7.7 ± 0.6 / 8 (noise 6.6)") and hq fraction beside their chance
    means, whether the result is at chance, the metrics that judge the dataset where runs
    report them (FID with its real-data floor, cond/code accuracy, translation metrics:
    :mod:`harness.reports.headline`), stability score and status counts ("ok 3, collapsed 1")."""
    if summary_df is None or summary_df.empty:
        return "(no runs)"
    lead, judges = headline.columns(summary_df, metric)
    shown = [m for m in (names.MODES_COVERED, names.HQ_FRACTION) if m == metric
             or (f"{m}_mean" in summary_df and summary_df[f"{m}_mean"].notna().any())]
    if metric == names.MODE_KL:
        shown.append(metric)
    stability = metric == names.STABILITY_SCORE or summary_df[
        f"{names.STABILITY_SCORE}_mean"].notna().any()

    def head(m: str) -> str:
        text = display.headed(m)
        return headline.search_header(m, text) if m == metric else text

    headers = ["variant", "dataset", "n", *([head(lead)] if lead else []),
               *(head(m) for m in shown), "chance", *(head(m) for m in judges),
               *([head(names.STABILITY_SCORE)] if stability else []), "status"]
    rows = []
    for _, row in summary_df.iterrows():
        rows.append([
            str(row[names.TAG_VARIANT]), str(row[names.TAG_DATASET]), str(int(row["n"])),
            *([headline.value_text(row, lead)] if lead else []),
            *(headline.value_text(row, m, display.terminal_decimals(m)) for m in shown),
            headline.chance_text(row),
            *(headline.value_text(row, m) for m in judges),
            *([headline.value_text(row, names.STABILITY_SCORE)] if stability else []),
            tables.status_cell(row),
        ])
    return tables.text_table(headers, rows)


def terminal_summary(df: pd.DataFrame, metric: str | None = None, mode: str | None = None,
                     n_resamples: int = 2000, seed: int = 0) -> str:
    """The summary table (:func:`summary_table`, with the study's metric and chance levels)
    and the verdict (:func:`harness.reports.verdict.terminal_text`) of the per-run frame
    ``df``; ``metric`` and ``mode`` are the study's ``search.metric`` and direction."""
    result = analyse(df, metric, mode, n_resamples=n_resamples, seed=seed)
    return summary_table(result.summary, metric) + "\n\n" + terminal_text(result.verdicts)
