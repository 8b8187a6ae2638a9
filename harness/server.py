"""``harness server``: an MLflow tracking server for a cluster whose nodes share no filesystem.

The server keeps runs in a sqlite file and artifacts in a folder, both under ``--store``
(default ``runs/``, the same sqlite file a laptop study uses), and serves the artifacts
itself (``--serve-artifacts``): experiments it creates get ``mlflow-artifacts:/`` locations,
so trials on any node upload their sample grids and checkpoints over HTTP and the report
downloads them the same way. Nothing but the server's own machine touches the files.

It listens on 127.0.0.1 unless ``--host`` says otherwise, and prints a warning when it
listens anywhere else: MLflow's server has no authentication, so anyone who can reach the
port can read and change every run.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from harness.errors import TrackingError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
_WILDCARD_LOCAL = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}
READY_TIMEOUT = 180.0  # seconds; the first start creates the database (slow on a busy machine)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_warning(host: str, what: str = "the MLflow server") -> str | None:
    """The warning printed when ``what`` listens on ``host`` beyond this machine; None on
    a loopback address."""
    if is_loopback(host):
        return None
    return (f"warning: {what} listens on {host}, so every machine that can reach this port "
            "can read, change and delete every run (MLflow has no authentication); expose it "
            "only on a private network your cluster's nodes share, behind a firewall")


def advertised_host(host: str) -> str:
    """The address to give other machines: ``host`` itself unless it is a wildcard, then
    the first non-loopback IPv4 address this machine's name resolves to (no network call
    beyond the resolver), else the host name."""
    if host not in ("0.0.0.0", "::", ""):
        return f"[{host}]" if ":" in host else host
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET)
    except OSError:
        return name
    for *_, sockaddr in infos:
        if not ipaddress.ip_address(sockaddr[0]).is_loopback:
            return sockaddr[0]
    return name


def allowed_hosts_for(host: str, port: int, extra: str | None = None) -> str | None:
    """The ``Host`` headers the server accepts: MLflow's defaults (localhost, private IP
    addresses), plus the address the server advertises when it listens beyond loopback, plus
    ``extra`` (``--allowed-hosts``, comma-separated). None: MLflow's defaults alone do."""
    if is_loopback(host) and not extra:
        return None
    try:
        from mlflow.server.security_utils import get_default_allowed_hosts

        hosts = list(get_default_allowed_hosts())
    except ImportError:  # an MLflow (< 3) without host validation: nothing to widen
        return None
    if not is_loopback(host):
        advertised = advertised_host(host)
        hosts += [advertised, f"{advertised}:{port}"]
    hosts += [h.strip() for h in (extra or "").split(",") if h.strip()]
    return ",".join(dict.fromkeys(hosts))


def server_command(store: Path, host: str, port: int, workers: int = 1,
                   allowed_hosts: str | None = None) -> list[str]:
    """The ``mlflow server`` command line for a store folder; ``allowed_hosts`` adds to
    the ``Host`` headers accepted (:func:`allowed_hosts_for`)."""
    allowed_hosts = allowed_hosts_for(host, port, allowed_hosts)
    cmd = [sys.executable, "-m", "mlflow", "server",
           "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
           "--serve-artifacts", "--artifacts-destination", str(store / "mlartifacts"),
           "--host", host, "--port", str(port), "--workers", str(workers)]
    if _mlflow_major() >= 3:  # uvicorn (MLflow 3): one log line per request drowns the log
        cmd += ["--uvicorn-opts", "--no-access-log"]
    if allowed_hosts:
        cmd += ["--allowed-hosts", allowed_hosts]
    return cmd


def _mlflow_major() -> int:
    from importlib.metadata import version

    return int(version("mlflow").split(".")[0])


def check_port(host: str, port: int) -> None:
    """TrackingError when ``host:port`` cannot be listened on (taken, or not this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            raise TrackingError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; "
                                "pick another --port (or --host)") from None


def start(store: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          workers: int = 1, allowed_hosts: str | None = None, quiet: bool = False
          ) -> subprocess.Popen:
    """Start ``mlflow server`` on ``store`` in its own process group and return at once
    (see :func:`wait_ready`). ``quiet`` sends its log to /dev/null instead of stderr."""
    store = Path(store).resolve()
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(f"cannot use --store {store}: {exc.strerror or exc}") from None
    check_port(host, port)
    out = subprocess.DEVNULL if quiet else None
    env = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.Popen(server_command(store, host, port, workers, allowed_hosts),
                            stdout=out, stderr=out, env=env, start_new_session=True)


def wait_ready(proc: subprocess.Popen, url: str, timeout: float = READY_TIMEOUT) -> None:
    """Return once ``url``/health answers; TrackingError when the server exits or is not up
    within ``timeout`` seconds (then it is stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TrackingError(f"the MLflow server exited with code {proc.returncode} before "
                                f"answering at {url} (its log is above)")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    stop(proc)
    raise TrackingError(f"the MLflow server did not answer at {url} within {timeout:g}s")


def stop(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop the server started by :func:`start` (its whole process group: the web workers)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def serve(store: str | Path, host: str, port: int, workers: int = 1,
          allowed_hosts: str | None = None, stream=None) -> int:
    """``harness server``: start, say where studies should log, wait until Ctrl-C."""
    stream = stream or sys.stderr
    store = Path(store).resolve()
    warning = bind_warning(host)
    if warning:
        print(warning, file=stream, flush=True)
    proc = start(store, host, port, workers, allowed_hosts)
    if threading.current_thread() is threading.main_thread():  # `kill` stops it cleanly too
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    local = f"http://{_WILDCARD_LOCAL.get(host) or advertised_host(host)}:{port}"
    try:
        wait_ready(proc, local)
        uri = f"http://{advertised_host(host)}:{port}"
        print(f"MLflow tracking server on {uri} (runs: {store / 'mlflow.db'}, artifacts: "
              f"{store / 'mlartifacts'})\n"
              f"  run studies with: harness study FILE --tracking-uri {uri}\n"
              "  (Ctrl-C stops it)", file=stream, flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop(proc)  # the server's process group: its web workers too
