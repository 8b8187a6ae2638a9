"""harness.searcher.StudySearcher driven directly, as Tune drives it, without Ray running.

Two pairs, TPE, search batches and vectorized seeds: the searcher is saved mid-search (with
single and batched trials still running), restored into a fresh instance, and both go on
to the end of the study with the same suggestions.
"""

from __future__ import annotations

import pickle

import pytest
from ray.tune.search import Searcher

from harness import names
from harness.config import parse_study
from harness.names import RETRY_ATTEMPT, RETRY_OF
from harness.resolve import resolve
from harness.searcher import ERRORED_TRIALS, STARTED_TRIALS, StudySearcher, seed_for
from harness.vector.plan import VectorPlan

STUDY = {
    "name": "searcher",
    "seed": 5,
    "seeds": 5,
    "datasets": ["ring8"],
    "train": {"steps": 20, "eval_every": 10, "device": "cpu"},
    "search": {"trials": 4, "algorithm": "tpe",
               "space": {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
                         "beta1": {"type": "choice", "values": [0.5, 0.9]}}},
    "variants": [{"name": "ns", "loss": "non_saturating", "model": "mlp"},
                 {"name": "ls", "loss": "least_squares", "model": "mlp"}],
}


def study():
    spec = parse_study(STUDY)
    plans = resolve(spec)
    a, b = (p.key for p in plans)
    # TPE's two start-up suggestions as one batch for the first pair, three for the second;
    # seeds two and three per trial
    vector = VectorPlan(seeds={a: 2, b: 3}, search={a: [2, 1, 1], b: [3, 1]})
    return spec, plans, vector


def new_searcher(spec, plans, vector) -> StudySearcher:
    return StudySearcher(plans, spec.search, spec.seeds, spec.seed, vector)


def value(params: dict) -> float:
    """A made-up metric with a maximum inside the space (the searcher only compares)."""
    return (8.0 - abs(params.get("lr_d", 1e-3) - 1e-3) * 1e3
            - (params.get("beta1") == 0.9))


def result(cfg: dict) -> dict:
    if "copy_params" in cfg:  # a batch of search suggestions: each copy's own values
        copies = [{names.MODES_COVERED: value(p), names.HQ_FRACTION: 0.5}
                  for p in cfg["copy_params"]]
        mean = sum(c[names.MODES_COVERED] for c in copies) / len(copies)
        return {"final": True, names.MODES_COVERED: mean, "copy_values": copies}
    return {"final": True, names.MODES_COVERED: value(cfg["params"]), names.HQ_FRACTION: 0.5}


class Tune:
    """Plays Tune: up to three trials at a time, each given one evaluation report and then
    completed, oldest first; records every suggestion."""

    def __init__(self, searcher: StudySearcher):
        self.searcher = searcher
        self.live: list[str] = []
        self.configs: dict[str, dict] = {}
        self.count = 0
        self.suggestions: list[tuple[str, dict | None | str]] = []
        self.finished = False

    def round(self) -> None:
        while len(self.live) < 3 and not self.finished:
            trial_id = f"t{self.count}"
            cfg = self.searcher.suggest(trial_id)
            self.suggestions.append((trial_id, cfg))
            if cfg is None:
                break
            if cfg == Searcher.FINISHED:
                self.finished = True
                break
            self.count += 1
            self.live.append(trial_id)
            self.configs[trial_id] = cfg
        if not self.live:  # FINISHED comes once every trial has completed
            return
        trial_id = self.live.pop(0)
        final = result(self.configs[trial_id])
        self.searcher.on_trial_result(trial_id, {**final, "final": False,
                                                 "training_iteration": 1})
        self.searcher.on_trial_complete(trial_id, final)

    def resumed(self, searcher: StudySearcher) -> Tune:
        """The same experiment going on with ``searcher`` (the trials still running go on)."""
        other = Tune(searcher)
        other.live, other.configs, other.count = list(self.live), dict(self.configs), self.count
        return other

    def run_to_end(self) -> None:
        while self.live or not self.finished:
            self.round()


