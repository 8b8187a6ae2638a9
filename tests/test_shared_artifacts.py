"""``harness server --artifacts-root``: new experiments keep their artifacts in a folder (or
object store) the clients write and read themselves, not through the server; a machine
that does not see that folder is refused instead of writing where nobody looks."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import names, server, tracking
from harness.errors import TrackingError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def harness(*args, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          check=False, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _forget_seen_roots(monkeypatch):
    monkeypatch.setattr(tracking, "_REACHABLE", set())


def test_a_local_root_is_created_absolute_and_marked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = server.shared_artifacts_root("shared/arts", tmp_path / "store")
    root = tmp_path / "shared" / "arts"
    assert uri == root.as_uri()
    assert (root / names.ARTIFACT_ROOT_MARKER).is_file()
    assert server.shared_artifacts_root(root.as_uri(), tmp_path) == root.as_uri()
    # an object store is every client's own business
    assert server.shared_artifacts_root(" s3://bucket/gan ", tmp_path) == "s3://bucket/gan"


def test_a_root_that_cannot_be_made_or_is_empty_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(TrackingError, match=r"cannot use --artifacts-root .*afile/sub"):
        server.shared_artifacts_root(str(tmp_path / "afile" / "sub"), tmp_path)
    with pytest.raises(TrackingError, match="--artifacts-root is empty; allowed: a folder"):
        server.shared_artifacts_root("  ", tmp_path)


def test_the_server_command_names_the_root_and_still_serves_older_experiments(tmp_path):
    cmd = server.server_command(tmp_path, "127.0.0.1", 5123, artifacts_root="file:///shared")
    args = dict(itertools.pairwise(cmd))
    assert args["--default-artifact-root"] == "file:///shared"
    assert "--serve-artifacts" in cmd  # experiments made before keep mlflow-artifacts:/
    assert "--default-artifact-root" not in server.server_command(tmp_path, "127.0.0.1", 5123)


def test_a_machine_without_the_shared_folder_is_refused(tmp_path):
    http = "http://head:5000"
    root = tmp_path / "root"
    exp_dir = root / "1"
    run_dir = exp_dir / "abc" / "artifacts"
    for uri, run in ((run_dir.as_uri(), True), (str(run_dir), True), (exp_dir.as_uri(), False)):
        with pytest.raises(TrackingError, match=f"the artifacts go to {exp_dir}, a folder this "
                                                "machine does not share"):
            tracking.check_artifact_access(http, uri, run=run)
    assert not root.exists()  # nothing written where nobody would look
    root.mkdir()
    (root / names.ARTIFACT_ROOT_MARKER).write_text("")
    tracking.check_artifact_access(http, run_dir.as_uri())
    tracking.check_artifact_access(http, exp_dir.as_uri(), run=False)
    assert tracking.shared_root(exp_dir) == root
    # a local study's experiment folder, already on this machine: the study warns instead
    legacy = tmp_path / "runs" / "artifacts" / "stability"
    legacy.mkdir(parents=True)
    tracking.check_artifact_access(http, (legacy / "abc" / "artifacts").as_uri())
    assert tracking.shared_root(legacy) is None
    # not concerned: a local store, the server's own proxy, an object store
    tracking.check_artifact_access("sqlite:////tmp/x.db", (tmp_path / "elsewhere").as_uri())
    tracking.check_artifact_access(http, "mlflow-artifacts:/1/abc/artifacts")
    tracking.check_artifact_access(http, "s3://bucket/1/abc/artifacts")


@pytest.mark.slow
def test_a_study_writes_its_artifacts_to_the_shared_folder_and_reports_from_it(tmp_path):
    port, store, root = free_port(), tmp_path / "store", tmp_path / "shared"
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "server", "--port", str(port),
                             "--store", str(store), "--artifacts-root", str(root)],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = tmp_path / "work"
    work.mkdir()
    (work / "study.yaml").write_text(yaml.safe_dump({
        "name": "shared", "datasets": ["ring8"],
        "train": {"steps": 20, "eval_every": 20, "eval_samples": 200},
        "search": {"trials": 0}, "seeds": 1,
        "variants": [{"name": "v", "model": "mlp", "loss": "non_saturating"}]}))
    try:
        server.wait_ready(proc, url)
        done = harness("study", "study.yaml", "--tracking-uri", url, cwd=work)
        assert done.returncode == 0, done.stderr[-3000:]
        client = tracking.open_store(url, create=False)
        (exp,) = [e for e in client.search_experiments() if e.name == "shared"]
        assert exp.artifact_location.startswith(root.as_uri())
        written = {p.name for p in root.rglob("*") if p.is_file()}
        assert {names.ARTIFACT_CONFIG, names.ARTIFACT_FINAL_SAMPLES,
                names.ARTIFACT_GENERATOR} <= written
        served = store / "mlartifacts"
        assert not served.exists() or not any(p.is_file() for p in served.rglob("*"))

        report = harness("report", "--tracking-uri", url, "--out", str(tmp_path / "rep"),
                         cwd=work)
        assert report.returncode == 0, report.stderr[-3000:]
        assert (tmp_path / "rep" / "report.md").is_file()
        assert any(p.name.startswith("samples") for p in (tmp_path / "rep").glob("*.png"))

        # where the folder is not mounted: the report and a new study are refused, naming
        # it, and the study leaves no experiment behind
        root.rename(tmp_path / "unmounted")
        blind = harness("report", "--tracking-uri", url, "--out", str(tmp_path / "rep2"),
                        cwd=work)
        assert blind.returncode == 2, blind.stderr[-3000:]
        assert f"the artifacts go to {root / exp.experiment_id}, a folder" in blind.stderr
        assert "mount the folder given to `harness server --artifacts-root`" in blind.stderr
        assert not (tmp_path / "rep2").exists()
        other = yaml.safe_load((work / "study.yaml").read_text())
        (work / "other.yaml").write_text(yaml.safe_dump({**other, "name": "other"}))
        refused = harness("study", "other.yaml", "--tracking-uri", url, cwd=work)
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert "a folder this machine does not share with the tracking server" in refused.stderr
        assert "other" not in {e.name for e in client.search_experiments()}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert Path(store / "mlflow.db").is_file()
