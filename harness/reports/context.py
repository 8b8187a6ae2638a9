"""What every section of the report reads: :class:`ReportContext`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from harness import names
from harness.reports import images, runs
from harness.reports.analysis import Analysis, analyse
from harness.reports.curves import PLOT_HISTORIES
from harness.reports.document import Document
from harness.reports.figures import figure_block, variant_colours
from harness.reports.load import fetch_histories
from harness.reports.verdict import DatasetVerdict


@dataclass(eq=False)
class ReportContext:
    """One report being written: the study's runs, the settings, and the document.

    A section appends its blocks to :attr:`doc` and writes its figures into :attr:`out_dir`.
    The derived tables (:attr:`summary`, :attr:`pairs`, ...) are computed on first use and
    shared by every section; a test may set one to a value of its own before a section
    reads it.
    """

    #: the per-run frame (:func:`harness.reports.load.runs_frame`)
    df: pd.DataFrame
    #: the folder the report's files go to
    out_dir: Path
    doc: Document = field(default_factory=Document)
    #: an ``MlflowClient`` for histories and artifacts; None: a section draws no history
    #: and shows no samples
    client: Any = None
    #: the study's ``search.metric`` and direction (``max`` / ``min``); None when unknown
    metric: str | None = None
    mode: str | None = None
    #: bootstrap resamples and seed of every interval and pairwise test
    n_resamples: int = 2000
    seed: int = 0
    #: the study's name, and ``[(study, parent run id)]`` of a merged report (else empty)
    study: str = ""
    sources: list[tuple[str, str]] = field(default_factory=list)
    #: a merged report whose variants pool their runs across ``sources`` (``--pool``)
    pooled: bool = False
    #: the study's ``published:`` block as recorded on its parent run (JSON of
    #: :class:`harness.config.PublishedSpec`); None: the study has none
    published: dict | None = None

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)

    @cached_property
    def analysis(self) -> Analysis:
        return analyse(self.df, self.metric, self.mode, n_resamples=self.n_resamples,
                       seed=self.seed)

    @property
    def summary(self) -> pd.DataFrame:
        """:func:`harness.reports.summary.summarize`, sorted by the study's metric."""
        return self.analysis.summary

    @property
    def verdicts(self) -> list[DatasetVerdict]:
        return self.analysis.verdicts

    @cached_property
    def image_summary(self) -> pd.DataFrame:
        """:func:`harness.reports.images.summarize_images`; empty without image metrics."""
        return images.summarize_images(self.df, n_resamples=self.n_resamples, seed=self.seed)

    @cached_property
    def pairs(self) -> dict[tuple[str, str], tuple[str, pd.DataFrame]]:
        """The compared runs: :func:`harness.reports.runs.comparison_rows`."""
        return runs.comparison_rows(self.df)

    @cached_property
    def conflicts(self) -> dict[str, dict[str, dict[str, list[str]]]]:
        """dataset -> the provenance tags its compared runs differ in
        (:func:`harness.reports.runs.comparison_conflicts`)."""
        return runs.comparison_conflicts(self.df)

    @cached_property
    def colours(self) -> dict[str, Any]:
        """One colour per variant, the same in every figure."""
        return variant_colours(v for v, _ in self.pairs)

    @cached_property
    def histories(self) -> dict[tuple[str, str], pd.Series]:
        """``{(run_id, key): step-indexed Series}`` of the compared runs' curves
        (:data:`harness.reports.curves.PLOT_HISTORIES`); empty without a client."""
        if self.client is None or not self.pairs:
            return {}
        compared = pd.concat([rows for _, rows in self.pairs.values()])
        return fetch_histories(self.client, compared, PLOT_HISTORIES)

    def datasets(self) -> list[str]:
        """The datasets of the compared runs, sorted (``?`` for runs without one)."""
        return sorted({d for _, d in self.pairs})

    def dataset_pairs(self, dataset: str) -> list[tuple[str, pd.DataFrame]]:
        """``[(variant, compared runs)]`` of ``dataset``, by variant name."""
        return sorted(((v, rows) for (v, d), (_, rows) in self.pairs.items() if d == dataset),
                      key=lambda p: p[0])

    def n_modes(self, dataset: str) -> dict[str, float]:
        """variant -> the mode count of ``dataset`` its summary row has."""
        s = self.summary
        return {v: s.loc[(s[names.TAG_VARIANT] == v) & (s[names.TAG_DATASET] == dataset),
                         names.N_MODES].max() for v, _ in self.dataset_pairs(dataset)}

    def figure(self, written: list[Path], stem: str, dataset: str, caption: str,
               picture: bytes | None, missing: str = "no histories logged") -> None:
        """:func:`harness.reports.figures.figure_block` into this report."""
        figure_block(self.doc, self.out_dir, written, stem, dataset, caption, picture, missing)
