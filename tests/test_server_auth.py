"""``harness server --auth``: MLflow's basic-auth app with the account of
MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD. A request without them, or with wrong ones,
is refused; clients that send them work; bad credentials are an error (exit 2) before
anything starts or is written."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import yaml

from harness import server, server_auth, study, tracking
from harness.errors import TrackingError

USER, PASSWORD = "alice", "correct-horse-battery"
SEARCH = "/api/2.0/mlflow/experiments/search"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with(**creds) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in server_auth.CREDENTIAL_ENVS}
    return {**env, **creds}


def harness(*args, cwd, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, env=env,
                          check=False, capture_output=True, text=True, timeout=timeout)


def test_credentials_come_from_the_clients_variables_and_follow_mlflows_policy():
    both = {server_auth.USER_ENV: USER, server_auth.PASSWORD_ENV: PASSWORD}
    assert server_auth.credentials_from_env(both) == (USER, PASSWORD)
    with pytest.raises(TrackingError, match="--auth needs MLFLOW_TRACKING_USERNAME and "
                                            "MLFLOW_TRACKING_PASSWORD set"):
        server_auth.credentials_from_env({})
    with pytest.raises(TrackingError, match="--auth needs MLFLOW_TRACKING_PASSWORD set"):
        server_auth.credentials_from_env({server_auth.USER_ENV: USER})
    with pytest.raises(TrackingError, match="at least 12 characters.*got 5"):
        server_auth.credentials_from_env({**both, server_auth.PASSWORD_ENV: "short"})
    assert server_auth.forwarded({**both, "OTHER": "x"}) == both
    assert server_auth.forwarded({server_auth.USER_ENV: ""}) == {}


def test_the_settings_file_holds_no_secret_and_grants_nothing_by_default(tmp_path):
    env = server_auth.prepare(tmp_path, USER, PASSWORD)
    ini = (tmp_path / server_auth.AUTH_INI).read_text()
    assert PASSWORD not in ini
    assert "default_permission = NO_PERMISSIONS" in ini
    assert f"database_uri = sqlite:///{tmp_path / server_auth.AUTH_DB}" in ini
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"] == USER
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == PASSWORD
    assert len(env[server_auth.SECRET_KEY_ENV]) == 64
    cmd = server.server_command(tmp_path, "127.0.0.1", 5123, auth=True)
    assert cmd[cmd.index("--app-name") + 1] == "basic-auth"
    assert "--app-name" not in server.server_command(tmp_path, "127.0.0.1", 5123)
    assert "plain HTTP" in server.bind_warning("0.0.0.0", auth=True)


def test_auth_without_credentials_exits_2_and_writes_nothing(tmp_path):
    proc = harness("server", "--auth", "--port", str(free_port()), "--store",
                   str(tmp_path / "st"), cwd=tmp_path, env=env_with())
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("harness: error: --auth needs MLFLOW_TRACKING_USERNAME and "
                                  "MLFLOW_TRACKING_PASSWORD set")
    assert not (tmp_path / "st").exists()


def test_the_ray_workers_get_the_credentials(monkeypatch):
    import ray

    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setenv(server_auth.USER_ENV, USER)
    monkeypatch.setenv(server_auth.PASSWORD_ENV, PASSWORD)
    monkeypatch.delenv(tracking.TIMEOUT_ENV, raising=False)
    assert study.init_ray(None)
    assert seen["runtime_env"] == {"env_vars": {server_auth.USER_ENV: USER,
                                                server_auth.PASSWORD_ENV: PASSWORD}}


def test_a_server_with_auth_refuses_requests_without_the_credentials(tmp_path, monkeypatch):
    port, store = free_port(), tmp_path / "st"
    url = f"http://127.0.0.1:{port}"
    creds = {server_auth.USER_ENV: USER, server_auth.PASSWORD_ENV: PASSWORD}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "server", "--auth", "--port",
                             str(port), "--store", str(store)], cwd=tmp_path,
                            env=env_with(**creds), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + server.READY_TIMEOUT
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        body = {"max_results": 1}
        assert requests.post(url + SEARCH, json=body, timeout=10).status_code == 401
        wrong = requests.post(url + SEARCH, json=body, auth=(USER, "not-the-password"), timeout=10)
        assert wrong.status_code == 401
        assert requests.post(url + SEARCH, json=body, auth=(USER, PASSWORD), timeout=10).ok

        # the harness's own clients: a clear refusal without them, a store with them
        for name in server_auth.CREDENTIAL_ENVS:
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(TrackingError, match="requires credentials \\(HTTP 401\\): set "
                                                "MLFLOW_TRACKING_USERNAME and"):
            tracking.open_store(url)
        monkeypatch.setenv(server_auth.USER_ENV, USER)
        monkeypatch.setenv(server_auth.PASSWORD_ENV, "not-the-password")
        with pytest.raises(TrackingError, match="refused the credentials of user 'alice'"):
            tracking.open_store(url)
        monkeypatch.setenv(server_auth.PASSWORD_ENV, PASSWORD)
        tracking.open_store(url).search_experiments()
        # a study sent to it without credentials stops before anything starts
        (tmp_path / "s").mkdir()
        (tmp_path / "s" / "study.yaml").write_text(yaml.safe_dump({
            "name": "auth", "datasets": ["ring8"], "train": {"steps": 20, "eval_every": 20},
            "search": {"trials": 1, "space": {"lr_d": {"type": "choice", "values": [1e-3]}}},
            "variants": [{"name": "v", "model": "mlp", "loss": "minimax"}]}))
        refused = harness("study", "study.yaml", "--tracking-uri", url, cwd=tmp_path / "s",
                          env=env_with())
        assert refused.returncode == 2, refused.stderr
        assert "the server requires credentials (HTTP 401)" in refused.stderr
        assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["study.yaml"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    # the store's accounts keep the first password: another one is refused before a start
    other = harness("server", "--auth", "--port", str(free_port()), "--store", str(store),
                    cwd=tmp_path, env=env_with(**{**creds, server_auth.PASSWORD_ENV:
                                                  "another-long-password"}))
    assert other.returncode == 2
    assert f"{store / server_auth.AUTH_DB} already holds user 'alice' with another" in other.stderr


def test_mlflow_reads_the_credential_cache_from_the_settings(tmp_path, monkeypatch):
    from mlflow.server.auth.config import read_auth_config

    env = server_auth.prepare(tmp_path, USER, PASSWORD)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = read_auth_config()
    assert config.auth_cache_ttl_seconds == server_auth.AUTH_CACHE_SECONDS > 0
    assert config.default_permission == "NO_PERMISSIONS"
