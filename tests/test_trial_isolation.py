"""Trials that share a process leave nothing behind.

A study reuses its Ray workers (``reuse_actors=True``): one process trains trial after
trial. Every piece of per-trial state -- the global torch RNG, plugin objects, optimiser
and trick state, metric caches, the vectorized engine's buffers -- must be rebuilt or reset
per trial, so that a trial records the same values whatever ran before it in its process.
These tests run trials one after another in one process and compare each with the same
trial in a fresh process, value for value.
"""

from __future__ import annotations

import multiprocessing
import pickle

import pytest

from harness import names
from harness.config import TrialConfig

TIMING = {names.TRAIN_SECONDS, names.STEPS_PER_SECOND}
TRAIN = {"steps": 30, "eval_every": 15, "log_every": 5, "eval_samples": 200, "batch_size": 32}
SMALL = {"g_hidden": [16, 16], "d_hidden": [16, 16]}


def _config(seed: int, dataset: str, loss: str, tricks=(), lr: float = 1e-3) -> TrialConfig:
    return TrialConfig(study="t", variant="v", dataset_key=dataset, dataset=dataset,
                       model={"name": "mlp", "params": SMALL}, loss=loss, tricks=list(tricks),
                       metrics=["mode_coverage"], seed=seed, phase=names.PHASE_SEEDS,
                       train={**TRAIN, "lr_d": lr, "lr_g": lr})


#: trials of other pairs, tricks with state of their own, and a vectorized trial of two copies
OTHERS = [
    [_config(1, "grid25", "minimax", [{"name": "minibatch_discrimination",
                                       "params": {"b": 4, "c": 3}}])],
    [_config(2, "ring8", "least_squares", [{"name": "historical_averaging"}], lr=3e-3)],
    [_config(3, "ring8", "non_saturating"), _config(4, "ring8", "non_saturating", lr=2e-3)],
]
TARGETS = [
    [_config(5, "ring8", "non_saturating", [{"name": "feature_matching"}])],
    [_config(6, "ring8", "minimax"), _config(7, "ring8", "minimax", lr=3e-3)],  # vectorized
]


def _record(cfgs: list[TrialConfig]) -> bytes:
    """What each copy of the trial reports, untimed, pickled (compared byte for byte)."""
    import torch

    from harness.reporting import MemoryReporter
    from harness.trial import run_copies

    torch.set_num_threads(1)
    reps = [MemoryReporter() for _ in cfgs]
    results = run_copies(cfgs, reps)
    return pickle.dumps([(rep.info.params, rep.rows, rep.evals, r.status,
                          {k: v for k, v in r.final.items() if k not in TIMING})
                         for rep, r in zip(reps, results)])


def _fresh(cfgs_list: list[list[TrialConfig]]) -> list[bytes]:
    """Each trial in a process of its own."""
    ctx = multiprocessing.get_context("spawn")
    out = []
    for cfgs in cfgs_list:
        with ctx.Pool(1) as pool:
            out.append(pool.apply(_record, (cfgs,)))
    return out


@pytest.fixture(scope="module")
def fresh():
    return _fresh(TARGETS)


@pytest.mark.parametrize("target", range(len(TARGETS)))
def test_a_trial_after_others_in_its_process_records_what_it_records_alone(target, fresh):
    for cfgs in OTHERS:
        _record(cfgs)
    assert _record(TARGETS[target]) == fresh[target]


def test_a_trial_run_twice_in_one_process_records_the_same(fresh):
    first = _record(TARGETS[0])
    _record(OTHERS[2])
    assert _record(TARGETS[0]) == first == fresh[0]
