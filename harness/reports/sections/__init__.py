"""The report's built-in sections, registered in the order the report shows them.

====================  =========================================================
``verdict``           what the study found, per dataset (first, always)
``summary``           per variant: the study's metric, coverage beside chance, ...
``reproduction``      studies with a ``published:`` block only: published vs measured
``how-to-read``       what each column, rule and test means
``orbits``            xy-game runs only: orbits and ``orbits_<dataset>.png``
``image-metrics``     image datasets only: FID, IS, KID, ... per provenance group
``pairwise``          every pair of variants on the study's metric
``budget``            expected best of k search trials, ``budget_<dataset>.png``
``sensitivity``       metric vs searched hyperparameters, fANOVA importances
``early-stopping``    trials stopped before their budget, steps saved
``timeline``          when runs collapsed, ``timeline_<dataset>.png``
``datasets``          per dataset: curves over training and final samples
``hyperparameters``   the configuration each variant's seeds phase re-ran
``search-trials``     every search-phase trial
``failures``          failed, stopped and still-running runs
====================  =========================================================

A plugin places its own with :func:`harness.reports.register_section` (``before`` /
``after`` one of these names); see docs/report.md.
"""

from __future__ import annotations

from harness.reports.section import register_section
from harness.reports.sections.budget import Budget
from harness.reports.sections.datasets import Datasets
from harness.reports.sections.early_stopping import EarlyStopping
from harness.reports.sections.failures import Failures
from harness.reports.sections.how_to_read import HowToRead
from harness.reports.sections.hyperparameters import Hyperparameters
from harness.reports.sections.image_metrics import ImageMetrics
from harness.reports.sections.orbits import Orbits
from harness.reports.sections.pairwise import Pairwise
from harness.reports.sections.reproduction import Reproduction
from harness.reports.sections.search_trials import SearchTrials
from harness.reports.sections.sensitivity import Sensitivity
from harness.reports.sections.summary import Summary
from harness.reports.sections.timeline import Timeline
from harness.reports.sections.verdict import Verdict

BUILTIN = (
    ("verdict", Verdict),
    ("summary", Summary),
    ("reproduction", Reproduction),
    ("how-to-read", HowToRead),
    ("orbits", Orbits),
    ("image-metrics", ImageMetrics),
    ("pairwise", Pairwise),
    ("budget", Budget),
    ("sensitivity", Sensitivity),
    ("early-stopping", EarlyStopping),
    ("timeline", Timeline),
    ("datasets", Datasets),
    ("hyperparameters", Hyperparameters),
    ("search-trials", SearchTrials),
    ("failures", Failures),
)
for _name, _cls in BUILTIN:
    register_section(_name, _cls)
