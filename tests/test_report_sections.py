"""The report as an ordered list of sections: the registry, a plugin section (the example of
docs/report.md), the summary's order, one analysis for the report and the terminal, and a
package without import cycles."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import names, plugins
from harness.errors import ConfigError, RegistryError
from harness.reports import ReportContext, Section, analysis, section
from harness.reports.load import runs_frame
from harness.reports.stability import build_report, summarize
from harness.reports.terminal import terminal_summary
from tests.test_report import _make_run, _png, study_store
from tests.test_verdict import _run

ROOT = Path(__file__).resolve().parents[1]
BUILTIN = ["verdict", "summary", "reproduction", "how-to-read", "orbits", "image-metrics",
           "pairwise", "budget", "sensitivity", "early-stopping", "timeline", "datasets", "hyperparameters",
           "search-trials", "failures"]


class _Empty(Section):
    def write(self, ctx):
        return []


@pytest.fixture
def registry():
    """The section registry, restored after the test."""
    saved = dict(section.SECTIONS._items)
    yield section.SECTIONS
    section.SECTIONS._items = saved


def test_built_in_sections_in_report_order_as_the_docs_list_them():
    assert section.SECTIONS.names()[:len(BUILTIN)] == BUILTIN
    doc = (ROOT / "docs" / "report.md").read_text()
    assert re.findall(r"^\| `([a-z-]+)` \|", doc, flags=re.MULTILINE) == BUILTIN


def test_registration_refuses_what_cannot_be_a_section(registry):
    with pytest.raises(RegistryError, match="names are lower-case"):
        registry.register("Bad Name", _Empty)
    with pytest.raises(RegistryError, match="expected a subclass of harness.reports.Section"):
        registry.register("plain", object)
    with pytest.raises(RegistryError, match="does not implement write"):
        registry.register("abstract", Section)
    with pytest.raises(RegistryError, match="'verdict' is already registered by "
                                            "harness.reports.sections.verdict.Verdict"):
        registry.register("verdict", _Empty)
    with pytest.raises(RegistryError) as err:
        registry.register("late", _Empty, after="no-such")
    assert str(err.value) == ("unknown section 'no-such'; registered, in report order: "
                              + ", ".join(registry.names()))
    with pytest.raises(RegistryError, match="before or after, not both"):
        registry.register("both", _Empty, before="summary", after="summary")
    registry.register("first", _Empty, before="verdict")
    registry.register("second", _Empty, after="verdict")
    registry.register("last", _Empty)
    assert registry.names()[:3] == ["first", "verdict", "second"]
    assert registry.names()[-1] == "last" and _Empty.registered_name == "last"


def _doc_example() -> str:
    text = (ROOT / "docs" / "report.md").read_text()
    return re.search(r"```python\n(.*?)```", text, flags=re.DOTALL).group(1)


def test_the_docs_example_section_is_written_where_it_was_placed(registry, tmp_path, request):
    namespace: dict = {}
    exec(compile(_doc_example(), "docs/report.md", "exec"), namespace)  # noqa: S102
    assert registry.names().index("run-counts") == registry.names().index("pairwise") + 1
    client, _, exp, parent = study_store(tmp_path, getattr(request.config, "cache", None), "rc")
    png = _png(tmp_path / names.ARTIFACT_FINAL_SAMPLES)
    for variant, seeds in {"alpha": 2, "beta": 1}.items():
        for seed in range(seeds):
            _make_run(client, exp, parent, variant, seed, names.PHASE_SEEDS, 8.0 - seed,
                      "0.001", png)
    md = build_report(client, exp, parent, tmp_path / "out", attach=False,
                      n_resamples=100)["md"].read_text()
    assert (md.index("\n## Pairwise comparisons") < md.index("\n## Run counts")
            < md.index("\n## Score vs budget"))
    counts = md.split("\n## Run counts", 1)[1].split("\n## ", 1)[0]
    assert "| ring8 | alpha | seeds | 2 |" in counts and "| ring8 | beta | seeds | 1 |" in counts


class _EntryPoint(SimpleNamespace):
    def load(self):
        return self.loader()


def test_section_plugins_load_from_their_entry_point_group(registry, monkeypatch):
    def register():
        section.register_section("from-plugin", _Empty, before="failures")

    def broken():
        raise ImportError("no module named 'gone'")

    found = {section.GROUP: [_EntryPoint(name="good", value="good_sections", loader=register)]}
    monkeypatch.setattr(plugins, "_loaded_entry_points", set())
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                        lambda group: found.get(group, []))
    names_in_order = [name for name, _ in section.sections()]
    assert names_in_order[-2:] == ["from-plugin", "failures"]
    assert [name for name, _ in section.sections()] == names_in_order  # loaded once
    found[section.GROUP] = [_EntryPoint(name="bad", value="gone", loader=broken)]
    with pytest.raises(ConfigError, match=r"report section plugin 'bad' \(gone\) failed to "
                                          "load: ImportError: no module named 'gone'"):
        section.sections()


def _scored_runs():
    """Three variants on ring8: FID 10 / 10 / 30, modes covered 5 / 7 / 8 (two seeds each)."""
    values = {"a": (10.0, 5.0), "b": (10.0, 7.0), "c": (30.0, 8.0)}
    return [_run(i, v, {names.FID: fid, names.MODES_COVERED: modes, names.N_MODES: 8.0})
            for v, (fid, modes) in values.items() for i in range(2)]


def test_the_summary_leads_with_the_best_on_the_study_metric():
    df = runs_frame(_scored_runs())

    def order(summary):
        return list(summary[names.TAG_VARIANT])

    # lower FID first; a and b tie on it, and b covers more modes
    assert order(summarize(df, metric=names.FID, mode="min")) == ["b", "a", "c"]
    assert order(summarize(df, metric=names.FID)) == ["b", "a", "c"]  # FID's own direction
    assert order(summarize(df, metric=names.FID, mode="max")) == ["c", "b", "a"]
    # no study metric, or one no run reports: modes covered, as before
    assert order(summarize(df)) == ["c", "b", "a"]
    assert order(summarize(df, metric=names.KID_MEAN, mode="min")) == ["c", "b", "a"]


def test_the_report_and_the_terminal_share_one_analysis(monkeypatch, tmp_path):
    calls = []
    real = analysis.summarize
    monkeypatch.setattr(analysis, "_last", None)
    monkeypatch.setattr(analysis, "summarize",
                        lambda *a, **k: calls.append(k) or real(*a, **k))
    runs = _scored_runs()
    ctx = ReportContext(df=runs_frame(runs), out_dir=tmp_path, metric=names.FID, mode="min",
                        n_resamples=200)
    assert list(ctx.summary[names.TAG_VARIANT]) == ["b", "a", "c"]
    assert ctx.verdicts[0].best == ["a", "b"]
    # what harness study prints next, from a frame it builds again from the same runs
    text = terminal_summary(runs_frame(runs), names.FID, "min", n_resamples=200)
    assert len(calls) == 1
    assert text.splitlines()[2].startswith("b ") and "best a = b (fid 10.00" in text
    terminal_summary(runs_frame(runs), names.FID, "min", n_resamples=300)  # other settings
    terminal_summary(runs_frame(runs[:4]), names.FID, "min", n_resamples=300)  # other runs
    assert len(calls) == 3


def _imports(path: Path, module: str, known: set[str]) -> set[str]:
    """The harness.reports modules ``path`` imports, at module level or inside functions;
    ``if TYPE_CHECKING:`` blocks left out."""
    found: set[str] = set()

    def visit(node) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in known} - {module}


def test_report_modules_import_one_another_without_a_cycle():
    files = {}
    for path in (ROOT / "harness" / "reports").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: _imports(p, m, set(files)) for m, p in files.items()}
    assert graph["harness.reports.verdict"] and graph["harness.reports.sections.orbits"]
    done: set[str] = set()

    def walk(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path[path.index(module):], module))
        if module in done:
            return
        for other in sorted(graph[module]):
            walk(other, (*path, module))
        done.add(module)

    for module in sorted(graph):
        walk(module, ())


def test_score_vs_budget_follows_the_study_metric_and_its_direction(tmp_path):
    from harness.reports.document import to_markdown
    from harness.reports.sections.budget import Budget

    # search trials of a: FID 30, 10, 20 (sorted 10 < 20 < 30); of b: FID 15, 25
    fids = {"a": [30.0, 10.0, 20.0], "b": [15.0, 25.0]}
    runs = [_run(i, v, {names.FID: x, names.MODES_COVERED: 9.0 - i}, phase=names.PHASE_SEARCH)
            for v, xs in fids.items() for i, x in enumerate(xs)]
    ctx = ReportContext(df=runs_frame(runs), out_dir=tmp_path, metric=names.FID, mode="min")
    written = Budget().write(ctx)
    md = to_markdown(ctx.doc)
    assert [p.name for p in written] == ["budget_ring8.png"]
    assert "the study's metric `fid`: the expected best (lowest) of k trials" in md
    # E[min of 1] = mean; min of 2 of {10, 20, 30}: 10 w.p. 2/3, 20 w.p. 1/3 -> 13.33;
    # min of all 3 = 10; b: mean 20, min of both 15
    # the band of one trial: the 5% and 95% quantiles of a single draw, in the means' decimals
    assert "| a | 3 | 20.00 [10.00, 30.00] | 13.33 (k = 2) | 10.00 |" in md
    assert "| b | 2 | 20.00 [15.00, 25.00] | 20.00 (k = 1) | 15.00 |" in md
    # without a known study metric: modes covered, higher better, as before
    ctx = ReportContext(df=runs_frame(runs), out_dir=tmp_path / "m")
    (tmp_path / "m").mkdir()
    Budget().write(ctx)
    assert "`modes_covered`: the expected best of k trials" in to_markdown(ctx.doc)


def test_early_stopping_lists_why_each_diverged_trial_stopped(tmp_path):
    from harness.reports.document import to_markdown
    from harness.reports.sections.early_stopping import EarlyStopping

    budget = {names.STEPS_BUDGET: 100.0}
    runs = [_run(0, "a", {**budget, names.STEPS_DONE: 100.0}),
            _run(1, "a", {**budget, names.STEPS_DONE: 30.0}, status=names.STATUS_DIVERGED,
                 tags={names.TAG_DIVERGED_REASON: "loss_d = nan at step 30"}),
            _run(0, "b", {**budget, names.STEPS_DONE: 10.0}, status=names.STATUS_DIVERGED,
                 tags={names.TAG_DIVERGED_REASON: "loss_g = 2e+07 at step 10, beyond "
                                                  "diverge_loss 1e+06"})]
    ctx = ReportContext(df=runs_frame(runs), out_dir=tmp_path)
    EarlyStopping().write(ctx)
    md = to_markdown(ctx.doc)
    assert "Why each `diverged` trial stopped" in md
    assert "| a | ring8 | seeds | 1 | loss_d = nan at step 30 |" in md
    assert "| b | ring8 | seeds | 0 | loss_g = 2e+07 at step 10, beyond diverge_loss 1e+06 |" in md


def test_best_hyperparameters_without_a_seeds_phase_follow_the_study_metric(tmp_path):
    from harness.reports.document import to_markdown
    from harness.reports.sections.hyperparameters import Hyperparameters

    # search trials only: FID 30, 10, 20 with lr_d 0.3, 0.1, 0.2; the most modes at FID 30
    runs = []
    for i, (fid, lr) in enumerate([(30.0, "0.3"), (10.0, "0.1"), (20.0, "0.2")]):
        run = _run(i, "a", {names.FID: fid, names.MODES_COVERED: 9.0 - i},
                   phase=names.PHASE_SEARCH)
        run.data.params = {"lr_d": lr}
        runs.append(run)

    def table_row(ctx):
        Hyperparameters().write(ctx)
        md = to_markdown(ctx.doc)
        return md, next(line for line in md.splitlines() if line.startswith("| a | ring8 |"))

    md, row = table_row(ReportContext(df=runs_frame(runs), out_dir=tmp_path, metric=names.FID,
                                      mode="min"))
    assert "search trial with the lowest `fid`" in md
    assert row.startswith("| a | ring8 | 0.1 |")
    md, row = table_row(ReportContext(df=runs_frame(runs), out_dir=tmp_path))  # an old store
    assert "search trial with the highest `modes_covered`" in md
    assert row.startswith("| a | ring8 | 0.3 |")
