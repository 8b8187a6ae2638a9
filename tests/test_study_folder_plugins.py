"""A study file's own plugin module, next to it, works without an install or PYTHONPATH,
and nothing a user keeps in that folder hides the built-ins."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

LOSS_MODULE = textwrap.dedent('''
    import torch.nn.functional as F

    from harness.losses import Loss
    from harness.registry import register_loss


    @register_loss("folder_hinge")
    class FolderHinge(Loss):
        """Hinge loss, registered by a module that sits next to its study file."""

        def d_loss(self, real_logits, fake_logits):
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

        def g_loss(self, fake_logits):
            return -fake_logits.mean()
''')

STUDY = {
    "name": "folder-plugin",
    "plugins": ["my_losses"],
    "seeds": 1,
    "datasets": ["ring8"],
    "train": {"steps": 30, "eval_every": 30, "eval_samples": 200, "log_every": 10,
              "batch_size": 32},
    "search": {"trials": 1, "space": {"lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}},
    "variants": [{"name": "v", "loss": "folder_hinge",
                  "model": {"name": "mlp", "params": {"g_hidden": [8], "d_hidden": [8]}}}],
}


def harness_command() -> list[str]:
    """The installed console script, as a user runs it (``python -m`` would put the working
    directory on the import path and hide what this file tests)."""
    script = shutil.which("harness") or str(Path(sys.executable).parent / "harness")
    return [script]


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{cwd / 'mlflow.db'}"
    return subprocess.run(harness_command() + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def make_project(tmp_path: Path) -> Path:
    proj = tmp_path / "project"
    proj.mkdir()
    (proj / "my_losses.py").write_text(LOSS_MODULE)
    (proj / "study.yaml").write_text(yaml.safe_dump(STUDY))
    # folders named like the packages a harness once installed at top level
    for shadow in ("variants", "reports", "builtin"):
        (proj / shadow).mkdir()
        (proj / shadow / "__init__.py").write_text("raise ImportError('a user folder was imported')\n")
    return proj


def test_a_module_next_to_the_study_file_registers_from_any_folder(tmp_path):
    proj = make_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = run(["run", str(proj / "study.yaml"), "--variant", "v"], cwd=elsewhere)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = run(["study", "../project/study.yaml", "--no-report"], cwd=elsewhere)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "study finished" in out and "(2 ok, 0 failed)" in out, out


def test_a_module_in_the_working_directory_registers(tmp_path):
    proj = make_project(tmp_path)
    studies = proj / "studies"
    studies.mkdir()
    shutil.move(str(proj / "study.yaml"), studies / "study.yaml")
    proc = run(["run", "studies/study.yaml", "--variant", "v"], cwd=proj)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_user_folders_never_hide_the_built_ins(tmp_path):
    proj = make_project(tmp_path)
    proc = run(["variants"], cwd=proj)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("mlp", "dcgan", "minimax", "least_squares", "ring8", "mode_coverage",
                 "folder_hinge"):
        if name == "folder_hinge":
            assert name not in proc.stdout  # not named by any study: not loaded
        else:
            assert f"  {name} " in proc.stdout, (name, proc.stdout[:2000])


def test_a_missing_study_module_names_where_it_looked(tmp_path):
    proj = make_project(tmp_path)
    (proj / "my_losses.py").unlink()
    proc = run(["run", "study.yaml", "--variant", "v"], cwd=proj)
    assert proc.returncode == 2
    assert "plugins[0]: cannot import module 'my_losses'" in proc.stderr, proc.stderr
