"""Checkpoints that are atomic and verified, a corrupt one skipped, a dead trial retried."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from harness import names
from harness.checkpoint import (
    META_FILE,
    STATE_FILE,
    CheckpointError,
    load_checkpoint,
    load_first_good,
    save_checkpoint,
    trial_checkpoints,
)


def _state(step: int) -> dict:
    return {"step": step, "w": torch.arange(6.0) * step, "rng": torch.get_rng_state(),
            "history": [(1, {"loss_d": 0.5})], "name": "x"}


def test_round_trip_keeps_every_value_and_records_a_checksum(tmp_path):
    save_checkpoint(tmp_path, _state(3), {"mlflow_run_id": "abc", "step": 3})
    state, meta = load_checkpoint(tmp_path)
    assert meta["mlflow_run_id"] == "abc" and meta["step"] == 3 and len(meta["sha256"]) == 64
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(6.0) * 3)
    assert state["history"] == [(1, {"loss_d": 0.5})]
    assert sorted(p.name for p in tmp_path.iterdir()) == [META_FILE, STATE_FILE]  # no temp left


def test_truncated_state_is_refused_naming_the_file(tmp_path):
    save_checkpoint(tmp_path, _state(1), {"step": 1})
    data = (tmp_path / STATE_FILE).read_bytes()
    (tmp_path / STATE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"state\.pt does not match the checksum.*truncated"):
        load_checkpoint(tmp_path)


def test_altered_state_without_checksum_is_still_refused_by_the_loader(tmp_path):
    save_checkpoint(tmp_path, _state(1), {"step": 1})
    meta = json.loads((tmp_path / META_FILE).read_text())
    del meta["sha256"]
    (tmp_path / META_FILE).write_text(json.dumps(meta))
    (tmp_path / STATE_FILE).write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match=r"state\.pt cannot be loaded"):
        load_checkpoint(tmp_path)


class _Payload:  # an arbitrary object: unpickling it would run code
    pass


def test_a_checkpoint_holding_objects_is_never_unpickled(tmp_path):
    save_checkpoint(tmp_path, {"step": 1, "evil": _Payload()}, {"step": 1})
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_checkpoint(tmp_path)


def test_missing_meta_means_an_incomplete_write(tmp_path):
    save_checkpoint(tmp_path, _state(1), {"step": 1})
    (tmp_path / META_FILE).unlink()
    with pytest.raises(CheckpointError, match="meta.json is missing"):
        load_checkpoint(tmp_path)


def test_first_good_falls_back_to_the_previous_checkpoint_then_to_scratch(tmp_path):
    for i in range(3):
        save_checkpoint(tmp_path / f"checkpoint_00000{i}", _state(i), {"step": i, "mlflow_run_id": "r"})
    (tmp_path / "checkpoint_000002" / STATE_FILE).write_bytes(b"\x00" * 10)
    folders = trial_checkpoints(tmp_path / "checkpoint_000002")
    assert [f.name for f in folders] == ["checkpoint_000002", "checkpoint_000001", "checkpoint_000000"]
    state, meta, skipped = load_first_good(folders)
    assert state["step"] == 1 and meta["step"] == 1
    assert len(skipped) == 1 and "checkpoint_000002" in skipped[0]
    for f in folders:
        (f / STATE_FILE).write_bytes(b"")
    state, meta, skipped = load_first_good(folders)
    assert state is None and meta["mlflow_run_id"] == "r" and len(skipped) == 3


def test_the_newest_step_on_disk_comes_first_whatever_tune_names(tmp_path):
    # a driver killed between Tune's state saves: the state names checkpoint_000001, which
    # Tune has since deleted (num_to_keep) after the trial wrote 000002 and 000003
    for i, step in ((2, 600), (3, 900)):
        save_checkpoint(tmp_path / f"checkpoint_00000{i}", _state(step), {"step": step})
    folders = trial_checkpoints(tmp_path / "checkpoint_000001")
    assert [f.name for f in folders][:2] == ["checkpoint_000003", "checkpoint_000002"]
    state, meta, skipped = load_first_good(folders)
    assert state["step"] == 900 and meta["step"] == 900 and not skipped
    # a restored trial numbers its checkpoints from Tune's count again: names lie, steps do not
    save_checkpoint(tmp_path / "checkpoint_000002", _state(1200), {"step": 1200})
    (tmp_path / "checkpoint_000004").mkdir()  # a folder Tune began and never finished
    folders = trial_checkpoints(tmp_path / "checkpoint_000002")
    assert [f.name for f in folders] == ["checkpoint_000002", "checkpoint_000003", "checkpoint_000004"]
    assert load_first_good(folders)[0]["step"] == 1200


def test_a_trial_restores_past_a_corrupt_latest_checkpoint(tmp_path, monkeypatch):
    from ray import tune

    from harness.tune_glue import restore_checkpoint

    for i in (1, 2):
        save_checkpoint(tmp_path / f"checkpoint_00000{i}", _state(i), {"step": i, "mlflow_run_id": "run-1"})
    (tmp_path / "checkpoint_000002" / STATE_FILE).write_bytes(b"truncated")
    latest = tune.Checkpoint.from_directory(str(tmp_path / "checkpoint_000002"))
    monkeypatch.setattr(tune, "get_checkpoint", lambda: latest)

    notes: dict[str, str] = {}
    state, meta = restore_checkpoint(notes)
    assert state["step"] == 1 and meta["mlflow_run_id"] == "run-1"
    assert "checkpoint_000002" in notes[names.TAG_CHECKPOINT_SKIPPED]


@pytest.mark.parametrize(("after", "from_step"), [
    (40, "30"), pytest.param(10, "0", marks=pytest.mark.slow)])
def test_a_trial_whose_process_dies_is_retried_from_its_checkpoint_in_the_same_run(
        tmp_path, after, from_step):
    """Dying after its first checkpoint (step 30), the trial resumes from it; dying before
    any, it starts over -- in the run its first attempt made, which it finds by its trial
    id (a first attempt does not look, so the retry must know it is one)."""
    from harness.study import run_study
    from harness.tracking import open_store

    marker = tmp_path / "died"
    study = {
        "name": "retry", "plugins": ["tests.plugin_example"], "seeds": 1, "max_failures": 1,
        "datasets": ["ring8"],
        "train": {"steps": 90, "eval_every": 30, "eval_samples": 200, "log_every": 10,
                  "batch_size": 32},
        "search": {"trials": 1, "space": {"lr_d": {"type": "choice", "values": [1e-3]}}},
        "variants": [{"name": "v", "model": {"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
                      "loss": {"name": "test_dies_once", "params": {"marker": str(marker), "after": after}}}],
    }
    path = tmp_path / "retry.yaml"
    path.write_text(yaml.safe_dump(study))
    outcome = run_study(path, workdir=tmp_path, max_concurrent=1, write_report=False)
    assert marker.read_text() == "died" and not outcome.interrupted
    client = open_store(outcome.tracking_uri, create=False)
    runs = client.search_runs([outcome.experiment_id])
    children = [r for r in runs if r.data.tags.get(names.TAG_PARENT) == outcome.parent_run_id]
    assert len(children) == 2  # one run per trial: the retry reopened the dead trial's run
    assert all(r.info.status == "FINISHED" and r.data.metrics[names.STEPS_DONE] == 90
               and r.data.tags[names.TAG_STATUS] != names.STATUS_FAILED for r in children)
    retried = [r for r in children if names.TAG_RESTARTS in r.data.tags]
    assert len(retried) == 1
    assert retried[0].data.tags[names.TAG_RESTARTS] == "1"
    assert retried[0].data.tags[names.TAG_RESUMED_FROM_STEP] == from_step  # last checkpoint


def test_a_trial_restored_from_an_older_checkpoint_logs_no_step_twice(tmp_path, one_thread):
    """A trial that died after logging its evaluation at step 40 but whose last registered
    checkpoint is step 20 trains 20..40 again: MLflow keeps one point per step, and the run
    ends with the same histories as a trial that never died (the CPU is deterministic)."""
    import copy

    from harness.config import TrialConfig
    from harness.tracking import MlflowReporter, open_store, resolve_tracking_uri
    from harness.trial import run_trial

    cfg = TrialConfig(study="s", variant="v", dataset_key="ring8", dataset="ring8",
                      model={"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
                      loss="non_saturating", seed=3, phase=names.PHASE_SEEDS,
                      train={"steps": 60, "eval_every": 20, "log_every": 5, "batch_size": 32,
                             "eval_samples": 200})
    uri = resolve_tracking_uri(None, tmp_path)
    client = open_store(uri)
    exp = client.create_experiment("s", artifact_location=(tmp_path / "art").as_uri())

    class DiesAfterLogging(MlflowReporter):
        saved: dict | None = None

        def evaluation(self, step, values, artifacts, checkpoint):
            super().evaluation(step, values, artifacts, checkpoint)
            if step == 20:
                type(self).saved = copy.deepcopy(checkpoint())
            if step == 40:  # logged, but its checkpoint never reached Tune
                raise RuntimeError("node lost")

    first = DiesAfterLogging(uri, exp)
    with pytest.raises(RuntimeError, match="node lost"):
        run_trial(cfg, first)

    class Restored(MlflowReporter):
        def restore(self):
            return DiesAfterLogging.saved

    run_trial(cfg, Restored(uri, exp, run_id=first.run_id))
    clean = MlflowReporter(uri, exp)
    run_trial(cfg, clean)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[names.TAG_RESUMED_FROM_STEP] == "20"
    for key in (names.LOSS_D, names.D_REAL, names.MODES_COVERED, names.HQ_FRACTION):
        got = [(m.step, m.value) for m in client.get_metric_history(first.run_id, key)]
        want = [(m.step, m.value) for m in client.get_metric_history(clean.run_id, key)]
        assert [s for s, _ in got] == sorted({s for s, _ in got}), key  # one point per step
        assert got == want, key


def test_the_progress_line_counts_a_retried_trial_as_running_once():
    import io
    from types import SimpleNamespace

    from harness.tune_glue import Progress

    stream = io.StringIO()
    progress = Progress(total=3, concurrency=2, stream=stream)

    def trial(tid):
        return SimpleNamespace(trial_id=tid, config={"label": tid},
                               last_result={names.TAG_STATUS: names.STATUS_OK, "final": True})

    a, b = trial("a"), trial("b")
    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    progress.on_trial_start(0, [], a)  # Tune retries a after its node died
    assert progress.running == 2
    progress.on_trial_complete(0, [], a)
    assert progress.running == 1 and "1/3 trials finished (1 ok, 0 failed), 1 running" in stream.getvalue()
    progress.on_trial_error(0, [], b)
    assert progress.running == 0


def test_held_evaluations_reach_mlflow_before_their_checkpoint(tmp_path, one_thread):
    """A Tune trial's reporters hold each evaluation's batch (``hold_evaluations``): the
    trial sends it just before it saves the checkpoint (``send_pending`` in
    ``after_evaluation``), and the last goes with the run's summary -- one request fewer a
    trial, and a checkpoint never gets ahead of what MLflow holds. The run's artifacts go to
    its artifact repository without a lookup of the run. The run ends the same as one logged
    evaluation by evaluation."""
    from harness.config import TrialConfig
    from harness.tracking import MlflowReporter, open_store, resolve_tracking_uri
    from harness.trial import run_copies, run_trial

    cfg = TrialConfig(study="s", variant="v", dataset_key="ring8", dataset="ring8",
                      model={"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
                      loss="non_saturating", seed=3, phase=names.PHASE_SEEDS, metrics=["mode_coverage"],
                      train={"steps": 40, "eval_every": 20, "log_every": 5, "batch_size": 32,
                             "eval_samples": 200})
    uri = resolve_tracking_uri(None, tmp_path)
    client = open_store(uri)
    exp = client.create_experiment("s", artifact_location=(tmp_path / "art").as_uri())

    held = MlflowReporter(uri, exp, hold_evaluations=True)
    calls: list[str] = []
    for name in ("log_batch", "get_run", "log_artifacts", "set_terminated"):
        method = getattr(held.client, name)
        setattr(held.client, name, lambda *a, _m=method, _n=name, **k: (calls.append(_n),
                                                                         _m(*a, **k))[1])
    seen: list[list[int]] = []

    def after_evaluation(step, values, checkpoint):
        assert client.get_metric_history(held.run_id, names.MODES_COVERED) == []  # held
        held.send_pending()
        seen.append([m.step for m in client.get_metric_history(held.run_id,
                                                                names.MODES_COVERED)])

    run_copies([cfg], [held], after_evaluation=after_evaluation)
    assert seen == [[20]]  # sent before the checkpoint of step 20; none after the last
    # params and chance levels, step 20's rows, then the last rows with the summary; the
    # artifacts through the repository (no get_run), the status last
    assert calls == ["log_batch", "log_batch", "log_batch", "set_terminated"]
    plain = MlflowReporter(uri, exp)
    run_trial(cfg, plain)
    runs = [client.get_run(r.run_id) for r in (held, plain)]
    assert runs[0].info.status == "FINISHED"
    timing = {names.TRAIN_SECONDS, names.STEPS_PER_SECOND}
    assert set(runs[0].data.metrics) == set(runs[1].data.metrics)
    assert {k: v for k, v in runs[0].data.metrics.items() if k not in timing} == {
        k: v for k, v in runs[1].data.metrics.items() if k not in timing}
    for key in (names.LOSS_D, names.MODES_COVERED, names.HQ_FRACTION):
        assert ([(m.step, m.value) for m in client.get_metric_history(held.run_id, key)]
                == [(m.step, m.value) for m in client.get_metric_history(plain.run_id, key)])
    arts = [{a.path for a in client.list_artifacts(r.run_id)} for r in (held, plain)]
    assert arts[0] == arts[1]
    assert {names.ARTIFACT_CONFIG, names.ARTIFACT_FINAL_SAMPLES, "samples"} <= arts[0]


def test_a_run_whose_first_attempt_died_before_its_params_gets_them_on_retry(tmp_path,
                                                                              one_thread):
    """A worker killed between ``create_run`` and the params' batch leaves a bare run; the
    retried trial reopens it (same trial id) and records what it lacks: every param, the
    chance levels once, ``config.json`` and ``derived_params.json`` (found by the sweep
    benchmark's node kills: a FINISHED run without params)."""
    from harness import names as n
    from harness.config import TrialConfig
    from harness.tracking import MlflowReporter, open_store, resolve_tracking_uri
    from harness.trial import run_trial

    cfg = TrialConfig(study="s", variant="v", dataset_key="ring8", dataset="ring8",
                      model={"name": "mlp", "params": {"g_hidden": [16], "d_hidden": [16]}},
                      loss="non_saturating", seed=3, phase=n.PHASE_SEEDS,
                      metrics=["mode_coverage"],
                      train={"steps": 20, "eval_every": 20, "log_every": 5, "batch_size": 32,
                             "eval_samples": 200})
    uri = resolve_tracking_uri(None, tmp_path)
    client = open_store(uri)
    exp = client.create_experiment("s", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp).info.run_id
    bare = client.create_run(exp, tags={n.TAG_PARENT: parent, n.TAG_TRIAL_ID: "t1"})
    retried = MlflowReporter(uri, exp, parent, trial_id="t1")
    run_trial(cfg, retried)
    assert retried.run_id == bare.info.run_id
    run = client.get_run(bare.info.run_id)
    fresh = MlflowReporter(uri, exp, parent, trial_id="t2")
    run_trial(cfg, fresh)
    want = client.get_run(fresh.run_id)
    assert run.info.status == "FINISHED" and run.data.tags[n.TAG_RESTARTS] == "1"
    assert run.data.params == want.data.params and len(run.data.params) > 10
    chance = [k for k in want.data.metrics if k.startswith("chance")]
    assert chance
    for key in chance:
        assert len(client.get_metric_history(run.info.run_id, key)) == 1
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {n.ARTIFACT_CONFIG, n.ARTIFACT_DERIVED_PARAMS} <= arts
