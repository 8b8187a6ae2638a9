"""The image metrics of image datasets (FID, IS, KID, precision/recall, cond/code accuracy,
the translation metrics), summarised per dataset, provenance group and variant.

Image metrics are only ranked between runs with the same provenance tags (extractor,
reference images, sample counts, classifier, data split: :mod:`harness.reports.provenance`):
:func:`summarize_images` numbers the groups, :func:`best_variants` ranks within one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness import names
from harness.reports import display, provenance, stats
from harness.reports.runs import comparison_rows, measured_mask
from harness.reports.summary import finite

#: the metrics whose bootstrap interval the image table shows
IMAGE_CI_METRICS = (names.FID, names.TRANSLATION_ACCURACY)
#: summary columns of FID's real-data floor (the ``fidelity`` metric's ``fid_floor``): its
#: mean over the runs, and how many runs scored a FID below their own floor
FLOOR_MEAN = f"{names.FID_FLOOR}_mean"
BELOW_FLOOR = f"{names.FID}_below_floor"


def image_metrics_present(df: pd.DataFrame) -> list[str]:
    """The image metrics (:func:`harness.reports.display.image_metrics`) some run of ``df``
    logged, in table order."""
    return [m for m in display.image_metrics() if m in df and finite(df[m]).size]


def image_rows(df: pd.DataFrame) -> dict[str, list[tuple[str, str, int, pd.DataFrame]]]:
    """dataset -> [(variant, phase, n, runs)]: per compared pair, its measured runs
    (:func:`harness.reports.runs.measured_mask`) that reported at least one image metric,
    with the pair's phase and run count (failed and running runs included); only pairs and
    datasets that have such runs."""
    metrics = image_metrics_present(df)
    out: dict[str, list] = {}
    if not metrics:
        return out
    for (variant, dataset), (phase, rows) in comparison_rows(df).items():
        done = rows[measured_mask(rows)]
        scored = done[metrics].replace([np.inf, -np.inf], np.nan).notna().any(axis=1)
        if scored.any():
            out.setdefault(dataset, []).append((variant, phase, len(rows), done[scored]))
    return {d: sorted(v, key=lambda t: t[0]) for d, v in sorted(out.items())}


def image_groups(pairs: list[tuple[str, str, int, pd.DataFrame]]
                 ) -> list[provenance.ProvenanceGroup]:
    """The provenance groups of one dataset's image-metric runs (variants in sorted order)."""
    return provenance.provenance_groups(pd.concat([rows for *_, rows in pairs]))


def summarize_images(df: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per dataset, provenance group and variant: the image metrics of the compared runs.

    The runs are the ones :func:`harness.reports.summary.summarize` compares (the seeds phase,
    or every run of a pair without one) that did not fail and reported at least one image
    metric. Per dataset they are split by their provenance tags
    (:func:`harness.reports.provenance.provenance_groups`), the groups numbered 1, 2, ... in the
    order of their first run (variants sorted): numbers of different groups were not made the
    same way and must not be ranked against each other.

    Columns: ``variant``, ``dataset``, ``phase``, ``provenance_group``, ``n`` (every run of the
    pair, failed ones included), ``n_group`` (the runs this row summarises), then for each image
    metric any run logged (in :func:`harness.reports.display.image_metrics` order)
    ``<m>_mean``, ``<m>_std`` (ddof=1, NaN for one value) and ``<m>_n`` (runs that reported
    it), and for :data:`IMAGE_CI_METRICS` also ``<m>_ci_low`` / ``<m>_ci_high`` (percentile
    bootstrap 95% interval of the mean, :func:`harness.reports.stats.bootstrap_ci` with
    ``n_resamples`` and ``seed``; NaN for fewer than 2 values). Where runs logged FID's
    real-data floor (``fid_floor``) also :data:`FLOOR_MEAN` (its mean) and :data:`BELOW_FLOOR`
    (the runs whose final FID is below their own floor: possible memorisation). Sorted by
    dataset, provenance group, variant. Empty when no run logged an image metric.
    """
    metrics = image_metrics_present(df)
    floors = bool(names.FID in metrics and names.FID_FLOOR in df
                  and finite(df[names.FID_FLOOR]).size)
    columns = [names.TAG_VARIANT, names.TAG_DATASET, names.TAG_PHASE, "provenance_group", "n",
               "n_group"]
    for metric in metrics:
        columns += [f"{metric}_mean", f"{metric}_std", f"{metric}_n"]
        if metric in IMAGE_CI_METRICS:
            columns += [f"{metric}_ci_low", f"{metric}_ci_high"]
        if metric == names.FID and floors:
            columns += [FLOOR_MEAN, BELOW_FLOOR]
    records = []
    for dataset, pairs in image_rows(df).items():
        info = {variant: (phase, n) for variant, phase, n, _ in pairs}
        for k, group in enumerate(image_groups(pairs), start=1):
            rows = group.rows
            for variant, vrows in rows.groupby(rows[names.TAG_VARIANT].fillna("?"), sort=True):
                phase, n = info[variant]
                rec: dict[str, Any] = {names.TAG_VARIANT: variant, names.TAG_DATASET: dataset,
                                       names.TAG_PHASE: phase, "provenance_group": k, "n": n,
                                       "n_group": len(vrows)}
                for metric in metrics:
                    vals = finite(vrows[metric])
                    rec[f"{metric}_mean"] = float(vals.mean()) if len(vals) else np.nan
                    rec[f"{metric}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else np.nan
                    rec[f"{metric}_n"] = len(vals)
                    if metric in IMAGE_CI_METRICS:
                        low, high = stats.bootstrap_ci(vals.to_numpy(dtype=float),
                                                       n_resamples=n_resamples, seed=seed)
                        rec[f"{metric}_ci_low"], rec[f"{metric}_ci_high"] = low, high
                    if metric == names.FID and floors:
                        floor = finite(vrows[names.FID_FLOOR])
                        rec[FLOOR_MEAN] = float(floor.mean()) if len(floor) else np.nan
                        rec[BELOW_FLOOR] = int((vrows[names.FID] < vrows[names.FID_FLOOR]).sum())
                records.append(rec)
    return pd.DataFrame(records, columns=columns)


def best_variants(summary: pd.DataFrame, metric: str) -> list[str]:
    """The variants of ``summary`` (rows of one provenance group of :func:`summarize_images`)
    with the best mean of ``metric`` -- lowest or highest by its direction
    (:func:`harness.reports.display.direction`); every tied one. Empty when fewer than 2
    variants reported it: nothing to rank."""
    col = f"{metric}_mean"
    if col not in summary:
        return []
    rows = summary[summary[col].notna()]
    if rows[names.TAG_VARIANT].nunique() < 2:
        return []
    best = rows[col].max() if display.higher_is_better(metric) else rows[col].min()
    return sorted(str(v) for v in rows.loc[np.isclose(rows[col], best, rtol=0, atol=1e-12),
                                           names.TAG_VARIANT])


def image_decimals(metric: str, summary: pd.DataFrame) -> int:
    """:func:`harness.reports.display.decimals`, but at most 2 where the means reach 1 or
    more (KID on classifier features is in the thousands, not a fraction)."""
    digits = display.decimals(metric)
    means = finite(summary[f"{metric}_mean"]) if f"{metric}_mean" in summary else []
    return min(digits, 2) if len(means) and float(np.abs(means).max()) >= 1 else digits
