"""Early stopping: the loop's ``diagnostics.stop_early``, the search pruner (``search.pruner``),
the MLflow end of a pruned trial, and the report's counts of stopped trials."""

from __future__ import annotations

import copy
import pickle
import time

import pytest

from harness import names
from harness.config import DiagnosticSettings, TrialConfig, parse_study
from harness.diagnostics import EvalRecord, d_overpowers, early_stop_reason, summarize
from harness.plugins import load_plugins
from harness.reporting import MemoryReporter
from harness.resolve import resolve
from harness.trial import run_trial
from tests.test_config import BASE, parse_error

load_plugins()

SMALL_MLP = {"g_hidden": [16, 16], "d_hidden": [16, 16]}
TIMING = (names.TRAIN_SECONDS, names.STEPS_PER_SECOND)
#: a generator that cannot move: it covers none of ring8's modes, ever
FROZEN_G = {"lr_g": 1e-9}
#: ... and a discriminator that learns fast: D(x) -> 1, D(G(z)) -> 0 under the minimax loss
#: (its grad_g settles around 5e-3, so these tests raise vanishing_grad to 0.05)
STRONG_D = {"lr_g": 1e-9, "lr_d": 1e-2}


def make_config(diagnostics=None, loss="minimax", seed=0, **train):
    settings = {"steps": 200, "eval_every": 20, "log_every": 5, "eval_samples": 200,
                "batch_size": 32}
    settings.update(train)
    return TrialConfig(
        study="t", variant="v", dataset_key="ring8", model={"name": "mlp", "params": SMALL_MLP},
        loss={"name": loss}, dataset="ring8", metrics=["mode_coverage"], train=settings,
        diagnostics=diagnostics or {}, seed=seed)


def untimed(final):
    return {k: v for k, v in final.items() if k not in TIMING}


@pytest.fixture(scope="module", autouse=True)
def fast_and_deterministic(fast_mixtures):
    """One torch thread and no PNG rendering (conftest's ``fast_mixtures``)."""


# --- the rule, shared by the loop and the final status ----------------------------------------


def ev(step, n_covered):
    return EvalRecord(step, {names.MODES_COVERED: float(n_covered)}, frozenset(range(n_covered)))


def row(d_real=0.6, d_fake=0.4, grad_g=0.5):
    return {names.LOSS_D: 1.3, names.LOSS_G: 0.7, names.D_REAL: d_real, names.D_FAKE: d_fake,
            names.GRAD_G: grad_g}


HEALTHY = [(5 * (i + 1), row()) for i in range(20)]
OVERPOWERED = [(5 * (i + 1), row(d_real=0.99, d_fake=0.01, grad_g=1e-5)) for i in range(20)]


def test_early_stop_reason_needs_a_full_patience_window_for_collapse():
    diag = DiagnosticSettings(collapse_patience=3)
    both = names.EARLY_STOP_REASONS
    assert early_stop_reason([ev(20, 0), ev(40, 1)], HEALTHY, 8, diag, both) is None
    assert early_stop_reason([ev(20, 0), ev(40, 1), ev(60, 2)], HEALTHY, 8, diag,
                             both) == names.STATUS_COLLAPSED
    assert early_stop_reason([ev(20, 0), ev(40, 3), ev(60, 2)], HEALTHY, 8, diag, both) is None
    # the final status judges a short trial on the evaluations it has
    assert early_stop_reason([ev(20, 0), ev(40, 1)], HEALTHY, 8, diag, both,
                             full_window=False) == names.STATUS_COLLAPSED
    assert summarize([ev(20, 0), ev(40, 1)], HEALTHY, 8, 40, diag,
                     False).status == names.STATUS_COLLAPSED


