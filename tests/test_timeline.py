"""Collapse timeline: the collapse step of known coverage histories, the per-variant table,
and the section's figure."""

from __future__ import annotations

import pandas as pd
import pytest

from harness import names
from harness.reports import ReportContext
from harness.reports.sections.timeline import Timeline
from harness.reports.timeline import (
    COLLAPSED,
    HELD,
    NEVER_SPREAD,
    collapse_limit,
    collapse_step,
    collapse_table,
    run_events,
)


def cov(*values, every=100):
    return pd.Series(values, index=[every * (i + 1) for i in range(len(values))], dtype=float)


def test_the_limit_is_the_harness_collapse_rule():
    assert (collapse_limit(8), collapse_limit(25), collapse_limit(10), collapse_limit(3)) == (
        2, 6, 2, 1)
    assert collapse_limit(8, fraction=0.5) == 4


@pytest.mark.parametrize("values, expected", [
    ((8, 8, 8, 2, 1, 1), (COLLAPSED, 400)),   # fell at the 4th evaluation and stayed down
    ((8, 2, 8, 2, 2), (COLLAPSED, 400)),      # an early dip it recovered from does not count
    ((1, 5, 2, 1), (COLLAPSED, 300)),
    ((3, 3, 3), (HELD, None)),                # 3 of 8 is above the limit of 2
    ((8, 1, 1, 8), (HELD, None)),             # recovered by the end
    ((1, 2, 0, 2), (NEVER_SPREAD, None)),     # never above the limit
])
def test_collapse_step_of_known_histories(values, expected):
    assert collapse_step(cov(*values), 8) == expected


def test_order_of_the_history_does_not_matter():
    s = cov(8, 8, 1, 1)
    assert collapse_step(s.iloc[::-1], 8) == (COLLAPSED, 300)


def _rows():
    return pd.DataFrame([
        {"run_id": "a1", names.TAG_VARIANT: "a", names.TAG_DATASET: "ring8", names.TAG_SEED: 1,
         names.MODE_HOPS: 2.0, names.TAG_STATUS: "collapsed"},
        {"run_id": "a2", names.TAG_VARIANT: "a", names.TAG_DATASET: "ring8", names.TAG_SEED: 2,
         names.MODE_HOPS: 4.0, names.TAG_STATUS: "ok"},
        {"run_id": "b1", names.TAG_VARIANT: "b", names.TAG_DATASET: "ring8", names.TAG_SEED: 1,
         names.MODE_HOPS: 0.0, names.TAG_STATUS: "collapsed"},
    ])


HIST = {("a1", names.MODES_COVERED): cov(8, 8, 1, 1), ("a2", names.MODES_COVERED): cov(6, 8, 8, 8),
        ("b1", names.MODES_COVERED): cov(1, 1, 1, 1)}


def test_table_counts_fates_per_variant():
    events = run_events(_rows(), HIST, {"a": 8, "b": 8})
    assert list(events["fate"]) == [COLLAPSED, HELD, NEVER_SPREAD]
    rows = {r[0]: r for r in collapse_table(events)}
    assert rows["a"][1:] == ["2", "1/2 (median step 300)", "0/2", "1/2", "8 → 4.5 of 8", "3.0"]
    assert rows["b"][1:] == ["1", "0/1", "1/1", "0/1", "1 → 1 of 8", "0.0"]


def test_runs_without_a_history_are_left_out():
    events = run_events(_rows(), {k: v for k, v in HIST.items() if k[0] != "b1"}, {"a": 8, "b": 8})
    assert set(events["run_id"]) == {"a1", "a2"}


def _context(tmp_path, hist):
    """A report context over ``_rows`` (8 modes each) whose histories are ``hist``."""
    rows = _rows().assign(**{names.N_MODES: 8.0})
    ctx = ReportContext(df=rows, out_dir=tmp_path)
    ctx.pairs = {("a", "ring8"): ("seeds", rows[rows[names.TAG_VARIANT] == "a"]),
                 ("b", "ring8"): ("seeds", rows[rows[names.TAG_VARIANT] == "b"])}
    ctx.histories = hist
    ctx.colours = {"a": (0, 0, 1, 1), "b": (1, 0, 0, 1)}
    return ctx


def test_section_writes_the_figure_and_the_table(tmp_path):
    ctx = _context(tmp_path, HIST)
    written = Timeline().write(ctx)
    assert written == [tmp_path / "timeline_ring8.png"]
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ("h", 2, "Collapse timeline") in ctx.doc.blocks
    tables = [b for b in ctx.doc.blocks if b[0] == "table"]
    assert len(tables) == 1 and [r[0] for r in tables[0][2]] == ["a", "b"]
    empty = _context(tmp_path, {})  # no histories: no section
    assert Timeline().write(empty) == [] and empty.doc.blocks == []
