"""``harness study FILE --resume``: refusals (fast) and a real kill -9 of the driver (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from harness import names
from harness.config import load_study
from harness.errors import ConfigError
from harness.resume import NOTE_FILE, find_resumable, write_note
from harness.tracking import open_store, resolve_tracking_uri

STUDY = {
    "name": "resume",
    "seeds": 1,
    "datasets": ["ring8"],
    "train": {"steps": 3000, "eval_every": 300, "eval_samples": 200, "log_every": 50,
              "batch_size": 32},
    "search": {"trials": 3, "algorithm": "random",
               "space": {"lr_d": {"type": "loguniform", "low": 3e-4, "high": 3e-3}}},
    "max_concurrent_trials": 2,
    "variants": [{"name": "v", "model": {"name": "mlp", "params": {"g_hidden": [32], "d_hidden": [32]}},
                  "loss": "non_saturating"}],
}


def _store(tmp_path):
    uri = resolve_tracking_uri(None, tmp_path)
    return uri, open_store(uri)


def _spec(tmp_path, **changes):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**STUDY, **changes}))
    return load_study(path)


def test_resume_without_an_earlier_run_says_so(tmp_path):
    uri, client = _store(tmp_path)
    with pytest.raises(ConfigError, match="has no earlier run .* without --resume"):
        find_resumable(_spec(tmp_path), tmp_path / "runs" / "tune", client, uri)


def test_resume_refuses_a_finished_study_and_a_changed_one(tmp_path):
    uri, client = _store(tmp_path)
    exp = client.create_experiment("resume", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp).info.run_id
    spec = _spec(tmp_path)
    folder = tmp_path / "runs" / "tune" / f"resume-{parent[:8]}"
    write_note(folder, spec, parent, exp, uri)
    assert (folder / NOTE_FILE).is_file()
    changed = _spec(tmp_path, seeds=2)
    with pytest.raises(ConfigError, match="changed since the interrupted run"):
        find_resumable(changed, folder.parent, client, uri)
    with pytest.raises(ConfigError, match="saved no restorable state"):
        find_resumable(spec, folder.parent, client, uri)  # the note alone is not a Tune state
    client.set_terminated(parent, "FINISHED")
    with pytest.raises(ConfigError, match="finished; nothing to resume"):
        find_resumable(spec, folder.parent, client, uri)


def test_cli_resume_without_a_run_exits_2_and_creates_nothing(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(STUDY))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "study", "s.yaml", "--resume"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "has no earlier run" in proc.stderr
    assert not (tmp_path / "runs").exists()
    # a store that was there before stays, untouched
    client = open_store(resolve_tracking_uri(None, tmp_path))
    client.create_experiment("other")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "study", "s.yaml", "--resume"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "has no earlier run" in proc.stderr
    client = open_store(resolve_tracking_uri(None, tmp_path), create=False)
    assert client.get_experiment_by_name("other") is not None
    assert client.get_experiment_by_name("resume") is None


def test_a_checkpoint_folder_tunes_state_names_is_recreated_from_the_newest(tmp_path):
    import torch

    from harness.checkpoint import load_checkpoint, save_checkpoint
    from harness.resume import repair_named_checkpoints

    def trial(tid, status, name):
        return [json.dumps({"trial_id": tid, "status": status, "relative_logdir": f"trial_{tid}"}),
                json.dumps({"last_result": {"step": 300, "checkpoint_dir_name": name}})]

    for step, name in ((600, "checkpoint_000002"), (900, "checkpoint_000003")):
        save_checkpoint(tmp_path / "trial_a" / name, {"step": step, "w": torch.ones(2) * step},
                        {"step": step})
    (tmp_path / "trial_b").mkdir()
    save_checkpoint(tmp_path / "trial_c" / "checkpoint_000000", {"step": 1}, {"step": 1})
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps({"trial_data": [
        trial("a", "RUNNING", "checkpoint_000001"),  # deleted by Tune after 000002, 000003
        trial("b", "PENDING", "checkpoint_000004"),  # nothing usable left
        trial("c", "TERMINATED", "checkpoint_000007"),  # not restored: left alone
    ]}))
    lines = repair_named_checkpoints(tmp_path)
    assert len(lines) == 2 and "copied from checkpoint_000003" in lines[0], lines
    state, meta = load_checkpoint(tmp_path / "trial_a" / "checkpoint_000001")
    assert state["step"] == 900 and meta["step"] == 900
    assert (tmp_path / "trial_b" / "checkpoint_000004").is_dir() and "starts again" in lines[1]
    assert not (tmp_path / "trial_c" / "checkpoint_000007").exists()
    assert repair_named_checkpoints(tmp_path) == []  # nothing left to repair


def _children(client, exp_id):
    runs = client.search_runs([exp_id], max_results=1000)
    return [r for r in runs if names.TAG_PARENT in r.data.tags]


def _session(sid: int) -> list[int]:
    """The processes of session ``sid``: the driver, Ray's daemons and the trial workers
    (each worker leads a process group of its own, so a process-group signal misses them)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            continue
        if int(fields[3]) == sid:
            pids.append(int(proc.name))
    return pids


