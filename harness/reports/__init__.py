"""Reports of a study read from MLflow: which variant trains stably and covers the modes.

:func:`build_report` writes the report the ``harness report`` command and ``harness study``
write (``report.md`` / ``report.html`` / ``report.csv`` and figures, attached to the study's
parent run); :func:`terminal_summary` is what ``harness study`` prints. The report is an
ordered list of sections (:class:`Section`, :func:`register_section`; docs/report.md).
"""

from harness.reports.context import ReportContext
from harness.reports.section import Section, register_section
from harness.reports.stability import (
    build_report,
    latest_study_run,
    load_runs,
    summarize,
    summary_table,
)
from harness.reports.terminal import terminal_summary

__all__ = ["ReportContext", "Section", "build_report", "latest_study_run", "load_runs",
           "register_section", "summarize", "summary_table", "terminal_summary"]
