"""The study's Tune searcher: :class:`StudySearcher`, the study protocol in one Tune experiment.

For every (variant, dataset) pair, ``search.trials`` configurations suggested by that
pair's own ``OptunaSearch``, then -- as soon as that pair's search is complete -- its best
configuration on ``seeds`` fresh seeds (``search.trials: 0``: the pair's own settings on
``seeds`` seeds, with no Optuna at all). One Tune experiment keeps every CPU busy across
pairs and phases instead of idling at the end of each. With the study key ``vectorize``
(a :class:`~harness.vector.plan.VectorPlan`) a trial may hold several seeds, or several
Optuna suggestions, as copies (:mod:`harness.vector.trial`).

A trial Tune could not start -- its worker, reused from an earlier trial, was on a node
that died in between -- fails before it runs, and Tune's ``max_failures`` retries only
running trials. The searcher suggests such a trial again, the same config under a new Tune
trial id with ``retry_of`` naming the first (so its MLflow run keeps the first trial's id),
up to ``retries`` times; it learns which trials started from :data:`STARTED_TRIALS`.

The searcher is driven through Tune's :class:`~ray.tune.search.Searcher` calls
(``suggest``, ``on_trial_result``, ``on_trial_complete``) and persisted with ``save`` and
``restore`` (Tune calls them when it checkpoints the experiment and when a study
resumes). None of them needs a running Ray: the tests drive it directly.
"""

from __future__ import annotations

import copy
import math
import pickle
import tempfile
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from harness import names
from harness.config import SearchParam, SearchSettings, VariantPlan
from harness.names import RETRY_ATTEMPT, RETRY_OF
from harness.tune_pruning import stopped_by_scheduler
from harness.vector.plan import VectorPlan, tpe_startup_trials

#: the layout of :meth:`StudySearcher.get_state`; :meth:`StudySearcher.set_state` refuses others
STATE_VERSION = 1

#: the ids of the trials Tune started in this driver process and that have not completed:
#: Tune tells its callbacks, not its searcher, when a trial starts
#: (:class:`harness.tune_glue.StartedTrials` adds them)
STARTED_TRIALS: set[str] = set()

#: the ids of trials Tune set to ERROR, as its callbacks saw them at the end of a step
#: (:class:`harness.tune_glue.StartedTrials` adds them). Tune tells its searcher of almost
#: every failed trial, but not of one whose reused worker could not be reset for it (Ray's
#: ``_on_trial_reset``: the previous trial's thread outlived the reset): the searcher would
#: wait for it forever. :meth:`StudySearcher.suggest` settles those it was not told of.
ERRORED_TRIALS: set[str] = set()


def optuna_distribution(p: SearchParam):
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if p.type == "choice":
        return CategoricalDistribution(list(p.values))
    if p.type == "int":
        return IntDistribution(int(p.low), int(p.high))
    return FloatDistribution(p.low, p.high, log=p.type == "loguniform")


def make_sampler(search: SearchSettings, space: dict[str, SearchParam], seed: int):
    import optuna

    if search.algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.algorithm == "grid":
        return optuna.samplers.GridSampler({k: list(p.values) for k, p in space.items()}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=tpe_startup_trials(search.trials))


def seed_for(base: int, phase: str, index: int) -> int:
    """Search trial i runs seed ``base + i``; seeds-phase trial j runs ``base + 10_000 + j``."""
    return base + index if phase == names.PHASE_SEARCH else base + 10_000 + index


