"""A study's per-variant summary and verdict, computed once however many outputs show them.

``harness study`` writes the report and then prints the terminal summary, from the same runs:
both read :func:`analyse`, which keeps its last result, so the bootstrap intervals and the
pairwise tests behind them run once. The result is keyed on the frame's content and the
settings, so a caller never gets the analysis of other runs.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

import pandas as pd

from harness.reports.summary import summarize
from harness.reports.verdict import DatasetVerdict, verdict


@dataclass(frozen=True)
class Analysis:
    """:func:`harness.reports.summary.summarize` and :func:`harness.reports.verdict.verdict`
    of one per-run frame, the verdict computed from that summary."""

    summary: pd.DataFrame
    verdicts: list[DatasetVerdict]


_lock = threading.Lock()
_last: tuple[tuple, Analysis] | None = None


def fingerprint(df: pd.DataFrame) -> str:
    """A digest of ``df``'s columns, dtypes and values: equal for two frames read from the
    same runs."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in df.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return digest.hexdigest()


def analyse(df: pd.DataFrame, metric: str | None = None, mode: str | None = None, *,
            n_resamples: int = 2000, seed: int = 0) -> Analysis:
    """The summary (sorted by ``metric`` in direction ``mode``) and the verdict of ``df``;
    the previous call's result when ``df`` holds the same runs and the settings match."""
    global _last
    key = (fingerprint(df), metric, mode, n_resamples, seed)
    with _lock:
        if _last is not None and _last[0] == key:
            return _last[1]
    summary = summarize(df, n_resamples=n_resamples, seed=seed, metric=metric, mode=mode)
    result = Analysis(summary, verdict(df, metric, mode, n_resamples=n_resamples, seed=seed,
                                       summary=summary))
    with _lock:
        _last = (key, result)
    return result
