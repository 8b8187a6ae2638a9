"""Tracking through an MLflow server (``harness server``): a server that is down at start is a
clear error (exit 2, nothing created); one that goes away mid-study makes logging wait and
retry, and nothing is lost when it returns within ``HARNESS_TRACKING_TIMEOUT``."""

from __future__ import annotations

import itertools
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
import yaml

from harness import names, server, tracking
from harness.errors import ConfigError, TrackingError

STUDY = {
    "name": "srv",
    "seeds": 1,
    "datasets": ["ring8"],
    "train": {"steps": 40, "eval_every": 20, "eval_samples": 200, "log_every": 10,
              "batch_size": 32},
    "search": {"trials": 1, "space": {"lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}},
    "variants": [{"name": "v", "loss": "minimax",
                  "model": {"name": "mlp", "params": {"g_hidden": [8], "d_hidden": [8]}}}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def harness(*args, cwd, timeout=120):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def _fresh_outage_clock(monkeypatch):
    """Each test starts with the tracking server deemed reachable."""
    monkeypatch.setattr(tracking, "_down_since", None)


def test_server_down_at_start_exits_2_naming_the_uri_and_creates_nothing(tmp_path):
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY))
    uri = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    t0 = time.monotonic()
    proc = harness("study", "study.yaml", "--tracking-uri", uri, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1, proc.stderr
    assert err[0].startswith(f"harness: error: cannot open tracking store '{uri}': "
                             "no MLflow server answers there (")
    assert "Connection refused" in err[0] and "harness server" in err[0]
    assert time.monotonic() - t0 < 60
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # no runs/, no Ray state


def test_a_malformed_timeout_is_refused_before_anything(monkeypatch, tmp_path):
    monkeypatch.setenv(tracking.TIMEOUT_ENV, "soon")
    with pytest.raises(TrackingError, match="HARNESS_TRACKING_TIMEOUT='soon' is not a number"):
        tracking.open_store(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    monkeypatch.setenv(tracking.TIMEOUT_ENV, "-1")
    with pytest.raises(TrackingError, match="allowed: a number >= 0"):
        tracking.tracking_timeout()
    monkeypatch.setenv(tracking.TIMEOUT_ENV, "2.5")
    assert tracking.tracking_timeout() == 2.5
    monkeypatch.delenv(tracking.TIMEOUT_ENV)
    assert tracking.tracking_timeout() == tracking.DEFAULT_TIMEOUT


def test_retry_waits_out_an_outage_and_gives_up_after_the_timeout(monkeypatch, capsys):
    monkeypatch.setenv(tracking.TIMEOUT_ENV, "30")
    calls = []

    def flaky(value):  # down twice, then back
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise requests.ConnectionError("[Errno 111] Connection refused")
        return value

    assert tracking.retry(flaky, 7) == 7
    assert len(calls) == 3 and calls[-1] - calls[0] >= 2.5  # waited 1 s, then 2 s
    err = capsys.readouterr().err
    assert "tracking server unreachable" in err and "reachable again after" in err
    assert tracking._down_since is None

    def refused():
        raise requests.ConnectionError("[Errno 111] Connection refused")

    monkeypatch.setenv(tracking.TIMEOUT_ENV, "1.5")
    t0 = time.monotonic()
    with pytest.raises(TrackingError, match=r"unreachable for \ds, longer than "
                                            r"HARNESS_TRACKING_TIMEOUT=1.5"):
        tracking.retry(refused)
    assert 1.4 < time.monotonic() - t0 < 5
    t0 = time.monotonic()  # the outage outlasted the timeout: the next call fails at once
    with pytest.raises(TrackingError):
        tracking.retry(refused)
    assert time.monotonic() - t0 < 0.5


def test_only_unreachable_servers_are_waited_for():
    from mlflow.exceptions import MlflowException

    assert tracking.unreachable(requests.ConnectionError("refused"))
    assert tracking.unreachable(requests.Timeout("read timed out"))
    try:  # MLflow's wrapping of a refused connection, as its REST client raises it
        try:
            raise requests.ConnectionError("Max retries exceeded")
        except requests.ConnectionError as inner:
            raise MlflowException("API request to http://h:5000/x failed with exception") from inner
    except MlflowException as wrapped:
        assert tracking.unreachable(wrapped)
    assert tracking.unreachable(MlflowException(
        "API request to endpoint /api/2.0/mlflow/runs/log-batch failed with error code 503 != 200"))
    # MLflow retries a proxy's 502 itself (urllib3), then raises the exhausted retries
    try:
        try:
            raise requests.exceptions.RetryError(
                "HTTPConnectionPool(host='h', port=5000): Max retries exceeded with url: "
                "/api/2.0/mlflow/runs/search (Caused by ResponseError('too many 502 error "
                "responses'))")
        except requests.exceptions.RetryError as inner:
            raise MlflowException(f"API request to http://h:5000/x failed with exception {inner}")
    except MlflowException as exhausted:
        assert tracking.unreachable(exhausted)
    assert not tracking.unreachable(MlflowException("RESOURCE_DOES_NOT_EXIST: run 'x' not found"))
    assert not tracking.unreachable(MlflowException("failed with error code 400 != 200"))
    calls = []

    def bad_request():
        calls.append(1)
        raise MlflowException("INVALID_PARAMETER_VALUE: bad key")

    with pytest.raises(MlflowException):
        tracking.retry(bad_request)
    assert calls == [1]  # a refused request is not retried


def test_bind_warning_only_beyond_loopback():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert server.bind_warning(host) is None, host
    for host in ("0.0.0.0", "10.0.0.5", "::"):
        text = server.bind_warning(host)
        assert text.startswith(f"warning: the MLflow server listens on {host}, ")
        assert "no authentication" in text


def test_server_command_serves_artifacts_from_the_store(tmp_path):
    cmd = server.server_command(tmp_path, "127.0.0.1", 5123)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    args = dict(itertools.pairwise(cmd))
    assert args["--backend-store-uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert args["--artifacts-destination"] == str(tmp_path / "mlartifacts")
    assert "--serve-artifacts" in cmd
    assert args["--host"] == "127.0.0.1" and args["--port"] == "5123"
    assert "--allowed-hosts" not in cmd  # MLflow's defaults: localhost and private addresses
    wide = dict(itertools.pairwise(server.server_command(tmp_path, "0.0.0.0", 5123, 1, "head")))
    allowed = wide["--allowed-hosts"].split(",")
    advertised = server.advertised_host("0.0.0.0")
    assert {"localhost", "127.0.0.1:*", "10.*", "head", f"{advertised}:5123"} <= set(allowed)


def test_server_on_a_taken_port_exits_2(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = harness("server", "--port", str(port), "--store", str(tmp_path / "st"),
                       cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert f"harness: error: cannot serve on 127.0.0.1:{port}: " in proc.stderr
    assert "pick another --port" in proc.stderr
    assert not (tmp_path / "st").exists()  # refused before the store folder was made


def test_custom_resources_are_validated():
    from harness.config import parse_study

    def load(custom):
        return parse_study({**STUDY, "resources": {"cpu": 1, "custom": custom}})

    assert load({"a100": 1}).resources.custom == {"a100": 1.0}
    with pytest.raises(ConfigError, match=r"resources.custom: .*'GPU' is not a custom resource"):
        load({"GPU": 1})
    with pytest.raises(ConfigError, match=r"resources.custom: .*amount must be > 0"):
        load({"a100": 0})


def test_custom_resources_reach_tune_and_are_checked_against_the_cluster():
    from harness.config import parse_study
    from harness.errors import ClusterError
    from harness.study import check_resources, trial_resources

    spec = parse_study({**STUDY, "resources": {"cpu": 1, "custom": {"a100": 1}}})
    assert trial_resources(spec) == {"cpu": 1.0, "gpu": 0.0, "a100": 1.0}
    assert check_resources(spec, {"CPU": 4, "a100": 2}, joined=False) is None
    with pytest.raises(ClusterError, match=r"asks for 1 'a100', but the Ray cluster has 4 CPU "
                                           r"and 0 GPU and 0 'a100'.*ray start --resources"):
        check_resources(spec, {"CPU": 4}, joined=False)
    assert check_resources(spec, {"CPU": 4}, joined=True).startswith("warning: ")


@pytest.mark.slow
def test_logging_survives_the_server_going_away_and_coming_back(tmp_path, monkeypatch):
    """Stop the server while a trial logs, start it again on the same port and store a few
    seconds later: every metric and artifact logged meanwhile lands."""
    monkeypatch.setenv(tracking.TIMEOUT_ENV, "240")
    port, store = free_port(), tmp_path / "store"
    uri = f"http://127.0.0.1:{port}"
    proc = server.start(store, port=port, quiet=True)
    restarted: list[subprocess.Popen] = []
    try:
        server.wait_ready(proc, uri)
        client = tracking.open_store(uri)
        exp_id = tracking.ensure_experiment(client, "outage",
                                            tracking.artifact_location(uri, "outage"))
        assert client.get_experiment(exp_id).artifact_location.startswith("mlflow-artifacts:")
        run_id = client.create_run(exp_id).info.run_id
        reporter = tracking.MlflowReporter(uri, exp_id, run_id=run_id)
        reporter.history([(10, {names.LOSS_D: 1.0}), (20, {names.LOSS_D: 0.9})])

        server.stop(proc)  # the server goes away mid-trial ...

        def come_back():  # ... and returns on the same port and store a few seconds later
            time.sleep(3)
            restarted.append(server.start(store, port=port, quiet=True))

        t = threading.Thread(target=come_back)
        t.start()
        t0 = time.monotonic()
        reporter.history([(30, {names.LOSS_D: 0.8}), (40, {names.LOSS_D: 0.7})])
        reporter.evaluation(40, {names.MODES_COVERED: 5.0},  # sends the rows too: waits
                            {f"{names.ARTIFACT_SAMPLES_DIR}/step_40.png": b"png-bytes"}, dict)
        waited = time.monotonic() - t0
        t.join()
        assert waited > 3  # the first call after the outage waited for the server
        hist = client.get_metric_history(run_id, names.LOSS_D)
        assert sorted((m.step, m.value) for m in hist) == [
            (10, 1.0), (20, 0.9), (30, 0.8), (40, 0.7)]
        assert client.get_run(run_id).data.metrics[names.MODES_COVERED] == 5.0
        arts = {a.path for a in client.list_artifacts(run_id, names.ARTIFACT_SAMPLES_DIR)}
        assert arts == {f"{names.ARTIFACT_SAMPLES_DIR}/step_40.png"}
        # artifacts went through the server, into its store
        assert list(store.glob("mlartifacts/**/step_40.png"))
    finally:
        for p in [proc, *restarted]:
            server.stop(p)


def test_the_mlflow_job_runner_is_off_unless_asked_for(tmp_path, monkeypatch):
    """MLflow's server starts seven polling job-runner processes unless its switch says
    no; the harness's servers say no, and a value the user set wins."""
    import sys

    def seen() -> str:
        out = tmp_path / "env.txt"
        code = (f"import os; open({str(out)!r}, 'w').write("
                f"os.environ.get({server.JOB_EXECUTION_ENV!r}, 'unset'))")
        assert server.spawn([sys.executable, "-c", code]).wait(60) == 0
        return out.read_text()

    monkeypatch.delenv(server.JOB_EXECUTION_ENV, raising=False)
    assert seen() == "false"
    monkeypatch.setenv(server.JOB_EXECUTION_ENV, "true")
    assert seen() == "true"