def test_a_restored_searcher_makes_the_same_suggestions(tmp_path):
    spec, plans, vector = study()
    a, b = (p.key for p in plans)
    tune = Tune(new_searcher(spec, plans, vector))
    tune.round()
    # saved mid-search, with a batched and a single search trial still running
    running = [tune.configs[t] for t in tune.live]
    assert [len(c.get("copy_params", [None])) for c in running] == [3, 1]
    assert tune.searcher.completed == {a: 2, b: 0}
    path = tmp_path / "searcher.pkl"
    tune.searcher.save(str(path))
    cut = len(tune.suggestions)

    restored = new_searcher(spec, plans, vector)
    restored.restore(str(path))
    again = tune.resumed(restored)
    unpickled = tune.resumed(pickle.loads(pickle.dumps(tune.searcher)))  # as Tune keeps it
    fresh = tune.resumed(new_searcher(spec, plans, vector))
    for t in (tune, again, unpickled):
        t.run_to_end()

    rest = tune.suggestions[cut:]
    assert again.suggestions == rest
    assert unpickled.suggestions == rest
    assert restored.get_state()["progress"] == tune.searcher.get_state()["progress"]
    # not restored, the searcher starts the search over: the comparison above is not vacuous
    fresh.round()
    assert fresh.suggestions[0] != rest[0]

    # what the rest of the study held: search batches, single suggestions, vectorized seeds
    made = [cfg for _, cfg in tune.suggestions if isinstance(cfg, dict)]
    batches = [len(c["copy_params"]) for c in made if "copy_params" in c]
    seeds = {(c["trial"]["dataset_key"], c["trial"]["variant"], len(c.get("copy_seeds", [0])))
             for c in made if c["trial"]["phase"] == names.PHASE_SEEDS}
    assert sorted(batches) == [2, 3]
    # search trials: a 2+1+1 suggestions, b 3+1; seeds trials: a 2+2+1 seeds, b 3+2
    assert len(made) == 3 + 2 + 3 + 2
    assert seeds == {("ring8", "ns", 2), ("ring8", "ns", 1), ("ring8", "ls", 3),
                     ("ring8", "ls", 2)}
    for key in (a, b):
        assert tune.searcher.completed[key] == 4
        best = tune.searcher.best_params(key)
        assert max(value(p) for p, *_ in tune.searcher.results[key]) == value(best)
        seeds_of_key = [c for c in made if c["trial"]["phase"] == names.PHASE_SEEDS
                        and f"{c['trial']['variant']}/{c['trial']['dataset_key']}" == key]
        assert all(c["params"] == best for c in seeds_of_key)
        assert sorted(s for c in seeds_of_key
                      for s in c.get("copy_seeds", [c["trial"]["seed"]])) == [
            seed_for(spec.seed, names.PHASE_SEEDS, j) for j in range(spec.seeds)]


def test_a_state_is_refused_by_a_searcher_of_other_pairs(tmp_path):
    spec, plans, vector = study()
    searcher = new_searcher(spec, plans, vector)
    searcher.suggest("t0")
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))
    other = StudySearcher(plans[:1], spec.search, spec.seeds, spec.seed)
    with pytest.raises(ValueError, match="the saved searcher ran the pairs"):
        other.restore(str(path))
    path.write_bytes(pickle.dumps({"suggested": {}}))  # not a state of this layout
    with pytest.raises(ValueError, match="not a StudySearcher state of version 1"):
        searcher.restore(str(path))


@pytest.fixture
def started():
    """:data:`STARTED_TRIALS`, emptied before and after (Tune's callback fills it), and
    :data:`ERRORED_TRIALS` likewise."""
    STARTED_TRIALS.clear()
    ERRORED_TRIALS.clear()
    yield STARTED_TRIALS
    STARTED_TRIALS.clear()
    ERRORED_TRIALS.clear()


def plain_searcher(retries: int = 1) -> tuple[StudySearcher, str]:
    spec = parse_study({**STUDY, "variants": STUDY["variants"][:1], "seeds": 2,
                        "search": {**STUDY["search"], "trials": 2}})
    plans = resolve(spec)
    return StudySearcher(plans, spec.search, spec.seeds, spec.seed, retries=retries), plans[0].key


