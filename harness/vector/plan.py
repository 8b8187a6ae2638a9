"""Which trials of a study run vectorized, and with how many copies (study key ``vectorize``).

One Tune trial can train several copies of a pair as one stacked model
(:mod:`harness.vector.trial`): copies may differ only in their seed and in the settings
:data:`~harness.vector.engine.PER_COPY_TRAIN` (``lr_d``, ``lr_g``, ``beta1``, ``beta2``). So:

* the **seeds phase** of every pair :func:`~harness.vector.trial.fallback_reason` accepts
  runs as ``ceil(seeds / N)`` trials of up to ``N`` seeds each;
* the **search phase** of such a pair runs batches of Optuna suggestions as one trial each,
  when every searched hyperparameter is a per-copy setting and no pruner is set (a pruner
  stops whole Tune trials, which would stop every copy of a batch). A batch's suggestions
  are all asked before any of them is told its result, as with that many trials running
  side by side; random and grid search suggest exactly what they would one at a time, TPE
  after its start-up trials does not learn within a batch.

``vectorize: N`` asks for up to ``N`` copies per trial in both phases. ``vectorize: auto``
chooses per pair and phase, and the study prints the choice at its start:

* the copies per trial are capped by the device the trials train on (:data:`AUTO_CAP`:
  the CPU benchmark's gain levels off by 32 copies, see the README; the GPU cap of 128
  is not measured on a GPU yet);
* a pair whose stacked networks gain nothing on that device (their ``auto_devices``:
  grouped convolutions on a CPU) runs one copy per trial;
* seeds: all of the pair's seeds up to the cap;
* search with random or grid sampling: all of the pair's trials up to the cap;
* search with TPE: its random start-up trials (independent draws, so batching them loses
  nothing) as one batch up to the cap, then one suggestion per trial, so every later TPE
  suggestion learns from every result before it, as without ``vectorize``.

Knows nothing of Ray or MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: ``vectorize: auto``: at most this many copies per trial, by the device trials train on
AUTO_CAP = {"cpu": 32, "cuda": 128}


def tpe_startup_trials(trials: int) -> int:
    """TPE's random start-up trials for a search of ``trials`` trials (the study's sampler:
    :func:`harness.searcher.make_sampler`): Optuna's default of 10 would make every small
    study pure random search."""
    return max(2, min(10, trials // 2))


@dataclass
class VectorPlan:
    """Per pair key: ``seeds`` copies per seeds-phase trial, ``search`` the sizes of the
    search phase's batches (summing to ``search.trials``); pairs absent run one copy per
    trial. ``lines``: what the study prints at its start."""

    seeds: dict[str, int] = field(default_factory=dict)
    search: dict[str, list[int]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def trials(self, key: str, search_trials: int, seeds: int) -> int:
        """How many Tune trials pair ``key`` runs."""
        return (len(self.search.get(key) or [1] * search_trials)
                + math.ceil(seeds / self.seeds.get(key, 1)))


def trial_device(spec, plans) -> str:
    """``cuda`` when the study's trials train on a GPU, else ``cpu``: read from the resolved
    trial configs (:func:`harness.resolve.resolve` has already turned the default device
    into ``auto`` under a GPU share), ``auto`` meaning a GPU when ``resources.gpu > 0``."""
    for plan in plans:
        device = plan.base.train.device
        if device == "cuda" or (device == "auto" and spec.resources.gpu > 0):
            return "cuda"
    return "cpu"


def search_fallback_reason(spec, plan) -> str | None:
    """Why the search phase of ``plan``'s pair cannot batch suggestions into one trial
    (its seeds phase being vectorizable), or None when it can."""
    from harness.vector.engine import PER_COPY_TRAIN

    structural = sorted(k for k in plan.space if k not in PER_COPY_TRAIN)
    if structural:
        return (f"it searches {', '.join(structural)}; copies of one trial may differ only in "
                f"{', '.join(PER_COPY_TRAIN)}")
    if spec.search.pruner.type != "none":
        return f"search.pruner {spec.search.pruner.type!r} stops whole trials"
    return None


def _batches(total: int, size: int) -> list[int]:
    size = max(1, size)
    return [min(size, total - i) for i in range(0, total, size)]


def _search_batches(spec, n: int | None, cap: int) -> list[int]:
    trials = spec.search.trials
    if n is not None:  # vectorize: N
        return _batches(trials, n)
    if spec.search.algorithm == "tpe":
        first = min(tpe_startup_trials(trials), trials, cap)
        return [first] + [1] * (trials - first)
    return _batches(trials, min(trials, cap))


def plan_vectorize(spec, plans) -> VectorPlan:
    """The :class:`VectorPlan` of ``spec``'s key ``vectorize`` (empty when absent or 1)."""
    from harness.vector.trial import fallback_reason

    if not spec.vectorize or spec.vectorize == 1:
        return VectorPlan()
    auto = spec.vectorize == "auto"
    device = trial_device(spec, plans)
    cap = AUTO_CAP[device] if auto else int(spec.vectorize)
    n = None if auto else int(spec.vectorize)
    out = VectorPlan()
    seeds_n = min(spec.seeds, cap)
    fell_back, search_off = [], []
    for plan in plans:
        key = plan.base.key
        reason = fallback_reason(plan.base, auto_device=device if auto else None)
        if reason is not None:
            fell_back.append(f"{key} ({reason})")
            continue
        if seeds_n > 1:
            out.seeds[key] = seeds_n
        if not spec.search.trials:
            continue
        why = search_fallback_reason(spec, plan)
        if why is not None:
            search_off.append(f"{key} ({why})")
            continue
        batches = _search_batches(spec, n, cap)
        if max(batches, default=1) > 1:
            out.search[key] = batches
    head = (f"  vectorize auto ({device}: up to {cap} copies per trial):" if auto
            else f"  vectorize {n}:")
    if out.seeds:
        out.lines.append(f"{head} {seeds_n} seeds per seeds-phase trial as one model for "
                         f"{', '.join(out.seeds)}")
    by_batches: dict[tuple[int, ...], list[str]] = {}
    for key, batches in out.search.items():
        by_batches.setdefault(tuple(batches), []).append(key)
    for batches, keys in by_batches.items():
        sizes = " + ".join(str(b) for b in batches)
        out.lines.append(f"{head} search suggestions in {len(batches)} trial(s) of "
                         f"{sizes} for {', '.join(keys)}")
    if search_off:
        out.lines.append(f"{head} one search suggestion per trial for {'; '.join(search_off)}")
    if fell_back:
        out.lines.append(f"{head} one copy per trial for "
                         f"{'; '.join(fell_back)}")
    return out


__all__ = ["AUTO_CAP", "VectorPlan", "plan_vectorize", "search_fallback_reason",
           "tpe_startup_trials", "trial_device"]
