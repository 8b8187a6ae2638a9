"""What code and libraries a run ran with: the project's git commit and the versions that
decide its numbers.

Every trial run is tagged with these by the process that trains it (a retried trial: its
latest attempt, which may be on another node with another install), and the study's parent
run with the driver's. Tags, not params: a resumed run may change them, params are
write-once.

* ``git_commit`` -- ``git rev-parse HEAD`` of the checkout this ``harness`` package was
  imported from, and ``git_dirty`` -- ``true`` when tracked files differ from it (``git
  status --porcelain --untracked-files=no``). Both are left out when the package is not in
  a git checkout (an installed wheel) or git is missing: a missing tag, never a guess.
* ``version.<name>`` -- ``python`` and the installed distributions of :data:`PACKAGES`
  (``importlib.metadata``, so nothing is imported for it), plus ``version.cuda`` (torch's
  CUDA build, ``none`` for a CPU build). A distribution that is not installed is left out.

Computed once per process.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

from harness import names

#: distributions whose version is recorded (``version.<name>`` tags)
PACKAGES = ("gan-harness", "torch", "torchvision", "numpy", "ray", "optuna", "mlflow",
            "torch-fidelity", "pandas", "scipy")


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: Path | None = None) -> dict[str, str]:
    """``{git_commit, git_dirty}`` of the checkout at ``root`` (default: the one holding this
    package); empty outside a git checkout."""
    root = Path(root or Path(__file__).resolve().parent)
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return {}
    changes = _git(root, "status", "--porcelain", "--untracked-files=no")
    state = {names.TAG_GIT_COMMIT: commit}
    if changes is not None:
        state[names.TAG_GIT_DIRTY] = "true" if changes else "false"
    return state


def library_versions() -> dict[str, str]:
    """``{version.python: ..., version.torch: ..., version.cuda: ...}`` for what is installed."""
    out = {f"{names.TAG_VERSION_PREFIX}python": platform.python_version()}
    for dist in PACKAGES:
        try:
            out[f"{names.TAG_VERSION_PREFIX}{dist}"] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    import torch

    out[f"{names.TAG_VERSION_PREFIX}cuda"] = torch.version.cuda or "none"
    return out


@functools.cache
def provenance_tags() -> dict[str, str]:
    """The git state and library versions of this process, as run tags (cached)."""
    return {**git_state(), **library_versions()}