def test_a_trial_that_failed_before_it_started_is_suggested_again(started):
    """Tune fails a trial it could not start (its reused worker's node died) without
    retrying it; the searcher suggests the same config again, under the first trial's id,
    and what the retry reports counts for that first trial."""
    searcher, key = plain_searcher(retries=2)
    first = searcher.suggest("t0")
    searcher.on_trial_complete("t0", None, error=True)  # never started
    assert searcher.completed[key] == 0
    again = searcher.suggest("t1")
    assert again == {**first, RETRY_OF: "t0", RETRY_ATTEMPT: 1}
    searcher.on_trial_complete("t1", None, error=True)  # lost again: one retry left
    third = searcher.suggest("t2")
    assert third == {**first, RETRY_OF: "t0", RETRY_ATTEMPT: 2}
    started.add("t2")
    final = {"final": True, names.MODES_COVERED: 7.0, names.HQ_FRACTION: 0.9}
    searcher.on_trial_result("t2", {**final, "final": False, "training_iteration": 1})
    searcher.on_trial_complete("t2", final)
    assert searcher.completed[key] == 1
    assert searcher.results[key] == [(first["params"], 7.0, 0.9, 0)]
    # Optuna was told under the first trial's id, which it suggested the params for
    optuna_trials = searcher.optuna[key]._ot_study.trials
    assert [t.state.name for t in optuna_trials] == ["COMPLETE"]
    assert optuna_trials[0].value == 7.0
    assert not searcher.given and not searcher.alias and not searcher.requeued


def test_retries_end_and_a_trial_that_failed_running_is_not_suggested_again(started):
    searcher, key = plain_searcher(retries=1)
    searcher.suggest("t0")
    searcher.on_trial_complete("t0", None, error=True)
    searcher.suggest("t1")
    searcher.on_trial_complete("t1", None, error=True)  # the one retry is spent
    assert searcher.completed[key] == 1 and not searcher.requeued
    second = searcher.suggest("t2")
    assert RETRY_OF not in second and second["label"].endswith("search #1")
    started.add("t2")  # it ran, then failed: Tune's max_failures, not the searcher
    searcher.on_trial_complete("t2", None, error=True)
    assert searcher.completed[key] == 2 and not searcher.requeued
    assert searcher.results[key] == []  # two errors: no result to pick seeds by
    assert "t2" not in started


def test_the_searcher_finishes_only_when_no_trial_can_fail_before_it_starts(started):
    """The last trial may be lost after everything is launched: FINISHED waits for it."""
    searcher, _ = plain_searcher(retries=1)
    final = {"final": True, names.MODES_COVERED: 7.0, names.HQ_FRACTION: 0.9}
    for t in ("s0", "s1"):
        searcher.suggest(t)
        started.add(t)
        searcher.on_trial_complete(t, final)
    seeds = [searcher.suggest("p0"), searcher.suggest("p1")]
    assert [c["trial"]["phase"] for c in seeds] == [names.PHASE_SEEDS] * 2
    started.add("p0")
    searcher.on_trial_complete("p0", final)
    assert searcher.suggest("x") is None  # p1 still live
    searcher.on_trial_complete("p1", None, error=True)  # lost before it started
    retry = searcher.suggest("p2")
    assert retry == {**seeds[1], RETRY_OF: "p1", RETRY_ATTEMPT: 1}
    # saved and restored with the retry running: the retry's record comes back
    restored, _ = plain_searcher(retries=1)
    restored.set_state(pickle.loads(pickle.dumps(searcher.get_state())))
    for s in (searcher, restored):
        started.add("p2")
        s.on_trial_complete("p2", final)
        assert s.suggest("y") == Searcher.FINISHED


def test_no_search_runs_each_pairs_own_settings_on_its_seeds(tmp_path):
    from harness.vector.plan import plan_vectorize

    spec = parse_study({**STUDY, "vectorize": 2, "search": {"trials": 0}})
    plans = resolve(spec)
    vector = plan_vectorize(spec, plans)
    assert vector.search == {} and set(vector.seeds.values()) == {2}
    searcher = StudySearcher(plans, spec.search, spec.seeds, spec.seed, vector)
    assert searcher.optuna == {}
    tune = Tune(searcher)
    tune.run_to_end()
    cfgs = [c for _, c in tune.suggestions if isinstance(c, dict)]
    # 5 seeds in trials of 2, 2 and 1 per pair, and nothing else
    assert [len(c.get("copy_seeds", [0])) for c in cfgs] == [2, 2, 1, 2, 2, 1]
    assert {c["trial"]["phase"] for c in cfgs} == {names.PHASE_SEEDS}
    assert all(c["params"] == {} for c in cfgs)
    seeds = sorted(s for c in cfgs if c["trial"]["variant"] == "ns"
                   for s in c.get("copy_seeds", [c["trial"]["seed"]]))
    assert seeds == [seed_for(spec.seed, names.PHASE_SEEDS, j) for j in range(5)]
    by_variant = {p.base.variant: p.base for p in plans}
    for c in cfgs:  # the variant's own settings: the base config, but for phase and seed
        base = by_variant[c["trial"]["variant"]].model_dump(mode="json")
        assert {k: v for k, v in c["trial"].items() if k not in ("seed", "phase")} == {
            k: v for k, v in base.items() if k not in ("seed", "phase")}
    assert tune.suggestions[-1][1] == Searcher.FINISHED
    # saved and restored like any other
    path = tmp_path / "s.pkl"
    searcher.save(str(path))
    again = StudySearcher(plans, spec.search, spec.seeds, spec.seed, vector)
    again.restore(str(path))
    assert again.suggest("late") == Searcher.FINISHED