def test_early_stop_reason_only_for_the_listed_statuses_in_status_order():
    diag = DiagnosticSettings()
    low = [ev(20, 0), ev(40, 0)]
    assert early_stop_reason(low, OVERPOWERED, 8, diag, []) is None
    assert early_stop_reason(low, OVERPOWERED, 8, diag,
                             [names.STATUS_COLLAPSED]) == names.STATUS_COLLAPSED
    assert early_stop_reason(low, OVERPOWERED, 8, diag, [
        names.STATUS_COLLAPSED, names.STATUS_D_OVERPOWERS]) == names.STATUS_D_OVERPOWERS
    assert early_stop_reason([ev(20, 8), ev(40, 8)], HEALTHY, 8, diag,
                             names.EARLY_STOP_REASONS) is None


def test_a_trial_stopped_early_has_the_reason_it_was_stopped_for_as_status():
    diag = DiagnosticSettings()
    low = [ev(20, 0), ev(40, 0)]
    # both rules hold; the final status would say d_overpowers, but it was stopped as collapsed
    assert summarize(low, OVERPOWERED, 8, 200, diag, False).status == names.STATUS_D_OVERPOWERS
    s = summarize(low, OVERPOWERED, 8, 200, diag, False, stopped=names.STATUS_COLLAPSED)
    assert s.status == names.STATUS_COLLAPSED
    assert s.metrics[names.STABILITY_SCORE] == 0.0
    # full coverage held at the stop does not make a stopped trial stable
    full = [ev(20, 8), ev(40, 8)]
    assert summarize(full, HEALTHY, 8, 200, diag, False).metrics[names.STABILITY_SCORE] == 1.0
    assert summarize(full, OVERPOWERED, 8, 200, diag, False,
                     stopped=names.STATUS_D_OVERPOWERS).metrics[names.STABILITY_SCORE] == 0.0


# --- the loop -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collapsing():
    """The frozen generator with ``stop_early: [collapsed]`` (patience 2), checkpoints kept."""
    reporter = MemoryReporter(keep_checkpoints=True)
    cfg = make_config({"stop_early": [names.STATUS_COLLAPSED]}, **FROZEN_G)
    return cfg, run_trial(cfg, reporter), reporter


def test_collapsing_trial_stops_after_patience_evaluations(collapsing):
    _, result, rep = collapsing
    assert result.status == names.STATUS_COLLAPSED
    assert result.steps_done == 40  # 2 evaluations (patience) of 0 modes, not 200 steps
    assert [s for s, _ in rep.evals] == [20, 40]
    assert [v[names.MODES_COVERED] for _, v in rep.evals] == [0.0, 0.0]
    assert [s for s, _ in rep.rows] == list(range(5, 41, 5))
    final = result.final
    assert final[names.STEPS_DONE] == 40.0 and final[names.STEPS_BUDGET] == 200.0
    assert final[names.STOPPED_EARLY] == 1.0
    assert final[names.STABILITY_SCORE] == 0.0
    assert rep.result is result and rep.error is None


def test_patience_sets_when_a_collapse_stops():
    result = run_trial(make_config({"stop_early": [names.STATUS_COLLAPSED],
                                    "collapse_patience": 3}, **FROZEN_G), MemoryReporter())
    assert (result.status, result.steps_done) == (names.STATUS_COLLAPSED, 60)


def test_without_stop_early_the_same_trial_runs_its_budget():
    result = run_trial(make_config(steps=60, **FROZEN_G), MemoryReporter())
    assert result.status == names.STATUS_COLLAPSED and result.steps_done == 60
    assert result.final[names.STOPPED_EARLY] == 0.0
    assert result.final[names.STEPS_BUDGET] == 60.0


def test_a_collapse_at_the_last_evaluation_is_not_an_early_stop():
    result = run_trial(make_config({"stop_early": [names.STATUS_COLLAPSED]}, steps=40,
                                   **FROZEN_G), MemoryReporter())
    assert result.status == names.STATUS_COLLAPSED and result.steps_done == 40
    assert result.final[names.STOPPED_EARLY] == 0.0


