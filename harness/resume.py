"""``harness study FILE --resume``: find the study's interrupted Tune experiment and check
that it can be continued.

Every study writes a note (``harness-study.json``) into its Tune experiment folder
(``runs/tune/<study>-<parent run>/``) before the first trial starts: the study's name,
the MLflow parent run and experiment, the tracking URI and a hash of the validated study
(so comments and formatting may change, settings may not). ``--resume`` takes the newest
note of the same study whose parent run did not finish, checks the hash, the tracking URI
and that Tune saved a restorable state, and hands back what the study needs to call
``Tuner.restore`` and to reopen its parent run. Anything that does not hold is a
:class:`~harness.errors.ConfigError` (exit 2) that says what was found and what to do.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.checkpoint import CheckpointError, load_checkpoint, trial_checkpoints
from harness.config import StudySpec
from harness.errors import ConfigError

NOTE_FILE = "harness-study.json"


@dataclass(frozen=True)
class Resumable:
    """An interrupted study: its Tune experiment folder and MLflow parent run."""

    path: Path
    parent_run_id: str
    experiment_id: str


def spec_hash(spec: StudySpec) -> str:
    """A hash of the validated study: equal for files that differ only in comments/layout."""
    text = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_note(folder: Path, spec: StudySpec, parent_run_id: str, experiment_id: str,
               tracking_uri: str) -> None:
    """Record in ``folder`` (the Tune experiment path) what ``--resume`` needs; called on
    the driver right before the Tune experiment starts."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{NOTE_FILE}.tmp"
    tmp.write_text(json.dumps({
        "study": spec.name, "parent_run_id": parent_run_id, "experiment_id": experiment_id,
        "tracking_uri": tracking_uri, "spec_sha256": spec_hash(spec)}, indent=2))
    tmp.replace(folder / NOTE_FILE)


def find_resumable(spec: StudySpec, tune_root: Path, client, tracking_uri: str) -> Resumable:
    """The newest interrupted run of ``spec`` under ``tune_root``; ConfigError if none."""
    from ray import tune

    notes = []
    for path in tune_root.glob(f"*/{NOTE_FILE}"):
        try:
            note = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if note.get("study") == spec.name:
            notes.append((path.stat().st_mtime, path.parent, note))
    if not notes:
        raise ConfigError(f"--resume: study {spec.name!r} has no earlier run under {tune_root}; "
                          "run it without --resume")
    _, folder, note = max(notes, key=lambda n: n[0])
    parent_id = note["parent_run_id"]
    try:
        parent = client.get_run(parent_id)
    except Exception:  # noqa: BLE001 -- MLflow raises its own type for a missing run
        raise ConfigError(
            f"--resume: the latest run of study {spec.name!r} ({folder.name}) logged to parent "
            f"run {parent_id} at {note.get('tracking_uri')}, which {tracking_uri} does not have; "
            "pass the same --tracking-uri") from None
    if parent.info.status == "FINISHED":
        raise ConfigError(
            f"--resume: the latest run of study {spec.name!r} (parent run {parent_id}) finished; "
            "nothing to resume. Run it without --resume to start a new one")
    if note.get("spec_sha256") != spec_hash(spec):
        raise ConfigError(
            f"--resume: study {spec.name!r} changed since the interrupted run {parent_id} "
            f"started ({folder.name}); resume with the same settings, or run without --resume "
            "to start a new study")
    if not tune.Tuner.can_restore(str(folder)):
        raise ConfigError(f"--resume: Tune saved no restorable state in {folder}; run the "
                          "study without --resume")
    return Resumable(folder, parent_id, parent.info.experiment_id)


#: Tune trial statuses ``Tuner.restore(resume_unfinished=True)`` runs again
_UNFINISHED = ("PENDING", "RUNNING", "PAUSED")


def repair_named_checkpoints(folder: Path) -> list[str]:
    """Before ``Tuner.restore``: give every unfinished trial of Tune's newest saved state in
    ``folder`` the checkpoint folder that state names; one line per folder re-created.

    Tune deletes a trial's older checkpoints as it registers new ones (``num_to_keep``), so
    a driver killed between two saves of its state can leave a state naming a folder that
    is gone; Ray then refuses to restore the trial ("does not exist on storage anymore")
    and the trial fails on every retry. The folder is re-created as a copy of the trial's
    newest checkpoint that loads (by step: :func:`~harness.checkpoint.trial_checkpoints`),
    or empty when none does (the trial then starts again, in its own MLflow run)."""
    states = sorted(folder.glob("experiment_state-*.json"))
    try:
        trials = json.loads(states[-1].read_text())["trial_data"] if states else []
    except (OSError, ValueError, KeyError):
        return []  # Tune's own restore reports an unreadable state
    lines = []
    for trial_json, meta_json in trials:
        try:
            trial, meta = json.loads(trial_json), json.loads(meta_json)
        except (TypeError, ValueError):
            continue
        name = (meta.get("last_result") or {}).get("checkpoint_dir_name")
        logdir = trial.get("relative_logdir")
        if trial.get("status") not in _UNFINISHED or not name or not logdir:
            continue
        named = folder / logdir / name
        if named.exists():
            continue
        for candidate in trial_checkpoints(named):
            try:
                load_checkpoint(candidate)
            except CheckpointError:
                continue
            shutil.copytree(candidate, named)
            lines.append(f"{named} was gone (Tune keeps its newest checkpoints): copied from "
                         f"{candidate.name}")
            break
        else:
            named.mkdir(parents=True)
            lines.append(f"{named} was gone and the trial has no usable checkpoint: it starts "
                         "again")
    return lines