def _optuna_state(searcher: OptunaSearch) -> bytes:
    """What ``OptunaSearch.save`` writes (its study, sampler and live trials)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "optuna.pkl"
        searcher.save(str(path))
        return path.read_bytes()


def _restore_optuna(searcher: OptunaSearch, state: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "optuna.pkl"
        path.write_bytes(state)
        searcher.restore(str(path))


class StudySearcher(Searcher):
    """Search phase, then seeds phase, of every (variant, dataset) pair (module docstring).

    ``vectorize``: the study's :class:`~harness.vector.plan.VectorPlan` (or just its
    ``{pair key: copies per seeds trial}``). A pair in its ``seeds`` runs its seeds phase as
    ``ceil(seeds / copies)`` trials, each with ``copy_seeds`` (the seeds of :func:`seed_for`
    indices ``j .. j + copies - 1``) and ``copy_labels`` in its config; a pair in its
    ``search`` runs each batch of its search phase as one trial holding that many Optuna
    suggestions (``copy_params``, ``copy_seeds``, ``copy_labels``), every suggestion told its
    own copy's result (the final result's ``copy_values``). A trial left with one copy is an
    ordinary trial.

    Its state is the constructor's arguments plus what :meth:`get_state` returns: the
    protocol's progress (:data:`PROGRESS`) and each pair's Optuna searcher.
    """

    #: the attributes that record how far the protocol has got (:meth:`get_state`)
    PROGRESS = ("suggested", "completed", "results", "first_params", "seeds_launched",
                "batches_launched", "batch", "live", "search_index", "rr", "given", "requeued",
                "alias")

    def __init__(self, plans: list[VariantPlan], search: SearchSettings, seeds: int,
                 base_seed: int, vectorize: VectorPlan | dict[str, int] | None = None,
                 retries: int = 0):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        super().__init__(metric=search.metric, mode=search.direction)
        self.settings, self.n_seeds, self.base_seed = search, seeds, base_seed
        self.plans = {p.key: p for p in plans}
        self.order = [p.key for p in plans]
        self.optuna = {
            p.key: OptunaSearch(
                space={k: optuna_distribution(v) for k, v in p.space.items()},
                metric=search.metric, mode=search.direction,
                sampler=make_sampler(search, p.space, base_seed + i))
            for i, p in enumerate(plans) if search.trials  # trials 0: no search phase
        }
        vplan = vectorize if isinstance(vectorize, VectorPlan) else VectorPlan(
            seeds=dict(vectorize or {}))
        self.vector = dict(vplan.seeds)
        self.search_batches = {k: list(v) for k, v in vplan.search.items()}

        self.suggested = {k: 0 for k in self.order}
        self.completed = {k: 0 for k in self.order}
        #: per pair, ``(params, value, hq_fraction, search index)`` of each finished suggestion
        self.results: dict[str, list[tuple[dict, float, float, int]]] = {k: [] for k in self.order}
        self.first_params: dict[str, dict] = {}
        self.seeds_launched = {k: 0 for k in self.order}  # seeds, not trials
        self.batches_launched = {k: 0 for k in self.order}
        #: a batched search trial's copies: trial id -> [(Optuna id, params, index)]
        self.batch: dict[str, list[tuple[str, dict, int]]] = {}
        self.live: dict[str, tuple[str, str, dict]] = {}
        self.search_index: dict[str, int] = {}  # trial id -> its search-phase index
        self.rr = 0
        self.retries = retries
        #: the config given to each trial not yet completed, by its first trial id
        self.given: dict[str, dict] = {}
        #: first trial ids of trials that failed before they started, to suggest again
        self.requeued: list[str] = []
        #: a retry's trial id -> the first trial's id, which the protocol's records use
        self.alias: dict[str, str] = {}
        #: trials at a time, from Tune's ``max_concurrent_trials`` (:meth:`set_max_concurrency`);
        #: 0: no limit of the searcher's own
        self.max_concurrent = 0

    #: what a searcher pickled by an older harness lacks (Tuner.restore
    #: unpickles the searcher of an interrupted study): such a study retries nothing
    _SINCE_RETRIES = {"retries": 0, "given": {}, "requeued": [], "alias": {},
                      "max_concurrent": 0}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(copy.deepcopy(self._SINCE_RETRIES))
        self.__dict__.update(state)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Called by Tune's ``ConcurrencyLimiter`` (``TuneConfig(max_concurrent_trials=N)``)
        when the experiment is set up: the searcher limits the trials at a time itself, so
        the limiter passes every call through (True). The limiter's own count would never
        release a trial Tune ended without telling its searcher (:data:`ERRORED_TRIALS`),
        and the experiment would wait for it forever."""
        self.max_concurrent = int(max_concurrent)
        return True

    @property
    def n_live(self) -> int:
        """Trials suggested and not completed, but for those waiting to be suggested again."""
        return len(self.given) - len(self.requeued)

    # -- the protocol -------------------------------------------------------------------
    def best_params(self, key: str) -> dict:
        """Best search result by the metric, ties broken by hq_fraction, then by the
        earlier suggestion (its search index, not when it finished: trials running side
        by side finish in any order, and the seeds phase must not depend on that)."""
        rows = self.results[key]
        if not rows:
            return self.first_params.get(key, {})
        sign = 1 if self.settings.direction == "max" else -1
        return max(rows, key=lambda r: (sign * r[1], r[2], -r[3]))[0]

    def _config(self, key: str, params: dict, phase: str, index: int) -> dict:
        plan = self.plans[key]
        cfg = plan.base.with_params(params, seed=seed_for(self.base_seed, phase, index),
                                    phase=phase)
        label = f"{key} {phase} #{index}"
        return {"trial": cfg.model_dump(mode="json"), "label": label, "params": params}

    def _vector_config(self, key: str, params: dict, j: int, n: int) -> dict:
        out = self._config(key, params, names.PHASE_SEEDS, j)
        out["label"] = f"{key} {names.PHASE_SEEDS} #{j}-{j + n - 1}"
        out["copy_seeds"] = [seed_for(self.base_seed, names.PHASE_SEEDS, j + i) for i in range(n)]
        out["copy_labels"] = [f"{key} {names.PHASE_SEEDS} #{j + i}" for i in range(n)]
        return out

    def _search_batch(self, trial_id: str, key: str, size: int) -> dict | None:
        """One trial holding up to ``size`` (> 1) Optuna suggestions for ``key``, each
        its own Optuna trial (None when Optuna has none now)."""
        got: list[tuple[str, dict, int]] = []
        for c in range(size):
            sub = f"{trial_id}{names.COPY_SUFFIX}{c}"
            params = self.optuna[key].suggest(sub)
            if params is None:
                break
            got.append((sub, params, self.suggested[key] + c))
        if not got:
            return None
        i = self.suggested[key]
        self.suggested[key] += len(got)
        self.batches_launched[key] += 1
        self.first_params.setdefault(key, got[0][1])
        self.live[trial_id] = (key, names.PHASE_SEARCH, got[0][1])
        self.batch[trial_id] = got  # (Optuna left with one suggestion: a batch of one)
        out = self._config(key, got[0][1], names.PHASE_SEARCH, i)
        out["label"] = f"{key} {names.PHASE_SEARCH} #{i}-{i + len(got) - 1}"
        out["copy_seeds"] = [seed_for(self.base_seed, names.PHASE_SEARCH, x) for _, _, x in got]
        out["copy_labels"] = [f"{key} {names.PHASE_SEARCH} #{x}" for _, _, x in got]
        out["copy_params"] = [p for _, p, _ in got]
        return out

    def suggest(self, trial_id: str) -> dict | None:
        """A trial that failed before it started first (the same config, ``retry_of`` its
        first id, ``retry_attempt`` counting from 1); then the protocol's next trial; None
        while the protocol waits; FINISHED once every trial is launched and completed
        (a trial still live may yet fail before it starts); None as well while
        :attr:`max_concurrent` trials are live."""
        self._settle_untold_errors()
        if self.max_concurrent and self.n_live >= self.max_concurrent:
            return None
        if self.requeued:
            first = self.requeued.pop(0)
            self.alias[trial_id] = first
            out = self.given[first] = {**self.given[first], RETRY_OF: first,
                                       RETRY_ATTEMPT: self.given[first].get(RETRY_ATTEMPT, 0) + 1}
            return out
        out = self._next(trial_id)
        if isinstance(out, dict):
            self.given[trial_id] = out
        elif out == Searcher.FINISHED and self.given:
            return None
        return out

    def _settle_untold_errors(self) -> None:
        """Complete, as failed, each trial of :data:`ERRORED_TRIALS` that Tune ended
        without telling the searcher: the live attempt of a trial still awaited (a retry
        under its alias, or a first attempt neither requeued nor retried). A trial Tune did
        tell of is no longer awaited, so a notice of it changes nothing."""
        while ERRORED_TRIALS:
            trial_id = ERRORED_TRIALS.pop()
            retried = set(self.alias.values())
            if trial_id in self.alias or (trial_id in self.given and trial_id not in retried
                                          and trial_id not in self.requeued):
                self.on_trial_complete(trial_id, None, error=True)

    def _next(self, trial_id: str) -> dict | None:
        trials, seeds = self.settings.trials, self.n_seeds
        for key in self.order:  # seeds of pairs whose search is complete come first
            if self.completed[key] >= trials and self.seeds_launched[key] < seeds:
                j = self.seeds_launched[key]
                n = min(self.vector.get(key, 1), seeds - j)
                self.seeds_launched[key] += n
                params = self.best_params(key)
                self.live[trial_id] = (key, names.PHASE_SEEDS, params)
                if n > 1:
                    return self._vector_config(key, params, j, n)
                return self._config(key, params, names.PHASE_SEEDS, j)
        n = len(self.order)
        for off in range(n):
            key = self.order[(self.rr + off) % n]
            batches = self.search_batches.get(key)
            if batches and self.suggested[key] < trials:
                b = self.batches_launched[key]
                size = min(batches[b] if b < len(batches) else 1, trials - self.suggested[key])
                if size > 1:
                    out = self._search_batch(trial_id, key, size)
                    if out is None:
                        continue
                    self.rr = (self.rr + off + 1) % n
                    return out
            if self.suggested[key] < trials:
                params = self.optuna[key].suggest(trial_id)
                if params is None:
                    continue
                self.rr = (self.rr + off + 1) % n
                i = self.suggested[key]
                self.suggested[key] += 1
                self.batches_launched[key] += 1
                self.first_params.setdefault(key, params)
                self.live[trial_id] = (key, names.PHASE_SEARCH, params)
                self.search_index[trial_id] = i
                return self._config(key, params, names.PHASE_SEARCH, i)
        if all(self.seeds_launched[k] >= seeds for k in self.order):
            return Searcher.FINISHED
        return None  # waiting for a search phase to complete

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        trial_id = self.alias.get(trial_id, trial_id)
        key, phase, _ = self.live.get(trial_id, (None, None, None))
        if phase == names.PHASE_SEARCH and trial_id not in self.batch:
            self.optuna[key].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        started = trial_id in STARTED_TRIALS
        STARTED_TRIALS.discard(trial_id)
        trial_id = self.alias.pop(trial_id, trial_id)
        given = self.given.get(trial_id)
        if (error and result is None and not started and given is not None
                and given.get(RETRY_ATTEMPT, 0) < self.retries):
            self.requeued.append(trial_id)  # it never ran: suggest it again
            return
        self.given.pop(trial_id, None)
        key, phase, params = self.live.pop(trial_id, (None, None, None))
        index = self.search_index.pop(trial_id, None)
        if phase != names.PHASE_SEARCH:
            return
        copies = self.batch.pop(trial_id, None)
        if copies is not None:  # a batch: each suggestion is told its own copy's result
            values = list((result or {}).get("copy_values") or [])
            for c, (sub, sub_params, sub_index) in enumerate(copies):
                own = values[c] if c < len(values) and not error else None
                self._told(key, sub, sub_params, sub_index, own, error or own is None)
            return
        self._told(key, trial_id, params, index, result, error)

    def _told(self, key: str, trial_id: str, params: dict, index: int | None,
              result: dict | None, error: bool) -> None:
        """Tell Optuna one search suggestion's outcome and keep it for :meth:`best_params`."""
        value = (result or {}).get(self.settings.metric)
        pruned = stopped_by_scheduler(result)  # Optuna: PRUNED; never the best
        ok = (not error and not pruned and result is not None and value is not None
              and math.isfinite(value))
        self.optuna[key].on_trial_complete(trial_id, result if ok else None,
                                           error=not ok and not pruned)
        if ok:
            self.results[key].append(
                (params, float(value), float(result.get(names.HQ_FRACTION, 0.0)),
                 len(self.results[key]) if index is None else index))
        self.completed[key] += 1

    # -- persistence --------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The protocol's progress and every pair's Optuna searcher (as ``OptunaSearch.save``
        writes it), keyed by pair; the plans and settings are the constructor's."""
        return {"version": STATE_VERSION, "pairs": list(self.order),
                "progress": copy.deepcopy({name: getattr(self, name) for name in self.PROGRESS}),
                "optuna": {key: _optuna_state(s) for key, s in self.optuna.items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state` of a searcher built with the same arguments;
        ValueError for another layout or other pairs."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            found = state.get("version") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not a StudySearcher state of version {STATE_VERSION} "
                             f"(found {found!r})")
        if state["pairs"] != self.order:
            raise ValueError(f"the saved searcher ran the pairs {state['pairs']}, "
                             f"this one runs {self.order}")
        progress = copy.deepcopy(state["progress"])
        for name in self.PROGRESS:
            # a state saved before trials were suggested again lacks their records
            setattr(self, name, progress.get(name, copy.deepcopy(self._SINCE_RETRIES.get(name))))
        for key, saved in state["optuna"].items():
            _restore_optuna(self.optuna[key], saved)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


__all__ = ["ERRORED_TRIALS", "STARTED_TRIALS", "STATE_VERSION", "StudySearcher", "make_sampler",
           "optuna_distribution", "seed_for"]
