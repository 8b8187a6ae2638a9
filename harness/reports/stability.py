"""The stability report: which variant trains stably and covers all the modes, over seeds.

Reads one study invocation (an MLflow parent run and its child runs, one per trial) and
writes, into an output folder:

* ``report.csv`` -- one row per child run (:func:`harness.reports.load.load_runs`): tags,
  MLflow status, the final value of every metric and every param. Failed runs are kept,
  with NaN metrics.
* ``report.md`` and ``report.html`` -- the same content: a title, then every registered
  section in order (:mod:`harness.reports.sections`, the verdict first; docs/report.md).
  The HTML page is self-contained: images are inline ``data:`` URIs, the CSS is inline.
* the sections' figures: ``coverage_<dataset>.png``, ``losses_<dataset>.png``,
  ``d_outputs_<dataset>.png``, ``image_metrics_<dataset>.png``, ``budget_<dataset>.png``,
  ``samples_<dataset>_<variant>[_<grid>].png``, ``orbits_<dataset>.png``,
  ``timeline_<dataset>.png``, ``sensitivity_<dataset>.png``.

:func:`build_report` also attaches the folder to the parent run under ``report/``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness import names
from harness.reports import sections as _builtin  # noqa: F401 -- registers the sections
from harness.reports.context import ReportContext
from harness.reports.document import to_html, to_markdown
from harness.reports.find import latest_study_run
from harness.reports.load import load_runs, runs_frame, study_name
from harness.reports.section import sections
from harness.reports.sections.reproduction import load_published
from harness.reports.summary import TOTAL, early_stopping, summarize
from harness.reports.terminal import summary_table
from harness.tracking import check_artifact_access, retry

# callers (harness.cli, harness.study) and tests import these from here
__all__ = ["TOTAL", "build_report", "early_stopping", "latest_study_run", "load_runs",
           "runs_frame", "summarize", "summary_table"]


def build_report(client, experiment_id: str, parent_run_id: str, out_dir: Path,
                 attach: bool = True, *, n_resamples: int = 2000, seed: int = 0,
                 runs: list | None = None, frame: pd.DataFrame | None = None,
                 sources: list[tuple[str, str]] | None = None, pooled: bool = False) -> dict:
    """Write report.md, report.html, report.csv and the PNG figures into ``out_dir``.

    Returns ``{"dir": out_dir, "md": ..., "html": ..., "csv": ..., "<png stem>": ...}``: every
    value a Path, one entry per PNG a section wrote. With ``attach`` the folder is logged to
    the parent run under the artifact path ``report``. ``n_resamples`` and ``seed`` drive the
    bootstrap intervals and pairwise tests. ``runs`` are the parent's child runs when the
    caller has already fetched them. ``frame`` and ``sources`` are a merged report's runs and
    ``[(study, parent run id)]`` (:mod:`harness.reports.merge`; the first study's ids are
    ``experiment_id``/``parent_run_id``); ``pooled``: its variants pool their runs across the
    studies (``merged_frame(pool=True)``). The study's metric and direction are the parent
    run's ``metric`` and ``mode`` params.
    """
    parent = retry(client.get_run, parent_run_id)
    # a report on a machine that does not see the study's shared artifact folder would
    # show no samples without saying why
    check_artifact_access(client.tracking_uri, parent.info.artifact_uri)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if frame is not None:
        df = frame
    else:
        df = (load_runs(client, experiment_id, parent_run_id) if runs is None
              else runs_frame(runs))
    study = (" + ".join(name for name, _ in sources) if sources
             else study_name(client, experiment_id, parent))
    if not sources:
        published = load_published(client, parent_run_id)
    else:  # pooled runs of one preset share its block; studies merged apart have no one block
        blocks = [load_published(client, p) for _, p in sources] if pooled else [None]
        published = blocks[0] if all(b == blocks[0] for b in blocks) else None
    ctx = ReportContext(df=df, out_dir=out_dir, client=client,
                        metric=parent.data.params.get("metric") or None,
                        mode=parent.data.params.get("mode") or None,
                        n_resamples=n_resamples, seed=seed, study=study,
                        sources=list(sources or []), pooled=pooled, published=published)

    csv_path = out_dir / "report.csv"
    df.to_csv(csv_path, index=False)

    title = f"Stability report: {study}"
    _heading(ctx, title, parent, experiment_id, parent_run_id)
    images: list[Path] = []
    for _, section in sections():
        images += section().write(ctx)

    md_path = out_dir / "report.md"
    md_path.write_text(to_markdown(ctx.doc), encoding="utf-8")
    html_path = out_dir / "report.html"
    html_path.write_text(to_html(ctx.doc, title, out_dir), encoding="utf-8")

    if attach:
        retry(client.log_artifacts, parent_run_id, str(out_dir), "report")
    return {"dir": out_dir, "md": md_path, "html": html_path, "csv": csv_path,
            **{p.stem: p for p in images}}


def _heading(ctx: ReportContext, title: str, parent, experiment_id: str,
             parent_run_id: str) -> None:
    """The title, where the runs come from, and how many there are per phase."""
    df, doc = ctx.df, ctx.doc
    doc.h(1, title)
    now = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    started = parent.info.start_time
    started_text = (datetime.fromtimestamp(started / 1000, timezone.utc).astimezone()
                    .strftime("%Y-%m-%d %H:%M %Z") if started else "unknown")
    origin = (f"Study `{ctx.study}`, parent run `{parent_run_id}` (experiment "
              f"`{experiment_id}`), started {started_text}" if not ctx.sources else
              ("Studies pooled: " if ctx.pooled else "Studies merged: ")
              + ", ".join(f"`{n}` (parent run `{p}`)" for n, p in ctx.sources)
              + ("; a variant's runs from all of them are one group (same settings, distinct "
                 "seeds)" if ctx.pooled else
                 "; a variant name used by more than one of them is prefixed with its study"))
    doc.p(f"{origin}; report written {now}. "
          f"{len(df)} trial runs: "
          + ", ".join(f"{(df[names.TAG_PHASE] == ph).sum()} {ph}"
                      for ph in sorted(df[names.TAG_PHASE].dropna().unique())) + ".")
