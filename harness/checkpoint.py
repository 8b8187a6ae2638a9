"""Trial checkpoints on disk: written atomically, verified on load, never unpickled blindly.

A checkpoint is a folder with two files:

* ``state.pt`` -- the whole trial state (:meth:`harness.loop.TrainingLoop.state_dict`:
  networks, optimizers, trick state, RNG states, step, histories), saved with
  ``torch.save`` and loaded with ``torch.load(weights_only=True)``, so a checkpoint can
  hold tensors, numbers, strings and containers of them but never run code on load;
* ``meta.json`` -- the step, the MLflow run id and the SHA-256 of ``state.pt``.

Both are written to a temporary name and renamed into place (``os.replace``), ``meta.json``
last: a folder whose ``meta.json`` exists has a complete ``state.pt``, and a truncated or
altered ``state.pt`` fails the checksum with a :class:`CheckpointError` that names the
file and what is wrong, instead of a crash deep inside ``torch.load``.

:func:`load_first_good` walks a trial's checkpoints newest first (:func:`trial_checkpoints`:
by step, whatever Tune's saved state names) and returns the first one that loads, with a
line for every one it skipped, so a corrupt latest checkpoint costs only the steps since
the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

STATE_FILE = "state.pt"
META_FILE = "meta.json"


class CheckpointError(HarnessError):
    """A checkpoint folder that cannot be used (missing, truncated, altered or unreadable)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def save_checkpoint(folder: str | Path, state: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``state`` and ``meta`` (plus the state's checksum) into ``folder``, atomically."""
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{STATE_FILE}.tmp"
    torch.save(state, tmp)
    _replace(tmp, folder / STATE_FILE)
    meta = {**meta, "sha256": _sha256(folder / STATE_FILE)}
    tmp = folder / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta))
    _replace(tmp, folder / META_FILE)


def read_meta(folder: str | Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint folder; CheckpointError when absent or not JSON."""
    path = Path(folder) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {folder}: {META_FILE} is missing (incomplete write)") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {folder}: {META_FILE} is unreadable: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {folder}: {META_FILE} is not a JSON object")
    return meta


def load_checkpoint(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(state, meta)`` of a checkpoint folder, after checking the state's checksum."""
    import torch

    folder = Path(folder)
    meta = read_meta(folder)
    state_path = folder / STATE_FILE
    if not state_path.is_file():
        raise CheckpointError(f"checkpoint {folder}: {STATE_FILE} is missing")
    expected = meta.get("sha256")
    if expected is not None and _sha256(state_path) != expected:
        raise CheckpointError(
            f"checkpoint {folder}: {STATE_FILE} does not match the checksum in {META_FILE} "
            f"({state_path.stat().st_size} bytes; truncated or altered)")
    try:
        state = torch.load(state_path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 -- torch raises several types for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"checkpoint {folder}: {STATE_FILE} cannot be loaded: {first[:300]}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {folder}: {STATE_FILE} does not hold a state dict")
    return state, meta


def load_first_good(folders: Iterable[str | Path]) -> tuple[dict | None, dict | None, list[str]]:
    """The first folder (in the given order) that loads: ``(state, meta, skipped)``.

    ``skipped`` holds one line per unusable folder. When none loads, ``state`` is None and
    ``meta`` is the first readable ``meta.json`` (it still names the trial's MLflow run),
    or None.
    """
    skipped: list[str] = []
    fallback_meta = None
    for folder in folders:
        try:
            state, meta = load_checkpoint(folder)
            return state, meta, skipped
        except CheckpointError as exc:
            skipped.append(str(exc))
            if fallback_meta is None:
                try:
                    fallback_meta = read_meta(folder)
                except CheckpointError:
                    pass
    return None, fallback_meta, skipped


def trial_checkpoints(latest: str | Path) -> list[Path]:
    """The trial's checkpoint folders, newest step first: ``latest`` (the one Tune's state
    names) and every ``checkpoint_*`` folder beside it.

    Ordered by the step in ``meta.json``, not by name or by what Tune named: a driver killed
    between Tune's state saves leaves newer checkpoints than the saved state knows (and Tune
    may have deleted the one it names to keep ``num_to_keep``), and a restored trial reuses
    folder names it numbered before. Every evaluation up to a checkpoint is already in
    MLflow when the checkpoint is written, so the newest complete one is the right start.
    Folders whose ``meta.json`` cannot be read come last (they are tried and reported)."""
    latest = Path(latest)
    folders = {latest, *(p for p in latest.parent.glob("checkpoint_*") if p.is_dir())}

    def step(folder: Path) -> float:
        try:
            return float(read_meta(folder).get("step", -1))
        except (CheckpointError, TypeError, ValueError):
            return -1.0

    return sorted(folders, key=lambda f: (step(f), f == latest, f.name), reverse=True)