def test_d_overpowers_stops_at_the_first_evaluation_where_the_rule_holds():
    diag = {"stop_early": [names.STATUS_D_OVERPOWERS], "vanishing_grad": 0.05}
    cfg = make_config(diag, **STRONG_D)
    rep = MemoryReporter()
    result = run_trial(cfg, rep)
    assert result.status == names.STATUS_D_OVERPOWERS
    assert 0 < result.steps_done < 200 and result.steps_done % 20 == 0
    assert result.final[names.STOPPED_EARLY] == 1.0
    # the stop is where the rule first holds on the history so far, not earlier or later
    steps = [s for s, _ in rep.evals]
    assert steps[-1] == result.steps_done
    holds = [d_overpowers([h for h in result.history if h[0] <= s], cfg.diagnostics)
             for s in steps]
    assert holds == [False] * (len(steps) - 1) + [True]
    # collapsed is not listed: 0 of 8 modes at every evaluation does not stop it sooner
    assert all(v[names.MODES_COVERED] == 0.0 for _, v in rep.evals)
    assert len(steps) > cfg.diagnostics.collapse_patience


def test_restore_after_an_early_stop(collapsing):
    cfg, full, rep_full = collapsing
    last = rep_full.checkpoints[-1]
    assert last["step"] == 40 and last["copies"][0]["stopped"] == names.STATUS_COLLAPSED
    # from the checkpoint written at the stop: nothing more is trained, the same result
    rep = MemoryReporter(resume=copy.deepcopy(last))
    resumed = run_trial(cfg, rep)
    assert resumed.steps_done == 40 and rep.rows == [] and rep.evals == []
    assert resumed.status == names.STATUS_COLLAPSED
    assert untimed(resumed.final) == untimed(full.final)
    # from the checkpoint before the stop: it trains on and stops at the same place
    first = rep_full.checkpoints[0]
    assert first["step"] == 20 and first["copies"][0]["stopped"] is None
    again = run_trial(cfg, MemoryReporter(resume=copy.deepcopy(first)))
    assert (again.status, again.steps_done) == (names.STATUS_COLLAPSED, 40)
    assert untimed(again.final) == untimed(full.final)
    assert again.history == full.history


def _legacy(state: dict, *drop: str) -> dict:
    """``state`` as a one-copy checkpoint written before per-copy records: the loop's
    fields at the top level, without the fields named in ``drop``."""
    old = copy.deepcopy(state)
    run = old.pop("copies")[0]
    del run["ended_at"], run["done"]
    old.update({k: v for k, v in run.items() if k not in drop})
    return old


def test_checkpoints_without_the_stop_field_still_load(collapsing):
    cfg, full, rep_full = collapsing
    # written before stop_early (and diverged_reason) existed
    old = _legacy(rep_full.checkpoints[0], "stopped", "diverged_reason")
    again = run_trial(cfg, MemoryReporter(resume=old))
    assert (again.status, again.steps_done) == (names.STATUS_COLLAPSED, 40)
    assert again.history == full.history
    # one written at the stop resumes as stopped there: nothing more is trained
    rep = MemoryReporter(resume=_legacy(rep_full.checkpoints[-1]))
    resumed = run_trial(cfg, rep)
    assert (resumed.status, resumed.steps_done, rep.rows) == (names.STATUS_COLLAPSED, 40, [])


# --- study-file settings --------------------------------------------------------------------

def study(search=None, **changes):
    d = copy.deepcopy(BASE)
    d["search"].update(search or {})
    d.update(changes)
    return d




def test_defaults_stop_nothing_and_prune_nothing():
    spec = parse_study(study())
    assert spec.diagnostics.stop_early == [] and spec.search.pruner.type == "none"
    from harness.tune_pruning import make_scheduler

    assert make_scheduler(spec.search) is None


def test_pruner_settings_parse():
    spec = parse_study(study({"pruner": "median"}))
    assert (spec.search.pruner.type, spec.search.pruner.grace) == ("median", 1)
    asha = parse_study(study({"pruner": {"type": "asha", "grace": 2, "reduction_factor": 2}}))
    assert (asha.search.pruner.type, asha.search.pruner.reduction_factor) == ("asha", 2)


