"""Study key ``vectorize``: copies of a plain MLP GAN pair as one Tune trial.

The same tiny study runs twice, without and with ``vectorize: 3``: the vectorized study's
search phase (two random-search suggestions of ``lr_d`` and ``beta1``) is one Tune trial
and its seeds phase another, yet MLflow holds the same child runs with the same seeds,
params, statuses, metric histories (bit for bit: the copies are bit-equal to single
trials on the CPU, see tests/test_vectorized.py) and artifacts.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pytest
import yaml

from harness import names
from harness.config import parse_study
from harness.errors import ConfigError

SEEDS = 3
STUDY = {
    "name": "vectorize",
    "seed": 3,
    "seeds": SEEDS,
    "datasets": ["ring8"],
    "train": {"steps": 120, "eval_every": 60, "eval_samples": 400, "log_every": 10,
              "batch_size": 32, "device": "cpu"},
    "search": {"trials": 2, "algorithm": "random",
               "space": {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3},
                         "beta1": {"type": "choice", "values": [0.5, 0.9]}}},
    "variants": [{"name": "ns", "loss": "non_saturating",
                  "model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}}}],
}
TIMING = {names.TRAIN_SECONDS, names.STEPS_PER_SECOND}


# --- the config key (fast) ---------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -2, 1.5, "three", "Auto", True, [3]])
def test_bad_vectorize_values_refused(value):
    raw = copy.deepcopy(STUDY)
    raw["vectorize"] = value
    with pytest.raises(ConfigError) as exc:
        parse_study(raw)
    msg = str(exc.value)
    assert msg.startswith("study: vectorize: ")
    assert "allowed: a whole number of copies per trial >= 1, auto" in msg
    if not isinstance(value, list):
        assert f"(got {value!r})" in msg


def test_vectorize_accepted_and_off_by_default():
    assert parse_study(copy.deepcopy(STUDY)).vectorize is None
    assert parse_study({**copy.deepcopy(STUDY), "vectorize": 4}).vectorize == 4
    assert parse_study({**copy.deepcopy(STUDY), "vectorize": "auto"}).vectorize == "auto"


def _plan(**changes):
    from harness.resolve import resolve
    from harness.vector.plan import plan_vectorize

    raw = copy.deepcopy(STUDY)
    raw.update(changes)
    spec = parse_study(raw)
    plans = resolve(spec)
    return spec, plans, plan_vectorize(spec, plans)


def test_fallback_pairs_and_trial_count():
    from harness.study import tune_trials

    variants = STUDY["variants"] + [{"name": "fm", "loss": "non_saturating", "model": "mlp",
                                     "tricks": ["feature_matching"]}]
    spec, plans, vector = _plan(vectorize=2, variants=variants)
    assert vector.seeds == {"ns/ring8": 2}
    assert vector.search == {"ns/ring8": [2]}  # lr_d and beta1 are per-copy settings
    text = "\n".join(vector.lines)
    assert "vectorize 2: 2 seeds per seeds-phase trial as one model for ns/ring8" in text
    assert "search suggestions in 1 trial(s) of 2 for ns/ring8" in text
    assert "fm/ring8 (trick feature_matching acts in the training step)" in text
    # ns: 1 search trial (2 copies) + ceil(3 / 2) seeds trials; fm: 2 search + 3 seeds trials
    assert tune_trials(spec, plans, vector) == (1 + 2) + (2 + 3)
    assert tune_trials(spec, plans) == (2 + 3) + (2 + 3)


def test_search_of_structural_settings_or_with_a_pruner_is_one_suggestion_per_trial():
    space = {**STUDY["search"]["space"], "model.z_dim": {"type": "choice", "values": [2, 4]}}
    _, _, vector = _plan(vectorize=3, search={**STUDY["search"], "space": space})
    assert vector.seeds == {"ns/ring8": 3} and vector.search == {}
    text = "\n".join(vector.lines)
    assert ("one search suggestion per trial for ns/ring8 (it searches model.z_dim; copies of "
            "one trial may differ only in lr_d, lr_g, beta1, beta2)") in text
    pruner = {**STUDY["search"], "pruner": {"type": "median"}, "trials": 4}
    _, _, vector = _plan(vectorize=3, search=pruner)
    assert vector.search == {} and "search.pruner 'median' stops whole trials" in "\n".join(
        vector.lines)


def test_auto_chooses_copies_for_the_device_and_keeps_tpe_learning():
    from harness.vector.plan import AUTO_CAP, tpe_startup_trials

    # random search: every suggestion in one batch; all seeds in one trial
    _, _, vector = _plan(vectorize="auto", search={**STUDY["search"], "trials": 6})
    assert vector.search == {"ns/ring8": [6]} and vector.seeds == {"ns/ring8": SEEDS}
    assert f"vectorize auto (cpu: up to {AUTO_CAP['cpu']} copies per trial)" in vector.lines[0]
    # TPE: its random start-up trials as one batch, then one suggestion per trial
    _, _, vector = _plan(vectorize="auto", search={**STUDY["search"], "trials": 8,
                                                   "algorithm": "tpe"})
    assert tpe_startup_trials(8) == 4
    assert vector.search == {"ns/ring8": [4, 1, 1, 1, 1]}
    # the device's cap: more seeds than the CPU's cap; a GPU share takes more
    _, _, vector = _plan(vectorize="auto", seeds=40)
    assert vector.seeds == {"ns/ring8": AUTO_CAP["cpu"]}
    train = {k: v for k, v in STUDY["train"].items() if k != "device"}
    _, _, vector = _plan(vectorize="auto", seeds=200, train=train,
                         resources={"cpu": 1, "gpu": 0.25})
    assert vector.seeds == {"ns/ring8": AUTO_CAP["cuda"]}
    assert "vectorize auto (cuda: up to 128 copies per trial)" in vector.lines[0]
    # explicit N: batches of N, also for TPE
    _, _, vector = _plan(vectorize=3, search={**STUDY["search"], "trials": 8, "algorithm": "tpe"})
    assert vector.search == {"ns/ring8": [3, 3, 2]}


# --- the same study, plain and vectorized ----------------------------------------------


def _run(tmp: Path, label: str, vectorize: int | None):
    from harness.study import run_study
    from harness.tracking import child_runs, open_store

    work = tmp / label
    work.mkdir()
    raw = copy.deepcopy(STUDY)
    if vectorize is not None:
        raw["vectorize"] = vectorize
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    stream = io.StringIO()
    outcome = run_study(path, workdir=work, max_concurrent=2, write_report=False, stream=stream)
    client = open_store(outcome.tracking_uri, create=False)
    kids = child_runs(client, outcome.experiment_id, outcome.parent_run_id)
    tune_dirs = [p for p in (work / "runs" / "tune").glob("*/trial_*") if p.is_dir()]
    return outcome, client, kids, tune_dirs, stream.getvalue()


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vectorize")
    return _run(tmp, "plain", None), _run(tmp, "vectorized", SEEDS)


def _by_seed(kids, phase):
    return {r.data.tags[names.TAG_SEED]: r for r in kids if r.data.tags[names.TAG_PHASE] == phase}


def _histories(client, run):
    return {m: [(h.step, h.value) for h in client.get_metric_history(run.info.run_id, m)]
            for m in run.data.metrics if m not in TIMING}


def _artifacts(client, run_id, path=None):
    out = set()
    for a in client.list_artifacts(run_id, path):
        out |= _artifacts(client, run_id, a.path) if a.is_dir else {a.path}
    return out


@pytest.mark.slow  # two real studies (~3 min on 2 cores)
def test_same_child_runs_and_one_tune_trial_for_the_seeds(studies):
    (p_out, _, p_kids, p_dirs, p_text), (v_out, _, v_kids, v_dirs, v_text) = studies
    assert not p_out.interrupted and not v_out.interrupted
    assert len(p_kids) == len(v_kids) == 2 + SEEDS
    assert len(p_dirs) == 2 + SEEDS and p_out.n_trials == 2 + SEEDS
    # each phase: one Tune trial
    assert len(v_dirs) == 1 + 1 and v_out.n_trials == 1 + 1
    assert v_out.n_runs == 2 + SEEDS
    assert "5 runs (2 Tune trials)" in v_text and "5 runs (5 Tune trials)" in p_text
    assert "vectorize 3: 3 seeds per seeds-phase trial as one model for ns/ring8" in v_text
    assert "vectorize 3: search suggestions in 1 trial(s) of 2 for ns/ring8" in v_text
    for phase, copies in ((names.PHASE_SEARCH, 2), (names.PHASE_SEEDS, SEEDS)):
        runs = _by_seed(v_kids, phase)
        assert len(runs) == copies
        # the vector_* tags exist only in this tree's harness: the Ray workers imported it
        trial_ids = {r.data.tags[names.TAG_VECTOR_TRIAL] for r in runs.values()}
        assert len(trial_ids) == 1, phase
        (tid,) = trial_ids
        assert sorted(r.data.tags[names.TAG_TRIAL_ID] for r in runs.values()) == [
            f"{tid}{names.COPY_SUFFIX}{k}" for k in range(copies)]
        assert {r.data.tags[names.TAG_VECTOR_COPIES] for r in runs.values()} == {str(copies)}
        assert {r.data.tags[names.TAG_VECTORIZED] for r in runs.values()} == {"true"}
        assert {r.data.tags[names.TAG_DEVICE] for r in runs.values()} == {"cpu"}
        assert any(d.name == f"trial_{tid}" for d in v_dirs)
    for r in p_kids:  # how a plain run ran is on record too
        assert names.TAG_VECTOR_TRIAL not in r.data.tags
        assert r.data.tags[names.TAG_VECTORIZED] == "false"
        assert r.data.tags[names.TAG_VECTOR_COPIES] == "1"


@pytest.mark.slow  # two real studies (~3 min on 2 cores)
def test_vectorized_seed_runs_equal_the_plain_ones(studies):
    (_, p_client, p_kids, *_), (_, v_client, v_kids, *_) = studies
    for phase in (names.PHASE_SEARCH, names.PHASE_SEEDS):
        plain, vec = _by_seed(p_kids, phase), _by_seed(v_kids, phase)
        assert plain.keys() == vec.keys(), phase
        for seed, p in plain.items():
            v = vec[seed]
            where = f"{phase} seed {seed}"
            assert v.info.status == p.info.status == "FINISHED", where
            assert v.info.run_name == p.info.run_name, where
            assert v.data.params == p.data.params, where
            for tag in (names.TAG_STATUS, names.TAG_SEED, names.TAG_PHASE, names.TAG_VARIANT,
                        names.TAG_LOSS, names.TAG_CONFIG_DIGEST):
                assert v.data.tags[tag] == p.data.tags[tag], (where, tag)
            ph, vh = _histories(p_client, p), _histories(v_client, v)
            assert ph.keys() == vh.keys(), where
            for key in (names.MODES_COVERED, names.LOSS_D, names.LOSS_G, names.D_REAL,
                        names.D_FAKE):
                assert key in ph and len(ph[key]) > 0, (where, key)
            for key, points in ph.items():
                assert [s for s, _ in vh[key]] == [s for s, _ in points], (where, key)
                assert vh[key] == points, (where, key)
            assert _artifacts(v_client, v.info.run_id) == _artifacts(p_client, p.info.run_id), where
            assert {names.ARTIFACT_CONFIG, names.ARTIFACT_GENERATOR,
                    names.ARTIFACT_FINAL_SAMPLES} <= _artifacts(v_client, v.info.run_id), where


@pytest.mark.slow  # two real studies (~3 min on 2 cores)
def test_vectorized_generator_artifact_loads_into_the_mlp(studies):
    import torch

    from harness.config import TrialConfig
    from harness.trial import build_trainer

    _, (_, client, kids, *_) = studies
    run = next(iter(_by_seed(kids, names.PHASE_SEEDS).values()))
    d = Path(client.download_artifacts(run.info.run_id, names.ARTIFACT_CONFIG))
    cfg = TrialConfig.model_validate_json(d.read_text())
    trainer = build_trainer(cfg)
    g = Path(client.download_artifacts(run.info.run_id, names.ARTIFACT_GENERATOR))
    trainer.G.load_state_dict(torch.load(g, weights_only=True))


# --- a vectorized trial whose process dies is retried in the same runs ------------------


@pytest.mark.slow  # two real studies (~3 min on 2 cores)
def test_a_dead_vectorized_trial_continues_every_copys_run(studies, tmp_path, monkeypatch):
    (_, p_client, p_kids, *_), _ = studies
    marker = tmp_path / "died"
    monkeypatch.setenv("HARNESS_TEST_VECTOR_DIES", str(marker))  # Ray's workers inherit it
    from harness.study import run_study
    from harness.tracking import child_runs, open_store

    raw = copy.deepcopy(STUDY)
    raw.update(vectorize=SEEDS, max_failures=1, plugins=["tests.plugin_vector_dies"])
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    outcome = run_study(path, workdir=tmp_path, max_concurrent=2, write_report=False,
                        stream=io.StringIO())
    assert marker.read_text() == "died at 60" and not outcome.interrupted
    client = open_store(outcome.tracking_uri, create=False)
    kids = child_runs(client, outcome.experiment_id, outcome.parent_run_id)
    assert len(kids) == 2 + SEEDS  # the retry reopened the copies' runs, made no new ones
    # the first vectorized trial to evaluate died (the search batch: the seeds wait for it)
    restarted = [r for r in kids if r.data.tags.get(names.TAG_RESTARTS) == "1"]
    assert len(restarted) == 2
    assert {r.data.tags[names.TAG_PHASE] for r in restarted} == {names.PHASE_SEARCH}
    assert len({r.data.tags[names.TAG_VECTOR_TRIAL] for r in restarted}) == 1
    for phase in (names.PHASE_SEARCH, names.PHASE_SEEDS):
        runs, plain = _by_seed(kids, phase), _by_seed(p_kids, phase)
        assert runs.keys() == plain.keys(), phase
        for seed, run in runs.items():
            assert run.info.status == "FINISHED", seed
            if phase == names.PHASE_SEARCH:
                assert run.data.tags[names.TAG_RESUMED_FROM_STEP] == "60", seed  # checkpoint
            assert run.data.tags[names.TAG_STATUS] == plain[seed].data.tags[names.TAG_STATUS]
            assert _histories(client, run) == _histories(p_client, plain[seed]), seed


# --- VectorTrainer against run_trial, in-process (fast) ------------------------------------


#: a plain MLP pair, and PacGAN2 with PacGAN's layers (batch norm, maxout) made small
TRAINER_CASES = {
    "plain": {"model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
              "batch_size": 32},
    "pacgan2": {"model": {"name": "mlp", "params": {"preset": "pacgan", "g_hidden": [16, 16],
                                                    "d_hidden": [16]}},
                "tricks": [{"name": "packing"}], "batch_size": 64},
}


@pytest.mark.parametrize("case", sorted(TRAINER_CASES))
def test_vector_trainer_equals_single_trials_and_resumes(one_torch_thread, case):
    from harness.config import TrialConfig
    from harness.reporting import MemoryReporter
    from harness.trial import build_copies, copy_info, run_trial
    from harness.vector.trial import VectorTrainer, copy_configs, fallback_reason

    spec = TRAINER_CASES[case]
    cfg = TrialConfig(study="t", variant="v", dataset_key="ring8", dataset="ring8",
                      model=spec["model"], tricks=spec.get("tricks", []),
                      loss="least_squares", metrics=["mode_coverage"], seed=0,
                      phase=names.PHASE_SEEDS,
                      train={"steps": 40, "eval_every": 20, "log_every": 5, "eval_samples": 200,
                             "batch_size": spec["batch_size"]})
    assert fallback_reason(cfg) is None
    cfgs = copy_configs(cfg, [11, 12])
    reps = [MemoryReporter() for _ in cfgs]
    saved = []
    results = VectorTrainer(cfgs).run(reps, lambda step, values, ck: saved.append(copy.deepcopy(ck())))
    assert len(saved) == 1  # one combined checkpoint per evaluation round that leaves training
    vec_built = build_copies(cfgs)
    for k, c in enumerate(cfgs):
        single = MemoryReporter()
        result = run_trial(c, single)
        assert single.rows == reps[k].rows and single.evals == reps[k].evals, k
        assert result.status == results[k].status, k
        assert ({x: v for x, v in result.final.items() if x not in TIMING}
                == {x: v for x, v in results[k].final.items() if x not in TIMING}), k
        assert set(single.artifacts) == set(reps[k].artifacts), k
        # the same params recorded, the values the plugins derived included
        assert (copy_info(*build_copies([c]), c, 0).params
                == copy_info(*vec_built, c, k).params), k
    resumed = VectorTrainer(cfgs)
    resumed.load_state_dict(saved[0])
    again = resumed.run([MemoryReporter() for _ in cfgs])
    for k in range(len(cfgs)):
        assert again[k].history == results[k].history
        assert [e.values for e in again[k].evals] == [e.values for e in results[k].evals]


def test_fallback_reasons():
    from harness.config import TrialConfig
    from harness.vector.trial import fallback_reason

    def cfg(**kw):
        base = {"study": "t", "variant": "v", "dataset_key": "ring8", "dataset": "ring8",
                "model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
                "loss": "minimax", "metrics": ["mode_coverage"], "seed": 0}
        base.update(kw)
        return TrialConfig(**base)

    assert fallback_reason(cfg()) is None
    assert fallback_reason(cfg(tricks=["feature_matching"])) == (
        "trick feature_matching acts in the training step")
    assert fallback_reason(cfg(tricks=[{"name": "packing", "params": {"m": 2}}])) is None
    # a third-party loss vectorizes only when it declares itself pure (plugin_example's does not)
    assert fallback_reason(cfg(loss="test_hinge", plugins=["tests.plugin_example"])) == (
        "loss 'test_hinge' is not declared a pure function of the logits: "
        "Hinge.vectorizable is not True")
    assert fallback_reason(cfg(model={"name": "cgan"})) == (
        "model 'cgan' does not declare stackable networks: "
        "ConditionalGAN.vectorizable is not True")
    assert fallback_reason(cfg(diagnostics={"stop_early": ["collapsed"]})) is None  # per copy
    pacgan = {"preset": "pacgan", "g_hidden": [16], "d_hidden": [16]}  # batch norm, maxout
    assert fallback_reason(cfg(model={"name": "mlp", "params": pacgan})) is None
    dropout = {"g_hidden": [16], "d_hidden": [16], "d_dropout": 0.3}
    assert fallback_reason(cfg(model={"name": "mlp", "params": dropout})) == (
        "cannot stack Dropout (body.2): only linear layers, element-wise activations, batch "
        "norm and layers with a stack_layers classmethod (maxout)")


@pytest.fixture
def one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_searcher_emits_copy_seeds_for_the_vectorized_seeds_phase():
    from harness.resolve import resolve
    from harness.searcher import seed_for
    from harness.tune_glue import make_searcher

    raw = {**copy.deepcopy(STUDY), "seeds": 4, "vectorize": 3}
    spec = parse_study(raw)
    plans = resolve(spec)
    key = plans[0].key
    searcher = make_searcher(plans, spec.search, spec.seeds, spec.seed, {key: 3})
    for t in ("s1", "s2"):
        assert searcher.suggest(t)["trial"]["phase"] == names.PHASE_SEARCH
    assert searcher.suggest("wait") is None  # the seeds wait for the search
    for i, t in enumerate(("s1", "s2")):
        searcher.on_trial_complete(t, {names.MODES_COVERED: float(i), names.HQ_FRACTION: 0.5})
    first, second = searcher.suggest("v1"), searcher.suggest("v2")
    assert first["copy_seeds"] == [seed_for(spec.seed, names.PHASE_SEEDS, j) for j in range(3)]
    assert first["copy_labels"] == [f"{key} seeds #{j}" for j in range(3)]
    assert first["label"] == f"{key} seeds #0-2"
    assert first["trial"]["seed"] == first["copy_seeds"][0]
    assert "copy_seeds" not in second  # the one seed left: an ordinary seeds trial
    assert second["trial"]["seed"] == seed_for(spec.seed, names.PHASE_SEEDS, 3)
    assert second["label"] == f"{key} seeds #3"
    assert searcher.suggest("done") is None  # either may yet fail before it starts
    for t in ("v1", "v2"):
        searcher.on_trial_complete(t, {names.MODES_COVERED: 1.0})
    assert searcher.suggest("done") == searcher.FINISHED


def test_searcher_batches_search_suggestions_and_tells_each_its_own_result():
    from harness.resolve import resolve
    from harness.searcher import seed_for
    from harness.tune_glue import make_searcher
    from harness.vector.plan import plan_vectorize

    raw = {**copy.deepcopy(STUDY), "seeds": 1, "vectorize": 3,
           "search": {**STUDY["search"], "trials": 4}}
    spec = parse_study(raw)
    plans = resolve(spec)
    key = plans[0].key
    vector = plan_vectorize(spec, plans)
    assert vector.search == {key: [3, 1]}
    plain = make_searcher(plans, spec.search, spec.seeds, spec.seed)
    expected = [plain.suggest(f"p{i}")["params"] for i in range(4)]

    searcher = make_searcher(plans, spec.search, spec.seeds, spec.seed, vector)
    batch = searcher.suggest("b")
    assert batch["copy_params"] == expected[:3]  # random search: what it suggests one by one
    assert batch["params"] == expected[0] and batch["trial"]["seed"] == batch["copy_seeds"][0]
    assert batch["copy_seeds"] == [seed_for(spec.seed, names.PHASE_SEARCH, i) for i in range(3)]
    assert batch["copy_labels"] == [f"{key} search #{i}" for i in range(3)]
    assert batch["label"] == f"{key} search #0-2"
    single = searcher.suggest("s")
    assert "copy_seeds" not in single and single["params"] == expected[3]
    assert single["label"] == f"{key} search #3"
    assert searcher.suggest("wait") is None  # the seeds wait for the search
    # copy 1 is best, copy 2 has no result (it failed): Optuna hears FAIL for it alone
    values = [{names.MODES_COVERED: 3.0, names.HQ_FRACTION: 0.5},
              {names.MODES_COVERED: 7.0, names.HQ_FRACTION: 0.5},
              {names.TAG_STATUS: "failed"}]
    searcher.on_trial_complete("b", {"final": True, names.MODES_COVERED: 5.0,
                                     "copy_values": values})
    searcher.on_trial_complete("s", {"final": True, names.MODES_COVERED: 4.0,
                                     names.HQ_FRACTION: 0.5})
    assert searcher.completed[key] == 4
    assert [r[1] for r in searcher.results[key]] == [3.0, 7.0, 4.0]
    assert [r[3] for r in searcher.results[key]] == [0, 1, 3]
    assert searcher.best_params(key) == expected[1]
    study = searcher.optuna[key]._ot_study
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    seeds = searcher.suggest("seed")
    assert seeds["params"] == expected[1] and seeds["trial"]["phase"] == names.PHASE_SEEDS
    searcher.on_trial_complete("seed", {"final": True, names.MODES_COVERED: 4.0})
    assert searcher.suggest("done") == searcher.FINISHED


def test_an_errored_search_batch_fails_every_suggestion():
    from harness.resolve import resolve
    from harness.searcher import STARTED_TRIALS
    from harness.tune_glue import make_searcher
    from harness.vector.plan import plan_vectorize

    spec = parse_study({**copy.deepcopy(STUDY), "vectorize": 2})
    plans = resolve(spec)
    key = plans[0].key
    searcher = make_searcher(plans, spec.search, spec.seeds, spec.seed,
                             plan_vectorize(spec, plans))
    assert len(searcher.suggest("b")["copy_params"]) == 2
    STARTED_TRIALS.add("b")  # it ran, then failed (one lost before it started runs again)
    searcher.on_trial_complete("b", None, error=True)
    assert "b" not in STARTED_TRIALS
    assert searcher.completed[key] == 2 and searcher.results[key] == []
    states = [t.state.name for t in searcher.optuna[key]._ot_study.trials]
    assert states == ["FAIL", "FAIL"]
    assert searcher.suggest("seeds")["trial"]["phase"] == names.PHASE_SEEDS  # first_params


def test_a_copy_stopped_early_ends_there_while_the_others_train_on(one_torch_thread):
    """``diagnostics.stop_early`` in a vectorized trial: the loop ends the copy whose status
    holds (the engine stops updating it) and the others train on; each copy records what
    its single trial records."""
    from harness.config import TrialConfig
    from harness.reporting import MemoryReporter
    from harness.trial import run_trial
    from harness.vector.trial import VectorTrainer, copy_configs, fallback_reason

    cfg = TrialConfig(study="t", variant="v", dataset_key="ring8", dataset="ring8",
                      model={"name": "mlp", "params": {"g_hidden": [16, 16], "d_hidden": [16, 16]}},
                      loss="minimax", metrics=["mode_coverage"], seed=0,
                      phase=names.PHASE_SEEDS,
                      diagnostics={"stop_early": [names.STATUS_D_OVERPOWERS],
                                   "vanishing_grad": 0.05},
                      train={"steps": 200, "eval_every": 20, "log_every": 5,
                             "eval_samples": 200, "batch_size": 32})
    assert fallback_reason(cfg) is None
    # copy 0: a generator that cannot move against a discriminator that learns fast
    cfgs = copy_configs(cfg, [0, 1], [{"lr_g": 1e-9, "lr_d": 1e-2}, {}])
    reps = [MemoryReporter() for _ in cfgs]
    results = VectorTrainer(cfgs).run(reps)
    assert results[0].status == names.STATUS_D_OVERPOWERS and results[0].steps_done < 200
    assert results[1].steps_done == 200
    for k, c in enumerate(cfgs):
        single = MemoryReporter()
        result = run_trial(c, single)
        assert (result.status, result.steps_done) == (results[k].status, results[k].steps_done)
        assert single.rows == reps[k].rows and single.evals == reps[k].evals, k
        assert ({x: v for x, v in result.final.items() if x not in TIMING}
                == {x: v for x, v in results[k].final.items() if x not in TIMING}), k