class _Trial:
    def __init__(self, trial_id: str, status: str):
        self.trial_id, self.status = trial_id, status


def test_a_trial_tune_ended_without_telling_the_searcher_is_settled_and_suggested_again(
        started):
    """Ray ends a trial whose reused worker could not be reset for it (ERROR, no call to
    the searcher). The callback reports every ERROR trial once; the searcher completes
    the ones it still awaits, as failed before they started, and suggests them again;
    notices of trials it was told of change nothing."""
    from harness.tune_glue import StartedTrials

    searcher, key = plain_searcher(retries=1)
    callback = StartedTrials()
    first = searcher.suggest("t0")
    searcher.suggest("t1")
    started.add("t1")
    searcher.on_trial_complete("t1", None, error=True)  # told: it ran, then failed
    callback.on_step_end(iteration=1, trials=[_Trial("t0", "ERROR"), _Trial("t1", "ERROR")])
    callback.on_step_end(iteration=2, trials=[_Trial("t0", "ERROR"), _Trial("t1", "ERROR")])
    assert ERRORED_TRIALS == {"t0", "t1"} and callback.errored == {"t0", "t1"}
    assert searcher.completed[key] == 1  # t1 only
    retry = searcher.suggest("t2")  # settles t0, then suggests it again
    assert retry == {**first, RETRY_OF: "t0", RETRY_ATTEMPT: 1}
    assert not ERRORED_TRIALS and searcher.completed[key] == 1
    # a late notice of t0 (its retry t2 is live) and of t1 change nothing
    ERRORED_TRIALS.update({"t0", "t1"})
    assert searcher.suggest("t3") is None  # the search waits for t2
    assert searcher.alias == {"t2": "t0"} and searcher.completed[key] == 1
    # the retry ends untold too, its one retry spent: failed, the pair's search complete
    callback.on_step_end(iteration=3, trials=[_Trial("t2", "ERROR")])
    seeds = searcher.suggest("t4")
    assert searcher.completed[key] == 2 and "t0" not in searcher.given
    assert not searcher.requeued and not searcher.alias
    assert RETRY_OF not in seeds and seeds["trial"]["phase"] == names.PHASE_SEEDS


def test_the_callback_unpickles_from_an_older_harness():
    from harness.tune_glue import StartedTrials

    old = StartedTrials.__new__(StartedTrials)
    old.__setstate__({})
    assert old.errored == set()


def test_the_searcher_limits_the_trials_at_a_time_itself(started):
    """Tune's ConcurrencyLimiter hands the limit to the searcher and passes every call
    through; a trial waiting to be suggested again is not live, its retry is."""
    from ray.tune.search import ConcurrencyLimiter

    searcher, key = plain_searcher(retries=1)
    limiter = ConcurrencyLimiter(searcher, max_concurrent=1)
    assert searcher.max_concurrent == 1 and not limiter._limit_concurrency
    assert limiter.suggest("t0") is not None
    assert limiter.suggest("t1") is None  # one live
    limiter.on_trial_complete("t0", None, error=True)  # lost before it started
    assert searcher.n_live == 0
    assert limiter.suggest("t2")[RETRY_OF] == "t0"
    assert limiter.suggest("t3") is None
    started.add("t2")
    limiter.on_trial_complete("t2", {"final": True, names.MODES_COVERED: 7.0})
    assert limiter.suggest("t4")["label"] == f"{key} search #1"