def test_unknown_pruner_lists_the_allowed_ones():
    msg = parse_error(study({"pruner": "hyperband"}))
    assert "search.pruner.type" in msg and "'hyperband'" in msg
    assert "allowed: none, median, asha" in msg


@pytest.mark.parametrize("pruner, fragment", [
    ({"type": "median", "reduction_factor": 2}, "'reduction_factor' is a setting of the 'asha'"),
    ({"type": "asha", "min_trials": 2}, "'min_trials' is a setting of the 'median'"),
    ({"type": "asha", "grace": 0}, "search.pruner.grace"),
    ({"type": "median", "patience": 2}, "allowed keys here: type, grace, min_trials"),
])
def test_pruner_knobs_checked(pruner, fragment):
    assert fragment in parse_error(study({"pruner": pruner}))


def test_pruner_refuses_a_metric_known_only_at_the_end():
    msg = parse_error(study({"pruner": "asha", "metric": names.STABILITY_SCORE}))
    assert "stability_score" in msg and "pruner: none" in msg


@pytest.mark.parametrize("value, fragment", [
    (["diverged"], "diverged trials always stop"),
    (["ok"], "allowed: collapsed, d_overpowers"),
    (["collapsed", "collapsed"], "twice"),
])
def test_stop_early_checked(value, fragment):
    msg = parse_error(study(diagnostics={"stop_early": value}))
    assert msg.startswith("study: diagnostics.stop_early") and fragment in msg


# --- the pruner: one scheduler per pair, seeds never pruned ----------------------------------


class FakeTrial:
    def __init__(self, trial_id, phase=names.PHASE_SEARCH, variant="v", steps=100,
                 eval_every=10):
        self.trial_id = trial_id
        self.config = {"trial": {"phase": phase, "variant": variant, "dataset_key": "ring8",
                                 "train": {"steps": steps, "eval_every": eval_every}}}


class FakeController:
    def get_live_trials(self):
        return []


def res(step, value, final=False):
    return {"step": step, names.MODES_COVERED: value, "final": final}


def pruner(search):
    from harness.tune_pruning import make_scheduler

    spec = parse_study(study({"pruner": search}))
    return make_scheduler(spec.search)


def test_median_pruner_prunes_search_trials_and_never_seed_trials():
    from ray.tune.schedulers import TrialScheduler

    STOP, CONTINUE = TrialScheduler.STOP, TrialScheduler.CONTINUE
    sched, tc = pruner({"type": "median", "min_trials": 2}), FakeController()
    assert sched.metric == names.MODES_COVERED  # what Tune checks every result for
    good = [FakeTrial("a"), FakeTrial("b")]
    bad, seed = FakeTrial("c"), FakeTrial("s", phase=names.PHASE_SEEDS)
    other_pair = FakeTrial("w", variant="w")
    for t in (*good, bad, seed, other_pair):
        sched.on_trial_add(tc, t)
    for t in good:
        for step in range(10, 101, 10):
            assert sched.on_trial_result(tc, t, res(step, 8.0)) == CONTINUE
    # a seeds-phase trial is never pruned, however bad
    for step in range(10, 101, 10):
        assert sched.on_trial_result(tc, seed, res(step, 0.0)) == CONTINUE
    # the other pair's trial is not compared with this pair's: too few of its own
    assert sched.on_trial_result(tc, other_pair, res(10, 0.0)) == CONTINUE
    # neither the budget's last evaluation nor the final report is pruned ...
    assert sched.on_trial_result(tc, bad, res(100, 0.0)) == CONTINUE
    assert sched.on_trial_result(tc, bad, res(100, 0.0, final=True)) == CONTINUE
    # ... but the same value before the budget's end is, below the pair's median
    assert sched.on_trial_result(tc, bad, res(90, 0.0)) == STOP
    assert sched.pruned == {"c"}
    sched.on_trial_complete(tc, bad, res(90, 0.0))
    assert "c" not in sched.pairs


