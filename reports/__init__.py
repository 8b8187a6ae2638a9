"""Report builders that read a study from MLflow and compare stability and mode collapse.

:mod:`reports.stability` is the one the ``harness report`` command uses: per-run table,
per-variant summary over seeds, figures, and ``report.md`` / ``report.html`` / ``report.csv``
attached to the study's parent run.
"""

from reports.stability import (
    build_report,
    latest_study_run,
    load_runs,
    summarize,
    summary_table,
)

__all__ = ["build_report", "latest_study_run", "load_runs", "summarize", "summary_table"]