def _signal_session(sid: int, sig: int) -> None:
    for _ in range(3):  # a process forked while the list was read is caught by the next pass
        for pid in _session(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def _tune_saved(tmp_path) -> dict[str, tuple[int, Path | None]]:
    """Per unfinished trial in Tune's newest saved experiment state (what ``--resume``
    restores): the step of its last result and the checkpoint folder that result named.
    Every result carries a checkpoint, so the trial continues from there (step 0: none
    saved, it starts again in its own run)."""
    states = sorted((tmp_path / "runs" / "tune").glob("*/experiment_state-*.json"))
    if not states:
        return {}
    saved = {}
    for trial_json, meta_json in json.loads(states[-1].read_text())["trial_data"]:
        trial, meta = json.loads(trial_json), json.loads(meta_json)
        if trial["status"] in ("RUNNING", "PENDING", "PAUSED"):
            last = meta.get("last_result") or {}
            folder = (states[-1].parent / trial["relative_logdir"] / last["checkpoint_dir_name"]
                      if last.get("checkpoint_dir_name") else None)
            saved[trial["trial_id"]] = (int(last.get("step", 0)), folder)
    return saved


def _caught_mid_way(tmp_path, uri):
    """While the whole study is frozen: the finished runs and the RUNNING ones that Tune's
    saved state will continue from a checkpoint at step >= 300 (with that checkpoint's
    folder), or None if not yet both."""
    client = open_store(uri, create=False)
    exp = client.get_experiment_by_name("resume")
    if exp is None:
        return None
    kids = _children(client, exp.experiment_id)
    done = [r for r in kids if r.info.status == "FINISHED"]
    saved = _tune_saved(tmp_path)
    mid = [(r, saved[r.data.tags[names.TAG_TRIAL_ID]][1]) for r in kids
           if r.info.status == "RUNNING"
           and saved.get(r.data.tags.get(names.TAG_TRIAL_ID), (0, None))[0] >= 300]
    return (done, mid) if done and mid else None


@pytest.mark.slow
def test_killed_driver_resumes_without_rerun_duplicate_or_running_run(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(STUDY))
    cmd = [sys.executable, "-m", "harness.cli", "study", "s.yaml", "--no-report"]
    # Tune saves the experiment every second (else it spaces saves out on a loaded machine)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True,
                            env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"})
    uri = resolve_tracking_uri(None, tmp_path)
    finished_before: dict[str, int] = {}
    mid_ids: list[str] = []
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            if not (tmp_path / "runs" / "tune").is_dir():  # the store is initialised by then
                continue
            # the study stands still while it is read, so what is read is what the kill
            # leaves: no trial ends or saves in between (a worker outlives its driver a while)
            _signal_session(proc.pid, signal.SIGSTOP)
            try:
                caught = _caught_mid_way(tmp_path, uri)
            except Exception:  # noqa: BLE001 -- a frozen writer may hold the sqlite lock
                caught = None
            if caught is None:
                _signal_session(proc.pid, signal.SIGCONT)
                continue
            done, mid = caught
            finished_before = {r.info.run_id: r.info.end_time for r in done}
            mid_ids = [r.info.run_id for r, _ in mid]
            _signal_session(proc.pid, signal.SIGKILL)  # the driver and everything it started
            # as Tune does when a trial checkpoints twice between its state saves: the folder
            # the saved state names is gone (its content survives under a newer name)
            for _, named in mid:
                if named is not None and named.is_dir():
                    named.rename(named.with_name("checkpoint_999999"))
            break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            _signal_session(proc.pid, signal.SIGKILL)
    assert finished_before, "never saw one finished trial and one mid-way: " + proc.stdout.read()[-3000:]
    client = open_store(uri, create=False)
    exp_id = client.get_experiment_by_name("resume").experiment_id
    assert all(client.get_run(i).info.status == "RUNNING" for i in mid_ids)  # what a kill leaves

    resumed = subprocess.run([*cmd, "--resume"], cwd=tmp_path, capture_output=True, text=True,
                             timeout=500, check=False)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-4000:]
    assert "resuming the interrupted run" in resumed.stderr
    assert "was gone (Tune keeps its newest checkpoints): copied from" in resumed.stderr

    client = open_store(uri, create=False)
    parents = [r for r in client.search_runs([exp_id]) if r.data.tags.get(names.TAG_KIND) == "study"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags[names.TAG_RESTARTS] == "1"
    kids = _children(client, exp_id)
    assert len(kids) == 4  # 3 search + 1 seed trial: no duplicate
    assert len({r.data.tags[names.TAG_TRIAL_ID] for r in kids}) == 4
    assert all(r.info.status == "FINISHED" for r in kids), [(r.info.run_name, r.info.status) for r in kids]
    assert all(r.data.metrics[names.STEPS_DONE] == STUDY["train"]["steps"] for r in kids)
    by_id = {r.info.run_id: r for r in kids}
    for run_id, end in finished_before.items():  # finished trials were not run again
        assert by_id[run_id].info.end_time == end and names.TAG_RESTARTS not in by_id[run_id].data.tags
    for run_id in mid_ids:  # caught mid-way: continued in its own run from its checkpoint
        tags = by_id[run_id].data.tags
        assert tags.get(names.TAG_RESTARTS) == "1" and int(tags[names.TAG_RESUMED_FROM_STEP]) >= 300, tags
    phases = sorted(r.data.tags[names.TAG_PHASE] for r in kids)
    assert phases == [names.PHASE_SEARCH] * 3 + [names.PHASE_SEEDS]
    search_lrs = {r.data.params["lr_d"] for r in kids if r.data.tags[names.TAG_PHASE] == names.PHASE_SEARCH}
    seed_run = next(r for r in kids if r.data.tags[names.TAG_PHASE] == names.PHASE_SEEDS)
    assert seed_run.data.params["lr_d"] in search_lrs  # the restored searcher picked a searched value


def test_a_resumed_or_interrupted_study_reports_no_training_share():
    """A run logs its training time when it ends: runs cut short count nothing, and a resumed
    run counts its earlier sittings (a resumed study printed '1611% ... spent training')."""
    from harness.study import StudyOutcome, _parent_metrics

    done = StudyOutcome("u", "e", "p", n_runs=2, concurrency=2, study_seconds=10.0,
                        train_seconds=15.0)
    assert done.training_share == pytest.approx(0.75)
    assert "training_share" in {m.key for m in _parent_metrics(done)}
    for cut in (StudyOutcome("u", "e", "p", resumed=True, study_seconds=10.0, train_seconds=160.0),
                StudyOutcome("u", "e", "p", interrupted=True, study_seconds=10.0)):
        assert cut.training_share is None
        assert "training_share" not in {m.key for m in _parent_metrics(cut)}