def test_asha_pruner_prunes_below_the_rung_cutoff_and_never_seed_trials():
    from ray.tune.schedulers import TrialScheduler

    sched, tc = pruner({"type": "asha", "reduction_factor": 2}), FakeController()
    first, second = FakeTrial("a", steps=40), FakeTrial("b", steps=40)
    seed = FakeTrial("s", phase=names.PHASE_SEEDS, steps=40)
    for t in (first, second, seed):
        sched.on_trial_add(tc, t)
    assert sched.on_trial_result(tc, first, res(10, 5.0)) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(tc, seed, res(10, 1.0)) == TrialScheduler.CONTINUE
    assert sched.on_trial_result(tc, second, res(10, 1.0)) == TrialScheduler.STOP
    assert sched.pruned == {"b"}


def test_grace_evaluations_become_steps_of_each_pair():
    from harness.tune_pruning import inner_scheduler

    spec = parse_study(study({"pruner": {"type": "asha", "grace": 3}}))
    asha = inner_scheduler(spec.search.pruner, names.MODES_COVERED, "max", steps=200,
                           eval_every=20)
    assert asha._brackets[0]._rungs[-1][0] == 60  # the first rung: 3 evaluations of 20 steps
    short = inner_scheduler(spec.search.pruner, names.MODES_COVERED, "max", steps=40,
                            eval_every=20)
    assert short._max_t == 40 and short._brackets[0]._rungs[-1][0] == 40  # capped at the budget


def test_the_searcher_tells_optuna_a_pruned_trial_was_pruned():
    from optuna.trial import TrialState

    from harness.tune_glue import make_searcher

    spec = parse_study(study({"trials": 2, "algorithm": "random"}))
    plans = resolve(spec)
    searcher = make_searcher(plans, spec.search, spec.seeds, spec.seed)
    key = plans[0].key
    first, second = searcher.suggest("t1"), searcher.suggest("t2")
    assert first["trial"]["phase"] == second["trial"]["phase"] == names.PHASE_SEARCH
    searcher.on_trial_result("t1", {**res(20, 6.0), "training_iteration": 1})
    searcher.on_trial_complete("t1", {**res(20, 6.0), "training_iteration": 1})
    searcher.on_trial_complete("t2", {**res(40, 3.0, final=True), "training_iteration": 2})
    states = [t.state for t in searcher.optuna[key]._ot_study.trials]
    assert states == [TrialState.PRUNED, TrialState.COMPLETE]
    # the pruned trial counts as done, but only the completed one can be the best
    assert searcher.completed[key] == 2
    assert [row[1] for row in searcher.results[key]] == [3.0]
    assert searcher.best_params(key) == second["params"]


def test_the_trial_leaves_a_tune_stop_to_the_driver():
    from harness.trial import run_copies

    cfg = make_config({}, steps=20)
    for error in (SystemExit(0), SystemExit(1), RuntimeError("x"), KeyboardInterrupt()):
        class Stops(MemoryReporter):
            def evaluation(self, *args, error=error):
                raise error  # tune.report raises SystemExit(0) in a trial Tune stopped

        reps = [Stops()]
        with pytest.raises(type(error)):
            run_copies([cfg], reps)
        if isinstance(error, SystemExit) and error.code == 0:
            assert reps[0].error is None
        else:
            assert reps[0].error is error


# --- the MLflow end of a pruned trial ----------------------------------------------------------


def test_the_driver_ends_a_pruned_trials_run(tmp_path, request):
    from mlflow.entities import Metric

    from harness.tune_pruning import PrunedRuns
    from tests.test_report import study_store

    client, uri, exp, parent = study_store(tmp_path, getattr(request.config, "cache", None), "prune")

    def child(trial_id):
        run = client.create_run(exp, tags={names.TAG_PARENT: parent,
                                           names.TAG_TRIAL_ID: trial_id})
        client.log_batch(run.info.run_id, metrics=[
            Metric(names.MODES_COVERED, 3.0, int(time.time() * 1000), 40)])
        return run.info.run_id

    pruned_id, done_id, retried_id = child("t_pruned"), child("t_done"), child("t_lost")
    callback = PrunedRuns(uri, exp, parent)
    pruned, done = FakeTrial("t_pruned", steps=120), FakeTrial("t_done", steps=120)
    # a trial suggested again after it was lost before it started logs under the first id
    retried = FakeTrial("t_retry", steps=120)
    retried.config[names.RETRY_OF] = "t_lost"
    pruned.last_result = retried.last_result = {**res(40, 3.0), "done": True}
    done.last_result = {**res(120, 8.0, final=True), names.TAG_STATUS: names.STATUS_OK}
    for trial in (pruned, done, retried):
        callback.on_trial_complete(iteration=1, trials=[pruned, done, retried], trial=trial)
    assert client.get_run(retried_id).data.tags[names.TAG_STATUS] == names.STATUS_PRUNED
    run = client.get_run(pruned_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags[names.TAG_STATUS] == names.STATUS_PRUNED
    m = run.data.metrics
    assert (m[names.STEPS_DONE], m[names.STEPS_BUDGET], m[names.STOPPED_EARLY]) == (40, 120, 1)
    assert m[names.MODES_COVERED] == 3.0  # what it reached stays its result
    # a trial that ended by itself is its own business (its reporter ended the run)
    untouched = client.get_run(done_id)
    assert untouched.info.status == "RUNNING" and names.TAG_STATUS not in untouched.data.tags
    assert len(client.search_runs([exp])) == 4  # the parent and the three: nothing duplicated
    assert pickle.loads(pickle.dumps(callback)).parent_run_id == parent  # Tune pickles it


# --- the report -------------------------------------------------------------------------------

BUDGET = 200
# (variant, phase, status, steps_done, modes_covered, MLflow status, budget logged as metric)
RUNS = [
    ("alpha", names.PHASE_SEEDS, names.STATUS_OK, 200, 8.0, "FINISHED", True),
    ("alpha", names.PHASE_SEEDS, names.STATUS_COLLAPSED, 40, 1.0, "FINISHED", True),
    ("alpha", names.PHASE_SEEDS, names.STATUS_D_OVERPOWERS, 100, 0.0, "FINISHED", True),
    ("alpha", names.PHASE_SEARCH, names.STATUS_PRUNED, 60, 2.0, "FINISHED", True),
    ("alpha", names.PHASE_SEARCH, names.STATUS_OK, 200, 7.0, "FINISHED", True),
    ("beta", names.PHASE_SEEDS, names.STATUS_DIVERGED, 10, 2.0, "FINISHED", True),
    ("beta", names.PHASE_SEEDS, names.STATUS_COLLAPSED, 200, 1.0, "FINISHED", True),  # full run
    ("beta", names.PHASE_SEEDS, names.STATUS_FAILED, None, None, "FAILED", False),
    # a run logged before steps_budget existed: its budget is its `steps` param
    ("beta", names.PHASE_SEARCH, names.STATUS_COLLAPSED, 50, 0.0, "FINISHED", False),
]
# hand-computed: alpha stops 40, 100 (seeds) and 60 (pruned); beta 10 (diverged) and 50
SAVED = {"alpha": 160 + 100 + 140, "beta": 190 + 150}


@pytest.fixture(scope="module")
def stopped_store(tmp_path_factory, request):
    from mlflow.entities import Metric, Param, RunTag

    from harness.reports.stability import load_runs
    from tests.test_report import study_store

    tmp = tmp_path_factory.mktemp("stopped")
    client, _, exp, parent = study_store(tmp, getattr(request.config, "cache", None), "stops")
    now = int(time.time() * 1000)
    for i, (variant, phase, status, done, modes, run_status, logged) in enumerate(RUNS):
        rid = client.create_run(exp, tags={
            names.TAG_PARENT: parent, names.TAG_VARIANT: variant, names.TAG_DATASET: "ring8",
            names.TAG_PHASE: phase, names.TAG_SEED: str(i), names.TAG_KIND: "trial"}).info.run_id
        metrics = []
        if done is not None:
            metrics += [Metric(names.STEPS_DONE, float(done), now, done),
                        Metric(names.MODES_COVERED, modes, now, done),
                        Metric(names.N_MODES, 8.0, now, done)]
            if logged:
                metrics += [Metric(names.STEPS_BUDGET, float(BUDGET), now, done),
                            Metric(names.STOPPED_EARLY, float(done < BUDGET), now, done)]
        client.log_batch(rid, metrics=metrics, params=[Param("steps", str(BUDGET))],
                         tags=[RunTag(names.TAG_STATUS, status)])
        client.set_terminated(rid, run_status)
    return client, exp, parent, load_runs(client, exp, parent)


def test_report_counts_stopped_trials_and_the_compute_saved(stopped_store):
    from harness.reports.stability import TOTAL, early_stopping

    *_, df = stopped_store
    table = early_stopping(df).set_index(names.TAG_VARIANT)
    assert list(table.index) == ["alpha", "beta", TOTAL]
    a, b, total = table.loc["alpha"], table.loc["beta"], table.loc[TOTAL]
    assert (a["n"], a["stopped"], a[names.STATUS_COLLAPSED], a[names.STATUS_D_OVERPOWERS],
            a[names.STATUS_DIVERGED], a[names.STATUS_PRUNED]) == (5, 3, 1, 1, 0, 1)
    assert (b["n"], b["stopped"], b[names.STATUS_COLLAPSED], b[names.STATUS_DIVERGED],
            b[names.STATUS_PRUNED]) == (4, 2, 1, 1, 0)
    assert a["steps_saved"] == SAVED["alpha"] and b["steps_saved"] == SAVED["beta"]
    assert a["steps_budget"] == 5 * BUDGET and b["steps_budget"] == 4 * BUDGET
    assert total["stopped"] == 5 and total["n"] == 9
    assert total["steps_saved"] == SAVED["alpha"] + SAVED["beta"] == 740
    assert total["saved_fraction"] == pytest.approx(740 / 1800)


def test_stopped_trials_stay_in_the_comparison(stopped_store):
    from harness.reports.stability import summarize

    *_, df = stopped_store
    s = summarize(df).set_index(names.TAG_VARIANT)
    a, b = s.loc["alpha"], s.loc["beta"]
    # seeds phase: the two stopped seeds count in n, in the status counts and in the mean
    assert a["n"] == 3 and a["modes_covered_n"] == 3
    assert a["modes_covered_mean"] == pytest.approx((8 + 1 + 0) / 3)
    assert (a[names.STATUS_OK], a[names.STATUS_COLLAPSED], a[names.STATUS_D_OVERPOWERS]) == (1, 1, 1)
    # the failed seed counts in n only; the diverged one counts in the mean too
    assert b["n"] == 3 and b["modes_covered_n"] == 2
    assert b["modes_covered_mean"] == pytest.approx((2 + 1) / 2)
    assert s[names.STATUS_PRUNED].sum() == 0  # pruned runs are search-phase runs
    all_runs = summarize(df[df[names.TAG_PHASE] == names.PHASE_SEARCH]).set_index(
        names.TAG_VARIANT)
    assert all_runs.loc["alpha", names.STATUS_PRUNED] == 1
    assert all_runs.loc["alpha", "modes_covered_mean"] == pytest.approx((2 + 7) / 2)


def test_report_has_an_early_stopping_section(stopped_store, tmp_path):
    from harness.reports.stability import build_report

    client, exp, parent, _ = stopped_store
    md = build_report(client, exp, parent, tmp_path, attach=False)["md"].read_text()
    section = md.split("## Early stopping", 1)[1].split("\n## ", 1)[0]
    assert "| alpha | ring8 | 5 | 3 | 1 | 1 | 0 | 1 | 400 of 1000 (40%) |" in section
    assert "| beta | ring8 | 4 | 2 | 1 | 0 | 1 | 0 | 340 of 800 (42%) |" in section
    assert "In all, 5 of 9 trials stopped early; 740 steps were not run (41% of the 1800" in section


# --- end to end: a pruned study through Ray Tune and MLflow ----------------------------------

XY_STEPS = 100
PRUNED_STUDY = {
    "name": "pruned",
    "seeds": 1,
    "datasets": {"xy": {"name": "xy_game", "params": {"x0": 1.0, "y0": 1.0}}},
    "train": {"steps": XY_STEPS, "eval_every": 20, "log_every": 10, "lr_d": 0.05},
    # the larger the step, the faster simultaneous descent-ascent spirals away from (0, 0)
    "search": {"trials": 4, "algorithm": "grid", "metric": names.XY_FINAL_DISTANCE,
               "pruner": {"type": "median", "min_trials": 1},
               "space": {"lr_g": {"type": "choice", "values": [0.01, 0.3, 0.02, 0.2]}}},
    "variants": [{"name": "simultaneous",
                  "model": {"name": "xy_game", "params": {"update": "simultaneous"}}}],
}


def test_a_pruned_study_ends_every_run_once_and_reports_the_stops(tmp_path):
    import yaml

    from harness.study import run_study
    from harness.tracking import open_store

    path = tmp_path / "pruned.yaml"
    path.write_text(yaml.safe_dump(PRUNED_STUDY))
    t0 = time.monotonic()
    # one trial at a time: which trials the median rule sees first is then fixed
    outcome = run_study(path, workdir=tmp_path, max_concurrent=1)
    seconds = time.monotonic() - t0
    client = open_store(outcome.tracking_uri, create=False)
    runs = [r for r in client.search_runs([outcome.experiment_id], max_results=100)
            if r.data.tags.get(names.TAG_PARENT) == outcome.parent_run_id]
    assert not outcome.interrupted
    assert len(runs) == 5 and len({r.data.tags[names.TAG_TRIAL_ID] for r in runs}) == 5
    assert all(r.info.status == "FINISHED" for r in runs)  # none RUNNING, none KILLED
    pruned = [r for r in runs if r.data.tags[names.TAG_STATUS] == names.STATUS_PRUNED]
    assert pruned, "the median rule pruned no trial"
    for run in pruned:
        m = run.data.metrics
        assert run.data.tags[names.TAG_PHASE] == names.PHASE_SEARCH
        assert names.TAG_ERROR not in run.data.tags
        assert m[names.STEPS_BUDGET] == XY_STEPS and m[names.STOPPED_EARLY] == 1.0
        assert m[names.STEPS_DONE] < XY_STEPS
        hist = client.get_metric_history(run.info.run_id, names.XY_FINAL_DISTANCE)
        assert max(h.step for h in hist) == m[names.STEPS_DONE]  # nothing after the prune
    seeds = [r for r in runs if r.data.tags[names.TAG_PHASE] == names.PHASE_SEEDS]
    assert len(seeds) == 1 and seeds[0].data.tags[names.TAG_STATUS] != names.STATUS_PRUNED
    assert seeds[0].data.metrics[names.STEPS_DONE] == XY_STEPS
    # the seeds phase re-runs the best search trial that ran its budget, never a pruned one
    finished = [r for r in runs if r.data.tags[names.TAG_PHASE] == names.PHASE_SEARCH
                and r.data.tags[names.TAG_STATUS] != names.STATUS_PRUNED]
    best = min(finished, key=lambda r: r.data.metrics[names.XY_FINAL_DISTANCE])
    assert seeds[0].data.params["lr_g"] == best.data.params["lr_g"]
    md = outcome.report["md"].read_text()
    section = md.split("## Early stopping", 1)[1].split("\n## ", 1)[0]
    saved = sum(XY_STEPS - r.data.metrics[names.STEPS_DONE] for r in pruned)
    assert (f"In all, {len(pruned)} of 5 trials stopped early; {saved:g} steps were not run"
            in section)
    print(f"pruned study: {seconds:.1f}s, {len(pruned)} pruned")


def test_a_dumped_spec_with_a_pruner_validates_again():
    for pruner in ("none", "median", {"type": "asha", "reduction_factor": 2}):
        spec = parse_study(study({"pruner": pruner}))
        assert parse_study(spec.model_dump()).search.pruner == spec.search.pruner
